//! Vias: a program each message goes through once per reader, so one
//! write can give every reader its own value (`pipe foo via normal
//! -stddev 5`). The program gets the message and a newline on its
//! standard input; its standard output, less one final newline, is what
//! the reader receives.

use crate::command::BoxFuture;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A via that has not answered by then is killed and that reader skipped.
pub const VIA_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a via command on one message.
pub trait Via: Send + Sync {
    fn run<'a>(
        &'a self,
        argv: &'a [String],
        input: &'a str,
    ) -> BoxFuture<'a, Result<String, String>>;
}

/// Runs the program as a child process.
pub struct ProcessVia;

impl Via for ProcessVia {
    fn run<'a>(
        &'a self,
        argv: &'a [String],
        input: &'a str,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let Some(program) = argv.first() else {
                return Err("empty via".into());
            };
            let path = crate::paths::find_binary(program)
                .ok_or_else(|| format!("via `{program}`: not found in PATH"))?;
            let mut child = tokio::process::Command::new(path)
                .args(&argv[1..])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("via `{program}`: {e}"))?;
            let mut stdin = child.stdin.take().expect("piped");
            let mut stdout = child.stdout.take().expect("piped");
            let mut stderr = child.stderr.take().expect("piped");
            let run = async {
                let feed = async {
                    // A via may exit without reading all of its input.
                    let _ = stdin.write_all(input.as_bytes()).await;
                    let _ = stdin.write_all(b"\n").await;
                    drop(stdin);
                };
                let mut out = Vec::new();
                let mut err = Vec::new();
                let read = async {
                    let mut limited = (&mut stdout).take(super::pipes::MAX_MESSAGE as u64 + 1);
                    limited.read_to_end(&mut out).await
                };
                let read_err = async {
                    let mut limited = (&mut stderr).take(4096);
                    limited.read_to_end(&mut err).await
                };
                let ((), r, _) = tokio::join!(feed, read, read_err);
                r.map_err(|e| format!("via `{program}`: {e}"))?;
                let status = child
                    .wait()
                    .await
                    .map_err(|e| format!("via `{program}`: {e}"))?;
                if out.len() > super::pipes::MAX_MESSAGE {
                    return Err(format!("via `{program}`: output larger than 1 MiB"));
                }
                if !status.success() {
                    let why = String::from_utf8_lossy(&err).trim().to_string();
                    return Err(format!("via `{program}` failed ({status}): {why}"));
                }
                let mut text = String::from_utf8_lossy(&out).into_owned();
                if text.ends_with('\n') {
                    text.pop();
                }
                Ok(text)
            };
            tokio::time::timeout(VIA_TIMEOUT, run)
                .await
                .unwrap_or_else(|_| Err(format!("via `{program}`: no answer within 10s")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn a_real_program_transforms_the_message() {
        let v = ProcessVia;
        assert_eq!(
            v.run(&argv(&["tr", "a-z", "A-Z"]), "hello").await.unwrap(),
            "HELLO"
        );
        // Output without a final newline is kept as it is.
        assert_eq!(
            v.run(&argv(&["printf", "%s", "x"]), "ignored")
                .await
                .unwrap(),
            "x"
        );
    }

    #[tokio::test]
    async fn failures_say_which_via_and_why() {
        let v = ProcessVia;
        let e = v
            .run(&argv(&["no-such-via-program"]), "x")
            .await
            .unwrap_err();
        assert!(
            e.contains("no-such-via-program") && e.contains("not found"),
            "{e}"
        );
        let e = v
            .run(&argv(&["sh", "-c", "echo broken >&2; exit 3"]), "x")
            .await
            .unwrap_err();
        assert!(e.contains("failed") && e.contains("broken"), "{e}");
    }
}
