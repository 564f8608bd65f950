//! The user and group database, through the reentrant libc look-ups: the
//! daemon asks from runtime threads, where `getpwuid`'s static buffer
//! would be shared.

use std::ffi::{CStr, CString};
use std::path::PathBuf;

/// The group whose members may run commands and share the base directory.
pub const GROUP: &str = "minimega";

/// Runs a `get*_r` look-up with a buffer that grows while it is too small.
/// `call` gets the buffer and returns the call's result code and the entry
/// it found, read out of the buffer.
fn with_buffer<T>(mut call: impl FnMut(&mut [u8]) -> (i32, Option<T>)) -> Option<T> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match call(&mut buf) {
            (libc::ERANGE, _) if buf.len() < (1 << 22) => buf.resize(buf.len() * 4, 0),
            (0, found) => return found,
            _ => return None,
        }
    }
}

/// The gid of a group by name.
pub fn group_id(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    with_buffer(|buf| {
        // SAFETY: every pointer is valid for the call; getgrnam_r writes
        // the entry's strings into buf and sets result to grp or null.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        (rc, (!result.is_null()).then_some(grp.gr_gid))
    })
}

/// The home directory of a user id.
pub fn home_dir(uid: u32) -> Option<PathBuf> {
    with_buffer(|buf| {
        // SAFETY: as for getgrnam_r above; pw_dir points into buf.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut pw,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        let home = (!result.is_null() && !pw.pw_dir.is_null()).then(|| {
            // SAFETY: a NUL-terminated string in buf, which is alive here.
            let dir = unsafe { CStr::from_ptr(pw.pw_dir) };
            PathBuf::from(dir.to_string_lossy().into_owned())
        });
        (rc, home)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_ups() {
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_id("no-such-group-here"), None);
        assert_eq!(home_dir(0), Some(PathBuf::from("/root")));
    }
}
