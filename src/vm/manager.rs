//! The VMs of this node: a registry keyed by id, (namespace, name) and
//! UUID, each VM's status, lookups, and persistence: every state change
//! is saved and announced. Launching is in `launch`, the rest of the
//! lifecycle in `lifecycle`, start-up adoption in `adopt`.

use super::accel::Accel;
use super::argv::VmPaths;
use super::config::VmConfig;
use super::hooks::Hooks;
use super::placement::Placement;
use super::process;
use super::qmp::{Qmp, QmpEvent};
use super::state::{self, Placed, Record, VmState};
use super::targets::Target;
use crate::event::Event;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{info, warn};

pub use super::error::VmError;

/// The namespace of sessions that chose none.
pub const DEFAULT_NAMESPACE: &str = "minimega";

/// Each QMP call afterwards.
pub const QMP_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a QEMU process is in its life, as its watcher reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    Running,
    /// The process is gone.
    Exited,
    /// ... and the daemon has finished with it (state saved, cgroup gone).
    Settled,
}

/// A VM's mutable part.
pub struct Status {
    pub state: VmState,
    pub config: VmConfig,
    pub pid: Option<u32>,
    pub pid_start: Option<u64>,
    pub placed: Placed,
    pub launched: u64,
    pub tags: BTreeMap<String, String>,
    pub error: String,
    /// Bumped by each (re)launch, so the watcher of an older process never
    /// touches a newer one.
    pub(super) generation: u64,
    /// True while a launch is still waiting for QMP: its own error path
    /// cleans up then, not the watcher.
    pub(super) launching: bool,
    pub(super) life: Option<watch::Receiver<Life>>,
    pub(super) qmp: Option<Arc<Qmp>>,
}

pub struct Vm {
    pub id: u64,
    pub name: String,
    pub namespace: String,
    pub uuid: String,
    pub paths: VmPaths,
    pub status: Mutex<Status>,
    /// Serialises lifecycle operations on this VM.
    pub(super) op: tokio::sync::Mutex<()>,
    /// Serialises writes of its record, so the last one written is the
    /// latest state (each takes its snapshot holding it).
    pub(super) saving: tokio::sync::Mutex<()>,
    /// Whether its cc agent is connected now (`vm info` cc_active).
    pub cc_active: std::sync::atomic::AtomicBool,
}

impl Vm {
    /// Holds this VM's lifecycle lock: operations on it run one at a time.
    pub async fn exclusive(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.op.lock().await
    }

    /// A VM from its record, registered nowhere (adoption registers it;
    /// a discarded record is only handed to the hooks).
    pub(super) fn from_record(r: &Record, base: &Path) -> Vm {
        Vm {
            id: r.id,
            name: r.name.clone(),
            namespace: r.namespace.clone(),
            uuid: r.uuid.clone(),
            paths: VmPaths::new(base, r.id),
            status: Mutex::new(Status {
                state: r.state,
                config: r.config.clone(),
                pid: r.pid,
                pid_start: r.pid_start,
                placed: r.placed.clone(),
                launched: r.launched,
                tags: r.tags.clone(),
                error: r.error.clone(),
                generation: 1,
                launching: false,
                life: None,
                qmp: None,
            }),
            op: tokio::sync::Mutex::new(()),
            saving: tokio::sync::Mutex::new(()),
            cc_active: Default::default(),
        }
    }

    /// A QUIT VM of the default configuration that exists nowhere, for
    /// tests of code that only reads a VM.
    #[cfg(test)]
    pub(crate) fn detached(id: u64, name: &str, namespace: &str, base: &Path) -> Vm {
        Vm::from_record(
            &Record {
                id,
                name: name.into(),
                namespace: namespace.into(),
                uuid: "00000000-0000-4000-8000-000000000000".into(),
                config: VmConfig::default(),
                state: VmState::Quit,
                pid: None,
                pid_start: None,
                placed: Placed::default(),
                launched: 0,
                tags: BTreeMap::new(),
                error: String::new(),
            },
            base,
        )
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self) -> VmState {
        self.lock().state
    }

    fn record(&self) -> Record {
        let s = self.lock();
        Record {
            id: self.id,
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            uuid: self.uuid.clone(),
            config: s.config.clone(),
            state: s.state,
            pid: s.pid,
            pid_start: s.pid_start,
            placed: s.placed.clone(),
            launched: s.launched,
            tags: s.tags.clone(),
            error: s.error.clone(),
        }
    }

