//! RFB (RFC 6143) as QEMU speaks it: the client's messages (parsed from
//! a stream in pieces of any size, and encoded), the handshake's pieces for
//! either side, and the server messages a small client needs. Pure: no I/O.
//!
//! The VNC shim forwards every byte unchanged and only observes them
//! through [`ClientStream`], so a message the parser cannot follow stops
//! the parsing (recording, cut-text typing), never the connection.

use std::fmt;
use thiserror::Error;

/// What QEMU accepts in a ClientCutText (larger ones it drops the client
/// for), so nothing a client sends through the shim needs more.
pub const MAX_CUT_TEXT: usize = 1 << 20;

/// Encodings and pseudo-encodings (RFC 6143 7.7-7.8, QEMU's extensions).
pub mod encoding {
    pub const RAW: i32 = 0;
    pub const COPY_RECT: i32 = 1;
    pub const TIGHT: i32 = 7;
    pub const DESKTOP_SIZE: i32 = -223;
    pub const CURSOR: i32 = -239;
    pub const QEMU_EXTENDED_KEY_EVENT: i32 = -258;
    pub const QEMU_AUDIO: i32 = -259;
    pub const EXTENDED_DESKTOP_SIZE: i32 = -308;
    pub const EXTENDED_CLIPBOARD: i32 = 0xC0A1_E5CEu32 as i32;
}

/// Security types (RFC 6143 7.1.2).
pub mod security {
    pub const INVALID: u8 = 0;
    pub const NONE: u8 = 1;
    pub const VNC_AUTH: u8 = 2;
}

/// Client-to-server message types.
mod client_type {
    pub const SET_PIXEL_FORMAT: u8 = 0;
    pub const SET_ENCODINGS: u8 = 2;
    pub const FRAMEBUFFER_UPDATE_REQUEST: u8 = 3;
    pub const KEY_EVENT: u8 = 4;
    pub const POINTER_EVENT: u8 = 5;
    pub const CLIENT_CUT_TEXT: u8 = 6;
    pub const XVP: u8 = 250;
    pub const SET_DESKTOP_SIZE: u8 = 251;
    pub const QEMU: u8 = 255;
}

/// Server-to-client message types.
pub mod server_type {
    pub const FRAMEBUFFER_UPDATE: u8 = 0;
    pub const SET_COLOUR_MAP_ENTRIES: u8 = 1;
    pub const BELL: u8 = 2;
    pub const SERVER_CUT_TEXT: u8 = 3;
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RfbError {
    #[error("not an RFB protocol version: {0:?}")]
    BadVersion(String),
    #[error("RFB version {major}.{minor} is not one QEMU speaks")]
    UnsupportedVersion { major: u16, minor: u16 },
    #[error("security type {0} cannot be followed")]
    UnsupportedSecurity(u8),
    #[error("unknown client message type {0}")]
    UnknownClientMessage(u8),
    #[error("unknown QEMU client message subtype {0}")]
    UnknownQemuMessage(u8),
    #[error("unknown QEMU audio operation {0}")]
    UnknownQemuAudio(u16),
    #[error("cut text of {len} bytes is over the limit of {max}")]
    CutTextTooLong { len: u64, max: usize },
    #[error("{count} encodings are over the limit of {max}")]
    TooManyEncodings { count: usize, max: usize },
    #[error("the parser stopped at an earlier error")]
    Stopped,
    #[error("unknown server message type {0}")]
    UnknownServerMessage(u8),
    #[error("pixel format of {0} bits per pixel cannot be decoded")]
    BitsPerPixel(u8),
    #[error("colour-mapped pixels cannot be decoded")]
    ColourMapped,
}

impl RfbError {
    /// Whether the stream can no longer be followed (the parser then
    /// answers [`RfbError::Stopped`]); the others skip one message.
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            RfbError::CutTextTooLong { .. } | RfbError::TooManyEncodings { .. }
        )
    }
}

/// `RFB xxx.yyy\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u16,
    pub minor: u16,
}

