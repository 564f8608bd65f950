//! Go's `time.Duration` as text, both ways: kb files may give delays and
//! WaitForIt timeouts as `1m30s`, and the original's `vnc` listing shows
//! times as Go prints them (`1m2.5s`, `1.5µs`).

use thiserror::Error;

const NS: u64 = 1;
const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    #[error("invalid duration `{0}`")]
    Invalid(String),
    #[error("missing unit in duration `{0}`")]
    MissingUnit(String),
    #[error("unknown unit `{unit}` in duration `{input}`")]
    UnknownUnit { unit: String, input: String },
    #[error("duration `{0}` is out of range")]
    Overflow(String),
}

fn unit(u: &str) -> Option<u64> {
    Some(match u {
        "ns" => NS,
        // Micro as the micro sign (U+00B5) or Greek mu (U+03BC).
        "us" | "\u{b5}s" | "\u{3bc}s" => US,
        "ms" => MS,
        "s" => SEC,
        "m" => MIN,
        "h" => HOUR,
        _ => return None,
    })
}

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` or `0`,
/// in nanoseconds.
pub fn parse(input: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid(input.to_string());
    let overflow = || DurationError::Overflow(input.to_string());
    let mut s = input;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix(['-', '+']) {
        neg = s.starts_with('-');
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let limit = 1u64 << 63;
    let mut total: u64 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut v: u64 = 0;
        for &c in &b[..int_len] {
            if v > limit / 10 {
                return Err(invalid());
            }
            v = v * 10 + u64::from(c - b'0');
            if v > limit {
                return Err(invalid());
            }
        }
        s = &s[int_len..];
        let (mut frac, mut scale, mut post) = (0u64, 1f64, false);
        if let Some(rest) = s.strip_prefix('.') {
            let n = rest.bytes().take_while(u8::is_ascii_digit).count();
            post = n > 0;
            // Digits past what fits are read but dropped, as Go does.
            let mut full = false;
            for c in rest[..n].bytes() {
                if full || frac > (i64::MAX as u64) / 10 {
                    full = true;
                    continue;
                }
                let next = frac * 10 + u64::from(c - b'0');
                if next > limit {
                    full = true;
                    continue;
                }
                frac = next;
                scale *= 10.0;
            }
            s = &rest[n..];
        }
        if int_len == 0 && !post {
            return Err(invalid());
        }
        let unit_len = s
            .bytes()
            .take_while(|c| !(*c == b'.' || c.is_ascii_digit()))
            .count();
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(input.to_string()));
        }
        let (u, rest) = s.split_at(unit_len);
        let per = unit(u).ok_or_else(|| DurationError::UnknownUnit {
            unit: u.to_string(),
            input: input.to_string(),
        })?;
        s = rest;
        if v > limit / per {
            return Err(overflow());
        }
        v *= per;
        if frac > 0 {
            // In f64 as Go does: exact to the nanosecond up to hours.
            v += (frac as f64 * (per as f64 / scale)) as u64;
            if v > limit {
                return Err(overflow());
            }
        }
        total += v;
        if total > limit {
            return Err(overflow());
        }
    }
    if neg {
        return Ok((total as i64).wrapping_neg());
    }
    i64::try_from(total).map_err(|_| overflow())
}

/// `.123` for the fraction of `v / 10^prec`, trailing zeros dropped (and
/// the point with them when nothing is left).
fn frac(v: u64, prec: u32) -> String {
    let digits = format!("{:0width$}", v % 10u64.pow(prec), width = prec as usize);
    let digits = digits.trim_end_matches('0');
    if digits.is_empty() {
        String::new()
    } else {
        format!(".{digits}")
    }
}

/// Go's `Duration.String`: `72h3m0.5s`, and under a second `1.2ms`,
/// `1.5µs`, `12ns`; zero is `0s`.
pub fn format(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs();
    if u == 0 {
        return "0s".to_string();
    }
    if u < SEC {
        let (prec, name) = match u {
            u if u < US => (0, "ns"),
            u if u < MS => (3, "\u{b5}s"),
            _ => (6, "ms"),
        };
        let whole = u / 10u64.pow(prec);
        return format!("{sign}{whole}{}{name}", frac(u, prec));
    }
    let secs = u / SEC;
    let mut out = format!("{}{}s", secs % 60, frac(u, 9));
    let mins = secs / 60;
    if mins > 0 {
        out = format!("{}m{out}", mins % 60);
        let hours = mins / 60;
        if hours > 0 {
            out = format!("{hours}h{out}");
        }
    }
    format!("{sign}{out}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_go_parses() {
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("5s", 5 * SEC as i64),
            ("-5s", -5 * SEC as i64),
            ("+5s", 5 * SEC as i64),
            ("1m30s", 90 * SEC as i64),
            ("1.5h", 5400 * SEC as i64),
            (".5s", 500 * MS as i64),
            ("5.s", 5 * SEC as i64),
            ("300ms", 300 * MS as i64),
            ("1us", 1000),
            ("1\u{b5}s", 1000),
            ("1\u{3bc}s", 1000),
            ("12ns", 12),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("0.000000001s", 1),
            ("1.0000000000000000000001s", SEC as i64),
            ("2562047h47m16.854775807s", i64::MAX),
            ("-2562047h47m16.854775808s", i64::MIN),
        ];
        for &(s, want) in cases {
            assert_eq!(parse(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn refuses_what_go_refuses() {
        for s in ["", "-", ".", "s", "1", "1.s.", "5x", "1e3s", "- 5s", "5 s"] {
            assert!(parse(s).is_err(), "{s}");
        }
        assert_eq!(parse("1"), Err(DurationError::MissingUnit("1".into())));
        assert_eq!(
            parse("3d"),
            Err(DurationError::UnknownUnit {
                unit: "d".into(),
                input: "3d".into()
            })
        );
        assert_eq!(
            parse("2562048h"),
            Err(DurationError::Overflow("2562048h".into()))
        );
        assert!(parse("9223372036854775808ns").is_err());
    }

    #[test]
    fn formats_as_go_prints() {
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1100, "1.1\u{b5}s"),
            (2_200_000, "2.2ms"),
            (3_300_000_000, "3.3s"),
            (4 * MIN as i64 + 5 * SEC as i64, "4m5s"),
            (4 * MIN as i64 + 5_001_000_000, "4m5.001s"),
            (
                5 * HOUR as i64 + 6 * MIN as i64 + 7_001_000_000,
                "5h6m7.001s",
            ),
            (HOUR as i64, "1h0m0s"),
            (-1_500_000_000, "-1.5s"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for &(ns, want) in cases {
            assert_eq!(format(ns), want, "{ns}");
            assert_eq!(parse(want), Ok(ns), "{want}");
        }
    }
}
