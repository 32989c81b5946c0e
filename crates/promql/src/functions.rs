//! PromQL functions over floats, evaluated over the whole step grid: instant
//! functions map each series' slots (labels computed once per series), range
//! functions walk each series with a moving window.

use std::collections::HashMap;

use day2_model::gofloat::format_f;
use day2_model::{Labels, LabelsBuilder, METRIC_NAME, Sample, Series};
use promql_parser::parser::{Call, Expr};

use std::sync::Arc;

use day2_model::{FloatHistogram, HistogramSample};

use crate::Error;
use crate::aggregate::{KahanSum, quantile};
use crate::eval::{
    ABSENT, Ctx, Grid, HSlots, Matrix, RangeMode, VSeries, Val, has, materialise, range_mode,
};
use crate::gostr;
use crate::nativehist::{self, Notes};

fn arg_vector(ctx: &mut Ctx, e: &Expr, g: &Grid) -> Result<Vec<VSeries>, Error> {
    match ctx.eval(e, g)? {
        Val::Vector(v) => Ok(v),
        other => Err(Error::Execution(format!(
            "expected instant vector, got {}",
            other.kind()
        ))),
    }
}

fn arg_matrix(ctx: &mut Ctx, e: &Expr, g: &Grid) -> Result<Matrix, Error> {
    match ctx.eval(e, g)? {
        Val::Matrix(m) => Ok(m),
        other => Err(Error::Execution(format!(
            "expected range vector, got {}",
            other.kind()
        ))),
    }
}

fn arg_scalar(ctx: &mut Ctx, e: &Expr, g: &Grid) -> Result<Vec<f64>, Error> {
    match ctx.eval(e, g)? {
        Val::Scalar(v) => Ok(v),
        other => Err(Error::Execution(format!(
            "expected scalar, got {}",
            other.kind()
        ))),
    }
}

fn arg_string(ctx: &mut Ctx, e: &Expr, g: &Grid) -> Result<String, Error> {
    match ctx.eval(e, g)? {
        Val::Str(s) => Ok(s),
        other => Err(Error::Execution(format!(
            "expected string, got {}",
            other.kind()
        ))),
    }
}

/// Prometheus's extrapolated rate/increase/delta; `scan_resets` is false when
/// the caller knows the window holds no counter reset.
fn extrapolated(
    points: &[Sample],
    range_start: i64,
    range_end: i64,
    counter: bool,
    is_rate: bool,
    scan_resets: bool,
) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (first, last) = (points[0], points[points.len() - 1]);
    let mut result = last.v - first.v;
    if counter && scan_resets {
        for w in points.windows(2) {
            if w[1].v < w[0].v {
                result += w[0].v;
            }
        }
    }
    let mut to_start = (first.t - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last.t) as f64 / 1000.0;
    let sampled = (last.t - first.t) as f64 / 1000.0;
    let avg = sampled / (points.len() - 1) as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if counter && result > 0.0 && first.v >= 0.0 {
        let to_zero = sampled * (first.v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let factor = (sampled + to_start + to_end) / sampled;
    result *= factor;
    if is_rate {
        result /= (range_end - range_start) as f64 / 1000.0;
    }
    Some(result)
}

fn instant_delta(points: &[Sample], is_rate: bool) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (prev, last) = (points[points.len() - 2], points[points.len() - 1]);
    let mut v = if is_rate && last.v < prev.v {
        last.v
    } else {
        last.v - prev.v
    };
    let dt = (last.t - prev.t) as f64 / 1000.0;
    if is_rate {
        if dt == 0.0 {
            return None;
        }
        v /= dt;
    }
    Some(v)
}

/// Least-squares slope and intercept, with x = seconds relative to `at`.
fn linear_regression(points: &[Sample], at: i64) -> (f64, f64) {
    let n = points.len() as f64;
    let (mut sx, mut sy, mut sxy, mut sx2) = (
        KahanSum::default(),
        KahanSum::default(),
        KahanSum::default(),
        KahanSum::default(),
    );
    let first = points[0].v;
    let const_y = points.iter().all(|p| p.v == first);
    for p in points {
        let x = (p.t - at) as f64 / 1000.0;
        sx.add(x);
        sy.add(p.v);
        sxy.add(x * p.v);
        sx2.add(x * x);
    }
    if const_y {
        return (0.0, first);
    }
    let (sx, sy, sxy, sx2) = (sx.value(), sy.value(), sxy.value(), sx2.value());
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    let intercept = sy / n - slope * sx / n;
    (slope, intercept)
}

fn holt_winters(points: &[Sample], sf: f64, tf: f64) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0, points[0].v);
    let mut b = points[1].v - points[0].v;
    for (i, p) in points.iter().enumerate().skip(1) {
        let x = sf * p.v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}

fn days_from_civil_inverse(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn date_part(name: &str, secs: f64) -> f64 {
    let s = secs.floor() as i64;
    let days = s.div_euclid(86_400);
    let sod = s.rem_euclid(86_400);
    let (y, m, d) = days_from_civil_inverse(days);
    let month_days = [
        31,
        if is_leap(y) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    match name {
        "minute" => ((sod / 60) % 60) as f64,
        "hour" => (sod / 3600) as f64,
        "day_of_month" => d as f64,
        "day_of_week" => ((days + 4).rem_euclid(7)) as f64,
        "day_of_year" => (month_days[..(m - 1) as usize].iter().sum::<i64>() + d as i64) as f64,
        "days_in_month" => month_days[(m - 1) as usize] as f64,
        "month" => m as f64,
        "year" => y as f64,
        _ => f64::NAN,
    }
}

fn round_to(v: f64, to: f64) -> f64 {
    // Prometheus rounds half up: floor(v/to + 0.5) * to, with the inverse to limit error
    let inv = 1.0 / to;
    (v * inv + 0.5).floor() / inv
}

/// Sorts classic buckets `(upper bound, cumulative count)`, merges equal
/// bounds and forces the counts to be monotonic; true when counts had to be
/// raised. None without a `+Inf` bucket.
fn classic_buckets(buckets: &mut Vec<(f64, f64)>) -> Option<bool> {
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return None;
    }
    buckets.dedup_by(|b, a| {
        if a.0 == b.0 {
            a.1 += b.1;
            true
        } else {
            false
        }
    });
    let mut fixed = false;
    let mut max = f64::NEG_INFINITY;
    for b in buckets.iter_mut() {
        if b.1 < max {
            b.1 = max;
            fixed = true;
        } else {
            max = b.1;
        }
    }
    Some(fixed)
}

/// Classic-bucket histogram quantile (Prometheus's `bucketQuantile`), and
/// whether the counts had to be fixed for monotonicity.
fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    let Some(fixed) = classic_buckets(buckets) else {
        return (f64::NAN, false);
    };
    if buckets.len() < 2 {
        return (f64::NAN, fixed);
    }
    let merged = &buckets[..];
    let total = merged[merged.len() - 1].1;
    if total == 0.0 || total.is_nan() {
        return (f64::NAN, fixed);
    }
    let rank = q * total;
    let i = merged.partition_point(|b| b.1 < rank);
    if i == merged.len() - 1 {
        return (merged[merged.len() - 2].0, fixed);
    }
    if i == 0 && merged[0].0 <= 0.0 {
        return (merged[0].0, fixed);
    }
    let (mut start, mut count, mut rank) = (0.0, merged[i].1, rank);
    let end = merged[i].0;
    if i > 0 {
        start = merged[i - 1].0;
        count -= merged[i - 1].1;
        rank -= merged[i - 1].1;
    }
    (start + (end - start) * (rank / count), fixed)
}

/// The fraction of a classic histogram's observations between `lower` and
/// `upper`, interpolating linearly inside finite buckets; the first bucket
/// starts at 0 when its upper bound is positive, and the observations of an
/// unbounded bucket sit at its infinite end. Second: counts were fixed for
/// monotonicity.
fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<(f64, f64)>) -> (f64, bool) {
    let Some(fixed) = classic_buckets(buckets) else {
        return (f64::NAN, false);
    };
    let total = buckets[buckets.len() - 1].1;
    if lower.is_nan() || upper.is_nan() || total == 0.0 || total.is_nan() {
        return (f64::NAN, fixed);
    }
    if lower >= upper {
        return (0.0, fixed);
    }
    // the rank (observations below) at value x
    let rank_at = |x: f64| -> f64 {
        let mut below = 0.0;
        for (i, &(hi, cum)) in buckets.iter().enumerate() {
            let lo = match i {
                0 if hi > 0.0 => 0.0,
                0 => f64::NEG_INFINITY,
                _ => buckets[i - 1].0,
            };
            let count = cum - below;
            if x <= lo {
                return below;
            }
            if x < hi {
                let part = if lo == f64::NEG_INFINITY {
                    1.0
                } else if hi == f64::INFINITY {
                    0.0
                } else {
                    (x - lo) / (hi - lo)
                };
                return below + count * part;
            }
            below = cum;
        }
        below
    };
    ((rank_at(upper) - rank_at(lower)) / total, fixed)
}

