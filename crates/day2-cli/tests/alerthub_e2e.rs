//! End-to-end tests of the alert hub in `day2 serve`: Alertmanager API v2 in,
//! webhook out; silences; `amtool` against day2; kill -9 durability.

mod common;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use common::{Day2, HUB_DAY2_YML, client, get_json, metric, post_alerts, wait_for};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// A loopback webhook receiver that records bodies and answers with queued
/// status codes (200 once the queue is empty).
#[derive(Clone, Default)]
struct Hook {
    got: Arc<Mutex<Vec<Value>>>,
    statuses: Arc<Mutex<VecDeque<u16>>>,
    hits: Arc<Mutex<usize>>,
}

impl Hook {
    async fn start() -> (Hook, String) {
        let hook = Hook::default();
        let h = hook.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::body::Bytes| {
                let h = h.clone();
                async move {
                    *h.hits.lock() += 1;
                    let code = h.statuses.lock().pop_front().unwrap_or(200);
                    if code == 200 {
                        h.got
                            .lock()
                            .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    }
                    axum::http::StatusCode::from_u16(code).unwrap()
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        (hook, url)
    }

    fn bodies(&self) -> Vec<Value> {
        self.got.lock().clone()
    }

    /// Waits for a notification satisfying `pred`.
    async fn wait(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        wait_for(what, Duration::from_secs(30), || {
            let found = self.bodies().into_iter().find(|b| pred(b));
            async move { found }
        })
        .await
    }
}

fn configs(dir: &std::path::Path, hook_url: &str) -> String {
    let am = format!(
        r#"
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 300ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {hook_url}
        send_resolved: true
  - name: other
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [alertname]
"#
    );
    std::fs::write(dir.join("alertmanager.yml"), am).unwrap();
    HUB_DAY2_YML.to_string()
}

fn names(body: &Value) -> Vec<String> {
    let mut v: Vec<String> = body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{}/{}",
                a["labels"]["instance"].as_str().unwrap_or(""),
                a["status"].as_str().unwrap()
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_gets_grouped_then_resolved_and_silences_suppress() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, url) = Hook::start().await;
    let d = Day2::start(dir.path(), &configs(dir.path(), &url)).await;

    post_alerts(
        &d,
        json!([
            {"labels": {"alertname": "Down", "instance": "a"}, "annotations": {"summary": "a is down"}},
            {"labels": {"alertname": "Down", "instance": "b"}, "annotations": {"summary": "b is down"}},
        ]),
    )
    .await;
    let first = hook.wait("grouped firing notification", |_| true).await;
    assert_eq!(first["version"], "4");
    assert_eq!(first["status"], "firing");
    assert_eq!(first["receiver"], "hook");
    assert_eq!(first["groupKey"], "{}:{alertname=\"Down\"}");
    assert_eq!(first["groupLabels"], json!({"alertname": "Down"}));
    assert_eq!(first["commonLabels"], json!({"alertname": "Down"}));
    assert_eq!(first["externalURL"], "http://day2.test");
    assert_eq!(first["truncatedAlerts"], 0);
    assert_eq!(names(&first), ["a/firing", "b/firing"]);
    assert_eq!(
        first["alerts"][0]["fingerprint"].as_str().unwrap().len(),
        16
    );

    // API v2 views
    let alerts = get_json(&d, "/api/v2/alerts").await;
    assert_eq!(alerts.as_array().unwrap().len(), 2);
    assert_eq!(alerts[0]["receivers"], json!([{"name": "hook"}]));
    assert_eq!(alerts[0]["status"]["state"], "active");
    let filtered = get_json(&d, "/api/v2/alerts?filter=instance%3D%22a%22").await;
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    let groups = get_json(&d, "/api/v2/alerts/groups").await;
    assert_eq!(groups.as_array().unwrap().len(), 1);
    assert_eq!(groups[0]["receiver"]["name"], "hook");
    assert_eq!(groups[0]["labels"], json!({"alertname": "Down"}));
    let receivers = get_json(&d, "/api/v2/receivers").await;
    assert_eq!(receivers, json!([{"name": "hook"}, {"name": "other"}]));
    let status = get_json(&d, "/api/v2/status").await;
    assert_eq!(status["cluster"]["status"], "disabled");
    let original = status["config"]["original"].as_str().unwrap();
    assert!(original.contains("receivers:"));
    assert!(!original.contains(&url), "webhook URL leaked: {original}");

    // resolve one: the resolved notification arrives
    post_alerts(
        &d,
        json!([{"labels": {"alertname": "Down", "instance": "a"}, "endsAt": "2020-01-01T00:00:00Z", "startsAt": "2019-12-31T00:00:00Z"}]),
    )
    .await;
    let resolved = hook
        .wait("resolved notification", |b| {
            names(b).contains(&"a/resolved".to_string())
        })
        .await;
    assert_eq!(names(&resolved), ["a/resolved", "b/firing"]);
    assert_eq!(resolved["status"], "firing");

    // a silence created by the API suppresses a new alert
    let r: Value = client()
        .post(d.url("/api/v2/silences"))
        .json(&json!({
            "matchers": [{"name": "alertname", "value": "Quiet", "isRegex": false, "isEqual": true}],
            "startsAt": "2020-01-01T00:00:00Z",
            "endsAt": "2099-01-01T00:00:00Z",
            "createdBy": "e2e",
            "comment": "testing",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sid = r["silenceID"].as_str().unwrap().to_string();
    let s = get_json(&d, &format!("/api/v2/silence/{sid}")).await;
    assert_eq!(s["status"]["state"], "active");
    assert_eq!(s["createdBy"], "e2e");
    post_alerts(
        &d,
        json!([
            {"labels": {"alertname": "Quiet", "instance": "q"}},
            {"labels": {"alertname": "Loud", "instance": "l"}},
        ]),
    )
    .await;
    hook.wait("Loud notification", |b| {
        b["groupLabels"]["alertname"] == "Loud"
    })
    .await;
    // Quiet's group was flushed together with Loud's (same group_wait): nothing sent
    let quiet = get_json(&d, "/api/v2/alerts?filter=alertname%3D%22Quiet%22").await;
    assert_eq!(quiet[0]["status"]["state"], "suppressed");
    assert_eq!(quiet[0]["status"]["silencedBy"], json!([sid]));
    let unsilenced = get_json(&d, "/api/v2/alerts?silenced=false").await;
    assert!(
        unsilenced
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["labels"]["alertname"] != "Quiet")
    );
    wait_for("flushes after the silence", Duration::from_secs(10), || {
        let d = &d;
        async move { (metric(d, "day2_alerthub_aggregation_groups").await >= 2.0).then_some(()) }
    })
    .await;
    assert!(
        hook.bodies()
            .iter()
            .all(|b| b["groupLabels"]["alertname"] != "Quiet")
    );

    // expiring the silence: Quiet is notified at the next group_interval
    let r = client()
        .delete(d.url(&format!("/api/v2/silence/{sid}")))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    hook.wait("Quiet after the silence expired", |b| {
        b["groupLabels"]["alertname"] == "Quiet"
    })
    .await;
    let s = get_json(&d, &format!("/api/v2/silence/{sid}")).await;
    assert_eq!(s["status"]["state"], "expired");

    // bad input is refused with 400
    let r = client()
        .post(d.url("/api/v2/alerts"))
        .json(&json!([{"labels": {}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = client()
        .get(d.url("/api/v2/silence/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert!(metric(&d, "day2_alerthub_notifications_sent_total").await >= 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_survives_kill9_before_webhook_answers_2xx() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, url) = Hook::start().await;
    // the receiver fails for a while
    hook.statuses.lock().extend([500u16; 1000]);
    let cfg = configs(dir.path(), &url);
    let mut d = Day2::start(dir.path(), &cfg).await;
    post_alerts(
        &d,
        json!([{"labels": {"alertname": "Durable", "instance": "x"}}]),
    )
    .await;
    wait_for("a failed attempt", Duration::from_secs(30), || {
        let d = &d;
        async move { (metric(d, "day2_alerthub_notification_retries_total").await >= 1.0).then_some(()) }
    })
    .await;
    d.kill9();
    // the receiver recovers; day2 comes back
    hook.statuses.lock().clear();
    let port = d.port;
    let config = d.config.clone();
    let d = Day2::start_with(dir.path(), &config, port).await;
    let b = hook
        .wait("notification after restart", |b| {
            b["groupLabels"]["alertname"] == "Durable"
        })
        .await;
    assert_eq!(names(&b), ["x/firing"]);
    // the alert itself survived too
    let alerts = get_json(&d, "/api/v2/alerts").await;
    assert_eq!(alerts.as_array().unwrap().len(), 1);
    // and is not re-sent: one 2xx delivery only
    wait_for("delivery recorded", Duration::from_secs(10), || {
        let d = &d;
        async move { (metric(d, "day2_alerthub_notifications_sent_total").await >= 1.0).then_some(()) }
    })
    .await;
    assert_eq!(
        hook.bodies()
            .iter()
            .filter(|b| b["groupLabels"]["alertname"] == "Durable")
            .count(),
        1
    );
    // the audit: who was notified about this alert, when, and did it work
    let fp = alerts[0]["fingerprint"].as_str().unwrap();
    let audit = get_json(&d, &format!("/api/day2/v1/notifications?fingerprint={fp}")).await;
    let n = &audit[0];
    assert_eq!(n["receiver"], "hook");
    assert_eq!(n["integration"], "webhook[0]");
    assert_eq!(n["state"], "sent");
    let attempts = n["attempts"].as_array().unwrap();
    assert!(attempts.len() >= 2, "{audit}");
    assert_eq!(attempts[0]["statusCode"], 500);
    assert_eq!(attempts.last().unwrap()["statusCode"], 200);
    let none = get_json(
        &d,
        "/api/day2/v1/notifications?fingerprint=0000000000000000",
    )
    .await;
    assert_eq!(none, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_to_loopback_is_refused_without_allowance() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, url) = Hook::start().await;
    let cfg = configs(dir.path(), &url).replace("    allow: [127.0.0.0/8]\n", "    allow: []\n");
    let d = Day2::start(dir.path(), &cfg).await;
    post_alerts(&d, json!([{"labels": {"alertname": "Blocked"}}])).await;
    wait_for("permanent failure", Duration::from_secs(30), || {
        let d = &d;
        async move { (metric(d, "day2_alerthub_notifications_failed_total").await >= 1.0).then_some(()) }
    })
    .await;
    assert_eq!(*hook.hits.lock(), 0);
}

fn amtool(port: u16, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("amtool")
        .arg(format!("--alertmanager.url=http://127.0.0.1:{port}"))
        .args(args)
        .output()
        .expect("run amtool");
    // stderr carries a version-mismatch warning; JSON is on stdout
    let text = if out.status.success() {
        String::from_utf8_lossy(&out.stdout).to_string()
    } else {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amtool_alerts_and_silences() {
    if std::process::Command::new("amtool")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!(
            "amtool not installed (Debian package prometheus-alertmanager; scripts/test.sh installs it)"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let (hook, url) = Hook::start().await;
    let d = Day2::start(dir.path(), &configs(dir.path(), &url)).await;
    let port = d.port;

    let (ok, out) = tokio::task::spawn_blocking(move || {
        amtool(
            port,
            &[
                "alert",
                "add",
                "alertname=AmtoolTest",
                "severity=warning",
                "instance=i1",
                "--annotation=summary=from amtool",
            ],
        )
    })
    .await
    .unwrap();
    assert!(ok, "amtool alert add: {out}");
    hook.wait("amtool alert notified", |b| {
        b["groupLabels"]["alertname"] == "AmtoolTest"
    })
    .await;

    let (ok, out) = tokio::task::spawn_blocking(move || {
        amtool(
            port,
            &["alert", "query", "-o", "json", "alertname=AmtoolTest"],
        )
    })
    .await
    .unwrap();
    assert!(ok, "amtool alert query: {out}");
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v[0]["labels"]["instance"], "i1");
    assert_eq!(v[0]["annotations"]["summary"], "from amtool");

    let (ok, out) = tokio::task::spawn_blocking(move || {
        amtool(
            port,
            &[
                "silence",
                "add",
                "alertname=AmtoolTest",
                "--comment=maintenance",
                "--author=tester",
                "--duration=1h",
            ],
        )
    })
    .await
    .unwrap();
    assert!(ok, "amtool silence add: {out}");
    let sid = out.trim().to_string();
    assert_eq!(sid.len(), 36, "{out}");

    let (ok, out) =
        tokio::task::spawn_blocking(move || amtool(port, &["silence", "query", "-o", "json"]))
            .await
            .unwrap();
    assert!(ok, "amtool silence query: {out}");
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v[0]["id"], sid.as_str());
    assert_eq!(v[0]["createdBy"], "tester");
    assert_eq!(v[0]["status"]["state"], "active");

    // silenced alerts disappear from the default query
    let (ok, out) =
        tokio::task::spawn_blocking(move || amtool(port, &["alert", "query", "-o", "json"]))
            .await
            .unwrap();
    assert!(ok, "amtool alert query: {out}");
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(v.as_array().is_none_or(|a| a.is_empty()), "{out}");
    let (ok, out) =
        tokio::task::spawn_blocking(move || amtool(port, &["alert", "query", "-s", "-o", "json"]))
            .await
            .unwrap();
    assert!(ok, "amtool alert query -s: {out}");
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v[0]["status"]["silencedBy"][0], sid.as_str());

    let sid2 = sid.clone();
    let (ok, out) =
        tokio::task::spawn_blocking(move || amtool(port, &["silence", "expire", &sid2]))
            .await
            .unwrap();
    assert!(ok, "amtool silence expire: {out}");
    let s = get_json(&d, &format!("/api/v2/silence/{sid}")).await;
    assert_eq!(s["status"]["state"], "expired");

    let (ok, out) = tokio::task::spawn_blocking(move || amtool(port, &["config", "show"]))
        .await
        .unwrap();
    assert!(ok, "amtool config show: {out}");
    assert!(out.contains("receivers"), "{out}");

    // routes test reads the same alertmanager.yml day2 runs on
    let am = dir.path().join("alertmanager.yml");
    let out = std::process::Command::new("amtool")
        .args(["config", "routes", "test", "--config.file"])
        .arg(&am)
        .arg("alertname=AmtoolTest")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hook");
}

#[test]
fn check_config_reports_alertmanager_errors_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let day2 = dir.path().join("day2.yml");
    std::fs::write(&day2, "alertmanager:\n  config_file: am.yml\n").unwrap();
    std::fs::write(
        dir.path().join("am.yml"),
        "route:\n  receiver: nobody\nreceivers:\n  - name: team\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_day2"))
        .args(["check", "config"])
        .arg(&day2)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!("{}:2: route.receiver", dir.path().join("am.yml").display());
    assert!(err.contains(&want), "{err}");
    assert!(err.contains("nobody"), "{err}");

    // fixed: OK; the egress list is validated too
    std::fs::write(
        dir.path().join("am.yml"),
        "route:\n  receiver: team\nreceivers:\n  - name: team\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_day2"))
        .args(["check", "config"])
        .arg(&day2)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    std::fs::write(
        &day2,
        "alertmanager:\n  config_file: am.yml\n  egress:\n    allow: [10.0.0.0/40]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_day2"))
        .args(["check", "config"])
        .arg(&day2)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("alertmanager.egress.allow[0]"), "{err}");
    // maintenance windows name existing time intervals
    std::fs::write(
        &day2,
        "alertmanager:\n  config_file: am.yml\n  maintenance_windows:\n    - name: nightly\n      matchers: ['service=\"db\"']\n      time_intervals: [nope]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_day2"))
        .args(["check", "config"])
        .arg(&day2)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("alertmanager.maintenance_windows[0]"), "{err}");
    assert!(err.contains("nope"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_a_new_alertmanager_config() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, url) = Hook::start().await;
    let d = Day2::start(dir.path(), &configs(dir.path(), &url)).await;
    assert_eq!(
        get_json(&d, "/api/v2/receivers").await,
        json!([{"name": "hook"}, {"name": "other"}])
    );
    // a broken file is refused and the old config keeps running
    std::fs::write(dir.path().join("alertmanager.yml"), "route: {}\n").unwrap();
    let r = client().post(d.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 500);
    assert!(r.text().await.unwrap().contains("alertmanager.yml"));
    // a new receiver name arrives with the next reload
    configs(dir.path(), &url);
    let am = std::fs::read_to_string(dir.path().join("alertmanager.yml"))
        .unwrap()
        .replace("  - name: other\n", "  - name: renamed\n");
    std::fs::write(dir.path().join("alertmanager.yml"), am).unwrap();
    d.signal(libc::SIGHUP);
    wait_for("reloaded receivers", Duration::from_secs(10), || {
        let d = &d;
        async move {
            let v = get_json(d, "/api/v2/receivers").await;
            (v == json!([{"name": "hook"}, {"name": "renamed"}])).then_some(())
        }
    })
    .await;
    post_alerts(&d, json!([{"labels": {"alertname": "AfterReload"}}])).await;
    hook.wait("notification after reload", |b| {
        b["groupLabels"]["alertname"] == "AfterReload"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_teams_notifications_render_from_templates() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, url) = Hook::start().await;
    std::fs::write(
        dir.path().join("team.tmpl"),
        r#"{{ define "team.text" }}{{ range .Alerts }}{{ .Labels.instance }}: {{ .Annotations.summary }}{{ end }}{{ end }}"#,
    )
    .unwrap();
    let am = format!(
        r#"
route:
  receiver: chat
  group_by: [alertname]
  group_wait: 200ms
  group_interval: 1s
templates: ['*.tmpl']
receivers:
  - name: chat
    slack_configs:
      - api_url: {url}
        channel: '#ops'
        text: '{{{{ template "team.text" . }}}}'
    msteams_configs:
      - webhook_url: {url}
    pagerduty_configs:
      - url: {url}
        routing_key: pd-routing-key
"#
    );
    std::fs::write(dir.path().join("alertmanager.yml"), am).unwrap();
    let cfg = "host_metrics: {enabled: false}\nself_metrics: {enabled: false}\nalertmanager:\n  config_file: alertmanager.yml\n  external_url: http://day2.test\n  egress: {allow: [127.0.0.1/32]}\n";
    let d = Day2::start(dir.path(), cfg).await;
    post_alerts(
        &d,
        json!([{"labels": {"alertname": "Chat", "instance": "web-1"}, "annotations": {"summary": "slow"}}]),
    )
    .await;
    let slack = hook
        .wait("slack payload", |b| b.get("attachments").is_some())
        .await;
    assert_eq!(slack["channel"], "#ops");
    assert_eq!(slack["attachments"][0]["title"], "[FIRING:1] Chat");
    assert_eq!(slack["attachments"][0]["text"], "web-1: slow");
    assert_eq!(slack["attachments"][0]["color"], "danger");
    let teams = hook
        .wait("teams payload", |b| b["type"] == "MessageCard")
        .await;
    assert_eq!(teams["title"], "[FIRING:1] Chat");
    assert!(teams["text"].as_str().unwrap().contains("instance = web-1"));
    let pd = hook
        .wait("pagerduty event", |b| b.get("event_action").is_some())
        .await;
    assert_eq!(pd["event_action"], "trigger");
    assert_eq!(pd["routing_key"], "pd-routing-key");
    assert_eq!(pd["payload"]["summary"], "[FIRING:1] Chat");
    // the routing key is added at send time, never stored in the outbox
    let db = std::fs::read(dir.path().join("data/state.db")).unwrap_or_default();
    let wal = std::fs::read(dir.path().join("data/state.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(!String::from_utf8_lossy(&bytes).contains("pd-routing-key"));
    }
    drop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_alerting_rules_feed_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, url) = Hook::start().await;
    let base = configs(dir.path(), &url);
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: AlwaysOn\n        expr: vector(1)\n        labels: {severity: page}\n        annotations: {summary: 'value {{ $value }}'}\n",
    )
    .unwrap();
    let cfg = format!("{base}global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n");
    let d = Day2::start(dir.path(), &cfg).await;
    let b = hook
        .wait("rule alert notified", |b| {
            b["groupLabels"]["alertname"] == "AlwaysOn"
        })
        .await;
    assert_eq!(b["alerts"][0]["labels"]["severity"], "page");
    assert_eq!(b["alerts"][0]["annotations"]["summary"], "value 1");
    let alerts = get_json(&d, "/api/v2/alerts?filter=alertname%3D%22AlwaysOn%22").await;
    assert_eq!(alerts.as_array().unwrap().len(), 1);
}

/// A pseudo-random delay in [0, max_ms) from the clock (the kill point).
fn random_ms(max_ms: u64) -> u64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (n.wrapping_mul(6364136223846793005) >> 17) % max_ms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_at_random_points_loses_no_transition() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, url) = Hook::start().await;
    // every other delivery fails once, so kills also land between a 5xx and the retry
    let cfg = configs(dir.path(), &url);
    let mut d = Day2::start(dir.path(), &cfg).await;
    let port = d.port;
    let config = d.config.clone();
    let rounds = 5;
    let mut kills = 0;
    for i in 0..rounds {
        let name = format!("Round{i}");
        for (resolve, want) in [(false, "firing"), (true, "resolved")] {
            if i % 2 == 1 {
                hook.statuses.lock().push_back(503);
            }
            let mut a = json!({"labels": {"alertname": name, "instance": "x"}});
            if resolve {
                a["startsAt"] = json!("2020-01-01T00:00:00Z");
                a["endsAt"] = json!("2020-01-01T00:01:00Z");
            }
            post_alerts(&d, json!([a])).await;
            // the kill point: anywhere in group_wait, flush, delivery or retry
            tokio::time::sleep(Duration::from_millis(random_ms(1500))).await;
            d.kill9();
            kills += 1;
            d = Day2::start_with(dir.path(), &config, port).await;
            let tag = format!("x/{want}");
            let n = name.clone();
            hook.wait(&format!("{name} {want}"), |b| {
                b["groupLabels"]["alertname"] == n.as_str() && names(b).contains(&tag)
            })
            .await;
        }
    }
    // at most one duplicate per kill
    let total = hook.bodies().len();
    assert!(
        total <= 2 * rounds + kills,
        "{total} notifications for {} transitions and {kills} kills",
        2 * rounds
    );
    drop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_sends_its_alerts_to_day2() {
    let prom_bin = common::peer_binary("prometheus", "prometheus");
    let dir = tempfile::tempdir().unwrap();
    let (hook, url) = Hook::start().await;
    let d = Day2::start(dir.path(), &configs(dir.path(), &url)).await;
    std::fs::write(
        dir.path().join("prom-rules.yml"),
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: FromPrometheus\n        expr: vector(1)\n        labels: {team: db}\n        annotations: {summary: sent by prometheus}\n",
    )
    .unwrap();
    let prom_port = common::free_port();
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  evaluation_interval: 1s\n  external_labels: {{replica: r1}}\nrule_files: [prom-rules.yml]\nalerting:\n  alertmanagers:\n    - api_version: v2\n      static_configs:\n        - targets: ['127.0.0.1:{}']\n",
            d.port
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prom = common::Peer(
        std::process::Command::new(prom_bin)
            .arg(format!("--config.file={}", prom_cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("prom-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            // the first send may precede Alertmanager discovery; resend soon
            .arg("--rules.alert.resend-delay=1s")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::from(log))
            .spawn()
            .expect("start prometheus"),
    );
    let b = hook
        .wait("Prometheus's alert at the webhook", |b| {
            b["groupLabels"]["alertname"] == "FromPrometheus"
        })
        .await;
    let a = &b["alerts"][0];
    assert_eq!(a["labels"]["team"], "db");
    assert_eq!(a["labels"]["replica"], "r1");
    assert_eq!(a["annotations"]["summary"], "sent by prometheus");
    assert!(
        a["generatorURL"]
            .as_str()
            .unwrap()
            .contains(&prom_port.to_string())
    );
}

#[tokio::test]
async fn inhibited_alert_does_not_leak_after_kill9() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, url) = Hook::start().await;
    let cfg = configs(dir.path(), &url);
    let mut d = Day2::start(dir.path(), &cfg).await;
    let (port, config) = (d.port, d.config.clone());
    post_alerts(
        &d,
        json!([
            {"labels": {"alertname": "Disk", "instance": "a", "severity": "critical"}},
            {"labels": {"alertname": "Disk", "instance": "b", "severity": "warning"}},
        ]),
    )
    .await;
    hook.wait("the critical Disk alert", |b| {
        b["groupLabels"]["alertname"] == "Disk" && names(b).contains(&"a/firing".to_string())
    })
    .await;
    d.kill9();
    let d = Day2::start_with(dir.path(), &config, port).await;
    // after the restart the warning is still known to be inhibited ...
    wait_for(
        "b reported as inhibited",
        Duration::from_secs(30),
        || async {
            let alerts = get_json(&d, "/api/v2/alerts").await;
            let b = alerts
                .as_array()?
                .iter()
                .find(|a| a["labels"]["instance"] == "b")?
                .clone();
            let inhibited = b["status"]["inhibitedBy"]
                .as_array()
                .is_some_and(|v| !v.is_empty());
            inhibited.then_some(())
        },
    )
    .await;
    // ... and two later notifications of other groups, each after a group
    // interval, show the dispatcher has flushed since without sending it
    for marker in ["Marker1", "Marker2"] {
        post_alerts(
            &d,
            json!([{"labels": {"alertname": marker, "instance": "m"}}]),
        )
        .await;
        hook.wait(marker, |b| b["groupLabels"]["alertname"] == marker)
            .await;
    }
    let leaked: Vec<Value> = hook
        .bodies()
        .into_iter()
        .filter(|b| names(b).contains(&"b/firing".to_string()))
        .collect();
    assert!(leaked.is_empty(), "inhibited alert notified: {leaked:?}");
}
