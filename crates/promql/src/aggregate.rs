//! Aggregation operators (`sum`, `avg`, `topk`, `quantile`, ...) with `by`/`without`.

use std::collections::HashMap;

use day2_model::gofloat::format_f;
use day2_model::{Labels, LabelsBuilder, METRIC_NAME};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use crate::Error;
use crate::eval::{Ctx, Val};
use crate::value::VecSample;

/// The group a sample's labels fall into.
pub(crate) fn group_labels(l: &Labels, modifier: &Option<LabelModifier>) -> Labels {
    match modifier {
        None => Labels::empty(),
        Some(LabelModifier::Include(names)) => {
            let mut b = LabelsBuilder::new();
            for n in &names.labels {
                if let Some(v) = l.get(n) {
                    b.set(n.clone(), v);
                }
            }
            b.build()
        }
        Some(LabelModifier::Exclude(names)) => {
            let mut b = l.to_builder();
            b.del(METRIC_NAME);
            for n in &names.labels {
                b.del(n);
            }
            b.build()
        }
    }
}

/// Kahan-compensated running sum (as Prometheus sums).
#[derive(Default, Clone, Copy)]
pub(crate) struct KahanSum {
    sum: f64,
    c: f64,
}

impl KahanSum {
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
    pub(crate) fn value(&self) -> f64 {
        if self.sum.is_infinite() {
            self.sum
        } else {
            self.sum + self.c
        }
    }
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
    // Go's sort.Float64s order: NaN first
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap(),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

fn scalar_param(ctx: &mut Ctx, a: &AggregateExpr, t: i64, op: &str) -> Result<f64, Error> {
    match a.param.as_ref().map(|p| ctx.eval(p, t)).transpose()? {
        Some(Val::Scalar(v)) => Ok(v),
        _ => Err(Error::Execution(format!("{op} needs a scalar parameter"))),
    }
}

pub(crate) fn eval(ctx: &mut Ctx, a: &AggregateExpr, t: i64) -> Result<Val, Error> {
    let op = a.op.to_string();
    let input = match ctx.eval(&a.expr, t)? {
        Val::Vector(v) => v,
        other => {
            return Err(Error::Execution(format!(
                "{op} expects an instant vector, got {}",
                other.kind()
            )));
        }
    };
    // groups in first-appearance order
    let mut order: Vec<Labels> = Vec::new();
    let mut groups: HashMap<Labels, Vec<VecSample>> = HashMap::new();
    for s in input {
        let g = group_labels(&s.labels, &a.modifier);
        groups
            .entry(g.clone())
            .or_insert_with(|| {
                order.push(g);
                Vec::new()
            })
            .push(s);
    }
    let mut out = Vec::new();
    match op.as_str() {
        "topk" | "bottomk" | "limitk" => {
            let k = scalar_param(ctx, a, t, &op)?;
            if k.is_nan() {
                return Err(Error::Execution(format!("Parameter value is NaN for {op}")));
            }
            let k = if k < 1.0 {
                0
            } else {
                k.min(usize::MAX as f64) as usize
            };
            for g in &order {
                let mut members = groups.remove(g).unwrap_or_default();
                if op != "limitk" {
                    let top = op == "topk";
                    // NaN sorts last either way
                    members.sort_by(|x, y| match (x.v.is_nan(), y.v.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if top => y.v.partial_cmp(&x.v).unwrap(),
                        _ => x.v.partial_cmp(&y.v).unwrap(),
                    });
                }
                out.extend(members.into_iter().take(k));
            }
            return Ok(Val::Vector(out));
        }
        "limit_ratio" => return Err(Error::Execution("limit_ratio is not supported yet".into())),
        "count_values" => {
            let label = match a.param.as_ref().map(|p| ctx.eval(p, t)).transpose()? {
                Some(Val::Str(s)) => s,
                _ => {
                    return Err(Error::Execution(
                        "count_values needs a string parameter".into(),
                    ));
                }
            };
            if !day2_model::labels::is_valid_label_name(&label) {
                return Err(Error::Execution(format!("invalid label name {label:?}")));
            }
            let mut counts: Vec<(Labels, f64)> = Vec::new();
            for g in &order {
                for s in &groups[g] {
                    let mut b = g.to_builder();
                    b.set(label.clone(), format_f(s.v));
                    let l = b.build();
                    match counts.iter_mut().find(|(x, _)| *x == l) {
                        Some(e) => e.1 += 1.0,
                        None => counts.push((l, 1.0)),
                    }
                }
            }
            return Ok(Val::Vector(
                counts
                    .into_iter()
                    .map(|(labels, v)| VecSample { labels, v })
                    .collect(),
            ));
        }
        _ => {}
    }
    let q = if op == "quantile" {
        Some(scalar_param(ctx, a, t, &op)?)
    } else {
        None
    };
    for g in order {
        let members = &groups[&g];
        let vals: Vec<f64> = members.iter().map(|s| s.v).collect();
        let v = match op.as_str() {
            "sum" => {
                let mut k = KahanSum::default();
                vals.iter().for_each(|v| k.add(*v));
                k.value()
            }
            "avg" => {
                let mut k = KahanSum::default();
                vals.iter().for_each(|v| k.add(*v));
                let s = k.value();
                if !s.is_finite() && vals.iter().all(|v| v.is_finite()) {
                    // the sum overflowed: fall back to an incremental mean
                    let mut mean = 0.0;
                    for (i, v) in vals.iter().enumerate() {
                        mean += (v - mean) / (i + 1) as f64;
                    }
                    mean
                } else {
                    s / vals.len() as f64
                }
            }
            "count" => vals.len() as f64,
            "group" => 1.0,
            "min" => vals
                .iter()
                .copied()
                .fold(f64::NAN, |m, v| if m.is_nan() || v < m { v } else { m }),
            "max" => vals
                .iter()
                .copied()
                .fold(f64::NAN, |m, v| if m.is_nan() || v > m { v } else { m }),
            "stddev" | "stdvar" => {
                let (mut mean, mut m2) = (0.0f64, 0.0f64);
                for (i, v) in vals.iter().enumerate() {
                    let d = v - mean;
                    mean += d / (i + 1) as f64;
                    m2 += d * (v - mean);
                }
                let var = m2 / vals.len() as f64;
                if op == "stddev" { var.sqrt() } else { var }
            }
            "quantile" => {
                let mut v = vals.clone();
                quantile(q.unwrap_or(f64::NAN), &mut v)
            }
            other => {
                return Err(Error::Execution(format!(
                    "aggregation {other} is not supported"
                )));
            }
        };
        out.push(VecSample { labels: g, v });
    }
    Ok(Val::Vector(out))
}
