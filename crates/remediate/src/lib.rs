//! Remediation core: runbooks bound to alerts, typed parameters checked against
//! allowlist patterns, executors that run argv without a shell, guardrails, and
//! the run state machine that produces the audit trail.
//!
//! Layout:
//! - [`runbook`]: the YAML types (`remediation:` in day2.yml or runbook files),
//!   validation with `file:line: field: message` errors, matching alerts.
//! - [`template`]: `{{ param.NAME }}` placeholders (the only ones allowed).
//! - [`params`]: binding alert labels to declared parameters.
//! - [`plan`]: rendering a runbook with bound parameters into concrete steps
//!   (argv lists, env maps, ansible command lines, PromQL).
//! - [`exec`]: running a planned command: execve, cleared environment, own
//!   process group, timeout, capped output.
//! - [`http`]: one HTTP request to an egress-allowed host, secrets by reference.
//! - [`kubernetes`]: scale, rollout restart and rollout undo through the API server.
//! - [`verify`]: `verify.expr` evaluated with the PromQL engine over a `Queryable`.
//! - [`run`]: guardrails and the run state machine (pure; the clock is passed in).
//! - [`driver`]: the async loop that walks a run through its steps with the
//!   executors and a [`driver::Verifier`].
//! - [`runtime`]: the shared state machine, drivers, proposals from alert
//!   notifications, every transition written through a [`runtime::Journal`]
//!   and handed to a [`runtime::TimelineSink`].
//!
//! No database and no HTTP server here: the binary implements the journal
//! over the state store and serves the API; every persisted or served type
//! implements serde.

pub mod driver;
pub mod duration;
pub mod exec;
pub mod http;
pub mod kubernetes;
pub mod matchers;
pub mod params;
pub mod plan;
pub mod run;
pub mod runbook;
pub mod runtime;
pub mod template;
pub mod verify;

pub use duration::Dur;
pub use exec::{ExecOutcome, ExecPolicy, ExitKind};
pub use params::{Bound, ParamError, ParamValue};
pub use plan::{Action, Command, HttpRequest, KubeRequest, Phase, PlannedStep, PlannedVerify};
pub use run::{
    AuditEvent, AuditKind, Next, Proposal, Refusal, Run, RunError, RunId, RunState, Runs,
    StepReport, Target,
};
pub use runbook::{LoadedRunbook, RemediationConfig, Runbook, RunbookSet};
