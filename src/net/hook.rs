//! The VM side of the networks, as a [`VmHook`]: a launch with NICs is
//! admitted only when every NIC is valid and Open vSwitch is there; each
//! VM's taps are made (with ioctls, one per NIC) and put on their bridges
//! (in one switch transaction shared with every VM prepared at the same
//! time); QEMU gets the taps by name. Taps and ports go when the VM's QEMU
//! does. After a daemon restart the running VMs' taps are adopted as they
//! are: watched again, their ports put back only if the switch lost them.

use super::sys::{self, netlink::Netlink};
use super::{capture, ovs, qemu, tc, Net, Nic};
use crate::command::BoxFuture;
use crate::vm::config::{Kind, VmConfig};
use crate::vm::hooks::{Admission, Ticket, VmHook};
use crate::vm::nic::{self as spec, Mac};
use crate::vm::{Vm, VmError};
use std::collections::BTreeSet;
use std::sync::Arc;
use tracing::{debug, info, warn};

pub struct NetHook(pub Arc<Net>);

fn err(e: impl Into<crate::vm::error::HookError>) -> VmError {
    VmError::hook(e)
}

/// A NIC from a configuration that may not have come through `vm config
/// net` (a head node ships it as JSON).
fn validate(n: &Nic) -> Result<(), VmError> {
    spec::check_bridge(&n.bridge)
        .map_err(|why| err(format!("bad bridge name `{}`: {why}", n.bridge)))?;
    if !spec::DRIVERS.contains(&n.driver.as_str()) {
        return Err(err(format!("unknown NIC driver `{}`", n.driver)));
    }
    if !(1..=4095).contains(&n.vlan) {
        return Err(err(format!(
            "bad VLAN {} of `{}`: must be 1 to 4095",
            n.vlan,
            n.spec()
        )));
    }
    for m in [&n.mac, &n.hwaddr] {
        if !m.is_empty() && Mac::parse(m).is_err() {
            return Err(err(format!("bad MAC address `{m}`")));
        }
    }
    Ok(())
}

impl NetHook {
    /// Gives each NIC a free tap name, and its MAC unless it has one (a
    /// relaunched VM keeps its MACs; its taps went with its last QEMU).
    fn assign(&self, nics: &mut [Nic]) {
        let net = &self.0;
        for n in nics.iter_mut() {
            if n.hwaddr.is_empty() {
                n.hwaddr = if n.mac.is_empty() {
                    net.new_mac().to_string()
                } else {
                    n.mac.clone()
                };
            }
            n.tap = net.reserve_name("mega_tap");
        }
        net.keep_macs(nics.iter());
    }
}

