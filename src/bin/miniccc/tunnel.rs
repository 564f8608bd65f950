//! The agent's end of minitunnel (`cc tunnel`, `cc rtunnel`), as the stock
//! agent serves it: the daemon's HANDSHAKE is acked; a CONNECT opens a
//! connection from the guest to its host and port; a FORWARD listens on a
//! guest port and opens a connection back through the daemon for each one
//! accepted. One per connection to the daemon: everything it opened ends
//! with [`Tunnel::shutdown`].

use crate::link::Link;
use minimega::cc::minitunnel::{self as mt, kind, TunnelMessage};
use minimega::cc::ron::{self, Message};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

const DIAL_WAIT: Duration = Duration::from_secs(10);

struct Conn {
    /// Bytes for the socket; dropped to end it once they are written.
    tx: mpsc::Sender<Vec<u8>>,
    /// Set once dialed; shut down when the tunnel ends.
    sock: Arc<Mutex<Option<TcpStream>>>,
}

pub struct Tunnel {
    link: Arc<Link>,
    uuid: String,
    writer: Mutex<mt::Writer>,
    reader: Mutex<mt::Reader>,
    conns: Mutex<HashMap<i64, Conn>>,
    listeners: Mutex<Vec<TcpListener>>,
    alive: AtomicBool,
    log: Box<dyn Fn(&str) + Send + Sync>,
}

impl Tunnel {
    pub fn new(
        link: Arc<Link>,
        uuid: &str,
        log: impl Fn(&str) + Send + Sync + 'static,
    ) -> Arc<Tunnel> {
        Arc::new(Tunnel {
            link,
            uuid: uuid.to_string(),
            writer: Mutex::new(mt::Writer::new()),
            reader: Mutex::new(mt::Reader::new()),
            conns: Mutex::new(HashMap::new()),
            listeners: Mutex::new(Vec::new()),
            alive: AtomicBool::new(true),
            log: Box::new(log),
        })
    }

    fn send(&self, m: &TunnelMessage) {
        // Encoding and sending under one lock keep the stream in order.
        let mut w = self.writer.lock().unwrap();
        let bytes = match w.encode(m) {
            Ok(b) => b,
            Err(e) => return (self.log)(&format!("tunnel: cannot encode: {e}")),
        };
        let msg = Message {
            kind: ron::kind::TUNNEL,
            uuid: self.uuid.clone(),
            tunnel: bytes,
            ..Message::default()
        };
        let _ = self.link.send(&msg);
    }

    /// TUNNEL bytes from the daemon.
    pub fn piece(self: &Arc<Self>, bytes: &[u8]) {
        let msgs = match self.reader.lock().unwrap().push(bytes) {
            Ok(m) => m,
            Err(e) => {
                (self.log)(&format!("tunnel: malformed message: {e}; tunnel closed"));
                self.shutdown();
                return;
            }
        };
        if !self.alive.load(Ordering::Relaxed) {
            return;
        }
        for m in msgs {
            self.message(m);
        }
    }

    fn message(self: &Arc<Self>, m: TunnelMessage) {
        match m.kind {
            kind::HANDSHAKE if !m.ack => self.send(&TunnelMessage::handshake(true)),
            kind::CONNECT => {
                let Some(port) = m.port() else {
                    return self.send(&TunnelMessage::closed(m.tid, "invalid port"));
                };
                let (host, tid) = (m.host.clone(), m.tid);
                let me = self.clone();
                let (tx, rx) = mpsc::channel();
                let sock = Arc::new(Mutex::new(None));
                self.conns.lock().unwrap().insert(
                    tid,
                    Conn {
                        tx,
                        sock: sock.clone(),
                    },
                );
                std::thread::spawn(move || match dial(&host, port) {
                    Ok(s) => me.carry(tid, s, sock, rx),
                    Err(why) => me.ended(tid, &why),
                });
            }
            kind::DATA => {
                if let Some(c) = self.conns.lock().unwrap().get(&m.tid) {
                    let _ = c.tx.send(m.data);
                }
            }
            kind::CLOSED => {
                self.conns.lock().unwrap().remove(&m.tid);
            }
            kind::FORWARD => {
                let why = match (m.source_port(), m.port()) {
                    (Some(src), Some(dst)) => match self.listen(src, m.host.clone(), dst) {
                        Ok(()) => String::new(),
                        Err(e) => format!("listen tcp :{src}: {e}"),
                    },
                    _ => "invalid port".into(),
                };
                self.send(&TunnelMessage::forwarded(m.tid, &why));
            }
            _ => {}
        }
    }

