//! Alerting rules: the pending -> firing -> inactive state machine of
//! Prometheus, `keep_firing_for`, the `ALERTS`/`ALERTS_FOR_STATE` series and
//! restoring `for` state after a restart.

use std::collections::HashMap;
use std::time::Duration;

use day2_model::{Labels, LabelsBuilder, METRIC_NAME, TimeSeries};
use day2_promql::VecSample;

use crate::template::{Compiled, Env, TemplateData};

/// How long a resolved alert is kept (and re-sent) before it is forgotten.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// Alert state, as Prometheus names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of a rule: a label set that the expression returned.
#[derive(Debug, Clone)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: Vec<(String, String)>,
    pub state: AlertState,
    pub value: f64,
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub last_sent_at: Option<i64>,
    pub valid_until: i64,
    pub keep_firing_since: Option<i64>,
}

impl Alert {
    /// Whether it must be sent to the alert hub at `ts` (Prometheus's rules).
    pub fn needs_sending(&self, ts: i64, resend_delay_ms: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        if let Some(r) = self.resolved_at
            && self.last_sent_at.is_none_or(|s| r > s)
        {
            return true;
        }
        self.last_sent_at.is_none_or(|s| s + resend_delay_ms < ts)
    }
}

/// An alerting rule and its active alerts.
#[derive(Debug)]
pub struct AlertingRule {
    pub name: String,
    /// The expression as written.
    pub expr: String,
    /// What is evaluated (differs from `expr` for no-data rules).
    pub query: String,
    pub hold: Duration,
    pub keep_firing_for: Duration,
    pub labels: Vec<(String, Compiled)>,
    pub annotations: Vec<(String, Compiled)>,
    /// Raw label and annotation texts, for the API.
    pub raw_labels: Vec<(String, String)>,
    pub raw_annotations: Vec<(String, String)>,
    pub active: HashMap<Labels, Alert>,
    /// False until `for` state was restored after start (no ALERTS series before).
    pub restored: bool,
}

/// What one evaluation produced.
#[derive(Debug, Default)]
pub struct AlertEval {
    /// `ALERTS` and `ALERTS_FOR_STATE` samples at the evaluation time.
    pub series: Vec<TimeSeries>,
}