impl VmHook for NetHook {
    fn name(&self) -> &'static str {
        "networks"
    }

    fn serves(&self, _kind: crate::vm::config::Kind) -> bool {
        true
    }

    fn admit<'a>(&'a self, launch: &'a Admission<'a>) -> BoxFuture<'a, Result<(), VmError>> {
        Box::pin(async move {
            let nics = &launch.config.networks;
            super::bonds::check(&launch.config.bonds, nics).map_err(err)?;
            if nics.is_empty() {
                return Ok(());
            }
            for n in nics {
                validate(n)?;
            }
            // A head node's allocations, carried in its configuration.
            self.0.learn(launch.namespace, nics).map_err(err)?;
            self.0.switch().check().await.map_err(err)?;
            // Every VM's ports in one transaction (see net::batch); the
            // launch holds the announcement and it withdraws, however the
            // launch ends, every VM that did not come.
            launch
                .tickets
                .hold(Box::new(Announced(self.0.expect(launch.count))));
            Ok(())
        })
    }

    fn prepare<'a>(
        &'a self,
        vm: &'a Arc<Vm>,
        config: &'a VmConfig,
    ) -> BoxFuture<'a, Result<Vec<String>, VmError>> {
        Box::pin(async move {
            if config.networks.is_empty() {
                return Ok(Vec::new());
            }
            let net = &self.0;
            // A container's NICs are veth pairs; its monitor moves one end
            // in and takes the names from the record, not from arguments.
            let container = config.kind == Kind::Container;
            let mut nics = config.networks.clone();
            self.assign(&mut nics);
            let mut bonds = config.bonds.clone();
            net.name_bonds(&mut bonds).map_err(err)?;
            // Recorded before anything is made, and on disk: whatever
            // fails from here on, `release` finds what to remove, and so
            // does the next start-up after a crash at any instant.
            {
                let mut s = vm.lock();
                s.config.networks = nics.clone();
                s.config.bonds = bonds.clone();
            }
            vm.persist().await?;
            let alias = format!("{ALIAS_PREFIX}{}", net.owner_of(vm.id));
            let made = Netlink::open()
                .map_err(|e| err(format!("netlink: {e}")))
                .and_then(|mut nl| {
                    nics.iter().try_for_each(|n| {
                        if container {
                            sys::create_veth(&n.tap, &n.veth_peer(), &alias, &mut nl)
                                .map_err(|e| err(format!("cannot create veth {}: {e}", n.tap)))
                        } else {
                            sys::create_tap(&n.tap, &alias, &mut nl)
                                .map_err(|e| err(format!("cannot create tap {}: {e}", n.tap)))
                        }
                    })
                });
            // A VM that fails here never arrives at the switch; its
            // launch's ticket withdraws it when the VM settles.
            made?;
            crate::fault::point("launch.taps");
            let ports = nics
                .iter()
                .filter(|n| !n.disconnected)
                .map(|n| net.port(n, vm.id))
                .collect();
            net.apply_announced(ports, vm.id).await.map_err(err)?;
            crate::fault::point("launch.ports");
            if !bonds.is_empty() {
                let ops = bonds.iter().map(|b| net.bond_op(b, &nics, vm.id)).collect();
                net.apply(ops)
                    .await
                    .map_err(|e| err(format!("unable to create bond: {e}")))?;
            }
            for n in nics.iter().filter(|n| !n.qos.is_empty()) {
                if let Err(e) = tc::run(&n.qos.argv(&n.tap), &n.qos).await {
                    warn!(vm = %vm.name, "qos on {}: {e}", n.tap);
                }
            }
            for n in &nics {
                net.watch(&n.tap, &n.hwaddr);
            }
            Ok(if container {
                Vec::new()
            } else {
                qemu::argv(&nics)
            })
        })
    }

    fn started<'a>(&'a self, vm: &'a Arc<Vm>, adopted: bool) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if !adopted {
                return;
            }
            let net = &self.0;
            let (nics, bonds) = {
                let s = vm.lock();
                (s.config.networks.clone(), s.config.bonds.clone())
            };
            for b in bonds.iter().filter(|b| b.held) {
                net.claim(&b.name);
            }
            // A bond's members are no ports of their own.
            let bonded: BTreeSet<usize> = bonds
                .iter()
                .flat_map(|b| b.interfaces.iter().copied())
                .collect();
            let all = nics.clone();
            let nics: Vec<&Nic> = nics.iter().filter(|n| !n.tap.is_empty()).collect();
            if nics.is_empty() {
                return;
            }
            for n in &nics {
                net.claim(&n.tap);
                net.watch(&n.tap, &n.hwaddr);
            }
            net.keep_macs(nics.iter().copied());
            // The switch keeps its ports across our restarts; only a switch
            // restarted from an empty database has lost them.
            let ensure = all
                .iter()
                .enumerate()
                .filter(|(i, n)| !n.tap.is_empty() && !bonded.contains(i))
                .map(|(_, n)| n)
                .filter(|n| !n.disconnected)
                .map(|n| match net.port(n, vm.id) {
                    ovs::Op::AddPort(p) => ovs::Op::EnsurePort(p),
                    other => other,
                })
                .collect();
            if let Err(e) = net.apply(ensure).await {
                warn!(vm = %vm.name, "adopted, but its ports are not on their bridges: {e}");
            }
        })
    }

    fn release<'a>(&'a self, vm: &'a Vm) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let net = &self.0;
            let (nics, mut bonds) = {
                let s = vm.lock();
                (s.config.networks.clone(), s.config.bonds.clone())
            };
            net.keep_macs(nics.iter());
            let taps: Vec<String> = nics
                .iter()
                .filter(|n| !n.tap.is_empty())
                .map(|n| n.tap.clone())
                .collect();
            // Only the names this VM holds are its ports to remove.
            let bond_ports: Vec<String> = bonds
                .iter()
                .filter(|b| b.held)
                .map(|b| b.name.clone())
                .collect();
            if !bond_ports.is_empty() {
                let ops = bond_ports.iter().cloned().map(ovs::Op::DelPort).collect();
                if let Err(e) = net.apply(ops).await {
                    warn!(vm = %vm.name, "cannot remove its bonds: {e}");
                }
                net.unname_bonds(&mut bonds);
                vm.lock().config.bonds = bonds;
            }
            if taps.is_empty() {
                return;
            }
            capture::stop_for_taps(net, &taps).await;
            let ops = taps.iter().map(|t| ovs::Op::DelPort(t.clone())).collect();
            if let Err(e) = net.apply(ops).await {
                warn!(vm = %vm.name, "cannot remove its ports: {e}");
            }
            match Netlink::open() {
                Ok(mut nl) => {
                    for t in &taps {
                        if let Err(e) = nl.delete(t) {
                            warn!(vm = %vm.name, "cannot delete tap {t}: {e}");
                        }
                    }
                }
                Err(e) => warn!(vm = %vm.name, "netlink: {e}; its taps stay"),
            }
            for t in &taps {
                net.unwatch(t);
                net.unreserve(t);
            }
            for n in vm.lock().config.networks.iter_mut() {
                n.tap.clear();
            }
        })
    }

    fn forget<'a>(&'a self, vm: &'a Vm) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let nics = vm.lock().config.networks.clone();
            self.0.drop_macs(nics.iter());
        })
    }

    fn recover<'a>(&'a self, vms: &'a [Arc<Vm>]) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let claimed: BTreeSet<String> = vms
                .iter()
                .flat_map(|v| {
                    let s = v.lock();
                    s.config
                        .networks
                        .iter()
                        .map(|n| n.tap.clone())
                        .chain(
                            s.config
                                .bonds
                                .iter()
                                .filter(|b| b.held)
                                .map(|b| b.name.clone()),
                        )
                        .collect::<Vec<_>>()
                })
                .filter(|t| !t.is_empty())
                .collect();
            recover(&self.0, &claimed).await;
        })
    }
}

