//! Runs Prometheus's PromQL test scripts (`shared/corpus/promql/*.test`) against
//! our engine over the in-memory store, prints a per-file table, the failures by
//! reason, and asserts floors on the passing statements so regressions fail.
//!
//! Native histograms (`{{...}}` literals in `load` and in expected results,
//! and the custom-bucket histograms `load_with_nhcb` derives from classic
//! buckets, as Prometheus's runner converts them) are loaded and compared as
//! Prometheus's runner compares them: both sides compacted, schema, zero
//! threshold and custom bounds exact, counts within the float tolerance.
//!
//! Every `eval` statement lands in exactly one bucket:
//! - needs start timestamps: a selector matches a series loaded with `@st`
//!   start timestamps, which the store does not keep. Not run.
//! - pass / fail: run and compared. Instant statements are also run as a range
//!   query around their time and compared at the middle step, as Prometheus's
//!   own runner does.
//!
//! Annotations (`expect warn`/`info`, `no_warn`/`no_info`) are compared
//! separately: a statement whose values match but whose annotations do not is
//! a pass with an annotation mismatch, counted and listed; there must be none.

use std::collections::BTreeMap;
use std::time::Duration;

use day2_model::{CounterResetHint, FloatHistogram, Labels, Matcher, STALE_NAN, Span};
use day2_promql::memstore::MemStore;
use day2_promql::{Engine, EngineOptions, QueryResult, Value};

/// Files with features newer than Prometheus 2.42, reported separately.
const NEWER: &[&str] = &[
    "duration_expression",
    "extended_vectors",
    "fill-modifier",
    "info",
    "start_timestamps",
    "type_and_unit",
    "name_label_dropping",
];

/// Passing statements at the last count; the run fails below them.
const FLOOR_CORE: usize = 1773;
const FLOOR_NEWER: usize = 415;

fn parse_time(s: &str) -> i64 {
    if let Ok(n) = s.parse::<i64>() {
        return n * 1000;
    }
    day2_model::parse_duration(s)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_else(|e| panic!("bad time {s:?}: {e}"))
}

fn parse_series_desc(desc: &str) -> Option<Labels> {
    use promql_parser::parser::Expr;
    if desc.trim() == "{}" {
        return Some(Labels::empty());
    }
    let Expr::VectorSelector(vs) = promql_parser::parser::parse(desc).ok()? else {
        return None;
    };
    let mut pairs: Vec<(String, String)> = vs
        .matchers
        .matchers
        .iter()
        .map(|m| (m.name.clone(), m.value.clone()))
        .collect();
    if let Some(n) = vs.name {
        pairs.push(("__name__".into(), n));
    }
    Some(Labels::from_pairs(pairs))
}

/// Splits `metric{labels} rest` at the end of the series descriptor.
fn split_desc(line: &str) -> (&str, &str) {
    let line = line.trim();
    let ws = line.find(char::is_whitespace).unwrap_or(line.len());
    // a label set starts before the first blank; `{{` after it is a histogram value
    match line
        .find('{')
        .filter(|&i| i < ws || line[..i].trim().is_empty())
    {
        Some(_) => {
            // the closing brace outside quotes
            let mut quoted = false;
            let mut escaped = false;
            let mut close = line.len() - 1;
            for (i, c) in line.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' if quoted => escaped = true,
                    '"' => quoted = !quoted,
                    '}' if !quoted => {
                        close = i;
                        break;
                    }
                    _ => {}
                }
            }
            let (d, r) = line.split_at(close + 1);
            (d, r.trim())
        }
        None => (&line[..ws], line[ws..].trim()),
    }
}

/// One value of the notation: a float or a native histogram.
#[derive(Debug, Clone)]
enum Val {
    F(f64),
    H(FloatHistogram),
}

/// Parses a number of the notation (`Inf`, `-Inf`, `NaN`, `stale` included).
fn num(s: &str) -> Result<f64, String> {
    Ok(match s {
        "Inf" | "+Inf" | "inf" | "+inf" => f64::INFINITY,
        "-Inf" | "-inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        "stale" => STALE_NAN,
        _ => s
            .parse()
            .map_err(|_| format!("unsupported value notation {s:?}"))?,
    })
}

