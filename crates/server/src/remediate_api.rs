//! Remediation API (`/api/day2/v1/runbooks`, `/runs`, `/audit`): handlers
//! translate HTTP to calls on the [`RemediationApi`] trait object. Replies are
//! plain JSON; errors are `{"error": "..."}` with the status code. Mutations
//! act as the request's [`Principal`].

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::ServerState;
use crate::auth::Principal;
use crate::day2api::param as query;

/// Errors of the remediation API: day2's API errors (400 bad input, 403
/// e.g. approving one's own run, 404, 409 a guardrail refused or the run is
/// not in a state that allows it, 500).
pub type RemediationError = crate::day2api::Day2ApiError;

/// Remediation as the HTTP layer sees it; values are JSON. Methods may block.
pub trait RemediationApi: Send + Sync {
    /// `{"runbooks": [...]}`
    fn runbooks(&self) -> serde_json::Value;
    /// `{"runs": [...]}`, newest first.
    fn runs(
        &self,
        runbook: Option<&str>,
        state: Option<&str>,
        limit: usize,
    ) -> Result<serde_json::Value, RemediationError>;
    fn run(&self, id: u64) -> Result<serde_json::Value, RemediationError>;
    /// Proposes a run by hand: `{"runbook", "labels", "params", "dry_run"}`.
    fn propose(
        &self,
        user: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, RemediationError>;
    fn approve(&self, id: u64, user: &str) -> Result<serde_json::Value, RemediationError>;
    fn reject(
        &self,
        id: u64,
        user: &str,
        reason: &str,
    ) -> Result<serde_json::Value, RemediationError>;
    /// `{"audit": [...]}` in order, of one run or the latest of all.
    fn audit(&self, run: Option<u64>, limit: usize) -> Result<serde_json::Value, RemediationError>;
}

fn api(state: &ServerState) -> Result<Arc<dyn RemediationApi>, RemediationError> {
    state.remediation.read().clone().ok_or_else(|| {
        RemediationError::NotFound(
            "remediation is not configured (remediation section of day2.yml)".into(),
        )
    })
}

fn reply(r: Result<serde_json::Value, RemediationError>, ok: StatusCode) -> Response {
    match r {
        Ok(v) => (ok, axum::Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Runs a blocking call off the async threads.
async fn call(
    st: &ServerState,
    ok: StatusCode,
    f: impl FnOnce(&dyn RemediationApi) -> Result<serde_json::Value, RemediationError> + Send + 'static,
) -> Response {
    let a = match api(st) {
        Ok(a) => a,
        Err(e) => return reply(Err(e), ok),
    };
    let r = tokio::task::spawn_blocking(move || f(a.as_ref()))
        .await
        .unwrap_or_else(|e| Err(RemediationError::Internal(e.to_string())));
    reply(r, ok)
}

fn limit(q: &Option<String>) -> Result<usize, RemediationError> {
    match query(q.clone(), "limit") {
        None => Ok(100),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| RemediationError::BadRequest(format!("limit: {v:?} is not 1..=10000"))),
    }
}

fn json_body(body: &Bytes) -> Result<serde_json::Value, RemediationError> {
    if body.is_empty() {
        return Ok(serde_json::json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| RemediationError::BadRequest(format!("invalid JSON: {e}")))
}

pub async fn runbooks(State(st): State<Arc<ServerState>>) -> Response {
    call(&st, StatusCode::OK, |a| Ok(a.runbooks())).await
}

pub async fn runs(State(st): State<Arc<ServerState>>, RawQuery(q): RawQuery) -> Response {
    let lim = match limit(&q) {
        Ok(l) => l,
        Err(e) => return reply(Err(e), StatusCode::OK),
    };
    let runbook = query(q.clone(), "runbook");
    let state = query(q, "state");
    call(&st, StatusCode::OK, move |a| {
        a.runs(runbook.as_deref(), state.as_deref(), lim)
    })
    .await
}

pub async fn run(State(st): State<Arc<ServerState>>, Path(id): Path<u64>) -> Response {
    call(&st, StatusCode::OK, move |a| a.run(id)).await
}

pub async fn audit(State(st): State<Arc<ServerState>>, RawQuery(q): RawQuery) -> Response {
    let lim = match limit(&q) {
        Ok(l) => l,
        Err(e) => return reply(Err(e), StatusCode::OK),
    };
    let run = match query(q, "run").map(|v| v.parse::<u64>()) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            return reply(
                Err(RemediationError::BadRequest("run: not a run id".into())),
                StatusCode::OK,
            );
        }
    };
    call(&st, StatusCode::OK, move |a| a.audit(run, lim)).await
}

pub async fn propose(
    State(st): State<Arc<ServerState>>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> Response {
    let v = match json_body(&body) {
        Ok(v) => v,
        Err(e) => return reply(Err(e), StatusCode::CREATED),
    };
    call(&st, StatusCode::CREATED, move |a| a.propose(&p.name, &v)).await
}

pub async fn approve(
    State(st): State<Arc<ServerState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<u64>,
) -> Response {
    call(&st, StatusCode::OK, move |a| a.approve(id, &p.name)).await
}

pub async fn reject(
    State(st): State<Arc<ServerState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<u64>,
    body: Bytes,
) -> Response {
    let v = match json_body(&body) {
        Ok(v) => v,
        Err(e) => return reply(Err(e), StatusCode::OK),
    };
    let reason = v
        .get("reason")
        .and_then(|r| r.as_str())
        .unwrap_or("rejected")
        .to_string();
    call(&st, StatusCode::OK, move |a| a.reject(id, &p.name, &reason)).await
}
