//! `info(v, [selector])` (experimental in Prometheus 3): adds to each series
//! of `v` the data labels of the info series (`target_info` unless the
//! selector names others) that share its identifying labels (`instance`,
//! `job`), as of the time the series' own samples were read (its `@` and
//! `offset`, and those of subqueries on the way to it).
//!
//! Per step, among info series of the same name and identifying labels the
//! one with the newest sample wins. A series that is itself an info series is
//! passed through. Without a matching info series a series passes unchanged,
//! unless a data label matcher of the selector refuses the empty value; then
//! it is left out at that step.

use std::collections::HashMap;

use day2_model::{Labels, METRIC_NAME, MatchOp, Matcher};
use promql_parser::parser::{Call, Expr, VectorSelector};

use crate::Error;
use crate::eval::{ABSENT, Ctx, Grid, VSeries, Val, has, instant_slots, selector_matchers};

/// The labels that tie a series to its info series.
const IDENTIFYING: [&str; 2] = ["instance", "job"];

/// The label selector argument, if any.
pub(crate) fn selector(c: &Call) -> Option<&VectorSelector> {
    match c.args.args.get(1).map(|a| &**a) {
        Some(Expr::VectorSelector(vs)) => Some(vs),
        _ => None,
    }
}

/// The selector's matchers, completed with a name matcher: without any,
/// `__name__="target_info"`; with only negative ones, `__name__=~".+_info"`.
pub(crate) fn load_matchers(c: &Call) -> Result<Vec<Matcher>, Error> {
    let mut ms = match selector(c) {
        Some(vs) => selector_matchers(vs)?.swap_remove(0),
        None => Vec::new(),
    };
    let names = |ms: &[Matcher]| {
        ms.iter()
            .filter(|m| m.name == METRIC_NAME)
            .map(|m| m.op)
            .collect::<Vec<_>>()
    };
    let ops = names(&ms);
    if ops.is_empty() {
        ms.push(Matcher::eq(METRIC_NAME, "target_info"));
    } else if !ops
        .iter()
        .any(|op| matches!(op, MatchOp::Equal | MatchOp::Regex))
    {
        let any_info = Matcher::new(MatchOp::Regex, METRIC_NAME, ".+_info")
            .map_err(|e| Error::Execution(e.to_string()))?;
        ms.push(any_info);
    }
    Ok(ms)
}

/// The reference time of the info series for evaluation time `t`: the `@` and
/// `offset` on the way from the first argument to its first selector.
pub(crate) fn ref_time(ctx: &Ctx, e: &Expr, t: i64) -> i64 {
    match e {
        Expr::VectorSelector(vs) => ctx.ref_time(&vs.offset, &vs.at, t),
        Expr::MatrixSelector(ms) => ctx.ref_time(&ms.vs.offset, &ms.vs.at, t),
        Expr::Subquery(sq) => ref_time(ctx, &sq.expr, ctx.ref_time(&sq.offset, &sq.at, t)),
        Expr::Aggregate(a) => ref_time(ctx, &a.expr, t),
        Expr::Unary(u) => ref_time(ctx, &u.expr, t),
        Expr::Paren(p) => ref_time(ctx, &p.expr, t),
        Expr::Binary(b) => {
            if has_selector(&b.lhs) {
                ref_time(ctx, &b.lhs, t)
            } else {
                ref_time(ctx, &b.rhs, t)
            }
        }
        Expr::Call(c) => match c.args.args.iter().find(|a| has_selector(a)) {
            Some(a) => ref_time(ctx, a, t),
            None => t,
        },
        _ => t,
    }
}

fn has_selector(e: &Expr) -> bool {
    let mut found = false;
    crate::eval::visit_selectors(e, &mut |_| found = true);
    found
}

/// `(name, value)` of the identifying labels a series has.
type IdKey<'a> = Vec<(&'static str, &'a str)>;

/// The identifying labels of `l` as a key: `(name, value)` of those present.
fn id_key(l: &Labels) -> IdKey<'_> {
    IDENTIFYING
        .iter()
        .filter_map(|n| l.get(n).map(|v| (*n, v)))
        .collect()
}