    /// Writes the VM's record (see `state`), durably: when this returns
    /// Ok a crash of the daemon, or of the machine, keeps what it says.
    /// A hook that records what it is about to make (a tap's name) calls
    /// it before making it, so a crash at any instant leaves a record
    /// naming everything there is to remove.
    pub async fn persist(&self) -> Result<(), VmError> {
        let _one = self.saving.lock().await;
        let record = self.record();
        let dir = self.paths.dir.clone();
        tokio::task::spawn_blocking(move || state::save(&dir, &record))
            .await
            .map_err(|e| VmError::Task(e.to_string()))?
            .map_err(VmError::Save)
    }

    pub fn qmp(&self) -> Result<Arc<Qmp>, VmError> {
        let s = self.lock();
        match &s.qmp {
            Some(q) if s.state.is_live() => Ok(q.clone()),
            // minimega's words, which its web front end matches.
            _ => Err(VmError::NotRunning(self.name.clone())),
        }
    }
}

/// A QEMU of ours (its folder under the base) that could not be adopted:
/// left running at start-up, and ended by the next `vm flush`.
#[derive(Debug, Clone)]
pub(super) struct Stray {
    pub pid: u32,
    pub start: u64,
    pub dir: PathBuf,
}

#[derive(Default)]
pub(super) struct Registry {
    pub(super) vms: BTreeMap<u64, Arc<Vm>>,
    pub(super) names: HashMap<(String, String), u64>,
    pub(super) uuids: HashMap<String, u64>,
}

pub(super) struct Inner {
    pub base: PathBuf,
    pub filepath: PathBuf,
    events: broadcast::Sender<Event>,
    pub accel: OnceLock<Accel>,
    pub placement: OnceLock<Placement>,
    hooks: OnceLock<Hooks>,
    screens: OnceLock<Arc<dyn super::info::ScreenView>>,
    consoles: OnceLock<Arc<dyn super::info::ConsoleView>>,
    pub(super) containers: OnceLock<Arc<dyn super::runtime::Runtime>>,
    pub(super) next_id: AtomicU64,
    pub(super) reg: Mutex<Registry>,
    configs: Mutex<HashMap<String, VmConfig>>,
    strays: Mutex<Vec<Stray>>,
    /// Distinguishes this base directory's cgroups from another daemon's.
    pub tag: String,
}

/// The node's VMs. Cheap to clone: every clone is the same registry.
#[derive(Clone)]
pub struct Vms {
    pub(super) inner: Arc<Inner>,
}

/// The registry as a hook keeps it: hooks live inside it, and a strong
/// handle there would keep it alive forever.
#[derive(Clone)]
pub struct WeakVms(std::sync::Weak<Inner>);

