//! promtool's rule unit tests (`promtool test rules`): input series in the
//! expanding notation, rules evaluated step by step from time 0 (or
//! `start_timestamp`), alerts compared at `alert_rule_test` times and PromQL
//! results at `promql_expr_test` times.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use day2_model::{
    AppendError, AppendOutcome, Appender, Labels, Matcher, QueryError, Queryable, STALE_NAN,
    Series, TimeSeries,
};
use day2_promql::memstore::MemStore;
use day2_promql::{Engine, EngineOptions, Value};
use parking_lot::RwLock;
use serde::{Deserialize, Deserializer};

use crate::alerting::AlertState;
use crate::group::{EvalCtx, Group, Rule};
use crate::manager::{expand_patterns, load_groups};
use crate::notation::{Step, expand};

/// Options of a run (promtool's flags).
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    /// Only test groups whose name matches (`--run`).
    pub run: Option<regex::Regex>,
    pub ignore_unknown_fields: bool,
}

/// A unit-test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default, deserialize_with = "opt_dur")]
    evaluation_interval: Option<Duration>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    fuzzy_compare: bool,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default, deserialize_with = "opt_dur")]
    interval: Option<Duration>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: String,
    #[serde(default)]
    start_timestamp: Option<StrOrNum>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    /// Kept as written: `0x10` is "0 eleven times", not YAML's hexadecimal 16.
    #[serde(default)]
    values: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    #[serde(deserialize_with = "dur")]
    eval_time: Duration,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    expr: String,
    #[serde(default, deserialize_with = "opt_dur")]
    eval_time: Option<Duration>,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    histogram: Option<String>,
}

/// YAML scalars that promtool reads as text whether quoted or not.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum StrOrNum {
    S(String),
    I(i64),
    F(f64),
}

impl StrOrNum {
    fn text(&self) -> String {
        match self {
            StrOrNum::S(s) => s.clone(),
            StrOrNum::I(i) => i.to_string(),
            StrOrNum::F(f) => format!("{f:?}"),
        }
    }
}

fn dur<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = StrOrNum::deserialize(d)?.text();
    day2_model::parse_duration(&s).map_err(serde::de::Error::custom)
}

fn opt_dur<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    dur(d).map(Some)
}

/// In-memory storage for one test group: both ends of the rule engine.
#[derive(Default)]
struct TestStore(RwLock<MemStore>);

