//! Incident endpoints and the public status page. Handlers translate HTTP
//! to [`crate::IncidentApi`] calls. The status page (`/status`,
//! `/status.json`) is served without authentication, the HTML with the
//! feature's Content-Security-Policy.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::ServerState;
use crate::auth::Principal;
use crate::day2api::{Day2ApiError, blocking, body_json, json, param};

/// The incidents feature as the HTTP layer sees it; JSON values in and out.
/// Methods may block (they are called from `spawn_blocking`).
pub trait IncidentApi: Send + Sync {
    /// Incidents newest first; `state` `open` (default) or `all`.
    fn list(&self, state: Option<&str>) -> Result<serde_json::Value, Day2ApiError>;
    fn get(&self, id: &str) -> Result<serde_json::Value, Day2ApiError>;
    /// Opens an incident by hand as `by`.
    fn create(&self, body: &serde_json::Value, by: &str)
    -> Result<serde_json::Value, Day2ApiError>;
    /// Applies an action (`status`, `severity`, `role`, `note`, ...) as `by`.
    fn act(
        &self,
        id: &str,
        action: &str,
        body: &serde_json::Value,
        by: &str,
    ) -> Result<serde_json::Value, Day2ApiError>;
    /// The postmortem draft in Markdown.
    fn postmortem(&self, id: &str) -> Result<String, Day2ApiError>;
    fn maintenances(&self) -> Result<serde_json::Value, Day2ApiError>;
    fn put_maintenance(
        &self,
        body: &serde_json::Value,
        by: &str,
    ) -> Result<serde_json::Value, Day2ApiError>;
    fn delete_maintenance(&self, id: &str, by: &str) -> Result<(), Day2ApiError>;
    /// The public status page as JSON text.
    fn status_json(&self) -> Result<String, Day2ApiError>;
    /// The public status page as HTML, with the Content-Security-Policy to serve it with.
    fn status_html(&self) -> Result<(String, String), Day2ApiError>;
}

fn api(st: &ServerState) -> Result<Arc<dyn IncidentApi>, Day2ApiError> {
    st.incidents.read().clone().ok_or_else(|| {
        Day2ApiError::NotFound(
            "incidents are not configured (incidents section of day2.yml)".into(),
        )
    })
}

/// `GET /api/day2/v1/incidents?state=open|all`
pub async fn list(State(st): State<Arc<ServerState>>, RawQuery(q): RawQuery) -> Response {
    let state = param(q, "state");
    json(match api(&st) {
        Ok(a) => blocking(move || a.list(state.as_deref())).await,
        Err(e) => Err(e),
    })
}

/// `GET /api/day2/v1/incidents/{id}`
pub async fn get(State(st): State<Arc<ServerState>>, Path(id): Path<String>) -> Response {
    json(match api(&st) {
        Ok(a) => blocking(move || a.get(&id)).await,
        Err(e) => Err(e),
    })
}

/// `POST /api/day2/v1/incidents`
pub async fn create(
    State(st): State<Arc<ServerState>>,
    Extension(who): Extension<Principal>,
    body: Bytes,
) -> Response {
    json(match (api(&st), body_json(&body)) {
        (Ok(a), Ok(b)) => blocking(move || a.create(&b, &who.name)).await,
        (Err(e), _) | (_, Err(e)) => Err(e),
    })
}

/// `POST /api/day2/v1/incidents/{id}/{action}`
pub async fn act(
    State(st): State<Arc<ServerState>>,
    Extension(who): Extension<Principal>,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    json(match (api(&st), body_json(&body)) {
        (Ok(a), Ok(b)) => blocking(move || a.act(&id, &action, &b, &who.name)).await,
        (Err(e), _) | (_, Err(e)) => Err(e),
    })
}

/// `GET /api/day2/v1/incidents/{id}/postmortem`: Markdown, as a download.
pub async fn postmortem(State(st): State<Arc<ServerState>>, Path(id): Path<String>) -> Response {
    let a = match api(&st) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let name = id.clone();
    match blocking(move || a.postmortem(&id)).await {
        Ok(md) => {
            // incident ids are INC-<n>; keep anything else out of the header
            let file: String = name
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            (
                StatusCode::OK,
                [
                    (
                        header::CONTENT_TYPE,
                        "text/markdown; charset=utf-8".to_string(),
                    ),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"postmortem-{file}.md\""),
                    ),
                ],
                md,
            )
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /api/day2/v1/status/maintenances`
pub async fn maintenances(State(st): State<Arc<ServerState>>) -> Response {
    json(match api(&st) {
        Ok(a) => blocking(move || a.maintenances()).await,
        Err(e) => Err(e),
    })
}

/// `POST /api/day2/v1/status/maintenances`
pub async fn put_maintenance(
    State(st): State<Arc<ServerState>>,
    Extension(who): Extension<Principal>,
    body: Bytes,
) -> Response {
    json(match (api(&st), body_json(&body)) {
        (Ok(a), Ok(b)) => blocking(move || a.put_maintenance(&b, &who.name)).await,
        (Err(e), _) | (_, Err(e)) => Err(e),
    })
}

/// `DELETE /api/day2/v1/status/maintenances/{id}`
pub async fn delete_maintenance(
    State(st): State<Arc<ServerState>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    json(match api(&st) {
        Ok(a) => blocking(move || a.delete_maintenance(&id, &who.name))
            .await
            .map(|()| serde_json::json!({})),
        Err(e) => Err(e),
    })
}

/// `GET /status.json`: public, no auth.
pub async fn status_json(State(st): State<Arc<ServerState>>) -> Response {
    let a = match api(&st) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    match blocking(move || a.status_json()).await {
        Ok(body) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /status`: public, no auth, with a strict Content-Security-Policy.
pub async fn status_html(State(st): State<Arc<ServerState>>) -> Response {
    let a = match api(&st) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    match blocking(move || a.status_html()).await {
        Ok((html, csp)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
                (header::CONTENT_SECURITY_POLICY, csp),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
                (header::CACHE_CONTROL, "no-cache".to_string()),
            ],
            html,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}
