//! The files directory shared over the mesh (minimega's iomeshage): `file
//! list/get/delete/status`, and the fetch a launch makes for the kernel,
//! initrd, cdrom and disks a node lacks.
//!
//! A node that lacks a file asks every other node over the mesh who holds
//! it (`file offer`, a command line like any other); each holder answers
//! with the file's size, modification time and where its file server
//! listens. The node picks the newest version, then pulls its parts over
//! direct TCP connections, one per holder, in parallel, authenticated and
//! checked with the mesh key ([`proto`]). Parts land in a hidden partial
//! file beside the destination at their offsets (no second copy), which
//! becomes the file by a rename once complete, with the source's mode and
//! modification time (so every copy is the same version). A record of the
//! parts on disk lets a transfer resume after a lost holder, or in a later
//! `file get` after a restart. One name is never fetched twice at once.
//!
//! - [`path`]: names inside the files directory (pure)
//! - [`transfer`], [`proto`]: bookkeeping and the wire (pure)
//! - [`local`]: listing, globs, deleting
//! - `serve`, `fetch`: the two ends of a transfer (threads, sockets, files)
//! - [`commands`], [`hook`]

mod fetch;
pub mod local;
pub mod murmur;
pub mod proto;
mod serve;
pub mod transfer;

use crate::mesh::Mesh;
use crate::paths::files::{self as path, PathError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use thiserror::Error;
use tokio::sync::{watch, Semaphore};
use tracing::{info, warn};
use transfer::{Holders, Offer, Transfer, Version, PART_SIZE};

/// Transfers running at once; the rest wait their turn (queued).
const CONCURRENT: usize = 3;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FileError {
    /// `file` names are always inside (a leading `/` is the files
    /// directory's), so confine's advice to give an absolute path is not
    /// theirs.
    #[error("`{0}` is outside the files directory")]
    Outside(String),
    #[error("empty file name")]
    Empty,
    /// minimega's words.
    #[error("get {0}: file not found")]
    NotFound(String),
    #[error("stream {0}: file not found")]
    Stream(String),
    #[error("get {0}: file already in flight")]
    InFlight(String),
    #[error("{0}: a transfer of it is in flight")]
    Busy(String),
    #[error("refusing to delete the files directory itself")]
    Root,
    #[error("not enough space for {name} in {dir}: {need} bytes needed, {free} free")]
    Space {
        name: String,
        dir: String,
        need: u64,
        free: u64,
    },
    #[error("get {0}: {1}")]
    Failed(String, String),
    #[error("{0}")]
    Io(String),
}

impl From<PathError> for FileError {
    fn from(e: PathError) -> FileError {
        match e {
            PathError::Escapes(name) => FileError::Outside(name),
            PathError::Empty => FileError::Empty,
        }
    }
}

/// One transfer in progress.
pub struct Flight {
    pub name: String,
    pub partial: PathBuf,
    record: PathBuf,
    state: Mutex<Transfer>,
    queued: AtomicBool,
    done: watch::Sender<Option<Result<(), FileError>>>,
}

pub(crate) struct Inner {
    root: PathBuf,
    mesh: Mesh,
    flights: Mutex<BTreeMap<String, Arc<Flight>>>,
    queue: Semaphore,
    server: OnceLock<Result<u16, String>>,
    /// Bytes per second this node serves at most (0: no limit).
    limit: AtomicU64,
    /// `-hashfiles`: each file's hash, kept while its version stays.
    hashes: Mutex<BTreeMap<String, (Version, String)>>,
}

/// The node's file service. Cheap to clone.
#[derive(Clone)]
pub struct Files(Arc<Inner>);

/// A row of `file status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub name: String,
    pub partial: String,
    pub completed: u64,
    pub parts: u64,
    pub queued: bool,
}

impl Files {
    pub fn new(root: &Path, mesh: Mesh) -> Files {
        Files(Arc::new(Inner {
            root: root.to_path_buf(),
            mesh,
            flights: Default::default(),
            queue: Semaphore::new(CONCURRENT),
            server: OnceLock::new(),
            limit: AtomicU64::new(0),
            hashes: Default::default(),
        }))
    }

