//! `bench cc [N [ROUNDS]]`: `cc exec true` to one connected agent, then to
//! N (default 20), timed from the command to the last response on disk
//! (the exit code file, written when the agent's answer is in). The agents
//! are this build's miniccc, on this host over TCP (`cc listen`), each
//! speaking for one paused VM of a real daemon: what is measured is the
//! daemon's fan-out and bookkeeping, not a guest's CPU. Rounds of each
//! (default 5) are compared by their medians. Target: N within 3x of one.
//! The same is measured for `cc log level info`, which starts no process
//! in the agents, to show the daemon's and the protocol's own share; and,
//! as the floor on this machine, N `true` started at once from N threads.

use super::daemon::{free_port_string, Harness};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

pub fn run(args: &[String]) -> ExitCode {
    super::counted("cc", args, (20, 5), |n, r| bench(n.max(1) as usize, r))
}

/// Stops the agents, also on error.
struct Agents(Vec<Child>);

impl Drop for Agents {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// CPU time a process and its reaped children used, from /proc.
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(4)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn wait(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> Result<bool, String>,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    while !done()? {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

/// A command to time, and the file whose presence says a client answered.
struct Probe {
    line: &'static str,
    marker: &'static str,
}

const PROBES: [Probe; 2] = [
    Probe {
        line: "cc exec true",
        marker: "exitcode",
    },
    Probe {
        line: "cc log level info",
        marker: "",
    },
];

/// Posts the probe's command and waits until each of `uuids` answered.
fn round(
    b: &Harness,
    root: &Path,
    id: usize,
    p: &Probe,
    uuids: &[String],
) -> Result<Duration, String> {
    let start = Instant::now();
    b.exec(p.line)?;
    let dir = root.join(id.to_string());
    wait(
        &format!("responses to command {id}"),
        Duration::from_secs(60),
        || Ok(uuids.iter().all(|u| dir.join(u).join(p.marker).exists())),
    )?;
    Ok(start.elapsed())
}

/// N `true` at once, from N threads: what the agents' part costs here.
fn raw(n: usize) -> Result<Duration, String> {
    let start = Instant::now();
    let threads: Vec<_> = (0..n)
        .map(|_| std::thread::spawn(|| Command::new("true").output().map(|_| ())))
        .collect();
    for t in threads {
        t.join()
            .map_err(|_| "a thread panicked".to_string())?
            .map_err(|e| format!("true: {e}"))?;
    }
    Ok(start.elapsed())
}

/// Removes the files directory, which is not under the bench's own.
struct Files(PathBuf);

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bench(n: usize, rounds: usize) -> Result<(), String> {
    // Responses go to the files directory; the service keeps it on tmpfs
    // (/run/minimega/files), and so does this run.
    let files = Files(PathBuf::from(format!(
        "/dev/shm/minimega-bench-cc-{}",
        std::process::id()
    )));
    let fp = files.0.to_string_lossy().into_owned();
    let b = Harness::start("cc", None, &[], &["-filepath", &fp])?;
    let agent: PathBuf = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("miniccc");
    b.exec("vm config memory 64")?;
    b.exec("vm config backchannel false")?;
    b.exec(&format!("vm launch kvm {n}"))?;
    let uuids: Vec<String> = b
        .exec(".annotate false .headers false .columns uuid vm info")?
        .lines()
        .map(|l| l.trim().to_string())
        .collect();
    if uuids.len() != n {
        return Err(format!("expected {n} VMs, found {}", uuids.len()));
    }
    let port = free_port_string()?;
    b.exec(&format!("cc listen {port}"))?;
    let mut agents = Agents(Vec::new());
    let mut start_agent = |i: usize| -> Result<(), String> {
        let c = Command::new(&agent)
            .args(["-parent", "127.0.0.1", "-port", &port, "-uuid", &uuids[i]])
            .arg("-path")
            .arg(b.scratch.dir.join(format!("agent{i}")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", agent.display()))?;
        agents.0.push(c);
        Ok(())
    };
    let connected = |want: usize| {
        wait(&format!("{want} agents"), Duration::from_secs(60), || {
            let t = b.exec(".annotate false .headers false cc")?;
            Ok(t.trim() == want.to_string())
        })
    };
    let root = files.0.join("miniccc_responses");
    println!("{rounds} rounds to 1 agent, then {rounds} to {n} (agents on this host, TCP)");
    start_agent(0)?;
    connected(1)?;
    let mut id = 0;
    let mut times = |count: usize| -> Result<Vec<Duration>, String> {
        let mut medians = Vec::new();
        for p in &PROBES {
            let mut t = Vec::new();
            for _ in 0..rounds {
                id += 1;
                t.push(round(&b, &root, id, p, &uuids[..count])?);
            }
            medians.push(median(&t));
        }
        Ok(medians)
    };
    let z = cpu(b.daemon_pid);
    let one = times(1)?;
    let d_one = cpu(b.daemon_pid) - z;
    for i in 1..n {
        start_agent(i)?;
    }
    connected(n)?;
    let pids: Vec<u32> = agents.0.iter().map(|c| c.id()).collect();
    let used = |pids: &[u32]| pids.iter().map(|p| cpu(*p)).sum::<Duration>();
    let (d0, a0) = (cpu(b.daemon_pid), used(&pids));
    let all = times(n)?;
    let per = (rounds * PROBES.len()) as u32;
    let (d1, a1) = (cpu(b.daemon_pid), used(&pids));
    for (p, (t1, tn)) in PROBES.iter().zip(one.iter().zip(&all)) {
        println!(
            "{:<18} 1 agent {:>7.1} ms, {n} agents {:>7.1} ms, ratio {:.2}{}",
            p.line,
            t1.as_secs_f64() * 1e3,
            tn.as_secs_f64() * 1e3,
            tn.as_secs_f64() / t1.as_secs_f64(),
            if p.marker.is_empty() {
                ""
            } else {
                " (target <= 3)"
            }
        );
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / per as f64;
    println!(
        "daemon CPU per round: 1 agent {:.2} ms, {n} agents {:.2} ms, ratio {:.2}; {n} agents' CPU {:.1} ms (with what they ran)",
        ms(d_one),
        ms(d1 - d0),
        (d1 - d0).as_secs_f64() / d_one.as_secs_f64().max(1e-9),
        ms(a1 - a0)
    );
    let floor: Vec<Duration> = (0..rounds).map(|_| raw(n)).collect::<Result<_, _>>()?;
    let one: Vec<Duration> = (0..rounds).map(|_| raw(1)).collect::<Result<_, _>>()?;
    println!(
        "raw: 1 `true` {:>7.1} ms, {n} at once {:>7.1} ms, ratio {:.2} (the floor here)",
        median(&one).as_secs_f64() * 1e3,
        median(&floor).as_secs_f64() * 1e3,
        median(&floor).as_secs_f64() / median(&one).as_secs_f64()
    );
    b.exec("vm kill all")?;
    Ok(())
}
