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
mod tests {
    use super::*;
    use crate::command::{Flags, Mode};

    fn all(d: &mut Decoder) -> Result<Vec<String>, FrameError> {
        let mut out = Vec::new();
        while let Some(o) = d.next_object()? {
            out.push(String::from_utf8(o).unwrap());
        }
        Ok(out)
    }

    #[test]
    fn objects_back_to_back_and_split_anywhere() {
        let stream = br#"{"Command":"version"}
  {"Command":"echo }{ \"]\" \\"}{"Suggest":"vers","x":[1,{"y":2}]}"#;
        let mut whole = Decoder::new(MAX_REQUEST);
        whole.push(stream);
        let expected = all(&mut whole).unwrap();
        assert_eq!(expected.len(), 3, "{expected:?}");
        assert_eq!(expected[0], r#"{"Command":"version"}"#);
        assert!(!whole.is_partial());
        // Every byte on its own gives the same objects.
        let mut bytewise = Decoder::new(MAX_REQUEST);
        let mut got = Vec::new();
        for b in stream {
            bytewise.push(&[*b]);
            got.extend(all(&mut bytewise).unwrap());
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn partial_object_waits() {
        let mut d = Decoder::new(MAX_REQUEST);
        d.push(br#"{"Command": "ver"#);
        assert_eq!(d.next_object(), Ok(None));
        assert!(d.is_partial());
        d.push(br#"sion"}"#);
        assert_eq!(
            d.next_object().unwrap().unwrap(),
            br#"{"Command": "version"}"#
        );
        assert!(!d.is_partial());
    }

    #[test]
    fn garbage_is_an_error_that_sticks() {
        let mut d = Decoder::new(MAX_REQUEST);
        d.push(b"hello\n{\"Command\":\"version\"}");
        let e = d.next_object().unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected a JSON object such as {\"Command\": \"version\"}, found `hello`"
        );
        assert_eq!(d.next_object().unwrap_err(), e);
        let mut d = Decoder::new(MAX_REQUEST);
        d.push(&[0xff, 0x00]);
        assert!(matches!(
            d.next_object(),
            Err(FrameError::NotAnObject { .. })
        ));
        let mut d = Decoder::new(MAX_REQUEST);
        d.push(b"\x00");
        assert_eq!(
            d.next_object().unwrap_err().to_string(),
            "expected a JSON object such as {\"Command\": \"version\"}, found byte 0x00"
        );
        // Mismatched brackets end an object all the same; the JSON parser
        // then refuses it, and what follows is garbage.
        let mut d = Decoder::new(MAX_REQUEST);
        d.push(b"{]]");
        let o = d.next_object().unwrap().unwrap();
        assert!(matches!(parse_request(&o), Err(RequestError::Json(_))));
        assert!(matches!(
            d.next_object(),
            Err(FrameError::NotAnObject { .. })
        ));
    }

    #[test]
    fn oversized_object_is_refused_before_it_ends() {
        let mut d = Decoder::new(64);
        d.push(b"{\"Command\": \"");
        d.push(&[b'a'; 100]);
        assert_eq!(d.next_object(), Err(FrameError::TooLarge { limit: 64 }));
        // An object of exactly the limit passes.
        let mut d = Decoder::new(20);
        let obj = br#"{"Command":"abcdef"}"#;
        assert_eq!(obj.len(), 20);
        d.push(obj);
        assert_eq!(d.next_object().unwrap().unwrap(), obj);
        // Whitespace between objects does not count, nor pile up.
        let mut d = Decoder::new(20);
        for _ in 0..100 {
            d.push(&[b' '; 50]);
            assert_eq!(d.next_object(), Ok(None));
        }
        assert!(!d.is_partial());
    }

    #[test]
    fn requests() {
        let p = |s: &str| parse_request(s.as_bytes());
        assert_eq!(
            p(r#"{"Command":"vm info","Suggest":"","PlumbPipe":""}"#),
            Ok(Request::Command("vm info".into()))
        );
        assert_eq!(
            p(r#"{"command":"version","extra":1}"#),
            Ok(Request::Command("version".into()))
        );
        assert_eq!(
            p(r#"{"Suggest":"vm la","Command":null}"#),
            Ok(Request::Suggest("vm la".into()))
        );
        assert_eq!(
            p(r#"{"PlumbPipe":"p"}"#),
            Ok(Request::PlumbPipe("p".into()))
        );
        assert_eq!(p(r#"{}"#), Err(RequestError::Neither));
        assert_eq!(
            p(r#"{"Command":"a","Suggest":"b"}"#),
            Err(RequestError::Neither)
        );
        assert_eq!(
            p(r#"{"Command":5}"#).unwrap_err().to_string(),
            "`Command` must be a string"
        );
        assert!(matches!(
            p(r#"{"Command":"x",}"#),
            Err(RequestError::Json(_))
        ));
        assert!(matches!(
            parse_request(b"{\"Command\":\"\xff\"}"),
            Err(RequestError::Json(_))
        ));
    }

    #[test]
    fn request_encoding_is_the_go_clients() {
        let r = encode_request(&Request::Command("vm info".into()));
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "{\"Command\":\"vm info\",\"PlumbPipe\":\"\",\"Suggest\":\"\"}\n"
        );
        let r = encode_request(&Request::Suggest("ver".into()));
        assert_eq!(parse_request(&r).unwrap(), Request::Suggest("ver".into()));
    }

    fn table_group(flags: Flags) -> Group {
        Group {
            responses: vec![Response {
                host: "n1".into(),
                header: vec!["name".into(), "state".into()],
                tabular: vec![vec!["a".into(), "RUNNING".into()]],
                ..Default::default()
            }],
            flags,
        }
    }

    #[test]
    fn replies_carry_minimegas_fields() {
        let r = Reply::from_group(&table_group(Flags::default()), false);
        let v: serde_json::Value = serde_json::from_slice(&r.encode()).unwrap();
        let text = String::from_utf8(r.encode()).unwrap();
        let at = |k: &str| text.find(&format!("\"{k}\":")).unwrap();
        assert!(text.starts_with("{\"Resp\":[{\"Host\":\"n1\""), "{text}");
        assert!(at("Resp") < at("Rendered") && at("Rendered") < at("More"));
        assert!(at("More") < at("Status"), "{text}");
        assert_eq!(v.as_object().unwrap().len(), 4, "{text}");
        assert_eq!(v["Resp"][0]["Host"], "n1");
        assert_eq!(v["Resp"][0]["Header"][1], "state");
        assert_eq!(v["Resp"][0]["Tabular"][0][1], "RUNNING");
        assert_eq!(v["Resp"][0]["Error"], "");
        assert_eq!(v["Resp"][0]["Response"], "");
        assert!(v["Resp"][0]["Data"].is_null());
        assert_eq!(v["Rendered"], "host | name | state\nn1   | a    | RUNNING");
        assert_eq!(v["More"], false);
        assert!(r.encode().ends_with(b"}\n"));
        assert_eq!(r.text(), r.rendered);
    }

    #[test]
    fn rendered_follows_the_session_flags() {
        let flags = Flags {
            annotate: false,
            headers: false,
            ..Flags::default()
        };
        let r = Reply::from_group(&table_group(flags), false);
        assert_eq!(r.rendered, "a    | RUNNING");
        let flags = Flags {
            mode: Mode::Json,
            ..Flags::default()
        };
        let r = Reply::from_group(&table_group(flags), false);
        let v: serde_json::Value = serde_json::from_str(&r.rendered).unwrap();
        assert_eq!(v[0]["Tabular"][0][0], "a");
    }

    #[test]
    fn errors_are_in_resp_not_in_rendered() {
        let g = Group {
            responses: vec![Response::error("n1", "no such vm: foo")],
            flags: Flags::default(),
        };
        let r = Reply::from_group(&g, false);
        assert_eq!(r.rendered, "");
        assert!(r.has_error());
        assert_eq!(r.text(), "E: no such vm: foo");
        let v: serde_json::Value = serde_json::from_slice(&r.encode()).unwrap();
        assert_eq!(v["Resp"][0]["Error"], "no such vm: foo");
        assert!(v["Resp"][0]["Header"].is_null());
        let e = Reply::error("n1", "must specify either command or suggest");
        assert_eq!(e.rendered, "");
        assert_eq!(
            e.resp.as_ref().unwrap()[0].error,
            "must specify either command or suggest"
        );
    }

    #[test]
    fn one_object_per_group_more_until_the_last() {
        let g = table_group(Flags::default());
        let rs = command_replies(&[g.clone(), g.clone(), g]);
        let more: Vec<bool> = rs.iter().map(|r| r.more).collect();
        assert_eq!(more, [true, true, false]);
        let none = command_replies(&[]);
        assert_eq!(none.len(), 1);
        let v: serde_json::Value = serde_json::from_slice(&none[0].encode()).unwrap();
        assert!(v["Resp"].is_null());
        assert_eq!(v["Rendered"], "");
        assert_eq!(v["More"], false);
    }

    #[test]
    fn suggestions_and_round_trip() {
        let r = Reply::suggestions(vec!["version".into()]);
        let bytes = r.encode();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["Suggest"][0], "version");
        assert!(v["Resp"].is_null());
        let back: Reply = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, r);
        // No suggestions: the field is left out, as Go's omitempty does.
        let v: serde_json::Value =
            serde_json::from_slice(&Reply::suggestions(vec![]).encode()).unwrap();
        assert!(v.get("Suggest").is_none());
    }
}
