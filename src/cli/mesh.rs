//! The `mesh` commands, with minimega's names and output.

use crate::command::Reach;
use crate::command::{
    ranges, table, BoxFuture, Call, CmdResult, CommandError, Reply, Response, Spec,
};
use crate::node::Node;
use crate::timefmt::go_duration;
use std::time::Duration;

pub fn specs() -> Vec<Spec<Node>> {
    vec![
        Spec {
            patterns: &["mesh status"],
            short: "display a short status report of the mesh",
            long: "Display the number of nodes in the mesh, this node's degree (links it\nseeks automatically), its direct peers, its context and its mesh port.",
            handler: status,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["mesh list [all,peers]"],
            short: "display the mesh adjacency list",
            long: "Without \"all\" or \"peers\", display each node of the mesh followed by its\nlinks. With \"all\", the names of every node; with \"peers\", the names of\nevery node but this one.",
            handler: list,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["mesh degree [degree]"],
            short: "view or set the current degree for this mesh node",
            long: "View or set how many links this node seeks automatically, by UDP\nbroadcast on the mesh port to nodes of the same context. 0 turns\ndiscovery off: the node then links only by `mesh dial`.",
            handler: degree,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["mesh dial <hostname>"],
            short: "attempt to connect this node to another node",
            long: "Connect to the node at hostname[:port] (default: this node's mesh port),\nwhatever the degree of either node. Both must hold the same mesh key and\nbe of the same context (unlike minimega, whose `mesh dial` crosses\ncontexts).",
            handler: dial,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["mesh hangup <hostname>"],
            short: "disconnect from a client",
            long: "Close the direct link to a peer. Discovery may link again if this node\nis then below its degree.",
            handler: hangup,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["mesh dot <filename>"],
            short: "output a graphviz formatted dot file",
            long: "Write a Graphviz file of the mesh as this node sees it: this node red,\nthe others green, one edge per link.",
            handler: dot,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["mesh timeout [timeout]"],
            short: "view or set the mesh timeout",
            long: "View or set how many seconds `mesh send` (and commands a namespace sends\nto its hosts) wait for a node's answer before reporting an error for it.\nThe command may still complete on that node. A node that leaves the mesh\nis reported at once. 0 waits forever. The default is 10 seconds\n(`mesh-timeout` in the config file).",
            handler: timeout,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["mesh stats"],
            short: "display frame counters per peer and frame kind",
            long: "Display what this node's mesh links carried: one row per peer and frame\nkind, with frames and bytes received (in) and sent (out) since the daemon\nstarted, and frames per second over the last 5 to 10 seconds. A peer's\ncounters survive its links, so a link that keeps reopening shows as hello\nframes piling up. Kinds: hello, confirm, accept and refuse open a link;\nheartbeat keeps an idle link alive (one every 2 seconds each way); lsa is a\nstate announcement (sent on every change of links, and refreshed every\n-msa); routed carries commands and their answers; bye closes a link.\n\nAn idle mesh sends only heartbeats and the periodic announcements. For\nexample, to see the whole mesh's traffic by peer:\n\n\tmesh send all mesh stats",
            handler: stats,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["mesh send <hostname or range or all> (command)"],
            short: "send a command to one or more connected clients",
            long: "Run a command on other nodes of the mesh and show every node's answer,\nwith a host column. For example, to get the vm info of nodes kn1 and kn2:\n\n\tmesh send kn[1-2] vm info\n\n`all` means every other node of the mesh, and also names each node that\nleft it within the last three announcement periods (-msa), as an error\nline, so a node that just died is reported rather than missed. A node that\nfails, or does not answer within `mesh timeout`, gives one error line. A\ncommand that arrived over the mesh cannot itself use `mesh send`.",
            handler: send,
            mesh_ok: false,
            reach: Reach::Here,
            ns_clear: &[],
        },
    ]
}

fn stats(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move { Ok(stats_table(&c.ctx.mesh.stats()).into()) })
}

/// The table of `mesh stats`.
pub fn stats_table(rows: &[crate::mesh::stats::Row]) -> Response {
    let rate = |r: f64| format!("{r:.1}");
    table(
        [
            "peer",
            "kind",
            "frames in",
            "frames out",
            "bytes in",
            "bytes out",
            "in/s",
            "out/s",
        ],
        rows.iter().map(|r| {
            vec![
                r.peer.clone(),
                r.kind.name().to_string(),
                r.total.frames_in.to_string(),
                r.total.frames_out.to_string(),
                r.total.bytes_in.to_string(),
                r.total.bytes_out.to_string(),
                rate(r.rate_in),
                rate(r.rate_out),
            ]
        }),
    )
}

fn status(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let m = &c.ctx.mesh;
        let row = vec![
            m.size().to_string(),
            m.degree().to_string(),
            m.peers().len().to_string(),
            m.context().to_string(),
            m.port().to_string(),
        ];
        Ok(table(["mesh size", "degree", "peers", "context", "port"], [row]).into())
    })
}

