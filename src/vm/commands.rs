//! The `vm ...` commands: `vm config`, `clear vm config`, `vm launch`,
//! `vm start|stop|kill`, `vm flush`, `vm info`, `vm tag`, `vm qmp`,
//! `vm screenshot` and `vm cdrom`. VMs live in the session's namespace.

use super::config::{self, Field, VmConfig};
use super::manager::{Vm, VmError, DEFAULT_NAMESPACE};
use super::targets::{self, Target};
use super::{info, screenshot};
use crate::command::{
    table, BoxFuture, Call, CmdResult, CommandError, Origin, Reply, Response, Spec,
};
use crate::daemon::Node;
use std::path::Path;
use std::sync::Arc;

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

impl From<VmError> for CommandError {
    fn from(e: VmError) -> CommandError {
        CommandError::Failed(e.0)
    }
}

fn namespace(c: &Call<'_, Node>) -> String {
    c.session
        .namespace
        .clone()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
}

pub fn specs() -> Vec<Spec<Node>> {
    vec![
        Spec {
            patterns: &[
                "vm config",
                "vm config <memory,vcpus,disks,snapshot,cdrom,kernel,initrd,append,uuid,machine,cpu,qemu,qemu-append,tag,serial-ports,vga,schedule,coschedule,networks,clone> [value]...",
                "vm config <field> [value]...",
            ],
            short: "display, save, or restore the current VM configuration",
            long: "Display or set the configuration new VMs are launched with (per namespace).\n`vm config` alone prints every field; `vm config <field>` prints one;\n`vm config <field> <value>...` sets it. Fields and defaults:\n\n\tmemory 2048       guest RAM in MiB\n\tvcpus 1           virtual CPUs\n\tdisks             disk images (`disk` works too); with snapshot true each VM\n\t                  boots a throw-away overlay and never writes the image\n\tsnapshot true     see disks\n\tcdrom, kernel, initrd   files; relative names are under -filepath\n\tappend            kernel command line\n\tuuid              empty: each VM gets a random one; a set UUID fits one VM\n\tmachine, cpu      QEMU -machine and -cpu (cpu empty: host under KVM)\n\tqemu              the QEMU binary (qemu-system-x86_64)\n\tqemu-append       extra QEMU arguments\n\ttag <key> <value> a tag launched VMs copy\n\tserial-ports 0    serial ports (unix sockets in the VM's folder, logged)\n\tvga std           QEMU -vga\n\tschedule, coschedule   placement hints for the mesh scheduler\n\tnetworks SPEC...  NICs (`net`), each [bridge,]vlan[,mac][,driver][,qinq]: bridge\n\t                  mega_bridge, driver e1000, the VLAN a number or an alias\n\t                  (allocated here, see `vlans`), the MAC generated when absent\n\n`vm config clone <vm>` copies an existing VM's configuration.",
            handler: vm_config,
            mesh_ok: true,
        },
        Spec {
            patterns: &["clear vm config", "clear vm config <field>"],
            short: "reset the VM configuration to defaults",
            long: "Reset one field of `vm config`, or all of them, to the defaults\n(memory 2048, vcpus 1, snapshot true, ...).",
            handler: clear_vm_config,
            mesh_ok: true,
        },
        Spec {
            patterns: &["vm launch kvm <name or count>", "vm launch kvm <name or count> config <json>"],
            short: "launch virtual machines in a paused state",
            long: "Launch VMs from the current `vm config`, paused (state BUILDING):\n\n\tvm launch kvm 20            twenty VMs named vm-<id>\n\tvm launch kvm web[1-50]     fifty VMs named web1 ... web50\n\tvm launch kvm foo,bar       two VMs\n\nAll QEMUs start at once; the command returns when each VM is BUILDING.\nNames that are integers, and `all`, are refused. A VM that fails to launch\nleaves nothing behind. Start VMs with `vm start`.\n\nIn a namespace whose hosts include other nodes, the VMs are spread over\nthe hosts by load (committed CPUs), honouring `vm config schedule` and\n`coschedule`, and each host launches its share with this node's config\n(the `config <json>` form carries it; a head node sends it, not users).",
            handler: vm_launch,
            mesh_ok: true,
        },
        Spec {
            patterns: &["vm start <target>"],
            short: "start paused virtual machines",
            long: "Start VMs: BUILDING and PAUSED VMs resume; a QUIT VM is launched again\nwith its configuration and then started. Targets: a name, an id, a range\n(`foo[1-3]`), a comma list, or `all`.",
            handler: vm_start,
            mesh_ok: true,
        },
        Spec {
            patterns: &["vm stop <target>"],
            short: "pause running virtual machines",
            long: "Pause RUNNING VMs (state PAUSED); `vm start` resumes them. Targets as\nfor `vm start`.",
            handler: vm_stop,
            mesh_ok: true,
        },
        Spec {
            patterns: &["vm kill <target>"],
            short: "kill running virtual machines",
            long: "End VMs' QEMU (asked to quit, killed if it does not): state QUIT. Their\nfolder stays until `vm flush`. Targets as for `vm start`.",
            handler: vm_kill,
            mesh_ok: true,
        },
        Spec {
            patterns: &["vm flush"],
            short: "discard information about quit or failed VMs",
            long: "Forget every QUIT or ERROR VM of the namespace and remove its folder.",
            handler: vm_flush,
            mesh_ok: true,
        },
        Spec {
            patterns: &["vm info", "vm info summary"],
            short: "print information about VMs",
            long: "Print one row per VM of the namespace: id, name, state, uptime, type,\nuuid, cc_active, pid, vlan, bridge, tap, mac, ip, ip6, qos, memory, vcpus,\ndisks, snapshot, initrd, kernel, cdrom, append, serial-ports,\nvirtio-ports, vnc_port, tags, namespace, and where it runs: unit (its\nsystemd scope, or its cgroup), memused (MiB the cgroup uses now) and\ncputime (CPU time used). `vm info summary` prints id, name, state, type,\nuuid, cc_active and vlan. Use .columns and .filter to choose.",
            handler: vm_info,
            mesh_ok: true,
        },
        Spec {
            patterns: &["vm tag <target> [key]", "vm tag <target> <key> <value>"],
            short: "display or set a tag for VMs",
            long: "`vm tag <target>` prints every tag of the VMs, `vm tag <target> <key>`\nthe one tag, and `vm tag <target> <key> <value>` sets it.",
            handler: vm_tag,
            mesh_ok: true,
        },
        Spec {
            patterns: &["vm qmp <vm> <qmp>"],
            short: "issue a JSON-encoded QMP command",
            long: "Send a raw QMP command to one VM and print QEMU's answer:\n\n\tvm qmp foo '{ \"execute\": \"query-status\" }'",
            handler: vm_qmp,
            mesh_ok: true,
        },
        Spec {
            patterns: &["vm screenshot <vm> <file> [maximum dimension]"],
            short: "take a screenshot of a VM",
            long: "Save a VM's screen to a file (PNG, or PPM when the name ends in .ppm),\nscaled so neither side exceeds the maximum dimension when one is given.\nA relative file name is under -filepath.",
            handler: vm_screenshot,
            mesh_ok: true,
        },
        Spec {
            patterns: &["vm cdrom eject <vm>", "vm cdrom change <vm> <path>"],
            short: "eject or change an active VM's cdrom",
            long: "Eject the cdrom of a running VM, or put another image in it. A relative\npath is under -filepath.",
            handler: vm_cdrom,
            mesh_ok: true,
        },
    ]
}

