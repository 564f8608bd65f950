//! bird 2's configuration, one file for IPv4 and IPv6 (minirouter ran
//! bird and bird6 from one template): the kernel and device protocols,
//! static routes (unnamed ones per family; each named set its own
//! `static_NAME` protocol, which OSPF and BGP export by name), OSPF (v2,
//! and v3 when the router has IPv6), BGP sessions, and the router ID.

use super::model::{Addr, BgpSession, Bird, Cidr, IfaceAddr, NextHop, OspfArea};
use super::render::{check_symbols, symbol, Names, PlanError, Rendered};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

/// The prefix of a named static route's protocol, as minirouter names it
/// (filters say `proto = "static_NAME"`).
const STATIC_PREFIX: &str = "static_";

/// The prefix of a BGP session's protocol: minimega's examples name them
/// `ibgp` and `ebgp`, which are keywords to bird.
const BGP_PREFIX: &str = "bgp_";

fn family(v4: bool) -> &'static str {
    if v4 {
        "ipv4"
    } else {
        "ipv6"
    }
}

fn route(net: &Cidr, via: &NextHop) -> String {
    match via {
        Some(nh) => format!("\troute {net} via {nh};"),
        None => format!("\troute {net} unreachable;"),
    }
}

/// The router ID: the file's, else the highest static IPv4 address (what
/// bird would pick), else the low 32 bits of the highest IPv6 one, since
/// bird cannot pick one on a router without IPv4.
fn router_id(b: &Bird, addrs: &[Addr]) -> Option<Ipv4Addr> {
    if b.router_id.is_some() {
        return b.router_id;
    }
    let statics = addrs.iter().filter_map(|a| match a.addr {
        IfaceAddr::Static(c) => Some(c.addr),
        IfaceAddr::Dhcp => None,
    });
    let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) = statics.partition(IpAddr::is_ipv4);
    if !v4.is_empty() {
        return None;
    }
    match v6.into_iter().max()? {
        IpAddr::V6(a) => {
            let o = a.octets();
            Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
        }
        IpAddr::V4(a) => Some(a),
    }
}

/// The export filter of names (`all`: what BGP learned, when `bgp`).
fn export(r: &mut Rendered, line: usize, names: &[String], bgp: bool) {
    let mut terms: Vec<String> = Vec::new();
    for n in names {
        if n == "all" && bgp {
            terms.push("source = RTS_BGP".into());
        } else {
            terms.push(format!("proto = \"{}\"", symbol(STATIC_PREFIX, n)));
        }
    }
    if terms.is_empty() {
        r.line(line, "\t\texport none;");
        return;
    }
    r.line(line, "\t\texport filter {");
    r.line(
        line,
        format!("\t\t\tif {} then accept;", terms.join(" || ")),
    );
    r.line(line, "\t\t\treject;");
    r.line(line, "\t\t};");
}

fn ospf(
    r: &mut Rendered,
    line: usize,
    areas: &BTreeMap<String, OspfArea>,
    names: &Names,
    v4: bool,
) -> Result<(), PlanError> {
    let (version, fam) = if v4 { ("v2", "ipv4") } else { ("v3", "ipv6") };
    r.line(
        line,
        format!("protocol ospf {version} ospf{} {{", if v4 { 4 } else { 6 }),
    );
    r.line(line, format!("\t{fam} {{"));
    r.line(line, "\t\timport all;");
    let exports: Vec<String> = areas
        .values()
        .flat_map(|a| a.exports.iter().cloned())
        .collect();
    export(r, line, &exports, false);
    r.line(line, "\t};");
    for (id, area) in areas {
        r.line(line, format!("\tarea {id} {{"));
        let nets: Vec<&Cidr> = area
            .networks
            .iter()
            .filter(|n| n.addr.is_ipv4() == v4)
            .collect();
        if !nets.is_empty() {
            r.line(line, "\t\tnetworks {");
            for n in nets {
                r.line(line, format!("\t\t\t{n};"));
            }
            r.line(line, "\t\t};");
        }
        for (iface, (from, opts)) in &area.interfaces {
            let name = names.get(*iface, *from)?;
            r.line(*from, format!("\t\tinterface \"{name}\" {{"));
            for (k, v) in opts {
                // bird wants a password quoted; every other option is a
                // keyword or a number.
                let v = if k == "password" {
                    format!("\"{v}\"")
                } else {
                    v.clone()
                };
                r.line(*from, format!("\t\t\t{k} {v};"));
            }
            r.line(*from, "\t\t};");
        }
        r.line(line, "\t};");
    }
    r.line(line, "}");
    Ok(())
}

