//! The command socket's wire format, free of I/O: framing a byte stream
//! into JSON objects (with a hard cap on one object's size), reading a
//! request out of an object, and the reply objects.
//!
//! A client writes `{"Command": "...", "Suggest": "", "PlumbPipe": ""}`
//! objects back to back (minimega's Go client ends each with a newline;
//! nothing requires it). A command is answered by one reply object per
//! group of responses, `More` true on all but the last; a suggestion by one
//! `{"Suggest": [...]}` object.

use crate::command::render;
use crate::command::{Group, Response};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The largest request the daemon reads: one command line.
pub const MAX_REQUEST: usize = crate::command::MAX_LINE;

/// Why a byte stream cannot be read as objects. The stream cannot be
/// resynchronised after one of these: the reader answers and hangs up.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("expected a JSON object such as {{\"Command\": \"version\"}}, found {found}")]
    NotAnObject { found: String },
    #[error("request larger than {limit} bytes")]
    TooLarge { limit: usize },
}

/// Where the scan of the object being received stands.
#[derive(Debug, Default, Clone, Copy)]
struct Scan {
    /// Bytes of the current object examined so far.
    len: usize,
    depth: u32,
    in_string: bool,
    escaped: bool,
}

/// Splits a byte stream into top-level JSON objects. Only finds where an
/// object ends (strings, escapes and nesting); validating it is left to
/// the JSON parser. Each byte is looked at once, however the stream is cut.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    scan: Scan,
    limit: usize,
    failed: Option<FrameError>,
}

