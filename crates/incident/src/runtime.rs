//! Incidents inside `day2 serve`: stored in the state store, opened by hand
//! (API) or automatically from alert-hub notifications, with a timeline
//! recorded as things happen.
//!
//! - [`IncidentRuntime`] is an [`InternalSink`]: for a receiver listed in
//!   `incidents.receivers`, a firing alert matched by the receiver's severity
//!   map opens an incident (one per alert group: later alerts of the group are
//!   linked to it, and raise its severity if they map higher); alert
//!   resolutions are recorded; with `resolve_with_alerts` the incident resolves
//!   when all its alerts have. A notification is applied once (its outbox id
//!   is stored with the change).
//! - Other features report what they do through [`IncidentRuntime::record_for_alerts`]
//!   (notifications sent, pages, remediation steps) and
//!   [`IncidentRuntime::acknowledge_for_alerts`]; each entry carries a `key`
//!   in its data so a repeated report is recorded once. When an incident links
//!   an alert, the alert's earlier history (pages, acknowledgements) is
//!   imported from an [`AlertHistory`].
//! - Communication templates of the incident's severity are rendered when it
//!   opens, changes status and resolves: `status_page` messages become public
//!   updates, others go to the `notify` users through a [`CommsOutlet`].
//!
//! Every change is one read-modify-write of the incident document under one
//! lock; time comes from a [`Clock`].

use std::collections::BTreeMap;
use std::sync::Arc;

use day2_alerthub::hub::Clock;
use day2_alerthub::internal::{InternalNotification, InternalSink, NotifiedAlert, SinkError};
use day2_store::Store;
use day2_store::incident::{IncidentRow, IncidentWrite};
use jiff::{SignedDuration, Timestamp};
use parking_lot::{Mutex, RwLock};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::comms::{CommsEvent, RenderedMessage};
use crate::config::{Incidents, STATUS_PAGE_CHANNEL};
use crate::model::{
    Actor, EntryKind, Incident, IncidentError, LinkedAlert, Role, Severity, Status, TimelineEntry,
};
use crate::severity_map::AlertInput;
use crate::statuspage::{Maintenance, StatusSummary};

/// Errors of runtime operations, shaped for the API.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Refused(#[from] IncidentError),
    #[error("state store: {0}")]
    Store(#[from] day2_store::Error),
}

/// Something that happened elsewhere, for the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalEntry {
    /// `Acknowledged` acknowledges the incident; other kinds are recorded.
    pub kind: EntryKind,
    pub at: Timestamp,
    pub actor: Actor,
    pub text: String,
    /// Holds a `key` unique to the event (entries with a known key are skipped).
    pub data: Map<String, Value>,
}

impl ExternalEntry {
    /// An entry whose data is only its idempotency key.
    pub fn keyed(kind: EntryKind, at: Timestamp, actor: Actor, text: &str, key: &str) -> Self {
        let mut data = Map::new();
        data.insert("key".into(), Value::from(key));
        ExternalEntry {
            kind,
            at,
            actor,
            text: text.to_string(),
            data,
        }
    }
}

/// The past of an alert before an incident linked it (on-call pages and acks).
pub trait AlertHistory: Send + Sync {
    fn history(&self, fingerprint: &str) -> Vec<ExternalEntry>;
}

/// Sends a rendered communication to its `notify` users over its channel;
/// returns the users that could not be reached.
pub trait CommsOutlet: Send + Sync {
    fn send(&self, incident: &Incident, message: &RenderedMessage) -> Result<Vec<String>, String>;
}

/// Told of every incident written (opened, changed, resolved), after the
/// store has it; called with the runtime's lock held, so it must be quick
/// (e.g. wake a task).
pub trait IncidentListener: Send + Sync {
    fn written(&self, incident: &Incident);
}

/// Settings of the runtime beside the validated section.
#[derive(Debug, Clone, Default)]
pub struct IncidentSettings {
    pub incidents: Incidents,
    /// day2's base URL as people reach it (links in templates).
    pub base_url: String,
}

