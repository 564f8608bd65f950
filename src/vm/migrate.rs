//! A VM's running state to a file and back, as minimega 3.1.0 does it
//! with QEMU's migration: `vm save VM [NAME]` (and its deprecated
//! spellings `vm migrate VM NAME`, `vm snapshot VM ...`) copies the VM's
//! disks to NAME.hdd and writes its state (memory and devices) to
//! NAME.state, leaving it paused; `vm config state NAME.state` with `vm
//! config disk NAME.hdd` makes new VMs start from such a pair (QEMU
//! `-incoming`). `vm save` alone lists the saves of running VMs.

use super::config::VmConfig;
use super::hooks::{Admission, VmHook};
use super::manager::{Vm, VmError};
use super::qmp::Qmp;
use crate::command::BoxFuture;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// How long one disk copy of `vm save` may take.
const DISK_COPY_LIMIT: Duration = Duration::from_secs(3600);

/// How long a new VM may take to read the state it starts from.
const INCOMING_LIMIT: Duration = Duration::from_secs(600);

/// A word the shell reads back as `s` (QEMU runs `exec:` through sh).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The migration URI that writes the state to `file`.
pub fn outgoing_uri(file: &str) -> String {
    format!("exec:cat > {}", shell_quote(file))
}

/// QEMU's arguments to start from the state in `file`.
pub fn incoming_args(file: &str) -> [String; 2] {
    [
        "-incoming".into(),
        format!("exec:cat {}", shell_quote(file)),
    ]
}

/// A row of the status listing from `query-migrate`'s answer: None when
/// the VM has no migration.
pub fn status(answer: &Value) -> Option<(String, String)> {
    let status = answer.get("status")?.as_str()?.to_string();
    let pct = match status.as_str() {
        "completed" => 100.0,
        _ => {
            let ram = answer.get("ram");
            let num = |k: &str| ram.and_then(|r| r.get(k)).and_then(Value::as_f64);
            match (num("transferred"), num("total")) {
                (Some(t), Some(total)) if total > 0.0 => (t / total * 100.0).min(100.0),
                _ => 0.0,
            }
        }
    };
    Some((status, format!("{pct:.2}")))
}

/// The files `vm save NAME` writes: state, then one disk file per disk.
pub fn save_files(base: &str, disks: usize) -> (String, Vec<String>) {
    let hdd = (0..disks)
        .map(|i| match i {
            0 => format!("{base}.hdd"),
            i => format!("{base}.hdd.{i}"),
        })
        .collect();
    (format!("{base}.state"), hdd)
}

fn qmp_err<'a>(vm: &'a Vm, what: &'static str) -> impl Fn(super::qmp::QmpError) -> VmError + 'a {
    move |e| VmError::qmp(&vm.name, what, e)
}

/// Starts writing the VM's state to `file` (absolute); returns at once.
/// The VM pauses when the migration completes.
pub async fn migrate(vm: &Vm, q: &Qmp, file: &str) -> Result<(), VmError> {
    if let Some(dir) = Path::new(file).parent() {
        std::fs::create_dir_all(dir).map_err(|e| VmError::File {
            path: dir.to_path_buf(),
            source: e,
        })?;
    }
    // The file is local: no reason for QEMU's network-minded throttle.
    q.execute(
        "migrate-set-parameters",
        Some(json!({ "max-bandwidth": 1u64 << 40 })),
    )
    .await
    .map_err(qmp_err(vm, "migrate"))?;
    q.execute("migrate", Some(json!({ "uri": outgoing_uri(file) })))
        .await
        .map_err(qmp_err(vm, "migrate"))?;
    Ok(())
}

/// Makes the file a disk is copied into: an overlay of the VM's image
/// when the VM runs on a snapshot of it, else an empty image of its size.
async fn create_target(
    target: &str,
    image: &str,
    snapshot: bool,
    size: u64,
) -> Result<(), VmError> {
    let _ = std::fs::remove_file(target);
    let mut cmd = tokio::process::Command::new("qemu-img");
    cmd.args(["create", "-q", "-f", "qcow2"]);
    if snapshot {
        let head = std::fs::read(image).map(|d| d.into_iter().take(72).collect::<Vec<u8>>());
        let format = super::hotplug::image_format(&head.unwrap_or_default());
        cmd.args(["-b", image, "-F", format, target]);
    } else {
        cmd.args([target, &size.to_string()]);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .map_err(|_| VmError::QemuImg {
            target: target.to_string(),
            why: "no answer within 60s".into(),
        })?
        .map_err(|e| VmError::Spawn {
            binary: "qemu-img".into(),
            source: e,
        })?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(VmError::QemuImg {
            target: target.to_string(),
            why,
        });
    }
    Ok(())
}