    pub fn root(&self) -> &Path {
        &self.0.root
    }

    /// No other node to ask for files.
    pub fn alone(&self) -> bool {
        self.0.mesh.others().is_empty()
    }

    pub fn set_limit(&self, bytes_per_sec: u64) {
        self.0.limit.store(bytes_per_sec, Ordering::Relaxed);
    }

    pub fn limit(&self) -> u64 {
        self.0.limit.load(Ordering::Relaxed)
    }

    pub fn list(&self, name: &str, recursive: bool) -> Result<Vec<local::Entry>, FileError> {
        Ok(local::list(&self.0.root, &path::relative(name)?, recursive))
    }

    /// A listed file's murmur3 hash (`-hashfiles`), computed once per
    /// version (size and modification time); "" for a directory or a file
    /// that cannot be read.
    pub fn hash(&self, e: &local::Entry) -> String {
        if e.dir {
            return String::new();
        }
        let mut cache = self.0.hashes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((v, h)) = cache.get(&e.name) {
            if *v == e.version {
                return h.clone();
            }
        }
        match murmur::hash_file(&self.0.root.join(&e.name)) {
            Ok(h) => {
                cache.insert(e.name.clone(), (e.version, h.clone()));
                h
            }
            Err(err) => {
                warn!("hashing {}: {err}", e.name);
                String::new()
            }
        }
    }

    /// `file stream`: the path of a file (not a directory) of the files
    /// directory, for its bytes to be sent in the answer.
    pub fn stream_path(&self, name: &str) -> Result<PathBuf, FileError> {
        let rel = path::relative(name)?;
        let p = self.0.root.join(&rel);
        match std::fs::metadata(&p) {
            Ok(m) if m.is_file() => Ok(p),
            _ => Err(FileError::Stream(name.to_string())),
        }
    }

    /// `file delete`: a file, a directory and all below it, or every match
    /// of a glob; with their partial files. Nothing there is no error.
    pub fn delete(&self, name: &str) -> Result<(), FileError> {
        let rel = path::relative(name)?;
        if rel.as_os_str().is_empty() {
            return Err(FileError::Root);
        }
        for p in local::expand(&self.0.root, &rel) {
            if let Some(n) = path::name_under(&self.0.root, &p) {
                if self
                    .flights()
                    .keys()
                    .any(|f| *f == n || f.starts_with(&format!("{n}/")))
                {
                    return Err(FileError::Busy(n));
                }
            }
            let m = std::fs::symlink_metadata(&p).map_err(|e| FileError::Io(e.to_string()))?;
            let r = if m.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            r.map_err(|e| FileError::Io(format!("cannot delete {}: {e}", p.display())))?;
            let (partial, record) = local::partial_paths(&p);
            let _ = std::fs::remove_file(partial);
            let _ = std::fs::remove_file(record);
        }
        if !is_glob_path(&rel) {
            let (partial, record) = local::partial_paths(&self.0.root.join(&rel));
            let _ = std::fs::remove_file(partial);
            let _ = std::fs::remove_file(record);
        }
        Ok(())
    }

