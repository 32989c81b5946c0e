//! The kubernetes executor against a recorded API contract: a loopback fake
//! API server checks method, path, query, content type, authorization and
//! body of every request against what kubectl sends for scale, rollout
//! restart and rollout undo, and answers with recorded JSON
//! (`testdata/k8s/`, written from the Kubernetes API reference), including
//! 404, 409 and 403 replies.

mod common;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use common::*;
use day2_alerthub::EgressPolicy;
use day2_remediate::driver::Executors;
use day2_remediate::kubernetes::{KubeExecutor, KubeSource};
use day2_remediate::runbook::KubeAction;
use day2_remediate::{KubeRequest, Proposal, RunState, Runs};
use jiff::Timestamp;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// One request the client must send, and the recorded reply.
struct Expect {
    method: &'static str,
    path: &'static str,
    query: &'static [(&'static str, &'static str)],
    content_type: Option<&'static str>,
    body: Option<Value>,
    status: u16,
    reply: &'static str,
}

#[derive(Default)]
struct Contract {
    expected: Mutex<VecDeque<Expect>>,
    violations: Mutex<Vec<String>>,
}

fn recorded(file: &str) -> String {
    std::fs::read_to_string(testdata().join("k8s").join(file)).unwrap()
}

async fn handle(
    contract: Arc<Contract>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let json_reply = |code: u16, text: String| {
        (
            StatusCode::from_u16(code).unwrap(),
            [("content-type", "application/json")],
            text,
        )
    };
    let Some(e) = contract.expected.lock().pop_front() else {
        contract
            .violations
            .lock()
            .push(format!("unexpected request {method} {uri}"));
        return json_reply(500, "{}".into());
    };
    let mut v = Vec::new();
    if method.as_str() != e.method || uri.path() != e.path {
        v.push(format!(
            "expected {} {}, got {method} {}",
            e.method,
            e.path,
            uri.path()
        ));
    }
    let query: BTreeMap<String, String> = uri
        .query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, val) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(val))
                })
                .collect()
        })
        .unwrap_or_default();
    let want: BTreeMap<String, String> = e
        .query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if query != want {
        v.push(format!(
            "{} {}: query {query:?}, expected {want:?}",
            e.method, e.path
        ));
    }
    let ct = headers
        .get("content-type")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    if ct.as_deref() != e.content_type {
        v.push(format!(
            "{} {}: content-type {ct:?}, expected {:?}",
            e.method, e.path, e.content_type
        ));
    }
    let auth = headers.get("authorization").and_then(|h| h.to_str().ok());
    if auth != Some("Bearer test-token") {
        v.push(format!("{} {}: authorization {auth:?}", e.method, e.path));
    }
    match &e.body {
        Some(want) => match serde_json::from_slice::<Value>(&body) {
            Ok(got) if &got == want => {}
            Ok(got) => v.push(format!(
                "{} {}: body\n{got:#}\nexpected\n{want:#}",
                e.method, e.path
            )),
            Err(err) => v.push(format!("{} {}: body is not JSON: {err}", e.method, e.path)),
        },
        None if !body.is_empty() => v.push(format!("{} {}: unexpected body", e.method, e.path)),
        None => {}
    }
    contract.violations.lock().extend(v);
    json_reply(e.status, recorded(e.reply))
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// Starts the fake API server; returns its contract and a kubeconfig for it.
async fn fake_api(dir: &Path, expected: Vec<Expect>) -> (Arc<Contract>, std::path::PathBuf) {
    let contract = Arc::new(Contract::default());
    contract.expected.lock().extend(expected);
    let c = contract.clone();
    let app = axum::Router::new()
        .fallback(move |m: Method, u: Uri, h: HeaderMap, b: Bytes| handle(c.clone(), m, u, h, b));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            r#"apiVersion: v1
kind: Config
clusters:
  - name: fake
    cluster:
      server: http://{addr}
contexts:
  - name: fake
    context: {{cluster: fake, user: day2, namespace: default}}
current-context: fake
users:
  - name: day2
    user: {{token: test-token}}
"#
        ),
    )
    .unwrap();
    (contract, kubeconfig)
}

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

fn assert_kept(contract: &Contract) {
    let v = contract.violations.lock().clone();
    assert!(v.is_empty(), "contract violations:\n{}", v.join("\n"));
    let left = contract.expected.lock().len();
    assert_eq!(left, 0, "{left} expected request(s) never came");
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
