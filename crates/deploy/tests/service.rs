//! The deployment service over a real SQLite state store and an in-memory
//! series store: analyses fall due, verdicts and rollbacks happen once
//! (also across restarts), how rollback runs ended is recorded once (also
//! after a restart), status marks, DORA, alert annotations.

use std::sync::Arc;
use std::time::Duration;

use day2_deploy::model::StatusChange;
use day2_deploy::{
    Deployment, Deployments, DeploymentsSection, NewDeployment, NoRemediation, RollbackTrigger,
    RunEnd, Status, Verdict,
};
use day2_model::Labels;
use day2_promql::memstore::MemStore;
use day2_store::Store;
use jiff::Timestamp;
use parking_lot::Mutex;
use std::collections::HashMap;

const CONFIG: &str = r#"
services:
  api:
    analysis:
      mode: enforce
      window: 10s
      baseline: 10s
      step: 1s
      checks:
        - name: error-ratio
          expr: max(errors{service="{{ service }}"})
          compare: { max_increase: 50% }
      rollback_runbook: rollback-api
  web:
    analysis:
      window: 10s
      step: 1s
      checks:
        - name: error-ratio
          expr: max(errors{service="{{ service }}"})
          compare: { max_value: 0.1 }
"#;

/// Deployments happen at T; series are written around it.
const T: i64 = 1_700_000_000_000;

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap()
}

fn config() -> DeploymentsSection {
    let c: DeploymentsSection = day2_yamlerr::from_str(CONFIG, "day2.yml").unwrap();
    c.validate().unwrap();
    c
}

/// `errors{service}` at 0.01 before T and `after` from T on, one sample a second.
fn series(services: &[(&str, f64)]) -> Arc<MemStore> {
    let mut m = MemStore::new();
    for (service, after) in services {
        for s in -30..=30i64 {
            let v = if s < 0 { 0.01 } else { *after };
            m.add(
                Labels::from_pairs([("__name__", "errors"), ("service", service)]),
                T + s * 1000,
                v,
            );
        }
    }
    Arc::new(m)
}

/// A recorded trigger call: (runbook, deployment, version, previous version).
type Call = (String, i64, String, Option<String>);

/// A trigger that records its calls, starts runs `run-1`, `run-2`, ... and
/// reports the ends the test sets.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<Call>>,
    ends: Mutex<HashMap<String, RunEnd>>,
    /// What `started` answers after a restart; `None`: unknown.
    earlier: Mutex<Option<Option<String>>>,
}

impl RollbackTrigger for Recorder {
    fn rollback(
        &self,
        runbook: &str,
        d: &Deployment,
        previous: Option<&Deployment>,
    ) -> Result<String, String> {
        let mut calls = self.calls.lock();
        calls.push((
            runbook.to_string(),
            d.id,
            d.version.clone(),
            previous.map(|p| p.version.clone()),
        ));
        Ok(format!("run-{}", calls.len()))
    }

    fn started(&self, _: &str, _: &Deployment) -> Result<Option<String>, String> {
        self.earlier.lock().clone().ok_or_else(|| "unknown".into())
    }

    fn finished(&self, run_id: &str) -> Result<Option<RunEnd>, String> {
        Ok(self.ends.lock().get(run_id).cloned())
    }
}

impl Recorder {
    fn end(&self, run: &str, state: &str, at_ms: i64, reason: Option<&str>) {
        self.ends.lock().insert(
            run.to_string(),
            RunEnd {
                state: state.into(),
                rolled_back: state == "verified",
                reason: reason.map(String::from),
                at: at(at_ms),
            },
        );
    }
}

fn open(dir: &std::path::Path, db: Arc<MemStore>) -> Deployments {
    let store = Arc::new(Store::open_dir(dir).unwrap());
    let engine = Arc::new(day2_promql::Engine::new(Default::default()));
    Deployments::open(store, engine, db, config()).unwrap()
}

