//! `vm launch`: checks, then ids, names and the UUID claimed at once,
//! then every QEMU spawned concurrently, placed (cgroup or scope unit) and
//! connected over QMP. A VM whose launch fails leaves nothing behind. Also
//! the watch on each QEMU that turns its exit into QUIT.

use super::argv::{self, VmPaths};
use super::config::{Kind, VmConfig};
use super::hooks::{Admission, Attempt, Tickets};
use super::limits::Limits;
use super::manager::{now_secs, Life, Status, Vm, VmError, Vms, QMP_CALL_TIMEOUT};
use super::process;
use super::qmp::{Qmp, QmpEvent};
use super::state::{Placed, VmState};
use super::targets::LaunchNames;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

/// How long a new QEMU may take to answer on QMP. Generous: a hundred
/// QEMUs starting at once under TCG on two cores take seconds each.
const QMP_READY_TIMEOUT: Duration = Duration::from_secs(120);

impl Vms {
    /// Checks everything a launch needs before anything is made.
    pub(super) fn validate(&self, cfg: &VmConfig) -> Result<(), VmError> {
        if cfg.kind == Kind::Container {
            return self.container_runtime()?.validate(cfg);
        }
        let files = [
            ("kernel", &cfg.kernel),
            ("initrd", &cfg.initrd),
            ("cdrom", &cfg.cdrom),
        ];
        for (what, f) in files {
            if !f.is_empty() && !Path::new(f).is_file() {
                return Err(VmError::NoFile {
                    what,
                    path: f.clone(),
                });
            }
        }
        for d in &cfg.disks {
            if !Path::new(&d.path).exists() {
                return Err(VmError::NoFile {
                    what: "disk",
                    path: d.path.clone(),
                });
            }
        }
        if !cfg.initrd.is_empty() && cfg.kernel.is_empty() {
            return Err(VmError::InitrdWithoutKernel);
        }
        if crate::paths::find_binary(&cfg.qemu).is_none() {
            return Err(VmError::NoQemu(cfg.qemu.clone()));
        }
        Ok(())
    }

    /// `vm launch kvm <names|count>`: registers the VMs, then starts every
    /// QEMU at once and returns when each is BUILDING or has failed. A VM
    /// that failed leaves nothing behind.
    pub async fn launch(&self, ns: &str, names: LaunchNames) -> Result<Vec<u64>, VmError> {
        self.launch_with(ns, names, self.config(ns)).await
    }