fn vm_config(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let vms = &c.ctx.vms;
        let ns = namespace(&c);
        let name = c
            .args
            .bools
            .iter()
            .next()
            .cloned()
            .or_else(|| c.args.string("field").map(str::to_string));
        let Some(name) = name else {
            return Ok(Response::text(vms.config(&ns).describe()).into());
        };
        let values = c.args.list("value");
        if name == "clone" {
            let [target] = values else {
                return Err(CommandError::Invalid("usage: vm config clone <vm>".into()));
            };
            let vm = vms.one(&ns, target)?;
            let mut cfg = vm.lock().config.clone();
            cfg.networks = cfg
                .networks
                .iter()
                .map(crate::net::Nic::unassigned)
                .collect();
            vms.set_config(&ns, cfg);
            return Ok(Reply::empty());
        }
        let field = Field::parse(&name).map_err(failed)?;
        let mut cfg = vms.config(&ns);
        if values.is_empty() {
            return Ok(Response::text(cfg.get(field)).into());
        }
        if field == Field::Tags && values.len() == 1 {
            let v = cfg.tags.get(&values[0]).cloned().unwrap_or_default();
            return Ok(Response::text(v).into());
        }
        cfg.set(field, values, vms.filepath()).map_err(failed)?;
        if field == Field::Networks {
            crate::net::commands::configure(c.ctx, &c.session.origin, &ns, &mut cfg.networks)
                .await?;
        }
        vms.set_config(&ns, cfg);
        Ok(Reply::empty())
    })
}

