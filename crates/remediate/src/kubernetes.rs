//! The `kubernetes` executor: scale a deployment, restart its rollout and
//! undo it to the previous revision, through the API server with the `kube`
//! crate, sending the requests `kubectl` sends:
//!
//! - scale: `PATCH .../deployments/{name}/scale`, merge patch
//!   `{"spec":{"replicas":N}}`;
//! - rollout restart: strategic merge patch of the pod template annotation
//!   `kubectl.kubernetes.io/restartedAt`;
//! - rollout undo: read the deployment, list the ReplicaSets its selector
//!   matches and it controls, take the one with the second highest
//!   `deployment.kubernetes.io/revision`, and JSON-patch its pod template
//!   (without `pod-template-hash`) and annotations into the deployment.
//!
//! The API server's host is checked against the egress allowlist before
//! each step (all its addresses; the connection itself is made by `kube`).
//!
//! Autoscaling uses the same client through [`KubeExecutor::replicas`]
//! (`GET .../{name}/scale`) and [`KubeExecutor::set_replicas`] (the scale
//! patch above) on deployments, statefulsets and replicasets.

use crate::plan::KubeRequest;
use crate::run::StepReport;
use crate::runbook::KubeAction;
use day2_alerthub::EgressPolicy;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Deployment annotations a rollback keeps from the deployment rather than
/// taking from the ReplicaSet (kubectl's list).
const ANNOTATIONS_TO_SKIP: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// Where the cluster's address and credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeSource {
    /// A kubeconfig file and optionally one of its contexts.
    Kubeconfig {
        path: PathBuf,
        context: Option<String>,
    },
    /// The pod's service account (`KUBERNETES_SERVICE_HOST`, the token file).
    InCluster,
}

#[derive(Debug, Clone)]
pub struct KubeExecutor {
    pub source: KubeSource,
    pub egress: EgressPolicy,
    /// `fieldManager` of every write.
    pub field_manager: String,
    /// Connect and read timeout of each request.
    pub timeout: Duration,
}

fn api_error(e: kube::Error, what: &str, verb: &str) -> String {
    match e {
        kube::Error::Api(s) => {
            let detail = if s.message.is_empty() {
                s.reason.clone()
            } else {
                s.message.clone()
            };
            match s.code {
                404 => format!("{what} not found (404: {detail})"),
                409 => format!(
                    "conflict: {what} changed while being updated (409: {detail}); the step may be retried"
                ),
                403 => format!("forbidden: day2 may not {verb} {what} (403: {detail})"),
                401 => format!(
                    "unauthorized: the API server refused day2's credentials (401: {detail})"
                ),
                c => format!("{verb} {what}: the API server answered {c}: {detail}"),
            }
        }
        other => format!("{verb} {what}: {other}"),
    }
}

/// A workload with a scale subresource, as `kubectl scale KIND/NAME` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleKind {
    Deployment,
    StatefulSet,
    ReplicaSet,
}

impl ScaleKind {
    /// The kind as `kubectl` accepts it (singular, plural or short name).
    pub fn parse(kind: &str) -> Option<ScaleKind> {
        match kind.to_ascii_lowercase().as_str() {
            "deployment" | "deployments" | "deploy" => Some(ScaleKind::Deployment),
            "statefulset" | "statefulsets" | "sts" => Some(ScaleKind::StatefulSet),
            "replicaset" | "replicasets" | "rs" => Some(ScaleKind::ReplicaSet),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ScaleKind::Deployment => "deployment",
            ScaleKind::StatefulSet => "statefulset",
            ScaleKind::ReplicaSet => "replicaset",
        }
    }
}

/// The scale subresource of one workload.
enum ScaleApi {
    Deployment(Api<Deployment>),
    StatefulSet(Api<StatefulSet>),
    ReplicaSet(Api<ReplicaSet>),
}

impl ScaleApi {
    fn new(client: Client, kind: ScaleKind, namespace: Option<&str>) -> ScaleApi {
        fn api<K>(client: Client, namespace: Option<&str>) -> Api<K>
        where
            K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
            <K as kube::Resource>::DynamicType: Default,
        {
            match namespace {
                Some(ns) => Api::namespaced(client, ns),
                None => Api::default_namespaced(client),
            }
        }
        match kind {
            ScaleKind::Deployment => ScaleApi::Deployment(api(client, namespace)),
            ScaleKind::StatefulSet => ScaleApi::StatefulSet(api(client, namespace)),
            ScaleKind::ReplicaSet => ScaleApi::ReplicaSet(api(client, namespace)),
        }
    }

