//! Who may join: the shared mesh key, the keys derived from it, and the
//! mutual challenge-response that opens every link.
//!
//! The key file (`mesh_key` in the config, `-meshkey`, default
//! `/etc/minimega/mesh.key`) holds at least 16 bytes, typically 32 random
//! bytes in base64 or hex; surrounding whitespace is ignored. Every node of
//! a mesh has the same file. Without a readable key the daemon still starts
//! and works alone: it accepts no link, sends no discovery and refuses
//! `mesh dial`, saying why; it reads the file again when a link is wanted,
//! so copying the key in later is enough.
//!
//! Handshake (each frame carries the MAC of [`super::wire`]):
//!
//! 1. initiator -> responder: Hello (name, context, fresh 32-byte nonce),
//!    MAC under the hello key derived from the mesh key;
//! 2. responder -> initiator: its own Hello, with its own fresh nonce;
//! 3. both derive one session key per direction from the mesh key and
//!    both Hellos; initiator -> responder: Confirm under its session key,
//!    which proves it holds the mesh key and saw this responder's nonce;
//! 4. responder -> initiator: Accept (or Refuse, with the reason) under its
//!    session key, the same proof the other way.
//!
//! A peer without the key fails at step 1 or 2; a replayed Hello fails at
//! step 3 or 4 because the other side's nonce is new. Frames of one link
//! cannot be replayed on another (different session keys) nor within it
//! (sequence numbers). Nothing is encrypted.

use super::frames::{self, FrameError, Received};
use super::stats::Counters;
use super::wire::{Hello, Kind, Message, Opener, Sealer, WireError};
use hmac::Mac;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};

/// How long each handshake step may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(5);
pub const MIN_KEY_LEN: usize = 16;

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("cannot read mesh key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mesh key {path} is too short: {len} bytes, at least {MIN_KEY_LEN} needed")]
    Short { path: PathBuf, len: usize },
}

/// The shared secret, and the keys derived from it once. Its bytes never
/// appear in logs or Debug output.
#[derive(Clone)]
pub struct MeshKey {
    secret: Vec<u8>,
    hello: [u8; 32],
    discovery: [u8; 32],
}

impl std::fmt::Debug for MeshKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MeshKey(..)")
    }
}

/// Session keys of one link.
pub struct SessionKeys {
    pub initiator_to_responder: [u8; 32],
    pub responder_to_initiator: [u8; 32],
}

impl MeshKey {
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<MeshKey, KeyError> {
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < MIN_KEY_LEN {
            return Err(KeyError::Short {
                path: path.to_path_buf(),
                len: trimmed.len(),
            });
        }
        let secret = trimmed.to_vec();
        Ok(MeshKey {
            hello: derive(&secret, "hello", &[]),
            discovery: derive(&secret, "discovery", &[]),
            secret,
        })
    }

    /// Reads the key file; the second value warns about loose permissions.
    pub fn load(path: &Path) -> Result<(MeshKey, Option<String>), KeyError> {
        use std::os::unix::fs::PermissionsExt;
        let read_err = |source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        };
        let bytes = std::fs::read(path).map_err(read_err)?;
        let key = MeshKey::from_bytes(&bytes, path)?;
        let mode = std::fs::metadata(path)
            .map_err(read_err)?
            .permissions()
            .mode();
        let warning = (mode & 0o077 != 0).then(|| {
            format!(
                "mesh key {} is readable by other users (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            )
        });
        Ok((key, warning))
    }

    /// MACs the Hello frames (and so refuses strangers from the first frame).
    pub fn hello_key(&self) -> &[u8; 32] {
        &self.hello
    }

    /// MACs discovery datagrams.
    pub fn discovery_key(&self) -> &[u8; 32] {
        &self.discovery
    }

    /// Authenticates file transfers between nodes (the files room uses it).
    pub fn files_key(&self) -> [u8; 32] {
        derive(&self.secret, "files", &[])
    }