fn deploy(service: &str, version: &str, commit_time: Option<i64>) -> NewDeployment {
    let commits = match commit_time {
        Some(t) => format!(r#"[{{"sha":"c{version}","time":"{}"}}]"#, at(t)),
        None => "[]".into(),
    };
    serde_json::from_str(&format!(
        r#"{{"service":"{service}","version":"{version}","commits":{commits},"deployed_at":"{}"}}"#,
        at(T)
    ))
    .unwrap()
}

#[test]
fn a_bad_enforced_deploy_fails_once_and_rolls_back_once() {
    let dir = tempfile::tempdir().unwrap();
    let svc = open(dir.path(), series(&[("api", 0.05)]));
    let rec = Arc::new(Recorder::default());
    svc.set_rollback_trigger(rec.clone());
    let mut v1 = deploy("api", "v1", None);
    v1.deployed_at = Some(at(T - 60_000));
    svc.create(v1, "ci", at(T - 60_000)).unwrap();
    let d = svc.create(deploy("api", "v2", None), "ci", at(T)).unwrap();
    let a = d.analysis.as_ref().unwrap();
    assert_eq!((a.state, a.due_at), ("pending", at(T + 10_000)));
    assert_eq!(d.outcome, "pending");
    assert_eq!(d.environment, "production");
    assert_eq!(d.marked_by, "ci");

    // before the window ends nothing happens; the next due time is reported
    assert_eq!(svc.run_due(at(T + 5_000)).unwrap(), Some(T + 10_000));
    assert!(rec.calls.lock().is_empty());

    assert_eq!(svc.run_due(at(T + 10_500)).unwrap(), None);
    let d = svc.get(d.id).unwrap();
    let result = d.analysis.as_ref().unwrap().result.as_ref().unwrap();
    assert_eq!(result.verdict, Verdict::Fail, "{}", result.summary);
    assert_eq!(d.outcome, "failed");
    let rb = d.rollback.as_ref().unwrap();
    assert_eq!(
        (
            rb.state,
            rb.runbook.as_str(),
            rb.run_id.as_deref(),
            rb.error.as_deref()
        ),
        ("running", "rollback-api", Some("run-1"), None)
    );
    // the trigger is told which version to go back to
    assert_eq!(
        *rec.calls.lock(),
        vec![("rollback-api".into(), d.id, "v2".into(), Some("v1".into()))]
    );

    // nothing is evaluated or triggered again while the run goes on
    svc.run_due(at(T + 15_000)).unwrap();
    assert_eq!(rec.calls.lock().len(), 1);
    let again = svc.get(d.id).unwrap();
    assert_eq!(again.analysis, d.analysis);
    assert_eq!(again.outcome, "failed");

    // the run ends verified: the deployment is rolled back, by day2, at the run's end
    rec.end("run-1", "verified", T + 20_000, None);
    svc.run_due(at(T + 25_000)).unwrap();
    let d = svc.get(d.id).unwrap();
    assert_eq!(d.outcome, "rolled_back");
    let rb = d.rollback.as_ref().unwrap();
    assert_eq!(
        (
            rb.state,
            rb.run_state.as_deref(),
            rb.finished_at,
            rb.error.as_deref()
        ),
        ("done", Some("verified"), Some(at(T + 20_000)), None)
    );
    assert_eq!(d.statuses.len(), 1);
    let m = &d.statuses[0];
    assert_eq!(
        (m.status, m.reason.as_str(), m.set_by.as_str(), m.at),
        (
            Status::RolledBack,
            "rollback runbook rollback-api run run-1 verified",
            "day2",
            at(T + 20_000)
        )
    );
    // DORA: restored 20s after the bad deploy
    let dora = svc
        .dora(Some("api"), None, Duration::from_secs(3600), at(T + 30_000))
        .unwrap();
    let f = &dora.services[0].figures;
    assert_eq!((f.deployments, f.failed, f.open_failures), (2, 1, 0));
    assert_eq!(f.time_to_restore_seconds.unwrap().median, 20.0);
    let mut metrics = String::new();
    svc.render_metrics(&mut metrics);
    assert!(
        metrics.contains("day2_deployment_rollback_runs_finished_total{result=\"rolled_back\"} 1"),
        "{metrics}"
    );

    // recorded once
    svc.run_due(at(T + 60_000)).unwrap();
    assert_eq!(svc.get(d.id).unwrap().statuses.len(), 1);
    assert_eq!(rec.calls.lock().len(), 1);
}

#[test]
fn a_rollback_run_that_did_not_roll_back_leaves_the_deployment_failed_with_why() {
    let dir = tempfile::tempdir().unwrap();
    let svc = open(dir.path(), series(&[("api", 0.05)]));
    let rec = Arc::new(Recorder::default());
    svc.set_rollback_trigger(rec.clone());
    let id = svc
        .create(deploy("api", "v2", None), "ci", at(T))
        .unwrap()
        .id;
    svc.run_due(at(T + 11_000)).unwrap();
    // the first deployment of the service: nothing before it
    assert_eq!(rec.calls.lock()[0].3, None);
    rec.end(
        "run-1",
        "failed",
        T + 12_000,
        Some("step rollback: exited 1"),
    );
    svc.run_due(at(T + 13_000)).unwrap();
    let d = svc.get(id).unwrap();
    assert_eq!(d.outcome, "failed");
    assert!(d.statuses.is_empty());
    let rb = d.rollback.unwrap();
    assert_eq!(
        (rb.state, rb.run_state.as_deref(), rb.error.as_deref()),
        (
            "done",
            Some("failed"),
            Some("rollback runbook rollback-api run run-1 failed: step rollback: exited 1")
        )
    );
    let dora = svc
        .dora(Some("api"), None, Duration::from_secs(3600), at(T + 30_000))
        .unwrap();
    assert_eq!(dora.services[0].figures.open_failures, 1);
}

#[test]
fn a_rollback_run_that_ended_while_day2_was_down_is_recorded_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = series(&[("api", 0.05)]);
    let id = {
        let svc = open(dir.path(), db.clone());
        svc.set_rollback_trigger(Arc::new(Recorder::default()));
        let id = svc
            .create(deploy("api", "v2", None), "ci", at(T))
            .unwrap()
            .id;
        svc.run_due(at(T + 11_000)).unwrap();
        assert_eq!(svc.get(id).unwrap().rollback.unwrap().state, "running");
        id
    };
    // the run ended (the runtime's restart recovery may also have failed it)
    let rec = Arc::new(Recorder::default());
    rec.end("run-1", "verified", T + 40_000, None);
    let svc = open(dir.path(), db);
    svc.set_rollback_trigger(rec.clone());
    svc.run_due(at(T + 3_600_000)).unwrap();
    let d = svc.get(id).unwrap();
    assert_eq!(d.outcome, "rolled_back");
    assert_eq!(d.statuses[0].at, at(T + 40_000));
    assert!(rec.calls.lock().is_empty(), "not triggered again");
}