/// Parses the inside of a histogram literal: `schema:0 sum:5 count:4
/// buckets:[1 2 1] offset:1 n_buckets:[..] n_offset:.. z_bucket:..
/// z_bucket_w:.. counter_reset_hint:gauge custom_values:[..]`.
fn histogram_literal(body: &str) -> Result<FloatHistogram, String> {
    let mut h = FloatHistogram::default();
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    let (mut offset, mut n_offset) = (0i32, 0i32);
    let mut rest = body.trim();
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once(':')
            .ok_or_else(|| format!("bad histogram field in {body:?}"))?;
        let after = after.trim_start();
        let (value, next) = if let Some(list) = after.strip_prefix('[') {
            let end = list
                .find(']')
                .ok_or_else(|| format!("unclosed list in {body:?}"))?;
            (&list[..end], &list[end + 1..])
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        let list =
            |v: &str| -> Result<Vec<f64>, String> { v.split_whitespace().map(num).collect() };
        match key.trim() {
            "schema" => h.schema = value.parse().map_err(|_| format!("bad schema {value:?}"))?,
            "sum" => h.sum = num(value)?,
            "count" => h.count = num(value)?,
            "z_bucket" => h.zero_count = num(value)?,
            "z_bucket_w" => h.zero_threshold = num(value)?,
            "buckets" => pos = list(value)?,
            "n_buckets" => neg = list(value)?,
            "offset" => offset = value.parse().map_err(|_| format!("bad offset {value:?}"))?,
            "n_offset" => n_offset = value.parse().map_err(|_| format!("bad offset {value:?}"))?,
            "custom_values" => h.custom_values = list(value)?,
            "counter_reset_hint" => {
                h.hint = match value {
                    "gauge" => CounterResetHint::Gauge,
                    "reset" => CounterResetHint::Reset,
                    "not_reset" => CounterResetHint::NotReset,
                    "unknown" => CounterResetHint::Unknown,
                    other => return Err(format!("bad counter_reset_hint {other:?}")),
                }
            }
            other => return Err(format!("unknown histogram field {other:?}")),
        }
        rest = next.trim_start();
    }
    let spans = |n: usize, off: i32| -> Vec<Span> {
        if n == 0 {
            vec![]
        } else {
            vec![Span {
                offset: off,
                length: n as u32,
            }]
        }
    };
    h.positive_spans = spans(pos.len(), offset);
    h.positive_buckets = pos;
    h.negative_spans = spans(neg.len(), n_offset);
    h.negative_buckets = neg;
    Ok(h)
}

/// Expands the value notation: `1+2x3`, `_`, `_x3`, `stale`, `5x2`, and
/// histograms `{{..}}`, `{{..}}x3`, `{{..}}+{{..}}x3`, `{{..}}-{{..}}x3`.
fn expand(vals: &str) -> Result<Vec<Option<Val>>, String> {
    let mut out = Vec::new();
    let mut rest = vals.trim();
    let hist_at = |s: &str| -> Result<(FloatHistogram, usize), String> {
        let end = s
            .find("}}")
            .ok_or_else(|| format!("unclosed histogram in {s:?}"))?;
        Ok((histogram_literal(&s[2..end])?, end + 2))
    };
    let times = |s: &str| -> (Option<usize>, usize) {
        match s.strip_prefix('x') {
            Some(r) => {
                let n = r.bytes().take_while(u8::is_ascii_digit).count();
                (r[..n].parse().ok(), n + 1)
            }
            None => (None, 0),
        }
    };
    while !rest.is_empty() {
        if rest.starts_with("{{") {
            let (base, used) = hist_at(rest)?;
            rest = &rest[used..];
            if let Some(op) = rest.chars().next().filter(|c| *c == '+' || *c == '-')
                && rest[1..].starts_with("{{")
            {
                let (inc, used) = hist_at(&rest[1..])?;
                rest = &rest[1 + used..];
                let (n, used) = times(rest);
                rest = &rest[used..];
                let n = n.ok_or("a histogram series needs xN")?;
                let mut cur = base;
                out.push(Some(Val::H(cur.clone())));
                for _ in 0..n {
                    let r = if op == '+' {
                        cur.add(&inc)
                    } else {
                        cur.sub(&inc)
                    };
                    r.map_err(|e| e.to_string())?;
                    out.push(Some(Val::H(cur.clone())));
                }
            } else {
                let (n, used) = times(rest);
                rest = &rest[used..];
                for _ in 0..=n.unwrap_or(0) {
                    out.push(Some(Val::H(base.clone())));
                }
            }
            rest = rest.trim_start();
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let tok = &rest[..end];
        rest = rest[end..].trim_start();
        if tok == "_" {
            out.push(None);
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            out.extend(std::iter::repeat_n(
                None,
                n.parse().map_err(|_| format!("bad repeat {tok:?}"))?,
            ));
            continue;
        }
        if let Some((head, times)) = tok.rsplit_once('x')
            && let Ok(times) = times.parse::<usize>()
        {
            // a+bxN, a-bxN or axN
            let (start, step) = match head[1..].find(['+', '-']).map(|i| i + 1) {
                Some(i) if !head[..i].ends_with('e') => {
                    let (a, b) = head.split_at(i);
                    (num(a)?, num(b)?)
                }
                _ => (num(head)?, 0.0),
            };
            for k in 0..=times {
                out.push(Some(Val::F(start + step * k as f64)));
            }
            continue;
        }
        out.push(Some(Val::F(num(tok)?)));
    }
    Ok(out)
}

/// Prometheus's runner comparison of histograms: both compacted; schema, zero
/// threshold, custom bounds and bucket layout exact; counts within tolerance.
fn histograms_match(want: &FloatHistogram, got: &FloatHistogram) -> bool {
    let (mut a, mut b) = (want.clone(), got.clone());
    a.compact();
    b.compact();
    let close = |x: &[(i32, f64)], y: &[(i32, f64)]| {
        x.len() == y.len()
            && x.iter()
                .zip(y)
                .all(|(p, q)| p.0 == q.0 && almost_equal(p.1, q.1))
    };
    a.schema == b.schema
        && almost_equal(a.count, b.count)
        && almost_equal(a.sum, b.sum)
        && (!a.uses_custom_buckets() || a.custom_values == b.custom_values)
        && a.zero_threshold == b.zero_threshold
        && almost_equal(a.zero_count, b.zero_count)
        && close(&a.bucket_list(true), &b.bucket_list(true))
        && close(&a.bucket_list(false), &b.bucket_list(false))
}

fn show(v: &Val) -> String {
    match v {
        Val::F(f) => f.to_string(),
        Val::H(h) => format!(
            "{{{{schema:{} count:{} sum:{} z:{}@{} pos:{:?} neg:{:?} custom:{:?}}}}}",
            h.schema,
            h.count,
            h.sum,
            h.zero_count,
            h.zero_threshold,
            h.bucket_list(true),
            h.bucket_list(false),
            h.custom_values
        ),
    }
}

fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || diff < f64::MIN_POSITIVE {
        return diff < 1e-6 * f64::MIN_POSITIVE;
    }
    diff / (a.abs() + b.abs()).min(f64::MAX) < 1e-6
}

