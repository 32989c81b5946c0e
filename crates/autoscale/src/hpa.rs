//! Target tracking with the semantics of Kubernetes' HorizontalPodAutoscaler
//! (autoscaling/v2 with `behavior`), as a pure state machine: the time is
//! passed in, nothing is read or written.
//!
//! One decision, given the current replica count and the metric:
//! 1. recommendation = ceil(current * metric / target), or `current` when
//!    |metric / target - 1| <= tolerance;
//! 2. stabilization: the recommendation is recorded; the result starts at
//!    `current`, is raised to the lowest recommendation within the scale-up
//!    window and lowered to the highest within the scale-down window (so a
//!    scale-down waits until every recommendation in its window agrees);
//! 3. step limits: at most `max_step` replicas (or percent of the count at
//!    the period's start) added or removed per `period`, counting the
//!    changes already made within it;
//! 4. clamped to min..max (an out-of-range count is brought in range).

use serde::Serialize;

/// The largest change per period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepLimit {
    Replicas(u32),
    /// Fraction of the count at the start of the period (0.5 = 50%).
    Percent(f64),
}

/// One direction's behaviour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Behavior {
    pub window_ms: i64,
    pub limit: Option<StepLimit>,
    pub period_ms: i64,
}

/// A policy's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub target_value: f64,
    pub tolerance: f64,
    pub min: u32,
    pub max: u32,
    pub up: Behavior,
    pub down: Behavior,
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// From the metric alone (what is recorded for stabilization).
    pub recommendation: u32,
    /// After the stabilization windows.
    pub stabilized: u32,
    /// After step limits and min/max: the count to set.
    pub desired: u32,
    /// Why `desired` is what it is, for the audit.
    pub reason: String,
}

/// What the policy remembers between evaluations (rebuilt from the
/// decision history after a restart).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    /// (time, recommendation)
    recommendations: Vec<(i64, u32)>,
    /// (time, replicas added (> 0) or removed (< 0))
    changes: Vec<(i64, i64)>,
}

/// Step 1: the recommendation from the metric.
pub fn recommend(current: u32, metric: f64, p: &Params) -> u32 {
    let ratio = metric / p.target_value;
    if (ratio - 1.0).abs() <= p.tolerance {
        return current;
    }
    let want = (f64::from(current) * ratio).ceil();
    if want <= 0.0 {
        0
    } else if want >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        want as u32
    }
}

impl State {
    /// Restores the memory from recorded recommendations and changes.
    pub fn restore(recommendations: Vec<(i64, u32)>, changes: Vec<(i64, i64)>) -> State {
        State {
            recommendations,
            changes,
        }
    }

    /// Records that the count went from `from` to `to` at `at`.
    pub fn record_change(&mut self, at: i64, from: u32, to: u32) {
        if from != to {
            self.changes.push((at, i64::from(to) - i64::from(from)));
        }
    }

    /// Replicas added (`up`) or removed within `period_ms` before `now`.
    fn changed_within(&self, now: i64, period_ms: i64, up: bool) -> i64 {
        self.changes
            .iter()
            .filter(|(t, d)| *t > now - period_ms && (*d > 0) == up)
            .map(|(_, d)| d.abs())
            .sum()
    }

    fn up_limit(&self, now: i64, current: u32, b: &Behavior) -> u32 {
        let start = i64::from(current) - self.changed_within(now, b.period_ms, true);
        let limit = match b.limit {
            None => return u32::MAX,
            Some(StepLimit::Replicas(n)) => start + i64::from(n),
            Some(StepLimit::Percent(p)) => (start as f64 * (1.0 + p)).ceil() as i64,
        };
        u32::try_from(limit.max(i64::from(current))).unwrap_or(u32::MAX)
    }

