//! The VM table a namespace's pages watch, and what to push when it
//! changes: the whole table to a page that just opened, then only the rows
//! that changed and the keys of those gone. A state signal patches one
//! cell at once, before the next `vm info` confirms it, and the patch is
//! remembered so that confirmation pushes nothing more.

use super::tables::{HostError, Table};
use serde::Serialize;
use std::collections::BTreeMap;

/// What a page receives on `/ws/events`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum Push {
    /// The whole table.
    Vms {
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
        errors: Vec<HostError>,
    },
    /// Rows added or changed (whole rows), and rows gone (by key).
    Diff {
        upsert: Vec<Vec<String>>,
        remove: Vec<String>,
        errors: Vec<HostError>,
    },
    /// One VM's new state, from a signal.
    State { key: String, state: String },
    /// The mesh changed: hosts and namespaces are worth reloading.
    Hosts,
}

impl Push {
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A row's key: its host and id (`host/id`), unique across the mesh.
pub fn key(host: &str, id: &str) -> String {
    format!("{host}/{id}")
}

#[derive(Debug, Default)]
pub struct Live {
    columns: Vec<String>,
    rows: BTreeMap<String, Vec<String>>,
    errors: Vec<HostError>,
    loaded: bool,
}

impl Live {
    fn col(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    fn key_of(&self, row: &[String]) -> Option<String> {
        let (h, i) = (self.col("host")?, self.col("id")?);
        Some(key(row.get(h)?, row.get(i)?))
    }

    pub fn loaded(&self) -> bool {
        self.loaded
    }

    /// The whole table, rows in host then numeric id order (miniweb's).
    pub fn full(&self) -> Push {
        let mut rows: Vec<Vec<String>> = self.rows.values().cloned().collect();
        let (h, i) = (self.col("host"), self.col("id"));
        if let (Some(h), Some(i)) = (h, i) {
            rows.sort_by(|a, b| {
                a[h].cmp(&b[h]).then(
                    a[i].parse::<u64>()
                        .unwrap_or(u64::MAX)
                        .cmp(&b[i].parse::<u64>().unwrap_or(u64::MAX)),
                )
            });
        }
        Push::Vms {
            columns: self.columns.clone(),
            rows,
            errors: self.errors.clone(),
        }
    }

    /// Takes a fresh `vm info`; returns what to push, if anything changed.
    pub fn update(&mut self, t: Table) -> Option<Push> {
        let first = !self.loaded;
        self.loaded = true;
        if first || t.columns != self.columns {
            self.columns = t.columns;
            self.errors = t.errors;
            self.rows.clear();
            for r in t.rows {
                if let Some(k) = self.key_of(&r) {
                    self.rows.insert(k, r);
                }
            }
            return Some(self.full());
        }
        let mut fresh = BTreeMap::new();
        for r in t.rows {
            if let Some(k) = self.key_of(&r) {
                fresh.insert(k, r);
            }
        }
        let remove: Vec<String> = self
            .rows
            .keys()
            .filter(|k| !fresh.contains_key(*k))
            .cloned()
            .collect();
        let upsert: Vec<Vec<String>> = fresh
            .iter()
            .filter(|(k, r)| self.rows.get(*k) != Some(r))
            .map(|(_, r)| r.clone())
            .collect();
        let errors_changed = t.errors != self.errors;
        self.rows = fresh;
        self.errors = t.errors;
        if remove.is_empty() && upsert.is_empty() && !errors_changed {
            return None;
        }
        Some(Push::Diff {
            upsert,
            remove,
            errors: self.errors.clone(),
        })
    }

    /// A VM's state as a signal reported it. A VM not in the table yet
    /// waits for the next `vm info`, which will bring its whole row.
    pub fn set_state(&mut self, host: &str, id: u64, state: &str) -> Option<Push> {
        let k = key(host, &id.to_string());
        let s = self.col("state")?;
        let row = self.rows.get_mut(&k)?;
        if row.get(s).map(String::as_str) == Some(state) {
            return None;
        }
        row[s] = state.to_string();
        Some(Push::State {
            key: k,
            state: state.to_string(),
        })
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: &[(&str, &str, &str, &str)]) -> Table {
        Table {
            columns: ["host", "id", "name", "state"].map(String::from).to_vec(),
            rows: rows
                .iter()
                .map(|(h, i, n, s)| {
                    vec![h.to_string(), i.to_string(), n.to_string(), s.to_string()]
                })
                .collect(),
            errors: vec![],
        }
    }

    #[test]
    fn full_then_only_changes() {
        let mut l = Live::default();
        let first = l.update(table(&[
            ("n", "10", "b", "RUNNING"),
            ("n", "2", "a", "PAUSED"),
        ]));
        match first.unwrap() {
            Push::Vms { rows, .. } => assert_eq!(rows[0][1], "2", "numeric id order"),
            p => panic!("{p:?}"),
        }
        assert_eq!(
            l.update(table(&[
                ("n", "2", "a", "PAUSED"),
                ("n", "10", "b", "RUNNING")
            ])),
            None
        );
        let d = l.update(table(&[
            ("n", "2", "a", "RUNNING"),
            ("n", "11", "c", "BUILDING"),
        ]));
        assert_eq!(
            d,
            Some(Push::Diff {
                upsert: vec![
                    vec!["n".into(), "11".into(), "c".into(), "BUILDING".into()],
                    vec!["n".into(), "2".into(), "a".into(), "RUNNING".into()],
                ],
                remove: vec!["n/10".into()],
                errors: vec![],
            })
        );
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn signals_patch_and_are_confirmed_silently() {
        let mut l = Live::default();
        assert_eq!(l.set_state("n", 1, "QUIT"), None, "nothing loaded");
        l.update(table(&[("n", "1", "a", "RUNNING")]));
        assert_eq!(
            l.set_state("n", 1, "QUIT"),
            Some(Push::State {
                key: "n/1".into(),
                state: "QUIT".into()
            })
        );
        assert_eq!(l.set_state("n", 1, "QUIT"), None, "already so");
        assert_eq!(l.set_state("n", 7, "QUIT"), None, "not in the table yet");
        assert_eq!(l.update(table(&[("n", "1", "a", "QUIT")])), None);
        let j = Push::State {
            key: "n/1".into(),
            state: "QUIT".into(),
        }
        .json();
        assert_eq!(j, r#"{"t":"state","key":"n/1","state":"QUIT"}"#);
    }

    #[test]
    fn new_columns_send_the_whole_table() {
        let mut l = Live::default();
        l.update(table(&[("n", "1", "a", "RUNNING")]));
        let mut t = table(&[("n", "1", "a", "RUNNING")]);
        t.columns.push("ip".into());
        t.rows[0].push("10.0.0.1".into());
        assert!(matches!(l.update(t), Some(Push::Vms { .. })));
    }
}
