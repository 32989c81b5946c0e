//! Wiring of autoscaling into `day2 serve`: one task per policy evaluating
//! it every interval on a blocking thread, the actuators, the API adapter
//! and `/metrics`.
//!
//! `exec` targets run through `day2_remediate::exec`; `kubernetes` targets
//! through the remediation runtime's Kubernetes client (the cluster of
//! `remediation.kubernetes`, its egress allowlist), plugged in with
//! [`AutoscaleWire::set_kubernetes`] before each apply.

use std::sync::Arc;

use day2_autoscale::{
    Autoscaler, AutoscalingSection, ExecScaler, KubeScaler, KubernetesScalers, PolicyConfig,
    Scaler, TargetConfig,
};
use day2_server::deploy_api::FeatureError;
use day2_server::{AutoscalingApi, MetricsSource};
use jiff::Timestamp;
use parking_lot::Mutex;
use serde_json::Value;

use crate::remediatewire::RemediationCell;

/// Autoscaling in the running server.
pub struct AutoscaleWire {
    pub autoscaler: Arc<Autoscaler>,
    /// The Kubernetes actuator (the remediation runtime's client); `None`
    /// without `remediation.kubernetes`.
    kubernetes: parking_lot::RwLock<Option<KubernetesScalers>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl AutoscaleWire {
    pub fn new(
        store: Arc<day2_store::Store>,
        engine: Arc<day2_promql::Engine>,
        db: Arc<dyn day2_model::Queryable>,
    ) -> Arc<AutoscaleWire> {
        Arc::new(AutoscaleWire {
            autoscaler: Arc::new(Autoscaler::new(store, engine, db)),
            kubernetes: parking_lot::RwLock::new(None),
            tasks: Mutex::new(Vec::new()),
        })
    }

    fn scaler(&self, p: &PolicyConfig) -> Result<Arc<dyn Scaler>, String> {
        match &p.target {
            TargetConfig::Exec { .. } => {
                let initial = self
                    .autoscaler
                    .last_set(&p.name)
                    .map_err(|e| e.to_string())?
                    .unwrap_or(p.min);
                let rt = tokio::runtime::Handle::try_current()
                    .map_err(|_| "no async runtime to run commands on".to_string())?;
                ExecScaler::new(&p.target, initial, rt)
                    .map(|s| Arc::new(s) as Arc<dyn Scaler>)
                    .ok_or_else(|| "not an exec target".to_string())
            }
            TargetConfig::Kubernetes {
                namespace,
                resource,
            } => match &*self.kubernetes.read() {
                Some(make) => make(namespace.as_deref(), resource),
                None => Err(format!(
                    "kubernetes target {resource}: no cluster to scale it in (remediation.kubernetes: kubeconfig or in_cluster)"
                )),
            },
        }
    }

    /// Plugs in (or removes) the Kubernetes actuator; applies from the next `apply`.
    pub fn set_kubernetes(&self, make: Option<KubernetesScalers>) {
        *self.kubernetes.write() = make;
    }

    /// Replaces the policies and restarts their evaluation tasks.
    pub fn apply(self: &Arc<Self>, section: &AutoscalingSection) {
        let mut tasks = self.tasks.lock();
        for t in tasks.drain(..) {
            t.abort();
        }
        let make = |p: &PolicyConfig| self.scaler(p);
        if let Err(e) = self.autoscaler.apply(section, &make, Timestamp::now()) {
            tracing::error!(error = %e, "autoscaling policies could not be loaded; none run");
            return;
        }
        for (name, interval) in self.autoscaler.schedule() {
            let a = self.autoscaler.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tick.tick().await;
                    let (a, n) = (a.clone(), name.clone());
                    match tokio::task::spawn_blocking(move || a.evaluate(&n, Timestamp::now()))
                        .await
                    {
                        Ok(Ok(_)) => {}
                        Ok(Err(day2_autoscale::Error::UnknownPolicy(_))) => break,
                        Ok(Err(e)) => {
                            tracing::error!(policy = %name, error = %e, "autoscaling evaluation could not be recorded")
                        }
                        Err(e) => tracing::error!(policy = %name, error = %e, "autoscaling task failed"),
                    }
                }
            }));
        }
        if !section.policies.is_empty() {
            tracing::info!(
                policies = section.policies.len(),
                "autoscaling policies running"
            );
        }
    }
}

/// Kubernetes scalers over the running remediation runtime's client, when
/// `remediation.kubernetes` is configured.
pub fn kubernetes_scalers(remediation: &RemediationCell) -> Option<KubernetesScalers> {
    let client = remediation
        .read()
        .as_ref()?
        .settings()
        .executors
        .kube
        .clone()?;
    let rt = tokio::runtime::Handle::try_current().ok()?;
    Some(Arc::new(move |namespace, resource| {
        KubeScaler::new(client.clone(), namespace, resource, rt.clone())
            .map(|s| Arc::new(s) as Arc<dyn Scaler>)
    }))
}

/// A `kubernetes` target needs the cluster of `remediation.kubernetes`;
/// errors are (field path in day2.yml, message).
pub fn check_config(
    autoscaling: &AutoscalingSection,
    remediation: Option<&day2_remediate::RemediationConfig>,
) -> Result<(), (String, String)> {
    if remediation.is_some_and(|r| r.kubernetes.is_some()) {
        return Ok(());
    }
    match autoscaling
        .policies
        .iter()
        .position(|p| matches!(p.target, TargetConfig::Kubernetes { .. }))
    {
        Some(i) => Err((
            format!("autoscaling.policies[{i}].target"),
            "a kubernetes target needs the cluster of remediation.kubernetes (kubeconfig or in_cluster: true)".into(),
        )),
        None => Ok(()),
    }
}

impl AutoscalingApi for AutoscaleWire {
    fn status(&self, policy: Option<&str>, all: bool, limit: usize) -> Result<Value, FeatureError> {
        self.autoscaler
            .status_json(policy, all, limit)
            .map_err(|e| match e {
                day2_autoscale::Error::UnknownPolicy(_) => FeatureError::NotFound(e.to_string()),
                other => FeatureError::Internal(other.to_string()),
            })
    }
}

/// Replica gauges and scaling counters for `/metrics`.
pub struct AutoscaleMetrics(pub Arc<AutoscaleWire>);

impl MetricsSource for AutoscaleMetrics {
    fn render(&self, out: &mut String) {
        self.0.autoscaler.render_metrics(out);
    }
}
