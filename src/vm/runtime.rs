//! Kinds of VM other than QEMU's guests. A container is run by a monitor
//! that stands where QEMU stands: a child process the VM core spawns,
//! places in the VM's cgroup or scope unit, drives over a QMP socket
//! (`stop`, `cont`, `quit`) and re-adopts after a restart by the same
//! `-chardev ...,path=<qmp>` argument. What differs (its checks, its
//! command line, what it leaves on the host) is the [`Runtime`] a room
//! above the VM core registers.

use super::config::VmConfig;
use super::manager::{Vm, VmError, Vms};
use crate::command::BoxFuture;
use std::sync::Arc;

pub trait Runtime: Send + Sync + 'static {
    /// Checks a launch's configuration before anything is made.
    fn validate(&self, config: &VmConfig) -> Result<(), VmError>;

    /// The monitor's argv, program first, for one (re)launch of `vm`;
    /// `extra` is what the hooks added (the NICs' veth ends). May write
    /// the monitor's own files into the VM's folder.
    fn argv(&self, vm: &Vm, config: &VmConfig, extra: &[String]) -> Result<Vec<String>, VmError>;

    /// After the monitor is gone, however it went (even killed with
    /// SIGKILL, or found dead at start-up): remove what it may have left
    /// on the host. Idempotent.
    fn release<'a>(&'a self, _vm: &'a Vm) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

impl Vms {
    pub fn set_container_runtime(&self, rt: Arc<dyn Runtime>) {
        let _ = self.inner.containers.set(rt);
    }

    pub(super) fn container_runtime(&self) -> Result<&dyn Runtime, VmError> {
        self.inner
            .containers
            .get()
            .map(|r| &**r)
            .ok_or(VmError::NoContainers)
    }
}
