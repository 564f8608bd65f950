//! The networks' commands: `vlans`, `tap`, `bridge`, `vm net`, `qos`,
//! `capture`, and their `clear` forms. Handlers parse arguments and call
//! into [`Net`]; VM-targeted ones also run on the other hosts of a
//! namespace that spans the mesh, with VLAN aliases resolved here first.

use crate::command::Reach;
use crate::command::{
    lexer, table, BoxFuture, Call, CmdResult, CommandError, Origin, Reply, Response, Spec,
};
use crate::net::tc::QosRule;
use crate::net::vlans::Alias;
use crate::net::NetError;
use crate::node::Node;
use crate::vm::manager::DEFAULT_NAMESPACE;
use crate::vm::targets;
use crate::vm::Vm;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

impl From<NetError> for CommandError {
    fn from(e: NetError) -> CommandError {
        CommandError::Failed(e.to_string())
    }
}

pub(super) fn namespace(c: &Call<'_, Node>) -> String {
    c.session
        .namespace
        .clone()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
}

pub(super) fn arg<'a>(c: &'a Call<'_, Node>, key: &str) -> &'a str {
    c.args.string(key).unwrap_or_default()
}

pub(super) fn index(s: &str) -> Result<usize, CommandError> {
    s.parse()
        .map_err(|_| CommandError::Failed(format!("invalid interface index `{s}`")))
}

/// Tells the rest of the mesh about aliases allocated here, so every node
/// shows them and none allocates their numbers (minimega does the same).
pub async fn announce(node: &Node, origin: &Origin, created: &[(Alias, u16)]) {
    if *origin != Origin::Local || created.is_empty() {
        return;
    }
    let others = node.mesh.others();
    if others.is_empty() {
        return;
    }
    for (a, v) in created {
        let line = format!(
            "namespace {} vlans add {} {v}",
            lexer::quote_if_needed(&a.namespace, false),
            lexer::quote_if_needed(&a.name, false)
        );
        for r in node
            .mesh
            .send_within(&others, &line, Some(Duration::from_secs(10)))
            .await
        {
            if r.is_error() {
                warn!(
                    "cannot tell {} of VLAN alias {a} ({v}): {}",
                    r.host, r.error
                );
            }
        }
    }
}

/// `vm config net SPEC...` for the handler of `vm config`: resolves the
/// parsed NICs' VLANs here and announces new aliases.
pub async fn configure(
    node: &Node,
    origin: &Origin,
    ns: &str,
    nics: &mut [crate::net::Nic],
) -> Result<(), CommandError> {
    let specs: Vec<String> = nics.iter().map(|n| n.spec()).collect();
    let (resolved, created) = node.net.nics(ns, &specs)?;
    for (n, r) in nics.iter_mut().zip(resolved) {
        n.vlan = r.vlan;
    }
    announce(node, origin, &created).await;
    Ok(())
}

/// The other hosts of the session's namespace, and whether this node is
/// one of its hosts.
fn spread(c: &Call<'_, Node>) -> (Vec<String>, bool) {
    if c.session.origin != Origin::Local {
        return (Vec::new(), true);
    }
    let hosts = super::scope::hosts_of(c.ctx, c.session);
    let me = c.ctx.hostname();
    let remote: Vec<String> = hosts.iter().filter(|h| *h != me).cloned().collect();
    let here = remote.is_empty() || hosts.contains(me);
    (remote, here)
}

