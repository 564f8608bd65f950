//! VMs on one node without systemd (the cgroups-rs path): real QEMU under
//! TCG booting the project's test guest, a real daemon on a private bus,
//! real cgroups. Needs qemu-system-x86, busybox-static and cpio
//! (scripts/deps.sh); the guest is built by scripts/build-guest.sh.

mod common;

use common::guest::*;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    wait_for("the marker on every serial console", BOOT, || {
        ids.iter().all(|id| marker_seen(&base, id)).then_some(())
    });
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
    // QEMU refusing a device dies after it opened its QMP socket, in the
    // middle of the handshake: its own words still reach the user.
    d.ok("vm config qemu-append -device no-such-device");
    let e = fails(&d, "vm launch kvm bad");
    assert!(
        e.contains("qemu exited at once")
            && e.contains("'no-such-device' is not a valid device model name"),
        "{e}"
    );
    nothing_left("qemu refusing a device");
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
fn launches_the_node_cannot_hold_are_refused_up_front() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let _guard = VmGuard {
        base: d.base.clone(),
    };
    let nothing_started = |what: &str| {
        assert!(
            vm_dirs(&d.base).is_empty(),
            "{what}: {:?}",
            vm_dirs(&d.base)
        );
        assert!(qemus_under(&d.base).is_empty(), "{what}: a qemu started");
        assert_eq!(d.ok("vm info"), "", "{what}");
    };
    // The default 2048 MiB, a hundred thousand times.
    let e = fails(&d, "vm launch kvm 100000");
    assert!(
        e.starts_with("E: 100000 more VMs is more than this node can hold: at most "),
        "{e}"
    );
    nothing_started("100000 VMs");

    let host =
        d.ok(".annotate false .headers false .csv true .columns memtotal,memcommit,memlimit host");
    let f: Vec<u64> = host.split(',').map(|v| v.parse().unwrap()).collect();
    assert_eq!(f[1], 0);
    assert_eq!(f[2], f[0] * 3 / 2, "memlimit is memtotal x 1.5");
    // A hundred VMs that together need just more than memlimit.
    let memory = f[2] / 100 + 1;
    d.ok(&format!("vm config memory {memory}"));
    let e = fails(&d, "vm launch kvm big[1-100]");
    assert_eq!(
        e,
        format!(
            "E: not enough memory: 100 VMs need {} MiB, and this node can commit {} MiB more (memlimit {} MiB, memcommit 0 MiB; see -overcommit)",
            memory * 100,
            f[2],
            f[2]
        )
    );
    nothing_started("past memlimit");

    // What fits is launched and committed.
    d.ok("vm config memory 64");
    d.ok("vm launch kvm 2");
    assert_eq!(
        d.ok(".annotate false .headers false .columns memcommit host"),
        "128"
    );
    d.ok("vm kill all");
    d.ok("vm flush");

    // The ratio is the operator's.
    let tight = Daemon::start_with(
        &bus,
        DaemonOpts {
            name: "tight",
            extra: vec!["-overcommit".into(), "0.01".into()],
            ..DaemonOpts::default()
        },
    );
    let limit = tight.ok(".annotate false .headers false .columns memlimit host");
    assert_eq!(limit, (f[0] / 100).to_string());
    tight.ok(&format!("vm config memory {}", f[0] / 100 + 1));
    assert!(fails(&tight, "vm launch kvm 1").starts_with("E: not enough memory"));
    assert!(vm_dirs(&tight.base).is_empty());
}

/// Field 22 of /proc/<pid>/stat: the start time a record keeps.
fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

#[test]
fn a_forged_record_kills_and_removes_nothing() {
    let bus = Bus::start();
    for recover in ["true", "false"] {
        let s = Scratch::new("forged");
        let base = s.path.join("base");
        std::fs::create_dir(&base).unwrap();
        set_mode(&base, 0o700);
        // Somebody's process, and somebody's cgroup.
        let mut victim = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .unwrap();
        let pid = victim.id();
        let hierarchy = ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.join("cgroup.procs").exists())
            .unwrap();
        let cgroup = hierarchy.join(format!("mm-forged-{}-{recover}", std::process::id()));
        std::fs::create_dir(&cgroup).unwrap();
        // One record names the process without a start time, the other
        // with its true one; both claim a running VM, a cgroup and a unit.
        let forge = |id: u64, start: Option<u64>| {
            let dir = base.join(id.to_string());
            std::fs::create_dir(&dir).unwrap();
            let rec = serde_json::json!({
                "id": id, "name": format!("forged{id}"), "namespace": "minimega",
                "uuid": "9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc", "config": {},
                "state": "RUNNING", "pid": pid, "pid_start": start,
                "placed": {"unit": "sshd.service", "cgroups": [cgroup]},
            });
            std::fs::write(dir.join("state.json"), rec.to_string()).unwrap();
            dir
        };
        let dirs = [forge(5, None), forge(6, Some(start_time(pid)))];
        let d = Daemon::start_with(
            &bus,
            DaemonOpts {
                base: Some(base.clone()),
                extra: vec![format!("-recover={recover}")],
                ..DaemonOpts::default()
            },
        );
        let rows = vm_info(&d);
        assert_eq!(
            column(&rows, "name"),
            ["forged5", "forged6"],
            "-recover={recover}"
        );
        assert_eq!(column(&rows, "state"), ["ERROR", "ERROR"]);
        // minimega prints a VM without a process as pid 0.
        assert_eq!(column(&rows, "pid"), ["0", "0"], "no process is theirs");
        d.ok("vm kill all");
        assert!(fails(&d, "vm start forged5").contains("ERROR"));
        assert!(
            victim.try_wait().unwrap().is_none(),
            "-recover={recover} killed it"
        );
        assert!(cgroup.is_dir(), "-recover={recover} removed the cgroup");
        assert!(dirs.iter().all(|d| d.join("state.json").is_file()));
        assert!(d
            .log_text()
            .contains("cannot prove the record's process is its QEMU"));
        // Flushing is the user's word: the folders go, the process stays.
        d.ok("vm flush");
        assert!(vm_dirs(&base).is_empty());
        assert!(victim.try_wait().unwrap().is_none());
        let _ = victim.kill();
        let _ = victim.wait();
        std::fs::remove_dir(&cgroup).unwrap();
    }
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
    // Targets as for vm start: `all` changes every VM's disc, as minimega's
    // own test script does.
    d.ok(&format!("vm cdrom change all {}", iso.display()));
    for vm in vm_info(&d) {
        assert_eq!(vm["cdrom"], iso.to_string_lossy(), "{vm:?}");
    }
    d.ok("vm cdrom eject all");
    for vm in vm_info(&d) {
        assert_eq!(vm["cdrom"], "", "{vm:?}");
    }

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