    /// One key per direction, bound to both Hellos (and so to both nonces).
    pub fn session_keys(&self, hello_i: &[u8], hello_r: &[u8]) -> SessionKeys {
        let mut h = Sha256::new();
        for part in [hello_i, hello_r] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        let transcript = h.finalize();
        SessionKeys {
            initiator_to_responder: derive(&self.secret, "initiator to responder", &transcript),
            responder_to_initiator: derive(&self.secret, "responder to initiator", &transcript),
        }
    }
}

/// A key for one purpose. The label's "v1" names this derivation, not the
/// frame format's version.
fn derive(secret: &[u8], label: &str, data: &[u8]) -> [u8; 32] {
    let mut m = super::wire::mac(secret);
    m.update(b"minimega mesh v1 ");
    m.update(label.as_bytes());
    m.update(&[0]);
    m.update(data);
    m.finalize().into_bytes().into()
}

/// A fresh challenge, hex.
pub fn nonce() -> String {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).expect("the kernel's random source");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn valid_nonce(n: &str) -> bool {
    n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit())
}

#[derive(Debug, Error)]
pub enum HandshakeError {
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("protocol error: expected {expected}, got {got:?}")]
    Unexpected { expected: &'static str, got: Kind },
    #[error("{0}")]
    Frame(FrameError),
}

impl From<FrameError> for HandshakeError {
    fn from(e: FrameError) -> HandshakeError {
        match e {
            FrameError::Wire(WireError::Mac) => {
                HandshakeError::Auth("the peer's frame does not carry this node's mesh key".into())
            }
            FrameError::Wire(WireError::Sequence { .. }) => {
                HandshakeError::Auth("replayed or reordered handshake frame".into())
            }
            e => HandshakeError::Frame(e),
        }
    }
}

/// A link whose peer proved it holds the key.
pub struct Authenticated {
    pub peer: Hello,
    pub tx: Sealer,
    pub rx: Opener,
}

/// Reads the peer's Hello, checked, with its payload as sent (the session
/// keys are derived from both Hellos' exact bytes).
async fn read_hello<S: AsyncRead + Unpin>(
    io: &mut S,
    rx: &mut Opener,
    counters: &Counters,
) -> Result<(Hello, Vec<u8>), HandshakeError> {
    match read_step(io, rx, counters).await? {
        Received {
            msg: Message::Hello(h),
            payload,
        } => {
            check_hello(&h)?;
            Ok((h, payload))
        }
        r => Err(HandshakeError::Unexpected {
            expected: "Hello",
            got: r.msg.kind(),
        }),
    }
}

/// One handshake frame: small, and soon.
async fn read_step<S: AsyncRead + Unpin>(
    io: &mut S,
    rx: &mut Opener,
    counters: &Counters,
) -> Result<Received, FrameError> {
    frames::read_within(io, rx, frames::HANDSHAKE_MAX, STEP_TIMEOUT, counters).await
}

fn check_hello(h: &Hello) -> Result<(), HandshakeError> {
    if !valid_nonce(&h.nonce) {
        return Err(HandshakeError::Auth("malformed nonce".into()));
    }
    if h.name.is_empty() || h.name.len() > 255 || h.name.contains(char::is_whitespace) {
        return Err(HandshakeError::Auth(format!(
            "invalid node name {:?}",
            h.name
        )));
    }
    Ok(())
}

