//! WaitForIt: is the template picture on the screen, and where?
//!
//! As the original's match.go meant it (with the image library it was
//! written against): both pictures in gray (`0.3 R + 0.6 G + 0.1 B`,
//! rounded; a template with alpha premultiplied first), the template laid
//! at every place that leaves a column and a row of the screen beyond its
//! right and bottom edges (the original's loops stop one short), the place
//! of least summed difference wins, and it is a match when the mean
//! difference a pixel is at most 20. Ties go to the first place, row by
//! row. The click goes to the template's centre.
//!
//! The original since its June 2026 dependency update gets a four-channel
//! gray image back where it indexes one byte a pixel, so it compares
//! bytes, not pixels, and searches only the screen's left quarter; this
//! follows the semantics its templates were made for instead.

use super::rfb::PointerEvent;
use super::screen::Screen;
use std::io::Cursor;
use thiserror::Error;

/// The most mean difference a pixel (in gray levels) that still matches.
pub const MAX_MEAN_DIFFERENCE: u64 = 20;

/// What a template file may make the decoder allocate.
const MAX_DECODED_BYTES: usize = 64 << 20;

#[derive(Debug, Error)]
pub enum MatchError {
    #[error("template is not a PNG (the original also read JPEG; not supported here)")]
    NotPng,
    #[error("template PNG: {0}")]
    Png(#[from] png::DecodingError),
    #[error("template has no pixels")]
    Empty,
    #[error("template of {width}x{height} is larger than a screen can be")]
    TooLarge { width: u32, height: u32 },
}

/// The gray level the original's image library gives a pixel: the sum in
/// f64, in this order, plus a half, truncated.
pub fn gray(r: u8, g: u8, b: u8) -> u8 {
    (0.3 * f64::from(r) + 0.6 * f64::from(g) + 0.1 * f64::from(b) + 0.5) as u8
}

/// Go's conversion of a non-premultiplied channel to the premultiplied
/// 8-bit value its RGBA images hold.
fn premultiply(c: u8, a: u8) -> u8 {
    ((u32::from(c) * (u32::from(a) * 0x101) / 0xff) >> 8) as u8
}

/// A template ready to search for: its gray levels.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    width: usize,
    height: usize,
    gray: Vec<u8>,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Template({}x{})", self.width, self.height)
    }
}

impl Template {
    /// From a PNG file's bytes (any colour type or depth).
    pub fn from_png(bytes: &[u8]) -> Result<Template, MatchError> {
        if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Err(MatchError::NotPng);
        }
        let limits = png::Limits {
            bytes: MAX_DECODED_BYTES,
        };
        let mut decoder = png::Decoder::new_with_limits(Cursor::new(bytes), limits);
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info()?;
        let (width, height) = {
            let info = reader.info();
            (info.width, info.height)
        };
        if width == 0 || height == 0 {
            return Err(MatchError::Empty);
        }
        if width > u32::from(u16::MAX) || height > u32::from(u16::MAX) {
            return Err(MatchError::TooLarge { width, height });
        }
        let size = reader
            .output_buffer_size()
            .ok_or(MatchError::TooLarge { width, height })?;
        let mut buf = vec![0; size];
        let frame = reader.next_frame(&mut buf)?;
        let data = &buf[..frame.buffer_size()];
        let line = frame.line_size;
        let channels = frame.color_type.samples();
        let mut gray_px = Vec::with_capacity(width as usize * height as usize);
        for row in data.chunks_exact(line).take(height as usize) {
            for px in row[..width as usize * channels].chunks_exact(channels) {
                let (r, g, b, a) = match *px {
                    [y] => (y, y, y, 255),
                    [y, a] => (y, y, y, a),
                    [r, g, b] => (r, g, b, 255),
                    [r, g, b, a] => (r, g, b, a),
                    _ => unreachable!("1 to 4 samples a pixel"),
                };
                let (r, g, b) = (premultiply(r, a), premultiply(g, a), premultiply(b, a));
                gray_px.push(gray(r, g, b));
            }
        }
        Ok(Template {
            width: width as usize,
            height: height as usize,
            gray: gray_px,
        })
    }

    /// From a part of a screen (opaque).
    pub fn from_screen(screen: &Screen) -> Result<Template, MatchError> {
        if screen.width() == 0 || screen.height() == 0 {
            return Err(MatchError::Empty);
        }
        Ok(Template {
            width: screen.width().into(),
            height: screen.height().into(),
            gray: gray_of(screen),
        })
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }
}

fn gray_of(screen: &Screen) -> Vec<u8> {
    screen
        .rgb()
        .chunks_exact(3)
        .map(|p| gray(p[0], p[1], p[2]))
        .collect()
}

/// Where a template was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// The template's top left corner on the screen.
    pub x: u16,
    pub y: u16,
    pub width: u16,
    pub height: u16,
    /// The summed gray-level difference over the template.
    pub difference: u64,
}

impl Match {
    pub fn center(&self) -> (u16, u16) {
        (self.x + self.width / 2, self.y + self.height / 2)
    }

    pub fn mean_difference(&self) -> f64 {
        self.difference as f64 / (f64::from(self.width) * f64::from(self.height))
    }

    /// What ClickIt sends: the left button down at the centre (and, as in
    /// the original, no release).
    pub fn click(&self) -> PointerEvent {
        let (x, y) = self.center();
        PointerEvent { buttons: 1, x, y }
    }
}

/// The template's place on the screen, if it is there.
pub fn find(screen: &Screen, template: &Template) -> Option<Match> {
    let (sw, sh) = (usize::from(screen.width()), usize::from(screen.height()));
    let (tw, th) = (template.width, template.height);
    if sw <= tw || sh <= th {
        return None;
    }
    let gray = gray_of(screen);
    // A place is kept when it is under the bound: at first the match
    // threshold, then one less than the best so far (ties keep the first),
    // which lets most places stop after a row or two.
    let mut bound = MAX_MEAN_DIFFERENCE * (tw * th) as u64;
    let mut best = None;
    for y in 0..sh - th {
        for x in 0..sw - tw {
            let mut sum = 0u64;
            for j in 0..th {
                let s = &gray[(y + j) * sw + x..][..tw];
                let t = &template.gray[j * tw..][..tw];
                let row: u32 = s
                    .iter()
                    .zip(t)
                    .map(|(a, b)| u32::from(a.abs_diff(*b)))
                    .sum();
                sum += u64::from(row);
                if sum > bound {
                    break;
                }
            }
            if sum <= bound {
                best = Some(Match {
                    x: x as u16,
                    y: y as u16,
                    width: tw as u16,
                    height: th as u16,
                    difference: sum,
                });
                if sum == 0 {
                    return best;
                }
                bound = sum - 1;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests;
