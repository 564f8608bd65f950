//! A small RFB client over any async stream (QEMU's unix socket, the
//! shim's TCP port, an in-memory pipe in tests): the handshake (None or VNC
//! authentication), ServerInit, then key and pointer events out and
//! framebuffer updates in, kept as an RGB [`Screen`]. For `vnc play`
//! (events, and screenshots for WaitForIt), the fb recorder (the
//! handshake, then [`Client::into_inner`] to copy the raw stream), tests
//! and benches.
//!
//! It asks for [`PixelFormat::RGB888`] and the Raw and DesktopSize
//! encodings unless told otherwise ([`Options`]), as the original did.

use super::rfb::{
    self, encoding, security, ClientMessage, KeyEvent, PixelFormat, PointerEvent, Rect, RfbError,
    ServerInit, Version,
};
use super::screen::Screen;
use std::io;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("vnc: {0}")]
    Io(#[from] io::Error),
    #[error("vnc: {0}")]
    Rfb(#[from] RfbError),
    #[error("vnc server refused the connection: {0}")]
    Refused(String),
    #[error("vnc server offers no security type this client has (offered {0:?})")]
    NoCommonSecurity(Vec<u8>),
    #[error("vnc server asks for a password and none was given")]
    PasswordRequired,
    #[error("vnc authentication failed: {0}")]
    AuthFailed(String),
    #[error("vnc framebuffer of {width}x{height} is over the limit of {max} pixels")]
    TooLarge { width: u16, height: u16, max: usize },
    #[error("vnc server sent {len} bytes of text, over the limit of {max}")]
    TextTooLong { len: u64, max: usize },
    #[error("vnc rectangle {rect:?} is outside the {width}x{height} framebuffer")]
    RectOutside { rect: Rect, width: u16, height: u16 },
    #[error("vnc server sent encoding {0}, which was not asked for")]
    UnexpectedEncoding(i32),
    #[error("vnc pixel format cannot change once the client is split")]
    PixelFormatAfterSplit,
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct Options {
    /// For VNC authentication (only its first 8 bytes count).
    pub password: Option<Vec<u8>>,
    /// ClientInit's shared flag: false asks QEMU to drop other clients.
    pub shared: bool,
    /// The pixel format to ask for; None keeps the server's.
    pub pixel_format: Option<PixelFormat>,
    /// The encodings to ask for (SetEncodings), in order of preference.
    pub encodings: Vec<i32>,
    /// The largest framebuffer accepted, in pixels.
    pub max_pixels: usize,
    /// The longest desktop name, refusal reason or cut text accepted.
    pub max_text: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            password: None,
            shared: true,
            pixel_format: Some(PixelFormat::RGB888),
            encodings: vec![encoding::RAW, encoding::DESKTOP_SIZE],
            // 8K by 8K: what a guest may set, at 3 bytes a pixel held.
            max_pixels: 8192 * 8192,
            max_text: rfb::MAX_CUT_TEXT,
        }
    }
}

/// What the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A FramebufferUpdate, already drawn on the screen.
    Update(Vec<Rect>),
    /// SetColourMapEntries (read and dropped: the client asks for true colour).
    ColourMap {
        first: u16,
        count: u16,
    },
    Bell,
    /// ServerCutText, Latin-1.
    CutText(Vec<u8>),
}

async fn read_u8<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b).await?;
    Ok(b[0])
}

async fn read_u16<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<u16> {
    let mut b = [0u8; 2];
    r.read_exact(&mut b).await?;
    Ok(u16::from_be_bytes(b))
}

async fn read_u32<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).await?;
    Ok(u32::from_be_bytes(b))
}

/// A u32 length and that many bytes, refused past `max` before reading.
async fn read_text<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<Vec<u8>, ClientError> {
    let len = read_u32(r).await?;
    if len as usize > max {
        return Err(ClientError::TextTooLong {
            len: len.into(),
            max,
        });
    }
    let mut text = vec![0; len as usize];
    r.read_exact(&mut text).await?;
    Ok(text)
}

