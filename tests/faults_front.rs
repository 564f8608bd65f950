//! The front doors under abuse and races, on a real daemon: a 5 MiB line
//! over D-Bus is refused at once with bounded memory and a short answer
//! (as the socket refuses it); an error about a long line quotes only its
//! start; `vm start` racing `vm flush` of the same VM says the VM was
//! flushed, never that QEMU's binary is missing; two launches racing for
//! one name get one message, whichever check finds it.

mod common;

use common::guest::*;
use common::*;
use std::time::Duration;

/// `Exec` of `line` over the bus, as any client sends it: (text, hosts,
/// json).
fn exec(bus: &str, line: &str) -> (String, Vec<(String, String, String)>, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let bus = minimega::config::Bus::Address(bus.to_string());
        let c = minimega::dbus::client::Client::connect(&bus).await.unwrap();
        let r = c.exec(line).await.unwrap();
        (r.text, r.hosts, r.json)
    })
}

#[test]
fn a_huge_dbus_line_is_refused_at_once_with_bounded_memory() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    // Warm: the first Exec sets up a session and the engine's caches.
    exec(&bus.address, "version");
    let before = proc_kib(d.pid(), "VmRSS");
    let line = format!("vm launch kvm {}", "x".repeat(5 << 20));
    let (text, hosts, json) = exec(&bus.address, &line);
    assert!(
        text.contains("command line of 5242894 bytes is longer than the limit of 1048576 bytes"),
        "{}",
        &text[..text.len().min(300)]
    );
    // One short answer: the line is quoted by its first bytes only, in
    // each of the three places an answer carries it.
    assert!(text.len() < 400, "{} bytes of text", text.len());
    assert!(json.len() < 1000, "{} bytes of JSON", json.len());
    assert!(hosts.iter().all(|h| h.2.len() < 400));
    // Bounded memory: the message itself passes through (zbus reads it
    // whole), nothing proportional to it stays. 5 MiB of line once cost
    // three copies in the answer alone.
    let after = proc_kib(d.pid(), "VmRSS");
    assert!(
        after < before + 16 * 1024,
        "RSS {before} KiB before, {after} KiB after a 5 MiB line"
    );
    // The session goes on.
    assert!(exec(&bus.address, "version").0.contains("minimega"));

    // Under the limit, an error about a long line quotes only its start.
    let long = format!("frobnicate {}", "y".repeat(200_000));
    let (text, _, _) = exec(&bus.address, &long);
    assert!(
        text.starts_with("E: no such command: `frobnicate` ") || text.contains("frobnicate"),
        "{}",
        &text[..text.len().min(300)]
    );
    assert!(text.len() < 400, "{} bytes", text.len());
    let (text, _, _) = exec(&bus.address, &format!("vm info {}", "z".repeat(200_000)));
    assert!(text.len() < 1000, "{} bytes", text.len());
}

#[test]
fn start_racing_flush_says_the_vm_was_flushed() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let _guard = VmGuard {
        base: d.base.clone(),
    };
    d.ok("vm config memory 64");
    for round in 0..8 {
        d.ok(&format!("vm launch kvm r{round}"));
        d.ok(&format!("vm kill r{round}"));
        let (start, flush) = std::thread::scope(|s| {
            let a = s.spawn(|| d.e(&format!("vm start r{round}")));
            let b = s.spawn(|| d.e(&format!("vm flush r{round}")));
            (a.join().unwrap(), b.join().unwrap())
        });
        let said = stdout(&start);
        assert!(
            start.status.success()
                || said == format!("E: vm r{round} was flushed")
                || said == format!("E: vm not found: r{round}"),
            "round {round}: {said}"
        );
        assert!(!said.contains("cannot run"), "{said}");
        assert!(flush.status.success(), "{}", stdout(&flush));
        d.ok("vm kill all");
        d.ok("vm flush");
    }
    wait_for("no QEMU left", Duration::from_secs(30), || {
        qemus_under(&d.base).is_empty().then_some(())
    });
}

#[test]
fn a_name_taken_by_a_racing_launch_is_one_message() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let _guard = VmGuard {
        base: d.base.clone(),
    };
    d.ok("vm config memory 64");
    for round in 0..6 {
        let name = format!("c{round}");
        let outs: Vec<std::process::Output> = std::thread::scope(|s| {
            let t: Vec<_> = (0..3)
                .map(|_| s.spawn(|| d.e(&format!("vm launch kvm {name}"))))
                .collect();
            t.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let ok = outs.iter().filter(|o| o.status.success()).count();
        assert_eq!(ok, 1, "round {round}");
        for o in outs.iter().filter(|o| !o.status.success()) {
            assert_eq!(
                stdout(o),
                format!("E: vm already exists with name `{name}`"),
                "round {round}"
            );
        }
    }
    assert_eq!(vm_info(&d).len(), 6);
    d.ok("vm kill all");
    d.ok("vm flush");
}
