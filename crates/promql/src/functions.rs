//! PromQL functions over floats.

use day2_model::gofloat::format_f;
use day2_model::{Labels, LabelsBuilder, METRIC_NAME};
use promql_parser::parser::{Call, Expr};

use crate::Error;
use crate::aggregate::{KahanSum, quantile};
use crate::eval::{Ctx, Val, drop_name};
use crate::value::{RangeSeries, VecSample};

fn arg_vector(ctx: &mut Ctx, e: &Expr, t: i64) -> Result<Vec<VecSample>, Error> {
    match ctx.eval(e, t)? {
        Val::Vector(v) => Ok(v),
        other => Err(Error::Execution(format!(
            "expected instant vector, got {}",
            other.kind()
        ))),
    }
}

fn arg_matrix(ctx: &mut Ctx, e: &Expr, t: i64) -> Result<Vec<RangeSeries>, Error> {
    match ctx.eval(e, t)? {
        Val::Matrix(m) => Ok(m),
        other => Err(Error::Execution(format!(
            "expected range vector, got {}",
            other.kind()
        ))),
    }
}

fn arg_scalar(ctx: &mut Ctx, e: &Expr, t: i64) -> Result<f64, Error> {
    match ctx.eval(e, t)? {
        Val::Scalar(v) => Ok(v),
        other => Err(Error::Execution(format!(
            "expected scalar, got {}",
            other.kind()
        ))),
    }
}

fn arg_string(ctx: &mut Ctx, e: &Expr, t: i64) -> Result<String, Error> {
    match ctx.eval(e, t)? {
        Val::Str(s) => Ok(s),
        other => Err(Error::Execution(format!(
            "expected string, got {}",
            other.kind()
        ))),
    }
}

/// The range of a matrix argument (selector or subquery) in ms.
fn range_of(e: &Expr) -> i64 {
    match e {
        Expr::MatrixSelector(m) => m.range.as_millis() as i64,
        Expr::Subquery(s) => s.range.as_millis() as i64,
        Expr::Paren(p) => range_of(&p.expr),
        _ => 0,
    }
}

/// The evaluation time a matrix argument refers to (after offset/@).
fn ref_time(ctx: &Ctx, e: &Expr, t: i64) -> i64 {
    match e {
        Expr::MatrixSelector(m) => ctx.ref_time(&m.vs.offset, &m.vs.at, t),
        Expr::Subquery(s) => ctx.ref_time(&s.offset, &s.at, t),
        Expr::Paren(p) => ref_time(ctx, &p.expr, t),
        _ => t,
    }
}