impl Version {
    pub const V3_3: Version = Version { major: 3, minor: 3 };
    pub const V3_7: Version = Version { major: 3, minor: 7 };
    pub const V3_8: Version = Version { major: 3, minor: 8 };
    pub const LEN: usize = 12;

    pub fn parse(b: &[u8; 12]) -> Result<Version, RfbError> {
        let digits = |s: &[u8]| -> Option<u16> {
            s.iter().try_fold(0u16, |n, &c| {
                c.is_ascii_digit().then(|| n * 10 + u16::from(c - b'0'))
            })
        };
        let ok = &b[..4] == b"RFB " && b[7] == b'.' && b[11] == b'\n';
        match (ok, digits(&b[4..7]), digits(&b[8..11])) {
            (true, Some(major), Some(minor)) => Ok(Version { major, minor }),
            _ => Err(RfbError::BadVersion(
                String::from_utf8_lossy(b).escape_debug().to_string(),
            )),
        }
    }

    pub fn encode(&self) -> [u8; 12] {
        let mut out = [0u8; 12];
        let s = format!("RFB {:03}.{:03}\n", self.major % 1000, self.minor % 1000);
        out.copy_from_slice(s.as_bytes());
        out
    }

    /// How a client of this version runs the handshake, as QEMU reads it:
    /// 3.4 and 3.5 (old Apple clients) go the 3.3 way, others are refused.
    pub fn flow(&self) -> Result<Version, RfbError> {
        match (self.major, self.minor) {
            (3, 3..=5) => Ok(Version::V3_3),
            (3, 7) => Ok(Version::V3_7),
            (3, 8) => Ok(Version::V3_8),
            (major, minor) => Err(RfbError::UnsupportedVersion { major, minor }),
        }
    }

    /// The version a client answers a server's with (RFC 6143 7.1.1).
    pub fn answer(server: Version) -> Result<Version, RfbError> {
        match (server.major, server.minor) {
            (3, 8..) | (4.., _) => Ok(Version::V3_8),
            (3, 7) => Ok(Version::V3_7),
            (3, 3..=6) => Ok(Version::V3_3),
            (major, minor) => Err(RfbError::UnsupportedVersion { major, minor }),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The VNC authentication response: the challenge DES-encrypted with the
/// password (its first 8 bytes, zero padded) as key, each key byte's bits
/// reversed as the VNC authors did.
pub fn vnc_auth_response(password: &[u8], challenge: &[u8; 16]) -> [u8; 16] {
    use des::cipher::{BlockCipherEncrypt, KeyInit};
    let mut key = [0u8; 8];
    for (k, p) in key.iter_mut().zip(password) {
        *k = p.reverse_bits();
    }
    let cipher = des::Des::new_from_slice(&key).expect("DES takes an 8-byte key");
    let mut out = *challenge;
    for half in out.chunks_exact_mut(8) {
        let block: &mut [u8; 8] = half.try_into().expect("8-byte block");
        cipher.encrypt_block(block.into());
    }
    out
}

/// RFC 6143 7.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelFormat {
    pub bits_per_pixel: u8,
    pub depth: u8,
    pub big_endian: bool,
    pub true_colour: bool,
    pub red_max: u16,
    pub green_max: u16,
    pub blue_max: u16,
    pub red_shift: u8,
    pub green_shift: u8,
    pub blue_shift: u8,
}

impl PixelFormat {
    /// 32 bits little-endian, 8 bits a colour: what the original asks
    /// every server for, so its fb recordings hold pixels of this format.
    pub const RGB888: PixelFormat = PixelFormat {
        bits_per_pixel: 32,
        depth: 24,
        big_endian: false,
        true_colour: true,
        red_max: 255,
        green_max: 255,
        blue_max: 255,
        red_shift: 16,
        green_shift: 8,
        blue_shift: 0,
    };
    pub const LEN: usize = 16;

    pub fn parse(b: &[u8; 16]) -> PixelFormat {
        PixelFormat {
            bits_per_pixel: b[0],
            depth: b[1],
            big_endian: b[2] != 0,
            true_colour: b[3] != 0,
            red_max: u16::from_be_bytes([b[4], b[5]]),
            green_max: u16::from_be_bytes([b[6], b[7]]),
            blue_max: u16::from_be_bytes([b[8], b[9]]),
            red_shift: b[10],
            green_shift: b[11],
            blue_shift: b[12],
        }
    }

    pub fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0] = self.bits_per_pixel;
        b[1] = self.depth;
        b[2] = self.big_endian.into();
        b[3] = self.true_colour.into();
        b[4..6].copy_from_slice(&self.red_max.to_be_bytes());
        b[6..8].copy_from_slice(&self.green_max.to_be_bytes());
        b[8..10].copy_from_slice(&self.blue_max.to_be_bytes());
        b[10] = self.red_shift;
        b[11] = self.green_shift;
        b[12] = self.blue_shift;
        b
    }

