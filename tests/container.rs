//! Containers (`vm launch container`) on this host through the daemon:
//! a busybox file system made by scripts/container-fs.sh with our agent
//! in it, run by the daemon's monitor in its own namespaces and cgroups,
//! on a real Open vSwitch. Frozen at launch, thawed by `vm start`, frozen
//! again by `vm stop` (a counter inside stops and resumes); volumes,
//! fifos, snapshot, console, cc, the memory limit; VLANs between
//! containers; bad input; nothing left behind.

mod common;

use common::container::*;
use common::guest::{fails, vm_dirs, vm_info};
use common::pty::Pty;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn console(base: &Path, vm: &str) -> Pty {
    let mut c = Command::new(BIN);
    c.args(["-base", base.to_str().unwrap(), "-console", vm])
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    Pty::spawn(c)
}

const INIT: &str = r#"#!/bin/sh
mount -t tmpfs tmp /tmp 2>/dev/null
echo "init up as $(hostname)"
hostname > /data/hostname
ls /dev/fifos > /data/fifos
echo written > /written
miniccc -family unix -parent /cc -level error &
n=0
( while true; do n=$((n+1)); echo $n > /data/count; sleep 0.1; done ) &
while read line; do echo "got: $line"; done
sleep 100000
"#;

#[test]
fn a_container_runs_freezes_thaws_and_leaves_nothing() {
    let host = ct_host("ct");
    let (site, d) = (&host.site, &host.d);
    let scratch = Scratch::new("ct-fs");
    let fs = agent_filesystem(&scratch.path, INIT);
    let before = tree(&fs);
    let data = scratch.path.join("data");
    std::fs::create_dir_all(&data).unwrap();

    d.ok(&format!("vm config filesystem {}", fs.display()));
    d.ok(&format!("vm config volume /data {}", data.display()));
    d.ok("vm config fifos 2");
    d.ok("vm config memory 256");
    d.ok("vm config hostname inside");
    d.ok("vm config net 100");
    let listing = d.ok("vm config");
    assert!(
        listing.contains("Container configuration:\nFilesystem Path: "),
        "{listing}"
    );
    assert!(
        listing.contains(&format!(
            "Volumes:         \n                 /data -> {}",
            data.display()
        )),
        "{listing}"
    );
    d.ok("vm launch container ct1");
    let rows = vm_info(d);
    let r = &rows[0];
    assert_eq!(r["type"], "container");
    assert_eq!(r["state"], "BUILDING");
    assert_eq!(r["filesystem"], fs.display().to_string());
    assert_eq!(r["hostname"], "inside");
    assert_eq!(r["init"], "[/init]");
    assert_eq!(r["fifo"], "2");
    assert_eq!(r["disks"], "N/A");
    assert!(r["tap"].starts_with("[mega_tap"), "{r:?}");
    assert_eq!(netns_of(d).len(), 1);
    // Frozen at launch: init has not run.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(&data.join("count")), 0);

    let mut con = console(&d.base, "ct1");
    d.ok("vm start ct1");
    wait_for("the counter to run", SEEN, || {
        (count(&data.join("count")) > 3).then_some(())
    });
    con.wait_for("init up as inside", 0, SEEN);
    con.type_bytes(b"hello console\r");
    con.wait_for("got: hello console", 0, SEEN);
    // The same console on its TCP port (console_port), another viewer:
    // it gets the replay, and its typing reaches init too.
    let port = vm_info(d)[0]["console_port"].clone();
    assert!(port.parse::<u16>().is_ok(), "console_port {port}");
    let tcp = site.sh(&format!(
        "python3 -c 'import socket,time; s=socket.create_connection((\"127.0.0.1\",{port})); s.settimeout(20); s.sendall(b\"over tcp\\r\"); b=b\"\"\nwhile b\"got: over tcp\" not in b: b+=s.recv(4096)\nprint(b.decode(errors=\"replace\"))'"
    ));
    assert!(
        tcp.contains("init up as inside") && tcp.contains("got: over tcp"),
        "{tcp}"
    );
    con.wait_for("got: over tcp", 0, SEEN);
    assert_eq!(
        std::fs::read_to_string(data.join("hostname"))
            .unwrap()
            .trim(),
        "inside"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("fifos"))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["fifo0", "fifo1"]
    );
    assert!(d.base.join(&r["id"]).join("fifo1").exists());

    // vm stop freezes: the counter stands still, then moves again.
    d.ok("vm stop ct1");
    assert_eq!(vm_info(d)[0]["state"], "PAUSED");
    let a = count(&data.join("count"));
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(count(&data.join("count")), a, "a frozen container counted");
    d.ok("vm start ct1");
    wait_for("the counter to resume", SEEN, || {
        (count(&data.join("count")) > a + 3).then_some(())
    });

    // cc from our agent inside.
    wait_for("the agent", SEEN, || {
        (vm_info(d)[0]["cc_active"] == "true").then_some(())
    });
    d.ok("cc exec hostname");
    let resp = d.base.join("files/miniccc_responses");
    wait_for("cc exec's answer", SEEN, || {
        let o = Command::new("grep")
            .args(["-rl", "inside"])
            .arg(&resp)
            .output()
            .ok()?;
        (!stdout(&o).trim().is_empty()).then_some(())
    });

    // vm screenshot is not for containers; vm top reads the cgroup.
    let e = fails(d, "vm screenshot ct1");
    assert!(e.contains("not supported for containers"), "{e}");
    let top = d.ok("vm top");
    assert!(top.contains("ct1"), "{top}");

    d.ok("vm kill ct1");
    wait_for("QUIT", SEEN, || {
        (vm_info(d)[0]["state"] == "QUIT").then_some(())
    });
    assert!(no_monitors(&d.base));
    assert!(netns_of(d).is_empty(), "{:?}", netns_of(d));
    assert!(site.devices().is_empty(), "{:?}", site.devices());
    // snapshot true: the container's writes went to its own layer.
    assert!(!fs.join("written").exists());
    assert_eq!(tree(&fs), before);
    d.ok("vm flush");
    assert!(vm_dirs(&d.base).is_empty());
}