#[test]
fn a_pending_analysis_is_evaluated_after_a_restart_and_never_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = series(&[("api", 0.05)]);
    let id = {
        let svc = open(dir.path(), db.clone());
        svc.create(deploy("api", "v2", None), "ci", at(T))
            .unwrap()
            .id
        // "stopped" before the window ended
    };
    let rec = Arc::new(Recorder::default());
    let evaluated = {
        let svc = open(dir.path(), db.clone());
        svc.set_rollback_trigger(rec.clone());
        svc.run_due(at(T + 3_600_000)).unwrap();
        let d = svc.get(id).unwrap();
        let r = d.analysis.unwrap().result.unwrap();
        assert_eq!(r.verdict, Verdict::Fail);
        // the fixed window, not the time of evaluation
        assert_eq!(r.post_to, at(T + 10_000));
        assert_eq!(r.evaluated_at, at(T + 3_600_000));
        r
    };
    let svc = open(dir.path(), db);
    svc.set_rollback_trigger(rec.clone());
    svc.run_due(at(T + 7_200_000)).unwrap();
    assert_eq!(
        svc.get(id).unwrap().analysis.unwrap().result.unwrap(),
        evaluated
    );
    assert_eq!(rec.calls.lock().len(), 1);
}

/// A failed deployment whose rollback a process claimed and then died
/// (before the trigger's answer was recorded).
fn claimed_then_stopped(dir: &std::path::Path, db: Arc<MemStore>) -> i64 {
    let store = Arc::new(Store::open_dir(dir).unwrap());
    let engine = Arc::new(day2_promql::Engine::new(Default::default()));
    let svc = Deployments::open(store.clone(), engine, db, config()).unwrap();
    let id = svc
        .create(deploy("api", "v2", None), "ci", at(T))
        .unwrap()
        .id;
    assert!(
        store
            .deployment_record_verdict(id, "{}", "fail", T + 10_000, true)
            .unwrap()
    );
    assert!(store.deployment_claim_rollback(id).unwrap());
    let rb = svc.get(id).unwrap().rollback.unwrap();
    assert_eq!((rb.state, rb.runbook.as_str()), ("pending", "rollback-api"));
    id
}

