//! day2's HTTP layer. Handlers only translate HTTP to crate calls: parse the
//! request, call a trait object (`Appender`, `Queryable`, ...), shape the reply
//! the way Prometheus clients expect. No business logic lives here.

mod amapi;
mod api;
pub mod auth;
pub mod day2api;
pub mod deploy_api;
mod incident_api;
mod oncall_api;
mod query;
pub mod ratelimit;
mod read;
mod remediate_api;
pub mod selfmetrics;
mod write;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use day2_model::{Appender, Queryable};
use parking_lot::RwLock;

pub use day2api::Day2ApiError;
pub use deploy_api::{AutoscalingApi, DeploymentsApi, Marked};
pub use incident_api::IncidentApi;
pub use oncall_api::OnCallApi;
pub use ratelimit::RateLimiter;
pub use remediate_api::{RemediationApi, RemediationError};
pub use selfmetrics::SelfMetrics;

/// Boxed future returned by the reload hook.
pub type ReloadFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Something that contributes lines to `/metrics` (storage, scrape manager, ...).
pub trait MetricsSource: Send + Sync {
    /// Appends Prometheus text-format lines (with HELP/TYPE) to `out`.
    fn render(&self, out: &mut String);
}

/// What the scrape engine knows, shaped for `/api/v1/targets` and `/api/v1/metadata`.
pub trait ScrapeStatus: Send + Sync {
    /// `{"activeTargets": [...], "droppedTargets": [...]}`; `state` is `active`, `dropped` or `any`.
    fn targets(&self, state: &str) -> serde_json::Value;
    /// `{"<metric>": [{"type": .., "help": .., "unit": ..}]}`, optionally for one metric.
    fn metadata(&self, metric: Option<&str>, limit: Option<usize>) -> serde_json::Value;
}

/// What the rule engine knows, shaped for `/api/v1/rules` and `/api/v1/alerts`.
pub trait RulesStatus: Send + Sync {
    /// `{"groups": [...]}`; `kind` is `alert`, `record` or empty; empty lists do not filter.
    fn rules(
        &self,
        kind: &str,
        rule_names: &[String],
        group_names: &[String],
        files: &[String],
    ) -> serde_json::Value;
    /// `{"alerts": [...]}`: pending and firing alerts.
    fn alerts(&self) -> serde_json::Value;
}

/// Query parameters of Alertmanager's `GET /api/v2/alerts` and `/alerts/groups`.
#[derive(Debug, Clone)]
pub struct AmFilter {
    /// Matchers (`alertname="x"`), all must match.
    pub filter: Vec<String>,
    pub active: bool,
    pub silenced: bool,
    pub inhibited: bool,
    pub unprocessed: bool,
    /// Regex on receiver names.
    pub receiver: Option<String>,
}

/// Errors of the Alertmanager API, mapped to 400, 404 and 500.
#[derive(Debug, thiserror::Error)]
pub enum AmError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Internal(String),
}

/// The alert hub as Alertmanager API v2 sees it; values are the API's JSON
/// shapes. Methods may block (they are called from `spawn_blocking`).
pub trait AlertmanagerApi: Send + Sync {
    /// `POST /api/v2/alerts` with a `postableAlerts` body.
    fn post_alerts(&self, body: &serde_json::Value) -> Result<(), AmError>;
    /// `gettableAlerts`.
    fn alerts(&self, filter: &AmFilter) -> Result<serde_json::Value, AmError>;
    /// `alertGroups`.
    fn alert_groups(&self, filter: &AmFilter) -> Result<serde_json::Value, AmError>;
    /// `gettableSilences`, filtered by matchers.
    fn silences(&self, filter: &[String]) -> Result<serde_json::Value, AmError>;
    fn silence(&self, id: &str) -> Result<serde_json::Value, AmError>;
    /// Creates or updates; returns `{"silenceID": ..}`.
    fn post_silence(&self, body: &serde_json::Value) -> Result<serde_json::Value, AmError>;
    fn expire_silence(&self, id: &str) -> Result<(), AmError>;
    /// `alertmanagerStatus`.
    fn status(&self) -> serde_json::Value;
    /// `[{"name": ..}]`.
    fn receivers(&self) -> serde_json::Value;
    /// day2's delivery audit: notifications that carried the alert (all when
    /// `None`), each with its delivery attempts.
    fn notifications(&self, fingerprint: Option<&str>) -> Result<serde_json::Value, AmError>;
}

/// Remote-write limits that a config reload may change.
#[derive(Debug, Clone, Copy)]
pub struct WriteLimits {
    /// Largest accepted compressed body.
    pub max_body_bytes: usize,
    /// Largest accepted decoded body (checked before decompressing).
    pub max_decoded_bytes: usize,
}

