//! The `cc` commands. Those that make a command for agents (`cc exec`,
//! `cc send`, ...) are in `post`; here are the ones that show and clear
//! state. In a namespace spanning several hosts, each command whose reach
//! is the namespace runs on every host of it and their answers are merged
//! (`cc responses` gathers every host's responses), as minimega does.

use crate::cc::book::Book;
use crate::cc::files;
use crate::cc::filter;
use crate::cc::server::{CcError, Undo};
use crate::command::Reach;
use crate::command::{table, BoxFuture, Call, CmdResult, CommandError, Reply, Response, Spec};
use crate::node::Node;
use crate::ns::current;
use std::sync::Arc;

const CC_HELP: &str = "Command and control of VMs running the miniccc agent (ours, or minimega's\nstock Go agent: the wire protocol is the same). Each VM gets a virtio-serial\nport named `cc` (`vm config backchannel`, default true) that the agent opens\nas /dev/virtio-ports/cc; agents may also connect over TCP to a port opened\nwith `cc listen` (`miniccc -parent HOST -port 9002`).\n\n`cc` alone prints how many agents are connected in this namespace. Commands\nfor agents run in the order they were made, once on each matching client:\n\n\tcc send foo\n\tcc exec cat /tmp/miniccc/files/foo\n\nEach command's id is in the response's Data. Responses are files under\n<filepath>/<namespace>/miniccc_responses/<id>/<uuid>/ (stdout, stderr,\nexitcode, received files); `cc responses` prints them. Commands and what\neach client was sent survive a restart of the daemon; `-once` commands are\nnever sent twice to one client, others are sent again to an agent that\nstarted afresh (a rebooted guest).\n\n`cc filter` limits the commands made after it to matching clients: uuid,\nhostname, arch, os, ip (an address or CIDR), mac, tag=KEY=VALUE, or any\n`vm info` column or tag as KEY=VALUE (`cc filter name=web1`). `cc prefix`\nlabels the commands made after it, for `cc responses`, `cc delete`.\n\nIn a namespace spanning several hosts, commands reach agents on all of them\nand `cc responses`, `cc clients`, `cc commands` gather every host's.";

pub fn specs() -> Vec<Spec<Node>> {
    let mut v = vec![
        Spec {
            patterns: &["cc"],
            short: "command and control commands",
            long: CC_HELP,
            handler: count,
            mesh_ok: true,
            reach: Reach::namespace(Some(tidy)),
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc listen <port>"],
            short: "accept agents over TCP",
            long: "Listen on a TCP port (on every host of the namespace) for agents started\nwith `miniccc -parent HOST -port PORT`; each must be a running VM of this\nnamespace. The port is opened again when the daemon restarts.",
            handler: listen,
            mesh_ok: true,
            reach: Reach::namespace(Some(tidy)),
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc clients"],
            short: "list connected agents",
            long: "List the agents connected in this namespace: uuid, hostname, arch, os, ip\nand mac, as each last reported itself.",
            handler: clients,
            mesh_ok: true,
            reach: Reach::namespace(Some(tidy)),
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc filter [filter]..."],
            short: "set or show the filter for new commands",
            long: "With words, set the filter of the commands made after it (each\nKEY=VALUE must match): uuid, hostname, arch, os, ip (address or CIDR),\nmac, tag=KEY=VALUE (or KEY:VALUE), or any other KEY=VALUE, which matches a\n`vm info` column or a tag of that name. Alone, show it. `clear cc filter`\nremoves it.",
            handler: set_filter,
            mesh_ok: true,
            reach: Reach::namespace_and_here(Some(tidy)),
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc prefix [prefix]"],
            short: "set or show the prefix for new commands",
            long: "Label the commands made after it with a prefix, which `cc responses`,\n`cc delete command` and `cc delete response` accept in place of an id.\nAlone, show it. `clear cc prefix` removes it.",
            handler: prefix,
            mesh_ok: true,
            reach: Reach::namespace_and_here(Some(tidy)),
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc commands"],
            short: "list the commands for agents",
            long: "List the commands of this namespace: id, prefix, command, responses (how\nmany clients answered), background, once, sent and received files,\nconnectivity test, log level and filter.",
            handler: commands,
            mesh_ok: true,
            reach: Reach::namespace(Some(tidy)),
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc responses <id or prefix or all> [raw,]"],
            short: "print responses",
            long: "Print the responses to a command (by id or prefix) or to all of them:\neach file under the response tree, headed by its path `ID/UUID/file:`\nunless `raw`.",
            handler: responses,
            mesh_ok: true,
            reach: Reach::namespace(Some(tidy)),
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc exitcode <id> <vm name or hostname or uuid>"],
            short: "print a command's exit code on one VM",
            long: "Print the exit code one VM's agent reported for a command it ran in the\nforeground.",
            handler: exitcode,
            mesh_ok: true,
            reach: Reach::namespace(Some(tidy)),
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc process list <vm name or uuid or all>"],
            short: "list background processes",
            long: "List the processes agents run in the background (`cc background`): name,\nuuid, pid and command.",
            handler: process_list,
            mesh_ok: true,
            reach: Reach::namespace(Some(tidy)),
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc delete <command,response> <id or prefix or all>"],
            short: "delete commands or responses",
            long: "Delete a command (no client is sent it any more), or a command's\nresponses, by id, prefix, or all. `cc delete command all` also starts\nids from 1 again.",
            handler: delete,
            mesh_ok: true,
            reach: Reach::namespace(Some(tidy)),
            ns_clear: &[],
        },
        Spec {
            patterns: &["clear cc", "clear cc <commands,filter,prefix,responses>"],
            short: "reset command and control state",
            long: "Clear the namespace's commands (ids start from 1 again), filter, prefix\nor responses; all four when nothing is named.",
            handler: clear,
            mesh_ok: true,
            reach: Reach::namespace_and_here(Some(tidy)),
            ns_clear: &["clear cc commands", "clear cc filter", "clear cc prefix"],
        },
    ];
    v.extend(super::cc_post::specs());
    v.extend(super::cc_tunnel::specs());
    v.extend(super::cc_mount::specs());
    v
}

