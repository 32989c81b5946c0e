//! Rule groups: rules evaluated in order at the same timestamp, recording
//! results written back to storage before the next rule runs, stale markers
//! for series a rule stopped producing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use day2_model::{
    Appender, Labels, LabelsBuilder, METRIC_NAME, Queryable, STALE_NAN, Sample, TimeSeries,
};
use day2_promql::{Engine, Value, VecSample};

use crate::alerting::{Alert, AlertingRule};
use crate::file::{GroupSpec, RuleSpec};
use crate::template::{self, Env};
use crate::{Error, absence};

/// A recording rule.
#[derive(Debug)]
pub struct RecordingRule {
    pub name: String,
    pub expr: String,
    pub labels: Vec<(String, String)>,
}

/// Either kind of rule.
#[derive(Debug)]
pub enum Rule {
    Recording(RecordingRule),
    Alerting(AlertingRule),
}

impl Rule {
    pub fn name(&self) -> &str {
        match self {
            Rule::Recording(r) => &r.name,
            Rule::Alerting(r) => &r.name,
        }
    }

    /// The expression as written in the file.
    pub fn expr(&self) -> &str {
        match self {
            Rule::Recording(r) => &r.expr,
            Rule::Alerting(r) => &r.expr,
        }
    }

    fn query(&self) -> &str {
        match self {
            Rule::Recording(r) => &r.expr,
            Rule::Alerting(r) => &r.query,
        }
    }
}

/// Health of a rule's last evaluation.
#[derive(Debug, Clone, Default)]
pub struct RuleHealth {
    /// `None` before the first evaluation.
    pub last_eval_wall_ms: Option<i64>,
    pub last_error: Option<String>,
    pub eval_duration: Duration,
}

impl RuleHealth {
    pub fn health(&self) -> &'static str {
        match (&self.last_eval_wall_ms, &self.last_error) {
            (None, _) => "unknown",
            (_, Some(_)) => "err",
            _ => "ok",
        }
    }
}

/// One rule with its evaluation bookkeeping.
#[derive(Debug)]
pub struct RuleEntry {
    pub rule: Rule,
    pub health: RuleHealth,
    /// Series written at the previous evaluation (stale markers for the missing).
    prev_series: HashSet<Labels>,
}

/// A rule group ready to evaluate.
#[derive(Debug)]
pub struct Group {
    pub name: String,
    pub file: String,
    pub interval: Duration,
    pub limit: usize,
    pub query_offset: Duration,
    pub rules: Vec<RuleEntry>,
    pub last_eval_wall_ms: Option<i64>,
    pub eval_duration: Duration,
}

/// What a group needs from outside to evaluate.
#[derive(Clone)]
pub struct EvalCtx {
    pub engine: Arc<Engine>,
    pub db: Arc<dyn Queryable>,
    pub appender: Arc<dyn Appender>,
    pub external_labels: Labels,
    pub external_url: String,
}

/// Alerts that became due for sending, with the rule's group interval.
#[derive(Debug, Default)]
pub struct EvalOutcome {
    pub to_send: Vec<Alert>,
    pub errors: usize,
    pub samples_written: usize,
}

