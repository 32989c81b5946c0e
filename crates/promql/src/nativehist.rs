//! PromQL over native histograms: quantiles, fractions and variance of one
//! histogram, the rate of a window of histograms, sums over histograms, and
//! the annotations Prometheus attaches to them.

use day2_model::gofloat::format_g;
use day2_model::histogram::{Bucket, FloatHistogram, HistogramError};
use day2_model::{CounterResetHint, HistogramSample};

/// Annotation messages gathered while computing (the caller adds positions).
#[derive(Debug, Default)]
pub(crate) struct Notes {
    pub warn: Vec<String>,
    pub info: Vec<String>,
}

impl Notes {
    pub(crate) fn warn(&mut self, m: String) {
        if !self.warn.contains(&m) {
            self.warn.push(m);
        }
    }

    pub(crate) fn info(&mut self, m: String) {
        if !self.info.contains(&m) {
            self.info.push(m);
        }
    }

    pub(crate) fn mixed_schemas(&mut self, metric: &str) {
        self.warn(format!(
            "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {metric:?}"
        ));
    }

    pub(crate) fn reconciled(&mut self, op: &str) {
        self.info(format!(
            "mismatched custom buckets were reconciled during {op}"
        ));
    }

    pub(crate) fn mixed_floats(&mut self, metric: &str) {
        self.warn(format!(
            "encountered a mix of histograms and floats for metric name {metric:?}"
        ));
    }

    pub(crate) fn not_counter(&mut self, metric: &str) {
        self.warn(format!(
            "this native histogram metric is not a counter: {metric:?}"
        ));
    }

    pub(crate) fn not_gauge(&mut self, metric: &str) {
        self.warn(format!(
            "this native histogram metric is not a gauge: {metric:?}"
        ));
    }

    pub(crate) fn collision(&mut self, op: &str) {
        self.warn(format!("conflicting counter resets during histogram {op}"));
    }
}

/// " for metric name \"x\"" when the name is known (Prometheus's `maybeAddMetricName`).
fn for_metric(metric: &str) -> String {
    if metric.is_empty() {
        String::new()
    } else {
        format!(" for metric name {metric:?}")
    }
}

/// `histogram_quantile` of a native histogram: exponential buckets are
/// interpolated on a log scale, custom buckets and the zero bucket linearly.
pub(crate) fn quantile(q: f64, h: &FloatHistogram, metric: &str, notes: &mut Notes) -> f64 {
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if h.count == 0.0 || q.is_nan() {
        return f64::NAN;
    }
    let custom = h.uses_custom_buckets();
    let buckets = h.all_buckets();
    // NaN observations count without a bucket: walk forward then
    let forward = h.sum.is_nan() || q < 0.5;
    let order: Box<dyn Iterator<Item = &Bucket>> = if forward {
        Box::new(buckets.iter())
    } else {
        Box::new(buckets.iter().rev())
    };
    let mut rank = if forward {
        q * h.count
    } else {
        (1.0 - q) * h.count
    };
    let mut bucket = Bucket {
        lower: 0.0,
        upper: 0.0,
        lower_inclusive: false,
        upper_inclusive: false,
        count: 0.0,
        index: 0,
    };
    let mut count = 0.0;
    let mut iter = order;
    for b in iter.by_ref() {
        bucket = *b;
        if b.count == 0.0 {
            continue;
        }
        count += b.count;
        if count >= rank {
            break;
        }
    }
    if !custom && bucket.lower < 0.0 && bucket.upper > 0.0 {
        if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
            bucket.lower = 0.0;
        } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
            bucket.upper = 0.0;
        }
    } else if custom {
        if bucket.lower == f64::NEG_INFINITY {
            if bucket.upper <= 0.0 {
                return bucket.upper;
            }
            bucket.lower = 0.0;
        } else if bucket.upper == f64::INFINITY {
            return bucket.lower;
        }
    }
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        if h.sum.is_nan() {
            notes.info(format!(
                "input to histogram_quantile has NaN observations, result is NaN{}",
                for_metric(metric)
            ));
            return f64::NAN;
        }
        return bucket.upper;
    }
    if forward {
        rank -= count - bucket.count;
    } else {
        rank = count - rank;
    }
    if h.sum.is_nan() {
        for b in iter {
            count += b.count;
        }
        if count < h.count {
            notes.info(format!(
                "input to histogram_quantile has NaN observations, result is skewed higher{}",
                for_metric(metric)
            ));
        }
    }
    let fraction = rank / bucket.count;
    if custom || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
        return bucket.lower + (bucket.upper - bucket.lower) * fraction;
    }
    let (log_lower, log_upper) = (bucket.lower.abs().log2(), bucket.upper.abs().log2());
    if bucket.lower > 0.0 {
        return (log_lower + (log_upper - log_lower) * fraction).exp2();
    }
    -(log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2()
}