fn namespace(c: &Call<'_, Node>) -> String {
    current(c.session).to_string()
}

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

/// Go prints a []string as `[a b]`.
pub fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

fn count(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let n = c.ctx.cc.clients(&namespace(&c)).len();
        Ok(table(["clients"], [vec![n.to_string()]]).into())
    })
}

fn listen(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let p = c.args.string("port").unwrap_or_default();
        let port: u16 = p
            .parse()
            .map_err(|_| failed(format!("invalid port `{p}`")))?;
        let ns = namespace(&c);
        c.ctx.cc.listen(&ns, port).map_err(failed)?;
        if let Err(e) = c.ctx.cc.flush(&ns).await {
            // Not recorded, so not listening: a restart would not.
            c.ctx.cc.unlisten(&ns, port);
            return Err(failed(e));
        }
        Ok(Reply::empty())
    })
}

fn clients(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let rows = c
            .ctx
            .cc
            .clients(&namespace(&c))
            .into_iter()
            .map(|(uuid, cl)| {
                vec![
                    uuid,
                    cl.hostname,
                    cl.arch,
                    cl.os,
                    go_list(&cl.ips),
                    go_list(&cl.macs),
                ]
            });
        Ok(table(["uuid", "hostname", "arch", "os", "ip", "mac"], rows).into())
    })
}

fn set_filter(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c);
        let words = c.args.list("filter");
        if !words.is_empty() {
            let f = filter::parse(words).map_err(failed)?;
            c.ctx
                .cc
                .change(&ns, |b| {
                    let before = b.filter.replace(f);
                    Ok(((), Box::new(move |b: &mut Book| b.filter = before) as Undo))
                })
                .await
                .map_err(failed)?;
            return Ok(Reply::empty());
        }
        let Some(f) = c.ctx.cc.book(&ns).filter else {
            return Ok(Reply::empty());
        };
        let row = vec![
            f.uuid.clone(),
            f.hostname.clone(),
            f.arch.clone(),
            f.os.clone(),
            f.ip.clone(),
            f.mac.clone(),
            serde_json::to_string(&f.tags).unwrap_or_else(|_| "{}".into()),
        ];
        Ok(table(
            ["uuid", "hostname", "arch", "os", "ip", "mac", "tags"],
            [row],
        )
        .into())
    })
}

fn prefix(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c);
        match c.args.string("prefix") {
            Some(p) => {
                let p = p.to_string();
                c.ctx
                    .cc
                    .change(&ns, |b| {
                        let before = std::mem::replace(&mut b.prefix, p);
                        Ok(((), Box::new(move |b: &mut Book| b.prefix = before) as Undo))
                    })
                    .await
                    .map_err(failed)?;
                Ok(Reply::empty())
            }
            None => Ok(Response::text(c.ctx.cc.book(&ns).prefix).into()),
        }
    })
}

