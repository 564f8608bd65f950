//! What a command answers: one [`Response`] per host, grouped per command,
//! with the output settings that apply to the group. Field names follow
//! minimega's wire form (`Host`, `Response`, `Header`, ...) because the
//! command socket and the JSON output mode expose them as they are.

use serde::{Deserialize, Serialize};

/// One host's answer. On the wire (the command socket, JSON mode, the
/// mesh) it is minimega's `minicli.Response`, field for field: `Header`
/// is `null` for an answer that is no table, and `Tabular` is `null` for
/// a table without rows unless [`Response::listed`] says the command
/// answers `[]` there (minimega's `file list`, `vlans`, `cc commands`...
/// do, `vm info` does not): `.columns` and `.filter` treat the two apart,
/// as minimega's do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(into = "Wire", from = "Wire")]
pub struct Response {
    pub host: String,
    pub response: String,
    pub header: Vec<String>,
    pub tabular: Vec<Vec<String>>,
    pub error: String,
    pub data: serde_json::Value,
    /// The rows are a list even when there are none (`"Tabular": []`).
    pub listed: bool,
}

/// [`Response`] as minimega's encoder writes it: nil slices as `null`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Wire {
    #[serde(default)]
    host: String,
    #[serde(default)]
    response: String,
    #[serde(default)]
    header: Option<Vec<String>>,
    #[serde(default)]
    tabular: Option<Vec<Vec<String>>>,
    #[serde(default)]
    error: String,
    #[serde(default)]
    data: serde_json::Value,
}

impl From<Response> for Wire {
    fn from(r: Response) -> Wire {
        Wire {
            host: r.host,
            response: r.response,
            header: (!r.header.is_empty()).then_some(r.header),
            tabular: (r.listed || !r.tabular.is_empty()).then_some(r.tabular),
            error: r.error,
            data: r.data,
        }
    }
}

impl From<Wire> for Response {
    fn from(w: Wire) -> Response {
        Response {
            host: w.host,
            response: w.response,
            header: w.header.unwrap_or_default(),
            listed: w.tabular.is_some(),
            tabular: w.tabular.unwrap_or_default(),
            error: w.error,
            data: w.data,
        }
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

    /// Rows that are a list even when empty (minimega's `[]`).
    pub fn listed(mut self) -> Response {
        self.listed = true;
        self
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