/// Runs `local` here (when this node is a host of the namespace) and
/// `line` on the namespace's other hosts; merges the answers, dropping
/// other hosts' "vm not found".
pub(super) async fn on_hosts<F>(c: &Call<'_, Node>, line: String, local: F) -> CmdResult
where
    F: std::future::Future<Output = Result<(), CommandError>>,
{
    let (remote, here) = spread(c);
    if remote.is_empty() {
        local.await?;
        return Ok(Reply::empty());
    }
    let line = format!(
        "namespace {} {line}",
        lexer::quote_if_needed(&namespace(c), false)
    );
    let mine = async {
        if here {
            Some(local.await)
        } else {
            None
        }
    };
    let (mine, theirs) = futures_util::future::join(mine, c.ctx.mesh.send(&remote, &line)).await;
    let mut all: Vec<Response> = Vec::new();
    match mine {
        Some(Ok(())) => all.push(Response {
            host: c.ctx.hostname().to_string(),
            ..Response::default()
        }),
        Some(Err(e)) => all.push(Response::error(c.ctx.hostname(), e.to_string())),
        None => {}
    }
    all.extend(theirs);
    super::scope::drop_not_found(&mut all);
    Ok(all.into())
}

/// The target's VMs on this node; none here is no error when the
/// namespace has other hosts (they answer for theirs).
pub(super) fn local_vms(c: &Call<'_, Node>, key: &str) -> Result<Vec<Arc<Vm>>, CommandError> {
    let t = targets::parse_targets(arg(c, key)).map_err(CommandError::failed)?;
    Ok(c.ctx.vms.resolve(&namespace(c), &t)?)
}

pub fn specs() -> Vec<Spec<Node>> {
    vec![
        Spec {
            patterns: &[
                "vlans",
                "vlans <range,>",
                "vlans <range,> <min> <max>",
                "vlans <add,> <alias> <vlan>",
                "vlans <blacklist,> [vlan]",
            ],
            short: "display allocated VLANs",
            long: "Display the VLAN aliases of the namespace (alias, vlan). Aliases are\nallocated on first use (`vm config net DMZ`) from 101-4095, or from the\nnamespace's range, and never get a VLAN someone typed as a number (those\nare blacklisted). `NS//ALIAS` names another namespace's alias.\n\n\tvlans range                 show the range (min, max, next)\n\tvlans range MIN MAX         aliases of this namespace come from [MIN, MAX)\n\t                            (in the default namespace: the default range)\n\tvlans add ALIAS VLAN        pin an alias to a VLAN\n\tvlans blacklist [VLAN]      show, or reserve, VLANs no alias gets\n\nAllocations are saved under the base directory and survive a restart; a\nnew alias is announced to every node of the mesh.",
            handler: vlans,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["clear vlans", "clear vlans <prefix>"],
            short: "clear allocated VLANs",
            long: "Forget the namespace's VLAN aliases (those starting with PREFIX, when\ngiven) and, without a prefix, its range. `clear vlans all` forgets every\nnamespace's aliases, ranges and the blacklist. Kill the VMs on the VLANs\nfirst.",
            handler: clear_vlans,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &["clear vlans"],
        },
        Spec {
            patterns: &[
                "tap",
                "tap <create,> <vlan>",
                "tap <create,> <vlan> name <tap name>",
                "tap <create,> <vlan> <dhcp,> [tap name]",
                "tap <create,> <vlan> ip <ip> [tap name]",
                "tap <create,> <vlan> bridge <bridge>",
                "tap <create,> <vlan> bridge <bridge> name <tap name>",
                "tap <create,> <vlan> bridge <bridge> <dhcp,> [tap name]",
                "tap <create,> <vlan> bridge <bridge> ip <ip> [tap name]",
                "tap <delete,> <tap name or all>",
            ],
            short: "control host taps for communicating between hosts and VMs",
            long: "A host tap is an interface of this host on a VLAN (an internal port of\nthe bridge), to reach the VMs on it:\n\n\ttap create 5 ip 10.0.0.1/24\n\ttap create DMZ bridge br0 dhcp\n\ttap create 5 name mytap\n\n`tap` lists the namespace's host taps (bridge, tap, vlan); `tap delete\nNAME` or `tap delete all` removes them. Names default to mega_tapN.",
            handler: tap,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["clear tap"],
            short: "delete the namespace's host taps",
            long: "Delete every host tap of the namespace (`tap delete all`) and its tap\nmirrors (`clear tap mirror`).",
            handler: clear_tap,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &["clear tap"],
        },
        Spec {
            patterns: &[
                "bridge",
                "bridge <trunk,> <bridge> <interface>",
                "bridge <notrunk,> <bridge> <interface>",
                "bridge <tunnel,> <vxlan,gre> <bridge> <remote ip> [key]",
                "bridge <notunnel,> <bridge> <interface>",
                "bridge <config,> <bridge> <config>",
                "bridge <destroy,> <bridge>",
            ],
            short: "display information and modify virtual bridges",
            long: "List the Open vSwitch bridges this node uses: bridge, preexisting\n(there before minimega used it), vlans, trunks, tunnels, bonds (`NAME\n(TAP TAP)`), config (what `bridge config` set, as JSON) and datapath\n(kernel, or userspace where the openvswitch module is not loaded).\nBridges are made on first use.\n\n\tbridge trunk BR IFACE        IFACE carries every VLAN of BR (tagged), e.g.\n\t                             a NIC on the switch joining the compute nodes\n\tbridge notrunk BR IFACE\n\tbridge tunnel vxlan BR IP [KEY]   a VXLAN (or gre) tunnel to the same\n\t                             bridge on the node at IP, carrying every VLAN\n\tbridge notunnel BR IFACE\n\tbridge config BR COLUMN[:KEY]=VALUE   set a column (or one key of a\n\t                             map column) of the switch's bridge, as\n\t                             `ovs-vsctl set bridge BR ...` does, e.g.\n\t                             other_config:mac-aging-time=30 or\n\t                             stp_enable=true; shown in `config`\n\tbridge destroy BR            remove the bridge with its trunks, tunnels\n\t                             and host taps; refused while a VM's NIC is\n\t                             on it, a namespace spans it (ns bridge), or\n\t                             it holds ports minimega did not make; a\n\t                             bridge that is not there is no error\n\nTunnels are kernel devices on the bridge; GRE needs the kernel's ip_gre\nmodule. Not namespace aware.",
            handler: bridge,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &[
                "vm net <add,> <vm target> <netspec>...",
                "vm net <connect,> <vm target> <tap position> <vlan> [bridge]",
                "vm net <disconnect,> <vm target> <tap position>",
                "vm net <bond,> <vm target> <interface indexes> <active-backup,balance-slb,balance-tcp> <active,passive,off> [qinq,]",
                "vm net <bond,> <vm target> <interface indexes> <active-backup,balance-slb,balance-tcp> <active,passive,off> name <name> [qinq,]",
                "vm net <bond,> <vm target> <interface indexes> <active-backup,balance-slb,balance-tcp> <active,passive> <no-lacp-fallback,> [qinq,]",
                "vm net <bond,> <vm target> <interface indexes> <active-backup,balance-slb,balance-tcp> <active,passive> <no-lacp-fallback,> name <name> [qinq,]",
            ],
            short: "add, disconnect, or move network connections",
            long: "Change running VMs' NICs, numbered from 0 as in `vm info`:\n\n\tvm net add vm-0 100,00:11:22:33:44:55    hot-plug a NIC (a netspec)\n\tvm net connect vm-0 0 DMZ [bridge]        move NIC 0 to another VLAN\n\t                                          (or bridge)\n\tvm net disconnect vm-0 0                  take NIC 0 off its bridge\n\tvm net bond vm-0 1,2 active-backup active  bond NICs 1 and 2 (see below)\n\nA bond makes two or more NICs of a running VM one Open vSwitch bond port\n(`ovs-vsctl add-bond`), on the bridge and VLAN of its first NIC: the mode\nis active-backup, balance-slb or balance-tcp (which needs LACP active or\npassive); LACP is active, passive or off; no-lacp-fallback disables the\nbond when LACP negotiation fails instead of falling back to\nactive-backup; qinq makes it a dot1q-tunnel port; `name NAME` names it\n(else mega_bondN). `vm info` shows it in the bond column as\n`NAME (TAP TAP)`; `clear vm net bond VM [NAME]` takes it apart again;\n`vm config bonds` bonds NICs at launch.\n\nIn a namespace spanning several hosts, each host changes its own VMs.",
            handler: vm_net,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &[
                "qos <add,> <vm target> <interface> <loss,> <percent>",
                "qos <add,> <vm target> <interface> <delay,> <duration>",
                "qos <add,> <vm target> <interface> <rate,> <bw> <kbit,mbit,gbit>",
            ],
            short: "add qos constraints to an interface",
            long: "Shape what a VM's NIC receives (the tap's egress) with tc:\n\n\tqos add foo 0 loss 25          drop 25% of packets (netem)\n\tqos add foo,bar 0 delay 100ms  delay each packet (netem)\n\tqos add all 0 rate 1 mbit      at most 1 Mbit/s (tbf)\n\nLoss and delay stack; a rate replaces them and they replace a rate. A\nkernel without the qdisc is an error naming it. `vm info` shows qos;\n`clear qos` removes it.",
            handler: qos,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["clear qos", "clear qos <vm target> [tap index]"],
            short: "clear qos constraints on an interface",
            long: "Remove qos from every NIC of the namespace's VMs, from the NICs of the\ntarget VMs, or from one NIC (`clear qos foo 0`; `all` for every NIC).",
            handler: clear_qos,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
    ]
}

fn vlans(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c);
        let net = &c.ctx.net;
        let default = ns == DEFAULT_NAMESPACE;
        let num = |k: &str| -> Result<u16, CommandError> {
            arg(&c, k).parse().map_err(|_| {
                CommandError::Failed(format!("expected an integer VLAN, not `{}`", arg(&c, k)))
            })
        };
        if c.args.flag("range") {
            let range_ns = (!default).then_some(ns.as_str());
            if c.args.string("min").is_some() {
                let (min, max) = (num("min")?, num("max")?);
                net.update(|s| s.vlans.set_range(range_ns, min, max))?
                    .map_err(NetError::from)?;
                return Ok(Reply::empty());
            }
            let r = net.saved().vlans.range(range_ns);
            let row = vec![r.min.to_string(), r.max.to_string(), r.next.to_string()];
            return Ok(table(["min", "max", "next"], [row]).into());
        }
        if c.args.flag("add") {
            let (alias, vlan) = (arg(&c, "alias"), arg(&c, "vlan"));
            let number = num("vlan")?;
            crate::vm::nic::VlanRef::parse(alias)
                .ok()
                .filter(|v| matches!(v, crate::vm::nic::VlanRef::Alias(_)))
                .ok_or_else(|| CommandError::Failed(format!("invalid alias `{alias}`")))?;
            let new = net
                .update(|s| s.vlans.add(&ns, alias, vlan))?
                .map_err(NetError::from)?;
            if new {
                let a = Alias::parse(&ns, alias);
                announce(c.ctx, &c.session.origin, &[(a, number)]).await;
            }
            return Ok(Reply::empty());
        }
        if c.args.flag("blacklist") {
            if c.args.string("vlan").is_some() {
                let v = num("vlan")?;
                if !(1..=4095).contains(&v) {
                    return Err(CommandError::Failed(format!(
                        "invalid VLAN `{v}`: must be 1 to 4095"
                    )));
                }
                net.update(|s| s.vlans.blacklist(v))?;
                return Ok(Reply::empty());
            }
            let rows = net
                .saved()
                .vlans
                .blacklisted()
                .into_iter()
                .map(|v| vec![v.to_string()]);
            return Ok(table(["vlan"], rows).listed().into());
        }
        Ok(table(["alias", "vlan"], net.saved().vlans.rows(&ns))
            .listed()
            .into())
    })
}

