//! `bench churn [CLIENTS, default 16] [SECONDS, default 60] [NAMES, default 24]`:
//! CLIENTS clients, each on a bus connection of its own, launch, kill and
//! flush VMs of overlapping names (paused QEMU, one NIC each, on a private
//! Open vSwitch in a network namespace) for SECONDS, while one more client
//! runs `vm info` in a loop. Prints the writers' and the reader's p50, p99
//! and worst latency, beside a baseline measured in the same run: the same
//! three commands from one client alone. Failures the race makes (a name
//! taken, a VM not found, a VM not yet QUIT) are answers too and count.
//! Then `vm kill all; vm flush`, and what is left: taps, switch ports,
//! QEMUs (all must be zero), and how often the switch's batcher gave up
//! waiting for VMs that never came (must be zero). Target: writer p99 < 1 s.
//! Needs root and openvswitch-switch.

use super::daemon::Harness;
use super::load;
use super::net::Switch;
use minimega::config::Bus;
use minimega::dbus::client::Client;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const MEMORY_MIB: u64 = 64;

pub fn run(args: &[String]) -> ExitCode {
    let num = |i: usize, d: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (clients, secs, names) = (num(0, 16).max(1), num(1, 60).max(1), num(2, 24).max(1));
    super::as_root("churn", Ok(()), |_| bench(clients, secs, names))
}

/// One answer: which command, how long, and the first words of its error.
struct Sample {
    op: &'static str,
    took: Duration,
    error: Option<String>,
}

/// A small deterministic generator per client (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// An error's kind: its text up to the first name it quotes.
fn kind(text: &str) -> String {
    let t = text.trim().trim_start_matches("E: ");
    let t = t.split(':').next().unwrap_or(t);
    let cut = t.find(['`', '[']).unwrap_or(t.len());
    t[..cut].trim().chars().take(60).collect()
}

async fn timed(c: &Client, op: &'static str, line: &str) -> Sample {
    let t = Instant::now();
    let r = c.exec(line).await;
    let took = t.elapsed();
    let error = match r {
        Ok(r) if r.has_error() => Some(kind(&r.text)),
        Ok(_) => None,
        Err(e) => Some(kind(&e.to_string())),
    };
    Sample { op, took, error }
}

fn report(what: &str, samples: &[&Sample]) -> (Duration, Duration) {
    let mut d: Vec<Duration> = samples.iter().map(|s| s.took).collect();
    let (p50, p99) = (percentile(&mut d, 0.50), percentile(&mut d, 0.99));
    let worst = d.last().copied().unwrap_or_default();
    let failed = samples.iter().filter(|s| s.error.is_some()).count();
    println!(
        "  {what:<22} {:>6} answers ({failed:>5} errors)  p50 {:>9.1} ms  p99 {:>9.1} ms  max {:>9.1} ms",
        samples.len(),
        ms(p50),
        ms(p99),
        ms(worst)
    );
    (p50, p99)
}