impl Default for WriteLimits {
    fn default() -> Self {
        WriteLimits {
            max_body_bytes: 32 << 20,
            max_decoded_bytes: 256 << 20,
        }
    }
}

/// Everything the handlers need, as trait objects so the server does not know
/// which storage or scrape engine sits behind it.
pub struct ServerState {
    pub appender: Arc<dyn Appender>,
    pub queryable: Arc<dyn Queryable>,
    pub metrics: Arc<SelfMetrics>,
    pub sources: Vec<Arc<dyn MetricsSource>>,
    pub scrape_status: Arc<dyn ScrapeStatus>,
    pub rules: Arc<dyn RulesStatus>,
    pub write_limits: RwLock<WriteLimits>,
    pub rate_limiter: RateLimiter,
    /// PromQL engine and the limit on queries evaluated at once.
    pub engine: Arc<day2_promql::Engine>,
    pub query_slots: tokio::sync::Semaphore,
    /// API tokens for mutating endpoints (empty: loopback clients only).
    pub tokens: RwLock<Vec<auth::ApiToken>>,
    /// The alert hub behind `/api/v2` (None: not configured; the API answers 404).
    pub alertmanager: RwLock<Option<Arc<dyn AlertmanagerApi>>>,
    /// Deployments and DORA behind `/api/day2/v1/deployments` and `/dora` (None: 404).
    pub deployments: RwLock<Option<Arc<dyn DeploymentsApi>>>,
    /// Autoscaling behind `/api/day2/v1/autoscaling` (None: 404).
    pub autoscaling: RwLock<Option<Arc<dyn AutoscalingApi>>>,
    /// Remediation behind `/api/day2/v1/runbooks|runs|audit` (None: not configured; 404).
    pub remediation: RwLock<Option<Arc<dyn RemediationApi>>>,
    /// On-call behind `/api/day2/v1/oncall` and `/oncall/ack` (None: not configured, 404).
    pub oncall: RwLock<Option<Arc<dyn OnCallApi>>>,
    /// Incidents behind `/api/day2/v1/incidents` and the status page (None: 404).
    pub incidents: RwLock<Option<Arc<dyn IncidentApi>>>,
    /// Re-reads and applies the configuration; `Err` leaves the old one running.
    pub reload: Arc<dyn Fn() -> ReloadFuture + Send + Sync>,
}

/// Builds the router with every endpoint of this server.
pub fn router(state: Arc<ServerState>) -> Router {
    let mutations = Router::new()
        .route("/api/v1/write", post(write::remote_write))
        .route("/-/reload", post(reload).put(reload))
        .route("/api/v2/alerts", post(amapi::post_alerts))
        .route("/api/v2/silences", post(amapi::post_silences))
        .route(
            "/api/v2/silence/{id}",
            axum::routing::delete(amapi::delete_silence),
        )
        .route("/api/day2/v1/deployments", post(deploy_api::create))
        .route(
            "/api/day2/v1/deployments/{id}/status",
            post(deploy_api::set_status),
        )
        .route("/api/day2/v1/runs", post(remediate_api::propose))
        .route(
            "/api/day2/v1/runs/{id}/approve",
            post(remediate_api::approve),
        )
        .route("/api/day2/v1/runs/{id}/reject", post(remediate_api::reject))
        .route(
            "/api/day2/v1/oncall/escalations/{id}/ack",
            post(oncall_api::ack),
        )
        .route(
            "/api/day2/v1/oncall/alerts/{fingerprint}/ack",
            post(oncall_api::ack_alert),
        )
        .route("/api/day2/v1/incidents", post(incident_api::create))
        .route(
            "/api/day2/v1/incidents/{id}/{action}",
            post(incident_api::act),
        )
        .route(
            "/api/day2/v1/status/maintenances",
            post(incident_api::put_maintenance),
        )
        .route(
            "/api/day2/v1/status/maintenances/{id}",
            axum::routing::delete(incident_api::delete_maintenance),
        )
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_mutation_auth,
        ));
    Router::new()
        .merge(mutations)
        .route(
            "/api/v1/query",
            get(query::instant_get).post(query::instant_post),
        )
        .route(
            "/api/v1/query_range",
            get(query::range_get).post(query::range_post),
        )
        .route(
            "/api/v1/format_query",
            get(query::format_query).post(query::format_query),
        )
        .route(
            "/api/v1/parse_query",
            get(query::parse_query).post(query::parse_query),
        )
        .route(
            "/api/v1/query_exemplars",
            get(query::query_exemplars).post(query::query_exemplars),
        )
        .route("/api/v1/status/buildinfo", get(query::buildinfo))
        .route("/api/v1/series", get(read::series).post(read::series_form))
        .route("/api/v1/labels", get(read::labels).post(read::labels_form))
        .route("/api/v1/label/{name}/values", get(read::label_values))
        .route("/api/v1/export", get(read::export))
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v2/alerts", get(amapi::get_alerts))
        .route("/api/v2/alerts/groups", get(amapi::get_groups))
        .route("/api/v2/silences", get(amapi::get_silences))
        .route("/api/v2/silence/{id}", get(amapi::get_silence))
        .route("/api/v2/status", get(amapi::status))
        .route("/api/v2/receivers", get(amapi::receivers))
        .route("/api/day2/v1/notifications", get(amapi::notifications))
        .route("/api/day2/v1/deployments", get(deploy_api::list))
        .route("/api/day2/v1/deployments/{id}", get(deploy_api::get))
        .route("/api/day2/v1/dora", get(deploy_api::dora))
        .route("/api/day2/v1/autoscaling", get(deploy_api::autoscaling))
        .route("/api/day2/v1/runbooks", get(remediate_api::runbooks))
        .route("/api/day2/v1/runs", get(remediate_api::runs))
        .route("/api/day2/v1/runs/{id}", get(remediate_api::run))
        .route("/api/day2/v1/audit", get(remediate_api::audit))
        .route("/api/day2/v1/oncall/who", get(oncall_api::who))
        .route(
            "/api/day2/v1/oncall/escalations",
            get(oncall_api::escalations),
        )
        .route(
            "/api/day2/v1/oncall/escalations/{id}",
            get(oncall_api::escalation),
        )
        // signed links: the token is the authority, a GET changes nothing
        .route(
            "/oncall/ack/{token}",
            get(oncall_api::ack_link_form).post(oncall_api::ack_link_confirm),
        )
        .route("/api/day2/v1/incidents", get(incident_api::list))
        .route("/api/day2/v1/incidents/{id}", get(incident_api::get))
        .route(
            "/api/day2/v1/incidents/{id}/postmortem",
            get(incident_api::postmortem),
        )
        .route(
            "/api/day2/v1/status/maintenances",
            get(incident_api::maintenances),
        )
        .route("/status", get(incident_api::status_html))
        .route("/status.json", get(incident_api::status_json))
        .route("/metrics", get(self_metrics))
        .route("/-/healthy", get(|| async { "day2 is Healthy.\n" }))
        .route("/-/ready", get(|| async { "day2 is Ready.\n" }))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observe_latency,
        ))
        .with_state(state)
}

