//! Silences (Alertmanager's) and maintenance windows (day2's extension).
//!
//! A silence mutes alerts whose labels match all its matchers while it is
//! active: pending before `starts_at`, active from `starts_at` (inclusive) to
//! `ends_at` (exclusive), expired from `ends_at` on.
//!
//! A **maintenance window** is a recurring, matcher-scoped silence: it mutes
//! the alerts its matchers select whenever the current time is inside one of
//! its named `time_intervals` (the same `time_intervals` definitions routes
//! use, so "weekly database maintenance, Sundays 02:00-04:00 Europe/Berlin" is
//! written once and used by both). Optional `starts_at`/`ends_at` bound the
//! whole schedule (e.g. "every Sunday during Q1"). Unlike `mute_time_intervals`
//! on a route, a window is not tied to one route: it mutes the matching alerts
//! on every route and shows up as the reason in the API, like a silence.
//! Alerts still firing when a window closes are notified at the next
//! group_interval, as after a silence expires (dispatcher's job).
//!
//! ```yaml
//! maintenance_windows:
//!   - name: db-weekly
//!     matchers: ['service="db"', 'env=~"prod|staging"']
//!     time_intervals: [sunday-night]
//!     comment: "weekly vacuum"
//!     created_by: ops
//!     starts_at: 2026-01-01T00:00:00Z   # optional
//!     ends_at: 2026-04-01T00:00:00Z     # optional
//! ```

use crate::matchers::Matchers;
use crate::timeinterval::TimeIntervals;
use day2_model::Labels;
use jiff::Timestamp;
use serde::Deserialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

impl fmt::Display for SilenceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    pub id: String,
    pub matchers: Matchers,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub updated_at: Timestamp,
    pub created_by: String,
    pub comment: String,
}

impl Silence {
    pub fn state(&self, now: Timestamp) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now < self.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    /// Does this silence mute an alert with `labels` at `now` (active, and
    /// every matcher matches)?
    pub fn matches(&self, labels: &Labels, now: Timestamp) -> bool {
        self.state(now) == SilenceState::Active && self.matchers.matches(labels)
    }

    /// Do the matchers select `labels`, whatever the state (for previews
    /// such as "which alerts would this silence affect")?
    pub fn selects(&self, labels: &Labels) -> bool {
        self.matchers.matches(labels)
    }

    /// Alertmanager's rules for a new or updated silence.
    pub fn validate(&self) -> Result<(), String> {
        validate_matchers(&self.matchers)?;
        if self.ends_at < self.starts_at {
            return Err("end time must not be before start time".into());
        }
        Ok(())
    }
}

fn validate_matchers(ms: &Matchers) -> Result<(), String> {
    if ms.is_empty() {
        return Err("at least one matcher required".into());
    }
    if ms.iter().all(|m| m.matches_empty()) {
        return Err("at least one matcher must not match the empty string".into());
    }
    for m in ms.iter() {
        if m.name.is_empty() {
            return Err("empty label name in matcher".into());
        }
    }
    Ok(())
}

/// A recurring, matcher-scoped silence; see the module documentation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    pub name: String,
    pub matchers: Matchers,
    /// Names from the config's `time_intervals`; the window is open while
    /// `now` is inside any of them.
    pub time_intervals: Vec<String>,
    #[serde(default)]
    pub starts_at: Option<Timestamp>,
    #[serde(default)]
    pub ends_at: Option<Timestamp>,
    #[serde(default)]
    pub comment: String,
    #[serde(default)]
    pub created_by: String,
}

impl MaintenanceWindow {
    /// Checks matchers, bounds and that every interval name is defined.
    pub fn validate(&self, intervals: &TimeIntervals) -> Result<(), (String, String)> {
        if self.name.is_empty() {
            return Err(("name".into(), "missing name in maintenance window".into()));
        }
        validate_matchers(&self.matchers).map_err(|m| ("matchers".to_string(), m))?;
        if self.time_intervals.is_empty() {
            return Err((
                "time_intervals".into(),
                "a maintenance window needs at least one time interval".into(),
            ));
        }
        for (i, n) in self.time_intervals.iter().enumerate() {
            if intervals.get(n).is_none() {
                return Err((
                    format!("time_intervals[{i}]"),
                    format!("undefined time interval {n:?} used in maintenance window"),
                ));
            }
        }
        if let (Some(s), Some(e)) = (self.starts_at, self.ends_at)
            && e <= s
        {
            return Err(("ends_at".into(), "ends_at must be after starts_at".into()));
        }
        Ok(())
    }

