//! minimega's command language: lexing, patterns, name ranges, the
//! command engine (compile, dispatch, dot-commands), sessions and output.
//! Nothing here does I/O or knows what a VM is: the daemon supplies its
//! commands as [`Spec`]s over its own context type.

pub mod builtins;
pub mod engine;
pub mod help;
pub mod history;
pub mod lexer;
pub mod pattern;
pub mod preprocess;
pub mod ranges;
pub mod render;
pub mod response;
pub mod session;

pub use engine::{
    BoxFuture, Call, CmdResult, Context, Elsewhere, Engine, Handler, Reach, Reply, Spec, Wide,
};
pub use pattern::Args;
pub use response::{table, Flags, Group, Mode, Response};
pub use session::{Origin, Session};

use thiserror::Error;

/// The longest command line the daemon takes, from any front door (the
/// socket, D-Bus, a script's line). minimega's own client never sends
/// lines past 1 MiB (its TOKEN_MAX), and no command is near it.
pub const MAX_LINE: usize = 1 << 20;

/// How much of the input an error message quotes.
pub const EXCERPT: usize = 64;

/// `text` as an error message quotes it: whole when short, else its first
/// [`EXCERPT`] bytes (on a character boundary) and an ellipsis, so an
/// error about a megabyte of input is one short line, not another
/// megabyte (three, once every front door's copies are counted).
pub fn excerpt(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= EXCERPT + 16 {
        return text.into();
    }
    let mut end = EXCERPT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len()).into()
}

/// The error of a line longer than [`MAX_LINE`], quoting only its start.
pub fn too_long(line: &str) -> CommandError {
    CommandError::Invalid(format!(
        "command line of {} bytes is longer than the limit of {MAX_LINE} bytes: `{}`",
        line.len(),
        excerpt(line)
    ))
}

/// Why a command could not be run. Each variant's text is the one line a
/// user sees after `E: `.
#[derive(Debug, Error)]
pub enum CommandError {
    #[error("{0}")]
    Syntax(String),
    #[error("{0}")]
    Range(String),
    /// The input matched no command, or the wrong arguments for one.
    #[error("{0}")]
    Invalid(String),
    /// The command ran and failed.
    #[error("{0}")]
    Failed(String),
}

impl CommandError {
    pub fn failed(msg: impl std::fmt::Display) -> CommandError {
        CommandError::Failed(msg.to_string())
    }
}

#[cfg(test)]
mod tests;
