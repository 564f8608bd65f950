//! The typed forms a match of [`ROUTER_PATTERNS`] or
//! [`CLEAR_ROUTER_PATTERNS`] becomes, and their dispatch.
//!
//! The daemon's handler: resolve `<vm>` (`vm` key) on the node that runs
//! it; [`Form::from_args`]; [`Form::Show`] needs an existing router (else
//! [`RouterError::NotARouter`]), any other form makes one on first use
//! (tag the VM `minirouter=ID`, as minimega does); `commit` writes
//! [`Router::commit`]'s file and queues its commands; everything else is
//! [`Router::apply`]. `clear router` mirrors it with [`ClearForm`]
//! ([`ClearForm::AllRouters`] forgets the namespace's routers; any other
//! needs an existing router, else [`RouterError::NoSuchRouter`]).

use super::clear::{BgpPart, DhcpPart};
use super::{LogLevel, Router, RouterError};
use crate::command::Args;

pub use super::patterns::{CLEAR_ROUTER_PATTERNS, ROUTER_PATTERNS};

/// A firewall verdict as typed (`accept`, `drop`, `reject`).
fn action(a: &Args) -> &'static str {
    ["accept", "drop", "reject"]
        .into_iter()
        .find(|v| a.flag(v))
        .unwrap_or("")
}

fn s(a: &Args, key: &str) -> String {
    a.string(key).unwrap_or_default().to_string()
}

/// One matched `router VM ...` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// `router VM`: print the summary.
    Show,
    Commit,
    RouterId(String),
    Log(LogLevel),
    Interface {
        network: String,
        addr: String,
        loopback: bool,
    },
    DhcpRange {
        listen: String,
        low: String,
        high: String,
    },
    DhcpRouter {
        listen: String,
        router: String,
    },
    DhcpDns {
        listen: String,
        dns: String,
    },
    DhcpStatic {
        listen: String,
        mac: String,
        ip: String,
    },
    Dns {
        ip: String,
        host: String,
    },
    Upstream(String),
    Gateway(String),
    Ra(String),
    RouteStatic {
        network: String,
        next_hop: String,
        name: Option<String>,
    },
    RouteOspf {
        area: String,
        network: String,
    },
    RouteOspfOption {
        area: String,
        network: String,
        option: String,
        value: String,
    },
    RouteOspfExport {
        area: String,
        filter: String,
    },
    RouteBgp {
        process: String,
        local: bool,
        ip: String,
        asn: String,
    },
    RouteBgpRrClient {
        process: String,
    },
    RouteBgpExport {
        process: String,
        all: bool,
        filter: String,
    },
    FwDefault(String),
    FwRule {
        action: String,
        inbound: bool,
        index: String,
        src: String,
        dst: String,
        proto: String,
    },
    FwChainDefault {
        chain: String,
        action: String,
    },
    FwChainRule {
        chain: String,
        action: String,
        src: String,
        dst: String,
        proto: String,
    },
    FwChainApply {
        chain: String,
        inbound: bool,
        index: String,
    },
}

impl Form {
    /// The form a match of [`ROUTER_PATTERNS`] names, tested in minimega's
    /// order (`dhcp ... dns` before `dns`, `route static` after `dhcp ...
    /// static`). `None` for arguments no pattern binds.
    pub fn from_args(a: &Args) -> Option<Form> {
        let f = |k| a.flag(k);
        if a.bools.is_empty() {
            return Some(Form::Show);
        }
        Some(if f("commit") {
            Form::Commit
        } else if f("log") {
            let level = ["fatal", "error", "warn", "info", "debug"]
                .into_iter()
                .find(|l| f(l))
                .and_then(LogLevel::parse)?;
            Form::Log(level)
        } else if f("interface") {
            Form::Interface {
                network: s(a, "network"),
                addr: s(a, "IPv4/MASK"),
                loopback: f("lo"),
            }
        } else if f("dhcp") {
            let listen = s(a, "listen");
            if f("range") {
                Form::DhcpRange {
                    listen,
                    low: s(a, "low"),
                    high: s(a, "high"),
                }
            } else if f("router") {
                Form::DhcpRouter {
                    listen,
                    router: s(a, "router"),
                }
            } else if f("dns") {
                Form::DhcpDns {
                    listen,
                    dns: s(a, "address"),
                }
            } else if f("static") {
                Form::DhcpStatic {
                    listen,
                    mac: s(a, "mac"),
                    ip: s(a, "ip"),
                }
            } else {
                return None;
            }
        } else if f("dns") {
            Form::Dns {
                ip: s(a, "ip"),
                host: s(a, "hostname"),
            }
        } else if f("upstream") {
            Form::Upstream(s(a, "ip"))
        } else if f("gw") {
            Form::Gateway(s(a, "gw"))
        } else if f("ra") {
            Form::Ra(s(a, "subnet"))
        } else if f("route") {
            return route_form(a);
        } else if f("rid") {
            Form::RouterId(s(a, "id"))
        } else if f("fw") {
            return fw_form(a);
        } else {
            return None;
        })
    }
}

