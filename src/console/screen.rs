//! A screen's picture: 8-bit RGB, row by row. What the RFB client keeps
//! its framebuffer in and what WaitForIt searches.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum PngError {
    #[error("PNG encoding: {0}")]
    Encode(#[from] png::EncodingError),
}

#[derive(Clone, PartialEq, Eq)]
pub struct Screen {
    width: u16,
    height: u16,
    rgb: Vec<u8>,
}

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Screen({}x{})", self.width, self.height)
    }
}

impl Screen {
    /// Black.
    pub fn new(width: u16, height: u16) -> Screen {
        Screen {
            width,
            height,
            rgb: vec![0; usize::from(width) * usize::from(height) * 3],
        }
    }

    /// None unless `rgb` holds exactly `width * height` pixels.
    pub fn from_rgb(width: u16, height: u16, rgb: Vec<u8>) -> Option<Screen> {
        (rgb.len() == usize::from(width) * usize::from(height) * 3).then_some(Screen {
            width,
            height,
            rgb,
        })
    }

    pub fn width(&self) -> u16 {
        self.width
    }

    pub fn height(&self) -> u16 {
        self.height
    }

    pub fn rgb(&self) -> &[u8] {
        &self.rgb
    }

    fn at(&self, x: u16, y: u16) -> usize {
        (usize::from(y) * usize::from(self.width) + usize::from(x)) * 3
    }

    /// Panics outside the screen.
    pub fn pixel(&self, x: u16, y: u16) -> [u8; 3] {
        assert!(
            x < self.width && y < self.height,
            "({x}, {y}) is off screen"
        );
        let i = self.at(x, y);
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Panics outside the screen.
    pub fn set_pixel(&mut self, x: u16, y: u16, rgb: [u8; 3]) {
        assert!(
            x < self.width && y < self.height,
            "({x}, {y}) is off screen"
        );
        let i = self.at(x, y);
        self.rgb[i..i + 3].copy_from_slice(&rgb);
    }

    /// The pixels of row `y` from column `x`, `len` of them, to write.
    /// Panics outside the screen.
    pub fn row_mut(&mut self, x: u16, y: u16, len: u16) -> &mut [u8] {
        assert!(
            usize::from(x) + usize::from(len) <= usize::from(self.width) && y < self.height,
            "row ({x}, {y}) +{len} is off screen"
        );
        let i = self.at(x, y);
        &mut self.rgb[i..i + usize::from(len) * 3]
    }

    /// A new size (a desktop resize): what overlaps is kept, the rest black.
    pub fn resize(&mut self, width: u16, height: u16) {
        let mut next = Screen::new(width, height);
        let w = width.min(self.width);
        for y in 0..height.min(self.height) {
            let from = self.at(0, y);
            next.row_mut(0, y, w)
                .copy_from_slice(&self.rgb[from..from + usize::from(w) * 3]);
        }
        *self = next;
    }

    /// A part of the screen, clipped to it.
    pub fn crop(&self, x: u16, y: u16, width: u16, height: u16) -> Screen {
        let x = x.min(self.width);
        let y = y.min(self.height);
        let width = width.min(self.width - x);
        let height = height.min(self.height - y);
        let mut out = Screen::new(width, height);
        for j in 0..height {
            let from = self.at(x, y + j);
            out.row_mut(0, j, width)
                .copy_from_slice(&self.rgb[from..from + usize::from(width) * 3]);
        }
        out
    }

    /// As a PNG file (WaitForIt templates, screenshots, test failures).
    pub fn to_png(&self) -> Result<Vec<u8>, PngError> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, self.width.into(), self.height.into());
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header()?;
        w.write_image_data(&self.rgb)?;
        w.finish()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_rows_and_resizes() {
        let mut s = Screen::new(4, 3);
        s.set_pixel(3, 2, [1, 2, 3]);
        s.row_mut(0, 0, 2).copy_from_slice(&[9; 6]);
        assert_eq!(s.pixel(3, 2), [1, 2, 3]);
        assert_eq!(s.pixel(1, 0), [9, 9, 9]);
        assert_eq!(s.pixel(2, 0), [0, 0, 0]);
        let c = s.crop(1, 0, 10, 10);
        assert_eq!((c.width(), c.height()), (3, 3));
        assert_eq!(c.pixel(0, 0), [9, 9, 9]);
        assert_eq!(c.pixel(2, 2), [1, 2, 3]);
        s.resize(2, 5);
        assert_eq!(s.pixel(1, 0), [9, 9, 9]);
        assert_eq!(s.pixel(1, 4), [0, 0, 0]);
        assert_eq!(s.rgb().len(), 2 * 5 * 3);
        assert!(Screen::from_rgb(2, 2, vec![0; 11]).is_none());
    }

    #[test]
    fn png_is_a_png() {
        let png = Screen::new(3, 2).to_png().unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}
