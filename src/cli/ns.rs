//! `namespace`, `clear namespace`, `clear all` and `ns ...`.

use super::scope::{hosts_of, initial_hosts};
use crate::command::Reach;
use crate::command::{
    lexer, ranges, table, BoxFuture, Call, CmdResult, CommandError, Origin, Reply, Response,
    Session, Spec,
};
use crate::node::Node;
use crate::ns::{current, session_value, valid_name, DEFAULT};
use std::collections::BTreeSet;

pub fn specs() -> Vec<Spec<Node>> {
    vec![
        Spec {
            patterns: &["namespace [name]", "namespace <name> (command)"],
            short: "display or change namespace",
            long: "With no arguments, list the namespaces: name, VLAN range, and whether it\nis the active one. With a name, make it the daemon's active namespace\n(creating it if needed): every client's commands run there from their\nnext command on, as in minimega, and a client that connects later starts\nthere. With a name and a command, run that one command there, for this\nclient only (as minimega's clients send theirs: `namespace \"exp\" vm\ninfo`). Dot settings and aliases stay per client.\n\nA new namespace holds every other node of the mesh (or this node when\nit is alone); `ns hosts`, `ns add-hosts` and `ns del-hosts` change that.\nIn a namespace whose hosts go beyond this node, `vm info`, `vm start`,\n`vm stop`, `vm kill`, `vm flush`, `vm tag`, `clear vm tag` and `host` run\non every host.",
            handler: namespace,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["clear namespace [name]"],
            short: "unset or delete namespace",
            long: "Without a name, make the default namespace, minimega, the active one\nagain. With a name, destroy that namespace: kill and forget its VMs, its\nconfiguration, queue and saved configurations, on this node and on every\nother node of the mesh; a name no node knows is no error, as in\nminimega. `clear namespace all` destroys every namespace.",
            handler: clear_namespace,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["clear all"],
            short: "reset all resettable state",
            long: "Reset this node as far as it goes without a restart: destroy every\nnamespace (kill and forget every VM, each namespace's configuration,\nqueue and saved configurations; the default namespace becomes active),\nthen run every other `clear` command that takes no argument (`clear vm\nconfig`, `clear deploy`, ...), and `clear history` last. Only this node is\ncleared. Clients' dot settings and aliases stay.",
            handler: clear_all,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &[
                "ns <hosts,>",
                "ns <add-hosts,> <hostname or range or all>",
                "ns <del-hosts,> <hostname or range or all>",
                "ns <load,> [cpucommit,memcommit,netcommit]",
                "ns <queue,>",
                "ns <flush,>",
                "ns <queueing,> [true,false]",
                "ns <schedule,>",
                "ns <schedule,> <dry-run,dump,status>",
                "ns <schedule,> <mv,> <vm target> <dst>",
                "ns <bridge,> <bridge> [vxlan,gre]",
                "ns <del-bridge,> <bridge>",
                "ns <snapshot,> [name]",
                "ns <save,> [name]",
                "ns <run,> (command)",
            ],
            short: "tinker with active namespace",
            long: "Display or change the current namespace:\n\n\thosts       the mesh nodes it uses\n\tadd-hosts   add nodes: a name, a range (`kn[1-4]`), a comma list,\n\t            `localhost` for this node, or `all` for every other node\n\t            of the mesh; every name must be in the mesh\n\tdel-hosts   remove nodes (`all`: every host)\n\tload        how the scheduler measures a host's load: cpucommit\n\t            (committed vcpus per CPU, the default), memcommit\n\t            (committed memory per MiB), netcommit (NICs)\n\tqueueing    with true, `vm launch kvm ...` only queues the VMs (with\n\t            the configuration of that moment) until a bare `vm launch`\n\t            or `ns schedule` launches them all, placed together\n\tqueue       the queued launches and their configurations\n\tflush       forget the queue\n\tschedule    launch the queue (as a bare `vm launch`)\n\t  dry-run   place the queue and print where each VM would go (vm,\n\t            dst); the next schedule uses that placement\n\t  dump      print the dry run's placement again\n\t  mv VMS DST  move VMs of the dry run's placement to another host\n\t  status    each schedule run: start, end, state, launched,\n\t            failures, total, hosts\n\tbridge BR [vxlan|gre]  join the hosts' bridges BR by tunnels (gre by\n\t            default, as minimega), every VLAN crossing them\n\tdel-bridge BR  take those tunnels down again (`all`: every bridge\n\t            of the namespace)\n\tsave NAME   save every VM of the namespace on this node (`vm save`)\n\t            to <filepath>/saved/NAME/VM.state and VM.hdd..., with a\n\t            launch.mm there that `read` launches them from again (a\n\t            name already used is an error); the VMs stay paused.\n\t            `ns save` alone: completed and total saves. `ns snapshot`\n\t            is the deprecated spelling\n\trun CMD     run a command on every host of the namespace, in it\n\t            (not read, mesh send, ns run or vm launch)",
            handler: ns,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &["ns del-bridge all"],
        },
    ]
}

