//! Named time intervals (`time_intervals`, deprecated `mute_time_intervals`):
//! "is instant t inside interval X", evaluated on the wall clock of the
//! interval's `location` (IANA zone, `UTC` by default, `Local` for the host).
//!
//! An instant is first converted to the zone's civil time (so DST is handled
//! by the zone rules), then every non-empty field must match: `times` (start
//! inclusive, end exclusive, minutes of the day), `weekdays` (Sunday first),
//! `days_of_month` (negative counts from the end of the month, clamped to the
//! month's length), `months` and `years` (inclusive ranges). An interval
//! matches when any of its specs matches; a spec with no fields matches always.

use jiff::Timestamp;
use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use serde::{Deserialize, Deserializer};
use std::collections::HashMap;

/// A named interval as written in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeInterval {
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "crate::config::nullable")]
    pub time_intervals: Vec<TimeIntervalSpec>,
}

impl TimeInterval {
    pub fn contains(&self, t: Timestamp) -> bool {
        self.time_intervals.iter().any(|s| s.contains(t))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalSpec {
    #[serde(default, deserialize_with = "crate::config::nullable")]
    pub times: Vec<TimeRange>,
    #[serde(default, deserialize_with = "crate::config::nullable")]
    pub weekdays: Vec<WeekdayRange>,
    #[serde(default, deserialize_with = "crate::config::nullable")]
    pub days_of_month: Vec<DayOfMonthRange>,
    #[serde(default, deserialize_with = "crate::config::nullable")]
    pub months: Vec<MonthRange>,
    #[serde(default, deserialize_with = "crate::config::nullable")]
    pub years: Vec<YearRange>,
    #[serde(default)]
    pub location: Option<Location>,
}

impl TimeIntervalSpec {
    pub fn contains(&self, t: Timestamp) -> bool {
        let tz = self
            .location
            .as_ref()
            .map(|l| l.tz.clone())
            .unwrap_or(TimeZone::UTC);
        let z = t.to_zoned_datetime(tz);
        let minute = z.hour() as u16 * 60 + z.minute() as u16;
        if !self.times.is_empty()
            && !self
                .times
                .iter()
                .any(|r| r.start_minute <= minute && minute < r.end_minute)
        {
            return false;
        }
        if !self.days_of_month.is_empty() {
            let dim = z.date().days_in_month() as i32;
            let day = z.day() as i32;
            let hit = self.days_of_month.iter().any(|r| {
                let resolve = |d: i32| if d < 0 { dim + d + 1 } else { d };
                let begin = resolve(r.begin as i32).max(1);
                let end = resolve(r.end as i32).min(dim);
                begin <= day && day <= end
            });
            if !hit {
                return false;
            }
        }
        if !self.months.is_empty() {
            let m = z.month() as u8;
            if !self.months.iter().any(|r| r.begin <= m && m <= r.end) {
                return false;
            }
        }
        if !self.weekdays.is_empty() {
            let wd = z.weekday().to_sunday_zero_offset() as u8;
            if !self.weekdays.iter().any(|r| r.begin <= wd && wd <= r.end) {
                return false;
            }
        }
        if !self.years.is_empty() {
            let y = z.year() as i32;
            if !self.years.iter().any(|r| r.begin <= y && y <= r.end) {
                return false;
            }
        }
        true
    }
}

/// `start_time`..`end_time` as minutes of the day; start inclusive, end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start_minute: u16,
    pub end_minute: u16,
}

fn parse_hhmm(s: &str) -> Result<u16, String> {
    let bad = || format!("invalid time {s:?}: expected HH:MM between 00:00 and 24:00");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl<'de> Deserialize<'de> for TimeRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            start_time: String,
            end_time: String,
        }
        let raw = Raw::deserialize(d)?;
        let start = parse_hhmm(&raw.start_time).map_err(serde::de::Error::custom)?;
        let end = parse_hhmm(&raw.end_time).map_err(serde::de::Error::custom)?;
        if start >= end {
            return Err(serde::de::Error::custom(format!(
                "start_time {:?} must be before end_time {:?}",
                raw.start_time, raw.end_time
            )));
        }
        Ok(TimeRange {
            start_minute: start,
            end_minute: end,
        })
    }
}

