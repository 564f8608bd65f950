//! A console's recent output, bounded: what a viewer sees first when it
//! attaches. Free of I/O.

use std::collections::VecDeque;

#[derive(Debug, Clone)]
pub struct Ring {
    buf: VecDeque<u8>,
    cap: usize,
}

impl Ring {
    pub fn new(cap: usize) -> Ring {
        Ring {
            buf: VecDeque::new(),
            cap,
        }
    }

    /// Appends, dropping the oldest bytes past the capacity.
    pub fn push(&mut self, data: &[u8]) {
        let data = &data[data.len().saturating_sub(self.cap)..];
        let over = (self.buf.len() + data.len()).saturating_sub(self.cap);
        self.buf.drain(..over);
        self.buf.extend(data);
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// What a viewer is shown: the kept bytes, starting at a line's start
    /// when the oldest line was cut (half a line, or half an escape
    /// sequence, would only garble the terminal).
    pub fn replay(&self) -> Vec<u8> {
        let all: Vec<u8> = self.buf.iter().copied().collect();
        if self.buf.len() < self.cap {
            return all;
        }
        match all.iter().position(|&b| b == b'\n') {
            Some(i) => all[i + 1..].to_vec(),
            None => all,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_bytes() {
        let mut r = Ring::new(8);
        r.push(b"abc");
        r.push(b"def");
        assert_eq!(r.replay(), b"abcdef");
        r.push(b"ghij");
        assert_eq!(r.len(), 8);
        r.push(b"0123456789abcdef");
        assert_eq!(r.len(), 8);
        assert_eq!(r.replay(), b"89abcdef");
    }

    #[test]
    fn a_cut_line_is_left_out_of_the_replay() {
        let mut r = Ring::new(10);
        r.push(b"first line\nsecond\n");
        // "ne\nsecond\n" kept; the cut "ne" goes.
        assert_eq!(r.replay(), b"second\n");
        let mut r = Ring::new(100);
        r.push(b"partial");
        assert_eq!(r.replay(), b"partial", "nothing cut yet");
    }
}
