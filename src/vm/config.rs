//! `vm config`: the settings a launch copies into each new VM, with
//! minimega's field names and defaults. Parsing and printing are pure; a
//! relative file name resolves against the files directory (`-filepath`).
//!
//! A field is one [`Field`] variant with its entry in [`FIELDS`], its arms
//! in [`VmConfig::set`], [`VmConfig::get`] and [`VmConfig::clear`], and
//! its place in the `vm config` listing ([`Field::listing`]); everything
//! else (the commands, the listing, errors naming the fields) follows.

pub use super::config_listing::Section;
pub use super::container_fields::{ContainerFields, CtField, Kind};
pub use super::hardware::{Hardware, HwField};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown vm config field `{0}` (fields: {list})", list = field_list())]
    UnknownField(String),
    #[error("ambiguous vm config field `{0}`: could be {1}")]
    Ambiguous(String, String),
    #[error("invalid {field} `{value}`: {why}")]
    Invalid {
        field: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("vm config {0} takes one value")]
    OneValue(&'static str),
    #[error(transparent)]
    Net(#[from] crate::vm::nic::SpecError),
    #[error("cannot specify {0} and {1} in the same config")]
    Conflict(&'static str, &'static str),
    #[error(transparent)]
    Disk(#[from] crate::vm::drive::SpecError),
    #[error(transparent)]
    Outside(#[from] crate::paths::ConfineError),
    #[error(transparent)]
    Bond(#[from] crate::vm::bond::BondError),
}

/// The field names, for errors.
pub fn field_list() -> String {
    FIELDS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The QEMU binary when `vm config qemu` was not set.
pub const DEFAULT_QEMU: &str = "qemu-system-x86_64";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct VmConfig {
    /// MiB.
    pub memory: u64,
    pub vcpus: u64,
    pub disks: Vec<crate::vm::drive::DiskSpec>,
    /// Boot from a throw-away overlay of each disk, so many VMs share one
    /// base image and never write to it.
    pub snapshot: bool,
    pub cdrom: String,
    pub kernel: String,
    pub initrd: String,
    pub append: Vec<String>,
    /// Empty: each VM gets a random one.
    pub uuid: String,
    pub machine: String,
    /// Empty: `host` under KVM, QEMU's default model under TCG.
    pub cpu: String,
    pub qemu: String,
    pub qemu_append: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub serial_ports: u64,
    pub vga: String,
    /// Kept for the mesh scheduler: the host a launch should land on.
    pub schedule: String,
    /// Kept for the mesh scheduler: how many other VMs may share a host (-1: any).
    pub coschedule: i64,
    /// Kept for the mesh scheduler: a VM of the same launch (or queue) to share a host with.
    pub colocate: String,
    /// A count of virtio-serial ports, or their names, comma-separated.
    pub virtio_ports: String,
    /// (match, replacement) pairs applied in order to QEMU's command line.
    pub qemu_override: Vec<(String, String)>,
    /// NICs (the networks room makes their taps); a VM's record also keeps their taps and MACs.
    pub networks: Vec<crate::vm::nic::Nic>,
    /// NICs bonded on the switch (minimega's `vm config bonds`).
    pub bonds: Vec<crate::vm::bond::Bond>,
    /// The virtio-serial port the cc agent talks over.
    pub backchannel: bool,
    /// A saved running state to start from (`vm migrate`, `vm save`).
    pub state: String,
    /// The password of the VM's screen (QEMU's own VNC authentication);
    /// empty: none, as minimega.
    pub vnc_password: String,
    /// CPU topology, USB, TPM, clipboard (see [`Hardware`]).
    #[serde(flatten)]
    pub hw: Hardware,
    /// Set by `vm launch kvm|container`, not by a field: the VM's kind.
    pub kind: Kind,
    /// The container-only fields (see [`ContainerFields`]).
    #[serde(flatten)]
    pub ct: ContainerFields,
}

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            memory: 2048,
            vcpus: 1,
            disks: Vec::new(),
            snapshot: true,
            cdrom: String::new(),
            kernel: String::new(),
            initrd: String::new(),
            append: Vec::new(),
            uuid: String::new(),
            machine: String::new(),
            cpu: String::new(),
            qemu: DEFAULT_QEMU.into(),
            qemu_append: Vec::new(),
            tags: BTreeMap::new(),
            serial_ports: 0,
            vga: "std".into(),
            schedule: String::new(),
            coschedule: -1,
            colocate: String::new(),
            virtio_ports: String::new(),
            qemu_override: Vec::new(),
            networks: Vec::new(),
            bonds: Vec::new(),
            backchannel: true,
            state: String::new(),
            vnc_password: String::new(),
            hw: Hardware::default(),
            kind: Kind::Kvm,
            ct: ContainerFields::default(),
        }
    }
}

/// A settable field of [`VmConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Memory,
    Vcpus,
    Disks,
    Snapshot,
    Cdrom,
    Kernel,
    Initrd,
    Append,
    Uuid,
    Machine,
    Cpu,
    Qemu,
    QemuAppend,
    Tags,
    SerialPorts,
    Vga,
    Schedule,
    Coschedule,
    Colocate,
    VirtioPorts,
    QemuOverride,
    Networks,
    Bonds,
    Backchannel,
    State,
    VncPassword,
    Hw(HwField),
    Ct(CtField),
}

/// Every field by its command name, in the order `vm config` prints them.
/// `disk` and `tags` are accepted spellings of `disks` and `tag`.
pub const FIELDS: &[(&str, Field)] = &[
    ("memory", Field::Memory),
    ("vcpus", Field::Vcpus),
    ("disks", Field::Disks),
    ("snapshot", Field::Snapshot),
    ("cdrom", Field::Cdrom),
    ("kernel", Field::Kernel),
    ("initrd", Field::Initrd),
    ("append", Field::Append),
    ("uuid", Field::Uuid),
    ("machine", Field::Machine),
    ("cpu", Field::Cpu),
    ("qemu", Field::Qemu),
    ("qemu-append", Field::QemuAppend),
    ("tags", Field::Tags),
    ("serial-ports", Field::SerialPorts),
    ("vga", Field::Vga),
    ("schedule", Field::Schedule),
    ("coschedule", Field::Coschedule),
    ("colocate", Field::Colocate),
    ("virtio-ports", Field::VirtioPorts),
    ("qemu-override", Field::QemuOverride),
    ("networks", Field::Networks),
    ("bonds", Field::Bonds),
    ("backchannel", Field::Backchannel),
    ("state", Field::State),
    ("sockets", Field::Hw(HwField::Sockets)),
    ("cores", Field::Hw(HwField::Cores)),
    ("threads", Field::Hw(HwField::Threads)),
    ("usb-use-xhci", Field::Hw(HwField::UsbUseXhci)),
    ("tpm-socket", Field::Hw(HwField::TpmSocket)),
    (
        "bidirectional-copy-paste",
        Field::Hw(HwField::BidirectionalCopyPaste),
    ),
    ("filesystem", Field::Ct(CtField::Filesystem)),
    ("hostname", Field::Ct(CtField::Hostname)),
    ("init", Field::Ct(CtField::Init)),
    ("preinit", Field::Ct(CtField::Preinit)),
    ("fifos", Field::Ct(CtField::Fifos)),
    ("volume", Field::Ct(CtField::Volume)),
];

pub const ALIASES: &[(&str, Field)] = &[
    ("disk", Field::Disks),
    ("tag", Field::Tags),
    ("migrate", Field::State),
    // Ours, not minimega's: named in full only, so minimega's field list,
    // its errors and its prefixes stay as they were.
    ("vnc-password", Field::VncPassword),
];

/// The most VNC authentication uses: DES keys of 8 bytes.
pub const VNC_PASSWORD_MAX: usize = 8;

/// A word among `names` by its exact spelling (aliases included), else by
/// a unique prefix of the names (aliases left out, so `dis` is `disks`).
pub fn pick<T: Copy>(
    word: &str,
    names: &[(&'static str, T)],
    aliases: &[(&'static str, T)],
) -> Result<T, ConfigError> {
    if let Some((_, t)) = names.iter().chain(aliases).find(|(n, _)| *n == word) {
        return Ok(*t);
    }
    let hits: Vec<&(&str, T)> = names
        .iter()
        .filter(|(n, _)| !word.is_empty() && n.starts_with(word))
        .collect();
    match hits.as_slice() {
        [(_, t)] => Ok(*t),
        [] => Err(ConfigError::UnknownField(word.to_string())),
        many => Err(ConfigError::Ambiguous(
            word.to_string(),
            many.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
        )),
    }
}

impl Field {
    /// Resolves a field name: exact names and aliases first, then a
    /// unique prefix (`mem`).
    pub fn parse(name: &str) -> Result<Field, ConfigError> {
        pick(name, FIELDS, ALIASES)
    }

    pub fn name(self) -> &'static str {
        FIELDS
            .iter()
            .chain(ALIASES.iter().filter(|(_, f)| *f == Field::VncPassword))
            .find(|(_, f)| *f == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// Where `vm config` lists the field: its section, its rank there and
    /// its label, minimega's (the ranks leave room between its fields);
    /// `None` for a field with a listing of its own.
    pub fn listing(self) -> Option<(Section, u16, &'static str)> {
        use Section::*;
        Some(match self {
            Field::Memory => (Vm, 10, "Memory"),
            Field::Vcpus => (Vm, 20, "VCPUs"),
            Field::Networks => (Vm, 30, "Networks"),
            Field::Bonds => (Vm, 40, "Bonds"),
            Field::Snapshot => (Vm, 50, "Snapshot"),
            Field::Uuid => (Vm, 60, "UUID"),
            Field::Schedule => (Vm, 70, "Schedule host"),
            Field::Coschedule => (Vm, 80, "Coschedule limit"),
            Field::Colocate => (Vm, 90, "Colocate"),
            Field::Backchannel => (Vm, 100, "Backchannel"),
            Field::Tags => (Vm, 110, "Tags"),
            Field::State => (Kvm, 10, "State Path"),
            Field::Disks => (Kvm, 20, "Disks"),
            Field::Cdrom => (Kvm, 30, "CDROM Path"),
            Field::Kernel => (Kvm, 40, "Kernel Path"),
            Field::Initrd => (Kvm, 50, "Initrd Path"),
            Field::Append => (Kvm, 60, "Kernel Append"),
            Field::Qemu => (Kvm, 70, "QEMU Path"),
            Field::QemuAppend => (Kvm, 80, "QEMU Append"),
            Field::SerialPorts => (Kvm, 90, "Serial Ports"),
            Field::VirtioPorts => (Kvm, 100, "Virtio-Serial Ports"),
            Field::Machine => (Kvm, 110, "Machine"),
            Field::Cpu => (Kvm, 120, "CPU"),
            Field::Vga => (Kvm, 160, "VGA"),
            Field::Hw(h) => h.listing(),
            Field::Ct(c) => c.listing(),
            Field::QemuOverride | Field::VncPassword => return None,
        })
    }
}

/// Parses a count of `field` in `min..=max`; the bound keeps QEMU's argv
/// and the cgroup limits derived from it (bytes, weights) sane.
pub(super) fn count(
    field: &'static str,
    v: &str,
    min: u64,
    max: u64,
    over: &'static str,
) -> Result<u64, ConfigError> {
    let bad = |why| ConfigError::Invalid {
        field,
        value: v.to_string(),
        why,
    };
    let n: u64 = v.parse().map_err(|_| bad("not a number"))?;
    if n < min {
        return Err(bad("must be greater than 0"));
    }
    if n > max {
        return Err(bad(over));
    }
    Ok(n)
}

pub(super) fn boolean(field: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConfigError::Invalid {
            field,
            value: v.into(),
            why: "expected true or false",
        }),
    }
}

fn single(field: Field, values: &[String]) -> Result<&str, ConfigError> {
    match values {
        [v] => Ok(v),
        _ => Err(ConfigError::OneValue(field.name())),
    }
}

/// One value of `field`, refused while the field it excludes is set
/// (minimega places a VM by host or next to another VM, not both).
fn exclusive<'v>(
    field: Field,
    values: &'v [String],
    other: &str,
    other_name: &'static str,
) -> Result<&'v str, ConfigError> {
    let v = single(field, values)?;
    if !other.is_empty() && !v.is_empty() {
        return Err(ConfigError::Conflict(field.name(), other_name));
    }
    Ok(v)
}

/// A file name as stored: absolute, relative names under `filepath` and
/// never outside it (see [`crate::confine`]); empty stays empty (unset).
pub fn resolve_file(filepath: &Path, name: &str) -> Result<String, ConfigError> {
    if name.is_empty() {
        return Ok(String::new());
    }
    let p = crate::paths::confine(filepath, name)?;
    Ok(p.to_string_lossy().into_owned())
}

/// True for the canonical 8-4-4-4-12 hex form.
pub fn valid_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl VmConfig {
    /// Sets a field from the words after its name. `tag` takes a key and a
    /// value; list fields take any number of words.
    pub fn set(
        &mut self,
        field: Field,
        values: &[String],
        filepath: &Path,
    ) -> Result<(), ConfigError> {
        match field {
            Field::Memory => {
                let v = single(field, values)?;
                self.memory = count("memory", v, 1, 16 << 20, "at most 16777216 (16 TiB)")?;
            }
            Field::Vcpus => {
                let v = single(field, values)?;
                self.vcpus = count("vcpus", v, 1, 1024, "at most 1024")?;
            }
            Field::Disks => self.disks = crate::vm::drive::parse_list(values, filepath)?,
            Field::Snapshot => self.snapshot = boolean("snapshot", single(field, values)?)?,
            Field::Backchannel => {
                self.backchannel = boolean("backchannel", single(field, values)?)?
            }
            Field::Cdrom => self.cdrom = resolve_file(filepath, single(field, values)?)?,
            Field::Kernel => self.kernel = resolve_file(filepath, single(field, values)?)?,
            Field::Initrd => self.initrd = resolve_file(filepath, single(field, values)?)?,
            Field::Append => self.append = values.to_vec(),
            Field::Uuid => {
                let v = single(field, values)?;
                if !valid_uuid(v) {
                    return Err(ConfigError::Invalid {
                        field: "uuid",
                        value: v.into(),
                        why: "expected the form 01234567-89ab-cdef-0123-456789abcdef",
                    });
                }
                self.uuid = v.to_ascii_lowercase();
            }
            Field::Machine => self.machine = single(field, values)?.into(),
            Field::Cpu => self.cpu = single(field, values)?.into(),
            Field::Qemu => self.qemu = single(field, values)?.into(),
            Field::QemuAppend => self.qemu_append = values.to_vec(),
            Field::Tags => match values {
                [k, v] => {
                    self.tags.insert(k.clone(), v.clone());
                }
                _ => {
                    return Err(ConfigError::Invalid {
                        field: "tag",
                        value: values.join(" "),
                        why: "expected a key and a value",
                    })
                }
            },
            Field::SerialPorts => {
                let v = single(field, values)?;
                let over = "at most 4 (a PC's ISA serial ports)";
                self.serial_ports = count("serial-ports", v, 0, 4, over)?;
            }
            Field::Vga => self.vga = single(field, values)?.into(),
            Field::Schedule => {
                let v = exclusive(field, values, &self.colocate, "colocate")?;
                self.schedule = v.into();
            }
            // VLANs are resolved by the daemon afterwards (net::commands::configure).
            Field::Networks => self.networks = crate::vm::nic::parse_nics(values)?,
            Field::Bonds => self.bonds = crate::vm::bond::parse_all(values)?,
            Field::Coschedule => {
                let v = single(field, values)?;
                self.coschedule = v.parse().map_err(|_| ConfigError::Invalid {
                    field: "coschedule",
                    value: v.into(),
                    why: "not a number",
                })?;
            }
            Field::Colocate => {
                let v = exclusive(field, values, &self.schedule, "schedule")?;
                self.colocate = v.into();
            }
            Field::VirtioPorts => {
                let v = single(field, values)?;
                self.virtio_ports = super::virtio::parse_ports(v)
                    .map_err(|why| ConfigError::Invalid {
                        field: "virtio-ports",
                        value: v.into(),
                        why,
                    })?
                    .to_string();
            }
            Field::QemuOverride => match values {
                [m, r] if !m.is_empty() => self.qemu_override.push((m.clone(), r.clone())),
                _ => {
                    return Err(ConfigError::Invalid {
                        field: "qemu-override",
                        value: values.join(" "),
                        why: "expected the text to match and its replacement",
                    })
                }
            },
            Field::State => self.state = resolve_file(filepath, single(field, values)?)?,
            Field::VncPassword => {
                let v = single(field, values)?;
                if v.len() > VNC_PASSWORD_MAX || !v.is_ascii() {
                    return Err(ConfigError::Invalid {
                        field: "vnc-password",
                        value: "(not shown)".into(),
                        why: "at most 8 ASCII characters (all VNC authentication uses)",
                    });
                }
                self.vnc_password = v.into();
            }
            Field::Hw(h) => self.hw.set(h, single(field, values)?, filepath)?,
            Field::Ct(c) => self.ct.set(c, values, filepath)?,
        }
        Ok(())
    }

    /// Resets one field to its default.
    pub fn clear(&mut self, field: Field) {
        let d = VmConfig::default();
        match field {
            Field::Memory => self.memory = d.memory,
            Field::Vcpus => self.vcpus = d.vcpus,
            Field::Disks => self.disks = d.disks,
            Field::Snapshot => self.snapshot = d.snapshot,
            Field::Cdrom => self.cdrom = d.cdrom,
            Field::Kernel => self.kernel = d.kernel,
            Field::Initrd => self.initrd = d.initrd,
            Field::Append => self.append = d.append,
            Field::Uuid => self.uuid = d.uuid,
            Field::Machine => self.machine = d.machine,
            Field::Cpu => self.cpu = d.cpu,
            Field::Qemu => self.qemu = d.qemu,
            Field::QemuAppend => self.qemu_append = d.qemu_append,
            Field::Tags => self.tags = d.tags,
            Field::SerialPorts => self.serial_ports = d.serial_ports,
            Field::Vga => self.vga = d.vga,
            Field::Schedule => self.schedule = d.schedule,
            Field::Coschedule => self.coschedule = d.coschedule,
            Field::Colocate => self.colocate = d.colocate,
            Field::VirtioPorts => self.virtio_ports = d.virtio_ports,
            Field::QemuOverride => self.qemu_override = d.qemu_override,
            Field::Networks => self.networks = d.networks,
            Field::Bonds => self.bonds = d.bonds,
            Field::Backchannel => self.backchannel = d.backchannel,
            Field::State => self.state = d.state,
            Field::VncPassword => self.vnc_password = d.vnc_password,
            Field::Hw(h) => self.hw.clear(h),
            Field::Ct(c) => self.ct.clear(c),
        }
    }

    /// The field as the `vm config` listing shows it: lists as `[a b]`.
    pub fn get(&self, field: Field) -> String {
        match field {
            Field::Memory => self.memory.to_string(),
            Field::Vcpus => self.vcpus.to_string(),
            Field::Disks => crate::vm::drive::format_list(&self.disks),
            Field::Snapshot => self.snapshot.to_string(),
            Field::Cdrom => self.cdrom.clone(),
            Field::Kernel => self.kernel.clone(),
            Field::Initrd => self.initrd.clone(),
            Field::Append => list(&self.append),
            Field::Uuid => self.uuid.clone(),
            Field::Machine => self.machine.clone(),
            Field::Cpu => self.cpu.clone(),
            Field::Qemu => self.qemu.clone(),
            Field::QemuAppend => list(&self.qemu_append),
            Field::Tags => tags_json(&self.tags),
            Field::SerialPorts => self.serial_ports.to_string(),
            Field::Vga => self.vga.clone(),
            Field::Schedule => self.schedule.clone(),
            Field::Coschedule => self.coschedule.to_string(),
            Field::Colocate => self.colocate.clone(),
            Field::VirtioPorts => self.virtio_ports.clone(),
            Field::QemuOverride => {
                let mut out = String::from("id\tmatch\treplacement");
                for (i, (m, r)) in self.qemu_override.iter().enumerate() {
                    out.push_str(&format!("\n{i}\t\"{m}\"\t\"{r}\""));
                }
                out
            }
            Field::Networks => crate::vm::nic::describe(&self.networks),
            Field::Bonds => crate::vm::bond::describe(&self.bonds),
            Field::Backchannel => self.backchannel.to_string(),
            Field::State => self.state.clone(),
            Field::VncPassword => self.vnc_password.clone(),
            Field::Hw(h) => self.hw.get(h),
            Field::Ct(c) => self.ct.get(c),
        }
    }
}

/// A list as minimega prints one: `[a b]`.
pub fn list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Tags as the JSON object of the `tags` column, escaped as Go's encoder
/// escapes (`<`, `>`, `&`, U+2028, U+2029), so the cell is minimega's byte
/// for byte.
pub fn tags_json(tags: &BTreeMap<String, String>) -> String {
    go_json(&serde_json::to_string(tags).unwrap_or_else(|_| "{}".into()))
}

/// JSON text with the characters Go's `json.Marshal` escapes escaped; the
/// others are the same in both encoders.
pub fn go_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
