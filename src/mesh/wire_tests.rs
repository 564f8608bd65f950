use super::*;
use crate::command::Response;
use crate::mesh::routed::Body;
use proptest::prelude::*;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

fn response() -> Response {
    Response {
        host: "n1".into(),
        header: vec!["name".into()],
        tabular: vec![vec!["vm1".into()]],
        ..Default::default()
    }
}

fn samples() -> Vec<Message> {
    vec![
        Message::Hello(Hello {
            name: "n1".into(),
            context: "lab".into(),
            nonce: "00ff".into(),
            port: 9000,
            explicit: true,
            software: "0.1.0".into(),
        }),
        Message::Confirm,
        Message::Accept,
        Message::Refuse("enough peers".into()),
        Message::Heartbeat,
        Message::Lsa(Lsa {
            origin: "n1".into(),
            seq: 7,
            peers: vec!["n2".into(), "n3".into()],
        }),
        Message::Routed(Routed {
            src: "n1".into(),
            dst: vec!["n3".into(), "n4".into()],
            request: true,
            ttl: 32,
            id: 9,
            body: Body::Request {
                line: "vm info".into(),
                namespace: Some("ns".into()),
            }
            .encode(),
        }),
        Message::Routed(Routed {
            src: "n3".into(),
            dst: vec!["n1".into()],
            request: false,
            ttl: 32,
            id: 9,
            body: Body::Response {
                responses: vec![response(), Response::error("n3", "no such vm")],
            }
            .encode(),
        }),
        Message::Bye,
    ]
}

#[test]
fn every_kind_round_trips_in_sequence() {
    let mut tx = Sealer::new(KEY);
    let mut rx = Opener::new(KEY);
    let mut stream = Vec::new();
    for m in samples() {
        stream.extend(tx.seal(&m).unwrap());
    }
    let mut at = 0;
    for want in samples() {
        let (got, used) = rx.decode(&stream[at..]).unwrap().unwrap();
        assert_eq!(got, want);
        at += used;
    }
    assert_eq!(at, stream.len());
    assert_eq!(rx.decode(&stream[at..]).unwrap(), None);
}

#[test]
fn truncated_frames_wait_for_more() {
    let frame = Sealer::new(KEY).seal(&samples()[5]).unwrap();
    let mut rx = Opener::new(KEY);
    for cut in 0..frame.len() {
        assert_eq!(rx.decode(&frame[..cut]).unwrap(), None, "cut at {cut}");
    }
    assert!(rx.decode(&frame).unwrap().is_some());
}

#[test]
fn replay_and_reorder_are_detected() {
    let mut tx = Sealer::new(KEY);
    let a = tx.seal(&Message::Heartbeat).unwrap();
    let b = tx.seal(&Message::Heartbeat).unwrap();
    let mut rx = Opener::new(KEY);
    assert!(matches!(
        rx.decode(&b),
        Err(WireError::Sequence {
            expected: 0,
            got: 1
        })
    ));
    let mut rx = Opener::new(KEY);
    rx.decode(&a).unwrap().unwrap();
    assert!(matches!(rx.decode(&a), Err(WireError::Sequence { .. })));
}

#[test]
fn wrong_key_and_altered_bytes_fail_the_mac() {
    let frame = Sealer::new(KEY).seal(&samples()[6]).unwrap();
    assert_eq!(
        Opener::new(b"another key, same length, 32 b!!").decode(&frame),
        Err(WireError::Mac)
    );
    for i in [9, HEADER_LEN + 3, frame.len() - 1] {
        let mut bad = frame.clone();
        bad[i] ^= 0x40;
        assert_eq!(
            Opener::new(KEY).decode(&bad),
            Err(WireError::Mac),
            "byte {i}"
        );
    }
}

#[test]
fn oversized_frames_are_refused_from_the_header() {
    let mut head = [0u8; HEADER_LEN];
    head[..4].copy_from_slice(&MAGIC);
    head[4] = VERSION;
    head[5] = Kind::Routed as u8;
    head[16..20].copy_from_slice(&((MAX_PAYLOAD as u32) + 1).to_be_bytes());
    assert_eq!(
        Opener::new(KEY).decode(&head),
        Err(WireError::TooLarge(MAX_PAYLOAD + 1))
    );
    assert!(seal_raw(KEY, Kind::Routed, 0, &vec![0; MAX_PAYLOAD + 1]).is_err());
}

#[test]
fn header_errors_name_the_problem() {
    let good = seal_raw(KEY, Kind::Heartbeat, 0, &[]).unwrap();
    let mut h: [u8; HEADER_LEN] = good[..HEADER_LEN].try_into().unwrap();
    h[4] = 9;
    assert_eq!(parse_header(&h), Err(WireError::Version(9)));
    h[4] = VERSION;
    h[5] = 200;
    assert_eq!(parse_header(&h), Err(WireError::Kind(200)));
    h[5] = 5;
    h[7] = 1;
    assert_eq!(parse_header(&h), Err(WireError::Reserved));
    h[0] = b'X';
    assert_eq!(parse_header(&h), Err(WireError::Magic));
}

