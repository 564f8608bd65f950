//! Where cc keeps and finds files: agents' responses under
//! `<filepath>[/<namespace>]/miniccc_responses/<id>/<uuid>/` (stdout,
//! stderr, exitcode and received files, where phenix reads them; the
//! default namespace has no directory of its own, as in minimega), and the
//! files `cc send` serves from the files directory. No path a command or
//! an agent names may leave either tree.

use super::ron::Response;
use crate::vm::manager::DEFAULT_NAMESPACE;
use std::io;
use std::path::{Component, Path, PathBuf};

pub const RESPONSES: &str = "miniccc_responses";

/// The files of a namespace: its own directory, then the shared one.
pub fn namespace_dir(filepath: &Path, namespace: &str) -> PathBuf {
    if namespace == DEFAULT_NAMESPACE {
        filepath.to_path_buf()
    } else {
        filepath.join(namespace)
    }
}

pub fn responses_root(filepath: &Path, namespace: &str) -> PathBuf {
    namespace_dir(filepath, namespace).join(RESPONSES)
}

pub fn client_dir(root: &Path, id: i64, uuid: &str) -> PathBuf {
    root.join(id.to_string()).join(uuid)
}

/// A relative path of plain names: `a/b.txt` (and `./a`), never `..`, an
/// absolute path or nothing.
pub fn relative(name: &str) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return Err(format!("path `{name}` leaves its directory")),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(format!("empty path `{name}`"));
    }
    Ok(out)
}

/// An agent's file name (relative to its `/`) under the response tree.
pub fn received_path(root: &Path, id: i64, uuid: &str, name: &str) -> Result<PathBuf, String> {
    let rel = relative(name.trim_start_matches('/'))?;
    Ok(client_dir(root, id, uuid).join(rel))
}

/// Records one response: `exitcode` when it has one, `stdout` and `stderr`
/// when not empty (as minimega writes them).
pub fn write_response(root: &Path, uuid: &str, r: &Response) -> io::Result<()> {
    let dir = client_dir(root, r.id, uuid);
    std::fs::create_dir_all(&dir)?;
    if r.record_exit_code {
        std::fs::write(dir.join("exitcode"), r.exit_code.to_string())?;
    }
    if !r.stdout.is_empty() {
        std::fs::write(dir.join("stdout"), &r.stdout)?;
    }
    if !r.stderr.is_empty() {
        std::fs::write(dir.join("stderr"), &r.stderr)?;
    }
    Ok(())
}

/// One part of a file sent in parts (`cc send`, `cc recv`), as minimega's
/// File.Recv stores it: a file of several parts goes to `<path>.partial`,
/// renamed to `path` at its last part.
pub fn store_part(path: &Path, file: &super::ron::File) -> io::Result<()> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let whole = file.eof && file.offset == 0;
    let target = if whole {
        path.to_path_buf()
    } else {
        let mut p = path.as_os_str().to_owned();
        p.push(".partial");
        PathBuf::from(p)
    };
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(file.offset == 0)
        .mode((file.perm as u32 & 0o777) | 0o600)
        .open(&target)?;
    f.write_all_at(&file.data, file.offset.max(0) as u64)?;
    if file.eof && !whole {
        std::fs::rename(&target, path)?;
    }
    Ok(())
}

pub fn read_exit_code(root: &Path, id: i64, uuid: &str) -> Option<i64> {
    let s = std::fs::read_to_string(client_dir(root, id, uuid).join("exitcode")).ok()?;
    s.trim().parse().ok()
}

/// `cc responses`: every file under `dir` in name order (exit codes and
/// unfinished `.partial` files left out), each preceded by its path from
/// the response root unless `raw`.
pub fn listing(root: &Path, dir: &Path, raw: bool) -> io::Result<String> {
    let mut out = String::new();
    walk(root, dir, raw, &mut out)?;
    Ok(out)
}

fn walk(root: &Path, dir: &Path, raw: bool, out: &mut String) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let ty = e.file_type()?;
        if ty.is_dir() {
            walk(root, &path, raw, out)?;
            continue;
        }
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !ty.is_file() || name == "exitcode" || name.ends_with(".partial") {
            continue;
        }
        if !raw {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push_str(&format!("{}:\n", rel.display()));
        }
        out.push_str(&String::from_utf8_lossy(&std::fs::read(&path)?));
        out.push('\n');
    }
    Ok(())
}