fn commands(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let book = c.ctx.cc.book(&namespace(&c));
        let rows = book.commands.values().map(|v| {
            vec![
                v.id.to_string(),
                v.prefix.clone(),
                go_list(&v.command),
                v.checked_in.len().to_string(),
                v.background.to_string(),
                v.once.to_string(),
                go_list(&v.files_send),
                go_list(&v.files_recv),
                v.conn_test
                    .as_ref()
                    .map(|t| {
                        let wait = std::time::Duration::from_nanos(t.wait.max(0) as u64);
                        format!(
                            "{} ({} wait)",
                            t.endpoint,
                            crate::timefmt::go_duration(wait)
                        )
                    })
                    .unwrap_or_default(),
                v.level.map(level_name).unwrap_or_default().to_string(),
                filter::describe(v.filter.as_ref()),
            ]
        });
        Ok(table(
            [
                "id",
                "prefix",
                "command",
                "responses",
                "background",
                "once",
                "sent",
                "received",
                "connectivity",
                "level",
                "filter",
            ],
            rows,
        )
        .listed()
        .into())
    })
}

/// minimega's log levels, as `cc log level` sets them in the agent.
pub const LEVELS: [&str; 5] = ["debug", "info", "warn", "error", "fatal"];

fn level_name(l: i64) -> &'static str {
    usize::try_from(l - 1)
        .ok()
        .and_then(|i| LEVELS.get(i))
        .copied()
        .unwrap_or("")
}

fn responses(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c);
        let raw = c.args.flag("raw");
        let which = c.args.string("id").unwrap_or_default().to_string();
        let root = c.ctx.cc.responses_root(&ns);
        let ids: Option<Vec<i64>> = if which == "all" {
            None
        } else if let Ok(id) = which.parse::<i64>() {
            Some(vec![id])
        } else {
            let ids = c.ctx.cc.book(&ns).with_prefix(&which);
            if ids.is_empty() {
                return Err(failed(format!("no such prefix: `{which}`")));
            }
            Some(ids)
        };
        let by_prefix = ids.as_ref().is_some_and(|_| which.parse::<i64>().is_err());
        let text = tokio::task::spawn_blocking(move || -> Result<String, String> {
            let Some(ids) = ids else {
                return match files::listing(&root, &root, raw) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
                    r => r.map_err(|e| e.to_string()),
                };
            };
            let mut out = String::new();
            for id in ids {
                match files::listing(&root, &root.join(id.to_string()), raw) {
                    Ok(s) => out.push_str(&s),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        if !by_prefix {
                            return Err(format!("no responses for {id}"));
                        }
                    }
                    Err(e) => return Err(e.to_string()),
                }
                if by_prefix {
                    out.push('\n');
                }
            }
            Ok(out)
        })
        .await
        .map_err(failed)?
        .map_err(failed)?;
        Ok(Response::text(text).into())
    })
}

/// The UUID of a VM of the namespace on this node, by name, id, UUID or
/// its agent's hostname.
/// A VM of the namespace by name, id or UUID, as minimega's FindVM.
pub(super) fn find_vm(c: &Call<'_, Node>, ns: &str, who: &str) -> Option<Arc<crate::vm::Vm>> {
    if let Ok(vm) = c.ctx.vms.one(ns, who) {
        return Some(vm);
    }
    let who_l = who.to_ascii_lowercase();
    c.ctx
        .vms
        .in_namespace(ns)
        .into_iter()
        .find(|v| v.uuid == who_l)
}

/// The namespace's VMs' names by UUID.
pub(super) fn vm_names(c: &Call<'_, Node>, ns: &str) -> std::collections::HashMap<String, String> {
    c.ctx
        .vms
        .in_namespace(ns)
        .into_iter()
        .map(|v| (v.uuid.clone(), v.name.clone()))
        .collect()
}

fn find_uuid(
    c: &Call<'_, Node>,
    ns: &str,
    who: &str,
) -> Result<(String, Option<Arc<crate::vm::Vm>>), CommandError> {
    if let Some(vm) = find_vm(c, ns, who) {
        return Ok((vm.uuid.clone(), Some(vm)));
    }
    if let Some((uuid, _)) = c
        .ctx
        .cc
        .clients(ns)
        .into_iter()
        .find(|(_, cl)| cl.hostname == who)
    {
        return Ok((uuid, None));
    }
    Err(failed(format!("vm not found: {who}")))
}

