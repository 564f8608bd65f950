//! The data connection between a node fetching a file and a holder, pure
//! over `Read`/`Write`. The mesh only finds holders; the bytes go over a
//! TCP connection of their own, so a large image never crawls through the
//! command path.
//!
//! Authentication and integrity come from the mesh key (its files key,
//! derived like the mesh's own keys); nothing is encrypted, as on the mesh.
//!
//! 1. fetcher -> holder: Hello (a fresh nonce, the file name and version,
//!    the fetcher's name), MAC under the files key;
//! 2. holder -> fetcher: Welcome (its own fresh nonce), MAC under the files
//!    key over both nonces, or Refuse (why). Both derive the session key
//!    from the files key, both nonces and the Hello, so a replayed or
//!    altered Hello leads nowhere;
//! 3. fetcher -> holder: Get (a part number), each MAC'd under the session
//!    key with a counter, up to two at a time;
//! 4. holder -> fetcher: per Get, in order, Part (number, length, the bytes,
//!    then the part's BLAKE3 checksum and a MAC over number, length,
//!    checksum and counter), or Fail (why). The fetcher hashes the bytes as
//!    they arrive and accepts the part only when checksum and MAC match
//!    (hash, then MAC the hash: one fast pass over the data, and the MAC
//!    binds it to this session and this place in it).
//!
//! A holder that does not hold exactly that version refuses, so parts of
//! two versions are never mixed.

use super::transfer::{Digest, Version};
use hmac::Mac;
use std::io::{Read, Write};
use thiserror::Error;

pub const MAGIC: [u8; 4] = *b"MMF1";
const MAC_LEN: usize = 32;
/// Names, reasons: bounded, so a stranger cannot make us allocate much.
const TEXT_MAX: usize = 4096;
/// A part may not claim more than this.
pub const PART_MAX: u64 = 64 << 20;
/// Data moves in chunks of this size (hashing while reading).
pub const CHUNK: usize = 1 << 20;

const HELLO: u8 = 1;
const WELCOME: u8 = 2;
const REFUSE: u8 = 3;
const GET: u8 = 4;
const PART: u8 = 5;
const FAIL: u8 = 6;

#[derive(Debug, Error)]
pub enum ProtoError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a minimega file connection")]
    Magic,
    #[error("bad MAC (different mesh key?)")]
    Mac,
    #[error("unexpected message {0}")]
    Unexpected(u8),
    #[error("message too long")]
    TooLong,
    #[error("malformed message")]
    Malformed,
    #[error("refused: {0}")]
    Refused(String),
    #[error("holder failed: {0}")]
    Failed(String),
    #[error("part {got} arrived, {want} was expected")]
    WrongPart { got: u64, want: u64 },
    #[error("part {0} is corrupt (checksum mismatch)")]
    Checksum(u64),
}

/// The mesh's one MAC (HMAC-SHA256) over the concatenated parts.
fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = crate::mesh::wire::mac(key);
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

fn verify(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> Result<(), ProtoError> {
    let mut m = crate::mesh::wire::mac(key);
    for p in parts {
        m.update(p);
    }
    m.verify_slice(tag).map_err(|_| ProtoError::Mac)
}

/// A fresh nonce.
pub fn nonce() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).expect("the kernel's random source");
    b
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub nonce: [u8; 32],
    pub name: String,
    pub version: Version,
    pub from: String,
}

