//! This node's files directory: globs, `file list`, `file delete`, and the
//! files it offers to others. Transfers in progress (hidden partial files)
//! are never listed or offered.

use super::transfer::Version;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// A partial file's name ends so; it and its record start with a dot.
pub const PARTIAL: &str = ".mmpart";
pub const RECORD: &str = ".mmpart.json";

/// The hidden partial file and its record for `path`.
pub fn partial_paths(path: &Path) -> (PathBuf, PathBuf) {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let dir = path.parent().unwrap_or(Path::new("/"));
    (
        dir.join(format!(".{name}{PARTIAL}")),
        dir.join(format!(".{name}{RECORD}")),
    )
}

pub fn is_partial(name: &str) -> bool {
    name.starts_with('.') && (name.ends_with(PARTIAL) || name.ends_with(RECORD))
}

/// One component of a glob against one name: `*`, `?` and `[...]`
/// (`[!...]` negated, ranges `a-z`). Pure.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    matches_at(&p, &n)
}

fn matches_at(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|i| matches_at(&p[1..], &n[i..])),
        Some('?') => !n.is_empty() && matches_at(&p[1..], &n[1..]),
        Some('[') => {
            let Some(close) = p.iter().skip(1).position(|c| *c == ']').map(|i| i + 1) else {
                return n.first() == Some(&'[') && matches_at(&p[1..], &n[1..]);
            };
            let Some(c) = n.first() else {
                return false;
            };
            let mut set = &p[1..close];
            let negate = matches!(set.first(), Some('!') | Some('^'));
            if negate {
                set = &set[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == '-' {
                    hit |= (set[i]..=set[i + 2]).contains(c);
                    i += 3;
                } else {
                    hit |= set[i] == *c;
                    i += 1;
                }
            }
            hit != negate && matches_at(&p[close + 1..], &n[1..])
        }
        Some(ch) => n.first() == Some(ch) && matches_at(&p[1..], &n[1..]),
    }
}

pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Paths under `root` that `rel` (relative, normalised) names: itself, or
/// every match of its glob components, sorted.
pub fn expand(root: &Path, rel: &Path) -> Vec<PathBuf> {
    let mut found = vec![root.to_path_buf()];
    for comp in rel.components() {
        let c = comp.as_os_str().to_string_lossy().to_string();
        let mut next = Vec::new();
        for base in &found {
            if !is_glob(&c) {
                let p = base.join(&c);
                if std::fs::symlink_metadata(&p).is_ok() {
                    next.push(p);
                }
                continue;
            }
            let Ok(rd) = std::fs::read_dir(base) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if !is_partial(&name) && glob_match(&c, &name) {
                    next.push(e.path());
                }
            }
        }
        found = next;
    }
    found.sort();
    found
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the files directory.
    pub name: String,
    pub dir: bool,
    pub size: u64,
    pub version: Version,
    pub mode: u32,
}

fn entry(root: &Path, path: &Path) -> Option<Entry> {
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::metadata(path).ok()?;
    let name = path.strip_prefix(root).ok()?.to_string_lossy().into_owned();
    Some(Entry {
        name,
        dir: m.is_dir(),
        size: m.len(),
        version: version_of(&m),
        mode: m.permissions().mode() & 0o7777,
    })
}

pub fn version_of(m: &std::fs::Metadata) -> Version {
    let mtime_ns = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    Version {
        mtime_ns,
        size: m.len(),
    }
}

/// `file list`: a file itself; a directory's entries (with `recursive`,
/// every file below it instead); for each match of a glob, the same.
pub fn list(root: &Path, rel: &Path, recursive: bool) -> Vec<Entry> {
    let mut out = Vec::new();
    for p in expand(root, rel) {
        if !p.is_dir() {
            out.extend(entry(root, &p));
            continue;
        }
        if recursive {
            walk(root, &p, &mut out);
            continue;
        }
        let Ok(rd) = std::fs::read_dir(&p) else {
            continue;
        };
        for e in rd.flatten() {
            if !is_partial(&e.file_name().to_string_lossy()) {
                out.extend(entry(root, &e.path()));
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Every file below `dir`, links to directories not followed.
fn walk(root: &Path, dir: &Path, out: &mut Vec<Entry>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if is_partial(&e.file_name().to_string_lossy()) {
            continue;
        }
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(root, &p, out),
            Ok(_) => out.extend(entry(root, &p).filter(|e| !e.dir)),
            Err(_) => {}
        }
    }
}

/// RFC 3339 in UTC (minimega's `modified` column), from nanoseconds
/// since the epoch.
pub fn rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000).max(0) as u64;
    let rem = secs % 86_400;
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        crate::timefmt::date_of(secs),
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*.qcow2", "a.qcow2"));
        assert!(!glob_match("*.qcow2", "a.qcow2.bak"));
        assert!(glob_match("foo?", "foo1"));
        assert!(!glob_match("foo?", "foo"));
        assert!(glob_match("a.*", "a.txt2"));
        assert!(glob_match("[ab]*", "beta"));
        assert!(!glob_match("[!ab]*", "beta"));
        assert!(glob_match("f[0-9]", "f7"));
        assert!(glob_match("*", ""));
        assert!(glob_match("x[", "x["));
    }

    #[test]
    fn partials_are_hidden() {
        let (p, r) = partial_paths(Path::new("/f/img/base.qcow2"));
        assert_eq!(p, Path::new("/f/img/.base.qcow2.mmpart"));
        assert_eq!(r, Path::new("/f/img/.base.qcow2.mmpart.json"));
        assert!(is_partial(".base.qcow2.mmpart") && is_partial(".base.qcow2.mmpart.json"));
        assert!(!is_partial("base.qcow2.mmpart") && !is_partial(".bashrc"));
    }

    #[test]
    fn listing_globs_and_directories() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for f in [
            "m/foo1/a.txt",
            "m/foo1/a.txt2",
            "m/foo2/a.txt",
            "m/foo2/b.txt",
            "m/x",
        ] {
            std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
            std::fs::write(root.join(f), "12").unwrap();
        }
        std::fs::write(root.join("m/.x.mmpart"), "").unwrap();
        let names = |v: Vec<Entry>| v.into_iter().map(|e| e.name).collect::<Vec<_>>();
        assert_eq!(
            names(list(root, Path::new("m/*/a.txt"), false)),
            ["m/foo1/a.txt", "m/foo2/a.txt"]
        );
        assert_eq!(
            names(list(root, Path::new("m"), false)),
            ["m/foo1", "m/foo2", "m/x"]
        );
        assert_eq!(names(list(root, Path::new("m/foo1/a.*"), false)).len(), 2);
        let all = list(root, Path::new("m"), true);
        assert_eq!(all.len(), 5);
        assert!(all.iter().all(|e| !e.dir && e.size == 2));
        assert!(list(root, Path::new("nothing"), false).is_empty());
        assert_eq!(names(list(root, Path::new("m/x"), false)), ["m/x"]);
    }

    #[test]
    fn times_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_999_999_999), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400 * 1_000_000_000), "2000-02-29T00:00:00Z");
    }
}
