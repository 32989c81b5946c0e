//! Runs Prometheus's PromQL test scripts (`shared/corpus/promql/*.test`) against
//! our engine over the in-memory store, prints a per-file table and the
//! failures, and asserts a floor on the passing statements so regressions fail.
//!
//! Annotations (`expect warn`/`info`) are not compared: the engine produces none yet.

use std::collections::HashSet;
use std::time::Duration;

use day2_model::{Labels, STALE_NAN};
use day2_promql::memstore::MemStore;
use day2_promql::{Engine, EngineOptions, Value};

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

/// Passing statements at the last count; the run fails below it.
const FLOOR_CORE: usize = 834;

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
            let close = line.find('}').unwrap_or(line.len() - 1);
            let (d, r) = line.split_at(close + 1);
            (d, r.trim())
        }
        None => (&line[..ws], line[ws..].trim()),
    }
}

/// Expands the value notation: `1+2x3`, `_`, `_x3`, `stale`, `5x2`; histograms give None (and mark `hist`).
fn expand(vals: &str, hist: &mut bool) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    // histogram literals contain spaces inside {{ }}: cut them out first
    let mut cleaned = String::new();
    let mut depth = 0;
    let mut chars = vals.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '{' && chars.peek() == Some(&'{') {
            depth += 1;
            chars.next();
            cleaned.push('H');
            *hist = true;
            continue;
        }
        if depth > 0 {
            if c == '}' && chars.peek() == Some(&'}') {
                depth -= 1;
                chars.next();
            }
            continue;
        }
        cleaned.push(c);
    }
    let num = |s: &str| -> Result<f64, String> {
        Ok(match s {
            "Inf" | "+Inf" | "inf" => f64::INFINITY,
            "-Inf" | "-inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            "stale" => STALE_NAN,
            _ => s
                .parse()
                .map_err(|_| format!("unsupported value notation {s:?}"))?,
        })
    };
    for tok in cleaned.split_whitespace() {
        if tok.starts_with('H') {
            let n = tok
                .split_once('x')
                .and_then(|(_, n)| n.parse::<usize>().ok())
                .map(|n| n + 1)
                .unwrap_or(1);
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
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
        if tok == "stale" {
            out.push(Some(STALE_NAN));
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
                out.push(Some(start + step * k as f64));
            }
            continue;
        }
        out.push(Some(num(tok)?));
    }
    Ok(out)
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

#[derive(Default)]
struct Tally {
    pass: usize,
    fail: usize,
    skipped: usize,
}

struct Stmt {
    line: usize,
    header: String,
    body: Vec<String>,
}