    /// [`Vms::launch`] with a given configuration: the one a head node sent
    /// along with a launch it scheduled here.
    pub async fn launch_with(
        &self,
        ns: &str,
        names: LaunchNames,
        cfg: VmConfig,
    ) -> Result<Vec<u64>, VmError> {
        let count = match &names {
            LaunchNames::Count(n) => *n as usize,
            LaunchNames::Names(v) => v.len(),
        };
        // Whatever the hooks reserve for this launch is given back when
        // the last of these goes: every return below, every VM's task.
        let tickets = Arc::new(Tickets::default());
        // Hooks first: one may fetch the files the checks look for.
        self.hooks()
            .admit(&Admission {
                namespace: ns,
                config: &cfg,
                count,
                tickets: &tickets,
            })
            .await?;
        self.validate(&cfg)?;
        let vms = self.reserve(ns, names, &cfg)?;
        // Each launch is its own task, so a client that goes away
        // mid-launch cannot leave a half-made VM behind.
        self.each(vms.clone(), |me, vm| {
            let attempt = Attempt {
                tickets: tickets.clone(),
                vm: vm.clone(),
            };
            async move {
                let r = me.launch_one(&vm).await.map_err(|e| VmError::Of {
                    vm: vm.name.clone(),
                    source: Box::new(e),
                });
                drop(attempt);
                r
            }
        })
        .await?;
        let mut ids: Vec<u64> = vms.iter().map(|v| v.id).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Allocates ids and claims names and the UUID, all or none.
    pub(super) fn reserve(
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
                return Err(VmError::UuidForMany {
                    uuid: cfg.uuid.clone(),
                    count: n,
                });
            }
            if let Some(v) = reg.uuids.get(&cfg.uuid).and_then(|id| reg.vms.get(id)) {
                return Err(VmError::UuidTaken {
                    uuid: cfg.uuid.clone(),
                    vm: v.name.clone(),
                });
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
                return Err(VmError::NameTaken {
                    name: name.clone(),
                    namespace: ns.to_string(),
                });
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
                saving: tokio::sync::Mutex::new(()),
                cc_active: Default::default(),
            });
            reg.names.insert((ns.to_string(), name), id);
            reg.uuids.insert(uuid, id);
            reg.vms.insert(id, vm.clone());
            out.push(vm);
        }
        Ok(out)
    }

    pub(super) fn unregister(&self, vm: &Vm) {
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
        // The record first: from here on a crash at any instant leaves a
        // record, which the next start-up reconciles with whatever was
        // made for it (hooks record what they make before making it).
        let r = match std::fs::create_dir_all(dir) {
            Err(e) => Err(VmError::io("create", dir, e)),
            Ok(()) => match self.save(vm).await {
                Ok(()) => {
                    crate::fault::point("launch.recorded");
                    self.start_process(vm).await
                }
                Err(e) => Err(e),
            },
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
    pub(super) async fn start_process(&self, vm: &Arc<Vm>) -> Result<(), VmError> {
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
        let extra = self.hooks().prepare(vm, &cfg).await?;
        let argv = match cfg.kind {
            Kind::Kvm => argv::qemu_argv(&argv::Launch {
                name: &vm.name,
                uuid: &vm.uuid,
                paths: p,
                accel,
                config: &cfg,
                extra: &extra,
            }),
            Kind::Container => match self
                .container_runtime()
                .and_then(|rt| rt.argv(vm, &cfg, &extra))
            {
                Ok(a) => a,
                Err(e) => {
                    self.hooks().release(vm).await;
                    return Err(e);
                }
            },
        };
        let placement = self.placement();
        let leaf = format!("{}-{}", self.inner.tag, vm.id);
        let cgroups = match placement.prepare(&leaf, &limits) {
            Ok(c) => c,
            Err(e) => {
                self.hooks().release(vm).await;
                return Err(VmError::Placement {
                    vm: vm.name.clone(),
                    why: e,
                });
            }
        };
        let procs = super::cgroup::procs_files(&cgroups);
        let (child, pid) = match process::spawn(&argv, &p.dir, &p.qemu_log(), &procs) {
            Ok(c) => c,
            Err(e) => {
                placement.release_cgroups(&cgroups).await;
                self.hooks().release(vm).await;
                // The VM's folder went under us (`vm flush` of a VM being
                // started): the binary is there, the VM is not.
                if !p.dir.is_dir() {
                    return Err(VmError::Flushed(vm.name.clone()));
                }
                return Err(VmError::Spawn {
                    binary: argv[0].clone(),
                    source: e,
                });
            }
        };
        crate::fault::point("launch.spawned");
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
        let saved = self.save(vm).await;
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
            // A QEMU whose pid is not on disk would be found again by its
            // command line, but the launch says success only once it is.
            saved?;
            let unit = placement
                .attach(&vm.namespace, &vm.name, pid, &limits)
                .await
                .map_err(|why| VmError::Placement {
                    vm: vm.name.clone(),
                    why,
                })?;
            if unit.is_some() {
                vm.lock().placed.unit = unit;
                self.save(vm).await?;
            }
            crate::fault::point("launch.placed");
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
                    return Err(exited_error(cfg.kind, false, &vm.paths));
                }
                // Nothing the record holds changed since the last save.
                self.spawn_events(vm, gen, events);
                self.hooks().started(vm, false).await;
                Ok(())
            }
            Err(e) => {
                // A record that could not be written is the cause itself;
                // anything else may be QEMU dying under it.
                let e = match e {
                    e @ VmError::Save(_) => e,
                    e => exit_reason(vm, life_rx.clone(), e).await,
                };
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
        self.hooks().release(vm).await;
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
                            .map_err(|e| VmError::qmp(&vm.name, "QMP", e))?;
                        return Ok::<_, VmError>((q, ev));
                    }
                    Err(_) if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(pause).await;
                        // A short cap: when a hundred QEMUs start at once,
                        // each polled socket's answer is soon; a long
                        // back-off would only add to the slowest one's wait.
                        pause = (pause * 2).min(Duration::from_millis(20));
                    }
                    Err(e) => {
                        return Err(VmError::NoQmp {
                            path: path.clone(),
                            source: e,
                        })
                    }
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
                Err(exited_error(vm.lock().config.kind, true, &vm.paths))
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
                    if let Err(e) = me.transition(&vm, to).await {
                        warn!(vm = %vm.name, "{e}");
                    }
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
        self.hooks().release(vm).await;
        let from = vm.state();
        let saved = if from != VmState::Error {
            self.transition(vm, VmState::Quit).await
        } else {
            self.save(vm).await
        };
        // No command waits for this: a record left saying RUNNING is
        // found dead and made QUIT at the next start-up.
        if let Err(e) = saved {
            warn!(vm = %vm.name, "{e}");
        }
        info!(vm = %vm.name, namespace = %vm.namespace, id = vm.id, "qemu exited");
        let _ = life.send(Life::Settled);
    }
}

/// How long a failed start waits to see whether QEMU itself died.
const EXIT_GRACE: Duration = Duration::from_secs(3);

/// QEMU opens its QMP socket before it sets the machine up, so a QEMU that
/// refuses its arguments (a missing image, a bad device) dies during the
/// handshake or the scope's start, and that step's failure ("QMP
/// connection closed") is only the symptom: when QEMU is gone, its own
/// words are the error.
async fn exit_reason(vm: &Vm, mut life: watch::Receiver<Life>, e: VmError) -> VmError {
    let died = tokio::time::timeout(EXIT_GRACE, life.wait_for(|l| *l != Life::Running))
        .await
        .is_ok_and(|r| r.is_ok());
    if died {
        exited_error(vm.lock().config.kind, true, &vm.paths)
    } else {
        e
    }
}

/// A process that died during its launch, in its own words.
fn exited_error(kind: Kind, at_once: bool, paths: &VmPaths) -> VmError {
    let words = qemu_error(paths);
    match (kind, at_once) {
        (Kind::Container, _) => VmError::ContainerFailed(words),
        (Kind::Kvm, true) => VmError::QemuExitedAtOnce(words),
        (Kind::Kvm, false) => VmError::QemuExited(words),
    }
}

/// The last lines QEMU (or a container's monitor) wrote, as one line.
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
}
