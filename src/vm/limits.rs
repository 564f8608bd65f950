//! The resource limits a VM's unit or cgroup gets ([`Limits`], systemd's
//! own type), derived from its config. Pure, shared by the systemd and the
//! plain-cgroup placements.

use super::accel::Accel;
use super::argv::TCG_TB_SIZE_MIB;
use super::config::{Kind, VmConfig};
pub use crate::systemd::limits::{Limits, CPU_PERIOD_USEC};

/// What QEMU itself needs beside guest RAM: its own heap, device models,
/// vCPU thread stacks, the VNC server. Measured near 40 MiB for a paused
/// VM; the rest is headroom for I/O buffers.
pub const QEMU_OVERHEAD_MIB: u64 = 256;

/// A container's monitor: its own RSS and its relay buffers.
pub const CONTAINER_OVERHEAD_MIB: u64 = 16;
/// Processes a container may have: a whole small system, not one QEMU.
pub const CONTAINER_TASKS_MAX: u64 = 4096;

impl Limits {
    pub fn for_vm(c: &VmConfig, accel: Accel) -> Limits {
        if c.kind == Kind::Container {
            return Limits {
                // The container's own memory: its processes, its monitor's
                // few MiB and its page cache all count, as under minimega.
                memory_max: c
                    .memory
                    .saturating_add(CONTAINER_OVERHEAD_MIB)
                    .saturating_mul(1024 * 1024),
                cpu_weight: (100 * c.vcpus).clamp(1, 10_000),
                cpu_quota_usec: c.vcpus.saturating_mul(CPU_PERIOD_USEC),
                tasks_max: CONTAINER_TASKS_MAX,
                delegate: true,
            };
        }
        let mut mib = c.memory.saturating_add(QEMU_OVERHEAD_MIB);
        if accel == Accel::Tcg {
            mib = mib.saturating_add(TCG_TB_SIZE_MIB);
        }
        Limits {
            memory_max: mib.saturating_mul(1024 * 1024),
            cpu_weight: (100 * c.vcpus).clamp(1, 10_000),
            // One CPU per vCPU, plus one for QEMU's main loop and I/O threads.
            cpu_quota_usec: c.vcpus.saturating_add(1).saturating_mul(CPU_PERIOD_USEC),
            // vCPU threads, the main loop, and QEMU's I/O thread pool (64).
            tasks_max: 96 + c.vcpus,
            delegate: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_memory_and_vcpus() {
        let c = VmConfig {
            memory: 512,
            vcpus: 2,
            ..VmConfig::default()
        };
        let l = Limits::for_vm(&c, Accel::Kvm);
        assert_eq!(l.memory_max, (512 + 256) << 20);
        assert_eq!(l.cpu_weight, 200);
        assert_eq!(l.cpu_shares(), 2048);
        assert_eq!(l.cpu_quota_usec, 300_000);
        assert_eq!(l.tasks_max, 98);
        let t = Limits::for_vm(&c, Accel::Tcg);
        assert_eq!(t.memory_max, (512 + 256 + 256) << 20);
    }
}
