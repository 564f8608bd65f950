//! The cc gob codec against real `encoding/gob`: the Go fixture under
//! tests/gob (standard library only) encodes and decodes struct
//! definitions mirroring the miniccc messages, built with each Go that
//! scripts/deps.sh installs: Debian's own 1.19 (golang-go) and 1.23 from
//! bookworm-backports (golang-1.23-go), whose encoding/gob numbers types
//! differently (its first type is 64, 1.19's is 65). With each, our bytes
//! must decode in Go to exactly what Go's own bytes decode to, and a fresh
//! Go encoding must decode in Rust to the sample (so the committed
//! tests/data/cc/go1.*-messages.gob, which the unit tests read, stay
//! honest). A missing Go fails its tests: it is what they are about.

mod common;

use minimega::cc::{gob, minitunnel, ron};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

include!("data/cc/sample.rs");
include!("data/cc/tunnel_sample.rs");

/// One Go toolchain the fixture is built with.
struct Go {
    /// `go version`'s spelling, e.g. "go1.23".
    version: &'static str,
    bin: &'static str,
    /// The committed encoding this Go wrote.
    committed: &'static str,
    /// Its encoding of the minitunnel sample.
    tunnel: &'static str,
    /// The id it gives the first type of a stream.
    first_id: i64,
    built: OnceLock<PathBuf>,
}

static GO_1_19: Go = Go {
    version: "go1.19",
    bin: "/usr/lib/go-1.19/bin/go",
    committed: "tests/data/cc/go1.19-messages.gob",
    tunnel: "tests/data/cc/go1.19-tunnel.gob",
    first_id: 65,
    built: OnceLock::new(),
};

static GO_1_23: Go = Go {
    version: "go1.23",
    bin: "/usr/lib/go-1.23/bin/go",
    committed: "tests/data/cc/go1.23-messages.gob",
    tunnel: "tests/data/cc/go1.23-tunnel.gob",
    first_id: 64,
    built: OnceLock::new(),
};

impl Go {
    /// Builds the fixture once per run, offline, with its caches under
    /// target/.
    fn fixture(&self) -> &Path {
        self.built.get_or_init(|| {
            let root = common::project_root();
            let go = root.join("target/go").join(self.version);
            let out = go.join("gobfixture");
            let version = Command::new(self.bin)
                .args(["env", "GOVERSION"])
                .env("GOTOOLCHAIN", "local")
                .output()
                .unwrap_or_else(|e| panic!("{} {e}: install it with scripts/deps.sh", self.bin));
            let version = String::from_utf8_lossy(&version.stdout);
            assert!(
                version.trim() == self.version
                    || version.starts_with(&format!("{}.", self.version)),
                "{} is {version}, not {}",
                self.bin,
                self.version
            );
            let status = Command::new(self.bin)
                .args(["build", "-o"])
                .arg(&out)
                .arg(".")
                .current_dir(root.join("tests/gob"))
                .env("GOCACHE", go.join("cache"))
                .env("GOPATH", go.join("path"))
                .env("GOPROXY", "off")
                .env("GOFLAGS", "-mod=mod")
                .env("GOTOOLCHAIN", "local")
                .status()
                .unwrap();
            assert!(
                status.success(),
                "{} build of tests/gob failed",
                self.version
            );
            out
        })
    }