    async fn get(&self, name: &str) -> Result<Scale, kube::Error> {
        match self {
            ScaleApi::Deployment(a) => a.get_scale(name).await,
            ScaleApi::StatefulSet(a) => a.get_scale(name).await,
            ScaleApi::ReplicaSet(a) => a.get_scale(name).await,
        }
    }

    async fn patch(&self, name: &str, pp: &PatchParams, replicas: u32) -> Result<(), kube::Error> {
        let body = json!({"spec": {"replicas": replicas}});
        let patch = Patch::Merge(&body);
        match self {
            ScaleApi::Deployment(a) => a.patch_scale(name, pp, &patch).await.map(drop),
            ScaleApi::StatefulSet(a) => a.patch_scale(name, pp, &patch).await.map(drop),
            ScaleApi::ReplicaSet(a) => a.patch_scale(name, pp, &patch).await.map(drop),
        }
    }
}

/// A label selector as `kubectl` writes it in `?labelSelector=`.
fn selector_string(
    sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> Result<String, String> {
    let mut parts = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        parts.push(format!("{k}={v}"));
    }
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default();
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({})", e.key, values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, values.join(",")),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            op => return Err(format!("unknown selector operator {op:?}")),
        });
    }
    if parts.is_empty() {
        return Err("the deployment has an empty selector".into());
    }
    Ok(parts.join(","))
}

fn scale_what(kind: ScaleKind, namespace: &str, name: &str) -> String {
    format!("{} {namespace}/{name}", kind.as_str())
}

fn revision(rs: &ReplicaSet) -> Option<i64> {
    rs.metadata
        .annotations
        .as_ref()?
        .get(REVISION)?
        .parse()
        .ok()
}

fn without_hash(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    if let Some(meta) = t.metadata.as_mut()
        && let Some(labels) = meta.labels.as_mut()
    {
        labels.remove(POD_TEMPLATE_HASH);
    }
    t
}

impl KubeExecutor {
    pub async fn execute(&self, req: &KubeRequest, now: Timestamp) -> StepReport {
        match self.run(req, now).await {
            Ok(outcome) => StepReport::ok(outcome),
            Err(e) => StepReport::failed(e),
        }
    }

