//! The bookkeeping of one file transfer, pure: which version of the file
//! is fetched and from whom, its parts (claimed, done), the record that
//! lets a transfer resume after a lost holder or a restart (each part with
//! its checksum), and when a failed holder is tried again.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Bytes per part: large enough that a part's round trip is noise, small
/// enough that a lost holder costs little.
pub const PART_SIZE: u64 = 8 << 20;

/// Which content a name has on a holder. Nodes copy the modification time
/// along with a file, so every copy made by a transfer has the same
/// version as its source; a file changed or placed by hand has another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    /// Modification time, nanoseconds since the epoch (first: newest wins).
    pub mtime_ns: i64,
    pub size: u64,
}

/// One holder's answer for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub holder: String,
    /// Relative to the files directory.
    pub name: String,
    pub version: Version,
    pub mode: u32,
    /// Where its file server listens.
    pub port: u16,
    pub addrs: Vec<String>,
}

/// The version to fetch among the offers for one name, and its holders:
/// the newest (minimega with -hashfiles takes the newest copy too), then
/// the one most nodes hold.
pub fn choose(offers: &[Offer]) -> Option<(Version, Vec<Offer>)> {
    let mut by: BTreeMap<Version, Vec<Offer>> = BTreeMap::new();
    for o in offers {
        by.entry(o.version).or_default().push(o.clone());
    }
    by.into_iter().max_by(|(va, a), (vb, b)| {
        (va.mtime_ns, a.len(), va.size).cmp(&(vb.mtime_ns, b.len(), vb.size))
    })
}

/// A part's checksum (BLAKE3 of its bytes).
pub type Digest = [u8; 32];

/// What is written beside a partial file: the parts written so far, each
/// with its checksum, so a later run keeps only the parts whose bytes on
/// disk still match (after a crash of the machine, the record may be newer
/// than what reached the disk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    pub version: Version,
    pub part_size: u64,
    /// Part number to its checksum, hex.
    pub parts: BTreeMap<u64, String>,
}

#[derive(Debug, Clone)]
pub struct Transfer {
    pub name: String,
    pub version: Version,
    pub part_size: u64,
    done: Vec<Option<Digest>>,
    claimed: Vec<Option<String>>,
    /// Parts each holder delivered in this run.
    pub from: BTreeMap<String, u64>,
    /// Parts already on disk when this run began.
    pub resumed: u64,
}

