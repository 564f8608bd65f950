//! A running VM's NICs: `vm net add` (a tap and port made, then QMP
//! hot-plug), `vm net connect` (re-tagging its port, or moving it to
//! another bridge), `vm net disconnect` (its port off the bridge), `qos`,
//! and the `vm info` cells. Each change is saved in the VM's record.

use super::ovs::Op;
use super::sys::{self, netlink::Netlink};
use super::tc::{self, Qos, QosRule};
use super::{bridges::list, failed, qemu, Net, NetError};
use crate::vm::nic::Nic;
use crate::vm::{Vm, VmError, Vms};
use std::sync::Arc;

fn nic_of(vm: &Vm, index: usize) -> Result<Nic, NetError> {
    let nics = vm.lock().config.networks.clone();
    match nics.get(index) {
        Some(n) => Ok(n.clone()),
        None => failed(format!(
            "vm {} has no interface {index} ({} interfaces)",
            vm.name,
            nics.len()
        )),
    }
}

/// A VM core error as the networks report it (a record not written is
/// still a `SaveError`).
fn from_vm(e: VmError) -> NetError {
    match e {
        VmError::Save(e) => NetError::Save(e),
        e => NetError::Failed(e.to_string()),
    }
}

fn running_tap(vm: &Vm, nic: &Nic, index: usize) -> Result<(), NetError> {
    if !vm.state().is_live() || nic.tap.is_empty() {
        return failed(format!(
            "vm {} is not running: interface {index} has no tap",
            vm.name
        ));
    }
    Ok(())
}

impl Net {
    /// `vm net add VM SPEC`: NICs added to a running VM.
    pub async fn add_nics(
        self: &Arc<Self>,
        vms: &Vms,
        vm: &Arc<Vm>,
        new: Vec<Nic>,
    ) -> Result<(), NetError> {
        let q = vm.qmp().map_err(|e| NetError::Failed(e.to_string()))?;
        self.switch().check().await?;
        for mut n in new {
            n.hwaddr = if n.mac.is_empty() {
                self.new_mac().to_string()
            } else {
                n.mac.clone()
            };
            n.tap = self.reserve_name("mega_tap");
            // In the record before the tap exists (see the hook's prepare).
            let index = match vms
                .update_config(vm, |c| {
                    c.networks.push(n.clone());
                    c.networks.len() - 1
                })
                .await
            {
                Ok(i) => i,
                Err(e) => {
                    self.unreserve(&n.tap);
                    return Err(from_vm(e));
                }
            };
            let alias = format!("{}{}", super::hook::ALIAS_PREFIX, self.owner_of(vm.id));
            let made = async {
                Netlink::open()
                    .and_then(|mut nl| sys::create_tap(&n.tap, &alias, &mut nl))
                    .map_err(|e| NetError::Failed(format!("cannot create tap {}: {e}", n.tap)))?;
                self.apply(vec![self.port(&n, vm.id)]).await?;
                for (cmd, args) in qemu::hotplug(index, &n) {
                    q.execute(cmd, Some(args))
                        .await
                        .map_err(|e| NetError::Failed(format!("vm {}: {cmd}: {e}", vm.name)))?;
                }
                Ok::<(), NetError>(())
            }
            .await;
            if let Err(e) = made {
                let _ = q
                    .execute(
                        "netdev_del",
                        Some(serde_json::json!({"id": format!("net{index}")})),
                    )
                    .await;
                let _ = self.apply(vec![Op::DelPort(n.tap.clone())]).await;
                if let Ok(mut nl) = Netlink::open() {
                    let _ = nl.delete(&n.tap);
                }
                self.unreserve(&n.tap);
                let tap = n.tap.clone();
                let undone = vms
                    .update_config(vm, |c| c.networks.retain(|x| x.tap != tap))
                    .await;
                if let Err(u) = undone {
                    tracing::warn!(vm = %vm.name, "{u}");
                }
                return Err(e);
            }
            self.watch(&n.tap, &n.hwaddr);
        }
        Ok(())
    }

    /// `vm net connect VM INDEX VLAN [BRIDGE]`.
    pub async fn connect(
        &self,
        vms: &Vms,
        vm: &Vm,
        index: usize,
        vlan: (u16, String),
        bridge: Option<&str>,
    ) -> Result<(), NetError> {
        let nic = nic_of(vm, index)?;
        running_tap(vm, &nic, index)?;
        let bridge = bridge.unwrap_or(&nic.bridge).to_string();
        crate::vm::nic::check_bridge(&bridge)
            .map_err(|why| NetError::Failed(format!("invalid bridge `{bridge}`: {why}")))?;
        let mut moved = nic.clone();
        moved.vlan = vlan.0;
        moved.alias = vlan.1;
        moved.bridge = bridge;
        moved.disconnected = false;
        let (ops, back) = if nic.disconnected || moved.bridge != nic.bridge {
            let back = if nic.disconnected {
                vec![Op::DelPort(nic.tap.clone())]
            } else {
                vec![Op::DelPort(nic.tap.clone()), self.port(&nic, vm.id)]
            };
            (
                vec![Op::DelPort(nic.tap.clone()), self.port(&moved, vm.id)],
                back,
            )
        } else {
            let tag = |t| Op::SetTag {
                port: nic.tap.clone(),
                tag: t,
            };
            (vec![tag(moved.vlan)], vec![tag(nic.vlan)])
        };
        self.apply(ops).await?;
        if let Err(e) = vms.update_config(vm, |c| c.networks[index] = moved).await {
            // Not recorded, so not done: the port as it was.
            let _ = self.apply(back).await;
            return Err(from_vm(e));
        }
        Ok(())
    }

