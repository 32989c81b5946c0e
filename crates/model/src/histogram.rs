//! Native histograms: Prometheus's float histogram (exponential buckets of a
//! base-2 schema, or custom bucket bounds with schema -53), its arithmetic
//! (addition and subtraction across schemas, zero thresholds and custom
//! bounds), counter-reset detection and bucket iteration with bounds.
//!
//! Buckets are kept as Prometheus keeps them, spans plus absolute counts; the
//! arithmetic works on the expanded form, a list of `(bucket index, count)`
//! pairs in index order, which keeps every operation a merge of sorted lists.

use crate::sample::STALE_NAN_BITS;

/// Schema number of histograms with custom bucket bounds.
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;
/// Lowest and highest exponential schema.
pub const EXPONENTIAL_SCHEMA_MIN: i32 = -4;
pub const EXPONENTIAL_SCHEMA_MAX: i32 = 8;

/// What a histogram says about counter resets (Prometheus's `CounterResetHint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum CounterResetHint {
    /// Whether there was a reset has to be found out by comparing with the
    /// previous histogram.
    #[default]
    Unknown,
    /// The first histogram after a counter reset.
    Reset,
    /// No counter reset since the previous histogram.
    NotReset,
    /// A gauge histogram: counter resets do not apply.
    Gauge,
}

/// A run of consecutive buckets: `offset` is the gap to the end of the
/// previous span (or the index of the first bucket for the first span).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    pub offset: i32,
    pub length: u32,
}

/// Why two histograms could not be combined or a histogram is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HistogramError {
    #[error(
        "cannot apply this operation on histograms with a mix of exponential and custom bucket schemas"
    )]
    IncompatibleSchema,
    #[error("invalid histogram: {0}")]
    Invalid(String),
}

/// One bucket with its bounds, as iterated for output and quantiles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub lower: f64,
    pub upper: f64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
    pub count: f64,
    /// Bucket index within the schema (meaningless for the zero bucket).
    pub index: i32,
}

/// A native histogram with float counts (integer histograms are converted to
/// it when they are written).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FloatHistogram {
    pub hint: CounterResetHint,
    /// -4..=8 for exponential buckets, [`CUSTOM_BUCKETS_SCHEMA`] for custom bounds.
    pub schema: i32,
    /// Half-width of the zero bucket (exponential schemas only).
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    /// Sum of observations; the staleness marker's bits mark a stale histogram.
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    pub positive_buckets: Vec<f64>,
    pub negative_spans: Vec<Span>,
    pub negative_buckets: Vec<f64>,
    /// Upper bounds of the custom buckets (the last bucket goes to +Inf).
    pub custom_values: Vec<f64>,
}

/// What an addition or subtraction noticed besides its result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Combined {
    /// One histogram said "counter reset", the other "no counter reset".
    pub counter_reset_collision: bool,
    /// Custom bounds differed and were reduced to the bounds both have.
    pub custom_bounds_reconciled: bool,
}

/// Whether `schema` is the custom-buckets schema.
pub fn is_custom_schema(schema: i32) -> bool {
    schema == CUSTOM_BUCKETS_SCHEMA
}

/// `frac * 2^exp` without overflowing in the intermediate power.
fn ldexp(frac: f64, exp: i32) -> f64 {
    let mut v = frac;
    let mut e = exp;
    while e > 1000 {
        v *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        v *= 2f64.powi(-1000);
        e += 1000;
    }
    v * 2f64.powi(e)
}

/// Upper bound of bucket `idx` in an exponential schema: `2^(idx * 2^-schema)`.
/// The last finite bucket ends at `f64::MAX` rather than +Inf, so that +Inf
/// observations have a bucket of their own (as in Prometheus).
pub fn exponential_bound(idx: i32, schema: i32) -> f64 {
    if schema < 0 {
        let exp = (idx as i64) << (-schema);
        if exp == 1024 {
            return f64::MAX;
        }
        if exp > 2000 {
            return f64::INFINITY;
        }
        if exp < -2000 {
            return 0.0;
        }
        return ldexp(1.0, exp as i32);
    }
    let per = 1i32 << schema;
    let frac_idx = idx & (per - 1);
    let frac = if frac_idx == 0 {
        0.5
    } else {
        (frac_idx as f64 / per as f64).exp2() / 2.0
    };
    let exp = (idx >> schema) + 1;
    if frac == 0.5 && exp == 1025 {
        return f64::MAX;
    }
    ldexp(frac, exp)
}