    fn flights(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Flight>>> {
        self.0.flights.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Transfers in flight (one that failed says why in the log, and a
    /// launch waiting for it fails with that reason).
    pub fn status(&self) -> Vec<Status> {
        self.flights()
            .values()
            .map(|f| Status {
                name: f.name.clone(),
                partial: f.partial.display().to_string(),
                completed: f.completed(),
                parts: f.parts(),
                queued: f.queued.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// `file offer`: the files this node holds under `name`, and where it
    /// serves them (the server starts on first use).
    pub fn offer(&self, name: &str) -> Result<(u16, Vec<String>, Vec<local::Entry>), FileError> {
        let files: Vec<local::Entry> = self
            .list(name, true)?
            .into_iter()
            .filter(|e| !e.dir)
            .collect();
        if files.is_empty() {
            return Ok((0, Vec::new(), files));
        }
        let port = self
            .0
            .server
            .get_or_init(|| serve::start(self.0.clone()).map_err(|e| e.to_string()))
            .clone()
            .map_err(|e| FileError::Io(format!("cannot serve files: {e}")))?;
        Ok((port, serve::addresses(), files))
    }

    /// `file get`: starts fetching what `name` names (a file, a directory,
    /// a glob) from the mesh; returns once the transfers are under way.
    /// Files this node already has are left alone.
    pub async fn get(&self, name: &str) -> Result<(), FileError> {
        let rel = rel_name(name)?;
        if !is_glob_path(Path::new(&rel)) && self.0.root.join(&rel).is_file() {
            return Ok(());
        }
        if self.flights().contains_key(&rel) {
            return Err(FileError::InFlight(rel));
        }
        let offers = ask(&self.0, &rel).await;
        let mut by_name: BTreeMap<String, Vec<Offer>> = BTreeMap::new();
        for o in offers {
            by_name.entry(o.name.clone()).or_default().push(o);
        }
        if by_name.is_empty() {
            return Err(FileError::NotFound(rel));
        }
        for (n, offers) in by_name {
            if self.0.root.join(&n).is_file() || self.flights().contains_key(&n) {
                continue;
            }
            let rx = self.start(&n, &offers)?;
            drop(rx);
        }
        Ok(())
    }

    /// Makes sure this node has the file `name`: at once if it is here,
    /// else after fetching it (or waiting for the transfer in flight).
    pub async fn fetch(&self, name: &str) -> Result<PathBuf, FileError> {
        let rel = rel_name(name)?;
        let dst = self.0.root.join(&rel);
        if dst.is_file() {
            return Ok(dst);
        }
        let existing = self.flights().get(&rel).map(|f| f.done.subscribe());
        let mut rx = match existing {
            Some(rx) => rx,
            None => {
                let offers: Vec<Offer> = ask(&self.0, &rel)
                    .await
                    .into_iter()
                    .filter(|o| o.name == rel)
                    .collect();
                if offers.is_empty() {
                    return Err(FileError::NotFound(rel));
                }
                self.start(&rel, &offers)?
            }
        };
        let r = rx
            .wait_for(|d| d.is_some())
            .await
            .map(|d| d.clone())
            .unwrap_or(None);
        match r {
            Some(Ok(())) => Ok(dst),
            Some(Err(e)) => Err(e),
            None => Err(FileError::Failed(rel, "the transfer ended".into())),
        }
    }

    /// Registers a transfer of `name` from `offers` and runs it.
    fn start(
        &self,
        name: &str,
        offers: &[Offer],
    ) -> Result<watch::Receiver<Option<Result<(), FileError>>>, FileError> {
        let (version, holders_of) =
            transfer::choose(offers).ok_or_else(|| FileError::NotFound(name.to_string()))?;
        let dst = path::confine(&self.0.root, name)?;
        let (partial, record) = local::partial_paths(&dst);
        let (tx, rx) = watch::channel(None);
        let flight = Arc::new(Flight {
            name: name.to_string(),
            partial,
            record,
            state: Mutex::new(Transfer::new(name, version, PART_SIZE)),
            queued: AtomicBool::new(true),
            done: tx,
        });
        {
            let mut f = self.flights();
            if let Some(other) = f.get(name) {
                return Ok(other.done.subscribe());
            }
            f.insert(name.to_string(), flight.clone());
        }
        let mut holders = Holders::default();
        holders.update(version, &holders_of);
        let mode = holders_of.first().map(|o| o.mode).unwrap_or(0o644);
        let inner = self.0.clone();
        tokio::spawn(async move {
            let r = run(inner.clone(), flight.clone(), &dst, mode, holders).await;
            if let Err(e) = &r {
                warn!("{}: {e}", flight.name);
            }
            inner
                .flights
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&flight.name);
            let _ = flight.done.send(Some(r));
        });
        Ok(rx)
    }
}

fn rel_name(name: &str) -> Result<String, FileError> {
    let rel = path::relative(name)?;
    if rel.as_os_str().is_empty() {
        return Err(FileError::Empty);
    }
    Ok(rel.to_string_lossy().into_owned())
}

fn is_glob_path(p: &Path) -> bool {
    local::is_glob(&p.to_string_lossy())
}

/// One transfer, queued, from its partial file to the file in place.
async fn run(
    inner: Arc<Inner>,
    flight: Arc<Flight>,
    dst: &Path,
    mode: u32,
    holders: Holders,
) -> Result<(), FileError> {
    let name = flight.name.clone();
    let fail = |e: String| FileError::Failed(name.clone(), e);
    let _turn = inner
        .queue
        .acquire()
        .await
        .map_err(|e| fail(e.to_string()))?;
    flight.queued.store(false, Ordering::Relaxed);
    if let Some(dir) = dst.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    }
    if !path::inside(&inner.root, dst) {
        return Err(FileError::Outside(name.clone()));
    }
    let file = prepare(&flight)?;
    let version = flight.with(|t| t.version);
    info!(
        "fetching {name} ({} bytes) from {}",
        version.size,
        holders.names().join(", ")
    );
    fetch::run(inner.clone(), flight.clone(), Arc::new(file), holders)
        .await
        .map_err(fail)?;
    finish(&flight, dst, mode, version).map_err(fail)
}

/// Opens the partial file (resuming from its record when it is of the same
/// version), sized, after checking there is room for what is missing.
fn prepare(flight: &Flight) -> Result<std::fs::File, FileError> {
    let io = |e: std::io::Error| FileError::Io(format!("{}: {e}", flight.partial.display()));
    let version = flight.with(|t| t.version);
    let old = std::fs::File::open(&flight.partial).ok();
    let resumed = std::fs::read(&flight.record)
        .ok()
        .and_then(|b| serde_json::from_slice::<transfer::Record>(&b).ok())
        .zip(old)
        .and_then(|(r, f)| {
            Transfer::resume(&r, version, PART_SIZE, |_, (off, len), digest| {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; len as usize];
                f.read_exact_at(&mut buf, off).is_ok() && proto::checksum(&buf) == *digest
            })
        });
    if let Some(t) = resumed {
        info!(
            "{}: resuming with the {} parts already on disk",
            flight.name,
            t.completed()
        );
        flight.with(|s| *s = t);
    } else {
        let _ = std::fs::remove_file(&flight.partial);
        let _ = std::fs::remove_file(&flight.record);
    }
    let dir = flight.partial.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(io)?;
    let need = flight.with(|t| t.remaining());
    let free = free_space(dir);
    if free < need {
        return Err(FileError::Space {
            name: flight.name.clone(),
            dir: dir.display().to_string(),
            need,
            free,
        });
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&flight.partial)
        .map_err(io)?;
    f.set_len(version.size).map_err(io)?;
    Ok(f)
}

fn free_space(dir: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return 0;
    };
    // SAFETY: statvfs fills the struct we pass.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut s) != 0 {
            return u64::MAX;
        }
        s.f_bavail as u64 * s.f_frsize as u64
    }
}

