//! RFC 3339 date-times without a calendar dependency: strict parsing for validation,
//! lenient parsing (a bare date) for query comparisons, and the one output form the API
//! writes, UTC with millisecond precision and a trailing `Z`.

use std::cmp::Ordering;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// An instant: seconds since the Unix epoch and nanoseconds within the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

impl Timestamp {
    /// `nanos` above 999 999 999 is carried into the seconds.
    pub fn new(secs: i64, nanos: u32) -> Self {
        let carry = i64::from(nanos / 1_000_000_000);
        Self {
            secs: secs.saturating_add(carry),
            nanos: nanos % 1_000_000_000,
        }
    }

    pub fn from_system_time(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(d) => Self::new(
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                d.subsec_nanos(),
            ),
            Err(e) => {
                let d = e.duration();
                let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                if d.subsec_nanos() == 0 {
                    Self::new(-secs, 0)
                } else {
                    Self::new(-secs - 1, 1_000_000_000 - d.subsec_nanos())
                }
            }
        }
    }

    pub fn secs(&self) -> i64 {
        self.secs
    }

    pub fn nanos(&self) -> u32 {
        self.nanos
    }

    /// Truncated to whole milliseconds (the precision the API writes).
    pub fn truncate_to_millis(self) -> Self {
        Self::new(self.secs, self.nanos - self.nanos % 1_000_000)
    }

    /// One millisecond later.
    pub fn plus_millis(self, millis: u32) -> Self {
        let nanos = u64::from(self.nanos) + u64::from(millis) * 1_000_000;
        let secs = self.secs.saturating_add((nanos / 1_000_000_000) as i64);
        Self::new(secs, (nanos % 1_000_000_000) as u32)
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub fn to_rfc3339_millis(&self) -> String {
        let days = self.secs.div_euclid(86_400);
        let secs_of_day = self.secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            secs_of_day / 3600,
            (secs_of_day / 60) % 60,
            secs_of_day % 60,
            self.nanos / 1_000_000
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339_millis())
    }
}

/// Strict RFC 3339 `date-time` (the swagger `format: date-time`):
/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; `T`/`Z` may be lower case.
pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 {
        return None;
    }
    let days = parse_date(&bytes[..10])?;
    if !matches!(bytes[10], b'T' | b't') {
        return None;
    }
    let (secs_of_day, nanos, rest) = parse_time(&bytes[11..])?;
    let offset = parse_offset(rest)?;
    let secs = days * 86_400 + secs_of_day - offset;
    Some(Timestamp::new(secs, nanos))
}

/// What query comparisons accept: a full RFC 3339 date-time, the same with a space
/// instead of `T`, or a bare `YYYY-MM-DD` (midnight UTC). A space before a trailing `HH:MM`
/// is read as `+`: that is what an unencoded `+01:00` offset becomes in a query string.
pub fn parse_lenient(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if text.len() == 10 {
        let days = parse_date(text.as_bytes())?;
        return Some(Timestamp::new(days * 86_400, 0));
    }
    if let Some(ts) = parse_rfc3339(text) {
        return Some(ts);
    }
    if !text.is_ascii() || text.len() < 20 {
        return None;
    }
    let mut fixed = text.as_bytes().to_vec();
    if fixed[10] == b' ' {
        fixed[10] = b'T';
    }
    let offset_sign = fixed.len() - 6;
    if fixed[offset_sign] == b' ' && fixed[offset_sign + 3] == b':' {
        fixed[offset_sign] = b'+';
    }
    parse_rfc3339(std::str::from_utf8(&fixed).ok()?)
}

/// Orders two strings as instants if both are date-times.
pub fn compare_instants(a: &str, b: &str) -> Option<Ordering> {
    Some(parse_lenient(a)?.cmp(&parse_lenient(b)?))
}

fn digits(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        bytes
            .iter()
            .fold(0i64, |acc, b| acc * 10 + i64::from(b - b'0')),
    )
}

