//! What can go wrong with a VM, one variant per cause. Inside, callers
//! match on the cause (a target that names no VM, a VM in the wrong state);
//! every front door turns it into the one line its `Display` gives, which
//! keeps minimega's wording where clients parse it (`vm not found: X`).

use super::admission::Refusal;
use super::config::ConfigError;
use super::qmp::QmpError;
use super::state::VmState;
use super::targets::TargetError;
use std::path::PathBuf;
use thiserror::Error;

/// A subsystem's own error, carried through a [`super::hooks::VmHook`]:
/// the VM core cannot name the types of the rooms above it.
pub type HookError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, Error)]
pub enum VmError {
    #[error("vm not found: {0}")]
    NotFound(String),
    #[error("vm not running: {0}")]
    NotRunning(String),
    #[error("`{target}` names {count} VMs; name one")]
    Ambiguous { target: String, count: usize },
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("vm {vm} is {state}, not {wanted}")]
    State {
        vm: String,
        state: VmState,
        wanted: &'static str,
    },
    #[error("vm {0} is in state ERROR; kill or flush it")]
    Errored(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{what} {path}: no such file")]
    NoFile { what: &'static str, path: String },
    #[error("an initrd needs a kernel (vm config kernel)")]
    InitrdWithoutKernel,
    #[error("qemu binary `{0}` not found")]
    NoQemu(String),
    #[error("uuid {uuid} is configured: it can be used by one VM only, not {count}")]
    UuidForMany { uuid: String, count: usize },
    /// minimega's words, as for names; `vm` is the VM that has it.
    #[error("vm already exists with UUID `{uuid}`")]
    UuidTaken { uuid: String, vm: String },
    /// minimega's words, whichever check finds it (the namespace's queue,
    /// or two launches racing for the name).
    #[error("vm already exists with name `{name}`")]
    NameTaken { name: String, namespace: String },
    /// A command waited for the VM while `vm flush` removed it.
    #[error("vm {0} was flushed")]
    Flushed(String),
    /// A record could not be written; what the command made is undone.
    #[error(transparent)]
    Save(#[from] crate::durable::SaveError),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("cannot run {binary}: {source}")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error("cannot place vm {vm}: {why}")]
    Placement { vm: String, why: String },
    #[error("qemu exited: {0}")]
    QemuExited(String),
    /// A container's monitor ended (its own words: a missing init, a
    /// failing preinit, ...).
    #[error("container failed: {0}")]
    ContainerFailed(String),
    #[error("containers are not available on this node")]
    NoContainers,
    #[error("{0} is not supported for containers")]
    NotForContainers(&'static str),
    #[error("qemu exited at once: {0}")]
    QemuExitedAtOnce(String),
    #[error("no QMP socket at {}: {source}", path.display())]
    NoQmp {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("vm {vm}: {what}{}{source}", if what.is_empty() { "" } else { ": " })]
    Qmp {
        vm: String,
        what: &'static str,
        source: QmpError,
    },
    #[error("vm {vm}: qemu (pid {pid}) does not die")]
    Undying { vm: String, pid: u32 },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("qemu-img create {target}: {why}")]
    QemuImg { target: String, why: String },
    #[error("vm {vm}: {what}: {why}")]
    Job {
        vm: String,
        what: &'static str,
        why: String,
    },
    #[error("no such hotplug device")]
    NoHotplugDevice,
    #[error("no hotplug devices to remove")]
    NoHotplugDevices,
    #[error("state {0}: no such file")]
    NoState(String),
    /// A subsystem (networks, disks, files, cc...) refused or failed.
    #[error("{0}")]
    Hook(HookError),
    /// One VM of several failed.
    #[error("vm {vm}: {source}")]
    Of { vm: String, source: Box<VmError> },
    /// Several VMs failed: the first (by id), and how many more.
    #[error("{first} (and {more} more errors)")]
    Several { first: Box<VmError>, more: usize },
    /// A task of the lifecycle died (a panic), which should not happen.
    #[error("internal error: {0}")]
    Task(String),
}

impl VmError {
    /// A subsystem's error, as a hook returns it.
    pub fn hook(e: impl Into<HookError>) -> VmError {
        VmError::Hook(e.into())
    }

    pub fn qmp(vm: &str, what: &'static str, source: QmpError) -> VmError {
        VmError::Qmp {
            vm: vm.to_string(),
            what,
            source,
        }
    }

    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> VmError {
        VmError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_minimega_wording() {
        assert_eq!(VmError::NotFound("a".into()).to_string(), "vm not found: a");
        assert_eq!(
            VmError::NotRunning("3".into()).to_string(),
            "vm not running: 3"
        );
        let q = VmError::qmp("a", "", QmpError::Closed);
        assert_eq!(q.to_string(), format!("vm a: {}", QmpError::Closed));
        let q = VmError::qmp("a", "hotplug", QmpError::Closed);
        assert_eq!(
            q.to_string(),
            format!("vm a: hotplug: {}", QmpError::Closed)
        );
        let many = VmError::Several {
            first: Box::new(VmError::NotFound("x".into())),
            more: 2,
        };
        assert_eq!(many.to_string(), "vm not found: x (and 2 more errors)");
        assert_eq!(VmError::hook("tap failed").to_string(), "tap failed");
    }
}