fn route_form(a: &Args) -> Option<Form> {
    let f = |k| a.flag(k);
    Some(if f("static") {
        Form::RouteStatic {
            network: s(a, "network"),
            next_hop: s(a, "next-hop"),
            name: a
                .string("staticroutename")
                .filter(|n| !n.is_empty())
                .map(String::from),
        }
    } else if f("ospf") {
        let area = s(a, "area");
        match (a.string("network"), a.string("option")) {
            (Some(network), Some(option)) => Form::RouteOspfOption {
                area,
                network: network.to_string(),
                option: option.to_string(),
                value: s(a, "value"),
            },
            (Some(network), None) => Form::RouteOspf {
                area,
                network: network.to_string(),
            },
            _ if f("export") => Form::RouteOspfExport {
                area,
                filter: s(a, "Ipv4/Mask"),
            },
            _ => return None,
        }
    } else if f("bgp") {
        let process = s(a, "processname");
        if f("export") {
            Form::RouteBgpExport {
                process,
                all: f("all"),
                filter: s(a, "filtername"),
            }
        } else if f("local") || f("neighbor") {
            Form::RouteBgp {
                process,
                local: f("local"),
                ip: s(a, "IPv4"),
                asn: s(a, "asnumber"),
            }
        } else if f("rrclient") {
            Form::RouteBgpRrClient { process }
        } else {
            return None;
        }
    } else {
        return None;
    })
}

fn fw_form(a: &Args) -> Option<Form> {
    let f = |k| a.flag(k);
    let (src, dst, proto) = (s(a, "src"), s(a, "dst"), s(a, "proto"));
    if let Some(chain) = a.string("chain").filter(|c| !c.is_empty()) {
        let chain = chain.to_string();
        return Some(if f("default") {
            Form::FwChainDefault {
                chain,
                action: action(a).to_string(),
            }
        } else if !action(a).is_empty() {
            Form::FwChainRule {
                chain,
                action: action(a).to_string(),
                src,
                dst,
                proto,
            }
        } else if f("in") || f("out") {
            Form::FwChainApply {
                chain,
                inbound: f("in"),
                index: s(a, "index"),
            }
        } else {
            return None;
        });
    }
    Some(if f("default") {
        Form::FwDefault(action(a).to_string())
    } else if !action(a).is_empty() {
        Form::FwRule {
            action: action(a).to_string(),
            inbound: f("in"),
            index: s(a, "index"),
            src,
            dst,
            proto,
        }
    } else {
        return None;
    })
}

/// One matched `clear router ...` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClearForm {
    /// `clear router`: forget every router of the namespace.
    AllRouters,
    /// `clear router VM`.
    Router,
    RouterId,
    /// `network` `None`: every interface and loopback.
    Interface {
        network: Option<String>,
        addr: String,
        loopback: bool,
    },
    /// `listen` empty: every server.
    Dhcp {
        listen: String,
        part: DhcpPart,
    },
    Dns(String),
    Upstream,
    Gateway,
    Ra(String),
    /// `clear router VM route`.
    Routes,
    RouteStatic(String),
    /// `name` empty: every named route (`route namedstatic`).
    RouteNamed {
        network: String,
        name: String,
    },
    /// `area` empty: every area.
    RouteOspf {
        area: String,
        network: String,
    },
    RouteOspfExport {
        area: String,
        filter: String,
    },
    RouteBgp {
        process: String,
        part: BgpPart,
    },
    Fw,
}

impl ClearForm {
    /// The form a match of [`CLEAR_ROUTER_PATTERNS`] names.
    pub fn from_args(a: &Args) -> Option<ClearForm> {
        let f = |k| a.flag(k);
        if a.string("vm").is_none_or(str::is_empty) {
            return Some(ClearForm::AllRouters);
        }
        Some(if f("interface") {
            ClearForm::Interface {
                network: a
                    .string("network")
                    .filter(|n| !n.is_empty())
                    .map(String::from),
                addr: s(a, "IPv4/MASK"),
                loopback: f("lo"),
            }
        } else if f("dhcp") {
            let part = if f("range") {
                DhcpPart::Range
            } else if f("router") {
                DhcpPart::Router
            } else if f("dns") {
                DhcpPart::Dns
            } else if f("static") {
                DhcpPart::Static(a.string("mac").filter(|m| !m.is_empty()).map(String::from))
            } else {
                DhcpPart::All
            };
            ClearForm::Dhcp {
                listen: s(a, "listen"),
                part,
            }
        } else if f("dns") {
            ClearForm::Dns(s(a, "ip"))
        } else if f("upstream") {
            ClearForm::Upstream
        } else if f("gw") {
            ClearForm::Gateway
        } else if f("ra") {
            ClearForm::Ra(s(a, "subnet"))
        } else if f("route") {
            if f("static") {
                match a.string("staticroutename").filter(|n| !n.is_empty()) {
                    Some(name) => ClearForm::RouteNamed {
                        network: s(a, "network"),
                        name: name.to_string(),
                    },
                    None => ClearForm::RouteStatic(s(a, "network")),
                }
            } else if f("namedstatic") {
                ClearForm::RouteNamed {
                    network: String::new(),
                    name: String::new(),
                }
            } else if f("ospf") {
                if f("export") {
                    ClearForm::RouteOspfExport {
                        area: s(a, "area"),
                        filter: s(a, "Ipv4/Mask"),
                    }
                } else {
                    ClearForm::RouteOspf {
                        area: s(a, "area"),
                        network: s(a, "network"),
                    }
                }
            } else if f("bgp") {
                let part = if f("rrclient") {
                    BgpPart::RouteReflector
                } else if f("local") {
                    BgpPart::Local
                } else if f("neighbor") {
                    BgpPart::Neighbor
                } else {
                    BgpPart::All
                };
                ClearForm::RouteBgp {
                    process: s(a, "processname"),
                    part,
                }
            } else {
                ClearForm::Routes
            }
        } else if f("rid") {
            ClearForm::RouterId
        } else if f("fw") {
            ClearForm::Fw
        } else {
            ClearForm::Router
        })
    }
}

