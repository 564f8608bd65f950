//! Names inside the files directory. Every command that takes a file name
//! resolves it here: a relative name lands under the files directory and
//! may not climb out of it with `..`; an absolute name is the caller's own
//! choice (only where the command accepts one). Lexical, so it is pure and
//! works for files that do not exist yet; [`inside`] checks what symbolic
//! links already on disk make of a name before anything is written.

use std::path::{Component, Path, PathBuf};

/// The same refusals as every other file name the daemon takes.
pub use super::ConfineError as PathError;

/// `name` as a path relative to the files directory, normalised: a leading
/// `/` is dropped (`file list /foo` means the files directory's `foo`, as in
/// minimega), `.` and empty components vanish, `..` climbs within it.
/// An empty result (the files directory itself) is allowed.
pub fn relative(name: &str) -> Result<PathBuf, PathError> {
    let mut out: Vec<&std::ffi::OsStr> = Vec::new();
    for c in Path::new(name).components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if out.pop().is_none() {
                    return Err(PathError::Escapes(name.to_string()));
                }
            }
            Component::Normal(s) => out.push(s),
        }
    }
    Ok(out.iter().collect())
}

/// A file name under `root` as `file` commands take it: always inside.
pub fn confine(root: &Path, name: &str) -> Result<PathBuf, PathError> {
    Ok(root.join(relative(name)?))
}

/// A file name as `disk` commands and `vm config` take it: absolute as
/// given (normalised, so one image has one name when checking whether a VM
/// uses it), relative under `root` and never above it ([`crate::confine`]).
pub fn resolve(root: &Path, name: &str) -> Result<PathBuf, PathError> {
    Ok(normalize(&super::confine(root, name)?))
}

/// `p` without `.` and `..` components (lexically; `/..` stays `/`).
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The name of `path` relative to `root`, if it lies inside (lexically).
pub fn name_under(root: &Path, path: &Path) -> Option<String> {
    let rel = normalize(path)
        .strip_prefix(normalize(root))
        .ok()?
        .to_path_buf();
    let s = rel.to_string_lossy().into_owned();
    (!s.is_empty()).then_some(s)
}

/// Whether `path` (inside `root` by name) is still inside once the
/// symbolic links of its existing ancestors are followed: the check made
/// before writing, so a link placed in the files directory cannot carry a
/// write elsewhere.
pub fn inside(root: &Path, path: &Path) -> bool {
    let Ok(root) = root.canonicalize() else {
        return false;
    };
    let mut probe = path.to_path_buf();
    loop {
        if let Ok(real) = probe.canonicalize() {
            return real.starts_with(&root);
        }
        if !probe.pop() {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_names_stay_inside() {
        let root = Path::new("/srv/files");
        assert_eq!(confine(root, "a/b.qcow2").unwrap(), root.join("a/b.qcow2"));
        assert_eq!(confine(root, "/a/./b").unwrap(), root.join("a/b"));
        assert_eq!(confine(root, "a/../b").unwrap(), root.join("b"));
        assert_eq!(confine(root, "/").unwrap(), root);
        assert_eq!(
            confine(root, "../etc/passwd").unwrap_err(),
            PathError::Escapes("../etc/passwd".into())
        );
        assert!(confine(root, "a/../../b").is_err());
        assert!(confine(root, "/a/../../b").is_err());
    }

    #[test]
    fn absolute_names_are_the_callers() {
        let root = Path::new("/srv/files");
        assert_eq!(
            resolve(root, "/img/x.qcow2").unwrap(),
            Path::new("/img/x.qcow2")
        );
        assert_eq!(resolve(root, "/img/../x").unwrap(), Path::new("/x"));
        assert_eq!(resolve(root, "x.qcow2").unwrap(), root.join("x.qcow2"));
        assert!(resolve(root, "../x").is_err());
        assert_eq!(resolve(root, ""), Err(PathError::Empty));
        assert!(resolve(root, ".").is_err());
    }

    #[test]
    fn names_under_the_root() {
        let root = Path::new("/srv/files");
        assert_eq!(
            name_under(root, Path::new("/srv/files/a/b")),
            Some("a/b".into())
        );
        assert_eq!(name_under(root, Path::new("/srv/files/../x")), None);
        assert_eq!(name_under(root, Path::new("/srv/files")), None);
        assert_eq!(name_under(root, Path::new("/srv/filesx/a")), None);
    }

    #[test]
    fn links_out_of_the_root_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("files");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::os::unix::fs::symlink("/", root.join("out")).unwrap();
        assert!(inside(&root, &root.join("sub/new.qcow2")));
        assert!(inside(&root, &root.join("new/deeper/x")));
        assert!(!inside(&root, &root.join("out/etc/x")));
    }
}
