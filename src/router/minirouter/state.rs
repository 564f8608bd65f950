//! A file's commands applied, in order, to the last good state, as
//! minirouter's handlers apply them to what they hold: a `flush` starts a
//! section afresh, other lines add to it. And the state written back in
//! the same format, to keep it across runs.

use super::model::{
    Addr, BgpSession, ChainRule, DhcpServer, Firewall, FwRule, Gateway, LineNo, State,
};
use super::parse::Cmd;
use std::fmt::Write;

/// The lines of a file that ask for a service to be (re)started, even
/// when its configuration did not change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Commits {
    pub dnsmasq: Option<LineNo>,
    pub bird: Option<LineNo>,
    /// The `fw flush` line: the ruleset is loaded again.
    pub firewall: Option<LineNo>,
}

impl State {
    /// The state after `cmds` (numbered lines of a file).
    pub fn apply(&self, cmds: &[(LineNo, Cmd)]) -> (State, Commits) {
        let mut s = self.clone();
        let mut commits = Commits::default();
        for (line, cmd) in cmds {
            s.apply_one(*line, cmd, &mut commits);
        }
        (s, commits)
    }

    fn dhcp(&mut self, tag: &str) -> &mut DhcpServer {
        self.dnsmasq.dhcp.entry(tag.to_string()).or_default()
    }

    fn bgp(&mut self, name: &str) -> &mut BgpSession {
        self.bird.bgp.entry(name.to_string()).or_default()
    }

    fn fw(&mut self) -> &mut Firewall {
        self.firewall.get_or_insert_with(Firewall::default)
    }

