//! The kb recording format, as the original writes and reads it: one line
//! an event, `<delay>:<event>`, the delay in nanoseconds since the line
//! before (or a Go duration, `1.5s`, in a file written by hand):
//!
//! ```text
//! 178759303:PointerEvent,0,606,44
//! 578412037:KeyEvent,true,f
//! 0:LoadFile,other.kb
//! 0:WaitForIt,10s,<base64 PNG or a file name>
//! 0:ClickItEvent,10s,<base64 PNG or a file name>
//! #: a comment, logged when played
//! ```
//!
//! The original skips (and logs) a line it cannot read and plays on, so
//! [`entries`] gives every line its own result; [`parse`] is the strict
//! reading. Nothing here touches files: a WaitForIt naming a file, or a
//! LoadFile, is for the player to open.

use super::godur::{self, DurationError};
use super::keys::{self, KeysError};
use super::rfb::{ClientMessage, KeyEvent, PointerEvent};
use std::fmt;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EventError {
    #[error("no `<delay>:` before the event")]
    NoDelay,
    #[error("bad delay: {0}")]
    Delay(DurationError),
    #[error("unknown event `{0}`")]
    UnknownEvent(String),
    #[error("expected {want} values for {event}, got {got}")]
    FieldCount {
        event: &'static str,
        want: usize,
        got: usize,
    },
    #[error("invalid KeyEvent: `{0}` is not true or false")]
    Bool(String),
    #[error(transparent)]
    Key(KeysError),
    #[error("invalid PointerEvent: {what} `{value}`")]
    Number { what: &'static str, value: String },
    #[error("invalid timeout: {0}")]
    Timeout(DurationError),
}

/// A malformed line of a kb file.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {error}")]
pub struct KbError {
    pub line: usize,
    pub error: EventError,
}

/// The picture a WaitForIt waits for, as the line gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Template {
    /// Base64 in the line (self-contained scripts); the decoded image file.
    Inline { base64: String, image: Vec<u8> },
    /// Anything that is not base64 is a file name (relative to the
    /// player's working directory in the original, not to the kb file).
    File(String),
}

impl Template {
    /// What the line holds.
    pub fn source(&self) -> &str {
        match self {
            Template::Inline { base64, .. } => base64,
            Template::File(path) => path,
        }
    }

    /// The name logs and the timeout error use: long base64 is cut to
    /// its first 29 characters and `...`.
    pub fn label(&self) -> String {
        match self {
            Template::Inline { base64, .. } if base64.len() > 32 => {
                format!("{}...", &base64[..29])
            }
            _ => self.source().to_string(),
        }
    }
}

/// WaitForIt, or ClickIt (`click`): wait until the template is on the
/// screen; ClickIt then presses the left button at its centre.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitForIt {
    pub timeout_ns: i64,
    pub template: Template,
    pub click: bool,
}

impl WaitForIt {
    pub fn timeout(&self) -> Duration {
        Duration::from_nanos(self.timeout_ns.max(0) as u64)
    }
}

/// What a line (or `vnc inject`) does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Key(KeyEvent),
    Pointer(PointerEvent),
    LoadFile(String),
    WaitForIt(WaitForIt),
}

impl Action {
    /// What a kb recording keeps of a client's message: keys (both
    /// forms) and the pointer. The original could not parse QEMU's
    /// extended key events; they are kept as the KeyEvent they carry.
    pub fn recorded(msg: &ClientMessage) -> Option<Action> {
        match msg {
            ClientMessage::Pointer(p) => Some(Action::Pointer(*p)),
            m => m.key_event().map(Action::Key),
        }
    }

    /// The key or pointer message to send, for those two.
    pub fn message(&self) -> Option<ClientMessage> {
        match self {
            Action::Key(k) => Some(ClientMessage::Key(*k)),
            Action::Pointer(p) => Some(ClientMessage::Pointer(*p)),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Key(k) => write!(f, "KeyEvent,{},{}", k.down, keys::format_key(k.keysym)),
            Action::Pointer(p) => write!(f, "PointerEvent,{},{},{}", p.buttons, p.x, p.y),
            Action::LoadFile(path) => write!(f, "LoadFile,{path}"),
            Action::WaitForIt(w) => {
                let name = if w.click { "ClickItEvent" } else { "WaitForIt" };
                let timeout = godur::format(w.timeout_ns);
                write!(f, "{name},{timeout},{}", w.template.source())
            }
        }
    }
}

/// One line of a kb file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Empty or blank: skipped.
    Blank,
    /// A line whose delay field starts with `#`; the whole line is what
    /// the original logs (`playback: <line>`).
    Comment(String),
    Step {
        delay_ns: i64,
        action: Action,
    },
}

/// A line and where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// From 1.
    pub number: usize,
    /// The line as read (without its end): what `vnc getstep` shows.
    pub text: &'a str,
    pub line: Line,
}

/// A delay: whole nanoseconds (what the original writes), else a Go
/// duration.
pub fn parse_delay(s: &str) -> Result<i64, DurationError> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = s.parse::<i64>() {
            return Ok(n);
        }
    }
    godur::parse(s)
}

/// Go's `base64.StdEncoding.DecodeString`: padding required, line ends
/// ignored, stray bits in the last character allowed.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let clean: Vec<u8> = s.bytes().filter(|&b| b != b'\r' && b != b'\n').collect();
    if clean.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    let quads = clean.len() / 4;
    for (i, q) in clean.chunks_exact(4).enumerate() {
        let pad = match (q[2], q[3]) {
            (b'=', b'=') => 2,
            (_, b'=') => 1,
            _ => 0,
        };
        if pad > 0 && i + 1 != quads {
            return None;
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = n << 6 | val(c)?;
        }
        n <<= 6 * pad as u32;
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    Some(out)
}

