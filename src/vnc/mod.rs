//! Every VM's screen over VNC, as minimega serves it: QEMU draws on a unix
//! socket in the VM's folder, and the daemon listens on a TCP port per
//! running VM (`vm info` `vnc_port`) and joins each connection to that
//! socket. What the server sends passes through untouched; what a client
//! sends is followed ([`crate::console::rfb::ClientStream`]) so it can be
//! recorded, and a ClientCutText is typed into the guest as keystrokes.
//! On top: `vnc record kb|fb`, `vnc play` and its controls, `vnc type`,
//! `vnc inject`, all in the original's file formats.
//!
//! - [`ports`]: which port a VM gets (pure)
//! - `shim`: the listener and each connection's relay
//! - `record`: kb and fb recordings
//! - `play`: playbacks of kb files, WaitForIt included
//! - `hook`: the [`VmHook`](crate::vm::hooks::VmHook) that gives each
//!   launched or re-adopted VM its port and frees it with its QEMU
//!
//! A VM keeps its port number across a daemon restart and a relaunch when
//! the number is still free (it is kept in `<vm folder>/vnc_port`).

mod hook;
mod play;
pub mod ports;
mod record;
mod shim;

use crate::command::BoxFuture;
use crate::console::client::{Client, ClientError, Options};
use crate::console::kb::{Action, KbError};
use crate::console::rfb::ClientMessage;
use crate::console::{godur, keys};
use crate::vm::Vm;
use play::Playback;
use ports::Pool;
use record::{FbRecording, KbRecording};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use thiserror::Error;
use tokio::net::UnixStream;
use tracing::{info, warn};

/// Where and how VNC ports listen (`-vncaddr`, `-vncports`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// None: every address (IPv6 and IPv4 where the host has both).
    pub addr: Option<IpAddr>,
    pub ports: Option<(u16, u16)>,
}

/// Why a `vnc` command or a VM's port failed. The texts the original has
/// are the original's.
#[derive(Debug, Error)]
pub enum VncError {
    #[error("vm not running: {0}")]
    NotRunning(String),
    #[error("kb recording for {0} already running")]
    KbRunning(String),
    #[error("fb recording for {0} already running")]
    FbRunning(String),
    #[error("kb recording {0} not found")]
    KbNotFound(String),
    #[error("fb recording {0} not found")]
    FbNotFound(String),
    #[error("kb playback not found for {0}")]
    NoPlayback(String),
    #[error("kb playback {0} already playing")]
    Playing(String),
    #[error("playback not stepable")]
    NotSteppable,
    #[error("playback not pauseable")]
    NotPausable,
    #[error("playback not playable")]
    NotPlayable,
    #[error("{0} needs a running playback to be injected into")]
    NeedsPlayback(&'static str),
    #[error(
        "no free VNC port in {pool} ({held} held by this node's VMs, the rest by other programs)"
    )]
    Exhausted { pool: String, held: usize },
    #[error("no free VNC port for {count} more VM(s): {free} of {pool} free")]
    NoRoom {
        pool: String,
        count: usize,
        free: usize,
    },
    #[error("cannot listen for VNC on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not on this node, and no node of the mesh has it")]
    Missing { path: PathBuf },
    #[error("{file}: {error}")]
    Kb { file: String, error: KbError },
    #[error("{file}: line {line}: WaitForIt template: {why}")]
    Template {
        file: String,
        line: usize,
        why: String,
    },
    #[error("vnc type: {0}")]
    Type(#[from] keys::KeysError),
    #[error("{vm}: {source}")]
    Connect { vm: String, source: ClientError },
}

/// Brings a file another node holds here: a playback (or its LoadFile)
/// of a file in the files directory that only the head has. The node
/// supplies it (over the files room).
pub trait Fetch: Send + Sync {
    fn fetch<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, Result<(), String>>;
}

/// One running VM's screen: its port, and what is recorded from or
/// played into it.
pub(crate) struct Display {
    pub name: String,
    pub namespace: String,
    /// QEMU's socket.
    pub socket: PathBuf,
    pub password: Option<String>,
    pub port: u16,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
    kb: Mutex<Option<KbRecording>>,
    fb: Mutex<Option<FbRecording>>,
    play: Mutex<Option<Arc<Playback>>>,
}

impl Display {
    /// A message a client sent (through the shim, or one of our own
    /// playbacks), for the kb recording if there is one.
    pub fn record(&self, msg: &ClientMessage) {
        if let Some(kb) = lock(&self.kb).as_mut() {
            kb.record(msg);
        }
    }

    pub fn options(&self) -> Options {
        Options {
            password: self.password.clone().map(String::into_bytes),
            ..Options::default()
        }
    }

