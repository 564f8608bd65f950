//! Disks on one node without systemd, on real parts: qemu-img, images
//! with real ext4 and vfat partitions made with sfdisk and mkfs, the
//! nbd-free injection route (qemu-storage-daemon, FUSE, loop devices), a
//! real guest booting from an injected snapshot, a daemon killed halfway
//! through an injection; and `shell` and `background`.

mod common;

use common::guest::{guest, BOOT};
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(o.status.success(), "`{cmd}`: {}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

/// Processes whose command line mentions `needle`.
fn procs_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(needle) && !stat.contains(") Z") {
            out.push(pid);
        }
    }
    out
}

/// Mount points under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let d = dir.to_string_lossy().to_string();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&d))
        .map(String::from)
        .collect()
}

/// Kills what a failed test left: QEMUs and storage daemons under the
/// base, mounts under it (declared after the daemon: runs first).
struct Leftovers(PathBuf);

impl Drop for Leftovers {
    fn drop(&mut self) {
        let base = self.0.to_string_lossy().to_string();
        for m in mounts_under(&self.0).iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
        for pid in procs_with(&base) {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// Nothing of an injection is left: no mount, no export, no folder.
fn nothing_left(base: &Path, what: &str) {
    assert!(
        mounts_under(base).is_empty(),
        "{what}: {:?}",
        mounts_under(base)
    );
    let qsd: Vec<u32> = procs_with("qemu-storage-daemon")
        .into_iter()
        .filter(|p| {
            let c = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&c).contains(&*base.to_string_lossy())
        })
        .collect();
    assert!(qsd.is_empty(), "{what}: qemu-storage-daemon left: {qsd:?}");
    let left: Vec<_> = std::fs::read_dir(base.join("inject"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{what}: {left:?}");
}

/// Rows of `cmd` with only `cols` (the JSON output, so commas and empty
/// cells need no care).
fn rows(d: &Daemon, cols: &str, cmd: &str) -> Vec<Vec<String>> {
    let out = d.ok(&format!(".json true .columns {cols} {cmd}"));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}"));
    v[0]["Tabular"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    let cells = r.as_array().unwrap().iter();
                    cells.map(|c| c.as_str().unwrap().to_string()).collect()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The one value of column `col` in `cmd`'s one row.
fn value(d: &Daemon, col: &str, cmd: &str) -> String {
    let r = rows(d, col, cmd);
    assert_eq!(r.len(), 1, "{cmd}: {r:?}");
    r[0][0].clone()
}

fn fails(d: &Daemon, line: &str) -> String {
    let out = d.e(line);
    assert!(
        !out.status.success(),
        "`{line}` should fail: {}",
        stdout(&out)
    );
    stdout(&out)
}

/// A disk image with an MBR and one partition per (type, MiB), each with
/// its file system (ext4 or vfat), as a qcow2 at `dst`.
fn make_image(scratch: &Path, dst: &Path, parts: &[(&str, u64)]) {
    let raw = scratch.join("build.raw");
    let total: u64 = parts.iter().map(|(_, m)| m).sum::<u64>() + 2;
    sh(&format!(
        "rm -f {0} && truncate -s {total}M {0}",
        raw.display()
    ));
    let mut table = String::from("label: dos\n");
    let mut start = 1u64;
    for (fs, mib) in parts {
        let kind = if *fs == "vfat" { "c" } else { "83" };
        table.push_str(&format!(
            "start={}, size={}, type={kind}\n",
            start * 2048,
            mib * 2048
        ));
        start += mib;
    }
    sh(&format!("printf '{table}' | sfdisk -q {}", raw.display()));
    let mut start = 1u64;
    for (fs, mib) in parts {
        let off = start << 20;
        if *fs == "vfat" {
            sh(&format!(
                "mkfs.vfat --offset {} {} {} >/dev/null",
                off / 512,
                raw.display(),
                mib * 1024
            ));
        } else {
            sh(&format!(
                "mkfs.ext4 -q -E offset={off} {} {mib}M",
                raw.display()
            ));
        }
        start += mib;
    }
    sh(&format!(
        "qemu-img convert -O qcow2 {} {}",
        raw.display(),
        dst.display()
    ));
}

/// A file read back from partition `n` (ext4 or vfat) of a qcow2, from a
/// raw copy, with e2fsprogs or mtools (the test's own way, not the
/// daemon's, and no mount: this host's kernel has no vfat).
fn read_back(scratch: &Path, image: &Path, n: usize, file: &str) -> Option<String> {
    let raw = scratch.join("check.raw");
    sh(&format!(
        "qemu-img convert -O raw {} {}",
        image.display(),
        raw.display()
    ));
    let table: serde_json::Value =
        serde_json::from_str(&sh(&format!("sfdisk -J {}", raw.display()))).unwrap();
    let p = &table["partitiontable"]["partitions"][n - 1];
    let off = p["start"].as_u64().unwrap() * 512;
    let out = if p["type"] == "c" {
        Command::new("mtype")
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(format!("{}@@{off}", raw.display()))
            .arg(format!("::/{file}"))
            .output()
            .unwrap()
    } else {
        Command::new("debugfs")
            .arg("-R")
            .arg(format!("cat /{file}"))
            .arg(format!("{}?offset={off}", raw.display()))
            .output()
            .unwrap()
    };
    let _ = std::fs::remove_file(raw);
    let err = String::from_utf8_lossy(&out.stderr);
    (out.status.success() && !err.contains("not found"))
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn an_injected_file_is_printed_by_a_guest_booted_from_the_snapshot() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let _left = Leftovers(d.base.clone());
    let files = d.base.join("files");
    std::fs::create_dir_all(&files).unwrap();
    make_image(&d.scratch.path, &files.join("base.qcow2"), &[("ext4", 32)]);
    std::fs::write(files.join("motd"), "injected by minimega\n").unwrap();

    d.ok("disk snapshot base.qcow2 snap.qcow2");
    d.ok("disk inject snap.qcow2 files motd:/etc/motd");
    nothing_left(&d.base, "after an injection");
    let mut chain = rows(
        &d,
        "image,format,backingfile",
        "disk info snap.qcow2 recursive",
    );
    chain.sort();
    let f = files.display();
    assert_eq!(
        chain,
        [
            [format!("{f}/base.qcow2"), "qcow2".into(), String::new()],
            [
                format!("{f}/snap.qcow2"),
                "qcow2".into(),
                "base.qcow2".into()
            ]
        ]
    );
    assert!(read_back(&d.scratch.path, &files.join("base.qcow2"), 1, "etc/motd").is_none());

    let (kernel, initrd) = guest();
    for line in [
        "vm config memory 256".to_string(),
        format!("vm config kernel {}", kernel.display()),
        format!("vm config initrd {}", initrd.display()),
        "vm config append console=ttyS0 mm.mount=/dev/vda1 mm.cat=/etc/motd".into(),
        "vm config serial-ports 1".into(),
        "vm config disk snap.qcow2,virtio".into(),
        "vm launch kvm reader".into(),
    ] {
        d.ok(&line);
    }
    assert_eq!(
        rows(&d, "disks,snapshot", "vm info"),
        [[format!("{f}/snap.qcow2,virtio"), "true".to_string()]]
    );
    // The VM boots its own overlay, made in its folder, on the snapshot.
    let vmdir = d.base.join("0");
    let overlay = sh(&format!(
        "qemu-img info -U --output=json {}",
        vmdir.join("disk-0.qcow2").display()
    ));
    assert!(overlay.contains("files/snap.qcow2"), "{overlay}");
    d.ok("vm start reader");
    let log = vmdir.join("serial0.log");
    let text = wait_for("the injected file on the console", BOOT, || {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        t.contains("MM-CAT-END").then_some(t)
    });
    let printed = text
        .split("MM-CAT-BEGIN")
        .nth(1)
        .and_then(|t| t.split("MM-CAT-END").next())
        .unwrap_or_default();
    assert!(printed.contains("injected by minimega"), "{text}");

    // In use now: refused by what we know, and by QEMU's lock on the
    // chain below it.
    let e = fails(&d, "disk inject snap.qcow2 files motd:/x");
    assert!(
        e.ends_with("/files/snap.qcow2 is in use by vm reader"),
        "{e}"
    );
    let e = fails(&d, "disk inject base.qcow2 files motd:/x");
    assert!(
        e.contains("base.qcow2 is in use (another process holds its lock)"),
        "{e}"
    );
    let e = fails(&d, "disk resize snap.qcow2 +1M");
    assert!(e.ends_with("is in use by vm reader"), "{e}");
    nothing_left(&d.base, "after refusals");
    let inuse = rows(&d, "inuse", "disk info snap.qcow2 recursive");
    assert_eq!(inuse, [["true"], ["true"]]);
    d.ok("vm kill all");
    d.ok("vm flush");
    assert!(!vmdir.exists(), "the overlay goes with the VM");
}

#[test]
fn qemu_img_operations_change_what_it_says() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let _left = Leftovers(d.base.clone());
    let files = d.base.join("files");
    d.ok("disk create qcow2 base.qcow2 64M");
    d.ok("disk create raw plain.raw 1M");
    assert_eq!(
        rows(&d, "format,virtualsize,backingfile", "disk info base.qcow2"),
        [["qcow2", "64.0 MiB", ""]]
    );
    let generated = d.ok("disk snapshot base.qcow2");
    assert!(
        generated.contains("/files/snapshot-") && generated.ends_with(".qcow2"),
        "{generated}"
    );
    d.ok("disk snapshot base.qcow2 sub/top.qcow2");
    let top_info = |col: &str| value(&d, col, "disk info sub/top.qcow2");
    assert_eq!(
        top_info("backingfile"),
        "../base.qcow2",
        "relative to its folder"
    );

    d.ok("disk resize sub/top.qcow2 128M");
    assert_eq!(top_info("virtualsize"), "128.0 MiB");
    d.ok("disk resize sub/top.qcow2 -32M");
    assert_eq!(top_info("virtualsize"), "96.0 MiB");

    // Data written into the top reaches the base with commit.
    let top = files.join("sub/top.qcow2");
    let base = files.join("base.qcow2");
    sh(&format!(
        "qemu-io -f qcow2 -c 'write -P 0x5a 0 1M' {} >/dev/null",
        top.display()
    ));
    let compare = |a: &Path, b: &Path| {
        Command::new("qemu-img")
            .args(["compare", "-U"])
            .arg(a)
            .arg(b)
            .output()
            .unwrap()
            .status
            .code()
    };
    let other = files.join("other.qcow2");
    sh(&format!(
        "qemu-img create -q -f qcow2 {} 64M",
        other.display()
    ));
    assert_eq!(compare(&base, &other), Some(0), "base is still blank");
    d.ok("disk commit sub/top.qcow2");
    assert_eq!(compare(&base, &other), Some(1), "commit wrote the base");

    // Standalone, then pointed at another backing file without copying.
    d.ok("disk rebase sub/top.qcow2");
    assert_eq!(top_info("backingfile"), "");
    assert_eq!(
        compare(&top, &base),
        Some(0),
        "the data stayed in the image"
    );
    d.ok("disk set-backing sub/top.qcow2 other.qcow2");
    assert_eq!(top_info("backingfile"), "../other.qcow2");
    d.ok("disk rebase sub/top.qcow2 base.qcow2");
    assert_eq!(top_info("backingfile"), "../base.qcow2");
}

#[test]
fn bad_input_is_one_clear_line_and_leaves_nothing() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let _left = Leftovers(d.base.clone());
    let files = d.base.join("files");
    std::fs::create_dir_all(&files).unwrap();
    make_image(
        &d.scratch.path,
        &files.join("two.qcow2"),
        &[("ext4", 16), ("vfat", 40)],
    );
    std::fs::write(files.join("note"), "hello vfat\n").unwrap();
    let base = &d.base;

    // Missing image, missing source, a partition that does not exist,
    // several partitions and none chosen.
    let e = fails(&d, "disk inject nope.qcow2 files note:/x");
    assert!(
        e.starts_with("E: image /") && e.ends_with("/files/nope.qcow2: no such file"),
        "{e}"
    );
    let e = fails(&d, "disk inject two.qcow2:1 files missing:/x");
    assert!(e.ends_with("/files/missing: no such file"), "{e}");
    assert_eq!(
        fails(&d, "disk inject two.qcow2:3 files note:/x"),
        "E: partition 3 not found (the image has partitions 1, 2)"
    );
    assert_eq!(
        fails(&d, "disk inject two.qcow2 files note:/x"),
        "E: please specify a partition; multiple found (partitions 1, 2)"
    );
    nothing_left(base, "bad partitions");
    // ext4 and vfat both take files; the image is unchanged elsewhere.
    d.ok("disk inject two.qcow2:2 files note:/dir/note.txt");
    d.ok("disk inject two.qcow2:1 files note:/note");
    let img = files.join("two.qcow2");
    assert_eq!(
        read_back(&d.scratch.path, &img, 2, "dir/note.txt").as_deref(),
        Some("hello vfat\n")
    );
    assert!(read_back(&d.scratch.path, &img, 1, "note").is_some());
    d.ok("disk inject two.qcow2:2 delete files /dir/note.txt");
    assert!(read_back(&d.scratch.path, &img, 2, "dir/note.txt").is_none());
    nothing_left(base, "ext4 and vfat");

    // Paths out of the files directory, or out of the image.
    for (line, want) in [
        (
            "disk create raw ../x.raw 1M",
            "E: `../x.raw` is outside the files directory (a relative name may not climb out of it with ..; give an absolute path)",
        ),
        (
            "disk snapshot two.qcow2 ../../y",
            "E: `../../y` is outside the files directory (a relative name may not climb out of it with ..; give an absolute path)",
        ),
        (
            "file get ../etc/passwd",
            "E: `../etc/passwd` is outside the files directory",
        ),
        (
            "file delete /",
            "E: refusing to delete the files directory itself",
        ),
        (
            "vm config disk ../a.qcow2",
            "E: `../a.qcow2` is outside the files directory (a relative name may not climb out of it with ..; give an absolute path)",
        ),
        (
            "disk inject two.qcow2:1 files note:../../../etc/x",
            "E: `../../../etc/x` is outside the image's file system",
        ),
    ] {
        assert_eq!(fails(&d, line), want, "{line}");
    }
    assert!(!d.base.join("x.raw").exists() && !d.scratch.path.join("y").exists());
    // An existing image is never overwritten.
    let e = fails(&d, "disk create qcow2 two.qcow2 1G");
    assert!(e.ends_with("/files/two.qcow2 already exists"), "{e}");
    assert_eq!(value(&d, "virtualsize", "disk info two.qcow2"), "58.0 MiB");

    // A file no node has (this one is alone; tests/files.rs has a mesh):
    // for `file get` and for a launch.
    assert_eq!(
        fails(&d, "file get nothing.iso"),
        "E: get nothing.iso: file not found"
    );
    d.ok("vm config disk nothing.qcow2");
    let e = fails(&d, "vm launch kvm a");
    assert!(e.ends_with("/files/nothing.qcow2: no such file"), "{e}");
    assert_eq!(d.ok("vm info"), "");

    // An image a VM has open (paused, so no guest needed).
    d.ok("vm config memory 64");
    d.ok("vm config disk two.qcow2");
    d.ok("vm config snapshot false");
    d.ok("vm launch kvm writer");
    let e = fails(&d, "disk inject two.qcow2:1 files note:/y");
    assert!(
        e.ends_with("/files/two.qcow2 is in use by vm writer"),
        "{e}"
    );
    let e = fails(&d, "vm launch kvm second");
    let want = format!("disk conflict with vm writer: {}", img.display());
    assert!(e.ends_with(&want), "{e}");
    nothing_left(base, "an image in use");
    d.ok("vm kill all");
    d.ok("vm flush");
    assert!(
        !std::fs::read_dir(&files)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains("mmpart")),
        "no partial file"
    );
}

#[test]
fn a_daemon_killed_halfway_through_an_injection_cleans_up_at_start() {
    let bus = Bus::start();
    let mut d = Daemon::start(&bus);
    let _left = Leftovers(d.base.clone());
    let files = d.base.join("files");
    std::fs::create_dir_all(&files).unwrap();
    make_image(&d.scratch.path, &files.join("big.qcow2"), &[("ext4", 400)]);
    sh(&format!(
        "head -c 300M /dev/urandom > {}",
        files.join("payload").display()
    ));
    let base = d.base.clone();
    let bus_addr = d.bus.clone();
    let child = std::thread::spawn(move || {
        mm(
            &bus_addr,
            &["-e", "disk inject big.qcow2 files payload:/payload"],
        )
    });
    wait_for("the partition mounted", Duration::from_secs(300), || {
        mounts_under(&base)
            .iter()
            .any(|m| m.ends_with("/mnt"))
            .then_some(())
    });
    d.crash();
    let _ = child.join();
    assert!(!mounts_under(&base).is_empty(), "killed while mounted");
    let mut again = Daemon::start_with(
        &bus,
        DaemonOpts {
            base: Some(base.clone()),
            ..DaemonOpts::default()
        },
    );
    nothing_left(&base, "after the restart");
    assert!(again
        .log_text()
        .contains("cleaning up an injection a previous daemon left"));
    // Unlocked and consistent: a writer may open it again.
    sh(&format!(
        "qemu-img check -q {}",
        files.join("big.qcow2").display()
    ));
    again.ok("disk inject big.qcow2 delete files /payload");
    nothing_left(&base, "a later injection");
    again.stop();
}

#[test]
fn shell_and_background() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    assert_eq!(d.ok("shell echo hi"), "hi");
    let out = d.e(r#"shell sh -c "echo out; echo err >&2; exit 3""#);
    assert!(!out.status.success());
    assert_eq!(stdout(&out), "out\nE: err\nexit status 3");
    assert_eq!(
        fails(&d, "shell definitelynotarealcommand"),
        "E: exec: \"definitelynotarealcommand\": executable file not found in $PATH"
    );

    let started = d.ok("background sleep 100");
    assert_eq!(started, "Started background process with id 1");
    let pid: u32 = rows(&d, "PID", "background-status 1")[0][0]
        .parse()
        .expect("a pid");
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(
        rows(&d, "ID,PID,RUNNING,COMMAND", "background-status"),
        [[
            "1".to_string(),
            pid.to_string(),
            "true".into(),
            "sleep 100".into()
        ]]
    );
    assert_eq!(
        fails(&d, "background-output 1"),
        "E: wait for process to finish before reading output"
    );
    d.ok("background-kill 1");
    let status = wait_for(
        "the background command to end",
        Duration::from_secs(120),
        || {
            let s = rows(&d, "RUNNING,ERROR", "background-status 1");
            (s[0][0] == "false").then_some(s)
        },
    );
    assert_eq!(status[0][1], "killed (background-kill)");
    assert!(procs_with("sleep 100").iter().all(|p| *p != pid));
    d.ok("background echo done");
    wait_for("echo to finish", Duration::from_secs(120), || {
        (value(&d, "RUNNING", "background-status 2") == "false").then_some(())
    });
    assert_eq!(d.ok("background-output 2"), "done");
    assert_eq!(
        d.ok("clear background-status"),
        "Cleared 2 elements from background-status"
    );
}
