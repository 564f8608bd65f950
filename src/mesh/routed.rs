//! The payload of a Routed frame: a small binary envelope that relays
//! read, then the body, JSON that only the destination decodes. A relay
//! passes the body on as the same shared bytes (never parsed, never
//! copied but into the outgoing frame), and a request for several nodes
//! that share a next hop travels as one frame naming them all. Pure.
//!
//! ```text
//! size  field
//!    1  flags: bit 0 set for a request (relays answer a request they
//!       cannot pass on); the other bits zero
//!    1  hops left (TTL)
//!    8  id, big-endian: chosen by the requester, echoed by the answers
//!    1  length of src, then src (UTF-8, 1 to 255 bytes)
//!    2  number of destinations, big-endian, at least 1; then each as
//!       1 length byte and the name
//!    n  body: JSON of a Body
//! ```

use super::wire::{Kind, WireError};
use crate::command::Response;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Bytes shared by every copy of one message: a relay, or a request split
/// by next hop, hands on the same allocation.
#[derive(Clone, Default)]
pub struct Blob {
    buf: Arc<Vec<u8>>,
    start: usize,
}

impl Blob {
    pub fn new(bytes: Vec<u8>) -> Blob {
        Blob {
            buf: Arc::new(bytes),
            start: 0,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }
}

impl PartialEq for Blob {
    fn eq(&self, other: &Blob) -> bool {
        self.bytes() == other.bytes()
    }
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blob({:?})", String::from_utf8_lossy(self.bytes()))
    }
}

/// What a message says, decoded only where it is delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// Run a command line there.
    Request {
        line: String,
        namespace: Option<String>,
    },
    /// Every response the command produced there.
    Response { responses: Vec<Response> },
    /// The request could not be delivered or run.
    Failed { error: String },
}

impl Body {
    pub fn encode(&self) -> Blob {
        // These types have no maps with non-string keys: this cannot fail.
        Blob::new(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(b: &Blob) -> Result<Body, WireError> {
        serde_json::from_slice(b.bytes()).map_err(|e| WireError::Payload {
            kind: Kind::Routed,
            why: format!("body: {e}"),
        })
    }
}

/// A message travelling hop by hop from `src` to every node of `dst`.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    /// Who sent it. A relay that cannot pass a request on answers in the
    /// name of each node it could not reach, with that node as `src`.
    pub src: String,
    pub dst: Vec<String>,
    /// A request (which a relay answers if it cannot pass it on), or an
    /// answer (dropped if it cannot go on).
    pub request: bool,
    /// Hops left; a message is dropped when it reaches zero.
    pub ttl: u8,
    pub id: u64,
    pub body: Blob,
}

const FLAG_REQUEST: u8 = 1;
const MAX_NAME: usize = 255;

fn bad(why: impl Into<String>) -> WireError {
    WireError::Payload {
        kind: Kind::Routed,
        why: why.into(),
    }
}

impl Routed {
    /// The envelope's length: what a relay adds to the body.
    pub fn envelope_len(&self) -> usize {
        1 + 1 + 8 + 1 + self.src.len() + 2 + self.dst.iter().map(|d| 1 + d.len()).sum::<usize>()
    }

    pub fn payload_len(&self) -> usize {
        self.envelope_len() + self.body.len()
    }

    /// A copy for some of the destinations, sharing the body.
    pub fn to(&self, dst: Vec<String>) -> Routed {
        Routed {
            src: self.src.clone(),
            dst,
            request: self.request,
            ttl: self.ttl,
            id: self.id,
            body: self.body.clone(),
        }
    }

    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        let name = |n: &str| -> Result<u8, WireError> {
            if n.is_empty() || n.len() > MAX_NAME {
                return Err(bad(format!("node name of {} bytes", n.len())));
            }
            Ok(n.len() as u8)
        };
        if self.dst.is_empty() || self.dst.len() > u16::MAX as usize {
            return Err(bad(format!("{} destinations", self.dst.len())));
        }
        out.push(if self.request { FLAG_REQUEST } else { 0 });
        out.push(self.ttl);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.push(name(&self.src)?);
        out.extend_from_slice(self.src.as_bytes());
        out.extend_from_slice(&(self.dst.len() as u16).to_be_bytes());
        for d in &self.dst {
            out.push(name(d)?);
            out.extend_from_slice(d.as_bytes());
        }
        out.extend_from_slice(self.body.bytes());
        Ok(())
    }