impl Router {
    /// Applies a form that changes the router. [`Form::Show`] and
    /// [`Form::Commit`] change nothing here: the daemon prints
    /// [`Router::summary`] or runs [`Router::commit`].
    pub fn apply(&mut self, form: &Form) -> Result<(), RouterError> {
        match form {
            Form::Show | Form::Commit => {}
            Form::RouterId(id) => self.set_router_id(id)?,
            Form::Log(level) => self.set_log_level(*level),
            Form::Interface {
                network,
                addr,
                loopback,
            } => self.interface_add(network, addr, *loopback)?,
            Form::DhcpRange { listen, low, high } => self.dhcp_range(listen, low, high),
            Form::DhcpRouter { listen, router } => self.dhcp_router(listen, router),
            Form::DhcpDns { listen, dns } => self.dhcp_dns(listen, dns),
            Form::DhcpStatic { listen, mac, ip } => self.dhcp_static(listen, mac, ip),
            Form::Dns { ip, host } => self.dns_add(ip, host),
            Form::Upstream(ip) => self.set_upstream(ip),
            Form::Gateway(gw) => self.set_gateway(gw),
            Form::Ra(subnet) => self.ra_add(subnet),
            Form::RouteStatic {
                network,
                next_hop,
                name,
            } => self.route_static(network, next_hop, name.as_deref()),
            Form::RouteOspf { area, network } => self.route_ospf(area, network),
            Form::RouteOspfOption {
                area,
                network,
                option,
                value,
            } => self.route_ospf_option(area, network, option, value),
            Form::RouteOspfExport { area, filter } => self.route_ospf_export(area, filter),
            Form::RouteBgp {
                process,
                local,
                ip,
                asn,
            } => self.route_bgp(process, *local, ip, asn)?,
            Form::RouteBgpRrClient { process } => self.route_bgp_rrclient(process),
            Form::RouteBgpExport {
                process,
                all,
                filter,
            } => self.route_bgp_export(process, *all, filter),
            Form::FwDefault(a) => self.fw_default(a),
            Form::FwRule {
                action,
                inbound,
                index,
                src,
                dst,
                proto,
            } => self.fw_rule(index, *inbound, src, dst, proto, action)?,
            Form::FwChainDefault { chain, action } => self.fw_chain_default(chain, action),
            Form::FwChainRule {
                chain,
                action,
                src,
                dst,
                proto,
            } => self.fw_chain_rule(chain, src, dst, proto, action)?,
            Form::FwChainApply {
                chain,
                inbound,
                index,
            } => self.fw_chain_apply(chain, *inbound, index)?,
        }
        Ok(())
    }

    /// Applies a `clear router VM ...` form ([`ClearForm::AllRouters`] is
    /// the daemon's: it changes nothing here).
    pub fn clear(&mut self, form: &ClearForm) -> Result<(), RouterError> {
        match form {
            ClearForm::AllRouters => {}
            ClearForm::Router => self.clear_all(),
            ClearForm::RouterId => self.clear_router_id(),
            ClearForm::Interface { network: None, .. } => self.clear_interfaces(),
            ClearForm::Interface {
                network: Some(n),
                addr,
                loopback,
            } => self.clear_interface(n, addr, *loopback)?,
            ClearForm::Dhcp { listen, part } => self.clear_dhcp(listen, part)?,
            ClearForm::Dns(ip) => self.clear_dns(ip)?,
            ClearForm::Upstream => self.clear_upstream(),
            ClearForm::Gateway => self.clear_gateway(),
            ClearForm::Ra(subnet) => self.clear_ra(subnet)?,
            ClearForm::Routes => self.clear_routes(),
            ClearForm::RouteStatic(network) => self.clear_route_static(network)?,
            ClearForm::RouteNamed { network, name } => self.clear_route_named(network, name)?,
            ClearForm::RouteOspf { area, network } => self.clear_ospf(area, network)?,
            ClearForm::RouteOspfExport { area, filter } => self.clear_ospf_export(area, filter)?,
            ClearForm::RouteBgp { process, part } => self.clear_bgp(process, *part)?,
            ClearForm::Fw => self.fw_flush(),
        }
        Ok(())
    }
}