#[test]
fn a_rollback_claimed_by_a_stopped_process_is_triggered_again_only_if_it_never_started() {
    // what the trigger knows of earlier runs: unknown, the run, none
    for earlier in [None, Some(Some("run-7")), Some(None)] {
        let dir = tempfile::tempdir().unwrap();
        let db = series(&[("api", 0.05)]);
        let id = claimed_then_stopped(dir.path(), db.clone());
        let rec = Arc::new(Recorder::default());
        *rec.earlier.lock() = earlier.map(|e| e.map(String::from));
        let svc = open(dir.path(), db);
        svc.set_rollback_trigger(rec.clone());
        svc.run_due(at(T + 20_000)).unwrap();
        let rb = svc.get(id).unwrap().rollback.unwrap();
        let calls = rec.calls.lock().len();
        match earlier {
            None => {
                assert_eq!((rb.state, calls), ("done", 0));
                assert!(
                    rb.error
                        .as_deref()
                        .unwrap()
                        .contains("whether it started is unknown"),
                    "{rb:?}"
                );
            }
            Some(run) => {
                // the run the stopped process started, or one started now
                let want = run.unwrap_or("run-1");
                assert_eq!(
                    (rb.state, rb.run_id.as_deref(), rb.error.as_deref()),
                    ("running", Some(want), None),
                    "{earlier:?}"
                );
                assert_eq!(calls, usize::from(run.is_none()));
            }
        }
    }
}

#[test]
fn a_deployment_replaced_before_its_verdict_is_not_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let svc = open(dir.path(), series(&[("api", 0.05)]));
    let rec = Arc::new(Recorder::default());
    svc.set_rollback_trigger(rec.clone());
    let bad = svc.create(deploy("api", "v2", None), "ci", at(T)).unwrap();
    let mut next = deploy("api", "v3", None);
    next.deployed_at = Some(at(T + 5_000));
    let v3 = svc.create(next, "ci", at(T + 5_000)).unwrap();
    svc.run_due(at(T + 11_000)).unwrap();
    let d = svc.get(bad.id).unwrap();
    assert_eq!(d.outcome, "failed");
    let rb = d.rollback.unwrap();
    assert_eq!(rb.state, "done");
    assert!(
        rb.error
            .as_deref()
            .unwrap()
            .starts_with(&format!("not triggered: deployment {} of api", v3.id)),
        "{rb:?}"
    );
    assert!(rec.calls.lock().is_empty());
}

#[test]
fn without_remediation_the_rollback_error_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let svc = open(dir.path(), series(&[("api", 0.05)]));
    svc.set_rollback_trigger(Arc::new(NoRemediation));
    let id = svc
        .create(deploy("api", "v2", None), "ci", at(T))
        .unwrap()
        .id;
    svc.run_due(at(T + 11_000)).unwrap();
    let rb = svc.get(id).unwrap().rollback.unwrap();
    assert_eq!(
        rb.error.as_deref(),
        Some("rollback runbook rollback-api: remediation is not configured")
    );
    assert_eq!(rb.run_id, None);
    let mut m = String::new();
    svc.render_metrics(&mut m);
    assert!(
        m.contains("day2_deployment_rollbacks_total{result=\"error\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("day2_deployment_analyses_total{verdict=\"fail\"} 1"),
        "{m}"
    );
}

#[test]
fn advisory_failures_and_good_deploys_trigger_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let svc = open(dir.path(), series(&[("api", 0.011), ("web", 0.5)]));
    let rec = Arc::new(Recorder::default());
    svc.set_rollback_trigger(rec.clone());
    let good = svc.create(deploy("api", "v3", None), "ci", at(T)).unwrap();
    let advisory = svc.create(deploy("web", "w1", None), "ci", at(T)).unwrap();
    let none = svc.create(deploy("db", "d1", None), "ci", at(T)).unwrap();
    assert!(none.analysis.is_none());
    svc.run_due(at(T + 11_000)).unwrap();
    let g = svc.get(good.id).unwrap();
    assert_eq!(g.analysis.unwrap().result.unwrap().verdict, Verdict::Pass);
    assert_eq!(g.outcome, "deployed");
    let a = svc.get(advisory.id).unwrap();
    assert_eq!(a.analysis.unwrap().result.unwrap().verdict, Verdict::Fail);
    assert!(a.rollback.is_none());
    assert!(rec.calls.lock().is_empty());
}