/// The partial file becomes the file: synced, the source's mode and time,
/// renamed into place; the record goes.
fn finish(flight: &Flight, dst: &Path, mode: u32, version: Version) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&flight.partial)
        .map_err(|e| e.to_string())?;
    // Durable before it is in place: a copy is never there and corrupt.
    f.sync_data().map_err(|e| e.to_string())?;
    f.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| e.to_string())?;
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(version.mtime_ns.max(0) as u64);
    f.set_times(std::fs::FileTimes::new().set_modified(t).set_accessed(t))
        .map_err(|e| e.to_string())?;
    drop(f);
    std::fs::rename(&flight.partial, dst).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&flight.record);
    info!("{}: complete", flight.name);
    Ok(())
}

/// Asks every other node which files it holds under `name`.
async fn ask(inner: &Inner, name: &str) -> Vec<Offer> {
    let others = inner.mesh.others();
    if others.is_empty() {
        return Vec::new();
    }
    let line = format!(
        "file offer {}",
        crate::command::lexer::quote_if_needed(name, false)
    );
    let answers = inner.mesh.send(&others, &line).await;
    answers
        .iter()
        .filter(|r| !r.is_error())
        .flat_map(|r| transfer::parse_offer(&r.host, &r.header, &r.tabular))
        .collect()
}
