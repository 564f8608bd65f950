//! The base directory and the lock that makes one daemon its owner.
//!
//! Everything the daemon trusts after a restart (VM records naming
//! processes, units and cgroups; QMP sockets) lives under the base, so the
//! base is trusted only when nobody else could have written it: it is ours
//! (owned by the daemon's user, writable by nobody else), and so is every
//! directory and link on the way to it, or the directory is root's with
//! the sticky bit (as /tmp is), where others cannot replace our entries.
//! A base that does not exist is made 0700 (0750 with group `minimega`
//! when that group exists, so its members reach the command socket).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::{Component, Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BaseError {
    #[error("cannot create base directory {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another minimega (pid {pid}) is running with base directory {path}")]
    Running { pid: String, path: PathBuf },
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("refusing base directory {path}: {why}; remove or fix it, or choose another -base")]
    Untrusted { path: PathBuf, why: String },
}

/// Held for the daemon's lifetime; the lock goes with the process, so a
/// crashed daemon never blocks the next one.
pub struct BaseLock {
    _file: File,
    pub path: PathBuf,
}

/// Makes or checks the base directory (see the module doc), then takes
/// its lock.
pub fn lock(base: &Path) -> Result<BaseLock, BaseError> {
    let group = crate::users::group_id(crate::users::GROUP);
    ensure(base, effective_uid(), group)?;
    let path = base.join("minimega.pid");
    let lock_err = |source| BaseError::Lock {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(lock_err)?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(BaseError::Running {
                pid: pid.trim().to_string(),
                path: base.to_path_buf(),
            });
        }
        return Err(lock_err(err));
    }
    file.set_len(0).map_err(lock_err)?;
    file.rewind().map_err(lock_err)?;
    writeln!(file, "{}", std::process::id()).map_err(lock_err)?;
    Ok(BaseLock { _file: file, path })
}

