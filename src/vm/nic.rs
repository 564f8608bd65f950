//! minimega's netspec, `[bridge,]vlan[,mac][,driver][,qinq]`, and the NIC
//! a VM keeps from it. Fields are told apart by shape, as in the original:
//! a MAC has colons, a driver is a known QEMU NIC model, `qinq` is the
//! word. Parsing is pure; [`NetSpec::validate`] names the bad field.

use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

pub const DEFAULT_BRIDGE: &str = "mega_bridge";
pub const DEFAULT_DRIVER: &str = "e1000";

/// QEMU's NIC models (`qemu-system-x86_64 -device help`, "Network devices").
pub const DRIVERS: &[&str] = &[
    "e1000",
    "e1000-82544gc",
    "e1000-82545em",
    "e1000e",
    "i82550",
    "i82551",
    "i82557a",
    "i82557b",
    "i82557c",
    "i82558a",
    "i82558b",
    "i82559a",
    "i82559b",
    "i82559c",
    "i82559er",
    "i82562",
    "i82801",
    "igb",
    "ne2k_pci",
    "pcnet",
    "rtl8139",
    "tulip",
    "usb-net",
    "virtio-net",
    "virtio-net-pci",
    "virtio-net-pci-non-transitional",
    "virtio-net-pci-transitional",
    "vmxnet3",
];

pub const SYNTAX: &str = "[bridge,]vlan[,mac][,driver][,qinq]";

/// Linux interface names hold at most 15 bytes.
pub const IFNAME_MAX: usize = 15;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SpecError {
    #[error("invalid netspec `{spec}`: bad MAC address `{mac}`: {why}")]
    Mac {
        spec: String,
        mac: String,
        why: &'static str,
    },
    #[error("invalid netspec `{spec}`: unknown NIC driver `{driver}` (drivers: {})", DRIVERS.join(", "))]
    Driver { spec: String, driver: String },
    #[error("invalid netspec `{spec}`: bad VLAN `{vlan}`: {why}")]
    Vlan {
        spec: String,
        vlan: String,
        why: &'static str,
    },
    #[error("invalid netspec `{spec}`: bad bridge name `{bridge}`: {why}")]
    Bridge {
        spec: String,
        bridge: String,
        why: &'static str,
    },
    #[error("invalid netspec `{spec}`: too many fields (expected {SYNTAX})")]
    TooMany { spec: String },
    #[error("invalid netspec `{spec}`: empty field (expected {SYNTAX})")]
    Empty { spec: String },
}

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// `aa:bb:cc:dd:ee:ff` (or with `-`), any case.
    pub fn parse(s: &str) -> Result<Mac, &'static str> {
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err("expected six hex pairs like 00:11:22:33:44:55");
        }
        let mut b = [0u8; 6];
        for (i, p) in parts.iter().enumerate() {
            if p.len() != 2 {
                return Err("expected six hex pairs like 00:11:22:33:44:55");
            }
            b[i] = u8::from_str_radix(p, 16).map_err(|_| "not hexadecimal")?;
        }
        Ok(Mac(b))
    }

    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// A VLAN as written: a number, or an alias (`DMZ`, or `exp//DMZ` for
/// another namespace's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VlanRef {
    Id(u16),
    Alias(String),
}

/// The separator of `NS//ALIAS`.
pub const ALIAS_SEP: &str = "//";

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

impl VlanRef {
    pub fn parse(s: &str) -> Result<VlanRef, &'static str> {
        if s.bytes().all(|b| b.is_ascii_digit()) {
            let n: u32 = s.parse().map_err(|_| "must be 1 to 4095")?;
            return match n {
                1..=4095 => Ok(VlanRef::Id(n as u16)),
                _ => Err("must be 1 to 4095"),
            };
        }
        let (ns, alias) = s.split_once(ALIAS_SEP).unwrap_or(("", s));
        let ok = |p: &str| p.chars().all(name_char);
        if alias.is_empty() || !ok(alias) || !ok(ns) || (s.contains(ALIAS_SEP) && ns.is_empty()) {
            return Err(
                "an alias is letters, digits, `_`, `-` and `.`, optionally as NAMESPACE//ALIAS",
            );
        }
        Ok(VlanRef::Alias(s.to_string()))
    }
}

pub fn check_bridge(b: &str) -> Result<(), &'static str> {
    if b.is_empty() || b.len() > IFNAME_MAX {
        return Err("must be 1 to 15 characters (a network device name)");
    }
    if !b.chars().all(name_char) {
        return Err("use letters, digits, `_`, `-` and `.`");
    }
    if b.bytes().all(|c| c.is_ascii_digit()) {
        return Err("must not be a number (a number is a VLAN)");
    }
    Ok(())
}

