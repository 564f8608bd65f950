//! NIC bonds (minimega's `vm config bonds` and `vm net bond`): two or more
//! of a VM's NICs made one Open vSwitch bond port, with a bond mode and an
//! LACP mode. Pure: the bondspec and how minimega prints it.

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub const MODES: &[&str] = &["active-backup", "balance-slb", "balance-tcp"];
pub const LACP: &[&str] = &["active", "passive", "off"];
/// The LACP mode a bondspec without one gets.
pub const DEFAULT_LACP: &str = "active";
/// Bonds without a name of their own are `mega_bondN` on the switch.
pub const NAME_PREFIX: &str = "mega_bond";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BondError {
    #[error("malformed bondspec")]
    Malformed,
    #[error("invalid interface index {0} provided in bondspec")]
    Index(String),
    #[error("LACP mode must be set to active or passive for balance-tcp bond mode")]
    TcpWithoutLacp,
    #[error("invalid bond name `{0}`: {1}")]
    Name(String, String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bond {
    /// NIC indexes, as in `vm info`.
    pub interfaces: Vec<usize>,
    pub mode: String,
    pub lacp: String,
    pub fallback: bool,
    pub qinq: bool,
    /// Given in the spec, or `mega_bondN` once made; empty before.
    #[serde(default)]
    pub name: String,
    /// This VM holds the name (reserved at launch): only then is the
    /// switch's port of that name its own to remove.
    #[serde(default)]
    pub held: bool,
}

fn is(word: &str, set: &[&str]) -> Option<String> {
    set.iter()
        .find(|m| m.eq_ignore_ascii_case(word))
        .map(|m| m.to_string())
}

impl Bond {
    /// A bondspec: `IFACES,MODE[,LACP[,no-lacp-fallback]][,qinq][,NAME]`,
    /// IFACES two or more NIC indexes (`0,1,balance-tcp,active,uplink`).
    pub fn parse(spec: &str) -> Result<Bond, BondError> {
        let f: Vec<&str> = spec.split(',').collect();
        let at = f
            .iter()
            .position(|w| is(w, MODES).is_some())
            .ok_or(BondError::Malformed)?;
        if at < 2 {
            return Err(BondError::Malformed);
        }
        let interfaces = f[..at]
            .iter()
            .map(|i| i.parse().map_err(|_| BondError::Index(i.to_string())))
            .collect::<Result<Vec<usize>, _>>()?;
        let mode = is(f[at], MODES).unwrap_or_default();
        let mut rest = f[at + 1..].iter().copied().peekable();
        let mut lacp = None;
        let mut fallback = true;
        if let Some(l) = rest.peek().and_then(|w| is(w, LACP)) {
            lacp = Some(l);
            rest.next();
            if rest
                .peek()
                .is_some_and(|w| w.eq_ignore_ascii_case("no-lacp-fallback"))
            {
                fallback = false;
                rest.next();
            }
        }
        let mut qinq = false;
        if rest.peek().is_some_and(|w| w.eq_ignore_ascii_case("qinq")) {
            qinq = true;
            rest.next();
        }
        let name = rest.next().unwrap_or_default().to_string();
        if rest.next().is_some() {
            return Err(BondError::Malformed);
        }
        Bond::new(interfaces, &mode, lacp.as_deref(), fallback, qinq, &name)
    }

    /// A bond from `vm net bond`'s words.
    pub fn new(
        interfaces: Vec<usize>,
        mode: &str,
        lacp: Option<&str>,
        fallback: bool,
        qinq: bool,
        name: &str,
    ) -> Result<Bond, BondError> {
        let lacp = lacp.unwrap_or(DEFAULT_LACP).to_string();
        if mode == "balance-tcp" && lacp == "off" {
            return Err(BondError::TcpWithoutLacp);
        }
        if !name.is_empty() {
            crate::vm::nic::check_bridge(name)
                .map_err(|why| BondError::Name(name.into(), why.to_string()))?;
        }
        if interfaces.len() < 2 {
            return Err(BondError::Malformed);
        }
        Ok(Bond {
            interfaces,
            mode: mode.into(),
            lacp,
            fallback,
            qinq,
            name: name.into(),
            held: false,
        })
    }

    /// The spec again, as minimega prints it: the LACP mode only when not
    /// the default (or with no-lacp-fallback), the name only when not one
    /// it made.
    pub fn spec(&self) -> String {
        let mut parts: Vec<String> = self.interfaces.iter().map(|i| i.to_string()).collect();
        parts.push(self.mode.clone());
        if !self.fallback {
            parts.push(self.lacp.clone());
            parts.push("no-lacp-fallback".into());
        } else if self.lacp != DEFAULT_LACP {
            parts.push(self.lacp.clone());
        }
        if self.qinq {
            parts.push("qinq".into());
        }
        if !self.name.is_empty() && !self.name.starts_with(NAME_PREFIX) {
            parts.push(self.name.clone());
        }
        parts.join(",")
    }
}

/// `vm config bonds`: `[spec spec]`.
pub fn describe(bonds: &[Bond]) -> String {
    let specs: Vec<String> = bonds.iter().map(Bond::spec).collect();
    format!("[{}]", specs.join(" "))
}

pub fn parse_all(specs: &[String]) -> Result<Vec<Bond>, BondError> {
    specs.iter().map(|s| Bond::parse(s)).collect()
}

/// Checks bonds against a VM's NIC count: every index names a NIC, and no
/// NIC is in two bonds.
pub fn check(bonds: &[Bond], nics: usize) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for b in bonds {
        for &i in &b.interfaces {
            if i >= nics {
                return Err(format!("interface {i} not found"));
            }
            if !seen.insert(i) {
                return Err(format!("interface {i} is in two bonds"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bondspecs_parse_as_minimega_reads_them() {
        let b = Bond::parse("0,1,active-backup").unwrap();
        assert_eq!(
            (
                b.interfaces.clone(),
                b.mode.as_str(),
                b.lacp.as_str(),
                b.fallback,
                b.qinq
            ),
            (vec![0, 1], "active-backup", "active", true, false)
        );
        assert_eq!(b.spec(), "0,1,active-backup");
        let b = Bond::parse("0,1,balance-tcp,active,no-lacp-fallback,uplink").unwrap();
        assert_eq!((b.fallback, b.name.as_str()), (false, "uplink"));
        assert_eq!(b.spec(), "0,1,balance-tcp,active,no-lacp-fallback,uplink");
        let b = Bond::parse("1,2,3,balance-slb,passive,qinq").unwrap();
        assert_eq!((b.interfaces.len(), b.qinq), (3, true));
        assert_eq!(b.spec(), "1,2,3,balance-slb,passive,qinq");
        assert_eq!(Bond::parse("0,1,active-backup,up").unwrap().name, "up");
        assert_eq!(Bond::parse("0,1,active-backup,qinq,up").unwrap().name, "up");
        let mut b = Bond::parse("0,1,active-backup,off").unwrap();
        assert_eq!(b.spec(), "0,1,active-backup,off");
        b.name = "mega_bond3".into();
        assert_eq!(b.spec(), "0,1,active-backup,off");
        assert_eq!(describe(&[]), "[]");
        assert_eq!(
            describe(&[Bond::parse("0,1,active-backup").unwrap(), b]),
            "[0,1,active-backup 0,1,active-backup,off]"
        );
    }

    #[test]
    fn bad_bondspecs_say_why() {
        let e = |s: &str| Bond::parse(s).unwrap_err().to_string();
        assert_eq!(e("0,1"), "malformed bondspec");
        assert_eq!(e("0,active-backup"), "malformed bondspec");
        assert_eq!(
            e("a,1,active-backup"),
            "invalid interface index a provided in bondspec"
        );
        assert_eq!(
            e("0,1,balance-tcp,off"),
            "LACP mode must be set to active or passive for balance-tcp bond mode"
        );
        assert_eq!(e("0,1,active-backup,a,b"), "malformed bondspec");
        assert!(e("0,1,active-backup,bad name!").starts_with("invalid bond name"));
        let two = parse_all(&["0,1,active-backup".into(), "1,2,balance-slb".into()]).unwrap();
        assert_eq!(check(&two, 3).unwrap_err(), "interface 1 is in two bonds");
        assert_eq!(check(&two[..1], 1).unwrap_err(), "interface 1 not found");
        assert!(check(&two[..1], 2).is_ok());
    }
}
