//! The messages of minimega's `ron` protocol, field for field as the Go
//! agent and server send them (names and order matter to gob), and their
//! gob form. Pure.

use super::gob::{GobError, StructTy, Ty, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `Message.Type`.
pub mod kind {
    pub const COMMAND: i64 = 0;
    pub const CLIENT: i64 = 1;
    pub const TUNNEL: i64 = 2;
    pub const FILE: i64 = 3;
    pub const PIPE: i64 = 4;
    pub const UFS: i64 = 5;
    pub const HEARTBEAT: i64 = 6;

    pub fn name(t: i64) -> &'static str {
        match t {
            COMMAND => "COMMAND",
            CLIENT => "CLIENT",
            TUNNEL => "TUNNEL",
            FILE => "FILE",
            PIPE => "PIPE",
            UFS => "UFS",
            HEARTBEAT => "HEARTBEAT",
            _ => "UNKNOWN",
        }
    }
}

/// `Message.PipeMode`.
pub mod pipe {
    pub const NEW_READER: i64 = 0;
    pub const NEW_WRITER: i64 = 1;
    pub const CLOSE_READER: i64 = 2;
    pub const CLOSE_WRITER: i64 = 3;
    pub const DATA: i64 = 4;
}

/// The message version both sides send; the server refuses agents without
/// one (they predate server heartbeats and would choke on them).
pub const VERSION: &str = "v1";

