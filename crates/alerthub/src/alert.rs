//! Alerts as the hub sees them (Alertmanager's model), and their fingerprints.

use day2_model::Labels;
use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// FNV-1a 64 over the label set sorted by name, each name and value followed
/// by the byte 0xff: the same function as Prometheus's and Alertmanager's
/// label-set fingerprint, so fingerprints agree with `amtool` and the API v2.
pub fn fingerprint(labels: &Labels) -> u64 {
    const OFFSET: u64 = 0xcbf29ce484222325;
    const PRIME: u64 = 0x100000001b3;
    let mut h = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= *b as u64;
            h = h.wrapping_mul(PRIME);
        }
    };
    // `Labels` is sorted by name and has no duplicates.
    for l in labels.iter() {
        feed(l.name.as_bytes());
        feed(&[0xff]);
        feed(l.value.as_bytes());
        feed(&[0xff]);
    }
    h
}

/// An alert fingerprint; prints as 16 hex digits like Alertmanager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u64);

impl Fingerprint {
    pub fn of(labels: &Labels) -> Self {
        Fingerprint(fingerprint(labels))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for Fingerprint {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(Fingerprint)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

impl fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert. `ends_at` is `None` when the sender did not say when it ends;
/// `normalize` then fills it from `resolve_timeout` and sets `timeout`.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Timestamp,
    pub ends_at: Option<Timestamp>,
    pub generator_url: String,
    pub updated_at: Timestamp,
    /// True when `ends_at` was set by the hub (resolve_timeout), not the sender.
    pub timeout: bool,
}

impl Alert {
    /// A firing alert that started at `now`, without end.
    pub fn new(labels: Labels, now: Timestamp) -> Self {
        Alert {
            labels,
            annotations: BTreeMap::new(),
            starts_at: now,
            ends_at: None,
            generator_url: String::new(),
            updated_at: now,
            timeout: false,
        }
    }

    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.labels)
    }

    pub fn name(&self) -> Option<&str> {
        self.labels.get("alertname")
    }

    /// Resolved once `ends_at` is set and not after `now` (Alertmanager's rule).
    pub fn is_resolved_at(&self, now: Timestamp) -> bool {
        self.ends_at.is_some_and(|e| e <= now)
    }

    pub fn status(&self, now: Timestamp) -> AlertStatus {
        if self.is_resolved_at(now) {
            AlertStatus::Resolved
        } else {
            AlertStatus::Firing
        }
    }

    /// Applies Alertmanager's ingestion rules at receive time: a missing
    /// start becomes `now` (callers pass `starts_at = now` for that), a missing
    /// end becomes `now + resolve_timeout` with `timeout` set, and `updated_at`
    /// becomes `now`.
    pub fn normalize(&mut self, now: Timestamp, resolve_timeout: Duration) {
        if self.ends_at.is_none() {
            let d = SignedDuration::try_from(resolve_timeout).unwrap_or(SignedDuration::MAX);
            self.ends_at = Some(now.saturating_add(d).unwrap_or(Timestamp::MAX));
            self.timeout = true;
        }
        self.updated_at = now;
    }

    /// Checks what Alertmanager's API refuses: no labels, bad label names,
    /// empty values, an end before the start.
    pub fn validate(&self) -> Result<(), String> {
        if self.labels.is_empty() {
            return Err("at least one label pair required".into());
        }
        for l in self.labels.iter() {
            if l.name.is_empty() {
                return Err("empty label name".into());
            }
            if l.value.is_empty() {
                return Err(format!("empty value for label {:?}", l.name));
            }
        }
        if let Some(end) = self.ends_at
            && end < self.starts_at
        {
            return Err("end time must not be before start time".into());
        }
        Ok(())
    }

