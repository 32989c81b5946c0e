//! Escalation plans as pure functions of (policy, triggered_at, acked_at, now).
//!
//! A policy's steps run in order: step `i` is due `delay[i]` after step `i-1` (the
//! first step `delay[0]` after the trigger). With `repeat: N` the whole list runs
//! `1 + N` times (rounds 1, 2, ...); a round starts `repeat_after` after the last step
//! of the previous round. An acknowledgement at `acked_at` stops every step due at or
//! after it; a step due strictly before it has fired. Callers stop escalation on
//! resolve the same way: pass the earlier of the ack and resolve times.
//!
//! Nothing here is stateful. A runtime stores `triggered_at` and `acked_at` per
//! alert or incident, sends the [`DueStep`]s it has not sent yet (keyed by
//! `(round, step_index)`), sleeps until [`next_due`], and after a restart simply
//! recomputes: the answer only depends on the stored times and the clock.
//! Schedule targets resolve to whoever is on call at the step's due time (not at
//! the time the runtime happens to compute it), so a late computation pages the
//! same people a timely one would have.

use crate::UserId;
use crate::config::OnCall;
use jiff::{SignedDuration, Timestamp};

/// A validated escalation policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationPolicy {
    pub name: String,
    pub steps: Vec<Step>,
    /// Extra rounds after the first.
    pub repeat: u32,
    /// Wait after the last step of a round before the next round.
    pub repeat_after: SignedDuration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// After the previous step (after the trigger for the first).
    pub delay: SignedDuration,
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    User(UserId),
    /// Whoever is on call in the named schedule at the step's time.
    Schedule(String),
}

/// A step in the plan, before targets are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PlannedStep {
    /// Index into [`EscalationPolicy::steps`] (0-based).
    pub step_index: usize,
    /// 1 for the first run of the steps, 2 for the first repeat, ...
    pub round: u32,
    pub at: Timestamp,
}

/// A step that is due, with its targets resolved to users at `at`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DueStep {
    /// Index into [`EscalationPolicy::steps`] (0-based).
    pub step_index: usize,
    /// 1-based; `(round, step_index)` identifies the notification.
    pub round: u32,
    pub at: Timestamp,
    /// Users to notify, each once, in target order.
    pub users: Vec<UserId>,
    /// Schedule targets with nobody on call at `at` (worth a warning: this step
    /// pages fewer people than intended).
    pub empty_schedules: Vec<String>,
}

impl EscalationPolicy {
    /// How many times the steps run.
    pub fn rounds(&self) -> u32 {
        1 + self.repeat
    }

    /// From the start of one round to the start of the next.
    pub fn round_length(&self) -> SignedDuration {
        self.steps
            .iter()
            .fold(self.repeat_after, |acc, s| acc.saturating_add(s.delay))
    }

    /// Every step of every round with its due time, in order.
    pub fn plan(&self, triggered_at: Timestamp) -> Vec<PlannedStep> {
        let mut out = Vec::with_capacity(self.steps.len() * self.rounds() as usize);
        let round_len = self.round_length();
        for round in 1..=self.rounds() {
            let mut at = triggered_at
                .saturating_add(round_len.saturating_mul(round as i32 - 1))
                .unwrap_or(Timestamp::MAX);
            for (step_index, s) in self.steps.iter().enumerate() {
                at = at.saturating_add(s.delay).unwrap_or(Timestamp::MAX);
                out.push(PlannedStep {
                    step_index,
                    round,
                    at,
                });
            }
        }
        out
    }
}

/// The plan of `policy` for an alert triggered at `triggered_at` (see [`EscalationPolicy::plan`]).
pub fn plan(policy: &EscalationPolicy, triggered_at: Timestamp) -> Vec<PlannedStep> {
    policy.plan(triggered_at)
}

/// An acknowledgement counts once it has happened.
fn stop_at(acked_at: Option<Timestamp>, now: Timestamp) -> Option<Timestamp> {
    acked_at.filter(|a| *a <= now)
}

fn fires(p: &PlannedStep, now: Timestamp, stop: Option<Timestamp>) -> bool {
    p.at <= now && stop.is_none_or(|s| p.at < s)
}

