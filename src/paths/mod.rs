//! Paths the daemon takes from users and from the host: file names
//! confined to the files directory ([`confine`], and [`files`] for the
//! `file` commands' own names), and binaries found in PATH.
//!
//! Names of files in the files directory (`-filepath`). A relative name
//! is a file in that directory and must stay there: `..` may not climb out
//! of it, whoever wrote the name (a user, a script, another node). An
//! absolute name is the user's explicit choice and is taken as it is.
//!
//! The check is on the name, not on the disk: links the administrator put
//! in the files directory (an image store linked in) are followed as any
//! path is.

use std::path::{Component, Path, PathBuf};
use thiserror::Error;

pub mod files;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfineError {
    #[error("`{0}` is outside the files directory (a relative name may not climb out of it with ..; give an absolute path)")]
    Escapes(String),
    #[error("empty file name")]
    Empty,
}

/// `name` as a path: absolute names as given, relative ones joined to
/// `files` with `.` and `..` resolved, refused when they would leave it.
pub fn confine(files: &Path, name: &str) -> Result<PathBuf, ConfineError> {
    if name.is_empty() {
        return Err(ConfineError::Empty);
    }
    let p = Path::new(name);
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    let mut inside: Vec<&std::ffi::OsStr> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => inside.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if inside.pop().is_none() {
                    return Err(ConfineError::Escapes(name.to_string()));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(ConfineError::Escapes(name.to_string()))
            }
        }
    }
    if inside.is_empty() {
        // `.` or `a/..`: the directory itself is no file in it.
        return Err(ConfineError::Escapes(name.to_string()));
    }
    let mut out = files.to_path_buf();
    out.extend(inside);
    Ok(out)
}

/// The binary's path: as given when it has a `/`, else searched in PATH.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let exec = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return exec(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| exec(p))
}

/// A path as mountinfo(5) writes it: space, tab, newline and backslash in
/// octal (`\\040`).
pub fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_names_stay_in_the_files_directory() {
        let f = Path::new("/srv/files");
        assert_eq!(confine(f, "a.qcow2").unwrap(), f.join("a.qcow2"));
        assert_eq!(confine(f, "./img/../b/c").unwrap(), f.join("b/c"));
        assert_eq!(confine(f, "/abs/x").unwrap(), Path::new("/abs/x"));
        assert_eq!(
            confine(f, "/abs/../x").unwrap(),
            Path::new("/abs/../x"),
            "absolute names are the user's own"
        );
        for bad in ["../x", "a/../../x", "..", ".", "a/.."] {
            let e = confine(f, bad).unwrap_err();
            assert_eq!(e, ConfineError::Escapes(bad.into()), "{bad}");
        }
        assert!(confine(f, "../../etc/shadow")
            .unwrap_err()
            .to_string()
            .contains("outside the files directory"));
        assert_eq!(confine(f, ""), Err(ConfineError::Empty));
    }

    #[test]
    fn binaries() {
        assert!(find_binary("sh").is_some());
        assert!(find_binary("/bin/sh").is_some());
        assert!(find_binary("no-such-qemu-here").is_none());
    }
}
