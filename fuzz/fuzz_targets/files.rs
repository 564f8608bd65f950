//! The file-transfer connection (src/files/proto.rs): a holder reads a
//! stranger's bytes before any MAC is checked, and a fetcher reads a
//! holder's. Any stream as each side reads it (Hello, then Gets; Welcome,
//! then Parts), and any Hello body under the right MAC so its decoder is
//! reached. Never panics, never takes a part longer than the limit; a
//! Hello that decodes is sent again and read back the same.
#![no_main]

use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use minimega::files::proto::{
    read_get, read_hello, read_part, read_welcome, send_hello, Hello, MAGIC, PART_MAX,
};
use minimega::files::transfer::Version;
use std::io::Cursor;

const KEY: &[u8] = b"fuzz key";

/// What a fetcher holding KEY would send with this Hello body (the layout
/// `send_hello` writes: magic, kind, length, body, HMAC-SHA256).
fn signed_hello(body: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.push(1);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(KEY).expect("any key length");
    m.update(b"hello");
    m.update(body);
    out.extend_from_slice(&m.finalize().into_bytes());
    out
}

fuzz_target!(|data: &[u8]| {
    // The holder's side: a Hello, then Gets until one fails.
    let mut r = Cursor::new(data);
    if read_hello(&mut r, KEY).is_ok() {
        let mut counter = 0;
        while read_get(&mut r, b"session", counter).is_ok() {
            counter += 1;
        }
    }
    if let Ok(h) = read_hello(&mut Cursor::new(signed_hello(data)), KEY) {
        let mut again = Vec::new();
        send_hello(&mut again, KEY, &h).expect("a decoded hello is sent");
        assert_eq!(read_hello(&mut Cursor::new(again), KEY).ok(), Some(h));
    }

    // The fetcher's side: a Welcome, then Parts until one fails.
    let hello = Hello {
        nonce: [3; 32],
        name: "base.img".into(),
        version: Version {
            mtime_ns: 1,
            size: 1 << 20,
        },
        from: "fuzz".into(),
    };
    let mut r = Cursor::new(data);
    let _ = read_welcome(&mut r, KEY, &hello);
    let mut counter = 0;
    loop {
        let mut got = 0u64;
        let sink = |at: u64, b: &[u8]| {
            assert!(at + b.len() as u64 <= PART_MAX);
            got += b.len() as u64;
            Ok(())
        };
        if read_part(&mut r, b"session", counter, counter, sink).is_err() {
            break;
        }
        assert!(got <= PART_MAX);
        counter += 1;
    }
});
