//! The listener at `<base>/minimega`: one task per connection, each with its
//! own session, answering requests through the daemon's command engine.

use super::access::{self, Peer, Policy};
use super::proto::{self, Decoder, Reply, Request, MAX_REQUEST};
use crate::cli::Core;
use crate::command::Session;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// The base directory systemd gives the daemon, and the one minimega's
/// tools look in by default; a link joins the two (see [`link_compat`]).
const SYSTEMD_BASE: &str = "/run/minimega";
const CLASSIC_BASE: &str = "/tmp/minimega";

/// How long a refused client has to send its request before the daemon
/// hangs up on it.
const REFUSED_GRACE: Duration = Duration::from_secs(5);

/// How long a client may fall silent in the middle of a request. minimega's
/// client writes each request at once; a request stalled this long is a
/// client that died or one holding the daemon's memory on purpose.
pub const REQUEST_IDLE: Duration = Duration::from_secs(10);
/// How long one request may take to arrive in all, however it trickles.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(60);
/// Bytes read at a time. A client's buffered bytes are capped by the
/// decoder at MAX_REQUEST (plus one read).
const READ_CHUNK: usize = 16 * 1024;

#[derive(Debug, Error)]
pub enum SocketError {
    #[error("a command socket from an earlier minimega remains at {path} (no running minimega holds {base}, so it is stale); start with -force to replace it")]
    Stale { path: PathBuf, base: PathBuf },
    #[error("{path} exists and is not a socket; remove it to start minimega")]
    NotSocket { path: PathBuf },
    #[error("cannot remove the stale command socket {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set the owner group or mode of {path}: {source}")]
    Permissions {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What to do about a socket a crashed daemon left behind. The caller holds
/// the base directory's lock, so no live daemon owns it: it is stale, and
/// goes when `-force` or `-recover` says so (as minimega removes it for
/// either), else startup stops and says how to proceed.
pub fn clear_stale(path: &Path, base: &Path, replace: bool) -> Result<bool, SocketError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(SocketError::Bind {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(SocketError::NotSocket {
            path: path.to_path_buf(),
        });
    }
    if !replace {
        return Err(SocketError::Stale {
            path: path.to_path_buf(),
            base: base.to_path_buf(),
        });
    }
    std::fs::remove_file(path).map_err(|source| SocketError::Remove {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(true)
}

/// Points `link` at `socket`, unless something that is not our own earlier
/// link is in the way. Returns whether the link is in place.
pub fn link_compat(socket: &Path, link: &Path) -> std::io::Result<bool> {
    match std::fs::read_link(link) {
        Ok(target) if target == socket => return Ok(true),
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        // Exists and is not a link: another minimega's socket, say.
        Err(_) => return Ok(false),
    }
    // Tools find the socket through this link, so the directory holding it
    // must be one nobody else can swap the link in (a /tmp/minimega made
    // by another user first is not used).
    if let Some(dir) = link.parent() {
        crate::base::ensure_shared(dir, crate::base::effective_uid())
            .map_err(std::io::Error::other)?;
    }
    std::os::unix::fs::symlink(socket, link)?;
    Ok(true)
}

/// Removes `link` if it still points at `socket`.
pub fn unlink_compat(socket: &Path, link: &Path) {
    if std::fs::read_link(link).is_ok_and(|t| t == socket) {
        let _ = std::fs::remove_file(link);
    }
}

/// The served socket; removed (with its compatibility link) on drop.
pub struct CommandSocket {
    path: PathBuf,
    /// Device and inode of the socket we made, so we never remove another's.
    id: (u64, u64),
    link: Option<PathBuf>,
    accept: JoinHandle<()>,
}

impl CommandSocket {
    /// Binds `<base>/minimega` and starts accepting. Must run inside the
    /// runtime.
    pub fn start(daemon: Core) -> Result<CommandSocket, SocketError> {
        let cfg = &daemon.node.config;
        let path = cfg.socket_path();
        if clear_stale(&path, &cfg.base, cfg.force || cfg.recover)? {
            warn!(
                "replaced the stale command socket {} left by an earlier run",
                path.display()
            );
        }
        let listener = UnixListener::bind(&path).map_err(|source| SocketError::Bind {
            path: path.clone(),
            source,
        })?;
        let policy = Policy::current();
        let perms_err = |source| SocketError::Permissions {
            path: path.clone(),
            source,
        };
        let set_perms = || -> std::io::Result<std::fs::Metadata> {
            if let Some(gid) = policy.group {
                std::os::unix::fs::chown(&path, None, Some(gid))?;
            }
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
            std::fs::metadata(&path)
        };
        let meta = match set_perms() {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(perms_err(e));
            }
        };
        let link = (cfg.base == Path::new(SYSTEMD_BASE))
            .then(|| Path::new(CLASSIC_BASE).join("minimega"))
            .and_then(|link| match link_compat(&path, &link) {
                Ok(true) => Some(link),
                Ok(false) => {
                    info!(
                        "{} is taken; minimega's tools must use -base {SYSTEMD_BASE}",
                        link.display()
                    );
                    None
                }
                Err(e) => {
                    warn!("cannot link {} to the command socket: {e}", link.display());
                    None
                }
            });
        if policy.group.is_none() {
            debug!(
                "no group {}: only root and the daemon's user may use the command socket",
                crate::users::GROUP
            );
        }
        let accept = tokio::spawn(accept_loop(listener, daemon.clone(), policy));
        Ok(CommandSocket {
            path,
            id: (meta.dev(), meta.ino()),
            link,
            accept,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for CommandSocket {
    fn drop(&mut self) {
        self.accept.abort();
        if let Some(link) = &self.link {
            unlink_compat(&self.path, link);
        }
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                warn!("cannot remove {}: {e}", self.path.display());
            }
        }
    }
}

async fn accept_loop(listener: UnixListener, daemon: Core, policy: Policy) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(daemon.clone(), stream, policy));
            }
            Err(e) => {
                // Out of descriptors, typically: wait rather than spin.
                warn!("command socket: cannot accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn peer_of(stream: &UnixStream) -> std::io::Result<Peer> {
    let cred = stream.peer_cred()?;
    Ok(Peer {
        uid: cred.uid(),
        gid: cred.gid(),
        pid: cred.pid(),
        groups: cred.pid().map(access::process_groups).unwrap_or_default(),
    })
}

async fn send(wr: &mut OwnedWriteHalf, reply: &Reply) -> std::io::Result<()> {
    wr.write_all(&reply.encode()).await
}

/// What one read brought.
enum Read {
    Object(Vec<u8>),
    More(usize),
    Done,
}

/// A request that stopped arriving.
struct Stalled;

/// Reads more of the stream. Between requests a client may stay silent as
/// long as it likes (an `-attach` shell does); inside one, each read must
/// come within [`REQUEST_IDLE`] and the whole request within
/// [`REQUEST_DEADLINE`] of its first byte.
async fn read_request(
    rd: &mut tokio::net::unix::OwnedReadHalf,
    buf: &mut [u8],
    decoder: &Decoder,
    began: &mut Option<tokio::time::Instant>,
) -> Result<Read, Stalled> {
    let now = tokio::time::Instant::now();
    let r = if decoder.is_partial() {
        let t0 = *began.get_or_insert(now);
        let left = (t0 + REQUEST_DEADLINE)
            .saturating_duration_since(now)
            .min(REQUEST_IDLE);
        tokio::time::timeout(left, rd.read(buf))
            .await
            .map_err(|_| Stalled)?
    } else {
        *began = None;
        rd.read(buf).await
    };
    Ok(match r {
        Ok(0) => {
            if decoder.is_partial() {
                debug!("command socket: client hung up in the middle of a request");
            } else {
                debug!("command socket: client disconnected");
            }
            Read::Done
        }
        Ok(n) => Read::More(n),
        Err(e) => {
            debug!("command socket: read failed: {e}");
            Read::Done
        }
    })
}

/// Serves one client until it hangs up or sends what cannot be read.
async fn serve_connection(daemon: Core, stream: UnixStream, policy: Policy) {
    let peer = match peer_of(&stream) {
        Ok(p) => p,
        Err(e) => {
            warn!("command socket: no peer credentials, hanging up: {e}");
            return;
        }
    };
    let host = daemon.node.hostname().to_string();
    let (mut rd, mut wr) = stream.into_split();
    let mut decoder = Decoder::new(MAX_REQUEST);
    let mut buf = vec![0u8; READ_CHUNK];
    if !policy.allows(&peer) {
        info!(uid = peer.uid, pid = ?peer.pid, "command socket: refused a client");
        let _ = send(&mut wr, &Reply::error(&host, &policy.refusal(&peer))).await;
        // Closing at once could fail the client's write of its request
        // before it reads the answer; let that request arrive first.
        let _ = tokio::time::timeout(REFUSED_GRACE, async {
            while let Ok(n) = rd.read(&mut buf).await {
                decoder.push(&buf[..n]);
                if n == 0 || !matches!(decoder.next_object(), Ok(None)) {
                    break;
                }
            }
        })
        .await;
        return;
    }
    debug!(uid = peer.uid, pid = ?peer.pid, "command socket: client connected");
    let mut session = Session::new();
    // When the first byte of the request being received arrived.
    let mut began: Option<tokio::time::Instant> = None;
    loop {
        let object = match decoder.next_object() {
            Ok(Some(o)) => {
                began = None;
                Read::Object(o)
            }
            Ok(None) => match read_request(&mut rd, &mut buf, &decoder, &mut began).await {
                Err(Stalled) => {
                    info!(uid = peer.uid, pid = ?peer.pid, "command socket: a request stalled; hanging up");
                    let msg = format!(
                        "request not completed (silent for {}s, or longer than {}s in all); hanging up",
                        REQUEST_IDLE.as_secs(),
                        REQUEST_DEADLINE.as_secs()
                    );
                    let _ = send(&mut wr, &Reply::error(&host, &msg)).await;
                    return;
                }
                Ok(r) => r,
            },
            Err(e) => {
                info!(uid = peer.uid, "command socket: {e}; hanging up");
                let _ = send(&mut wr, &Reply::error(&host, &e.to_string())).await;
                return;
            }
        };
        let object = match object {
            Read::Object(o) => o,
            Read::Done => return,
            Read::More(n) => {
                decoder.push(&buf[..n]);
                continue;
            }
        };
        let replies = match proto::parse_request(&object) {
            Ok(Request::Command(line)) => {
                debug!(%line, "command socket: exec");
                proto::command_replies(&daemon.exec(&mut session, &line).await)
            }
            Ok(Request::Suggest(partial)) => {
                vec![Reply::suggestions(daemon.engine.suggest(&partial))]
            }
            Ok(Request::PlumbPipe(pipe)) => {
                let rest = decoder.take_buffered();
                crate::plumb::socket::serve(&daemon.node.plumber, &pipe, rest, rd, wr).await;
                return;
            }
            Ok(Request::Console {
                vm,
                serial,
                namespace,
            }) => {
                let ns = Some(namespace.as_str()).filter(|n| !n.is_empty());
                match crate::cli::console::open(&daemon, ns, &vm, serial).await {
                    Err(e) => {
                        let _ = send(&mut wr, &Reply::error(&host, &e)).await;
                    }
                    Ok(console) => {
                        info!(uid = peer.uid, %vm, "serial{serial} attached");
                        if send(&mut wr, &Reply::default()).await.is_ok() {
                            let rest = decoder.take_buffered();
                            crate::cli::console::run(console, rest, rd, wr).await;
                        }
                        info!(uid = peer.uid, %vm, "serial{serial} detached");
                    }
                }
                return;
            }
            Err(e) => vec![Reply::error(&host, &e.to_string())],
        };
        for reply in &replies {
            if let Err(e) = send(&mut wr, reply).await {
                debug!("command socket: client hung up before its answer: {e}");
                return;
            }
        }
        if session.quit {
            debug!("command socket: client quit");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener as StdListener;

    #[test]
    fn stale_sockets_go_only_when_told() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("minimega");
        assert!(
            !clear_stale(&path, dir.path(), false).unwrap(),
            "nothing there"
        );
        drop(StdListener::bind(&path).unwrap());
        let e = clear_stale(&path, dir.path(), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("-force") && e.contains("stale"), "{e}");
        assert!(path.exists());
        assert!(clear_stale(&path, dir.path(), true).unwrap());
        assert!(!path.exists());
        std::fs::write(&path, "x").unwrap();
        let e = clear_stale(&path, dir.path(), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a socket"), "{e}");
        assert!(
            path.exists(),
            "a file that is not a socket is never removed"
        );
    }

    #[test]
    fn compat_link_never_takes_anothers_place() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("run/minimega");
        let link = dir.path().join("tmp/minimega/minimega");
        assert!(link_compat(&socket, &link).unwrap());
        assert_eq!(std::fs::read_link(&link).unwrap(), socket);
        assert!(link_compat(&socket, &link).unwrap(), "our own link stays");
        unlink_compat(&socket, &link);
        assert!(std::fs::symlink_metadata(&link).is_err());

        // Someone else's socket or link is left alone, also on the way out.
        drop(StdListener::bind(&link).unwrap());
        assert!(!link_compat(&socket, &link).unwrap());
        unlink_compat(&socket, &link);
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_socket());
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink("/elsewhere", &link).unwrap();
        assert!(!link_compat(&socket, &link).unwrap());
        unlink_compat(&socket, &link);
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("/elsewhere"));
    }
}
