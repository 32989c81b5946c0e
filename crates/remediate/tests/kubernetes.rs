//! The kubernetes executor against a recorded API contract: a loopback fake
//! API server checks method, path, query, content type, authorization and
//! body of every request against what kubectl sends for scale, rollout
//! restart and rollout undo, and answers with recorded JSON
//! (`testdata/k8s/`, written from the Kubernetes API reference), including
//! 404, 409 and 403 replies; and the scale subresource autoscaling reads
//! and sets.

mod common;
#[path = "common/kube_api.rs"]
mod kube_api;

use common::*;
use day2_alerthub::EgressPolicy;
use day2_remediate::driver::Executors;
use day2_remediate::kubernetes::{KubeExecutor, KubeSource, ScaleKind};
use day2_remediate::runbook::KubeAction;
use day2_remediate::{KubeRequest, Proposal, RunState, Runs};
use jiff::Timestamp;
use kube_api::{Expect, assert_kept, fake_api};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

fn executor(kubeconfig: &Path, egress: EgressPolicy) -> KubeExecutor {
    KubeExecutor {
        source: KubeSource::Kubeconfig {
            path: kubeconfig.to_path_buf(),
            context: None,
        },
        egress,
        field_manager: "day2".into(),
        timeout: Duration::from_secs(10),
    }
}

fn loopback() -> EgressPolicy {
    EgressPolicy::from_list(&["127.0.0.0/8".into()]).unwrap()
}

fn req(action: KubeAction, deployment: &str, replicas: Option<u32>) -> KubeRequest {
    KubeRequest {
        action,
        namespace: "web".into(),
        deployment: deployment.into(),
        replicas,
    }
}

fn at() -> Timestamp {
    "2027-01-15T08:00:00.250Z".parse().unwrap()
}

const DEPLOY: &str = "/apis/apps/v1/namespaces/web/deployments/api";
const FM: &[(&str, &str)] = &[("fieldManager", "day2")];

/// `kubectl rollout restart` of web/api at [`at`].
fn restart(status: u16, reply: &'static str) -> Expect {
    Expect {
        method: "PATCH",
        path: DEPLOY,
        query: FM,
        content_type: Some("application/strategic-merge-patch+json"),
        body: Some(json!({"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": "2027-01-15T08:00:00Z"
        }}}}})),
        status,
        reply,
    }
}

