//! Why a `router` form failed. The texts are minimega's, word for word, so
//! scripts that match its errors keep working; Go's `strconv` wording is
//! kept where minimega passed it through.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RouterError {
    /// `router VM` on a VM no form has made a router yet.
    #[error("vm {0} not a router")]
    NotARouter(String),
    /// A `clear router VM ...` form on a VM that is no router.
    #[error("no such router {0}")]
    NoSuchRouter(String),

    #[error("invalid network: {network} : {reason}")]
    InvalidNetwork { network: String, reason: String },
    /// A network index given to `clear router VM interface` that is no
    /// number (minimega prints strconv's error alone).
    #[error("{0}")]
    BadNetworkIndex(String),
    #[error("no such network index: {0}")]
    NoSuchNetworkIndex(i64),
    #[error("invalid IP: {0}")]
    InvalidIp(String),
    #[error("IP {0} already exists")]
    IpExists(String),
    #[error("Cannot put {0} on loopback")]
    NotOnLoopback(String),
    /// An address to clear that the interface does not have (minimega's
    /// wording).
    #[error("no such network: {0}")]
    NoSuchIp(String),

    #[error("no such address: {0}")]
    NoSuchDhcp(String),
    #[error("no such mac: {0}")]
    NoSuchMac(String),
    #[error("no such ip: {0}")]
    NoSuchDns(String),
    #[error("no such subnet: {0}")]
    NoSuchSubnet(String),

    #[error("no such static route: {0}")]
    NoSuchStaticRoute(String),
    #[error("no such named static route: {0}")]
    NoSuchNamedRoute(String),
    #[error("no such network in named static route: {0}")]
    NoSuchNamedNetwork(String),
    #[error("no such area: {0}")]
    NoSuchArea(String),
    #[error("no such interface: {0}")]
    NoSuchOspfInterface(String),
    #[error("no such filter: {0}")]
    NoSuchOspfFilter(String),
    #[error("no such bgp process: {0}")]
    NoSuchBgp(String),
    /// minimega reads a bad AS number as 0; a BGP session with AS 0 never
    /// comes up, so it is refused here instead.
    #[error("invalid AS number: {0}")]
    InvalidAs(String),
    #[error("invalid routerid: {0}")]
    InvalidRouterId(String),

    #[error("unknown chain {0}")]
    UnknownChain(String),
    #[error("converting fw interface index: {0}")]
    FwIndex(String),
    #[error("converting fw chain interface index: {0}")]
    FwChainIndex(String),
    #[error("validating fw {which} port {port}: {reason}")]
    FwPort {
        which: &'static str,
        port: String,
        reason: String,
    },
    #[error("malformed fw {which} {value}")]
    FwMalformed { which: &'static str, value: String },
}

/// Go's `strconv.Atoi`: an optionally signed decimal that fits 64 bits, or
/// the error text Go gives.
pub fn atoi(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.Atoi: parsing {}: invalid syntax",
            go_quote(s)
        ));
    }
    s.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {}: value out of range", go_quote(s)))
}

/// Go's `%q` of a string (`strconv.Quote`): printable characters as they
/// are, the usual backslash escapes, others as `\x`, `\u` or `\U`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            // Go also escapes Unicode's other unprintables (format
            // characters, separators); control characters are the ones
            // that reach a command line.
            c if c.is_control()
                || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{feff}') =>
            {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