async fn skip<R: AsyncRead + Unpin>(r: &mut R, n: usize) -> io::Result<()> {
    let copied = tokio::io::copy(&mut r.take(n as u64), &mut tokio::io::sink()).await?;
    if copied < n as u64 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// The reading side: the pixel format the server sends in, and the screen.
#[derive(Debug)]
struct Decoder {
    format: PixelFormat,
    screen: Screen,
    asked: Vec<i32>,
    max_pixels: usize,
    max_text: usize,
    row: Vec<u8>,
}

fn check_size(width: u16, height: u16, max: usize) -> Result<(), ClientError> {
    if usize::from(width) * usize::from(height) > max {
        return Err(ClientError::TooLarge { width, height, max });
    }
    Ok(())
}

impl Decoder {
    async fn read_message<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
    ) -> Result<ServerEvent, ClientError> {
        match read_u8(r).await? {
            rfb::server_type::FRAMEBUFFER_UPDATE => {
                read_u8(r).await?;
                let count = read_u16(r).await?;
                let mut rects = Vec::with_capacity(usize::from(count).min(64));
                for _ in 0..count {
                    let mut head = [0u8; Rect::LEN];
                    r.read_exact(&mut head).await?;
                    let rect = Rect::parse(&head);
                    self.read_rect(r, &rect).await?;
                    rects.push(rect);
                }
                Ok(ServerEvent::Update(rects))
            }
            rfb::server_type::SET_COLOUR_MAP_ENTRIES => {
                read_u8(r).await?;
                let first = read_u16(r).await?;
                let count = read_u16(r).await?;
                skip(r, usize::from(count) * 6).await?;
                Ok(ServerEvent::ColourMap { first, count })
            }
            rfb::server_type::BELL => Ok(ServerEvent::Bell),
            rfb::server_type::SERVER_CUT_TEXT => {
                skip(r, 3).await?;
                Ok(ServerEvent::CutText(read_text(r, self.max_text).await?))
            }
            other => Err(RfbError::UnknownServerMessage(other).into()),
        }
    }

    fn inside(&self, rect: &Rect) -> Result<(), ClientError> {
        let fits = |at: u16, len: u16, max: u16| u32::from(at) + u32::from(len) <= u32::from(max);
        if fits(rect.x, rect.width, self.screen.width())
            && fits(rect.y, rect.height, self.screen.height())
        {
            return Ok(());
        }
        Err(ClientError::RectOutside {
            rect: *rect,
            width: self.screen.width(),
            height: self.screen.height(),
        })
    }

    async fn read_rect<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        rect: &Rect,
    ) -> Result<(), ClientError> {
        // A server may only send what it was asked for (Raw always), so
        // anything else is a server (or a test) gone wrong.
        if rect.encoding != encoding::RAW && !self.asked.contains(&rect.encoding) {
            return Err(ClientError::UnexpectedEncoding(rect.encoding));
        }
        let bpp = self.format.bytes_per_pixel();
        match rect.encoding {
            encoding::RAW => {
                self.inside(rect)?;
                self.row.resize(usize::from(rect.width) * bpp, 0);
                for j in 0..rect.height {
                    r.read_exact(&mut self.row).await?;
                    let out = self.screen.row_mut(rect.x, rect.y + j, rect.width);
                    decode_row(&self.format, &self.row, out);
                }
            }
            encoding::COPY_RECT => {
                self.inside(rect)?;
                let sx = read_u16(r).await?;
                let sy = read_u16(r).await?;
                let src = Rect {
                    x: sx,
                    y: sy,
                    ..*rect
                };
                self.inside(&src)?;
                let part = self.screen.crop(sx, sy, rect.width, rect.height);
                for j in 0..rect.height {
                    let from = usize::from(j) * usize::from(rect.width) * 3;
                    self.screen
                        .row_mut(rect.x, rect.y + j, rect.width)
                        .copy_from_slice(&part.rgb()[from..from + usize::from(rect.width) * 3]);
                }
            }
            encoding::DESKTOP_SIZE => {
                check_size(rect.width, rect.height, self.max_pixels)?;
                self.screen.resize(rect.width, rect.height);
            }
            encoding::CURSOR => skip(r, rfb::cursor_data_len(rect, bpp)).await?,
            // QEMU's acknowledgements carry nothing.
            encoding::QEMU_EXTENDED_KEY_EVENT | encoding::QEMU_AUDIO => {}
            other => return Err(ClientError::UnexpectedEncoding(other)),
        }
        Ok(())
    }
}

