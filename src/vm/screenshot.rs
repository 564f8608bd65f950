//! `vm screenshot`: QEMU's `screendump` writes a PPM; this scales it to a
//! maximum dimension and encodes it as PNG. Pure, so tested on made-up
//! images. The PNG is uncompressed (stored deflate blocks): screenshots
//! are small and this keeps the daemon free of an image library.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    /// RGB, row by row.
    pub rgb: Vec<u8>,
}

/// Parses a binary PPM (P6, 8-bit).
pub fn parse_ppm(data: &[u8]) -> Result<Image, String> {
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while i < data.len() && data[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < data.len() && data[i] == b'#' {
            while i < data.len() && data[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        while i < data.len() && !data[i].is_ascii_whitespace() {
            i += 1;
        }
        if start == i {
            return Err("truncated PPM header".into());
        }
        fields.push(String::from_utf8_lossy(&data[start..i]).to_string());
    }
    i += 1; // the single whitespace after maxval
    if fields[0] != "P6" {
        return Err(format!("not a binary PPM (magic {})", fields[0]));
    }
    let num = |s: &str| {
        s.parse::<usize>()
            .map_err(|_| format!("bad PPM number `{s}`"))
    };
    let (width, height, max) = (num(&fields[1])?, num(&fields[2])?, num(&fields[3])?);
    if max != 255 {
        return Err(format!("unsupported PPM depth {max}"));
    }
    let len = width * height * 3;
    let rgb = data.get(i..i + len).ok_or("truncated PPM data")?.to_vec();
    Ok(Image { width, height, rgb })
}

impl Image {
    /// Scales down (nearest neighbour) so neither side exceeds `max`;
    /// 0 or a larger max leaves the image as it is.
    pub fn fit(self, max: usize) -> Image {
        let big = self.width.max(self.height);
        if max == 0 || big <= max {
            return self;
        }
        let w = (self.width * max / big).max(1);
        let h = (self.height * max / big).max(1);
        let mut rgb = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            let sy = y * self.height / h;
            for x in 0..w {
                let sx = x * self.width / w;
                let o = (sy * self.width + sx) * 3;
                rgb.extend_from_slice(&self.rgb[o..o + 3]);
            }
        }
        Image {
            width: w,
            height: h,
            rgb,
        }
    }

    pub fn to_ppm(&self) -> Vec<u8> {
        let mut out = format!("P6\n{} {}\n255\n", self.width, self.height).into_bytes();
        out.extend_from_slice(&self.rgb);
        out
    }

    pub fn to_png(&self) -> Vec<u8> {
        let mut raw = Vec::with_capacity((self.width * 3 + 1) * self.height);
        for row in self.rgb.chunks(self.width * 3) {
            raw.push(0); // filter: none
            raw.extend_from_slice(row);
        }
        let mut png = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&(self.width as u32).to_be_bytes());
        ihdr.extend_from_slice(&(self.height as u32).to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
        chunk(&mut png, b"IHDR", &ihdr);
        chunk(&mut png, b"IDAT", &zlib_stored(&raw));
        chunk(&mut png, b"IEND", &[]);
        png
    }
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let mut blocks = data.chunks(65_535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(b) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = b.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(b);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + x as u32) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

/// Standard base64 with padding: how Go's JSON encoder writes the bytes
/// of a screenshot into a response's `Data`.
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ABC[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_as_go_encodes_bytes() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(&[0x89, b'P', b'N', b'G']), "iVBORw==");
    }

    use super::*;

    fn image(w: usize, h: usize) -> Image {
        let rgb = (0..w * h * 3).map(|i| (i % 251) as u8).collect();
        Image {
            width: w,
            height: h,
            rgb,
        }
    }

    #[test]
    fn ppm_round_trip_with_comment() {
        let img = image(3, 2);
        assert_eq!(parse_ppm(&img.to_ppm()).unwrap(), img);
        let mut with_comment = b"P6\n# made by qemu\n3 2\n255\n".to_vec();
        with_comment.extend_from_slice(&img.rgb);
        assert_eq!(parse_ppm(&with_comment).unwrap(), img);
        assert!(parse_ppm(b"P3\n1 1\n255\n").is_err());
        assert!(parse_ppm(b"P6\n2 2\n255\nabc").is_err());
    }

    #[test]
    fn fit_keeps_aspect() {
        let img = image(640, 480).fit(100);
        assert_eq!((img.width, img.height), (100, 75));
        assert_eq!(img.rgb.len(), 100 * 75 * 3);
        assert_eq!(image(10, 10).fit(0).width, 10);
    }

    #[test]
    fn png_structure_and_checksums() {
        assert_eq!(crc32(b"IEND"), 0xae42_6082);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        let png = image(2, 2).to_png();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND");
    }
}
