//! The daemon's answers shaped for the page: one table per command, every
//! host's rows together under the header with a `host` column first (as
//! miniweb shows them), and the hosts' errors beside it.

use crate::command::Response;
use serde::Serialize;

/// A table as the page receives it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub errors: Vec<HostError>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostError {
    pub host: String,
    pub error: String,
}

/// Every host's answer in one table. Hosts whose header differs (a mesh
/// of mixed versions) get their cells matched by column name.
pub fn merge(responses: &[Response]) -> Table {
    let mut columns: Vec<String> = vec!["host".into()];
    for r in responses {
        for h in &r.header {
            if !columns.contains(h) {
                columns.push(h.clone());
            }
        }
    }
    let mut rows = Vec::new();
    for r in responses {
        let at: Vec<usize> = r
            .header
            .iter()
            .map(|h| columns.iter().position(|c| c == h).unwrap_or(0))
            .collect();
        for row in &r.tabular {
            let mut out = vec![String::new(); columns.len()];
            out[0] = r.host.clone();
            for (cell, &i) in row.iter().zip(&at) {
                if i > 0 {
                    out[i] = cell.clone();
                }
            }
            rows.push(out);
        }
    }
    Table {
        columns,
        rows,
        errors: host_errors(responses),
    }
}

/// The hosts whose answer is an error, each with its error.
fn host_errors(responses: &[Response]) -> Vec<HostError> {
    responses
        .iter()
        .filter(|r| !r.error.is_empty())
        .map(|r| HostError {
            host: r.host.clone(),
            error: r.error.clone(),
        })
        .collect()
}

/// The answers' text and errors, for the command console and actions.
pub fn text(responses: &[Response]) -> (String, Vec<HostError>) {
    let mut out = String::new();
    for r in responses {
        let body = if r.is_tabular() {
            let mut rows = vec![r.header.clone()];
            rows.extend(r.tabular.iter().cloned());
            crate::command::render::pad_table(&rows)
        } else {
            r.response.clone()
        };
        if !body.is_empty() {
            if responses.len() > 1 {
                out.push_str(&format!("{}:\n", r.host));
            }
            out.push_str(body.trim_end());
            out.push('\n');
        }
    }
    (out, host_errors(responses))
}

/// The one Data a response carries (a screenshot's base64 PNG, a piece of
/// a streamed file).
pub fn data_strings(responses: &[Response]) -> Vec<&str> {
    responses.iter().filter_map(|r| r.data.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(host: &str, header: &[&str], rows: &[&[&str]], error: &str) -> Response {
        Response {
            host: host.into(),
            header: header.iter().map(|s| s.to_string()).collect(),
            tabular: rows
                .iter()
                .map(|r| r.iter().map(|s| s.to_string()).collect())
                .collect(),
            error: error.into(),
            ..Default::default()
        }
    }

    #[test]
    fn hosts_merge_by_column() {
        let t = merge(&[
            resp("n1", &["id", "name"], &[&["0", "a"], &["1", "b"]], ""),
            resp("n2", &["name", "id", "extra"], &[&["c", "0", "x"]], ""),
            resp("n3", &[], &[], "no such thing"),
        ]);
        assert_eq!(t.columns, ["host", "id", "name", "extra"]);
        assert_eq!(
            t.rows,
            vec![
                vec!["n1", "0", "a", ""],
                vec!["n1", "1", "b", ""],
                vec!["n2", "0", "c", "x"]
            ]
        );
        assert_eq!(
            t.errors,
            vec![HostError {
                host: "n3".into(),
                error: "no such thing".into()
            }]
        );
        let json = serde_json::to_string(&t).unwrap();
        assert!(json.starts_with(r#"{"columns":["host","id""#), "{json}");
    }

    #[test]
    fn texts() {
        let (t, e) = text(&[Response::text("hello")]);
        assert_eq!(t, "hello\n");
        assert!(e.is_empty());
        let (t, e) = text(&[
            resp("n1", &["a"], &[&["1"]], ""),
            resp("n2", &[], &[], "bad"),
        ]);
        assert!(t.starts_with("n1:\na\n1"), "{t:?}");
        assert_eq!(e.len(), 1);
    }
}
