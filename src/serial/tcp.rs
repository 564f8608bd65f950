//! A container's console on a TCP port of its own (minimega's
//! `console_port`): every connection is one more viewer of the console's
//! relay, replay first, as `minimega -console` is. Open from the
//! container's start to its end.

use super::relay::Relay;
use super::{lock, serve, Serial};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::{debug, warn};

/// A listening console port and the task accepting on it.
pub(super) struct Port {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Port {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Serial {
    /// Opens VM `vm_id`'s console port for `relay`, on the address VNC
    /// ports use (all addresses when none is set, as minimega).
    pub(super) fn open_port(&self, vm_id: u64, name: &str, relay: Arc<Relay>) {
        let addr = SocketAddr::new(
            self.0
                .tickets
                .addr()
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            0,
        );
        let std = match std::net::TcpListener::bind(addr) {
            Ok(l) => l,
            Err(e) => {
                warn!(vm = %name, "no console port: {e}");
                return;
            }
        };
        let port = std.local_addr().map(|a| a.port()).unwrap_or(0);
        let _ = std.set_nonblocking(true);
        let Ok(listener) = TcpListener::from_std(std) else {
            return;
        };
        let vm = name.to_string();
        let task = tokio::spawn(async move {
            while let Ok((conn, peer)) = listener.accept().await {
                debug!(vm = %vm, %peer, "console viewer");
                let viewer = relay.viewer(&vm, 0);
                let (r, w) = conn.into_split();
                tokio::spawn(serve(viewer, r, w));
            }
        });
        lock(&self.0.ports).insert(vm_id, Port { port, task });
    }

    pub(super) fn close_port(&self, vm_id: u64) {
        lock(&self.0.ports).remove(&vm_id);
    }

    /// The container's console port while it runs.
    pub fn console_port(&self, vm_id: u64) -> Option<u16> {
        lock(&self.0.ports).get(&vm_id).map(|p| p.port)
    }
}
