//! The daemon's side of containers: the checks a launch must pass, the
//! spec and command line of each container's monitor, and what a monitor
//! killed outright leaves on the host (its named network namespace).

use super::spec::{self, NicSpec, Spec};
use crate::command::BoxFuture;
use crate::vm::config::{Kind, VmConfig};
use crate::vm::hooks::{Admission, VmHook};
use crate::vm::runtime::Runtime;
use crate::vm::{Vm, VmError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::{info, warn};

/// Containers on this node. `tag` tells this daemon's network namespaces
/// from another's (see `crate::base::tag`).
pub struct Containers {
    pub tag: String,
}

fn no_file(what: &'static str, path: impl Into<String>) -> VmError {
    VmError::NoFile {
        what,
        path: path.into(),
    }
}

/// `inside` (an absolute path in the container) under the root `fs`.
/// Symlinks are not followed: an absolute link would name the host's file.
pub fn under(fs: &Path, inside: &str) -> PathBuf {
    fs.join(inside.trim_start_matches('/'))
}

/// Checks a container launch before anything is made (pure but for the
/// file system it looks at).
pub fn check(cfg: &VmConfig) -> Result<(), VmError> {
    let ct = &cfg.ct;
    if ct.filesystem.is_empty() {
        return Err(VmError::hook(
            "a container needs a file system: vm config filesystem PATH",
        ));
    }
    let fs = Path::new(&ct.filesystem);
    match std::fs::metadata(fs) {
        Err(_) => return Err(no_file("filesystem", &ct.filesystem)),
        Ok(m) if !m.is_dir() => {
            return Err(VmError::hook(format!(
                "filesystem {}: not a directory",
                ct.filesystem
            )))
        }
        Ok(_) => {}
    }
    let Some(init) = ct.init.first() else {
        return Err(VmError::hook("vm config init is empty"));
    };
    if std::fs::symlink_metadata(under(fs, init)).is_err() {
        return Err(VmError::hook(format!(
            "init {init}: no such file in the file system {}",
            ct.filesystem
        )));
    }
    if !ct.preinit.is_empty() && !Path::new(&ct.preinit).is_file() {
        return Err(no_file("preinit", &ct.preinit));
    }
    for src in ct.volumes.values() {
        if !Path::new(src).exists() {
            return Err(no_file("volume source", src));
        }
    }
    Ok(())
}

impl Containers {
    /// `/run/netns/<name>` of VM `id`.
    pub fn netns(&self, id: u64) -> String {
        format!("minimega-{}-{id}", self.tag)
    }

    fn spec(&self, vm: &Vm, cfg: &VmConfig) -> Spec {
        let nics = vm
            .lock()
            .config
            .networks
            .iter()
            .enumerate()
            .filter(|(_, n)| !n.tap.is_empty())
            .map(|(i, n)| NicSpec {
                peer: n.veth_peer(),
                name: format!("eth{i}"),
                mac: n.hwaddr.clone(),
            })
            .collect();
        let ct = &cfg.ct;
        Spec {
            name: vm.name.clone(),
            uuid: vm.uuid.clone(),
            hostname: if ct.hostname.is_empty() {
                vm.name.clone()
            } else {
                ct.hostname.clone()
            },
            vmdir: vm.paths.dir.clone(),
            filesystem: PathBuf::from(&ct.filesystem),
            snapshot: cfg.snapshot,
            init: ct.init.clone(),
            preinit: ct.preinit.clone(),
            fifos: ct.fifos,
            volumes: ct
                .volumes
                .iter()
                .map(|(d, s)| (d.clone(), PathBuf::from(s)))
                .collect(),
            nics,
            netns: self.netns(vm.id),
            memory: cfg.memory,
            cgroup_leaf: format!("{}-{}-payload", self.tag, vm.id),
        }
    }
}

impl Runtime for Containers {
    fn validate(&self, config: &VmConfig) -> Result<(), VmError> {
        check(config)
    }

    fn argv(&self, vm: &Vm, config: &VmConfig, _extra: &[String]) -> Result<Vec<String>, VmError> {
        let spec = self.spec(vm, config);
        let path = Spec::path(&vm.paths.dir);
        let text = serde_json::to_vec_pretty(&spec).unwrap_or_default();
        std::fs::write(&path, text).map_err(|e| VmError::io("write", &path, e))?;
        // The monitor is this very program in another mode, as `runc init`
        // is runc: wherever the daemon is installed, so is it.
        let exe = std::env::current_exe().map_err(|e| VmError::io("find", "/proc/self/exe", e))?;
        let mut argv = vec![exe.display().to_string()];
        argv.extend(spec::shim_args(&vm.name, &vm.paths.dir));
        Ok(argv)
    }
}

/// minimega's rule for a file system several containers would write: a
/// launch is refused when it, or a live container on the same file
/// system, runs without `snapshot` (or when it launches more than one
/// such container at once). `others`: (name, snapshot, file system) of
/// the live containers.
pub fn conflict(cfg: &VmConfig, count: usize, others: &[(String, bool, String)]) -> Option<String> {
    let fs = &cfg.ct.filesystem;
    if !cfg.snapshot && count > 1 {
        return Some(format!(
            "filesystem conflict: {count} containers would write {fs} (snapshot false)"
        ));
    }
    others
        .iter()
        .find(|(_, snap, f)| f == fs && (!cfg.snapshot || !snap))
        .map(|(name, _, f)| format!("filesystem conflict with vm {name}: {f}"))
}

/// Refuses a launch whose file system another container writes (see
/// [`conflict`]); removes a container's network namespace once its
/// monitor is gone (a monitor removes its own; one killed outright
/// cannot), and at start-up every one of this daemon's no VM claims.
pub struct ContainerHook(pub Arc<Containers>, pub crate::vm::manager::WeakVms);

async fn delete_netns(name: &str) {
    if !Path::new("/run/netns").join(name).exists() {
        return;
    }
    let out = tokio::process::Command::new("ip")
        .args(["netns", "delete", name])
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => info!("removed network namespace {name}"),
        Ok(o) => warn!(
            "ip netns delete {name}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => warn!("ip netns delete {name}: {e}"),
    }
}

impl VmHook for ContainerHook {
    fn name(&self) -> &'static str {
        "containers"
    }

    fn serves(&self, kind: Kind) -> bool {
        kind == Kind::Container
    }

    fn admit<'a>(&'a self, launch: &'a Admission<'a>) -> BoxFuture<'a, Result<(), VmError>> {
        Box::pin(async move {
            let Some(vms) = self.1.upgrade() else {
                return Ok(());
            };
            let others: Vec<(String, bool, String)> = vms
                .all()
                .iter()
                .filter_map(|vm| {
                    let s = vm.lock();
                    (s.state.is_live() && s.config.kind == Kind::Container).then(|| {
                        (
                            vm.name.clone(),
                            s.config.snapshot,
                            s.config.ct.filesystem.clone(),
                        )
                    })
                })
                .collect();
            match conflict(launch.config, launch.count, &others) {
                Some(e) => Err(VmError::hook(e)),
                None => Ok(()),
            }
        })
    }

    fn release<'a>(&'a self, vm: &'a Vm) -> BoxFuture<'a, ()> {
        Box::pin(async move { delete_netns(&self.0.netns(vm.id)).await })
    }

    fn recover<'a>(&'a self, vms: &'a [Arc<Vm>]) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let prefix = format!("minimega-{}-", self.0.tag);
            let Ok(dir) = std::fs::read_dir("/run/netns") else {
                return;
            };
            for e in dir.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(id) = name
                    .strip_prefix(&prefix)
                    .and_then(|i| i.parse::<u64>().ok())
                else {
                    continue;
                };
                let live = vms.iter().any(|v| v.id == id && v.lock().state.is_live());
                if !live {
                    delete_netns(&name).await;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_system_written_by_two_containers_is_refused() {
        let mut c = cfg(Path::new("/fs"));
        let others = vec![("a".to_string(), true, "/fs".to_string())];
        assert_eq!(conflict(&c, 3, &others), None, "snapshots share it");
        c.snapshot = false;
        assert_eq!(
            conflict(&c, 1, &others).unwrap(),
            "filesystem conflict with vm a: /fs"
        );
        assert!(conflict(&c, 2, &[])
            .unwrap()
            .contains("2 containers would write /fs"));
        assert_eq!(conflict(&c, 1, &[]), None);
        let writer = vec![("w".to_string(), false, "/fs".to_string())];
        c.snapshot = true;
        assert!(conflict(&c, 1, &writer).is_some(), "a writer has it");
        let elsewhere = vec![("w".to_string(), false, "/other".to_string())];
        assert_eq!(conflict(&c, 1, &elsewhere), None);
    }

    fn cfg(fs: &Path) -> VmConfig {
        let mut c = VmConfig {
            kind: Kind::Container,
            ..VmConfig::default()
        };
        c.ct.filesystem = fs.display().to_string();
        c
    }

    #[test]
    fn launch_checks_name_the_problem() {
        let d = std::env::temp_dir().join(format!("mm-ct-check-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("fs/bin")).unwrap();
        std::fs::write(d.join("fs/init"), "#!/bin/sh\n").unwrap();
        std::fs::write(d.join("file"), "").unwrap();
        assert!(check(&cfg(&d.join("fs"))).is_ok());
        let e = check(&VmConfig::default()).unwrap_err().to_string();
        assert!(e.contains("vm config filesystem"), "{e}");
        let e = check(&cfg(&d.join("nope"))).unwrap_err().to_string();
        assert!(
            e.contains("filesystem") && e.contains("no such file"),
            "{e}"
        );
        let e = check(&cfg(&d.join("file"))).unwrap_err().to_string();
        assert!(e.contains("not a directory"), "{e}");
        let mut c = cfg(&d.join("fs"));
        c.ct.init = vec!["/sbin/nope".into()];
        let e = check(&c).unwrap_err().to_string();
        assert!(e.contains("init /sbin/nope: no such file"), "{e}");
        let mut c = cfg(&d.join("fs"));
        c.ct.volumes
            .insert("/data".into(), "/nonexistent/src".into());
        let e = check(&c).unwrap_err().to_string();
        assert!(e.contains("volume source /nonexistent/src"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
