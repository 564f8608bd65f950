//! VM cgroups without systemd (a developer machine, a CI host): each VM
//! gets its own cgroup in a `minimega` subtree of the daemon's own cgroup,
//! with the same limits a scope unit would get. Works on cgroup v1 (one
//! directory per controller hierarchy, as on hybrid hosts) and on v2.
//!
//! QEMU joins its cgroup right after the spawn (see `process::spawn`),
//! while it is still paused (-S) and has touched no guest memory; if it
//! cannot join, it is killed and the launch fails.

use super::limits::{Limits, CPU_PERIOD_USEC};
use cgroups_rs::cpu::CpuController;
use cgroups_rs::hierarchies::{self, V1, V2};
use cgroups_rs::memory::MemController;
use cgroups_rs::pid::PidController;
use cgroups_rs::{Cgroup, Controllers, Hierarchy, MaxValue};
use std::path::{Path, PathBuf};

/// Where this daemon makes VM cgroups.
#[derive(Debug, Clone)]
pub struct Tree {
    /// The v1 hierarchies as found at start (None on v2): reading the
    /// mount table again for every VM would cost a launch of a hundred
    /// VMs hundreds of parses.
    v1: Option<V1>,
    parts: Vec<Part>,
}

/// One hierarchy: its mount point, the controllers it carries that we
/// use, and our subtree's path inside it.
#[derive(Debug, Clone)]
struct Part {
    mount: PathBuf,
    controllers: Vec<&'static str>,
    parent: PathBuf,
}

const V1_CONTROLLERS: &[(&str, Controllers)] = &[
    ("memory", Controllers::Mem),
    ("cpu", Controllers::Cpu),
    ("cpuacct", Controllers::CpuAcct),
    ("pids", Controllers::Pids),
];
const V2_CONTROLLERS: &[&str] = &["memory", "cpu", "pids"];
const SUBTREE: &str = "minimega";

/// The daemon's own cgroup per controller, from `/proc/self/cgroup` text
/// (`N:ctrl,ctrl:/path` lines; v2's line is `0::/path`).
pub fn own_paths(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        for c in ctrls.split(',') {
            out.push((c.to_string(), path.to_string()));
        }
    }
    out
}

fn rel(p: &str) -> PathBuf {
    PathBuf::from(p.trim_start_matches('/'))
}

