//! VLAN numbers and aliases, minimega's way: aliases live per namespace
//! (`NS//ALIAS` names another namespace's), are allocated from
//! [101, 4096) or the namespace's own `vlans range`, and a number someone
//! typed is blacklisted so no alias is ever given it. Pure; the daemon
//! saves the whole table (as JSON) after each change, so allocations
//! survive a restart.

use crate::vm::nic::ALIAS_SEP;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// The default range, `[min, max)`.
pub const VLAN_START: u16 = 101;
pub const VLAN_END: u16 = 4096;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum VlanError {
    #[error("out of VLANs in range [{min}, {max}) for namespace {namespace}")]
    Exhausted {
        namespace: String,
        min: u16,
        max: u16,
    },
    #[error("alias {0} is already in use (VLAN {1})")]
    AliasInUse(String, u16),
    #[error("VLAN {0} is already in use ({1})")]
    VlanInUse(u16, String),
    #[error("invalid VLAN `{0}`: must be 1 to 4095")]
    Invalid(String),
    #[error("invalid range {0}-{1}: expected 1 <= min < max <= 4096")]
    BadRange(u16, u16),
    #[error("range {0}-{1} overlaps the range of namespace {2}")]
    Overlap(u16, u16, String),
}

/// An alias with its namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Alias {
    pub namespace: String,
    pub name: String,
}

impl Alias {
    /// `text` in namespace `ns`: `X` is `ns//X`, `other//X` is other's.
    pub fn parse(ns: &str, text: &str) -> Alias {
        match text.split_once(ALIAS_SEP) {
            Some((n, a)) => Alias {
                namespace: n.into(),
                name: a.into(),
            },
            None => Alias {
                namespace: ns.into(),
                name: text.into(),
            },
        }
    }
}

impl std::fmt::Display for Alias {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{ALIAS_SEP}{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub min: u16,
    /// Exclusive.
    pub max: u16,
    pub next: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Owner {
    Alias(Alias),
    Blacklisted,
}

/// The table. Ranges are keyed by namespace; `""` is the default range,
/// which the default namespace sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vlans {
    by_vlan: BTreeMap<u16, Owner>,
    ranges: BTreeMap<String, Range>,
}

impl Default for Vlans {
    fn default() -> Self {
        Vlans {
            by_vlan: BTreeMap::new(),
            ranges: BTreeMap::from([(
                String::new(),
                Range {
                    min: VLAN_START,
                    max: VLAN_END,
                    next: VLAN_START,
                },
            )]),
        }
    }
}

/// What a lookup did, so the caller can save and announce a new alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub vlan: u16,
    /// A new alias, allocated by this lookup.
    pub created: Option<Alias>,
}

fn number(text: &str) -> Option<Result<u16, VlanError>> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(match text.parse::<u16>() {
        Ok(n @ 1..=4095) => Ok(n),
        _ => Err(VlanError::Invalid(text.into())),
    })
}

impl Vlans {
    fn alias_vlan(&self, a: &Alias) -> Option<u16> {
        self.by_vlan.iter().find_map(|(v, o)| match o {
            Owner::Alias(x) if x == a => Some(*v),
            _ => None,
        })
    }

    /// The VLAN `text` means in namespace `ns`: a number (blacklisted
    /// unless an alias has it), a known alias, or a new alias allocated
    /// from the namespace's range.
    pub fn resolve(&mut self, ns: &str, text: &str) -> Result<Resolved, VlanError> {
        if let Some(n) = number(text) {
            let n = n?;
            self.by_vlan.entry(n).or_insert(Owner::Blacklisted);
            return Ok(Resolved {
                vlan: n,
                created: None,
            });
        }
        let a = Alias::parse(ns, text);
        if let Some(v) = self.alias_vlan(&a) {
            return Ok(Resolved {
                vlan: v,
                created: None,
            });
        }
        let v = self.allocate(&a)?;
        Ok(Resolved {
            vlan: v,
            created: Some(a),
        })
    }

