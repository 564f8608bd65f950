//! `vm config` and `clear vm config`: printing and setting the fields of
//! [`VmConfig`], and the namespace's saved configurations (`save`,
//! `restore`), `clone` of a VM's configuration, and the `qemu-override`
//! listing. A field or subcommand may be abbreviated to a unique prefix;
//! an ambiguous one is an error naming the candidates.

use crate::command::Reach;
use crate::command::{BoxFuture, Call, CmdResult, CommandError, Reply, Response, Spec};
use crate::node::Node;
use crate::vm::argv::{self, VmPaths};
use crate::vm::config::{Field, VmConfig, ALIASES, FIELDS};

/// The words of `vm config` that are not fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sub {
    Save,
    Restore,
    Clone,
}

const SUBS: &[(&str, Sub)] = &[
    ("save", Sub::Save),
    ("restore", Sub::Restore),
    ("clone", Sub::Clone),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Word {
    Field(Field),
    Sub(Sub),
}

fn resolve(word: &str, subs: bool) -> Result<Word, CommandError> {
    let mut names: Vec<(&'static str, Word)> =
        FIELDS.iter().map(|(n, f)| (*n, Word::Field(*f))).collect();
    if subs {
        names.extend(SUBS.iter().map(|(n, s)| (*n, Word::Sub(*s))));
    }
    let aliases: Vec<(&'static str, Word)> =
        ALIASES.iter().map(|(n, f)| (*n, Word::Field(*f))).collect();
    crate::vm::config::pick(word, &names, &aliases).map_err(fail)
}

fn fail(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

pub fn specs() -> Vec<Spec<Node>> {
    vec![
        Spec {
            patterns: &["vm config", "vm config <field> [value]..."],
            short: "display, save, or restore the current VM configuration",
            long: "Display or set the configuration new VMs are launched with (one per\nnamespace). `vm config` alone lists every field, in minimega's layout;\n`vm config <field>` prints one; `vm config <field> <value>...` sets it.\nA unique prefix names a field (`vm config mem`). Fields and defaults:\n\n\tmemory 2048       guest RAM in MiB\n\tvcpus 1           virtual CPUs\n\tnetworks SPEC...  NICs (`net`), each [bridge,]vlan[,mac][,driver][,qinq]:\n\t                  bridge mega_bridge, driver e1000, the VLAN a number or an\n\t                  alias (allocated here, see `vlans`), the MAC generated\n\t                  when absent\n\tdisks             disk images (`disk` works too); with snapshot true each VM\n\t                  boots a throw-away overlay and never writes the image\n\tsnapshot true     see disks\n\tcdrom, kernel, initrd   files; relative names are under -filepath\n\tappend            kernel command line, shown as [a b c]\n\tuuid              empty: each VM gets a random one; a set UUID fits one VM\n\tmachine, cpu      QEMU -machine and -cpu (cpu empty: host under KVM)\n\tqemu              the QEMU binary (qemu-system-x86_64)\n\tqemu-append       extra QEMU arguments, shown as [a b c]\n\ttags <key> <value> a tag launched VMs copy; `vm config tags` lists them\n\t                  as `key -> value` lines, `vm config tags <key>` prints one\n\tserial-ports 0    serial ports (unix sockets in the VM's folder, logged)\n\tvirtio-ports      virtio-serial ports: a count (named virtio-serial0, ...)\n\t                  or comma-separated names; each is a unix socket\n\t                  <base>/<id>/virtio-serialN and /dev/virtio-ports/NAME\n\t                  in the guest\n\tvga std           QEMU -vga\n\tschedule          the host of the namespace a launch goes to\n\tcoschedule -1     at most this many other VMs on the VM's host (-1: any)\n\tcolocate          a VM (launched together, or queued) to share a host with\n\tbackchannel true  a virtio-serial port named cc for the cc agent (miniccc)\n\tqemu-override <match> <replacement>\n\t                  replace text in QEMU's command line, in order;\n\t                  `vm config qemu-override` lists the overrides and the\n\t                  command line of a VM of this config before and after\n\t                  them (without the arguments networks, cc and disks add)\n\nContainers (`vm launch container`) also take:\n\n\tfilesystem PATH   the root file system, a directory (required)\n\thostname NAME     empty: the VM's name\n\tinit PATH [ARG]...  PID 1 inside (/init)\n\tpreinit PATH      run as root before the container's own setup\n\tfifos 0           named pipes: <vmdir>/fifoN, /dev/fifos/fifoN inside\n\tvolume DST SRC    bind SRC (host) at DST (inside); `vm config volume`\n\t                  lists them, `clear vm config volume` drops them\n\nSaved configurations (per namespace):\n\n\tvm config save <name>       save the current configuration\n\tvm config restore           list the saved configurations\n\tvm config restore <name>    make a saved one current\n\tvm config clone <vm>        copy a VM's configuration (on any host of\n\t                            the namespace), without its UUID\n\n`clear vm config` resets the configuration but keeps the saved ones.",
            handler: vm_config,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["clear vm config", "clear vm config <field> [key]"],
            short: "reset the VM configuration to defaults",
            long: "Reset one field of `vm config`, or all of them, to the defaults\n(memory 2048, vcpus 1, snapshot true, ...); saved configurations stay.\n`clear vm config tags <key>` removes one tag (`all`: every tag).",
            handler: clear_vm_config,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &["clear vm config"],
        },
    ]
}

fn namespace(c: &Call<'_, Node>) -> String {
    crate::ns::current(c.session).to_string()
}

/// Runs `f` on the namespace's registry entry.
fn with_ns<R>(c: &Call<'_, Node>, f: impl FnOnce(&mut crate::ns::Namespace) -> R) -> R {
    let node = c.ctx;
    let ns = namespace(c);
    node.namespaces
        .with(&ns, || super::scope::initial_hosts(node, &ns), f)
}

fn vm_config(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let vms = &c.ctx.vms;
        let ns = namespace(&c);
        let Some(word) = c.args.string("field") else {
            return Ok(Response::text(vms.config(&ns).describe()).into());
        };
        let values = c.args.list("value").to_vec();
        let field = match resolve(word, true)? {
            Word::Sub(sub) => return subcommand(&c, sub, &values).await,
            Word::Field(f) => f,
        };
        let mut cfg = vms.config(&ns);
        match (field, values.as_slice()) {
            (Field::QemuOverride, []) => return Ok(Response::text(overrides(&c, &cfg)).into()),
            (_, []) => return Ok(Response::text(cfg.show(field)).into()),
            (Field::Tags, [key]) => {
                let v = cfg.tags.get(key).cloned().unwrap_or_default();
                return Ok(Response::text(v).into());
            }
            _ => {}
        }
        cfg.set(field, &values, vms.filepath()).map_err(fail)?;
        if field == Field::Networks {
            super::net::configure(c.ctx, &c.session.origin, &ns, &mut cfg.networks).await?;
        }
        vms.set_config(&ns, cfg);
        Ok(Reply::empty())
    })
}

async fn subcommand(c: &Call<'_, Node>, sub: Sub, values: &[String]) -> CmdResult {
    let vms = &c.ctx.vms;
    let ns = namespace(c);
    match (sub, values) {
        (Sub::Save, [name]) => {
            let cfg = vms.config(&ns);
            with_ns(c, |n| n.saved.insert(name.clone(), cfg));
            Ok(Reply::empty())
        }
        (Sub::Restore, []) => {
            let names: Vec<String> = with_ns(c, |n| n.saved.keys().cloned().collect());
            if names.is_empty() {
                return Err(CommandError::failed("no vm configs saved"));
            }
            Ok(Response::text(names.join("\n")).into())
        }
        (Sub::Restore, [name]) => {
            let Some(cfg) = with_ns(c, |n| n.saved.get(name).cloned()) else {
                return Err(CommandError::failed(format!(
                    "config {name} does not exist"
                )));
            };
            vms.set_config(&ns, cfg);
            Ok(Reply::empty())
        }
        (Sub::Clone, [vm]) => {
            let mut cfg = find_config(c, &ns, vm).await?;
            // Two VMs cannot share a UUID, nor taps or generated MACs.
            cfg.uuid.clear();
            cfg.networks = cfg
                .networks
                .iter()
                .map(crate::vm::nic::Nic::unassigned)
                .collect();
            vms.set_config(&ns, cfg);
            Ok(Reply::empty())
        }
        // The form a head node sends its namespace's hosts: the VM's
        // configuration as data, nothing changed here.
        (Sub::Clone, [vm, json]) if json == "json" => {
            let v = vms.one(&ns, vm)?;
            let cfg = v.lock().config.clone();
            let data = serde_json::to_value(cfg).map_err(fail)?;
            Ok(Response::default().with_data(data).into())
        }
        (Sub::Save, _) => Err(CommandError::Invalid("usage: vm config save <name>".into())),
        (Sub::Restore, _) => Err(CommandError::Invalid(
            "usage: vm config restore [name]".into(),
        )),
        (Sub::Clone, _) => Err(CommandError::Invalid(
            "usage: vm config clone <vm name>".into(),
        )),
    }
}

/// A VM's configuration: from this node, else from the namespace's other
/// hosts (minimega clones a VM of any host of the namespace).
async fn find_config(c: &Call<'_, Node>, ns: &str, vm: &str) -> Result<VmConfig, CommandError> {
    let node = c.ctx;
    let local = node.vms.one(ns, vm);
    let not_found = match local {
        Ok(v) => return Ok(v.lock().config.clone()),
        Err(e) => e,
    };
    if c.session.origin != crate::command::Origin::Local {
        return Err(not_found.into());
    }
    let me = node.hostname().to_string();
    let others: Vec<String> = super::scope::hosts_of(node, c.session)
        .into_iter()
        .filter(|h| *h != me)
        .collect();
    if others.is_empty() {
        return Err(not_found.into());
    }
    let line = format!(
        "namespace {} vm config clone {} json",
        crate::command::lexer::quote_if_needed(ns, false),
        crate::command::lexer::quote_if_needed(vm, false)
    );
    for r in node.mesh.send(&others, &line).await {
        if r.is_error() {
            continue;
        }
        if let Ok(cfg) = serde_json::from_value::<VmConfig>(r.data.clone()) {
            return Ok(cfg);
        }
    }
    Err(not_found.into())
}

/// `vm config qemu-override` alone: the overrides, then the command line a
/// VM of this configuration would get, before and after them.
fn overrides(c: &Call<'_, Node>, cfg: &VmConfig) -> String {
    let vms = &c.ctx.vms;
    let paths = VmPaths::new(vms.base(), 0);
    let line = |cfg: &VmConfig| {
        let a = argv::qemu_argv(&argv::Launch {
            name: "vm-0",
            uuid: "00000000-0000-0000-0000-000000000000",
            paths: &paths,
            accel: vms.accel(),
            config: cfg,
            extra: &[],
        });
        crate::vm::overrides::join(&a[1..])
    };
    let before = VmConfig {
        qemu_override: Vec::new(),
        ..cfg.clone()
    };
    format!(
        "{}\n\nBefore overrides:\n{}\n\nAfter overrides:\n{}",
        cfg.get(Field::QemuOverride),
        line(&before),
        line(cfg)
    )
}

fn clear_vm_config(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let vms = &c.ctx.vms;
        let ns = namespace(&c);
        let Some(word) = c.args.string("field") else {
            vms.set_config(&ns, VmConfig::default());
            return Ok(Reply::empty());
        };
        let Word::Field(field) = resolve(word, false)? else {
            unreachable!("subcommands were left out");
        };
        let mut cfg = vms.config(&ns);
        match (field, c.args.string("key")) {
            (_, None) => cfg.clear(field),
            (Field::Tags, Some("all")) => cfg.tags.clear(),
            (Field::Tags, Some(key)) => {
                cfg.tags.remove(key);
            }
            (_, Some(_)) => {
                return Err(CommandError::Invalid(format!(
                    "clear vm config {} takes no key",
                    field.name()
                )))
            }
        }
        vms.set_config(&ns, cfg);
        Ok(Reply::empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_by_name_alias_and_unique_prefix() {
        assert_eq!(resolve("memory", true).unwrap(), Word::Field(Field::Memory));
        assert_eq!(resolve("mem", true).unwrap(), Word::Field(Field::Memory));
        assert_eq!(resolve("tag", true).unwrap(), Word::Field(Field::Tags));
        assert_eq!(resolve("disk", true).unwrap(), Word::Field(Field::Disks));
        assert_eq!(resolve("dis", true).unwrap(), Word::Field(Field::Disks));
        assert_eq!(resolve("sav", true).unwrap(), Word::Sub(Sub::Save));
        assert_eq!(resolve("qemu", true).unwrap(), Word::Field(Field::Qemu));
        assert_eq!(
            resolve("qemu-o", true).unwrap(),
            Word::Field(Field::QemuOverride)
        );
        // minimega 3.1.0 has the same six `vm config s...` words (its
        // trie refuses `s` as ambiguous too).
        let e = resolve("s", true).unwrap_err().to_string();
        assert!(
            e.contains("could be snapshot, serial-ports, schedule, state, sockets, save"),
            "{e}"
        );
        assert!(resolve("sav", false).is_err(), "clear has no subcommands");
        assert_eq!(resolve("cl", true).unwrap(), Word::Sub(Sub::Clone));
        let e = resolve("co", true).unwrap_err().to_string();
        assert_eq!(
            e,
            "ambiguous vm config field `co`: could be coschedule, colocate, cores"
        );
    }
}