fn get_deployment(status: u16, reply: &'static str) -> Expect {
    Expect {
        method: "GET",
        path: DEPLOY,
        query: &[],
        content_type: None,
        body: None,
        status,
        reply,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_restart_and_undo_send_what_kubectl_sends() {
    let dir = tempfile::tempdir().unwrap();
    let rev2_template = json!({
        "metadata": {"labels": {"app": "api"}, "annotations": {"prometheus.io/scrape": "true"}},
        "spec": {"containers": [{"name": "api", "image": "registry.example/api:v2"}]}
    });
    let (contract, kc) = fake_api(
        dir.path(),
        vec![
            Expect {
                method: "PATCH",
                path: "/apis/apps/v1/namespaces/web/deployments/api/scale",
                query: FM,
                content_type: Some("application/merge-patch+json"),
                body: Some(json!({"spec": {"replicas": 5}})),
                status: 200,
                reply: "scale-api.json",
            },
            restart(200, "deployment-api.json"),
            get_deployment(200, "deployment-api.json"),
            Expect {
                method: "GET",
                path: "/apis/apps/v1/namespaces/web/replicasets",
                query: &[("labelSelector", "app=api")],
                content_type: None,
                body: None,
                status: 200,
                reply: "replicasets-api.json",
            },
            Expect {
                method: "PATCH",
                path: DEPLOY,
                query: FM,
                content_type: Some("application/json-patch+json"),
                body: Some(json!([
                    {"op": "replace", "path": "/spec/template", "value": rev2_template},
                    {"op": "replace", "path": "/metadata/annotations", "value": {
                        "deployment.kubernetes.io/revision": "3",
                        "kubectl.kubernetes.io/last-applied-configuration": "{}",
                        "kubernetes.io/change-cause": "deploy v2"
                    }},
                ])),
                status: 200,
                reply: "deployment-api.json",
            },
        ],
    )
    .await;
    let k = executor(&kc, loopback());
    let r = k
        .execute(&req(KubeAction::Scale, "api", Some(5)), at())
        .await;
    assert!(r.ok, "{}", r.outcome);
    assert_eq!(r.outcome, "scaled deployment web/api to 5 replicas");
    let r = k
        .execute(&req(KubeAction::RolloutRestart, "api", None), at())
        .await;
    assert!(r.ok, "{}", r.outcome);
    let r = k
        .execute(&req(KubeAction::RolloutUndo, "api", None), at())
        .await;
    assert!(r.ok, "{}", r.outcome);
    assert_eq!(r.outcome, "rolled back deployment web/api to revision 2");
    assert_kept(&contract);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_become_clear_step_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (contract, kc) = fake_api(
        dir.path(),
        vec![
            Expect {
                method: "PATCH",
                path: "/apis/apps/v1/namespaces/web/deployments/missing/scale",
                query: FM,
                content_type: Some("application/merge-patch+json"),
                body: Some(json!({"spec": {"replicas": 2}})),
                status: 404,
                reply: "status-404.json",
            },
            restart(409, "status-409.json"),
            get_deployment(403, "status-403.json"),
        ],
    )
    .await;
    let k = executor(&kc, loopback());
    let r = k
        .execute(&req(KubeAction::Scale, "missing", Some(2)), at())
        .await;
    assert!(!r.ok);
    assert_eq!(
        r.outcome,
        r#"deployment web/missing not found (404: deployments.apps "missing" not found)"#
    );
    let r = k
        .execute(&req(KubeAction::RolloutRestart, "api", None), at())
        .await;
    assert!(!r.ok);
    assert!(
        r.outcome.starts_with("conflict: deployment web/api changed while being updated (409: Operation cannot be fulfilled"),
        "{}",
        r.outcome
    );
    let r = k
        .execute(&req(KubeAction::RolloutUndo, "api", None), at())
        .await;
    assert!(!r.ok);
    assert!(
        r.outcome.starts_with(
            r#"forbidden: day2 may not read deployment web/api (403: deployments.apps "api" is forbidden: User "system:serviceaccount:ops:day2" cannot get"#
        ),
        "{}",
        r.outcome
    );
    assert_kept(&contract);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_must_pass_the_egress_allowlist() {
    let dir = tempfile::tempdir().unwrap();
    let (contract, kc) = fake_api(dir.path(), vec![]).await;
    let k = executor(&kc, EgressPolicy::default());
    let r = k
        .execute(&req(KubeAction::Scale, "api", Some(1)), at())
        .await;
    assert!(!r.ok);
    assert_eq!(
        r.outcome,
        "API server: egress to 127.0.0.1 (loopback address) is not allowed; add it to remediation.egress.allow to permit it"
    );
    assert_kept(&contract);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runbook_step_scales_with_a_checked_int_param() {
    let dir = tempfile::tempdir().unwrap();
    let (contract, kc) = fake_api(
        dir.path(),
        vec![Expect {
            method: "PATCH",
            path: "/apis/apps/v1/namespaces/web/deployments/api/scale",
            query: FM,
            content_type: Some("application/merge-patch+json"),
            body: Some(json!({"spec": {"replicas": 7}})),
            status: 200,
            reply: "scale-api.json",
        }],
    )
    .await;
    let rb = runbook(
        r#"
runbooks:
  - name: scale-api
    match: ['alertname="Saturated"']
    params:
      - {name: replicas, type: int, min: 1, max: 20, from_label: want}
      - {name: deployment, pattern: '[a-z][a-z0-9-]*', from_label: deployment}
    steps:
      - name: scale
        kubernetes: {action: scale, namespace: web, deployment: '{{ param.deployment }}', replicas: '{{ param.replicas }}'}
    guardrails: {approval: none, target_label: deployment}
"#,
    );
    let mut runs = Runs::new();
    let p = |want: &str, deployment: &str| Proposal {
        labels: labels(&[
            ("alertname", "Saturated"),
            ("want", want),
            ("deployment", deployment),
        ]),
        requester: "alert:Saturated".into(),
        ..Default::default()
    };
    // values outside the declaration never reach the API server
    assert!(runs.propose(&rb, p("21", "api"), ts(0)).is_err());
    assert!(runs.propose(&rb, p("7", "api/../x"), ts(0)).is_err());
    let id = runs.propose(&rb, p("7", "api"), ts(0)).unwrap();
    let executors = Executors {
        kube: Some(executor(&kc, loopback())),
        ..Default::default()
    };
    let state = drive_now(&mut runs, id, &executors).await;
    assert_eq!(state, RunState::Verified);
    let run = runs.get(id).unwrap();
    assert_eq!(
        run.results[0].report.outcome,
        "scaled deployment web/api to 7 replicas"
    );
    assert_kept(&contract);
}

fn get_scale(path: &'static str, status: u16, reply: &'static str) -> Expect {
    Expect {
        method: "GET",
        path,
        query: &[],
        content_type: None,
        body: None,
        status,
        reply,
    }
}

fn patch_scale(path: &'static str, replicas: u32, reply: &'static str) -> Expect {
    Expect {
        method: "PATCH",
        path,
        query: FM,
        content_type: Some("application/merge-patch+json"),
        body: Some(json!({"spec": {"replicas": replicas}})),
        status: 200,
        reply,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_are_read_and_set_through_the_scale_subresource() {
    let dir = tempfile::tempdir().unwrap();
    let (contract, kc) = fake_api(
        dir.path(),
        vec![
            get_scale(
                "/apis/apps/v1/namespaces/web/deployments/api/scale",
                200,
                "scale-api.json",
            ),
            patch_scale(
                "/apis/apps/v1/namespaces/web/deployments/api/scale",
                7,
                "scale-api.json",
            ),
            // no namespace: the kubeconfig context's (`default`)
            get_scale(
                "/apis/apps/v1/namespaces/default/statefulsets/db/scale",
                200,
                "scale-db.json",
            ),
            patch_scale(
                "/apis/apps/v1/namespaces/default/statefulsets/db/scale",
                2,
                "scale-db.json",
            ),
            get_scale(
                "/apis/apps/v1/namespaces/web/replicasets/missing/scale",
                404,
                "status-404.json",
            ),
        ],
    )
    .await;
    let k = executor(&kc, loopback());
    // spec.replicas (what was asked for), not status.replicas (what runs now)
    assert_eq!(
        k.replicas(ScaleKind::Deployment, Some("web"), "api").await,
        Ok(5)
    );
    k.set_replicas(ScaleKind::Deployment, Some("web"), "api", 7)
        .await
        .unwrap();
    assert_eq!(k.replicas(ScaleKind::StatefulSet, None, "db").await, Ok(3));
    k.set_replicas(ScaleKind::StatefulSet, None, "db", 2)
        .await
        .unwrap();
    let e = k
        .replicas(ScaleKind::ReplicaSet, Some("web"), "missing")
        .await
        .unwrap_err();
    assert!(
        e.starts_with("replicaset web/missing not found (404:"),
        "{e}"
    );
    assert_kept(&contract);

    // the API server must pass the egress allowlist for reads too
    let (contract, kc) = fake_api(dir.path(), vec![]).await;
    let k = executor(&kc, EgressPolicy::default());
    let e = k
        .replicas(ScaleKind::Deployment, Some("web"), "api")
        .await
        .unwrap_err();
    assert!(
        e.contains("egress to 127.0.0.1 (loopback address) is not allowed"),
        "{e}"
    );
    assert_kept(&contract);
}

#[test]
fn scale_kinds_are_named_as_kubectl_names_them() {
    for (k, want) in [
        ("deployment", ScaleKind::Deployment),
        ("deploy", ScaleKind::Deployment),
        ("Deployments", ScaleKind::Deployment),
        ("sts", ScaleKind::StatefulSet),
        ("statefulset", ScaleKind::StatefulSet),
        ("rs", ScaleKind::ReplicaSet),
    ] {
        assert_eq!(ScaleKind::parse(k), Some(want), "{k}");
    }
    assert_eq!(ScaleKind::parse("daemonset"), None);
    assert_eq!(ScaleKind::parse("pod"), None);
}
