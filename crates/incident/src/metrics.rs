//! Response-time metrics: time to acknowledge / resolve per incident, and their means over a
//! set of incidents (MTTA, MTTR; MTTR is DORA's "time to restore service" when the set is the
//! incidents caused by changes).

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::model::Incident;

/// `created_at` -> `acknowledged_at`; `None` until acknowledged.
pub fn time_to_acknowledge(inc: &Incident) -> Option<SignedDuration> {
    inc.acknowledged_at
        .map(|a| a.duration_since(inc.created_at))
}

/// `created_at` -> `resolved_at`; `None` until resolved.
pub fn time_to_resolve(inc: &Incident) -> Option<SignedDuration> {
    inc.resolved_at.map(|r| r.duration_since(inc.created_at))
}

/// Means over a set of incidents. Incidents without the timestamp are left out of that mean
/// (and counted in `acknowledged` / `resolved`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResponseStats {
    pub incidents: usize,
    pub acknowledged: usize,
    pub resolved: usize,
    pub mtta: Option<SignedDuration>,
    pub mttr: Option<SignedDuration>,
}

/// MTTA and MTTR over `incidents`, optionally only those created in `[from, to)`.
pub fn response_stats<'a>(
    incidents: impl IntoIterator<Item = &'a Incident>,
    window: Option<(Timestamp, Timestamp)>,
) -> ResponseStats {
    let mut n = 0;
    let (mut acks, mut res) = (Vec::new(), Vec::new());
    for inc in incidents {
        if let Some((from, to)) = window
            && !(from <= inc.created_at && inc.created_at < to)
        {
            continue;
        }
        n += 1;
        acks.extend(time_to_acknowledge(inc));
        res.extend(time_to_resolve(inc));
    }
    ResponseStats {
        incidents: n,
        acknowledged: acks.len(),
        resolved: res.len(),
        mtta: mean(&acks),
        mttr: mean(&res),
    }
}

/// Mean time to acknowledge.
pub fn mtta<'a>(incidents: impl IntoIterator<Item = &'a Incident>) -> Option<SignedDuration> {
    response_stats(incidents, None).mtta
}

/// Mean time to resolve (restore).
pub fn mttr<'a>(incidents: impl IntoIterator<Item = &'a Incident>) -> Option<SignedDuration> {
    response_stats(incidents, None).mttr
}

/// Mean, rounded down to the millisecond. `None` for an empty slice.
fn mean(ds: &[SignedDuration]) -> Option<SignedDuration> {
    if ds.is_empty() {
        return None;
    }
    let total: i128 = ds.iter().map(|d| d.as_millis()).sum();
    let avg = total / ds.len() as i128;
    Some(SignedDuration::from_millis(
        i64::try_from(avg).unwrap_or(i64::MAX),
    ))
}

/// A human-readable duration: the two largest non-zero units of d/h/m/s, e.g. `4m 30s`,
/// `1h 5m`, `2d 3h`, `45s`; below a second `0s` (or `350ms`). Negative: `-` prefix.
pub fn human_duration(d: SignedDuration) -> String {
    let neg = d.is_negative();
    let d = d.abs();
    let secs = d.as_secs();
    if secs == 0 {
        let ms = d.subsec_millis();
        let s = if ms == 0 {
            "0s".to_string()
        } else {
            format!("{ms}ms")
        };
        return if neg && ms != 0 { format!("-{s}") } else { s };
    }
    let units = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3600, "h"),
        (secs % 3600 / 60, "m"),
        (secs % 60, "s"),
    ];
    let first = units.iter().position(|(v, _)| *v > 0).unwrap_or(3);
    let mut parts = vec![format!("{}{}", units[first].0, units[first].1)];
    if let Some((v, u)) = units.get(first + 1)
        && *v > 0
    {
        parts.push(format!("{v}{u}"));
    }
    let s = parts.join(" ");
    if neg { format!("-{s}") } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Actor, Severity};

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn inc(created: &str, ack: Option<&str>, res: Option<&str>) -> Incident {
        let mut i = Incident::open("i", "x", Severity::Sev3, t(created), Actor::user("a"));
        if let Some(a) = ack {
            i.acknowledge(t(a), Actor::user("a")).unwrap();
        }
        if let Some(r) = res {
            i.resolve(t(r), Actor::system("alerthub")).unwrap();
        }
        i
    }

    #[test]
    fn per_incident() {
        let i = inc(
            "2026-01-01T10:00:00Z",
            Some("2026-01-01T10:04:30Z"),
            Some("2026-01-01T11:05:00Z"),
        );
        assert_eq!(
            time_to_acknowledge(&i),
            Some(SignedDuration::from_secs(270))
        );
        assert_eq!(time_to_resolve(&i), Some(SignedDuration::from_secs(3900)));
        let open = inc("2026-01-01T10:00:00Z", None, None);
        assert_eq!(time_to_acknowledge(&open), None);
        assert_eq!(time_to_resolve(&open), None);
    }

    #[test]
    fn means_skip_missing_and_respect_window() {
        let xs = [
            inc(
                "2026-01-01T10:00:00Z",
                Some("2026-01-01T10:02:00Z"),
                Some("2026-01-01T11:00:00Z"),
            ),
            inc(
                "2026-01-02T10:00:00Z",
                Some("2026-01-02T10:04:00Z"),
                Some("2026-01-02T10:30:00Z"),
            ),
            inc("2026-01-03T10:00:00Z", None, None),
        ];
        let s = response_stats(&xs, None);
        assert_eq!(s.incidents, 3);
        assert_eq!(s.acknowledged, 2);
        assert_eq!(s.resolved, 2);
        assert_eq!(s.mtta, Some(SignedDuration::from_secs(180)));
        assert_eq!(s.mttr, Some(SignedDuration::from_secs(45 * 60)));
        assert_eq!(mtta(&xs), s.mtta);
        assert_eq!(mttr(&xs), s.mttr);
        let w = response_stats(
            &xs,
            Some((t("2026-01-02T00:00:00Z"), t("2026-01-03T00:00:00Z"))),
        );
        assert_eq!(w.incidents, 1);
        assert_eq!(w.mttr, Some(SignedDuration::from_secs(30 * 60)));
        assert_eq!(mtta(&[]), None);
    }

    #[test]
    fn human_durations() {
        let h = |s: i64| human_duration(SignedDuration::from_secs(s));
        assert_eq!(h(0), "0s");
        assert_eq!(h(45), "45s");
        assert_eq!(h(270), "4m 30s");
        assert_eq!(h(3600), "1h");
        assert_eq!(h(3900), "1h 5m");
        assert_eq!(h(3901), "1h 5m");
        assert_eq!(h(86_400 * 2 + 3 * 3600 + 59), "2d 3h");
        assert_eq!(h(86_400 + 30), "1d");
        assert_eq!(h(-90), "-1m 30s");
        assert_eq!(human_duration(SignedDuration::from_millis(350)), "350ms");
    }
}
