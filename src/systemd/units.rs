//! VMs as transient scope units: after the daemon spawns a QEMU, systemd
//! moves it into `minimega-<namespace>-<name>.scope` under
//! `minimega.slice`, with limits from the VM's config. `systemctl status`,
//! `journalctl -u` and `systemd-cgls` then show each VM by name, and the
//! daemon's own unit (KillMode=process) can restart without touching them.

use super::limits::{Limits, CPU_PERIOD_USEC};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};
use zbus::Connection;

pub const SLICE: &str = "minimega.slice";

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
pub trait Manager {
    fn subscribe(&self) -> zbus::Result<()>;

    fn start_transient_unit(
        &self,
        name: &str,
        mode: &str,
        properties: &[(&str, Value<'_>)],
        aux: &[(&str, &[(&str, Value<'_>)])],
    ) -> zbus::Result<OwnedObjectPath>;

    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;

    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;

    fn get_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;

    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

/// True when systemd is the init system (as `sd_booted()` decides).
pub fn systemd_booted() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
}

/// Escapes one part of a unit name as `systemd-escape` does.
pub fn escape(s: &str) -> String {
    let mut out = String::new();
    for (i, b) in s.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'_' || (b == b'.' && i > 0) || b == b':';
        if b == b'/' {
            out.push('-');
        } else if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The scope of a VM: `minimega-<namespace>-<name>.scope`, each part escaped.
pub fn scope_name(namespace: &str, name: &str) -> String {
    format!("minimega-{}-{}.scope", escape(namespace), escape(name))
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<String>>>>;

/// A connection to systemd on the system bus.
#[derive(Clone)]
pub struct Units {
    conn: Connection,
    manager: ManagerProxy<'static>,
    waiters: Waiters,
}

/// How long one call to systemd may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl Units {
    pub async fn connect() -> zbus::Result<Units> {
        let conn = zbus::connection::Builder::system()?
            .method_timeout(CALL_TIMEOUT)
            .build()
            .await?;
        let manager = ManagerProxy::new(&conn).await?;
        let mut removed = manager.receive_job_removed().await?;
        manager.subscribe().await?;
        let waiters: Waiters = Arc::default();
        let w = waiters.clone();
        tokio::spawn(async move {
            while let Some(sig) = removed.next().await {
                let Ok(args) = sig.args() else { continue };
                let tx = w
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&args.unit);
                if let Some(tx) = tx {
                    let _ = tx.send(args.result.clone());
                }
            }
        });
        Ok(Units {
            conn,
            manager,
            waiters,
        })
    }

    /// Registers a container with machined (see [`super::machines`]).
    pub async fn register_machine(&self, name: &str, leader: u32) -> Result<(), String> {
        super::machines::register(&self.conn, name, leader).await
    }

    /// Moves `pid` into a new scope and waits for systemd to finish.
    pub async fn start_scope(
        &self,
        unit: &str,
        description: &str,
        pid: u32,
        limits: &Limits,
    ) -> Result<(), String> {
        // A scope of a VM that died badly may linger as failed.
        let _ = self.manager.reset_failed_unit(unit).await;
        let rx = self.wait_for_job(unit);
        let quota_per_sec = limits.cpu_quota_usec * 1_000_000 / CPU_PERIOD_USEC;
        let props: Vec<(&str, Value<'_>)> = vec![
            ("Description", Value::from(description)),
            ("PIDs", Value::from(vec![pid])),
            ("Slice", Value::from(SLICE)),
            ("CollectMode", Value::from("inactive-or-failed")),
            ("MemoryAccounting", Value::from(true)),
            ("MemoryMax", Value::from(limits.memory_max)),
            ("CPUAccounting", Value::from(true)),
            ("CPUWeight", Value::from(limits.cpu_weight)),
            ("CPUQuotaPerSecUSec", Value::from(quota_per_sec)),
            ("TasksAccounting", Value::from(true)),
            ("TasksMax", Value::from(limits.tasks_max)),
        ];
        let mut props = props;
        if limits.delegate {
            props.push(("Delegate", Value::from(true)));
        }
        let r = self
            .manager
            .start_transient_unit(unit, "fail", &props, &[])
            .await;
        if let Err(e) = r {
            self.forget_job(unit);
            return Err(format!("cannot start {unit}: {e}"));
        }
        match self.job_result(unit, rx).await {
            Some(result) if result == "done" => Ok(()),
            Some(result) => Err(format!("starting {unit}: job {result}")),
            None => Err(format!("starting {unit}: no answer from systemd")),
        }
    }

    /// Stops a scope (its processes get SIGTERM, then SIGKILL) and forgets
    /// it; a unit that is already gone is fine. Waits for the stop job, so
    /// its end is never taken for the end of a later start of the same
    /// scope (a VM relaunched under its old name).
    pub async fn stop(&self, unit: &str) {
        let rx = self.wait_for_job(unit);
        if self.manager.stop_unit(unit, "replace").await.is_ok() {
            self.job_result(unit, rx).await;
        } else {
            self.forget_job(unit);
        }
        let _ = self.manager.reset_failed_unit(unit).await;
    }

    /// Registers for the end of the next job of `unit` (JobRemoved names
    /// the unit); registered before the job is queued, so it cannot be
    /// missed.
    fn wait_for_job(&self, unit: &str) -> oneshot::Receiver<String> {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(unit.to_string(), tx);
        rx
    }

    fn forget_job(&self, unit: &str) {
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(unit);
    }

    /// The job's result, or None when systemd said nothing in time (the
    /// registration is then dropped, not left behind).
    async fn job_result(&self, unit: &str, rx: oneshot::Receiver<String>) -> Option<String> {
        match tokio::time::timeout(CALL_TIMEOUT, rx).await {
            Ok(Ok(result)) => Some(result),
            _ => {
                self.forget_job(unit);
                None
            }
        }
    }

    async fn unit_property<T>(&self, unit: &str, iface: &str, prop: &str) -> Option<T>
    where
        T: TryFrom<OwnedValue>,
    {
        let path = self.manager.get_unit(unit).await.ok()?;
        let props = zbus::fdo::PropertiesProxy::builder(&self.conn)
            .destination("org.freedesktop.systemd1")
            .ok()?
            .path(path)
            .ok()?
            .build()
            .await
            .ok()?;
        let iface = zbus::names::InterfaceName::try_from(iface).ok()?;
        let v = props.get(iface, prop).await.ok()?;
        T::try_from(v).ok()
    }

    /// True while the unit exists and is active.
    pub async fn is_active(&self, unit: &str) -> bool {
        self.unit_property::<String>(unit, "org.freedesktop.systemd1.Unit", "ActiveState")
            .await
            .is_some_and(|s| s == "active" || s == "activating")
    }

    /// The scope's current memory (bytes) and CPU time (ns).
    pub async fn usage(&self, unit: &str) -> (Option<u64>, Option<u64>) {
        let iface = "org.freedesktop.systemd1.Scope";
        let valid = |v: Option<u64>| v.filter(|n| *n != u64::MAX);
        (
            valid(self.unit_property(unit, iface, "MemoryCurrent").await),
            valid(self.unit_property(unit, iface, "CPUUsageNSec").await),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_escape_like_systemd_escape() {
        assert_eq!(
            scope_name("minimega", "web1"),
            "minimega-minimega-web1.scope"
        );
        assert_eq!(
            scope_name("minimega", "vm-3"),
            "minimega-minimega-vm\\x2d3.scope"
        );
        assert_eq!(escape("a b.c"), "a\\x20b.c");
        assert_eq!(escape(".x"), "\\x2ex");
    }
}