fn clear_vlans(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c);
        match c.args.string("prefix") {
            Some("all") => c.ctx.net.update(|s| s.vlans.reset())?,
            p => {
                let default = ns == DEFAULT_NAMESPACE;
                c.ctx
                    .net
                    .update(|s| s.vlans.clear(&ns, p.unwrap_or(""), default))?;
            }
        }
        Ok(Reply::empty())
    })
}

fn tap(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c);
        let net = &c.ctx.net;
        if c.args.flag("create") {
            let (vlan, created) = net.vlan(&ns, arg(&c, "vlan"))?;
            let created: Vec<(Alias, u16)> = created.into_iter().map(|a| (a, vlan)).collect();
            announce(c.ctx, &c.session.origin, &created).await;
            let bridge = c
                .args
                .string("bridge")
                .unwrap_or(crate::vm::nic::DEFAULT_BRIDGE);
            let name = net
                .create_host_tap(
                    &ns,
                    vlan,
                    bridge,
                    c.args.string("tap"),
                    c.args.string("ip"),
                    c.args.flag("dhcp"),
                )
                .await?;
            return Ok(Response::text(name).into());
        }
        if c.args.flag("delete") {
            net.delete_host_taps(&ns, arg(&c, "tap")).await?;
            return Ok(Reply::empty());
        }
        Ok(table(["bridge", "tap", "vlan"], net.host_tap_rows(&ns))
            .listed()
            .into())
    })
}

