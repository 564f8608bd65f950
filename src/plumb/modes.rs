//! Who gets a message written to a pipe: minimega's three delivery modes,
//! over the readers of every node (pure). Readers are named by the node
//! holding them and a number unique there, so every node sorts them alike
//! and round-robin walks them in one order, whoever writes.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A pipe's delivery mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Every reader gets a copy (the default).
    #[default]
    All,
    /// One reader per message, each in turn.
    RoundRobin,
    /// One reader per message, picked at random.
    Random,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "all" => Some(Mode::All),
            "round-robin" => Some(Mode::RoundRobin),
            "random" => Some(Mode::Random),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::All => "all",
            Mode::RoundRobin => "round-robin",
            Mode::Random => "random",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One reader of a pipe, anywhere in the mesh.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReaderKey {
    pub host: String,
    pub id: u64,
}

/// Where one message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// To every reader (mode all, or no reader to choose from: the message
    /// is then only counted, as minimega does).
    All,
    /// To this reader only.
    One(ReaderKey),
}

/// Chooses the recipient of one message. `readers` may come in any order
/// and hold duplicates; `last` is the previous round-robin recipient (it
/// need not be a reader any more); `random` is a fresh random number.
pub fn schedule(
    mode: Mode,
    readers: &[ReaderKey],
    last: Option<&ReaderKey>,
    random: u64,
) -> Delivery {
    if mode == Mode::All {
        return Delivery::All;
    }
    let mut sorted: Vec<&ReaderKey> = readers.iter().collect();
    sorted.sort();
    sorted.dedup();
    if sorted.is_empty() {
        return Delivery::All;
    }
    let pick = match mode {
        Mode::RoundRobin => {
            // The first reader after the last recipient, wrapping around:
            // a reader that joined or left does not restart the cycle.
            let next = last.and_then(|l| sorted.iter().position(|r| *r > l));
            sorted[next.unwrap_or(0)]
        }
        _ => sorted[(random % sorted.len() as u64) as usize],
    };
    Delivery::One(pick.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(host: &str, id: u64) -> ReaderKey {
        ReaderKey {
            host: host.into(),
            id,
        }
    }

    #[test]
    fn names_round_trip() {
        for m in [Mode::All, Mode::RoundRobin, Mode::Random] {
            assert_eq!(Mode::parse(m.name()), Some(m));
        }
        assert_eq!(Mode::parse("rr"), None);
        assert_eq!(Mode::default(), Mode::All);
    }

    #[test]
    fn all_goes_to_everyone() {
        let r = [key("a", 1), key("b", 1)];
        assert_eq!(schedule(Mode::All, &r, None, 7), Delivery::All);
    }

    #[test]
    fn round_robin_cycles_over_every_node_in_one_order() {
        let readers = [key("n2", 5), key("n1", 9), key("n1", 3)];
        let mut last: Option<ReaderKey> = None;
        let mut got = Vec::new();
        for _ in 0..7 {
            let Delivery::One(k) = schedule(Mode::RoundRobin, &readers, last.as_ref(), 0) else {
                panic!("one reader expected");
            };
            got.push(format!("{}:{}", k.host, k.id));
            last = Some(k);
        }
        assert_eq!(
            got,
            ["n1:3", "n1:9", "n2:5", "n1:3", "n1:9", "n2:5", "n1:3"]
        );
    }

    #[test]
    fn round_robin_survives_readers_coming_and_going() {
        let last = key("n1", 9);
        // The last recipient left: the next one after it still comes next.
        let readers = [key("n1", 3), key("n2", 5)];
        assert_eq!(
            schedule(Mode::RoundRobin, &readers, Some(&last), 0),
            Delivery::One(key("n2", 5))
        );
        // Past the end: back to the first.
        let last = key("n3", 1);
        assert_eq!(
            schedule(Mode::RoundRobin, &readers, Some(&last), 0),
            Delivery::One(key("n1", 3))
        );
        // Duplicates (a reader reported twice) count once.
        let dup = [key("n1", 3), key("n1", 3), key("n2", 5)];
        assert_eq!(
            schedule(Mode::RoundRobin, &dup, Some(&key("n1", 3)), 0),
            Delivery::One(key("n2", 5))
        );
    }

    #[test]
    fn random_picks_one_reader_by_the_number_given() {
        let readers = [key("b", 1), key("a", 1), key("c", 1)];
        let picks: Vec<Delivery> = (0..3)
            .map(|r| schedule(Mode::Random, &readers, None, r))
            .collect();
        assert_eq!(
            picks,
            [
                Delivery::One(key("a", 1)),
                Delivery::One(key("b", 1)),
                Delivery::One(key("c", 1))
            ]
        );
        assert_eq!(
            schedule(Mode::Random, &readers, None, u64::MAX),
            Delivery::One(key("a", 1))
        );
    }

    #[test]
    fn nobody_to_choose_means_the_message_is_only_counted() {
        assert_eq!(schedule(Mode::RoundRobin, &[], None, 0), Delivery::All);
        assert_eq!(schedule(Mode::Random, &[], None, 0), Delivery::All);
    }
}