/// The alias of a VM's tap: this prefix, then [`Net::owner_of`] the VM.
pub const ALIAS_PREFIX: &str = "minimega-vm ";

/// True when `mark` (a tap's alias without [`ALIAS_PREFIX`], or a port's
/// owner) is one `owner` (a daemon's tag) gave one of its VMs.
pub fn marked_by(mark: &str, owner: &str) -> bool {
    mark.strip_prefix(owner)
        .and_then(|r| r.strip_prefix('/'))
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes this daemon's VM taps and switch ports that no VM claims
/// (`claimed`: the taps the records name): what a crash in the middle of a launch
/// left, or an older version. Nothing unmarked, nor another daemon's, is
/// touched.
pub(super) async fn recover(net: &Net, claimed: &BTreeSet<String>) {
    let owner = net.owner().to_string();
    match net.switch().bridges().await {
        Ok(bridges) => {
            let stale: Vec<String> = bridges
                .iter()
                .flat_map(|b| b.ports.iter())
                .filter(|p| marked_by(&p.owner, &owner) && !claimed.contains(&p.name))
                .map(|p| p.name.clone())
                .collect();
            if !stale.is_empty() {
                info!("removing switch ports no VM claims: {}", stale.join(", "));
                let ops = stale.into_iter().map(ovs::Op::DelPort).collect();
                if let Err(e) = net.apply(ops).await {
                    warn!("cannot remove them: {e}");
                }
            }
        }
        // No switch, no ports: nothing to do (and nothing to say unless
        // VMs have NICs, which their own launches report).
        Err(e) => debug!("switch not reachable at start-up: {e}"),
    }
    let links = Netlink::open().and_then(|mut nl| {
        let stale: Vec<String> = nl
            .links()?
            .into_iter()
            .filter(|l| {
                l.alias
                    .strip_prefix(ALIAS_PREFIX)
                    .is_some_and(|m| marked_by(m, &owner))
                    && !claimed.contains(&l.name)
            })
            .map(|l| l.name)
            .collect();
        for t in &stale {
            info!("removing tap {t}, which no VM claims");
            if let Err(e) = nl.delete(t) {
                warn!("cannot delete tap {t}: {e}");
            }
        }
        Ok(())
    });
    if let Err(e) = links {
        warn!("netlink: {e}; taps no VM claims may remain");
    }
}

/// The networks' part of one launch: the VMs announced to the switch's
/// batcher, each withdrawn as it settles without arriving.
struct Announced(super::batch::Expecting);

impl Ticket for Announced {
    fn settled(&self, vm: &Vm) {
        self.0.settle(vm.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_daemons_marks_are_its_own() {
        assert!(marked_by("0badf00d/12", "0badf00d"));
        assert!(!marked_by("0badf00d/", "0badf00d"));
        assert!(!marked_by("0badf00d/x", "0badf00d"));
        assert!(!marked_by("0badf00de/1", "0badf00d"));
        assert!(!marked_by("feedface/1", "0badf00d"));
        assert!(!marked_by("", "0badf00d"));
    }
}
