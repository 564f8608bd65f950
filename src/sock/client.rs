//! The command socket from the client's side: `minimega -e` and `-attach`
//! use it where there is no D-Bus at all.

use super::proto::{self, Decoder, Reply, Request};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Answers can be far larger than requests (`vm info` of many VMs); this
/// only stops a runaway daemon from eating the client's memory.
const MAX_REPLY: usize = 1 << 30;

#[derive(Debug, Error)]
pub enum SocketClientError {
    #[error("minimega is not running (no command socket at {path})")]
    Missing { path: PathBuf },
    #[error("minimega is not running (nothing listens on {path}, left by a daemon that crashed)")]
    Refused { path: PathBuf },
    #[error("permission denied on {path}: run as root or as a member of group minimega")]
    Denied { path: PathBuf },
    #[error("cannot connect to {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the daemon hung up")]
    HungUp,
    #[error("command socket: {0}")]
    Protocol(String),
    /// The daemon's refusal of a console, as it words it.
    #[error("{0}")]
    Console(String),
}

pub struct SocketClient {
    stream: UnixStream,
    decoder: Decoder,
}

impl SocketClient {
    pub async fn connect(path: &Path) -> Result<SocketClient, SocketClientError> {
        let stream = UnixStream::connect(path).await.map_err(|source| {
            let path = path.to_path_buf();
            match source.kind() {
                ErrorKind::NotFound => SocketClientError::Missing { path },
                ErrorKind::ConnectionRefused => SocketClientError::Refused { path },
                ErrorKind::PermissionDenied => SocketClientError::Denied { path },
                _ => SocketClientError::Connect { path, source },
            }
        })?;
        Ok(SocketClient {
            stream,
            decoder: Decoder::new(MAX_REPLY),
        })
    }

    async fn send(&mut self, request: &Request) -> Result<(), SocketClientError> {
        self.stream
            .write_all(&proto::encode_request(request))
            .await
            .map_err(|_| SocketClientError::HungUp)
    }

    async fn receive(&mut self) -> Result<Reply, SocketClientError> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.decoder.next_object() {
                Ok(Some(object)) => {
                    return serde_json::from_slice(&object)
                        .map_err(|e| SocketClientError::Protocol(e.to_string()))
                }
                Ok(None) => {}
                Err(e) => return Err(SocketClientError::Protocol(e.to_string())),
            }
            match self.stream.read(&mut buf).await {
                Ok(0) | Err(_) => return Err(SocketClientError::HungUp),
                Ok(n) => self.decoder.push(&buf[..n]),
            }
        }
    }

    /// Runs one command line; every object of the answer, in order.
    pub async fn exec(&mut self, line: &str) -> Result<Vec<Reply>, SocketClientError> {
        // The daemon wants a non-empty command; a blank line answers nothing.
        if line.trim().is_empty() {
            return Ok(Vec::new());
        }
        self.send(&Request::Command(line.to_string())).await?;
        let mut replies = Vec::new();
        loop {
            let r = self.receive().await?;
            let more = r.more || r.status;
            replies.push(r);
            if !more {
                return Ok(replies);
            }
        }
    }

    /// Sends a `PlumbPipe` request: the connection becomes the pipe's
    /// stream (see [`crate::plumb::socket`]).
    pub async fn plumb_pipe(mut self, pipe: &str) -> Result<UnixStream, SocketClientError> {
        self.send(&Request::PlumbPipe(pipe.to_string())).await?;
        Ok(self.stream)
    }

    /// Sends a `Console` request: once the daemon says yes, the connection
    /// carries the console (see [`crate::serial`]). Also returns what
    /// arrived after the answer: the console's first bytes.
    pub async fn console(
        mut self,
        vm: &str,
        serial: u64,
        namespace: &str,
    ) -> Result<(UnixStream, Vec<u8>), SocketClientError> {
        self.send(&Request::Console {
            vm: vm.to_string(),
            serial,
            namespace: namespace.to_string(),
        })
        .await?;
        let reply = self.receive().await?;
        if reply.has_error() {
            let why = reply
                .resp
                .iter()
                .flatten()
                .find(|r| r.is_error())
                .map(|r| r.error.clone())
                .unwrap_or_default();
            return Err(SocketClientError::Console(why));
        }
        let early = self.decoder.take_buffered();
        Ok((self.stream, early))
    }

    pub async fn suggest(&mut self, partial: &str) -> Result<Vec<String>, SocketClientError> {
        if partial.is_empty() {
            return Ok(Vec::new());
        }
        self.send(&Request::Suggest(partial.to_string())).await?;
        Ok(self.receive().await?.suggest)
    }
}

/// What the client prints for a whole answer, as over D-Bus.
pub fn answer_text(replies: &[Reply]) -> String {
    crate::command::render::join_texts(replies.iter().map(Reply::text))
}