impl Tree {
    /// Finds the hierarchies and checks we may make cgroups there.
    pub fn detect() -> Result<Tree, String> {
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let own = own_paths(&own);
        let tree = if hierarchies::is_cgroup2_unified_mode() {
            Tree::detect_v2(&own)?
        } else {
            Tree::detect_v1(&own)?
        };
        for p in &tree.parts {
            let dir = p.mount.join(&p.parent);
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        Ok(tree)
    }

    fn detect_v1(own: &[(String, String)]) -> Result<Tree, String> {
        let v1 = V1::new();
        let mut parts: Vec<Part> = Vec::new();
        for (name, ctrl) in V1_CONTROLLERS {
            let Some(mount) = v1.get_mount_point(ctrl.clone()) else {
                continue;
            };
            let own_path = own
                .iter()
                .find(|(c, _)| c == name)
                .map(|(_, p)| p.as_str())
                .unwrap_or("/");
            match parts.iter_mut().find(|p| p.mount == mount) {
                Some(p) => p.controllers.push(name),
                None => parts.push(Part {
                    mount,
                    controllers: vec![name],
                    parent: rel(own_path).join(SUBTREE),
                }),
            }
        }
        if !parts.iter().any(|p| p.controllers.contains(&"memory")) {
            return Err("no cgroup v1 memory hierarchy is mounted".into());
        }
        Ok(Tree {
            v1: Some(v1),
            parts,
        })
    }

    /// cgroup v2 lets a cgroup hand controllers to children only while it
    /// holds no process itself, so the daemon first steps into a leaf of
    /// its own cgroup (as a delegated service does).
    fn detect_v2(own: &[(String, String)]) -> Result<Tree, String> {
        let root = PathBuf::from(hierarchies::UNIFIED_MOUNTPOINT);
        let own_rel = own
            .iter()
            .find(|(c, _)| c.is_empty())
            .map(|(_, p)| rel(p))
            .unwrap_or_default();
        let own_dir = root.join(&own_rel);
        let want = V2_CONTROLLERS
            .iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ");
        let enable = |dir: &Path| std::fs::write(dir.join("cgroup.subtree_control"), &want);
        if enable(&own_dir).is_err() {
            let leaf = own_dir.join("daemon");
            std::fs::create_dir_all(&leaf)
                .and_then(|_| std::fs::write(leaf.join("cgroup.procs"), "0"))
                .and_then(|_| enable(&own_dir))
                .map_err(|e| {
                    format!(
                        "cannot delegate controllers below {}: {e}",
                        own_dir.display()
                    )
                })?;
        }
        let parent = own_rel.join(SUBTREE);
        std::fs::create_dir_all(root.join(&parent))
            .and_then(|_| enable(&root.join(&parent)))
            .map_err(|e| format!("cannot set up {}: {e}", root.join(&parent).display()))?;
        Ok(Tree {
            v1: None,
            parts: vec![Part {
                mount: root,
                controllers: V2_CONTROLLERS.to_vec(),
                parent,
            }],
        })
    }

    pub fn describe(&self) -> String {
        let dirs: Vec<String> = self
            .parts
            .iter()
            .map(|p| p.mount.join(&p.parent).display().to_string())
            .collect();
        format!(
            "cgroup {} under {}",
            if self.v1.is_some() { "v1" } else { "v2" },
            dirs.join(", ")
        )
    }

    /// True when `dir` is the cgroup [`Tree::create`] makes for `leaf`: a
    /// record naming any other directory is not ours to remove.
    pub fn owns(&self, dir: &Path, leaf: &str) -> bool {
        self.parts
            .iter()
            .any(|p| dir == p.mount.join(&p.parent).join(leaf))
    }

    /// The directories [`Tree::create`] makes for `leaf`, those that exist.
    pub fn existing(&self, leaf: &str) -> Vec<PathBuf> {
        self.parts
            .iter()
            .map(|p| p.mount.join(&p.parent).join(leaf))
            .filter(|d| d.is_dir())
            .collect()
    }

    /// Every VM cgroup (in every hierarchy) whose name starts with `prefix`.
    pub fn named(&self, prefix: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for p in &self.parts {
            let Ok(rd) = std::fs::read_dir(p.mount.join(&p.parent)) else {
                continue;
            };
            for e in rd.flatten() {
                let ours = e
                    .file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(prefix));
                if ours && e.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(e.path());
                }
            }
        }
        out.sort();
        out
    }

    /// Makes the VM's cgroup (one directory per hierarchy) with its
    /// limits. On error nothing is left behind.
    pub fn create(&self, leaf: &str, limits: &Limits) -> Result<Vec<PathBuf>, String> {
        let mut made: Vec<PathBuf> = Vec::new();
        for p in &self.parts {
            let relpath = p.parent.join(leaf);
            let dir = p.mount.join(&relpath);
            let r = self.create_part(p, &relpath, limits);
            if dir.is_dir() {
                made.push(dir.clone());
            }
            if let Err(e) = r {
                remove(&made);
                return Err(format!("cgroup {}: {e}", dir.display()));
            }
        }
        Ok(made)
    }

    fn create_part(&self, p: &Part, relpath: &Path, l: &Limits) -> Result<(), String> {
        let hier: Box<dyn Hierarchy> = match &self.v1 {
            Some(v1) => Box::new(v1.clone()),
            None => Box::new(V2::new()),
        };
        let names = p.controllers.iter().map(|c| c.to_string()).collect();
        let cg = Cgroup::new_with_specified_controllers(hier, relpath, Some(names))
            .map_err(|e| e.to_string())?;
        if !p.mount.join(relpath).is_dir() {
            return Err("cannot create the directory".into());
        }
        if let Some(m) = cg.controller_of::<MemController>() {
            m.set_limit(l.memory_max as i64)
                .map_err(|e| format!("memory limit: {e}"))?;
        }
        if let Some(c) = cg.controller_of::<CpuController>() {
            let share = if self.v1.is_some() {
                l.cpu_shares()
            } else {
                l.cpu_weight
            };
            c.set_shares(share)
                .map_err(|e| format!("cpu weight: {e}"))?;
            c.set_cfs_quota_and_period(Some(l.cpu_quota_usec as i64), Some(CPU_PERIOD_USEC))
                .map_err(|e| format!("cpu quota: {e}"))?;
        }
        if let Some(t) = cg.controller_of::<PidController>() {
            t.set_pid_max(MaxValue::Value(l.tasks_max as i64))
                .map_err(|e| format!("tasks limit: {e}"))?;
        }
        Ok(())
    }
}

