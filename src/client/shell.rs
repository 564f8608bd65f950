//! The interactive loop: rustyline with history and tab completion when
//! stdin is a terminal; otherwise each line of stdin is run and answered in
//! turn, so a script can be piped in.

use super::{with_namespace, Transport};
use crate::config::Config;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::mpsc as std_mpsc;
use tokio::sync::{mpsc, oneshot};

enum Request {
    Line(String, oneshot::Sender<()>),
    Complete(String, std_mpsc::Sender<Vec<String>>),
}

/// Runs the shell over `t` until end of input. Exit status 1 when the last
/// answer of a piped script was an error, as a script runner expects.
pub async fn run(mut t: Transport, config: Config) -> ExitCode {
    let (tx, mut rx) = mpsc::channel::<Request>(1);
    let interactive = std::io::stdin().is_terminal();
    let reader = std::thread::spawn(move || {
        if interactive {
            read_terminal(tx)
        } else {
            read_pipe(tx)
        }
    });
    let mut failed = false;
    let mut quit = false;
    while let Some(req) = rx.recv().await {
        match req {
            Request::Line(line, done) => {
                let line = with_namespace(&config, &line);
                match t.exec(&line).await {
                    Ok(a) => {
                        if !a.text.is_empty() {
                            println!("{}", a.text);
                        }
                        failed = a.error;
                        if a.quit {
                            quit = true;
                            let _ = std::io::stdout().flush();
                            break;
                        }
                    }
                    Err(e) => {
                        eprintln!("minimega: {e}");
                        failed = true;
                        let _ = std::io::stdout().flush();
                        let _ = done.send(());
                        break;
                    }
                }
                let _ = std::io::stdout().flush();
                let _ = done.send(());
            }
            Request::Complete(partial, back) => {
                let _ = back.send(t.complete(&partial).await);
            }
        }
    }
    drop(rx);
    // After `quit` the reader may sit in a terminal read: leave it; the
    // process ends without it.
    if !quit {
        let _ = reader.join();
    }
    if failed && !interactive {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The daemon's own terminal, when it runs in the foreground.
pub async fn local_shell(daemon: crate::cli::Core) {
    let config = daemon.node.config.clone();
    let t = Transport::Local {
        daemon,
        session: crate::command::Session::new(),
    };
    run(t, config).await;
}

fn read_pipe(tx: mpsc::Sender<Request>) {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (done, wait) = oneshot::channel();
        if tx.blocking_send(Request::Line(line, done)).is_err() {
            break;
        }
        let _ = wait.blocking_recv();
    }
}

struct Completer {
    tx: mpsc::Sender<Request>,
}

impl rustyline::completion::Completer for Completer {
    type Candidate = String;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let (back, answer) = std_mpsc::channel();
        if self
            .tx
            .blocking_send(Request::Complete(line[..pos].to_string(), back))
            .is_err()
        {
            return Ok((0, Vec::new()));
        }
        // Candidates are whole lines; replace from the start.
        Ok((0, answer.recv().unwrap_or_default()))
    }
}

impl rustyline::hint::Hinter for Completer {
    type Hint = String;
}
impl rustyline::highlight::Highlighter for Completer {}
impl rustyline::validate::Validator for Completer {}
impl rustyline::Helper for Completer {}

fn read_terminal(tx: mpsc::Sender<Request>) {
    let Ok(mut rl) = rustyline::Editor::<Completer, rustyline::history::DefaultHistory>::new()
    else {
        return read_pipe(tx);
    };
    rl.set_helper(Some(Completer { tx: tx.clone() }));
    loop {
        match rl.readline("minimega$ ") {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = rl.add_history_entry(line.as_str());
                }
                if matches!(line.trim(), "exit" | "disconnect") {
                    break;
                }
                let (done, wait) = oneshot::channel();
                if tx.blocking_send(Request::Line(line, done)).is_err() {
                    break;
                }
                let _ = wait.blocking_recv();
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => break,
        }
    }
}
