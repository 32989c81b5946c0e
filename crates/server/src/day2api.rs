//! Conventions of day2's own API (`/api/day2/v1/...`) shared by the feature
//! handlers: plain JSON bodies, errors as `{"error": "..."}` with 400, 403,
//! 404, 409 or 500, feature calls run off the async threads.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error of a day2 feature API.
#[derive(Debug, thiserror::Error)]
pub enum Day2ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (e.g. acknowledging a resolved escalation).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Internal(String),
}

impl Day2ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Day2ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            Day2ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            Day2ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            Day2ApiError::Conflict(_) => StatusCode::CONFLICT,
            Day2ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Day2ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.to_string() });
        (self.status(), axum::Json(body)).into_response()
    }
}

/// Runs a blocking feature call off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Day2ApiError> + Send + 'static,
) -> Result<T, Day2ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Day2ApiError::Internal(e.to_string()))?
}

/// A JSON reply, or the error.
pub fn json(r: Result<serde_json::Value, Day2ApiError>) -> Response {
    match r {
        Ok(v) => (StatusCode::OK, axum::Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The request body as JSON (an empty body is `null`).
pub fn body_json(body: &Bytes) -> Result<serde_json::Value, Day2ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_slice(body).map_err(|e| Day2ApiError::BadRequest(format!("invalid JSON: {e}")))
}

/// The last value of a query parameter.
pub fn param(q: Option<String>, name: &str) -> Option<String> {
    crate::read::query_pairs(q)
        .into_iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}
