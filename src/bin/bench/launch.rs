//! `bench launch N [ROUNDS]`: starts a real `minimega` daemon (the binary
//! next to this one) on a private D-Bus bus, times `vm launch kvm N` (it
//! returns when every QEMU is paused and has answered on QMP), then times a
//! raw parallel spawn of the same N QEMU command lines to QMP-ready, and
//! prints both, their ratio, and the daemon's RSS before and after. Rounds
//! alternate the two (default 3) and the medians are compared.
//! Targets: ratio <= 1.25; RSS growth <= 100 KiB per VM.

use super::daemon::Harness;
use minimega::vm::accel::Accel;
use minimega::vm::argv::{qemu_argv, Launch, VmPaths};
use minimega::vm::config::VmConfig;
use minimega::vm::qmp::Qmp;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const MEMORY_MIB: u64 = 128;

/// `bench launch [N [ROUNDS]]`
pub fn run(args: &[String]) -> ExitCode {
    super::counted("launch", args, (100, 3), launch)
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn launch(n: u64, rounds: usize) -> Result<(), String> {
    let h = Harness::start("launch", None, &[], &[])?;
    let (rt, dir, daemon_pid) = (&h.rt, h.scratch.dir.clone(), h.daemon_pid);
    let exec = |cmd: &str| h.exec(cmd);
    let accel = h.accel()?;
    exec(&format!("vm config memory {MEMORY_MIB}"))?;
    println!("launch {n}: QEMU paused, {MEMORY_MIB} MiB each, accel {accel}");

    // Warm the page cache and QEMU's first start, for both runs alike.
    raw(rt, &dir.join("warm"), 1, accel)?;

    // Rounds alternate daemon and raw so both see the same machine (it is
    // shared and noisy); the medians are compared. RSS growth is the first
    // round's: the daemon's first allocations, the worst case.
    let mut daemon_times = Vec::new();
    let mut raw_times = Vec::new();
    let mut kill_times = Vec::new();
    let mut rss = (0, 0);
    for round in 0..rounds {
        let before = rss_kib(daemon_pid);
        let t = Instant::now();
        exec(&format!("vm launch kvm {n}"))?;
        daemon_times.push(t.elapsed());
        let after = rss_kib(daemon_pid);
        if round == 0 {
            rss = (before, after);
        }
        let t = Instant::now();
        exec("vm kill all")?;
        kill_times.push(t.elapsed());
        exec("vm flush")?;
        raw_times.push(raw(rt, &dir.join("raw"), n, accel)?);
        println!(
            "round {}: daemon {:.3} s, raw {:.3} s",
            round + 1,
            daemon_times[round].as_secs_f64(),
            raw_times[round].as_secs_f64()
        );
    }
    let (daemon_time, raw_time, kill_time) = (
        median(&daemon_times),
        median(&raw_times),
        median(&kill_times),
    );
    let ratio = daemon_time.as_secs_f64() / raw_time.as_secs_f64();
    let (rss_before, rss_after) = rss;
    let per_vm = (rss_after as f64 - rss_before as f64) / n as f64;
    println!(
        "daemon: vm launch kvm {n}      {:>8.3} s (median of {rounds})",
        daemon_time.as_secs_f64()
    );
    println!(
        "raw:    parallel spawn of {n}  {:>8.3} s (median of {rounds})",
        raw_time.as_secs_f64()
    );
    println!("ratio:  {ratio:.3} (target <= 1.25)");
    println!(
        "daemon: vm kill all          {:>8.3} s",
        kill_time.as_secs_f64()
    );
    println!(
        "daemon RSS: {rss_before} KiB before, {rss_after} KiB after: {per_vm:.1} KiB per VM (target <= 100)"
    );
    Ok(())
}

/// Spawns `n` QEMUs with the daemon's own command lines, all at once, and
/// waits until every one has answered on QMP. Returns that time; then
/// kills them.
fn raw(rt: &tokio::runtime::Runtime, dir: &Path, n: u64, accel: Accel) -> Result<Duration, String> {
    let config = VmConfig {
        memory: MEMORY_MIB,
        ..VmConfig::default()
    };
    let paths: Vec<VmPaths> = (0..n).map(|id| VmPaths::new(dir, id)).collect();
    for p in &paths {
        std::fs::create_dir_all(&p.dir).map_err(|e| e.to_string())?;
    }
    let argvs: Vec<Vec<String>> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            qemu_argv(&Launch {
                name: &format!("raw-{i}"),
                uuid: "9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc",
                paths: p,
                accel,
                config: &config,
                extra: &[],
            })
        })
        .collect();
    let start = Instant::now();
    let mut children = Vec::new();
    for (a, p) in argvs.iter().zip(&paths) {
        let c = Command::new(&a[0])
            .args(&a[1..])
            .current_dir(&p.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", a[0]))?;
        children.push(c);
    }
    let ready = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for p in &paths {
            let qmp = p.qmp();
            set.spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(300);
                loop {
                    match Qmp::connect(&qmp, Duration::from_secs(300)).await {
                        Ok(q) => return Ok(q),
                        Err(e) if Instant::now() > deadline => return Err(e.to_string()),
                        Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
            });
        }
        let mut conns = Vec::new();
        while let Some(j) = set.join_next().await {
            conns.push(j.map_err(|e| e.to_string())??);
        }
        Ok::<_, String>(conns)
    });
    let elapsed = start.elapsed();
    for c in &mut children {
        let _ = c.kill();
    }
    for c in &mut children {
        let _ = c.wait();
    }
    drop(ready?);
    let _ = std::fs::remove_dir_all(dir);
    Ok(elapsed)
}