/// An event without its delay: what `vnc inject` takes.
pub fn parse_action(s: &str) -> Result<Action, EventError> {
    let fields: Vec<&str> = s.split(',').collect();
    let count = |event: &'static str, want: usize| {
        if fields.len() == want + 1 {
            Ok(())
        } else {
            Err(EventError::FieldCount {
                event,
                want,
                got: fields.len() - 1,
            })
        }
    };
    match fields[0] {
        "KeyEvent" => {
            count("KeyEvent", 2)?;
            let down = parse_go_bool(fields[1])?;
            let keysym = keys::parse_key(fields[2]).map_err(EventError::Key)?;
            Ok(Action::Key(KeyEvent { down, keysym }))
        }
        "PointerEvent" => {
            count("PointerEvent", 3)?;
            let num = |what: &'static str, v: &str| -> Result<u64, EventError> {
                let bad = || EventError::Number {
                    what,
                    value: v.to_string(),
                };
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                v.parse::<u64>().map_err(|_| bad())
            };
            let buttons = num("mask", fields[1])?;
            let x = num("x", fields[2])?;
            let y = num("y", fields[3])?;
            let too_big = |what, v: &str| EventError::Number {
                what,
                value: v.to_string(),
            };
            Ok(Action::Pointer(PointerEvent {
                buttons: u8::try_from(buttons).map_err(|_| too_big("mask", fields[1]))?,
                x: u16::try_from(x).map_err(|_| too_big("x", fields[2]))?,
                y: u16::try_from(y).map_err(|_| too_big("y", fields[3]))?,
            }))
        }
        "LoadFile" => {
            count("LoadFile", 1)?;
            Ok(Action::LoadFile(fields[1].to_string()))
        }
        // `ClickIt` is how the original's documentation spells the event
        // its code reads as `ClickItEvent`; both are taken.
        name @ ("WaitForIt" | "ClickItEvent" | "ClickIt") => {
            let event = match name {
                "WaitForIt" => "WaitForIt",
                _ => "ClickItEvent",
            };
            count(event, 2)?;
            let timeout_ns = parse_delay(fields[1]).map_err(EventError::Timeout)?;
            let source = fields[2].to_string();
            let template = match decode_base64(&source) {
                Some(image) => Template::Inline {
                    base64: source,
                    image,
                },
                None => Template::File(source),
            };
            Ok(Action::WaitForIt(WaitForIt {
                timeout_ns,
                template,
                click: name != "WaitForIt",
            }))
        }
        other => Err(EventError::UnknownEvent(other.to_string())),
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Result<bool, EventError> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(EventError::Bool(s.to_string())),
    }
}

/// One line (without its end). The event is read before the delay, as the
/// original does, so a line bad in both reports its event.
pub fn parse_line(line: &str) -> Result<Line, EventError> {
    if line.trim().is_empty() {
        return Ok(Line::Blank);
    }
    let (delay, event) = line.split_once(':').ok_or(EventError::NoDelay)?;
    if delay.starts_with('#') {
        return Ok(Line::Comment(line.to_string()));
    }
    let action = parse_action(event)?;
    let delay_ns = parse_delay(delay).map_err(EventError::Delay)?;
    Ok(Line::Step { delay_ns, action })
}

/// The lines of a file as Go's line scanner cuts them: at `\n`, one `\r`
/// before it dropped, no empty line after a final `\n`.
pub fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let none = text.is_empty();
    body.split('\n')
        .filter(move |_| !none)
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l))
}

/// Every line, each read on its own: the player logs an `Err` and plays
/// on, as the original does.
pub fn entries(text: &str) -> impl Iterator<Item = Result<Entry<'_>, KbError>> {
    lines(text).map(|(number, text)| {
        parse_line(text)
            .map(|line| Entry { number, text, line })
            .map_err(|error| KbError {
                line: number,
                error,
            })
    })
}

/// The whole file, refused at its first malformed line.
pub fn parse(text: &str) -> Result<Vec<Entry<'_>>, KbError> {
    entries(text).collect()
}

/// A line as the recorder writes it, end included.
pub fn format_line(delay_ns: i64, action: &Action) -> String {
    format!("{delay_ns}:{action}\n")
}

/// The line a kb recording gets for a client's message, if it keeps it;
/// `since_last` is the time since the previous recorded line (or since
/// the recording started).
pub fn record_line(since_last: Duration, msg: &ClientMessage) -> Option<String> {
    let ns = i64::try_from(since_last.as_nanos()).unwrap_or(i64::MAX);
    Action::recorded(msg).map(|a| format_line(ns, &a))
}

/// The kb text the original plays for `vnc type` and a ClientCutText.
pub fn typed(text: &str) -> Result<String, KeysError> {
    Ok(keys::type_text(text)?
        .into_iter()
        .map(|k| format_line(0, &Action::Key(k)))
        .collect())
}

/// The play time of a file as the original sums it for `vnc`'s listing:
/// whole-nanosecond delays of lines with a colon; lines whose delay field
/// is exactly `#` are left out; any other delay (a Go duration, a `#...`
/// comment) makes the whole file count as zero.
pub fn file_duration_ns(text: &str) -> i64 {
    let mut total: i64 = 0;
    for (_, line) in lines(text) {
        let Some((delay, _)) = line.split_once(':') else {
            continue;
        };
        if delay == "#" {
            continue;
        }
        match delay.parse::<i64>() {
            Ok(n) => total = total.wrapping_add(n),
            Err(_) => return 0,
        }
    }
    total
}

#[cfg(test)]
mod tests;
