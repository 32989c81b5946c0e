//! Binary operators: arithmetic, comparison (with and without `bool`), set
//! operators, and vector matching with `on`/`ignoring` and `group_left`/`group_right`.
//!
//! Matching signatures and result label sets are computed once per series (or
//! per matched pair), not per step; the per-step checks of Prometheus
//! (duplicates on the "one" side, ambiguous many-to-one matches) run over the
//! step slots.

use std::collections::HashMap;
use std::sync::Arc;

use day2_model::Labels;
use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};

use crate::Error;
use crate::aggregate::{KeyMode, Keyer};
use crate::eval::{ABSENT, Ctx, Grid, H, NAME_LABELS, VSeries, Val, has};
use crate::nativehist::Notes;

/// One operand of an element-wise operation.
#[derive(Clone, Copy)]
enum Side<'a> {
    F(f64),
    H(&'a H),
}

impl Side<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Side::F(_) => "float",
            Side::H(_) => "histogram",
        }
    }
}

/// The result of an element-wise operation with a histogram operand.
enum Res {
    F(f64),
    H(H),
}

/// An element-wise operation where at least one operand is a histogram, as
/// Prometheus defines it: `h * f`, `f * h`, `h / f`, `h + h`, `h - h`,
/// `h == h`, `h != h`; anything else drops the element with an info
/// annotation. None: no result at this element.
fn hist_elem(
    op: Op,
    op_s: &str,
    l: Side,
    r: Side,
    return_bool: bool,
    notes: &mut Notes,
) -> Option<Res> {
    let incompatible = |notes: &mut Notes| {
        notes.info(format!(
            "incompatible sample types encountered for binary operator {op_s:?}: {} {op_s} {}",
            l.kind(),
            r.kind()
        ));
    };
    let scaled = |h: &H, f: f64, div: bool| {
        let mut x = (**h).clone();
        if div {
            x.div(f);
        } else {
            x.mul(f);
        }
        x.compact();
        Res::H(Arc::new(x))
    };
    let res = match (l, r) {
        (Side::H(h), Side::F(f)) if matches!(op, Op::TrimBelow | Op::TrimAbove) => {
            Res::H(Arc::new(crate::nativehist::trim(h, f, op == Op::TrimBelow)))
        }
        (Side::F(f), Side::H(h)) if op == Op::Mul => scaled(h, f, false),
        (Side::H(h), Side::F(f)) if op == Op::Mul => scaled(h, f, false),
        (Side::H(h), Side::F(f)) if op == Op::Div => scaled(h, f, true),
        (Side::H(a), Side::H(b)) if matches!(op, Op::Add | Op::Sub) => {
            let mut x = (**a).clone();
            let (sub, name) = if op == Op::Sub {
                (true, "subtraction")
            } else {
                (false, "addition")
            };
            let r = if sub { x.sub(b) } else { x.add(b) };
            match r {
                Ok(c) => {
                    if c.counter_reset_collision {
                        notes.collision(name);
                    }
                    if c.custom_bounds_reconciled {
                        notes.reconciled(name);
                    }
                }
                Err(_) => {
                    notes.warn(format!(
                        "incompatible bucket layout encountered for binary operator {op_s}"
                    ));
                    return None;
                }
            }
            if sub {
                x.hint = day2_model::CounterResetHint::Gauge;
            }
            x.compact();
            Res::H(Arc::new(x))
        }
        (Side::H(a), Side::H(b)) if matches!(op, Op::Eq | Op::Ne) => {
            let keep = a.equals(b) == (op == Op::Eq);
            if return_bool {
                return Some(Res::F(if keep { 1.0 } else { 0.0 }));
            }
            if !keep {
                return None;
            }
            Res::H((*a).clone())
        }
        _ => {
            incompatible(notes);
            return None;
        }
    };
    Some(res)
}

/// A slot of a vector series as an operand.
fn side(s: &VSeries, i: usize) -> Option<Side<'_>> {
    match s.h(i) {
        Some(h) => Some(Side::H(h)),
        None if has(s.vals[i]) => Some(Side::F(s.vals[i])),
        None => None,
    }
}

