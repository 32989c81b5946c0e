//! The evaluator: preloads every selector's data once, then evaluates each node
//! of the expression once over the whole step grid.
//!
//! An instant vector over the grid is a list of series, each with its label set
//! (computed once) and one value slot per step; a slot holding [`ABSENT`] means
//! the series has no sample at that step. A range vector keeps each series'
//! samples and the reference time of every step; range functions walk it with
//! a moving window (two cursors per series), never re-slicing or copying.

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use day2_model::{Labels, METRIC_NAME, MatchOp, Matcher, Queryable, Sample, Series, is_stale_nan};
use promql_parser::parser::{AtModifier, Call, Expr, Offset, VectorSelector};

use crate::value::{QueryResult, RangeSeries, Value, VecSample};
use crate::{EngineOptions, Error};

/// Default subquery resolution when none is given (Prometheus's evaluation interval).
const DEFAULT_SUBQUERY_STEP: i64 = 60_000;

/// Bits of the "no value at this step" marker: a signalling NaN that arithmetic
/// never produces. Sample values with these bits are read as a plain NaN.
pub(crate) const ABSENT_BITS: u64 = 0x7ff0_0000_0000_0dad;
pub(crate) const ABSENT: f64 = f64::from_bits(ABSENT_BITS);

/// Whether a step slot holds a value.
#[inline(always)]
pub(crate) fn has(v: f64) -> bool {
    v.to_bits() != ABSENT_BITS
}

/// A stored value as the evaluator sees it (never the absence marker).
#[inline(always)]
fn canon(v: f64) -> f64 {
    if v.to_bits() == ABSENT_BITS {
        f64::NAN
    } else {
        v
    }
}

/// The evaluation times: `start + i * step` for `i` in `0..n`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grid {
    pub start: i64,
    pub step: i64,
    pub n: usize,
}

impl Grid {
    #[inline]
    pub(crate) fn t(&self, i: usize) -> i64 {
        self.start + self.step * i as i64
    }
}

/// One series of an instant vector over the grid.
#[derive(Debug, Clone)]
pub(crate) struct VSeries {
    pub labels: Labels,
    /// One slot per step; [`ABSENT`] where the series has no value.
    pub vals: Vec<f64>,
    /// `__name__` is to be dropped from `labels` at the end of the evaluation
    /// (Prometheus's delayed name removal: until then label functions and
    /// `by (__name__)` still see the name).
    pub dropped: bool,
}

impl VSeries {
    pub(crate) fn new(labels: Labels, vals: Vec<f64>) -> VSeries {
        VSeries {
            labels,
            vals,
            dropped: false,
        }
    }

    /// The value of label `name` (the name too when it is still to be dropped).
    #[inline]
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.labels.get(name)
    }

    /// Applies a deferred name drop.
    pub(crate) fn materialise(&mut self) {
        if self.dropped {
            self.labels = drop_name(&self.labels);
            self.dropped = false;
        }
    }
}

/// Applies deferred name drops to every series.
pub(crate) fn materialise(v: &mut [VSeries]) {
    v.iter_mut().for_each(VSeries::materialise);
}

/// A range vector over the grid.
#[derive(Debug, Clone)]
pub(crate) struct Matrix {
    /// Samples in time order, without staleness markers.
    pub series: Vec<Series>,
    /// Window length in ms: step `i` sees samples in `(ref_t[i] - range, ref_t[i]]`.
    pub range: i64,
    /// Reference time of each step (after `offset` and `@`), non-decreasing.
    pub ref_t: Vec<i64>,
    /// The selector's `anchored`/`smoothed` modifier.
    pub mode: Option<RangeMode>,
    /// The lookback delta (how far before a window an anchor may lie).
    pub lookback: i64,
}

/// The experimental modifiers of extended range selectors (Prometheus 3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum RangeMode {
    /// The window also takes the last sample at or before its start (within
    /// the lookback delta), or repeats its first sample there.
    Anchored,
    /// The window's ends are interpolated between the samples around them.
    Smoothed,
}

/// The `anchored`/`smoothed` modifier of a selector (a marker matcher the
/// query rewrite added).
pub(crate) fn range_mode(vs: &VectorSelector) -> Option<RangeMode> {
    vs.matchers
        .matchers
        .iter()
        .find(|m| m.name == crate::rewrite::EXT_LABEL)
        .map(|m| {
            if m.value == "smoothed" {
                RangeMode::Smoothed
            } else {
                RangeMode::Anchored
            }
        })
}

