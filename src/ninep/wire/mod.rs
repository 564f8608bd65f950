//! The 9P2000 wire format (intro(5), stat(5)): every message is
//! `size[4] type[1] tag[2] body`, little-endian, `size` counting itself;
//! strings are `len[2]` and UTF-8 bytes; a stat is a structure with its
//! own `size[2]` prefix, wrapped in one more `n[2]` inside Rstat and
//! Twstat. Pure: bytes in, messages out, and back.

mod prim;
mod stat;

pub use stat::{Qid, Stat};

use prim::{R, W};
use thiserror::Error;

pub const VERSION: &str = "9P2000";
pub const NOTAG: u16 = 0xFFFF;
pub const NOFID: u32 = 0xFFFF_FFFF;
/// size[4] type[1] tag[2].
pub const HEADER: usize = 7;
/// What a Tread/Twrite (or Rread) costs besides its data: msize minus
/// this is the most data one message carries.
pub const IOHDRSZ: u32 = 24;
/// The most names one Twalk carries.
pub const MAXWELEM: usize = 16;
/// Below this an msize leaves no room for a stat and some data.
pub const MIN_MSIZE: u32 = 256;

/// Qid types (the top byte of a stat's mode).
pub mod qt {
    pub const DIR: u8 = 0x80;
    pub const APPEND: u8 = 0x40;
    pub const EXCL: u8 = 0x20;
    pub const MOUNT: u8 = 0x10;
    pub const AUTH: u8 = 0x08;
    pub const TMP: u8 = 0x04;
    /// Not in plain 9P2000, but Go's ufs marks symbolic links with it.
    pub const SYMLINK: u8 = 0x02;
    pub const FILE: u8 = 0x00;
}

/// Bits of a stat's mode and of Tcreate's perm.
pub mod dm {
    pub const DIR: u32 = 0x8000_0000;
    pub const APPEND: u32 = 0x4000_0000;
    pub const EXCL: u32 = 0x2000_0000;
    pub const TMP: u32 = 0x0400_0000;
    pub const PERM: u32 = 0o777;
}

/// Topen/Tcreate modes.
pub mod om {
    pub const READ: u8 = 0;
    pub const WRITE: u8 = 1;
    pub const RDWR: u8 = 2;
    pub const EXEC: u8 = 3;
    pub const TRUNC: u8 = 0x10;
    pub const RCLOSE: u8 = 0x40;
}

/// Message types.
mod ty {
    pub const TVERSION: u8 = 100;
    pub const RVERSION: u8 = 101;
    pub const TAUTH: u8 = 102;
    pub const RAUTH: u8 = 103;
    pub const TATTACH: u8 = 104;
    pub const RATTACH: u8 = 105;
    pub const RERROR: u8 = 107;
    pub const TFLUSH: u8 = 108;
    pub const RFLUSH: u8 = 109;
    pub const TWALK: u8 = 110;
    pub const RWALK: u8 = 111;
    pub const TOPEN: u8 = 112;
    pub const ROPEN: u8 = 113;
    pub const TCREATE: u8 = 114;
    pub const RCREATE: u8 = 115;
    pub const TREAD: u8 = 116;
    pub const RREAD: u8 = 117;
    pub const TWRITE: u8 = 118;
    pub const RWRITE: u8 = 119;
    pub const TCLUNK: u8 = 120;
    pub const RCLUNK: u8 = 121;
    pub const TREMOVE: u8 = 122;
    pub const RREMOVE: u8 = 123;
    pub const TSTAT: u8 = 124;
    pub const RSTAT: u8 = 125;
    pub const TWSTAT: u8 = 126;
    pub const RWSTAT: u8 = 127;
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("message cut short")]
    Truncated,
    #[error("message size {0} out of bounds")]
    Size(u64),
    #[error("message says {declared} bytes but has {actual}")]
    SizeMismatch { declared: u32, actual: usize },
    #[error("{0} bytes left over after the message")]
    Trailing(usize),
    #[error("unknown message type {0}")]
    UnknownType(u8),
    #[error("{0} walk elements (at most 16)")]
    TooManyElements(usize),
    #[error("string of {0} bytes (at most 65535)")]
    StringTooLong(usize),
    #[error("stat of {0} bytes (at most 65535)")]
    StatTooLong(usize),
}

