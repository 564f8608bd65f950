//! Calls to the daemon's D-Bus service, for `minimega -e` and `-attach`.

use super::{BUS_NAME, INTERFACE, OBJECT_PATH};
use crate::config::Bus;
use std::time::Duration;
use thiserror::Error;
use zbus::Connection;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot reach {bus}: {why}")]
    NoBus { bus: String, why: String },
    #[error("minimega is not running (nobody owns {BUS_NAME} on {bus}); start it with: systemctl start minimega")]
    NotRunning { bus: String },
    #[error(
        "permission denied by the D-Bus policy: run as root or as a member of group minimega ({0})"
    )]
    Denied(String),
    #[error("D-Bus call failed: {0}")]
    Call(String),
}

/// The decoded answer of `Exec`.
#[derive(Debug, Clone)]
pub struct ExecReply {
    pub text: String,
    pub hosts: Vec<(String, String, String)>,
    pub json: String,
}

impl ExecReply {
    pub fn has_error(&self) -> bool {
        self.hosts.iter().any(|(_, _, e)| !e.is_empty())
    }
}

pub struct Client {
    conn: Connection,
    bus: String,
}

impl Client {
    /// Connects within a few seconds or says why not.
    pub async fn connect(bus: &Bus) -> Result<Client, ClientError> {
        let name = super::describe(bus);
        let no_bus = |why: String| ClientError::NoBus {
            bus: name.clone(),
            why,
        };
        let builder = super::builder(bus).map_err(|e| no_bus(e.to_string()))?;
        let conn = tokio::time::timeout(Duration::from_secs(5), builder.build())
            .await
            .map_err(|_| no_bus("timed out connecting".into()))?
            .map_err(|e| no_bus(e.to_string()))?;
        Ok(Client { conn, bus: name })
    }

    async fn call<B, R>(&self, method: &str, body: &B) -> Result<R, ClientError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
    {
        let reply = self
            .conn
            .call_method(Some(BUS_NAME), OBJECT_PATH, Some(INTERFACE), method, body)
            .await
            .map_err(|e| self.classify(e))?;
        reply
            .body()
            .deserialize()
            .map_err(|e| ClientError::Call(e.to_string()))
    }

    fn classify(&self, e: zbus::Error) -> ClientError {
        let name = match &e {
            zbus::Error::MethodError(name, _, _) => name.as_str().to_string(),
            zbus::Error::FDO(f) => format!("{f}"),
            _ => String::new(),
        };
        if name.contains("ServiceUnknown") || name.contains("NameHasNoOwner") {
            ClientError::NotRunning {
                bus: self.bus.clone(),
            }
        } else if name.contains("AccessDenied") {
            ClientError::Denied(e.to_string())
        } else {
            ClientError::Call(e.to_string())
        }
    }

    /// The bus connection, for a caller that also listens to signals.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub async fn exec(&self, line: &str) -> Result<ExecReply, ClientError> {
        let (text, hosts, json): (String, Vec<(String, String, String)>, String) =
            self.call("Exec", &(line,)).await?;
        Ok(ExecReply { text, hosts, json })
    }

    pub async fn complete(&self, partial: &str) -> Result<Vec<String>, ClientError> {
        self.call("Complete", &(partial,)).await
    }
}