/// Bytes of file data per FILE message, as minimega sends them.
pub const PART_SIZE: usize = 100 * 1024;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    pub kind: i64,
    pub uuid: String,
    pub error: String,
    pub commands: BTreeMap<i64, Command>,
    pub client: Option<Client>,
    pub file: Option<File>,
    pub tunnel: Vec<u8>,
    pub pipe: String,
    pub pipe_mode: i64,
    pub pipe_data: String,
    pub ufs_mode: i64,
    pub version: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Command {
    pub id: i64,
    pub background: bool,
    pub command: Vec<String>,
    pub files_send: Vec<String>,
    pub files_recv: Vec<String>,
    pub conn_test: Option<ConnTest>,
    pub pid: i64,
    pub kill_all: String,
    pub level: Option<i64>,
    pub filter: Option<Filter>,
    pub checked_in: Vec<String>,
    pub prefix: String,
    pub once: bool,
    pub sent: bool,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Filter {
    pub uuid: String,
    pub hostname: String,
    pub arch: String,
    pub os: String,
    pub mac: String,
    pub ip: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnTest {
    pub endpoint: String,
    /// Nanoseconds (Go's time.Duration).
    pub wait: i64,
    pub packet: Vec<u8>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Client {
    pub uuid: String,
    pub arch: String,
    pub os: String,
    pub version: String,
    pub hostname: String,
    pub ips: Vec<String>,
    pub macs: Vec<String>,
    pub processes: BTreeMap<i64, Process>,
    pub tags: BTreeMap<String, String>,
    pub responses: Vec<Response>,
    pub last_command_id: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Process {
    pub pid: i64,
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub id: i64,
    /// Bytes: a command's output need not be text.
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i64,
    pub record_exit_code: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct File {
    pub id: i64,
    pub name: String,
    /// os.FileMode: permission bits.
    pub perm: u64,
    pub data: Vec<u8>,
    pub offset: i64,
    pub eof: bool,
}

// ---- the gob types, as Go declares them ----

static T_STRINGS: Ty = Ty::Slice(&Ty::String);
static T_STRING_MAP: Ty = Ty::Map(&Ty::String, &Ty::String);
static T_FILTER: Ty = Ty::Struct(&FILTER);
static T_CONN_TEST: Ty = Ty::Struct(&CONN_TEST);
static T_COMMAND: Ty = Ty::Struct(&COMMAND);
static T_COMMANDS: Ty = Ty::Map(&Ty::Int, &T_COMMAND);
static T_PROCESS: Ty = Ty::Struct(&PROCESS);
static T_PROCESSES: Ty = Ty::Map(&Ty::Int, &T_PROCESS);
static T_RESPONSE: Ty = Ty::Struct(&RESPONSE);
static T_RESPONSES: Ty = Ty::Slice(&T_RESPONSE);
static T_CLIENT: Ty = Ty::Struct(&CLIENT);
static T_FILE: Ty = Ty::Struct(&FILE);
/// What both sides send and expect at the top of the stream.
pub static T_MESSAGE: Ty = Ty::Struct(&MESSAGE);

static MESSAGE: StructTy = StructTy {
    name: "Message",
    fields: &[
        ("Type", &Ty::Int),
        ("UUID", &Ty::String),
        ("Error", &Ty::String),
        ("Commands", &T_COMMANDS),
        ("Client", &T_CLIENT),
        ("File", &T_FILE),
        ("Tunnel", &Ty::Bytes),
        ("Pipe", &Ty::String),
        ("PipeMode", &Ty::Int),
        ("PipeData", &Ty::String),
        ("UfsMode", &Ty::Int),
        ("Version", &Ty::String),
    ],
};

static COMMAND: StructTy = StructTy {
    name: "Command",
    fields: &[
        ("ID", &Ty::Int),
        ("Background", &Ty::Bool),
        ("Command", &T_STRINGS),
        ("FilesSend", &T_STRINGS),
        ("FilesRecv", &T_STRINGS),
        ("ConnTest", &T_CONN_TEST),
        ("PID", &Ty::Int),
        ("KillAll", &Ty::String),
        ("Level", &Ty::Int),
        ("Filter", &T_FILTER),
        ("CheckedIn", &T_STRINGS),
        ("Prefix", &Ty::String),
        ("Once", &Ty::Bool),
        ("Sent", &Ty::Bool),
        ("Stdin", &Ty::String),
        ("Stdout", &Ty::String),
        ("Stderr", &Ty::String),
    ],
};

static FILTER: StructTy = StructTy {
    name: "Filter",
    fields: &[
        ("UUID", &Ty::String),
        ("Hostname", &Ty::String),
        ("Arch", &Ty::String),
        ("OS", &Ty::String),
        ("MAC", &Ty::String),
        ("IP", &Ty::String),
        ("Tags", &T_STRING_MAP),
    ],
};

static CONN_TEST: StructTy = StructTy {
    name: "ConnTest",
    fields: &[
        ("Endpoint", &Ty::String),
        ("Wait", &Ty::Int),
        ("Packet", &Ty::Bytes),
    ],
};

static CLIENT: StructTy = StructTy {
    name: "Client",
    fields: &[
        ("UUID", &Ty::String),
        ("Arch", &Ty::String),
        ("OS", &Ty::String),
        ("Version", &Ty::String),
        ("Hostname", &Ty::String),
        ("IPs", &T_STRINGS),
        ("MACs", &T_STRINGS),
        ("Processes", &T_PROCESSES),
        ("Tags", &T_STRING_MAP),
        ("Responses", &T_RESPONSES),
        ("LastCommandID", &Ty::Int),
    ],
};

static PROCESS: StructTy = StructTy {
    name: "Process",
    fields: &[("PID", &Ty::Int), ("Command", &T_STRINGS)],
};

static RESPONSE: StructTy = StructTy {
    name: "Response",
    fields: &[
        ("ID", &Ty::Int),
        ("Stdout", &Ty::String),
        ("Stderr", &Ty::String),
        ("ExitCode", &Ty::Int),
        ("RecordExitCode", &Ty::Bool),
    ],
};

static FILE: StructTy = StructTy {
    name: "File",
    fields: &[
        ("ID", &Ty::Int),
        ("Name", &Ty::String),
        ("Perm", &Ty::Uint),
        ("Data", &Ty::Bytes),
        ("Offset", &Ty::Int),
        ("EOF", &Ty::Bool),
    ],
};

// ---- to and from gob values ----

fn s(v: &str) -> Value {
    Value::str(v)
}

fn strings(v: &[String]) -> Value {
    Value::Slice(v.iter().map(|x| s(x)).collect())
}

fn string_map(m: &BTreeMap<String, String>) -> Value {
    Value::Map(m.iter().map(|(k, v)| (s(k), s(v))).collect())
}

/// Fields of a decoded struct, read leniently as Go does: absent means
/// zero, and any integer kind fits an integer field.
struct Fields<'a>(&'a Value);

impl<'a> Fields<'a> {
    fn of(v: &'a Value, want: &'static str) -> Result<Fields<'a>, GobError> {
        match v {
            Value::Struct(_) => Ok(Fields(v)),
            _ => Err(GobError::Mismatch {
                field: want,
                want: "a struct",
            }),
        }
    }

    fn get(&self, name: &'static str) -> Option<&'a Value> {
        self.0.field(name)
    }

    fn int(&self, name: &'static str) -> Result<i64, GobError> {
        match self.get(name) {
            None => Ok(0),
            Some(Value::Int(i)) => Ok(*i),
            Some(Value::Uint(u)) => i64::try_from(*u).map_err(|_| GobError::IntOverflow),
            Some(_) => Err(GobError::Mismatch {
                field: name,
                want: "an integer",
            }),
        }
    }

    fn uint(&self, name: &'static str) -> Result<u64, GobError> {
        match self.get(name) {
            None => Ok(0),
            Some(Value::Uint(u)) => Ok(*u),
            Some(Value::Int(i)) => u64::try_from(*i).map_err(|_| GobError::IntOverflow),
            Some(_) => Err(GobError::Mismatch {
                field: name,
                want: "an unsigned integer",
            }),
        }
    }

    fn bool(&self, name: &'static str) -> Result<bool, GobError> {
        match self.get(name) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(GobError::Mismatch {
                field: name,
                want: "a bool",
            }),
        }
    }

    fn bytes(&self, name: &'static str) -> Result<Vec<u8>, GobError> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Str(b) | Value::Bytes(b)) => Ok(b.clone()),
            Some(_) => Err(GobError::Mismatch {
                field: name,
                want: "a string",
            }),
        }
    }

    fn string(&self, name: &'static str) -> Result<String, GobError> {
        Ok(String::from_utf8_lossy(&self.bytes(name)?).into_owned())
    }

    fn strings(&self, name: &'static str) -> Result<Vec<String>, GobError> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Slice(items) | Value::Array(items)) => {
                items.iter().map(|i| text(i, name)).collect()
            }
            Some(_) => Err(GobError::Mismatch {
                field: name,
                want: "a list of strings",
            }),
        }
    }

    fn string_map(&self, name: &'static str) -> Result<BTreeMap<String, String>, GobError> {
        match self.get(name) {
            None => Ok(BTreeMap::new()),
            Some(Value::Map(pairs)) => pairs
                .iter()
                .map(|(k, v)| Ok((text(k, name)?, text(v, name)?)))
                .collect(),
            Some(_) => Err(GobError::Mismatch {
                field: name,
                want: "a map of strings",
            }),
        }
    }

    /// A map keyed by int whose values are structs of type `T`.
    fn int_map<T>(
        &self,
        name: &'static str,
        f: impl Fn(&Value) -> Result<T, GobError>,
    ) -> Result<BTreeMap<i64, T>, GobError> {
        match self.get(name) {
            None => Ok(BTreeMap::new()),
            Some(Value::Map(pairs)) => pairs
                .iter()
                .map(|(k, v)| {
                    let k = match k {
                        Value::Int(i) => *i,
                        Value::Uint(u) => i64::try_from(*u).map_err(|_| GobError::IntOverflow)?,
                        _ => {
                            return Err(GobError::Mismatch {
                                field: name,
                                want: "integer keys",
                            })
                        }
                    };
                    Ok((k, f(v)?))
                })
                .collect(),
            Some(_) => Err(GobError::Mismatch {
                field: name,
                want: "a map",
            }),
        }
    }

    fn opt<T>(
        &self,
        name: &'static str,
        f: impl Fn(&Value) -> Result<T, GobError>,
    ) -> Result<Option<T>, GobError> {
        self.get(name).map(f).transpose()
    }
}