/// Prometheus's extrapolated rate/increase/delta.
fn extrapolated(
    points: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (first, last) = (points[0], points[points.len() - 1]);
    let mut result = last.1 - first.1;
    if counter {
        for w in points.windows(2) {
            if w[1].1 < w[0].1 {
                result += w[0].1;
            }
        }
    }
    let mut to_start = (first.0 - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let avg = sampled / (points.len() - 1) as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
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

fn instant_delta(points: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (prev, last) = (points[points.len() - 2], points[points.len() - 1]);
    let mut v = if is_rate && last.1 < prev.1 {
        last.1
    } else {
        last.1 - prev.1
    };
    let dt = (last.0 - prev.0) as f64 / 1000.0;
    if is_rate {
        if dt == 0.0 {
            return None;
        }
        v /= dt;
    }
    Some(v)
}

/// Least-squares slope and intercept, with x = seconds relative to `at`.
fn linear_regression(points: &[(i64, f64)], at: i64) -> (f64, f64) {
    let n = points.len() as f64;
    let (mut sx, mut sy, mut sxy, mut sx2) = (
        KahanSum::default(),
        KahanSum::default(),
        KahanSum::default(),
        KahanSum::default(),
    );
    let first = points[0].1;
    let const_y = points.iter().all(|p| p.1 == first);
    for &(t, v) in points {
        let x = (t - at) as f64 / 1000.0;
        sx.add(x);
        sy.add(v);
        sxy.add(x * v);
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

fn holt_winters(points: &[(i64, f64)], sf: f64, tf: f64) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0, points[0].1);
    let mut b = points[1].1 - points[0].1;
    for (i, p) in points.iter().enumerate().skip(1) {
        let x = sf * p.1;
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

/// Classic-bucket histogram quantile (Prometheus's `bucketQuantile`).
fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.len() < 2 || buckets[buckets.len() - 1].0 != f64::INFINITY {
        return f64::NAN;
    }
    // merge equal bounds, force monotonic counts
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(le, c) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == le => last.1 += c,
            _ => merged.push((le, c)),
        }
    }
    let mut max = f64::NEG_INFINITY;
    for b in merged.iter_mut() {
        if b.1 < max {
            b.1 = max;
        } else {
            max = b.1;
        }
    }
    let total = merged[merged.len() - 1].1;
    if total == 0.0 || total.is_nan() {
        return f64::NAN;
    }
    let rank = q * total;
    let mut i = merged.partition_point(|b| b.1 < rank);
    if i == merged.len() - 1 {
        return merged[merged.len() - 2].0;
    }
    if i == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let (mut start, mut count, mut rank) = (0.0, merged[i].1, rank);
    let end = merged[i].0;
    if i > 0 {
        start = merged[i - 1].0;
        count -= merged[i - 1].1;
        rank -= merged[i - 1].1;
    }
    if i >= merged.len() {
        i = merged.len() - 1;
        let _ = i;
    }
    start + (end - start) * (rank / count)
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

fn map_vector(v: Vec<VecSample>, f: impl Fn(f64) -> f64) -> Val {
    Val::Vector(
        v.into_iter()
            .map(|s| VecSample {
                labels: drop_name(&s.labels),
                v: f(s.v),
            })
            .collect(),
    )
}

fn over_time(
    m: Vec<RangeSeries>,
    keep_name: bool,
    f: impl Fn(&[(i64, f64)]) -> Option<f64>,
) -> Val {
    Val::Vector(
        m.into_iter()
            .filter_map(|s| {
                f(&s.points).map(|v| VecSample {
                    labels: if keep_name {
                        s.labels
                    } else {
                        drop_name(&s.labels)
                    },
                    v,
                })
            })
            .collect(),
    )
}

fn values(p: &[(i64, f64)]) -> impl Iterator<Item = f64> + '_ {
    p.iter().map(|x| x.1)
}

fn stdvar(p: &[(i64, f64)]) -> f64 {
    let (mut mean, mut m2) = (0.0f64, 0.0f64);
    for (i, v) in values(p).enumerate() {
        let d = v - mean;
        mean += d / (i + 1) as f64;
        m2 += d * (v - mean);
    }
    m2 / p.len() as f64
}

/// Labels for `absent`/`absent_over_time`: the equality matchers of the selector.
fn absent_labels(e: &Expr) -> Labels {
    let vs = match e {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(m) => &m.vs,
        _ => return Labels::empty(),
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
            b.set(m.name.clone(), m.value.clone());
        }
    }
    b.build()
}

