//! Walks a run through its steps: executes each step with the executors,
//! evaluates the verify condition until it holds or the deadline passes, and
//! runs `on_failure` steps. The state machine ([`Runs`]) decides; this only
//! performs what it asks for.

use crate::exec::{self, ExecPolicy};
use crate::plan::{Action, PlannedStep};
use crate::run::{Next, RunError, RunId, RunState, Runs, StepReport};
use jiff::Timestamp;
use std::future::Future;
use std::time::Duration;

/// Evaluates a verify expression (PromQL) at a time: does it return a non-empty result?
pub trait Verifier {
    fn holds(&self, expr: &str, at: Timestamp)
    -> impl Future<Output = Result<bool, String>> + Send;
}

pub trait Clock {
    fn now(&self) -> Timestamp;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Executes one planned step. Executors not built yet (http, kubernetes) fail the step.
pub async fn execute(step: &PlannedStep, policy: &ExecPolicy) -> StepReport {
    match &step.action {
        Action::Exec(c) | Action::Ansible(c) => {
            match exec::run_action(&step.action, policy).await {
                Some(o) => StepReport::from_exec(o, c.timeout.0),
                None => StepReport::failed("executor did not run"),
            }
        }
        Action::Http { .. } => StepReport::failed("the http executor is not implemented yet"),
        Action::Kubernetes { .. } => {
            StepReport::failed("the kubernetes executor is not implemented yet")
        }
    }
}

/// Drives run `id` until it is terminal or waits for approval; returns its state.
/// The verify condition is evaluated every `verify_interval` until its deadline.
pub async fn drive<V: Verifier, C: Clock>(
    runs: &mut Runs,
    id: RunId,
    policy: &ExecPolicy,
    verifier: &V,
    clock: &C,
    verify_interval: Duration,
) -> Result<RunState, RunError> {
    loop {
        match runs.next(id)? {
            Next::AwaitApproval => {
                return Ok(runs.get(id).map(|r| r.state).unwrap_or(RunState::Proposed));
            }
            Next::Done(s) => return Ok(s),
            Next::Start => runs.start(id, clock.now())?,
            Next::Step(_) => {
                let step = runs.begin_step(id, clock.now())?;
                let report = execute(&step, policy).await;
                runs.finish_step(id, report, clock.now())?;
            }
            Next::Verify { expr, deadline } => {
                let now = clock.now();
                // An evaluation error counts as "does not hold".
                let holds = verifier.holds(&expr, now).await.unwrap_or(false);
                let state = runs.verify_result(id, holds, now)?;
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
