//! The core of incident management, without I/O or clock: incidents and their timeline
//! (`model`), automatic creation from alerts (`severity_map`), communication templates
//! (`comms`), the Markdown postmortem draft (`postmortem`), the public status page
//! (`statuspage`) and response-time metrics (`metrics`).
//!
//! Every type is serde-serializable so that the state store can persist it and the server
//! can return it; every operation takes the time it happened at as a `jiff::Timestamp`.
//! `config` is the `incidents:` section of `day2.yml`.
//!
//! The runtime inside `day2 serve` (`runtime`) builds on that core: incidents in the state
//! store, opened by hand or from alert-hub notifications (an internal sink), their timeline
//! fed by other features, communications rendered on status changes, the status page.

pub mod comms;
pub mod config;
pub mod metrics;
pub mod model;
pub mod postmortem;
pub mod runtime;
pub mod severity_map;
pub mod statuspage;

pub use comms::{Comms, CommsConfig, CommsError, CommsEvent, MessageFormat, RenderedMessage};
pub use config::{IncidentReceiver, Incidents, IncidentsConfig};
pub use metrics::{
    ResponseStats, human_duration, mtta, mttr, response_stats, time_to_acknowledge, time_to_resolve,
};
pub use model::{
    Actor, EntryKind, Incident, IncidentError, LinkedAlert, PublicUpdate, Role, Roles, Severity,
    Status, TimelineEntry,
};
pub use postmortem::draft_postmortem;
pub use severity_map::{AlertInput, LabelMatcher, SeverityMap, SeverityRule};
pub use statuspage::{
    CONTENT_SECURITY_POLICY, ComponentStatus, Maintenance, StatusPageConfig, StatusSummary,
};
