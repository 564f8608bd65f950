//! Where a VM's QEMU runs: in a systemd scope unit when systemd is the
//! init system, else in a cgroup of our own (cgroups-rs), else (no
//! permission to make cgroups) as a plain process. Chosen once at start.

use super::cgroup::{self, Tree};
use super::limits::Limits;
use super::state::Placed;
use crate::systemd::units::{self, Units};
use std::path::PathBuf;
use tracing::warn;

pub enum Placement {
    Systemd(Units),
    Cgroup(Tree),
    Plain,
}

impl Placement {
    pub async fn detect() -> Placement {
        if units::systemd_booted() {
            match Units::connect().await {
                Ok(u) => return Placement::Systemd(u),
                Err(e) => warn!(
                    "systemd is running but its bus is not usable ({e}); VMs get plain cgroups"
                ),
            }
        }
        match tokio::task::spawn_blocking(Tree::detect).await {
            Ok(Ok(t)) => Placement::Cgroup(t),
            Ok(Err(e)) => {
                warn!("cannot make cgroups for VMs ({e}); VMs run without resource limits");
                Placement::Plain
            }
            Err(_) => Placement::Plain,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Placement::Systemd(_) => format!("systemd scope units in {}", units::SLICE),
            Placement::Cgroup(t) => t.describe(),
            Placement::Plain => "plain processes (no cgroups)".into(),
        }
    }

    /// Before the spawn: the VM's own cgroup, when we make them.
    pub fn prepare(&self, leaf: &str, limits: &Limits) -> Result<Vec<PathBuf>, String> {
        match self {
            Placement::Cgroup(t) => t.create(leaf, limits),
            _ => Ok(Vec::new()),
        }
    }

    /// After the spawn: the scope unit, under systemd. Returns its name.
    pub async fn attach(
        &self,
        namespace: &str,
        name: &str,
        pid: u32,
        limits: &Limits,
    ) -> Result<Option<String>, String> {
        let Placement::Systemd(u) = self else {
            return Ok(None);
        };
        let unit = units::scope_name(namespace, name);
        let desc = format!("minimega VM {name} (namespace {namespace})");
        u.start_scope(&unit, &desc, pid, limits).await?;
        // A container (its unit delegated) is a machine too: machinectl
        // shows it. Without machined it runs all the same.
        if limits.delegate {
            let machine = crate::systemd::machines::machine_name(namespace, name);
            if let Err(e) = u.register_machine(&machine, pid).await {
                tracing::info!(vm = %name, "not registered with machined: {e}");
            }
        }
        Ok(Some(unit))
    }

    pub async fn release_cgroups(&self, dirs: &[PathBuf]) {
        if dirs.is_empty() {
            return;
        }
        let dirs = dirs.to_vec();
        let _ = tokio::task::spawn_blocking(move || cgroup::remove(&dirs)).await;
    }

    /// After the process is gone: its unit stopped and forgotten, its
    /// cgroup removed.
    pub async fn release(&self, placed: &Placed) {
        if let (Some(unit), Placement::Systemd(u)) = (&placed.unit, self) {
            u.stop(unit).await;
        }
        self.release_cgroups(&placed.cgroups).await;
    }

    /// What of a record's placement this daemon made and may release: the
    /// VM's own scope unit (`unit`) and its own cgroups (`leaf`). Anything
    /// else a record names (another unit, a foreign cgroup) is dropped and
    /// returned, so a forged record can never make the daemon stop or
    /// remove it.
    pub fn confine(&self, placed: &Placed, unit: &str, leaf: &str) -> (Placed, Vec<String>) {
        let mut dropped = Vec::new();
        let unit = match &placed.unit {
            Some(u) if u == unit => Some(u.clone()),
            Some(u) => {
                dropped.push(format!("unit {u}"));
                None
            }
            None => None,
        };
        let mut cgroups = Vec::new();
        for c in &placed.cgroups {
            match self {
                Placement::Cgroup(t) if t.owns(c, leaf) => cgroups.push(c.clone()),
                _ => dropped.push(format!("cgroup {}", c.display())),
            }
        }
        (Placed { unit, cgroups }, dropped)
    }

    /// The cgroups [`Placement::prepare`] makes for `leaf` that exist now.
    pub fn cgroups_of(&self, leaf: &str) -> Vec<PathBuf> {
        match self {
            Placement::Cgroup(t) => t.existing(leaf),
            _ => Vec::new(),
        }
    }

    /// Every VM cgroup whose leaf name starts with `prefix`.
    pub fn cgroups_named(&self, prefix: &str) -> Vec<PathBuf> {
        match self {
            Placement::Cgroup(t) => t.named(prefix),
            _ => Vec::new(),
        }
    }

    /// Current memory (bytes) and CPU time (ns) of a VM.
    pub async fn usage(&self, placed: &Placed) -> (Option<u64>, Option<u64>) {
        match (&placed.unit, self) {
            (Some(unit), Placement::Systemd(u)) => u.usage(unit).await,
            _ => cgroup::usage(&placed.cgroups),
        }
    }

    /// Is the unit of an adopted VM still there?
    pub async fn unit_active(&self, unit: &str) -> bool {
        match self {
            Placement::Systemd(u) => u.is_active(unit).await,
            _ => false,
        }
    }
}
