//! `vm config disks` specs, minimega's `PATH[,INTERFACE][,CACHE]`, and the
//! QEMU arguments for a VM's disks. Pure.
//!
//! With `vm config snapshot true` (the default) each VM boots a qcow2
//! overlay of its own, `disk-N.qcow2` in its folder, made by the disk hook
//! before QEMU starts (as minimega does, rather than QEMU's own throw-away
//! `snapshot=on` file in /var/tmp): the image is only read, and the overlay
//! lives and goes with the VM's folder.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const SYNTAX: &str = "PATH[,INTERFACE][,CACHE]  \
interface: ide (default), virtio, scsi, ahci (or sata), sd, mtd, floppy, pflash; \
cache: none, writeback, unsafe, directsync, writethrough (default: unsafe with snapshot, writeback without)";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SpecError {
    /// minimega's words.
    #[error("malformed diskspec `{0}` (expected {SYNTAX})")]
    Malformed(String),
    #[error("disk conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Path(#[from] crate::paths::files::PathError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    Ide,
    Virtio,
    Scsi,
    /// A SATA disk on an AHCI controller (minimega's `ahci`).
    Ahci,
    Sd,
    Mtd,
    Floppy,
    Pflash,
}

/// minimega's default, which every guest OS can boot from.
pub const DEFAULT_INTERFACE: Interface = Interface::Ide;

const INTERFACES: &[(&str, Interface)] = &[
    ("ide", Interface::Ide),
    ("virtio", Interface::Virtio),
    ("scsi", Interface::Scsi),
    ("ahci", Interface::Ahci),
    ("sata", Interface::Ahci),
    ("sd", Interface::Sd),
    ("mtd", Interface::Mtd),
    ("floppy", Interface::Floppy),
    ("pflash", Interface::Pflash),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    None,
    Writeback,
    Unsafe,
    Directsync,
    Writethrough,
}

const CACHES: &[(&str, Cache)] = &[
    ("none", Cache::None),
    ("writeback", Cache::Writeback),
    ("unsafe", Cache::Unsafe),
    ("directsync", Cache::Directsync),
    ("writethrough", Cache::Writethrough),
];

/// A word's value in a table of names.
fn by_name<T: Copy>(table: &[(&'static str, T)], s: &str) -> Option<T> {
    table.iter().find(|(n, _)| *n == s).map(|(_, v)| *v)
}

/// A value's (first) name in a table of names.
fn name_of<T: Copy + PartialEq>(table: &[(&'static str, T)], v: T) -> &'static str {
    table
        .iter()
        .find(|(_, x)| *x == v)
        .map(|(n, _)| *n)
        .unwrap_or("")
}

impl Interface {
    pub fn parse(s: &str) -> Option<Interface> {
        by_name(INTERFACES, s)
    }
    pub fn name(self) -> &'static str {
        name_of(INTERFACES, self)
    }
}

impl Cache {
    pub fn parse(s: &str) -> Option<Cache> {
        by_name(CACHES, s)
    }
    pub fn name(self) -> &'static str {
        name_of(CACHES, self)
    }
    /// minimega's defaults: an overlay is throw-away, so nothing need
    /// reach the disk in order; an image written in place is kept safe.
    pub fn default_for(snapshot: bool) -> Cache {
        if snapshot {
            Cache::Unsafe
        } else {
            Cache::Writeback
        }
    }
}

/// One disk of a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    /// Absolute once parsed against the files directory.
    pub path: String,
    pub interface: Option<Interface>,
    pub cache: Option<Cache>,
}

impl DiskSpec {
    /// A bare path, as older records and tests hold them.
    pub fn path(p: impl Into<String>) -> DiskSpec {
        DiskSpec {
            path: p.into(),
            interface: None,
            cache: None,
        }
    }

    /// Parses one spec; a relative path lands under `files`.
    pub fn parse(spec: &str, files: &Path) -> Result<DiskSpec, SpecError> {
        let mut d = DiskSpec::parse_raw(spec)?;
        d.path = crate::paths::files::resolve(files, &d.path)?
            .to_string_lossy()
            .into_owned();
        Ok(d)
    }

    /// The grammar alone: the second word is an interface or a cache, the
    /// third a cache. A comma is structural, so paths cannot hold one.
    fn parse_raw(spec: &str) -> Result<DiskSpec, SpecError> {
        let bad = || SpecError::Malformed(spec.to_string());
        let f: Vec<&str> = spec.split(',').collect();
        let (path, interface, cache) = match f.as_slice() {
            [p] => (*p, None, None),
            [p, x] => match (Interface::parse(x), Cache::parse(x)) {
                (Some(i), _) => (*p, Some(i), None),
                (None, Some(c)) => (*p, None, Some(c)),
                _ => return Err(bad()),
            },
            [p, i, c] => (
                *p,
                Some(Interface::parse(i).ok_or_else(bad)?),
                Some(Cache::parse(c).ok_or_else(bad)?),
            ),
            _ => return Err(bad()),
        };
        if path.is_empty() {
            return Err(bad());
        }
        Ok(DiskSpec {
            path: path.to_string(),
            interface,
            cache,
        })
    }

    pub fn interface_or_default(&self) -> Interface {
        self.interface.unwrap_or(DEFAULT_INTERFACE)
    }
}

impl fmt::Display for DiskSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        if let Some(i) = self.interface {
            write!(f, ",{}", i.name())?;
        }
        if let Some(c) = self.cache {
            write!(f, ",{}", c.name())?;
        }
        Ok(())
    }
}

