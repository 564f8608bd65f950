//! Bridges as `bridge` shows and changes them (trunk ports, tunnels to
//! other nodes) and host taps (`tap create`: an internal port of the switch
//! on a VLAN, optionally addressed). A tunnel is a kernel VXLAN or GRE
//! device put on the bridge as a trunk, so it works on either datapath and
//! its outer packets take the host's own routes.

use super::ovs::{Op, PortKind, PortSpec};
use super::sys::netlink::{Netlink, Tunnel};
use super::{failed, lock, BridgeBook, HostTap, Net, NetError, TunnelBook};
use std::net::{IpAddr, Ipv4Addr};

pub(super) fn nl() -> Result<Netlink, NetError> {
    Netlink::open().map_err(|e| NetError::Failed(format!("netlink: {e}")))
}

pub fn bridge_name(b: &str) -> Result<(), NetError> {
    crate::vm::nic::check_bridge(b)
        .map_err(|why| NetError::Failed(format!("invalid bridge `{b}`: {why}")))
}

fn trunk(bridge: &str, iface: &str) -> Op {
    Op::AddPort(PortSpec {
        bridge: bridge.into(),
        name: iface.into(),
        tag: None,
        qinq: false,
        kind: PortKind::System,
        owner: None,
    })
}

impl Net {
    /// `bridge trunk BR IFACE`: IFACE carries every VLAN of BR.
    pub async fn add_trunk(&self, bridge: &str, iface: &str) -> Result<(), NetError> {
        bridge_name(bridge)?;
        if super::sys::index(iface).is_none() {
            return failed(format!("no network interface {iface}"));
        }
        self.apply(vec![trunk(bridge, iface)]).await?;
        let recorded = self.update(|s| {
            let b = s.bridges.entry(bridge.into()).or_default();
            if !b.trunks.iter().any(|t| t == iface) {
                b.trunks.push(iface.into());
            }
        });
        if let Err(e) = recorded {
            // Not recorded, so not made.
            let _ = self.apply(vec![Op::DelPort(iface.into())]).await;
            return Err(e);
        }
        Ok(())
    }

    pub async fn remove_trunk(&self, bridge: &str, iface: &str) -> Result<(), NetError> {
        let known = self
            .saved()
            .bridges
            .get(bridge)
            .is_some_and(|b| b.trunks.iter().any(|t| t == iface));
        if !known {
            return failed(format!("{iface} is not a trunk of bridge {bridge}"));
        }
        self.apply(vec![Op::DelPort(iface.into())]).await?;
        let recorded = self.update(|s| {
            if let Some(b) = s.bridges.get_mut(bridge) {
                b.trunks.retain(|t| t != iface);
            }
        });
        if let Err(e) = recorded {
            // Still on record, so still there.
            let _ = self.apply(vec![trunk(bridge, iface)]).await;
            return Err(e);
        }
        Ok(())
    }