    pub fn bytes_per_pixel(&self) -> usize {
        usize::from(self.bits_per_pixel / 8)
    }

    /// Whether [`PixelFormat::rgb`] can decode this format.
    pub fn check_decodable(&self) -> Result<(), RfbError> {
        if !matches!(self.bits_per_pixel, 8 | 16 | 32) {
            return Err(RfbError::BitsPerPixel(self.bits_per_pixel));
        }
        if !self.true_colour {
            return Err(RfbError::ColourMapped);
        }
        Ok(())
    }

    /// One pixel (`bytes_per_pixel` bytes) as 8-bit RGB; the format must
    /// have passed [`PixelFormat::check_decodable`].
    pub fn rgb(&self, px: &[u8]) -> [u8; 3] {
        let raw = match (px.len(), self.big_endian) {
            (1, _) => u32::from(px[0]),
            (2, false) => u32::from(u16::from_le_bytes([px[0], px[1]])),
            (2, true) => u32::from(u16::from_be_bytes([px[0], px[1]])),
            (_, false) => u32::from_le_bytes([px[0], px[1], px[2], px[3]]),
            (_, true) => u32::from_be_bytes([px[0], px[1], px[2], px[3]]),
        };
        let channel = |shift: u8, max: u16| -> u8 {
            let max = u32::from(max);
            if max == 0 {
                return 0;
            }
            let v = raw.checked_shr(u32::from(shift)).unwrap_or(0) & max;
            // Scaled to 0..=255 so 5- or 6-bit channels come out full range.
            ((v * 255 + max / 2) / max) as u8
        };
        [
            channel(self.red_shift, self.red_max),
            channel(self.green_shift, self.green_max),
            channel(self.blue_shift, self.blue_max),
        ]
    }
}

/// RFC 6143 7.5.4. The kb format writes `down` as true or false, so any
/// non-zero down-flag is a press.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyEvent {
    pub down: bool,
    pub keysym: u32,
}

/// RFC 6143 7.5.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PointerEvent {
    pub buttons: u8,
    pub x: u16,
    pub y: u16,
}

/// One screen of an ExtendedDesktopSize layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DesktopScreen {
    pub id: u32,
    pub x: u16,
    pub y: u16,
    pub width: u16,
    pub height: u16,
    pub flags: u32,
}

/// QEMU's audio client messages (type 255, subtype 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QemuAudio {
    Enable,
    Disable,
    SetFormat {
        format: u8,
        channels: u8,
        frequency: u32,
    },
}

/// What a client sends once the handshake is over: RFC 6143 7.5 and the
/// extensions QEMU reads (XVP, SetDesktopSize, its own type 255).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    SetPixelFormat(PixelFormat),
    SetEncodings(Vec<i32>),
    FramebufferUpdateRequest {
        incremental: bool,
        x: u16,
        y: u16,
        width: u16,
        height: u16,
    },
    Key(KeyEvent),
    Pointer(PointerEvent),
    /// Latin-1 text.
    CutText(Vec<u8>),
    /// A ClientCutText with a negative length: the extended clipboard's
    /// flags and data, not text.
    ExtendedClipboard(Vec<u8>),
    Xvp {
        version: u8,
        action: u8,
    },
    SetDesktopSize {
        width: u16,
        height: u16,
        screens: Vec<DesktopScreen>,
    },
    QemuExtendedKey {
        down: bool,
        keysym: u32,
        keycode: u32,
    },
    QemuAudio(QemuAudio),
}