    fn chain(&mut self, name: &str) -> &mut Vec<ChainRule> {
        let fw = self.fw();
        let i = match fw.chains.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                fw.chains.push((name.to_string(), Vec::new()));
                fw.chains.len() - 1
            }
        };
        &mut fw.chains[i].1
    }

    fn apply_one(&mut self, line: LineNo, cmd: &Cmd, commits: &mut Commits) {
        match cmd {
            Cmd::LogLevel(l) => self.log_level = *l,
            Cmd::IpFlush => self.addrs.clear(),
            Cmd::IpAdd(iface, addr) => {
                if !self
                    .addrs
                    .iter()
                    .any(|a| a.iface == *iface && a.addr == *addr)
                {
                    self.addrs.push(Addr {
                        line,
                        iface: *iface,
                        addr: *addr,
                    });
                }
            }
            Cmd::DnsmasqFlush => self.dnsmasq = Default::default(),
            Cmd::DnsmasqCommit => commits.dnsmasq = Some(line),
            Cmd::DhcpRange { tag, low, high } => self.dhcp(tag).range = Some((*low, *high)),
            Cmd::DhcpRouter { tag, addr } => self.dhcp(tag).router = Some(*addr),
            Cmd::DhcpDns { tag, addr } => self.dhcp(tag).dns = Some(*addr),
            Cmd::DhcpStatic { tag, mac, ip } => {
                self.dhcp(tag).statics.insert(mac.clone(), *ip);
            }
            Cmd::Dns { ip, host } => {
                let ips = self.dnsmasq.hosts.entry(host.clone()).or_default();
                if !ips.contains(ip) {
                    ips.push(*ip);
                }
            }
            Cmd::Upstream(ip) => self.dnsmasq.upstream = Some(*ip),
            Cmd::Ra(p) => {
                if !self.dnsmasq.ra.contains(p) {
                    self.dnsmasq.ra.push(*p);
                }
            }
            Cmd::DefaultRoute(via) => self.gateway = Some(Gateway { line, via: *via }),
            Cmd::NoDefaultRoute => self.gateway = None,
            Cmd::BirdFlush => {
                // The router ID outlives a flush, as in minirouter.
                let id = self.bird.router_id;
                self.bird = Default::default();
                self.bird.router_id = id;
            }
            Cmd::BirdCommit => commits.bird = Some(line),
            Cmd::RouterId(id) => self.bird.router_id = *id,
            Cmd::Static {
                net,
                via,
                name: None,
            } => {
                self.bird.statics.insert(*net, *via);
            }
            Cmd::Static {
                net,
                via,
                name: Some(n),
            } => {
                self.bird
                    .named
                    .entry(n.clone())
                    .or_default()
                    .insert(*net, *via);
            }
            Cmd::OspfIface { area, iface } => {
                let a = self.bird.ospf.entry(area.clone()).or_default();
                a.interfaces
                    .entry(*iface)
                    .or_insert_with(|| (line, Default::default()));
            }
            Cmd::OspfOption {
                area,
                iface,
                key,
                value,
            } => {
                let a = self.bird.ospf.entry(area.clone()).or_default();
                let (_, opts) = a
                    .interfaces
                    .entry(*iface)
                    .or_insert_with(|| (line, Default::default()));
                opts.insert(key.clone(), value.clone());
            }
            Cmd::OspfNetwork { area, net } => {
                let a = self.bird.ospf.entry(area.clone()).or_default();
                if !a.networks.contains(net) {
                    a.networks.push(*net);
                }
            }
            Cmd::OspfExport { area, name } => {
                let a = self.bird.ospf.entry(area.clone()).or_default();
                if !a.exports.contains(name) {
                    a.exports.push(name.clone());
                }
            }
            Cmd::BgpLocal { name, peer } => self.bgp(name).local = *peer,
            Cmd::BgpNeighbor { name, peer } => self.bgp(name).neighbor = *peer,
            Cmd::BgpRrClient { name } => self.bgp(name).rr_client = true,
            Cmd::BgpExport { name, filter } => {
                let b = self.bgp(name);
                if !b.exports.contains(filter) {
                    b.exports.push(filter.clone());
                }
            }
            Cmd::FwFlush => {
                commits.firewall = Some(line);
                self.firewall = Some(Firewall::default());
            }
            Cmd::FwDefault(v) => self.fw().default = *v,
            Cmd::FwRule {
                verdict,
                dir,
                iface,
                m,
            } => self.fw().rules.push(FwRule::Match {
                line,
                dir: *dir,
                iface: *iface,
                verdict: *verdict,
                m: m.clone(),
            }),
            Cmd::FwChainRule { chain, verdict, m } => self.chain(chain).push(ChainRule {
                line,
                m: Some(m.clone()),
                verdict: *verdict,
            }),
            Cmd::FwChainDefault { chain, verdict } => self.chain(chain).push(ChainRule {
                line,
                m: None,
                verdict: *verdict,
            }),
            Cmd::FwChainApply { chain, dir, iface } => self.fw().rules.push(FwRule::Apply {
                line,
                dir: *dir,
                iface: *iface,
                chain: chain.clone(),
            }),
        }
    }

    /// The state in the file format: parsed and applied to an empty state
    /// it gives this state back (lines aside).
    pub fn to_lines(&self) -> String {
        let mut w = String::new();
        let _ = writeln!(w, "log level {}", self.log_level);
        w.push_str("ip flush\n");
        for a in &self.addrs {
            let _ = writeln!(w, "ip add {} {}", a.iface, a.addr);
        }
        w.push_str("dnsmasq flush\n");
        let d = &self.dnsmasq;
        for (tag, s) in &d.dhcp {
            if let Some((lo, hi)) = s.range {
                let _ = writeln!(w, "dnsmasq dhcp range {tag} {lo} {hi}");
            }
            if let Some(r) = s.router {
                let _ = writeln!(w, "dnsmasq dhcp option router {tag} {r}");
            }
            if let Some(r) = s.dns {
                let _ = writeln!(w, "dnsmasq dhcp option dns {tag} {r}");
            }
            for (mac, ip) in &s.statics {
                let _ = writeln!(w, "dnsmasq dhcp static {tag} {mac} {ip}");
            }
        }
        for (host, ips) in &d.hosts {
            for ip in ips {
                let _ = writeln!(w, "dnsmasq dns {ip} {host}");
            }
        }
        if let Some(u) = d.upstream {
            let _ = writeln!(w, "dnsmasq upstream {u}");
        }
        for p in &d.ra {
            match p.len {
                Some(l) => writeln!(w, "dnsmasq ra {}/{l}", p.addr),
                None => writeln!(w, "dnsmasq ra {}", p.addr),
            }
            .ok();
        }
        match self.gateway {
            Some(g) => writeln!(w, "route add default gw {}", g.via).ok(),
            None => writeln!(w, "route del default").ok(),
        };
        self.bird_lines(&mut w);
        if let Some(fw) = &self.firewall {
            fw_lines(fw, &mut w);
        }
        w
    }

    fn bird_lines(&self, w: &mut String) {
        let b = &self.bird;
        let hop = |h: &Option<std::net::IpAddr>| h.map_or("null".to_string(), |a| a.to_string());
        w.push_str("bird flush\n");
        for (net, via) in &b.statics {
            let _ = writeln!(w, "bird static {net} {} null", hop(via));
        }
        for (name, routes) in &b.named {
            for (net, via) in routes {
                let _ = writeln!(w, "bird static {net} {} {name}", hop(via));
            }
        }
        for (area, a) in &b.ospf {
            for (iface, (_, opts)) in &a.interfaces {
                let _ = writeln!(w, "bird ospf {area} {iface}");
                for (k, v) in opts {
                    let _ = writeln!(w, "bird ospf {area} {iface} \"{k}\" \"{v}\"");
                }
            }
            for n in &a.networks {
                let _ = writeln!(w, "bird ospf {area} filter {n}");
            }
            for n in &a.exports {
                let _ = writeln!(w, "bird ospf {area} filter {n}");
            }
        }
        for (name, s) in &b.bgp {
            if let Some((ip, asn)) = s.local {
                let _ = writeln!(w, "bird bgp {name} local {ip} {asn}");
            }
            if let Some((ip, asn)) = s.neighbor {
                let _ = writeln!(w, "bird bgp {name} neighbor {ip} {asn}");
            }
            if s.rr_client {
                let _ = writeln!(w, "bird bgp {name} rrclient");
            }
            for f in &s.exports {
                let _ = writeln!(w, "bird bgp {name} filter {f}");
            }
        }
        if let Some(id) = b.router_id {
            let _ = writeln!(w, "bird routerid {id}");
        }
    }
}

fn fw_lines(fw: &Firewall, w: &mut String) {
    w.push_str("fw flush\n");
    let _ = writeln!(w, "fw default {}", fw.default.as_str());
    for (name, rules) in &fw.chains {
        for r in rules {
            match &r.m {
                Some(m) => writeln!(
                    w,
                    "fw chain {name} action {} {}",
                    r.verdict.as_str(),
                    m.text
                ),
                None => writeln!(w, "fw chain {name} default action {}", r.verdict.as_str()),
            }
            .ok();
        }
    }
    for r in &fw.rules {
        let dir = |d: &super::model::Dir| match d {
            super::model::Dir::In => "in",
            super::model::Dir::Out => "out",
        };
        match r {
            FwRule::Match {
                dir: d,
                iface,
                verdict,
                m,
                ..
            } => {
                writeln!(w, "fw {} {} {iface} {}", verdict.as_str(), dir(d), m.text)
            }
            FwRule::Apply {
                dir: d,
                iface,
                chain,
                ..
            } => {
                writeln!(w, "fw chain {chain} apply {} {iface}", dir(d))
            }
        }
        .ok();
    }
}
