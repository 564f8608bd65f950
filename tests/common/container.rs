//! Containers in tests. For tests/container_shim.rs: the container
//! monitor run as the daemon runs it (a spec, a memory cgroup, a QMP
//! client), and looks at what it leaves on the host. For the tests through
//! the daemon: a file system with our agent, the daemon's container
//! network namespaces and monitors, and a guard that ends what a failed
//! test left.

#![allow(dead_code)]

use super::ovs::Site;
use super::{project_root, unique_tag, Bus, Daemon, Scratch, BIN};
use minimega::container::spec::{shim_args, Spec};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn wait_until(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    super::wait_for(what, Duration::from_secs(secs), || ok().then_some(()));
}

pub fn sh(cmd: &str) -> (bool, String) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A busybox file system at `fs` (with `agent` in it when given), and
/// `init` (executable) as its /init.
fn make_filesystem(fs: &Path, agent: Option<&str>, init: &str) {
    let o = Command::new(project_root().join("scripts/container-fs.sh"))
        .arg(fs)
        .args(agent)
        .output()
        .unwrap();
    assert!(o.status.success(), "container-fs.sh: {}", super::stderr(&o));
    let p = fs.join("init");
    let _ = std::fs::remove_file(&p);
    std::fs::write(&p, init).unwrap();
    super::set_mode(&p, 0o755);
}

/// A busybox file system with `init` as its /init.
pub fn filesystem(dir: &Path, init: &str) {
    make_filesystem(dir, None, init);
}

pub fn tree_listing(dir: &Path) -> String {
    sh(&format!("cd {} && find . | sort", dir.display())).1
}

/// A v1 memory cgroup with a limit, standing in for the daemon's VM
/// cgroup (None on a host without the v1 memory controller).
pub struct MemCgroup(pub Option<PathBuf>);