#[test]
fn bad_container_input_is_refused_and_leaves_nothing() {
    let host = ct_host("ctbad");
    let (site, d) = (&host.site, &host.d);
    let scratch = Scratch::new("ctbad-fs");
    let fs = agent_filesystem(&scratch.path, "#!/bin/sh\nsleep 1000\n");
    let file = scratch.path.join("file");
    std::fs::write(&file, "").unwrap();
    let failing = scratch.path.join("preinit.sh");
    std::fs::write(&failing, "#!/bin/sh\necho preinit says no >&2\nexit 3\n").unwrap();
    set_mode(&failing, 0o755);
    d.ok("vm config net 100");

    let e = fails(d, "vm launch container c1");
    assert!(e.contains("vm config filesystem"), "{e}");
    d.ok("vm config filesystem /nonexistent/fs");
    let e = fails(d, "vm launch container c1");
    assert!(
        e.contains("filesystem /nonexistent/fs: no such file"),
        "{e}"
    );
    d.ok(&format!("vm config filesystem {}", file.display()));
    let e = fails(d, "vm launch container c1");
    assert!(e.contains("not a directory"), "{e}");
    d.ok(&format!("vm config filesystem {}", fs.display()));
    d.ok("vm config init /sbin/nope");
    let e = fails(d, "vm launch container c1");
    assert!(e.contains("init /sbin/nope: no such file"), "{e}");
    d.ok("clear vm config init");
    d.ok("vm config volume /data /nonexistent/src");
    let e = fails(d, "vm launch container c1");
    assert!(
        e.contains("volume source /nonexistent/src: no such file"),
        "{e}"
    );
    d.ok("clear vm config volume");
    d.ok(&format!("vm config preinit {}", failing.display()));
    let e = fails(d, "vm launch container c1");
    assert!(e.contains("preinit"), "{e}");
    d.ok("clear vm config preinit");
    // One file system written by two containers: minimega's refusal.
    d.ok("vm config snapshot false");
    let e = fails(d, "vm launch container w1,w2");
    assert!(e.contains("2 containers would write"), "{e}");
    d.ok("vm launch container w1");
    let e = fails(d, "vm launch container w2");
    assert!(e.contains("filesystem conflict with vm w1"), "{e}");
    d.ok("vm kill w1");
    wait_for("w1 QUIT", SEEN, || {
        (vm_info(d)[0]["state"] == "QUIT").then_some(())
    });
    d.ok("vm flush");

    assert!(vm_info(d).is_empty());
    assert!(vm_dirs(&d.base).is_empty());
    assert!(no_monitors(&d.base));
    assert!(netns_of(d).is_empty(), "{:?}", netns_of(d));
    assert!(site.devices().is_empty(), "{:?}", site.devices());
    assert!(site.ports("mega_bridge").is_empty());
}

