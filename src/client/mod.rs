//! The thin client: `minimega -e <command>` and `minimega -attach`, and the
//! daemon's own terminal shell. All three read lines and print what the
//! engine renders; only the transport differs.

mod shell;

pub use shell::local_shell;

use crate::config::Config;
use crate::dbus::client::{Client, ClientError};
use std::process::ExitCode;

/// Where lines go.
pub enum Transport {
    Dbus(Client),
    Local {
        daemon: crate::daemon::Daemon,
        session: crate::command::Session,
    },
}

/// One answer as the client prints it.
pub struct Answer {
    pub text: String,
    pub error: bool,
}

impl Transport {
    pub async fn connect(config: &Config) -> Result<Transport, ClientError> {
        Ok(Transport::Dbus(Client::connect(&config.bus).await?))
    }

    pub async fn exec(&mut self, line: &str) -> Result<Answer, ClientError> {
        match self {
            Transport::Dbus(c) => {
                let r = c.exec(line).await?;
                Ok(Answer {
                    error: r.has_error(),
                    text: r.text,
                })
            }
            Transport::Local { daemon, session } => {
                let groups = daemon.exec(session, line).await;
                let (text, hosts, _) = crate::dbus::server::exec_reply(&groups);
                Ok(Answer {
                    text,
                    error: hosts.iter().any(|h| !h.2.is_empty()),
                })
            }
        }
    }

    pub async fn complete(&mut self, partial: &str) -> Vec<String> {
        match self {
            Transport::Dbus(c) => c.complete(partial).await.unwrap_or_default(),
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

/// `minimega -e`: joins the words into one command, prints the answer and
/// exits 1 when any host answered with an error.
pub fn exec_once(config: &Config, words: &[String]) -> ExitCode {
    // Joined as minimega joins them: the shell already removed one level of
    // quoting, so `-e 'vm config append "a b"'` keeps its inner quotes.
    let line = words.join(" ");
    if line.trim().is_empty() {
        eprintln!("minimega: -e needs a command, e.g. `minimega -e version`");
        return ExitCode::from(2);
    }
    let line = with_namespace(config, &line);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("minimega: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let mut t = match Transport::connect(config).await {
            Ok(t) => t,
            Err(e) => {
                eprintln!("minimega: {e}");
                return ExitCode::FAILURE;
            }
        };
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

/// `minimega -attach`: an interactive session over one connection.
pub fn attach(config: &Config) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("minimega: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let t = match Transport::connect(config).await {
            Ok(t) => t,
            Err(e) => {
                eprintln!("minimega: {e}");
                return ExitCode::FAILURE;
            }
        };
        shell::run(t, config.clone()).await
    })
}
