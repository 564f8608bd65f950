//! `vm info`: one row per VM with minimega's columns, then where the VM
//! runs (its unit or cgroup) and what that uses now.

use super::config;
use super::manager::{now_secs, Vm, Vms};
use super::state::Placed;
use crate::timefmt::go_duration;
use std::sync::Arc;
use std::time::Duration;

pub const COLUMNS: &[&str] = &[
    "id",
    "name",
    "state",
    "uptime",
    "type",
    "uuid",
    "cc_active",
    "pid",
    "vlan",
    "bridge",
    "tap",
    "mac",
    "ip",
    "ip6",
    "qos",
    "memory",
    "vcpus",
    "disks",
    "snapshot",
    "initrd",
    "kernel",
    "cdrom",
    "append",
    "serial-ports",
    "virtio-ports",
    "vnc_port",
    "tags",
    "namespace",
    "unit",
    "memused",
    "cputime",
];

pub const SUMMARY: &[&str] = &["id", "name", "state", "type", "uuid", "cc_active", "vlan"];

const NA: &str = "N/A";

/// Bytes a VM's NICs received and sent, as one reading of every tap.
pub type ByteCounters = Box<dyn Fn(&Vm) -> (u64, u64) + Send + Sync>;

/// What `vm info` and `vm top` show of a VM's networks. The networks room
/// supplies it: the VM core knows each NIC as configured, not what the
/// guest's traffic taught the node (addresses) or the taps' counters.
pub trait NetView: Send + Sync {
    /// The NIC columns: vlan, bridge, tap, mac, ip, ip6, qos.
    fn info_cells(&self, vm: &Vm) -> [String; 7];
    /// Every tap's byte counters read now, as a function giving the bytes
    /// a VM's NICs received and sent.
    fn byte_counters(&self) -> ByteCounters;
}

/// What `vm info` shows of a VM's screen: the TCP port its VNC is relayed
/// on. The VNC room supplies it (registered with [`Vms::set_screens`]);
/// the VM core only knows QEMU's unix socket.
pub trait ScreenView: Send + Sync {
    /// None while the VM has no port (not running, or none was free).
    fn vnc_port(&self, vm: &Vm) -> Option<u16>;
}

/// Where the VM runs, as the `unit` column shows it.
pub fn unit_column(p: &Placed) -> String {
    if let Some(u) = &p.unit {
        return u.clone();
    }
    match p.cgroups.first() {
        Some(dir) => dir.display().to_string(),
        None => NA.into(),
    }
}

/// CPU time with millisecond precision, Go style (`1.234s`, `2m3.5s`).
pub fn cpu_time(ns: u64) -> String {
    let d = Duration::from_nanos(ns);
    let ms = d.as_millis() % 1000;
    let whole = go_duration(Duration::from_secs(d.as_secs()));
    if ms == 0 {
        return whole;
    }
    let frac = format!("{:03}", ms);
    let frac = frac.trim_end_matches('0');
    match whole.strip_suffix('s') {
        Some(w) => format!("{w}.{frac}s"),
        None => whole,
    }
}

pub async fn table(
    vms: &Vms,
    net: &dyn NetView,
    list: &[Arc<Vm>],
    summary: bool,
) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let mut rows = Vec::with_capacity(list.len());
    let now = now_secs();
    // Under systemd each figure is a bus call: ask for all VMs at once.
    let usage = futures_util::future::join_all(list.iter().map(|vm| async move {
        let (live, placed) = {
            let s = vm.lock();
            (s.state.is_live(), s.placed.clone())
        };
        if live && !summary {
            vms.placement().usage(&placed).await
        } else {
            (None, None)
        }
    }))
    .await;
    for (vm, (mem, cpu)) in list.iter().zip(usage) {
        let (state, cfg, pid, placed, launched, tags) = {
            let s = vm.lock();
            (
                s.state,
                s.config.clone(),
                s.pid,
                s.placed.clone(),
                s.launched,
                s.tags.clone(),
            )
        };
        let mut row = vec![vm.id.to_string(), vm.name.clone(), state.to_string()];
        if !summary {
            row.push(if state.is_live() {
                go_duration(Duration::from_secs(now.saturating_sub(launched)))
            } else {
                NA.into()
            });
        }
        row.push("kvm".into());
        row.push(vm.uuid.clone());
        row.push(
            vm.cc_active
                .load(std::sync::atomic::Ordering::Relaxed)
                .to_string(),
        );
        if summary {
            row.push(net.info_cells(vm)[0].clone());
            rows.push(row);
            continue;
        }
        row.push(pid.map(|p| p.to_string()).unwrap_or_else(|| NA.into()));
        row.extend(net.info_cells(vm));
        row.extend([
            cfg.memory.to_string(),
            cfg.vcpus.to_string(),
            crate::vm::drive::format_list(&cfg.disks),
            cfg.snapshot.to_string(),
            cfg.initrd.clone(),
            cfg.kernel.clone(),
            cfg.cdrom.clone(),
            cfg.append.join(" "),
            cfg.serial_ports.to_string(),
            "0".into(),
            vms.screens()
                .and_then(|s| s.vnc_port(vm))
                .filter(|_| state.is_live())
                .map(|p| p.to_string())
                .unwrap_or_else(|| NA.into()),
            config::tags_json(&tags),
            vm.namespace.clone(),
            if state.is_live() {
                unit_column(&placed)
            } else {
                NA.into()
            },
            mem.map(|b| (b >> 20).to_string())
                .unwrap_or_else(|| NA.into()),
            cpu.map(cpu_time).unwrap_or_else(|| NA.into()),
        ]);
        rows.push(row);
    }
    (
        if summary {
            SUMMARY.to_vec()
        } else {
            COLUMNS.to_vec()
        },
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times() {
        assert_eq!(cpu_time(0), "0s");
        assert_eq!(cpu_time(1_234_000_000), "1.234s");
        assert_eq!(cpu_time(1_500_000_000), "1.5s");
        assert_eq!(cpu_time(123_000_000_000), "2m3s");
        assert_eq!(cpu_time(5_000_000), "0.005s");
    }

    #[test]
    fn unit_column_prefers_the_unit() {
        let mut p = Placed::default();
        assert_eq!(unit_column(&p), "N/A");
        p.cgroups.push("/sys/fs/cgroup/memory/minimega/ab-1".into());
        assert_eq!(unit_column(&p), "/sys/fs/cgroup/memory/minimega/ab-1");
        p.unit = Some("minimega-minimega-a.scope".into());
        assert_eq!(unit_column(&p), "minimega-minimega-a.scope");
    }

    #[test]
    fn columns_match_rows() {
        assert_eq!(COLUMNS.len(), 31);
        assert!(COLUMNS.contains(&"unit") && COLUMNS.contains(&"cputime"));
    }
}
