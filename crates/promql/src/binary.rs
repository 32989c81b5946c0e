//! Binary operators: arithmetic, comparison (with and without `bool`), set
//! operators, and vector matching with `on`/`ignoring` and `group_left`/`group_right`.

use std::collections::HashMap;

use day2_model::{Labels, METRIC_NAME};
use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};

use crate::Error;
use crate::eval::{Ctx, Val, drop_name};
use crate::value::VecSample;

fn is_comparison(op: &str) -> bool {
    matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=")
}

fn arith(op: &str, l: f64, r: f64) -> f64 {
    match op {
        "+" => l + r,
        "-" => l - r,
        "*" => l * r,
        "/" => l / r,
        "%" => l % r,
        "^" => l.powf(r),
        "atan2" => l.atan2(r),
        _ => f64::NAN,
    }
}

fn compare(op: &str, l: f64, r: f64) -> bool {
    match op {
        "==" => l == r,
        "!=" => l != r,
        ">" => l > r,
        "<" => l < r,
        ">=" => l >= r,
        "<=" => l <= r,
        _ => false,
    }
}

/// `(value, keep)` of one element-wise operation; `l` and `r` are the operands in source order.
fn elem(op: &str, l: f64, r: f64, return_bool: bool) -> (f64, bool) {
    if is_comparison(op) {
        let c = compare(op, l, r);
        if return_bool {
            (if c { 1.0 } else { 0.0 }, true)
        } else {
            (l, c)
        }
    } else {
        (arith(op, l, r), true)
    }
}

/// The matching signature: `on`/`ignoring` select labels as aggregation grouping
/// does; without either, every label but the metric name.
fn signature(l: &Labels, matching: &Option<LabelModifier>) -> Labels {
    match matching {
        None => drop_name(l),
        Some(_) => crate::aggregate::group_labels(l, matching),
    }
}

pub(crate) fn eval(ctx: &mut Ctx, b: &BinaryExpr, t: i64) -> Result<Val, Error> {
    let op = b.op.to_string();
    let lhs = ctx.eval(&b.lhs, t)?;
    let rhs = ctx.eval(&b.rhs, t)?;
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    if let Some(m) = &b.modifier
        && (m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some())
    {
        return Err(Error::Execution(
            "fill modifiers are not supported yet".into(),
        ));
    }
    let drop = !is_comparison(&op) || return_bool;
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => {
            let (v, _) = elem(&op, l, r, true);
            Ok(Val::Scalar(v))
        }
        (Val::Vector(v), Val::Scalar(r)) => Ok(Val::Vector(
            v.into_iter()
                .filter_map(|s| {
                    let (x, keep) = elem(&op, s.v, r, return_bool);
                    keep.then(|| VecSample {
                        labels: if drop { drop_name(&s.labels) } else { s.labels },
                        v: x,
                    })
                })
                .collect(),
        )),
        (Val::Scalar(l), Val::Vector(v)) => Ok(Val::Vector(
            v.into_iter()
                .filter_map(|s| {
                    let (x, keep) = elem(&op, l, s.v, return_bool);
                    // a comparison filter keeps the vector's value
                    let x = if is_comparison(&op) && !return_bool {
                        s.v
                    } else {
                        x
                    };
                    keep.then(|| VecSample {
                        labels: if drop { drop_name(&s.labels) } else { s.labels },
                        v: x,
                    })
                })
                .collect(),
        )),
        (Val::Vector(l), Val::Vector(r)) => {
            vector_binop(&op, l, r, b.modifier.as_ref(), return_bool, drop)
        }
        (l, r) => Err(Error::Execution(format!(
            "binary operator {op} between {} and {}",
            l.kind(),
            r.kind()
        ))),
    }
}

fn vector_binop(
    op: &str,
    lhs: Vec<VecSample>,
    rhs: Vec<VecSample>,
    m: Option<&BinModifier>,
    return_bool: bool,
    drop: bool,
) -> Result<Val, Error> {
    let matching = m.and_then(|m| m.matching.clone());
    let card = m
        .map(|m| m.card.clone())
        .unwrap_or(VectorMatchCardinality::OneToOne);
    match op {
        "and" | "or" | "unless" => {
            let rsigs: std::collections::HashSet<Labels> = rhs
                .iter()
                .map(|s| signature(&s.labels, &matching))
                .collect();
            return Ok(Val::Vector(match op {
                "and" => lhs
                    .into_iter()
                    .filter(|s| rsigs.contains(&signature(&s.labels, &matching)))
                    .collect(),
                "unless" => lhs
                    .into_iter()
                    .filter(|s| !rsigs.contains(&signature(&s.labels, &matching)))
                    .collect(),
                _ => {
                    let lsigs: std::collections::HashSet<Labels> = lhs
                        .iter()
                        .map(|s| signature(&s.labels, &matching))
                        .collect();
                    let mut out = lhs;
                    out.extend(
                        rhs.into_iter()
                            .filter(|s| !lsigs.contains(&signature(&s.labels, &matching))),
                    );
                    out
                }
            }));
        }
        _ => {}
    }
    // the "one" side is indexed by signature; iterate the "many" side
    let (many, one, swapped) = match card {
        VectorMatchCardinality::OneToMany(_) => (rhs, lhs, true),
        _ => (lhs, rhs, false),
    };
    let include: Vec<String> = card.labels().map(|l| l.labels.clone()).unwrap_or_default();
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(one.len());
    for (i, s) in one.iter().enumerate() {
        let sig = signature(&s.labels, &matching);
        if index.insert(sig.clone(), i).is_some() {
            let side = if swapped { "left" } else { "right" };
            return Err(Error::Execution(format!(
                "found duplicate series for the match group {sig} on the {side} hand-side of the operation: many-to-many matching not allowed: matching labels must be unique on one side"
            )));
        }
    }
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    let mut seen_sig: HashMap<Labels, ()> = HashMap::new();
    let mut out: Vec<VecSample> = Vec::new();
    let mut result_seen: HashMap<Labels, ()> = HashMap::new();
    for s in many {
        let sig = signature(&s.labels, &matching);
        let Some(&oi) = index.get(&sig) else { continue };
        if one_to_one && seen_sig.insert(sig.clone(), ()).is_some() {
            return Err(Error::Execution(format!(
                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right), found duplicate series for the match group {sig}"
            )));
        }
        let o = &one[oi];
        let (l, r) = if swapped { (o.v, s.v) } else { (s.v, o.v) };
        let (v, keep) = elem(op, l, r, return_bool);
        if !keep {
            continue;
        }
        let mut b = s.labels.to_builder();
        if drop {
            b.del(METRIC_NAME);
        }
        if one_to_one {
            match &matching {
                Some(LabelModifier::Include(names)) => {
                    b.retain(|x| names.labels.contains(&x.name));
                }
                Some(LabelModifier::Exclude(names)) => {
                    for n in &names.labels {
                        b.del(n);
                    }
                }
                None => {}
            }
        }
        for n in &include {
            match o.labels.get(n) {
                Some(v) => {
                    b.set(n.clone(), v);
                }
                None => {
                    b.del(n);
                }
            }
        }
        let labels = b.build();
        if !one_to_one && result_seen.insert(labels.clone(), ()).is_some() {
            return Err(Error::Execution(
                "multiple matches for labels: grouping labels must ensure unique matches".into(),
            ));
        }
        out.push(VecSample { labels, v });
    }
    Ok(Val::Vector(out))
}