/// `histogram_fraction` of a native histogram: the share of observations
/// between `lower` and `upper`, interpolated as [`quantile`] interpolates.
pub(crate) fn fraction(
    lower: f64,
    upper: f64,
    h: &FloatHistogram,
    metric: &str,
    notes: &mut Notes,
) -> f64 {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let custom = h.uses_custom_buckets();
    let buckets = h.all_buckets();
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut count = 0.0;
    let mut i = 0;
    while i < buckets.len() {
        let mut b = buckets[i];
        i += 1;
        count += b.count;
        let mut zero_bucket = false;
        if b.lower <= 0.0 && b.upper >= 0.0 {
            zero_bucket = true;
            if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
                b.lower = 0.0;
            } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
                b.upper = 0.0;
            }
        }
        let linear = |v: f64| -> f64 {
            if b.lower == f64::NEG_INFINITY {
                return b.count;
            }
            rank + b.count * (v - b.lower) / (b.upper - b.lower)
        };
        let exponential = |v: f64| -> f64 {
            let (ll, lu, lv) = (b.lower.abs().log2(), b.upper.abs().log2(), v.abs().log2());
            let f = if v > 0.0 {
                (lv - ll) / (lu - ll)
            } else {
                1.0 - ((lv - lu) / (ll - lu))
            };
            rank + b.count * f
        };
        if !lower_set && b.lower >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && b.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && b.lower < lower && b.upper > lower {
            lower_rank = if custom || zero_bucket {
                linear(lower)
            } else {
                exponential(lower)
            };
            lower_set = true;
        }
        if !upper_set && b.lower < upper && b.upper > upper {
            upper_rank = if custom || zero_bucket {
                linear(upper)
            } else {
                exponential(upper)
            };
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank += b.count;
    }
    if h.sum.is_nan() {
        count += buckets[i.min(buckets.len())..]
            .iter()
            .map(|b| b.count)
            .sum::<f64>();
        if count < h.count {
            notes.info(format!(
                "input to histogram_fraction has NaN observations, which are excluded from all fractions{}",
                for_metric(metric)
            ));
        }
    } else {
        count = h.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / h.count
}