    /// `bridge tunnel vxlan|gre BR REMOTE [KEY]`.
    pub async fn add_tunnel(
        &self,
        kind: &str,
        bridge: &str,
        remote: &str,
        key: Option<&str>,
    ) -> Result<String, NetError> {
        bridge_name(bridge)?;
        let ip: Ipv4Addr = match remote.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => a,
            _ => {
                return failed(format!(
                    "invalid remote `{remote}`: expected an IPv4 address"
                ))
            }
        };
        let key = match key {
            None => None,
            Some(k) => match k.parse::<u32>() {
                Ok(v) if kind != "vxlan" || v < 1 << 24 => Some(v),
                _ => {
                    return failed(format!(
                        "invalid key `{k}`: expected a number (below 16777216 for vxlan)"
                    ))
                }
            },
        };
        let t = match kind {
            "vxlan" => Tunnel::Vxlan {
                vni: key.unwrap_or(0),
                remote: ip,
            },
            _ => Tunnel::Gre { key, remote: ip },
        };
        let name = self.reserve_name(&format!("mega_{kind}"));
        let made = nl().and_then(|mut n| {
            n.new_tunnel(&name, &t).map_err(|e| tunnel_error(kind, e))?;
            let i = super::sys::index(&name)
                .ok_or_else(|| NetError::Failed(format!("{name} vanished")))?;
            n.set_up(i)
                .map_err(|e| NetError::Failed(format!("{name}: {e}")))
        });
        let r = match made {
            Ok(()) => self.apply(vec![trunk(bridge, &name)]).await,
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            if let Ok(mut n) = Netlink::open() {
                let _ = n.delete(&name);
            }
            self.unreserve(&name);
            return Err(e);
        }
        let recorded = self.update(|s| {
            s.bridges
                .entry(bridge.into())
                .or_default()
                .tunnels
                .push(TunnelBook {
                    iface: name.clone(),
                    kind: kind.into(),
                    remote: remote.into(),
                })
        });
        if let Err(e) = recorded {
            // Not recorded, so not made.
            let _ = self.apply(vec![Op::DelPort(name.clone())]).await;
            if let Ok(mut n) = Netlink::open() {
                let _ = n.delete(&name);
            }
            self.unreserve(&name);
            return Err(e);
        }
        Ok(name)
    }

    pub async fn remove_tunnel(&self, bridge: &str, iface: &str) -> Result<(), NetError> {
        let known = self
            .saved()
            .bridges
            .get(bridge)
            .is_some_and(|b| b.tunnels.iter().any(|t| t.iface == iface));
        if !known {
            return failed(format!("{iface} is not a tunnel of bridge {bridge}"));
        }
        self.apply(vec![Op::DelPort(iface.into())]).await?;
        nl()?
            .delete(iface)
            .map_err(|e| NetError::Failed(format!("{iface}: {e}")))?;
        self.unreserve(iface);
        // The tunnel is gone; a record still naming it is only stale (the
        // next `bridge notunnel` finds nothing to remove), but say so.
        self.update(|s| {
            if let Some(b) = s.bridges.get_mut(bridge) {
                b.tunnels.retain(|t| t.iface != iface);
            }
        })?;
        Ok(())
    }

    /// `bridge`: the bridges this node uses, as the switch has them.
    pub async fn bridge_rows(&self, ns: &str) -> Result<Vec<Vec<String>>, NetError> {
        let books = self.saved().bridges;
        let live = self.switch().bridges().await?;
        let mut rows = Vec::new();
        for (name, book) in &books {
            let state = live.iter().find(|b| &b.name == name);
            // A bridge a failed launch made was removed again.
            if state.is_none() && book.trunks.is_empty() && book.tunnels.is_empty() {
                continue;
            }
            let mut vlans: Vec<u16> = state
                .map(|b| b.ports.iter().filter_map(|p| p.tag).collect())
                .unwrap_or_default();
            vlans.sort_unstable();
            vlans.dedup();
            let vlans: Vec<String> = vlans.into_iter().map(|v| self.print_vlan(ns, v)).collect();
            let tunnels: Vec<String> = book
                .tunnels
                .iter()
                .map(|t| format!("{} ({} {})", t.iface, t.kind, t.remote))
                .collect();
            let datapath = match state.map(|b| b.datapath.as_str()) {
                Some("netdev") => "userspace",
                Some("system") | Some("") => "kernel",
                Some(_) => "other",
                None => "gone",
            };
            // Ports of several interfaces: bonds, minimega's `NAME (A B)`.
            let bonds: Vec<String> = state
                .map(|b| {
                    b.ports
                        .iter()
                        .filter(|p| p.members.len() > 1)
                        .map(|p| format!("{} ({})", p.name, p.members.join(" ")))
                        .collect()
                })
                .unwrap_or_default();
            rows.push(vec![
                name.clone(),
                book.preexisting.to_string(),
                list(&vlans),
                list(&book.trunks),
                list(&tunnels),
                list(&bonds),
                serde_json::to_string(&book.config).unwrap_or_default(),
                datapath.into(),
            ]);
        }
        Ok(rows)
    }

    // ---- host taps ----

    /// `tap create VLAN [bridge BR] [name T | ip CIDR [T] | dhcp [T]]`.
    pub async fn create_host_tap(
        &self,
        ns: &str,
        vlan: u16,
        bridge: &str,
        name: Option<&str>,
        ip: Option<&str>,
        dhcp: bool,
    ) -> Result<String, NetError> {
        bridge_name(bridge)?;
        let addr = match ip {
            None => None,
            Some(cidr) => Some(parse_cidr(cidr)?),
        };
        let name = match name {
            Some(n) => {
                crate::vm::nic::check_bridge(n)
                    .map_err(|why| NetError::Failed(format!("invalid tap name `{n}`: {why}")))?;
                if super::sys::index(n).is_some() || !self.claim(n) {
                    return failed(format!("tap {n} already exists"));
                }
                n.to_string()
            }
            None => self.reserve_name("mega_tap"),
        };
        let port = Op::AddPort(PortSpec {
            bridge: bridge.into(),
            name: name.clone(),
            tag: Some(vlan),
            qinq: false,
            kind: PortKind::Internal,
            owner: None,
        });
        let r = async {
            self.apply(vec![port]).await?;
            let i = super::sys::index(&name)
                .ok_or_else(|| NetError::Failed(format!("the switch made no device {name}")))?;
            let mut n = nl()?;
            n.set_up(i)
                .map_err(|e| NetError::Failed(format!("{name}: {e}")))?;
            if let Some((ip, prefix)) = addr {
                n.add_addr(i, ip, prefix)
                    .map_err(|e| NetError::Failed(format!("cannot address {name}: {e}")))?;
            }
            if dhcp {
                dhcp_client(&name).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = r {
            let _ = self.apply(vec![Op::DelPort(name.clone())]).await;
            self.unreserve(&name);
            return Err(e);
        }
        let recorded = self.update(|s| {
            s.host_taps.insert(
                name.clone(),
                HostTap {
                    namespace: ns.into(),
                    bridge: bridge.into(),
                    vlan,
                },
            )
        });
        if let Err(e) = recorded {
            // Not recorded, so not made.
            let _ = self.apply(vec![Op::DelPort(name.clone())]).await;
            self.unreserve(&name);
            return Err(e);
        }
        Ok(name)
    }

    /// `tap delete T|all`: the namespace's host taps.
    pub async fn delete_host_taps(&self, ns: &str, which: &str) -> Result<(), NetError> {
        let mine: Vec<String> = self
            .saved()
            .host_taps
            .iter()
            .filter(|(n, t)| t.namespace == ns && (which == "all" || *n == which))
            .map(|(n, _)| n.clone())
            .collect();
        if mine.is_empty() && which != "all" {
            return failed(format!("no host tap {which} in namespace {ns}"));
        }
        self.apply(mine.iter().map(|t| Op::DelPort(t.clone())).collect())
            .await?;
        // The taps are gone; a record still naming them is only stale.
        let recorded = self.update(|s| {
            for t in &mine {
                s.host_taps.remove(t);
            }
        });
        for t in &mine {
            self.unreserve(t);
        }
        recorded
    }

    pub fn host_tap_rows(&self, ns: &str) -> Vec<Vec<String>> {
        let s = lock(&self.saved);
        s.host_taps
            .iter()
            .filter(|(_, t)| t.namespace == ns)
            .map(|(n, t)| vec![t.bridge.clone(), n.clone(), s.vlans.print(ns, t.vlan)])
            .collect()
    }

    /// The bookkeeping of one bridge (for tests and `bridge`).
    pub fn book(&self, bridge: &str) -> Option<BridgeBook> {
        self.saved().bridges.get(bridge).cloned()
    }
}

/// A kernel that lacks the tunnel's device type is named.
fn tunnel_error(kind: &str, e: std::io::Error) -> NetError {
    let missing = matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP) | Some(libc::ENOENT)
    );
    NetError::Failed(match (kind, missing) {
        ("gre", true) => "GRE tunnels need the kernel's gretap device (module ip_gre), which this kernel lacks; use a vxlan tunnel".into(),
        ("vxlan", true) => "VXLAN tunnels need the kernel's vxlan device (module vxlan), which this kernel lacks".into(),
        _ => format!("cannot make the {kind} device: {e}"),
    })
}