fn hex(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Digest> {
    if s.len() != 64 {
        return None;
    }
    let mut d = [0u8; 32];
    for (i, out) in d.iter_mut().enumerate() {
        *out = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(d)
}

impl Transfer {
    pub fn new(name: &str, version: Version, part_size: u64) -> Transfer {
        let n = version.size.div_ceil(part_size) as usize;
        Transfer {
            name: name.to_string(),
            version,
            part_size,
            done: vec![None; n],
            claimed: vec![None; n],
            from: BTreeMap::new(),
            resumed: 0,
        }
    }

    /// Continues from a record of the same version and part size, keeping
    /// the parts `intact` confirms (their bytes on disk have the recorded
    /// checksum). A record of another version is worthless.
    pub fn resume(
        rec: &Record,
        version: Version,
        part_size: u64,
        mut intact: impl FnMut(u64, (u64, u64), &Digest) -> bool,
    ) -> Option<Transfer> {
        if rec.version != version || rec.part_size != part_size || rec.name.is_empty() {
            return None;
        }
        let mut t = Transfer::new(&rec.name, version, part_size);
        for (part, d) in &rec.parts {
            let Some(d) = unhex(d) else { continue };
            if *part < t.parts() && intact(*part, t.range(*part), &d) {
                t.done[*part as usize] = Some(d);
            }
        }
        t.resumed = t.completed();
        Some(t)
    }

    pub fn parts(&self) -> u64 {
        self.done.len() as u64
    }

    pub fn completed(&self) -> u64 {
        self.done.iter().filter(|d| d.is_some()).count() as u64
    }

    pub fn is_complete(&self) -> bool {
        self.done.iter().all(|d| d.is_some())
    }

    pub fn is_done(&self, part: u64) -> bool {
        self.done.get(part as usize).is_some_and(|d| d.is_some())
    }

    /// Byte offset and length of a part.
    pub fn range(&self, part: u64) -> (u64, u64) {
        let off = part * self.part_size;
        (off, self.part_size.min(self.version.size - off))
    }

    /// Bytes still to fetch.
    pub fn remaining(&self) -> u64 {
        (0..self.parts())
            .filter(|p| !self.is_done(*p))
            .map(|p| self.range(p).1)
            .sum()
    }

    /// The next part for `holder` to fetch: the first one neither done
    /// nor being fetched from another holder.
    pub fn claim(&mut self, holder: &str) -> Option<u64> {
        let i =
            (0..self.done.len()).find(|i| self.done[*i].is_none() && self.claimed[*i].is_none())?;
        self.claimed[i] = Some(holder.to_string());
        Some(i as u64)
    }

    /// Whether a part is left that nobody fetches now.
    pub fn unclaimed(&self) -> bool {
        (0..self.done.len()).any(|i| self.done[i].is_none() && self.claimed[i].is_none())
    }

    /// A part arrived whole, with this checksum.
    pub fn complete(&mut self, part: u64, holder: &str, digest: Digest) {
        let i = part as usize;
        if i < self.done.len() && self.done[i].is_none() {
            self.done[i] = Some(digest);
            self.claimed[i] = None;
            *self.from.entry(holder.to_string()).or_default() += 1;
        }
    }

    /// A holder is gone: its claimed parts are free for the others.
    pub fn release(&mut self, holder: &str) {
        for c in self.claimed.iter_mut() {
            if c.as_deref() == Some(holder) {
                *c = None;
            }
        }
    }

    /// The record of the parts done now.
    pub fn record(&self) -> Record {
        Record {
            name: self.name.clone(),
            version: self.version,
            part_size: self.part_size,
            parts: (0..self.parts())
                .filter_map(|p| self.done[p as usize].map(|d| (p, hex(&d))))
                .collect(),
        }
    }
}

/// How long a holder that failed `failures` times in a row is left alone.
pub fn backoff(failures: u32) -> Duration {
    let ms = 500u64.saturating_mul(1 << failures.saturating_sub(1).min(4));
    Duration::from_millis(ms.min(5000))
}

/// Each known holder of the version being fetched, and its health.
#[derive(Debug, Default)]
pub struct Holders {
    list: BTreeMap<String, Holder>,
}

#[derive(Debug)]
struct Holder {
    offer: Offer,
    failures: u32,
    retry_at: Option<Instant>,
    busy: bool,
}

impl Holders {
    /// Adds or refreshes holders from new offers of `version` (a holder
    /// that restarted serves on a new port).
    pub fn update(&mut self, version: Version, offers: &[Offer]) {
        for o in offers.iter().filter(|o| o.version == version) {
            match self.list.get_mut(&o.holder) {
                Some(h) => h.offer = o.clone(),
                None => {
                    self.list.insert(
                        o.holder.clone(),
                        Holder {
                            offer: o.clone(),
                            failures: 0,
                            retry_at: None,
                            busy: false,
                        },
                    );
                }
            }
        }
    }

    /// Holders to start a connection to now (marked busy).
    pub fn ready(&mut self, now: Instant) -> Vec<Offer> {
        let mut out = Vec::new();
        for h in self.list.values_mut() {
            if !h.busy && h.retry_at.is_none_or(|t| t <= now) {
                h.busy = true;
                out.push(h.offer.clone());
            }
        }
        out
    }

    /// A connection ended: cleanly (nothing left to fetch from it), or
    /// with an error (tried again after [`backoff`]).
    pub fn ended(&mut self, holder: &str, failed: bool, now: Instant) {
        if let Some(h) = self.list.get_mut(holder) {
            h.busy = false;
            if failed {
                h.failures += 1;
                h.retry_at = Some(now + backoff(h.failures));
            } else {
                h.failures = 0;
                h.retry_at = None;
            }
        }
    }

    pub fn busy(&self) -> usize {
        self.list.values().filter(|h| h.busy).count()
    }

    pub fn names(&self) -> Vec<String> {
        self.list.keys().cloned().collect()
    }

    /// When the next holder may be tried.
    pub fn next_retry(&self) -> Option<Instant> {
        self.list
            .values()
            .filter(|h| !h.busy)
            .filter_map(|h| h.retry_at)
            .min()
    }
}

/// The columns of `file offer`, which a fetching node reads back.
pub const OFFER_COLUMNS: [&str; 6] = ["name", "size", "mtime", "mode", "port", "addresses"];

/// A holder's `file offer` answer, as offers. Rows that do not parse are
/// skipped (a node of another version of minimega).
pub fn parse_offer(host: &str, header: &[String], rows: &[Vec<String>]) -> Vec<Offer> {
    if header != OFFER_COLUMNS {
        return Vec::new();
    }
    rows.iter()
        .filter_map(|r| {
            Some(Offer {
                holder: host.to_string(),
                name: r.first()?.clone(),
                version: Version {
                    size: r.get(1)?.parse().ok()?,
                    mtime_ns: r.get(2)?.parse().ok()?,
                },
                mode: u32::from_str_radix(r.get(3)?, 8).ok()?,
                port: r.get(4)?.parse().ok()?,
                addrs: r
                    .get(5)?
                    .split(',')
                    .filter(|a| !a.is_empty())
                    .map(String::from)
                    .collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: Version = Version {
        mtime_ns: 1_700_000_000_000_000_000,
        size: 20 << 20,
    };

    fn offer(holder: &str, version: Version) -> Offer {
        Offer {
            holder: holder.into(),
            name: "img.qcow2".into(),
            version,
            mode: 0o644,
            port: 4000,
            addrs: vec!["10.0.0.1".into()],
        }
    }

    #[test]
    fn parts_cover_the_file() {
        let t = Transfer::new("img", V, PART_SIZE);
        assert_eq!(t.parts(), 3);
        assert_eq!(t.range(0), (0, PART_SIZE));
        assert_eq!(t.range(2), (2 * PART_SIZE, (20 << 20) - 2 * PART_SIZE));
        assert_eq!(t.remaining(), 20 << 20);
        let empty = Transfer::new(
            "e",
            Version {
                mtime_ns: 0,
                size: 0,
            },
            PART_SIZE,
        );
        assert_eq!(empty.parts(), 0);
        assert!(empty.is_complete());
    }

    #[test]
    fn holders_share_the_parts_and_a_lost_one_gives_back_its_claims() {
        let mut t = Transfer::new("img", V, PART_SIZE);
        assert_eq!(t.claim("a"), Some(0));
        assert_eq!(t.claim("b"), Some(1));
        assert_eq!(t.claim("a"), Some(2));
        assert_eq!(t.claim("b"), None);
        assert!(!t.unclaimed());
        t.complete(0, "a", [0; 32]);
        t.release("a");
        assert!(t.unclaimed());
        assert_eq!(t.claim("b"), Some(2));
        t.complete(1, "b", [1; 32]);
        t.complete(2, "b", [2; 32]);
        t.complete(2, "b", [2; 32]);
        assert!(t.is_complete());
        assert_eq!(t.from.get("a"), Some(&1));
        assert_eq!(t.from.get("b"), Some(&2));
        assert_eq!(t.remaining(), 0);
    }

    #[test]
    fn records_resume_the_same_version_with_the_intact_parts() {
        let mut t = Transfer::new("img", V, PART_SIZE);
        for p in [0u64, 2] {
            t.claim("a");
            t.complete(p, "a", [p as u8 + 0xa0; 32]);
        }
        let rec = t.record();
        assert_eq!(rec.parts.len(), 2);
        assert_eq!(rec.parts[&2], "a2".repeat(32));
        let json = serde_json::to_string(&rec).unwrap();
        let back: Record = serde_json::from_str(&json).unwrap();
        let mut asked = Vec::new();
        let r = Transfer::resume(&back, V, PART_SIZE, |p, range, d| {
            asked.push((p, range));
            d[0] == p as u8 + 0xa0
        })
        .unwrap();
        assert_eq!(asked, [(0, (0, PART_SIZE)), (2, (2 * PART_SIZE, 4 << 20))]);
        assert_eq!((r.completed(), r.resumed), (2, 2));
        assert!(r.is_done(0) && !r.is_done(1) && r.is_done(2));
        assert_eq!(r.remaining(), PART_SIZE);
        // A part whose bytes no longer match is fetched again.
        let r = Transfer::resume(&back, V, PART_SIZE, |p, _, _| p != 2).unwrap();
        assert!(r.is_done(0) && !r.is_done(2));
        let changed = Version {
            mtime_ns: V.mtime_ns + 1,
            ..V
        };
        assert!(Transfer::resume(&back, changed, PART_SIZE, |_, _, _| true).is_none());
        assert!(Transfer::resume(&back, V, PART_SIZE / 2, |_, _, _| true).is_none());
        let mut odd = back.clone();
        odd.parts.insert(9, "00".repeat(32));
        odd.parts.insert(1, "not hex".into());
        let r = Transfer::resume(&odd, V, PART_SIZE, |_, _, _| true).unwrap();
        assert_eq!(
            r.completed(),
            2,
            "parts beyond the file or unreadable are dropped"
        );
    }

    #[test]
    fn the_newest_version_wins_then_the_most_held() {
        let old = Version {
            mtime_ns: V.mtime_ns - 10,
            ..V
        };
        let offers = vec![offer("a", old), offer("b", old), offer("c", V)];
        let (v, holders) = choose(&offers).unwrap();
        assert_eq!(v, V);
        assert_eq!(holders.len(), 1);
        let same_time = Version { size: 1, ..V };
        let offers = vec![offer("a", V), offer("b", same_time), offer("c", V)];
        let (v, holders) = choose(&offers).unwrap();
        assert_eq!((v, holders.len()), (V, 2));
        assert!(choose(&[]).is_none());
    }

    #[test]
    fn failed_holders_back_off_and_come_back() {
        let now = Instant::now();
        let mut h = Holders::default();
        h.update(
            V,
            &[
                offer("a", V),
                offer("b", V),
                offer("old", Version { size: 1, ..V }),
            ],
        );
        assert_eq!(h.names(), ["a", "b"]);
        let ready: Vec<String> = h.ready(now).into_iter().map(|o| o.holder).collect();
        assert_eq!(ready, ["a", "b"]);
        assert!(
            h.ready(now).is_empty(),
            "busy holders are not offered twice"
        );
        h.ended("a", true, now);
        assert!(h.ready(now).is_empty());
        assert_eq!(h.next_retry(), Some(now + Duration::from_millis(500)));
        assert_eq!(h.ready(now + Duration::from_secs(1)).len(), 1);
        h.ended("a", true, now);
        assert_eq!(h.next_retry(), Some(now + Duration::from_secs(1)));
        // A restarted holder comes back on a new port.
        let mut moved = offer("a", V);
        moved.port = 5000;
        h.update(V, &[moved]);
        let later = now + Duration::from_secs(2);
        assert_eq!(h.ready(later)[0].port, 5000);
        assert_eq!(h.busy(), 2);
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(30), Duration::from_secs(5));
    }

    #[test]
    fn offers_parse_from_the_table() {
        let header: Vec<String> = OFFER_COLUMNS.iter().map(|s| s.to_string()).collect();
        let rows = vec![
            vec![
                "img/base.qcow2".into(),
                "209715200".into(),
                "1700000000000000001".into(),
                "644".into(),
                "40001".into(),
                "10.0.0.1,fd00::1".into(),
            ],
            vec!["bad".into()],
        ];
        let o = parse_offer("head", &header, &rows);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].holder, "head");
        assert_eq!(o[0].version.size, 200 << 20);
        assert_eq!(o[0].mode, 0o644);
        assert_eq!(o[0].addrs, ["10.0.0.1", "fd00::1"]);
        assert!(parse_offer("x", &["name".into()], &rows).is_empty());
    }
}
