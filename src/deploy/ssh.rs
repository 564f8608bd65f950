//! SSH to compute nodes with russh: key authentication, host keys checked
//! against known_hosts (never silently trusted), commands run with their
//! output and exit status, files uploaded through a command's stdin.

use russh::client::{self, Handle};
use russh::keys::{self, HashAlg, PrivateKeyWithHashAlg, PublicKey};
use russh::ChannelMsg;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SshError {
    #[error("cannot connect to {addr}: {why}")]
    Connect { addr: String, why: String },
    #[error("unknown host key for {host} ({fingerprint}): add it to /root/.ssh/known_hosts or run `deploy hostkeys accept-new`")]
    UnknownHostKey { host: String, fingerprint: String },
    #[error(
        "HOST KEY CHANGED for {host} ({fingerprint}; {file} line {line}): refusing to connect"
    )]
    ChangedHostKey {
        host: String,
        fingerprint: String,
        file: String,
        line: usize,
    },
    #[error("no usable SSH key: {0}")]
    NoKey(String),
    #[error("authentication refused for {user}@{host} with {keys}")]
    AuthRefused {
        user: String,
        host: String,
        keys: String,
    },
    #[error("ssh to {host}: {why}")]
    Session { host: String, why: String },
}

/// What to do with a host key nobody recorded yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Refuse (the default).
    Strict,
    /// Record it in the first known_hosts file, then trust it.
    AcceptNew,
}

/// Where host keys are looked up; the first file is the one learned into.
#[derive(Debug, Clone)]
pub struct Trust {
    pub known_hosts: Vec<PathBuf>,
    pub policy: HostKeyPolicy,
}

impl Trust {
    /// Root's (or the daemon user's) known_hosts, then the system's.
    pub fn standard(home: &Path, policy: HostKeyPolicy) -> Trust {
        Trust {
            known_hosts: vec![
                home.join(".ssh/known_hosts"),
                PathBuf::from("/etc/ssh/ssh_known_hosts"),
            ],
            policy,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Trusted,
    Learned,
    Unknown(String),
    Changed {
        fingerprint: String,
        file: String,
        line: usize,
    },
}

struct Checker {
    host: String,
    port: u16,
    trust: Trust,
    verdict: Arc<Mutex<Option<Verdict>>>,
}

impl Checker {
    fn judge(&self, key: &PublicKey) -> Verdict {
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        for file in &self.trust.known_hosts {
            match keys::check_known_hosts_path(&self.host, self.port, key, file) {
                Ok(true) => return Verdict::Trusted,
                Ok(false) => {}
                Err(keys::Error::KeyChanged { line }) => {
                    return Verdict::Changed {
                        fingerprint,
                        file: file.display().to_string(),
                        line,
                    }
                }
                Err(_) => {}
            }
        }
        if self.trust.policy == HostKeyPolicy::AcceptNew {
            if let Some(first) = self.trust.known_hosts.first() {
                if keys::known_hosts::learn_known_hosts_path(&self.host, self.port, key, first)
                    .is_ok()
                {
                    return Verdict::Learned;
                }
            }
        }
        Verdict::Unknown(fingerprint)
    }
}

impl client::Handler for Checker {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let verdict = match key {
            keys::PublicKeyOrCertificate::PublicKey { key, .. } => self.judge(key),
            // Certificates would need a CA policy we do not have: refuse.
            keys::PublicKeyOrCertificate::Certificate(_) => {
                Verdict::Unknown("a host certificate".into())
            }
        };
        let ok = matches!(verdict, Verdict::Trusted | Verdict::Learned);
        *self.verdict.lock().unwrap_or_else(|p| p.into_inner()) = Some(verdict);
        Ok(ok)
    }
}

/// The result of a remote command.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub status: u32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.status == 0
    }

    /// The last non-empty line of stderr (or stdout), for one-line errors.
    pub fn reason(&self) -> String {
        let pick = |s: &str| {
            s.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string())
        };
        pick(&self.stderr)
            .or_else(|| pick(&self.stdout))
            .unwrap_or_else(|| format!("exit status {}", self.status))
    }
}

pub struct Session {
    handle: Handle<Checker>,
    host: String,
}

/// Private keys to try: the given identity, or the user's usual ones.
pub fn default_identities(home: &Path) -> Vec<PathBuf> {
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|k| home.join(".ssh").join(k))
        .filter(|p| p.exists())
        .collect()
}