/// Splits `a:b` (or a single `a`) into its two ends. Negative numbers are
/// allowed on both sides (`-3:-1`).
fn split_range(s: &str) -> (&str, &str) {
    // find a ':' that is not the first character
    match s.char_indices().skip(1).find(|&(_, c)| c == ':') {
        Some((i, _)) => (s[..i].trim(), s[i + 1..].trim()),
        None => (s.trim(), s.trim()),
    }
}

macro_rules! string_range {
    ($ty:ident) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                // accept plain integers as well as strings (`years: [2024]`)
                let v = serde_yaml_ng::Value::deserialize(d)?;
                let s = match v {
                    serde_yaml_ng::Value::String(s) => s,
                    serde_yaml_ng::Value::Number(n) => n.to_string(),
                    other => {
                        return Err(serde::de::Error::custom(format!(
                            "expected a string or a number, got {other:?}"
                        )));
                    }
                };
                $ty::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Days of the week as 0 (Sunday) ..= 6 (Saturday), inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeekdayRange {
    pub begin: u8,
    pub end: u8,
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

impl WeekdayRange {
    pub fn parse(s: &str) -> Result<Self, String> {
        let day = |d: &str| {
            WEEKDAYS
                .iter()
                .position(|w| w.eq_ignore_ascii_case(d))
                .map(|i| i as u8)
                .ok_or_else(|| format!("invalid weekday {d:?}"))
        };
        let (a, b) = split_range(s);
        let (begin, end) = (day(a)?, day(b)?);
        if begin > end {
            return Err(format!(
                "weekday range {s:?}: start day must not be after end day (weeks start on Sunday)"
            ));
        }
        Ok(WeekdayRange { begin, end })
    }

    pub fn contains(&self, wd: Weekday) -> bool {
        let i = wd.to_sunday_zero_offset() as u8;
        self.begin <= i && i <= self.end
    }
}
string_range!(WeekdayRange);

/// Days of the month, 1..=31 or -31..=-1 (from the end), inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayOfMonthRange {
    pub begin: i8,
    pub end: i8,
}

impl DayOfMonthRange {
    pub fn parse(s: &str) -> Result<Self, String> {
        let day = |d: &str| -> Result<i8, String> {
            let n: i8 = d
                .parse()
                .map_err(|_| format!("invalid day of month {d:?}"))?;
            if n == 0 || !(-31..=31).contains(&n) {
                return Err(format!(
                    "invalid day of month {n}: must be 1..31 or -31..-1"
                ));
            }
            Ok(n)
        };
        let (a, b) = split_range(s);
        let (begin, end) = (day(a)?, day(b)?);
        // Compare on a 31-day month; shorter months are clamped when evaluated.
        let abs = |d: i8| if d < 0 { 31 + d as i32 + 1 } else { d as i32 };
        if abs(begin) > abs(end) {
            return Err(format!(
                "days_of_month range {s:?}: start day must not be after end day"
            ));
        }
        Ok(DayOfMonthRange { begin, end })
    }
}
string_range!(DayOfMonthRange);

/// Months 1 (January) ..= 12, by number or case-insensitive name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthRange {
    pub begin: u8,
    pub end: u8,
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

impl MonthRange {
    pub fn parse(s: &str) -> Result<Self, String> {
        let month = |m: &str| -> Result<u8, String> {
            if let Ok(n) = m.parse::<u8>() {
                if (1..=12).contains(&n) {
                    return Ok(n);
                }
                return Err(format!("invalid month {n}: must be 1..12"));
            }
            MONTHS
                .iter()
                .position(|x| x.eq_ignore_ascii_case(m))
                .map(|i| i as u8 + 1)
                .ok_or_else(|| format!("invalid month {m:?}"))
        };
        let (a, b) = split_range(s);
        let (begin, end) = (month(a)?, month(b)?);
        if begin > end {
            return Err(format!(
                "month range {s:?}: start month must not be after end month"
            ));
        }
        Ok(MonthRange { begin, end })
    }
}
string_range!(MonthRange);

/// Years, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YearRange {
    pub begin: i32,
    pub end: i32,
}

impl YearRange {
    pub fn parse(s: &str) -> Result<Self, String> {
        let year = |y: &str| -> Result<i32, String> {
            let n: i32 = y.parse().map_err(|_| format!("invalid year {y:?}"))?;
            if n <= 0 {
                return Err(format!("invalid year {n}: must be positive"));
            }
            Ok(n)
        };
        let (a, b) = split_range(s);
        let (begin, end) = (year(a)?, year(b)?);
        if begin > end {
            return Err(format!(
                "year range {s:?}: start year must not be after end year"
            ));
        }
        Ok(YearRange { begin, end })
    }
}
string_range!(YearRange);

