//! Containers (`vm launch container`): minimega's second kind of VM, a
//! process tree in its own namespaces over a file system, run by a
//! monitor that stands where QEMU stands for a KVM VM.
//!
//! - [`spec`]: what the daemon tells the monitor (pure data)
//! - [`runtime`]: the daemon's side: launch checks, the monitor's spec and
//!   command line, network namespaces left behind
//! - [`mounts`]: the container's file system as a plan of mount steps
//! - [`shim`]: the monitor (`container-shim`) and its stage (`container-init`)

pub mod mounts;
pub mod runtime;
pub mod shim;
pub mod spec;
