//! `bench containers [N, default 100] [ROUNDS, default 3]`: a real daemon
//! launches and starts N containers (a busybox file system from
//! scripts/container-fs.sh, snapshot true, no NICs) and, as the baseline
//! measured in the same run, launches N paused KVM VMs. Prints both times
//! (medians of ROUNDS), their ratio, and the memory each costs: the RSS of
//! a container's monitor plus everything in it, against a paused QEMU's.
//! Target: N=100 containers running in under 5 s here; each far lighter
//! than a QEMU.

use super::daemon::Harness;
use super::launch::{median, rss_kib};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

const MEMORY_MIB: u64 = 128;

pub fn run(args: &[String]) -> ExitCode {
    super::counted("containers", args, (100, 3), bench)
}

/// The children of `pid`: those of each of its threads (a child is
/// listed under the thread that forked it).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        out.extend(
            kids.split_whitespace()
                .filter_map(|k| k.parse::<u32>().ok()),
        );
    }
    out
}

/// KiB of RSS of a process and everything below it.
fn tree_kib(pid: u32) -> u64 {
    rss_kib(pid) + children(pid).into_iter().map(tree_kib).sum::<u64>()
}

/// KiB of RSS per child of the daemon (a monitor with its container, or
/// a QEMU).
fn per_vm_kib(daemon: u32) -> Result<f64, String> {
    let kids = children(daemon);
    if kids.is_empty() {
        return Err("the daemon has no children (no VM runs)".into());
    }
    let total: u64 = kids.iter().map(|&k| tree_kib(k)).sum();
    Ok(total as f64 / kids.len() as f64)
}

fn bench(n: u64, rounds: usize) -> Result<(), String> {
    let h = Harness::start("containers", None, &[], &[])?;
    let fs = h.scratch.dir.join("fs");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = Command::new(root.join("scripts/container-fs.sh"))
        .arg(&fs)
        .output()
        .map_err(|e| format!("scripts/container-fs.sh: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "scripts/container-fs.sh: {}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    std::fs::write(fs.join("init"), "#!/bin/sh\nexec sleep 100000\n").map_err(|e| e.to_string())?;
    Command::new("chmod")
        .arg("755")
        .arg(fs.join("init"))
        .status()
        .map_err(|e| e.to_string())?;
    let r = rounds_of(&h, &fs, n, rounds);
    // VMs outlive their daemon by design: a failed run ends its own.
    if r.is_err() {
        let _ = h.exec("vm kill all");
    }
    r
}

fn rounds_of(h: &Harness, fs: &Path, n: u64, rounds: usize) -> Result<(), String> {
    let exec = |cmd: &str| h.exec(cmd);
    exec(&format!("vm config memory {MEMORY_MIB}"))?;
    exec(&format!("vm config filesystem {}", fs.display()))?;
    println!("containers {n}: busybox, snapshot true, {MEMORY_MIB} MiB limit; baseline: {n} paused KVM VMs");
    let mut ct_times = Vec::new();
    let mut kvm_times = Vec::new();
    let (mut ct_mem, mut kvm_mem) = (0.0, 0.0);
    for round in 0..rounds {
        let t = Instant::now();
        exec(&format!("vm launch container {n}"))?;
        exec("vm start all")?;
        ct_times.push(t.elapsed());
        let running = exec(".annotate false .headers false .columns state vm info")?;
        let up = running.lines().filter(|l| l.trim() == "RUNNING").count();
        if up as u64 != n {
            return Err(format!("{up} of {n} containers run:\n{}", exec("vm info")?));
        }
        // Every init runs: the payload has a process of its own.
        std::thread::sleep(Duration::from_millis(500));
        ct_mem = per_vm_kib(h.daemon_pid)?;
        exec("vm kill all")?;
        exec("vm flush")?;
        let t = Instant::now();
        exec(&format!("vm launch kvm {n}"))?;
        kvm_times.push(t.elapsed());
        kvm_mem = per_vm_kib(h.daemon_pid)?;
        exec("vm kill all")?;
        exec("vm flush")?;
        println!(
            "round {}: containers {:.3} s, kvm {:.3} s",
            round + 1,
            ct_times[round].as_secs_f64(),
            kvm_times[round].as_secs_f64()
        );
    }
    let (ct, kvm) = (median(&ct_times), median(&kvm_times));
    println!(
        "containers: vm launch container {n} + vm start all {:>8.3} s (median of {rounds}; target < 5 s)",
        ct.as_secs_f64()
    );
    println!(
        "kvm:        vm launch kvm {n} (paused)             {:>8.3} s",
        kvm.as_secs_f64()
    );
    println!("ratio:      {:.3}", ct.as_secs_f64() / kvm.as_secs_f64());
    println!("memory per VM: container {ct_mem:.0} KiB (monitor + payload), paused QEMU {kvm_mem:.0} KiB");
    println!("load: {}", super::load());
    Ok(())
}
