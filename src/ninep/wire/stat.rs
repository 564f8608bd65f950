//! stat(5)'s directory entry and the qid in it.

use super::prim::{R, W};
use super::{dm, qt, WireError};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Qid {
    pub ty: u8,
    pub version: u32,
    pub path: u64,
}

impl Qid {
    pub fn is_dir(&self) -> bool {
        self.ty & qt::DIR != 0
    }
}

/// stat(5)'s directory entry. `ty` and `dev` are for kernel use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stat {
    pub ty: u16,
    pub dev: u32,
    pub qid: Qid,
    pub mode: u32,
    pub atime: u32,
    pub mtime: u32,
    pub length: u64,
    pub name: String,
    pub uid: String,
    pub gid: String,
    pub muid: String,
}

/// The fixed part of a stat after its size: type, dev, qid, mode, atime,
/// mtime, length, and the four strings' lengths.
const STAT_FIXED: usize = 2 + 4 + 13 + 4 + 4 + 4 + 8 + 4 * 2;

impl Stat {
    /// The Twstat that changes nothing: each field at its "don't touch"
    /// value (all ones, empty strings); set only what should change.
    pub fn dont_touch() -> Stat {
        Stat {
            ty: !0,
            dev: !0,
            qid: Qid {
                ty: !0,
                version: !0,
                path: !0,
            },
            mode: !0,
            atime: !0,
            mtime: !0,
            length: !0,
            name: String::new(),
            uid: String::new(),
            gid: String::new(),
            muid: String::new(),
        }
    }

    pub fn is_dir(&self) -> bool {
        self.mode & dm::DIR != 0
    }

    /// Bytes this stat takes on the wire, its size[2] included.
    pub fn wire_len(&self) -> usize {
        2 + STAT_FIXED + self.name.len() + self.uid.len() + self.gid.len() + self.muid.len()
    }

    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        let body = self.wire_len() - 2;
        let size = u16::try_from(body).map_err(|_| WireError::StatTooLong(body))?;
        let mut w = W(out);
        w.u16(size);
        w.u16(self.ty);
        w.u32(self.dev);
        w.qid(&self.qid);
        w.u32(self.mode);
        w.u32(self.atime);
        w.u32(self.mtime);
        w.u64(self.length);
        for s in [&self.name, &self.uid, &self.gid, &self.muid] {
            w.str(s)?;
        }
        Ok(())
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, WireError> {
        let mut v = Vec::with_capacity(self.wire_len());
        self.encode(&mut v)?;
        Ok(v)
    }

    /// The stat at the start of `buf` and the bytes it took. Bytes its size
    /// counts past the four strings are skipped: 9P2000.u servers append
    /// fields there.
    pub fn decode(buf: &[u8]) -> Result<(Stat, usize), WireError> {
        let mut r = R::new(buf);
        let size = r.u16()? as usize;
        let mut r = R::new(r.take(size)?);
        let st = Stat {
            ty: r.u16()?,
            dev: r.u32()?,
            qid: r.qid()?,
            mode: r.u32()?,
            atime: r.u32()?,
            mtime: r.u32()?,
            length: r.u64()?,
            name: r.str()?,
            uid: r.str()?,
            gid: r.str()?,
            muid: r.str()?,
        };
        Ok((st, 2 + size))
    }

    /// The stats a directory read returns, back to back.
    pub fn decode_all(mut buf: &[u8]) -> Result<Vec<Stat>, WireError> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            let (st, n) = Stat::decode(buf)?;
            out.push(st);
            buf = &buf[n..];
        }
        Ok(out)
    }
}
