//! The node's cc server: every namespace's [`Book`] (saved under
//! `<base>/cc/`), the VMs agents may speak for, and the agents connected
//! now. Sessions (see `session`) and the command table call in here; no
//! lock is held across an await.

use super::book::Book;
use super::ron::{self, Command};
use super::{files, transport};
use crate::vm::{Vm, Vms};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use thiserror::Error;
use tokio::sync::Notify;
use tracing::{info, warn};

#[derive(Debug, Error)]
pub enum CcError {
    #[error("{0}")]
    Invalid(String),
    #[error("vm not found: {0}")]
    VmNotFound(String),
    #[error("cannot listen on :{port}: {source}")]
    Listen { port: u16, source: std::io::Error },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// The namespace's book could not be written; the change is undone.
    #[error(transparent)]
    Save(#[from] crate::durable::SaveError),
}

/// What puts back a change to a book that could not be saved.
pub type Undo = Box<dyn FnOnce(&mut Book) + Send>;

/// How long a changed book may wait to be saved (what a crash can lose:
/// at worst a command is offered again to an agent that restarts afresh).
const SAVE_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

/// Cancels a task when dropped.
pub(crate) struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Task {
    pub(crate) fn spawn(f: impl std::future::Future<Output = ()> + Send + 'static) -> Option<Task> {
        let rt = tokio::runtime::Handle::try_current().ok()?;
        Some(Task(rt.spawn(f)))
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

#[derive(Default)]
struct Space {
    book: Book,
    listeners: HashMap<u16, Task>,
}

/// A book to write, and who waits for it (and how it went).
struct Save {
    ns: String,
    done: Option<tokio::sync::oneshot::Sender<Result<(), crate::durable::SaveError>>>,
}

/// A VM an agent may speak for, while its QEMU runs.
struct Registered {
    vm: Arc<Vm>,
    /// The daemon's side of the VM's virtio-serial port.
    _serial: Option<Task>,
}

/// An agent connected now.
#[derive(Clone)]
pub(crate) struct Live {
    pub session: u64,
    pub namespace: String,
    /// As it last reported itself (its responses taken out).
    pub client: ron::Client,
    pub kick: Arc<Notify>,
    pub stop: Arc<Notify>,
    /// Its minitunnel (`cc tunnel`, `cc rtunnel`).
    pub tunnel: super::tunnel::Handle,
    /// Its file server's relay (`cc mount`).
    pub ufs: super::ufs::Handle,
}

pub(crate) struct Inner {
    pub vms: Vms,
    /// Where the agents' named pipes go.
    pub plumber: crate::plumb::Plumber,
    /// The node's networks, for the `vm info` columns filters match.
    pub net: std::sync::OnceLock<Arc<crate::net::Net>>,
    pub filepath: PathBuf,
    state_dir: PathBuf,
    spaces: Mutex<BTreeMap<String, Space>>,
    pub(crate) live: Mutex<HashMap<String, Live>>,
    registered: Mutex<HashMap<String, Registered>>,
    saver: Mutex<Option<std::sync::mpsc::Sender<Save>>>,
    next_session: AtomicU64,
    mounts: super::mount::Mounts,
}

/// The node's cc server. Cheap to clone.
#[derive(Clone)]
pub struct Cc {
    pub(crate) inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Cc {
    /// Reads the books a previous daemon saved under `<base>/cc` and, once
    /// a runtime runs, listens again where they listened.
    pub fn new(base: &Path, filepath: &Path, vms: Vms, plumber: crate::plumb::Plumber) -> Cc {
        let state_dir = base.join("cc");
        // A write a crash cut short left its temporary file.
        crate::durable::sweep(&state_dir);
        let mut spaces = BTreeMap::new();
        if let Ok(rd) = std::fs::read_dir(&state_dir) {
            for e in rd.flatten() {
                let p = e.path();
                let (Some(ns), Some("json")) = (
                    p.file_stem().and_then(|s| s.to_str()),
                    p.extension().and_then(|s| s.to_str()),
                ) else {
                    continue;
                };
                match std::fs::read(&p).map(|d| serde_json::from_slice::<Book>(&d)) {
                    Ok(Ok(book)) => {
                        spaces.insert(
                            ns.to_string(),
                            Space {
                                book,
                                listeners: HashMap::new(),
                            },
                        );
                    }
                    Ok(Err(e)) => warn!("cc: ignoring {}: {e}", p.display()),
                    Err(e) => warn!("cc: cannot read {}: {e}", p.display()),
                }
            }
        }
        let cc = Cc {
            inner: Arc::new(Inner {
                vms,
                plumber,
                net: std::sync::OnceLock::new(),
                filepath: filepath.to_path_buf(),
                state_dir,
                spaces: Mutex::new(spaces),
                live: Mutex::new(HashMap::new()),
                registered: Mutex::new(HashMap::new()),
                saver: Mutex::new(None),
                next_session: AtomicU64::new(1),
                mounts: super::mount::Mounts::new(&crate::base::tag(base)),
            }),
        };
        let listen: Vec<(String, u16)> = lock(&cc.inner.spaces)
            .iter()
            .flat_map(|(ns, s)| s.book.listen.iter().map(move |p| (ns.clone(), *p)))
            .collect();
        if tokio::runtime::Handle::try_current().is_ok() {
            for (ns, port) in listen {
                if let Err(e) = cc.listen(&ns, port) {
                    warn!(namespace = %ns, "cc: {e}");
                }
            }
        }
        cc
    }

    /// `cc mount`'s mounts.
    pub fn mounts(&self) -> &super::mount::Mounts {
        &self.inner.mounts
    }

    /// The node's networks; once, when the node is built.
    pub fn set_net(&self, net: Arc<crate::net::Net>) {
        let _ = self.inner.net.set(net);
    }

    pub fn filepath(&self) -> &Path {
        &self.inner.filepath
    }

    pub fn responses_root(&self, ns: &str) -> PathBuf {
        files::responses_root(&self.inner.filepath, ns)
    }

    /// Runs `f` on a namespace's book; saves it afterwards when `f` says
    /// it changed something.
    pub fn with_book<T>(&self, ns: &str, f: impl FnOnce(&mut Book) -> (T, bool)) -> T {
        let (out, changed) = {
            let mut spaces = lock(&self.inner.spaces);
            f(&mut spaces.entry(ns.to_string()).or_default().book)
        };
        if changed {
            self.save(ns);
        }
        out
    }

    pub fn book(&self, ns: &str) -> Book {
        self.with_book(ns, |b| (b.clone(), false))
    }

    /// Saving is one thread's job: it takes the names of changed books,
    /// as many as are queued, and writes each once, so a burst of
    /// check-ins costs one write and never holds up a session.
    fn save(&self, ns: &str) {
        self.queue_save(ns, None);
    }

    /// Waits until the namespace's book is on disk: a command's changes
    /// (a posted command, a listen port, a filter) are saved before its
    /// reply, so a daemon killed right after still has them. The error
    /// says why they are not (the command then undoes them).
    pub async fn flush(&self, ns: &str) -> Result<(), CcError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue_save(ns, Some(tx));
        match rx.await {
            Ok(r) => r.map_err(CcError::Save),
            Err(_) => Err(CcError::Invalid("the cc saver is gone".into())),
        }
    }

    /// A command's change to a namespace's book, on disk before this
    /// returns. `f` changes the book and says how to put it back; when
    /// the book cannot be saved the change is put back and the error says
    /// why, so a reply never claims what a restart would not have.
    pub async fn change<T>(
        &self,
        ns: &str,
        f: impl FnOnce(&mut Book) -> Result<(T, Undo), CcError>,
    ) -> Result<T, CcError> {
        let (out, undo) = {
            let mut spaces = lock(&self.inner.spaces);
            f(&mut spaces.entry(ns.to_string()).or_default().book)?
        };
        if let Err(e) = self.flush(ns).await {
            if let Some(s) = lock(&self.inner.spaces).get_mut(ns) {
                undo(&mut s.book);
            }
            return Err(e);
        }
        Ok(out)
    }

    fn queue_save(
        &self,
        ns: &str,
        done: Option<tokio::sync::oneshot::Sender<Result<(), crate::durable::SaveError>>>,
    ) {
        let mut saver = lock(&self.inner.saver);
        let tx = saver.get_or_insert_with(|| {
            let (tx, rx) = std::sync::mpsc::channel::<Save>();
            let inner = Arc::downgrade(&self.inner);
            std::thread::Builder::new()
                .name("cc-saver".into())
                .spawn(move || {
                    while let Ok(first) = rx.recv() {
                        // A burst (twenty agents answering) is one write;
                        // a command waiting for its save ends the wait.
                        let mut queued = vec![first];
                        let until = std::time::Instant::now() + SAVE_DELAY;
                        while queued.last().is_some_and(|s| s.done.is_none()) {
                            let left = until.saturating_duration_since(std::time::Instant::now());
                            match rx.recv_timeout(left) {
                                Ok(s) => queued.push(s),
                                Err(_) => break,
                            }
                        }
                        queued.extend(rx.try_iter());
                        let mut batch = std::collections::BTreeSet::new();
                        let mut waiting = Vec::new();
                        for s in queued {
                            batch.insert(s.ns.clone());
                            waiting.extend(s.done.map(|d| (s.ns, d)));
                        }
                        let Some(inner) = inner.upgrade() else {
                            return;
                        };
                        let mut failed = BTreeMap::new();
                        for ns in batch {
                            let json = lock(&inner.spaces)
                                .get(&ns)
                                .map(|s| serde_json::to_vec_pretty(&s.book).unwrap_or_default());
                            let path = inner.state_dir.join(format!("{ns}.json"));
                            let Some(json) = json else {
                                // The namespace was destroyed.
                                let _ = std::fs::remove_file(&path);
                                continue;
                            };
                            let _ = std::fs::create_dir_all(&inner.state_dir);
                            let what = format!("the cc state of namespace {ns}");
                            if let Err(e) = crate::durable::write(&path, &json, &what) {
                                warn!("cc: {e}");
                                failed.insert(ns, e);
                            }
                        }
                        for (ns, w) in waiting {
                            let _ = w.send(failed.get(&ns).map_or(Ok(()), |e| Err(e.clone())));
                        }
                    }
                })
                .expect("spawn the cc saver thread");
            tx
        });
        let _ = tx.send(Save {
            ns: ns.to_string(),
            done,
        });
    }

    /// Posts a command typed here: its id, once the book holding it is on
    /// disk (agents hear of it only then).
    pub async fn post(&self, ns: &str, cmd: Command) -> Result<i64, CcError> {
        let id = self
            .change(ns, |b| {
                let id = b.post(cmd);
                Ok((id, Box::new(move |b: &mut Book| drop(b.delete(id))) as Undo))
            })
            .await?;
        self.kick(ns);
        Ok(id)
    }

    /// Takes in a command another node posted for this namespace.
    pub async fn insert(&self, ns: &str, cmd: Command) -> Result<(), CcError> {
        let id = cmd.id;
        self.change(ns, |b| {
            b.insert(cmd).map_err(CcError::Invalid)?;
            Ok(((), Box::new(move |b: &mut Book| drop(b.delete(id))) as Undo))
        })
        .await?;
        self.kick(ns);
        Ok(())
    }

    /// Tells every session of the namespace to look for new commands.
    pub fn kick(&self, ns: &str) {
        for l in lock(&self.inner.live).values() {
            if l.namespace == ns {
                l.kick.notify_one();
            }
        }
    }

    /// The clients of a namespace, by UUID.
    pub fn clients(&self, ns: &str) -> BTreeMap<String, ron::Client> {
        lock(&self.inner.live)
            .iter()
            .filter(|(_, l)| l.namespace == ns)
            .map(|(u, l)| (u.clone(), l.client.clone()))
            .collect()
    }

    /// `cc listen PORT`: agents started with `-parent HOST -port PORT`
    /// may connect, for VMs of this namespace. Remembered across restarts.
    pub fn listen(&self, ns: &str, port: u16) -> Result<(), CcError> {
        if lock(&self.inner.spaces)
            .get(ns)
            .is_some_and(|s| s.listeners.contains_key(&port))
        {
            return Err(CcError::Invalid(format!("already listening on :{port}")));
        }
        let listener = std::net::TcpListener::bind(("0.0.0.0", port))
            .and_then(|l| l.set_nonblocking(true).map(|_| l))
            .map_err(|source| CcError::Listen { port, source })?;
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|source| CcError::Listen { port, source })?;
        info!(namespace = %ns, "cc: listening for agents on :{port}");
        let task = Task::spawn(transport::accept(self.clone(), ns.to_string(), listener))
            .ok_or_else(|| CcError::Invalid("no runtime".into()))?;
        let added = {
            let mut spaces = lock(&self.inner.spaces);
            let space = spaces.entry(ns.to_string()).or_default();
            space.listeners.insert(port, task);
            space.book.listen.insert(port)
        };
        if added {
            self.save(ns);
        }
        Ok(())
    }

    /// Undoes [`Cc::listen`] (its port could not be recorded).
    pub fn unlisten(&self, ns: &str, port: u16) {
        let mut spaces = lock(&self.inner.spaces);
        if let Some(space) = spaces.get_mut(ns) {
            space.listeners.remove(&port);
            space.book.listen.remove(&port);
        }
    }

    /// A destroyed namespace's cc state goes: its `cc listen` ports close
    /// and its saved book is removed (see [`Cc::flush`]), so a restart
    /// opens nothing for it. Its responses stay on disk, as in minimega.
    pub fn drop_namespace(&self, ns: &str) {
        let gone = lock(&self.inner.spaces).remove(ns);
        if let Some(space) = gone {
            for p in space.listeners.keys() {
                info!(namespace = %ns, "cc: no longer listening on :{p}");
            }
            self.save(ns);
        }
    }

    // ---- VMs (called by the hook) ----

    pub(crate) fn register(&self, vm: &Arc<Vm>, serial: Option<Task>) {
        lock(&self.inner.registered).insert(
            vm.uuid.clone(),
            Registered {
                vm: vm.clone(),
                _serial: serial,
            },
        );
    }

    /// The VM's QEMU is gone: no agent speaks for it any more.
    pub(crate) fn unregister(&self, uuid: &str) {
        let gone = lock(&self.inner.registered).remove(uuid);
        // Its file system cannot be reached any more: no stale mount stays.
        self.inner.mounts.forget(uuid);
        if let Some(l) = lock(&self.inner.live).get(uuid) {
            l.stop.notify_one();
        }
        drop(gone);
    }

    pub(crate) fn forget(&self, ns: &str, uuid: &str) {
        self.unregister(uuid);
        self.with_book(ns, |b| {
            let had = b.seen.contains_key(uuid);
            b.forget(uuid);
            ((), had)
        });
    }

    /// The registered VM an agent names (its UUID, or the byte-swapped
    /// form), with whether it was swapped.
    pub(crate) fn vm_for(&self, uuid: &str) -> Option<(Arc<Vm>, bool)> {
        let reg = lock(&self.inner.registered);
        let uuid = uuid.trim().to_ascii_lowercase();
        if let Some(r) = reg.get(&uuid) {
            return Some((r.vm.clone(), false));
        }
        let swapped = ron::unmangle(&uuid)?;
        reg.get(&swapped).map(|r| (r.vm.clone(), true))
    }

    // ---- sessions ----

    /// Makes `uuid`'s session the live one, ending any older one (an agent
    /// that reconnects before its old connection timed out).
    pub(crate) fn attach(
        &self,
        uuid: &str,
        ns: &str,
        client: ron::Client,
        tunnel: super::tunnel::Handle,
        ufs: super::ufs::Handle,
    ) -> Live {
        let session = self.inner.next_session.fetch_add(1, Ordering::Relaxed);
        let live = Live {
            session,
            namespace: ns.to_string(),
            client,
            kick: Arc::new(Notify::new()),
            stop: Arc::new(Notify::new()),
            tunnel,
            ufs,
        };
        if let Some(old) = lock(&self.inner.live).insert(uuid.to_string(), live.clone()) {
            old.stop.notify_one();
        }
        live
    }

    /// Ends `session` of `uuid` unless a newer one replaced it. Whether
    /// it was still the live one.
    pub(crate) fn detach(&self, uuid: &str, session: u64) -> bool {
        let mut live = lock(&self.inner.live);
        if live.get(uuid).is_some_and(|l| l.session == session) {
            live.remove(uuid);
            return true;
        }
        false
    }

    pub(crate) fn update_client(&self, uuid: &str, session: u64, client: ron::Client) {
        if let Some(l) = lock(&self.inner.live).get_mut(uuid) {
            if l.session == session {
                l.client = client;
            }
        }
    }

    /// A connected client's tunnel, as minimega names its absence.
    pub fn tunnel(&self, uuid: &str) -> Result<super::tunnel::Handle, super::tunnel::TunnelError> {
        lock(&self.inner.live)
            .get(uuid)
            .map(|l| l.tunnel.clone())
            .ok_or_else(|| super::tunnel::TunnelError::NoClient(uuid.to_string()))
    }

    /// A connected client's file server relay.
    pub fn ufs(&self, uuid: &str) -> Result<super::ufs::Handle, super::ufs::UfsError> {
        lock(&self.inner.live)
            .get(uuid)
            .map(|l| l.ufs.clone())
            .ok_or_else(|| super::ufs::UfsError::NoClient(uuid.to_string()))
    }

    /// The tunnels of this namespace's connected clients, by UUID.
    pub fn tunnels(&self, ns: &str) -> Vec<(String, super::tunnel::Handle)> {
        let mut v: Vec<_> = lock(&self.inner.live)
            .iter()
            .filter(|(_, l)| l.namespace == ns)
            .map(|(u, l)| (u.clone(), l.tunnel.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// One client, as it last reported itself.
    pub(crate) fn client(&self, uuid: &str) -> Option<ron::Client> {
        lock(&self.inner.live).get(uuid).map(|l| l.client.clone())
    }
}
