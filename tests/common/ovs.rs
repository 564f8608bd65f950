//! A private Open vSwitch: its own ovsdb-server and ovs-vswitchd (userspace
//! datapath: these machines have no openvswitch kernel module) with their
//! own run, database and log directory, inside a network namespace the test
//! made, so concurrent tests never share a switch. Stopped on drop.

use super::wait_timeout;
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
        while !dir.join("db.sock").exists() {
            assert!(Instant::now() < deadline, "ovsdb-server made no db.sock");
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
