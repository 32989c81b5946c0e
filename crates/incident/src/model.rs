//! Incidents and their timeline.
//!
//! An [`Incident`] is changed only through its operations. Each operation validates the change,
//! applies it, appends a [`TimelineEntry`] and returns a copy of that entry: the entry is the
//! event a caller persists, broadcasts or renders. Nothing here reads the clock; every
//! operation takes the time it happened at.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::statuspage::ComponentStatus;

/// Incident severity, SEV1 (most severe) to SEV4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    #[serde(rename = "SEV1", alias = "sev1")]
    Sev1,
    #[serde(rename = "SEV2", alias = "sev2")]
    Sev2,
    #[serde(rename = "SEV3", alias = "sev3")]
    Sev3,
    #[serde(rename = "SEV4", alias = "sev4")]
    Sev4,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Sev1,
        Severity::Sev2,
        Severity::Sev3,
        Severity::Sev4,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Sev1 => "SEV1",
            Severity::Sev2 => "SEV2",
            Severity::Sev3 => "SEV3",
            Severity::Sev4 => "SEV4",
        }
    }

    /// The status an affected status-page component gets from an open incident of this
    /// severity, unless the incident overrides it.
    pub fn component_impact(self) -> ComponentStatus {
        match self {
            Severity::Sev1 => ComponentStatus::MajorOutage,
            Severity::Sev2 => ComponentStatus::PartialOutage,
            Severity::Sev3 | Severity::Sev4 => ComponentStatus::Degraded,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    /// Accepts `SEV1`, `sev1` and `1`.
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let digits = t
            .strip_prefix("SEV")
            .or_else(|| t.strip_prefix("sev"))
            .or_else(|| t.strip_prefix("Sev"))
            .unwrap_or(t);
        match digits {
            "1" => Ok(Severity::Sev1),
            "2" => Ok(Severity::Sev2),
            "3" => Ok(Severity::Sev3),
            "4" => Ok(Severity::Sev4),
            _ => Err(format!("unknown severity {s:?} (want SEV1..SEV4)")),
        }
    }
}

/// Incident status, in the order an incident usually moves through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Investigating,
    Identified,
    Monitoring,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Investigating => "investigating",
            Status::Identified => "identified",
            Status::Monitoring => "monitoring",
            Status::Resolved => "resolved",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role on an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Commander,
    CommunicationsLead,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Commander => "commander",
            Role::CommunicationsLead => "communications_lead",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Role::Commander => "Incident commander",
            Role::CommunicationsLead => "Communications lead",
        }
    }
}

/// Who holds the incident's roles (user ids).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roles {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commander: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communications_lead: Option<String>,
}

impl Roles {
    pub fn get(&self, role: Role) -> Option<&str> {
        match role {
            Role::Commander => self.commander.as_deref(),
            Role::CommunicationsLead => self.communications_lead.as_deref(),
        }
    }

    fn slot(&mut self, role: Role) -> &mut Option<String> {
        match role {
            Role::Commander => &mut self.commander,
            Role::CommunicationsLead => &mut self.communications_lead,
        }
    }
}

/// An alert linked to an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedAlert {
    /// The alert hub's fingerprint of the label set.
    pub fingerprint: String,
    pub labels: BTreeMap<String, String>,
}

impl LinkedAlert {
    pub fn alertname(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }
}

/// Who did something on the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// A person, by user id.
    User(String),
    /// day2 itself or one of its parts (`alerthub`, `remediate`, `ci`, ...).
    System(String),
}

impl Actor {
    pub fn user(id: impl Into<String>) -> Self {
        Actor::User(id.into())
    }
    pub fn system(name: impl Into<String>) -> Self {
        Actor::System(name.into())
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::User(u) => f.write_str(u),
            Actor::System(s) => write!(f, "{s} (system)"),
        }
    }
}

