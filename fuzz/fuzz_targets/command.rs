//! Command patterns: the daemon's own table against any line (what every
//! front door does before running a command), completion of any partial
//! line, and patterns themselves parsed from any text and matched
//! against any words. The first line of the input is the pattern, the
//! rest the command line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minimega::command::lexer::lex;
use minimega::command::pattern::Pattern;
use minimega::command::{Engine, Session};
use minimega::node::Node;
use std::sync::OnceLock;

fn engine() -> &'static Engine<Node> {
    static E: OnceLock<Engine<Node>> = OnceLock::new();
    E.get_or_init(minimega::cli::engine)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, line) = text.split_once('\n').unwrap_or(("", text));
    let _ = engine().check_line(&Session::new(), line);
    let _ = engine().suggest(line);
    if let (Ok(p), Ok(words)) = (Pattern::parse(pattern), lex(line)) {
        let _ = p.matches(&words);
        let _ = p.suggest(&words, false);
        let _ = p.suggest(&words, true);
    }
});
