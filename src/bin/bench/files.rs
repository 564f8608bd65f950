//! `bench files`: `file get` of a large file between two daemons, each in
//! its own network namespace (as test-bed nodes are), joined by a veth
//! pair, beside a plain TCP copy of the same file with nc between the same
//! namespaces, in the same run, alternating. Both copies end up on the
//! same file system; `file get` is timed until the file is in place (which
//! includes its checksums, its MACs and its final fdatasync; nc's copy is
//! left in the page cache). Needs root, nc (netcat-openbsd) and cmp.

use super::load;
use super::mesh::sh;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const PORT: u16 = 9000;
const NC_PORT: u16 = 9100;

struct Opts {
    mib: u64,
    rounds: usize,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        mib: 1024,
        rounds: 2,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |what: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{what} needs a number"))
        };
        match a.trim_start_matches('-') {
            "size" => o.mib = num("--size")?,
            "rounds" => o.rounds = num("--rounds")? as usize,
            _ => return Err(format!("unknown argument `{a}`")),
        }
    }
    if o.mib == 0 || o.rounds == 0 {
        return Err("--size (MiB) and --rounds must be at least 1".into());
    }
    Ok(o)
}

pub fn run(args: &[String]) -> ExitCode {
    super::as_root("files", parse(args), bench)
}

/// Two namespaces, two daemons; torn down on drop, also after an error.
struct Pair {
    dir: PathBuf,
    ns: Vec<String>,
    daemons: Vec<Child>,
    exe: PathBuf,
}

