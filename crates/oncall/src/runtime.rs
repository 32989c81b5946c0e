//! On-call inside `day2 serve`: escalations started by alert-hub
//! notifications, steps fired on time (and after a restart), pages sent
//! durably, acknowledgements by API, CLI or signed link.
//!
//! - [`OnCallRuntime`] is an [`InternalSink`]: each notification of a paging
//!   receiver (see `oncall.receivers`) opens, updates or resolves the
//!   escalation of its alert group. The first firing notification opens it
//!   (`triggered_at` = when the group flushed); a notification with no firing
//!   alert resolves it. An acknowledged escalation stays acknowledged while
//!   alerts come and go in its group; it ends when the group resolves, and the
//!   next firing notification starts a new escalation.
//! - [`OnCallRuntime::escalate_once`] recomputes every escalating plan with
//!   [`crate::escalation::steps_due`] from the stored trigger time and the
//!   clock, and records each due step that was not recorded yet together with
//!   its pages, in one transaction keyed by `(escalation, round, step)`: a
//!   restart never pages twice and never forgets a page that came due while
//!   day2 was down.
//! - Pages (one per user and contact method) go through their own outbox,
//!   retried with backoff like notifications; every page sent or failed, every
//!   acknowledgement and resolution is an event of the escalation (its audit)
//!   and is reported to an [`EscalationObserver`] (the incident timeline).
//!
//! Time comes from a [`Clock`] so that tests freeze it.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use day2_alerthub::delivery::{Outcome, RetryPolicy};
use day2_alerthub::egress::EgressPolicy;
use day2_alerthub::hub::Clock;
use day2_alerthub::internal::{InternalNotification, InternalSink, SinkError};
use day2_store::oncall::{
    DirectEscalation, EscalationRow, EscalationWrite, NewPage, OncallEvent, PageAttempt, PageRow,
    RetentionCounts, StepRow,
};
use day2_store::{OutboxState, Store};
use jiff::{SignedDuration, Timestamp};
use parking_lot::{Mutex, RwLock};
use serde_json::{Value, json};

use crate::acklink::{self, AckLinkError};
use crate::config::OnCall;
use crate::escalation::{DueStep, next_due, steps_due};
use crate::page::{Page, PageAlert, PageEscalation, PageKind, method_kind};

/// Everything the runtime reads from the configuration.
#[derive(Debug, Clone, Default)]
pub struct OnCallSettings {
    pub oncall: OnCall,
    /// Signed acknowledgement links; `None`: pages carry no link.
    pub ack: Option<AckLinkSettings>,
    /// Outbound allowlist for webhook, Slack and Teams pages and SMTP.
    pub egress: EgressPolicy,
    /// `alertmanager.yml`'s global section: the SMTP settings of email pages.
    pub smtp: Option<day2_alerthub::config::GlobalConfig>,
}

/// Acknowledgement links with their key read.
#[derive(Clone)]
pub struct AckLinkSettings {
    pub key: Vec<u8>,
    /// day2's URL as browsers reach it; links are `<base_url>/oncall/ack/<token>`.
    pub base_url: String,
    pub valid_for: SignedDuration,
}

impl std::fmt::Debug for AckLinkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AckLinkSettings(<key>, {:?}, {})",
            self.base_url, self.valid_for
        )
    }
}

/// Something that happened to an escalation, for other features (the
/// incident timeline). `key` is stable across restarts and redeliveries.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationEvent {
    pub escalation: Option<i64>,
    /// `opened`, `step`, `page_sent`, `page_failed`, `acknowledged`, `resolved`,
    /// `message_queued`.
    pub kind: String,
    pub at: Timestamp,
    /// A user id, or `day2`.
    pub actor: String,
    pub text: String,
    /// Fingerprints of the alerts the escalation carried.
    pub fingerprints: Vec<String>,
    /// The incident a message page was about.
    pub incident: Option<String>,
    pub data: serde_json::Map<String, Value>,
}

impl EscalationEvent {
    /// The idempotency key (`page:12`, `ack:3`, ...).
    pub fn key(&self) -> &str {
        self.data.get("key").and_then(Value::as_str).unwrap_or("")
    }
}

/// Receives escalation events as they happen (best effort, in process).
pub trait EscalationObserver: Send + Sync {
    fn observe(&self, event: &EscalationEvent);
}

/// Receivers of escalations that runbooks open start with this
/// (`runbook:<name>`); they have no alert group.
pub const RUNBOOK_RECEIVER_PREFIX: &str = "runbook:";

/// Errors of runtime operations, shaped for the API.
#[derive(Debug, thiserror::Error)]
pub enum OnCallError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// The escalation ended (resolved): there is nothing left to acknowledge.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Link(#[from] AckLinkError),
    #[error("state store: {0}")]
    Store(#[from] day2_store::Error),
}

/// The result of an acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AckResult {
    pub escalation: i64,
    /// False when someone had acknowledged it before.
    pub acknowledged_now: bool,
    pub acked_by: String,
    pub acked_at: Timestamp,
}

