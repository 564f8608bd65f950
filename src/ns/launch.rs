//! `vm launch` in a namespace, as minimega does it: each `vm launch kvm
//! NAMES` is checked against the namespace's VMs (on every host) and its
//! queue, then queued with the current configuration; unless the namespace
//! queues (`ns queueing true`), the queue is scheduled at once. A bare
//! `vm launch` (or `ns schedule`) schedules it: on this node when the
//! namespace holds only this node, else over the namespace's hosts by load
//! with [`super::schedule`] (all queued launches placed together), each
//! host launching its share with the configuration the launch was queued
//! with (minimega ships it along, so a host launches exactly what the head
//! configured).

use super::queue::{Assignment, Queued};
use super::schedule::{self, VmRequest};
use crate::command::{lexer, Response};
use crate::vm::config::VmConfig;
use crate::vm::targets::LaunchNames;
use std::collections::BTreeMap;
use std::time::Duration;

/// A launch may take minutes on a loaded host; it still fails at once when
/// the host leaves the mesh.
pub const LAUNCH_TIMEOUT: Duration = Duration::from_secs(600);

/// The pattern remote hosts are asked to run, carrying the config.
pub fn remote_line(ns: &str, spec: &str, cfg: &VmConfig) -> String {
    let json = serde_json::to_string(cfg).unwrap_or_default();
    format!(
        "namespace {} vm launch {} {} config {}",
        lexer::quote_if_needed(ns, false),
        cfg.kind.as_str(),
        lexer::quote_if_needed(spec, false),
        lexer::quote_if_needed(&json, true)
    )
}

/// The name the scheduler knows the `i`th VM of queue entry `entry` by:
/// its own, or a placeholder for a counted launch's VM (each host names
/// those from its own ids).
fn request_name(q: &Queued, entry: usize, i: usize) -> String {
    match &q.names {
        LaunchNames::Names(v) => v[i].clone(),
        LaunchNames::Count(_) => format!("#{entry}.{i}"),
    }
}

/// What the scheduler needs for each VM of the queue. A VM colocated with
/// one that runs already goes where that one is.
pub fn requests(queue: &[Queued], existing: &BTreeMap<String, String>) -> Vec<VmRequest> {
    let mut out = Vec::new();
    for (e, q) in queue.iter().enumerate() {
        let cfg = &q.config;
        for i in 0..q.count() {
            let (schedule, colocate) = match existing.get(&cfg.colocate) {
                Some(host) if !cfg.colocate.is_empty() => (Some(host.clone()), None),
                _ => (
                    (!cfg.schedule.is_empty()).then(|| cfg.schedule.clone()),
                    (!cfg.colocate.is_empty()).then(|| cfg.colocate.clone()),
                ),
            };
            out.push(VmRequest {
                name: request_name(q, e, i),
                vcpus: cfg.vcpus as usize,
                memory: cfg.memory,
                schedule,
                coschedule: usize::try_from(cfg.coschedule).ok(),
                colocate,
                nics: cfg.networks.len(),
            });
        }
    }
    out
}

/// A placement of request names back into queue entries per host.
pub fn assign(queue: &[Queued], placement: &schedule::Placement) -> Assignment {
    let mut where_is: BTreeMap<&str, &str> = BTreeMap::new();
    for (host, names) in placement {
        for n in names {
            where_is.insert(n, host);
        }
    }
    let mut a = Assignment::new();
    for (e, q) in queue.iter().enumerate() {
        let mut per_host: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for i in 0..q.count() {
            let name = request_name(q, e, i);
            if let Some(h) = where_is.get(name.as_str()) {
                per_host.entry(h).or_default().push(name);
            }
        }
        for (host, names) in per_host {
            let names = match q.names {
                LaunchNames::Count(_) => LaunchNames::Count(names.len() as u64),
                LaunchNames::Names(_) => LaunchNames::Names(names),
            };
            a.entry(host.to_string()).or_default().push((e, names));
        }
    }
    a
}

