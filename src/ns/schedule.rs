//! Where `vm launch` puts VMs in a namespace spanning several hosts. Pure:
//! host loads and VM requests in, a placement (or the reason there is
//! none) out.
//!
//! As minimega: VMs pinned to a host (`vm config schedule`) are placed
//! first, then those with a coschedule limit (fewest first), then the
//! rest; each goes to the least loaded host (by committed CPUs per CPU,
//! committed memory per MiB, or VM count), and the host's load grows with
//! it. `coschedule n` means at most `n` other VMs may share the VM's host
//! (VMs already running there count); `colocate <vm>` puts a VM on the
//! same host as another VM of the same launch. Unlike minimega, a VM whose
//! coschedule limit the least loaded host would break goes to the next
//! host that keeps every limit, instead of failing the launch.

use std::collections::BTreeMap;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLoad {
    pub name: String,
    pub cpus: usize,
    pub cpu_commit: usize,
    pub mem_total: u64,
    pub mem_commit: u64,
    /// VMs already on the host.
    pub vms: usize,
    /// NICs of the host's VMs (0 where `host` has no netcommit column).
    pub net_commit: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmRequest {
    pub name: String,
    pub vcpus: usize,
    /// MiB.
    pub memory: u64,
    /// `vm config schedule`: this host only.
    pub schedule: Option<String>,
    /// `vm config coschedule`: at most this many other VMs on its host.
    pub coschedule: Option<usize>,
    /// `vm config colocate`: on the same host as this VM of the launch.
    pub colocate: Option<String>,
    /// NICs, for `ns load netcommit`.
    pub nics: usize,
}

/// How "least loaded" is measured (minimega's `ns load`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadBy {
    #[default]
    CpuCommit,
    MemCommit,
    /// NICs committed, as `host` reports them (`netcommit`).
    NetCommit,
    VmCount,
}

/// Host name -> VM names placed there, in launch order.
pub type Placement = BTreeMap<String, Vec<String>>;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScheduleError {
    #[error("no hosts to schedule VMs on")]
    NoHosts,
    #[error("VM `{vm}` scheduled on unknown host: `{host}`")]
    UnknownHost { vm: String, host: String },
    #[error("VM `{vm}` is to be colocated with `{with}`, which is not being launched")]
    UnknownColocate { vm: String, with: String },
    #[error("colocation of `{0}` loops back to itself")]
    ColocateLoop(String),
    #[error("VMs colocated with `{vm}` are scheduled on different hosts ({a} and {b})")]
    ConflictingSchedule { vm: String, a: String, b: String },
    #[error("too many VMs on {host} for the coschedule limit of `{vm}` ({limit} others)")]
    Coschedule {
        vm: String,
        host: String,
        limit: usize,
    },
    #[error("no host can take `{vm}` and its colocated VMs without breaking a coschedule limit")]
    NoRoom { vm: String },
}

/// VMs that must share a host: a VM and everything colocated with it.
struct Unit {
    names: Vec<String>,
    schedule: Option<String>,
    /// Smallest coschedule limit among the unit's VMs.
    limit: Option<usize>,
    vcpus: usize,
    memory: u64,
    nics: usize,
    first: usize,
}

struct Host {
    load: HostLoad,
    /// Smallest (coschedule + 1) of the VMs placed here: the most VMs the
    /// host may then hold.
    cap: Option<usize>,
}

impl Host {
    fn score(&self, by: LoadBy) -> f64 {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { a };
        match by {
            LoadBy::CpuCommit => ratio(self.load.cpu_commit as f64, self.load.cpus as f64),
            LoadBy::MemCommit => ratio(self.load.mem_commit as f64, self.load.mem_total as f64),
            LoadBy::NetCommit => self.load.net_commit as f64,
            LoadBy::VmCount => self.load.vms as f64,
        }
    }

