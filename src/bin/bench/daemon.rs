//! A real `minimega` daemon (the binary next to this one) on a private
//! D-Bus bus in a scratch directory, for the benchmarks; everything it
//! started is stopped and the directory removed on drop, also on error.

use minimega::config::Bus;
use minimega::dbus::client::Client;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Bench {
    pub dir: PathBuf,
    pub children: Vec<Child>,
    pub rt: tokio::runtime::Runtime,
    pub client: Client,
    pub daemon_pid: u32,
}

impl Drop for Bench {
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

impl Bench {
    /// `/var/tmp/minimega-bench-<what>-<pid>`, a bus and a daemon on it
    /// (with `extra` flags).
    pub fn start(what: &str, extra: &[&str]) -> Result<Bench, String> {
        let dir = PathBuf::from(format!(
            "/var/tmp/minimega-bench-{what}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut children = Vec::new();
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
        let read = BufReader::new(bus.stdout.take().ok_or("no bus output")?).read_line(&mut line);
        children.push(bus);
        read.map_err(|e| e.to_string())?;
        let address = format!("unix:path={}", sock.display());
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let minimega = exe.with_file_name("minimega");
        let daemon = Command::new(&minimega)
            .arg("-base")
            .arg(dir.join("base"))
            .args(["-port", &free_port_string()?])
            .args(["-nostdin", "-bus", &address, "-level", "warn"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("daemon.log")).map_err(|e| e.to_string())?)
            .env_remove("NOTIFY_SOCKET")
            .spawn()
            .map_err(|e| format!("{}: {e}", minimega.display()))?;
        let daemon_pid = daemon.id();
        children.push(daemon);
        let connected = rt.block_on(async {
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
        });
        let client = match connected {
            Ok(c) => c,
            Err(e) => {
                // Stop what was started before giving up.
                for mut c in children.into_iter().rev() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        Ok(Bench {
            dir,
            children,
            rt,
            client,
            daemon_pid,
        })
    }

    /// Runs a command; its error is ours.
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
}