/// An IANA time zone name (`Europe/Berlin`), `UTC`, or `Local` (the host's zone).
#[derive(Debug, Clone)]
pub struct Location {
    pub name: String,
    pub tz: TimeZone,
}

impl Location {
    pub fn parse(name: &str) -> Result<Self, String> {
        let tz = match name {
            "UTC" | "" => TimeZone::UTC,
            "Local" => TimeZone::system(),
            _ => TimeZone::get(name).map_err(|e| format!("unknown time zone {name:?}: {e}"))?,
        };
        Ok(Location {
            name: name.to_string(),
            tz,
        })
    }
}

impl<'de> Deserialize<'de> for Location {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Location::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// All named intervals of a config, by name.
#[derive(Debug, Clone, Default)]
pub struct TimeIntervals(pub HashMap<String, TimeInterval>);

impl TimeIntervals {
    pub fn get(&self, name: &str) -> Option<&TimeInterval> {
        self.0.get(name)
    }

    /// Is `t` inside the named interval? `None` when no such interval exists.
    pub fn contains(&self, name: &str, t: Timestamp) -> Option<bool> {
        self.0.get(name).map(|i| i.contains(t))
    }

    /// The first of `names` that contains `t` (unknown names never do).
    pub fn first_containing<'a>(&self, names: &'a [String], t: Timestamp) -> Option<&'a str> {
        names
            .iter()
            .find(|n| self.contains(n, t) == Some(true))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> TimeIntervalSpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn business_hours_in_utc() {
        let s = spec(
            "times: [{start_time: '09:00', end_time: '17:00'}]\nweekdays: ['monday:friday']\n",
        );
        // 2026-11-25 is a Wednesday
        assert!(s.contains(ts("2026-11-25T09:00:00Z")));
        assert!(s.contains(ts("2026-11-25T16:59:59Z")));
        assert!(!s.contains(ts("2026-11-25T17:00:00Z")), "end is exclusive");
        assert!(!s.contains(ts("2026-11-25T08:59:59Z")));
        assert!(!s.contains(ts("2026-11-28T10:00:00Z")), "saturday");
        assert!(!s.contains(ts("2026-11-29T10:00:00Z")), "sunday");
    }

    #[test]
    fn location_uses_local_wall_clock() {
        let s = spec(
            "times: [{start_time: '09:00', end_time: '17:00'}]\nlocation: 'Australia/Sydney'\n",
        );
        // Sydney is UTC+11 in November (DST): 09:00 local = 22:00 UTC the day before
        assert!(s.contains(ts("2026-11-24T22:00:00Z")));
        assert!(!s.contains(ts("2026-11-24T21:59:00Z")));
        assert!(s.contains(ts("2026-11-25T05:59:00Z")));
        assert!(!s.contains(ts("2026-11-25T06:00:00Z")));
    }

    #[test]
    fn dst_transitions_follow_the_zone() {
        // Berlin: CET (UTC+1) in winter, CEST (UTC+2) in summer.
        let s =
            spec("times: [{start_time: '09:00', end_time: '10:00'}]\nlocation: Europe/Berlin\n");
        assert!(s.contains(ts("2026-01-15T08:30:00Z")), "winter: 09:30 CET");
        assert!(
            !s.contains(ts("2026-07-15T08:30:00Z")),
            "summer: 10:30 CEST"
        );
        assert!(s.contains(ts("2026-07-15T07:30:00Z")), "summer: 09:30 CEST");
        // On the spring-forward day (2026-03-29) 02:00-03:00 local does not
        // exist: a window 02:00-03:00 never matches, 03:00 local is 01:00 UTC.
        let gap =
            spec("times: [{start_time: '02:00', end_time: '03:00'}]\nlocation: Europe/Berlin\n");
        assert!(!gap.contains(ts("2026-03-29T00:59:59Z")), "01:59:59 CET");
        assert!(!gap.contains(ts("2026-03-29T01:00:00Z")), "03:00 CEST");
        // On fall-back day (2026-10-25) 02:00-03:00 local happens twice.
        assert!(gap.contains(ts("2026-10-25T00:30:00Z")), "02:30 CEST");
        assert!(gap.contains(ts("2026-10-25T01:30:00Z")), "02:30 CET");
    }

