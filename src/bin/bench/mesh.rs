//! `bench mesh`: N daemons, each in its own network namespace on one
//! private bridge (so discovery is the real UDP broadcast, and every daemon
//! uses port 9000), driven through their command sockets (`-bus none`: no
//! D-Bus daemon per node). In one run it measures:
//!
//! - formation: from spawning the daemons until every one reports mesh
//!   size N;
//! - idle cost: CPU of every daemon and the frames they send (from `mesh
//!   stats`, per kind) over an idle period, and each daemon's memory,
//!   threads and descriptors;
//! - fan-out: `mesh send all version` from one node, p50/p99, beside the
//!   bare TCP round trip across the same bridge and a local `version`, and
//!   whether every round had every node's answer;
//! - healing: 10% of the daemons killed, the time until every survivor
//!   reports the smaller mesh, and what `mesh send all` answers right
//!   after the kill.
//!
//! Needs root (network namespaces).

#[path = "mesh/lab.rs"]
mod lab;

use super::load;
pub use lab::sh;
use lab::{clock_ticks, cpu_ticks, footprint, name, tcp_rtt, widen_neighbour_table, Lab, NEIGH};
use minimega::sock::client::SocketClient;
use minimega::sock::proto::Reply;
use std::collections::BTreeMap;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const PORT: u16 = 9000;
/// Formation, healing: how long the bench waits before it gives up.
const PATIENCE: Duration = Duration::from_secs(120);

struct Opts {
    nodes: usize,
    degree: usize,
    rounds: usize,
    idle: Duration,
    /// Tokio worker threads per daemon (TOKIO_WORKER_THREADS).
    workers: usize,
    /// Leave the daemons' logs behind.
    keep: bool,
    /// The daemons' log level.
    level: String,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        nodes: 16,
        degree: 3,
        rounds: 200,
        idle: Duration::from_secs(10),
        workers: 1,
        keep: false,
        level: "warn".into(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |what: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{what} needs a number"))
        };
        match a.trim_start_matches('-') {
            "keep" => o.keep = true,
            "level" => o.level = it.next().cloned().ok_or("--level needs a level")?,
            "nodes" => o.nodes = num("--nodes")?,
            "degree" => o.degree = num("--degree")?,
            "rounds" => o.rounds = num("--rounds")?,
            "idle" => o.idle = Duration::from_secs(num("--idle")? as u64),
            "workers" => o.workers = num("--workers")?,
            _ => return Err(format!("unknown argument `{a}`")),
        }
    }
    if !(2..=240).contains(&o.nodes) || o.rounds == 0 || o.degree == 0 || o.workers == 0 {
        return Err(
            "--nodes must be 2 to 240, and --rounds, --degree and --workers at least 1".into(),
        );
    }
    Ok(o)
}

