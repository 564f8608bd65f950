//! The monitor's two relays: the console (the pty's master side, logged
//! and served to one client on `vmdir/console`, as QEMU serves a serial
//! port on a socket) and cc (bytes between the daemon's end `vmdir/cc`
//! and the agent's end `vmdir/cc-agent`, which is `/cc` inside).

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

/// The log stops growing here (the relay keeps going): a chatty init
/// must not fill the VM's disk.
const LOG_CAP: u64 = 64 << 20;

type Client = Arc<Mutex<Option<mpsc::Sender<Vec<u8>>>>>;

fn set_nonblocking(fd: &OwnedFd) {
    unsafe {
        let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

fn raw_read(fd: &OwnedFd, buf: &mut [u8]) -> std::io::Result<usize> {
    let n = unsafe {
        libc::read(
            fd.as_raw_fd(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn raw_write(fd: &OwnedFd, buf: &[u8]) -> std::io::Result<usize> {
    let n = unsafe {
        libc::write(
            fd.as_raw_fd(),
            buf.as_ptr() as *const libc::c_void,
            buf.len(),
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Serves the console until the monitor exits. Output is read at all
/// times, so init never blocks on a full pty; a client too slow to take
/// it loses bytes, the log does not.
pub async fn serve_console(master: OwnedFd, listener: UnixListener, log: PathBuf) {
    set_nonblocking(&master);
    // SAFETY: the pty's master is owned here and by nothing else.
    let master = match unsafe { AsyncFd::register(master) } {
        Ok(m) => Arc::new(m),
        Err(_) => {
            eprintln!("container-shim: console: cannot watch the pty");
            return;
        }
    };
    let client: Client = Arc::new(Mutex::new(None));
    tokio::spawn(accept_console(listener, master.clone(), client.clone()));
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .ok();
    let mut logged = log
        .as_ref()
        .and_then(|f| f.metadata().ok())
        .map_or(0, |m| m.len());
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let Ok(mut guard) = master.readable().await else {
            return;
        };
        match guard.try_io(|fd| raw_read(fd.get_ref(), &mut buf)) {
            Ok(Ok(n)) if n > 0 => {
                let data = &buf[..n];
                if let Some(f) = log.as_mut().filter(|_| logged < LOG_CAP) {
                    let _ = f.write_all(data);
                    logged += n as u64;
                }
                let tx = client.lock().unwrap().clone();
                if let Some(tx) = tx {
                    let _ = tx.try_send(data.to_vec());
                }
            }
            Ok(_) => {
                // EIO (or EOF): no process holds the slave side open at
                // the moment; the pty comes back when one opens it.
                guard.clear_ready();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(_would_block) => {}
        }
    }
}

/// One client at a time: a new one replaces the old (the daemon's relay
/// is the one client; when it reconnects, its old connection is dead).
async fn accept_console(listener: UnixListener, master: Arc<AsyncFd<OwnedFd>>, client: Client) {
    let mut current: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        if let Some(old) = current.take() {
            old.abort();
        }
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
        *client.lock().unwrap() = Some(tx);
        let master = master.clone();
        current = Some(tokio::spawn(async move {
            let (mut r, mut w) = stream.into_split();
            let out = async {
                while let Some(data) = rx.recv().await {
                    if w.write_all(&data).await.is_err() {
                        break;
                    }
                }
            };
            let input = async {
                let mut buf = vec![0u8; 4096];
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0 || write_master(&master, &buf[..n]).await.is_err() {
                        break;
                    }
                }
            };
            tokio::select! { _ = out => {}, _ = input => {} }
        }));
    }
}

async fn write_master(master: &AsyncFd<OwnedFd>, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        let mut guard = master.writable().await?;
        match guard.try_io(|fd| raw_write(fd.get_ref(), data)) {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => {}
        }
    }
    Ok(())
}

/// Pairs one daemon connection with one agent connection and copies
/// between them; when either closes, both go (each side redials), and the
/// next pair is made. A second connection on a side replaces a waiting
/// one.
pub async fn serve_cc(daemon: UnixListener, agent: UnixListener) {
    let mut d: Option<UnixStream> = None;
    let mut a: Option<UnixStream> = None;
    loop {
        if d.is_some() && a.is_some() {
            let (Some(x), Some(y)) = (d.take(), a.take()) else {
                continue;
            };
            let (mut xr, mut xw) = x.into_split();
            let (mut yr, mut yw) = y.into_split();
            // The first direction to end ends both: dropping the halves
            // closes both connections.
            tokio::select! {
                _ = tokio::io::copy(&mut xr, &mut yw) => {},
                _ = tokio::io::copy(&mut yr, &mut xw) => {},
            }
            continue;
        }
        tokio::select! {
            r = daemon.accept() => if let Ok((s, _)) = r { d = Some(s) },
            r = agent.accept() => if let Ok((s, _)) = r { a = Some(s) },
        }
    }
}
