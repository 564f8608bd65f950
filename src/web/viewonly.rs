//! A viewer's VNC connection: what the browser sends is followed message
//! by message, and only what asks to see (pixel format, encodings, update
//! requests) reaches the VM; keys, pointer, clipboard and the rest are
//! dropped. The handshake passes as it is. Enforced here, in the server,
//! because a page's view-only switch is only a promise of the page.

use crate::console::rfb::{ClientMessage, ClientStream, Limits, RfbError};

pub struct ViewOnly {
    stream: ClientStream,
    /// Input events dropped so far (for the log).
    pub dropped: u64,
}

impl Default for ViewOnly {
    fn default() -> Self {
        ViewOnly {
            // QEMU's unix socket asks for no password.
            stream: ClientStream::new(false, Limits::default()),
            dropped: 0,
        }
    }
}

impl ViewOnly {
    /// The bytes of `data` that may go on to the VM.
    pub fn filter(&mut self, data: &[u8]) -> Result<Vec<u8>, RfbError> {
        let mut out = Vec::new();
        let mut rest = data;
        // The handshake byte by byte: where it ends, messages begin, and
        // those are re-encoded one by one.
        while self.stream.in_handshake() && !rest.is_empty() {
            self.stream.push(&rest[..1]);
            out.push(rest[0]);
            rest = &rest[1..];
            while self.stream.next_message()?.is_some() {}
        }
        if rest.is_empty() {
            return Ok(out);
        }
        self.stream.push(rest);
        while let Some(m) = self.stream.next_message()? {
            match m {
                ClientMessage::SetPixelFormat(_)
                | ClientMessage::SetEncodings(_)
                | ClientMessage::FramebufferUpdateRequest { .. } => m.encode(&mut out),
                _ => self.dropped += 1,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::rfb::{KeyEvent, PointerEvent};

    #[test]
    fn input_never_passes() {
        let mut v = ViewOnly::default();
        // Version, security type None, ClientInit (shared).
        let hs = b"RFB 003.008\n\x01\x01";
        assert_eq!(v.filter(hs).unwrap(), hs);
        let mut msgs = Vec::new();
        let upd = ClientMessage::FramebufferUpdateRequest {
            incremental: false,
            x: 0,
            y: 0,
            width: 640,
            height: 480,
        };
        upd.encode(&mut msgs);
        ClientMessage::Key(KeyEvent {
            down: true,
            keysym: 0x61,
        })
        .encode(&mut msgs);
        ClientMessage::Pointer(PointerEvent {
            buttons: 1,
            x: 3,
            y: 4,
        })
        .encode(&mut msgs);
        ClientMessage::CutText(b"rm -rf /".to_vec()).encode(&mut msgs);
        ClientMessage::SetEncodings(vec![0, 1]).encode(&mut msgs);
        // In two pieces cut mid-message.
        let mut out = v.filter(&msgs[..7]).unwrap();
        out.extend(v.filter(&msgs[7..]).unwrap());
        let mut want = upd.to_bytes();
        ClientMessage::SetEncodings(vec![0, 1]).encode(&mut want);
        assert_eq!(out, want);
        assert_eq!(v.dropped, 3);
    }
}
