//! The time `pledged` writes on its log lines: UTC to the minute, never
//! finer. A log line's time is metadata about whatever the line reports,
//! and the log must not help anyone order or date a pledge (DESIGN P6; the
//! publication policy already delays pledges by seconds, which a
//! microsecond timestamp on a nearby line would undo).

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// `YYYY-MM-DDTHH:MMZ` (RFC 3339 without seconds).
#[derive(Debug, Clone, Copy, Default)]
pub struct Minutes;

impl FormatTime for Minutes {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        w.write_str(&minute_stamp(secs))
    }
}

/// `secs` (POSIX time) as `YYYY-MM-DDTHH:MMZ`.
pub fn minute_stamp(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let mut s = String::with_capacity(17);
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60
    );
    s
}

/// Days since 1970-01-01 as a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`, for non-negative days).
pub(crate) fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_minutes() {
        assert_eq!(minute_stamp(0), "1970-01-01T00:00Z");
        // 2000-02-29 12:34:56 UTC (a leap day of a century leap year).
        assert_eq!(minute_stamp(951_827_696), "2000-02-29T12:34Z");
        // 2026-12-06 05:03:40 UTC.
        assert_eq!(minute_stamp(1_796_533_420), "2026-12-06T05:03Z");
        // 2100-03-01 00:00:59 (2100 is not a leap year).
        assert_eq!(minute_stamp(4_107_542_459), "2100-03-01T00:00Z");
    }
}
