//! `vm info`: one row per VM with minimega's columns, then where the VM
//! runs (its unit or cgroup) and what that uses now.

use super::config;
use super::manager::{Vm, Vms};
use super::state::Placed;
use crate::timefmt::go_duration;
use std::sync::Arc;
use std::time::Duration;

/// minimega 3.1.0's columns, in its order (its `vmInfo`), then this
/// implementation's own: the namespace, and where the VM runs and what it
/// uses (unit, memused, cputime).
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
    "qinq",
    "bond",
    "memory",
    "vcpus",
    "disks",
    "snapshot",
    "initrd",
    "kernel",
    "cdrom",
    "save",
    "append",
    "serial-ports",
    "virtio-ports",
    "vnc_port",
    "usb-use-xhci",
    "tpm-socket",
    "bidirectional-copy-paste",
    "filesystem",
    "hostname",
    "init",
    "preinit",
    "fifo",
    "volume",
    "console_port",
    "tags",
    "namespace",
    "unit",
    "memused",
    "cputime",
];

/// minimega's container-only columns: `N/A` for a KVM VM, as there.
const CONTAINER_ONLY: usize = 7;
/// `snapshot`'s place among the cells after `vcpus` (disks, snapshot, ...).
const KVM_SNAPSHOT_CELL: usize = 1;

pub const SUMMARY: &[&str] = &["id", "name", "state", "type", "uuid", "cc_active", "vlan"];

const NA: &str = "N/A";

/// Bytes a VM's NICs received and sent, as one reading of every tap.
pub type ByteCounters = Box<dyn Fn(&Vm) -> (u64, u64) + Send + Sync>;

/// What `vm info` and `vm top` show of a VM's networks. The networks room
/// supplies it: the VM core knows each NIC as configured, not what the
/// guest's traffic taught the node (addresses) or the taps' counters.
pub trait NetView: Send + Sync {
    /// The NIC columns: vlan, bridge, tap, mac, ip, ip6, qos, qinq, bond.
    fn info_cells(&self, vm: &Vm) -> [String; 9];
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

/// What `vm info` asks for a container's console port; the serial
/// consoles supply it.
pub trait ConsoleView: Send + Sync {
    fn console_port(&self, vm: &Vm) -> Option<u16>;
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

/// Time since the VM was launched, as Go prints a duration to the
/// nanosecond (`2m3.004512345s`): phenix parses it with `time.ParseDuration`.
/// It keeps counting after the VM quits, as minimega's does.
pub fn uptime(launched_secs: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    crate::timefmt::go_duration_exact(now.saturating_sub(Duration::from_secs(launched_secs)))
}

/// The `disks` cell: minimega's `DiskConfigs.String()`, each disk as
/// `path[,interface][,cache]`, separated by spaces, no brackets; `""`
/// without disks.
pub fn disks_cell(disks: &[crate::vm::drive::DiskSpec]) -> String {
    disks
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

pub async fn table(
    vms: &Vms,
    net: &dyn NetView,
    list: &[Arc<Vm>],
    summary: bool,
) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let mut rows = Vec::with_capacity(list.len());
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
        let nets = net.info_cells(vm);
        let cc = vm
            .cc_active
            .load(std::sync::atomic::Ordering::Relaxed)
            .to_string();
        let mut row = vec![vm.id.to_string(), vm.name.clone(), state.to_string()];
        let kind = cfg.kind.as_str().to_string();
        if summary {
            row.extend([kind, vm.uuid.clone(), cc, nets[0].clone()]);
            rows.push(row);
            continue;
        }
        row.extend([
            uptime(launched),
            kind,
            vm.uuid.clone(),
            cc,
            pid.unwrap_or(0).to_string(),
        ]);
        row.extend(nets);
        row.extend([cfg.memory.to_string(), cfg.vcpus.to_string()]);
        let kvm = [
            disks_cell(&cfg.disks),
            cfg.snapshot.to_string(),
            cfg.initrd.clone(),
            cfg.kernel.clone(),
            cfg.cdrom.clone(),
            // minimega 3.1.0 has no `save` field: N/A everywhere.
            NA.into(),
            config::list(&cfg.append),
            cfg.serial_ports.to_string(),
            cfg.virtio_ports.clone(),
            // A live VM's VNC port; N/A once its QEMU is gone and the
            // port is free again.
            vms.screens()
                .and_then(|s| s.vnc_port(vm))
                .filter(|_| state.is_live())
                .map(|p| p.to_string())
                .unwrap_or_else(|| NA.into()),
            cfg.hw.usb_use_xhci.to_string(),
            cfg.hw.tpm_socket.clone(),
            cfg.hw.bidirectional_copy_paste.to_string(),
        ];
        // Each kind's own columns are N/A for the other, as minimega's.
        if cfg.kind == config::Kind::Container {
            // `snapshot` is shared; the rest of the KVM block is not.
            row.extend(kvm.iter().enumerate().map(|(i, c)| {
                if i == KVM_SNAPSHOT_CELL {
                    c.clone()
                } else {
                    NA.into()
                }
            }));
            let ct = &cfg.ct;
            row.extend([
                ct.filesystem.clone(),
                if ct.hostname.is_empty() {
                    vm.name.clone()
                } else {
                    ct.hostname.clone()
                },
                config::list(&ct.init),
                ct.preinit.clone(),
                ct.fifos.to_string(),
                ct.volumes_cell(),
                vms.consoles()
                    .and_then(|s| s.console_port(vm))
                    .filter(|_| state.is_live())
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| NA.into()),
            ]);
        } else {
            row.extend(kvm);
            row.extend(std::iter::repeat_n(NA.to_string(), CONTAINER_ONLY));
        }
        row.extend([
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
        assert_eq!(COLUMNS.len(), 44);
        assert!(COLUMNS.contains(&"unit") && COLUMNS.contains(&"cputime"));
        // minimega's own, in its order, first.
        let theirs = "id name state uptime type uuid cc_active pid vlan bridge tap mac ip ip6 \
            qos qinq bond memory vcpus disks snapshot initrd kernel cdrom save append \
            serial-ports virtio-ports vnc_port usb-use-xhci tpm-socket \
            bidirectional-copy-paste filesystem hostname init preinit fifo volume \
            console_port tags";
        let theirs: Vec<&str> = theirs.split_whitespace().collect();
        assert_eq!(&COLUMNS[..theirs.len()], theirs.as_slice());
        // `.columns "host"` finds `hostname` by prefix, as in minimega.
        let header: Vec<String> = COLUMNS.iter().map(|s| s.to_string()).collect();
        let i = crate::command::builtins::find_column(&header, "host").unwrap();
        assert_eq!(COLUMNS[i], "hostname");
    }

    #[test]
    fn disks_print_without_brackets() {
        use crate::vm::drive::DiskSpec;
        let p = std::path::Path::new("/f");
        let one = crate::vm::drive::parse_list(&["/p/a.qc2,writeback".into()], p).unwrap();
        assert_eq!(disks_cell(&one), "/p/a.qc2,writeback");
        let two =
            crate::vm::drive::parse_list(&["/p/a.qc2,virtio,writeback".into(), "b.qc2".into()], p)
                .unwrap();
        assert_eq!(disks_cell(&two), "/p/a.qc2,virtio,writeback /f/b.qc2");
        assert_eq!(disks_cell(&[]), "");
        assert_eq!(disks_cell(&[DiskSpec::path("/x")]), "/x");
    }

    #[test]
    fn uptime_is_a_go_duration_to_the_nanosecond() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let u = uptime(now - 125);
        assert!(u.starts_with("2m") && u.ends_with('s'), "{u}");
    }
}