fn parse_cidr(cidr: &str) -> Result<(IpAddr, u8), NetError> {
    let bad = || {
        NetError::Failed(format!(
            "invalid address `{cidr}`: expected ADDRESS[/PREFIX], e.g. 10.0.0.1/24"
        ))
    };
    // A bare address is a host address, as `ip addr add` (and so
    // minimega's `tap create ... ip`) takes it.
    let (a, p) = cidr.split_once('/').unwrap_or((cidr, ""));
    let ip: IpAddr = a.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = if p.is_empty() && !cidr.contains('/') {
        max
    } else {
        p.parse().map_err(|_| bad())?
    };
    if prefix > max {
        return Err(bad());
    }
    Ok((ip, prefix))
}

/// One DHCP lease on `tap`, with whichever client the host has.
async fn dhcp_client(tap: &str) -> Result<(), NetError> {
    let (prog, args): (&str, Vec<&str>) = if crate::paths::find_binary("dhclient").is_some() {
        ("dhclient", vec!["-1", tap])
    } else if crate::paths::find_binary("udhcpc").is_some() {
        ("udhcpc", vec!["-n", "-q", "-i", tap])
    } else {
        return failed("no DHCP client: install isc-dhcp-client (dhclient) or udhcpc");
    };
    let out = tokio::process::Command::new(prog)
        .args(&args)
        .output()
        .await
        .map_err(|e| NetError::Failed(format!("{prog}: {e}")))?;
    if !out.status.success() {
        let e = String::from_utf8_lossy(&out.stderr);
        return failed(format!(
            "{prog} on {tap}: {}",
            e.lines().last().unwrap_or("no lease")
        ));
    }
    Ok(())
}

/// A list cell, minimega style: `[a, b]`.
pub fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_and_lists() {
        assert_eq!(parse_cidr("10.0.0.1/24").unwrap().1, 24);
        assert!(parse_cidr("fd00::1/64").unwrap().0.is_ipv6());
        assert_eq!(parse_cidr("10.0.0.1").unwrap().1, 32);
        assert_eq!(parse_cidr("fd00::1").unwrap().1, 128);
        assert!(parse_cidr("10.0.0.1/33").is_err() && parse_cidr("10.0.0.1/").is_err());
        assert!(parse_cidr("nonsense").is_err());
        assert_eq!(list(&["a".into(), "b".into()]), "[a, b]");
        assert_eq!(list(&[]), "[]");
        let e = tunnel_error("gre", std::io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        assert!(e
            .to_string()
            .starts_with("GRE tunnels need the kernel's gretap device (module ip_gre)"));
    }
}