#[test]
fn authentic_frames_with_bad_payloads_are_errors() {
    let f = seal_raw(KEY, Kind::Lsa, 0, b"{not json").unwrap();
    assert!(matches!(
        Opener::new(KEY).decode(&f),
        Err(WireError::Payload {
            kind: Kind::Lsa,
            ..
        })
    ));
    let f = seal_raw(KEY, Kind::Heartbeat, 0, b"x").unwrap();
    assert!(matches!(
        Opener::new(KEY).decode(&f),
        Err(WireError::Payload { .. })
    ));
}

fn arb_message() -> impl Strategy<Value = Message> {
    let s = || "[a-zA-Z0-9 \\-_.\u{e9}\u{4e2d}\"\\\\]{0,24}";
    let name = || "[a-zA-Z0-9\\-_.\u{e9}\u{4e2d}]{1,24}";
    prop_oneof![
        (s(), s(), s(), any::<u16>(), any::<bool>()).prop_map(|(n, c, x, p, e)| {
            Message::Hello(Hello {
                name: n,
                context: c,
                nonce: x,
                port: p,
                explicit: e,
                software: "1".into(),
            })
        }),
        s().prop_map(Message::Refuse),
        (s(), any::<u64>(), proptest::collection::vec(s(), 0..8)).prop_map(|(o, seq, peers)| {
            Message::Lsa(Lsa {
                origin: o,
                seq,
                peers,
            })
        }),
        (
            name(),
            proptest::collection::vec(name(), 1..5),
            any::<u8>(),
            any::<u64>(),
            s(),
            proptest::option::of(s())
        )
            .prop_map(
                |(src, dst, ttl, id, line, namespace)| Message::Routed(Routed {
                    src,
                    dst,
                    request: true,
                    ttl,
                    id,
                    body: Body::Request { line, namespace }.encode()
                })
            ),
        (
            name(),
            name(),
            proptest::collection::vec((s(), s(), s()), 0..6)
        )
            .prop_map(|(src, dst, rs)| Message::Routed(Routed {
                src,
                dst: vec![dst],
                request: false,
                ttl: 1,
                id: 1,
                body: Body::Response {
                    responses: rs
                        .into_iter()
                        .map(|(h, r, e)| Response {
                            host: h,
                            response: r,
                            error: e,
                            ..Default::default()
                        })
                        .collect()
                }
                .encode()
            })),
        Just(Message::Heartbeat),
        Just(Message::Bye),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip(msgs in proptest::collection::vec(arb_message(), 1..6)) {
        let mut tx = Sealer::new(KEY);
        let mut rx = Opener::new(KEY);
        let mut stream = Vec::new();
        for m in &msgs {
            stream.extend(tx.seal(m).unwrap());
        }
        let mut at = 0;
        for m in &msgs {
            let (got, used) = rx.decode(&stream[at..]).unwrap().unwrap();
            prop_assert_eq!(&got, m);
            at += used;
        }
    }

    /// The fuzz target: arbitrary bytes never panic the decoder and are
    /// never taken for an authentic message.
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut rx = Opener::new(KEY);
        match rx.decode(&bytes) {
            Ok(None) | Err(_) => {}
            Ok(Some((m, _))) => prop_assert!(false, "garbage decoded as {:?}", m),
        }
    }

    /// Garbage behind a valid header (magic, version, kind) as well.
    #[test]
    fn garbage_after_a_valid_header(kind in 1u8..=8, seq in any::<u64>(),
                                    body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&[VERSION, kind, 0, 0]);
        bytes.extend_from_slice(&seq.to_be_bytes());
        bytes.extend_from_slice(&(body.len().saturating_sub(MAC_LEN) as u32).to_be_bytes());
        bytes.extend_from_slice(&body);
        let r = Opener::new(KEY).decode(&bytes);
        prop_assert!(matches!(r, Ok(None) | Err(_)));
    }

    /// One flipped bit anywhere in an authentic frame is caught.
    #[test]
    fn any_bit_flip_is_caught(m in arb_message(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let frame = Sealer::new(KEY).seal(&m).unwrap();
        let mut bad = frame.clone();
        let i = pos.index(bad.len());
        bad[i] ^= 1 << bit;
        let r = Opener::new(KEY).decode(&bad);
        prop_assert!(matches!(r, Ok(None) | Err(_)), "flip at {} accepted", i);
    }

    /// Payloads that pass the MAC but are not ours still decode safely.
    #[test]
    fn authentic_garbage_payloads(kind in 1u8..=8, payload in proptest::collection::vec(any::<u8>(), 0..200)) {
        let kind = Kind::from_byte(kind).unwrap();
        let f = seal_raw(KEY, kind, 0, &payload).unwrap();
        let _ = Opener::new(KEY).decode(&f);
    }
}
