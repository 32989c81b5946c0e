//! The runtime with an in-memory journal, an injected clock and the PromQL
//! verifier over an in-memory store: notifications propose runs once per
//! (notification, alert, runbook), every transition reaches the journal and
//! the incident timeline (a step's start before the step runs), verification
//! waits for the condition until the deadline of the injected clock, and a
//! restart marks interrupted runs and keeps guardrail counters.

mod common;

use common::*;
use day2_model::{Labels, Matcher, QueryError, Queryable, Series};
use day2_promql::memstore::MemStore;
use day2_promql::{Engine, EngineOptions};
use day2_remediate::driver::{BoxFuture, Clock, EscalateRequest, Escalation, RunContext};
use day2_remediate::run::Breaker;
use day2_remediate::runtime::{
    AlertRef, Commit, Journal, Remediator, Restored, Settings, TimelineSink,
};
use day2_remediate::verify::PromqlVerifier;
use day2_remediate::{AuditEvent, AuditKind, Phase, Run, RunId, RunState, RunbookSet};
use jiff::Timestamp;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default)]
struct MemJournal {
    runs: Mutex<BTreeMap<RunId, Run>>,
    audit: Mutex<Vec<AuditEvent>>,
    breakers: Mutex<BTreeMap<String, Breaker>>,
    triggers: Mutex<BTreeSet<(i64, String, String)>>,
}

impl Journal for MemJournal {
    fn commit(&self, c: &Commit<'_>) -> Result<(), String> {
        for r in &c.runs {
            self.runs.lock().insert(r.id, (*r).clone());
        }
        self.audit.lock().extend(c.audit.iter().cloned());
        for (n, b) in &c.breakers {
            self.breakers.lock().insert(n.to_string(), (*b).clone());
        }
        for t in c.triggers {
            self.triggers
                .lock()
                .insert((t.outbox_id, t.fingerprint.clone(), t.runbook.clone()));
        }
        Ok(())
    }
    fn trigger_seen(&self, outbox_id: i64, fp: &str, runbook: &str) -> Result<bool, String> {
        Ok(self
            .triggers
            .lock()
            .contains(&(outbox_id, fp.to_string(), runbook.to_string())))
    }
}

impl MemJournal {
    fn restored(&self) -> Restored {
        let runs: Vec<Run> = self.runs.lock().values().cloned().collect();
        Restored {
            last_id: runs.iter().map(|r| r.id).max().unwrap_or(0),
            runs,
            breakers: self.breakers.lock().clone(),
        }
    }
}

/// Records timeline entries, and whether the step's marker existed when its
/// start was recorded.
struct Timeline {
    marker: std::path::PathBuf,
    entries: Mutex<Vec<(Vec<String>, AuditKind, bool)>>,
}

impl TimelineSink for Timeline {
    fn record(&self, alerts: &[String], e: &AuditEvent) {
        self.entries
            .lock()
            .push((alerts.to_vec(), e.kind, self.marker.exists()));
    }
}

struct ManualClock(Mutex<Timestamp>);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock()
    }
}

impl ManualClock {
    fn advance(&self, secs: i64) {
        let mut t = self.0.lock();
        *t = Timestamp::from_millisecond(t.as_millisecond() + secs * 1000).unwrap();
    }
}

/// A MemStore the test can write to while the runtime reads it.
#[derive(Default)]
struct Shared(RwLock<MemStore>);

