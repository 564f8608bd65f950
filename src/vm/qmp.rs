//! An async QMP client: one connection per VM, commands tagged with ids
//! so answers and asynchronous events can interleave, and a timeout on
//! every call (a wedged QEMU must never wedge the daemon).

use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Error, Clone, PartialEq)]
pub enum QmpError {
    #[error("cannot connect to QMP at {path}: {why}")]
    Connect { path: String, why: String },
    #[error("QMP timeout after {0:?}")]
    Timeout(Duration),
    #[error("QMP connection closed")]
    Closed,
    #[error("QMP protocol error: {0}")]
    Protocol(String),
    /// QEMU answered with an error object.
    #[error("{class}: {desc}")]
    Command { class: String, desc: String },
}

/// An asynchronous event (`SHUTDOWN`, `STOP`, `RESUME`, ...).
#[derive(Debug, Clone)]
pub struct QmpEvent {
    pub name: String,
    pub data: Value,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, QmpError>>>>>;

pub struct Qmp {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Pending,
    next_id: AtomicU64,
    pub timeout: Duration,
}

impl Qmp {
    /// Connects to a socket that exists and is listening, reads the
    /// greeting and leaves capability negotiation mode. Events go to the
    /// returned receiver, which closes when QEMU closes the connection.
    pub async fn connect(
        path: &Path,
        timeout: Duration,
    ) -> Result<(Qmp, mpsc::UnboundedReceiver<QmpEvent>), QmpError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| QmpError::Connect {
                path: path.display().to_string(),
                why: e.to_string(),
            })?;
        Qmp::handshake(stream, timeout).await
    }

    pub async fn handshake(
        stream: UnixStream,
        timeout: Duration,
    ) -> Result<(Qmp, mpsc::UnboundedReceiver<QmpEvent>), QmpError> {
        let (r, w) = stream.into_split();
        let mut reader = BufReader::with_capacity(4096, r);
        let mut line = String::new();
        let n = tokio::time::timeout(timeout, reader.read_line(&mut line))
            .await
            .map_err(|_| QmpError::Timeout(timeout))?
            .map_err(|e| QmpError::Protocol(e.to_string()))?;
        if n == 0 {
            return Err(QmpError::Closed);
        }
        let greeting: Value =
            serde_json::from_str(&line).map_err(|e| QmpError::Protocol(e.to_string()))?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(format!("unexpected greeting {line}")));
        }
        let pending: Pending = Arc::default();
        let (etx, erx) = mpsc::unbounded_channel();
        tokio::spawn(read_loop(reader, pending.clone(), etx));
        let qmp = Qmp {
            writer: tokio::sync::Mutex::new(w),
            pending,
            next_id: AtomicU64::new(1),
            timeout,
        };
        qmp.execute("qmp_capabilities", None).await?;
        Ok((qmp, erx))
    }

    /// Runs a command and returns its `return` value.
    pub async fn execute(&self, command: &str, args: Option<Value>) -> Result<Value, QmpError> {
        let mut msg = Map::new();
        msg.insert("execute".into(), Value::String(command.into()));
        if let Some(a) = args {
            msg.insert("arguments".into(), a);
        }
        let reply = self.send(msg).await?;
        match reply.get("error") {
            Some(e) => Err(QmpError::Command {
                class: e["class"].as_str().unwrap_or("GenericError").into(),
                desc: e["desc"].as_str().unwrap_or("").into(),
            }),
            None => Ok(reply.get("return").cloned().unwrap_or(Value::Null)),
        }
    }

    /// Passes a user's JSON command through and returns QEMU's whole
    /// answer (`{"return": ...}` or `{"error": ...}`), their `id` kept.
    pub async fn raw(&self, text: &str) -> Result<Value, QmpError> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| QmpError::Protocol(format!("invalid JSON: {e}")))?;
        let Value::Object(mut msg) = v else {
            return Err(QmpError::Protocol("a QMP command is a JSON object".into()));
        };
        if !msg.contains_key("execute") {
            return Err(QmpError::Protocol("missing `execute`".into()));
        }
        let theirs = msg.remove("id");
        let mut reply = self.send(msg).await?;
        if let (Some(id), Value::Object(o)) = (theirs, &mut reply) {
            o.insert("id".into(), id);
        }
        Ok(reply)
    }

    async fn send(&self, mut msg: Map<String, Value>) -> Result<Value, QmpError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        msg.insert("id".into(), json!(id));
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        let mut line = serde_json::to_vec(&msg).map_err(|e| QmpError::Protocol(e.to_string()))?;
        line.push(b'\n');
        let result = tokio::time::timeout(self.timeout, async {
            self.writer
                .lock()
                .await
                .write_all(&line)
                .await
                .map_err(|_| QmpError::Closed)?;
            rx.await.map_err(|_| QmpError::Closed)?
        })
        .await;
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        match result {
            Err(_) => Err(QmpError::Timeout(self.timeout)),
            Ok(r) => r,
        }
    }
}

