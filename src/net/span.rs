//! One bridge spanning a namespace's hosts (`ns bridge BR [vxlan|gre]`,
//! `ns del-bridge BR`): the node where it is typed puts tunnels between
//! the hosts' bridges of that name, each carrying every VLAN, and
//! remembers them so `ns del-bridge` (and `clear namespace`) takes them
//! down again.
//!
//! The tunnels form a star around one hub (this node when it is a host of
//! the namespace), not minimega's full mesh: a mesh of three or more hosts
//! has loops, which minimega breaks with RSTP; a star has none, so no
//! spanning tree has to converge before the first packet passes, on either
//! datapath. Hosts' addresses come from name resolution, as in minimega;
//! this node's address toward each host is the one its kernel would send
//! from, so a name that resolves to loopback here does no harm.

use super::{failed, NetError};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};

/// A tunnel of a spanning bridge: `host`'s device `iface`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leg {
    pub host: String,
    pub iface: String,
}

/// The tunnels of a star around `hub`: (host, the address its tunnel
/// goes to), for each spoke both directions. `hub_toward` is the hub's
/// address as seen from a spoke's address.
pub fn star(
    hub: &str,
    spokes: &[(String, Ipv4Addr)],
    hub_toward: impl Fn(Ipv4Addr) -> Ipv4Addr,
) -> Vec<(String, Ipv4Addr)> {
    spokes
        .iter()
        .flat_map(|(host, ip)| [(hub.to_string(), *ip), (host.clone(), hub_toward(*ip))])
        .collect()
}

/// A tunnel key for the namespace's bridge, the same every time it is
/// made (below 2^24: VXLAN's VNI is 24 bits), never 0 (untagged VXLAN).
pub fn key(ns: &str, bridge: &str) -> u32 {
    // FNV-1a: stable across builds, unlike std's hasher.
    let h = format!("{ns}//{bridge}")
        .bytes()
        .fold(0x811c_9dc5u32, |h, b| {
            (h ^ b as u32).wrapping_mul(0x0100_0193)
        });
    (h & 0x00ff_ffff).max(1)
}

/// `host`'s IPv4 address by name resolution, loopback skipped.
pub async fn resolve(host: &str) -> Result<Ipv4Addr, NetError> {
    let found = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| NetError::Failed(format!("cannot resolve host {host}: {e}")))?;
    found
        .filter_map(|a| match a.ip() {
            IpAddr::V4(v) if !v.is_loopback() => Some(v),
            _ => None,
        })
        .next()
        .ok_or_else(|| {
            NetError::Failed(format!(
                "host {host} resolves to no IPv4 address beyond loopback"
            ))
        })
}

/// The address this node's kernel sends from toward `to` (no packet
/// is sent: a UDP socket's connect only picks the route).
pub fn source_toward(to: Ipv4Addr) -> Result<Ipv4Addr, NetError> {
    let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.connect((to, 4789)).map(|_| s))
        .and_then(|s| s.local_addr())
        .map_err(|e| NetError::Failed(format!("no route to {to}: {e}")))?;
    match s.ip() {
        IpAddr::V4(v) => Ok(v),
        IpAddr::V6(_) => failed(format!("no IPv4 route to {to}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_star_joins_every_host_to_the_hub_both_ways() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let spokes = [
            ("n2".to_string(), ip("10.0.0.2")),
            ("n3".into(), ip("10.1.0.3")),
        ];
        // The hub is seen at a different address from each network.
        let toward = |to: Ipv4Addr| {
            if to.octets()[1] == 1 {
                ip("10.1.0.1")
            } else {
                ip("10.0.0.1")
            }
        };
        assert_eq!(
            star("n1", &spokes, toward),
            [
                ("n1".to_string(), ip("10.0.0.2")),
                ("n2".into(), ip("10.0.0.1")),
                ("n1".into(), ip("10.1.0.3")),
                ("n3".into(), ip("10.1.0.1")),
            ]
        );
        assert!(star("n1", &[], toward).is_empty());
    }

    #[test]
    fn keys_are_stable_nonzero_and_fit_a_vni() {
        assert_eq!(key("exp", "mega_bridge"), key("exp", "mega_bridge"));
        assert_ne!(key("exp", "mega_bridge"), key("exp2", "mega_bridge"));
        for (ns, b) in [("a", "b"), ("minimega", "mega_bridge"), ("", "")] {
            let k = key(ns, b);
            assert!(k > 0 && k < 1 << 24, "{k}");
        }
    }

    #[test]
    fn this_nodes_address_toward_loopback_is_loopback() {
        assert_eq!(
            source_toward(Ipv4Addr::LOCALHOST).unwrap(),
            Ipv4Addr::LOCALHOST
        );
    }
}