    fn run_raw(&self, mode: &str, input: &[u8]) -> Vec<u8> {
        let mut child = Command::new(self.fixture())
            .arg(mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "gobfixture ({}) {mode}: {}",
            self.version,
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn run(&self, mode: &str, input: &[u8]) -> String {
        String::from_utf8(self.run_raw(mode, input)).unwrap()
    }
}

/// The id a stream's first message defines.
fn first_defined(stream: &[u8]) -> i64 {
    let (head, _) = gob::frame_len(stream).unwrap().unwrap();
    // The body starts with int(-id), which gob folds to the odd uint
    // 2*id - 1: for ids this small one byte, or 0xff and one byte.
    let u = match stream[head] {
        0xff => stream[head + 1] as i64,
        b => b as i64,
    };
    assert_eq!(u % 2, 1, "the first message is not a type definition");
    (u + 1) / 2
}

fn our_encoding_decodes_in_go_as_gos_own_does(go: &Go) {
    let go_bytes = go.run_raw("encode", b"");
    let ours = encode_stream(&sample());
    let from_go = go.run("decode", &go_bytes);
    let from_us = go.run("decode", &ours);
    assert_eq!(from_us, from_go);
    assert!(
        from_us.contains(r#"response 3 stdout "bin\x00ary\xff\xfe""#),
        "{from_us}"
    );
    assert_eq!(
        from_us.lines().filter(|l| l.starts_with('{')).count(),
        sample().len()
    );
}

fn a_fresh_go_encoding_decodes_to_the_sample(go: &Go) {
    let fresh = Command::new(go.fixture()).arg("encode").output().unwrap();
    assert!(fresh.status.success());
    assert_eq!(decode_stream(&fresh.stdout).unwrap(), sample());
    // The committed copy the unit tests read is real Go output too, with
    // this Go's numbering (map order may differ between runs, so compare
    // what it means).
    let committed = std::fs::read(common::project_root().join(go.committed)).unwrap();
    assert_eq!(decode_stream(&committed).unwrap(), sample());
    assert_eq!(first_defined(&fresh.stdout), go.first_id);
    assert_eq!(first_defined(&committed), go.first_id);
}

fn many_messages_of_one_stream_decode_in_go(go: &Go) {
    // One encoder, many messages: the type definitions go out once, and
    // Go must still decode every later message against them.
    let mut many = Vec::new();
    for _ in 0..50 {
        many.extend(sample());
    }
    let out = go.run("decode", &encode_stream(&many));
    assert_eq!(
        out.lines().filter(|l| l.starts_with('{')).count(),
        many.len()
    );
}

/// minitunnel's messages (`cc tunnel`): no maps, so Go's bytes are the
/// same every run and the committed copy must equal a fresh one; ours
/// decode in Go to the sample.
fn tunnel_messages_agree_with_go(go: &Go) {
    let fresh = go.run_raw("tunnel-encode", b"");
    let committed = std::fs::read(common::project_root().join(go.tunnel)).unwrap();
    assert_eq!(fresh, committed);
    assert_eq!(first_defined(&fresh), go.first_id);
    let mut r = minitunnel::Reader::new();
    assert_eq!(r.push(&fresh).unwrap(), tunnel_sample());
    let mut w = minitunnel::Writer::new();
    let ours: Vec<u8> = tunnel_sample()
        .iter()
        .flat_map(|m| w.encode(m).unwrap())
        .collect();
    let want = go.run("tunnel-sample", b"");
    assert_eq!(go.run("tunnel-decode", &ours), want);
    assert_eq!(want.lines().count(), tunnel_sample().len());
}

/// The same checks against each Go.
macro_rules! with_go {
    ($($module:ident: $go:ident),* $(,)?) => {$(
        mod $module {
            #[test]
            fn our_encoding_decodes_in_go_as_gos_own_does() {
                super::our_encoding_decodes_in_go_as_gos_own_does(&super::$go);
            }

            #[test]
            fn a_fresh_go_encoding_decodes_to_the_sample() {
                super::a_fresh_go_encoding_decodes_to_the_sample(&super::$go);
            }

            #[test]
            fn many_messages_of_one_stream_decode_in_go() {
                super::many_messages_of_one_stream_decode_in_go(&super::$go);
            }

            #[test]
            fn tunnel_messages_agree_with_go() {
                super::tunnel_messages_agree_with_go(&super::$go);
            }
        }
    )*};
}

with_go!(go_1_19: GO_1_19, go_1_23: GO_1_23);
