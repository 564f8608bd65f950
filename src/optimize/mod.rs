//! minimega's `optimize`: Kernel Samepage Merging (KSM, host-wide), a
//! hugepages mount for new VMs' memory, and CPU affinity of a namespace's
//! QEMUs. Pure parts (CPU lists, the least-loaded CPU, KSM's tuning) are
//! tested directly; the edges are sysfs files under a root given at
//! construction and `sched_setaffinity`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum OptimizeError {
    #[error("ksm is already enabled")]
    KsmOn,
    #[error("ksm is not enabled")]
    KsmOff,
    #[error("cannot use KSM: {0}")]
    Ksm(String),
    #[error("cannot expand CPU range: {0}")]
    Range(String),
    #[error("affinity is not enabled for this namespace")]
    AffinityOff,
    #[error("could not find a valid CPU set!")]
    NoCpu,
    #[error("cannot set the CPU affinity of pid {0}: {1}")]
    Affinity(u32, String),
    #[error("hugepages: {0}")]
    Hugepages(String),
}

/// What minimega writes to enable KSM: scan hard.
pub const KSM_TUNE: [(&str, i64); 3] = [
    ("run", 1),
    ("pages_to_scan", 100000),
    ("sleep_millisecs", 10),
];

/// One namespace's settings.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NsState {
    pub hugepages: String,
    pub affinity: bool,
    /// CPUs the affinity scheduler may use; empty: every CPU.
    pub filter: Vec<usize>,
    /// CPU -> the pids pinned to it.
    pub sets: BTreeMap<usize, Vec<u32>>,
}

#[derive(Debug, Default)]
struct State {
    /// KSM's values before minimega's, to restore; `Some` while enabled.
    ksm_saved: Option<Vec<(String, i64)>>,
    ns: BTreeMap<String, NsState>,
}

pub struct Optimizer {
    ksm_dir: PathBuf,
    cpus: usize,
    state: Mutex<State>,
}

