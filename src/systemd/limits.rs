//! What a unit (or a cgroup of our own) may use: memory, CPU weight and
//! quota, tasks. The type the scope units are made with; the VM core
//! derives a VM's from its configuration.

/// Period of the CPU quota, as systemd uses for `CPUQuota=`.
pub const CPU_PERIOD_USEC: u64 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory_max: u64,
    /// cgroup v2 / systemd scale: 1..=10000, 100 is the default.
    pub cpu_weight: u64,
    /// CPU time allowed per [`CPU_PERIOD_USEC`].
    pub cpu_quota_usec: u64,
    pub tasks_max: u64,
    /// The unit's cgroup subtree is the payload's to manage (a
    /// container's monitor makes a frozen child for its processes).
    pub delegate: bool,
}

impl Limits {
    /// cgroup v1's `cpu.shares` for the same weight (1024 is the default).
    pub fn cpu_shares(&self) -> u64 {
        (self.cpu_weight * 1024 / 100).max(2)
    }
}