fn namespace(mut c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let node = c.ctx;
        let Some(name) = c.args.string("name").map(str::to_string) else {
            let active = current(c.session).to_string();
            let mut names: BTreeSet<String> = node.namespaces.names().into_iter().collect();
            names.insert(DEFAULT.to_string());
            names.insert(active.clone());
            let rows = names.into_iter().map(|n| {
                let mut range = node.net.range_cell(&n);
                if range.is_empty() && n == DEFAULT {
                    // minimega gives its own namespace -vlanrange.
                    let (min, max) = node.config.vlan_range;
                    range = format!("{min}-{max}");
                }
                vec![n.clone(), range, (n == active).to_string()]
            });
            return Ok(table(["namespace", "vlans", "active"], rows).into());
        };
        valid_name(&name).map_err(CommandError::Invalid)?;
        node.namespaces.ensure(&name, || initial_hosts(node, &name));
        if c.args.sub.is_none() {
            if current(c.session) == name {
                return Err(CommandError::failed(format!(
                    "already in namespace: {name}"
                )));
            }
            activate(node, c.session, &name);
            return Ok(Reply::empty());
        }
        let saved = std::mem::replace(&mut c.session.namespace, session_value(&name));
        let groups = c.run_sub().await;
        c.session.namespace = saved;
        Ok(Reply::Groups(groups))
    })
}

/// Makes `name` the daemon's active namespace, and this session's.
fn activate(node: &Node, session: &mut Session, name: &str) {
    let v = session_value(name);
    // A mesh request's namespace is its own; the node's stays.
    if session.origin == Origin::Local {
        node.namespaces.set_active(v.clone());
    }
    session.namespace = v;
}

fn clear_namespace(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let node = c.ctx;
        let Some(name) = c.args.string("name").map(str::to_string) else {
            if current(c.session) == DEFAULT {
                return Err(CommandError::failed(format!(
                    "already in namespace: {DEFAULT}"
                )));
            }
            activate(node, c.session, DEFAULT);
            return Ok(Reply::empty());
        };
        let mut errors = destroy(&c, &name).await;
        let unknown = format!("unknown namespace: {name}");
        let known = !errors.contains(&unknown);
        errors.retain(|e| *e != unknown);
        if c.session.origin != Origin::Local {
            return match (known, errors.is_empty()) {
                (false, _) => Err(CommandError::failed(unknown)),
                (true, true) => Ok(Reply::empty()),
                (true, false) => Err(CommandError::failed(errors.join("; "))),
            };
        }
        // The other nodes destroy it too; those that never knew it are fine.
        let line = format!("clear namespace {}", lexer::quote_if_needed(&name, false));
        let mut responses: Vec<Response> = node
            .mesh
            .send(&node.mesh.others(), &line)
            .await
            .into_iter()
            .filter(|r| r.error != unknown)
            .collect();
        // A namespace no node knew is no error, as in minimega (which makes
        // it, to destroy it).
        responses.retain(Response::is_error);
        let me = node.hostname();
        responses.extend(errors.iter().map(|e| Response::error(me, e.as_str())));
        if responses.is_empty() {
            return Ok(Reply::empty());
        }
        Ok(responses.into())
    })
}

