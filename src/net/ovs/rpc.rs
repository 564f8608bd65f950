//! OVSDB's JSON-RPC (RFC 7047) over its unix socket: messages are JSON
//! values back to back, no framing. One connection per batch; the server's
//! `echo` keep-alives are answered.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const CALL_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("cannot reach the Open vSwitch database at {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Open vSwitch database: {0}")]
    Io(#[from] std::io::Error),
    #[error("Open vSwitch database: {0}")]
    Protocol(String),
    #[error("Open vSwitch database did not answer within {0:?}")]
    Timeout(Duration),
}

pub struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
    next_id: u64,
}

impl Conn {
    pub async fn open(path: &Path) -> Result<Conn, RpcError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| RpcError::Connect {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
            next_id: 1,
        })
    }

    async fn send(&mut self, v: &Value) -> Result<(), RpcError> {
        let bytes = serde_json::to_vec(v).map_err(|e| RpcError::Protocol(e.to_string()))?;
        self.stream.write_all(&bytes).await?;
        Ok(())
    }

    /// The next complete JSON value from the server.
    async fn next(&mut self) -> Result<Value, RpcError> {
        loop {
            let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
            match it.next() {
                Some(Ok(v)) => {
                    let used = it.byte_offset();
                    self.buf.drain(..used);
                    return Ok(v);
                }
                Some(Err(e)) if !e.is_eof() => return Err(RpcError::Protocol(e.to_string())),
                _ => {}
            }
            let mut chunk = [0u8; 16384];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(RpcError::Protocol(
                    "the server closed the connection".into(),
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Calls `method` and returns its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, RpcError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"method": method, "params": params, "id": id}))
            .await?;
        let wait = async {
            loop {
                let msg = self.next().await?;
                if msg["method"] == "echo" {
                    let reply = json!({"result": msg["params"], "error": null, "id": msg["id"]});
                    self.send(&reply).await?;
                    continue;
                }
                if msg["id"] != json!(id) {
                    continue;
                }
                if !msg["error"].is_null() {
                    return Err(RpcError::Protocol(msg["error"].to_string()));
                }
                return Ok(msg["result"].clone());
            }
        };
        tokio::time::timeout(CALL_TIMEOUT, wait)
            .await
            .map_err(|_| RpcError::Timeout(CALL_TIMEOUT))?
    }

    /// `transact`, returning one result per operation.
    pub async fn transact(&mut self, params: Value) -> Result<Vec<Value>, RpcError> {
        let r = self.call("transact", params).await?;
        r.as_array()
            .cloned()
            .ok_or_else(|| RpcError::Protocol(format!("unexpected transact result {r}")))
    }
}