fn clear_tap(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        c.ctx.net.delete_host_taps(&namespace(&c), "all").await?;
        // As minimega: `clear tap` takes the namespace's mirrors too.
        c.ctx.net.del_tap_mirrors(&namespace(&c), None).await?;
        Ok(Reply::empty())
    })
}

fn bridge(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let net = &c.ctx.net;
        let (br, iface) = (arg(&c, "bridge"), arg(&c, "interface"));
        if c.args.flag("trunk") {
            net.add_trunk(br, iface).await?;
        } else if c.args.flag("notrunk") {
            net.remove_trunk(br, iface).await?;
        } else if c.args.flag("tunnel") {
            let kind = if c.args.flag("gre") { "gre" } else { "vxlan" };
            let name = net
                .add_tunnel(kind, br, arg(&c, "remote"), c.args.string("key"))
                .await?;
            return Ok(Response::text(name).into());
        } else if c.args.flag("notunnel") {
            net.remove_tunnel(br, iface).await?;
        } else if c.args.flag("config") {
            net.config_bridge(br, arg(&c, "config")).await?;
        } else if c.args.flag("destroy") {
            let users = bridge_users(c.ctx, br);
            net.destroy_bridge(br, &users).await?;
        } else {
            let header = [
                "bridge",
                "preexisting",
                "vlans",
                "trunks",
                "tunnels",
                "bonds",
                "config",
                "datapath",
            ];
            return Ok(table(header, net.bridge_rows(&namespace(&c)).await?)
                .listed()
                .into());
        }
        Ok(Reply::empty())
    })
}