fn text(v: &Value, field: &'static str) -> Result<String, GobError> {
    match v {
        Value::Str(b) | Value::Bytes(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        _ => Err(GobError::Mismatch {
            field,
            want: "a string",
        }),
    }
}

/// Builds a struct value, leaving out fields left at zero.
struct Out(Vec<(String, Value)>);

impl Out {
    fn new() -> Out {
        Out(Vec::new())
    }
    fn put(mut self, name: &str, v: Value) -> Out {
        if !v.is_zero() {
            self.0.push((name.to_string(), v));
        }
        self
    }
    fn put_opt(mut self, name: &str, v: Option<Value>) -> Out {
        if let Some(v) = v {
            self.0.push((name.to_string(), v));
        }
        self
    }
    fn done(self) -> Value {
        Value::Struct(self.0)
    }
}

impl Message {
    pub fn to_gob(&self) -> Value {
        Out::new()
            .put("Type", Value::Int(self.kind))
            .put("UUID", s(&self.uuid))
            .put("Error", s(&self.error))
            .put(
                "Commands",
                Value::Map(
                    self.commands
                        .iter()
                        .map(|(k, c)| (Value::Int(*k), c.to_gob()))
                        .collect(),
                ),
            )
            .put_opt("Client", self.client.as_ref().map(Client::to_gob))
            .put_opt("File", self.file.as_ref().map(File::to_gob))
            .put("Tunnel", Value::Bytes(self.tunnel.clone()))
            .put("Pipe", s(&self.pipe))
            .put("PipeMode", Value::Int(self.pipe_mode))
            .put("PipeData", s(&self.pipe_data))
            .put("UfsMode", Value::Int(self.ufs_mode))
            .put("Version", s(&self.version))
            .done()
    }

    pub fn from_gob(v: &Value) -> Result<Message, GobError> {
        let f = Fields::of(v, "Message")?;
        Ok(Message {
            kind: f.int("Type")?,
            uuid: f.string("UUID")?,
            error: f.string("Error")?,
            commands: f.int_map("Commands", Command::from_gob)?,
            client: f.opt("Client", Client::from_gob)?,
            file: f.opt("File", File::from_gob)?,
            tunnel: f.bytes("Tunnel")?,
            pipe: f.string("Pipe")?,
            pipe_mode: f.int("PipeMode")?,
            pipe_data: f.string("PipeData")?,
            ufs_mode: f.int("UfsMode")?,
            version: f.string("Version")?,
        })
    }

    pub fn heartbeat() -> Message {
        Message {
            kind: kind::HEARTBEAT,
            version: VERSION.into(),
            ..Message::default()
        }
    }
}

impl Command {
    fn to_gob(&self) -> Value {
        Out::new()
            .put("ID", Value::Int(self.id))
            .put("Background", Value::Bool(self.background))
            .put("Command", strings(&self.command))
            .put("FilesSend", strings(&self.files_send))
            .put("FilesRecv", strings(&self.files_recv))
            .put_opt("ConnTest", self.conn_test.as_ref().map(ConnTest::to_gob))
            .put("PID", Value::Int(self.pid))
            .put("KillAll", s(&self.kill_all))
            .put_opt("Level", self.level.map(Value::Int))
            .put_opt("Filter", self.filter.as_ref().map(Filter::to_gob))
            .put("CheckedIn", strings(&self.checked_in))
            .put("Prefix", s(&self.prefix))
            .put("Once", Value::Bool(self.once))
            .put("Sent", Value::Bool(self.sent))
            .put("Stdin", s(&self.stdin))
            .put("Stdout", s(&self.stdout))
            .put("Stderr", s(&self.stderr))
            .done()
    }

    fn from_gob(v: &Value) -> Result<Command, GobError> {
        let f = Fields::of(v, "Command")?;
        Ok(Command {
            id: f.int("ID")?,
            background: f.bool("Background")?,
            command: f.strings("Command")?,
            files_send: f.strings("FilesSend")?,
            files_recv: f.strings("FilesRecv")?,
            conn_test: f.opt("ConnTest", ConnTest::from_gob)?,
            pid: f.int("PID")?,
            kill_all: f.string("KillAll")?,
            // A *Level pointing at 0 is not sent either: absent is None.
            level: match f.int("Level")? {
                0 => None,
                l => Some(l),
            },
            filter: f.opt("Filter", Filter::from_gob)?,
            checked_in: f.strings("CheckedIn")?,
            prefix: f.string("Prefix")?,
            once: f.bool("Once")?,
            sent: f.bool("Sent")?,
            stdin: f.string("Stdin")?,
            stdout: f.string("Stdout")?,
            stderr: f.string("Stderr")?,
        })
    }
}

impl Filter {
    fn to_gob(&self) -> Value {
        Out::new()
            .put("UUID", s(&self.uuid))
            .put("Hostname", s(&self.hostname))
            .put("Arch", s(&self.arch))
            .put("OS", s(&self.os))
            .put("MAC", s(&self.mac))
            .put("IP", s(&self.ip))
            .put("Tags", string_map(&self.tags))
            .done()
    }

    fn from_gob(v: &Value) -> Result<Filter, GobError> {
        let f = Fields::of(v, "Filter")?;
        Ok(Filter {
            uuid: f.string("UUID")?,
            hostname: f.string("Hostname")?,
            arch: f.string("Arch")?,
            os: f.string("OS")?,
            mac: f.string("MAC")?,
            ip: f.string("IP")?,
            tags: f.string_map("Tags")?,
        })
    }
}

impl ConnTest {
    fn to_gob(&self) -> Value {
        Out::new()
            .put("Endpoint", s(&self.endpoint))
            .put("Wait", Value::Int(self.wait))
            .put("Packet", Value::Bytes(self.packet.clone()))
            .done()
    }

    fn from_gob(v: &Value) -> Result<ConnTest, GobError> {
        let f = Fields::of(v, "ConnTest")?;
        Ok(ConnTest {
            endpoint: f.string("Endpoint")?,
            wait: f.int("Wait")?,
            packet: f.bytes("Packet")?,
        })
    }
}

impl Client {
    fn to_gob(&self) -> Value {
        Out::new()
            .put("UUID", s(&self.uuid))
            .put("Arch", s(&self.arch))
            .put("OS", s(&self.os))
            .put("Version", s(&self.version))
            .put("Hostname", s(&self.hostname))
            .put("IPs", strings(&self.ips))
            .put("MACs", strings(&self.macs))
            .put(
                "Processes",
                Value::Map(
                    self.processes
                        .iter()
                        .map(|(k, p)| (Value::Int(*k), p.to_gob()))
                        .collect(),
                ),
            )
            .put("Tags", string_map(&self.tags))
            .put(
                "Responses",
                Value::Slice(self.responses.iter().map(Response::to_gob).collect()),
            )
            .put("LastCommandID", Value::Int(self.last_command_id))
            .done()
    }

    fn from_gob(v: &Value) -> Result<Client, GobError> {
        let f = Fields::of(v, "Client")?;
        let responses = match f.get("Responses") {
            None => Vec::new(),
            Some(Value::Slice(items)) => items
                .iter()
                .map(Response::from_gob)
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(GobError::Mismatch {
                    field: "Responses",
                    want: "a list",
                })
            }
        };
        Ok(Client {
            uuid: f.string("UUID")?,
            arch: f.string("Arch")?,
            os: f.string("OS")?,
            version: f.string("Version")?,
            hostname: f.string("Hostname")?,
            ips: f.strings("IPs")?,
            macs: f.strings("MACs")?,
            processes: f.int_map("Processes", Process::from_gob)?,
            tags: f.string_map("Tags")?,
            responses,
            last_command_id: f.int("LastCommandID")?,
        })
    }
}

