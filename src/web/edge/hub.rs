//! The live VM tables: one per namespace some page watches, refreshed when
//! a signal or an action says something changed (bursts coalesced), and
//! slowly otherwise; each change is pushed to every page of that
//! namespace as [`Push`] JSON.

use super::link::{Link, Signal};
use crate::web::lines;
use crate::web::live::{Live, Push};
use crate::web::route::Table as TableKind;
use crate::web::tables::{self, Table};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, Notify};
use tracing::{debug, warn};

/// A burst of signals (a `vm kill all` of many VMs) makes one refresh.
const COALESCE: Duration = Duration::from_millis(100);

pub struct Watcher {
    ns: String,
    tx: broadcast::Sender<Arc<str>>,
    live: tokio::sync::Mutex<Live>,
    kick: Notify,
}

pub struct Hub {
    link: Arc<Link>,
    host: String,
    backstop: Duration,
    watchers: Mutex<HashMap<String, Arc<Watcher>>>,
}

impl Hub {
    pub fn new(link: Arc<Link>, host: String, backstop: Duration) -> Arc<Hub> {
        Arc::new(Hub {
            link,
            host,
            backstop,
            watchers: Mutex::default(),
        })
    }

    async fn fetch(&self, ns: &str) -> Result<Table, String> {
        let line = lines::table(TableKind::Vms, ns, None).map_err(|e| e.to_string())?;
        Ok(tables::merge(&self.link.exec(&line).await?))
    }

    fn watcher(self: &Arc<Self>, ns: &str) -> Arc<Watcher> {
        let mut map = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = map.get(ns) {
            return w.clone();
        }
        let w = Arc::new(Watcher {
            ns: ns.to_string(),
            tx: broadcast::channel(4096).0,
            live: tokio::sync::Mutex::new(Live::default()),
            kick: Notify::new(),
        });
        map.insert(ns.to_string(), w.clone());
        tokio::spawn(self.clone().watch(w.clone()));
        w
    }

    /// The whole table now, and the pushes that follow it.
    pub async fn subscribe(
        self: &Arc<Self>,
        ns: &str,
    ) -> Result<(String, broadcast::Receiver<Arc<str>>), String> {
        let w = self.watcher(ns);
        let rx = w.tx.subscribe();
        let mut live = w.live.lock().await;
        if !live.loaded() {
            let t = self.fetch(ns).await?;
            live.update(t);
        }
        Ok((live.full().json(), rx))
    }

    /// Something changed in `ns` (an action ran): refresh soon.
    pub fn kick(&self, ns: &str) {
        let map = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = map.get(ns) {
            w.kick.notify_one();
        }
    }

    async fn watch(self: Arc<Self>, w: Arc<Watcher>) {
        loop {
            tokio::select! {
                _ = w.kick.notified() => tokio::time::sleep(COALESCE).await,
                _ = tokio::time::sleep(self.backstop) => {}
            }
            if w.tx.receiver_count() == 0 {
                let mut map = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
                if map.get(&w.ns).is_some_and(|x| Arc::ptr_eq(x, &w)) {
                    map.remove(&w.ns);
                }
                debug!(ns = %w.ns, "nobody watches; stopped");
                return;
            }
            match self.fetch(&w.ns).await {
                Ok(t) => {
                    let push = w.live.lock().await.update(t);
                    if let Some(p) = push {
                        let _ = w.tx.send(p.json().into());
                    }
                }
                Err(e) => warn!(ns = %w.ns, "vm info: {e}"),
            }
        }
    }

    /// Relays the daemon's signals for as long as they come.
    pub async fn relay(self: Arc<Self>, mut signals: tokio::sync::mpsc::Receiver<Signal>) {
        while let Some(sig) = signals.recv().await {
            let all: Vec<Arc<Watcher>> = {
                let map = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
                map.values().cloned().collect()
            };
            match sig {
                Signal::VmState {
                    namespace,
                    id,
                    state,
                    ..
                } => {
                    for w in all.iter().filter(|w| w.ns == namespace) {
                        let push = w.live.lock().await.set_state(&self.host, id, &state);
                        if let Some(p) = push {
                            let _ = w.tx.send(p.json().into());
                        }
                        w.kick.notify_one();
                    }
                }
                Signal::Peers => {
                    for w in &all {
                        let _ = w.tx.send(Push::Hosts.json().into());
                        w.kick.notify_one();
                    }
                }
            }
        }
        warn!(
            "the daemon's signals stopped; tables refresh every {:?}",
            self.backstop
        );
    }
}