    /// Whether `u` fits without breaking any limit, old or new.
    fn fits(&self, u: &Unit) -> bool {
        let total = self.load.vms + u.names.len();
        let cap = match (self.cap, u.limit) {
            (Some(a), Some(b)) => Some(a.min(b + 1)),
            (a, b) => a.or(b.map(|l| l + 1)),
        };
        cap.is_none_or(|c| total <= c)
    }

    fn take(&mut self, u: &Unit) {
        self.load.vms += u.names.len();
        self.load.cpu_commit += u.vcpus;
        self.load.mem_commit += u.memory;
        self.load.net_commit += u.nics;
        if let Some(l) = u.limit {
            self.cap = Some(self.cap.map_or(l + 1, |c| c.min(l + 1)));
        }
    }
}

/// The VM at the root of `name`'s colocation chain.
fn root(vms: &BTreeMap<&str, &VmRequest>, name: &str) -> Result<String, ScheduleError> {
    let mut at = name.to_string();
    for _ in 0..=vms.len() {
        match vms.get(at.as_str()).and_then(|v| v.colocate.clone()) {
            None => return Ok(at),
            Some(next) => {
                if !vms.contains_key(next.as_str()) {
                    return Err(ScheduleError::UnknownColocate { vm: at, with: next });
                }
                at = next;
            }
        }
    }
    Err(ScheduleError::ColocateLoop(name.to_string()))
}

fn units(vms: &[VmRequest]) -> Result<Vec<Unit>, ScheduleError> {
    let by_name: BTreeMap<&str, &VmRequest> = vms.iter().map(|v| (v.name.as_str(), v)).collect();
    let mut out: Vec<Unit> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for (i, vm) in vms.iter().enumerate() {
        let r = root(&by_name, &vm.name)?;
        let at = *index.entry(r.clone()).or_insert_with(|| {
            out.push(Unit {
                names: Vec::new(),
                schedule: None,
                limit: None,
                vcpus: 0,
                memory: 0,
                nics: 0,
                first: i,
            });
            out.len() - 1
        });
        let u = &mut out[at];
        u.names.push(vm.name.clone());
        u.vcpus += vm.vcpus;
        u.memory += vm.memory;
        u.nics += vm.nics;
        u.limit = match (u.limit, vm.coschedule) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(h) = &vm.schedule {
            match &u.schedule {
                Some(other) if other != h => {
                    return Err(ScheduleError::ConflictingSchedule {
                        vm: r,
                        a: other.clone(),
                        b: h.clone(),
                    })
                }
                _ => u.schedule = Some(h.clone()),
            }
        }
    }
    Ok(out)
}

