//! The files directory across three test-bed nodes (real systemd, the
//! daemon as its unit runs it, one private LAN): an image only on the head
//! reaches node2 by `file get` over `mesh send`, byte for byte; a VM that
//! a namespace launch places on node3 makes node3 fetch it by itself, from
//! both holders; a holder killed halfway through a transfer and restarted
//! by systemd lets the transfer finish; `shell` runs on every node.

mod common;

use common::testbed::{Node, Testbed};
use std::time::{Duration, Instant};

const KEY: &str = "dGhlIGZpbGVzIHRlc3RzJyBvd24gbWVzaCBrZXkgMTIzNA==";
const LONG: Duration = Duration::from_secs(300);

/// `file status` rows (filename, completed) on a node.
fn status(n: &Node) -> Vec<(String, String)> {
    n.mm(".annotate false .headers false .csv true .columns filename,completed file status")
        .lines()
        .filter_map(|l| l.split_once(','))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn sha(n: &Node, file: &str) -> String {
    n.ok(&format!(
        "sha256sum /run/minimega/files/{file} | cut -d' ' -f1"
    ))
}

/// Waits until `file` is on `n` with nothing in flight.
fn arrived(n: &Node, file: &str) {
    n.wait_ok(
        &format!(
            "test -f /run/minimega/files/{file} && test -z \"$(minimega -e .headers false file status)\""
        ),
        LONG,
    );
}

#[test]
fn images_spread_over_the_mesh_resume_after_a_lost_holder_and_launches_fetch_them() {
    let bed = Testbed::mesh_of(&["head", "node2", "node3"], KEY);
    let (head, node2, node3) = (bed.node("head"), bed.node("node2"), bed.node("node3"));

    // Commands on every node.
    let hosts = head.mm("mesh send all shell hostname");
    assert!(
        hosts.contains("node2") && hosts.contains("node3"),
        "{hosts}"
    );

    // A 200 MiB image only on the head; node2 gets it, told over the mesh.
    head.ok("mkdir -p /run/minimega/files && head -c 200M /dev/urandom > /run/minimega/files/base.img && chmod 640 /run/minimega/files/base.img");
    let want = sha(head, "base.img");
    assert_eq!(head.mm("mesh send node2 file get base.img"), "");
    arrived(node2, "base.img");
    assert_eq!(sha(node2, "base.img"), want);
    let stat = "stat -c '%a %s %Y' /run/minimega/files/base.img";
    assert_eq!(node2.ok(stat), head.ok(stat), "mode, size and time copied");
    let listed = node2.mm(".annotate false .headers false .csv true file list");
    assert!(listed.starts_with(",base.img,209715200,"), "{listed}");

    // A launch placed on node3 fetches the image first, from both holders.
    for line in [
        "namespace exp vm config memory 64",
        "namespace exp vm config disk base.img",
        "namespace exp vm config schedule node3",
        "namespace exp vm launch kvm fetched",
    ] {
        head.mm(line);
    }
    assert_eq!(sha(node3, "base.img"), want);
    let placed = head
        .mm(".annotate true .headers false .csv true .columns name,state namespace exp vm info");
    assert!(placed.contains("node3,fetched,BUILDING"), "{placed}");
    let log = node3.ok("journalctl -u minimega --no-pager -o cat");
    assert!(
        log.contains("fetching base.img (209715200 bytes) from head, node2")
            && log.contains("base.img: got all 25 parts"),
        "{log}"
    );
    // A file no node has: a clear error, for `file get` and for a launch.
    let e = node2.sh("minimega -e file get nothing.img");
    assert_eq!(
        String::from_utf8_lossy(&e.stdout).trim(),
        "E: get nothing.img: file not found"
    );
    head.mm("namespace exp vm config disk nothing.qcow2");
    let e = head.sh("minimega -e namespace exp vm launch kvm nothing");
    let e = String::from_utf8_lossy(&e.stdout).to_string();
    assert!(
        e.contains(
            "/run/minimega/files/nothing.qcow2: not on this node, and no node of the mesh has it"
        ),
        "{e}"
    );

    // The holder dies halfway through a transfer; systemd restarts it and
    // the transfer finishes with the parts it already had.
    head.ok("head -c 200M /dev/urandom > /run/minimega/files/second.img");
    let want = sha(head, "second.img");
    head.mm("file bandwidth 12");
    node2.mm("file get second.img");
    let deadline = Instant::now() + LONG;
    let before = loop {
        let s = status(node2);
        let done = s
            .iter()
            .find(|(f, _)| f == "second.img")
            .and_then(|(_, c)| c.split('/').next()?.parse::<u32>().ok());
        if let Some(n) = done.filter(|n| *n >= 4) {
            break n;
        }
        assert!(Instant::now() < deadline, "no progress: {s:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(before < 25, "the transfer should still be running");
    // Asked for again meanwhile: minimega's refusal, never a second one.
    let again = node2.sh("minimega -e file get second.img");
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "E: get second.img: file already in flight"
    );
    let rows = status(node2);
    assert_eq!(
        rows.iter().filter(|(f, _)| f == "second.img").count(),
        1,
        "{rows:?}"
    );
    let pid = head.ok("systemctl show -p MainPID --value minimega");
    head.ok(&format!("kill -9 {pid}"));
    head.wait_ok(
        &format!(
            "test \"$(systemctl show -p MainPID --value minimega)\" != {pid} && systemctl is-active minimega"
        ),
        LONG,
    );
    arrived(node2, "second.img");
    assert_eq!(sha(node2, "second.img"), want);
    let log = node2.ok("journalctl -u minimega --no-pager -o cat");
    let kept = log
        .lines()
        .find(|l| l.contains("second.img: holder head lost"))
        .and_then(|l| {
            l.rsplit_once("; ")?
                .1
                .split(' ')
                .next()?
                .parse::<u32>()
                .ok()
        });
    assert!(
        kept.is_some_and(|k| k >= before),
        "the parts fetched before the loss are kept: {log}"
    );

    // file commands reach every node.
    head.mm("namespace exp vm kill all");
    head.mm("namespace exp vm flush");
    head.mm("mesh send all file delete base.img");
    for n in [node2, node3] {
        n.ok("test ! -e /run/minimega/files/base.img");
    }
    head.ok("test -e /run/minimega/files/base.img");
}

/// The benchmark on the test bed itself: `file get` of a 1 GiB file
/// from head to node2 beside nc of the same file between the same nodes,
/// alternating, with the ratio printed (target <= 1.3). Not a check (no
/// speed is asserted) and not run by CI:
/// `cargo test --release --test files -- --ignored --nocapture`
/// (MM_BENCH_MIB sets the size). `bench files` does the same without
/// systemd, in two bare network namespaces.
#[test]
#[ignore = "a benchmark: cargo test --release --test files -- --ignored --nocapture"]
fn bench_file_get_beside_nc_between_two_nodes() {
    let mib: u64 = std::env::var("MM_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let bed = Testbed::mesh_of(&["head", "node2"], KEY);
    let (head, node2) = (bed.node("head"), bed.node("node2"));
    head.ok(&format!(
        "mkdir -p /run/minimega/files && head -c {mib}M /dev/urandom > /run/minimega/files/big.bin"
    ));
    let want = sha(head, "big.bin");
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "file get beside nc, {mib} MiB, head -> node2 (test-bed nodes), load {}",
        load().trim()
    );
    let (mut nc, mut get) = (Vec::new(), Vec::new());
    for round in 1..=2 {
        let mut rx = node2
            .command("exec nc -l -p 9100 > /run/nc.out")
            .spawn()
            .unwrap();
        node2.wait_ok("ss -Hltn 'sport = :9100' | grep -q .", LONG);
        let t = Instant::now();
        head.ok(&format!(
            "nc -N {} 9100 < /run/minimega/files/big.bin",
            node2.addr
        ));
        assert!(rx.wait().unwrap().success());
        let n = t.elapsed().as_secs_f64();
        assert_eq!(node2.ok("sha256sum /run/nc.out | cut -d' ' -f1"), want);
        node2.ok("rm /run/nc.out");

        // Timed inside the node, so no nsenter per poll is counted.
        let ns = node2.ok("s=$(date +%s%N); minimega -e file get big.bin >/dev/null; \
             while [ ! -f /run/minimega/files/big.bin ]; do sleep 0.01; done; \
             echo $(( $(date +%s%N) - s ))");
        let g = ns.parse::<f64>().unwrap() / 1e9;
        assert_eq!(sha(node2, "big.bin"), want);
        node2.mm("file delete big.bin");
        let rate = |s: f64| mib as f64 / s;
        println!(
            "  round {round}: nc {n:.2} s ({:.0} MiB/s), file get {g:.2} s ({:.0} MiB/s), ratio {:.2}",
            rate(n),
            rate(g),
            g / n
        );
        nc.push(n);
        get.push(g);
    }
    let best = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
    println!(
        "best: nc {:.2} s, file get {:.2} s, ratio {:.2} (target <= 1.3); load {}",
        best(&nc),
        best(&get),
        best(&get) / best(&nc),
        load().trim()
    );
}
