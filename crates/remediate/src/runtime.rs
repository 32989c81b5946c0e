//! The remediation runtime: the state machine shared by every run, each
//! transition written through a [`Journal`] (the audit log and the run
//! records) before anything else happens, drivers on the async runtime, and
//! proposals from alert notifications (idempotent per notification, alert
//! and runbook).
//!
//! Storage, HTTP and the alert hub stay outside: the binary implements
//! [`Journal`] over the state store and hands notifications to
//! [`Remediator::notify`]; incident timelines plug in as a [`TimelineSink`].

use crate::driver::{Clock, Escalation, Executors, Ledger, Verifier, drive};
use crate::http::HttpExecutor;
use crate::kubernetes::{KubeExecutor, KubeSource};
use crate::run::{AuditEvent, Breaker, Proposal, Refusal, Run, RunError, RunId, RunState, Runs};
use crate::runbook::{RemediationConfig, RunbookSet};
use day2_alerthub::EgressPolicy;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Why a notification's alert did or did not start a run; recorded with the
/// run so a notification handed over again proposes nothing twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub outbox_id: i64,
    pub fingerprint: String,
    pub runbook: String,
    pub run: Option<RunId>,
    /// The guardrail refusal when no run was created.
    pub refusal: Option<String>,
}

/// Everything one transition changed, written atomically.
#[derive(Debug)]
pub struct Commit<'a> {
    pub runs: Vec<&'a Run>,
    pub audit: &'a [AuditEvent],
    pub breakers: Vec<(&'a str, &'a Breaker)>,
    pub triggers: &'a [Trigger],
}

/// Durable record of runs, the audit log and breakers.
pub trait Journal: Send + Sync {
    fn commit(&self, c: &Commit<'_>) -> Result<(), String>;
    /// Was this alert of this notification already handled for this runbook?
    fn trigger_seen(
        &self,
        outbox_id: i64,
        fingerprint: &str,
        runbook: &str,
    ) -> Result<bool, String>;
}

/// Incident timelines: every audit event of a run started for alerts, in
/// order, after it is in the audit log (a step's "started" entry is recorded
/// before the step runs).
pub trait TimelineSink: Send + Sync {
    fn record(&self, alert_fingerprints: &[String], entry: &AuditEvent);
}

/// What a restart reads back.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    pub runs: Vec<Run>,
    pub breakers: BTreeMap<String, Breaker>,
    pub last_id: RunId,
}

/// Settings a reload may change.
#[derive(Clone)]
pub struct Settings {
    pub executors: Executors,
    /// How often a verify condition is evaluated until its deadline.
    pub verify_interval: Duration,
    /// Every run is a dry run.
    pub dry_run: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            executors: Executors::default(),
            verify_interval: Duration::from_secs(10),
            dry_run: false,
        }
    }
}

impl Settings {
    /// Settings from the `remediation:` section (`base_dir`: day2.yml's
    /// directory). Errors are (field path under `remediation`, message).
    pub fn from_config(
        cfg: &RemediationConfig,
        base_dir: &Path,
    ) -> Result<Settings, (String, String)> {
        let egress = EgressPolicy::from_list(&cfg.egress.allow)
            .map_err(|(i, m)| (format!("egress.allow[{i}]"), m))?;
        let kube = match &cfg.kubernetes {
            None => None,
            Some(k) => {
                let source = match (&k.kubeconfig, k.in_cluster) {
                    (Some(p), false) => KubeSource::Kubeconfig {
                        path: base_dir.join(p),
                        context: k.context.clone(),
                    },
                    (None, true) if k.context.is_none() => KubeSource::InCluster,
                    (None, true) => {
                        return Err(("kubernetes.context".into(), "only with kubeconfig".into()));
                    }
                    _ => {
                        return Err((
                            "kubernetes".into(),
                            "one of kubeconfig or in_cluster: true is required".into(),
                        ));
                    }
                };
                let timeout = k.timeout.map(|d| d.0).unwrap_or(Duration::from_secs(30));
                if timeout.is_zero() {
                    return Err(("kubernetes.timeout".into(), "must be greater than 0".into()));
                }
                Some(KubeExecutor {
                    source,
                    egress: egress.clone(),
                    field_manager: k.field_manager.clone().unwrap_or_else(|| "day2".into()),
                    timeout,
                })
            }
        };
        let verify_interval = cfg
            .verify_interval
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(10));
        if verify_interval.is_zero() {
            return Err(("verify_interval".into(), "must be greater than 0".into()));
        }
        Ok(Settings {
            executors: Executors {
                http: HttpExecutor {
                    egress,
                    body_cap: 0,
                },
                kube,
                ..Default::default()
            },
            verify_interval,
            dry_run: cfg.dry_run,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("no runbook named {0:?}")]
    UnknownRunbook(String),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("refused by guardrail: {0}")]
    Refused(Refusal),
    #[error("recording the run failed: {0}")]
    Journal(String),
}

