//! MurmurHash3 x64_128 (seed 0), of which minimega's `-hashfiles` shows
//! the first 64 bits as 16 hex digits in `file list`'s `hash` column.
//! Streaming, so a multi-gigabyte image is hashed in constant memory.

const C1: u64 = 0x87c3_7b91_1142_53d5;
const C2: u64 = 0x4cf5_ad43_2745_937f;

#[derive(Debug, Default, Clone)]
pub struct Murmur3 {
    h1: u64,
    h2: u64,
    len: u64,
    tail: [u8; 16],
    tail_len: usize,
}

fn fmix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

fn mix_k1(k1: u64) -> u64 {
    k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2)
}

fn mix_k2(k2: u64) -> u64 {
    k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1)
}

impl Murmur3 {
    pub fn new() -> Murmur3 {
        Murmur3::default()
    }

    fn block(&mut self, b: &[u8; 16]) {
        let k1 = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
        let k2 = u64::from_le_bytes(b[8..].try_into().expect("8 bytes"));
        self.h1 ^= mix_k1(k1);
        self.h1 = self
            .h1
            .rotate_left(27)
            .wrapping_add(self.h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        self.h2 ^= mix_k2(k2);
        self.h2 = self
            .h2
            .rotate_left(31)
            .wrapping_add(self.h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.tail_len > 0 {
            let take = (16 - self.tail_len).min(data.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&data[..take]);
            self.tail_len += take;
            data = &data[take..];
            if self.tail_len < 16 {
                return;
            }
            let t = self.tail;
            self.block(&t);
            self.tail_len = 0;
        }
        let mut chunks = data.chunks_exact(16);
        for c in &mut chunks {
            self.block(c.try_into().expect("16 bytes"));
        }
        let rest = chunks.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    /// The first half of the 128-bit hash (minimega's `New64().Sum64()`).
    pub fn finish64(&self) -> u64 {
        let (mut h1, mut h2) = (self.h1, self.h2);
        let t = &self.tail[..self.tail_len];
        let mut k1 = 0u64;
        let mut k2 = 0u64;
        for (i, b) in t.iter().enumerate() {
            if i < 8 {
                k1 |= (*b as u64) << (8 * i);
            } else {
                k2 |= (*b as u64) << (8 * (i - 8));
            }
        }
        if t.len() > 8 {
            h2 ^= mix_k2(k2);
        }
        if !t.is_empty() {
            h1 ^= mix_k1(k1);
        }
        h1 ^= self.len;
        h2 ^= self.len;
        h1 = h1.wrapping_add(h2);
        h2 = h2.wrapping_add(h1);
        h1 = fmix(h1);
        h2 = fmix(h2);
        h1.wrapping_add(h2)
    }
}

/// A file's hash as `file list` shows it; symbolic links are followed.
pub fn hash_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Murmur3::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:016x}", h.finish64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(data: &[u8]) -> String {
        let mut h = Murmur3::new();
        h.update(data);
        format!("{:016x}", h.finish64())
    }

    /// Values printed by the murmur3 package minimega 3.1.0 vendors
    /// (github.com/twmb/murmur3, `New64().Sum(nil)`).
    #[test]
    fn the_hashes_minimega_prints() {
        assert_eq!(hex(b""), "0000000000000000");
        assert_eq!(hex(b"hello"), "cbd8a7b341bd9b02");
        assert_eq!(
            hex(b"The quick brown fox jumps over the lazy dog"),
            "e34bbc7bbc071b6c"
        );
        assert_eq!(
            hex(b"0123456789abcdef0123456789abcdef!"),
            "1d63dd4591920335"
        );
    }

    #[test]
    fn any_chunking_gives_the_same_hash() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = hex(&data);
        for step in [1, 3, 15, 16, 17, 100] {
            let mut h = Murmur3::new();
            for c in data.chunks(step) {
                h.update(c);
            }
            assert_eq!(format!("{:016x}", h.finish64()), whole, "step {step}");
        }
    }
}