/// An incident opened by hand.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewIncident {
    pub title: String,
    pub severity: Severity,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub components: Vec<String>,
    #[serde(default)]
    pub commander: Option<String>,
    #[serde(default)]
    pub communications_lead: Option<String>,
    #[serde(default)]
    pub public_title: Option<String>,
    /// Alerts to link (by fingerprint, labels looked up by the caller).
    #[serde(default)]
    pub alerts: Vec<LinkedAlert>,
}

/// A change to an incident (`POST /api/day2/v1/incidents/{id}/{action}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Status update; `message` reaches the communication templates.
    Status {
        status: Status,
        #[serde(default)]
        message: Option<String>,
    },
    Severity {
        severity: Severity,
    },
    /// Assign (or clear, with no user) commander or communications lead.
    Role {
        role: Role,
        #[serde(default)]
        user: Option<String>,
    },
    Note {
        text: String,
    },
    Acknowledge {},
    Reopen {
        #[serde(default)]
        reason: String,
    },
    LinkAlert {
        fingerprint: String,
        #[serde(default)]
        labels: BTreeMap<String, String>,
    },
    PublicUpdate {
        #[serde(default)]
        title: Option<String>,
        body: String,
    },
    Components {
        components: Vec<String>,
    },
    /// A remediation step (for tools outside day2; day2's own runbooks
    /// report through [`IncidentRuntime::record_for_alerts`]).
    Remediation {
        text: String,
    },
}

impl Action {
    /// Reads an action from its name and JSON body.
    pub fn parse(action: &str, body: &Value) -> Result<Action, RuntimeError> {
        let mut b = match body {
            Value::Object(o) => o.clone(),
            Value::Null => Map::new(),
            _ => {
                return Err(RuntimeError::BadRequest(
                    "body must be a JSON object".into(),
                ));
            }
        };
        b.insert("action".into(), Value::from(action.replace('-', "_")));
        serde_json::from_value(Value::Object(b))
            .map_err(|e| RuntimeError::BadRequest(format!("{action}: {e}")))
    }
}

