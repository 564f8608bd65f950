//! `vm net bond` (its patterns are in the `vm net` table) and `clear vm
//! net bond`: see [`crate::net::bonds`].

use super::net::{arg, local_vms, on_hosts};
use crate::command::Reach;
use crate::command::{lexer, BoxFuture, Call, CmdResult, CommandError, Spec};
use crate::node::Node;
use crate::vm::bond::{Bond, MODES};

pub fn specs() -> Vec<Spec<Node>> {
    vec![Spec {
        patterns: &["clear vm net bond <vm target> [name]"],
        short: "remove net bonds from a VM",
        long: "Take a running VM's bonds (or the one named) apart: the bond port goes\nand its NICs are access ports of their VLANs again. See `vm net bond`.",
        handler: clear_bond,
        mesh_ok: true,
        reach: Reach::Here,
        ns_clear: &[],
    }]
}

/// The bond `vm net bond` describes.
fn bond_of(c: &Call<'_, Node>) -> Result<Bond, CommandError> {
    let mut interfaces = Vec::new();
    for i in arg(c, "interface").split(',') {
        let idx = i
            .parse()
            .map_err(|_| CommandError::failed(format!("invalid interface index: {i}")))?;
        interfaces.push(idx);
    }
    let mode = MODES
        .iter()
        .find(|m| c.args.flag(m))
        .copied()
        .unwrap_or("active-backup");
    let lacp = ["active", "passive", "off"]
        .into_iter()
        .find(|l| c.args.flag(l));
    Bond::new(
        interfaces,
        mode,
        lacp,
        !c.args.flag("no-lacp-fallback"),
        c.args.flag("qinq"),
        c.args.string("name").unwrap_or_default(),
    )
    .map_err(|e| CommandError::failed(e.to_string()))
}

pub(super) async fn vm_net_bond(c: &Call<'_, Node>) -> CmdResult {
    let node = c.ctx;
    let bond = bond_of(c)?;
    let mut line = format!(
        "vm net bond {} {} {} {}",
        lexer::quote_if_needed(arg(c, "vm"), false),
        arg(c, "interface"),
        bond.mode,
        bond.lacp
    );
    if !bond.fallback {
        line.push_str(" no-lacp-fallback");
    }
    if !bond.name.is_empty() {
        line.push_str(&format!(" name {}", bond.name));
    }
    if bond.qinq {
        line.push_str(" qinq");
    }
    let local = async {
        for vm in local_vms(c, "vm")? {
            node.net.add_bond(&node.vms, &vm, bond.clone()).await?;
        }
        Ok(())
    };
    on_hosts(c, line, local).await
}

fn clear_bond(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let node = c.ctx;
        let name = c.args.string("name").map(str::to_string);
        let line = format!(
            "clear vm net bond {} {}",
            lexer::quote_if_needed(arg(&c, "vm"), false),
            name.clone().unwrap_or_default()
        );
        let local = async {
            for vm in local_vms(&c, "vm")? {
                node.net
                    .clear_bonds(&node.vms, &vm, name.as_deref())
                    .await?;
            }
            Ok(())
        };
        on_hosts(&c, line.trim_end().to_string(), local).await
    })
}
