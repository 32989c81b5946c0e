//! Schedules: who is on call at an instant, and the final rendered schedule.
//!
//! A layer is a rotation: its users take turns, one shift each, in order. Shift
//! boundaries are computed on the wall clock of the schedule's time zone: the n-th
//! handoff is at `anchor + n * length` in civil time, then placed in the zone. So a
//! daily rotation handing off at 09:00 always hands off at 09:00 local time, and the
//! shift over a DST change lasts 23h (spring forward) or 25h (fall back). A civil
//! time the zone skips (the spring-forward gap) is placed at the end of the gap (a
//! 02:30 handoff happens at 03:00 that day); a repeated one (fall back) at its first
//! occurrence.
//!
//! A weekly rotation with a handoff weekday is anchored at that weekday on or before
//! its start date; the first user's shift is cut to begin at the start.
//!
//! The final schedule at an instant: the latest override covering it, else the
//! topmost layer (last in the list) that has started, has not ended and whose
//! restrictions (if any) cover the instant, else nobody.

use crate::UserId;
use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// A validated schedule (built by [`crate::config::OnCallConfig::compile`]).
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub time_zone: TimeZone,
    /// Bottom to top: a higher layer wins where it applies.
    pub layers: Vec<Layer>,
    /// A later override wins over an earlier one where they overlap.
    pub overrides: Vec<Override>,
}

#[derive(Debug, Clone)]
pub struct Layer {
    pub name: String,
    pub users: Vec<UserId>,
    pub rotation: Rotation,
    /// The layer applies from here (the start date at the handoff time).
    pub start: Timestamp,
    /// And until here (exclusive), if it ends.
    pub end: Option<Timestamp>,
    /// When not empty, the layer applies only inside these windows.
    pub restrictions: Vec<Restriction>,
}

/// Shift boundaries at `anchor + n * length_secs` on the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// The civil start of shift 0 (the first user's).
    pub anchor: DateTime,
    /// Civil length of a shift in seconds (86400 daily, 604800 weekly).
    pub length_secs: i64,
}

/// A daily window on the wall clock: starts at `from` on each day in `days` and ends
/// at `to` that day, or the next day when `to <= from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restriction {
    /// Monday first.
    pub days: [bool; 7],
    /// Seconds since midnight.
    pub from: u32,
    /// Seconds since midnight, up to 86400.
    pub to: u32,
}

/// Someone covers `[start, end)` instead of the layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub user: UserId,
    pub start: Timestamp,
    pub end: Timestamp,
}

/// What put a user on call. JSON: `{"layer": 0}` or `{"override": 1}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerRef {
    /// Index into [`Schedule::layers`].
    Layer(usize),
    /// Index into [`Schedule::overrides`].
    Override(usize),
}

/// One stretch of the final schedule: `user` is on call over `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Shift {
    pub user: UserId,
    pub start: Timestamp,
    pub end: Timestamp,
    pub layer: LayerRef,
}

/// The user on call at `at`, if anyone.
pub fn who_is_on_call(schedule: &Schedule, at: Timestamp) -> Option<UserId> {
    schedule.on_call_at(at).map(|(u, _)| u.clone())
}

/// The final schedule over `[from, to)`: adjacent stretches of the same user from the
/// same layer or override are one shift; times with nobody on call are left out.
pub fn shifts(schedule: &Schedule, from: Timestamp, to: Timestamp) -> Vec<Shift> {
    schedule.shifts(from, to)
}