impl MemCgroup {
    pub fn new(tag: &str, mib: u64) -> MemCgroup {
        let base = Path::new("/sys/fs/cgroup/memory");
        if !base.join("memory.limit_in_bytes").exists() {
            return MemCgroup(None);
        }
        let dir = base.join(tag);
        std::fs::create_dir(&dir).unwrap();
        let bytes = (mib << 20).to_string();
        std::fs::write(dir.join("memory.limit_in_bytes"), &bytes).unwrap();
        let _ = std::fs::write(dir.join("memory.memsw.limit_in_bytes"), &bytes);
        MemCgroup(Some(dir))
    }
    pub fn add(&self, pid: u32) {
        if let Some(d) = &self.0 {
            std::fs::write(d.join("cgroup.procs"), pid.to_string()).unwrap();
        }
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        if let Some(d) = &self.0 {
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// The monitor as the daemon runs it; killed and cleaned up on drop if a
/// test fails halfway.
pub struct Shim {
    pub child: Child,
    pub spec: Spec,
    pub qmp: PathBuf,
}

impl Shim {
    pub fn start(spec: &Spec, cg: &MemCgroup) -> Shim {
        std::fs::write(Spec::path(&spec.vmdir), serde_json::to_vec(spec).unwrap()).unwrap();
        let log = std::fs::File::create(spec.vmdir.join("qemu.log")).unwrap();
        // A socket left by a killed monitor is not a listening one.
        let _ = std::fs::remove_file(spec.vmdir.join("qmp"));
        let child = Command::new(BIN)
            .args(shim_args(&spec.name, &spec.vmdir))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let qmp = spec.vmdir.join("qmp");
        // Listening (in /proc/net/unix), without dialling: the first
        // connection is what makes the container, after the cgroup.
        let name = qmp.display().to_string();
        wait_until("the QMP socket", 10, || {
            std::fs::read_to_string("/proc/net/unix")
                .is_ok_and(|t| t.lines().any(|l| l.ends_with(&name)))
        });
        cg.add(child.id());
        Shim {
            child,
            spec: spec.clone(),
            qmp,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.spec.vmdir.join("qemu.log")).unwrap_or_default()
    }

    pub fn wait_exit(&mut self, secs: u64) -> i32 {
        let mut code = None;
        wait_until("the monitor's exit", secs, || {
            code = self
                .child
                .try_wait()
                .unwrap()
                .map(|s| s.code().unwrap_or(-1));
            code.is_some()
        });
        code.unwrap()
    }

    /// Nothing the monitor made is left on the host.
    pub fn assert_clean(&self) {
        let ns = sh("ip netns list").1;
        assert!(!ns.contains(&self.spec.netns), "netns left: {ns}");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let vmdir = self.spec.vmdir.display().to_string();
        assert!(!mounts.contains(&vmdir), "mounts left under {vmdir}");
        for c in ["freezer", "devices"] {
            let d = Path::new("/sys/fs/cgroup")
                .join(c)
                .join(&self.spec.cgroup_leaf);
            assert!(!d.exists(), "{} left", d.display());
        }
        let (_, ps) = sh("ps -eo args");
        let spec_path = Spec::path(&self.spec.vmdir).display().to_string();
        assert!(!ps.contains(&spec_path), "processes left: {ps}");
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let fz = Path::new("/sys/fs/cgroup/freezer").join(&self.spec.cgroup_leaf);
        if fz.exists() {
            let _ = std::fs::write(fz.join("freezer.state"), "THAWED");
            std::thread::sleep(Duration::from_millis(300));
            let _ = std::fs::remove_dir(&fz);
        }
        let _ =
            std::fs::remove_dir(Path::new("/sys/fs/cgroup/devices").join(&self.spec.cgroup_leaf));
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.spec.netns])
            .output();
    }
}

/// A line-at-a-time QMP client.
pub struct Qmp {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

impl Qmp {
    /// Connects and reads the greeting; None if the monitor closed first.
    pub fn connect(path: &Path) -> Option<(Qmp, Value)> {
        let s = UnixStream::connect(path).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut q = Qmp {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        let g = q.line()?;
        Some((q, g))
    }
    pub fn line(&mut self) -> Option<Value> {
        let mut l = String::new();
        match self.r.read_line(&mut l) {
            Ok(n) if n > 0 => Some(serde_json::from_str(&l).unwrap()),
            _ => None,
        }
    }
    pub fn exec(&mut self, cmd: &str) -> Value {
        writeln!(self.w, "{}", json!({"execute": cmd, "id": cmd})).unwrap();
        loop {
            let v = self.line().expect("an answer");
            if v.get("event").is_none() {
                assert_eq!(v["id"], cmd);
                return v;
            }
        }
    }
    pub fn event(&mut self) -> Value {
        self.line().expect("an event")
    }
}

pub fn spec(s: &Scratch, tag: &str, init: Vec<&str>) -> Spec {
    let vmdir = s.path.join("vm");
    std::fs::create_dir_all(&vmdir).unwrap();
    Spec {
        name: tag.into(),
        uuid: "0e7a9ad6-1c7b-4d8a-9f7e-5e4d3c2b1a09".into(),
        hostname: format!("{tag}-host"),
        vmdir,
        filesystem: s.path.join("fs"),
        snapshot: true,
        init: init.into_iter().map(String::from).collect(),
        preinit: String::new(),
        fifos: 0,
        volumes: vec![],
        nics: vec![],
        netns: tag.into(),
        memory: 64,
        cgroup_leaf: tag.into(),
    }
}

pub fn tag(what: &str) -> String {
    format!("mmt{what}{}x{}", std::process::id() % 100000, unique_tag())
}

pub fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map_or(0, |t| t.lines().count())
}

pub const AGENT: &str = env!("CARGO_BIN_EXE_miniccc");
pub const SEEN: Duration = Duration::from_secs(60);

/// `dir/fs`: a busybox root file system with our agent, and `init`
/// (executable) as its /init.
pub fn agent_filesystem(dir: &Path, init: &str) -> PathBuf {
    let fs = dir.join("fs");
    make_filesystem(&fs, Some(AGENT), init);
    fs
}

/// Every file under `dir`, relative, sorted: what the file system holds.
pub fn tree(dir: &Path) -> Vec<String> {
    let o = Command::new("find").arg(dir).output().unwrap();
    let mut v: Vec<String> = super::stdout(&o).lines().map(String::from).collect();
    v.sort();
    v
}

pub fn count(f: &Path) -> u64 {
    std::fs::read_to_string(f)
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0)
}

/// The network namespaces of the daemon's containers (its tag in the name).
pub fn netns_of(d: &Daemon) -> Vec<String> {
    let prefix = format!("minimega-{}-", minimega::base::tag(&d.base));
    std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Pids of the monitors of the base directory's containers.
pub fn monitors(base: &Path) -> Vec<i32> {
    let o = Command::new("pgrep")
        .args(["-f", &format!("container-shim .*{}/", base.display())])
        .output()
        .unwrap();
    super::stdout(&o)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

pub fn no_monitors(base: &Path) -> bool {
    monitors(base).is_empty()
}

/// A daemon of its own on a switch of its own (its network namespace,
/// the host's mounts and cgroups), whose containers are ended when it is
/// dropped, also after a failed assertion. Fields drop in order: the
/// containers, the daemon, its bus, the switch.
pub struct CtHost {
    _guard: CtGuard,
    pub d: Daemon,
    pub bus: Bus,
    pub site: Site,
}

pub fn ct_host(tag: &str) -> CtHost {
    let site = Site::new(tag);
    let bus = Bus::start();
    let d = site.daemon_with(&bus, None, true);
    CtHost {
        _guard: CtGuard(d.base.clone()),
        d,
        bus,
        site,
    }
}

/// Ends the containers a failed test left: SIGTERM lets each monitor take
/// its namespace and cgroups down; SIGKILL after a while, then the rest.
pub struct CtGuard(pub PathBuf);

impl Drop for CtGuard {
    fn drop(&mut self) {
        for p in monitors(&self.0) {
            unsafe { libc::kill(p, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !no_monitors(&self.0) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        for p in monitors(&self.0) {
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        let prefix = format!("minimega-{}-", minimega::base::tag(&self.0));
        for e in std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
        {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&prefix) {
                let _ = Command::new("ip").args(["netns", "delete", &n]).status();
            }
        }
    }
}