/// The running incidents feature.
pub struct IncidentRuntime {
    store: Arc<Store>,
    clock: Clock,
    settings: RwLock<Arc<IncidentSettings>>,
    lock: Mutex<()>,
    history: RwLock<Option<Arc<dyn AlertHistory>>>,
    outlet: RwLock<Option<Arc<dyn CommsOutlet>>>,
    listener: RwLock<Option<Arc<dyn IncidentListener>>>,
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn key_of(data: &Map<String, Value>) -> Option<&str> {
    data.get("key").and_then(Value::as_str)
}

fn has_key(inc: &Incident, key: &str) -> bool {
    inc.timeline.iter().any(|e| key_of(&e.data) == Some(key))
}

/// Whether the alert's last recorded state on the incident is firing.
fn alert_firing(inc: &Incident, fingerprint: &str) -> bool {
    inc.timeline
        .iter()
        .rev()
        .find(|e| {
            matches!(e.kind, EntryKind::AlertFiring | EntryKind::AlertResolved)
                && e.data.get("fingerprint").and_then(Value::as_str) == Some(fingerprint)
        })
        .is_some_and(|e| e.kind == EntryKind::AlertFiring)
}

fn row_of(inc: &Incident, number: i64) -> IncidentRow {
    IncidentRow {
        id: inc.id.clone(),
        number,
        status: inc.status.as_str().to_string(),
        created_at: ms(inc.created_at),
        resolved_at: inc.resolved_at.map(ms),
        doc: serde_json::to_string(inc).expect("incidents serialize"),
    }
}

fn number_of(id: &str) -> i64 {
    id.strip_prefix("INC-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn parse_row(r: &IncidentRow) -> Result<Incident, RuntimeError> {
    serde_json::from_str(&r.doc).map_err(|e| {
        RuntimeError::BadRequest(format!("stored incident {} is unreadable: {e}", r.id))
    })
}

/// An incident being changed, with what the change needs to write and send.
struct Work {
    inc: Incident,
    group: Option<(String, String)>,
    /// Communication events to render, with their message.
    comms: Vec<(CommsEvent, Option<String>)>,
}

impl Work {
    fn new(inc: Incident) -> Work {
        Work {
            inc,
            group: None,
            comms: Vec::new(),
        }
    }
}

impl IncidentRuntime {
    pub fn new(
        store: Arc<Store>,
        settings: IncidentSettings,
        clock: Clock,
    ) -> Arc<IncidentRuntime> {
        Arc::new(IncidentRuntime {
            store,
            clock,
            settings: RwLock::new(Arc::new(settings)),
            lock: Mutex::new(()),
            history: RwLock::new(None),
            outlet: RwLock::new(None),
            listener: RwLock::new(None),
        })
    }

    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    pub fn apply(&self, settings: IncidentSettings) {
        *self.settings.write() = Arc::new(settings);
    }

    pub fn settings(&self) -> Arc<IncidentSettings> {
        self.settings.read().clone()
    }

    pub fn set_history(&self, h: Arc<dyn AlertHistory>) {
        *self.history.write() = Some(h);
    }

    pub fn set_outlet(&self, o: Arc<dyn CommsOutlet>) {
        *self.outlet.write() = Some(o);
    }

    pub fn set_listener(&self, l: Arc<dyn IncidentListener>) {
        *self.listener.write() = Some(l);
    }

    fn load(&self, id: &str) -> Result<Incident, RuntimeError> {
        let row = self
            .store
            .incident_get(id)?
            .ok_or_else(|| RuntimeError::NotFound(format!("no incident {id}")))?;
        parse_row(&row)
    }

    /// Renders the pending communications into the incident (public updates,
    /// "queued" entries) and returns the messages to hand to the outlet.
    fn render_comms(&self, w: &mut Work, at: Timestamp) -> Vec<RenderedMessage> {
        let settings = self.settings();
        let base = settings.base_url.trim_end_matches('/');
        let links: BTreeMap<String, String> = [
            (
                "incident".to_string(),
                format!("{base}/api/day2/v1/incidents/{}", w.inc.id),
            ),
            ("status_page".to_string(), format!("{base}/status")),
        ]
        .into();
        let mut out = Vec::new();
        let comms = std::mem::take(&mut w.comms);
        for (event, message) in comms {
            let rendered = match settings.incidents.comms.render(
                &w.inc,
                event,
                message.as_deref(),
                &links,
            ) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(incident = %w.inc.id, error = %e, "communication template failed");
                    let _ = w.inc.add_note(
                        &format!("Communication template failed: {e}"),
                        at,
                        Actor::system("comms"),
                    );
                    continue;
                }
            };
            for (i, m) in rendered.into_iter().enumerate() {
                if m.channel == STATUS_PAGE_CHANNEL {
                    let _ = w.inc.post_public_update(
                        m.subject.as_deref(),
                        &m.body,
                        at,
                        Actor::system("comms"),
                    );
                    continue;
                }
                let seq = w.inc.timeline.iter().map(|e| e.seq).max().unwrap_or(0);
                let first = m
                    .subject
                    .clone()
                    .unwrap_or_else(|| m.body.lines().next().unwrap_or("").to_string());
                let _ = w.inc.record(
                    EntryKind::NotificationSent,
                    at,
                    Actor::system("comms"),
                    format!(
                        "Queued {} message ({}) for {}: {first}",
                        m.channel,
                        event.as_str(),
                        if m.notify.is_empty() {
                            "nobody".to_string()
                        } else {
                            m.notify.join(", ")
                        }
                    ),
                    json!({
                        "key": format!("comms:{}:{seq}:{i}", w.inc.id),
                        "channel": m.channel,
                        "event": event.as_str(),
                        "notify": m.notify,
                    })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                );
                out.push(m);
            }
        }
        out
    }

