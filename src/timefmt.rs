//! Times as minimega prints them: Go durations (`1h2m3s`) and civil dates.
//! Pure; used by every room that shows an uptime, an age or a date.

use std::time::Duration;

/// A duration as Go prints it (`1h2m3s`), whole seconds, as minimega shows
/// uptimes.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// A duration exactly as Go's `Duration.String()` prints it, nanoseconds
/// and all (`2m3.004512345s`, `1.5ms`, `0s`): minimega's `vm info` uptime,
/// which clients parse back with Go's `time.ParseDuration`.
pub fn go_duration_exact(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        // Below a second Go picks the largest unit with a whole part.
        let (unit, div) = match ns {
            n if n < 1_000 => ("ns", 1u128),
            n if n < 1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{}{unit}", fraction(ns / div, ns % div, div));
    }
    let secs = ns / 1_000_000_000;
    let sub = ns % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let s = format!("{}s", fraction(s, sub, 1_000_000_000));
    match (h, m) {
        (0, 0) => s,
        (0, _) => format!("{m}m{s}"),
        _ => format!("{h}h{m}m{s}"),
    }
}

/// `whole.frac` with the fraction's trailing zeros dropped.
fn fraction(whole: u128, frac: u128, div: u128) -> String {
    if frac == 0 {
        return whole.to_string();
    }
    let digits = div.to_string().len() - 1;
    let f = format!("{frac:0digits$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// `YYYY-MM-DD` of a Unix time (UTC), for the page's date line.
pub fn date_of(epoch_secs: u64) -> String {
    let (y, m, d) = civil(epoch_secs);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The (year, month, day) of a Unix time, UTC.
pub fn civil(epoch_secs: u64) -> (i64, i64, i64) {
    // Days to civil date (proleptic Gregorian), after Howard Hinnant's
    // public-domain algorithm.
    let z = (epoch_secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(5)), "5s");
        assert_eq!(go_duration(Duration::from_secs(65)), "1m5s");
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
    }

    /// What Go 1.19's `time.Duration.String()` prints for the same values.
    #[test]
    fn exact_go_durations() {
        let d = |s: u64, n: u32| go_duration_exact(Duration::new(s, n));
        assert_eq!(d(0, 0), "0s");
        assert_eq!(d(0, 1), "1ns");
        assert_eq!(d(0, 1_500), "1.5µs");
        assert_eq!(d(0, 1_500_000), "1.5ms");
        assert_eq!(d(0, 999_999_999), "999.999999ms");
        assert_eq!(d(1, 0), "1s");
        assert_eq!(d(123, 4_512_345), "2m3.004512345s");
        assert_eq!(d(3600, 500_000_000), "1h0m0.5s");
        assert_eq!(d(93_781, 710_000_000), "26h3m1.71s");
    }

    #[test]
    fn dates() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(951_782_400), "2000-02-29");
        assert_eq!(date_of(1_700_000_000), "2023-11-14");
    }
}
