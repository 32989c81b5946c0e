//! Recording and alerting rules in Prometheus's rule-file format: loading and
//! checking files (`file`), evaluating groups over `day2_promql` and writing
//! the results back through `day2_model::Appender` (`group`), alert states
//! (`alerting`), Go-template labels and annotations (`template`), the periodic
//! evaluation loops and the JSON of `/api/v1/rules` and `/api/v1/alerts`
//! (`manager`), and promtool's unit-test format (`unittest`).
//!
//! Alerts leave through the [`AlertSink`] trait: this crate does not know
//! who receives them.

pub mod absence;
pub mod alerting;
pub mod config;
pub mod file;
pub mod group;
pub mod manager;
pub mod notation;
pub mod template;
pub mod unittest;

pub use alerting::{Alert, AlertState, AlertingRule};
pub use group::{EvalCtx, Group, Rule};
pub use manager::{AlertSink, ManagerOptions, Notification, RuleManager};

/// Why rules could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule file failed to parse or validate (`file:line: field: message`).
    #[error("{0}")]
    File(#[from] day2_yamlerr::LocatedError),
    /// A rule could not be built from a valid file.
    #[error("{file}: group {group:?}, rule {rule:?}: {message}")]
    Rule {
        file: String,
        group: String,
        rule: String,
        message: String,
    },
    /// A `rule_files` pattern is malformed.
    #[error("rule_files: bad pattern {pattern:?}: {message}")]
    Pattern { pattern: String, message: String },
}
