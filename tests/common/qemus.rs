//! The QEMUs a test's daemon started, found from outside it: a daemon
//! stopped leaves its VMs running, so a test that launched any kills them
//! in Drop, also when it fails.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Live processes whose command line mentions `base` (the QEMUs of that
/// daemon: their QMP socket is under it).
pub fn qemus_under(base: &Path) -> Vec<u32> {
    let needle = base.to_string_lossy().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.starts_with("qemu-system") && cmd.contains(&needle) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// A process that exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("");
    state != "Z" && state != "X"
}

/// Kills every QEMU under `base` on drop and waits for them to go.
pub struct QemuGuard {
    pub base: PathBuf,
}

impl Drop for QemuGuard {
    fn drop(&mut self) {
        let pids = qemus_under(&self.base);
        for pid in &pids {
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
        for pid in &pids {
            super::wait_for("qemu to die", Duration::from_secs(10), || {
                (!alive(*pid)).then_some(())
            });
        }
    }
}
