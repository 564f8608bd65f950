//! NIC bonds on the switch (minimega's `vm config bonds`, `vm net bond`,
//! `clear vm net bond`): two or more of a VM's taps made one bond port,
//! on the bridge and VLAN of its first member, as `ovs-vsctl add-bond`
//! makes it. Unbonding puts the taps back as access ports.

use super::ovs::{BondSpec, Op};
use super::{failed, Net, NetError};
use crate::vm::bond::{self, Bond};
use crate::vm::nic::Nic;
use crate::vm::{Vm, VmError, Vms};
use tracing::warn;

fn from_vm(e: VmError) -> NetError {
    match e {
        VmError::Save(e) => NetError::Save(e),
        e => NetError::Failed(e.to_string()),
    }
}

/// Checks a VM's bonds against its NICs: indexes exist, no NIC twice,
/// each bond's NICs on one bridge.
pub fn check(bonds: &[Bond], nics: &[Nic]) -> Result<(), String> {
    bond::check(bonds, nics.len())?;
    for b in bonds {
        let first = &nics[b.interfaces[0]].bridge;
        if b.interfaces.iter().any(|&i| &nics[i].bridge != first) {
            return Err("interfaces being bonded are not on the same bridge".into());
        }
    }
    Ok(())
}

impl Net {
    /// The switch's bond for `b` (named already) of VM `vm` with `nics`
    /// (their taps made): minimega's VLAN is the first member's.
    pub fn bond_op(&self, b: &Bond, nics: &[Nic], vm: u64) -> Op {
        let first = &nics[b.interfaces[0]];
        for &i in &b.interfaces[1..] {
            if nics[i].vlan != first.vlan {
                warn!(
                    "bond {}: interface {i} is not on VLAN {}; the bond is",
                    b.name, first.vlan
                );
            }
        }
        Op::AddBond(BondSpec {
            bridge: first.bridge.clone(),
            name: b.name.clone(),
            members: b.interfaces.iter().map(|&i| nics[i].tap.clone()).collect(),
            tag: first.vlan,
            qinq: b.qinq || b.interfaces.iter().any(|&i| nics[i].qinq),
            mode: b.mode.clone(),
            lacp: b.lacp.clone(),
            fallback: b.fallback,
            owner: Some(self.owner_of(vm)),
        })
    }

    /// A name for each bond that has none (or one minimega made for
    /// another launch): `mega_bondN`, reserved; a given name is claimed.
    /// Either way the VM then holds it. A given name taken already is an
    /// error, and then no bond holds a name.
    pub fn name_bonds(&self, bonds: &mut [Bond]) -> Result<(), NetError> {
        for b in bonds.iter_mut() {
            b.held = false;
        }
        for i in 0..bonds.len() {
            let auto = bonds[i].name.is_empty() || bonds[i].name.starts_with(bond::NAME_PREFIX);
            if auto {
                bonds[i].name = self.reserve_name(bond::NAME_PREFIX);
            } else if super::sys::index(&bonds[i].name).is_some() || !self.claim(&bonds[i].name) {
                let taken = bonds[i].name.clone();
                self.unname_bonds(&mut bonds[..i]);
                return failed(format!("bond {taken} already exists"));
            }
            bonds[i].held = true;
        }
        Ok(())
    }

    /// Releases the names the bonds hold (a `mega_bondN` stays shown,
    /// and is given afresh at the next launch).
    pub fn unname_bonds(&self, bonds: &mut [Bond]) {
        for b in bonds.iter_mut().filter(|b| b.held) {
            self.unreserve(&b.name);
            b.held = false;
        }
    }

    /// `vm net bond VM ...`: a bond of a running VM's NICs.
    pub async fn add_bond(&self, vms: &Vms, vm: &Vm, mut b: Bond) -> Result<String, NetError> {
        let (nics, mut all) = {
            let s = vm.lock();
            (s.config.networks.clone(), s.config.bonds.clone())
        };
        if !vm.state().is_live() || nics.iter().any(|n| n.tap.is_empty()) {
            return failed(format!("vm {} is not running", vm.name));
        }
        for &i in &b.interfaces {
            if i >= nics.len() {
                return failed(format!("interface {i} not found for vm {}", vm.name));
            }
        }
        all.push(b.clone());
        check(&all, &nics).map_err(NetError::Failed)?;
        self.name_bonds(std::slice::from_mut(&mut b))?;
        if let Err(e) = self.apply(vec![self.bond_op(&b, &nics, vm.id)]).await {
            self.unname_bonds(std::slice::from_mut(&mut b));
            return Err(NetError::Failed(format!("add bond failed: {e}")));
        }
        let name = b.name.clone();
        let saved = vms.update_config(vm, |c| c.bonds.push(b.clone())).await;
        if let Err(e) = saved {
            // Not recorded, so not made.
            let _ = self.apply(self.unbond_ops(&b, &nics, vm.id)).await;
            self.unname_bonds(std::slice::from_mut(&mut b));
            return Err(from_vm(e));
        }
        Ok(name)
    }

    /// Taking a bond apart: its port goes, its members come back.
    fn unbond_ops(&self, b: &Bond, nics: &[Nic], vm: u64) -> Vec<Op> {
        let mut ops = vec![Op::DelPort(b.name.clone())];
        ops.extend(
            b.interfaces
                .iter()
                .filter_map(|&i| nics.get(i))
                .filter(|n| !n.tap.is_empty() && !n.disconnected)
                .map(|n| self.port(n, vm)),
        );
        ops
    }

    /// `clear vm net bond VM [NAME]`: the VM's bonds (or the one named)
    /// taken apart, its taps access ports again.
    pub async fn clear_bonds(
        &self,
        vms: &Vms,
        vm: &Vm,
        name: Option<&str>,
    ) -> Result<(), NetError> {
        let (nics, bonds) = {
            let s = vm.lock();
            (s.config.networks.clone(), s.config.bonds.clone())
        };
        let gone: Vec<Bond> = bonds
            .iter()
            .filter(|b| name.is_none_or(|n| b.name == n))
            .cloned()
            .collect();
        if let Some(n) = name {
            if gone.is_empty() {
                return failed(format!("bond {n} doesn't exist on VM {}", vm.name));
            }
        }
        let live = nics.iter().any(|n| !n.tap.is_empty());
        for b in gone.iter().filter(|b| b.held) {
            if live {
                self.apply(self.unbond_ops(b, &nics, vm.id)).await?;
            }
        }
        let names: Vec<String> = gone.iter().map(|b| b.name.clone()).collect();
        vms.update_config(vm, |c| c.bonds.retain(|b| !names.contains(&b.name)))
            .await
            .map_err(from_vm)?;
        for b in gone.iter().filter(|b| b.held) {
            self.unreserve(&b.name);
        }
        Ok(())
    }
}