/// The bucket index in `to` (a lower resolution) holding bucket `idx` of `from`.
fn target_index(idx: i32, from: i32, to: i32) -> i32 {
    ((idx - 1) >> (from - to)) + 1
}

/// Expands spans and buckets into `(index, count)` pairs.
fn expand(spans: &[Span], buckets: &[f64]) -> Vec<(i32, f64)> {
    let mut out = Vec::with_capacity(buckets.len());
    let mut idx = 0i32;
    let mut b = 0usize;
    for (i, s) in spans.iter().enumerate() {
        idx = if i == 0 { s.offset } else { idx + s.offset };
        for _ in 0..s.length {
            if let Some(&c) = buckets.get(b) {
                out.push((idx, c));
            }
            b += 1;
            idx += 1;
        }
    }
    out
}

/// Spans and buckets of `(index, count)` pairs in index order; consecutive
/// indices share a span.
fn collapse(list: &[(i32, f64)]) -> (Vec<Span>, Vec<f64>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut buckets = Vec::with_capacity(list.len());
    let mut next = 0i32;
    for &(idx, c) in list {
        match spans.last_mut() {
            Some(s) if idx == next => s.length += 1,
            Some(_) => spans.push(Span {
                offset: idx - next,
                length: 1,
            }),
            None => spans.push(Span {
                offset: idx,
                length: 1,
            }),
        }
        buckets.push(c);
        next = idx + 1;
    }
    (spans, buckets)
}

