//! `vm launch` across a namespace's hosts: the orchestration over the node
//! (its VMs, the mesh, the namespace registry); the pure planning is
//! `ns::launch`.

use crate::command::{CommandError, Response, Session};
use crate::node::Node;
use crate::ns::launch::*;
use crate::ns::queue::{self, Assignment, Queued, ScheduleStat, Taken};
use crate::ns::schedule::{self, HostLoad};
use crate::vm::config::VmConfig;
use crate::vm::targets::LaunchNames;
use std::collections::{BTreeMap, BTreeSet};

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
    super::scope::hosts_of(node, session)
}

/// `vm launch kvm NAMES [config]`: checks and queues the launch; launches
/// the queue unless the namespace queues.
pub async fn enqueue(
    node: &Node,
    session: &Session,
    names: LaunchNames,
    config: VmConfig,
) -> Result<Vec<Response>, CommandError> {
    let ns = crate::ns::current(session).to_string();
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
    let loads: Vec<HostLoad> = crate::ns::loads_from_host_table(&loads);
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
    let ns = crate::ns::current(session).to_string();
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
    let ns = crate::ns::current(session).to_string();
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
                        Err(e) => Response::error(me, e.to_string()),
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