/// The `cgroup.procs` files a VM's QEMU is moved into once spawned.
pub fn procs_files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    dirs.iter().map(|d| d.join("cgroup.procs")).collect()
}

/// Removes a VM's cgroup directories. A just-exited process may linger a
/// moment in the cgroup, so EBUSY is retried briefly.
pub fn remove(dirs: &[PathBuf]) {
    for d in dirs {
        for attempt in 0..50 {
            match std::fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) if attempt == 49 => {
                    tracing::warn!("cannot remove cgroup {}: {e}", d.display());
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
    }
}

/// True when a process is in the cgroup `dir`.
pub fn populated(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|t| !t.trim().is_empty())
}

/// Current memory (bytes) and CPU time used (ns), where the files are.
pub fn usage(dirs: &[PathBuf]) -> (Option<u64>, Option<u64>) {
    let read_u64 =
        |p: PathBuf| -> Option<u64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
    let mut mem = None;
    let mut cpu = None;
    for d in dirs {
        mem = mem
            .or_else(|| read_u64(d.join("memory.current")))
            .or_else(|| read_u64(d.join("memory.usage_in_bytes")));
        cpu = cpu
            .or_else(|| read_u64(d.join("cpuacct.usage")))
            .or_else(|| {
                let stat = std::fs::read_to_string(d.join("cpu.stat")).ok()?;
                stat.lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|us| us * 1000)
            });
    }
    (mem, cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_paths_v1_hybrid_and_v2() {
        let t = "9:name=systemd:/\n4:memory:/process_api/9d9\n2:cpu,cpuacct:/x\n0::/\n";
        let p = own_paths(t);
        assert!(p.contains(&("memory".into(), "/process_api/9d9".into())));
        assert!(p.contains(&("cpu".into(), "/x".into())));
        assert!(p.contains(&("cpuacct".into(), "/x".into())));
        assert!(p.contains(&(String::new(), "/".into())));
    }

    #[test]
    fn usage_reads_v1_and_v2_files() {
        let d = tempfile::tempdir().unwrap();
        let v1 = d.path().join("v1");
        std::fs::create_dir(&v1).unwrap();
        std::fs::write(v1.join("memory.usage_in_bytes"), "4096\n").unwrap();
        std::fs::write(v1.join("cpuacct.usage"), "1500\n").unwrap();
        assert_eq!(usage(&[v1]), (Some(4096), Some(1500)));
        let v2 = d.path().join("v2");
        std::fs::create_dir(&v2).unwrap();
        std::fs::write(v2.join("memory.current"), "8192\n").unwrap();
        std::fs::write(v2.join("cpu.stat"), "usage_usec 7\nuser_usec 5\n").unwrap();
        assert_eq!(usage(&[v2]), (Some(8192), Some(7000)));
        assert_eq!(usage(&[]), (None, None));
    }
}