/// Natural order: runs of digits compare as numbers (`1.2.3` < `1.11.3`).
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let nx = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let ny = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (dx, dy) = (&x[..nx], &y[..ny]);
                let tx = dx.iter().skip_while(|c| **c == b'0').count();
                let ty = dy.iter().skip_while(|c| **c == b'0').count();
                let o = tx.cmp(&ty).then_with(|| dx[nx - tx..].cmp(&dy[ny - ty..]));
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
                x = &x[nx..];
                y = &y[ny..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

/// Whether `e` is the marker argument of a rewritten trim operator: Some(true)
/// for `</`, Some(false) for `>/` (see `rewrite`).
fn trim_mark(e: &Expr) -> Option<bool> {
    let Expr::NumberLiteral(n) = e else {
        return None;
    };
    let bits = n.val.to_bits();
    let is = |m: &str| m.parse::<f64>().is_ok_and(|x| x.to_bits() == bits);
    if is(crate::rewrite::TRIM_UPPER_MARK) {
        Some(true)
    } else if is(crate::rewrite::TRIM_LOWER_MARK) {
        Some(false)
    } else {
        None
    }
}

/// Applies `f(value, step)` to every float slot; labels lose `__name__` once
/// per series. Histogram samples are left out (as Prometheus's float functions do).
fn map_vector(mut v: Vec<VSeries>, f: impl Fn(f64, usize) -> f64) -> Val {
    for s in v.iter_mut() {
        s.dropped = true;
        for (i, x) in s.vals.iter_mut().enumerate() {
            if has(*x) {
                *x = f(*x, i);
            }
        }
    }
    drop_histograms(&mut v);
    Val::Vector(v)
}

/// Removes histogram samples, and the series left without samples.
fn drop_histograms(v: &mut Vec<VSeries>) {
    if v.iter().all(|s| s.hist.is_none()) {
        return;
    }
    for s in v.iter_mut() {
        s.hist = None;
    }
    v.retain(|s| s.vals.iter().any(|x| has(*x)));
}

/// A float function of every histogram slot (`histogram_count`, ...); float
/// samples are left out, labels lose `__name__`.
fn map_histograms(v: Vec<VSeries>, mut f: impl FnMut(&FloatHistogram, usize) -> f64) -> Val {
    let mut out = Vec::with_capacity(v.len());
    for s in v {
        let Some(hist) = &s.hist else { continue };
        let mut vals = vec![ABSENT; hist.len()];
        let mut any = false;
        for (i, h) in hist.iter().enumerate() {
            if let Some(h) = h {
                vals[i] = f(h, i);
                any = true;
            }
        }
        if any {
            out.push(VSeries {
                labels: s.labels,
                vals,
                hist: None,
                dropped: true,
            });
        }
    }
    Val::Vector(out)
}

/// One result series per input series for which `fill` (given the series,
/// its float slots and its histogram slots, all empty) filled a slot.
fn per_series_both(
    m: &Matrix,
    keep_name: bool,
    mut fill: impl FnMut(&Series, &mut [f64], &mut HSlots) -> bool,
) -> Val {
    let n = m.ref_t.len();
    let mut out = Vec::with_capacity(m.series.len());
    for s in &m.series {
        let mut vals = vec![ABSENT; n];
        let mut hist: HSlots = if s.histograms.is_empty() {
            Vec::new()
        } else {
            vec![None; n]
        };
        if fill(s, &mut vals, &mut hist) {
            let any_h = hist.iter().any(Option::is_some);
            out.push(VSeries {
                labels: s.labels.clone(),
                vals,
                hist: any_h.then_some(hist),
                dropped: !keep_name,
            });
        }
    }
    Val::Vector(out)
}

/// Adds "ignored histograms in a range containing both floats and
/// histograms" when a window of a float-only range function holds both kinds.
fn note_ignored_histograms(ctx: &mut Ctx, m: &Matrix, at: crate::eval::At) {
    for s in m.series.iter().filter(|s| !s.histograms.is_empty()) {
        let mut both = false;
        m.for_windows_both(s, |_, f, h, _| both |= !f.is_empty() && !h.is_empty());
        if both {
            ctx.info(
                format!(
                    "ignored histograms in a range containing both floats and histograms for metric name {:?}",
                    s.labels.get(METRIC_NAME).unwrap_or("")
                ),
                at,
            );
        }
    }
}

/// A range argument, with the "ignored histograms" info of float-only range functions.
fn matrix_noting_histograms(ctx: &mut Ctx, c: &Call, e: &Expr, g: &Grid) -> Result<Matrix, Error> {
    let m = arg_matrix(ctx, e, g)?;
    note_ignored_histograms(ctx, &m, (c as *const Call as usize, Some(0)));
    Ok(m)
}

/// A range function over floats and histograms together: `f(step, floats,
/// histograms, ref_t, notes)` gives a float, a histogram, or nothing.
fn over_time_both(
    ctx: &mut Ctx,
    m: Matrix,
    keep_name: bool,
    at: crate::eval::At,
    mut f: impl FnMut(usize, &[Sample], &[HistogramSample], i64, &str, &mut Notes) -> Option<Out>,
) -> Val {
    let mut notes = Notes::default();
    let v = per_series_both(&m, keep_name, |s, vals, hist| {
        let metric = s.labels.get(METRIC_NAME).unwrap_or("");
        let mut any = false;
        m.for_windows_both(s, |i, w, hw, rt| {
            match f(i, w, hw, rt, metric, &mut notes) {
                Some(Out::F(v)) => {
                    vals[i] = v;
                    any = true;
                }
                Some(Out::H(h)) => {
                    hist[i] = Some(h);
                    any = true;
                }
                None => {}
            }
        });
        any
    });
    ctx.notes(notes, at);
    v
}

/// One result of a range function.
enum Out {
    F(f64),
    H(crate::eval::H),
}

/// Applies a range function to every series' window at every step.
fn over_time(
    m: Matrix,
    keep_name: bool,
    mut f: impl FnMut(&[Sample], usize, i64) -> Option<f64>,
) -> Val {
    per_series(&m, keep_name, |s, vals| {
        let mut any = false;
        m.for_windows(&s.samples, |i, w, rt| {
            if let Some(v) = f(w, i, rt) {
                vals[i] = v;
                any = true;
            }
        });
        any
    })
}

/// One result series per input series of `m` for which `fill` (given the
/// series and its step slots, all absent) filled a slot.
fn per_series(
    m: &Matrix,
    keep_name: bool,
    mut fill: impl FnMut(&Series, &mut [f64]) -> bool,
) -> Val {
    let n = m.ref_t.len();
    let mut out = Vec::with_capacity(m.series.len());
    for s in &m.series {
        let mut vals = vec![ABSENT; n];
        if fill(s, &mut vals) {
            out.push(VSeries {
                hist: None,
                labels: s.labels.clone(),
                vals,
                dropped: !keep_name,
            });
        }
    }
    Val::Vector(out)
}

/// Calls `f(step, points)` with the values an `anchored` or `smoothed` window
/// stands for: its start value, the samples inside, and (smoothed) its end
/// value. Anchored: the start is the last sample at or before the window
/// (within the lookback delta), else the first sample repeated; no samples
/// inside, no result. Smoothed: both ends are interpolated between the samples
/// around them (a counter falling between them restarts from 0), else the
/// nearest sample inside is repeated; an empty window needs samples on both sides.
fn mode_windows(m: &Matrix, samples: &[Sample], counter: bool, mut f: impl FnMut(usize, &[f64])) {
    let Some(mode) = m.mode else { return };
    let interp = |a: Sample, b: Sample, t: i64| {
        let frac = (t - a.t) as f64 / (b.t - a.t) as f64;
        if counter && b.v < a.v {
            b.v * frac
        } else {
            a.v + (b.v - a.v) * frac
        }
    };
    let (mut lo, mut hi) = (0usize, 0usize);
    let mut pts: Vec<f64> = Vec::new();
    for (i, &rt) in m.ref_t.iter().enumerate() {
        let start = rt - m.range;
        while lo < samples.len() && samples[lo].t <= start {
            lo += 1;
        }
        hi = hi.max(lo);
        while hi < samples.len() && samples[hi].t <= rt {
            hi += 1;
        }
        let prev = (lo > 0 && samples[lo - 1].t > start - m.lookback).then(|| samples[lo - 1]);
        pts.clear();
        match mode {
            RangeMode::Anchored => {
                if lo == hi {
                    continue;
                }
                pts.push(prev.unwrap_or(samples[lo]).v);
                pts.extend(samples[lo..hi].iter().map(|p| p.v));
            }
            RangeMode::Smoothed => {
                let next = samples.get(hi).filter(|p| p.t <= rt + m.lookback).copied();
                if lo == hi {
                    let (Some(a), Some(b)) = (prev, next) else {
                        continue;
                    };
                    pts.push(interp(a, b, start));
                    pts.push(interp(a, b, rt));
                } else {
                    pts.push(prev.map_or(samples[lo].v, |a| interp(a, samples[lo], start)));
                    pts.extend(samples[lo..hi].iter().map(|p| p.v));
                    pts.push(next.map_or(samples[hi - 1].v, |b| interp(samples[hi - 1], b, rt)));
                }
            }
        }
        f(i, &pts);
    }
}

/// The increase of counter values (a fall restarts from 0).
fn counter_increase(pts: &[f64]) -> f64 {
    pts.windows(2)
        .map(|w| if w[1] >= w[0] { w[1] - w[0] } else { w[1] })
        .sum()
}

/// Applies `f` to the points of every `anchored`/`smoothed` window (see
/// [`mode_windows`]); the results drop the metric name.
fn over_mode_windows(m: &Matrix, counter: bool, mut f: impl FnMut(&[f64]) -> f64) -> Val {
    per_series(m, false, |s, vals| {
        let mut any = false;
        mode_windows(m, &s.samples, counter, |i, pts| {
            vals[i] = f(pts);
            any = true;
        });
        any
    })
}

/// `rate`/`increase`/`delta` over `anchored`/`smoothed` windows: no
/// extrapolation, the windows' ends are real or interpolated values.
fn mode_rate_over(m: Matrix, counter: bool, is_rate: bool) -> Val {
    let secs = m.range as f64 / 1000.0;
    over_mode_windows(&m, counter, |pts| {
        let v = if counter {
            counter_increase(pts)
        } else {
            pts[pts.len() - 1] - pts[0]
        };
        if is_rate { v / secs } else { v }
    })
}

/// `changes` and `resets` (`count` of the consecutive pairs it is given),
/// over plain or anchored windows.
fn count_pairs(m: Matrix, count: impl Fn(&[f64]) -> usize) -> Val {
    if m.mode.is_none() {
        let mut buf = Vec::new();
        return over_time(m, false, |p, _, _| {
            buf.clear();
            buf.extend(values(p));
            Some(count(&buf) as f64)
        });
    }
    over_mode_windows(&m, false, |pts| count(pts) as f64)
}

/// Refuses `anchored`/`smoothed` range arguments to functions they do not
/// apply to, with Prometheus's messages.
fn check_range_modes(name: &str, args: &[Box<Expr>]) -> Result<(), Error> {
    for a in args {
        let mut e: &Expr = a;
        while let Expr::Paren(p) = e {
            e = &p.expr;
        }
        let Expr::MatrixSelector(ms) = e else {
            continue;
        };
        let (mode, allowed): (&str, &[&str]) = match range_mode(&ms.vs) {
            None => continue,
            Some(RangeMode::Anchored) => (
                "anchored",
                &["changes", "delta", "increase", "rate", "resets"],
            ),
            Some(RangeMode::Smoothed) => ("smoothed", &["delta", "increase", "rate"]),
        };
        if !allowed.contains(&name) {
            return Err(Error::Execution(format!(
                "{mode} modifier can only be used with: {} - not with {name}",
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

/// Extrapolates the increase of a histogram window to the window's ends as
/// Prometheus extrapolates floats (the count standing for the value when
/// finding the counter's zero point); per second for `rate`.
#[allow(clippy::too_many_arguments)]
fn extrapolate_histogram(
    h: &mut FloatHistogram,
    first: &HistogramSample,
    last_t: i64,
    n: usize,
    range_start: i64,
    range_end: i64,
    counter: bool,
    is_rate: bool,
) {
    let mut to_start = (first.t - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first.t) as f64 / 1000.0;
    let avg = sampled / (n - 1) as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if counter && h.count > 0.0 && first.h.count >= 0.0 {
        let to_zero = sampled * (first.h.count / h.count);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = if sampled != 0.0 {
        (sampled + to_start + to_end) / sampled
    } else {
        1.0
    };
    if is_rate {
        factor /= (range_end - range_start) as f64 / 1000.0;
    }
    h.mul(factor);
}

/// `rate`/`increase`/`delta` over a range holding native histograms: a
/// window of histograms gives a histogram, a window of floats a float, a
/// window of both nothing (with a warning).
fn histogram_rate_over(ctx: &mut Ctx, c: &Call, m: Matrix, name: &str) -> Val {
    let (counter, is_rate) = (name != "delta", name == "rate");
    let at = (c as *const Call as usize, Some(0));
    if name != "delta" {
        for s in m.series.iter().filter(|s| !s.samples.is_empty()) {
            let metric = s.labels.get(METRIC_NAME).unwrap_or("");
            if !["_total", "_sum", "_count", "_bucket"]
                .iter()
                .any(|x| metric.ends_with(x))
            {
                ctx.info(
                    format!(
                        "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {metric:?}"
                    ),
                    at,
                );
            }
        }
    }
    let range = m.range;
    if let Some(mode) = m.mode {
        let mut notes = Notes::default();
        let secs = range as f64 / 1000.0;
        let v = per_series_both(&m, false, |s, vals, hist| {
            let metric = s.labels.get(METRIC_NAME).unwrap_or("");
            let mut any = false;
            if s.histograms.is_empty() {
                mode_windows(&m, &s.samples, counter, |i, pts| {
                    let v = if counter {
                        counter_increase(pts)
                    } else {
                        pts[pts.len() - 1] - pts[0]
                    };
                    vals[i] = if is_rate { v / secs } else { v };
                    any = true;
                });
                return any;
            }
            for (i, &rt) in m.ref_t.iter().enumerate() {
                let (fw, hw) = mode_slices(&m, s, rt, mode);
                if !fw.is_empty() && !hw.is_empty() {
                    notes.mixed_floats(metric);
                    continue;
                }
                if hw.is_empty() {
                    continue;
                }
                if let Some(h) = extended_histogram_rate(
                    hw,
                    rt - range,
                    rt,
                    mode == RangeMode::Smoothed,
                    counter,
                    is_rate,
                    metric,
                    &mut notes,
                ) {
                    hist[i] = Some(Arc::new(h));
                    any = true;
                }
            }
            any
        });
        ctx.notes(notes, at);
        return v;
    }
    over_time_both(ctx, m, false, at, |_, w, hw, rt, metric, notes| {
        if !w.is_empty() && !hw.is_empty() {
            notes.mixed_floats(metric);
            return None;
        }
        if hw.is_empty() {
            return extrapolated(w, rt - range, rt, counter, is_rate, true).map(Out::F);
        }
        if hw.len() < 2 {
            return None;
        }
        let mut h = nativehist::window_increase(hw, counter, metric, notes)?;
        extrapolate_histogram(
            &mut h,
            &hw[0],
            hw[hw.len() - 1].t,
            hw.len(),
            rt - range,
            rt,
            counter,
            is_rate,
        );
        Some(Out::H(Arc::new(h)))
    })
}

/// A series' float and histogram samples an `anchored`/`smoothed` window at
/// `rt` sees: those in the window, the last one at or before its start
/// within the lookback (of either kind: the newer one), and for `smoothed`
/// the first one after its end within the lookback.
fn mode_slices<'a>(
    m: &Matrix,
    s: &'a Series,
    rt: i64,
    mode: RangeMode,
) -> (&'a [Sample], &'a [HistogramSample]) {
    let start = rt - m.range;
    let (fs, hs) = (&s.samples, &s.histograms);
    let (mut flo, mut fhi) = (
        fs.partition_point(|p| p.t <= start),
        fs.partition_point(|p| p.t <= rt),
    );
    let (mut hlo, mut hhi) = (
        hs.partition_point(|p| p.t <= start),
        hs.partition_point(|p| p.t <= rt),
    );
    if flo == fhi && hlo == hhi && mode == RangeMode::Anchored {
        return (&[], &[]);
    }
    let f_anchor = (flo > 0 && fs[flo - 1].t > start - m.lookback).then(|| fs[flo - 1].t);
    let h_anchor = (hlo > 0 && hs[hlo - 1].t > start - m.lookback).then(|| hs[hlo - 1].t);
    match (f_anchor, h_anchor) {
        (Some(f), Some(h)) if f > h => flo -= 1,
        (Some(_), None) => flo -= 1,
        (_, Some(_)) => hlo -= 1,
        _ => {}
    }
    if mode == RangeMode::Smoothed {
        let f_next = fs.get(fhi).filter(|p| p.t <= rt + m.lookback).map(|p| p.t);
        let h_next = hs.get(hhi).filter(|p| p.t <= rt + m.lookback).map(|p| p.t);
        match (f_next, h_next) {
            (Some(f), Some(h)) if f < h => fhi += 1,
            (Some(_), None) => fhi += 1,
            (_, Some(_)) => hhi += 1,
            _ => {}
        }
    }
    (&fs[flo..fhi], &hs[hlo..hhi])
}

/// The histogram at `t` between two samples, linearly (a counter reset
/// between them restarts from zero).
fn interpolate_histogram(
    a: &HistogramSample,
    b: &HistogramSample,
    t: i64,
    counter: bool,
    metric: &str,
    notes: &mut Notes,
) -> Option<FloatHistogram> {
    if t == a.t {
        return Some((*a.h).clone());
    }
    if t == b.t {
        return Some((*b.h).clone());
    }
    let frac = (t - a.t) as f64 / (b.t - a.t) as f64;
    let mut r = (*b.h).clone();
    if counter && b.h.detect_reset(&a.h) {
        r.mul(frac);
        return Some(r);
    }
    if !nativehist::add_into(&mut r, &a.h, true, "subtraction", metric, notes) {
        return None;
    }
    r.mul(frac);
    if !nativehist::add_into(&mut r, &a.h, false, "addition", metric, notes) {
        return None;
    }
    Some(r)
}

/// `rate`/`increase`/`delta` of histograms over an `anchored` or `smoothed`
/// window (`h`: the samples [`mode_slices`] gives): no extrapolation; the
/// ends are the boundary samples or, smoothed, interpolated at the window's
/// ends; counter resets inside are corrected for.
#[allow(clippy::too_many_arguments)]
fn extended_histogram_rate(
    h: &[HistogramSample],
    range_start: i64,
    range_end: i64,
    smoothed: bool,
    counter: bool,
    is_rate: bool,
    metric: &str,
    notes: &mut Notes,
) -> Option<FloatHistogram> {
    let mut last = h.len() - 1;
    let first = h.partition_point(|p| p.t <= range_start).saturating_sub(1);
    if smoothed {
        last = h[..last].partition_point(|p| p.t < range_end);
    }
    if h[last].t <= range_start || (smoothed && h[first].t > range_end) {
        return None;
    }
    let custom = h[first].h.uses_custom_buckets();
    for p in &h[first..=last] {
        if p.h.uses_custom_buckets() != custom {
            notes.mixed_schemas(metric);
            return None;
        }
        if counter && p.h.hint == day2_model::CounterResetHint::Gauge {
            notes.not_counter(metric);
        }
    }
    let left = if smoothed && h[first].t < range_start {
        interpolate_histogram(
            &h[first],
            &h[first + 1],
            range_start,
            counter,
            metric,
            notes,
        )?
    } else {
        (*h[first].h).clone()
    };
    let right = if smoothed && last > 0 && h[last].t > range_end {
        interpolate_histogram(&h[last - 1], &h[last], range_end, counter, metric, notes)?
    } else {
        (*h[last].h).clone()
    };
    use day2_model::CounterResetHint::Gauge;
    if !counter && (left.hint != Gauge || right.hint != Gauge) {
        notes.not_gauge(metric);
    }
    let mut result = right.clone();
    if !nativehist::add_into(&mut result, &left, true, "subtraction", metric, notes) {
        return None;
    }
    if counter {
        // resets between the boundaries (the boundary samples themselves are
        // the ends; a reset the left interpolation spanned is accounted for)
        let mut from = first + 1;
        let mut prev: &FloatHistogram = &left;
        if smoothed && h[first].t < range_start && h[first + 1].h.detect_reset(&h[first].h) {
            prev = &h[first + 1].h;
            from += 1;
        }
        let mut correction: Option<FloatHistogram> = None;
        if from <= last {
            let mut add = |x: &FloatHistogram, notes: &mut Notes| -> bool {
                match correction.as_mut() {
                    None => {
                        correction = Some(x.clone());
                        true
                    }
                    Some(c) => nativehist::add_into(c, x, false, "addition", metric, notes),
                }
            };
            for p in &h[from..last] {
                if p.h.detect_reset(prev) && !add(prev, notes) {
                    return None;
                }
                prev = &p.h;
            }
            if right.detect_reset(prev) && !add(prev, notes) {
                return None;
            }
        }
        if let Some(c) = correction
            && !nativehist::add_into(&mut result, &c, false, "addition", metric, notes)
        {
            return None;
        }
    }
    if is_rate {
        result.div((range_end - range_start) as f64 / 1000.0);
    }
    result.hint = Gauge;
    result.compact();
    Some(result)
}

/// `irate`/`idelta` over the last two samples of either kind.
fn instant_delta_both(
    w: &[Sample],
    hw: &[HistogramSample],
    is_rate: bool,
    metric: &str,
    notes: &mut Notes,
) -> Option<Out> {
    if w.len() + hw.len() < 2 {
        return None;
    }
    // the last two samples, oldest first
    enum S<'a> {
        F(Sample),
        H(&'a HistogramSample),
    }
    let t = |x: &S| match x {
        S::F(p) => p.t,
        S::H(h) => h.t,
    };
    let mut last: Vec<S> = w[w.len().saturating_sub(2)..]
        .iter()
        .map(|p| S::F(*p))
        .chain(hw[hw.len().saturating_sub(2)..].iter().map(S::H))
        .collect();
    last.sort_by_key(|x| t(x));
    let (prev, cur) = (&last[last.len() - 2], &last[last.len() - 1]);
    let dt = t(cur) - t(prev);
    if dt == 0 {
        return None;
    }
    match (prev, cur) {
        (S::F(_), S::F(_)) => instant_delta(&w[w.len() - 2..], is_rate).map(Out::F),
        (S::H(p), S::H(c)) => {
            let mut h = (*c.h).clone();
            if is_rate
                && (c.h.hint == day2_model::CounterResetHint::Gauge
                    || p.h.hint == day2_model::CounterResetHint::Gauge)
            {
                notes.not_counter(metric);
            }
            if !is_rate
                && (c.h.hint != day2_model::CounterResetHint::Gauge
                    || p.h.hint != day2_model::CounterResetHint::Gauge)
            {
                notes.not_gauge(metric);
            }
            if (!is_rate || !c.h.detect_reset(&p.h))
                && !nativehist::add_into(&mut h, &p.h, true, "subtraction", metric, notes)
            {
                return None;
            }
            h.hint = day2_model::CounterResetHint::Gauge;
            h.compact();
            if is_rate {
                h.div(dt as f64 / 1000.0);
            }
            Some(Out::H(Arc::new(h)))
        }
        _ => {
            notes.mixed_floats(metric);
            None
        }
    }
}

/// `changes` and `resets` over ranges holding histograms: samples of both
/// kinds in time order; a change of kind is a change and a reset.
fn changes_or_resets_both(m: Matrix, resets: bool) -> Val {
    per_series_both(&m, false, |s, vals, _| {
        let mut any = false;
        let mut step = |i: usize, w: &[Sample], hw: &[HistogramSample]| {
            let (mut fi, mut hi) = (0, 0);
            let mut prev: Option<Result<f64, &FloatHistogram>> = None;
            let mut n = 0usize;
            while fi < w.len() || hi < hw.len() {
                let cur = if hi >= hw.len() || (fi < w.len() && w[fi].t < hw[hi].t) {
                    fi += 1;
                    Ok(w[fi - 1].v)
                } else {
                    hi += 1;
                    Err(&*hw[hi - 1].h)
                };
                if let Some(p) = &prev {
                    n += match (p, &cur) {
                        (Ok(a), Ok(b)) => {
                            if resets {
                                usize::from(b < a)
                            } else {
                                usize::from(a != b && !(a.is_nan() && b.is_nan()))
                            }
                        }
                        (Err(a), Err(b)) => {
                            if resets {
                                usize::from(b.detect_reset(a))
                            } else {
                                usize::from(!b.equals(a))
                            }
                        }
                        _ => 1,
                    };
                }
                prev = Some(cur);
            }
            vals[i] = n as f64;
            any = true;
        };
        if m.mode == Some(RangeMode::Anchored) {
            for (i, &rt) in m.ref_t.iter().enumerate() {
                let (w, hw) = mode_slices(&m, s, rt, RangeMode::Anchored);
                if !w.is_empty() || !hw.is_empty() {
                    step(i, w, hw);
                }
            }
        } else {
            m.for_windows_both(s, |i, w, hw, _| step(i, w, hw));
        }
        any
    })
}

/// `rate`/`increase`/`delta` over every window; counter resets are located
/// once per series, so windows without a reset skip the reset scan.
fn rate_over(m: Matrix, counter: bool, is_rate: bool) -> Val {
    if m.mode.is_some() {
        return mode_rate_over(m, counter, is_rate);
    }
    let range = m.range;
    let mut resets: Vec<u32> = Vec::new();
    per_series(&m, false, |s, vals| {
        let p = &s.samples;
        // resets[i]: resets among p[..=i]
        resets.clear();
        let mut c = 0u32;
        for i in 0..p.len() {
            if i > 0 && p[i].v < p[i - 1].v {
                c += 1;
            }
            resets.push(c);
        }
        let mut any = false;
        let base = p.as_ptr() as usize;
        m.for_windows(p, |i, w, rt| {
            if w.len() < 2 {
                return;
            }
            let lo = (w.as_ptr() as usize - base) / std::mem::size_of::<Sample>();
            let hi = lo + w.len() - 1;
            let has_reset = counter && resets[hi] != resets[lo];
            if let Some(v) = extrapolated(w, rt - range, rt, counter, is_rate, has_reset) {
                vals[i] = v;
                any = true;
            }
        });
        any
    })
}

/// `avg_over_time` of floats: the Kahan sum divided, or an incremental mean
/// when the sum overflows.
fn avg_of(p: &[Sample]) -> f64 {
    let s = sum_of(p);
    if !s.is_finite() && values(p).all(f64::is_finite) {
        let mut mean = 0.0;
        for (i, v) in values(p).enumerate() {
            mean += (v - mean) / (i + 1) as f64;
        }
        mean
    } else {
        s / p.len() as f64
    }
}

fn sum_of(p: &[Sample]) -> f64 {
    let mut k = KahanSum::default();
    values(p).for_each(|v| k.add(v));
    k.value()
}

fn values(p: &[Sample]) -> impl Iterator<Item = f64> + '_ {
    p.iter().map(|x| x.v)
}

fn stdvar(p: &[Sample]) -> f64 {
    let (mut mean, mut m2) = (0.0f64, 0.0f64);
    for (i, v) in values(p).enumerate() {
        let d = v - mean;
        mean += d / (i + 1) as f64;
        m2 += d * (v - mean);
    }
    m2 / p.len() as f64
}

/// Labels for `absent`/`absent_over_time`: the equality matchers of the selector.
fn absent_labels(func: &str, e: &Expr) -> Result<Labels, Error> {
    let vs = match e {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(m) => &m.vs,
        _ => return Ok(Labels::empty()),
    };
    let mut b = LabelsBuilder::new();
    let mut seen = std::collections::HashMap::new();
    for m in &vs.matchers.matchers {
        *seen.entry(m.name.clone()).or_insert(0) += 1;
    }
    for m in &vs.matchers.matchers {
        if matches!(m.op, promql_parser::label::MatchOp::Equal)
            && m.name != METRIC_NAME
            && seen[&m.name] == 1
        {
            if let Some(bytes) = gostr::invalid(&m.name) {
                return Err(not_utf8(&format!("{func}(): label name"), &bytes));
            }
            if let Some(bytes) = gostr::invalid(&m.value) {
                return Err(not_utf8(&format!("{func}(): label value"), &bytes));
            }
            b.set(m.name.clone(), m.value.clone());
        }
    }
    Ok(b.build())
}

/// A label name or value that would hold bytes that are not UTF-8: Prometheus
/// would return it; day2's labels are UTF-8, so the query is refused.
fn not_utf8(what: &str, b: &gostr::Bytes) -> Error {
    Error::Execution(format!("{what} {} is not valid UTF-8", b.quoted()))
}

/// One series with empty labels and `f(step)` at every step.
fn per_step(g: &Grid, f: impl Fn(usize) -> f64) -> Val {
    Val::Vector(vec![VSeries::new(
        Labels::empty(),
        (0..g.n).map(f).collect(),
    )])
}

/// Reorders the series by `cmp` of their only slot (instant queries); range
/// queries are sorted by labels at the end, as in Prometheus.
fn sort_instant(
    mut v: Vec<VSeries>,
    g: &Grid,
    cmp: impl Fn(&VSeries, &VSeries) -> std::cmp::Ordering,
) -> Vec<VSeries> {
    if g.n == 1 {
        v.sort_by(cmp);
    }
    v
}

fn nan_last(x: f64, y: f64, desc: bool) -> std::cmp::Ordering {
    match (x.is_nan(), y.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ if desc => y.partial_cmp(&x).unwrap(),
        _ => x.partial_cmp(&y).unwrap(),
    }
}

fn parse_le(le: &str) -> Option<f64> {
    le.trim().parse::<f64>().ok().or(match le.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    })
}

pub(crate) fn call(ctx: &mut Ctx, c: &Call, g: &Grid) -> Result<Val, Error> {
    let name = c.func.name;
    let args = &c.args.args;
    check_range_modes(name, args)?;
    let a = |i: usize| -> &Expr { &args[i] };
    let secs = |i: usize| g.t(i) as f64 / 1000.0;
    Ok(match name {
        "time" => Val::Scalar((0..g.n).map(secs).collect()),
        "start" => Val::Scalar(vec![ctx.start as f64 / 1000.0; g.n]),
        "end" => Val::Scalar(vec![ctx.end as f64 / 1000.0; g.n]),
        "step" => Val::Scalar(vec![ctx.step as f64 / 1000.0; g.n]),
        "range" => Val::Scalar(vec![(ctx.end - ctx.start) as f64 / 1000.0; g.n]),
        "count_over_time"
        | "last_over_time"
        | "first_over_time"
        | "present_over_time"
        | "ts_of_first_over_time"
        | "ts_of_last_over_time" => {
            let m = arg_matrix(ctx, a(0), g)?;
            let keep = matches!(name, "last_over_time" | "first_over_time");
            over_time_both(
                ctx,
                m,
                keep,
                (c as *const Call as usize, Some(0)),
                |_, w, hw, _, _, _| {
                    let (fl, hl) = (w.last(), hw.last());
                    let (ff, hf) = (w.first(), hw.first());
                    Some(match name {
                        "count_over_time" => Out::F((w.len() + hw.len()) as f64),
                        "present_over_time" => Out::F(1.0),
                        "last_over_time" => match (fl, hl) {
                            (Some(f), Some(h)) if h.t < f.t => Out::F(f.v),
                            (Some(f), None) => Out::F(f.v),
                            (_, Some(h)) => Out::H(h.h.clone()),
                            _ => return None,
                        },
                        "first_over_time" => match (ff, hf) {
                            (Some(f), Some(h)) if f.t < h.t => Out::F(f.v),
                            (Some(f), None) => Out::F(f.v),
                            (_, Some(h)) => Out::H(h.h.clone()),
                            _ => return None,
                        },
                        "ts_of_first_over_time" => Out::F(
                            ff.map_or(i64::MAX, |x| x.t)
                                .min(hf.map_or(i64::MAX, |x| x.t))
                                as f64
                                / 1000.0,
                        ),
                        _ => Out::F(
                            fl.map_or(i64::MIN, |x| x.t)
                                .max(hl.map_or(i64::MIN, |x| x.t))
                                as f64
                                / 1000.0,
                        ),
                    })
                },
            )
        }
        "ts_of_min_over_time" | "ts_of_max_over_time" => {
            let m = matrix_noting_histograms(ctx, c, a(0), g)?;
            over_time(m, false, |p, _, _| {
                let pick = match name {
                    // the last occurrence of the extreme value wins, NaN only if all are NaN
                    "ts_of_min_over_time" => p.iter().fold(None, |m: Option<&Sample>, x| match m {
                        Some(b) if !(x.v <= b.v || b.v.is_nan()) => Some(b),
                        _ => Some(x),
                    }),
                    _ => p.iter().fold(None, |m: Option<&Sample>, x| match m {
                        Some(b) if !(x.v >= b.v || b.v.is_nan()) => Some(b),
                        _ => Some(x),
                    }),
                };
                pick.map(|x| x.t as f64 / 1000.0)
            })
        }
        "pi" => Val::Scalar(vec![std::f64::consts::PI; g.n]),
        "min_of" | "max_of" => {
            // Go's math.Min/Max of scalars: NaN wins
            let mut acc = arg_scalar(ctx, a(0), g)?;
            for e in &args[1..] {
                let b = arg_scalar(ctx, e, g)?;
                for (x, y) in acc.iter_mut().zip(b) {
                    *x = if x.is_nan() || y.is_nan() {
                        f64::NAN
                    } else if name == "min_of" {
                        x.min(y)
                    } else {
                        x.max(y)
                    };
                }
            }
            Val::Scalar(acc)
        }
        "vector" => Val::Vector(vec![VSeries::new(
            Labels::empty(),
            arg_scalar(ctx, a(0), g)?,
        )]),
        "scalar" => {
            let v = arg_vector(ctx, a(0), g)?;
            let mut count = vec![0u32; g.n];
            let mut val = vec![f64::NAN; g.n];
            for s in &v {
                for (i, &x) in s.vals.iter().enumerate() {
                    if has(x) {
                        count[i] += 1;
                        val[i] = x;
                    }
                }
            }
            Val::Scalar(
                val.into_iter()
                    .zip(count)
                    .map(|(v, c)| if c == 1 { v } else { f64::NAN })
                    .collect(),
            )
        }
        "abs" | "ceil" | "floor" | "exp" | "ln" | "log2" | "log10" | "sqrt" | "sgn" | "acos"
        | "acosh" | "asin" | "asinh" | "atan" | "atanh" | "cos" | "cosh" | "sin" | "sinh"
        | "tan" | "tanh" | "deg" | "rad" => {
            let v = arg_vector(ctx, a(0), g)?;
            let f: fn(f64) -> f64 = match name {
                "abs" => f64::abs,
                "ceil" => f64::ceil,
                "floor" => f64::floor,
                "exp" => f64::exp,
                "ln" => f64::ln,
                "log2" => f64::log2,
                "log10" => f64::log10,
                "sqrt" => f64::sqrt,
                "sgn" => |x: f64| {
                    if x > 0.0 {
                        1.0
                    } else if x < 0.0 {
                        -1.0
                    } else {
                        x
                    }
                },
                "acos" => f64::acos,
                "acosh" => f64::acosh,
                "asin" => f64::asin,
                "asinh" => f64::asinh,
                "atan" => f64::atan,
                "atanh" => f64::atanh,
                "cos" => f64::cos,
                "cosh" => f64::cosh,
                "sin" => f64::sin,
                "sinh" => f64::sinh,
                "tan" => f64::tan,
                "tanh" => f64::tanh,
                "deg" => f64::to_degrees,
                _ => f64::to_radians,
            };
            map_vector(v, |x, _| f(x))
        }
        "round" => {
            let v = arg_vector(ctx, a(0), g)?;
            let to = if args.len() > 1 {
                arg_scalar(ctx, a(1), g)?
            } else {
                vec![1.0; g.n]
            };
            map_vector(v, |x, i| round_to(x, to[i]))
        }
        "clamp" if trim_mark(a(2)).is_some() => {
            let keep_below = trim_mark(a(2)) == Some(true);
            let mut e = a(0);
            while let Expr::Paren(p) = e {
                e = &p.expr;
            }
            let Expr::Binary(b) = e else {
                unreachable!("the rewritten trim operator wraps a binary operation")
            };
            crate::binary::eval_trim(ctx, b, g, keep_below)?
        }
        "clamp" => {
            let v = arg_vector(ctx, a(0), g)?;
            let (lo, hi) = (arg_scalar(ctx, a(1), g)?, arg_scalar(ctx, a(2), g)?);
            let mut v = match map_vector(v, |x, i| {
                if x.is_nan() || lo[i].is_nan() || hi[i].is_nan() {
                    f64::NAN
                } else {
                    x.max(lo[i]).min(hi[i])
                }
            }) {
                Val::Vector(v) => v,
                _ => unreachable!(),
            };
            // no result at steps where the bounds are crossed
            for s in v.iter_mut() {
                for (i, x) in s.vals.iter_mut().enumerate() {
                    if lo[i] > hi[i] {
                        *x = ABSENT;
                    }
                }
            }
            v.retain(|s| s.vals.iter().any(|x| has(*x)));
            Val::Vector(v)
        }
        "clamp_min" | "clamp_max" => {
            let v = arg_vector(ctx, a(0), g)?;
            let b = arg_scalar(ctx, a(1), g)?;
            let min = name == "clamp_min";
            map_vector(v, move |x, i| {
                let b = b[i];
                if x.is_nan() || b.is_nan() {
                    f64::NAN
                } else if min {
                    x.max(b)
                } else {
                    x.min(b)
                }
            })
        }
        "timestamp" => {
            let mut inner = a(0);
            while let Expr::Paren(p) = inner {
                inner = &p.expr;
            }
            match inner {
                Expr::VectorSelector(vs) => {
                    let mut v = ctx.select_instant(vs, g, true);
                    for s in v.iter_mut() {
                        s.dropped = true;
                    }
                    Val::Vector(v)
                }
                e => {
                    let mut v = arg_vector(ctx, e, g)?;
                    for s in v.iter_mut() {
                        if let Some(h) = s.hist.take() {
                            for (i, h) in h.iter().enumerate() {
                                if h.is_some() {
                                    s.vals[i] = 0.0;
                                }
                            }
                        }
                    }
                    map_vector(v, |_, i| secs(i))
                }
            }
        }
        "minute" | "hour" | "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month"
        | "month" | "year" => {
            if args.is_empty() {
                per_step(g, |i| date_part(name, secs(i)))
            } else {
                map_vector(arg_vector(ctx, a(0), g)?, |x, _| date_part(name, x))
            }
        }
        "rate" | "increase" | "delta" => {
            let m = arg_matrix(ctx, a(0), g)?;
            if m.series.iter().any(|s| !s.histograms.is_empty()) {
                return Ok(histogram_rate_over(ctx, c, m, name));
            }
            if name != "delta" {
                // Prometheus's hint that the input may not be a counter
                for s in &m.series {
                    let metric = s.labels.get(METRIC_NAME).unwrap_or("");
                    if ["_total", "_sum", "_count", "_bucket"]
                        .iter()
                        .all(|suffix| !metric.ends_with(suffix))
                    {
                        ctx.info(
                            format!(
                                "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {metric:?}"
                            ),
                            (c as *const Call as usize, Some(0)),
                        );
                    }
                }
            }
            rate_over(m, name != "delta", name == "rate")
        }
        "irate" | "idelta" => {
            let m = arg_matrix(ctx, a(0), g)?;
            if m.series.iter().all(|s| s.histograms.is_empty()) {
                return Ok(over_time(m, false, |p, _, _| {
                    instant_delta(p, name == "irate")
                }));
            }
            let is_rate = name == "irate";
            over_time_both(
                ctx,
                m,
                false,
                (c as *const Call as usize, Some(0)),
                |_, w, hw, _, metric, notes| instant_delta_both(w, hw, is_rate, metric, notes),
            )
        }
        "deriv" => {
            let m = arg_matrix(ctx, a(0), g)?;
            note_ignored_histograms(ctx, &m, (c as *const Call as usize, Some(0)));
            over_time(m, false, |p, _, _| {
                (p.len() >= 2).then(|| linear_regression(p, p[0].t).0)
            })
        }
        "predict_linear" => {
            // the intercept is at the evaluation time, whatever @ or offset say
            let m = arg_matrix(ctx, a(0), g)?;
            note_ignored_histograms(ctx, &m, (c as *const Call as usize, Some(0)));
            let d = arg_scalar(ctx, a(1), g)?;
            over_time(m, false, |p, i, _| {
                (p.len() >= 2).then(|| {
                    let (slope, intercept) = linear_regression(p, g.t(i));
                    slope * d[i] + intercept
                })
            })
        }
        "holt_winters" | "double_exponential_smoothing" => {
            let m = arg_matrix(ctx, a(0), g)?;
            note_ignored_histograms(ctx, &m, (c as *const Call as usize, Some(0)));
            let (sf, tf) = (arg_scalar(ctx, a(1), g)?, arg_scalar(ctx, a(2), g)?);
            for (&sf, &tf) in sf.iter().zip(&tf) {
                if sf <= 0.0 || sf >= 1.0 {
                    return Err(Error::Execution(format!(
                        "invalid smoothing factor. Expected: 0 < sf < 1, got: {}",
                        format_f(sf)
                    )));
                }
                if tf <= 0.0 || tf >= 1.0 {
                    return Err(Error::Execution(format!(
                        "invalid trend factor. Expected: 0 < tf < 1, got: {}",
                        format_f(tf)
                    )));
                }
            }
            over_time(m, false, |p, i, _| holt_winters(p, sf[i], tf[i]))
        }
        "changes" | "resets" => {
            let m = arg_matrix(ctx, a(0), g)?;
            if m.series.iter().any(|s| !s.histograms.is_empty()) {
                return Ok(changes_or_resets_both(m, name == "resets"));
            }
            if name == "resets" {
                count_pairs(m, |p| p.windows(2).filter(|w| w[1] < w[0]).count())
            } else {
                count_pairs(m, |p| {
                    p.windows(2)
                        .filter(|w| w[0] != w[1] && !(w[0].is_nan() && w[1].is_nan()))
                        .count()
                })
            }
        }
        "avg_over_time" | "sum_over_time" => {
            let m = arg_matrix(ctx, a(0), g)?;
            let avg = name == "avg_over_time";
            if m.series.iter().all(|s| s.histograms.is_empty()) {
                return Ok(over_time(m, false, |p, _, _| {
                    Some(if avg { avg_of(p) } else { sum_of(p) })
                }));
            }
            over_time_both(
                ctx,
                m,
                false,
                (c as *const Call as usize, Some(0)),
                |_, w, hw, _, metric, notes| {
                    if !w.is_empty() && !hw.is_empty() {
                        notes.mixed_floats(metric);
                        return None;
                    }
                    if hw.is_empty() {
                        return Some(Out::F(if avg { avg_of(w) } else { sum_of(w) }));
                    }
                    let h = nativehist::sum_or_mean(hw.iter().map(|p| &*p.h), avg, metric, notes)?;
                    Some(Out::H(Arc::new(h)))
                },
            )
        }
        "min_over_time" => over_time(
            matrix_noting_histograms(ctx, c, a(0), g)?,
            false,
            |p, _, _| {
                Some(values(p).fold(f64::NAN, |m, v| if m.is_nan() || v < m { v } else { m }))
            },
        ),
        "max_over_time" => over_time(
            matrix_noting_histograms(ctx, c, a(0), g)?,
            false,
            |p, _, _| {
                Some(values(p).fold(f64::NAN, |m, v| if m.is_nan() || v > m { v } else { m }))
            },
        ),
        "stdvar_over_time" => over_time(
            matrix_noting_histograms(ctx, c, a(0), g)?,
            false,
            |p, _, _| Some(stdvar(p)),
        ),
        "stddev_over_time" => over_time(
            matrix_noting_histograms(ctx, c, a(0), g)?,
            false,
            |p, _, _| Some(stdvar(p).sqrt()),
        ),
        "mad_over_time" => over_time(
            matrix_noting_histograms(ctx, c, a(0), g)?,
            false,
            |p, _, _| {
                // a NaN sample makes the result NaN
                if values(p).any(f64::is_nan) {
                    return Some(f64::NAN);
                }
                let mut v: Vec<f64> = values(p).collect();
                let med = quantile(0.5, &mut v);
                let mut dev: Vec<f64> = values(p).map(|x| (x - med).abs()).collect();
                Some(quantile(0.5, &mut dev))
            },
        ),
        "quantile_over_time" => {
            let q = arg_scalar(ctx, a(0), g)?;
            if let Some(bad) = q.iter().find(|q| !(0.0..=1.0).contains(*q)) {
                ctx.warn(
                    format!(
                        "quantile value should be between 0 and 1, got {}",
                        format_f(*bad)
                    ),
                    (c as *const Call as usize, Some(0)),
                );
            }
            let m = arg_matrix(ctx, a(1), g)?;
            note_ignored_histograms(ctx, &m, (c as *const Call as usize, Some(0)));
            over_time(m, false, |p, i, _| {
                let mut v: Vec<f64> = values(p).collect();
                Some(quantile(q[i], &mut v))
            })
        }
        "absent_over_time" => {
            let m = arg_matrix(ctx, a(0), g)?;
            let mut present = vec![false; g.n];
            for s in &m.series {
                m.for_windows_both(s, |i, _, _, _| present[i] = true);
            }
            absent_result(name, a(0), g, &present)?
        }
        "absent" => {
            let v = arg_vector(ctx, a(0), g)?;
            let mut present = vec![false; g.n];
            for s in &v {
                for (i, p) in present.iter_mut().enumerate() {
                    *p |= s.present(i);
                }
            }
            absent_result(name, a(0), g, &present)?
        }
        "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" if ctx.step != 0 => {
            ctx.warn(
                "sort is ineffective for range queries since results are always ordered by labels"
                    .into(),
                (c as *const Call as usize, None),
            );
            Val::Vector(arg_vector(ctx, a(0), g)?)
        }
        "sort" | "sort_desc" => {
            let mut v = arg_vector(ctx, a(0), g)?;
            drop_histograms(&mut v);
            let desc = name == "sort_desc";
            Val::Vector(sort_instant(v, g, |x, y| {
                nan_last(x.vals[0], y.vals[0], desc)
            }))
        }
        "sort_by_label" | "sort_by_label_desc" => {
            let mut v = arg_vector(ctx, a(0), g)?;
            materialise(&mut v);
            let mut names = Vec::new();
            for e in &args[1..] {
                names.push(arg_string(ctx, e, g)?);
            }
            Val::Vector(sort_instant(v, g, |x, y| {
                let mut o = std::cmp::Ordering::Equal;
                for n in &names {
                    o = natural_cmp(x.labels.get(n).unwrap_or(""), y.labels.get(n).unwrap_or(""));
                    if o != std::cmp::Ordering::Equal {
                        break;
                    }
                }
                if o == std::cmp::Ordering::Equal {
                    o = x.labels.cmp(&y.labels);
                }
                if name == "sort_by_label_desc" {
                    o.reverse()
                } else {
                    o
                }
            }))
        }
        "label_replace" => {
            // the name is still there when it is to be dropped: it can be read,
            // and setting it keeps it
            let mut v = arg_vector(ctx, a(0), g)?;
            let dst = arg_string(ctx, a(1), g)?;
            let repl = arg_string(ctx, a(2), g)?;
            let src = arg_string(ctx, a(3), g)?;
            let re_s = arg_string(ctx, a(4), g)?;
            // Go's regexp compiler refuses bytes that are not UTF-8
            if gostr::invalid(&re_s).is_some() {
                return Err(Error::Execution(format!(
                    "invalid regular expression in label_replace(): {}: invalid UTF-8",
                    gostr::display(&re_s)
                )));
            }
            let re = regex::Regex::new(&format!("^(?s:{re_s})$")).map_err(|e| {
                Error::Execution(format!(
                    "invalid regular expression in label_replace(): {re_s}: {e}"
                ))
            })?;
            if !day2_model::labels::is_valid_label_name(&dst) {
                return Err(Error::Execution(format!(
                    "invalid destination label name in label_replace(): {}",
                    gostr::display(&dst)
                )));
            }
            // a source name that is not UTF-8 is no series' label: it reads as
            // empty, as in Prometheus
            let bad_repl = gostr::invalid(&repl);
            for s in v.iter_mut() {
                let val = s.labels.get(&src).unwrap_or("").to_string();
                if let Some(caps) = re.captures(&val) {
                    if let Some(b) = &bad_repl {
                        return Err(not_utf8("label_replace(): replacement", b));
                    }
                    let mut out = String::new();
                    caps.expand(&repl, &mut out);
                    let mut b = s.labels.to_builder();
                    b.set(dst.clone(), out);
                    s.labels = b.build();
                    if dst == METRIC_NAME {
                        s.dropped = false;
                    }
                }
            }
            Val::Vector(v)
        }
        "label_join" => {
            let mut v = arg_vector(ctx, a(0), g)?;
            let dst = arg_string(ctx, a(1), g)?;
            let sep = arg_string(ctx, a(2), g)?;
            let mut srcs = Vec::new();
            for e in &args[3..] {
                let src = arg_string(ctx, e, g)?;
                // Prometheus's UTF-8 label name rule: not empty, UTF-8
                if src.is_empty() || gostr::invalid(&src).is_some() {
                    return Err(Error::Execution(format!(
                        "invalid source label name in label_join(): {}",
                        gostr::display(&src)
                    )));
                }
                srcs.push(src);
            }
            if !day2_model::labels::is_valid_label_name(&dst) {
                return Err(Error::Execution(format!(
                    "invalid destination label name in label_join(): {}",
                    gostr::display(&dst)
                )));
            }
            // the separator shows up only between two source values
            if let Some(b) = gostr::invalid(&sep)
                && srcs.len() > 1
                && !v.is_empty()
            {
                return Err(not_utf8("label_join(): separator", &b));
            }
            for s in v.iter_mut() {
                let joined = srcs
                    .iter()
                    .map(|n| s.labels.get(n).unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join(&sep);
                let mut b = s.labels.to_builder();
                b.set(dst.clone(), joined);
                s.labels = b.build();
                if dst == METRIC_NAME {
                    s.dropped = false;
                }
            }
            Val::Vector(v)
        }
        "info" => crate::info::eval(ctx, c, g)?,
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" => {
            let v = arg_vector(ctx, a(0), g)?;
            map_histograms(v, |h, _| match name {
                "histogram_count" => h.count,
                "histogram_sum" => h.sum,
                "histogram_avg" => h.sum / h.count,
                "histogram_stddev" => nativehist::variance(h).sqrt(),
                _ => nativehist::variance(h),
            })
        }
        "histogram_quantile" | "histogram_quantiles" | "histogram_fraction" => {
            classic_histogram_call(ctx, c, g)?
        }
        other => {
            return Err(Error::Execution(format!(
                "function {other}() is not supported yet"
            )));
        }
    })
}

/// A `histogram_quantiles` label value: Go's shortest form, with `.0` on integers.
fn quantile_label(q: f64) -> String {
    let s = format_f(q);
    if q.is_finite() && !s.contains(['.', 'e']) {
        format!("{s}.0")
    } else {
        s
    }
}

/// `histogram_quantile`, `histogram_quantiles` and `histogram_fraction` over
/// classic buckets: series are grouped by their labels without `le` (the name
/// stays in the key, so two histograms of different names with the same
/// labels collide as in Prometheus) and each group's buckets are read per step.
fn classic_histogram_call(ctx: &mut Ctx, c: &Call, g: &Grid) -> Result<Val, Error> {
    let (name, args) = (c.func.name, &c.args.args);
    let node = c as *const Call as usize;
    // the argument holding the buckets
    let vector_arg = match name {
        "histogram_quantile" => 1,
        "histogram_fraction" => 2,
        _ => 0,
    };
    let (v, scalars, qlabel): (Vec<VSeries>, Vec<Vec<f64>>, Option<String>) = match name {
        "histogram_quantile" => {
            let q = arg_scalar(ctx, &args[0], g)?;
            (arg_vector(ctx, &args[1], g)?, vec![q], None)
        }
        "histogram_fraction" => {
            let lo = arg_scalar(ctx, &args[0], g)?;
            let hi = arg_scalar(ctx, &args[1], g)?;
            (arg_vector(ctx, &args[2], g)?, vec![lo, hi], None)
        }
        _ => {
            let v = arg_vector(ctx, &args[0], g)?;
            let label = arg_string(ctx, &args[1], g)?;
            if let Some(b) = gostr::invalid(&label) {
                return Err(not_utf8("histogram_quantiles(): label name", &b));
            }
            let mut qs = Vec::new();
            for e in &args[2..] {
                qs.push(arg_scalar(ctx, e, g)?);
            }
            (v, qs, Some(label))
        }
    };
    if name != "histogram_fraction" {
        for (k, q) in scalars.iter().enumerate() {
            if let Some(bad) = q.iter().find(|q| !(0.0..=1.0).contains(*q)) {
                let arg = if name == "histogram_quantile" {
                    0
                } else {
                    2 + k
                };
                ctx.warn(
                    format!(
                        "quantile value should be between 0 and 1, got {}",
                        format_f(*bad)
                    ),
                    (node, Some(arg)),
                );
            }
        }
    }
    // buckets grouped once per series: labels without `le`
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
    for (si, s) in v.iter().enumerate() {
        // native histograms are taken one by one below
        if !s.vals.iter().any(|x| has(*x)) {
            continue;
        }
        let le = s.labels.get("le");
        let Some(bound) = le.and_then(parse_le) else {
            ctx.warn(
                format!(
                    "bucket label \"le\" is missing or has a malformed value of \"{}\" for metric name \"{}\"",
                    le.unwrap_or(""),
                    s.labels.get(METRIC_NAME).unwrap_or("")
                ),
                (node, Some(vector_arg)),
            );
            continue;
        };
        // the name stays in the key even when it is to be dropped (Prometheus's
        // delayed name removal): same-labelled histograms of two names collide
        let mut b = s.labels.to_builder();
        b.del("le");
        let key = b.build();
        match index.get(&key) {
            Some(&gi) => groups[gi].1.push((bound, si)),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, vec![(bound, si)]));
            }
        }
    }
    let outputs = if name == "histogram_quantiles" {
        scalars.len()
    } else {
        1
    };
    // a native histogram and classic buckets of the same series at one step:
    // neither is used (`conflict` holds (group, step) pairs)
    let mut conflict: std::collections::HashSet<(usize, usize)> = Default::default();
    let mut out = Vec::with_capacity(groups.len() * outputs);
    let mut notes = Notes::default();
    for s in v.iter().filter(|s| s.hist.is_some()) {
        let gi = index.get(&s.labels).copied();
        for k in 0..outputs {
            let mut vals = vec![ABSENT; g.n];
            let mut any = false;
            for (i, slot) in vals.iter_mut().enumerate() {
                let Some(h) = s.h(i) else { continue };
                if let Some(gi) = gi
                    && groups[gi].1.iter().any(|&(_, si)| has(v[si].vals[i]))
                {
                    conflict.insert((gi, i));
                    ctx.warn(
                        format!(
                            "vector contains a mix of classic and native histograms for metric name {:?}",
                            s.labels.get(METRIC_NAME).unwrap_or("")
                        ),
                        (node, Some(vector_arg)),
                    );
                    continue;
                }
                let metric = s.labels.get(METRIC_NAME).unwrap_or("");
                *slot = match name {
                    "histogram_fraction" => {
                        nativehist::fraction(scalars[0][i], scalars[1][i], h, metric, &mut notes)
                    }
                    "histogram_quantile" => {
                        nativehist::quantile(scalars[0][i], h, metric, &mut notes)
                    }
                    _ => nativehist::quantile(scalars[k][i], h, metric, &mut notes),
                };
                any = true;
            }
            if any {
                let labels = match &qlabel {
                    Some(l) => {
                        let mut b = s.labels.to_builder();
                        b.set(l.clone(), quantile_label(scalars[k][0]));
                        b.build()
                    }
                    None => s.labels.clone(),
                };
                out.push(VSeries {
                    labels,
                    vals,
                    hist: None,
                    dropped: true,
                });
            }
        }
    }
    ctx.notes(notes, (node, Some(vector_arg)));
    let mut buf: Vec<(f64, f64)> = Vec::new();
    let mut fixed_any: Option<String> = None;
    for (gi, (labels, members)) in groups.iter().enumerate() {
        for k in 0..outputs {
            let mut vals = vec![ABSENT; g.n];
            let mut any = false;
            for (i, slot) in vals.iter_mut().enumerate() {
                if conflict.contains(&(gi, i)) {
                    continue;
                }
                buf.clear();
                for &(bound, si) in members {
                    let x = v[si].vals[i];
                    if has(x) {
                        buf.push((bound, x));
                    }
                }
                if buf.is_empty() {
                    continue;
                }
                let (x, fixed) = match name {
                    "histogram_fraction" => bucket_fraction(scalars[0][i], scalars[1][i], &mut buf),
                    "histogram_quantile" => bucket_quantile(scalars[0][i], &mut buf),
                    _ => bucket_quantile(scalars[k][i], &mut buf),
                };
                if fixed && fixed_any.is_none() {
                    fixed_any = Some(labels.metric_name().unwrap_or("").to_string());
                }
                *slot = x;
                any = true;
            }
            if !any {
                continue;
            }
            let labels = match &qlabel {
                Some(l) => {
                    let mut b = labels.to_builder();
                    b.set(l.clone(), quantile_label(scalars[k][0]));
                    b.build()
                }
                None => labels.clone(),
            };
            out.push(VSeries {
                hist: None,
                labels,
                vals,
                dropped: true,
            });
        }
    }
    if let Some(metric) = fixed_any {
        ctx.info(
            format!(
                "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name \"{metric}\""
            ),
            (node, Some(vector_arg)),
        );
    }
    Ok(Val::Vector(out))
}

/// `absent`'s result: one series, 1 at the steps where nothing was present.
fn absent_result(name: &str, arg: &Expr, g: &Grid, present: &[bool]) -> Result<Val, Error> {
    if present.iter().all(|p| *p) {
        return Ok(Val::Vector(vec![]));
    }
    Ok(Val::Vector(vec![VSeries::new(
        absent_labels(name, arg)?,
        (0..g.n)
            .map(|i| if present[i] { ABSENT } else { 1.0 })
            .collect(),
    )]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_follow_utc_calendar() {
        // 2024-02-29T13:45:00Z
        let t = 1_709_214_300.0;
        assert_eq!(date_part("year", t), 2024.0);
        assert_eq!(date_part("month", t), 2.0);
        assert_eq!(date_part("day_of_month", t), 29.0);
        assert_eq!(date_part("days_in_month", t), 29.0);
        assert_eq!(date_part("hour", t), 13.0);
        assert_eq!(date_part("minute", t), 45.0);
        assert_eq!(date_part("day_of_week", t), 4.0);
        assert_eq!(date_part("day_of_year", t), 60.0);
        assert_eq!(date_part("year", 0.0), 1970.0);
    }

    #[test]
    fn bucket_quantile_interpolates() {
        let mut b = vec![
            (0.1, 10.0),
            (0.5, 50.0),
            (1.0, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert!((bucket_quantile(0.5, &mut b).0 - 0.5).abs() < 1e-9);
        let mut no_inf = vec![(0.1, 1.0)];
        assert!(bucket_quantile(0.5, &mut no_inf).0.is_nan());
    }

    #[test]
    fn rate_extrapolates_like_prometheus() {
        // 0..=5 minutes at 1m, counter +60 per minute, range 5m ending at 5m
        let pts: Vec<Sample> = (0..=5)
            .map(|i| Sample::new(i * 60_000, i as f64 * 60.0))
            .collect();
        let r = extrapolated(&pts[1..], 0, 300_000, true, true, true).unwrap();
        assert!((r - 1.0).abs() < 1e-9, "{r}");
    }
}