    async fn run(&self, req: &KubeRequest, now: Timestamp) -> Result<String, String> {
        let client = self.client().await?;
        let (ns, name) = (req.namespace.as_str(), req.deployment.as_str());
        let what = format!("deployment {ns}/{name}");
        let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
        let pp = self.patch_params();
        match req.action {
            KubeAction::Scale => {
                let n = req.replicas.ok_or("scale needs replicas")?;
                ScaleApi::new(client, ScaleKind::Deployment, Some(ns))
                    .patch(name, &pp, n)
                    .await
                    .map_err(|e| api_error(e, &what, "scale"))?;
                Ok(format!("scaled {what} to {n} replicas"))
            }
            KubeAction::RolloutRestart => {
                // kubectl writes RFC 3339 with whole seconds
                let at = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
                let patch = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: at}}}}});
                api.patch(name, &pp, &Patch::Strategic(&patch))
                    .await
                    .map_err(|e| api_error(e, &what, "restart"))?;
                Ok(format!("restarted {what} (restartedAt {at})"))
            }
            KubeAction::RolloutUndo => self.undo(&client, &api, ns, name, &what).await,
        }
    }

    async fn undo(
        &self,
        client: &Client,
        api: &Api<Deployment>,
        ns: &str,
        name: &str,
        what: &str,
    ) -> Result<String, String> {
        let d = api
            .get(name)
            .await
            .map_err(|e| api_error(e, what, "read"))?;
        let spec = d.spec.as_ref().ok_or("the deployment has no spec")?;
        if spec.paused == Some(true) {
            return Err(format!(
                "{what} is paused: resume it first (kubectl rollout resume) and retry"
            ));
        }
        let selector = selector_string(&spec.selector)?;
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
        let list = rs_api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| api_error(e, &format!("replicasets of {what}"), "list"))?;
        let owned = list.items.into_iter().filter(|rs| {
            rs.metadata.owner_references.iter().flatten().any(|o| {
                o.controller == Some(true)
                    && o.kind == "Deployment"
                    && !uid.is_empty()
                    && o.uid == uid
            })
        });
        // The latest and the one before it, by revision.
        let mut latest: Option<(i64, ReplicaSet)> = None;
        let mut previous: Option<(i64, ReplicaSet)> = None;
        for rs in owned {
            let Some(v) = revision(&rs) else { continue };
            match &latest {
                Some((l, _)) if v <= *l => {
                    if previous.as_ref().is_none_or(|(p, _)| v > *p) {
                        previous = Some((v, rs));
                    }
                }
                _ => {
                    previous = latest.take();
                    latest = Some((v, rs));
                }
            }
        }
        let Some((rev, rs)) = previous else {
            return Err(format!("no rollout history found for {what}"));
        };
        let template = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .map(without_hash)
            .ok_or_else(|| format!("replicaset of revision {rev} has no pod template"))?;
        if template == without_hash(&spec.template) {
            return Ok(format!(
                "skipped rollback of {what} (current template already matches revision {rev})"
            ));
        }
        let mut annotations: BTreeMap<String, String> = BTreeMap::new();
        let current = d.metadata.annotations.clone().unwrap_or_default();
        for k in ANNOTATIONS_TO_SKIP {
            if let Some(v) = current.get(*k) {
                annotations.insert(k.to_string(), v.clone());
            }
        }
        for (k, v) in rs.metadata.annotations.clone().unwrap_or_default() {
            if !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
                annotations.insert(k, v);
            }
        }
        let patch = json!([
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations},
        ]);
        let uri = format!(
            "/apis/apps/v1/namespaces/{ns}/deployments/{name}?fieldManager={}",
            crate::plan::percent_encode(&self.field_manager)
        );
        let req = http::Request::patch(uri)
            .header("content-type", "application/json-patch+json")
            .header("accept", "application/json")
            .body(serde_json::to_vec(&patch).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        client
            .request::<Deployment>(req)
            .await
            .map_err(|e| api_error(e, what, "roll back"))?;
        Ok(format!("rolled back {what} to revision {rev}"))
    }

    fn patch_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(self.field_manager.clone()),
            ..Default::default()
        }
    }

    /// The replica count a workload's scale subresource asks for
    /// (`spec.replicas`, what `kubectl scale` and the HPA set). Without a
    /// namespace, the kubeconfig context's (or the pod's) namespace.
    pub async fn replicas(
        &self,
        kind: ScaleKind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<u32, String> {
        let client = self.client().await?;
        let what = scale_what(kind, namespace.unwrap_or(client.default_namespace()), name);
        let scale = ScaleApi::new(client, kind, namespace)
            .get(name)
            .await
            .map_err(|e| api_error(e, &what, "read the scale of"))?;
        let n = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
        u32::try_from(n).map_err(|_| format!("{what}: the API server reported {n} replicas"))
    }

    /// Sets a workload's replica count through its scale subresource, as
    /// `kubectl scale` does.
    pub async fn set_replicas(
        &self,
        kind: ScaleKind,
        namespace: Option<&str>,
        name: &str,
        replicas: u32,
    ) -> Result<(), String> {
        let client = self.client().await?;
        let what = scale_what(kind, namespace.unwrap_or(client.default_namespace()), name);
        ScaleApi::new(client, kind, namespace)
            .patch(name, &self.patch_params(), replicas)
            .await
            .map_err(|e| api_error(e, &what, "scale"))
    }

    /// A client for the configured cluster, once its host passed the egress check.
    async fn client(&self) -> Result<Client, String> {
        // built without a default TLS provider: install ours once
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut config = match &self.source {
            KubeSource::Kubeconfig { path, context } => {
                let kc = kube::config::Kubeconfig::read_from(path)
                    .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?;
                let opts = kube::config::KubeConfigOptions {
                    context: context.clone(),
                    ..Default::default()
                };
                kube::Config::from_custom_kubeconfig(kc, &opts)
                    .await
                    .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?
            }
            KubeSource::InCluster => {
                kube::Config::incluster().map_err(|e| format!("in-cluster configuration: {e}"))?
            }
        };
        config.connect_timeout = Some(self.timeout);
        config.read_timeout = Some(self.timeout);
        config.write_timeout = Some(self.timeout);
        // one request per call: the runbook's guardrails decide about retries
        config.default_retry = false;
        let uri = &config.cluster_url;
        let host = uri.host().ok_or("the cluster URL has no host")?.to_string();
        let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
            Some("http") => 80,
            _ => 443,
        });
        self.egress.resolve(&host, port).await.map_err(|e| {
            format!(
                "API server: {}",
                e.replace("alertmanager.egress.allow", "remediation.egress.allow")
            )
        })?;
        Client::try_from(config).map_err(|e| format!("Kubernetes client: {e}"))
    }
}