/// Does `query` name `metric` as a whole identifier?
fn mentions(query: &str, metric: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    query.match_indices(metric).any(|(i, _)| {
        let before = query[..i].chars().next_back();
        let after = query[i + metric.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// An expected error or annotation: any, an exact message, or a regex.
#[derive(Debug, Clone)]
enum Pattern {
    Any,
    Msg(String),
    Regex(regex::Regex),
}

impl Pattern {
    fn parse(rest: &str) -> Pattern {
        let rest = rest.trim();
        if let Some(m) = rest.strip_prefix("msg:") {
            Pattern::Msg(m.trim().to_string())
        } else if let Some(r) = rest.strip_prefix("regex:") {
            Pattern::Regex(regex::Regex::new(r.trim()).expect("regex in test file"))
        } else {
            Pattern::Any
        }
    }

    fn matches(&self, s: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Msg(m) => m == s,
            Pattern::Regex(r) => r.is_match(s),
        }
    }
}

/// One expected series (labels None: a scalar) with its values.
struct Want {
    labels: Option<Labels>,
    values: Vec<Option<Val>>,
}

enum Kind {
    Instant(i64),
    Range { start: i64, end: i64, step: i64 },
}

struct Eval {
    line: usize,
    header: String,
    query: String,
    kind: Kind,
    fail: Option<Pattern>,
    ordered: bool,
    warn: Vec<Pattern>,
    info: Vec<Pattern>,
    want_warn: bool,
    want_info: bool,
    no_warn: bool,
    no_info: bool,
    /// `expect range vector from .. to .. step ..`: (start, step).
    range_vector: Option<(i64, i64)>,
    string: Option<String>,
    want: Vec<Want>,
    /// A line the runner could not read (reported as a failure).
    unreadable: Option<String>,
}

/// Go's `strconv.Unquote` for the forms the test files use.
fn unquote(s: &str) -> Option<String> {
    let s = s.trim();
    if let Some(raw) = s.strip_prefix('`').and_then(|r| r.strip_suffix('`')) {
        return Some(raw.to_string());
    }
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Some(out)
}

fn parse_eval(line: usize, header: &str, body: &[String]) -> Eval {
    let (kw, rest) = header.split_once(' ').unwrap();
    let mut ev = Eval {
        line,
        header: header.to_string(),
        query: String::new(),
        kind: Kind::Instant(0),
        fail: (kw == "eval_fail").then_some(Pattern::Any),
        ordered: kw == "eval_ordered",
        warn: Vec::new(),
        info: Vec::new(),
        want_warn: kw == "eval_warn",
        want_info: kw == "eval_info",
        no_warn: false,
        no_info: false,
        range_vector: None,
        string: None,
        want: Vec::new(),
        unreadable: None,
    };
    let rest = rest.trim();
    if let Some(r) = rest.strip_prefix("instant at ") {
        let (t, q) = r.trim().split_once(char::is_whitespace).unwrap();
        ev.kind = Kind::Instant(parse_time(t));
        ev.query = q.trim().to_string();
    } else if let Some(r) = rest.strip_prefix("range from ") {
        let parts: Vec<&str> = r.splitn(6, ' ').collect();
        ev.kind = Kind::Range {
            start: parse_time(parts[0]),
            end: parse_time(parts[2]),
            step: parse_time(parts[4]),
        };
        ev.query = parts[5].trim().to_string();
    } else {
        ev.unreadable = Some(format!("unknown eval form {header}"));
    }
    for l in body {
        let l = l.trim();
        if let Some(r) = l.strip_prefix("expect range vector from ") {
            let p: Vec<&str> = r.split_whitespace().collect();
            ev.range_vector = Some((parse_time(p[0]), parse_time(p[4])));
            continue;
        }
        if let Some(r) = l.strip_prefix("expect string") {
            ev.string = unquote(r);
            if ev.string.is_none() {
                ev.unreadable = Some(format!("bad expected string {r:?}"));
            }
            continue;
        }
        if let Some(e) = l.strip_prefix("expect ") {
            let (what, rest) = e.split_once(' ').unwrap_or((e, ""));
            match what {
                "fail" => ev.fail = Some(Pattern::parse(rest)),
                "ordered" => ev.ordered = true,
                "warn" => ev.warn.push(Pattern::parse(rest)),
                "info" => ev.info.push(Pattern::parse(rest)),
                "no_warn" => ev.no_warn = true,
                "no_info" => ev.no_info = true,
                _ => ev.unreadable = Some(format!("unknown expectation {l:?}")),
            }
            continue;
        }
        if let Some(m) = l.strip_prefix("expected_fail_message") {
            ev.fail = Some(Pattern::Msg(m.trim().to_string()));
            continue;
        }
        if let Some(r) = l.strip_prefix("expected_fail_regexp") {
            ev.fail = Some(Pattern::Regex(regex::Regex::new(r.trim()).unwrap()));
            continue;
        }
        let scalar = l.parse::<f64>().is_ok() || l.parse::<i64>().is_ok();
        let parsed = if scalar {
            expand(l).map(|v| Want {
                labels: None,
                values: v,
            })
        } else {
            let (desc, vals) = split_desc(l);
            match parse_series_desc(desc) {
                Some(labels) => expand(vals).map(|v| Want {
                    labels: Some(labels),
                    values: v,
                }),
                None => Err(format!("cannot parse expected series {desc:?}")),
            }
        };
        match parsed {
            Ok(w) => ev.want.push(w),
            Err(e) => ev.unreadable = Some(e),
        }
    }
    ev
}

/// Series loaded with start timestamps (`@st`), which the store does not keep.
#[derive(Default)]
struct Loaded {
    st: Vec<Labels>,
}

impl Loaded {
    fn clear(&mut self) {
        *self = Loaded::default();
    }
}

/// The custom-bucket histograms `load_with_nhcb` derives from classic series
/// (`_bucket` with `le`, `_count`, `_sum`), as Prometheus's runner derives
/// them: per timestamp, the cumulative buckets become custom bounds and
/// bucket counts, the count is `_count` (else the highest bucket), the sum
/// `_sum`; a missing `+Inf` bucket is added with the count.
fn nhcb(classic: &[(Labels, Vec<Option<Val>>)], step: i64) -> Vec<(Labels, i64, FloatHistogram)> {
    #[derive(Default)]
    struct Temp {
        buckets: Vec<(f64, f64)>,
        count: Option<f64>,
        sum: f64,
    }
    let mut by_base: BTreeMap<Labels, BTreeMap<i64, Temp>> = BTreeMap::new();
    for (l, vals) in classic {
        let Some(name) = l.metric_name() else {
            continue;
        };
        enum Part {
            Bucket(f64),
            Count,
            Sum,
        }
        let (base, part) = if let Some(b) = name.strip_suffix("_bucket") {
            let le = l.get("le").and_then(|v| {
                v.trim().parse::<f64>().ok().or(match v.trim() {
                    "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
                    "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
                    _ => None,
                })
            });
            match le {
                Some(le) if !le.is_nan() => (b, Part::Bucket(le)),
                _ => continue,
            }
        } else if let Some(b) = name.strip_suffix("_count") {
            (b, Part::Count)
        } else if let Some(b) = name.strip_suffix("_sum") {
            (b, Part::Sum)
        } else {
            continue;
        };
        let mut b = l.to_builder();
        b.del("le");
        b.set("__name__", base);
        let per_t = by_base.entry(b.build()).or_default();
        for (k, v) in vals.iter().enumerate() {
            let Some(Val::F(f)) = v else { continue };
            let tmp = per_t.entry(k as i64 * step).or_default();
            match part {
                Part::Bucket(le) => {
                    if !tmp.buckets.iter().any(|b| b.0 == le) {
                        tmp.buckets.push((le, *f));
                    }
                }
                Part::Count => tmp.count = Some(*f),
                Part::Sum => tmp.sum = *f,
            }
        }
    }
    let mut out = Vec::new();
    for (labels, per_t) in by_base {
        for (t, mut tmp) in per_t {
            tmp.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            let count = tmp.count.or(tmp.buckets.last().map(|b| b.1)).unwrap_or(0.0);
            if tmp.buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
                tmp.buckets.push((f64::INFINITY, count));
            }
            let mut h = FloatHistogram::empty(day2_model::histogram::CUSTOM_BUCKETS_SCHEMA);
            h.count = count;
            h.sum = tmp.sum;
            h.custom_values = tmp.buckets[..tmp.buckets.len() - 1]
                .iter()
                .map(|b| b.0)
                .collect();
            let mut prev = 0.0;
            let list: Vec<(i32, f64)> = tmp
                .buckets
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let c = b.1 - prev;
                    prev = b.1;
                    (i as i32, c)
                })
                .collect();
            h.set_bucket_list(true, &list);
            h.compact();
            out.push((labels.clone(), t, h));
        }
    }
    out
}

