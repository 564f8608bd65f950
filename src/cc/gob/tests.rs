//! The codec against real `encoding/gob` bytes (tests/data/cc, written by
//! the Go fixture tests/gob built with Debian's Go 1.19 and with Go 1.23,
//! whose encoding/gob number types differently; tests/cc_gob.rs checks the
//! other direction, our bytes in Go), round trips, and hostile input.

use super::*;
use crate::cc::gob;
use crate::cc::ron;
use proptest::prelude::*;
use std::collections::BTreeMap;

include!("../../../tests/data/cc/sample.rs");

/// Go 1.19 numbers its first type 65.
const GO_STREAM: &[u8] = include_bytes!("../../../tests/data/cc/go1.19-messages.gob");
/// Go 1.23 numbers its first type 64: the stock agent built with it was
/// refused at its first message until the decoder took any id from 64 up.
const GO_1_23_STREAM: &[u8] = include_bytes!("../../../tests/data/cc/go1.23-messages.gob");

#[test]
fn bytes_from_go_decode_to_the_sample() {
    for stream in [GO_STREAM, GO_1_23_STREAM] {
        let got = decode_stream(stream).unwrap();
        let want = sample();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w);
        }
    }
}

#[test]
fn the_go_streams_differ_in_their_type_ids() {
    // What each Go version really sends first: the definition of Message,
    // as a negative id (-65 is ff 81, -64 is 7f).
    let first = |s: &[u8]| {
        let (h, _) = frame_len(s).unwrap().unwrap();
        wire::Reader::new(&s[h..]).int().unwrap()
    };
    assert_eq!(first(GO_STREAM), -65);
    assert_eq!(first(GO_1_23_STREAM), -64);
}

/// One stream defining `id` as `[]string` and sending `["a"]` with it.
fn strings_as(id: i64) -> Vec<u8> {
    let mut def = Vec::new();
    wire::put_int(&mut def, -id);
    // wireType{SliceT: {CommonType{Name: "[]string", Id: id}, Elem: string}}
    def.extend([0x02, 0x01, 0x01]);
    wire::put_bytes(&mut def, b"[]string");
    wire::put_uint(&mut def, 1);
    wire::put_int(&mut def, id);
    def.extend([0x00, 0x01]);
    wire::put_int(&mut def, ids::STRING);
    def.extend([0x00, 0x00]);
    let mut val = Vec::new();
    wire::put_int(&mut val, id);
    val.extend([0x00, 0x01, 0x01, b'a']);
    let mut out = Vec::new();
    for body in [def, val] {
        wire::put_uint(&mut out, body.len() as u64);
        out.extend(body);
    }
    out
}

fn decode_values(mut rest: &[u8]) -> Result<Vec<(i64, Value)>, GobError> {
    let mut dec = Decoder::new();
    let mut values = Vec::new();
    while let Some((h, n)) = frame_len(rest)? {
        if let Some(v) = dec.message(&rest[h..h + n])? {
            values.push(v);
        }
        rest = &rest[h + n..];
    }
    Ok(values)
}

#[test]
fn any_id_from_64_up_may_be_a_senders_type() {
    // Go hands out ids process-wide: a program that encoded other types
    // first sends its next type at whatever id comes next.
    for id in [64, 65, 100, 5000, 1 << 40] {
        assert_eq!(
            decode_values(&strings_as(id)),
            Ok(vec![(id, Value::Slice(vec![Value::str("a")]))]),
            "{id}"
        );
    }
    // Below 64 are Go's own: defining one is refused, as Go refuses it.
    for id in [1, 16, 63] {
        assert_eq!(
            decode_values(&strings_as(id)),
            Err(GobError::DuplicateType(id))
        );
    }
}

#[test]
fn our_stream_of_the_sample_decodes_to_it() {
    let bytes = encode_stream(&sample());
    assert_eq!(decode_stream(&bytes).unwrap(), sample());
    // Types are defined once per stream: a second message of the same
    // shape is much shorter than the first.
    let mut enc = Encoder::new();
    let first = enc.encode(&ron::T_MESSAGE, &sample()[4].to_gob()).unwrap();
    let again = enc.encode(&ron::T_MESSAGE, &sample()[4].to_gob()).unwrap();
    assert!(
        again.len() * 10 < first.len(),
        "{} vs {}",
        again.len(),
        first.len()
    );
}

#[test]
fn a_heartbeat_is_what_go_sends() {
    // Go: Type (delta 1) = 6, Version (delta 11) = "v1", end; after the
    // type id of Message. Only the value part is compared: ids are ours.
    let mut enc = Encoder::new();
    let _ = enc.encode(&ron::T_MESSAGE, &Value::Struct(vec![])).unwrap();
    let hb = enc
        .encode(&ron::T_MESSAGE, &ron::Message::heartbeat().to_gob())
        .unwrap();
    assert_eq!(
        hb,
        [0x09, 0xff, 0x82, 0x01, 0x0c, 0x0b, 0x02, b'v', b'1', 0x00]
    );
}