/// One parsed netspec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetSpec {
    pub bridge: String,
    pub vlan: VlanRef,
    /// The VLAN as typed.
    pub vlan_text: String,
    pub mac: Option<Mac>,
    pub driver: String,
    pub qinq: bool,
}

fn is_driver(s: &str) -> bool {
    DRIVERS.contains(&s)
}

impl NetSpec {
    pub fn parse(spec: &str) -> Result<NetSpec, SpecError> {
        let s = || spec.to_string();
        let mut f: Vec<&str> = spec.split(',').collect();
        if f.iter().any(|x| x.is_empty()) {
            return Err(SpecError::Empty { spec: s() });
        }
        if f.len() > 5 {
            return Err(SpecError::TooMany { spec: s() });
        }
        // Optional fields come off the end, in reverse order.
        let qinq = f.len() > 1 && f.last().is_some_and(|x| x.eq_ignore_ascii_case("qinq"));
        if qinq {
            f.pop();
        }
        let driver = if f.len() > 1 && f.last().is_some_and(|x| is_driver(x)) {
            f.pop().map(str::to_string)
        } else {
            None
        };
        let mac = if f.len() > 1 && f.last().is_some_and(|x| x.contains(':')) {
            f.pop()
        } else {
            None
        };
        // What is left is `vlan` or `bridge,vlan`; anything after a MAC sits
        // where a driver goes, and a colon anywhere is a MAC gone wrong.
        if let Some(i) = f.iter().position(|x| x.contains(':')) {
            if i + 1 < f.len() && !f[i + 1].contains(':') && Mac::parse(f[i]).is_ok() {
                return Err(SpecError::Driver {
                    spec: s(),
                    driver: f[i + 1].to_string(),
                });
            }
            let why = Mac::parse(f[i]).err().unwrap_or("misplaced");
            return Err(SpecError::Mac {
                spec: s(),
                mac: f[i].to_string(),
                why,
            });
        }
        let mac = match mac {
            None => None,
            Some(m) => {
                let bad = |why| SpecError::Mac {
                    spec: s(),
                    mac: m.to_string(),
                    why,
                };
                let parsed = Mac::parse(m).map_err(bad)?;
                if parsed.is_multicast() {
                    return Err(bad("a multicast address cannot be a NIC's"));
                }
                Some(parsed)
            }
        };
        let (bridge, vlan) = match f.as_slice() {
            [v] => (DEFAULT_BRIDGE, *v),
            // `100,e1001`: a number first means VLAN, so the second word
            // was meant as a driver.
            [b, d]
                if b.bytes().all(|c| c.is_ascii_digit()) && mac.is_none() && driver.is_none() =>
            {
                return Err(SpecError::Driver {
                    spec: s(),
                    driver: d.to_string(),
                })
            }
            [b, v] => (*b, *v),
            _ => return Err(SpecError::TooMany { spec: s() }),
        };
        let n = NetSpec {
            bridge: bridge.to_string(),
            vlan: VlanRef::parse(vlan).map_err(|why| SpecError::Vlan {
                spec: s(),
                vlan: vlan.to_string(),
                why,
            })?,
            vlan_text: vlan.to_string(),
            mac,
            driver: driver.unwrap_or_else(|| DEFAULT_DRIVER.to_string()),
            qinq,
        };
        n.validate(spec)?;
        Ok(n)
    }

