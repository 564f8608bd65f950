//! Admission control: a launch the node cannot hold is refused before
//! anything of it exists. The original minimega has no such check: it
//! starts QEMUs until the host runs out of memory.
//!
//! Memory is committed as `vm config memory` of every VM that has a QEMU
//! (`host` memcommit), against a limit of the host's memory times an
//! overcommit ratio (`host` memlimit; `-overcommit`, default
//! [`DEFAULT_OVERCOMMIT`]): QEMU touches guest memory lazily, and guests
//! rarely use all of theirs, so a little overcommit is safe. When guests
//! do touch it all, the OOM killer takes a QEMU, never the daemon (see
//! `process::QEMU_OOM_SCORE_ADJ`). Independently, one node holds at most
//! as many VMs as the limit leaves [`MIN_VM_MIB`] for each (QEMU's own
//! footprint) and as its file descriptors allow.
//!
//! The same check runs again for each VM as its QEMU is prepared, against
//! the VMs registered by then, so two launches racing each other cannot
//! both pass on the same room.

use super::config::VmConfig;
use super::hooks::{Admission, VmHook};
use super::manager::{Vm, VmError, WeakVms};
use crate::command::{BoxFuture, Response};
use std::sync::Arc;
use thiserror::Error;

pub use crate::config::DEFAULT_OVERCOMMIT;
/// The least a VM costs its node beyond its guest's memory: a paused QEMU
/// under TCG is ~34 MiB resident before the guest touches anything.
pub const MIN_VM_MIB: u64 = 64;
/// Descriptors the daemon holds per VM (QMP, the process, serial ports
/// and their logs), and those it keeps for everything else.
const FDS_PER_VM: u64 = 8;
const FDS_RESERVED: u64 = 256;

/// What a node can hold and what it holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// MiB that may be committed to guests; None: no memory limit.
    pub mem_limit: Option<u64>,
    /// MiB committed to guests that have a QEMU.
    pub committed: u64,
    /// VMs that have a QEMU.
    pub live: usize,
    /// The daemon's file descriptor limit; None: not this node's to count.
    pub fds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    #[error("{count} more VMs is more than this node can hold: at most {limit} VMs, {live} already there{why}")]
    Count {
        count: usize,
        limit: usize,
        live: usize,
        why: &'static str,
    },
    #[error("not enough memory: {count} VMs need {need} MiB, and this node can commit {left} MiB more (memlimit {limit} MiB, memcommit {committed} MiB; see -overcommit)")]
    Memory {
        count: usize,
        need: u64,
        left: u64,
        limit: u64,
        committed: u64,
    },
}

/// `memtotal` times `overcommit` (0 turns the limit off).
pub fn mem_limit(mem_total_mib: u64, overcommit: f64) -> Option<u64> {
    (overcommit > 0.0).then(|| (mem_total_mib as f64 * overcommit).floor() as u64)
}

impl Budget {
    /// The most VMs this node holds, and what bounds it.
    pub fn vm_limit(&self) -> (usize, &'static str) {
        let by_mem = self.mem_limit.map(|l| (l / MIN_VM_MIB) as usize);
        let by_fds = self
            .fds
            .map(|f| (f.saturating_sub(FDS_RESERVED) / FDS_PER_VM) as usize);
        match (by_mem, by_fds) {
            (Some(m), Some(f)) if f < m => (f, " (the daemon's open file limit)"),
            (Some(m), _) => (m, ""),
            (None, Some(f)) => (f, " (the daemon's open file limit)"),
            (None, None) => (usize::MAX, ""),
        }
    }

    /// May `count` more VMs of `memory` MiB each come?
    pub fn check(&self, count: usize, memory: u64) -> Result<(), Refusal> {
        self.check_need(count, (count as u64).saturating_mul(memory))
    }

    /// May `count` more VMs come that need `need` MiB in all?
    pub fn check_need(&self, count: usize, need: u64) -> Result<(), Refusal> {
        let (limit, why) = self.vm_limit();
        if count > limit.saturating_sub(self.live) {
            return Err(Refusal::Count {
                count,
                limit,
                live: self.live,
                why,
            });
        }
        if let Some(limit) = self.mem_limit {
            let left = limit.saturating_sub(self.committed);
            if need > left {
                return Err(Refusal::Memory {
                    count,
                    need,
                    left,
                    limit,
                    committed: self.committed,
                });
            }
        }
        Ok(())
    }
}

/// The hook: checks each launch and each VM's start against this node.
pub struct Admit {
    pub overcommit: f64,
    pub vms: WeakVms,
}

impl Admit {
    /// This node's budget, not counting the VM `except` (one being
    /// prepared, already registered).
    fn budget(&self, except: Option<u64>) -> Budget {
        let (committed, live) = self
            .vms
            .upgrade()
            .map(|v| v.commitment_except(except))
            .unwrap_or((0, 0));
        let info = crate::hostinfo::read();
        Budget {
            mem_limit: mem_limit(info.mem_total_mib, self.overcommit),
            committed,
            live,
            fds: Some(open_file_limit()),
        }
    }
}

impl VmHook for Admit {
    fn name(&self) -> &'static str {
        "admission"
    }

    fn serves(&self, _kind: crate::vm::config::Kind) -> bool {
        true
    }

    fn admit<'a>(&'a self, launch: &'a Admission<'a>) -> BoxFuture<'a, Result<(), VmError>> {
        Box::pin(async move {
            self.budget(None)
                .check(launch.count, launch.config.memory)
                .map_err(VmError::from)
        })
    }

    fn prepare<'a>(
        &'a self,
        vm: &'a Arc<Vm>,
        config: &'a VmConfig,
    ) -> BoxFuture<'a, Result<Vec<String>, VmError>> {
        Box::pin(async move {
            self.budget(Some(vm.id)).check(1, config.memory)?;
            Ok(Vec::new())
        })
    }
}

