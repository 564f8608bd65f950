//! `vm hotplug`: USB drives into running VMs (see `vm::hotplug`).

use crate::command::Reach;
use crate::command::{table, BoxFuture, Call, CmdResult, CommandError, Reply, Spec};
use crate::node::Node;
use crate::vm::config;
use crate::vm::hotplug::*;
use std::path::Path;
use std::sync::Arc;

pub fn specs() -> Vec<Spec<Node>> {
    vec![Spec {
        patterns: &[
            "vm hotplug",
            "vm hotplug <show,> [vm target]",
            "vm hotplug <add,> <vm target> <filename> [version]",
            "vm hotplug <add,> <vm target> <filename> serial <serial> [version]",
            "vm hotplug <remove,> <vm target> <disk id or all>",
        ],
        short: "add and remove USB drives",
        long: "Add and remove USB drives of running VMs. To add foo.img to VM foo:\n\n\
\tvm hotplug add foo foo.img\n\n\
The drive gets an id, shown by `vm hotplug` (or `vm hotplug show [vm]`)\n\
with the VM's name, the file and the USB version. The version may be 1.1\n\
(the default), 2.0 or 3.0; a serial number may be given:\n\n\
\tvm hotplug add foo foo.img serial 1234 2.0\n\n\
To remove the drive with id 0, or every drive of the VM:\n\n\
\tvm hotplug remove foo 0\n\
\tvm hotplug remove foo all\n\n\
A relative file name is under -filepath; the image's format (raw, qcow2,\n\
...) is read from the file. Targets as for `vm start`. Drives go when the\n\
VM's QEMU does; a VM with drives plugged in cannot be migrated.",
        handler: hotplug,
        mesh_ok: true,
        reach: Reach::namespace(Some(super::scope::drop_not_found)),
        ns_clear: &[],
    }]
}

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

fn hotplug(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = crate::ns::current(c.session).to_string();
        let vms = &c.ctx.vms;
        let target = c.args.string("vm").unwrap_or("all");
        let targets = crate::vm::targets::parse_targets(target).map_err(failed)?;
        let wild = target == "all";
        let list = vms.resolve(&ns, &targets)?;
        if c.args.flag("add") {
            let file =
                config::resolve_file(vms.filepath(), c.args.string("filename").unwrap_or(""))
                    .map_err(failed)?;
            if !Path::new(&file).is_file() {
                return Err(failed(format!("{file}: no such file")));
            }
            let version = UsbVersion::parse(c.args.string("version")).map_err(failed)?;
            let serial = c.args.string("serial").unwrap_or("").to_string();
            let file = Arc::new(file);
            vms.each(list, move |_, vm| {
                let (file, serial) = (file.clone(), serial.clone());
                async move { add(&vm, &file, version, &serial).await.map(|_| ()) }
            })
            .await?;
            return Ok(Reply::empty());
        }
        if c.args.flag("remove") {
            let disk = c.args.string("disk").unwrap_or("");
            let which = match disk {
                "all" => None,
                d => Some(
                    d.parse::<u32>()
                        .map_err(|_| failed(format!("invalid disk: `{d}`")))?,
                ),
            };
            vms.each(list, move |_, vm| async move {
                match remove(&vm, which).await {
                    // Many targets: a VM without drives is not an error.
                    Err(crate::vm::VmError::NoHotplugDevices) if wild => Ok(()),
                    r => r,
                }
            })
            .await?;
            return Ok(Reply::empty());
        }
        let mut rows = Vec::new();
        for vm in list.iter().filter(|v| v.state().is_live()) {
            for (id, d) in drives(vm) {
                rows.push(vec![
                    vm.name.clone(),
                    id.to_string(),
                    d.file,
                    d.version.name().to_string(),
                ]);
            }
        }
        Ok(table(["name", "id", "file", "version"], rows).into())
    })
}