/// The trim operators: `h </ c` (`keep_below`) keeps the observations below
/// `c`, `h >/ c` those above. A bucket the cut falls in keeps the share on
/// the kept side (interpolated as [`fraction`] interpolates). When anything is
/// cut, the sum is estimated anew from the kept buckets (each at its
/// geometric mean, custom buckets and the zero bucket at their middle); when
/// nothing is, the histogram is returned as it is.
pub(crate) fn trim(h: &FloatHistogram, c: f64, keep_below: bool) -> FloatHistogram {
    if c.is_nan() || (keep_below && c == f64::INFINITY) || (!keep_below && c == f64::NEG_INFINITY) {
        return h.clone();
    }
    let custom = h.uses_custom_buckets();
    // (kept count, its representative value) of a bucket [l, u] whose share
    // is interpolated linearly or on a log scale
    let cut = |l: f64, u: f64, n: f64, log: bool| -> (f64, f64) {
        let full_below = u <= c;
        let none_below = l >= c;
        let (full, none) = if keep_below {
            (full_below, none_below)
        } else {
            (none_below, full_below)
        };
        let rep = |a: f64, b: f64| -> f64 {
            if log {
                let g = (a * b).abs().sqrt();
                if b <= 0.0 { -g } else { g }
            } else {
                (a + b) / 2.0
            }
        };
        if full {
            return (n, rep(l, u));
        }
        if none {
            return (0.0, 0.0);
        }
        let below = if log {
            if l > 0.0 {
                (c.log2() - l.log2()) / (u.log2() - l.log2())
            } else {
                (l.abs().log2() - c.abs().log2()) / (l.abs().log2() - u.abs().log2())
            }
        } else {
            (c - l) / (u - l)
        };
        if keep_below {
            (n * below, rep(l, c))
        } else {
            (n * (1.0 - below), rep(c, u))
        }
    };
    let mut out = h.clone();
    let mut trimmed = false;
    let mut count = 0.0;
    let mut sum = 0.0;
    let mut keep = |n: f64, kept: (f64, f64), trimmed: &mut bool| -> f64 {
        if kept.0 != n {
            *trimmed = true;
        }
        count += kept.0;
        sum += kept.0 * kept.1;
        kept.0
    };
    if custom {
        let bounds = &h.custom_values;
        let list: Vec<(i32, f64)> = h
            .bucket_list(true)
            .into_iter()
            .map(|(idx, n)| {
                let u = bounds.get(idx as usize).copied().unwrap_or(f64::INFINITY);
                let l = if idx == 0 {
                    f64::NEG_INFINITY
                } else {
                    bounds[idx as usize - 1]
                };
                let kept = match (l == f64::NEG_INFINITY, u == f64::INFINITY) {
                    // one bucket for everything: no share can be told
                    (true, true) => (0.0, 0.0),
                    // the +Inf bucket: kept whole above a cut, never below one
                    (false, true) if keep_below => (0.0, 0.0),
                    (false, true) if c == f64::INFINITY => (0.0, 0.0),
                    (false, true) => (n, l.max(c)),
                    // the first bucket of positive bounds spans [0, u]
                    (true, false) if u > 0.0 => {
                        if !keep_below && c < 0.0 {
                            (0.0, 0.0)
                        } else {
                            cut(0.0, u, n, false)
                        }
                    }
                    // a first bucket down to -Inf: kept whole below a cut in it
                    (true, false) if keep_below => (n, u.min(c)),
                    (true, false) => {
                        if u <= c {
                            (0.0, 0.0)
                        } else if c == f64::NEG_INFINITY {
                            (n, u)
                        } else {
                            (0.0, 0.0)
                        }
                    }
                    (false, false) => cut(l, u, n, false),
                };
                (idx, keep(n, kept, &mut trimmed))
            })
            .collect();
        out.set_bucket_list(true, &list);
    } else {
        let zt = h.zero_threshold;
        let schema = h.schema;
        for positive in [false, true] {
            let list: Vec<(i32, f64)> = h
                .bucket_list(positive)
                .into_iter()
                .map(|(idx, n)| {
                    let (lo, hi) = (
                        day2_model::histogram::exponential_bound(idx - 1, schema).max(zt),
                        day2_model::histogram::exponential_bound(idx, schema),
                    );
                    let (l, u) = if positive { (lo, hi) } else { (-hi, -lo) };
                    (idx, keep(n, cut(l, u, n, true), &mut trimmed))
                })
                .collect();
            out.set_bucket_list(positive, &list);
        }
        // the zero bucket leans to the side that has buckets
        let (zl, zu) = match (h.negative_buckets.is_empty(), h.positive_buckets.is_empty()) {
            (true, false) => (0.0, zt),
            (false, true) => (-zt, 0.0),
            _ => (-zt, zt),
        };
        out.zero_count = keep(h.zero_count, cut(zl, zu, h.zero_count, false), &mut trimmed);
    }
    if !trimmed {
        return h.clone();
    }
    out.count = count;
    out.sum = sum;
    out.compact();
    out
}

/// The variance of a histogram's observations, each bucket standing for its
/// geometric mean (arithmetic for custom buckets, 0 in the zero bucket).
pub(crate) fn variance(h: &FloatHistogram) -> f64 {
    let mean = h.sum / h.count;
    let mut v = crate::aggregate::KahanSum::default();
    for b in h.all_buckets() {
        if b.count == 0.0 {
            continue;
        }
        let val = if h.uses_custom_buckets() {
            (b.upper + b.lower) / 2.0
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let g = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 { -g } else { g }
        };
        let d = val - mean;
        v.add(b.count * d * d);
    }
    v.value() / h.count
}

