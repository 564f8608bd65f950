//! The lexer on any line: never panics, and what it reads turns back
//! into a line that reads the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minimega::command::lexer::{lex, unlex};

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(words) = lex(line) {
        let again = lex(&unlex(&words)).expect("unlex gives a line that lexes");
        let values = |w: &[minimega::command::lexer::Word]| {
            w.iter().map(|w| w.value.clone()).collect::<Vec<_>>()
        };
        assert_eq!(values(&again), values(&words), "line {line:?}");
    }
});
