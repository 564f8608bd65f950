//! Little-endian integers, counted strings and data, and the stat
//! behind its extra count, as every 9P message is made of them.

use super::{Qid, Stat, WireError};

pub struct W<'a>(pub &'a mut Vec<u8>);

impl W<'_> {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn str(&mut self, s: &str) -> Result<(), WireError> {
        let n = u16::try_from(s.len()).map_err(|_| WireError::StringTooLong(s.len()))?;
        self.u16(n);
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
    pub fn qid(&mut self, q: &Qid) {
        self.u8(q.ty);
        self.u32(q.version);
        self.u64(q.path);
    }
    pub fn data(&mut self, d: &[u8]) -> Result<(), WireError> {
        let n = u32::try_from(d.len()).map_err(|_| WireError::Size(d.len() as u64))?;
        self.u32(n);
        self.0.extend_from_slice(d);
        Ok(())
    }
    /// Rstat and Twstat: the stat behind one more count of its bytes.
    pub fn stat(&mut self, st: &Stat) -> Result<(), WireError> {
        let n = st.wire_len();
        self.u16(u16::try_from(n).map_err(|_| WireError::StatTooLong(n))?);
        st.encode(self.0)
    }
}

pub struct R<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> R<'a> {
    pub fn new(buf: &'a [u8]) -> R<'a> {
        R { buf, pos: 0 }
    }
    pub fn left(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.left() < n {
            return Err(WireError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    pub fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    /// Lossy: a Unix name need not be UTF-8, and Go's server sends it as
    /// it is; a listing with such a name still lists.
    pub fn str(&mut self) -> Result<String, WireError> {
        let n = self.u16()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    pub fn qid(&mut self) -> Result<Qid, WireError> {
        Ok(Qid {
            ty: self.u8()?,
            version: self.u32()?,
            path: self.u64()?,
        })
    }
    pub fn data(&mut self) -> Result<Vec<u8>, WireError> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    pub fn stat(&mut self) -> Result<Stat, WireError> {
        let n = self.u16()? as usize;
        let (st, used) = Stat::decode(self.take(n)?)?;
        match n - used {
            0 => Ok(st),
            extra => Err(WireError::Trailing(extra)),
        }
    }
}