/// A histogram as Go's `FloatHistogram.String()` prints it (the label value
/// `count_values` gives a histogram): `{count:20, sum:10, [-2,-1):2, ...}`.
pub(crate) fn go_string(h: &FloatHistogram) -> String {
    let mut s = format!("{{count:{}, sum:{}", format_g(h.count), format_g(h.sum));
    let bracket = |b: &Bucket| -> String {
        format!(
            "{}{},{}{}:{}",
            if b.lower_inclusive { '[' } else { '(' },
            format_g(b.lower),
            format_g(b.upper),
            if b.upper_inclusive { ']' } else { ')' },
            format_g(b.count)
        )
    };
    // unlike `all_buckets`, the buckets are not clipped at the zero bucket here
    let side = |positive: bool| -> Vec<Bucket> {
        h.bucket_list(positive)
            .into_iter()
            .filter(|(_, c)| *c != 0.0)
            .map(|(idx, count)| h.bucket_at(idx, count, positive))
            .collect()
    };
    for b in side(false).iter().rev() {
        s.push_str(", ");
        s.push_str(&bracket(b));
    }
    if h.zero_count != 0.0 {
        s.push_str(&format!(
            ", [{},{}]:{}",
            format_g(-h.zero_threshold),
            format_g(h.zero_threshold),
            format_g(h.zero_count)
        ));
    }
    for b in side(true) {
        s.push_str(", ");
        s.push_str(&bracket(&b));
    }
    s.push('}');
    s
}

/// Adds `other` into `into`, noting what Prometheus notes; false when the
/// two cannot be combined (exponential with custom buckets).
pub(crate) fn add_into(
    into: &mut FloatHistogram,
    other: &FloatHistogram,
    sub: bool,
    op: &str,
    metric: &str,
    notes: &mut Notes,
) -> bool {
    let r = if sub {
        into.sub(other)
    } else {
        into.add(other)
    };
    match r {
        Ok(c) => {
            if c.custom_bounds_reconciled {
                notes.reconciled(op);
            }
            true
        }
        Err(HistogramError::IncompatibleSchema) | Err(HistogramError::Invalid(_)) => {
            notes.mixed_schemas(metric);
            false
        }
    }
}

/// The increase (or, not a counter, the difference) over a window of
/// histograms, before extrapolation (Prometheus's `histogramRate`); None when
/// the histograms cannot be combined.
pub(crate) fn window_increase(
    points: &[HistogramSample],
    counter: bool,
    metric: &str,
    notes: &mut Notes,
) -> Option<FloatHistogram> {
    let empty;
    let mut prev: &FloatHistogram = &points[0].h;
    let last: &FloatHistogram = &points[points.len() - 1].h;
    if counter && (prev.hint == CounterResetHint::Gauge || last.hint == CounterResetHint::Gauge) {
        notes.not_counter(metric);
    }
    let mut custom = prev.uses_custom_buckets();
    if counter {
        let second = &points[1].h;
        // a reset right after the first sample: the first counts as zero
        if second.detect_reset(prev) {
            let mut e = FloatHistogram::empty(second.schema);
            e.custom_values = second.custom_values.clone();
            empty = e;
            prev = &empty;
            custom = second.uses_custom_buckets();
        }
    }
    if last.uses_custom_buckets() != custom {
        notes.mixed_schemas(metric);
        return None;
    }
    let mut min_schema = last.schema.min(prev.schema);
    if counter {
        for p in &points[1..points.len() - 1] {
            if p.h.hint == CounterResetHint::Gauge {
                notes.not_counter(metric);
            }
            min_schema = min_schema.min(p.h.schema);
            if p.h.uses_custom_buckets() != custom {
                notes.mixed_schemas(metric);
                return None;
            }
        }
    }
    let mut h = last.copy_to_schema(min_schema);
    if !add_into(&mut h, prev, true, "subtraction", metric, notes) {
        return None;
    }
    if counter {
        let mut prev = prev;
        for p in &points[1..] {
            if p.h.detect_reset(prev) && !add_into(&mut h, prev, false, "addition", metric, notes) {
                return None;
            }
            prev = &p.h;
        }
    } else if points[0].h.hint != CounterResetHint::Gauge || last.hint != CounterResetHint::Gauge {
        notes.not_gauge(metric);
    }
    h.hint = CounterResetHint::Gauge;
    h.compact();
    Some(h)
}