impl ClientMessage {
    /// The key press or release this message carries, whichever form.
    pub fn key_event(&self) -> Option<KeyEvent> {
        match *self {
            ClientMessage::Key(k) => Some(k),
            ClientMessage::QemuExtendedKey { down, keysym, .. } => Some(KeyEvent { down, keysym }),
            _ => None,
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        use client_type as t;
        match self {
            ClientMessage::SetPixelFormat(pf) => {
                out.extend_from_slice(&[t::SET_PIXEL_FORMAT, 0, 0, 0]);
                out.extend_from_slice(&pf.encode());
            }
            ClientMessage::SetEncodings(list) => {
                out.extend_from_slice(&[t::SET_ENCODINGS, 0]);
                out.extend_from_slice(&(list.len() as u16).to_be_bytes());
                for e in list {
                    out.extend_from_slice(&e.to_be_bytes());
                }
            }
            &ClientMessage::FramebufferUpdateRequest {
                incremental,
                x,
                y,
                width,
                height,
            } => {
                out.extend_from_slice(&[t::FRAMEBUFFER_UPDATE_REQUEST, incremental.into()]);
                for v in [x, y, width, height] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            ClientMessage::Key(k) => {
                out.extend_from_slice(&[t::KEY_EVENT, k.down.into(), 0, 0]);
                out.extend_from_slice(&k.keysym.to_be_bytes());
            }
            ClientMessage::Pointer(p) => {
                out.extend_from_slice(&[t::POINTER_EVENT, p.buttons]);
                out.extend_from_slice(&p.x.to_be_bytes());
                out.extend_from_slice(&p.y.to_be_bytes());
            }
            ClientMessage::CutText(text) => {
                out.extend_from_slice(&[t::CLIENT_CUT_TEXT, 0, 0, 0]);
                out.extend_from_slice(&(text.len() as i32).to_be_bytes());
                out.extend_from_slice(text);
            }
            ClientMessage::ExtendedClipboard(data) => {
                out.extend_from_slice(&[t::CLIENT_CUT_TEXT, 0, 0, 0]);
                out.extend_from_slice(&(-(data.len() as i32)).to_be_bytes());
                out.extend_from_slice(data);
            }
            &ClientMessage::Xvp { version, action } => {
                out.extend_from_slice(&[t::XVP, 0, version, action]);
            }
            ClientMessage::SetDesktopSize {
                width,
                height,
                screens,
            } => {
                out.extend_from_slice(&[t::SET_DESKTOP_SIZE, 0]);
                out.extend_from_slice(&width.to_be_bytes());
                out.extend_from_slice(&height.to_be_bytes());
                out.extend_from_slice(&[screens.len() as u8, 0]);
                for s in screens {
                    out.extend_from_slice(&s.id.to_be_bytes());
                    for v in [s.x, s.y, s.width, s.height] {
                        out.extend_from_slice(&v.to_be_bytes());
                    }
                    out.extend_from_slice(&s.flags.to_be_bytes());
                }
            }
            &ClientMessage::QemuExtendedKey {
                down,
                keysym,
                keycode,
            } => {
                out.extend_from_slice(&[t::QEMU, 0]);
                out.extend_from_slice(&u16::from(down).to_be_bytes());
                out.extend_from_slice(&keysym.to_be_bytes());
                out.extend_from_slice(&keycode.to_be_bytes());
            }
            ClientMessage::QemuAudio(a) => {
                out.extend_from_slice(&[t::QEMU, 1]);
                match *a {
                    QemuAudio::Enable => out.extend_from_slice(&0u16.to_be_bytes()),
                    QemuAudio::Disable => out.extend_from_slice(&1u16.to_be_bytes()),
                    QemuAudio::SetFormat {
                        format,
                        channels,
                        frequency,
                    } => {
                        out.extend_from_slice(&2u16.to_be_bytes());
                        out.extend_from_slice(&[format, channels]);
                        out.extend_from_slice(&frequency.to_be_bytes());
                    }
                }
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// The security types a 3.7/3.8 server offers, or (3.3) the one it chose.
/// An empty list carries the server's reason for refusing.
pub fn encode_security_types(types: &[u8], out: &mut Vec<u8>) {
    out.push(types.len() as u8);
    out.extend_from_slice(types);
}

/// SecurityResult: 0 is success; a 3.8 failure carries a reason.
pub fn encode_security_result(ok: bool, reason: Option<&str>, out: &mut Vec<u8>) {
    out.extend_from_slice(&u32::from(!ok).to_be_bytes());
    if let Some(r) = reason {
        encode_string(r.as_bytes(), out);
    }
}

/// A u32 length and the bytes: reasons, the desktop name, cut text.
pub fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// RFC 6143 7.3.2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInit {
    pub width: u16,
    pub height: u16,
    pub pixel_format: PixelFormat,
    pub name: Vec<u8>,
}

impl ServerInit {
    /// The fixed part; the name's length closes it.
    pub const HEADER_LEN: usize = 24;

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.width.to_be_bytes());
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.pixel_format.encode());
        encode_string(&self.name, out);
    }

    /// The fixed part: the ServerInit without its name, and the name's length.
    pub fn parse_header(b: &[u8; 24]) -> (ServerInit, u32) {
        let init = ServerInit {
            width: u16::from_be_bytes([b[0], b[1]]),
            height: u16::from_be_bytes([b[2], b[3]]),
            pixel_format: PixelFormat::parse(b[4..20].try_into().expect("16 bytes")),
            name: Vec::new(),
        };
        (init, u32::from_be_bytes([b[20], b[21], b[22], b[23]]))
    }
}

/// A FramebufferUpdate's rectangle header (RFC 6143 7.6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u16,
    pub y: u16,
    pub width: u16,
    pub height: u16,
    pub encoding: i32,
}

impl Rect {
    pub const LEN: usize = 12;

