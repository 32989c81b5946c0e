//! The evaluator: preloads every selector's data once, then walks the
//! expression at each step.

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use day2_model::{Labels, METRIC_NAME, MatchOp, Matcher, Queryable, Series, is_stale_nan};
use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};

use crate::value::{QueryResult, RangeSeries, Value, VecSample};
use crate::{EngineOptions, Error};

/// Default subquery resolution when none is given (Prometheus's evaluation interval).
const DEFAULT_SUBQUERY_STEP: i64 = 60_000;

/// An intermediate value.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Scalar(f64),
    Str(String),
    Vector(Vec<VecSample>),
    Matrix(Vec<RangeSeries>),
}

impl Val {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Val::Scalar(_) => "scalar",
            Val::Str(_) => "string",
            Val::Vector(_) => "instant vector",
            Val::Matrix(_) => "range vector",
        }
    }
}

pub(crate) struct Ctx {
    pub start: i64,
    pub end: i64,
    pub step: i64,
    pub lookback: i64,
    data: HashMap<usize, Vec<Series>>,
    deadline: Instant,
    pub max_samples: usize,
    pub infos: Vec<String>,
    pub warnings: Vec<String>,
}

fn key(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
        None => 0,
    }
}

fn system_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// Removes `__name__`.
pub(crate) fn drop_name(l: &Labels) -> Labels {
    if l.get(METRIC_NAME).is_none() {
        return l.clone();
    }
    let mut b = l.to_builder();
    b.del(METRIC_NAME);
    b.build()
}

pub(crate) fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>, Error> {
    let conv = |ms: &[promql_parser::label::Matcher]| -> Result<Vec<Matcher>, Error> {
        let mut out = Vec::new();
        if let Some(n) = &vs.name {
            out.push(Matcher::eq(METRIC_NAME, n.clone()));
        }
        for m in ms {
            let op = match m.op {
                promql_parser::label::MatchOp::Equal => MatchOp::Equal,
                promql_parser::label::MatchOp::NotEqual => MatchOp::NotEqual,
                promql_parser::label::MatchOp::Re(_) => MatchOp::Regex,
                promql_parser::label::MatchOp::NotRe(_) => MatchOp::NotRegex,
            };
            out.push(
                Matcher::new(op, m.name.clone(), m.value.clone()).map_err(|e| Error::BadInput {
                    message: e.to_string(),
                    position: None,
                })?,
            );
        }
        Ok(out)
    };
    let mut groups = vec![conv(&vs.matchers.matchers)?];
    for g in &vs.matchers.or_matchers {
        groups.push(conv(g)?);
    }
    Ok(groups)
}

impl Ctx {
    pub(crate) fn check_deadline(&self) -> Result<(), Error> {
        if Instant::now() > self.deadline {
            Err(Error::Timeout)
        } else {
            Ok(())
        }
    }

    fn at_ms(&self, at: &AtModifier) -> i64 {
        match at {
            AtModifier::Start => self.start,
            AtModifier::End => self.end,
            AtModifier::At(t) => system_ms(t),
        }
    }

    /// The time a selector or subquery evaluated at `t` refers to.
    pub(crate) fn ref_time(&self, offset: &Option<Offset>, at: &Option<AtModifier>, t: i64) -> i64 {
        at.as_ref().map(|a| self.at_ms(a)).unwrap_or(t) - offset_ms(offset)
    }

