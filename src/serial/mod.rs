//! Serial consoles a person attaches to. QEMU serves each serial port of
//! a VM on a unix socket in its folder (and logs it to `serialN.log`);
//! QEMU takes one client at a time there, so the daemon is that client,
//! from the VM's start to its end: a relay per port that keeps the recent
//! output (replayed to whoever attaches) and fans the live output out to
//! every viewer, while what any viewer types goes to the guest.
//!
//! A viewer is a byte stream both ways ([`Viewer`], run by [`serve`]): a
//! `minimega -console VM` client over the command socket, a connection
//! from another node with a one-time ticket ([`Serial::ticket`]), and
//! later a web console. Nothing here knows which.
//!
//! - [`ring`]: the recent output (pure)
//! - [`relay`]: a console's source (QEMU's socket; any [`relay::Source`])
//!   relayed to its viewers
//! - `tickets`: attaching from another node over TCP
//! - `tcp`: a container's console on a TCP port of its own (`console_port`)
//! - `hook`: relays made when a VM starts or is adopted, gone with it

mod hook;
pub mod relay;
pub mod ring;
mod tcp;
mod tickets;

use crate::vm::Vm;
use relay::Relay;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc};

/// Bytes of recent output kept per port.
pub const SCROLLBACK: usize = 64 * 1024;

#[derive(Debug, Error)]
pub enum SerialError {
    #[error("vm not running: {0}")]
    NotRunning(String),
    #[error("vm {vm} has no serial port {port} (vm config serial-ports is {count})")]
    NoPort { vm: String, port: u64, count: u64 },
    #[error("cannot listen for consoles: {0}")]
    Listen(std::io::Error),
}

/// One attached viewer: the output so far, then the live output, and
/// where its typing goes.
pub struct Viewer {
    pub vm: String,
    pub port: u64,
    /// Recent output, to show first.
    pub replay: Vec<u8>,
    pub output: broadcast::Receiver<Arc<[u8]>>,
    pub input: mpsc::Sender<Vec<u8>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) struct Inner {
    relays: Mutex<HashMap<(u64, u64), Arc<Relay>>>,
    ports: Mutex<HashMap<u64, tcp::Port>>,
    tickets: tickets::Tickets,
}

/// The node's serial consoles. Cheap to clone.
#[derive(Clone)]
pub struct Serial(Arc<Inner>);

impl Serial {
    /// `addr`: where other nodes' attaches are taken (None: every address).
    pub fn new(addr: Option<IpAddr>) -> Serial {
        Serial(Arc::new(Inner {
            relays: Mutex::new(HashMap::new()),
            ports: Mutex::new(HashMap::new()),
            tickets: tickets::Tickets::new(addr),
        }))
    }

    pub fn hook(&self) -> Arc<dyn crate::vm::hooks::VmHook> {
        Arc::new(hook::SerialHook(self.clone()))
    }

    fn relay(&self, vm: &Vm, port: u64) -> Result<Arc<Relay>, SerialError> {
        let count = ports(vm).len() as u64;
        if port >= count {
            return Err(SerialError::NoPort {
                vm: vm.name.clone(),
                port,
                count,
            });
        }
        let r = lock(&self.0.relays).get(&(vm.id, port)).cloned();
        match r {
            Some(r) if vm.state().is_live() => Ok(r),
            _ => Err(SerialError::NotRunning(vm.name.clone())),
        }
    }

    /// A new viewer of the VM's serial port.
    pub fn attach(&self, vm: &Vm, port: u64) -> Result<Viewer, SerialError> {
        Ok(self.relay(vm, port)?.viewer(&vm.name, port))
    }

    /// A one-time ticket (valid for a short while) that attaches whoever
    /// presents it on the returned TCP port: how a node attaches to a
    /// console of a VM another node runs.
    pub fn ticket(&self, vm: &Vm, port: u64) -> Result<(u16, String), SerialError> {
        self.relay(vm, port)?;
        self.0
            .tickets
            .issue(self.clone(), vm.id, vm.name.clone(), port)
    }

    /// Viewers attached now, over every port.
    pub fn viewers(&self) -> usize {
        lock(&self.0.relays)
            .values()
            .map(|r| r.viewer_count())
            .sum()
    }

    fn by_id(&self, vm_id: u64, name: &str, port: u64) -> Option<Viewer> {
        let r = lock(&self.0.relays).get(&(vm_id, port)).cloned()?;
        Some(r.viewer(name, port))
    }
}

/// A VM's consoles: (port, socket, log). A QEMU guest's serial ports, or
/// a container's one console (its pty, served by its monitor).
fn ports(vm: &Vm) -> Vec<(u64, std::path::PathBuf, std::path::PathBuf)> {
    use crate::container::spec;
    let (kind, count) = {
        let s = vm.lock();
        (s.config.kind, s.config.serial_ports)
    };
    match kind {
        crate::vm::config::Kind::Container => vec![(
            0,
            vm.paths.dir.join(spec::CONSOLE_SOCKET),
            vm.paths.dir.join(spec::CONSOLE_LOG),
        )],
        crate::vm::config::Kind::Kvm => (0..count)
            .map(|n| (n, vm.paths.serial(n), vm.paths.serial_log(n)))
            .collect(),
    }
}

impl crate::vm::info::ConsoleView for Serial {
    fn console_port(&self, vm: &Vm) -> Option<u16> {
        Serial::console_port(self, vm.id)
    }
}

/// What a viewer is told when the console goes away under it.
pub const CLOSED_NOTICE: &[u8] = b"\r\n[minimega: the serial console closed]\r\n";

/// Runs a viewer over a byte stream until the viewer hangs up or the
/// console closes: the replay first, then output out and input in.
pub async fn serve<R, W>(viewer: Viewer, mut r: R, mut w: W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Viewer {
        replay,
        mut output,
        input,
        ..
    } = viewer;
    if w.write_all(&replay).await.is_err() || w.flush().await.is_err() {
        return;
    }
    let out = async {
        loop {
            match output.recv().await {
                Ok(chunk) => {
                    if w.write_all(&chunk).await.is_err() || w.flush().await.is_err() {
                        return;
                    }
                }
                // Too slow a viewer skips what it missed.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    let _ = w.write_all(CLOSED_NOTICE).await;
                    let _ = w.flush().await;
                    return;
                }
            }
        }
    };
    let inp = async {
        let mut buf = vec![0u8; 4096];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if input.send(buf[..n].to_vec()).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = out => {}
        _ = inp => {}
    }
}

#[cfg(test)]
mod tests;
