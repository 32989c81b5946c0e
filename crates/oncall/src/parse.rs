//! Parsers for the small value syntaxes of the on-call config: durations (`90s`,
//! `15m`, `1h30m`, `3d`, `2w`), times of day (`09:00`, `24:00` as an end), handoffs
//! (`09:00`, `monday 09:00`), weekdays (`mon`, `Monday`, ranges `monday:friday`),
//! dates (`2026-01-05`), instants (RFC 3339 with offset, or a civil date-time read in
//! a time zone) and IANA time zones. Each has a serde wrapper so a bad value is
//! reported by the YAML loader with its line and field path.

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Deserializer};

/// The longest duration accepted anywhere (a year), so arithmetic cannot overflow.
const MAX_SECS: i64 = 366 * 86_400;

/// Parses `0`, `30s`, `15m`, `1h30m`, `3d`, `2w` (units ms, s, m, h, d, w; a day is
/// 24 hours here, rotations apply lengths on the wall clock).
pub fn duration(s: &str) -> Result<SignedDuration, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(SignedDuration::ZERO);
    }
    if t.is_empty() {
        return Err("empty duration".into());
    }
    let mut millis: i64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "invalid duration {s:?} (expected e.g. 30s, 15m, 1h30m, 3d, 2w)"
            ));
        }
        let n: i64 = rest[..digits]
            .parse()
            .map_err(|_| format!("duration {s:?} is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let per: i64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "" => return Err(format!("duration {s:?} needs a unit (s, m, h, d, w)")),
            _ => return Err(format!("unknown unit {unit:?} in duration {s:?}")),
        };
        millis = n
            .checked_mul(per)
            .and_then(|v| v.checked_add(millis))
            .filter(|&v| v <= MAX_SECS * 1000)
            .ok_or_else(|| format!("duration {s:?} is longer than a year"))?;
    }
    Ok(SignedDuration::from_millis(millis))
}

/// Formats a duration the way [`duration`] reads it (`1h30m`, `0s`).
pub fn format_duration(d: SignedDuration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    if ms < 0 {
        out.push('-');
        ms = -ms;
    }
    for (unit, per) in [
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= per {
            out.push_str(&format!("{}{unit}", ms / per));
            ms %= per;
        }
    }
    out
}

/// Parses a time of day `HH:MM` or `HH:MM:SS` into seconds since midnight;
/// `24:00` (86400) is accepted when `allow_24` (the end of a window).
pub fn time_of_day(s: &str, allow_24: bool) -> Result<u32, String> {
    let bad = || format!("invalid time of day {s:?} (expected HH:MM)");
    let parts: Vec<&str> = s.trim().split(':').collect();
    if !(2..=3).contains(&parts.len())
        || parts
            .iter()
            .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    let h: u32 = parts[0].parse().map_err(|_| bad())?;
    let m: u32 = parts[1].parse().map_err(|_| bad())?;
    let sec: u32 = parts
        .get(2)
        .map_or(Ok(0), |p| p.parse())
        .map_err(|_| bad())?;
    if h == 24 && m == 0 && sec == 0 {
        return if allow_24 {
            Ok(86_400)
        } else {
            Err(format!(
                "{s:?}: 24:00 is only allowed as the end of a window"
            ))
        };
    }
    if h > 23 || m > 59 || sec > 59 {
        return Err(bad());
    }
    Ok(h * 3600 + m * 60 + sec)
}

/// Seconds since midnight (below 86400) as a civil time.
pub fn time_from_secs(secs: u32) -> Time {
    let secs = secs.min(86_399);
    Time::constant(
        (secs / 3600) as i8,
        ((secs / 60) % 60) as i8,
        (secs % 60) as i8,
        0,
    )
}

/// A weekday by full or three-letter English name, any case.
pub fn weekday(s: &str) -> Result<Weekday, String> {
    let l = s.trim().to_ascii_lowercase();
    Ok(match l.as_str() {
        "monday" | "mon" => Weekday::Monday,
        "tuesday" | "tue" => Weekday::Tuesday,
        "wednesday" | "wed" => Weekday::Wednesday,
        "thursday" | "thu" => Weekday::Thursday,
        "friday" | "fri" => Weekday::Friday,
        "saturday" | "sat" => Weekday::Saturday,
        "sunday" | "sun" => Weekday::Sunday,
        _ => return Err(format!("unknown weekday {s:?}")),
    })
}

/// A weekday or an inclusive range `monday:friday` (a range may wrap: `fri:mon`).
pub fn weekdays(s: &str) -> Result<Vec<Weekday>, String> {
    match s.split_once(':') {
        None => Ok(vec![weekday(s)?]),
        Some((a, b)) => {
            let (a, b) = (weekday(a)?, weekday(b)?);
            let mut out = vec![a];
            let mut d = a;
            while d != b {
                d = d.next();
                out.push(d);
            }
            Ok(out)
        }
    }
}

/// A handoff: a time of day, preceded by a weekday for weekly rotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Handoff {
    pub weekday: Option<Weekday>,
    /// Seconds since midnight.
    pub time: u32,
}

/// Parses `09:00` or `monday 09:00`.
pub fn handoff(s: &str) -> Result<Handoff, String> {
    let mut words = s.split_whitespace();
    let (a, b) = (words.next(), words.next());
    if words.next().is_some() {
        return Err(format!(
            "invalid handoff {s:?} (expected HH:MM or WEEKDAY HH:MM)"
        ));
    }
    match (a, b) {
        (Some(t), None) => Ok(Handoff {
            weekday: None,
            time: time_of_day(t, false)?,
        }),
        (Some(d), Some(t)) => Ok(Handoff {
            weekday: Some(weekday(d)?),
            time: time_of_day(t, false)?,
        }),
        _ => Err("empty handoff".into()),
    }
}