    /// Checks what parsing alone does not.
    pub fn validate(&self, spec: &str) -> Result<(), SpecError> {
        check_bridge(&self.bridge).map_err(|why| SpecError::Bridge {
            spec: spec.to_string(),
            bridge: self.bridge.clone(),
            why,
        })?;
        if !is_driver(&self.driver) {
            return Err(SpecError::Driver {
                spec: spec.to_string(),
                driver: self.driver.clone(),
            });
        }
        Ok(())
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One NIC of a VM: its netspec with the VLAN resolved, and what a launch
/// assigned it (tap and MAC), which the VM's record keeps for its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Nic {
    pub bridge: String,
    /// The VLAN as typed (an alias or a number).
    pub alias: String,
    pub vlan: u16,
    /// As typed; empty: generated at launch.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mac: String,
    pub driver: String,
    #[serde(skip_serializing_if = "is_false")]
    pub qinq: bool,
    /// Assigned at launch.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tap: String,
    /// The MAC the NIC has (typed or generated), kept across relaunches.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hwaddr: String,
    /// Off its bridge (`vm net disconnect`).
    #[serde(skip_serializing_if = "is_false")]
    pub disconnected: bool,
    #[serde(skip_serializing_if = "Qos::is_empty")]
    pub qos: Qos,
}

impl Nic {
    /// A container's NIC is a veth pair: the tap's name is the end on the
    /// switch, this the end that moves into the container.
    pub fn veth_peer(&self) -> String {
        format!("{}p", self.tap)
    }
}

impl Default for Nic {
    fn default() -> Self {
        Nic {
            bridge: DEFAULT_BRIDGE.into(),
            alias: String::new(),
            vlan: 0,
            mac: String::new(),
            driver: DEFAULT_DRIVER.into(),
            qinq: false,
            tap: String::new(),
            hwaddr: String::new(),
            disconnected: false,
            qos: Default::default(),
        }
    }
}

impl Nic {
    /// A NIC from a parsed spec; `vlan` is what its VLAN resolved to.
    pub fn new(spec: &NetSpec, vlan: u16) -> Nic {
        Nic {
            bridge: spec.bridge.clone(),
            alias: spec.vlan_text.clone(),
            vlan,
            mac: spec.mac.map(|m| m.to_string()).unwrap_or_default(),
            driver: spec.driver.clone(),
            qinq: spec.qinq,
            ..Nic::default()
        }
    }

    /// The netspec back, defaults left out (minimega's form).
    pub fn spec(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        if self.bridge != DEFAULT_BRIDGE {
            parts.push(&self.bridge);
        }
        parts.push(&self.alias);
        if !self.mac.is_empty() {
            parts.push(&self.mac);
        }
        if self.driver != DEFAULT_DRIVER {
            parts.push(&self.driver);
        }
        if self.qinq {
            parts.push("qinq");
        }
        parts.join(",")
    }

    /// The same NIC for another VM: what a launch assigned is dropped.
    pub fn unassigned(&self) -> Nic {
        Nic {
            tap: String::new(),
            hwaddr: String::new(),
            disconnected: false,
            qos: Default::default(),
            ..self.clone()
        }
    }
}

/// `vm config net SPEC...`: the NICs, VLANs not yet resolved (numbers
/// are; aliases are left at 0 for the daemon's table).
pub fn parse_nics(specs: &[String]) -> Result<Vec<Nic>, SpecError> {
    specs
        .iter()
        .map(|s| {
            let p = NetSpec::parse(s)?;
            let v = match p.vlan {
                VlanRef::Id(n) => n,
                VlanRef::Alias(_) => 0,
            };
            Ok(Nic::new(&p, v))
        })
        .collect()
}

/// `vm config net` as printed: `[spec spec]`.
pub fn describe(nics: &[Nic]) -> String {
    let specs: Vec<String> = nics.iter().map(Nic::spec).collect();
    format!("[{}]", specs.join(" "))
}

/// A NIC's shaping (`qos`), kept with the NIC; the rules and their tc
/// commands are the networks room's (`net::tc`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Qos {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub loss: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub delay: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rate: String,
}

