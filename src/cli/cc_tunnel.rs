//! `cc tunnel` and `cc rtunnel`: TCP through a VM's agent, over its cc
//! connection (see `cc::tunnel`). Each runs on every host of the
//! namespace; the host that runs the VM answers.

use crate::cc::filter::{self, Subject};
use crate::cc::minitunnel::{parse_port, Forward};
use crate::command::Reach;
use crate::command::{table, BoxFuture, Call, CmdResult, CommandError, Reply, Spec};
use crate::node::Node;
use crate::ns::current;
use std::collections::BTreeMap;
use std::sync::Arc;

const TUNNEL_HELP: &str = "TCP tunnels through a VM's agent, over its cc connection (minimega's\nminitunnel; the stock Go agent and ours both serve them).\n\n\tcc tunnel VM SRC HOST DST\n\nlistens on TCP port SRC on every address of the host that runs the VM;\neach connection to it is opened by the VM's agent to HOST:DST, as the\nguest sees it (HOST may be the guest itself, localhost, or any address\nthe guest reaches), like `ssh -L`. `cc tunnel list VM` (or `all`) shows\nthe forwards of connected agents: vm, id, src port, dst, dst port; `cc\ntunnel close VM ID` stops listening and closes the forward's\nconnections. A forward lasts as long as the agent's connection: when the\nagent goes (the VM stops, the guest reboots, the agent restarts), its\nports close. Ports already in use, VMs without a connected agent, and\nagents that have not answered the tunnel's handshake are errors, and\nnothing is left listening. Closing either end of a tunnelled connection\ncloses both (there is no half-close).";

const RTUNNEL_HELP: &str = "The other way round from `cc tunnel`, like `ssh -R`: every connected\nagent matching the namespace's `cc filter` listens on TCP port SRC in its\nguest, and each connection to it is opened from the host that runs the VM\nto HOST:DST. The first agent that cannot listen (the port is in use in\nits guest) is the command's error. A reverse tunnel lasts as long as the\nagent's connection; it is not listed by `cc tunnel list`. (minimega 3.1.0\nhas the command but always fails it with `vm not found: `; this is what\nits code meant to do.)";

pub fn specs() -> Vec<Spec<Node>> {
    vec![
        Spec {
            patterns: &["cc tunnel <vm name or uuid> <src port> <host> <dst port>"],
            short: "forward a host port through a VM's agent",
            long: TUNNEL_HELP,
            handler: forward,
            mesh_ok: true,
            reach: Reach::namespace(Some(super::cc::tidy)),
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc tunnel list <vm name or uuid or all>"],
            short: "list the forwards of cc tunnel",
            long: TUNNEL_HELP,
            handler: list,
            mesh_ok: true,
            reach: Reach::namespace(Some(super::cc::tidy)),
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc tunnel close <vm name or uuid> <id>"],
            short: "close a forward of cc tunnel",
            long: TUNNEL_HELP,
            handler: close,
            mesh_ok: true,
            reach: Reach::namespace(Some(super::cc::tidy)),
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc rtunnel <src port> <host> <dst port>"],
            short: "forward a guest port to a host through the agents",
            long: RTUNNEL_HELP,
            handler: reverse,
            mesh_ok: true,
            reach: Reach::namespace(None),
            ns_clear: &[],
        },
    ]
}

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

/// A VM of the namespace by name, id or UUID, as minimega's FindVM.
fn find_vm(c: &Call<'_, Node>, ns: &str, who: &str) -> Result<Arc<crate::vm::Vm>, CommandError> {
    super::cc::find_vm(c, ns, who).ok_or_else(|| failed(format!("vm not found: {who}")))
}

fn ports(c: &Call<'_, Node>) -> Result<Forward, CommandError> {
    let word = |k: &str| c.args.string(k).unwrap_or_default().to_string();
    Ok(Forward {
        src: parse_port("src", &word("src")).map_err(failed)?,
        host: word("host"),
        dst: parse_port("dst", &word("dst")).map_err(failed)?,
    })
}

fn forward(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let fwd = ports(&c)?;
        let ns = current(c.session).to_string();
        let vm = find_vm(&c, &ns, c.args.string("vm").unwrap_or_default())?;
        let tunnel = c.ctx.cc.tunnel(&vm.uuid).map_err(failed)?;
        tunnel.forward(fwd).await.map_err(failed)?;
        Ok(Reply::empty())
    })
}

fn list(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = current(c.session).to_string();
        let who = c.args.string("vm").unwrap_or_default().to_string();
        let names = super::cc::vm_names(&c, &ns);
        // (name, forwards), sorted by name as minimega sorts them.
        let mut each = Vec::new();
        if who == "all" {
            for (uuid, t) in c.ctx.cc.tunnels(&ns) {
                // An agent whose tunnel is not up has no forwards to show.
                if let Ok(f) = t.list().await {
                    each.push((names.get(&uuid).cloned().unwrap_or(uuid), f));
                }
            }
        } else {
            let vm = find_vm(&c, &ns, &who)?;
            let t = c.ctx.cc.tunnel(&vm.uuid).map_err(failed)?;
            each.push((who, t.list().await.map_err(failed)?));
        }
        each.sort_by(|a, b| a.0.cmp(&b.0));
        let rows = each.into_iter().flat_map(|(name, fwds)| {
            fwds.into_iter().map(move |(id, f)| {
                vec![
                    name.clone(),
                    id.to_string(),
                    f.src.to_string(),
                    f.host,
                    f.dst.to_string(),
                ]
            })
        });
        Ok(table(["vm", "id", "src port", "dst", "dst port"], rows).into())
    })
}

fn close(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = current(c.session).to_string();
        let vm = find_vm(&c, &ns, c.args.string("vm").unwrap_or_default())?;
        let id: i64 = c
            .args
            .string("id")
            .unwrap_or_default()
            .parse()
            .map_err(|_| failed("invalid format for tunnel ID"))?;
        let t = c.ctx.cc.tunnel(&vm.uuid).map_err(failed)?;
        t.close(id).await.map_err(failed)?;
        Ok(Reply::empty())
    })
}

fn reverse(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let fwd = ports(&c)?;
        let ns = current(c.session).to_string();
        let want = c.ctx.cc.with_book(&ns, |b| (b.filter.clone(), false));
        let clients = c.ctx.cc.clients(&ns);
        let vms: std::collections::HashMap<String, Arc<crate::vm::Vm>> = c
            .ctx
            .vms
            .in_namespace(&ns)
            .into_iter()
            .map(|v| (v.uuid.clone(), v))
            .collect();
        for (uuid, t) in c.ctx.cc.tunnels(&ns) {
            let Some(cl) = clients.get(&uuid) else {
                continue;
            };
            let mut tags = BTreeMap::new();
            if let Some(v) = vms.get(&uuid) {
                // `cc filter name=web1`, the column filters use most.
                tags.insert("name".to_string(), v.name.clone());
                tags.extend(v.lock().tags.clone());
            }
            let subject = Subject {
                uuid: &uuid,
                hostname: &cl.hostname,
                arch: &cl.arch,
                os: &cl.os,
                ips: &cl.ips,
                macs: &cl.macs,
                tags: &tags,
            };
            if filter::matches(want.as_ref(), &subject) {
                t.reverse(fwd.clone()).await.map_err(failed)?;
            }
        }
        Ok(Reply::empty())
    })
}
