//! cc's part in each VM's life: the virtio-serial port named `cc` when
//! `vm config backchannel` is true (QEMU serves it on a unix socket in the
//! VM's folder), the daemon's end of it while QEMU runs, and the VM known
//! to TCP agents meanwhile.

use super::server::{Cc, Task};
use super::transport;
use crate::command::BoxFuture;
use crate::vm::config::VmConfig;
use crate::vm::hooks::VmHook;
use crate::vm::{Vm, VmError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The port's socket in the VM's folder.
pub fn socket(vm_dir: &Path) -> PathBuf {
    vm_dir.join("cc")
}

/// QEMU's arguments for the port: its own virtio-serial controller, so it
/// never collides with `vm config virtio-ports`.
pub fn qemu_args(vm_dir: &Path) -> Vec<String> {
    let path = socket(vm_dir).display().to_string().replace(',', ",,");
    vec![
        "-device".into(),
        "virtio-serial-pci,id=ccvirtio".into(),
        "-chardev".into(),
        format!("socket,id=charvserialCC,path={path},server=on,wait=off"),
        "-device".into(),
        "virtserialport,bus=ccvirtio.0,chardev=charvserialCC,id=charvserialCC,name=cc".into(),
    ]
}

pub struct Hook(pub Cc);

impl VmHook for Hook {
    fn name(&self) -> &'static str {
        "cc"
    }

    fn serves(&self, _kind: crate::vm::config::Kind) -> bool {
        true
    }

    fn prepare<'a>(
        &'a self,
        vm: &'a Arc<Vm>,
        config: &'a VmConfig,
    ) -> BoxFuture<'a, Result<Vec<String>, VmError>> {
        Box::pin(async move {
            if !config.backchannel {
                return Ok(Vec::new());
            }
            if crate::vm::virtio::names(&config.virtio_ports)
                .iter()
                .any(|n| n == "cc")
            {
                return Err(VmError::hook(
                    "virtio port name `cc` is the backchannel's: rename the port, or set vm config backchannel false",
                ));
            }
            Ok(qemu_args(&vm.paths.dir))
        })
    }

    fn started<'a>(&'a self, vm: &'a Arc<Vm>, _adopted: bool) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let serial = vm.lock().config.backchannel.then(|| {
                Task::spawn(transport::serial(
                    self.0.clone(),
                    vm.clone(),
                    socket(&vm.paths.dir),
                ))
            });
            self.0.register(vm, serial.flatten());
        })
    }

    fn release<'a>(&'a self, vm: &'a Vm) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.0.unregister(&vm.uuid);
            vm.cc_active
                .store(false, std::sync::atomic::Ordering::Relaxed);
        })
    }

    fn forget<'a>(&'a self, vm: &'a Vm) -> BoxFuture<'a, ()> {
        Box::pin(async move { self.0.forget(&vm.namespace, &vm.uuid) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_is_named_cc_on_a_socket_in_the_vm_folder() {
        let a = qemu_args(Path::new("/run/minimega/7")).join(" ");
        assert_eq!(
            a,
            "-device virtio-serial-pci,id=ccvirtio \
             -chardev socket,id=charvserialCC,path=/run/minimega/7/cc,server=on,wait=off \
             -device virtserialport,bus=ccvirtio.0,chardev=charvserialCC,id=charvserialCC,name=cc"
        );
        assert!(qemu_args(Path::new("/a,b"))
            .join(" ")
            .contains("path=/a,,b/cc"));
    }
}