/// Raw pixels of the current format to RGB.
fn decode_row(format: &PixelFormat, raw: &[u8], out: &mut [u8]) {
    if *format == PixelFormat::RGB888 {
        // Little-endian 0x00RRGGBB: blue first. The common case, kept fast.
        for (px, o) in raw.chunks_exact(4).zip(out.chunks_exact_mut(3)) {
            o.copy_from_slice(&[px[2], px[1], px[0]]);
        }
        return;
    }
    for (px, o) in raw
        .chunks_exact(format.bytes_per_pixel())
        .zip(out.chunks_exact_mut(3))
    {
        o.copy_from_slice(&format.rgb(px));
    }
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, msg: &ClientMessage) -> io::Result<()> {
    w.write_all(&msg.to_bytes()).await?;
    w.flush().await
}

/// A connected client, after ServerInit.
#[derive(Debug)]
pub struct Client<S> {
    stream: S,
    version: Version,
    name: Vec<u8>,
    server_format: PixelFormat,
    dec: Decoder,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// Runs the handshake on a fresh connection, then asks for the pixel
    /// format and encodings of `opts`.
    pub async fn connect(mut s: S, opts: &Options) -> Result<Client<S>, ClientError> {
        let mut v = [0u8; Version::LEN];
        s.read_exact(&mut v).await?;
        let version = Version::answer(Version::parse(&v)?)?;
        s.write_all(&version.encode()).await?;
        s.flush().await?;

        let chosen = if version == Version::V3_3 {
            match read_u32(&mut s).await? {
                0 => return Err(refused(&mut s, opts.max_text).await),
                1 => security::NONE,
                2 => security::VNC_AUTH,
                other => return Err(RfbError::UnsupportedSecurity(other.min(255) as u8).into()),
            }
        } else {
            let count = read_u8(&mut s).await?;
            if count == 0 {
                return Err(refused(&mut s, opts.max_text).await);
            }
            let mut offered = vec![0u8; count.into()];
            s.read_exact(&mut offered).await?;
            let pick = if offered.contains(&security::NONE) {
                security::NONE
            } else if offered.contains(&security::VNC_AUTH) {
                security::VNC_AUTH
            } else {
                return Err(ClientError::NoCommonSecurity(offered));
            };
            if pick == security::VNC_AUTH && opts.password.is_none() {
                return Err(ClientError::PasswordRequired);
            }
            s.write_all(&[pick]).await?;
            s.flush().await?;
            pick
        };
        if chosen == security::VNC_AUTH {
            let password = opts
                .password
                .as_ref()
                .ok_or(ClientError::PasswordRequired)?;
            let mut challenge = [0u8; 16];
            s.read_exact(&mut challenge).await?;
            s.write_all(&rfb::vnc_auth_response(password, &challenge))
                .await?;
            s.flush().await?;
        }
        // 3.8 always reports; before it, only after authentication.
        let reports = chosen == security::VNC_AUTH || version == Version::V3_8;
        if reports && read_u32(&mut s).await? != 0 {
            let reason = if version == Version::V3_8 {
                String::from_utf8_lossy(&read_text(&mut s, opts.max_text).await?).into_owned()
            } else {
                String::new()
            };
            return Err(ClientError::AuthFailed(reason));
        }
        s.write_all(&[opts.shared.into()]).await?;
        s.flush().await?;

        let mut head = [0u8; ServerInit::HEADER_LEN];
        s.read_exact(&mut head).await?;
        let (init, name_len) = ServerInit::parse_header(&head);
        if name_len as usize > opts.max_text {
            return Err(ClientError::TextTooLong {
                len: name_len.into(),
                max: opts.max_text,
            });
        }
        let mut name = vec![0; name_len as usize];
        s.read_exact(&mut name).await?;
        check_size(init.width, init.height, opts.max_pixels)?;
        let format = opts.pixel_format.unwrap_or(init.pixel_format);
        format.check_decodable()?;
        let mut client = Client {
            stream: s,
            version,
            name,
            server_format: init.pixel_format,
            dec: Decoder {
                format,
                screen: Screen::new(init.width, init.height),
                asked: opts.encodings.clone(),
                max_pixels: opts.max_pixels,
                max_text: opts.max_text,
                row: Vec::new(),
            },
        };
        if let Some(pf) = opts.pixel_format {
            client.send(&ClientMessage::SetPixelFormat(pf)).await?;
        }
        if !opts.encodings.is_empty() {
            let list = opts.encodings.clone();
            client.send(&ClientMessage::SetEncodings(list)).await?;
        }
        Ok(client)
    }

    /// The version both sides speak.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The desktop's name (QEMU: `QEMU` or `QEMU (<vm name>)`).
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The pixel format the server announced in ServerInit.
    pub fn server_format(&self) -> PixelFormat {
        self.server_format
    }

