//! Guardrails and the run state machine, driven with a frozen clock (no
//! process runs here except where a test says so).

mod common;

use common::*;
use day2_remediate::run::StepReport;
use day2_remediate::{AuditKind, LoadedRunbook, Next, Proposal, Refusal, RunError, RunState, Runs};
use jiff::Timestamp;

fn rb(guardrails: &str, extra: &str) -> LoadedRunbook {
    runbook(&format!(
        r#"
runbooks:
  - name: restart-api
    match: ['alertname="ApiDown"']
    params:
      - name: host
        pattern: '[a-z0-9.-]+(:[0-9]+)?'
        from_label: instance
    steps:
      - name: restart
        exec:
          command: [/usr/bin/systemctl, restart, api, '--host={{{{ param.host }}}}']
{extra}
    guardrails:
{guardrails}
"#
    ))
}

fn alert(instance: &str) -> Proposal {
    Proposal {
        labels: labels(&[("alertname", "ApiDown"), ("instance", instance)]),
        requester: "alert:ApiDown".into(),
        ..Default::default()
    }
}

/// Runs an approved run's single step with the given result.
fn complete(runs: &mut Runs, id: u64, ok: bool, now: Timestamp) -> RunState {
    runs.start(id, now).unwrap();
    runs.begin_step(id, now).unwrap();
    let report = if ok {
        StepReport {
            ok: true,
            outcome: "exited 0".into(),
            exec: None,
            http: None,
        }
    } else {
        StepReport::failed("exited 1")
    };
    runs.finish_step(id, report, now).unwrap()
}

#[test]
fn runaway_loop_is_stopped_by_cooldown_and_max_runs() {
    let rb = rb(
        "      approval: none\n      cooldown: 10m\n      max_runs: {count: 3, window: 1h}\n      circuit_breaker: {failures: 3, reset_after: 1h}",
        "",
    );
    let mut runs = Runs::new();
    let mut started = Vec::new();
    let (mut cooldowns, mut max_runs) = (0, 0);
    // The alert fires every 30 s for two hours and each firing proposes a run.
    for i in 0..240 {
        let now = ts(i * 30);
        match runs.propose(&rb, alert("db1:9100"), now) {
            Ok(id) => {
                assert_eq!(complete(&mut runs, id, true, now), RunState::Verified);
                started.push(i * 30);
            }
            Err(Refusal::Cooldown { .. }) => cooldowns += 1,
            Err(Refusal::MaxRuns { count, limit, .. }) => {
                assert_eq!((count, limit), (3, 3));
                max_runs += 1
            }
            Err(other) => panic!("unexpected refusal: {other}"),
        }
    }
    assert_eq!(
        started,
        vec![0, 600, 1200, 3600, 4200, 4800],
        "runs at 0, 10m, 20m, then after the window"
    );
    assert!(cooldowns > 0 && max_runs > 0, "{cooldowns} {max_runs}");
    // Never more than 3 in any hour.
    for w in started.windows(4) {
        assert!(w[3] - w[0] >= 3600);
    }
    // Every refusal is in the audit trail with the guardrail named.
    let refused: Vec<_> = runs
        .audit()
        .iter()
        .filter(|e| e.kind == AuditKind::Refused)
        .collect();
    assert_eq!(refused.len(), 240 - 6);
    assert!(
        refused
            .iter()
            .any(|e| e.outcome.as_deref().unwrap().starts_with("cooldown:"))
    );
    assert!(
        refused
            .iter()
            .any(|e| e.outcome.as_deref().unwrap().starts_with("max runs:"))
    );
    assert!(refused.iter().all(|e| e.target == "instance=\"db1:9100\""));
}

#[test]
fn runaway_loop_awaiting_approval_does_not_pile_up() {
    let rb = rb("      approval: required", "");
    let mut runs = Runs::new();
    let first = runs.propose(&rb, alert("db1"), ts(0)).unwrap();
    assert_eq!(runs.get(first).unwrap().state, RunState::AwaitingApproval);
    for i in 1..100 {
        let err = runs.propose(&rb, alert("db1"), ts(i * 15)).unwrap_err();
        assert!(
            matches!(
                err,
                Refusal::Concurrency {
                    active: 1,
                    limit: 1,
                    ..
                }
            ),
            "{err}"
        );
    }
    assert_eq!(runs.iter().count(), 1);
}

