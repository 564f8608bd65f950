//! The forms of `router VM ...` that set configuration: one method each,
//! with the checks minimega makes (and no others, so what it took is
//! taken: a DHCP range or a route is the guest's to judge).

use super::error::atoi;
use super::{Bgp, Dhcp, FwChain, FwRule, LogLevel, Ospf, Router, RouterError};
use std::net::IpAddr;

/// `net.ParseCIDR`: an address, `/`, and a prefix length that fits it.
pub fn is_cidr(s: &str) -> bool {
    let Some((addr, len)) = s.split_once('/') else {
        return false;
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return false;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    !len.is_empty()
        && len.len() <= 3
        && len.bytes().all(|b| b.is_ascii_digit())
        && len.parse::<u32>().is_ok_and(|n| n <= max)
}

/// What `router VM interface` takes: a CIDR, or `dhcp`.
pub fn is_interface_address(s: &str) -> bool {
    s == "dhcp" || is_cidr(s)
}

/// A firewall endpoint: an address, optionally `:PORT` with a numeric
/// port. minimega checks no more than that; minirouter checks the rest.
fn check_endpoint(which: &'static str, value: &str) -> Result<(), RouterError> {
    let fields: Vec<&str> = value.split(':').collect();
    match fields.len() {
        1 => Ok(()),
        2 => atoi(fields[1])
            .map(|_| ())
            .map_err(|reason| RouterError::FwPort {
                which,
                port: fields[1].to_string(),
                reason,
            }),
        _ => Err(RouterError::FwMalformed {
            which,
            value: value.to_string(),
        }),
    }
}

/// Checks a firewall rule's source (when given) and destination.
pub fn check_fw_endpoints(src: &str, dst: &str) -> Result<(), RouterError> {
    if !src.is_empty() {
        check_endpoint("source", src)?;
    }
    if !dst.is_empty() {
        check_endpoint("destination", dst)?;
    }
    Ok(())
}

impl Router {
    /// `router VM log level L`.
    pub fn set_log_level(&mut self, level: LogLevel) {
        self.log_level = level;
    }

    /// `router VM interface N ADDR [lo]`. `network` is the index as typed;
    /// a loopback takes any index (it only keys the loopback).
    pub fn interface_add(
        &mut self,
        network: &str,
        addr: &str,
        loopback: bool,
    ) -> Result<(), RouterError> {
        let n = atoi(network).map_err(|reason| RouterError::InvalidNetwork {
            network: network.to_string(),
            reason,
        })?;
        if loopback {
            if addr == "dhcp" {
                return Err(RouterError::NotOnLoopback(addr.to_string()));
            }
            if !is_interface_address(addr) {
                return Err(RouterError::InvalidIp(addr.to_string()));
            }
            if self.loopbacks.values().any(|v| v == addr) {
                return Err(RouterError::IpExists(addr.to_string()));
            }
            self.loopbacks.insert(n, addr.to_string());
            self.update_ips = true;
            return Ok(());
        }
        let idx = self.index(n)?;
        if !is_interface_address(addr) {
            return Err(RouterError::InvalidIp(addr.to_string()));
        }
        if self.ips[idx].iter().any(|v| v == addr) {
            return Err(RouterError::IpExists(addr.to_string()));
        }
        self.ips[idx].push(addr.to_string());
        self.update_ips = true;
        Ok(())
    }

    /// A network index this router has.
    pub(crate) fn index(&self, n: i64) -> Result<usize, RouterError> {
        usize::try_from(n)
            .ok()
            .filter(|i| *i < self.ips.len())
            .ok_or(RouterError::NoSuchNetworkIndex(n))
    }

    fn dhcp_entry(&mut self, listen: &str) -> &mut Dhcp {
        self.dhcp.entry(listen.to_string()).or_insert_with(|| Dhcp {
            addr: listen.to_string(),
            ..Dhcp::default()
        })
    }

    /// `router VM dhcp LISTEN range LOW HIGH`.
    pub fn dhcp_range(&mut self, listen: &str, low: &str, high: &str) {
        let d = self.dhcp_entry(listen);
        d.low = low.to_string();
        d.high = high.to_string();
    }

    /// `router VM dhcp LISTEN router GW`.
    pub fn dhcp_router(&mut self, listen: &str, router: &str) {
        self.dhcp_entry(listen).router = router.to_string();
    }

    /// `router VM dhcp LISTEN dns ADDR`.
    pub fn dhcp_dns(&mut self, listen: &str, dns: &str) {
        self.dhcp_entry(listen).dns = dns.to_string();
    }

    /// `router VM dhcp LISTEN static MAC IP`.
    pub fn dhcp_static(&mut self, listen: &str, mac: &str, ip: &str) {
        self.dhcp_entry(listen)
            .statics
            .insert(mac.to_string(), ip.to_string());
    }

    /// `router VM dns IP HOST`: one more name for the address.
    pub fn dns_add(&mut self, ip: &str, host: &str) {
        self.dns
            .entry(ip.to_string())
            .or_default()
            .push(host.to_string());
    }

    /// `router VM upstream IP`.
    pub fn set_upstream(&mut self, ip: &str) {
        self.upstream = ip.to_string();
    }

    /// `router VM gw GW`.
    pub fn set_gateway(&mut self, gw: &str) {
        self.gw = gw.to_string();
    }

    /// `router VM ra SUBNET`.
    pub fn ra_add(&mut self, subnet: &str) {
        self.ra.insert(subnet.to_string());
    }

    /// `router VM route static NET NH [NAME]`. A named route's next hop `0`
    /// means none (the route only feeds a filter, or rejects).
    pub fn route_static(&mut self, network: &str, next_hop: &str, name: Option<&str>) {
        match name.filter(|n| !n.is_empty()) {
            Some(name) => {
                let nh = if next_hop == "0" { "" } else { next_hop };
                self.named_routes
                    .entry(name.to_string())
                    .or_default()
                    .insert(network.to_string(), nh.to_string());
            }
            None => {
                self.static_routes
                    .insert(network.to_string(), next_hop.to_string());
            }
        }
    }

    fn ospf_area(&mut self, area: &str) -> &mut Ospf {
        self.ospf.entry(area.to_string()).or_insert_with(|| Ospf {
            area: area.to_string(),
            ..Ospf::default()
        })
    }

    /// `router VM route ospf AREA NETWORK`: the interface (an index or
    /// `lo`) joins the area. Its options are kept: minimega dropped them
    /// here, which left an interface one option at most.
    pub fn route_ospf(&mut self, area: &str, network: &str) {
        self.ospf_area(area)
            .interfaces
            .entry(network.to_string())
            .or_default();
    }

    /// `router VM route ospf AREA NETWORK OPTION VALUE`, e.g. `cost 10`:
    /// written into bird's interface block as `OPTION VALUE;`.
    pub fn route_ospf_option(&mut self, area: &str, network: &str, option: &str, value: &str) {
        self.ospf_area(area)
            .interfaces
            .entry(network.to_string())
            .or_default()
            .insert(option.to_string(), value.to_string());
    }

    /// `router VM route ospf AREA export NET|NAME`.
    pub fn route_ospf_export(&mut self, area: &str, filter: &str) {
        self.ospf_area(area).prefixes.insert(filter.to_string());
    }

    pub(crate) fn bgp_process(&mut self, name: &str) -> &mut Bgp {
        self.bgp.entry(name.to_string()).or_insert_with(|| Bgp {
            name: name.to_string(),
            ..Bgp::default()
        })
    }

    /// `router VM route bgp NAME local|neighbor IP AS`.
    pub fn route_bgp(
        &mut self,
        process: &str,
        local: bool,
        ip: &str,
        asn: &str,
    ) -> Result<(), RouterError> {
        let asn: u32 = asn
            .parse()
            .map_err(|_| RouterError::InvalidAs(asn.to_string()))?;
        let b = self.bgp_process(process);
        if local {
            b.local_ip = ip.to_string();
            b.local_as = asn;
        } else {
            b.neighbor_ip = ip.to_string();
            b.neighbor_as = asn;
        }
        Ok(())
    }

    /// `router VM route bgp NAME rrclient`: the neighbor is a route
    /// reflector client.
    pub fn route_bgp_rrclient(&mut self, process: &str) {
        self.bgp_process(process).route_reflector = true;
    }

    /// `router VM route bgp NAME export all|filter X`: `all` re-advertises
    /// what BGP learned; a filter names a static route to advertise.
    pub fn route_bgp_export(&mut self, process: &str, all: bool, filter: &str) {
        let name = if all { "all" } else { filter };
        self.bgp_process(process).exports.insert(name.to_string());
    }

    /// `router VM rid ID`: any IP address, as minimega takes (minirouter
    /// wants an IPv4 one for bird).
    pub fn set_router_id(&mut self, id: &str) -> Result<(), RouterError> {
        if id.parse::<IpAddr>().is_err() {
            return Err(RouterError::InvalidRouterId(id.to_string()));
        }
        self.router_id = id.to_string();
        Ok(())
    }

    /// `router VM fw default accept|drop`: the policy for forwarded packets.
    /// Every `fw` form is taken for a container router too (minimega
    /// refused them: its containers could not run iptables; ours run
    /// nftables in their own network namespace).
    pub fn fw_default(&mut self, action: &str) {
        self.fw.default_action = action.to_string();
    }

    /// `router VM fw ACTION in|out INDEX [SRC] DST PROTO`.
    pub fn fw_rule(
        &mut self,
        index: &str,
        inbound: bool,
        src: &str,
        dst: &str,
        proto: &str,
        action: &str,
    ) -> Result<(), RouterError> {
        let n = atoi(index).map_err(RouterError::FwIndex)?;
        check_fw_endpoints(src, dst)?;
        let idx = usize::try_from(n)
            .ok()
            .filter(|i| *i < self.fw.rules.len())
            .ok_or(RouterError::NoSuchNetworkIndex(n))?;
        self.fw.rules[idx].push(FwRule {
            inbound,
            src: src.to_string(),
            dst: dst.to_string(),
            proto: proto.to_string(),
            action: action.to_string(),
        });
        Ok(())
    }

    /// `router VM fw chain NAME default action ACTION`: what the chain
    /// does with a packet none of its rules took.
    pub fn fw_chain_default(&mut self, chain: &str, action: &str) {
        self.fw
            .chains
            .entry(chain.to_string())
            .or_default()
            .default_action = action.to_string();
    }

    /// `router VM fw chain NAME action ACTION [SRC] DST PROTO`. A chain
    /// made by its first rule drops by default.
    pub fn fw_chain_rule(
        &mut self,
        chain: &str,
        src: &str,
        dst: &str,
        proto: &str,
        action: &str,
    ) -> Result<(), RouterError> {
        check_fw_endpoints(src, dst)?;
        self.fw
            .chains
            .entry(chain.to_string())
            .or_insert_with(|| FwChain {
                default_action: "drop".into(),
                rules: Vec::new(),
            })
            .rules
            .push(FwRule {
                src: src.to_string(),
                dst: dst.to_string(),
                proto: proto.to_string(),
                action: action.to_string(),
                inbound: false,
            });
        Ok(())
    }

    /// `router VM fw chain NAME apply in|out INDEX`.
    pub fn fw_chain_apply(
        &mut self,
        chain: &str,
        inbound: bool,
        index: &str,
    ) -> Result<(), RouterError> {
        let n = atoi(index).map_err(RouterError::FwChainIndex)?;
        if !self.fw.chains.contains_key(chain) {
            return Err(RouterError::UnknownChain(chain.to_string()));
        }
        let idx = usize::try_from(n)
            .ok()
            .filter(|i| *i < self.fw.rules.len())
            .ok_or(RouterError::NoSuchNetworkIndex(n))?;
        self.fw.rules[idx].push(FwRule {
            inbound,
            action: chain.to_string(),
            ..FwRule::default()
        });
        Ok(())
    }
}
