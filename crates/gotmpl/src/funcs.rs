//! Function registries: [`FuncMap`], and the function sets of Prometheus
//! ([`prometheus`]) and Alertmanager ([`alertmanager`]).
//!
//! Prometheus query results are represented as a List of Maps
//! `{"Labels": Map of strings, "Value": Float}` (Prometheus's `[]sample`); a
//! string result puts its value in the `__value__` label, as Prometheus does.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use regex::Regex;

use crate::builtins::query_escape;
use crate::fmt::sprintf;
use crate::gotime::format_layout;
use crate::value::Value;

/// A template function: evaluated arguments in, a value or an error message out.
pub type Func = Arc<dyn Fn(&[Value]) -> Result<Value, String> + Send + Sync>;

/// Functions by name. Cloning is cheap (shared until modified).
#[derive(Clone, Default)]
pub struct FuncMap(Arc<HashMap<String, Func>>);

impl std::fmt::Debug for FuncMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.names().collect();
        names.sort_unstable();
        f.debug_tuple("FuncMap").field(&names).finish()
    }
}

impl FuncMap {
    /// An empty map (the builtins are always available anyway).
    pub fn new() -> FuncMap {
        FuncMap::default()
    }

    /// Adds or replaces a function.
    pub fn insert<F>(&mut self, name: &str, f: F)
    where
        F: Fn(&[Value]) -> Result<Value, String> + Send + Sync + 'static,
    {
        Arc::make_mut(&mut self.0).insert(name.to_string(), Arc::new(f));
    }

    /// Adds or replaces a function, builder style.
    pub fn with<F>(mut self, name: &str, f: F) -> FuncMap
    where
        F: Fn(&[Value]) -> Result<Value, String> + Send + Sync + 'static,
    {
        self.insert(name, f);
        self
    }

    /// Adds all functions of `other`, replacing same-named ones.
    pub fn extend(&mut self, other: &FuncMap) {
        let m = Arc::make_mut(&mut self.0);
        for (k, v) in other.0.iter() {
            m.insert(k.clone(), v.clone());
        }
    }

    /// The function of this name.
    pub fn get(&self, name: &str) -> Option<&Func> {
        self.0.get(name)
    }

    /// True if a function of this name is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The registered names, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// One element of a Prometheus query result as templates see it:
/// `{"Labels": {...}, "Value": value}`. `query` returns a List of these.
pub fn sample(labels: &day2_model::Labels, value: f64) -> Value {
    Value::map([
        ("Labels", Value::from(labels)),
        ("Value", Value::Float(value)),
    ])
}

/// Checks the argument count as Go's text/template does.
pub fn arity(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

/// Argument `i` as a string, or Go's type error.
pub fn str_arg(args: &[Value], i: usize) -> Result<&str, String> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(format!(
            "wrong type for value; expected string; got {}",
            v.type_name()
        )),
        None => Err("missing argument".into()),
    }
}

/// Prometheus's `convertToFloat`: numbers, numeric strings, durations (seconds).
pub fn to_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Duration(d) => Ok(*d as f64 / 1e9),
        Value::String(s) => parse_go_float(s),
        v => Err(format!("can't convert {} to float", v.type_name())),
    }
}