fn load(db: &mut MemStore, loaded: &mut Loaded, header: &str, body: &[String]) {
    let with_nhcb = header.starts_with("load_with_nhcb");
    let interval = header.split_whitespace().nth(1).unwrap();
    let step = parse_time(interval);
    let mut default_st = false;
    let mut classic = Vec::new();
    for l in body {
        let (desc, vals) = split_desc(l);
        if let Some(v) = vals.strip_prefix("@st") {
            // `metric{labels}@st <offsets>`
            if let Some(labels) = parse_series_desc(desc) {
                loaded.st.push(labels);
            }
            let _ = v;
            continue;
        }
        if desc == "@st" {
            default_st = true;
            continue;
        }
        if let Some(d) = desc.strip_suffix("@st") {
            if let Some(labels) = parse_series_desc(d) {
                loaded.st.push(labels);
            }
            continue;
        }
        let Some(labels) = parse_series_desc(desc) else {
            panic!("runner cannot read series {desc:?}");
        };
        let values =
            expand(vals).unwrap_or_else(|e| panic!("runner cannot read values of {desc}: {e}"));
        if default_st {
            loaded.st.push(labels.clone());
        }
        for (k, v) in values.iter().enumerate() {
            match v {
                Some(Val::F(f)) => db.add(labels.clone(), k as i64 * step, *f),
                Some(Val::H(h)) => db.add_histogram(labels.clone(), k as i64 * step, h.clone()),
                None => {}
            }
        }
        classic.push((labels, values));
    }
    if with_nhcb {
        for (labels, t, h) in nhcb(&classic, step) {
            db.add_histogram(labels, t, h);
        }
    }
}