/// Destroys a namespace (or `all`) on this node: its VMs are killed and
/// forgotten, the `ns_clear` lines of every command (`Spec::ns_clear`) run in it, and its
/// configuration, queue and saved configurations go; an active namespace
/// destroyed leaves the default one active. Returns the errors, among
/// them `unknown namespace: NAME` when nothing was known by that name.
async fn destroy(c: &Call<'_, Node>, name: &str) -> Vec<String> {
    let node = c.ctx;
    let mut names: BTreeSet<String> = BTreeSet::new();
    let known: BTreeSet<String> = node
        .namespaces
        .names()
        .into_iter()
        .chain(node.vms.all().iter().map(|v| v.namespace.clone()))
        .collect();
    if name == "all" {
        names = known;
        names.insert(DEFAULT.to_string());
    } else if known.contains(name) || name == DEFAULT {
        names.insert(name.to_string());
    } else {
        return vec![format!("unknown namespace: {name}")];
    }
    let mut errors = Vec::new();
    for ns in &names {
        let vms = node.vms.in_namespace(ns);
        if let Err(e) = node.vms.kill(vms).await {
            errors.push(e.to_string());
        }
        if let Err(e) = node.vms.flush(ns).await {
            errors.push(e.to_string());
        }
        let mut session = Session {
            origin: c.session.origin.clone(),
            namespace: session_value(ns),
            follow_active: false,
            record: false,
            preprocess: false,
            ..Session::default()
        };
        for cmd in c.engine.specs().iter().flat_map(|s| s.ns_clear) {
            if c.engine.check_line(&session, cmd).is_err() {
                continue;
            }
            let words = lexer::lex(cmd).unwrap_or_default();
            for g in c.engine.run_words(node, &mut session, words).await {
                errors.extend(g.responses.into_iter().map(|r| r.error));
            }
        }
        node.cc.drop_namespace(ns);
        if let Err(e) = node.cc.flush(ns).await {
            errors.push(e.to_string());
        }
        errors.retain(|e| !e.is_empty());
        node.vms.set_config(ns, Default::default());
        node.namespaces.remove(ns);
        if node.namespaces.active().as_deref().unwrap_or(DEFAULT) == ns {
            node.namespaces.set_active(None);
        }
    }
    errors
}

fn clear_all(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        c.session.record_this = false;
        let mut errors = destroy(&c, "all").await;
        c.ctx.vms.reset_ids();
        c.session.namespace = None;
        let skip = ["clear all", "clear namespace", "clear history"];
        let mut lines: Vec<String> = c
            .engine
            .argless("clear")
            .into_iter()
            .filter(|n| !skip.contains(&n.as_str()))
            .collect();
        lines.push("clear history".into());
        for line in lines {
            let words = lexer::lex(&line).unwrap_or_default();
            for g in c.engine.run_words(c.ctx, c.session, words).await {
                errors.extend(
                    g.responses
                        .into_iter()
                        .filter(Response::is_error)
                        .map(|r| format!("{line}: {}", r.error)),
                );
            }
        }
        c.session.record_this = false;
        if errors.is_empty() {
            return Ok(Reply::empty());
        }
        let me = c.ctx.hostname();
        Ok(errors
            .iter()
            .map(|e| Response::error(me, e.as_str()))
            .collect::<Vec<_>>()
            .into())
    })
}