impl Matrix {
    /// Calls `f(step, window, ref_t)` for every step where the series' window is
    /// not empty; the windows move forward with two cursors.
    #[inline]
    pub(crate) fn for_windows(&self, samples: &[Sample], mut f: impl FnMut(usize, &[Sample], i64)) {
        let (mut lo, mut hi) = (0usize, 0usize);
        for (i, &rt) in self.ref_t.iter().enumerate() {
            while hi < samples.len() && samples[hi].t <= rt {
                hi += 1;
            }
            let from = rt - self.range;
            while lo < hi && samples[lo].t <= from {
                lo += 1;
            }
            if lo < hi {
                f(i, &samples[lo..hi], rt);
            }
        }
    }
}

/// An intermediate value over the grid.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    /// One value per step.
    Scalar(Vec<f64>),
    Str(String),
    Vector(Vec<VSeries>),
    Matrix(Matrix),
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
    at: Positions,
}

/// Where the calls and aggregations of the query are, for the `(line:col)`
/// Prometheus appends to annotations.
pub(crate) struct Positions {
    query: String,
    calls: HashMap<usize, crate::rewrite::CallPos>,
}

impl Positions {
    pub(crate) fn new(query: &str, calls: HashMap<usize, crate::rewrite::CallPos>) -> Positions {
        Positions {
            query: query.to_string(),
            calls,
        }
    }
}

/// A place in the query an annotation refers to: a call or aggregation
/// node (by address) and, with `Some(i)`, its `i`th argument.
pub(crate) type At = (usize, Option<usize>);

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

/// The labels that are the metric's identity and go when its name is dropped:
/// `__name__`, and the type and unit labels of Prometheus 3's type-and-unit
/// labels.
pub(crate) const NAME_LABELS: [&str; 3] = [METRIC_NAME, "__type__", "__unit__"];

/// Removes `__name__` (and `__type__`, `__unit__`).
pub(crate) fn drop_name(l: &Labels) -> Labels {
    if NAME_LABELS.iter().all(|n| l.get(n).is_none()) {
        return l.clone();
    }
    let mut b = l.to_builder();
    for n in NAME_LABELS {
        b.del(n);
    }
    b.build()
}

