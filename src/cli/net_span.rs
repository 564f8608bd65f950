//! `ns bridge`: a bridge spanning a namespace's hosts, each host's tunnels
//! made by the head over the mesh; the pure plan is `net::span`.

use crate::command::lexer::quote_if_needed;
use crate::net::span::*;
use crate::net::{failed, NetError};
use crate::node::Node;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

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
    crate::net::bridges::bridge_name(bridge)?;
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
    let recorded = node.net.update(|s| {
        s.spans
            .entry(ns.to_string())
            .or_default()
            .insert(bridge.to_string(), made.clone())
    });
    if let Err(e) = recorded {
        // Not recorded, so not made: a tunnel nobody knows of would stay.
        remove(node, bridge, &made).await;
        return Err(e);
    }
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
        let recorded = node.net.update(|s| {
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
        first = first.or(recorded.err()).or(errors.into_iter().next());
    }
    first.map_or(Ok(()), Err)
}