/// `YYYY-MM-DD` → days since 1970-01-01.
fn parse_date(bytes: &[u8]) -> Option<i64> {
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year = digits(&bytes[0..4])?;
    let month = digits(&bytes[5..7])?;
    let day = digits(&bytes[8..10])?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// `HH:MM:SS[.fraction]` → (seconds of day, nanos, remaining bytes).
fn parse_time(bytes: &[u8]) -> Option<(i64, u32, &[u8])> {
    if bytes.len() < 8 || bytes[2] != b':' || bytes[5] != b':' {
        return None;
    }
    let hour = digits(&bytes[0..2])?;
    let minute = digits(&bytes[3..5])?;
    // 60 is a leap second; it is folded into the last second of the minute.
    let second = digits(&bytes[6..8])?.min(59);
    if hour > 23 || minute > 59 || digits(&bytes[6..8])? > 60 {
        return None;
    }
    let mut rest = &bytes[8..];
    let mut nanos = 0u32;
    if rest.first() == Some(&b'.') {
        let len = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if len == 0 || len > 9 {
            return None;
        }
        let value = digits(&rest[1..=len])?;
        nanos = u32::try_from(value * 10i64.pow(9 - len as u32)).ok()?;
        rest = &rest[1 + len..];
    }
    Some((hour * 3600 + minute * 60 + second, nanos, rest))
}

/// `Z` or `±HH:MM` → offset in seconds east of UTC.
fn parse_offset(bytes: &[u8]) -> Option<i64> {
    match bytes {
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 3600 + minutes * 60;
            Some(if *sign == b'-' { -offset } else { offset })
        }
        _ => None,
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_utc_with_millis_and_z() {
        assert_eq!(
            Timestamp::new(0, 0).to_rfc3339_millis(),
            "1970-01-01T00:00:00.000Z"
        );
        let ts = Timestamp::new(1_700_000_000, 123_456_789);
        assert_eq!(ts.to_rfc3339_millis(), "2023-11-14T22:13:20.123Z");
        assert_eq!(
            Timestamp::new(951_782_400, 0).to_rfc3339_millis(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::new(-1, 0).to_rfc3339_millis(),
            "1969-12-31T23:59:59.000Z"
        );
    }

    #[test]
    fn round_trips_through_parse() {
        for secs in [
            0i64,
            1,
            86_399,
            951_782_400,
            1_700_000_000,
            4_102_444_800,
            -86_400,
        ] {
            let ts = Timestamp::new(secs, 5_000_000);
            assert_eq!(parse_rfc3339(&ts.to_rfc3339_millis()), Some(ts), "{secs}");
        }
    }

    #[test]
    fn parses_offsets_and_fractions() {
        let utc = parse_rfc3339("2023-11-14T22:13:20Z").unwrap();
        assert_eq!(parse_rfc3339("2023-11-14T23:13:20+01:00"), Some(utc));
        assert_eq!(parse_rfc3339("2023-11-14T21:13:20-01:00"), Some(utc));
        assert_eq!(parse_rfc3339("2023-11-14t22:13:20z"), Some(utc));
        let frac = parse_rfc3339("1985-04-12T23:20:50.52Z").unwrap();
        assert_eq!(frac.nanos(), 520_000_000);
        assert!(parse_rfc3339("1985-04-12T23:20:50.123456789Z").is_some());
    }

    #[test]
    fn rejects_malformed_date_times() {
        for bad in [
            "",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-11-14 22:13:20Z",
            "2023-13-14T22:13:20Z",
            "2023-02-29T22:13:20Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:60:00Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20.1234567890Z",
            "2023-11-14T22:13:20+0100",
            "2023-11-14T22:13:20+24:00",
            "2023-11-14T22:13:20ZZ",
            "20231-11-14T22:13:20Z",
            "２０２3-11-14T22:13:20Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
        assert!(parse_rfc3339("2024-02-29T00:00:00Z").is_some());
    }

    #[test]
    fn lenient_accepts_dates_and_space_separator() {
        assert_eq!(parse_lenient("1970-01-02"), Some(Timestamp::new(86_400, 0)));
        assert_eq!(
            parse_lenient("2023-11-14 22:13:20Z"),
            parse_rfc3339("2023-11-14T22:13:20Z")
        );
        assert_eq!(parse_lenient("yesterday"), None);
        assert_eq!(
            parse_lenient("2023-11-14T23:13:20 01:00"),
            parse_rfc3339("2023-11-14T22:13:20Z")
        );
        assert_eq!(parse_lenient("2023-11-14T23:13:20 0100"), None);
        assert_eq!(parse_lenient("2023-11-14T23:13:20é01:00"), None);
        assert_eq!(
            compare_instants("2023-11-14T22:13:20Z", "2023-11-14"),
            Some(Ordering::Greater)
        );
    }

    #[test]
    fn system_time_and_arithmetic() {
        let ts = Timestamp::from_system_time(UNIX_EPOCH + Duration::new(10, 1_999_999));
        assert_eq!(ts.truncate_to_millis(), Timestamp::new(10, 1_000_000));
        assert_eq!(
            ts.truncate_to_millis().plus_millis(999),
            Timestamp::new(11, 0)
        );
        let before = Timestamp::from_system_time(UNIX_EPOCH - Duration::new(1, 500_000_000));
        assert_eq!(before, Timestamp::new(-2, 500_000_000));
    }
}
