//! The client's side of an RFB connection, followed from its first byte
//! as the VNC shim forwards it: the handshake, then the messages.

use super::{
    client_type, security, ClientMessage, DesktopScreen, KeyEvent, PixelFormat, PointerEvent,
    QemuAudio, RfbError, Version, MAX_CUT_TEXT,
};

/// How much of the client's stream may be held for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub cut_text: usize,
    pub encodings: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        // No client sends more than a few dozen encodings; QEMU reads up
        // to 65535 of them, which is still bounded (256 KiB).
        Limits {
            cut_text: MAX_CUT_TEXT,
            encodings: 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Version,
    SecurityType,
    AuthResponse,
    ClientInit,
    Messages,
    Stopped,
}

/// Follows what a client sends a server, from its first byte (or from its
/// first message), in pieces of any size. Feed it with [`push`] and drain
/// it with [`next_message`] until `Ok(None)` after every push: it holds at
/// most one message (bounded by [`Limits`]) plus what was pushed.
///
/// [`push`]: ClientStream::push
/// [`next_message`]: ClientStream::next_message
#[derive(Debug)]
pub struct ClientStream {
    phase: Phase,
    buf: Vec<u8>,
    start: usize,
    skip: u64,
    limits: Limits,
    vnc_auth_33: bool,
    version: Option<Version>,
}

impl ClientStream {
    /// From the connection's first byte. `vnc_auth` says whether the
    /// server demands VNC authentication: an RFB 3.3 client does not say
    /// which security type it got (the server decides), so whether 16
    /// response bytes follow its version must be known beforehand.
    pub fn new(vnc_auth: bool, limits: Limits) -> ClientStream {
        ClientStream {
            phase: Phase::Version,
            buf: Vec::new(),
            start: 0,
            skip: 0,
            limits,
            vnc_auth_33: vnc_auth,
            version: None,
        }
    }

    /// For a stream already past ClientInit.
    pub fn messages_only(limits: Limits) -> ClientStream {
        ClientStream {
            phase: Phase::Messages,
            ..ClientStream::new(false, limits)
        }
    }

    /// The version the client asked for, once read.
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// The memory held for a message not yet whole.
    pub fn held(&self) -> usize {
        self.buf.capacity()
    }

    pub fn in_handshake(&self) -> bool {
        !matches!(self.phase, Phase::Messages | Phase::Stopped)
    }

