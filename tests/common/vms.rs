//! VM helpers shared by the tests that launch real QEMUs: a guard that
//! kills what a failed test leaves, the records and QEMUs under a base
//! directory, and `vm info` as rows.

use super::qemus::{alive, qemus_under};
use super::{stdout, wait_for, Daemon};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Kills whatever QEMU a test left under its base directory and removes
/// the cgroups its VMs had, also when the test fails. Declared after the
/// daemon, so it runs before the daemon's scratch directory goes.
pub struct VmGuard {
    pub base: PathBuf,
}

impl Drop for VmGuard {
    fn drop(&mut self) {
        let mut cgroups: Vec<PathBuf> = Vec::new();
        for rec in records(&self.base) {
            if let Some(list) = rec["placed"]["cgroups"].as_array() {
                cgroups.extend(list.iter().filter_map(|v| v.as_str()).map(PathBuf::from));
            }
        }
        let pids = qemus_under(&self.base);
        for pid in &pids {
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
        for pid in &pids {
            wait_for("qemu to die", Duration::from_secs(10), || {
                (!alive(*pid)).then_some(())
            });
        }
        for c in cgroups {
            let _ = std::fs::remove_dir(c);
        }
    }
}

/// Every VM record under a base directory, as JSON.
pub fn records(base: &Path) -> Vec<Value> {
    let Ok(rd) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| std::fs::read(e.path().join("state.json")).ok())
        .filter_map(|d| serde_json::from_slice(&d).ok())
        .collect()
}

/// Numbered VM folders under the base directory.
pub fn vm_dirs(base: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(base)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .filter(|n| n.parse::<u64>().is_ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `vm info` as rows of column -> value.
pub fn vm_info(d: &Daemon) -> Vec<HashMap<String, String>> {
    let out = d.ok(".json true vm info");
    let v: Value = serde_json::from_str(&out).expect(&out);
    let resp = &v[0];
    let header: Vec<String> = resp["Header"]
        .as_array()
        .map(|h| h.iter().map(|c| c.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    let rows = resp["Tabular"].as_array().cloned().unwrap_or_default();
    let mut out: Vec<HashMap<String, String>> = rows
        .iter()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(
                    r.as_array()
                        .unwrap()
                        .iter()
                        .map(|c| c.as_str().unwrap().to_string()),
                )
                .collect()
        })
        .collect();
    out.sort_by_key(|r| r["id"].parse::<u64>().unwrap());
    out
}

pub fn column(rows: &[HashMap<String, String>], col: &str) -> Vec<String> {
    rows.iter().map(|r| r[col].clone()).collect()
}

/// The error line of a command that must fail.
pub fn fails(d: &Daemon, line: &str) -> String {
    let out = d.e(line);
    let text = stdout(&out);
    assert!(
        !out.status.success(),
        "`{line}` should fail, printed {text}"
    );
    text
}
