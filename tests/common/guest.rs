//! Real guests for the tests that boot VMs: the project's test guest,
//! its configuration, the daemon's `vm info` as rows, and a guard that
//! kills whatever QEMU a test leaves behind.

use super::qemus::QemuGuard;
#[allow(unused_imports)]
pub use super::qemus::{alive, qemus_under};
use super::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// How long a guest may take to boot: a TCG guest boots in ~7 s on a quiet
/// machine and in minutes when two test binaries and their guests share
/// two cores. A deadline only; no test asserts how fast a boot is.
pub const BOOT: Duration = Duration::from_secs(600);

/// The test guest's kernel and initrd, built once per test run.
pub fn guest() -> (PathBuf, PathBuf) {
    static GUEST: OnceLock<PathBuf> = OnceLock::new();
    let dir = GUEST.get_or_init(|| {
        let out = std::process::Command::new(project_root().join("scripts/build-guest.sh"))
            .output()
            .expect("run scripts/build-guest.sh");
        assert!(
            out.status.success(),
            "scripts/build-guest.sh failed: {}",
            stderr(&out)
        );
        PathBuf::from(stdout(&out).lines().last().unwrap().trim())
    });
    (dir.join("vmlinuz"), dir.join("initrd.img"))
}

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
        drop(QemuGuard {
            base: self.base.clone(),
        });
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

pub fn configure_guest(d: &Daemon, append: &str) {
    let (kernel, initrd) = guest();
    d.ok("clear vm config");
    d.ok("vm config memory 256");
    d.ok(&format!("vm config kernel {}", kernel.display()));
    d.ok(&format!("vm config initrd {}", initrd.display()));
    d.ok(&format!("vm config append {append}"));
    d.ok("vm config serial-ports 1");
}

pub fn marker_seen(base: &Path, id: &str) -> bool {
    std::fs::read_to_string(base.join(id).join("serial0.log"))
        .is_ok_and(|s| s.contains("MINIMEGA-GUEST-UP"))
}

/// The guest's ping script (see tests/data/guest-ping.sh), run at boot.
pub const PING_SCRIPT: &str = include_str!("../data/guest-ping.sh");

/// The test guest's initrd with the ping script appended, written to `dir`.
pub fn ping_initrd(dir: &Path) -> PathBuf {
    let (_, initrd) = guest();
    let root = dir.join("extra");
    std::fs::create_dir_all(root.join("etc/guest.d")).unwrap();
    std::fs::write(root.join("etc/guest.d/50-ping.sh"), PING_SCRIPT).unwrap();
    let img = dir.join("initrd-ping.img");
    let cmd = format!(
        "cd {} && find . | cpio -o -H newc --quiet | gzip > ../extra.cpio.gz && cat {} ../extra.cpio.gz > {}",
        root.display(),
        initrd.display(),
        img.display()
    );
    super::netns::sh(&["sh", "-c", &cmd]);
    img
}
