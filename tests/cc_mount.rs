//! `cc mount`: a container's whole file system, served by our agent inside
//! over its cc connection, mounted on this host (through FUSE here: this
//! kernel has no 9p) and read and written with plain file calls; the
//! port-only form speaks 9P2000; `clear cc mount` and the VM's end unmount
//! it; bad input leaves nothing mounted or listening.

mod common;

use common::container::*;
use common::guest::{fails, vm_info};
use common::ovs::Site;
use common::*;
use std::path::Path;
use std::process::Command;

const INIT: &str = r#"#!/bin/sh
mount -t tmpfs tmp /tmp 2>/dev/null
echo made inside > /written
mkdir -p /inner/deep && echo deep > /inner/deep/file
(while true; do miniccc -family unix -parent /cc -level error; sleep 1; done) &
sleep 100000
"#;

/// The file systems mounted at `p`, as the kernel lists them.
fn mounted_at(p: &Path) -> Vec<String> {
    let want = p.display().to_string();
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
        .map(String::from)
        .collect()
}

/// Waits for a line `want` in the answer of `cc exec CMD`, by the
/// response files (`want` must not be in an earlier answer).
fn guest_says(d: &Daemon, cmd: &str, want: &str) {
    d.ok(&format!("cc exec {cmd}"));
    let resp = d.base.join("files/miniccc_responses");
    wait_for(&format!("{want} from the guest"), SEEN, || {
        let o = Command::new("grep")
            .args(["-rlx", want])
            .arg(&resp)
            .output()
            .ok()?;
        (!stdout(&o).trim().is_empty()).then_some(())
    });
}

/// A 9P2000 Tversion to the port from the daemon's network namespace:
/// the Rversion's type and version string, or why not.
fn version_over(site: &Site, port: u16) -> String {
    site.sh(&format!(
        r#"python3 -c '
import socket, struct
try:
    s = socket.create_connection(("127.0.0.1", {port}), timeout=60)
except OSError as e:
    print("refused"); raise SystemExit
v = b"9P2000"
m = struct.pack("<BHIH", 100, 0xffff, 8192, len(v)) + v
s.sendall(struct.pack("<I", len(m) + 4) + m)
n = struct.unpack("<I", s.recv(4))[0]
b = b""
while len(b) < n - 4:
    b += s.recv(n - 4 - len(b))
print(b[0], b[9:].decode())
'"#
    ))
}