impl Queryable for TestStore {
    fn select(&self, m: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Series>, QueryError> {
        self.0.read().select(m, mint, maxt)
    }
    fn series(&self, m: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Labels>, QueryError> {
        self.0.read().series(m, mint, maxt)
    }
}

impl Appender for TestStore {
    fn append(&self, batch: Vec<TimeSeries>) -> Result<AppendOutcome, AppendError> {
        let mut st = self.0.write();
        let mut n = 0;
        for ts in batch {
            for s in ts.samples {
                st.add(ts.labels.clone(), s.t, s.v);
                n += 1;
            }
        }
        Ok(AppendOutcome {
            accepted: n,
            ..Default::default()
        })
    }
}

/// Result of one test file.
#[derive(Debug, Default)]
pub struct FileReport {
    /// promtool-style report text.
    pub output: String,
    pub passed: bool,
}

fn parse_series_labels(desc: &str) -> Result<Labels, String> {
    use promql_parser::parser::Expr;
    let d = desc.trim();
    if d == "{}" || d.is_empty() {
        return Ok(Labels::empty());
    }
    let Ok(Expr::VectorSelector(vs)) = promql_parser::parser::parse(d) else {
        return Err(format!("cannot parse series {desc:?}"));
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    for m in &vs.matchers.matchers {
        if !matches!(m.op, promql_parser::label::MatchOp::Equal) {
            return Err(format!(
                "series {desc:?}: only = matchers describe a series"
            ));
        }
        pairs.push((m.name.clone(), m.value.clone()));
    }
    if let Some(n) = vs.name {
        pairs.push(("__name__".into(), n));
    }
    Ok(Labels::from_pairs(pairs))
}

fn parse_start(s: &Option<StrOrNum>) -> Result<i64, String> {
    match s {
        None => Ok(0),
        Some(StrOrNum::I(i)) => Ok(i * 1000),
        Some(StrOrNum::F(f)) => Ok((f * 1000.0) as i64),
        Some(StrOrNum::S(s)) => {
            if let Ok(i) = s.parse::<i64>() {
                return Ok(i * 1000);
            }
            s.parse::<jiff::Timestamp>()
                .map(|t| t.as_millisecond())
                .map_err(|e| format!("start_timestamp {s:?}: {e}"))
        }
    }
}

fn fmt_dur(d: Duration) -> String {
    day2_model::format_duration(d)
}

fn ulps_apart(a: f64, b: f64) -> u64 {
    let key = |x: f64| {
        let i = x.to_bits() as i64;
        if i < 0 { i64::MIN - i } else { i }
    };
    key(a).abs_diff(key(b))
}

fn same_value(got: f64, exp: f64, fuzzy: bool) -> bool {
    if got.is_nan() && exp.is_nan() {
        return true;
    }
    if got == exp {
        return true;
    }
    // promtool's fuzzy compare forgives rounding in the last bits only
    fuzzy && ulps_apart(got, exp) <= 2
}

/// Runs one unit-test file.
pub fn run_file(path: &Path, opts: &TestOptions) -> FileReport {
    let mut rep = FileReport {
        output: format!("Unit Testing:  {}\n", path.display()),
        passed: false,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(rep.output, "  FAILED:\n    cannot read: {e}");
            return rep;
        }
    };
    let file: TestFile = match day2_yamlerr::from_str(&text, &path.display().to_string()) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(rep.output, "  FAILED:\n    {e}");
            return rep;
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let eval_interval = file.evaluation_interval.unwrap_or(Duration::from_secs(60));
    let paths = match expand_patterns(&file.rule_files, base) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(rep.output, "  FAILED:\n    {e}");
            return rep;
        }
    };
    // a rule file that does not load fails the whole file, as in promtool
    if let Err(e) = load_groups(&paths, eval_interval, opts.ignore_unknown_fields) {
        let _ = writeln!(rep.output, "  FAILED:\n    {e}");
        return rep;
    }
    let mut errors = Vec::new();
    for tg in &file.tests {
        if let Some(re) = &opts.run
            && !re.is_match(&tg.name)
        {
            continue;
        }
        let groups =
            load_groups(&paths, eval_interval, opts.ignore_unknown_fields).expect("loaded above");
        errors.extend(run_group(
            tg,
            groups,
            eval_interval,
            &file.group_eval_order,
            file.fuzzy_compare,
            None,
        ));
    }
    if errors.is_empty() {
        rep.output.push_str("  SUCCESS\n");
        rep.passed = true;
    } else {
        rep.output.push_str("  FAILED:\n");
        for e in errors {
            for line in e.lines() {
                let _ = writeln!(rep.output, "    {line}");
            }
        }
    }
    rep
}