/// Places a civil time in `tz`: a time in a gap moves to the end of the gap, a
/// repeated time takes its first occurrence. Monotonic in `dt`.
pub fn civil_to_timestamp(tz: &TimeZone, dt: DateTime) -> Timestamp {
    let amb = tz.to_ambiguous_timestamp(dt);
    let placed = match amb.offset() {
        AmbiguousOffset::Gap { .. } => amb
            .earlier()
            .ok()
            .and_then(|before_gap| tz.following(before_gap).next())
            .map(|tr| tr.timestamp())
            .ok_or(()),
        _ => amb.earlier().map_err(|_| ()),
    };
    placed.unwrap_or(if dt.year() < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

fn add_days(d: Date, days: i64) -> Date {
    d.saturating_add(SignedDuration::from_hours(24 * days))
}

impl Rotation {
    /// The instant shift `k` starts.
    pub fn boundary(&self, tz: &TimeZone, k: i64) -> Timestamp {
        let secs = k.saturating_mul(self.length_secs.max(1));
        let dt = self.anchor.saturating_add(SignedDuration::from_secs(secs));
        civil_to_timestamp(tz, dt)
    }

    /// The shift covering `t`: the largest `k` with `boundary(k) <= t` (negative
    /// before the anchor).
    pub fn index_at(&self, tz: &TimeZone, t: Timestamp) -> i64 {
        let civil = tz.to_datetime(t);
        let diff = civil.duration_since(self.anchor);
        let mut k = diff.as_secs().div_euclid(self.length_secs.max(1));
        // The civil estimate is off by at most one shift around DST changes.
        while self.boundary(tz, k) > t {
            k -= 1;
        }
        while self.boundary(tz, k + 1) <= t {
            k += 1;
        }
        k
    }
}

impl Restriction {
    fn applies_on(&self, d: Date) -> bool {
        self.days[d.weekday().to_monday_zero_offset() as usize]
    }

    /// The window that starts on date `d` (whether or not `d` is one of its days).
    pub fn window_on(&self, tz: &TimeZone, d: Date) -> (Timestamp, Timestamp) {
        let at = |date: Date, secs: u32| {
            if secs >= 86_400 {
                add_days(date, 1).to_datetime(jiff::civil::Time::midnight())
            } else {
                date.to_datetime(crate::parse::time_from_secs(secs))
            }
        };
        let start = at(d, self.from);
        let end = if self.to > self.from {
            at(d, self.to)
        } else {
            at(add_days(d, 1), self.to)
        };
        (civil_to_timestamp(tz, start), civil_to_timestamp(tz, end))
    }

    /// Whether `t` is inside one of the windows.
    pub fn contains(&self, tz: &TimeZone, t: Timestamp) -> bool {
        let d = tz.to_datetime(t).date();
        [add_days(d, -1), d].into_iter().any(|day| {
            if !self.applies_on(day) {
                return false;
            }
            let (s, e) = self.window_on(tz, day);
            s <= t && t < e
        })
    }
}

impl Layer {
    /// Whether the layer covers `t` at all (started, not ended, inside its restrictions).
    pub fn applies(&self, tz: &TimeZone, t: Timestamp) -> bool {
        t >= self.start
            && self.end.is_none_or(|e| t < e)
            && (self.restrictions.is_empty() || self.restrictions.iter().any(|r| r.contains(tz, t)))
    }

    /// The layer's user at `t`, if the layer applies.
    pub fn user_at(&self, tz: &TimeZone, t: Timestamp) -> Option<&UserId> {
        if !self.applies(tz, t) || self.users.is_empty() {
            return None;
        }
        let k = self.rotation.index_at(tz, t);
        Some(&self.users[k.rem_euclid(self.users.len() as i64) as usize])
    }

    /// Instants in `(from, to)` where this layer's answer may change.
    fn change_points(
        &self,
        tz: &TimeZone,
        from: Timestamp,
        to: Timestamp,
        out: &mut Vec<Timestamp>,
    ) {
        out.push(self.start);
        out.extend(self.end);
        let lo = from.max(self.start);
        let hi = self.end.map_or(to, |e| e.min(to));
        if lo >= hi {
            return;
        }
        let (k0, k1) = (
            self.rotation.index_at(tz, lo),
            self.rotation.index_at(tz, hi),
        );
        out.extend((k0 + 1..=k1).map(|k| self.rotation.boundary(tz, k)));
        if !self.restrictions.is_empty() {
            let (d0, d1) = (tz.to_datetime(lo).date(), tz.to_datetime(hi).date());
            let mut d = add_days(d0, -1);
            while d <= d1 {
                for r in &self.restrictions {
                    if r.applies_on(d) {
                        let (s, e) = r.window_on(tz, d);
                        out.push(s);
                        out.push(e);
                    }
                }
                d = add_days(d, 1);
            }
        }
    }
}

impl Schedule {
    /// Who is on call at `t` and why.
    pub fn on_call_at(&self, t: Timestamp) -> Option<(&UserId, LayerRef)> {
        if let Some((i, o)) = self
            .overrides
            .iter()
            .enumerate()
            .rev()
            .find(|(_, o)| o.start <= t && t < o.end)
        {
            return Some((&o.user, LayerRef::Override(i)));
        }
        self.layers.iter().enumerate().rev().find_map(|(i, l)| {
            l.user_at(&self.time_zone, t)
                .map(|u| (u, LayerRef::Layer(i)))
        })
    }

    /// See [`who_is_on_call`].
    pub fn who_is_on_call(&self, t: Timestamp) -> Option<UserId> {
        who_is_on_call(self, t)
    }

    /// See [`shifts`].
    pub fn shifts(&self, from: Timestamp, to: Timestamp) -> Vec<Shift> {
        if from >= to {
            return Vec::new();
        }
        let tz = &self.time_zone;
        let mut points = vec![from];
        for l in &self.layers {
            l.change_points(tz, from, to, &mut points);
        }
        for o in &self.overrides {
            points.push(o.start);
            points.push(o.end);
        }
        render(points, from, to, |t| {
            self.on_call_at(t).map(|(u, r)| (u.clone(), r))
        })
    }

    /// One layer on its own over `[from, to)` (as a UI draws the layers under the
    /// final schedule), restrictions applied, overrides not.
    pub fn layer_shifts(&self, layer: usize, from: Timestamp, to: Timestamp) -> Vec<Shift> {
        let Some(l) = self.layers.get(layer) else {
            return Vec::new();
        };
        if from >= to {
            return Vec::new();
        }
        let mut points = vec![from];
        l.change_points(&self.time_zone, from, to, &mut points);
        render(points, from, to, |t| {
            l.user_at(&self.time_zone, t)
                .map(|u| (u.clone(), LayerRef::Layer(layer)))
        })
    }
}

/// Evaluates `at` on each segment between sorted change points and merges equal
/// neighbours.
fn render(
    mut points: Vec<Timestamp>,
    from: Timestamp,
    to: Timestamp,
    at: impl Fn(Timestamp) -> Option<(UserId, LayerRef)>,
) -> Vec<Shift> {
    points.retain(|p| from <= *p && *p < to);
    points.sort();
    points.dedup();
    let mut out: Vec<Shift> = Vec::new();
    for (i, &p) in points.iter().enumerate() {
        let end = points.get(i + 1).copied().unwrap_or(to);
        let Some((user, layer)) = at(p) else {
            continue;
        };
        match out.last_mut() {
            Some(last) if last.end == p && last.user == user && last.layer == layer => {
                last.end = end;
            }
            _ => out.push(Shift {
                user,
                start: p,
                end,
                layer,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OnCall;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A schedule `name` with the given layers YAML (and overrides), users a..f.
    fn schedule(zone: &str, body: &str) -> Schedule {
        let text = format!(
            "oncall:\n  users: [{{id: a}}, {{id: b}}, {{id: c}}, {{id: d}}, {{id: e}}, {{id: f}}]\n  schedules:\n    - name: s\n      time_zone: {zone}\n{body}"
        );
        let oc = OnCall::parse_document(&text, "t.yml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        oc.schedule("s").unwrap().clone()
    }

    fn who(s: &Schedule, t: &str) -> Option<String> {
        s.who_is_on_call(ts(t)).map(|u| u.0)
    }

    fn hours(a: Timestamp, b: Timestamp) -> i64 {
        b.duration_since(a).as_hours()
    }

    fn daily(zone: &str, start: &str) -> Schedule {
        schedule(
            zone,
            &format!(
                "      layers:\n        - {{ users: [a, b, c], rotation: daily, handoff: \"09:00\", start: {start} }}\n"
            ),
        )
    }

    #[test]
    fn daily_rotation_basic() {
        let s = daily("UTC", "2026-01-05");
        assert_eq!(who(&s, "2026-01-05T08:59:59Z"), None, "before the start");
        assert_eq!(who(&s, "2026-01-05T09:00:00Z").as_deref(), Some("a"));
        assert_eq!(who(&s, "2026-01-06T08:59:59Z").as_deref(), Some("a"));
        assert_eq!(who(&s, "2026-01-06T09:00:00Z").as_deref(), Some("b"));
        assert_eq!(who(&s, "2026-01-07T12:00:00Z").as_deref(), Some("c"));
        assert_eq!(who(&s, "2026-01-08T09:00:00Z").as_deref(), Some("a"));
        // 365 days later: 365 % 3 == 2
        assert_eq!(who(&s, "2027-01-05T10:00:00Z").as_deref(), Some("c"));
    }

    #[test]
    fn daily_across_spring_forward_berlin() {
        // Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST.
        let s = daily("Europe/Berlin", "2026-03-27");
        let sh = s.shifts(ts("2026-03-28T00:00:00Z"), ts("2026-03-31T00:00:00Z"));
        let starts: Vec<_> = sh
            .iter()
            .map(|x| (x.user.0.as_str(), x.start, x.end))
            .collect();
        // handoffs at 09:00 local: 08:00Z before the change, 07:00Z after
        assert_eq!(
            starts[1],
            ("b", ts("2026-03-28T08:00:00Z"), ts("2026-03-29T07:00:00Z"))
        );
        assert_eq!(hours(sh[1].start, sh[1].end), 23);
        assert_eq!(
            starts[2],
            ("c", ts("2026-03-29T07:00:00Z"), ts("2026-03-30T07:00:00Z"))
        );
        assert_eq!(hours(sh[2].start, sh[2].end), 24);
        assert_eq!(who(&s, "2026-03-29T06:59:59Z").as_deref(), Some("b"));
        assert_eq!(who(&s, "2026-03-29T07:00:00Z").as_deref(), Some("c"));
    }

    #[test]
    fn daily_across_fall_back_berlin() {
        // Europe/Berlin: 2026-10-25 03:00 CEST -> 02:00 CET.
        let s = daily("Europe/Berlin", "2026-10-24");
        let sh = s.shifts(ts("2026-10-24T00:00:00Z"), ts("2026-10-27T00:00:00Z"));
        assert_eq!(sh[0].user.0, "a");
        assert_eq!(
            (sh[0].start, sh[0].end),
            (ts("2026-10-24T07:00:00Z"), ts("2026-10-25T08:00:00Z"))
        );
        assert_eq!(hours(sh[0].start, sh[0].end), 25);
        assert_eq!(sh[1].user.0, "b");
        assert_eq!(hours(sh[1].start, sh[1].end), 24);
        assert_eq!(who(&s, "2026-10-25T07:59:59Z").as_deref(), Some("a"));
        assert_eq!(who(&s, "2026-10-25T08:00:00Z").as_deref(), Some("b"));
    }

    #[test]
    fn daily_across_both_changes_new_york() {
        // America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
        let s = daily("America/New_York", "2026-03-07");
        let sh = s.shifts(ts("2026-03-07T14:00:00Z"), ts("2026-03-09T14:00:00Z"));
        assert_eq!(
            (sh[0].user.0.as_str(), sh[0].start, sh[0].end),
            ("a", ts("2026-03-07T14:00:00Z"), ts("2026-03-08T13:00:00Z"))
        );
        assert_eq!(hours(sh[0].start, sh[0].end), 23);
        assert_eq!(sh[1].start, ts("2026-03-08T13:00:00Z"));
        let sh = s.shifts(ts("2026-10-31T13:00:00Z"), ts("2026-11-02T15:00:00Z"));
        assert_eq!(sh[0].start, ts("2026-10-31T13:00:00Z"));
        assert_eq!(sh[0].end, ts("2026-11-01T14:00:00Z"));
        assert_eq!(hours(sh[0].start, sh[0].end), 25);
        assert_eq!(sh[1].end, ts("2026-11-02T14:00:00Z"));
        // 2026-03-07 .. 2026-10-31 is 238 days: 238 % 3 == 1 -> b
        assert_eq!(sh[0].user.0, "b");
        assert_eq!(sh[1].user.0, "c");
    }

    #[test]
    fn handoff_inside_the_gap_moves_to_its_end() {
        let s = schedule(
            "Europe/Berlin",
            "      layers:\n        - { users: [a, b], rotation: daily, handoff: \"02:30\", start: 2026-03-27 }\n",
        );
        // 02:30 does not exist on 2026-03-29: the handoff is at 03:00 CEST (01:00Z)
        assert_eq!(who(&s, "2026-03-29T00:59:59Z").as_deref(), Some("b"));
        assert_eq!(who(&s, "2026-03-29T01:00:00Z").as_deref(), Some("a"));
        assert_eq!(who(&s, "2026-03-30T00:29:59Z").as_deref(), Some("a"));
        assert_eq!(who(&s, "2026-03-30T00:30:00Z").as_deref(), Some("b"));
    }

    #[test]
    fn hourly_custom_rotation_over_fall_back_is_monotonic() {
        let s = schedule(
            "Europe/Berlin",
            "      layers:\n        - { users: [a, b, c], rotation: custom, length: 1h, start: 2026-10-25 }\n",
        );
        let sh = s.shifts(ts("2026-10-24T22:00:00Z"), ts("2026-10-25T04:00:00Z"));
        for w in sh.windows(2) {
            assert_eq!(w[0].end, w[1].start);
            assert!(w[0].start < w[0].end);
        }
        assert_eq!(sh.last().unwrap().end, ts("2026-10-25T04:00:00Z"));
    }

    #[test]
    fn weekly_handoff_monday_0900() {
        // start on a Wednesday: anchored at Monday 2026-01-05, a's first shift is cut.
        let s = schedule(
            "Europe/Berlin",
            "      layers:\n        - { users: [a, b], rotation: weekly, handoff: \"monday 09:00\", start: 2026-01-07 }\n",
        );
        assert_eq!(who(&s, "2026-01-07T07:59:00Z"), None);
        assert_eq!(who(&s, "2026-01-07T08:00:00Z").as_deref(), Some("a"));
        assert_eq!(who(&s, "2026-01-12T07:59:59Z").as_deref(), Some("a"));
        assert_eq!(who(&s, "2026-01-12T08:00:00Z").as_deref(), Some("b"));
        assert_eq!(who(&s, "2026-01-19T08:00:00Z").as_deref(), Some("a"));
        let sh = s.shifts(ts("2026-01-01T00:00:00Z"), ts("2026-01-20T00:00:00Z"));
        assert_eq!(sh.len(), 3);
        assert_eq!(
            (sh[0].start, sh[0].end),
            (ts("2026-01-07T08:00:00Z"), ts("2026-01-12T08:00:00Z"))
        );
        // across spring forward (Monday 2026-03-30 09:00 CEST = 07:00Z)
        let sh = s.shifts(ts("2026-03-23T08:00:00Z"), ts("2026-04-06T07:00:00Z"));
        assert_eq!(sh[0].end, ts("2026-03-30T07:00:00Z"));
        assert_eq!(hours(sh[0].start, sh[0].end), 7 * 24 - 1);
    }

    #[test]
    fn weekly_without_a_weekday_hands_off_on_the_start_weekday() {
        // 2026-01-01 is a Thursday
        let s = schedule(
            "UTC",
            "      layers:\n        - { users: [a, b], rotation: weekly, handoff: \"10:00\", start: 2026-01-01 }\n",
        );
        assert_eq!(who(&s, "2026-01-08T09:59:00Z").as_deref(), Some("a"));
        assert_eq!(who(&s, "2026-01-08T10:00:00Z").as_deref(), Some("b"));
        assert_eq!(who(&s, "2026-01-15T10:00:00Z").as_deref(), Some("a"));
    }

    #[test]
    fn a_zero_length_rotation_built_by_hand_does_not_panic() {
        let mut s = daily("UTC", "2026-01-01");
        s.layers[0].rotation.length_secs = 0;
        assert!(s.who_is_on_call(ts("2026-01-01T10:00:00Z")).is_some());
        s.layers[0].users.clear();
        assert_eq!(s.who_is_on_call(ts("2026-01-01T10:00:00Z")), None);
    }

    #[test]
    fn shifts_serialize_as_json_friendly_values() {
        let s = daily("UTC", "2026-01-01");
        let sh = s.shifts(ts("2026-01-01T09:00:00Z"), ts("2026-01-01T10:00:00Z"));
        let v = serde_json::to_string(&sh[0]).unwrap();
        assert_eq!(
            v,
            r#"{"user":"a","start":"2026-01-01T09:00:00Z","end":"2026-01-01T10:00:00Z","layer":{"layer":0}}"#
        );
    }

    #[test]
    fn custom_length_three_days() {
        let s = schedule(
            "UTC",
            "      layers:\n        - { users: [a, b], rotation: custom, length: 3d, handoff: \"18:00\", start: 2026-01-01 }\n",
        );
        assert_eq!(who(&s, "2026-01-04T17:59:00Z").as_deref(), Some("a"));
        assert_eq!(who(&s, "2026-01-04T18:00:00Z").as_deref(), Some("b"));
        assert_eq!(who(&s, "2026-01-07T18:00:00Z").as_deref(), Some("a"));
    }

    const BUSINESS: &str = "      layers:
        - { name: 24x7, users: [a, b], rotation: weekly, handoff: \"monday 09:00\", start: 2026-01-05 }
        - name: business
          users: [c, d]
          rotation: daily
          handoff: \"09:00\"
          start: 2026-01-05
          restrictions:
            - { days: [\"mon:fri\"], from: \"09:00\", to: \"17:00\" }
";

    #[test]
    fn business_hours_layer_over_24x7() {
        let s = schedule("Europe/Berlin", BUSINESS);
        // Tuesday 2026-01-06 (CET, +01:00)
        assert_eq!(
            who(&s, "2026-01-06T07:59:00Z").as_deref(),
            Some("a"),
            "08:59 local"
        );
        assert_eq!(
            who(&s, "2026-01-06T08:00:00Z").as_deref(),
            Some("d"),
            "09:00 local, day 2"
        );
        assert_eq!(who(&s, "2026-01-06T15:59:00Z").as_deref(), Some("d"));
        assert_eq!(
            who(&s, "2026-01-06T16:00:00Z").as_deref(),
            Some("a"),
            "17:00 local"
        );
        // Saturday: the restriction leaves the whole day to the 24x7 layer
        assert_eq!(who(&s, "2026-01-10T12:00:00Z").as_deref(), Some("a"));
        // next week the 24x7 layer is b
        assert_eq!(
            who(&s, "2026-01-12T07:00:00Z").as_deref(),
            Some("a"),
            "Monday 08:00 local"
        );
        assert_eq!(who(&s, "2026-01-12T16:30:00Z").as_deref(), Some("b"));
        let sh = s.shifts(ts("2026-01-06T00:00:00Z"), ts("2026-01-07T00:00:00Z"));
        let got: Vec<_> = sh
            .iter()
            .map(|x| (x.user.0.as_str(), x.start, x.end, x.layer))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "a",
                    ts("2026-01-06T00:00:00Z"),
                    ts("2026-01-06T08:00:00Z"),
                    LayerRef::Layer(0)
                ),
                (
                    "d",
                    ts("2026-01-06T08:00:00Z"),
                    ts("2026-01-06T16:00:00Z"),
                    LayerRef::Layer(1)
                ),
                (
                    "a",
                    ts("2026-01-06T16:00:00Z"),
                    ts("2026-01-07T00:00:00Z"),
                    LayerRef::Layer(0)
                ),
            ]
        );
        // the business layer alone
        let l = s.layer_shifts(1, ts("2026-01-06T00:00:00Z"), ts("2026-01-08T00:00:00Z"));
        assert_eq!(l.len(), 2);
        assert_eq!(
            (l[1].user.0.as_str(), l[1].start),
            ("c", ts("2026-01-07T08:00:00Z"))
        );
    }

    #[test]
    fn overnight_restriction_crosses_midnight() {
        let s = schedule(
            "UTC",
            "      layers:\n        - { users: [a], rotation: daily, start: 2026-01-01 }\n        - users: [b]\n          rotation: daily\n          start: 2026-01-01\n          restrictions: [{ days: [fri], from: \"22:00\", to: \"06:00\" }]\n",
        );
        // Friday 2026-01-02 22:00 until Saturday 06:00
        assert_eq!(who(&s, "2026-01-02T21:59:00Z").as_deref(), Some("a"));
        assert_eq!(who(&s, "2026-01-02T22:00:00Z").as_deref(), Some("b"));
        assert_eq!(who(&s, "2026-01-03T05:59:00Z").as_deref(), Some("b"));
        assert_eq!(who(&s, "2026-01-03T06:00:00Z").as_deref(), Some("a"));
        assert_eq!(
            who(&s, "2026-01-03T22:30:00Z").as_deref(),
            Some("a"),
            "Saturday night"
        );
    }

    #[test]
    fn gaps_when_no_layer_applies() {
        let s = schedule(
            "UTC",
            "      layers:\n        - users: [a]\n          rotation: daily\n          start: 2026-01-01\n          end: 2026-01-03\n          restrictions: [{ from: \"09:00\", to: \"17:00\" }]\n",
        );
        let sh = s.shifts(ts("2026-01-01T00:00:00Z"), ts("2026-01-05T00:00:00Z"));
        assert_eq!(sh.len(), 2);
        assert_eq!(
            (sh[0].start, sh[0].end),
            (ts("2026-01-01T09:00:00Z"), ts("2026-01-01T17:00:00Z"))
        );
        assert_eq!(
            (sh[1].start, sh[1].end),
            (ts("2026-01-02T09:00:00Z"), ts("2026-01-02T17:00:00Z"))
        );
        assert_eq!(who(&s, "2026-01-03T10:00:00Z"), None, "after the end");
    }

    #[test]
    fn override_in_the_middle_of_a_shift() {
        let s = schedule(
            "Europe/Berlin",
            &format!(
                "{BUSINESS}      overrides:\n        - {{ user: e, start: \"2026-01-06T12:00\", end: \"2026-01-06T14:00\" }}\n        - {{ user: f, start: \"2026-01-06T13:00\", end: \"2026-01-06T13:30\" }}\n"
            ),
        );
        let sh = s.shifts(ts("2026-01-06T08:00:00Z"), ts("2026-01-06T16:00:00Z"));
        let got: Vec<_> = sh
            .iter()
            .map(|x| (x.user.0.as_str(), x.start, x.end, x.layer))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "d",
                    ts("2026-01-06T08:00:00Z"),
                    ts("2026-01-06T11:00:00Z"),
                    LayerRef::Layer(1)
                ),
                (
                    "e",
                    ts("2026-01-06T11:00:00Z"),
                    ts("2026-01-06T12:00:00Z"),
                    LayerRef::Override(0)
                ),
                (
                    "f",
                    ts("2026-01-06T12:00:00Z"),
                    ts("2026-01-06T12:30:00Z"),
                    LayerRef::Override(1)
                ),
                (
                    "e",
                    ts("2026-01-06T12:30:00Z"),
                    ts("2026-01-06T13:00:00Z"),
                    LayerRef::Override(0)
                ),
                (
                    "d",
                    ts("2026-01-06T13:00:00Z"),
                    ts("2026-01-06T16:00:00Z"),
                    LayerRef::Layer(1)
                ),
            ]
        );
        // overrides also win outside the layers' windows
        assert_eq!(who(&s, "2026-01-06T12:15:00Z").as_deref(), Some("f"));
    }

    /// `shifts` and `who_is_on_call` agree at every probed instant, across both DST
    /// changes, with layers, restrictions, overrides and a sub-day rotation.
    #[test]
    fn shifts_agree_with_point_queries() {
        let body = format!(
            "{BUSINESS}        - users: [e, f]\n          rotation: custom\n          length: 90m\n          handoff: \"02:15\"\n          start: 2026-01-01\n          restrictions: [{{ days: [sun], from: \"01:00\", to: \"04:00\" }}]\n      overrides:\n        - {{ user: f, start: \"2026-10-25T02:30\", end: \"2026-10-25T10:00\" }}\n"
        );
        for zone in ["Europe/Berlin", "America/New_York"] {
            let s = schedule(zone, &body);
            for (from, to) in [
                ("2026-03-06T00:00:00Z", "2026-03-10T00:00:00Z"),
                ("2026-03-27T00:00:00Z", "2026-03-31T00:00:00Z"),
                ("2026-10-23T00:00:00Z", "2026-10-27T00:00:00Z"),
                ("2026-10-30T00:00:00Z", "2026-11-03T00:00:00Z"),
            ] {
                let (from, to) = (ts(from), ts(to));
                let sh = s.shifts(from, to);
                for w in sh.windows(2) {
                    assert!(w[0].end <= w[1].start && w[0].start < w[0].end);
                }
                let mut t = from;
                while t < to {
                    let want = s.who_is_on_call(t);
                    let got = sh
                        .iter()
                        .find(|x| x.start <= t && t < x.end)
                        .map(|x| x.user.clone());
                    assert_eq!(got, want, "{zone} at {t}");
                    t += SignedDuration::from_mins(7);
                }
            }
        }
    }

    #[test]
    fn shifts_of_an_empty_range() {
        let s = daily("UTC", "2026-01-01");
        assert!(
            s.shifts(ts("2026-01-02T00:00:00Z"), ts("2026-01-02T00:00:00Z"))
                .is_empty()
        );
        assert!(
            s.shifts(ts("2026-01-03T00:00:00Z"), ts("2026-01-02T00:00:00Z"))
                .is_empty()
        );
    }
}