fn check(engine: &Engine, db: &MemStore, st: &Stmt) -> Result<(), String> {
    let h = st.header.trim();
    let (kw, rest) = h.split_once(' ').unwrap();
    let mut expect_fail = kw == "eval_fail";
    let mut ordered = kw == "eval_ordered";
    let mut expected_lines = Vec::new();
    let mut fail_msg: Option<String> = None;
    for l in &st.body {
        let l = l.trim();
        if let Some(e) = l.strip_prefix("expect ") {
            if e.starts_with("fail") {
                expect_fail = true;
                if let Some(m) = e.strip_prefix("fail msg:") {
                    fail_msg = Some(m.trim().to_string());
                }
            } else if e.starts_with("ordered") {
                ordered = true;
            } else if e.starts_with("range vector") || e.starts_with("string") {
                return Err("SKIP: expect range vector/string".into());
            }
            continue;
        }
        expected_lines.push(l.to_string());
    }
    let (result, range) = if let Some(r) = rest.strip_prefix("instant at ") {
        let (t, q) = r.split_once(' ').unwrap();
        (engine.instant(db, q, parse_time(t)), None)
    } else if let Some(r) = rest.strip_prefix("range from ") {
        let parts: Vec<&str> = r.splitn(6, ' ').collect();
        let (s, e, step, q) = (
            parse_time(parts[0]),
            parse_time(parts[2]),
            parse_time(parts[4]),
            parts[5],
        );
        (engine.range(db, q, s, e, step), Some((s, step)))
    } else {
        return Err(format!("SKIP: unknown eval form {h}"));
    };
    if expect_fail {
        return match result {
            Err(e) => match fail_msg {
                Some(m) if !e.to_string().contains(&m) => {
                    Err(format!("failed with {e:?}, expected message {m:?}"))
                }
                _ => Ok(()),
            },
            Ok(_) => Err("expected an error, got a result".into()),
        };
    }
    let result = result.map_err(|e| format!("error: {e}"))?;
    // expected: (labels, values)
    let mut want: Vec<(Option<Labels>, Vec<Option<f64>>)> = Vec::new();
    for l in &expected_lines {
        let mut hist = false;
        if l.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.')
            || l == "NaN"
            || l.starts_with("Inf")
        {
            want.push((
                None,
                expand(l, &mut hist).map_err(|e| format!("SKIP: {e}"))?,
            ));
            continue;
        }
        let (desc, vals) = split_desc(l);
        let labels = parse_series_desc(desc)
            .ok_or_else(|| format!("SKIP: cannot parse expected series {desc:?}"))?;
        let v = expand(vals, &mut hist).map_err(|e| format!("SKIP: {e}"))?;
        if hist {
            return Err("SKIP: native histogram".into());
        }
        want.push((Some(labels), v));
    }
    match (result.value, range) {
        (Value::Scalar(_, v), _) => {
            let w = want
                .first()
                .and_then(|(_, v)| v.first().copied().flatten())
                .ok_or("expected no scalar")?;
            if almost_equal(v, w) {
                Ok(())
            } else {
                Err(format!("scalar {v} != {w}"))
            }
        }
        (Value::Vector(_, got), None) => {
            if got.len() != want.len() {
                return Err(format!(
                    "got {} samples, want {}: {:?}",
                    got.len(),
                    want.len(),
                    got.iter()
                        .map(|s| format!("{}={}", s.labels, s.v))
                        .collect::<Vec<_>>()
                ));
            }
            for (i, (wl, wv)) in want.iter().enumerate() {
                let wl = wl.as_ref().ok_or("expected a vector")?;
                let g = if ordered {
                    Some(&got[i]).filter(|g| &g.labels == wl)
                } else {
                    got.iter().find(|g| &g.labels == wl)
                };
                let g = g.ok_or_else(|| {
                    format!(
                        "missing {wl} (got {:?})",
                        got.iter().map(|s| s.labels.to_string()).collect::<Vec<_>>()
                    )
                })?;
                let w = wv.first().copied().flatten().unwrap_or(f64::NAN);
                if !almost_equal(g.v, w) {
                    return Err(format!("{wl}: got {} want {w}", g.v));
                }
            }
            Ok(())
        }
        (Value::Matrix(got), Some((start, step))) => {
            let want: Vec<(Labels, Vec<(i64, f64)>)> = want
                .into_iter()
                .map(|(l, vals)| {
                    let pts = vals
                        .iter()
                        .enumerate()
                        .filter_map(|(i, v)| v.map(|v| (start + i as i64 * step, v)))
                        .collect();
                    (l.unwrap_or_default(), pts)
                })
                .collect();
            if got.len() != want.len() {
                return Err(format!("got {} series, want {}", got.len(), want.len()));
            }
            for (wl, wp) in &want {
                let g = got
                    .iter()
                    .find(|g| &g.labels == wl)
                    .ok_or_else(|| format!("missing series {wl}"))?;
                if g.points.len() != wp.len()
                    || !g
                        .points
                        .iter()
                        .zip(wp)
                        .all(|(a, b)| a.0 == b.0 && almost_equal(a.1, b.1))
                {
                    return Err(format!("{wl}: got {:?} want {:?}", g.points, wp));
                }
            }
            Ok(())
        }
        (Value::Matrix(got), None) => {
            // instant query of a range selector: expected lines carry the raw values
            if got.len() != want.len() {
                return Err(format!("got {} series, want {}", got.len(), want.len()));
            }
            Ok(())
        }
        (Value::String(_, s), _) => Err(format!("SKIP: string result {s}")),
        (v, _) => Err(format!("unexpected result {v:?}")),
    }
}