/// Opens a link as the dialing side. `me.nonce` must be fresh; the frames
/// are counted in `counters`.
pub async fn initiate<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    key: &MeshKey,
    me: Hello,
    counters: &Counters,
) -> Result<Authenticated, HandshakeError> {
    let hk = key.hello_key();
    let (mut tx, mut rx) = (Sealer::new(hk), Opener::new(hk));
    let mine = Message::Hello(me);
    let raw_i = mine.payload();
    frames::write(io, &mut tx, &mine, counters).await?;
    // A responder whose MAC check fails on our Hello just hangs up.
    let (peer, raw_r) = read_hello(io, &mut rx, counters)
        .await
        .map_err(|e| match e {
            HandshakeError::Frame(FrameError::Closed) => HandshakeError::Auth(
                "the peer closed the connection (it does not have our mesh key, or is no minimega)"
                    .into(),
            ),
            e => e,
        })?;
    let keys = key.session_keys(&raw_i, &raw_r);
    tx.rekey(&keys.initiator_to_responder);
    rx.rekey(&keys.responder_to_initiator);
    frames::write(io, &mut tx, &Message::Confirm, counters).await?;
    match read_step(io, &mut rx, counters).await?.msg {
        Message::Accept => Ok(Authenticated { peer, tx, rx }),
        Message::Refuse(why) => Err(HandshakeError::Refused(why)),
        m => Err(HandshakeError::Unexpected {
            expected: "Accept",
            got: m.kind(),
        }),
    }
}