/// The soft RLIMIT_NOFILE.
pub fn open_file_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return 1024;
    }
    r.rlim_cur
}

/// Raises the soft RLIMIT_NOFILE to the hard one, as a daemon holding
/// descriptors for hundreds of VMs should (systemd's unit sets both).
pub fn raise_open_file_limit() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// Each host's budget from its `host` answer (columns by name; a host
/// without memlimit has no limit to check here).
pub fn budgets(hosts: &[Response]) -> Vec<(String, Budget)> {
    let mut out = Vec::new();
    for r in hosts.iter().filter(|r| !r.is_error()) {
        let col = |name: &str| r.header.iter().position(|h| h == name);
        let (Some(commit), Some(live)) = (col("memcommit"), col("vms")) else {
            continue;
        };
        let limit = col("memlimit");
        for row in &r.tabular {
            let num = |i: usize| row.get(i).and_then(|v| v.parse::<u64>().ok());
            let name = col("name").and_then(|i| row.get(i)).unwrap_or(&r.host);
            out.push((
                name.clone(),
                Budget {
                    mem_limit: limit.and_then(num),
                    committed: num(commit).unwrap_or(0),
                    live: num(live).unwrap_or(0) as usize,
                    fds: None,
                },
            ));
        }
    }
    out
}

/// Checks each host's share of a namespace launch (`(host, VMs, MiB)`)
/// against its budget, before any host launches: one host that cannot
/// hold its share refuses the whole launch.
pub fn check_shares<'a>(
    budgets: &[(String, Budget)],
    shares: impl IntoIterator<Item = (&'a str, usize, u64)>,
) -> Result<(), String> {
    for (host, count, need) in shares {
        if count == 0 {
            continue;
        }
        if let Some((_, b)) = budgets.iter().find(|(h, _)| h == host) {
            b.check_need(count, need)
                .map_err(|e| format!("{host}: {e}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(limit: Option<u64>, committed: u64, live: usize) -> Budget {
        Budget {
            mem_limit: limit,
            committed,
            live,
            fds: Some(1 << 20),
        }
    }

    #[test]
    fn the_limit_is_memtotal_times_the_ratio() {
        assert_eq!(mem_limit(24_000, 1.5), Some(36_000));
        assert_eq!(mem_limit(24_000, 1.0), Some(24_000));
        assert_eq!(mem_limit(24_000, 0.0), None, "0 turns it off");
    }

    #[test]
    fn a_launch_past_the_memory_limit_is_refused() {
        let b = node(Some(36_000), 30_000, 10);
        assert!(b.check(2, 2048).is_ok());
        let e = b.check(3, 2048).unwrap_err();
        assert_eq!(
            e,
            Refusal::Memory {
                count: 3,
                need: 6144,
                left: 6000,
                limit: 36_000,
                committed: 30_000
            }
        );
        assert!(e.to_string().starts_with(
            "not enough memory: 3 VMs need 6144 MiB, and this node can commit 6000 MiB more"
        ));
        assert!(
            node(None, 1 << 40, 0).check(10, 1 << 30).is_ok(),
            "no limit"
        );
        // Overflow cannot wrap into a small need.
        assert!(b.check(usize::MAX / 2, u64::MAX).is_err());
    }

    #[test]
    fn a_node_holds_only_so_many_vms() {
        // 24 GiB x 1.5 leaves room for 576 of the smallest VMs.
        let b = node(Some(36_864), 0, 0);
        assert_eq!(b.vm_limit(), (576, ""));
        let e = b.check(100_000, 1).unwrap_err();
        assert!(matches!(e, Refusal::Count { limit: 576, .. }), "{e}");
        assert!(node(Some(36_864), 0, 570).check(7, 1).is_err());
        assert!(node(Some(36_864), 0, 570).check(6, 1).is_ok());
        // The file descriptor limit bounds it too.
        let few = Budget {
            fds: Some(1024),
            ..b
        };
        assert_eq!(few.vm_limit(), (96, " (the daemon's open file limit)"));
    }

    #[test]
    fn a_namespace_launch_checks_each_hosts_share() {
        let host = |name: &str, rows: Vec<Vec<&str>>| Response {
            host: name.into(),
            header: ["name", "memtotal", "memcommit", "memlimit", "vms"]
                .map(String::from)
                .to_vec(),
            tabular: rows
                .into_iter()
                .map(|r| r.into_iter().map(String::from).collect())
                .collect(),
            ..Default::default()
        };
        let answers = [
            host("a", vec![vec!["a", "8000", "1000", "12000", "1"]]),
            host("b", vec![vec!["b", "8000", "11000", "12000", "5"]]),
        ];
        let b = budgets(&answers);
        assert_eq!(b.len(), 2);
        assert_eq!(b[1].1.committed, 11_000);
        assert!(check_shares(&b, [("a", 5, 2560), ("b", 1, 512)]).is_ok());
        let e = check_shares(&b, [("a", 5, 2560), ("b", 3, 1536)]).unwrap_err();
        assert!(
            e.starts_with("b: not enough memory: 3 VMs need 1536 MiB"),
            "{e}"
        );
    }
}
