//! VMs on one node without systemd (the cgroups-rs path): real QEMU under
//! TCG booting the project's test guest, a real daemon on a private bus,
//! real cgroups. Needs qemu-system-x86, busybox-static and cpio
//! (scripts/deps.sh); the guest is built by scripts/build-guest.sh.

mod common;

use common::qemus::{alive, qemus_under};
use common::vms::*;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn configure_guest(d: &Daemon, append: &str) {
    let (kernel, initrd) = guest();
    d.ok("clear vm config");
    d.ok("vm config memory 256");
    d.ok(&format!("vm config kernel {}", kernel.display()));
    d.ok(&format!("vm config initrd {}", initrd.display()));
    d.ok(&format!("vm config append {append}"));
    d.ok("vm config serial-ports 1");
}

fn marker_seen(base: &Path, id: &str) -> bool {
    std::fs::read_to_string(base.join(id).join("serial0.log"))
        .is_ok_and(|s| s.contains("MINIMEGA-GUEST-UP"))
}

#[test]
fn five_guests_boot_survive_restarts_and_clean_up() {
    let bus = Bus::start();
    let mut first = Daemon::start(&bus);
    let _guard = VmGuard {
        base: first.base.clone(),
    };
    let base = first.base.clone();
    let d = &first;
    configure_guest(d, "console=ttyS0");

    d.ok("vm launch kvm guest[1-5]");
    let rows = vm_info(d);
    assert_eq!(
        column(&rows, "name"),
        ["guest1", "guest2", "guest3", "guest4", "guest5"]
    );
    assert!(
        column(&rows, "state").iter().all(|s| s == "BUILDING"),
        "{rows:?}"
    );
    let ids = column(&rows, "id");
    let pids: Vec<u32> = column(&rows, "pid")
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();

    // Each VM has its own cgroup with the limits from its config:
    // 256 MiB guest + QEMU overhead + the TCG translation cache.
    let mut cgroups: Vec<PathBuf> = Vec::new();
    for rec in records(&base) {
        let dirs: Vec<PathBuf> = rec["placed"]["cgroups"]
            .as_array()
            .expect("cgroups recorded")
            .iter()
            .map(|v| PathBuf::from(v.as_str().unwrap()))
            .collect();
        assert!(!dirs.is_empty());
        let pid = rec["pid"].as_u64().unwrap().to_string();
        for dir in &dirs {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
            assert!(
                procs.lines().any(|l| l == pid),
                "{pid} not in {}",
                dir.display()
            );
            if let Ok(limit) = std::fs::read_to_string(dir.join("memory.limit_in_bytes"))
                .or_else(|_| std::fs::read_to_string(dir.join("memory.max")))
            {
                assert_eq!(limit.trim(), ((256u64 + 256 + 256) << 20).to_string());
            }
        }
        cgroups.extend(dirs);
    }

    d.ok("vm start all");
    wait_for(
        "the marker on every serial console",
        Duration::from_secs(240),
        || ids.iter().all(|id| marker_seen(&base, id)).then_some(()),
    );
    let rows = vm_info(d);
    for r in &rows {
        assert_eq!(r["state"], "RUNNING", "{r:?}");
        assert!(r["memused"].parse::<u64>().unwrap() > 0, "{r:?}");
        assert_ne!(r["cputime"], "N/A", "{r:?}");
        assert!(r["unit"].contains("minimega"), "{r:?}");
    }
    let host = d.ok(".columns cpucommit,memcommit,vms,vmsall,accel host");
    assert!(
        host.ends_with("| 5         | 1280      | 5   | 5      | tcg"),
        "{host}"
    );

    // A clean stop and a crash of the daemon leave every VM running, and
    // the next daemon on the same base directory lists the same VMs with
    // the same ids.
    let again = || {
        Daemon::start_with(
            &bus,
            DaemonOpts {
                base: Some(base.clone()),
                ..DaemonOpts::default()
            },
        )
    };
    first.stop();
    assert!(pids.iter().all(|p| alive(*p)));
    let mut d2 = again();
    let after = vm_info(&d2);
    assert_eq!(column(&after, "id"), ids);
    assert_eq!(column(&after, "pid"), column(&rows, "pid"));
    assert!(
        column(&after, "state").iter().all(|s| s == "RUNNING"),
        "{after:?}"
    );
    d2.ok("vm stop guest1");
    d2.crash();
    assert!(pids.iter().all(|p| alive(*p)));
    let d = again();
    let after = vm_info(&d);
    assert_eq!(column(&after, "id"), ids);
    assert_eq!(column(&after, "state")[..2], ["PAUSED", "RUNNING"]);
    assert!(
        d.log_text().contains("5 adopted running"),
        "{}",
        d.log_text()
    );

    // A guest that powers itself off becomes QUIT on its own.
    configure_guest(&d, "console=ttyS0 mm.poweroff");
    d.ok("vm launch kvm off");
    d.ok("vm start off");
    wait_for("the guest to power off", Duration::from_secs(120), || {
        vm_info(&d)
            .iter()
            .any(|r| r["name"] == "off" && r["state"] == "QUIT")
            .then_some(())
    });

    // kill, then flush: no process, no cgroup, no state left.
    d.ok("vm kill all");
    let rows = vm_info(&d);
    assert!(
        column(&rows, "state").iter().all(|s| s == "QUIT"),
        "{rows:?}"
    );
    assert!(pids.iter().all(|p| !alive(*p)));
    assert!(qemus_under(&base).is_empty());
    for c in &cgroups {
        assert!(!c.exists(), "{} is left", c.display());
    }
    d.ok("vm flush");
    assert_eq!(d.ok("vm info"), "");
    assert!(vm_dirs(&base).is_empty(), "{:?}", vm_dirs(&base));
}