impl Hello {
    fn body(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&self.nonce);
        b.extend_from_slice(&self.version.size.to_be_bytes());
        b.extend_from_slice(&self.version.mtime_ns.to_be_bytes());
        for s in [&self.name, &self.from] {
            b.extend_from_slice(&(s.len() as u16).to_be_bytes());
            b.extend_from_slice(s.as_bytes());
        }
        b
    }

    fn parse(b: &[u8]) -> Result<Hello, ProtoError> {
        let take = |at: &mut usize, n: usize| -> Result<&[u8], ProtoError> {
            let s = b.get(*at..*at + n).ok_or(ProtoError::Malformed)?;
            *at += n;
            Ok(s)
        };
        let mut at = 0;
        let mut nonce = [0u8; 32];
        nonce.copy_from_slice(take(&mut at, 32)?);
        let size = u64::from_be_bytes(take(&mut at, 8)?.try_into().unwrap_or_default());
        let mtime_ns = i64::from_be_bytes(take(&mut at, 8)?.try_into().unwrap_or_default());
        let mut text = || -> Result<String, ProtoError> {
            let n = u16::from_be_bytes(take(&mut at, 2)?.try_into().unwrap_or_default()) as usize;
            String::from_utf8(take(&mut at, n)?.to_vec()).map_err(|_| ProtoError::Malformed)
        };
        let (name, from) = (text()?, text()?);
        Ok(Hello {
            nonce,
            name,
            version: Version { mtime_ns, size },
            from,
        })
    }
}

/// The key of one connection.
pub fn session_key(files_key: &[u8], hello: &Hello, theirs: &[u8; 32]) -> [u8; 32] {
    mac(files_key, &[b"session", &hello.body(), theirs])
}

fn write_frame(
    w: &mut impl Write,
    kind: u8,
    body: &[u8],
    tag: &[u8; 32],
) -> Result<(), ProtoError> {
    let mut b = Vec::with_capacity(5 + body.len() + MAC_LEN);
    b.push(kind);
    b.extend_from_slice(&(body.len() as u32).to_be_bytes());
    b.extend_from_slice(body);
    b.extend_from_slice(tag);
    w.write_all(&b)?;
    Ok(())
}

