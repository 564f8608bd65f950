//! The VMs of this node: a registry keyed by id, (namespace, name) and
//! UUID; launching (many at once, concurrently); the lifecycle
//! (start, stop, kill, flush); and the watch on each QEMU that turns its
//! exit into QUIT. Every state change is persisted and announced.

use super::accel::Accel;
use super::argv::{self, VmPaths};
use super::config::VmConfig;
use super::limits::Limits;
use super::placement::Placement;
use super::process;
use super::qmp::{Qmp, QmpEvent};
use super::state::{self, Placed, Record, VmState};
use super::targets::{LaunchNames, Target};
use crate::daemon::Event;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{debug, info, warn};

/// One line naming what went wrong.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct VmError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, VmError> {
    Err(VmError(msg.into()))
}

/// The namespace of sessions that chose none.
pub const DEFAULT_NAMESPACE: &str = "minimega";

/// How long a new QEMU may take to answer on QMP. Generous: a hundred
/// QEMUs starting at once under TCG on two cores take seconds each.
const QMP_READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Each QMP call afterwards.
pub const QMP_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `vm kill` waits for a polite exit before SIGKILL.
const QUIT_GRACE: Duration = Duration::from_secs(5);

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
    generation: u64,
    /// True while a launch is still waiting for QMP: its own error path
    /// cleans up then, not the watcher.
    launching: bool,
    life: Option<watch::Receiver<Life>>,
    qmp: Option<Arc<Qmp>>,
}

pub struct Vm {
    pub id: u64,
    pub name: String,
    pub namespace: String,
    pub uuid: String,
    pub paths: VmPaths,
    pub status: Mutex<Status>,
    /// Serialises lifecycle operations on this VM.
    op: tokio::sync::Mutex<()>,
}

impl Vm {
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

    pub fn qmp(&self) -> Result<Arc<Qmp>, VmError> {
        let s = self.lock();
        match &s.qmp {
            Some(q) if s.state.is_live() => Ok(q.clone()),
            _ => err(format!("vm {} is not running ({})", self.name, s.state)),
        }
    }
}

#[derive(Default)]
struct Registry {
    vms: BTreeMap<u64, Arc<Vm>>,
    names: HashMap<(String, String), u64>,
    uuids: HashMap<String, u64>,
}

pub(super) struct Inner {
    pub base: PathBuf,
    pub filepath: PathBuf,
    events: broadcast::Sender<Event>,
    pub accel: OnceLock<Accel>,
    pub placement: OnceLock<Placement>,
    next_id: AtomicU64,
    reg: Mutex<Registry>,
    configs: Mutex<HashMap<String, VmConfig>>,
    /// Distinguishes this base directory's cgroups from another daemon's.
    pub tag: String,
}