/// Places `vms` on `hosts`.
pub fn schedule(
    hosts: &[HostLoad],
    vms: &[VmRequest],
    by: LoadBy,
) -> Result<Placement, ScheduleError> {
    if hosts.is_empty() {
        return Err(ScheduleError::NoHosts);
    }
    let mut hs: Vec<Host> = hosts
        .iter()
        .map(|h| Host {
            load: h.clone(),
            cap: None,
        })
        .collect();
    let mut us = units(vms)?;
    for u in &us {
        if let Some(h) = &u.schedule {
            if !hs.iter().any(|x| &x.load.name == h) {
                return Err(ScheduleError::UnknownHost {
                    vm: u.names[0].clone(),
                    host: h.clone(),
                });
            }
        }
    }
    // Pinned first, then the tightest coschedule limits, then bigger units,
    // then launch order.
    us.sort_by(|a, b| {
        b.schedule
            .is_some()
            .cmp(&a.schedule.is_some())
            .then(match (a.limit, b.limit) {
                (Some(x), Some(y)) => x.cmp(&y),
                (x, y) => x.is_none().cmp(&y.is_none()),
            })
            .then(b.names.len().cmp(&a.names.len()))
            .then(a.first.cmp(&b.first))
    });
    let mut placement = Placement::new();
    for u in &us {
        let chosen = match &u.schedule {
            Some(name) => {
                let i = hs
                    .iter()
                    .position(|h| &h.load.name == name)
                    .expect("checked");
                if !hs[i].fits(u) {
                    return Err(ScheduleError::Coschedule {
                        vm: u.names[0].clone(),
                        host: name.clone(),
                        limit: hs[i].cap.map(|c| c - 1).or(u.limit).unwrap_or(0),
                    });
                }
                i
            }
            None => (0..hs.len())
                .filter(|i| hs[*i].fits(u))
                .min_by(|a, b| {
                    let (x, y) = (&hs[*a], &hs[*b]);
                    x.score(by)
                        .total_cmp(&y.score(by))
                        .then(x.load.vms.cmp(&y.load.vms))
                        .then(x.load.name.cmp(&y.load.name))
                })
                .ok_or_else(|| ScheduleError::NoRoom {
                    vm: u.names[0].clone(),
                })?,
        };
        hs[chosen].take(u);
        placement
            .entry(hs[chosen].load.name.clone())
            .or_default()
            .extend(u.names.iter().cloned());
    }
    Ok(placement)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, vms: usize, cpu_commit: usize) -> HostLoad {
        HostLoad {
            name: name.into(),
            cpus: 4,
            cpu_commit,
            mem_total: 16384,
            mem_commit: 0,
            vms,
            net_commit: 0,
        }
    }

    fn vm(name: &str) -> VmRequest {
        VmRequest {
            name: name.into(),
            vcpus: 1,
            memory: 512,
            ..Default::default()
        }
    }

    fn vms(n: usize) -> Vec<VmRequest> {
        (0..n).map(|i| vm(&format!("vm-{i}"))).collect()
    }

    fn counts(p: &Placement) -> Vec<(String, usize)> {
        p.iter().map(|(h, v)| (h.clone(), v.len())).collect()
    }

    #[test]
    fn six_vms_spread_evenly_over_three_idle_hosts() {
        let hosts = [host("a", 0, 0), host("b", 0, 0), host("c", 0, 0)];
        let p = schedule(&hosts, &vms(6), LoadBy::CpuCommit).unwrap();
        assert_eq!(
            counts(&p),
            [("a".into(), 2), ("b".into(), 2), ("c".into(), 2)]
        );
        assert_eq!(p["a"], ["vm-0", "vm-3"]);
    }

    #[test]
    fn busy_hosts_get_fewer() {
        let hosts = [host("a", 4, 4), host("b", 0, 0)];
        let p = schedule(&hosts, &vms(4), LoadBy::CpuCommit).unwrap();
        // a is at 1.0 committed per CPU; b reaches that after 4 VMs.
        assert_eq!(counts(&p), [("b".into(), 4)]);
        let p = schedule(&hosts, &vms(6), LoadBy::VmCount).unwrap();
        assert_eq!(counts(&p), [("a".into(), 1), ("b".into(), 5)]);
    }

    #[test]
    fn memory_load() {
        let mut a = host("a", 0, 0);
        a.mem_commit = 8192;
        let p = schedule(&[a, host("b", 0, 0)], &vms(2), LoadBy::MemCommit).unwrap();
        assert_eq!(counts(&p), [("b".into(), 2)]);
    }

    #[test]
    fn nic_load_counts_what_the_launch_adds() {
        let mut a = host("a", 0, 0);
        a.net_commit = 4;
        let v: Vec<VmRequest> = vms(4)
            .into_iter()
            .map(|r| VmRequest { nics: 2, ..r })
            .collect();
        let p = schedule(&[a, host("b", 0, 0)], &v, LoadBy::NetCommit).unwrap();
        // b reaches a's 4 NICs after two VMs; then they alternate.
        assert_eq!(counts(&p), [("a".into(), 1), ("b".into(), 3)]);
    }

    #[test]
    fn pinned_vms_go_where_they_are_told() {
        let mut v = vms(4);
        v[0].schedule = Some("c".into());
        v[1].schedule = Some("c".into());
        let p = schedule(
            &[host("a", 0, 0), host("b", 0, 0), host("c", 0, 0)],
            &v,
            LoadBy::CpuCommit,
        )
        .unwrap();
        assert_eq!(p["c"], ["vm-0", "vm-1"]);
        assert_eq!(p["a"], ["vm-2"]);
        assert_eq!(p["b"], ["vm-3"]);
        v[0].schedule = Some("zz".into());
        assert_eq!(
            schedule(&[host("a", 0, 0)], &v, LoadBy::CpuCommit),
            Err(ScheduleError::UnknownHost {
                vm: "vm-0".into(),
                host: "zz".into()
            })
        );
    }

    #[test]
    fn coschedule_zero_gets_a_host_alone() {
        let mut v = vms(4);
        v[3].coschedule = Some(0);
        let p = schedule(&[host("a", 0, 0), host("b", 0, 0)], &v, LoadBy::CpuCommit).unwrap();
        let alone = p
            .iter()
            .find(|(_, vs)| vs.contains(&"vm-3".to_string()))
            .unwrap();
        assert_eq!(alone.1.len(), 1, "{p:?}");
        assert_eq!(p.values().map(Vec::len).sum::<usize>(), 4);
    }

    #[test]
    fn coschedule_counts_vms_already_running() {
        let mut v = vms(1);
        v[0].coschedule = Some(1);
        // a is emptier by CPU but already holds 2 VMs.
        let hosts = [host("a", 2, 0), host("b", 1, 3)];
        let p = schedule(&hosts, &v, LoadBy::CpuCommit).unwrap();
        assert_eq!(counts(&p), [("b".into(), 1)]);
    }

    #[test]
    fn impossible_limits_are_clear_errors() {
        let mut v = vms(3);
        for x in &mut v {
            x.coschedule = Some(0);
        }
        assert_eq!(
            schedule(&[host("a", 0, 0), host("b", 0, 0)], &v, LoadBy::CpuCommit),
            Err(ScheduleError::NoRoom { vm: "vm-2".into() })
        );
        let mut v = vms(2);
        v[0].schedule = Some("a".into());
        v[1].schedule = Some("a".into());
        v[1].coschedule = Some(0);
        let e = schedule(&[host("a", 0, 0), host("b", 0, 0)], &v, LoadBy::CpuCommit).unwrap_err();
        assert!(matches!(e, ScheduleError::Coschedule { .. }), "{e}");
        assert!(e.to_string().contains("coschedule"), "{e}");
        assert_eq!(
            schedule(&[], &v, LoadBy::CpuCommit),
            Err(ScheduleError::NoHosts)
        );
    }

    #[test]
    fn colocated_vms_share_a_host() {
        let mut v = vms(4);
        v[1].colocate = Some("vm-0".into());
        v[2].colocate = Some("vm-1".into());
        let p = schedule(&[host("a", 0, 0), host("b", 0, 0)], &v, LoadBy::CpuCommit).unwrap();
        let with0 = p
            .values()
            .find(|vs| vs.contains(&"vm-0".to_string()))
            .unwrap();
        assert!(
            with0.contains(&"vm-1".into()) && with0.contains(&"vm-2".into()),
            "{p:?}"
        );
        v[3].colocate = Some("ghost".into());
        assert!(matches!(
            schedule(&[host("a", 0, 0)], &v, LoadBy::CpuCommit),
            Err(ScheduleError::UnknownColocate { .. })
        ));
        let mut lp = vms(2);
        lp[0].colocate = Some("vm-1".into());
        lp[1].colocate = Some("vm-0".into());
        assert!(matches!(
            schedule(&[host("a", 0, 0)], &lp, LoadBy::CpuCommit),
            Err(ScheduleError::ColocateLoop(_))
        ));
    }

    #[test]
    fn one_host_takes_everything() {
        let p = schedule(&[host("solo", 0, 0)], &vms(5), LoadBy::CpuCommit).unwrap();
        assert_eq!(counts(&p), [("solo".into(), 5)]);
    }
}