    /// Pending before `starts_at`, expired from `ends_at`, otherwise active
    /// (the schedule applies; whether it is open is [`Self::is_open`]).
    pub fn state(&self, now: Timestamp) -> SilenceState {
        if self.starts_at.is_some_and(|s| now < s) {
            SilenceState::Pending
        } else if self.ends_at.is_some_and(|e| now >= e) {
            SilenceState::Expired
        } else {
            SilenceState::Active
        }
    }

    /// True while the schedule applies and `now` is inside one of the intervals.
    pub fn is_open(&self, intervals: &TimeIntervals, now: Timestamp) -> bool {
        self.state(now) == SilenceState::Active
            && intervals
                .first_containing(&self.time_intervals, now)
                .is_some()
    }

    /// Does this window mute an alert with `labels` at `now`?
    pub fn matches(&self, labels: &Labels, intervals: &TimeIntervals, now: Timestamp) -> bool {
        self.matchers.matches(labels) && self.is_open(intervals, now)
    }
}

/// Ids of the silences that mute `labels` at `now` (Alertmanager's
/// `silencedBy`), in the given order.
pub fn silenced_by<'a>(
    labels: &Labels,
    now: Timestamp,
    silences: impl IntoIterator<Item = &'a Silence>,
) -> Vec<&'a str> {
    silences
        .into_iter()
        .filter(|s| s.matches(labels, now))
        .map(|s| s.id.as_str())
        .collect()
}

/// Names of the maintenance windows that mute `labels` at `now`.
pub fn in_maintenance<'a>(
    labels: &Labels,
    now: Timestamp,
    windows: impl IntoIterator<Item = &'a MaintenanceWindow>,
    intervals: &TimeIntervals,
) -> Vec<&'a str> {
    windows
        .into_iter()
        .filter(|w| w.matches(labels, intervals, now))
        .map(|w| w.name.as_str())
        .collect()
}

