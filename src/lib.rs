//! minimega: launch and manage QEMU virtual machines across a cluster.

pub mod command;
