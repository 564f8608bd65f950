//! The mesh's wire format: versioned, length-prefixed frames with a hard
//! size cap, each carrying a per-link sequence number and an HMAC-SHA256
//! over everything before it. Pure: bytes in, messages out; decoding never
//! panics whatever arrives.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "MMSH"
//!      4     1  version (2)
//!      5     1  kind
//!      6     2  reserved, zero
//!      8     8  sequence number, big-endian; 0 for Hello, then +1 per frame
//!     16     4  payload length, big-endian, at most MAX_PAYLOAD
//!     20     n  payload: JSON for Hello, Refuse and Lsa; for Routed, the
//!               envelope of [`super::routed`] and a JSON body; empty otherwise
//!   20+n    32  HMAC-SHA256(key, bytes 0 .. 20+n)
//! ```
//!
//! The MAC is checked before anything in the payload is looked at, and the
//! sequence number (which the MAC covers) must be exactly the next one
//! expected, so a replayed, dropped, reordered or altered frame ends the
//! link.
//!
//! Version 1 carried Routed as JSON with a single destination. Nodes of
//! different versions refuse each other at the first frame, saying which
//! versions they speak: a mesh is all of one version.

use super::routed::Routed;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use thiserror::Error;

pub const MAGIC: [u8; 4] = *b"MMSH";
pub const VERSION: u8 = 2;
pub const HEADER_LEN: usize = 20;
pub const MAC_LEN: usize = 32;
/// Larger frames are refused as soon as their header arrives, before any
/// of the payload is read or buffered.
pub const MAX_PAYLOAD: usize = 16 << 20;

pub(crate) type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("not a mesh frame (bad magic)")]
    Magic,
    #[error("unsupported mesh protocol version {0} (this node speaks {VERSION}; every node of a mesh must run a release speaking the same version)")]
    Version(u8),
    #[error("unknown frame kind {0}")]
    Kind(u8),
    #[error("reserved header bits set")]
    Reserved,
    #[error("frame of {0} bytes exceeds the {MAX_PAYLOAD}-byte limit")]
    TooLarge(usize),
    #[error("bad frame MAC (wrong mesh key, or the frame was altered)")]
    Mac,
    #[error("frame sequence {got} where {expected} was expected (replayed or reordered frame)")]
    Sequence { expected: u64, got: u64 },
    #[error("malformed {kind:?} payload: {why}")]
    Payload { kind: Kind, why: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Hello = 1,
    Confirm = 2,
    Accept = 3,
    Refuse = 4,
    Heartbeat = 5,
    Lsa = 6,
    Routed = 7,
    Bye = 8,
}

/// Every frame kind, in wire order: `KINDS[kind as usize - 1]` is `kind`.
pub const KINDS: [Kind; 8] = [
    Kind::Hello,
    Kind::Confirm,
    Kind::Accept,
    Kind::Refuse,
    Kind::Heartbeat,
    Kind::Lsa,
    Kind::Routed,
    Kind::Bye,
];

impl Kind {
    /// Its name in `mesh stats`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hello => "hello",
            Kind::Confirm => "confirm",
            Kind::Accept => "accept",
            Kind::Refuse => "refuse",
            Kind::Heartbeat => "heartbeat",
            Kind::Lsa => "lsa",
            Kind::Routed => "routed",
            Kind::Bye => "bye",
        }
    }

    fn from_byte(b: u8) -> Result<Kind, WireError> {
        Ok(match b {
            1 => Kind::Hello,
            2 => Kind::Confirm,
            3 => Kind::Accept,
            4 => Kind::Refuse,
            5 => Kind::Heartbeat,
            6 => Kind::Lsa,
            7 => Kind::Routed,
            8 => Kind::Bye,
            _ => return Err(WireError::Kind(b)),
        })
    }
}

/// What a node says about itself when a link opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub name: String,
    pub context: String,
    /// The challenge: fresh random bytes, hex.
    pub nonce: String,
    /// The mesh port this node listens on.
    pub port: u16,
    /// Set by an operator's `mesh dial`, which the degree does not limit.
    pub explicit: bool,
    pub software: String,
}

