//! Reading minirouter's line format (what `router VM commit` writes) into
//! typed commands. Every value is checked here, so a bad address or name
//! is the error of its line before anything is applied.

use super::super::LogLevel;
use super::line::words;
use super::model::{
    Cidr, Dir, Endpoint, Iface, IfaceAddr, Match, NextHop, Proto, RaPrefix, Verdict,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use thiserror::Error;

/// A line minirouter cannot read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: `{text}`: {reason}")]
pub struct LineError {
    pub line: usize,
    pub text: String,
    pub reason: String,
}

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    LogLevel(LogLevel),
    IpFlush,
    IpAdd(Iface, IfaceAddr),
    DnsmasqFlush,
    DnsmasqCommit,
    DhcpRange {
        tag: String,
        low: IpAddr,
        high: IpAddr,
    },
    DhcpRouter {
        tag: String,
        addr: IpAddr,
    },
    DhcpDns {
        tag: String,
        addr: IpAddr,
    },
    DhcpStatic {
        tag: String,
        mac: String,
        ip: IpAddr,
    },
    /// An address and one of its names.
    Dns {
        ip: IpAddr,
        host: String,
    },
    Upstream(IpAddr),
    Ra(RaPrefix),
    DefaultRoute(IpAddr),
    NoDefaultRoute,
    BirdFlush,
    BirdCommit,
    /// `None`: bird chooses (`0.0.0.0`, or an IPv6 ID bird cannot use).
    RouterId(Option<Ipv4Addr>),
    /// `name` `None`: an unnamed route.
    Static {
        net: Cidr,
        via: NextHop,
        name: Option<String>,
    },
    OspfIface {
        area: String,
        iface: Iface,
    },
    OspfOption {
        area: String,
        iface: Iface,
        key: String,
        value: String,
    },
    OspfNetwork {
        area: String,
        net: Cidr,
    },
    OspfExport {
        area: String,
        name: String,
    },
    /// `None`: unset (minimega writes an empty address after a clear).
    BgpLocal {
        name: String,
        peer: Option<(IpAddr, u32)>,
    },
    BgpNeighbor {
        name: String,
        peer: Option<(IpAddr, u32)>,
    },
    BgpRrClient {
        name: String,
    },
    BgpExport {
        name: String,
        filter: String,
    },
    FwFlush,
    FwDefault(Verdict),
    FwRule {
        verdict: Verdict,
        dir: Dir,
        iface: Iface,
        m: Match,
    },
    FwChainRule {
        chain: String,
        verdict: Verdict,
        m: Match,
    },
    FwChainDefault {
        chain: String,
        verdict: Verdict,
    },
    FwChainApply {
        chain: String,
        dir: Dir,
        iface: Iface,
    },
}

/// Parses a whole file: each meaningful line with its number (from 1).
/// Blank lines and `#` comments are skipped.
pub fn parse(text: &str) -> Result<Vec<(usize, Cmd)>, LineError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let cmd = parse_line(t).map_err(|reason| LineError {
            line: i + 1,
            text: t.to_string(),
            reason,
        })?;
        out.push((i + 1, cmd));
    }
    Ok(out)
}

type R<T> = Result<T, String>;

fn ip(s: &str) -> R<IpAddr> {
    s.parse().map_err(|_| format!("`{s}` is not an IP address"))
}

fn cidr(s: &str) -> R<Cidr> {
    Cidr::parse(s).ok_or_else(|| format!("`{s}` is not an address with a prefix length (CIDR)"))
}

fn iface(s: &str) -> R<Iface> {
    Iface::parse(s).ok_or_else(|| format!("`{s}` is no interface index (a number, or lo)"))
}

/// A name that becomes part of a bird protocol, nftables chain or dnsmasq
/// tag: kept to characters all three take.
pub fn name(s: &str) -> R<String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a name (letters, digits, `_`, `-`, `.`)"
        ))
    }
}

/// A DHCP server's tag: minimega's listen address, usually an IP.
fn tag(s: &str) -> R<String> {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
    {
        Ok(s.to_string())
    } else {
        Err(format!("`{s}` cannot tag a DHCP server"))
    }
}

fn mac(s: &str) -> R<String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!("`{s}` is not a MAC address"))
    }
}

fn host(s: &str) -> R<String> {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        Ok(s.to_string())
    } else {
        Err(format!("`{s}` is not a host name"))
    }
}

/// An OSPF area ID: a number or a dotted quad.
fn area(s: &str) -> R<String> {
    if s.parse::<u32>().is_ok() || s.parse::<Ipv4Addr>().is_ok() {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not an OSPF area (a number or a dotted quad)"
        ))
    }
}

fn asn(s: &str) -> R<u32> {
    s.parse().map_err(|_| format!("`{s}` is not an AS number"))
}

