//! `vm top`: what each running VM's QEMU uses, measured from the host over
//! a sampling window, with minimega's columns. Reading `/proc` is the
//! edge; the arithmetic on two samples is pure.

use super::manager::Vm;
use crate::timefmt::go_duration;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const COLUMNS: [&str; 10] = [
    "name", "virt", "res", "shr", "cpu", "vcpu", "time", "procs", "rx", "tx",
];

/// One reading of a process: clock ticks and pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sample {
    pub utime: u64,
    pub stime: u64,
    /// Ticks spent running the guest (KVM only).
    pub guest: u64,
    pub size: u64,
    pub resident: u64,
    pub shared: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/statm` as given.
pub fn parse(stat: &str, statm: &str) -> Option<Sample> {
    // The command name may hold spaces and parentheses: fields start
    // after the last `)`, with the state (field 3) first.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let m: Vec<u64> = statm
        .split_whitespace()
        .map(|v| v.parse().ok())
        .collect::<Option<Vec<u64>>>()?;
    Some(Sample {
        utime: field(14)?,
        stime: field(15)?,
        guest: field(43).unwrap_or(0),
        size: *m.first()?,
        resident: *m.get(1)?,
        shared: *m.get(2)?,
    })
}

/// The units of the host, for turning ticks and pages into seconds and bytes.
#[derive(Debug, Clone, Copy)]
pub struct Units {
    pub ticks_per_sec: u64,
    pub page_size: u64,
}

impl Units {
    pub fn host() -> Units {
        // SAFETY: sysconf has no preconditions.
        let (tck, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        Units {
            ticks_per_sec: u64::try_from(tck).ok().filter(|t| *t > 0).unwrap_or(100),
            page_size: u64::try_from(page).ok().filter(|p| *p > 0).unwrap_or(4096),
        }
    }
}

/// One row of `vm top` from two samples `elapsed` apart. Network rates
/// are the VM's taps', in MB/s.
pub fn row(
    name: &str,
    a: &Sample,
    b: &Sample,
    elapsed: Duration,
    units: Units,
    (rx, tx): (f64, f64),
) -> Vec<String> {
    let mb = |pages: u64| (pages * units.page_size / (1 << 20)).to_string();
    let secs = elapsed.as_secs_f64().max(1e-6);
    let pct = |ticks: u64| {
        format!(
            "{:.2}",
            ticks as f64 / units.ticks_per_sec as f64 / secs * 100.0
        )
    };
    let used = |s: &Sample| s.utime + s.stime;
    vec![
        name.to_string(),
        mb(b.size),
        mb(b.resident),
        mb(b.shared),
        pct(used(b).saturating_sub(used(a))),
        pct(b.guest.saturating_sub(a.guest)),
        go_duration(Duration::from_secs(used(b) / units.ticks_per_sec)),
        "1".into(),
        format!("{rx:.2}"),
        format!("{tx:.2}"),
    ]
}

fn read(pid: u32) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    parse(&stat, &statm)
}

/// Samples every VM's QEMU at once over `window`; VMs without a QEMU, or
/// whose QEMU went meanwhile, are left out.
pub async fn measure(
    vms: &[Arc<Vm>],
    window: Duration,
    net: &dyn super::info::NetView,
) -> Vec<Vec<String>> {
    let units = Units::host();
    let bytes = net.byte_counters();
    let first: Vec<(Arc<Vm>, u32, Sample, Instant)> = vms
        .iter()
        .filter_map(|vm| {
            let pid = vm.lock().pid?;
            let s = read(pid)?;
            Some((vm.clone(), pid, s, Instant::now()))
        })
        .collect();
    tokio::time::sleep(window).await;
    let bytes_after = net.byte_counters();
    first
        .into_iter()
        .filter_map(|(vm, pid, a, at)| {
            let b = read(pid)?;
            let elapsed = at.elapsed();
            let rates = mb_per_s(bytes(&vm), bytes_after(&vm), elapsed.as_secs_f64());
            Some(row(&vm.name, &a, &b, elapsed, units, rates))
        })
        .collect()
}

/// MB/s from byte counts `secs` apart.
pub fn mb_per_s((rx0, tx0): (u64, u64), (rx1, tx1): (u64, u64), secs: f64) -> (f64, f64) {
    let mb = (1u64 << 20) as f64 * secs.max(0.001);
    (
        rx1.saturating_sub(rx0) as f64 / mb,
        tx1.saturating_sub(tx0) as f64 / mb,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (qemu-system-x86) weird) S 1 4242 4242 0 -1 4194560 3000 0 0 0 250 50 0 0 20 0 4 0 123456 1073741824 65536 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 40 0 0 0 0 0 0 0 0 0";

    #[test]
    fn stat_and_statm_are_read_past_the_command_name() {
        let s = parse(STAT, "262144 65536 1024 1 0 70000 0\n").unwrap();
        assert_eq!((s.utime, s.stime, s.guest), (250, 50, 40));
        assert_eq!((s.size, s.resident, s.shared), (262144, 65536, 1024));
        assert!(parse("garbage", "1 2 3").is_none());
        assert!(parse(STAT, "1 x 3").is_none());
    }

    #[test]
    fn a_row_from_two_samples() {
        let a = Sample {
            utime: 100,
            stime: 20,
            guest: 0,
            size: 262_144,
            resident: 25_600,
            shared: 512,
        };
        let b = Sample {
            utime: 150,
            stime: 20,
            ..a
        };
        let units = Units {
            ticks_per_sec: 100,
            page_size: 4096,
        };
        let r = row("vm1", &a, &b, Duration::from_secs(1), units, (0.0, 1.234));
        assert_eq!(
            r,
            ["vm1", "1024", "100", "2", "50.00", "0.00", "1s", "1", "0.00", "1.23"]
        );
        // Counters that went backwards (a new process) are not negative.
        let r = row("vm1", &b, &a, Duration::from_secs(2), units, (0.0, 0.0));
        assert_eq!(r[4], "0.00");
    }

    #[test]
    fn rates_are_mebibytes_per_second_and_never_negative() {
        let (rx, tx) = mb_per_s((0, 1 << 20), (3 << 20, 2 << 20), 2.0);
        assert_eq!((rx, tx), (1.5, 0.5));
        // A tap made again between samples restarts its counters.
        assert_eq!(mb_per_s((5, 5), (1, 1), 1.0), (0.0, 0.0));
    }
}
