//! The disks' part in a VM's life: a launch that would have two VMs write
//! one image is refused (minimega's disk conflicts), and with `snapshot`
//! each VM gets its qcow2 overlay in its folder before QEMU starts. The
//! overlay is made once, at the first launch, and kept while the VM exists
//! (a restarted VM keeps its disk's changes, as in minimega); it goes with
//! the VM's folder when the VM is flushed.

use super::{qemu_img, Disks};
use crate::command::BoxFuture;
use crate::vm::config::VmConfig;
use crate::vm::drive as spec;
use crate::vm::hooks::{Admission, VmHook};
use crate::vm::{Vm, VmError};
use std::path::Path;
use std::sync::Arc;

pub struct DiskHook(pub Disks);

/// Why a launch of `count` VMs with `cfg` conflicts with the live VMs
/// `others` (name, snapshot, disk paths), if it does. Pure.
pub fn conflict(
    cfg: &VmConfig,
    count: usize,
    others: &[(String, bool, Vec<String>)],
) -> Option<String> {
    for d in &cfg.disks {
        if !cfg.snapshot && count > 1 {
            return Some(format!(
                "disk conflict: {} would be written by {count} VMs (vm config snapshot true shares it)",
                d.path
            ));
        }
        for (name, snapshot, disks) in others {
            if disks.contains(&d.path) && (!cfg.snapshot || !snapshot) {
                return Some(format!("disk conflict with vm {name}: {}", d.path));
            }
        }
    }
    None
}

impl VmHook for DiskHook {
    fn name(&self) -> &'static str {
        "disk"
    }

    fn admit<'a>(&'a self, launch: &'a Admission<'a>) -> BoxFuture<'a, Result<(), VmError>> {
        Box::pin(async move {
            let others: Vec<(String, bool, Vec<String>)> = self
                .0
                .vms
                .all()
                .iter()
                .filter_map(|vm| {
                    let s = vm.lock();
                    s.state.is_live().then(|| {
                        let disks = s.config.disks.iter().map(|d| d.path.clone()).collect();
                        (vm.name.clone(), s.config.snapshot, disks)
                    })
                })
                .collect();
            match conflict(launch.config, launch.count, &others) {
                Some(e) => Err(VmError::hook(e)),
                None => Ok(()),
            }
        })
    }

    fn prepare<'a>(
        &'a self,
        vm: &'a Arc<Vm>,
        config: &'a VmConfig,
    ) -> BoxFuture<'a, Result<Vec<String>, VmError>> {
        Box::pin(async move {
            if !config.snapshot {
                return Ok(Vec::new());
            }
            for (i, d) in config.disks.iter().enumerate() {
                let overlay = spec::overlay_path(&vm.paths.dir, i);
                if overlay.exists() {
                    continue;
                }
                make_overlay(self.0.tool(), Path::new(&d.path), &overlay)
                    .await
                    .map_err(|e| VmError::hook(format!("unable to snapshot {}: {e}", d.path)))?;
            }
            // The drives themselves are in the argv (see disk::spec).
            Ok(Vec::new())
        })
    }
}

/// An overlay naming its base by absolute path: VM folders never move.
async fn make_overlay(
    tool: &dyn qemu_img::Tool,
    base: &Path,
    overlay: &Path,
) -> Result<(), super::DiskError> {
    let info = qemu_img::describe(tool, base).await?;
    let args = qemu_img::snapshot_args(overlay, &base.to_string_lossy(), &info.format);
    tool.run(args)
        .await
        .map(|_| ())
        .map_err(|e| qemu_img::error(overlay, &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::drive::DiskSpec;

    fn cfg(snapshot: bool, disks: &[&str]) -> VmConfig {
        VmConfig {
            snapshot,
            disks: disks.iter().map(|d| DiskSpec::path(*d)).collect(),
            ..VmConfig::default()
        }
    }

    #[test]
    fn conflicts_are_minimegas() {
        let others = vec![
            ("foo1".to_string(), true, vec!["/f/foo.qcow2".to_string()]),
            ("bar1".to_string(), false, vec!["/f/bar.qcow2".to_string()]),
        ];
        assert_eq!(conflict(&cfg(true, &["/f/foo.qcow2"]), 3, &others), None);
        assert_eq!(
            conflict(&cfg(false, &["/f/foo.qcow2"]), 1, &others).unwrap(),
            "disk conflict with vm foo1: /f/foo.qcow2"
        );
        assert_eq!(
            conflict(&cfg(true, &["/f/bar.qcow2"]), 1, &others).unwrap(),
            "disk conflict with vm bar1: /f/bar.qcow2"
        );
        assert!(conflict(&cfg(false, &["/f/new.qcow2"]), 2, &others)
            .unwrap()
            .contains("would be written by 2 VMs"));
        assert_eq!(conflict(&cfg(false, &["/f/new.qcow2"]), 1, &others), None);
        assert_eq!(conflict(&cfg(false, &[]), 5, &others), None);
    }
}