impl Session {
    pub async fn connect(
        host: &str,
        port: u16,
        user: &str,
        identities: &[PathBuf],
        trust: Trust,
        timeout: Duration,
    ) -> Result<Session, SshError> {
        // Before connecting: with `accept-new`, a connection that can never
        // log in would still learn the host's key.
        if identities.is_empty() {
            return Err(SshError::NoKey(
                "no identity given and none in ~/.ssh (id_ed25519, id_ecdsa, id_rsa)".into(),
            ));
        }
        let addr = format!("{host}:{port}");
        let verdict = Arc::new(Mutex::new(None));
        let checker = Checker {
            host: host.to_string(),
            port,
            trust,
            verdict: verdict.clone(),
        };
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(Duration::from_secs(120)),
            keepalive_interval: Some(Duration::from_secs(15)),
            ..Default::default()
        });
        let connected =
            tokio::time::timeout(timeout, client::connect(config, addr.as_str(), checker)).await;
        let mut handle = match connected {
            Err(_) => {
                return Err(SshError::Connect {
                    addr,
                    why: format!("timed out after {}s", timeout.as_secs()),
                })
            }
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                let v = verdict.lock().unwrap_or_else(|p| p.into_inner()).clone();
                return Err(match v {
                    Some(Verdict::Unknown(fingerprint)) => SshError::UnknownHostKey {
                        host: host.to_string(),
                        fingerprint,
                    },
                    Some(Verdict::Changed {
                        fingerprint,
                        file,
                        line,
                    }) => SshError::ChangedHostKey {
                        host: host.to_string(),
                        fingerprint,
                        file,
                        line,
                    },
                    _ => SshError::Connect {
                        addr,
                        why: connect_reason(&e),
                    },
                });
            }
        };
        let session_err = |e: russh::Error| SshError::Session {
            host: host.to_string(),
            why: e.to_string(),
        };
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .map_err(session_err)?
            .flatten();
        for path in identities {
            let key = keys::load_secret_key(path, None)
                .map_err(|e| SshError::NoKey(format!("{}: {e}", path.display())))?;
            let auth = handle
                .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
                .await
                .map_err(session_err)?;
            if auth.success() {
                return Ok(Session {
                    handle,
                    host: host.to_string(),
                });
            }
        }
        Err(SshError::AuthRefused {
            user: user.to_string(),
            host: host.to_string(),
            keys: identities
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Runs `command` (a shell line) with `stdin` fed to it. Input is
    /// written while output is read: a command that exits without reading
    /// all of it (a failed `cat > file`) must not leave us waiting for
    /// window space that never comes.
    pub async fn run(&self, command: &str, stdin: Option<&[u8]>) -> Result<Run, SshError> {
        let err = |e: russh::Error| SshError::Session {
            host: self.host.clone(),
            why: e.to_string(),
        };
        let ch = self.handle.channel_open_session().await.map_err(err)?;
        ch.exec(true, command).await.map_err(err)?;
        let (mut rx, tx) = ch.split();
        let input = stdin.map(|d| d.to_vec()).unwrap_or_default();
        let writer = async move {
            if !input.is_empty() {
                tx.data(&input[..]).await?;
            }
            tx.eof().await
        };
        let reader = async {
            let mut out = Run::default();
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            while let Some(msg) = rx.wait().await {
                match msg {
                    ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
                    ChannelMsg::ExtendedData { data, .. } => stderr.extend_from_slice(&data),
                    ChannelMsg::ExitStatus { exit_status } => out.status = exit_status,
                    _ => {}
                }
            }
            out.stdout = String::from_utf8_lossy(&stdout).into_owned();
            out.stderr = String::from_utf8_lossy(&stderr).into_owned();
            out
        };
        tokio::pin!(writer);
        tokio::pin!(reader);
        // The command's end decides; an unfinished write is dropped then.
        let mut writing = true;
        loop {
            tokio::select! {
                w = &mut writer, if writing => {
                    writing = false;
                    if let Err(e) = w {
                        // The command closed its input early; its exit
                        // status and output still tell what happened.
                        tracing::debug!("ssh {}: stdin: {e}", self.host);
                    }
                }
                out = &mut reader => return Ok(out),
            }
        }
    }

    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

fn connect_reason(e: &russh::Error) -> String {
    match e {
        russh::Error::IO(io) => io.to_string(),
        other => other.to_string(),
    }
}
