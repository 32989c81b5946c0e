//! End-to-end tests of deployments and autoscaling in `day2 serve`, with
//! the real binary: `day2 deploy mark` from "CI", post-deploy analysis over
//! remote-written samples (enforce mode: a rollback runbook run waiting for
//! approval, one that runs, is verified by PromQL and rolls the deployment
//! back, and one refused after a reload removed remediation), alert
//! annotations, DORA over the API and `/metrics`, a pending analysis and a
//! started rollback across kill -9, and autoscaling policies driving an
//! exec scaler and a Kubernetes deployment (a fake API server holding the
//! recorded contract of the remediation tests).

mod common;
#[path = "../../remediate/tests/common/kube_api.rs"]
mod kube_api;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{
    Day2, client, get_json, now_ms, post_alerts, record_script, recorded, series, wait_for,
};
use serde_json::{Value, json};

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

/// Runs `day2 deploy mark` against `d` with extra flags.
async fn mark(d: &Day2, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_day2"))
        .args(["deploy", "mark", "--url", &d.url("")])
        .args(args)
        .env_remove("DAY2_TOKEN")
        .output()
        .await
        .expect("run day2 deploy mark")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Asserts that the command printed `want` on stdout.
fn assert_stdout(o: &Output, want: &str) {
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(want),
        "no {want:?} in\n{}",
        text(o)
    );
}