impl Decoder {
    pub fn new(limit: usize) -> Decoder {
        Decoder {
            buf: Vec::new(),
            scan: Scan::default(),
            limit,
            failed: None,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Takes what arrived after the last object returned, unscanned: the
    /// start of another protocol the connection switched to (PlumbPipe).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        self.scan = Scan::default();
        std::mem::take(&mut self.buf)
    }

    /// True when part of an object has arrived but not its end.
    pub fn is_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The next complete object, if one has arrived.
    pub fn next_object(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.scan_next();
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    fn scan_next(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if self.scan.len == 0 {
            // Between objects: skip whitespace, then insist on `{`.
            skip_whitespace(&mut self.buf);
            match self.buf.first() {
                None => return Ok(None),
                Some(b'{') => {}
                Some(_) => {
                    return Err(FrameError::NotAnObject {
                        found: describe_start(&self.buf),
                    })
                }
            }
        }
        let s = &mut self.scan;
        while s.len < self.buf.len() {
            if s.len >= self.limit {
                return Err(FrameError::TooLarge { limit: self.limit });
            }
            let b = self.buf[s.len];
            s.len += 1;
            if s.in_string {
                match (s.escaped, b) {
                    (true, _) => s.escaped = false,
                    (false, b'\\') => s.escaped = true,
                    (false, b'"') => s.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => s.in_string = true,
                b'{' | b'[' => s.depth += 1,
                b'}' | b']' => {
                    // The object began with `{`, so depth is at least 1 here.
                    s.depth -= 1;
                    if s.depth == 0 {
                        let end = s.len;
                        self.scan = Scan::default();
                        let object: Vec<u8> = self.buf.drain(..end).collect();
                        // An idle client does not keep a large request's
                        // buffer.
                        if self.buf.is_empty() && self.buf.capacity() > 64 << 10 {
                            self.buf = Vec::new();
                        }
                        return Ok(Some(object));
                    }
                }
                _ => {}
            }
        }
        Ok(None)
    }
}

/// Drops the whitespace a stream holds between two values.
pub fn skip_whitespace(buf: &mut Vec<u8>) {
    let skip = buf
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(buf.len());
    buf.drain(..skip);
}

/// The start of unexpected input, printable, for an error line.
fn describe_start(buf: &[u8]) -> String {
    let head: String = String::from_utf8_lossy(&buf[..buf.len().min(16)])
        .chars()
        .take_while(|c| !c.is_whitespace() && !c.is_control())
        .collect();
    if head.is_empty() {
        format!("byte 0x{:02x}", buf[0])
    } else {
        format!("`{head}`")
    }
}

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Command(String),
    Suggest(String),
    /// Attach to a named pipe: the connection then carries its messages
    /// (see [`crate::plumb::socket`]).
    PlumbPipe(String),
    /// Attach to a VM's serial console (`minimega -console VM`): after
    /// one reply the connection carries the console's bytes both ways.
    Console {
        vm: String,
        serial: u64,
        /// Empty: the default namespace.
        namespace: String,
    },
}

/// Why an object is not a request. The stream itself is fine: the reader
/// answers and goes on with the next object.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("`{0}` must be a string")]
    NotAString(String),
    /// minimega's own words for it.
    #[error("must specify either command or suggest")]
    Neither,
}

/// Reads a request out of one complete object. Field names match without
/// regard to case, as Go's decoder matches them; other fields are ignored.
pub fn parse_request(object: &[u8]) -> Result<Request, RequestError> {
    let value: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(object).map_err(|e| RequestError::Json(e.to_string()))?;
    let field = |name: &str| -> Result<String, RequestError> {
        let found = value
            .get(name)
            .or_else(|| {
                value
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
            .unwrap_or(&serde_json::Value::Null);
        match found {
            serde_json::Value::Null => Ok(String::new()),
            serde_json::Value::String(s) => Ok(s.clone()),
            _ => Err(RequestError::NotAString(name.to_string())),
        }
    };
    let command = field("Command")?;
    let suggest = field("Suggest")?;
    let pipe = field("PlumbPipe")?;
    if !pipe.is_empty() {
        return Ok(Request::PlumbPipe(pipe));
    }
    let console = field("Console")?;
    if !console.is_empty() {
        let serial = field("Serial")?;
        return Ok(Request::Console {
            vm: console,
            serial: if serial.is_empty() {
                0
            } else {
                serial
                    .parse()
                    .map_err(|_| RequestError::NotAString("Serial".into()))?
            },
            namespace: field("Namespace")?,
        });
    }
    match (command.is_empty(), suggest.is_empty()) {
        (false, true) => Ok(Request::Command(command)),
        (true, false) => Ok(Request::Suggest(suggest)),
        _ => Err(RequestError::Neither),
    }
}

/// One object the daemon writes. Field names and order are minimega's;
/// `Resp` is `null` when there is nothing to say, as Go writes a nil slice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Reply {
    #[serde(default)]
    pub resp: Option<Vec<Response>>,
    /// The output as the session's dot settings print it. Like minimega's,
    /// it holds no error text (except in JSON mode, where the errors are
    /// part of the JSON).
    #[serde(default)]
    pub rendered: String,
    /// More objects follow for the same command.
    #[serde(default)]
    pub more: bool,
    /// A progress note that does not end the command. Nothing sends one
    /// yet; minimega's own clients ignore the field.
    #[serde(default)]
    pub status: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggest: Vec<String>,
    /// Our addition: the `E: ` lines `minimega -e` prints after the output,
    /// so this project's client prints the same whichever way it connects.
    /// Clients that do not know the field ignore it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub errors: String,
}

impl Reply {
    pub fn from_group(group: &Group, more: bool) -> Reply {
        let (rendered, errors) = render::render(group);
        Reply {
            resp: Some(group.responses.clone()),
            rendered,
            more,
            errors,
            ..Reply::default()
        }
    }

    /// A one-host error, as minimega answers a request it cannot run.
    pub fn error(host: &str, message: &str) -> Reply {
        Reply {
            resp: Some(vec![Response::error(host, message)]),
            errors: format!("E: {message}"),
            ..Reply::default()
        }
    }

    pub fn suggestions(suggest: Vec<String>) -> Reply {
        Reply {
            suggest,
            ..Reply::default()
        }
    }

    pub fn has_error(&self) -> bool {
        self.resp.iter().flatten().any(Response::is_error)
    }

    /// What `minimega -e` prints for this object: the output, then errors.
    pub fn text(&self) -> String {
        crate::command::render::join(&self.rendered, &self.errors)
    }

    /// The object as written: compact JSON and a newline, as Go's encoder.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        out.push(b'\n');
        out
    }
}

/// The objects answering one command: one per group, `More` on all but
/// the last; a command with no output (a comment) still gets one, so the
/// client knows it is done.
pub fn command_replies(groups: &[Group]) -> Vec<Reply> {
    if groups.is_empty() {
        return vec![Reply::default()];
    }
    let last = groups.len() - 1;
    groups
        .iter()
        .enumerate()
        .map(|(i, g)| Reply::from_group(g, i < last))
        .collect()
}

/// A request as minimega's client writes it.
pub fn encode_request(request: &Request) -> Vec<u8> {
    let (command, suggest, pipe) = match request {
        Request::Command(c) => (c.as_str(), "", ""),
        Request::Suggest(s) => ("", s.as_str(), ""),
        Request::PlumbPipe(p) => ("", "", p.as_str()),
        Request::Console {
            vm,
            serial,
            namespace,
        } => {
            let mut out = serde_json::to_vec(&serde_json::json!({
                "Console": vm,
                "Serial": serial.to_string(),
                "Namespace": namespace,
            }))
            .unwrap_or_default();
            out.push(b'\n');
            return out;
        }
    };
    let mut out = serde_json::to_vec(&serde_json::json!({
        "Command": command,
        "Suggest": suggest,
        "PlumbPipe": pipe,
    }))
    .unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
#[path = "proto_tests.rs"]
mod tests;
