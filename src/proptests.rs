//! Property tests for the decoders that read what other people send: the
//! command lexer, name ranges, command patterns, the command socket's
//! framing and requests, and mesh discovery datagrams (mesh frames have
//! theirs in `mesh::wire`). The fuzz targets in fuzz/ drive the same code
//! with coverage guidance; these run with every `cargo test`.

use crate::command::lexer::{lex, quote_if_needed, unlex, Word};
use crate::command::pattern::{Outcome, Pattern};
use crate::command::ranges::{compress, expand_list, MAX_EXPANSION};
use crate::mesh::discovery::{self, Announce, DatagramError};
use crate::sock::proto::{encode_request, parse_request, Decoder, FrameError, Request};
use proptest::prelude::*;

fn values(words: &[Word]) -> Vec<String> {
    words.iter().map(|w| w.value.clone()).collect()
}

/// Text with the characters the lexer treats specially, often.
fn line() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            3 => "[a-z0-9=.,\\[\\]-]{1,4}",
            1 => Just(" ".to_string()),
            1 => prop::sample::select(vec!["\"", "'", "\\", "#", "\t", "é", "\u{a0}"])
                .prop_map(String::from),
        ],
        0..24,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_line_lexes_or_errs_and_reads_back_the_same(l in line()) {
        if let Ok(words) = lex(&l) {
            let again = lex(&unlex(&words)).expect("unlex gives a line that lexes");
            prop_assert_eq!(values(&again), values(&words));
        }
    }

    #[test]
    fn any_words_survive_quoting(v in proptest::collection::vec(any::<String>(), 0..6)) {
        let line = v.iter().map(|w| quote_if_needed(w, false)).collect::<Vec<_>>().join(" ");
        let words = lex(&line).unwrap();
        prop_assert_eq!(values(&words), v);
    }

    #[test]
    fn a_range_expands_to_each_number_once(
        prefix in "[a-z]{1,6}",
        a in 0u64..5000,
        n in 0u64..300,
        suffix in "[a-z]{0,3}",
    ) {
        let b = a + n;
        let names = expand_list(&format!("{prefix}[{a}-{b}]{suffix}")).unwrap();
        let want: Vec<String> = (a..=b).map(|i| format!("{prefix}{i}{suffix}")).collect();
        prop_assert_eq!(&names, &want);
        if suffix.is_empty() {
            // Compressed back, the same names.
            let mut back = expand_list(&compress(&names)).unwrap();
            back.sort();
            let mut want = want;
            want.sort();
            prop_assert_eq!(back, want);
        }
    }

    #[test]
    fn any_range_text_is_bounded(spec in "[a-z0-9\\[\\],-]{0,24}") {
        if let Ok(names) = expand_list(&spec) {
            prop_assert!(names.len() <= MAX_EXPANSION);
            prop_assert!(names.iter().all(|n| !n.is_empty()));
        }
    }

    #[test]
    fn a_line_of_a_patterns_words_matches_it(
        lits in proptest::collection::vec("[a-z]{1,6}", 1..4),
        args in proptest::collection::vec("[a-z0-9]{1,6}", 0..3),
        rest in proptest::collection::vec("[a-z0-9]{1,6}", 0..3),
    ) {
        let keys: Vec<String> = (0..args.len()).map(|i| format!("<k{i}>")).collect();
        let text = format!("{} {} [more]...", lits.join(" "), keys.join(" "));
        let p = Pattern::parse(&text).unwrap();
        let input = [lits.clone(), args.clone(), rest.clone()].concat().join(" ");
        match p.matches(&lex(&input).unwrap()) {
            Outcome::Matched { args: bound, exact, .. } => {
                prop_assert!(exact);
                for (i, v) in args.iter().enumerate() {
                    prop_assert_eq!(bound.string(&format!("k{i}")), Some(v.as_str()));
                }
                prop_assert_eq!(bound.list("more"), rest.as_slice());
            }
            Outcome::Failed { .. } => prop_assert!(false, "{input} does not match {text}"),
        }
    }

    #[test]
    fn the_command_table_checks_any_line_without_panicking(l in line()) {
        static ENGINE: std::sync::OnceLock<crate::command::Engine<crate::node::Node>> =
            std::sync::OnceLock::new();
        let engine = ENGINE.get_or_init(crate::cli::engine);
        let _ = engine.check_line(&crate::command::Session::new(), &l);
        let _ = engine.suggest(&l);
    }

    #[test]
    fn requests_frame_the_same_however_the_stream_is_cut(
        reqs in proptest::collection::vec(
            prop_oneof![
                any::<String>().prop_map(Request::Command),
                any::<String>().prop_map(Request::Suggest),
            ],
            1..5,
        ),
        cuts in proptest::collection::vec(1usize..40, 1..10),
    ) {
        let stream: Vec<u8> = reqs.iter().flat_map(encode_request).collect();
        let mut d = Decoder::new(1 << 20);
        let mut got = Vec::new();
        let (mut at, mut i) = (0, 0);
        while at < stream.len() {
            let end = (at + cuts[i % cuts.len()]).min(stream.len());
            d.push(&stream[at..end]);
            at = end;
            i += 1;
            while let Some(o) = d.next_object().unwrap() {
                got.push(o);
            }
        }
        prop_assert!(!d.is_partial());
        let parsed: Vec<_> = got.iter().map(|o| parse_request(o)).collect();
        // An empty command or suggestion is minimega's "neither".
        for (p, r) in parsed.iter().zip(&reqs) {
            match r {
                Request::Command(s) | Request::Suggest(s) if s.is_empty() => prop_assert!(p.is_err()),
                _ => prop_assert_eq!(p.as_ref().ok(), Some(r)),
            }
        }
        prop_assert_eq!(parsed.len(), reqs.len());
    }

    #[test]
    fn any_bytes_on_the_socket_are_bounded(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        limit in 1usize..64,
    ) {
        let mut d = Decoder::new(limit);
        d.push(&bytes);
        loop {
            match d.next_object() {
                Ok(Some(o)) => {
                    prop_assert!(o.len() <= limit);
                    let _ = parse_request(&o);
                }
                Ok(None) => break,
                Err(FrameError::TooLarge { .. } | FrameError::NotAnObject { .. }) => break,
            }
        }
    }

    #[test]
    fn announcements_round_trip_and_any_change_is_refused(
        context in any::<String>(),
        name in any::<String>(),
        port in any::<u16>(),
        wants in any::<bool>(),
        leader in any::<String>(),
        flip in any::<(usize, u8)>(),
    ) {
        let a = Announce { context, name, port, wants, leader };
        let key = b"a mesh key";
        let d = discovery::encode(&a, key);
        prop_assert_eq!(discovery::decode(&d, key), Ok(a));
        prop_assert_eq!(discovery::decode(&d, b"another key"), Err(DatagramError::Mac));
        let (at, bits) = (flip.0 % d.len(), flip.1.max(1));
        let mut bad = d.clone();
        bad[at] ^= bits;
        prop_assert!(discovery::decode(&bad, key).is_err());
    }

    #[test]
    fn any_datagram_is_refused_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut d = b"MMDISC\x01".to_vec();
        d.extend(bytes);
        prop_assert!(discovery::decode(&d, b"k").is_err());
    }
}
