//! What minimega does to running VMs beside their lifecycle, on real TCG
//! guests: USB drives plugged in and out over QMP (the guest's kernel sees
//! them come and go), `vm top`, and a running state saved to files
//! (`vm save`, `vm migrate`) that a new VM starts from (`vm config state`).
//! Needs qemu-img and cpio (scripts/deps.sh).

mod common;

use common::guest::*;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const SEEN: Duration = Duration::from_secs(180);

fn qemu_img(args: &[&str]) -> String {
    let o = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img");
    assert!(o.status.success(), "qemu-img {args:?}: {}", stderr(&o));
    stdout(&o)
}

fn serial(base: &Path, id: &str) -> String {
    std::fs::read_to_string(base.join(id).join("serial0.log")).unwrap_or_default()
}

fn wait_serial(base: &Path, id: &str, what: &str) {
    wait_for(&format!("`{what}` on vm {id}'s console"), SEEN, || {
        serial(base, id).contains(what).then_some(())
    });
}

/// Boots one guest named `name` and returns its id once it is up.
fn boot(d: &Daemon, name: &str) -> String {
    d.ok(&format!("vm launch kvm {name}"));
    d.ok(&format!("vm start {name}"));
    let id = vm_info(d)
        .into_iter()
        .find(|r| r["name"] == name)
        .map(|r| r["id"].clone())
        .unwrap();
    wait_for("the guest to boot", BOOT, || {
        marker_seen(&d.base, &id).then_some(())
    });
    id
}

/// A command's CSV rows without header or host.
fn csv(d: &Daemon, cmd: &str) -> Vec<String> {
    d.ok(&format!(".annotate false .csv true .headers false {cmd}"))
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn usb_drives_plug_in_and_out_of_a_running_guest() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let _guard = VmGuard {
        base: d.base.clone(),
    };
    let base = d.base.clone();
    configure_guest(&d, "console=ttyS0");
    let id = boot(&d, "g1");
    let pid = vm_info(&d)[0]["pid"].clone();
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        cmdline.contains("qemu-xhci,id=xhci"),
        "every VM has the USB buses"
    );

    let raw = d.scratch.path.join("usb1.img");
    let qcow = d.scratch.path.join("usb2.qcow2");
    qemu_img(&["create", "-q", "-f", "raw", raw.to_str().unwrap(), "8M"]);
    qemu_img(&["create", "-q", "-f", "qcow2", qcow.to_str().unwrap(), "16M"]);

    d.ok(&format!("vm hotplug add g1 {}", raw.display()));
    wait_serial(&base, &id, "[sda] 16384 512-byte logical blocks");
    assert!(
        serial(&base, &id).contains("using uhci_hcd"),
        "1.1 is the UHCI bus"
    );
    d.ok(&format!(
        "vm hotplug add g1 {} serial mmtest42 2.0",
        qcow.display()
    ));
    wait_serial(&base, &id, "SerialNumber: mmtest42");
    wait_serial(&base, &id, "[sdb] 32768 512-byte logical blocks");
    assert!(
        serial(&base, &id).contains("using xhci_hcd"),
        "2.0 is the xHCI bus"
    );
    assert_eq!(
        csv(&d, "vm hotplug"),
        [
            format!("g1,0,{},1.1", raw.display()),
            format!("g1,1,{},2.0", qcow.display())
        ]
    );
    assert_eq!(csv(&d, "vm hotplug show g1").len(), 2);

    // Refusals: nothing is plugged in, the table is unchanged.
    assert_eq!(
        fails(&d, "vm hotplug add g1 /nonexistent.img"),
        "E: /nonexistent.img: no such file"
    );
    assert_eq!(
        fails(&d, &format!("vm hotplug add g1 {} 4.0", raw.display())),
        "E: invalid version: `4.0`"
    );
    // QEMU refuses an image already in use: no block node is left.
    let e = fails(&d, &format!("vm hotplug add g1 {}", raw.display()));
    assert!(e.starts_with("E: vm g1: hotplug: "), "{e}");
    let nodes = d.ok(r#"vm qmp g1 '{"execute": "query-named-block-nodes"}'"#);
    assert!(!nodes.contains("hotplug2"), "{nodes}");
    assert_eq!(
        fails(&d, "vm hotplug remove g1 7"),
        "E: no such hotplug device"
    );
    assert_eq!(fails(&d, "vm hotplug remove g1 x"), "E: invalid disk: `x`");
    assert_eq!(csv(&d, "vm hotplug").len(), 2);

    // vm top: the guest's QEMU, with memory, CPU and its time.
    let top = csv(&d, "vm top");
    assert_eq!(top.len(), 1, "{top:?}");
    let f: Vec<&str> = top[0].split(',').collect();
    assert_eq!(
        (f[0], f[7], f[8], f[9]),
        ("g1", "1", "0.00", "0.00"),
        "{top:?}"
    );
    assert!(f[2].parse::<u64>().unwrap() > 10, "resident MB: {top:?}");
    assert!(f[4].parse::<f64>().unwrap() >= 0.0, "{top:?}");
    assert!(f[6].ends_with('s'), "{top:?}");
    assert_eq!(
        d.ok(".annotate false .columns name,procs vm top 0"),
        "name | procs\ng1   | 1"
    );

    d.ok("vm hotplug remove g1 0");
    wait_serial(&base, &id, "USB disconnect");
    assert_eq!(
        csv(&d, "vm hotplug"),
        [format!("g1,1,{},2.0", qcow.display())]
    );
    d.ok("vm hotplug remove g1 all");
    wait_for("the second disconnect", SEEN, || {
        (serial(&base, &id).matches("USB disconnect").count() == 2).then_some(())
    });
    assert!(csv(&d, "vm hotplug").is_empty());
    assert!(!base.join(&id).join("hotplug.json").exists());
    assert_eq!(
        fails(&d, "vm hotplug remove g1 all"),
        "E: no hotplug devices to remove"
    );
    // A drive goes with its QEMU.
    d.ok(&format!("vm hotplug add g1 {}", raw.display()));
    d.ok("vm kill g1");
    assert!(csv(&d, "vm hotplug").is_empty());
    assert!(fails(&d, &format!("vm hotplug add g1 {}", raw.display())).contains("not running"));
    d.ok("vm flush");
}