/// What a timeline entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    AlertFiring,
    AlertResolved,
    NotificationSent,
    Acknowledged,
    Note,
    StatusChange,
    SeverityChange,
    RoleChange,
    RemediationStep,
    Deployment,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::AlertFiring => "alert_firing",
            EntryKind::AlertResolved => "alert_resolved",
            EntryKind::NotificationSent => "notification_sent",
            EntryKind::Acknowledged => "acknowledged",
            EntryKind::Note => "note",
            EntryKind::StatusChange => "status_change",
            EntryKind::SeverityChange => "severity_change",
            EntryKind::RoleChange => "role_change",
            EntryKind::RemediationStep => "remediation_step",
            EntryKind::Deployment => "deployment",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event on an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Position in recording order, unique within the incident (starts at 1).
    pub seq: u64,
    /// When it happened (not when it was recorded).
    pub at: Timestamp,
    pub kind: EntryKind,
    pub actor: Actor,
    /// Human-readable one-liner.
    pub text: String,
    /// Structured details (`from`/`to` of a change, alert labels, step ids, ...).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub data: Map<String, Value>,
}

/// An update published on the public status page. Only these, never timeline text, leave
/// the incident for the public.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicUpdate {
    pub at: Timestamp,
    pub status: Status,
    pub body: String,
}

/// Why an operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncidentError {
    #[error("incident {id} is resolved; reopen it first")]
    Resolved { id: String },
    #[error("incident {id} is not resolved")]
    NotResolved { id: String },
    #[error("incident {id} is already acknowledged")]
    AlreadyAcknowledged { id: String },
    #[error("incident {id}: {what} is already {value}")]
    Unchanged {
        id: String,
        what: &'static str,
        value: String,
    },
    #[error("incident {id}: use reopen to leave the resolved status")]
    UseReopen { id: String },
    #[error("incident {id}: use resolve (set_status resolved) to resolve")]
    UseResolve { id: String },
    #[error("incident {id}: {at} is before the incident was opened ({created_at})")]
    BeforeOpen {
        id: String,
        at: Timestamp,
        created_at: Timestamp,
    },
    #[error("incident {id}: {what} must not be empty")]
    Empty { id: String, what: &'static str },
    #[error("incident {id}: alert {fingerprint} is already linked")]
    AlertAlreadyLinked { id: String, fingerprint: String },
    #[error("incident {id}: record() takes {kind}, which has its own operation")]
    UseOperation { id: String, kind: EntryKind },
}

/// An incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    /// Internal title (never shown on the status page; see `public_title`).
    pub title: String,
    pub severity: Severity,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Timestamp>,
    #[serde(default)]
    pub roles: Roles,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<LinkedAlert>,
    /// Ids of the status-page components this incident affects. Empty: not on the status page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
    /// Overrides the component status derived from the severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_impact: Option<ComponentStatus>,
    /// Title on the public status page; without one the page shows a generic title built from
    /// the component names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_title: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_updates: Vec<PublicUpdate>,
    /// In time order (`at`, then `seq`).
    #[serde(default)]
    pub timeline: Vec<TimelineEntry>,
}

fn data<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

impl Incident {
    /// Opens an incident (status `investigating`). The first timeline entry records the opening.
    pub fn open(
        id: impl Into<String>,
        title: impl Into<String>,
        severity: Severity,
        at: Timestamp,
        actor: Actor,
    ) -> Incident {
        let mut inc = Incident {
            id: id.into(),
            title: title.into(),
            severity,
            status: Status::Investigating,
            service: None,
            created_at: at,
            acknowledged_at: None,
            resolved_at: None,
            roles: Roles::default(),
            alerts: Vec::new(),
            components: Vec::new(),
            component_impact: None,
            public_title: None,
            public_updates: Vec::new(),
            timeline: Vec::new(),
        };
        let text = format!("Incident opened as {severity}: {}", inc.title);
        inc.push(
            at,
            EntryKind::StatusChange,
            actor,
            text,
            data([
                ("to", Value::from(Status::Investigating.as_str())),
                ("severity", Value::from(severity.as_str())),
                ("opened", Value::Bool(true)),
            ]),
        );
        inc
    }

    pub fn is_resolved(&self) -> bool {
        self.status == Status::Resolved
    }

