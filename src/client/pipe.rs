//! `minimega -pipe NAME`: a plumber pipe on standard input and output, as
//! minimega's Go client offers it, over the command socket's `PlumbPipe`.

use crate::config::Config;
use crate::plumb::pipes::MAX_MESSAGE;
use crate::plumb::production::qualify;
use crate::plumb::socket::{encode, StringDecoder};
use crate::sock::client::SocketClient;
use std::process::ExitCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `minimega -pipe NAME`: standard input and output on the daemon's pipe,
/// over the command socket (D-Bus has no streams). Ends when standard
/// input does, or the daemon hangs up.
pub fn attach_stdio(config: &Config, pipe: &str) -> ExitCode {
    let pipe = match &config.namespace {
        Some(ns) => qualify(ns, pipe),
        None => pipe.to_string(),
    };
    let Some(rt) = super::runtime() else {
        return ExitCode::FAILURE;
    };
    let code = rt.block_on(async {
        let stream = match SocketClient::connect(&config.socket_path()).await {
            Ok(c) => c.plumb_pipe(&pipe).await,
            Err(e) => Err(e),
        };
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                eprintln!("minimega: {e}");
                return ExitCode::FAILURE;
            }
        };
        let (mut rd, mut wr) = stream.into_split();
        let from_daemon = async {
            use std::io::Write;
            let mut decoder = StringDecoder::new(MAX_MESSAGE + 16);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                while let Ok(Some(m)) = decoder.next_string() {
                    let mut out = std::io::stdout().lock();
                    if out
                        .write_all(m.as_bytes())
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        return;
                    }
                }
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => decoder.push(&buf[..n]),
                }
            }
        };
        // Standard input is read by a thread of its own: a blocking read.
        let (tx, mut lines) = tokio::sync::mpsc::channel::<String>(64);
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
        let to_daemon = async {
            while let Some(line) = lines.recv().await {
                if wr.write_all(&encode(&line)).await.is_err() {
                    return;
                }
            }
        };
        // Whichever ends first ends the session: the end of input, or the
        // daemon gone.
        tokio::select! {
            _ = from_daemon => {}
            _ = to_daemon => {}
        }
        ExitCode::SUCCESS
    });
    // Standard input's thread may still block in a read; do not wait.
    std::process::exit(i32::from(code != ExitCode::SUCCESS))
}
