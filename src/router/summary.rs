//! What `router VM` prints: minimega's summary of a router, byte for byte
//! (trailing blanks and the tab of an empty log line included; the
//! response renderer trims the end as minimega's does).

use super::{Bgp, Dhcp, FwRule, Ospf, Router};
use std::fmt::Write;

/// Go's `text/tabwriter` as minimega sets it up for a DHCP server
/// (minimum cell width 5, padding 1, blanks): every cell but a line's
/// last is padded to its column's widest cell plus one. The tables here
/// have as many cells on every line, so a column is all of its lines.
fn tabwrite(out: &mut String, rows: &[Vec<&str>]) {
    let columns = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut widths = vec![0usize; columns.saturating_sub(1)];
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(row.len() - 1) {
            widths[i] = widths[i].max(cell.chars().count() + 1);
        }
    }
    for w in &mut widths {
        *w = (*w).max(5);
    }
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] - cell.chars().count();
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
}

/// A DHCP server's block (Go's `dhcp.String`).
pub fn dhcp_block(d: &Dhcp) -> String {
    let mut out = String::new();
    tabwrite(
        &mut out,
        &[
            vec!["Listen address:", &d.addr],
            vec!["Low address:", &d.low],
            vec!["High address:", &d.high],
            vec!["Router:", &d.router],
            vec!["DNS:", &d.dns],
            vec!["Static IPs:", ""],
        ],
    );
    let statics: Vec<Vec<&str>> = d
        .statics
        .iter()
        .map(|(mac, ip)| vec!["", mac.as_str(), ip.as_str()])
        .collect();
    tabwrite(&mut out, &statics);
    out
}

/// An OSPF area's block (Go's `ospf.String`).
pub fn ospf_block(o: &Ospf) -> String {
    let mut out = format!("OSPF Area:\t{}\nInterfaces:\n", o.area);
    for iface in o.interfaces.keys() {
        let _ = writeln!(out, "\t{iface}");
    }
    if !o.prefixes.is_empty() {
        out.push_str("OSPF Export Networks or Routes:\n");
        for p in &o.prefixes {
            let _ = writeln!(out, "\t{p}");
        }
    }
    out
}

/// A BGP process's block (Go's `bgp.String`).
pub fn bgp_block(b: &Bgp) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "BGP Process Name:\t{}", b.name);
    let _ = writeln!(out, "BGP Local IP:\t{}", b.local_ip);
    let _ = writeln!(out, "BGP Local As:\t{}", b.local_as);
    let _ = writeln!(out, "BGP Neighbor IP:\t{}", b.neighbor_ip);
    let _ = writeln!(out, "BGP Neighbor As:\t{}", b.neighbor_as);
    let _ = writeln!(out, "BGP RouteReflector:\t{}", b.route_reflector);
    if !b.exports.is_empty() {
        out.push_str("BGP Export Networks or Routes:\n");
        for e in &b.exports {
            let _ = writeln!(out, "\t{e}");
        }
    }
    out
}

/// A firewall rule as the summary shows it (Go's `fwRule.ToString`); an
/// interface's rules are `incoming` or `outgoing`, a chain's carry its name.
pub fn fw_rule_line(r: &FwRule, chain: Option<&str>) -> String {
    let chain = chain.unwrap_or(if r.inbound { "incoming" } else { "outgoing" });
    let any = |s: &str| {
        if s.is_empty() {
            "<any>".to_string()
        } else {
            s.to_string()
        }
    };
    format!(
        "{chain}: {} --> {} via {} -> {}",
        any(&r.src),
        any(&r.dst),
        any(&r.proto),
        r.action
    )
}

impl Router {
    /// The summary `router VM` prints. `log` is the VM's `minirouter_log`
    /// tag (empty when it has none); `None` leaves the log section out, as
    /// minimega does for a router without a VM.
    pub fn summary(&self, log: Option<&str>) -> String {
        let mut o = String::from("IPs:\n");
        for (i, ips) in self.ips.iter().enumerate() {
            let _ = writeln!(o, "Network: {i}: [{}]", ips.join(" "));
        }
        if !self.loopbacks.is_empty() {
            let mut lo: Vec<&String> = self.loopbacks.values().collect();
            lo.sort();
            o.push_str("Loopback IPs:\n");
            for l in lo {
                let _ = writeln!(o, "{l}");
            }
        }
        o.push('\n');
        for d in self.dhcp.values() {
            o.push_str(&dhcp_block(d));
            o.push('\n');
        }
        if !self.dns.is_empty() {
            o.push_str("DNS:\n");
            for (ip, hosts) in &self.dns {
                for h in hosts {
                    let _ = writeln!(o, "{ip}\t{h}");
                }
            }
            o.push('\n');
        }
        if !self.upstream.is_empty() {
            let _ = writeln!(o, "Upstream DNS: {}", self.upstream);
        }
        if !self.gw.is_empty() {
            let _ = writeln!(o, "Default Gateway: {}", self.gw);
        }
        if !self.ra.is_empty() {
            o.push_str("Router Advertisements:\n");
            for s in &self.ra {
                let _ = writeln!(o, "{s}");
            }
            o.push('\n');
        }
        if !self.static_routes.is_empty() {
            o.push_str("Static Routes:\n");
            for (net, nh) in &self.static_routes {
                let _ = writeln!(o, "{net}\t{nh}");
            }
            o.push('\n');
        }
        if !self.named_routes.is_empty() {
            o.push_str("Named Static Routes:\n");
            for (name, routes) in &self.named_routes {
                let _ = writeln!(o, "{name}");
                for (net, nh) in routes {
                    let nh = if nh.is_empty() {
                        String::new()
                    } else {
                        format!("\t{nh}")
                    };
                    let _ = writeln!(o, "\t{net}{nh}");
                }
            }
            o.push('\n');
        }
        for area in self.ospf.values() {
            o.push_str(&ospf_block(area));
            o.push('\n');
        }
        for b in self.bgp.values() {
            o.push_str(&bgp_block(b));
            o.push('\n');
        }
        // For a container too (minimega left it out: no firewall there).
        self.fw_summary(&mut o);
        if let Some(log) = log {
            o.push_str("Log:\n");
            for line in log.split('\n') {
                let _ = writeln!(o, "\t{line}");
            }
        }
        o
    }

    fn fw_summary(&self, o: &mut String) {
        // minimega tests the number of interfaces, not of rules: a VM with
        // a network always shows its default action.
        if !self.fw.rules.is_empty() {
            o.push_str("Firewall Rules:\n");
            for (i, rules) in self.fw.rules.iter().enumerate() {
                for r in rules {
                    let _ = writeln!(o, "  (iface {i}) {}", fw_rule_line(r, None));
                }
            }
            let _ = writeln!(o, "  Default Action: {}", self.fw.default_action);
        }
        if !self.fw.chains.is_empty() {
            o.push_str("Firewall Chains:\n");
            for (name, chain) in &self.fw.chains {
                for r in &chain.rules {
                    let _ = writeln!(o, "  {}", fw_rule_line(r, Some(name)));
                }
                let _ = writeln!(o, "  Default Action ({name}): {}", chain.default_action);
            }
        }
    }
}