/// A calendar date `YYYY-MM-DD`.
pub fn date(s: &str) -> Result<Date, String> {
    s.trim()
        .parse::<Date>()
        .map_err(|e| format!("invalid date {s:?} (expected YYYY-MM-DD): {e}"))
}

/// An IANA time zone (`Europe/Berlin`, `UTC`).
pub fn zone(s: &str) -> Result<TimeZone, String> {
    if s.trim().is_empty() {
        return Err("empty time zone".into());
    }
    TimeZone::get(s.trim()).map_err(|e| format!("unknown time zone {s:?}: {e}"))
}

/// An instant as written in the config: absolute (RFC 3339 with an offset or `Z`)
/// or a civil date-time (`2026-03-10T12:00`, `2026-03-10 12:00`) that is read in the
/// time zone of the schedule it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instant {
    Absolute(Timestamp),
    Civil(DateTime),
}

impl Instant {
    /// The instant, reading a civil time in `tz` (a time skipped by a DST change
    /// moves forward, a repeated one takes its first occurrence).
    pub fn resolve(&self, tz: &TimeZone) -> Result<Timestamp, String> {
        match self {
            Instant::Absolute(t) => Ok(*t),
            Instant::Civil(dt) => Ok(crate::schedule::civil_to_timestamp(tz, *dt)),
        }
    }
}

/// Parses an [`Instant`].
pub fn instant(s: &str) -> Result<Instant, String> {
    let t = s.trim();
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(Instant::Absolute(ts));
    }
    let civil = t.replacen(' ', "T", 1);
    if let Ok(dt) = civil.parse::<DateTime>() {
        return Ok(Instant::Civil(dt));
    }
    Err(format!(
        "invalid time {s:?} (expected RFC 3339 like 2026-03-10T12:00:00Z, or 2026-03-10T12:00 in the schedule's time zone)"
    ))
}

/// Parses an instant and reads a civil one in `tz` (for `--at TIME`).
pub fn instant_in(s: &str, tz: &TimeZone) -> Result<Timestamp, String> {
    instant(s)?.resolve(tz)
}

macro_rules! string_value {
    ($(#[$m:meta])* $name:ident, $ty:ty, $f:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name(pub $ty);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                ($f)(s.as_str()).map($name).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_value!(
    /// A duration field (`15m`).
    DurationValue,
    SignedDuration,
    duration
);
string_value!(
    /// A time-of-day field that may be `24:00`.
    TimeOfDayValue,
    u32,
    |s| time_of_day(s, true)
);
string_value!(
    /// A handoff field (`09:00`, `monday 09:00`).
    HandoffValue,
    Handoff,
    handoff
);
string_value!(
    /// A date field (`2026-01-05`).
    DateValue,
    Date,
    date
);
string_value!(
    /// A weekday or weekday range field.
    WeekdaysValue,
    Vec<Weekday>,
    weekdays
);
string_value!(
    /// An instant field (absolute or civil).
    InstantValue,
    Instant,
    instant
);

/// A time zone field.
#[derive(Debug, Clone)]
pub struct ZoneValue(pub TimeZone);

impl<'de> Deserialize<'de> for ZoneValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        zone(&s).map(ZoneValue).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("0"), Ok(SignedDuration::ZERO));
        assert_eq!(duration("90s"), Ok(SignedDuration::from_secs(90)));
        assert_eq!(duration("1h30m"), Ok(SignedDuration::from_mins(90)));
        assert_eq!(duration("3d"), Ok(SignedDuration::from_hours(72)));
        assert_eq!(duration("2w"), Ok(SignedDuration::from_hours(336)));
        assert_eq!(duration("250ms"), Ok(SignedDuration::from_millis(250)));
        assert!(duration("15").is_err());
        assert!(duration("5y").is_err());
        assert!(duration("-5m").is_err());
        assert!(duration("400d").is_err());
        assert_eq!(format_duration(SignedDuration::from_mins(90)), "1h30m");
        assert_eq!(format_duration(SignedDuration::from_hours(72)), "3d");
    }

    #[test]
    fn times_handoffs_weekdays() {
        assert_eq!(time_of_day("09:00", false), Ok(9 * 3600));
        assert_eq!(time_of_day("17:30:15", false), Ok(17 * 3600 + 1815));
        assert_eq!(time_of_day("24:00", true), Ok(86_400));
        assert!(time_of_day("24:00", false).is_err());
        assert!(time_of_day("9:00", false).is_err());
        assert!(time_of_day("09:60", false).is_err());
        assert_eq!(
            handoff("Monday 09:00"),
            Ok(Handoff {
                weekday: Some(Weekday::Monday),
                time: 9 * 3600
            })
        );
        assert!(handoff("someday 09:00").is_err());
        assert_eq!(weekdays("fri:mon").unwrap().len(), 4);
        assert_eq!(weekdays("monday:friday").unwrap().len(), 5);
    }

    #[test]
    fn instants() {
        let berlin = zone("Europe/Berlin").unwrap();
        assert_eq!(
            instant_in("2026-03-10T12:00", &berlin).unwrap(),
            "2026-03-10T11:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            instant_in("2026-07-10 12:00", &berlin).unwrap(),
            "2026-07-10T10:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            instant_in("2026-03-10T12:00:00+01:00", &TimeZone::UTC).unwrap(),
            "2026-03-10T11:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert!(instant("yesterday").is_err());
        assert!(zone("Mars/Olympus").is_err());
    }
}