fn run_group(
    tg: &TestGroup,
    mut groups: Vec<Group>,
    eval_interval: Duration,
    order: &[String],
    fuzzy: bool,
    mut obs: Option<(usize, &mut Observations)>,
) -> Vec<String> {
    let mut errs = Vec::new();
    let name = if tg.name.is_empty() {
        String::new()
    } else {
        format!("name: {},\n", tg.name)
    };
    let fail = |errs: &mut Vec<String>, msg: String| errs.push(format!("{name}{msg}"));
    let start = match parse_start(&tg.start_timestamp) {
        Ok(s) => s,
        Err(e) => {
            fail(&mut errs, e);
            return errs;
        }
    };
    let interval = tg.interval.unwrap_or(eval_interval).as_millis() as i64;
    let store = Arc::new(TestStore::default());
    {
        let mut st = store.0.write();
        for s in &tg.input_series {
            let labels = match parse_series_labels(&s.series) {
                Ok(l) => l,
                Err(e) => {
                    fail(&mut errs, e);
                    return errs;
                }
            };
            let values = s.values.clone().unwrap_or_default();
            let steps = match expand(&values) {
                Ok(v) => v,
                Err(e) => {
                    fail(&mut errs, format!("series {:?}: {e}", s.series));
                    return errs;
                }
            };
            for (i, step) in steps.into_iter().enumerate() {
                let t = start + i as i64 * interval;
                match step {
                    Step::Value(v) => st.add(labels.clone(), t, v),
                    Step::Stale => st.add(labels.clone(), t, STALE_NAN),
                    Step::Missing => {}
                }
            }
        }
    }
    if !order.is_empty() {
        groups.sort_by_key(|g| {
            order
                .iter()
                .position(|n| *n == g.name)
                .unwrap_or(usize::MAX)
        });
    }
    for g in &mut groups {
        for r in &mut g.rules {
            if let Rule::Alerting(a) = &mut r.rule {
                a.restored = true;
            }
        }
    }
    let engine = Arc::new(Engine::new(EngineOptions::default()));
    let ctx = EvalCtx {
        engine: engine.clone(),
        db: store.clone(),
        appender: store.clone(),
        external_labels: Labels::from_pairs(tg.external_labels.clone()),
        external_url: tg.external_url.clone(),
    };
    let mut alert_tests: Vec<&AlertTest> = tg.alert_rule_test.iter().collect();
    alert_tests.sort_by_key(|a| a.eval_time);
    let max_eval = alert_tests
        .iter()
        .map(|a| a.eval_time)
        .chain(
            tg.promql_expr_test
                .iter()
                .map(|e| e.eval_time.unwrap_or_default()),
        )
        .max()
        .unwrap_or_default()
        .as_millis() as i64;
    let step = eval_interval.as_millis().max(1) as i64;
    let mut next_alert = 0;
    let mut ts = 0i64;
    while ts <= max_eval {
        // promtool evaluates every group at every evaluation_interval step,
        // whatever the group's own interval
        for g in &mut groups {
            g.eval(start + ts, 0, &ctx, Duration::from_secs(60));
            let mut failed = false;
            for (i, r) in g.rules.iter().enumerate() {
                if let Some(e) = &r.health.last_error {
                    failed = true;
                    fail(
                        &mut errs,
                        format!("group {:?}, rule {i}, {:?}: {e}", g.name, r.rule.name()),
                    );
                }
            }
            // a rule that cannot evaluate fails the test group, as in promtool
            if failed {
                return errs;
            }
        }
        while next_alert < alert_tests.len() {
            let at = alert_tests[next_alert].eval_time.as_millis() as i64;
            if !(ts <= at && at < ts + step) {
                break;
            }
            let t = alert_tests[next_alert];
            let got = firing(&t.alertname, &groups);
            if let Some((i, o)) = obs.as_mut() {
                o.alerts
                    .push((*i, t.eval_time, t.alertname.clone(), got.clone()));
            }
            if let Some(e) = check_alerts(t, got) {
                fail(&mut errs, e);
            }
            next_alert += 1;
        }
        ts += step;
    }
    for t in &tg.promql_expr_test {
        let at = start + t.eval_time.unwrap_or_default().as_millis() as i64;
        let got = instant(&engine, store.as_ref(), &t.expr, at);
        if let Some((i, o)) = obs.as_mut() {
            o.exprs.push((
                *i,
                t.eval_time.unwrap_or_default(),
                t.expr.clone(),
                got.clone(),
            ));
        }
        if let Some(e) = check_expr(t, got, fuzzy) {
            fail(&mut errs, e);
        }
    }
    errs
}

type LabelsAndAnnotations = (Labels, Labels);

