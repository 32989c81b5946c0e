//! The evaluator: preloads every selector's data once, then evaluates each node
//! of the expression once over the whole step grid.
//!
//! An instant vector over the grid is a list of series, each with its label set
//! (computed once) and one value slot per step; a slot holding [`ABSENT`] means
//! the series has no sample at that step. A range vector keeps each series'
//! samples and the reference time of every step; range functions walk it with
//! a moving window (two cursors per series), never re-slicing or copying.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use day2_model::{
    FloatHistogram, HistogramSample, Labels, METRIC_NAME, MatchOp, Matcher, Queryable, Sample,
    Series, is_stale_nan,
};
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

/// A native-histogram value (shared: a selector hands the same stored
/// histogram to every step that sees it).
pub(crate) type H = Arc<FloatHistogram>;

/// Histogram slots of a series over the grid, `None` where it has none.
pub(crate) type HSlots = Vec<Option<H>>;

/// One series of an instant vector over the grid.
#[derive(Debug, Clone)]
pub(crate) struct VSeries {
    pub labels: Labels,
    /// One slot per step; [`ABSENT`] where the series has no float value.
    pub vals: Vec<f64>,
    /// Histogram values, for series that have any: a step holds a float or
    /// a histogram, never both (its float slot is then [`ABSENT`]).
    pub hist: Option<HSlots>,
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
            hist: None,
            dropped: false,
        }
    }

    /// The histogram at step `i`, if any.
    #[inline]
    pub(crate) fn h(&self, i: usize) -> Option<&H> {
        self.hist.as_ref().and_then(|h| h[i].as_ref())
    }

    /// Whether step `i` holds a float or a histogram.
    #[inline]
    pub(crate) fn present(&self, i: usize) -> bool {
        has(self.vals[i]) || self.h(i).is_some()
    }

    /// Puts a histogram at step `i` (replacing a float there).
    pub(crate) fn set_h(&mut self, i: usize, h: H) {
        let n = self.vals.len();
        self.hist.get_or_insert_with(|| vec![None; n])[i] = Some(h);
        self.vals[i] = ABSENT;
    }

    /// Removes the value at step `i`.
    pub(crate) fn clear(&mut self, i: usize) {
        self.vals[i] = ABSENT;
        if let Some(h) = self.hist.as_mut() {
            h[i] = None;
        }
    }

    /// Whether any step holds a float or a histogram.
    pub(crate) fn any(&self) -> bool {
        self.vals.iter().any(|v| has(*v))
            || self
                .hist
                .as_ref()
                .is_some_and(|h| h.iter().any(Option::is_some))
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

impl Matrix {
    /// Like [`Matrix::for_windows`] over a series' float and histogram
    /// samples together: `f(step, floats, histograms, ref_t)` for every step
    /// where either window is not empty.
    pub(crate) fn for_windows_both(
        &self,
        s: &Series,
        mut f: impl FnMut(usize, &[Sample], &[HistogramSample], i64),
    ) {
        let (fs, hs) = (&s.samples, &s.histograms);
        let (mut lo, mut hi, mut hlo, mut hhi) = (0usize, 0usize, 0usize, 0usize);
        for (i, &rt) in self.ref_t.iter().enumerate() {
            let from = rt - self.range;
            while hi < fs.len() && fs[hi].t <= rt {
                hi += 1;
            }
            while lo < hi && fs[lo].t <= from {
                lo += 1;
            }
            while hhi < hs.len() && hs[hhi].t <= rt {
                hhi += 1;
            }
            while hlo < hhi && hs[hlo].t <= from {
                hlo += 1;
            }
            if lo < hi || hlo < hhi {
                f(i, &fs[lo..hi], &hs[hlo..hhi], rt);
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
    /// The root expression's address (a binary operation at the root starts
    /// where the query does).
    root: usize,
    /// Selectors that are direct arguments of calls and aggregations: their place.
    sel_at: HashMap<usize, At>,
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
            // a name that is not UTF-8 is no stored label's: it matches as absent
            let (op, value) = crate::gostr::matcher(op, &m.value)?;
            out.push(
                Matcher::new(op, m.name.clone(), value).map_err(|e| Error::BadInput {
                    message: e.to_string(),
                    position: None,
                })?,
            );
        }
        // a value that is not UTF-8 may have made every matcher match the
        // empty string, which the parser could not see
        let bytes = ms.iter().any(|m| crate::gostr::invalid(&m.value).is_some());
        let info = ms.iter().any(|m| m.name == crate::rewrite::INFO_LABEL);
        if bytes && !info && out.iter().all(|m| m.matches("")) {
            return Err(Error::BadInput {
                message: "invalid parameter \"query\": vector selector must contain at least one non-empty matcher".into(),
                position: None,
            });
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
    /// Whether any selected series has histogram samples.
    pub(crate) fn has_histograms(&self) -> bool {
        self.series.iter().any(|s| !s.histograms.is_empty())
    }

    /// Like [`InstantSel::fill`], also giving the histogram slots when the
    /// series has histogram samples (`smoothed` selectors interpolate floats only).
    pub(crate) fn fill_both(
        &self,
        i: usize,
        timestamps: bool,
        vals: &mut [f64],
    ) -> (bool, Option<HSlots>) {
        let s = &self.series[i];
        if s.histograms.is_empty() {
            return (self.fill(i, timestamps, vals), None);
        }
        mixed_slots(s, &self.ref_t, self.lookback, timestamps, vals)
    }

    /// Every selected series as a vector over the grid.
    pub(crate) fn into_vseries(self, n: usize) -> Vec<VSeries> {
        let mut out = Vec::with_capacity(self.series.len());
        for i in 0..self.series.len() {
            let mut vals = vec![ABSENT; n];
            let (any, hist) = self.fill_both(i, false, &mut vals);
            if any {
                let mut v = VSeries::new(self.series[i].labels.clone(), vals);
                v.hist = hist;
                out.push(v);
            }
        }
        out
    }

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
        if let Some(v) = float_slot(samples[idx - 1], rt, lookback, timestamps) {
            vals[i] = v;
            any = true;
        }
    }
    any
}

/// What an instant selector at `rt` shows of the float sample `p` before it:
/// its value (or time, with `timestamps`), nothing when out of the lookback
/// or a staleness marker.
#[inline]
fn float_slot(p: Sample, rt: i64, lookback: i64, timestamps: bool) -> Option<f64> {
    if p.t <= rt - lookback || is_stale_nan(p.v) {
        return None;
    }
    Some(if timestamps {
        p.t as f64 / 1000.0
    } else {
        canon(p.v)
    })
}

/// Float and histogram slots of a series holding both kinds: at each
/// reference time the newest sample of either kind within the lookback (none
/// if it is a staleness marker); with `timestamps` its time in seconds.
pub(crate) fn mixed_slots(
    s: &Series,
    ref_t: &[i64],
    lookback: i64,
    timestamps: bool,
    vals: &mut [f64],
) -> (bool, Option<HSlots>) {
    let (fs, hs) = (&s.samples, &s.histograms);
    let mut hist: HSlots = vec![None; ref_t.len()];
    let (mut fi, mut hi) = (0usize, 0usize);
    let mut any = false;
    let mut any_h = false;
    for (i, &rt) in ref_t.iter().enumerate() {
        while fi < fs.len() && fs[fi].t <= rt {
            fi += 1;
        }
        while hi < hs.len() && hs[hi].t <= rt {
            hi += 1;
        }
        let f = (fi > 0).then(|| fs[fi - 1]);
        let h = (hi > 0).then(|| &hs[hi - 1]);
        match (f, h) {
            (Some(p), h) if h.is_none_or(|h| h.t < p.t) => {
                match float_slot(p, rt, lookback, timestamps) {
                    Some(v) => vals[i] = v,
                    None => continue,
                }
            }
            (_, Some(h)) => {
                if h.t <= rt - lookback || h.h.is_stale() {
                    continue;
                }
                if timestamps {
                    vals[i] = h.t as f64 / 1000.0;
                } else {
                    hist[i] = Some(h.h.clone());
                    any_h = true;
                }
            }
            _ => continue,
        }
        any = true;
    }
    (any, any_h.then_some(hist))
}

/// The selectors whose histograms only feed `histogram_count`,
/// `histogram_sum` or `histogram_avg`: Prometheus reads those through its
/// statistics-only iterator, which resolves "unknown" counter reset hints by
/// comparing each histogram with the one before it. Binary operations,
/// subqueries, `histogram_quantile` and `histogram_fraction` end that reading.
fn stats_selectors(e: &Expr, stats: bool, out: &mut std::collections::HashSet<usize>) {
    match e {
        Expr::VectorSelector(vs) if stats => {
            out.insert(key(vs));
        }
        Expr::MatrixSelector(ms) if stats => {
            out.insert(key(&ms.vs));
        }
        Expr::Call(c) => {
            let inner = match c.func.name {
                "histogram_count" | "histogram_sum" | "histogram_avg" => true,
                "histogram_quantile" | "histogram_quantiles" | "histogram_fraction" => false,
                _ => stats,
            };
            for a in &c.args.args {
                stats_selectors(a, inner, out);
            }
        }
        Expr::Aggregate(a) => {
            stats_selectors(&a.expr, stats, out);
            if let Some(p) = &a.param {
                stats_selectors(p, stats, out);
            }
        }
        Expr::Binary(b) => {
            stats_selectors(&b.lhs, false, out);
            stats_selectors(&b.rhs, false, out);
        }
        Expr::Subquery(sq) => stats_selectors(&sq.expr, false, out),
        Expr::Unary(u) => stats_selectors(&u.expr, stats, out),
        Expr::Paren(p) => stats_selectors(&p.expr, stats, out),
        _ => {}
    }
}

/// Resolves "unknown" counter reset hints as the statistics-only iterator
/// does: "reset" or "not reset" against the previous histogram read.
fn stats_hints(s: &mut Series) {
    use day2_model::CounterResetHint::{NotReset, Reset, Unknown};
    let mut prev: Option<H> = None;
    for p in s.histograms.iter_mut() {
        if p.h.is_stale() {
            continue;
        }
        if p.h.hint == Unknown
            && let Some(before) = &prev
        {
            let hint = if p.h.detect_reset(before) {
                Reset
            } else {
                NotReset
            };
            Arc::make_mut(&mut p.h).hint = hint;
        }
        prev = Some(p.h.clone());
    }
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

    /// The place of a binary operation, for its annotations: where its
    /// leftmost call or aggregation starts, or the query's start for the root.
    pub(crate) fn binary_at(&mut self, b: &promql_parser::parser::BinaryExpr) -> At {
        let key = b as *const promql_parser::parser::BinaryExpr as usize;
        if !self.at.calls.contains_key(&key) {
            let mut e: &Expr = &b.lhs;
            let start = loop {
                match e {
                    Expr::Binary(x) => e = &x.lhs,
                    Expr::Paren(_) => break None,
                    Expr::Call(c) => {
                        break self
                            .at
                            .calls
                            .get(&(c as *const Call as usize))
                            .map(|p| p.at);
                    }
                    Expr::Aggregate(a) => {
                        break self
                            .at
                            .calls
                            .get(&(a as *const promql_parser::parser::AggregateExpr as usize))
                            .map(|p| p.at);
                    }
                    _ => break None,
                }
            };
            let start = start.or_else(|| {
                (self.root == key).then(|| self.at.query.len() - self.at.query.trim_start().len())
            });
            if let Some(at) = start {
                self.at.calls.insert(
                    key,
                    crate::rewrite::CallPos {
                        at,
                        args: Vec::new(),
                    },
                );
            }
        }
        (key, None)
    }

    /// Adds the annotations gathered in `n` at `at`.
    pub(crate) fn notes(&mut self, n: crate::nativehist::Notes, at: At) {
        for w in n.warn {
            self.warn(w, at);
        }
        for i in n.info {
            self.info(i, at);
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
        let mut stats = std::collections::HashSet::new();
        stats_selectors(e, false, &mut stats);
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
                    loaded += s.len();
                    if want.range {
                        // range functions read samples directly: no markers, canonical values
                        s.samples.retain_mut(|p| {
                            p.v = canon(p.v);
                            !is_stale_nan(p.v)
                        });
                        s.histograms.retain(|h| !h.h.is_stale());
                        if s.is_empty() {
                            continue;
                        }
                    }
                    all.push(s);
                }
                if loaded > self.max_samples {
                    return Err(Error::TooManySamples);
                }
            }
            if stats.contains(&k) {
                all.iter_mut().for_each(stats_hints);
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
        let mut notes = crate::nativehist::Notes::default();
        for i in 0..sel.series.len() {
            let mut vals = vec![ABSENT; g.n];
            let s = &sel.series[i];
            let (any, hist) =
                if sel.mode == Some(RangeMode::Smoothed) && !timestamps && !s.histograms.is_empty()
                {
                    smoothed_slots(s, &sel.ref_t, sel.lookback, &mut vals, &mut notes)
                } else {
                    sel.fill_both(i, timestamps, &mut vals)
                };
            if any {
                let mut v = VSeries::new(sel.series[i].labels.clone(), vals);
                v.hist = hist;
                out.push(v);
            }
        }
        if !notes.warn.is_empty() || !notes.info.is_empty() {
            let at = self.selector_at(vs);
            self.notes(notes, at);
        }
        out
    }

    /// The place of a selector for its annotations: as an argument of a call
    /// or aggregation, or the whole query.
    fn selector_at(&mut self, vs: &VectorSelector) -> At {
        let k = key(vs);
        if let Some(at) = self.sel_at.get(&k) {
            return *at;
        }
        if self.root == k {
            let at = self.at.query.len() - self.at.query.trim_start().len();
            self.at.calls.insert(
                k,
                crate::rewrite::CallPos {
                    at,
                    args: Vec::new(),
                },
            );
        }
        (k, None)
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
                        let hpts: Vec<HistogramSample> = match &s.hist {
                            Some(h) => {
                                let mut prev: Option<&H> = None;
                                h.iter()
                                    .enumerate()
                                    .filter_map(|(i, h)| {
                                        let h = h.as_ref()?;
                                        // a stored sample seen again at the next
                                        // step is not another counter reset
                                        let repeat = prev.is_some_and(|p| Arc::ptr_eq(p, h));
                                        prev = Some(h);
                                        let h = if repeat
                                            && h.hint == day2_model::CounterResetHint::Reset
                                        {
                                            let mut x = (**h).clone();
                                            x.hint = day2_model::CounterResetHint::NotReset;
                                            Arc::new(x)
                                        } else {
                                            h.clone()
                                        };
                                        Some(HistogramSample { t: inner.t(i), h })
                                    })
                                    .collect()
                            }
                            None => Vec::new(),
                        };
                        match index.get(&s.labels) {
                            Some(&i) => {
                                let e = &mut series[i];
                                e.samples.extend(pts);
                                e.samples.sort_by_key(|p| p.t);
                                e.histograms.extend(hpts);
                                e.histograms.sort_by_key(|p| p.t);
                                held += e.len();
                            }
                            None => {
                                let samples: Vec<Sample> = pts.collect();
                                held += samples.len() + hpts.len();
                                index.insert(s.labels.clone(), series.len());
                                series.push(Series {
                                    histograms: hpts,
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
                        for h in s.hist.iter_mut().flatten().flatten() {
                            let mut n = (**h).clone();
                            n.mul(-1.0);
                            *h = Arc::new(n);
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

/// The address of the root expression, through parentheses.
fn root_key(e: &Expr) -> usize {
    match e {
        Expr::Paren(p) => root_key(&p.expr),
        Expr::Binary(b) => b as *const promql_parser::parser::BinaryExpr as usize,
        Expr::VectorSelector(vs) => key(vs),
        other => other as *const Expr as usize,
    }
}

/// Selectors that are (through parentheses) arguments of calls and
/// aggregations, with the argument's place.
fn selector_args(e: &Expr, out: &mut HashMap<usize, At>) {
    fn strip(mut a: &Expr) -> &Expr {
        while let Expr::Paren(p) = a {
            a = &p.expr;
        }
        a
    }
    match e {
        Expr::Call(c) => {
            for (i, a) in c.args.args.iter().enumerate() {
                if let Expr::VectorSelector(vs) = strip(a) {
                    out.insert(key(vs), (c as *const Call as usize, Some(i)));
                }
                selector_args(a, out);
            }
        }
        Expr::Aggregate(a) => {
            if let Expr::VectorSelector(vs) = strip(&a.expr) {
                out.insert(
                    key(vs),
                    (
                        a as *const promql_parser::parser::AggregateExpr as usize,
                        Some(usize::from(a.param.is_some())),
                    ),
                );
            }
            selector_args(&a.expr, out);
            if let Some(p) = &a.param {
                selector_args(p, out);
            }
        }
        Expr::Binary(b) => {
            selector_args(&b.lhs, out);
            selector_args(&b.rhs, out);
        }
        Expr::Subquery(sq) => selector_args(&sq.expr, out),
        Expr::Unary(u) => selector_args(&u.expr, out),
        Expr::Paren(p) => selector_args(&p.expr, out),
        _ => {}
    }
}

/// Slots of a `smoothed` instant selector over a series with histograms:
/// between the last sample at or before each step (within the lookback) and
/// the first after it, interpolated (a counter reset between two histograms
/// restarts from zero); no value where the two are of different kinds.
fn smoothed_slots(
    s: &Series,
    ref_t: &[i64],
    lookback: i64,
    vals: &mut [f64],
    notes: &mut crate::nativehist::Notes,
) -> (bool, Option<HSlots>) {
    let metric = s.labels.get(METRIC_NAME).unwrap_or("");
    let (fs, hs) = (&s.samples, &s.histograms);
    let mut hist: HSlots = vec![None; ref_t.len()];
    let mut any = false;
    for (i, &rt) in ref_t.iter().enumerate() {
        let fp = fs.partition_point(|p| p.t <= rt);
        let hp = hs.partition_point(|p| p.t <= rt);
        let f_prev = (fp > 0).then(|| fs[fp - 1]).filter(|p| p.t > rt - lookback);
        let h_prev = (hp > 0)
            .then(|| &hs[hp - 1])
            .filter(|p| p.t > rt - lookback);
        let f_next = fs.get(fp).filter(|p| p.t <= rt + lookback).copied();
        let h_next = hs.get(hp).filter(|p| p.t <= rt + lookback);
        // the newer sample before, the older one after
        let prev_is_h = match (f_prev, h_prev) {
            (Some(f), Some(h)) => h.t > f.t,
            (None, Some(_)) => true,
            (Some(_), None) => false,
            (None, None) => continue,
        };
        let next_is_h = match (f_next, h_next) {
            (Some(f), Some(h)) => Some(h.t < f.t),
            (None, Some(_)) => Some(true),
            (Some(_), None) => Some(false),
            (None, None) => None,
        };
        if prev_is_h {
            let a = h_prev.unwrap();
            if a.h.is_stale() {
                continue;
            }
            let v = match next_is_h {
                Some(true) if a.t < rt => {
                    let b = h_next.unwrap();
                    let counter = a.h.hint != day2_model::CounterResetHint::Gauge;
                    if a.h.uses_custom_buckets() != b.h.uses_custom_buckets() {
                        notes.mixed_schemas(metric);
                        continue;
                    }
                    let frac = (rt - a.t) as f64 / (b.t - a.t) as f64;
                    let mut r = (*b.h).clone();
                    if counter && b.h.detect_reset(&a.h) {
                        r.mul(frac);
                    } else {
                        let _ = r.sub(&a.h);
                        r.mul(frac);
                        let _ = r.add(&a.h);
                    }
                    Arc::new(r)
                }
                Some(false) if a.t < rt => {
                    notes.mixed_floats(metric);
                    continue;
                }
                _ => a.h.clone(),
            };
            hist[i] = Some(v);
        } else {
            let a = f_prev.unwrap();
            if is_stale_nan(a.v) {
                continue;
            }
            vals[i] = match next_is_h {
                Some(false) if a.t < rt => {
                    let b = f_next.unwrap();
                    a.v + (b.v - a.v) * (rt - a.t) as f64 / (b.t - a.t) as f64
                }
                Some(true) if a.t < rt => {
                    notes.mixed_floats(metric);
                    continue;
                }
                _ => canon(a.v),
            };
        }
        any = true;
    }
    let any_h = hist.iter().any(Option::is_some);
    (any, any_h.then_some(hist))
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
        root: root_key(expr),
        sel_at: HashMap::new(),
    };
    selector_args(expr, &mut ctx.sel_at);
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
            // bytes that are not UTF-8 as Prometheus's JSON shows them
            Val::Str(s) => Value::String(start, crate::gostr::display(&s).into_owned()),
            Val::Vector(mut v) => {
                materialise(&mut v);
                let out: Vec<VecSample> = v
                    .into_iter()
                    .filter(|s| s.present(0))
                    .map(|s| VecSample {
                        h: s.h(0).cloned(),
                        labels: s.labels,
                        // a histogram sample has no float value (0, as in Prometheus)
                        v: if has(s.vals[0]) { s.vals[0] } else { 0.0 },
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
                    let mut histograms = Vec::new();
                    m.for_windows_both(s, |_, w, hw, _| {
                        points = w.iter().map(|p| (p.t, p.v)).collect();
                        histograms = hw.iter().map(|p| (p.t, p.h.clone())).collect();
                    });
                    if !points.is_empty() || !histograms.is_empty() {
                        out.push(RangeSeries {
                            labels: s.labels.clone(),
                            points,
                            histograms,
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
                histograms: Vec::new(),
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
                let into = &mut merged[i];
                for k in 0..g.n {
                    if !s.present(k) {
                        continue;
                    }
                    if into.present(k) {
                        return Err(duplicate_labelset());
                    }
                    match s.h(k) {
                        Some(h) => into.set_h(k, h.clone()),
                        None => into.vals[k] = s.vals[k],
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
        let histograms: Vec<(i64, H)> = match &s.hist {
            Some(h) => h
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.as_ref().map(|h| (g.t(i), h.clone())))
                .collect(),
            None => Vec::new(),
        };
        held += points.len() + histograms.len();
        if held > max_samples {
            return Err(Error::TooManySamples);
        }
        if !points.is_empty() || !histograms.is_empty() {
            out.push(RangeSeries {
                labels: s.labels,
                points,
                histograms,
            });
        }
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}
