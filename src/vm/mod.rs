//! VMs on this node: `vm config`, `vm launch` and the lifecycle, QEMU
//! driven over QMP, each VM in a systemd scope unit (or a cgroup of our
//! own without systemd), and re-adopted when the daemon restarts.
//!
//! - [`config`], [`argv`], [`targets`], [`limits`], [`screenshot`]: pure
//! - [`state`]: the per-VM record on disk
//! - [`qmp`], [`process`], [`accel`]: QEMU at the edge
//! - [`cgroup`], [`placement`] (and `systemd::units`): where QEMU runs
//! - [`manager`], [`launch`], [`lifecycle`], [`adopt`]: the registry and
//!   the lifecycle
//! - [`admission`]: launches refused when the node cannot hold them
//! - [`commands`], [`info`]: the command table
//! - [`hotplug`], [`top`], [`migrate`]: USB drives, resource use, saved
//!   states (each with its commands)

pub mod accel;
pub mod admission;
pub mod adopt;
pub mod argv;
pub mod bond;
pub mod cgroup;
pub mod config;
pub mod config_listing;
pub mod container_fields;
pub mod drive;
pub mod error;
pub mod hardware;
pub mod hooks;
pub mod hotplug;
pub mod info;
pub mod launch;
pub mod lifecycle;
pub mod limits;
pub mod manager;
pub mod migrate;
pub mod nic;
pub mod overrides;
pub mod placement;
pub mod process;
pub mod qmp;
pub mod rebuild;
pub mod runtime;
pub mod screenshot;
pub mod state;
pub mod targets;
pub mod top;
pub mod virtio;

pub use manager::{Vm, VmError, Vms};

use tracing::{info, warn};

impl Vms {
    /// At daemon start, before READY=1: probe the accelerator, choose the
    /// placement, adopt the previous instance's VMs.
    pub async fn init(&self, recover: bool) {
        let (accel, why) = accel::probe(config::DEFAULT_QEMU).await;
        match why {
            Some(why) => warn!("KVM is not usable ({why}); VMs run under TCG (much slower)"),
            None => info!("KVM works; VMs use it"),
        }
        let _ = self.inner.accel.set(accel);
        let placement = placement::Placement::detect().await;
        info!("VMs run as {}", placement.describe());
        let _ = self.inner.placement.set(placement);
        // Temporary files of writes a crash cut short (networks.json's).
        crate::durable::sweep(self.base());
        let a = self.adopt(recover).await;
        if a != adopt::Adopted::default() {
            info!(
                "previous VMs: {} adopted running, {} found dead (QUIT), {} removed, {} unproven (ERROR)",
                a.live, a.dead, a.removed, a.unproven
            );
        }
        self.reconcile().await;
    }

    /// After adoption, the other direction: what this daemon made for VMs
    /// (cgroups here; taps and switch ports through the hooks) that no
    /// registered VM's record names is removed. Only what is provably this
    /// daemon's is touched: cgroups named after this base directory's
    /// tag, devices and ports marked with it.
    async fn reconcile(&self) {
        // What a registered VM's record names is its own (a dead VM's was
        // released by adoption, which cleared it from the record).
        let vms = self.all();
        let claimed: std::collections::BTreeSet<std::path::PathBuf> = vms
            .iter()
            .flat_map(|v| v.lock().placed.cgroups.clone())
            .collect();
        let prefix = format!("{}-", self.inner.tag);
        for dir in self.placement().cgroups_named(&prefix) {
            if claimed.contains(&dir) {
                continue;
            }
            if cgroup::populated(&dir) {
                warn!(
                    "cgroup {} holds processes no VM claims; left alone",
                    dir.display()
                );
                continue;
            }
            info!("removing cgroup {}, which no VM claims", dir.display());
            let d = vec![dir];
            let _ = tokio::task::spawn_blocking(move || cgroup::remove(&d)).await;
        }
        self.hooks().recover(&vms).await;
    }
}
