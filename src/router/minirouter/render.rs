//! What the renderers share: text that remembers, for each of its lines,
//! the file line it came from (so a tool's complaint about line 12 of its
//! configuration names the command that made it), and interface names.

use super::model::{Iface, LineNo};
use std::collections::BTreeMap;
use thiserror::Error;

/// A configuration the file cannot become on this guest (an interface
/// index it lacks, a chain never made). `line` 0: the last good
/// configuration's.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{reason}")]
pub struct PlanError {
    pub line: LineNo,
    pub reason: String,
}

impl PlanError {
    pub fn new(line: LineNo, reason: impl Into<String>) -> PlanError {
        PlanError {
            line,
            reason: reason.into(),
        }
    }
}

/// Rendered text with the file line of each of its lines (0: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    pub origins: Vec<LineNo>,
}

impl Rendered {
    /// Appends one line (no newline in `s`) made by file line `from`.
    pub fn line(&mut self, from: LineNo, s: impl AsRef<str>) {
        self.text.push_str(s.as_ref());
        self.text.push('\n');
        self.origins.push(from);
    }

    /// The file line behind line `n` (from 1) of the text.
    pub fn origin(&self, n: usize) -> LineNo {
        n.checked_sub(1)
            .and_then(|i| self.origins.get(i))
            .copied()
            .unwrap_or(0)
    }
}

/// The guest's interfaces in minirouter's order: all but `lo`, by the
/// number that ends their name (`eth2` after `eth1`, `ens10` after
/// `ens9`); names without one come last, by name.
pub fn interface_order(names: &[String]) -> Vec<String> {
    let mut v: Vec<&String> = names.iter().filter(|n| n.as_str() != "lo").collect();
    let key = |n: &str| {
        let digits = n.trim_start_matches(|c: char| c.is_ascii_alphabetic());
        digits.parse::<u64>().ok()
    };
    v.sort_by(|a, b| match (key(a), key(b)) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    });
    v.into_iter().cloned().collect()
}

/// Interface names by the file's indexes.
#[derive(Debug, Clone, Default)]
pub struct Names(BTreeMap<usize, String>);

impl Names {
    pub fn new(guest: &[String]) -> Names {
        Names(interface_order(guest).into_iter().enumerate().collect())
    }

    /// The name of `iface`, or the error of `line` naming it.
    pub fn get(&self, iface: Iface, line: LineNo) -> Result<String, PlanError> {
        match iface {
            Iface::Lo => Ok("lo".into()),
            Iface::Index(i) => self.0.get(&i).cloned().ok_or_else(|| {
                let have: Vec<&str> = self.0.values().map(String::as_str).collect();
                PlanError::new(
                    line,
                    format!(
                        "no interface {i}: the guest has {} ({})",
                        have.len(),
                        have.join(" ")
                    ),
                )
            }),
        }
    }
}

/// A name as a bird or nftables symbol: letters, digits and `_`.
pub fn symbol(prefix: &str, name: &str) -> String {
    let body: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{prefix}{body}")
}

/// Fails when two names become one symbol (`a-b`, `a.b`).
pub fn check_symbols<'a>(
    prefix: &str,
    names: impl Iterator<Item = &'a String>,
    line: LineNo,
) -> Result<(), PlanError> {
    let mut seen: BTreeMap<String, &String> = BTreeMap::new();
    for n in names {
        if let Some(other) = seen.insert(symbol(prefix, n), n) {
            return Err(PlanError::new(
                line,
                format!("names `{other}` and `{n}` are one symbol to bird and nftables"),
            ));
        }
    }
    Ok(())
}
