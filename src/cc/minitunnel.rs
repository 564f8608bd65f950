//! minimega's minitunnel: TCP connections multiplexed over one cc
//! connection (`cc tunnel`, `cc rtunnel`). Its messages are a gob stream
//! of their own, carried in pieces as the `Tunnel` bytes of ron TUNNEL
//! messages: a piece may hold part of a message or several, so each side
//! keeps a [`Reader`] that reassembles them, and a [`Writer`] that defines
//! the message type once per stream, as Go's encoder does. Pure.
//!
//! The daemon dials (a HANDSHAKE), the agent answers with an acked
//! HANDSHAKE; from then on either side may open a connection (CONNECT with
//! a fresh transaction id, TID), send DATA on it, or end it (CLOSED with a
//! reason). FORWARD asks the agent to listen on a port of its own and open
//! a connection back for each one it accepts (`cc rtunnel`); the agent
//! answers with an acked DATA carrying the TID, and an error if it could
//! not listen.

use super::gob::{gob_structs, Decoder, Encoder, GobError, GobStruct, Ty};

/// `tunnelMessage.Type`.
pub mod kind {
    pub const HANDSHAKE: i64 = 0;
    pub const CONNECT: i64 = 1;
    pub const CLOSED: i64 = 2;
    pub const DATA: i64 = 3;
    pub const FORWARD: i64 = 4;
}

/// Bytes read from a connection per DATA message, as minimega reads them.
pub const BUFFER_SIZE: usize = 32 * 1024;

/// The reason sent with CLOSED when a connection ended cleanly. The stock
/// agent closes its end only for a CLOSED that carries an error, and sends
/// nothing itself when its end reaches EOF; saying "EOF" makes it close.
pub const EOF: &str = "EOF";

gob_structs! {
    /// One message, either way; which fields matter depends on `kind`.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct TunnelMessage => "tunnelMessage" {
        pub kind: i64 => "Type",
        pub ack: bool => "Ack",
        pub tid: i64 => "TID",
        pub source: i64 => "Source",
        pub host: String => "Host",
        pub port: i64 => "Port",
        pub error: String => "Error",
        pub data: Vec<u8> => "Data",
    }
}

pub static T_TUNNEL: Ty = Ty::Struct(<TunnelMessage as GobStruct>::STRUCT);

impl TunnelMessage {
    pub fn handshake(ack: bool) -> Self {
        TunnelMessage {
            kind: kind::HANDSHAKE,
            ack,
            ..Default::default()
        }
    }

    pub fn connect(tid: i64, host: &str, port: u16) -> Self {
        TunnelMessage {
            kind: kind::CONNECT,
            tid,
            host: host.into(),
            port: port.into(),
            ..Default::default()
        }
    }

    pub fn data(tid: i64, data: &[u8]) -> Self {
        TunnelMessage {
            kind: kind::DATA,
            tid,
            data: data.to_vec(),
            ..Default::default()
        }
    }

    /// The end of a connection; `why` is never empty (see [`EOF`]).
    pub fn closed(tid: i64, why: &str) -> Self {
        TunnelMessage {
            kind: kind::CLOSED,
            tid,
            error: if why.is_empty() {
                EOF.into()
            } else {
                why.into()
            },
            ..Default::default()
        }
    }

    pub fn forward(tid: i64, source: u16, host: &str, port: u16) -> Self {
        TunnelMessage {
            kind: kind::FORWARD,
            tid,
            source: source.into(),
            host: host.into(),
            port: port.into(),
            ..Default::default()
        }
    }

    /// The answer to a FORWARD: acked DATA, with the error if any.
    pub fn forwarded(tid: i64, error: &str) -> Self {
        TunnelMessage {
            kind: kind::DATA,
            tid,
            ack: true,
            error: error.into(),
            ..Default::default()
        }
    }

    /// The port of a CONNECT or FORWARD, if it is one.
    pub fn port(&self) -> Option<u16> {
        u16::try_from(self.port).ok().filter(|p| *p != 0)
    }

    pub fn source_port(&self) -> Option<u16> {
        u16::try_from(self.source).ok().filter(|p| *p != 0)
    }
}

/// One side's outgoing stream.
#[derive(Debug, Default)]
pub struct Writer {
    enc: Encoder,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    /// The bytes that send `m` (with the type's definition the first time).
    pub fn encode(&mut self, m: &TunnelMessage) -> Result<Vec<u8>, GobError> {
        self.enc.encode(&T_TUNNEL, &m.to_gob())
    }
}

/// One side's incoming stream, fed in pieces as they arrive.
#[derive(Debug, Default)]
pub struct Reader {
    dec: Decoder,
    buf: Vec<u8>,
}

impl Reader {
    pub fn new() -> Reader {
        Reader::default()
    }

    /// Adds a piece; returns the messages it completed, in order. An error
    /// ends the stream (what follows cannot be framed any more).
    pub fn push(&mut self, piece: &[u8]) -> Result<Vec<TunnelMessage>, GobError> {
        self.buf.extend_from_slice(piece);
        let mut out = Vec::new();
        let mut at = 0;
        while let Some((head, len)) = super::gob::frame_len(&self.buf[at..])? {
            let Some(body) = self.buf.get(at + head..at + head + len) else {
                break;
            };
            if let Some((_, v)) = self.dec.message(body)? {
                out.push(TunnelMessage::from_gob(&v)?);
            }
            at += head + len;
        }
        self.buf.drain(..at);
        Ok(out)
    }

    /// Bytes held for a message not complete yet.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// A transaction id: random and non-negative, as Go's `rand.Int()`, so
/// ids either side makes do not collide in practice.
pub fn new_tid() -> i64 {
    let mut b = [0u8; 8];
    if getrandom::getrandom(&mut b).is_err() {
        // Never seen on Linux; a clock-derived id still differs per call.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        b = (t.as_nanos() as u64).to_le_bytes();
    }
    (u64::from_le_bytes(b) >> 1) as i64
}

/// A forward as `cc tunnel list` shows it, and minimega's `src:host:dst`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub src: u16,
    pub host: String,
    pub dst: u16,
}

impl std::fmt::Display for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.src, self.host, self.dst)
    }
}

/// A port as the `cc tunnel` commands take it: minimega's messages for a
/// word that is not an integer, and one for a number no TCP port has.
pub fn parse_port(what: &str, word: &str) -> Result<u16, String> {
    let n: i64 = word.parse().map_err(|_| {
        format!("non-integer {what}: {word} : strconv.Atoi: parsing {word:?}: invalid syntax")
    })?;
    match u16::try_from(n) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(format!("invalid {what} port: {word} (1-65535)")),
    }
}

#[cfg(test)]
#[path = "minitunnel_tests.rs"]
mod tests;
