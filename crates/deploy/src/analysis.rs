//! Post-deploy analysis: each check's PromQL expression is evaluated as a
//! range query over the pre-deploy baseline window and over the post-deploy
//! window; each window's value (per series) is the mean of its points,
//! ignoring NaN and ±Inf (a ratio over zero requests); the post-deploy value
//! is compared with the limit or with the baseline.
//!
//! Windows, for a deployment at `d`:
//! - baseline: steps from `d - baseline` to `d` (the state up to the deploy);
//! - post-deploy: steps from `d + delay + step` to `d + delay + window`.
//!
//! Series are matched between the windows by their label set. A check fails
//! if any series fails; passes if no series fails and at least one passed;
//! otherwise (no data) its `no_data` setting decides (inconclusive by
//! default). A query that cannot run is an `error`. The analysis fails if
//! any check fails, else is an error if any check is, else inconclusive if
//! any check is, else passes. Only `fail` triggers a rollback.
//!
//! Pure: reads only through `Queryable` and `Engine`; the time is passed in.

use std::collections::BTreeMap;

use day2_model::{Labels, Queryable};
use day2_promql::{Engine, QueryResult, Value};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::{Mode, NoData};

/// How a check judges the post-deploy value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Comparison {
    /// Fails above `limit`.
    MaxValue { limit: f64 },
    /// Fails below `limit`.
    MinValue { limit: f64 },
    /// Fails when it exceeds the baseline by more than `ratio * |baseline| + tolerance`.
    MaxIncrease { ratio: f64, tolerance: f64 },
    /// Fails when it falls below the baseline by more than `ratio * |baseline| + tolerance`.
    MaxDecrease { ratio: f64, tolerance: f64 },
}

/// One check, ready to run (placeholders rendered).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckSpec {
    pub name: String,
    pub expr: String,
    pub comparison: Comparison,
    pub no_data: NoData,
}

/// The analysis of one deployment, fixed when the deployment is recorded
/// (a later config change does not alter what was promised).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisSpec {
    pub mode: Mode,
    pub window_ms: i64,
    pub baseline_ms: i64,
    pub delay_ms: i64,
    pub step_ms: i64,
    pub checks: Vec<CheckSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_runbook: Option<String>,
}

impl AnalysisSpec {
    /// When the post-deploy window ends.
    pub fn due(&self, deployed_at: i64) -> i64 {
        deployed_at
            .saturating_add(self.delay_ms)
            .saturating_add(self.window_ms)
    }

    /// Baseline query range (first and last step).
    pub fn baseline_range(&self, deployed_at: i64) -> (i64, i64) {
        (deployed_at - self.baseline_ms, deployed_at)
    }

    /// Post-deploy query range (first and last step).
    pub fn post_range(&self, deployed_at: i64) -> (i64, i64) {
        let end = self.due(deployed_at);
        let start = (deployed_at + self.delay_ms + self.step_ms).min(end);
        (start, end)
    }

    /// Whether a failing verdict runs a rollback runbook.
    pub fn rollback_on_fail(&self) -> Option<&str> {
        match self.mode {
            Mode::Enforce => self.rollback_runbook.as_deref(),
            Mode::Advisory => None,
        }
    }
}

/// A verdict of a series, a check or an analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    Inconclusive,
    Error,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        match s {
            "pass" => Some(Verdict::Pass),
            "fail" => Some(Verdict::Fail),
            "inconclusive" => Some(Verdict::Inconclusive),
            "error" => Some(Verdict::Error),
            _ => None,
        }
    }
}

/// One series of a check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesOutcome {
    pub labels: BTreeMap<String, String>,
    pub baseline: Option<f64>,
    pub current: Option<f64>,
    pub verdict: Verdict,
    pub reason: String,
}

/// One check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckOutcome {
    pub name: String,
    pub expr: String,
    pub comparison: Comparison,
    pub verdict: Verdict,
    pub reason: String,
    pub series: Vec<SeriesOutcome>,
}

/// The recorded result of an analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisResult {
    pub verdict: Verdict,
    pub summary: String,
    pub evaluated_at: Timestamp,
    pub baseline_from: Timestamp,
    pub baseline_to: Timestamp,
    pub post_from: Timestamp,
    pub post_to: Timestamp,
    pub checks: Vec<CheckOutcome>,
}