/// A mesh state announcement: one node's direct links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lsa {
    pub origin: String,
    /// Grows with every announcement of the origin, also across restarts.
    pub seq: u64,
    pub peers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Hello(Hello),
    /// The initiator's proof of the key, bound to both nonces.
    Confirm,
    Accept,
    Refuse(String),
    Heartbeat,
    Lsa(Lsa),
    Routed(Routed),
    Bye,
}

impl Message {
    pub fn kind(&self) -> Kind {
        match self {
            Message::Hello(_) => Kind::Hello,
            Message::Confirm => Kind::Confirm,
            Message::Accept => Kind::Accept,
            Message::Refuse(_) => Kind::Refuse,
            Message::Heartbeat => Kind::Heartbeat,
            Message::Lsa(_) => Kind::Lsa,
            Message::Routed(_) => Kind::Routed,
            Message::Bye => Kind::Bye,
        }
    }

    /// Appends the payload to `out`.
    fn write_payload(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        // Serializing these types cannot fail: no maps with non-string keys.
        let _ = match self {
            Message::Hello(h) => serde_json::to_writer(&mut *out, h),
            Message::Refuse(r) => serde_json::to_writer(&mut *out, r),
            Message::Lsa(l) => serde_json::to_writer(&mut *out, l),
            Message::Routed(r) => return r.write(out),
            _ => Ok(()),
        };
        Ok(())
    }

    pub fn payload(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = self.write_payload(&mut out);
        out
    }

    /// Decodes a payload, taking it over: a Routed message keeps it (its
    /// body stays there); any other gives it back, as the handshake binds
    /// the bytes of the Hellos.
    pub fn from_payload(kind: Kind, payload: Vec<u8>) -> Result<(Message, Vec<u8>), WireError> {
        fn json<T: serde::de::DeserializeOwned>(kind: Kind, p: &[u8]) -> Result<T, WireError> {
            serde_json::from_slice(p).map_err(|e| WireError::Payload {
                kind,
                why: e.to_string(),
            })
        }
        let empty = |m: Message| {
            if payload.is_empty() {
                Ok(m)
            } else {
                Err(WireError::Payload {
                    kind,
                    why: "expected no payload".into(),
                })
            }
        };
        let msg = match kind {
            Kind::Routed => return Ok((Message::Routed(Routed::read(payload)?), Vec::new())),
            Kind::Hello => json(kind, &payload).map(Message::Hello),
            Kind::Confirm => empty(Message::Confirm),
            Kind::Accept => empty(Message::Accept),
            Kind::Refuse => json(kind, &payload).map(Message::Refuse),
            Kind::Heartbeat => empty(Message::Heartbeat),
            Kind::Lsa => json(kind, &payload).map(Message::Lsa),
            Kind::Bye => empty(Message::Bye),
        }?;
        Ok((msg, payload))
    }
}

/// A parsed, not yet authenticated, frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub seq: u64,
    pub len: usize,
}

impl Header {
    /// Bytes that follow the header: payload and MAC.
    pub fn body_len(&self) -> usize {
        self.len + MAC_LEN
    }

    /// The whole frame's length.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.body_len()
    }
}

pub fn parse_header(b: &[u8; HEADER_LEN]) -> Result<Header, WireError> {
    if b[0..4] != MAGIC {
        return Err(WireError::Magic);
    }
    if b[4] != VERSION {
        return Err(WireError::Version(b[4]));
    }
    let kind = Kind::from_byte(b[5])?;
    if b[6] != 0 || b[7] != 0 {
        return Err(WireError::Reserved);
    }
    let seq = u64::from_be_bytes(b[8..16].try_into().expect("8 bytes"));
    let len = u32::from_be_bytes(b[16..20].try_into().expect("4 bytes")) as usize;
    if len > MAX_PAYLOAD {
        return Err(WireError::TooLarge(len));
    }
    Ok(Header { kind, seq, len })
}

/// HMAC-SHA256 keyed with `key`: the one MAC of the mesh (frames,
/// discovery datagrams, key derivation).
pub(crate) fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    HmacSha256::new_from_slice(key).expect("HMAC accepts any key length")
}

