//! minimega's `router` and `clear router`: the router room's forms over
//! the node's routers (one per router VM, kept per namespace on the node
//! that runs the VM), and the commit that writes the minirouter file into
//! the files directory and queues the cc commands that make the guest's
//! minirouter apply it. Both reach every host of the namespace; the host
//! with the VM answers and the others' "vm not found" are dropped, as
//! minimega's wrapped VM commands do.

use crate::cc::book::Book;
use crate::cc::ron::{Command, Filter};
use crate::cc::server::Undo;
use crate::cc::CcError;
use crate::command::Response;
use crate::command::{BoxFuture, Call, CmdResult, CommandError, Reach, Reply, Spec};
use crate::node::Node;
use crate::router::patterns::{
    CLEAR_ROUTER_PATTERNS, CLEAR_ROUTER_SHORT, ROUTER_PATTERNS, ROUTER_SHORT,
};
use crate::router::{CcCommand, ClearForm, CommitPlan, Form, Router, RouterError, Routers};
use crate::vm::manager::DEFAULT_NAMESPACE;
use crate::vm::state::VmState;
use crate::vm::Vm;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

const LONG_ROUTER: &str = "Configure minirouter in running router VMs: state is kept per router and\napplied with a commit, which writes <files>/[namespace/]minirouter-VM and\nqueues cc commands (prefix minirouter-VM) that send it and run\n`minirouter -u` on it in the guest.\n\n\trouter r1 interface 0 10.0.0.1/24\n\trouter r1 dhcp 10.0.0.0 range 10.0.0.100 10.0.0.200\n\trouter r1 dns 10.0.0.1 www.example.com\n\trouter r1 route static 0.0.0.0/0 10.0.0.254\n\trouter r1 route ospf 0 1\n\trouter r1 fw default drop\n\trouter r1 commit\n\trouter r1                      the router's summary\n\nInterfaces are the indexes of `vm config net`; an address is IPv4 or IPv6\nwith its mask, or dhcp; lo makes a loopback. A VM that has quit or failed\ntakes no router command but its summary. minirouter's log is in the VM's\nminirouter_log tag.\n\nA container (vm launch container) is a router as a VM is, fw forms\nincluded: unlike minimega, which refuses fw for containers, its\nminirouter runs nftables in the container's network namespace\n(scripts/router-fs.sh builds such a file system).";

const LONG_CLEAR: &str = "Clear a router's settings, mirroring each `router` form: `clear router`\nforgets every router of the namespace, `clear router r1` resets r1,\n`clear router r1 dhcp 10.0.0.0 range` clears one range. The guest keeps\nwhat it applied until the next commit.";

pub fn specs() -> Vec<Spec<Node>> {
    vec![
        Spec {
            patterns: ROUTER_PATTERNS,
            short: ROUTER_SHORT,
            long: LONG_ROUTER,
            handler: router,
            mesh_ok: true,
            reach: Reach::namespace(Some(super::scope::drop_not_found)),
            ns_clear: &["clear router"],
        },
        Spec {
            patterns: CLEAR_ROUTER_PATTERNS,
            short: CLEAR_ROUTER_SHORT,
            long: LONG_CLEAR,
            handler: clear_router,
            mesh_ok: true,
            reach: Reach::namespace(Some(super::scope::drop_not_found)),
            ns_clear: &[],
        },
    ]
}

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

fn namespace(c: &Call<'_, Node>) -> String {
    crate::ns::current(c.session).to_string()
}

fn key(ns: &str, vm: &Vm) -> (String, String) {
    (ns.to_string(), vm.uuid.clone())
}

fn lock(r: &Routers) -> std::sync::MutexGuard<'_, HashMap<(String, String), Router>> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

/// Forgets the routers of VMs that are gone from `ns` (flushed), so a
/// router never outlives its VM.
fn prune(c: &Call<'_, Node>, ns: &str) {
    let live: Vec<String> = c
        .ctx
        .vms
        .in_namespace(ns)
        .iter()
        .map(|v| v.uuid.clone())
        .collect();
    lock(&c.ctx.routers).retain(|(n, uuid), _| n != ns || live.contains(uuid));
}

