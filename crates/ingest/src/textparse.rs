//! Parser of the Prometheus text exposition format (0.0.4) and OpenMetrics 1.0.
//!
//! A hand-written single pass over bytes (no regex, no per-line allocation
//! beyond the labels it returns). Any malformed line fails the whole body, so
//! a scrape is either ingested completely or not at all. Histogram `le` and
//! summary `quantile` values are kept as exposed in the text format (as
//! Prometheus 2.x stores them) and normalised to Go's float spelling for
//! OpenMetrics (`1` -> `1.0`), as Prometheus does for that format.

use day2_model::gofloat::format_g;
use day2_model::labels::is_valid_label_name;
use day2_model::{Label, Labels, METRIC_NAME};

/// Which exposition format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Prometheus,
    OpenMetrics,
}

impl Format {
    /// Chooses the parser from a `Content-Type` header (OpenMetrics when it says so).
    pub fn from_content_type(ct: Option<&str>) -> Format {
        match ct {
            Some(ct)
                if ct
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/openmetrics-text") =>
            {
                Format::OpenMetrics
            }
            _ => Format::Prometheus,
        }
    }
}

/// Metric type from `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    Unknown,
}

impl MetricType {
    fn parse(s: &str) -> Option<MetricType> {
        Some(match s {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "gaugehistogram" => MetricType::GaugeHistogram,
            "summary" => MetricType::Summary,
            "info" => MetricType::Info,
            "stateset" => MetricType::StateSet,
            "unknown" | "untyped" => MetricType::Unknown,
            _ => return None,
        })
    }

    /// The name Prometheus's metadata API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }
}

/// `# TYPE` / `# HELP` / `# UNIT` of one metric family.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricMetadata {
    pub family: String,
    pub kind: MetricType,
    pub help: String,
    pub unit: String,
}

/// One sample line: full label set (with `__name__`), optional timestamp in ms, value.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    pub labels: Labels,
    pub timestamp_ms: Option<i64>,
    pub value: f64,
}

/// A parsed body.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Parsed {
    pub samples: Vec<ParsedSample>,
    pub metadata: Vec<MetricMetadata>,
}

/// A parse failure with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

struct Line<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
}

impl<'a> Line<'a> {
    fn new(s: &'a str) -> Self {
        Line {
            s,
            b: s.as_bytes(),
            pos: 0,
        }
    }
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn ident(&mut self, metric: bool) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphabetic()
                || c == b'_'
                || (metric && c == b':')
                || (self.pos > start && c.is_ascii_digit());
            if !ok {
                break;
            }
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }
    /// A double-quoted string with `\\`, `\"` and `\n` escapes.
    fn quoted(&mut self) -> Result<String, String> {
        if !self.eat(b'"') {
            return Err("expected '\"'".into());
        }
        let mut out = String::new();
        let start = self.pos;
        let mut plain_from = start;
        loop {
            match self.peek() {
                None => return Err("unterminated quoted string".into()),
                Some(b'"') => {
                    out.push_str(&self.s[plain_from..self.pos]);
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    out.push_str(&self.s[plain_from..self.pos]);
                    self.pos += 1;
                    match self.peek() {
                        Some(b'\\') => out.push('\\'),
                        Some(b'"') => out.push('"'),
                        Some(b'n') => out.push('\n'),
                        Some(c) => {
                            return Err(format!("invalid escape sequence '\\{}'", c as char));
                        }
                        None => return Err("unterminated escape".into()),
                    }
                    self.pos += 1;
                    plain_from = self.pos;
                }
                Some(_) => self.pos += 1,
            }
        }
    }
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == b' ' || c == b'\t' {
                break;
            }
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
}

/// Go's `strconv.ParseFloat` spellings that Prometheus accepts.
fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" => return Some(f64::NAN),
        "+Inf" | "Inf" | "+inf" | "inf" => return Some(f64::INFINITY),
        "-Inf" | "-inf" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    if s.is_empty()
        || s.bytes()
            .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, b'.' | b'+' | b'-' | b'_')))
    {
        return None;
    }
    s.parse::<f64>().ok().or_else(|| {
        // hex floats and underscores, as Go allows
        let t = s.replace('_', "");
        t.parse::<f64>().ok()
    })
}

