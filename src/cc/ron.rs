//! The messages of minimega's `ron` protocol, field for field as the Go
//! agent and server send them (names and order matter to gob), and their
//! gob form, both written by `gob_structs!` from one declaration. Pure.

use super::gob::{gob_structs, GobStruct, Text, Ty};
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

/// `Message.UfsMode`: `cc mount`'s 9P2000 stream. The server OPENs (the
/// agent starts its file server), both sides send the stream as DATA,
/// and the server CLOSEs.
pub mod ufs {
    pub const OPEN: i64 = 0;
    pub const CLOSE: i64 = 1;
    pub const DATA: i64 = 2;
}

/// The message version both sides send; the server refuses agents without
/// one (they predate server heartbeats and would choke on them).
pub const VERSION: &str = "v1";

/// Bytes of file data per FILE message, as minimega sends them.
pub const PART_SIZE: usize = 100 * 1024;

gob_structs! {
    /// One message, either way. Which fields matter depends on `kind`.
    #[derive(Debug, Clone, Default, PartialEq)]
    pub struct Message => "Message" {
        pub kind: i64 => "Type",
        pub uuid: String => "UUID",
        pub error: String => "Error",
        pub commands: BTreeMap<i64, Command> => "Commands",
        pub client: Option<Client> => "Client",
        pub file: Option<File> => "File",
        pub tunnel: Vec<u8> => "Tunnel",
        pub pipe: String => "Pipe",
        pub pipe_mode: i64 => "PipeMode",
        pub pipe_data: String => "PipeData",
        pub ufs_mode: i64 => "UfsMode",
        pub version: String => "Version",
    }

    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct Command => "Command" {
        pub id: i64 => "ID",
        pub background: bool => "Background",
        pub command: Vec<String> => "Command",
        pub files_send: Vec<String> => "FilesSend",
        pub files_recv: Vec<String> => "FilesRecv",
        pub conn_test: Option<ConnTest> => "ConnTest",
        pub pid: i64 => "PID",
        pub kill_all: String => "KillAll",
        /// minimega's `*Level`.
        pub level: Option<i64> => "Level",
        pub filter: Option<Filter> => "Filter",
        pub checked_in: Vec<String> => "CheckedIn",
        pub prefix: String => "Prefix",
        pub once: bool => "Once",
        pub sent: bool => "Sent",
        pub stdin: String => "Stdin",
        pub stdout: String => "Stdout",
        pub stderr: String => "Stderr",
    }

    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct Filter => "Filter" {
        pub uuid: String => "UUID",
        pub hostname: String => "Hostname",
        pub arch: String => "Arch",
        pub os: String => "OS",
        pub mac: String => "MAC",
        pub ip: String => "IP",
        pub tags: BTreeMap<String, String> => "Tags",
    }

    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct ConnTest => "ConnTest" {
        pub endpoint: String => "Endpoint",
        /// Nanoseconds (Go's time.Duration).
        pub wait: i64 => "Wait",
        pub packet: Vec<u8> => "Packet",
    }

    #[derive(Debug, Clone, Default, PartialEq)]
    pub struct Client => "Client" {
        pub uuid: String => "UUID",
        pub arch: String => "Arch",
        pub os: String => "OS",
        pub version: String => "Version",
        pub hostname: String => "Hostname",
        pub ips: Vec<String> => "IPs",
        pub macs: Vec<String> => "MACs",
        pub processes: BTreeMap<i64, Process> => "Processes",
        pub tags: BTreeMap<String, String> => "Tags",
        pub responses: Vec<Response> => "Responses",
        pub last_command_id: i64 => "LastCommandID",
    }

    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct Process => "Process" {
        pub pid: i64 => "PID",
        pub command: Vec<String> => "Command",
    }

    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct Response => "Response" {
        pub id: i64 => "ID",
        /// Bytes: a command's output need not be text.
        pub stdout: Vec<u8> => "Stdout" as Text,
        pub stderr: Vec<u8> => "Stderr" as Text,
        pub exit_code: i64 => "ExitCode",
        pub record_exit_code: bool => "RecordExitCode",
    }

    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct File => "File" {
        pub id: i64 => "ID",
        pub name: String => "Name",
        /// os.FileMode: permission bits.
        pub perm: u64 => "Perm",
        pub data: Vec<u8> => "Data",
        pub offset: i64 => "Offset",
        pub eof: bool => "EOF",
    }
}