/// Judges one series: the post-deploy value `current` against the
/// comparison (and the `baseline` for relative ones).
pub fn judge(cmp: &Comparison, baseline: Option<f64>, current: Option<f64>) -> (Verdict, String) {
    let Some(c) = current else {
        return (Verdict::Inconclusive, "no data after the deployment".into());
    };
    match *cmp {
        Comparison::MaxValue { limit } if c > limit => {
            (Verdict::Fail, format!("{c} is above the limit {limit}"))
        }
        Comparison::MaxValue { limit } => {
            (Verdict::Pass, format!("{c} is within the limit {limit}"))
        }
        Comparison::MinValue { limit } if c < limit => {
            (Verdict::Fail, format!("{c} is below the limit {limit}"))
        }
        Comparison::MinValue { limit } => {
            (Verdict::Pass, format!("{c} is within the limit {limit}"))
        }
        Comparison::MaxIncrease { ratio, tolerance }
        | Comparison::MaxDecrease { ratio, tolerance } => {
            let Some(b) = baseline else {
                return (
                    Verdict::Inconclusive,
                    "no baseline data before the deployment".into(),
                );
            };
            let allowed = b.abs() * ratio + tolerance;
            let (change, word) = match cmp {
                Comparison::MaxIncrease { .. } => (c - b, "rose"),
                _ => (b - c, "fell"),
            };
            if change > allowed {
                (
                    Verdict::Fail,
                    format!("{word} from {b} to {c}, by {change} (allowed {allowed})"),
                )
            } else {
                (
                    Verdict::Pass,
                    format!("{b} -> {c}, within the allowed change {allowed}"),
                )
            }
        }
    }
}

/// The mean of each series' finite points.
fn window_means(result: &QueryResult) -> BTreeMap<Labels, Option<f64>> {
    let mean = |points: &mut dyn Iterator<Item = f64>| {
        let (mut sum, mut n) = (0.0, 0u32);
        for v in points.filter(|v| v.is_finite()) {
            sum += v;
            n += 1;
        }
        (n > 0).then(|| sum / f64::from(n))
    };
    match &result.value {
        Value::Matrix(series) => series
            .iter()
            .map(|s| {
                (
                    s.labels.clone(),
                    mean(&mut s.points.iter().map(|(_, v)| *v)),
                )
            })
            .collect(),
        Value::Vector(_, samples) => samples
            .iter()
            .map(|s| (s.labels.clone(), mean(&mut std::iter::once(s.v))))
            .collect(),
        Value::Scalar(_, v) => BTreeMap::from([(Labels::empty(), mean(&mut std::iter::once(*v)))]),
        Value::String(..) => BTreeMap::new(),
    }
}