/// Every step that has come due by `now` and was not cut off by an acknowledgement,
/// in order, targets resolved to users at each step's own time.
pub fn steps_due(
    oncall: &OnCall,
    policy: &EscalationPolicy,
    triggered_at: Timestamp,
    now: Timestamp,
    acked_at: Option<Timestamp>,
) -> Vec<DueStep> {
    let stop = stop_at(acked_at, now);
    policy
        .plan(triggered_at)
        .into_iter()
        .filter(|p| fires(p, now, stop))
        .map(|p| {
            let (users, empty_schedules) =
                resolve_targets(oncall, &policy.steps[p.step_index].targets, p.at);
            DueStep {
                step_index: p.step_index,
                round: p.round,
                at: p.at,
                users,
                empty_schedules,
            }
        })
        .collect()
}

/// When the next step comes due after `now`; `None` once acknowledged or when every
/// round has run. A runtime sleeps until then and calls [`steps_due`] again.
pub fn next_due(
    policy: &EscalationPolicy,
    triggered_at: Timestamp,
    now: Timestamp,
    acked_at: Option<Timestamp>,
) -> Option<Timestamp> {
    if stop_at(acked_at, now).is_some() {
        return None;
    }
    policy
        .plan(triggered_at)
        .into_iter()
        .map(|p| p.at)
        .find(|at| *at > now)
}

