//! minirouter's tests. Expected configurations are written by hand from
//! what each tool takes (and, for the file format, from minimega's
//! writeConfig), not produced by the code under test.

mod fake;
mod parse;
mod plan;
mod render;
mod run;
mod state;

use super::model::State;
use super::parse::parse;
use super::state::Commits;

/// The state a file makes of an empty one.
fn state_of(text: &str) -> (State, Commits) {
    State::default().apply(&parse(text).unwrap())
}

fn lines(l: &[&str]) -> String {
    let mut s = l.join("\n");
    s.push('\n');
    s
}
