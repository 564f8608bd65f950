//! Faults lose nothing and are never reported as success, on real parts:
//! a base directory on a small tmpfs filled up (each command that would
//! change state answers an error naming the cause, and after space is
//! freed and the daemon restarted every VM is adopted as it was); the
//! daemon killed (SIGKILL, by its own fault switch: `minimega-faults`) at
//! each point of a 30-VM launch with NICs, then restarted: nothing
//! orphaned, and after `vm kill all; vm flush` nothing left (no tap, no
//! switch port, no QEMU, no cgroup, no folder); a failed NIC launch that
//! leaves the switch's batcher waiting for nobody; a record-less QEMU
//! adopted from its command line. D-Bus bounds are in `faults_front.rs`.

mod common;

use common::guest::*;
use common::ovs::Site;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const FAULTS_BIN: &str = env!("CARGO_BIN_EXE_minimega-faults");

/// A tmpfs of `mib` MiB, mode 0700 (a base directory must be ours alone),
/// mounted at `dir` and unmounted on drop, after what runs from it.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, mib: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        netns::sh(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &format!("size={mib}m,mode=0700"),
            "tmpfs",
            dir.to_str().unwrap(),
        ]);
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }

    /// Fills it to the last byte; returns the filler to remove later.
    fn fill(&self) -> PathBuf {
        let filler = self.dir.join("filler");
        // dd stops at ENOSPC, which is the point.
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", filler.display()))
            .output()
            .unwrap();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Every file under `dir` whose name ends in `.tmp`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(p);
            } else if p.to_string_lossy().ends_with(".tmp") {
                out.push(p);
            }
        }
    }
    out
}

fn by_name(
    d: &Daemon,
) -> std::collections::BTreeMap<String, std::collections::HashMap<String, String>> {
    vm_info(d)
        .into_iter()
        .map(|r| (r["name"].clone(), r))
        .collect()
}