/// `strconv.ParseFloat(s, 64)` for the forms rule data carries.
fn parse_go_float(s: &str) -> Result<f64, String> {
    let t = s.trim_start_matches(['+', '-']);
    let neg = s.starts_with('-');
    let v = match t.to_ascii_lowercase().as_str() {
        "inf" | "infinity" => f64::INFINITY,
        "nan" => f64::NAN,
        _ => {
            if !t
                .bytes()
                .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
            {
                return Err(format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"));
            }
            t.parse::<f64>()
                .map_err(|_| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"))?
        }
    };
    Ok(if neg { -v } else { v })
}

fn g4(v: f64) -> String {
    sprintf("%.4g", &[Value::Float(v)])
}

/// Prometheus's `humanize`: metric prefixes, 4 significant digits.
pub fn humanize(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return g4(v);
    }
    let mut v = v;
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", g4(v))
}

/// Prometheus's `humanize1024`: binary prefixes.
pub fn humanize1024(v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return g4(v);
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", g4(v))
}

/// Prometheus's `humanizeDuration` of seconds: `1d 1h 1m 1s`, `1.5s`, `100ms`.
pub fn humanize_duration(v: f64) -> String {
    if !v.is_finite() {
        return g4(v);
    }
    if v == 0.0 {
        return format!("{}s", g4(v));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        let v = v.abs();
        let d = v as i64;
        let (s, m, h, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        if days != 0 {
            return format!("{sign}{days}d {h}h {m}m {s}s");
        }
        if h != 0 {
            return format!("{sign}{h}h {m}m {s}s");
        }
        if m != 0 {
            return format!("{sign}{m}m {s}s");
        }
        return format!("{sign}{}s", g4(v));
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", g4(v))
}

/// Prometheus's `floatToTime`: seconds to a UTC time, millisecond precision.
fn float_to_time(v: f64) -> Result<jiff::ZonedDateTime, String> {
    let ns = v * 1e9;
    if ns > i64::MAX as f64 || ns < i64::MIN as f64 {
        return Err(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            crate::value::Value::Float(v).to_go_string()
        ));
    }
    let ms = (ns as i64) / 1_000_000;
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned_datetime(jiff::tz::TimeZone::UTC))
        .map_err(|e| e.to_string())
}

static REGEX_CACHE: OnceLock<Mutex<HashMap<String, Regex>>> = OnceLock::new();

/// Compiles a regular expression, caching it (templates use few distinct ones).
fn regex(pattern: &str) -> Result<Regex, String> {
    let cache = REGEX_CACHE.get_or_init(Default::default);
    if let Some(r) = cache.lock().ok().and_then(|c| c.get(pattern).cloned()) {
        return Ok(r);
    }
    let r = Regex::new(pattern).map_err(|e| format!("error parsing regexp: {e}"))?;
    if let Ok(mut c) = cache.lock() {
        if c.len() > 256 {
            c.clear();
        }
        c.insert(pattern.to_string(), r.clone());
    }
    Ok(r)
}

/// Title-cases words (a word starts after a character that is not
/// alphanumeric, `_` or `'`); with `lower_rest` the other letters are lowercased.
fn title(s: &str, lower_rest: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for c in s.chars() {
        if c.is_alphanumeric() || c == '_' || c == '\'' {
            if in_word {
                if lower_rest {
                    out.extend(c.to_lowercase());
                } else {
                    out.push(c);
                }
            } else {
                out.extend(c.to_uppercase());
            }
            in_word = true;
        } else {
            out.push(c);
            in_word = false;
        }
    }
    out
}

/// Go's `net.SplitHostPort`.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let port = rest[end + 1..].strip_prefix(':')?;
        if port.contains(':') {
            return None;
        }
        return Some((&rest[..end], port));
    }
    let i = s.rfind(':')?;
    let host = &s[..i];
    if host.contains(':') || host.contains('[') || host.contains(']') {
        return None;
    }
    Some((host, &s[i + 1..]))
}

fn sample_labels(s: &Value) -> Option<&BTreeMap<String, Value>> {
    match s {
        Value::Map(m) => match m.get("Labels") {
            Some(Value::Map(l)) => Some(l),
            _ => None,
        },
        _ => None,
    }
}

fn sample_label(s: &Value, name: &str) -> String {
    sample_labels(s)
        .and_then(|l| l.get(name))
        .map(Value::to_go_string)
        .unwrap_or_default()
}

fn time_arg(v: &Value) -> Result<jiff::ZonedDateTime, String> {
    match v {
        Value::Time(t) => Ok(t.clone()),
        Value::String(s) => s
            .parse::<jiff::Timestamp>()
            .map(|t| t.to_zoned_datetime(jiff::tz::TimeZone::UTC))
            .map_err(|_| format!("wrong type for value; expected time.Time; got string {s:?}")),
        v => Err(format!(
            "wrong type for value; expected time.Time; got {}",
            v.type_name()
        )),
    }
}