/// Users to notify for `targets` at `at` (each once, in order), and the schedule
/// targets that had nobody on call. Unknown schedules count as empty (a validated
/// [`OnCall`] has none).
pub fn resolve_targets(
    oncall: &OnCall,
    targets: &[Target],
    at: Timestamp,
) -> (Vec<UserId>, Vec<String>) {
    let mut users: Vec<UserId> = Vec::new();
    let mut empty = Vec::new();
    for t in targets {
        let user = match t {
            Target::User(u) => Some(u.clone()),
            Target::Schedule(name) => {
                let u = oncall.schedule(name).and_then(|s| s.who_is_on_call(at));
                if u.is_none() {
                    empty.push(name.clone());
                }
                u
            }
        };
        if let Some(u) = user
            && !users.contains(&u)
        {
            users.push(u);
        }
    }
    (users, empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn min(m: i64) -> SignedDuration {
        SignedDuration::from_mins(m)
    }

    const CONFIG: &str = "
oncall:
  users: [{id: alice}, {id: bob}, {id: carol}]
  schedules:
    - name: primary
      time_zone: UTC
      layers:
        - { users: [alice, bob], rotation: daily, handoff: \"09:00\", start: 2026-01-01 }
    - name: nights
      time_zone: UTC
      layers:
        - users: [carol]
          rotation: daily
          start: 2026-01-01
          restrictions: [{ from: \"20:00\", to: \"06:00\" }]
  escalation_policies:
    - name: default
      steps:
        - targets: [{ schedule: primary }]
        - delay: 10m
          targets: [{ user: carol }, { schedule: primary }, { schedule: nights }]
      repeat: 2
      repeat_after: 20m
    - name: once
      steps:
        - delay: 5m
          targets: [{ user: bob }]
";

    fn oncall() -> OnCall {
        OnCall::parse_document(CONFIG, "t.yml").unwrap()
    }

    fn summary(d: &[DueStep]) -> Vec<(u32, usize, Timestamp, Vec<&str>)> {
        d.iter()
            .map(|s| {
                (
                    s.round,
                    s.step_index,
                    s.at,
                    s.users.iter().map(|u| u.as_str()).collect(),
                )
            })
            .collect()
    }

    // 2026-01-02: bob is on primary from 09:00 (day 1 since the start).
    const T: &str = "2026-01-02T08:55:00Z";

    #[test]
    fn plan_with_repeats() {
        let oc = oncall();
        let p = oc.policy("default").unwrap();
        assert_eq!(p.round_length(), min(30));
        let t = ts(T);
        let at: Vec<_> = p
            .plan(t)
            .iter()
            .map(|s| (s.round, s.step_index, s.at.duration_since(t).as_mins()))
            .collect();
        assert_eq!(
            at,
            vec![
                (1, 0, 0),
                (1, 1, 10),
                (2, 0, 30),
                (2, 1, 40),
                (3, 0, 60),
                (3, 1, 70)
            ]
        );
    }

    #[test]
    fn no_ack_fires_step_one_then_two_then_repeats() {
        let oc = oncall();
        let p = oc.policy("default").unwrap();
        let t = ts(T);
        assert!(steps_due(&oc, p, t, t - min(1), None).is_empty());
        assert_eq!(next_due(p, t, t - min(1), None), Some(t));

        let d = steps_due(&oc, p, t, t, None);
        assert_eq!(summary(&d), vec![(1, 0, t, vec!["alice"])]);
        assert_eq!(next_due(p, t, t, None), Some(t + min(10)));

        // step 2 at 09:05: bob has taken over primary at 09:00; nights is empty by day
        let d = steps_due(&oc, p, t, t + min(10), None);
        assert_eq!(
            summary(&d),
            vec![
                (1, 0, t, vec!["alice"]),
                (1, 1, t + min(10), vec!["carol", "bob"]),
            ]
        );
        assert_eq!(d[1].empty_schedules, vec!["nights".to_string()]);
        assert_eq!(next_due(p, t, t + min(10), None), Some(t + min(30)));

        // later: every round has run, each step resolved at its own time
        let d = steps_due(&oc, p, t, t + min(500), None);
        assert_eq!(d.len(), 6);
        assert_eq!(
            d[2].users,
            vec![UserId::from("bob")],
            "round 2 step 1 at 09:25"
        );
        assert_eq!((d[5].round, d[5].step_index, d[5].at), (3, 1, t + min(70)));
        assert_eq!(next_due(p, t, t + min(70), None), None);
    }

    #[test]
    fn ack_between_steps_stops_step_two() {
        let oc = oncall();
        let p = oc.policy("default").unwrap();
        let t = ts(T);
        let ack = Some(t + min(5));
        for now in [t + min(5), t + min(10), t + min(300)] {
            let d = steps_due(&oc, p, t, now, ack);
            assert_eq!(summary(&d), vec![(1, 0, t, vec!["alice"])], "now {now}");
            assert_eq!(next_due(p, t, now, ack), None);
        }
        // an ack at the very instant step 2 is due stops it too
        let d = steps_due(&oc, p, t, t + min(60), Some(t + min(10)));
        assert_eq!(d.len(), 1);
        // an ack in round 2 keeps what fired before it
        let d = steps_due(&oc, p, t, t + min(60), Some(t + min(35)));
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn an_ack_in_the_future_of_now_has_not_happened() {
        let oc = oncall();
        let p = oc.policy("default").unwrap();
        let t = ts(T);
        let ack = Some(t + min(20));
        assert_eq!(steps_due(&oc, p, t, t + min(10), ack).len(), 2);
        assert_eq!(next_due(p, t, t + min(10), ack), Some(t + min(30)));
    }

    #[test]
    fn recomputation_after_restart_is_consistent() {
        let oc = oncall();
        let p = oc.policy("default").unwrap();
        let t = ts(T);
        // before a restart at +12m the runtime had sent the first two steps
        let before = steps_due(&oc, p, t, t + min(12), None);
        // after it, recomputing from the stored trigger time at +45m
        let after = steps_due(&oc, p, t, t + min(45), None);
        assert_eq!(&after[..before.len()], &before[..]);
        let to_send: Vec<_> = after[before.len()..]
            .iter()
            .map(|d| (d.round, d.step_index))
            .collect();
        assert_eq!(to_send, vec![(2, 0), (2, 1)]);
    }

    #[test]
    fn first_step_with_a_delay_and_no_repeat() {
        let oc = oncall();
        let p = oc.policy("once").unwrap();
        let t = ts(T);
        assert!(steps_due(&oc, p, t, t + min(4), None).is_empty());
        assert_eq!(next_due(p, t, t, None), Some(t + min(5)));
        assert_eq!(
            summary(&steps_due(&oc, p, t, t + min(5), None)),
            vec![(1, 0, t + min(5), vec!["bob"])]
        );
        assert_eq!(next_due(p, t, t + min(5), None), None);
    }

    #[test]
    fn targets_are_deduplicated_and_resolved_at_night() {
        let oc = oncall();
        let (users, empty) = resolve_targets(
            &oc,
            &[
                Target::Schedule("nights".into()),
                Target::User("carol".into()),
                Target::Schedule("primary".into()),
            ],
            ts("2026-01-02T23:00:00Z"),
        );
        assert_eq!(users, vec![UserId::from("carol"), UserId::from("bob")]);
        assert!(empty.is_empty());
    }

    #[test]
    fn zero_gap_repeats_are_refused() {
        let text = CONFIG
            .replace("repeat_after: 20m", "repeat_after: 0s")
            .replace("delay: 10m", "delay: 0s");
        let e = OnCall::parse_document(&text, "t.yml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("oncall.escalation_policies[0].repeat_after: repeated rounds need time"),
            "{e}"
        );
    }
}