impl Process {
    fn to_gob(&self) -> Value {
        Out::new()
            .put("PID", Value::Int(self.pid))
            .put("Command", strings(&self.command))
            .done()
    }

    fn from_gob(v: &Value) -> Result<Process, GobError> {
        let f = Fields::of(v, "Process")?;
        Ok(Process {
            pid: f.int("PID")?,
            command: f.strings("Command")?,
        })
    }
}

impl Response {
    fn to_gob(&self) -> Value {
        Out::new()
            .put("ID", Value::Int(self.id))
            .put("Stdout", Value::Str(self.stdout.clone()))
            .put("Stderr", Value::Str(self.stderr.clone()))
            .put("ExitCode", Value::Int(self.exit_code))
            .put("RecordExitCode", Value::Bool(self.record_exit_code))
            .done()
    }

    fn from_gob(v: &Value) -> Result<Response, GobError> {
        let f = Fields::of(v, "Response")?;
        Ok(Response {
            id: f.int("ID")?,
            stdout: f.bytes("Stdout")?,
            stderr: f.bytes("Stderr")?,
            exit_code: f.int("ExitCode")?,
            record_exit_code: f.bool("RecordExitCode")?,
        })
    }
}

impl File {
    fn to_gob(&self) -> Value {
        Out::new()
            .put("ID", Value::Int(self.id))
            .put("Name", s(&self.name))
            .put("Perm", Value::Uint(self.perm))
            .put("Data", Value::Bytes(self.data.clone()))
            .put("Offset", Value::Int(self.offset))
            .put("EOF", Value::Bool(self.eof))
            .done()
    }