fn exitcode(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c);
        let id_s = c.args.string("id").unwrap_or_default();
        let id: i64 = id_s
            .parse()
            .map_err(|_| failed("invalid command ID provided"))?;
        let who = c.args.string("vm").unwrap_or_default().to_string();
        let (uuid, _) = find_uuid(&c, &ns, &who)?;
        let root = c.ctx.cc.responses_root(&ns);
        match files::read_exit_code(&root, id, &uuid) {
            Some(code) => Ok(Response::text(code.to_string()).into()),
            None => Err(failed(format!(
                "unable to get exit code: no exit code for command {id} from {who}"
            ))),
        }
    })
}

fn process_list(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c);
        let who = c.args.string("vm").unwrap_or_default().to_string();
        let clients = c.ctx.cc.clients(&ns);
        let uuids: Vec<String> = if who == "all" {
            clients.keys().cloned().collect()
        } else {
            vec![find_uuid(&c, &ns, &who)?.0]
        };
        let names = vm_names(&c, &ns);
        let mut rows = Vec::new();
        for u in uuids {
            let Some(cl) = clients.get(&u) else {
                if who != "all" {
                    return Err(failed(format!("no client with uuid: {u}")));
                }
                continue;
            };
            for p in cl.processes.values() {
                rows.push(vec![
                    names.get(&u).cloned().unwrap_or_default(),
                    u.clone(),
                    p.pid.to_string(),
                    p.command.join(" "),
                ]);
            }
        }
        Ok(table(["name", "uuid", "pid", "command"], rows).into())
    })
}

/// Removes a response directory, if there is one.
async fn remove_dir(path: std::path::PathBuf) -> Result<(), CommandError> {
    match tokio::fs::remove_dir_all(&path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(failed(format!("cannot remove {}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}

fn delete(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c);
        let cc = &c.ctx.cc;
        let which = c.args.string("id").unwrap_or_default().to_string();
        let root = cc.responses_root(&ns);
        if c.args.flag("command") {
            cc.change(&ns, |b| {
                let before = b.clone();
                if which == "all" {
                    b.clear();
                } else if let Ok(id) = which.parse::<i64>() {
                    b.delete(id).map_err(CcError::Invalid)?;
                } else {
                    b.delete_prefix(&which).map_err(CcError::Invalid)?;
                }
                Ok(((), Box::new(move |b: &mut Book| *b = before) as Undo))
            })
            .await
            .map_err(failed)?;
            return Ok(Reply::empty());
        }
        if which == "all" {
            remove_dir(root).await?;
        } else if let Ok(id) = which.parse::<i64>() {
            remove_dir(root.join(id.to_string())).await?;
        } else {
            let ids = cc.book(&ns).with_prefix(&which);
            if ids.is_empty() {
                return Err(failed(format!("no such prefix: `{which}`")));
            }
            for id in ids {
                remove_dir(root.join(id.to_string())).await?;
            }
        }
        Ok(Reply::empty())
    })
}

fn clear(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c);
        let all = c.args.bools.is_empty();
        let what = |w: &str| all || c.args.flag(w);
        let cc = &c.ctx.cc;
        cc.change(&ns, |b| {
            let before = b.clone();
            if what("filter") {
                b.filter = None;
            }
            if what("prefix") {
                b.prefix.clear();
            }
            if what("commands") {
                b.clear();
            }
            Ok(((), Box::new(move |b: &mut Book| *b = before) as Undo))
        })
        .await
        .map_err(failed)?;
        if what("responses") {
            remove_dir(cc.responses_root(&ns)).await?;
        }
        if all {
            // minimega's `clear cc` unmounts too.
            super::cc_mount::clear_mounts(cc, &ns, "").await;
        }
        Ok(Reply::empty())
    })
}

/// Tidies a cc answer gathered from several hosts: a host that does not
/// hold the VM or the responses asked about is noise when another host
/// answered.
pub fn tidy(responses: &mut Vec<Response>) {
    let absent = |r: &Response| {
        r.error.starts_with("vm not found") || r.error.starts_with("no responses for")
    };
    if responses.iter().any(|r| !absent(r)) {
        responses.retain(|r| !absent(r));
    } else {
        responses.truncate(1);
    }
}