/// One 9P2000 message. Terror does not exist; Rerror carries the
/// server's error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Tversion {
        msize: u32,
        version: String,
    },
    Rversion {
        msize: u32,
        version: String,
    },
    Tauth {
        afid: u32,
        uname: String,
        aname: String,
    },
    Rauth {
        aqid: Qid,
    },
    Tattach {
        fid: u32,
        afid: u32,
        uname: String,
        aname: String,
    },
    Rattach {
        qid: Qid,
    },
    Rerror {
        ename: String,
    },
    Tflush {
        oldtag: u16,
    },
    Rflush,
    Twalk {
        fid: u32,
        newfid: u32,
        wnames: Vec<String>,
    },
    Rwalk {
        wqids: Vec<Qid>,
    },
    Topen {
        fid: u32,
        mode: u8,
    },
    Ropen {
        qid: Qid,
        iounit: u32,
    },
    Tcreate {
        fid: u32,
        name: String,
        perm: u32,
        mode: u8,
    },
    Rcreate {
        qid: Qid,
        iounit: u32,
    },
    Tread {
        fid: u32,
        offset: u64,
        count: u32,
    },
    Rread {
        data: Vec<u8>,
    },
    Twrite {
        fid: u32,
        offset: u64,
        data: Vec<u8>,
    },
    Rwrite {
        count: u32,
    },
    Tclunk {
        fid: u32,
    },
    Rclunk,
    Tremove {
        fid: u32,
    },
    Rremove,
    Tstat {
        fid: u32,
    },
    Rstat {
        stat: Stat,
    },
    Twstat {
        fid: u32,
        stat: Stat,
    },
    Rwstat,
}

impl Msg {
    pub fn name(&self) -> &'static str {
        match self {
            Msg::Tversion { .. } => "Tversion",
            Msg::Rversion { .. } => "Rversion",
            Msg::Tauth { .. } => "Tauth",
            Msg::Rauth { .. } => "Rauth",
            Msg::Tattach { .. } => "Tattach",
            Msg::Rattach { .. } => "Rattach",
            Msg::Rerror { .. } => "Rerror",
            Msg::Tflush { .. } => "Tflush",
            Msg::Rflush => "Rflush",
            Msg::Twalk { .. } => "Twalk",
            Msg::Rwalk { .. } => "Rwalk",
            Msg::Topen { .. } => "Topen",
            Msg::Ropen { .. } => "Ropen",
            Msg::Tcreate { .. } => "Tcreate",
            Msg::Rcreate { .. } => "Rcreate",
            Msg::Tread { .. } => "Tread",
            Msg::Rread { .. } => "Rread",
            Msg::Twrite { .. } => "Twrite",
            Msg::Rwrite { .. } => "Rwrite",
            Msg::Tclunk { .. } => "Tclunk",
            Msg::Rclunk => "Rclunk",
            Msg::Tremove { .. } => "Tremove",
            Msg::Rremove => "Rremove",
            Msg::Tstat { .. } => "Tstat",
            Msg::Rstat { .. } => "Rstat",
            Msg::Twstat { .. } => "Twstat",
            Msg::Rwstat => "Rwstat",
        }
    }

    fn ty(&self) -> u8 {
        use ty::*;
        match self {
            Msg::Tversion { .. } => TVERSION,
            Msg::Rversion { .. } => RVERSION,
            Msg::Tauth { .. } => TAUTH,
            Msg::Rauth { .. } => RAUTH,
            Msg::Tattach { .. } => TATTACH,
            Msg::Rattach { .. } => RATTACH,
            Msg::Rerror { .. } => RERROR,
            Msg::Tflush { .. } => TFLUSH,
            Msg::Rflush => RFLUSH,
            Msg::Twalk { .. } => TWALK,
            Msg::Rwalk { .. } => RWALK,
            Msg::Topen { .. } => TOPEN,
            Msg::Ropen { .. } => ROPEN,
            Msg::Tcreate { .. } => TCREATE,
            Msg::Rcreate { .. } => RCREATE,
            Msg::Tread { .. } => TREAD,
            Msg::Rread { .. } => RREAD,
            Msg::Twrite { .. } => TWRITE,
            Msg::Rwrite { .. } => RWRITE,
            Msg::Tclunk { .. } => TCLUNK,
            Msg::Rclunk => RCLUNK,
            Msg::Tremove { .. } => TREMOVE,
            Msg::Rremove => RREMOVE,
            Msg::Tstat { .. } => TSTAT,
            Msg::Rstat { .. } => RSTAT,
            Msg::Twstat { .. } => TWSTAT,
            Msg::Rwstat => RWSTAT,
        }
    }
}