fn ns(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let sub = [
            "hosts",
            "add-hosts",
            "del-hosts",
            "load",
            "queueing",
            "queue",
            "flush",
        ]
        .into_iter()
        .chain([
            "schedule",
            "bridge",
            "del-bridge",
            "run",
            "save",
            "snapshot",
        ])
        .find(|s| c.args.flag(s))
        .unwrap_or_default();
        match sub {
            "hosts" => ns_hosts(&c),
            "add-hosts" => ns_add_hosts(&c),
            "del-hosts" => ns_del_hosts(&c),
            "load" => ns_load(&c),
            "queueing" => ns_queueing(&c),
            "queue" => ns_queue(&c),
            "flush" => ns_flush(&c),
            "schedule" => ns_schedule(&c).await,
            "bridge" | "del-bridge" => super::net::ns_bridge(&c).await,
            "run" => ns_run(c).await,
            "save" | "snapshot" => super::ns_save::ns_save(c).await,
            _ => Err(CommandError::Invalid("usage: see `help ns`".into())),
        }
    })
}

/// Runs `f` on the session's namespace.
fn with<R>(c: &Call<'_, Node>, f: impl FnOnce(&mut crate::ns::Namespace) -> R) -> R {
    let node = c.ctx;
    let name = current(c.session).to_string();
    node.namespaces
        .with(&name, || initial_hosts(node, &name), f)
}

fn ns_hosts(c: &Call<'_, Node>) -> CmdResult {
    let hosts: Vec<String> = hosts_of(c.ctx, c.session).into_iter().collect();
    Ok(Response::text(ranges::compress(&hosts))
        .with_data(serde_json::json!(hosts))
        .into())
}

/// Expands a host argument; `localhost` is this node, `all` is `all`.
fn host_list(node: &Node, spec: &str, all: Vec<String>) -> Result<Vec<String>, CommandError> {
    super::mesh::targets(spec, node.hostname(), &all)
        .map_err(|e| CommandError::Invalid(format!("invalid hosts: {e}")))
}

fn ns_add_hosts(c: &Call<'_, Node>) -> CmdResult {
    let node = c.ctx;
    let spec = c.args.string("hostname").unwrap_or_default();
    let hosts = host_list(node, spec, node.mesh.others())?;
    let mesh: BTreeSet<String> = node.mesh.nodes().into_iter().collect();
    if let Some(h) = hosts.iter().find(|h| !mesh.contains(*h)) {
        return Err(CommandError::failed(format!("unknown host: `{h}`")));
    }
    with(c, |n| n.hosts.extend(hosts));
    Ok(Reply::empty())
}

fn ns_del_hosts(c: &Call<'_, Node>) -> CmdResult {
    let node = c.ctx;
    let spec = c.args.string("hostname").unwrap_or_default();
    let present: Vec<String> = hosts_of(node, c.session).into_iter().collect();
    let hosts = host_list(node, spec, present)?;
    with(c, |n| {
        for h in &hosts {
            n.hosts.remove(h);
        }
    });
    Ok(Reply::empty())
}

fn ns_load(c: &Call<'_, Node>) -> CmdResult {
    use crate::ns::schedule::LoadBy;
    let pick = [
        ("cpucommit", LoadBy::CpuCommit),
        ("memcommit", LoadBy::MemCommit),
        ("netcommit", LoadBy::NetCommit),
    ];
    if let Some((_, by)) = pick.iter().find(|(n, _)| c.args.flag(n)) {
        with(c, |n| n.load_by = *by);
        return Ok(Reply::empty());
    }
    let by = with(c, |n| n.load_by);
    let name = pick
        .iter()
        .find(|(_, b)| *b == by)
        .map(|(n, _)| *n)
        .unwrap_or("cpucommit");
    Ok(Response::text(name).into())
}

fn ns_queueing(c: &Call<'_, Node>) -> CmdResult {
    if c.args.flag("true") || c.args.flag("false") {
        let on = c.args.flag("true");
        with(c, |n| n.queueing = on);
        return Ok(Reply::empty());
    }
    Ok(Response::text(with(c, |n| n.queueing).to_string()).into())
}

fn ns_queue(c: &Call<'_, Node>) -> CmdResult {
    let text = with(c, |n| crate::ns::queue::describe(&n.queue));
    Ok(Response::text(text).into())
}