#[test]
fn marks_dora_and_annotations() {
    let dir = tempfile::tempdir().unwrap();
    let svc = open(dir.path(), series(&[]));
    let h = 3_600_000;
    let d1 = svc
        .create(deploy("db", "1", Some(T - 2 * h)), "ci", at(T))
        .unwrap();
    let mut second = deploy("db", "2", Some(T - h / 2));
    second.deployed_at = Some(at(T + h));
    let d2 = svc.create(second, "ci", at(T + h)).unwrap();
    let mut staging = deploy("db", "3", None);
    staging.environment = Some("staging".into());
    staging.deployed_at = Some(at(T + 2 * h));
    svc.create(staging, "ci", at(T + 2 * h)).unwrap();

    let marked = svc
        .mark(
            d1.id,
            StatusChange {
                status: Status::Failed,
                reason: "500s".into(),
            },
            "alice",
            at(T + 10_000),
        )
        .unwrap();
    assert_eq!(marked.outcome, "failed");
    assert_eq!(marked.statuses[0].set_by, "alice");
    assert!(matches!(
        svc.mark(
            999,
            StatusChange {
                status: Status::Failed,
                reason: String::new()
            },
            "x",
            at(T)
        ),
        Err(day2_deploy::Error::NotFound(_))
    ));

    let now = at(T + 3 * h);
    let r = svc
        .dora(
            Some("db"),
            Some("production"),
            Duration::from_secs(86400),
            now,
        )
        .unwrap();
    let f = &r.services[0].figures;
    assert_eq!((f.deployments, f.failed), (2, 1));
    assert_eq!(f.change_failure_rate, Some(0.5));
    // lead times 2h and 1.5h
    assert_eq!(f.lead_time_seconds.unwrap().median, 6300.0);
    // failed at T, restored by the good deploy at T + 1h
    assert_eq!(f.time_to_restore_seconds.unwrap().median, 3600.0);
    assert_eq!(
        svc.dora(None, None, Duration::from_secs(86400), now)
            .unwrap()
            .overall
            .deployments,
        3
    );

    // alerts: by service label, falling back to job; environment label filters
    let labels = |pairs: &[(&str, &str)]| Labels::from_pairs(pairs.iter().copied());
    let ann = svc.annotations(&labels(&[("alertname", "X"), ("service", "db")]));
    let get = |a: &[(String, String)], k: &str| {
        a.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(get(&ann, "day2_deployment_version"), "3", "{ann:?}");
    let prod = svc.annotations(&labels(&[("job", "db"), ("environment", "production")]));
    assert_eq!(get(&prod, "day2_deployment"), d2.id.to_string());
    assert_eq!(get(&prod, "day2_deployment_at"), at(T + h).to_string());
    assert!(svc.annotations(&labels(&[("service", "other")])).is_empty());
    // the latest deployments survive a restart
    drop(svc);
    let svc = open(dir.path(), series(&[]));
    let prod = svc.annotations(&labels(&[("job", "db"), ("environment", "production")]));
    assert_eq!(get(&prod, "day2_deployment"), d2.id.to_string());

    svc.refresh_metrics(now).unwrap();
    let mut m = String::new();
    svc.render_metrics(&mut m);
    for want in [
        "day2_dora_deployments{service=\"db\",environment=\"production\"} 2",
        "day2_dora_deployments 3",
        "day2_dora_change_failure_rate{service=\"db\",environment=\"production\"} 0.5",
        "day2_dora_lead_time_seconds{service=\"db\",environment=\"production\",quantile=\"0.5\"} 6300",
        "day2_dora_time_to_restore_seconds{service=\"db\",environment=\"production\",quantile=\"0.5\"} 3600",
        "day2_dora_open_failures 0",
    ] {
        assert!(m.lines().any(|l| l == want), "missing {want:?} in\n{m}");
    }
}

#[test]
fn bad_input_is_refused_with_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let svc = open(dir.path(), series(&[]));
    let mut bad = deploy("api", "v1", None);
    bad.service = "api\"}".into();
    match svc.create(bad, "ci", at(T)) {
        Err(day2_deploy::Error::BadRequest(m)) => assert!(m.starts_with("service:"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(svc.get(42), Err(day2_deploy::Error::NotFound(_))));
}

/// Outages as given, after checking the window asked for.
struct Outages(Vec<day2_deploy::Outage>);

impl day2_deploy::OutageSource for Outages {
    fn outages(
        &self,
        config: &DeploymentsSection,
        from: i64,
        to: i64,
    ) -> Result<Vec<day2_deploy::Outage>, String> {
        assert_eq!(config.default_environment, "production");
        assert_eq!(to - from, 86_400_000);
        Ok(self.0.clone())
    }
}

#[test]
fn outages_from_another_source_add_restore_times_and_open_failures() {
    let dir = tempfile::tempdir().unwrap();
    let svc = open(dir.path(), series(&[]));
    svc.create(deploy("db", "1", None), "ci", at(T)).unwrap();
    let outage = |service: &str, env: &str, from: i64, to: Option<i64>| day2_deploy::Outage {
        service: service.into(),
        environment: env.into(),
        from,
        to,
    };
    svc.set_outage_source(Arc::new(Outages(vec![
        outage("db", "production", T + 1000, Some(T + 61_000)),
        // after the first: overlapping ones would be one failure
        outage("db", "production", T + 70_000, None),
        outage("web", "production", T, Some(T + 1000)),
        outage("db", "staging", T, Some(T + 1000)),
    ])));
    let r = svc
        .dora(
            Some("db"),
            Some("production"),
            Duration::from_secs(86400),
            at(T + 100_000),
        )
        .unwrap();
    assert_eq!(r.services.len(), 1, "{r:?}");
    let f = &r.services[0].figures;
    // the deployment did not fail: the outages alone restore
    assert_eq!((f.deployments, f.failed, f.open_failures), (1, 0, 1));
    let ttr = f.time_to_restore_seconds.unwrap();
    assert_eq!((ttr.count, ttr.median), (1, 60.0));
    let all = svc
        .dora(None, None, Duration::from_secs(86400), at(T + 100_000))
        .unwrap();
    assert_eq!(all.overall.time_to_restore_seconds.unwrap().count, 3);
}

#[test]
fn a_retried_mark_with_its_idempotency_key_records_one_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let svc = open(dir.path(), series(&[("web", 0.01)]));
    let keyed = |version: &str| {
        let mut d = deploy("web", version, None);
        d.deployed_at = None; // the server's clock: a retry gets another default
        d.idempotency_key = Some("ci-run-42".into());
        d
    };
    let first = svc.record(keyed("v1"), "ci", at(T)).unwrap();
    assert!(first.created);
    let retry = svc.record(keyed("v1"), "ci", at(T + 5_000)).unwrap();
    assert!(!retry.created);
    assert_eq!(retry.deployment.id, first.deployment.id);
    assert_eq!(retry.deployment.deployed_at, at(T));

    // the same key for another version is refused and records nothing
    let err = svc.record(keyed("v2"), "ci", at(T + 6_000)).unwrap_err();
    assert!(matches!(err, day2_deploy::Error::Conflict(_)), "{err}");
    assert!(err.to_string().contains("ci-run-42"), "{err}");
    let all = svc
        .list(&day2_store::deploy::DeploymentFilter {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(all.len(), 1);

    // another key records another deployment; the key survives a restart
    let mut other = keyed("v2");
    other.idempotency_key = Some("ci-run-43".into());
    assert!(svc.record(other, "ci", at(T + 7_000)).unwrap().created);
    drop(svc);
    let svc = open(dir.path(), series(&[("web", 0.01)]));
    let after = svc.record(keyed("v1"), "ci", at(T + 8_000)).unwrap();
    assert_eq!(
        (after.created, after.deployment.id),
        (false, first.deployment.id)
    );

    // a bad key is a located bad request
    let mut bad = keyed("v3");
    bad.idempotency_key = Some("has space".into());
    let err = svc.record(bad, "ci", at(T + 9_000)).unwrap_err();
    assert!(err.to_string().starts_with("idempotency_key: "), "{err}");
}