/// Copies disk `index` of the VM to `target` and waits for the copy: the
/// VM's own changes over its image when it runs on a snapshot, else all.
///
/// The target is made here and handed to QEMU as a node of its own:
/// QEMU 7.2's `drive-backup` of a `snapshot=on` drive opens its target as
/// a temporary image and deletes it (with `sync=top`, the VM's image too).
async fn copy_disk(
    vm: &Vm,
    q: &Qmp,
    index: usize,
    target: &str,
    snapshot: bool,
) -> Result<(), VmError> {
    let fail = qmp_err(vm, "save disk");
    let device = format!("disk{index}");
    let node = format!("save{index}");
    let job = format!("save-disk{index}");
    let (image, size) = {
        let blocks = q.execute("query-block", None).await.map_err(&fail)?;
        let b = blocks
            .as_array()
            .and_then(|a| a.iter().find(|b| b["device"] == device.as_str()))
            .cloned()
            .unwrap_or_default();
        let size = b["inserted"]["image"]["virtual-size"].as_u64().unwrap_or(0);
        let cfg = vm.lock().config.clone();
        let image = cfg.disks.get(index).map(|d| d.path.clone());
        (image.unwrap_or_default(), size)
    };
    create_target(target, &image, snapshot, size).await?;
    let copied = async {
        q.execute(
            "blockdev-add",
            Some(json!({
                "driver": "qcow2",
                "node-name": node,
                "file": { "driver": "file", "filename": target },
                "backing": null,
            })),
        )
        .await
        .map_err(&fail)?;
        let r = async {
            q.execute(
                "blockdev-backup",
                Some(json!({
                    "job-id": job,
                    "device": device,
                    "target": node,
                    "sync": if snapshot { "top" } else { "full" },
                    "auto-dismiss": false,
                })),
            )
            .await
            .map_err(&fail)?;
            wait_job(vm, q, &job).await
        }
        .await;
        let _ = q
            .execute("blockdev-del", Some(json!({ "node-name": node })))
            .await;
        r
    }
    .await;
    if copied.is_err() {
        let _ = std::fs::remove_file(target);
    }
    copied
}