fn ns_flush(c: &Call<'_, Node>) -> CmdResult {
    with(c, |n| {
        n.queue.clear();
        n.assignment = None;
    });
    Ok(Reply::empty())
}

async fn ns_schedule(c: &Call<'_, Node>) -> CmdResult {
    use crate::ns::queue::assignment_rows;
    let rows_of = |a: &crate::ns::queue::Assignment| table(["vm", "dst"], assignment_rows(a));
    if c.args.flag("dry-run") {
        let a = super::ns_launch::dry_run(c.ctx, c.session).await?;
        return Ok(rows_of(&a).into());
    }
    if c.args.flag("dump") {
        return match with(c, |n| n.assignment.clone()) {
            Some(a) => Ok(rows_of(&a).into()),
            None => Err(CommandError::failed("must run dry-run first")),
        };
    }
    if c.args.flag("status") {
        let rows: Vec<Vec<String>> = with(c, |n| n.stats.iter().map(|s| s.row()).collect());
        let header = [
            "start", "end", "state", "launched", "failures", "total", "hosts",
        ];
        return Ok(table(header, rows).into());
    }
    if c.args.flag("mv") {
        let vms = ranges::expand_list(c.args.string("vm").unwrap_or_default())
            .map_err(|e| CommandError::Invalid(e.to_string()))?;
        let dst = c.args.string("dst").unwrap_or_default();
        let dst = if dst == "localhost" {
            c.ctx.hostname()
        } else {
            dst
        };
        let hosts = hosts_of(c.ctx, c.session);
        return with(c, |n| match &mut n.assignment {
            None => Err(CommandError::failed("must run dry-run first")),
            Some(a) => crate::ns::queue::reassign(a, &vms, dst, &hosts)
                .map(|_| Reply::empty())
                .map_err(CommandError::failed),
        });
    }
    let errors = super::ns_launch::run(c.ctx, c.session).await?;
    Ok(if errors.is_empty() {
        Reply::empty()
    } else {
        errors.into()
    })
}

/// `ns run CMD`: the command on every host of the namespace, in it, its
/// answers merged.
async fn ns_run(mut c: Call<'_, Node>) -> CmdResult {
    if c.session.origin != Origin::Local {
        return Err(CommandError::failed(format!(
            "cannot run `{}` via meshage",
            c.line
        )));
    }
    let words = c.args.sub.clone().unwrap_or_default();
    let line = lexer::unlex(&words);
    for forbidden in ["read", "mesh send", "ns run", "vm launch"] {
        if c.engine.names_command(&words, forbidden) {
            return Err(CommandError::failed(format!(
                "cannot run `{line}` using `ns run`"
            )));
        }
    }
    let node = c.ctx;
    let me = node.hostname().to_string();
    let hosts = hosts_of(node, c.session);
    let others: Vec<String> = hosts.iter().filter(|h| **h != me).cloned().collect();
    let remote_line = format!(
        "namespace {} {line}",
        lexer::quote_if_needed(current(c.session), false)
    );
    let mesh = node.mesh.clone();
    let remote = async move {
        if others.is_empty() {
            Vec::new()
        } else {
            mesh.send(&others, &remote_line).await
        }
    };
    let (mut groups, remote) = if hosts.contains(&me) {
        let here = c.run_sub();
        futures_util::future::join(here, remote).await
    } else {
        (Vec::new(), remote.await)
    };
    let flags = c.session.flags;
    let mut responses: Vec<Response> = groups.drain(..).flat_map(|g| g.responses).collect();
    responses.extend(remote);
    Ok(Reply::Groups(vec![crate::command::Group {
        responses,
        flags,
    }]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn clear_all_runs_every_argless_clear_command() {
        let e = crate::cli::engine();
        let all = e.argless("clear");
        for want in [
            "clear history",
            "clear vm config",
            "clear vm tag",
            "clear deploy",
        ] {
            assert!(all.iter().any(|n| n == want), "{want}: {all:?}");
        }
        assert!(all.iter().all(|n| n.starts_with("clear ")), "{all:?}");
    }
}