fn build_rule(
    spec: &RuleSpec,
    group_labels: &std::collections::BTreeMap<String, String>,
    interval: Duration,
) -> Result<Rule, String> {
    let mut labels: Vec<(String, String)> = group_labels
        .iter()
        .filter(|(k, _)| !spec.labels.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.extend(spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels.sort();
    if let Some(name) = &spec.record {
        return Ok(Rule::Recording(RecordingRule {
            name: name.clone(),
            expr: spec.expr.clone(),
            labels,
        }));
    }
    let name = spec.alert.clone().unwrap_or_default();
    let query = match spec.absent_for {
        Some(d) => absence::rewrite(
            &spec.expr,
            d,
            spec.absent_window.unwrap_or(absence::DEFAULT_WINDOW),
            interval,
        )?,
        None => spec.expr.clone(),
    };
    let compile_all =
        |kind: &str, m: &[(String, String)]| -> Result<Vec<(String, template::Compiled)>, String> {
            m.iter()
                .map(|(k, v)| Ok((k.clone(), template::compile(&format!("{kind} {k}"), v)?)))
                .collect()
        };
    let annotations: Vec<(String, String)> = spec
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Rule::Alerting(AlertingRule {
        name,
        expr: spec.expr.clone(),
        query,
        hold: spec.for_.unwrap_or_default(),
        keep_firing_for: spec.keep_firing_for.unwrap_or_default(),
        labels: compile_all("label", &labels)?,
        annotations: compile_all("annotation", &annotations)?,
        raw_labels: labels,
        raw_annotations: annotations,
        active: Default::default(),
        restored: false,
    }))
}

impl Group {
    /// Builds a group from its file form; `default_interval` applies when it has none.
    pub fn new(spec: &GroupSpec, file: &str, default_interval: Duration) -> Result<Group, Error> {
        let interval = spec.interval.unwrap_or(default_interval);
        let rules = spec
            .rules
            .iter()
            .map(|r| {
                build_rule(r, &spec.labels, interval)
                    .map(|rule| RuleEntry {
                        rule,
                        health: RuleHealth::default(),
                        prev_series: HashSet::new(),
                    })
                    .map_err(|e| Error::Rule {
                        file: file.to_string(),
                        group: spec.name.clone(),
                        rule: r.name().to_string(),
                        message: e,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Group {
            name: spec.name.clone(),
            file: file.to_string(),
            interval,
            limit: spec.limit,
            query_offset: spec.query_offset.unwrap_or_default(),
            rules,
            last_eval_wall_ms: None,
            eval_duration: Duration::ZERO,
        })
    }

    /// Identity across reloads (Prometheus: file and group name).
    pub fn key(&self) -> (String, String) {
        (self.file.clone(), self.name.clone())
    }

    /// Carries alert state over from the same group of the previous configuration.
    pub fn adopt(&mut self, old: &Group) {
        for entry in &mut self.rules {
            let Rule::Alerting(new) = &mut entry.rule else {
                continue;
            };
            for o in &old.rules {
                if let Rule::Alerting(prev) = &o.rule
                    && prev.name == new.name
                    && prev.query == new.query
                    && prev.raw_labels == new.raw_labels
                {
                    new.adopt(prev);
                    entry.health = o.health.clone();
                    entry.prev_series = o.prev_series.clone();
                }
            }
        }
    }

    /// Evaluates every rule at `ts` (ms), writes the results, and returns the
    /// alerts due for sending. `wall_ms` is the wall clock, for the API.
    pub fn eval(
        &mut self,
        ts: i64,
        wall_ms: i64,
        ctx: &EvalCtx,
        resend_delay: Duration,
    ) -> EvalOutcome {
        let started = Instant::now();
        let mut out = EvalOutcome::default();
        let at = ts - self.query_offset.as_millis() as i64;
        let env = Env::new(ctx, at);
        for entry in &mut self.rules {
            let rule_start = Instant::now();
            let res = eval_rule(&mut entry.rule, at, self.limit, ctx, &env);
            let (series, err) = match res {
                Ok(s) => (s, None),
                Err(e) => (Vec::new(), Some(e)),
            };
            // a failed rule writes nothing and marks nothing stale
            if err.is_none() {
                let now: HashSet<Labels> = series.iter().map(|s| s.labels.clone()).collect();
                let mut batch = series;
                for gone in entry.prev_series.difference(&now) {
                    batch.push(TimeSeries {
                        histograms: Vec::new(),
                        labels: gone.clone(),
                        samples: vec![Sample::new(at, STALE_NAN)],
                    });
                }
                entry.prev_series = now;
                if !batch.is_empty() {
                    match ctx.appender.append(batch) {
                        Ok(o) => out.samples_written += o.accepted,
                        Err(e) => {
                            tracing::warn!(group = %self.name, rule = %entry.rule.name(), error = %e, "writing rule results failed");
                        }
                    }
                }
            }
            if let Some(e) = &err {
                out.errors += 1;
                tracing::debug!(group = %self.name, rule = %entry.rule.name(), error = %e, "rule evaluation failed");
            }
            entry.health = RuleHealth {
                last_eval_wall_ms: Some(wall_ms),
                last_error: err,
                eval_duration: rule_start.elapsed(),
            };
            if let Rule::Alerting(a) = &mut entry.rule {
                out.to_send
                    .extend(a.to_send(ts, resend_delay, self.interval));
            }
        }
        self.last_eval_wall_ms = Some(wall_ms);
        self.eval_duration = started.elapsed();
        out
    }

    /// Restores `for` state of every alerting rule from `ALERTS_FOR_STATE`
    /// samples no older than `outage_tolerance`.
    pub fn restore(&mut self, ts: i64, ctx: &EvalCtx, outage_tolerance: Duration, grace: Duration) {
        let mint = ts - outage_tolerance.as_millis() as i64;
        for entry in &mut self.rules {
            let Rule::Alerting(a) = &mut entry.rule else {
                continue;
            };
            let db = ctx.db.clone();
            a.restore(ts, grace, |labels| {
                let mut ms: Vec<day2_model::Matcher> = labels
                    .iter()
                    .map(|l| day2_model::Matcher::eq(l.name.clone(), l.value.clone()))
                    .collect();
                ms.push(day2_model::Matcher::eq(METRIC_NAME, "ALERTS_FOR_STATE"));
                let found = db.select(&ms, mint, ts).ok()?;
                // the one series whose labels are exactly the alert's
                found
                    .into_iter()
                    .filter(|s| s.labels.len() == labels.len() + 1)
                    .filter_map(|s| {
                        s.samples
                            .into_iter()
                            .rev()
                            .find(|x| !day2_model::is_stale_nan(x.v) && x.t < ts)
                    })
                    .map(|x| (x.t, x.v))
                    .max_by_key(|x| x.0)
            });
        }
    }
}

/// Runs one rule; returns the series to write at `at`.
fn eval_rule(
    rule: &mut Rule,
    at: i64,
    limit: usize,
    ctx: &EvalCtx,
    env: &Env,
) -> Result<Vec<TimeSeries>, String> {
    let result = ctx
        .engine
        .instant(ctx.db.as_ref(), rule.query(), at)
        .map_err(|e| e.to_string())?;
    let vector = match result.value {
        Value::Vector(_, v) => v,
        Value::Scalar(_, v) => vec![VecSample {
            h: None,
            labels: Labels::empty(),
            v,
        }],
        other => {
            return Err(format!(
                "rule result is not a vector or scalar: {}",
                match other {
                    Value::Matrix(_) => "matrix",
                    _ => "string",
                }
            ));
        }
    };
    match rule {
        Rule::Recording(r) => {
            let mut seen = HashSet::with_capacity(vector.len());
            let mut out = Vec::with_capacity(vector.len());
            for s in vector {
                let mut b = LabelsBuilder::new();
                for l in s.labels.iter() {
                    b.set(l.name.clone(), l.value.clone());
                }
                b.set(METRIC_NAME, r.name.clone());
                for (k, v) in &r.labels {
                    b.set(k.clone(), v.clone());
                }
                let labels = b.build();
                if !seen.insert(labels.clone()) {
                    return Err(
                        "vector contains metrics with the same labelset after applying rule labels"
                            .into(),
                    );
                }
                // a native-histogram result is recorded as a histogram sample
                out.push(match s.h {
                    Some(h) => TimeSeries {
                        histograms: vec![day2_model::HistogramSample { t: at, h }],
                        labels,
                        samples: vec![],
                    },
                    None => TimeSeries::new(labels, vec![Sample::new(at, s.v)]),
                });
            }
            if limit > 0 && out.len() > limit {
                return Err(format!(
                    "exceeded limit of {limit} with {} series",
                    out.len()
                ));
            }
            Ok(out)
        }
        Rule::Alerting(a) => Ok(a.eval(at, vector, limit, env)?.series),
    }
}