    /// Walks the tree and records the time window each selector needs.
    fn windows(
        &self,
        e: &Expr,
        lo: i64,
        hi: i64,
        out: &mut HashMap<usize, (Vec<Vec<Matcher>>, i64, i64)>,
    ) -> Result<(), Error> {
        let mut add = |vs: &VectorSelector, back: i64| -> Result<(), Error> {
            let (l, h) = match &vs.at {
                Some(a) => {
                    let t = self.at_ms(a) - offset_ms(&vs.offset);
                    (t, t)
                }
                None => (lo - offset_ms(&vs.offset), hi - offset_ms(&vs.offset)),
            };
            let entry = out
                .entry(key(vs))
                .or_insert((selector_matchers(vs)?, i64::MAX, i64::MIN));
            entry.1 = entry.1.min(l - back);
            entry.2 = entry.2.max(h);
            Ok(())
        };
        match e {
            Expr::VectorSelector(vs) => add(vs, self.lookback)?,
            Expr::MatrixSelector(ms) => add(&ms.vs, ms.range.as_millis() as i64)?,
            Expr::Subquery(sq) => {
                let (l, h) = match &sq.at {
                    Some(a) => {
                        let t = self.at_ms(a) - offset_ms(&sq.offset);
                        (t, t)
                    }
                    None => (lo - offset_ms(&sq.offset), hi - offset_ms(&sq.offset)),
                };
                self.windows(&sq.expr, l - sq.range.as_millis() as i64, h, out)?;
            }
            Expr::Aggregate(a) => {
                self.windows(&a.expr, lo, hi, out)?;
                if let Some(p) = &a.param {
                    self.windows(p, lo, hi, out)?;
                }
            }
            Expr::Unary(u) => self.windows(&u.expr, lo, hi, out)?,
            Expr::Binary(b) => {
                self.windows(&b.lhs, lo, hi, out)?;
                self.windows(&b.rhs, lo, hi, out)?;
            }
            Expr::Paren(p) => self.windows(&p.expr, lo, hi, out)?,
            Expr::Call(c) => {
                for a in &c.args.args {
                    self.windows(a, lo, hi, out)?;
                }
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
        Ok(())
    }

    fn preload(&mut self, db: &dyn Queryable, e: &Expr) -> Result<(), Error> {
        let mut w = HashMap::new();
        self.windows(e, self.start, self.end, &mut w)?;
        let mut loaded = 0usize;
        for (k, (groups, mint, maxt)) in w {
            let mut all: Vec<Series> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for g in &groups {
                for s in db
                    .select(g, mint, maxt)
                    .map_err(|e| Error::Storage(e.to_string()))?
                {
                    // `or` inside braces gives groups whose results may overlap
                    if groups.len() == 1 || seen.insert(s.labels.clone()) {
                        loaded += s.samples.len();
                        all.push(s);
                    }
                }
            }
            if loaded > self.max_samples {
                return Err(Error::TooManySamples);
            }
            self.data.insert(k, all);
            self.check_deadline()?;
        }
        Ok(())
    }

    /// Instant-vector selection at `t`, optionally with each sample's own timestamp.
    pub(crate) fn select_instant(&self, vs: &VectorSelector, t: i64) -> Vec<(VecSample, i64)> {
        let ref_t = self.ref_time(&vs.offset, &vs.at, t);
        let mut out = Vec::new();
        for s in self.data.get(&key(vs)).map(Vec::as_slice).unwrap_or(&[]) {
            let idx = s.samples.partition_point(|p| p.t <= ref_t);
            if idx == 0 {
                continue;
            }
            let p = s.samples[idx - 1];
            if p.t <= ref_t - self.lookback || is_stale_nan(p.v) {
                continue;
            }
            out.push((
                VecSample {
                    labels: s.labels.clone(),
                    v: p.v,
                },
                p.t,
            ));
        }
        out
    }

    fn select_range(&self, vs: &VectorSelector, range: i64, t: i64) -> Vec<RangeSeries> {
        let ref_t = self.ref_time(&vs.offset, &vs.at, t);
        let mut out = Vec::new();
        for s in self.data.get(&key(vs)).map(Vec::as_slice).unwrap_or(&[]) {
            let lo = s.samples.partition_point(|p| p.t <= ref_t - range);
            let hi = s.samples.partition_point(|p| p.t <= ref_t);
            let points: Vec<(i64, f64)> = s.samples[lo..hi]
                .iter()
                .filter(|p| !is_stale_nan(p.v))
                .map(|p| (p.t, p.v))
                .collect();
            if !points.is_empty() {
                out.push(RangeSeries {
                    labels: s.labels.clone(),
                    points,
                });
            }
        }
        out
    }

    pub(crate) fn eval(&mut self, e: &Expr, t: i64) -> Result<Val, Error> {
        Ok(match e {
            Expr::NumberLiteral(n) => Val::Scalar(n.val),
            Expr::StringLiteral(s) => Val::Str(s.val.clone()),
            Expr::Paren(p) => self.eval(&p.expr, t)?,
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Val::Scalar(v) => Val::Scalar(-v),
                Val::Vector(v) => Val::Vector(
                    v.into_iter()
                        .map(|s| VecSample {
                            labels: drop_name(&s.labels),
                            v: -s.v,
                        })
                        .collect(),
                ),
                other => return Err(Error::Execution(format!("unary minus on {}", other.kind()))),
            },
            Expr::VectorSelector(vs) => {
                self.check_deadline()?;
                Val::Vector(
                    self.select_instant(vs, t)
                        .into_iter()
                        .map(|(s, _)| s)
                        .collect(),
                )
            }
            Expr::MatrixSelector(ms) => {
                self.check_deadline()?;
                Val::Matrix(self.select_range(&ms.vs, ms.range.as_millis() as i64, t))
            }
            Expr::Subquery(sq) => {
                let ref_t = self.ref_time(&sq.offset, &sq.at, t);
                let step = sq
                    .step
                    .map(|d| d.as_millis() as i64)
                    .filter(|s| *s > 0)
                    .unwrap_or(DEFAULT_SUBQUERY_STEP);
                let mint = ref_t - sq.range.as_millis() as i64;
                let mut start = step * (mint / step);
                if start <= mint {
                    start += step;
                }
                let mut series: Vec<RangeSeries> = Vec::new();
                let mut index: HashMap<Labels, usize> = HashMap::new();
                let mut ts = start;
                // an upper bound of the points held (every series at every step so far)
                let mut held: usize;
                while ts <= ref_t {
                    match self.eval(&sq.expr, ts)? {
                        Val::Vector(v) => {
                            for s in v {
                                let i = *index.entry(s.labels.clone()).or_insert_with(|| {
                                    series.push(RangeSeries {
                                        labels: s.labels.clone(),
                                        points: Vec::new(),
                                    });
                                    series.len() - 1
                                });
                                series[i].points.push((ts, s.v));
                            }
                        }
                        Val::Scalar(v) => {
                            if series.is_empty() {
                                series.push(RangeSeries {
                                    labels: Labels::empty(),
                                    points: Vec::new(),
                                });
                            }
                            series[0].points.push((ts, v));
                        }
                        other => {
                            return Err(Error::Execution(format!(
                                "subquery over {}",
                                other.kind()
                            )));
                        }
                    }
                    ts += step;
                    held = series.len() * ((ts - start) / step) as usize;
                    if held > self.max_samples {
                        return Err(Error::TooManySamples);
                    }
                }
                Val::Matrix(series)
            }
            Expr::Aggregate(a) => crate::aggregate::eval(self, a, t)?,
            Expr::Binary(b) => crate::binary::eval(self, b, t)?,
            Expr::Call(c) => crate::functions::call(self, c, t)?,
            Expr::Extension(_) => {
                return Err(Error::Execution(
                    "extension expressions are not supported".into(),
                ));
            }
        })
    }
}

fn check_duplicates(v: &[VecSample]) -> Result<(), Error> {
    let mut seen = std::collections::HashSet::with_capacity(v.len());
    for s in v {
        if !seen.insert(&s.labels) {
            return Err(Error::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

pub(crate) fn run(
    db: &dyn Queryable,
    opts: &EngineOptions,
    expr: &Expr,
    start: i64,
    end: i64,
    step: i64,
    instant: bool,
) -> Result<QueryResult, Error> {
    let mut ctx = Ctx {
        start,
        end,
        step,
        lookback: opts.lookback_delta.as_millis() as i64,
        data: HashMap::new(),
        deadline: Instant::now() + opts.timeout,
        max_samples: opts.max_samples,
        infos: Vec::new(),
        warnings: Vec::new(),
    };
    ctx.preload(db, expr)?;
    let value = if instant {
        match ctx.eval(expr, start)? {
            Val::Scalar(v) => Value::Scalar(start, v),
            Val::Str(s) => Value::String(start, s),
            Val::Vector(v) => {
                check_duplicates(&v)?;
                Value::Vector(start, v)
            }
            Val::Matrix(m) => {
                let mut seen = std::collections::HashSet::new();
                for s in &m {
                    if !seen.insert(&s.labels) {
                        return Err(Error::Execution(
                            "vector cannot contain metrics with the same labelset".into(),
                        ));
                    }
                }
                Value::Matrix(m)
            }
        }
    } else {
        let mut series: Vec<RangeSeries> = Vec::new();
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut t = start;
        let mut held = 0usize;
        while t <= end {
            ctx.check_deadline()?;
            match ctx.eval(expr, t)? {
                Val::Scalar(v) => {
                    if series.is_empty() {
                        series.push(RangeSeries {
                            labels: Labels::empty(),
                            points: Vec::new(),
                        });
                    }
                    series[0].points.push((t, v));
                    held += 1;
                }
                Val::Vector(v) => {
                    check_duplicates(&v)?;
                    held += v.len();
                    for s in v {
                        let i = *index.entry(s.labels.clone()).or_insert_with(|| {
                            series.push(RangeSeries {
                                labels: s.labels.clone(),
                                points: Vec::new(),
                            });
                            series.len() - 1
                        });
                        series[i].points.push((t, s.v));
                    }
                }
                other => {
                    return Err(Error::BadInput {
                        message: format!(
                            "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                            other.kind()
                        ),
                        position: None,
                    });
                }
            }
            if held > ctx.max_samples {
                return Err(Error::TooManySamples);
            }
            t += step;
        }
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Value::Matrix(series)
    };
    Ok(QueryResult {
        value,
        warnings: ctx.warnings,
        infos: ctx.infos,
    })
}
