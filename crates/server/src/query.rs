//! PromQL over HTTP: `/api/v1/query`, `/api/v1/query_range`, `/api/v1/format_query`,
//! `/api/v1/parse_query`, plus the small status endpoints Grafana calls.

use std::sync::Arc;
use std::time::Duration;

use axum::Form;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use day2_promql::Error as QueryError;
use serde_json::json;

use crate::ServerState;
use crate::api::{ApiError, param, parse_time, success};
use crate::read::query_pairs;

/// Most points a range query may return per series (Prometheus's limit).
const MAX_POINTS: i64 = 11_000;

fn query_error(e: QueryError) -> ApiError {
    let status = match &e {
        QueryError::BadInput { .. } => StatusCode::BAD_REQUEST,
        QueryError::Timeout => StatusCode::SERVICE_UNAVAILABLE,
        QueryError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError {
        status,
        kind: e.error_type(),
        message: e.to_string(),
    }
}

/// Parses `step`/`timeout`: a Prometheus duration (`15s`) or float seconds.
fn parse_duration_param(name: &str, v: &str) -> Result<Duration, ApiError> {
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(ApiError::bad_data(format!(
            "invalid parameter {name:?}: {v:?} is not a valid duration"
        )));
    }
    day2_model::parse_duration(v)
        .map_err(|e| ApiError::bad_data(format!("invalid parameter {name:?}: {e}")))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn merged(q: Option<String>, body: Option<Vec<(String, String)>>) -> Vec<(String, String)> {
    let mut pairs = query_pairs(q);
    pairs.extend(body.unwrap_or_default());
    pairs
}

pub async fn instant_get(State(st): State<Arc<ServerState>>, RawQuery(q): RawQuery) -> Response {
    instant(st, merged(q, None))
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub async fn instant_post(
    State(st): State<Arc<ServerState>>,
    RawQuery(q): RawQuery,
    Form(b): Form<Vec<(String, String)>>,
) -> Response {
    instant(st, merged(q, Some(b)))
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub async fn range_get(State(st): State<Arc<ServerState>>, RawQuery(q): RawQuery) -> Response {
    range(st, merged(q, None))
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub async fn range_post(
    State(st): State<Arc<ServerState>>,
    RawQuery(q): RawQuery,
    Form(b): Form<Vec<(String, String)>>,
) -> Response {
    range(st, merged(q, Some(b)))
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

fn query_text(pairs: &[(String, String)]) -> Result<String, ApiError> {
    param(pairs, "query")
        .filter(|q| !q.is_empty())
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad_data("invalid parameter \"query\": no query given"))
}

/// Runs an evaluation on a blocking thread under the concurrency limit.
async fn evaluate<F>(st: &Arc<ServerState>, f: F) -> Result<Response, ApiError>
where
    F: FnOnce(
            &day2_promql::Engine,
            &dyn day2_model::Queryable,
        ) -> Result<day2_promql::QueryResult, QueryError>
        + Send
        + 'static,
{
    let _slot = st
        .query_slots
        .acquire()
        .await
        .map_err(|_| ApiError::internal("query slots closed"))?;
    let engine = st.engine.clone();
    let db = st.queryable.clone();
    // the reply is rendered to bytes on the blocking thread too: for large
    // results it costs as much as the evaluation
    let body = tokio::task::spawn_blocking(move || f(&engine, db.as_ref()).map(|r| r.to_reply()))
        .await
        .map_err(|e| ApiError::internal(format!("query task failed: {e}")))?
        .map_err(query_error)?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

async fn instant(st: Arc<ServerState>, pairs: Vec<(String, String)>) -> Result<Response, ApiError> {
    let query = query_text(&pairs)?;
    let t = parse_time("time", param(&pairs, "time"), now_ms())?;
    if let Some(to) = param(&pairs, "timeout") {
        parse_duration_param("timeout", to)?;
    }
    evaluate(&st, move |engine, db| engine.instant(db, &query, t)).await
}

async fn range(st: Arc<ServerState>, pairs: Vec<(String, String)>) -> Result<Response, ApiError> {
    let query = query_text(&pairs)?;
    let start = parse_time("start", param(&pairs, "start"), i64::MIN)?;
    let end = parse_time("end", param(&pairs, "end"), i64::MIN)?;
    if start == i64::MIN || end == i64::MIN {
        return Err(ApiError::bad_data(
            "invalid parameter: start and end are required",
        ));
    }
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let step = param(&pairs, "step")
        .ok_or_else(|| ApiError::bad_data("invalid parameter \"step\": missing"))?;
    let step_ms = parse_duration_param("step", step)?.as_millis() as i64;
    if step_ms <= 0 {
        return Err(ApiError::bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step_ms > MAX_POINTS {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    evaluate(&st, move |engine, db| {
        engine.range(db, &query, start, end, step_ms)
    })
    .await
}

pub async fn format_query(RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let pairs = query_pairs(q);
    let query = query_text(&pairs)?;
    let formatted = day2_promql::format_query(&query).map_err(query_error)?;
    Ok(success(json!(formatted)))
}

pub async fn parse_query(RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let pairs = query_pairs(q);
    let query = query_text(&pairs)?;
    let tree = day2_promql::parse_query_json(&query).map_err(query_error)?;
    Ok(success(tree))
}

pub async fn buildinfo() -> Response {
    success(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "day2 (Rust)",
    }))
}

/// Grafana asks for exemplars alongside queries; day2 stores none yet.
pub async fn query_exemplars() -> Response {
    success(json!([]))
}
