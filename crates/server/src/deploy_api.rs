//! day2's deployment, DORA and autoscaling API (`/api/day2/v1/...`):
//! handlers translate HTTP to calls on the [`DeploymentsApi`] and
//! [`AutoscalingApi`] trait objects (JSON in and out, called on blocking
//! threads); errors are `{"error": "..."}` with 400, 404, 409 or 500.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::ServerState;
use crate::auth::Principal;

/// Errors of the feature APIs, mapped to 400, 404 and 500.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with what was recorded (409).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Internal(String),
}

/// A recorded deployment, and whether this request recorded it.
#[derive(Debug, Clone)]
pub struct Marked {
    pub deployment: Value,
    /// False: a retry with a known idempotency key (200 instead of 201).
    pub created: bool,
}

/// Which deployments to list.
#[derive(Debug, Clone, Default)]
pub struct DeploymentQuery {
    pub service: Option<String>,
    pub environment: Option<String>,
    pub limit: usize,
}

/// Deployments and DORA, as the API sees them. Methods may block.
pub trait DeploymentsApi: Send + Sync {
    /// `POST /api/day2/v1/deployments`: records a deployment marked by
    /// `by`; `idempotency_key` is the `Idempotency-Key` header.
    fn create(
        &self,
        body: &Value,
        idempotency_key: Option<&str>,
        by: &str,
    ) -> Result<Marked, FeatureError>;
    /// `GET /api/day2/v1/deployments`: newest first.
    fn list(&self, query: &DeploymentQuery) -> Result<Value, FeatureError>;
    /// `GET /api/day2/v1/deployments/{id}` (with its analysis).
    fn get(&self, id: i64) -> Result<Value, FeatureError>;
    /// `POST /api/day2/v1/deployments/{id}/status`.
    fn set_status(&self, id: i64, body: &Value, by: &str) -> Result<Value, FeatureError>;
    /// `GET /api/day2/v1/dora?service=&environment=&window=`.
    fn dora(
        &self,
        service: Option<&str>,
        environment: Option<&str>,
        window: Option<&str>,
    ) -> Result<Value, FeatureError>;
}

/// Autoscaling policies and their decisions. Methods may block.
pub trait AutoscalingApi: Send + Sync {
    /// `GET /api/day2/v1/autoscaling?policy=&all=&limit=`.
    fn status(&self, policy: Option<&str>, all: bool, limit: usize) -> Result<Value, FeatureError>;
}

fn err(e: FeatureError) -> Response {
    let (code, msg) = match e {
        FeatureError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
        FeatureError::NotFound(m) => (StatusCode::NOT_FOUND, m),
        FeatureError::Conflict(m) => (StatusCode::CONFLICT, m),
        FeatureError::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, m),
    };
    (code, axum::Json(serde_json::json!({ "error": msg }))).into_response()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FeatureError> + Send + 'static,
) -> Result<T, FeatureError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| FeatureError::Internal(e.to_string()))?
}

fn reply(code: StatusCode, r: Result<Value, FeatureError>) -> Response {
    match r {
        Ok(v) => (code, axum::Json(v)).into_response(),
        Err(e) => err(e),
    }
}

fn deployments(st: &ServerState) -> Result<Arc<dyn DeploymentsApi>, FeatureError> {
    st.deployments
        .read()
        .clone()
        .ok_or_else(|| FeatureError::NotFound("deployments are not running".into()))
}

fn param(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
}

fn limit(pairs: &[(String, String)], default: usize) -> Result<usize, FeatureError> {
    match param(pairs, "limit") {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(n),
            _ => Err(FeatureError::BadRequest(format!(
                "limit: {v:?} is not a number from 1 to 1000"
            ))),
        },
    }
}

fn body_json(body: &Bytes) -> Result<Value, FeatureError> {
    serde_json::from_slice(body)
        .map_err(|e| FeatureError::BadRequest(format!("invalid JSON body: {e}")))
}

fn id(raw: &str) -> Result<i64, FeatureError> {
    raw.parse::<i64>()
        .map_err(|_| FeatureError::NotFound(format!("deployment {raw:?} not found")))
}

