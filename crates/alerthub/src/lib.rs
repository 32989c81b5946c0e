//! The alert hub's pure core (Alertmanager semantics), with no I/O and no
//! async: the HTTP API, the state store and the notifiers build on it.
//!
//! - [`config`]: an unchanged `alertmanager.yml`, validated as Alertmanager
//!   does, compiled into a [`config::HubConfig`] (route tree, inhibitor,
//!   time intervals).
//! - [`matchers`]: Alertmanager's matcher syntax into `day2_model::Matcher`s.
//! - [`route`]: which routes a label set goes to, with inherited settings.
//! - [`group`]: group labels and group keys.
//! - [`inhibit`]: whether firing alerts inhibit an alert, and by which rule.
//! - [`silence`]: silences and recurring maintenance windows.
//! - [`timeinterval`]: "is t inside interval X", in the interval's time zone.
//! - [`alert`]: the alert type, its status and fingerprint.
//!
//! Time is always passed in (`jiff::Timestamp`); nothing here reads a clock.

pub mod alert;
pub mod config;
pub mod group;
pub mod inhibit;
pub mod matchers;
pub mod route;
pub mod silence;
pub mod timeinterval;

pub use alert::{Alert, AlertStatus, Fingerprint, fingerprint};
pub use config::{ConfigError, HubConfig, load_str};
pub use group::{GroupKey, group_labels};
pub use inhibit::{Inhibition, Inhibitor};
pub use matchers::{Matchers, parse_matcher, parse_matchers};
pub use route::{GroupBy, Route, RouteMute, RouteOpts};
pub use silence::{MaintenanceWindow, Silence, SilenceState, in_maintenance, silenced_by};
pub use timeinterval::{TimeInterval, TimeIntervals};