fn clear_vm_config(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let vms = &c.ctx.vms;
        let ns = namespace(&c);
        match c.args.string("field") {
            None => vms.set_config(&ns, VmConfig::default()),
            Some(f) => {
                let field = Field::parse(f).map_err(failed)?;
                let mut cfg = vms.config(&ns);
                cfg.clear(field);
                vms.set_config(&ns, cfg);
            }
        }
        Ok(Reply::empty())
    })
}

fn vm_launch(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c);
        let spec = c.args.string("name").unwrap_or_default();
        let names = targets::parse_launch(spec).map_err(failed)?;
        if let Some(json) = c.args.string("json") {
            let cfg: super::config::VmConfig = serde_json::from_str(json)
                .map_err(|e| failed(format!("invalid vm config: {e}")))?;
            c.ctx.vms.launch_with(&ns, names, cfg).await?;
            return Ok(Reply::empty());
        }
        // Only a launch typed here is spread: one that came over the mesh
        // was placed already.
        if c.session.origin == Origin::Local {
            let hosts = crate::ns::hosts_of(c.ctx, c.session);
            if hosts.iter().any(|h| h != c.ctx.hostname()) {
                let cfg = c.ctx.vms.config(&ns);
                let errors = crate::ns::launch::launch(c.ctx, &ns, &hosts, names, cfg).await?;
                return Ok(if errors.is_empty() {
                    Reply::empty()
                } else {
                    errors.into()
                });
            }
        }
        c.ctx.vms.launch(&ns, names).await?;
        Ok(Reply::empty())
    })
}

fn resolve(c: &Call<'_, Node>) -> Result<Vec<Arc<Vm>>, CommandError> {
    let ns = namespace(c);
    let spec = c.args.string("target").unwrap_or_default();
    let t: Vec<Target> = targets::parse_targets(spec).map_err(failed)?;
    Ok(c.ctx.vms.resolve(&ns, &t)?)
}

fn vm_start(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let list = resolve(&c)?;
        c.ctx.vms.start(list).await?;
        Ok(Reply::empty())
    })
}

fn vm_stop(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let list = resolve(&c)?;
        let running = if c.args.string("target") == Some("all") {
            list.into_iter()
                .filter(|v| v.state() == super::state::VmState::Running)
                .collect()
        } else {
            list
        };
        c.ctx.vms.stop(running).await?;
        Ok(Reply::empty())
    })
}

fn vm_kill(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let list = resolve(&c)?;
        c.ctx.vms.kill(list).await?;
        Ok(Reply::empty())
    })
}

fn vm_flush(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c);
        c.ctx.vms.flush(&ns).await?;
        Ok(Reply::empty())
    })
}