fn is_comparison(op: &str) -> bool {
    matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=")
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    /// `</`: keeps the observations of a histogram below a cut
    TrimBelow,
    /// `>/`: keeps the observations of a histogram above a cut
    TrimAbove,
    Other,
}

impl Op {
    fn parse(op: &str) -> Op {
        match op {
            "+" => Op::Add,
            "-" => Op::Sub,
            "*" => Op::Mul,
            "/" => Op::Div,
            "%" => Op::Mod,
            "^" => Op::Pow,
            "atan2" => Op::Atan2,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            ">" => Op::Gt,
            "<" => Op::Lt,
            ">=" => Op::Ge,
            "<=" => Op::Le,
            _ => Op::Other,
        }
    }

    fn is_comparison(self) -> bool {
        matches!(self, Op::Eq | Op::Ne | Op::Gt | Op::Lt | Op::Ge | Op::Le)
    }

    /// `(value, keep)` of one element-wise operation; `l` and `r` are the operands in source order.
    #[inline]
    fn apply(self, l: f64, r: f64, return_bool: bool) -> (f64, bool) {
        let c = match self {
            Op::Add => return (l + r, true),
            Op::Sub => return (l - r, true),
            Op::Mul => return (l * r, true),
            Op::Div => return (l / r, true),
            Op::Mod => return (l % r, true),
            Op::Pow => return (l.powf(r), true),
            Op::Atan2 => return (l.atan2(r), true),
            Op::Other => return (f64::NAN, true),
            // floats have no observations to trim (they never get here)
            Op::TrimBelow | Op::TrimAbove => return (l, false),
            Op::Eq => l == r,
            Op::Ne => l != r,
            Op::Gt => l > r,
            Op::Lt => l < r,
            Op::Ge => l >= r,
            Op::Le => l <= r,
        };
        if return_bool {
            (if c { 1.0 } else { 0.0 }, true)
        } else {
            (l, c)
        }
    }
}

pub(crate) fn eval(ctx: &mut Ctx, b: &BinaryExpr, g: &Grid) -> Result<Val, Error> {
    let op_s = b.op.to_string();
    let lhs = ctx.eval(&b.lhs, g)?;
    let rhs = ctx.eval(&b.rhs, g)?;
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    let op = Op::parse(&op_s);
    let cmp = is_comparison(&op_s);
    let drop = !cmp || return_bool;
    eval_values(ctx, b, g, op, &op_s, lhs, rhs, return_bool, drop)
}

/// The trim operators `</` (`keep_below`) and `>/`, rewritten as the binary
/// operation `b` (see `rewrite`): histogram samples on the left are cut at
/// the float on the right (vector matching as for arithmetic; the metric
/// name stays, as for comparisons); float samples on the left drop out.
pub(crate) fn eval_trim(
    ctx: &mut Ctx,
    b: &BinaryExpr,
    g: &Grid,
    keep_below: bool,
) -> Result<Val, Error> {
    let mut lhs = ctx.eval(&b.lhs, g)?;
    let rhs = ctx.eval(&b.rhs, g)?;
    if let Val::Vector(v) = &mut lhs {
        v.retain(|s| s.hist.is_some());
        for s in v.iter_mut() {
            s.vals.fill(ABSENT);
        }
    }
    let (op, op_s) = if keep_below {
        (Op::TrimBelow, "</")
    } else {
        (Op::TrimAbove, ">/")
    };
    eval_values(ctx, b, g, op, op_s, lhs, rhs, false, false)
}