impl Optimizer {
    /// KSM's files in `ksm_dir` (`/sys/kernel/mm/ksm`), `cpus` CPUs.
    pub fn new(ksm_dir: &Path, cpus: usize) -> Optimizer {
        Optimizer {
            ksm_dir: ksm_dir.to_path_buf(),
            cpus: cpus.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// This host's.
    pub fn host() -> Optimizer {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Optimizer::new(Path::new("/sys/kernel/mm/ksm"), cpus)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn ksm_enabled(&self) -> bool {
        self.lock().ksm_saved.is_some()
    }

    fn read(&self, name: &str) -> Result<i64, OptimizeError> {
        let p = self.ksm_dir.join(name);
        let t = std::fs::read_to_string(&p)
            .map_err(|e| OptimizeError::Ksm(format!("{}: {e}", p.display())))?;
        t.trim()
            .parse()
            .map_err(|_| OptimizeError::Ksm(format!("{}: not a number", p.display())))
    }

    fn write(&self, name: &str, v: i64) -> Result<(), OptimizeError> {
        let p = self.ksm_dir.join(name);
        std::fs::write(&p, v.to_string())
            .map_err(|e| OptimizeError::Ksm(format!("{}: {e}", p.display())))
    }

    /// Saves KSM's values and writes minimega's; on a failure the values
    /// written so far are restored and KSM stays as it was.
    pub fn ksm_enable(&self) -> Result<(), OptimizeError> {
        let mut s = self.lock();
        if s.ksm_saved.is_some() {
            return Err(OptimizeError::KsmOn);
        }
        let saved = KSM_TUNE
            .iter()
            .map(|(n, _)| Ok((n.to_string(), self.read(n)?)))
            .collect::<Result<Vec<_>, OptimizeError>>()?;
        for (i, (n, v)) in KSM_TUNE.iter().enumerate() {
            if let Err(e) = self.write(n, *v) {
                for (n, old) in &saved[..i] {
                    let _ = self.write(n, *old);
                }
                return Err(e);
            }
        }
        s.ksm_saved = Some(saved);
        Ok(())
    }

    /// Restores the values KSM had before `ksm_enable`.
    pub fn ksm_disable(&self) -> Result<(), OptimizeError> {
        let mut s = self.lock();
        let Some(saved) = s.ksm_saved.clone() else {
            return Err(OptimizeError::KsmOff);
        };
        for (n, v) in &saved {
            self.write(n, *v)?;
        }
        s.ksm_saved = None;
        Ok(())
    }

    pub fn ns(&self, ns: &str) -> NsState {
        self.lock().ns.get(ns).cloned().unwrap_or_default()
    }

    /// `optimize hugepages PATH`: the path must be a directory (a
    /// hugetlbfs mount, where QEMU's `-mem-path` puts guest memory).
    pub fn set_hugepages(&self, ns: &str, path: &str) -> Result<(), OptimizeError> {
        if !Path::new(path).is_dir() {
            return Err(OptimizeError::Hugepages(format!(
                "{path} is not a directory (mount hugetlbfs there first)"
            )));
        }
        self.lock().ns.entry(ns.into()).or_default().hugepages = path.into();
        Ok(())
    }

    pub fn clear_hugepages(&self, ns: &str) {
        if let Some(n) = self.lock().ns.get_mut(ns) {
            n.hugepages.clear();
        }
    }

    /// `optimize affinity filter CPUS`.
    pub fn set_filter(&self, ns: &str, spec: &str) -> Result<(), OptimizeError> {
        let cpus = parse_cpus(spec, self.cpus)?;
        self.lock().ns.entry(ns.into()).or_default().filter = cpus;
        Ok(())
    }

    pub fn clear_filter(&self, ns: &str) {
        if let Some(n) = self.lock().ns.get_mut(ns) {
            n.filter.clear();
        }
    }

    /// Pins each of `pids` (a namespace's QEMUs) to the least loaded CPU
    /// of the filter, afresh; affinity is then on for the namespace.
    pub fn enable_affinity(&self, ns: &str, pids: &[u32]) -> Result<(), OptimizeError> {
        let mut s = self.lock();
        let n = s.ns.entry(ns.into()).or_default();
        let cpus: Vec<usize> = if n.filter.is_empty() {
            (0..self.cpus).collect()
        } else {
            n.filter.clone()
        };
        let mut sets: BTreeMap<usize, Vec<u32>> = cpus.iter().map(|c| (*c, Vec::new())).collect();
        for &pid in pids {
            let cpu = least_loaded(&sets).ok_or(OptimizeError::NoCpu)?;
            pin(pid, Some(cpu))?;
            sets.entry(cpu).or_default().push(pid);
        }
        n.sets = sets;
        n.affinity = true;
        Ok(())
    }

    /// Lets the namespace's pinned QEMUs run on every CPU again.
    pub fn disable_affinity(&self, ns: &str) -> Result<(), OptimizeError> {
        let mut s = self.lock();
        let n = s.ns.entry(ns.into()).or_default();
        if !n.affinity {
            return Err(OptimizeError::AffinityOff);
        }
        for pid in n.sets.values().flatten() {
            match pin(*pid, None) {
                // A QEMU that ended meanwhile has nothing to free.
                Err(OptimizeError::Affinity(_, e)) if e.contains("No such process") => {}
                r => r?,
            }
        }
        n.sets.clear();
        n.affinity = false;
        Ok(())
    }

    /// `clear optimize`: KSM restored (if minimega enabled it), the
    /// namespace's hugepages, filter and affinity off.
    pub fn clear(&self, ns: &str) -> Result<(), OptimizeError> {
        if self.ksm_enabled() {
            self.ksm_disable()?;
        }
        self.clear_hugepages(ns);
        self.clear_filter(ns);
        if self.ns(ns).affinity {
            self.disable_affinity(ns)?;
        }
        self.lock().ns.remove(ns);
        Ok(())
    }
}

/// The CPU with the fewest pids (the lowest such).
pub fn least_loaded(sets: &BTreeMap<usize, Vec<u32>>) -> Option<usize> {
    sets.iter().min_by_key(|(_, p)| p.len()).map(|(c, _)| *c)
}

/// `[1,2-20]` or `1,2-20` as a list of CPUs below `cpus`.
pub fn parse_cpus(spec: &str, cpus: usize) -> Result<Vec<usize>, OptimizeError> {
    let inner = spec.trim().trim_start_matches('[').trim_end_matches(']');
    let bad = |why: String| OptimizeError::Range(why);
    let mut out = Vec::new();
    for part in inner.split(',').map(str::trim) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let (a, b): (usize, usize) = match (a.parse(), b.parse()) {
            (Ok(a), Ok(b)) if a <= b => (a, b),
            _ => return Err(bad(format!("invalid range `{part}`"))),
        };
        if b >= cpus {
            return Err(bad(format!(
                "CPU {b} is out of range (this host has CPUs 0-{})",
                cpus - 1
            )));
        }
        out.extend(a..=b);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Pins every thread of `pid` to `cpu`, or frees it (`None`: every CPU),
/// as `taskset -a -p` does.
pub fn pin(pid: u32, cpu: Option<usize>) -> Result<(), OptimizeError> {
    let tasks: Vec<i32> = match std::fs::read_dir(format!("/proc/{pid}/task")) {
        Ok(rd) => rd
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect(),
        Err(e) => return Err(OptimizeError::Affinity(pid, no_such(e))),
    };
    for tid in tasks {
        // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes
        // within it for CPUs below CPU_SETSIZE.
        let r = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            match cpu {
                Some(c) => libc::CPU_SET(c, &mut set),
                None => (0..libc::CPU_SETSIZE as usize).for_each(|c| libc::CPU_SET(c, &mut set)),
            }
            libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set)
        };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            // A thread that ended meanwhile is no failure.
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(OptimizeError::Affinity(pid, e.to_string()));
            }
        }
    }
    Ok(())
}

fn no_such(e: std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        "No such process".into()
    } else {
        e.to_string()
    }
}

/// The CPUs a process may run on (its first thread's), for tests and
/// the listing.
pub fn affinity_of(pid: u32) -> Option<Vec<usize>> {
    // SAFETY: as in `pin`; the set is read only for CPUs below its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(pid as i32, std::mem::size_of::<libc::cpu_set_t>(), &mut set)
            != 0
        {
            return None;
        }
        Some(
            (0..libc::CPU_SETSIZE as usize)
                .filter(|c| libc::CPU_ISSET(*c, &set))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests;