/// A short stable tag of a base directory's path (FNV-1a), which marks
/// what its daemon makes outside it (cgroups, taps, switch ports), so two
/// daemons on one host never take each other's for their own.
pub fn tag(base: &Path) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in base.as_os_str().as_encoded_bytes() {
        h ^= *b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

pub fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// The base directory `dir`, made when missing and checked either way,
/// for a daemon running as `uid`; `group` is the gid that may read it.
pub fn ensure(dir: &Path, uid: u32, group: Option<u32>) -> Result<(), BaseError> {
    let untrusted = |why: String| BaseError::Untrusted {
        path: dir.to_path_buf(),
        why,
    };
    let dir = std::path::absolute(dir).map_err(|source| BaseError::Create {
        path: dir.to_path_buf(),
        source,
    })?;
    let real = trusted_path(&dir, uid).map_err(untrusted)?;
    let mode = if group.is_some() { 0o750 } else { 0o700 };
    match make_dir(&real, mode) {
        Ok(()) => {
            if let Some(gid) = group {
                std::os::unix::fs::chown(&real, None, Some(gid)).map_err(|source| {
                    BaseError::Create {
                        path: real.clone(),
                        source,
                    }
                })?;
            }
            // The umask may have taken bits off; set exactly what we mean.
            std::fs::set_permissions(&real, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .map_err(|source| BaseError::Create {
                    path: real.clone(),
                    source,
                })?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => return Err(BaseError::Create { path: real, source }),
    }
    // Checked again after making it: another user may have made it first.
    let meta = std::fs::symlink_metadata(&real).map_err(|source| BaseError::Create {
        path: real.clone(),
        source,
    })?;
    check_own_dir(&real, &meta, uid).map_err(untrusted)
}

/// Makes `dir` with `mode`, and any missing parent 0755 (the daemon's
/// own: `trusted_path` saw they do not exist).
fn make_dir(dir: &Path, mode: u32) -> std::io::Result<()> {
    if let Some(parent) = dir.parent() {
        if std::fs::symlink_metadata(parent).is_err() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)?;
        }
    }
    std::fs::DirBuilder::new().mode(mode).create(dir)
}

/// The directory `dir` must be ours and writable by us alone.
fn check_own_dir(path: &Path, meta: &std::fs::Metadata, uid: u32) -> Result<(), String> {
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", path.display()));
    }
    if meta.uid() != uid {
        return Err(format!(
            "{} is owned by uid {}, not by this daemon's user (uid {uid})",
            path.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is writable by others (mode {:04o})",
            path.display(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Resolves `path` (absolute) one component at a time, as the kernel
/// would, and checks everything on the way to its last component: each
/// directory owned by root or `uid` and writable by nobody else unless
/// sticky, each symbolic link owned by root or `uid`. Stops at the first
/// component that does not exist (the caller makes the rest). Returns the
/// path with every link resolved.
pub fn trusted_path(path: &Path, uid: u32) -> Result<PathBuf, String> {
    let mut todo: std::collections::VecDeque<std::ffi::OsString> =
        std::collections::VecDeque::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => todo.push_back(n.to_os_string()),
            Component::ParentDir => todo.push_back("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    let mut cur = PathBuf::from("/");
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&name);
        let meta = match std::fs::symlink_metadata(&next) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                cur = next;
                cur.extend(todo);
                return Ok(cur);
            }
            Err(e) => return Err(format!("{}: {e}", next.display())),
        };
        if meta.file_type().is_symlink() {
            if meta.uid() != 0 && meta.uid() != uid {
                return Err(format!(
                    "{} on its path is a symbolic link owned by uid {}",
                    next.display(),
                    meta.uid()
                ));
            }
            links += 1;
            if links > 40 {
                return Err(format!("too many symbolic links at {}", next.display()));
            }
            let target =
                std::fs::read_link(&next).map_err(|e| format!("{}: {e}", next.display()))?;
            if target.is_absolute() {
                cur = PathBuf::from("/");
            }
            let mut parts: Vec<std::ffi::OsString> = Vec::new();
            for c in target.components() {
                match c {
                    Component::Normal(n) => parts.push(n.to_os_string()),
                    Component::ParentDir => parts.push("..".into()),
                    _ => {}
                }
            }
            for p in parts.into_iter().rev() {
                todo.push_front(p);
            }
            continue;
        }
        if !todo.is_empty() {
            if !meta.is_dir() {
                return Err(format!("{} on its path is not a directory", next.display()));
            }
            let sticky = meta.mode() & 0o1000 != 0;
            if meta.uid() != 0 && meta.uid() != uid {
                return Err(format!(
                    "{} on its path is owned by uid {}",
                    next.display(),
                    meta.uid()
                ));
            }
            if meta.mode() & 0o022 != 0 && !sticky {
                return Err(format!(
                    "{} on its path is writable by others (mode {:04o})",
                    next.display(),
                    meta.mode() & 0o7777
                ));
            }
        }
        cur = next;
    }
    Ok(cur)
}

/// Makes `dir` (a directory the daemon wants to put something in for
/// others to find, such as the link at /tmp/minimega) or checks the one
/// there, under the same rules as the base. Mode 0755: the link inside is
/// for everyone to read.
pub fn ensure_shared(dir: &Path, uid: u32) -> Result<(), String> {
    let real = trusted_path(dir, uid)?;
    match make_dir(&real, 0o755) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", real.display())),
    }
    let meta = std::fs::symlink_metadata(&real).map_err(|e| format!("{}: {e}", real.display()))?;
    check_own_dir(&real, &meta, uid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tags_differ_per_base() {
        assert_ne!(tag(Path::new("/a")), tag(Path::new("/b")));
        assert_eq!(tag(Path::new("/a")).len(), 8);
    }

    #[test]
    fn second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base");
        let first = lock(&base).unwrap();
        // flock locks belong to the open file description, so a second
        // open in the same process conflicts just as another process would.
        let err = lock(&base).err().unwrap().to_string();
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(first);
        assert!(lock(&base).is_ok());
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn made_private_and_checked_again() {
        let dir = tempfile::tempdir().unwrap();
        let me = effective_uid();
        let base = dir.path().join("a/b/base");
        ensure(&base, me, None).unwrap();
        assert_eq!(mode(&base), 0o700);
        ensure(&base, me, None).expect("our own base is fine the next time");
        let shared = dir.path().join("shared");
        ensure(&shared, me, Some(unsafe { libc::getegid() })).unwrap();
        assert_eq!(mode(&shared), 0o750);
    }

    #[test]
    fn writable_by_others_or_not_ours_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let me = effective_uid();
        let base = dir.path().join("base");
        std::fs::create_dir(&base).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = ensure(&base, me, None).unwrap_err().to_string();
        assert!(e.contains("writable by others (mode 0777)"), "{e}");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        // As another user would see it: not theirs.
        let e = ensure(&base, me + 1, None).unwrap_err().to_string();
        assert!(e.contains(&format!("owned by uid {me}")), "{e}");
        assert!(e.starts_with("refusing base directory"), "{e}");
    }

    #[test]
    fn the_path_to_it_must_be_ours_too() {
        let dir = tempfile::tempdir().unwrap();
        let me = effective_uid();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = trusted_path(&open.join("base"), me).unwrap_err();
        assert!(e.contains("on its path is writable by others"), "{e}");
        // The sticky bit (as on /tmp) keeps others from replacing entries.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(
            trusted_path(&open.join("base"), me).unwrap(),
            open.join("base")
        );

        // Links are followed, and must be ours or root's.
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        assert_eq!(
            trusted_path(&dir.path().join("link/x/y"), me).unwrap(),
            real.join("x/y")
        );
        std::os::unix::fs::symlink("real", dir.path().join("rel")).unwrap();
        assert_eq!(
            trusted_path(&dir.path().join("rel/../real/z"), me).unwrap(),
            real.join("z")
        );
        if me == 0 {
            let link = dir.path().join("theirs");
            std::os::unix::fs::symlink(&real, &link).unwrap();
            std::os::unix::fs::lchown(&link, Some(65534), None).unwrap();
            let e = trusted_path(&link.join("base"), 0).unwrap_err();
            assert!(e.contains("symbolic link owned by uid 65534"), "{e}");
        }
    }
}
