//! Where a command runs: a namespace's hosts, and the engine's hook that
//! sends a namespace-wide command to the other hosts too.

use crate::command::{lexer, Elsewhere, Response, Session, Wide};
use crate::node::Node;
use crate::ns::*;
use std::collections::BTreeSet;

/// Hosts a new namespace gets, minimega's way.
pub fn initial_hosts(node: &Node, name: &str) -> BTreeSet<String> {
    let me = node.hostname().to_string();
    if name == DEFAULT {
        return BTreeSet::from([me]);
    }
    let others: BTreeSet<String> = node.mesh.others().into_iter().collect();
    if others.is_empty() {
        BTreeSet::from([me])
    } else {
        others
    }
}

/// The session's namespace, created if needed, and its hosts.
pub fn hosts_of(node: &Node, session: &Session) -> BTreeSet<String> {
    let name = current(session);
    node.namespaces.ensure(name, || initial_hosts(node, name));
    node.namespaces.hosts(name).unwrap_or_default()
}

/// The engine's hook ([`crate::command::Context::elsewhere`]): a
/// command whose reach is the namespace, typed in a namespace with hosts
/// beyond this node, also runs on those hosts, as `namespace <ns> <command>`.
pub fn elsewhere(node: &Node, wide: &Wide, line: &str, session: &Session) -> Option<Elsewhere> {
    let hosts = hosts_of(node, session);
    let me = node.hostname();
    let remote: Vec<String> = hosts.iter().filter(|h| *h != me).cloned().collect();
    if remote.is_empty() {
        return None;
    }
    let line = format!(
        "namespace {} {line}",
        lexer::quote_if_needed(current(session), false)
    );
    let mesh = node.mesh.clone();
    Some(Elsewhere {
        here: hosts.contains(me) || wide.always_here,
        remote: Box::pin(async move { mesh.send(&remote, &line).await }),
    })
}

/// A VM lives on one host of a namespace: the other hosts' "vm not found"
/// is noise when some host acted on it (minimega hides it too). When no
/// host knows the VM, one such error is kept.
pub fn drop_not_found(responses: &mut Vec<Response>) {
    let not_found = |r: &Response| r.error.starts_with("vm not found");
    if responses.iter().any(|r| !not_found(r)) {
        responses.retain(|r| !not_found(r));
    } else {
        responses.truncate(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_errors_of_other_hosts_are_dropped() {
        let ok = Response {
            host: "a".into(),
            ..Default::default()
        };
        let mut rs = vec![
            ok.clone(),
            Response::error("b", "vm not found: x"),
            Response::error("c", "disk gone"),
        ];
        drop_not_found(&mut rs);
        assert_eq!(
            rs.iter().map(|r| r.host.as_str()).collect::<Vec<_>>(),
            ["a", "c"]
        );
        let mut none = vec![
            Response::error("b", "vm not found: x"),
            Response::error("c", "vm not found: x"),
        ];
        drop_not_found(&mut none);
        assert_eq!(none, vec![Response::error("b", "vm not found: x")]);
    }
}