/// The whole frame of one message, size included.
pub fn encode(tag: u16, msg: &Msg) -> Result<Vec<u8>, WireError> {
    let mut out = vec![0u8; 4];
    let mut w = W(&mut out);
    w.u8(msg.ty());
    w.u16(tag);
    match msg {
        Msg::Tversion { msize, version } | Msg::Rversion { msize, version } => {
            w.u32(*msize);
            w.str(version)?;
        }
        Msg::Tauth { afid, uname, aname } => {
            w.u32(*afid);
            w.str(uname)?;
            w.str(aname)?;
        }
        Msg::Rauth { aqid: qid } | Msg::Rattach { qid } => w.qid(qid),
        Msg::Tattach {
            fid,
            afid,
            uname,
            aname,
        } => {
            w.u32(*fid);
            w.u32(*afid);
            w.str(uname)?;
            w.str(aname)?;
        }
        Msg::Rerror { ename } => w.str(ename)?,
        Msg::Tflush { oldtag } => w.u16(*oldtag),
        Msg::Rflush | Msg::Rclunk | Msg::Rremove | Msg::Rwstat => {}
        Msg::Twalk {
            fid,
            newfid,
            wnames,
        } => {
            if wnames.len() > MAXWELEM {
                return Err(WireError::TooManyElements(wnames.len()));
            }
            w.u32(*fid);
            w.u32(*newfid);
            w.u16(wnames.len() as u16);
            for n in wnames {
                w.str(n)?;
            }
        }
        Msg::Rwalk { wqids } => {
            if wqids.len() > MAXWELEM {
                return Err(WireError::TooManyElements(wqids.len()));
            }
            w.u16(wqids.len() as u16);
            for q in wqids {
                w.qid(q);
            }
        }
        Msg::Topen { fid, mode } => {
            w.u32(*fid);
            w.u8(*mode);
        }
        Msg::Ropen { qid, iounit } | Msg::Rcreate { qid, iounit } => {
            w.qid(qid);
            w.u32(*iounit);
        }
        Msg::Tcreate {
            fid,
            name,
            perm,
            mode,
        } => {
            w.u32(*fid);
            w.str(name)?;
            w.u32(*perm);
            w.u8(*mode);
        }
        Msg::Tread { fid, offset, count } => {
            w.u32(*fid);
            w.u64(*offset);
            w.u32(*count);
        }
        Msg::Rread { data } => w.data(data)?,
        Msg::Twrite { fid, offset, data } => {
            w.u32(*fid);
            w.u64(*offset);
            w.data(data)?;
        }
        Msg::Rwrite { count } => w.u32(*count),
        Msg::Tclunk { fid } | Msg::Tremove { fid } | Msg::Tstat { fid } => w.u32(*fid),
        Msg::Rstat { stat } => w.stat(stat)?,
        Msg::Twstat { fid, stat } => {
            w.u32(*fid);
            w.stat(stat)?;
        }
    }
    let size = u32::try_from(out.len()).map_err(|_| WireError::Size(out.len() as u64))?;
    out[..4].copy_from_slice(&size.to_le_bytes());
    Ok(out)
}

/// The length of the frame at the start of a stream once its size field
/// is there (`None` before), refused outside `HEADER..=max`.
pub fn frame_len(buf: &[u8], max: u32) -> Result<Option<usize>, WireError> {
    let Some(head) = buf.get(..4) else {
        return Ok(None);
    };
    let size = u32::from_le_bytes(head.try_into().unwrap());
    if (size as usize) < HEADER || size > max {
        return Err(WireError::Size(size as u64));
    }
    Ok(Some(size as usize))
}

/// The tag of a frame too broken to decode, to answer it with an Rerror.
pub fn peek_tag(frame: &[u8]) -> Option<u16> {
    frame.get(5..7).map(|t| u16::from_le_bytes([t[0], t[1]]))
}