#[allow(clippy::too_many_arguments)]
fn eval_values(
    ctx: &mut Ctx,
    b: &BinaryExpr,
    g: &Grid,
    op: Op,
    op_s: &str,
    lhs: Val,
    rhs: Val,
    return_bool: bool,
    drop: bool,
) -> Result<Val, Error> {
    let at = ctx.binary_at(b);
    let mut notes = Notes::default();
    let (mut lhs, mut rhs) = (lhs, rhs);
    // histogram slots of a vector-scalar operation first; the floats follow
    if let (Val::Vector(v), Val::Scalar(r)) = (&mut lhs, &rhs) {
        hist_scalar(v, r, op, op_s, false, return_bool, &mut notes);
    }
    if let (Val::Scalar(l), Val::Vector(v)) = (&lhs, &mut rhs) {
        hist_scalar(v, l, op, op_s, true, return_bool, &mut notes);
    }
    let res = match (lhs, rhs) {
        (Val::Vector(l), Val::Vector(r))
            if l.iter().chain(&r).any(|s| s.hist.is_some())
                && !matches!(op_s, "and" | "or" | "unless") =>
        {
            vector_binop(
                ctx,
                op_s,
                op,
                l,
                r,
                b.modifier.as_ref(),
                return_bool,
                drop,
                g,
                Some(&mut notes),
            )
        }
        other => eval_floats(ctx, op_s, op, other, b, return_bool, drop, g),
    };
    ctx.notes(notes, at);
    res
}

/// Applies histogram operations of a vector-scalar operation in place: each
/// histogram slot becomes its result (or is removed).
fn hist_scalar(
    v: &mut [VSeries],
    s: &[f64],
    op: Op,
    op_s: &str,
    scalar_left: bool,
    return_bool: bool,
    notes: &mut Notes,
) {
    for series in v.iter_mut() {
        let Some(hist) = series.hist.take() else {
            continue;
        };
        let mut out: Vec<Option<H>> = vec![None; hist.len()];
        for (i, h) in hist.iter().enumerate() {
            let Some(h) = h else { continue };
            let (l, r) = if scalar_left {
                (Side::F(s[i]), Side::H(h))
            } else {
                (Side::H(h), Side::F(s[i]))
            };
            match hist_elem(op, op_s, l, r, return_bool, notes) {
                Some(Res::H(x)) => out[i] = Some(x),
                Some(Res::F(f)) => series.vals[i] = f,
                None => {}
            }
        }
        if out.iter().any(Option::is_some) {
            series.hist = Some(out);
        }
    }
}

/// The float-only operations (and set operations).
#[allow(clippy::too_many_arguments)]
fn eval_floats(
    ctx: &mut Ctx,
    op_s: &str,
    op: Op,
    vals: (Val, Val),
    b: &BinaryExpr,
    return_bool: bool,
    drop: bool,
    g: &Grid,
) -> Result<Val, Error> {
    match vals {
        (Val::Scalar(mut l), Val::Scalar(r)) => {
            for (x, y) in l.iter_mut().zip(&r) {
                *x = op.apply(*x, *y, true).0;
            }
            Ok(Val::Scalar(l))
        }
        (Val::Vector(v), Val::Scalar(r)) => Ok(Val::Vector(vector_scalar(
            v,
            &r,
            |x, y| op.apply(x, y, return_bool),
            drop,
        ))),
        (Val::Scalar(l), Val::Vector(v)) => {
            let filter = op.is_comparison() && !return_bool;
            Ok(Val::Vector(vector_scalar(
                v,
                &l,
                |x, y| {
                    let (r, keep) = op.apply(y, x, return_bool);
                    // a comparison filter keeps the vector's value
                    (if filter { x } else { r }, keep)
                },
                drop,
            )))
        }
        (Val::Vector(l), Val::Vector(r)) => vector_binop(
            ctx,
            op_s,
            op,
            l,
            r,
            b.modifier.as_ref(),
            return_bool,
            drop,
            g,
            None,
        ),
        (l, r) => Err(Error::Execution(format!(
            "binary operator {op_s} between {} and {}",
            l.kind(),
            r.kind()
        ))),
    }
}

