use super::*;
use crate::cc::minitunnel;

include!("../../tests/data/cc/tunnel_sample.rs");

/// What Go 1.19's encoding/gob wrote for `tunnelSample()` (tests/gob).
const GO_1_19: &[u8] = include_bytes!("../../tests/data/cc/go1.19-tunnel.gob");
/// The same from Go 1.23, which numbers the type 64, not 65.
const GO_1_23: &[u8] = include_bytes!("../../tests/data/cc/go1.23-tunnel.gob");

fn encode_all(msgs: &[TunnelMessage]) -> Vec<u8> {
    let mut w = Writer::new();
    msgs.iter().flat_map(|m| w.encode(m).unwrap()).collect()
}

#[test]
fn the_declaration_is_gos_tunnel_message() {
    let fields: Vec<String> = TunnelMessage::STRUCT
        .fields
        .iter()
        .map(|(n, t)| format!("{n} {}", t.key()))
        .collect();
    assert_eq!(
        fields.join("; "),
        "Type int; Ack bool; TID int; Source int; Host string; Port int; Error string; Data []uint8"
    );
    assert_eq!(T_TUNNEL.key(), "tunnelMessage");
}

#[test]
fn our_bytes_are_gos_bytes() {
    // No maps, so Go's encoding is deterministic; our type numbering is
    // Go 1.19's, so the streams are equal byte for byte.
    assert_eq!(encode_all(&tunnel_sample()), GO_1_19);
}

#[test]
fn gos_streams_decode_to_the_sample() {
    for go in [GO_1_19, GO_1_23] {
        let mut r = Reader::new();
        assert_eq!(r.push(go).unwrap(), tunnel_sample());
        assert_eq!(r.pending(), 0);
    }
}

#[test]
fn pieces_of_any_size_reassemble() {
    // The stream rides in TUNNEL messages cut wherever the pipe was read.
    for size in [1, 2, 3, 7, 64, 1000] {
        let mut r = Reader::new();
        let mut got = Vec::new();
        for piece in GO_1_23.chunks(size) {
            got.extend(r.push(piece).unwrap());
        }
        assert_eq!(got, tunnel_sample(), "pieces of {size}");
        assert_eq!(r.pending(), 0);
    }
}

#[test]
fn the_type_goes_out_once_per_stream() {
    let mut w = Writer::new();
    let first = w.encode(&TunnelMessage::handshake(false)).unwrap();
    let second = w.encode(&TunnelMessage::handshake(false)).unwrap();
    assert!(first.len() > second.len());
    // A fresh reader needs the definition: the second alone is refused.
    assert_eq!(Reader::new().push(&second), Err(GobError::UnknownType(65)));
}

#[test]
fn a_large_data_message_round_trips() {
    let data: Vec<u8> = (0..BUFFER_SIZE).map(|i| (i * 7) as u8).collect();
    let m = TunnelMessage::data(new_tid(), &data);
    let mut r = Reader::new();
    let bytes = Writer::new().encode(&m).unwrap();
    let (a, b) = bytes.split_at(bytes.len() / 2);
    assert_eq!(r.push(a).unwrap(), vec![]);
    assert!(r.pending() > 0);
    assert_eq!(r.push(b).unwrap(), vec![m]);
}

#[test]
fn garbage_is_an_error() {
    let mut r = Reader::new();
    // A value of a type never defined.
    assert!(r.push(&[0x03, 0x82, 0x00, 0x00]).is_err());
    // A length past the limit.
    assert!(Reader::new().push(&[0xfc, 0x7f, 0xff, 0xff, 0xff]).is_err());
}

#[test]
fn tids_are_non_negative_and_differ() {
    let a: Vec<i64> = (0..100).map(|_| new_tid()).collect();
    assert!(a.iter().all(|t| *t >= 0));
    let mut b = a.clone();
    b.sort();
    b.dedup();
    assert_eq!(a.len(), b.len());
}

#[test]
fn ports_parse_as_minimega_says() {
    assert_eq!(parse_port("src", "8080"), Ok(8080));
    assert_eq!(
        parse_port("src", "http"),
        Err("non-integer src: http : strconv.Atoi: parsing \"http\": invalid syntax".into())
    );
    assert_eq!(
        parse_port("dst", "70000"),
        Err("invalid dst port: 70000 (1-65535)".into())
    );
    assert_eq!(
        parse_port("dst", "0"),
        Err("invalid dst port: 0 (1-65535)".into())
    );
    let f = Forward {
        src: 8080,
        host: "10.0.0.2".into(),
        dst: 80,
    };
    assert_eq!(f.to_string(), "8080:10.0.0.2:80");
}

#[test]
fn ports_of_messages_are_checked() {
    let mut m = TunnelMessage::connect(1, "h", 22);
    assert_eq!(m.port(), Some(22));
    m.port = 70000;
    assert_eq!(m.port(), None);
    m.port = -1;
    assert_eq!(m.port(), None);
    assert_eq!(
        TunnelMessage::forward(1, 8080, "h", 1).source_port(),
        Some(8080)
    );
}