    /// The entry with the given sequence number.
    pub fn entry(&self, seq: u64) -> Option<&TimelineEntry> {
        self.timeline.iter().find(|e| e.seq == seq)
    }

    /// Acknowledges the incident: someone has taken it on.
    pub fn acknowledge(
        &mut self,
        at: Timestamp,
        actor: Actor,
    ) -> Result<TimelineEntry, IncidentError> {
        self.check_open()?;
        self.check_time(at)?;
        if self.acknowledged_at.is_some() {
            return Err(IncidentError::AlreadyAcknowledged {
                id: self.id.clone(),
            });
        }
        Ok(self.ack_unchecked(at, actor))
    }

    fn ack_unchecked(&mut self, at: Timestamp, actor: Actor) -> TimelineEntry {
        self.acknowledged_at = Some(at);
        let text = format!("Acknowledged by {actor}");
        self.push(at, EntryKind::Acknowledged, actor, text, Map::new())
    }

    /// Changes the status. Resolving sets `resolved_at`. Leaving `resolved` needs
    /// [`Incident::reopen`]. Any status change by a person on an unacknowledged incident
    /// acknowledges it first (someone is evidently working on it).
    pub fn set_status(
        &mut self,
        status: Status,
        at: Timestamp,
        actor: Actor,
    ) -> Result<Vec<TimelineEntry>, IncidentError> {
        if self.is_resolved() {
            return Err(if status == Status::Resolved {
                IncidentError::Unchanged {
                    id: self.id.clone(),
                    what: "status",
                    value: status.to_string(),
                }
            } else {
                IncidentError::UseReopen {
                    id: self.id.clone(),
                }
            });
        }
        self.check_time(at)?;
        if status == self.status {
            return Err(IncidentError::Unchanged {
                id: self.id.clone(),
                what: "status",
                value: status.to_string(),
            });
        }
        let mut out = Vec::new();
        if self.acknowledged_at.is_none() && matches!(actor, Actor::User(_)) {
            out.push(self.ack_unchecked(at, actor.clone()));
        }
        let from = self.status;
        self.status = status;
        if status == Status::Resolved {
            self.resolved_at = Some(at);
        }
        let text = if status == Status::Resolved {
            "Resolved".to_string()
        } else {
            format!("Status changed from {from} to {status}")
        };
        out.push(self.push(
            at,
            EntryKind::StatusChange,
            actor,
            text,
            data([
                ("from", Value::from(from.as_str())),
                ("to", Value::from(status.as_str())),
            ]),
        ));
        Ok(out)
    }

    /// Shorthand for `set_status(Resolved, ..)`.
    pub fn resolve(
        &mut self,
        at: Timestamp,
        actor: Actor,
    ) -> Result<Vec<TimelineEntry>, IncidentError> {
        self.set_status(Status::Resolved, at, actor)
    }

    /// Reopens a resolved incident: back to `investigating`, `resolved_at` cleared (the
    /// earlier resolution stays on the timeline). `acknowledged_at` is kept.
    pub fn reopen(
        &mut self,
        reason: &str,
        at: Timestamp,
        actor: Actor,
    ) -> Result<TimelineEntry, IncidentError> {
        if !self.is_resolved() {
            return Err(IncidentError::NotResolved {
                id: self.id.clone(),
            });
        }
        self.check_time(at)?;
        self.status = Status::Investigating;
        let previous = self.resolved_at.take();
        let mut text = "Reopened".to_string();
        if !reason.trim().is_empty() {
            text.push_str(": ");
            text.push_str(reason.trim());
        }
        let mut d = data([
            ("from", Value::from(Status::Resolved.as_str())),
            ("to", Value::from(Status::Investigating.as_str())),
            ("reopened", Value::Bool(true)),
        ]);
        if let Some(p) = previous {
            d.insert("previously_resolved_at".into(), Value::from(p.to_string()));
        }
        Ok(self.push(at, EntryKind::StatusChange, actor, text, d))
    }