/// A firing alert of a notification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertRef {
    pub fingerprint: String,
    pub labels: BTreeMap<String, String>,
    /// Labels the binary adds for binding params only, never for matching
    /// runbooks (e.g. the latest deployment of the alert's service); the
    /// alert's own labels win.
    pub context: BTreeMap<String, String>,
}

/// How far back finished runs still matter to guardrails (max-runs windows,
/// cooldowns, breaker resets); at least an hour.
pub fn horizon(set: &RunbookSet) -> Duration {
    set.runbooks
        .iter()
        .map(|r| {
            let g = &r.spec.guardrails;
            g.max_runs
                .window
                .0
                .max(g.cooldown.0)
                .max(g.circuit_breaker.reset_after.0)
        })
        .fold(Duration::from_secs(3600), Duration::max)
}

pub struct Remediator {
    runs: Mutex<Runs>,
    runbooks: RwLock<Arc<RunbookSet>>,
    settings: RwLock<Arc<Settings>>,
    journal: Arc<dyn Journal>,
    timeline: RwLock<Option<Arc<dyn TimelineSink>>>,
    escalation: RwLock<Option<Arc<dyn Escalation>>>,
    verifier: Arc<dyn Verifier>,
    clock: Arc<dyn Clock>,
    rt: tokio::runtime::Handle,
    /// Runs that have a driver task.
    driving: Mutex<BTreeSet<RunId>>,
    counters: Mutex<Counters>,
    /// Runs that reached a final state since the start (see [`Remediator::watch_finished`]).
    finished: tokio::sync::watch::Sender<u64>,
}

/// Counters for `/metrics` (since the process started).
#[derive(Default)]
struct Counters {
    /// (runbook, final state)
    finished: BTreeMap<(String, RunState), u64>,
    refused: BTreeMap<String, u64>,
    /// (runbook, ok)
    steps: BTreeMap<(String, bool), u64>,
}

impl Counters {
    fn count(&mut self, runs: &Runs, e: &AuditEvent) {
        use crate::run::AuditKind as K;
        let rb = e.runbook.clone();
        match e.kind {
            K::Refused if e.run.is_none() => *self.refused.entry(rb).or_default() += 1,
            K::StepFinished => {
                let ok = !e.outcome.as_deref().unwrap_or("").starts_with("failed:");
                *self.steps.entry((rb, ok)).or_default() += 1;
            }
            _ if ends_run(runs, e) => {
                if let Some(state) = e.state {
                    *self.finished.entry((rb, state)).or_default() += 1;
                }
            }
            _ => {}
        }
    }
}

/// Does the event record a run reaching its final state? (A failure
/// followed by `on_failure` steps ends the run only when they end.)
fn ends_run(runs: &Runs, e: &AuditEvent) -> bool {
    use crate::run::AuditKind as K;
    matches!(
        e.kind,
        K::Verified | K::Failed | K::RolledBack | K::Rejected | K::DryRun
    ) && e
        .run
        .and_then(|id| runs.get(id))
        .is_some_and(|r| r.state.is_terminal() && e.state == Some(r.state))
}

