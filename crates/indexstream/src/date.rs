//! Dates as the library writes them: RFC 3339 in UTC, formatted by `jiff`.

use std::fmt::Write;

use jiff::civil::DateTime;
use jiff::{SignedDuration, Timestamp};

const EPOCH: DateTime = jiff::civil::date(1970, 1, 1).at(0, 0, 0, 0);

/// The UTC wall-clock time `ms` milliseconds after the epoch (civil time, which reaches
/// 9999-12-31T23:59:59.999 where `jiff::Timestamp` stops a day earlier). Past the years
/// -9999..=9999, which no OpenSearch date reaches in practice, it is clamped to the nearest end.
fn at_millis(ms: i64) -> DateTime {
    EPOCH
        .checked_add(SignedDuration::from_millis(ms))
        .unwrap_or(if ms < 0 { DateTime::MIN } else { DateTime::MAX })
}

/// Formats epoch milliseconds as RFC 3339 UTC, `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn iso_millis(ms: i64) -> String {
    let mut out = String::with_capacity(24);
    let _ = write!(out, "{:.3}Z", at_millis(ms));
    out
}

/// Formats epoch nanoseconds as RFC 3339 UTC with nine fractional digits (an `i64` of
/// nanoseconds always lies within the years `jiff` holds: 1677 to 2262).
pub fn iso_nanos(ns: i64) -> String {
    let ts = Timestamp::from_nanosecond(i128::from(ns)).unwrap_or(Timestamp::UNIX_EPOCH);
    let mut out = String::with_capacity(30);
    let _ = write!(out, "{ts:.9}");
    out
}

/// Parses an RFC 3339 time into epoch milliseconds; without an offset it is taken as UTC.
pub(crate) fn parse_rfc3339_millis(s: &str) -> Result<i64, jiff::Error> {
    let s = s.trim();
    let ts = match s.parse::<jiff::Timestamp>() {
        Ok(ts) => ts,
        Err(_) => s
            .parse::<jiff::civil::DateTime>()?
            .to_zoned(jiff::tz::TimeZone::UTC)?
            .timestamp(),
    };
    Ok(ts.as_millisecond())
}

/// Now, as RFC 3339 UTC with milliseconds (the `updated_at` of the documents we write).
pub(crate) fn now_iso() -> String {
    iso_millis(now_millis())
}

/// Now, in milliseconds since the epoch.
pub(crate) fn now_millis() -> i64 {
    Timestamp::now().as_millisecond()
}

/// Now, in nanoseconds since the epoch (seeds and unique names).
pub(crate) fn now_nanos() -> i128 {
    Timestamp::now().as_nanosecond()
}

/// Appends `YYYY-MM-DDTHH:MM:SS` (no fraction, no zone) of the second `secs` after the epoch.
pub(crate) fn push_second(secs: i64, out: &mut String) {
    let _ = write!(out, "{:.0}", at_millis(secs.saturating_mul(1000)));
}

/// Appends `v` zero-padded to `width` digits (the fraction of a timestamp).
pub(crate) fn push_padded(out: &mut String, v: u64, width: usize) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(v);
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(digits);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_formatting() {
        assert_eq!(iso_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_millis(1_571_646_604_828), "2019-10-21T08:30:04.828Z");
        assert_eq!(iso_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(iso_millis(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(iso_nanos(1), "1970-01-01T00:00:00.000000001Z");
        assert_eq!(
            iso_nanos(1_571_646_604_828_000_123),
            "2019-10-21T08:30:04.828000123Z"
        );
        assert_eq!(iso_nanos(-1), "1969-12-31T23:59:59.999999999Z");
        let mut s = String::new();
        push_second(1_571_646_604, &mut s);
        assert_eq!(s, "2019-10-21T08:30:04");
        let mut s = String::new();
        push_padded(&mut s, 42, 3);
        push_padded(&mut s, 123_456_789, 9);
        assert_eq!(s, "042123456789");
    }
}

/// Milliseconds for people, to the second: `28s`, `1m 30s` (`0s` below one second).
pub(crate) fn human_ms(ms: i64) -> String {
    format!(
        "{:#}",
        jiff::SignedDuration::from_secs((ms + 500).div_euclid(1000))
    )
}

#[cfg(test)]
mod human_tests {
    #[test]
    fn durations_read_to_the_second() {
        assert_eq!(super::human_ms(28_472), "28s");
        assert_eq!(super::human_ms(90_000), "1m 30s");
        assert_eq!(super::human_ms(200), "0s");
    }
}
