//! miniccc's wire: any byte stream as a cc session reads it after `RON`
//! (length prefixes, type definitions, values, the ron message fields
//! within the codec's bounds). Never panics; a message that decodes
//! re-encodes to one that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minimega::cc::gob::{frame_len, Decoder, Encoder};
use minimega::cc::ron::{Message, T_MESSAGE};

fuzz_target!(|data: &[u8]| {
    let mut dec = Decoder::new();
    let mut rest = data;
    while let Ok(Some((head, len))) = frame_len(rest) {
        let Some(body) = rest.get(head..head + len) else {
            return;
        };
        rest = &rest[head + len..];
        let Ok(Some((_, v))) = dec.message(body) else {
            continue;
        };
        let Ok(m) = Message::from_gob(&v) else {
            continue;
        };
        let again = Encoder::new()
            .encode(&T_MESSAGE, &m.to_gob())
            .expect("a decoded message encodes");
        let mut fresh = Decoder::new();
        let mut at = &again[..];
        let mut back = None;
        while let Ok(Some((h, l))) = frame_len(at) {
            if let Some((_, v)) = fresh.message(&at[h..h + l]).expect("our own frames decode") {
                back = Some(Message::from_gob(&v).expect("our own message reads"));
            }
            at = &at[h + l..];
        }
        assert_eq!(back.as_ref(), Some(&m));
    }
});