fn bgp(r: &mut Rendered, line: usize, name: &str, s: &BgpSession, warnings: &mut Vec<String>) {
    let (Some((lip, las)), Some((nip, nas))) = (s.local, s.neighbor) else {
        warnings.push(format!(
            "bgp {name}: no local or neighbor address, not started"
        ));
        return;
    };
    r.line(
        line,
        format!("protocol bgp {} {{", symbol(BGP_PREFIX, name)),
    );
    r.line(line, format!("\tlocal {lip} as {las};"));
    r.line(line, format!("\tneighbor {nip} as {nas};"));
    if s.rr_client {
        r.line(line, "\trr client;");
    }
    r.line(line, format!("\t{} {{", family(nip.is_ipv4())));
    r.line(line, "\t\timport all;");
    export(r, line, &s.exports, true);
    r.line(line, "\t};");
    r.line(line, "}");
}

/// bird's configuration, and what it leaves out. `line` is the file's
/// `bird commit`.
pub fn render(
    b: &Bird,
    addrs: &[Addr],
    names: &Names,
    line: usize,
) -> Result<(Rendered, Vec<String>), PlanError> {
    check_symbols(STATIC_PREFIX, b.named.keys(), line)?;
    check_symbols(BGP_PREFIX, b.bgp.keys(), line)?;
    let mut warnings = Vec::new();
    let mut r = Rendered::default();
    r.line(
        0,
        "# minirouter's bird configuration, rewritten at each update",
    );
    if let Some(id) = router_id(b, addrs) {
        r.line(line, format!("router id {id};"));
    }
    r.line(0, "protocol device {");
    r.line(0, "\tscan time 60;");
    r.line(0, "}");
    for v4 in [true, false] {
        r.line(
            0,
            format!("protocol kernel kernel{} {{", if v4 { 4 } else { 6 }),
        );
        r.line(0, "\tscan time 60;");
        r.line(0, format!("\t{} {{", family(v4)));
        r.line(0, "\t\timport none;");
        r.line(0, "\t\texport all;");
        r.line(0, "\t};");
        r.line(0, "}");
    }
    for v4 in [true, false] {
        let routes: Vec<_> = b
            .statics
            .iter()
            .filter(|(n, _)| n.addr.is_ipv4() == v4)
            .collect();
        if routes.is_empty() {
            continue;
        }
        r.line(
            line,
            format!("protocol static static{} {{", if v4 { 4 } else { 6 }),
        );
        r.line(line, format!("\t{};", family(v4)));
        r.line(line, "\tcheck link;");
        for (net, via) in routes {
            r.line(line, route(net, via));
        }
        r.line(line, "}");
    }
    for (name, routes) in &b.named {
        let v4 = routes.keys().next().is_none_or(|n| n.addr.is_ipv4());
        if routes.keys().any(|n| n.addr.is_ipv4() != v4) {
            return Err(PlanError::new(
                line,
                format!("named route {name} mixes IPv4 and IPv6"),
            ));
        }
        r.line(
            line,
            format!("protocol static {} {{", symbol(STATIC_PREFIX, name)),
        );
        r.line(line, format!("\t{} {{", family(v4)));
        r.line(line, "\t\timport all;");
        r.line(line, "\t};");
        for (net, via) in routes {
            r.line(line, route(net, via));
        }
        r.line(line, "}");
    }
    if !b.ospf.is_empty() {
        ospf(&mut r, line, &b.ospf, names, true)?;
        let v6 = addrs
            .iter()
            .any(|a| matches!(a.addr, IfaceAddr::Static(c) if c.addr.is_ipv6()))
            || b.ospf
                .values()
                .flat_map(|a| &a.networks)
                .any(|n| n.addr.is_ipv6());
        if v6 {
            ospf(&mut r, line, &b.ospf, names, false)?;
        }
    }
    for (name, s) in &b.bgp {
        bgp(&mut r, line, name, s, &mut warnings);
    }
    Ok((r, warnings))
}