    pub fn screen(&self) -> &Screen {
        &self.dec.screen
    }

    /// Sends a message; a SetPixelFormat also changes how updates are read.
    pub async fn send(&mut self, msg: &ClientMessage) -> Result<(), ClientError> {
        if let ClientMessage::SetPixelFormat(pf) = msg {
            pf.check_decodable()?;
            self.dec.format = *pf;
        }
        if let ClientMessage::SetEncodings(list) = msg {
            self.dec.asked = list.clone();
        }
        Ok(send(&mut self.stream, msg).await?)
    }

    pub async fn key(&mut self, key: KeyEvent) -> Result<(), ClientError> {
        self.send(&ClientMessage::Key(key)).await
    }

    pub async fn pointer(&mut self, p: PointerEvent) -> Result<(), ClientError> {
        self.send(&ClientMessage::Pointer(p)).await
    }

    /// Asks for the whole screen.
    pub async fn request_update(&mut self, incremental: bool) -> Result<(), ClientError> {
        let (width, height) = (self.dec.screen.width(), self.dec.screen.height());
        self.send(&ClientMessage::FramebufferUpdateRequest {
            incremental,
            x: 0,
            y: 0,
            width,
            height,
        })
        .await
    }

    /// The next message from the server; updates are drawn on the screen.
    pub async fn read_message(&mut self) -> Result<ServerEvent, ClientError> {
        self.dec.read_message(&mut self.stream).await
    }

    /// The whole screen, fresh: a non-incremental request, then messages
    /// until an update with pixels comes. A resize on the way (QEMU sends
    /// one alone when the guest changes mode) asks again at the new size.
    pub async fn screenshot(&mut self) -> Result<&Screen, ClientError> {
        self.request_update(false).await?;
        loop {
            let ServerEvent::Update(rects) = self.read_message().await? else {
                continue;
            };
            if rects.iter().any(|r| r.encoding == encoding::DESKTOP_SIZE) {
                self.request_update(false).await?;
            }
            let pixels = |r: &Rect| matches!(r.encoding, encoding::RAW | encoding::COPY_RECT);
            if rects.iter().any(pixels) {
                return Ok(&self.dec.screen);
            }
        }
    }

    /// The stream, as it is after the last message read (nothing of it is
    /// held back): the fb recorder copies it raw from here on.
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// A reading half (updates, the screen) and a writing half (events),
    /// to use from two tasks.
    pub fn into_split(self) -> (Reader<ReadHalf<S>>, Writer<WriteHalf<S>>) {
        let (r, w) = tokio::io::split(self.stream);
        (Reader { r, dec: self.dec }, Writer { w })
    }
}

async fn refused<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> ClientError {
    match read_text(r, max).await {
        Ok(reason) => ClientError::Refused(String::from_utf8_lossy(&reason).into_owned()),
        Err(e) => e,
    }
}

/// The reading half of a split client.
#[derive(Debug)]
pub struct Reader<R> {
    r: R,
    dec: Decoder,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub async fn read_message(&mut self) -> Result<ServerEvent, ClientError> {
        self.dec.read_message(&mut self.r).await
    }

    pub fn screen(&self) -> &Screen {
        &self.dec.screen
    }
}

/// The writing half of a split client.
#[derive(Debug)]
pub struct Writer<W> {
    w: W,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    /// Sends a message; not a SetPixelFormat, which the reading half would
    /// not know of.
    pub async fn send(&mut self, msg: &ClientMessage) -> Result<(), ClientError> {
        if matches!(msg, ClientMessage::SetPixelFormat(_)) {
            return Err(ClientError::PixelFormatAfterSplit);
        }
        Ok(send(&mut self.w, msg).await?)
    }

    pub async fn key(&mut self, key: KeyEvent) -> Result<(), ClientError> {
        self.send(&ClientMessage::Key(key)).await
    }

    pub async fn pointer(&mut self, p: PointerEvent) -> Result<(), ClientError> {
        self.send(&ClientMessage::Pointer(p)).await
    }

    /// Asks for an area of the screen.
    pub async fn request_update(
        &mut self,
        incremental: bool,
        width: u16,
        height: u16,
    ) -> Result<(), ClientError> {
        let msg = ClientMessage::FramebufferUpdateRequest {
            incremental,
            x: 0,
            y: 0,
            width,
            height,
        };
        self.send(&msg).await
    }
}

#[cfg(test)]
mod tests;
