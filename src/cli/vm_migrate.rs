//! `vm migrate` and `vm save` (see `vm::migrate`).

use crate::command::Reach;
use crate::command::{table, BoxFuture, Call, CmdResult, CommandError, Reply, Spec};
use crate::node::Node;
use crate::vm::config::{self};
use crate::vm::manager::Vm;
use crate::vm::migrate::*;
use std::sync::Arc;

pub fn specs() -> Vec<Spec<Node>> {
    vec![
        Spec {
            patterns: &["vm save", "vm save <vm name> [filename]"],
            short: "write VM state (e.g., memory) and disk to file",
            long: "Save the disks and the running state of a VM, which `vm config disk` and\n\
`vm config state` can later start a VM from: each disk to <filename>.hdd\n\
(the second to <filename>.hdd.1, ...), the state to <filename>.state. A\n\
relative name is under -filepath; the default is saved/<vm name>. A disk\n\
of a VM on a snapshot is saved as the VM's changes over its image (the\n\
image stays its backing file); otherwise the whole disk is copied. The\n\
VM is paused first, so disks and state are of one moment; the command\n\
returns once the disks are copied and the state is being written, and\n\
the VM stays paused (`vm start` resumes it). Earlier files of the same\n\
name are overwritten. `vm save` alone lists the saves of the namespace's\n\
running VMs: id, name, status and complete (%).\n\n\
To start a VM from them:\n\n\
\tvm config state saved/web1.state\n\
\tvm config disk saved/web1.hdd\n\
\tvm launch kvm web1",
            handler: vm_save,
            mesh_ok: true,
            reach: Reach::namespace(Some(super::scope::drop_not_found)),
            ns_clear: &[],
        },
        Spec {
            patterns: &["vm migrate", "vm migrate <vm name> <filename>"],
            short: "**DEPRECATED**: Use 'vm save' - write VM state to disk",
            long: "Deprecated, as in minimega 3.1.0: the same as `vm save <vm name>\n\
<filename>`, so the state goes to <filename>.state and the disks to\n\
<filename>.hdd (phenix's snapshots move both). `vm migrate` alone lists\n\
the saves, as `vm save` does.",
            handler: vm_save,
            mesh_ok: true,
            reach: Reach::namespace(Some(super::scope::drop_not_found)),
            ns_clear: &[],
        },
        Spec {
            patterns: &[
                "vm snapshot",
                "vm snapshot <vm name> <state filename> <disk filename>",
            ],
            short: "**DEPRECATED**: Use 'vm save' - write VM state and disk to file",
            long: "Deprecated, as in minimega 3.1.0: the same as `vm save <vm name>`,\n\
whose files are saved/<vm name>.state and saved/<vm name>.hdd; the file\n\
names given are ignored, as minimega ignores them. `vm snapshot` alone\n\
lists the saves, as `vm save` does.",
            handler: vm_save,
            mesh_ok: true,
            reach: Reach::namespace(Some(super::scope::drop_not_found)),
            ns_clear: &[],
        },
    ]
}

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

fn the_vm(c: &Call<'_, Node>) -> Result<Arc<Vm>, CommandError> {
    let ns = crate::ns::current(c.session);
    Ok(c.ctx.vms.one(ns, c.args.string("vm").unwrap_or_default())?)
}

/// The status listing of `vm save` (and `vm migrate`, `vm snapshot`).
async fn listing(c: &Call<'_, Node>) -> CmdResult {
    let ns = crate::ns::current(c.session);
    let mut rows = Vec::new();
    for vm in c.ctx.vms.in_namespace(ns) {
        let Ok(q) = vm.qmp() else { continue };
        let answer = q.execute("query-migrate", None).await.map_err(failed)?;
        if let Some((status, pct)) = status(&answer) {
            rows.push(vec![vm.id.to_string(), vm.name.clone(), status, pct]);
        }
    }
    Ok(table(["id", "name", "status", "complete (%)"], rows).into())
}

fn vm_save(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        if c.args.string("vm").is_none() {
            return listing(&c).await;
        }
        let vm = the_vm(&c)?;
        let name = match c.args.string("filename") {
            Some(f) => f.to_string(),
            None => format!("saved/{}", vm.name),
        };
        let base = config::resolve_file(c.ctx.vms.filepath(), &name).map_err(failed)?;
        save(&vm, &base).await.map_err(failed)?;
        Ok(Reply::empty())
    })
}
