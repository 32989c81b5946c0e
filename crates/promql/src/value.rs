//! Query values and their JSON shapes in Prometheus's HTTP API.

use day2_model::Labels;
use day2_model::gofloat::format_f;
use serde_json::{Map, Value as Json, json};

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

fn ts(t: i64) -> Json {
    // Prometheus prints seconds with millisecond precision as a JSON number
    let secs = t as f64 / 1000.0;
    json!(secs)
}

impl QueryResult {
    /// The `data` object of `/api/v1/query` and `/api/v1/query_range`.
    pub fn to_json(&self) -> Json {
        match &self.value {
            Value::Scalar(t, v) => {
                json!({"resultType": "scalar", "result": [ts(*t), format_f(*v)]})
            }
            Value::String(t, s) => json!({"resultType": "string", "result": [ts(*t), s]}),
            Value::Vector(t, samples) => json!({
                "resultType": "vector",
                "result": samples.iter().map(|s| json!({"metric": labels_json(&s.labels), "value": [ts(*t), format_f(s.v)]})).collect::<Vec<_>>(),
            }),
            Value::Matrix(series) => json!({
                "resultType": "matrix",
                "result": series.iter().map(|s| json!({
                    "metric": labels_json(&s.labels),
                    "values": s.points.iter().map(|(t, v)| json!([ts(*t), format_f(*v)])).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