#[test]
fn unknown_fields_are_skipped_and_absent_fields_are_zero() {
    static EXTRA: StructTy = StructTy {
        name: "Message",
        fields: &[
            ("Type", &Ty::Int),
            ("Surprise", &Ty::Float),
            ("UUID", &Ty::String),
        ],
    };
    static T_EXTRA: Ty = Ty::Struct(&EXTRA);
    let mut enc = Encoder::new();
    let v = Value::Struct(vec![
        ("Type".into(), Value::Int(6)),
        ("Surprise".into(), Value::Float(1.5)),
        ("UUID".into(), Value::str("u")),
    ]);
    let bytes = enc.encode(&T_EXTRA, &v).unwrap();
    let m = decode_stream(&bytes).unwrap().remove(0);
    assert_eq!((m.kind, m.uuid.as_str(), m.version.as_str()), (6, "u", ""));
}

#[test]
fn top_level_non_structs_carry_a_zero_delta() {
    static T_STRS: Ty = Ty::Slice(&Ty::String);
    let mut enc = Encoder::new();
    let bytes = enc
        .encode(&T_STRS, &Value::Slice(vec![Value::str("a")]))
        .unwrap();
    let mut dec = Decoder::new();
    let mut rest = &bytes[..];
    let mut values = Vec::new();
    while let Some((h, n)) = frame_len(rest).unwrap() {
        if let Some((_, v)) = dec.message(&rest[h..h + n]).unwrap() {
            values.push(v);
        }
        rest = &rest[h + n..];
        if rest.is_empty() {
            break;
        }
    }
    assert_eq!(values, [Value::Slice(vec![Value::str("a")])]);
    // A string at the top: type id 6, delta 0, "hi".
    let s = enc.encode(&Ty::String, &Value::str("hi")).unwrap();
    assert_eq!(s, [5, 0x0c, 0, 2, b'h', b'i']);
}

#[test]
fn hostile_input_is_an_error_not_a_panic() {
    let mut d = Decoder::new();
    // A value of a type never defined.
    assert_eq!(
        d.message(&[0xff, 0x82, 0x00]),
        Err(GobError::UnknownType(65))
    );
    // Redefining a predefined type.
    assert_eq!(
        d.message(&[0x0b, 0x03, 0x00]),
        Err(GobError::DuplicateType(6))
    );
    // A frame longer than the limit.
    assert!(matches!(
        frame_len(&[0xfc, 0x40, 0, 0, 0]),
        Err(GobError::FrameTooBig { .. })
    ));
    assert_eq!(frame_len(&[0xfc, 0x40]), Ok(None));
    assert_eq!(frame_len(&[0x00]), Err(GobError::Empty));
    // A slice claiming more elements than bytes follow.
    let mut bytes = Vec::new();
    let mut enc = Encoder::new();
    static T_INTS: Ty = Ty::Slice(&Ty::Int);
    bytes.extend(
        enc.encode(&T_INTS, &Value::Slice(vec![Value::Int(1)]))
            .unwrap(),
    );
    let (h, n) = frame_len(&bytes).unwrap().unwrap();
    let mut dec = Decoder::new();
    assert_eq!(dec.message(&bytes[h..h + n]), Ok(None));
    assert_eq!(
        dec.message(&[0xff, 0x82, 0x00, 0x7f, 0x02]),
        Err(GobError::Length(127))
    );
    // Deeply nested values stop at the limit: type 65 = []65.
    let deep = [
        0x0d, 0xff, 0x81, 0x02, 0x01, 0x02, 0xff, 0x82, 0x00, 0x01, 0xff, 0x82, 0x00, 0x00,
    ];
    let mut dec = Decoder::new();
    let (h, n) = frame_len(&deep).unwrap().unwrap();
    assert_eq!(n, deep.len() - h);
    assert_eq!(dec.message(&deep[h..]), Ok(None));
    let mut val = vec![0xff, 0x82, 0x00];
    val.extend(std::iter::repeat_n(0x01, 300));
    val.push(0x00);
    assert_eq!(dec.message(&val), Err(GobError::TooDeep));
}

#[test]
fn a_million_tiny_values_hit_the_value_budget() {
    static T_BOOLS: Ty = Ty::Slice(&Ty::Bool);
    let mut enc = Encoder::new();
    let def = enc.encode(&T_BOOLS, &Value::Slice(vec![])).unwrap();
    let mut dec = Decoder::new();
    let (h, n) = frame_len(&def).unwrap().unwrap();
    dec.message(&def[h..h + n]).unwrap();
    let count = MAX_VALUES + 10;
    let mut body = vec![0xff, 0x82, 0x00];
    wire::put_uint(&mut body, count as u64);
    body.extend(std::iter::repeat_n(0x01, count));
    assert_eq!(dec.message(&body), Err(GobError::TooManyValues));
}