impl Qos {
    pub fn is_empty(&self) -> bool {
        *self == Qos::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> NetSpec {
        NetSpec::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        NetSpec::parse(s).unwrap_err().to_string()
    }

    #[test]
    fn every_form_of_the_original() {
        let n = p("100");
        assert_eq!(
            (n.bridge.as_str(), &n.vlan, n.mac, n.driver.as_str(), n.qinq),
            ("mega_bridge", &VlanRef::Id(100), None, "e1000", false)
        );
        let mac = Some(Mac([0, 0x11, 0x22, 0x33, 0x44, 0x55]));
        assert_eq!(p("br0,DMZ").bridge, "br0");
        assert_eq!(p("br0,DMZ").vlan, VlanRef::Alias("DMZ".into()));
        assert_eq!(p("100,00:11:22:33:44:55").mac, mac);
        assert_eq!(p("100,virtio-net-pci").driver, "virtio-net-pci");
        assert!(p("100,qinq").qinq && p("100,QinQ").qinq);
        let n = p("br0,100,00:11:22:33:44:55");
        assert_eq!((n.bridge.as_str(), n.mac), ("br0", mac));
        let n = p("100,00:11:22:33:44:55,rtl8139");
        assert_eq!((n.mac, n.driver.as_str()), (mac, "rtl8139"));
        assert_eq!(p("br0,100,e1000e").driver, "e1000e");
        assert!(p("br0,100,qinq").qinq);
        assert!(p("100,00:11:22:33:44:55,qinq").qinq);
        assert!(p("100,e1000,qinq").qinq);
        let n = p("br0,100,00:11:22:33:44:55,virtio-net-pci");
        assert_eq!(
            (n.bridge.as_str(), n.driver.as_str()),
            ("br0", "virtio-net-pci")
        );
        assert!(p("br0,100,00:11:22:33:44:55,qinq").qinq);
        assert!(p("br0,100,e1000,qinq").qinq);
        assert!(p("100,00:11:22:33:44:55,e1000,qinq").qinq);
        let n = p("br0,exp//DMZ,AA:BB:CC:DD:EE:00,e1000,qinq");
        assert_eq!(n.vlan, VlanRef::Alias("exp//DMZ".into()));
        assert_eq!(n.mac.unwrap().to_string(), "aa:bb:cc:dd:ee:00");
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(
            err("100,00:11:22:33:44"),
            "invalid netspec `100,00:11:22:33:44`: bad MAC address `00:11:22:33:44`: expected six hex pairs like 00:11:22:33:44:55"
        );
        assert!(err("100,zz:11:22:33:44:55")
            .contains("bad MAC address `zz:11:22:33:44:55`: not hexadecimal"));
        assert!(err("100,01:00:5e:00:00:01").contains("multicast"));
        assert!(err("br,100,zz:zz,e1000").contains("bad MAC address `zz:zz`"));
        let e = err("100,e1001");
        assert!(
            e.starts_with(
                "invalid netspec `100,e1001`: unknown NIC driver `e1001` (drivers: e1000,"
            ),
            "{e}"
        );
        assert!(err("br0,100,00:11:22:33:44:55,e1001").contains("unknown NIC driver `e1001`"));
        assert!(err("100,00:11:22:33:44:55,e1001").contains("unknown NIC driver `e1001`"));
        assert_eq!(
            err("0"),
            "invalid netspec `0`: bad VLAN `0`: must be 1 to 4095"
        );
        assert!(err("4096").contains("bad VLAN `4096`: must be 1 to 4095"));
        assert!(err("99999999999999999999").contains("must be 1 to 4095"));
        assert!(err("br0,a b").contains("bad VLAN `a b`"));
        assert!(err("//DMZ").contains("bad VLAN `//DMZ`"));
        assert!(err("a-very-long-bridge-name,100")
            .contains("bad bridge name `a-very-long-bridge-name`: must be 1 to 15"));
        assert!(err("b/r,100").contains("bad bridge name"));
        assert_eq!(
            err("a,b,c"),
            "invalid netspec `a,b,c`: too many fields (expected [bridge,]vlan[,mac][,driver][,qinq])"
        );
        assert!(err("a,b,c,d,e,f").contains("too many fields"));
        assert!(err("100,,e1000").contains("empty field"));
        assert!(err("").contains("empty field"));
    }

    #[test]
    fn nics_print_back_as_typed_without_defaults() {
        let n = Nic::new(&p("mega_bridge,DMZ,e1000"), 101);
        assert_eq!(n.spec(), "DMZ");
        let n = Nic::new(&p("br0,100,00:11:22:33:44:55,virtio-net-pci,qinq"), 100);
        assert_eq!(n.spec(), "br0,100,00:11:22:33:44:55,virtio-net-pci,qinq");
        assert_eq!(
            describe(&[Nic::new(&p("1"), 1), n]),
            "[1 br0,100,00:11:22:33:44:55,virtio-net-pci,qinq]"
        );
        assert_eq!(describe(&[]), "[]");
    }

    #[test]
    fn clones_drop_what_a_launch_assigned() {
        let mut n = Nic::new(&p("100"), 100);
        n.tap = "mega_tap3".into();
        n.hwaddr = "52:54:00:00:00:01".into();
        let c = n.unassigned();
        assert!(c.tap.is_empty() && c.hwaddr.is_empty());
        assert_eq!(c.vlan, 100);
        let back: Nic = serde_json::from_str(&serde_json::to_string(&n).unwrap()).unwrap();
        assert_eq!(back, n);
        let old: Nic = serde_json::from_str(r#"{"alias":"7","vlan":7}"#).unwrap();
        assert_eq!(
            (old.bridge.as_str(), old.driver.as_str()),
            ("mega_bridge", "e1000")
        );
    }
}