fn common(m: &mut FuncMap) {
    m.insert("toUpper", |a| {
        arity("toUpper", a, 1)?;
        Ok(str_arg(a, 0)?.to_uppercase().into())
    });
    m.insert("toLower", |a| {
        arity("toLower", a, 1)?;
        Ok(str_arg(a, 0)?.to_lowercase().into())
    });
    m.insert("match", |a| {
        arity("match", a, 2)?;
        Ok(Value::Bool(regex(str_arg(a, 0)?)?.is_match(str_arg(a, 1)?)))
    });
    m.insert("reReplaceAll", |a| {
        arity("reReplaceAll", a, 3)?;
        let re = regex(str_arg(a, 0)?)?;
        Ok(re
            .replace_all(str_arg(a, 2)?, str_arg(a, 1)?)
            .into_owned()
            .into())
    });
    m.insert("safeHtml", |a| {
        arity("safeHtml", a, 1)?;
        Ok(str_arg(a, 0)?.into())
    });
    m.insert("humanizeDuration", |a| {
        arity("humanizeDuration", a, 1)?;
        Ok(humanize_duration(to_float(&a[0])?).into())
    });
}

/// Prometheus's template functions (alerting rules and consoles).
/// `query` is a placeholder that fails: the rules engine registers the real one
/// (a closure running PromQL at the evaluation time) in the [`crate::Env`].
/// `external_url` feeds `externalURL` and `pathPrefix`.
pub fn prometheus(external_url: &str) -> FuncMap {
    let mut m = FuncMap::new();
    common(&mut m);
    m.insert("query", |_| {
        Err("query is not available in this context".into())
    });
    m.insert("first", |a| {
        arity("first", a, 1)?;
        match &a[0] {
            Value::List(l) => l
                .first()
                .cloned()
                .ok_or_else(|| "first() called on vector with no elements".into()),
            v => Err(format!(
                "wrong type for value; expected queryResult; got {}",
                v.type_name()
            )),
        }
    });
    m.insert("label", |a| {
        arity("label", a, 2)?;
        Ok(sample_label(&a[1], str_arg(a, 0)?).into())
    });
    m.insert("value", |a| {
        arity("value", a, 1)?;
        Ok(match &a[0] {
            Value::Map(s) => s.get("Value").cloned().unwrap_or(Value::Float(0.0)),
            _ => Value::Float(0.0),
        })
    });
    m.insert("strvalue", |a| {
        arity("strvalue", a, 1)?;
        Ok(sample_label(&a[0], "__value__").into())
    });
    m.insert("sortByLabel", |a| {
        arity("sortByLabel", a, 2)?;
        let name = str_arg(a, 0)?;
        let Value::List(l) = &a[1] else {
            return Err(format!(
                "wrong type for value; expected queryResult; got {}",
                a[1].type_name()
            ));
        };
        let mut v: Vec<Value> = l.as_ref().clone();
        v.sort_by_cached_key(|s| sample_label(s, name));
        Ok(v.into())
    });
    m.insert("humanize", |a| {
        arity("humanize", a, 1)?;
        Ok(humanize(to_float(&a[0])?).into())
    });
    m.insert("humanize1024", |a| {
        arity("humanize1024", a, 1)?;
        Ok(humanize1024(to_float(&a[0])?).into())
    });
    m.insert("humanizePercentage", |a| {
        arity("humanizePercentage", a, 1)?;
        Ok(format!("{}%", g4(to_float(&a[0])? * 100.0)).into())
    });
    m.insert("humanizeTimestamp", |a| {
        arity("humanizeTimestamp", a, 1)?;
        if let Value::Time(t) = &a[0] {
            return Ok(Value::Time(t.clone()).to_go_string().into());
        }
        let v = to_float(&a[0])?;
        if !v.is_finite() {
            return Ok(g4(v).into());
        }
        Ok(Value::Time(float_to_time(v)?).to_go_string().into())
    });
    m.insert("toTime", |a| {
        arity("toTime", a, 1)?;
        float_to_time(to_float(&a[0])?).map(Value::Time)
    });
    m.insert("toDuration", |a| {
        arity("toDuration", a, 1)?;
        let v = to_float(&a[0])?;
        Ok(Value::Duration((v * 1e9) as i64))
    });
    m.insert("parseDuration", |a| {
        arity("parseDuration", a, 1)?;
        let d = day2_model::parse_duration(str_arg(a, 0)?).map_err(|e| e.to_string())?;
        Ok(Value::Float(d.as_secs_f64()))
    });
    m.insert("title", |a| {
        arity("title", a, 1)?;
        Ok(title(str_arg(a, 0)?, false).into())
    });
    m.insert("stripPort", |a| {
        arity("stripPort", a, 1)?;
        let s = str_arg(a, 0)?;
        Ok(split_host_port(s).map_or(s, |(h, _)| h).into())
    });
    m.insert("stripDomain", |a| {
        arity("stripDomain", a, 1)?;
        let s = str_arg(a, 0)?;
        let (host, port) = split_host_port(s).unwrap_or((s, ""));
        if host.parse::<std::net::IpAddr>().is_ok() {
            return Ok(s.into());
        }
        let short = host.split('.').next().unwrap_or(host);
        Ok(if port.is_empty() {
            short.to_string()
        } else if short.contains(':') {
            format!("[{short}]:{port}")
        } else {
            format!("{short}:{port}")
        }
        .into())
    });
    m.insert("graphLink", |a| {
        arity("graphLink", a, 1)?;
        Ok(format!("/graph?g0.expr={}&g0.tab=0", query_escape(str_arg(a, 0)?)).into())
    });
    m.insert("tableLink", |a| {
        arity("tableLink", a, 1)?;
        Ok(format!("/graph?g0.expr={}&g0.tab=1", query_escape(str_arg(a, 0)?)).into())
    });
    m.insert("args", |a| {
        Ok(Value::map(
            a.iter()
                .enumerate()
                .map(|(i, v)| (format!("arg{i}"), v.clone())),
        ))
    });
    let url = external_url.to_string();
    let path = external_url
        .split_once("://")
        .map_or(external_url, |(_, rest)| {
            rest.find('/').map_or("", |i| &rest[i..])
        })
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .to_string();
    m.insert("externalURL", move |a| {
        arity("externalURL", a, 0)?;
        Ok(url.clone().into())
    });
    m.insert("pathPrefix", move |a| {
        arity("pathPrefix", a, 0)?;
        Ok(path.clone().into())
    });
    m
}