fn bench(clients: u64, secs: u64, names: u64) -> Result<(), String> {
    let sw = Switch::start()?;
    let env = [("OVS_RUNDIR".to_string(), sw.dir.display().to_string())];
    let h = Harness::start("churn", Some(&sw.netns), &env, &[])?;
    h.exec(&format!("vm config memory {MEMORY_MIB}"))?;
    h.exec("vm config net 100")?;
    let accel = h.accel()?;
    println!(
        "churn: {clients} clients, {secs} s, {names} names, QEMU paused, {MEMORY_MIB} MiB, one NIC each, accel {accel}, load {}",
        load()
    );
    // Warm QEMU's first start and the bridge.
    h.exec("vm launch kvm warm")?;
    h.exec("vm kill all")?;
    h.exec("vm flush")?;

    // The baseline: one client alone, the same commands.
    let base: Vec<Sample> = h.rt.block_on(async {
        let mut out = Vec::new();
        for i in 0..10 {
            let n = format!("base{i}");
            out.push(timed(&h.client, "launch", &format!("vm launch kvm {n}")).await);
            out.push(timed(&h.client, "kill", &format!("vm kill {n}")).await);
            out.push(timed(&h.client, "flush", &format!("vm flush {n}")).await);
        }
        out
    });
    if let Some(e) = base.iter().find_map(|s| s.error.clone()) {
        return Err(format!("the baseline failed: {e}"));
    }

    let bus = Bus::Address(h.address.clone());
    let until = Instant::now() + Duration::from_secs(secs);
    let (writes, reads) = h.rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..clients {
            let bus = bus.clone();
            tasks.spawn(async move {
                let Ok(client) = Client::connect(&bus).await else {
                    return (Vec::new(), Vec::new());
                };
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (c + 1).wrapping_mul(0x1000_0001));
                let mut out = Vec::new();
                while Instant::now() < until {
                    let name = format!("c{}", rng.next() % names);
                    let s = match rng.next() % 10 {
                        0..=3 => timed(&client, "launch", &format!("vm launch kvm {name}")).await,
                        4..=6 => timed(&client, "kill", &format!("vm kill {name}")).await,
                        _ => timed(&client, "flush", &format!("vm flush {name}")).await,
                    };
                    out.push(s);
                }
                (out, Vec::new())
            });
        }
        let bus = bus.clone();
        tasks.spawn(async move {
            let Ok(client) = Client::connect(&bus).await else {
                return (Vec::new(), Vec::new());
            };
            let mut out = Vec::new();
            while Instant::now() < until {
                out.push(timed(&client, "info", "vm info").await);
            }
            (Vec::new(), out)
        });
        let (mut w, mut r) = (Vec::new(), Vec::new());
        while let Some(Ok((a, b))) = tasks.join_next().await {
            w.extend(a);
            r.extend(b);
        }
        (w, r)
    });

    println!("baseline (one client alone, 10 rounds):");
    let all: Vec<&Sample> = base.iter().collect();
    let (base_p50, _) = report("launch+kill+flush", &all);
    for op in ["launch", "kill", "flush"] {
        let v: Vec<&Sample> = base.iter().filter(|s| s.op == op).collect();
        report(op, &v);
    }
    println!("under churn ({clients} writers, 1 reader, {secs} s):");
    let w: Vec<&Sample> = writes.iter().collect();
    let (_, writer_p99) = report("writers, all", &w);
    for op in ["launch", "kill", "flush"] {
        let v: Vec<&Sample> = writes.iter().filter(|s| s.op == op).collect();
        report(op, &v);
    }
    let r: Vec<&Sample> = reads.iter().collect();
    let (_, info_p99) = report("vm info (reader)", &r);
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for e in writes.iter().filter_map(|s| s.error.as_ref()) {
        *kinds.entry(e.clone()).or_default() += 1;
    }
    println!("errors by kind (the race's own answers):");
    for (k, n) in &kinds {
        println!("  {n:>6}  {k}");
    }

    h.exec("vm kill all")?;
    h.exec("vm flush")?;
    let taps = super::mesh::sh(&["ip", "-n", &sw.netns, "-o", "link", "show"])?
        .lines()
        .filter(|l| l.contains("mega_tap"))
        .count();
    let ports = super::mesh::sh(&[
        "ovs-vsctl",
        &format!("--db=unix:{}/db.sock", sw.dir.display()),
        "--if-exists",
        "list-ports",
        "mega_bridge",
    ])
    .unwrap_or_default()
    .lines()
    .filter(|l| !l.is_empty())
    .count();
    let dir = h.scratch.dir.display().to_string();
    let qemus = std::fs::read_dir("/proc")
        .map_err(|e| e.to_string())?
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| {
            let c = String::from_utf8_lossy(c);
            c.starts_with("qemu-system") && c.contains(&dir)
        })
        .count();
    let log = std::fs::read_to_string(h.scratch.dir.join("daemon.log")).unwrap_or_default();
    let gave_up = log.matches("gave up waiting").count();
    println!(
        "writer p99 {:.1} ms (target < 1000 ms), {:.1}x the baseline's p50; vm info p99 {:.1} ms",
        ms(writer_p99),
        writer_p99.as_secs_f64() / base_p50.as_secs_f64().max(1e-9),
        ms(info_p99)
    );
    println!(
        "after vm kill all; vm flush: {taps} taps, {ports} switch ports, {qemus} QEMUs left; the switch gave up waiting {gave_up} times"
    );
    println!("load average at the end: {}", load());
    if taps + ports + qemus + gave_up > 0 {
        return Err("something leaked (see above)".into());
    }
    Ok(())
}