fn read_frame(r: &mut impl Read) -> Result<(u8, Vec<u8>, [u8; 32]), ProtoError> {
    let mut h = [0u8; 5];
    r.read_exact(&mut h)?;
    let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
    if len > TEXT_MAX + 128 {
        return Err(ProtoError::TooLong);
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    let mut tag = [0u8; 32];
    r.read_exact(&mut tag)?;
    Ok((h[0], body, tag))
}

fn text(s: &str) -> &[u8] {
    let b = s.as_bytes();
    &b[..b.len().min(TEXT_MAX)]
}

// ---- the fetcher's side ----

pub fn send_hello(w: &mut impl Write, key: &[u8], hello: &Hello) -> Result<(), ProtoError> {
    if hello.name.len() > TEXT_MAX || hello.from.len() > TEXT_MAX {
        return Err(ProtoError::TooLong);
    }
    w.write_all(&MAGIC)?;
    let body = hello.body();
    write_frame(w, HELLO, &body, &mac(key, &[b"hello", &body]))
}

/// The holder's answer: the session key, or why it refused.
pub fn read_welcome(r: &mut impl Read, key: &[u8], hello: &Hello) -> Result<[u8; 32], ProtoError> {
    let (kind, body, tag) = read_frame(r)?;
    match kind {
        WELCOME if body.len() == 32 => {
            verify(key, &[b"welcome", &hello.nonce, &body], &tag)?;
            let mut theirs = [0u8; 32];
            theirs.copy_from_slice(&body);
            Ok(session_key(key, hello, &theirs))
        }
        REFUSE => {
            verify(key, &[b"refuse", &hello.nonce, &body], &tag)?;
            Err(ProtoError::Refused(
                String::from_utf8_lossy(&body).into_owned(),
            ))
        }
        k => Err(ProtoError::Unexpected(k)),
    }
}

pub fn send_get(
    w: &mut impl Write,
    session: &[u8],
    counter: u64,
    part: u64,
) -> Result<(), ProtoError> {
    let body = part.to_be_bytes();
    write_frame(
        w,
        GET,
        &body,
        &mac(session, &[b"get", &counter.to_be_bytes(), &body]),
    )
}

/// Receives part `want` (the reply numbered `counter`), handing each chunk
/// of its bytes to `sink` with its offset within the part as it arrives.
/// Returns the part's length and checksum once both check out.
pub fn read_part(
    r: &mut impl Read,
    session: &[u8],
    counter: u64,
    want: u64,
    mut sink: impl FnMut(u64, &[u8]) -> std::io::Result<()>,
) -> Result<(u64, Digest), ProtoError> {
    let mut k = [0u8; 1];
    r.read_exact(&mut k)?;
    match k[0] {
        PART => {}
        FAIL => {
            let mut len = [0u8; 4];
            r.read_exact(&mut len)?;
            let n = u32::from_be_bytes(len) as usize;
            if n > TEXT_MAX {
                return Err(ProtoError::TooLong);
            }
            let mut body = vec![0u8; n];
            r.read_exact(&mut body)?;
            let mut tag = [0u8; 32];
            r.read_exact(&mut tag)?;
            verify(session, &[b"fail", &counter.to_be_bytes(), &body], &tag)?;
            return Err(ProtoError::Failed(
                String::from_utf8_lossy(&body).into_owned(),
            ));
        }
        other => return Err(ProtoError::Unexpected(other)),
    }
    let mut h = [0u8; 12];
    r.read_exact(&mut h)?;
    let part = u64::from_be_bytes(h[0..8].try_into().unwrap_or_default());
    let len = u32::from_be_bytes(h[8..12].try_into().unwrap_or_default()) as u64;
    if part != want {
        return Err(ProtoError::WrongPart { got: part, want });
    }
    if len > PART_MAX {
        return Err(ProtoError::TooLong);
    }
    let mut hash = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK.min(len as usize).max(1)];
    let mut at = 0u64;
    while at < len {
        let n = buf.len().min((len - at) as usize);
        r.read_exact(&mut buf[..n])?;
        hash.update(&buf[..n]);
        sink(at, &buf[..n])?;
        at += n as u64;
    }
    let mut trailer = [0u8; 64];
    r.read_exact(&mut trailer)?;
    let digest: Digest = hash.finalize().into();
    verify(
        session,
        &[b"part", &counter.to_be_bytes(), &h, &trailer[..32]],
        &trailer[32..],
    )?;
    if digest[..] != trailer[..32] {
        return Err(ProtoError::Checksum(part));
    }
    Ok((len, digest))
}

/// A part's checksum, as the holder computes it.
pub fn checksum(data: &[u8]) -> Digest {
    blake3::hash(data).into()
}

// ---- the holder's side ----

/// Reads and checks a fetcher's Hello.
pub fn read_hello(r: &mut impl Read, key: &[u8]) -> Result<Hello, ProtoError> {
    let mut m = [0u8; 4];
    r.read_exact(&mut m)?;
    if m != MAGIC {
        return Err(ProtoError::Magic);
    }
    let (kind, body, tag) = read_frame(r)?;
    if kind != HELLO {
        return Err(ProtoError::Unexpected(kind));
    }
    verify(key, &[b"hello", &body], &tag)?;
    Hello::parse(&body)
}

/// Welcomes the fetcher; returns the session key.
pub fn send_welcome(w: &mut impl Write, key: &[u8], hello: &Hello) -> Result<[u8; 32], ProtoError> {
    let mine = nonce();
    write_frame(
        w,
        WELCOME,
        &mine,
        &mac(key, &[b"welcome", &hello.nonce, &mine]),
    )?;
    Ok(session_key(key, hello, &mine))
}

pub fn send_refuse(
    w: &mut impl Write,
    key: &[u8],
    hello: &Hello,
    why: &str,
) -> Result<(), ProtoError> {
    let body = text(why);
    write_frame(w, REFUSE, body, &mac(key, &[b"refuse", &hello.nonce, body]))
}

