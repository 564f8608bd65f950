//! Facts about this machine for the `host` command, read from /proc. The
//! parsers take the files' text so they are tested without the files.

use std::time::Duration;

/// The columns of `host`, which the namespace scheduler reads back:
/// minimega's twelve (cpus, load, memused, memtotal, rx, tx, vms, vmlimit,
/// cpucommit, memcommit, netcommit, uptime) and this implementation's
/// name, memlimit, vmsall and accel.
pub const HOST_COLUMNS: [&str; 16] = [
    "name",
    "cpus",
    "cpucommit",
    "load",
    "memused",
    "memtotal",
    "memcommit",
    "memlimit",
    "vms",
    "vmsall",
    "uptime",
    "accel",
    "rx",
    "tx",
    "netcommit",
    "vmlimit",
];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostInfo {
    pub cpus: usize,
    pub load: String,
    pub mem_total_mib: u64,
    pub mem_used_mib: u64,
    pub uptime: Duration,
}

pub fn read() -> HostInfo {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let (mem_total_mib, mem_used_mib) = parse_meminfo(&read("/proc/meminfo"));
    HostInfo {
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        load: parse_loadavg(&read("/proc/loadavg")),
        mem_total_mib,
        mem_used_mib,
        uptime: parse_uptime(&read("/proc/uptime")),
    }
}

/// Total and used memory in MiB; used is total minus available, as `free`.
pub fn parse_meminfo(text: &str) -> (u64, u64) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let total = field("MemTotal:");
    let avail = field("MemAvailable:");
    (total / 1024, total.saturating_sub(avail) / 1024)
}

/// The three load averages, space-separated.
pub fn parse_loadavg(text: &str) -> String {
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first figure of /proc/uptime, exactly (`2641.71` is 2641.71 s, as
/// minimega's `time.ParseDuration` reads it).
pub fn parse_uptime(text: &str) -> Duration {
    let Some(first) = text.split_whitespace().next() else {
        return Duration::ZERO;
    };
    let (whole, frac) = first.split_once('.').unwrap_or((first, ""));
    let Ok(secs) = whole.parse::<u64>() else {
        return Duration::ZERO;
    };
    let digits: String = frac.chars().take(9).collect();
    let nanos = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse::<u32>().unwrap_or(0)
    };
    Duration::new(secs, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo() {
        let t = "MemTotal:       24576000 kB\nMemFree:  1000 kB\nMemAvailable:   20480000 kB\n";
        assert_eq!(parse_meminfo(t), (24000, 4000));
        assert_eq!(parse_meminfo(""), (0, 0));
    }

    #[test]
    fn loadavg_and_uptime() {
        assert_eq!(
            parse_loadavg("0.15 0.10 0.05 1/234 5678\n"),
            "0.15 0.10 0.05"
        );
        assert_eq!(
            parse_uptime("3723.45 100.00\n"),
            Duration::from_secs_f64(3723.45)
        );
    }
}