fn labels_map(l: &Labels) -> BTreeMap<String, String> {
    l.iter()
        .map(|x| (x.name.clone(), x.value.clone()))
        .collect()
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Combines per-series verdicts into the check's.
fn check_verdict(series: &[SeriesOutcome], no_data: NoData) -> (Verdict, String) {
    let describe = |s: &SeriesOutcome| {
        if s.labels.is_empty() {
            s.reason.clone()
        } else {
            let l: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            format!("{{{}}}: {}", l.join(", "), s.reason)
        }
    };
    let failed: Vec<&SeriesOutcome> = series
        .iter()
        .filter(|s| s.verdict == Verdict::Fail)
        .collect();
    if let Some(first) = failed.first() {
        let more = match failed.len() {
            1 => String::new(),
            n => format!(" (and {} more series)", n - 1),
        };
        return (Verdict::Fail, format!("{}{more}", describe(first)));
    }
    if let Some(p) = series.iter().find(|s| s.verdict == Verdict::Pass) {
        return (Verdict::Pass, describe(p));
    }
    let why = series
        .first()
        .map(describe)
        .unwrap_or_else(|| "the query returned no series".into());
    match no_data {
        NoData::Inconclusive => (Verdict::Inconclusive, format!("no data: {why}")),
        NoData::Pass => (Verdict::Pass, format!("no data (counted as pass): {why}")),
        NoData::Fail => (Verdict::Fail, format!("no data (counted as fail): {why}")),
    }
}

/// Runs one check.
pub fn evaluate_check(
    engine: &Engine,
    db: &dyn Queryable,
    spec: &AnalysisSpec,
    check: &CheckSpec,
    deployed_at: i64,
) -> CheckOutcome {
    let step = spec.step_ms.max(1);
    let run = |(from, to): (i64, i64)| engine.range(db, &check.expr, from, to, step);
    let outcome = |verdict, reason, series| CheckOutcome {
        name: check.name.clone(),
        expr: check.expr.clone(),
        comparison: check.comparison,
        verdict,
        reason,
        series,
    };
    let means = |range, which: &str| {
        run(range)
            .map(|r| window_means(&r))
            .map_err(|e| format!("query failed over the {which} window: {e}"))
    };
    let windows = means(spec.baseline_range(deployed_at), "baseline")
        .and_then(|b| Ok((b, means(spec.post_range(deployed_at), "post-deploy")?)));
    let (baseline, current) = match windows {
        Ok(w) => w,
        Err(m) => return outcome(Verdict::Error, m, Vec::new()),
    };
    let mut keys: Vec<&Labels> = current.keys().chain(baseline.keys()).collect();
    keys.sort();
    keys.dedup();
    let series: Vec<SeriesOutcome> = keys
        .into_iter()
        .map(|l| {
            let b = baseline.get(l).copied().flatten();
            let c = current.get(l).copied().flatten();
            let (verdict, reason) = judge(&check.comparison, b, c);
            SeriesOutcome {
                labels: labels_map(l),
                baseline: b,
                current: c,
                verdict,
                reason,
            }
        })
        .collect();
    let (verdict, reason) = check_verdict(&series, check.no_data);
    outcome(verdict, reason, series)
}

/// Combines check verdicts: fail, then error, then inconclusive, else pass.
pub fn overall(checks: &[CheckOutcome]) -> Verdict {
    for v in [Verdict::Fail, Verdict::Error, Verdict::Inconclusive] {
        if checks.iter().any(|c| c.verdict == v) {
            return v;
        }
    }
    Verdict::Pass
}

/// Runs every check of a deployment's analysis at `now`.
pub fn evaluate(
    engine: &Engine,
    db: &dyn Queryable,
    spec: &AnalysisSpec,
    deployed_at: i64,
    now: Timestamp,
) -> AnalysisResult {
    let checks: Vec<CheckOutcome> = spec
        .checks
        .iter()
        .map(|c| evaluate_check(engine, db, spec, c, deployed_at))
        .collect();
    let verdict = overall(&checks);
    let summary = checks
        .iter()
        .map(|c| format!("{}: {} ({})", c.name, c.verdict.as_str(), c.reason))
        .collect::<Vec<_>>()
        .join("; ");
    let (bf, bt) = spec.baseline_range(deployed_at);
    let (pf, pt) = spec.post_range(deployed_at);
    AnalysisResult {
        verdict,
        summary,
        evaluated_at: now,
        baseline_from: ts(bf),
        baseline_to: ts(bt),
        post_from: ts(pf),
        post_to: ts(pt),
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use day2_promql::memstore::MemStore;

    const D: i64 = 1_000_000_000;

    fn spec(expr: &str, comparison: Comparison, no_data: NoData) -> AnalysisSpec {
        AnalysisSpec {
            mode: Mode::Enforce,
            window_ms: 10_000,
            baseline_ms: 10_000,
            delay_ms: 0,
            step_ms: 1_000,
            checks: vec![CheckSpec {
                name: "c".into(),
                expr: expr.into(),
                comparison,
                no_data,
            }],
            rollback_runbook: Some("rb".into()),
        }
    }

    fn lbl(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    type Pairs<'a> = &'a [(&'a str, &'a str)];

    /// One sample a second: `before` up to the deployment, `after` after it.
    fn store(series: &[(Pairs<'_>, f64, f64)]) -> MemStore {
        let mut m = MemStore::new();
        for (labels, before, after) in series {
            for s in -10..=10i64 {
                let v = if s <= 0 { *before } else { *after };
                m.add(lbl(labels), D + s * 1000, v);
            }
        }
        m
    }

    fn engine() -> Engine {
        Engine::new(day2_promql::EngineOptions {
            lookback_delta: std::time::Duration::from_millis(1500),
            ..Default::default()
        })
    }

    fn now() -> Timestamp {
        ts(D + 11_000)
    }

    fn approx(v: Option<f64>, want: f64) -> bool {
        v.is_some_and(|v| (v - want).abs() < 1e-9)
    }

    const ERR: &[(&str, &str)] = &[("__name__", "err"), ("service", "api")];
    const INC: Comparison = Comparison::MaxIncrease {
        ratio: 0.2,
        tolerance: 0.0,
    };

    #[test]
    fn judge_covers_limits_relative_changes_and_missing_data() {
        let max = Comparison::MaxValue { limit: 1.0 };
        assert_eq!(judge(&max, None, Some(1.0)).0, Verdict::Pass);
        assert_eq!(judge(&max, None, Some(1.5)).0, Verdict::Fail);
        let min = Comparison::MinValue { limit: 0.99 };
        assert_eq!(judge(&min, None, Some(0.98)).0, Verdict::Fail);
        assert_eq!(judge(&INC, Some(10.0), Some(12.0)).0, Verdict::Pass);
        let (v, why) = judge(&INC, Some(10.0), Some(12.5));
        assert_eq!(v, Verdict::Fail);
        assert!(why.contains("rose from 10 to 12.5"), "{why}");
        let dec = Comparison::MaxDecrease {
            ratio: 0.5,
            tolerance: 0.0,
        };
        assert_eq!(judge(&dec, Some(100.0), Some(60.0)).0, Verdict::Pass);
        assert_eq!(judge(&dec, Some(100.0), Some(40.0)).0, Verdict::Fail);
        // no data after, or no baseline for a relative check
        assert_eq!(judge(&max, Some(1.0), None).0, Verdict::Inconclusive);
        assert_eq!(judge(&INC, None, Some(1.0)).0, Verdict::Inconclusive);
    }

    #[test]
    fn a_zero_baseline_fails_any_increase_unless_tolerated() {
        assert_eq!(judge(&INC, Some(0.0), Some(0.0)).0, Verdict::Pass);
        assert_eq!(judge(&INC, Some(0.0), Some(0.001)).0, Verdict::Fail);
        let tolerant = Comparison::MaxIncrease {
            ratio: 0.2,
            tolerance: 0.01,
        };
        assert_eq!(judge(&tolerant, Some(0.0), Some(0.001)).0, Verdict::Pass);
        assert_eq!(judge(&tolerant, Some(0.0), Some(0.02)).0, Verdict::Fail);
        // a negative baseline allows |baseline| * ratio
        assert_eq!(judge(&INC, Some(-10.0), Some(-8.5)).0, Verdict::Pass);
        assert_eq!(judge(&INC, Some(-10.0), Some(-7.0)).0, Verdict::Fail);
    }

    #[test]
    fn an_error_rate_that_rises_after_the_deploy_fails() {
        let db = store(&[(ERR, 0.01, 0.05)]);
        let s = spec(r#"err{service="api"}"#, INC, NoData::Inconclusive);
        let r = evaluate(&engine(), &db, &s, D, now());
        assert_eq!(r.verdict, Verdict::Fail, "{}", r.summary);
        let series = &r.checks[0].series[0];
        assert!(approx(series.baseline, 0.01), "{series:?}");
        assert!(approx(series.current, 0.05), "{series:?}");
        assert_eq!(series.labels["service"], "api");
        assert_eq!(r.post_to, ts(D + 10_000));
        assert_eq!(r.baseline_from, ts(D - 10_000));

        let steady = store(&[(ERR, 0.01, 0.011)]);
        let r = evaluate(&engine(), &steady, &s, D, now());
        assert_eq!(r.verdict, Verdict::Pass, "{}", r.summary);
    }

    #[test]
    fn series_are_compared_by_labels_and_one_failing_series_fails_the_check() {
        let a: &[(&str, &str)] = &[("__name__", "err"), ("instance", "a")];
        let b: &[(&str, &str)] = &[("__name__", "err"), ("instance", "b")];
        let db = store(&[(a, 1.0, 1.0), (b, 1.0, 3.0)]);
        let s = spec("err", INC, NoData::Inconclusive);
        let c = &evaluate(&engine(), &db, &s, D, now()).checks[0];
        assert_eq!(c.verdict, Verdict::Fail);
        assert_eq!(c.series.len(), 2);
        assert!(c.reason.contains("instance=\"b\""), "{}", c.reason);
    }

    #[test]
    fn no_data_follows_the_checks_policy() {
        let db = store(&[]);
        for (policy, want) in [
            (NoData::Inconclusive, Verdict::Inconclusive),
            (NoData::Pass, Verdict::Pass),
            (NoData::Fail, Verdict::Fail),
        ] {
            let s = spec("err", INC, policy);
            let r = evaluate(&engine(), &db, &s, D, now());
            assert_eq!(r.verdict, want, "{policy:?}: {}", r.summary);
            assert!(r.checks[0].reason.contains("no series"), "{}", r.summary);
        }
        // data only before the deploy (beyond the lookback): no data after it
        let gone: &[(&str, &str)] = &[("__name__", "gone")];
        let mut m = MemStore::new();
        for t in -10..=-2i64 {
            m.add(lbl(gone), D + t * 1000, 1.0);
        }
        let r = evaluate(
            &engine(),
            &m,
            &spec("gone", INC, NoData::Inconclusive),
            D,
            now(),
        );
        assert_eq!(r.verdict, Verdict::Inconclusive);
        assert!(
            r.summary.contains("no data after the deployment"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn nan_points_are_ignored_and_all_nan_is_no_data() {
        // requests stop after the deploy: errors/requests is 0/0 = NaN
        let mut m = MemStore::new();
        for t in -10..=10i64 {
            let (e, r) = if t <= 0 { (1.0, 100.0) } else { (0.0, 0.0) };
            m.add(lbl(&[("__name__", "e")]), D + t * 1000, e);
            m.add(lbl(&[("__name__", "r")]), D + t * 1000, r);
        }
        let s = spec("sum(e) / sum(r)", INC, NoData::Inconclusive);
        let r = evaluate(&engine(), &m, &s, D, now());
        let series = &r.checks[0].series[0];
        assert!(approx(series.baseline, 0.01), "{series:?}");
        assert_eq!(series.current, None, "{}", r.summary);
        assert_eq!(r.verdict, Verdict::Inconclusive);

        // some NaN points among real ones: the mean of the real ones
        let mut m = MemStore::new();
        for t in -10..=10i64 {
            let v = if t > 0 && t % 2 == 0 { f64::NAN } else { 2.0 };
            m.add(lbl(&[("__name__", "x")]), D + t * 1000, v);
        }
        let r = evaluate(&engine(), &m, &spec("x", INC, NoData::Fail), D, now());
        assert_eq!(r.checks[0].series[0].current, Some(2.0));
        assert_eq!(r.verdict, Verdict::Pass);
    }

    #[test]
    fn a_query_that_cannot_run_is_an_error_and_fail_outranks_it() {
        let db = store(&[(ERR, 0.01, 0.05)]);
        let mut s = spec("err", INC, NoData::Inconclusive);
        s.checks.push(CheckSpec {
            name: "broken".into(),
            // a range vector is not a valid range-query result
            expr: "err[1m]".into(),
            comparison: Comparison::MaxValue { limit: 1.0 },
            no_data: NoData::Inconclusive,
        });
        let r = evaluate(&engine(), &db, &s, D, now());
        assert_eq!(r.checks[1].verdict, Verdict::Error);
        assert!(
            r.checks[1].reason.contains("baseline window"),
            "{}",
            r.summary
        );
        assert_eq!(r.verdict, Verdict::Fail);
        s.checks.remove(0);
        assert_eq!(
            evaluate(&engine(), &db, &s, D, now()).verdict,
            Verdict::Error
        );
    }

    #[test]
    fn windows_honour_delay_and_step() {
        let mut s = spec("x", INC, NoData::Inconclusive);
        s.delay_ms = 5_000;
        assert_eq!(s.due(D), D + 15_000);
        assert_eq!(s.post_range(D), (D + 6_000, D + 15_000));
        assert_eq!(s.baseline_range(D), (D - 10_000, D));
        assert_eq!(s.rollback_on_fail(), Some("rb"));
        s.mode = Mode::Advisory;
        assert_eq!(s.rollback_on_fail(), None);
    }
}