fn vm_info(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c);
        let summary = c.pattern == "vm info summary";
        let vms = c.ctx.vms.in_namespace(&ns);
        let (header, rows) = info::table(&c.ctx.vms, &c.ctx.net, &vms, summary).await;
        Ok(table(header.iter().copied(), rows).into())
    })
}

fn vm_tag(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let list = resolve(&c)?;
        let key = c.args.string("key");
        if let (Some(k), Some(v)) = (key, c.args.string("value")) {
            c.ctx.vms.set_tag(&list, k, v);
            return Ok(Reply::empty());
        }
        let mut rows = Vec::new();
        for vm in &list {
            let tags = vm.lock().tags.clone();
            for (k, v) in tags {
                if key.is_none_or(|want| want == k) {
                    rows.push(vec![vm.id.to_string(), vm.name.clone(), k, v]);
                }
            }
        }
        Ok(table(["id", "name", "key", "value"], rows).into())
    })
}

fn one(c: &Call<'_, Node>) -> Result<Arc<Vm>, CommandError> {
    let ns = namespace(c);
    Ok(c.ctx
        .vms
        .one(&ns, c.args.string("vm").unwrap_or_default())?)
}

fn vm_qmp(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let vm = one(&c)?;
        let q = vm.qmp()?;
        let reply = q
            .raw(c.args.string("qmp").unwrap_or_default())
            .await
            .map_err(failed)?;
        Ok(Response::text(reply.to_string()).into())
    })
}

fn vm_screenshot(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let vm = one(&c)?;
        let max: usize = match c.args.string("maximum") {
            None => 0,
            Some(m) => m
                .parse()
                .map_err(|_| failed(format!("invalid maximum dimension `{m}`: not a number")))?,
        };
        let file = config::resolve_file(
            c.ctx.vms.filepath(),
            c.args.string("file").unwrap_or_default(),
        );
        let q = vm.qmp()?;
        let dump = vm.paths.dir.join("screendump.ppm");
        let r = q
            .execute(
                "screendump",
                Some(serde_json::json!({ "filename": dump.to_string_lossy() })),
            )
            .await
            .map_err(|e| failed(format!("vm {}: screendump: {e}", vm.name)));
        let data = r.and_then(|_| {
            std::fs::read(&dump).map_err(|e| failed(format!("{}: {e}", dump.display())))
        });
        let _ = std::fs::remove_file(&dump);
        let img = screenshot::parse_ppm(&data?).map_err(failed)?.fit(max);
        let bytes = if file.ends_with(".ppm") {
            img.to_ppm()
        } else {
            img.to_png()
        };
        if let Some(parent) = Path::new(&file).parent() {
            std::fs::create_dir_all(parent).map_err(|e| failed(format!("{file}: {e}")))?;
        }
        std::fs::write(&file, bytes).map_err(|e| failed(format!("{file}: {e}")))?;
        Ok(Reply::empty())
    })
}

fn vm_cdrom(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let vm = one(&c)?;
        let q = vm.qmp()?;
        let change =
            c.line.split_whitespace().nth(2) == Some("change") || c.args.string("path").is_some();
        let fail = |e: super::qmp::QmpError| failed(format!("vm {}: {e}", vm.name));
        if change {
            let path = config::resolve_file(
                c.ctx.vms.filepath(),
                c.args.string("path").unwrap_or_default(),
            );
            if !Path::new(&path).is_file() {
                return Err(failed(format!("cdrom {path}: no such file")));
            }
            q.execute(
                "blockdev-change-medium",
                Some(serde_json::json!({ "device": "cdrom", "filename": path })),
            )
            .await
            .map_err(fail)?;
            c.ctx.vms.set_cdrom(&vm, &path);
        } else {
            q.execute(
                "eject",
                Some(serde_json::json!({ "device": "cdrom", "force": true })),
            )
            .await
            .map_err(fail)?;
            c.ctx.vms.set_cdrom(&vm, "");
        }
        Ok(Reply::empty())
    })
}