impl AlertingRule {
    /// Applies an evaluation result at `ts` to the alert states.
    pub fn eval(
        &mut self,
        ts: i64,
        result: Vec<VecSample>,
        limit: usize,
        env: &Env,
    ) -> Result<AlertEval, String> {
        let mut seen: HashMap<Labels, ()> = HashMap::with_capacity(result.len());
        let mut fresh: Vec<Alert> = Vec::with_capacity(result.len());
        for s in result {
            let data = TemplateData {
                labels: &s.labels,
                value: s.v,
                external_labels: &env.external_labels,
                external_url: &env.external_url,
            };
            let mut b = LabelsBuilder::new();
            for l in s.labels.iter().filter(|l| l.name != METRIC_NAME) {
                b.set(l.name.clone(), l.value.clone());
            }
            for (k, t) in &self.labels {
                b.set(k.clone(), t.render(&data, env));
            }
            b.set("alertname", self.name.clone());
            let labels = b.build();
            let annotations: Vec<(String, String)> = self
                .annotations
                .iter()
                .map(|(k, t)| (k.clone(), t.render(&data, env)))
                .collect();
            if seen.insert(labels.clone(), ()).is_some() {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .into(),
                );
            }
            fresh.push(Alert {
                labels,
                annotations,
                state: AlertState::Pending,
                value: s.v,
                active_at: ts,
                fired_at: None,
                resolved_at: None,
                last_sent_at: None,
                valid_until: 0,
                keep_firing_since: None,
            });
        }
        for a in fresh {
            match self.active.get_mut(&a.labels) {
                Some(old) if old.state != AlertState::Inactive => {
                    old.value = a.value;
                    old.annotations = a.annotations;
                }
                _ => {
                    self.active.insert(a.labels.clone(), a);
                }
            }
        }
        let mut active_pending = 0usize;
        let keep_ms = self.keep_firing_for.as_millis() as i64;
        let mut drop = Vec::new();
        for (k, a) in self.active.iter_mut() {
            if !seen.contains_key(k) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && keep_ms > 0 {
                    let since = *a.keep_firing_since.get_or_insert(ts);
                    keep_firing = ts - since < keep_ms;
                }
                if a.state == AlertState::Pending
                    || a.resolved_at
                        .is_some_and(|r| ts - r > RESOLVED_RETENTION_MS)
                {
                    drop.push(k.clone());
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    a.state = AlertState::Inactive;
                    a.resolved_at = Some(ts);
                }
                if !keep_firing {
                    continue;
                }
            } else {
                a.keep_firing_since = None;
            }
            active_pending += 1;
        }
        for k in drop {
            self.active.remove(&k);
        }
        if limit > 0 && active_pending > limit {
            self.active.clear();
            return Err(format!(
                "exceeded limit of {limit} with {active_pending} alerts"
            ));
        }
        self.advance(ts);
        Ok(AlertEval {
            series: if self.restored {
                self.series(ts)
            } else {
                Vec::new()
            },
        })
    }

    /// Moves pending alerts whose `for` has passed to firing.
    fn advance(&mut self, ts: i64) {
        let hold = self.hold.as_millis() as i64;
        for a in self.active.values_mut() {
            if a.state == AlertState::Pending && ts - a.active_at >= hold {
                a.state = AlertState::Firing;
                a.fired_at = Some(ts);
            }
        }
    }

    /// The `ALERTS` and `ALERTS_FOR_STATE` samples of the active alerts at `ts`.
    pub fn series(&self, ts: i64) -> Vec<TimeSeries> {
        let mut out = Vec::new();
        for a in self
            .active
            .values()
            .filter(|a| a.state != AlertState::Inactive)
        {
            let mut b = a.labels.to_builder();
            b.set(METRIC_NAME, "ALERTS");
            b.set("alertstate", a.state.as_str());
            out.push(TimeSeries {
                histograms: Vec::new(),
                labels: b.build(),
                samples: vec![day2_model::Sample::new(ts, 1.0)],
            });
            let mut b = a.labels.to_builder();
            b.set(METRIC_NAME, "ALERTS_FOR_STATE");
            out.push(TimeSeries {
                histograms: Vec::new(),
                labels: b.build(),
                samples: vec![day2_model::Sample::new(ts, (a.active_at / 1000) as f64)],
            });
        }
        out
    }

    /// Restores `for` state after a restart from the newest `ALERTS_FOR_STATE`
    /// sample of each active alert, as Prometheus does: `last` gives, for an
    /// alert's labels, (sample time, active-at seconds) found within the outage
    /// tolerance. Alerts with less than `grace` left wait at least `grace`.
    pub fn restore(
        &mut self,
        ts: i64,
        grace: Duration,
        mut last: impl FnMut(&Labels) -> Option<(i64, f64)>,
    ) {
        let hold = self.hold.as_millis() as i64;
        let grace = grace.as_millis() as i64;
        self.restored = true;
        // a short `for` is not lengthened by the grace period: it simply starts over
        if hold == 0 || hold < grace {
            return;
        }
        for a in self.active.values_mut() {
            let Some((down_at, active_secs)) = last(&a.labels) else {
                continue;
            };
            let mut restored = (active_secs * 1000.0) as i64;
            let spent = down_at - restored;
            let remaining = hold - spent;
            if remaining <= 0 {
                // it was firing: it fires again now
            } else if remaining < grace {
                restored = ts + grace - hold;
            } else {
                restored += ts - down_at;
            }
            a.active_at = restored;
            a.state = AlertState::Pending;
            a.fired_at = None;
        }
        self.advance(ts);
    }

    /// Alerts to send now; marks them sent. `interval` is the group's.
    pub fn to_send(&mut self, ts: i64, resend_delay: Duration, interval: Duration) -> Vec<Alert> {
        let resend = resend_delay.as_millis() as i64;
        let valid_for = 4 * resend.max(interval.as_millis() as i64);
        let mut out = Vec::new();
        for a in self.active.values_mut() {
            if a.needs_sending(ts, resend) {
                a.last_sent_at = Some(ts);
                a.valid_until = ts + valid_for;
                out.push(a.clone());
            }
        }
        out
    }

    /// Highest state over the active alerts.
    pub fn state(&self) -> AlertState {
        let mut s = AlertState::Inactive;
        for a in self.active.values() {
            match a.state {
                AlertState::Firing => return AlertState::Firing,
                AlertState::Pending => s = AlertState::Pending,
                AlertState::Inactive => {}
            }
        }
        s
    }

    /// Takes the alert states of an equal rule from a previous configuration.
    pub fn adopt(&mut self, old: &AlertingRule) {
        self.active = old.active.clone();
        self.restored = old.restored;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(hold_s: u64, keep_s: u64) -> AlertingRule {
        AlertingRule {
            name: "HighLatency".into(),
            expr: "x > 1".into(),
            query: "x > 1".into(),
            hold: Duration::from_secs(hold_s),
            keep_firing_for: Duration::from_secs(keep_s),
            labels: vec![(
                "severity".into(),
                crate::template::compile("l", "page").unwrap(),
            )],
            annotations: vec![(
                "summary".into(),
                crate::template::compile("a", "{{ $labels.instance }} is {{ $value }}").unwrap(),
            )],
            raw_labels: vec![],
            raw_annotations: vec![],
            active: HashMap::new(),
            restored: true,
        }
    }

    fn sample(inst: &str, v: f64) -> VecSample {
        VecSample {
            h: None,
            labels: Labels::from_pairs([("__name__", "x"), ("instance", inst)]),
            v,
        }
    }

    fn only(r: &AlertingRule) -> &Alert {
        assert_eq!(r.active.len(), 1, "{:?}", r.active);
        r.active.values().next().unwrap()
    }

    #[test]
    fn pending_then_firing_then_resolved() {
        let env = Env::empty();
        let mut r = rule(120, 0);
        r.eval(0, vec![sample("a", 5.0)], 0, &env).unwrap();
        let a = only(&r);
        assert_eq!(a.state, AlertState::Pending);
        assert_eq!(a.labels.get("alertname"), Some("HighLatency"));
        assert_eq!(a.labels.get("severity"), Some("page"));
        assert_eq!(a.labels.get("__name__"), None);
        assert_eq!(a.annotations[0].1, "a is 5");
        r.eval(60_000, vec![sample("a", 6.0)], 0, &env).unwrap();
        assert_eq!(only(&r).state, AlertState::Pending);
        let out = r.eval(120_000, vec![sample("a", 7.0)], 0, &env).unwrap();
        assert_eq!(only(&r).state, AlertState::Firing);
        assert_eq!(only(&r).fired_at, Some(120_000));
        let alerts: Vec<_> = out
            .series
            .iter()
            .filter(|s| s.labels.get("__name__") == Some("ALERTS"))
            .collect();
        assert_eq!(alerts[0].labels.get("alertstate"), Some("firing"));
        r.eval(180_000, vec![], 0, &env).unwrap();
        let a = only(&r);
        assert_eq!(a.state, AlertState::Inactive);
        assert_eq!(a.resolved_at, Some(180_000));
        // kept for the retention period, then forgotten
        r.eval(180_000 + RESOLVED_RETENTION_MS + 1, vec![], 0, &env)
            .unwrap();
        assert!(r.active.is_empty());
    }

    #[test]
    fn pending_alert_that_disappears_is_dropped() {
        let env = Env::empty();
        let mut r = rule(300, 0);
        r.eval(0, vec![sample("a", 5.0)], 0, &env).unwrap();
        r.eval(60_000, vec![], 0, &env).unwrap();
        assert!(r.active.is_empty());
    }

    #[test]
    fn keep_firing_for_holds_a_firing_alert() {
        let env = Env::empty();
        let mut r = rule(0, 120);
        r.eval(0, vec![sample("a", 5.0)], 0, &env).unwrap();
        assert_eq!(only(&r).state, AlertState::Firing);
        r.eval(60_000, vec![], 0, &env).unwrap();
        assert_eq!(only(&r).state, AlertState::Firing);
        r.eval(120_000, vec![], 0, &env).unwrap();
        assert_eq!(only(&r).state, AlertState::Firing);
        r.eval(180_000, vec![], 0, &env).unwrap();
        assert_eq!(only(&r).state, AlertState::Inactive);
    }

    #[test]
    fn limit_clears_alerts() {
        let env = Env::empty();
        let mut r = rule(0, 0);
        let e = r
            .eval(0, vec![sample("a", 1.0), sample("b", 2.0)], 1, &env)
            .unwrap_err();
        assert!(e.contains("exceeded limit of 1 with 2 alerts"), "{e}");
        assert!(r.active.is_empty());
    }

    #[test]
    fn restore_shifts_active_at_by_the_downtime() {
        let env = Env::empty();
        let mut r = rule(3600, 0);
        r.restored = false;
        // before the restart: active since t=0, last written at 20m; down until 30m
        let out = r.eval(1_800_000, vec![sample("a", 5.0)], 0, &env).unwrap();
        assert!(out.series.is_empty(), "no ALERTS before restore");
        r.restore(1_800_000, Duration::from_secs(600), |_| {
            Some((1_200_000, 0.0))
        });
        // 20m spent pending, 40m remaining from now
        assert_eq!(only(&r).active_at, 600_000);
        assert_eq!(only(&r).state, AlertState::Pending);
        // an alert that had already fired keeps firing
        let mut r = rule(600, 0);
        r.eval(1_800_000, vec![sample("a", 5.0)], 0, &env).unwrap();
        r.restore(1_800_000, Duration::from_secs(60), |_| {
            Some((1_200_000, 0.0))
        });
        assert_eq!(only(&r).state, AlertState::Firing);
        // less than the grace period left: waits the grace period
        let mut r = rule(3600, 0);
        r.eval(1_800_000, vec![sample("a", 5.0)], 0, &env).unwrap();
        r.restore(1_800_000, Duration::from_secs(600), |_| {
            Some((1_200_000, -2_100.0))
        });
        assert_eq!(only(&r).active_at, 1_800_000 + 600_000 - 3_600_000);
    }

    #[test]
    fn sending_follows_resend_delay_and_resolution() {
        let env = Env::empty();
        let mut r = rule(0, 0);
        r.eval(0, vec![sample("a", 5.0)], 0, &env).unwrap();
        let d = Duration::from_secs(60);
        assert_eq!(r.to_send(0, d, d).len(), 1);
        assert_eq!(r.to_send(30_000, d, d).len(), 0);
        assert_eq!(r.to_send(61_000, d, d).len(), 1);
        r.eval(70_000, vec![], 0, &env).unwrap();
        let sent = r.to_send(70_000, d, d);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].resolved_at, Some(70_000));
    }

    #[test]
    fn duplicate_label_sets_after_templating_are_an_error() {
        let env = Env::empty();
        let mut r = rule(0, 0);
        let s1 = VecSample {
            h: None,
            labels: Labels::from_pairs([("__name__", "x"), ("instance", "a")]),
            v: 1.0,
        };
        let s2 = VecSample {
            h: None,
            labels: Labels::from_pairs([("__name__", "y"), ("instance", "a")]),
            v: 1.0,
        };
        assert!(r.eval(0, vec![s1, s2], 0, &env).is_err());
    }
}
