// The sample messages of tests/gob/main.go (`sample()`), in Rust: the
// codec's tests check that Go's encoding of them decodes to exactly these,
// and that ours decodes in Go to what Go's own does. Change both together.
// Included by src/cc/gob/tests.rs and tests/cc_gob.rs, which bring `ron`
// into scope.

fn sample() -> Vec<ron::Message> {
    use std::collections::BTreeMap;
    let uuid = "9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc".to_string();
    let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let map = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>()
    };
    let client = ron::Client {
        uuid: uuid.clone(),
        arch: "amd64".into(),
        os: "linux".into(),
        version: "go-fixture".into(),
        hostname: "guest-1".into(),
        ips: strs(&["10.0.0.1", "fe80::1"]),
        macs: strs(&["52:54:00:12:34:56"]),
        processes: BTreeMap::from([
            (42, ron::Process { pid: 42, command: strs(&["sleep", "1000"]) }),
            (100, ron::Process { pid: 100, command: strs(&["nc", "-l", "-p", "80"]) }),
        ]),
        tags: map(&[("role", "web"), ("zone", "dmz")]),
        responses: vec![
            ron::Response { id: 1, stdout: b"guest-1\n".to_vec(), record_exit_code: true, ..Default::default() },
            ron::Response { id: 2, stderr: b"no such file\n".to_vec(), exit_code: 3, record_exit_code: true, ..Default::default() },
            ron::Response { id: 3, stdout: b"bin\x00ary\xff\xfe".to_vec(), exit_code: -1, ..Default::default() },
        ],
        last_command_id: 3,
    };
    let commands = BTreeMap::from([
        (1, ron::Command { id: 1, command: strs(&["hostname"]), ..Default::default() }),
        (
            7,
            ron::Command {
                id: 7,
                background: true,
                command: strs(&["sh", "-c", "echo \"hi\" > /tmp/x"]),
                files_send: strs(&["a.txt", "dir/b.bin"]),
                files_recv: strs(&["/var/log/*.log"]),
                pid: -1,
                kill_all: "nc".into(),
                level: Some(2),
                filter: Some(ron::Filter {
                    hostname: "guest-1".into(),
                    ip: "10.0.0.0/24".into(),
                    tags: map(&[("name", "web1")]),
                    ..Default::default()
                }),
                checked_in: vec![uuid.clone()],
                prefix: "setup".into(),
                once: true,
                sent: true,
                stdin: "in".into(),
                stdout: "out".into(),
                stderr: "err".into(),
                ..Default::default()
            },
        ),
        (
            9,
            ron::Command {
                id: 9,
                conn_test: Some(ron::ConnTest {
                    endpoint: "udp://10.0.0.2:53".into(),
                    wait: 10_000_000_000,
                    packet: vec![1, 2, 3, 0, 255],
                }),
                filter: Some(ron::Filter::default()),
                ..Default::default()
            },
        ),
    ]);
    vec![
        ron::Message { kind: 1, uuid: uuid.clone(), version: "v1".into(), client: Some(client), ..Default::default() },
        ron::Message { kind: 0, commands, ..Default::default() },
        ron::Message {
            kind: 3,
            uuid: uuid.clone(),
            file: Some(ron::File {
                id: 7,
                name: "tmp/out.txt".into(),
                perm: 0o644,
                data: b"chunk of data".to_vec(),
                offset: 102400,
                eof: true,
            }),
            ..Default::default()
        },
        ron::Message {
            kind: 3,
            file: Some(ron::File { name: "a.txt".into(), ..Default::default() }),
            error: "open a.txt: no such file or directory".into(),
            ..Default::default()
        },
        ron::Message { kind: 6, version: "v1".into(), ..Default::default() },
        ron::Message { kind: 2, uuid: uuid.clone(), tunnel: vec![0, 1, 2, 250], ..Default::default() },
        ron::Message { kind: 4, pipe: "p1".into(), pipe_mode: 4, pipe_data: "line\n".into(), ..Default::default() },
        ron::Message { kind: 5, ufs_mode: 2, tunnel: b"9p".to_vec(), ..Default::default() },
    ]
}

/// Each message through one encoder: one gob stream.
fn encode_stream(messages: &[ron::Message]) -> Vec<u8> {
    let mut enc = gob::Encoder::new();
    let mut out = Vec::new();
    for m in messages {
        out.extend(enc.encode(&ron::T_MESSAGE, &m.to_gob()).unwrap());
    }
    out
}

/// Every message of a gob stream, in order.
fn decode_stream(mut bytes: &[u8]) -> Result<Vec<ron::Message>, gob::GobError> {
    let mut dec = gob::Decoder::new();
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (head, len) = gob::frame_len(bytes)?.ok_or(gob::GobError::Truncated)?;
        let body = bytes.get(head..head + len).ok_or(gob::GobError::Truncated)?;
        if let Some((_, v)) = dec.message(body)? {
            out.push(ron::Message::from_gob(&v)?);
        }
        bytes = &bytes[head + len..];
    }
    Ok(out)
}
