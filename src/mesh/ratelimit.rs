//! Keeps a log line that a peer can provoke (a malformed frame, a bad
//! answer) from flooding the journal: a few per period, then a count of
//! what was held back. Pure.

use std::time::{Duration, Instant};

pub struct RateLimit {
    burst: u32,
    period: Duration,
    since: Option<Instant>,
    passed: u32,
    held: u64,
}

impl RateLimit {
    pub const fn new(burst: u32, period: Duration) -> RateLimit {
        RateLimit {
            burst,
            period,
            since: None,
            passed: 0,
            held: 0,
        }
    }

    /// Whether an event at `now` may be logged; if so, how many were held
    /// back since the last one that was.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        let fresh = self
            .since
            .is_none_or(|s| now.saturating_duration_since(s) >= self.period);
        if fresh {
            self.since = Some(now);
            self.passed = 0;
        }
        if self.passed < self.burst {
            self.passed += 1;
            Some(std::mem::take(&mut self.held))
        } else {
            self.held += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_per_period_then_the_count_held_back() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(2, Duration::from_secs(60));
        assert_eq!(r.allow(t0), Some(0));
        assert_eq!(r.allow(t0), Some(0));
        for _ in 0..5 {
            assert_eq!(r.allow(t0 + Duration::from_secs(1)), None);
        }
        assert_eq!(r.allow(t0 + Duration::from_secs(60)), Some(5));
        assert_eq!(r.allow(t0 + Duration::from_secs(61)), Some(0));
        assert_eq!(r.allow(t0 + Duration::from_secs(62)), None);
    }
}