/// The NICs of this node's VMs on `bridge`, as `VM:INDEX`.
fn bridge_users(node: &Node, bridge: &str) -> crate::net::teardown::Users {
    let mut nics = Vec::new();
    for vm in node.vms.all() {
        let st = vm.lock();
        for (i, n) in st.config.networks.iter().enumerate() {
            if n.bridge == bridge {
                nics.push(format!("{}:{i}", vm.name));
            }
        }
    }
    crate::net::teardown::Users { nics }
}

/// `ns bridge BR [vxlan|gre]` and `ns del-bridge BR` (patterns in the
/// `ns` table): see [`crate::net::span`].
pub async fn ns_bridge(c: &Call<'_, Node>) -> CmdResult {
    let (ns, br) = (namespace(c), arg(c, "bridge"));
    if c.args.flag("del-bridge") {
        super::net_span::delete(c.ctx, &ns, br).await?;
    } else {
        let hosts = super::scope::hosts_of(c.ctx, c.session);
        let kind = if c.args.flag("vxlan") { "vxlan" } else { "gre" };
        super::net_span::create(c.ctx, &ns, &hosts, br, kind).await?;
    }
    Ok(Reply::empty())
}

fn vm_net(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c);
        let node = c.ctx;
        let target = arg(&c, "vm").to_string();
        if c.args.flag("bond") {
            return super::net_bond::vm_net_bond(&c).await;
        }
        if c.args.flag("add") {
            let (nics, created) = node.net.nics(&ns, c.args.list("netspec"))?;
            announce(node, &c.session.origin, &created).await;
            // Other hosts get the specs with the VLANs resolved here.
            let specs: Vec<String> = nics
                .iter()
                .map(|n| {
                    let mut m = n.clone();
                    m.alias = n.vlan.to_string();
                    lexer::quote_if_needed(&m.spec(), false)
                })
                .collect();
            let line = format!(
                "vm net add {} {}",
                lexer::quote_if_needed(&target, false),
                specs.join(" ")
            );
            let local = async {
                for vm in local_vms(&c, "vm")? {
                    node.net.add_nics(&node.vms, &vm, nics.clone()).await?;
                }
                Ok(())
            };
            return on_hosts(&c, line, local).await;
        }
        let pos = index(arg(&c, "tap"))?;
        if c.args.flag("connect") {
            let text = arg(&c, "vlan").to_string();
            let (vlan, created) = node.net.vlan(&ns, &text)?;
            let created: Vec<(Alias, u16)> = created.into_iter().map(|a| (a, vlan)).collect();
            announce(node, &c.session.origin, &created).await;
            let bridge = c.args.string("bridge").map(str::to_string);
            let line = format!(
                "vm net connect {} {pos} {vlan} {}",
                lexer::quote_if_needed(&target, false),
                bridge.clone().unwrap_or_default()
            );
            let local = async {
                for vm in local_vms(&c, "vm")? {
                    node.net
                        .connect(&node.vms, &vm, pos, (vlan, text.clone()), bridge.as_deref())
                        .await?;
                }
                Ok(())
            };
            return on_hosts(&c, line.trim_end().to_string(), local).await;
        }
        let line = format!(
            "vm net disconnect {} {pos}",
            lexer::quote_if_needed(&target, false)
        );
        let local = async {
            for vm in local_vms(&c, "vm")? {
                node.net.disconnect(&node.vms, &vm, pos).await?;
            }
            Ok(())
        };
        on_hosts(&c, line, local).await
    })
}

