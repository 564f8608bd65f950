//! A record rebuilt from a running QEMU's command line, for a VM whose
//! own record is gone (an older version's crash, a file someone removed)
//! while its QEMU runs: what the command line says (name, UUID, memory,
//! CPUs, the taps it opened), so the VM can be managed, killed and
//! flushed. Everything else keeps its default; the namespace, which the
//! command line does not carry, is the default one. Pure.

use super::config::VmConfig;
use super::manager::DEFAULT_NAMESPACE;
use super::nic::Nic;
use super::state::{Placed, Record, VmState};
use std::collections::BTreeMap;

/// The value after `flag`, the first time it appears.
fn value<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    argv.windows(2)
        .find(|w| w[0] == flag)
        .map(|w| w[1].as_str())
}

/// `key=value` of a QEMU option value (`tap,id=net0,ifname=mega_tap3`).
fn field<'a>(opt: &'a str, key: &str) -> Option<&'a str> {
    opt.split(',')
        .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
}

/// The NICs: each `-netdev tap,...,ifname=TAP` with the `-device` on it.
/// Their bridge and VLAN are not on the command line: they are marked
/// disconnected, so nothing puts them on a wrong VLAN; their taps and
/// ports still go when the VM does.
fn nics(argv: &[String]) -> Vec<Nic> {
    let devices: Vec<&str> = argv
        .windows(2)
        .filter(|w| w[0] == "-device")
        .map(|w| w[1].as_str())
        .collect();
    argv.windows(2)
        .filter(|w| w[0] == "-netdev" && w[1].starts_with("tap,"))
        .filter_map(|w| {
            let tap = field(&w[1], "ifname")?;
            let id = field(&w[1], "id").unwrap_or_default();
            let dev = devices
                .iter()
                .find(|d| field(d, "netdev") == Some(id))
                .copied()
                .unwrap_or_default();
            let mut n = Nic {
                tap: tap.to_string(),
                hwaddr: field(dev, "mac").unwrap_or_default().to_string(),
                disconnected: true,
                ..Nic::default()
            };
            if let Some(driver) = dev.split(',').next().filter(|d| !d.is_empty()) {
                n.driver = driver.to_string();
            }
            Some(n)
        })
        .collect()
}

/// The record of VM `id` from its QEMU's argv; None when the argv has no
/// `-name` and `-uuid` (not a QEMU this daemon started).
pub fn record(id: u64, argv: &[String]) -> Option<Record> {
    let name = value(argv, "-name")?;
    let uuid = value(argv, "-uuid")?;
    let mut config = VmConfig::default();
    if let Some(q) = argv.first() {
        config.qemu = q.clone();
    }
    if let Some(m) = value(argv, "-m").and_then(|m| m.parse().ok()) {
        config.memory = m;
    }
    if let Some(c) = value(argv, "-smp").and_then(|c| c.parse().ok()) {
        config.vcpus = c;
    }
    config.networks = nics(argv);
    Some(Record {
        id,
        name: name.to_string(),
        namespace: DEFAULT_NAMESPACE.to_string(),
        uuid: uuid.to_string(),
        config,
        state: VmState::Building,
        pid: None,
        pid_start: None,
        placed: Placed::default(),
        launched: super::manager::now_secs(),
        tags: BTreeMap::new(),
        error: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn what_the_command_line_says_is_kept() {
        let a = argv(
            "qemu-system-x86_64 -name web1 -uuid 9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc -m 512 -smp 2 \
             -netdev tap,id=net0,ifname=mega_tap3,script=no,downscript=no \
             -device virtio-net-pci,netdev=net0,mac=52:54:00:aa:bb:cc,id=nic0 -S",
        );
        let r = record(7, &a).unwrap();
        assert_eq!((r.id, r.name.as_str()), (7, "web1"));
        assert_eq!(r.uuid, "9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc");
        assert_eq!((r.config.memory, r.config.vcpus), (512, 2));
        assert_eq!(r.namespace, DEFAULT_NAMESPACE);
        let n = &r.config.networks[0];
        assert_eq!(n.tap, "mega_tap3");
        assert_eq!(n.driver, "virtio-net-pci");
        assert_eq!(n.hwaddr, "52:54:00:aa:bb:cc");
        assert!(n.disconnected);
    }

    #[test]
    fn no_name_or_uuid_is_not_ours() {
        assert!(record(1, &argv("qemu-system-x86_64 -m 512")).is_none());
        assert!(record(1, &argv("qemu-system-x86_64 -name a")).is_none());
        // The argv the daemon makes is read back.
        let cfg = VmConfig::default();
        let paths = super::super::argv::VmPaths::new(std::path::Path::new("/b"), 3);
        let a = super::super::argv::qemu_argv(&super::super::argv::Launch {
            name: "x",
            uuid: "u",
            paths: &paths,
            accel: super::super::accel::Accel::Tcg,
            config: &cfg,
            extra: &[],
        });
        let r = record(3, &a).unwrap();
        assert_eq!((r.name.as_str(), r.config.memory), ("x", cfg.memory));
    }
}
