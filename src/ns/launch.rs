//! `vm launch` in a namespace whose hosts span the mesh: gather every
//! host's load and VM names, check the names, place the VMs with
//! [`super::schedule`], and launch each host's share there with this
//! node's VM configuration (minimega ships the config with the launch, so
//! a host launches exactly what the head configured).

use super::schedule::{self, HostLoad, LoadBy, VmRequest};
use crate::command::{lexer, CommandError, Response};
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

/// What the scheduler needs for each VM of this launch.
pub fn requests(names: &LaunchNames, cfg: &VmConfig) -> Vec<VmRequest> {
    let list: Vec<String> = match names {
        LaunchNames::Names(n) => n.clone(),
        // Counted VMs are named by each host from its own ids; placeholders
        // stand in for them while placing.
        LaunchNames::Count(n) => (0..*n).map(|i| format!("#{i}")).collect(),
    };
    list.into_iter()
        .map(|name| VmRequest {
            name,
            vcpus: cfg.vcpus as usize,
            memory: cfg.memory,
            schedule: (!cfg.schedule.is_empty()).then(|| cfg.schedule.clone()),
            coschedule: usize::try_from(cfg.coschedule).ok(),
            colocate: None,
        })
        .collect()
}

/// Each host's launch spec: its names joined, or its count.
pub fn specs_per_host(placement: &schedule::Placement, counted: bool) -> BTreeMap<String, String> {
    placement
        .iter()
        .filter(|(_, vms)| !vms.is_empty())
        .map(|(host, vms)| {
            let spec = if counted {
                vms.len().to_string()
            } else {
                vms.join(",")
            };
            (host.clone(), spec)
        })
        .collect()
}

/// Names already used in the namespace, from `vm info` answers.
fn existing(responses: &[Response]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for r in responses.iter().filter(|r| !r.is_error()) {
        if let Some(i) = r.header.iter().position(|h| h == "name") {
            for row in &r.tabular {
                if let Some(n) = row.get(i) {
                    out.insert(n.clone(), r.host.clone());
                }
            }
        }
    }
    out
}

fn unreachable(responses: &[Response]) -> Vec<String> {
    responses
        .iter()
        .filter(|r| r.is_error())
        .map(|r| format!("{}: {}", r.host, r.error))
        .collect()
}

pub async fn launch(
    node: &Node,
    ns: &str,
    hosts: &BTreeSet<String>,
    names: LaunchNames,
    cfg: VmConfig,
) -> Result<Vec<Response>, CommandError> {
    let hosts: Vec<String> = hosts.iter().cloned().collect();
    let here = |line: &str| format!("namespace {} {line}", lexer::quote_if_needed(ns, false));
    let (loads, infos) = futures_util::future::join(
        node.mesh.send(&hosts, &here("host")),
        node.mesh.send(&hosts, &here(".columns name vm info")),
    )
    .await;
    let down = unreachable(&loads);
    if !down.is_empty() {
        return Err(CommandError::failed(format!(
            "cannot schedule: not every host of namespace {ns} answered ({})",
            down.join("; ")
        )));
    }
    if let LaunchNames::Names(list) = &names {
        let used = existing(&infos);
        if let Some(n) = list.iter().find(|n| used.contains_key(*n)) {
            return Err(CommandError::failed(format!(
                "vm name already used in namespace {ns}: {n} (on {})",
                used[n]
            )));
        }
    }
    if !cfg.uuid.is_empty()
        && !matches!(&names, LaunchNames::Names(n) if n.len() == 1)
        && !matches!(names, LaunchNames::Count(1))
    {
        return Err(CommandError::failed(format!(
            "uuid {} can be used by one VM only (clear vm config uuid)",
            cfg.uuid
        )));
    }
    let budgets = crate::vm::admission::budgets(&loads);
    let loads: Vec<HostLoad> = super::loads_from_host_table(&loads);
    let reqs = requests(&names, &cfg);
    let placement =
        schedule::schedule(&loads, &reqs, LoadBy::default()).map_err(CommandError::failed)?;
    // Every host must hold its share before any host launches.
    let shares = placement.iter().map(|(h, vms)| (h.as_str(), vms.len()));
    crate::vm::admission::check_shares(&budgets, shares, cfg.memory)
        .map_err(|e| CommandError::failed(format!("cannot launch: {e}")))?;
    let counted = matches!(names, LaunchNames::Count(_));
    let per_host = specs_per_host(&placement, counted);
    let asks = per_host.iter().map(|(host, spec)| {
        let line = remote_line(ns, spec, &cfg);
        let targets = vec![host.clone()];
        async move {
            node.mesh
                .send_within(&targets, &line, Some(LAUNCH_TIMEOUT))
                .await
        }
    });
    let answers: Vec<Response> = futures_util::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect();
    // Successful launches print nothing, as a local launch does.
    Ok(answers.into_iter().filter(|r| r.is_error()).collect())
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

    #[test]
    fn counted_launches_split_into_counts() {
        let cfg = VmConfig::default();
        let reqs = requests(&LaunchNames::Count(3), &cfg);
        assert_eq!(reqs.len(), 3);
        let mut p = schedule::Placement::new();
        p.insert("a".into(), vec!["#0".into(), "#2".into()]);
        p.insert("b".into(), vec!["#1".into()]);
        p.insert("c".into(), vec![]);
        let specs = specs_per_host(&p, true);
        assert_eq!(
            specs.into_iter().collect::<Vec<_>>(),
            [("a".into(), "2".into()), ("b".into(), "1".into())]
        );
    }

    #[test]
    fn named_launches_keep_their_names_and_hints() {
        let cfg = VmConfig {
            schedule: "n2".into(),
            coschedule: 1,
            ..Default::default()
        };
        let reqs = requests(&LaunchNames::Names(vec!["x".into(), "y".into()]), &cfg);
        assert_eq!(reqs[0].schedule.as_deref(), Some("n2"));
        assert_eq!(reqs[1].coschedule, Some(1));
        let mut p = schedule::Placement::new();
        p.insert("n2".into(), vec!["x".into(), "y".into()]);
        assert_eq!(specs_per_host(&p, false)["n2"], "x,y");
    }
}
