//! Help and completion from the command table: `help` alone, `help vm`,
//! `help vm launch`, and the completions `-attach` offers on Tab.

use super::engine::{Context, Engine};
use super::lexer;
use super::CommandError;

impl<C: Context> Engine<C> {
    /// Completions of a partial line: whole lines, as minimega's `Suggest`.
    pub fn suggest(&self, partial: &str) -> Vec<String> {
        let Ok(words) = lexer::lex(partial) else {
            return Vec::new();
        };
        let new_word = partial.is_empty() || partial.ends_with(char::is_whitespace);
        let keep = if new_word {
            words.len()
        } else {
            words.len().saturating_sub(1)
        };
        let head = lexer::unlex(&words[..keep]);
        let mut out: Vec<String> = Vec::new();
        for (_, p, _) in &self.patterns {
            for s in p.suggest(&words, new_word) {
                let line = if head.is_empty() {
                    s
                } else {
                    format!("{head} {s}")
                };
                if !out.contains(&line) {
                    out.push(line);
                }
            }
        }
        out.sort();
        out
    }

    /// The one-line summary of every command, for `help` alone.
    pub fn help_index(&self) -> Vec<(String, &'static str)> {
        let mut v: Vec<(String, &'static str)> = self
            .specs
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.patterns_of(i).next().map(|p| (p.name(), s.short)))
            .collect();
        v.sort();
        v.dedup_by(|a, b| a.0 == b.0);
        v
    }

    /// Help on the commands whose name starts with `words`.
    pub fn help_on(&self, words: &[String]) -> Result<String, CommandError> {
        let want = words.join(" ");
        let exact: Vec<usize> = (0..self.specs.len())
            .filter(|i| {
                self.patterns_of(*i)
                    .next()
                    .is_some_and(|p| p.name() == want)
            })
            .collect();
        if !exact.is_empty() {
            let mut out = String::new();
            for i in exact {
                out.push_str("Usage:\n");
                for p in self.patterns_of(i) {
                    out.push_str(&format!("\t{}\n", p.text));
                }
                out.push('\n');
                out.push_str(self.specs[i].long.trim());
                out.push('\n');
            }
            return Ok(out.trim_end().to_string());
        }
        let prefix: Vec<(String, &str)> = self
            .help_index()
            .into_iter()
            .filter(|(n, _)| n.starts_with(&want))
            .collect();
        if prefix.is_empty() {
            return Err(CommandError::Invalid(format!(
                "no help on `{want}`: no such command"
            )));
        }
        Ok(format_index(&prefix))
    }
}

/// `name : summary` lines with the names padded to one width.
pub fn format_index(entries: &[(String, &str)]) -> String {
    let w = entries.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    entries
        .iter()
        .map(|(n, s)| format!("{n:<w$} : {s}"))
        .collect::<Vec<_>>()
        .join("\n")
}