#[derive(Default)]
struct Metrics {
    notifications: AtomicU64,
    steps: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    acks: AtomicU64,
    /// Rows deleted by retention: escalations, events, pages, steps, alert links.
    retained: [AtomicU64; 5],
}

/// How often retention runs (and once at start).
pub const RETENTION_INTERVAL: SignedDuration = SignedDuration::from_hours(1);

/// The running on-call feature.
pub struct OnCallRuntime {
    store: Arc<Store>,
    clock: Clock,
    settings: RwLock<Arc<OnCallSettings>>,
    /// Serialises notification handling (read the group's state, then write it).
    apply_lock: Mutex<()>,
    escalate_wake: tokio::sync::Notify,
    page_wake: tokio::sync::Notify,
    stopped: AtomicBool,
    inflight: Mutex<HashSet<i64>>,
    retry: RetryPolicy,
    observer: RwLock<Option<Arc<dyn EscalationObserver>>>,
    metrics: Metrics,
    /// When retention runs next; `None`: at the next look.
    next_retention: Mutex<Option<Timestamp>>,
}

pub(crate) fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

pub(crate) fn ts(v: i64) -> Timestamp {
    Timestamp::from_millisecond(v).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn event(kind: &str, at: Timestamp, actor: &str, text: String, data: Value) -> OncallEvent {
    OncallEvent {
        id: 0,
        escalation_id: None,
        at: ms(at),
        kind: kind.to_string(),
        actor: actor.to_string(),
        text,
        data: data.to_string(),
    }
}

fn alerts_of(n: &InternalNotification) -> Vec<PageAlert> {
    n.message
        .alerts
        .iter()
        .map(|a| PageAlert {
            fingerprint: a.fingerprint.clone(),
            status: a.status.clone(),
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at: a.starts_at,
        })
        .collect()
}

fn group_name(alerts: &[PageAlert]) -> String {
    let mut names: Vec<&str> = alerts
        .iter()
        .filter_map(|a| a.labels.get("alertname").map(String::as_str))
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        "alerts".into()
    } else {
        names.join(", ")
    }
}

impl OnCallRuntime {
    pub fn new(store: Arc<Store>, settings: OnCallSettings, clock: Clock) -> Arc<OnCallRuntime> {
        Arc::new(OnCallRuntime {
            store,
            clock,
            settings: RwLock::new(Arc::new(settings)),
            apply_lock: Mutex::new(()),
            escalate_wake: tokio::sync::Notify::new(),
            page_wake: tokio::sync::Notify::new(),
            stopped: AtomicBool::new(false),
            inflight: Mutex::new(HashSet::new()),
            retry: RetryPolicy::default(),
            observer: RwLock::new(None),
            metrics: Metrics::default(),
            next_retention: Mutex::new(None),
        })
    }

    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Applies a new configuration; escalations in progress continue under
    /// their policy's new definition (recomputed from their trigger time).
    pub fn apply(&self, settings: OnCallSettings) {
        *self.settings.write() = Arc::new(settings);
        self.escalate_wake.notify_one();
        self.page_wake.notify_one();
    }

    pub fn settings(&self) -> Arc<OnCallSettings> {
        self.settings.read().clone()
    }

    pub fn set_observer(&self, o: Arc<dyn EscalationObserver>) {
        *self.observer.write() = Some(o);
    }

