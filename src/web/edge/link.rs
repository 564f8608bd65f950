//! The console's link to the daemon: a few D-Bus connections for `Exec`
//! (each has its own session in the daemon, so a slow command on one does
//! not hold up the others), and the daemon's signals.

use crate::command::Response;
use crate::config::Bus;
use crate::dbus::client::Client;
use crate::dbus::{BUS_NAME, INTERFACE, OBJECT_PATH};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;

/// How many commands may run at once.
const POOL: usize = 4;

pub struct Link {
    clients: Vec<Client>,
    next: AtomicUsize,
}

/// A signal of the daemon's, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    VmState {
        namespace: String,
        name: String,
        id: u64,
        state: String,
    },
    Peers,
}

impl Link {
    pub async fn connect(bus: &Bus) -> Result<Link, String> {
        let mut clients = Vec::new();
        for _ in 0..POOL {
            clients.push(Client::connect(bus).await.map_err(|e| e.to_string())?);
        }
        Ok(Link {
            clients,
            next: AtomicUsize::new(0),
        })
    }

    fn client(&self) -> &Client {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        &self.clients[i]
    }

    /// Runs one line; every host's response. A failed call (daemon gone,
    /// permission) is the error; a command's own errors are in the responses.
    pub async fn exec(&self, line: &str) -> Result<Vec<Response>, String> {
        let reply = self.client().exec(line).await.map_err(|e| e.to_string())?;
        serde_json::from_str(&reply.json).map_err(|e| format!("daemon's answer: {e}"))
    }

    /// The daemon's hostname, as its responses name it.
    pub async fn hostname(&self) -> Result<String, String> {
        let proxy = zbus::Proxy::new(
            self.clients[0].connection(),
            BUS_NAME,
            OBJECT_PATH,
            INTERFACE,
        )
        .await
        .map_err(|e| e.to_string())?;
        proxy
            .get_property::<String>("Hostname")
            .await
            .map_err(|e| e.to_string())
    }

    /// The daemon's signals, as they come.
    pub async fn signals(&self) -> Result<mpsc::Receiver<Signal>, String> {
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface(INTERFACE)
            .and_then(|b| b.path(OBJECT_PATH))
            .map_err(|e| e.to_string())?
            .build();
        let mut stream =
            zbus::MessageStream::for_match_rule(rule, self.clients[0].connection(), Some(1024))
                .await
                .map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let member = msg.header().member().map(|m| m.to_string());
                let sig = match member.as_deref() {
                    Some("VmStateChanged") => {
                        let Ok((namespace, name, id, state)) =
                            msg.body().deserialize::<(String, String, u64, String)>()
                        else {
                            continue;
                        };
                        Signal::VmState {
                            namespace,
                            name,
                            id,
                            state,
                        }
                    }
                    Some("PeerJoined") | Some("PeerLeft") => Signal::Peers,
                    _ => continue,
                };
                if tx.send(sig).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }
}
