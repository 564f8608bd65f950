//! The daemon: wires the node, the command engine and the front doors
//! (D-Bus, the command socket, a terminal on stdin), tells systemd how it
//! is doing, and shuts down without touching VMs.

pub use crate::cli::Core as Daemon;

use crate::command::Session;
use crate::config::{Bus, Config};
use crate::systemd::notify;
use crate::VERSION;
use std::time::Duration;
use thiserror::Error;
use tracing::{error, info, warn};

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error(transparent)]
    Base(#[from] crate::base::BaseError),
    #[error("cannot serve {BUS} on {bus}: {why}", BUS = crate::dbus::BUS_NAME)]
    Bus { bus: String, why: String },
    #[error("cannot bind mesh port {port}: {source} (is another minimega running? use -port)")]
    MeshPort { port: u16, source: std::io::Error },
    #[error(transparent)]
    Socket(#[from] crate::sock::server::SocketError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<(), DaemonError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    rt.block_on(serve(config))
}

async fn serve(config: Config) -> Result<(), DaemonError> {
    let _lock = crate::base::lock(&config.base)?;
    crate::vm::admission::raise_open_file_limit();
    crate::vm::process::protect_daemon();
    // Bound before READY=1, so a started unit really owns its port; the
    // mesh takes the listener over.
    let mesh_listener = tokio::net::TcpListener::bind(("0.0.0.0", config.port))
        .await
        .map_err(|source| DaemonError::MeshPort {
            port: config.port,
            source,
        })?;
    let daemon = Daemon::new(config);
    let cfg = &daemon.node.config;
    info!(
        hostname = %cfg.hostname,
        base = %cfg.base.display(),
        port = cfg.port,
        context = %cfg.context,
        "minimega {VERSION} starting"
    );
    // Before any front door opens: no command sees a half-adopted VM.
    daemon.node.vms.init(cfg.recover).await;
    daemon.node.disks.recover().await;

    // Before the bus name: a daemon that must stop over a stale socket
    // never shows up on the bus.
    let socket = crate::sock::server::CommandSocket::start(daemon.clone())?;
    info!("serving the command socket {}", socket.path().display());

    let _bus = match crate::dbus::server::serve(daemon.clone()).await {
        Ok(conn) => {
            info!(
                "serving {} on {}",
                crate::dbus::BUS_NAME,
                crate::dbus::describe(&cfg.bus)
            );
            Some(conn)
        }
        Err(e) if cfg.bus == Bus::None => {
            let _ = e;
            None
        }
        Err(e) if crate::config::under_systemd() || matches!(e, zbus::Error::NameTaken) => {
            return Err(DaemonError::Bus {
                bus: crate::dbus::describe(&cfg.bus),
                why: if matches!(e, zbus::Error::NameTaken) {
                    "the name is already owned (another minimega is running)".into()
                } else {
                    e.to_string()
                },
            });
        }
        Err(e) => {
            warn!(
                "no D-Bus ({}): {e}; clients reach this daemon through the command socket only",
                crate::dbus::describe(&cfg.bus)
            );
            None
        }
    };

    daemon.node.mesh.start(mesh_listener);

    let shutdown = shutdown_signals();
    notify::ready(&daemon.status_line());
    info!("ready");
    spawn_status(daemon.clone());
    if let Some(period) = notify::watchdog_interval() {
        spawn_watchdog(daemon.clone(), period);
    }
    if !cfg.nostdin && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let d = daemon.clone();
        tokio::spawn(async move {
            crate::client::local_shell(d).await;
            // minimega quits when its own terminal closes (Ctrl-D).
            // SAFETY: raising a signal at ourselves.
            unsafe { libc::raise(libc::SIGTERM) };
        });
    }

    shutdown.await;
    notify::stopping();
    info!("shutting down; VMs are left running");
    drop(socket);
    // cc mounts are served by this process: they cannot outlive it.
    daemon.node.cc.mounts().clear_all();
    // The runtime drops its tasks on return; QEMUs are not our session
    // and nothing kills them on drop.
    Ok(())
}

/// Installs the handlers now (before READY=1, so an early SIGTERM is a
/// clean stop too) and resolves when one fires.
fn shutdown_signals() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            error!("cannot install signal handlers");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => info!("SIGTERM"),
            _ = int.recv() => info!("SIGINT"),
        }
    }
}

/// Keeps systemd's STATUS= current.
fn spawn_status(daemon: Daemon) {
    tokio::spawn(async move {
        let mut rx = daemon.node.events.subscribe();
        let mut last = String::new();
        loop {
            tokio::select! {
                _ = rx.recv() => {}
                _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            }
            let s = daemon.status_line();
            if s != last {
                notify::status(&s);
                last = s;
            }
        }
    });
}

/// Pings the watchdog only while the engine still answers a command, so a
/// wedged daemon is restarted by systemd rather than left hanging.
fn spawn_watchdog(daemon: Daemon, period: Duration) {
    tokio::spawn(async move {
        let mut session = Session::new();
        // Straight to the engine, past `run_line`: the probe is no user's
        // command and stays out of `history`.
        let version = crate::command::lexer::lex("version").expect("a constant line");
        loop {
            tokio::time::sleep(period / 2).await;
            let run = daemon
                .engine
                .run_words(&daemon.node, &mut session, version.clone());
            let probe = tokio::time::timeout(period / 2, run).await;
            if probe.is_ok() {
                notify::watchdog();
            } else {
                warn!(
                    "engine did not answer within {:?}; withholding the watchdog ping",
                    period / 2
                );
            }
        }
    });
}