pub(crate) fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>, Error> {
    let conv = |ms: &[promql_parser::label::Matcher]| -> Result<Vec<Matcher>, Error> {
        let mut out = Vec::new();
        if let Some(n) = &vs.name {
            out.push(Matcher::eq(METRIC_NAME, n.clone()));
        }
        for m in ms {
            if m.name == crate::rewrite::EXT_LABEL || m.name == crate::rewrite::INFO_LABEL {
                continue;
            }
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

/// Calls `f` for every vector selector of `e` (also those under range
/// selectors and subqueries), left to right.
pub(crate) fn visit_selectors(e: &Expr, f: &mut impl FnMut(&VectorSelector)) {
    match e {
        Expr::VectorSelector(vs) => f(vs),
        Expr::MatrixSelector(ms) => f(&ms.vs),
        Expr::Subquery(sq) => visit_selectors(&sq.expr, f),
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                visit_selectors(p, f);
            }
            visit_selectors(&a.expr, f);
        }
        Expr::Unary(u) => visit_selectors(&u.expr, f),
        Expr::Binary(b) => {
            visit_selectors(&b.lhs, f);
            visit_selectors(&b.rhs, f);
        }
        Expr::Paren(p) => visit_selectors(&p.expr, f),
        Expr::Call(c) => c.args.args.iter().for_each(|a| visit_selectors(a, f)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// An instant selector's loaded series, not yet turned into step slots.
pub(crate) struct InstantSel {
    pub series: Vec<Series>,
    pub ref_t: Vec<i64>,
    pub lookback: i64,
    pub mode: Option<RangeMode>,
}

impl InstantSel {
    /// Fills `vals` with series `i`'s value at every reference time (see
    /// [`instant_slots`]; `smoothed` interpolates between the samples around
    /// it); false when no slot was filled.
    pub(crate) fn fill(&self, i: usize, timestamps: bool, vals: &mut [f64]) -> bool {
        let samples = &self.series[i].samples;
        if self.mode != Some(RangeMode::Smoothed) || timestamps {
            return instant_slots(samples, &self.ref_t, self.lookback, timestamps, vals);
        }
        let mut any = false;
        let mut idx = 0usize;
        for (slot, &rt) in vals.iter_mut().zip(&self.ref_t) {
            while idx < samples.len() && samples[idx].t <= rt {
                idx += 1;
            }
            if idx == 0 || samples[idx - 1].t <= rt - self.lookback {
                continue;
            }
            let a = samples[idx - 1];
            *slot = match samples.get(idx) {
                Some(b) if a.t < rt && b.t <= rt + self.lookback => {
                    a.v + (b.v - a.v) * (rt - a.t) as f64 / (b.t - a.t) as f64
                }
                _ => a.v,
            };
            any = true;
        }
        any
    }
}

/// Fills `vals` (one slot per reference time, pre-set to [`ABSENT`]) with the
/// last sample at or before each reference time within the lookback (its time
/// in seconds with `timestamps`); false when no slot was filled.
pub(crate) fn instant_slots(
    samples: &[Sample],
    ref_t: &[i64],
    lookback: i64,
    timestamps: bool,
    vals: &mut [f64],
) -> bool {
    let mut any = false;
    let mut idx = 0usize;
    for (i, &rt) in ref_t.iter().enumerate() {
        while idx < samples.len() && samples[idx].t <= rt {
            idx += 1;
        }
        if idx == 0 {
            continue;
        }
        let p = samples[idx - 1];
        if p.t <= rt - lookback || is_stale_nan(p.v) {
            continue;
        }
        vals[i] = if timestamps {
            p.t as f64 / 1000.0
        } else {
            canon(p.v)
        };
        any = true;
    }
    any
}

/// What a selector's data is loaded for.
struct Want {
    groups: Vec<Vec<Matcher>>,
    mint: i64,
    maxt: i64,
    /// Read as a range (staleness markers are dropped at load).
    range: bool,
}

impl Ctx {
    pub(crate) fn check_deadline(&self) -> Result<(), Error> {
        if Instant::now() > self.deadline {
            Err(Error::Timeout)
        } else {
            Ok(())
        }
    }

    /// ` (line:col)` of a place in the query, when known.
    fn position(&self, at: At) -> String {
        let Some(c) = self.at.calls.get(&at.0) else {
            return String::new();
        };
        let pos = match at.1 {
            None => Some(c.at),
            Some(i) => c.args.get(i).copied(),
        };
        pos.map_or(String::new(), |p| {
            format!(" ({})", crate::rewrite::line_col(&self.at.query, p))
        })
    }

    /// Adds a warning annotation (Prometheus's `PromQL warning: ... (l:c)`), once.
    pub(crate) fn warn(&mut self, msg: String, at: At) {
        let msg = format!("PromQL warning: {msg}{}", self.position(at));
        if !self.warnings.contains(&msg) {
            self.warnings.push(msg);
        }
    }

    /// Adds an info annotation (Prometheus's `PromQL info: ... (l:c)`), once.
    pub(crate) fn info(&mut self, msg: String, at: At) {
        let msg = format!("PromQL info: {msg}{}", self.position(at));
        if !self.infos.contains(&msg) {
            self.infos.push(msg);
        }
    }

    /// Fails when a value of `cells` step slots would exceed the sample limit.
    pub(crate) fn check_cells(&self, cells: usize) -> Result<(), Error> {
        if cells > self.max_samples {
            Err(Error::TooManySamples)
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

    fn ref_times(&self, offset: &Option<Offset>, at: &Option<AtModifier>, g: &Grid) -> Vec<i64> {
        (0..g.n)
            .map(|i| self.ref_time(offset, at, g.t(i)))
            .collect()
    }

    /// Walks the tree and records the time window each selector needs.
    fn windows(
        &self,
        e: &Expr,
        lo: i64,
        hi: i64,
        out: &mut HashMap<usize, Want>,
    ) -> Result<(), Error> {
        let lookback = self.lookback;
        let mut add = |vs: &VectorSelector, back: i64, range: bool| -> Result<(), Error> {
            // anchored/smoothed windows reach a lookback further back (and
            // smoothed ones forward); their staleness markers are ignored
            let mode = range_mode(vs);
            let back = back + if range && mode.is_some() { lookback } else { 0 };
            let fwd = if mode == Some(RangeMode::Smoothed) {
                lookback
            } else {
                0
            };
            let range = range || mode.is_some();
            let (l, h) = match &vs.at {
                Some(a) => {
                    let t = self.at_ms(a) - offset_ms(&vs.offset);
                    (t, t)
                }
                None => (lo - offset_ms(&vs.offset), hi - offset_ms(&vs.offset)),
            };
            let entry = match out.entry(key(vs)) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => v.insert(Want {
                    groups: selector_matchers(vs)?,
                    mint: i64::MAX,
                    maxt: i64::MIN,
                    range,
                }),
            };
            entry.mint = entry.mint.min(l - back);
            entry.maxt = entry.maxt.max(h + fwd);
            Ok(())
        };
        match e {
            Expr::VectorSelector(vs) => add(vs, self.lookback, false)?,
            Expr::MatrixSelector(ms) => add(&ms.vs, ms.range.as_millis() as i64, true)?,
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
            Expr::Call(c) if c.func.name == "info" => {
                let arg = &c.args.args[0];
                self.windows(arg, lo, hi, out)?;
                // the info series, as of the first argument's reference times
                let (a, b) = (
                    crate::info::ref_time(self, arg, lo),
                    crate::info::ref_time(self, arg, hi),
                );
                let entry = match out.entry(c as *const Call as usize) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => v.insert(Want {
                        groups: vec![crate::info::load_matchers(c)?],
                        mint: i64::MAX,
                        maxt: i64::MIN,
                        range: false,
                    }),
                };
                entry.mint = entry.mint.min(a.min(b) - self.lookback);
                entry.maxt = entry.maxt.max(a.max(b));
            }
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
        for (k, want) in w {
            let mut all: Vec<Series> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for g in &want.groups {
                for mut s in db
                    .select(g, want.mint, want.maxt)
                    .map_err(|e| Error::Storage(e.to_string()))?
                {
                    // `or` inside braces gives groups whose results may overlap
                    if want.groups.len() > 1 && !seen.insert(s.labels.clone()) {
                        continue;
                    }
                    loaded += s.samples.len();
                    if want.range {
                        // range functions read samples directly: no markers, canonical values
                        s.samples.retain_mut(|p| {
                            p.v = canon(p.v);
                            !is_stale_nan(p.v)
                        });
                        if s.samples.is_empty() {
                            continue;
                        }
                    }
                    all.push(s);
                }
                if loaded > self.max_samples {
                    return Err(Error::TooManySamples);
                }
            }
            self.data.insert(k, all);
            self.check_deadline()?;
        }
        Ok(())
    }

    /// Takes a selector's loaded series (each node is evaluated once).
    fn take(&mut self, vs: &VectorSelector) -> Vec<Series> {
        self.data.remove(&key(vs)).unwrap_or_default()
    }

    /// Takes the info series loaded for an `info()` call.
    pub(crate) fn take_info(&mut self, c: &Call) -> Vec<Series> {
        self.data
            .remove(&(c as *const Call as usize))
            .unwrap_or_default()
    }

    /// Instant-vector selection over the grid: the last sample at or before each
    /// step's reference time within the lookback, or with `timestamps` the time
    /// of that sample in seconds.
    pub(crate) fn select_instant(
        &mut self,
        vs: &VectorSelector,
        g: &Grid,
        timestamps: bool,
    ) -> Vec<VSeries> {
        let sel = self.take_instant(vs, g);
        let mut out = Vec::with_capacity(sel.series.len());
        for i in 0..sel.series.len() {
            let mut vals = vec![ABSENT; g.n];
            if sel.fill(i, timestamps, &mut vals) {
                out.push(VSeries::new(sel.series[i].labels.clone(), vals));
            }
        }
        out
    }

    /// A selector's series and reference times, for callers that compute the
    /// step slots of one series at a time (see [`instant_slots`]).
    pub(crate) fn take_instant(&mut self, vs: &VectorSelector, g: &Grid) -> InstantSel {
        InstantSel {
            ref_t: self.ref_times(&vs.offset, &vs.at, g),
            lookback: self.lookback,
            mode: range_mode(vs),
            series: self.take(vs),
        }
    }

    fn eval_subquery(
        &mut self,
        sq: &promql_parser::parser::SubqueryExpr,
        g: &Grid,
    ) -> Result<Val, Error> {
        let ref_t = self.ref_times(&sq.offset, &sq.at, g);
        let step = sq
            .step
            .map(|d| d.as_millis() as i64)
            .filter(|s| *s > 0)
            .unwrap_or(DEFAULT_SUBQUERY_STEP);
        let range = sq.range.as_millis() as i64;
        let (first, last) = (
            ref_t.first().copied().unwrap_or(0) - range,
            ref_t.last().copied().unwrap_or(0),
        );
        // inner steps are multiples of the step, after the first window's start
        let mut start = step * (first / step);
        if start <= first {
            start += step;
        }
        let mut series: Vec<Series> = Vec::new();
        if start <= last {
            let n = ((last - start) / step + 1) as usize;
            self.check_cells(n)?;
            let inner = Grid { start, step, n };
            match self.eval(&sq.expr, &inner)? {
                Val::Vector(mut v) => {
                    materialise(&mut v);
                    let mut index: HashMap<Labels, usize> = HashMap::new();
                    let mut held = 0usize;
                    for s in v {
                        let pts = s
                            .vals
                            .iter()
                            .enumerate()
                            .filter(|(_, v)| has(**v))
                            .map(|(i, v)| Sample::new(inner.t(i), *v));
                        match index.get(&s.labels) {
                            Some(&i) => {
                                let e: &mut Vec<Sample> = &mut series[i].samples;
                                e.extend(pts);
                                e.sort_by_key(|p| p.t);
                                held += e.len();
                            }
                            None => {
                                let samples: Vec<Sample> = pts.collect();
                                held += samples.len();
                                index.insert(s.labels.clone(), series.len());
                                series.push(Series {
                                    histograms: Vec::new(),
                                    labels: s.labels,
                                    samples,
                                });
                            }
                        }
                        if held > self.max_samples {
                            return Err(Error::TooManySamples);
                        }
                    }
                }
                Val::Scalar(v) => series.push(Series {
                    histograms: Vec::new(),
                    labels: Labels::empty(),
                    samples: v
                        .iter()
                        .enumerate()
                        .map(|(i, v)| Sample::new(inner.t(i), *v))
                        .collect(),
                }),
                other => {
                    return Err(Error::Execution(format!("subquery over {}", other.kind())));
                }
            }
        }
        Ok(Val::Matrix(Matrix {
            series,
            range,
            ref_t,
            mode: None,
            lookback: self.lookback,
        }))
    }

    pub(crate) fn eval(&mut self, e: &Expr, g: &Grid) -> Result<Val, Error> {
        self.check_deadline()?;
        Ok(match e {
            Expr::NumberLiteral(n) => Val::Scalar(vec![n.val; g.n]),
            Expr::StringLiteral(s) => Val::Str(s.val.clone()),
            Expr::Paren(p) => self.eval(&p.expr, g)?,
            Expr::Unary(u) => match self.eval(&u.expr, g)? {
                Val::Scalar(mut v) => {
                    v.iter_mut().for_each(|x| *x = -*x);
                    Val::Scalar(v)
                }
                Val::Vector(mut v) => {
                    for s in v.iter_mut() {
                        s.dropped = true;
                        for x in s.vals.iter_mut().filter(|x| has(**x)) {
                            *x = -*x;
                        }
                    }
                    Val::Vector(v)
                }
                other => return Err(Error::Execution(format!("unary minus on {}", other.kind()))),
            },
            Expr::VectorSelector(vs) => {
                let v = self.select_instant(vs, g, false);
                self.check_cells(v.len().saturating_mul(g.n))?;
                Val::Vector(v)
            }
            Expr::MatrixSelector(ms) => Val::Matrix(Matrix {
                series: self.take(&ms.vs),
                range: ms.range.as_millis() as i64,
                ref_t: self.ref_times(&ms.vs.offset, &ms.vs.at, g),
                mode: range_mode(&ms.vs),
                lookback: self.lookback,
            }),
            Expr::Subquery(sq) => self.eval_subquery(sq, g)?,
            Expr::Aggregate(a) => crate::aggregate::eval(self, a, g)?,
            Expr::Binary(b) => crate::binary::eval(self, b, g)?,
            Expr::Call(c) => crate::functions::call(self, c, g)?,
            Expr::Extension(_) => {
                return Err(Error::Execution(
                    "extension expressions are not supported".into(),
                ));
            }
        })
    }
}

fn duplicate_labelset() -> Error {
    Error::Execution("vector cannot contain metrics with the same labelset".into())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    db: &dyn Queryable,
    opts: &EngineOptions,
    expr: &Expr,
    start: i64,
    end: i64,
    step: i64,
    instant: bool,
    at: Positions,
) -> Result<QueryResult, Error> {
    let mut ctx = Ctx {
        at,
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
    let g = if instant {
        Grid {
            start,
            step: 1,
            n: 1,
        }
    } else {
        Grid {
            start,
            step,
            n: if end < start {
                0
            } else {
                ((end - start) / step + 1) as usize
            },
        }
    };
    let result = ctx.eval(expr, &g)?;
    let value = if instant {
        match result {
            Val::Scalar(v) => Value::Scalar(start, v[0]),
            Val::Str(s) => Value::String(start, s),
            Val::Vector(mut v) => {
                materialise(&mut v);
                let out: Vec<VecSample> = v
                    .into_iter()
                    .filter(|s| has(s.vals[0]))
                    .map(|s| VecSample {
                        labels: s.labels,
                        v: s.vals[0],
                    })
                    .collect();
                let mut seen = std::collections::HashSet::with_capacity(out.len());
                if !out.iter().all(|s| seen.insert(&s.labels)) {
                    return Err(duplicate_labelset());
                }
                Value::Vector(start, out)
            }
            Val::Matrix(m) => {
                let mut out = Vec::new();
                for s in &m.series {
                    let mut points = Vec::new();
                    m.for_windows(&s.samples, |_, w, _| {
                        points = w.iter().map(|p| (p.t, p.v)).collect();
                    });
                    if !points.is_empty() {
                        out.push(RangeSeries {
                            labels: s.labels.clone(),
                            points,
                        });
                    }
                }
                let mut seen = std::collections::HashSet::new();
                if !out.iter().all(|s| seen.insert(&s.labels)) {
                    return Err(duplicate_labelset());
                }
                Value::Matrix(out)
            }
        }
    } else {
        let series = match result {
            Val::Scalar(v) => vec![RangeSeries {
                labels: Labels::empty(),
                points: v
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (g.t(i), v))
                    .collect(),
            }],
            Val::Vector(v) => assemble(v, &g, ctx.max_samples)?,
            other => {
                return Err(Error::BadInput {
                    message: format!(
                        "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                        other.kind()
                    ),
                    position: None,
                });
            }
        };
        Value::Matrix(series)
    };
    Ok(QueryResult {
        value,
        warnings: ctx.warnings,
        infos: ctx.infos,
    })
}

/// Turns a vector over the grid into matrix rows: series with the same labels
/// (present at different steps) are merged, sorted by labels.
fn assemble(mut v: Vec<VSeries>, g: &Grid, max_samples: usize) -> Result<Vec<RangeSeries>, Error> {
    materialise(&mut v);
    let mut merged: Vec<VSeries> = Vec::with_capacity(v.len());
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(v.len());
    let mut held = 0usize;
    for s in v {
        match index.get(&s.labels) {
            Some(&i) => {
                let into = &mut merged[i].vals;
                for (a, b) in into.iter_mut().zip(&s.vals) {
                    if has(*b) {
                        if has(*a) {
                            return Err(duplicate_labelset());
                        }
                        *a = *b;
                    }
                }
            }
            None => {
                index.insert(s.labels.clone(), merged.len());
                merged.push(s);
            }
        }
    }
    let mut out: Vec<RangeSeries> = Vec::with_capacity(merged.len());
    for s in merged {
        let points: Vec<(i64, f64)> = s
            .vals
            .iter()
            .enumerate()
            .filter(|(_, v)| has(**v))
            .map(|(i, v)| (g.t(i), *v))
            .collect();
        held += points.len();
        if held > max_samples {
            return Err(Error::TooManySamples);
        }
        if !points.is_empty() {
            out.push(RangeSeries {
                labels: s.labels,
                points,
            });
        }
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}
