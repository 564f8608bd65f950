//! Experiment networks: each NIC of a VM is a tap on an Open vSwitch bridge,
//! an access port of its VLAN; VLANs are numbers or per-namespace aliases;
//! bridges span nodes by trunks or tunnels. minimega's commands (`vm config
//! net`, `vlans`, `tap`, `bridge`, `vm net`, `qos`, `capture`) and `vm info`
//! columns.
//!
//! Pure: [`spec`] (netspecs), [`vlans`] (allocation), [`qemu`] (QEMU's NIC
//! arguments, MACs), [`ovs::txn`] (the switch's transactions), [`tc`] (qos
//! argv), [`snoop`] (addresses from ARP/NDP), [`pcap`].
//! Edges, each behind something small: [`ovs`] (the [`ovs::Switch`] trait,
//! OVSDB over its socket), [`sys`] (tun ioctls, rtnetlink, AF_PACKET),
//! [`batch`] (one switch transaction for concurrent callers).
//! The VM side is [`hook`] (a [`crate::vm::hooks::VmHook`]); live state
//! (snooping, rates, captures) is [`live`]; the commands are [`commands`].
//!
//! VLAN aliases are allocated on the node where the command naming them
//! runs (`vm config net` on the head node, as in minimega), saved under the
//! base directory, announced to the mesh (`vlans add`), and carried as
//! numbers in the configuration a head ships with a launch, which the
//! receiving node learns; so a namespace's alias means one VLAN everywhere.

pub mod batch;
pub mod bonds;
pub mod bpf;
pub mod bridges;
pub mod capture;
pub mod flows;
pub mod hook;
pub mod live;
pub mod mirror;
pub mod netflow;
pub mod ovs;
pub mod pcap;
pub mod qemu;
pub mod snoop;
pub mod span;
pub mod sys;
pub mod tc;
pub mod teardown;
pub mod vlans;
pub mod vmnet;

pub use crate::vm::nic::Nic;

use crate::vm::nic::{Mac, NetSpec};
use batch::Batcher;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use thiserror::Error;
use tracing::warn;
use vlans::{Alias, Vlans};

