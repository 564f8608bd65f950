//! The `vm ...` commands: `vm config`, `clear vm config`, `vm launch`,
//! `vm start|stop|kill`, `vm flush`, `vm info`, `vm tag`, `vm qmp`,
//! `vm screenshot` and `vm cdrom`. VMs live in the session's namespace.

use crate::command::Reach;
use crate::command::{
    table, BoxFuture, Call, CmdResult, CommandError, Origin, Reply, Response, Spec,
};
use crate::node::Node;
use crate::vm::config::{self, Kind};
use crate::vm::manager::{Vm, VmError, DEFAULT_NAMESPACE};
use crate::vm::targets::{self, Target};
use crate::vm::{info, screenshot};
use std::path::Path;
use std::sync::Arc;

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

impl From<VmError> for CommandError {
    fn from(e: VmError) -> CommandError {
        CommandError::Failed(e.to_string())
    }
}

fn namespace(c: &Call<'_, Node>) -> String {
    c.session
        .namespace
        .clone()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
}

pub fn specs() -> Vec<Spec<Node>> {
    let mut specs = super::vm_config::specs();
    specs.extend(vec![
        Spec {
            patterns: &[
                "vm launch",
                "vm launch <kvm,container> <name or count> [config]",
                "vm launch <kvm,container> <name or count> config <json>",
            ],
            short: "launch virtual machines in a paused state",
            long: "Launch VMs from the current `vm config` (or a saved one, `vm config\nsave NAME`, named last), paused (state BUILDING):\n\n\tvm launch kvm 20            twenty VMs named vm-<id>\n\tvm launch kvm web[1-50]     fifty VMs named web1 ... web50\n\tvm launch kvm foo,bar       two VMs\n\tvm launch kvm db dbconfig   one VM of saved config dbconfig\n\tvm launch                   launch what is queued\n\nNames that are integers, and `all`, are refused, as are names and UUIDs\nin use or queued in the namespace. With `ns queueing true` the launch only\nqueues (see `ns queue`), with the configuration of that moment, and a bare\n`vm launch` (or `ns schedule`) launches every queued VM at once; without\nqueueing it launches at once. All QEMUs start at once; the command returns\nwhen each VM is BUILDING. A VM that fails to launch leaves nothing behind.\nStart VMs with `vm start`.\n\n`vm launch container NAMES` launches containers instead: `vm config\nfilesystem` (a directory, required), `hostname`, `init`, `preinit`,\n`fifos`, `volume`, with `memory`, `vcpus`, `networks`, `snapshot` and\n`uuid` shared with KVM VMs. Each runs frozen until `vm start`.\n\nIn a namespace whose hosts include other nodes, the VMs are spread over\nthe hosts by load (`ns load`), honouring `vm config schedule`,\n`coschedule` and `colocate`, and each host launches its share with the\nconfiguration it was queued with (the `config <json>` form carries it; a\nhead node sends it, not users).",
            handler: vm_launch,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["vm start <target>"],
            short: "start paused virtual machines",
            long: "Start VMs: BUILDING and PAUSED VMs resume; a QUIT VM named (not by\n`all`) is launched again with its configuration and then started.\nTargets: a name, an id, a range (`foo[1-3]`), a comma list, or `all`,\nwhich starts the BUILDING and PAUSED VMs and leaves QUIT and ERROR ones\nalone.",
            handler: vm_start,
            mesh_ok: true,
            reach: Reach::namespace(Some(super::scope::drop_not_found)),
            ns_clear: &[],
        },
        Spec {
            patterns: &["vm stop <target>"],
            short: "pause running virtual machines",
            long: "Pause RUNNING VMs (state PAUSED); `vm start` resumes them. Targets as\nfor `vm start`.",
            handler: vm_stop,
            mesh_ok: true,
            reach: Reach::namespace(Some(super::scope::drop_not_found)),
            ns_clear: &[],
        },
        Spec {
            patterns: &["vm kill <target>"],
            short: "kill running virtual machines",
            long: "End VMs' QEMU (asked to quit, killed if it does not): state QUIT. Their\nfolder stays until `vm flush`. Targets as for `vm start`.",
            handler: vm_kill,
            mesh_ok: true,
            reach: Reach::namespace(Some(super::scope::drop_not_found)),
            ns_clear: &[],
        },
        Spec {
            patterns: &["vm flush", "vm flush <target>"],
            short: "discard information about quit or failed VMs",
            long: "Forget every QUIT or ERROR VM of the namespace (or of the targets, as\nfor `vm start`; other VMs among them stay) and remove its folder. Names\nof flushed VMs may be used again.",
            handler: vm_flush,
            mesh_ok: true,
            reach: Reach::namespace(Some(super::scope::drop_not_found)),
            ns_clear: &[],
        },
        Spec {
            patterns: &["vm info", "vm info summary"],
            short: "print information about VMs",
            long: "Print one row per VM of the namespace: id, name, state, uptime, type,\nuuid, cc_active, pid, vlan, bridge, tap, mac, ip, ip6, qos, memory, vcpus,\ndisks, snapshot, initrd, kernel, cdrom, append, serial-ports,\nvirtio-ports, vnc_port, tags, namespace, and where it runs: unit (its\nsystemd scope, or its cgroup), memused (MiB the cgroup uses now) and\ncputime (CPU time used). `vm info summary` prints id, name, state, type,\nuuid, cc_active and vlan. Use .columns and .filter to choose.",
            handler: vm_info,
            mesh_ok: true,
            reach: Reach::namespace(Some(super::scope::drop_not_found)),
            ns_clear: &[],
        },
        Spec {
            patterns: &["vm tag <target> [key or all]", "vm tag <target> <key> <value>"],
            short: "display or set a tag for VMs",
            long: "Tags are key-value pairs kept with each VM (and shown in vm info's tags\ncolumn). `vm tag <target>` (or `vm tag <target> all`) prints every tag\nof the VMs (name, tag, value); `vm tag <target> <key>` prints that tag\n(name, value; empty where unset); `vm tag <target> <key> <value>` sets\nit. Targets as for `vm start`.",
            handler: vm_tag,
            mesh_ok: true,
            reach: Reach::namespace(Some(super::scope::drop_not_found)),
            ns_clear: &[],
        },
        Spec {
            patterns: &["clear vm tag", "clear vm tag <target> [tag]"],
            short: "remove tags from a VM",
            long: "Remove one tag, or all tags, from VMs: `clear vm tag 0 foo` removes tag\nfoo from VM 0, `clear vm tag all foo` from every VM, `clear vm tag 0`\nevery tag of VM 0, and `clear vm tag` every tag of every VM of the\nnamespace.",
            handler: clear_vm_tag,
            mesh_ok: true,
            reach: Reach::namespace(None),
            ns_clear: &[],
        },
        Spec {
            patterns: &["vm qmp <vm> <qmp>"],
            short: "issue a JSON-encoded QMP command",
            long: "Send a raw QMP command to one VM and print QEMU's answer:\n\n\tvm qmp foo '{ \"execute\": \"query-status\" }'",
            handler: vm_qmp,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &[
                "vm screenshot <vm name> [maximum dimension]",
                "vm screenshot <vm name> file <filename> [maximum dimension]",
            ],
            short: "take a screenshot of a running vm",
            long: "Take a screenshot of a running VM's screen, saved as PNG in the VM's\nfolder (<base>/<id>/screenshot.png), or in the file given (PPM when its\nname ends in .ppm; a relative name is under -filepath):\n\n\tvm screenshot foo 100\n\tvm screenshot foo file /tmp/foo.png\n\tvm screenshot foo file /dev/null 800\n\nThe optional maximum dimension scales the image, keeping its aspect\nratio, so neither side exceeds it. The PNG also comes back in the\nresponse's Data, base64-encoded, as minimega sends it (web front ends\nuse `file /dev/null`).",
            handler: vm_screenshot,
            mesh_ok: true,
            reach: Reach::namespace(Some(super::scope::drop_not_found)),
            ns_clear: &[],
        },
        Spec {
            patterns: &[
                "vm cdrom eject <vm target>",
                "vm cdrom change <vm target> <path>",
            ],
            short: "eject or change an active VM's cdrom",
            long: "Eject the cdrom of running VMs, or put another image in it. A relative\npath is under -filepath. Targets as for `vm start`.",
            handler: vm_cdrom,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
    ]);
    specs
}

fn vm_launch(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c);
        let Some(spec) = c.args.string("name") else {
            let errors = super::ns_launch::run(c.ctx, c.session).await?;
            return Ok(errors_or_empty(errors));
        };
        let names = targets::parse_launch(spec).map_err(failed)?;
        let kind = if c.args.flag("container") {
            Kind::Container
        } else {
            Kind::Kvm
        };
        if let Some(json) = c.args.string("json") {
            let mut cfg: crate::vm::config::VmConfig = serde_json::from_str(json)
                .map_err(|e| failed(format!("invalid vm config: {e}")))?;
            cfg.kind = kind;
            c.ctx.vms.launch_with(&ns, names, cfg).await?;
            return Ok(Reply::empty());
        }
        // An empty name is the current config, as in minimega (miniweb
        // sends `vm launch "kvm" "vm1" ""`).
        let cfg = match c.args.string("config").filter(|n| !n.is_empty()) {
            None => c.ctx.vms.config(&ns),
            Some(name) => {
                let saved = c.ctx.namespaces.with(
                    &ns,
                    || super::scope::initial_hosts(c.ctx, &ns),
                    |n| n.saved.get(name).cloned(),
                );
                saved.ok_or_else(|| failed(format!("config {name} does not exist")))?
            }
        };
        let mut cfg = super::optimize::with_hugepages(&ns, cfg);
        cfg.kind = kind;
        // Only a launch typed here is queued and placed: one that came over
        // the mesh was placed already.
        if c.session.origin != Origin::Local {
            c.ctx.vms.launch_with(&ns, names, cfg).await?;
            return Ok(Reply::empty());
        }
        let errors = super::ns_launch::enqueue(c.ctx, c.session, names, cfg).await?;
        Ok(errors_or_empty(errors))
    })
}

