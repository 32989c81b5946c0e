//! Wiring of deployments into `day2 serve`: the service over the state
//! store, the loop that runs analyses when they fall due, the alert hub's
//! enricher (latest deployment of an alert's service), the API adapter and
//! `/metrics`.
//!
//! Rollbacks go through [`day2_deploy::RollbackTrigger`]; until the
//! remediation runtime is wired in, [`day2_deploy::NoRemediation`] records
//! "rollback runbook X: remediation is not configured" on the deployment.
//! To wire it: `DeployWire::service.set_rollback_trigger(...)` with an
//! adapter over the runbook runtime (and mark the deployment `rolled_back`
//! through `Deployments::mark` when the run finishes).

use std::sync::Arc;
use std::time::Duration;

use day2_alerthub::{Alert, AlertEnricher};
use day2_deploy::{Deployments, DeploymentsSection, NewDeployment, StatusChange};
use day2_server::deploy_api::{DeploymentQuery, FeatureError};
use day2_server::{DeploymentsApi, MetricsSource};
use day2_store::deploy::DeploymentFilter;
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::hubwire::HubCell;

/// Longest sleep of the analysis loop (the DORA gauges are refreshed with it).
const IDLE: Duration = Duration::from_secs(30);

/// Deployments in the running server.
pub struct DeployWire {
    pub service: Arc<Deployments>,
    wake: tokio::sync::Notify,
}

impl DeployWire {
    /// Opens the service and starts the analysis loop (which first
    /// evaluates whatever fell due while day2 was down).
    pub fn start(
        store: Arc<day2_store::Store>,
        engine: Arc<day2_promql::Engine>,
        db: Arc<dyn day2_model::Queryable>,
        config: &DeploymentsSection,
    ) -> anyhow::Result<Arc<DeployWire>> {
        let service = Deployments::open(store, engine, db, config.clone())?;
        service.set_rollback_trigger(Arc::new(day2_deploy::NoRemediation));
        let wire = Arc::new(DeployWire {
            service: Arc::new(service),
            wake: tokio::sync::Notify::new(),
        });
        let weak = Arc::downgrade(&wire);
        tokio::spawn(async move {
            while let Some(w) = weak.upgrade() {
                let s = w.service.clone();
                let next = tokio::task::spawn_blocking(move || s.run_due(Timestamp::now())).await;
                let sleep = match next {
                    Ok(Ok(Some(due))) => {
                        let ms = (due - Timestamp::now().as_millisecond()).max(0);
                        Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(IDLE)
                    }
                    Ok(Ok(None)) => IDLE,
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "running due deployment analyses failed; retrying");
                        Duration::from_secs(5)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "deployment analysis task failed");
                        Duration::from_secs(5)
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(sleep) => {}
                    _ = w.wake.notified() => {}
                }
            }
        });
        Ok(wire)
    }

    /// Applies the `deployments:` section and (re)attaches the alert
    /// enricher to the hub (a reload may have started a new one).
    pub fn apply(self: &Arc<Self>, config: &DeploymentsSection, hub: &HubCell) {
        self.service.set_config(config.clone());
        if let Some(h) = hub.read().clone() {
            h.register_enricher("deploy", Arc::new(DeployEnricher(self.service.clone())));
        }
        self.wake.notify_one();
    }
}

/// Annotates alerts with their service's latest deployment.
struct DeployEnricher(Arc<Deployments>);

impl AlertEnricher for DeployEnricher {
    fn enrich(&self, alert: &mut Alert) {
        for (k, v) in self.0.annotations(&alert.labels) {
            alert.annotations.insert(k, v);
        }
    }
}

fn feature(e: day2_deploy::Error) -> FeatureError {
    match e {
        day2_deploy::Error::BadRequest(m) => FeatureError::BadRequest(m),
        day2_deploy::Error::NotFound(m) => FeatureError::NotFound(m),
        day2_deploy::Error::Store(e) => FeatureError::Internal(e.to_string()),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, FeatureError> {
    serde_json::to_value(v).map_err(|e| FeatureError::Internal(e.to_string()))
}

impl DeploymentsApi for DeployWire {
    fn create(&self, body: &Value, by: &str) -> Result<Value, FeatureError> {
        let input: NewDeployment = serde_json::from_value(body.clone())
            .map_err(|e| FeatureError::BadRequest(format!("invalid deployment: {e}")))?;
        let d = self
            .service
            .create(input, by, Timestamp::now())
            .map_err(feature)?;
        self.wake.notify_one();
        to_json(&d)
    }

    fn list(&self, q: &DeploymentQuery) -> Result<Value, FeatureError> {
        let list = self
            .service
            .list(&DeploymentFilter {
                service: q.service.clone(),
                environment: q.environment.clone(),
                limit: q.limit,
                ..DeploymentFilter::default()
            })
            .map_err(feature)?;
        Ok(json!({ "deployments": to_json(&list)? }))
    }

    fn get(&self, id: i64) -> Result<Value, FeatureError> {
        to_json(&self.service.get(id).map_err(feature)?)
    }

    fn set_status(&self, id: i64, body: &Value, by: &str) -> Result<Value, FeatureError> {
        let change: StatusChange = serde_json::from_value(body.clone()).map_err(|e| {
            FeatureError::BadRequest(format!(
                "invalid status change (status: failed, rolled_back or succeeded; reason): {e}"
            ))
        })?;
        to_json(
            &self
                .service
                .mark(id, change, by, Timestamp::now())
                .map_err(feature)?,
        )
    }

    fn dora(
        &self,
        service: Option<&str>,
        environment: Option<&str>,
        window: Option<&str>,
    ) -> Result<Value, FeatureError> {
        let window = match window {
            None => self.service.config().dora.window,
            Some(w) => day2_model::parse_duration(w)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    FeatureError::BadRequest(format!(
                        "window: {w:?} is not a duration such as 30d or 12h"
                    ))
                })?,
        };
        let report = self
            .service
            .dora(service, environment, window, Timestamp::now())
            .map_err(feature)?;
        let mut v = to_json(&report)?;
        v["window"] = Value::String(day2_model::format_duration(window));
        Ok(v)
    }
}

/// DORA gauges and analysis counters for `/metrics`.
pub struct DeployMetrics(pub Arc<DeployWire>);

impl MetricsSource for DeployMetrics {
    fn render(&self, out: &mut String) {
        self.0.service.render_metrics(out);
    }
}