    /// Reads the envelope; the body stays in `payload`, which the message
    /// keeps (no copy).
    pub fn read(payload: Vec<u8>) -> Result<Routed, WireError> {
        let mut c = Cursor {
            bytes: &payload,
            at: 0,
        };
        let flags = c.take(1)?[0];
        if flags & !FLAG_REQUEST != 0 {
            return Err(bad(format!("unknown flags {flags:#04x}")));
        }
        let ttl = c.take(1)?[0];
        let id = u64::from_be_bytes(c.take(8)?.try_into().expect("8 bytes"));
        let src = c.name()?;
        let count = u16::from_be_bytes(c.take(2)?.try_into().expect("2 bytes")) as usize;
        if count == 0 {
            return Err(bad("no destination"));
        }
        let mut dst = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            dst.push(c.name()?);
        }
        let start = c.at;
        Ok(Routed {
            src,
            dst,
            request: flags & FLAG_REQUEST != 0,
            ttl,
            id,
            body: Blob {
                buf: Arc::new(payload),
                start,
            },
        })
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let s = self
            .bytes
            .get(self.at..self.at + n)
            .ok_or_else(|| bad("truncated envelope"))?;
        self.at += n;
        Ok(s)
    }

    fn name(&mut self) -> Result<String, WireError> {
        let len = self.take(1)?[0] as usize;
        if len == 0 {
            return Err(bad("empty node name"));
        }
        std::str::from_utf8(self.take(len)?)
            .map(str::to_string)
            .map_err(|_| bad("node name is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Routed {
        Routed {
            src: "n1".into(),
            dst: vec!["n2".into(), "n3".into()],
            request: true,
            ttl: 64,
            id: 0x0102030405060708,
            body: Body::Request {
                line: "vm info".into(),
                namespace: None,
            }
            .encode(),
        }
    }

    #[test]
    fn envelope_layout_and_round_trip() {
        let r = sample();
        let mut out = Vec::new();
        r.write(&mut out).unwrap();
        assert_eq!(out.len(), r.payload_len());
        assert_eq!(&out[..13], &[1, 64, 1, 2, 3, 4, 5, 6, 7, 8, 2, b'n', b'1']);
        assert_eq!(&out[13..15], &[0, 2]);
        let back = Routed::read(out).unwrap();
        assert_eq!(back, r);
        assert_eq!(
            Body::decode(&back.body).unwrap(),
            Body::Request {
                line: "vm info".into(),
                namespace: None
            }
        );
        // A copy for one destination shares the body's bytes.
        let one = back.to(vec!["n3".into()]);
        assert!(Arc::ptr_eq(&one.body.buf, &back.body.buf));
    }

    #[test]
    fn bad_envelopes_are_errors() {
        let mut out = Vec::new();
        sample().write(&mut out).unwrap();
        for cut in 0..15 {
            assert!(Routed::read(out[..cut].to_vec()).is_err(), "cut at {cut}");
        }
        let mut flags = out.clone();
        flags[0] = 0x81;
        assert!(Routed::read(flags).is_err());
        let mut none = out.clone();
        none[13..15].copy_from_slice(&[0, 0]);
        assert!(Routed::read(none).is_err());
        let mut long = sample();
        long.dst = vec!["x".repeat(256)];
        assert!(long.write(&mut Vec::new()).is_err());
        long.dst = Vec::new();
        assert!(long.write(&mut Vec::new()).is_err());
        let garbage = Blob::new(b"{nope".to_vec());
        assert!(Body::decode(&garbage).is_err());
    }

    proptest! {
        #[test]
        fn any_envelope_round_trips(src in "[a-z0-9.-]{1,40}",
                                    dst in proptest::collection::vec("[a-z0-9\u{e9}]{1,20}", 1..20),
                                    request in any::<bool>(), ttl in any::<u8>(), id in any::<u64>(),
                                    body in proptest::collection::vec(any::<u8>(), 0..100)) {
            let r = Routed { src, dst, request, ttl, id, body: Blob::new(body) };
            let mut out = Vec::new();
            r.write(&mut out).unwrap();
            prop_assert_eq!(out.len(), r.payload_len());
            prop_assert_eq!(Routed::read(out).unwrap(), r);
        }

        #[test]
        fn garbage_envelopes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Routed::read(bytes);
        }
    }
}