/// Stored and shipped (state records, the config a head node sends) as the
/// spec's text, so a record from before specs (a bare path) still reads.
impl Serialize for DiskSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for DiskSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DiskSpec, D::Error> {
        let s = String::deserialize(d)?;
        DiskSpec::parse_raw(&s).or_else(|_| Ok(DiskSpec::path(s)))
    }
}

/// `vm config disks A B ...`: every spec, or the first error; the same
/// image twice in one VM is a conflict (minimega's words).
pub fn parse_list(values: &[String], files: &Path) -> Result<Vec<DiskSpec>, SpecError> {
    let mut out: Vec<DiskSpec> = Vec::with_capacity(values.len());
    for v in values {
        let d = DiskSpec::parse(v, files)?;
        if out.iter().any(|o| o.path == d.path) {
            return Err(SpecError::Conflict(d.path));
        }
        out.push(d);
    }
    Ok(out)
}

/// The disks as `vm config disks` and `vm info` print them.
pub fn format_list(disks: &[DiskSpec]) -> String {
    let words: Vec<String> = disks.iter().map(|d| d.to_string()).collect();
    format!("[{}]", words.join(" "))
}

/// Where VM `dir`'s overlay of its disk number `i` lives.
pub fn overlay_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("disk-{i}.qcow2"))
}

/// QEMU's arguments for the disks of a VM whose folder is `dir`: each disk
/// (or, with `snapshot`, its overlay in `dir`) on its interface with its
/// cache mode; SATA disks share one AHCI controller.
pub fn drive_args(disks: &[DiskSpec], snapshot: bool, dir: &Path) -> Vec<String> {
    let mut a = Vec::new();
    let mut ahci = 0usize;
    for (i, d) in disks.iter().enumerate() {
        let file = if snapshot {
            overlay_path(dir, i).to_string_lossy().into_owned()
        } else {
            d.path.clone()
        };
        let cache = d.cache.unwrap_or(Cache::default_for(snapshot)).name();
        let file = escape(&file);
        match d.interface_or_default() {
            Interface::Ahci => {
                if ahci == 0 {
                    a.extend(["-device".into(), "ahci,id=ahci".into()]);
                }
                a.extend([
                    "-drive".into(),
                    format!("file={file},if=none,id=disk{i},media=disk,cache={cache}"),
                    "-device".into(),
                    format!("ide-hd,drive=disk{i},bus=ahci.{ahci}"),
                ]);
                ahci += 1;
            }
            other => a.extend([
                "-drive".into(),
                format!(
                    "file={file},if={},id=disk{i},media=disk,cache={cache}",
                    other.name()
                ),
            ]),
        }
    }
    a
}

