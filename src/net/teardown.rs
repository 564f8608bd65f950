//! Taking the networks down: `bridge destroy` (a bridge no VM uses),
//! `bridge config` (a setting on the bridge, as `ovs-vsctl set bridge`),
//! and the networks' part of `nuke` (every switch port, tap, tunnel and
//! bridge this daemon made; nothing it did not).

use super::ovs::{txn, Op};
use super::{bridges, failed, hook, Net, NetError};
use std::collections::BTreeSet;
use tracing::{info, warn};

/// Who uses a bridge: what `bridge destroy` refuses to take away.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Users {
    /// `VM:NIC` of VMs of this node.
    pub nics: Vec<String>,
}

impl Net {
    /// `bridge config BR COLUMN[:KEY]=VALUE`: set on the switch's bridge
    /// (made if new), and remembered for the `bridge` listing.
    pub async fn config_bridge(&self, bridge: &str, setting: &str) -> Result<(), NetError> {
        bridges::bridge_name(bridge)?;
        let (column, key, value) = txn::parse_setting(setting).map_err(NetError::Failed)?;
        let name = match &key {
            Some(k) => format!("{column}:{k}"),
            None => column.clone(),
        };
        let shown = match &value {
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        self.apply(vec![Op::SetBridge {
            bridge: bridge.into(),
            column,
            key,
            value,
        }])
        .await
        .map_err(|e| NetError::Failed(format!("set config failed: {e}")))?;
        self.update(|s| {
            s.bridges
                .entry(bridge.into())
                .or_default()
                .config
                .insert(name, shown);
        })
    }

    /// `bridge destroy BR`: removes the bridge with its trunks, tunnels
    /// and host taps, unless a VM's NIC is on it, or a namespace spans it,
    /// or it holds ports this daemon did not make. A bridge the switch
    /// does not have is no error (as in minimega).
    pub async fn destroy_bridge(&self, bridge: &str, users: &Users) -> Result<(), NetError> {
        bridges::bridge_name(bridge)?;
        if !users.nics.is_empty() {
            return failed(format!(
                "bridge {bridge} is in use by {}: kill and flush those VMs, or move their NICs (vm net connect), first",
                users.nics.join(", ")
            ));
        }
        let saved = self.saved();
        let spans: Vec<&String> = saved
            .spans
            .iter()
            .filter(|(_, b)| b.contains_key(bridge))
            .map(|(ns, _)| ns)
            .collect();
        if !spans.is_empty() {
            return failed(format!(
                "bridge {bridge} joins the hosts of namespace {}: run `ns del-bridge {bridge}` there first",
                spans[0]
            ));
        }
        let live = self.switch().bridges().await?;
        let book = saved.bridges.get(bridge).cloned().unwrap_or_default();
        let host_taps: BTreeSet<&String> = saved
            .host_taps
            .iter()
            .filter(|(_, t)| t.bridge == bridge)
            .map(|(n, _)| n)
            .collect();
        let tunnels: BTreeSet<&String> = book.tunnels.iter().map(|t| &t.iface).collect();
        if let Some(state) = live.iter().find(|b| b.name == bridge) {
            let theirs: Vec<&str> = state
                .ports
                .iter()
                .filter(|p| p.name != bridge)
                .filter(|p| !hook::marked_by(&p.owner, self.owner()))
                .filter(|p| {
                    !host_taps.contains(&p.name)
                        && !tunnels.contains(&p.name)
                        && !book.trunks.contains(&p.name)
                })
                .map(|p| p.name.as_str())
                .collect();
            if !theirs.is_empty() {
                return failed(format!(
                    "bridge {bridge} holds ports minimega did not make ({}): remove them first",
                    theirs.join(", ")
                ));
            }
            self.apply(vec![Op::DelBridge(bridge.into())]).await?;
        }
        for t in &tunnels {
            delete_link(t);
            self.unreserve(t);
        }
        for t in &host_taps {
            self.unreserve(t);
        }
        self.update(|s| {
            s.bridges.remove(bridge);
            s.host_taps.retain(|_, t| t.bridge != bridge);
        })
    }

    /// The networks' part of `nuke`, once every VM is gone: removes every
    /// switch port and tap this daemon marked as its VMs', its host taps,
    /// trunks and tunnels, and the bridges it made that hold nothing else
    /// now; a bridge that was there before it, or that holds ports it did
    /// not make, stays. Forgets them all. Returns what it could not do.
    pub async fn nuke(&self) -> Vec<String> {
        let mut errors = Vec::new();
        hook::recover(self, &BTreeSet::new()).await;
        let saved = self.saved();
        let mut ports: Vec<Op> = saved.host_taps.keys().cloned().map(Op::DelPort).collect();
        let mut links = Vec::new();
        for book in saved.bridges.values() {
            ports.extend(book.trunks.iter().cloned().map(Op::DelPort));
            for t in &book.tunnels {
                ports.push(Op::DelPort(t.iface.clone()));
                links.push(t.iface.clone());
            }
        }
        for legs in saved.spans.values().flat_map(|b| b.values()) {
            for l in legs {
                ports.push(Op::DelPort(l.iface.clone()));
                links.push(l.iface.clone());
            }
        }
        if !ports.is_empty() {
            if let Err(e) = self.apply(ports).await {
                errors.push(format!("cannot remove host taps, trunks and tunnels: {e}"));
            }
        }
        for l in &links {
            delete_link(l);
        }
        match self.switch().bridges().await {
            Ok(live) => {
                let mut gone = Vec::new();
                for (name, book) in &saved.bridges {
                    let Some(state) = live.iter().find(|b| &b.name == name) else {
                        continue;
                    };
                    let others: Vec<&str> = state
                        .ports
                        .iter()
                        .filter(|p| &p.name != name)
                        .map(|p| p.name.as_str())
                        .collect();
                    if book.preexisting {
                        continue;
                    }
                    if !others.is_empty() {
                        warn!(
                            "nuke: leaving bridge {name}: it holds ports minimega did not make ({})",
                            others.join(", ")
                        );
                        continue;
                    }
                    info!("nuke: removing bridge {name}");
                    gone.push(Op::DelBridge(name.clone()));
                }
                if !gone.is_empty() {
                    if let Err(e) = self.apply(gone).await {
                        errors.push(format!("cannot remove bridges: {e}"));
                    }
                }
            }
            // No switch: nothing of ours is on it.
            Err(e) if saved.bridges.is_empty() => warn!("nuke: {e}"),
            Err(e) => errors.push(e.to_string()),
        }
        for n in saved
            .host_taps
            .keys()
            .chain(links.iter())
            .cloned()
            .collect::<Vec<_>>()
        {
            self.unreserve(&n);
        }
        let r = self.update(|s| {
            s.bridges.clear();
            s.host_taps.clear();
            s.learned.clear();
            s.spans.clear();
        });
        if let Err(e) = r {
            errors.push(e.to_string());
        }
        errors
    }
}

/// Deletes a kernel device this daemon made; one already gone is fine.
fn delete_link(name: &str) {
    if super::sys::index(name).is_none() {
        return;
    }
    match bridges::nl() {
        Ok(mut n) => {
            if let Err(e) = n.delete(name) {
                warn!("cannot delete {name}: {e}");
            }
        }
        Err(e) => warn!("{e}"),
    }
}