#[test]
fn a_full_disk_fails_each_change_with_its_cause_and_loses_nothing() {
    let site = Site::new("faults-full");
    let bus = Bus::start();
    let base = site.scratch.path.join("base");
    let disk = Tmpfs::mount(&base, 4);
    let mut d = site.daemon(&bus, Some(base.clone()));
    let _guard = VmGuard { base: base.clone() };

    d.ok("vm config memory 64");
    d.ok("vm config net 100");
    d.ok("vm launch kvm a[1-3]");
    d.ok("vm start a1");
    d.ok("vm tag a2 color red");
    d.ok("vlans add KEEP 300");
    d.ok("cc prefix before");
    let taps_before = site.devices();
    assert_eq!(taps_before.len(), 3, "{taps_before:?}");

    let filler = disk.fill();
    let full = "no space left on device while saving";

    // A launch: each VM's record cannot be written, so none exists, nor
    // anything made for it.
    let e = fails(&d, "vm launch kvm b[1-5]");
    assert!(
        e.contains("no space left on device while saving VM b1's state"),
        "{e}"
    );
    assert_eq!(
        by_name(&d).keys().cloned().collect::<Vec<_>>(),
        ["a1", "a2", "a3"]
    );
    assert_eq!(site.devices(), taps_before, "taps of the failed launch");
    assert_eq!(site.ports("mega_bridge").len(), 3);
    assert_eq!(qemus_under(&base).len(), 3, "QEMUs of the failed launch");

    // Tags, a state change, VLAN aliases (typed or allocated by `vm config
    // net`), cc: each fails naming the cause, and is not made.
    let e = fails(&d, "vm tag a1 color blue");
    assert!(e.contains(&format!("{full} VM a1's state")), "{e}");
    assert_eq!(by_name(&d)["a1"]["tags"], "{}");
    let e = fails(&d, "vm stop a1");
    assert!(e.contains(&format!("{full} VM a1's state")), "{e}");
    assert_eq!(by_name(&d)["a1"]["state"], "RUNNING");
    let e = fails(&d, "vlans add LOST 301");
    assert!(e.contains(&format!("{full} networks.json")), "{e}");
    assert!(!d.ok("vlans").contains("LOST"));
    let e = fails(&d, "vm config net DMZ");
    assert!(e.contains(&format!("{full} networks.json")), "{e}");
    assert!(!d.ok("vlans").contains("DMZ"));
    let e = fails(&d, "cc prefix after");
    assert!(
        e.contains(&format!("{full} the cc state of namespace minimega")),
        "{e}"
    );
    assert_eq!(d.ok("cc prefix"), "before");
    let e = fails(&d, "cc exec hostname");
    assert!(e.contains(full), "{e}");
    assert!(!d.ok("cc commands").contains("hostname"));
    // No write left its temporary file behind.
    assert_eq!(temp_files(&base), Vec::<PathBuf>::new());

    // Space again, and a crash: every VM is adopted as it was.
    std::fs::remove_file(&filler).unwrap();
    d.crash();
    let d = site.daemon(&bus, Some(base.clone()));
    let vms = by_name(&d);
    assert_eq!(vms.keys().cloned().collect::<Vec<_>>(), ["a1", "a2", "a3"]);
    assert_eq!(vms["a1"]["state"], "RUNNING");
    assert_eq!(vms["a2"]["state"], "BUILDING");
    assert_eq!(vms["a2"]["tags"], r#"{"color":"red"}"#);
    assert_eq!(qemus_under(&base).len(), 3);
    assert_eq!(site.devices(), taps_before);
    assert_eq!(d.ok("cc prefix"), "before");
    assert!(d.ok("vlans").contains("KEEP"));
    assert!(d.log_text().contains("previous VMs: 3 adopted running"));

    d.ok("vm kill all");
    d.ok("vm flush");
    assert!(site.devices().is_empty());
    assert!(site.ports("mega_bridge").is_empty());
    drop(d);
}

/// Cgroups a daemon with base `base` made, anywhere under /sys/fs/cgroup.
fn cgroups_of(base: &Path) -> Vec<String> {
    let tag = minimega::base::tag(base);
    let out = Command::new("find")
        .args(["/sys/fs/cgroup", "-maxdepth", "8", "-type", "d", "-name"])
        .arg(format!("{tag}-*"))
        .output()
        .unwrap();
    stdout(&out).lines().map(String::from).collect()
}

#[test]
fn a_crash_at_any_point_of_a_launch_orphans_and_leaks_nothing() {
    let site = Site::new("faults-crash");
    let bus = Bus::start();
    // Where the daemon dies: (point, which VM's pass of it).
    let points = [
        ("launch.recorded", 7),
        ("launch.taps", 12),
        ("launch.ports", 3),
        ("launch.spawned", 20),
        ("launch.placed", 25),
    ];
    for (n, (point, pass)) in points.into_iter().enumerate() {
        let base = site.scratch.path.join(format!("base{n}"));
        let _guard = VmGuard { base: base.clone() };
        let what = format!("killed at {point} (pass {pass})");
        let mut d = Daemon::start_with(
            &bus,
            DaemonOpts {
                netns: Some(site.netns.clone()),
                env: [
                    site.ovs().env(),
                    vec![("MINIMEGA_FAULT".into(), format!("abort:{point}:{pass}"))],
                ]
                .concat(),
                base: Some(base.clone()),
                ready_within: Duration::from_secs(60),
                bin: FAULTS_BIN,
                ..DaemonOpts::default()
            },
        );
        d.ok("vm config memory 64");
        d.ok("vm config net 100");
        let out = d.e("vm launch kvm 30");
        assert!(!out.status.success(), "{what}: the launch answered success");
        d.wait_dead(Duration::from_secs(300));
        assert!(
            d.log_text()
                .contains(&format!("killing the daemon at {point}")),
            "{what}: {}",
            d.log_text()
        );
        drop(d);

        let d = site.daemon(&bus, Some(base.clone()));
        // Nothing orphaned: every QEMU is a VM the daemon knows, running;
        // every tap and port is one of theirs.
        let rows = vm_info(&d);
        let live: Vec<&std::collections::HashMap<String, String>> =
            rows.iter().filter(|r| r["state"] != "QUIT").collect();
        assert_eq!(qemus_under(&base).len(), live.len(), "{what}: {rows:?}");
        let mut taps: Vec<String> = live
            .iter()
            .map(|r| r["tap"].trim_matches(['[', ']']).to_string())
            .collect();
        taps.sort();
        let mut devices = site.devices();
        devices.sort();
        assert_eq!(devices, taps, "{what}: taps");
        let mut ports = site.ports("mega_bridge");
        ports.sort();
        assert_eq!(ports, taps, "{what}: switch ports");

        d.ok("vm kill all");
        d.ok("vm flush");
        assert_eq!(d.ok("vm info"), "", "{what}");
        assert!(site.devices().is_empty(), "{what}: {:?}", site.devices());
        assert!(
            site.ports("mega_bridge").is_empty(),
            "{what}: {:?}",
            site.ports("mega_bridge")
        );
        assert!(qemus_under(&base).is_empty(), "{what}");
        assert!(vm_dirs(&base).is_empty(), "{what}: {:?}", vm_dirs(&base));
        assert_eq!(cgroups_of(&base), Vec::<String>::new(), "{what}");
        assert_eq!(temp_files(&base), Vec::<PathBuf>::new(), "{what}");
    }
}

#[test]
fn a_failed_nic_launch_leaves_the_switch_waiting_for_nobody() {
    let site = Site::new("faults-wait");
    let bus = Bus::start();
    let d = site.daemon(&bus, None);
    let _guard = VmGuard {
        base: d.base.clone(),
    };
    d.ok("vm config memory 64");
    d.ok("vm config net 100");
    d.ok("vm launch kvm a1");
    // A launch that fails after the networks announced its VMs: its
    // kernel is gone by the time the checks look.
    let kernel = d.scratch.path.join("kernel");
    std::fs::write(&kernel, "not a kernel").unwrap();
    d.ok(&format!("vm config kernel {}", kernel.display()));
    std::fs::remove_file(&kernel).unwrap();
    let e = fails(&d, "vm launch kvm b[1-4]");
    assert!(e.contains("no such file"), "{e}");
    d.ok("clear vm config kernel");
    // The next launches' batches wait for nobody: each says so, and the
    // batcher never gave up waiting on VMs that were not coming.
    d.ok("vm launch kvm a[2-3]");
    d.ok("vm launch kvm a4");
    let log = d.log_text();
    let batches: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("switch: one transaction"))
        .collect();
    assert!(batches.len() >= 3, "{log}");
    for b in &batches {
        assert!(b.contains("(0 announced VMs still awaited)"), "{b}");
    }
    assert!(!log.contains("gave up waiting"), "{log}");
    assert_eq!(site.devices().len(), 4);
    d.ok("vm kill all");
    d.ok("vm flush");
    assert!(site.devices().is_empty());
}

