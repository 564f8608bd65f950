//! `tap mirror` and `clear tap mirror`, minimega's forms by tap and by VM
//! interface (see `net::mirror`).

use crate::command::Reach;
use crate::command::{BoxFuture, Call, CmdResult, CommandError, Reply, Spec};
use crate::node::Node;
use crate::vm::manager::DEFAULT_NAMESPACE;

pub fn specs() -> Vec<Spec<Node>> {
    vec![
        Spec {
            patterns: &[
                "tap <mirror,> <src name> <dst name> [bridge]",
                "tap <mirror,> <vm name> <interface index> <vm2 name> <interface2 index>",
            ],
            short: "mirror one tap's traffic to another",
            long: "Mirror what passes a tap (both directions) to another tap of the same\nbridge (default mega_bridge), as minimega does with an Open vSwitch\nmirror named after its destination:\n\n\ttap mirror mega_tap0 mega_tap3\n\ttap mirror web 0 ids 0      VM web's NIC 0 into VM ids's NIC 0\n\nThe VMs of the second form must be on this node, their NICs on one\nbridge. A tap is the destination of one mirror at most. `clear tap\nmirror` removes them.",
            handler: tap_mirror,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &["clear tap mirror"],
        },
        Spec {
            patterns: &[
                "clear tap <mirror,> [name]",
                "clear tap <mirror,> <vm name> <interface index or all>",
            ],
            short: "remove tap mirrors",
            long: "Remove a mirror of the namespace by its destination tap, or all of them:\n\n\tclear tap mirror mega_tap3\n\tclear tap mirror ids 0      the mirror into VM ids's NIC 0\n\tclear tap mirror ids all    every mirror into VM ids\n\tclear tap mirror            all",
            handler: clear_tap_mirror,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
    ]
}

fn namespace(c: &Call<'_, Node>) -> String {
    c.session
        .namespace
        .clone()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
}

fn arg<'a>(c: &'a Call<'_, Node>, k: &str) -> &'a str {
    c.args.string(k).unwrap_or_default()
}

/// A VM's NIC: its tap and bridge, in minimega's words when there is none.
fn nic(c: &Call<'_, Node>, vm: &str, index: &str) -> Result<(String, String), CommandError> {
    let ns = namespace(c);
    let i: usize = index
        .parse()
        .map_err(|_| CommandError::Failed(format!("invalid interface number: `{index}`")))?;
    let v = c.ctx.vms.one(&ns, vm)?;
    let n = v
        .lock()
        .config
        .networks
        .get(i)
        .cloned()
        .ok_or_else(|| CommandError::Failed(format!("no such interface {i} for {vm}")))?;
    Ok((n.tap, n.bridge))
}

fn tap_mirror(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c);
        let net = &c.ctx.net;
        if let Some(vm2) = c.args.string("vm2") {
            let a = nic(&c, arg(&c, "vm"), arg(&c, "interface"));
            let b = nic(&c, vm2, arg(&c, "interface2"));
            // minimega's words when one VM is not here.
            let gone = |e: &CommandError| e.to_string().starts_with("vm not found");
            let ((src, br1), (dst, br2)) = match (a, b) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), Ok(_)) if gone(&e) => {
                    return Err(CommandError::Failed(format!(
                        "vms are not colocated or invalid vm name: {}",
                        arg(&c, "vm")
                    )))
                }
                (Ok(_), Err(e)) if gone(&e) => {
                    return Err(CommandError::Failed(format!(
                        "vms are not colocated or invalid vm name: {vm2}"
                    )))
                }
                (Err(e), _) | (_, Err(e)) => return Err(e),
            };
            if br1 != br2 {
                return Err(CommandError::Failed(format!(
                    "interfaces on different bridges: {br1} and {br2}"
                )));
            }
            net.add_tap_mirror(&ns, &br1, &src, &dst).await?;
            return Ok(Reply::empty());
        }
        let bridge = c
            .args
            .string("bridge")
            .unwrap_or(crate::vm::nic::DEFAULT_BRIDGE);
        net.add_tap_mirror(&ns, bridge, arg(&c, "src"), arg(&c, "dst"))
            .await?;
        Ok(Reply::empty())
    })
}

fn clear_tap_mirror(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c);
        let net = &c.ctx.net;
        let Some(vm) = c.args.string("vm") else {
            net.del_tap_mirrors(&ns, c.args.string("name")).await?;
            return Ok(Reply::empty());
        };
        let which = arg(&c, "interface");
        if which == "all" {
            let v = c.ctx.vms.one(&ns, vm)?;
            let taps: Vec<String> = v
                .lock()
                .config
                .networks
                .iter()
                .map(|n| n.tap.clone())
                .collect();
            for t in taps.iter().filter(|t| net.is_mirror(&ns, t)) {
                net.del_tap_mirrors(&ns, Some(t)).await?;
            }
            return Ok(Reply::empty());
        }
        let (tap, _) = nic(&c, vm, which)?;
        net.del_tap_mirrors(&ns, Some(&tap)).await?;
        Ok(Reply::empty())
    })
}