/// The id printed by `deploy mark` ("deployment 3 recorded: ...").
fn printed_id(o: &Output) -> i64 {
    let out = String::from_utf8_lossy(&o.stdout);
    out.lines()
        .find_map(|l| {
            l.strip_prefix("deployment ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no deployment id in\n{}", text(o)))
}

/// A line of `/metrics` exactly as given (`name{labels} value`).
async fn metrics(d: &Day2) -> String {
    client()
        .get(d.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

const DEPLOY_CONFIG: &str = r#"
alertmanager:
  config:
    route: { receiver: nobody, group_wait: 1h }
    receivers: [{ name: nobody }]
deployments:
  services:
    api:
      analysis:
        mode: enforce
        window: 3s
        baseline: 10s
        step: 1s
        checks:
          - name: error-ratio
            expr: max(app_error_ratio{service="{{ service }}"})
            compare: { max_increase: 50% }
        rollback_runbook: rollback-api
"#;

/// `rollback-api` needs approval (the default guardrail): the run waits.
const APPROVED_ROLLBACK: &str = r#"
remediation:
  runbooks:
    - name: rollback-api
      match: ['deployment_id=~".+"']
      params:
        - {name: previous_version, pattern: '[a-z0-9.]+', from_label: previous_version}
      steps:
        - name: deploy-previous
          exec: {command: [/bin/true, '{{ param.previous_version }}']}
      guardrails: {target_label: service}
"#;

#[tokio::test]
async fn bad_deploy_fails_analysis_alerts_carry_it_and_dora_follows() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::base_config(&format!("{DEPLOY_CONFIG}{APPROVED_ROLLBACK}"));
    let mut d = Day2::start(dir.path(), &config).await;

    // The error ratio of `api`: 1% until the bad deploy at `bad`, 50% until
    // the fix at `fix`, 1% again after it.
    let bad = now_ms() + 1_000;
    let fix = bad + 5_000;
    let good = bad - 30_000;
    let samples: Vec<(i64, f64)> = (-45..=11)
        .map(|s| {
            let t = bad + s * 1000;
            (t, if t >= bad && t < fix { 0.5 } else { 0.01 })
        })
        .collect();
    let (code, body) = d
        .remote_write(&[series(
            &[("__name__", "app_error_ratio"), ("service", "api")],
            &samples,
        )])
        .await;
    assert_eq!(code, 204, "{body}");

    // v1: window already over, steady error ratio: passes at once
    let o = mark(
        &d,
        &[
            "--service",
            "api",
            "--version",
            "v1",
            "--commit",
            "a1",
            "--commit-time",
            &rfc3339(good - 3_600_000),
            "--time",
            &rfc3339(good),
            "--wait",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    assert_stdout(&o, "post-deploy analysis: pass");
    let v1 = printed_id(&o);

    // v2: the error ratio jumps; --wait reports the failure with exit 1
    let o = mark(
        &d,
        &[
            "--service",
            "api",
            "--version",
            "v2",
            "--commit",
            "b2",
            "--commit-time",
            &rfc3339(bad - 7_200_000),
            "--time",
            &rfc3339(bad),
            "--link",
            "https://ci.example/runs/2",
            "--wait",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_stdout(&o, "post-deploy analysis: fail");
    // the gate does not wait for the rollback run (it waits for approval)
    assert_stdout(&o, "rollback runbook rollback-api started: run 1");
    let v2 = printed_id(&o);
    let dep = get_json(&d, &format!("/api/day2/v1/deployments/{v2}")).await;
    assert_eq!(dep["outcome"], "failed", "{dep}");
    assert_eq!(dep["marked_by"], "local");
    assert_eq!(dep["analysis"]["result"]["verdict"], "fail");
    let series0 = &dep["analysis"]["result"]["checks"][0]["series"][0];
    assert!(series0["current"].as_f64().unwrap() > 0.3, "{dep}");
    assert_eq!(
        (&dep["rollback"]["state"], &dep["rollback"]["run_id"]),
        (&json!("running"), &json!("1")),
        "{dep}"
    );
    assert_eq!(dep["rollback"]["runbook"], "rollback-api");
    let run = get_json(&d, "/api/day2/v1/runs/1").await;
    assert_eq!(run["state"], "awaiting_approval", "{run}");
    assert_eq!(run["requester"], format!("deploy:{v2}"));
    assert_eq!(run["labels"]["previous_version"], "v1");

    // the server refuses bad input, and the CLI says so with exit 1
    let o = mark(&d, &["--service", "api\"}", "--version", "v9"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("400 Bad Request"),
        "{}",
        text(&o)
    );

    // alerts posted after the deploy carry it: by `service`, else `job`
    post_alerts(
        &d,
        json!([
            {"labels": {"alertname": "HighErrors", "service": "api"}},
            {"labels": {"alertname": "Down", "job": "api"}, "annotations": {"summary": "down"}},
            {"labels": {"alertname": "Other", "service": "db"}}
        ]),
    )
    .await;
    let alerts = get_json(&d, "/api/v2/alerts").await;
    let ann = |name: &str| -> Value {
        alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
            .unwrap_or_else(|| panic!("no alert {name} in {alerts}"))["annotations"]
            .clone()
    };
    assert_eq!(ann("HighErrors")["day2_deployment"], v2.to_string());
    assert_eq!(ann("HighErrors")["day2_deployment_version"], "v2");
    assert_eq!(ann("HighErrors")["day2_deployment_at"], rfc3339(bad));
    assert_eq!(
        ann("HighErrors")["day2_deployment_url"],
        "https://ci.example/runs/2"
    );
    assert_eq!(ann("Down")["day2_deployment"], v2.to_string());
    assert_eq!(ann("Down")["summary"], "down");
    assert!(ann("Other").get("day2_deployment").is_none(), "{alerts}");

    // v3 fixes it 5s after v2 (marked once that time has come; its
    // analysis is pending)
    wait_for("v3's deploy time", Duration::from_secs(30), || async {
        (now_ms() > fix).then_some(())
    })
    .await;
    let o = mark(
        &d,
        &[
            "--service",
            "api",
            "--version",
            "v3",
            "--commit",
            "c3",
            "--commit-time",
            &rfc3339(fix - 1_800_000),
            "--time",
            &rfc3339(fix),
        ],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let v3 = printed_id(&o);

    // DORA: 3 deployments, 1 failed, lead times 1h, 2h and 30m, restored 5s after v2
    let dora = get_json(&d, "/api/day2/v1/dora?service=api&window=2h").await;
    let f = &dora["services"][0];
    assert_eq!(f["service"], "api", "{dora}");
    assert_eq!(
        (f["deployments"].as_u64(), f["failed"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(f["change_failure_rate"].as_f64(), Some(1.0 / 3.0));
    assert_eq!(f["lead_time_seconds"]["median"].as_f64(), Some(3600.0));
    assert_eq!(f["lead_time_seconds"]["p90"].as_f64(), Some(6480.0));
    assert_eq!(f["time_to_restore_seconds"]["median"].as_f64(), Some(5.0));
    assert_eq!(dora["window"], "2h");
    let m = metrics(&d).await;
    for line in [
        "day2_dora_deployments{service=\"api\",environment=\"production\"} 3",
        "day2_dora_change_failure_rate{service=\"api\",environment=\"production\"} 0.3333333333333333",
        "day2_dora_time_to_restore_seconds{service=\"api\",environment=\"production\",quantile=\"0.5\"} 5",
        "day2_dora_lead_time_seconds{quantile=\"0.5\"} 3600",
        "day2_deployment_rollbacks_total{result=\"started\"} 1",
        "day2_deployment_analyses_total{verdict=\"fail\"} 1",
    ] {
        assert!(m.lines().any(|l| l == line), "missing {line:?} in\n{m}");
    }

    // v1 is marked failed after the fact: one failure from v1 to v3
    let r = client()
        .post(d.url(&format!("/api/day2/v1/deployments/{v1}/status")))
        .header("X-Day2-User", "alice")
        .json(&json!({"status": "failed", "reason": "customer reports"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let marked: Value = r.json().await.unwrap();
    assert_eq!(marked["statuses"][0]["set_by"], "alice");
    assert_eq!(marked["outcome"], "failed");
    let bad_status = client()
        .post(d.url(&format!("/api/day2/v1/deployments/{v1}/status")))
        .json(&json!({"status": "broken"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_status.status().as_u16(), 400);
    let dora = get_json(&d, "/api/day2/v1/dora?service=api&window=2h").await;
    assert_eq!(dora["services"][0]["failed"], 2);
    assert_eq!(
        dora["services"][0]["time_to_restore_seconds"]["median"].as_f64(),
        Some(35.0)
    );
    let list = get_json(&d, "/api/day2/v1/deployments?service=api").await;
    let versions: Vec<&str> = list["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["v3", "v2", "v1"]);

    // kill -9 while v3's analysis is pending; restart once its window is over
    d.kill9();
    let due = fix + 3_000;
    wait_for("v3's window to end", Duration::from_secs(30), || async {
        (now_ms() > due).then_some(())
    })
    .await;
    let port = d.port;
    let cfg_path = d.config.clone();
    drop(d);
    let d = Day2::start_with(dir.path(), &cfg_path, port).await;
    let dep3 = wait_for(
        "v3's verdict after the restart",
        Duration::from_secs(30),
        || {
            let d = &d;
            async move {
                let v = get_json(d, &format!("/api/day2/v1/deployments/{v3}")).await;
                (v["analysis"]["state"] == "done").then_some(v)
            }
        },
    )
    .await;
    assert_eq!(dep3["analysis"]["result"]["verdict"], "pass", "{dep3}");
    // v2's rollback was not triggered again: its run still waits
    let dep2 = get_json(&d, &format!("/api/day2/v1/deployments/{v2}")).await;
    assert_eq!(dep2["rollback"], dep["rollback"]);
    let runs = get_json(&d, "/api/day2/v1/runs").await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs["runs"][0]["state"], "awaiting_approval");
    let m = metrics(&d).await;
    assert!(
        m.lines()
            .any(|l| l == "day2_deployment_rollbacks_total{result=\"started\"} 0"),
        "{m}"
    );
    assert!(
        m.lines()
            .any(|l| l
                == "day2_dora_failed_deployments{service=\"api\",environment=\"production\"} 2"),
        "{m}"
    );
}

/// `app_error_ratio{service="api"}` once a second from `from` to `to`
/// seconds after `at`: 1% before `at`, 50% from it.
async fn error_jump(d: &Day2, at: i64, from: i64, to: i64) {
    let samples: Vec<(i64, f64)> = (from..=to)
        .map(|s| (at + s * 1000, if s < 0 { 0.01 } else { 0.5 }))
        .collect();
    error_ratio(d, &samples).await;
}

/// `day2 deploy mark` of `api` at `at` (`--wait` when `wait`).
async fn mark_api(d: &Day2, version: &str, at: i64, wait: bool) -> Output {
    let time = rfc3339(at);
    let mut args = vec!["--service", "api", "--version", version, "--time", &time];
    if wait {
        args.push("--wait");
    }
    mark(d, &args).await
}

/// Remote-writes `app_error_ratio{service="api"}`.
async fn error_ratio(d: &Day2, samples: &[(i64, f64)]) {
    let (code, body) = d
        .remote_write(&[series(
            &[("__name__", "app_error_ratio"), ("service", "api")],
            samples,
        )])
        .await;
    assert_eq!(code, 204, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_deploy_runs_its_rollback_runbook_and_ends_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let script = record_script(dir.path());
    let out = dir.path().join("rollback.argv");
    let remediation = format!(
        r#"
remediation:
  verify_interval: 200ms
  runbooks:
    - name: rollback-api
      match: ['deployment_id=~".+"']
      params:
        - {{name: previous_version, pattern: '[a-z0-9.]+', from_label: previous_version}}
        - {{name: service, pattern: '[a-z]+', from_label: service}}
      steps:
        - name: deploy-previous
          exec: {{command: ['{script}', '{out}', deploy, '--service={{{{ param.service }}}}', '{{{{ param.previous_version }}}}']}}
      verify:
        expr: 'max(app_error_ratio{{service="api"}}) < 0.05'
        within: 1m
      guardrails: {{approval: none, target_label: service, cooldown: 0s}}
"#,
        script = script.display(),
        out = out.display()
    );
    let config = common::base_config(&format!("{DEPLOY_CONFIG}{remediation}"));
    let mut d = Day2::start(dir.path(), &config).await;

    // 1% until the bad deploy, 50% over its post-deploy window (nothing later yet)
    let bad = now_ms() + 1_000;
    let good = bad - 30_000;
    error_jump(&d, bad, -45, 3).await;
    let o = mark_api(&d, "v1", good, true).await;
    assert!(o.status.success(), "{}", text(&o));
    let o = mark_api(&d, "v2", bad, true).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_stdout(&o, "post-deploy analysis: fail");
    assert_stdout(&o, "rollback runbook rollback-api started: run 1");
    let v2 = printed_id(&o);

    // the runbook deploys the previous version, by argv
    let argv = wait_for("the rollback step", Duration::from_secs(30), || async {
        recorded(&out)
    })
    .await;
    assert_eq!(argv, ["deploy", "--service=api", "v1"]);
    // the old version is healthy again: the verification holds
    error_ratio(&d, &[(now_ms(), 0.01)]).await;
    let dep = wait_for("v2 rolled back", Duration::from_secs(30), || {
        let d = &d;
        async move {
            let v = get_json(d, &format!("/api/day2/v1/deployments/{v2}")).await;
            (v["outcome"] == "rolled_back").then_some(v)
        }
    })
    .await;
    let mark_ = &dep["statuses"][0];
    assert_eq!(mark_["set_by"], "day2", "{dep}");
    assert_eq!(
        mark_["reason"],
        "rollback runbook rollback-api run 1 verified"
    );
    assert_eq!(
        (&dep["rollback"]["state"], &dep["rollback"]["run_state"]),
        (&json!("done"), &json!("verified")),
        "{dep}"
    );
    let run = get_json(&d, "/api/day2/v1/runs/1").await;
    assert_eq!(
        (&run["state"], &run["requester"]),
        (&json!("verified"), &json!(format!("deploy:{v2}"))),
        "{run}"
    );

    // DORA: one failure of two deployments, restored by the rollback
    let restored_at: jiff::Timestamp = mark_["at"].as_str().unwrap().parse().unwrap();
    let ttr = (restored_at.as_millisecond() - bad) as f64 / 1000.0;
    let dora = get_json(&d, "/api/day2/v1/dora?service=api&window=1h").await;
    let f = &dora["services"][0];
    assert_eq!(
        (
            f["deployments"].as_u64(),
            f["failed"].as_u64(),
            f["open_failures"].as_u64()
        ),
        (Some(2), Some(1), Some(0)),
        "{dora}"
    );
    assert_eq!(f["time_to_restore_seconds"]["median"].as_f64(), Some(ttr));
    let m = metrics(&d).await;
    for line in [
        "day2_deployment_rollback_runs_finished_total{result=\"rolled_back\"} 1".to_string(),
        format!(
            "day2_dora_time_to_restore_seconds{{service=\"api\",environment=\"production\",quantile=\"0.5\"}} {ttr}"
        ),
    ] {
        assert!(m.lines().any(|l| l == line), "missing {line:?} in\n{m}");
    }

    // after kill -9 nothing is run or marked again
    d.kill9();
    let (port, cfg) = (d.port, d.config.clone());
    drop(d);
    let d = Day2::start_with(dir.path(), &cfg, port).await;
    let again = get_json(&d, &format!("/api/day2/v1/deployments/{v2}")).await;
    assert_eq!(again["statuses"], dep["statuses"]);
    assert_eq!(again["rollback"], dep["rollback"]);
    let runs = get_json(&d, "/api/day2/v1/runs").await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
}

#[tokio::test]
async fn a_rollback_due_after_remediation_was_removed_says_it_is_not_configured() {
    let dir = tempfile::tempdir().unwrap();
    let config = |remediation: &str| {
        common::base_config(&format!(
            "{}{remediation}",
            DEPLOY_CONFIG.replace("window: 3s", "window: 15s")
        ))
    };
    let d = Day2::start(dir.path(), &config(APPROVED_ROLLBACK)).await;
    let at = now_ms();
    error_jump(&d, at, -30, 15).await;
    let o = mark_api(&d, "v2", at, false).await;
    assert!(o.status.success(), "{}", text(&o));
    let id = printed_id(&o);
    // the analysis (and its rollback runbook) was fixed when v2 was
    // recorded; remediation goes away before the analysis is due (enforce
    // mode without it is refused, so the new config advises only)
    std::fs::write(
        &d.config,
        config("").replace("mode: enforce", "mode: advisory"),
    )
    .unwrap();
    let r = client().post(d.url("/-/reload")).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let dep = get_json(&d, &format!("/api/day2/v1/deployments/{id}")).await;
    assert_eq!(
        dep["analysis"]["state"], "pending",
        "reloaded too late: {dep}"
    );
    let dep = wait_for("v2's verdict", Duration::from_secs(60), || {
        let d = &d;
        async move {
            let v = get_json(d, &format!("/api/day2/v1/deployments/{id}")).await;
            (v["rollback"]["state"] == "done").then_some(v)
        }
    })
    .await;
    assert_eq!(dep["analysis"]["result"]["verdict"], "fail", "{dep}");
    assert_eq!(
        dep["rollback"]["error"],
        "rollback runbook rollback-api: remediation is not configured"
    );
    assert_eq!(dep["outcome"], "failed");
}

#[tokio::test]
async fn deploy_mark_needs_the_token_when_tokens_are_configured() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("ci.token");
    std::fs::write(&token, "ci-secret-0123456789\n").unwrap();
    let config = common::base_config(&format!(
        "server:\n  auth:\n    tokens:\n      - {{ name: ci, token: 'file:{}' }}\n",
        token.display()
    ));
    let d = Day2::start(dir.path(), &config).await;
    let o = mark(&d, &["--service", "api", "--version", "v1"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("401"),
        "{}",
        text(&o)
    );
    let o = mark(
        &d,
        &[
            "--service",
            "api",
            "--version",
            "v1",
            "--environment",
            "staging",
            "--token-file",
            token.to_str().unwrap(),
            "--wait",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    assert_stdout(&o, "no post-deploy analysis is configured");
    let id = printed_id(&o);
    let dep = get_json(&d, &format!("/api/day2/v1/deployments/{id}")).await;
    assert_eq!(dep["marked_by"], "ci");
    assert_eq!(dep["environment"], "staging");
    assert!(dep["analysis"].is_null());
    // reads stay open; an unknown id is a 404
    let r = client()
        .get(d.url("/api/day2/v1/deployments/999"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert!(!d.log().contains("ci-secret"), "the token reached the log");

    // nobody listening: exit 1 and say so
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_day2"))
        .args([
            "deploy",
            "mark",
            "--service",
            "api",
            "--version",
            "v1",
            "--url",
        ])
        .arg(format!("http://127.0.0.1:{}", common::free_port()))
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot reach"),
        "{}",
        text(&o)
    );
}

/// POSTs a deployment with an optional `Idempotency-Key`; (status, body).
async fn post_deployment(d: &Day2, key: Option<&str>, body: &Value) -> (u16, Value) {
    let mut r = client().post(d.url("/api/day2/v1/deployments")).json(body);
    if let Some(k) = key {
        r = r.header("Idempotency-Key", k);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn deployment_count(d: &Day2) -> usize {
    get_json(d, "/api/day2/v1/deployments?limit=1000").await["deployments"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn retried_marks_with_an_idempotency_key_record_one_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let d = Day2::start(dir.path(), &common::base_config("")).await;

    // the API: a retry gets the first deployment back with 200
    let v1 = json!({"service": "api", "version": "v1", "commits": [{"sha": "abc1"}]});
    let (code, first) = post_deployment(&d, Some("pipeline-7-deploy"), &v1).await;
    assert_eq!(code, 201, "{first}");
    let (code, again) = post_deployment(&d, Some("pipeline-7-deploy"), &v1).await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(deployment_count(&d).await, 1);

    // the same key for another version is a 409 naming the key; nothing recorded
    let v2 = json!({"service": "api", "version": "v2"});
    let (code, body) = post_deployment(&d, Some("pipeline-7-deploy"), &v2).await;
    assert_eq!(code, 409, "{body}");
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains("pipeline-7-deploy"), "{msg}");
    assert_eq!(deployment_count(&d).await, 1);

    // the body field works too, and must agree with the header
    let mut keyed = v2.clone();
    keyed["idempotency_key"] = json!("pipeline-8-deploy");
    let (code, second) = post_deployment(&d, None, &keyed).await;
    assert_eq!(code, 201, "{second}");
    let (code, body) = post_deployment(&d, Some("pipeline-8-deploy"), &v2).await;
    assert_eq!((code, &body["id"]), (200, &second["id"]), "{body}");
    let (code, body) = post_deployment(&d, Some("other"), &keyed).await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("idempotency_key: ")
    );
    // without a key every POST records one
    let (code, _) = post_deployment(&d, None, &v2).await;
    assert_eq!(code, 201);
    assert_eq!(deployment_count(&d).await, 3);

    // the CLI: a retried step records one deployment, another commit another
    let args = ["--service", "web", "--version", "v9", "--commit", "c0ffee"];
    let o = mark(&d, &args).await;
    assert!(o.status.success(), "{}", text(&o));
    assert_stdout(&o, "recorded");
    let id = printed_id(&o);
    let o = mark(&d, &args).await;
    assert!(o.status.success(), "{}", text(&o));
    assert_stdout(&o, "already recorded");
    assert_eq!(printed_id(&o), id);
    assert_eq!(deployment_count(&d).await, 4);
    let o = mark(
        &d,
        &["--service", "web", "--version", "v9", "--commit", "beef01"],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    assert_ne!(printed_id(&o), id);
    // an explicit key reused for another deployment: exit 1 with the 409
    let o = mark(
        &d,
        &[
            "--service",
            "web",
            "--version",
            "v10",
            "--idempotency-key",
            "pipeline-7-deploy",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("409"),
        "{}",
        text(&o)
    );
    assert_eq!(deployment_count(&d).await, 5);
}

/// A `set` script appending its arguments (each in brackets) to `argv.log`
/// and keeping the count; a `get` script printing it.
fn scaler_scripts(dir: &Path) -> (String, String, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let count = dir.join("replicas");
    std::fs::write(&count, "1\n").unwrap();
    let log = dir.join("argv.log");
    let set = dir.join("set.sh");
    std::fs::write(
        &set,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '[%s]' \"$a\" >> '{log}'; done\necho >> '{log}'\nprintf '%s\\n' \"$2\" > '{count}'\n",
            log = log.display(),
            count = count.display()
        ),
    )
    .unwrap();
    let get = dir.join("get.sh");
    std::fs::write(&get, format!("#!/bin/sh\ncat '{}'\n", count.display())).unwrap();
    for p in [&set, &get] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (set.display().to_string(), get.display().to_string(), log)
}

#[tokio::test]
async fn an_autoscaling_policy_drives_an_exec_scaler_up_and_down() {
    let dir = tempfile::tempdir().unwrap();
    let (set, get, log) = scaler_scripts(dir.path());
    let config = common::base_config(&format!(
        r#"
autoscaling:
  policies:
    - name: web
      metric: avg(app_load{{app="web"}})
      target_value: 10
      min: 1
      max: 3
      interval: 1s
      scale_down: {{ stabilization_window: 3s }}
      target:
        kind: exec
        set: ["{set}", --replicas, "{{{{ replicas }}}}"]
        get: ["{get}"]
"#
    ));
    let d = Day2::start(dir.path(), &config).await;
    let load = |v: f64| {
        let d = &d;
        async move {
            let (code, body) = d
                .remote_write(&[series(
                    &[("__name__", "app_load"), ("app", "web")],
                    &[(now_ms(), v)],
                )])
                .await;
            assert_eq!(code, 204, "{body}");
        }
    };
    let argv = || std::fs::read_to_string(&log).unwrap_or_default();

    // three times the target per replica: up to 3 (the max) at once
    load(30.0).await;
    wait_for("a scale-up to 3", Duration::from_secs(30), || async {
        (argv() == "[--replicas][3]\n").then_some(())
    })
    .await;
    // load per replica drops to a fifth: down to 1, but only after 3s of
    // recommendations all saying so
    load(2.0).await;
    wait_for("a scale-down to 1", Duration::from_secs(30), || async {
        (argv() == "[--replicas][3]\n[--replicas][1]\n").then_some(())
    })
    .await;

    // the script ran before the decision was recorded: wait for the record
    let status = wait_for(
        "the scale-down in the history",
        Duration::from_secs(30),
        || {
            let d = &d;
            async move {
                let s = get_json(d, "/api/day2/v1/autoscaling?all=true&limit=1000").await;
                let recorded = s["decisions"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|x| x["action"] == "scale_down"));
                recorded.then_some(s)
            }
        },
    )
    .await;
    let decisions = status["decisions"].as_array().unwrap();
    let at = |v: &Value| {
        v["at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
    };
    let down = decisions
        .iter()
        .find(|x| x["action"] == "scale_down")
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(
        (down["current"].as_i64(), down["desired"].as_i64()),
        (Some(3), Some(1))
    );
    // the last evaluation that still recommended more than 1 is at least the
    // stabilization window before the scale-down
    let last_high = decisions
        .iter()
        .filter(|x| x["recommendation"].as_i64().is_some_and(|r| r > 1) && at(x) < at(down))
        .map(at)
        .max()
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        at(down).duration_since(last_high) >= jiff::SignedDuration::from_secs(3),
        "scaled down at {} but {} still recommended more: {status}",
        at(down),
        last_high
    );
    let policy = &status["policies"][0];
    assert_eq!(policy["name"], "web");
    assert_eq!(policy["current_replicas"], 1);
    let changes = get_json(&d, "/api/day2/v1/autoscaling?policy=web").await;
    let actions: Vec<&str> = changes["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["scale_down", "scale_up"], "{changes}");
    let m = metrics(&d).await;
    assert!(
        m.lines()
            .any(|l| l == "day2_autoscale_scalings_total{policy=\"web\",direction=\"down\"} 1"),
        "{m}"
    );
    let r = client()
        .get(d.url("/api/day2/v1/autoscaling?policy=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_target_is_scaled_through_the_cluster_of_remediation() {
    let dir = tempfile::tempdir().unwrap();
    let scale = "/apis/apps/v1/namespaces/web/deployments/api/scale";
    let (contract, kubeconfig) = kube_api::fake_api(
        dir.path(),
        vec![
            // 5 replicas at twice the target per replica: 10
            kube_api::Expect {
                method: "GET",
                path: scale,
                query: &[],
                content_type: None,
                body: None,
                status: 200,
                reply: "scale-api.json",
            },
            kube_api::Expect {
                method: "PATCH",
                path: scale,
                query: &[("fieldManager", "day2")],
                content_type: Some("application/merge-patch+json"),
                body: Some(json!({"spec": {"replicas": 10}})),
                status: 200,
                reply: "scale-api.json",
            },
        ],
    )
    .await;
    // one evaluation (at start) in the test's time
    let config = common::base_config(&format!(
        r#"
remediation:
  egress: {{ allow: [127.0.0.0/8] }}
  kubernetes: {{ kubeconfig: "{}" }}
autoscaling:
  policies:
    - name: api
      metric: vector(20)
      target_value: 10
      min: 1
      max: 12
      interval: 1h
      target: {{ kind: kubernetes, namespace: web, resource: deployment/api }}
"#,
        kubeconfig.display()
    ));
    let d = Day2::start(dir.path(), &config).await;
    let status = wait_for("the scale-up", Duration::from_secs(30), || {
        let d = &d;
        async move {
            let s = get_json(d, "/api/day2/v1/autoscaling?policy=api").await;
            (s["decisions"][0]["action"] == "scale_up").then_some(s)
        }
    })
    .await;
    let decision = &status["decisions"][0];
    assert_eq!(
        (decision["current"].as_i64(), decision["desired"].as_i64()),
        (Some(5), Some(10)),
        "{status}"
    );
    assert_eq!(
        status["policies"][0]["target"],
        "kubernetes deployment/api in web"
    );
    kube_api::assert_kept(&contract);
}
