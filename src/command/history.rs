//! The command history every client of a daemon shares (`history`), kept
//! within a number of lines and a number of bytes: a client sending long
//! lines can cost the daemon a few MiB, never its memory. A line longer
//! than [`MAX_ENTRY`] is kept shortened, with the size it had.

use std::collections::VecDeque;

/// Lines kept, as minimega keeps them.
pub const MAX_LINES: usize = 10_000;
/// Bytes kept over all lines.
pub const MAX_BYTES: usize = 4 << 20;
/// Bytes kept of one line; a `vm config` of a long kernel command line
/// fits, a megabyte of pasted text does not.
pub const MAX_ENTRY: usize = 4096;

#[derive(Debug, Default)]
pub struct History {
    lines: VecDeque<String>,
    bytes: usize,
}

impl History {
    pub fn push(&mut self, line: &str) {
        let line = shorten(line.trim());
        self.bytes += line.len();
        self.lines.push_back(line);
        while self.lines.len() > MAX_LINES || self.bytes > MAX_BYTES {
            match self.lines.pop_front() {
                Some(old) => self.bytes -= old.len(),
                None => break,
            }
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.iter().cloned().collect()
    }

    pub fn clear(&mut self) {
        self.lines.clear();
        self.bytes = 0;
    }

    /// Bytes held by the lines.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// At most [`MAX_ENTRY`] bytes of `line`, cut on a character boundary and
/// marked with the length it had.
fn shorten(line: &str) -> String {
    if line.len() <= MAX_ENTRY {
        return line.to_string();
    }
    let mut cut = MAX_ENTRY - 64;
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{} ... ({} bytes)", &line[..cut], line.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_in_lines_and_bytes() {
        let mut h = History::default();
        let big = "x".repeat(1 << 20);
        for _ in 0..2000 {
            h.push(&big);
            assert!(h.bytes() <= MAX_BYTES);
        }
        assert!(h.lines().iter().all(|l| l.len() <= MAX_ENTRY));
        assert!(h.lines()[0].ends_with(&format!("... ({} bytes)", 1 << 20)));

        h.clear();
        for i in 0..MAX_LINES + 5 {
            h.push(&format!("echo {i}"));
        }
        let lines = h.lines();
        assert_eq!(lines.len(), MAX_LINES);
        assert_eq!(lines[0], "echo 5", "the oldest go first");
        assert_eq!(h.bytes(), lines.iter().map(String::len).sum::<usize>());
    }

    #[test]
    fn shortened_on_a_character_boundary() {
        let s = "é".repeat(MAX_ENTRY);
        let short = shorten(&s);
        assert!(short.len() <= MAX_ENTRY && short.starts_with('é'));
        assert_eq!(shorten(" echo a "), " echo a ", "trimming is push's");
    }
}