    /// Writes the changed incidents (and the applied notification), then
    /// hands rendered messages to the outlet.
    fn commit(
        &self,
        mut works: Vec<Work>,
        outbox: Option<(i64, Timestamp)>,
    ) -> Result<Vec<Incident>, RuntimeError> {
        let now = self.now();
        let mut sends = Vec::new();
        let mut writes = Vec::new();
        for w in &mut works {
            let msgs = self.render_comms(w, now);
            sends.push(msgs);
            let fingerprints = w.inc.alerts.iter().map(|a| a.fingerprint.clone()).collect();
            writes.push(IncidentWrite {
                row: row_of(&w.inc, number_of(&w.inc.id)),
                fingerprints,
                group: w.group.clone(),
            });
        }
        self.store
            .incident_write(&writes, outbox.map(|(id, at)| (id, ms(at))))?;
        if let Some(l) = self.listener.read().clone() {
            for w in &works {
                l.written(&w.inc);
            }
        }
        let outlet = self.outlet.read().clone();
        for (w, msgs) in works.iter().zip(sends) {
            for m in msgs {
                let Some(o) = &outlet else {
                    tracing::warn!(incident = %w.inc.id, channel = %m.channel, "no outlet for communications; message not sent");
                    continue;
                };
                match o.send(&w.inc, &m) {
                    Ok(skipped) if !skipped.is_empty() => {
                        tracing::warn!(incident = %w.inc.id, users = ?skipped, channel = %m.channel, "communication not sent to some users (unknown, or no contact method of that channel)")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(incident = %w.inc.id, error = %e, "queueing a communication failed")
                    }
                }
            }
        }
        Ok(works.into_iter().map(|w| w.inc).collect())
    }

    /// Imports the alert's earlier history into the incident.
    fn import_history(&self, inc: &mut Incident, fingerprint: &str) {
        let Some(h) = self.history.read().clone() else {
            return;
        };
        for e in h.history(fingerprint) {
            apply_external(inc, &e);
        }
    }

    // ------------------------------------------------------------ notifications

