//! The http executor against a loopback server: parameter values are
//! escaped where they land (one URL path segment, a JSON string), secrets
//! come from env/file references and never appear in the run record, the
//! egress allowlist applies, redirects are not followed, and the expected
//! status decides success.

mod common;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use common::*;
use day2_alerthub::EgressPolicy;
use day2_remediate::driver::Executors;
use day2_remediate::http::HttpExecutor;
use day2_remediate::{Proposal, RunState, RunbookSet, Runs};
use parking_lot::Mutex;
use std::sync::Arc;

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: Option<String>,
    auth: Option<String>,
    content_type: Option<String>,
    body: String,
}

/// A server that records requests; `/fail` answers 500, `/moved` 302 to `/ok`.
async fn server() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let app = axum::Router::new().fallback(move |m: Method, u: Uri, h: HeaderMap, b: Bytes| {
        let s = s.clone();
        async move {
            let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
            s.lock().push(Seen {
                method: m.to_string(),
                path: u.path().to_string(),
                query: u.query().map(str::to_string),
                auth: header("authorization"),
                content_type: header("content-type"),
                body: String::from_utf8_lossy(&b).into_owned(),
            });
            match u.path() {
                "/fail" => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [("location", "")],
                    "broken",
                ),
                "/moved" => (StatusCode::FOUND, [("location", "/ok")], ""),
                _ => (StatusCode::ACCEPTED, [("location", "")], "accepted"),
            }
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (base, seen)
}

fn executors(allow_loopback: bool) -> Executors {
    let egress = if allow_loopback {
        EgressPolicy::from_list(&["127.0.0.0/8".into()]).unwrap()
    } else {
        EgressPolicy::default()
    };
    Executors {
        http: HttpExecutor {
            egress,
            body_cap: 0,
        },
        ..Default::default()
    }
}

/// A runbook with one http step to `url` (placeholders allowed), its
/// Authorization header from `env:{token_var}`, the param in a JSON body.
fn hook_runbook(url: &str, token_var: &str, extra: &str) -> day2_remediate::LoadedRunbook {
    runbook(&format!(
        r#"
runbooks:
  - name: hook
    match: ['alertname="Down"']
    params:
      - {{name: x, pattern: '[\s\S]{{1,200}}', from_label: payload}}
    steps:
      - name: call
        http:
          url: '{url}'
          headers: {{Authorization: 'env:{token_var}'}}
          body: '{{"value": "{{{{ param.x }}}}"}}'
{extra}
    guardrails:
      approval: none
      cooldown: "0"
      max_runs: {{count: 100, window: 1h}}
      circuit_breaker: {{failures: 100, reset_after: 1h}}
"#
    ))
}

fn proposal(i: usize, payload: &str) -> Proposal {
    Proposal {
        labels: labels(&[
            ("alertname", "Down"),
            ("instance", &format!("i{i}")),
            ("payload", payload),
        ]),
        requester: "alert:Down".into(),
        ..Default::default()
    }
}

async fn run_one(
    runs: &mut Runs,
    rb: &day2_remediate::LoadedRunbook,
    p: Proposal,
    ex: &Executors,
) -> RunState {
    let id = runs.propose(rb, p, ts(0)).unwrap();
    drive_now(runs, id, ex).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_stay_inside_the_json_string_and_the_path_segment() {
    // SAFETY: set before any thread of this test reads the environment
    unsafe { std::env::set_var("DAY2_TEST_HOOK_TOKEN_A", "Bearer s3cret-token") };
    let (base, seen) = server().await;
    let hostile = [
        "; rm -rf / #",
        "\", \"admin\": true, \"x\": \"",
        "a\nb\\",
        "../../admin?x=1#frag",
        "$(id)",
    ];
    let rb = hook_runbook(
        &format!("{base}/hosts/{{{{ param.x }}}}/restart?reason={{{{ param.x }}}}"),
        "DAY2_TEST_HOOK_TOKEN_A",
        "",
    );
    let mut runs = Runs::new();
    let ex = executors(true);
    for (i, v) in hostile.iter().enumerate() {
        let state = run_one(&mut runs, &rb, proposal(i, v), &ex).await;
        assert_eq!(state, RunState::Verified, "{v:?}");
        let s = seen.lock().last().unwrap().clone();
        assert_eq!(s.method, "POST");
        let body: serde_json::Value = serde_json::from_str(&s.body).unwrap();
        assert_eq!(body, serde_json::json!({ "value": v }), "{v:?}");
        assert_eq!(s.content_type.as_deref(), Some("application/json"));
        assert_eq!(s.auth.as_deref(), Some("Bearer s3cret-token"));
        // the value is one path segment and one query value
        let segments: Vec<&str> = s.path.split('/').collect();
        assert_eq!(segments.len(), 4, "{:?}", s.path);
        assert_eq!(segments[3], "restart");
        let q = s.query.unwrap();
        assert!(
            q.starts_with("reason=") && !q.contains('&') && !q.contains('#'),
            "{q}"
        );
    }
    // the run record and audit hold the reference, never the secret
    for r in runs.iter() {
        let text = serde_json::to_string(r).unwrap();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("env:DAY2_TEST_HOOK_TOKEN_A"));
    }
    let audit = serde_json::to_string(runs.audit()).unwrap();
    assert!(!audit.contains("s3cret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_status_and_redirects() {
    unsafe { std::env::set_var("DAY2_TEST_HOOK_TOKEN", "Bearer s3cret-token") };
    let (base, seen) = server().await;
    let mut runs = Runs::new();
    // loopback is refused unless allowed; nothing is sent
    let rb = hook_runbook(&format!("{base}/ok"), "DAY2_TEST_HOOK_TOKEN", "");
    let state = run_one(&mut runs, &rb, proposal(0, "v"), &executors(false)).await;
    assert_eq!(state, RunState::Failed);
    let reason = runs.iter().last().unwrap().reason.clone().unwrap();
    assert!(
        reason.contains("(loopback address) is not allowed; add it to remediation.egress.allow"),
        "{reason}"
    );
    assert!(seen.lock().is_empty());
    // 202 is 2xx: success; with expect_status [200] it is a failure
    let state = run_one(&mut runs, &rb, proposal(1, "v"), &executors(true)).await;
    assert_eq!(state, RunState::Verified);
    let strict = hook_runbook(
        &format!("{base}/ok"),
        "DAY2_TEST_HOOK_TOKEN",
        "          expect_status: [200]",
    );
    let state = run_one(&mut runs, &strict, proposal(2, "v"), &executors(true)).await;
    assert_eq!(state, RunState::Failed);
    assert_eq!(
        runs.iter().last().unwrap().reason.as_deref(),
        Some("step call failed: HTTP 202 (expected [200]): accepted")
    );
    let failing = hook_runbook(&format!("{base}/fail"), "DAY2_TEST_HOOK_TOKEN", "");
    run_one(&mut runs, &failing, proposal(3, "v"), &executors(true)).await;
    assert_eq!(
        runs.iter().last().unwrap().reason.as_deref(),
        Some("step call failed: HTTP 500 (expected 2xx): broken")
    );
    // a redirect is not followed
    let moved = hook_runbook(&format!("{base}/moved"), "DAY2_TEST_HOOK_TOKEN", "");
    run_one(&mut runs, &moved, proposal(4, "v"), &executors(true)).await;
    assert!(
        !seen
            .lock()
            .iter()
            .any(|s| s.path == "/ok" && s.query.is_none() && s.method == "GET")
    );
    assert_eq!(
        runs.iter().last().unwrap().reason.as_deref(),
        Some("step call failed: HTTP 302 (expected 2xx): ")
    );
    let last = seen.lock().last().unwrap().clone();
    assert_eq!(last.path, "/moved");
    // a missing secret fails the step without sending
    unsafe { std::env::remove_var("DAY2_TEST_HOOK_TOKEN") };
    let n = seen.lock().len();
    run_one(&mut runs, &rb, proposal(5, "v"), &executors(true)).await;
    assert_eq!(
        runs.iter().last().unwrap().reason.as_deref(),
        Some(
            "step call failed: header Authorization: environment variable DAY2_TEST_HOOK_TOKEN is not set"
        )
    );
    assert_eq!(seen.lock().len(), n);
}

#[test]
fn inline_credentials_and_unquoted_body_placeholders_are_refused() {
    let load = |step: &str| {
        RunbookSet::parse_file(
            &format!(
                "runbooks:\n  - name: h\n    match: ['a=\"b\"']\n    params: [{{name: x, pattern: '[a-z]+', from_label: x}}]\n    steps:\n      - http:\n{step}"
            ),
            "rb.yml",
            None,
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    let e = load(
        "          url: https://h.example/x\n          headers: {Authorization: Bearer abc}\n",
    )
    .unwrap_err();
    assert!(e.contains("runbooks[0].steps[0].http.headers.Authorization: credentials are given as env:NAME or file:/path references"), "{e}");
    let e = load("          url: https://h.example/x\n          headers: {X-Api-Token: abc}\n")
        .unwrap_err();
    assert!(e.contains("never inline"), "{e}");
    let e = load("          url: https://h.example/x\n          body: '{\"v\": {{ param.x }}}'\n")
        .unwrap_err();
    assert!(e.contains("must be inside a \"...\" JSON string"), "{e}");
    let e = load("          url: https://h.example/x\n          headers: {Authorization: 'env:{{ param.x }}'}\n").unwrap_err();
    assert!(
        e.contains("a secret reference may not contain placeholders"),
        "{e}"
    );
    load("          url: https://h.example/x\n          headers: {Authorization: 'file:/run/secrets/hook'}\n          body: '{\"v\": \"{{ param.x }}\"}'\n").unwrap();
}