/// minimega's adjacency list: each node, then ` |--peer` per link.
pub fn format_list(
    adj: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> String {
    let mut out = String::new();
    for (node, peers) in adj {
        out.push_str(node);
        out.push('\n');
        for p in peers {
            out.push_str(" |--");
            out.push_str(p);
            out.push('\n');
        }
    }
    out
}

fn list(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let m = &c.ctx.mesh;
        let names = |all: Vec<String>| {
            Response::text(ranges::compress(&all)).with_data(serde_json::json!(all))
        };
        if c.args.flag("all") {
            return Ok(names(m.nodes()).into());
        }
        if c.args.flag("peers") {
            return Ok(names(m.others()).into());
        }
        Ok(Response::text(format_list(&m.topology().adjacency())).into())
    })
}

fn degree(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let m = &c.ctx.mesh;
        match c.args.string("degree") {
            None => Ok(Response::text(m.degree().to_string()).into()),
            Some(s) => {
                let n: usize = s.parse().map_err(|_| {
                    CommandError::Invalid(format!(
                        "invalid degree `{s}`: expected a count, 0 or more"
                    ))
                })?;
                m.set_degree(n);
                Ok(Reply::empty())
            }
        }
    })
}

fn dial(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let target = c.args.string("hostname").unwrap_or_default();
        c.ctx
            .mesh
            .dial(target)
            .await
            .map_err(CommandError::failed)?;
        Ok(Reply::empty())
    })
}

fn hangup(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let name = c.args.string("hostname").unwrap_or_default();
        c.ctx.mesh.hangup(name).map_err(CommandError::failed)?;
        Ok(Reply::empty())
    })
}

fn dot(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let file = c.args.string("filename").unwrap_or_default();
        let text = c.ctx.mesh.topology().dot();
        tokio::fs::write(file, text)
            .await
            .map_err(|e| CommandError::failed(format!("cannot write {file}: {e}")))?;
        Ok(Reply::empty())
    })
}

fn timeout(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let m = &c.ctx.mesh;
        match c.args.string("timeout") {
            None => Ok(Response::text(match m.timeout() {
                Some(t) => go_duration(t),
                None => "unlimited".into(),
            })
            .into()),
            Some(s) => {
                let secs: u64 = s.parse().map_err(|_| {
                    CommandError::Invalid(format!(
                        "invalid timeout `{s}`: expected whole seconds (0 waits forever)"
                    ))
                })?;
                m.set_timeout(Some(Duration::from_secs(secs)).filter(|t| !t.is_zero()));
                Ok(Reply::empty())
            }
        }
    })
}

/// The nodes `mesh send` addresses: `all` is every other node; otherwise a
/// name, a range or a comma list (`localhost` is this node), each once.
pub fn targets(spec: &str, me: &str, others: &[String]) -> Result<Vec<String>, CommandError> {
    if spec == "all" {
        return Ok(others.to_vec());
    }
    named_hosts(spec, me)
}

/// The hosts a list or range names, each once, in order; `localhost` is
/// this node (`me`).
pub fn named_hosts(spec: &str, me: &str) -> Result<Vec<String>, CommandError> {
    let mut out: Vec<String> = Vec::new();
    for name in ranges::expand_list(spec)? {
        let name = if name == "localhost" {
            me.to_string()
        } else {
            name
        };
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

fn send(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let m = &c.ctx.mesh;
        let spec = c.args.string("hostname").unwrap_or_default();
        let to = targets(spec, m.hostname(), &m.others())?;
        let words = c.args.sub.clone().unwrap_or_default();
        let line = crate::command::lexer::unlex(&words);
        let mut responses = m.send(&to, &line).await;
        if spec == "all" {
            responses.extend(lost_rows(&m.recently_lost(), &to));
        }
        if responses.is_empty() {
            return Ok(Reply::empty());
        }
        Ok(responses.into())
    })
}

/// An error row for each node that left the mesh lately and is not among
/// the targets any more.
pub fn lost_rows(lost: &[(String, Duration)], targets: &[String]) -> Vec<Response> {
    lost.iter()
        .filter(|(n, _)| !targets.contains(n))
        .map(|(n, ago)| {
            Response::error(
                n,
                format!("left the mesh {} ago", crate::timefmt::go_duration(*ago)),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn lately_lost_nodes_are_error_rows() {
        let lost = vec![
            ("n4".to_string(), Duration::from_secs(3)),
            ("n2".to_string(), Duration::from_secs(1)),
        ];
        let rows = lost_rows(&lost, &["n2".to_string(), "n3".to_string()]);
        assert_eq!(rows, vec![Response::error("n4", "left the mesh 3s ago")]);
    }

    #[test]
    fn list_matches_minimegas_tree() {
        let mut adj: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        adj.insert(
            "headnode".into(),
            ["node1", "node2"].map(String::from).into(),
        );
        adj.insert("node1".into(), ["headnode"].map(String::from).into());
        adj.insert("node2".into(), ["headnode"].map(String::from).into());
        assert_eq!(
            format_list(&adj),
            "headnode\n |--node1\n |--node2\nnode1\n |--headnode\nnode2\n |--headnode\n"
        );
    }

    #[test]
    fn send_targets() {
        let others: Vec<String> = ["n2", "n3"].map(String::from).to_vec();
        assert_eq!(targets("all", "n1", &others).unwrap(), others);
        assert_eq!(
            targets("n[2-3],localhost,n2", "n1", &others).unwrap(),
            ["n2", "n3", "n1"]
        );
        assert!(targets("n[3-1]", "n1", &others).is_err());
    }
}
