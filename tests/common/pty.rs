//! A real pseudo-terminal for a program under test (`minimega -console`):
//! the program gets the terminal as standard input, output and error, the
//! test types into the master side and reads what the program writes.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Pty {
    master: File,
    pub child: Child,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Pty {
    /// Starts `cmd` on a new terminal.
    pub fn spawn(mut cmd: Command) -> Pty {
        let (mut m, mut s) = (0, 0);
        // SAFETY: openpty fills two descriptors; no name, termios or size.
        let rc = unsafe {
            libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors are new and ours.
        let (master, slave) = unsafe { (File::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
        let child = cmd
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave))
            .spawn()
            .expect("spawn on the terminal");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once every holder of the slave is gone.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            master,
            child,
            seen,
        }
    }

    pub fn type_bytes(&mut self, b: &[u8]) {
        self.master.write_all(b).unwrap();
        self.master.flush().unwrap();
    }

    /// Everything the program wrote so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// Waits until the program has written `what` (after byte `from`).
    pub fn wait_for(&self, what: &str, from: usize, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let t = self.text();
            if let Some(i) = t.get(from..).and_then(|s| s.find(what)) {
                return from + i + what.len();
            }
            assert!(
                Instant::now() < deadline,
                "`{what}` not written within {limit:?}; the terminal shows:\n{t}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the program to end; its exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        super::wait_timeout(&mut self.child, limit).unwrap_or_else(|| {
            let _ = self.child.kill();
            panic!(
                "the program did not end; the terminal shows:\n{}",
                self.text()
            )
        })
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