fn qos(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let node = c.ctx;
        let rule = if c.args.flag("loss") {
            QosRule::loss(arg(&c, "percent"))
        } else if c.args.flag("delay") {
            QosRule::delay(arg(&c, "duration"))
        } else {
            let unit = ["kbit", "mbit", "gbit"]
                .into_iter()
                .find(|u| c.args.flag(u))
                .unwrap_or("kbit");
            QosRule::rate(arg(&c, "bw"), unit)
        }
        .map_err(NetError::from)?;
        let pos = index(arg(&c, "interface"))?;
        let local = async {
            for vm in local_vms(&c, "vm")? {
                node.net.add_qos(&node.vms, &vm, pos, &rule).await?;
            }
            Ok(())
        };
        let line = c.line.clone();
        on_hosts(&c, line, local).await
    })
}

fn clear_qos(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let node = c.ctx;
        let which = match c.args.string("tap") {
            None | Some("all") => None,
            Some(i) => Some(index(i)?),
        };
        let local = async {
            let vms = match c.args.string("vm") {
                Some(_) => local_vms(&c, "vm")?,
                None => node.vms.in_namespace(&namespace(&c)),
            };
            for vm in vms {
                node.net.clear_qos(&node.vms, &vm, which).await?;
            }
            Ok(())
        };
        let line = c.line.clone();
        on_hosts(&c, line, local).await
    })
}

/// `host` columns rx, tx (MB/s the guests received and sent) and
/// netcommit (NICs of the VMs that have a QEMU).
pub fn host_cells(node: &Node) -> [String; 3] {
    let (rx, tx) = node.net.rates();
    let nics: usize = node
        .vms
        .all()
        .iter()
        .map(|v| {
            let s = v.lock();
            if s.state.is_live() {
                s.config.networks.len()
            } else {
                0
            }
        })
        .sum();
    [format!("{rx:.1}"), format!("{tx:.1}"), nics.to_string()]
}
