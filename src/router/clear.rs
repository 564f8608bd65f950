//! The forms of `clear router VM ...`: one method each. An empty argument
//! means the form's "all" (the pattern left it out).

use super::error::atoi;
use super::forms::is_interface_address;
use super::{Firewall, Router, RouterError, UNSET_ROUTER_ID};

/// Which part of a DHCP server `clear router VM dhcp LISTEN PART` clears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpPart {
    /// The whole server.
    All,
    Range,
    Router,
    Dns,
    /// One static lease by MAC, or all of them (`None`).
    Static(Option<String>),
}

/// Which part of a BGP process `clear router VM route bgp NAME ...` clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BgpPart {
    All,
    RouteReflector,
    Local,
    Neighbor,
}

impl Router {
    /// `clear router VM`: everything but the gateway, the upstream DNS
    /// server and the log level, which minimega keeps too.
    pub fn clear_all(&mut self) {
        self.clear_interfaces();
        self.dns.clear();
        self.ra.clear();
        self.static_routes.clear();
        self.named_routes.clear();
        self.ospf.clear();
        self.dhcp.clear();
        self.bgp.clear();
        self.router_id = UNSET_ROUTER_ID.into();
        self.fw_flush();
    }

    /// `clear router VM interface`: every address, loopbacks too.
    pub fn clear_interfaces(&mut self) {
        for ips in &mut self.ips {
            ips.clear();
        }
        self.loopbacks.clear();
        self.update_ips = true;
    }

    /// `clear router VM interface N [ADDR|all] [lo]`. With `lo`, `all`
    /// clears every loopback and anything else the loopback keyed `N`
    /// (whatever its address). Without, an empty `addr` or `all` clears
    /// the interface.
    pub fn clear_interface(
        &mut self,
        network: &str,
        addr: &str,
        loopback: bool,
    ) -> Result<(), RouterError> {
        let n = atoi(network).map_err(RouterError::BadNetworkIndex)?;
        if loopback {
            if addr == "all" {
                self.loopbacks.clear();
            } else {
                self.loopbacks.remove(&n);
            }
            // minimega left the addresses clean here, so the commit after
            // it kept the loopback in the guest.
            self.update_ips = true;
            return Ok(());
        }
        let idx = self.index(n)?;
        if addr.is_empty() || addr == "all" {
            self.ips[idx].clear();
            self.update_ips = true;
            return Ok(());
        }
        if !is_interface_address(addr) {
            return Err(RouterError::InvalidIp(addr.to_string()));
        }
        let Some(pos) = self.ips[idx].iter().position(|v| v == addr) else {
            return Err(RouterError::NoSuchIp(addr.to_string()));
        };
        self.ips[idx].remove(pos);
        self.update_ips = true;
        Ok(())
    }

    /// `clear router VM dhcp [LISTEN [PART]]`.
    pub fn clear_dhcp(&mut self, listen: &str, part: &DhcpPart) -> Result<(), RouterError> {
        if listen.is_empty() {
            self.dhcp.clear();
            return Ok(());
        }
        let Some(d) = self.dhcp.get_mut(listen) else {
            return Err(RouterError::NoSuchDhcp(listen.to_string()));
        };
        match part {
            DhcpPart::All => {
                self.dhcp.remove(listen);
            }
            DhcpPart::Range => {
                d.low.clear();
                d.high.clear();
            }
            DhcpPart::Router => d.router.clear(),
            DhcpPart::Dns => d.dns.clear(),
            DhcpPart::Static(None) => d.statics.clear(),
            DhcpPart::Static(Some(mac)) => {
                if d.statics.remove(mac).is_none() {
                    return Err(RouterError::NoSuchMac(mac.clone()));
                }
            }
        }
        Ok(())
    }

    /// `clear router VM dns [IP]`: every name of the address, or all.
    pub fn clear_dns(&mut self, ip: &str) -> Result<(), RouterError> {
        if ip.is_empty() {
            self.dns.clear();
        } else if self.dns.remove(ip).is_none() {
            return Err(RouterError::NoSuchDns(ip.to_string()));
        }
        Ok(())
    }

    /// `clear router VM upstream`.
    pub fn clear_upstream(&mut self) {
        self.upstream.clear();
    }

