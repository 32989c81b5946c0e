//! A policy with a `kubernetes` target against a fake API server holding
//! the recorded API contract of the remediation tests: the current count is
//! read from the scale subresource, the decision is patched into it as
//! `kubectl scale` does, and API errors are recorded as the evaluation's error.

#[path = "../../remediate/tests/common/kube_api.rs"]
mod kube_api;

use std::sync::Arc;
use std::time::Duration;

use day2_alerthub::EgressPolicy;
use day2_autoscale::{AutoscalingSection, KubeScaler, PolicyConfig, Scaler, TargetConfig};
use day2_model::Labels;
use day2_promql::memstore::MemStore;
use day2_remediate::kubernetes::{KubeExecutor, KubeSource};
use day2_store::Store;
use jiff::Timestamp;
use kube_api::{Expect, assert_kept, fake_api};
use serde_json::json;

const T: i64 = 1_700_000_000_000;
const SCALE: &str = "/apis/apps/v1/namespaces/web/deployments/api/scale";

#[test]
fn a_kubernetes_target_is_read_and_scaled_through_the_scale_subresource() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let get = |status, reply| Expect {
        method: "GET",
        path: SCALE,
        query: &[],
        content_type: None,
        body: None,
        status,
        reply,
    };
    let (contract, kubeconfig) = rt.block_on(fake_api(
        dir.path(),
        vec![
            // spec.replicas is 5; twice the target per replica asks for 10
            get(200, "scale-api.json"),
            Expect {
                method: "PATCH",
                path: SCALE,
                query: &[("fieldManager", "day2")],
                content_type: Some("application/merge-patch+json"),
                body: Some(json!({"spec": {"replicas": 10}})),
                status: 200,
                reply: "scale-api.json",
            },
            get(404, "status-404.json"),
        ],
    ));
    let mut m = MemStore::new();
    m.add(
        Labels::from_pairs([("__name__", "load"), ("app", "api")]),
        T,
        20.0,
    );
    let section: AutoscalingSection = day2_yamlerr::from_str(
        r#"
policies:
  - name: api
    metric: load{app="api"}
    target_value: 10
    min: 1
    max: 12
    target: { kind: kubernetes, namespace: web, resource: deployment/api }
"#,
        "day2.yml",
    )
    .unwrap();
    section.validate().unwrap();
    let client = KubeExecutor {
        source: KubeSource::Kubeconfig {
            path: kubeconfig,
            context: None,
        },
        egress: EgressPolicy::from_list(&["127.0.0.0/8".into()]).unwrap(),
        field_manager: "day2".into(),
        timeout: Duration::from_secs(10),
    };
    let handle = rt.handle().clone();
    let make = move |p: &PolicyConfig| -> Result<Arc<dyn Scaler>, String> {
        let TargetConfig::Kubernetes {
            namespace,
            resource,
        } = &p.target
        else {
            return Err("not a kubernetes target".into());
        };
        KubeScaler::new(
            client.clone(),
            namespace.as_deref(),
            resource,
            handle.clone(),
        )
        .map(|s| Arc::new(s) as Arc<dyn Scaler>)
    };
    let store = Arc::new(Store::open_dir(&dir.path().join("state")).unwrap());
    let engine = Arc::new(day2_promql::Engine::new(Default::default()));
    let a = day2_autoscale::Autoscaler::new(store, engine, Arc::new(m));
    let now = Timestamp::from_millisecond(T).unwrap();
    a.apply(&section, &make, now).unwrap();

    let d = a.evaluate("api", now).unwrap();
    assert_eq!(
        (d.action.as_str(), d.current, d.desired),
        ("scale_up", Some(5), Some(10)),
        "{}",
        d.reason
    );
    let d = a.evaluate("api", now).unwrap();
    assert_eq!(d.action, "error");
    assert!(
        d.reason
            .starts_with("current replicas: deployment web/api not found (404:"),
        "{}",
        d.reason
    );
    let status = a.status_json(Some("api"), false, 10).unwrap();
    assert_eq!(
        status["policies"][0]["target"],
        "kubernetes deployment/api in web"
    );
    assert_kept(&contract);
}