impl WeakVms {
    pub fn upgrade(&self) -> Option<Vms> {
        self.0.upgrade().map(|inner| Vms { inner })
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Vms {
    pub fn new(base: &Path, filepath: &Path, events: broadcast::Sender<Event>) -> Vms {
        Vms {
            inner: Arc::new(Inner {
                base: base.to_path_buf(),
                filepath: filepath.to_path_buf(),
                events,
                accel: OnceLock::new(),
                placement: OnceLock::new(),
                hooks: OnceLock::new(),
                screens: OnceLock::new(),
                consoles: OnceLock::new(),
                containers: OnceLock::new(),
                next_id: AtomicU64::new(0),
                reg: Mutex::new(Registry::default()),
                configs: Mutex::new(HashMap::new()),
                strays: Mutex::new(Vec::new()),
                tag: crate::base::tag(base),
            }),
        }
    }

    pub(super) fn reg(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.reg.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn strays(&self) -> std::sync::MutexGuard<'_, Vec<Stray>> {
        self.inner.strays.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What marks this daemon's own things (cgroups, taps, switch ports)
    /// apart from another daemon's on the same host: a tag of its base
    /// directory (see `base::tag`).
    pub fn owner_tag(&self) -> &str {
        &self.inner.tag
    }

    /// The base directory the VMs' folders are in.
    pub fn base(&self) -> &Path {
        &self.inner.base
    }

    pub fn accel(&self) -> Accel {
        *self.inner.accel.get().unwrap_or(&Accel::Tcg)
    }

    pub fn placement(&self) -> &Placement {
        static PLAIN: Placement = Placement::Plain;
        self.inner.placement.get().unwrap_or(&PLAIN)
    }

    /// Sets the subsystems that take part in each VM's life; once, when
    /// the node is built, before any VM is launched or adopted.
    pub fn set_hooks(&self, hooks: Hooks) {
        if self.inner.hooks.set(hooks).is_err() {
            warn!("VM hooks were set twice; keeping the first");
        }
    }

    pub fn hooks(&self) -> &Hooks {
        static NONE: OnceLock<Hooks> = OnceLock::new();
        self.inner
            .hooks
            .get()
            .unwrap_or_else(|| NONE.get_or_init(Hooks::default))
    }

    /// Sets what `vm info` asks for each VM's VNC port; once, when the
    /// node is built.
    pub fn set_screens(&self, view: Arc<dyn super::info::ScreenView>) {
        let _ = self.inner.screens.set(view);
    }

    pub fn screens(&self) -> Option<&dyn super::info::ScreenView> {
        self.inner.screens.get().map(|s| &**s)
    }

    /// Sets what `vm info` asks for a container's console port.
    pub fn set_consoles(&self, view: Arc<dyn super::info::ConsoleView>) {
        let _ = self.inner.consoles.set(view);
    }

    pub fn consoles(&self) -> Option<&dyn super::info::ConsoleView> {
        self.inner.consoles.get().map(|s| &**s)
    }

    pub fn filepath(&self) -> &Path {
        &self.inner.filepath
    }

    // ---- vm config, per namespace ----

    pub fn config(&self, ns: &str) -> VmConfig {
        let c = self.inner.configs.lock().unwrap_or_else(|p| p.into_inner());
        c.get(ns).cloned().unwrap_or_default()
    }

    pub fn set_config(&self, ns: &str, cfg: VmConfig) {
        let mut c = self.inner.configs.lock().unwrap_or_else(|p| p.into_inner());
        c.insert(ns.to_string(), cfg);
    }

    // ---- lookups ----

    pub fn all(&self) -> Vec<Arc<Vm>> {
        self.reg().vms.values().cloned().collect()
    }

    pub fn in_namespace(&self, ns: &str) -> Vec<Arc<Vm>> {
        self.reg()
            .vms
            .values()
            .filter(|v| v.namespace == ns)
            .cloned()
            .collect()
    }

    pub fn count(&self) -> usize {
        self.reg().vms.len()
    }

    /// Ids start at 0 again once no VM is left (`clear all`), as minimega's
    /// counters do when its namespaces are destroyed.
    pub fn reset_ids(&self) {
        let reg = self.reg();
        if reg.vms.is_empty() {
            self.inner.next_id.store(0, Ordering::SeqCst);
        }
    }

    /// The VMs a target list names, in order, each once. An unknown name
    /// or id is an error and nothing is returned.
    pub fn resolve(&self, ns: &str, targets: &[Target]) -> Result<Vec<Arc<Vm>>, VmError> {
        let r = self.reg();
        let mut out: Vec<Arc<Vm>> = Vec::new();
        let mut push = |v: &Arc<Vm>| {
            if !out.iter().any(|o| o.id == v.id) {
                out.push(v.clone());
            }
        };
        for t in targets {
            match t {
                Target::All => r
                    .vms
                    .values()
                    .filter(|v| v.namespace == ns)
                    .for_each(&mut push),
                Target::Id(id) => match r.vms.get(id).filter(|v| v.namespace == ns) {
                    Some(v) => push(v),
                    None => return Err(VmError::NotFound(id.to_string())),
                },
                Target::Name(n) => match r
                    .names
                    .get(&(ns.to_string(), n.clone()))
                    .and_then(|id| r.vms.get(id))
                {
                    Some(v) => push(v),
                    None => return Err(VmError::NotFound(n.to_string())),
                },
            }
        }
        Ok(out)
    }

    /// Looks up exactly one VM.
    pub fn one(&self, ns: &str, target: &str) -> Result<Arc<Vm>, VmError> {
        let t = super::targets::parse_targets(target)?;
        let vms = self.resolve(ns, &t)?;
        match vms.as_slice() {
            [v] => Ok(v.clone()),
            [] => Err(VmError::NotFound(target.to_string())),
            _ => Err(VmError::Ambiguous {
                target: target.to_string(),
                count: vms.len(),
            }),
        }
    }

    // ---- events and persistence ----

    pub(super) fn announce(&self, vm: &Vm, state: VmState) {
        let _ = self.inner.events.send(Event::VmState {
            namespace: vm.namespace.clone(),
            name: vm.name.clone(),
            id: vm.id,
            state: state.to_string(),
        });
    }

    /// Saves the record; the caller answers a command with the error.
    pub(super) async fn save(&self, vm: &Vm) -> Result<(), VmError> {
        vm.persist().await
    }

    /// Saves the record where no command waits for it (a QEMU that
    /// exited, adoption): the error is logged, and the next start-up
    /// reconciles the record with what runs.
    pub(super) async fn save_logged(&self, vm: &Vm) {
        if let Err(e) = vm.persist().await {
            warn!(vm = %vm.name, "{e}");
        }
    }

    /// Sets the state, saves and announces it. The state is set even when
    /// the save fails (it is what the VM is); the error says the record
    /// is behind.
    pub(super) async fn transition(&self, vm: &Vm, to: VmState) -> Result<(), VmError> {
        let changed = {
            let mut s = vm.lock();
            let changed = s.state != to;
            s.state = to;
            changed
        };
        let saved = self.save(vm).await;
        if changed {
            // Each VM's state changes reach the journal with its name and
            // namespace as fields (`journalctl VM=web1`).
            info!(vm = %vm.name, namespace = %vm.namespace, id = vm.id, state = %to, "{} is {to}", vm.name);
            self.announce(vm, to);
        }
        saved
    }

    // ---- used by adoption ----

    pub(super) fn bump_next_id(&self, id: u64) {
        self.inner.next_id.fetch_max(id + 1, Ordering::SeqCst);
    }

    /// Registers a VM read back from its record. None if its name or id
    /// is taken.
    pub(super) fn register_adopted(&self, r: &Record) -> Option<Arc<Vm>> {
        let mut reg = self.reg();
        let key = (r.namespace.clone(), r.name.clone());
        if reg.vms.contains_key(&r.id) || reg.names.contains_key(&key) {
            return None;
        }
        let vm = Arc::new(Vm::from_record(r, &self.inner.base));
        reg.names.insert(key, r.id);
        reg.uuids.entry(r.uuid.clone()).or_insert(r.id);
        reg.vms.insert(r.id, vm.clone());
        Some(vm)
    }

    /// Adopted VM: watch its process (not our child) and its QMP events.
    pub(super) fn watch_adopted(
        &self,
        vm: &Arc<Vm>,
        pid: u32,
        start: Option<u64>,
        qmp: Option<(Arc<Qmp>, mpsc::UnboundedReceiver<QmpEvent>)>,
    ) {
        let (life_tx, life_rx) = watch::channel(Life::Running);
        let gen = {
            let mut s = vm.lock();
            s.life = Some(life_rx);
            s.generation
        };
        if let Some((q, events)) = qmp {
            vm.lock().qmp = Some(q);
            self.spawn_events(vm, gen, events);
        }
        let me = self.clone();
        let vm = vm.clone();
        tokio::spawn(async move {
            process::wait_exit(pid, start).await;
            me.exited(&vm, gen, life_tx).await;
        });
    }

    pub(super) async fn set_state_quiet(&self, vm: &Vm, to: VmState, error: &str) {
        {
            let mut s = vm.lock();
            s.state = to;
            s.error = error.to_string();
        }
        self.save_logged(vm).await;
    }

    /// True while `vm` is the registered VM of its id (not flushed, nor
    /// replaced by a later VM of that id).
    pub(super) fn is_registered(&self, vm: &Arc<Vm>) -> bool {
        self.reg()
            .vms
            .get(&vm.id)
            .is_some_and(|v| Arc::ptr_eq(v, vm))
    }

    pub fn downgrade(&self) -> WeakVms {
        WeakVms(Arc::downgrade(&self.inner))
    }

    /// Memory (MiB) committed to the VMs that have a QEMU, and how many
    /// they are, leaving out the VM with id `except`.
    pub fn commitment_except(&self, except: Option<u64>) -> (u64, usize) {
        let (mut mem, mut live) = (0, 0);
        for vm in self.all().iter().filter(|v| Some(v.id) != except) {
            let s = vm.lock();
            if s.state.is_live() {
                mem += s.config.memory;
                live += 1;
            }
        }
        (mem, live)
    }

    /// `host`'s vmlimit, as minimega computes it: the lowest `coschedule`
    /// of the node's VMs plus one (coschedule 0: one VM alone), -1 when
    /// none limits it.
    pub fn coschedule_limit(&self) -> i64 {
        self.all()
            .iter()
            .map(|vm| vm.lock().config.coschedule)
            .filter(|c| *c >= 0)
            .min()
            .map_or(-1, |m| m + 1)
    }

    /// Committed vCPUs and memory (MiB) of the VMs that have a QEMU.
    pub fn commitment(&self) -> (u64, u64, usize) {
        let mut cpus = 0;
        let mut mem = 0;
        let mut live = 0;
        for vm in self.all() {
            let s = vm.lock();
            if s.state.is_live() {
                cpus += s.config.vcpus;
                mem += s.config.memory;
                live += 1;
            }
        }
        (cpus, mem, live)
    }
}