/// Renders day2's own metrics (served at `/metrics`, also scraped in process).
pub fn render_metrics(state: &ServerState) -> String {
    let mut out = String::with_capacity(8192);
    state.metrics.render(&mut out);
    for source in &state.sources {
        source.render(&mut out);
    }
    out
}

async fn self_metrics(State(state): State<Arc<ServerState>>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        render_metrics(&state),
    )
        .into_response()
}

async fn targets(
    State(state): State<Arc<ServerState>>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> Response {
    let pairs = read::query_pairs(q);
    let which = api::param(&pairs, "state").unwrap_or("any").to_string();
    api::success(state.scrape_status.targets(&which))
}

async fn metadata(
    State(state): State<Arc<ServerState>>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> Response {
    let pairs = read::query_pairs(q);
    let metric = api::param(&pairs, "metric").filter(|m| !m.is_empty());
    let limit = api::param(&pairs, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    api::success(state.scrape_status.metadata(metric, limit))
}

async fn rules(
    State(state): State<Arc<ServerState>>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> Response {
    let pairs = read::query_pairs(q);
    let kind = api::param(&pairs, "type").unwrap_or("");
    if !matches!(kind, "" | "alert" | "record") {
        return api::ApiError::bad_data(format!(
            "invalid parameter \"type\": {kind:?} is not alert or record"
        ))
        .into_response();
    }
    let list = |k: &str| -> Vec<String> { api::params(&pairs, k).map(String::from).collect() };
    api::success(state.rules.rules(
        kind,
        &list("rule_name[]"),
        &list("rule_group[]"),
        &list("file[]"),
    ))
}

async fn alerts(State(state): State<Arc<ServerState>>) -> Response {
    api::success(state.rules.alerts())
}

async fn reload(State(state): State<Arc<ServerState>>) -> Response {
    match (state.reload)().await {
        Ok(()) => {
            state.metrics.reloads(true);
            (StatusCode::OK, "configuration reloaded\n").into_response()
        }
        Err(e) => {
            state.metrics.reloads(false);
            tracing::error!(error = %e, "configuration reload refused; the previous configuration keeps running");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed to reload config: {e}\n"),
            )
                .into_response()
        }
    }
}

/// Records request latency per matched route and status code.
async fn observe_latency(
    State(state): State<Arc<ServerState>>,
    req: Request,
    next: Next,
) -> Response {
    let handler = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".into());
    let start = Instant::now();
    let resp = next.run(req).await;
    state
        .metrics
        .observe_http(&handler, resp.status().as_u16(), start.elapsed());
    resp
}
