//! `org.minimega.Minimega1` on the bus: `Exec` and `Complete` run through
//! the command engine in a session kept per calling connection, properties
//! read the node, and node events become signals.

use super::{BUS_NAME, OBJECT_PATH};
use crate::cli::Core;
use crate::command::render::{self, pad_table};
use crate::command::{Group, Response, Session};
use crate::event::Event;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tracing::{debug, warn};
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::{fdo, interface, Connection};

type SessionRef = Arc<tokio::sync::Mutex<Session>>;

/// The served object.
pub struct Api {
    daemon: Core,
    sessions: Arc<Mutex<HashMap<String, SessionRef>>>,
}

/// One host's answer on the bus: (host, text, error).
pub type HostAnswer = (String, String, String);

impl Api {
    fn session(&self, sender: &str) -> SessionRef {
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(sender.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(Session::new())))
            .clone()
    }
}

/// A host's answer on its own, without annotation: its text, or its table.
fn host_text(r: &Response) -> String {
    if r.is_tabular() {
        let mut rows = vec![r.header.clone()];
        rows.extend(r.tabular.iter().cloned());
        pad_table(&rows)
    } else {
        r.response.clone()
    }
}

/// What `Exec` returns: the rendered text, each host's answer, and all
/// responses as minimega's JSON.
pub fn exec_reply(groups: &[Group]) -> (String, Vec<HostAnswer>, String) {
    let text = render::render_groups(groups);
    let all: Vec<&Response> = groups.iter().flat_map(|g| g.responses.iter()).collect();
    let hosts = all
        .iter()
        .map(|r| (r.host.clone(), host_text(r), r.error.clone()))
        .collect();
    let json = serde_json::to_string(&all).unwrap_or_else(|_| "[]".into());
    (text, hosts, json)
}

#[interface(name = "org.minimega.Minimega1")]
impl Api {
    /// Run one minimega command line in the caller's session (dot settings,
    /// aliases and namespace persist per bus connection). Returns the text
    /// minimega prints, every host's (host, text, error), and the responses
    /// as JSON.
    async fn exec(
        &self,
        #[zbus(header)] header: Header<'_>,
        command: String,
    ) -> fdo::Result<(String, Vec<HostAnswer>, String)> {
        let sender = header
            .sender()
            .map(|s| s.to_string())
            .ok_or_else(|| fdo::Error::Failed("message has no sender".into()))?;
        let session = self.session(&sender);
        let mut session = session.lock().await;
        // The engine refuses a line past MAX_LINE at once, quoting only its
        // start (as the command socket does); the log does the same.
        debug!(%sender, command = %crate::command::excerpt(&command), "exec");
        let groups = self.daemon.exec(&mut session, &command).await;
        drop(command);
        if session.quit {
            // The caller's next command starts a fresh session.
            self.sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&sender);
        }
        Ok(exec_reply(&groups))
    }

    /// Completions of a partial command line, from the command table.
    async fn complete(&self, partial: String) -> Vec<String> {
        if partial.len() > crate::command::MAX_LINE {
            return Vec::new();
        }
        self.daemon.engine.suggest(&partial)
    }

    #[zbus(property)]
    async fn version(&self) -> String {
        crate::VERSION.to_string()
    }

    #[zbus(property)]
    async fn hostname(&self) -> String {
        self.daemon.node.hostname().to_string()
    }

    /// Nodes in the mesh, this one included.
    #[zbus(property)]
    async fn mesh_size(&self) -> u32 {
        self.daemon.node.mesh_size() as u32
    }

    /// Names of the nodes this one is linked to directly.
    #[zbus(property)]
    async fn peers(&self) -> Vec<String> {
        self.daemon.node.peers()
    }

    /// VMs on this node, in every namespace.
    #[zbus(property)]
    async fn vm_count(&self) -> u32 {
        self.daemon.node.vm_count() as u32
    }

    /// A VM on this node changed state (BUILDING, RUNNING, PAUSED, QUIT, ERROR).
    #[zbus(signal)]
    async fn vm_state_changed(
        emitter: &SignalEmitter<'_>,
        namespace: &str,
        name: &str,
        id: u64,
        state: &str,
    ) -> zbus::Result<()>;

    /// A node joined the mesh.
    #[zbus(signal)]
    async fn peer_joined(emitter: &SignalEmitter<'_>, host: &str) -> zbus::Result<()>;

    /// A node left the mesh.
    #[zbus(signal)]
    async fn peer_left(emitter: &SignalEmitter<'_>, host: &str) -> zbus::Result<()>;
}

/// Connects to the bus, serves the object, owns the name. Returns once the
/// name is owned, so READY=1 can follow.
pub async fn serve(daemon: Core) -> Result<Connection, zbus::Error> {
    let sessions: Arc<Mutex<HashMap<String, SessionRef>>> = Arc::default();
    let api = Api {
        daemon: daemon.clone(),
        sessions: sessions.clone(),
    };
    let conn = super::builder(&daemon.node.config.bus)?
        .serve_at(OBJECT_PATH, api)?
        .name(BUS_NAME)?
        .build()
        .await?;
    tokio::spawn(forget_departed(conn.clone(), sessions));
    tokio::spawn(relay_events(conn.clone(), daemon));
    Ok(conn)
}

/// Drops a client's session when its connection leaves the bus.
async fn forget_departed(conn: Connection, sessions: Arc<Mutex<HashMap<String, SessionRef>>>) {
    use futures_util::StreamExt;
    let Ok(proxy) = fdo::DBusProxy::new(&conn).await else {
        return;
    };
    let Ok(mut stream) = proxy.receive_name_owner_changed().await else {
        warn!("cannot watch D-Bus clients; sessions will be kept until restart");
        return;
    };
    while let Some(sig) = stream.next().await {
        let Ok(args) = sig.args() else { continue };
        if args.new_owner().is_none() {
            let name = args.name().to_string();
            sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&name);
        }
    }
}

/// Turns node events into signals and property-change notifications.
async fn relay_events(conn: Connection, daemon: Core) {
    let mut rx = daemon.node.events.subscribe();
    let Ok(iface) = conn.object_server().interface::<_, Api>(OBJECT_PATH).await else {
        return;
    };
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        let em = iface.signal_emitter();
        let api = iface.get().await;
        let r = match &ev {
            Event::VmState {
                namespace,
                name,
                id,
                state,
            } => {
                let _ = api.vm_count_changed(em).await;
                Api::vm_state_changed(em, namespace, name, *id, state).await
            }
            Event::PeerJoined(h) => {
                let _ = api.mesh_size_changed(em).await;
                let _ = api.peers_changed(em).await;
                Api::peer_joined(em, h).await
            }
            Event::PeerLeft(h) => {
                let _ = api.mesh_size_changed(em).await;
                let _ = api.peers_changed(em).await;
                Api::peer_left(em, h).await
            }
        };
        if let Err(e) = r {
            debug!("cannot emit signal: {e}");
        }
    }
}
