//! "Who is on call at TIME": the answer behind `day2 oncall who --at TIME
//! [--schedule NAME]` and the API. Per schedule: the user, since when and until when
//! that user is continuously on call (across handoffs between layers and overrides),
//! looked up to [`HORIZON`] either side of the instant.

use crate::config::OnCall;
use crate::schedule::{LayerRef, Schedule};
use crate::{Error, UserId};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// How far from the instant `since` and `until` are looked for.
pub const HORIZON: SignedDuration = SignedDuration::from_hours(90 * 24);

/// One schedule's answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OnCallAt {
    pub schedule: String,
    pub at: Timestamp,
    /// Nobody when no layer or override covers the instant.
    pub user: Option<UserId>,
    /// What put the user on call at the instant.
    pub layer: Option<LayerRef>,
    /// Since when the answer (the user, or nobody) holds; `None` if since before the horizon.
    pub since: Option<Timestamp>,
    /// Until when it holds; `None` if beyond the horizon.
    pub until: Option<Timestamp>,
}

impl std::fmt::Display for OnCallAt {
    /// `primary: alice (since 2026-01-05T08:00:00Z, until 2026-01-12T08:00:00Z)`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.schedule)?;
        match &self.user {
            Some(u) => write!(f, "{u}")?,
            None => write!(f, "nobody")?,
        }
        let since = self.since.map(|t| t.to_string());
        let until = self.until.map(|t| t.to_string());
        write!(
            f,
            " (since {}, until {})",
            since.as_deref().unwrap_or("more than 90 days"),
            until.as_deref().unwrap_or("more than 90 days")
        )
    }
}

/// The answer for one schedule.
pub fn on_call_at(schedule: &Schedule, at: Timestamp) -> OnCallAt {
    let now = schedule.on_call_at(at);
    let user = now.map(|(u, _)| u.clone());
    let before = at.saturating_sub(HORIZON).unwrap_or(Timestamp::MIN);
    let after = at.saturating_add(HORIZON).unwrap_or(Timestamp::MAX);
    // the final schedule, merged across layers: a change of user is a boundary
    let holds = |from: Timestamp, to: Timestamp| {
        let mut runs: Vec<(Option<UserId>, Timestamp, Timestamp)> = Vec::new();
        let mut cursor = from;
        for s in schedule.shifts(from, to) {
            if s.start > cursor {
                runs.push((None, cursor, s.start));
            }
            runs.push((Some(s.user), s.start, s.end));
            cursor = s.end;
        }
        if cursor < to {
            runs.push((None, cursor, to));
        }
        // merge neighbours with the same user
        let mut merged: Vec<(Option<UserId>, Timestamp, Timestamp)> = Vec::new();
        for r in runs {
            match merged.last_mut() {
                Some(last) if last.0 == r.0 => last.2 = r.2,
                _ => merged.push(r),
            }
        }
        merged
    };
    let ahead = holds(at, after);
    let until = ahead.first().map(|r| r.2).filter(|end| *end < after);
    let behind = holds(before, at);
    let since = match behind.last() {
        Some(r) if r.0 == user => Some(r.1).filter(|s| *s > before),
        _ => Some(at),
    };
    OnCallAt {
        schedule: schedule.name.clone(),
        at,
        user,
        layer: now.map(|(_, l)| l),
        since,
        until,
    }
}

/// Per schedule (all, in config order, or only `schedule`), who is on call at `at`.
pub fn who(oncall: &OnCall, at: Timestamp, schedule: Option<&str>) -> Result<Vec<OnCallAt>, Error> {
    match schedule {
        Some(name) => {
            let s = oncall
                .schedule(name)
                .ok_or_else(|| Error::UnknownSchedule(name.to_string()))?;
            Ok(vec![on_call_at(s, at)])
        }
        None => Ok(oncall.schedules.iter().map(|s| on_call_at(s, at)).collect()),
    }
}

/// Reads `--at TIME`: RFC 3339 (`2026-03-29T09:00:00+02:00`, `...Z`) or a civil
/// date-time (`2026-03-29T09:00`, `2026-03-29 09:00`) in `tz` (the CLI passes the
/// schedule's zone when one schedule is named, else the host's).
pub fn parse_at(text: &str, tz: &TimeZone) -> Result<Timestamp, Error> {
    crate::parse::instant_in(text, tz).map_err(|m| Error::BadTime(text.to_string(), m))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "
oncall:
  users: [{id: a}, {id: b}, {id: c}]
  schedules:
    - name: week
      time_zone: Europe/Berlin
      layers:
        - { users: [a, b], rotation: weekly, handoff: \"monday 09:00\", start: 2026-01-05 }
        - users: [c]
          rotation: daily
          start: 2026-01-05
          restrictions: [{ days: [sat, sun] }]
      overrides:
        - { user: b, start: \"2026-01-07T12:00\", end: \"2026-01-07T13:00\" }
    - name: empty-until-feb
      time_zone: UTC
      layers:
        - { users: [a], rotation: daily, start: 2026-02-01 }
";

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn answers_per_schedule() {
        let oc = OnCall::parse_document(CONFIG, "t.yml").unwrap();
        let at = ts("2026-01-06T10:00:00Z");
        let got = who(&oc, at, None).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].user, Some(UserId::from("a")));
        assert_eq!(got[0].layer, Some(LayerRef::Layer(0)));
        assert_eq!(got[0].since, Some(ts("2026-01-05T08:00:00Z")));
        // the override on Wednesday interrupts a's week
        assert_eq!(got[0].until, Some(ts("2026-01-07T11:00:00Z")));
        assert_eq!(
            got[0].to_string(),
            "week: a (since 2026-01-05T08:00:00Z, until 2026-01-07T11:00:00Z)"
        );
        assert_eq!(got[1].user, None);
        assert_eq!(got[1].until, Some(ts("2026-02-01T00:00:00Z")));
        assert_eq!(got[1].since, None, "nobody since before the horizon");

        // Friday afternoon: a until the weekend layer takes over at Saturday 00:00 local
        let got = who(&oc, ts("2026-01-09T15:00:00Z"), Some("week")).unwrap();
        assert_eq!(got[0].since, Some(ts("2026-01-07T12:00:00Z")));
        assert_eq!(got[0].until, Some(ts("2026-01-09T23:00:00Z")));
        // Saturday: c until Monday 00:00 local (a daily layer, merged across its handoffs)
        let got = who(&oc, ts("2026-01-10T15:00:00Z"), Some("week")).unwrap();
        assert_eq!(got[0].user, Some(UserId::from("c")));
        assert_eq!(got[0].until, Some(ts("2026-01-11T23:00:00Z")));
        assert_eq!(
            who(&oc, at, Some("nope")),
            Err(Error::UnknownSchedule("nope".into()))
        );
    }

    #[test]
    fn parses_at() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(
            parse_at("2026-03-29 09:00", &berlin).unwrap(),
            ts("2026-03-29T07:00:00Z")
        );
        assert!(matches!(
            parse_at("tomorrow", &berlin),
            Err(Error::BadTime(..))
        ));
    }
}
