//! The `vm config` fields only containers use (minimega's
//! `ContainerConfig`): the root file system, hostname, init and preinit,
//! fifos and volumes; their parsing, listing and clearing. Pure.

use super::config::{count, resolve_file, ConfigError, Section};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// What a VM is: QEMU's guest, or a container (`vm launch container`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Kvm,
    Container,
}

impl Kind {
    pub fn parse(word: &str) -> Option<Kind> {
        match word {
            "kvm" => Some(Kind::Kvm),
            "container" => Some(Kind::Container),
            _ => None,
        }
    }

    /// minimega's `type` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Kvm => "kvm",
            Kind::Container => "container",
        }
    }
}

/// The most fifos a container gets: each is a file and a bind mount.
pub const FIFOS_MAX: u64 = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct ContainerFields {
    /// The root file system, a directory (required to launch).
    pub filesystem: String,
    /// Empty: the VM's name.
    pub hostname: String,
    /// PID 1 and its arguments, a path inside the file system first.
    pub init: Vec<String>,
    pub preinit: String,
    pub fifos: u64,
    /// Path inside -> host path.
    pub volumes: BTreeMap<String, String>,
}

impl Default for ContainerFields {
    fn default() -> Self {
        ContainerFields {
            filesystem: String::new(),
            hostname: String::new(),
            init: vec!["/init".into()],
            preinit: String::new(),
            fifos: 0,
            volumes: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtField {
    Filesystem,
    Hostname,
    Init,
    Preinit,
    Fifos,
    Volume,
}

/// The fields by their command names.
pub const CT_FIELDS: &[(&str, CtField)] = &[
    ("filesystem", CtField::Filesystem),
    ("hostname", CtField::Hostname),
    ("init", CtField::Init),
    ("preinit", CtField::Preinit),
    ("fifos", CtField::Fifos),
    ("volume", CtField::Volume),
];

impl CtField {
    /// minimega's container section, in its order.
    pub fn listing(self) -> (Section, u16, &'static str) {
        match self {
            CtField::Filesystem => (Section::Container, 10, "Filesystem Path"),
            CtField::Hostname => (Section::Container, 20, "Hostname"),
            CtField::Init => (Section::Container, 30, "Init"),
            CtField::Preinit => (Section::Container, 40, "Pre-init"),
            CtField::Fifos => (Section::Container, 50, "FIFOs"),
            CtField::Volume => (Section::Container, 60, "Volumes"),
        }
    }
}

fn bad(field: &'static str, value: &str, why: &'static str) -> ConfigError {
    ConfigError::Invalid {
        field,
        value: value.into(),
        why,
    }
}

/// A path inside the container: absolute, and never climbing out.
fn inside_path(field: &'static str, p: &str) -> Result<String, ConfigError> {
    if !p.starts_with('/') {
        return Err(bad(
            field,
            p,
            "a path inside the container must be absolute",
        ));
    }
    if p.split('/').any(|c| c == "..") {
        return Err(bad(
            field,
            p,
            "a path inside the container may not contain `..`",
        ));
    }
    Ok(p.into())
}

impl ContainerFields {
    /// `values` are the words after the field's name (one or more).
    pub fn set(
        &mut self,
        f: CtField,
        values: &[String],
        filepath: &Path,
    ) -> Result<(), ConfigError> {
        let one = |name| match values {
            [v] => Ok(v.as_str()),
            _ => Err(ConfigError::OneValue(name)),
        };
        match f {
            CtField::Filesystem => {
                self.filesystem = resolve_file(filepath, one("filesystem")?)?;
            }
            CtField::Hostname => self.hostname = one("hostname")?.into(),
            CtField::Init => {
                inside_path("init", &values[0])?;
                self.init = values.to_vec();
            }
            CtField::Preinit => self.preinit = resolve_file(filepath, one("preinit")?)?,
            CtField::Fifos => {
                let v = one("fifos")?;
                self.fifos = count("fifos", v, 0, FIFOS_MAX, "at most 64")?;
            }
            CtField::Volume => match values {
                [dst, src] => {
                    let dst = inside_path("volume", dst)?;
                    let src = resolve_file(filepath, src)?;
                    self.volumes.insert(dst, src);
                }
                _ => {
                    return Err(bad(
                        "volume",
                        &values.join(" "),
                        "expected the path inside the container and the host's path",
                    ))
                }
            },
        }
        Ok(())
    }

    pub fn get(&self, f: CtField) -> String {
        match f {
            CtField::Filesystem => self.filesystem.clone(),
            CtField::Hostname => self.hostname.clone(),
            CtField::Init => super::config::list(&self.init),
            CtField::Preinit => self.preinit.clone(),
            CtField::Fifos => self.fifos.to_string(),
            // One line per volume after the label's own (empty) line.
            CtField::Volume => self
                .volumes
                .iter()
                .map(|(d, s)| format!("\n{d} -> {s}"))
                .collect(),
        }
    }

    pub fn clear(&mut self, f: CtField) {
        let d = ContainerFields::default();
        match f {
            CtField::Filesystem => self.filesystem = d.filesystem,
            CtField::Hostname => self.hostname = d.hostname,
            CtField::Init => self.init = d.init,
            CtField::Preinit => self.preinit = d.preinit,
            CtField::Fifos => self.fifos = d.fifos,
            CtField::Volume => self.volumes = d.volumes,
        }
    }

    /// `vm info`'s `volume` cell: the map as JSON, as minimega marshals it.
    pub fn volumes_cell(&self) -> String {
        super::config::go_json(
            &serde_json::to_string(&self.volumes).unwrap_or_else(|_| "{}".into()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fields_parse_and_print_as_minimega() {
        let fp = Path::new("/srv/files");
        let mut c = ContainerFields::default();
        assert_eq!(c.get(CtField::Init), "[/init]");
        c.set(CtField::Filesystem, &words(&["fs/busybox"]), fp)
            .unwrap();
        assert_eq!(c.filesystem, "/srv/files/fs/busybox");
        c.set(CtField::Init, &words(&["/bin/sh", "-c", "x"]), fp)
            .unwrap();
        assert_eq!(c.get(CtField::Init), "[/bin/sh -c x]");
        c.set(CtField::Volume, &words(&["/data", "/scratch/d"]), fp)
            .unwrap();
        c.set(CtField::Volume, &words(&["/data", "/scratch/e"]), fp)
            .unwrap();
        assert_eq!(c.get(CtField::Volume), "\n/data -> /scratch/e");
        assert_eq!(c.volumes_cell(), r#"{"/data":"/scratch/e"}"#);
        c.set(CtField::Fifos, &words(&["3"]), fp).unwrap();
        assert_eq!(c.get(CtField::Fifos), "3");
        c.clear(CtField::Init);
        assert_eq!(c.init, vec!["/init".to_string()]);
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        let fp = Path::new("/srv/files");
        let mut c = ContainerFields::default();
        let e = c.set(CtField::Init, &words(&["init"]), fp).unwrap_err();
        assert!(e.to_string().contains("must be absolute"), "{e}");
        let e = c
            .set(CtField::Volume, &words(&["/a/../etc", "/x"]), fp)
            .unwrap_err();
        assert!(e.to_string().contains("`..`"), "{e}");
        let e = c.set(CtField::Volume, &words(&["/a"]), fp).unwrap_err();
        assert!(e.to_string().contains("host's path"), "{e}");
        let e = c.set(CtField::Fifos, &words(&["65"]), fp).unwrap_err();
        assert!(e.to_string().contains("at most 64"), "{e}");
        assert_eq!(c, ContainerFields::default());
    }

    #[test]
    fn kinds_have_minimega_names() {
        assert_eq!(Kind::parse("container"), Some(Kind::Container));
        assert_eq!(Kind::parse("kvm").unwrap().as_str(), "kvm");
        assert_eq!(Kind::parse("android"), None);
    }
}