    /// Changes the severity. Allowed after resolution too (reclassification in review).
    pub fn set_severity(
        &mut self,
        severity: Severity,
        at: Timestamp,
        actor: Actor,
    ) -> Result<TimelineEntry, IncidentError> {
        self.check_time(at)?;
        if severity == self.severity {
            return Err(IncidentError::Unchanged {
                id: self.id.clone(),
                what: "severity",
                value: severity.to_string(),
            });
        }
        let from = self.severity;
        self.severity = severity;
        let text = format!("Severity changed from {from} to {severity}");
        Ok(self.push(
            at,
            EntryKind::SeverityChange,
            actor,
            text,
            data([
                ("from", Value::from(from.as_str())),
                ("to", Value::from(severity.as_str())),
            ]),
        ))
    }

    /// Assigns a role to a user, or clears it with `None`.
    pub fn assign_role(
        &mut self,
        role: Role,
        user: Option<&str>,
        at: Timestamp,
        actor: Actor,
    ) -> Result<TimelineEntry, IncidentError> {
        self.check_time(at)?;
        if user.is_some_and(|u| u.trim().is_empty()) {
            return Err(IncidentError::Empty {
                id: self.id.clone(),
                what: "user id",
            });
        }
        let id = self.id.clone();
        let slot = self.roles.slot(role);
        if slot.as_deref() == user {
            return Err(IncidentError::Unchanged {
                id,
                what: role.as_str(),
                value: user.unwrap_or("unassigned").to_string(),
            });
        }
        let from = slot.take();
        *slot = user.map(str::to_string);
        let text = match user {
            Some(u) => format!("{} is now {u}", role.title()),
            None => format!("{} unassigned", role.title()),
        };
        Ok(self.push(
            at,
            EntryKind::RoleChange,
            actor,
            text,
            data([
                ("role", Value::from(role.as_str())),
                ("from", from.map_or(Value::Null, Value::from)),
                ("to", user.map_or(Value::Null, Value::from)),
            ]),
        ))
    }

    /// Adds a note. Allowed after resolution.
    pub fn add_note(
        &mut self,
        text: &str,
        at: Timestamp,
        actor: Actor,
    ) -> Result<TimelineEntry, IncidentError> {
        if text.trim().is_empty() {
            return Err(IncidentError::Empty {
                id: self.id.clone(),
                what: "note",
            });
        }
        self.check_time(at)?;
        Ok(self.push(at, EntryKind::Note, actor, text.to_string(), Map::new()))
    }

    /// Links an alert and records it as firing at `at`. Linking an alert to a resolved
    /// incident is refused (the caller decides whether to reopen or open a new incident).
    pub fn link_alert(
        &mut self,
        alert: LinkedAlert,
        at: Timestamp,
        actor: Actor,
    ) -> Result<TimelineEntry, IncidentError> {
        self.check_open()?;
        if self
            .alerts
            .iter()
            .any(|a| a.fingerprint == alert.fingerprint)
        {
            return Err(IncidentError::AlertAlreadyLinked {
                id: self.id.clone(),
                fingerprint: alert.fingerprint,
            });
        }
        let entry = alert_entry(&alert, true);
        self.alerts.push(alert);
        Ok(self.push(at, EntryKind::AlertFiring, actor, entry.0, entry.1))
    }

    /// Records an alert of a linked (or any) alert resolving.
    pub fn alert_resolved(
        &mut self,
        alert: &LinkedAlert,
        at: Timestamp,
        actor: Actor,
    ) -> TimelineEntry {
        let (text, d) = alert_entry(alert, false);
        self.push(at, EntryKind::AlertResolved, actor, text, d)
    }

    /// Records something that happened elsewhere: a notification sent, a remediation step, a
    /// deployment, an alert change. Kinds with their own operation (acknowledged,
    /// status/severity/role change, note) are refused so that state and timeline never
    /// disagree. Entries may arrive late: they are placed by `at`, not by arrival.
    pub fn record(
        &mut self,
        kind: EntryKind,
        at: Timestamp,
        actor: Actor,
        text: impl Into<String>,
        data: Map<String, Value>,
    ) -> Result<TimelineEntry, IncidentError> {
        match kind {
            EntryKind::AlertFiring
            | EntryKind::AlertResolved
            | EntryKind::NotificationSent
            | EntryKind::RemediationStep
            | EntryKind::Deployment => Ok(self.push(at, kind, actor, text.into(), data)),
            _ => Err(IncidentError::UseOperation {
                id: self.id.clone(),
                kind,
            }),
        }
    }

