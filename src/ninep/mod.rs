//! 9P2000, the file protocol behind `cc mount`: minimega's agent serves
//! its guest's whole file system with it, the bytes riding in cc UFS
//! messages, and the host mounts that. Our kernel has no 9p module, so
//! the host side is a 9P2000 client served to the kernel through FUSE.
//!
//! - [`wire`]: the messages and the stat structure, pure
//! - [`server`]: a blocking server exporting a host directory (our agent's)
//! - [`client`]: a blocking client (interoperates with Go's Harvey-OS/ninep
//!   ufs, the stock agent's server)
//! - [`fuse`]: the client's tree as a FUSE file system
//!
//! The bottom of the layering: this room uses nothing else of the crate.

pub mod client;
pub mod fuse;
mod inodes;
pub mod server;
pub mod wire;

pub use wire::{Qid, Stat, WireError};

use std::io::{self, Read};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("9P connection: {0}")]
    Io(#[from] io::Error),
    #[error("9P message: {0}")]
    Wire(#[from] WireError),
    /// The server's Rerror, as it said it.
    #[error("{0}")]
    Remote(String),
    #[error("9P: {got} in answer to {sent}")]
    Unexpected {
        sent: &'static str,
        got: &'static str,
    },
    #[error("9P: answer tagged {got}, expected {want}")]
    Tag { want: u16, got: u16 },
    #[error("9P: the server speaks {0:?}, not 9P2000")]
    Version(String),
    #[error("9P: msize {0} is too small")]
    Msize(u32),
    #[error("FUSE: {0}")]
    Fuse(io::Error),
}

impl Error {
    /// What a file operation that failed so should return.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Remote(s) => errno_of(s),
            Error::Io(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::NotConnected
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::ConnectionReset
                ) =>
            {
                libc::ENOTCONN
            }
            _ => libc::EIO,
        }
    }
}

/// The errno an Rerror string stands for. 9P2000 errors are text: Plan 9
/// names ("file does not exist"), Go's ufs passes on Go's error text
/// ("open /x: no such file or directory", "ENOENT"), ours strerror(3)'s.
pub fn errno_of(ename: &str) -> i32 {
    let e = ename.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| e.contains(w));
    if has(&["no such file", "does not exist", "not found", "enoent"]) {
        libc::ENOENT
    } else if has(&["not empty", "enotempty"]) {
        libc::ENOTEMPTY
    } else if has(&["not a directory", "enotdir"]) {
        libc::ENOTDIR
    } else if has(&["is a directory", "eisdir"]) {
        libc::EISDIR
    } else if has(&["exists", "eexist"]) {
        libc::EEXIST
    } else if has(&["permission denied", "eacces"]) {
        libc::EACCES
    } else if has(&["not permitted", "eperm"]) {
        libc::EPERM
    } else if has(&["read-only file system", "erofs"]) {
        libc::EROFS
    } else if has(&["no space", "enospc"]) {
        libc::ENOSPC
    } else if has(&["cross-device", "exdev"]) {
        libc::EXDEV
    } else if has(&["name too long"]) {
        libc::ENAMETOOLONG
    } else if has(&["invalid argument", "einval"]) {
        libc::EINVAL
    } else if has(&["text file busy"]) {
        libc::ETXTBSY
    } else if has(&["resource busy"]) {
        libc::EBUSY
    } else if has(&["too many open files"]) {
        libc::EMFILE
    } else {
        libc::EIO
    }
}

/// The next frame on a stream, of at most `max` bytes; `None` at the end
/// of the stream between two frames.
pub fn read_frame(r: &mut impl Read, max: u32) -> Result<Option<Vec<u8>>, Error> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = wire::frame_len(&head, max)?.unwrap_or(4);
    let mut frame = vec![0u8; len];
    frame[..4].copy_from_slice(&head);
    r.read_exact(&mut frame[4..])?;
    Ok(Some(frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts_of_either_server_map_to_errnos() {
        for (text, want) in [
            ("file does not exist", libc::ENOENT),
            ("does not exist", libc::ENOENT),
            ("ENOENT", libc::ENOENT),
            ("open /x: no such file or directory", libc::ENOENT),
            ("No such file or directory", libc::ENOENT),
            ("remove /tmp/d: directory not empty", libc::ENOTEMPTY),
            ("Directory not empty", libc::ENOTEMPTY),
            ("is a directory", libc::EISDIR),
            ("Not a directory", libc::ENOTDIR),
            ("open /x: file exists", libc::EEXIST),
            ("File exists", libc::EEXIST),
            ("Permission denied", libc::EACCES),
            ("Operation not permitted", libc::EPERM),
            ("Read-only file system", libc::EROFS),
            ("Invalid cross-device link", libc::EXDEV),
            ("Dispatch: Tauth not supported", libc::EIO),
        ] {
            assert_eq!(errno_of(text), want, "{text}");
        }
        assert_eq!(Error::Remote("ENOENT".into()).errno(), libc::ENOENT);
        let eof = Error::Io(io::ErrorKind::UnexpectedEof.into());
        assert_eq!(eof.errno(), libc::ENOTCONN);
    }

    #[test]
    fn frames_are_read_whole_and_the_end_is_clean_only_between_them() {
        let a = wire::encode(1, &wire::Msg::Rflush).unwrap();
        let b = wire::encode(2, &wire::Msg::Rclunk).unwrap();
        let stream = [a.clone(), b.clone()].concat();
        let mut r = &stream[..];
        assert_eq!(read_frame(&mut r, 8192).unwrap(), Some(a));
        assert_eq!(read_frame(&mut r, 8192).unwrap(), Some(b));
        assert!(read_frame(&mut r, 8192).unwrap().is_none());
        let cut = &stream[..5];
        assert!(read_frame(&mut &cut[..], 8192).is_err());
        assert!(read_frame(&mut &stream[..2], 8192).is_err());
        assert!(matches!(
            read_frame(&mut &[0xff, 0xff, 0, 0][..], 8192),
            Err(Error::Wire(WireError::Size(65535)))
        ));
    }
}
