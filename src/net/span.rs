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
use crate::command::lexer::quote_if_needed;
use crate::daemon::Node;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
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
async fn resolve(host: &str) -> Result<Ipv4Addr, NetError> {
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
fn source_toward(to: Ipv4Addr) -> Result<Ipv4Addr, NetError> {
    let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.connect((to, 4789)).map(|_| s))
        .and_then(|s| s.local_addr())
        .map_err(|e| NetError::Failed(format!("no route to {to}: {e}")))?;
    match s.ip() {
        IpAddr::V4(v) => Ok(v),
        IpAddr::V6(_) => failed(format!("no IPv4 route to {to}")),
    }
}

/// What one host does to its bridge.
enum Act<'a> {
    Tunnel {
        kind: &'a str,
        remote: Ipv4Addr,
        key: u32,
    },
    NoTunnel(&'a str),
}

/// Does `act` to `bridge` on `host`: here directly, elsewhere as the
/// `bridge` command over the mesh. Returns a new tunnel's device.
async fn on(node: &Node, host: &str, bridge: &str, act: Act<'_>) -> Result<String, NetError> {
    let named = |e: NetError| NetError::Failed(format!("{host}: {e}"));
    if host == node.hostname() {
        return match act {
            Act::Tunnel { kind, remote, key } => node
                .net
                .add_tunnel(kind, bridge, &remote.to_string(), Some(&key.to_string()))
                .await
                .map_err(named),
            Act::NoTunnel(iface) => node
                .net
                .remove_tunnel(bridge, iface)
                .await
                .map(|_| String::new())
                .map_err(named),
        };
    }
    let br = quote_if_needed(bridge, false);
    let line = match act {
        Act::Tunnel { kind, remote, key } => format!("bridge tunnel {kind} {br} {remote} {key}"),
        Act::NoTunnel(iface) => format!("bridge notunnel {br} {}", quote_if_needed(iface, false)),
    };
    let answers = node.mesh.send(&[host.to_string()], &line).await;
    match answers.into_iter().next() {
        Some(r) if r.is_error() => failed(format!("{host}: {}", r.error)),
        Some(r) => Ok(r.response.trim().to_string()),
        None => failed(format!("{host}: no answer")),
    }
}

/// `ns bridge BRIDGE [vxlan|gre]` for namespace `ns` over `hosts`.
pub async fn create(
    node: &Node,
    ns: &str,
    hosts: &BTreeSet<String>,
    bridge: &str,
    kind: &str,
) -> Result<(), NetError> {
    super::bridges::bridge_name(bridge)?;
    let spans = node.net.saved().spans;
    if spans.get(ns).is_some_and(|m| m.contains_key(bridge)) {
        return failed(format!("bridge {bridge} already spans namespace {ns}"));
    }
    if hosts.len() < 2 {
        return Ok(());
    }
    let me = node.hostname();
    let hub = if hosts.contains(me) {
        me.to_string()
    } else {
        hosts.iter().next().cloned().unwrap_or_default()
    };
    let mut spokes = Vec::new();
    for h in hosts.iter().filter(|h| **h != hub) {
        spokes.push((h.clone(), resolve(h).await?));
    }
    let hub_ip = if hub == me {
        None
    } else {
        Some(resolve(&hub).await?)
    };
    let mut toward = Vec::new();
    for (_, ip) in &spokes {
        toward.push((*ip, hub_ip.map_or_else(|| source_toward(*ip), Ok)?));
    }
    let plan = star(&hub, &spokes, |ip| {
        toward
            .iter()
            .find(|(s, _)| *s == ip)
            .map_or(ip, |(_, h)| *h)
    });
    let key = key(ns, bridge);
    let mut made: Vec<Leg> = Vec::new();
    for (host, remote) in plan {
        let act = Act::Tunnel { kind, remote, key };
        match on(node, &host, bridge, act).await {
            Ok(iface) => made.push(Leg { host, iface }),
            Err(e) => {
                // Nothing half-made: the tunnels so far go again.
                remove(node, bridge, &made).await;
                return Err(e);
            }
        }
    }
    node.net.update(|s| {
        s.spans
            .entry(ns.to_string())
            .or_default()
            .insert(bridge.to_string(), made)
    });
    Ok(())
}

/// Takes `legs` down; returns those that failed, with why.
async fn remove(node: &Node, bridge: &str, legs: &[Leg]) -> Vec<(Leg, NetError)> {
    let mut left = Vec::new();
    for l in legs {
        if let Err(e) = on(node, &l.host, bridge, Act::NoTunnel(&l.iface)).await {
            left.push((l.clone(), e));
        }
    }
    left
}

/// `ns del-bridge BRIDGE|all`: the namespace's spanning bridge's tunnels
/// go, on every host (one host's failure does not keep the others'; its
/// tunnels stay on record for another try). The bridges themselves stay,
/// as after `bridge notunnel`.
pub async fn delete(node: &Node, ns: &str, bridge: &str) -> Result<(), NetError> {
    let spans = node.net.saved().spans.get(ns).cloned().unwrap_or_default();
    let which: Vec<(String, Vec<Leg>)> = if bridge == "all" {
        spans.into_iter().collect()
    } else {
        match spans.get(bridge) {
            Some(l) => vec![(bridge.to_string(), l.clone())],
            None => return failed("bridge is not associated with namespace"),
        }
    };
    let mut first = None;
    for (b, legs) in which {
        let (left, errors): (Vec<Leg>, Vec<NetError>) =
            remove(node, &b, &legs).await.into_iter().unzip();
        // What could not be removed stays on record, for another try.
        node.net.update(|s| {
            if let Some(m) = s.spans.get_mut(ns) {
                if left.is_empty() {
                    m.remove(&b);
                } else {
                    m.insert(b.clone(), left);
                }
                if m.is_empty() {
                    s.spans.remove(ns);
                }
            }
        });
        first = first.or(errors.into_iter().next());
    }
    first.map_or(Ok(()), Err)
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