/// A Kahan-compensated running sum of histograms: the sum and, in the same
/// bucket layout, the compensation of every value (Prometheus's `KahanAdd`),
/// so that large values cancelling each other do not swallow small ones.
#[derive(Clone)]
pub(crate) struct KahanHist {
    sum: FloatHistogram,
    comp: FloatHistogram,
}

/// `h` expressed in the bucket layout of `target` (its schema, zero bucket
/// and custom bounds, which must be reachable from `h`'s).
fn in_layout(h: &FloatHistogram, target: &FloatHistogram) -> FloatHistogram {
    let mut x = FloatHistogram::empty(target.schema);
    x.zero_threshold = target.zero_threshold;
    x.custom_values = target.custom_values.clone();
    let _ = x.add(h);
    x
}

/// The values of a histogram by place: count, sum, zero count, then buckets by side and index.
fn slots(h: &FloatHistogram) -> std::collections::BTreeMap<(u8, i32), f64> {
    let mut m = std::collections::BTreeMap::new();
    m.insert((0, 0), h.count);
    m.insert((1, 0), h.sum);
    m.insert((2, 0), h.zero_count);
    for (i, c) in h.bucket_list(true) {
        m.insert((3, i), c);
    }
    for (i, c) in h.bucket_list(false) {
        m.insert((4, i), c);
    }
    m
}

/// Builds a histogram with `layout`'s layout from values by place.
fn from_slots(
    layout: &FloatHistogram,
    m: &std::collections::BTreeMap<(u8, i32), f64>,
) -> FloatHistogram {
    let mut h = layout.clone();
    h.count = m[&(0, 0)];
    h.sum = m[&(1, 0)];
    h.zero_count = m[&(2, 0)];
    let side = |k: u8| -> Vec<(i32, f64)> {
        m.range((k, i32::MIN)..=(k, i32::MAX))
            .map(|(p, v)| (p.1, *v))
            .collect()
    };
    h.set_bucket_list(true, &side(3));
    h.set_bucket_list(false, &side(4));
    h
}

impl KahanHist {
    pub(crate) fn new(h: &FloatHistogram) -> KahanHist {
        let mut comp = h.clone();
        comp.mul(0.0);
        KahanHist {
            sum: h.clone(),
            comp,
        }
    }

    /// Adds `other` with compensation.
    pub(crate) fn add(
        &mut self,
        other: &FloatHistogram,
    ) -> Result<day2_model::histogram::Combined, HistogramError> {
        let mut layout = self.sum.clone();
        let info = layout.add(other)?;
        let (a, c, o) = (
            slots(&in_layout(&self.sum, &layout)),
            slots(&in_layout(&self.comp, &layout)),
            slots(&in_layout(other, &layout)),
        );
        let mut sum = std::collections::BTreeMap::new();
        let mut comp = std::collections::BTreeMap::new();
        for k in slots(&layout).keys() {
            let mut acc = crate::aggregate::KahanSum::default();
            acc.set(
                a.get(k).copied().unwrap_or(0.0),
                c.get(k).copied().unwrap_or(0.0),
            );
            acc.add(o.get(k).copied().unwrap_or(0.0));
            let (s, cc) = acc.parts();
            sum.insert(*k, s);
            comp.insert(*k, cc);
        }
        self.sum = from_slots(&layout, &sum);
        self.comp = from_slots(&layout, &comp);
        Ok(info)
    }

    /// Multiplies sum and compensation.
    pub(crate) fn mul(&mut self, f: f64) {
        self.sum.mul(f);
        self.comp.mul(f);
    }

    /// Whether a value of the sum is infinite.
    pub(crate) fn overflows(&self) -> bool {
        slots(&self.sum).values().any(|v| v.is_infinite())
    }

    /// The compensated sum.
    pub(crate) fn value(mut self) -> FloatHistogram {
        let _ = self.sum.add(&self.comp);
        self.sum
    }
}

