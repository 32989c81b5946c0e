//! Deployments: events from CI, post-deploy analysis against the pre-deploy
//! baseline, the rollback a failing enforced analysis asks for, alert
//! annotations, and the DORA metrics.
//!
//! Layout:
//! - [`config`]: the `deployments:` section of day2.yml (validation with
//!   field paths; `{{ service }}` placeholders rendered escaped).
//! - [`model`]: deployment events, status marks and their validation.
//! - [`analysis`]: verdicts of PromQL checks over the post-deploy window
//!   versus the baseline window (pure; reads through `Queryable`).
//! - [`dora`]: deployment frequency, lead time, change failure rate and time
//!   to restore as a pure function of a list of events.
//! - [`service`]: the runtime over the state store: records deployments,
//!   runs due analyses (at most once, also after a restart), triggers
//!   rollbacks through [`service::RollbackTrigger`] and records how their
//!   runs ended (a verified run marks the deployment `rolled_back`),
//!   annotates alerts, renders `/metrics`.
//!
//! Only `service` does I/O (the state store); everything takes the time
//! as an argument.

pub mod analysis;
pub mod config;
pub mod dora;
pub mod model;
pub mod service;

pub use analysis::{AnalysisResult, AnalysisSpec, Verdict};
pub use config::DeploymentsSection;
pub use model::{Deployment, NewDeployment, Status, StatusChange};
pub use service::{
    Deployments, Error, NoRemediation, Outage, OutageSource, Recorded, RollbackTrigger, RunEnd,
};
