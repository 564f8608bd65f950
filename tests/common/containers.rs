//! Containers in tests: a busybox file system with our agent
//! (scripts/container-fs.sh), the daemon's container network namespaces
//! and monitors, and a guard that ends what a failed test left.

#![allow(dead_code)]

use super::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const AGENT: &str = env!("CARGO_BIN_EXE_miniccc");
pub const SEEN: Duration = Duration::from_secs(60);

/// A busybox root file system with our agent, and `init` as its /init.
pub fn filesystem(dir: &Path, init: &str) -> PathBuf {
    let fs = dir.join("fs");
    let o = Command::new(project_root().join("scripts/container-fs.sh"))
        .arg(&fs)
        .arg(AGENT)
        .output()
        .unwrap();
    assert!(o.status.success(), "container-fs.sh: {}", stderr(&o));
    let p = fs.join("init");
    let _ = std::fs::remove_file(&p);
    std::fs::write(&p, init).unwrap();
    set_mode(&p, 0o755);
    fs
}

/// Every file under `dir`, relative, sorted: what the file system holds.
pub fn tree(dir: &Path) -> Vec<String> {
    let o = Command::new("find").arg(dir).output().unwrap();
    let mut v: Vec<String> = stdout(&o).lines().map(String::from).collect();
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
    stdout(&o)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

pub fn no_monitors(base: &Path) -> bool {
    monitors(base).is_empty()
}

/// Ends the containers a failed test left: SIGTERM lets each monitor take
/// its namespace and cgroups down; SIGKILL after a while, then the rest.
pub struct CtGuard(pub PathBuf);

impl Drop for CtGuard {
    fn drop(&mut self) {
        for p in monitors(&self.0) {
            unsafe { libc::kill(p, libc::SIGTERM) };
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !no_monitors(&self.0) && std::time::Instant::now() < deadline {
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