/// The ledger drivers write through.
struct Journaled(Arc<Remediator>);

impl Ledger for Journaled {
    fn apply<R>(&mut self, f: impl FnOnce(&mut Runs) -> R) -> Result<R, String> {
        let go = || {
            self.0
                .transact(|r| (f(r), Vec::new()))
                .map_err(|e| e.to_string())
        };
        // the journal writes synchronously (SQLite, fsync): let the other
        // tasks of a multi-threaded runtime move to another worker meanwhile
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(go),
            _ => go(),
        }
    }
}

impl Remediator {
    /// Rebuilds the state from `restored`, marks runs that were acting when
    /// the process stopped as failed (interrupted), and resumes approved runs.
    pub fn start(
        restored: Restored,
        journal: Arc<dyn Journal>,
        verifier: Arc<dyn Verifier>,
        clock: Arc<dyn Clock>,
        rt: tokio::runtime::Handle,
        runbooks: RunbookSet,
        settings: Settings,
    ) -> Result<Arc<Remediator>, Error> {
        let me = Arc::new(Remediator {
            runs: Mutex::new(Runs::restore(
                restored.runs,
                restored.breakers,
                restored.last_id,
            )),
            runbooks: RwLock::new(Arc::new(runbooks)),
            settings: RwLock::new(Arc::new(settings)),
            journal,
            timeline: RwLock::new(None),
            escalation: RwLock::new(None),
            verifier,
            clock,
            rt,
            driving: Mutex::new(BTreeSet::new()),
            counters: Mutex::new(Counters::default()),
            finished: tokio::sync::watch::Sender::new(0),
        });
        let now = me.clock.now();
        let interrupted = me.transact(|r| (r.interrupt_in_flight(now), Vec::new()))?;
        for id in interrupted {
            tracing::warn!(
                run = id,
                "run interrupted by a restart marked failed; it is not resumed"
            );
        }
        let approved: Vec<RunId> = me
            .runs
            .lock()
            .iter()
            .filter(|r| r.state == RunState::Approved)
            .map(|r| r.id)
            .collect();
        for id in approved {
            me.spawn_driver(id);
        }
        Ok(me)
    }

    /// Applies reloaded runbooks and settings; runs in progress keep their plan.
    pub fn reconfigure(&self, runbooks: RunbookSet, settings: Settings) {
        *self.runbooks.write() = Arc::new(runbooks);
        *self.settings.write() = Arc::new(settings);
    }

    pub fn set_timeline(&self, sink: Option<Arc<dyn TimelineSink>>) {
        *self.timeline.write() = sink;
    }

    /// Where `escalate` steps go (on-call, incidents); kept across reloads.
    pub fn set_escalation(&self, e: Option<Arc<dyn Escalation>>) {
        *self.escalation.write() = e;
    }

    pub fn runbooks(&self) -> Arc<RunbookSet> {
        self.runbooks.read().clone()
    }

    pub fn settings(&self) -> Arc<Settings> {
        self.settings.read().clone()
    }

    /// A run as the state machine holds it (runs pruned from memory are in the journal).
    pub fn run(&self, id: RunId) -> Option<Run> {
        self.runs.lock().get(id).cloned()
    }

    /// Changes whenever runs reach a final state (the value counts them
    /// since the runtime started), after the journal has them: a waiter
    /// marks the current value seen, reads what it needs, then awaits
    /// `changed()` without missing an ending in between.
    pub fn watch_finished(&self) -> tokio::sync::watch::Receiver<u64> {
        self.finished.subscribe()
    }

    /// Is a driver working on the run?
    pub fn is_driving(&self, id: RunId) -> bool {
        self.driving.lock().contains(&id)
    }