    /// Sets the status-page components this incident affects (ids from the status page
    /// config). Recorded as a note.
    pub fn set_components(
        &mut self,
        components: Vec<String>,
        at: Timestamp,
        actor: Actor,
    ) -> Result<TimelineEntry, IncidentError> {
        self.check_time(at)?;
        let mut components = components;
        components.sort();
        components.dedup();
        let text = if components.is_empty() {
            "Removed from the status page".to_string()
        } else {
            format!("Affected components: {}", components.join(", "))
        };
        let d = data([(
            "components",
            Value::from(
                components
                    .iter()
                    .map(|c| Value::from(c.as_str()))
                    .collect::<Vec<_>>(),
            ),
        )]);
        self.components = components;
        Ok(self.push(at, EntryKind::Note, actor, text, d))
    }

    /// Publishes an update on the status page (with the incident's current status) and
    /// optionally sets the public title. Recorded on the timeline as a note.
    pub fn post_public_update(
        &mut self,
        public_title: Option<&str>,
        body: &str,
        at: Timestamp,
        actor: Actor,
    ) -> Result<TimelineEntry, IncidentError> {
        if body.trim().is_empty() {
            return Err(IncidentError::Empty {
                id: self.id.clone(),
                what: "public update",
            });
        }
        self.check_time(at)?;
        if let Some(t) = public_title.filter(|t| !t.trim().is_empty()) {
            self.public_title = Some(t.to_string());
        }
        self.public_updates.push(PublicUpdate {
            at,
            status: self.status,
            body: body.to_string(),
        });
        self.public_updates.sort_by_key(|u| u.at);
        let text = format!("Status page update ({}): {body}", self.status);
        let d = data([("public", Value::Bool(true))]);
        Ok(self.push(at, EntryKind::Note, actor, text, d))
    }

    fn check_open(&self) -> Result<(), IncidentError> {
        if self.is_resolved() {
            Err(IncidentError::Resolved {
                id: self.id.clone(),
            })
        } else {
            Ok(())
        }
    }

    fn check_time(&self, at: Timestamp) -> Result<(), IncidentError> {
        if at < self.created_at {
            Err(IncidentError::BeforeOpen {
                id: self.id.clone(),
                at,
                created_at: self.created_at,
            })
        } else {
            Ok(())
        }
    }

    /// Appends an entry keeping the timeline ordered by (`at`, `seq`); returns a copy.
    fn push(
        &mut self,
        at: Timestamp,
        kind: EntryKind,
        actor: Actor,
        text: String,
        data: Map<String, Value>,
    ) -> TimelineEntry {
        let seq = self.timeline.iter().map(|e| e.seq).max().unwrap_or(0) + 1;
        let entry = TimelineEntry {
            seq,
            at,
            kind,
            actor,
            text,
            data,
        };
        let pos = self.timeline.partition_point(|e| e.at <= at);
        self.timeline.insert(pos, entry.clone());
        entry
    }
}

