//! Guardrails and the run state machine. Pure: no I/O, and every method that
//! can change state takes the current time, so tests drive it with a frozen
//! clock. Every transition appends [`AuditEvent`]s for the audit log and the
//! incident timeline.
//!
//! ```text
//! proposed ─┬─> awaiting_approval ─┬─> approved ─> running ─┬─> verifying ─┬─> verified
//!           │                      └─> rejected             │              └─> failed ─┐
//!           ├─> approved (approval: none)                   └─> failed ───────────────┤
//!           └─> dry_run                                rolling_back <─(on_failure)───┘
//!                                                          ├─> rolled_back
//!                                                          └─> failed
//! ```

use crate::duration::Dur;
use crate::exec::ExecOutcome;
use crate::params::{self, Bound, ParamError};
use crate::plan::{self, Phase, Plan, PlannedStep};
use crate::runbook::{Approval, Guardrails, LoadedRunbook};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub type RunId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Proposed,
    AwaitingApproval,
    Approved,
    Running,
    Verifying,
    RollingBack,
    Verified,
    Failed,
    RolledBack,
    Rejected,
    DryRun,
}

impl RunState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Verified
                | RunState::Failed
                | RunState::RolledBack
                | RunState::Rejected
                | RunState::DryRun
        )
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self).ok();
        f.write_str(s.as_ref().and_then(|v| v.as_str()).unwrap_or("?"))
    }
}

/// What a run acts on: the value of the runbook's target label.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Target {
    pub label: String,
    pub value: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}", self.label, self.value)
    }
}

/// A request to run a runbook for an alert (or by hand).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The alert's labels.
    pub labels: BTreeMap<String, String>,
    /// Parameter values given explicitly (by a person); must be declared.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// Who asks: a user, or e.g. `alert:DiskFull` for automatic proposals.
    pub requester: String,
    /// Force a dry run whatever the runbook says.
    #[serde(default)]
    pub dry_run: bool,
    /// Fingerprints of the alerts that asked for the run (for incident timelines).
    #[serde(default)]
    pub alerts: Vec<String>,
}

/// A guardrail that said no. Each variant names the guardrail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "guardrail", rename_all = "snake_case")]
pub enum Refusal {
    #[error("parameters: {0}")]
    Params(ParamError),
    #[error("target: the alert has no `{label}` label to name the target")]
    NoTarget { label: String },
    #[error("plan: {message}")]
    Plan { message: String },
    #[error(
        "circuit breaker: open after {failures} consecutive failed runs; half-open at {half_open_at}"
    )]
    CircuitOpen {
        failures: u32,
        half_open_at: Timestamp,
    },
    #[error("circuit breaker: half-open, trial run {trial} still in progress")]
    CircuitHalfOpen { trial: RunId },
    #[error("cooldown: last run on {target} ended at {last}; next allowed at {ready_at}")]
    Cooldown {
        target: Target,
        last: Timestamp,
        ready_at: Timestamp,
    },
    #[error("max runs: {count} runs on {target} within {window} (limit {limit})")]
    MaxRuns {
        target: Target,
        count: u32,
        limit: u32,
        window: Dur,
    },
    #[error("concurrency: {active} run(s) already in progress on {target} (limit {limit})")]
    Concurrency {
        target: Target,
        active: u32,
        limit: u32,
    },
    #[error("blast radius: runbook already acting on {active} other target(s) (limit {limit})")]
    BlastRadius { active: u32, limit: u32 },
    #[error("approval: {user} requested this run and cannot approve it")]
    SelfApproval { user: String },
    #[error("approval: an approver must be named")]
    NoApprover,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("no run {0}")]
    NotFound(RunId),
    #[error("run {id} is {state}: cannot {action}")]
    InvalidTransition {
        id: RunId,
        state: RunState,
        action: &'static str,
    },
    #[error("refused by guardrail: {0}")]
    Refused(Refusal),
}

/// What a step returned, as the state machine needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    pub ok: bool,
    /// Short outcome (`exited 0`, `timed out after 5s (process group killed)`).
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<crate::http::HttpOutcome>,
}