pub(crate) fn eval(ctx: &mut Ctx, c: &Call, g: &Grid) -> Result<Val, Error> {
    let base = match ctx.eval(&c.args.args[0], g)? {
        Val::Vector(v) => v,
        other => {
            return Err(Error::Execution(format!(
                "info expects an instant vector, got {}",
                other.kind()
            )));
        }
    };
    let sel_matchers = load_matchers(c)?;
    // the name matchers say which metrics are info metrics; the others
    // which data labels to add
    let name_matchers: Vec<&Matcher> = sel_matchers
        .iter()
        .filter(|m| m.name == METRIC_NAME)
        .collect();
    let data_matchers: Vec<&Matcher> = sel_matchers
        .iter()
        .filter(|m| m.name != METRIC_NAME)
        .collect();
    let data_names: Vec<&str> = data_matchers.iter().map(|m| m.name.as_str()).collect();
    let empty_refused = data_matchers.iter().any(|m| !m.matches(""));
    let is_info = |l: &Labels| {
        let name = l.get(METRIC_NAME).unwrap_or("");
        name_matchers.iter().all(|m| m.matches(name))
    };

    // info series restricted to the identifying values the base series have
    let mut wanted: HashMap<&str, Vec<&str>> = HashMap::new();
    for s in base.iter().filter(|s| !is_info(&s.labels)) {
        for (n, v) in id_key(&s.labels) {
            let vals = wanted.entry(n).or_default();
            if !vals.contains(&v) {
                vals.push(v);
            }
        }
    }
    let loaded = ctx.take_info(c);
    if let Some(s) = loaded.iter().find(|s| !s.histograms.is_empty()) {
        return Err(Error::Execution(format!(
            "info series {} has native histogram samples: info series must hold floats",
            s.labels
        )));
    }
    let info: Vec<_> = if wanted.is_empty() {
        Vec::new()
    } else {
        loaded
            .into_iter()
            .filter(|s| {
                wanted
                    .iter()
                    .all(|(n, vals)| s.labels.get(n).is_some_and(|v| vals.contains(&v)))
            })
            .collect()
    };
    let ref_t: Vec<i64> = (0..g.n)
        .map(|i| ref_time(ctx, &c.args.args[0], g.t(i)))
        .collect();
    // per info series and step: the time of the sample in the lookback, in s
    let mut info_t: Vec<Vec<f64>> = Vec::with_capacity(info.len());
    for s in &info {
        let mut slots = vec![ABSENT; g.n];
        instant_slots(&s.samples, &ref_t, ctx.lookback, true, &mut slots);
        info_t.push(slots);
    }
    let mut names: Vec<&str> = info
        .iter()
        .map(|s| s.labels.get(METRIC_NAME).unwrap_or(""))
        .collect();
    names.sort_unstable();
    names.dedup();

    let mut out: Vec<VSeries> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    // (name, identifying labels) -> info series chosen at this step
    let mut chosen: HashMap<(&str, IdKey), usize> = HashMap::new();
    #[allow(clippy::needless_range_loop)] // steps index several per-step vectors
    for i in 0..g.n {
        chosen.clear();
        for (k, s) in info.iter().enumerate() {
            let t = info_t[k][i];
            if !has(t) {
                continue;
            }
            let key = (s.labels.get(METRIC_NAME).unwrap_or(""), id_key(&s.labels));
            match chosen.get(&key) {
                Some(&other) if info_t[other][i] > t => {}
                Some(&other) if info_t[other][i] == t => {
                    return Err(Error::Execution(format!(
                        "found duplicate series for info metric: existing {} @ {}, new {} @ {}",
                        info[other].labels,
                        (t * 1000.0) as i64,
                        s.labels,
                        (t * 1000.0) as i64
                    )));
                }
                _ => {
                    chosen.insert(key, k);
                }
            }
        }
        for s in &base {
            let v = s.vals[i];
            if !has(v) {
                continue;
            }
            let labels = if is_info(&s.labels) {
                s.labels.clone()
            } else {
                let ids = id_key(&s.labels);
                let mut add: Vec<(&str, &str)> = Vec::new();
                let mut seen = false;
                for name in &names {
                    let Some(&k) = chosen.get(&(*name, ids.clone())) else {
                        continue;
                    };
                    seen = true;
                    for l in info[k].labels.iter() {
                        if l.name == METRIC_NAME
                            || (!data_names.is_empty() && !data_names.contains(&l.name.as_str()))
                        {
                            continue;
                        }
                        if let Some(&(_, prev)) = add.iter().find(|(n, _)| *n == l.name) {
                            if prev != l.value {
                                return Err(Error::Execution(format!(
                                    "conflicting label: {}",
                                    l.name
                                )));
                            }
                            continue;
                        }
                        if s.labels.get(&l.name).is_none() {
                            add.push((&l.name, &l.value));
                        }
                    }
                }
                if !seen && empty_refused {
                    continue;
                }
                if add.is_empty() {
                    s.labels.clone()
                } else {
                    let mut b = s.labels.to_builder();
                    for (n, v) in add {
                        b.set(n, v);
                    }
                    b.build()
                }
            };
            let at = match index.get(&labels) {
                Some(&at) => at,
                None => {
                    index.insert(labels.clone(), out.len());
                    out.push(VSeries {
                        hist: None,
                        labels,
                        vals: vec![ABSENT; g.n],
                        dropped: s.dropped,
                    });
                    out.len() - 1
                }
            };
            if has(out[at].vals[i]) {
                return Err(Error::Execution(
                    "vector cannot contain metrics with the same labelset".into(),
                ));
            }
            out[at].vals[i] = v;
        }
    }
    Ok(Val::Vector(out))
}
