//! The agent's command socket, `<path>/miniccc`, as minimega's agent has
//! it: `miniccc -tag KEY VALUE` and `miniccc -pipe NAME` are short-lived
//! processes in the guest that reach the running agent through it, so
//! either agent's client works with either agent. On the socket: a gob
//! stream each way (no magic), opening with an int, the mode: 0 for a tag
//! (then its key and value, strings), 1 for a pipe (then its name, then
//! lines as strings both ways until either side ends).

use super::pipes::{self, Writer};
use super::Agent;
use minimega::cc::gob::{self, GobError, Ty, Value};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

pub const MODE_TAG: i64 = 0;
pub const MODE_PIPE: i64 = 1;

#[derive(Debug, Error)]
pub enum LocalError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("malformed message: {0}")]
    Gob(#[from] GobError),
    #[error("expected {0}")]
    Unexpected(&'static str),
    #[error("the stream ended early")]
    Ended,
    #[error("unknown mode {0}")]
    Mode(i64),
}

pub fn socket(path: &Path) -> PathBuf {
    path.join("miniccc")
}

/// The reading half of a socket's gob stream.
pub struct In<R> {
    r: R,
    dec: gob::Decoder,
    buf: Vec<u8>,
}

impl<R: Read> In<R> {
    pub fn new(r: R) -> In<R> {
        In {
            r,
            dec: gob::Decoder::new(),
            buf: Vec::new(),
        }
    }

    /// The next value; `None` when the stream ends between values.
    pub fn next(&mut self) -> Result<Option<Value>, LocalError> {
        loop {
            if let Some((head, len)) = gob::frame_len(&self.buf)? {
                if self.buf.len() >= head + len {
                    let body: Vec<u8> = self.buf.drain(..head + len).skip(head).collect();
                    match self.dec.message(&body)? {
                        Some((_, v)) => return Ok(Some(v)),
                        None => continue,
                    }
                }
            }
            let mut chunk = [0u8; 8192];
            let n = self.r.read(&mut chunk)?;
            if n == 0 {
                return match self.buf.is_empty() {
                    true => Ok(None),
                    false => Err(LocalError::Ended),
                };
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn value(&mut self) -> Result<Value, LocalError> {
        self.next()?.ok_or(LocalError::Ended)
    }

    pub fn int(&mut self) -> Result<i64, LocalError> {
        match self.value()? {
            Value::Int(i) => Ok(i),
            Value::Uint(u) => i64::try_from(u).map_err(|_| GobError::IntOverflow.into()),
            _ => Err(LocalError::Unexpected("an integer")),
        }
    }

    pub fn string(&mut self) -> Result<String, LocalError> {
        text(self.value()?)
    }
}

fn text(v: Value) -> Result<String, LocalError> {
    match v {
        Value::Str(b) | Value::Bytes(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        _ => Err(LocalError::Unexpected("a string")),
    }
}

/// The writing half of a socket's gob stream.
pub struct Out<W> {
    w: W,
    enc: gob::Encoder,
}

impl<W: Write> Out<W> {
    pub fn new(w: W) -> Out<W> {
        Out {
            w,
            enc: gob::Encoder::new(),
        }
    }

    fn put(&mut self, ty: &'static Ty, v: Value) -> Result<(), LocalError> {
        let bytes = self.enc.encode(ty, &v)?;
        self.w.write_all(&bytes)?;
        Ok(self.w.flush()?)
    }

    pub fn int(&mut self, i: i64) -> Result<(), LocalError> {
        self.put(&Ty::Int, Value::Int(i))
    }

    pub fn string(&mut self, s: &str) -> Result<(), LocalError> {
        self.put(&Ty::String, Value::str(s))
    }

    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.w
    }
}

// ---- the running agent's side ----

/// Serves the command socket (replacing a stale one an earlier agent left).
pub fn listen(agent: &Arc<Agent>) -> io::Result<()> {
    let path = socket(&agent.path);
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path)?;
    let agent = agent.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            match conn {
                Ok(s) => {
                    let agent = agent.clone();
                    std::thread::spawn(move || {
                        if let Err(e) = serve(&agent, s) {
                            agent.log(&format!("command socket: {e}"));
                        }
                    });
                }
                Err(e) => {
                    agent.log(&format!("command socket: {e}"));
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        }
    });
    Ok(())
}

fn serve(agent: &Arc<Agent>, s: UnixStream) -> Result<(), LocalError> {
    let mut rx = In::new(s.try_clone()?);
    match rx.int()? {
        MODE_TAG => {
            let key = rx.string()?;
            let value = rx.string()?;
            agent.add_tag(key, value);
            Ok(())
        }
        MODE_PIPE => {
            let name = rx.string()?;
            agent.debug(&format!("command socket: pipe {name}"));
            pipe_conn(agent, &name, rx, s)
        }
        m => Err(LocalError::Mode(m)),
    }
}

/// A `miniccc -pipe` client: one more reader and writer of the pipe until
/// its input ends (being a writer, the pipe cannot be deleted before, as
/// with minimega's agent). Should the daemon still close its reader, the
/// client's output ends, and it exits as minimega's does then.
fn pipe_conn(
    agent: &Arc<Agent>,
    name: &str,
    mut rx: In<UnixStream>,
    s: UnixStream,
) -> Result<(), LocalError> {
    let mut tx = Ending(Out::new(s));
    let _reading = pipes::read_with(agent, name, move |line| tx.0.string(line));
    let writer = Writer::open(agent, name);
    while let Some(v) = rx.next()? {
        let line = text(v)?;
        if !line.is_empty() {
            writer.send(line);
        }
    }
    Ok(())
}

/// The socket's writing half, shut when the pipe's reader ends (the pipe
/// closed, or the client went): `rx` keeps the socket open, and the client
/// must still see the end.
struct Ending(Out<UnixStream>);

impl Drop for Ending {
    fn drop(&mut self) {
        let _ = self.0.w.shutdown(Shutdown::Write);
    }
}

// ---- the clients ----

/// `miniccc -tag KEY VALUE`: the running agent sends the tag with its next
/// heartbeat, and the daemon sets it on the VM.
pub fn tag(path: &Path, key: &str, value: &str) -> Result<(), LocalError> {
    let mut tx = Out::new(UnixStream::connect(socket(path))?);
    tx.int(MODE_TAG)?;
    tx.string(key)?;
    tx.string(value)
}

/// `miniccc -pipe NAME`: standard input's lines to the pipe, the pipe's to
/// standard output, until either ends.
pub fn pipe(path: &Path, name: &str) -> Result<(), LocalError> {
    let s = UnixStream::connect(socket(path))?;
    let mut rx = In::new(s.try_clone()?);
    let mut tx = Out::new(s);
    tx.int(MODE_PIPE)?;
    tx.string(name)?;
    std::thread::spawn(move || {
        let code = loop {
            match rx.next() {
                Ok(Some(v)) => {
                    let mut out = io::stdout().lock();
                    let line = text(v).unwrap_or_default();
                    if out
                        .write_all(line.as_bytes())
                        .and_then(|_| out.flush())
                        .is_err()
                    {
                        break 1;
                    }
                }
                Ok(None) => break 0,
                Err(e) => {
                    eprintln!("miniccc: pipe {e}");
                    break 1;
                }
            }
        };
        std::process::exit(code);
    });
    let mut stdin = io::stdin().lock();
    while let Some(line) = pipes::next_line(&mut stdin) {
        tx.string(&line)?;
    }
    Ok(())
}