#[test]
fn circuit_breaker_opens_after_repeated_failures_then_half_opens() {
    let rb = rb(
        "      approval: none\n      cooldown: \"0\"\n      blast_radius: 10\n      max_runs: {count: 100, window: 1h}\n      circuit_breaker: {failures: 3, reset_after: 30m}",
        "",
    );
    let mut runs = Runs::new();
    for (i, host) in ["a", "b", "c"].iter().enumerate() {
        let now = ts(i as i64 * 60);
        let id = runs.propose(&rb, alert(host), now).unwrap();
        assert_eq!(complete(&mut runs, id, false, now), RunState::Failed);
    }
    assert_eq!(runs.breaker("restart-api").unwrap().consecutive_failures, 3);
    // Open: any target is refused until reset_after has passed.
    let err = runs.propose(&rb, alert("d"), ts(200)).unwrap_err();
    let Refusal::CircuitOpen {
        failures,
        half_open_at,
    } = err
    else {
        panic!("{err}")
    };
    assert_eq!((failures, half_open_at), (3, ts(120 + 1800)));
    assert!(
        err.to_string().starts_with("circuit breaker: open after 3"),
        "{err}"
    );
    assert!(runs.propose(&rb, alert("d"), ts(120 + 1799)).is_err());
    // Half-open: one trial run; others wait for it.
    let trial = runs.propose(&rb, alert("d"), ts(120 + 1800)).unwrap();
    let err = runs.propose(&rb, alert("e"), ts(120 + 1801)).unwrap_err();
    assert_eq!(err, Refusal::CircuitHalfOpen { trial });
    // The trial fails: open again from now.
    assert_eq!(
        complete(&mut runs, trial, false, ts(2000)),
        RunState::Failed
    );
    assert!(matches!(
        runs.propose(&rb, alert("e"), ts(2001)),
        Err(Refusal::CircuitOpen { .. })
    ));
    // Next trial succeeds: closed, counts reset.
    let trial = runs.propose(&rb, alert("e"), ts(2000 + 1800)).unwrap();
    assert_eq!(
        complete(&mut runs, trial, true, ts(3900)),
        RunState::Verified
    );
    assert_eq!(runs.breaker("restart-api").unwrap().consecutive_failures, 0);
    let id = runs.propose(&rb, alert("f"), ts(3901)).unwrap();
    let id2 = runs.propose(&rb, alert("g"), ts(3901)).unwrap();
    assert!(id2 > id);
}

#[test]
fn an_approved_run_cannot_start_once_the_breaker_opened() {
    let rb = rb(
        "      approval: required\n      cooldown: \"0\"\n      blast_radius: 10\n      circuit_breaker: {failures: 1, reset_after: 1h}",
        "",
    );
    let mut runs = Runs::new();
    let a = runs.propose(&rb, alert("a"), ts(0)).unwrap();
    let b = runs.propose(&rb, alert("b"), ts(0)).unwrap();
    runs.approve(a, "alice", ts(1)).unwrap();
    runs.approve(b, "alice", ts(1)).unwrap();
    assert_eq!(complete(&mut runs, a, false, ts(2)), RunState::Failed);
    let err = runs.start(b, ts(3)).unwrap_err();
    assert!(
        matches!(err, RunError::Refused(Refusal::CircuitOpen { .. })),
        "{err}"
    );
    assert_eq!(runs.get(b).unwrap().state, RunState::Rejected);
}

#[test]
fn the_requester_cannot_approve_their_own_run() {
    let rb = rb("      approval: required", "");
    let mut runs = Runs::new();
    let p = Proposal {
        requester: "alice".into(),
        ..alert("db1")
    };
    let id = runs.propose(&rb, p, ts(0)).unwrap();
    let err = runs.approve(id, "alice", ts(1)).unwrap_err();
    assert_eq!(
        err,
        RunError::Refused(Refusal::SelfApproval {
            user: "alice".into()
        })
    );
    assert!(
        err.to_string()
            .contains("approval: alice requested this run"),
        "{err}"
    );
    assert!(matches!(
        runs.approve(id, " ", ts(1)),
        Err(RunError::Refused(Refusal::NoApprover))
    ));
    assert_eq!(runs.get(id).unwrap().state, RunState::AwaitingApproval);
    assert_eq!(runs.next(id).unwrap(), Next::AwaitApproval);
    // Starting without approval is not a transition.
    assert!(matches!(
        runs.start(id, ts(1)),
        Err(RunError::InvalidTransition { .. })
    ));
    runs.approve(id, "bob", ts(2)).unwrap();
    let run = runs.get(id).unwrap();
    assert_eq!(
        (run.state, run.approver.as_deref()),
        (RunState::Approved, Some("bob"))
    );
    let kinds: Vec<_> = runs
        .audit()
        .iter()
        .map(|e| (e.kind, e.actor.clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (AuditKind::Proposed, Some("alice".into())),
            (AuditKind::AwaitingApproval, None),
            (AuditKind::Refused, Some("alice".into())),
            (AuditKind::Refused, Some(" ".into())),
            (AuditKind::Approved, Some("bob".into())),
        ]
    );
}