/// One whole frame (as [`frame_len`] delimits it): its tag and message.
pub fn decode(frame: &[u8]) -> Result<(u16, Msg), WireError> {
    use ty::*;
    let mut r = R::new(frame);
    let size = r.u32()?;
    if size as usize != frame.len() {
        return Err(WireError::SizeMismatch {
            declared: size,
            actual: frame.len(),
        });
    }
    let t = r.u8()?;
    let tag = r.u16()?;
    let msg = match t {
        TVERSION => Msg::Tversion {
            msize: r.u32()?,
            version: r.str()?,
        },
        RVERSION => Msg::Rversion {
            msize: r.u32()?,
            version: r.str()?,
        },
        TAUTH => Msg::Tauth {
            afid: r.u32()?,
            uname: r.str()?,
            aname: r.str()?,
        },
        RAUTH => Msg::Rauth { aqid: r.qid()? },
        TATTACH => Msg::Tattach {
            fid: r.u32()?,
            afid: r.u32()?,
            uname: r.str()?,
            aname: r.str()?,
        },
        RATTACH => Msg::Rattach { qid: r.qid()? },
        RERROR => Msg::Rerror { ename: r.str()? },
        TFLUSH => Msg::Tflush { oldtag: r.u16()? },
        RFLUSH => Msg::Rflush,
        TWALK => {
            let fid = r.u32()?;
            let newfid = r.u32()?;
            let n = r.u16()? as usize;
            if n > MAXWELEM {
                return Err(WireError::TooManyElements(n));
            }
            let wnames = (0..n).map(|_| r.str()).collect::<Result<_, _>>()?;
            Msg::Twalk {
                fid,
                newfid,
                wnames,
            }
        }
        RWALK => {
            let n = r.u16()? as usize;
            if n > MAXWELEM {
                return Err(WireError::TooManyElements(n));
            }
            let wqids = (0..n).map(|_| r.qid()).collect::<Result<_, _>>()?;
            Msg::Rwalk { wqids }
        }
        TOPEN => Msg::Topen {
            fid: r.u32()?,
            mode: r.u8()?,
        },
        ROPEN => Msg::Ropen {
            qid: r.qid()?,
            iounit: r.u32()?,
        },
        TCREATE => Msg::Tcreate {
            fid: r.u32()?,
            name: r.str()?,
            perm: r.u32()?,
            mode: r.u8()?,
        },
        RCREATE => Msg::Rcreate {
            qid: r.qid()?,
            iounit: r.u32()?,
        },
        TREAD => Msg::Tread {
            fid: r.u32()?,
            offset: r.u64()?,
            count: r.u32()?,
        },
        RREAD => Msg::Rread { data: r.data()? },
        TWRITE => Msg::Twrite {
            fid: r.u32()?,
            offset: r.u64()?,
            data: r.data()?,
        },
        RWRITE => Msg::Rwrite { count: r.u32()? },
        TCLUNK => Msg::Tclunk { fid: r.u32()? },
        RCLUNK => Msg::Rclunk,
        TREMOVE => Msg::Tremove { fid: r.u32()? },
        RREMOVE => Msg::Rremove,
        TSTAT => Msg::Tstat { fid: r.u32()? },
        RSTAT => Msg::Rstat { stat: r.stat()? },
        TWSTAT => Msg::Twstat {
            fid: r.u32()?,
            stat: r.stat()?,
        },
        RWSTAT => Msg::Rwstat,
        other => return Err(WireError::UnknownType(other)),
    };
    match r.left() {
        0 => Ok((tag, msg)),
        n => Err(WireError::Trailing(n)),
    }
}

/// The version a server answers: "9P2000" to any 9P2000 dialect (what
/// follows a period is the client's wish, intro(5)), else "unknown".
pub fn version_reply(client: &str) -> &'static str {
    match client.split('.').next() {
        Some(VERSION) => VERSION,
        _ => "unknown",
    }
}

/// The msize both sides keep: the smaller, if it is big enough.
pub fn negotiate(ours: u32, theirs: u32) -> Option<u32> {
    let m = ours.min(theirs);
    (m >= MIN_MSIZE).then_some(m)
}

#[cfg(test)]
mod tests;