    fn down_limit(&self, now: i64, current: u32, b: &Behavior) -> u32 {
        let start = i64::from(current) + self.changed_within(now, b.period_ms, false);
        let limit = match b.limit {
            None => return 0,
            Some(StepLimit::Replicas(n)) => start - i64::from(n),
            Some(StepLimit::Percent(p)) => (start as f64 * (1.0 - p)).floor() as i64,
        };
        u32::try_from(limit.clamp(0, i64::from(current))).unwrap_or(0)
    }

    /// One evaluation at `now` (milliseconds).
    pub fn decide(&mut self, now: i64, current: u32, metric: f64, p: &Params) -> Decision {
        let recommendation = recommend(current, metric, p);
        let (mut lowest_up, mut highest_down) = (recommendation, recommendation);
        for (t, r) in &self.recommendations {
            if *t > now - p.up.window_ms {
                lowest_up = lowest_up.min(*r);
            }
            if *t > now - p.down.window_ms {
                highest_down = highest_down.max(*r);
            }
        }
        self.recommendations.push((now, recommendation));
        let memory =
            p.up.window_ms
                .max(p.down.window_ms)
                .max(p.up.period_ms)
                .max(p.down.period_ms);
        self.recommendations.retain(|(t, _)| *t > now - memory);
        self.changes.retain(|(t, _)| *t > now - memory);

        let stabilized = current.max(lowest_up).min(highest_down);
        let mut reason = format!(
            "metric {metric} / target {} -> recommendation {recommendation}",
            p.target_value
        );
        if stabilized != recommendation {
            reason.push_str(&format!(
                "; stabilized to {stabilized} (lowest over the scale-up window {lowest_up}, highest over the scale-down window {highest_down})"
            ));
        }
        let max_allowed = p.max.min(self.up_limit(now, current, &p.up));
        let min_allowed = p.min.max(self.down_limit(now, current, &p.down));
        let desired = if stabilized > max_allowed {
            reason.push_str(&format!(
                "; limited to {max_allowed} ({})",
                if max_allowed == p.max {
                    "max"
                } else {
                    "scale-up step limit"
                }
            ));
            max_allowed
        } else if stabilized < min_allowed {
            reason.push_str(&format!(
                "; limited to {min_allowed} ({})",
                if min_allowed == p.min {
                    "min"
                } else {
                    "scale-down step limit"
                }
            ));
            min_allowed
        } else {
            stabilized
        };
        Decision {
            recommendation,
            stabilized,
            desired,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    fn params(up_window: i64, down_window: i64) -> Params {
        Params {
            target_value: 10.0,
            tolerance: 0.1,
            min: 1,
            max: 10,
            up: Behavior {
                window_ms: up_window,
                limit: None,
                period_ms: 15 * S,
            },
            down: Behavior {
                window_ms: down_window,
                limit: None,
                period_ms: 15 * S,
            },
        }
    }

    /// Replays a recorded metric series, one evaluation every 15s from t=0,
    /// applying each decision; returns the counts after each evaluation.
    fn replay(p: &Params, start: u32, metric: &[f64]) -> Vec<u32> {
        let mut st = State::default();
        let mut current = start;
        metric
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let now = i as i64 * 15 * S;
                let d = st.decide(now, current, *m, p);
                st.record_change(now, current, d.desired);
                current = d.desired;
                current
            })
            .collect()
    }

    #[test]
    fn recommendation_is_ceil_of_the_ratio_with_a_tolerance_band() {
        let p = params(0, 0);
        assert_eq!(recommend(2, 30.0, &p), 6);
        assert_eq!(recommend(3, 10.5, &p), 3); // within 10%
        assert_eq!(recommend(3, 11.1, &p), 4); // ceil(3.33)
        assert_eq!(recommend(4, 9.0, &p), 4); // within 10%
        assert_eq!(recommend(4, 5.0, &p), 2);
        assert_eq!(recommend(4, 0.0, &p), 0);
        assert_eq!(recommend(4, f64::INFINITY, &p), u32::MAX);
    }