pub fn run(args: &[String]) -> ExitCode {
    let opts = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench mesh: {e}");
            return ExitCode::from(2);
        }
    };
    // SAFETY: reading our own uid.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("bench mesh: run as root (it makes network namespaces)");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench mesh: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(bench(&opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench mesh: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(o: &Opts) -> Result<(), String> {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("minimega")))
        .filter(|p| p.exists())
        .ok_or("no minimega binary beside bench (cargo build --release)")?;
    let mut lab = Lab::new()?;
    lab.keep = o.keep;
    lab.neigh = widen_neighbour_table(o.nodes);
    if !lab.neigh.is_empty() {
        println!(
            "bench mesh: the host's ARP table limits raised to {} x {} nodes for the run \
             (one table serves every namespace; see NEIGH)",
            NEIGH.map(|(_, v)| v.to_string()).join("/"),
            o.nodes
        );
    }
    let key = lab.dir.join("mesh.key");
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret).map_err(|e| e.to_string())?;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&key, hex).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    let mut hosts = Vec::new();
    for i in 0..o.nodes {
        hosts.push(lab.add_host(i)?);
    }
    println!(
        "bench mesh: {} daemons, degree {}, each in its own network namespace on one bridge, \
         {} tokio worker(s) each; load average at start {}",
        o.nodes,
        o.degree,
        o.workers,
        load()
    );

    // Formation: spawn every daemon at once, poll each until it reports
    // the whole mesh.
    let t0 = Instant::now();
    for (i, host) in hosts.iter().enumerate() {
        let base = lab.dir.join(name(i));
        let log = std::fs::File::create(lab.dir.join(format!("{}.log", name(i))))
            .map_err(|e| e.to_string())?;
        let child = Command::new("ip")
            .args(["netns", "exec", host])
            .arg(&exe)
            .args(["-base", &base.display().to_string()])
            .args(["-port", &PORT.to_string(), "-nostdin"])
            .args(["-hostname", &name(i)])
            .args(["-degree", &o.degree.to_string()])
            .args(["-meshkey", &key.display().to_string()])
            .args(["-bus", "none", "-level", &o.level])
            .env("TOKIO_WORKER_THREADS", o.workers.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", exe.display()))?;
        lab.daemons.push(Some(child));
    }
    let spawned = t0.elapsed();
    let all: Vec<usize> = (0..o.nodes).collect();
    let mut clients = connect_all(&lab, &all, t0).await?;
    let ready = t0.elapsed();
    wait_size(&mut clients, &all, o.nodes, t0).await?;
    let formed = t0.elapsed();
    let (links, _) = degrees(&text(&exec(&mut clients, 0, "mesh list").await?));
    let forming = frames_out(&mut clients, &all).await?;
    println!(
        "formed: every daemon reports mesh size {} {:.3} s after the first was spawned \
         ({} links then; spawning took {:.3} s, the last command socket answered at {:.3} s)",
        o.nodes,
        formed.as_secs_f64(),
        links,
        spawned.as_secs_f64(),
        ready.as_secs_f64()
    );
    println!(
        "        frames sent while forming, all daemons together: {}",
        kinds(&forming, 1.0)
    );

    // Idle: let formation's last announcements die down, then watch.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu0 = cpu_ticks(&lab, &all);
    let frames0 = frames_out(&mut clients, &all).await?;
    let w0 = Instant::now();
    tokio::time::sleep(o.idle).await;
    let cpu1 = cpu_ticks(&lab, &all);
    let frames1 = frames_out(&mut clients, &all).await?;
    let secs = w0.elapsed().as_secs_f64();
    let ticks = clock_ticks();
    let cpu: f64 = cpu1.iter().zip(&cpu0).map(|(a, b)| a - b).sum::<f64>() / ticks / secs;
    let mut per_kind: BTreeMap<String, u64> = BTreeMap::new();
    for (k, v) in &frames1 {
        *per_kind.entry(k.clone()).or_default() += v - frames0.get(k).copied().unwrap_or(0);
    }
    let total: u64 = per_kind.values().sum();
    println!(
        "idle {:.1} s (load {}): all daemons together {:.2}% of a core ({:.3}% per daemon); \
         {:.1} frames/s per daemon ({})",
        secs,
        load(),
        cpu * 100.0,
        cpu * 100.0 / o.nodes as f64,
        total as f64 / secs / o.nodes as f64,
        kinds(&per_kind, secs * o.nodes as f64)
    );
    let (links, most) = degrees(&text(&exec(&mut clients, 0, "mesh list").await?));
    println!(
        "links after idling: {links} (mean degree {:.1}, most {most}; degree {} sought)",
        2.0 * links as f64 / o.nodes as f64,
        o.degree
    );
    let footprint = footprint(&lab, &all);
    println!(
        "per daemon: RSS {:.1} MiB mean / {:.1} MiB max, {:.1} threads mean / {} max, \
         {:.1} descriptors mean / {} max",
        footprint.rss_mean / 1024.0,
        footprint.rss_max / 1024.0,
        footprint.threads_mean,
        footprint.threads_max,
        footprint.fds_mean,
        footprint.fds_max
    );

    // Fan-out, beside its baselines.
    let rounds = o.rounds;
    let lan = tcp_rtt(Some((&hosts[0], &hosts[1], lab.addr(0))), rounds * 5)?;
    for _ in 0..10 {
        exec(&mut clients, 0, "version").await?;
        exec(&mut clients, 0, "mesh send all version").await?;
    }
    let mut local = Vec::with_capacity(rounds);
    let mut send = Vec::with_capacity(rounds);
    let mut incomplete = 0usize;
    let busy0 = cpu_ticks(&lab, &all);
    let mut missing = 0usize;
    for _ in 0..rounds {
        let t = Instant::now();
        exec(&mut clients, 0, "version").await?;
        local.push(t.elapsed());
        let t = Instant::now();
        let r = exec(&mut clients, 0, "mesh send all version").await?;
        send.push(t.elapsed());
        let answered = answers(&r);
        if answered != o.nodes - 1 || r.iter().any(Reply::has_error) {
            incomplete += 1;
            missing += (o.nodes - 1).saturating_sub(answered);
        }
    }
    println!(
        "latency over {rounds} rounds (load {})       p50        p99",
        load()
    );
    let row = |what: &str, v: &[Duration]| {
        let (p50, p99) = percentiles(v);
        println!("  {what:<40} {:>8.3} ms {:>8.3} ms", ms(p50), ms(p99));
        p50
    };
    let tcp = row("bare TCP round trip, across the bridge", &lan);
    row("version on one daemon (command socket)", &local);
    let p50 = row(
        &format!("mesh send all version ({} nodes)", o.nodes - 1),
        &send,
    );
    println!(
        "  every answer of all {} nodes in {} of {rounds} rounds ({missing} answers missing); \
         mesh send all p50 = {:.0}x the bridge's TCP RTT",
        o.nodes - 1,
        rounds - incomplete,
        ms(p50) / ms(tcp).max(1e-6)
    );
    let busy: f64 = cpu_ticks(&lab, &all)
        .iter()
        .zip(&busy0)
        .map(|(a, b)| a - b)
        .sum::<f64>()
        / clock_ticks();
    println!(
        "  CPU of all daemons per round (a local version and a mesh send all): {:.1} ms, \
         on {} cores",
        busy * 1e3 / rounds as f64,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // Healing: kill 10% (never node 0, which drives the bench).
    let kill = o.nodes.div_ceil(10).min(o.nodes - 1);
    let victims: Vec<usize> = (0..kill).map(|k| 1 + k * (o.nodes - 1) / kill).collect();
    // The send right after the kill goes over a connection of its own, at
    // the same time as the survivors are polled.
    let mut sender = SocketClient::connect(&lab.socket(0))
        .await
        .map_err(|e| e.to_string())?;
    let t = Instant::now();
    let mut dead = lab.kill(&victims);
    let survivors: Vec<usize> = all
        .iter()
        .copied()
        .filter(|i| !victims.contains(i))
        .collect();
    let (right_after, healed) = tokio::join!(
        async {
            let r = sender.exec("mesh send all version").await;
            (r, t.elapsed())
        },
        wait_heal(&mut clients, &survivors, &victims, t)
    );
    let (right_after, after_took) = (right_after.0.map_err(|e| e.to_string())?, right_after.1);
    let (gone, healed) = healed?;
    for c in &mut dead {
        let _ = c.wait();
    }
    let mut why: BTreeMap<String, usize> = BTreeMap::new();
    for r in right_after.iter().flat_map(|r| r.resp.iter().flatten()) {
        if r.is_error() {
            let dead = victims.iter().any(|&v| name(v) == r.host);
            let key = format!("{} node: {}", if dead { "dead" } else { "live" }, r.error);
            *why.entry(key).or_default() += 1;
        }
    }
    let errors: usize = right_after
        .iter()
        .flat_map(|r| r.resp.iter().flatten())
        .filter(|r| r.is_error())
        .count();
    println!(
        "healing: killed {kill} of {} ({}); no survivor lists a dead node {:.3} s later, \
         every survivor lists all {} survivors {:.3} s later; `mesh send all version` sent \
         right after the kill: {} answers and {errors} error rows in {:.1} ms",
        o.nodes,
        victims
            .iter()
            .map(|&v| name(v))
            .collect::<Vec<_>>()
            .join(","),
        gone.as_secs_f64(),
        survivors.len(),
        healed.as_secs_f64(),
        answers(&right_after),
        ms(after_took)
    );
    for (w, n) in &why {
        println!("  {n} x {w}");
    }
    let mut after = Vec::new();
    let mut complete = 0;
    for _ in 0..rounds.min(50) {
        let t = Instant::now();
        let r = exec(&mut clients, 0, "mesh send all version").await?;
        after.push(t.elapsed());
        if answers(&r) == survivors.len() - 1 {
            complete += 1;
        }
    }
    let (p50, p99) = percentiles(&after);
    println!(
        "  then, over {} rounds: p50 {:.3} ms, p99 {:.3} ms, all {} survivors answering in {complete}",
        after.len(),
        ms(p50),
        ms(p99),
        survivors.len() - 1
    );
    drop(clients);
    drop(lab);
    Ok(())
}

/// Frame counts per kind, each divided by `per`.
fn kinds(counts: &BTreeMap<String, u64>, per: f64) -> String {
    counts
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| format!("{k} {:.1}", *v as f64 / per))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Answers from other nodes (not error rows) in a reply.
fn answers(r: &[Reply]) -> usize {
    r.iter()
        .flat_map(|r| r.resp.iter().flatten())
        .filter(|r| !r.is_error())
        .count()
}

/// The links in a `mesh list`, and the most any node has.
fn degrees(list: &str) -> (usize, usize) {
    let mut per_node = vec![0usize];
    for line in list.lines() {
        if line.starts_with(" |--") {
            *per_node.last_mut().unwrap_or(&mut 0) += 1;
        } else if !line.trim().is_empty() {
            per_node.push(0);
        }
    }
    let total: usize = per_node.iter().sum();
    (total / 2, per_node.into_iter().max().unwrap_or(0))
}

fn text(r: &[Reply]) -> String {
    r.iter().map(Reply::text).collect::<Vec<_>>().join("\n")
}

type Clients = BTreeMap<usize, SocketClient>;

async fn exec(c: &mut Clients, i: usize, line: &str) -> Result<Vec<Reply>, String> {
    let client = c.get_mut(&i).ok_or(format!("no client for {}", name(i)))?;
    client
        .exec(line)
        .await
        .map_err(|e| format!("{}: `{line}`: {e}", name(i)))
}

async fn connect_all(lab: &Lab, which: &[usize], t0: Instant) -> Result<Clients, String> {
    let mut out = Clients::new();
    let mut last = String::new();
    while out.len() < which.len() {
        for &i in which {
            if out.contains_key(&i) {
                continue;
            }
            match SocketClient::connect(&lab.socket(i)).await {
                Ok(c) => {
                    out.insert(i, c);
                }
                Err(e) => last = e.to_string(),
            }
        }
        if t0.elapsed() > PATIENCE {
            return Err(format!(
                "{} of {} daemons have no command socket after {PATIENCE:?}: {last}",
                which.len() - out.len(),
                which.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(out)
}

/// Polls `which` until each reports mesh size `n`.
async fn wait_size(c: &mut Clients, which: &[usize], n: usize, t0: Instant) -> Result<(), String> {
    let mut done = vec![false; which.len()];
    let mut sizes = vec![0; which.len()];
    loop {
        for (k, &i) in which.iter().enumerate() {
            if done[k] {
                continue;
            }
            let r = exec(c, i, "mesh status").await?;
            let size = r
                .first()
                .and_then(|r| r.resp.as_ref())
                .and_then(|v| v.first())
                .and_then(|r| r.tabular.first())
                .and_then(|row| row.first())
                .and_then(|s| s.parse::<usize>().ok());
            sizes[k] = size.unwrap_or(0);
            done[k] = size == Some(n);
        }
        if done.iter().all(|d| *d) {
            return Ok(());
        }
        if t0.elapsed() > PATIENCE {
            let short: Vec<String> = which
                .iter()
                .zip(&done)
                .zip(&sizes)
                .filter(|((_, d), _)| !**d)
                .map(|((i, _), size)| format!("{} ({size})", name(*i)))
                .collect();
            return Err(format!(
                "{} daemons do not report mesh size {n} after {PATIENCE:?}: {}",
                short.len(),
                short.join(",")
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the survivors after a kill: returns when the last one stopped
/// listing any victim, and when the last one listed every survivor.
async fn wait_heal(
    c: &mut Clients,
    survivors: &[usize],
    victims: &[usize],
    t0: Instant,
) -> Result<(Duration, Duration), String> {
    let dead: Vec<String> = victims.iter().map(|&v| name(v)).collect();
    let mut gone: Vec<Option<Duration>> = vec![None; survivors.len()];
    let mut whole: Vec<Option<Duration>> = vec![None; survivors.len()];
    loop {
        for (k, &i) in survivors.iter().enumerate() {
            if whole[k].is_some() {
                continue;
            }
            let r = exec(c, i, "mesh list all").await?;
            let listed: Vec<String> = r
                .iter()
                .flat_map(|r| r.resp.iter().flatten())
                .filter_map(|r| serde_json::from_value::<Vec<String>>(r.data.clone()).ok())
                .flatten()
                .collect();
            let at = t0.elapsed();
            if !listed.iter().any(|n| dead.contains(n)) {
                gone[k].get_or_insert(at);
                if listed.len() == survivors.len() {
                    whole[k] = Some(at);
                }
            }
        }
        if whole.iter().all(Option::is_some) {
            let last =
                |v: &[Option<Duration>]| v.iter().flatten().max().copied().unwrap_or_default();
            return Ok((last(&gone), last(&whole)));
        }
        if t0.elapsed() > PATIENCE {
            return Err(format!(
                "{} survivors do not list the whole mesh after {PATIENCE:?}",
                whole.iter().filter(|w| w.is_none()).count()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Frames sent so far per kind, all of `which` together, from `mesh stats`.
async fn frames_out(c: &mut Clients, which: &[usize]) -> Result<BTreeMap<String, u64>, String> {
    let mut out = BTreeMap::new();
    for &i in which {
        for reply in exec(c, i, "mesh stats").await? {
            for r in reply.resp.iter().flatten() {
                let col = |name: &str| r.header.iter().position(|h| h == name);
                let (Some(kind), Some(sent)) = (col("kind"), col("frames out")) else {
                    continue;
                };
                for row in &r.tabular {
                    let n: u64 = row.get(sent).and_then(|s| s.parse().ok()).unwrap_or(0);
                    *out.entry(row[kind].clone()).or_default() += n;
                }
            }
        }
    }
    Ok(out)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentiles(v: &[Duration]) -> (Duration, Duration) {
    if v.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    let mut s = v.to_vec();
    s.sort();
    let at = |p: f64| s[((s.len() as f64 * p) as usize).min(s.len() - 1)];
    (at(0.50), at(0.99))
}

#[cfg(test)]
mod tests {
    use super::degrees;

    #[test]
    fn links_and_the_largest_degree_from_a_mesh_list() {
        let list = "a\n |--b\n |--c\nb\n |--a\nc\n |--a\n";
        assert_eq!(degrees(list), (2, 2));
        assert_eq!(degrees("a\n"), (0, 0));
        assert_eq!(degrees(""), (0, 0));
    }
}
