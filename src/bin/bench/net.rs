//! `bench net [N [ROUNDS]]`: `vm launch kvm N` of paused VMs with one NIC
//! each (a tap on an Open vSwitch bridge, VLAN by alias) beside the same N
//! VMs without NICs, in one run, against a real daemon in a network
//! namespace of its own with a private Open vSwitch (userspace datapath
//! where the kernel module is missing). Rounds alternate the two; medians
//! are compared. Prints both, the ratio (target <= 1.5), the time `vm kill
//! all` takes with NICs, and the daemon's RSS growth per VM with a NIC.
//! Needs root and openvswitch-switch.

use super::daemon::Harness;
use super::launch::{median, rss_kib};
use super::load;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const MEMORY_MIB: u64 = 128;

pub fn run(args: &[String]) -> ExitCode {
    super::counted("net", args, (100, 3), bench)
}

fn sh(script: &str) -> Result<(), String> {
    super::mesh::sh(&["sh", "-c", script]).map(drop)
}

/// A network namespace holding ovsdb-server and ovs-vswitchd of our own.
pub struct Switch {
    pub netns: String,
    pub dir: std::path::PathBuf,
}

impl Switch {
    pub fn start() -> Result<Switch, String> {
        let netns = format!("mmbench{}", std::process::id());
        let dir = std::path::PathBuf::from(format!(
            "/var/tmp/minimega-bench-ovs-{}",
            std::process::id()
        ));
        let sw = Switch {
            netns: netns.clone(),
            dir: dir.clone(),
        };
        let d = dir.display();
        sh(&format!(
            "mkdir -p {d} && ip netns add {netns} && ip -n {netns} link set lo up && \
             export OVS_RUNDIR={d} OVS_DBDIR={d} OVS_LOGDIR={d} && \
             ovsdb-tool create {d}/conf.db /usr/share/openvswitch/vswitch.ovsschema && \
             ip netns exec {netns} ovsdb-server {d}/conf.db --remote=punix:{d}/db.sock \
               --pidfile={d}/db.pid --unixctl={d}/db.ctl --log-file={d}/db.log --detach && \
             ovs-vsctl --db=unix:{d}/db.sock --no-wait init && \
             ip netns exec {netns} ovs-vswitchd unix:{d}/db.sock --pidfile={d}/vs.pid \
               --unixctl={d}/vs.ctl --log-file={d}/vs.log --detach"
        ))?;
        Ok(sw)
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        let d = self.dir.display();
        let _ = sh(&format!(
            "for p in {d}/vs.pid {d}/db.pid; do [ -f $p ] && kill $(cat $p); done; \
             sleep 0.5; ip netns del {}; rm -rf {d}",
            self.netns
        ));
    }
}

fn bench(n: u64, rounds: usize) -> Result<(), String> {
    let sw = Switch::start()?;
    let env = [("OVS_RUNDIR".to_string(), sw.dir.display().to_string())];
    let h = Harness::start("net", Some(&sw.netns), &env, &[])?;
    let exec = |cmd: &str| h.exec(cmd);
    exec(&format!("vm config memory {MEMORY_MIB}"))?;
    let accel = h.accel()?;
    println!(
        "net {n}: QEMU paused, {MEMORY_MIB} MiB each, accel {accel}, load {}",
        load()
    );
    // Warm the page cache, QEMU's first start and the bridge.
    exec("vm config net WARM")?;
    exec("vm launch kvm 1")?;
    exec("vm kill all")?;
    exec("vm flush")?;

    let mut plain = Vec::new();
    let mut nics = Vec::new();
    let mut kills = Vec::new();
    let mut rss = (0, 0);
    let timed = |cmd: &str| -> Result<Duration, String> {
        let t = Instant::now();
        exec(cmd)?;
        Ok(t.elapsed())
    };
    for round in 0..rounds {
        exec("clear vm config net")?;
        plain.push(timed(&format!("vm launch kvm {n}"))?);
        exec("vm kill all")?;
        exec("vm flush")?;
        exec("vm config net DMZ")?;
        let before = rss_kib(h.daemon_pid);
        nics.push(timed(&format!("vm launch kvm {n}"))?);
        if round == 0 {
            rss = (before, rss_kib(h.daemon_pid));
        }
        kills.push(timed("vm kill all")?);
        exec("vm flush")?;
        println!(
            "round {}: without NICs {:.3} s, with one NIC each {:.3} s",
            round + 1,
            plain[round].as_secs_f64(),
            nics[round].as_secs_f64()
        );
    }
    let (p, w, k) = (median(&plain), median(&nics), median(&kills));
    let ratio = w.as_secs_f64() / p.as_secs_f64();
    let per_vm = (rss.1 as f64 - rss.0 as f64) / n as f64;
    println!(
        "daemon: vm launch kvm {n}, no NICs        {:>8.3} s (median of {rounds})",
        p.as_secs_f64()
    );
    println!(
        "daemon: vm launch kvm {n}, one NIC each   {:>8.3} s (median of {rounds})",
        w.as_secs_f64()
    );
    println!("ratio:  {ratio:.3} (target <= 1.5)");
    println!(
        "daemon: vm kill all with NICs         {:>8.3} s",
        k.as_secs_f64()
    );
    println!(
        "daemon RSS: {} KiB before, {} KiB after {n} VMs with NICs: {per_vm:.1} KiB per VM",
        rss.0, rss.1
    );
    println!("load average at the end: {}", load());
    Ok(())
}
