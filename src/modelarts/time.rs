//! Calendar arithmetic for the few timestamp formats the Huawei APIs use (UTC only).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A UTC calendar time to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// Days since 1970-01-01 to a (year, month, day), for the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

impl Civil {
    /// The calendar time of a Unix timestamp in seconds.
    pub fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
        }
    }

    /// The calendar time of a `SystemTime` (sub-second part dropped).
    pub fn from_system_time(time: SystemTime) -> Self {
        Self::from_unix(unix_seconds(time))
    }

    /// Checks the fields and returns the Unix timestamp, or `None` for an impossible date.
    pub fn to_unix(self) -> Option<i64> {
        let valid = (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
            && self.hour < 24
            && self.minute < 60
            && self.second < 60;
        valid.then(|| {
            days_from_civil(self.year, self.month, self.day) * 86_400
                + i64::from(self.hour) * 3600
                + i64::from(self.minute) * 60
                + i64::from(self.second)
        })
    }

    /// The `SystemTime` of this calendar time, or `None` for an impossible date.
    pub fn to_system_time(self) -> Option<SystemTime> {
        let secs = self.to_unix()?;
        if secs >= 0 {
            UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
        } else {
            UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
        }
    }
}

/// Whole seconds since the Unix epoch (negative before it).
pub(crate) fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form `Retry-After` dates take.
pub(crate) fn parse_http_date(s: &str) -> Option<SystemTime> {
    let mut parts = s.split_ascii_whitespace();
    let _weekday = parts.next()?;
    let day = digits(parts.next()?)?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year = i64::from(digits(parts.next()?)?);
    let mut hms = parts.next()?.split(':');
    let hour = digits(hms.next()?)?;
    let minute = digits(hms.next()?)?;
    let second = digits(hms.next()?)?;
    if parts.next()? != "GMT" || parts.next().is_some() || hms.next().is_some() {
        return None;
    }
    Civil {
        year,
        month,
        day,
        hour,
        minute,
        second,
    }
    .to_system_time()
}

/// Formats a time the way Go's `time.Time.String()` does for UTC, which is how ModelArts writes
/// `operationTime`: `2025-03-27 11:48:55.446172146 +0000 UTC`.
pub(crate) fn go_time_string(time: SystemTime) -> String {
    let c = Civil::from_system_time(time);
    let nanos = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut out = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips_across_eras() {
        for secs in [
            0_i64,
            951_782_400,
            1_573_788_615,
            4_102_444_799,
            -86_400,
            253_402_300_799,
        ] {
            assert_eq!(Civil::from_unix(secs).to_unix(), Some(secs));
        }
        let c = Civil::from_unix(1_573_788_615);
        assert_eq!((c.year, c.month, c.day), (2019, 11, 15));
        assert_eq!((c.hour, c.minute, c.second), (3, 30, 15));
    }

    #[test]
    fn impossible_dates_are_rejected() {
        let c = Civil {
            year: 2023,
            month: 2,
            day: 29,
            hour: 0,
            minute: 0,
            second: 0,
        };
        assert_eq!(c.to_unix(), None);
        assert!(Civil { year: 2024, ..c }.to_unix().is_some());
        assert_eq!(Civil { month: 13, ..c }.to_unix(), None);
    }

    #[test]
    fn http_dates_parse() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(t.map(unix_seconds), Some(784_111_777));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("garbage"), None);
        assert_eq!(parse_http_date(""), None);
    }

    #[test]
    fn go_time_string_matches_modelarts() {
        let t = UNIX_EPOCH + Duration::new(1_743_076_135, 446_172_146);
        assert_eq!(go_time_string(t), "2025-03-27 11:48:55.446172146 +0000 UTC");
        let whole = UNIX_EPOCH + Duration::from_secs(1_743_076_135);
        assert_eq!(go_time_string(whole), "2025-03-27 11:48:55 +0000 UTC");
    }
}