/// Why a statement is not run, if it needs data the store cannot hold.
fn needs(ev: &Eval, loaded: &Loaded) -> Option<&'static str> {
    let hit = |set: &[Labels]| -> bool {
        match day2_promql::query_selectors(&ev.query) {
            Ok(selectors) => selectors.iter().any(|groups| {
                groups.iter().any(|g: &Vec<Matcher>| {
                    set.iter().any(|l| g.iter().all(|m| m.matches_labels(l)))
                })
            }),
            Err(_) => set
                .iter()
                .filter_map(|l| l.metric_name())
                .any(|n| mentions(&ev.query, n)),
        }
    };
    if hit(&loaded.st) {
        return Some("needs start timestamps (selects series loaded with @st)");
    }
    None
}

enum Outcome {
    Pass,
    /// Values match, annotations do not.
    PassAnnotations(String),
    Fail(String),
}

fn labels_list<'a>(it: impl Iterator<Item = &'a Labels>) -> String {
    it.map(|l| l.to_string()).collect::<Vec<_>>().join(", ")
}

/// A result value: a float or a histogram.
type GotVal = (f64, Option<std::sync::Arc<FloatHistogram>>);

fn value_matches(want: Option<&Val>, got: &GotVal) -> bool {
    match (want, &got.1) {
        (Some(Val::H(w)), Some(h)) => histograms_match(w, h),
        (Some(Val::H(_)), None) | (Some(Val::F(_)) | None, Some(_)) => false,
        (Some(Val::F(w)), None) => almost_equal(got.0, *w),
        (None, None) => got.0.is_nan(),
    }
}

