//! Aggregation operators (`sum`, `avg`, `topk`, `quantile`, ...) with `by`/`without`.
//!
//! Every input series gets its group id once per query (from its labels); the
//! operators then accumulate per (group, step) cell.

use std::collections::HashMap;

use day2_model::gofloat::format_f;
use day2_model::{Label, Labels, LabelsBuilder, METRIC_NAME};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use std::sync::Arc;

use day2_model::FloatHistogram;

use crate::Error;
use crate::eval::{ABSENT, Ctx, Grid, InstantSel, VSeries, Val, has};
use crate::nativehist::{self, Notes};
use promql_parser::parser::{Expr, VectorSelector};

/// How label sets are reduced to a grouping (or matching) key.
pub(crate) enum KeyMode<'a> {
    /// Everything falls into one group.
    All,
    /// Only these labels count (`by`, `on`).
    Include(&'a [String]),
    /// Every label but `__name__` and these (`without`, `ignoring`, or plain matching).
    Exclude(&'a [String]),
}

impl<'a> KeyMode<'a> {
    pub(crate) fn grouping(m: &'a Option<LabelModifier>) -> KeyMode<'a> {
        match m {
            None => KeyMode::All,
            Some(LabelModifier::Include(n)) => KeyMode::Include(&n.labels),
            Some(LabelModifier::Exclude(n)) => KeyMode::Exclude(&n.labels),
        }
    }

    pub(crate) fn matching(m: &'a Option<LabelModifier>) -> KeyMode<'a> {
        match m {
            None => KeyMode::Exclude(&[]),
            Some(LabelModifier::Include(n)) => KeyMode::Include(&n.labels),
            Some(LabelModifier::Exclude(n)) => KeyMode::Exclude(&n.labels),
        }
    }

    /// The key's label set (for group output and error messages).
    pub(crate) fn labels(&self, l: &Labels) -> Labels {
        match self {
            KeyMode::All => Labels::empty(),
            KeyMode::Include(names) => {
                let mut b = LabelsBuilder::new();
                for n in names.iter() {
                    if let Some(v) = l.get(n) {
                        b.set(n.clone(), v);
                    }
                }
                b.build()
            }
            KeyMode::Exclude(names) => {
                let kept: Vec<Label> = l
                    .iter()
                    .filter(|x| x.name != METRIC_NAME && !names.contains(&x.name))
                    .cloned()
                    .collect();
                Labels::from_sorted_unchecked(kept)
            }
        }
    }
}

/// Assigns key ids to label sets; borrowed keys, so only new keys allocate.
pub(crate) struct Keyer<'m, 'l> {
    mode: KeyMode<'m>,
    map: HashMap<Vec<&'l str>, u32>,
    buf: Vec<&'l str>,
    /// A representative label set per key id.
    pub first: Vec<&'l Labels>,
}

impl<'m, 'l> Keyer<'m, 'l> {
    pub(crate) fn new(mode: KeyMode<'m>) -> Self {
        Keyer {
            mode,
            map: HashMap::new(),
            buf: Vec::new(),
            first: Vec::new(),
        }
    }

    /// The key id of a label set (a name still to be dropped counts: `by
    /// (__name__)` groups by it, as with Prometheus's delayed name removal).
    pub(crate) fn id(&mut self, l: &'l Labels) -> u32 {
        self.buf.clear();
        match &self.mode {
            KeyMode::All => {}
            KeyMode::Include(names) => {
                for n in names.iter() {
                    self.buf.push(l.get(n).unwrap_or(""));
                }
            }
            KeyMode::Exclude(names) => {
                for x in l.iter() {
                    if x.name != METRIC_NAME && !names.contains(&x.name) {
                        self.buf.push(&x.name);
                        self.buf.push(&x.value);
                    }
                }
            }
        }
        if let Some(&id) = self.map.get(&self.buf) {
            return id;
        }
        let id = self.first.len() as u32;
        self.map.insert(self.buf.clone(), id);
        self.first.push(l);
        id
    }

    pub(crate) fn len(&self) -> usize {
        self.first.len()
    }

    /// The label set of key `id`.
    pub(crate) fn labels(&self, id: u32) -> Labels {
        self.mode.labels(self.first[id as usize])
    }

    /// Whether the key keeps `__name__` (`by (__name__, ...)`): then a group
    /// whose members drop their name drops it too.
    pub(crate) fn keeps_name(&self) -> bool {
        matches!(&self.mode, KeyMode::Include(names) if names.iter().any(|n| n == METRIC_NAME))
    }
}

/// Kahan-compensated running sum (as Prometheus sums).
#[derive(Default, Clone, Copy)]
pub(crate) struct KahanSum {
    sum: f64,
    c: f64,
}

impl KahanSum {
    #[inline]
    pub(crate) fn add(&mut self, v: f64) {
        let t = self.sum + v;
        if t.is_infinite() {
            self.c = 0.0;
        } else if self.sum.abs() >= v.abs() {
            self.c += (self.sum - t) + v;
        } else {
            self.c += (v - t) + self.sum;
        }
        self.sum = t;
    }
    /// Starts from a sum and its compensation.
    pub(crate) fn set(&mut self, sum: f64, c: f64) {
        self.sum = sum;
        self.c = c;
    }

    /// The running sum and its compensation.
    pub(crate) fn parts(&self) -> (f64, f64) {
        (self.sum, self.c)
    }

    #[inline]
    pub(crate) fn value(&self) -> f64 {
        if self.sum.is_infinite() {
            self.sum
        } else {
            self.sum + self.c
        }
    }
}

/// Go's sort.Float64s order: NaN first.
pub(crate) fn sort_go(values: &mut [f64]) {
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap(),
    });
}

/// Linear-interpolated quantile of sorted-or-not values (Prometheus's `quantile`).
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    sort_go(values);
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

fn scalar_param(ctx: &mut Ctx, a: &AggregateExpr, g: &Grid, op: &str) -> Result<Vec<f64>, Error> {
    match a.param.as_ref().map(|p| ctx.eval(p, g)).transpose()? {
        Some(Val::Scalar(v)) => Ok(v),
        _ => Err(Error::Execution(format!("{op} needs a scalar parameter"))),
    }
}

/// Per (group, step) accumulator of the simple aggregations.
#[derive(Clone, Copy, Default)]
struct Cell {
    n: u32,
    sum: KahanSum,
    /// min/max so far, or the running mean (avg, stddev).
    x: f64,
    /// Welford's sum of squared deviations (stddev, stdvar).
    m2: f64,
    /// avg: the running sum overflowed, `x` is now an incremental mean
    /// (with `sum.c` as its compensation), as Prometheus does.
    incremental: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Simple {
    Sum,
    Avg,
    Count,
    Group,
    Min,
    Max,
    Stddev,
    Stdvar,
}

/// A `topk`/`bottomk`/`limitk` candidate, ordered best first: by value (NaN
/// last either way), then by input position; `limitk` by position only.
struct Ranked {
    v: f64,
    si: usize,
    top: bool,
    limit: bool,
}

impl Ord for Ranked {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering::*;
        let by_value = if self.limit {
            Equal
        } else {
            match (self.v.is_nan(), o.v.is_nan()) {
                (true, true) => Equal,
                (true, false) => Greater,
                (false, true) => Less,
                _ if self.top => o.v.partial_cmp(&self.v).unwrap(),
                _ => self.v.partial_cmp(&o.v).unwrap(),
            }
        };
        by_value.then(self.si.cmp(&o.si))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == std::cmp::Ordering::Equal
    }
}

impl Eq for Ranked {}

/// An aggregation's input: an evaluated vector, or (when the operand is a
/// plain selector) the selector's series, turned into step slots one series
/// at a time so the whole vector is never held.
enum Input {
    Vec(Vec<VSeries>),
    Sel(InstantSel),
}

impl Input {
    fn len(&self) -> usize {
        match self {
            Input::Vec(v) => v.len(),
            Input::Sel(s) => s.series.len(),
        }
    }

    fn labels(&self, i: usize) -> (&Labels, bool) {
        match self {
            Input::Vec(v) => (&v[i].labels, v[i].dropped),
            Input::Sel(s) => (&s.series[i].labels, false),
        }
    }

    /// The step slots of series `i` (computed into `buf` for a selector).
    fn vals<'a>(&'a self, i: usize, buf: &'a mut [f64]) -> &'a [f64] {
        match self {
            Input::Vec(v) => &v[i].vals,
            Input::Sel(s) => {
                buf.fill(ABSENT);
                s.fill(i, false, buf);
                buf
            }
        }
    }

    fn into_vec(self, n: usize) -> Vec<VSeries> {
        match self {
            Input::Vec(v) => v,
            Input::Sel(s) => (0..s.series.len())
                .map(|i| {
                    let mut vals = vec![ABSENT; n];
                    s.fill(i, false, &mut vals);
                    VSeries::new(s.series[i].labels.clone(), vals)
                })
                .collect(),
        }
    }
}

/// The selector an expression is, through parentheses.
fn direct_selector(e: &Expr) -> Option<&VectorSelector> {
    match e {
        Expr::VectorSelector(vs) => Some(vs),
        Expr::Paren(p) => direct_selector(&p.expr),
        _ => None,
    }
}

/// The histograms of one (group, step) cell: how many, and for `sum` and
/// `avg` their sum or mean (None when they could not be combined).
struct HistCell {
    n: u32,
    value: Option<crate::eval::H>,
}

/// Aggregates the histogram slots of `input` per (group, step). `sum` and
/// `avg` combine them (with Prometheus's annotations), `count` and `group`
/// count them; the other operators ignore them with an info annotation.
#[allow(clippy::too_many_arguments)]
fn aggregate_histograms(
    ctx: &mut Ctx,
    op: &str,
    kind: Simple,
    input: &[VSeries],
    gids: &[u32],
    ngroups: usize,
    n: usize,
    node: usize,
    expr_at: crate::eval::At,
) -> Vec<Option<HistCell>> {
    let mut members: Vec<Vec<(usize, &FloatHistogram)>> = vec![Vec::new(); ngroups * n];
    let mut ignored = false;
    for (s, &gid) in input.iter().zip(gids) {
        let Some(hist) = &s.hist else { continue };
        for (i, h) in hist.iter().enumerate() {
            if let Some(h) = h {
                members[gid as usize * n + i].push((0, h));
                ignored = true;
            }
        }
    }
    let combine = matches!(kind, Simple::Sum | Simple::Avg);
    let counts = matches!(kind, Simple::Count | Simple::Group);
    if !combine && !counts {
        if ignored {
            ctx.info(
                format!("ignored histogram in {op} aggregation"),
                (node, None),
            );
        }
        return Vec::new();
    }
    let mut notes = Notes::default();
    let mut out = Vec::with_capacity(ngroups * n);
    // the metric names of the members, for the mixed-schema warning
    let names: Vec<&str> = input
        .iter()
        .map(|s| s.labels.get(METRIC_NAME).unwrap_or(""))
        .collect();
    let mut first_name = vec![""; ngroups];
    for (i, &gid) in gids.iter().enumerate() {
        if input[i].hist.is_some() && first_name[gid as usize].is_empty() {
            first_name[gid as usize] = names[i];
        }
    }
    for (cell, m) in members.iter().enumerate() {
        if m.is_empty() {
            out.push(None);
            continue;
        }
        let value = if combine {
            let metric = first_name[cell / n];
            nativehist::sum_or_mean(
                m.iter().map(|x| x.1),
                kind == Simple::Avg,
                metric,
                &mut notes,
            )
            .map(Arc::new)
        } else {
            None
        };
        out.push(Some(HistCell {
            n: m.len() as u32,
            value,
        }));
    }
    ctx.notes(notes, expr_at);
    out
}

/// Adds every present slot of every series into its (group, step) cell.
#[inline]
fn accumulate(
    cells: &mut [Cell],
    input: &Input,
    gids: &[u32],
    n: usize,
    add: impl Fn(&mut Cell, f64),
) {
    let mut buf = vec![ABSENT; n];
    for (si, &gid) in gids.iter().enumerate() {
        let vals = input.vals(si, &mut buf);
        let row = &mut cells[gid as usize * n..(gid as usize + 1) * n];
        for (c, &v) in row.iter_mut().zip(vals) {
            if has(v) {
                c.n += 1;
                add(c, v);
            }
        }
    }
}

pub(crate) fn eval(ctx: &mut Ctx, a: &AggregateExpr, g: &Grid) -> Result<Val, Error> {
    let op = a.op.to_string();
    // annotations refer to this node
    let node = a as *const AggregateExpr as usize;
    let streams = matches!(
        op.as_str(),
        "sum"
            | "avg"
            | "count"
            | "group"
            | "min"
            | "max"
            | "stddev"
            | "stdvar"
            | "topk"
            | "bottomk"
            | "limitk"
    );
    let input = match direct_selector(&a.expr) {
        Some(vs) if streams => {
            let sel = ctx.take_instant(vs, g);
            if sel.has_histograms() {
                Input::Vec(sel.into_vseries(g.n))
            } else {
                Input::Sel(sel)
            }
        }
        _ => match ctx.eval(&a.expr, g)? {
            Val::Vector(v) => Input::Vec(v),
            other => {
                return Err(Error::Execution(format!(
                    "{op} expects an instant vector, got {}",
                    other.kind()
                )));
            }
        },
    };
    let n = g.n;
    // group ids in first-appearance order
    let mut keyer = Keyer::new(KeyMode::grouping(&a.modifier));
    let gids: Vec<u32> = (0..input.len())
        .map(|i| keyer.id(input.labels(i).0))
        .collect();
    let ngroups = keyer.len();
    let group_labels: Vec<Labels> = (0..ngroups as u32).map(|i| keyer.labels(i)).collect();
    // groups keeping the name drop it when a member does
    let mut group_dropped = vec![false; ngroups];
    if keyer.keeps_name() {
        for (i, &gid) in gids.iter().enumerate() {
            group_dropped[gid as usize] |= input.labels(i).1;
        }
    }
    drop(keyer);
    ctx.check_deadline()?;
    let simple = match op.as_str() {
        "sum" => Some(Simple::Sum),
        "avg" => Some(Simple::Avg),
        "count" => Some(Simple::Count),
        "group" => Some(Simple::Group),
        "min" => Some(Simple::Min),
        "max" => Some(Simple::Max),
        "stddev" => Some(Simple::Stddev),
        "stdvar" => Some(Simple::Stdvar),
        _ => None,
    };
    // the argument's place, for annotations about the aggregated values
    let expr_at = (node, Some(usize::from(a.param.is_some())));
    let has_hist = matches!(&input, Input::Vec(v) if v.iter().any(|s| s.hist.is_some()));
    if let Some(kind) = simple {
        ctx.check_cells(ngroups.saturating_mul(n))?;
        let mut cells = vec![Cell::default(); ngroups * n];
        let hcells = match &input {
            Input::Vec(v) if has_hist => {
                aggregate_histograms(ctx, &op, kind, v, &gids, ngroups, n, node, expr_at)
            }
            _ => Vec::new(),
        };
        match kind {
            Simple::Sum => accumulate(&mut cells, &input, &gids, n, |c, v| c.sum.add(v)),
            Simple::Avg => accumulate(&mut cells, &input, &gids, n, |c, v| {
                if c.n == 1 {
                    c.sum = KahanSum { sum: v, c: 0.0 };
                    return;
                }
                if !c.incremental {
                    let mut t = c.sum;
                    t.add(v);
                    if !t.sum.is_infinite() {
                        c.sum = t;
                        return;
                    }
                    // the sum would overflow: incremental mean from here on
                    c.incremental = true;
                    let k = (c.n - 1) as f64;
                    c.x = c.sum.sum / k;
                    c.sum.c /= k;
                }
                let k = c.n as f64;
                let q = (k - 1.0) / k;
                let mut t = KahanSum {
                    sum: q * c.x,
                    c: q * c.sum.c,
                };
                t.add(v / k);
                c.x = t.sum;
                c.sum.c = t.c;
            }),
            Simple::Count | Simple::Group => accumulate(&mut cells, &input, &gids, n, |_, _| {}),
            Simple::Min => accumulate(&mut cells, &input, &gids, n, |c, v| {
                if c.n == 1 || c.x.is_nan() || v < c.x {
                    c.x = v
                }
            }),
            Simple::Max => accumulate(&mut cells, &input, &gids, n, |c, v| {
                if c.n == 1 || c.x.is_nan() || v > c.x {
                    c.x = v
                }
            }),
            Simple::Stddev | Simple::Stdvar => accumulate(&mut cells, &input, &gids, n, |c, v| {
                let d = v - c.x;
                c.x += d / c.n as f64;
                c.m2 += d * (v - c.x);
            }),
        }
        let mut out = Vec::with_capacity(ngroups);
        let mut mixed = false;
        for (gid, labels) in group_labels.into_iter().enumerate() {
            let row = &cells[gid * n..(gid + 1) * n];
            let mut hist: Option<Vec<Option<crate::eval::H>>> = None;
            let vals: Vec<f64> = row
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if let Some(hc) = hcells.get(gid * n + i).and_then(|h| h.as_ref()) {
                        match kind {
                            Simple::Count => return (c.n + hc.n) as f64,
                            Simple::Group => return 1.0,
                            Simple::Sum | Simple::Avg => {
                                if c.n > 0 {
                                    mixed = true;
                                    return ABSENT;
                                }
                                if let Some(h) = &hc.value {
                                    hist.get_or_insert_with(|| vec![None; n])[i] = Some(h.clone());
                                }
                                return ABSENT;
                            }
                            _ => {}
                        }
                    }
                    if c.n == 0 {
                        return ABSENT;
                    }
                    match kind {
                        Simple::Sum => c.sum.value(),
                        Simple::Avg => {
                            if c.incremental {
                                c.x + c.sum.c
                            } else {
                                (c.sum.sum + c.sum.c) / c.n as f64
                            }
                        }
                        Simple::Count => c.n as f64,
                        Simple::Group => 1.0,
                        Simple::Min | Simple::Max => c.x,
                        Simple::Stddev => (c.m2 / c.n as f64).sqrt(),
                        Simple::Stdvar => c.m2 / c.n as f64,
                    }
                })
                .collect();
            out.push(VSeries {
                hist,
                labels,
                vals,
                dropped: group_dropped[gid],
            });
        }
        if mixed {
            ctx.warn(
                "encountered a mix of histograms and floats for aggregation".into(),
                expr_at,
            );
        }
        return Ok(Val::Vector(out));
    }
    let topk = matches!(op.as_str(), "topk" | "bottomk" | "limitk");
    // the other operators read the slots of many series per step
    let input = if topk {
        input
    } else {
        Input::Vec(input.into_vec(n))
    };
    let vec_input: &[VSeries] = match &input {
        Input::Vec(v) => v,
        Input::Sel(_) => &[],
    };
    // members of each group, in input order
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); ngroups];
    for (i, &gid) in gids.iter().enumerate() {
        members[gid as usize].push(i);
    }
    match op.as_str() {
        "limitk" if has_hist => {
            let ks = scalar_param(ctx, a, g, &op)?;
            if ks.iter().any(|k| k.is_nan()) {
                return Err(Error::Execution("Parameter value is NaN".into()));
            }
            // the first k present series of each group, in input order
            let mut taken = vec![0usize; ngroups * n];
            let mut out = Vec::new();
            for (s, &gid) in vec_input.iter().zip(&gids) {
                let mut kept = s.clone();
                for (i, k) in ks.iter().enumerate() {
                    if !s.present(i) {
                        continue;
                    }
                    let t = &mut taken[gid as usize * n + i];
                    if (*t as f64) < k.floor() {
                        *t += 1;
                    } else {
                        kept.clear(i);
                    }
                }
                if kept.any() {
                    out.push(kept);
                }
            }
            Ok(Val::Vector(out))
        }
        "topk" | "bottomk" | "limitk" => {
            if has_hist {
                ctx.info(
                    format!("ignored histogram in {op} aggregation"),
                    (node, None),
                );
            }
            let ks = scalar_param(ctx, a, g, &op)?;
            let mut kk = Vec::with_capacity(n);
            for k in ks {
                if k.is_nan() {
                    return Err(Error::Execution("Parameter value is NaN".into()));
                }
                kk.push(if k < 1.0 {
                    0
                } else {
                    k.min(usize::MAX as f64) as usize
                });
            }
            let top = op == "topk";
            let limit = op == "limitk";
            // one bounded heap per (group, step), worst candidate on top; the
            // series are visited in input order, so ties keep the earlier one
            let mut heaps: Vec<std::collections::BinaryHeap<Ranked>> =
                (0..ngroups * n).map(|_| Default::default()).collect();
            let mut buf = vec![ABSENT; n];
            for (si, &gid) in gids.iter().enumerate() {
                let vals = input.vals(si, &mut buf);
                let row = &mut heaps[gid as usize * n..(gid as usize + 1) * n];
                for (i, (h, &v)) in row.iter_mut().zip(vals).enumerate() {
                    if !has(v) || kk[i] == 0 {
                        continue;
                    }
                    let c = Ranked { v, si, top, limit };
                    if h.len() < kk[i] {
                        h.push(c);
                    } else if !limit && c < *h.peek().unwrap() {
                        h.pop();
                        h.push(c);
                    }
                }
            }
            let mut keep: Vec<Option<Vec<f64>>> = vec![None; input.len()];
            // instant queries list the selection in rank order
            let mut order: Vec<usize> = Vec::new();
            for (cell, h) in heaps.into_iter().enumerate() {
                let i = cell % n;
                for c in h.into_sorted_vec() {
                    keep[c.si].get_or_insert_with(|| vec![ABSENT; n])[i] = c.v;
                    if n == 1 {
                        order.push(c.si);
                    }
                }
            }
            let mut out = Vec::new();
            let picked: Vec<usize> = if n == 1 {
                order
            } else {
                (0..input.len()).filter(|&i| keep[i].is_some()).collect()
            };
            for si in picked {
                if let Some(vals) = keep[si].take() {
                    let (labels, dropped) = input.labels(si);
                    out.push(VSeries {
                        hist: None,
                        labels: labels.clone(),
                        vals,
                        dropped,
                    });
                }
            }
            Ok(Val::Vector(out))
        }
        "limit_ratio" => {
            let mut ratios = scalar_param(ctx, a, g, &op)?;
            for r in ratios.iter_mut() {
                if r.is_nan() {
                    return Err(Error::Execution("Ratio value is NaN".into()));
                }
                if *r < -1.0 || *r > 1.0 {
                    let capped = r.clamp(-1.0, 1.0);
                    ctx.warn(
                        format!(
                            "ratio value should be between -1 and 1, got {}, capping to {}",
                            format_f(*r),
                            format_f(capped)
                        ),
                        (node, Some(0)),
                    );
                    *r = capped;
                }
            }
            // a series is in when its label hash, as a fraction of the hash
            // space, falls under the ratio (or, negative, at or over 1 + ratio)
            let mut out = Vec::new();
            for s in vec_input {
                let offset = crate::hash::labels_hash(&s.labels) as f64 / u64::MAX as f64;
                let mut kept = s.clone();
                for (i, &r) in ratios.iter().enumerate() {
                    let keep = (r >= 0.0 && offset < r) || (r < 0.0 && offset >= 1.0 + r);
                    if !keep {
                        kept.clear(i);
                    }
                }
                if kept.any() {
                    out.push(kept);
                }
            }
            Ok(Val::Vector(out))
        }
        "count_values" => {
            let label = match a.param.as_ref().map(|p| ctx.eval(p, g)).transpose()? {
                Some(Val::Str(s)) => s,
                _ => {
                    return Err(Error::Execution(
                        "count_values needs a string parameter".into(),
                    ));
                }
            };
            if !day2_model::labels::is_valid_label_name(&label) {
                let quoted = match crate::gostr::invalid(&label) {
                    Some(b) => b.quoted(),
                    None => crate::gostr::quote(label.as_bytes()),
                };
                return Err(Error::Execution(format!("invalid label name {quoted}")));
            }
            // keyed by the output labels: the value label may replace a
            // grouping label, merging groups (as in Prometheus)
            let mut index: HashMap<(u32, String), usize> = HashMap::new();
            let mut by_labels: HashMap<Labels, usize> = HashMap::new();
            let mut out: Vec<VSeries> = Vec::new();
            for i in 0..n {
                for (gid, m) in members.iter().enumerate() {
                    for &si in m {
                        let s = &vec_input[si];
                        let k = match s.h(i) {
                            Some(h) => (gid as u32, nativehist::go_string(h)),
                            None if has(s.vals[i]) => (gid as u32, format_f(s.vals[i])),
                            None => continue,
                        };
                        let oi = match index.get(&k) {
                            Some(&oi) => oi,
                            None => {
                                let mut b = group_labels[gid].to_builder();
                                b.set(label.clone(), k.1.clone());
                                let labels = b.build();
                                let oi = match by_labels.get(&labels) {
                                    Some(&oi) => oi,
                                    None => {
                                        by_labels.insert(labels.clone(), out.len());
                                        out.push(VSeries {
                                            hist: None,
                                            labels,
                                            vals: vec![ABSENT; n],
                                            dropped: group_dropped[gid],
                                        });
                                        out.len() - 1
                                    }
                                };
                                index.insert(k, oi);
                                oi
                            }
                        };
                        let c = &mut out[oi].vals[i];
                        *c = if has(*c) { *c + 1.0 } else { 1.0 };
                    }
                }
            }
            Ok(Val::Vector(out))
        }
        "quantile" => {
            if has_hist {
                ctx.info(
                    "ignored histogram in quantile aggregation".into(),
                    (node, None),
                );
            }
            let q = scalar_param(ctx, a, g, &op)?;
            if let Some(bad) = q.iter().find(|q| !(0.0..=1.0).contains(*q)) {
                ctx.warn(
                    format!(
                        "quantile value should be between 0 and 1, got {}",
                        format_f(*bad)
                    ),
                    (node, Some(0)),
                );
            }
            let mut out = Vec::with_capacity(ngroups);
            let mut buf = Vec::new();
            for (gid, labels) in group_labels.into_iter().enumerate() {
                let mut vals = vec![ABSENT; n];
                for (i, slot) in vals.iter_mut().enumerate() {
                    buf.clear();
                    buf.extend(
                        members[gid]
                            .iter()
                            .map(|&si| vec_input[si].vals[i])
                            .filter(|v| has(*v)),
                    );
                    if !buf.is_empty() {
                        *slot = quantile(q[i], &mut buf);
                    }
                }
                out.push(VSeries {
                    hist: None,
                    labels,
                    vals,
                    dropped: group_dropped[gid],
                });
            }
            Ok(Val::Vector(out))
        }
        other => Err(Error::Execution(format!(
            "aggregation {other} is not supported"
        ))),
    }
}
