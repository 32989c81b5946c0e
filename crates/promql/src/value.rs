//! Query values and their JSON shapes in Prometheus's HTTP API.

use std::sync::Arc;

use day2_model::gofloat::{format_e, format_f};
use day2_model::{FloatHistogram, Labels};

/// One element of an instant vector: a float, or a native histogram (`h`,
/// with `v` then meaningless).
#[derive(Debug, Clone, PartialEq)]
pub struct VecSample {
    pub labels: Labels,
    pub v: f64,
    pub h: Option<Arc<FloatHistogram>>,
}

/// One series of a range vector (matrix): float points and histogram points.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
    pub histograms: Vec<(i64, Arc<FloatHistogram>)>,
}

/// A query result value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(i64, f64),
    String(i64, String),
    Vector(i64, Vec<VecSample>),
    Matrix(Vec<RangeSeries>),
}

/// A result with the annotations Prometheus returns beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub value: Value,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

/// The reply of `/api/v1/query` and `/api/v1/query_range` rendered straight to
/// bytes, as Prometheus renders it: `{"status":"success","data":{"resultType":..,
/// "result":..}}` plus `warnings`/`infos` when there are any. Sample timestamps
/// are seconds with three decimals when not whole (`1.500`), scalar and string
/// timestamps plain numbers (`1.5`); values are quoted, in Go's `'f'` form, or
/// `'e'` below 1e-6 and from 1e21 on; label strings are escaped as Go's
/// `encoding/json` does (`<`, `>`, `&`, U+2028, U+2029 and control characters).
impl QueryResult {
    /// The whole reply body.
    pub fn to_reply(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size_hint() + 64);
        out.extend_from_slice(br#"{"status":"success","data":"#);
        self.write_data(&mut out);
        for (key, list) in [("warnings", &self.warnings), ("infos", &self.infos)] {
            if list.is_empty() {
                continue;
            }
            out.extend_from_slice(b",\"");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":[");
            for (i, m) in list.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(&mut out, m);
            }
            out.push(b']');
        }
        out.push(b'}');
        out
    }

    /// The `data` object: `{"resultType":..,"result":..}`.
    pub fn write_data(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#"{"resultType":""#);
        match &self.value {
            Value::Scalar(t, v) => {
                out.extend_from_slice(br#"scalar","result":["#);
                write_plain_time(out, *t);
                out.push(b',');
                write_value(out, *v);
                out.push(b']');
            }
            Value::String(t, s) => {
                out.extend_from_slice(br#"string","result":["#);
                write_plain_time(out, *t);
                out.push(b',');
                write_str(out, s);
                out.push(b']');
            }
            Value::Vector(t, samples) => {
                out.extend_from_slice(br#"vector","result":["#);
                for (i, s) in samples.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(br#"{"metric":"#);
                    write_labels(out, &s.labels);
                    match &s.h {
                        Some(h) => {
                            out.extend_from_slice(br#","histogram":["#);
                            write_sample_time(out, *t);
                            out.push(b',');
                            write_histogram(out, h);
                            out.push(b']');
                        }
                        None => {
                            out.extend_from_slice(br#","value":"#);
                            write_point(out, *t, s.v);
                        }
                    }
                    out.push(b'}');
                }
                out.push(b']');
            }
            Value::Matrix(series) => {
                out.extend_from_slice(br#"matrix","result":["#);
                write_matrix(out, series);
                out.push(b']');
            }
        }
        out.push(b'}');
    }

    /// A guess of the rendered size, to allocate once.
    fn size_hint(&self) -> usize {
        match &self.value {
            Value::Scalar(..) => 64,
            Value::String(_, s) => 64 + s.len(),
            Value::Vector(_, v) => v.iter().map(|s| 48 + labels_size(&s.labels)).sum(),
            Value::Matrix(m) => m.iter().map(row_size).sum(),
        }
    }
}

fn labels_size(l: &Labels) -> usize {
    l.iter()
        .map(|x| x.name.len() + x.value.len() + 6)
        .sum::<usize>()
        + 2
}

fn row_size(s: &RangeSeries) -> usize {
    // `[1700000000.123,"0.123456789"]` is about 32 bytes
    32 + labels_size(&s.labels) + s.points.len() * 32 + s.histograms.len() * 256
}

/// Matrix rows, comma-separated; large results are rendered on several threads
/// (each into its own buffer, appended in order).
fn write_matrix(out: &mut Vec<u8>, series: &[RangeSeries]) {
    let row = |out: &mut Vec<u8>, s: &RangeSeries| {
        out.extend_from_slice(br#"{"metric":"#);
        write_labels(out, &s.labels);
        // as Prometheus: no "values" without floats, "histograms" only with histograms
        if !s.points.is_empty() || s.histograms.is_empty() {
            out.extend_from_slice(br#","values":["#);
            for (i, (t, v)) in s.points.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_point(out, *t, *v);
            }
            out.push(b']');
        }
        if !s.histograms.is_empty() {
            out.extend_from_slice(br#","histograms":["#);
            for (i, (t, h)) in s.histograms.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'[');
                write_sample_time(out, *t);
                out.push(b',');
                write_histogram(out, h);
                out.push(b']');
            }
            out.push(b']');
        }
        out.push(b'}');
    };
    let rows = |out: &mut Vec<u8>, part: &[RangeSeries], first: bool| {
        for (i, s) in part.iter().enumerate() {
            if i > 0 || !first {
                out.push(b',');
            }
            row(out, s);
        }
    };
    let points: usize = series
        .iter()
        .map(|s| s.points.len() + s.histograms.len() * 8)
        .sum();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if threads < 2 || points < 50_000 {
        rows(out, series, true);
        return;
    }
    let per = series.len().div_ceil(threads);
    std::thread::scope(|sc| {
        let parts: Vec<_> = series
            .chunks(per)
            .skip(1)
            .map(|part| {
                sc.spawn(move || {
                    let mut buf = Vec::with_capacity(part.iter().map(row_size).sum());
                    rows(&mut buf, part, false);
                    buf
                })
            })
            .collect();
        rows(out, &series[..per.min(series.len())], true);
        for p in parts {
            out.extend_from_slice(&p.join().expect("JSON rendering thread panicked"));
        }
    });
}

/// `[<sample time>,"<value>"]`.
#[inline]
fn write_point(out: &mut Vec<u8>, t: i64, v: f64) {
    out.push(b'[');
    write_sample_time(out, t);
    out.push(b',');
    write_value(out, v);
    out.push(b']');
}

/// A histogram as Prometheus writes it: `{"count":"..","sum":"..","buckets":
/// [[boundaries,"lower","upper","count"],..]}`, empty buckets left out;
/// boundaries 0: upper bound inclusive, 1: lower inclusive, 2: neither, 3: both.
fn write_histogram(out: &mut Vec<u8>, h: &FloatHistogram) {
    out.extend_from_slice(br#"{"count":"#);
    write_value(out, h.count);
    out.extend_from_slice(br#","sum":"#);
    write_value(out, h.sum);
    let mut first = true;
    for b in h.all_buckets() {
        if b.count == 0.0 {
            continue;
        }
        out.extend_from_slice(if first { br#","buckets":["# } else { b"," });
        first = false;
        let boundaries = match (b.lower_inclusive, b.upper_inclusive) {
            (true, true) => b'3',
            (true, false) => b'1',
            (false, true) => b'0',
            (false, false) => b'2',
        };
        out.push(b'[');
        out.push(boundaries);
        out.push(b',');
        write_value(out, b.lower);
        out.push(b',');
        write_value(out, b.upper);
        out.push(b',');
        write_value(out, b.count);
        out.push(b']');
    }
    if !first {
        out.push(b']');
    }
    out.push(b'}');
}

/// Decimal digits of `n`.
#[inline]
fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Writes the sign and whole seconds of a millisecond time; returns the
/// millisecond digits after the point.
#[inline]
fn write_secs(out: &mut Vec<u8>, t: i64) -> [u8; 3] {
    if t < 0 {
        out.push(b'-');
    }
    let t = t.unsigned_abs();
    write_u64(out, t / 1000);
    let frac = t % 1000;
    [
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]
}

/// A sample's time in seconds as Prometheus writes it: `1435781451`,
/// `1435781451.500`, `-0.500` (three decimals when not whole).
#[inline]
fn write_sample_time(out: &mut Vec<u8>, t: i64) {
    let frac = write_secs(out, t);
    if frac != [b'0'; 3] {
        out.push(b'.');
        out.extend_from_slice(&frac);
    }
}

/// A scalar's or string's time: a plain JSON number (`1.5`, `2`).
fn write_plain_time(out: &mut Vec<u8>, t: i64) {
    let frac = write_secs(out, t);
    let keep = 3 - frac.iter().rev().take_while(|d| **d == b'0').count();
    if keep > 0 {
        out.push(b'.');
        out.extend_from_slice(&frac[..keep]);
    }
}

/// A sample value, quoted: Go's `strconv.FormatFloat` with `'f'`, or `'e'`
/// when the magnitude is below 1e-6 or at least 1e21 (Prometheus's rule);
/// `NaN`, `+Inf`, `-Inf`.
#[inline]
fn write_value(out: &mut Vec<u8>, v: f64) {
    out.push(b'"');
    let abs = v.abs();
    if v.is_finite() && (abs == 0.0 || (1e-6..1e21).contains(&abs)) {
        // Rust's shortest round-trip `Display` is Go's `'f'` with precision -1
        if v == v.trunc() && abs < 1e15 {
            if v.is_sign_negative() {
                out.push(b'-');
            }
            write_u64(out, abs as u64);
        } else {
            let _ = std::io::Write::write_fmt(out, format_args!("{v}"));
        }
    } else if v.is_finite() {
        out.extend_from_slice(format_e(v).as_bytes());
    } else {
        out.extend_from_slice(format_f(v).as_bytes());
    }
    out.push(b'"');
}

/// A label set as a JSON object (labels are sorted and unique).
fn write_labels(out: &mut Vec<u8>, l: &Labels) {
    out.push(b'{');
    for (i, x) in l.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, &x.name);
        out.push(b':');
        write_str(out, &x.value);
    }
    out.push(b'}');
}

/// A JSON string escaped as Go's `encoding/json` escapes it.
fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let b = s.as_bytes();
    let special = |c: u8| {
        c < 0x20 || c == b'"' || c == b'\\' || c == b'<' || c == b'>' || c == b'&' || c == 0xE2
    };
    if !b.iter().any(|&c| special(c)) {
        out.extend_from_slice(b);
        out.push(b'"');
        return;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut from = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let esc: Option<&[u8]> = match c {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            _ => None,
        };
        // U+2028 and U+2029 are E2 80 A8 / E2 80 A9
        let line_sep =
            c == 0xE2 && b.get(i + 1) == Some(&0x80) && matches!(b.get(i + 2), Some(0xA8 | 0xA9));
        if esc.is_none() && !line_sep && c >= 0x20 && c != b'<' && c != b'>' && c != b'&' {
            i += 1;
            continue;
        }
        out.extend_from_slice(&b[from..i]);
        if let Some(e) = esc {
            out.extend_from_slice(e);
            i += 1;
        } else if line_sep {
            out.extend_from_slice(if b[i + 2] == 0xA8 {
                b"\\u2028"
            } else {
                b"\\u2029"
            });
            i += 3;
        } else {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(c >> 4) as usize],
                HEX[(c & 15) as usize],
            ]);
            i += 1;
        }
        from = i;
    }
    out.extend_from_slice(&b[from..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value as Json, json};

    /// The rendering the server used before the byte writer: a `serde_json`
    /// tree, values in `'f'` form, times as JSON floats.
    fn serde_reply(r: &QueryResult) -> Vec<u8> {
        fn labels(l: &Labels) -> Json {
            let mut m = Map::new();
            for x in l {
                m.insert(x.name.clone(), Json::String(x.value.clone()));
            }
            Json::Object(m)
        }
        fn ts(t: i64) -> Json {
            serde_json::Number::from_f64(t as f64 / 1000.0).map_or(Json::Null, Json::Number)
        }
        fn point(t: i64, v: f64) -> Json {
            json!([ts(t), format_f(v)])
        }
        let (kind, result) = match &r.value {
            Value::Scalar(t, v) => ("scalar", point(*t, *v)),
            Value::String(t, s) => ("string", json!([ts(*t), s])),
            Value::Vector(t, v) => (
                "vector",
                v.iter()
                    .map(|s| json!({"metric": labels(&s.labels), "value": point(*t, s.v)}))
                    .collect(),
            ),
            Value::Matrix(m) => (
                "matrix",
                m.iter()
                    .map(|s| {
                        let pts: Vec<Json> = s.points.iter().map(|(t, v)| point(*t, *v)).collect();
                        json!({"metric": labels(&s.labels), "values": pts})
                    })
                    .collect(),
            ),
        };
        let mut body = json!({"status": "success", "data": {"resultType": kind, "result": result}});
        if !r.warnings.is_empty() {
            body["warnings"] = json!(r.warnings);
        }
        if !r.infos.is_empty() {
            body["infos"] = json!(r.infos);
        }
        serde_json::to_vec(&body).unwrap()
    }

    /// Numbers as f64 and sample-value strings as the f64 they spell, so two
    /// renderings compare by meaning rather than by spelling.
    fn normalise(v: Json, in_point: bool) -> Json {
        match v {
            Json::Number(n) => json!(n.as_f64().unwrap()),
            Json::String(s) if in_point => {
                let x: Option<f64> = match s.as_str() {
                    "+Inf" => Some(f64::INFINITY),
                    "-Inf" => Some(f64::NEG_INFINITY),
                    _ => s.parse().ok(),
                };
                // NaN and -0 survive as their bit patterns; a string result stays
                x.map_or(Json::String(s), |x| json!(format!("{:x}", x.to_bits())))
            }
            Json::Array(a) => {
                let point = a.len() == 2 && a[0].is_number();
                Json::Array(a.into_iter().map(|x| normalise(x, point)).collect())
            }
            Json::Object(m) => Json::Object(
                m.into_iter()
                    .map(|(k, x)| (k, normalise(x, false)))
                    .collect(),
            ),
            other => other,
        }
    }

    fn reply_str(r: &QueryResult) -> String {
        String::from_utf8(r.to_reply()).unwrap()
    }

    fn result(value: Value) -> QueryResult {
        QueryResult {
            value,
            warnings: vec![],
            infos: vec![],
        }
    }

    fn tricky() -> (Vec<f64>, Vec<&'static str>) {
        let values = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1 + 0.2,
            1e-6,
            9.99e-7,
            -1e-7,
            1e20,
            1e21,
            -1e21,
            123456789.0,
            1234567.5,
            1e15,
            1e15 + 1.0,
            f64::MAX,
            5e-324,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let strings = vec![
            "plain",
            "",
            "quote \" and backslash \\ and slash /",
            "html <b>&amp;</b>",
            "lines\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}",
            "unicode é ü 日本 🦀 \u{2028}\u{2029} \u{a0}\u{80}",
        ];
        (values, strings)
    }

    #[test]
    fn byte_writer_matches_the_serde_rendering_in_meaning() {
        let (values, strings) = tricky();
        let labels: Vec<Labels> = strings
            .iter()
            .enumerate()
            .map(|(i, s)| Labels::from_pairs([("__name__", format!("m{i}")), ("l", s.to_string())]))
            .collect();
        let mut cases = vec![
            result(Value::Scalar(1_500, f64::INFINITY)),
            result(Value::Scalar(-2_000, -0.0)),
            result(Value::String(1_001, strings[4].to_string())),
            result(Value::Vector(1_700_000_000_123, vec![])),
            result(Value::Matrix(vec![])),
        ];
        for (i, &t) in [0i64, 1_500, -500, 2_050, 1_700_000_000_000]
            .iter()
            .enumerate()
        {
            cases.push(result(Value::Vector(
                t,
                labels
                    .iter()
                    .zip(values.iter().cycle().skip(i))
                    .map(|(l, v)| VecSample {
                        h: None,
                        labels: l.clone(),
                        v: *v,
                    })
                    .collect(),
            )));
        }
        cases.push(QueryResult {
            value: Value::Matrix(
                labels
                    .iter()
                    .map(|l| RangeSeries {
                        histograms: vec![],
                        labels: l.clone(),
                        points: values
                            .iter()
                            .enumerate()
                            .map(|(i, v)| (i as i64 * 1_250 - 3_000, *v))
                            .collect(),
                    })
                    .collect(),
            ),
            warnings: vec!["PromQL warning: <odd> \"w\"".into()],
            infos: vec!["PromQL info: i".into()],
        });
        for r in &cases {
            let fast = r.to_reply();
            let old = serde_reply(r);
            let fast_json: Json = serde_json::from_slice(&fast)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&fast)));
            let old_json: Json = serde_json::from_slice(&old).unwrap();
            assert_eq!(
                normalise(fast_json, false),
                normalise(old_json, false),
                "{}",
                String::from_utf8_lossy(&fast)
            );
        }
    }

    #[test]
    fn byte_writer_spells_like_prometheus() {
        // replies of Debian's Prometheus 2.42 to the same queries
        let r = result(Value::Scalar(1_500, 1.5));
        assert_eq!(
            reply_str(&r),
            r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"1.5"]}}"#
        );
        let r = result(Value::Scalar(2_000, 2.0));
        assert_eq!(
            reply_str(&r),
            r#"{"status":"success","data":{"resultType":"scalar","result":[2,"2"]}}"#
        );
        let r = result(Value::Scalar(-500, -0.5));
        assert_eq!(
            reply_str(&r),
            r#"{"status":"success","data":{"resultType":"scalar","result":[-0.5,"-0.5"]}}"#
        );
        let r = result(Value::String(1_500, "foo".into()));
        assert_eq!(
            reply_str(&r),
            r#"{"status":"success","data":{"resultType":"string","result":[1.5,"foo"]}}"#
        );
        let v = |t: i64, v: f64, l: Labels| {
            result(Value::Vector(
                t,
                vec![VecSample {
                    labels: l,
                    v,
                    h: None,
                }],
            ))
        };
        let e = Labels::empty;
        for (t, x, want) in [
            (1_500, 1.0, r#"[1.500,"1"]"#),
            (2_050, 1.0, r#"[2.050,"1"]"#),
            (1_001, 1.0, r#"[1.001,"1"]"#),
            (-500, 1.0, r#"[-0.500,"1"]"#),
            (1_000, 123456789.0, r#"[1,"123456789"]"#),
            (1_000, 1234567.5, r#"[1,"1234567.5"]"#),
            (1_000, 0.000001, r#"[1,"0.000001"]"#),
            (1_000, 0.0000011, r#"[1,"0.0000011"]"#),
            (1_000, -1e-7, r#"[1,"-1e-07"]"#),
            (1_000, 1e20, r#"[1,"100000000000000000000"]"#),
            (1_000, -1e21, r#"[1,"-1e+21"]"#),
            (1_000, 1e301, r#"[1,"1e+301"]"#),
            (1_000, 0.1 + 0.2, r#"[1,"0.30000000000000004"]"#),
            (1_000, 5e-324, r#"[1,"5e-324"]"#),
            (1_000, f64::MAX, r#"[1,"1.7976931348623157e+308"]"#),
            (1_000, -0.0, r#"[1,"-0"]"#),
        ] {
            let want = format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":{want}}}]}}}}"#
            );
            assert_eq!(reply_str(&v(t, x, e())), want, "{x:e} at {t}");
        }
        let l = Labels::from_pairs([("a", "<&>\u{2028}\t\u{1}\u{7f}é\\\"/")]);
        assert_eq!(
            reply_str(&v(1_000, 1.0, l)),
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"\u003c\u0026\u003e\u2028\t\u0001"#
                .to_string()
                + "\u{7f}é"
                + r#"\\\"/"},"value":[1,"1"]}]}}"#
        );
        let l = Labels::from_pairs([("a", "\n\r\u{8}\u{c}\u{1f}\u{2029}\u{a0}\u{80}x")]);
        let r = result(Value::Matrix(vec![RangeSeries {
            histograms: vec![],
            labels: l,
            points: vec![(1_000, 1.0)],
        }]));
        assert_eq!(
            reply_str(&r),
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"\n\r\u0008\u000c\u001f\u2029"#
                .to_string()
                + "\u{a0}\u{80}x"
                + r#""},"values":[[1,"1"]]}]}}"#
        );
        let r = result(Value::Matrix(vec![RangeSeries {
            histograms: vec![],
            labels: Labels::empty(),
            points: vec![(-1_500, 1.0), (-750, 1.0), (0, 1.0)],
        }]));
        assert_eq!(
            reply_str(&r),
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[-1.500,"1"],[-0.750,"1"],[0,"1"]]}]}}"#
        );
    }

    #[test]
    fn large_matrices_render_in_order() {
        let series: Vec<RangeSeries> = (0..100)
            .map(|i| RangeSeries {
                histograms: vec![],
                labels: Labels::from_pairs([("i", i.to_string())]),
                points: (0..600)
                    .map(|k| (k * 1000, (i * 1000 + k) as f64))
                    .collect(),
            })
            .collect();
        let r = result(Value::Matrix(series));
        let v: Json = serde_json::from_slice(&r.to_reply()).unwrap();
        let rows = v["data"]["result"].as_array().unwrap();
        assert_eq!(rows.len(), 100);
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(r["metric"]["i"], json!(i.to_string()));
            assert_eq!(r["values"][599], json!([599, (i * 1000 + 599).to_string()]));
        }
    }

    #[test]
    fn value_spelling_matches_go_formatting() {
        // 'f' form inside [1e-6, 1e21), 'e' form outside, as Go spells them
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let check = |v: f64| {
            let mut out = Vec::new();
            write_value(&mut out, v);
            let abs = v.abs();
            let want = if v.is_finite() && abs != 0.0 && !(1e-6..1e21).contains(&abs) {
                format_e(v)
            } else {
                format_f(v)
            };
            assert_eq!(out, format!("\"{want}\"").into_bytes(), "{v:e}");
        };
        let (values, _) = tricky();
        values.into_iter().for_each(check);
        for i in 0..20_000u64 {
            // xorshift: arbitrary bit patterns, plus integers and short decimals
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            check(f64::from_bits(x));
            check((x % 1_000_000_007) as f64);
            check(-((x % 100_000) as f64) / 1000.0);
            check(i as f64 * 0.1);
            check((x >> 11) as f64 * 1e3);
        }
    }

    #[test]
    fn histograms_render_as_prometheus_renders_them() {
        let mut h = FloatHistogram::empty(0);
        h.count = 4.0;
        h.sum = 5.5;
        h.zero_threshold = 0.001;
        h.zero_count = 1.0;
        h.set_bucket_list(true, &[(0, 1.0), (1, 0.0), (2, 2.0)]);
        h.set_bucket_list(false, &[(1, 1.0)]);
        let h = Arc::new(h);
        let l = Labels::from_pairs([("__name__", "h")]);
        let v = result(Value::Vector(
            1_500,
            vec![VecSample {
                labels: l.clone(),
                v: 0.0,
                h: Some(h.clone()),
            }],
        ));
        let buckets =
            r#"[[1,"-2","-1","1"],[3,"-0.001","0.001","1"],[0,"0.5","1","1"],[0,"2","4","2"]]"#;
        assert_eq!(
            reply_str(&v),
            format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"__name__":"h"}},"histogram":[1.500,{{"count":"4","sum":"5.5","buckets":{buckets}}}]}}]}}}}"#
            )
        );
        // a series with both: "values" then "histograms"; without floats no "values"
        let mut empty = FloatHistogram::empty(0);
        empty.count = 0.0;
        let m = result(Value::Matrix(vec![
            RangeSeries {
                labels: l.clone(),
                points: vec![(1_000, 1.0)],
                histograms: vec![(2_000, Arc::new(empty))],
            },
            RangeSeries {
                labels: Labels::from_pairs([("__name__", "i")]),
                points: vec![],
                histograms: vec![(3_000, h)],
            },
        ]));
        let got = reply_str(&m);
        assert!(
            got.contains(r#"{"metric":{"__name__":"h"},"values":[[1,"1"]],"histograms":[[2,{"count":"0","sum":"0"}]]}"#),
            "{got}"
        );
        assert!(
            got.contains(&format!(
                r#"{{"metric":{{"__name__":"i"}},"histograms":[[3,{{"count":"4","sum":"5.5","buckets":{buckets}}}]]}}"#
            )),
            "{got}"
        );
    }
}
