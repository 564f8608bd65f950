//! A private Open vSwitch: its own ovsdb-server and ovs-vswitchd (userspace
//! datapath: these machines have no openvswitch kernel module) with their
//! own run, database and log directory, inside a network namespace the test
//! made, so concurrent tests never share a switch. Stopped on drop.
//! [`Site`] is such a namespace with its switch, for a daemon to run in.

use super::{unique_tag, wait_timeout, Bus, Daemon, DaemonOpts, Scratch};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Ovs {
    /// OVS_RUNDIR: `db.sock` is here.
    pub dir: PathBuf,
    pub netns: String,
    children: Vec<Child>,
}

fn env(c: &mut Command, dir: &Path) {
    for k in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
        c.env(k, dir);
    }
}

impl Ovs {
    pub fn start(netns: &str, dir: &Path) -> Ovs {
        std::fs::create_dir_all(dir).unwrap();
        let db = dir.join("conf.db");
        let ok = Command::new("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg("/usr/share/openvswitch/vswitch.ovsschema")
            .status()
            .expect("ovsdb-tool (install openvswitch-switch)");
        assert!(ok.success(), "ovsdb-tool create failed");
        let mut ovs = Ovs {
            dir: dir.to_path_buf(),
            netns: netns.to_string(),
            children: Vec::new(),
        };
        let spawn = |args: &[String]| {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", netns]).args(args);
            env(&mut c, dir);
            c.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        let d = dir.display();
        ovs.children.push(spawn(&[
            "ovsdb-server".into(),
            db.display().to_string(),
            format!("--remote=punix:{d}/db.sock"),
            format!("--unixctl={d}/ovsdb.ctl"),
            format!("--pidfile={d}/ovsdb.pid"),
            format!("--log-file={d}/ovsdb.log"),
        ]));
        let deadline = Instant::now() + Duration::from_secs(30);
        // The socket file exists from bind(2) on, a moment before
        // listen(2): wait until it takes a connection (a fresh CI machine
        // once lost that race: "Connection refused").
        while std::os::unix::net::UnixStream::connect(dir.join("db.sock")).is_err() {
            assert!(
                Instant::now() < deadline,
                "ovsdb-server does not listen on db.sock"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        ovs.vsctl(&["--no-wait", "init"]);
        ovs.children.push(spawn(&[
            "ovs-vswitchd".into(),
            format!("unix:{d}/db.sock"),
            format!("--unixctl={d}/vswitchd.ctl"),
            format!("--pidfile={d}/vswitchd.pid"),
            format!("--log-file={d}/vswitchd.log"),
        ]));
        // Up once it has told the database what it supports.
        while ovs.vsctl(&["get", "Open_vSwitch", ".", "iface_types"]) == "[]" {
            assert!(Instant::now() < deadline, "ovs-vswitchd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        ovs
    }

    /// `ovs-vsctl ARGS` against this switch; its trimmed output.
    pub fn vsctl(&self, args: &[&str]) -> String {
        let mut c = Command::new("ovs-vsctl");
        c.arg(format!("--db=unix:{}/db.sock", self.dir.display()))
            .arg("--timeout=30")
            .args(args);
        env(&mut c, &self.dir);
        let o = c.output().expect("ovs-vsctl");
        assert!(
            o.status.success(),
            "ovs-vsctl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// The environment a daemon needs to find this switch.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("OVS_RUNDIR".into(), self.dir.display().to_string())]
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            if wait_timeout(c, Duration::from_secs(10)).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn tag() -> String {
    format!(
        "{:x}",
        (std::process::id() as u64 * 31 + unique_tag()) % 0xfffff
    )
}

/// A network namespace of this test with its own Open vSwitch in it.
pub struct Site {
    ovs: Option<Ovs>,
    pub netns: String,
    pub scratch: Scratch,
}

impl Site {
    pub fn new(name: &str) -> Site {
        let netns = format!("mmnet{}", tag());
        super::netns::sh(&["ip", "netns", "add", &netns]);
        super::netns::sh(&["ip", "-n", &netns, "link", "set", "lo", "up"]);
        let scratch = Scratch::new(name);
        let mut s = Site {
            ovs: None,
            netns,
            scratch,
        };
        s.ovs = Some(Ovs::start(&s.netns, &s.scratch.path.join("ovs")));
        s
    }

    pub fn ovs(&self) -> &Ovs {
        self.ovs.as_ref().unwrap()
    }

    pub fn daemon(&self, bus: &Bus, base: Option<PathBuf>) -> Daemon {
        self.daemon_with(bus, base, false)
    }

    /// A daemon here that sees the host's cgroups (see
    /// [`DaemonOpts::host_cgroups`]).
    pub fn daemon_with(&self, bus: &Bus, base: Option<PathBuf>, host_cgroups: bool) -> Daemon {
        Daemon::start_with(
            bus,
            DaemonOpts {
                netns: Some(self.netns.clone()),
                env: self.ovs().env(),
                base,
                ready_within: Duration::from_secs(60),
                host_cgroups,
                ..DaemonOpts::default()
            },
        )
    }

    /// Output of a command in the namespace.
    pub fn sh(&self, cmd: &str) -> String {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.netns, "sh", "-c", cmd])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// The taps (and tunnels) the daemon made here.
    pub fn devices(&self) -> Vec<String> {
        let out = self.sh("ls /sys/class/net");
        out.split_whitespace()
            .filter(|n| n.starts_with("mega_") && *n != "mega_bridge")
            .map(String::from)
            .collect()
    }

    pub fn ports(&self, bridge: &str) -> Vec<String> {
        let br = self.ovs().vsctl(&["list-br"]);
        if !br.lines().any(|b| b == bridge) {
            return Vec::new();
        }
        self.ovs()
            .vsctl(&["list-ports", bridge])
            .lines()
            .map(String::from)
            .collect()
    }

    pub fn ifindex(&self, dev: &str) -> String {
        self.sh(&format!("cat /sys/class/net/{dev}/ifindex"))
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.ovs.take();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
    }
}