/// What both sides send and expect at the top of the stream.
pub static T_MESSAGE: Ty = Ty::Struct(<Message as GobStruct>::STRUCT);

impl Message {
    pub fn heartbeat() -> Message {
        Message {
            kind: kind::HEARTBEAT,
            version: VERSION.into(),
            ..Message::default()
        }
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
    use crate::cc::gob::{GobError, StructTy, Value};

    /// Each field's Go name and Go type, as Go's reflection spells it.
    fn go_fields(s: &StructTy) -> String {
        let f: Vec<String> = s
            .fields
            .iter()
            .map(|(n, t)| format!("{n} {}", t.key()))
            .collect();
        f.join("; ")
    }

    #[test]
    fn the_declarations_give_gos_type_table() {
        assert_eq!(
            go_fields(Message::STRUCT),
            "Type int; UUID string; Error string; Commands map[int]*Command; \
             Client Client; File File; Tunnel []uint8; Pipe string; PipeMode int; \
             PipeData string; UfsMode int; Version string"
        );
        assert_eq!(
            go_fields(Command::STRUCT),
            "ID int; Background bool; Command []string; FilesSend []string; \
             FilesRecv []string; ConnTest ConnTest; PID int; KillAll string; Level int; \
             Filter Filter; CheckedIn []string; Prefix string; Once bool; Sent bool; \
             Stdin string; Stdout string; Stderr string"
        );
        assert_eq!(
            go_fields(Client::STRUCT),
            "UUID string; Arch string; OS string; Version string; Hostname string; \
             IPs []string; MACs []string; Processes map[int]*Process; \
             Tags map[string]string; Responses []*Response; LastCommandID int"
        );
        assert_eq!(
            go_fields(Response::STRUCT),
            "ID int; Stdout string; Stderr string; ExitCode int; RecordExitCode bool"
        );
        assert_eq!(
            go_fields(File::STRUCT),
            "ID int; Name string; Perm uint; Data []uint8; Offset int; EOF bool"
        );
        assert_eq!(T_MESSAGE.key(), "Message");
    }

    #[test]
    fn reading_is_as_lenient_as_gos_and_no_more() {
        let msg = |fields: Vec<(&str, Value)>| {
            Value::Struct(
                fields
                    .into_iter()
                    .map(|(n, v)| (n.to_string(), v))
                    .collect(),
            )
        };
        // Absent is zero; any integer kind fits; unknown fields are skipped.
        let m = Message::from_gob(&msg(vec![
            ("Type", Value::Uint(6)),
            ("Surprise", Value::Float(1.5)),
            ("Tunnel", Value::str("as a string")),
        ]))
        .unwrap();
        assert_eq!((m.kind, m.tunnel.as_slice()), (6, &b"as a string"[..]));
        assert_eq!(m.client, None);
        // A *Level of 0 is not sent; 0 reads as None.
        let c = Command::from_gob(&msg(vec![("Level", Value::Int(0))])).unwrap();
        assert_eq!(c.level, None);
        assert_eq!(
            Command::from_gob(&msg(vec![("Level", Value::Int(2))]))
                .unwrap()
                .level,
            Some(2)
        );
        // The wrong kind, or a number that does not fit, is an error.
        assert_eq!(
            Message::from_gob(&Value::Int(1)),
            Err(GobError::Mismatch {
                field: "Message",
                want: "a struct"
            })
        );
        assert_eq!(
            Message::from_gob(&msg(vec![("UUID", Value::Int(1))])),
            Err(GobError::Mismatch {
                field: "UUID",
                want: "a string"
            })
        );
        assert_eq!(
            File::from_gob(&msg(vec![("Perm", Value::Int(-1))])),
            Err(GobError::IntOverflow)
        );
        assert_eq!(
            Message::from_gob(&msg(vec![("Type", Value::Uint(u64::MAX))])),
            Err(GobError::IntOverflow)
        );
        // Zero fields are left out of what we send, structs never.
        let hb = Message::heartbeat().to_gob();
        assert_eq!(
            hb,
            msg(vec![("Type", Value::Int(6)), ("Version", Value::str("v1"))])
        );
        let with_file = Message {
            file: Some(File::default()),
            ..Message::default()
        };
        assert_eq!(with_file.to_gob(), msg(vec![("File", msg(vec![]))]));
    }

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