    /// Applies one alert-hub notification of an incident receiver.
    pub fn handle_notification(&self, n: &InternalNotification) -> Result<(), RuntimeError> {
        let settings = self.settings();
        let Some(route) = settings.incidents.receivers.get(&n.receiver) else {
            return Err(RuntimeError::BadRequest(format!(
                "receiver {:?} opens no incidents (incidents.receivers)",
                n.receiver
            )));
        };
        let _g = self.lock.lock();
        if self.store.incident_notification_applied(n.outbox_id)? {
            return Ok(());
        }
        let group = (n.receiver.clone(), n.message.group_key.clone());
        let mut works: Vec<Work> = Vec::new();
        let find = |works: &mut Vec<Work>, id: &str| works.iter().position(|w| w.inc.id == id);
        let mut group_id: Option<String> = None;
        if let Some(r) = self.store.incident_open_for_group(&group.0, &group.1)? {
            let inc = parse_row(&r)?;
            group_id = Some(inc.id.clone());
            works.push(Work::new(inc));
        }
        let mut next_number = self.store.incident_next_number()?;
        let actor = Actor::system("alerthub");
        // mapped alerts first: an unmapped alert joins the incident its group opens
        let mut alerts: Vec<&NotifiedAlert> = n.message.alerts.iter().collect();
        alerts.sort_by_key(|a| route.severity_map.severity_for(&a.labels).is_none());
        for a in alerts {
            let linked: Vec<String> = {
                let mut ids: Vec<String> = works
                    .iter()
                    .filter(|w| {
                        !w.inc.is_resolved()
                            && w.inc.alerts.iter().any(|l| l.fingerprint == a.fingerprint)
                    })
                    .map(|w| w.inc.id.clone())
                    .collect();
                for r in self
                    .store
                    .incident_open_for_alerts(std::slice::from_ref(&a.fingerprint))?
                {
                    if !ids.contains(&r.id) {
                        ids.push(r.id.clone());
                        if find(&mut works, &r.id).is_none() {
                            works.push(Work::new(parse_row(&r)?));
                        }
                    }
                }
                ids
            };
            let alert = LinkedAlert {
                fingerprint: a.fingerprint.clone(),
                labels: a.labels.clone(),
            };
            if a.is_firing() {
                if !linked.is_empty() {
                    for id in &linked {
                        let i = find(&mut works, id).expect("loaded above");
                        let inc = &mut works[i].inc;
                        if !alert_firing(inc, &a.fingerprint) {
                            inc.record(
                                EntryKind::AlertFiring,
                                n.created_at.max(inc.created_at),
                                actor.clone(),
                                format!("{} firing again", alert.alertname()),
                                json!({"fingerprint": a.fingerprint, "labels": a.labels})
                                    .as_object()
                                    .cloned()
                                    .unwrap_or_default(),
                            )?;
                        }
                    }
                    continue;
                }
                let severity = route.severity_map.severity_for(&a.labels);
                match group_id.as_ref().and_then(|id| find(&mut works, id)) {
                    // the group has an incident: the alert joins it, mapped or not
                    Some(i) => {
                        let inc = &mut works[i].inc;
                        inc.link_alert(alert, n.created_at.max(inc.created_at), actor.clone())?;
                        if let Some(severity) = severity
                            && severity < inc.severity
                        {
                            inc.set_severity(
                                severity,
                                n.created_at.max(inc.created_at),
                                actor.clone(),
                            )?;
                        }
                        self.import_history(&mut works[i].inc, &a.fingerprint);
                    }
                    None if severity.is_none() => {}
                    None => {
                        let input = AlertInput {
                            fingerprint: a.fingerprint.clone(),
                            labels: a.labels.clone(),
                            annotations: a.annotations.clone(),
                        };
                        let id = format!("INC-{next_number}");
                        next_number += 1;
                        let Some(mut inc) = Incident::open_from_alert(
                            &route.severity_map,
                            id.clone(),
                            &input,
                            n.created_at,
                        ) else {
                            continue;
                        };
                        if !route.components.is_empty() {
                            inc.set_components(
                                route.components.clone(),
                                n.created_at,
                                actor.clone(),
                            )?;
                        }
                        self.import_history(&mut inc, &a.fingerprint);
                        tracing::info!(incident = %id, severity = %inc.severity, receiver = %n.receiver, "incident opened from an alert");
                        let mut w = Work::new(inc);
                        w.group = Some(group.clone());
                        w.comms.push((CommsEvent::Opened, None));
                        works.push(w);
                        group_id = Some(id);
                    }
                }
            } else {
                let at = a.resolved_at().unwrap_or(n.created_at);
                for id in &linked {
                    let i = find(&mut works, id).expect("loaded above");
                    let inc = &mut works[i].inc;
                    if alert_firing(inc, &a.fingerprint) {
                        inc.alert_resolved(&alert, at.max(inc.created_at), actor.clone());
                    }
                }
            }
        }
        if route.resolve_with_alerts {
            for w in &mut works {
                let all_resolved = !w.inc.alerts.is_empty()
                    && w.inc
                        .alerts
                        .iter()
                        .all(|l| !alert_firing(&w.inc, &l.fingerprint));
                if all_resolved && !w.inc.is_resolved() {
                    let at = n.created_at.max(w.inc.created_at);
                    w.inc.resolve(at, Actor::system("alerthub"))?;
                    w.comms.push((CommsEvent::Resolved, None));
                }
            }
        }
        self.commit(works, Some((n.outbox_id, n.created_at)))?;
        Ok(())
    }

    // ------------------------------------------------------------ reports from other features