/// `POST /api/day2/v1/deployments`: 201 recorded, 200 a retry with a
/// known `Idempotency-Key`, 409 that key for another request.
pub async fn create(
    State(st): State<Arc<ServerState>>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let by = principal.map_or_else(|| "unknown".to_string(), |p| p.0.name);
    let r = async {
        let api = deployments(&st)?;
        let key = match headers.get("idempotency-key") {
            None => None,
            Some(h) => Some(h.to_str().map(str::to_string).map_err(|_| {
                FeatureError::BadRequest(
                    "Idempotency-Key header: only printable ASCII characters are allowed".into(),
                )
            })?),
        };
        let v = body_json(&body)?;
        blocking(move || api.create(&v, key.as_deref(), &by)).await
    }
    .await;
    match r {
        Ok(m) if m.created => (StatusCode::CREATED, axum::Json(m.deployment)).into_response(),
        Ok(m) => (StatusCode::OK, axum::Json(m.deployment)).into_response(),
        Err(e) => err(e),
    }
}

/// `GET /api/day2/v1/deployments?service=&environment=&limit=`
pub async fn list(State(st): State<Arc<ServerState>>, RawQuery(q): RawQuery) -> Response {
    let pairs = crate::read::query_pairs(q);
    let r = async {
        let api = deployments(&st)?;
        let query = DeploymentQuery {
            service: param(&pairs, "service"),
            environment: param(&pairs, "environment"),
            limit: limit(&pairs, 100)?,
        };
        blocking(move || api.list(&query)).await
    }
    .await;
    reply(StatusCode::OK, r)
}

/// `GET /api/day2/v1/deployments/{id}`
pub async fn get(State(st): State<Arc<ServerState>>, Path(raw): Path<String>) -> Response {
    let r = async {
        let api = deployments(&st)?;
        let id = id(&raw)?;
        blocking(move || api.get(id)).await
    }
    .await;
    reply(StatusCode::OK, r)
}

/// `POST /api/day2/v1/deployments/{id}/status`
pub async fn set_status(
    State(st): State<Arc<ServerState>>,
    principal: Option<Extension<Principal>>,
    Path(raw): Path<String>,
    body: Bytes,
) -> Response {
    let by = principal.map_or_else(|| "unknown".to_string(), |p| p.0.name);
    let r = async {
        let api = deployments(&st)?;
        let id = id(&raw)?;
        let v = body_json(&body)?;
        blocking(move || api.set_status(id, &v, &by)).await
    }
    .await;
    reply(StatusCode::OK, r)
}

/// `GET /api/day2/v1/dora?service=&environment=&window=`
pub async fn dora(State(st): State<Arc<ServerState>>, RawQuery(q): RawQuery) -> Response {
    let pairs = crate::read::query_pairs(q);
    let r = async {
        let api = deployments(&st)?;
        blocking(move || {
            api.dora(
                param(&pairs, "service").as_deref(),
                param(&pairs, "environment").as_deref(),
                param(&pairs, "window").as_deref(),
            )
        })
        .await
    }
    .await;
    reply(StatusCode::OK, r)
}

/// `GET /api/day2/v1/autoscaling?policy=&all=true&limit=`
pub async fn autoscaling(State(st): State<Arc<ServerState>>, RawQuery(q): RawQuery) -> Response {
    let pairs = crate::read::query_pairs(q);
    let r = async {
        let api = st
            .autoscaling
            .read()
            .clone()
            .ok_or_else(|| FeatureError::NotFound("autoscaling is not running".into()))?;
        let all = match param(&pairs, "all").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(v) => {
                return Err(FeatureError::BadRequest(format!(
                    "all: {v:?} is not true or false"
                )));
            }
        };
        let limit = limit(&pairs, 100)?;
        let policy = param(&pairs, "policy");
        blocking(move || api.status(policy.as_deref(), all, limit)).await
    }
    .await;
    reply(StatusCode::OK, r)
}