    /// The VLAN of an alias, if allocated (no allocation).
    pub fn get(&self, ns: &str, text: &str) -> Option<u16> {
        match number(text) {
            Some(n) => n.ok(),
            None => self.alias_vlan(&Alias::parse(ns, text)),
        }
    }

    fn range_for(&self, ns: &str) -> (String, Range) {
        match self.ranges.get(ns) {
            Some(r) => (ns.to_string(), *r),
            None => (String::new(), self.ranges[""]),
        }
    }

    fn allocate(&mut self, a: &Alias) -> Result<u16, VlanError> {
        let (key, r) = self.range_for(&a.namespace);
        // The default range skips the ranges reserved for namespaces.
        let reserved = |v: u16| {
            key.is_empty()
                && self
                    .ranges
                    .iter()
                    .any(|(k, o)| !k.is_empty() && v >= o.min && v < o.max)
        };
        let start = r.next.clamp(r.min, r.max.saturating_sub(1).max(r.min));
        let found = (start..r.max)
            .chain(r.min..start)
            .find(|v| !self.by_vlan.contains_key(v) && !reserved(*v));
        let Some(v) = found else {
            return Err(VlanError::Exhausted {
                namespace: a.namespace.clone(),
                min: r.min,
                max: r.max,
            });
        };
        self.by_vlan.insert(v, Owner::Alias(a.clone()));
        if let Some(r) = self.ranges.get_mut(&key) {
            r.next = v + 1;
        }
        Ok(v)
    }

    /// `vlans add ALIAS VLAN`. The same pair again is no error (a node
    /// told twice of one allocation).
    pub fn add(&mut self, ns: &str, alias: &str, vlan: &str) -> Result<bool, VlanError> {
        let v = match number(vlan) {
            Some(n) => n?,
            None => return Err(VlanError::Invalid(vlan.into())),
        };
        let a = Alias::parse(ns, alias);
        match (self.alias_vlan(&a), self.by_vlan.get(&v)) {
            (Some(have), _) if have == v => Ok(false),
            (Some(have), _) => Err(VlanError::AliasInUse(a.to_string(), have)),
            (None, Some(Owner::Alias(o))) => Err(VlanError::VlanInUse(v, o.to_string())),
            (None, Some(Owner::Blacklisted)) => Err(VlanError::VlanInUse(v, "blacklisted".into())),
            (None, None) => {
                self.by_vlan.insert(v, Owner::Alias(a));
                Ok(true)
            }
        }
    }

    /// Records what another node allocated (a launch's configuration
    /// carries alias and number). A conflict keeps this node's own entry.
    pub fn learn(&mut self, ns: &str, text: &str, vlan: u16) -> bool {
        if number(text).is_some() {
            return self.by_vlan.insert(vlan, Owner::Blacklisted).is_none();
        }
        self.add(ns, text, &vlan.to_string()).unwrap_or(false)
    }

    /// `vlans range MIN MAX` in namespace `ns` (`None`: the default range).
    pub fn set_range(&mut self, ns: Option<&str>, min: u16, max: u16) -> Result<(), VlanError> {
        if min == 0 || min >= max || max > VLAN_END {
            return Err(VlanError::BadRange(min, max));
        }
        let key = ns.unwrap_or("");
        if !key.is_empty() {
            if let Some((other, _)) = self
                .ranges
                .iter()
                .find(|(k, r)| !k.is_empty() && k.as_str() != key && min < r.max && r.min < max)
            {
                return Err(VlanError::Overlap(min, max, other.clone()));
            }
        }
        self.ranges.insert(
            key.to_string(),
            Range {
                min,
                max,
                next: min,
            },
        );
        Ok(())
    }

    /// The range set for namespace `ns` itself, if any.
    pub fn own_range(&self, ns: &str) -> Option<Range> {
        self.ranges.get(ns).filter(|_| !ns.is_empty()).copied()
    }

    /// The range aliases of `ns` come from.
    pub fn range(&self, ns: Option<&str>) -> Range {
        match ns {
            Some(n) => self.range_for(n).1,
            None => self.ranges[""],
        }
    }