    /// Applies one transition and writes what it changed before returning.
    /// On a journal error the change stays in memory but the caller stops
    /// (a driver never executes a step whose start is not on record).
    fn transact<R>(&self, f: impl FnOnce(&mut Runs) -> (R, Vec<Trigger>)) -> Result<R, Error> {
        let (result, timeline, ended) = {
            let mut runs = self.runs.lock();
            let (result, triggers) = f(&mut runs);
            let audit = runs.drain_audit();
            if audit.is_empty() && triggers.is_empty() {
                return Ok(result);
            }
            let ids: BTreeSet<RunId> = audit
                .iter()
                .filter_map(|e| e.run)
                .chain(triggers.iter().filter_map(|t| t.run))
                .collect();
            let names: BTreeSet<&str> = audit.iter().map(|e| e.runbook.as_str()).collect();
            let commit = Commit {
                runs: ids.iter().filter_map(|id| runs.get(*id)).collect(),
                audit: &audit,
                breakers: names
                    .iter()
                    .filter_map(|n| runs.breaker(n).map(|b| (*n, b)))
                    .collect(),
                triggers: &triggers,
            };
            self.journal.commit(&commit).map_err(Error::Journal)?;
            let mut counters = self.counters.lock();
            for e in &audit {
                counters.count(&runs, e);
            }
            drop(counters);
            let ended = audit.iter().filter(|e| ends_run(&runs, e)).count() as u64;
            let timeline: Vec<(Vec<String>, AuditEvent)> = audit
                .into_iter()
                .filter_map(|e| {
                    let alerts = runs.get(e.run?)?.alerts.clone();
                    (!alerts.is_empty()).then_some((alerts, e))
                })
                .collect();
            (result, timeline, ended)
        };
        if ended > 0 {
            self.finished.send_modify(|n| *n += ended);
        }
        if let Some(sink) = self.timeline.read().clone() {
            for (alerts, e) in &timeline {
                sink.record(alerts, e);
            }
        }
        Ok(result)
    }

    /// Proposes a run by hand (API, CLI). Starts it when no approval is needed.
    pub fn propose(self: &Arc<Self>, runbook: &str, mut p: Proposal) -> Result<RunId, Error> {
        let set = self.runbooks();
        let rb = set
            .get(runbook)
            .ok_or_else(|| Error::UnknownRunbook(runbook.to_string()))?;
        p.dry_run |= self.settings.read().dry_run;
        let now = self.clock.now();
        let id = self
            .transact(|r| (r.propose(rb, p, now), Vec::new()))?
            .map_err(Error::Refused)?;
        self.start_if_approved(id);
        Ok(id)
    }

    /// Proposes a run for every firing alert and every runbook it matches,
    /// once per (notification, alert, runbook) however often the
    /// notification is handed over. Returns the runs created.
    pub fn notify(
        self: &Arc<Self>,
        outbox_id: i64,
        alerts: &[AlertRef],
    ) -> Result<Vec<RunId>, Error> {
        let set = self.runbooks();
        let dry_run = self.settings.read().dry_run;
        self.prune(&set);
        let mut created = Vec::new();
        for a in alerts {
            for rb in set.matching(&a.labels) {
                let seen = self
                    .journal
                    .trigger_seen(outbox_id, &a.fingerprint, rb.name())
                    .map_err(Error::Journal)?;
                if seen {
                    continue;
                }
                let alertname = a.labels.get("alertname").map(String::as_str).unwrap_or("");
                let mut labels = a.context.clone();
                labels.extend(a.labels.clone());
                let p = Proposal {
                    labels,
                    inputs: BTreeMap::new(),
                    requester: format!("alert:{alertname}"),
                    dry_run,
                    alerts: vec![a.fingerprint.clone()],
                };
                let now = self.clock.now();
                let res = self.transact(|r| {
                    let res = r.propose(rb, p, now);
                    let trigger = Trigger {
                        outbox_id,
                        fingerprint: a.fingerprint.clone(),
                        runbook: rb.name().to_string(),
                        run: res.as_ref().ok().copied(),
                        refusal: res.as_ref().err().map(|e| e.to_string()),
                    };
                    (res, vec![trigger])
                })?;
                match res {
                    Ok(id) => {
                        created.push(id);
                        self.start_if_approved(id);
                    }
                    Err(refusal) => {
                        tracing::info!(runbook = rb.name(), alert = %a.fingerprint, %refusal, "remediation refused")
                    }
                }
            }
        }
        Ok(created)
    }