fn show_got(g: &GotVal) -> String {
    match &g.1 {
        Some(h) => show(&Val::H((**h).clone())),
        None => g.0.to_string(),
    }
}

/// Compares an instant vector with the expectations.
fn compare_vector(ev: &Eval, got: &[(Labels, GotVal)], ordered: bool) -> Result<(), String> {
    if ev.want.iter().any(|w| w.labels.is_none()) {
        return Err(format!(
            "expected a scalar, got a vector of {} samples",
            got.len()
        ));
    }
    if got.len() != ev.want.len() {
        return Err(format!(
            "got {} samples, want {}: [{}]",
            got.len(),
            ev.want.len(),
            got.iter()
                .map(|(l, v)| format!("{l}={}", show_got(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for (i, w) in ev.want.iter().enumerate() {
        let wl = w.labels.as_ref().unwrap();
        let g = if ordered {
            Some(&got[i]).filter(|g| &g.0 == wl)
        } else {
            got.iter().find(|g| &g.0 == wl)
        };
        let g = g.ok_or_else(|| {
            format!(
                "missing {wl}{} (got [{}])",
                if ordered { " at its position" } else { "" },
                labels_list(got.iter().map(|g| &g.0))
            )
        })?;
        let want = w.values.first().and_then(|v| v.as_ref());
        if !value_matches(want, &g.1) {
            return Err(format!(
                "{wl}: got {} want {}",
                show_got(&g.1),
                want.map_or("nothing".into(), show)
            ));
        }
    }
    Ok(())
}

fn compare_matrix(
    ev: &Eval,
    got: &[day2_promql::RangeSeries],
    start: i64,
    step: i64,
) -> Result<(), String> {
    if got.windows(2).any(|w| w[0].labels > w[1].labels) {
        return Err("matrix not sorted by labels".into());
    }
    if got.len() != ev.want.len() {
        return Err(format!(
            "got {} series, want {}: [{}]",
            got.len(),
            ev.want.len(),
            labels_list(got.iter().map(|g| &g.labels))
        ));
    }
    for w in &ev.want {
        let wl = w.labels.clone().unwrap_or_default();
        let at = |i: usize| start + i as i64 * step;
        let want_f: Vec<(i64, f64)> = w
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match v {
                Some(Val::F(f)) => Some((at(i), *f)),
                _ => None,
            })
            .collect();
        let want_h: Vec<(i64, &FloatHistogram)> = w
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match v {
                Some(Val::H(h)) => Some((at(i), h)),
                _ => None,
            })
            .collect();
        let g = got
            .iter()
            .find(|g| g.labels == wl)
            .ok_or_else(|| format!("missing series {wl}"))?;
        if g.points.len() != want_f.len()
            || !g
                .points
                .iter()
                .zip(&want_f)
                .all(|(a, b)| a.0 == b.0 && almost_equal(a.1, b.1))
        {
            return Err(format!("{wl}: got {:?} want {:?}", g.points, want_f));
        }
        if g.histograms.len() != want_h.len()
            || !g
                .histograms
                .iter()
                .zip(&want_h)
                .all(|(a, b)| a.0 == b.0 && histograms_match(b.1, &a.1))
        {
            return Err(format!(
                "{wl}: got histograms {:?} want {:?}",
                g.histograms
                    .iter()
                    .map(|(t, h)| (t, show(&Val::H((**h).clone()))))
                    .collect::<Vec<_>>(),
                want_h
                    .iter()
                    .map(|(t, h)| (t, show(&Val::H((*h).clone()))))
                    .collect::<Vec<_>>()
            ));
        }
    }
    Ok(())
}

fn compare(ev: &Eval, value: &Value) -> Result<(), String> {
    match value {
        Value::Scalar(_, v) => {
            let w = match ev.want.as_slice() {
                [w] if w.labels.is_none() => w.values.first().cloned().flatten(),
                _ => return Err(format!("got scalar {v}, expected a vector")),
            };
            let Some(Val::F(w)) = w else {
                return Err("expected no value or a histogram".into());
            };
            if almost_equal(*v, w) {
                Ok(())
            } else {
                Err(format!("scalar {v} != {w}"))
            }
        }
        Value::Vector(_, got) => {
            let got: Vec<(Labels, GotVal)> = got
                .iter()
                .map(|s| (s.labels.clone(), (s.v, s.h.clone())))
                .collect();
            compare_vector(ev, &got, ev.ordered)
        }
        Value::Matrix(got) => {
            if ev.ordered {
                return Err("expected an ordered result, got a matrix".into());
            }
            let (start, step) = match (&ev.kind, ev.range_vector) {
                (_, Some(rv)) => rv,
                (Kind::Range { start, step, .. }, None) => (*start, *step),
                (Kind::Instant(t), None) => (*t, 0),
            };
            compare_matrix(ev, got, start, step)
        }
        Value::String(_, s) => match &ev.string {
            Some(w) if w == s => Ok(()),
            w => Err(format!("got string {s:?}, want {w:?}")),
        },
    }
}

fn check_annotations(ev: &Eval, r: &QueryResult) -> Result<(), String> {
    let one = |kind: &str, want_any: bool, want: &[Pattern], none: bool, got: &[String]| {
        if (want_any || !want.is_empty()) && got.is_empty() {
            return Err(format!("expected {kind} annotations, got none"));
        }
        if let Some(p) = want.iter().find(|p| !got.iter().any(|g| p.matches(g))) {
            return Err(format!("no {kind} annotation matching {p:?} in {got:?}"));
        }
        if !want.is_empty()
            && let Some(g) = got.iter().find(|g| !want.iter().any(|p| p.matches(g)))
        {
            return Err(format!("unexpected {kind} annotation {g:?}"));
        }
        if none && !got.is_empty() {
            return Err(format!("unexpected {kind} annotations {got:?}"));
        }
        Ok(())
    };
    one("warn", ev.want_warn, &ev.warn, ev.no_warn, &r.warnings)?;
    one("info", ev.want_info, &ev.info, ev.no_info, &r.infos)
}

/// Queries whose result depends on the query's own range, skipped in range mode.
fn uses_query_range(q: &str) -> bool {
    ["start()", "end()", "range()", "step()"]
        .iter()
        .any(|f| q.contains(f))
}

fn run_eval(engine: &Engine, db: &MemStore, ev: &Eval) -> Outcome {
    if let Some(u) = &ev.unreadable {
        return Outcome::Fail(format!("runner: {u}"));
    }
    let result = match ev.kind {
        Kind::Instant(t) => engine.instant(db, &ev.query, t),
        Kind::Range { start, end, step } => engine.range(db, &ev.query, start, end, step),
    };
    if let Some(p) = &ev.fail {
        return match result {
            Err(e) if p.matches(&e.to_string()) => Outcome::Pass,
            Err(e) => Outcome::Fail(format!("failed with {:?}, expected {p:?}", e.to_string())),
            Ok(_) => Outcome::Fail("expected an error, got a result".into()),
        };
    }
    let result = match result {
        Ok(r) => r,
        Err(e) => return Outcome::Fail(format!("error: {e}")),
    };
    if let Err(e) = compare(ev, &result.value) {
        return Outcome::Fail(e);
    }
    // the same query in range mode, compared at the middle step
    if let Kind::Instant(t) = ev.kind
        && !ev.ordered
        && ev.range_vector.is_none()
        && ev.string.is_none()
        && !uses_query_range(&ev.query)
    {
        match engine.range(db, &ev.query, t - 60_000, t + 60_000, 60_000) {
            Err(e) => return Outcome::Fail(format!("range mode: error: {e}")),
            Ok(r) => {
                let Value::Matrix(m) = &r.value else {
                    return Outcome::Fail("range mode: no matrix".into());
                };
                let at: Vec<(Labels, GotVal)> = m
                    .iter()
                    .filter_map(|s| {
                        s.points
                            .iter()
                            .find(|p| p.0 == t)
                            .map(|p| (s.labels.clone(), (p.1, None)))
                            .or_else(|| {
                                s.histograms
                                    .iter()
                                    .find(|p| p.0 == t)
                                    .map(|p| (s.labels.clone(), (0.0, Some(p.1.clone()))))
                            })
                    })
                    .collect();
                let res = if matches!(result.value, Value::Scalar(..)) {
                    compare(
                        ev,
                        &Value::Scalar(t, at.first().map_or(f64::NAN, |x| x.1.0)),
                    )
                } else {
                    compare_vector(ev, &at, false)
                };
                if let Err(e) = res {
                    return Outcome::Fail(format!("range mode: {e}"));
                }
            }
        }
    }
    match check_annotations(ev, &result) {
        Ok(()) => Outcome::Pass,
        Err(e) => Outcome::PassAnnotations(e),
    }
}

#[derive(Default, Clone, Copy)]
struct Tally {
    total: usize,
    pass: usize,
    fail: usize,
    not_run: usize,
    annotations: usize,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Tally) {
        self.total += o.total;
        self.pass += o.pass;
        self.fail += o.fail;
        self.not_run += o.not_run;
        self.annotations += o.annotations;
    }
}

#[derive(Default)]
struct Report {
    /// reason -> (file -> count) of statements not run.
    not_run: BTreeMap<&'static str, BTreeMap<String, usize>>,
    failures: Vec<String>,
    annotations: Vec<String>,
}

fn run_file(name: &str, text: &str, report: &mut Report) -> Tally {
    let engine = Engine::new(EngineOptions {
        lookback_delta: Duration::from_secs(300),
        ..Default::default()
    });
    let mut db = MemStore::new();
    let mut loaded = Loaded::default();
    let mut tally = Tally::default();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim();
        if t.is_empty() || t.starts_with('#') {
            i += 1;
            continue;
        }
        if t == "clear" {
            db.clear();
            loaded.clear();
            i += 1;
            continue;
        }
        let start_line = i + 1;
        let mut body = Vec::new();
        i += 1;
        while i < lines.len()
            && (lines[i].starts_with(' ') || lines[i].starts_with('\t'))
            && !lines[i].trim().is_empty()
        {
            if !lines[i].trim().starts_with('#') {
                body.push(lines[i].to_string());
            }
            i += 1;
        }
        if t.starts_with("load") {
            load(&mut db, &mut loaded, t, &body);
            continue;
        }
        if !t.starts_with("eval") {
            panic!("{name}.test:{start_line}: unknown command {t:?}");
        }
        let ev = parse_eval(start_line, t, &body);
        tally.total += 1;
        if let Some(reason) = needs(&ev, &loaded) {
            tally.not_run += 1;
            *report
                .not_run
                .entry(reason)
                .or_default()
                .entry(name.to_string())
                .or_default() += 1;
            continue;
        }
        let at = format!("{name}.test:{}: {}", ev.line, ev.header);
        match run_eval(&engine, &db, &ev) {
            Outcome::Pass => tally.pass += 1,
            Outcome::PassAnnotations(e) => {
                tally.pass += 1;
                tally.annotations += 1;
                report.annotations.push(format!("{at} -> {e}"));
            }
            Outcome::Fail(e) => {
                tally.fail += 1;
                report.failures.push(format!("{at} -> {e}"));
            }
        }
    }
    tally
}

#[test]
fn prometheus_promql_test_scripts() {
    // `shared/` sits beside the repository, which may be a worktree further down
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("shared/corpus/promql"))
        .find(|d| d.is_dir())
        .expect("shared/corpus/promql beside the repository or above it");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let mut report = Report::default();
    let (mut core, mut newer) = (Tally::default(), Tally::default());
    println!(
        "{:<22} {:>6} {:>6} {:>6} {:>8} {:>12}",
        "file", "total", "pass", "fail", "not run", "annotations"
    );
    for f in &files {
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(f).unwrap();
        let t = run_file(&name, &text, &mut report);
        println!(
            "{:<22} {:>6} {:>6} {:>6} {:>8} {:>12}",
            name, t.total, t.pass, t.fail, t.not_run, t.annotations
        );
        if NEWER.contains(&name.as_str()) {
            newer += t;
        } else {
            core += t;
        }
    }
    for (group, t) in [("core", core), ("newer", newer)] {
        println!(
            "{group}: {} statements: {} pass, {} fail, {} not run; {} of the passes differ in annotations",
            t.total, t.pass, t.fail, t.not_run, t.annotations
        );
    }
    println!("\nnot run, by reason:");
    for (reason, files) in &report.not_run {
        let n: usize = files.values().sum();
        let per: Vec<String> = files.iter().map(|(f, c)| format!("{f} {c}")).collect();
        println!("  {n:>4}  {reason}: {}", per.join(", "));
    }
    println!("\nfailures ({}):", report.failures.len());
    for f in &report.failures {
        println!("FAIL {f}");
    }
    println!("\nannotation mismatches ({}):", report.annotations.len());
    for f in &report.annotations {
        println!("ANNOTATION {f}");
    }
    assert!(
        core.pass >= FLOOR_CORE,
        "core statements passing fell to {} (floor {FLOOR_CORE})",
        core.pass
    );
    assert!(
        report.annotations.is_empty(),
        "{} passing statements differ in annotations",
        report.annotations.len()
    );
    assert!(
        newer.pass >= FLOOR_NEWER,
        "newer statements passing fell to {} (floor {FLOOR_NEWER})",
        newer.pass
    );
}