/// Merges `b` into `a` (both in index order), adding `sign * count` per index.
fn merge(a: &[(i32, f64)], b: &[(i32, f64)], sign: f64) -> Vec<(i32, f64)> {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.0 == y.0 => {
                out.push((x.0, x.1 + sign * y.1));
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.0 < y.0 => {
                out.push(*x);
                i += 1;
            }
            (Some(x), None) => {
                out.push(*x);
                i += 1;
            }
            (_, Some(y)) => {
                out.push((y.0, sign * y.1));
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

/// Buckets of `from` merged into the lower-resolution schema `to`.
fn reduce(list: &[(i32, f64)], from: i32, to: i32) -> Vec<(i32, f64)> {
    if from == to {
        return list.to_vec();
    }
    let mut out: Vec<(i32, f64)> = Vec::with_capacity(list.len());
    for &(idx, c) in list {
        let t = target_index(idx, from, to);
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 += c,
            _ => out.push((t, c)),
        }
    }
    out
}

/// The bounds both lists have, in order.
fn intersect_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(a[i]);
            i += 1;
            j += 1;
        } else if a[i] < b[j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Custom buckets mapped onto `target` bounds (a subset of `bounds`): each
/// bucket goes to the first target bound at or above its own, the rest to the
/// +Inf bucket. One slot per target bucket, +Inf last.
fn map_custom(list: &[(i32, f64)], bounds: &[f64], target: &[f64], out: &mut [f64], sign: f64) {
    let mut t = 0usize;
    for &(idx, c) in list {
        let slot = match bounds.get(idx.max(0) as usize) {
            Some(&b) => {
                while t < target.len() && target[t] < b {
                    t += 1;
                }
                t.min(target.len())
            }
            None => target.len(),
        };
        out[slot] += sign * c;
    }
}

impl FloatHistogram {
    /// An empty histogram of `schema`.
    pub fn empty(schema: i32) -> FloatHistogram {
        FloatHistogram {
            schema,
            ..Default::default()
        }
    }

    pub fn uses_custom_buckets(&self) -> bool {
        is_custom_schema(self.schema)
    }

    /// Whether this is the staleness marker of a histogram series.
    pub fn is_stale(&self) -> bool {
        self.sum.to_bits() == STALE_NAN_BITS
    }

    /// A staleness marker for a histogram series.
    pub fn stale_marker() -> FloatHistogram {
        FloatHistogram {
            sum: f64::from_bits(STALE_NAN_BITS),
            ..Default::default()
        }
    }

    /// Positive (or negative) buckets as `(index, count)` pairs.
    pub fn bucket_list(&self, positive: bool) -> Vec<(i32, f64)> {
        if positive {
            expand(&self.positive_spans, &self.positive_buckets)
        } else {
            expand(&self.negative_spans, &self.negative_buckets)
        }
    }

    /// Replaces the positive (or negative) buckets by `(index, count)` pairs in index order.
    pub fn set_bucket_list(&mut self, positive: bool, list: &[(i32, f64)]) {
        let (spans, buckets) = collapse(list);
        if positive {
            self.positive_spans = spans;
            self.positive_buckets = buckets;
        } else {
            self.negative_spans = spans;
            self.negative_buckets = buckets;
        }
    }

    /// Multiplies counts, sum and buckets by `factor` (a negative factor makes it a gauge).
    pub fn mul(&mut self, factor: f64) -> &mut Self {
        self.zero_count *= factor;
        self.count *= factor;
        self.sum *= factor;
        self.positive_buckets.iter_mut().for_each(|b| *b *= factor);
        self.negative_buckets.iter_mut().for_each(|b| *b *= factor);
        if factor < 0.0 {
            self.hint = CounterResetHint::Gauge;
        }
        self
    }

    /// Divides counts, sum and buckets by `d`; division by zero removes the buckets.
    pub fn div(&mut self, d: f64) -> &mut Self {
        self.zero_count /= d;
        self.count /= d;
        self.sum /= d;
        if d == 0.0 {
            self.positive_spans.clear();
            self.positive_buckets.clear();
            self.negative_spans.clear();
            self.negative_buckets.clear();
            return self;
        }
        self.positive_buckets.iter_mut().for_each(|b| *b /= d);
        self.negative_buckets.iter_mut().for_each(|b| *b /= d);
        if d < 0.0 {
            self.hint = CounterResetHint::Gauge;
        }
        self
    }

    /// Drops empty buckets (Prometheus's `Compact(0)`).
    pub fn compact(&mut self) -> &mut Self {
        for positive in [true, false] {
            let kept: Vec<(i32, f64)> = self
                .bucket_list(positive)
                .into_iter()
                .filter(|b| b.1 != 0.0)
                .collect();
            self.set_bucket_list(positive, &kept);
        }
        self
    }

    /// Sets the counter reset hint after combining with `other`; true on a
    /// reset/not-reset collision.
    fn adjust_hint(&mut self, other: &FloatHistogram) -> bool {
        use CounterResetHint::*;
        match (self.hint, other.hint) {
            (a, b) if a == b => false,
            (Gauge, _) => false,
            (_, Gauge) => {
                self.hint = Gauge;
                false
            }
            (Unknown, _) => false,
            (_, Unknown) => {
                self.hint = Unknown;
                false
            }
            _ => {
                self.hint = Unknown;
                true
            }
        }
    }

    /// What the zero count would be with a zero threshold of at least
    /// `larger`, and the threshold actually needed (raised to a bucket's upper
    /// bound when `larger` falls inside a populated bucket).
    fn zero_count_for_larger_threshold(&self, larger: f64) -> (f64, f64) {
        if larger == self.zero_threshold {
            return (self.zero_count, larger);
        }
        let pos = self.bucket_list(true);
        let neg = self.bucket_list(false);
        let mut larger = larger;
        'outer: loop {
            let mut count = self.zero_count;
            for &(idx, c) in &pos {
                let upper = exponential_bound(idx, self.schema);
                let lower = exponential_bound(idx - 1, self.schema);
                if lower >= larger {
                    break;
                }
                count += c;
                if upper > larger {
                    if c != 0.0 {
                        larger = upper;
                    }
                    break;
                }
            }
            for &(idx, c) in &neg {
                let upper = -exponential_bound(idx - 1, self.schema);
                let lower = -exponential_bound(idx, self.schema);
                if upper <= -larger {
                    break;
                }
                count += c;
                if lower < -larger {
                    if c != 0.0 {
                        larger = -lower;
                        continue 'outer;
                    }
                    break;
                }
            }
            return (count, larger);
        }
    }

    /// Zeroes and drops the buckets inside the zero bucket (whose counts the
    /// zero count already holds).
    fn trim_buckets_in_zero_bucket(&mut self) {
        let zt = self.zero_threshold;
        let schema = self.schema;
        let pos: Vec<(i32, f64)> = self
            .bucket_list(true)
            .into_iter()
            .map(|(i, c)| {
                if exponential_bound(i - 1, schema) < zt {
                    (i, 0.0)
                } else {
                    (i, c)
                }
            })
            .collect();
        let neg: Vec<(i32, f64)> = self
            .bucket_list(false)
            .into_iter()
            .map(|(i, c)| {
                if -exponential_bound(i - 1, schema) > -zt {
                    (i, 0.0)
                } else {
                    (i, c)
                }
            })
            .collect();
        self.set_bucket_list(true, &pos);
        self.set_bucket_list(false, &neg);
        self.compact();
    }

    /// Widens the zero bucket of `self` so that it covers both zero buckets;
    /// returns the zero count `other` would have with that threshold.
    fn reconcile_zero_buckets(&mut self, other: &FloatHistogram) -> f64 {
        let mut other_count = other.zero_count;
        let mut other_threshold = other.zero_threshold;
        while other_threshold != self.zero_threshold {
            if self.zero_threshold > other_threshold {
                (other_count, other_threshold) =
                    other.zero_count_for_larger_threshold(self.zero_threshold);
            }
            if other_threshold > self.zero_threshold {
                (self.zero_count, self.zero_threshold) =
                    self.zero_count_for_larger_threshold(other_threshold);
                self.trim_buckets_in_zero_bucket();
            }
        }
        other_count
    }

    /// Adds `other` into `self` (see [`FloatHistogram::sub`] for subtraction).
    /// Schemas are reduced to the lower resolution, zero buckets widened to
    /// cover both; custom bounds that differ are reduced to the bounds both
    /// have. Exponential and custom buckets cannot be combined.
    pub fn add(&mut self, other: &FloatHistogram) -> Result<Combined, HistogramError> {
        self.combine(other, 1.0)
    }

    /// Subtracts `other` from `self` (the counter reset hint is combined as for
    /// addition; a caller computing a difference marks the result a gauge).
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<Combined, HistogramError> {
        self.combine(other, -1.0)
    }

    fn combine(&mut self, other: &FloatHistogram, sign: f64) -> Result<Combined, HistogramError> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(HistogramError::IncompatibleSchema);
        }
        let mut info = Combined {
            counter_reset_collision: self.adjust_hint(other),
            ..Default::default()
        };
        if !self.uses_custom_buckets() {
            let other_zero = self.reconcile_zero_buckets(other);
            self.zero_count += sign * other_zero;
        }
        self.count += sign * other.count;
        self.sum += sign * other.sum;
        if self.uses_custom_buckets() {
            let a = self.bucket_list(true);
            let b = other.bucket_list(true);
            if self.custom_values == other.custom_values {
                self.set_bucket_list(true, &merge(&a, &b, sign));
            } else {
                info.custom_bounds_reconciled = true;
                let target = intersect_bounds(&self.custom_values, &other.custom_values);
                let mut slots = vec![0.0; target.len() + 1];
                map_custom(&a, &self.custom_values, &target, &mut slots, 1.0);
                map_custom(&b, &other.custom_values, &target, &mut slots, sign);
                let list: Vec<(i32, f64)> = slots
                    .into_iter()
                    .enumerate()
                    .filter(|(_, c)| *c != 0.0)
                    .map(|(i, c)| (i as i32, c))
                    .collect();
                self.set_bucket_list(true, &list);
                self.custom_values = target;
            }
            return Ok(info);
        }
        let schema = self.schema.min(other.schema);
        let zt = self.zero_threshold;
        for positive in [true, false] {
            let a = reduce(&self.bucket_list(positive), self.schema, schema);
            // buckets of `other` inside the (widened) zero bucket are in its zero count
            let b: Vec<(i32, f64)> = reduce(&other.bucket_list(positive), other.schema, schema)
                .into_iter()
                .filter(|(i, _)| exponential_bound(*i, schema) > zt)
                .collect();
            let merged = merge(&a, &b, sign);
            self.set_bucket_list(positive, &merged);
        }
        self.schema = schema;
        Ok(info)
    }

    /// A copy with the lower-resolution exponential schema `target`.
    pub fn copy_to_schema(&self, target: i32) -> FloatHistogram {
        let mut c = self.clone();
        if target < self.schema && !self.uses_custom_buckets() {
            for positive in [true, false] {
                let r = reduce(&self.bucket_list(positive), self.schema, target);
                c.set_bucket_list(positive, &r);
            }
            c.schema = target;
        }
        c
    }

    /// Whether `self` follows `previous` only through a counter reset: a count
    /// or bucket went down, a populated bucket disappeared, or the schema or
    /// zero threshold changed in a way only a reset explains. The hints
    /// "reset" and "not reset" are trusted.
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        match self.hint {
            CounterResetHint::Reset => return true,
            CounterResetHint::NotReset => return false,
            _ => {}
        }
        if self.count < previous.count {
            return true;
        }
        if self.uses_custom_buckets() {
            if !previous.uses_custom_buckets() {
                return true;
            }
            if self.custom_values != previous.custom_values {
                let target = intersect_bounds(&self.custom_values, &previous.custom_values);
                let mut cur = vec![0.0; target.len() + 1];
                let mut prev = vec![0.0; target.len() + 1];
                map_custom(
                    &self.bucket_list(true),
                    &self.custom_values,
                    &target,
                    &mut cur,
                    1.0,
                );
                map_custom(
                    &previous.bucket_list(true),
                    &previous.custom_values,
                    &target,
                    &mut prev,
                    1.0,
                );
                return cur.iter().zip(&prev).any(|(c, p)| c < p);
            }
        }
        if self.schema > previous.schema {
            return true;
        }
        if self.zero_threshold < previous.zero_threshold {
            return true;
        }
        let (prev_zero, threshold) = previous.zero_count_for_larger_threshold(self.zero_threshold);
        if threshold != self.zero_threshold {
            return true;
        }
        if self.zero_count < prev_zero {
            return true;
        }
        let custom = self.uses_custom_buckets();
        let outside = |list: Vec<(i32, f64)>| -> Vec<(i32, f64)> {
            if custom {
                return list;
            }
            list.into_iter()
                .filter(|(i, _)| exponential_bound(*i, self.schema) > self.zero_threshold)
                .collect()
        };
        for positive in [true, false] {
            let cur = outside(self.bucket_list(positive));
            let prev = outside(reduce(
                &previous.bucket_list(positive),
                previous.schema,
                self.schema,
            ));
            let mut j = 0;
            for &(idx, pc) in &prev {
                while j < cur.len() && cur[j].0 < idx {
                    j += 1;
                }
                match cur.get(j) {
                    Some(&(ci, cc)) if ci == idx => {
                        if cc < pc {
                            return true;
                        }
                    }
                    _ => {
                        if pc != 0.0 {
                            return true;
                        }
                    }
                }
            }
        }
        false
    }

    /// Exact equality of data (bitwise counts, same bucket layout), ignoring
    /// the counter reset hint (Prometheus's `Equals`).
    pub fn equals(&self, o: &FloatHistogram) -> bool {
        let bits = |a: f64, b: f64| a.to_bits() == b.to_bits();
        if self.schema != o.schema || !bits(self.count, o.count) || !bits(self.sum, o.sum) {
            return false;
        }
        if self.uses_custom_buckets() && self.custom_values != o.custom_values {
            return false;
        }
        if self.zero_threshold != o.zero_threshold || !bits(self.zero_count, o.zero_count) {
            return false;
        }
        [true, false].iter().all(|&p| {
            let (a, b) = (self.bucket_list(p), o.bucket_list(p));
            a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.0 == y.0 && bits(x.1, y.1))
        })
    }

    /// Bounds of bucket `idx` on one side: `(lower, upper)`.
    fn bounds(&self, idx: i32, positive: bool) -> (f64, f64) {
        if self.uses_custom_buckets() {
            let b = |i: i32| -> f64 {
                if i < 0 {
                    f64::NEG_INFINITY
                } else {
                    self.custom_values
                        .get(i as usize)
                        .copied()
                        .unwrap_or(f64::INFINITY)
                }
            };
            return (b(idx - 1), b(idx));
        }
        let (lo, hi) = (
            exponential_bound(idx - 1, self.schema),
            exponential_bound(idx, self.schema),
        );
        if positive { (lo, hi) } else { (-hi, -lo) }
    }

    /// Bucket `idx` of one side with its bounds (not clipped at the zero bucket).
    pub fn bucket_at(&self, idx: i32, count: f64, positive: bool) -> Bucket {
        let (lower, upper) = self.bounds(idx, positive);
        let (lower_inclusive, upper_inclusive) = if self.uses_custom_buckets() {
            (idx == 0, true)
        } else {
            (lower < 0.0, upper > 0.0)
        };
        Bucket {
            lower,
            upper,
            lower_inclusive,
            upper_inclusive,
            count,
            index: idx,
        }
    }

    /// Every bucket from the lowest to the highest: negative buckets, the zero
    /// bucket (when it holds observations), positive buckets; buckets
    /// overlapping the zero bucket are clipped at the zero threshold.
    pub fn all_buckets(&self) -> Vec<Bucket> {
        let zt = self.zero_threshold;
        let clip = |mut b: Bucket| {
            if b.upper < 0.0 && b.upper > -zt {
                b.upper = -zt;
            }
            if b.lower > 0.0 && b.lower < zt {
                b.lower = zt;
            }
            b
        };
        let mut out =
            Vec::with_capacity(self.positive_buckets.len() + self.negative_buckets.len() + 1);
        for (idx, c) in self.bucket_list(false).into_iter().rev() {
            out.push(clip(self.bucket_at(idx, c, false)));
        }
        if self.zero_count > 0.0 {
            out.push(Bucket {
                lower: -zt,
                upper: zt,
                lower_inclusive: true,
                upper_inclusive: true,
                count: self.zero_count,
                index: 0,
            });
        }
        for (idx, c) in self.bucket_list(true) {
            out.push(clip(self.bucket_at(idx, c, true)));
        }
        out
    }

    /// Checks the histogram's consistency (spans against buckets, negative
    /// counts, custom bounds, schema range).
    pub fn validate(&self) -> Result<(), HistogramError> {
        let bad = |m: String| Err(HistogramError::Invalid(m));
        let check_spans = |spans: &[Span], n: usize, side: &str, custom: bool| {
            let mut total = 0usize;
            for (i, s) in spans.iter().enumerate() {
                if (i > 0 || custom) && s.offset < 0 {
                    return Err(HistogramError::Invalid(format!(
                        "{side} span {} has negative offset {}",
                        i + 1,
                        s.offset
                    )));
                }
                total += s.length as usize;
            }
            if total != n {
                return Err(HistogramError::Invalid(format!(
                    "{side} spans need {total} buckets, have {n}"
                )));
            }
            Ok(())
        };
        let neg_count = |buckets: &[f64], side: &str| match buckets.iter().position(|c| *c < 0.0) {
            Some(i) => Err(HistogramError::Invalid(format!(
                "{side} bucket {} has observation count {}",
                i + 1,
                buckets[i]
            ))),
            None => Ok(()),
        };
        if self.uses_custom_buckets() {
            check_spans(
                &self.positive_spans,
                self.positive_buckets.len(),
                "positive",
                true,
            )?;
            if !self.custom_values.windows(2).all(|w| w[0] < w[1]) {
                return bad("custom bounds must be in strictly increasing order".into());
            }
            if self.custom_values.last() == Some(&f64::INFINITY) {
                return bad("the last custom bound must not be +Inf".into());
            }
            let reach: i64 = self
                .positive_spans
                .iter()
                .map(|s| s.offset as i64 + s.length as i64)
                .sum();
            if reach > self.custom_values.len() as i64 + 1 {
                return bad(format!(
                    "only {} custom bounds defined, spans reach bucket {reach}",
                    self.custom_values.len()
                ));
            }
            if self.zero_count != 0.0 || self.zero_threshold != 0.0 {
                return bad("custom-bucket histograms have no zero bucket".into());
            }
            if !self.negative_buckets.is_empty() || !self.negative_spans.is_empty() {
                return bad("custom-bucket histograms have no negative buckets".into());
            }
        } else if (EXPONENTIAL_SCHEMA_MIN..=EXPONENTIAL_SCHEMA_MAX).contains(&self.schema) {
            check_spans(
                &self.positive_spans,
                self.positive_buckets.len(),
                "positive",
                false,
            )?;
            check_spans(
                &self.negative_spans,
                self.negative_buckets.len(),
                "negative",
                false,
            )?;
            neg_count(&self.negative_buckets, "negative")?;
            if self.zero_count < 0.0 {
                return bad(format!(
                    "zero bucket has observation count {}",
                    self.zero_count
                ));
            }
            if !self.custom_values.is_empty() {
                return bad("exponential histograms have no custom bounds".into());
            }
        } else {
            return bad(format!("schema {} is not supported", self.schema));
        }
        if self.count < 0.0 {
            return bad(format!("observation count is {}", self.count));
        }
        neg_count(&self.positive_buckets, "positive")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(schema: i32, count: f64, sum: f64, pos: &[(i32, f64)]) -> FloatHistogram {
        let mut h = FloatHistogram::empty(schema);
        h.count = count;
        h.sum = sum;
        h.set_bucket_list(true, pos);
        h
    }

    #[test]
    fn bounds_of_exponential_schemas() {
        assert_eq!(exponential_bound(0, 0), 1.0);
        assert_eq!(exponential_bound(1, 0), 2.0);
        assert_eq!(exponential_bound(-1, 0), 0.5);
        assert!((exponential_bound(1, 1) - 2f64.sqrt()).abs() < 1e-15);
        assert_eq!(exponential_bound(1, -1), 4.0);
        assert_eq!(exponential_bound(1024, 0), f64::MAX);
        assert_eq!(exponential_bound(1025, 0), f64::INFINITY);
        assert_eq!(exponential_bound(1024 * 256, 8), f64::MAX);
    }

    #[test]
    fn spans_round_trip_through_the_expanded_form() {
        let mut x = FloatHistogram::empty(0);
        x.positive_spans = vec![
            Span {
                offset: -2,
                length: 2,
            },
            Span {
                offset: 3,
                length: 1,
            },
        ];
        x.positive_buckets = vec![1.0, 2.0, 3.0];
        assert_eq!(x.bucket_list(true), vec![(-2, 1.0), (-1, 2.0), (3, 3.0)]);
        let list = x.bucket_list(true);
        x.set_bucket_list(true, &list);
        assert_eq!(x.positive_spans[1].offset, 3);
    }

    #[test]
    fn addition_reduces_to_the_lower_schema() {
        // schema 1 buckets 1..=2 fold into schema 0 bucket 1
        let mut a = h(0, 3.0, 3.0, &[(0, 1.0), (1, 2.0)]);
        let b = h(1, 4.0, 4.0, &[(1, 1.0), (2, 3.0)]);
        a.add(&b).unwrap();
        assert_eq!(a.schema, 0);
        assert_eq!(a.bucket_list(true), vec![(0, 1.0), (1, 6.0)]);
        assert_eq!(a.count, 7.0);
        // and the other way round
        let mut b = h(1, 4.0, 4.0, &[(1, 1.0), (2, 3.0)]);
        b.add(&h(0, 3.0, 3.0, &[(0, 1.0), (1, 2.0)])).unwrap();
        assert_eq!(b.schema, 0);
        assert_eq!(b.bucket_list(true), vec![(0, 1.0), (1, 6.0)]);
    }

    #[test]
    fn zero_buckets_widen_to_cover_both() {
        let mut a = h(0, 2.0, 0.0, &[(-1, 1.0), (2, 1.0)]);
        a.zero_threshold = 0.001;
        let mut b = h(0, 3.0, 0.0, &[(2, 1.0)]);
        b.zero_threshold = 0.5;
        b.zero_count = 2.0;
        a.add(&b).unwrap();
        // the bucket (0.25, 0.5] of `a` moved into the widened zero bucket
        assert_eq!(a.zero_threshold, 0.5);
        assert_eq!(a.zero_count, 3.0);
        assert_eq!(a.bucket_list(true), vec![(2, 2.0)]);
    }

    #[test]
    fn custom_bounds_reconcile_to_their_intersection() {
        let mut a = h(
            CUSTOM_BUCKETS_SCHEMA,
            3.0,
            0.0,
            &[(0, 1.0), (1, 1.0), (2, 1.0)],
        );
        a.custom_values = vec![1.0, 2.0];
        let mut b = h(CUSTOM_BUCKETS_SCHEMA, 2.0, 0.0, &[(0, 1.0), (1, 1.0)]);
        b.custom_values = vec![2.0];
        let info = a.add(&b).unwrap();
        assert!(info.custom_bounds_reconciled);
        assert_eq!(a.custom_values, vec![2.0]);
        assert_eq!(a.bucket_list(true), vec![(0, 3.0), (1, 2.0)]);
        let exp = h(0, 1.0, 0.0, &[]);
        assert_eq!(a.add(&exp), Err(HistogramError::IncompatibleSchema));
    }

    #[test]
    fn counter_resets_are_detected_per_bucket() {
        let prev = h(0, 2.0, 3.0, &[(0, 1.0), (1, 1.0)]);
        let grown = h(0, 3.0, 5.0, &[(0, 1.0), (1, 2.0)]);
        assert!(!grown.detect_reset(&prev));
        // a bucket dropped while the count grew
        let moved = h(0, 3.0, 5.0, &[(1, 3.0)]);
        assert!(moved.detect_reset(&prev));
        // higher resolution only after a reset
        let finer = h(1, 3.0, 5.0, &[(0, 1.0), (2, 2.0)]);
        assert!(finer.detect_reset(&prev));
        let mut hinted = prev.clone();
        hinted.hint = CounterResetHint::Reset;
        assert!(hinted.detect_reset(&prev));
    }

    #[test]
    fn hints_combine_as_in_prometheus() {
        use CounterResetHint::*;
        let mut a = h(0, 1.0, 1.0, &[]);
        a.hint = Reset;
        let mut b = a.clone();
        b.hint = NotReset;
        assert!(a.add(&b).unwrap().counter_reset_collision);
        assert_eq!(a.hint, Unknown);
        a.hint = NotReset;
        b.hint = Gauge;
        a.add(&b).unwrap();
        assert_eq!(a.hint, Gauge);
    }

    #[test]
    fn all_buckets_clip_at_the_zero_bucket() {
        let mut x = h(0, 4.0, 0.0, &[(0, 1.0), (1, 1.0)]);
        x.zero_threshold = 0.7;
        x.zero_count = 1.0;
        x.set_bucket_list(false, &[(0, 1.0)]);
        let b = x.all_buckets();
        assert_eq!(b.len(), 4);
        assert_eq!((b[0].lower, b[0].upper), (-1.0, -0.7));
        assert!(b[0].lower_inclusive && !b[0].upper_inclusive);
        assert_eq!((b[1].lower, b[1].upper), (-0.7, 0.7));
        assert_eq!((b[2].lower, b[2].upper), (0.7, 1.0));
        assert_eq!((b[3].lower, b[3].upper), (1.0, 2.0));
    }

    #[test]
    fn validation_finds_inconsistent_histograms() {
        let mut x = h(0, 1.0, 1.0, &[(0, 1.0)]);
        assert!(x.validate().is_ok());
        x.positive_buckets.push(1.0);
        assert!(x.validate().is_err());
        let mut c = h(CUSTOM_BUCKETS_SCHEMA, 1.0, 1.0, &[(3, 1.0)]);
        c.custom_values = vec![1.0];
        assert!(c.validate().is_err());
        c.custom_values = vec![1.0, 2.0, 3.0];
        assert!(c.validate().is_ok());
        assert!(h(9, 0.0, 0.0, &[]).validate().is_err());
    }

    #[test]
    fn stale_marker_is_recognised() {
        assert!(FloatHistogram::stale_marker().is_stale());
        assert!(!FloatHistogram::empty(0).is_stale());
    }
}