    /// Approves a run (the approver must not be its requester) and starts it.
    pub fn approve(self: &Arc<Self>, id: RunId, approver: &str) -> Result<(), Error> {
        let now = self.clock.now();
        self.transact(|r| (r.approve(id, approver, now), Vec::new()))?
            .map_err(|e| match e {
                RunError::Refused(r) => Error::Refused(r),
                e => Error::Run(e),
            })?;
        self.start_if_approved(id);
        Ok(())
    }

    pub fn reject(&self, id: RunId, user: &str, reason: &str) -> Result<(), Error> {
        let now = self.clock.now();
        self.transact(|r| (r.reject(id, user, reason, now), Vec::new()))??;
        Ok(())
    }

    fn start_if_approved(self: &Arc<Self>, id: RunId) {
        if self.run(id).is_some_and(|r| r.state == RunState::Approved) {
            self.spawn_driver(id);
        }
    }

    fn spawn_driver(self: &Arc<Self>, id: RunId) {
        if !self.driving.lock().insert(id) {
            return;
        }
        let me = self.clone();
        self.rt.spawn(async move {
            let settings = me.settings();
            let mut executors = settings.executors.clone();
            if let Some(e) = me.escalation.read().clone() {
                executors.escalation = Some(e);
            }
            let mut ledger = Journaled(me.clone());
            let res = drive(
                &mut ledger,
                id,
                &executors,
                me.verifier.as_ref(),
                me.clock.as_ref(),
                settings.verify_interval,
            )
            .await;
            me.driving.lock().remove(&id);
            match res {
                Ok(state) => tracing::info!(run = id, %state, "remediation run ended"),
                Err(e) => tracing::error!(run = id, error = %e, "remediation run stopped"),
            }
        });
    }

    /// Prometheus text-format lines for `/metrics`.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let c = self.counters.lock();
        let _ = writeln!(
            out,
            "# HELP day2_remediation_runs_finished_total Remediation runs that ended, by runbook and final state.\n# TYPE day2_remediation_runs_finished_total counter"
        );
        for ((rb, state), n) in &c.finished {
            let _ = writeln!(
                out,
                "day2_remediation_runs_finished_total{{runbook=\"{rb}\",state=\"{state}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP day2_remediation_refusals_total Proposals refused by a guardrail, by runbook.\n# TYPE day2_remediation_refusals_total counter"
        );
        for (rb, n) in &c.refused {
            let _ = writeln!(
                out,
                "day2_remediation_refusals_total{{runbook=\"{rb}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP day2_remediation_steps_total Steps executed, by runbook and result.\n# TYPE day2_remediation_steps_total counter"
        );
        for ((rb, ok), n) in &c.steps {
            let result = if *ok { "ok" } else { "failed" };
            let _ = writeln!(
                out,
                "day2_remediation_steps_total{{runbook=\"{rb}\",result=\"{result}\"}} {n}"
            );
        }
        drop(c);
        let mut active: BTreeMap<RunState, u64> = BTreeMap::new();
        for r in self.runs.lock().iter().filter(|r| !r.state.is_terminal()) {
            *active.entry(r.state).or_default() += 1;
        }
        let _ = writeln!(
            out,
            "# HELP day2_remediation_runs_active Runs not finished, by state.\n# TYPE day2_remediation_runs_active gauge"
        );
        for (state, n) in active {
            let _ = writeln!(out, "day2_remediation_runs_active{{state=\"{state}\"}} {n}");
        }
    }

    /// Forgets finished runs no guardrail looks at any more (they stay in the journal).
    fn prune(&self, set: &RunbookSet) {
        let now = self.clock.now().as_millisecond();
        let keep = horizon(set).as_millis() as i64;
        if let Ok(before) = jiff::Timestamp::from_millisecond(now.saturating_sub(keep)) {
            self.runs.lock().prune(before);
        }
    }
}
