//! Durable writes, shared by every room that keeps state under the base
//! directory (VM records, networks.json, cc books, ...): a file is
//! replaced whole, written beside under a name of its own, synced, renamed
//! over the old one and its directory synced, so a crash leaves the old
//! copy or the new one, never a torn one. A write that fails (a full disk)
//! removes what it wrote and says why in one line, naming what was being
//! saved: `no space left on device while saving VM b1's state`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use thiserror::Error;

/// A save that did not happen; the old copy, if any, is untouched.
#[derive(Debug, Error)]
#[error("{} while saving {what}", cause(.source))]
pub struct SaveError {
    /// What was being saved, as a user knows it (`VM b1's state`).
    pub what: String,
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// For the several commands that wait on one save (an io::Error is not
/// Clone; its kind, code and words are what matter).
impl Clone for SaveError {
    fn clone(&self) -> SaveError {
        let source = match self.source.raw_os_error() {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => std::io::Error::new(self.source.kind(), self.source.to_string()),
        };
        SaveError {
            what: self.what.clone(),
            path: self.path.clone(),
            source,
        }
    }
}

impl SaveError {
    pub fn is_full(&self) -> bool {
        matches!(
            self.source.raw_os_error(),
            Some(libc::ENOSPC) | Some(libc::EDQUOT)
        )
    }
}

/// The system's words for an error, as a phrase: `no space left on
/// device`, without Rust's `(os error 28)`.
pub fn cause(e: &std::io::Error) -> String {
    let text = match e.raw_os_error() {
        Some(code) => {
            let full = std::io::Error::from_raw_os_error(code).to_string();
            match full.rfind(" (os error") {
                Some(i) => full[..i].to_string(),
                None => full,
            }
        }
        None => e.to_string(),
    };
    let mut chars = text.chars();
    match chars.next() {
        // Lower-case only a capitalised word, never an acronym (`EOF`).
        Some(c) if c.is_uppercase() && chars.clone().next().is_some_and(char::is_lowercase) => {
            c.to_lowercase().chain(chars).collect()
        }
        _ => text,
    }
}

/// The temporary name a write of `path` uses: hidden, beside it, unique in
/// this process, so concurrent writers never share one.
fn temp_of(path: &Path) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = N.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// True for a name [`write`] gives its temporary files, or an earlier
/// version gave them (`networks.json.tmp`).
pub fn is_temp(name: &str) -> bool {
    name.ends_with(".tmp") && (name.starts_with('.') || name.ends_with(".json.tmp"))
}

/// Replaces `path` with `data` (see the module doc). `what` names the
/// file in the error. The directory must exist.
pub fn write(path: &Path, data: &[u8], what: &str) -> Result<(), SaveError> {
    let fail = |source| SaveError {
        what: what.to_string(),
        path: path.to_path_buf(),
        source,
    };
    if let Some(e) = crate::fault::write_error() {
        return Err(fail(e));
    }
    let tmp = temp_of(path);
    let r = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_data()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = r {
        // Never left behind: a full disk keeps what little it has.
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    // The rename itself is on disk once the directory is; failing that is
    // no reason to call the write failed (the new copy is in place).
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// [`write`] of a value as pretty JSON.
pub fn write_json(path: &Path, value: &impl serde::Serialize, what: &str) -> Result<(), SaveError> {
    let data = serde_json::to_vec_pretty(value).map_err(|e| SaveError {
        what: what.to_string(),
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    write(path, &data, what)
}

/// Removes the temporary files a crash in the middle of a write left in
/// `dir` (start-up calls it on each directory it keeps state in).
pub fn sweep(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        if is_temp(&name.to_string_lossy()) && e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_whole_and_leaves_nothing_beside() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        write(&p, b"one", "x").unwrap();
        write(&p, b"two", "x").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(names(d.path()), ["state.json"]);
    }

    #[test]
    fn a_failed_write_removes_its_temporary_file_and_names_the_cause() {
        let d = tempfile::tempdir().unwrap();
        // A directory where the file should be: the rename fails after
        // the temporary file was written.
        let p = d.path().join("book.json");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("keep"), "x").unwrap();
        let e = write(&p, b"data", "the cc book of namespace x").unwrap_err();
        assert!(
            e.to_string()
                .ends_with(" while saving the cc book of namespace x"),
            "{e}"
        );
        assert_eq!(names(d.path()), ["book.json"]);
        // A missing directory: nothing is made.
        let e = write(&d.path().join("no/such"), b"", "y").unwrap_err();
        assert_eq!(e.to_string(), "no such file or directory while saving y");
    }

    #[test]
    fn causes_read_as_phrases() {
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(cause(&full), "no space left on device");
        let e = SaveError {
            what: "VM b1's state".into(),
            path: "/x".into(),
            source: full,
        };
        assert!(e.is_full());
        assert_eq!(
            e.to_string(),
            "no space left on device while saving VM b1's state"
        );
        assert_eq!(cause(&std::io::Error::other("EOF here")), "EOF here");
    }

    #[test]
    fn sweep_takes_only_temporary_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(".state.json.9.1.tmp"), "").unwrap();
        std::fs::write(d.path().join("state.json"), "{}").unwrap();
        std::fs::write(d.path().join("notes.tmp"), "").unwrap();
        std::fs::write(d.path().join("networks.json.tmp"), "").unwrap();
        sweep(d.path());
        assert_eq!(names(d.path()), ["notes.tmp", "state.json"]);
    }
}