    /// Records an entry on every unresolved incident linked to any of the
    /// alerts (once per `data.key`); returns the incident ids.
    pub fn record_for_alerts(
        &self,
        fingerprints: &[String],
        entry: &ExternalEntry,
    ) -> Result<Vec<String>, RuntimeError> {
        let _g = self.lock.lock();
        let rows = self.store.incident_open_for_alerts(fingerprints)?;
        let mut works = Vec::new();
        for r in rows {
            let mut inc = parse_row(&r)?;
            if apply_external(&mut inc, entry) {
                works.push(Work::new(inc));
            }
        }
        let ids = works.iter().map(|w| w.inc.id.clone()).collect();
        if !works.is_empty() {
            self.commit(works, None)?;
        }
        Ok(ids)
    }

    /// Records an entry on one incident (once per `data.key`).
    pub fn record_for_incident(&self, id: &str, entry: &ExternalEntry) -> Result<(), RuntimeError> {
        let _g = self.lock.lock();
        let mut inc = self.load(id)?;
        if apply_external(&mut inc, entry) {
            self.commit(vec![Work::new(inc)], None)?;
        }
        Ok(())
    }

    /// Records a remediation step on the incidents linked to the alerts (the
    /// remediation runtime calls this before and after every step; `key`
    /// identifies the report, e.g. `run:12:step:3:after`).
    pub fn record_remediation(
        &self,
        fingerprints: &[String],
        actor: &str,
        text: &str,
        key: &str,
        at: Timestamp,
    ) -> Result<Vec<String>, RuntimeError> {
        let e = ExternalEntry::keyed(
            EntryKind::RemediationStep,
            at,
            Actor::system(actor),
            text,
            key,
        );
        self.record_for_alerts(fingerprints, &e)
    }

    /// Acknowledges, as `by`, the incidents linked to the alerts (once per `key`).
    pub fn acknowledge_for_alerts(
        &self,
        fingerprints: &[String],
        by: &str,
        text: &str,
        key: &str,
        at: Timestamp,
    ) -> Result<Vec<String>, RuntimeError> {
        let e = ExternalEntry::keyed(EntryKind::Acknowledged, at, Actor::user(by), text, key);
        self.record_for_alerts(fingerprints, &e)
    }

    // ------------------------------------------------------------ API operations

    /// Opens an incident by hand.
    pub fn create(&self, req: NewIncident, actor: &str) -> Result<Incident, RuntimeError> {
        if req.title.trim().is_empty() {
            return Err(RuntimeError::BadRequest("title must not be empty".into()));
        }
        check_components(&self.settings(), &req.components)?;
        let _g = self.lock.lock();
        let now = self.now();
        let who = Actor::user(actor);
        let id = format!("INC-{}", self.store.incident_next_number()?);
        let mut inc = Incident::open(id, req.title.trim(), req.severity, now, who.clone());
        inc.service = req.service.filter(|s| !s.trim().is_empty());
        inc.public_title = req.public_title.filter(|s| !s.trim().is_empty());
        if !req.components.is_empty() {
            inc.set_components(req.components, now, who.clone())?;
        }
        if let Some(u) = req.commander.as_deref() {
            inc.assign_role(Role::Commander, Some(u), now, who.clone())?;
        }
        if let Some(u) = req.communications_lead.as_deref() {
            inc.assign_role(Role::CommunicationsLead, Some(u), now, who.clone())?;
        }
        for a in req.alerts {
            let fp = a.fingerprint.clone();
            inc.link_alert(a, now, who.clone())?;
            self.import_history(&mut inc, &fp);
        }
        tracing::info!(incident = %inc.id, severity = %inc.severity, by = actor, "incident opened");
        let mut w = Work::new(inc);
        w.comms.push((CommsEvent::Opened, None));
        Ok(self.commit(vec![w], None)?.remove(0))
    }