/// Validates a `maintenance_windows:` list against the config's intervals;
/// errors carry the path `maintenance_windows[i].field`. Names must be unique.
pub fn validate_maintenance_windows(
    windows: &[MaintenanceWindow],
    intervals: &TimeIntervals,
) -> Result<(), (String, String)> {
    let mut names = std::collections::HashSet::new();
    for (i, w) in windows.iter().enumerate() {
        let at = |f: String| {
            if f.is_empty() {
                format!("maintenance_windows[{i}]")
            } else {
                format!("maintenance_windows[{i}].{f}")
            }
        };
        w.validate(intervals).map_err(|(f, m)| (at(f), m))?;
        if !names.insert(w.name.as_str()) {
            return Err((
                at("name".into()),
                format!("maintenance window name {:?} is not unique", w.name),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeinterval::TimeInterval;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn silence(m: &str) -> Silence {
        Silence {
            id: "s1".into(),
            matchers: Matchers::parse(m).unwrap(),
            starts_at: ts("2026-01-01T10:00:00Z"),
            ends_at: ts("2026-01-01T12:00:00Z"),
            updated_at: ts("2026-01-01T09:00:00Z"),
            created_by: "me".into(),
            comment: "deploy".into(),
        }
    }

    #[test]
    fn state_follows_the_clock() {
        let s = silence("{job=\"api\"}");
        assert_eq!(s.state(ts("2026-01-01T09:59:59Z")), SilenceState::Pending);
        assert_eq!(s.state(ts("2026-01-01T10:00:00Z")), SilenceState::Active);
        assert_eq!(s.state(ts("2026-01-01T11:59:59Z")), SilenceState::Active);
        assert_eq!(s.state(ts("2026-01-01T12:00:00Z")), SilenceState::Expired);
    }

    #[test]
    fn mutes_only_matching_labels_while_active() {
        let s = silence("{job=\"api\", env=~\"prod|staging\"}");
        let hit = Labels::from_pairs([("job", "api"), ("env", "prod"), ("x", "y")]);
        let miss = Labels::from_pairs([("job", "api"), ("env", "dev")]);
        let during = ts("2026-01-01T11:00:00Z");
        assert!(s.matches(&hit, during));
        assert!(!s.matches(&miss, during));
        assert!(!s.matches(&hit, ts("2026-01-01T13:00:00Z")));
        assert!(!s.matches(&hit, ts("2026-01-01T09:00:00Z")), "pending");
        assert!(s.selects(&hit));
        assert!(!s.selects(&miss));
    }

    #[test]
    fn validation() {
        assert!(silence("{job=\"api\"}").validate().is_ok());
        assert!(
            silence("{job=~\".*\"}").validate().is_err(),
            "matches everything"
        );
        assert!(silence("{}").validate().is_err(), "no matchers");
        let mut s = silence("{job=\"api\"}");
        s.ends_at = ts("2026-01-01T09:00:00Z");
        assert!(s.validate().is_err());
    }

    fn intervals() -> TimeIntervals {
        let ti: TimeInterval = serde_yaml_ng::from_str(
            "name: sunday-night\ntime_intervals:\n  - weekdays: [sunday]\n    times: [{start_time: '02:00', end_time: '04:00'}]\n    location: Europe/Berlin\n",
        )
        .unwrap();
        let mut all = TimeIntervals::default();
        all.0.insert(ti.name.clone(), ti);
        all
    }

    fn window() -> MaintenanceWindow {
        serde_yaml_ng::from_str(
            "name: db-weekly\nmatchers: ['service=\"db\"']\ntime_intervals: [sunday-night]\nstarts_at: 2026-01-01T00:00:00Z\nends_at: 2026-04-01T00:00:00Z\n",
        )
        .unwrap()
    }

    #[test]
    fn maintenance_window_recurs_in_its_zone() {
        let w = window();
        let all = intervals();
        assert!(w.validate(&all).is_ok());
        let db = Labels::from_pairs([("service", "db")]);
        let web = Labels::from_pairs([("service", "web")]);
        // Sunday 2026-01-04 02:30 CET = 01:30 UTC
        let open = ts("2026-01-04T01:30:00Z");
        assert!(w.matches(&db, &all, open));
        assert!(!w.matches(&web, &all, open));
        // 04:00 CET is outside (end exclusive)
        assert!(!w.matches(&db, &all, ts("2026-01-04T03:00:00Z")));
        // the next Sunday again
        assert!(w.matches(&db, &all, ts("2026-01-11T01:30:00Z")));
        // Monday: closed
        assert!(!w.matches(&db, &all, ts("2026-01-05T01:30:00Z")));
        // after ends_at the schedule no longer applies (Sunday 2026-04-05)
        assert_eq!(w.state(ts("2026-04-05T00:30:00Z")), SilenceState::Expired);
        assert!(!w.matches(&db, &all, ts("2026-04-05T00:30:00Z")));
        // before starts_at (Sunday 2025-12-28)
        assert_eq!(w.state(ts("2025-12-28T01:30:00Z")), SilenceState::Pending);
        assert!(!w.matches(&db, &all, ts("2025-12-28T01:30:00Z")));
    }

    #[test]
    fn reasons_for_muting() {
        let all = intervals();
        let db = Labels::from_pairs([("service", "db"), ("job", "api")]);
        let mut s2 = silence("{service=\"db\"}");
        s2.id = "s2".into();
        let silences = [silence("{job=\"api\"}"), s2, silence("{job=\"other\"}")];
        assert_eq!(
            silenced_by(&db, ts("2026-01-01T11:00:00Z"), &silences),
            ["s1", "s2"]
        );
        assert!(silenced_by(&db, ts("2026-01-01T13:00:00Z"), &silences).is_empty());
        let windows = [window()];
        assert_eq!(
            in_maintenance(&db, ts("2026-01-04T01:30:00Z"), &windows, &all),
            ["db-weekly"]
        );
        assert!(in_maintenance(&db, ts("2026-01-05T01:30:00Z"), &windows, &all).is_empty());
    }

    #[test]
    fn window_list_validation_names_the_entry() {
        let all = intervals();
        assert!(validate_maintenance_windows(&[window()], &all).is_ok());
        let (path, msg) = validate_maintenance_windows(&[window(), window()], &all).unwrap_err();
        assert_eq!(path, "maintenance_windows[1].name");
        assert!(msg.contains("not unique"));
        let mut bad = window();
        bad.time_intervals = vec!["x".into()];
        let (path, _) = validate_maintenance_windows(&[window(), bad], &all).unwrap_err();
        assert_eq!(path, "maintenance_windows[1].time_intervals[0]");
    }

    #[test]
    fn maintenance_window_validation() {
        let all = intervals();
        let mut w = window();
        w.time_intervals = vec!["nope".into()];
        assert!(
            w.validate(&all)
                .unwrap_err()
                .1
                .contains("undefined time interval")
        );
        let mut w = window();
        w.matchers = Matchers::parse("{x=~\".*\"}").unwrap();
        assert!(w.validate(&all).is_err());
        let mut w = window();
        w.ends_at = w.starts_at;
        assert!(w.validate(&all).is_err());
        assert!(
            serde_yaml_ng::from_str::<MaintenanceWindow>(
                "name: x\nmatchers: []\ntime_intervals: []\nbogus: 1\n"
            )
            .is_err()
        );
    }
}
