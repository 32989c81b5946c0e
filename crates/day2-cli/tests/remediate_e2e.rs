//! Remediation end to end with the real binary: an alert posted to
//! `/api/v2/alerts` is routed to the remediation receiver, a runbook runs an
//! exec step (a script that records its argv), and verification evaluates
//! PromQL over remote-written samples; a failing verification runs the
//! rollback; approval by a second user; hostile label values through the
//! whole path; kill -9 in the middle of a run.

mod common;

use std::path::Path;
use std::time::Duration;

use common::pager::post_as as post;
use common::*;
use serde_json::{Value, json};

/// alertmanager.yml: everything goes to `auto-remediate` (no integrations of
/// its own: day2's remediation takes it), grouped per alert.
const ALERTMANAGER_YML: &str = r#"
route:
  receiver: auto-remediate
  group_by: [alertname, instance]
  group_wait: 200ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: auto-remediate
"#;

fn day2_yml(remediation: &str) -> String {
    format!(
        "host_metrics:\n  enabled: false\nself_metrics:\n  enabled: false\nalertmanager:\n  config_file: alertmanager.yml\nremediation:\n  receivers: [auto-remediate]\n  verify_interval: 100ms\n{remediation}"
    )
}

async fn start(dir: &Path, remediation: &str) -> Day2 {
    start_with(dir, ALERTMANAGER_YML, remediation).await
}

async fn start_with(dir: &Path, alertmanager_yml: &str, remediation: &str) -> Day2 {
    std::fs::write(dir.join("alertmanager.yml"), alertmanager_yml).unwrap();
    Day2::start(dir, &day2_yml(remediation)).await
}

fn alert(labels: Value) -> Value {
    json!([{ "labels": labels, "annotations": {"summary": "x"} }])
}