/// Alertmanager's notification template functions.
pub fn alertmanager() -> FuncMap {
    let mut m = FuncMap::new();
    common(&mut m);
    m.insert("title", |a| {
        arity("title", a, 1)?;
        Ok(title(str_arg(a, 0)?, true).into())
    });
    m.insert("trimSpace", |a| {
        arity("trimSpace", a, 1)?;
        Ok(str_arg(a, 0)?.trim().into())
    });
    m.insert("join", |a| {
        arity("join", a, 2)?;
        let sep = str_arg(a, 0)?;
        match &a[1] {
            Value::List(l) => Ok(l
                .iter()
                .map(Value::to_go_string)
                .collect::<Vec<_>>()
                .join(sep)
                .into()),
            v => Err(format!(
                "wrong type for value; expected []string; got {}",
                v.type_name()
            )),
        }
    });
    m.insert("safeUrl", |a| {
        arity("safeUrl", a, 1)?;
        Ok(str_arg(a, 0)?.into())
    });
    m.insert("urlUnescape", |a| {
        arity("urlUnescape", a, 1)?;
        query_unescape(str_arg(a, 0)?).map(Value::from)
    });
    m.insert("stringSlice", |a| {
        for i in 0..a.len() {
            str_arg(a, i)?;
        }
        Ok(Value::list(a.iter().cloned()))
    });
    m.insert("date", |a| {
        arity("date", a, 2)?;
        Ok(format_layout(&time_arg(&a[1])?, str_arg(a, 0)?).into())
    });
    m.insert("tz", |a| {
        arity("tz", a, 2)?;
        let name = str_arg(a, 0)?;
        let t = time_arg(&a[1])?;
        let zone = match name {
            "" | "UTC" => jiff::tz::TimeZone::UTC,
            "Local" => jiff::tz::TimeZone::system(),
            n => jiff::tz::TimeZone::get(n).map_err(|_| format!("unknown time zone {n}"))?,
        };
        Ok(Value::Time(t.with_time_zone(zone)))
    });
    m.insert("toJson", |a| {
        arity("toJson", a, 1)?;
        to_json(&a[0]).map(Value::String)
    });
    m.insert("since", |a| {
        arity("since", a, 1)?;
        let t = time_arg(&a[0])?;
        let d = jiff::Timestamp::now().as_nanosecond() - t.timestamp().as_nanosecond();
        Ok(Value::Duration(i64::try_from(d).unwrap_or(if d < 0 {
            i64::MIN
        } else {
            i64::MAX
        })))
    });
    m
}

