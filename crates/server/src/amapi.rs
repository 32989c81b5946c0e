//! Alertmanager API v2 (`/api/v2/...`): handlers translate HTTP to calls on
//! the [`crate::AlertmanagerApi`] trait object; replies are plain JSON (no
//! Prometheus envelope), errors a JSON string with the status code, as
//! Alertmanager answers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::{AlertmanagerApi, AmError, AmFilter, ServerState};

fn hub(state: &ServerState) -> Result<Arc<dyn AlertmanagerApi>, AmError> {
    state.alertmanager.read().clone().ok_or_else(|| {
        AmError::NotFound(
            "the alert hub is not configured (alertmanager section of day2.yml)".into(),
        )
    })
}

fn err(e: AmError) -> Response {
    let (code, msg) = match e {
        AmError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
        AmError::NotFound(m) => (StatusCode::NOT_FOUND, m),
        AmError::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, m),
    };
    (code, axum::Json(serde_json::Value::String(msg))).into_response()
}

fn ok(v: serde_json::Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

/// Runs a blocking hub call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AmError> + Send + 'static,
) -> Result<T, AmError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AmError::Internal(e.to_string()))?
}

fn pairs(q: Option<String>) -> Vec<(String, String)> {
    crate::read::query_pairs(q)
}

fn flag(pairs: &[(String, String)], name: &str) -> Result<bool, AmError> {
    match pairs.iter().rev().find(|(k, _)| k == name) {
        None => Ok(true),
        Some((_, v)) => v
            .parse::<bool>()
            .map_err(|_| AmError::BadRequest(format!("{name}: invalid boolean {v:?}"))),
    }
}

fn filter(q: Option<String>) -> Result<AmFilter, AmError> {
    let p = pairs(q);
    Ok(AmFilter {
        filter: p
            .iter()
            .filter(|(k, _)| k == "filter")
            .map(|(_, v)| v.clone())
            .collect(),
        active: flag(&p, "active")?,
        silenced: flag(&p, "silenced")?,
        inhibited: flag(&p, "inhibited")?,
        unprocessed: flag(&p, "unprocessed")?,
        receiver: p
            .iter()
            .rev()
            .find(|(k, _)| k == "receiver")
            .map(|(_, v)| v.clone()),
    })
}

fn json_body(body: &Bytes) -> Result<serde_json::Value, AmError> {
    serde_json::from_slice(body).map_err(|e| AmError::BadRequest(format!("invalid JSON: {e}")))
}

pub async fn get_alerts(State(st): State<Arc<ServerState>>, RawQuery(q): RawQuery) -> Response {
    let h = match hub(&st) {
        Ok(h) => h,
        Err(e) => return err(e),
    };
    let f = match filter(q) {
        Ok(f) => f,
        Err(e) => return err(e),
    };
    match blocking(move || h.alerts(&f)).await {
        Ok(v) => ok(v),
        Err(e) => err(e),
    }
}

pub async fn post_alerts(State(st): State<Arc<ServerState>>, body: Bytes) -> Response {
    let h = match hub(&st) {
        Ok(h) => h,
        Err(e) => return err(e),
    };
    let v = match json_body(&body) {
        Ok(v) => v,
        Err(e) => return err(e),
    };
    match blocking(move || h.post_alerts(&v)).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => err(e),
    }
}

pub async fn get_groups(State(st): State<Arc<ServerState>>, RawQuery(q): RawQuery) -> Response {
    let h = match hub(&st) {
        Ok(h) => h,
        Err(e) => return err(e),
    };
    let f = match filter(q) {
        Ok(f) => f,
        Err(e) => return err(e),
    };
    match blocking(move || h.alert_groups(&f)).await {
        Ok(v) => ok(v),
        Err(e) => err(e),
    }
}

pub async fn get_silences(State(st): State<Arc<ServerState>>, RawQuery(q): RawQuery) -> Response {
    let h = match hub(&st) {
        Ok(h) => h,
        Err(e) => return err(e),
    };
    let f: Vec<String> = pairs(q)
        .into_iter()
        .filter(|(k, _)| k == "filter")
        .map(|(_, v)| v)
        .collect();
    match blocking(move || h.silences(&f)).await {
        Ok(v) => ok(v),
        Err(e) => err(e),
    }
}

pub async fn post_silences(State(st): State<Arc<ServerState>>, body: Bytes) -> Response {
    let h = match hub(&st) {
        Ok(h) => h,
        Err(e) => return err(e),
    };
    let v = match json_body(&body) {
        Ok(v) => v,
        Err(e) => return err(e),
    };
    match blocking(move || h.post_silence(&v)).await {
        Ok(v) => ok(v),
        Err(e) => err(e),
    }
}

pub async fn get_silence(State(st): State<Arc<ServerState>>, Path(id): Path<String>) -> Response {
    let h = match hub(&st) {
        Ok(h) => h,
        Err(e) => return err(e),
    };
    match blocking(move || h.silence(&id)).await {
        Ok(v) => ok(v),
        Err(e) => err(e),
    }
}

pub async fn delete_silence(
    State(st): State<Arc<ServerState>>,
    Path(id): Path<String>,
) -> Response {
    let h = match hub(&st) {
        Ok(h) => h,
        Err(e) => return err(e),
    };
    match blocking(move || h.expire_silence(&id)).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => err(e),
    }
}

pub async fn status(State(st): State<Arc<ServerState>>) -> Response {
    match hub(&st) {
        Ok(h) => ok(h.status()),
        Err(e) => err(e),
    }
}

pub async fn receivers(State(st): State<Arc<ServerState>>) -> Response {
    match hub(&st) {
        Ok(h) => ok(h.receivers()),
        Err(e) => err(e),
    }
}

/// `GET /api/day2/v1/notifications?fingerprint=<alert fingerprint>`
pub async fn notifications(State(st): State<Arc<ServerState>>, RawQuery(q): RawQuery) -> Response {
    let h = match hub(&st) {
        Ok(h) => h,
        Err(e) => return err(e),
    };
    let fp = pairs(q)
        .into_iter()
        .rev()
        .find(|(k, _)| k == "fingerprint")
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty());
    match blocking(move || h.notifications(fp.as_deref())).await {
        Ok(v) => ok(v),
        Err(e) => err(e),
    }
}