#[test]
fn a_containers_file_system_is_mounted_read_written_and_unmounted() {
    let host = ct_host("ccm");
    let (site, d) = (&host.site, &host.d);
    let scratch = Scratch::new("ccm-fs");
    let fs = agent_filesystem(&scratch.path, INIT);
    let mnt = scratch.path.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let _unmount = Unmount(mnt.clone());
    let m = mnt.display().to_string();

    d.ok(&format!("vm config filesystem {}", fs.display()));
    d.ok("vm launch container ct1");
    d.ok("vm start ct1");
    wait_for("the agent", SEEN, || {
        (vm_info(d)[0]["cc_active"] == "true").then_some(())
    });
    let uuid = vm_info(d)[0]["uuid"].clone();

    // Bad input: each a clear error, nothing mounted or listed after.
    assert_eq!(
        fails(d, &format!("cc mount ct1 {m}/nosuch")),
        "E: mount point does not exist"
    );
    assert_eq!(
        fails(d, &format!("cc mount nosuch {m}")),
        "E: vm not found: nosuch"
    );
    let e = fails(d, "cc mount ct1 relative/dir");
    assert!(e.contains("must be an absolute path"), "{e}");
    assert!(mounted_at(&mnt).is_empty());
    assert_eq!(d.ok(".csv true cc mount"), "");

    d.ok(&format!("cc mount ct1 {m}"));
    assert_eq!(mounted_at(&mnt).len(), 1, "{:?}", mounted_at(&mnt));
    let listed = d.ok(".csv true .header false cc mount");
    let row: Vec<&str> = listed.split(',').collect();
    assert_eq!(row[1..3], ["ct1", uuid.as_str()], "{listed}");
    assert!(row[3].starts_with("node:"), "{listed}");
    assert_eq!(row[4], m, "{listed}");
    let e = fails(d, &format!("cc mount ct1 {m}"));
    assert!(e.starts_with("E: already connected to "), "{e}");

    // The guest's view (init's writes are in its own layer, not in the
    // file system directory), read through plain file calls.
    assert_eq!(
        std::fs::read_to_string(mnt.join("written")).unwrap(),
        "made inside\n"
    );
    assert!(!fs.join("written").exists());
    assert_eq!(
        std::fs::read_to_string(mnt.join("inner/deep/file")).unwrap(),
        "deep\n"
    );
    let mut names: Vec<String> = std::fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    for n in ["bin", "init", "inner", "written"] {
        assert!(names.contains(&n.to_string()), "{n} in {names:?}");
    }
    assert!(mnt.join("inner").is_dir());

    // Written here, seen by the guest.
    std::fs::write(mnt.join("from-host"), "hello from the host\n").unwrap();
    guest_says(d, "cat /from-host", "hello from the host");
    std::fs::create_dir(mnt.join("made")).unwrap();
    std::fs::rename(mnt.join("from-host"), mnt.join("made-renamed")).unwrap();
    assert!(!mnt.join("from-host").exists());
    std::fs::remove_file(mnt.join("inner/deep/file")).unwrap();
    std::fs::remove_dir(mnt.join("inner/deep")).unwrap();
    guest_says(
        d,
        "sh -c \"test -d /made && test ! -e /from-host && test ! -e /inner/deep && cat /made-renamed | sed s/hello/seen/\"",
        "seen from the host",
    );
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(mnt.join("made-renamed"))
        .unwrap();
    f.set_len(5).unwrap();
    drop(f);
    assert_eq!(
        std::fs::read_to_string(mnt.join("made-renamed")).unwrap(),
        "hello"
    );

    // clear cc mount by path: unmounted, unlisted, mountable again.
    d.ok(&format!("clear cc mount {m}"));
    assert!(mounted_at(&mnt).is_empty(), "{:?}", mounted_at(&mnt));
    assert_eq!(d.ok(".csv true cc mount"), "");
    assert!(!mnt.join("written").exists());

    // The port alone: 9P2000 on loopback, closed by clear cc mount.
    let port: u16 = d.ok("cc mount ct1").trim().parse().unwrap();
    assert_eq!(version_over(site, port), "101 9P2000");
    assert!(mounted_at(&mnt).is_empty());
    d.ok("clear cc mount ct1");
    wait_for("the port to close", SEEN, || {
        (version_over(site, port) == "refused").then_some(())
    });

    // So does `clear cc` (minimega's).
    d.ok(&format!("cc mount ct1 {m}"));
    assert_eq!(mounted_at(&mnt).len(), 1);
    d.ok("clear cc");
    assert!(mounted_at(&mnt).is_empty(), "{:?}", mounted_at(&mnt));

    // The agent's connection ending (the agent restarts here) takes the
    // mount with it: its 9P session cannot come back.
    d.ok(&format!("cc mount ct1 {m}"));
    assert_eq!(mounted_at(&mnt).len(), 1);
    // (After `clear cc` ids start from 1 again: the connected agent is
    // still sent command 1, as minimega's server does.)
    d.ok("cc exec-once killall miniccc");
    wait_for("the mount to go with the agent's connection", SEEN, || {
        mounted_at(&mnt).is_empty().then_some(())
    });
    assert_eq!(d.ok(".csv true cc mount"), "");
    wait_for("the agent back", SEEN, || {
        (vm_info(d)[0]["cc_active"] == "true").then_some(())
    });

    // The VM's end unmounts it.
    d.ok(&format!("cc mount ct1 {m}"));
    assert_eq!(mounted_at(&mnt).len(), 1);
    d.ok("vm kill ct1");
    wait_for("the mount to go with the VM", SEEN, || {
        mounted_at(&mnt).is_empty().then_some(())
    });
    assert_eq!(d.ok(".csv true cc mount"), "");
    d.ok("vm flush");
    assert!(no_monitors(&d.base));
}

#[test]
fn a_daemon_leaves_no_mount_when_it_stops_or_dies() {
    let mut host = ct_host("ccmx");
    let scratch = Scratch::new("ccmx-fs");
    let fs = agent_filesystem(&scratch.path, INIT);
    let mnt = scratch.path.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let _unmount = Unmount(mnt.clone());
    let m = mnt.display().to_string();
    let agent = |d: &Daemon| {
        wait_for("the agent", SEEN, || {
            (vm_info(d)[0]["cc_active"] == "true").then_some(())
        })
    };
    host.d.ok(&format!("vm config filesystem {}", fs.display()));
    host.d.ok("vm launch container ct1");
    host.d.ok("vm start ct1");
    agent(&host.d);
    host.d.ok(&format!("cc mount ct1 {m}"));
    assert_eq!(mounted_at(&mnt).len(), 1);

    // Killed: its FUSE server died with it, the mount is dead; the next
    // daemon on the same base unmounts it before anything else.
    host.d.crash();
    assert_eq!(mounted_at(&mnt).len(), 1);
    let base = host.d.base.clone();
    host.d = host.site.daemon_with(&host.bus, Some(base), true);
    assert!(mounted_at(&mnt).is_empty(), "{:?}", mounted_at(&mnt));

    // Stopped: it unmounts what it serves.
    agent(&host.d);
    host.d.ok(&format!("cc mount ct1 {m}"));
    assert_eq!(mounted_at(&mnt).len(), 1);
    host.d.stop();
    assert!(mounted_at(&mnt).is_empty(), "{:?}", mounted_at(&mnt));
}