/// An instant query's samples, or its error.
pub type QueryOutcome = Result<Vec<(Labels, f64)>, String>;

/// What day2 computed for a test file's `alert_rule_test` and
/// `promql_expr_test` entries, in file order (for differential tests).
#[derive(Debug, Default, Clone)]
pub struct Observations {
    /// (test group index, eval time, alert name, firing alerts' labels and annotations)
    pub alerts: Vec<(usize, Duration, String, Vec<LabelsAndAnnotations>)>,
    /// (test group index, eval time, expression, result or error)
    pub exprs: Vec<(usize, Duration, String, QueryOutcome)>,
}

/// Evaluates a unit-test file and records what day2 computed, whatever the
/// expectations say.
pub fn observe(path: &Path) -> Result<Observations, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let file: TestFile =
        day2_yamlerr::from_str(&text, &path.display().to_string()).map_err(|e| e.to_string())?;
    let base = path.parent().unwrap_or(Path::new("."));
    let eval_interval = file.evaluation_interval.unwrap_or(Duration::from_secs(60));
    let paths = expand_patterns(&file.rule_files, base).map_err(|e| e.to_string())?;
    let mut obs = Observations::default();
    for (i, tg) in file.tests.iter().enumerate() {
        let groups = load_groups(&paths, eval_interval, false).map_err(|e| e.to_string())?;
        let errs = run_group(
            tg,
            groups,
            eval_interval,
            &file.group_eval_order,
            file.fuzzy_compare,
            Some((i, &mut obs)),
        );
        // evaluation errors (not mismatches) make the observation meaningless
        if let Some(e) = errs
            .iter()
            .find(|e| e.contains("rule ") && e.contains("group "))
        {
            return Err(e.clone());
        }
    }
    Ok(obs)
}

fn render_alerts(list: &[LabelsAndAnnotations]) -> String {
    let mut s = String::from("[");
    for (i, (l, a)) in list.iter().enumerate() {
        let _ = write!(
            s,
            "\n        {i}:\n          Labels:{}\n          Annotations:{}",
            l, a
        );
    }
    if !list.is_empty() {
        s.push_str("\n        ");
    }
    s.push(']');
    s
}

/// Firing alerts of the rules named `name`, sorted.
fn firing(name: &str, groups: &[Group]) -> Vec<LabelsAndAnnotations> {
    let mut got: Vec<LabelsAndAnnotations> = Vec::new();
    for g in groups {
        for r in &g.rules {
            if let Rule::Alerting(a) = &r.rule
                && a.name == name
            {
                for al in a.active.values().filter(|x| x.state == AlertState::Firing) {
                    got.push((
                        al.labels.clone(),
                        Labels::from_pairs(al.annotations.clone()),
                    ));
                }
            }
        }
    }
    got.sort();
    got
}

fn check_alerts(t: &AlertTest, got: Vec<LabelsAndAnnotations>) -> Option<String> {
    let mut exp: Vec<LabelsAndAnnotations> = t
        .exp_alerts
        .iter()
        .map(|e| {
            let mut l = e.exp_labels.clone();
            l.insert("alertname".into(), t.alertname.clone());
            (
                Labels::from_pairs(l),
                Labels::from_pairs(e.exp_annotations.clone()),
            )
        })
        .collect();
    exp.sort();
    (got != exp).then(|| {
        format!(
            "alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
            t.alertname,
            fmt_dur(t.eval_time),
            render_alerts(&exp),
            render_alerts(&got)
        )
    })
}

/// An instant query's result as (labels, value) pairs, sorted by labels.
fn instant(
    engine: &Engine,
    db: &dyn Queryable,
    expr: &str,
    at: i64,
) -> Result<Vec<(Labels, f64)>, String> {
    let mut got = match engine
        .instant(db, expr, at)
        .map_err(|e| e.to_string())?
        .value
    {
        Value::Vector(_, v) => v.into_iter().map(|s| (s.labels, s.v)).collect::<Vec<_>>(),
        Value::Scalar(_, v) => vec![(Labels::empty(), v)],
        other => {
            return Err(format!(
                "expression did not give an instant vector or scalar: {other:?}"
            ));
        }
    };
    got.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(got)
}