impl Pair {
    fn new(exe: PathBuf) -> Result<Pair, String> {
        let pid = std::process::id();
        let dir = PathBuf::from(format!("/var/tmp/minimega-bench-files-{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let tag = format!("{:x}", pid % 0xfffff);
        let mut p = Pair {
            dir,
            ns: Vec::new(),
            daemons: Vec::new(),
            exe,
        };
        for side in ["a", "b"] {
            let ns = format!("mmf{tag}-{side}");
            sh(&["ip", "netns", "add", &ns])?;
            p.ns.push(ns);
        }
        let (a, b) = (p.ns[0].clone(), p.ns[1].clone());
        sh(&[
            "ip", "-n", &a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
            &b,
        ])?;
        for (ns, ip) in [(&a, "10.81.0.1/24"), (&b, "10.81.0.2/24")] {
            sh(&["ip", "-n", ns, "addr", "add", ip, "dev", "eth0"])?;
            sh(&["ip", "-n", ns, "link", "set", "eth0", "up"])?;
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        }
        let key = p.dir.join("mesh.key");
        std::fs::write(&key, "YmVuY2ggZmlsZXMgbWVzaCBrZXkgMDEyMzQ1Njc4OQ==\n")
            .map_err(|e| e.to_string())?;
        for (i, name) in ["fa", "fb"].iter().enumerate() {
            let base = p.base(i);
            std::fs::create_dir_all(base.join("files")).map_err(|e| e.to_string())?;
            let log = std::fs::File::create(p.dir.join(format!("{name}.log")))
                .map_err(|e| e.to_string())?;
            let child = Command::new("ip")
                .args(["netns", "exec", &p.ns[i]])
                .arg(&p.exe)
                .arg("-base")
                .arg(&base)
                .args(["-bus", "none", "-nostdin", "-hostname", name])
                .args(["-port", &PORT.to_string(), "-meshkey"])
                .arg(&key)
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| e.to_string())?)
                .stderr(log)
                .spawn()
                .map_err(|e| e.to_string())?;
            p.daemons.push(child);
        }
        for i in 0..2 {
            let deadline = Instant::now() + Duration::from_secs(60);
            while p.mm(i, "version").is_err() {
                if Instant::now() > deadline {
                    return Err(format!(
                        "daemon {i} did not start (see {})",
                        p.dir.display()
                    ));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(p)
    }

    fn base(&self, i: usize) -> PathBuf {
        self.dir.join(format!("base{i}"))
    }

    fn files(&self, i: usize) -> PathBuf {
        self.base(i).join("files")
    }

    fn mm(&self, i: usize, line: &str) -> Result<String, String> {
        let base = self.base(i);
        let b = base.to_string_lossy();
        let exe = self.exe.to_string_lossy();
        let out = sh(&[&exe, "-base", &b, "-bus", "none", "-e", line])?;
        if out.starts_with("E: ") {
            return Err(out);
        }
        Ok(out)
    }

    fn in_ns(&self, i: usize, cmd: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns[i], "sh", "-c", cmd]);
        c
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for d in &mut self.daemons {
            // SAFETY: signalling a child we started.
            unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
        }
        for d in &mut self.daemons {
            let deadline = Instant::now() + Duration::from_secs(10);
            while d.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        for ns in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One nc copy into `dst`: seconds until the receiver has all of it.
fn nc_copy(p: &Pair, src: &Path, dst: &Path) -> Result<f64, String> {
    let mut rx = p
        .in_ns(1, &format!("exec nc -l -p {NC_PORT} > {}", dst.display()))
        .spawn()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let tx = p
        .in_ns(
            0,
            &format!("exec nc -N 10.81.0.2 {NC_PORT} < {}", src.display()),
        )
        .status()
        .map_err(|e| e.to_string())?;
    let rxs = rx.wait().map_err(|e| e.to_string())?;
    let secs = t.elapsed().as_secs_f64();
    if !tx.success() || !rxs.success() {
        return Err("nc failed".into());
    }
    Ok(secs)
}

/// One `file get`: seconds until the file is in place on the fetcher.
fn file_get(p: &Pair, name: &str) -> Result<f64, String> {
    let dst = p.files(1).join(name);
    let t = Instant::now();
    p.mm(1, &format!("file get {name}"))?;
    let deadline = t + Duration::from_secs(600);
    while !dst.exists() {
        if Instant::now() > deadline {
            return Err("file get did not finish in 10 minutes".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(t.elapsed().as_secs_f64())
}

fn same(a: &Path, b: &Path) -> bool {
    Command::new("cmp")
        .arg("-s")
        .arg(a)
        .arg(b)
        .status()
        .is_ok_and(|s| s.success())
}

fn bench(o: &Opts) -> Result<(), String> {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("minimega")))
        .filter(|p| p.exists())
        .ok_or("the minimega binary must be next to bench (cargo build --release)")?;
    let p = Pair::new(exe)?;
    p.mm(0, "mesh dial 10.81.0.2")?;
    let src = p.files(0).join("big.bin");
    sh(&[
        "sh",
        "-c",
        &format!("head -c {}M /dev/urandom > {}", o.mib, src.display()),
    ])?;
    let load_at_start = load();
    println!(
        "bench files: {} MiB, {} rounds, two daemons in two network namespaces over veth",
        o.mib, o.rounds
    );
    let (mut nc, mut get) = (Vec::new(), Vec::new());
    for round in 0..o.rounds {
        let copy = p.files(1).join("nc.out");
        let n = nc_copy(&p, &src, &copy)?;
        if !same(&src, &copy) {
            return Err("nc's copy differs".into());
        }
        let _ = std::fs::remove_file(&copy);
        let g = file_get(&p, "big.bin")?;
        if !same(&src, &p.files(1).join("big.bin")) {
            return Err("file get's copy differs".into());
        }
        p.mm(1, "file delete big.bin")?;
        let mbs = |s: f64| o.mib as f64 / s;
        println!(
            "  round {}: nc {n:.2} s ({:.0} MiB/s), file get {g:.2} s ({:.0} MiB/s), ratio {:.2}",
            round + 1,
            mbs(n),
            mbs(g),
            g / n
        );
        nc.push(n);
        get.push(g);
    }
    let best = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "best: nc {:.2} s, file get {:.2} s, ratio {:.2} (mean ratio {:.2}; target <= 1.3)",
        best(&nc),
        best(&get),
        best(&get) / best(&nc),
        mean(&get) / mean(&nc)
    );
    println!("load average at start: {load_at_start}; at end: {}", load());
    Ok(())
}