    /// A fresh RFB session with QEMU, past the handshake.
    pub async fn connect(&self) -> Result<Client<UnixStream>, VncError> {
        let fail = |source| VncError::Connect {
            vm: self.name.clone(),
            source,
        };
        let s = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| fail(e.into()))?;
        Client::connect(s, &self.options()).await.map_err(fail)
    }
}

impl Display {
    /// Stops listening and drops every connection. Awaited: the port is
    /// free once this returns (an abort alone frees it only when the
    /// runtime next gets to the task, and a relaunch at once would then
    /// find its number taken).
    async fn close(&self) {
        let l = lock(&self.listener).take();
        if let Some(l) = l {
            l.abort();
            let _ = l.await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) struct Inner {
    settings: Settings,
    pool: Pool,
    displays: Mutex<HashMap<u64, Arc<Display>>>,
    /// Where a range scan for the next port starts.
    cursor: Mutex<u16>,
    fetch: OnceLock<Arc<dyn Fetch>>,
    /// The files directory: relative names of injected LoadFiles.
    files: PathBuf,
}

/// The node's VNC ports, recordings and playbacks. Cheap to clone.
#[derive(Clone)]
pub struct Vnc(Arc<Inner>);

/// A row of the `vnc` listing: name, type, time, filename.
pub type Row = [String; 4];

impl Vnc {
    pub fn new(settings: Settings, files: &Path) -> Vnc {
        let pool = Pool::new(settings.ports);
        let cursor = match pool {
            Pool::Range(a, _) => a,
            Pool::Any => 0,
        };
        Vnc(Arc::new(Inner {
            settings,
            pool,
            displays: Mutex::new(HashMap::new()),
            cursor: Mutex::new(cursor),
            fetch: OnceLock::new(),
            files: files.to_path_buf(),
        }))
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    pub fn set_fetch(&self, fetch: Arc<dyn Fetch>) {
        let _ = self.0.fetch.set(fetch);
    }

    /// The hook the node registers for every VM.
    pub fn hook(&self) -> Arc<dyn crate::vm::hooks::VmHook> {
        Arc::new(hook::VncHook(self.clone()))
    }

    /// Gives a VM its port (its previous number when free) and starts
    /// relaying connections to QEMU's socket. A VM that has one keeps it.
    pub(crate) fn open_display(&self, vm: &Vm) -> Result<u16, VncError> {
        if let Some(p) = self.port(vm.id) {
            return Ok(p);
        }
        let saved = hook::saved_port(&vm.paths.dir);
        let std = shim::bind(self, saved)?;
        let port = std.local_addr().map(|a| a.port()).unwrap_or_default();
        let listener =
            tokio::net::TcpListener::from_std(std).map_err(|source| VncError::Listen {
                addr: format!("port {port}"),
                source,
            })?;
        let password = Some(vm.lock().config.vnc_password.clone()).filter(|p| !p.is_empty());
        let d = Arc::new(Display {
            name: vm.name.clone(),
            namespace: vm.namespace.clone(),
            socket: vm.paths.vnc(),
            password,
            port,
            listener: Mutex::new(None),
            kb: Mutex::new(None),
            fb: Mutex::new(None),
            play: Mutex::new(None),
        });
        let task = tokio::spawn(shim::serve(listener, d.clone(), self.clone()));
        *lock(&d.listener) = Some(task);
        lock(&self.0.displays).insert(vm.id, d);
        hook::save_port(&vm.paths.dir, port);
        if saved.is_some_and(|s| s != port) {
            warn!(vm = %vm.name, "VNC port {} is taken now; the VM's screen moved to port {port}", saved.unwrap_or_default());
        }
        info!(vm = %vm.name, "VNC on port {port}");
        Ok(port)
    }

    /// Ends the VM's recordings and playback and frees its port.
    pub(crate) async fn close_display(&self, vm_id: u64) {
        let d = lock(&self.0.displays).remove(&vm_id);
        if let Some(d) = d {
            d.close().await;
            end_all(&d).await;
        }
    }

    /// Whether `count` more VMs can have a port, as far as this node's own
    /// use of the range tells (other programs may hold some too: each
    /// VM's bind finds out).
    pub(crate) fn room_for(&self, count: usize) -> Result<(), VncError> {
        let size = self.0.pool.size() as usize;
        if size == 0 {
            return Ok(());
        }
        let held = self
            .ports_held()
            .into_iter()
            .filter(|p| self.0.pool.contains(*p))
            .count();
        if held + count > size {
            return Err(VncError::NoRoom {
                pool: self.0.pool.describe(),
                count,
                free: size - held,
            });
        }
        Ok(())
    }

    /// The VM's VNC port while it has one.
    pub fn port(&self, vm_id: u64) -> Option<u16> {
        lock(&self.0.displays).get(&vm_id).map(|d| d.port)
    }

    /// Ports held now.
    pub fn ports_held(&self) -> BTreeSet<u16> {
        lock(&self.0.displays).values().map(|d| d.port).collect()
    }

    fn display(&self, vm: &Vm) -> Result<Arc<Display>, VncError> {
        let d = lock(&self.0.displays).get(&vm.id).cloned();
        match d {
            Some(d) if vm.state().is_live() => Ok(d),
            _ => Err(VncError::NotRunning(vm.name.clone())),
        }
    }

    /// QEMU's socket for a live VM, for whoever wants the raw RFB stream
    /// (a web console's websocket): the same bytes the TCP port carries.
    pub async fn open(&self, vm: &Vm) -> Result<UnixStream, VncError> {
        let d = self.display(vm)?;
        UnixStream::connect(&d.socket)
            .await
            .map_err(|source| VncError::File {
                path: d.socket.clone(),
                source,
            })
    }

    /// The password a client of this VM must give, if any.
    pub fn password(&self, vm: &Vm) -> Option<String> {
        self.display(vm).ok().and_then(|d| d.password.clone())
    }

    /// Makes a file present, from the mesh when this node lacks it.
    async fn ensure(&self, path: &Path) -> Result<(), VncError> {
        if path.exists() {
            return Ok(());
        }
        if let Some(f) = self.0.fetch.get() {
            if f.fetch(path).await.is_ok() && path.exists() {
                return Ok(());
            }
        }
        Err(VncError::Missing {
            path: path.to_path_buf(),
        })
    }

    // ---- recordings ----

    /// `vnc record kb VM FILE`: every key and pointer event sent to the VM
    /// from now on (through its port, or by a playback) goes to FILE.
    pub fn record_kb(&self, vm: &Vm, path: &Path) -> Result<(), VncError> {
        let d = self.display(vm)?;
        let mut kb = lock(&d.kb);
        if kb.is_some() {
            return Err(VncError::KbRunning(vm.name.clone()));
        }
        *kb = Some(KbRecording::create(path)?);
        info!(vm = %vm.name, "kb recording to {}", path.display());
        Ok(())
    }

    /// `vnc record fb VM FILE`: the screen, every 100 ms, as the original's
    /// gzip stream.
    pub async fn record_fb(&self, vm: &Vm, path: &Path) -> Result<(), VncError> {
        let d = self.display(vm)?;
        if lock(&d.fb).is_some() {
            return Err(VncError::FbRunning(vm.name.clone()));
        }
        let client = d.connect().await?;
        let rec = FbRecording::start(client, path)?;
        let mut fb = lock(&d.fb);
        if fb.is_some() {
            return Err(VncError::FbRunning(vm.name.clone()));
        }
        *fb = Some(rec);
        info!(vm = %vm.name, "fb recording to {}", path.display());
        Ok(())
    }

    pub async fn stop_kb(&self, vm: &Vm) -> Result<(), VncError> {
        let taken = self.slot(vm).and_then(|d| lock(&d.kb).take());
        match taken {
            Some(kb) => kb.finish(),
            None => Err(VncError::KbNotFound(vm.name.clone())),
        }
    }

    pub async fn stop_fb(&self, vm: &Vm) -> Result<(), VncError> {
        let taken = self.slot(vm).and_then(|d| lock(&d.fb).take());
        match taken {
            Some(fb) => fb.finish().await,
            None => Err(VncError::FbNotFound(vm.name.clone())),
        }
    }

    /// The display, running or not (a recording of a VM that just quit can
    /// still be stopped).
    fn slot(&self, vm: &Vm) -> Option<Arc<Display>> {
        lock(&self.0.displays).get(&vm.id).cloned()
    }

    // ---- playbacks ----

    /// `vnc play VM FILE`: the whole file is read and checked first (a
    /// malformed line is an error naming it), then played in the
    /// background.
    pub async fn play(&self, vm: &Vm, path: &Path) -> Result<(), VncError> {
        let d = self.display(vm)?;
        self.ensure(path).await?;
        let script = play::Script::load(path)?;
        self.start(&d, script).await
    }

    /// `vnc type VM TEXT`: the text as keystrokes.
    pub async fn type_text(&self, vm: &Vm, text: &str) -> Result<(), VncError> {
        let d = self.display(vm)?;
        self.type_into(&d, text).await
    }

    async fn type_into(&self, d: &Arc<Display>, text: &str) -> Result<(), VncError> {
        if text.is_empty() {
            return Ok(());
        }
        self.start(d, play::Script::typed(text)?).await
    }

    async fn start(&self, d: &Arc<Display>, script: play::Script) -> Result<(), VncError> {
        if lock(&d.play).as_ref().is_some_and(|p| !p.closed()) {
            return Err(VncError::Playing(d.name.clone()));
        }
        let client = d.connect().await?;
        let mut slot = lock(&d.play);
        if slot.as_ref().is_some_and(|p| !p.closed()) {
            return Err(VncError::Playing(d.name.clone()));
        }
        *slot = Some(Playback::start(self.clone(), d.clone(), client, script));
        Ok(())
    }

    fn playback(&self, vm: &Vm) -> Result<Arc<Playback>, VncError> {
        self.slot(vm)
            .and_then(|d| lock(&d.play).clone())
            .filter(|p| !p.closed())
            .ok_or_else(|| VncError::NoPlayback(vm.name.clone()))
    }

    pub fn stop_playback(&self, vm: &Vm) -> Result<(), VncError> {
        let p = self.playback(vm)?;
        p.stop();
        Ok(())
    }

    pub fn pause(&self, vm: &Vm) -> Result<(), VncError> {
        self.playback(vm)?.pause()
    }

    pub fn resume(&self, vm: &Vm) -> Result<(), VncError> {
        self.playback(vm)?.resume()
    }

    pub fn step(&self, vm: &Vm) -> Result<(), VncError> {
        self.playback(vm)?.step()
    }

    /// The line the playback is at.
    pub fn getstep(&self, vm: &Vm) -> Result<String, VncError> {
        Ok(self.playback(vm)?.current())
    }

    /// `vnc inject VM EVENT`: into the running playback; without one a key
    /// or pointer event is sent at once and a LoadFile starts a playback.
    pub async fn inject(&self, vm: &Vm, action: Action) -> Result<(), VncError> {
        if let Ok(p) = self.playback(vm) {
            p.inject(action);
            return Ok(());
        }
        let d = self.display(vm)?;
        match action {
            Action::Key(_) | Action::Pointer(_) => {
                let msg = action.message().expect("a key or pointer event");
                let mut c = d.connect().await?;
                c.send(&msg).await.map_err(|source| VncError::Connect {
                    vm: d.name.clone(),
                    source,
                })?;
                d.record(&msg);
                Ok(())
            }
            Action::LoadFile(f) => {
                let path = self.0.files.join(&f);
                self.ensure(&path).await?;
                let script = play::Script::load(&path)?;
                self.start(&d, script).await
            }
            Action::WaitForIt(w) => Err(VncError::NeedsPlayback(if w.click {
                "ClickItEvent"
            } else {
                "WaitForIt"
            })),
        }
    }

    // ---- the listing and clearing ----

    /// `vnc`: the namespace's recordings and playbacks.
    pub fn list(&self, namespace: &str) -> Vec<Row> {
        let displays: Vec<Arc<Display>> = lock(&self.0.displays)
            .values()
            .filter(|d| d.namespace == namespace)
            .cloned()
            .collect();
        let mut rows = Vec::new();
        for d in &displays {
            if let Some(kb) = lock(&d.kb).as_ref() {
                rows.push(row(&d.name, "record kb", kb.elapsed(), kb.path()));
            }
            if let Some(fb) = lock(&d.fb).as_ref() {
                rows.push(row(&d.name, "record fb", fb.elapsed(), fb.path()));
            }
        }
        for d in &displays {
            if let Some(p) = lock(&d.play).as_ref().filter(|p| !p.closed()) {
                let (time, file) = p.info();
                rows.push([d.name.clone(), "playback kb".into(), time, file]);
            }
        }
        rows
    }

    /// `clear vnc`: every recording and playback of the namespace ends.
    pub async fn clear(&self, namespace: &str) {
        let displays: Vec<Arc<Display>> = lock(&self.0.displays)
            .values()
            .filter(|d| d.namespace == namespace)
            .cloned()
            .collect();
        for d in displays {
            end_all(&d).await;
        }
    }
}

fn row(name: &str, kind: &str, elapsed: std::time::Duration, path: &Path) -> Row {
    let ns = i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX);
    [
        name.to_string(),
        kind.to_string(),
        godur::format(ns),
        path.display().to_string(),
    ]
}

/// Ends a display's recordings (their files complete) and playback.
async fn end_all(d: &Display) {
    let kb = lock(&d.kb).take();
    if let Some(kb) = kb {
        if let Err(e) = kb.finish() {
            warn!(vm = %d.name, "kb recording: {e}");
        }
    }
    let fb = lock(&d.fb).take();
    if let Some(fb) = fb {
        if let Err(e) = fb.finish().await {
            warn!(vm = %d.name, "fb recording: {e}");
        }
    }
    let p = lock(&d.play).take();
    if let Some(p) = p {
        p.stop();
    }
}

impl crate::vm::info::ScreenView for Vnc {
    fn vnc_port(&self, vm: &Vm) -> Option<u16> {
        self.port(vm.id)
    }
}

#[cfg(test)]
mod tests;
