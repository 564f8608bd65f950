//! Name ranges (`vm[1-5],web`) on any text: never panics, never expands
//! past the cap, and compressing an expansion expands back to the same
//! names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minimega::command::ranges::{compress, expand_list, MAX_EXPANSION};

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(names) = expand_list(spec) else {
        return;
    };
    assert!(
        names.len() <= MAX_EXPANSION,
        "{spec:?}: {} names",
        names.len()
    );
    let packed = compress(&names);
    if let Ok(mut back) = expand_list(&packed) {
        let mut want = names.clone();
        want.sort();
        want.dedup();
        back.sort();
        back.dedup();
        assert_eq!(back, want, "{spec:?} compressed to {packed:?}");
    }
});
