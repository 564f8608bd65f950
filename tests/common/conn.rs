//! A client of minimega's command socket written here from the protocol
//! (not the project's own client): request objects out, answer objects in.

use super::Daemon;
use serde_json::{json, Value};
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

type Objects =
    serde_json::StreamDeserializer<'static, serde_json::de::IoRead<BufReader<UnixStream>>, Value>;

/// A protocol client: writes request objects, reads answer objects.
pub struct Conn {
    pub stream: UnixStream,
    objects: Objects,
}

impl Conn {
    pub fn open(path: &Path) -> Conn {
        let stream =
            UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
        // Only so a broken daemon fails the test instead of hanging it.
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Conn {
            stream,
            objects: serde_json::Deserializer::from_reader(reader).into_iter(),
        }
    }

    pub fn to(d: &Daemon) -> Conn {
        Conn::open(&d.base.join("minimega"))
    }

    pub fn send(&mut self, v: &Value) {
        let mut bytes = serde_json::to_vec(v).unwrap();
        bytes.push(b'\n');
        self.stream.write_all(&bytes).unwrap();
    }

    /// The next object, or None once the daemon has hung up.
    pub fn next(&mut self) -> Option<Value> {
        match self.objects.next() {
            Some(Ok(v)) => Some(v),
            Some(Err(e)) if e.is_io() || e.is_eof() => None,
            Some(Err(e)) => panic!("daemon sent invalid JSON: {e}"),
            None => None,
        }
    }

    /// Runs a command the way minimega's Go client does: every object up
    /// to the one with More false.
    pub fn run(&mut self, command: &str) -> Vec<Value> {
        self.send(&json!({"Command": command, "Suggest": "", "PlumbPipe": ""}));
        let mut out = Vec::new();
        loop {
            let v = self
                .next()
                .unwrap_or_else(|| panic!("hung up during `{command}` after {out:?}"));
            let more = v["More"] == true;
            out.push(v);
            if !more {
                return out;
            }
        }
    }

    /// A command answered by exactly one object.
    pub fn one(&mut self, command: &str) -> Value {
        let mut all = self.run(command);
        assert_eq!(all.len(), 1, "`{command}` answered {all:?}");
        all.pop().unwrap()
    }

    pub fn suggest(&mut self, partial: &str) -> Vec<String> {
        self.send(&json!({"Command": "", "Suggest": partial, "PlumbPipe": ""}));
        let v = self.next().expect("an answer to Suggest");
        serde_json::from_value(v.get("Suggest").cloned().unwrap_or(json!([]))).unwrap()
    }
}