fn unescape_help(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses labels after an opening `{` up to and including `}`; an OpenMetrics
/// quoted metric name (`{"my.metric", a="b"}`) is returned separately.
fn parse_labels(l: &mut Line, labels: &mut Vec<Label>) -> Result<Option<String>, String> {
    let mut quoted_name = None;
    let mut first = true;
    loop {
        l.skip_ws();
        if l.eat(b'}') {
            return Ok(quoted_name);
        }
        let name = if l.peek() == Some(b'"') {
            let n = l.quoted()?;
            l.skip_ws();
            if first && l.peek() != Some(b'=') {
                // a bare quoted string first is the metric name
                quoted_name = Some(n);
                first = false;
                l.skip_ws();
                if !l.eat(b',') && l.peek() != Some(b'}') {
                    return Err("expected ',' or '}' after the metric name".into());
                }
                continue;
            }
            n
        } else {
            let n = l.ident(false);
            if n.is_empty() {
                return Err(format!("invalid label name at {:?}", truncate(l.rest())));
            }
            n.to_string()
        };
        first = false;
        l.skip_ws();
        if !l.eat(b'=') {
            return Err(format!("expected '=' after label name {name:?}"));
        }
        l.skip_ws();
        let value = l.quoted().map_err(|e| format!("label {name:?}: {e}"))?;
        labels.push(Label { name, value });
        l.skip_ws();
        if !l.eat(b',') {
            l.skip_ws();
            if !l.eat(b'}') {
                return Err(format!(
                    "expected ',' or '}}' after label value, found {:?}",
                    truncate(l.rest())
                ));
            }
            return Ok(quoted_name);
        }
    }
}

fn truncate(s: &str) -> &str {
    let end = s.char_indices().nth(20).map(|(i, _)| i).unwrap_or(s.len());
    &s[..end]
}

fn canonical_float_label(v: &str) -> String {
    match parse_value(v) {
        Some(f) => {
            let s = format_g(f);
            if s.contains(['.', 'e', 'I', 'N']) {
                s
            } else {
                format!("{s}.0")
            }
        }
        None => v.to_string(),
    }
}

/// Parses a whole body; any malformed line fails the whole body (nothing partly ingested).
pub fn parse(input: &[u8], format: Format) -> Result<Parsed, ParseError> {
    let text = std::str::from_utf8(input).map_err(|e| {
        let line = input[..e.valid_up_to()]
            .iter()
            .filter(|&&c| c == b'\n')
            .count()
            + 1;
        ParseError {
            line,
            message: "invalid UTF-8".into(),
        }
    })?;
    let om = format == Format::OpenMetrics;
    let mut out = Parsed::default();
    let mut types: std::collections::HashMap<String, MetricType> = std::collections::HashMap::new();
    let mut meta_index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut seen_eof = false;
    for (i, raw) in text.split('\n').enumerate() {
        let lineno = i + 1;
        let err = |message: String| ParseError {
            line: lineno,
            message,
        };
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if seen_eof {
            if line.is_empty() && i + 1 == text.split('\n').count() {
                continue;
            }
            return Err(err("data after # EOF".into()));
        }
        if line.trim().is_empty() {
            continue;
        }
        let mut l = Line::new(line);
        l.skip_ws();
        if l.peek() == Some(b'#') {
            l.pos += 1;
            l.skip_ws();
            let kw = l.token();
            match kw {
                "EOF" if om => {
                    seen_eof = true;
                    continue;
                }
                "HELP" | "TYPE" | "UNIT" => {
                    l.skip_ws();
                    let family = if l.peek() == Some(b'"') {
                        l.quoted().map_err(&err)?
                    } else {
                        l.ident(true).to_string()
                    };
                    if family.is_empty() {
                        return Err(err(format!("# {kw} needs a metric name")));
                    }
                    let rest = l.rest();
                    let rest = rest
                        .strip_prefix(' ')
                        .or_else(|| rest.strip_prefix('\t'))
                        .unwrap_or(rest);
                    let idx = *meta_index.entry(family.clone()).or_insert_with(|| {
                        out.metadata.push(MetricMetadata {
                            family: family.clone(),
                            kind: MetricType::Unknown,
                            help: String::new(),
                            unit: String::new(),
                        });
                        out.metadata.len() - 1
                    });
                    let m = &mut out.metadata[idx];
                    match kw {
                        "HELP" => m.help = unescape_help(rest),
                        "UNIT" => m.unit = rest.trim().to_string(),
                        _ => {
                            let t = rest.trim();
                            let kind = MetricType::parse(t)
                                .ok_or_else(|| err(format!("invalid metric type {t:?}")))?;
                            if om && t == "untyped" {
                                return Err(err(
                                    "invalid metric type \"untyped\" in OpenMetrics".into()
                                ));
                            }
                            m.kind = kind;
                            types.insert(family.clone(), kind);
                        }
                    }
                }
                _ => {} // a plain comment
            }
            continue;
        }
        // sample line
        let mut labels: Vec<Label> = Vec::with_capacity(8);
        let name = if l.peek() == Some(b'{') {
            String::new()
        } else {
            let n = l.ident(true);
            if n.is_empty() {
                return Err(err(format!("invalid metric name at {:?}", truncate(line))));
            }
            n.to_string()
        };
        let before_ws = l.pos;
        l.skip_ws();
        let mut metric = name;
        let mut spaced = l.pos > before_ws;
        if l.eat(b'{') {
            if let Some(q) = parse_labels(&mut l, &mut labels).map_err(&err)? {
                if !metric.is_empty() {
                    return Err(err("metric name given twice".into()));
                }
                metric = q;
            }
            let before = l.pos;
            l.skip_ws();
            spaced = l.pos > before;
        }
        if metric.is_empty() {
            return Err(err("missing metric name".into()));
        }
        if !spaced {
            return Err(err(format!(
                "expected a space before the value of {metric:?}"
            )));
        }
        let vtok = l.token();
        let value = parse_value(vtok)
            .ok_or_else(|| err(format!("invalid value {vtok:?} for {metric:?}")))?;
        l.skip_ws();
        let mut timestamp_ms = None;
        if l.peek().is_some() && l.peek() != Some(b'#') {
            let ttok = l.token();
            timestamp_ms = Some(if om {
                let secs = parse_value(ttok)
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| err(format!("invalid timestamp {ttok:?}")))?;
                (secs * 1000.0).round() as i64
            } else {
                ttok.parse::<i64>()
                    .map_err(|_| err(format!("invalid timestamp {ttok:?}")))?
            });
            l.skip_ws();
        }
        if l.peek() == Some(b'#') {
            if !om {
                return Err(err(
                    "unexpected '#' after the value (exemplars are OpenMetrics only)".into(),
                ));
            }
            // exemplar: validate its shape, then discard it
            l.pos += 1;
            l.skip_ws();
            if !l.eat(b'{') {
                return Err(err("exemplar must start with '{'".into()));
            }
            let mut ex = Vec::new();
            parse_labels(&mut l, &mut ex).map_err(|e| err(format!("exemplar: {e}")))?;
            l.skip_ws();
            let ev = l.token();
            parse_value(ev).ok_or_else(|| err(format!("invalid exemplar value {ev:?}")))?;
            l.skip_ws();
            if l.peek().is_some() {
                let et = l.token();
                parse_value(et).ok_or_else(|| err(format!("invalid exemplar timestamp {et:?}")))?;
                l.skip_ws();
            }
        }
        if l.peek().is_some() {
            return Err(err(format!(
                "unexpected text after the sample: {:?}",
                truncate(l.rest())
            )));
        }
        // label checks and normalisation
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = labels.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(err(format!(
                "duplicate label name {:?} in {metric:?}",
                w[0].name
            )));
        }
        if let Some(bad) = labels.iter().find(|l| !is_valid_label_name(&l.name) && !om) {
            return Err(err(format!("invalid label name {:?}", bad.name)));
        }
        if om {
            let family = family_of(&metric, &types);
            match types.get(family) {
                Some(MetricType::Histogram | MetricType::GaugeHistogram) => {
                    normalise(&mut labels, "le")
                }
                Some(MetricType::Summary) => normalise(&mut labels, "quantile"),
                _ => {}
            }
        }
        labels.retain(|l| !l.value.is_empty());
        let pos = labels.partition_point(|l| l.name.as_str() < METRIC_NAME);
        labels.insert(
            pos,
            Label {
                name: METRIC_NAME.to_string(),
                value: metric,
            },
        );
        out.samples.push(ParsedSample {
            labels: Labels::from_sorted_unchecked(labels),
            timestamp_ms,
            value,
        });
    }
    if om && !seen_eof {
        return Err(ParseError {
            line: text.split('\n').count(),
            message: "OpenMetrics body does not end with # EOF".into(),
        });
    }
    Ok(out)
}