    pub fn blacklist(&mut self, vlan: u16) {
        self.by_vlan.insert(vlan, Owner::Blacklisted);
    }

    pub fn blacklisted(&self) -> Vec<u16> {
        self.by_vlan
            .iter()
            .filter(|(_, o)| matches!(o, Owner::Blacklisted))
            .map(|(v, _)| *v)
            .collect()
    }

    /// `clear vlans [prefix]`: the namespace's aliases starting with
    /// `prefix`; with no prefix also its range (the default namespace's
    /// range returns to [101, 4096)).
    pub fn clear(&mut self, ns: &str, prefix: &str, default_ns: bool) -> usize {
        let before = self.by_vlan.len();
        self.by_vlan.retain(|_, o| match o {
            Owner::Alias(a) => !(a.namespace == ns && a.name.starts_with(prefix)),
            Owner::Blacklisted => true,
        });
        if prefix.is_empty() {
            if default_ns {
                self.ranges
                    .insert(String::new(), Vlans::default().ranges[""]);
            } else {
                self.ranges.remove(ns);
            }
        }
        for r in self.ranges.values_mut() {
            r.next = r.min;
        }
        before - self.by_vlan.len()
    }

    /// `clear vlans all`: everything, blacklist included.
    pub fn reset(&mut self) {
        *self = Vlans::default();
    }

    /// How `vm info` shows a VLAN: `ALIAS (101)` in its own namespace,
    /// `NS//ALIAS (101)` elsewhere, the bare number without an alias.
    pub fn print(&self, ns: &str, vlan: u16) -> String {
        match self.by_vlan.get(&vlan) {
            Some(Owner::Alias(a)) if a.namespace == ns => format!("{} ({vlan})", a.name),
            Some(Owner::Alias(a)) => format!("{a} ({vlan})"),
            _ => vlan.to_string(),
        }
    }

