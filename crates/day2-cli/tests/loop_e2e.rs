//! The whole loop of issue 7 with the real binary: a service scraped by day2
//! exposes its error ratio; `day2 deploy mark` records a bad version; the
//! error ratio rises, a rule's alert fires and the alert hub hands it to
//! incidents (an incident opens), on-call (a page on a loopback webhook) and
//! remediation (a rollback runbook binding `previous_version` from the
//! alert's latest deployment; its exec step, argv only, tells the service to
//! go back to the previous version); the PromQL verification holds, the alert
//! resolves and the incident with it. The failure branch: a verification
//! that never holds runs the `on_failure` escalate step, which pages on-call
//! with its message.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use common::pager::{Hook, post_as};
use common::{Day2, HUB_DAY2_YML, client, get_json, record_script, recorded, wait_for};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// The service under test: `/metrics` says `app_error_ratio` 0.5 while it
/// runs a bad version, 0.01 otherwise. Its version is what the test deploys,
/// unless the rollback runbook wrote one into `marker` (NUL-separated argv,
/// see `record_script`): the last argument is the version to run.
#[derive(Clone)]
struct Service {
    deployed: Arc<Mutex<String>>,
    marker: PathBuf,
}

impl Service {
    async fn start(marker: PathBuf) -> (Service, String) {
        let s = Service {
            deployed: Arc::new(Mutex::new("v1".into())),
            marker,
        };
        let me = s.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let s = me.clone();
                async move {
                    let ratio = if s.version() == "v2" { 0.5 } else { 0.01 };
                    format!(
                        "# TYPE app_error_ratio gauge\napp_error_ratio{{service=\"api\"}} {ratio}\n"
                    )
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        (s, addr)
    }

    fn version(&self) -> String {
        match recorded(&self.marker) {
            Some(argv) => argv.last().cloned().unwrap_or_default(),
            None => self.deployed.lock().clone(),
        }
    }
}

/// day2.yml (and `alertmanager.yml`, the rule file beside it): the service
/// scraped every second, the alert to incidents, on-call and remediation.
fn configs(dir: &Path, target: &str, hook: &str, runbook: &str) -> String {
    std::fs::write(
        dir.join("alertmanager.yml"),
        format!(
            r#"
route:
  receiver: api-team
  group_by: [alertname, service]
  group_wait: 200ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: api-team
    webhook_configs:
      - url: {hook}/chat
        send_resolved: true
"#
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(
        dir.join("rules/api.yml"),
        r#"
groups:
  - name: api
    interval: 1s
    rules:
      - alert: HighErrorRate
        expr: max by (service) (app_error_ratio) > 0.1
        labels: { severity: critical }
        annotations: { summary: "{{ $labels.service }} fails {{ $value }} of its requests" }
"#,
    )
    .unwrap();
    format!(
        r#"{HUB_DAY2_YML}
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: api
    static_configs: [{{ targets: ['{target}'] }}]
rule_files: [rules/*.yml]
deployments:
  services:
    api:
      analysis:
        window: 3s
        baseline: 10s
        step: 1s
        checks:
          - name: error-ratio
            expr: max(app_error_ratio{{service="{{{{ service }}}}"}})
            compare: {{ max_increase: 50% }}
        # advisory: not started by the analysis; a verified run an alert
        # started marks the deployment rolled back
        rollback_runbook: rollback-api
oncall:
  users:
    - {{ id: alice, contact_methods: [{{ webhook: {{ url: "{hook}/page/alice" }} }}] }}
    - {{ id: bob, contact_methods: [{{ webhook: {{ url: "{hook}/page/bob" }} }}] }}
  escalation_policies:
    - name: api
      steps: [{{ targets: [{{ user: alice }}] }}]
  receivers:
    api-team: {{ escalation_policy: api }}
incidents:
  receivers:
    api-team:
      severity_map: {{ default: SEV2 }}
      resolve_with_alerts: true
remediation:
  receivers: [api-team]
  verify_interval: 200ms
  runbooks:
{runbook}"#
    )
}

/// The rollback runbook: deploys `previous_version` (from the alert's
/// latest deployment) by telling the service through `marker`.
fn rollback_runbook(script: &Path, marker: &Path, verify: &str, approval: &str) -> String {
    format!(
        r#"    - name: rollback-api
      match: ['alertname="HighErrorRate"']
      params:
        - {{ name: service, pattern: '[a-z]+', from_label: service }}
        - {{ name: previous_version, pattern: 'v[0-9]+', from_label: previous_version }}
      steps:
        - name: deploy-previous
          exec: {{ command: ['{script}', '{marker}', '--service={{{{ param.service }}}}', '{{{{ param.previous_version }}}}'] }}
      verify:
        expr: '{verify}'
        within: 5s
      on_failure:
        - name: page
          escalate: {{ message: 'rollback of {{{{ param.service }}}} to {{{{ param.previous_version }}}} did not help' }}
      guardrails: {{ approval: {approval}, target_label: service, cooldown: 0s }}
"#,
        script = script.display(),
        marker = marker.display(),
    )
}

async fn deploy_mark(d: &Day2, version: &str, time: Option<jiff::Timestamp>) -> Output {
    let mut args = vec![
        "deploy".to_string(),
        "mark".into(),
        "--url".into(),
        d.url(""),
        "--service".into(),
        "api".into(),
        "--version".into(),
        version.into(),
    ];
    if let Some(t) = time {
        args.extend(["--time".to_string(), t.to_string()]);
    }
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_day2"))
        .args(&args)
        .env_remove("DAY2_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(
        o.status.success(),
        "deploy mark {version}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The id `deploy mark` printed ("deployment 3 recorded: ...").
fn deployment_id(o: &Output) -> i64 {
    let out = String::from_utf8_lossy(&o.stdout);
    out.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no deployment id in {out}"))
}

/// Waits until PromQL `expr` has a non-empty result.
async fn wait_query(d: &Day2, what: &str, expr: &str) {
    wait_for(what, Duration::from_secs(60), || async {
        let r = client()
            .get(d.url("/api/v1/query"))
            .query(&[("query", expr)])
            .send()
            .await
            .ok()?;
        let v: Value = r.json().await.ok()?;
        (!v["data"]["result"].as_array()?.is_empty()).then_some(())
    })
    .await
}

/// The only incident, once `pred` holds for it.
async fn wait_incident(d: &Day2, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, Duration::from_secs(60), || async {
        let list = get_json(d, "/api/day2/v1/incidents?state=all").await;
        let id = list.as_array()?.first()?["id"].as_str()?.to_string();
        let inc = get_json(d, &format!("/api/day2/v1/incidents/{id}")).await;
        pred(&inc).then_some(inc)
    })
    .await
}

/// The only run of `rollback-api`, once it is in `state`.
async fn wait_run(d: &Day2, state: &str) -> Value {
    wait_for(
        &format!("the rollback run {state}"),
        Duration::from_secs(60),
        || async {
            let runs = get_json(d, "/api/day2/v1/runs?runbook=rollback-api").await;
            let run = runs["runs"].as_array()?.first()?.clone();
            (run["state"] == state).then_some(run)
        },
    )
    .await
}

fn kinds(inc: &Value) -> Vec<String> {
    inc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

fn has_entry(inc: &Value, kind: &str, text: &str) -> bool {
    inc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == kind && e["text"].as_str().unwrap_or("").contains(text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_deploy_is_detected_paged_rolled_back_verified_and_the_incident_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let script = record_script(dir.path());
    let marker = dir.path().join("service.version");
    let (service, target) = Service::start(marker.clone()).await;
    let (hook, url) = Hook::start().await;
    let runbook = rollback_runbook(
        &script,
        &marker,
        r#"max(app_error_ratio{service="api"}) < 0.05"#,
        "required",
    );
    let d = Day2::start(dir.path(), &configs(dir.path(), &target, &url, &runbook)).await;

    // v1 runs healthy; a baseline of scrapes before the bad deploy
    deploy_mark(
        &d,
        "v1",
        Some(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60)),
    )
    .await;
    wait_query(
        &d,
        "a baseline of healthy scrapes",
        "count_over_time(app_error_ratio[10s]) >= 5",
    )
    .await;
    *service.deployed.lock() = "v2".into();
    let v2 = deployment_id(&deploy_mark(&d, "v2", None).await);

    // the alert fires: on-call pages alice, an incident opens, a rollback run waits
    hook.wait_page_where("alice", "the page for the alert", |t| {
        t.contains("HighErrorRate")
    })
    .await;
    let inc = wait_incident(&d, "the incident", |_| true).await;
    let id = inc["id"].as_str().unwrap().to_string();
    let run = wait_run(&d, "awaiting_approval").await;
    let run_id = run["id"].as_u64().unwrap();
    // the alert's latest deployment bound previous_version
    assert_eq!(run["labels"]["previous_version"], "v1", "{run}");

    // acknowledging the incident (`day2 ack --incident`) acknowledges the page's escalation
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_day2"))
        .args([
            "ack",
            "--incident",
            &id,
            "--url",
            &d.url(""),
            "--user",
            "alice",
        ])
        .env_remove("DAY2_TOKEN")
        .output()
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.starts_with(&format!("incident {id}: acknowledged at ")),
        "{out}"
    );
    let escalations = get_json(&d, "/api/day2/v1/oncall/escalations?state=all").await;
    let e = &escalations[0];
    assert_eq!(
        (&e["state"], &e["acked_by"]),
        (&json!("acknowledged"), &json!("alice")),
        "{escalations}"
    );

    // bob approves: the runbook deploys v1 by argv, the service recovers
    let (status, body) = post_as(
        &d,
        &format!("/api/day2/v1/runs/{run_id}/approve"),
        "bob",
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let argv = wait_for("the rollback step", Duration::from_secs(30), || async {
        recorded(&marker)
    })
    .await;
    assert_eq!(argv, ["--service=api", "v1"]);
    let run = wait_run(&d, "verified").await;
    assert_eq!(run["id"].as_u64(), Some(run_id));

    // the alert resolves, and the incident with it
    let inc = wait_incident(&d, "the incident resolved", |i| i["status"] == "resolved").await;
    let k = kinds(&inc);
    for want in [
        "alert_firing",
        "notification_sent",
        "acknowledged",
        "remediation_step",
        "alert_resolved",
        "status_change",
    ] {
        assert!(k.iter().any(|x| x == want), "no {want} in {k:?}\n{inc:#}");
    }
    assert!(has_entry(&inc, "notification_sent", "alice"), "{inc:#}");
    assert!(
        has_entry(&inc, "note", "Acknowledged by alice (via incident)"),
        "{inc:#}"
    );
    for text in [
        "awaiting approval",
        "approved",
        "step deploy-previous started: [",
        "step deploy-previous finished",
        "verification started",
        ": verified",
    ] {
        assert!(
            has_entry(&inc, "remediation_step", text),
            "no {text:?} in\n{inc:#}"
        );
    }
    // in order: fired, remediated, resolved (the step heals the service; the
    // verifier and the rule then see the healed series independently, so
    // "verified" and "resolved" may come in either order)
    let pos = |kind: &str, text: &str| {
        inc["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .position(|e| e["kind"] == kind && e["text"].as_str().unwrap_or("").contains(text))
            .unwrap_or_else(|| panic!("no {kind} {text:?}"))
    };
    assert!(pos("alert_firing", "") < pos("remediation_step", "step deploy-previous started"));
    assert!(pos("remediation_step", "step deploy-previous started") < pos("alert_resolved", ""));

    // the postmortem draft has both times
    let r = client()
        .get(d.url(&format!("/api/day2/v1/incidents/{id}/postmortem")))
        .send()
        .await
        .unwrap();
    let md = r.text().await.unwrap();
    for row in ["| Time to acknowledge |", "| Time to resolve |"] {
        let line = md
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("{md}"));
        assert!(!line.contains("not "), "{line}");
    }

    // the verified rollback restored v2's deployment
    let dep = wait_for("v2's analysis", Duration::from_secs(30), || async {
        let v = get_json(&d, &format!("/api/day2/v1/deployments/{v2}")).await;
        (v["analysis"]["state"] == "done").then_some(v)
    })
    .await;
    assert_eq!(dep["analysis"]["result"]["verdict"], "fail", "{dep}");
    assert_eq!(dep["outcome"], "rolled_back", "{dep}");
    let mark = &dep["statuses"][0];
    assert_eq!(
        (&mark["status"], &mark["set_by"], &mark["reason"]),
        (
            &json!("rolled_back"),
            &json!("day2"),
            &json!(format!(
                "rollback runbook rollback-api run {run_id} verified (requested by alert:HighErrorRate)"
            ))
        ),
        "{dep}"
    );

    // DORA: v2 failed (its analysis) and was restored by the rollback; the
    // incident it caused overlaps it: one failure, from the deploy to the
    // later of the rollback and the incident's resolve
    let at = |v: &Value| -> i64 {
        v.as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond()
    };
    let (opened, resolved) = (at(&inc["created_at"]), at(&inc["resolved_at"]));
    let (deployed, rolled_back) = (at(&dep["deployed_at"]), at(&mark["at"]));
    assert!(deployed < opened && opened < rolled_back, "{inc} {dep}");
    let restore = (resolved.max(rolled_back) - deployed) as f64 / 1000.0;
    let dora = wait_for("v2's analysis in DORA", Duration::from_secs(30), || async {
        let v = get_json(&d, "/api/day2/v1/dora?service=api&window=1h").await;
        (v["services"][0]["failed"] == 1).then_some(v)
    })
    .await;
    let f = &dora["services"][0];
    assert_eq!(
        (&f["deployments"], &f["open_failures"]),
        (&json!(2), &json!(0)),
        "{dora}"
    );
    let ttr = &f["time_to_restore_seconds"];
    assert_eq!(ttr["count"], 1, "{dora}");
    let median = ttr["median"].as_f64().unwrap();
    assert!(
        (median - restore).abs() < 1e-6,
        "{median}, not {restore}: {dora}"
    );
    // the resolve refreshed the DORA gauges
    let line = format!(
        "day2_dora_time_to_restore_seconds{{service=\"api\",environment=\"production\",quantile=\"0.5\"}} {median}"
    );
    wait_for("the DORA gauge", Duration::from_secs(20), || async {
        let m = common::metrics_text(&d).await?;
        m.lines().any(|l| l == line).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_that_does_not_help_pages_on_call_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let script = record_script(dir.path());
    let marker = dir.path().join("service.version");
    let (service, target) = Service::start(marker.clone()).await;
    let (hook, url) = Hook::start().await;
    // the verification never holds, and the runbook does not reach the service
    let elsewhere = dir.path().join("nowhere.argv");
    let runbook = rollback_runbook(&script, &elsewhere, "vector(1) > 2", "none");
    let d = Day2::start(dir.path(), &configs(dir.path(), &target, &url, &runbook)).await;
    // a reload keeps remediation connected to on-call and incidents
    let r = client().post(d.url("/-/reload")).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    deploy_mark(
        &d,
        "v1",
        Some(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60)),
    )
    .await;
    *service.deployed.lock() = "v2".into();
    let v2 = deployment_id(&deploy_mark(&d, "v2", None).await);

    let run = wait_run(&d, "rolled_back").await;
    assert_eq!(recorded(&elsewhere).unwrap(), ["--service=api", "v1"]);
    assert_eq!(run["labels"]["previous_version"], "v1", "{run}");
    // the on_failure step paged the policy already escalating the alert
    let page = hook
        .wait_page_where("alice", "the runbook's page", |t| {
            t.starts_with("[day2] rollback of api to v1 did not help")
        })
        .await;
    assert!(
        page["text"]
            .as_str()
            .unwrap()
            .starts_with("rollback of api to v1 did not help\n"),
        "{page}"
    );
    let esc = get_json(&d, "/api/day2/v1/oncall/escalations?state=all").await;
    let direct = esc
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["receiver"] == "runbook:rollback-api")
        .unwrap_or_else(|| panic!("{esc}"));
    assert_eq!(direct["policy"], "api", "{esc}");
    let inc = wait_incident(&d, "the runbook's page on the incident", |i| {
        has_entry(i, "notification_sent", "rollback of api to v1 did not help")
            || has_entry(i, "remediation_step", "step page (on_failure) finished")
    })
    .await;
    assert!(
        has_entry(&inc, "remediation_step", "verification failed"),
        "{inc:#}"
    );
    // a rollback that did not verify leaves the deployment as it was
    let dep = get_json(&d, &format!("/api/day2/v1/deployments/{v2}")).await;
    assert_eq!(dep["statuses"], json!([]), "{dep}");
}

fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/loop")
}

fn day2_cli(args: &[&str]) -> (bool, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_day2"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The README's example stays true: it passes `check config` and its rule
/// tests, and its runbook's escalate step is checked against its on-call.
#[test]
fn the_loop_example_checks_and_its_rule_tests_pass() {
    let dir = example_dir();
    let (ok, out) = day2_cli(&["check", "config", dir.join("day2.yml").to_str().unwrap()]);
    assert!(ok, "{out}");
    let (ok, out) = day2_cli(&["rules", "test", dir.join("api_test.yml").to_str().unwrap()]);
    assert!(ok && out.contains("SUCCESS"), "{out}");

    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&dir, tmp.path());
    let rb = tmp.path().join("runbooks/rollback-api.yml");
    let text = std::fs::read_to_string(&rb).unwrap();
    let broken = text.replace(
        "escalate: { message:",
        "escalate: { policy: database, message:",
    );
    assert_ne!(broken, text);
    std::fs::write(&rb, &broken).unwrap();
    let line = broken
        .lines()
        .position(|l| l.contains("policy: database"))
        .unwrap()
        + 1;
    let (ok, out) = day2_cli(&[
        "check",
        "config",
        tmp.path().join("day2.yml").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        out.contains(&format!(
            "rollback-api.yml:{line}: runbooks[0].on_failure[0].escalate.policy: unknown escalation policy \"database\" (oncall.escalation_policies)"
        )),
        "{out}"
    );
}
