//! What the daemon remembers about each VM across its own restarts: one
//! JSON file per VM in `<base>/<id>/state.json`, replaced durably (written
//! beside, synced, then renamed), so a crash mid-write leaves the old
//! record, never a torn one.

use super::config::VmConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum VmState {
    Building,
    Running,
    Paused,
    Quit,
    Error,
}

impl VmState {
    pub fn as_str(self) -> &'static str {
        match self {
            VmState::Building => "BUILDING",
            VmState::Running => "RUNNING",
            VmState::Paused => "PAUSED",
            VmState::Quit => "QUIT",
            VmState::Error => "ERROR",
        }
    }

    /// States in which a QEMU process should exist.
    pub fn is_live(self) -> bool {
        matches!(self, VmState::Building | VmState::Running | VmState::Paused)
    }
}

impl std::fmt::Display for VmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the VM's QEMU was placed, so a restarted daemon finds it again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    /// The transient scope unit, under systemd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The VM's own cgroup directories (one per v1 controller, one on v2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cgroups: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: u64,
    pub name: String,
    pub namespace: String,
    pub uuid: String,
    pub config: VmConfig,
    pub state: VmState,
    #[serde(default)]
    pub pid: Option<u32>,
    /// The process's start time (clock ticks since boot, /proc/<pid>/stat
    /// field 22): a recycled pid never matches it.
    #[serde(default)]
    pub pid_start: Option<u64>,
    #[serde(default)]
    pub placed: Placed,
    /// Unix seconds of the last (re)launch.
    #[serde(default)]
    pub launched: u64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

pub const STATE_FILE: &str = "state.json";

/// Writes the record into `dir`, durably (see `durable`): a failed
/// write leaves the previous record and no temporary file.
pub fn save(dir: &Path, r: &Record) -> Result<(), crate::durable::SaveError> {
    crate::durable::write_json(&dir.join(STATE_FILE), r, &format!("VM {}'s state", r.name))
}

pub fn load(dir: &Path) -> Result<Record, String> {
    let path = dir.join(STATE_FILE);
    let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&data).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every VM folder under `base` (named by its id), with its record or why
/// it could not be read.
pub fn scan(base: &Path) -> Vec<(u64, PathBuf, Result<Record, String>)> {
    let Ok(entries) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let id: u64 = e.file_name().to_str()?.parse().ok()?;
            e.file_type().ok()?.is_dir().then(|| (id, e.path()))
        })
        .map(|(id, dir)| {
            let r = load(&dir);
            (id, dir, r)
        })
        .collect();
    out.sort_by_key(|(id, _, _)| *id);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            id: 3,
            name: "web1".into(),
            namespace: "minimega".into(),
            uuid: "9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc".into(),
            config: VmConfig::default(),
            state: VmState::Running,
            pid: Some(1234),
            pid_start: Some(99),
            placed: Placed {
                unit: None,
                cgroups: vec!["/sys/fs/cgroup/memory/minimega/x".into()],
            },
            launched: 1_700_000_000,
            tags: [("a".to_string(), "b".to_string())].into(),
            error: String::new(),
        }
    }

    #[test]
    fn save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let r = record();
        save(dir.path(), &r).unwrap();
        assert_eq!(load(dir.path()).unwrap(), r);
        let mut r2 = r.clone();
        r2.state = VmState::Quit;
        save(dir.path(), &r2).unwrap();
        assert_eq!(load(dir.path()).unwrap().state, VmState::Quit);
        // Only the record is left: the temporary file was renamed over it.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [STATE_FILE]);
    }

    #[test]
    fn states_serialize_as_minimega_prints_them() {
        assert_eq!(
            serde_json::to_string(&VmState::Building).unwrap(),
            "\"BUILDING\""
        );
        assert_eq!(VmState::Paused.to_string(), "PAUSED");
        assert!(VmState::Paused.is_live() && !VmState::Quit.is_live());
    }

    #[test]
    fn scan_finds_numbered_folders_only() {
        let base = tempfile::tempdir().unwrap();
        for id in [10u64, 2] {
            let d = base.path().join(id.to_string());
            std::fs::create_dir(&d).unwrap();
            let mut r = record();
            r.id = id;
            save(&d, &r).unwrap();
        }
        std::fs::create_dir(base.path().join("files")).unwrap();
        std::fs::create_dir(base.path().join("5")).unwrap(); // no record
        let found = scan(base.path());
        let ids: Vec<u64> = found.iter().map(|(id, _, _)| *id).collect();
        assert_eq!(ids, [2, 5, 10]);
        assert!(found[1].2.is_err());
        assert_eq!(found[2].2.as_ref().unwrap().id, 10);
    }
}