    /// `clear router VM gw`.
    pub fn clear_gateway(&mut self) {
        self.gw.clear();
    }

    /// `clear router VM ra [SUBNET]`.
    pub fn clear_ra(&mut self, subnet: &str) -> Result<(), RouterError> {
        if subnet.is_empty() {
            self.ra.clear();
        } else if !self.ra.remove(subnet) {
            return Err(RouterError::NoSuchSubnet(subnet.to_string()));
        }
        Ok(())
    }

    /// `clear router VM route`: routes of every protocol.
    pub fn clear_routes(&mut self) {
        self.static_routes.clear();
        self.named_routes.clear();
        self.ospf.clear();
        self.bgp.clear();
    }

    /// `clear router VM route static [NET|all]`: unnamed static routes.
    pub fn clear_route_static(&mut self, network: &str) -> Result<(), RouterError> {
        if network.is_empty() || network == "all" {
            self.static_routes.clear();
            return Ok(());
        }
        if self.static_routes.remove(network).is_none() {
            return Err(RouterError::NoSuchStaticRoute(network.to_string()));
        }
        Ok(())
    }

    /// `clear router VM route static NET|all NAME`, and with an empty name
    /// `clear router VM route namedstatic`: named static routes.
    pub fn clear_route_named(&mut self, network: &str, name: &str) -> Result<(), RouterError> {
        if name.is_empty() {
            self.named_routes.clear();
            return Ok(());
        }
        let Some(routes) = self.named_routes.get_mut(name) else {
            return Err(RouterError::NoSuchNamedRoute(name.to_string()));
        };
        if network == "all" {
            self.named_routes.remove(name);
            return Ok(());
        }
        if routes.remove(network).is_none() {
            return Err(RouterError::NoSuchNamedNetwork(network.to_string()));
        }
        Ok(())
    }

    /// `clear router VM route ospf [AREA [NETWORK]]`: with an area alone,
    /// its interfaces and exports go but the (empty) area stays, as in
    /// minimega.
    pub fn clear_ospf(&mut self, area: &str, network: &str) -> Result<(), RouterError> {
        if area.is_empty() {
            self.ospf.clear();
            return Ok(());
        }
        let Some(o) = self.ospf.get_mut(area) else {
            return Err(RouterError::NoSuchArea(area.to_string()));
        };
        if network.is_empty() {
            o.interfaces.clear();
            o.prefixes.clear();
            return Ok(());
        }
        if o.interfaces.remove(network).is_none() {
            return Err(RouterError::NoSuchOspfInterface(network.to_string()));
        }
        Ok(())
    }

    /// `clear router VM route ospf AREA export NET|NAME`.
    pub fn clear_ospf_export(&mut self, area: &str, filter: &str) -> Result<(), RouterError> {
        let Some(o) = self.ospf.get_mut(area) else {
            return Err(RouterError::NoSuchArea(area.to_string()));
        };
        if !o.prefixes.remove(filter) {
            return Err(RouterError::NoSuchOspfFilter(filter.to_string()));
        }
        Ok(())
    }

    /// `clear router VM route bgp NAME [rrclient|local|neighbor]`.
    pub fn clear_bgp(&mut self, process: &str, part: BgpPart) -> Result<(), RouterError> {
        let Some(b) = self.bgp.get_mut(process) else {
            return Err(RouterError::NoSuchBgp(process.to_string()));
        };
        match part {
            BgpPart::All => {
                self.bgp.remove(process);
            }
            BgpPart::RouteReflector => b.route_reflector = false,
            BgpPart::Local => {
                b.local_ip.clear();
                b.local_as = 0;
            }
            BgpPart::Neighbor => {
                b.neighbor_ip.clear();
                b.neighbor_as = 0;
            }
        }
        Ok(())
    }

    /// `clear router VM rid`: choose one again at the next commit.
    pub fn clear_router_id(&mut self) {
        self.router_id = UNSET_ROUTER_ID.into();
    }

    /// `clear router VM fw`: no rules, no chains, accept.
    pub fn fw_flush(&mut self) {
        self.fw = Firewall::new(self.fw.rules.len());
    }
}