/// The next Get (number `counter` from this fetcher), checked.
pub fn read_get(r: &mut impl Read, session: &[u8], counter: u64) -> Result<u64, ProtoError> {
    let (kind, body, tag) = read_frame(r)?;
    if kind != GET || body.len() != 8 {
        return Err(ProtoError::Unexpected(kind));
    }
    verify(session, &[b"get", &counter.to_be_bytes(), &body], &tag)?;
    Ok(u64::from_be_bytes(body.try_into().unwrap_or_default()))
}

/// Sends part `part` of `len` bytes, read chunk by chunk from `source`
/// (offset within the part, buffer to fill), as reply number `counter`.
pub fn send_part(
    w: &mut impl Write,
    session: &[u8],
    counter: u64,
    part: u64,
    len: u64,
    mut source: impl FnMut(u64, &mut [u8]) -> std::io::Result<()>,
) -> Result<(), ProtoError> {
    if len > PART_MAX {
        return Err(ProtoError::TooLong);
    }
    let mut h = [0u8; 13];
    h[0] = PART;
    h[1..9].copy_from_slice(&part.to_be_bytes());
    h[9..13].copy_from_slice(&(len as u32).to_be_bytes());
    w.write_all(&h)?;
    let mut hash = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK.min(len as usize).max(1)];
    let mut at = 0u64;
    while at < len {
        let n = buf.len().min((len - at) as usize);
        source(at, &mut buf[..n])?;
        hash.update(&buf[..n]);
        w.write_all(&buf[..n])?;
        at += n as u64;
    }
    let digest: Digest = hash.finalize().into();
    let tag = mac(
        session,
        &[b"part", &counter.to_be_bytes(), &h[1..], &digest],
    );
    w.write_all(&digest)?;
    w.write_all(&tag)?;
    Ok(())
}

