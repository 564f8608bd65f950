//! Gob's integers: an unsigned value below 128 is one byte; a larger one
//! is the negated count of its big-endian bytes, then those bytes. A
//! signed value is folded into an unsigned one (sign in the low bit).

use super::GobError;

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8, GobError> {
        let b = *self.buf.get(self.pos).ok_or(GobError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    pub fn uint(&mut self) -> Result<u64, GobError> {
        let b = self.byte()?;
        if b < 0x80 {
            return Ok(b as u64);
        }
        let n = (b as i8).unsigned_abs() as usize;
        if n > 8 {
            return Err(GobError::IntOverflow);
        }
        let bytes = self.take(n)?;
        Ok(bytes.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64))
    }

    pub fn int(&mut self) -> Result<i64, GobError> {
        let u = self.uint()?;
        Ok(if u & 1 == 1 {
            !((u >> 1) as i64)
        } else {
            (u >> 1) as i64
        })
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], GobError> {
        let end = self.pos.checked_add(n).ok_or(GobError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(GobError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    /// A length that must fit in what is left, each item taking at least
    /// `min` bytes: a peer cannot make us reserve more than it sent.
    pub fn len(&mut self, min: usize) -> Result<usize, GobError> {
        let n = self.uint()?;
        if n > (self.remaining() / min.max(1)) as u64 {
            return Err(GobError::Length(n));
        }
        Ok(n as usize)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], GobError> {
        let n = self.len(1)?;
        self.take(n)
    }
}

pub fn put_uint(out: &mut Vec<u8>, u: u64) {
    if u < 0x80 {
        out.push(u as u8);
        return;
    }
    let be = u.to_be_bytes();
    let skip = be.iter().take_while(|b| **b == 0).count();
    out.push((-((8 - skip) as i8)) as u8);
    out.extend_from_slice(&be[skip..]);
}

pub fn put_int(out: &mut Vec<u8>, i: i64) {
    let u = if i < 0 {
        ((!i as u64) << 1) | 1
    } else {
        (i as u64) << 1
    };
    put_uint(out, u);
}

pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Go sends a float64 as the byte-reversed bits, so small exponents make
/// short integers.
pub fn float_bits(f: f64) -> u64 {
    f.to_bits().swap_bytes()
}

pub fn bits_float(u: u64) -> f64 {
    f64::from_bits(u.swap_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc_u(u: u64) -> Vec<u8> {
        let mut v = Vec::new();
        put_uint(&mut v, u);
        v
    }

    fn enc_i(i: i64) -> Vec<u8> {
        let mut v = Vec::new();
        put_int(&mut v, i);
        v
    }

    #[test]
    fn the_examples_of_gobs_documentation() {
        // "0 is transmitted as (00), 7 as (07) and 256 as (FE 01 00)"
        assert_eq!(enc_u(0), [0x00]);
        assert_eq!(enc_u(7), [0x07]);
        assert_eq!(enc_u(256), [0xFE, 0x01, 0x00]);
        // "-129=^128=(^256>>1) encodes as (FE 01 01)"
        assert_eq!(enc_i(-129), [0xFE, 0x01, 0x01]);
        assert_eq!(enc_i(-1), [0x01]);
        assert_eq!(enc_i(1), [0x02]);
        // 17.0 is (FE 31 40)
        assert_eq!(enc_u(float_bits(17.0)), [0xFE, 0x31, 0x40]);
        assert_eq!(
            enc_u(u64::MAX),
            [0xF8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
    }

    #[test]
    fn bad_integers_are_errors() {
        assert_eq!(Reader::new(&[]).uint(), Err(GobError::Truncated));
        assert_eq!(Reader::new(&[0xFE, 0x01]).uint(), Err(GobError::Truncated));
        // Nine bytes do not fit 64 bits.
        assert_eq!(Reader::new(&[0xF7; 10]).uint(), Err(GobError::IntOverflow));
        assert_eq!(Reader::new(&[0x05, 1, 2]).bytes(), Err(GobError::Length(5)));
    }

    #[test]
    fn extremes_round_trip() {
        for i in [i64::MIN, i64::MAX, 0, -1, 1, 127, -128, 1 << 40] {
            assert_eq!(Reader::new(&enc_i(i)).int(), Ok(i), "{i}");
        }
    }
}
