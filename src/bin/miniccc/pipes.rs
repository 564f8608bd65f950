//! Commands whose standard streams are named pipes (`cc exec stdout=NAME
//! ...`): the agent's end of the daemon's plumber, as minimega's agent
//! keeps it. A stream written to a pipe goes up line by line as PIPE data
//! between NEW_WRITER and CLOSE_WRITER; a stream read from one is fed the
//! PIPE data the daemon sends until it closes the pipe or the process
//! ends. One upstream reader per pipe serves every local one, and one
//! upstream writer every local writer (the daemon keeps one writer per
//! pipe, so the first local writer to finish must not close it for the
//! others). `miniccc -pipe` (the command socket) is one more local reader
//! and writer.

use super::Agent;
use minimega::cc::ron::{self, pipe, Message};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The longest line sent as one message (minimega's agent: 1 MiB tokens).
const MAX_LINE: u64 = 1 << 20;

/// A local reader: its id and where its data goes.
type Local = (u64, mpsc::Sender<String>);

#[derive(Default)]
pub struct Readers {
    next: Mutex<u64>,
    by_pipe: Mutex<HashMap<String, Vec<Local>>>,
    /// Local writers of each pipe.
    writers: Mutex<HashMap<String, usize>>,
}

fn message(agent: &Agent, name: &str, mode: i64, data: String) -> Message {
    Message {
        kind: ron::kind::PIPE,
        uuid: agent.uuid.clone(),
        pipe: name.to_string(),
        pipe_mode: mode,
        pipe_data: data,
        ..Message::default()
    }
}

fn upstream(agent: &Agent, name: &str, mode: i64, data: String) {
    if let Err(e) = agent.send(&message(agent, name, mode, data)) {
        agent.log(&format!("pipe {name}: {e}"));
    }
}

impl Readers {
    /// Data the daemon sent for pipe `name`, to every local reader.
    pub fn deliver(&self, name: &str, data: &str) {
        let mut by = self.by_pipe.lock().unwrap();
        if let Some(rs) = by.get_mut(name) {
            rs.retain(|(_, tx)| tx.send(data.to_string()).is_ok());
        }
    }

    /// The daemon closed the pipe: its local readers see the end.
    pub fn close(&self, name: &str) {
        self.by_pipe.lock().unwrap().remove(name);
    }

    fn join(&self, agent: &Agent, name: &str) -> (u64, mpsc::Receiver<String>) {
        let id = {
            let mut n = self.next.lock().unwrap();
            *n += 1;
            *n
        };
        let (tx, rx) = mpsc::channel();
        let first = {
            let mut by = self.by_pipe.lock().unwrap();
            let rs = by.entry(name.to_string()).or_default();
            rs.push((id, tx));
            rs.len() == 1
        };
        if first {
            upstream(agent, name, pipe::NEW_READER, String::new());
        }
        (id, rx)
    }

    /// A local reader is done; the last one closes the upstream reader.
    fn leave(&self, agent: &Agent, name: &str, id: u64) {
        let last = {
            let mut by = self.by_pipe.lock().unwrap();
            match by.get_mut(name) {
                Some(rs) => {
                    rs.retain(|(i, _)| *i != id);
                    let empty = rs.is_empty();
                    if empty {
                        by.remove(name);
                    }
                    empty
                }
                None => false,
            }
        };
        if last {
            upstream(agent, name, pipe::CLOSE_READER, String::new());
        }
    }
}

/// A local writer of pipe `name`; closed when dropped.
pub struct Writer {
    agent: Arc<Agent>,
    name: String,
}

impl Writer {
    pub fn open(agent: &Arc<Agent>, name: &str) -> Writer {
        let first = {
            let mut w = agent.pipes.writers.lock().unwrap();
            let n = w.entry(name.to_string()).or_default();
            *n += 1;
            *n == 1
        };
        if first {
            upstream(agent, name, pipe::NEW_WRITER, String::new());
        }
        Writer {
            agent: agent.clone(),
            name: name.to_string(),
        }
    }

    pub fn send(&self, data: String) {
        upstream(&self.agent, &self.name, pipe::DATA, data);
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let last = {
            let mut w = self.agent.pipes.writers.lock().unwrap();
            let n = w.entry(self.name.clone()).or_default();
            *n = n.saturating_sub(1);
            let last = *n == 0;
            if last {
                w.remove(&self.name);
            }
            last
        };
        if last {
            upstream(&self.agent, &self.name, pipe::CLOSE_WRITER, String::new());
        }
    }
}

/// The next line of `r` (at most [`MAX_LINE`] bytes, a longer one comes
/// in parts), always ending in a newline; `None` at the end.
pub fn next_line(r: &mut impl BufRead) -> Option<String> {
    let mut line = Vec::new();
    match r.take(MAX_LINE).read_until(b'\n', &mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => {
            if !line.ends_with(b"\n") {
                line.push(b'\n');
            }
            Some(String::from_utf8_lossy(&line).into_owned())
        }
    }
}

/// Sends what `src` gives, line by line, to pipe `name`.
pub fn write_from(
    agent: &Arc<Agent>,
    name: &str,
    src: impl Read + Send + 'static,
) -> JoinHandle<()> {
    let w = Writer::open(agent, name);
    std::thread::spawn(move || {
        let mut r = BufReader::new(src);
        while let Some(line) = next_line(&mut r) {
            w.send(line);
        }
    })
}

/// A local reader of pipe `name` feeding `dst` (a process's stdin) until
/// the pipe closes; the returned handle ends it early (the process ended).
pub fn read_into(agent: &Arc<Agent>, name: &str, mut dst: impl Write + Send + 'static) -> Leave {
    read_with(agent, name, move |line| {
        dst.write_all(line.as_bytes()).and_then(|_| dst.flush())
    })
}

/// A local reader of pipe `name` giving each line, newline-terminated, to
/// `sink` until the pipe closes or `sink` fails; then `sink` is dropped.
pub fn read_with<E>(
    agent: &Arc<Agent>,
    name: &str,
    mut sink: impl FnMut(&str) -> Result<(), E> + Send + 'static,
) -> Leave {
    let (id, rx) = agent.pipes.join(agent, name);
    std::thread::spawn(move || {
        for mut v in rx {
            if !v.ends_with('\n') {
                v.push('\n');
            }
            if sink(&v).is_err() {
                break;
            }
        }
    });
    Leave {
        agent: agent.clone(),
        name: name.to_string(),
        id,
    }
}

/// Leaves a pipe's readers when dropped.
pub struct Leave {
    agent: Arc<Agent>,
    name: String,
    id: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        self.agent.pipes.leave(&self.agent, &self.name, self.id);
    }
}