fn verdict(s: &str) -> R<Verdict> {
    Verdict::parse(s).ok_or_else(|| format!("`{s}` is not accept, drop or reject"))
}

fn dir(s: &str) -> R<Dir> {
    match s {
        "in" => Ok(Dir::In),
        "out" => Ok(Dir::Out),
        _ => Err(format!("`{s}` is not in or out")),
    }
}

fn proto(s: &str) -> R<Proto> {
    Ok(match s {
        "all" => Proto::Any,
        "tcp_udp" => Proto::TcpUdp,
        "tcp" => Proto::Ported("tcp"),
        "udp" => Proto::Ported("udp"),
        "sctp" => Proto::Ported("sctp"),
        "udplite" => Proto::Ported("udplite"),
        "dccp" => Proto::Ported("dccp"),
        "icmp" => Proto::Number(1, "icmp"),
        "igmp" => Proto::Number(2, "igmp"),
        "ipv6" => Proto::Number(41, "ipv6"),
        "gre" => Proto::Number(47, "gre"),
        "esp" => Proto::Number(50, "esp"),
        "ah" => Proto::Number(51, "ah"),
        "ospf" => Proto::Number(89, "ospf"),
        n => match n.parse::<u8>() {
            Ok(6) => Proto::Ported("tcp"),
            Ok(17) => Proto::Ported("udp"),
            Ok(v) => Proto::Number(v, ""),
            Err(_) => return Err(format!("`{s}` is not a protocol this firewall knows")),
        },
    })
}

/// `ADDR[/LEN][:PORT]`, IPv4 as iptables takes it.
fn endpoint(which: &str, s: &str) -> R<Endpoint> {
    let (addr, port) = match s.split(':').collect::<Vec<_>>()[..] {
        [a] => (a, None),
        [a, p] => (
            a,
            Some(
                p.parse::<u16>()
                    .map_err(|_| format!("{which} port `{p}` is not a port"))?,
            ),
        ),
        _ => return Err(format!("malformed {which} `{s}`")),
    };
    match Cidr::parse_or_host(addr) {
        Some(net) if net.addr.is_ipv4() => Ok(Endpoint { net, port }),
        _ => Err(format!(
            "{which} `{addr}` is not an IPv4 address or network"
        )),
    }
}

/// `[SRC] DST PROTO`.
fn fw_match(args: &[&str]) -> R<Match> {
    let (src, dst, p) = match args {
        [d, p] => (None, *d, *p),
        [s, d, p] => (Some(endpoint("source", s)?), *d, *p),
        _ => return Err("expected [SRC] DST PROTO".into()),
    };
    let dst = endpoint("destination", dst)?;
    let proto = proto(p)?;
    let ports = src.is_some_and(|e| e.port.is_some()) || dst.port.is_some();
    if ports && !matches!(proto, Proto::Ported(_) | Proto::TcpUdp) {
        return Err(format!(
            "ports need tcp, udp, sctp, udplite, dccp or tcp_udp, not `{p}`"
        ));
    }
    Ok(Match {
        src,
        dst,
        proto,
        text: args.join(" "),
    })
}

fn next_hop(s: &str) -> R<NextHop> {
    match s {
        "null" | "0" => Ok(None),
        _ => ip(s).map(Some),
    }
}

/// An OSPF option's name and value go into bird's configuration as they
/// are: kept to what cannot break out of the interface's block.
fn ospf_option(key: &str, value: &str) -> R<(String, String)> {
    let key_ok = key
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b' ')
        && !key.trim().is_empty();
    let value_ok = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" ._:/-".contains(&b))
        && !value.trim().is_empty();
    if key_ok && value_ok {
        Ok((key.to_string(), value.to_string()))
    } else {
        Err(format!(
            "OSPF option `{key}` `{value}` is not one bird could take"
        ))
    }
}

fn bgp_peer(args: &[&str]) -> R<Option<(IpAddr, u32)>> {
    match args {
        [a] => asn(a).map(|_| None),
        [i, a] => Ok(Some((ip(i)?, asn(a)?))),
        _ => Err("expected IP AS".into()),
    }
}

