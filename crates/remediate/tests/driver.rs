//! The async driver with real processes: a failing verification runs the
//! on_failure steps (rollback); an executor with nothing configured fails its step.

mod common;

use common::*;
use day2_remediate::driver::{Executors, drive};
use day2_remediate::{AuditKind, ExecPolicy, Proposal, RunState, Runs};
use std::time::Duration;

fn proposal() -> Proposal {
    Proposal {
        labels: labels(&[("alertname", "Bad"), ("instance", "web1")]),
        requester: "alert:Bad".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn failing_verification_triggers_the_rollback_steps() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("rolled-back");
    let rb = runbook(&format!(
        r#"
runbooks:
  - name: deploy-fix
    match: ['alertname="Bad"']
    steps:
      - name: act
        exec: {{command: [/bin/true]}}
    verify:
      expr: 'error_rate{{job="web"}} < 0.01'
      within: 300ms
    on_failure:
      - name: rollback
        exec: {{command: [/usr/bin/touch, {}]}}
    guardrails:
      approval: none
"#,
        yq(&marker.display().to_string())
    ));
    let mut runs = Runs::new();
    let id = runs.propose(&rb, proposal(), ts(0)).unwrap();
    let state = drive(
        &mut runs,
        id,
        &Executors::from(ExecPolicy::default()),
        &Always(false),
        &RealClock,
        Duration::from_millis(50),
    )
    .await
    .unwrap();
    assert_eq!(state, RunState::RolledBack);
    assert!(marker.exists(), "the rollback step did not run");
    let kinds: Vec<_> = runs.audit().iter().map(|e| e.kind).collect();
    assert!(
        kinds.contains(&AuditKind::VerifyFailed) && kinds.contains(&AuditKind::RollingBack),
        "{kinds:?}"
    );

    // The same runbook with a condition that holds: verified, no rollback.
    let marker2 = dir.path().join("unused");
    let rb2 = runbook(&format!(
        "runbooks:\n  - name: ok\n    match: ['alertname=\"Bad\"']\n    steps:\n      - exec: {{command: [/bin/true]}}\n    verify: {{expr: 'vector(1)', within: 1m}}\n    on_failure:\n      - exec: {{command: [/usr/bin/touch, {}]}}\n    guardrails: {{approval: none}}\n",
        yq(&marker2.display().to_string())
    ));
    let id = runs.propose(&rb2, proposal(), ts(0)).unwrap();
    let state = drive(
        &mut runs,
        id,
        &Executors::from(ExecPolicy::default()),
        &Always(true),
        &RealClock,
        Duration::from_millis(50),
    )
    .await
    .unwrap();
    assert_eq!(state, RunState::Verified);
    assert!(!marker2.exists());
}

#[tokio::test(flavor = "current_thread")]
async fn an_unconfigured_executor_fails_the_step_and_approval_stops_the_driver() {
    let rb = runbook(
        "runbooks:\n  - name: hook\n    match: ['alertname=\"Bad\"']\n    steps:\n      - kubernetes: {action: rollout_restart, namespace: web, deployment: api}\n",
    );
    let mut runs = Runs::new();
    let id = runs.propose(&rb, proposal(), ts(0)).unwrap();
    let policy = ExecPolicy::default();
    // approval is required by default: the driver stops there
    let state = drive(
        &mut runs,
        id,
        &Executors::from(policy.clone()),
        &Always(true),
        &RealClock,
        Duration::from_millis(50),
    )
    .await
    .unwrap();
    assert_eq!(state, RunState::AwaitingApproval);
    runs.approve(id, "oncall-bob", ts(1)).unwrap();
    let state = drive(
        &mut runs,
        id,
        &Executors::from(policy.clone()),
        &Always(true),
        &RealClock,
        Duration::from_millis(50),
    )
    .await
    .unwrap();
    assert_eq!(state, RunState::Failed);
    let run = runs.get(id).unwrap();
    assert_eq!(
        run.reason.as_deref(),
        Some(
            "step step-1 failed: no Kubernetes cluster is configured (remediation.kubernetes in day2.yml)"
        )
    );
}
