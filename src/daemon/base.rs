//! The base directory and the lock that makes one daemon its owner.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
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
}

/// Held for the daemon's lifetime; the lock goes with the process, so a
/// crashed daemon never blocks the next one.
pub struct BaseLock {
    _file: File,
    pub path: PathBuf,
}

pub fn lock(base: &Path) -> Result<BaseLock, BaseError> {
    std::fs::create_dir_all(base).map_err(|source| BaseError::Create {
        path: base.to_path_buf(),
        source,
    })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path()).unwrap();
        // flock locks belong to the open file description, so a second
        // open in the same process conflicts just as another process would.
        let err = lock(dir.path()).err().unwrap().to_string();
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(first);
        assert!(lock(dir.path()).is_ok());
    }
}