fn errors_or_empty(errors: Vec<Response>) -> Reply {
    if errors.is_empty() {
        Reply::empty()
    } else {
        errors.into()
    }
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
        // `all` starts what is paused; only a QUIT VM named is relaunched.
        let list = if c.args.string("target") == Some("all") {
            use crate::vm::state::VmState::{Building, Paused};
            list.into_iter()
                .filter(|v| matches!(v.state(), Building | Paused))
                .collect()
        } else {
            list
        };
        c.ctx.vms.start(list).await?;
        Ok(Reply::empty())
    })
}

fn vm_stop(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let list = resolve(&c)?;
        let running = if c.args.string("target") == Some("all") {
            list.into_iter()
                .filter(|v| v.state() == crate::vm::state::VmState::Running)
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
        if c.args.string("target").is_some() {
            let list = resolve(&c)?;
            c.ctx.vms.flush_vms(list).await?;
            return Ok(Reply::empty());
        }
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
        let (header, rows) = info::table(&c.ctx.vms, &*c.ctx.net, &vms, summary).await;
        Ok(table(header.iter().copied(), rows).into())
    })
}

fn vm_tag(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let list = resolve(&c)?;
        let key = c.args.string("key").filter(|k| *k != "all");
        if let Some(v) = c.args.string("value") {
            let Some(k) = key else {
                return Err(failed("cannot assign to wildcard"));
            };
            c.ctx.vms.set_tag(&list, k, v).await?;
            return Ok(Reply::empty());
        }
        // minimega's tables: every tag (name, tag, value), or one (name, value).
        let mut rows = Vec::new();
        for vm in &list {
            let tags = vm.lock().tags.clone();
            match key {
                None => rows.extend(tags.into_iter().map(|(k, v)| vec![vm.name.clone(), k, v])),
                Some(k) => rows.push(vec![
                    vm.name.clone(),
                    tags.get(k).cloned().unwrap_or_default(),
                ]),
            }
        }
        Ok(match key {
            None => table(["name", "tag", "value"], rows),
            Some(_) => table(["name", "value"], rows),
        }
        .into())
    })
}

