//! Query values and their JSON shapes in Prometheus's HTTP API.

use day2_model::Labels;
use day2_model::gofloat::format_f;
use serde_json::{Map, Value as Json};

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct VecSample {
    pub labels: Labels,
    pub v: f64,
}

/// One series of a range vector (matrix).
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
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

fn labels_json(l: &Labels) -> Json {
    let mut m = Map::new();
    for x in l {
        m.insert(x.name.clone(), Json::String(x.value.clone()));
    }
    Json::Object(m)
}

/// A sample value as Prometheus prints it (Go's `FormatFloat(v, 'f', -1, 64)`):
/// Rust's `Display` for finite floats is the same shortest fixed-point form, and
/// much cheaper than the general formatter (checked against it in the tests).
fn value_str(v: f64) -> String {
    if v.is_finite() {
        let mut s = String::with_capacity(24);
        let _ = std::fmt::Write::write_fmt(&mut s, format_args!("{v}"));
        s
    } else {
        format_f(v)
    }
}

fn point(t: i64, v: f64) -> Json {
    Json::Array(vec![ts(t), Json::String(value_str(v))])
}

fn ts(t: i64) -> Json {
    // Prometheus prints seconds with millisecond precision as a JSON number
    let secs = t as f64 / 1000.0;
    serde_json::Number::from_f64(secs).map_or(Json::Null, Json::Number)
}

impl QueryResult {
    /// The `data` object of `/api/v1/query` and `/api/v1/query_range`.
    ///
    /// Built by moving values into place: `json!` would deep-copy every nested
    /// `Value` given to it as an expression.
    pub fn to_json(&self) -> Json {
        let (kind, result) = match &self.value {
            Value::Scalar(t, v) => ("scalar", point(*t, *v)),
            Value::String(t, s) => ("string", Json::Array(vec![ts(*t), Json::String(s.clone())])),
            Value::Vector(t, samples) => (
                "vector",
                Json::Array(
                    samples
                        .iter()
                        .map(|s| {
                            object([
                                ("metric", labels_json(&s.labels)),
                                ("value", point(*t, s.v)),
                            ])
                        })
                        .collect(),
                ),
            ),
            Value::Matrix(series) => ("matrix", Json::Array(matrix_json(series))),
        };
        object([
            ("resultType", Json::String(kind.into())),
            ("result", result),
        ])
    }
}

/// Matrix rows as JSON; large results are rendered on several threads.
fn matrix_json(series: &[RangeSeries]) -> Vec<Json> {
    let row = |s: &RangeSeries| {
        object([
            ("metric", labels_json(&s.labels)),
            (
                "values",
                Json::Array(s.points.iter().map(|(t, v)| point(*t, *v)).collect()),
            ),
        ])
    };
    let points: usize = series.iter().map(|s| s.points.len()).sum();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if threads < 2 || points < 50_000 {
        return series.iter().map(row).collect();
    }
    let per = series.len().div_ceil(threads);
    std::thread::scope(|sc| {
        let parts: Vec<_> = series
            .chunks(per)
            .skip(1)
            .map(|part| sc.spawn(move || part.iter().map(row).collect::<Vec<_>>()))
            .collect();
        let mut out: Vec<Json> = series[..per.min(series.len())].iter().map(row).collect();
        for p in parts {
            out.extend(p.join().expect("JSON rendering thread panicked"));
        }
        out
    })
}

fn object<const N: usize>(pairs: [(&str, Json); N]) -> Json {
    let mut m = Map::new();
    for (k, v) in pairs {
        m.insert(k.to_string(), v);
    }
    Json::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn large_matrices_render_in_order() {
        let series: Vec<RangeSeries> = (0..100)
            .map(|i| RangeSeries {
                labels: Labels::from_pairs([("i", i.to_string())]),
                points: (0..600)
                    .map(|k| (k * 1000, (i * 1000 + k) as f64))
                    .collect(),
            })
            .collect();
        let rows = matrix_json(&series);
        assert_eq!(rows.len(), 100);
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(r["metric"]["i"], json!(i.to_string()));
            assert_eq!(
                r["values"][599],
                json!([599.0, (i * 1000 + 599).to_string()])
            );
        }
    }

    #[test]
    fn fast_value_formatting_matches_go_formatting() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let check = |v: f64| assert_eq!(value_str(v), format_f(v), "{v:e}");
        for v in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            0.5,
            1e21,
            1e22,
            1e-7,
            123456789.0,
            1e300,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            check(v);
        }
        for i in 0..20_000u64 {
            // xorshift: arbitrary bit patterns, plus integers and short decimals
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            check(f64::from_bits(x));
            check((x % 1_000_000_007) as f64);
            check((x % 100_000) as f64 / 1000.0);
            check(i as f64 * 0.1);
        }
    }

    #[test]
    fn json_shapes_match_prometheus() {
        let r = QueryResult {
            value: Value::Scalar(1_500, f64::INFINITY),
            warnings: vec![],
            infos: vec![],
        };
        assert_eq!(
            r.to_json(),
            json!({"resultType": "scalar", "result": [1.5, "+Inf"]})
        );
        let r = QueryResult {
            value: Value::Vector(
                2_000,
                vec![VecSample {
                    labels: Labels::from_pairs([("__name__", "up")]),
                    v: 1.0,
                }],
            ),
            warnings: vec![],
            infos: vec![],
        };
        assert_eq!(
            r.to_json(),
            json!({"resultType": "vector", "result": [{"metric": {"__name__": "up"}, "value": [2.0, "1"]}]})
        );
        let r = QueryResult {
            value: Value::Matrix(vec![RangeSeries {
                labels: Labels::empty(),
                points: vec![(0, 0.5)],
            }]),
            warnings: vec![],
            infos: vec![],
        };
        assert_eq!(
            r.to_json(),
            json!({"resultType": "matrix", "result": [{"metric": {}, "values": [[0.0, "0.5"]]}]})
        );
    }
}
