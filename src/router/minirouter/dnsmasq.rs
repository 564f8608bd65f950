//! dnsmasq's configuration: DHCP servers (tagged by minimega's listen
//! address), static leases, DNS host records, the upstream server and
//! router advertisements, as minirouter's template has them.

use super::model::Dnsmasq;
use super::render::Rendered;
use std::net::IpAddr;

/// Where dnsmasq keeps its pid and leases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsmasqFiles {
    pub pid: String,
    pub leases: String,
}

/// dnsmasq's configuration for `d`. `line` is the file line that asked
/// for it (its `dnsmasq commit`).
pub fn render(d: &Dnsmasq, files: &DnsmasqFiles, line: usize) -> Rendered {
    let mut r = Rendered::default();
    r.line(
        0,
        "# minirouter's dnsmasq configuration, rewritten at each update",
    );
    // Names come from this file and the upstream server only.
    r.line(0, "no-resolv");
    // Each address on its own socket, not the wildcard: a guest's
    // systemd-resolved holds port 53 on 127.0.0.53.
    r.line(0, "bind-dynamic");
    r.line(0, format!("pid-file={}", files.pid));
    r.line(0, format!("dhcp-leasefile={}", files.leases));
    // minirouter runs dnsmasq as root, as the stock one does, so the
    // lease file may live anywhere.
    r.line(0, "user=root");
    // Experiments may hand out far more leases than dnsmasq's default 1000.
    r.line(0, "dhcp-lease-max=1000000");
    if let Some(u) = d.upstream {
        r.line(line, format!("server={u}"));
    }
    for (tag, s) in &d.dhcp {
        match (s.range, tag.parse::<IpAddr>()) {
            (Some((lo, hi)), _) => r.line(line, format!("dhcp-range=set:{tag},{lo},{hi}")),
            // Static leases need a range to serve from: the listen
            // address's own subnet, for known hosts only.
            (None, Ok(addr)) => r.line(line, format!("dhcp-range=set:{tag},{addr},static")),
            (None, Err(_)) => {}
        }
        for (mac, ip) in &s.statics {
            r.line(line, format!("dhcp-host=set:{tag},{mac},{ip}"));
        }
        if let Some(gw) = s.router {
            r.line(line, format!("dhcp-option=tag:{tag},option:router,{gw}"));
        }
        match s.dns {
            Some(IpAddr::V4(a)) => {
                r.line(line, format!("dhcp-option=tag:{tag},option:dns-server,{a}"))
            }
            Some(IpAddr::V6(a)) => r.line(
                line,
                format!("dhcp-option=tag:{tag},option6:dns-server,[{a}]"),
            ),
            None => {}
        }
    }
    for (host, ips) in &d.hosts {
        let ips: Vec<String> = ips.iter().map(ToString::to_string).collect();
        r.line(line, format!("host-record={host},{}", ips.join(",")));
    }
    if !d.ra.is_empty() {
        r.line(line, "enable-ra");
    }
    for p in &d.ra {
        match p.len {
            Some(len) => r.line(line, format!("dhcp-range={},ra-names,{len}", p.addr)),
            None => r.line(line, format!("dhcp-range={},ra-names", p.addr)),
        }
    }
    r
}
