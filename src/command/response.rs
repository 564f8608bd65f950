//! What a command answers: one [`Response`] per host, grouped per command,
//! with the output settings that apply to the group. Field names follow
//! minimega's wire form (`Host`, `Response`, `Header`, ...) because the
//! command socket and the JSON output mode expose them as they are.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub host: String,
    #[serde(default)]
    pub response: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        serialize_with = "empty_as_null"
    )]
    pub header: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        serialize_with = "empty_as_null"
    )]
    pub tabular: Vec<Vec<String>>,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub data: serde_json::Value,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Go's encoder writes an empty slice as `null`; minimega's clients see
/// the same here.
fn empty_as_null<S, T>(v: &[T], s: S) -> Result<S::Ok, S::Error>
where
    S: serde::Serializer,
    T: Serialize,
{
    if v.is_empty() {
        s.serialize_none()
    } else {
        s.collect_seq(v)
    }
}

impl Response {
    pub fn text(text: impl Into<String>) -> Response {
        Response {
            response: text.into(),
            ..Default::default()
        }
    }

    pub fn table(header: Vec<String>, rows: Vec<Vec<String>>) -> Response {
        Response {
            header,
            tabular: rows,
            ..Default::default()
        }
    }

    pub fn error(host: &str, error: impl Into<String>) -> Response {
        Response {
            host: host.to_string(),
            error: error.into(),
            ..Default::default()
        }
    }

    pub fn with_data(mut self, data: serde_json::Value) -> Response {
        self.data = data;
        self
    }

    pub fn is_error(&self) -> bool {
        !self.error.is_empty()
    }

    pub fn is_tabular(&self) -> bool {
        !self.header.is_empty()
    }
}

/// Builds a table response from rows of anything printable.
pub fn table<H, R>(header: H, rows: R) -> Response
where
    H: IntoIterator,
    H::Item: Into<String>,
    R: IntoIterator<Item = Vec<String>>,
{
    Response::table(
        header.into_iter().map(Into::into).collect(),
        rows.into_iter().collect(),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Mode {
    #[default]
    Table,
    Json,
    Csv,
}

/// Output settings: the session's defaults, possibly overridden for one
/// command by a leading dot-command (`.headers false vm info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flags {
    pub mode: Mode,
    pub headers: bool,
    pub annotate: bool,
    pub compress: bool,
    pub sort: bool,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            mode: Mode::Table,
            headers: true,
            annotate: true,
            compress: true,
            sort: true,
        }
    }
}

/// The answer to one command: every host's response and how to print them.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub responses: Vec<Response>,
    pub flags: Flags,
}

impl Group {
    pub fn has_error(&self) -> bool {
        self.responses.iter().any(Response::is_error)
    }
}
