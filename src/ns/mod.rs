//! Namespaces across the mesh: each namespace names the mesh nodes it uses
//! (its hosts). A session works in one namespace at a time
//! ([`crate::command::Session::namespace`], `None` being the default
//! namespace `minimega`). In a namespace whose hosts go beyond this node,
//! the commands whose `Spec::reach` is the namespace run on every host,
//! through the mesh, and answer as one table with a host column.
//!
//! As in minimega: the default namespace holds this node only; a new
//! namespace holds every other node of the mesh at its creation (this node,
//! typically the head node, is left out), or this node alone when the mesh
//! has no other node.
//!
//! `namespace NAME` alone makes NAME the daemon's active namespace: every
//! client's commands run there from their next line on (as minimega has
//! one active namespace per daemon); `namespace NAME CMD` runs one command
//! there. Each namespace also keeps its launch queue (`ns queueing`), its
//! host load measure (`ns load`), its saved VM configurations (`vm config
//! save`) and its last dry-run schedule.
//!
//! - [`commands`]: `namespace`, `clear namespace`, `clear all`, `ns ...`
//! - [`queue`]: queued launches, checked and printed (pure)
//! - [`schedule`]: where `vm launch` puts VMs in a namespace (pure)
//! - [`launch`]: `vm launch` here or across the namespace's hosts

pub mod launch;
pub mod queue;
pub mod schedule;

use crate::command::{Response, Session};
use crate::vm::config::VmConfig;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

pub const DEFAULT: &str = "minimega";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Namespace {
    pub hosts: BTreeSet<String>,
    /// `ns queueing true`: `vm launch kvm ...` only queues; a bare
    /// `vm launch` (or `ns schedule`) launches the queue.
    pub queueing: bool,
    pub queue: Vec<queue::Queued>,
    pub load_by: schedule::LoadBy,
    /// `vm config save NAME`.
    pub saved: BTreeMap<String, VmConfig>,
    /// The placement of the queue `ns schedule dry-run` made; the next
    /// schedule uses it unless the queue changed since.
    pub assignment: Option<queue::Assignment>,
    pub stats: Vec<queue::ScheduleStat>,
}

/// Every namespace this node knows, by name, and the active one.
#[derive(Debug, Default)]
pub struct Namespaces {
    inner: Mutex<BTreeMap<String, Namespace>>,
    /// `None`: the default namespace.
    active: Mutex<Option<String>>,
}

/// A namespace name: letters, digits, `-`, `_` and `.`.
pub fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "invalid namespace name `{name}`: use 1 to 64 letters, digits, `-`, `_` or `.`"
        ));
    }
    Ok(())
}

impl Namespaces {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Namespace>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The namespace, created with `hosts()` when new. Returns whether it
    /// was created.
    pub fn ensure(&self, name: &str, hosts: impl FnOnce() -> BTreeSet<String>) -> bool {
        let mut m = self.lock();
        if m.contains_key(name) {
            return false;
        }
        m.insert(
            name.to_string(),
            Namespace {
                hosts: hosts(),
                ..Namespace::default()
            },
        );
        true
    }

    pub fn hosts(&self, name: &str) -> Option<BTreeSet<String>> {
        self.lock().get(name).map(|n| n.hosts.clone())
    }

    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    pub fn add_hosts(&self, name: &str, hosts: &[String]) {
        if let Some(n) = self.lock().get_mut(name) {
            n.hosts.extend(hosts.iter().cloned());
        }
    }

    pub fn del_hosts(&self, name: &str, hosts: &[String]) {
        if let Some(n) = self.lock().get_mut(name) {
            for h in hosts {
                n.hosts.remove(h);
            }
        }
    }

    pub fn remove(&self, name: &str) -> bool {
        self.lock().remove(name).is_some()
    }

    /// Runs `f` on the namespace, created with `hosts()` when new.
    pub fn with<R>(
        &self,
        name: &str,
        hosts: impl FnOnce() -> BTreeSet<String>,
        f: impl FnOnce(&mut Namespace) -> R,
    ) -> R {
        let mut m = self.lock();
        let ns = m.entry(name.to_string()).or_insert_with(|| Namespace {
            hosts: hosts(),
            ..Namespace::default()
        });
        f(ns)
    }