/// Waits for a block job to conclude, and dismisses it.
async fn wait_job(vm: &Vm, q: &Qmp, job: &str) -> Result<(), VmError> {
    let fail = qmp_err(vm, "save disk");
    let deadline = tokio::time::Instant::now() + DISK_COPY_LIMIT;
    loop {
        let jobs = q.execute("query-jobs", None).await.map_err(&fail)?;
        let mine = jobs
            .as_array()
            .and_then(|a| a.iter().find(|j| j["id"] == job))
            .cloned();
        match mine {
            Some(j) if j["status"] == "concluded" => {
                let _ = q.execute("job-dismiss", Some(json!({ "id": job }))).await;
                if let Some(e) = j.get("error").and_then(Value::as_str) {
                    return Err(VmError::Job {
                        vm: vm.name.clone(),
                        what: "save disk",
                        why: e.to_string(),
                    });
                }
                return Ok(());
            }
            None => {
                return Err(VmError::Job {
                    vm: vm.name.clone(),
                    what: "save disk",
                    why: "the copy vanished".into(),
                })
            }
            Some(_) if tokio::time::Instant::now() >= deadline => {
                let _ = q.execute("job-cancel", Some(json!({ "id": job }))).await;
                return Err(VmError::Job {
                    vm: vm.name.clone(),
                    what: "save disk",
                    why: "no end within an hour".into(),
                });
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// `vm save`: the disks first (waited for), then the state (started).
pub async fn save(vm: &Arc<Vm>, base: &str) -> Result<(), VmError> {
    let _op = vm.op.lock().await;
    let q = vm.qmp()?;
    let cfg = vm.lock().config.clone();
    let (state, disks) = save_files(base, cfg.disks.len());
    if let Some(dir) = Path::new(&state).parent() {
        std::fs::create_dir_all(dir).map_err(|e| VmError::File {
            path: dir.to_path_buf(),
            source: e,
        })?;
    }
    // Paused from the first disk copy on, so the disks and the state are
    // of one moment (the migration would pause it at its end anyway).
    if !disks.is_empty() {
        q.execute("stop", None).await.map_err(qmp_err(vm, "save"))?;
    }
    // A save that fails leaves none of its files behind.
    let made = async {
        for (i, target) in disks.iter().enumerate() {
            copy_disk(vm, &q, i, target, cfg.snapshot).await?;
        }
        migrate(vm, &q, &state).await
    }
    .await;
    if made.is_err() {
        for f in &disks {
            let _ = std::fs::remove_file(f);
        }
    }
    made
}

/// Whether a QEMU started with `-incoming` (its `query-status` answer) has
/// yet to take in its state: it stays "inmigrate" until the state is in,
/// and a `cont` sent meanwhile is lost on a state saved paused.
fn still_loading(status: &Value) -> bool {
    status["status"] == "inmigrate"
}

/// Starts VMs from `vm config state` and checks the file at each launch.
pub struct Incoming;

impl VmHook for Incoming {
    fn name(&self) -> &'static str {
        "incoming"
    }

    fn admit<'a>(&'a self, launch: &'a Admission<'a>) -> BoxFuture<'a, Result<(), VmError>> {
        Box::pin(async move {
            let f = &launch.config.state;
            if !f.is_empty() && !Path::new(f).is_file() {
                return Err(VmError::NoState(f.clone()));
            }
            Ok(())
        })
    }

    fn prepare<'a>(
        &'a self,
        _vm: &'a Arc<Vm>,
        config: &'a VmConfig,
    ) -> BoxFuture<'a, Result<Vec<String>, VmError>> {
        Box::pin(async move {
            if config.state.is_empty() {
                return Ok(Vec::new());
            }
            Ok(incoming_args(&config.state).to_vec())
        })
    }

    /// A VM is ready (BUILDING) once its state is in: `vm start` then
    /// resumes it whether it was saved running or paused (QEMU keeps a
    /// paused VM's `cont` for later only while the state still loads).
    fn started<'a>(&'a self, vm: &'a Arc<Vm>, adopted: bool) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if adopted || vm.lock().config.state.is_empty() {
                return;
            }
            let deadline = tokio::time::Instant::now() + INCOMING_LIMIT;
            while tokio::time::Instant::now() < deadline {
                let Ok(q) = vm.qmp() else { return };
                // Not query-migrate: before the exec'd reader starts it has
                // no status at all, which looked like a load already done.
                match q.execute("query-status", None).await {
                    Ok(a) if !still_loading(&a) => return,
                    Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    Err(e) => {
                        warn!(vm = %vm.name, "cannot follow the loading of its state: {e}");
                        return;
                    }
                }
            }
            warn!(vm = %vm.name, "its state did not load within 10 minutes");
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vm_loads_its_state_while_inmigrate() {
        assert!(still_loading(
            &json!({"status": "inmigrate", "running": false})
        ));
        assert!(!still_loading(
            &json!({"status": "paused", "running": false})
        ));
        assert!(!still_loading(
            &json!({"status": "running", "running": true})
        ));
        assert!(!still_loading(&json!({})));
    }

    #[test]
    fn file_names_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("x'; rm -rf /; '"), r"'x'\''; rm -rf /; '\'''");
        assert_eq!(outgoing_uri("/f/vm.state"), "exec:cat > '/f/vm.state'");
        assert_eq!(
            incoming_args("/f/it's"),
            [
                "-incoming".to_string(),
                r"exec:cat '/f/it'\''s'".to_string()
            ]
        );
    }

    #[test]
    fn status_rows_from_query_migrate() {
        assert_eq!(status(&json!({})), None);
        assert_eq!(
            status(&json!({"status": "completed", "ram": {"total": 10}})),
            Some(("completed".into(), "100.00".into()))
        );
        assert_eq!(
            status(&json!({"status": "active", "ram": {"total": 400.0, "transferred": 100.0}})),
            Some(("active".into(), "25.00".into()))
        );
        assert_eq!(
            status(&json!({"status": "setup"})),
            Some(("setup".into(), "0.00".into()))
        );
    }

    #[test]
    fn saved_files() {
        let (state, disks) = save_files("/f/saved/web", 3);
        assert_eq!(state, "/f/saved/web.state");
        assert_eq!(
            disks,
            [
                "/f/saved/web.hdd",
                "/f/saved/web.hdd.1",
                "/f/saved/web.hdd.2"
            ]
        );
        assert!(save_files("/x", 0).1.is_empty());
    }
}