    /// `vlans`: (alias, vlan) rows of namespace `ns`.
    pub fn rows(&self, ns: &str) -> Vec<Vec<String>> {
        self.by_vlan
            .iter()
            .filter_map(|(v, o)| match o {
                Owner::Alias(a) if a.namespace == ns => Some(vec![a.name.clone(), v.to_string()]),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vlan(v: &mut Vlans, ns: &str, text: &str) -> u16 {
        v.resolve(ns, text).unwrap().vlan
    }

    #[test]
    fn aliases_per_namespace_from_101() {
        let mut v = Vlans::default();
        let r = v.resolve("exp", "DMZ").unwrap();
        assert_eq!(r.vlan, 101);
        assert_eq!(r.created.unwrap().to_string(), "exp//DMZ");
        assert_eq!(v.resolve("exp", "DMZ").unwrap().created, None);
        assert_eq!(vlan(&mut v, "exp", "LAN"), 102);
        // Another namespace's DMZ is another VLAN; NS//ALIAS reaches across.
        assert_eq!(vlan(&mut v, "other", "DMZ"), 103);
        assert_eq!(vlan(&mut v, "other", "exp//DMZ"), 101);
        assert_eq!(v.get("exp", "LAN"), Some(102));
        assert_eq!(v.get("exp", "nope"), None);
        assert_eq!(v.print("exp", 101), "DMZ (101)");
        assert_eq!(v.print("other", 101), "exp//DMZ (101)");
        assert_eq!(v.print("exp", 7), "7");
        assert_eq!(v.rows("exp"), [["DMZ", "101"], ["LAN", "102"]]);
    }

    #[test]
    fn a_typed_number_is_never_handed_out() {
        let mut v = Vlans::default();
        assert_eq!(vlan(&mut v, "ns", "101"), 101);
        assert_eq!(vlan(&mut v, "ns", "102"), 102);
        assert_eq!(v.blacklisted(), [101, 102]);
        assert_eq!(vlan(&mut v, "ns", "A"), 103);
        v.blacklist(104);
        assert_eq!(vlan(&mut v, "ns", "B"), 105);
        assert_eq!(v.print("ns", 101), "101");
        assert!(matches!(v.resolve("ns", "0"), Err(VlanError::Invalid(_))));
        assert!(matches!(
            v.resolve("ns", "4096"),
            Err(VlanError::Invalid(_))
        ));
        // A number that an alias holds stays that alias's.
        assert_eq!(vlan(&mut v, "ns", "103"), 103);
        assert_eq!(v.print("ns", 103), "A (103)");
    }

    #[test]
    fn ranges_are_per_namespace_and_kept_out_of_the_default() {
        let mut v = Vlans::default();
        v.set_range(Some("exp"), 101, 103).unwrap();
        assert_eq!(vlan(&mut v, "exp", "a"), 101);
        assert_eq!(vlan(&mut v, "exp", "b"), 102);
        let e = v.resolve("exp", "c").unwrap_err();
        assert_eq!(
            e.to_string(),
            "out of VLANs in range [101, 103) for namespace exp"
        );
        // Other namespaces allocate from the default range around it.
        assert_eq!(vlan(&mut v, "other", "a"), 103);
        assert_eq!(
            v.set_range(Some("x"), 102, 200),
            Err(VlanError::Overlap(102, 200, "exp".into()))
        );
        assert_eq!(v.set_range(Some("x"), 5, 5), Err(VlanError::BadRange(5, 5)));
        assert_eq!(
            v.set_range(None, 1, 4097),
            Err(VlanError::BadRange(1, 4097))
        );
        v.set_range(None, 2000, 2002).unwrap();
        assert_eq!(vlan(&mut v, "y", "a"), 2000);
        assert_eq!(v.range(Some("y")).min, 2000);
        assert_eq!(v.range(Some("exp")).max, 103);
    }

    #[test]
    fn add_clear_and_reuse() {
        let mut v = Vlans::default();
        assert_eq!(v.add("ns", "WAN", "500"), Ok(true));
        assert_eq!(v.add("ns", "WAN", "500"), Ok(false));
        assert_eq!(
            v.add("ns", "WAN", "501"),
            Err(VlanError::AliasInUse("ns//WAN".into(), 500))
        );
        assert_eq!(
            v.add("ns", "LAN", "500"),
            Err(VlanError::VlanInUse(500, "ns//WAN".into()))
        );
        assert!(v.add("ns", "X", "abc").is_err());
        assert_eq!(vlan(&mut v, "ns", "DMZ"), 101);
        assert_eq!(vlan(&mut v, "other", "DMZ"), 102);
        assert_eq!(v.clear("ns", "D", false), 1);
        assert_eq!(v.get("ns", "WAN"), Some(500));
        assert_eq!(v.clear("ns", "", false), 1);
        // Freed numbers are found again.
        assert_eq!(vlan(&mut v, "ns", "NEW"), 101);
        v.reset();
        assert_eq!(v, Vlans::default());
    }

    #[test]
    fn learned_allocations_agree_and_conflicts_keep_ours() {
        let mut head = Vlans::default();
        let dmz = vlan(&mut head, "exp", "DMZ");
        let mut node2 = Vlans::default();
        assert!(node2.learn("exp", "DMZ", dmz));
        assert!(node2.learn("exp", "300", 300));
        assert_eq!(node2.get("exp", "DMZ"), Some(dmz));
        assert_eq!(node2.blacklisted(), [300]);
        // A later alias on node2 never takes the head's numbers.
        assert_eq!(vlan(&mut node2, "exp", "LAN"), dmz + 1);
        assert!(!node2.learn("exp", "WAN", dmz));
        assert_eq!(node2.print("exp", dmz), "DMZ (101)");
    }

    #[test]
    fn survives_a_round_trip_through_its_file() {
        let mut v = Vlans::default();
        v.set_range(Some("exp"), 200, 300).unwrap();
        vlan(&mut v, "exp", "DMZ");
        vlan(&mut v, "exp", "55");
        let text = serde_json::to_string(&v).unwrap();
        let mut back: Vlans = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
        assert_eq!(vlan(&mut back, "exp", "DMZ"), 200);
        assert_eq!(vlan(&mut back, "exp", "LAN"), 201);
        assert_eq!(back.blacklisted(), [55]);
    }
}