    /// The daemon's active namespace; `None` is the default.
    pub fn active(&self) -> Option<String> {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_active(&self, name: Option<String>) {
        *self.active.lock().unwrap_or_else(|p| p.into_inner()) = name;
    }
}

/// The session's namespace as [`Session::namespace`] holds it.
pub fn session_value(name: &str) -> Option<String> {
    (name != DEFAULT).then(|| name.to_string())
}

/// The session's namespace name.
pub fn current(session: &Session) -> &str {
    session.namespace.as_deref().unwrap_or(DEFAULT)
}

/// Host loads for the scheduler, read from the `host` command's table
/// (columns name, cpus, cpucommit, memtotal, memcommit, vms), as gathered
/// across a namespace's hosts. Rows it cannot read are skipped.
pub fn loads_from_host_table(responses: &[Response]) -> Vec<schedule::HostLoad> {
    let mut out = Vec::new();
    for r in responses.iter().filter(|r| !r.is_error()) {
        let col = |name: &str| r.header.iter().position(|h| h == name);
        let (Some(n), Some(c), Some(cc), Some(mt), Some(mc), Some(v)) = (
            col("name"),
            col("cpus"),
            col("cpucommit"),
            col("memtotal"),
            col("memcommit"),
            col("vms"),
        ) else {
            continue;
        };
        let net = col("netcommit");
        for row in &r.tabular {
            let num = |i: usize| row.get(i).and_then(|s| s.parse::<u64>().ok());
            let net_commit = net.and_then(num).unwrap_or(0) as usize;
            let (
                Some(name),
                Some(cpus),
                Some(cpu_commit),
                Some(mem_total),
                Some(mem_commit),
                Some(vms),
            ) = (row.get(n), num(c), num(cc), num(mt), num(mc), num(v))
            else {
                continue;
            };
            out.push(schedule::HostLoad {
                name: name.clone(),
                cpus: cpus as usize,
                cpu_commit: cpu_commit as usize,
                mem_total,
                mem_commit,
                vms: vms as usize,
                net_commit,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::table;

    #[test]
    fn names() {
        assert!(valid_name("exp-1_a.b").is_ok());
        for bad in ["", "a b", "a,b", "x[1]", &"a".repeat(65)] {
            assert!(valid_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn registry() {
        let ns = Namespaces::default();
        assert!(ns.ensure("a", || BTreeSet::from(["n1".to_string()])));
        assert!(!ns.ensure("a", || panic!("exists")));
        ns.add_hosts("a", &["n2".into(), "n3".into()]);
        ns.del_hosts("a", &["n1".into()]);
        assert_eq!(
            ns.hosts("a").unwrap().into_iter().collect::<Vec<_>>(),
            ["n2", "n3"]
        );
        assert_eq!(ns.names(), ["a"]);
        assert!(ns.remove("a"));
        assert!(ns.hosts("a").is_none());
    }

    #[test]
    fn host_table_to_loads() {
        let mut r = table(
            crate::hostinfo::HOST_COLUMNS,
            [
                [
                    "n1", "4", "2", "0.1", "100", "8000", "1024", "2", "2", "1s", "tcg",
                ]
                .map(String::from)
                .to_vec(),
                [
                    "bad", "x", "2", "0.1", "100", "8000", "1024", "2", "2", "1s", "tcg",
                ]
                .map(String::from)
                .to_vec(),
            ],
        );
        r.host = "n1".into();
        let loads = loads_from_host_table(&[r, Response::error("n2", "down")]);
        assert_eq!(loads.len(), 1);
        assert_eq!(loads[0].name, "n1");
        assert_eq!(
            (loads[0].cpus, loads[0].cpu_commit, loads[0].vms),
            (4, 2, 2)
        );
        assert_eq!((loads[0].mem_total, loads[0].mem_commit), (8000, 1024));
    }
}
