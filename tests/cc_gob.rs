//! The cc gob codec against real `encoding/gob`: the Go fixture under
//! tests/gob (standard library only, Go from Debian's golang-go) encodes
//! and decodes struct definitions mirroring the miniccc messages. Our
//! bytes must decode in Go to exactly what Go's own bytes decode to, and a
//! fresh Go encoding must decode in Rust to the sample (so the committed
//! tests/data/cc/go-messages.gob, which the unit tests read, stays honest).

mod common;

use minimega::cc::{gob, ron};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

include!("data/cc/sample.rs");

/// Builds the fixture once per run, offline, with its caches under target/.
fn fixture() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let root = common::project_root();
        let go = root.join("target/go");
        let out = go.join("gobfixture");
        let status = Command::new("go")
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
            .expect("go (install golang-go: scripts/deps.sh)");
        assert!(status.success(), "go build of tests/gob failed");
        out
    })
    .clone()
}

fn go_raw(mode: &str, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(fixture())
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
        "gobfixture {mode}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn go(mode: &str, input: &[u8]) -> String {
    String::from_utf8(go_raw(mode, input)).unwrap()
}

#[test]
fn our_encoding_decodes_in_go_as_gos_own_does() {
    let go_bytes = go_raw("encode", b"");
    let ours = encode_stream(&sample());
    let from_go = go("decode", &go_bytes);
    let from_us = go("decode", &ours);
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

#[test]
fn a_fresh_go_encoding_decodes_to_the_sample() {
    let fresh = Command::new(fixture()).arg("encode").output().unwrap();
    assert!(fresh.status.success());
    assert_eq!(decode_stream(&fresh.stdout).unwrap(), sample());
    // The committed copy the unit tests read is real Go output too (map
    // order may differ between runs, so compare what it means).
    let committed =
        std::fs::read(common::project_root().join("tests/data/cc/go-messages.gob")).unwrap();
    assert_eq!(decode_stream(&committed).unwrap(), sample());
}

#[test]
fn many_messages_of_one_stream_decode_in_go() {
    // One encoder, many messages: the type definitions go out once, and
    // Go must still decode every later message against them.
    let mut many = Vec::new();
    for _ in 0..50 {
        many.extend(sample());
    }
    let out = go("decode", &encode_stream(&many));
    assert_eq!(
        out.lines().filter(|l| l.starts_with('{')).count(),
        many.len()
    );
}