fn alert_entry(alert: &LinkedAlert, firing: bool) -> (String, Map<String, Value>) {
    let name = alert.alertname();
    let name = if name.is_empty() { "alert" } else { name };
    let text = format!("{name} {}", if firing { "firing" } else { "resolved" });
    let labels: Map<String, Value> = alert
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    (
        text,
        data([
            ("fingerprint", Value::from(alert.fingerprint.as_str())),
            ("labels", Value::Object(labels)),
        ]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn inc() -> Incident {
        Incident::open(
            "inc-1",
            "API errors",
            Severity::Sev2,
            t("2026-01-01T10:00:00Z"),
            Actor::user("alice"),
        )
    }

    #[test]
    fn open_records_first_entry() {
        let i = inc();
        assert_eq!(i.status, Status::Investigating);
        assert_eq!(i.timeline.len(), 1);
        assert_eq!(i.timeline[0].kind, EntryKind::StatusChange);
        assert_eq!(i.timeline[0].seq, 1);
        assert_eq!(i.timeline[0].data["opened"], Value::Bool(true));
    }

    #[test]
    fn acknowledge_once() {
        let mut i = inc();
        let e = i
            .acknowledge(t("2026-01-01T10:05:00Z"), Actor::user("bob"))
            .unwrap();
        assert_eq!(e.kind, EntryKind::Acknowledged);
        assert_eq!(i.acknowledged_at, Some(t("2026-01-01T10:05:00Z")));
        assert!(matches!(
            i.acknowledge(t("2026-01-01T10:06:00Z"), Actor::user("bob")),
            Err(IncidentError::AlreadyAcknowledged { .. })
        ));
    }

    #[test]
    fn status_change_by_user_acknowledges_implicitly() {
        let mut i = inc();
        let es = i
            .set_status(
                Status::Identified,
                t("2026-01-01T10:07:00Z"),
                Actor::user("bob"),
            )
            .unwrap();
        assert_eq!(es.len(), 2);
        assert_eq!(es[0].kind, EntryKind::Acknowledged);
        assert_eq!(es[1].kind, EntryKind::StatusChange);
        assert_eq!(i.acknowledged_at, Some(t("2026-01-01T10:07:00Z")));
    }

    #[test]
    fn system_status_change_does_not_acknowledge() {
        let mut i = inc();
        i.set_status(
            Status::Resolved,
            t("2026-01-01T10:07:00Z"),
            Actor::system("alerthub"),
        )
        .unwrap();
        assert_eq!(i.acknowledged_at, None);
        assert_eq!(i.resolved_at, Some(t("2026-01-01T10:07:00Z")));
    }

    #[test]
    fn no_status_change_after_resolved_except_reopen() {
        let mut i = inc();
        i.resolve(t("2026-01-01T11:00:00Z"), Actor::user("bob"))
            .unwrap();
        assert!(matches!(
            i.set_status(
                Status::Monitoring,
                t("2026-01-01T11:01:00Z"),
                Actor::user("bob")
            ),
            Err(IncidentError::UseReopen { .. })
        ));
        assert!(matches!(
            i.resolve(t("2026-01-01T11:01:00Z"), Actor::user("bob")),
            Err(IncidentError::Unchanged { .. })
        ));
        assert!(matches!(
            i.acknowledge(t("2026-01-01T11:01:00Z"), Actor::user("bob")),
            Err(IncidentError::Resolved { .. })
        ));
        // Notes and severity reclassification stay possible.
        i.add_note(
            "review scheduled",
            t("2026-01-01T11:02:00Z"),
            Actor::user("bob"),
        )
        .unwrap();
        i.set_severity(
            Severity::Sev1,
            t("2026-01-01T11:03:00Z"),
            Actor::user("bob"),
        )
        .unwrap();
        let e = i
            .reopen(
                "errors are back",
                t("2026-01-01T12:00:00Z"),
                Actor::user("bob"),
            )
            .unwrap();
        assert_eq!(e.text, "Reopened: errors are back");
        assert_eq!(e.data["previously_resolved_at"], "2026-01-01T11:00:00Z");
        assert_eq!(i.status, Status::Investigating);
        assert_eq!(i.resolved_at, None);
        assert!(matches!(
            i.reopen("", t("2026-01-01T12:01:00Z"), Actor::user("bob")),
            Err(IncidentError::NotResolved { .. })
        ));
    }

    #[test]
    fn unchanged_and_before_open_are_refused() {
        let mut i = inc();
        assert!(matches!(
            i.set_status(
                Status::Investigating,
                t("2026-01-01T10:01:00Z"),
                Actor::user("a")
            ),
            Err(IncidentError::Unchanged { .. })
        ));
        assert!(matches!(
            i.set_severity(Severity::Sev2, t("2026-01-01T10:01:00Z"), Actor::user("a")),
            Err(IncidentError::Unchanged { .. })
        ));
        assert!(matches!(
            i.acknowledge(t("2026-01-01T09:59:59Z"), Actor::user("a")),
            Err(IncidentError::BeforeOpen { .. })
        ));
        assert!(matches!(
            i.add_note("  ", t("2026-01-01T10:01:00Z"), Actor::user("a")),
            Err(IncidentError::Empty { .. })
        ));
    }

    #[test]
    fn roles_assign_change_clear() {
        let mut i = inc();
        let at = t("2026-01-01T10:01:00Z");
        let e = i
            .assign_role(Role::Commander, Some("carol"), at, Actor::user("alice"))
            .unwrap();
        assert_eq!(e.text, "Incident commander is now carol");
        assert_eq!(e.data["from"], Value::Null);
        let e = i
            .assign_role(Role::Commander, Some("dave"), at, Actor::user("alice"))
            .unwrap();
        assert_eq!(e.data["from"], "carol");
        assert!(matches!(
            i.assign_role(Role::Commander, Some("dave"), at, Actor::user("alice")),
            Err(IncidentError::Unchanged { .. })
        ));
        i.assign_role(
            Role::CommunicationsLead,
            Some("erin"),
            at,
            Actor::user("alice"),
        )
        .unwrap();
        i.assign_role(Role::Commander, None, at, Actor::user("alice"))
            .unwrap();
        assert_eq!(i.roles.commander, None);
        assert_eq!(i.roles.get(Role::CommunicationsLead), Some("erin"));
    }

    #[test]
    fn late_entries_are_placed_by_time() {
        let mut i = inc();
        i.add_note("later", t("2026-01-01T10:10:00Z"), Actor::user("a"))
            .unwrap();
        i.record(
            EntryKind::NotificationSent,
            t("2026-01-01T10:00:30Z"),
            Actor::system("alerthub"),
            "paged bob",
            Map::new(),
        )
        .unwrap();
        let order: Vec<u64> = i.timeline.iter().map(|e| e.seq).collect();
        assert_eq!(order, vec![1, 3, 2]);
        assert!(matches!(
            i.record(
                EntryKind::StatusChange,
                t("2026-01-01T10:11:00Z"),
                Actor::user("a"),
                "x",
                Map::new()
            ),
            Err(IncidentError::UseOperation { .. })
        ));
    }

    #[test]
    fn link_alert_once() {
        let mut i = inc();
        let a = LinkedAlert {
            fingerprint: "abc".into(),
            labels: [("alertname".to_string(), "HighErrorRate".to_string())].into(),
        };
        let e = i
            .link_alert(
                a.clone(),
                t("2026-01-01T10:00:00Z"),
                Actor::system("alerthub"),
            )
            .unwrap();
        assert_eq!(e.text, "HighErrorRate firing");
        assert_eq!(e.data["labels"]["alertname"], "HighErrorRate");
        assert!(matches!(
            i.link_alert(a, t("2026-01-01T10:00:00Z"), Actor::system("alerthub")),
            Err(IncidentError::AlertAlreadyLinked { .. })
        ));
    }

    #[test]
    fn severity_parse_and_serde() {
        assert_eq!("sev1".parse::<Severity>().unwrap(), Severity::Sev1);
        assert_eq!("3".parse::<Severity>().unwrap(), Severity::Sev3);
        assert!("SEV5".parse::<Severity>().is_err());
        assert_eq!(serde_json::to_string(&Severity::Sev2).unwrap(), "\"SEV2\"");
        let s: Severity = serde_json::from_str("\"sev4\"").unwrap();
        assert_eq!(s, Severity::Sev4);
    }

    #[test]
    fn incident_roundtrips_through_json() {
        let mut i = inc();
        i.acknowledge(t("2026-01-01T10:05:00Z"), Actor::user("bob"))
            .unwrap();
        let j = serde_json::to_string(&i).unwrap();
        let back: Incident = serde_json::from_str(&j).unwrap();
        assert_eq!(back, i);
    }
}