pub(crate) fn call(ctx: &mut Ctx, c: &Call, t: i64) -> Result<Val, Error> {
    let name = c.func.name;
    let args = &c.args.args;
    let a = |i: usize| -> &Expr { &args[i] };
    Ok(match name {
        "time" => Val::Scalar(t as f64 / 1000.0),
        "start" => Val::Scalar(ctx.start as f64 / 1000.0),
        "end" => Val::Scalar(ctx.end as f64 / 1000.0),
        "step" => Val::Scalar(ctx.step as f64 / 1000.0),
        "range" => Val::Scalar((ctx.end - ctx.start) as f64 / 1000.0),
        "ts_of_min_over_time"
        | "ts_of_max_over_time"
        | "ts_of_first_over_time"
        | "ts_of_last_over_time" => {
            let m = arg_matrix(ctx, a(0), t)?;
            over_time(m, false, |p| {
                let pick = match name {
                    "ts_of_first_over_time" => p.first(),
                    "ts_of_last_over_time" => p.last(),
                    // the last occurrence of the extreme value wins, NaN only if all are NaN
                    "ts_of_min_over_time" => {
                        p.iter().fold(None, |m: Option<&(i64, f64)>, x| match m {
                            Some(b) if !(x.1 <= b.1 || b.1.is_nan()) => Some(b),
                            _ => Some(x),
                        })
                    }
                    _ => p.iter().fold(None, |m: Option<&(i64, f64)>, x| match m {
                        Some(b) if !(x.1 >= b.1 || b.1.is_nan()) => Some(b),
                        _ => Some(x),
                    }),
                };
                pick.map(|x| x.0 as f64 / 1000.0)
            })
        }
        "pi" => Val::Scalar(std::f64::consts::PI),
        "vector" => Val::Vector(vec![VecSample {
            labels: Labels::empty(),
            v: arg_scalar(ctx, a(0), t)?,
        }]),
        "scalar" => {
            let v = arg_vector(ctx, a(0), t)?;
            Val::Scalar(if v.len() == 1 { v[0].v } else { f64::NAN })
        }
        "abs" | "ceil" | "floor" | "exp" | "ln" | "log2" | "log10" | "sqrt" | "sgn" | "acos"
        | "acosh" | "asin" | "asinh" | "atan" | "atanh" | "cos" | "cosh" | "sin" | "sinh"
        | "tan" | "tanh" | "deg" | "rad" => {
            let v = arg_vector(ctx, a(0), t)?;
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
            map_vector(v, f)
        }
        "round" => {
            let v = arg_vector(ctx, a(0), t)?;
            let to = if args.len() > 1 {
                arg_scalar(ctx, a(1), t)?
            } else {
                1.0
            };
            map_vector(v, |x| round_to(x, to))
        }
        "clamp" => {
            let v = arg_vector(ctx, a(0), t)?;
            let (lo, hi) = (arg_scalar(ctx, a(1), t)?, arg_scalar(ctx, a(2), t)?);
            if lo > hi {
                return Ok(Val::Vector(vec![]));
            }
            map_vector(v, |x| {
                if x.is_nan() || lo.is_nan() || hi.is_nan() {
                    f64::NAN
                } else {
                    x.max(lo).min(hi)
                }
            })
        }
        "clamp_min" | "clamp_max" => {
            let v = arg_vector(ctx, a(0), t)?;
            let b = arg_scalar(ctx, a(1), t)?;
            let min = name == "clamp_min";
            map_vector(v, move |x| {
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
            let inner = match a(0) {
                Expr::Paren(p) => &*p.expr,
                e => e,
            };
            match inner {
                Expr::VectorSelector(vs) => Val::Vector(
                    ctx.select_instant(vs, t)
                        .into_iter()
                        .map(|(s, ts)| VecSample {
                            labels: drop_name(&s.labels),
                            v: ts as f64 / 1000.0,
                        })
                        .collect(),
                ),
                e => map_vector(arg_vector(ctx, e, t)?, |_| t as f64 / 1000.0),
            }
        }
        "minute" | "hour" | "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month"
        | "month" | "year" => {
            if args.is_empty() {
                Val::Vector(vec![VecSample {
                    labels: Labels::empty(),
                    v: date_part(name, t as f64 / 1000.0),
                }])
            } else {
                map_vector(arg_vector(ctx, a(0), t)?, |x| date_part(name, x))
            }
        }
        "rate" | "increase" | "delta" => {
            let range = range_of(a(0));
            let end = ref_time(ctx, a(0), t);
            let m = arg_matrix(ctx, a(0), t)?;
            let counter = name != "delta";
            let is_rate = name == "rate";
            over_time(m, false, |p| {
                extrapolated(p, end - range, end, counter, is_rate)
            })
        }
        "irate" | "idelta" => over_time(arg_matrix(ctx, a(0), t)?, false, |p| {
            instant_delta(p, name == "irate")
        }),
        "deriv" => {
            let m = arg_matrix(ctx, a(0), t)?;
            over_time(m, false, |p| {
                (p.len() >= 2).then(|| linear_regression(p, p[0].0).0)
            })
        }
        "predict_linear" => {
            // the intercept is at the evaluation time, whatever @ or offset say
            let at = t;
            let m = arg_matrix(ctx, a(0), t)?;
            let d = arg_scalar(ctx, a(1), t)?;
            over_time(m, false, |p| {
                (p.len() >= 2).then(|| {
                    let (slope, intercept) = linear_regression(p, at);
                    slope * d + intercept
                })
            })
        }
        "holt_winters" | "double_exponential_smoothing" => {
            let m = arg_matrix(ctx, a(0), t)?;
            let (sf, tf) = (arg_scalar(ctx, a(1), t)?, arg_scalar(ctx, a(2), t)?);
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
            over_time(m, false, |p| holt_winters(p, sf, tf))
        }
        "changes" => over_time(arg_matrix(ctx, a(0), t)?, false, |p| {
            Some(
                p.windows(2)
                    .filter(|w| w[0].1 != w[1].1 && !(w[0].1.is_nan() && w[1].1.is_nan()))
                    .count() as f64,
            )
        }),
        "resets" => over_time(arg_matrix(ctx, a(0), t)?, false, |p| {
            Some(p.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64)
        }),
        "avg_over_time" => over_time(arg_matrix(ctx, a(0), t)?, false, |p| {
            let mut k = KahanSum::default();
            values(p).for_each(|v| k.add(v));
            let s = k.value();
            if !s.is_finite() && values(p).all(f64::is_finite) {
                let mut mean = 0.0;
                for (i, v) in values(p).enumerate() {
                    mean += (v - mean) / (i + 1) as f64;
                }
                Some(mean)
            } else {
                Some(s / p.len() as f64)
            }
        }),
        "sum_over_time" => over_time(arg_matrix(ctx, a(0), t)?, false, |p| {
            let mut k = KahanSum::default();
            values(p).for_each(|v| k.add(v));
            Some(k.value())
        }),
        "count_over_time" => over_time(arg_matrix(ctx, a(0), t)?, false, |p| Some(p.len() as f64)),
        "min_over_time" => over_time(arg_matrix(ctx, a(0), t)?, false, |p| {
            Some(values(p).fold(f64::NAN, |m, v| if m.is_nan() || v < m { v } else { m }))
        }),
        "max_over_time" => over_time(arg_matrix(ctx, a(0), t)?, false, |p| {
            Some(values(p).fold(f64::NAN, |m, v| if m.is_nan() || v > m { v } else { m }))
        }),
        "last_over_time" => over_time(arg_matrix(ctx, a(0), t)?, true, |p| p.last().map(|x| x.1)),
        "first_over_time" => over_time(arg_matrix(ctx, a(0), t)?, true, |p| p.first().map(|x| x.1)),
        "present_over_time" => over_time(arg_matrix(ctx, a(0), t)?, false, |_| Some(1.0)),
        "stdvar_over_time" => over_time(arg_matrix(ctx, a(0), t)?, false, |p| Some(stdvar(p))),
        "stddev_over_time" => {
            over_time(arg_matrix(ctx, a(0), t)?, false, |p| Some(stdvar(p).sqrt()))
        }
        "mad_over_time" => over_time(arg_matrix(ctx, a(0), t)?, false, |p| {
            let mut v: Vec<f64> = values(p).collect();
            let med = quantile(0.5, &mut v);
            let mut dev: Vec<f64> = values(p).map(|x| (x - med).abs()).collect();
            Some(quantile(0.5, &mut dev))
        }),
        "quantile_over_time" => {
            let q = arg_scalar(ctx, a(0), t)?;
            over_time(arg_matrix(ctx, a(1), t)?, false, |p| {
                let mut v: Vec<f64> = values(p).collect();
                Some(quantile(q, &mut v))
            })
        }
        "absent_over_time" => {
            let m = arg_matrix(ctx, a(0), t)?;
            if m.is_empty() {
                Val::Vector(vec![VecSample {
                    labels: absent_labels(a(0)),
                    v: 1.0,
                }])
            } else {
                Val::Vector(vec![])
            }
        }
        "absent" => {
            let v = arg_vector(ctx, a(0), t)?;
            if v.is_empty() {
                Val::Vector(vec![VecSample {
                    labels: absent_labels(a(0)),
                    v: 1.0,
                }])
            } else {
                Val::Vector(vec![])
            }
        }
        "sort" | "sort_desc" => {
            let mut v = arg_vector(ctx, a(0), t)?;
            let desc = name == "sort_desc";
            v.sort_by(|x, y| match (x.v.is_nan(), y.v.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ if desc => y.v.partial_cmp(&x.v).unwrap(),
                _ => x.v.partial_cmp(&y.v).unwrap(),
            });
            Val::Vector(v)
        }
        "sort_by_label" | "sort_by_label_desc" => {
            let mut v = arg_vector(ctx, a(0), t)?;
            let mut names = Vec::new();
            for e in &args[1..] {
                names.push(arg_string(ctx, e, t)?);
            }
            v.sort_by(|x, y| {
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
            });
            Val::Vector(v)
        }
        "label_replace" => {
            let v = arg_vector(ctx, a(0), t)?;
            let dst = arg_string(ctx, a(1), t)?;
            let repl = arg_string(ctx, a(2), t)?;
            let src = arg_string(ctx, a(3), t)?;
            let re_s = arg_string(ctx, a(4), t)?;
            let re = regex::Regex::new(&format!("^(?s:{re_s})$")).map_err(|e| {
                Error::Execution(format!(
                    "invalid regular expression in label_replace(): {re_s}: {e}"
                ))
            })?;
            if !day2_model::labels::is_valid_label_name(&dst) {
                return Err(Error::Execution(format!(
                    "invalid destination label name in label_replace(): {dst}"
                )));
            }
            Val::Vector(
                v.into_iter()
                    .map(|s| {
                        let val = s.labels.get(&src).unwrap_or("").to_string();
                        match re.captures(&val) {
                            Some(caps) => {
                                let mut out = String::new();
                                caps.expand(&repl, &mut out);
                                let mut b = s.labels.to_builder();
                                b.set(dst.clone(), out);
                                VecSample {
                                    labels: b.build(),
                                    v: s.v,
                                }
                            }
                            None => s,
                        }
                    })
                    .collect(),
            )
        }
        "label_join" => {
            let v = arg_vector(ctx, a(0), t)?;
            let dst = arg_string(ctx, a(1), t)?;
            let sep = arg_string(ctx, a(2), t)?;
            let mut srcs = Vec::new();
            for e in &args[3..] {
                srcs.push(arg_string(ctx, e, t)?);
            }
            if !day2_model::labels::is_valid_label_name(&dst) {
                return Err(Error::Execution(format!(
                    "invalid destination label name in label_join(): {dst}"
                )));
            }
            Val::Vector(
                v.into_iter()
                    .map(|s| {
                        let joined = srcs
                            .iter()
                            .map(|n| s.labels.get(n).unwrap_or(""))
                            .collect::<Vec<_>>()
                            .join(&sep);
                        let mut b = s.labels.to_builder();
                        b.set(dst.clone(), joined);
                        VecSample {
                            labels: b.build(),
                            v: s.v,
                        }
                    })
                    .collect(),
            )
        }
        "histogram_quantile" => {
            let q = arg_scalar(ctx, a(0), t)?;
            let v = arg_vector(ctx, a(1), t)?;
            let mut groups: Vec<(Labels, Vec<(f64, f64)>)> = Vec::new();
            for s in v {
                let Some(le) = s.labels.get("le") else {
                    continue;
                };
                let Ok(bound) = le.trim().parse::<f64>().or_else(|_| match le.trim() {
                    "+Inf" | "Inf" | "+inf" | "inf" => Ok(f64::INFINITY),
                    "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
                    _ => Err(()),
                }) else {
                    continue;
                };
                let mut b = s.labels.to_builder();
                b.del("le");
                b.del(METRIC_NAME);
                let key = b.build();
                match groups.iter_mut().find(|(k, _)| *k == key) {
                    Some(g) => g.1.push((bound, s.v)),
                    None => groups.push((key, vec![(bound, s.v)])),
                }
            }
            Val::Vector(
                groups
                    .into_iter()
                    .map(|(labels, mut b)| VecSample {
                        labels,
                        v: bucket_quantile(q, &mut b),
                    })
                    .collect(),
            )
        }
        other => {
            return Err(Error::Execution(format!(
                "function {other}() is not supported yet"
            )));
        }
    })
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
        assert!((bucket_quantile(0.5, &mut b) - 0.5).abs() < 1e-9);
        let mut no_inf = vec![(0.1, 1.0)];
        assert!(bucket_quantile(0.5, &mut no_inf).is_nan());
    }

    #[test]
    fn rate_extrapolates_like_prometheus() {
        // 0..=5 minutes at 1m, counter +60 per minute, range 5m ending at 5m
        let pts: Vec<(i64, f64)> = (0..=5).map(|i| (i * 60_000, i as f64 * 60.0)).collect();
        let r = extrapolated(&pts[1..], 0, 300_000, true, true).unwrap();
        assert!((r - 1.0).abs() < 1e-9, "{r}");
    }
}
