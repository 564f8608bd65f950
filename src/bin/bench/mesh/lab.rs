//! The bench's laboratory: network namespaces on one bridge, the daemons
//! in them, the host's ARP limits for the run, and what /proc says of each
//! daemon (CPU, memory, threads, descriptors); and a bare TCP round trip
//! across the same bridge, the baseline the fan-out is compared with.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Runs a command to its end: its output, trimmed, or its error output.
pub fn sh(args: &[&str]) -> Result<String, String> {
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
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Everything the run made; torn down on drop, also after an error.
pub(super) struct Lab {
    pub(super) dir: PathBuf,
    pub(super) tag: String,
    pub(super) subnet: u8,
    pub(super) hosts: Vec<String>,
    pub(super) switch: Option<String>,
    pub(super) daemons: Vec<Option<Child>>,
    pub(super) keep: bool,
    /// The host's ARP table limits before the run, put back on drop.
    pub(super) neigh: Vec<(&'static str, String)>,
}

/// The kernel's ARP table is one for all network namespaces, with one set
/// of limits (gc_thresh3 is 1024 by default): 128 namespaces that each
/// hold a few neighbours, and more while the mesh forms and nodes dial
/// around, overflow it ("neighbor table overflow!" in dmesg), and then a
/// node's packets, its discovery broadcasts among them, are dropped until
/// garbage collection frees an entry, for 20 s and more. Real nodes each
/// have a table of their own; the run gives every namespace the default
/// budget of a host (gc_thresh x nodes) and puts the limits back after.
pub(super) const NEIGH: [(&str, usize); 3] = [
    ("/proc/sys/net/ipv4/neigh/default/gc_thresh1", 128),
    ("/proc/sys/net/ipv4/neigh/default/gc_thresh2", 512),
    ("/proc/sys/net/ipv4/neigh/default/gc_thresh3", 1024),
];

pub(super) fn widen_neighbour_table(nodes: usize) -> Vec<(&'static str, String)> {
    let mut saved = Vec::new();
    for (path, per_host) in NEIGH {
        let Ok(old) = std::fs::read_to_string(path) else {
            continue;
        };
        let old = old.trim().to_string();
        let want = per_host * nodes;
        if old.parse::<usize>().is_ok_and(|v| v >= want) {
            continue;
        }
        if std::fs::write(path, want.to_string()).is_ok() {
            saved.push((path, old));
        }
    }
    saved
}

impl Lab {
    pub(super) fn new() -> Result<Lab, String> {
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
            daemons: Vec::new(),
            keep: false,
            neigh: Vec::new(),
        };
        let sw = format!("mmb{}-sw", lab.tag);
        sh(&["ip", "netns", "add", &sw])?;
        lab.switch = Some(sw.clone());
        sh(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        // A bridge learns addresses at once (no forwarding delay to wait out).
        sh(&[
            "ip",
            "-n",
            &sw,
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "forward_delay",
            "0",
        ])?;
        sh(&["ip", "-n", &sw, "link", "set", "br0", "up"])?;
        Ok(lab)
    }

    pub(super) fn addr(&self, i: usize) -> String {
        format!("10.79.{}.{}", self.subnet, 10 + i)
    }

    pub(super) fn add_host(&mut self, i: usize) -> Result<String, String> {
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

    pub(super) fn socket(&self, i: usize) -> PathBuf {
        self.dir.join(name(i)).join("minimega")
    }

    pub(super) fn pid(&self, i: usize) -> Option<u32> {
        self.daemons.get(i)?.as_ref().map(|c| c.id())
    }

    /// SIGKILLs each of `which` at once (waiting for one to die before
    /// killing the next would spread the kills out on a loaded machine);
    /// returns the children, to be reaped later.
    pub(super) fn kill(&mut self, which: &[usize]) -> Vec<Child> {
        let mut dead = Vec::new();
        for &i in which {
            if let Some(mut c) = self.daemons[i].take() {
                let _ = c.kill();
                dead.push(c);
            }
        }
        dead
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for d in self.daemons.iter_mut().flatten() {
            // SAFETY: signalling a child we started.
            unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for d in self.daemons.iter_mut().flatten() {
            while d.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        for ns in self.hosts.iter().chain(self.switch.iter()) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        for (path, old) in &self.neigh {
            let _ = std::fs::write(path, old);
        }
        if self.keep {
            eprintln!("bench mesh: logs left in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub(super) fn name(i: usize) -> String {
    format!("b{:03}", i + 1)
}

pub(super) fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no side effects.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as f64
}

/// utime + stime of each daemon, in clock ticks.
pub(super) fn cpu_ticks(lab: &Lab, which: &[usize]) -> Vec<f64> {
    which
        .iter()
        .map(|&i| {
            let Some(pid) = lab.pid(i) else { return 0.0 };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Fields after the command name, which ends at the last ')'.
            let rest = stat.rsplit_once(')').map(|r| r.1).unwrap_or("");
            let f: Vec<&str> = rest.split_whitespace().collect();
            let get = |k: usize| f.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            // utime and stime are fields 14 and 15 of stat(5); 3 is f[0].
            get(11) + get(12)
        })
        .collect()
}

pub(super) struct Footprint {
    pub(super) rss_mean: f64,
    pub(super) rss_max: f64,
    pub(super) threads_mean: f64,
    pub(super) threads_max: usize,
    pub(super) fds_mean: f64,
    pub(super) fds_max: usize,
}

pub(super) fn footprint(lab: &Lab, which: &[usize]) -> Footprint {
    let mut rss = Vec::new();
    let mut threads = Vec::new();
    let mut fds = Vec::new();
    for &i in which {
        let Some(pid) = lab.pid(i) else { continue };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| -> f64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        };
        rss.push(field("VmRSS:"));
        threads.push(field("Threads:") as usize);
        fds.push(
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|d| d.count())
                .unwrap_or(0),
        );
    }
    let n = rss.len().max(1) as f64;
    Footprint {
        rss_mean: rss.iter().sum::<f64>() / n,
        rss_max: rss.iter().copied().fold(0.0, f64::max),
        threads_mean: threads.iter().sum::<usize>() as f64 / n,
        threads_max: threads.iter().copied().max().unwrap_or(0),
        fds_mean: fds.iter().sum::<usize>() as f64 / n,
        fds_max: fds.iter().copied().max().unwrap_or(0),
    }
}

/// Enters a network namespace on this thread only.
pub(super) fn enter(ns: &str) -> Result<(), String> {
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
pub(super) fn tcp_rtt(
    lan: Option<(&str, &str, String)>,
    rounds: usize,
) -> Result<Vec<Duration>, String> {
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