#[test]
fn rejection_ends_a_run_and_frees_the_target() {
    let rb = rb("      approval: required\n      cooldown: 10m", "");
    let mut runs = Runs::new();
    let id = runs.propose(&rb, alert("db1"), ts(0)).unwrap();
    runs.reject(id, "bob", "not now", ts(5)).unwrap();
    assert_eq!(runs.get(id).unwrap().state, RunState::Rejected);
    // A rejected run neither occupies the target nor starts a cooldown.
    runs.propose(&rb, alert("db1"), ts(6)).unwrap();
}

#[test]
fn concurrency_per_target_and_blast_radius() {
    let rb = rb(
        "      approval: none\n      cooldown: \"0\"\n      blast_radius: 2",
        "",
    );
    let mut runs = Runs::new();
    let a = runs.propose(&rb, alert("a"), ts(0)).unwrap();
    runs.start(a, ts(0)).unwrap();
    let err = runs.propose(&rb, alert("a"), ts(1)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("concurrency: 1 run(s) already in progress on instance=\"a\""),
        "{err}"
    );
    let b = runs.propose(&rb, alert("b"), ts(1)).unwrap();
    let err = runs.propose(&rb, alert("c"), ts(2)).unwrap_err();
    assert_eq!(
        err,
        Refusal::BlastRadius {
            active: 2,
            limit: 2
        }
    );
    runs.start(b, ts(2)).unwrap();
    runs.begin_step(b, ts(2)).unwrap();
    runs.finish_step(
        b,
        StepReport {
            ok: true,
            outcome: "exited 0".into(),
            exec: None,
            http: None,
        },
        ts(3),
    )
    .unwrap();
    runs.propose(&rb, alert("c"), ts(4)).unwrap();
}

#[test]
fn missing_target_label_and_bad_params_are_refused() {
    let rb = rb("      approval: none", "");
    let mut runs = Runs::new();
    let p = Proposal {
        labels: labels(&[("alertname", "ApiDown")]),
        requester: "x".into(),
        ..Default::default()
    };
    assert_eq!(
        runs.propose(&rb, p, ts(0)).unwrap_err(),
        Refusal::NoTarget {
            label: "instance".into()
        }
    );
    let mut p = alert("db1");
    p.inputs.insert("undeclared".into(), "1".into());
    let err = runs.propose(&rb, p, ts(0)).unwrap_err();
    assert!(
        err.to_string()
            .contains("param `undeclared` is not declared"),
        "{err}"
    );
}

#[test]
fn dry_run_records_the_plan_and_runs_nothing() {
    let rb = rb("      dry_run: true\n      approval: required", "");
    let mut runs = Runs::new();
    let id = runs.propose(&rb, alert("db1:9100"), ts(0)).unwrap();
    assert_eq!(runs.get(id).unwrap().state, RunState::DryRun);
    assert_eq!(runs.next(id).unwrap(), Next::Done(RunState::DryRun));
    let planned: Vec<_> = runs
        .audit()
        .iter()
        .filter(|e| e.kind == AuditKind::StepPlanned)
        .collect();
    assert_eq!(planned.len(), 1);
    assert_eq!(
        planned[0].argv.as_deref().unwrap(),
        ["/usr/bin/systemctl", "restart", "api", "--host=db1:9100"].map(String::from)
    );
    assert!(matches!(
        runs.start(id, ts(1)),
        Err(RunError::InvalidTransition { .. })
    ));
    // A forced dry run (Proposal::dry_run) of a normal runbook behaves the same.
    let rb = self::rb("      approval: none\n      cooldown: \"0\"", "");
    let p = Proposal {
        dry_run: true,
        ..alert("db2")
    };
    let id = runs.propose(&rb, p, ts(0)).unwrap();
    assert_eq!(runs.get(id).unwrap().state, RunState::DryRun);
}