/// Answers a link as the listening side, up to the proof of the key. The
/// caller then decides and writes `Accept` or `Refuse` with the returned
/// sealer.
pub async fn respond<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    key: &MeshKey,
    me: Hello,
    counters: &Counters,
) -> Result<Authenticated, HandshakeError> {
    let hk = key.hello_key();
    let (mut tx, mut rx) = (Sealer::new(hk), Opener::new(hk));
    let (peer, raw_i) = read_hello(io, &mut rx, counters).await?;
    if peer.nonce == me.nonce {
        return Err(HandshakeError::Auth("our own Hello reflected back".into()));
    }
    let mine = Message::Hello(me);
    let raw_r = mine.payload();
    frames::write(io, &mut tx, &mine, counters).await?;
    let keys = key.session_keys(&raw_i, &raw_r);
    tx.rekey(&keys.responder_to_initiator);
    rx.rekey(&keys.initiator_to_responder);
    match read_step(io, &mut rx, counters).await?.msg {
        Message::Confirm => Ok(Authenticated { peer, tx, rx }),
        m => Err(HandshakeError::Unexpected {
            expected: "Confirm",
            got: m.kind(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> MeshKey {
        MeshKey::from_bytes(s.as_bytes(), Path::new("k")).unwrap()
    }

    fn hello(name: &str) -> Hello {
        Hello {
            name: name.into(),
            context: "lab".into(),
            nonce: nonce(),
            port: 9000,
            explicit: false,
            software: "test".into(),
        }
    }

    #[test]
    fn key_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mesh.key");
        std::fs::write(&p, "  short\n").unwrap();
        assert!(matches!(
            MeshKey::load(&p),
            Err(KeyError::Short { len: 5, .. })
        ));
        std::fs::write(&p, "c2VjcmV0IHNlY3JldCBzZWNyZXQgc2VjcmV0\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (_, warn) = MeshKey::load(&p).unwrap();
        assert!(warn.unwrap().contains("chmod 600"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(MeshKey::load(&p).unwrap().1.is_none());
        let e = MeshKey::load(&dir.path().join("none")).unwrap_err();
        assert!(e.to_string().contains("cannot read mesh key"), "{e}");
        assert_eq!(format!("{:?}", key("0123456789abcdef")), "MeshKey(..)");
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_transcript() {
        let k = key("0123456789abcdef");
        assert_ne!(k.hello_key(), k.discovery_key());
        let a = k.session_keys(b"hi", b"hr");
        let b = k.session_keys(b"hi", b"hr2");
        assert_ne!(a.initiator_to_responder, a.responder_to_initiator);
        assert_ne!(a.initiator_to_responder, b.initiator_to_responder);
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        let c = k.session_keys(b"ab", b"c");
        let d = k.session_keys(b"a", b"bc");
        assert_ne!(c.initiator_to_responder, d.initiator_to_responder);
    }

    async fn pair(
        ki: MeshKey,
        kr: MeshKey,
        verdict: Option<&str>,
    ) -> (
        Result<Authenticated, HandshakeError>,
        Result<Authenticated, HandshakeError>,
    ) {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let verdict = verdict.map(str::to_string);
        let responder = tokio::spawn(async move {
            let c = Counters::default();
            let r = respond(&mut b, &kr, hello("r"), &c).await;
            if let Ok(mut auth) = r {
                let m = match &verdict {
                    None => Message::Accept,
                    Some(why) => Message::Refuse(why.clone()),
                };
                frames::write(&mut b, &mut auth.tx, &m, &c).await.unwrap();
                // Keep the stream open until the initiator has read.
                let _ = frames::read(&mut b, &mut auth.rx, frames::HANDSHAKE_MAX, &c).await;
                return Ok(auth);
            }
            r
        });
        let i = initiate(&mut a, &ki, hello("i"), &Counters::default()).await;
        drop(a);
        (i, responder.await.unwrap())
    }

    #[tokio::test]
    async fn a_large_frame_before_authentication_is_refused_from_its_header() {
        use crate::mesh::wire::{HEADER_LEN, MAGIC, VERSION};
        use tokio::io::AsyncWriteExt;
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let mut head = [0u8; HEADER_LEN];
        head[..4].copy_from_slice(&MAGIC);
        head[4] = VERSION;
        head[5] = Kind::Hello as u8;
        let len = frames::HANDSHAKE_MAX + 1;
        head[16..20].copy_from_slice(&(len as u32).to_be_bytes());
        a.write_all(&head).await.unwrap();
        let r = respond(
            &mut b,
            &key("shared key 0123456789"),
            hello("r"),
            &Counters::default(),
        )
        .await;
        assert!(
            matches!(r, Err(HandshakeError::Frame(FrameError::TooLarge { len: l, .. })) if l == len),
            "{:?}",
            r.err()
        );
    }

    #[tokio::test]
    async fn same_key_links_and_frames_flow_both_ways() {
        let (i, r) = pair(
            key("shared key 0123456789"),
            key("shared key 0123456789"),
            None,
        )
        .await;
        let (mut i, r) = (i.unwrap(), r.unwrap());
        assert_eq!(i.peer.name, "r");
        assert_eq!(r.peer.name, "i");
        // The session keys agree: a frame sealed by one opens at the other.
        let f = i.tx.seal(&Message::Heartbeat).unwrap();
        let mut ropen = r.rx;
        assert_eq!(ropen.decode(&f).unwrap().unwrap().0, Message::Heartbeat);
    }

    #[tokio::test]
    async fn wrong_key_is_refused_on_both_sides() {
        let (i, r) = pair(
            key("shared key 0123456789"),
            key("other key 0123456789!"),
            None,
        )
        .await;
        assert!(matches!(i, Err(HandshakeError::Auth(_))), "{:?}", i.err());
        assert!(matches!(r, Err(HandshakeError::Auth(_))), "{:?}", r.err());
    }

    #[tokio::test]
    async fn a_refusal_carries_its_reason() {
        let (i, _) = pair(
            key("shared key 0123456789"),
            key("shared key 0123456789"),
            Some("context `x` is not ours"),
        )
        .await;
        match i {
            Err(HandshakeError::Refused(why)) => assert_eq!(why, "context `x` is not ours"),
            other => panic!("{:?}", other.err()),
        }
    }

    #[tokio::test]
    async fn a_replayed_hello_cannot_confirm() {
        // Record an initiator's Hello, then replay it to a fresh responder:
        // the responder's new nonce makes the recorded Confirm useless.
        let k = key("shared key 0123456789");
        let mut tx = Sealer::new(k.hello_key());
        let hello_frame = tx.seal(&Message::Hello(hello("i"))).unwrap();
        let confirm_frame = tx.seal(&Message::Confirm).unwrap(); // under the hello key
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let kr = k.clone();
        let responder =
            tokio::spawn(
                async move { respond(&mut b, &kr, hello("r"), &Counters::default()).await },
            );
        use tokio::io::AsyncWriteExt;
        a.write_all(&hello_frame).await.unwrap();
        a.write_all(&confirm_frame).await.unwrap();
        let r = responder.await.unwrap();
        assert!(matches!(r, Err(HandshakeError::Auth(_))), "{:?}", r.err());
    }
}
