//! The fetcher's side of one transfer: a connection per holder (plain
//! threads, writing each part straight into the partial file at its
//! offset), and the task that watches them: a lost holder's parts go to
//! the others, a failed holder is tried again after a pause, holders are
//! asked for afresh over the mesh when none is left (a restarted holder
//! serves on a new port), and the record of the parts written (with their
//! checksums) is kept current so a later run resumes.

use super::proto::{self, Hello};
use super::transfer::{Holders, Offer, Transfer};
use super::{Flight, Inner};
use std::collections::VecDeque;
use std::fs::File;
use std::io::BufReader;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Gets in flight per connection: the holder never waits for the next.
const WINDOW: usize = 2;
const CONNECT: Duration = Duration::from_secs(3);
/// A holder silent this long mid-part is lost.
const STALL: Duration = Duration::from_secs(30);
/// How often the record is brought up to date.
const CHECKPOINT: Duration = Duration::from_secs(1);
/// With no holder left, how often the mesh is asked again.
const REASK: Duration = Duration::from_secs(2);
/// A transfer that makes no progress and has no holder this long fails
/// (its partial file stays, for a later `file get` to resume).
pub const GIVE_UP: Duration = Duration::from_secs(300);

/// Runs the transfer to its end. `file` is the partial file, sized.
pub async fn run(
    inner: Arc<Inner>,
    flight: Arc<Flight>,
    file: Arc<File>,
    mut holders: Holders,
) -> Result<(), String> {
    let key = inner.mesh.key()?.files_key();
    let me = inner.mesh.hostname().to_string();
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Result<(), String>)>();
    let mut last_progress = (Instant::now(), flight.completed());
    let mut next_ask = Instant::now() + REASK;
    let mut tick = tokio::time::interval(CHECKPOINT);
    loop {
        if flight.is_complete() {
            break;
        }
        // Connections only while there is a part to claim: one that found
        // none ends, and is not made again until a lost holder frees some.
        let ready = if flight.with(|t| t.unclaimed()) {
            holders.ready(Instant::now())
        } else {
            Vec::new()
        };
        for offer in ready {
            let (flight, file, tx, me) = (flight.clone(), file.clone(), tx.clone(), me.clone());
            tokio::task::spawn_blocking(move || {
                let r = connection(&flight, &file, &offer, &key, &me);
                let _ = tx.send((offer.holder.clone(), r));
            });
        }
        tokio::select! {
            Some((holder, r)) = rx.recv() => {
                flight.with(|t| t.release(&holder));
                if let Err(e) = &r {
                    warn!(
                        "{}: holder {holder} lost ({e}); {} of {} parts kept",
                        flight.name,
                        flight.completed(),
                        flight.parts()
                    );
                }
                holders.ended(&holder, r.is_err(), Instant::now());
            }
            _ = tick.tick() => {
                checkpoint(&flight);
                let done = flight.completed();
                if done != last_progress.1 {
                    last_progress = (Instant::now(), done);
                }
            }
        }
        if holders.busy() == 0 && !flight.is_complete() {
            if last_progress.0.elapsed() > GIVE_UP {
                checkpoint(&flight);
                return Err(format!(
                    "no holder of {} answered for {}; {} of {} parts kept for a later file get",
                    flight.name,
                    crate::timefmt::go_duration(GIVE_UP),
                    flight.completed(),
                    flight.parts()
                ));
            }
            if Instant::now() >= next_ask {
                next_ask = Instant::now() + REASK;
                let offers = super::ask(&inner, &flight.name).await;
                let version = flight.with(|t| t.version);
                holders.update(version, &offers);
            }
        }
    }
    checkpoint(&flight);
    let from = flight.with(|t| {
        t.from
            .iter()
            .map(|(h, n)| format!("{h}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    });
    let resumed = flight.with(|t| t.resumed);
    info!(
        "{}: got all {} parts ({resumed} already on disk; {from})",
        flight.name,
        flight.parts()
    );
    Ok(())
}

/// Records the parts written so far with their checksums. Not synced: a
/// later run checks each part's bytes against its checksum before keeping
/// it, so a record ahead of the disk (a crash of the machine) costs only
/// those parts again.
fn checkpoint(flight: &Flight) {
    let rec = flight.with(|t| t.record());
    let body = serde_json::to_vec(&rec).unwrap_or_default();
    let tmp = flight.record.with_extension("tmp");
    if std::fs::write(&tmp, body)
        .and_then(|_| std::fs::rename(&tmp, &flight.record))
        .is_err()
    {
        warn!("{}: cannot write {}", flight.name, flight.record.display());
    }
}

/// Starts writing a finished part to disk without waiting, so the final
/// sync has little left to do and dirty pages do not pile up.
fn write_behind(file: &File, off: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a hint on a descriptor we own; errors do not matter.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            off as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

fn connect(offer: &Offer) -> Result<TcpStream, String> {
    let mut last = String::from("no address");
    for a in &offer.addrs {
        let Ok(ip) = a.parse::<IpAddr>() else {
            continue;
        };
        match TcpStream::connect_timeout(&SocketAddr::new(ip, offer.port), CONNECT) {
            Ok(s) => return Ok(s),
            Err(e) => last = format!("{a}:{}: {e}", offer.port),
        }
    }
    Err(format!("cannot reach {}: {last}", offer.holder))
}

/// One connection to one holder, fetching parts until none is left to
/// claim. Parts it claimed and did not finish are released by the caller.
fn connection(
    flight: &Flight,
    file: &File,
    offer: &Offer,
    key: &[u8; 32],
    me: &str,
) -> Result<(), String> {
    let s = connect(offer)?;
    let e = |e: proto::ProtoError| format!("{}: {e}", offer.holder);
    let io = |e: std::io::Error| format!("{}: {e}", offer.holder);
    s.set_nodelay(true).map_err(io)?;
    s.set_read_timeout(Some(STALL)).map_err(io)?;
    s.set_write_timeout(Some(STALL)).map_err(io)?;
    let hello = Hello {
        nonce: proto::nonce(),
        name: flight.name.clone(),
        version: flight.with(|t| t.version),
        from: me.to_string(),
    };
    let mut w = &s;
    proto::send_hello(&mut w, key, &hello).map_err(e)?;
    let mut r = BufReader::with_capacity(256 << 10, &s);
    let session = proto::read_welcome(&mut r, key, &hello).map_err(e)?;
    let (mut sent, mut received) = (0u64, 0u64);
    let mut pending: VecDeque<u64> = VecDeque::new();
    loop {
        while pending.len() < WINDOW {
            let Some(p) = flight.with(|t| t.claim(&offer.holder)) else {
                break;
            };
            proto::send_get(&mut w, &session, sent, p).map_err(e)?;
            sent += 1;
            pending.push_back(p);
        }
        let Some(&p) = pending.front() else {
            return Ok(());
        };
        let (off, _) = flight.with(|t| t.range(p));
        let (len, digest) = proto::read_part(&mut r, &session, received, p, |at, buf| {
            file.write_all_at(buf, off + at)
        })
        .map_err(e)?;
        write_behind(file, off, len);
        received += 1;
        pending.pop_front();
        flight.with(|t| t.complete(p, &offer.holder, digest));
    }
}

/// A transfer's bookkeeping, for the status table and the checks above.
impl Flight {
    pub fn with<T>(&self, f: impl FnOnce(&mut Transfer) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }
    pub fn completed(&self) -> u64 {
        self.with(|t| t.completed())
    }
    pub fn parts(&self) -> u64 {
        self.with(|t| t.parts())
    }
    pub fn is_complete(&self) -> bool {
        self.with(|t| t.is_complete())
    }
}
