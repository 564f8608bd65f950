//! Mesh frames: any byte stream as a link reads it (header checks, size
//! cap, MAC), and any payload sealed with the right key under the kind the
//! first byte names, so the payload decoders are reached. Never panics;
//! a frame that opens re-seals to one that opens to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minimega::mesh::wire::{seal_raw, Opener, Sealer, KINDS};

const KEY: &[u8] = b"fuzz key";

fuzz_target!(|data: &[u8]| {
    // As read off a link: frames back to back until one fails.
    let mut raw = Opener::new(KEY);
    let mut at = 0;
    while let Ok(Some((_, used))) = raw.decode(&data[at..]) {
        assert!(used > 0 && at + used <= data.len());
        at += used;
    }

    let Some((&k, payload)) = data.split_first() else {
        return;
    };
    let kind = KINDS[usize::from(k) % KINDS.len()];
    let Ok(frame) = seal_raw(KEY, kind, 0, payload) else {
        return;
    };
    let mut opener = Opener::new(KEY);
    if let Ok(Some((msg, used))) = opener.decode(&frame) {
        assert_eq!(used, frame.len());
        let again = Sealer::new(KEY)
            .seal(&msg)
            .expect("a decoded message seals");
        let (back, _) = Opener::new(KEY)
            .decode(&again)
            .expect("a re-sealed frame opens")
            .expect("whole");
        assert_eq!(back, msg);
    }
});
