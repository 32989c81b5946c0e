//! The running alert hub: alerts and silences (in memory, persisted in the
//! state store), the dispatcher loop and the delivery worker.
//!
//! - [`Hub::ingest`] merges incoming alerts with the stored ones, persists
//!   them, then routes them into aggregation groups.
//! - The dispatcher loop flushes due groups (see [`crate::dispatch`]): the
//!   rendered notification lands in the outbox, in the same transaction as
//!   the notification log.
//! - The delivery worker sends due outbox entries, records every attempt,
//!   and retries with backoff (see [`crate::delivery`]).
//!
//! On restart ([`Hub::open`]) stored alerts and silences are loaded and the
//! groups rebuilt; the notification log keeps what was already notified from
//! being notified again, and pending outbox entries are sent.

use crate::alert::{Alert, Fingerprint};
use crate::config::{HubConfig, IntegrationConfig};
use crate::delivery::{self, Outcome, RetryPolicy};
use crate::dispatch::{Dispatcher, FlushCtx, ms};
use crate::egress::EgressPolicy;
use crate::internal::{
    DeliveryEvent, HubEvent, InternalNotification, InternalSink, SinkError, WebhookMessage,
};
use crate::matchers::Matchers;
use crate::silence::{Silence, SilenceState};
use day2_model::{Labels, MatchOp, Matcher};
use day2_store::{AlertRow, Attempt, OutboxEntry, OutboxState, SilenceRow, Store};
use jiff::Timestamp;
use parking_lot::{Mutex, RwLock};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Errors of hub operations, shaped for the API.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("state store: {0}")]
    Store(#[from] day2_store::Error),
}

/// Adds context to alerts as they are ingested, before they are stored and
/// routed (e.g. the latest deployment of the alert's service). Called with
/// the hub's ingest path, so it must be quick (no I/O).
pub trait AlertEnricher: Send + Sync {
    /// Adds or replaces annotations of `alert`.
    fn enrich(&self, alert: &mut Alert);
}

/// The clock; tests pass a controllable one.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(Timestamp::now)
}

/// Settings of the hub beside `alertmanager.yml`.
#[derive(Debug, Clone, Default)]
pub struct HubSettings {
    pub external_url: String,
    pub egress: EgressPolicy,
    /// The original `alertmanager.yml` text (shown, with secrets masked, by the status API).
    pub config_text: String,
    /// Notification templates (defaults plus the config's `templates:`);
    /// `None` uses the defaults only.
    pub templates: Option<crate::render::Templates>,
    /// day2's recurring, matcher-scoped maintenance windows (validated
    /// against the config's time intervals).
    pub maintenance_windows: Vec<crate::silence::MaintenanceWindow>,
    /// Receiver -> day2 features handling its notifications inside the
    /// process (see [`crate::internal`]); each sink must be registered with
    /// [`Hub::register_sink`].
    pub internal_receivers: BTreeMap<String, Vec<String>>,
}

impl HubSettings {
    /// Every internal receiver must exist in `alertmanager.yml`.
    pub fn check_internal_receivers(&self, cfg: &HubConfig) -> Result<(), String> {
        for (receiver, sinks) in &self.internal_receivers {
            if cfg.receiver(receiver).is_none() {
                return Err(format!(
                    "receiver {receiver:?} (used by {}) is not defined in alertmanager.yml",
                    sinks.join(", ")
                ));
            }
        }
        Ok(())
    }
}

struct Loaded {
    cfg: HubConfig,
    settings: HubSettings,
    templates: crate::render::Templates,
}

impl Loaded {
    fn new(cfg: HubConfig, settings: HubSettings) -> Loaded {
        let templates = settings
            .templates
            .clone()
            .unwrap_or_else(crate::render::Templates::defaults);
        Loaded {
            cfg,
            settings,
            templates,
        }
    }
}

struct Inner {
    alerts: HashMap<Fingerprint, Alert>,
    silences: Vec<Silence>,
    dispatcher: Dispatcher,
}

#[derive(Default)]
struct Metrics {
    alerts_received: AtomicU64,
    alerts_invalid: AtomicU64,
    notifications_enqueued: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    attempts: AtomicU64,
}

/// The alert hub.
pub struct Hub {
    store: Arc<Store>,
    loaded: RwLock<Arc<Loaded>>,
    inner: Mutex<Inner>,
    clock: Clock,
    started: Timestamp,
    retry: RetryPolicy,
    dispatch_wake: tokio::sync::Notify,
    delivery_wake: tokio::sync::Notify,
    inflight: Mutex<HashSet<i64>>,
    last_gc: Mutex<Option<Timestamp>>,
    stopped: AtomicBool,
    metrics: Metrics,
    /// day2 features taking notifications of internal receivers, by sink name.
    sinks: RwLock<HashMap<String, Arc<dyn InternalSink>>>,
    events: tokio::sync::broadcast::Sender<HubEvent>,
    /// day2 features adding context to incoming alerts, by name.
    enrichers: RwLock<Vec<(String, Arc<dyn AlertEnricher>)>>,
}

fn labels_to_json(l: &Labels) -> String {
    crate::notify::labels_json(l).to_string()
}

fn labels_from_json(s: &str) -> Labels {
    let m: BTreeMap<String, String> = serde_json::from_str(s).unwrap_or_default();
    Labels::from_pairs(m)
}