/// Go's `json.Marshal` of a value: compact, with `<`, `>`, `&` escaped;
/// times as RFC 3339 strings, durations as nanoseconds.
pub fn to_json(v: &Value) -> Result<String, String> {
    fn conv(v: &Value) -> Result<serde_json::Value, String> {
        use serde_json::Value as J;
        Ok(match v {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => {
                serde_json::Number::from_f64(*f)
                    .map(J::Number)
                    .ok_or_else(|| {
                        format!(
                            "json: unsupported value: {}",
                            Value::Float(*f).to_go_string()
                        )
                    })?
            }
            Value::String(s) => J::String(s.clone()),
            Value::List(l) => J::Array(l.iter().map(conv).collect::<Result<_, _>>()?),
            Value::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| Ok((k.clone(), conv(v)?)))
                    .collect::<Result<_, String>>()?,
            ),
            Value::Time(t) => J::String(format_layout(t, "2006-01-02T15:04:05.999999999Z07:00")),
            Value::Duration(d) => J::from(*d),
        })
    }
    let s = serde_json::to_string(&conv(v)?).map_err(|e| e.to_string())?;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Go's `url.QueryUnescape`.
fn query_unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                    .ok_or_else(|| {
                        let bad: String = s[i..].chars().take(3).collect();
                        format!("invalid URL escape {bad:?}")
                    })?;
                out.push(u8::from_str_radix(hex, 16).map_err(|e| e.to_string())?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "unescaped URL is not valid UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(m: &FuncMap, name: &str, args: &[Value]) -> Result<Value, String> {
        (m.get(name).expect(name))(args)
    }

    #[test]
    fn humanize_as_prometheus() {
        for (v, want) in [
            (1234567.0, "1.235M"),
            (0.0001234, "123.4u"),
            (0.0, "0"),
            (1.0, "1"),
            (999.0, "999"),
            (1000.0, "1k"),
            (1e27, "1000Y"),
            (-1234.0, "-1.234k"),
            (0.001, "1m"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(humanize(v), want, "{v}");
        }
        assert_eq!(humanize1024(1048576.0), "1Mi");
        assert_eq!(humanize1024(1.0), "1");
        assert_eq!(humanize1024(2048.0), "2ki");
    }

    #[test]
    fn humanize_duration_as_prometheus() {
        for (v, want) in [
            (90061.0, "1d 1h 1m 1s"),
            (899.99, "14m 59s"),
            (0.0, "0s"),
            (1.5, "1.5s"),
            (0.1, "100ms"),
            (0.000001, "1us"),
            (3600.0, "1h 0m 0s"),
            (-90.0, "-1m 30s"),
            (60.0, "1m 0s"),
        ] {
            assert_eq!(humanize_duration(v), want, "{v}");
        }
    }

    #[test]
    fn prometheus_funcs() {
        let m = prometheus("https://prom.example.com/sub/path");
        let s = Value::from;
        assert_eq!(
            call(&m, "humanizePercentage", &[Value::Float(0.1234)]),
            Ok(s("12.34%"))
        );
        assert_eq!(
            call(&m, "humanizePercentage", &[Value::Float(0.1234567)]),
            Ok(s("12.35%"))
        );
        assert_eq!(
            call(&m, "humanizeTimestamp", &[Value::Float(1435065584.128)]),
            Ok(s("2015-06-23 13:19:44.128 +0000 UTC"))
        );
        assert_eq!(call(&m, "humanize", &[s("1234567")]), Ok(s("1.235M")));
        assert!(call(&m, "humanize", &[s("abc")]).is_err());
        assert_eq!(call(&m, "title", &[s("aa bb-cc")]), Ok(s("Aa Bb-Cc")));
        assert_eq!(call(&m, "toUpper", &[s("aa bb CC")]), Ok(s("AA BB CC")));
        assert_eq!(
            call(&m, "match", &[s("a+"), s("xaay")]),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            call(
                &m,
                "reReplaceAll",
                &[s("localhost:(.*)"), s("my.domain:$1"), s("localhost:3000")]
            ),
            Ok(s("my.domain:3000"))
        );
        assert_eq!(
            call(&m, "stripPort", &[s("example.com:8080")]),
            Ok(s("example.com"))
        );
        assert_eq!(call(&m, "stripPort", &[s("[::1]:80")]), Ok(s("::1")));
        assert_eq!(
            call(&m, "stripPort", &[s("example.com")]),
            Ok(s("example.com"))
        );
        assert_eq!(
            call(&m, "stripDomain", &[s("foo.example.com:9100")]),
            Ok(s("foo:9100"))
        );
        assert_eq!(
            call(&m, "stripDomain", &[s("foo.example.com")]),
            Ok(s("foo"))
        );
        assert_eq!(
            call(&m, "stripDomain", &[s("192.168.0.1:80")]),
            Ok(s("192.168.0.1:80"))
        );
        assert_eq!(
            call(&m, "parseDuration", &[s("1h30m")]),
            Ok(Value::Float(5400.0))
        );
        assert_eq!(
            call(&m, "graphLink", &[s("up == 0")]),
            Ok(s("/graph?g0.expr=up+%3D%3D+0&g0.tab=0"))
        );
        assert_eq!(
            call(&m, "tableLink", &[s("up")]),
            Ok(s("/graph?g0.expr=up&g0.tab=1"))
        );
        assert_eq!(
            call(&m, "externalURL", &[]),
            Ok(s("https://prom.example.com/sub/path"))
        );
        assert_eq!(call(&m, "pathPrefix", &[]), Ok(s("/sub/path")));
        assert_eq!(
            call(&m, "toDuration", &[Value::Float(90.5)]).map(|v| v.to_go_string()),
            Ok("1m30.5s".into())
        );
        assert_eq!(
            call(&m, "toTime", &[Value::Int(0)]).map(|v| v.to_go_string()),
            Ok("1970-01-01 00:00:00 +0000 UTC".into())
        );
        assert_eq!(
            call(&m, "args", &[Value::Int(1), s("x")]).map(|v| v.to_go_string()),
            Ok("map[arg0:1 arg1:x]".into())
        );
        assert!(
            call(&m, "humanize", &[])
                .unwrap_err()
                .contains("want 1 got 0")
        );
    }

    #[test]
    fn alertmanager_funcs() {
        let m = alertmanager();
        let s = Value::from;
        assert_eq!(call(&m, "title", &[s("hELLO wORLD")]), Ok(s("Hello World")));
        assert_eq!(call(&m, "trimSpace", &[s("  x \n")]), Ok(s("x")));
        assert_eq!(
            call(&m, "join", &[s(", "), Value::list([s("a"), s("b")])]),
            Ok(s("a, b"))
        );
        assert_eq!(call(&m, "urlUnescape", &[s("a%20b+c")]), Ok(s("a b c")));
        assert!(call(&m, "urlUnescape", &[s("%zz")]).is_err());
        assert!(call(&m, "urlUnescape", &[s("%aé")]).is_err());
        let t: jiff::ZonedDateTime = "2024-03-05T14:07:09+00:00[UTC]".parse().unwrap();
        assert_eq!(
            call(&m, "date", &[s("2006-01-02 15:04"), Value::Time(t.clone())]),
            Ok(s("2024-03-05 14:07"))
        );
        let berlin = call(&m, "tz", &[s("Europe/Berlin"), Value::Time(t.clone())]).unwrap();
        assert_eq!(berlin.to_go_string(), "2024-03-05 15:07:09 +0100 CET");
        let since = call(&m, "since", &[Value::Time(t)]).unwrap();
        assert!(matches!(since, Value::Duration(d) if d > 0));
        assert_eq!(
            call(
                &m,
                "toJson",
                &[Value::from(
                    serde_json::json!({"b": [1, 2.5, null], "a": "<x&y>"})
                )]
            ),
            Ok(s(r#"{"a":"\u003cx\u0026y\u003e","b":[1,2.5,null]}"#))
        );
        assert!(call(&m, "toJson", &[Value::Float(f64::NAN)]).is_err());
        assert_eq!(
            call(&m, "humanizeDuration", &[Value::Duration(90_000_000_000)]),
            Ok(s("1m 30s"))
        );
    }
}
