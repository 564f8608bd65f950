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

/// `cc mount` as the daemon drives it: OPEN, then 9P2000 requests in
/// DATA pieces cut anywhere; each answer comes back as one DATA message.
#[test]
fn ufs_serves_the_guests_files_over_data_messages() {
    use minimega::cc::ron::ufs;
    use minimega::ninep::wire::{self, om, Msg, NOFID, NOTAG};

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello"), "hi there").unwrap();
    let agent = Agent::new("uuid-1".into(), dir.path().to_path_buf(), false);
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    *agent.link.lock().unwrap() = Some(Arc::new(Link::from_fd(a.into()).unwrap()));
    let daemon = Link::from_fd(b.into()).unwrap();
    let mut from_agent = Reader::new(&daemon);
    let ufs_msg = |mode: i64, tunnel: Vec<u8>| Message {
        kind: ron::kind::UFS,
        ufs_mode: mode,
        tunnel,
        ..Message::default()
    };
    // Answers until `n` frames are whole.
    let mut answers = |n: usize| {
        let mut bytes = Vec::new();
        let mut out = Vec::new();
        while out.len() < n {
            let m = from_agent.next(Duration::from_secs(10)).unwrap();
            assert_eq!(
                (m.kind, m.ufs_mode, m.uuid.as_str()),
                (ron::kind::UFS, ufs::DATA, "uuid-1")
            );
            bytes.extend(m.tunnel);
            while let Ok(Some(len)) = wire::frame_len(&bytes, 1 << 20) {
                if bytes.len() < len {
                    break;
                }
                out.push(wire::decode(&bytes[..len]).unwrap().1);
                bytes.drain(..len);
            }
        }
        out
    };
    let mut path: Vec<String> = dir
        .path()
        .components()
        .skip(1)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    path.push("hello".into());
    let requests = [
        (
            NOTAG,
            Msg::Tversion {
                msize: 8192,
                version: "9P2000".into(),
            },
        ),
        (
            1,
            Msg::Tattach {
                fid: 0,
                afid: NOFID,
                uname: "root".into(),
                aname: "".into(),
            },
        ),
        (
            2,
            Msg::Twalk {
                fid: 0,
                newfid: 1,
                wnames: path.clone(),
            },
        ),
        (3, Msg::Tstat { fid: 1 }),
        (
            4,
            Msg::Topen {
                fid: 1,
                mode: om::READ,
            },
        ),
        (
            5,
            Msg::Tread {
                fid: 1,
                offset: 3,
                count: 100,
            },
        ),
    ];
    let stream: Vec<u8> = requests
        .iter()
        .flat_map(|(tag, m)| wire::encode(*tag, m).unwrap())
        .collect();
    agent.ufs.message(&agent, &ufs_msg(ufs::OPEN, vec![]));
    // A second OPEN while one runs is ignored.
    agent.ufs.message(&agent, &ufs_msg(ufs::OPEN, vec![]));
    for piece in [&stream[..5], &stream[5..40], &stream[40..]] {
        agent
            .ufs
            .message(&agent, &ufs_msg(ufs::DATA, piece.to_vec()));
    }
    let got = answers(6);
    assert!(matches!(&got[0], Msg::Rversion { msize: 8192, version } if version == "9P2000"));
    assert!(matches!(&got[1], Msg::Rattach { qid } if qid.is_dir()));
    assert!(matches!(&got[2], Msg::Rwalk { wqids } if wqids.len() == path.len()));
    assert!(matches!(&got[3], Msg::Rstat { stat } if stat.name == "hello" && stat.length == 8));
    assert!(matches!(&got[4], Msg::Ropen { .. }));
    assert_eq!(
        got[5],
        Msg::Rread {
            data: b"there".to_vec()
        }
    );
    // CLOSE ends it; a new OPEN starts afresh (the old fids are gone).
    agent.ufs.message(&agent, &ufs_msg(ufs::CLOSE, vec![]));
    agent
        .ufs
        .message(&agent, &ufs_msg(ufs::DATA, b"dropped".to_vec()));
    agent.ufs.message(&agent, &ufs_msg(ufs::OPEN, vec![]));
    let again = [(6, Msg::Tstat { fid: 1 }), requests[0].clone()];
    for (tag, m) in again {
        let frame = wire::encode(tag, &m).unwrap();
        agent.ufs.message(&agent, &ufs_msg(ufs::DATA, frame));
    }
    let got = answers(2);
    assert_eq!(
        got[0],
        Msg::Rerror {
            ename: "unknown fid".into()
        }
    );
    assert!(matches!(&got[1], Msg::Rversion { .. }));
    assert!(agent.ufs.close());
    assert!(!agent.ufs.close());
}
