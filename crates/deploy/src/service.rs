//! The deployment service over the state store: records deployments, runs
//! due analyses, triggers rollbacks, keeps the latest deployment of every
//! service for alert annotations, and the DORA figures for `/metrics`.
//!
//! Synchronous (callers on an async runtime use `spawn_blocking`); every
//! method that depends on the time takes it as an argument. Analyses and
//! rollbacks run only in [`Deployments::run_due`], which the binary calls
//! when the next analysis is due, after every new deployment and when a
//! remediation run ends; after a restart the first call evaluates whatever
//! fell due, and records whatever rollback run ended, while day2 was down.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use day2_model::{Labels, Queryable};
use day2_promql::Engine;
use day2_store::Store;
use day2_store::deploy::{
    DeploymentFilter, DeploymentRow, DeploymentStatusRow, IdempotentInsert, NewDeploymentRow,
    NewStatusRow,
};
use jiff::Timestamp;
use parking_lot::{Mutex, RwLock};

use crate::analysis::{self, AnalysisResult, AnalysisSpec, Verdict};
use crate::config::DeploymentsSection;
use crate::dora::{self, DoraDeployment, DoraEvent, DoraReport, Figures};
use crate::model::{
    AnalysisView, Commit, Deployment, NewDeployment, RollbackOutcome, RollbackView, Status,
    StatusChange, StatusMark,
};

/// Starts the rollback runbook of a deployment whose enforced analysis
/// failed, and tells how the run it started ended. Called on a blocking
/// thread.
pub trait RollbackTrigger: Send + Sync {
    /// Starts `runbook` for `deployment` (`previous`: the deployment of the
    /// same service and environment before it). Called at most once per
    /// deployment. Returns the id of the run it started, or why it did not.
    fn rollback(
        &self,
        runbook: &str,
        deployment: &Deployment,
        previous: Option<&Deployment>,
    ) -> Result<String, String>;

    /// For a rollback a stopped process claimed but did not record: the run
    /// it started (`Ok(Some)`), none for certain (`Ok(None)`: the rollback
    /// is triggered now), or unknown (`Err`, the default: it is not
    /// triggered again).
    fn started(&self, runbook: &str, deployment: &Deployment) -> Result<Option<String>, String> {
        let _ = (runbook, deployment);
        Err("earlier runs cannot be looked up".into())
    }

    /// How a run it started ended; `Ok(None)` while it goes on (the
    /// default: a trigger that starts no runs sees none end).
    fn finished(&self, run_id: &str) -> Result<Option<RunEnd>, String> {
        let _ = run_id;
        Ok(None)
    }
}

/// Service outages from outside deployments (the binary: resolved and open
/// incidents) for DORA's time to restore. Called on a blocking thread.
pub trait OutageSource: Send + Sync {
    /// Outages that started in `[from, to]` (ms), with the section's
    /// service and environment labels to attribute them by.
    fn outages(
        &self,
        config: &DeploymentsSection,
        from: i64,
        to: i64,
    ) -> Result<Vec<Outage>, String>;
}

/// One outage of a service in an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    pub service: String,
    pub environment: String,
    /// Started (ms).
    pub from: i64,
    /// Restored (ms); `None` while it lasts.
    pub to: Option<i64>,
}

/// How a rollback run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd {
    /// The run's final state as the runtime names it.
    pub state: String,
    /// Its steps ran and its verification held: the deployment is rolled back.
    pub rolled_back: bool,
    /// Why it did not roll the deployment back.
    pub reason: Option<String>,
    pub at: Timestamp,
}

/// The trigger without a remediation runtime: every rollback is refused
/// with a message that says so (an enforced analysis never fails silently).
pub struct NoRemediation;

impl RollbackTrigger for NoRemediation {
    fn rollback(
        &self,
        runbook: &str,
        _: &Deployment,
        _: Option<&Deployment>,
    ) -> Result<String, String> {
        Err(not_configured(runbook))
    }
}

