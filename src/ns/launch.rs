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

use super::queue::{self, Assignment, Queued, ScheduleStat, Taken};
use super::schedule::{self, HostLoad, VmRequest};
use crate::command::{lexer, CommandError, Response, Session};
use crate::daemon::Node;
use crate::vm::config::VmConfig;
use crate::vm::targets::LaunchNames;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A launch may take minutes on a loaded host; it still fails at once when
/// the host leaves the mesh.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(600);

/// The pattern remote hosts are asked to run, carrying the config.
pub fn remote_line(ns: &str, spec: &str, cfg: &VmConfig) -> String {
    let json = serde_json::to_string(cfg).unwrap_or_default();
    format!(
        "namespace {} vm launch kvm {} config {}",
        lexer::quote_if_needed(ns, false),
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

fn here(ns: &str, line: &str) -> String {
    format!("namespace {} {line}", lexer::quote_if_needed(ns, false))
}

fn unreachable(responses: &[Response]) -> Vec<String> {
    responses
        .iter()
        .filter(|r| r.is_error())
        .map(|r| format!("{}: {}", r.host, r.error))
        .collect()
}

/// The namespace's VM names (with their host) and UUIDs, on every host.
async fn taken(
    node: &Node,
    ns: &str,
    hosts: &BTreeSet<String>,
) -> Result<(Taken, BTreeMap<String, String>), CommandError> {
    let me = node.hostname().to_string();
    let mut t = Taken::default();
    let mut at = BTreeMap::new();
    for vm in node.vms.in_namespace(ns) {
        t.names.insert(vm.name.clone());
        t.uuids.insert(vm.uuid.clone());
        at.insert(vm.name.clone(), me.clone());
    }
    let others: Vec<String> = hosts.iter().filter(|h| **h != me).cloned().collect();
    if others.is_empty() {
        return Ok((t, at));
    }
    let infos = node
        .mesh
        .send(&others, &here(ns, ".columns name,uuid vm info"))
        .await;
    let down = unreachable(&infos);
    if !down.is_empty() {
        return Err(CommandError::failed(format!(
            "cannot check the names of namespace {ns}: not every host answered ({})",
            down.join("; ")
        )));
    }
    for r in &infos {
        let (Some(n), Some(u)) = (
            r.header.iter().position(|h| h == "name"),
            r.header.iter().position(|h| h == "uuid"),
        ) else {
            continue;
        };
        for row in &r.tabular {
            if let (Some(name), Some(uuid)) = (row.get(n), row.get(u)) {
                t.names.insert(name.clone());
                t.uuids.insert(uuid.clone());
                at.insert(name.clone(), r.host.clone());
            }
        }
    }
    Ok((t, at))
}

fn namespace_hosts(node: &Node, session: &Session) -> BTreeSet<String> {
    super::hosts_of(node, session)
}

/// `vm launch kvm NAMES [config]`: checks and queues the launch; launches
/// the queue unless the namespace queues.
pub async fn enqueue(
    node: &Node,
    session: &Session,
    names: LaunchNames,
    config: VmConfig,
) -> Result<Vec<Response>, CommandError> {
    let ns = super::current(session).to_string();
    let hosts = namespace_hosts(node, session);
    let (taken, _) = taken(node, &ns, &hosts).await?;
    let q = Queued { names, config };
    let queueing = node.namespaces.with(
        &ns,
        || hosts.clone(),
        |n| -> Result<bool, CommandError> {
            queue::check(&q, &taken, &n.queue).map_err(CommandError::failed)?;
            n.queue.push(q.clone());
            // A dry run placed the queue as it was.
            n.assignment = None;
            Ok(n.queueing)
        },
    )?;
    if queueing {
        return Ok(Vec::new());
    }
    let r = run(node, session).await;
    if r.is_err() {
        // Nothing was launched; a launch meant for now does not wait.
        node.namespaces.with(
            &ns,
            || hosts.clone(),
            |n| {
                if let Some(at) = n.queue.iter().rposition(|e| *e == q) {
                    n.queue.remove(at);
                }
            },
        );
    }
    r
}

/// Places the queue on the namespace's hosts.
async fn place(
    node: &Node,
    ns: &str,
    hosts: &BTreeSet<String>,
    queue: &[Queued],
    load_by: schedule::LoadBy,
) -> Result<Assignment, CommandError> {
    let me = node.hostname();
    if hosts.len() == 1 && hosts.contains(me) {
        let all = queue
            .iter()
            .enumerate()
            .map(|(e, q)| (e, q.names.clone()))
            .collect();
        return Ok(Assignment::from([(me.to_string(), all)]));
    }
    let list: Vec<String> = hosts.iter().cloned().collect();
    let loads = node.mesh.send(&list, &here(ns, "host")).await;
    let down = unreachable(&loads);
    if !down.is_empty() {
        return Err(CommandError::failed(format!(
            "cannot schedule: not every host of namespace {ns} answered ({})",
            down.join("; ")
        )));
    }
    let budgets = crate::vm::admission::budgets(&loads);
    let loads: Vec<HostLoad> = super::loads_from_host_table(&loads);
    let (_, existing) = taken(node, ns, hosts).await?;
    let reqs = requests(queue, &existing);
    let placement = schedule::schedule(&loads, &reqs, load_by).map_err(CommandError::failed)?;
    let a = assign(queue, &placement);
    // Every host must hold its share before any host launches.
    let shares = a.iter().map(|(host, entries)| {
        let (mut vms, mut mib) = (0, 0u64);
        for (e, names) in entries {
            let n = names.count();
            vms += n;
            mib = mib.saturating_add((n as u64).saturating_mul(queue[*e].config.memory));
        }
        (host.as_str(), vms, mib)
    });
    crate::vm::admission::check_shares(&budgets, shares)
        .map_err(|e| CommandError::failed(format!("cannot launch: {e}")))?;
    Ok(a)
}

/// The queue and what the namespace schedules it with, checked.
fn take_queue(
    node: &Node,
    ns: &str,
    hosts: &BTreeSet<String>,
    keep: bool,
) -> Result<(Vec<Queued>, schedule::LoadBy, Option<Assignment>), CommandError> {
    node.namespaces.with(
        ns,
        || hosts.clone(),
        |n| {
            if n.hosts.is_empty() {
                return Err(CommandError::failed(
                    "namespace must contain at least one host to launch VMs",
                ));
            }
            if n.queue.is_empty() {
                return Err(CommandError::failed(
                    "namespace must contain at least one queued VM to launch VMs",
                ));
            }
            if keep {
                Ok((n.queue.clone(), n.load_by, None))
            } else {
                Ok((std::mem::take(&mut n.queue), n.load_by, n.assignment.take()))
            }
        },
    )
}

/// `ns schedule dry-run`: places the queue and keeps the placement for
/// the next schedule (which `ns schedule mv` may edit first).
pub async fn dry_run(node: &Node, session: &Session) -> Result<Assignment, CommandError> {
    let ns = super::current(session).to_string();
    let hosts = namespace_hosts(node, session);
    let (queue, load_by, _) = take_queue(node, &ns, &hosts, true)?;
    let a = place(node, &ns, &hosts, &queue, load_by).await?;
    node.namespaces
        .with(&ns, || hosts.clone(), |n| n.assignment = Some(a.clone()));
    Ok(a)
}

/// A bare `vm launch` or `ns schedule`: launches the whole queue (where a
/// dry run placed it, if one did) and empties it. Returns the errors of
/// the launches that failed; successful launches print nothing.
pub async fn run(node: &Node, session: &Session) -> Result<Vec<Response>, CommandError> {
    let ns = super::current(session).to_string();
    let hosts = namespace_hosts(node, session);
    let (queue, load_by, planned) = take_queue(node, &ns, &hosts, false)?;
    let assignment = match planned {
        Some(a) => a,
        None => match place(node, &ns, &hosts, &queue, load_by).await {
            Ok(a) => a,
            Err(e) => {
                // Nothing was launched: the queue stays for another try.
                node.namespaces.with(
                    &ns,
                    || hosts.clone(),
                    |n| {
                        let later = std::mem::take(&mut n.queue);
                        n.queue = queue;
                        n.queue.extend(later);
                    },
                );
                return Err(e);
            }
        },
    };
    let total = queue.iter().map(Queued::count).sum();
    let stat_at = node.namespaces.with(
        &ns,
        || hosts.clone(),
        |n| {
            n.stats.push(ScheduleStat {
                start: crate::vm::manager::now_secs(),
                total,
                hosts: n.hosts.len(),
                ..ScheduleStat::default()
            });
            n.stats.len() - 1
        },
    );
    let me = node.hostname().to_string();
    let asks = assignment.iter().map(|(host, entries)| {
        let (queue, ns, me) = (&queue, &ns, &me);
        async move {
            let mut out: Vec<(usize, Response)> = Vec::new();
            for (e, names) in entries {
                let cfg = queue[*e].config.clone();
                let n = match names {
                    LaunchNames::Count(n) => *n as usize,
                    LaunchNames::Names(v) => v.len(),
                };
                if host == me {
                    let r = match node.vms.launch_with(ns, names.clone(), cfg).await {
                        Ok(_) => Response::default(),
                        Err(e) => Response::error(me, e.0),
                    };
                    out.push((n, r));
                } else {
                    let line = remote_line(ns, &spec(names), &cfg);
                    let targets = vec![host.clone()];
                    for r in node
                        .mesh
                        .send_within(&targets, &line, Some(LAUNCH_TIMEOUT))
                        .await
                    {
                        out.push((n, r));
                    }
                }
            }
            out
        }
    });
    let answers: Vec<(usize, Response)> = futures_util::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect();
    node.namespaces.with(
        &ns,
        || hosts.clone(),
        |n| {
            if let Some(s) = n.stats.get_mut(stat_at) {
                for (count, r) in &answers {
                    if r.is_error() {
                        s.failures += 1;
                    } else {
                        s.launched += count;
                    }
                }
                s.end = Some(crate::vm::manager::now_secs());
            }
        },
    );
    Ok(answers
        .into_iter()
        .map(|(_, r)| r)
        .filter(Response::is_error)
        .collect())
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
