//! What `qemu-img info --output=json [--backing-chain]` says about an
//! image, and `disk info`'s table made from it. Pure.

use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum InfoError {
    #[error("cannot read qemu-img's answer: {0}")]
    Json(String),
    #[error("qemu-img described no image")]
    Empty,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageInfo {
    pub filename: String,
    pub format: String,
    pub virtual_size: u64,
    /// Absent for images qemu-img cannot measure on their host.
    #[serde(default)]
    pub actual_size: Option<u64>,
    /// As written in the image (may be relative to the image's folder).
    #[serde(default)]
    pub backing_filename: Option<String>,
    /// Resolved by qemu-img.
    #[serde(default)]
    pub full_backing_filename: Option<String>,
    #[serde(default)]
    pub backing_filename_format: Option<String>,
}

/// One image.
pub fn parse(json: &str) -> Result<ImageInfo, InfoError> {
    serde_json::from_str(json).map_err(|e| InfoError::Json(e.to_string()))
}

/// The image and every backing file under it, top first.
pub fn parse_chain(json: &str) -> Result<Vec<ImageInfo>, InfoError> {
    let v: Vec<ImageInfo> =
        serde_json::from_str(json).map_err(|e| InfoError::Json(e.to_string()))?;
    if v.is_empty() {
        return Err(InfoError::Empty);
    }
    Ok(v)
}

/// `disk info`'s columns, minimega's.
pub const COLUMNS: [&str; 6] = [
    "image",
    "format",
    "virtualsize",
    "disksize",
    "backingfile",
    "inuse",
];

pub fn row(i: &ImageInfo, in_use: bool) -> Vec<String> {
    vec![
        i.filename.clone(),
        i.format.clone(),
        human_bytes(i.virtual_size),
        i.actual_size.map(human_bytes).unwrap_or_default(),
        i.backing_filename.clone().unwrap_or_default(),
        in_use.to_string(),
    ]
}

/// Bytes as minimega prints them: `512 B`, `1.5 KiB`, `20.0 GiB`.
pub fn human_bytes(b: u64) -> String {
    const UNIT: u64 = 1024;
    if b < UNIT {
        return format!("{b} B");
    }
    let (mut div, mut exp) = (UNIT, 0usize);
    let mut n = b / UNIT;
    while n >= UNIT {
        div *= UNIT;
        exp += 1;
        n /= UNIT;
    }
    format!("{:.1} {}iB", b as f64 / div as f64, &"KMGTPE"[exp..exp + 1])
}

/// Whether `/proc/locks` holds a lock on inode `ino` of device
/// `major:minor` (QEMU locks the images it has open).
pub fn locked(proc_locks: &str, major: u32, minor: u32, ino: u64) -> bool {
    proc_locks.lines().any(|l| {
        l.split_whitespace()
            .any(|w| same_dev_ino(w, major, minor, ino))
    })
}

/// `/proc/locks` writes the device as hex `MAJ:MIN:INODE` with at least
/// two digits each; compared numerically so any width matches.
fn same_dev_ino(w: &str, major: u32, minor: u32, ino: u64) -> bool {
    let mut p = w.split(':');
    let (Some(a), Some(b), Some(c), None) = (p.next(), p.next(), p.next(), p.next()) else {
        return false;
    };
    u32::from_str_radix(a, 16) == Ok(major)
        && u32::from_str_radix(b, 16) == Ok(minor)
        && c.parse::<u64>() == Ok(ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAIN: &str = r#"[
    {
        "backing-filename-format": "qcow2",
        "virtual-size": 67108864,
        "filename": "/f/ov.qcow2",
        "cluster-size": 65536,
        "format": "qcow2",
        "actual-size": 200704,
        "format-specific": {"type": "qcow2", "data": {"compat": "1.1"}},
        "full-backing-filename": "/f/base.qcow2",
        "backing-filename": "base.qcow2",
        "dirty-flag": false
    },
    {
        "virtual-size": 67108864,
        "filename": "/f/base.qcow2",
        "cluster-size": 65536,
        "format": "qcow2",
        "actual-size": 1187840,
        "dirty-flag": false
    }
]"#;

    #[test]
    fn a_backing_chain() {
        let c = parse_chain(CHAIN).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].filename, "/f/ov.qcow2");
        assert_eq!(c[0].backing_filename.as_deref(), Some("base.qcow2"));
        assert_eq!(c[0].full_backing_filename.as_deref(), Some("/f/base.qcow2"));
        assert_eq!(c[0].backing_filename_format.as_deref(), Some("qcow2"));
        assert_eq!(c[1].backing_filename, None);
        assert_eq!(
            row(&c[0], false),
            [
                "/f/ov.qcow2",
                "qcow2",
                "64.0 MiB",
                "196.0 KiB",
                "base.qcow2",
                "false"
            ]
        );
        assert_eq!(row(&c[1], true)[4..], ["", "true"]);
    }

    #[test]
    fn one_image_and_bad_answers() {
        let i = parse(r#"{"virtual-size": 512, "filename": "x.raw", "format": "raw"}"#).unwrap();
        assert_eq!((i.virtual_size, i.actual_size), (512, None));
        assert_eq!(row(&i, false)[2..4], ["512 B", ""]);
        assert!(parse("qemu-img: Could not open 'x'").is_err());
        assert_eq!(parse_chain("[]"), Err(InfoError::Empty));
        assert!(parse_chain(r#"[{"filename": "x"}]"#).is_err());
    }

    #[test]
    fn sizes_as_minimega_prints_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(200 << 20), "200.0 MiB");
        assert_eq!(human_bytes(20 << 30), "20.0 GiB");
        assert_eq!(human_bytes(3 << 40), "3.0 TiB");
    }

    #[test]
    fn locks_by_device_and_inode() {
        let locks = "1: OFDLCK ADVISORY  READ  -1 fd:01:1234 100 100\n\
                     2: POSIX  ADVISORY  WRITE 99 00:2b:98765 0 EOF\n";
        assert!(locked(locks, 0xfd, 1, 1234));
        assert!(locked(locks, 0, 0x2b, 98765));
        assert!(!locked(locks, 0xfd, 1, 123));
        assert!(!locked(locks, 0xfd, 2, 1234));
    }
}