    fn emit(&self, escalation: Option<&EscalationRow>, e: &OncallEvent, incident: Option<String>) {
        let Some(o) = self.observer.read().clone() else {
            return;
        };
        let fingerprints = escalation
            .map(|row| {
                serde_json::from_str::<Vec<PageAlert>>(&row.alerts)
                    .map(|a| a.into_iter().map(|a| a.fingerprint).collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        let data =
            serde_json::from_str::<serde_json::Map<String, Value>>(&e.data).unwrap_or_default();
        o.observe(&EscalationEvent {
            escalation: escalation.map(|r| r.id).or(e.escalation_id),
            kind: e.kind.clone(),
            at: ts(e.at),
            actor: e.actor.clone(),
            text: e.text.clone(),
            fingerprints,
            incident,
            data,
        });
    }

    // ------------------------------------------------------------ notifications

    /// Applies one alert-hub notification of a paging receiver.
    pub fn handle_notification(&self, n: &InternalNotification) -> Result<(), OnCallError> {
        let settings = self.settings();
        let Some(policy) = settings.oncall.receivers.get(&n.receiver).cloned() else {
            return Err(OnCallError::BadRequest(format!(
                "receiver {:?} has no escalation policy (oncall.receivers)",
                n.receiver
            )));
        };
        self.metrics.notifications.fetch_add(1, Ordering::Relaxed);
        let group = &n.message.group_key;
        let _g = self.apply_lock.lock();
        if self
            .store
            .oncall_group_last_outbox(&n.receiver, group)?
            .is_some_and(|last| last >= n.outbox_id)
        {
            // handed over again after a crash, or older than what was applied
            return Ok(());
        }
        let alerts = alerts_of(n);
        let fingerprints: Vec<String> = alerts.iter().map(|a| a.fingerprint.clone()).collect();
        let alerts_json = serde_json::to_string(&alerts).unwrap_or_else(|_| "[]".into());
        let firing = alerts.iter().filter(|a| a.status == "firing").count();
        let open = self.store.oncall_open_escalation(&n.receiver, group)?;
        let name = group_name(&alerts);
        let (write, events) = match (&open, firing > 0) {
            (None, false) => (None, Vec::new()),
            (None, true) => (
                Some(EscalationWrite::Open {
                    policy: policy.clone(),
                    triggered_at: ms(n.created_at),
                    alerts: alerts_json,
                    fingerprints,
                }),
                vec![event(
                    "opened",
                    n.created_at,
                    "day2",
                    format!(
                        "Escalation started by {name} ({firing} firing) on receiver {}, policy {policy}",
                        n.receiver
                    ),
                    json!({ "receiver": n.receiver, "policy": policy, "outbox_id": n.outbox_id }),
                )],
            ),
            (Some(e), true) => (
                Some(EscalationWrite::Update {
                    id: e.id,
                    alerts: alerts_json,
                    fingerprints,
                }),
                Vec::new(),
            ),
            (Some(e), false) => {
                let resolved_at = n
                    .message
                    .alerts
                    .iter()
                    .filter_map(|a| a.resolved_at())
                    .max()
                    .unwrap_or(n.created_at);
                (
                    Some(EscalationWrite::Resolve {
                        id: e.id,
                        resolved_at: ms(resolved_at),
                        alerts: alerts_json,
                        fingerprints,
                    }),
                    vec![event(
                        "resolved",
                        resolved_at,
                        "day2",
                        format!("{name} resolved: the escalation ended"),
                        json!({ "key": format!("resolved:{}", e.id) }),
                    )],
                )
            }
        };
        let id = self.store.oncall_apply_notification(
            &n.receiver,
            group,
            n.outbox_id,
            write.as_ref(),
            &events,
        )?;
        drop(_g);
        if let Some(id) = id
            && !events.is_empty()
        {
            let row = self.store.oncall_escalation(id)?;
            for e in &events {
                self.emit(row.as_ref(), e, None);
            }
        }
        self.escalate_wake.notify_one();
        Ok(())
    }

    /// Opens an escalation of `policy` that no alert-hub notification
    /// started (a runbook's escalate step), once per (`receiver`, `key`):
    /// `note` says what it is about, `alerts` are the alerts it carries
    /// (their incidents get its pages). Its steps page like any other's;
    /// having no alert group to resolve it, it ends when acknowledged.
    /// Returns its id and whether it was opened now.
    pub fn open_direct(
        &self,
        receiver: &str,
        key: &str,
        policy: &str,
        note: &str,
        alerts: &[PageAlert],
    ) -> Result<(i64, bool), OnCallError> {
        if self.settings().oncall.policy(policy).is_none() {
            return Err(OnCallError::BadRequest(format!(
                "no escalation policy {policy:?} (oncall.escalation_policies)"
            )));
        }
        let now = self.now();
        let e = DirectEscalation {
            receiver: receiver.to_string(),
            group_key: key.to_string(),
            policy: policy.to_string(),
            triggered_at: ms(now),
            alerts: serde_json::to_string(alerts).unwrap_or_else(|_| "[]".into()),
            fingerprints: alerts.iter().map(|a| a.fingerprint.clone()).collect(),
            note: note.to_string(),
        };
        let ev = event(
            "opened",
            now,
            "day2",
            format!("Escalation started by {receiver}, policy {policy}: {note}"),
            json!({ "key": format!("opened:{receiver}:{key}"), "receiver": receiver, "policy": policy }),
        );
        let (id, opened) = self.store.oncall_open_direct(&e, &ev)?;
        if opened {
            tracing::info!(escalation = id, receiver, policy, "escalation opened");
            let row = self.store.oncall_escalation(id)?;
            self.emit(row.as_ref(), &ev, None);
            self.escalate_wake.notify_one();
        }
        Ok((id, opened))
    }

    // ------------------------------------------------------------ escalation

    /// Records every step due by now that was not recorded yet, with its
    /// pages; returns when the next step comes due.
    pub fn escalate_once(&self) -> Result<Option<Timestamp>, OnCallError> {
        let now = self.now();
        let settings = self.settings();
        let mut next: Option<Timestamp> = None;
        for e in self.store.oncall_escalating()? {
            let Some(policy) = settings.oncall.policy(&e.policy) else {
                tracing::warn!(escalation = e.id, policy = %e.policy, "escalation policy no longer configured; the escalation waits");
                continue;
            };
            let triggered = ts(e.triggered_at);
            let fired: HashSet<(u32, u32)> = self
                .store
                .oncall_steps(e.id)?
                .iter()
                .map(|s| (s.round, s.step_index))
                .collect();
            for d in steps_due(&settings.oncall, policy, triggered, now, None) {
                if !fired.contains(&(d.round, d.step_index as u32)) {
                    self.fire_step(&settings, &e, &d, now)?;
                }
            }
            if let Some(t) = next_due(policy, triggered, now, None) {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        Ok(next)
    }

    fn fire_step(
        &self,
        settings: &OnCallSettings,
        e: &EscalationRow,
        d: &DueStep,
        now: Timestamp,
    ) -> Result<(), OnCallError> {
        let alerts: Vec<PageAlert> = serde_json::from_str(&e.alerts).unwrap_or_default();
        let step_no = d.step_index as u32 + 1;
        let mut pages = Vec::new();
        let mut unreachable = Vec::new();
        for u in &d.users {
            let Some(user) = settings.oncall.user(u.as_str()) else {
                unreachable.push(u.to_string());
                continue;
            };
            if user.contact_methods.is_empty() {
                unreachable.push(u.to_string());
            }
            let mut page = Page::for_step(
                u.as_str(),
                PageEscalation {
                    id: e.id,
                    policy: e.policy.clone(),
                    receiver: e.receiver.clone(),
                    group_key: e.group_key.clone(),
                    triggered_at: ts(e.triggered_at),
                    round: d.round,
                    step: step_no,
                },
                alerts.clone(),
            );
            if !e.note.is_empty() {
                page.title = format!(
                    "[day2] {} ({}, step {step_no} round {})",
                    e.note, e.receiver, d.round
                );
                page.text = format!("{}\n{}", e.note, page.text).trim_end().to_string();
            }
            let payload = serde_json::to_string(&page).unwrap_or_default();
            for (i, m) in user.contact_methods.iter().enumerate() {
                pages.push(NewPage {
                    escalation_id: Some(e.id),
                    round: Some(d.round),
                    step_index: Some(d.step_index as u32),
                    user_id: u.to_string(),
                    method_index: i as u32,
                    method_kind: method_kind(m).to_string(),
                    payload: payload.clone(),
                });
            }
        }
        let users: Vec<&str> = d.users.iter().map(|u| u.as_str()).collect();
        let mut text = if users.is_empty() {
            format!("Step {step_no} (round {}): nobody to page", d.round)
        } else {
            format!(
                "Step {step_no} (round {}): paging {}",
                d.round,
                users.join(", ")
            )
        };
        if !d.empty_schedules.is_empty() {
            text.push_str(&format!(
                "; nobody on call in {}",
                d.empty_schedules.join(", ")
            ));
        }
        if !unreachable.is_empty() {
            text.push_str(&format!(
                "; no contact method for {}",
                unreachable.join(", ")
            ));
        }
        let ev = event(
            "step",
            now,
            "day2",
            text,
            json!({
                "key": format!("step:{}:{}:{}", e.id, d.round, step_no),
                "round": d.round,
                "step": step_no,
                "due_at": d.at.to_string(),
                "users": users,
                "empty_schedules": d.empty_schedules,
            }),
        );
        let step = StepRow {
            escalation_id: e.id,
            round: d.round,
            step_index: d.step_index as u32,
            due_at: ms(d.at),
            fired_at: ms(now),
            users: serde_json::to_string(&users).unwrap_or_else(|_| "[]".into()),
        };
        if self.store.oncall_fire_step(&step, &pages, &ev)?.is_some() {
            self.metrics.steps.fetch_add(1, Ordering::Relaxed);
            tracing::info!(escalation = e.id, round = d.round, step = step_no, users = ?users, late_by = %now.duration_since(d.at), "escalation step fired");
            self.emit(Some(e), &ev, None);
            self.page_wake.notify_one();
        }
        Ok(())
    }

    // ------------------------------------------------------------ pages

    /// Starts an attempt for every page due now that is not in flight.
    async fn spawn_due(self: &Arc<Self>) -> Result<Vec<tokio::task::JoinHandle<()>>, OnCallError> {
        let now = self.now();
        let store = self.store.clone();
        let due = tokio::task::spawn_blocking(move || store.oncall_pages_due(ms(now), 64))
            .await
            .map_err(|e| OnCallError::BadRequest(e.to_string()))??;
        let mut tasks = Vec::new();
        for p in due {
            if !self.inflight.lock().insert(p.id) {
                continue;
            }
            let rt = self.clone();
            tasks.push(tokio::spawn(async move {
                let id = p.id;
                rt.deliver_page(p).await;
                rt.inflight.lock().remove(&id);
                rt.page_wake.notify_one();
            }));
        }
        Ok(tasks)
    }

    /// Sends every page due now and waits for the attempts; returns how many
    /// were attempted (tests drive delivery with it).
    pub async fn deliver_due_once(self: &Arc<Self>) -> Result<usize, OnCallError> {
        let tasks = self.spawn_due().await?;
        let n = tasks.len();
        for t in tasks {
            let _ = t.await;
        }
        Ok(n)
    }

    /// One attempt of one page, recorded.
    async fn deliver_page(&self, p: PageRow) {
        let settings = self.settings();
        let now = self.now();
        let page: Result<Page, String> =
            serde_json::from_str(&p.payload).map_err(|e| format!("stored page is invalid: {e}"));
        let method = settings
            .oncall
            .user(&p.user_id)
            .and_then(|u| u.contact_methods.get(p.method_index as usize))
            .filter(|m| method_kind(m) == p.method_kind);
        let outcome = match (&page, method) {
            (Err(e), _) => Outcome::Failed {
                status: None,
                error: e.clone(),
            },
            (Ok(_), None) => Outcome::Failed {
                status: None,
                error: format!(
                    "{} contact method #{} of {} is no longer configured",
                    p.method_kind,
                    p.method_index + 1,
                    p.user_id
                ),
            },
            (Ok(page), Some(m)) => crate::pager::send(&settings, page, m, now).await,
        };
        let done = self.now();
        let (state, next, status, error) = match &outcome {
            Outcome::Sent { status } => (OutboxState::Sent, ms(done), Some(*status), String::new()),
            Outcome::Failed { status, error } => {
                (OutboxState::Failed, ms(done), *status, error.clone())
            }
            Outcome::Retry {
                status,
                error,
                after,
            } => {
                let backoff = self
                    .retry
                    .backoff(p.attempts, day2_alerthub::delivery::jitter());
                let wait = after.map_or(backoff, |a| a.max(backoff));
                let next = ms(done) + wait.as_millis() as i64;
                if next - p.created_at > self.retry.give_up_after.as_millis() as i64 {
                    (OutboxState::Failed, ms(done), *status, error.clone())
                } else {
                    (OutboxState::Pending, next, *status, error.clone())
                }
            }
        };
        let step = p.step_index.map(|s| s + 1);
        let what = match (&page, step, p.round) {
            (Ok(pg), _, _) if pg.kind == PageKind::Message => "message".to_string(),
            (_, Some(s), Some(r)) => format!("step {s}, round {r}"),
            _ => "page".to_string(),
        };
        let incident = page.as_ref().ok().and_then(|pg| pg.incident.clone());
        let mut data = json!({
            "key": format!("page:{}", p.id),
            "page_id": p.id,
            "user": p.user_id,
            "method": p.method_kind,
            "round": p.round,
            "step": step,
            "status_code": status,
        });
        let ev = match state {
            OutboxState::Sent => {
                self.metrics.sent.fetch_add(1, Ordering::Relaxed);
                Some(event(
                    "page_sent",
                    done,
                    "day2",
                    format!("Paged {} via {} ({what})", p.user_id, p.method_kind),
                    data,
                ))
            }
            OutboxState::Failed => {
                self.metrics.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(page = p.id, user = %p.user_id, method = %p.method_kind, %error, "page failed");
                data["error"] = Value::from(error.as_str());
                Some(event(
                    "page_failed",
                    done,
                    "day2",
                    format!(
                        "Paging {} via {} failed ({what}): {error}",
                        p.user_id, p.method_kind
                    ),
                    data,
                ))
            }
            OutboxState::Pending => {
                self.metrics.retries.fetch_add(1, Ordering::Relaxed);
                tracing::info!(page = p.id, user = %p.user_id, method = %p.method_kind, %error, "page will be retried");
                None
            }
        };
        let ev = ev.map(|mut e| {
            e.escalation_id = p.escalation_id;
            e
        });
        let attempt = PageAttempt {
            page_id: p.id,
            state,
            next_attempt: next,
            status_code: status,
            error,
            at: ms(done),
        };
        let store = self.store.clone();
        let ev2 = ev.clone();
        let res =
            tokio::task::spawn_blocking(move || store.oncall_finish_page(&attempt, ev2.as_ref()))
                .await;
        if let Ok(Err(e)) = res {
            tracing::error!(error = %e, "recording a page attempt failed");
            return;
        }
        if let Some(ev) = ev {
            let row = p
                .escalation_id
                .and_then(|id| self.store.oncall_escalation(id).ok().flatten());
            self.emit(row.as_ref(), &ev, incident);
        }
    }

    /// Enqueues a message (not an escalation) to users, through their
    /// contact methods of `channel` (`email`, `slack`, `teams`, `webhook`;
    /// any other value: every method). Unknown users are skipped and named
    /// in the returned list.
    pub fn send_message(
        &self,
        users: &[String],
        channel: &str,
        title: &str,
        text: &str,
        incident: Option<&str>,
    ) -> Result<Vec<String>, OnCallError> {
        let settings = self.settings();
        let now = self.now();
        let mut pages = Vec::new();
        let mut skipped = Vec::new();
        for u in users {
            let Some(user) = settings.oncall.user(u) else {
                skipped.push(u.clone());
                continue;
            };
            let page = Page {
                kind: PageKind::Message,
                user: u.clone(),
                title: title.to_string(),
                text: text.to_string(),
                escalation: None,
                alerts: Vec::new(),
                incident: incident.map(str::to_string),
            };
            let payload = serde_json::to_string(&page).unwrap_or_default();
            let before = pages.len();
            for (i, m) in user.contact_methods.iter().enumerate() {
                let kind = method_kind(m);
                if matches!(channel, "email" | "slack" | "teams" | "webhook") && kind != channel {
                    continue;
                }
                pages.push(NewPage {
                    escalation_id: None,
                    round: None,
                    step_index: None,
                    user_id: u.clone(),
                    method_index: i as u32,
                    method_kind: kind.to_string(),
                    payload: payload.clone(),
                });
            }
            if pages.len() == before {
                skipped.push(u.clone());
            }
        }
        if !pages.is_empty() {
            self.store.oncall_enqueue_pages(&pages, &[], ms(now))?;
            self.page_wake.notify_one();
        }
        Ok(skipped)
    }

    // ------------------------------------------------------------ acknowledgement

    /// Acknowledges an escalation as `by`: its remaining steps do not fire.
    pub fn ack(&self, id: i64, by: &str, via: &str) -> Result<AckResult, OnCallError> {
        let e = self
            .store
            .oncall_escalation(id)?
            .ok_or_else(|| OnCallError::NotFound(format!("no escalation {id}")))?;
        let now = self.now();
        if let Some(r) = e.resolved_at {
            return Err(OnCallError::Conflict(format!(
                "escalation {id} ended at {}: its alerts resolved",
                ts(r)
            )));
        }
        if let (Some(at), Some(who)) = (e.acked_at, &e.acked_by) {
            return Ok(AckResult {
                escalation: id,
                acknowledged_now: false,
                acked_by: who.clone(),
                acked_at: ts(at),
            });
        }
        let ev = event(
            "acknowledged",
            now,
            by,
            format!("Acknowledged by {by} (via {via})"),
            json!({ "key": format!("ack:{id}"), "by": by, "via": via }),
        );
        if !self.store.oncall_ack(id, ms(now), by, via, &ev)? {
            // acknowledged or resolved in the meantime: report what holds now
            let e = self.escalation(id)?;
            return match (e.acked_at, e.acked_by) {
                (Some(at), Some(who)) => Ok(AckResult {
                    escalation: id,
                    acknowledged_now: false,
                    acked_by: who,
                    acked_at: ts(at),
                }),
                _ => Err(OnCallError::Conflict(format!(
                    "escalation {id} ended while it was being acknowledged"
                ))),
            };
        }
        self.metrics.acks.fetch_add(1, Ordering::Relaxed);
        tracing::info!(escalation = id, by, via, "escalation acknowledged");
        self.emit(Some(&e), &ev, None);
        if e.receiver.starts_with(RUNBOOK_RECEIVER_PREFIX) {
            self.end_direct(&e, now)?;
        }
        Ok(AckResult {
            escalation: id,
            acknowledged_now: true,
            acked_by: by.to_string(),
            acked_at: now,
        })
    }

    /// Ends an escalation a runbook opened (acknowledged: nothing else ends it).
    fn end_direct(&self, e: &EscalationRow, at: Timestamp) -> Result<(), OnCallError> {
        let ev = event(
            "resolved",
            at,
            "day2",
            "Acknowledged: the runbook's escalation ended".into(),
            json!({ "key": format!("resolved:{}", e.id) }),
        );
        self.store.oncall_apply_notification(
            &e.receiver,
            &e.group_key,
            0,
            Some(&EscalationWrite::Resolve {
                id: e.id,
                resolved_at: ms(at),
                alerts: e.alerts.clone(),
                fingerprints: Vec::new(),
            }),
            std::slice::from_ref(&ev),
        )?;
        self.emit(Some(e), &ev, None);
        Ok(())
    }

    /// Acknowledges every unresolved escalation that carries the alert.
    pub fn ack_alert(
        &self,
        fingerprint: &str,
        by: &str,
        via: &str,
    ) -> Result<Vec<AckResult>, OnCallError> {
        let open = self
            .store
            .oncall_escalations(true, Some(fingerprint), 100)?;
        if open.is_empty() {
            return Err(OnCallError::NotFound(format!(
                "no escalation in progress for alert {fingerprint}"
            )));
        }
        open.iter().map(|e| self.ack(e.id, by, via)).collect()
    }

    fn link_key(&self) -> Result<Vec<u8>, OnCallError> {
        self.settings()
            .ack
            .as_ref()
            .map(|a| a.key.clone())
            .ok_or_else(|| OnCallError::NotFound("acknowledgement links are not configured".into()))
    }

    /// Checks a link without acting on it (a GET: link scanners prefetch).
    pub fn check_link(
        &self,
        token: &str,
    ) -> Result<(acklink::AckClaims, EscalationRow), OnCallError> {
        let claims = acklink::verify(&self.link_key()?, token, self.now())?;
        let e = self
            .store
            .oncall_escalation(claims.escalation)?
            .ok_or_else(|| OnCallError::NotFound(format!("no escalation {}", claims.escalation)))?;
        Ok((claims, e))
    }

    /// Acknowledges through a link, as the user it was sent to.
    pub fn ack_with_link(&self, token: &str) -> Result<AckResult, OnCallError> {
        let (claims, _) = self.check_link(token)?;
        self.ack(claims.escalation, &claims.user, "link")
    }

    // ------------------------------------------------------------ views

    /// An escalation with its steps, pages and events, as the API shows it.
    pub fn escalation_json(&self, e: &EscalationRow, detail: bool) -> Result<Value, OnCallError> {
        let state = if e.resolved_at.is_some() {
            "resolved"
        } else if e.acked_at.is_some() {
            "acknowledged"
        } else {
            "escalating"
        };
        let alerts: Value = serde_json::from_str(&e.alerts).unwrap_or(Value::Null);
        let t = |v: Option<i64>| v.map(|x| ts(x).to_string());
        let settings = self.settings();
        let next = if state == "escalating" {
            settings
                .oncall
                .policy(&e.policy)
                .and_then(|p| next_due(p, ts(e.triggered_at), self.now(), None))
                .map(|t| t.to_string())
        } else {
            None
        };
        let mut v = json!({
            "id": e.id,
            "state": state,
            "receiver": e.receiver,
            "group_key": e.group_key,
            "policy": e.policy,
            "triggered_at": ts(e.triggered_at).to_string(),
            "acked_at": t(e.acked_at),
            "acked_by": e.acked_by,
            "ack_via": e.ack_via,
            "resolved_at": t(e.resolved_at),
            "next_step_at": next,
            "alerts": alerts,
        });
        if detail {
            let steps: Vec<Value> = self
                .store
                .oncall_steps(e.id)?
                .iter()
                .map(|s| {
                    json!({
                        "round": s.round,
                        "step": s.step_index + 1,
                        "due_at": ts(s.due_at).to_string(),
                        "fired_at": ts(s.fired_at).to_string(),
                        "users": serde_json::from_str::<Value>(&s.users).unwrap_or(Value::Null),
                    })
                })
                .collect();
            let pages: Vec<Value> = self
                .store
                .oncall_pages(e.id)?
                .iter()
                .map(|p| {
                    json!({
                        "id": p.id,
                        "round": p.round,
                        "step": p.step_index.map(|s| s + 1),
                        "user": p.user_id,
                        "method": p.method_kind,
                        "state": p.state.as_str(),
                        "attempts": p.attempts,
                        "status_code": p.status_code,
                        "error": p.last_error,
                        "created_at": ts(p.created_at).to_string(),
                        "finished_at": t(p.finished_at),
                    })
                })
                .collect();
            let events: Vec<Value> = self
                .store
                .oncall_events(e.id)?
                .iter()
                .map(event_json)
                .collect();
            v["steps"] = Value::from(steps);
            v["pages"] = Value::from(pages);
            v["events"] = Value::from(events);
        }
        Ok(v)
    }

    /// Escalations, newest first (`open_only`: unresolved ones).
    pub fn escalations_json(
        &self,
        open_only: bool,
        fingerprint: Option<&str>,
    ) -> Result<Value, OnCallError> {
        let rows = self.store.oncall_escalations(open_only, fingerprint, 500)?;
        let list = rows
            .iter()
            .map(|e| self.escalation_json(e, false))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Value::from(list))
    }

    pub fn escalation(&self, id: i64) -> Result<EscalationRow, OnCallError> {
        self.store
            .oncall_escalation(id)?
            .ok_or_else(|| OnCallError::NotFound(format!("no escalation {id}")))
    }

    /// Past events of escalations that carried the alert (for an incident
    /// that links the alert after they happened).
    pub fn events_for_alert(&self, fingerprint: &str) -> Result<Vec<EscalationEvent>, OnCallError> {
        let mut out = Vec::new();
        for e in self
            .store
            .oncall_escalations(false, Some(fingerprint), 50)?
        {
            let fingerprints: Vec<String> = serde_json::from_str::<Vec<PageAlert>>(&e.alerts)
                .map(|a| a.into_iter().map(|a| a.fingerprint).collect())
                .unwrap_or_default();
            for ev in self.store.oncall_events(e.id)? {
                out.push(EscalationEvent {
                    escalation: Some(e.id),
                    kind: ev.kind.clone(),
                    at: ts(ev.at),
                    actor: ev.actor.clone(),
                    text: ev.text.clone(),
                    fingerprints: fingerprints.clone(),
                    incident: None,
                    data: serde_json::from_str(&ev.data).unwrap_or_default(),
                });
            }
        }
        out.sort_by_key(|e| e.at);
        Ok(out)
    }

    /// Deletes the escalations resolved longer than `oncall.retention` ago
    /// with their events and pages, when a pass is due (at the first call,
    /// then every [`RETENTION_INTERVAL`] of the clock). `None` when no pass
    /// was due or retention is off.
    pub fn retain_if_due(&self) -> Result<Option<RetentionCounts>, OnCallError> {
        let now = self.now();
        {
            let mut next = self.next_retention.lock();
            if next.is_some_and(|t| now < t) {
                return Ok(None);
            }
            *next = Some(now + RETENTION_INTERVAL);
        }
        let Some(keep) = self.settings().oncall.retention else {
            return Ok(None);
        };
        let cutoff = ms(now) - keep.as_millis() as i64;
        let c = self.store.oncall_delete_resolved_before(cutoff)?;
        let m = &self.metrics.retained;
        for (i, n) in [c.escalations, c.events, c.pages, c.steps, c.alert_links]
            .into_iter()
            .enumerate()
        {
            m[i].fetch_add(n, Ordering::Relaxed);
        }
        if c.escalations > 0 {
            tracing::info!(
                escalations = c.escalations,
                events = c.events,
                pages = c.pages,
                "on-call retention deleted resolved escalations"
            );
        }
        Ok(Some(c))
    }

    /// `/metrics` lines.
    pub fn render_metrics(&self, out: &mut String) {
        let m = &self.metrics;
        for (name, help, v) in [
            (
                "day2_oncall_notifications_total",
                "Alert-hub notifications handled by on-call.",
                &m.notifications,
            ),
            (
                "day2_oncall_steps_fired_total",
                "Escalation steps fired.",
                &m.steps,
            ),
            ("day2_oncall_pages_sent_total", "Pages delivered.", &m.sent),
            (
                "day2_oncall_pages_failed_total",
                "Pages that failed permanently.",
                &m.failed,
            ),
            (
                "day2_oncall_page_retries_total",
                "Page attempts that will be retried.",
                &m.retries,
            ),
            (
                "day2_oncall_acknowledgements_total",
                "Escalations acknowledged.",
                &m.acks,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        let name = "day2_oncall_retention_deleted_total";
        out.push_str(&format!(
            "# HELP {name} Rows deleted by on-call retention, by kind.\n# TYPE {name} counter\n"
        ));
        for (kind, v) in ["escalations", "events", "pages", "steps", "alert_links"]
            .iter()
            .zip(&m.retained)
        {
            out.push_str(&format!(
                "{name}{{kind=\"{kind}\"}} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
    }

    // ------------------------------------------------------------ loops

    /// Starts the escalation and page loops on the current runtime.
    pub fn start(self: &Arc<Self>) {
        let e = self.clone();
        tokio::spawn(async move { e.escalation_loop().await });
        let p = self.clone();
        tokio::spawn(async move { p.page_loop().await });
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.escalate_wake.notify_one();
        self.page_wake.notify_one();
    }

    fn wait_until(&self, t: Option<Timestamp>, cap: Duration) -> Duration {
        t.map(|t| {
            let d = ms(t) - ms(self.now());
            Duration::from_millis(d.clamp(0, cap.as_millis() as i64) as u64)
        })
        .unwrap_or(cap)
    }

    async fn escalation_loop(self: Arc<Self>) {
        while !self.stopped.load(Ordering::SeqCst) {
            let rt = self.clone();
            match tokio::task::spawn_blocking(move || rt.retain_if_due()).await {
                Ok(Err(e)) => tracing::error!(error = %e, "on-call retention failed"),
                Err(e) => tracing::error!(error = %e, "on-call retention task failed"),
                Ok(Ok(_)) => {}
            }
            let rt = self.clone();
            let next = match tokio::task::spawn_blocking(move || rt.escalate_once()).await {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "escalating failed; retrying");
                    Some(self.now() + SignedDuration::from_secs(1))
                }
                Err(e) => {
                    tracing::error!(error = %e, "escalation task failed");
                    None
                }
            };
            let wait = self.wait_until(next, Duration::from_secs(60));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.escalate_wake.notified() => {}
            }
        }
    }

    async fn page_loop(self: Arc<Self>) {
        while !self.stopped.load(Ordering::SeqCst) {
            let started = match self.spawn_due().await {
                Ok(tasks) => tasks.len(),
                Err(e) => {
                    tracing::error!(error = %e, "reading the page outbox failed");
                    0
                }
            };
            let store = self.store.clone();
            let next = tokio::task::spawn_blocking(move || store.oncall_pages_next_due())
                .await
                .ok()
                .and_then(Result::ok)
                .flatten()
                .map(ts);
            let mut wait = self.wait_until(next, Duration::from_secs(5));
            if started == 0 && wait.is_zero() {
                wait = Duration::from_millis(50);
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.page_wake.notified() => {}
            }
        }
    }
}

fn event_json(e: &OncallEvent) -> Value {
    json!({
        "at": ts(e.at).to_string(),
        "kind": e.kind,
        "actor": e.actor,
        "text": e.text,
        "data": serde_json::from_str::<Value>(&e.data).unwrap_or(Value::Null),
    })
}

impl InternalSink for OnCallRuntime {
    fn deliver(&self, n: &InternalNotification) -> Result<(), SinkError> {
        match self.handle_notification(n) {
            Ok(()) => Ok(()),
            Err(OnCallError::BadRequest(m)) => Err(SinkError::Permanent(m)),
            Err(e) => Err(SinkError::Retry(e.to_string())),
        }
    }
}