fn text() -> impl Strategy<Value = String> {
    prop::string::string_regex("[a-zA-Z0-9 ./:_=-]{0,12}").unwrap()
}

fn texts() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(text(), 0..4)
}

fn tags() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(text(), text(), 0..3)
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..40)
}

fn filter() -> impl Strategy<Value = ron::Filter> {
    (text(), text(), text(), tags()).prop_map(|(uuid, hostname, ip, tags)| ron::Filter {
        uuid,
        hostname,
        ip,
        tags,
        ..Default::default()
    })
}

fn command() -> impl Strategy<Value = ron::Command> {
    (
        (any::<i64>(), any::<bool>(), texts(), texts(), texts()),
        (
            prop::option::of((text(), any::<i64>(), bytes())),
            any::<i64>(),
            prop::option::of(1i64..6),
            prop::option::of(filter()),
        ),
        (texts(), text(), any::<bool>(), text()),
    )
        .prop_map(
            |(
                (id, background, command, files_send, files_recv),
                (ct, pid, level, filter),
                (checked_in, prefix, once, stdout),
            )| {
                ron::Command {
                    id,
                    background,
                    command,
                    files_send,
                    files_recv,
                    conn_test: ct.map(|(endpoint, wait, packet)| ron::ConnTest {
                        endpoint,
                        wait,
                        packet,
                    }),
                    pid,
                    level,
                    filter,
                    checked_in,
                    prefix,
                    once,
                    stdout,
                    ..Default::default()
                }
            },
        )
}

fn client() -> impl Strategy<Value = ron::Client> {
    (
        (text(), text(), texts(), texts(), tags()),
        prop::collection::btree_map(any::<i64>(), texts(), 0..3),
        prop::collection::vec(
            (any::<i64>(), bytes(), bytes(), any::<i64>(), any::<bool>()),
            0..3,
        ),
        any::<i64>(),
    )
        .prop_map(
            |((uuid, hostname, ips, macs, tags), procs, responses, last)| ron::Client {
                uuid,
                hostname,
                ips,
                macs,
                tags,
                processes: procs
                    .into_iter()
                    .map(|(pid, command)| (pid, ron::Process { pid, command }))
                    .collect(),
                responses: responses
                    .into_iter()
                    .map(
                        |(id, stdout, stderr, exit_code, record_exit_code)| ron::Response {
                            id,
                            stdout,
                            stderr,
                            exit_code,
                            record_exit_code,
                        },
                    )
                    .collect(),
                last_command_id: last,
                ..Default::default()
            },
        )
}

fn message() -> impl Strategy<Value = ron::Message> {
    (
        (
            0i64..7,
            text(),
            text(),
            prop::collection::btree_map(any::<i64>(), command(), 0..3),
        ),
        prop::option::of(client()),
        prop::option::of((
            any::<i64>(),
            text(),
            0u64..0o1000,
            bytes(),
            any::<i64>(),
            any::<bool>(),
        )),
        (bytes(), text(), any::<i64>(), text(), text()),
    )
        .prop_map(
            |(
                (kind, uuid, error, commands),
                client,
                file,
                (tunnel, pipe, pipe_mode, pipe_data, version),
            )| {
                ron::Message {
                    kind,
                    uuid,
                    error,
                    // The map's keys are the commands' ids, as on the wire.
                    commands,
                    client,
                    file: file.map(|(id, name, perm, data, offset, eof)| ron::File {
                        id,
                        name,
                        perm,
                        data,
                        offset,
                        eof,
                    }),
                    tunnel,
                    pipe,
                    pipe_mode,
                    pipe_data,
                    version,
                    ..Default::default()
                }
            },
        )
}

proptest! {
    #[test]
    fn messages_round_trip(ms in prop::collection::vec(message(), 1..4)) {
        let bytes = encode_stream(&ms);
        prop_assert_eq!(decode_stream(&bytes).unwrap(), ms);
    }

    #[test]
    fn any_bytes_decode_without_panicking(data in prop::collection::vec(any::<u8>(), 0..512)) {
        fuzz_decode(&data);
    }

    #[test]
    fn a_damaged_stream_decodes_without_panicking(
        at in 0usize..1755, byte in any::<u8>(), cut in 0usize..1755, newer in any::<bool>(),
    ) {
        let mut data = if newer { GO_1_23_STREAM } else { GO_STREAM }.to_vec();
        let at = at % data.len();
        data[at] = byte;
        data.truncate(cut.max(1));
        fuzz_decode(&data);
        let _ = decode_stream(&data);
    }
}