/// The test guest, plus a script that prints a numbered tick on the
/// console every second: a guest restored from a saved state goes on
/// counting where it was, one booted afresh would start again at 0.
fn ticking_initrd(dir: &Path) -> PathBuf {
    let (_, initrd) = guest();
    // Through the kernel's console, which polls the UART: a line the
    // guest writes to /dev/ttyS0 itself waits for a transmit interrupt,
    // and one lost across a save and restore stalls its output for good.
    let root = dir.join("tick-root");
    std::fs::create_dir_all(root.join("etc/guest.d")).unwrap();
    std::fs::write(
        root.join("etc/guest.d/tick.sh"),
        "(n=0; while true; do echo \"MM-TICK $n\" >/dev/kmsg; n=$((n + 1)); sleep 1; done) &\n",
    )
    .unwrap();
    let extra = dir.join("tick.cpio.gz");
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd {} && find . | cpio -o -H newc --quiet | gzip > {}",
            root.display(),
            extra.display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "cpio: {}", stderr(&o));
    let out = dir.join("tick-initrd.img");
    let mut img = std::fs::read(initrd).unwrap();
    img.extend(std::fs::read(&extra).unwrap());
    std::fs::write(&out, img).unwrap();
    out
}

fn ticks(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|l| l.split_once("MM-TICK ").map(|(_, n)| n))
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

