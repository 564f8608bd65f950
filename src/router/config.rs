//! `router VM commit`: the file minimega writes for the guest's minirouter
//! (`writeConfig`, line for line), and the cc commands that ship it.
//!
//! The file, in order: `log level`; `ip flush` and `ip add` lines only when
//! addresses changed since the last commit; `dnsmasq flush`, DHCP, DNS,
//! upstream, the default route, router advertisements, `dnsmasq commit`;
//! `bird flush`, static, named static, OSPF, BGP, `bird routerid`, `bird
//! commit`; and `fw flush`, `fw default`, the chains, then each
//! interface's rules (for a container too, unlike minimega: ours can run
//! nftables).

use super::error::go_quote;
use super::{Router, UNSET_ROUTER_ID};
use std::fmt::Write;
use std::net::IpAddr;

/// Where cc leaves files it sends in the guest.
pub const GUEST_FILES: &str = "/tmp/miniccc/files";

/// A command commit queues for the router's VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CcCommand {
    /// Run this argv in the guest.
    Exec(Vec<String>),
    /// Send these files (names relative to the files directory).
    Send(Vec<String>),
}

/// What `router VM commit` does once the state is rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPlan {
    /// The file to write, relative to the files directory:
    /// `[NAMESPACE/]minirouter-VM` (the default namespace has no folder).
    pub path: String,
    pub contents: String,
    /// The cc prefix of the commands: delete the prefix's earlier commands
    /// first (no such prefix is fine), then queue `commands` in order, each
    /// with this prefix and a filter on the VM's UUID.
    pub prefix: String,
    pub commands: Vec<CcCommand>,
}

/// An address of `ip/len` (or a bare one) in the order Go's `bytes.Compare`
/// puts `net.ParseIP`'s 16 bytes: IPv4 as `::ffff:a.b.c.d`, so any global
/// IPv6 address outranks every IPv4 one. `None` for `dhcp`, which Go
/// ranks below all.
fn rank(ip: &str) -> Option<[u8; 16]> {
    let addr = ip.split('/').next().unwrap_or("");
    match addr.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => Some(a.to_ipv6_mapped().octets()),
        IpAddr::V6(a) => Some(a.octets()),
    }
}

impl Router {
    /// Chooses the router ID at a commit when none was set: the highest
    /// loopback address if there are loopbacks, else the highest interface
    /// address. It stays chosen for later commits, as in minimega.
    pub fn choose_router_id(&mut self) {
        if self.router_id != UNSET_ROUTER_ID {
            return;
        }
        let candidates: Vec<&String> = if self.loopbacks.is_empty() {
            self.ips.iter().flatten().collect()
        } else {
            self.loopbacks.values().collect()
        };
        let mut best = rank(UNSET_ROUTER_ID);
        let mut id = None;
        for ip in candidates {
            let r = rank(ip);
            if r.is_some() && r > best {
                best = r;
                id = ip.split('/').next();
            }
        }
        if let Some(id) = id {
            self.router_id = id.to_string();
        }
    }

    /// The minirouter file (minimega's `writeConfig`, which also chooses
    /// the router ID).
    pub fn write_config(&mut self) -> String {
        self.choose_router_id();
        let mut w = String::new();
        let _ = writeln!(w, "log level {}", self.log_level);
        if self.update_ips {
            w.push_str("ip flush\n");
            for (i, ips) in self.ips.iter().enumerate() {
                for ip in ips {
                    let _ = writeln!(w, "ip add {i} {ip}");
                }
            }
            for ip in self.loopbacks.values() {
                let _ = writeln!(w, "ip add lo {ip}");
            }
        }
        self.write_dnsmasq(&mut w);
        self.write_bird(&mut w);
        // minimega leaves the firewall out for a container; ours runs
        // nftables in its network namespace.
        self.write_fw(&mut w);
        w
    }

