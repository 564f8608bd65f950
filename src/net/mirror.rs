//! `tap mirror`: what passes one port of a bridge also goes out of
//! another (a VM's NIC into another VM, or a host tap running a sensor),
//! as minimega makes it with an Open vSwitch mirror named after its
//! destination. Mirrors belong to the namespace that made them.

use super::ovs::Op;
use super::{lock, Net, NetError};

/// A mirror this node made: its destination port, bridge and namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub namespace: String,
    pub bridge: String,
    pub src: String,
    pub dst: String,
}

impl Net {
    /// `tap mirror SRC DST [BRIDGE]`: both ports must be on the bridge.
    pub async fn add_tap_mirror(
        &self,
        ns: &str,
        bridge: &str,
        src: &str,
        dst: &str,
    ) -> Result<(), NetError> {
        if src == dst {
            return super::failed("cannot mirror tap to itself");
        }
        let states = self.switch().bridges().await.map_err(NetError::from)?;
        let on = |t: &str| {
            states
                .iter()
                .any(|b| b.name == bridge && b.ports.iter().any(|p| p.name == t))
        };
        if !on(src) {
            return super::failed("source tap is not on bridge");
        }
        if !on(dst) {
            return super::failed("destination tap is not on bridge");
        }
        {
            let mut all = lock(&self.live.mirrors);
            if all.iter().any(|m| m.dst == dst) {
                return super::failed("destination tap is already a mirror");
            }
            all.push(Mirror {
                namespace: ns.into(),
                bridge: bridge.into(),
                src: src.into(),
                dst: dst.into(),
            });
        }
        let r = self
            .apply(vec![Op::AddPortMirror {
                bridge: bridge.into(),
                src: Some(src.into()),
                dst: dst.into(),
            }])
            .await;
        if r.is_err() {
            lock(&self.live.mirrors).retain(|m| m.dst != dst);
        }
        r
    }

    /// `clear tap mirror [NAME]`: one mirror of the namespace by its
    /// destination, or all of them (`all` or none named).
    pub async fn del_tap_mirrors(&self, ns: &str, name: Option<&str>) -> Result<(), NetError> {
        let gone: Vec<Mirror> = {
            let mut all = lock(&self.live.mirrors);
            let (gone, keep): (Vec<Mirror>, Vec<Mirror>) = std::mem::take(&mut *all)
                .into_iter()
                .partition(|m| m.namespace == ns && name.is_none_or(|n| n == "all" || m.dst == n));
            *all = keep;
            gone
        };
        if gone.is_empty() && name.is_some_and(|n| n != "all") {
            return super::failed("not a valid mirror");
        }
        let ops: Vec<Op> = gone
            .iter()
            .map(|m| Op::DelMirrorOnly {
                name: m.dst.clone(),
            })
            .collect();
        if ops.is_empty() {
            return Ok(());
        }
        self.apply(ops).await
    }

    /// Whether `dst` is the destination of a mirror of the namespace.
    pub fn is_mirror(&self, ns: &str, dst: &str) -> bool {
        lock(&self.live.mirrors)
            .iter()
            .any(|m| m.namespace == ns && m.dst == dst)
    }
}
