//! Prometheus HTTP API conventions: the JSON envelope, time parameters and
//! `match[]` series selectors.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use day2_model::Matcher;
use serde_json::json;

/// An API failure: HTTP status, Prometheus `errorType`, message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn bad_data(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_data",
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "internal",
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"status": "error", "errorType": self.kind, "error": self.message});
        (self.status, Json(body)).into_response()
    }
}

/// `{"status":"success","data":...}`
pub fn success(data: serde_json::Value) -> Response {
    Json(json!({"status": "success", "data": data})).into_response()
}

/// Smallest and largest times Prometheus accepts for open-ended ranges.
pub const MIN_TIME_MS: i64 = i64::MIN / 2;
pub const MAX_TIME_MS: i64 = i64::MAX / 2;

/// Parses a time parameter: Unix seconds (may be fractional) or RFC 3339.
pub fn parse_time(name: &str, value: Option<&str>, default: i64) -> Result<i64, ApiError> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(default);
    };
    if let Ok(secs) = v.parse::<f64>() {
        if !secs.is_finite() {
            return Err(ApiError::bad_data(format!(
                "invalid parameter {name:?}: {v:?} is not a finite time"
            )));
        }
        return Ok((secs * 1000.0)
            .round()
            .clamp(MIN_TIME_MS as f64, MAX_TIME_MS as f64) as i64);
    }
    v.parse::<jiff::Timestamp>()
        .map(|ts| ts.as_millisecond())
        .map_err(|e| {
            ApiError::bad_data(format!(
                "invalid parameter {name:?}: cannot parse {v:?} to a valid timestamp: {e}"
            ))
        })
}

/// Parses one series selector (`up{job="x"}`) into matcher groups. `or` inside
/// braces yields several groups whose results are unioned.
pub fn parse_selector(s: &str) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let groups = day2_promql::parse_selector(s)
        .map_err(|e| ApiError::bad_data(format!("invalid match[] {s:?}: {e}")))?;
    if groups.iter().any(|g| g.iter().all(|m| m.matches_empty())) {
        return Err(ApiError::bad_data(format!(
            "invalid match[] {s:?}: vector selector must contain at least one non-empty matcher"
        )));
    }
    Ok(groups)
}

/// Collects repeated `key` parameters from a query string or form body.
pub fn params<'a>(pairs: &'a [(String, String)], key: &str) -> impl Iterator<Item = &'a str> {
    pairs
        .iter()
        .filter(move |(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Last value of `key`.
pub fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params(pairs, key).last()
}

/// A float as JSON: a number when finite, else Prometheus's strings `NaN`, `+Inf`, `-Inf`.
pub fn float_json(v: f64) -> serde_json::Value {
    if v.is_finite() {
        json!(v)
    } else if v.is_nan() {
        json!("NaN")
    } else if v > 0.0 {
        json!("+Inf")
    } else {
        json!("-Inf")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_accept_seconds_and_rfc3339() {
        assert_eq!(parse_time("t", Some("1.5"), 0).unwrap(), 1500);
        assert_eq!(
            parse_time("t", Some("2015-07-01T20:10:51.781Z"), 0).unwrap(),
            1435781451781
        );
        assert_eq!(parse_time("t", None, 7).unwrap(), 7);
        let err = parse_time("start", Some("yesterday"), 0).unwrap_err();
        assert!(err.message.contains("start"), "{}", err.message);
    }

    #[test]
    fn selector_becomes_matchers() {
        let groups = parse_selector(r#"up{job=~"a.*",env!="dev"}"#).unwrap();
        assert_eq!(groups.len(), 1);
        let names: Vec<_> = groups[0].iter().map(|m| m.to_string()).collect();
        assert!(names.contains(&"__name__=\"up\"".to_string()), "{names:?}");
        assert!(names.contains(&"job=~\"a.*\"".to_string()), "{names:?}");
        assert!(parse_selector("sum(up)").is_err());
        assert!(parse_selector(r#"{job=~".*"}"#).is_err());
    }
}