/// QEMU option values double a comma to mean a literal one.
fn escape(v: &str) -> String {
    v.replace(',', ",,")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILES: &str = "/tmp/minimega/files";

    fn parse(s: &str) -> Result<DiskSpec, SpecError> {
        DiskSpec::parse(s, Path::new(FILES))
    }

    #[test]
    fn specs_in_every_form() {
        let d = parse("foo.qcow2").unwrap();
        assert_eq!(d, DiskSpec::path("/tmp/minimega/files/foo.qcow2"));
        let d = parse("/img/foo.qcow2,virtio").unwrap();
        assert_eq!(
            (d.path.as_str(), d.interface, d.cache),
            ("/img/foo.qcow2", Some(Interface::Virtio), None)
        );
        let d = parse("foo.qcow2,writeback").unwrap();
        assert_eq!((d.interface, d.cache), (None, Some(Cache::Writeback)));
        let d = parse("foo.qcow2,sata,none").unwrap();
        assert_eq!(
            (d.interface, d.cache),
            (Some(Interface::Ahci), Some(Cache::None))
        );
        assert_eq!(d.to_string(), "/tmp/minimega/files/foo.qcow2,ahci,none");
    }

    #[test]
    fn malformed_specs_are_refused() {
        for bad in [
            "foo.qcow2,bad",
            "foo.qcow2,virtio,bad",
            "foo.qcow2,none,virtio",
            "a,b,c,d",
            ",virtio",
            "",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("malformed diskspec"), "{bad}: {e}");
        }
        assert_eq!(
            parse("../x.qcow2").unwrap_err().to_string(),
            "`../x.qcow2` is outside the files directory (a relative name may not climb out of it with ..; give an absolute path)"
        );
    }

    #[test]
    fn lists_refuse_the_same_image_twice() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let files = Path::new(FILES);
        let l = parse_list(&v(&["a.qcow2,virtio", "/b.qcow2"]), files).unwrap();
        assert_eq!(
            format_list(&l),
            "[/tmp/minimega/files/a.qcow2,virtio /b.qcow2]"
        );
        let e = parse_list(&v(&["foo.qcow2,virtio", "bar.qcow2", "foo.qcow2"]), files);
        assert_eq!(
            e.unwrap_err().to_string(),
            "disk conflict: /tmp/minimega/files/foo.qcow2"
        );
        assert!(parse_list(&v(&["bar.qcow2,virtio", "bar.qcow2,bad"]), files).is_err());
        assert_eq!(format_list(&[]), "[]");
    }

    #[test]
    fn serde_is_the_spec_text_and_reads_bare_paths() {
        let d = parse("/img/a.qcow2,virtio,none").unwrap();
        let j = serde_json::to_string(&vec![d.clone()]).unwrap();
        assert_eq!(j, r#"["/img/a.qcow2,virtio,none"]"#);
        let back: Vec<DiskSpec> = serde_json::from_str(&j).unwrap();
        assert_eq!(back, vec![d]);
        let old: Vec<DiskSpec> = serde_json::from_str(r#"["/img/x,y.qcow2"]"#).unwrap();
        assert_eq!(old, vec![DiskSpec::path("/img/x,y.qcow2")]);
    }

    #[test]
    fn drives_use_overlays_with_snapshot() {
        let disks = vec![
            DiskSpec::path("/img/a,b.qcow2"),
            parse("/img/c.qcow2,virtio,none").unwrap(),
        ];
        let dir = Path::new("/b/7");
        let s = drive_args(&disks, true, dir).join(" ");
        assert_eq!(
            s,
            "-drive file=/b/7/disk-0.qcow2,if=ide,id=disk0,media=disk,cache=unsafe \
             -drive file=/b/7/disk-1.qcow2,if=virtio,id=disk1,media=disk,cache=none"
        );
        let s = drive_args(&disks, false, dir).join(" ");
        assert_eq!(
            s,
            "-drive file=/img/a,,b.qcow2,if=ide,id=disk0,media=disk,cache=writeback \
             -drive file=/img/c.qcow2,if=virtio,id=disk1,media=disk,cache=none"
        );
    }

    #[test]
    fn sata_disks_share_one_controller() {
        let disks: Vec<DiskSpec> = ["/a,ahci", "/b,ide,none", "/c,sata,writeback"]
            .iter()
            .map(|s| parse(s).unwrap())
            .collect();
        let s = drive_args(&disks, false, Path::new("/v")).join(" ");
        assert_eq!(
            s,
            "-device ahci,id=ahci \
             -drive file=/a,if=none,id=disk0,media=disk,cache=writeback -device ide-hd,drive=disk0,bus=ahci.0 \
             -drive file=/b,if=ide,id=disk1,media=disk,cache=none \
             -drive file=/c,if=none,id=disk2,media=disk,cache=writeback -device ide-hd,drive=disk2,bus=ahci.1"
        );
    }
}
