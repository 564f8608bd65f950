//! The thin client: `minimega -e <command>` and `minimega -attach`, and the
//! daemon's own terminal shell. All three read lines and print what the
//! engine renders; only the transport differs: D-Bus, or the command socket
//! where there is no bus at all (nodes without systemd), or the engine
//! itself for the daemon's terminal.

pub mod console;
pub mod pipe;
mod shell;

pub use shell::local_shell;

use crate::config::Config;
use crate::dbus::client::{Client, ClientError};
use crate::sock::client::{SocketClient, SocketClientError};
use std::process::ExitCode;
use thiserror::Error;

/// Why a line could not be run; one line for the user.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Dbus(#[from] ClientError),
    #[error(transparent)]
    Socket(#[from] SocketClientError),
    /// No bus, and no daemon on the command socket either.
    #[error("{socket}; and there is no D-Bus: {bus}")]
    Unreachable {
        socket: SocketClientError,
        bus: ClientError,
    },
}

/// Where lines go.
pub enum Transport {
    Dbus(Client),
    Socket(SocketClient),
    Local {
        daemon: crate::cli::Core,
        session: crate::command::Session,
    },
}

/// One answer as the client prints it.
pub struct Answer {
    pub text: String,
    pub error: bool,
    /// The line was `quit`: the daemon ended this session.
    pub quit: bool,
}

/// Whether a line is `quit` (or nests it), by this binary's command table.
fn is_quit(line: &str) -> bool {
    static ENGINE: std::sync::OnceLock<crate::command::Engine<crate::node::Node>> =
        std::sync::OnceLock::new();
    let engine = ENGINE.get_or_init(crate::cli::engine);
    crate::command::lexer::lex(line)
        .is_ok_and(|w| !w.is_empty() && engine.names_command(&w, "quit"))
}

impl Transport {
    /// D-Bus when there is a bus; the command socket only when there is no
    /// bus at all. A bus without the daemon on it means the daemon is not
    /// running, and says so.
    pub async fn connect(config: &Config) -> Result<Transport, Error> {
        match Client::connect(&config.bus).await {
            Ok(c) => Ok(Transport::Dbus(c)),
            Err(bus @ ClientError::NoBus { .. }) => {
                // The first place that has a socket answers; the error of
                // the first place is the one reported.
                let mut first = None;
                for path in config.socket_paths() {
                    match SocketClient::connect(&path).await {
                        Ok(s) => return Ok(Transport::Socket(s)),
                        Err(SocketClientError::Missing { .. }) if first.is_some() => {}
                        Err(e) => {
                            if first.is_none()
                                || matches!(first, Some(SocketClientError::Missing { .. }))
                            {
                                first = Some(e);
                            }
                        }
                    }
                }
                let socket = first.expect("at least the base's socket");
                Err(Error::Unreachable { socket, bus })
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn exec(&mut self, line: &str) -> Result<Answer, Error> {
        match self {
            Transport::Dbus(c) => {
                let r = c.exec(line).await?;
                Ok(Answer {
                    error: r.has_error(),
                    text: r.text,
                    quit: is_quit(line),
                })
            }
            Transport::Socket(s) => {
                let replies = s.exec(line).await?;
                Ok(Answer {
                    text: crate::sock::client::answer_text(&replies),
                    error: replies.iter().any(|r| r.has_error()),
                    quit: is_quit(line),
                })
            }
            Transport::Local { daemon, session } => {
                let groups = daemon.exec(session, line).await;
                let quit = std::mem::take(&mut session.quit);
                Ok(Answer {
                    text: crate::command::render::render_groups(&groups),
                    error: groups.iter().any(|g| g.has_error()),
                    quit,
                })
            }
        }
    }

    pub async fn complete(&mut self, partial: &str) -> Vec<String> {
        match self {
            Transport::Dbus(c) => c.complete(partial).await.unwrap_or_default(),
            Transport::Socket(s) => s.suggest(partial).await.unwrap_or_default(),
            Transport::Local { daemon, .. } => daemon.engine.suggest(partial),
        }
    }
}

/// Prefixes a line with `namespace NAME` when `-namespace` was given.
pub fn with_namespace(config: &Config, line: &str) -> String {
    match &config.namespace {
        Some(ns) if !line.trim().is_empty() => {
            format!(
                "namespace {} {line}",
                crate::command::lexer::quote_if_needed(ns, false)
            )
        }
        _ => line.to_string(),
    }
}

/// The words after `-e` as one line, joined as minimega joins them: one
/// word is the line as it is (the shell already removed one level of
/// quoting, so `-e 'vm config append "a b"'` keeps its inner quotes);
/// of several, a word holding blanks is quoted (`-e vm tag a "k" "x y"`).
pub fn join_words(words: &[String]) -> String {
    if let [one] = words {
        return one.clone();
    }
    words
        .iter()
        .map(|w| {
            if w.contains(char::is_whitespace) {
                go_quote(w)
            } else {
                w.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A word in double quotes, escaped as the language's lexer reads it.
fn go_quote(w: &str) -> String {
    let mut out = String::from('"');
    for c in w.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `minimega -e`: joins the words into one command, prints the answer and
/// exits 1 when any host answered with an error.
pub fn exec_once(config: &Config, words: &[String]) -> ExitCode {
    let line = join_words(words);
    if line.trim().is_empty() {
        eprintln!("minimega: -e needs a command, e.g. `minimega -e version`");
        return ExitCode::from(2);
    }
    let line = with_namespace(config, &line);
    connected(config, |mut t| async move {
        match t.exec(&line).await {
            Ok(a) => {
                if !a.text.is_empty() {
                    println!("{}", a.text);
                }
                if a.error {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("minimega: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// The client's runtime, or None after saying why there is none.
pub fn runtime() -> Option<tokio::runtime::Runtime> {
    // A runtime of its own thread: -attach's terminal thread sends it
    // lines and completion requests from outside.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| eprintln!("minimega: cannot start: {e}"))
        .ok()
}

/// Runs `f` on a connection to the daemon, or says in one line why there
/// is none.
fn connected<F, Fut>(config: &Config, f: F) -> ExitCode
where
    F: FnOnce(Transport) -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    rt.block_on(async {
        match Transport::connect(config).await {
            Ok(t) => f(t).await,
            Err(e) => {
                eprintln!("minimega: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// `minimega -attach`: an interactive session over one connection.
pub fn attach(config: &Config) -> ExitCode {
    let cfg = config.clone();
    connected(config, |t| shell::run(t, cfg))
}

#[cfg(test)]
mod tests {
    use super::join_words;
    use crate::command::lexer::lex;

    fn words(line: &str) -> Vec<String> {
        lex(line).unwrap().into_iter().map(|w| w.value).collect()
    }

    #[test]
    fn minus_e_words_join_as_minimega_joins_them() {
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // One word: the line as typed, inner quotes and all.
        assert_eq!(
            join_words(&w(&[r#"vm config append "a b""#])),
            r#"vm config append "a b""#
        );
        // Several: a word with blanks stays one word.
        let line = join_words(&w(&["vm", "tag", "a", "k", "x \"y\" z\\"]));
        assert_eq!(words(&line), ["vm", "tag", "a", "k", "x \"y\" z\\"]);
        assert_eq!(join_words(&w(&["vm", "info"])), "vm info");
    }
}
