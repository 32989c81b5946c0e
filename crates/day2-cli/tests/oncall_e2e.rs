//! End-to-end tests of on-call and incidents in `day2 serve`: an alert posted
//! to `/api/v2/alerts` pages the on-call user (loopback webhook), escalates to
//! step 2 without an acknowledgement, stops when acknowledged, ends when the
//! alert resolves, and the incident timeline holds every step in order; the
//! signed acknowledgement link; `day2 ack`; escalation timers across kill -9.

mod common;

use std::time::Duration;

use common::pager::{Hook, post_as as post};
use common::{Day2, HUB_DAY2_YML, client, get_json, post_alerts, wait_for};
use serde_json::{Value, json};

const ACK_KEY: &str = "an acknowledgement key, 32 bytes or more";

/// day2.yml and alertmanager.yml in `dir`; `steps` is the policy's step list (YAML flow).
fn configs(dir: &std::path::Path, hook: &str, steps: &str, incidents: bool) -> String {
    std::fs::write(
        dir.join("alertmanager.yml"),
        format!(
            r#"
route:
  receiver: db-pager
  group_by: [alertname]
  group_wait: 200ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: db-pager
    webhook_configs:
      - url: {hook}/chat
        send_resolved: true
"#
        ),
    )
    .unwrap();
    let key = dir.join("ack.key");
    std::fs::write(&key, ACK_KEY).unwrap();
    let incidents = if incidents {
        r#"
incidents:
  receivers:
    db-pager:
      severity_map: { default: SEV2 }
      components: [db]
      resolve_with_alerts: true
  status_page:
    page: { id: test, name: "Test <status>" }
    components: [{ id: db, name: Database }]
"#
    } else {
        ""
    };
    format!(
        r#"{HUB_DAY2_YML}
oncall:
  users:
    - {{ id: alice, contact_methods: [{{ webhook: {{ url: "{hook}/page/alice" }} }}] }}
    - {{ id: bob, contact_methods: [{{ webhook: {{ url: "{hook}/page/bob" }} }}] }}
    - {{ id: carol, contact_methods: [{{ webhook: {{ url: "{hook}/page/carol" }} }}] }}
  schedules:
    - name: primary
      time_zone: UTC
      layers:
        - {{ users: [alice], rotation: daily, start: 2026-01-01 }}
  escalation_policies:
    - name: db
      steps: {steps}
  receivers:
    db-pager: {{ escalation_policy: db }}
  ack_links:
    secret: file:{key}
{incidents}"#,
        key = key.display()
    )
}

fn alert(name: &str, ends_at: Option<&str>) -> Value {
    let mut a = json!({
        "labels": {"alertname": name, "instance": "db1", "severity": "critical"},
        "annotations": {"summary": "db1 is down"},
    });
    if let Some(e) = ends_at {
        a["endsAt"] = json!(e);
    }
    json!([a])
}

async fn escalations(d: &Day2, state: &str) -> Vec<Value> {
    get_json(d, &format!("/api/day2/v1/oncall/escalations?state={state}"))
        .await
        .as_array()
        .unwrap()
        .clone()
}

async fn escalation(d: &Day2, id: i64) -> Value {
    get_json(d, &format!("/api/day2/v1/oncall/escalations/{id}")).await
}

