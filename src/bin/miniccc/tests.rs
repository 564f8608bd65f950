//! The agent's pure parts: its flags, and the command socket's stream as
//! minimega's Go agent writes it; then `-tag` against a running agent's
//! socket.

use super::local::{self, In, Out, MODE_PIPE, MODE_TAG};
use super::*;

fn parse(args: &[&str]) -> Result<Mode, String> {
    flags(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
}

#[test]
fn tag_takes_a_key_and_a_value_after_the_flags() {
    let Ok(Mode::Tag { path, key, value }) = parse(&["-tag", "foo", "bar"]) else {
        panic!()
    };
    assert_eq!(
        (path, key, value),
        ("/tmp/miniccc".into(), "foo".into(), "bar".into())
    );
    // Go's flags: two dashes, a value after `=`, other flags before.
    let Ok(Mode::Tag { path, key, .. }) = parse(&["--path", "/run/x", "-tag=true", "k", "v"])
    else {
        panic!()
    };
    assert_eq!((path, key), ("/run/x".into(), "k".into()));
    let Ok(Mode::Tag { key, .. }) = parse(&["-tag", "--", "-k", "v"]) else {
        panic!()
    };
    assert_eq!(key, "-k");
    for bad in [&["-tag"][..], &["-tag", "k"], &["-tag", "k", "v", "w"]] {
        assert_eq!(parse(bad).err().unwrap(), "-tag takes KEY VALUE", "{bad:?}");
    }
    assert!(parse(&["-tag=maybe", "k", "v"]).is_err());
}

#[test]
fn pipe_names_a_pipe_and_comes_before_tag() {
    let Ok(Mode::Pipe { path, name }) = parse(&["-pipe", "p1"]) else {
        panic!()
    };
    assert_eq!((path, name), ("/tmp/miniccc".into(), "p1".into()));
    assert!(matches!(parse(&["-tag", "-pipe=p"]), Ok(Mode::Pipe { .. })));
    assert_eq!(
        parse(&["-pipe", "p", "extra"]).err().unwrap(),
        "unexpected argument extra"
    );
    assert_eq!(parse(&["-pipe"]).err().unwrap(), "flag -pipe needs a value");
}

#[test]
fn the_agents_own_flags_are_unchanged() {
    let Ok(Mode::Agent(f)) = parse(&["-serial", "/dev/virtio-ports/cc", "-level", "debug"]) else {
        panic!()
    };
    assert!(matches!(f.target, Target::Serial(ref s) if s == "/dev/virtio-ports/cc"));
    assert!(f.debug);
    let Ok(Mode::Agent(f)) = parse(&["-parent", "10.0.0.1", "-port=9003", "-uuid", "ABC"]) else {
        panic!()
    };
    assert!(matches!(f.target, Target::Tcp(ref a) if a == "10.0.0.1:9003"));
    assert_eq!(f.uuid.as_deref(), Some("abc"));
    assert!(matches!(parse(&["-version"]), Ok(Mode::Version)));
    assert_eq!(parse(&["-h"]).err().unwrap(), "");
    assert_eq!(
        parse(&["-bogus", "1"]).err().unwrap(),
        "flag provided but not defined: -bogus"
    );
    assert_eq!(
        parse(&["-serial", "x", "stray"]).err().unwrap(),
        "unexpected argument stray"
    );
    assert!(parse(&[]).is_err());
}

/// What Go's encoding/gob writes for `Encode(0); Encode("foo");
/// Encode("bar")` (the stock `miniccc -tag foo bar`) and for
/// `Encode(1); Encode("p1"); Encode("line\n")` (its `-pipe p1`), recorded
/// from Go 1.19 and 1.23 alike: builtin types need no definitions.
const GO_TAG: &[u8] = &[
    0x03, 0x04, 0x00, 0x00, 0x06, 0x0c, 0x00, 0x03, b'f', b'o', b'o', 0x06, 0x0c, 0x00, 0x03, b'b',
    b'a', b'r',
];
const GO_PIPE: &[u8] = &[
    0x03, 0x04, 0x00, 0x02, 0x05, 0x0c, 0x00, 0x02, b'p', b'1', 0x08, 0x0c, 0x00, 0x05, b'l', b'i',
    b'n', b'e', b'\n',
];

#[test]
fn the_socket_stream_is_what_go_writes() {
    let mut tx = Out::new(Vec::new());
    tx.int(MODE_TAG).unwrap();
    tx.string("foo").unwrap();
    tx.string("bar").unwrap();
    let mut tx2 = Out::new(Vec::new());
    tx2.int(MODE_PIPE).unwrap();
    tx2.string("p1").unwrap();
    tx2.string("line\n").unwrap();
    assert_eq!(
        (tx.into_inner(), tx2.into_inner()),
        (GO_TAG.to_vec(), GO_PIPE.to_vec())
    );

    let mut rx = In::new(GO_PIPE);
    assert_eq!(rx.int().unwrap(), MODE_PIPE);
    assert_eq!(rx.string().unwrap(), "p1");
    assert_eq!(rx.string().unwrap(), "line\n");
    assert!(rx.next().unwrap().is_none());
    // Cut short, or the wrong kind of value: errors, not panics.
    let mut rx = In::new(&GO_TAG[..9]);
    assert_eq!(rx.int().unwrap(), MODE_TAG);
    assert!(matches!(rx.string(), Err(local::LocalError::Ended)));
    assert!(matches!(
        In::new(GO_TAG).string(),
        Err(local::LocalError::Unexpected("a string"))
    ));
}

#[test]
fn a_tag_reaches_the_running_agent_and_waits_for_a_heartbeat() {
    let dir = std::env::temp_dir().join(format!("miniccc-tag-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let agent = Agent::new("uuid".into(), dir.clone(), false);
    // A stale socket from an earlier agent is replaced.
    std::fs::write(local::socket(&dir), "stale").unwrap();
    local::listen(&agent).unwrap();
    local::tag(&dir, "foo", "bar").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while agent.tags.lock().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Not connected: the tag waits for the handshake's heartbeat.
    assert_eq!(
        *agent.tags.lock().unwrap(),
        BTreeMap::from([("foo".to_string(), "bar".to_string())])
    );
    assert!(local::tag(&dir.join("nowhere"), "k", "v").is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
