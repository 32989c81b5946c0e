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
//!
//! The runtime, built on the core (tokio, the state store, outbound HTTP):
//!
//! - [`dispatch`]: aggregation groups and their group_wait / group_interval /
//!   repeat_interval timers; a flush writes the notification to the outbox
//!   together with the notification log (no clock read: `now` is passed in).
//! - [`hub`]: [`Hub`], the running hub (ingest, silences, the dispatcher
//!   loop, the delivery worker, metrics); restart-safe through `day2-store`.
//! - [`delivery`]: one HTTP attempt, its classification, retry backoff.
//! - [`email`]: email over SMTP (`lettre`): the stored message, one
//!   attempt, SMTP reply classification.
//! - [`egress`]: the outbound allowlist (no loopback, private or link-local
//!   targets unless allowed; DNS resolved and pinned by us).
//! - [`notify`]: notification payloads (Alertmanager's webhook JSON).
//! - [`render`]: notification templates (defaults + `templates:` files) and
//!   the Slack and Microsoft Teams payloads.
//! - [`apiv2`]: Alertmanager API v2 request and response shapes.
//! - [`internal`]: receivers handled by day2 features (on-call, incidents,
//!   remediation) through the outbox, and the hub's delivery events.

pub mod alert;
pub mod apiv2;
pub mod config;
pub mod delivery;
pub mod dispatch;
pub mod egress;
pub mod email;
pub mod group;
pub mod hub;
pub mod inhibit;
pub mod internal;
pub mod matchers;
pub mod notify;
pub mod render;
pub mod route;
pub mod silence;
pub mod timeinterval;

pub use alert::{Alert, AlertStatus, Fingerprint, fingerprint};
pub use config::{ConfigError, HubConfig, load_str};
pub use egress::EgressPolicy;
pub use group::{GroupKey, group_labels};
pub use hub::{AlertEnricher, Hub, HubError, HubSettings};
pub use inhibit::{Inhibition, Inhibitor};
pub use internal::{HubEvent, InternalNotification, InternalSink, SinkError, WebhookMessage};
pub use matchers::{Matchers, parse_matcher, parse_matchers};
pub use route::{GroupBy, Route, RouteMute, RouteOpts};
pub use silence::{MaintenanceWindow, Silence, SilenceState, in_maintenance, silenced_by};
pub use timeinterval::{TimeInterval, TimeIntervals};