    pub fn push(&mut self, mut data: &[u8]) {
        if self.phase == Phase::Stopped {
            return;
        }
        if self.skip > 0 && self.pending().is_empty() {
            let n = data.len().min(self.skip as usize);
            self.skip -= n as u64;
            data = &data[n..];
        }
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    fn stop(&mut self, e: RfbError) -> Result<Option<ClientMessage>, RfbError> {
        self.phase = Phase::Stopped;
        self.buf = Vec::new();
        self.start = 0;
        Err(e)
    }

    /// The next whole message, `Ok(None)` when more bytes are needed. After
    /// a fatal error (see [`RfbError::is_fatal`]) it answers `Stopped`.
    pub fn next_message(&mut self) -> Result<Option<ClientMessage>, RfbError> {
        loop {
            if self.skip > 0 {
                let n = self.pending().len().min(self.skip as usize);
                self.consume(n);
                self.skip -= n as u64;
                if self.skip > 0 {
                    return Ok(None);
                }
            }
            match self.phase {
                Phase::Stopped => return Err(RfbError::Stopped),
                Phase::Messages => return self.message(),
                _ => {
                    if !self.handshake_step()? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Consumes one handshake piece; false when more bytes are needed.
    fn handshake_step(&mut self) -> Result<bool, RfbError> {
        let p = self.pending();
        match self.phase {
            Phase::Version => {
                let Some(b) = p.get(..Version::LEN) else {
                    return Ok(false);
                };
                let parsed = Version::parse(b.try_into().expect("12 bytes"))
                    .and_then(|v| v.flow().map(|f| (v, f)));
                let (v, flow) = match parsed {
                    Ok(x) => x,
                    Err(e) => return self.stop(e).map(|_| false),
                };
                self.version = Some(v);
                self.consume(Version::LEN);
                self.phase = match (flow, self.vnc_auth_33) {
                    (Version::V3_3, true) => Phase::AuthResponse,
                    (Version::V3_3, false) => Phase::ClientInit,
                    _ => Phase::SecurityType,
                };
            }
            Phase::SecurityType => {
                let Some(&t) = p.first() else {
                    return Ok(false);
                };
                self.phase = match t {
                    security::NONE => Phase::ClientInit,
                    security::VNC_AUTH => Phase::AuthResponse,
                    other => {
                        return self
                            .stop(RfbError::UnsupportedSecurity(other))
                            .map(|_| false)
                    }
                };
                self.consume(1);
            }
            Phase::AuthResponse => {
                if p.len() < 16 {
                    return Ok(false);
                }
                self.consume(16);
                self.phase = Phase::ClientInit;
            }
            Phase::ClientInit => {
                if p.is_empty() {
                    return Ok(false);
                }
                self.consume(1);
                self.phase = Phase::Messages;
            }
            Phase::Messages | Phase::Stopped => unreachable!("not a handshake phase"),
        }
        Ok(true)
    }

    fn message(&mut self) -> Result<Option<ClientMessage>, RfbError> {
        let p = self.pending();
        let Some(&kind) = p.first() else {
            return Ok(None);
        };
        let be16 = |at: usize| u16::from_be_bytes([p[at], p[at + 1]]);
        let be32 = |at: usize| u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
        use client_type as t;
        // Each arm: the bytes needed so far, then the message once there.
        let (len, msg) = match kind {
            t::SET_PIXEL_FORMAT => {
                if p.len() < 20 {
                    return Ok(None);
                }
                let pf = PixelFormat::parse(p[4..20].try_into().expect("16 bytes"));
                (20, ClientMessage::SetPixelFormat(pf))
            }
            t::SET_ENCODINGS => {
                if p.len() < 4 {
                    return Ok(None);
                }
                let count = usize::from(be16(2));
                if count > self.limits.encodings {
                    self.consume(4);
                    self.skip = count as u64 * 4;
                    let max = self.limits.encodings;
                    return Err(RfbError::TooManyEncodings { count, max });
                }
                let len = 4 + count * 4;
                if p.len() < len {
                    return Ok(None);
                }
                let list = (0..count).map(|i| be32(4 + i * 4) as i32).collect();
                (len, ClientMessage::SetEncodings(list))
            }
            t::FRAMEBUFFER_UPDATE_REQUEST => {
                if p.len() < 10 {
                    return Ok(None);
                }
                let msg = ClientMessage::FramebufferUpdateRequest {
                    incremental: p[1] != 0,
                    x: be16(2),
                    y: be16(4),
                    width: be16(6),
                    height: be16(8),
                };
                (10, msg)
            }
            t::KEY_EVENT => {
                if p.len() < 8 {
                    return Ok(None);
                }
                let key = KeyEvent {
                    down: p[1] != 0,
                    keysym: be32(4),
                };
                (8, ClientMessage::Key(key))
            }
            t::POINTER_EVENT => {
                if p.len() < 6 {
                    return Ok(None);
                }
                let ptr = PointerEvent {
                    buttons: p[1],
                    x: be16(2),
                    y: be16(4),
                };
                (6, ClientMessage::Pointer(ptr))
            }
            t::CLIENT_CUT_TEXT => {
                if p.len() < 8 {
                    return Ok(None);
                }
                let raw = be32(4) as i32;
                let n = u64::from(raw.unsigned_abs());
                if n > self.limits.cut_text as u64 {
                    self.consume(8);
                    self.skip = n;
                    let max = self.limits.cut_text;
                    return Err(RfbError::CutTextTooLong { len: n, max });
                }
                let len = 8 + n as usize;
                if p.len() < len {
                    return Ok(None);
                }
                let body = p[8..len].to_vec();
                let msg = if raw < 0 {
                    ClientMessage::ExtendedClipboard(body)
                } else {
                    ClientMessage::CutText(body)
                };
                (len, msg)
            }
            t::XVP => {
                if p.len() < 4 {
                    return Ok(None);
                }
                let msg = ClientMessage::Xvp {
                    version: p[2],
                    action: p[3],
                };
                (4, msg)
            }
            t::SET_DESKTOP_SIZE => {
                if p.len() < 8 {
                    return Ok(None);
                }
                let len = 8 + usize::from(p[6]) * 16;
                if p.len() < len {
                    return Ok(None);
                }
                let screens = (0..usize::from(p[6]))
                    .map(|i| {
                        let at = 8 + i * 16;
                        DesktopScreen {
                            id: be32(at),
                            x: be16(at + 4),
                            y: be16(at + 6),
                            width: be16(at + 8),
                            height: be16(at + 10),
                            flags: be32(at + 12),
                        }
                    })
                    .collect();
                let msg = ClientMessage::SetDesktopSize {
                    width: be16(2),
                    height: be16(4),
                    screens,
                };
                (len, msg)
            }
            t::QEMU => {
                if p.len() < 2 {
                    return Ok(None);
                }
                match p[1] {
                    0 => {
                        if p.len() < 12 {
                            return Ok(None);
                        }
                        let msg = ClientMessage::QemuExtendedKey {
                            down: be16(2) != 0,
                            keysym: be32(4),
                            keycode: be32(8),
                        };
                        (12, msg)
                    }
                    1 => {
                        if p.len() < 4 {
                            return Ok(None);
                        }
                        match be16(2) {
                            0 => (4, ClientMessage::QemuAudio(QemuAudio::Enable)),
                            1 => (4, ClientMessage::QemuAudio(QemuAudio::Disable)),
                            2 => {
                                if p.len() < 10 {
                                    return Ok(None);
                                }
                                let a = QemuAudio::SetFormat {
                                    format: p[4],
                                    channels: p[5],
                                    frequency: be32(6),
                                };
                                (10, ClientMessage::QemuAudio(a))
                            }
                            op => return self.stop(RfbError::UnknownQemuAudio(op)),
                        }
                    }
                    sub => return self.stop(RfbError::UnknownQemuMessage(sub)),
                }
            }
            other => return self.stop(RfbError::UnknownClientMessage(other)),
        };
        self.consume(len);
        Ok(Some(msg))
    }
}
