//! Go's time printing: `time.Time.String`, `time.Time.Format` layouts and
//! `time.Duration.String`, which templates print and users expect verbatim.

use std::fmt::Write as _;

use jiff::ZonedDateTime as Zoned;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// `time.Time.String()`: `2006-01-02 15:04:05.999999999 -0700 MST`.
pub fn time_string(t: &Zoned) -> String {
    format_layout(t, "2006-01-02 15:04:05.999999999 -0700 MST")
}

/// `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
pub fn duration_string(nanos: i64) -> String {
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if u == 0 {
        return "0s".into();
    }
    if u < 1_000_000_000 {
        let (unit_ns, unit, places) = if u < 1_000 {
            (1, "ns", 0)
        } else if u < 1_000_000 {
            (1_000, "µs", 3)
        } else {
            (1_000_000, "ms", 6)
        };
        out.push_str(&frac(u / unit_ns, u % unit_ns, places));
        out.push_str(unit);
        return out;
    }
    let secs = u / 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    out.push_str(&frac(s, u % 1_000_000_000, 9));
    out.push('s');
    out
}

/// `whole.fraction` with the fraction printed in `places` digits, trailing zeros cut.
fn frac(whole: u64, fraction: u64, places: usize) -> String {
    if fraction == 0 || places == 0 {
        return whole.to_string();
    }
    let f = format!("{fraction:0places$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// Formats `t` with a Go reference-time layout (`2006-01-02T15:04:05Z07:00`).
pub fn format_layout(t: &Zoned, layout: &str) -> String {
    let b = layout.as_bytes();
    let mut out = String::with_capacity(layout.len() + 8);
    let mut i = 0;
    let year = t.year();
    let month = t.month() as usize;
    let day = t.day();
    let hour = t.hour();
    let minute = t.minute();
    let second = t.second();
    let nanos = t.subsec_nanosecond();
    let weekday = t.weekday().to_monday_zero_offset() as usize;
    let offset = t.offset().seconds();
    let starts = |i: usize, s: &str| layout[i..].starts_with(s);
    while i < b.len() {
        let rest_digit = |j: usize| j < b.len() && b[j].is_ascii_digit();
        let c = b[i];
        let (text, len): (String, usize) = match c {
            b'J' if starts(i, "January") => (MONTHS[month - 1].into(), 7),
            b'J' if starts(i, "Jan") => (MONTHS[month - 1][..3].into(), 3),
            b'M' if starts(i, "Monday") => (DAYS[weekday].into(), 6),
            b'M' if starts(i, "Mon") => (DAYS[weekday][..3].into(), 3),
            b'M' if starts(i, "MST") => (zone_abbrev(t), 3),
            b'0' if starts(i, "002") => (format!("{:03}", t.day_of_year()), 3),
            b'0' if i + 1 < b.len() && (b'1'..=b'6').contains(&b[i + 1]) => {
                let s = match b[i + 1] {
                    b'1' => format!("{month:02}"),
                    b'2' => format!("{day:02}"),
                    b'3' => format!("{:02}", hour12(hour)),
                    b'4' => format!("{minute:02}"),
                    b'5' => format!("{second:02}"),
                    _ => format!("{:02}", year.rem_euclid(100)),
                };
                (s, 2)
            }
            b'1' if starts(i, "15") => (format!("{hour:02}"), 2),
            b'1' => (month.to_string(), 1),
            b'2' if starts(i, "2006") => (format!("{year:04}"), 4),
            b'2' => (day.to_string(), 1),
            b'_' if starts(i, "_2006") => (format!("_{year:04}"), 5),
            b'_' if starts(i, "__2") => (format!("{:>3}", t.day_of_year()), 3),
            b'_' if starts(i, "_2") => (format!("{day:>2}"), 2),
            b'3' => (hour12(hour).to_string(), 1),
            b'4' => (minute.to_string(), 1),
            b'5' => (second.to_string(), 1),
            b'P' if starts(i, "PM") => ((if hour >= 12 { "PM" } else { "AM" }).into(), 2),
            b'p' if starts(i, "pm") => ((if hour >= 12 { "pm" } else { "am" }).into(), 2),
            b'-' | b'Z' => {
                let z = c == b'Z';
                let pats = ["070000", "07:00:00", "0700", "07:00", "07"];
                match pats.iter().find(|p| starts(i + 1, p)) {
                    Some(p) if z && offset == 0 => ("Z".into(), 1 + p.len()),
                    Some(p) => (format_offset(offset, p), 1 + p.len()),
                    None => ((c as char).to_string(), 1),
                }
            }
            b'.' | b',' if i + 1 < b.len() && (b[i + 1] == b'0' || b[i + 1] == b'9') => {
                let d = b[i + 1];
                let mut j = i + 1;
                while j < b.len() && b[j] == d {
                    j += 1;
                }
                if rest_digit(j) {
                    ((c as char).to_string(), 1)
                } else {
                    let n = j - i - 1;
                    let digits = format!("{nanos:09}");
                    let digits = &digits[..n.min(9)];
                    if d == b'0' {
                        (format!("{}{digits}", c as char), j - i)
                    } else {
                        let t = digits.trim_end_matches('0');
                        if t.is_empty() {
                            (String::new(), j - i)
                        } else {
                            (format!("{}{t}", c as char), j - i)
                        }
                    }
                }
            }
            _ => {
                // Copy one UTF-8 character.
                let ch = layout[i..].chars().next().unwrap_or(' ');
                (ch.to_string(), ch.len_utf8())
            }
        };
        out.push_str(&text);
        i += len;
    }
    out
}

fn hour12(h: i8) -> i8 {
    match h % 12 {
        0 => 12,
        x => x,
    }
}

fn format_offset(secs: i32, pat: &str) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    let (h, m, s) = (a / 3600, (a / 60) % 60, a % 60);
    match pat {
        "070000" => format!("{sign}{h:02}{m:02}{s:02}"),
        "07:00:00" => format!("{sign}{h:02}:{m:02}:{s:02}"),
        "0700" => format!("{sign}{h:02}{m:02}"),
        "07:00" => format!("{sign}{h:02}:{m:02}"),
        _ => format!("{sign}{h:02}"),
    }
}

/// The zone abbreviation (`UTC`, `CET`); Go prints `-0700`-style when none is known.
fn zone_abbrev(t: &Zoned) -> String {
    let s = t
        .time_zone()
        .to_offset_info(t.timestamp())
        .abbreviation()
        .to_string();
    if s.is_empty() || s.starts_with('+') || s.starts_with('-') {
        let o = t.offset().seconds();
        if o == 0 {
            return "UTC".into();
        }
        return format_offset(o, "0700");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Zoned {
        s.parse().unwrap()
    }

    #[test]
    fn time_string_as_go() {
        let z = t("2015-06-23T13:19:44.128+00:00[UTC]");
        assert_eq!(time_string(&z), "2015-06-23 13:19:44.128 +0000 UTC");
        let z = t("2024-01-05T08:03:09+01:00[Europe/Berlin]");
        assert_eq!(time_string(&z), "2024-01-05 08:03:09 +0100 CET");
    }

    #[test]
    fn layouts() {
        let z = t("2024-03-05T14:07:09.5+00:00[UTC]");
        assert_eq!(
            format_layout(&z, "2006-01-02T15:04:05Z07:00"),
            "2024-03-05T14:07:09Z"
        );
        assert_eq!(
            format_layout(&z, "Mon Jan _2 3:04PM 2006"),
            "Tue Mar  5 2:07PM 2024"
        );
        assert_eq!(format_layout(&z, "15:04:05.000"), "14:07:09.500");
        assert_eq!(format_layout(&z, "January 2, 06"), "March 5, 24");
    }

    #[test]
    fn durations() {
        for (n, want) in [
            (0, "0s"),
            (1_500_000, "1.5ms"),
            (1_000, "1µs"),
            (12, "12ns"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (-2_500_000_000, "-2.5s"),
        ] {
            assert_eq!(duration_string(n), want);
        }
    }
}