pub fn send_fail(
    w: &mut impl Write,
    session: &[u8],
    counter: u64,
    why: &str,
) -> Result<(), ProtoError> {
    let body = text(why);
    write_frame(
        w,
        FAIL,
        body,
        &mac(session, &[b"fail", &counter.to_be_bytes(), body]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    const KEY: [u8; 32] = [7; 32];

    fn hello() -> Hello {
        Hello {
            nonce: nonce(),
            name: "images/base.qcow2".into(),
            version: Version {
                mtime_ns: 1_700_000_000_123_456_789,
                size: 3 << 20,
            },
            from: "node2".into(),
        }
    }

    /// Runs the handshake: returns both sides' session keys.
    fn handshake(h: &Hello, holder_key: &[u8]) -> Result<([u8; 32], [u8; 32]), ProtoError> {
        let mut wire = Vec::new();
        send_hello(&mut wire, &KEY, h)?;
        let seen = read_hello(&mut Cursor::new(&wire), holder_key)?;
        assert_eq!(&seen, h);
        let mut back = Vec::new();
        let theirs = send_welcome(&mut back, holder_key, &seen)?;
        let mine = read_welcome(&mut Cursor::new(&back), &KEY, h)?;
        Ok((mine, theirs))
    }

    #[test]
    fn both_sides_agree_on_a_fresh_session_key() {
        let h = hello();
        let (a, b) = handshake(&h, &KEY).unwrap();
        assert_eq!(a, b);
        let (c, _) = handshake(&h, &KEY).unwrap();
        assert_ne!(a, c, "the holder's nonce makes each session new");
    }

    #[test]
    fn a_wrong_key_or_an_altered_hello_fails() {
        let h = hello();
        assert!(matches!(handshake(&h, &[8; 32]), Err(ProtoError::Mac)));
        let mut wire = Vec::new();
        send_hello(&mut wire, &KEY, &h).unwrap();
        let last = wire.len() - 40;
        wire[last] ^= 1;
        assert!(matches!(
            read_hello(&mut Cursor::new(&wire), &KEY),
            Err(ProtoError::Mac)
        ));
        assert!(matches!(
            read_hello(&mut Cursor::new(b"GET / HTTP/1.1\r\n\r\n"), &KEY),
            Err(ProtoError::Magic)
        ));
    }

    #[test]
    fn refusals_are_authenticated_and_say_why() {
        let h = hello();
        let mut back = Vec::new();
        send_refuse(&mut back, &KEY, &h, "no such file").unwrap();
        let e = read_welcome(&mut Cursor::new(&back), &KEY, &h).unwrap_err();
        assert_eq!(e.to_string(), "refused: no such file");
        assert!(matches!(
            read_welcome(&mut Cursor::new(&back), &[1; 32], &h),
            Err(ProtoError::Mac)
        ));
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn sent_part(session: &[u8], counter: u64, part: u64, body: &[u8]) -> Vec<u8> {
        let mut wire = Vec::new();
        send_part(
            &mut wire,
            session,
            counter,
            part,
            body.len() as u64,
            |at, buf| {
                buf.copy_from_slice(&body[at as usize..at as usize + buf.len()]);
                Ok(())
            },
        )
        .unwrap();
        wire
    }

    #[test]
    fn parts_arrive_whole_and_checked() {
        let s = [3u8; 32];
        let body = data(CHUNK * 2 + 123);
        let wire = sent_part(&s, 4, 9, &body);
        let mut got = vec![0u8; body.len()];
        let (n, digest) = read_part(&mut Cursor::new(&wire), &s, 4, 9, |at, b| {
            got[at as usize..at as usize + b.len()].copy_from_slice(b);
            Ok(())
        })
        .unwrap();
        assert_eq!(n as usize, body.len());
        assert_eq!(got, body);
        assert_eq!(digest, checksum(&body));
        // An empty last part is fine too.
        let wire = sent_part(&s, 0, 0, &[]);
        let (n, _) = read_part(&mut Cursor::new(&wire), &s, 0, 0, |_, _| Ok(())).unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn corrupt_replayed_or_misplaced_parts_are_refused() {
        let s = [3u8; 32];
        let body = data(5000);
        let mut wire = sent_part(&s, 1, 2, &body);
        let sink = |_: u64, _: &[u8]| Ok(());
        // A flipped data byte: the digest no longer matches the MAC'd one.
        wire[100] ^= 0xff;
        let e = read_part(&mut Cursor::new(&wire), &s, 1, 2, sink).unwrap_err();
        assert!(matches!(e, ProtoError::Checksum(2)), "{e}");
        let wire = sent_part(&s, 1, 2, &body);
        assert!(matches!(
            read_part(&mut Cursor::new(&wire), &s, 2, 2, sink),
            Err(ProtoError::Mac)
        ));
        assert!(matches!(
            read_part(&mut Cursor::new(&wire), &s, 1, 3, sink),
            Err(ProtoError::WrongPart { got: 2, want: 3 })
        ));
        let mut fail = Vec::new();
        send_fail(&mut fail, &s, 5, "read error").unwrap();
        let e = read_part(&mut Cursor::new(&fail), &s, 5, 0, sink).unwrap_err();
        assert_eq!(e.to_string(), "holder failed: read error");
    }

    #[test]
    fn gets_are_counted() {
        let s = [9u8; 32];
        let mut wire = Vec::new();
        send_get(&mut wire, &s, 0, 17).unwrap();
        send_get(&mut wire, &s, 1, 18).unwrap();
        let mut r = Cursor::new(&wire);
        assert_eq!(read_get(&mut r, &s, 0).unwrap(), 17);
        assert_eq!(read_get(&mut r, &s, 1).unwrap(), 18);
        let mut replay = Vec::new();
        send_get(&mut replay, &s, 0, 17).unwrap();
        assert!(matches!(
            read_get(&mut Cursor::new(&replay), &s, 1),
            Err(ProtoError::Mac)
        ));
    }
}
