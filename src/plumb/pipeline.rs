//! `plumb` pipelines: pipes and programs joined like a shell pipeline,
//! message by message. A pipe stage reads the pipe (for the next stage)
//! and writes it (from the stage before); a program gets the previous
//! stage's messages on its standard input, one per line, and its output
//! lines feed the next stage. Programs run on this node.
//!
//! A pipeline lasts until one of its stages ends (a program exits, a pipe
//! it reads is deleted) or `clear plumb` ends it; then every program is
//! killed and its readers and writers closed.

use super::pipes::MAX_MESSAGE;
use super::production::{self, Element};
use super::{PipeReader, Plumber};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlumbError {
    #[error(transparent)]
    Production(#[from] production::ProductionError),
    #[error("pipeline already exists: {0}")]
    Exists(String),
    #[error("no such pipeline: {0}")]
    Missing(String),
    #[error("cannot run `{program}`: {why}")]
    Spawn { program: String, why: String },
}

/// A pipeline in the table.
pub(super) struct Running {
    namespace: String,
    stop: Arc<Notify>,
    done: watch::Receiver<bool>,
}

/// Where the next stage's input comes from.
enum Input {
    Pipe(PipeReader),
    Program(BufReader<ChildStdout>),
}

impl Input {
    async fn next(&mut self) -> Option<String> {
        match self {
            Input::Pipe(r) => r.recv().await,
            Input::Program(out) => match read_message(out).await {
                Ok(m) => m,
                Err(e) => {
                    warn!("pipeline: {e}");
                    None
                }
            },
        }
    }

    fn finished(&self) {
        if let Input::Pipe(r) = self {
            r.queue.finished();
        }
    }
}

/// One line of a program's output, without its newline; None at the end.
async fn read_message<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r
        .take(MAX_MESSAGE as u64 + 1)
        .read_until(b'\n', &mut buf)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() > MAX_MESSAGE {
        return Err(std::io::Error::other("a line longer than 1 MiB"));
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

async fn feed_pipe(mut input: Input, writer: super::PipeWriter) {
    while let Some(m) = input.next().await {
        writer.send(&m).await;
        input.finished();
    }
}

async fn feed_program(mut input: Input, mut stdin: ChildStdin) {
    while let Some(mut m) = input.next().await {
        m.push('\n');
        let ok = stdin.write_all(m.as_bytes()).await.is_ok();
        input.finished();
        if !ok {
            return;
        }
    }
}

impl Plumber {
    /// `plumb <src> <dst>...`: starts a pipeline typed in namespace `ns`.
    /// It is running (readers and writers open, programs started) when
    /// this returns; on an error nothing of it is left.
    pub async fn plumb(&self, ns: &str, typed: &[String]) -> Result<String, PlumbError> {
        let elements = production::parse(ns, typed, crate::paths::find_binary)?;
        let name = production::name(typed, &elements);
        let stop = Arc::new(Notify::new());
        let (done_tx, done_rx) = watch::channel(false);
        {
            let mut p = self.pipelines();
            if p.contains_key(&name) {
                return Err(PlumbError::Exists(name));
            }
            p.insert(
                name.clone(),
                Running {
                    namespace: ns.to_string(),
                    stop: stop.clone(),
                    done: done_rx,
                },
            );
        }
        let stages = match self.build(&name, &elements) {
            Ok(s) => s,
            Err(e) => {
                self.pipelines().remove(&name);
                return Err(e);
            }
        };
        info!(pipeline = %name, "pipeline started");
        let me = self.clone();
        let pipeline = name.clone();
        tokio::spawn(async move {
            let mut stages = stages;
            tokio::select! {
                _ = stages.join_next() => {}
                _ = stop.notified() => {}
            }
            // Dropping the stages kills the programs and closes the
            // readers and writers.
            stages.shutdown().await;
            me.pipelines().remove(&pipeline);
            info!(pipeline = %pipeline, "pipeline ended");
            let _ = done_tx.send(true);
        });
        Ok(name)
    }

    /// Opens the pipes and starts the programs, each stage a task.
    fn build(&self, name: &str, elements: &[Element]) -> Result<JoinSet<()>, PlumbError> {
        let mut stages = JoinSet::new();
        let mut input: Option<Input> = None;
        let last = elements.len().saturating_sub(1);
        for (i, e) in elements.iter().enumerate() {
            match e {
                Element::Pipe(pipe) => {
                    if let Some(from) = input.take() {
                        stages.spawn(feed_pipe(from, self.writer(pipe)));
                    }
                    if i < last {
                        input = Some(Input::Pipe(self.new_reader(pipe, true)));
                    }
                }
                Element::Process(argv) => {
                    let mut cmd = Command::new(&argv[0]);
                    cmd.args(&argv[1..])
                        .stdin(if input.is_some() {
                            Stdio::piped()
                        } else {
                            Stdio::null()
                        })
                        .stdout(if i < last {
                            Stdio::piped()
                        } else {
                            Stdio::null()
                        })
                        .stderr(Stdio::piped())
                        .kill_on_drop(true);
                    // Whatever was made so far goes with `stages` and `input`.
                    let mut child = cmd.spawn().map_err(|e| PlumbError::Spawn {
                        program: argv[0].clone(),
                        why: e.to_string(),
                    })?;
                    if let (Some(from), Some(stdin)) = (input.take(), child.stdin.take()) {
                        stages.spawn(feed_program(from, stdin));
                    }
                    input = child
                        .stdout
                        .take()
                        .map(|o| Input::Program(BufReader::new(o)));
                    if let Some(err) = child.stderr.take() {
                        let (pipeline, program) = (name.to_string(), argv[0].clone());
                        tokio::spawn(async move {
                            let mut lines = BufReader::new(err).lines();
                            while let Ok(Some(l)) = lines.next_line().await {
                                info!(pipeline = %pipeline, "{program}: {l}");
                            }
                        });
                    }
                    let program = argv[0].clone();
                    stages.spawn(async move {
                        let status = child.wait().await;
                        debug!("pipeline program {program} exited: {status:?}");
                    });
                }
            }
        }
        Ok(stages)
    }

    fn pipelines(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, Running>> {
        self.0.pipelines.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pipelines started in namespace `ns`, by name.
    pub fn pipelines_of(&self, ns: &str) -> Vec<String> {
        self.pipelines()
            .iter()
            .filter(|(_, r)| r.namespace == ns)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Ends a pipeline (by its name as `plumb` lists it, or as typed in
    /// namespace `ns`) and waits until it is gone.
    pub async fn unplumb(&self, ns: &str, typed: &[String]) -> Result<(), PlumbError> {
        let joined = typed.join(" ");
        let name = {
            let p = self.pipelines();
            if p.contains_key(&joined) {
                joined
            } else {
                let elements = production::parse(ns, typed, crate::paths::find_binary)?;
                let name = production::name(typed, &elements);
                if !p.contains_key(&name) {
                    return Err(PlumbError::Missing(joined));
                }
                name
            }
        };
        self.end(&name).await;
        Ok(())
    }

    /// Ends every pipeline of namespace `ns`.
    pub async fn unplumb_all(&self, ns: &str) {
        let names = self.pipelines_of(ns);
        futures_util::future::join_all(names.iter().map(|n| self.end(n))).await;
    }

    async fn end(&self, name: &str) {
        let Some((stop, mut done)) = self
            .pipelines()
            .get(name)
            .map(|r| (r.stop.clone(), r.done.clone()))
        else {
            return;
        };
        stop.notify_one();
        let gone = tokio::time::timeout(Duration::from_secs(10), done.wait_for(|d| *d)).await;
        if gone.is_err() {
            warn!(pipeline = name, "pipeline did not end within 10s");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_capped_and_the_last_may_lack_its_newline() {
        let data = b"one\ntwo";
        let mut r = BufReader::new(&data[..]);
        assert_eq!(read_message(&mut r).await.unwrap().as_deref(), Some("one"));
        assert_eq!(read_message(&mut r).await.unwrap().as_deref(), Some("two"));
        assert_eq!(read_message(&mut r).await.unwrap(), None);
        let long = vec![b'x'; MAX_MESSAGE + 10];
        let mut r = BufReader::new(&long[..]);
        assert!(read_message(&mut r).await.is_err());
        let mut exact = vec![b'y'; MAX_MESSAGE];
        exact.push(b'\n');
        let mut r = BufReader::new(&exact[..]);
        assert_eq!(
            read_message(&mut r).await.unwrap().unwrap().len(),
            MAX_MESSAGE
        );
    }
}
