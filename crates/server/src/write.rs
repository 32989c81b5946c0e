//! `POST /api/v1/write`: Prometheus remote write 1.0.
//!
//! Status codes follow the remote-write spec so senders retry only what can
//! succeed later: 204 when everything was stored; 400 for bad input (the valid
//! samples of the request are still stored; retrying would not help); 429 with
//! `Retry-After` over the rate limit; 5xx when storage failed (retry).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use day2_ingest::remote_write::{self, DecodeError, DecodeLimits};
use day2_model::AppendError;

use crate::ServerState;

fn plain(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, msg.into()).into_response()
}

pub async fn remote_write(
    State(st): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let limits = *st.write_limits.read();
    let resp = handle(&st, &headers, body, limits).await;
    st.metrics.remote_write_request(resp.status().as_u16());
    resp
}

async fn handle(
    st: &Arc<ServerState>,
    headers: &HeaderMap,
    body: Bytes,
    limits: crate::WriteLimits,
) -> Response {
    if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
        let enc = enc.to_str().unwrap_or("");
        if !enc.eq_ignore_ascii_case("snappy") {
            return plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported Content-Encoding {enc:?}: remote write 1.0 needs snappy"),
            );
        }
    }
    if body.len() > limits.max_body_bytes {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body of {} bytes is over the limit of {} bytes",
                body.len(),
                limits.max_body_bytes
            ),
        );
    }
    let decode_limits = DecodeLimits {
        max_decoded_bytes: limits.max_decoded_bytes,
    };
    let series = match remote_write::decode(&body, decode_limits) {
        Ok(s) => s,
        Err(e @ DecodeError::TooLarge { .. }) => {
            return plain(StatusCode::BAD_REQUEST, format!("refused: {e}"));
        }
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("cannot decode remote write request: {e}"),
            );
        }
    };
    let samples: usize = series.iter().map(|s| s.len()).sum();
    if let Err(wait) = st.rate_limiter.try_take(samples as u64) {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, secs.to_string())],
            format!("over the ingestion rate limit; retry after {secs}s"),
        )
            .into_response();
    }
    let appender = st.appender.clone();
    let outcome = match tokio::task::spawn_blocking(move || appender.append(series)).await {
        Ok(Ok(o)) => o,
        Ok(Err(AppendError::Unavailable(e))) => {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("storage unavailable: {e}"),
            );
        }
        Ok(Err(e)) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("write task failed: {e}"),
            );
        }
    };
    st.metrics
        .samples_ingested(outcome.accepted as u64, outcome.rejected() as u64);
    if outcome.rejected() > 0 {
        let first = outcome.first_error.clone().unwrap_or_default();
        return plain(
            StatusCode::BAD_REQUEST,
            format!(
                "{} samples rejected ({} out of window, {} conflicting, {} in invalid series), {} stored: {first}",
                outcome.rejected(),
                outcome.too_old,
                outcome.conflicts,
                outcome.invalid_series,
                outcome.accepted
            ),
        );
    }
    StatusCode::NO_CONTENT.into_response()
}
