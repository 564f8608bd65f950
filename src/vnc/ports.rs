//! Which TCP port a VM's screen gets: the order ports are tried in, free
//! of I/O. The caller binds each candidate until one works; a port it
//! already holds for another VM is never a candidate.
//!
//! Without a range (minimega's way) the kernel picks any free port, after
//! the VM's previous port if it had one (a VM keeps its number across a
//! daemon restart or a relaunch when it is free). With a range
//! (`-vncports 5900-5999`) the previous port comes first if it is in the
//! range, then the range from a cursor that moves past each port handed
//! out, so a port just released is the last to be reused.

use std::collections::BTreeSet;

/// Where candidates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// Any free port: 0 asks the kernel.
    Any,
    /// `first..=last`.
    Range(u16, u16),
}

impl Pool {
    pub fn new(range: Option<(u16, u16)>) -> Pool {
        match range {
            Some((a, b)) => Pool::Range(a.min(b), a.max(b)),
            None => Pool::Any,
        }
    }

    /// How many ports the pool has (0: unbounded).
    pub fn size(&self) -> u32 {
        match *self {
            Pool::Any => 0,
            Pool::Range(a, b) => u32::from(b) - u32::from(a) + 1,
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        match *self {
            Pool::Any => port != 0,
            Pool::Range(a, b) => (a..=b).contains(&port),
        }
    }

    /// The ports to try, in order. `cursor` is where a range scan starts
    /// (see [`Pool::advance`]).
    pub fn candidates(
        &self,
        preferred: Option<u16>,
        held: &BTreeSet<u16>,
        cursor: u16,
    ) -> Vec<u16> {
        let preferred = preferred.filter(|p| self.contains(*p) && !held.contains(p));
        match *self {
            Pool::Any => preferred.into_iter().chain([0]).collect(),
            Pool::Range(a, b) => {
                let size = u32::from(b) - u32::from(a) + 1;
                let start = if (a..=b).contains(&cursor) { cursor } else { a };
                let offset = u32::from(start - a);
                let scan = (0..size)
                    .map(|i| (u32::from(a) + (offset + i) % size) as u16)
                    .filter(|p| !held.contains(p) && Some(*p) != preferred);
                preferred.into_iter().chain(scan).collect()
            }
        }
    }

    /// The cursor after handing out `port`.
    pub fn advance(&self, port: u16) -> u16 {
        match *self {
            Pool::Any => 0,
            Pool::Range(a, b) => {
                if port >= b {
                    a
                } else {
                    port + 1
                }
            }
        }
    }

    /// How the pool is named in errors and logs.
    pub fn describe(&self) -> String {
        match *self {
            Pool::Any => "any free port".into(),
            Pool::Range(a, b) if a == b => format!("port {a}"),
            Pool::Range(a, b) => format!("ports {a}-{b}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(ports: &[u16]) -> BTreeSet<u16> {
        ports.iter().copied().collect()
    }

    #[test]
    fn any_port_tries_the_previous_one_then_the_kernels_choice() {
        let p = Pool::new(None);
        assert_eq!(p.candidates(None, &held(&[]), 0), [0]);
        assert_eq!(p.candidates(Some(41000), &held(&[]), 0), [41000, 0]);
        assert_eq!(
            p.candidates(Some(41000), &held(&[41000]), 0),
            [0],
            "a port another VM holds is never offered"
        );
    }

    #[test]
    fn a_range_starts_at_its_cursor_and_wraps_around() {
        let p = Pool::new(Some((5900, 5903)));
        assert_eq!(p.size(), 4);
        assert_eq!(
            p.candidates(None, &held(&[]), 5902),
            [5902, 5903, 5900, 5901]
        );
        assert_eq!(p.candidates(None, &held(&[5900, 5903]), 5900), [5901, 5902]);
        assert_eq!(p.candidates(None, &held(&[]), 1), [5900, 5901, 5902, 5903]);
        assert_eq!(p.advance(5901), 5902);
        assert_eq!(p.advance(5903), 5900);
    }

    #[test]
    fn the_previous_port_comes_first_when_the_range_has_it() {
        let p = Pool::new(Some((5900, 5903)));
        assert_eq!(
            p.candidates(Some(5902), &held(&[]), 5900),
            [5902, 5900, 5901, 5903]
        );
        assert_eq!(
            p.candidates(Some(6000), &held(&[]), 5900),
            [5900, 5901, 5902, 5903],
            "outside the range: ignored"
        );
    }

    #[test]
    fn an_exhausted_range_has_no_candidates() {
        let p = Pool::new(Some((5900, 5901)));
        assert!(p
            .candidates(Some(5900), &held(&[5900, 5901]), 5900)
            .is_empty());
        assert_eq!(p.describe(), "ports 5900-5901");
        assert_eq!(Pool::new(Some((7, 7))).describe(), "port 7");
    }

    #[test]
    fn the_whole_port_space_is_a_range_too() {
        let p = Pool::new(Some((1, 65535)));
        assert_eq!(p.size(), 65535);
        let c = p.candidates(None, &held(&[]), 65535);
        assert_eq!(c.len(), 65535);
        assert_eq!(&c[..2], [65535, 1]);
        assert_eq!(p.advance(65535), 1);
    }
}