async fn read_loop(
    mut reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    pending: Pending,
    events: mpsc::UnboundedSender<QmpEvent>,
) {
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let Ok(mut v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(name) = v.get("event").and_then(Value::as_str) {
            let _ = events.send(QmpEvent {
                name: name.to_string(),
                data: v.get("data").cloned().unwrap_or(Value::Null),
            });
            continue;
        }
        let Some(id) = v.as_object_mut().and_then(|o| o.remove("id")) else {
            continue;
        };
        let Some(id) = id.as_u64() else { continue };
        let tx = pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if let Some(tx) = tx {
            let _ = tx.send(Ok(v));
        }
    }
    // Wake everyone still waiting; dropping their senders says "closed".
    pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::UnixListener;

    /// A scripted QMP peer: greets, then answers each command by name.
    async fn fake_qemu(listener: UnixListener, silent_on: &'static str) {
        let (s, _) = listener.accept().await.unwrap();
        let (r, mut w) = s.into_split();
        w.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n")
            .await
            .unwrap();
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            let v: Value = serde_json::from_str(&l).unwrap();
            let cmd = v["execute"].as_str().unwrap().to_string();
            if cmd == silent_on {
                continue;
            }
            w.write_all(b"{\"event\": \"STOP\", \"data\": {}}\n")
                .await
                .unwrap();
            let reply = if cmd == "bogus" {
                json!({"error": {"class": "CommandNotFound", "desc": "The command bogus has not been found"}, "id": v["id"]})
            } else {
                json!({"return": {"cmd": cmd}, "id": v["id"]})
            };
            w.write_all(format!("{reply}\n").as_bytes()).await.unwrap();
        }
        let _ = lines.into_inner().read_to_end(&mut Vec::new()).await;
    }

    #[tokio::test]
    async fn commands_events_errors_and_timeouts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp");
        let l = UnixListener::bind(&path).unwrap();
        tokio::spawn(fake_qemu(l, "hang"));
        let (q, mut events) = Qmp::connect(&path, Duration::from_millis(300))
            .await
            .unwrap();
        assert_eq!(
            q.execute("query-status", None).await.unwrap(),
            json!({"cmd": "query-status"})
        );
        assert_eq!(events.recv().await.unwrap().name, "STOP");
        let e = q.execute("bogus", None).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "CommandNotFound: The command bogus has not been found"
        );
        assert_eq!(
            q.execute("hang", None).await.unwrap_err(),
            QmpError::Timeout(Duration::from_millis(300))
        );
        let raw = q
            .raw(r#"{"execute": "query-name", "id": "mine"}"#)
            .await
            .unwrap();
        assert_eq!(raw, json!({"return": {"cmd": "query-name"}, "id": "mine"}));
        assert!(q.raw("not json").await.is_err());
    }

    #[tokio::test]
    async fn closed_connection_fails_calls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp");
        let l = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(b"{\"QMP\": {}}\n").await.unwrap();
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf).await; // qmp_capabilities
            s.write_all(b"{\"return\": {}, \"id\": 1}\n").await.unwrap();
            // then hang up
        });
        let (q, mut events) = Qmp::connect(&path, Duration::from_secs(5)).await.unwrap();
        assert!(
            events.recv().await.is_none(),
            "events end with the connection"
        );
        assert!(matches!(
            q.execute("query-status", None).await,
            Err(QmpError::Closed)
        ));
    }
}
