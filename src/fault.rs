//! Fault injection, for tests: makes the N-th durable write fail as a
//! full disk would, or kills the daemon (SIGKILL, as `kill -9` would) at a
//! named point of its work, so tests can put a crash or a full disk
//! exactly where they mean to instead of sweeping delays.
//!
//! The switch is armed only by [`arm_from_env`], which only the test
//! daemon (`src/bin/minimega-faults.rs`, never installed nor packaged)
//! calls, reading `MINIMEGA_FAULT`. The shipped `minimega` binary never
//! arms it: there the variable means nothing and every probe below is one
//! relaxed atomic load that finds nothing armed.
//!
//! `MINIMEGA_FAULT` holds specs separated by commas:
//! - `write:N`: the N-th durable write (counted from start-up, from 1)
//!   fails with ENOSPC; `write:N-`: that one and every one after it.
//! - `abort:POINT` or `abort:POINT:K`: the K-th time (default 1) the
//!   daemon passes POINT, it kills itself with SIGKILL. The points are the
//!   [`POINTS`] below.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

/// Every point a test may abort at, in the order a launch passes them.
pub const POINTS: &[&str] = &[
    // The VM's record is on disk; nothing else is made yet.
    "launch.recorded",
    // The VM's taps exist; their switch ports do not yet.
    "launch.taps",
    // The VM's switch ports exist; its QEMU does not yet.
    "launch.ports",
    // QEMU runs; the record does not name its pid yet.
    "launch.spawned",
    // The record names QEMU's pid; QMP is not connected yet.
    "launch.placed",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Spec {
    /// Writes from this one (1-based) fail; only it unless `onward`.
    Write { nth: u64, onward: bool },
    /// The `nth` pass of `point` kills the daemon.
    Abort { point: String, nth: u64 },
}

struct Armed {
    specs: Vec<Spec>,
    writes: AtomicU64,
    /// Passes per point, in the order of `POINTS`.
    passes: Vec<AtomicU64>,
}

static ON: AtomicBool = AtomicBool::new(false);
static ARMED: OnceLock<Armed> = OnceLock::new();

fn parse(text: &str) -> Result<Vec<Spec>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("bad fault `{part}`: expected write:N, write:N- or abort:POINT[:K]");
        let number = |s: &str| s.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(bad);
        match part.split(':').collect::<Vec<_>>().as_slice() {
            ["write", n] => {
                let (n, onward) = match n.strip_suffix('-') {
                    Some(n) => (n, true),
                    None => (*n, false),
                };
                out.push(Spec::Write {
                    nth: number(n)?,
                    onward,
                });
            }
            ["abort", point, rest @ ..] if rest.len() <= 1 => {
                if !POINTS.contains(point) {
                    return Err(format!(
                        "unknown fault point `{point}` (points: {})",
                        POINTS.join(", ")
                    ));
                }
                let nth = match rest {
                    [k] => number(k)?,
                    _ => 1,
                };
                out.push(Spec::Abort {
                    point: point.to_string(),
                    nth,
                });
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// Arms the switch from `MINIMEGA_FAULT`; only the test daemon calls it.
/// A bad value is an error, so a test never runs unarmed by mistake.
pub fn arm_from_env() -> Result<(), String> {
    match std::env::var("MINIMEGA_FAULT") {
        Ok(v) => arm(&v),
        Err(_) => Ok(()),
    }
}

/// Arms the switch with `text` (see the module doc); once per process.
pub fn arm(text: &str) -> Result<(), String> {
    let specs = parse(text)?;
    if specs.is_empty() {
        return Ok(());
    }
    let armed = Armed {
        specs,
        writes: AtomicU64::new(0),
        passes: POINTS.iter().map(|_| AtomicU64::new(0)).collect(),
    };
    ARMED
        .set(armed)
        .map_err(|_| "the fault switch is armed already".to_string())?;
    ON.store(true, Ordering::SeqCst);
    Ok(())
}

fn armed() -> Option<&'static Armed> {
    if !ON.load(Ordering::Relaxed) {
        return None;
    }
    ARMED.get()
}

/// Called by every durable write before it writes: the error it must
/// fail with, when this write is one the switch makes fail.
pub fn write_error() -> Option<std::io::Error> {
    let a = armed()?;
    let n = a.writes.fetch_add(1, Ordering::SeqCst) + 1;
    a.specs
        .iter()
        .any(|s| matches!(s, Spec::Write { nth, onward } if n == *nth || (*onward && n > *nth)))
        .then(|| std::io::Error::from_raw_os_error(libc::ENOSPC))
}

/// Marks a pass of `point` (one of [`POINTS`]); kills the daemon when the
/// switch says this pass is the one.
pub fn point(point: &str) {
    let Some(a) = armed() else { return };
    let Some(i) = POINTS.iter().position(|p| *p == point) else {
        return;
    };
    let n = a.passes[i].fetch_add(1, Ordering::SeqCst) + 1;
    let hit = a
        .specs
        .iter()
        .any(|s| matches!(s, Spec::Abort { point: p, nth } if p == point && *nth == n));
    if hit {
        tracing::error!("fault injection: killing the daemon at {point} (pass {n})");
        // SAFETY: kill(2) of our own process; SIGKILL, as `kill -9`: no
        // destructor, no flush, nothing of a clean exit.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_are_named() {
        assert_eq!(
            parse("write:3, abort:launch.taps:12,write:5-").unwrap(),
            [
                Spec::Write {
                    nth: 3,
                    onward: false
                },
                Spec::Abort {
                    point: "launch.taps".into(),
                    nth: 12
                },
                Spec::Write {
                    nth: 5,
                    onward: true
                },
            ]
        );
        assert_eq!(
            parse("abort:launch.recorded").unwrap(),
            [Spec::Abort {
                point: "launch.recorded".into(),
                nth: 1
            }]
        );
        assert!(parse("write:0")
            .unwrap_err()
            .contains("bad fault `write:0`"));
        assert!(parse("abort:nowhere")
            .unwrap_err()
            .starts_with("unknown fault point `nowhere`"));
        assert!(parse("explode").is_err());
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn unarmed_probes_do_nothing() {
        // This test process never arms the switch.
        assert!(write_error().is_none());
        point("launch.recorded");
    }
}