    #[test]
    fn negative_days_of_month_count_from_the_end() {
        let s = spec("days_of_month: ['-3:-1']\n");
        assert!(
            s.contains(ts("2026-02-26T12:00:00Z")),
            "Feb has 28 days in 2026"
        );
        assert!(s.contains(ts("2026-02-28T12:00:00Z")));
        assert!(!s.contains(ts("2026-02-25T12:00:00Z")));
        assert!(s.contains(ts("2026-01-29T12:00:00Z")));
        assert!(!s.contains(ts("2026-01-28T12:00:00Z")));
        let whole = spec("days_of_month: ['1:31']\n");
        assert!(
            whole.contains(ts("2026-02-28T12:00:00Z")),
            "clamped to February"
        );
        let mixed = spec("days_of_month: ['5:-1', '1']\n");
        assert!(mixed.contains(ts("2026-04-30T00:00:00Z")));
        assert!(mixed.contains(ts("2026-04-01T00:00:00Z")));
        assert!(!mixed.contains(ts("2026-04-03T00:00:00Z")));
    }

    #[test]
    fn months_and_years() {
        let s = spec("months: ['may:august', 'december']\nyears: ['2025:2026', 2030]\n");
        assert!(s.contains(ts("2026-06-01T00:00:00Z")));
        assert!(s.contains(ts("2030-12-01T00:00:00Z")));
        assert!(!s.contains(ts("2026-11-01T00:00:00Z")));
        assert!(!s.contains(ts("2027-06-01T00:00:00Z")));
        let n = spec("months: ['1:3']\n");
        assert!(n.contains(ts("2026-03-31T23:59:59Z")));
        assert!(!n.contains(ts("2026-04-01T00:00:00Z")));
    }

    #[test]
    fn empty_spec_matches_always_and_interval_is_any_of() {
        assert!(TimeIntervalSpec::default().contains(ts("2026-01-01T00:00:00Z")));
        let ti: TimeInterval = serde_yaml_ng::from_str(
            "name: x\ntime_intervals:\n  - weekdays: [saturday]\n  - weekdays: [sunday]\n",
        )
        .unwrap();
        assert!(ti.contains(ts("2026-11-28T10:00:00Z")));
        assert!(ti.contains(ts("2026-11-29T10:00:00Z")));
        assert!(!ti.contains(ts("2026-11-27T10:00:00Z")));
    }

    #[test]
    fn invalid_specs_are_refused() {
        for bad in [
            "times: [{start_time: '17:00', end_time: '09:00'}]",
            "times: [{start_time: '09:00', end_time: '24:01'}]",
            "times: [{start_time: '9:00', end_time: '10:00'}]",
            "weekdays: ['friday:monday']",
            "weekdays: ['funday']",
            "days_of_month: ['0']",
            "days_of_month: ['10:5']",
            "days_of_month: ['-1:-3']",
            "days_of_month: ['32']",
            "months: ['13']",
            "months: ['december:january']",
            "years: ['2030:2020']",
            "location: 'Mars/Olympus'",
            "unknown: 1",
        ] {
            assert!(
                serde_yaml_ng::from_str::<TimeIntervalSpec>(bad).is_err(),
                "{bad} should be refused"
            );
        }
        assert!(
            serde_yaml_ng::from_str::<TimeIntervalSpec>(
                "times: [{start_time: '17:00', end_time: '24:00'}]"
            )
            .is_ok()
        );
    }

    #[test]
    fn registry_lookup() {
        let ti: TimeInterval = serde_yaml_ng::from_str(
            "name: weekend\ntime_intervals:\n  - weekdays: ['saturday', 'sunday']\n",
        )
        .unwrap();
        let mut all = TimeIntervals::default();
        all.0.insert(ti.name.clone(), ti);
        let sat = ts("2026-11-28T10:00:00Z");
        assert_eq!(all.contains("weekend", sat), Some(true));
        assert_eq!(all.contains("nope", sat), None);
        let names = vec!["nope".to_string(), "weekend".to_string()];
        assert_eq!(all.first_containing(&names, sat), Some("weekend"));
        assert_eq!(
            all.first_containing(&names, ts("2026-11-27T10:00:00Z")),
            None
        );
    }
}