    fn listen(self: &Arc<Self>, src: u16, host: String, dst: u16) -> std::io::Result<()> {
        let l = match TcpListener::bind(("::", src)) {
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
                TcpListener::bind(("0.0.0.0", src))
            }
            r => r,
        }?;
        self.listeners.lock().unwrap().push(l.try_clone()?);
        (self.log)(&format!("tunnel: forward :{src} -> {host}:{dst}"));
        let me = self.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                if !me.alive.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(s) = s else {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                };
                let tid = mt::new_tid();
                let (tx, rx) = mpsc::channel();
                let sock = Arc::new(Mutex::new(None));
                me.conns.lock().unwrap().insert(
                    tid,
                    Conn {
                        tx,
                        sock: sock.clone(),
                    },
                );
                me.send(&TunnelMessage::connect(tid, &host, dst));
                let me = me.clone();
                std::thread::spawn(move || me.carry(tid, s, sock, rx));
            }
        });
        Ok(())
    }

    /// Moves bytes between a socket and the tunnel until either end closes.
    fn carry(
        self: Arc<Self>,
        tid: i64,
        s: TcpStream,
        sock: Arc<Mutex<Option<TcpStream>>>,
        rx: mpsc::Receiver<Vec<u8>>,
    ) {
        let _ = s.set_nodelay(true);
        let (Ok(mut rd), Ok(w)) = (s.try_clone(), s.try_clone()) else {
            return self.ended(tid, "cannot share the socket");
        };
        *sock.lock().unwrap() = Some(s);
        if !self.alive.load(Ordering::Relaxed) {
            let _ = w.shutdown(Shutdown::Both);
            return;
        }
        std::thread::spawn(move || {
            let mut w = w;
            for b in rx {
                if w.write_all(&b).is_err() {
                    break;
                }
            }
            let _ = w.shutdown(Shutdown::Both);
        });
        let mut buf = vec![0u8; mt::BUFFER_SIZE];
        let why = loop {
            match rd.read(&mut buf) {
                Ok(0) => break String::new(),
                Ok(n) => {
                    if !self.conns.lock().unwrap().contains_key(&tid) {
                        return;
                    }
                    self.send(&TunnelMessage::data(tid, &buf[..n]));
                }
                Err(e) => break e.to_string(),
            }
        };
        self.ended(tid, &why);
    }

    /// A connection ended here: the daemon is told, unless it ended it.
    fn ended(&self, tid: i64, why: &str) {
        if self.conns.lock().unwrap().remove(&tid).is_some() {
            self.send(&TunnelMessage::closed(tid, why));
        }
    }

    /// The connection to the daemon is gone: close every listener and
    /// connection the tunnel made.
    pub fn shutdown(&self) {
        self.alive.store(false, Ordering::Relaxed);
        for l in self.listeners.lock().unwrap().drain(..) {
            // Wakes the thread blocked in accept(); it sees `alive` false.
            // SAFETY: a socket this tunnel owns, still open.
            unsafe { libc::shutdown(l.as_raw_fd(), libc::SHUT_RDWR) };
        }
        for (_, c) in self.conns.lock().unwrap().drain() {
            if let Some(s) = c.sock.lock().unwrap().as_ref() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

fn dial(host: &str, port: u16) -> Result<TcpStream, String> {
    let fail = |e: &dyn std::fmt::Display| format!("dial tcp {host}:{port}: {e}");
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| fail(&e))?
        .collect();
    let mut last = fail(&"no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, DIAL_WAIT) {
            Ok(s) => return Ok(s),
            Err(e) => last = fail(&e),
        }
    }
    Err(last)
}
