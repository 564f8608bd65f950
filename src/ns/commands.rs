//! `namespace`, `clear namespace` and `ns hosts|add-hosts|del-hosts`.

use super::{current, hosts_of, initial_hosts, valid_name, DEFAULT};
use crate::command::{
    ranges, table, BoxFuture, Call, CmdResult, CommandError, Reply, Response, Spec,
};
use crate::daemon::Node;
use std::collections::BTreeSet;

pub fn specs() -> Vec<Spec<Node>> {
    vec![
        Spec {
            patterns: &["namespace [name]", "namespace <name> (command)"],
            short: "display or change namespace",
            long: "With no arguments, list the namespaces (name, VLAN range, whether this\nsession is in it). With a name, make it this session's namespace,\ncreating it if needed; with a name and a command, run that one command\nthere.\n\nA new namespace holds every other node of the mesh (or this node when\nit is alone); `ns hosts`, `ns add-hosts` and `ns del-hosts` change that.\nIn a namespace whose hosts go beyond this node, `vm info`, `vm start`,\n`vm stop`, `vm kill`, `vm flush`, `vm tag` and `host` run on every host.",
            handler: namespace,
            mesh_ok: true,
        },
        Spec {
            patterns: &["clear namespace [name]"],
            short: "unset or delete namespace",
            long: "Without a name, return this session to the default namespace, minimega.\nWith a name, forget that namespace on this node and on every other node\nof the mesh.",
            handler: clear_namespace,
            mesh_ok: true,
        },
        Spec {
            patterns: &["ns hosts"],
            short: "list the hosts of the namespace",
            long: "List the mesh nodes the current namespace uses.",
            handler: ns_hosts,
            mesh_ok: true,
        },
        Spec {
            patterns: &["ns add-hosts <hostname or range or all>"],
            short: "add hosts to the namespace",
            long: "Add mesh nodes to the current namespace: a name, a range (`kn[1-4]`),\na comma list, `localhost` for this node, or `all` for every other node\nof the mesh. Every name must be in the mesh.",
            handler: ns_add_hosts,
            mesh_ok: true,
        },
        Spec {
            patterns: &["ns del-hosts <hostname or range or all>"],
            short: "remove hosts from the namespace",
            long: "Remove nodes from the current namespace: a name, a range, a comma\nlist, `localhost`, or `all` for every host.",
            handler: ns_del_hosts,
            mesh_ok: true,
        },
    ]
}

fn session_value(name: &str) -> Option<String> {
    (name != DEFAULT).then(|| name.to_string())
}

fn namespace(mut c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let node = c.ctx;
        let Some(name) = c.args.string("name").map(str::to_string) else {
            let active = current(c.session).to_string();
            let mut names: BTreeSet<String> = node.namespaces.names().into_iter().collect();
            names.insert(DEFAULT.to_string());
            names.insert(active.clone());
            let rows = names
                .into_iter()
                .map(|n| vec![n.clone(), String::new(), (n == active).to_string()]);
            return Ok(table(["namespace", "vlans", "active"], rows).into());
        };
        valid_name(&name).map_err(CommandError::Invalid)?;
        node.namespaces.ensure(&name, || initial_hosts(node, &name));
        if c.args.sub.is_none() {
            c.session.namespace = session_value(&name);
            return Ok(Reply::empty());
        }
        let saved = std::mem::replace(&mut c.session.namespace, session_value(&name));
        let groups = c.run_sub().await;
        c.session.namespace = saved;
        Ok(Reply::Groups(groups))
    })
}

fn clear_namespace(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let node = c.ctx;
        let Some(name) = c.args.string("name").map(str::to_string) else {
            c.session.namespace = None;
            return Ok(Reply::empty());
        };
        if name == DEFAULT {
            return Err(CommandError::Invalid(
                "cannot delete the default namespace `minimega`".into(),
            ));
        }
        let known = node.namespaces.remove(&name);
        if current(c.session) == name {
            c.session.namespace = None;
        }
        let unknown = format!("unknown namespace: `{name}`");
        if c.session.origin != crate::command::Origin::Local {
            return if known {
                Ok(Reply::empty())
            } else {
                Err(CommandError::failed(unknown))
            };
        }
        // The other nodes forget it too; those that never knew it are fine.
        let line = format!(
            "clear namespace {}",
            crate::command::lexer::quote_if_needed(&name, false)
        );
        let mut responses: Vec<Response> = node
            .mesh
            .send(&node.mesh.others(), &line)
            .await
            .into_iter()
            .filter(|r| r.error != unknown)
            .collect();
        if !known && responses.is_empty() {
            return Err(CommandError::failed(unknown));
        }
        responses.retain(Response::is_error);
        if responses.is_empty() {
            return Ok(Reply::empty());
        }
        Ok(responses.into())
    })
}

fn ns_hosts(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let hosts: Vec<String> = hosts_of(c.ctx, c.session).into_iter().collect();
        Ok(Response::text(ranges::compress(&hosts))
            .with_data(serde_json::json!(hosts))
            .into())
    })
}

/// Expands a host argument; `localhost` is this node, `all` is `all`.
fn host_list(node: &Node, spec: &str, all: Vec<String>) -> Result<Vec<String>, CommandError> {
    crate::mesh::commands::targets(spec, node.hostname(), &all)
        .map_err(|e| CommandError::Invalid(format!("invalid hosts: {e}")))
}

fn ns_add_hosts(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let node = c.ctx;
        let spec = c.args.string("hostname").unwrap_or_default();
        let hosts = host_list(node, spec, node.mesh.others())?;
        let mesh: BTreeSet<String> = node.mesh.nodes().into_iter().collect();
        if let Some(h) = hosts.iter().find(|h| !mesh.contains(*h)) {
            return Err(CommandError::failed(format!("unknown host: `{h}`")));
        }
        hosts_of(node, c.session);
        node.namespaces.add_hosts(current(c.session), &hosts);
        Ok(Reply::empty())
    })
}

fn ns_del_hosts(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let node = c.ctx;
        let spec = c.args.string("hostname").unwrap_or_default();
        let present: Vec<String> = hosts_of(node, c.session).into_iter().collect();
        let hosts = host_list(node, spec, present)?;
        node.namespaces.del_hosts(current(c.session), &hosts);
        Ok(Reply::empty())
    })
}