/// A file `cc send` may serve, by its name relative to the files
/// directory: the namespace's own copy first, then the shared one. The
/// file must really be inside (no `..`, no symlink out).
pub fn servable(filepath: &Path, namespace: &str, name: &str) -> Result<PathBuf, String> {
    let rel = relative(name)?;
    let mut tried = Vec::new();
    for dir in [namespace_dir(filepath, namespace), filepath.to_path_buf()] {
        if tried.contains(&dir) {
            continue;
        }
        let p = dir.join(&rel);
        tried.push(dir);
        if let Ok(real) = p.canonicalize() {
            let inside = filepath
                .canonicalize()
                .is_ok_and(|root| real.starts_with(root));
            if !inside {
                return Err(format!("{name} is outside the files directory"));
            }
            if !real.is_file() {
                return Err(format!("{name} is not a file"));
            }
            return Ok(real);
        }
    }
    Err(format!("no such file: {name}"))
}

/// Expands a pattern of path components against a directory tree: the
/// matching paths, relative to `base`, in name order. A component without
/// wildcards is taken as it is (it need not exist).
pub fn expand(base: &Path, pattern: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::new()];
    for comp in pattern.components() {
        let Component::Normal(c) = comp else {
            continue;
        };
        let c = c.to_string_lossy();
        let mut next = Vec::new();
        for prefix in &found {
            if !crate::files::local::is_glob(&c) {
                next.push(prefix.join(&*c));
                continue;
            }
            let Ok(rd) = std::fs::read_dir(base.join(prefix)) else {
                continue;
            };
            let mut names: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    (!n.starts_with('.') || c.starts_with('.'))
                        && crate::files::local::glob_match(&c, n)
                })
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| prefix.join(n)));
        }
        found = next;
    }
    found.retain(|p| !p.as_os_str().is_empty() && base.join(p).exists());
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_response_layout_is_where_phenix_reads_it() {
        let fp = Path::new("/srv/files");
        assert_eq!(
            responses_root(fp, "exp1"),
            Path::new("/srv/files/exp1/miniccc_responses")
        );
        assert_eq!(
            responses_root(fp, "minimega"),
            Path::new("/srv/files/miniccc_responses")
        );
        let root = responses_root(fp, "exp1");
        assert_eq!(
            client_dir(&root, 3, "u-1"),
            Path::new("/srv/files/exp1/miniccc_responses/3/u-1")
        );
        assert_eq!(
            received_path(&root, 3, "u-1", "/var/log/syslog").unwrap(),
            Path::new("/srv/files/exp1/miniccc_responses/3/u-1/var/log/syslog")
        );
        assert!(received_path(&root, 3, "u-1", "/../../etc/passwd").is_err());
        assert!(received_path(&root, 3, "u-1", "a/../../b").is_err());
        assert!(received_path(&root, 3, "u-1", "/").is_err());
    }

    #[test]
    fn responses_are_written_and_listed_as_minimega_does() {
        let t = tempfile::tempdir().unwrap();
        let root = responses_root(t.path(), "exp");
        let r = |id, out: &str, code, record| Response {
            id,
            stdout: out.as_bytes().to_vec(),
            exit_code: code,
            record_exit_code: record,
            ..Default::default()
        };
        write_response(&root, "bbb", &r(1, "b\n", 0, true)).unwrap();
        write_response(&root, "aaa", &r(1, "a\n", 3, true)).unwrap();
        write_response(&root, "aaa", &r(2, "", 0, false)).unwrap();
        write_response(&root, "aaa", &r(10, "ten", 0, true)).unwrap();
        let dir = client_dir(&root, 1, "aaa");
        assert_eq!(std::fs::read_to_string(dir.join("exitcode")).unwrap(), "3");
        assert_eq!(std::fs::read_to_string(dir.join("stdout")).unwrap(), "a\n");
        assert!(!dir.join("stderr").exists());
        assert!(!client_dir(&root, 2, "aaa").join("exitcode").exists());
        assert_eq!(read_exit_code(&root, 1, "aaa"), Some(3));
        assert_eq!(read_exit_code(&root, 2, "aaa"), None);
        std::fs::write(dir.join("big.partial"), "half").unwrap();
        assert_eq!(
            listing(&root, &root.join("1"), false).unwrap(),
            "1/aaa/stdout:\na\n\n1/bbb/stdout:\nb\n\n"
        );
        assert_eq!(listing(&root, &root.join("1"), true).unwrap(), "a\n\nb\n\n");
        // Name order, as Go's filepath.Walk: 10 before 2.
        let all = listing(&root, &root, false).unwrap();
        assert_eq!(
            all,
            "1/aaa/stdout:\na\n\n1/bbb/stdout:\nb\n\n10/aaa/stdout:\nten\n"
        );
        assert!(listing(&root, &root.join("7"), false).is_err());
    }

    #[test]
    fn parts_are_stored_under_partial_until_the_last() {
        let t = tempfile::tempdir().unwrap();
        let dst = t.path().join("d/out.bin");
        let part = |offset: i64, data: &[u8], eof| super::super::ron::File {
            offset,
            data: data.to_vec(),
            eof,
            perm: 0o640,
            ..Default::default()
        };
        store_part(&dst, &part(0, b"abc", false)).unwrap();
        assert!(!dst.exists() && t.path().join("d/out.bin.partial").exists());
        store_part(&dst, &part(3, b"def", true)).unwrap();
        assert_eq!(std::fs::read(&dst).unwrap(), b"abcdef");
        assert!(!t.path().join("d/out.bin.partial").exists());
        store_part(&dst, &part(0, b"", true)).unwrap();
        assert_eq!(std::fs::read(&dst).unwrap(), b"", "a whole file replaces");
    }

    #[test]
    fn served_files_stay_inside_the_files_directory() {
        let t = tempfile::tempdir().unwrap();
        let fp = t.path().join("files");
        std::fs::create_dir_all(fp.join("exp/sub")).unwrap();
        std::fs::write(fp.join("shared.txt"), "s").unwrap();
        std::fs::write(fp.join("exp/mine.txt"), "m").unwrap();
        std::fs::write(fp.join("shared2.txt"), "s").unwrap();
        std::fs::write(fp.join("exp/shared2.txt"), "own copy").unwrap();
        std::fs::write(t.path().join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(t.path().join("secret"), fp.join("link")).unwrap();
        let ok = |n: &str| servable(&fp, "exp", n);
        assert!(ok("shared.txt").unwrap().ends_with("files/shared.txt"));
        assert!(ok("mine.txt").unwrap().ends_with("files/exp/mine.txt"));
        assert!(ok("shared2.txt")
            .unwrap()
            .ends_with("files/exp/shared2.txt"));
        assert_eq!(ok("nope").unwrap_err(), "no such file: nope");
        assert_eq!(
            ok("../secret").unwrap_err(),
            "path `../secret` leaves its directory"
        );
        assert_eq!(
            ok("/etc/passwd").unwrap_err(),
            "path `/etc/passwd` leaves its directory"
        );
        assert_eq!(
            ok("link").unwrap_err(),
            "link is outside the files directory"
        );
        assert_eq!(ok("sub").unwrap_err(), "sub is not a file");
    }

    #[test]
    fn globs_expand_against_the_tree() {
        let t = tempfile::tempdir().unwrap();
        for f in ["a.log", "b.log", "c.txt", ".hidden.log"] {
            std::fs::write(t.path().join(f), "").unwrap();
        }
        std::fs::create_dir(t.path().join("d")).unwrap();
        std::fs::write(t.path().join("d/x.log"), "").unwrap();
        let names = |p: &str| -> Vec<String> {
            expand(t.path(), Path::new(p))
                .iter()
                .map(|p| p.display().to_string())
                .collect()
        };
        assert_eq!(names("*.log"), ["a.log", "b.log"]);
        assert_eq!(names("*/x.log"), ["d/x.log"]);
        assert_eq!(names("c.txt"), ["c.txt"]);
        assert!(names("missing").is_empty());
        assert!(names("*.none").is_empty());
    }
}
