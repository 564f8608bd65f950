//! The QEMU side of a NIC: its command-line arguments at launch and the
//! QMP commands that hot-plug one, both pure. Each NIC `i` is netdev
//! `net{i}` on its tap (opened by name; the daemon made it) and device
//! `nic{i}` with the NIC's MAC. MACs are generated here too.

use crate::vm::nic::{Mac, Nic};
use serde_json::{json, Value};

/// `-netdev` and `-device` for NIC `i`.
pub fn nic_args(i: usize, nic: &Nic) -> Vec<String> {
    vec![
        "-netdev".into(),
        format!("tap,id=net{i},ifname={},script=no,downscript=no", nic.tap),
        "-device".into(),
        format!("{},netdev=net{i},mac={},id=nic{i}", nic.driver, nic.hwaddr),
    ]
}

/// Every NIC's arguments, in order.
pub fn argv(nics: &[Nic]) -> Vec<String> {
    nics.iter()
        .enumerate()
        .flat_map(|(i, n)| nic_args(i, n))
        .collect()
}

/// QMP `netdev_add` then `device_add` for a NIC added to a running VM.
pub fn hotplug(i: usize, nic: &Nic) -> [(&'static str, Value); 2] {
    [
        (
            "netdev_add",
            json!({"type": "tap", "id": format!("net{i}"), "ifname": nic.tap, "script": "no", "downscript": "no"}),
        ),
        (
            "device_add",
            json!({"driver": nic.driver, "netdev": format!("net{i}"), "mac": nic.hwaddr, "id": format!("nic{i}")}),
        ),
    ]
}

/// A MAC from random bytes: QEMU's locally administered `52:54` prefix
/// and four random bytes (2^32 of them, so VMs across a mesh rarely meet).
pub fn mac_from(random: [u8; 4]) -> Mac {
    let [a, b, c, d] = random;
    Mac([0x52, 0x54, a, b, c, d])
}

/// A MAC none of `taken` has.
pub fn unique_mac(taken: &dyn Fn(&Mac) -> bool) -> Mac {
    loop {
        let mut r = [0u8; 4];
        if getrandom::getrandom(&mut r).is_err() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            r = t.to_le_bytes();
        }
        let m = mac_from(r);
        if !taken(&m) {
            return m;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nic(tap: &str, mac: &str, driver: &str) -> Nic {
        Nic {
            tap: tap.into(),
            hwaddr: mac.into(),
            driver: driver.into(),
            ..Nic::default()
        }
    }

    #[test]
    fn one_netdev_and_device_per_nic() {
        let nics = [
            nic("mega_tap0", "52:54:00:00:00:01", "e1000"),
            nic("mega_tap7", "52:54:00:00:00:02", "virtio-net-pci"),
        ];
        assert_eq!(
            argv(&nics).join(" "),
            "-netdev tap,id=net0,ifname=mega_tap0,script=no,downscript=no \
             -device e1000,netdev=net0,mac=52:54:00:00:00:01,id=nic0 \
             -netdev tap,id=net1,ifname=mega_tap7,script=no,downscript=no \
             -device virtio-net-pci,netdev=net1,mac=52:54:00:00:00:02,id=nic1"
        );
        assert!(argv(&[]).is_empty());
    }

    #[test]
    fn hotplug_matches_the_launch_form() {
        let [(a, na), (b, da)] = hotplug(2, &nic("mega_tap9", "52:54:00:00:00:09", "e1000"));
        assert_eq!((a, b), ("netdev_add", "device_add"));
        assert_eq!(na["id"], "net2");
        assert_eq!(na["ifname"], "mega_tap9");
        assert_eq!(da["netdev"], "net2");
        assert_eq!(da["mac"], "52:54:00:00:00:09");
        assert_eq!(da["id"], "nic2");
    }

    #[test]
    fn macs_are_unicast_local_and_avoid_taken_ones() {
        let m = mac_from([1, 2, 3, 4]);
        assert_eq!(m.to_string(), "52:54:01:02:03:04");
        assert!(!m.is_multicast() && m.0[0] & 2 == 2);
        let first = unique_mac(&|_| false);
        let second = unique_mac(&|m| *m == first);
        assert_ne!(first, second);
    }
}
