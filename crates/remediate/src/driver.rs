//! Walks a run through its steps: executes each step with the executors,
//! evaluates the verify condition until it holds or the deadline passes, and
//! runs `on_failure` steps. The state machine ([`Runs`]) decides; this only
//! performs what it asks for.
//!
//! Every transition goes through a [`Ledger`]: the plain [`Runs`] in tests,
//! the runtime's journaled state in `day2 serve` (which writes the audit
//! events of a transition to the audit log before the driver goes on, so a
//! step is on record before it runs and after it ran).

use crate::exec::{self, ExecPolicy};
use crate::http::HttpExecutor;
use crate::kubernetes::KubeExecutor;
use crate::plan::{Action, PlannedStep};
use crate::run::{Next, RunError, RunId, RunState, Runs, StepReport};
use jiff::Timestamp;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A boxed future (the traits below are used as trait objects).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Evaluates a verify expression (PromQL) at a time: does it return a non-empty result?
pub trait Verifier: Send + Sync {
    fn holds<'a>(&'a self, expr: &'a str, at: Timestamp) -> BoxFuture<'a, Result<bool, String>>;
}

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Where the driver applies transitions. `Err` means the transition could not
/// be recorded: the driver stops before doing anything else.
pub trait Ledger {
    fn apply<R>(&mut self, f: impl FnOnce(&mut Runs) -> R) -> Result<R, String>;
}

impl Ledger for Runs {
    fn apply<R>(&mut self, f: impl FnOnce(&mut Runs) -> R) -> Result<R, String> {
        Ok(f(self))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriveError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("recording the run failed: {0}")]
    Ledger(String),
}

/// The run a step belongs to, as an escalation sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunContext {
    pub run: RunId,
    pub runbook: String,
    pub target: String,
    /// Fingerprints of the alerts that asked for the run.
    pub alerts: Vec<String>,
}

/// What an `escalate` step asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EscalateRequest {
    /// The step's name and phase: with the run id, they identify the
    /// escalation (a repeated call must not page twice).
    pub step: String,
    pub phase: Option<crate::plan::Phase>,
    pub message: String,
    /// An escalation policy to run.
    pub policy: Option<String>,
    /// One user to page.
    pub user: Option<String>,
}

/// Where `escalate` steps hand a run to (on-call, incidents). Returns a short
/// outcome (`paged oncall-primary`).
pub trait Escalation: Send + Sync {
    fn escalate<'a>(
        &'a self,
        run: &'a RunContext,
        request: &'a EscalateRequest,
    ) -> BoxFuture<'a, Result<String, String>>;
}

/// The executors a runtime offers. Kubernetes and escalate steps fail when
/// nothing is configured for them.
#[derive(Clone, Default)]
pub struct Executors {
    pub exec: ExecPolicy,
    pub http: HttpExecutor,
    pub kube: Option<KubeExecutor>,
    pub escalation: Option<std::sync::Arc<dyn Escalation>>,
}

impl From<ExecPolicy> for Executors {
    fn from(exec: ExecPolicy) -> Self {
        Executors {
            exec,
            ..Default::default()
        }
    }
}

impl Executors {
    /// Executes one planned step of a run.
    pub async fn execute(
        &self,
        step: &PlannedStep,
        run: &RunContext,
        now: Timestamp,
    ) -> StepReport {
        match &step.action {
            Action::Exec(c) | Action::Ansible(c) => {
                match exec::run_action(&step.action, &self.exec).await {
                    Some(o) => StepReport::from_exec(o, c.timeout.0),
                    None => StepReport::failed("executor did not run"),
                }
            }
            Action::Http(req) => self.http.execute(req).await,
            Action::Kubernetes(k) => match &self.kube {
                Some(kube) => kube.execute(k, now).await,
                None => StepReport::failed(
                    "no Kubernetes cluster is configured (remediation.kubernetes in day2.yml)",
                ),
            },
            Action::Escalate {
                message,
                policy,
                user,
            } => match &self.escalation {
                Some(e) => match e
                    .escalate(
                        run,
                        &EscalateRequest {
                            step: step.name.clone(),
                            phase: Some(step.phase),
                            message: message.clone(),
                            policy: policy.clone(),
                            user: user.clone(),
                        },
                    )
                    .await
                {
                    Ok(outcome) => StepReport::ok(outcome),
                    Err(err) => StepReport::failed(err),
                },
                None => StepReport::failed("no escalation is wired in this day2"),
            },
        }
    }
}

fn apply<L: Ledger, T>(
    ledger: &mut L,
    f: impl FnOnce(&mut Runs) -> Result<T, RunError>,
) -> Result<T, DriveError> {
    ledger
        .apply(f)
        .map_err(DriveError::Ledger)?
        .map_err(DriveError::Run)
}

/// Drives run `id` until it is terminal or waits for approval; returns its state.
/// The verify condition is evaluated every `verify_interval` until its deadline.
pub async fn drive<L: Ledger>(
    ledger: &mut L,
    id: RunId,
    executors: &Executors,
    verifier: &dyn Verifier,
    clock: &dyn Clock,
    verify_interval: Duration,
) -> Result<RunState, DriveError> {
    let ctx = apply(ledger, |r| {
        let run = r.get(id).ok_or(RunError::NotFound(id))?;
        Ok(RunContext {
            run: id,
            runbook: run.runbook.clone(),
            target: run.target.to_string(),
            alerts: run.alerts.clone(),
        })
    })?;
    loop {
        match apply(ledger, |r| r.next(id))? {
            Next::AwaitApproval => {
                return apply(ledger, |r| {
                    Ok(r.get(id).map(|r| r.state).unwrap_or(RunState::Proposed))
                });
            }
            Next::Done(s) => return Ok(s),
            Next::Start => {
                let now = clock.now();
                apply(ledger, |r| r.start(id, now))?;
            }
            Next::Step(_) => {
                let now = clock.now();
                let planned = apply(ledger, |r| r.begin_step(id, now))?;
                let report = executors.execute(&planned, &ctx, clock.now()).await;
                let now = clock.now();
                apply(ledger, |r| r.finish_step(id, report, now))?;
            }
            Next::Verify { expr, deadline } => {
                let now = clock.now();
                // An evaluation error counts as "does not hold".
                let holds = match verifier.holds(&expr, now).await {
                    Ok(h) => h,
                    Err(e) => {
                        tracing::warn!(run = id, error = %e, "verify expression failed to evaluate");
                        false
                    }
                };
                let state = apply(ledger, |r| r.verify_result(id, holds, now))?;
                if state == RunState::Verifying {
                    let left = deadline
                        .as_millisecond()
                        .saturating_sub(clock.now().as_millisecond());
                    let wait = verify_interval.min(Duration::from_millis(left.max(1) as u64));
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}