    /// `vm net disconnect VM INDEX`: the tap stays, off its bridge.
    pub async fn disconnect(&self, vms: &Vms, vm: &Vm, index: usize) -> Result<(), NetError> {
        let nic = nic_of(vm, index)?;
        running_tap(vm, &nic, index)?;
        self.apply(vec![Op::DelPort(nic.tap.clone())]).await?;
        if let Err(e) = vms
            .update_config(vm, |c| c.networks[index].disconnected = true)
            .await
        {
            if !nic.disconnected {
                let _ = self.apply(vec![self.port(&nic, vm.id)]).await;
            }
            return Err(from_vm(e));
        }
        Ok(())
    }

    /// `qos add VM INDEX RULE`.
    pub async fn add_qos(
        &self,
        vms: &Vms,
        vm: &Vm,
        index: usize,
        rule: &QosRule,
    ) -> Result<(), NetError> {
        let nic = nic_of(vm, index)?;
        running_tap(vm, &nic, index)?;
        let q = nic.qos.with(rule);
        tc::run(&q.argv(&nic.tap), &q).await?;
        if let Err(e) = vms.update_config(vm, |c| c.networks[index].qos = q).await {
            let _ = tc::run(&tc::clear_argv(&nic.tap), &nic.qos).await;
            if !nic.qos.is_empty() {
                let _ = tc::run(&nic.qos.argv(&nic.tap), &nic.qos).await;
            }
            return Err(from_vm(e));
        }
        Ok(())
    }

    /// `clear qos VM [INDEX]`.
    pub async fn clear_qos(
        &self,
        vms: &Vms,
        vm: &Vm,
        index: Option<usize>,
    ) -> Result<(), NetError> {
        let nics = vm.lock().config.networks.clone();
        if let Some(i) = index {
            nic_of(vm, i)?;
        }
        for (i, n) in nics.iter().enumerate() {
            if index.is_some_and(|w| w != i) || n.qos.is_empty() {
                continue;
            }
            if !n.tap.is_empty() {
                // The qdisc may be gone with the tap already.
                let _ = tc::run(&tc::clear_argv(&n.tap), &n.qos).await;
            }
            vms.update_config(vm, |c| c.networks[i].qos = Qos::default())
                .await
                .map_err(from_vm)?;
        }
        Ok(())
    }

    /// `vm info` cells: vlan, bridge, tap, mac, ip, ip6, qos.
    /// vm info's NIC cells: vlan, bridge, tap, mac, ip, ip6, qos, qinq,
    /// bond, each minimega's `[a, b]`.
    pub fn info_cells(&self, vm: &Vm) -> [String; 9] {
        let nics = vm.lock().config.networks.clone();
        let mut cols: [Vec<String>; 9] = Default::default();
        for (i, n) in nics.iter().enumerate() {
            let l = self.learned(&n.tap);
            cols[0].push(if n.disconnected {
                "disconnected".into()
            } else {
                self.print_vlan(&vm.namespace, n.vlan)
            });
            cols[1].push(n.bridge.clone());
            cols[2].push(n.tap.clone());
            cols[3].push(n.hwaddr.clone());
            cols[4].push(l.ip4);
            cols[5].push(l.ip6);
            let q = n.qos.describe(i);
            if !q.is_empty() {
                cols[6].push(q);
            }
            if n.qinq {
                cols[7].push(format!("{} ({})", n.tap, n.vlan));
            }
        }
        // Bonds once made: `NAME (TAP TAP)`, and qinq ones `NAME (VLAN)`.
        let bonds = vm.lock().config.bonds.clone();
        for b in bonds.iter().filter(|b| !b.name.is_empty()) {
            let taps: Vec<&str> = b
                .interfaces
                .iter()
                .filter_map(|&i| nics.get(i))
                .map(|n| n.tap.as_str())
                .collect();
            if b.qinq {
                if let Some(n) = b.interfaces.first().and_then(|&i| nics.get(i)) {
                    cols[7].push(format!("{} ({})", b.name, n.vlan));
                }
            }
            cols[8].push(format!("{} ({})", b.name, taps.join(" ")));
        }
        cols.map(|c| list(&c))
    }
}

impl crate::vm::info::NetView for Net {
    fn info_cells(&self, vm: &Vm) -> [String; 9] {
        Net::info_cells(self, vm)
    }

    fn byte_counters(&self) -> crate::vm::info::ByteCounters {
        let c = super::live::Counters::read();
        Box::new(move |vm| c.of(vm))
    }
}