#[derive(Debug, Error)]
pub enum NetError {
    #[error(transparent)]
    Spec(#[from] crate::vm::nic::SpecError),
    #[error(transparent)]
    Vlan(#[from] vlans::VlanError),
    #[error(transparent)]
    Switch(#[from] ovs::SwitchError),
    #[error(transparent)]
    Qos(#[from] tc::QosError),
    #[error("{0}")]
    Failed(String),
    /// networks.json could not be written; the change is not made.
    #[error(transparent)]
    Save(#[from] crate::durable::SaveError),
}

/// An alias a command allocated, and its VLAN (to announce).
pub type Allocated = (Alias, u16);

pub fn failed<T>(msg: impl Into<String>) -> Result<T, NetError> {
    Err(NetError::Failed(msg.into()))
}

/// What this node keeps about its trunks and tunnels of one bridge.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BridgeBook {
    /// The bridge existed before this daemon first used it.
    pub preexisting: bool,
    pub trunks: Vec<String>,
    pub tunnels: Vec<TunnelBook>,
    /// What `bridge config` set, `COLUMN[:KEY]` -> VALUE.
    pub config: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelBook {
    pub iface: String,
    /// vxlan or gre.
    pub kind: String,
    pub remote: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostTap {
    pub namespace: String,
    pub bridge: String,
    pub vlan: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Learned {
    pub ip4: String,
    pub ip6: String,
}

/// Everything kept across restarts, in `<base>/networks.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Saved {
    pub vlans: Vlans,
    pub bridges: BTreeMap<String, BridgeBook>,
    pub host_taps: BTreeMap<String, HostTap>,
    /// Addresses learned per tap.
    pub learned: BTreeMap<String, Learned>,
    /// Namespace -> bridge -> the tunnels `ns bridge` made for it.
    pub spans: BTreeMap<String, BTreeMap<String, Vec<span::Leg>>>,
}

pub struct Net {
    file: PathBuf,
    /// Marks this daemon's VM taps and switch ports (see `base::tag`).
    owner: String,
    saved: Mutex<Saved>,
    batch: Batcher,
    /// Device names this daemon uses (VM taps, host taps, tunnels, capture
    /// taps), so two never get one name.
    reserved: Mutex<BTreeSet<String>>,
    /// MACs of this node's VMs.
    macs: Mutex<HashSet<Mac>>,
    pub live: live::Live,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Net {
    /// The networks of the node whose base directory is `base`, with the
    /// node's switch.
    pub fn new(base: &Path) -> Arc<Net> {
        Net::with_switch(base, ovs::open())
    }

    pub fn with_switch(base: &Path, switch: Arc<dyn ovs::Switch>) -> Arc<Net> {
        let file = base.join("networks.json");
        let saved = match std::fs::read(&file) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                warn!("{}: {e}; starting with no VLAN aliases", file.display());
                Saved::default()
            }),
            Err(_) => Saved::default(),
        };
        let reserved = saved.host_taps.keys().cloned().collect();
        Arc::new(Net {
            file,
            owner: crate::base::tag(base),
            saved: Mutex::new(saved),
            batch: Batcher::new(switch),
            reserved: Mutex::new(reserved),
            macs: Mutex::new(HashSet::new()),
            live: live::Live::default(),
        })
    }

    pub fn hook(self: &Arc<Self>) -> Arc<dyn crate::vm::hooks::VmHook> {
        Arc::new(hook::NetHook(self.clone()))
    }

    pub fn switch(&self) -> &Arc<dyn ovs::Switch> {
        self.batch.switch()
    }

    /// Reads the saved state.
    pub fn saved(&self) -> Saved {
        lock(&self.saved).clone()
    }

    /// Changes the saved state and writes it, durably. When it cannot be
    /// written the change is not made (the state is as before) and the
    /// error says why: the caller undoes what it did for it.
    pub fn update<R>(&self, f: impl FnOnce(&mut Saved) -> R) -> Result<R, NetError> {
        let mut s = lock(&self.saved);
        let before = s.clone();
        let r = f(&mut s);
        if *s != before {
            if let Some(dir) = self.file.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            if let Err(e) = crate::durable::write_json(&self.file, &*s, "networks.json") {
                *s = before;
                return Err(e.into());
            }
        }
        Ok(r)
    }

    /// [`Net::update`] where no command waits (what snooping learned): a
    /// failure is logged.
    pub fn update_logged(&self, f: impl FnOnce(&mut Saved)) {
        if let Err(e) = self.update(f) {
            warn!("{e}");
        }
    }

    /// The owner mark of a VM's taps and switch ports: this daemon's tag
    /// and the VM's id.
    pub fn owner_of(&self, vm: u64) -> String {
        format!("{}/{vm}", self.owner)
    }

    /// The part of every owner mark that says "this daemon".
    pub fn owner(&self) -> &str {
        &self.owner
    }

    // ---- VLANs ----

    /// `-vlanrange`: the default range, as the daemon starts. A range the
    /// saved state already has keeps its allocation point.
    pub fn set_default_range(&self, (min, max): (u16, u16)) {
        self.update_logged(|s| {
            let r = s.vlans.range(None);
            if (r.min, r.max) != (min, max) {
                if let Err(e) = s.vlans.set_range(None, min, max) {
                    warn!("-vlanrange {min}-{max}: {e}");
                }
            }
        });
    }

    /// Parses netspecs and resolves their VLANs in namespace `ns`, all or
    /// nothing. Returns the NICs and the aliases it allocated.
    pub fn nics(&self, ns: &str, specs: &[String]) -> Result<(Vec<Nic>, Vec<Allocated>), NetError> {
        let parsed: Vec<NetSpec> = specs
            .iter()
            .map(|s| NetSpec::parse(s))
            .collect::<Result<_, _>>()?;
        self.update(|s| {
            let mut v = s.vlans.clone();
            let mut nics = Vec::new();
            let mut created = Vec::new();
            for p in &parsed {
                let r = v.resolve(ns, &p.vlan_text)?;
                if let Some(a) = r.created {
                    created.push((a, r.vlan));
                }
                nics.push(Nic::new(p, r.vlan));
            }
            s.vlans = v;
            Ok((nics, created))
        })?
    }

    /// One VLAN by number or alias, allocated if new.
    pub fn vlan(&self, ns: &str, text: &str) -> Result<(u16, Option<Alias>), NetError> {
        crate::vm::nic::VlanRef::parse(text)
            .map_err(|why| NetError::Failed(format!("invalid VLAN `{text}`: {why}")))?;
        let r = self.update(|s| s.vlans.resolve(ns, text))??;
        Ok((r.vlan, r.created))
    }

    /// The `namespace` listing's vlans cell: the namespace's own range.
    pub fn range_cell(&self, ns: &str) -> String {
        lock(&self.saved)
            .vlans
            .own_range(ns)
            .map(|r| format!("{}-{}", r.min, r.max))
            .unwrap_or_default()
    }

    pub fn print_vlan(&self, ns: &str, vlan: u16) -> String {
        lock(&self.saved).vlans.print(ns, vlan)
    }

    /// Records the allocations a configuration from another node carries.
    pub fn learn(&self, ns: &str, nics: &[Nic]) -> Result<(), NetError> {
        self.update(|s| {
            for n in nics {
                s.vlans.learn(ns, &n.alias, n.vlan);
            }
        })
    }

    // ---- names ----

    /// A free device name `prefixN` (lowest N), reserved.
    pub fn reserve_name(&self, prefix: &str) -> String {
        let mut r = lock(&self.reserved);
        let name = (0u32..)
            .map(|i| format!("{prefix}{i}"))
            .find(|n| !r.contains(n) && sys::index(n).is_none())
            .unwrap_or_default();
        r.insert(name.clone());
        name
    }

    /// Reserves a given name; false if this daemon uses it already.
    pub fn claim(&self, name: &str) -> bool {
        lock(&self.reserved).insert(name.to_string())
    }

    pub fn unreserve(&self, name: &str) {
        lock(&self.reserved).remove(name);
    }

    /// A MAC no VM of this node has, reserved.
    pub fn new_mac(&self) -> Mac {
        let mut m = lock(&self.macs);
        let mac = qemu::unique_mac(&|x| m.contains(x));
        m.insert(mac);
        mac
    }

    pub fn keep_macs<'a>(&self, nics: impl IntoIterator<Item = &'a Nic>) {
        let mut m = lock(&self.macs);
        for n in nics {
            if let Ok(mac) = Mac::parse(&n.hwaddr) {
                m.insert(mac);
            }
        }
    }

    pub fn drop_macs<'a>(&self, nics: impl IntoIterator<Item = &'a Nic>) {
        let mut m = lock(&self.macs);
        for n in nics {
            if let Ok(mac) = Mac::parse(&n.hwaddr) {
                m.remove(&mac);
            }
        }
    }

    // ---- the switch ----

    /// Applies switch changes, batched with concurrent callers'.
    pub async fn apply(&self, ops: Vec<ovs::Op>) -> Result<(), NetError> {
        self.apply_as(ops, None).await
    }

    /// [`Net::apply`] for VM `vm` of a launch the hook admitted (see
    /// [`Batcher::expect`]).
    pub async fn apply_announced(&self, ops: Vec<ovs::Op>, vm: u64) -> Result<(), NetError> {
        self.apply_as(ops, Some(vm)).await
    }

    /// Announces `n` VMs of a launch; the guard withdraws what never came.
    pub fn expect(&self, n: usize) -> batch::Expecting {
        self.batch.expect(n)
    }

    /// Announced VMs the switch's next batch would still wait for.
    pub fn awaited(&self) -> usize {
        self.batch.awaited()
    }

    async fn apply_as(&self, ops: Vec<ovs::Op>, announced: Option<u64>) -> Result<(), NetError> {
        // Bridges seen for the first time: were they there before us?
        let new: BTreeSet<String> = {
            let s = lock(&self.saved);
            ops.iter()
                .filter_map(|o| match o {
                    ovs::Op::AddPort(p) | ovs::Op::EnsurePort(p) => Some(p.bridge.clone()),
                    ovs::Op::AddMirror { bridge, .. } | ovs::Op::SetBridge { bridge, .. } => {
                        Some(bridge.clone())
                    }
                    ovs::Op::AddBond(b) => Some(b.bridge.clone()),
                    _ => None,
                })
                .filter(|b| !s.bridges.contains_key(b))
                .collect()
        };
        if !new.is_empty() {
            // An announced VM that fails here settles without arriving:
            // its launch's ticket withdraws it.
            let there = self
                .switch()
                .bridges()
                .await?
                .into_iter()
                .map(|b| b.name)
                .collect::<BTreeSet<String>>();
            self.update(|s| {
                for b in new {
                    s.bridges.entry(b.clone()).or_insert(BridgeBook {
                        preexisting: there.contains(&b),
                        ..BridgeBook::default()
                    });
                }
            })?;
        }
        let r = match announced {
            Some(vm) => self.batch.run_announced(ops, vm).await,
            None => self.batch.run(ops).await,
        };
        r.map_err(NetError::Failed)
    }

    /// The access port of a NIC of VM `vm` (marked as its own).
    pub fn port(&self, nic: &Nic, vm: u64) -> ovs::Op {
        ovs::Op::AddPort(ovs::PortSpec {
            bridge: nic.bridge.clone(),
            name: nic.tap.clone(),
            tag: Some(nic.vlan),
            qinq: nic.qinq,
            kind: ovs::PortKind::System,
            owner: Some(self.owner_of(vm)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoSwitch;
    impl ovs::Switch for NoSwitch {
        fn datapath(&self) -> ovs::Datapath {
            ovs::Datapath::Userspace
        }
        fn check(&self) -> crate::command::BoxFuture<'_, Result<(), ovs::SwitchError>> {
            Box::pin(async { Err(ovs::SwitchError::NotInstalled) })
        }
        fn apply<'a>(
            &'a self,
            _: &'a [ovs::Op],
        ) -> crate::command::BoxFuture<'a, Result<BTreeMap<String, String>, ovs::SwitchError>>
        {
            Box::pin(async { Err(ovs::SwitchError::NotInstalled) })
        }
        fn bridges(
            &self,
        ) -> crate::command::BoxFuture<'_, Result<Vec<ovs::BridgeState>, ovs::SwitchError>>
        {
            Box::pin(async { Err(ovs::SwitchError::NotInstalled) })
        }
    }

    fn specs(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn allocations_are_all_or_nothing_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let net = Net::with_switch(dir.path(), Arc::new(NoSwitch));
        let (nics, created) = net
            .nics("exp", &specs(&["DMZ", "br0,LAN,virtio-net-pci", "7"]))
            .unwrap();
        assert_eq!(
            nics.iter().map(|n| n.vlan).collect::<Vec<_>>(),
            [101, 102, 7]
        );
        assert_eq!(created.len(), 2);
        // A bad spec anywhere allocates nothing.
        assert!(net.nics("exp", &specs(&["WAN", "0"])).is_err());
        net.update(|s| s.vlans.set_range(Some("other"), 500, 600))
            .unwrap()
            .unwrap();
        drop(net);
        let again = Net::with_switch(dir.path(), Arc::new(NoSwitch));
        assert_eq!(again.print_vlan("exp", 102), "LAN (102)");
        assert_eq!(again.vlan("exp", "WAN").unwrap().0, 103);
        assert_eq!(again.vlan("other", "A").unwrap().0, 500);
        assert_eq!(again.saved().vlans.blacklisted(), [7]);
    }

    #[test]
    fn names_and_macs_are_never_given_twice() {
        let dir = tempfile::tempdir().unwrap();
        let net = Net::with_switch(dir.path(), Arc::new(NoSwitch));
        let a = net.reserve_name("mmtest_tap");
        let b = net.reserve_name("mmtest_tap");
        assert_eq!((a.as_str(), b.as_str()), ("mmtest_tap0", "mmtest_tap1"));
        net.unreserve(&a);
        assert_eq!(net.reserve_name("mmtest_tap"), "mmtest_tap0");
        assert!(!net.claim("mmtest_tap1"));
        assert_ne!(net.new_mac(), net.new_mac());
    }
}