/// Each host's launch spec for one entry: its names joined, or its count.
pub fn spec(names: &LaunchNames) -> String {
    match names {
        LaunchNames::Count(n) => n.to_string(),
        LaunchNames::Names(v) => v.join(","),
    }
}

pub fn here(ns: &str, line: &str) -> String {
    format!("namespace {} {line}", lexer::quote_if_needed(ns, false))
}

pub fn unreachable(responses: &[Response]) -> Vec<String> {
    responses
        .iter()
        .filter(|r| r.is_error())
        .map(|r| format!("{}: {}", r.host, r.error))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remote_line_carries_the_config_intact() {
        let cfg = VmConfig {
            memory: 256,
            append: vec!["console=ttyS0".into(), "quiet \"x\"".into()],
            ..Default::default()
        };
        let line = remote_line("exp 1", "web1,web2", &cfg);
        let words = lexer::lex(&line).unwrap();
        let values: Vec<&str> = words.iter().map(|w| w.value.as_str()).collect();
        assert_eq!(
            values[..7],
            [
                "namespace",
                "exp 1",
                "vm",
                "launch",
                "kvm",
                "web1,web2",
                "config"
            ]
        );
        let back: VmConfig = serde_json::from_str(values[7]).unwrap();
        assert_eq!(back, cfg);
    }

    fn q(names: LaunchNames, f: impl FnOnce(&mut VmConfig)) -> Queued {
        let mut config = VmConfig::default();
        f(&mut config);
        Queued { names, config }
    }

    #[test]
    fn a_queue_is_placed_together_and_split_back_per_host() {
        let queue = vec![
            q(LaunchNames::Count(3), |_| {}),
            q(LaunchNames::Names(vec!["x".into(), "y".into()]), |c| {
                c.schedule = "n2".into();
                c.coschedule = 1;
            }),
        ];
        let reqs = requests(&queue, &BTreeMap::new());
        assert_eq!(reqs.len(), 5);
        assert_eq!(reqs[0].name, "#0.0");
        assert_eq!(reqs[3].schedule.as_deref(), Some("n2"));
        assert_eq!(reqs[4].coschedule, Some(1));
        let mut p = schedule::Placement::new();
        p.insert("a".into(), vec!["#0.0".into(), "#0.2".into()]);
        p.insert("n2".into(), vec!["x".into(), "y".into(), "#0.1".into()]);
        p.insert("c".into(), vec![]);
        let a = assign(&queue, &p);
        assert_eq!(a["a"], [(0, LaunchNames::Count(2))]);
        assert_eq!(
            a["n2"],
            [
                (0, LaunchNames::Count(1)),
                (1, LaunchNames::Names(vec!["x".into(), "y".into()]))
            ]
        );
        assert!(!a.contains_key("c"));
        assert_eq!(spec(&a["n2"][1].1), "x,y");
    }

    #[test]
    fn colocating_with_a_running_vm_pins_to_its_host() {
        let queue = vec![q(LaunchNames::Names(vec!["b".into()]), |c| {
            c.colocate = "a".into();
        })];
        let existing = BTreeMap::from([("a".to_string(), "n3".to_string())]);
        let r = requests(&queue, &existing);
        assert_eq!(r[0].schedule.as_deref(), Some("n3"));
        assert_eq!(r[0].colocate, None);
        let r = requests(&queue, &BTreeMap::new());
        assert_eq!(r[0].colocate.as_deref(), Some("a"));
    }

    #[test]
    fn each_request_counts_its_nics_for_netcommit() {
        let queue = vec![
            q(LaunchNames::Count(2), |c| {
                c.networks = crate::vm::nic::parse_nics(&["A".into(), "B".into()]).unwrap();
            }),
            q(LaunchNames::Count(1), |_| {}),
        ];
        let nics: Vec<usize> = requests(&queue, &BTreeMap::new())
            .iter()
            .map(|r| r.nics)
            .collect();
        assert_eq!(nics, [2, 2, 0]);
    }
}