    fn from_gob(v: &Value) -> Result<File, GobError> {
        let f = Fields::of(v, "File")?;
        Ok(File {
            id: f.int("ID")?,
            name: f.string("Name")?,
            perm: f.uint("Perm")?,
            data: f.bytes("Data")?,
            offset: f.int("Offset")?,
            eof: f.bool("EOF")?,
        })
    }
}

/// The byte-swapped form of a UUID some QEMU/SMBIOS versions show the
/// guest: the first three groups with their bytes reversed. Its own
/// inverse. `None` for anything not shaped like a UUID.
pub fn unmangle(uuid: &str) -> Option<String> {
    let u = uuid.trim().to_ascii_lowercase();
    let b = u.as_bytes();
    let shaped = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
    if !shaped {
        return None;
    }
    let pairs = |s: &str| -> String {
        let v: Vec<&str> = (0..s.len()).step_by(2).map(|i| &s[i..i + 2]).collect();
        v.into_iter().rev().collect()
    };
    Some(format!(
        "{}-{}-{}-{}",
        pairs(&u[0..8]),
        pairs(&u[9..13]),
        pairs(&u[14..18]),
        &u[19..]
    ))
}

/// Go's architecture names, which `cc clients` and filters use.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmangle_swaps_the_first_three_groups() {
        let u = "9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc";
        let m = unmangle(u).unwrap();
        assert_eq!(m, "a3e23191-6bad-384f-b5ba-5ff2b19e32dc");
        assert_eq!(unmangle(&m).unwrap(), u);
        assert_eq!(
            unmangle("9131E2A3-AD6B-4F38-B5BA-5FF2B19E32DC\n").unwrap(),
            m
        );
        assert!(unmangle("not-a-uuid").is_none());
        assert!(unmangle("9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dX").is_none());
    }
}