/// The error of a rollback while no `remediation:` section is configured.
pub fn not_configured(runbook: &str) -> String {
    format!("rollback runbook {runbook}: remediation is not configured")
}

/// Errors of the service, shaped for the API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// An idempotency key reused for a different request.
    #[error("{0}")]
    Conflict(String),
    #[error("state store: {0}")]
    Store(#[from] day2_store::Error),
}

/// What [`Deployments::record`] did.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub deployment: Deployment,
    /// False: a retry with a known idempotency key; nothing was recorded.
    pub created: bool,
}

/// The latest deployment of a service to one environment (alert annotations).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Latest {
    id: i64,
    environment: String,
    version: String,
    deployed_at: i64,
    url: String,
}

#[derive(Default)]
struct Counters {
    analyses: BTreeMap<&'static str, u64>,
    rollbacks: BTreeMap<&'static str, u64>,
    /// Rollback runs seen to end, by whether they rolled the deployment back.
    rollback_runs: BTreeMap<&'static str, u64>,
    pending: usize,
}

/// The deployment service.
pub struct Deployments {
    store: Arc<Store>,
    engine: Arc<Engine>,
    db: Arc<dyn Queryable>,
    config: RwLock<Arc<DeploymentsSection>>,
    rollback: RwLock<Arc<dyn RollbackTrigger>>,
    outages: RwLock<Option<Arc<dyn OutageSource>>>,
    latest: RwLock<HashMap<String, Vec<Latest>>>,
    /// One `run_due` at a time: a `claimed` rollback seen by it is then
    /// always one a previous process left behind.
    run_lock: Mutex<()>,
    dora: RwLock<Option<DoraReport>>,
    counters: Mutex<Counters>,
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// `name{labels}`, or just `name` without labels.
/// The request as the client sent it (times it left out stay out: a
/// retry gets another default), to tell a retry from a reused key.
fn fingerprint(input: &NewDeployment, environment: &str) -> String {
    serde_json::json!({
        "service": input.service,
        "environment": environment,
        "version": input.version,
        "commits": input.commits,
        "deployed_at": input.deployed_at.map(|t| t.to_string()),
        "url": input.url,
        "description": input.description,
    })
    .to_string()
}

fn series(name: &str, labels: &str) -> String {
    if labels.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{labels}}}")
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Deployments {
    /// Opens the service over the store (loads the latest deployments).
    pub fn open(
        store: Arc<Store>,
        engine: Arc<Engine>,
        db: Arc<dyn Queryable>,
        config: DeploymentsSection,
    ) -> Result<Deployments, Error> {
        let mut latest: HashMap<String, Vec<Latest>> = HashMap::new();
        for r in store.deployment_latest()? {
            latest.entry(r.service.clone()).or_default().push(Latest {
                id: r.id,
                environment: r.environment,
                version: r.version,
                deployed_at: r.deployed_at,
                url: r.url,
            });
        }
        Ok(Deployments {
            store,
            engine,
            db,
            config: RwLock::new(Arc::new(config)),
            rollback: RwLock::new(Arc::new(NoRemediation)),
            outages: RwLock::new(None),
            latest: RwLock::new(latest),
            run_lock: Mutex::new(()),
            dora: RwLock::new(None),
            counters: Mutex::new(Counters::default()),
        })
    }

    /// Applies a new `deployments:` section (new deployments use it;
    /// recorded ones keep the analysis they were given).
    pub fn set_config(&self, config: DeploymentsSection) {
        *self.config.write() = Arc::new(config);
    }

    pub fn config(&self) -> Arc<DeploymentsSection> {
        self.config.read().clone()
    }

    /// Replaces the rollback trigger (the remediation runtime).
    pub fn set_rollback_trigger(&self, trigger: Arc<dyn RollbackTrigger>) {
        *self.rollback.write() = trigger;
    }

    /// Adds outages from another source (incidents) to DORA's time to restore.
    pub fn set_outage_source(&self, source: Arc<dyn OutageSource>) {
        *self.outages.write() = Some(source);
    }

    /// Records a deployment marked by `by` (the API principal).
    pub fn create(
        &self,
        input: NewDeployment,
        by: &str,
        now: Timestamp,
    ) -> Result<Deployment, Error> {
        Ok(self.record(input, by, now)?.deployment)
    }

    /// Records a deployment; with an idempotency key already used for the
    /// same request, returns the deployment it recorded instead (a key
    /// reused for another request is a conflict).
    pub fn record(
        &self,
        input: NewDeployment,
        by: &str,
        now: Timestamp,
    ) -> Result<Recorded, Error> {
        input.validate(now).map_err(Error::BadRequest)?;
        let cfg = self.config();
        let environment = input
            .environment
            .clone()
            .unwrap_or_else(|| cfg.default_environment.clone());
        let deployed_at = ms(input.deployed_at.unwrap_or(now));
        let spec = match cfg.analysis_for(&input.service, &environment) {
            Some(a) => Some(
                a.spec(&input.service, &environment)
                    .map_err(Error::BadRequest)?,
            ),
            None => None,
        };
        let row = NewDeploymentRow {
            service: input.service.clone(),
            environment: environment.clone(),
            version: input.version.clone(),
            commits: json(&input.commits),
            deployed_at,
            created_at: ms(now),
            marked_by: by.to_string(),
            url: input.url.clone().unwrap_or_default(),
            description: input.description.clone().unwrap_or_default(),
            analysis_due: spec.as_ref().map(|s| s.due(deployed_at)),
            analysis_spec: spec.as_ref().map(json),
        };
        let id = match &input.idempotency_key {
            None => self.store.deployment_insert(&row)?,
            Some(key) => {
                let request = fingerprint(&input, &environment);
                match self
                    .store
                    .deployment_insert_idempotent(&row, key, &request)?
                {
                    IdempotentInsert::Inserted(id) => id,
                    IdempotentInsert::Existing { id, request: seen } if seen == request => {
                        tracing::info!(id, key = %key, "deployment mark retried: already recorded");
                        return Ok(Recorded {
                            deployment: self.get(id)?,
                            created: false,
                        });
                    }
                    IdempotentInsert::Existing { id, .. } => {
                        return Err(Error::Conflict(format!(
                            "idempotency key {key:?} was already used for deployment {id} \
                             with a different request; use a new key for a new deployment"
                        )));
                    }
                }
            }
        };
        {
            let mut latest = self.latest.write();
            let list = latest.entry(row.service.clone()).or_default();
            let entry = Latest {
                id,
                environment: environment.clone(),
                version: row.version.clone(),
                deployed_at,
                url: row.url.clone(),
            };
            match list.iter_mut().find(|l| l.environment == environment) {
                Some(l) if (l.deployed_at, l.id) <= (deployed_at, id) => *l = entry,
                Some(_) => {}
                None => list.push(entry),
            }
        }
        tracing::info!(id, service = %row.service, environment = %environment, version = %row.version, by, "deployment recorded");
        let d = self.get(id)?;
        self.refresh_metrics(now)?;
        Ok(Recorded {
            deployment: d,
            created: true,
        })
    }

    fn view(&self, r: DeploymentRow, statuses: Vec<DeploymentStatusRow>) -> Deployment {
        let commits: Vec<Commit> = serde_json::from_str(&r.commits).unwrap_or_default();
        let analysis = r
            .analysis_spec
            .as_deref()
            .and_then(|s| serde_json::from_str::<AnalysisSpec>(s).ok())
            .map(|spec| AnalysisView {
                state: if r.analysis_state == "done" {
                    "done"
                } else {
                    "pending"
                },
                due_at: ts(r.analysis_due.unwrap_or(r.deployed_at)),
                result: r
                    .analysis_result
                    .as_deref()
                    .and_then(|s| serde_json::from_str::<AnalysisResult>(s).ok()),
                spec,
            });
        let outcome = r
            .rollback
            .as_deref()
            .and_then(|s| serde_json::from_str::<RollbackOutcome>(s).ok());
        let rollback = match (r.rollback_state.as_str(), outcome) {
            ("none", _) => None,
            (state, Some(o)) => Some(RollbackView {
                state: if state == "running" {
                    "running"
                } else {
                    "done"
                },
                runbook: o.runbook,
                requested_at: Some(o.requested_at),
                run_id: o.run_id,
                run_state: o.run_state,
                finished_at: o.finished_at,
                error: o.error,
            }),
            (_, None) => Some(RollbackView {
                state: "pending",
                runbook: analysis
                    .as_ref()
                    .and_then(|a| a.spec.rollback_runbook.clone())
                    .unwrap_or_default(),
                requested_at: None,
                run_id: None,
                run_state: None,
                finished_at: None,
                error: None,
            }),
        };
        let statuses = statuses
            .into_iter()
            .filter_map(|s| {
                Some(StatusMark {
                    status: Status::parse(&s.status)?,
                    reason: s.reason,
                    set_by: s.set_by,
                    at: ts(s.at),
                })
            })
            .collect();
        let mut d = Deployment {
            id: r.id,
            service: r.service,
            environment: r.environment,
            version: r.version,
            commits,
            deployed_at: ts(r.deployed_at),
            created_at: ts(r.created_at),
            marked_by: r.marked_by,
            url: r.url,
            description: r.description,
            analysis,
            rollback,
            statuses,
            outcome: "",
        };
        d.outcome = d.compute_outcome();
        d
    }

    pub fn get(&self, id: i64) -> Result<Deployment, Error> {
        let row = self
            .store
            .deployment_get(id)?
            .ok_or_else(|| Error::NotFound(format!("deployment {id} not found")))?;
        let statuses = self.store.deployment_statuses(id)?;
        Ok(self.view(row, statuses))
    }

    /// Deployments, newest first.
    pub fn list(&self, filter: &DeploymentFilter) -> Result<Vec<Deployment>, Error> {
        let rows = self.store.deployment_list(filter)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let statuses = self.store.deployment_statuses(r.id)?;
            out.push(self.view(r, statuses));
        }
        Ok(out)
    }

    /// Marks a deployment failed, rolled back or succeeded.
    pub fn mark(
        &self,
        id: i64,
        change: StatusChange,
        by: &str,
        now: Timestamp,
    ) -> Result<Deployment, Error> {
        if self.store.deployment_get(id)?.is_none() {
            return Err(Error::NotFound(format!("deployment {id} not found")));
        }
        if change.reason.len() > 4096 || change.reason.chars().any(|c| c.is_control() && c != '\n')
        {
            return Err(Error::BadRequest(
                "reason: at most 4096 bytes, no control characters".into(),
            ));
        }
        self.store.deployment_add_status(
            id,
            change.status.as_str(),
            &change.reason,
            by,
            ms(now),
        )?;
        tracing::info!(
            id,
            status = change.status.as_str(),
            by,
            "deployment status set"
        );
        self.refresh_metrics(now)?;
        self.get(id)
    }

    /// Evaluates every analysis due at `now`, records each verdict once,
    /// triggers the rollbacks failing enforced analyses asked for, records
    /// how their runs ended (a run that ended while day2 was down included),
    /// and refreshes the DORA figures. Returns when the next analysis is due.
    pub fn run_due(&self, now: Timestamp) -> Result<Option<i64>, Error> {
        let _one = self.run_lock.lock();
        let now_ms = ms(now);
        let mut next: Option<i64> = None;
        let mut pending = 0;
        for row in self.store.deployment_pending_analyses()? {
            let due = row.analysis_due.unwrap_or(row.deployed_at);
            if due > now_ms {
                next = Some(next.map_or(due, |n| n.min(due)));
                pending += 1;
                continue;
            }
            self.analyse(&row, now)?;
        }
        for row in self.store.deployment_open_rollbacks()? {
            self.roll_back(row, now)?;
        }
        for row in self.store.deployment_running_rollbacks()? {
            self.follow_rollback_run(row)?;
        }
        self.counters.lock().pending = pending;
        self.refresh_metrics(now)?;
        Ok(next)
    }

    fn analyse(&self, row: &DeploymentRow, now: Timestamp) -> Result<(), Error> {
        let spec: Option<AnalysisSpec> = row
            .analysis_spec
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok());
        let result = match &spec {
            Some(spec) => analysis::evaluate(&self.engine, &*self.db, spec, row.deployed_at, now),
            None => AnalysisResult {
                verdict: Verdict::Error,
                summary: "the stored analysis could not be read".into(),
                evaluated_at: now,
                baseline_from: ts(row.deployed_at),
                baseline_to: ts(row.deployed_at),
                post_from: ts(row.deployed_at),
                post_to: ts(row.deployed_at),
                checks: Vec::new(),
            },
        };
        let rollback = result.verdict == Verdict::Fail
            && spec.as_ref().and_then(|s| s.rollback_on_fail()).is_some();
        let recorded = self.store.deployment_record_verdict(
            row.id,
            &json(&result),
            result.verdict.as_str(),
            ms(now),
            rollback,
        )?;
        if recorded {
            *self
                .counters
                .lock()
                .analyses
                .entry(result.verdict.as_str())
                .or_default() += 1;
            let verdict = result.verdict.as_str();
            if result.verdict == Verdict::Pass {
                tracing::info!(id = row.id, service = %row.service, verdict, summary = %result.summary, "post-deploy analysis done");
            } else {
                tracing::warn!(id = row.id, service = %row.service, verdict, summary = %result.summary, "post-deploy analysis done");
            }
        }
        Ok(())
    }

    fn roll_back(&self, row: DeploymentRow, now: Timestamp) -> Result<(), Error> {
        let id = row.id;
        let claimed = row.rollback_state == "claimed";
        let statuses = self.store.deployment_statuses(id)?;
        let d = self.view(row, statuses);
        let runbook = d
            .analysis
            .as_ref()
            .and_then(|a| a.spec.rollback_runbook.clone())
            .unwrap_or_default();
        let mut outcome = RollbackOutcome {
            runbook: runbook.clone(),
            requested_at: now,
            run_id: None,
            run_state: None,
            finished_at: None,
            error: None,
        };
        let trigger = self.rollback.read().clone();
        if claimed {
            // only a previous process can have left a claim (see run_lock)
            match trigger.started(&runbook, &d) {
                Ok(Some(run)) => {
                    tracing::warn!(id, runbook = %runbook, run = %run, "rollback run started before a restart");
                    outcome.run_id = Some(run);
                    self.store
                        .deployment_rollback_running(id, &json(&outcome))?;
                    return Ok(());
                }
                Ok(None) => {} // it never started: start it now
                Err(e) => {
                    tracing::error!(id, runbook = %runbook, error = %e, "whether the rollback started before a restart is unknown");
                    outcome.error = Some(format!(
                        "day2 stopped while triggering rollback runbook {runbook}; whether it started is unknown (see the runbook's runs); not triggered again"
                    ));
                    self.count_rollback("unknown");
                    self.store.deployment_finish_rollback(id, &json(&outcome))?;
                    return Ok(());
                }
            }
        } else if !self.store.deployment_claim_rollback(id)? {
            return Ok(());
        }
        if let Some(newer) = self.newer_than(&d) {
            // rolling back now would undo the newer deployment instead
            outcome.error = Some(format!(
                "not triggered: deployment {newer} of {} to {} replaced this one before its rollback was due",
                d.service, d.environment
            ));
            self.count_rollback("superseded");
            self.store.deployment_finish_rollback(id, &json(&outcome))?;
            return Ok(());
        }
        let previous = self.previous(&d)?;
        match trigger.rollback(&runbook, &d, previous.as_ref()) {
            Ok(run) => {
                tracing::warn!(id, service = %d.service, runbook = %runbook, run = %run, "rollback runbook started");
                outcome.run_id = Some(run);
                self.count_rollback("started");
                self.store
                    .deployment_rollback_running(id, &json(&outcome))?;
            }
            Err(e) => {
                tracing::error!(id, service = %d.service, runbook = %runbook, error = %e, "rollback runbook could not start");
                outcome.error = Some(e);
                self.count_rollback("error");
                self.store.deployment_finish_rollback(id, &json(&outcome))?;
            }
        }
        Ok(())
    }

    /// Records how a deployment's rollback run ended, once it has: a run
    /// that rolled the deployment back marks it `rolled_back` (by `day2`,
    /// at the run's end); any other end is kept as the rollback's error.
    fn follow_rollback_run(&self, row: DeploymentRow) -> Result<(), Error> {
        let id = row.id;
        let Some(mut outcome) = row
            .rollback
            .as_deref()
            .and_then(|s| serde_json::from_str::<RollbackOutcome>(s).ok())
        else {
            tracing::error!(id, "the stored rollback cannot be read");
            return Ok(());
        };
        let Some(run) = outcome.run_id.clone() else {
            return Ok(());
        };
        let trigger = self.rollback.read().clone();
        let end = match trigger.finished(&run) {
            Ok(Some(end)) => end,
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::warn!(id, run = %run, error = %e, "the rollback run's state cannot be read; retrying later");
                return Ok(());
            }
        };
        let runbook = outcome.runbook.clone();
        outcome.run_state = Some(end.state.clone());
        outcome.finished_at = Some(end.at);
        let mark = if end.rolled_back {
            Some(NewStatusRow {
                status: Status::RolledBack.as_str().into(),
                reason: format!("rollback runbook {runbook} run {run} {}", end.state),
                set_by: "day2".into(),
                at: ms(end.at),
            })
        } else {
            let why = end.reason.as_deref().unwrap_or("no reason recorded");
            outcome.error = Some(format!(
                "rollback runbook {runbook} run {run} {}: {why}",
                end.state
            ));
            None
        };
        if self
            .store
            .deployment_rollback_ended(id, &json(&outcome), mark.as_ref())?
        {
            let result = if end.rolled_back {
                "rolled_back"
            } else {
                "failed"
            };
            *self
                .counters
                .lock()
                .rollback_runs
                .entry(result)
                .or_default() += 1;
            if end.rolled_back {
                tracing::info!(id, runbook = %runbook, run = %run, "deployment rolled back");
            } else {
                tracing::error!(id, runbook = %runbook, run = %run, state = %end.state, "rollback run did not roll the deployment back");
            }
        }
        Ok(())
    }

    /// The deployment of the same service and environment before `d`.
    pub fn previous(&self, d: &Deployment) -> Result<Option<Deployment>, Error> {
        let Some(row) =
            self.store
                .deployment_previous(&d.service, &d.environment, ms(d.deployed_at), d.id)?
        else {
            return Ok(None);
        };
        let statuses = self.store.deployment_statuses(row.id)?;
        Ok(Some(self.view(row, statuses)))
    }

    /// The id of a later deployment of the same service and environment.
    fn newer_than(&self, d: &Deployment) -> Option<i64> {
        let latest = self.latest.read();
        latest
            .get(&d.service)?
            .iter()
            .find(|l| l.environment == d.environment && l.id != d.id)
            .filter(|l| (l.deployed_at, l.id) > (d.deployed_at.as_millisecond(), d.id))
            .map(|l| l.id)
    }

    fn count_rollback(&self, result: &'static str) {
        *self.counters.lock().rollbacks.entry(result).or_default() += 1;
    }

    /// The DORA report over `window` up to `now`, optionally for one
    /// service and/or environment.
    pub fn dora(
        &self,
        service: Option<&str>,
        environment: Option<&str>,
        window: Duration,
        now: Timestamp,
    ) -> Result<DoraReport, Error> {
        let to = ms(now);
        let from = to.saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
        let rows = self.store.deployment_list(&DeploymentFilter {
            service: service.map(String::from),
            environment: environment.map(String::from),
            since: Some(from),
            until: Some(to),
            limit: usize::MAX,
        })?;
        let mut events = Vec::with_capacity(rows.len() * 2);
        for r in &rows {
            let commits: Vec<Commit> = serde_json::from_str(&r.commits).unwrap_or_default();
            events.push(DoraEvent::Deployed(DoraDeployment {
                id: r.id,
                service: r.service.clone(),
                environment: r.environment.clone(),
                deployed_at: r.deployed_at,
                commits: commits
                    .into_iter()
                    .map(|c| (c.sha, c.time.map(ms)))
                    .collect(),
            }));
            if r.verdict.as_deref() == Some(Verdict::Fail.as_str()) {
                events.push(DoraEvent::Failed {
                    deployment: r.id,
                    at: r.evaluated_at.unwrap_or(r.deployed_at),
                });
            }
        }
        for s in self.store.deployment_statuses_since(from)? {
            let (deployment, at) = (s.deployment_id, s.at);
            events.push(match Status::parse(&s.status) {
                Some(Status::Failed) => DoraEvent::Failed { deployment, at },
                Some(Status::RolledBack) => DoraEvent::RolledBack { deployment, at },
                Some(Status::Succeeded) => DoraEvent::Succeeded { deployment, at },
                None => continue,
            });
        }
        let source = self.outages.read().clone();
        if let Some(src) = source {
            match src.outages(&self.config(), from, to) {
                Ok(list) => events.extend(
                    list.into_iter()
                        .filter(|o| service.is_none_or(|s| s == o.service))
                        .filter(|o| environment.is_none_or(|e| e == o.environment))
                        .map(|o| DoraEvent::Outage {
                            service: o.service,
                            environment: o.environment,
                            from: o.from,
                            to: o.to,
                        }),
                ),
                // the deployments' figures still stand; the outages come back next time
                Err(e) => tracing::warn!(error = %e, "reading outages for DORA failed"),
            }
        }
        Ok(dora::compute(&events, from, to))
    }

    /// Recomputes the DORA figures `/metrics` shows (configured window).
    pub fn refresh_metrics(&self, now: Timestamp) -> Result<(), Error> {
        let window = self.config().dora.window;
        let report = self.dora(None, None, window, now)?;
        *self.dora.write() = Some(report);
        Ok(())
    }

    /// Annotations for an alert: its service's latest deployment (to the
    /// alert's environment when it names one), or nothing.
    pub fn annotations(&self, labels: &Labels) -> Vec<(String, String)> {
        let cfg = self.config();
        let Some(service) = cfg.alert_service_labels.iter().find_map(|l| labels.get(l)) else {
            return Vec::new();
        };
        let env = labels.get(&cfg.alert_environment_label);
        let latest = self.latest.read();
        let Some(d) = latest.get(service).and_then(|list| {
            list.iter()
                .filter(|d| env.is_none_or(|e| d.environment == e))
                .max_by_key(|d| (d.deployed_at, d.id))
        }) else {
            return Vec::new();
        };
        let mut out = vec![
            ("day2_deployment".to_string(), d.id.to_string()),
            ("day2_deployment_version".to_string(), d.version.clone()),
            (
                "day2_deployment_at".to_string(),
                ts(d.deployed_at).to_string(),
            ),
            (
                "day2_deployment_environment".to_string(),
                d.environment.clone(),
            ),
        ];
        if !d.url.is_empty() {
            out.push(("day2_deployment_url".to_string(), d.url.clone()));
        }
        out
    }

    /// DORA gauges (per service and environment, and totals without those
    /// labels) and analysis/rollback counters, in the text format.
    pub fn render_metrics(&self, out: &mut String) {
        let report = self.dora.read().clone();
        let c = self.counters.lock();
        let _ = writeln!(
            out,
            "# HELP day2_deployment_analyses_total Post-deploy analyses recorded by this process, by verdict."
        );
        let _ = writeln!(out, "# TYPE day2_deployment_analyses_total counter");
        for v in ["pass", "fail", "inconclusive", "error"] {
            let n = c.analyses.get(v).copied().unwrap_or(0);
            let _ = writeln!(out, "day2_deployment_analyses_total{{verdict=\"{v}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP day2_deployment_analyses_pending Analyses waiting for their post-deploy window to end."
        );
        let _ = writeln!(out, "# TYPE day2_deployment_analyses_pending gauge");
        let _ = writeln!(out, "day2_deployment_analyses_pending {}", c.pending);
        let _ = writeln!(
            out,
            "# HELP day2_deployment_rollbacks_total Rollback runbooks requested by failed enforced analyses, by result."
        );
        let _ = writeln!(out, "# TYPE day2_deployment_rollbacks_total counter");
        for r in ["started", "error", "superseded", "unknown"] {
            let n = c.rollbacks.get(r).copied().unwrap_or(0);
            let _ = writeln!(out, "day2_deployment_rollbacks_total{{result=\"{r}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP day2_deployment_rollback_runs_finished_total Rollback runbook runs seen to end, by whether they rolled the deployment back."
        );
        let _ = writeln!(
            out,
            "# TYPE day2_deployment_rollback_runs_finished_total counter"
        );
        for r in ["rolled_back", "failed"] {
            let n = c.rollback_runs.get(r).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "day2_deployment_rollback_runs_finished_total{{result=\"{r}\"}} {n}"
            );
        }
        drop(c);
        let Some(report) = report else {
            return;
        };
        let _ = writeln!(
            out,
            "# HELP day2_dora_window_seconds Length of the window the DORA gauges cover."
        );
        let _ = writeln!(out, "# TYPE day2_dora_window_seconds gauge");
        let _ = writeln!(out, "day2_dora_window_seconds {}", report.window_seconds);
        let mut scopes: Vec<(String, &Figures)> = report
            .services
            .iter()
            .map(|s| {
                (
                    format!(
                        "service=\"{}\",environment=\"{}\"",
                        escape(&s.service),
                        escape(&s.environment)
                    ),
                    &s.figures,
                )
            })
            .collect();
        scopes.push((String::new(), &report.overall));
        type Getter = fn(&Figures) -> Option<f64>;
        let gauges: [(&str, &str, Getter); 5] = [
            (
                "day2_dora_deployments",
                "Deployments in the DORA window (no service label: all services).",
                |f| Some(f.deployments as f64),
            ),
            (
                "day2_dora_deployment_frequency_per_day",
                "Deployments per day over the DORA window.",
                |f| Some(f.deployments_per_day),
            ),
            (
                "day2_dora_change_failure_rate",
                "Failed deployments (failed analysis, marked failed or rolled back) / deployments.",
                |f| f.change_failure_rate,
            ),
            (
                "day2_dora_failed_deployments",
                "Failed deployments in the DORA window.",
                |f| Some(f.failed as f64),
            ),
            (
                "day2_dora_open_failures",
                "Failures not restored yet (no good deployment or rollback since).",
                |f| Some(f.open_failures as f64),
            ),
        ];
        for (name, help, get) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (labels, f) in &scopes {
                if let Some(v) = get(f) {
                    let _ = writeln!(out, "{} {v}", series(name, labels));
                }
            }
        }
        type Quant = fn(&Figures) -> Option<dora::Quantiles>;
        let summaries: [(&str, &str, Quant); 2] = [
            (
                "day2_dora_lead_time_seconds",
                "Lead time for changes (commit to deploy) over the DORA window.",
                |f| f.lead_time_seconds,
            ),
            (
                "day2_dora_time_to_restore_seconds",
                "Time from a failed deployment to the next good deployment or rollback.",
                |f| f.time_to_restore_seconds,
            ),
        ];
        for (name, help, get) in summaries {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (labels, f) in &scopes {
                if let Some(q) = get(f) {
                    let sep = if labels.is_empty() { "" } else { "," };
                    for (quantile, v) in [("0.5", q.median), ("0.9", q.p90)] {
                        let l = format!("{labels}{sep}quantile=\"{quantile}\"");
                        let _ = writeln!(out, "{} {v}", series(name, &l));
                    }
                }
            }
        }
    }
}