    /// Applies an action by `actor`.
    pub fn act(&self, id: &str, action: Action, actor: &str) -> Result<Incident, RuntimeError> {
        let settings = self.settings();
        let _g = self.lock.lock();
        let mut inc = self.load(id)?;
        let now = self.now();
        let who = Actor::user(actor);
        let mut comms = Vec::new();
        match action {
            Action::Status { status, message } => {
                inc.set_status(status, now, who)?;
                let event = if status == Status::Resolved {
                    CommsEvent::Resolved
                } else {
                    CommsEvent::Updated
                };
                if let Some(m) = message.as_deref().filter(|m| !m.trim().is_empty()) {
                    inc.add_note(&format!("Status update: {m}"), now, Actor::user(actor))?;
                }
                comms.push((event, message));
            }
            Action::Severity { severity } => {
                inc.set_severity(severity, now, who)?;
            }
            Action::Role { role, user } => {
                inc.assign_role(role, user.as_deref().filter(|u| !u.is_empty()), now, who)?;
            }
            Action::Note { text } => {
                inc.add_note(&text, now, who)?;
            }
            Action::Acknowledge {} => {
                inc.acknowledge(now, who)?;
            }
            Action::Reopen { reason } => {
                inc.reopen(&reason, now, who)?;
                comms.push((CommsEvent::Updated, Some(format!("Reopened: {reason}"))));
            }
            Action::LinkAlert {
                fingerprint,
                labels,
            } => {
                if fingerprint.trim().is_empty() {
                    return Err(RuntimeError::BadRequest(
                        "fingerprint must not be empty".into(),
                    ));
                }
                inc.link_alert(
                    LinkedAlert {
                        fingerprint: fingerprint.clone(),
                        labels,
                    },
                    now,
                    who,
                )?;
                self.import_history(&mut inc, &fingerprint);
            }
            Action::PublicUpdate { title, body } => {
                inc.post_public_update(title.as_deref(), &body, now, who)?;
            }
            Action::Components { components } => {
                check_components(&settings, &components)?;
                inc.set_components(components, now, who)?;
            }
            Action::Remediation { text } => {
                if text.trim().is_empty() {
                    return Err(RuntimeError::BadRequest("text must not be empty".into()));
                }
                inc.record(EntryKind::RemediationStep, now, who, text, Map::new())?;
            }
        }
        let mut w = Work::new(inc);
        w.comms = comms;
        Ok(self.commit(vec![w], None)?.remove(0))
    }

    pub fn get(&self, id: &str) -> Result<Incident, RuntimeError> {
        self.load(id)
    }

    /// Incidents newest first: open ones and, with `all`, resolved ones too.
    pub fn list(&self, all: bool) -> Result<Vec<Incident>, RuntimeError> {
        let since = if all { None } else { Some(i64::MAX) };
        self.store
            .incident_list(since, 1000)?
            .iter()
            .map(parse_row)
            .collect()
    }

    /// Incidents open now or resolved at or after `since`, newest first
    /// (at most `limit`): those that can overlap a window starting then.
    pub fn list_overlapping(
        &self,
        since: Timestamp,
        limit: usize,
    ) -> Result<Vec<Incident>, RuntimeError> {
        self.store
            .incident_list(Some(ms(since)), limit)?
            .iter()
            .map(parse_row)
            .collect()
    }

    /// The postmortem draft (Markdown).
    pub fn postmortem(&self, id: &str) -> Result<String, RuntimeError> {
        Ok(crate::postmortem::draft_postmortem(&self.load(id)?))
    }

    // ------------------------------------------------------------ status page

    /// The public status page at `now`; `None` without a `status_page` section.
    pub fn status_page(&self) -> Result<Option<StatusSummary>, RuntimeError> {
        let settings = self.settings();
        let Some(cfg) = &settings.incidents.status_page else {
            return Ok(None);
        };
        let now = self.now();
        let since = now
            .checked_sub(SignedDuration::from_hours(24 * i64::from(cfg.history_days)))
            .unwrap_or(Timestamp::MIN);
        let incidents: Vec<Incident> = self
            .store
            .incident_list(Some(ms(since)), 1000)?
            .iter()
            .filter_map(|r| parse_row(r).ok())
            .collect();
        let maintenances = self.maintenances(now)?;
        Ok(Some(StatusSummary::build(
            cfg,
            &incidents,
            &maintenances,
            now,
        )))
    }

