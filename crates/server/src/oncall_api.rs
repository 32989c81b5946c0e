//! On-call endpoints: who is on call, escalations, acknowledgement by API
//! and by signed link. Handlers translate HTTP to [`crate::OnCallApi`] calls.
//!
//! The link (`/oncall/ack/<token>`) needs no API token: the signature is the
//! authority. A GET only shows a confirmation form (mail and chat scanners
//! prefetch links and must not acknowledge anything); the form's POST acts.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::ServerState;
use crate::auth::Principal;
use crate::day2api::{Day2ApiError, blocking, body_json, json, param};

/// The on-call feature as the HTTP layer sees it; JSON values in and out.
/// Methods may block (they are called from `spawn_blocking`).
pub trait OnCallApi: Send + Sync {
    /// Per schedule, who is on call at `at` (RFC 3339 or a civil time; now by default).
    fn who(
        &self,
        at: Option<&str>,
        schedule: Option<&str>,
    ) -> Result<serde_json::Value, Day2ApiError>;
    /// Escalations, newest first; `state` `open` (default) or `all`.
    fn escalations(
        &self,
        state: Option<&str>,
        fingerprint: Option<&str>,
    ) -> Result<serde_json::Value, Day2ApiError>;
    /// One escalation with its steps, pages and events.
    fn escalation(&self, id: i64) -> Result<serde_json::Value, Day2ApiError>;
    /// Acknowledges an escalation as `by`; `via` is `api` or `cli`.
    fn ack(&self, id: i64, by: &str, via: &str) -> Result<serde_json::Value, Day2ApiError>;
    /// Acknowledges the escalations carrying an alert.
    fn ack_alert(
        &self,
        fingerprint: &str,
        by: &str,
        via: &str,
    ) -> Result<serde_json::Value, Day2ApiError>;
    /// The HTML page of an acknowledgement link and its status code: a
    /// confirmation form (`confirm` false), or the result of acknowledging.
    fn ack_link_page(&self, token: &str, confirm: bool) -> (u16, String);
}

/// The acknowledgement page's Content-Security-Policy: nothing loads, the
/// form posts back to day2 only.
pub const ACK_PAGE_CSP: &str =
    "default-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn api(st: &ServerState) -> Result<Arc<dyn OnCallApi>, Day2ApiError> {
    st.oncall.read().clone().ok_or_else(|| {
        Day2ApiError::NotFound("on-call is not configured (oncall section of day2.yml)".into())
    })
}

/// `GET /api/day2/v1/oncall/who?at=&schedule=`
pub async fn who(State(st): State<Arc<ServerState>>, RawQuery(q): RawQuery) -> Response {
    let at = param(q.clone(), "at");
    let schedule = param(q, "schedule");
    json(match api(&st) {
        Ok(a) => blocking(move || a.who(at.as_deref(), schedule.as_deref())).await,
        Err(e) => Err(e),
    })
}

/// `GET /api/day2/v1/oncall/escalations?state=open|all&fingerprint=`
pub async fn escalations(State(st): State<Arc<ServerState>>, RawQuery(q): RawQuery) -> Response {
    let state = param(q.clone(), "state");
    let fp = param(q, "fingerprint");
    json(match api(&st) {
        Ok(a) => blocking(move || a.escalations(state.as_deref(), fp.as_deref())).await,
        Err(e) => Err(e),
    })
}

fn id(s: &str) -> Result<i64, Day2ApiError> {
    s.parse()
        .map_err(|_| Day2ApiError::BadRequest(format!("invalid escalation id {s:?}")))
}

/// `GET /api/day2/v1/oncall/escalations/{id}`
pub async fn escalation(State(st): State<Arc<ServerState>>, Path(raw): Path<String>) -> Response {
    json(match (api(&st), id(&raw)) {
        (Ok(a), Ok(id)) => blocking(move || a.escalation(id)).await,
        (Err(e), _) | (_, Err(e)) => Err(e),
    })
}

/// How the acknowledgement came in: `{"via": "cli"}` from `day2 ack`, else `api`.
fn via(body: &Bytes) -> Result<&'static str, Day2ApiError> {
    match body_json(body)?.get("via").and_then(|v| v.as_str()) {
        None | Some("api") => Ok("api"),
        Some("cli") => Ok("cli"),
        Some(other) => Err(Day2ApiError::BadRequest(format!(
            "via: {other:?} is not api or cli"
        ))),
    }
}

/// `POST /api/day2/v1/oncall/escalations/{id}/ack`
pub async fn ack(
    State(st): State<Arc<ServerState>>,
    Extension(who): Extension<Principal>,
    Path(raw): Path<String>,
    body: Bytes,
) -> Response {
    json(match (api(&st), id(&raw), via(&body)) {
        (Ok(a), Ok(id), Ok(via)) => blocking(move || a.ack(id, &who.name, via)).await,
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
    })
}

/// `POST /api/day2/v1/oncall/alerts/{fingerprint}/ack`
pub async fn ack_alert(
    State(st): State<Arc<ServerState>>,
    Extension(who): Extension<Principal>,
    Path(fp): Path<String>,
    body: Bytes,
) -> Response {
    json(match (api(&st), via(&body)) {
        (Ok(a), Ok(via)) => blocking(move || a.ack_alert(&fp, &who.name, via)).await,
        (Err(e), _) | (_, Err(e)) => Err(e),
    })
}

async fn link_page(st: Arc<ServerState>, token: String, confirm: bool) -> Response {
    let Ok(a) = api(&st) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (code, html) = tokio::task::spawn_blocking(move || a.ack_link_page(&token, confirm))
        .await
        .unwrap_or((500, "internal error".into()));
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, ACK_PAGE_CSP),
            // the token is in the URL: keep it out of Referer headers and caches
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        html,
    )
        .into_response()
}

/// `GET /oncall/ack/{token}`: the confirmation form; changes nothing.
pub async fn ack_link_form(
    State(st): State<Arc<ServerState>>,
    Path(token): Path<String>,
) -> Response {
    link_page(st, token, false).await
}

/// `POST /oncall/ack/{token}`: acknowledges as the user the link was sent to.
pub async fn ack_link_confirm(
    State(st): State<Arc<ServerState>>,
    Path(token): Path<String>,
) -> Response {
    link_page(st, token, true).await
}
