//! Shared by the integration tests: a private system bus carrying the
//! project's D-Bus policy, daemons on it with their own base directory and
//! mesh port, and the `minimega` binary as a user runs it. Everything is
//! torn down on drop, also when a test fails.

#![allow(dead_code)]

pub mod browser;
pub mod conn;
pub mod container;
pub mod guest;
pub mod netns;
pub mod ovs;
pub mod pty;
pub mod qemus;
pub mod testbed;
pub mod testbed_mesh;

#[allow(unused_imports)]
pub use conn::Conn;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_minimega");

/// A scratch directory under /var/tmp (never the shared /tmp), removed on drop.
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let root = Path::new("/var/tmp/minimega-tests");
        std::fs::create_dir_all(root).unwrap();
        let path = root.join(format!("{name}-{}-{}", std::process::id(), unique()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch { path }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A number unique within this test process.
pub fn unique_tag() -> u64 {
    unique()
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A free TCP port on loopback (racy in theory, fine for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A private `dbus-daemon` with the system bus's default policy plus
/// `systemd/org.minimega.Minimega1.conf`.
pub struct Bus {
    pub address: String,
    child: Child,
    _dir: Scratch,
}

impl Bus {
    pub fn start() -> Bus {
        let dir = Scratch::new("bus");
        let socket = dir.path.join("bus.sock");
        let template =
            std::fs::read_to_string(project_root().join("tests/data/system-bus.conf.in")).unwrap();
        let conf = template
            .replace("@SOCKET@", socket.to_str().unwrap())
            .replace(
                "@POLICY@",
                project_root()
                    .join("systemd/org.minimega.Minimega1.conf")
                    .to_str()
                    .unwrap(),
            );
        let conf_path = dir.path.join("bus.conf");
        std::fs::write(&conf_path, conf).unwrap();
        // Our scratch dirs are 0700 by default on some umasks; let other
        // users (the policy test's `nobody`) reach the socket.
        set_mode(&dir.path, 0o755);
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf_path.display()))
            .args(["--nofork", "--print-address"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (install the dbus package)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("unix:"), "dbus-daemon printed {line:?}");
        Bus {
            address: format!("unix:path={}", socket.display()),
            child,
            _dir: dir,
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A running `minimega` daemon on a private bus.
pub struct Daemon {
    pub bus: String,
    pub base: PathBuf,
    pub port: u16,
    pub name: String,
    pub log: PathBuf,
    child: Option<Child>,
    pub scratch: Scratch,
}

pub struct DaemonOpts<'a> {
    pub name: &'a str,
    pub extra: Vec<String>,
    /// Time to wait for READY=1.
    pub ready_within: Duration,
    /// Run inside this network namespace (`ip netns exec`).
    pub netns: Option<String>,
    /// Mesh port; default: a free port on this machine's loopback.
    pub port: Option<u16>,
    /// A config file; its settings then replace the harness's -hostname.
    pub config: Option<PathBuf>,
    /// A base directory of our own (e.g. one a crashed daemon left) instead
    /// of a fresh one.
    pub base: Option<PathBuf>,
    /// Extra environment (e.g. OVS_RUNDIR, PATH).
    pub env: Vec<(String, String)>,
    /// The daemon's binary: `minimega`, or `minimega-faults` (the same
    /// with its fault switch armed from MINIMEGA_FAULT).
    pub bin: &'static str,
    /// With `netns`: enter only the network namespace (`nsenter --net`),
    /// so the daemon sees the host's mounts, its cgroup hierarchies among
    /// them, as a daemon on a real host does (`ip netns exec` gives it a
    /// sysfs of its own, without them): containers need their freezer.
    pub host_cgroups: bool,
}

impl Default for DaemonOpts<'_> {
    fn default() -> Self {
        DaemonOpts {
            name: "node",
            extra: Vec::new(),
            ready_within: Duration::from_secs(20),
            netns: None,
            port: None,
            config: None,
            base: None,
            env: Vec::new(),
            bin: BIN,
            host_cgroups: false,
        }
    }
}

impl Daemon {
    pub fn start(bus: &Bus) -> Daemon {
        Daemon::start_with(bus, DaemonOpts::default())
    }

    /// Starts a daemon and waits for its READY=1 on a notify socket of our
    /// own, exactly as systemd would.
    pub fn start_with(bus: &Bus, opts: DaemonOpts) -> Daemon {
        let scratch = Scratch::new(opts.name);
        let base = opts.base.unwrap_or_else(|| scratch.path.join("base"));
        let port = opts.port.unwrap_or_else(free_port);
        let notify_path = scratch.path.join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let log = scratch.path.join("daemon.log");
        let mut cmd = match &opts.netns {
            Some(ns) if opts.host_cgroups => {
                // Only the network namespace: the host's mounts stay.
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}"))
                    .arg("--")
                    .arg(opts.bin);
                c
            }
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, opts.bin]);
                c
            }
            None => Command::new(opts.bin),
        };
        cmd.args([
            "-base",
            base.to_str().unwrap(),
            "-port",
            &port.to_string(),
            "-nostdin",
        ]);
        match &opts.config {
            Some(c) => cmd.arg("-config").arg(c),
            None => cmd.args(["-hostname", opts.name, "-level", "debug"]),
        };
        let child = cmd
            .args(&opts.extra)
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .env("NOTIFY_SOCKET", &notify_path)
            .env_remove("INVOCATION_ID")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .spawn()
            .unwrap();
        let mut d = Daemon {
            bus: bus.address.clone(),
            base,
            port,
            name: opts.name.to_string(),
            log,
            child: Some(child),
            scratch,
        };
        let deadline = Instant::now() + opts.ready_within;
        let mut buf = [0u8; 4096];
        loop {
            if let Ok(n) = notify.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                if msg.lines().any(|l| l == "READY=1") {
                    break;
                }
            }
            if let Some(status) = d.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "daemon exited with {status} before READY=1:\n{}",
                    d.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no READY=1 within {:?}:\n{}",
                opts.ready_within,
                d.log_text()
            );
        }
        d
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// `minimega -e <line>` against this daemon.
    pub fn e(&self, line: &str) -> Output {
        mm(&self.bus, &["-e", line])
    }

    /// The output of `minimega -e`, which must succeed.
    pub fn ok(&self, line: &str) -> String {
        let out = self.e(line);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "`{line}` failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        text.trim_end().to_string()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        wait_timeout(&mut child, Duration::from_secs(20)).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("daemon did not exit on SIGTERM:\n{}", self.log_text())
        })
    }

    /// Waits for a daemon that is to die by itself (a fault it was told
    /// to inject) to exit; its status.
    pub fn wait_dead(&mut self, limit: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        wait_timeout(&mut child, limit).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("daemon did not die within {limit:?}:\n{}", self.log_text())
        })
    }

    /// Kills the daemon with SIGKILL, as a crash would.
    pub fn crash(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            if wait_timeout(&mut c, Duration::from_secs(10)).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!("--- daemon log ({}) ---\n{}", self.name, self.log_text());
        }
    }
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the `minimega` binary with `args` on the given bus.
pub fn mm(bus: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `minimega` as a user runs it with no D-Bus at all: it uses the command
/// socket under `base`.
pub fn mm_nobus(base: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["-base", base.to_str().unwrap()])
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `minimega <args> -attach` on the given bus with `script` piped in: one
/// session over one connection.
pub fn attach(bus: &str, args: &[&str], script: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .arg("-attach")
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim_end().to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim_end().to_string()
}

/// Polls `f` until it returns Some, or panics after `limit` naming `what`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A `/proc/<pid>/status` memory figure in KiB (`VmRSS`, `VmHWM` ...).
pub fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Unmounts `0` (lazily) when dropped: a failed test must not leave a
/// guest's file system mounted inside a scratch directory, whose removal
/// would walk into the guest.
pub struct Unmount(pub PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        if let Some(p) = self.0.to_str().and_then(|p| std::ffi::CString::new(p).ok()) {
            unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) };
        }
    }
}