#[test]
fn a_qemu_whose_record_is_gone_is_adopted_not_killed() {
    let bus = Bus::start();
    let mut d = Daemon::start(&bus);
    let base = d.base.clone();
    let _guard = VmGuard { base: base.clone() };
    d.ok("vm config memory 64");
    d.ok("vm launch kvm keep,lost");
    let lost = by_name(&d)["lost"]["id"].clone();
    d.crash();
    std::fs::remove_file(base.join(&lost).join("state.json")).unwrap();
    let pids = qemus_under(&base);
    assert_eq!(pids.len(), 2);

    let d = Daemon::start_with(
        &bus,
        DaemonOpts {
            base: Some(base.clone()),
            ..DaemonOpts::default()
        },
    );
    let vms = by_name(&d);
    assert_eq!(vms.keys().cloned().collect::<Vec<_>>(), ["keep", "lost"]);
    assert_eq!(vms["lost"]["state"], "BUILDING");
    assert_eq!(vms["lost"]["memory"], "64");
    let mut now = qemus_under(&base);
    now.sort();
    let mut before = pids;
    before.sort();
    assert_eq!(now, before, "no QEMU was killed");
    assert!(d.log_text().contains("rebuilt from its command line"));
    // It is managed like any other: killed and flushed.
    d.ok("vm kill lost");
    d.ok("vm flush");
    assert_eq!(qemus_under(&base).len(), 1);
    assert_eq!(vm_dirs(&base), [by_name(&d)["keep"]["id"].clone()]);
    d.ok("vm kill all");
    d.ok("vm flush");
}