/// The server's clock (the `at` of a who-is-on-call answer).
async fn server_now(d: &Day2) -> jiff::Timestamp {
    let v = get_json(d, "/api/day2/v1/oncall/who").await;
    v[0]["at"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_pages_escalates_stops_on_ack_and_the_incident_timeline_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, url) = Hook::start().await;
    let steps = r#"
        - targets: [{ schedule: primary }]
        - { delay: 2s, targets: [{ user: bob }] }
        - { delay: 10s, targets: [{ user: carol }] }"#;
    let d = Day2::start(dir.path(), &configs(dir.path(), &url, steps, true)).await;
    let who = get_json(&d, "/api/day2/v1/oncall/who?schedule=primary").await;
    assert_eq!(who[0]["user"], "alice");

    // alert fires -> the on-call user (alice, from the schedule) is paged
    post_alerts(&d, alert("DBDown", None)).await;
    let page = hook.wait_page("alice", 1).await;
    assert_eq!(page["kind"], "escalation");
    assert_eq!(page["escalation"]["step"], 1);
    assert_eq!(page["escalation"]["receiver"], "db-pager");
    assert_eq!(page["alerts"][0]["labels"]["alertname"], "DBDown");
    assert!(
        page["ack_url"]
            .as_str()
            .unwrap()
            .starts_with("http://day2.test/oncall/ack/")
    );
    let id = page["escalation"]["id"].as_i64().unwrap();

    // no acknowledgement -> step 2 pages bob when it is due
    let page = hook.wait_page("bob", 1).await;
    assert_eq!(page["escalation"]["step"], 2);
    let e = escalation(&d, id).await;
    assert_eq!(e["state"], "escalating");
    let step3_due: jiff::Timestamp = e["next_step_at"].as_str().unwrap().parse().unwrap();
    assert!(hook.pages("carol").is_empty());

    // acknowledged by bob through the API -> escalation stops
    let (status, ack) = post(
        &d,
        &format!("/api/day2/v1/oncall/escalations/{id}/ack"),
        "bob",
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["acknowledged_now"], true);
    assert_eq!(ack["acked_by"], "bob");
    let e = escalation(&d, id).await;
    assert_eq!(e["state"], "acknowledged");
    assert_eq!(e["ack_via"], "api");
    assert_eq!(e["next_step_at"], Value::Null);
    // wait until the server's clock is past step 3's due time: carol is never paged
    wait_for(
        "the server's clock past step 3",
        Duration::from_secs(30),
        || async {
            (server_now(&d).await > step3_due + jiff::SignedDuration::from_secs(1)).then_some(())
        },
    )
    .await;
    let e = escalation(&d, id).await;
    assert_eq!(e["steps"].as_array().unwrap().len(), 2, "{e}");
    assert!(hook.pages("carol").is_empty());
    assert_eq!(hook.pages("alice").len(), 1);
    assert_eq!(hook.pages("bob").len(), 1);

    // the alert resolves -> escalation ends, the incident resolves with it
    let now = jiff::Timestamp::now().to_string();
    post_alerts(&d, alert("DBDown", Some(&now))).await;
    wait_for("the escalation to end", Duration::from_secs(30), || async {
        (escalation(&d, id).await["state"] == "resolved").then_some(())
    })
    .await;
    let (status, _) = post(
        &d,
        &format!("/api/day2/v1/oncall/escalations/{id}/ack"),
        "bob",
        json!({}),
    )
    .await;
    assert_eq!(status, 409, "nothing to acknowledge after the resolve");

    let list = get_json(&d, "/api/day2/v1/incidents?state=all").await;
    let inc_id = list[0]["id"].as_str().unwrap().to_string();
    let inc = wait_for(
        "the incident to resolve",
        Duration::from_secs(30),
        || async {
            let inc = get_json(&d, &format!("/api/day2/v1/incidents/{inc_id}")).await;
            (inc["status"] == "resolved").then_some(inc)
        },
    )
    .await;
    assert_eq!(inc["severity"], "SEV2");
    let timeline: Vec<(String, String)> = inc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: [(&str, &str); 7] = [
        ("status_change", "Incident opened as SEV2"),
        ("alert_firing", "DBDown firing"),
        (
            "notification_sent",
            "Paged alice via webhook (step 1, round 1)",
        ),
        (
            "notification_sent",
            "Paged bob via webhook (step 2, round 1)",
        ),
        ("acknowledged", "Acknowledged by bob (via api)"),
        ("alert_resolved", "DBDown resolved"),
        ("status_change", "Resolved"),
    ];
    let mut pos = 0;
    for (kind, text) in want {
        let found = timeline[pos..]
            .iter()
            .position(|(k, t)| k == kind && t.starts_with(text))
            .unwrap_or_else(|| panic!("{kind} {text:?} not found in order in {timeline:#?}"));
        pos += found + 1;
    }
    assert!(
        timeline.iter().any(
            |(k, t)| k == "notification_sent" && t.starts_with("Notified db-pager via webhook")
        ),
        "the team webhook's notification: {timeline:#?}"
    );
    assert!(inc["acknowledged_at"].is_string());

    // the postmortem draft, as a Markdown download
    let r = client()
        .get(d.url(&format!("/api/day2/v1/incidents/{inc_id}/postmortem")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/markdown; charset=utf-8");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let md = r.text().await.unwrap();
    assert!(md.contains("| Time to acknowledge |"), "{md}");
    assert!(md.contains("Paged bob via webhook"), "{md}");

    // the public status page lists it in its history, escaped, with a CSP
    let r = client().get(d.url("/status")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("Test &lt;status&gt;"), "{html}");
    let page = get_json(&d, "/status.json").await;
    assert_eq!(page["history"][0]["id"], inc_id.as_str());
    assert!(
        !page.to_string().contains("db1"),
        "no labels on the public page"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_link_shows_a_form_on_get_and_acknowledges_on_post_and_day2_ack_works() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, url) = Hook::start().await;
    let steps = r#"
        - targets: [{ schedule: primary }]
        - { delay: 10m, targets: [{ user: bob }] }"#;
    let d = Day2::start(dir.path(), &configs(dir.path(), &url, steps, false)).await;
    post_alerts(&d, alert("DBDown", None)).await;
    let page = hook.wait_page("alice", 1).await;
    let id = page["escalation"]["id"].as_i64().unwrap();
    let link = page["ack_url"].as_str().unwrap();
    let path = link.strip_prefix("http://day2.test").unwrap();

    // GET (what a link scanner does): a form, nothing acknowledged
    let r = client().get(d.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("form-action 'self'")
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("<form method=\"post\">"), "{html}");
    assert!(html.contains("Acknowledge as alice"), "{html}");
    assert_eq!(escalation(&d, id).await["state"], "escalating");

    // a tampered token is refused
    let bad = format!("{}0", path.trim_end_matches(char::is_alphanumeric));
    let r = client().post(d.url(&bad)).send().await.unwrap();
    assert_eq!(r.status(), 403);

    // POST (the form's button): acknowledged as alice, via the link
    let r = client().post(d.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Acknowledged by alice"));
    let e = escalation(&d, id).await;
    assert_eq!(e["state"], "acknowledged");
    assert_eq!(
        (e["acked_by"].as_str(), e["ack_via"].as_str()),
        (Some("alice"), Some("link"))
    );
    let r = client().get(d.url(path)).send().await.unwrap();
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Already acknowledged by alice")
    );

    // `day2 ack --alert FP` against the server, for another alert group
    post_alerts(&d, alert("DiskFull", None)).await;
    let page = hook.wait_page("alice", 2).await;
    let fp = page["alerts"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_day2"))
        .args([
            "ack",
            "--alert",
            &fp,
            "--url",
            &d.url(""),
            "--user",
            "carol",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("acknowledged by carol"), "{stdout}");
    let open = escalations(&d, "open").await;
    let e = open
        .iter()
        .find(|e| e["alerts"][0]["fingerprint"] == fp.as_str())
        .unwrap();
    assert_eq!(
        (e["acked_by"].as_str(), e["ack_via"].as_str()),
        (Some("carol"), Some("cli"))
    );
    // an unknown escalation is a clear error, exit 1
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_day2"))
        .args(["ack", "999", "--url", &d.url("")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no escalation 999"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_timers_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, url) = Hook::start().await;
    let steps = r#"
        - targets: [{ schedule: primary }]
        - { delay: 5s, targets: [{ user: bob }] }
        - { delay: 5s, targets: [{ user: carol }] }"#;
    let mut d = Day2::start(dir.path(), &configs(dir.path(), &url, steps, false)).await;
    post_alerts(&d, alert("DBDown", None)).await;
    let page = hook.wait_page("alice", 1).await;
    let id = page["escalation"]["id"].as_i64().unwrap();
    // alice's page is recorded as sent before the kill (so it is not in flight)
    let e = wait_for("alice's page recorded", Duration::from_secs(30), || async {
        let e = escalation(&d, id).await;
        (e["pages"][0]["state"] == "sent").then_some(e)
    })
    .await;
    let triggered: jiff::Timestamp = e["triggered_at"].as_str().unwrap().parse().unwrap();
    d.kill9();

    // down until steps 2 and 3 are both due (same machine, same clock)
    let both_due = triggered + jiff::SignedDuration::from_secs(11);
    wait_for(
        "steps 2 and 3 to come due while down",
        Duration::from_secs(30),
        || async { (jiff::Timestamp::now() > both_due).then_some(()) },
    )
    .await;
    assert!(hook.pages("bob").is_empty());

    let d = Day2::start_with(dir.path(), &d.config.clone(), common::free_port()).await;
    hook.wait_page("bob", 1).await;
    hook.wait_page("carol", 1).await;
    let e = wait_for("every page recorded", Duration::from_secs(30), || async {
        let e = escalation(&d, id).await;
        let pages = e["pages"].as_array().unwrap();
        (pages.len() == 3 && pages.iter().all(|p| p["state"] == "sent")).then_some(e)
    })
    .await;
    let steps: Vec<(u64, u64)> = e["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["round"].as_u64().unwrap(), s["step"].as_u64().unwrap()))
        .collect();
    assert_eq!(steps, [(1, 1), (1, 2), (1, 3)]);
    assert_eq!(e["next_step_at"], Value::Null, "every step has fired");
    // each page exactly once: no pending page is left to repeat one
    assert_eq!(hook.pages("alice").len(), 1);
    assert_eq!(hook.pages("bob").len(), 1);
    assert_eq!(hook.pages("carol").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_by_hand_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, url) = Hook::start().await;
    let steps = r#"
        - targets: [{ schedule: primary }]"#;
    let d = Day2::start(dir.path(), &configs(dir.path(), &url, steps, true)).await;
    // an alert to link later (it also opens its own incident through db-pager)
    post_alerts(&d, alert("DiskFull", None)).await;
    let fp = hook.wait_page("alice", 1).await["alerts"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();

    let (status, inc) = post(
        &d,
        "/api/day2/v1/incidents",
        "carol",
        json!({"title": "Checkout <errors>", "severity": "SEV3", "components": ["db"],
               "public_title": "Slow <b>checkout</b>"}),
    )
    .await;
    assert_eq!(status, 200, "{inc}");
    let id = inc["id"].as_str().unwrap().to_string();
    assert_eq!(inc["timeline"][0]["actor"]["user"], "carol");
    let act = |action: &'static str, body: Value| {
        let path = format!("/api/day2/v1/incidents/{id}/{action}");
        let d = &d;
        async move { post(d, &path, "dave", body).await }
    };
    assert_eq!(
        act(
            "status",
            json!({"status": "identified", "message": "a bad deploy"})
        )
        .await
        .0,
        200
    );
    assert_eq!(act("severity", json!({"severity": "SEV2"})).await.0, 200);
    assert_eq!(
        act("role", json!({"role": "commander", "user": "carol"}))
            .await
            .0,
        200
    );
    assert_eq!(act("note", json!({"text": "rolling back"})).await.0, 200);
    let (s, v) = act("link-alert", json!({"fingerprint": fp})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["alerts"][0]["labels"]["alertname"], "DiskFull",
        "labels from the hub"
    );
    assert_eq!(
        act("public-update", json!({"body": "A fix is rolling out."}))
            .await
            .0,
        200
    );
    assert_eq!(
        act(
            "remediation",
            json!({"text": "kubectl rollout undo deploy/checkout"})
        )
        .await
        .0,
        200
    );
    let (s, e) = act("status", json!({"status": "bogus"})).await;
    assert_eq!(s, 400, "{e}");
    let (s, v) = act("status", json!({"status": "resolved"})).await;
    assert_eq!(s, 200, "{v}");
    let (s, e) = act("status", json!({"status": "monitoring"})).await;
    assert_eq!(s, 409, "{e}");
    assert!(e["error"].as_str().unwrap().contains("reopen"), "{e}");
    let r = client()
        .post(d.url("/api/day2/v1/incidents/INC-99/note"))
        .json(&json!({"text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let inc = get_json(&d, &format!("/api/day2/v1/incidents/{id}")).await;
    let kinds: Vec<&str> = inc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in [
        "status_change",
        "acknowledged",
        "severity_change",
        "role_change",
        "note",
        "alert_firing",
        "notification_sent",
        "remediation_step",
    ] {
        assert!(kinds.contains(&k), "{k} missing in {kinds:?}");
    }
    assert_eq!(inc["roles"]["commander"], "carol");
    assert!(inc["acknowledged_at"].is_string());
    // the alert's earlier page was imported when it was linked
    assert!(
        inc["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["text"] == "Paged alice via webhook (step 1, round 1)"),
        "{inc}"
    );

    // scheduled maintenance and the public page
    let (s, m) = post(
        &d,
        "/api/day2/v1/status/maintenances",
        "carol",
        json!({"id": "upgrade", "title": "Database <upgrade>", "components": ["db"],
               "scheduled_for": "2099-01-01T00:00:00Z", "scheduled_until": "2099-01-01T01:00:00Z"}),
    )
    .await;
    assert_eq!(s, 200, "{m}");
    let page = get_json(&d, "/status.json").await;
    assert_eq!(
        page["scheduled_maintenances"][0]["name"],
        "Database <upgrade>"
    );
    let hist = page["history"].as_array().unwrap();
    let mine = hist.iter().find(|i| i["id"] == id.as_str()).unwrap();
    assert_eq!(mine["name"], "Slow <b>checkout</b>");
    assert_eq!(mine["incident_updates"][0]["body"], "A fix is rolling out.");
    assert!(
        !page.to_string().contains("rolling back"),
        "notes are internal"
    );
    let html = client()
        .get(d.url("/status"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Database &lt;upgrade&gt;"), "{html}");
    assert!(
        html.contains("Slow &lt;b&gt;checkout&lt;&#x2f;b&gt;"),
        "{html}"
    );
    let r = client()
        .delete(d.url("/api/day2/v1/status/maintenances/upgrade"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list = get_json(&d, "/api/day2/v1/incidents?state=all").await;
    assert!(list.as_array().unwrap().len() >= 2);
    assert!(list[0].get("timeline").is_none(), "the list is a summary");
}
