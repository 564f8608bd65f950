//! `minimega -console VM [-serial N]`: the terminal on a VM's serial
//! console, over the command socket (D-Bus has no streams). The terminal
//! is raw while attached (every key goes to the guest, Ctrl-C included);
//! Ctrl-] leaves, as in telnet and `virsh console`. The VM may run on any
//! node of the namespace (`-namespace`).

use crate::config::Config;
use crate::sock::client::{SocketClient, SocketClientError};
use std::io::Write;
use std::process::ExitCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Ctrl-]: the key that leaves.
pub const ESCAPE: u8 = 0x1d;

/// What of a chunk typed goes to the guest, and whether the escape key
/// came (what follows it is dropped).
pub fn split_escape(chunk: &[u8]) -> (&[u8], bool) {
    match chunk.iter().position(|&b| b == ESCAPE) {
        Some(i) => (&chunk[..i], true),
        None => (chunk, false),
    }
}

/// The terminal on standard input in raw mode, restored when dropped.
struct Raw {
    saved: libc::termios,
}

impl Raw {
    /// None when standard input is not a terminal (a pipe, a test).
    fn enter() -> Option<Raw> {
        // SAFETY: termios calls on fd 0 with a properly sized struct.
        unsafe {
            if libc::isatty(0) != 1 {
                return None;
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return None;
            }
            Some(Raw { saved })
        }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: restores what tcgetattr read.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.saved);
        }
    }
}

async fn connect(config: &Config) -> Result<SocketClient, SocketClientError> {
    let mut first = None;
    for path in config.socket_paths() {
        match SocketClient::connect(&path).await {
            Ok(c) => return Ok(c),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    Err(first.unwrap_or(SocketClientError::HungUp))
}

/// Attaches the terminal until Ctrl-], the end of standard input, or the
/// console's end (the VM quit).
pub fn attach(config: &Config, vm: &str, serial: u64) -> ExitCode {
    let Some(rt) = super::runtime() else {
        return ExitCode::FAILURE;
    };
    let ns = config.namespace.clone().unwrap_or_default();
    let code = rt.block_on(async {
        let opened = match connect(config).await {
            Ok(c) => c.console(vm, serial, &ns).await,
            Err(e) => Err(e),
        };
        let (stream, early) = match opened {
            Ok(s) => s,
            Err(e) => {
                eprintln!("minimega: {e}");
                return ExitCode::FAILURE;
            }
        };
        let raw = Raw::enter();
        eprint!("Connected to {vm} serial{serial}; Ctrl-] leaves.\r\n");
        let (mut rd, mut wr) = stream.into_split();
        let from_daemon = async {
            let mut out = std::io::stdout();
            if out.write_all(&early).and_then(|()| out.flush()).is_err() {
                return;
            }
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                            return;
                        }
                    }
                }
            }
        };
        // Standard input is read by a thread of its own: a blocking read.
        let (tx, mut typed) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            loop {
                // SAFETY: reads into a buffer of its length.
                let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
                if n <= 0 {
                    break;
                }
                let (keep, leave) = split_escape(&buf[..n as usize]);
                if !keep.is_empty() && tx.blocking_send(keep.to_vec()).is_err() {
                    break;
                }
                if leave {
                    break;
                }
            }
        });
        let to_daemon = async {
            while let Some(data) = typed.recv().await {
                if wr.write_all(&data).await.is_err() {
                    return;
                }
            }
        };
        tokio::select! {
            _ = from_daemon => {}
            _ = to_daemon => {}
        }
        drop(raw);
        eprintln!("\r\n[detached from {vm} serial{serial}]");
        ExitCode::SUCCESS
    });
    // Standard input's thread may still block in a read; do not wait.
    std::process::exit(i32::from(code != ExitCode::SUCCESS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_escape_key_ends_what_is_typed() {
        assert_eq!(split_escape(b"ls\r"), (&b"ls\r"[..], false));
        assert_eq!(split_escape(b"ab\x1dcd"), (&b"ab"[..], true));
        assert_eq!(split_escape(b"\x1d"), (&b""[..], true));
    }
}