#[test]
fn failed_verification_runs_on_failure_steps() {
    let rb = rb(
        "      approval: none",
        r#"    verify:
      expr: 'up{instance="{{ param.host }}"} == 1'
      within: 5m
    on_failure:
      - name: rollback
        exec:
          command: [/usr/bin/systemctl, restart, api-previous]
      - name: page
        http: {url: 'https://pager.example/api/v1/page', body: '{"host": "{{ param.host }}"}'}"#,
    );
    let mut runs = Runs::new();
    let id = runs.propose(&rb, alert("db1\"x"), ts(0)).unwrap_err();
    assert!(matches!(id, Refusal::Params(_)));
    let id = runs.propose(&rb, alert("db1:9100"), ts(0)).unwrap();
    assert_eq!(complete(&mut runs, id, true, ts(10)), RunState::Verifying);
    let Next::Verify { expr, deadline } = runs.next(id).unwrap() else {
        panic!()
    };
    assert_eq!(expr, r#"up{instance="db1:9100"} == 1"#);
    assert_eq!(deadline, ts(310));
    assert_eq!(
        runs.verify_result(id, false, ts(100)).unwrap(),
        RunState::Verifying
    );
    assert_eq!(
        runs.verify_result(id, false, ts(310)).unwrap(),
        RunState::RollingBack
    );
    let Next::Step(step) = runs.next(id).unwrap() else {
        panic!()
    };
    assert_eq!(step.name, "rollback");
    runs.begin_step(id, ts(311)).unwrap();
    runs.finish_step(
        id,
        StepReport {
            ok: true,
            outcome: "exited 0".into(),
            exec: None,
            http: None,
        },
        ts(312),
    )
    .unwrap();
    let page = runs.begin_step(id, ts(313)).unwrap();
    assert_eq!(page.describe(), "POST https://pager.example/api/v1/page");
    assert_eq!(
        runs.finish_step(
            id,
            StepReport {
                ok: true,
                outcome: "200".into(),
                exec: None,
                http: None
            },
            ts(314)
        )
        .unwrap(),
        RunState::RolledBack
    );
    // A rolled-back run counts as a failure for the breaker.
    assert_eq!(runs.breaker("restart-api").unwrap().consecutive_failures, 1);
    let kinds: Vec<_> = runs
        .audit()
        .iter()
        .filter(|e| e.run == Some(id))
        .map(|e| e.kind)
        .collect();
    use AuditKind::*;
    assert_eq!(
        kinds,
        vec![
            Proposed,
            Approved,
            Started,
            StepStarted,
            StepFinished,
            VerifyStarted,
            VerifyFailed,
            Failed,
            RollingBack,
            StepStarted,
            StepFinished,
            StepStarted,
            StepFinished,
            RolledBack
        ]
    );
    // before and after each step: runbook, target, step, argv, outcome
    let ev: Vec<_> = runs
        .audit()
        .iter()
        .filter(|e| e.step.as_deref() == Some("restart"))
        .collect();
    assert_eq!(ev.len(), 2);
    for e in &ev {
        assert_eq!(
            (e.runbook.as_str(), e.target.as_str()),
            ("restart-api", "instance=\"db1:9100\"")
        );
        assert_eq!(e.argv.as_ref().unwrap().last().unwrap(), "--host=db1:9100");
    }
    assert_eq!(ev[1].outcome.as_deref(), Some("exited 0"));
    // The run and its events serialize (for the store and the API).
    let json = serde_json::to_string(runs.get(id).unwrap()).unwrap();
    let back: day2_remediate::Run = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, runs.get(id).unwrap());
    let ev_json = serde_json::to_value(ev[0]).unwrap();
    assert_eq!(ev_json["kind"], "step_started");
    let snapshot = serde_json::to_string(&runs).unwrap();
    let restored: Runs = serde_json::from_str(&snapshot).unwrap();
    assert_eq!(restored.get(id), runs.get(id));
}

#[test]
fn a_failing_step_without_on_failure_fails_the_run() {
    let rb = rb("      approval: none", "");
    let mut runs = Runs::new();
    let id = runs.propose(&rb, alert("db1"), ts(0)).unwrap();
    assert_eq!(complete(&mut runs, id, false, ts(1)), RunState::Failed);
    let run = runs.get(id).unwrap();
    assert_eq!(run.reason.as_deref(), Some("step restart failed: exited 1"));
    assert!(matches!(
        runs.begin_step(id, ts(2)),
        Err(RunError::InvalidTransition { .. })
    ));
}