fn ts_ms(v: i64) -> Timestamp {
    Timestamp::from_millisecond(v).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn alert_row(a: &Alert) -> AlertRow {
    AlertRow {
        fingerprint: a.fingerprint().to_string(),
        labels: labels_to_json(&a.labels),
        annotations: crate::notify::map_json(&a.annotations).to_string(),
        starts_at: ms(a.starts_at),
        ends_at: a.ends_at.map(ms),
        updated_at: ms(a.updated_at),
        generator_url: a.generator_url.clone(),
        timeout: a.timeout,
    }
}

fn alert_from_row(r: &AlertRow) -> Alert {
    Alert {
        labels: labels_from_json(&r.labels),
        annotations: serde_json::from_str(&r.annotations).unwrap_or_default(),
        starts_at: ts_ms(r.starts_at),
        ends_at: r.ends_at.map(ts_ms),
        generator_url: r.generator_url.clone(),
        updated_at: ts_ms(r.updated_at),
        timeout: r.timeout,
    }
}

/// Alertmanager API matcher objects.
pub fn matchers_json(ms: &Matchers) -> Value {
    Value::Array(
        ms.iter()
            .map(|m| {
                json!({
                    "name": m.name,
                    "value": m.value,
                    "isRegex": matches!(m.op, MatchOp::Regex | MatchOp::NotRegex),
                    "isEqual": matches!(m.op, MatchOp::Equal | MatchOp::Regex),
                })
            })
            .collect(),
    )
}

/// Reads API matcher objects.
pub fn matchers_from_json(v: &Value) -> Result<Matchers, String> {
    let list = v.as_array().ok_or("matchers must be a list")?;
    let mut out = Vec::new();
    for m in list {
        let name = m["name"].as_str().ok_or("matcher without name")?;
        let value = m["value"].as_str().ok_or("matcher without value")?;
        let is_regex = m["isRegex"].as_bool().unwrap_or(false);
        let is_equal = m["isEqual"].as_bool().unwrap_or(true);
        let op = match (is_regex, is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        };
        out.push(Matcher::new(op, name, value).map_err(|e| e.to_string())?);
    }
    Ok(Matchers::new(out))
}

fn silence_row(s: &Silence) -> SilenceRow {
    SilenceRow {
        id: s.id.clone(),
        matchers: matchers_json(&s.matchers).to_string(),
        starts_at: ms(s.starts_at),
        ends_at: ms(s.ends_at),
        updated_at: ms(s.updated_at),
        created_by: s.created_by.clone(),
        comment: s.comment.clone(),
    }
}

fn silence_from_row(r: &SilenceRow) -> Option<Silence> {
    let v: Value = serde_json::from_str(&r.matchers).ok()?;
    Some(Silence {
        id: r.id.clone(),
        matchers: matchers_from_json(&v).ok()?,
        starts_at: ts_ms(r.starts_at),
        ends_at: ts_ms(r.ends_at),
        updated_at: ts_ms(r.updated_at),
        created_by: r.created_by.clone(),
        comment: r.comment.clone(),
    })
}

impl Hub {
    /// Opens the hub over a state store: loads alerts and silences, builds
    /// the groups. Call [`Hub::start`] to run the loops.
    pub fn open(
        store: Arc<Store>,
        cfg: HubConfig,
        settings: HubSettings,
        clock: Clock,
    ) -> Result<Arc<Hub>, HubError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let now = clock();
        let alerts: HashMap<Fingerprint, Alert> = store
            .load_alerts()?
            .iter()
            .map(alert_from_row)
            .map(|a| (a.fingerprint(), a))
            .collect();
        let silences: Vec<Silence> = store
            .load_silences()?
            .iter()
            .filter_map(silence_from_row)
            .collect();
        let mut dispatcher = Dispatcher::new();
        dispatcher.rebuild(&cfg, alerts.values(), now);
        tracing::info!(
            alerts = alerts.len(),
            silences = silences.len(),
            "alert hub state loaded"
        );
        Ok(Arc::new(Hub {
            store,
            loaded: RwLock::new(Arc::new(Loaded::new(cfg, settings))),
            inner: Mutex::new(Inner {
                alerts,
                silences,
                dispatcher,
            }),
            clock,
            started: now,
            retry: RetryPolicy::default(),
            dispatch_wake: tokio::sync::Notify::new(),
            delivery_wake: tokio::sync::Notify::new(),
            inflight: Mutex::new(HashSet::new()),
            last_gc: Mutex::new(None),
            stopped: AtomicBool::new(false),
            metrics: Metrics::default(),
            sinks: RwLock::new(HashMap::new()),
            events: tokio::sync::broadcast::channel(1024).0,
            enrichers: RwLock::new(Vec::new()),
        }))
    }

    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Attaches a day2 feature as the internal sink `name` (replacing a
    /// previous one); receivers name it in
    /// [`HubSettings::internal_receivers`]. Pending notifications for it
    /// are delivered from now on.
    pub fn register_sink(&self, name: &str, sink: Arc<dyn InternalSink>) {
        self.sinks.write().insert(name.to_string(), sink);
        self.delivery_wake.notify_one();
    }

    /// Attaches an enricher named `name` (replacing a previous one of that
    /// name); enrichers run in registration order on every ingested alert.
    pub fn register_enricher(&self, name: &str, enricher: Arc<dyn AlertEnricher>) {
        let mut list = self.enrichers.write();
        match list.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = enricher,
            None => list.push((name.to_string(), enricher)),
        }
    }

    /// Delivery events from now on (best-effort: a slow subscriber misses
    /// events rather than slowing delivery).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<HubEvent> {
        self.events.subscribe()
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn config(&self) -> HubConfig {
        self.loaded.read().cfg.clone()
    }

    /// Applies a new configuration: groups are rebuilt; the notification log
    /// keeps unchanged groups from notifying again.
    pub fn apply(&self, cfg: HubConfig, settings: HubSettings) {
        let now = self.now();
        {
            let mut inner = self.inner.lock();
            let Inner {
                alerts, dispatcher, ..
            } = &mut *inner;
            dispatcher.rebuild(&cfg, alerts.values(), now);
        }
        *self.loaded.write() = Arc::new(Loaded::new(cfg, settings));
        self.dispatch_wake.notify_one();
        self.delivery_wake.notify_one();
    }

    /// Merges, persists and routes alerts (already validated).
    pub fn ingest(&self, mut incoming: Vec<Alert>) -> Result<(), HubError> {
        let now = self.now();
        for (_, e) in self.enrichers.read().iter() {
            for a in &mut incoming {
                e.enrich(a);
            }
        }
        let loaded = self.loaded.read().clone();
        let mut inner = self.inner.lock();
        let mut merged = Vec::with_capacity(incoming.len());
        for mut a in incoming {
            a.updated_at = now;
            let fp = a.fingerprint();
            let m = match inner.alerts.get(&fp) {
                Some(old) => {
                    let old_end = old.ends_at.unwrap_or(Timestamp::MAX);
                    let new_end = a.ends_at.unwrap_or(Timestamp::MAX);
                    let overlap = (new_end > old.starts_at && new_end < old_end)
                        || (a.starts_at > old.starts_at && a.starts_at < old_end)
                        || (a.starts_at == old.starts_at);
                    if overlap { old.merge(&a, now) } else { a }
                }
                None => a,
            };
            merged.push(m);
        }
        let rows: Vec<AlertRow> = merged.iter().map(alert_row).collect();
        self.store.upsert_alerts(&rows)?;
        self.metrics
            .alerts_received
            .fetch_add(merged.len() as u64, Ordering::Relaxed);
        for a in merged {
            inner.dispatcher.insert(&loaded.cfg, &a, now);
            inner.alerts.insert(a.fingerprint(), a);
        }
        drop(inner);
        self.dispatch_wake.notify_one();
        Ok(())
    }

    /// Counts alerts refused by validation (for `/metrics`).
    pub fn count_invalid(&self, n: usize) {
        self.metrics
            .alerts_invalid
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Normalizes an alert as Alertmanager's API does: missing start is now
    /// (or the end), missing end is now + resolve_timeout.
    pub fn normalize(&self, a: &mut Alert) {
        let now = self.now();
        let rt = self.loaded.read().cfg.resolve_timeout();
        a.normalize(now, rt);
    }

    // ------------------------------------------------------------ silences

    pub fn silences(&self) -> Vec<Silence> {
        self.inner.lock().silences.clone()
    }

    pub fn silence(&self, id: &str) -> Option<Silence> {
        self.inner
            .lock()
            .silences
            .iter()
            .find(|s| s.id == id)
            .cloned()
    }

    /// Creates a silence (empty id) or updates one; returns its id. An
    /// expired silence is never changed: the update creates a new one.
    pub fn upsert_silence(&self, mut s: Silence) -> Result<String, HubError> {
        let now = self.now();
        s.validate().map_err(HubError::BadRequest)?;
        if s.ends_at <= now {
            return Err(HubError::BadRequest("end time can't be in the past".into()));
        }
        let mut inner = self.inner.lock();
        if !s.id.is_empty() {
            match inner.silences.iter().find(|x| x.id == s.id) {
                None => return Err(HubError::NotFound(format!("silence {} not found", s.id))),
                Some(old) if old.state(now) == SilenceState::Expired => s.id.clear(),
                Some(_) => {}
            }
        }
        if s.id.is_empty() {
            s.id = uuid::Uuid::new_v4().to_string();
        }
        if s.starts_at < now {
            s.starts_at = now;
        }
        s.updated_at = now;
        self.store.upsert_silence(&silence_row(&s))?;
        let id = s.id.clone();
        match inner.silences.iter_mut().find(|x| x.id == s.id) {
            Some(x) => *x = s,
            None => inner.silences.push(s),
        }
        drop(inner);
        self.dispatch_wake.notify_one();
        Ok(id)
    }

    /// Expires a silence now.
    pub fn expire_silence(&self, id: &str) -> Result<(), HubError> {
        let now = self.now();
        let mut inner = self.inner.lock();
        let Some(s) = inner.silences.iter_mut().find(|x| x.id == id) else {
            return Err(HubError::NotFound(format!("silence {id} not found")));
        };
        match s.state(now) {
            SilenceState::Expired => {
                return Err(HubError::BadRequest("silence already expired".into()));
            }
            SilenceState::Pending => {
                s.starts_at = now;
                s.ends_at = now;
            }
            SilenceState::Active => s.ends_at = now,
        }
        s.updated_at = now;
        let row = silence_row(s);
        self.store.upsert_silence(&row)?;
        drop(inner);
        self.dispatch_wake.notify_one();
        Ok(())
    }

    // ------------------------------------------------------------ loops

    /// Starts the dispatcher loop and the delivery worker on the current runtime.
    pub fn start(self: &Arc<Self>) {
        let d = self.clone();
        tokio::spawn(async move { d.dispatch_loop().await });
        let w = self.clone();
        tokio::spawn(async move { w.delivery_loop().await });
    }

    /// Stops the loops (in-flight deliveries finish or are retried after restart).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.dispatch_wake.notify_one();
        self.delivery_wake.notify_one();
    }

    /// Flushes due groups and collects garbage; returns when the next group is due.
    pub fn dispatch_once(&self) -> Result<Option<Timestamp>, HubError> {
        let now = self.now();
        let loaded = self.loaded.read().clone();
        let mut inner = self.inner.lock();
        let Inner {
            alerts,
            silences,
            dispatcher,
        } = &mut *inner;
        let ctx = FlushCtx {
            cfg: &loaded.cfg,
            alerts,
            silences,
            windows: &loaded.settings.maintenance_windows,
            store: &self.store,
            external_url: &loaded.settings.external_url,
            templates: &loaded.templates,
            internal: &loaded.settings.internal_receivers,
        };
        let out = dispatcher.flush_due(&ctx, now)?;
        let enqueued: usize = out.iter().map(|o| o.outbox.len()).sum();
        if enqueued > 0 {
            self.metrics
                .notifications_enqueued
                .fetch_add(enqueued as u64, Ordering::Relaxed);
            self.delivery_wake.notify_one();
        }
        // Resolved alerts no group holds any more are forgotten after a while.
        let keep_resolved = Duration::from_secs(15 * 60);
        let gone: Vec<Fingerprint> = alerts
            .values()
            .filter(|a| {
                a.ends_at
                    .is_some_and(|e| ms(e) + keep_resolved.as_millis() as i64 <= ms(now))
                    && !dispatcher.holds(a.fingerprint())
            })
            .map(|a| a.fingerprint())
            .collect();
        if !gone.is_empty() {
            let ids: Vec<String> = gone.iter().map(|f| f.to_string()).collect();
            self.store.delete_alerts(&ids)?;
            for f in gone {
                alerts.remove(&f);
            }
        }
        let next = dispatcher.next_due();
        drop(inner);
        self.retention(now)?;
        Ok(next)
    }

    /// How long finished notifications, attempts and notification-log
    /// entries are kept (Alertmanager keeps its log 120h).
    pub const RETENTION: Duration = Duration::from_secs(120 * 3600);

    /// Applies [`Hub::RETENTION`] to the store, at most once an hour.
    fn retention(&self, now: Timestamp) -> Result<(), HubError> {
        {
            let mut last = self.last_gc.lock();
            if last.is_some_and(|l| ms(now) - ms(l) < 3_600_000) {
                return Ok(());
            }
            *last = Some(now);
        }
        let n = self
            .store
            .gc(ms(now) - Self::RETENTION.as_millis() as i64)?;
        if n > 0 {
            tracing::info!(rows = n, "alert hub state retention applied");
        }
        Ok(())
    }

    async fn dispatch_loop(self: Arc<Self>) {
        while !self.stopped.load(Ordering::SeqCst) {
            let h = self.clone();
            let next = match tokio::task::spawn_blocking(move || h.dispatch_once()).await {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "dispatching alerts failed; retrying");
                    Some(self.now() + jiff::SignedDuration::from_secs(1))
                }
                Err(e) => {
                    tracing::error!(error = %e, "dispatcher task failed");
                    None
                }
            };
            let wait = next
                .map(|t| {
                    let d = t.as_millisecond() - self.now().as_millisecond();
                    Duration::from_millis(d.clamp(0, 60_000) as u64)
                })
                .unwrap_or(Duration::from_secs(60));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.dispatch_wake.notified() => {}
            }
        }
    }

    async fn delivery_loop(self: Arc<Self>) {
        while !self.stopped.load(Ordering::SeqCst) {
            let now = self.now();
            let store = self.store.clone();
            let due = tokio::task::spawn_blocking(move || store.outbox_due(ms(now), 64)).await;
            let due = match due {
                Ok(Ok(d)) => d,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "reading the outbox failed");
                    Vec::new()
                }
                Err(_) => Vec::new(),
            };
            let mut started = 0;
            for e in due {
                if !self.inflight.lock().insert(e.id) {
                    continue;
                }
                started += 1;
                let h = self.clone();
                tokio::spawn(async move {
                    let id = e.id;
                    h.deliver(e).await;
                    h.inflight.lock().remove(&id);
                    h.delivery_wake.notify_one();
                });
            }
            let store = self.store.clone();
            let next = tokio::task::spawn_blocking(move || store.outbox_next_due())
                .await
                .ok()
                .and_then(Result::ok)
                .flatten();
            let mut wait = match next {
                Some(t) => Duration::from_millis((t - ms(self.now())).clamp(0, 5_000) as u64),
                None => Duration::from_secs(5),
            };
            if started == 0 && wait.is_zero() {
                wait = Duration::from_millis(50); // all due entries are in flight
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.delivery_wake.notified() => {}
            }
        }
    }

    /// One delivery attempt of an outbox entry, recorded in the store.
    pub async fn deliver(&self, e: OutboxEntry) {
        let loaded = self.loaded.read().clone();
        let (outcome, latency) = match resolve_destination(&loaded.cfg, &e) {
            Ok(Destination::Internal(sink)) => self.hand_over(&sink, &e).await,
            Ok(Destination::Http(t)) => {
                delivery::post_json(&t, t.body(&e.payload), &loaded.settings.egress).await
            }
            Ok(Destination::Email(t)) => {
                crate::email::send(&t, &e.payload, &loaded.settings.egress).await
            }
            Err(msg) => (
                Outcome::Failed {
                    status: None,
                    error: msg,
                },
                Duration::ZERO,
            ),
        };
        let now = self.now();
        self.metrics.attempts.fetch_add(1, Ordering::Relaxed);
        let (outcome_name, status_code, event_error) = match &outcome {
            Outcome::Sent { status } => ("sent", Some(*status), String::new()),
            Outcome::Retry { status, error, .. } => ("retry", *status, error.clone()),
            Outcome::Failed { status, error } => ("failed", *status, error.clone()),
        };
        let event = DeliveryEvent {
            outbox_id: e.id,
            receiver: e.receiver.clone(),
            integration: e.integration.clone(),
            fingerprints: Vec::new(),
            outcome: outcome_name,
            status_code,
            error: event_error,
            at: now,
        };
        let (state, next, status, error) = match outcome {
            Outcome::Sent { status } => {
                self.metrics.sent.fetch_add(1, Ordering::Relaxed);
                (OutboxState::Sent, ms(now), Some(status), String::new())
            }
            Outcome::Failed { status, error } => {
                self.metrics.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(receiver = %e.receiver, integration = %e.integration, group = %e.group_key, %error, "notification failed permanently");
                (OutboxState::Failed, ms(now), status, error)
            }
            Outcome::Retry {
                status,
                error,
                after,
            } => {
                let backoff = self.retry.backoff(e.attempts, delivery::jitter());
                let wait = after.map(|a| a.max(backoff)).unwrap_or(backoff);
                let next = ms(now) + wait.as_millis() as i64;
                if next - e.created_at > self.retry.give_up_after.as_millis() as i64 {
                    self.metrics.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(receiver = %e.receiver, integration = %e.integration, %error, "notification given up after retrying");
                    (OutboxState::Failed, ms(now), status, error)
                } else {
                    self.metrics.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(receiver = %e.receiver, integration = %e.integration, %error, retry_in = ?wait, "notification will be retried");
                    (OutboxState::Pending, next, status, error)
                }
            }
        };
        let attempt = Attempt {
            outbox_id: e.id,
            receiver: e.receiver.clone(),
            integration: e.integration.clone(),
            group_key: e.group_key.clone(),
            payload_hash: day2_store::set_hash(std::slice::from_ref(&e.payload)),
            status_code: status,
            error,
            latency_ms: latency.as_millis() as i64,
            retry: e.attempts,
            at: ms(now),
        };
        let store = self.store.clone();
        let res =
            tokio::task::spawn_blocking(move || store.outbox_finish_attempt(&attempt, state, next))
                .await;
        if let Ok(Err(err)) = res {
            tracing::error!(error = %err, "recording a delivery attempt failed");
        }
        if self.events.receiver_count() > 0 {
            let fingerprints = serde_json::from_str::<WebhookMessage>(&e.payload)
                .map(|m| m.alerts.into_iter().map(|a| a.fingerprint).collect())
                .unwrap_or_default();
            let _ = self.events.send(HubEvent::Delivery(DeliveryEvent {
                fingerprints,
                ..event
            }));
        }
    }

    /// Hands an outbox entry to an internal sink (on a blocking thread: sinks
    /// write to the state store).
    async fn hand_over(&self, sink_name: &str, e: &OutboxEntry) -> (Outcome, Duration) {
        let Some(sink) = self.sinks.read().get(sink_name).cloned() else {
            let error = format!("day2 feature {sink_name:?} is not running");
            return (
                Outcome::Retry {
                    status: None,
                    error,
                    after: None,
                },
                Duration::ZERO,
            );
        };
        let message: WebhookMessage = match serde_json::from_str(&e.payload) {
            Ok(m) => m,
            Err(err) => {
                let error = format!("stored notification is not a webhook message: {err}");
                return (
                    Outcome::Failed {
                        status: None,
                        error,
                    },
                    Duration::ZERO,
                );
            }
        };
        let n = InternalNotification {
            outbox_id: e.id,
            created_at: ts_ms(e.created_at),
            receiver: e.receiver.clone(),
            message,
        };
        let started = std::time::Instant::now();
        let res = tokio::task::spawn_blocking(move || sink.deliver(&n)).await;
        let outcome = match res {
            Ok(Ok(())) => Outcome::Sent { status: 200 },
            Ok(Err(SinkError::Retry(error))) => Outcome::Retry {
                status: None,
                error,
                after: None,
            },
            Ok(Err(SinkError::Permanent(error))) => Outcome::Failed {
                status: None,
                error,
            },
            Err(join) => Outcome::Retry {
                status: None,
                error: format!("day2 feature {sink_name:?} panicked: {join}"),
                after: None,
            },
        };
        (outcome, started.elapsed())
    }

    // ------------------------------------------------------------ views

    /// `/metrics` lines.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let m = &self.metrics;
        let (alerts, silences, groups) = {
            let inner = self.inner.lock();
            (
                inner.alerts.len(),
                inner
                    .silences
                    .iter()
                    .filter(|s| s.state(self.now()) == SilenceState::Active)
                    .count(),
                inner.dispatcher.groups().count(),
            )
        };
        let counters = [
            (
                "day2_alerthub_alerts_received_total",
                "Alerts received (API v2 and own rules).",
                m.alerts_received.load(Ordering::Relaxed),
            ),
            (
                "day2_alerthub_alerts_invalid_total",
                "Alerts refused by validation.",
                m.alerts_invalid.load(Ordering::Relaxed),
            ),
            (
                "day2_alerthub_notifications_enqueued_total",
                "Notifications written to the outbox.",
                m.notifications_enqueued.load(Ordering::Relaxed),
            ),
            (
                "day2_alerthub_notifications_sent_total",
                "Notifications delivered (2xx; SMTP 2xx for email).",
                m.sent.load(Ordering::Relaxed),
            ),
            (
                "day2_alerthub_notifications_failed_total",
                "Notifications failed permanently (4xx, SMTP 5xx, refused egress, gave up).",
                m.failed.load(Ordering::Relaxed),
            ),
            (
                "day2_alerthub_notification_retries_total",
                "Delivery attempts scheduled for retry (5xx, 429, SMTP 4xx, timeouts, connection errors).",
                m.retries.load(Ordering::Relaxed),
            ),
            (
                "day2_alerthub_delivery_attempts_total",
                "Delivery attempts made.",
                m.attempts.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        for (name, help, v) in [
            ("day2_alerthub_alerts", "Alerts held.", alerts),
            (
                "day2_alerthub_silences_active",
                "Active silences.",
                silences,
            ),
            (
                "day2_alerthub_aggregation_groups",
                "Aggregation groups.",
                groups,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
    }

    /// A snapshot for the API: alerts, silences and the config.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.inner.lock();
        Snapshot {
            alerts: inner.alerts.clone(),
            silences: inner.silences.clone(),
            windows: self.loaded.read().settings.maintenance_windows.clone(),
            cfg: self.loaded.read().cfg.clone(),
            now: self.now(),
        }
    }

    pub fn settings(&self) -> HubSettings {
        self.loaded.read().settings.clone()
    }

    /// The delivery audit as JSON: who was notified about an alert (or
    /// about anything), when, and did it work.
    pub fn notifications_json(&self, fingerprint: Option<&str>) -> Result<Value, HubError> {
        let list = self.store.notifications(fingerprint, 200)?;
        let t = |v: i64| crate::notify::fmt_ts(ts_ms(v));
        Ok(Value::Array(
            list.into_iter()
                .map(|(e, attempts)| {
                    json!({
                        "id": e.id,
                        "receiver": e.receiver,
                        "integration": e.integration,
                        "groupKey": e.group_key,
                        "createdAt": t(e.created_at),
                        "state": e.state.as_str(),
                        "lastError": e.last_error,
                        "attempts": attempts.iter().map(|a| json!({
                            "at": t(a.at),
                            "statusCode": a.status_code,
                            "error": a.error,
                            "latencyMs": a.latency_ms,
                            "retry": a.retry,
                            "payloadHash": a.payload_hash,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        ))
    }

    pub fn started(&self) -> Timestamp {
        self.started
    }
}

/// A consistent view for API answers.
pub struct Snapshot {
    pub alerts: HashMap<Fingerprint, Alert>,
    pub silences: Vec<Silence>,
    pub windows: Vec<crate::silence::MaintenanceWindow>,
    pub cfg: HubConfig,
    pub now: Timestamp,
}

fn read_secret_file(path: &str, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|err| format!("reading {what}: {err}"))
}

/// Credentials from an `http_config`.
fn http_auth(h: Option<&crate::config::HttpConfig>) -> Result<delivery::Auth, String> {
    let Some(h) = h else {
        return Ok(delivery::Auth::None);
    };
    if let Some(b) = &h.basic_auth {
        let user = match (&b.username, &b.username_file) {
            (Some(u), _) => u.clone(),
            (None, Some(f)) => read_secret_file(f, "basic_auth.username_file")?,
            _ => String::new(),
        };
        let pass = match (&b.password, &b.password_file) {
            (Some(p), _) => p.expose().to_string(),
            (None, Some(f)) => read_secret_file(f, "basic_auth.password_file")?,
            _ => String::new(),
        };
        return Ok(delivery::Auth::Basic(user, pass));
    }
    if let Some(a) = &h.authorization {
        let kind = a.r#type.clone().unwrap_or_else(|| "Bearer".into());
        let cred = match (&a.credentials, &a.credentials_file) {
            (Some(c), _) => c.expose().to_string(),
            (None, Some(f)) => read_secret_file(f, "authorization.credentials_file")?,
            _ => String::new(),
        };
        return Ok(delivery::Auth::Header(format!("{kind} {cred}")));
    }
    let bearer = match (&h.bearer_token, &h.bearer_token_file) {
        (Some(t), _) => Some(t.expose().to_string()),
        (None, Some(f)) => Some(read_secret_file(f, "bearer_token_file")?),
        _ => None,
    };
    Ok(bearer
        .map(|t| delivery::Auth::Header(format!("Bearer {t}")))
        .unwrap_or_default())
}

fn url_of(
    url: Option<&crate::config::SecretUrl>,
    file: Option<&String>,
    what: &str,
) -> Result<String, String> {
    match (url, file) {
        (Some(u), _) => Ok(u.expose().to_string()),
        (None, Some(f)) => read_secret_file(f, what),
        (None, None) => Err(format!("no {what} configured")),
    }
}

/// Where an outbox entry goes.
enum Destination {
    Http(delivery::Target),
    Email(crate::email::EmailTarget),
    /// A day2 feature, by sink name.
    Internal(String),
}

/// Email entries go to their smarthost, the others over HTTP; from the
/// current config (secrets are read at send time).
fn resolve_destination(cfg: &HubConfig, e: &OutboxEntry) -> Result<Destination, String> {
    if let Some(sink) = crate::internal::sink_of(&e.integration) {
        return Ok(Destination::Internal(sink.to_string()));
    }
    let email = cfg
        .receiver(&e.receiver)
        .and_then(|r| {
            r.integrations()
                .into_iter()
                .find(|i| i.id() == e.integration)
        })
        .and_then(|i| match i.config {
            IntegrationConfig::Email(c) => Some(c),
            _ => None,
        });
    match email {
        Some(c) => crate::email::EmailTarget::from_config(c)
            .map(Destination::Email)
            .map_err(|err| err.to_string()),
        None => resolve_target(cfg, e).map(Destination::Http),
    }
}

/// Where an outbox entry goes, from the current config (secrets are read
/// at send time and never stored in the outbox).
fn resolve_target(cfg: &HubConfig, e: &OutboxEntry) -> Result<delivery::Target, String> {
    let r = cfg
        .receiver(&e.receiver)
        .ok_or_else(|| format!("receiver {:?} is no longer configured", e.receiver))?;
    let integ = r
        .integrations()
        .into_iter()
        .find(|i| i.id() == e.integration)
        .ok_or_else(|| format!("integration {} is no longer configured", e.integration))?;
    let timeout = |t: Option<Duration>| {
        t.filter(|t| !t.is_zero())
            .unwrap_or(Duration::from_secs(10))
    };
    let (url, timeout, http) = match integ.config {
        IntegrationConfig::Webhook(w) => (
            url_of(w.url.as_ref(), w.url_file.as_ref(), "url")?,
            timeout(w.timeout),
            w.http_config.as_ref(),
        ),
        IntegrationConfig::Slack(c) => (
            url_of(c.api_url.as_ref(), c.api_url_file.as_ref(), "api_url")?,
            timeout(c.timeout),
            c.http_config.as_ref(),
        ),
        IntegrationConfig::MsTeams(c) => (
            url_of(
                c.webhook_url.as_ref(),
                c.webhook_url_file.as_ref(),
                "webhook_url",
            )?,
            timeout(None),
            c.http_config.as_ref(),
        ),
        IntegrationConfig::Pagerduty(c) => (
            c.url
                .as_ref()
                .map(|u| u.as_str().to_string())
                .unwrap_or_else(|| "https://events.pagerduty.com/v2/enqueue".into()),
            timeout(c.timeout),
            c.http_config.as_ref(),
        ),
        other => return Err(format!("integration {} is not supported yet", other.name())),
    };
    let mut secret_fields = Vec::new();
    if let IntegrationConfig::Pagerduty(c) = integ.config {
        let key = match (&c.routing_key, &c.routing_key_file) {
            (Some(k), _) => k.expose().to_string(),
            (None, Some(f)) => read_secret_file(f, "routing_key_file")?,
            _ => return Err("PagerDuty without routing_key".into()),
        };
        secret_fields.push(("routing_key".to_string(), key));
    }
    let mut auth = http_auth(http)?;
    if let IntegrationConfig::Slack(c) = integ.config {
        let token = match (&c.app_token, &c.app_token_file) {
            (Some(t), _) => Some(t.expose().to_string()),
            (None, Some(f)) => Some(read_secret_file(f, "app_token_file")?),
            _ => None,
        };
        if let Some(t) = token {
            auth = delivery::Auth::Header(format!("Bearer {t}"));
        }
    }
    Ok(delivery::Target {
        url,
        timeout,
        auth,
        follow_redirects: http.is_none_or(|h| h.follow_redirects),
        secret_fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(receiver: &str, integration: &str) -> OutboxEntry {
        OutboxEntry {
            id: 1,
            receiver: receiver.into(),
            integration: integration.into(),
            group_key: "g".into(),
            payload: "{}".into(),
            created_at: 0,
            next_attempt: 0,
            attempts: 0,
            state: OutboxState::Pending,
            last_error: String::new(),
        }
    }

    #[test]
    fn targets_carry_credentials_read_at_send_time() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let cfg = crate::config::load_str(&format!(
            r#"
route: {{receiver: a}}
receivers:
  - name: a
    webhook_configs:
      - url: http://example.com/a
        http_config:
          basic_auth: {{username: u, password_file: {}}}
      - url: http://example.com/b
        timeout: 3s
        http_config:
          authorization: {{credentials: tok}}
          follow_redirects: false
    slack_configs:
      - api_url: https://slack.example/hook
"#,
            pw.display()
        ))
        .unwrap();
        let t = resolve_target(&cfg, &entry("a", "webhook[0]")).unwrap();
        assert!(matches!(&t.auth, delivery::Auth::Basic(u, p) if u == "u" && p == "s3cret"));
        assert!(t.follow_redirects);
        assert!(!format!("{t:?}").contains("s3cret"));
        let t = resolve_target(&cfg, &entry("a", "webhook[1]")).unwrap();
        assert!(matches!(&t.auth, delivery::Auth::Header(h) if h == "Bearer tok"));
        assert_eq!(t.timeout, Duration::from_secs(3));
        assert!(!t.follow_redirects);
        let t = resolve_target(&cfg, &entry("a", "slack[0]")).unwrap();
        assert_eq!(t.url, "https://slack.example/hook");
        assert!(resolve_target(&cfg, &entry("gone", "webhook[0]")).is_err());
        assert!(resolve_target(&cfg, &entry("a", "webhook[5]")).is_err());
    }

    fn frozen(t: &str) -> (Clock, Arc<Mutex<Timestamp>>) {
        let now = Arc::new(Mutex::new(t.parse::<Timestamp>().unwrap()));
        let n = now.clone();
        (Arc::new(move || *n.lock()), now)
    }

    const CFG: &str = r#"
route: {receiver: a, group_by: [alertname], group_wait: 30s, group_interval: 5m, repeat_interval: 4h}
receivers:
  - name: a
    webhook_configs: [{url: "http://example.com/hook"}]
"#;

    #[test]
    fn restart_keeps_alerts_silences_and_what_was_notified() {
        let dir = tempfile::tempdir().unwrap();
        let (clock, now) = frozen("2026-01-01T00:00:00Z");
        let open = |clock: &Clock| {
            let store = Arc::new(Store::open_dir(dir.path()).unwrap());
            Hub::open(
                store,
                crate::config::load_str(CFG).unwrap(),
                HubSettings::default(),
                clock.clone(),
            )
            .unwrap()
        };
        let hub = open(&clock);
        let mut a = Alert::new(Labels::from_pairs([("alertname", "Down")]), hub.now());
        hub.normalize(&mut a);
        hub.ingest(vec![a.clone()]).unwrap();
        let sid = hub
            .upsert_silence(Silence {
                id: String::new(),
                matchers: Matchers::parse(r#"{alertname="Other"}"#).unwrap(),
                starts_at: hub.now(),
                ends_at: "2026-01-02T00:00:00Z".parse().unwrap(),
                updated_at: hub.now(),
                created_by: "t".into(),
                comment: String::new(),
            })
            .unwrap();
        // before group_wait: nothing; at group_wait: one notification
        assert!(hub.store().outbox_list(10).unwrap().is_empty());
        *now.lock() = "2026-01-01T00:00:30Z".parse().unwrap();
        hub.dispatch_once().unwrap();
        assert_eq!(hub.store().outbox_list(10).unwrap().len(), 1);
        drop(hub);

        // restart: state is back, and the notification is not made again
        *now.lock() = "2026-01-01T00:01:00Z".parse().unwrap();
        let hub = open(&clock);
        assert!(hub.silence(&sid).is_some());
        assert_eq!(hub.snapshot().alerts.len(), 1);
        hub.dispatch_once().unwrap();
        assert_eq!(hub.store().outbox_list(10).unwrap().len(), 1);

        // the resolve after restart is notified
        let mut r = a.clone();
        r.ends_at = Some(hub.now());
        r.timeout = false;
        hub.ingest(vec![r]).unwrap();
        *now.lock() = "2026-01-01T00:06:00Z".parse().unwrap();
        hub.dispatch_once().unwrap();
        let list = hub.store().outbox_list(10).unwrap();
        assert_eq!(list.len(), 2);
        let p: Value = serde_json::from_str(&list[0].payload).unwrap();
        assert_eq!(p["status"], "resolved");
    }

    /// A sink that records what it took and fails the first `fail` times.
    struct Recorder {
        got: Mutex<Vec<InternalNotification>>,
        fail: Mutex<u32>,
    }

    impl InternalSink for Recorder {
        fn deliver(&self, n: &InternalNotification) -> Result<(), SinkError> {
            let mut fail = self.fail.lock();
            if *fail > 0 {
                *fail -= 1;
                return Err(SinkError::Retry("busy".into()));
            }
            self.got.lock().push(n.clone());
            Ok(())
        }
    }

    #[tokio::test]
    async fn internal_sinks_take_notifications_through_the_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let (clock, now) = frozen("2026-01-01T00:00:00Z");
        let store = Arc::new(Store::open_dir(dir.path()).unwrap());
        let settings = HubSettings {
            internal_receivers: [("a".to_string(), vec!["oncall".to_string()])].into(),
            ..HubSettings::default()
        };
        let cfg = crate::config::load_str(CFG).unwrap();
        settings.check_internal_receivers(&cfg).unwrap();
        let hub = Hub::open(store, cfg, settings, clock).unwrap();
        let mut events = hub.subscribe();
        let mut a = Alert::new(Labels::from_pairs([("alertname", "Down")]), hub.now());
        hub.normalize(&mut a);
        hub.ingest(vec![a.clone()]).unwrap();
        *now.lock() = "2026-01-01T00:00:30Z".parse().unwrap();
        hub.dispatch_once().unwrap();
        let entry = |hub: &Hub| {
            hub.store()
                .outbox_list(10)
                .unwrap()
                .into_iter()
                .find(|e| e.integration == "day2[oncall]")
                .unwrap()
        };
        // not registered yet: retried, not lost
        hub.deliver(entry(&hub)).await;
        let e = entry(&hub);
        assert_eq!(e.state, OutboxState::Pending);
        assert!(e.last_error.contains("not running"), "{}", e.last_error);
        let HubEvent::Delivery(ev) = events.recv().await.unwrap();
        assert_eq!((ev.outcome, ev.receiver.as_str()), ("retry", "a"));
        assert_eq!(ev.fingerprints, vec![a.fingerprint().to_string()]);

        let rec = Arc::new(Recorder {
            got: Mutex::new(Vec::new()),
            fail: Mutex::new(1),
        });
        hub.register_sink("oncall", rec.clone());
        hub.deliver(entry(&hub)).await;
        assert_eq!(
            entry(&hub).state,
            OutboxState::Pending,
            "the sink asked for a retry"
        );
        hub.deliver(entry(&hub)).await;
        let e = entry(&hub);
        assert_eq!(e.state, OutboxState::Sent);
        let got = rec.got.lock().clone();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].outbox_id, e.id);
        assert_eq!(got[0].receiver, "a");
        assert_eq!(got[0].created_at, "2026-01-01T00:00:30Z".parse().unwrap());
        assert_eq!(
            got[0].message.alerts[0].fingerprint,
            a.fingerprint().to_string()
        );
        assert!(got[0].message.alerts[0].is_firing());

        // a settings check names a receiver that does not exist
        let bad = HubSettings {
            internal_receivers: [("nope".to_string(), vec!["oncall".to_string()])].into(),
            ..HubSettings::default()
        };
        let err = bad.check_internal_receivers(&hub.config()).unwrap_err();
        assert!(err.contains("\"nope\"") && err.contains("oncall"), "{err}");
    }

    struct Tagger;

    impl AlertEnricher for Tagger {
        fn enrich(&self, a: &mut Alert) {
            if let Some(s) = a.labels.get("service") {
                let v = format!("latest of {s}");
                a.annotations.insert("day2_deployment".into(), v);
            }
        }
    }

    #[test]
    fn enrichers_annotate_alerts_before_they_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (clock, _) = frozen("2026-01-01T00:00:00Z");
        let store = Arc::new(Store::open_dir(dir.path()).unwrap());
        let cfg = crate::config::load_str(CFG).unwrap();
        let hub = Hub::open(store.clone(), cfg, HubSettings::default(), clock).unwrap();
        hub.register_enricher("deploy", Arc::new(Tagger));
        // registering the same name again replaces it (a hub restart re-registers)
        hub.register_enricher("deploy", Arc::new(Tagger));
        let mut a = Alert::new(
            Labels::from_pairs([("alertname", "Down"), ("service", "api")]),
            hub.now(),
        );
        a.annotations.insert("summary".into(), "down".into());
        let b = Alert::new(Labels::from_pairs([("alertname", "Other")]), hub.now());
        hub.ingest(vec![a.clone(), b.clone()]).unwrap();
        let stored: HashMap<String, BTreeMap<String, String>> = store
            .load_alerts()
            .unwrap()
            .iter()
            .map(|r| (r.fingerprint.clone(), alert_from_row(r).annotations))
            .collect();
        let ann = &stored[&a.fingerprint().to_string()];
        assert_eq!(ann["day2_deployment"], "latest of api");
        assert_eq!(ann["summary"], "down");
        assert!(!stored[&b.fingerprint().to_string()].contains_key("day2_deployment"));
        assert_eq!(hub.enrichers.read().len(), 1);
    }

    #[test]
    fn silence_rows_roundtrip() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let s = Silence {
            id: "x".into(),
            matchers: Matchers::parse(r#"{a="1", b=~"x|y", c!="2", d!~"z"}"#).unwrap(),
            starts_at: now,
            ends_at: now,
            updated_at: now,
            created_by: "me".into(),
            comment: "c".into(),
        };
        let back = silence_from_row(&silence_row(&s)).unwrap();
        assert_eq!(back.matchers.to_string(), s.matchers.to_string());
        assert_eq!(back.ends_at, s.ends_at);
    }
}
