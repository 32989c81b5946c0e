//! Wiring of deployments into `day2 serve`: the service over the state
//! store, the loop that runs analyses when they fall due and records how
//! rollback runs ended (woken by the remediation runtime when a run ends),
//! the alert hub's enricher (latest deployment of an alert's service), the
//! API adapter and `/metrics`. Rollbacks run as runbooks of the remediation
//! runtime (see `rollbackwire`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use day2_alerthub::{Alert, AlertEnricher};
use day2_deploy::{Deployments, DeploymentsSection, NewDeployment, StatusChange};
use day2_server::deploy_api::{DeploymentQuery, FeatureError, Marked};
use day2_server::{DeploymentsApi, MetricsSource};
use day2_store::deploy::DeploymentFilter;
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::hubwire::HubCell;
use crate::remediatewire::RemediationCell;

/// Longest sleep of the analysis loop (the DORA gauges are refreshed with it).
const IDLE: Duration = Duration::from_secs(30);

/// Deployments in the running server.
pub struct DeployWire {
    pub service: Arc<Deployments>,
    wake: tokio::sync::Notify,
    /// Its runs' ends wake the loop.
    remediation: RemediationCell,
    looping: AtomicBool,
}

impl DeployWire {
    /// Opens the service with rollbacks as runbook runs of `remediation`.
    /// The loop starts with the first [`DeployWire::apply`] (after
    /// remediation, so that rollbacks due at start find it running).
    pub fn start(
        store: Arc<day2_store::Store>,
        engine: Arc<day2_promql::Engine>,
        db: Arc<dyn day2_model::Queryable>,
        config: &DeploymentsSection,
        remediation: RemediationCell,
    ) -> anyhow::Result<Arc<DeployWire>> {
        let service = Deployments::open(store.clone(), engine, db, config.clone())?;
        service.set_rollback_trigger(Arc::new(crate::rollbackwire::RunbookRollback {
            remediation: remediation.clone(),
            store,
        }));
        Ok(Arc::new(DeployWire {
            service: Arc::new(service),
            wake: tokio::sync::Notify::new(),
            remediation,
            looping: AtomicBool::new(false),
        }))
    }

    /// Runs due analyses and follows rollback runs (first whatever fell due
    /// or ended while day2 was down), then sleeps until the next analysis
    /// is due, a deployment or reload wakes it, or a remediation run ends.
    async fn run(weak: Weak<DeployWire>) {
        while let Some(w) = weak.upgrade() {
            // subscribed before reading, so that no run's end is missed
            let mut ended = w.remediation.read().as_ref().map(|r| r.watch_finished());
            if let Some(rx) = ended.as_mut() {
                rx.borrow_and_update();
            }
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
            let run_ended = async {
                let changed = match ended.as_mut() {
                    Some(rx) => rx.changed().await.is_ok(),
                    None => false,
                };
                if !changed {
                    // no runtime, or it stopped: a reload wakes the loop
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = w.wake.notified() => {}
                _ = run_ended => {}
            }
        }
    }

    /// Wakes the loop (it refreshes the DORA gauges), e.g. when an
    /// incident, an outage for DORA, changed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Applies the `deployments:` section and (re)attaches the alert
    /// enricher to the hub (a reload may have started a new one). Call it
    /// after remediation is applied.
    pub fn apply(self: &Arc<Self>, config: &DeploymentsSection, hub: &HubCell) {
        self.service.set_config(config.clone());
        if let Some(h) = hub.read().clone() {
            h.register_enricher("deploy", Arc::new(DeployEnricher(self.service.clone())));
        }
        if !self.looping.swap(true, Ordering::SeqCst) {
            tokio::spawn(DeployWire::run(Arc::downgrade(self)));
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
        day2_deploy::Error::Conflict(m) => FeatureError::Conflict(m),
        day2_deploy::Error::Store(e) => FeatureError::Internal(e.to_string()),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, FeatureError> {
    serde_json::to_value(v).map_err(|e| FeatureError::Internal(e.to_string()))
}

impl DeploymentsApi for DeployWire {
    fn create(
        &self,
        body: &Value,
        idempotency_key: Option<&str>,
        by: &str,
    ) -> Result<Marked, FeatureError> {
        let mut input: NewDeployment = serde_json::from_value(body.clone())
            .map_err(|e| FeatureError::BadRequest(format!("invalid deployment: {e}")))?;
        match (idempotency_key, &input.idempotency_key) {
            (Some(h), Some(b)) if h != b => {
                return Err(FeatureError::BadRequest(format!(
                    "idempotency_key: {b:?} differs from the Idempotency-Key header {h:?}"
                )));
            }
            (Some(h), _) => input.idempotency_key = Some(h.to_string()),
            (None, _) => {}
        }
        let r = self
            .service
            .record(input, by, Timestamp::now())
            .map_err(feature)?;
        if r.created {
            self.wake.notify_one();
        }
        Ok(Marked {
            deployment: to_json(&r.deployment)?,
            created: r.created,
        })
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
