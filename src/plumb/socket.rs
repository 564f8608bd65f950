//! `PlumbPipe` on the command socket, as minimega's Go client speaks it
//! (`minimega -pipe NAME`): after the request `{"PlumbPipe": "NAME"}` the
//! connection is a reader and a writer of that pipe. Both ways it carries
//! JSON strings back to back, each one message with its newline: what the
//! client sends is written to the pipe, what the pipe delivers is sent to
//! the client. It lasts until the client hangs up.

use super::production::{self, SEPARATOR};
use super::Plumber;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tracing::{debug, info};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StreamError {
    #[error("expected a JSON string, found {0}")]
    NotAString(String),
    #[error("a message larger than {0} bytes")]
    TooLarge(usize),
    #[error("invalid JSON string: {0}")]
    Json(String),
}

/// Splits a byte stream into top-level JSON strings (pure).
#[derive(Debug, Default)]
pub struct StringDecoder {
    buf: Vec<u8>,
    /// Bytes of the current string scanned so far.
    scanned: usize,
    escaped: bool,
    limit: usize,
}

impl StringDecoder {
    pub fn new(limit: usize) -> StringDecoder {
        StringDecoder {
            limit,
            ..StringDecoder::default()
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete string, if one has arrived.
    pub fn next_string(&mut self) -> Result<Option<String>, StreamError> {
        if self.scanned == 0 {
            let ws = self
                .buf
                .iter()
                .take_while(|b| b.is_ascii_whitespace())
                .count();
            self.buf.drain(..ws);
            match self.buf.first() {
                None => return Ok(None),
                Some(b'"') => self.scanned = 1,
                Some(_) => {
                    let head = String::from_utf8_lossy(&self.buf[..self.buf.len().min(16)]);
                    return Err(StreamError::NotAString(format!("`{}`", head.trim())));
                }
            }
        }
        while self.scanned < self.buf.len() {
            let b = self.buf[self.scanned];
            self.scanned += 1;
            match (self.escaped, b) {
                (true, _) => self.escaped = false,
                (false, b'\\') => self.escaped = true,
                (false, b'"') => {
                    let end = self.scanned;
                    self.scanned = 0;
                    let raw: Vec<u8> = self.buf.drain(..end).collect();
                    return serde_json::from_slice(&raw)
                        .map(Some)
                        .map_err(|e| StreamError::Json(e.to_string()));
                }
                _ => {}
            }
            if self.scanned > self.limit {
                return Err(StreamError::TooLarge(self.limit));
            }
        }
        Ok(None)
    }
}

/// One message as the client reads it: a JSON string, newline included,
/// then the encoder's newline.
pub fn encode(message: &str) -> Vec<u8> {
    let mut out = serde_json::to_vec(&format!("{message}\n")).unwrap_or_default();
    out.push(b'\n');
    out
}

/// The pipe a client names: without a namespace, the default one (as
/// minimega's `-pipe` flag qualifies it).
pub fn pipe_name(requested: &str) -> Result<String, production::ProductionError> {
    let name = requested.trim();
    if name.contains(SEPARATOR) {
        production::checked("", name)
    } else {
        production::checked(crate::ns::DEFAULT, name)
    }
}

/// Serves one `PlumbPipe` connection until the client hangs up.
/// `buffered` holds what the client sent after its request, already read.
pub async fn serve(
    plumber: &Plumber,
    requested: &str,
    buffered: Vec<u8>,
    mut rd: OwnedReadHalf,
    mut wr: OwnedWriteHalf,
) {
    let pipe = match pipe_name(requested) {
        Ok(p) => p,
        Err(e) => {
            info!("command socket: PlumbPipe: {e}; hanging up");
            return;
        }
    };
    debug!(pipe = %pipe, "command socket: client attached to a pipe");
    // Until the client cannot take more (or the pipe is deleted); what it
    // writes is taken until it hangs up, whatever happens to its reader.
    let mut reader = Some(plumber.reader(&pipe));
    let writer = plumber.writer(&pipe);
    let mut decoder = StringDecoder::new(super::pipes::MAX_MESSAGE + 16);
    decoder.push(&buffered);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        loop {
            match decoder.next_string() {
                Ok(Some(m)) if m.is_empty() => {}
                Ok(Some(m)) => writer.send(&m).await,
                Ok(None) => break,
                Err(e) => {
                    info!(pipe = %pipe, "command socket: {e}; hanging up");
                    return;
                }
            }
        }
        let next = async {
            match reader.as_mut() {
                Some(r) => r.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            m = next => match m {
                Some(m) => {
                    if wr.write_all(&encode(&m)).await.is_err() {
                        reader = None;
                    }
                }
                None => reader = None,
            },
            n = rd.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => decoder.push(&buf[..n]),
            },
        }
    }
    debug!(pipe = %pipe, "command socket: pipe client gone");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(d: &mut StringDecoder) -> Result<Vec<String>, StreamError> {
        let mut out = Vec::new();
        while let Some(s) = d.next_string()? {
            out.push(s);
        }
        Ok(out)
    }

    #[test]
    fn strings_as_go_encodes_them_split_anywhere() {
        // Go's encoder: each value then "\n"; HTML characters as \u escapes.
        let stream =
            "\"hello\\n\"\n\"a \\\"quote\\\" \\u003cb\\u003e \\\\\\n\"\n \"\\u00e9t\u{e9}\\n\"\n";
        let mut whole = StringDecoder::new(1024);
        whole.push(stream.as_bytes());
        let want = all(&mut whole).unwrap();
        assert_eq!(want, ["hello\n", "a \"quote\" <b> \\\n", "\u{e9}t\u{e9}\n"]);
        let mut bytewise = StringDecoder::new(1024);
        let mut got = Vec::new();
        for b in stream.as_bytes() {
            bytewise.push(&[*b]);
            got.extend(all(&mut bytewise).unwrap());
        }
        assert_eq!(got, want);
    }

    #[test]
    fn anything_but_a_string_is_refused() {
        let mut d = StringDecoder::new(1024);
        d.push(b"{\"Command\":\"version\"}");
        assert!(matches!(d.next_string(), Err(StreamError::NotAString(_))));
        let mut d = StringDecoder::new(8);
        d.push(b"\"0123456789");
        assert_eq!(d.next_string(), Err(StreamError::TooLarge(8)));
        let mut d = StringDecoder::new(64);
        d.push(b"\"bad \\x escape\"");
        assert!(matches!(d.next_string(), Err(StreamError::Json(_))));
    }

    #[test]
    fn encoding_and_names() {
        assert_eq!(encode("hi \"x\""), b"\"hi \\\"x\\\"\\n\"\n");
        assert_eq!(pipe_name("foo").unwrap(), "minimega//foo");
        assert_eq!(pipe_name("exp//foo").unwrap(), "exp//foo");
        assert!(pipe_name("//foo").is_err());
    }
}
