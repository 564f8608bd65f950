//! Turns a [`Group`] into the text a user sees, the way minimega prints:
//! tables padded and joined by ` | `, a `host` column when annotating,
//! identical answers of several hosts compressed into one line, CSV or JSON
//! on request, and each error as an `E: ` line after the output.

use super::ranges;
use super::response::{Group, Mode, Response};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Renders the normal output and the error lines of one group. Either may
/// be empty. Neither ends with a newline.
pub fn render(group: &Group) -> (String, String) {
    let flags = &group.flags;
    let resps = &group.responses;
    if flags.mode == Mode::Json {
        // A command that only changed a setting prints nothing, in any mode.
        if resps.iter().all(is_blank) {
            return (String::new(), String::new());
        }
        // Errors travel inside the JSON, so scripts can parse one document.
        return (
            serde_json::to_string(resps).unwrap_or_default(),
            String::new(),
        );
    }
    let hosts = distinct_hosts(resps);
    let multi = hosts > 1;
    let out = match common_header(resps) {
        Some(header) if resps.iter().any(|r| !r.tabular.is_empty()) => tabular(group, header),
        _ => {
            let ok: Vec<&Response> = resps
                .iter()
                .filter(|r| !r.is_error() && !r.response.is_empty())
                .collect();
            if flags.compress && ok.len() > 1 {
                compressed(&ok, flags.annotate)
            } else {
                ok.iter()
                    .map(|r| {
                        if flags.annotate && multi {
                            format!("{}: {}", r.host, r.response)
                        } else {
                            r.response.clone()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
    };
    let errors = resps
        .iter()
        .filter(|r| r.is_error())
        .map(|r| {
            if flags.annotate && multi {
                format!("E: {}: {}", r.host, r.error)
            } else {
                format!("E: {}", r.error)
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    (out.trim_end().to_string(), errors)
}

/// Output and errors as one text, output first.
pub fn render_all(group: &Group) -> String {
    let (out, err) = render(group);
    join(&out, &err)
}

/// Output then errors, as minimega prints them.
pub fn join(out: &str, err: &str) -> String {
    match (out.is_empty(), err.is_empty()) {
        (_, true) => out.to_string(),
        (true, false) => err.to_string(),
        (false, false) => format!("{out}\n{err}"),
    }
}

/// The texts of one command's answers, one after another, blank ones
/// left out: what every front door prints.
pub fn join_texts(texts: impl IntoIterator<Item = String>) -> String {
    texts
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a user sees for a command's groups.
pub fn render_groups(groups: &[Group]) -> String {
    join_texts(groups.iter().map(render_all))
}

fn is_blank(r: &Response) -> bool {
    r.response.is_empty()
        && r.header.is_empty()
        && r.tabular.is_empty()
        && r.error.is_empty()
        && r.data.is_null()
}

fn distinct_hosts(resps: &[Response]) -> usize {
    let mut hosts: Vec<&str> = resps.iter().map(|r| r.host.as_str()).collect();
    hosts.sort_unstable();
    hosts.dedup();
    hosts.len()
}

/// The header shared by every tabular response, if they agree.
fn common_header(resps: &[Response]) -> Option<&[String]> {
    let mut header: Option<&[String]> = None;
    for r in resps.iter().filter(|r| r.is_tabular()) {
        match header {
            None => header = Some(&r.header),
            Some(h) if h == r.header.as_slice() => {}
            Some(_) => return None,
        }
    }
    header
}

fn tabular(group: &Group, header: &[String]) -> String {
    let flags = &group.flags;
    let mut head: Vec<String> = header.to_vec();
    if flags.annotate {
        head.insert(0, "host".into());
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    for r in group.responses.iter().filter(|r| !r.is_error()) {
        for row in &r.tabular {
            let mut row = row.clone();
            if flags.annotate {
                row.insert(0, r.host.clone());
            }
            rows.push(row);
        }
    }
    if flags.sort {
        rows.sort_by(|a, b| compare_rows(a, b));
    }
    let mut all = Vec::with_capacity(rows.len() + 1);
    if flags.headers {
        all.push(head);
    }
    all.extend(rows);
    if flags.mode == Mode::Csv {
        return all
            .iter()
            .map(|r| csv_line(r))
            .collect::<Vec<_>>()
            .join("\n");
    }
    pad_table(&all)
}

/// Compares rows cell by cell, numerically when both cells are integers.
pub fn compare_rows(a: &[String], b: &[String]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        if x == y {
            continue;
        }
        return match (x.parse::<i64>(), y.parse::<i64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
    }
    a.len().cmp(&b.len())
}

/// Pads each column to its widest cell. Every cell after the first starts
/// with `| `; a column is at least 5 wide including one space of padding;
/// the last cell of a row is not padded (as Go's tabwriter prints it), and
/// an empty one keeps its `| ` (the answer as a whole is trimmed, so the
/// last row is not).
pub fn pad_table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let cell = |i: usize, v: &str| {
        if i == 0 {
            v.to_string()
        } else {
            format!("| {v}")
        }
    };
    let mut widths = vec![0usize; cols];
    for row in rows {
        for (i, v) in row.iter().enumerate() {
            if i + 1 < row.len() {
                widths[i] = widths[i].max(cell(i, v).chars().count() + 1).max(5);
            }
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, v) in row.iter().enumerate() {
            let c = cell(i, v);
            if i + 1 < row.len() {
                let pad = widths[i].saturating_sub(c.chars().count());
                line.push_str(&c);
                line.extend(std::iter::repeat_n(' ', pad));
            } else {
                line.push_str(&c);
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out.pop();
    out
}

fn csv_line(row: &[String]) -> String {
    row.iter()
        .map(|f| {
            if f.contains([',', '"', '\n', '\r']) || f.starts_with(' ') {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// One line per distinct answer, prefixed by the hosts that gave it.
fn compressed(ok: &[&Response], annotate: bool) -> String {
    let mut buckets: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in ok {
        buckets
            .entry(r.response.as_str())
            .or_default()
            .push(r.host.clone());
    }
    let mut lines: Vec<(String, &str)> = buckets
        .into_iter()
        .map(|(text, hosts)| (ranges::compress(&hosts), text))
        .collect();
    lines.sort();
    lines
        .into_iter()
        .map(|(hosts, text)| {
            if annotate {
                format!("{hosts}: {text}")
            } else {
                text.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::response::{Flags, Mode};

    fn resp(host: &str, header: &[&str], rows: &[&[&str]]) -> Response {
        Response {
            host: host.into(),
            header: header.iter().map(|s| s.to_string()).collect(),
            tabular: rows
                .iter()
                .map(|r| r.iter().map(|s| s.to_string()).collect())
                .collect(),
            ..Default::default()
        }
    }

    fn group(responses: Vec<Response>, f: impl FnOnce(&mut Flags)) -> Group {
        let mut flags = Flags::default();
        f(&mut flags);
        Group { responses, flags }
    }

    #[test]
    fn mesh_status_matches_the_seed() {
        let r = resp(
            "headnode",
            &["mesh size", "degree", "peers", "context", "port"],
            &[&["4", "10", "3", "sceptre", "11235"]],
        );
        let (out, err) = render(&group(vec![r], |_| {}));
        assert_eq!(
            out,
            "host     | mesh size | degree | peers | context | port\n\
             headnode | 4         | 10     | 3     | sceptre | 11235"
        );
        assert!(err.is_empty());
    }

    #[test]
    fn min_width_and_empty_cells() {
        let r = resp("h", &["namespace", "name"], &[&["", "bar"], &["", "foo1"]]);
        let (out, _) = render(&group(vec![r], |f| f.annotate = false));
        assert_eq!(out, "namespace | name\n          | bar\n          | foo1");
        let r = resp("h", &["name", "namespace"], &[&["bar", ""]]);
        let (out, _) = render(&group(vec![r], |f| f.annotate = false));
        assert_eq!(out, "name | namespace\nbar  |");
    }

    #[test]
    fn rows_sort_numerically_then_by_text() {
        let r = resp("h", &["id"], &[&["10"], &["9"], &["b"], &["a"]]);
        let (out, _) = render(&group(vec![r], |f| f.annotate = false));
        assert_eq!(out, "id\n9\n10\na\nb");
    }

    #[test]
    fn several_hosts_merge_into_one_table() {
        let a = resp("n2", &["name"], &[&["x"]]);
        let b = resp("n1", &["name"], &[&["y"]]);
        let (out, _) = render(&group(vec![a, b], |_| {}));
        assert_eq!(out, "host | name\nn1   | y\nn2   | x");
    }

    #[test]
    fn headers_off_and_csv() {
        let r = resp("h", &["name", "state"], &[&["a,b", "RUNNING"]]);
        let (out, _) = render(&group(vec![r.clone()], |f| {
            f.annotate = false;
            f.headers = false
        }));
        assert_eq!(out, "a,b  | RUNNING");
        let (out, _) = render(&group(vec![r], |f| {
            f.annotate = false;
            f.mode = Mode::Csv
        }));
        assert_eq!(out, "name,state\n\"a,b\",RUNNING");
    }

    #[test]
    fn text_is_annotated_only_for_several_hosts() {
        let one = Response {
            host: "h".into(),
            response: "minimega 1".into(),
            ..Default::default()
        };
        assert_eq!(render(&group(vec![one.clone()], |_| {})).0, "minimega 1");
        let mut two = one.clone();
        two.host = "g".into();
        let (out, _) = render(&group(vec![one.clone(), two.clone()], |f| {
            f.compress = false
        }));
        assert_eq!(out, "h: minimega 1\ng: minimega 1");
    }

    #[test]
    fn compress_merges_identical_answers() {
        let mk = |h: &str, t: &str| Response {
            host: h.into(),
            response: t.into(),
            ..Default::default()
        };
        let rs = vec![
            mk("node1", "v1"),
            mk("node2", "v1"),
            mk("node3", "v1"),
            mk("node5", "v2"),
        ];
        let (out, _) = render(&group(rs, |_| {}));
        assert_eq!(out, "node5: v2\nnode[1-3]: v1");
    }

    #[test]
    fn errors_are_e_lines() {
        let rs = vec![Response::error("h", "no such vm: foo")];
        assert_eq!(
            render(&group(rs.clone(), |_| {})),
            (String::new(), "E: no such vm: foo".into())
        );
        let mut rs2 = rs.clone();
        rs2.push(Response {
            host: "g".into(),
            response: "ok".into(),
            ..Default::default()
        });
        let (out, err) = render(&group(rs2, |_| {}));
        assert_eq!(out, "g: ok");
        assert_eq!(err, "E: h: no such vm: foo");
    }

    #[test]
    fn json_mode_prints_nothing_for_a_setting() {
        let rs = vec![Response {
            host: "h".into(),
            ..Default::default()
        }];
        assert_eq!(
            render(&group(rs, |f| f.mode = Mode::Json)),
            (String::new(), String::new())
        );
    }

    #[test]
    fn json_mode_holds_everything() {
        let rs = vec![Response::error("h", "bad")];
        let (out, err) = render(&group(rs, |f| f.mode = Mode::Json));
        assert!(err.is_empty());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v[0]["Error"], "bad");
        assert_eq!(v[0]["Host"], "h");
    }
}