/// Applies `f(vector value, scalar value)` per step; drops series left empty.
fn vector_scalar(
    v: Vec<VSeries>,
    s: &[f64],
    f: impl Fn(f64, f64) -> (f64, bool),
    drop: bool,
) -> Vec<VSeries> {
    let mut out = Vec::with_capacity(v.len());
    for mut series in v {
        let mut any = series.hist.is_some();
        for (x, &y) in series.vals.iter_mut().zip(s) {
            if !has(*x) {
                continue;
            }
            let (r, keep) = f(*x, y);
            if keep {
                *x = r;
                any = true;
            } else {
                *x = ABSENT;
            }
        }
        if any {
            if drop {
                series.dropped = true;
            }
            out.push(series);
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn vector_binop(
    ctx: &Ctx,
    op_s: &str,
    op: Op,
    lhs: Vec<VSeries>,
    rhs: Vec<VSeries>,
    m: Option<&BinModifier>,
    return_bool: bool,
    drop: bool,
    g: &Grid,
    mut notes: Option<&mut Notes>,
) -> Result<Val, Error> {
    let n = g.n;
    let matching = m.and_then(|m| m.matching.clone());
    let card = m
        .map(|m| m.card.clone())
        .unwrap_or(VectorMatchCardinality::OneToOne);
    let mode = KeyMode::matching(&matching);
    if matches!(op_s, "and" | "or" | "unless") {
        // signature ids shared by both sides
        let (lsig, rsig, nsig) = {
            let mut k = Keyer::new(KeyMode::matching(&matching));
            let l: Vec<u32> = lhs.iter().map(|s| k.id(&s.labels)).collect();
            let r: Vec<u32> = rhs.iter().map(|s| k.id(&s.labels)).collect();
            let len = k.len();
            (l, r, len)
        };
        ctx.check_cells(nsig.saturating_mul(n))?;
        let presence = |side: &[VSeries], sigs: &[u32]| -> Vec<bool> {
            let mut p = vec![false; nsig * n];
            for (s, &sig) in side.iter().zip(sigs) {
                let row = &mut p[sig as usize * n..(sig as usize + 1) * n];
                if s.hist.is_some() {
                    for (i, x) in row.iter_mut().enumerate() {
                        *x |= s.present(i);
                    }
                } else {
                    for (x, v) in row.iter_mut().zip(&s.vals) {
                        *x |= has(*v);
                    }
                }
            }
            p
        };
        // keeps slots of `side` where `pred(other side present)` holds
        let mask = |side: Vec<VSeries>, sigs: &[u32], p: &[bool], keep_if: bool| {
            let mut out = Vec::with_capacity(side.len());
            for (mut s, &sig) in side.into_iter().zip(sigs) {
                let row = &p[sig as usize * n..(sig as usize + 1) * n];
                let mut any = false;
                for (i, &present) in row.iter().enumerate() {
                    if s.present(i) {
                        if present == keep_if {
                            any = true;
                        } else {
                            s.clear(i);
                        }
                    }
                }
                if any {
                    out.push(s);
                }
            }
            out
        };
        return Ok(Val::Vector(match op_s {
            "and" => {
                let p = presence(&rhs, &rsig);
                mask(lhs, &lsig, &p, true)
            }
            "unless" => {
                let p = presence(&rhs, &rsig);
                mask(lhs, &lsig, &p, false)
            }
            _ => {
                let p = presence(&lhs, &lsig);
                let mut out = lhs;
                out.extend(mask(rhs, &rsig, &p, false));
                out
            }
        }));
    }
    // the "one" side is indexed by signature; iterate the "many" side
    let (many, one, swapped) = match card {
        VectorMatchCardinality::OneToMany(_) => (rhs, lhs, true),
        _ => (lhs, rhs, false),
    };
    let include: Vec<String> = card.labels().map(|l| l.labels.clone()).unwrap_or_default();
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    let (one_sig, many_sig, nsig, sig_labels) = {
        let mut k = Keyer::new(KeyMode::matching(&matching));
        let o: Vec<u32> = one.iter().map(|s| k.id(&s.labels)).collect();
        let m: Vec<u32> = many.iter().map(|s| k.id(&s.labels)).collect();
        let len = k.len();
        // only for error messages
        let first: Vec<Labels> = k.first.iter().map(|l| (*l).clone()).collect();
        (o, m, len, first)
    };
    // one-side series per signature
    let mut by_sig: Vec<Vec<usize>> = vec![Vec::new(); nsig];
    for (i, &s) in one_sig.iter().enumerate() {
        by_sig[s as usize].push(i);
    }
    // at most one "one" series per signature and step
    for list in by_sig.iter().filter(|l| l.len() > 1) {
        for i in 0..n {
            if list.iter().filter(|&&oi| one[oi].present(i)).count() > 1 {
                let sig = go_labels(&mode.labels(&sig_labels[one_sig[list[0]] as usize]));
                let side = if swapped { "left" } else { "right" };
                // the first two duplicates, in label order
                let mut dups: Vec<Labels> = list
                    .iter()
                    .filter(|&&oi| one[oi].present(i))
                    .map(|&oi| {
                        let mut s = one[oi].clone();
                        s.materialise();
                        s.labels
                    })
                    .collect();
                dups.sort();
                return Err(Error::Execution(format!(
                    "found duplicate series for the match group {sig} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    go_labels(&dups[0]),
                    go_labels(&dups[1])
                )));
            }
        }
    }
    // fill modifiers: `fill_left` stands in for a missing "many" series,
    // `fill_right` for a missing "one" series; with `group_right` the sides are
    // swapped first and the fill values are not, as Prometheus does
    let fills = m.map(|m| m.fill_values.clone()).unwrap_or_default();
    let (fill_many, fill_one) = (fills.lhs, fills.rhs);
    let filling = fill_many.is_some() || fill_one.is_some();
    // one_to_one: (signature, step) slots already matched by a "many" series
    let mut matched: Vec<bool> = if one_to_one {
        ctx.check_cells(nsig.saturating_mul(n))?;
        vec![false; nsig * n]
    } else {
        Vec::new()
    };
    let mut out: Vec<VSeries> = Vec::new();
    let mut out_index: HashMap<Labels, usize> = HashMap::new();
    // adds a result series, merging with one of the same labels
    let mut emit = |out: &mut Vec<VSeries>, new: VSeries, merge: bool| -> Result<(), Error> {
        if !merge {
            out.push(new);
            return Ok(());
        }
        match out_index.get(&new.labels) {
            Some(&k) => {
                let into = &mut out[k];
                for i in 0..new.vals.len() {
                    if !new.present(i) {
                        continue;
                    }
                    if into.present(i) {
                        return Err(Error::Execution(
                            "multiple matches for labels: grouping labels must ensure unique matches".into(),
                        ));
                    }
                    match new.h(i) {
                        Some(h) => into.set_h(i, h.clone()),
                        None => into.vals[i] = new.vals[i],
                    }
                }
            }
            None => {
                out_index.insert(new.labels.clone(), out.len());
                out.push(new);
            }
        }
        Ok(())
    };
    let merge = !one_to_one || filling;
    let apply = |mv: f64, ov: f64| {
        let (l, r) = if swapped { (ov, mv) } else { (mv, ov) };
        op.apply(l, r, return_bool)
    };
    // signatures with a "many" series present, per step (for `fill_left`)
    let mut many_present: Vec<bool> = Vec::new();
    if fill_many.is_some() {
        ctx.check_cells(nsig.saturating_mul(n))?;
        many_present = vec![false; nsig * n];
        for (s, &sig) in many.iter().zip(&many_sig) {
            let row = &mut many_present[sig as usize * n..(sig as usize + 1) * n];
            for (p, v) in row.iter_mut().zip(&s.vals) {
                *p |= has(*v);
            }
        }
    }
    for (s, &sig) in many.iter().zip(&many_sig) {
        let cands = &by_sig[sig as usize];
        if let Some(f) = fill_one {
            // steps where this series has no "one" partner
            let mut vals: Option<Vec<f64>> = None;
            for i in 0..n {
                if has(s.vals[i]) && !cands.iter().any(|&oi| has(one[oi].vals[i])) {
                    let (v, keep) = apply(s.vals[i], f);
                    if keep {
                        vals.get_or_insert_with(|| vec![ABSENT; n])[i] = v;
                    }
                }
            }
            if let Some(vals) = vals {
                let labels = result_labels(s, None, drop, one_to_one, &matching, &include);
                emit(&mut out, VSeries::new(labels, vals), true)?;
            }
        }
        // one_to_one: a (signature, step) slot matched a second time is an error
        let claim = |slot: &mut bool, s: &VSeries| -> Result<(), Error> {
            if *slot {
                let sig = mode.labels(&s.labels);
                return Err(Error::Execution(format!(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right), found duplicate series for the match group {sig}"
                )));
            }
            *slot = true;
            Ok(())
        };
        for &oi in cands {
            let o = &one[oi];
            let mut vals: Option<Vec<f64>> = None;
            let mut hist: Option<Vec<Option<H>>> = None;
            let with_h = s.hist.is_some() || o.hist.is_some();
            for i in 0..n {
                let (mv, ov) = (s.vals[i], o.vals[i]);
                if with_h && (s.h(i).is_some() || o.h(i).is_some()) {
                    let (Some(ms), Some(os)) = (side(s, i), side(o, i)) else {
                        continue;
                    };
                    if one_to_one {
                        claim(&mut matched[sig as usize * n + i], s)?;
                    }
                    let (l, r) = if swapped { (os, ms) } else { (ms, os) };
                    let notes = notes
                        .as_deref_mut()
                        .expect("histogram operands come with notes");
                    match hist_elem(op, op_s, l, r, return_bool, notes) {
                        Some(Res::H(h)) => {
                            vals.get_or_insert_with(|| vec![ABSENT; n]);
                            hist.get_or_insert_with(|| vec![None; n])[i] = Some(h);
                        }
                        Some(Res::F(f)) => vals.get_or_insert_with(|| vec![ABSENT; n])[i] = f,
                        None => {}
                    }
                    continue;
                }
                if !has(mv) || !has(ov) {
                    continue;
                }
                if one_to_one {
                    claim(&mut matched[sig as usize * n + i], s)?;
                }
                let (v, keep) = apply(mv, ov);
                if keep {
                    vals.get_or_insert_with(|| vec![ABSENT; n])[i] = v;
                }
            }
            let Some(vals) = vals else { continue };
            let labels = result_labels(s, Some(o), drop, one_to_one, &matching, &include);
            let mut new = VSeries::new(labels, vals);
            new.hist = hist;
            emit(&mut out, new, merge)?;
        }
    }
    if let Some(f) = fill_many {
        // "one" series without any "many" partner at a step: a result with the
        // match group's labels (and the included labels of the "one" series)
        for (o, &sig) in one.iter().zip(&one_sig) {
            let mut vals: Option<Vec<f64>> = None;
            for i in 0..n {
                if has(o.vals[i]) && !many_present[sig as usize * n + i] {
                    let (v, keep) = apply(f, o.vals[i]);
                    if keep {
                        vals.get_or_insert_with(|| vec![ABSENT; n])[i] = v;
                    }
                }
            }
            if let Some(vals) = vals {
                let mut b = mode.labels(&o.labels).to_builder();
                for name in &include {
                    if let Some(v) = o.get(name) {
                        b.set(name.clone(), v);
                    }
                }
                emit(&mut out, VSeries::new(b.build(), vals), true)?;
            }
        }
    }
    Ok(Val::Vector(out))
}

/// A label set as Prometheus prints it in errors: `{__name__="up", job="x"}`.
fn go_labels(l: &Labels) -> String {
    let parts: Vec<String> = l
        .iter()
        .map(|x| format!("{}={:?}", x.name, x.value))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// The labels of a result series; `one` is None where `fill_right` stood in
/// for the "one" side (its included labels are then absent).
fn result_labels(
    many: &VSeries,
    one: Option<&VSeries>,
    drop: bool,
    one_to_one: bool,
    matching: &Option<LabelModifier>,
    include: &[String],
) -> Labels {
    let mut b = many.labels.to_builder();
    if drop || many.dropped {
        for n in NAME_LABELS {
            b.del(n);
        }
    }
    if one_to_one {
        match matching {
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
    for n in include {
        match one.and_then(|o| o.get(n)) {
            Some(v) => {
                b.set(n.clone(), v);
            }
            None => {
                b.del(n);
            }
        }
    }
    b.build()
}
