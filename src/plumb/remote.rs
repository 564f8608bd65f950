//! How the plumbers of several nodes act as one, as minimega's do: a write
//! reaches the readers of every node, round-robin and random choose among
//! all of them, and a via runs on the node where it was set. The messages
//! travel as a command line of their own (`plumb mesh-message <json>`)
//! through the mesh, like every other request between nodes.

use super::modes::ReaderKey;
use crate::command::{lexer, BoxFuture, Response};
use crate::mesh::Mesh;
use serde::{Deserialize, Serialize};

/// The command line's leading words.
pub const COMMAND: &str = "plumb mesh-message";

/// Who a delivery is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum To {
    /// Every reader of the pipe on the receiving node.
    All,
    /// These readers (each node takes its own), each with its own value.
    Readers(Vec<(ReaderKey, String)>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A message written on another node: count it, hand it to readers.
    Deliver { pipe: String, value: String, to: To },
    /// Which readers of the pipe does the receiving node hold? Answered
    /// with their ids.
    Readers { pipe: String },
    /// A write for the node that runs the pipe's via.
    Write { pipe: String, value: String },
    /// The pipe's via now runs on `host` (none: the via was cleared).
    ViaHost { pipe: String, host: Option<String> },
}

impl Message {
    pub fn line(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        format!("{COMMAND} {}", lexer::quote_if_needed(&json, true))
    }

    pub fn parse(json: &str) -> Result<Message, String> {
        serde_json::from_str(json).map_err(|e| format!("invalid plumber message: {e}"))
    }
}

/// One node's answer: what it returned, or why it did not.
pub type Answer = (String, Result<serde_json::Value, String>);

/// The other nodes, as the plumber needs them.
pub trait Remote: Send + Sync {
    /// Every other node of the mesh.
    fn others(&self) -> Vec<String>;
    fn send(&self, targets: Vec<String>, msg: Message) -> BoxFuture<'static, Vec<Answer>>;
}

impl Remote for Mesh {
    fn others(&self) -> Vec<String> {
        Mesh::others(self)
    }

    fn send(&self, targets: Vec<String>, msg: Message) -> BoxFuture<'static, Vec<Answer>> {
        let mesh = self.clone();
        Box::pin(async move {
            let responses: Vec<Response> = mesh.send(&targets, &msg.line()).await;
            responses
                .into_iter()
                .map(|r| {
                    let a = if r.is_error() {
                        Err(r.error)
                    } else {
                        Ok(r.data)
                    };
                    (r.host, a)
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_survives_the_command_line() {
        let m = Message::Deliver {
            pipe: "ns//p".into(),
            value: "say \"hi\" \\ # not a comment\n".into(),
            to: To::Readers(vec![(
                ReaderKey {
                    host: "n1".into(),
                    id: 3,
                },
                "x".into(),
            )]),
        };
        let line = m.line();
        assert!(line.starts_with("plumb mesh-message \""), "{line}");
        let words = lexer::lex(&line).unwrap();
        assert_eq!(words.len(), 3);
        assert_eq!(Message::parse(&words[2].value).unwrap(), m);
        assert!(Message::parse("{}")
            .unwrap_err()
            .starts_with("invalid plumber message"));
    }
}