fn check_expr(
    t: &ExprTest,
    got: Result<Vec<(Labels, f64)>, String>,
    fuzzy: bool,
) -> Option<String> {
    let head = format!(
        "expr: {:?}, time: {}",
        t.expr,
        fmt_dur(t.eval_time.unwrap_or_default())
    );
    let got = match got {
        Ok(g) => g,
        Err(e) => return Some(format!("{head},\n        err: {e}")),
    };
    let mut exp = Vec::new();
    for s in &t.exp_samples {
        if s.histogram.is_some() {
            return Some(format!(
                "{head},\n        err: native histogram samples are not supported"
            ));
        }
        let labels = match parse_series_labels(&s.labels) {
            Ok(l) => l,
            Err(e) => return Some(format!("{head},\n        err: {e}")),
        };
        let v = match s.value.clone() {
            None => 0.0,
            Some(text) => match crate::notation::expand(&text) {
                Ok(steps) if steps.len() == 1 => match steps[0] {
                    Step::Value(v) => v,
                    _ => return Some(format!("{head},\n        err: bad expected value {text:?}")),
                },
                _ => return Some(format!("{head},\n        err: bad expected value {text:?}")),
            },
        };
        exp.push((labels, v));
    }
    exp.sort_by(|a, b| a.0.cmp(&b.0));
    let same = got.len() == exp.len()
        && got
            .iter()
            .zip(&exp)
            .all(|(g, e)| g.0 == e.0 && same_value(g.1, e.1, fuzzy));
    if same {
        return None;
    }
    let show = |v: &[(Labels, f64)]| {
        let items: Vec<String> = v
            .iter()
            .map(|(l, x)| format!("{{Labels:{l} Value:{}}}", day2_model::gofloat::format_g(*x)))
            .collect();
        format!("[{}]", items.join(" "))
    };
    Some(format!(
        "{head},\n        exp: {}\n        got: {}",
        show(&exp),
        show(&got)
    ))
}

/// Runs several files; returns the combined report and whether all passed.
pub fn run_files(paths: &[std::path::PathBuf], opts: &TestOptions) -> (String, bool) {
    let mut out = String::new();
    let mut ok = true;
    for p in paths {
        let r = run_file(p, opts);
        out.push_str(&r.output);
        out.push('\n');
        ok &= r.passed;
    }
    (out, ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzzy_compare_forgives_only_the_last_bits() {
        assert!(same_value(2.9999999999999996, 3.0, true));
        assert!(same_value(3.0000000000000004, 3.0, true));
        assert!(!same_value(2.9999999999999987, 3.0, true));
        assert!(!same_value(2.9999999999999996, 3.0, false));
        assert!(same_value(f64::NAN, f64::NAN, false));
    }

    #[test]
    fn values_are_read_as_written() {
        let f: TestFile = serde_yaml_ng::from_str(
            "tests:\n  - input_series:\n      - series: up\n        values: 0x10\n      - series: x\n        values: 1\n",
        )
        .unwrap();
        let s = &f.tests[0].input_series;
        assert_eq!(s[0].values.as_deref(), Some("0x10"));
        assert_eq!(s[1].values.as_deref(), Some("1"));
    }

    #[test]
    fn series_descriptions_parse() {
        let l = parse_series_labels("up{job=\"a\", instance=\"b\"}").unwrap();
        assert_eq!(l.get("__name__"), Some("up"));
        assert_eq!(l.get("job"), Some("a"));
        assert!(parse_series_labels("up{job=\"a\"").is_err());
        assert!(parse_series_labels("{}").unwrap().is_empty());
    }
}
