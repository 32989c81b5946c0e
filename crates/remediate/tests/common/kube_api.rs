//! A fake Kubernetes API server on loopback holding a recorded API
//! contract: every request must match the next expected one (method, path,
//! query, content type, bearer token, JSON body) and gets a recorded reply
//! from `crates/remediate/testdata/k8s/` (written from the Kubernetes API
//! reference). Shared by the remediation and autoscaling tests.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One request the client must send, and the recorded reply.
pub struct Expect {
    pub method: &'static str,
    pub path: &'static str,
    pub query: &'static [(&'static str, &'static str)],
    pub content_type: Option<&'static str>,
    pub body: Option<Value>,
    pub status: u16,
    pub reply: &'static str,
}

#[derive(Default)]
pub struct Contract {
    expected: Mutex<VecDeque<Expect>>,
    violations: Mutex<Vec<String>>,
}

fn recorded(file: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../remediate/testdata/k8s");
    std::fs::read_to_string(dir.join(file)).unwrap()
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
pub async fn fake_api(dir: &Path, expected: Vec<Expect>) -> (Arc<Contract>, PathBuf) {
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

/// Every expected request came, and nothing else.
pub fn assert_kept(contract: &Contract) {
    let v = contract.violations.lock().clone();
    assert!(v.is_empty(), "contract violations:\n{}", v.join("\n"));
    let left = contract.expected.lock().len();
    assert_eq!(left, 0, "{left} expected request(s) never came");
}