/// Frames outgoing messages for one direction of one link.
pub struct Sealer {
    /// Keyed once; each frame starts from a copy.
    mac: HmacSha256,
    seq: u64,
}

impl Sealer {
    pub fn new(key: &[u8]) -> Sealer {
        Sealer {
            mac: mac(key),
            seq: 0,
        }
    }

    /// Switches to the session key; the sequence carries on.
    pub fn rekey(&mut self, key: &[u8]) {
        self.mac = mac(key);
    }

    /// Appends one frame to `out` and returns its length. A message too
    /// large for a frame leaves `out` and the sequence as they were.
    pub fn seal_into(&mut self, m: &Message, out: &mut Vec<u8>) -> Result<usize, WireError> {
        let start = out.len();
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(m.kind() as u8);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        let fail = |out: &mut Vec<u8>, e| {
            out.truncate(start);
            Err(e)
        };
        if let Err(e) = m.write_payload(out) {
            return fail(out, e);
        }
        let len = out.len() - start - HEADER_LEN;
        if len > MAX_PAYLOAD {
            return fail(out, WireError::TooLarge(len));
        }
        out[start + 16..start + 20].copy_from_slice(&(len as u32).to_be_bytes());
        let mut mac = self.mac.clone();
        mac.update(&out[start..]);
        out.extend_from_slice(&mac.finalize().into_bytes());
        self.seq += 1;
        Ok(out.len() - start)
    }

    pub fn seal(&mut self, m: &Message) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::new();
        self.seal_into(m, &mut out)?;
        Ok(out)
    }
}

/// Builds one frame; public so tests can forge frames.
pub fn seal_raw(key: &[u8], kind: Kind, seq: u64, payload: &[u8]) -> Result<Vec<u8>, WireError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(WireError::TooLarge(payload.len()));
    }
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + MAC_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    let mut m = mac(key);
    m.update(&out);
    out.extend_from_slice(&m.finalize().into_bytes());
    Ok(out)
}

/// Checks and decodes incoming frames for one direction of one link.
pub struct Opener {
    mac: HmacSha256,
    seq: u64,
}

impl Opener {
    pub fn new(key: &[u8]) -> Opener {
        Opener {
            mac: mac(key),
            seq: 0,
        }
    }

    pub fn rekey(&mut self, key: &[u8]) {
        self.mac = mac(key);
    }

    /// Authenticates one frame, given its header (parsed once, by the
    /// caller, to know how much to read), the header's bytes and the
    /// `header.body_len()` bytes after them, and decodes it. Returns the
    /// message and, but for Routed (which keeps it), the raw payload
    /// (the handshake binds it).
    pub fn open(
        &mut self,
        h: &Header,
        head: &[u8; HEADER_LEN],
        mut body: Vec<u8>,
    ) -> Result<(Message, Vec<u8>), WireError> {
        if body.len() != h.body_len() {
            return Err(WireError::Payload {
                kind: h.kind,
                why: format!("{} bytes where {} were announced", body.len(), h.body_len()),
            });
        }
        let mut m = self.mac.clone();
        m.update(head);
        m.update(&body[..h.len]);
        m.verify_slice(&body[h.len..]).map_err(|_| WireError::Mac)?;
        if h.seq != self.seq {
            return Err(WireError::Sequence {
                expected: self.seq,
                got: h.seq,
            });
        }
        self.seq += 1;
        body.truncate(h.len);
        Message::from_payload(h.kind, body)
    }

    /// Decodes the first frame in `buf`: `Ok(None)` while it is incomplete,
    /// else the message and the bytes it used.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(Message, usize)>, WireError> {
        let Some(head) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let head: &[u8; HEADER_LEN] = head.try_into().expect("header length");
        let h = parse_header(head)?;
        let end = h.frame_len();
        let Some(body) = buf.get(HEADER_LEN..end) else {
            return Ok(None);
        };
        let (msg, _) = self.open(&h, head, body.to_vec())?;
        Ok(Some((msg, end)))
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
