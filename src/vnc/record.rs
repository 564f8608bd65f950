//! Recordings, in the original's formats: kb (each key and pointer event a
//! client sends, a line each, written as it happens so a recording cut
//! short keeps what came before) and fb (a client of our own asks for the
//! whole screen every 100 ms and QEMU's answers go to a gzip stream).

use super::VncError;
use crate::console::client::Client;
use crate::console::fbrec::{self, FbWriter};
use crate::console::kb;
use crate::console::rfb::ClientMessage;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

fn create(path: &Path) -> Result<File, VncError> {
    let file_err = |source| VncError::File {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(file_err)?;
    }
    File::create(path).map_err(file_err)
}

pub(super) struct KbRecording {
    path: PathBuf,
    file: File,
    start: Instant,
    last: Instant,
    failed: bool,
}

impl KbRecording {
    pub fn create(path: &Path) -> Result<KbRecording, VncError> {
        let file = create(path)?;
        let now = Instant::now();
        Ok(KbRecording {
            path: path.to_path_buf(),
            file,
            start: now,
            last: now,
            failed: false,
        })
    }

    pub fn record(&mut self, msg: &ClientMessage) {
        let now = Instant::now();
        let Some(line) = kb::record_line(now - self.last, msg) else {
            return;
        };
        self.last = now;
        // One write a line: whatever happens to the daemon, the file holds
        // every whole line recorded so far.
        if let Err(e) = self.file.write_all(line.as_bytes()) {
            if !self.failed {
                warn!("kb recording {}: {e}", self.path.display());
                self.failed = true;
            }
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn finish(mut self) -> Result<(), VncError> {
        self.file
            .flush()
            .and_then(|()| self.file.sync_data())
            .map_err(|source| VncError::File {
                path: self.path.clone(),
                source,
            })
    }
}

pub(super) struct FbRecording {
    path: PathBuf,
    start: Instant,
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<Result<(), String>>>,
}

impl FbRecording {
    /// Starts recording from a client that has just connected (it asked
    /// for the pixel format and encodings of [`fbrec::setup_messages`]).
    pub fn start(client: Client<UnixStream>, path: &Path) -> Result<FbRecording, VncError> {
        let file = create(path)?;
        let (width, height) = (client.screen().width(), client.screen().height());
        let (stop_tx, stop_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        // Compressing is CPU work: a thread of its own writes the file.
        let (chunks_tx, chunks_rx) = mpsc::channel::<(Duration, Vec<u8>)>(64);
        let writer_path = path.to_path_buf();
        let writer = std::thread::Builder::new()
            .name("vnc-fb".into())
            .spawn(move || write_chunks(file, chunks_rx, &writer_path))
            .map_err(|source| VncError::File {
                path: path.to_path_buf(),
                source,
            })?;
        tokio::spawn(async move {
            let stream = client.into_inner();
            let r = pump(stream, width, height, chunks_tx, stop_rx).await;
            if let Err(e) = &r {
                debug!("fb recording ended: {e}");
            }
            // The writer ends when the sender is gone (dropped by pump).
            let written = tokio::task::spawn_blocking(move || writer.join())
                .await
                .ok()
                .and_then(|j| j.ok())
                .unwrap_or_else(|| Err("the writer panicked".into()));
            let _ = done_tx.send(written);
        });
        Ok(FbRecording {
            path: path.to_path_buf(),
            start: Instant::now(),
            stop: Some(stop_tx),
            done: Some(done_rx),
        })
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops and waits until the file is complete.
    pub async fn finish(mut self) -> Result<(), VncError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let done = self.done.take().expect("finished once");
        match done.await {
            Ok(Ok(())) | Err(_) => Ok(()),
            Ok(Err(why)) => Err(VncError::File {
                path: self.path.clone(),
                source: std::io::Error::other(why),
            }),
        }
    }
}

impl Drop for FbRecording {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Asks for the screen every interval and passes what QEMU sends on, in
/// reads of at most [`fbrec::READ_SIZE`], until told to stop or QEMU goes.
async fn pump(
    stream: UnixStream,
    width: u16,
    height: u16,
    chunks: mpsc::Sender<(Duration, Vec<u8>)>,
    mut stop: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let (mut rd, mut wr) = stream.into_split();
    let request = fbrec::update_request(width, height).to_bytes();
    let mut tick = tokio::time::interval(fbrec::INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = vec![0u8; fbrec::READ_SIZE];
    let mut prev = Instant::now();
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tick.tick() => wr.write_all(&request).await?,
            r = rd.read(&mut buf) => {
                let n = r?;
                if n == 0 {
                    return Ok(());
                }
                let now = Instant::now();
                if chunks.send((now - prev, buf[..n].to_vec())).await.is_err() {
                    return Ok(());
                }
                prev = now;
            }
        }
    }
}

fn write_chunks(
    file: File,
    mut chunks: mpsc::Receiver<(Duration, Vec<u8>)>,
    path: &Path,
) -> Result<(), String> {
    let mut w = FbWriter::new(std::io::BufWriter::new(file));
    let mut since_flush = Instant::now();
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    while let Some((offset, data)) = chunks.blocking_recv() {
        w.write_chunk(offset, &data).map_err(fail)?;
        // Pushed out now and then, so a recording cut short plays up to
        // about here.
        if since_flush.elapsed() > Duration::from_secs(1) {
            w.flush().map_err(fail)?;
            since_flush = Instant::now();
        }
    }
    let mut out = w.finish().map_err(fail)?;
    out.flush().map_err(fail)?;
    out.get_ref().sync_data().map_err(fail)
}
