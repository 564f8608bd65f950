//! Mesh discovery datagrams: any datagram as it arrives (almost always
//! refused for its MAC), and any payload signed with the right key so the
//! announcement decoder itself is reached. Never panics; what decodes
//! encodes back to the same announcement.
#![no_main]

use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use minimega::mesh::discovery::{decode, encode};

const KEY: &[u8] = b"fuzz key";

/// The datagram a node holding KEY would send with this payload: magic,
/// version, payload, HMAC-SHA256 over the rest (the layout `encode` writes).
fn signed(payload: &[u8]) -> Vec<u8> {
    let mut out = b"MMDISC\x01".to_vec();
    out.extend_from_slice(payload);
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(KEY).expect("any key length");
    m.update(&out);
    out.extend_from_slice(&m.finalize().into_bytes());
    out
}

fuzz_target!(|data: &[u8]| {
    let _ = decode(data, KEY);
    if let Ok(a) = decode(&signed(data), KEY) {
        assert_eq!(decode(&encode(&a, KEY), KEY).as_ref(), Ok(&a));
    }
});
