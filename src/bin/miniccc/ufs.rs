//! `cc mount`'s agent side, as minimega's agent serves it: the daemon's
//! UFS OPEN starts a 9P2000 file server on the guest's "/", fed the bytes
//! of the UFS DATA messages that follow; each answer goes back as one
//! DATA message; CLOSE stops it (a later OPEN starts another). One at a
//! time: an OPEN while one runs is logged and ignored. Unlike the stock
//! agent, a lost connection to the daemon stops it too, so the next
//! daemon's OPEN is not refused.

use super::Agent;
use minimega::cc::ron::{self, ufs, Message};
use minimega::ninep::server::Server;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

pub struct Ufs {
    root: PathBuf,
    running: Mutex<Option<Running>>,
    next: AtomicU64,
}

struct Running {
    id: u64,
    /// The server's input; dropped, it ends the server.
    tx: mpsc::Sender<Vec<u8>>,
}

impl Default for Ufs {
    fn default() -> Ufs {
        Ufs {
            root: PathBuf::from("/"),
            running: Mutex::new(None),
            next: AtomicU64::new(0),
        }
    }
}

impl Ufs {
    pub fn message(&self, agent: &Arc<Agent>, m: &Message) {
        match m.ufs_mode {
            ufs::OPEN => self.open(agent),
            ufs::CLOSE => {
                if !self.close() {
                    agent.debug("ufs: CLOSE, but not running");
                }
            }
            ufs::DATA => {
                let r = self.running.lock().unwrap();
                match r.as_ref() {
                    Some(run) => {
                        let _ = run.tx.send(m.tunnel.clone());
                    }
                    None => agent.debug("ufs: data, but not running; dropped"),
                }
            }
            other => agent.log(&format!("ufs: unexpected mode {other}")),
        }
    }

    fn open(&self, agent: &Arc<Agent>) {
        let mut r = self.running.lock().unwrap();
        if r.is_some() {
            agent.log("ufs is already running");
            return;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        *r = Some(Running { id, tx });
        let root = self.root.clone();
        let me = agent.clone();
        agent.log(&format!("ufs: serving {}", root.display()));
        std::thread::spawn(move || {
            let input = Inbox {
                rx,
                buf: Vec::new(),
                pos: 0,
            };
            let output = Upstream { agent: me.clone() };
            match Server::new(root).serve(input, output) {
                Ok(()) => me.debug("ufs: closed"),
                Err(e) => me.log(&format!("ufs: {e}")),
            }
            me.ufs.ended(id);
        });
    }

    /// Stops the server, if one runs.
    pub fn close(&self) -> bool {
        self.running.lock().unwrap().take().is_some()
    }

    /// Server `id` stopped by itself (its stream broke): a new OPEN may
    /// start another.
    fn ended(&self, id: u64) {
        let mut r = self.running.lock().unwrap();
        if r.as_ref().is_some_and(|run| run.id == id) {
            *r = None;
        }
    }
}

/// The DATA pieces as one stream; it ends when the sender goes.
struct Inbox {
    rx: mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for Inbox {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(b) => {
                    self.buf = b;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Each write (the server writes each answer whole) as one DATA message.
struct Upstream {
    agent: Arc<Agent>,
}

impl Write for Upstream {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.agent.send(&Message {
            kind: ron::kind::UFS,
            uuid: self.agent.uuid.clone(),
            ufs_mode: ufs::DATA,
            tunnel: b.to_vec(),
            ..Message::default()
        })?;
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
