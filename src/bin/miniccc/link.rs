//! The agent's connection to its daemon: the virtio-serial port, TCP or a
//! unix socket, used non-blocking with poll(2) deadlines, so a daemon that
//! went away (a serial port's host side closed, a dead TCP peer) is noticed
//! instead of blocking a thread forever. One reader; writers share the gob
//! encoder under a lock.

use minimega::cc::gob;
use minimega::cc::ron::{self, Message};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub enum Target {
    Serial(String),
    Tcp(String),
    Unix(String),
}

impl Target {
    pub fn describe(&self) -> String {
        match self {
            Target::Serial(p) => format!("serial {p}"),
            Target::Tcp(a) => format!("tcp {a}"),
            Target::Unix(p) => format!("unix {p}"),
        }
    }
}

pub struct Link {
    fd: OwnedFd,
    enc: Mutex<gob::Encoder>,
    alive: AtomicBool,
}

const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

fn nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0
        || unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `/dev/virtio-ports/NAME` is a link udev makes; a guest without udev
/// still has the port, found by its name in sysfs.
fn port_device(path: &str) -> std::path::PathBuf {
    let p = std::path::Path::new(path);
    if p.exists() {
        return p.to_path_buf();
    }
    let Some(name) = path.strip_prefix("/dev/virtio-ports/") else {
        return p.to_path_buf();
    };
    std::fs::read_dir("/sys/class/virtio-ports")
        .into_iter()
        .flatten()
        .flatten()
        .find(|e| std::fs::read_to_string(e.path().join("name")).is_ok_and(|n| n.trim() == name))
        .map(|e| std::path::Path::new("/dev").join(e.file_name()))
        .unwrap_or_else(|| p.to_path_buf())
}

/// Waits until `fd` is ready for `events`, or the deadline.
fn wait(fd: &OwnedFd, events: i16, deadline: Instant) -> io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            continue;
        }
        // A virtio port whose host side is closed polls as hung up.
        if p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
            && p.revents & events == 0
        {
            return Err(io::ErrorKind::ConnectionAborted.into());
        }
        return Ok(());
    }
}

impl Link {
    pub fn dial(target: &Target) -> io::Result<Link> {
        let fd: OwnedFd = match target {
            Target::Serial(p) => std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(port_device(p))?
                .into(),
            Target::Tcp(a) => {
                let s = std::net::TcpStream::connect(a)?;
                s.set_nodelay(true)?;
                s.into()
            }
            Target::Unix(p) => std::os::unix::net::UnixStream::connect(p)?.into(),
        };
        Link::from_fd(fd)
    }

    /// A link over a connection already made.
    pub fn from_fd(fd: OwnedFd) -> io::Result<Link> {
        nonblocking(&fd)?;
        Ok(Link {
            fd,
            enc: Mutex::new(gob::Encoder::new()),
            alive: AtomicBool::new(true),
        })
    }

    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }

    pub fn kill(&self) {
        self.alive.store(false, Ordering::Relaxed);
    }

    /// Reads what is there (at least one byte) by the deadline; 0 is the
    /// end of the stream.
    pub fn read(&self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        loop {
            wait(&self.fd, libc::POLLIN, deadline)?;
            // SAFETY: reading into a valid buffer of its length.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) {
                return Err(e);
            }
        }
    }

    pub fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        let deadline = Instant::now() + WRITE_TIMEOUT;
        while !buf.is_empty() {
            wait(&self.fd, libc::POLLOUT, deadline)?;
            // SAFETY: writing from a valid buffer of its length.
            let n = unsafe { libc::write(self.fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) {
                    continue;
                }
                return Err(e);
            }
            buf = &buf[n as usize..];
        }
        Ok(())
    }

    /// One message, encoded on this link's stream.
    pub fn send(&self, m: &Message) -> io::Result<()> {
        if !self.alive() {
            return Err(io::ErrorKind::NotConnected.into());
        }
        let mut enc = self.enc.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = enc
            .encode(&ron::T_MESSAGE, &m.to_gob())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let r = self.write_all(&bytes);
        if r.is_err() {
            self.kill();
        }
        r
    }
}

/// Reads the daemon's side of a stream: the magic, then gob frames.
pub struct Reader<'a> {
    link: &'a Link,
    buf: Vec<u8>,
    pos: usize,
    dec: gob::Decoder,
}

impl<'a> Reader<'a> {
    pub fn new(link: &'a Link) -> Reader<'a> {
        Reader {
            link,
            buf: Vec::new(),
            pos: 0,
            dec: gob::Decoder::new(),
        }
    }

    fn byte(&mut self, deadline: Instant) -> io::Result<u8> {
        if self.pos == self.buf.len() {
            self.buf.resize(64 << 10, 0);
            let n = self.link.read(&mut self.buf, deadline)?;
            if n == 0 {
                self.buf.clear();
                self.pos = 0;
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.truncate(n);
            self.pos = 0;
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(b)
    }

    /// Skips bytes up to `RON`.
    pub fn magic(&mut self, deadline: Instant) -> io::Result<()> {
        let mut last = [0u8; 3];
        loop {
            last = [last[1], last[2], self.byte(deadline)?];
            if &last == b"RON" {
                return Ok(());
            }
        }
    }

    /// The next message; `idle` bounds the wait for one to begin.
    pub fn next(&mut self, idle: Duration) -> io::Result<Message> {
        loop {
            let first = self.byte(Instant::now() + idle)?;
            let within = Instant::now() + Duration::from_secs(60);
            let mut head = vec![first];
            if first >= 0x80 {
                let n = (first as i8).unsigned_abs() as usize;
                for _ in 0..n.min(9) {
                    head.push(self.byte(within)?);
                }
            }
            let bad = |e: gob::GobError| io::Error::new(io::ErrorKind::InvalidData, e);
            let (_, len) = gob::frame_len(&head)
                .map_err(bad)?
                .ok_or_else(|| bad(gob::GobError::Truncated))?;
            let mut body = Vec::with_capacity(len.min(1 << 20));
            while body.len() < len {
                body.push(self.byte(within)?);
            }
            if let Some((_, v)) = self.dec.message(&body).map_err(bad)? {
                return Message::from_gob(&v).map_err(bad);
            }
        }
    }
}

pub fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "the daemon closed the connection".into(),
        io::ErrorKind::ConnectionAborted => "the daemon's side is not connected".into(),
        io::ErrorKind::TimedOut => "no word from the daemon".into(),
        _ => e.to_string(),
    }
}