fn parse_line(line: &str) -> R<Cmd> {
    let owned = words(line)?;
    let w: Vec<&str> = owned.iter().map(String::as_str).collect();
    Ok(match w[..] {
        ["log", "level", l] => Cmd::LogLevel(LogLevel::parse(l).ok_or_else(|| format!("`{l}` is not a log level"))?),
        ["ip", "flush"] => Cmd::IpFlush,
        ["ip", "add", i, a] => {
            let i = iface(i)?;
            let a = if a == "dhcp" { IfaceAddr::Dhcp } else { IfaceAddr::Static(cidr(a)?) };
            if i == Iface::Lo && a == IfaceAddr::Dhcp {
                return Err("a loopback gets no address by DHCP".into());
            }
            Cmd::IpAdd(i, a)
        }
        ["dnsmasq", "flush"] => Cmd::DnsmasqFlush,
        ["dnsmasq", "commit"] => Cmd::DnsmasqCommit,
        ["dnsmasq", "dhcp", "range", t, l, h] => Cmd::DhcpRange { tag: tag(t)?, low: ip(l)?, high: ip(h)? },
        ["dnsmasq", "dhcp", "option", "router", t, a] => match ip(a)? {
            addr @ IpAddr::V4(_) => Cmd::DhcpRouter { tag: tag(t)?, addr },
            _ => return Err("DHCP's router option takes an IPv4 address".into()),
        },
        ["dnsmasq", "dhcp", "option", "dns", t, a] => Cmd::DhcpDns { tag: tag(t)?, addr: ip(a)? },
        ["dnsmasq", "dhcp", "static", t, m, a] => Cmd::DhcpStatic { tag: tag(t)?, mac: mac(m)?, ip: ip(a)? },
        ["dnsmasq", "dns", a, h] => Cmd::Dns { ip: ip(a)?, host: host(h)? },
        ["dnsmasq", "upstream", a] => Cmd::Upstream(ip(a)?),
        ["dnsmasq", "ra", s] => {
            let (a, len) = match s.split_once('/') {
                Some((a, l)) => (a, Some(l.parse::<u8>().ok().filter(|l| *l <= 128).ok_or_else(|| format!("`{l}` is not a prefix length"))?)),
                None => (s, None),
            };
            let addr: Ipv6Addr = a.parse().map_err(|_| format!("`{s}` is not an IPv6 prefix"))?;
            Cmd::Ra(RaPrefix { addr, len })
        }
        ["route", "add", "default", "gw", g] => Cmd::DefaultRoute(ip(g)?),
        ["route", "del", "default"] => Cmd::NoDefaultRoute,
        ["bird", "flush"] => Cmd::BirdFlush,
        ["bird", "commit"] => Cmd::BirdCommit,
        ["bird", "routerid", id] => Cmd::RouterId(match ip(id)? {
            IpAddr::V4(a) if !a.is_unspecified() => Some(a),
            _ => None,
        }),
        ["bird", "static", n, nh, nm] => {
            let (net, via) = (cidr(n)?, next_hop(nh)?);
            if via.is_some_and(|v| v.is_ipv4() != net.addr.is_ipv4()) {
                return Err("the next hop is not of the network's family".into());
            }
            Cmd::Static { net, via, name: if nm == "null" { None } else { Some(name(nm)?) } }
        }
        ["bird", "ospf", a, "filter", f] => match Cidr::parse(f) {
            Some(net) => Cmd::OspfNetwork { area: area(a)?, net },
            None => Cmd::OspfExport { area: area(a)?, name: name(f)? },
        },
        ["bird", "ospf", a, i] => Cmd::OspfIface { area: area(a)?, iface: iface(i)? },
        ["bird", "ospf", a, i, k, v] => {
            let (key, value) = ospf_option(k, v)?;
            Cmd::OspfOption { area: area(a)?, iface: iface(i)?, key, value }
        }
        ["bird", "bgp", n, "local", ref rest @ ..] => Cmd::BgpLocal { name: name(n)?, peer: bgp_peer(rest)? },
        ["bird", "bgp", n, "neighbor", ref rest @ ..] => Cmd::BgpNeighbor { name: name(n)?, peer: bgp_peer(rest)? },
        ["bird", "bgp", n, "rrclient"] => Cmd::BgpRrClient { name: name(n)? },
        ["bird", "bgp", n, "filter", f] => Cmd::BgpExport { name: name(n)?, filter: name(f)? },
        ["fw", "flush"] => Cmd::FwFlush,
        ["fw", "default", v] => match verdict(v)? {
            Verdict::Reject => return Err("the default is accept or drop".into()),
            v => Cmd::FwDefault(v),
        },
        ["fw", "chain", c, "default", "action", v] => Cmd::FwChainDefault { chain: name(c)?, verdict: verdict(v)? },
        ["fw", "chain", c, "action", v, ref rest @ ..] => Cmd::FwChainRule { chain: name(c)?, verdict: verdict(v)?, m: fw_match(rest)? },
        ["fw", "chain", c, "apply", d, i] => Cmd::FwChainApply { chain: name(c)?, dir: dir(d)?, iface: iface(i)? },
        ["fw", "chain", ..] => {
            return Err("expected fw chain NAME default action V, action V [SRC] DST PROTO, or apply in|out INDEX".into())
        }
        ["fw", v, d, i, ref rest @ ..] => Cmd::FwRule { verdict: verdict(v)?, dir: dir(d)?, iface: iface(i)?, m: fw_match(rest)? },
        _ => return Err("not a minirouter command".into()),
    })
}