fn router(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c);
        prune(&c, &ns);
        let vm = c
            .ctx
            .vms
            .one(&ns, c.args.string("vm").unwrap_or_default())?;
        let form = Form::from_args(&c.args).ok_or_else(|| failed("router: unknown form"))?;
        let k = key(&ns, &vm);
        if form == Form::Show {
            let log = vm.lock().tags.get("minirouter_log").cloned();
            return match lock(&c.ctx.routers).get(&k) {
                Some(r) => Ok(Response::text(r.summary(Some(log.as_deref().unwrap_or("")))).into()),
                None => Err(failed(RouterError::NotARouter(vm.name.clone()))),
            };
        }
        let (state, networks) = {
            let s = vm.lock();
            (s.state, s.config.networks.len())
        };
        if matches!(state, VmState::Quit | VmState::Error) {
            return Err(failed(format!("vm not running: {}", vm.name)));
        }
        let created = {
            let mut all = lock(&c.ctx.routers);
            let created = !all.contains_key(&k);
            let r = all
                .entry(k.clone())
                .or_insert_with(|| Router::new(networks));
            if form != Form::Commit {
                // A form that fails leaves the router as it was.
                let mut next = r.clone();
                if let Err(e) = next.apply(&form) {
                    if created {
                        all.remove(&k);
                    }
                    return Err(failed(e));
                }
                *r = next;
            }
            created
        };
        if created {
            // minimega tags a VM it made a router of with its id.
            c.ctx
                .vms
                .set_tag(std::slice::from_ref(&vm), "minirouter", &vm.id.to_string())
                .await?;
        }
        if form == Form::Commit {
            commit(&c, &ns, &vm).await?;
        }
        Ok(Reply::empty())
    })
}

/// Writes the router's file and queues its cc commands; on any failure
/// the router, the file and the namespace's commands are as they were.
async fn commit(c: &Call<'_, Node>, ns: &str, vm: &Arc<Vm>) -> Result<(), CommandError> {
    let k = key(ns, vm);
    let (before, plan) = {
        let mut all = lock(&c.ctx.routers);
        let r = all.get_mut(&k).ok_or_else(|| failed("router is gone"))?;
        let before = r.clone();
        let plan = r.commit(&vm.name, (ns != DEFAULT_NAMESPACE).then_some(ns));
        (before, plan)
    };
    let put_back = |c: &Call<'_, Node>| {
        lock(&c.ctx.routers).insert(k.clone(), before.clone());
    };
    let path = c.ctx.config.filepath.join(&plan.path);
    let old = std::fs::read(&path).ok();
    if let Err(e) = write_file(&path, &plan.contents) {
        put_back(c);
        return Err(failed(format!(
            "router commit: cannot write {}: {e}",
            path.display()
        )));
    }
    if let Err(e) = queue(c, ns, vm, &plan).await {
        put_back(c);
        let _ = match old {
            Some(old) => std::fs::write(&path, old),
            None => std::fs::remove_file(&path),
        };
        return Err(failed(format!("router commit: {e}")));
    }
    if let Some(r) = lock(&c.ctx.routers).get_mut(&k) {
        r.committed();
    }
    Ok(())
}

/// The file, whole or not at all: written beside and renamed over, so
/// an agent fetching it never reads half of it.
fn write_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("new");
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Replaces the prefix's earlier commands with the plan's, in one change
/// of the namespace's book.
async fn queue(c: &Call<'_, Node>, ns: &str, vm: &Vm, plan: &CommitPlan) -> Result<(), CcError> {
    let cmds: Vec<Command> = plan
        .commands
        .iter()
        .map(|step| {
            let mut cmd = Command {
                prefix: plan.prefix.clone(),
                filter: Some(Filter {
                    uuid: vm.uuid.clone(),
                    ..Filter::default()
                }),
                ..Command::default()
            };
            match step {
                CcCommand::Exec(argv) => cmd.command = argv.clone(),
                CcCommand::Send(files) => cmd.files_send = files.clone(),
            }
            cmd
        })
        .collect();
    let prefix = plan.prefix.clone();
    c.ctx
        .cc
        .change(ns, move |b| {
            let before = b.clone();
            // No earlier commands under the prefix is fine.
            let _ = b.delete_prefix(&prefix);
            for cmd in cmds {
                b.post_own(cmd);
            }
            Ok(((), Box::new(move |b: &mut Book| *b = before) as Undo))
        })
        .await?;
    c.ctx.cc.kick(ns);
    Ok(())
}

fn clear_router(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c);
        prune(&c, &ns);
        let form =
            ClearForm::from_args(&c.args).ok_or_else(|| failed("clear router: unknown form"))?;
        if form == ClearForm::AllRouters {
            lock(&c.ctx.routers).retain(|(n, _), _| *n != ns);
            return Ok(Reply::empty());
        }
        let name = c.args.string("vm").unwrap_or_default();
        let vm = c.ctx.vms.one(&ns, name)?;
        let mut all = lock(&c.ctx.routers);
        let r = all
            .get_mut(&key(&ns, &vm))
            .ok_or_else(|| failed(RouterError::NoSuchRouter(name.to_string())))?;
        let mut next = r.clone();
        next.clear(&form).map_err(failed)?;
        *r = next;
        Ok(Reply::empty())
    })
}
