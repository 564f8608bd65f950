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

    #[test]
    fn dates() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(951_782_400), "2000-02-29");
        assert_eq!(date_of(1_700_000_000), "2023-11-14");
    }
}
