//! The firewall as an nftables ruleset with the semantics minirouter gave
//! iptables: only forwarded IPv4 packets are filtered (iptables, not
//! ip6tables; INPUT and OUTPUT accept); replies to established flows pass
//! first (its ESTABLISHED chain); then each interface's rules in the
//! order given; then the default policy. A chain's default is a last rule
//! where it was given. The whole table is replaced in one transaction.

use super::model::{ChainRule, Dir, Endpoint, Firewall, FwRule, Match, Proto};
use super::render::{check_symbols, symbol, Names, PlanError, Rendered};

pub const TABLE: &str = "minirouter";

/// The prefix of the chains made with `fw chain NAME`.
const CHAIN_PREFIX: &str = "fw_";

fn addr(e: &Endpoint) -> String {
    if e.net.len == 32 {
        e.net.addr.to_string()
    } else {
        e.net.to_string()
    }
}

/// The match part of a rule.
fn matches(m: &Match) -> String {
    let mut out = Vec::new();
    // A /0 matches any address: nothing to say.
    if let Some(src) = m.src.filter(|s| s.net.len > 0) {
        out.push(format!("ip saddr {}", addr(&src)));
    }
    if m.dst.net.len > 0 {
        out.push(format!("ip daddr {}", addr(&m.dst)));
    }
    let sport = m.src.and_then(|s| s.port);
    let dport = m.dst.port;
    match m.proto {
        Proto::Any => {}
        Proto::Ported(p) => {
            if sport.is_none() && dport.is_none() {
                out.push(format!("meta l4proto {p}"));
            }
            if let Some(s) = sport {
                out.push(format!("{p} sport {s}"));
            }
            if let Some(d) = dport {
                out.push(format!("{p} dport {d}"));
            }
        }
        Proto::TcpUdp => {
            out.push("meta l4proto { tcp, udp }".into());
            if let Some(s) = sport {
                out.push(format!("th sport {s}"));
            }
            if let Some(d) = dport {
                out.push(format!("th dport {d}"));
            }
        }
        Proto::Number(1, _) => out.push("meta l4proto icmp".into()),
        Proto::Number(n, _) => out.push(format!("meta l4proto {n}")),
    }
    out.join(" ")
}

/// A rule's text: its match (if any) and verdict.
fn rule(m: Option<&Match>, verdict: &str) -> String {
    match m.map(matches).filter(|m| !m.is_empty()) {
        Some(m) => format!("{m} {verdict}"),
        None => verdict.to_string(),
    }
}

fn chain_rule(r: &ChainRule) -> String {
    rule(r.m.as_ref(), r.verdict.as_str())
}

fn on(dir: Dir, name: &str) -> String {
    match dir {
        Dir::In => format!("iifname \"{name}\""),
        Dir::Out => format!("oifname \"{name}\""),
    }
}

/// The ruleset for `fw` (`line`: its `fw flush`), interfaces named by
/// `names`.
pub fn render(fw: &Firewall, names: &Names, line: usize) -> Result<Rendered, PlanError> {
    check_symbols(CHAIN_PREFIX, fw.chains.iter().map(|(n, _)| n), line)?;
    let mut r = Rendered::default();
    r.line(0, "# minirouter's firewall, rewritten at each update");
    // Made first so the delete cannot fail on a guest that has none yet.
    r.line(0, format!("table ip {TABLE}"));
    r.line(0, format!("delete table ip {TABLE}"));
    r.line(0, format!("table ip {TABLE} {{"));
    r.line(0, "\tchain established {");
    r.line(
        0,
        "\t\tmeta l4proto { tcp, udp, icmp } ct state established,related accept",
    );
    r.line(0, "\t}");
    for (name, rules) in &fw.chains {
        r.line(0, format!("\tchain {} {{", symbol(CHAIN_PREFIX, name)));
        for cr in rules {
            r.line(cr.line, format!("\t\t{}", chain_rule(cr)));
        }
        r.line(0, "\t}");
    }
    r.line(0, "\tchain forward {");
    r.line(
        line,
        format!(
            "\t\ttype filter hook forward priority filter; policy {};",
            fw.default.as_str()
        ),
    );
    r.line(0, "\t\tjump established");
    for fr in &fw.rules {
        match fr {
            FwRule::Match {
                line,
                dir,
                iface,
                verdict,
                m,
            } => {
                let name = names.get(*iface, *line)?;
                r.line(
                    *line,
                    format!(
                        "\t\t{} {}",
                        on(*dir, &name),
                        rule(Some(m), verdict.as_str())
                    ),
                );
            }
            FwRule::Apply {
                line,
                dir,
                iface,
                chain,
            } => {
                if !fw.chains.iter().any(|(n, _)| n == chain) {
                    return Err(PlanError::new(*line, format!("no chain {chain} to apply")));
                }
                let name = names.get(*iface, *line)?;
                r.line(
                    *line,
                    format!(
                        "\t\t{} jump {}",
                        on(*dir, &name),
                        symbol(CHAIN_PREFIX, chain)
                    ),
                );
            }
        }
    }
    r.line(0, "\t}");
    r.line(0, "}");
    Ok(r)
}

/// The ruleset that removes the table (the firewall is no longer the
/// file's: a container's).
pub fn remove() -> Rendered {
    let mut r = Rendered::default();
    r.line(0, format!("table ip {TABLE}"));
    r.line(0, format!("delete table ip {TABLE}"));
    r
}