    fn write_dnsmasq(&self, w: &mut String) {
        w.push_str("dnsmasq flush\n");
        for d in self.dhcp.values() {
            if !d.low.is_empty() {
                let _ = writeln!(w, "dnsmasq dhcp range {} {} {}", d.addr, d.low, d.high);
            }
            if !d.router.is_empty() {
                let _ = writeln!(w, "dnsmasq dhcp option router {} {}", d.addr, d.router);
            }
            if !d.dns.is_empty() {
                let _ = writeln!(w, "dnsmasq dhcp option dns {} {}", d.addr, d.dns);
            }
            for (mac, ip) in &d.statics {
                let _ = writeln!(w, "dnsmasq dhcp static {} {mac} {ip}", d.addr);
            }
        }
        for (ip, hosts) in &self.dns {
            for host in hosts {
                let _ = writeln!(w, "dnsmasq dns {ip} {host}");
            }
        }
        if !self.upstream.is_empty() {
            let _ = writeln!(w, "dnsmasq upstream {}", self.upstream);
        }
        if self.gw.is_empty() {
            w.push_str("route del default\n");
        } else {
            let _ = writeln!(w, "route add default gw {}", self.gw);
        }
        for subnet in &self.ra {
            let _ = writeln!(w, "dnsmasq ra {subnet}");
        }
        w.push_str("dnsmasq commit\n");
    }

    fn write_bird(&self, w: &mut String) {
        w.push_str("bird flush\n");
        for (net, nh) in &self.static_routes {
            let _ = writeln!(w, "bird static {net} {nh} null");
        }
        for (name, routes) in &self.named_routes {
            for (net, nh) in routes {
                let nh = if nh.is_empty() { "null" } else { nh.as_str() };
                let _ = writeln!(w, "bird static {net} {nh} {name}");
            }
        }
        for o in self.ospf.values() {
            for (iface, options) in &o.interfaces {
                let _ = writeln!(w, "bird ospf {} {iface}", o.area);
                for (k, v) in options {
                    let _ = writeln!(
                        w,
                        "bird ospf {} {iface} {} {}",
                        o.area,
                        go_quote(k),
                        go_quote(v)
                    );
                }
            }
            for filter in &o.prefixes {
                let _ = writeln!(w, "bird ospf {} filter {filter}", o.area);
            }
        }
        for b in self.bgp.values() {
            let _ = writeln!(w, "bird bgp {} local {} {}", b.name, b.local_ip, b.local_as);
            let _ = writeln!(
                w,
                "bird bgp {} neighbor {} {}",
                b.name, b.neighbor_ip, b.neighbor_as
            );
            if b.route_reflector {
                let _ = writeln!(w, "bird bgp {} rrclient", b.name);
            }
            for e in &b.exports {
                let _ = writeln!(w, "bird bgp {} filter {e}", b.name);
            }
        }
        let _ = writeln!(w, "bird routerid {}", self.router_id);
        w.push_str("bird commit\n");
    }

    fn write_fw(&self, w: &mut String) {
        w.push_str("fw flush\n");
        let _ = writeln!(w, "fw default {}", self.fw.default_action);
        for (name, chain) in &self.fw.chains {
            for r in &chain.rules {
                let src = if r.src.is_empty() {
                    String::new()
                } else {
                    format!(" {}", r.src)
                };
                let _ = writeln!(
                    w,
                    "fw chain {name} action {}{src} {} {}",
                    r.action, r.dst, r.proto
                );
            }
            let _ = writeln!(w, "fw chain {name} default action {}", chain.default_action);
        }
        for (i, rules) in self.fw.rules.iter().enumerate() {
            for r in rules {
                let dir = if r.inbound { "in" } else { "out" };
                if r.is_apply() {
                    let _ = writeln!(w, "fw chain {} apply {dir} {i}", r.action);
                    continue;
                }
                let src = if r.src.is_empty() {
                    String::new()
                } else {
                    format!(" {}", r.src)
                };
                let _ = writeln!(w, "fw {} {dir} {i}{src} {} {}", r.action, r.dst, r.proto);
            }
        }
    }

    /// `router VM commit` for the VM named `vm` in `namespace` (`None`: the
    /// default namespace). Call [`Router::committed`] once the file is
    /// written: until then the addresses still count as changed.
    pub fn commit(&mut self, vm: &str, namespace: Option<&str>) -> CommitPlan {
        let prefix = format!("minirouter-{vm}");
        let path = match namespace {
            Some(ns) => format!("{ns}/{prefix}"),
            None => prefix.clone(),
        };
        let guest = format!("{GUEST_FILES}/{prefix}");
        CommitPlan {
            path,
            contents: self.write_config(),
            commands: vec![
                CcCommand::Exec(vec!["rm".into(), guest.clone()]),
                CcCommand::Send(vec![prefix.clone()]),
                CcCommand::Exec(vec!["minirouter".into(), "-u".into(), guest]),
            ],
            prefix,
        }
    }

    /// The commit's file is written: the next file carries addresses only
    /// if they change again.
    pub fn committed(&mut self) {
        self.update_ips = false;
    }
}
