//! Each VM's port over its life: bound before its QEMU starts (a launch
//! with no free port fails, leaving nothing behind), bound again when a
//! restarted daemon adopts the running VM, freed when its QEMU goes.

use super::Vnc;
use crate::command::BoxFuture;
use crate::vm::config::VmConfig;
use crate::vm::hooks::{Admission, VmHook};
use crate::vm::{Vm, VmError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::{error, warn};

pub(super) struct VncHook(pub Vnc);

fn port_file(dir: &Path) -> PathBuf {
    dir.join("vnc_port")
}

/// The port the VM had last, if it had one.
pub(super) fn saved_port(dir: &Path) -> Option<u16> {
    std::fs::read_to_string(port_file(dir))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|p| *p != 0)
}

pub(super) fn save_port(dir: &Path, port: u16) {
    if let Err(e) = std::fs::write(port_file(dir), format!("{port}\n")) {
        warn!("cannot keep the VNC port in {}: {e}", dir.display());
    }
}

impl VmHook for VncHook {
    fn name(&self) -> &'static str {
        "vnc"
    }

    /// A launch of more VMs than the range has ports left is refused
    /// before any of them exists.
    fn admit<'a>(&'a self, launch: &'a Admission<'a>) -> BoxFuture<'a, Result<(), VmError>> {
        Box::pin(async move {
            self.0
                .room_for(launch.count)
                .map_err(|e| VmError::hook(e.to_string()))
        })
    }

    fn prepare<'a>(
        &'a self,
        vm: &'a Arc<Vm>,
        _config: &'a VmConfig,
    ) -> BoxFuture<'a, Result<Vec<String>, VmError>> {
        Box::pin(async move {
            self.0
                .open_display(vm)
                .map_err(|e| VmError::hook(e.to_string()))?;
            Ok(Vec::new())
        })
    }

    fn started<'a>(&'a self, vm: &'a Arc<Vm>, adopted: bool) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if adopted {
                if let Err(e) = self.0.open_display(vm) {
                    error!(vm = %vm.name, "no VNC port for the adopted VM: {e}");
                }
                return;
            }
            let password = vm.lock().config.vnc_password.clone();
            if password.is_empty() {
                return;
            }
            // QEMU started with password=on refuses everyone until now.
            let set = match vm.qmp() {
                Ok(q) => q
                    .execute(
                        "change-vnc-password",
                        Some(serde_json::json!({ "password": password })),
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = set {
                error!(vm = %vm.name, "cannot set the VNC password (the screen stays locked): {e}");
            }
        })
    }

    fn release<'a>(&'a self, vm: &'a Vm) -> BoxFuture<'a, ()> {
        Box::pin(self.0.close_display(vm.id))
    }

    fn forget<'a>(&'a self, vm: &'a Vm) -> BoxFuture<'a, ()> {
        Box::pin(self.0.close_display(vm.id))
    }
}
