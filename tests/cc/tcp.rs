//! Agents over TCP on this host, our own and hand-written ones, against a
//! real daemon: bad agents, tags, pipes, `cc listen`.

use super::*;

/// A handshake message for `uuid`, as an agent sends it.
fn hello(uuid: &str) -> Vec<u8> {
    hello_version(uuid, ron::VERSION)
}

fn hello_version(uuid: &str, version: &str) -> Vec<u8> {
    gob::Encoder::new()
        .encode(&ron::T_MESSAGE, &hello_msg(uuid, version).to_gob())
        .unwrap()
}

fn hello_msg(uuid: &str, version: &str) -> ron::Message {
    ron::Message {
        kind: ron::kind::CLIENT,
        uuid: uuid.into(),
        version: version.into(),
        client: Some(ron::Client {
            uuid: uuid.into(),
            hostname: "fake".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn connect(port: u16, magic: bool) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    if magic {
        s.write_all(b"RON").unwrap();
        let mut back = [0u8; 3];
        s.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"RON");
    }
    s
}

/// Reads until the daemon closes the connection (it must).
fn closed(mut s: TcpStream) {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("the daemon kept a bad connection open: {e}"),
        }
    }
}

/// Our agent over TCP on this host, for the VM of `uuid`; killed on drop.
fn tcp_agent(port: u16, uuid: &str, path: &Path) -> Agent {
    Agent(
        std::process::Command::new(AGENT)
            .args(["-parent", "127.0.0.1", "-port", &port.to_string()])
            .args(["-uuid", uuid])
            .arg("-path")
            .arg(path)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

struct Agent(std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn bad_agents_are_dropped_with_a_log_line_and_stall_no_one() {
    let bus = Bus::start();
    let daemon = Daemon::start(&bus);
    let d = &daemon;
    let _qemus = VmGuard {
        base: d.base.clone(),
    };
    d.ok("vm config memory 64");
    d.ok("vm launch kvm good,silent");
    let uuid = uuids(d);
    let port = free_port();
    d.ok(&format!("cc listen {port}"));
    assert!(fails(d, &format!("cc listen {port}")).contains("already listening"));

    // Our agent over TCP, on this host, for VM `good`.
    let _agent = tcp_agent(port, &uuid["good"], &d.scratch.path.join("agent"));
    wait_for("the good agent", ANSWER, || (clients(d) == 1).then_some(()));

    // A peer that sends no magic, a bad frame after it, a huge frame, a
    // client naming no VM of ours: each dropped, with a log line.
    let mut s = connect(port, false);
    // The daemon may hang up before all of it is written.
    let _ = s.write_all(&vec![0x42u8; 70_000]);
    closed(s);
    let mut s = connect(port, true);
    let _ = s.write_all(&[0x06, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    closed(s);
    let mut s = connect(port, true);
    let _ = s.write_all(&[0xfc, 0x40, 0x00, 0x00, 0x00, 0x01]);
    closed(s);
    let mut s = connect(port, true);
    let _ = s.write_all(&hello("00000000-1111-2222-3333-444444444444"));
    closed(s);
    // An agent too old to send a message version.
    let mut s = connect(port, true);
    let _ = s.write_all(&hello_version(&uuid["silent"], ""));
    closed(s);
    // One that connects and never speaks holds only its own connection.
    let _lurker = connect(port, false);
    // One that shakes hands, then falls silent: dropped after 30 s.
    let started = Instant::now();
    let mut quiet = connect(port, true);
    // (naming itself by the byte-swapped form of its VM's UUID, as some
    // QEMU versions show it to the guest)
    let swapped = ron::unmangle(&uuid["silent"]).unwrap();
    quiet.write_all(&hello(&swapped)).unwrap();
    wait_for("the silent client", ANSWER, || {
        (clients(d) == 2).then_some(())
    });

    assert!(rows(d, "cc clients")
        .iter()
        .any(|r| r["uuid"] == uuid["silent"]));
    // Meanwhile the good agent answers at once.
    let id = post(d, "cc exec echo ok");
    wait_answers(d, id, 1);
    assert_eq!(
        d.ok(&format!(".annotate false cc responses {id} raw")),
        "ok"
    );
    wait_for("the silent client to be dropped", ANSWER, || {
        (clients(d) == 1).then_some(())
    });
    assert!(started.elapsed() >= Duration::from_secs(25));
    let log = d.log_text();
    for line in [
        "no RON handshake in the first 65536 bytes; dropping the connection",
        "malformed handshake",
        "frame of 1073741824 bytes exceeds the limit",
        "unregistered client 00000000-1111-2222-3333-444444444444",
        "miniccc client too old (no message version)",
        "byte-swapped UUID",
        "silent for 30s; dropping it",
    ] {
        assert!(log.contains(line), "no `{line}` in the log:\n{log}");
    }

    // cc send: a missing file, or one outside the files directory, is a
    // clear error and makes no command.
    std::fs::create_dir_all(d.base.join("files")).unwrap();
    std::fs::write(d.scratch.path.join("secret"), "x").unwrap();
    let before = rows(d, "cc commands").len();
    assert_eq!(fails(d, "cc send nope.txt"), "E: no such file: nope.txt");
    assert_eq!(
        fails(d, "cc send ../secret"),
        "E: path `../secret` leaves its directory"
    );
    assert!(fails(d, "cc send /etc/passwd").starts_with("E: can only send files from "));
    assert_eq!(rows(d, "cc commands").len(), before);
    assert!(fails(d, "cc filter nonsense").contains("malformed id=value pair: nonsense"));
    d.ok("vm kill all");
}

/// Tags an agent sends become its VM's `vm info` tags: with a heartbeat,
/// and (unlike minimega, which drops those) with its handshake, which
/// carries the tags an agent kept while it was away.
#[test]
fn an_agents_tags_are_its_vms() {
    let bus = Bus::start();
    let daemon = Daemon::start(&bus);
    let d = &daemon;
    let _qemus = VmGuard {
        base: d.base.clone(),
    };
    d.ok("vm config memory 64");
    d.ok("vm launch kvm tagged");
    let u = uuids(d)["tagged"].clone();
    let port = free_port();
    d.ok(&format!("cc listen {port}"));
    let mut s = Outbox {
        s: connect(port, true),
        enc: gob::Encoder::new(),
    };
    let with_tag = |k: &str, v: &str| {
        let mut m = hello_msg(&u, ron::VERSION);
        m.client.as_mut().unwrap().tags = BTreeMap::from([(k.to_string(), v.to_string())]);
        m
    };
    s.send(&with_tag("early", "1"));
    wait_for("the handshake's tag", ANSWER, || {
        (tags_of(d, "tagged") == r#"{"early":"1"}"#).then_some(())
    });
    s.send(&with_tag("late", "2"));
    wait_for("the heartbeat's tag", ANSWER, || {
        (tags_of(d, "tagged") == r#"{"early":"1","late":"2"}"#).then_some(())
    });
    // Each tag is sent once: a heartbeat without one leaves the VM's.
    s.send(&hello_msg(&u, ron::VERSION));
    s.send(&with_tag("late", "3"));
    wait_for("the changed tag", ANSWER, || {
        (tags_of(d, "tagged") == r#"{"early":"1","late":"3"}"#).then_some(())
    });
    assert_eq!(rows(d, "cc clients").len(), 1);
}

/// A PIPE message as an agent sends it.
fn pipe_msg(name: &str, mode: i64, data: &str) -> ron::Message {
    ron::Message {
        kind: ron::kind::PIPE,
        version: ron::VERSION.into(),
        pipe: name.into(),
        pipe_mode: mode,
        pipe_data: data.into(),
        ..Default::default()
    }
}

/// An agent's side of a connection: one gob stream out (each type is
/// defined once in it).
struct Outbox {
    s: TcpStream,
    enc: gob::Encoder,
}

impl Outbox {
    fn send(&mut self, m: &ron::Message) {
        let bytes = self.enc.encode(&ron::T_MESSAGE, &m.to_gob()).unwrap();
        self.s.write_all(&bytes).unwrap();
    }
}

/// The daemon's side of a connection, as an agent reads it.
struct Inbox {
    s: TcpStream,
    dec: gob::Decoder,
    buf: Vec<u8>,
}

impl Inbox {
    /// The next PIPE message (heartbeats and the handshake's echo skipped).
    fn next_pipe(&mut self) -> ron::Message {
        loop {
            if let Some((head, len)) = gob::frame_len(&self.buf).unwrap() {
                if self.buf.len() >= head + len {
                    let body: Vec<u8> = self.buf.drain(..head + len).skip(head).collect();
                    if let Some((_, v)) = self.dec.message(&body).unwrap() {
                        let m = ron::Message::from_gob(&v).unwrap();
                        if m.kind == ron::kind::PIPE {
                            return m;
                        }
                    }
                    continue;
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.s.read(&mut chunk).expect("the daemon's messages");
            assert!(n > 0, "the daemon hung up");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// An agent's PIPE messages meet the node's plumber (minimega's
/// miniplumber), each way: what it writes is the pipe's, what the pipe
/// carries reaches the agent as it named the pipe, a deleted pipe closes
/// its reader, and its pipes are closed when it goes.
#[test]
fn an_agents_pipes_are_the_plumbers() {
    let bus = Bus::start();
    let daemon = Daemon::start(&bus);
    let d = &daemon;
    let _qemus = VmGuard {
        base: d.base.clone(),
    };
    d.ok("vm config memory 64");
    d.ok("vm launch kvm piped,ours");
    let uuid = uuids(d);
    let u = uuid["piped"].clone();
    let port = free_port();
    d.ok(&format!("cc listen {port}"));
    let s = connect(port, true);
    let mut inbox = Inbox {
        s: s.try_clone().unwrap(),
        dec: gob::Decoder::new(),
        buf: Vec::new(),
    };
    let mut s = Outbox {
        s,
        enc: gob::Encoder::new(),
    };
    s.send(&hello_msg(&u, ron::VERSION));
    wait_for("the agent", ANSWER, || (clients(d) == 1).then_some(()));
    use ron::pipe::*;

    // A writer: the agent's data is written to the pipe.
    s.send(&pipe_msg("up", NEW_WRITER, ""));
    s.send(&pipe_msg("up", DATA, "from the agent\n"));
    wait_for("the agent's message in pipe up", ANSWER, || {
        pipe_row(d, "up").filter(|r| r["previous"] == "from the agent")
    });
    assert_eq!(pipe_row(d, "up").unwrap()["writers"], "1");
    assert_eq!(
        fails(d, "clear pipe up"),
        "E: cannot delete named pipe with open writers"
    );

    // A reader: what the pipe carries goes to the agent.
    s.send(&pipe_msg("down", NEW_READER, ""));
    wait_for("the agent's reader", ANSWER, || {
        pipe_row(d, "down").filter(|r| r["readers"] == "1")
    });
    d.ok("pipe down \"to the agent\"");
    let m = inbox.next_pipe();
    assert_eq!(
        (m.pipe.as_str(), m.pipe_mode, m.pipe_data.as_str()),
        ("down", DATA, "to the agent")
    );
    d.ok("clear pipe down");
    let m = inbox.next_pipe();
    assert_eq!((m.pipe.as_str(), m.pipe_mode), ("down", CLOSE_READER));

    // Data for a pipe it never opened is logged, and the session goes on.
    s.send(&pipe_msg("nowhere", DATA, "x"));
    s.send(&pipe_msg("up", CLOSE_WRITER, ""));
    wait_for("the writer closed", ANSWER, || {
        pipe_row(d, "up").filter(|r| r["writers"] == "0")
    });
    assert!(d.log_text().contains("no such pipe: minimega//nowhere"));
    assert_eq!(clients(d), 1);

    // Its pipes close with its connection.
    s.send(&pipe_msg("left", NEW_WRITER, ""));
    wait_for("the second writer", ANSWER, || {
        pipe_row(d, "left").filter(|r| r["writers"] == "1")
    });
    drop((s, inbox));
    wait_for("the agent's pipes closed", ANSWER, || {
        pipe_row(d, "left").filter(|r| r["writers"] == "0")
    });

    // Our agent ties a command's streams to pipes: stdout written line by
    // line, stdin fed until the pipe is deleted.
    let _agent = tcp_agent(port, &uuid["ours"], &d.scratch.path.join("agent"));
    wait_for("our agent", ANSWER, || (clients(d) == 1).then_some(()));
    let out = post(d, "cc exec stdout=oursout sh -c \"echo one; echo two\"");
    wait_answers(d, out, 1);
    let row = wait_for("our agent's lines in pipe oursout", ANSWER, || {
        pipe_row(d, "oursout").filter(|r| r["previous"] == "two" && r["writers"] == "0")
    });
    assert_eq!(row["count"], "2");
    assert_eq!(response(d, out, &uuid["ours"], "stdout"), None);
    let fed = post(d, "cc exec stdin=oursin tr a-z A-Z");
    wait_for("our agent's reader", ANSWER, || {
        pipe_row(d, "oursin").filter(|r| r["readers"] == "1")
    });
    d.ok("pipe oursin first");
    d.ok("pipe oursin second");
    d.ok("clear pipe oursin");
    wait_answers(d, fed, 1);
    assert_eq!(
        response(d, fed, &uuid["ours"], "stdout").unwrap(),
        "FIRST\nSECOND\n"
    );
    d.ok("clear pipe");
    d.ok("vm kill all");
}

/// `cc listen` belongs to its namespace: destroying the namespace closes
/// the port, and a restarted daemon does not open it again.
#[test]
fn clearing_a_namespace_closes_its_cc_listen_port() {
    let bus = Bus::start();
    let mut first = Daemon::start(&bus);
    let base = first.base.clone();
    let (kept, dropped) = (free_port(), free_port());
    first.ok(&format!("cc listen {kept}"));
    first.ok(&format!("namespace exp cc listen {dropped}"));
    assert!(TcpStream::connect(("127.0.0.1", dropped)).is_ok());
    first.ok("clear namespace exp");
    assert!(
        TcpStream::connect(("127.0.0.1", dropped)).is_err(),
        "port {dropped} still open after clear namespace exp"
    );
    assert!(TcpStream::connect(("127.0.0.1", kept)).is_ok());
    assert!(
        !base.join("cc/exp.json").exists(),
        "exp's cc state is still saved"
    );
    // Saved before the reply: a crash right after loses nothing.
    assert!(base.join("cc/minimega.json").exists());
    first.crash();
    let second = Daemon::start_with(
        &bus,
        DaemonOpts {
            base: Some(base),
            ..DaemonOpts::default()
        },
    );
    // The daemon's log is printed if this times out.
    wait_for("the default namespace's port again", ANSWER, || {
        TcpStream::connect(("127.0.0.1", kept)).ok()
    });
    assert!(TcpStream::connect(("127.0.0.1", dropped)).is_err());
    drop(second);
    drop(first);
}
