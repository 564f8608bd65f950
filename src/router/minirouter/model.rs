//! The typed pieces of a minirouter configuration: addresses, interfaces,
//! firewall matches, and the effective state the file's lines build.

use super::super::LogLevel;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// An address with a prefix length (`10.0.0.1/24`, `2001:1::/64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub len: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, len) = s.split_once('/')?;
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let len: u8 = len.parse().ok().filter(|l| *l <= max)?;
        Some(Cidr { addr, len })
    }

    /// A bare address is the host (`/32`, `/128`), as iptables reads one.
    pub fn parse_or_host(s: &str) -> Option<Cidr> {
        if s.contains('/') {
            return Cidr::parse(s);
        }
        let addr: IpAddr = s.parse().ok()?;
        let len = if addr.is_ipv4() { 32 } else { 128 };
        Some(Cidr { addr, len })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// An interface as the file names it: the index among the guest's
/// interfaces (loopback left out, ordered by their number), or `lo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Iface {
    Index(usize),
    Lo,
}

impl Iface {
    pub fn parse(s: &str) -> Option<Iface> {
        if s == "lo" {
            return Some(Iface::Lo);
        }
        s.parse().ok().map(Iface::Index)
    }
}

impl fmt::Display for Iface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Iface::Index(i) => write!(f, "{i}"),
            Iface::Lo => f.write_str("lo"),
        }
    }
}

/// What `ip add` gives an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IfaceAddr {
    /// Ask a DHCP server.
    Dhcp,
    Static(Cidr),
}

impl fmt::Display for IfaceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IfaceAddr::Dhcp => f.write_str("dhcp"),
            IfaceAddr::Static(c) => c.fmt(f),
        }
    }
}

/// Where a piece of configuration came from: its line in the file being
/// applied, or 0 for what the last good configuration already had.
pub type LineNo = usize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub line: LineNo,
    pub iface: Iface,
    pub addr: IfaceAddr,
}

/// One DHCP server, keyed by its tag (minimega's listen address).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DhcpServer {
    pub range: Option<(IpAddr, IpAddr)>,
    pub router: Option<IpAddr>,
    pub dns: Option<IpAddr>,
    /// MAC (lower case) to address.
    pub statics: BTreeMap<String, IpAddr>,
}

/// What dnsmasq serves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dnsmasq {
    pub dhcp: BTreeMap<String, DhcpServer>,
    /// Host name to its addresses, in the order given.
    pub hosts: BTreeMap<String, Vec<IpAddr>>,
    pub upstream: Option<IpAddr>,
    /// Prefixes to advertise (router advertisements, SLAAC).
    pub ra: Vec<RaPrefix>,
}

impl Dnsmasq {
    pub fn is_empty(&self) -> bool {
        self.dhcp.is_empty()
            && self.hosts.is_empty()
            && self.upstream.is_none()
            && self.ra.is_empty()
    }
}

/// `dnsmasq ra 2001:1::` (or with `/LEN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RaPrefix {
    pub addr: std::net::Ipv6Addr,
    pub len: Option<u8>,
}

/// A static route's next hop; `None` in the file (`null`, or minimega's
/// `0`) makes the route unreachable.
pub type NextHop = Option<IpAddr>;

/// An OSPF area's members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OspfArea {
    /// Interface to its options (`cost` to `10`), and the line that named
    /// it (an index the guest lacks is that line's error).
    pub interfaces: BTreeMap<Iface, (LineNo, BTreeMap<String, String>)>,
    /// Networks of the area (bird's `networks`).
    pub networks: Vec<Cidr>,
    /// Named static routes OSPF exports.
    pub exports: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BgpSession {
    pub local: Option<(IpAddr, u32)>,
    pub neighbor: Option<(IpAddr, u32)>,
    pub rr_client: bool,
    /// `all` (re-advertise what BGP learned) and named static routes.
    pub exports: Vec<String>,
}

/// What bird runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bird {
    /// Unnamed static routes, network to next hop.
    pub statics: BTreeMap<Cidr, NextHop>,
    /// Name to network to next hop.
    pub named: BTreeMap<String, BTreeMap<Cidr, NextHop>>,
    /// Area ID (as written) to members.
    pub ospf: BTreeMap<String, OspfArea>,
    pub bgp: BTreeMap<String, BgpSession>,
    /// `None`: let bird choose (minimega sends `0.0.0.0` when it had no
    /// address to choose from, and may send an IPv6 one).
    pub router_id: Option<Ipv4Addr>,
}

impl Bird {
    pub fn is_empty(&self) -> bool {
        self.statics.is_empty()
            && self.named.is_empty()
            && self.ospf.is_empty()
            && self.bgp.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Reject,
}

impl Verdict {
    pub fn parse(s: &str) -> Option<Verdict> {
        Some(match s {
            "accept" => Verdict::Accept,
            "drop" => Verdict::Drop,
            "reject" => Verdict::Reject,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Drop => "drop",
            Verdict::Reject => "reject",
        }
    }
}

/// Traffic in from (`in`) or out to (`out`) an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    In,
    Out,
}

/// A protocol a firewall rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// `all`: any protocol.
    Any,
    /// `tcp_udp` (phenix's): both.
    TcpUdp,
    /// A protocol with ports (`tcp`, `udp`, `sctp`, `udplite`, `dccp`).
    Ported(&'static str),
    /// Another protocol, by number (`icmp` is 1).
    Number(u8, &'static str),
}

/// An address (or network) and optionally a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub net: Cidr,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub src: Option<Endpoint>,
    pub dst: Endpoint,
    pub proto: Proto,
    /// As written, to write it back.
    pub text: String,
}

/// A rule of the forward path: a match on an interface, or a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FwRule {
    Match {
        line: LineNo,
        dir: Dir,
        iface: Iface,
        verdict: Verdict,
        m: Match,
    },
    Apply {
        line: LineNo,
        dir: Dir,
        iface: Iface,
        chain: String,
    },
}

/// A chain's entry: a matching rule, or (no match) its default, which
/// iptables appends where it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRule {
    pub line: LineNo,
    pub m: Option<Match>,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firewall {
    /// The forward policy: accept or drop.
    pub default: Verdict,
    /// Chains in the order they were made.
    pub chains: Vec<(String, Vec<ChainRule>)>,
    pub rules: Vec<FwRule>,
}

impl Default for Firewall {
    fn default() -> Firewall {
        Firewall {
            default: Verdict::Accept,
            chains: Vec::new(),
            rules: Vec::new(),
        }
    }
}

/// The default route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gateway {
    pub line: LineNo,
    pub via: IpAddr,
}

/// Everything a router is configured to be: the last good configuration,
/// or the one a file makes of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub log_level: LogLevel,
    pub addrs: Vec<Addr>,
    pub gateway: Option<Gateway>,
    pub dnsmasq: Dnsmasq,
    pub bird: Bird,
    /// `None`: minirouter leaves the firewall alone (a container's file
    /// has no `fw` lines).
    pub firewall: Option<Firewall>,
}

impl Default for State {
    fn default() -> State {
        State {
            log_level: LogLevel::Error,
            addrs: Vec::new(),
            gateway: None,
            dnsmasq: Dnsmasq::default(),
            bird: Bird::default(),
            firewall: None,
        }
    }
}