impl Queryable for Shared {
    fn select(&self, m: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Series>, QueryError> {
        self.0.read().select(m, mint, maxt)
    }
    fn series(&self, m: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Labels>, QueryError> {
        self.0.read().series(m, mint, maxt)
    }
}

async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn runbooks(dir: &Path) -> RunbookSet {
    let yaml = format!(
        r#"
runbooks:
  - name: fix
    match: ['alertname="HighErrorRate"']
    steps:
      - name: act
        exec: {{command: [/usr/bin/touch, {marker}]}}
    verify:
      expr: 'error_rate{{job="web"}} < 0.05'
      within: 1m
    on_failure:
      - name: rollback
        exec: {{command: [/usr/bin/touch, {rollback}]}}
    guardrails: {{approval: none, cooldown: 10m, max_runs: {{count: 5, window: 1h}}}}
"#,
        marker = yq(&dir.join("acted").display().to_string()),
        rollback = yq(&dir.join("rolled-back").display().to_string()),
    );
    RunbookSet::parse_file(&yaml, "rb.yml", None).unwrap()
}

struct Fixture {
    clock: Arc<ManualClock>,
    store: Arc<Shared>,
    timeline: Arc<Timeline>,
    r: Arc<Remediator>,
}

fn start(
    dir: &Path,
    restored: Restored,
    journal: Arc<MemJournal>,
    clock: Arc<ManualClock>,
) -> Fixture {
    let store = Arc::new(Shared::default());
    let r = Remediator::start(
        restored,
        journal.clone(),
        Arc::new(PromqlVerifier {
            engine: Arc::new(Engine::new(EngineOptions::default())),
            db: store.clone(),
        }),
        clock.clone(),
        tokio::runtime::Handle::current(),
        runbooks(dir),
        Settings {
            verify_interval: Duration::from_millis(10),
            ..Default::default()
        },
    )
    .unwrap();
    let timeline = Arc::new(Timeline {
        marker: dir.join("acted"),
        entries: Mutex::new(Vec::new()),
    });
    r.set_timeline(Some(timeline.clone()));
    Fixture {
        clock,
        store,
        timeline,
        r,
    }
}

/// A runtime with an empty journal and the clock at `ts(0)`.
fn start_fresh(dir: &Path) -> (Arc<MemJournal>, Arc<ManualClock>, Fixture) {
    let journal = Arc::new(MemJournal::default());
    let clock = Arc::new(ManualClock(Mutex::new(ts(0))));
    let f = start(dir, Restored::default(), journal.clone(), clock.clone());
    (journal, clock, f)
}

fn firing(fp: &str, instance: &str) -> AlertRef {
    AlertRef {
        fingerprint: fp.into(),
        labels: labels(&[("alertname", "HighErrorRate"), ("instance", instance)]),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_runs_verification_timeline_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, clock, f) = start_fresh(dir.path());

    // one run per (notification, alert, runbook), however often it is handed over
    let created = f.r.notify(1, &[firing("fp1", "web-1")]).unwrap();
    assert_eq!(created.len(), 1);
    let id = created[0];
    assert!(f.r.notify(1, &[firing("fp1", "web-1")]).unwrap().is_empty());

    // the step ran; the condition does not hold yet (no sample): still verifying
    until("the run to verify", || {
        (f.r.run(id)?.state == RunState::Verifying).then_some(())
    })
    .await;
    assert!(dir.path().join("acted").exists());
    // the error rate drops: verified before the (frozen) deadline
    f.store.0.write().add(
        Labels::from_pairs([("__name__", "error_rate"), ("job", "web")]),
        ts(0).as_millisecond(),
        0.01,
    );
    until("verified", || {
        (f.r.run(id)?.state == RunState::Verified).then_some(())
    })
    .await;
    until("the driver to finish", || {
        (!f.r.is_driving(id)).then_some(())
    })
    .await;
    assert!(!dir.path().join("rolled-back").exists());

    // the timeline got every event, with the step's start before the step ran
    let entries = f.timeline.entries.lock().clone();
    let kinds: Vec<AuditKind> = entries.iter().map(|e| e.1).collect();
    assert_eq!(
        kinds,
        [
            AuditKind::Proposed,
            AuditKind::Approved,
            AuditKind::Started,
            AuditKind::StepStarted,
            AuditKind::StepFinished,
            AuditKind::VerifyStarted,
            AuditKind::Verified
        ]
    );
    assert!(entries.iter().all(|e| e.0 == ["fp1".to_string()]));
    let step_started = entries
        .iter()
        .find(|e| e.1 == AuditKind::StepStarted)
        .unwrap();
    assert!(!step_started.2, "the start was recorded after the step ran");
    assert_eq!(journal.audit.lock().len(), entries.len());

    // a new notification within the cooldown is refused (and recorded)
    f.clock.advance(60);
    assert!(f.r.notify(2, &[firing("fp1", "web-1")]).unwrap().is_empty());
    assert!(
        journal
            .triggers
            .lock()
            .contains(&(2, "fp1".into(), "fix".into()))
    );
    assert_eq!(
        journal.audit.lock().last().unwrap().kind,
        AuditKind::Refused
    );

    // a second target: the condition stops holding, the deadline passes, the rollback runs
    f.store.0.write().clear();
    let id2 = f.r.notify(3, &[firing("fp2", "web-2")]).unwrap()[0];
    until("the second run to verify", || {
        (f.r.run(id2)?.state == RunState::Verifying).then_some(())
    })
    .await;
    f.clock.advance(61);
    until("rolled back", || {
        (f.r.run(id2)?.state == RunState::RolledBack).then_some(())
    })
    .await;
    assert!(dir.path().join("rolled-back").exists());
    until("the driver to finish", || {
        (!f.r.is_driving(id2)).then_some(())
    })
    .await;

    // a run caught mid-way by a crash: restarted from the journal, it is failed, not resumed
    let mut restored = journal.restored();
    let mut stuck = restored.runs.iter().find(|r| r.id == id2).unwrap().clone();
    stuck.id = 99;
    stuck.state = RunState::Running;
    stuck.finished_at = None;
    stuck.step_started_at = Some(ts(120));
    stuck.cursor = 0;
    stuck.target.value = "web-3".into();
    restored.runs.push(stuck);
    restored.last_id = 99;
    let j2 = Arc::new(MemJournal::default());
    let g = start(dir.path(), restored, j2.clone(), clock.clone());
    let run = g.r.run(99).unwrap();
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(
        run.reason.as_deref(),
        Some("interrupted: day2 stopped while the run was running during step act")
    );
    assert_eq!(j2.runs.lock()[&99].state, RunState::Failed);
    // counters survived: web-1 is still in its cooldown
    assert!(g.r.notify(4, &[firing("fp1", "web-1")]).unwrap().is_empty());
    let refusal = j2.audit.lock().last().unwrap().outcome.clone().unwrap();
    assert!(
        refusal.starts_with("cooldown: last run on instance=\"web-1\""),
        "{refusal}"
    );
    // ids continue after the restored ones
    let id = g.r.notify(5, &[firing("fp5", "web-5")]).unwrap()[0];
    assert_eq!(id, 100);
}

struct Escalations(Mutex<Vec<(RunContext, EscalateRequest)>>);

impl Escalation for Escalations {
    fn escalate<'a>(
        &'a self,
        run: &'a RunContext,
        request: &'a EscalateRequest,
    ) -> BoxFuture<'a, Result<String, String>> {
        self.0.lock().push((run.clone(), request.clone()));
        Box::pin(async { Ok("paged on-call".to_string()) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalate_steps_reach_the_hook_and_dry_run_settings_execute_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("acted");
    let yaml = format!(
        r#"
runbooks:
  - name: fix
    match: ['alertname="Broken"']
    params:
      - {{name: host, pattern: '[a-z0-9-]+', from_label: instance}}
    steps:
      - name: act
        exec: {{command: [/usr/bin/touch, {}]}}
      - name: fails
        exec: {{command: [/bin/false]}}
    on_failure:
      - name: page
        escalate: {{message: 'fix failed on {{{{ param.host }}}}', policy: db}}
    guardrails: {{approval: none, cooldown: "0"}}
"#,
        yq(&marker.display().to_string())
    );
    let set = || RunbookSet::parse_file(&yaml, "rb.yml", None).unwrap();
    let clock = Arc::new(ManualClock(Mutex::new(ts(0))));
    let store: Arc<Shared> = Arc::default();
    let start = |settings: Settings| {
        Remediator::start(
            Restored::default(),
            Arc::new(MemJournal::default()),
            Arc::new(PromqlVerifier {
                engine: Arc::new(Engine::new(EngineOptions::default())),
                db: store.clone(),
            }),
            clock.clone(),
            tokio::runtime::Handle::current(),
            set(),
            settings,
        )
        .unwrap()
    };
    let alert = AlertRef {
        fingerprint: "fpx".into(),
        labels: labels(&[("alertname", "Broken"), ("instance", "db-1")]),
        ..Default::default()
    };
    // dry run for everything: the plan is recorded, nothing runs
    let r = start(Settings {
        dry_run: true,
        ..Default::default()
    });
    let id = r.notify(1, std::slice::from_ref(&alert)).unwrap()[0];
    assert_eq!(r.run(id).unwrap().state, RunState::DryRun);
    assert!(!marker.exists());

    let r = start(Settings::default());
    let calls = Arc::new(Escalations(Mutex::new(Vec::new())));
    r.set_escalation(Some(calls.clone()));
    let id = r.notify(1, &[alert]).unwrap()[0];
    until("rolled back", || {
        (r.run(id)?.state == RunState::RolledBack).then_some(())
    })
    .await;
    assert!(marker.exists());
    let calls = calls.0.lock().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].1,
        EscalateRequest {
            step: "page".into(),
            phase: Some(Phase::OnFailure),
            message: "fix failed on db-1".into(),
            policy: Some("db".into()),
            user: None,
        }
    );
    assert_eq!(calls[0].0.alerts, ["fpx".to_string()]);
    assert_eq!(calls[0].0.target, "instance=\"db-1\"");
    let run = r.run(id).unwrap();
    assert_eq!(run.results.last().unwrap().report.outcome, "paged on-call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_wake_once_per_finished_run_after_the_journal_has_it() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, clock, f) = start_fresh(dir.path());
    let mut finished = f.r.watch_finished();
    assert_eq!(*finished.borrow_and_update(), 0);
    f.store.0.write().add(
        Labels::from_pairs([("__name__", "error_rate"), ("job", "web")]),
        ts(0).as_millisecond(),
        0.01,
    );
    let id = f.r.notify(1, &[firing("fp1", "web-1")]).unwrap()[0];
    tokio::time::timeout(Duration::from_secs(20), finished.changed())
        .await
        .expect("no wake-up for the verified run")
        .unwrap();
    assert_eq!(*finished.borrow_and_update(), 1);
    assert_eq!(journal.runs.lock()[&id].state, RunState::Verified);

    // a failure followed by its on_failure steps ends the run once, at the end
    f.store.0.write().clear();
    let id2 = f.r.notify(2, &[firing("fp2", "web-2")]).unwrap()[0];
    until("the second run to verify", || {
        (f.r.run(id2)?.state == RunState::Verifying).then_some(())
    })
    .await;
    assert!(!finished.has_changed().unwrap());
    clock.advance(61);
    tokio::time::timeout(Duration::from_secs(20), finished.changed())
        .await
        .expect("no wake-up for the rolled back run")
        .unwrap();
    assert_eq!(*finished.borrow_and_update(), 2);
    assert_eq!(journal.runs.lock()[&id2].state, RunState::RolledBack);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_labels_bind_params_but_never_match_runbooks() {
    let yaml = r#"
runbooks:
  - name: rollback
    match: ['alertname="HighErrorRate"']
    params:
      - {name: to, pattern: 'v[0-9]+', from_label: previous_version}
    steps:
      - exec: {command: [/bin/true, '{{ param.to }}']}
    guardrails: {approval: required, target_label: service}
  - name: deploy-only
    match: ['previous_version=~".+"']
    steps:
      - exec: {command: [/bin/true]}
    guardrails: {approval: required, target_label: service}
"#;
    let r = Remediator::start(
        Restored::default(),
        Arc::new(MemJournal::default()),
        Arc::new(PromqlVerifier {
            engine: Arc::new(Engine::new(EngineOptions::default())),
            db: Arc::new(Shared::default()),
        }),
        Arc::new(ManualClock(Mutex::new(ts(0)))),
        tokio::runtime::Handle::current(),
        RunbookSet::parse_file(yaml, "rb.yml", None).unwrap(),
        Settings::default(),
    )
    .unwrap();
    let alert = AlertRef {
        fingerprint: "fp".into(),
        labels: labels(&[("alertname", "HighErrorRate"), ("service", "api")]),
        context: labels(&[("previous_version", "v1"), ("service", "not-api")]),
    };
    let ids = r.notify(1, &[alert]).unwrap();
    assert_eq!(
        ids.len(),
        1,
        "only the runbook matching the alert's own labels"
    );
    let run = r.run(ids[0]).unwrap();
    assert_eq!(run.runbook, "rollback");
    // the alert's own labels win over the context
    assert_eq!(run.target.value, "api");
    assert_eq!(run.plan.steps[0].argv().unwrap(), ["/bin/true", "v1"]);
}
