//! The words of the `disk` commands: image formats, sizes, `IMAGE[:PART]`,
//! `SRC:DST` pairs and delete lists. Pure; each error names the word.

use std::path::{Component, Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ArgError {
    #[error("invalid size `{0}`: expected bytes or a number with a suffix k, M, G, T (e.g. 512M, 20G{1})")]
    Size(String, &'static str),
    #[error("invalid partition `{0}`: expected a number (1, 2, ...) or none")]
    Partition(String),
    /// minimega's words.
    #[error("malformed command; expected src:dst pairs, not `{0}`")]
    Pair(String),
    #[error("destination appears twice: `{0}`")]
    DuplicateDestination(String),
    #[error("`{0}` is outside the image's file system")]
    Outside(String),
    #[error("no files given")]
    NoFiles,
}

/// A size as qemu-img takes it, checked so a typo is our clear error, not
/// qemu-img's. `relative` allows a leading `+` or `-` (resize).
pub fn size(s: &str, relative: bool) -> Result<String, ArgError> {
    let bad = || ArgError::Size(s.to_string(), if relative { ", +1G, -512M" } else { "" });
    let body = match s.strip_prefix(['+', '-']) {
        Some(rest) if relative => rest,
        Some(_) => return Err(bad()),
        None => s,
    };
    let digits = body.trim_end_matches(['b', 'B', 'k', 'K', 'M', 'G', 'T', 'P', 'E']);
    let suffix = &body[digits.len()..];
    let number_ok = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.matches('.').count() <= 1
        && !digits.starts_with('.')
        && !digits.ends_with('.');
    if !number_ok || suffix.len() > 1 {
        return Err(bad());
    }
    Ok(s.to_string())
}

/// Which part of an image `disk inject` works in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    /// The only partition, or the whole disk when it has no partition table.
    Auto,
    Number(u32),
    /// A file system on the whole disk (`IMAGE:none`).
    WholeDisk,
}

/// `IMAGE[:PART]`: the suffix is taken as a partition only when it looks
/// like one, so a path that merely contains `:` still works.
pub fn image_and_partition(word: &str) -> Result<(String, Partition), ArgError> {
    let Some((image, part)) = word.rsplit_once(':') else {
        return Ok((word.to_string(), Partition::Auto));
    };
    if part == "none" {
        return Ok((image.to_string(), Partition::WholeDisk));
    }
    if !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()) {
        return match part.parse::<u32>() {
            Ok(n) if n >= 1 => Ok((image.to_string(), Partition::Number(n))),
            _ => Err(ArgError::Partition(part.to_string())),
        };
    }
    Ok((word.to_string(), Partition::Auto))
}

/// One file to write into the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// On the host, as given.
    pub src: String,
    /// Inside the partition, relative to its root.
    pub dst: PathBuf,
}

/// `SRC:DST ...`, each destination once.
pub fn pairs(words: &[String]) -> Result<Vec<Pair>, ArgError> {
    if words.is_empty() {
        return Err(ArgError::NoFiles);
    }
    let mut out: Vec<Pair> = Vec::new();
    for w in words {
        let Some((src, dst)) = w.split_once(':') else {
            return Err(ArgError::Pair(w.clone()));
        };
        if src.is_empty() || dst.is_empty() || dst.contains(':') {
            return Err(ArgError::Pair(w.clone()));
        }
        let dst_path = inside_image(dst)?;
        if out.iter().any(|p| p.dst == dst_path) {
            return Err(ArgError::DuplicateDestination(dst.to_string()));
        }
        out.push(Pair {
            src: src.to_string(),
            dst: dst_path,
        });
    }
    Ok(out)
}

/// `delete files A,B C ...`: commas and separate words both separate.
pub fn deletions(words: &[String]) -> Result<Vec<PathBuf>, ArgError> {
    let mut out = Vec::new();
    for part in words.iter().flat_map(|w| w.split(',')) {
        if part.is_empty() {
            continue;
        }
        let p = inside_image(part)?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        return Err(ArgError::NoFiles);
    }
    Ok(out)
}