/// The node's VMs. Cheap to clone: every clone is the same registry.
#[derive(Clone)]
pub struct Vms {
    pub(super) inner: Arc<Inner>,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A short stable tag of a path (FNV-1a), for cgroup names.
fn path_tag(p: &Path) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in p.as_os_str().as_encoded_bytes() {
        h ^= *b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
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
                next_id: AtomicU64::new(0),
                reg: Mutex::new(Registry::default()),
                configs: Mutex::new(HashMap::new()),
                tag: path_tag(base),
            }),
        }
    }

    fn reg(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.reg.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn accel(&self) -> Accel {
        *self.inner.accel.get().unwrap_or(&Accel::Tcg)
    }

    pub fn placement(&self) -> &Placement {
        static PLAIN: Placement = Placement::Plain;
        self.inner.placement.get().unwrap_or(&PLAIN)
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

    pub fn by_name(&self, ns: &str, name: &str) -> Option<Arc<Vm>> {
        let r = self.reg();
        let id = r.names.get(&(ns.to_string(), name.to_string()))?;
        r.vms.get(id).cloned()
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
                    None => return err(format!("vm not found: {id}")),
                },
                Target::Name(n) => match r
                    .names
                    .get(&(ns.to_string(), n.clone()))
                    .and_then(|id| r.vms.get(id))
                {
                    Some(v) => push(v),
                    None => return err(format!("vm not found: {n}")),
                },
            }
        }
        Ok(out)
    }

    /// Looks up exactly one VM.
    pub fn one(&self, ns: &str, target: &str) -> Result<Arc<Vm>, VmError> {
        let t = super::targets::parse_targets(target).map_err(|e| VmError(e.to_string()))?;
        let vms = self.resolve(ns, &t)?;
        match vms.as_slice() {
            [v] => Ok(v.clone()),
            [] => err(format!("vm not found: {target}")),
            _ => err(format!("`{target}` names {} VMs; name one", vms.len())),
        }
    }

    // ---- events and persistence ----

    fn announce(&self, vm: &Vm, state: VmState) {
        let _ = self.inner.events.send(Event::VmState {
            namespace: vm.namespace.clone(),
            name: vm.name.clone(),
            id: vm.id,
            state: state.to_string(),
        });
    }

    fn save(&self, vm: &Vm) {
        if let Err(e) = state::save(&vm.paths.dir, &vm.record()) {
            warn!(vm = %vm.name, "cannot save state in {}: {e}", vm.paths.dir.display());
        }
    }

    /// Sets the state, saves and announces it.
    fn transition(&self, vm: &Vm, to: VmState) {
        let changed = {
            let mut s = vm.lock();
            let changed = s.state != to;
            s.state = to;
            changed
        };
        self.save(vm);
        if changed {
            debug!(vm = %vm.name, id = vm.id, "-> {to}");
            self.announce(vm, to);
        }
    }

    // ---- launch ----

    /// Checks everything a launch needs before anything is made.
    fn validate(&self, cfg: &VmConfig) -> Result<(), VmError> {
        let files = [
            ("kernel", &cfg.kernel),
            ("initrd", &cfg.initrd),
            ("cdrom", &cfg.cdrom),
        ];
        for (what, f) in files {
            if !f.is_empty() && !Path::new(f).is_file() {
                return err(format!("{what} {f}: no such file"));
            }
        }
        for d in &cfg.disks {
            if !Path::new(d).exists() {
                return err(format!("disk {d}: no such file"));
            }
        }
        if !cfg.initrd.is_empty() && cfg.kernel.is_empty() {
            return err("an initrd needs a kernel (vm config kernel)");
        }
        if find_binary(&cfg.qemu).is_none() {
            return err(format!("qemu binary `{}` not found", cfg.qemu));
        }
        Ok(())
    }

    /// `vm launch kvm <names|count>`: registers the VMs, then starts every
    /// QEMU at once and returns when each is BUILDING or has failed. A VM
    /// that failed leaves nothing behind.
    pub async fn launch(&self, ns: &str, names: LaunchNames) -> Result<Vec<u64>, VmError> {
        let cfg = self.config(ns);
        self.validate(&cfg)?;
        let vms = self.reserve(ns, names, &cfg)?;
        let mut tasks = tokio::task::JoinSet::new();
        for vm in &vms {
            let me = self.clone();
            let vm = vm.clone();
            // Spawned, so a client that goes away mid-launch cannot leave
            // a half-made VM behind.
            tasks.spawn(async move {
                let r = me.launch_one(&vm).await;
                (vm, r)
            });
        }
        let mut ok = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        while let Some(j) = tasks.join_next().await {
            match j {
                Ok((vm, Ok(()))) => ok.push(vm.id),
                Ok((vm, Err(e))) => errors.push(format!("vm {}: {e}", vm.name)),
                Err(e) => errors.push(format!("launch task failed: {e}")),
            }
        }
        ok.sort_unstable();
        match errors.len() {
            0 => Ok(ok),
            1 => err(errors.remove(0)),
            n => {
                errors.sort();
                err(format!("{} (and {} more VMs failed)", errors[0], n - 1))
            }
        }
    }

    /// Allocates ids and claims names and the UUID, all or none.
    fn reserve(
        &self,
        ns: &str,
        names: LaunchNames,
        cfg: &VmConfig,
    ) -> Result<Vec<Arc<Vm>>, VmError> {
        let mut reg = self.reg();
        let n = match &names {
            LaunchNames::Count(n) => *n as usize,
            LaunchNames::Names(v) => v.len(),
        };
        if !cfg.uuid.is_empty() {
            if n > 1 {
                return err(format!(
                    "uuid {} is configured: it can be used by one VM only, not {n}",
                    cfg.uuid
                ));
            }
            if let Some(v) = reg.uuids.get(&cfg.uuid).and_then(|id| reg.vms.get(id)) {
                return err(format!(
                    "uuid {} is already used by vm {}",
                    cfg.uuid, v.name
                ));
            }
        }
        let first = self.inner.next_id.load(Ordering::SeqCst);
        let list: Vec<(u64, String)> = match names {
            LaunchNames::Count(n) => (first..first + n)
                .map(|id| (id, format!("vm-{id}")))
                .collect(),
            LaunchNames::Names(v) => v
                .into_iter()
                .enumerate()
                .map(|(i, name)| (first + i as u64, name))
                .collect(),
        };
        for (_, name) in &list {
            if reg.names.contains_key(&(ns.to_string(), name.clone())) {
                return err(format!(
                    "vm name `{name}` is already used in namespace {ns}"
                ));
            }
        }
        self.inner
            .next_id
            .store(first + list.len() as u64, Ordering::SeqCst);
        let mut out = Vec::with_capacity(list.len());
        for (id, name) in list {
            let uuid = if cfg.uuid.is_empty() {
                random_uuid()
            } else {
                cfg.uuid.clone()
            };
            let vm = Arc::new(Vm {
                id,
                name: name.clone(),
                namespace: ns.to_string(),
                uuid: uuid.clone(),
                paths: VmPaths::new(&self.inner.base, id),
                status: Mutex::new(Status {
                    state: VmState::Building,
                    config: cfg.clone(),
                    pid: None,
                    pid_start: None,
                    placed: Placed::default(),
                    launched: now_secs(),
                    tags: cfg.tags.clone(),
                    error: String::new(),
                    generation: 0,
                    launching: true,
                    life: None,
                    qmp: None,
                }),
                op: tokio::sync::Mutex::new(()),
            });
            reg.names.insert((ns.to_string(), name), id);
            reg.uuids.insert(uuid, id);
            reg.vms.insert(id, vm.clone());
            out.push(vm);
        }
        Ok(out)
    }

    fn unregister(&self, vm: &Vm) {
        let mut reg = self.reg();
        reg.vms.remove(&vm.id);
        reg.names.remove(&(vm.namespace.clone(), vm.name.clone()));
        if reg.uuids.get(&vm.uuid) == Some(&vm.id) {
            reg.uuids.remove(&vm.uuid);
        }
    }

    async fn launch_one(&self, vm: &Arc<Vm>) -> Result<(), VmError> {
        let _op = vm.op.lock().await;
        let dir = &vm.paths.dir;
        let r = match std::fs::create_dir_all(dir) {
            Err(e) => err(format!("cannot create {}: {e}", dir.display())),
            Ok(()) => self.start_process(vm).await,
        };
        match r {
            Ok(()) => {
                self.announce(vm, VmState::Building);
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(dir);
                self.unregister(vm);
                Err(e)
            }
        }
    }

    /// Places, spawns and connects to a new QEMU for `vm` (paused). On
    /// error the process, its cgroup or unit are gone again.
    async fn start_process(&self, vm: &Arc<Vm>) -> Result<(), VmError> {
        let (cfg, gen) = {
            let mut s = vm.lock();
            s.generation += 1;
            s.launching = true;
            s.error.clear();
            (s.config.clone(), s.generation)
        };
        let accel = self.accel();
        let limits = Limits::for_vm(&cfg, accel);
        let p = &vm.paths;
        for stale in [p.qmp(), p.vnc()] {
            let _ = std::fs::remove_file(stale);
        }
        for n in 0..cfg.serial_ports {
            let _ = std::fs::remove_file(p.serial(n));
        }
        let argv = argv::qemu_argv(&argv::Launch {
            name: &vm.name,
            uuid: &vm.uuid,
            paths: p,
            accel,
            config: &cfg,
        });
        let placement = self.placement();
        let leaf = format!("{}-{}", self.inner.tag, vm.id);
        let cgroups = placement.prepare(&leaf, &limits).map_err(VmError)?;
        let procs = super::cgroup::procs_files(&cgroups);
        let child = match process::spawn(&argv, &p.dir, &p.qemu_log(), &procs) {
            Ok(c) => c,
            Err(e) => {
                placement.release_cgroups(&cgroups).await;
                return err(format!("cannot run {}: {e}", argv[0]));
            }
        };
        let pid = child.id().unwrap_or(0);
        let pid_start = process::start_time(pid);
        let (life_tx, life_rx) = watch::channel(Life::Running);
        {
            let mut s = vm.lock();
            s.pid = Some(pid);
            s.pid_start = pid_start;
            s.placed = Placed {
                unit: None,
                cgroups: cgroups.clone(),
            };
            s.launched = now_secs();
            s.life = Some(life_rx.clone());
            s.state = VmState::Building;
        }
        self.save(vm);
        {
            let me = self.clone();
            let vm = vm.clone();
            tokio::spawn(async move {
                let mut child = child;
                let _ = child.wait().await;
                me.exited(&vm, gen, life_tx).await;
            });
        }
        let r = async {
            let unit = placement
                .attach(&vm.namespace, &vm.name, pid, &limits)
                .await
                .map_err(VmError)?;
            if unit.is_some() {
                vm.lock().placed.unit = unit;
                self.save(vm);
            }
            self.connect_new(vm, life_rx.clone()).await
        }
        .await;
        match r {
            Ok((qmp, events)) => {
                let exited = {
                    let mut s = vm.lock();
                    s.launching = false;
                    s.qmp = Some(qmp.clone());
                    *life_rx.borrow() != Life::Running
                };
                if exited {
                    // Lost the race with its exit: its watcher saw
                    // `launching` and left the cleanup to us.
                    self.abandon(vm, life_rx).await;
                    return err(format!("qemu exited: {}", qemu_error(&vm.paths)));
                }
                self.spawn_events(vm, gen, events);
                self.save(vm);
                Ok(())
            }
            Err(e) => {
                self.abandon(vm, life_rx).await;
                Err(e)
            }
        }
    }

    /// Undoes a failed start: kills the process, waits for it, releases
    /// its unit or cgroup.
    async fn abandon(&self, vm: &Vm, mut life: watch::Receiver<Life>) {
        let (pid, start, placed) = {
            let mut s = vm.lock();
            s.qmp = None;
            // Its watcher must not mistake this for a VM that quit.
            s.generation += 1;
            s.launching = false;
            (
                s.pid.take(),
                s.pid_start.take(),
                std::mem::take(&mut s.placed),
            )
        };
        if let Some(pid) = pid {
            process::signal(pid, start, libc::SIGKILL);
        }
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            life.wait_for(|l| *l != Life::Running),
        )
        .await;
        self.placement().release(&placed).await;
    }

    /// Waits for the QMP socket of a just-spawned QEMU and connects, or
    /// reports why QEMU died first (its own words from its log).
    async fn connect_new(
        &self,
        vm: &Vm,
        mut life: watch::Receiver<Life>,
    ) -> Result<(Arc<Qmp>, mpsc::UnboundedReceiver<QmpEvent>), VmError> {
        let path = vm.paths.qmp();
        let deadline = tokio::time::Instant::now() + QMP_READY_TIMEOUT;
        let mut pause = Duration::from_millis(5);
        let attempt = async {
            loop {
                match tokio::net::UnixStream::connect(&path).await {
                    Ok(stream) => {
                        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                        let (q, ev) = Qmp::handshake(stream, left)
                            .await
                            .map_err(|e| VmError(format!("QMP: {e}")))?;
                        return Ok::<_, VmError>((q, ev));
                    }
                    Err(_) if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_millis(100));
                    }
                    Err(e) => return err(format!("no QMP socket at {}: {e}", path.display())),
                }
            }
        };
        tokio::select! {
            r = attempt => {
                let (mut q, ev) = r?;
                q.timeout = QMP_CALL_TIMEOUT;
                Ok((Arc::new(q), ev))
            }
            _ = life.wait_for(|l| *l != Life::Running) => {
                err(format!("qemu exited at once: {}", qemu_error(&vm.paths)))
            }
        }
    }

    /// Applies QEMU's own pause/resume events (e.g. from `vm qmp`).
    pub(super) fn spawn_events(
        &self,
        vm: &Arc<Vm>,
        gen: u64,
        mut events: mpsc::UnboundedReceiver<QmpEvent>,
    ) {
        let me = self.clone();
        let vm = vm.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                let to = {
                    let s = vm.lock();
                    if s.generation != gen {
                        return;
                    }
                    match (ev.name.as_str(), s.state) {
                        ("STOP", VmState::Running) => Some(VmState::Paused),
                        ("RESUME", VmState::Paused | VmState::Building) => Some(VmState::Running),
                        _ => None,
                    }
                };
                if let Some(to) = to {
                    me.transition(&vm, to);
                }
            }
        });
    }

    /// Called by a process's watcher when it is gone: QUIT, saved,
    /// announced, and its cgroup or unit released.
    pub(super) async fn exited(&self, vm: &Arc<Vm>, gen: u64, life: watch::Sender<Life>) {
        let _ = life.send(Life::Exited);
        let placed = {
            let mut s = vm.lock();
            if s.generation != gen || s.launching {
                return;
            }
            s.qmp = None;
            s.pid = None;
            s.pid_start = None;
            std::mem::take(&mut s.placed)
        };
        self.placement().release(&placed).await;
        let from = vm.state();
        if from != VmState::Error {
            self.transition(vm, VmState::Quit);
        } else {
            self.save(vm);
        }
        info!(vm = %vm.name, id = vm.id, "qemu exited");
        let _ = life.send(Life::Settled);
    }

    // ---- lifecycle ----

    /// `vm start`: BUILDING/PAUSED resume, QUIT relaunches, RUNNING is
    /// left alone.
    pub async fn start(&self, vms: Vec<Arc<Vm>>) -> Result<(), VmError> {
        self.each(vms, |me, vm| async move { me.start_one(&vm).await })
            .await
    }

    async fn start_one(&self, vm: &Arc<Vm>) -> Result<(), VmError> {
        let _op = vm.op.lock().await;
        match vm.state() {
            VmState::Running => return Ok(()),
            VmState::Error => {
                return err(format!(
                    "vm {} is in state ERROR; kill or flush it",
                    vm.name
                ))
            }
            VmState::Quit => {
                let cfg = vm.lock().config.clone();
                self.validate(&cfg)?;
                if let Err(e) = self.start_process(vm).await {
                    self.set_state_quiet(vm, VmState::Quit, &e.0);
                    return Err(e);
                }
                self.announce(vm, VmState::Building);
            }
            VmState::Building | VmState::Paused => {}
        }
        let q = vm.qmp()?;
        q.execute("cont", None)
            .await
            .map_err(|e| VmError(format!("vm {}: {e}", vm.name)))?;
        self.transition(vm, VmState::Running);
        Ok(())
    }

    /// `vm stop`: RUNNING -> PAUSED.
    pub async fn stop(&self, vms: Vec<Arc<Vm>>) -> Result<(), VmError> {
        self.each(vms, |me, vm| async move {
            let _op = vm.op.lock().await;
            match vm.state() {
                VmState::Running => {}
                VmState::Paused => return Ok(()),
                s => return err(format!("vm {} is {s}, not RUNNING", vm.name)),
            }
            vm.qmp()?
                .execute("stop", None)
                .await
                .map_err(|e| VmError(format!("vm {}: {e}", vm.name)))?;
            me.transition(&vm, VmState::Paused);
            Ok(())
        })
        .await
    }

    /// `vm kill`: QEMU is asked to quit, then killed; returns once each VM
    /// is QUIT with its cgroup or unit gone.
    pub async fn kill(&self, vms: Vec<Arc<Vm>>) -> Result<(), VmError> {
        self.each(vms, |me, vm| async move {
            let _op = vm.op.lock().await;
            me.kill_one(&vm).await
        })
        .await
    }

    async fn kill_one(&self, vm: &Arc<Vm>) -> Result<(), VmError> {
        let (pid, start, qmp, life) = {
            let s = vm.lock();
            (s.pid, s.pid_start, s.qmp.clone(), s.life.clone())
        };
        let Some(pid) = pid else {
            return Ok(());
        };
        let Some(mut life) = life else {
            // Nobody watches this process (not expected): end it directly.
            if process::alive(pid, start) {
                super::adopt::stop_process(pid, start, qmp.as_deref()).await;
            }
            let mut s = vm.lock();
            s.pid = None;
            s.pid_start = None;
            return Ok(());
        };
        let gone = |life: &mut watch::Receiver<Life>, t: Duration| {
            let mut life = life.clone();
            async move {
                tokio::time::timeout(t, life.wait_for(|l| *l == Life::Settled))
                    .await
                    .is_ok()
            }
        };
        match qmp {
            Some(q) => {
                let _ = q.execute("quit", None).await;
            }
            None => process::signal(pid, start, libc::SIGTERM),
        }
        if !gone(&mut life, QUIT_GRACE).await {
            warn!(vm = %vm.name, pid, "qemu did not quit; sending SIGKILL");
            process::signal(pid, start, libc::SIGKILL);
            if !gone(&mut life, Duration::from_secs(10)).await {
                return err(format!("vm {}: qemu (pid {pid}) does not die", vm.name));
            }
        }
        Ok(())
    }

    /// `vm flush`: forgets QUIT and ERROR VMs and removes their folders.
    pub async fn flush(&self, ns: &str) -> Result<usize, VmError> {
        let dead: Vec<Arc<Vm>> = self
            .in_namespace(ns)
            .into_iter()
            .filter(|v| matches!(v.state(), VmState::Quit | VmState::Error))
            .collect();
        let n = dead.len();
        self.each(dead, |me, vm| async move {
            let _op = vm.op.lock().await;
            if !matches!(vm.state(), VmState::Quit | VmState::Error) {
                return Ok(());
            }
            // An ERROR VM may still have a QEMU: never orphan one.
            me.kill_one(&vm).await?;
            let placed = std::mem::take(&mut vm.lock().placed);
            me.placement().release(&placed).await;
            if let Err(e) = std::fs::remove_dir_all(&vm.paths.dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return err(format!("cannot remove {}: {e}", vm.paths.dir.display()));
                }
            }
            me.unregister(&vm);
            Ok(())
        })
        .await?;
        Ok(n)
    }

    /// `vm tag`: sets one tag on each VM.
    pub fn set_tag(&self, vms: &[Arc<Vm>], key: &str, value: &str) {
        for vm in vms {
            vm.lock().tags.insert(key.to_string(), value.to_string());
            self.save(vm);
        }
    }

    /// Remembers a changed cdrom so a relaunch boots with it.
    pub fn set_cdrom(&self, vm: &Vm, path: &str) {
        vm.lock().config.cdrom = path.to_string();
        self.save(vm);
    }

    /// Runs `f` on every VM concurrently; the first error (by VM id) is
    /// reported with a count of the others.
    async fn each<F, Fut>(&self, vms: Vec<Arc<Vm>>, f: F) -> Result<(), VmError>
    where
        F: Fn(Vms, Arc<Vm>) -> Fut,
        Fut: std::future::Future<Output = Result<(), VmError>> + Send + 'static,
    {
        let mut set = tokio::task::JoinSet::new();
        for vm in vms {
            let id = vm.id;
            let fut = f(self.clone(), vm);
            set.spawn(async move { (id, fut.await) });
        }
        let mut errors: Vec<(u64, String)> = Vec::new();
        while let Some(j) = set.join_next().await {
            match j {
                Ok((_, Ok(()))) => {}
                Ok((id, Err(e))) => errors.push((id, e.0)),
                Err(e) => errors.push((u64::MAX, e.to_string())),
            }
        }
        errors.sort();
        match errors.len() {
            0 => Ok(()),
            1 => err(errors.remove(0).1),
            n => err(format!("{} (and {} more errors)", errors[0].1, n - 1)),
        }
    }

    // ---- used by adoption ----

    pub(super) fn bump_next_id(&self, id: u64) {
        self.inner.next_id.fetch_max(id + 1, Ordering::SeqCst);
    }

    /// Registers a VM read back from its record. False if its name or id
    /// is taken (it is then left alone).
    pub(super) fn register_adopted(&self, r: &Record) -> Option<Arc<Vm>> {
        let mut reg = self.reg();
        let key = (r.namespace.clone(), r.name.clone());
        if reg.vms.contains_key(&r.id) || reg.names.contains_key(&key) {
            return None;
        }
        let vm = Arc::new(Vm {
            id: r.id,
            name: r.name.clone(),
            namespace: r.namespace.clone(),
            uuid: r.uuid.clone(),
            paths: VmPaths::new(&self.inner.base, r.id),
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
        });
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

    pub(super) fn set_state_quiet(&self, vm: &Vm, to: VmState, error: &str) {
        {
            let mut s = vm.lock();
            s.state = to;
            s.error = error.to_string();
        }
        self.save(vm);
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

/// The last lines QEMU wrote, as one line.
pub fn qemu_error(paths: &VmPaths) -> String {
    let text = std::fs::read_to_string(paths.qemu_log()).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return "no message".into();
    }
    let tail = &lines[lines.len().saturating_sub(3)..];
    tail.join("; ")
}

/// The binary's path: as given when it has a `/`, else searched in PATH.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let exec = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return exec(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| exec(p))
}

/// A random (version 4) UUID.
pub fn random_uuid() -> String {
    let mut b = [0u8; 16];
    if getrandom::getrandom(&mut b).is_err() {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = t.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_v4_and_valid() {
        let u = random_uuid();
        assert!(super::super::config::valid_uuid(&u), "{u}");
        assert_eq!(&u[14..15], "4");
        assert_ne!(random_uuid(), u);
    }

    #[test]
    fn binaries() {
        assert!(find_binary("sh").is_some());
        assert!(find_binary("/bin/sh").is_some());
        assert!(find_binary("no-such-qemu-here").is_none());
    }

    #[test]
    fn path_tags_differ() {
        assert_ne!(path_tag(Path::new("/a")), path_tag(Path::new("/b")));
        assert_eq!(path_tag(Path::new("/a")).len(), 8);
    }
}
