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
use crate::vm::config::VmConfig;
use crate::vm::hooks::{Admission, VmHook};
use crate::vm::nic::{self as spec, Mac};
use crate::vm::{Vm, VmError};
use std::sync::Arc;
use tracing::warn;

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

    fn admit<'a>(&'a self, launch: &'a Admission<'a>) -> BoxFuture<'a, Result<(), VmError>> {
        Box::pin(async move {
            let nics = &launch.config.networks;
            if nics.is_empty() {
                return Ok(());
            }
            for n in nics {
                validate(n)?;
            }
            // A head node's allocations, carried in its configuration.
            self.0.learn(launch.namespace, nics);
            self.0.switch().check().await.map_err(err)?;
            // Every VM's ports in one transaction (see net::batch).
            self.0.expect(launch.count);
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
            let mut nics = config.networks.clone();
            self.assign(&mut nics);
            // Recorded before anything is made: whatever fails from here
            // on, `release` finds what to remove.
            vm.lock().config.networks = nics.clone();
            let made = Netlink::open()
                .map_err(|e| err(format!("netlink: {e}")))
                .and_then(|mut nl| {
                    nics.iter().try_for_each(|n| {
                        sys::create_tap(&n.tap, &mut nl)
                            .map_err(|e| err(format!("cannot create tap {}: {e}", n.tap)))
                    })
                });
            if let Err(e) = made {
                net.arrived();
                return Err(e);
            }
            let ports = nics
                .iter()
                .filter(|n| !n.disconnected)
                .map(Net::port)
                .collect();
            net.apply_announced(ports).await.map_err(err)?;
            for n in nics.iter().filter(|n| !n.qos.is_empty()) {
                if let Err(e) = tc::run(&n.qos.argv(&n.tap), &n.qos).await {
                    warn!(vm = %vm.name, "qos on {}: {e}", n.tap);
                }
            }
            for n in &nics {
                net.watch(&n.tap, &n.hwaddr);
            }
            Ok(qemu::argv(&nics))
        })
    }

    fn started<'a>(&'a self, vm: &'a Arc<Vm>, adopted: bool) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if !adopted {
                return;
            }
            let net = &self.0;
            let nics = vm.lock().config.networks.clone();
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
            let ensure = nics
                .iter()
                .filter(|n| !n.disconnected)
                .map(|n| match Net::port(n) {
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
            let nics = vm.lock().config.networks.clone();
            net.keep_macs(nics.iter());
            let taps: Vec<String> = nics
                .iter()
                .filter(|n| !n.tap.is_empty())
                .map(|n| n.tap.clone())
                .collect();
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
}