    #[test]
    fn scale_up_is_immediate_and_scale_down_waits_for_its_window() {
        // load per replica: high, then back at the target, then low
        let p = params(0, 60 * S);
        let metric = [30.0, 10.0, 10.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0];
        let counts = replay(&p, 1, &metric);
        // up to 3 at once; the low load recommends 1 from t=45s on, but the
        // recommendation of 3 at t=30s stays in the 60s window until t=90s
        assert_eq!(counts, vec![3, 3, 3, 3, 3, 3, 1, 1, 1]);
    }

    #[test]
    fn the_scale_down_window_takes_the_highest_recommendation() {
        // the KEP's example: 10 replicas, recommendations 10, 9, 8, 9, 9, ...
        let mut p = params(0, 60 * S);
        p.tolerance = 0.0;
        let mut st = State::default();
        let recs = [10, 9, 8, 9, 9, 8, 9, 8, 9, 8, 6];
        let mut out = Vec::new();
        for (i, r) in recs.iter().enumerate() {
            let d = st.decide(i as i64 * 10 * S, 10, f64::from(*r), &p);
            assert_eq!(d.recommendation, *r);
            out.push(d.desired);
        }
        // evaluations 10s apart: the 10 leaves the 60s window at t=60s;
        // from then on the highest recommendation in it is 9
        assert_eq!(out, vec![10, 10, 10, 10, 10, 10, 9, 9, 9, 9, 9]);
    }

    #[test]
    fn a_scale_up_window_takes_the_lowest_recommendation() {
        let p = params(30 * S, 0);
        let metric = [30.0, 30.0, 30.0, 30.0];
        // 3 at once (nothing lower in the window yet), then 9 (recommended
        // at 15s) only once the 3 recommended at 0s has left the 30s window
        let counts = replay(&p, 1, &metric);
        assert_eq!(counts, vec![3, 3, 9, 9]);
        // a brief spike inside the window does not scale up
        let counts = replay(&p, 2, &[10.0, 50.0, 10.0, 10.0]);
        assert_eq!(counts, vec![2, 2, 2, 2]);
    }

    #[test]
    fn step_limits_count_changes_within_the_period() {
        let mut p = params(0, 0);
        p.max = 100;
        p.up.limit = Some(StepLimit::Replicas(2));
        p.up.period_ms = 30 * S;
        // wants 10 at once; +2 per 30s (evaluations every 15s)
        let counts = replay(&p, 2, &[50.0; 6]);
        assert_eq!(counts, vec![4, 4, 6, 6, 8, 8]);

        let mut p = params(0, 0);
        p.down.limit = Some(StepLimit::Percent(0.5));
        // from 8 to 1: at most half of the count at the period's start
        let counts = replay(&p, 8, &[1.0; 4]);
        assert_eq!(counts, vec![4, 2, 1, 1]);
    }

    #[test]
    fn min_and_max_clamp_and_bring_the_count_in_range() {
        let p = params(0, 0);
        let mut st = State::default();
        let d = st.decide(0, 5, 1000.0, &p);
        assert_eq!((d.recommendation, d.desired), (500, 10));
        assert!(d.reason.contains("limited to 10 (max)"), "{}", d.reason);
        let d = st.decide(S, 5, 0.0, &p);
        assert_eq!(d.desired, 1);
        assert!(d.reason.contains("(min)"), "{}", d.reason);
        // within tolerance but above max: brought down to max
        let d = st.decide(2 * S, 14, 10.0, &p);
        assert_eq!(d.desired, 10);
    }

    #[test]
    fn restored_memory_keeps_stabilizing_after_a_restart() {
        let p = params(0, 60 * S);
        let st = State::restore(vec![(0, 5)], vec![(0, 3)]);
        let mut st2 = st.clone();
        // 30s later the load is low, but 5 was recommended within the window
        assert_eq!(st2.decide(30 * S, 5, 1.0, &p).desired, 5);
        let mut st3 = st;
        assert_eq!(st3.decide(61 * S, 5, 1.0, &p).desired, 1);
    }
}