fn clear_vm_tag(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let list = match c.args.string("target") {
            Some(_) => resolve(&c)?,
            None => c.ctx.vms.in_namespace(&namespace(&c)),
        };
        let tag = c.args.string("tag").filter(|t| *t != "all");
        c.ctx.vms.clear_tag(&list, tag).await?;
        Ok(Reply::empty())
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
        // A container has no screen (minimega: the same refusal).
        if vm.lock().config.kind == Kind::Container {
            return Err(VmError::NotForContainers("vm screenshot").into());
        }
        let max: usize = match c.args.string("maximum") {
            None => 0,
            Some(m) => m
                .parse()
                .map_err(|_| failed(format!("invalid maximum dimension `{m}`: not a number")))?,
        };
        let file = match c.args.string("filename") {
            Some(f) => config::resolve_file(c.ctx.vms.filepath(), f).map_err(failed)?,
            None => vm.paths.dir.join("screenshot.png").display().to_string(),
        };
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
        let data = serde_json::Value::String(screenshot::base64(&bytes));
        std::fs::write(&file, bytes).map_err(|e| failed(format!("{file}: {e}")))?;
        Ok(Response::default().with_data(data).into())
    })
}

fn vm_cdrom(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c);
        let spec = c.args.string("vm").unwrap_or_default();
        let t: Vec<Target> = targets::parse_targets(spec).map_err(failed)?;
        let list = c.ctx.vms.resolve(&ns, &t)?;
        let change =
            c.line.split_whitespace().nth(2) == Some("change") || c.args.string("path").is_some();
        let path = if change {
            let path = config::resolve_file(
                c.ctx.vms.filepath(),
                c.args.string("path").unwrap_or_default(),
            )
            .map_err(failed)?;
            if !Path::new(&path).is_file() {
                return Err(failed(format!("cdrom {path}: no such file")));
            }
            path
        } else {
            String::new()
        };
        // Every VM named gets the medium; one that cannot says so.
        let mut errors = Vec::new();
        for vm in &list {
            if let Err(e) = cdrom(&c, vm, &path).await {
                errors.push(e.to_string());
            }
        }
        match errors.len() {
            0 => Ok(Reply::empty()),
            1 => Err(failed(errors.remove(0))),
            n => Err(failed(format!("{} (and {} more errors)", errors[0], n - 1))),
        }
    })
}

/// Puts `path` in a VM's cdrom drive (empty: ejects), and records it; when
/// it cannot be recorded, the drive gets its old medium back.
async fn cdrom(c: &Call<'_, Node>, vm: &Arc<Vm>, path: &str) -> Result<(), CommandError> {
    let q = vm.qmp()?;
    let fail = |e: crate::vm::qmp::QmpError| failed(format!("vm {}: {e}", vm.name));
    let before = vm.lock().config.cdrom.clone();
    let medium = |path: &str| {
        if path.is_empty() {
            (
                "eject",
                serde_json::json!({ "device": "cdrom", "force": true }),
            )
        } else {
            (
                "blockdev-change-medium",
                serde_json::json!({ "device": "cdrom", "filename": path }),
            )
        }
    };
    let (cmd, args) = medium(path);
    q.execute(cmd, Some(args)).await.map_err(fail)?;
    if let Err(e) = c.ctx.vms.set_cdrom(vm, path).await {
        let (cmd, args) = medium(&before);
        let _ = q.execute(cmd, Some(args)).await;
        return Err(e.into());
    }
    Ok(())
}