async fn runs(d: &Day2, runbook: &str) -> Vec<Value> {
    get_json(d, &format!("/api/day2/v1/runs?runbook={runbook}")).await["runs"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until a run of `runbook` reaches `state`; returns it.
async fn wait_run_state(d: &Day2, runbook: &str, state: &str) -> Value {
    wait_for(
        &format!("a {runbook} run in state {state}"),
        Duration::from_secs(30),
        || async {
            runs(d, runbook)
                .await
                .into_iter()
                .find(|r| r["state"] == state)
        },
    )
    .await
}

async fn audit_kinds(d: &Day2, run: u64) -> Vec<String> {
    get_json(d, &format!("/api/day2/v1/audit?run={run}")).await["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

fn error_rate(value: f64) -> day2_model::TimeSeries {
    series(
        &[("__name__", "error_rate"), ("job", "web")],
        &[(now_ms(), value)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_runs_the_runbook_verified_by_promql_and_a_failing_check_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let script = record_script(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let runbooks = dir.path().join("runbooks");
    std::fs::create_dir(&runbooks).unwrap();
    // runbook files in runbooks_dir; the script path is written literally
    std::fs::write(
        runbooks.join("web.yml"),
        format!(
            r#"
runbooks:
  - name: restart-web
    match: ['alertname="HighErrorRate"']
    params:
      - {{name: host, pattern: '[a-z0-9-]+', from_label: instance}}
    steps:
      - name: restart
        exec: {{command: [{script}, {out}/restart, restart, '--host={{{{ param.host }}}}']}}
    verify:
      expr: 'error_rate{{job="web"}} < 0.05'
      within: 20s
    on_failure:
      - name: rollback
        exec: {{command: [{script}, {out}/rollback-web, rollback]}}
    guardrails: {{approval: none, cooldown: 0s}}
  - name: bad-deploy
    match: ['alertname="DeployBroken"']
    steps:
      - name: deploy
        exec: {{command: [{script}, {out}/deploy, deploy]}}
    verify:
      expr: 'error_rate{{job="never"}} < 0.05'
      within: 1s
    on_failure:
      - name: rollback
        exec: {{command: [{script}, {out}/rollback, rollback, '{{{{ param.instance }}}}']}}
    params:
      - {{name: instance, pattern: '[a-z0-9-]+', from_label: instance}}
    guardrails: {{approval: none, cooldown: 0s}}
"#,
            script = script.display(),
            out = out.display(),
        ),
    )
    .unwrap();
    let d = start(dir.path(), "  runbooks_dir: runbooks\n").await;

    // the error rate is high: verification cannot hold yet
    assert_eq!(d.remote_write(&[error_rate(0.5)]).await.0, 204);
    post_alerts(
        &d,
        alert(json!({"alertname": "HighErrorRate", "instance": "web-1"})),
    )
    .await;
    let argv = wait_for("the restart step", Duration::from_secs(30), || async {
        recorded(&out.join("restart"))
    })
    .await;
    assert_eq!(argv, ["restart", "--host=web-1"]);
    let running = runs(&d, "restart-web").await;
    assert_eq!(running.len(), 1);
    assert_eq!(running[0]["requester"], "alert:HighErrorRate");
    // the fix took: the error rate drops and the check holds
    assert_eq!(d.remote_write(&[error_rate(0.01)]).await.0, 204);
    let run = wait_run_state(&d, "restart-web", "verified").await;
    let id = run["id"].as_u64().unwrap();
    assert!(
        !out.join("rollback-web").exists(),
        "no rollback after a pass"
    );
    let kinds = audit_kinds(&d, id).await;
    assert_eq!(
        kinds,
        [
            "proposed",
            "approved",
            "started",
            "step_started",
            "step_finished",
            "verify_started",
            "verified"
        ]
    );
    assert_eq!(run["results"][0]["report"]["outcome"], "exited 0");

    // a deploy whose check never holds: on_failure runs
    post_alerts(
        &d,
        alert(json!({"alertname": "DeployBroken", "instance": "web-2"})),
    )
    .await;
    let run = wait_run_state(&d, "bad-deploy", "rolled_back").await;
    assert_eq!(
        recorded(&out.join("rollback")).unwrap(),
        ["rollback", "web-2"]
    );
    assert_eq!(
        run["reason"], "verification did not hold within 1s",
        "{run}"
    );
    let kinds = audit_kinds(&d, run["id"].as_u64().unwrap()).await;
    for k in ["verify_failed", "failed", "rolling_back", "rolled_back"] {
        assert!(kinds.contains(&k.to_string()), "{k}: {kinds:?}");
    }
    // the runbooks are listed with their file
    let rbs = get_json(&d, "/api/day2/v1/runbooks").await;
    let names: Vec<&str> = rbs["runbooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["restart-web", "bad-deploy"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_needs_a_second_person() {
    let dir = tempfile::tempdir().unwrap();
    let script = record_script(dir.path());
    let marker = dir.path().join("scaled");
    let d = start(
        dir.path(),
        &format!(
            r#"  runbooks:
    - name: scale-up
      match: ['alertname="Saturated"']
      params:
        - {{name: replicas, type: int, min: 1, max: 10}}
      steps:
        - exec: {{command: [{script}, {marker}, '{{{{ param.replicas }}}}']}}
      guardrails: {{cooldown: 0s}}
"#,
            script = script.display(),
            marker = marker.display()
        ),
    )
    .await;
    let (status, run) = post(
        &d,
        "/api/day2/v1/runs",
        "alice",
        json!({"runbook": "scale-up", "labels": {"instance": "db-1"}, "params": {"replicas": "4"}}),
    )
    .await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["state"], "awaiting_approval");
    assert_eq!(run["requester"], "alice");
    let id = run["id"].as_u64().unwrap();
    let approve = format!("/api/day2/v1/runs/{id}/approve");
    let (status, body) = post(&d, &approve, "alice", json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("alice requested this run and cannot approve it"),
        "{body}"
    );
    assert!(!marker.exists());
    let (status, body) = post(&d, &approve, "bob", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let run = wait_run_state(&d, "scale-up", "verified").await;
    assert_eq!(run["approver"], "bob");
    assert_eq!(recorded(&marker).unwrap(), ["4"]);
    let audit = get_json(&d, &format!("/api/day2/v1/audit?run={id}")).await;
    let refused = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "refused")
        .expect("the self-approval is audited");
    assert_eq!(refused["actor"], "alice");

    // an undeclared parameter and a value outside the declaration are refused
    let (status, body) = post(
        &d,
        "/api/day2/v1/runs",
        "alice",
        json!({"runbook": "scale-up", "labels": {"instance": "db-2"}, "params": {"replicas": "4", "cmd": "id"}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("`cmd` is not declared")
    );
    let (status, body) = post(
        &d,
        "/api/day2/v1/runs",
        "alice",
        json!({"runbook": "scale-up", "labels": {"instance": "db-2"}, "params": {"replicas": "11"}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // a rejected run never runs
    let (_, run) = post(
        &d,
        "/api/day2/v1/runs",
        "alice",
        json!({"runbook": "scale-up", "labels": {"instance": "db-3"}, "params": {"replicas": "2"}}),
    )
    .await;
    let id = run["id"].as_u64().unwrap();
    let (status, run) = post(
        &d,
        &format!("/api/day2/v1/runs/{id}/reject"),
        "carol",
        json!({"reason": "not now"}),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["state"], "rejected");
    let (status, _) = post(
        &d,
        &format!("/api/day2/v1/runs/{id}/approve"),
        "bob",
        json!({}),
    )
    .await;
    assert_eq!(status, 409);
    // a dry run records the plan and executes nothing
    let (status, run) = post(
        &d,
        "/api/day2/v1/runs",
        "alice",
        json!({"runbook": "scale-up", "labels": {"instance": "db-4"}, "params": {"replicas": "3"}, "dry_run": true}),
    )
    .await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["state"], "dry_run");
    assert_eq!(recorded(&marker).unwrap(), ["4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_label_values_reach_the_command_as_single_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let script = record_script(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let canary_dir = dir.path().join("canary");
    std::fs::create_dir(&canary_dir).unwrap();
    let canary = canary_dir.join("canary");
    std::fs::write(&canary, "canary\n").unwrap();
    let c = canary_dir.display();
    let hostile = [
        "; rm -rf / #".to_string(),
        "$(id)".into(),
        "`id`".into(),
        "a\nb".into(),
        "--output=/etc/passwd".into(),
        format!("; rm -f {c}/canary #"),
        format!("$(touch {c}/pwned)"),
        format!("`echo pwned > {c}/canary`"),
        "' ; id ; '".into(),
        "{{ 7*7 }}".into(),
    ];
    let d = start(
        dir.path(),
        &format!(
            r#"  runbooks:
    - name: echo
      match: ['alertname="Hostile"']
      params:
        - {{name: n, pattern: 'i[0-9]+', from_label: instance}}
        - {{name: x, pattern: '[\s\S]{{1,200}}', from_label: payload}}
      steps:
        - exec:
            command: [{script}, '{out}/{{{{ param.n }}}}', '{{{{ param.x }}}}', '--v={{{{ param.x }}}}']
            workdir: {c}
      guardrails: {{approval: none, cooldown: 0s, blast_radius: 50}}
"#,
            script = script.display(),
            out = out.display(),
        ),
    )
    .await;
    let alerts: Vec<Value> = hostile
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"labels": {"alertname": "Hostile", "instance": format!("i{i}"), "payload": v}}))
        .collect();
    post_alerts(&d, Value::Array(alerts)).await;
    for (i, v) in hostile.iter().enumerate() {
        let argv = wait_for(
            &format!("run for {v:?}"),
            Duration::from_secs(30),
            || async { recorded(&out.join(format!("i{i}"))) },
        )
        .await;
        assert_eq!(argv, [v.clone(), format!("--v={v}")], "{v:?}");
    }
    wait_for("all runs verified", Duration::from_secs(30), || async {
        let r = runs(&d, "echo").await;
        (r.len() == hostile.len() && r.iter().all(|r| r["state"] == "verified")).then_some(())
    })
    .await;
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "canary\n");
    let names: Vec<String> = std::fs::read_dir(&canary_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["canary"], "a command created files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_run_marks_it_interrupted_and_guardrails_survive() {
    let dir = tempfile::tempdir().unwrap();
    let hang = dir.path().join("hang.sh");
    let started = dir.path().join("started");
    // records its pid, then hangs until killed (the test kills it at the end)
    std::fs::write(
        &hang,
        format!(
            "#!/bin/sh\necho $$ > {}.tmp && mv {0}.tmp {0}\nexec sleep 120\n",
            started.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hang, std::fs::Permissions::from_mode(0o755)).unwrap();
    let remediation = format!(
        r#"  runbooks:
    - name: slow-fix
      match: ['alertname="Slow"']
      steps:
        - name: hang
          exec: {{command: [{}], timeout: 5m}}
      guardrails: {{approval: none, cooldown: 0s, max_runs: {{count: 1, window: 1h}}}}
"#,
        hang.display()
    );
    let mut d = start(dir.path(), &remediation).await;
    post_alerts(&d, alert(json!({"alertname": "Slow", "instance": "app-1"}))).await;
    let pid: i32 = wait_for("the step to start", Duration::from_secs(30), || async {
        std::fs::read_to_string(&started)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    })
    .await;
    let run = runs(&d, "slow-fix").await.remove(0);
    assert_eq!(run["state"], "running");
    d.kill9();
    // the step's process outlives day2's SIGKILL: stop it here
    unsafe { libc::kill(-pid, libc::SIGKILL) };

    let d = Day2::start_with(dir.path(), &d.config.clone(), d.port).await;
    let run = wait_run_state(&d, "slow-fix", "failed").await;
    assert_eq!(
        run["reason"], "interrupted: day2 stopped while the run was running during step hang",
        "{run}"
    );
    // the interrupted run still counts: max_runs 1 per hour refuses another
    let (status, body) = post(
        &d,
        "/api/day2/v1/runs",
        "alice",
        json!({"runbook": "slow-fix", "labels": {"instance": "app-1"}}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("max runs: 1 runs on instance=\"app-1\""),
        "{body}"
    );
    // another target is free
    let (status, body) = post(
        &d,
        "/api/day2/v1/runs",
        "alice",
        json!({"runbook": "slow-fix", "labels": {"instance": "app-2"}, "dry_run": true}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let kinds = audit_kinds(&d, run["id"].as_u64().unwrap()).await;
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("failed"),
        "{kinds:?}"
    );
    assert!(kinds.contains(&"step_started".to_string()));
    assert!(!kinds.contains(&"step_finished".to_string()));
}

fn check_config(path: &Path) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_day2"))
        .args(["check", "config"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_locates_remediation_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("alertmanager.yml"), ALERTMANAGER_YML).unwrap();
    let day2 = dir.path().join("day2.yml");
    let write = |remediation: &str| {
        std::fs::write(
            &day2,
            format!("alertmanager:\n  config_file: alertmanager.yml\nremediation:\n{remediation}"),
        )
        .unwrap()
    };
    write("  receivers: [auto-remediate, nobody]\n");
    let (ok, err) = check_config(&day2);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "{}: remediation.receivers[1]: receiver \"nobody\" is not defined",
            day2.display()
        )),
        "{err}"
    );
    // a runbook file in runbooks_dir: its own file, line and field
    std::fs::create_dir(dir.path().join("rb")).unwrap();
    let rb = dir.path().join("rb").join("a.yml");
    std::fs::write(
        &rb,
        "runbooks:\n  - name: a\n    match: ['alertname=\"X\"']\n    params:\n      - name: host\n        from_label: host\n    steps:\n      - exec: {command: [/bin/true]}\n",
    )
    .unwrap();
    write("  runbooks_dir: rb\n");
    let (ok, err) = check_config(&day2);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "{}:5: runbooks[0].params[0].pattern: a string param needs an allowlist pattern",
            rb.display()
        )),
        "{err}"
    );
    write("  kubernetes: {context: prod}\n");
    let (ok, err) = check_config(&day2);
    assert!(!ok);
    assert!(
        err.contains("remediation.kubernetes: one of kubeconfig or in_cluster: true is required"),
        "{err}"
    );
    write("  egress: {allow: [10.0.0.0/33]}\n");
    let (_, err) = check_config(&day2);
    assert!(err.contains("remediation.egress.allow[0]"), "{err}");
    write("  receivers: [auto-remediate]\n  runbooks_dir: rb\n");
    std::fs::write(
        &rb,
        "runbooks:\n  - name: a\n    match: ['alertname=\"X\"']\n    steps:\n      - exec: {command: [/bin/true]}\n",
    )
    .unwrap();
    let (ok, err) = check_config(&day2);
    assert!(ok, "{err}");
    // receivers without the alert hub
    std::fs::write(&day2, "remediation:\n  receivers: [auto-remediate]\n").unwrap();
    let (ok, err) = check_config(&day2);
    assert!(!ok);
    assert!(
        err.contains("remediation.receivers: receivers need the alert hub"),
        "{err}"
    );
}

fn cli(d: &Day2, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_day2"))
        .arg("runbook")
        .args(args)
        .env("DAY2_URL", d.url(""))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_new_runbooks_and_the_cli_drives_approval() {
    let dir = tempfile::tempdir().unwrap();
    let script = record_script(dir.path());
    let marker = dir.path().join("drained");
    let first = "  runbooks:\n    - name: noop\n      match: ['alertname=\"Noop\"']\n      steps:\n        - exec: {command: [/bin/true]}\n";
    let d = start(dir.path(), first).await;
    let (ok, out, err) = cli(&d, &["list"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("noop\t"), "{out}");
    let second = format!(
        "{first}    - name: drain\n      match: ['alertname=\"NodeBad\"']\n      params:\n        - {{name: node, pattern: '[a-z0-9-]+', from_label: instance}}\n      steps:\n        - exec: {{command: [{}, {}, '{{{{ param.node }}}}']}}\n",
        script.display(),
        marker.display()
    );
    std::fs::write(&d.config, day2_yml(&second)).unwrap();
    let r = client().post(d.url("/-/reload")).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let (_, out, _) = cli(&d, &["list"]);
    assert_eq!(
        out.lines()
            .map(|l| l.split('\t').next().unwrap())
            .collect::<Vec<_>>(),
        ["noop", "drain"]
    );
    let (ok, out, err) = cli(
        &d,
        &[
            "run",
            "drain",
            "--label",
            "instance=node-7",
            "--user",
            "alice",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("\tawaiting_approval\t"), "{out}");
    let id = out.split('\t').next().unwrap().to_string();
    let (ok, _, err) = cli(&d, &["approve", &id, "--user", "alice"]);
    assert!(!ok);
    assert!(
        err.contains("403 Forbidden: refused by guardrail: approval: alice requested this run and cannot approve it"),
        "{err}"
    );
    let (ok, out, err) = cli(&d, &["approve", &id, "--user", "bob"]);
    assert!(ok, "{err}");
    assert!(out.contains("\tdrain\t"), "{out}");
    wait_run_state(&d, "drain", "verified").await;
    assert_eq!(recorded(&marker).unwrap(), ["node-7"]);
    let (_, out, _) = cli(&d, &["runs", "--runbook", "drain"]);
    assert!(out.contains("\tverified\t"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_alert_loop_is_stopped_by_the_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    // the hub repeats the notification every second while the alert fires
    let am = ALERTMANAGER_YML.replace("repeat_interval: 1h", "repeat_interval: 1s");
    let d = start_with(
        dir.path(),
        &am,
        "  runbooks:\n    - name: restart\n      match: ['alertname=\"Flapping\"']\n      steps:\n        - exec: {command: [/bin/true]}\n      guardrails: {approval: none, cooldown: 0s, max_runs: {count: 2, window: 1h}}\n",
    )
    .await;
    post_alerts(
        &d,
        alert(json!({"alertname": "Flapping", "instance": "web-1"})),
    )
    .await;
    // repeated notifications keep proposing; after two runs every one is refused
    // (one arriving while a run is still in progress meets the concurrency limit)
    let max_runs = "max runs: 2 runs on instance=\"web-1\" within 1h (limit 2)";
    let refusals = wait_for(
        "three max-runs refusals",
        Duration::from_secs(30),
        || async {
            let audit = get_json(&d, "/api/day2/v1/audit?limit=1000").await;
            let refused: Vec<String> = audit["audit"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["kind"] == "refused")
                .map(|e| e["outcome"].as_str().unwrap().to_string())
                .collect();
            (refused.iter().filter(|r| r.starts_with(max_runs)).count() >= 3).then_some(refused)
        },
    )
    .await;
    for r in &refusals {
        assert!(
            r.starts_with(max_runs) || r.starts_with("concurrency: 1 run(s) already in progress"),
            "{r}"
        );
    }
    wait_for("both runs verified", Duration::from_secs(30), || async {
        let all = runs(&d, "restart").await;
        assert_eq!(all.len(), 2, "{all:?}");
        all.iter().all(|r| r["state"] == "verified").then_some(())
    })
    .await;
    let refused = refusals.len() as f64;
    let finished = r#"day2_remediation_runs_finished_total{runbook="restart",state="verified"}"#;
    assert_eq!(metric(&d, finished).await, 2.0);
    let counted = metric(&d, r#"day2_remediation_refusals_total{runbook="restart"}"#).await;
    assert!(counted >= refused, "{counted} < {refused}");
    let steps = r#"day2_remediation_steps_total{runbook="restart",result="ok"}"#;
    assert_eq!(metric(&d, steps).await, 2.0);
}
