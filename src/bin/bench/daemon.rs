//! A real `minimega` daemon (the binary next to this one) on a private
//! D-Bus bus in a scratch directory, optionally inside a network
//! namespace, and a client of it, for the benchmarks; everything it
//! started is stopped and the directory removed on drop, also on error.

use minimega::config::Bus;
use minimega::dbus::client::Client;
use minimega::vm::accel::Accel;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Removes the scratch directory and stops what we started, also on error.
pub struct Scratch {
    pub dir: PathBuf,
    pub children: Vec<Child>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            // SAFETY: a plain kill(2) of our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub fn free_port_string() -> Result<String, String> {
    free_port()
        .map(|p| p.to_string())
        .map_err(|e| e.to_string())
}

/// A real daemon (the `minimega` next to this binary) on a private bus,
/// optionally inside a network namespace, and a client of it.
pub struct Harness {
    pub rt: tokio::runtime::Runtime,
    pub client: Client,
    /// The private bus, for more clients of their own.
    pub address: String,
    pub daemon_pid: u32,
    pub scratch: Scratch,
}

impl Harness {
    pub fn start(
        name: &str,
        netns: Option<&str>,
        env: &[(String, String)],
        extra: &[&str],
    ) -> Result<Harness, String> {
        let dir = PathBuf::from(format!(
            "/var/tmp/minimega-bench-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut scratch = Scratch {
            dir: dir.clone(),
            children: Vec::new(),
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let sock = dir.join("bus.sock");
        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address"])
            .arg(format!("--address=unix:path={}", sock.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("dbus-daemon: {e}"))?;
        let mut line = String::new();
        BufReader::new(bus.stdout.take().ok_or("no bus output")?)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        scratch.children.push(bus);
        let address = format!("unix:path={}", sock.display());
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let minimega = exe.with_file_name("minimega");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&minimega);
                c
            }
            None => Command::new(&minimega),
        };
        let daemon = cmd
            .arg("-base")
            .arg(dir.join("base"))
            .args(["-port", &free_port_string()?])
            .args(["-nostdin", "-bus", &address, "-level", "warn"])
            .args(extra)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("daemon.log")).map_err(|e| e.to_string())?)
            .env_remove("NOTIFY_SOCKET")
            .spawn()
            .map_err(|e| format!("{}: {e}", minimega.display()))?;
        let daemon_pid = daemon.id();
        scratch.children.push(daemon);
        let client = rt.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(c) = Client::connect(&Bus::Address(address.clone())).await {
                    if c.exec("version").await.is_ok() {
                        return Ok(c);
                    }
                }
                if Instant::now() > deadline {
                    return Err("the daemon did not answer within 30 s".to_string());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })?;
        Ok(Harness {
            rt,
            client,
            address,
            daemon_pid,
            scratch,
        })
    }

    pub fn exec(&self, cmd: &str) -> Result<String, String> {
        let r = self
            .rt
            .block_on(self.client.exec(cmd))
            .map_err(|e| e.to_string())?;
        if r.has_error() {
            return Err(format!("`{cmd}`: {}", r.text));
        }
        Ok(r.text)
    }

    /// The accelerator the daemon found.
    pub fn accel(&self) -> Result<Accel, String> {
        let a = self.exec(".annotate false .headers false .columns accel host")?;
        Ok(if a.trim() == "kvm" {
            Accel::Kvm
        } else {
            Accel::Tcg
        })
    }
}