    fn maintenances(&self, now: Timestamp) -> Result<Vec<Maintenance>, RuntimeError> {
        Ok(self
            .store
            .maintenance_list(ms(now))?
            .iter()
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect())
    }

    /// Schedules (or replaces) a maintenance window.
    pub fn put_maintenance(
        &self,
        m: Maintenance,
        actor: &str,
    ) -> Result<Maintenance, RuntimeError> {
        if m.id.trim().is_empty() || m.title.trim().is_empty() {
            return Err(RuntimeError::BadRequest(
                "id and title must not be empty".into(),
            ));
        }
        if m.scheduled_until <= m.scheduled_for {
            return Err(RuntimeError::BadRequest(
                "scheduled_until must be after scheduled_for".into(),
            ));
        }
        check_components(&self.settings(), &m.components)?;
        let doc = serde_json::to_string(&m).expect("maintenance serializes");
        self.store
            .maintenance_put(&m.id, ms(m.scheduled_until), &doc)?;
        tracing::info!(maintenance = %m.id, by = actor, "maintenance scheduled");
        Ok(m)
    }

    pub fn delete_maintenance(&self, id: &str, actor: &str) -> Result<(), RuntimeError> {
        if !self.store.maintenance_delete(id)? {
            return Err(RuntimeError::NotFound(format!("no maintenance {id}")));
        }
        tracing::info!(maintenance = %id, by = actor, "maintenance deleted");
        Ok(())
    }

    /// Scheduled and in-progress maintenance.
    pub fn maintenance_list(&self) -> Result<Vec<Maintenance>, RuntimeError> {
        self.maintenances(self.now())
    }
}

/// Every component must be one of the status page's.
fn check_components(settings: &IncidentSettings, ids: &[String]) -> Result<(), RuntimeError> {
    match ids.iter().find(|c| !settings.incidents.has_component(c)) {
        Some(c) => Err(RuntimeError::BadRequest(format!(
            "unknown status-page component {c:?}"
        ))),
        None => Ok(()),
    }
}

/// Applies an external entry unless its key is on the timeline already;
/// returns whether the incident changed.
fn apply_external(inc: &mut Incident, e: &ExternalEntry) -> bool {
    if let Some(k) = key_of(&e.data)
        && has_key(inc, k)
    {
        return false;
    }
    let at = e.at.max(inc.created_at);
    let res: Result<TimelineEntry, IncidentError> = match e.kind {
        EntryKind::Acknowledged if inc.acknowledged_at.is_none() && !inc.is_resolved() => {
            inc.acknowledge(at, e.actor.clone())
        }
        // acknowledged before (or resolved): kept as a note
        EntryKind::Acknowledged => inc.add_note(&e.text, at, e.actor.clone()),
        kind => inc.record(kind, at, e.actor.clone(), e.text.clone(), e.data.clone()),
    };
    match res {
        Ok(entry) => {
            // the report's own text and key replace the generic ones, so a
            // repeated report is recognised
            if let Some(stored) = inc.timeline.iter_mut().find(|x| x.seq == entry.seq) {
                stored.text = e.text.clone();
                stored.data = e.data.clone();
            }
            true
        }
        Err(err) => {
            tracing::warn!(incident = %inc.id, error = %err, "timeline entry not recorded");
            false
        }
    }
}

impl InternalSink for IncidentRuntime {
    fn deliver(&self, n: &InternalNotification) -> Result<(), SinkError> {
        match self.handle_notification(n) {
            Ok(()) => Ok(()),
            Err(RuntimeError::BadRequest(m)) => Err(SinkError::Permanent(m)),
            Err(RuntimeError::Refused(e)) => Err(SinkError::Permanent(e.to_string())),
            Err(e) => Err(SinkError::Retry(e.to_string())),
        }
    }
}