impl StepReport {
    pub fn from_exec(o: ExecOutcome, timeout: std::time::Duration) -> Self {
        StepReport {
            ok: o.success(),
            outcome: o.summary(timeout),
            exec: Some(o),
            http: None,
        }
    }
    pub fn ok(outcome: impl Into<String>) -> Self {
        StepReport {
            ok: true,
            outcome: outcome.into(),
            exec: None,
            http: None,
        }
    }
    pub fn failed(outcome: impl Into<String>) -> Self {
        StepReport {
            ok: false,
            outcome: outcome.into(),
            exec: None,
            http: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepResult {
    pub name: String,
    pub phase: Phase,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub report: StepReport,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub id: RunId,
    pub runbook: String,
    pub target: Target,
    pub requester: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Fingerprints of the alerts that asked for the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<String>,
    pub params: Bound,
    pub plan: Plan,
    /// The runbook's guardrails when the run was proposed.
    pub guardrails: Guardrails,
    pub dry_run: bool,
    pub state: RunState,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_deadline: Option<Timestamp>,
    /// Index of the next step of the current phase.
    pub cursor: usize,
    /// Started at, while a step is running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<Timestamp>,
    #[serde(default)]
    pub results: Vec<StepResult>,
    /// Why the run failed or was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Run {
    fn phase(&self) -> Phase {
        if self.state == RunState::RollingBack {
            Phase::OnFailure
        } else {
            Phase::Main
        }
    }
    fn phase_steps(&self) -> &[PlannedStep] {
        match self.phase() {
            Phase::Main => &self.plan.steps,
            Phase::OnFailure => &self.plan.on_failure,
        }
    }
    /// Time the last run on a target counts from for the cooldown.
    fn last_activity(&self) -> Timestamp {
        self.finished_at
            .or(self.started_at)
            .unwrap_or(self.created_at)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    Proposed,
    Refused,
    AwaitingApproval,
    Approved,
    Rejected,
    Started,
    StepStarted,
    StepFinished,
    /// A dry run lists each step it would have run.
    StepPlanned,
    VerifyStarted,
    Verified,
    VerifyFailed,
    Failed,
    RollingBack,
    RolledBack,
    DryRun,
}

/// One entry for the audit log / incident timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunId>,
    pub runbook: String,
    pub target: String,
    pub kind: AuditKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The exact argv of exec and ansible steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// What other executors do (`POST https://...`); names of env vars set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The run's state after the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<RunState>,
}

/// The next thing the driver should do for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Waiting for a person: nothing to do.
    AwaitApproval,
    /// Approved: call [`Runs::start`].
    Start,
    /// Call [`Runs::begin_step`], execute, then [`Runs::finish_step`].
    Step(PlannedStep),
    /// Evaluate the expression and report with [`Runs::verify_result`].
    Verify {
        expr: String,
        deadline: Timestamp,
    },
    Done(RunState),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breaker {
    pub consecutive_failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<Timestamp>,
    /// The one run allowed while half-open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<RunId>,
}

/// All runs and breaker states; the whole value serializes for persistence.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Runs {
    next_id: RunId,
    runs: BTreeMap<RunId, Run>,
    /// Per runbook name.
    breakers: BTreeMap<String, Breaker>,
    #[serde(skip)]
    audit: Vec<AuditEvent>,
}

fn plus(t: Timestamp, d: Dur) -> Timestamp {
    Timestamp::from_millisecond(t.as_millisecond().saturating_add(d.as_millis_i64()))
        .unwrap_or(Timestamp::MAX)
}

fn minus(t: Timestamp, d: Dur) -> Timestamp {
    Timestamp::from_millisecond(t.as_millisecond().saturating_sub(d.as_millis_i64()))
        .unwrap_or(Timestamp::MIN)
}

impl Runs {
    pub fn new() -> Self {
        Runs::default()
    }

    pub fn get(&self, id: RunId) -> Option<&Run> {
        self.runs.get(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Run> {
        self.runs.values()
    }

    pub fn breaker(&self, runbook: &str) -> Option<&Breaker> {
        self.breakers.get(runbook)
    }

    /// Circuit breakers by runbook name.
    pub fn breakers(&self) -> &BTreeMap<String, Breaker> {
        &self.breakers
    }

    /// The highest run id handed out so far.
    pub fn last_id(&self) -> RunId {
        self.next_id
    }

    /// Rebuilds the state after a restart from stored runs (every run still
    /// inside a guardrail window, and every unfinished one), breakers and the
    /// highest id ever used, so rate limits, cooldowns, concurrency and
    /// breakers carry over.
    pub fn restore(
        runs: impl IntoIterator<Item = Run>,
        breakers: BTreeMap<String, Breaker>,
        last_id: RunId,
    ) -> Runs {
        let runs: BTreeMap<RunId, Run> = runs.into_iter().map(|r| (r.id, r)).collect();
        let next_id = runs.keys().copied().max().unwrap_or(0).max(last_id);
        Runs {
            next_id,
            runs,
            breakers,
            audit: Vec::new(),
        }
    }

    /// Ends runs that were acting (running, verifying, rolling back) when the
    /// process stopped: they become `failed` with an `interrupted` reason and
    /// count as failures for the breaker. Nothing is re-executed: whether the
    /// interrupted step took effect is unknown, so a person decides.
    pub fn interrupt_in_flight(&mut self, now: Timestamp) -> Vec<RunId> {
        let ids: Vec<(RunId, String)> = self
            .runs
            .values()
            .filter(|r| {
                matches!(
                    r.state,
                    RunState::Running | RunState::Verifying | RunState::RollingBack
                )
            })
            .map(|r| {
                let during = match (&r.step_started_at, r.phase_steps().get(r.cursor)) {
                    (Some(_), Some(s)) => format!(" during step {}", s.name),
                    _ => String::new(),
                };
                (
                    r.id,
                    format!(
                        "interrupted: day2 stopped while the run was {}{during}",
                        r.state
                    ),
                )
            })
            .collect();
        for (id, reason) in &ids {
            if let Some(r) = self.runs.get_mut(id) {
                r.step_started_at = None;
            }
            self.finish(*id, RunState::Failed, Some(reason.clone()), now);
        }
        ids.into_iter().map(|(id, _)| id).collect()
    }

    /// Audit events not yet taken.
    pub fn audit(&self) -> &[AuditEvent] {
        &self.audit
    }

    /// Takes the audit events (for writing to the audit log).
    pub fn drain_audit(&mut self) -> Vec<AuditEvent> {
        std::mem::take(&mut self.audit)
    }

    /// Forgets finished runs that ended before `before` (older than every window).
    pub fn prune(&mut self, before: Timestamp) {
        self.runs
            .retain(|_, r| !r.state.is_terminal() || r.finished_at.is_none_or(|f| f >= before));
    }

    fn event(
        &mut self,
        at: Timestamp,
        run: Option<&Run>,
        runbook: &str,
        target: String,
        kind: AuditKind,
    ) -> &mut AuditEvent {
        self.audit.push(AuditEvent {
            at,
            run: run.map(|r| r.id),
            runbook: runbook.to_string(),
            target,
            kind,
            actor: None,
            step: None,
            phase: None,
            argv: None,
            detail: None,
            outcome: None,
            state: run.map(|r| r.state),
        });
        self.audit.last_mut().expect("just pushed")
    }

    fn run_event(&mut self, id: RunId, at: Timestamp, kind: AuditKind) -> &mut AuditEvent {
        let run = self.runs.get(&id).cloned();
        let run = run.as_ref().expect("run exists");
        self.event(
            at,
            Some(run),
            &run.runbook.clone(),
            run.target.to_string(),
            kind,
        )
    }

    fn get_mut(&mut self, id: RunId) -> Result<&mut Run, RunError> {
        self.runs.get_mut(&id).ok_or(RunError::NotFound(id))
    }

    fn expect_state(
        &self,
        id: RunId,
        ok: &[RunState],
        action: &'static str,
    ) -> Result<&Run, RunError> {
        let r = self.runs.get(&id).ok_or(RunError::NotFound(id))?;
        if ok.contains(&r.state) {
            Ok(r)
        } else {
            Err(RunError::InvalidTransition {
                id,
                state: r.state,
                action,
            })
        }
    }

    /// Checks the breaker; `Ok(true)` when the run would be the half-open trial.
    fn check_breaker(
        &self,
        runbook: &str,
        g: &Guardrails,
        now: Timestamp,
        me: Option<RunId>,
    ) -> Result<bool, Refusal> {
        let Some(b) = self.breakers.get(runbook) else {
            return Ok(false);
        };
        let Some(opened) = b.opened_at else {
            return Ok(false);
        };
        let half_open_at = plus(opened, g.circuit_breaker.reset_after);
        if now < half_open_at {
            return Err(Refusal::CircuitOpen {
                failures: b.consecutive_failures,
                half_open_at,
            });
        }
        match b.trial {
            Some(t) if Some(t) == me => Ok(true),
            Some(t) if self.runs.get(&t).is_some_and(|r| !r.state.is_terminal()) => {
                Err(Refusal::CircuitHalfOpen { trial: t })
            }
            _ => Ok(true),
        }
    }

    /// Concurrency (any runbook) and blast radius (this runbook), not counting `me`.
    fn check_in_flight(
        &self,
        runbook: &str,
        target: &Target,
        g: &Guardrails,
        me: Option<RunId>,
    ) -> Result<(), Refusal> {
        let active = || {
            self.runs
                .values()
                .filter(move |r| Some(r.id) != me && !r.state.is_terminal() && !r.dry_run)
        };
        let on_target = active().filter(|r| &r.target == target).count() as u32;
        if on_target >= g.concurrency {
            return Err(Refusal::Concurrency {
                target: target.clone(),
                active: on_target,
                limit: g.concurrency,
            });
        }
        let others: BTreeSet<&Target> = active()
            .filter(|r| r.runbook == runbook && &r.target != target)
            .map(|r| &r.target)
            .collect();
        if others.len() as u32 >= g.blast_radius {
            return Err(Refusal::BlastRadius {
                active: others.len() as u32,
                limit: g.blast_radius,
            });
        }
        Ok(())
    }

    /// Cooldown and max runs per window for (runbook, target). Rejected runs do not count.
    fn check_rate(
        &self,
        runbook: &str,
        target: &Target,
        g: &Guardrails,
        now: Timestamp,
    ) -> Result<(), Refusal> {
        let past = || {
            self.runs.values().filter(|r| {
                r.runbook == runbook && &r.target == target && r.state != RunState::Rejected
            })
        };
        if !g.cooldown.is_zero()
            && let Some(last) = past().map(Run::last_activity).max()
        {
            let ready_at = plus(last, g.cooldown);
            if now < ready_at {
                return Err(Refusal::Cooldown {
                    target: target.clone(),
                    last,
                    ready_at,
                });
            }
        }
        let since = minus(now, g.max_runs.window);
        let count = past().filter(|r| r.created_at > since).count() as u32;
        if count >= g.max_runs.count {
            return Err(Refusal::MaxRuns {
                target: target.clone(),
                count,
                limit: g.max_runs.count,
                window: g.max_runs.window,
            });
        }
        Ok(())
    }

    /// Proposes a run of `rb` for an alert. Binds and checks parameters, then
    /// the guardrails (circuit breaker, concurrency, cooldown, max runs, blast
    /// radius); a refusal is recorded in the audit trail and no run is created.
    /// The new run is `dry_run`, `awaiting_approval` or `approved`.
    pub fn propose(
        &mut self,
        rb: &LoadedRunbook,
        p: Proposal,
        now: Timestamp,
    ) -> Result<RunId, Refusal> {
        let g = rb.spec.guardrails.clone();
        let name = rb.spec.name.clone();
        let target_value = p
            .labels
            .get(&g.target_label)
            .filter(|v| !v.is_empty())
            .cloned();
        let target_text = target_value
            .as_ref()
            .map(|v| {
                Target {
                    label: g.target_label.clone(),
                    value: v.clone(),
                }
                .to_string()
            })
            .unwrap_or_default();
        let refuse = |this: &mut Self, r: Refusal| {
            let e = this.event(now, None, &name, target_text.clone(), AuditKind::Refused);
            e.actor = Some(p.requester.clone());
            e.outcome = Some(r.to_string());
            Err(r)
        };
        let Some(value) = target_value else {
            return refuse(
                self,
                Refusal::NoTarget {
                    label: g.target_label.clone(),
                },
            );
        };
        let target = Target {
            label: g.target_label.clone(),
            value,
        };
        let bound = match params::bind(&rb.params, &p.labels, &p.inputs) {
            Ok(b) => b,
            Err(e) => return refuse(self, Refusal::Params(e)),
        };
        let dry_run = g.dry_run || p.dry_run;
        let checks = (|| {
            let trial = if dry_run {
                false
            } else {
                self.check_breaker(&name, &g, now, None)?
            };
            if !dry_run {
                self.check_in_flight(&name, &target, &g, None)?;
            }
            self.check_rate(&name, &target, &g, now)?;
            Ok(trial)
        })();
        let trial = match checks {
            Ok(t) => t,
            Err(r) => return refuse(self, r),
        };
        let plan = match plan::render(rb, &bound) {
            Ok(pl) => pl,
            Err(message) => return refuse(self, Refusal::Plan { message }),
        };
        self.next_id += 1;
        let id = self.next_id;
        let run = Run {
            id,
            runbook: name.clone(),
            target,
            requester: p.requester.clone(),
            approver: None,
            labels: p.labels,
            alerts: p.alerts,
            params: bound,
            plan,
            guardrails: g.clone(),
            dry_run,
            state: RunState::Proposed,
            created_at: now,
            started_at: None,
            finished_at: None,
            verify_deadline: None,
            cursor: 0,
            step_started_at: None,
            results: Vec::new(),
            reason: None,
        };
        self.runs.insert(id, run);
        if trial {
            self.breakers.entry(name.clone()).or_default().trial = Some(id);
        }
        self.run_event(id, now, AuditKind::Proposed).actor = Some(p.requester);
        if dry_run {
            let run = self.runs.get_mut(&id).expect("inserted");
            run.state = RunState::DryRun;
            run.finished_at = Some(now);
            let steps: Vec<PlannedStep> = run
                .plan
                .steps
                .iter()
                .chain(&run.plan.on_failure)
                .cloned()
                .collect();
            for s in steps {
                step_fields(self.run_event(id, now, AuditKind::StepPlanned), &s).outcome =
                    Some("dry run: not executed".into());
            }
            self.run_event(id, now, AuditKind::DryRun);
        } else if g.approval == Approval::Required {
            self.get_mut(id).expect("inserted").state = RunState::AwaitingApproval;
            self.run_event(id, now, AuditKind::AwaitingApproval);
        } else {
            self.get_mut(id).expect("inserted").state = RunState::Approved;
            self.run_event(id, now, AuditKind::Approved).actor =
                Some("policy: approval none".into());
        }
        Ok(id)
    }

    /// Approves a run awaiting approval. The requester cannot approve their own run.
    pub fn approve(&mut self, id: RunId, approver: &str, now: Timestamp) -> Result<(), RunError> {
        let r = self.expect_state(id, &[RunState::AwaitingApproval], "approve")?;
        let refusal = if approver.trim().is_empty() {
            Some(Refusal::NoApprover)
        } else if approver == r.requester {
            Some(Refusal::SelfApproval {
                user: approver.to_string(),
            })
        } else {
            None
        };
        if let Some(refusal) = refusal {
            let e = self.run_event(id, now, AuditKind::Refused);
            e.actor = Some(approver.to_string());
            e.outcome = Some(refusal.to_string());
            return Err(RunError::Refused(refusal));
        }
        let r = self.get_mut(id)?;
        r.state = RunState::Approved;
        r.approver = Some(approver.to_string());
        self.run_event(id, now, AuditKind::Approved).actor = Some(approver.to_string());
        Ok(())
    }

    /// Rejects a run that has not started.
    pub fn reject(
        &mut self,
        id: RunId,
        user: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), RunError> {
        self.expect_state(
            id,
            &[
                RunState::AwaitingApproval,
                RunState::Approved,
                RunState::Proposed,
            ],
            "reject",
        )?;
        self.finish(id, RunState::Rejected, Some(reason.to_string()), now);
        let e = self.audit.last_mut().expect("finish records an event");
        e.actor = Some(user.to_string());
        Ok(())
    }

    /// Starts an approved run. The circuit breaker, concurrency and blast
    /// radius are checked again (time has passed since the proposal); a
    /// refusal now rejects the run.
    pub fn start(&mut self, id: RunId, now: Timestamp) -> Result<(), RunError> {
        let r = self.expect_state(id, &[RunState::Approved], "start")?;
        let (name, target, g) = (r.runbook.clone(), r.target.clone(), r.guardrails.clone());
        let check = self
            .check_breaker(&name, &g, now, Some(id))
            .and_then(|_| self.check_in_flight(&name, &target, &g, Some(id)));
        if let Err(refusal) = check {
            self.finish(id, RunState::Rejected, Some(refusal.to_string()), now);
            return Err(RunError::Refused(refusal));
        }
        let r = self.get_mut(id)?;
        r.state = RunState::Running;
        r.started_at = Some(now);
        r.cursor = 0;
        self.run_event(id, now, AuditKind::Started);
        Ok(())
    }

    /// What to do next for the run.
    pub fn next(&self, id: RunId) -> Result<Next, RunError> {
        let r = self.runs.get(&id).ok_or(RunError::NotFound(id))?;
        Ok(match r.state {
            RunState::Proposed | RunState::AwaitingApproval => Next::AwaitApproval,
            RunState::Approved => Next::Start,
            RunState::Running | RunState::RollingBack => match r.phase_steps().get(r.cursor) {
                Some(s) => Next::Step(s.clone()),
                None => Next::Done(r.state), // unreachable: finishing the last step moves on
            },
            RunState::Verifying => Next::Verify {
                expr: r
                    .plan
                    .verify
                    .as_ref()
                    .map(|v| v.expr.clone())
                    .unwrap_or_default(),
                deadline: r.verify_deadline.unwrap_or(r.created_at),
            },
            s => Next::Done(s),
        })
    }

    /// Records that the next step starts now (the "before" audit event) and returns it.
    pub fn begin_step(&mut self, id: RunId, now: Timestamp) -> Result<PlannedStep, RunError> {
        let r = self.expect_state(
            id,
            &[RunState::Running, RunState::RollingBack],
            "begin a step",
        )?;
        if r.step_started_at.is_some() {
            return Err(RunError::InvalidTransition {
                id,
                state: r.state,
                action: "begin a step while one is running",
            });
        }
        let Some(step) = r.phase_steps().get(r.cursor).cloned() else {
            return Err(RunError::InvalidTransition {
                id,
                state: r.state,
                action: "begin a step after the last",
            });
        };
        self.get_mut(id)?.step_started_at = Some(now);
        step_fields(self.run_event(id, now, AuditKind::StepStarted), &step);
        Ok(step)
    }

    /// Records a step's result (the "after" audit event) and moves the run on.
    pub fn finish_step(
        &mut self,
        id: RunId,
        report: StepReport,
        now: Timestamp,
    ) -> Result<RunState, RunError> {
        let r = self.expect_state(
            id,
            &[RunState::Running, RunState::RollingBack],
            "finish a step",
        )?;
        let Some(started_at) = r.step_started_at else {
            return Err(RunError::InvalidTransition {
                id,
                state: r.state,
                action: "finish a step that was not begun",
            });
        };
        let step = r.phase_steps()[r.cursor].clone();
        let phase = r.phase();
        let ok = report.ok;
        let outcome = report.outcome.clone();
        let r = self.get_mut(id)?;
        r.step_started_at = None;
        r.cursor += 1;
        r.results.push(StepResult {
            name: step.name.clone(),
            phase,
            started_at,
            finished_at: now,
            report,
        });
        let more = r.cursor < r.phase_steps().len();
        let has_verify = r.plan.verify.clone();
        let e = step_fields(self.run_event(id, now, AuditKind::StepFinished), &step);
        e.outcome = Some(if ok {
            outcome.clone()
        } else {
            format!("failed: {outcome}")
        });
        match (phase, ok, more) {
            (_, true, true) => {}
            (Phase::Main, true, false) => match has_verify {
                Some(v) => {
                    let r = self.get_mut(id)?;
                    r.state = RunState::Verifying;
                    r.verify_deadline = Some(plus(now, v.within));
                    let e = self.run_event(id, now, AuditKind::VerifyStarted);
                    e.detail = Some(format!("{} within {}", v.expr, v.within));
                }
                None => self.finish(
                    id,
                    RunState::Verified,
                    Some("all steps succeeded (no verify condition)".into()),
                    now,
                ),
            },
            (Phase::Main, false, _) => {
                self.fail(id, format!("step {} failed: {outcome}", step.name), now)
            }
            (Phase::OnFailure, true, false) => self.finish(id, RunState::RolledBack, None, now),
            (Phase::OnFailure, false, _) => self.finish(
                id,
                RunState::Failed,
                Some(format!("on_failure step {} failed: {outcome}", step.name)),
                now,
            ),
        }
        Ok(self.runs[&id].state)
    }

    /// Reports one evaluation of the verify expression. Holding ends the run
    /// as verified; not holding at or after the deadline fails it (and runs
    /// `on_failure`); before the deadline the run keeps verifying.
    pub fn verify_result(
        &mut self,
        id: RunId,
        holds: bool,
        now: Timestamp,
    ) -> Result<RunState, RunError> {
        let r = self.expect_state(id, &[RunState::Verifying], "report verification")?;
        let deadline = r.verify_deadline.unwrap_or(now);
        if holds {
            self.finish(id, RunState::Verified, None, now);
        } else if now >= deadline {
            let within = r.plan.verify.as_ref().map(|v| v.within).unwrap_or_default();
            let e = self.run_event(id, now, AuditKind::VerifyFailed);
            e.outcome = Some(format!("condition did not hold within {within}"));
            self.fail(
                id,
                format!("verification did not hold within {within}"),
                now,
            );
        }
        Ok(self.runs[&id].state)
    }

    /// A main step or verification failed: run `on_failure` if there is any.
    fn fail(&mut self, id: RunId, reason: String, now: Timestamp) {
        let has_rollback = !self.runs[&id].plan.on_failure.is_empty();
        if has_rollback {
            let r = self.runs.get_mut(&id).expect("exists");
            r.state = RunState::Failed;
            r.reason = Some(reason.clone());
            self.run_event(id, now, AuditKind::Failed).outcome = Some(reason);
            let r = self.runs.get_mut(&id).expect("exists");
            r.state = RunState::RollingBack;
            r.cursor = 0;
            self.run_event(id, now, AuditKind::RollingBack);
        } else {
            self.finish(id, RunState::Failed, Some(reason), now);
        }
    }

    /// Moves a run to a terminal state, updates the circuit breaker, records the event.
    fn finish(&mut self, id: RunId, state: RunState, reason: Option<String>, now: Timestamp) {
        let r = self.runs.get_mut(&id).expect("exists");
        r.state = state;
        r.finished_at = Some(now);
        if reason.is_some() {
            r.reason = reason.clone();
        }
        let (name, failures_to_open, dry) = (
            r.runbook.clone(),
            r.guardrails.circuit_breaker.failures,
            r.dry_run,
        );
        if !dry {
            let b = self.breakers.entry(name).or_default();
            match state {
                RunState::Verified => *b = Breaker::default(),
                RunState::Failed | RunState::RolledBack => {
                    b.consecutive_failures += 1;
                    let was_trial = b.trial == Some(id);
                    if was_trial || b.consecutive_failures >= failures_to_open {
                        b.opened_at = Some(now);
                        b.trial = None;
                    }
                }
                RunState::Rejected if b.trial == Some(id) => b.trial = None,
                _ => {}
            }
        }
        let kind = match state {
            RunState::Verified => AuditKind::Verified,
            RunState::Failed => AuditKind::Failed,
            RunState::RolledBack => AuditKind::RolledBack,
            RunState::Rejected => AuditKind::Rejected,
            _ => AuditKind::DryRun,
        };
        self.run_event(id, now, kind).outcome = reason;
    }
}

fn step_fields<'a>(e: &'a mut AuditEvent, s: &PlannedStep) -> &'a mut AuditEvent {
    e.step = Some(s.name.clone());
    e.phase = Some(s.phase);
    match &s.action {
        plan::Action::Exec(c) | plan::Action::Ansible(c) => {
            e.argv = Some(c.argv.clone());
            if !c.env.is_empty() {
                // names only: values may be sensitive
                e.detail = Some(format!(
                    "env: {}",
                    c.env.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        _ => e.detail = Some(s.describe()),
    }
    e
}