    pub fn parse(b: &[u8; 12]) -> Rect {
        Rect {
            x: u16::from_be_bytes([b[0], b[1]]),
            y: u16::from_be_bytes([b[2], b[3]]),
            width: u16::from_be_bytes([b[4], b[5]]),
            height: u16::from_be_bytes([b[6], b[7]]),
            encoding: i32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        for v in [self.x, self.y, self.width, self.height] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&self.encoding.to_be_bytes());
    }

    /// Pixels in the rectangle, as a byte count at `bpp` bytes a pixel.
    pub fn raw_len(&self, bpp: usize) -> usize {
        usize::from(self.width) * usize::from(self.height) * bpp
    }
}

/// The header of a FramebufferUpdate; `count` rectangles follow.
pub fn encode_framebuffer_update(count: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&[server_type::FRAMEBUFFER_UPDATE, 0]);
    out.extend_from_slice(&count.to_be_bytes());
}

/// RFC 6143 7.6.2; colours are 16 bits a channel.
pub fn encode_set_colour_map_entries(first: u16, colours: &[[u16; 3]], out: &mut Vec<u8>) {
    out.extend_from_slice(&[server_type::SET_COLOUR_MAP_ENTRIES, 0]);
    out.extend_from_slice(&first.to_be_bytes());
    out.extend_from_slice(&(colours.len() as u16).to_be_bytes());
    for c in colours {
        for v in c {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

pub fn encode_bell(out: &mut Vec<u8>) {
    out.push(server_type::BELL);
}

pub fn encode_server_cut_text(text: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&[server_type::SERVER_CUT_TEXT, 0, 0, 0]);
    encode_string(text, out);
}

/// The Cursor pseudo-encoding's data after its header: the pixels, then
/// a bitmask of one bit a pixel, rows padded to bytes.
pub fn cursor_data_len(rect: &Rect, bpp: usize) -> usize {
    rect.raw_len(bpp) + usize::from(rect.width).div_ceil(8) * usize::from(rect.height)
}

mod stream;

pub use stream::{ClientStream, Limits};

#[cfg(test)]
mod tests;