#[test]
fn bad_input_is_one_line_and_leaves_nothing_behind() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let _guard = VmGuard {
        base: d.base.clone(),
    };
    let base = d.base.clone();
    let nothing_left = |what: &str| {
        assert!(vm_dirs(&base).is_empty(), "{what}: {:?}", vm_dirs(&base));
        assert!(qemus_under(&base).is_empty(), "{what}: a qemu is left");
        assert_eq!(d.ok("vm info"), "", "{what}");
    };

    d.ok("vm config kernel /nonexistent/vmlinuz");
    assert_eq!(
        fails(&d, "vm launch kvm a"),
        "E: kernel /nonexistent/vmlinuz: no such file"
    );
    nothing_left("missing kernel");
    d.ok("clear vm config");
    d.ok("vm config disk nope.qcow2");
    let e = fails(&d, "vm launch kvm a");
    assert!(
        e.starts_with("E: disk /") && e.ends_with("/files/nope.qcow2: no such file"),
        "{e}"
    );
    nothing_left("missing disk");
    d.ok("clear vm config");

    assert!(
        fails(&d, "vm config frobnicate 1").starts_with("E: unknown vm config field `frobnicate`")
    );
    assert_eq!(
        fails(&d, "vm config memory lots"),
        "E: invalid memory `lots`: not a number"
    );
    assert_eq!(
        fails(&d, "vm config memory 0"),
        "E: invalid memory `0`: must be greater than 0"
    );
    assert_eq!(d.ok("vm config memory"), "2048");
    assert_eq!(
        fails(&d, "vm launch kvm web[3-1]"),
        "E: invalid range `3-1` in `web[3-1]`: 3 is greater than 1"
    );
    assert_eq!(
        fails(&d, "vm launch kvm foo,0"),
        "E: invalid vm name, `0` is an integer"
    );
    assert_eq!(
        fails(&d, "vm launch kvm all"),
        "E: invalid vm name, `all` is a reserved word"
    );
    nothing_left("bad names");

    d.ok("vm config qemu /nonexistent/qemu-system-x86_64");
    assert_eq!(
        fails(&d, "vm launch kvm a"),
        "E: qemu binary `/nonexistent/qemu-system-x86_64` not found"
    );
    nothing_left("missing qemu");
    d.ok("clear vm config qemu");

    d.ok("vm config qemu-append -no-such-option");
    let e = fails(&d, "vm launch kvm bad[1-2]");
    assert!(
        e.contains("qemu exited at once") && e.contains("-no-such-option: invalid option"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    nothing_left("qemu exiting at once");
    d.ok("clear vm config");

    // A paused VM without disk or kernel is valid; its name is then taken.
    d.ok("vm config memory 64");
    d.ok("vm launch kvm a");
    assert_eq!(
        fails(&d, "vm launch kvm a"),
        "E: vm already exists with name `a`"
    );
    d.ok("vm config uuid 9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc");
    assert_eq!(
        fails(&d, "vm launch kvm 2"),
        "E: cannot launch multiple VMs with a pre-configured UUID"
    );
    d.ok("vm launch kvm u1");
    assert_eq!(
        fails(&d, "vm launch kvm u2"),
        "E: vm already exists with UUID `9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc`"
    );
    assert_eq!(vm_info(&d).len(), 2);
    assert_eq!(fails(&d, "vm start nothere"), "E: vm not found: nothere");
    d.ok("vm kill all");
    d.ok("vm flush");
    nothing_left("after flush");
}

#[test]
fn qmp_tags_screenshots_cdrom_and_pause() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let _guard = VmGuard {
        base: d.base.clone(),
    };
    d.ok("vm config memory 64");
    d.ok("vm config tag role web");
    d.ok("vm launch kvm 2");
    let rows = vm_info(&d);
    assert_eq!(column(&rows, "name"), ["vm-0", "vm-1"]);
    assert_eq!(rows[0]["tags"], r#"{"role":"web"}"#);
    assert_eq!(rows[0]["memory"], "64");

    // The D-Bus property counts them.
    let count = std::process::Command::new("busctl")
        .arg(format!("--address={}", bus.address))
        .args([
            "get-property",
            "org.minimega.Minimega1",
            "/org/minimega/Minimega1",
            "org.minimega.Minimega1",
            "VmCount",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&count), "u 2");

    let q = d.ok(r#"vm qmp vm-0 '{"execute": "query-status"}'"#);
    let v: Value = serde_json::from_str(&q).unwrap();
    assert_eq!(v["return"]["status"], "prelaunch", "{q}");
    let q = d.ok(r#"vm qmp 1 '{"execute": "no-such-command"}'"#);
    assert!(q.contains("CommandNotFound"), "{q}");

    d.ok("vm tag vm-1 owner alice");
    assert_eq!(
        d.ok(".annotate false .columns name,value vm tag vm-1 owner"),
        "name | value\nvm-1 | alice"
    );
    d.ok("vm config clone vm-1");
    assert_eq!(d.ok("vm config tag"), "role -> web");
    assert_eq!(d.ok("vm config memory"), "64");

    d.ok("vm start vm-0");
    d.ok("vm stop vm-0");
    assert_eq!(vm_info(&d)[0]["state"], "PAUSED");
    let q = d.ok(r#"vm qmp vm-0 '{"execute": "query-status"}'"#);
    assert!(q.contains("\"paused\""), "{q}");
    // A pause from outside the daemon shows up as well.
    d.ok("vm start vm-0");
    d.ok(r#"vm qmp vm-0 '{"execute": "stop"}'"#);
    wait_for("PAUSED from a QMP event", Duration::from_secs(10), || {
        (vm_info(&d)[0]["state"] == "PAUSED").then_some(())
    });

    let shot = d.scratch.path.join("shot.png");
    d.ok(&format!("vm screenshot vm-0 file {} 100", shot.display()));
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert!(width <= 100 && width > 0, "{width}");

    let iso = d.scratch.path.join("disc.iso");
    std::fs::write(&iso, vec![0u8; 64 * 1024]).unwrap();
    d.ok(&format!("vm cdrom change vm-0 {}", iso.display()));
    assert_eq!(vm_info(&d)[0]["cdrom"], iso.to_string_lossy());
    d.ok("vm cdrom eject vm-0");
    assert_eq!(vm_info(&d)[0]["cdrom"], "");
    assert!(fails(&d, "vm cdrom change vm-0 /nonexistent.iso").contains("no such file"));

    // A QUIT VM starts again with a new QEMU.
    d.ok("vm kill vm-1");
    assert_eq!(vm_info(&d)[1]["state"], "QUIT");
    d.ok("vm start vm-1");
    assert_eq!(vm_info(&d)[1]["state"], "RUNNING");
    d.ok("vm kill all");
    d.ok("vm flush");
    assert_eq!(d.ok("vm info"), "");
}

#[test]
fn dead_vms_become_quit_and_recover_false_forgets_them() {
    let bus = Bus::start();
    let mut first = Daemon::start(&bus);
    let _guard = VmGuard {
        base: first.base.clone(),
    };
    let base = first.base.clone();
    first.ok("vm config memory 64");
    first.ok("vm launch kvm a,b,c");
    let pids: Vec<u32> = column(&vm_info(&first), "pid")
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
    let cgroups: Vec<PathBuf> = records(&base)
        .iter()
        .flat_map(|r| {
            r["placed"]["cgroups"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|v| PathBuf::from(v.as_str().unwrap()))
        .collect();
    assert!(!cgroups.is_empty());

    // b's QEMU dies while no daemon is watching.
    first.stop();
    unsafe { libc::kill(pids[1] as i32, libc::SIGKILL) };
    wait_for("b's qemu to die", Duration::from_secs(10), || {
        (!alive(pids[1])).then_some(())
    });
    let opts = |extra: Vec<String>| DaemonOpts {
        base: Some(base.clone()),
        extra,
        ..DaemonOpts::default()
    };
    let mut second = Daemon::start_with(&bus, opts(Vec::new()));
    let rows = vm_info(&second);
    assert_eq!(column(&rows, "name"), ["a", "b", "c"]);
    assert_eq!(column(&rows, "state"), ["BUILDING", "QUIT", "BUILDING"]);
    assert!(second
        .log_text()
        .contains("2 adopted running, 1 found dead"));

    // -recover=false: the previous VMs are stopped and forgotten, not
    // left running unmanaged.
    second.stop();
    let third = Daemon::start_with(&bus, opts(vec!["-recover=false".into()]));
    assert_eq!(third.ok("vm info"), "");
    assert!(qemus_under(&base).is_empty());
    assert!(vm_dirs(&base).is_empty(), "{:?}", vm_dirs(&base));
    for c in &cgroups {
        assert!(!c.exists(), "{} is left", c.display());
    }
    assert!(third.log_text().contains("-recover=false: stopping"));
    // Ids go on from where the previous instance left them.
    third.ok("vm launch kvm d");
    assert_eq!(column(&vm_info(&third), "id"), ["3"]);
    third.ok("vm kill all");
    third.ok("vm flush");
}