fn normalise(labels: &mut [Label], name: &str) {
    if let Some(l) = labels.iter_mut().find(|l| l.name == name) {
        l.value = canonical_float_label(&l.value);
    }
}

/// The family a sample belongs to: its name minus a histogram/summary/counter suffix
/// when that family was declared.
fn family_of<'a>(
    metric: &'a str,
    types: &std::collections::HashMap<String, MetricType>,
) -> &'a str {
    if types.contains_key(metric) {
        return metric;
    }
    for suffix in [
        "_bucket", "_count", "_sum", "_total", "_created", "_gcount", "_gsum", "_info",
    ] {
        if let Some(base) = metric.strip_suffix(suffix)
            && types.contains_key(base)
        {
            return base;
        }
    }
    metric
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str, f: Format) -> ParsedSample {
        let p = parse(text.as_bytes(), f).unwrap();
        assert_eq!(p.samples.len(), 1, "{p:?}");
        p.samples.into_iter().next().unwrap()
    }

    #[test]
    fn text_format_samples() {
        let s = one(
            "# HELP x Some help\\n more\n# TYPE x counter\nx{a=\"1\",b=\"q\\\"uote\\\\\\n\"} 12.5 1700000000000\n",
            Format::Prometheus,
        );
        assert_eq!(s.labels.get("__name__"), Some("x"));
        assert_eq!(s.labels.get("b"), Some("q\"uote\\\n"));
        assert_eq!(s.value, 12.5);
        assert_eq!(s.timestamp_ms, Some(1_700_000_000_000));
        let p = parse(
            b"# HELP x Some help\\n more\n# TYPE x counter\nx 1\n",
            Format::Prometheus,
        )
        .unwrap();
        assert_eq!(p.metadata[0].help, "Some help\n more");
        assert_eq!(p.metadata[0].kind, MetricType::Counter);
        assert!(one("x NaN", Format::Prometheus).value.is_nan());
        assert_eq!(one("x +Inf", Format::Prometheus).value, f64::INFINITY);
        assert_eq!(one("x{} -Inf", Format::Prometheus).value, f64::NEG_INFINITY);
        assert_eq!(one("x{a=\"1\",} 1e3", Format::Prometheus).value, 1000.0);
        assert_eq!(one("  x   3  ", Format::Prometheus).value, 3.0);
    }

    #[test]
    fn openmetrics_timestamps_exemplars_and_eof() {
        let body = "# TYPE h histogram\nh_bucket{le=\"1\"} 3 # {trace_id=\"a\"} 0.5 1.5\nh_bucket{le=\"+Inf\"} 4 1.5\n# EOF\n";
        let p = parse(body.as_bytes(), Format::OpenMetrics).unwrap();
        assert_eq!(p.samples.len(), 2);
        assert_eq!(p.samples[0].labels.get("le"), Some("1.0"));
        assert_eq!(p.samples[1].timestamp_ms, Some(1500));
        let e = parse(b"a 1\n", Format::OpenMetrics).unwrap_err();
        assert!(e.message.contains("EOF"), "{e}");
        let e = parse(b"a 1\n# EOF\nb 2\n", Format::OpenMetrics).unwrap_err();
        assert_eq!(e.line, 3);
        let q = one("{\"my.metric\", a=\"b\"} 1\n# EOF\n", Format::OpenMetrics);
        assert_eq!(q.labels.get("__name__"), Some("my.metric"));
    }

    #[test]
    fn errors_name_line_and_problem() {
        let cases: [(&str, usize, &str); 8] = [
            ("ok 1\nx{a=\"1\" 2\n", 2, "expected ','"),
            ("x{1a=\"1\"} 2\n", 1, "invalid label name"),
            ("x 1\n\nx{a=\"1\",a=\"2\"} 2\n", 3, "duplicate label name"),
            ("x abc\n", 1, "invalid value"),
            ("x 1 12.5\n", 1, "invalid timestamp"),
            ("x{a=\"unterminated} 1\n", 1, "unterminated"),
            ("# TYPE x bogus\n", 1, "invalid metric type"),
            ("x 1 2 3\n", 1, "unexpected text"),
        ];
        for (body, line, msg) in cases {
            let e = parse(body.as_bytes(), Format::Prometheus).unwrap_err();
            assert_eq!(e.line, line, "{body:?}: {e}");
            assert!(e.message.contains(msg), "{body:?}: {e}");
        }
        assert!(parse(&[b'x', b' ', 0xff, b'\n'], Format::Prometheus).is_err());
    }

    #[test]
    fn content_type_selects_the_format() {
        assert_eq!(
            Format::from_content_type(Some("application/openmetrics-text; version=1.0.0")),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::from_content_type(Some("text/plain; version=0.0.4")),
            Format::Prometheus
        );
        assert_eq!(Format::from_content_type(None), Format::Prometheus);
    }
}