/// A path inside the image, relative to the partition's root: `/` and `.`
/// dropped, `..` refused where it would climb out, and the root itself
/// refused (nothing is ever written over or deleted at the top).
pub fn inside_image(p: &str) -> Result<PathBuf, ArgError> {
    let mut out = PathBuf::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                let climbed = out.pop();
                if !climbed {
                    return Err(ArgError::Outside(p.to_string()));
                }
            }
            _ => {}
        }
    }
    if out.as_os_str().is_empty() {
        return Err(ArgError::Outside(p.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sizes() {
        for ok in ["100G", "512M", "1024", "1.5G", "10k", "2T"] {
            assert_eq!(size(ok, false).unwrap(), ok);
        }
        for ok in ["+1G", "-512M", "20G"] {
            assert!(size(ok, true).is_ok(), "{ok}");
        }
        for bad in [
            "", "G", "lots", "1GG", "1.2.3G", "+1G", "-5", "1 G", ".5G", "5.G",
        ] {
            assert!(size(bad, false).is_err(), "{bad}");
        }
        assert_eq!(
            size("big", true).unwrap_err().to_string(),
            "invalid size `big`: expected bytes or a number with a suffix k, M, G, T (e.g. 512M, 20G, +1G, -512M)"
        );
    }

    #[test]
    fn images_and_partitions() {
        let ip = |s: &str| image_and_partition(s).unwrap();
        assert_eq!(ip("foo.qcow2"), ("foo.qcow2".into(), Partition::Auto));
        assert_eq!(
            ip("foo.qcow2:2"),
            ("foo.qcow2".into(), Partition::Number(2))
        );
        assert_eq!(
            ip("/a/foo.qcow2:none"),
            ("/a/foo.qcow2".into(), Partition::WholeDisk)
        );
        assert_eq!(ip("a:b.qcow2"), ("a:b.qcow2".into(), Partition::Auto));
        assert_eq!(
            image_and_partition("foo:0").unwrap_err().to_string(),
            "invalid partition `0`: expected a number (1, 2, ...) or none"
        );
        assert!(image_and_partition("foo:99999999999").is_err());
    }

    #[test]
    fn pairs_and_their_destinations() {
        let p = pairs(&w(&["/tmp/x:/etc/x", "miniccc:Program Files/miniccc"])).unwrap();
        assert_eq!(p[0].src, "/tmp/x");
        assert_eq!(p[0].dst, Path::new("etc/x"));
        assert_eq!(p[1].dst, Path::new("Program Files/miniccc"));
        assert_eq!(
            pairs(&w(&["a:/x", "b:x"])).unwrap_err(),
            ArgError::DuplicateDestination("x".into())
        );
        assert_eq!(
            pairs(&w(&["nocolon"])).unwrap_err().to_string(),
            "malformed command; expected src:dst pairs, not `nocolon`"
        );
        assert!(pairs(&w(&["a:b:c"])).is_err());
        assert!(pairs(&w(&[":b"])).is_err());
        assert_eq!(pairs(&[]).unwrap_err(), ArgError::NoFiles);
        assert_eq!(
            pairs(&w(&["x:../../etc/shadow"])).unwrap_err().to_string(),
            "`../../etc/shadow` is outside the image's file system"
        );
        assert!(pairs(&w(&["x:/"])).is_err());
        assert_eq!(pairs(&w(&["x:a/../b"])).unwrap()[0].dst, Path::new("b"));
    }

    #[test]
    fn delete_lists() {
        let d = deletions(&w(&["foo.txt,Temp/bar.zip", "/baz", "foo.txt"])).unwrap();
        assert_eq!(
            d,
            [
                Path::new("foo.txt"),
                Path::new("Temp/bar.zip"),
                Path::new("baz")
            ]
        );
        assert_eq!(deletions(&w(&[","])).unwrap_err(), ArgError::NoFiles);
        assert!(deletions(&w(&["/"])).is_err());
        assert!(deletions(&w(&["a/../.."])).is_err());
    }
}