    /// Merges two reports of the same alert, as Alertmanager does when an
    /// alert is received again:
    /// - the more recently updated report wins (labels, annotations, URL);
    /// - the earliest start wins;
    /// - if the newer report is resolved at `now`, an older report's later
    ///   end wins only if that one is resolved too;
    /// - otherwise an older report's later end wins unless it was set by
    ///   timeout (resolve_timeout), so a sender's explicit end is kept.
    pub fn merge(&self, other: &Alert, now: Timestamp) -> Alert {
        let (older, newer) = if other.updated_at < self.updated_at {
            (other, self)
        } else {
            (self, other)
        };
        let mut res = newer.clone();
        if older.starts_at < newer.starts_at {
            res.starts_at = older.starts_at;
        }
        // `None` is the zero time: never after anything.
        let later = |a: Option<Timestamp>, b: Option<Timestamp>| match (a, b) {
            (Some(a), Some(b)) => a > b,
            (Some(_), None) => true,
            _ => false,
        };
        if newer.is_resolved_at(now) {
            if older.is_resolved_at(now) && later(older.ends_at, newer.ends_at) {
                res.ends_at = older.ends_at;
            }
        } else if later(older.ends_at, newer.ends_at) && !older.timeout {
            res.ends_at = older.ends_at;
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn fingerprint_matches_prometheus_label_signature() {
        // The FNV-1a offset basis for an empty set, as in Prometheus.
        assert_eq!(fingerprint(&Labels::empty()), 0xcbf29ce484222325);
        let a = Labels::from_pairs([("alertname", "x"), ("job", "y")]);
        let b = Labels::from_pairs([("job", "y"), ("alertname", "x")]);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        // name/value boundaries are part of the hash
        let c = Labels::from_pairs([("a", "bc")]);
        let d = Labels::from_pairs([("ab", "c")]);
        assert_ne!(fingerprint(&c), fingerprint(&d));
        let fp = Fingerprint::of(&a);
        assert_eq!(fp.to_string().len(), 16);
        assert_eq!(fp.to_string().parse::<Fingerprint>().unwrap(), fp);
    }

    #[test]
    fn fingerprints_agree_with_alertmanager() {
        // recorded from Alertmanager 0.25's GET /api/v2/alerts for the same labels
        for (pairs, want) in [
            (
                &[("alertname", "Test"), ("job", "api")][..],
                "1f2321ed1a9284f5",
            ),
            (&[("alertname", "Empty")][..], "84b8408c04466701"),
            (&[("a", "bc")][..], "a0a3542c19b900ab"),
        ] {
            let l = Labels::from_pairs(pairs.iter().copied());
            assert_eq!(Fingerprint::of(&l).to_string(), want, "{pairs:?}");
        }
    }

    #[test]
    fn status_follows_ends_at() {
        let now = ts("2026-01-01T00:00:00Z");
        let mut a = Alert::new(Labels::from_pairs([("alertname", "x")]), now);
        assert_eq!(a.status(now), AlertStatus::Firing);
        a.ends_at = Some(ts("2026-01-01T00:05:00Z"));
        assert_eq!(a.status(now), AlertStatus::Firing);
        assert_eq!(a.status(ts("2026-01-01T00:05:00Z")), AlertStatus::Resolved);
        assert_eq!(a.status(ts("2026-01-01T00:06:00Z")), AlertStatus::Resolved);
    }

    #[test]
    fn normalize_sets_end_from_resolve_timeout() {
        let now = ts("2026-01-01T00:00:00Z");
        let mut a = Alert::new(Labels::from_pairs([("alertname", "x")]), now);
        a.normalize(now, Duration::from_secs(300));
        assert_eq!(a.ends_at, Some(ts("2026-01-01T00:05:00Z")));
        assert!(a.timeout);
        let mut b = a.clone();
        b.ends_at = Some(ts("2026-01-01T00:01:00Z"));
        b.timeout = false;
        b.normalize(now, Duration::from_secs(300));
        assert_eq!(b.ends_at, Some(ts("2026-01-01T00:01:00Z")));
        assert!(!b.timeout);
    }

    #[test]
    fn validate_refuses_bad_alerts() {
        let now = ts("2026-01-01T00:00:00Z");
        assert!(Alert::new(Labels::empty(), now).validate().is_err());
        let mut a = Alert::new(Labels::from_pairs([("alertname", "x")]), now);
        assert!(a.validate().is_ok());
        a.ends_at = Some(ts("2025-12-31T00:00:00Z"));
        assert!(a.validate().is_err());
    }

    #[test]
    fn merge_keeps_earliest_start_and_latest_explicit_end() {
        let l = Labels::from_pairs([("alertname", "x")]);
        let mut a = Alert::new(l.clone(), ts("2026-01-01T00:00:00Z"));
        a.ends_at = Some(ts("2026-01-01T00:10:00Z"));
        let mut b = Alert::new(l, ts("2026-01-01T00:02:00Z"));
        b.updated_at = ts("2026-01-01T00:03:00Z");
        b.ends_at = Some(ts("2026-01-01T00:04:00Z"));
        b.annotations.insert("summary".into(), "new".into());
        // both firing: the older report's later explicit end is kept
        let m = a.merge(&b, ts("2026-01-01T00:03:00Z"));
        assert_eq!(m.starts_at, ts("2026-01-01T00:00:00Z"));
        assert_eq!(m.ends_at, Some(ts("2026-01-01T00:10:00Z")));
        assert_eq!(
            m.annotations.get("summary").map(String::as_str),
            Some("new")
        );
        // argument order does not matter
        assert_eq!(b.merge(&a, ts("2026-01-01T00:03:00Z")), m);
        // the newer report resolved, the older not: the newer end wins
        let m = a.merge(&b, ts("2026-01-01T00:05:00Z"));
        assert_eq!(m.ends_at, Some(ts("2026-01-01T00:04:00Z")));
        assert_eq!(m.status(ts("2026-01-01T00:05:00Z")), AlertStatus::Resolved);
    }

    #[test]
    fn merge_timeout_end_does_not_win_over_newer_end() {
        let l = Labels::from_pairs([("alertname", "x")]);
        // older report without end: ends by timeout at 00:05
        let mut a = Alert::new(l.clone(), ts("2026-01-01T00:00:00Z"));
        a.normalize(ts("2026-01-01T00:00:00Z"), Duration::from_secs(300));
        // newer report with an explicit, earlier end
        let mut b = Alert::new(l, ts("2026-01-01T00:00:00Z"));
        b.updated_at = ts("2026-01-01T00:01:00Z");
        b.ends_at = Some(ts("2026-01-01T00:02:00Z"));
        let m = a.merge(&b, ts("2026-01-01T00:01:00Z"));
        assert_eq!(m.ends_at, Some(ts("2026-01-01T00:02:00Z")));
        assert!(!m.timeout);
    }
}
