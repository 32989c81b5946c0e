//! The pure core of on-call: who is on call when, and whom to page when.
//!
//! - [`config`]: the `oncall:` section of `day2.yml` (users and their contact methods,
//!   schedules, escalation policies) as serde types, and its validation into an
//!   [`OnCall`] model; errors name the field path (`schedules[0].layers[1].users[2]`).
//! - [`schedule`]: the final, rendered schedule. Rotations are computed on the wall
//!   clock of the schedule's IANA time zone, so a 09:00 handoff stays at 09:00 across
//!   DST changes (the shift over the change is 23h or 25h long). Layers are ordered
//!   bottom to top: the topmost layer that applies at an instant wins; restrictions
//!   leave gaps that lower layers fill; overrides win over every layer (a later
//!   override wins over an earlier one where they overlap).
//! - [`escalation`]: the notification plan of a policy as a pure function of
//!   (policy, triggered_at, acked_at, now), so a runtime can sleep until
//!   [`escalation::next_due`] and recompute everything after a restart from the
//!   stored trigger and acknowledgement times.
//! - [`who`]: per schedule, who is on call at an instant, since and until when
//!   (for `day2 oncall who --at TIME`).
//!
//! - [`acklink`]: signed, expiring acknowledgement links (HMAC-SHA256).
//! - [`page`]: what a page says and its body per contact method.
//! - [`looptest`]: loop tests (`day2 test loop`): receivers, inhibitions, who is
//!   on call and when escalation steps fire, for alerts at given times.
//!
//! These modules do no I/O, have no async and read no clock: every instant is
//! passed in as a [`jiff::Timestamp`]. Secrets (webhook URLs, tokens) are only
//! references (`env:NAME`, `file:/path`) there.
//!
//! The runtime inside `day2 serve` builds on them:
//!
//! - [`runtime`]: [`runtime::OnCallRuntime`], the alert hub's internal sink for
//!   paging receivers; escalations in the state store, steps fired from the
//!   pure plan (restart-safe), acknowledgements, the page outbox loop.
//! - [`pager`]: one page attempt through the alert hub's delivery code (egress
//!   allowlist, retries) or SMTP client; secrets read at send time.

pub mod acklink;
pub mod config;
pub mod escalation;
pub mod looptest;
pub mod page;
pub mod pager;
pub mod parse;
pub mod runtime;
pub mod schedule;
pub mod who;

pub use config::{ContactMethod, OnCall, OnCallConfig, SecretRef, User};
pub use escalation::{DueStep, EscalationPolicy, PlannedStep, Step, Target};
pub use schedule::{Layer, LayerRef, Override, Restriction, Rotation, Schedule, Shift};
pub use who::OnCallAt;

use serde::{Deserialize, Serialize};

/// A user's id as written in the config (`alice`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub String);

impl UserId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for UserId {
    fn from(s: &str) -> Self {
        UserId(s.to_string())
    }
}

impl From<String> for UserId {
    fn from(s: String) -> Self {
        UserId(s)
    }
}

/// Lookup errors of the model (config errors are [`config::ConfigError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("unknown schedule {0:?}")]
    UnknownSchedule(String),
    #[error("unknown escalation policy {0:?}")]
    UnknownPolicy(String),
    #[error("invalid time {0:?}: {1}")]
    BadTime(String, String),
}
