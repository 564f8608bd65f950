//! The holder's side: a TCP listener (the mesh port + 1, or any free port
//! when that one is taken; told to fetchers in each offer over the mesh)
//! serving parts of the files directory to
//! fetchers that prove they hold the mesh key. Plain threads: each
//! connection reads a file and writes a socket, nothing else.

use super::local;
use super::proto::{self, ProtoError};
use super::Inner;
use std::io::{BufWriter, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 32;
/// A fetcher has this long for its Hello.
const HANDSHAKE: Duration = Duration::from_secs(5);
/// And this long between two Gets.
const IDLE: Duration = Duration::from_secs(120);

/// Binds the listener and starts serving; returns the port.
pub fn start(inner: Arc<Inner>) -> std::io::Result<u16> {
    let preferred = match inner.mesh.port() {
        0 | u16::MAX => 0,
        p => p + 1,
    };
    let l = match TcpListener::bind(("0.0.0.0", preferred)) {
        Ok(l) => l,
        Err(e) => {
            warn!("file port {preferred} unavailable ({e}); serving files on a free port");
            TcpListener::bind(("0.0.0.0", 0))?
        }
    };
    let port = l.local_addr()?.port();
    info!("serving files to other mesh nodes on port {port}");
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("files-listen".into())
        .spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                    active.fetch_sub(1, Ordering::SeqCst);
                    continue;
                }
                let (inner, active) = (inner.clone(), active.clone());
                let spawned = std::thread::Builder::new()
                    .name("files-serve".into())
                    .spawn(move || {
                        let peer = s.peer_addr().map(|a| a.to_string()).unwrap_or_default();
                        match serve(&inner, &s) {
                            Ok(()) => {}
                            Err(e) => debug!(%peer, "file connection ended: {e}"),
                        }
                        active.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    warn!("cannot start a thread for a file connection");
                }
            }
        })?;
    Ok(port)
}

fn serve(inner: &Inner, s: &TcpStream) -> Result<(), ProtoError> {
    s.set_read_timeout(Some(HANDSHAKE))?;
    s.set_nodelay(true)?;
    let key = inner
        .mesh
        .key()
        .map_err(|e| ProtoError::Refused(format!("no mesh key: {e}")))?
        .files_key();
    let mut r = s;
    let hello = proto::read_hello(&mut r, &key)?;
    let mut w = BufWriter::with_capacity(64 << 10, s);
    let opened = crate::paths::files::confine(&inner.root, &hello.name)
        .map_err(|e| e.to_string())
        .and_then(|p| {
            let base = p.file_name().map(|n| n.to_string_lossy().into_owned());
            if base.as_deref().is_none_or(local::is_partial) {
                return Err("no such file".to_string());
            }
            std::fs::File::open(&p).map_err(|_| "no such file".to_string())
        })
        .and_then(|f| {
            let m = f.metadata().map_err(|e| e.to_string())?;
            if !m.is_file() {
                return Err("not a file".into());
            }
            if local::version_of(&m) != hello.version {
                return Err("this node holds another version of the file".into());
            }
            Ok(f)
        });
    let file = match opened {
        Ok(f) => f,
        Err(why) => {
            proto::send_refuse(&mut w, &key, &hello, &why)?;
            w.flush()?;
            return Err(ProtoError::Refused(why));
        }
    };
    let session = proto::send_welcome(&mut w, &key, &hello)?;
    w.flush()?;
    info!("sending {} to {}", hello.name, hello.from);
    s.set_read_timeout(Some(IDLE))?;
    let size = hello.version.size;
    let part_size = super::transfer::PART_SIZE;
    let parts = size.div_ceil(part_size);
    let (start, mut sent) = (Instant::now(), 0u64);
    for counter in 0u64.. {
        let part = match proto::read_get(&mut r, &session, counter) {
            Ok(p) => p,
            Err(ProtoError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        let unchanged = file
            .metadata()
            .map(|m| local::version_of(&m) == hello.version)
            .unwrap_or(false);
        if part >= parts || !unchanged {
            let why = if unchanged {
                "no such part"
            } else {
                "the file changed"
            };
            proto::send_fail(&mut w, &session, counter, why)?;
            w.flush()?;
            continue;
        }
        let off = part * part_size;
        let len = part_size.min(size - off);
        proto::send_part(&mut w, &session, counter, part, len, |at, buf| {
            file.read_exact_at(buf, off + at)
        })?;
        w.flush()?;
        sent += len;
        pace(inner, start, sent);
    }
    Ok(())
}

/// Sleeps as long as `file bandwidth` asks for.
fn pace(inner: &Inner, start: Instant, sent: u64) {
    let limit = inner.limit.load(Ordering::Relaxed);
    if limit == 0 {
        return;
    }
    let due = Duration::from_secs_f64(sent as f64 / limit as f64);
    if let Some(wait) = due.checked_sub(start.elapsed()) {
        std::thread::sleep(wait);
    }
}

/// This host's addresses fetchers may reach: IPv4 and global IPv6, not
/// loopback.
pub fn addresses() -> Vec<String> {
    let mut out = Vec::new();
    let mut ifa: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we free with freeifaddrs; every
    // sockaddr is read according to its family.
    unsafe {
        if libc::getifaddrs(&mut ifa) != 0 {
            return out;
        }
        let mut p = ifa;
        while !p.is_null() {
            let a = (*p).ifa_addr;
            if !a.is_null() {
                match (*a).sa_family as i32 {
                    libc::AF_INET => {
                        let sin = &*(a as *const libc::sockaddr_in);
                        let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                        if !ip.is_loopback() {
                            out.push(ip.to_string());
                        }
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(a as *const libc::sockaddr_in6);
                        let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                        let link_local = ip.segments()[0] & 0xffc0 == 0xfe80;
                        if !ip.is_loopback() && !link_local {
                            out.push(ip.to_string());
                        }
                    }
                    _ => {}
                }
            }
            p = (*p).ifa_next;
        }
        libc::freeifaddrs(ifa);
    }
    out.sort();
    out.dedup();
    out
}