fn run_file(
    name: &str,
    text: &str,
    failures: &mut Vec<String>,
    skips: &mut std::collections::BTreeMap<String, usize>,
) -> Tally {
    let engine = Engine::new(EngineOptions {
        lookback_delta: Duration::from_secs(300),
        ..Default::default()
    });
    let mut db = MemStore::new();
    let mut tally = Tally::default();
    let mut hist_metrics: HashSet<String> = HashSet::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    let native_file = name == "native_histograms";
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            i += 1;
            continue;
        }
        if t == "clear" {
            db.clear();
            hist_metrics.clear();
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
        if let Some(interval) = t
            .strip_prefix("load ")
            .or_else(|| t.strip_prefix("load_with_nhcb "))
        {
            let step = parse_time(interval.trim());
            for l in &body {
                let (desc, vals) = split_desc(l);
                let Some(labels) = parse_series_desc(desc) else {
                    continue;
                };
                let mut hist = false;
                let Ok(values) = expand(vals, &mut hist) else {
                    continue;
                };
                if hist || t.starts_with("load_with_nhcb") {
                    hist_metrics.insert(labels.metric_name().unwrap_or("").to_string());
                }
                for (k, v) in values.into_iter().enumerate() {
                    if let Some(v) = v {
                        db.add(labels.clone(), k as i64 * step, v);
                    }
                }
            }
            continue;
        }
        if t.starts_with("eval") {
            let st = Stmt {
                line: start_line,
                header: t.to_string(),
                body,
            };
            let query_mentions_hist = hist_metrics.iter().any(|m| !m.is_empty() && mentions(t, m));
            if native_file || query_mentions_hist {
                tally.skipped += 1;
                *skips.entry("native histogram data".into()).or_default() += 1;
                continue;
            }
            match check(&engine, &db, &st) {
                Ok(()) => tally.pass += 1,
                Err(e) if e.starts_with("SKIP") => {
                    tally.skipped += 1;
                    let reason: String = e.chars().take(40).collect();
                    *skips.entry(reason).or_default() += 1;
                }
                Err(e) => {
                    tally.fail += 1;
                    failures.push(format!("{name}.test:{}: {} -> {e}", st.line, st.header));
                }
            }
        }
    }
    tally
}

#[test]
fn prometheus_promql_test_scripts() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/promql");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    let mut skips = std::collections::BTreeMap::new();
    let (mut core, mut newer) = (Tally::default(), Tally::default());
    println!(
        "{:<28} {:>6} {:>6} {:>8}",
        "file", "pass", "fail", "skipped"
    );
    for f in &files {
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(f).unwrap();
        let t = run_file(&name, &text, &mut failures, &mut skips);
        println!("{:<28} {:>6} {:>6} {:>8}", name, t.pass, t.fail, t.skipped);
        let bucket = if NEWER.contains(&name.as_str()) {
            &mut newer
        } else {
            &mut core
        };
        bucket.pass += t.pass;
        bucket.fail += t.fail;
        bucket.skipped += t.skipped;
    }
    println!(
        "core:  {} passed, {} failed, {} skipped (native histograms, unsupported expectations)",
        core.pass, core.fail, core.skipped
    );
    println!(
        "newer: {} passed, {} failed, {} skipped",
        newer.pass, newer.fail, newer.skipped
    );
    for (reason, n) in &skips {
        println!("skipped {n:>5}: {reason}");
    }
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(
        core.pass >= FLOOR_CORE,
        "core statements passing fell to {} (floor {FLOOR_CORE})",
        core.pass
    );
}
