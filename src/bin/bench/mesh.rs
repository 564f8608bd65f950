//! `bench mesh`: N daemons, each in its own network namespace on one
//! private bridge (so discovery is the real UDP broadcast, and every daemon
//! uses port 9000) and on its own private D-Bus bus. Measures the time from
//! spawning them until every daemon reports mesh size N, and the latency of
//! `mesh send all version` as a D-Bus client sees it, beside bare TCP round
//! trips (loopback, and across the same bridge) and a local `version` over
//! D-Bus, all in the same run. Needs root (network namespaces).

use minimega::config::Bus;
use minimega::dbus::client::Client;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const PORT: u16 = 9000;

struct Opts {
    nodes: usize,
    degree: usize,
    rounds: usize,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        nodes: 16,
        degree: 3,
        rounds: 200,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |what: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{what} needs a number"))
        };
        match a.trim_start_matches('-') {
            "nodes" => o.nodes = num("--nodes")?,
            "degree" => o.degree = num("--degree")?,
            "rounds" => o.rounds = num("--rounds")?,
            _ => return Err(format!("unknown argument `{a}`")),
        }
    }
    if !(2..=200).contains(&o.nodes) || o.rounds == 0 {
        return Err("--nodes must be 2 to 200 and --rounds at least 1".into());
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
    match bench(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench mesh: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if !out.status.success() {
        return Err(format!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Everything the run made; torn down on drop, also after an error.
struct Lab {
    dir: PathBuf,
    tag: String,
    subnet: u8,
    hosts: Vec<String>,
    switch: Option<String>,
    buses: Vec<Child>,
    daemons: Vec<Child>,
}

impl Lab {
    fn new() -> Result<Lab, String> {
        let pid = std::process::id();
        let dir = PathBuf::from(format!("/var/tmp/minimega-bench-mesh-{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut lab = Lab {
            dir,
            tag: format!("{:x}", pid % 0xfffff),
            subnet: (pid % 200) as u8 + 20,
            hosts: Vec::new(),
            switch: None,
            buses: Vec::new(),
            daemons: Vec::new(),
        };
        let sw = format!("mmb{}-sw", lab.tag);
        sh(&["ip", "netns", "add", &sw])?;
        lab.switch = Some(sw.clone());
        sh(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        sh(&["ip", "-n", &sw, "link", "set", "br0", "up"])?;
        Ok(lab)
    }

    fn addr(&self, i: usize) -> String {
        format!("10.79.{}.{}", self.subnet, 10 + i)
    }

    fn add_host(&mut self, i: usize) -> Result<String, String> {
        let sw = self.switch.clone().unwrap_or_default();
        let ns = format!("mmb{}-h{i}", self.tag);
        let outside = format!("vb{}h{i}", self.tag);
        sh(&["ip", "netns", "add", &ns])?;
        self.hosts.push(ns.clone());
        sh(&[
            "ip", "link", "add", &outside, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])?;
        sh(&["ip", "link", "set", &outside, "netns", &sw])?;
        sh(&[
            "ip", "-n", &sw, "link", "set", &outside, "master", "br0", "up",
        ])?;
        let cidr = format!("{}/24", self.addr(i));
        sh(&["ip", "-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
        sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A private bus; returns its address once it listens.
    fn start_bus(&mut self, i: usize) -> Result<String, String> {
        let sock = self.dir.join(format!("bus{i}.sock"));
        let conf = self.dir.join(format!("bus{i}.conf"));
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                sock.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--print-address"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("dbus-daemon: {e} (install the dbus package)"))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        self.buses.push(child);
        Ok(format!("unix:path={}", sock.display()))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for d in &mut self.daemons {
            // SAFETY: signalling a child we started.
            unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for d in &mut self.daemons {
            while d.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        for b in &mut self.buses {
            let _ = b.kill();
            let _ = b.wait();
        }
        for ns in self.hosts.iter().chain(self.switch.iter()) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn name(i: usize) -> String {
    format!("b{:02}", i + 1)
}

fn bench(o: &Opts) -> Result<(), String> {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("minimega")))
        .filter(|p| p.exists())
        .ok_or("no minimega binary beside bench (cargo build --release)")?;
    let mut lab = Lab::new()?;
    let key = lab.dir.join("mesh.key");
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret).map_err(|e| e.to_string())?;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&key, hex).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| e.to_string())?;

    let mut buses = Vec::new();
    let mut hosts = Vec::new();
    for i in 0..o.nodes {
        hosts.push(lab.add_host(i)?);
        buses.push(lab.start_bus(i)?);
    }
    let broadcast = format!("10.79.{}.255", lab.subnet);

    // Formation: spawn every daemon at once, poll each until it reports
    // the whole mesh.
    let t0 = Instant::now();
    for i in 0..o.nodes {
        let base = lab.dir.join(name(i));
        let log = std::fs::File::create(lab.dir.join(format!("{}.log", name(i))))
            .map_err(|e| e.to_string())?;
        let child = Command::new("ip")
            .args(["netns", "exec", &hosts[i]])
            .arg(&exe)
            .args(["-base", &base.display().to_string()])
            .args(["-port", &PORT.to_string(), "-nostdin"])
            .args(["-hostname", &name(i)])
            .args(["-degree", &o.degree.to_string()])
            .args(["-meshkey", &key.display().to_string()])
            .args(["-broadcast", &broadcast])
            .args(["-bus", &buses[i], "-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", exe.display()))?;
        lab.daemons.push(child);
    }
    let spawned = t0.elapsed();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (clients, ready, formed) = rt.block_on(form(&buses, o.nodes, t0))?;

    let links = rt.block_on(async {
        clients[0]
            .exec("mesh list")
            .await
            .map(|r| r.text.matches(" |--").count() / 2)
            .unwrap_or(0)
    });

    // Latencies.
    let rounds = o.rounds;
    let tcp_lo = tcp_rtt(None, rounds * 5)?;
    let tcp_lan = tcp_rtt(Some((&hosts[0], &hosts[1], lab.addr(0))), rounds * 5)?;
    let (local, send, errors) = rt.block_on(async {
        let c = &clients[0];
        for _ in 0..20 {
            let _ = c.exec("version").await;
            let _ = c.exec("mesh send all version").await;
        }
        let mut local = Vec::with_capacity(rounds);
        let mut send = Vec::with_capacity(rounds);
        let mut errors = 0usize;
        for _ in 0..rounds {
            let t = Instant::now();
            let _ = c.exec("version").await;
            local.push(t.elapsed());
            let t = Instant::now();
            match c.exec("mesh send all version").await {
                Ok(r) if r.hosts.len() == o.nodes - 1 && !r.has_error() => {}
                _ => errors += 1,
            }
            send.push(t.elapsed());
        }
        (local, send, errors)
    });

    println!(
        "bench mesh: {} daemons, degree {}, each in its own network namespace on one bridge",
        o.nodes, o.degree
    );
    println!(
        "formed: every daemon reports mesh size {} {:.3} s after the first was spawned (target < 3 s)",
        o.nodes,
        formed.as_secs_f64()
    );
    println!(
        "        spawning took {:.3} s; the last daemon answered on D-Bus at {:.3} s; {links} links",
        spawned.as_secs_f64(),
        ready.as_secs_f64()
    );
    println!(
        "latency over {rounds} rounds (tcp: {} rounds)   p50        p99",
        rounds * 5
    );
    let row = |what: &str, v: &[Duration]| {
        let (p50, p99) = percentiles(v);
        println!("  {what:<38} {:>8.3} ms {:>8.3} ms", ms(p50), ms(p99));
        p50
    };
    let lo = row("bare TCP round trip, loopback", &tcp_lo);
    let lan = row("bare TCP round trip, across the bridge", &tcp_lan);
    row("version on one daemon, over D-Bus", &local);
    let p50 = row(
        &format!("mesh send all version ({} nodes)", o.nodes - 1),
        &send,
    );
    println!(
        "  mesh send all p50 = {:.0}x bridge TCP RTT, {:.0}x loopback TCP RTT (target p50 < 10 ms)",
        ms(p50) / ms(lan).max(1e-6),
        ms(p50) / ms(lo).max(1e-6)
    );
    if errors > 0 {
        println!("  {errors} of {rounds} mesh sends lacked an answer or had an error");
    }
    drop(clients);
    drop(rt);
    drop(lab);
    Ok(())
}

/// Polls every daemon until all report `n` nodes. Returns the clients,
/// when the last daemon first answered, and when the mesh was complete.
async fn form(
    buses: &[String],
    n: usize,
    t0: Instant,
) -> Result<(Vec<Client>, Duration, Duration), String> {
    let mut clients: Vec<Option<Client>> = (0..n).map(|_| None).collect();
    let mut answered: Vec<Option<Duration>> = vec![None; n];
    let mut last_error = String::new();
    let deadline = t0 + Duration::from_secs(60);
    loop {
        let mut complete = true;
        for i in 0..n {
            if clients[i].is_none() {
                match Client::connect(&Bus::Address(buses[i].clone())).await {
                    Ok(c) => clients[i] = Some(c),
                    Err(e) => last_error = e.to_string(),
                }
            }
            let Some(c) = &clients[i] else {
                complete = false;
                continue;
            };
            match c.exec(".json true mesh status").await {
                Ok(r) => {
                    answered[i].get_or_insert(t0.elapsed());
                    if mesh_size(&r.json) != Some(n) {
                        complete = false;
                    }
                }
                Err(e) => {
                    last_error = e.to_string();
                    complete = false;
                }
            }
        }
        if complete {
            let formed = t0.elapsed();
            let ready = answered.iter().flatten().max().copied().unwrap_or_default();
            return Ok((clients.into_iter().flatten().collect(), ready, formed));
        }
        if Instant::now() > deadline {
            let sizes: Vec<String> = answered
                .iter()
                .map(|a| if a.is_some() { "up" } else { "down" }.to_string())
                .collect();
            return Err(format!(
                "no full mesh within 60 s (daemons: {sizes:?}; last error: {last_error})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The mesh size in `mesh status`'s JSON answer.
fn mesh_size(json: &str) -> Option<usize> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.get(0)?
        .get("Tabular")?
        .get(0)?
        .get(0)?
        .as_str()?
        .parse()
        .ok()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentiles(v: &[Duration]) -> (Duration, Duration) {
    let mut s = v.to_vec();
    s.sort();
    let at = |p: f64| s[((s.len() as f64 * p) as usize).min(s.len() - 1)];
    (at(0.50), at(0.99))
}

/// Enters a network namespace on this thread only.
fn enter(ns: &str) -> Result<(), String> {
    let f = std::fs::File::open(Path::new("/run/netns").join(ns)).map_err(|e| e.to_string())?;
    // SAFETY: setns on a descriptor we own, for this thread.
    let rc = unsafe {
        libc::setns(
            std::os::unix::io::AsRawFd::as_raw_fd(&f),
            libc::CLONE_NEWNET,
        )
    };
    if rc != 0 {
        return Err(format!("setns {ns}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Round trips of 64 bytes over one TCP connection: on loopback, or from
/// one namespace to another across the bridge.
fn tcp_rtt(lan: Option<(&str, &str, String)>, rounds: usize) -> Result<Vec<Duration>, String> {
    let (tx, rx) = std::sync::mpsc::channel::<Result<std::net::SocketAddr, String>>();
    let server_ns = lan.as_ref().map(|l| l.0.to_string());
    let bind = lan
        .as_ref()
        .map(|l| format!("{}:0", l.2))
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let server = std::thread::spawn(move || {
        let setup = || -> Result<std::net::TcpListener, String> {
            if let Some(ns) = &server_ns {
                enter(ns)?;
            }
            std::net::TcpListener::bind(&bind).map_err(|e| e.to_string())
        };
        let listener = match setup() {
            Ok(l) => l,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let _ = tx.send(listener.local_addr().map_err(|e| e.to_string()));
        if let Ok((mut s, _)) = listener.accept() {
            let _ = s.set_nodelay(true);
            let mut buf = [0u8; 64];
            while s.read_exact(&mut buf).is_ok() {
                if s.write_all(&buf).is_err() {
                    break;
                }
            }
        }
    });
    let addr = rx.recv().map_err(|e| e.to_string())??;
    let client_ns = lan.as_ref().map(|l| l.1.to_string());
    let client = std::thread::spawn(move || -> Result<Vec<Duration>, String> {
        if let Some(ns) = &client_ns {
            enter(ns)?;
        }
        let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut buf = [7u8; 64];
        let mut out = Vec::with_capacity(rounds);
        for i in 0..rounds + 50 {
            let t = Instant::now();
            s.write_all(&buf).map_err(|e| e.to_string())?;
            s.read_exact(&mut buf).map_err(|e| e.to_string())?;
            if i >= 50 {
                out.push(t.elapsed());
            }
        }
        Ok(out)
    });
    let r = client
        .join()
        .map_err(|_| "client thread panicked".to_string())?;
    let _ = server.join();
    r
}