#[test]
fn a_saved_state_starts_a_new_vm_where_the_old_one_was() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let _guard = VmGuard {
        base: d.base.clone(),
    };
    let base = d.base.clone();
    let files = base.join("files");
    configure_guest(&d, "console=ttyS0");
    d.ok(&format!(
        "vm config initrd {}",
        ticking_initrd(&d.scratch.path).display()
    ));
    let image = d.scratch.path.join("base.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        image.to_str().unwrap(),
        "32M",
    ]);
    d.ok(&format!("vm config disk {}", image.display()));

    let a = boot(&d, "a");
    wait_for("ticks from a", SEEN, || {
        (ticks(&serial(&base, &a)).len() >= 2).then_some(())
    });

    // vm migrate: as in minimega 3.1.0, `vm save` by another name: the
    // state to NAME.state and the disk to NAME.hdd (phenix moves both);
    // the VM is paused once they are written.
    d.ok("vm migrate a again");
    wait_for("the migration to complete", SEEN, || {
        (csv(&d, "vm migrate") == [format!("{a},a,completed,100.00")]).then_some(())
    });
    wait_for("a paused by its migration", SEEN, || {
        (vm_info(&d)[0]["state"] == "PAUSED").then_some(())
    });
    assert!(std::fs::metadata(files.join("again.state")).unwrap().len() > 1 << 20);
    assert!(
        files.join("again.hdd").is_file(),
        "the disk beside the state"
    );
    let e = fails(&d, "vm migrate a twice");
    assert!(e.contains("previous migration"), "QEMU's reason: {e}");
    assert!(
        !files.join("twice.hdd").exists(),
        "a failed save leaves no disk behind"
    );
    // It runs on when started again.
    let paused_at = *ticks(&serial(&base, &a)).last().unwrap();
    d.ok("vm start a");
    wait_for("a ticking again", SEEN, || {
        (*ticks(&serial(&base, &a)).last().unwrap() > paused_at + 1).then_some(())
    });

    // vm save: the disk (the VM's changes over its image) and the state.
    d.ok("vm save a");
    wait_for("the save to complete", SEEN, || {
        (csv(&d, "vm save") == [format!("{a},a,completed,100.00")]).then_some(())
    });
    assert_eq!(csv(&d, "vm migrate"), csv(&d, "vm save"));
    wait_for("a paused by its migration", SEEN, || {
        (vm_info(&d)[0]["state"] == "PAUSED").then_some(())
    });
    let hdd = files.join("saved/a.hdd");
    let state = files.join("saved/a.state");
    let info: Value = serde_json::from_str(&qemu_img(&[
        "info",
        "--output=json",
        "-U",
        hdd.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["backing-filename"], image.to_str().unwrap());
    assert!(std::fs::metadata(&state).unwrap().len() > 1 << 20);
    let last = *ticks(&serial(&base, &a)).last().unwrap();
    d.ok("vm kill a");
    assert!(
        csv(&d, "vm migrate").is_empty(),
        "a QUIT VM has no migration"
    );

    // A state file that is not there is refused before anything is made.
    d.ok("vm config state nosuch.state");
    assert_eq!(
        fails(&d, "vm launch kvm x"),
        format!(
            "E: state {}: no such file",
            files.join("nosuch.state").display()
        )
    );
    assert_eq!(vm_info(&d).len(), 1);

    // A new VM from the saved state and disk counts on from where a was.
    d.ok("vm config state saved/a.state");
    assert_eq!(d.ok("vm config state"), state.to_str().unwrap());
    d.ok("vm config disk saved/a.hdd");
    d.ok("vm launch kvm b");
    d.ok("vm start b");
    let b = vm_info(&d)[1]["id"].clone();
    wait_for("ticks from b", SEEN, || {
        (!ticks(&serial(&base, &b)).is_empty()).then_some(())
    });
    let log = serial(&base, &b);
    assert!(
        !log.contains("Linux version") && !log.contains("MINIMEGA-GUEST-UP"),
        "b booted afresh:\n{log}"
    );
    let first = ticks(&log)[0];
    assert!(first >= last, "b's first tick {first}, a's last {last}");
    assert_eq!(vm_info(&d)[1]["state"], "RUNNING");
    d.ok("vm kill all");
    d.ok("vm flush");
}