const PINGER: &str = r#"#!/bin/sh
ip addr add $(cat /etc/address) dev eth0
ip link set eth0 up
sleep 100000
"#;

#[test]
fn containers_and_a_kvm_guest_in_one_vlan_ping_and_not_across_vlans() {
    let host = ct_host("ctnet");
    let (site, d) = (&host.site, &host.d);
    let _qemus = common::guest::VmGuard {
        base: d.base.clone(),
    };
    let scratch = Scratch::new("ctnet-fs");
    let mut fss = Vec::new();
    for (name, addr, vlan) in [
        ("a", "10.9.0.1/24", 100),
        ("b", "10.9.0.2/24", 100),
        ("c", "10.9.0.3/24", 200),
    ] {
        let fs = agent_filesystem(&scratch.path.join(name), PINGER);
        std::fs::write(fs.join("etc/address"), addr).unwrap();
        d.ok(&format!("vm config filesystem {}", fs.display()));
        d.ok(&format!("vm config net {vlan}"));
        d.ok(&format!("vm launch container {name}"));
        fss.push(fs);
    }
    // A KVM guest in VLAN 100 too, pinging container a.
    let (kernel, _) = common::guest::guest();
    let initrd = common::guest::ping_initrd(&scratch.path);
    d.ok("clear vm config");
    d.ok("vm config memory 256");
    d.ok(&format!("vm config kernel {}", kernel.display()));
    d.ok(&format!("vm config initrd {}", initrd.display()));
    d.ok("vm config serial-ports 1");
    d.ok("vm config net 100");
    d.ok("vm config append console=ttyS0 mm.ip=10.9.0.4/24 mm.ping=10.9.0.1");
    d.ok("vm launch kvm g");
    d.ok("vm start all");
    // A capture on a container's NIC (its veth on the switch).
    d.ok("capture pcap vm a 0 a.pcap");
    let g = vm_info(d).into_iter().find(|r| r["name"] == "g").unwrap()["id"].clone();
    let serial = d.base.join(&g).join("serial0.log");
    wait_for("the guest to ping container a", common::guest::BOOT, || {
        std::fs::read_to_string(&serial)
            .ok()?
            .contains("MM-PING 10.9.0.1 ok")
            .then_some(())
    });
    let exec = |vm: &str, cmd: &str| {
        let ns = format!("minimega-{}", netns_suffix(d, vm));
        Command::new("ip")
            .args(["netns", "exec", &ns, "sh", "-c", cmd])
            .status()
            .unwrap()
            .success()
    };
    wait_for("a to reach b in VLAN 100", SEEN, || {
        exec("a", "ping -c 1 -W 1 10.9.0.2").then_some(())
    });
    assert!(
        !exec("a", "ping -c 2 -W 1 10.9.0.3"),
        "VLAN 100 reached VLAN 200"
    );
    assert!(
        exec("b", "ping -c 1 -W 2 10.9.0.4"),
        "b cannot reach the KVM guest"
    );
    assert!(
        !exec("c", "ping -c 2 -W 1 10.9.0.4"),
        "VLAN 200 reached the guest"
    );
    let pcap = d.base.join("files/a.pcap");
    wait_for("a's frames in the capture", SEEN, || {
        // The pcap header (24 bytes), then records of 16 + the frame.
        (std::fs::metadata(&pcap).ok()?.len() > 24 + 16 + 60).then_some(())
    });
    d.ok("capture pcap delete vm a");
    d.ok("vm kill all");
    wait_for("QUIT", SEEN, || {
        vm_info(d)
            .iter()
            .all(|r| r["state"] == "QUIT")
            .then_some(())
    });
    assert!(netns_of(d).is_empty());
    assert!(site.devices().is_empty(), "{:?}", site.devices());
}

/// The `<tag>-<id>` part of a container's network namespace name.
fn netns_suffix(d: &Daemon, vm: &str) -> String {
    let id = vm_info(d).into_iter().find(|r| r["name"] == vm).unwrap()["id"].clone();
    netns_of(d)
        .into_iter()
        .find(|n| n.ends_with(&format!("-{id}")))
        .and_then(|n| n.strip_prefix("minimega-").map(String::from))
        .unwrap()
}