/// Sums (or, with `mean`, averages) histograms with Kahan compensation, as
/// Prometheus does in `sum`, `avg`, `sum_over_time` and `avg_over_time`: the
/// mean switches to an incremental mean when the sum overflows. Hints are
/// checked for reset/not-reset collisions; None when the histograms cannot be
/// combined. Also gives how many were combined.
pub(crate) fn sum_or_mean<'a>(
    hs: impl IntoIterator<Item = &'a FloatHistogram>,
    mean: bool,
    metric: &str,
    notes: &mut Notes,
) -> Option<FloatHistogram> {
    let mut it = hs.into_iter();
    let first = it.next()?;
    let (mut reset, mut not_reset) = (false, false);
    let mut track = |h: &FloatHistogram| match h.hint {
        CounterResetHint::Reset => reset = true,
        CounterResetHint::NotReset => not_reset = true,
        _ => {}
    };
    track(first);
    let mut acc = KahanHist::new(first);
    let mut incremental: Option<KahanHist> = None;
    let mut n = 1.0;
    let mut ok = true;
    for h in it {
        track(h);
        n += 1.0;
        if !ok {
            continue;
        }
        let result = match incremental.as_mut() {
            None => {
                let mut next = acc.clone();
                match next.add(h) {
                    Ok(info) if mean && next.overflows() => {
                        // from here on an incremental mean
                        let mut m = acc.clone();
                        m.mul(1.0 / (n - 1.0));
                        m.mul((n - 1.0) / n);
                        let mut x = h.clone();
                        x.div(n);
                        let r = m.add(&x);
                        incremental = Some(m);
                        let _ = info;
                        r
                    }
                    other => {
                        acc = next;
                        other
                    }
                }
            }
            Some(m) => {
                m.mul((n - 1.0) / n);
                let mut x = h.clone();
                x.div(n);
                m.add(&x)
            }
        };
        match result {
            Ok(c) => {
                if c.custom_bounds_reconciled {
                    notes.reconciled("aggregation");
                }
            }
            Err(_) => {
                notes.mixed_schemas(metric);
                ok = false;
            }
        }
    }
    if reset && not_reset {
        notes.collision("aggregation");
    }
    if !ok {
        return None;
    }
    let mut h = match incremental {
        Some(m) => m.value(),
        None => {
            let mut h = acc.value();
            if mean {
                h.div(n);
            }
            h
        }
    };
    h.compact();
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pos: &[(i32, f64)], count: f64, sum: f64) -> FloatHistogram {
        let mut h = FloatHistogram::empty(0);
        h.count = count;
        h.sum = sum;
        h.set_bucket_list(true, pos);
        h
    }

    #[test]
    fn quantile_interpolates_exponentially() {
        // buckets (0.5,1]:1 (1,2]:2 (2,4]:1: the median is sqrt(2)
        let x = h(&[(0, 1.0), (1, 2.0), (2, 1.0)], 4.0, 5.0);
        let mut n = Notes::default();
        let q = quantile(0.5, &x, "x", &mut n);
        assert!((q - 2f64.sqrt()).abs() < 1e-12, "{q}");
        assert_eq!(quantile(1.5, &x, "x", &mut n), f64::INFINITY);
        assert!(quantile(0.5, &h(&[], 0.0, 0.0), "x", &mut n).is_nan());
        assert!(n.info.is_empty());
    }

    #[test]
    fn fraction_of_a_whole_histogram_is_one() {
        let x = h(&[(0, 1.0), (1, 2.0), (2, 1.0)], 4.0, 5.0);
        let mut n = Notes::default();
        assert_eq!(fraction(0.0, 8.0, &x, "x", &mut n), 1.0);
        assert_eq!(fraction(1.0, 2.0, &x, "x", &mut n), 0.5);
    }

    #[test]
    fn go_string_matches_prometheus() {
        let mut x = h(&[(0, 1.0), (1, 2.0)], 20.0, 10.0);
        x.zero_threshold = 0.001;
        x.zero_count = 2.0;
        x.set_bucket_list(false, &[(0, 1.0), (1, 2.0)]);
        assert_eq!(
            go_string(&x),
            "{count:20, sum:10, [-2,-1):2, [-1,-0.5):1, [-0.001,0.001]:2, (0.5,1]:1, (1,2]:2}"
        );
    }
}
