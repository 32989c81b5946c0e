//! On-call and incidents together inside `day2 serve`: both runtimes over
//! the shared state store, attached to the alert hub as internal sinks
//! (`oncall`, `incident`) whenever the hub (re)starts, and connected to each
//! other: pages and acknowledgements land on incident timelines (live, and
//! imported when an incident links an alert later), incident communications
//! go out through on-call's page outbox.

use std::sync::{Arc, Weak};

use day2_alerthub::Hub;
use day2_incident::runtime::{AlertHistory, CommsOutlet, ExternalEntry, IncidentRuntime};
use day2_incident::{Actor, EntryKind, Incident, RenderedMessage};
use day2_oncall::runtime::{EscalationEvent, EscalationObserver, OnCallRuntime};
use day2_server::{MetricsSource, ServerState};
use day2_store::Store;
use parking_lot::Mutex;

use crate::config::{Day2Config, LoadedHub};
use crate::hubwire::HubCell;

/// Both checks of the people sections (called by `Day2Config::parse`).
pub fn validate(cfg: &Day2Config) -> Result<(), (String, String)> {
    crate::oncallwire::validate(cfg)?;
    crate::incidentwire::validate(cfg)
}

/// The incident timeline entry of an escalation event: pages sent or
/// failed, acknowledgements. Other events stay in the escalation's log.
pub fn timeline_entry(e: &EscalationEvent) -> Option<ExternalEntry> {
    let kind = match e.kind.as_str() {
        "page_sent" | "page_failed" => EntryKind::NotificationSent,
        "acknowledged" => EntryKind::Acknowledged,
        _ => return None,
    };
    let actor = if kind == EntryKind::Acknowledged {
        Actor::user(e.actor.clone())
    } else {
        Actor::system("oncall")
    };
    let mut data = e.data.clone();
    if let Some(id) = e.escalation {
        data.insert("escalation".into(), serde_json::Value::from(id));
    }
    Some(ExternalEntry {
        kind,
        at: e.at,
        actor,
        text: e.text.clone(),
        data,
    })
}

/// Feeds escalation events to incident timelines.
struct TimelineFeed(Weak<IncidentRuntime>);

impl EscalationObserver for TimelineFeed {
    fn observe(&self, e: &EscalationEvent) {
        let (Some(rt), Some(entry)) = (self.0.upgrade(), timeline_entry(e)) else {
            return;
        };
        let e = e.clone();
        let record = move || {
            let res = match &e.incident {
                Some(id) => rt.record_for_incident(id, &entry).map(|_| ()),
                None => rt.record_for_alerts(&e.fingerprints, &entry).map(|_| ()),
            };
            if let Err(err) = res {
                tracing::warn!(error = %err, event = %e.kind, "recording an escalation event on incidents failed");
            }
        };
        // observers are called from async tasks too: keep SQLite off them
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(record);
            }
            Err(_) => record(),
        }
    }
}

/// What happened to an alert before an incident linked it: on-call's
/// pages and acknowledgements, the alert hub's deliveries and the
/// remediation runs it asked for.
struct History {
    oncall: Weak<OnCallRuntime>,
    store: Arc<Store>,
}

impl AlertHistory for History {
    fn history(&self, fingerprint: &str) -> Vec<ExternalEntry> {
        let mut out: Vec<ExternalEntry> = Vec::new();
        if let Some(oc) = self.oncall.upgrade() {
            match oc.events_for_alert(fingerprint) {
                Ok(evs) => out.extend(evs.iter().filter_map(timeline_entry)),
                Err(e) => tracing::warn!(error = %e, "reading escalation history failed"),
            }
        }
        match self.store.notifications(Some(fingerprint), 200) {
            Ok(list) => {
                for (n, attempts) in list {
                    let Some(last) = attempts.last() else {
                        continue;
                    };
                    let outcome = match n.state {
                        day2_store::OutboxState::Sent => "sent",
                        day2_store::OutboxState::Failed => "failed",
                        day2_store::OutboxState::Pending => continue,
                    };
                    let ev = day2_alerthub::internal::DeliveryEvent {
                        outbox_id: n.id,
                        receiver: n.receiver.clone(),
                        integration: n.integration.clone(),
                        fingerprints: Vec::new(),
                        outcome,
                        status_code: last.status_code,
                        error: last.error.clone(),
                        at: jiff::Timestamp::from_millisecond(last.at).unwrap_or_default(),
                    };
                    out.extend(crate::incidentwire::delivery_entry(&ev));
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading delivery history failed"),
        }
        out.extend(crate::loopwire::run_history(&self.store, fingerprint));
        out.sort_by_key(|e| e.at);
        out
    }
}

/// Incident communications go out as on-call messages.
struct Outlet(Weak<OnCallRuntime>);

impl CommsOutlet for Outlet {
    fn send(&self, inc: &Incident, m: &RenderedMessage) -> Result<Vec<String>, String> {
        let oc = self.0.upgrade().ok_or("on-call is shutting down")?;
        let title = m
            .subject
            .clone()
            .unwrap_or_else(|| format!("[{}] {}: {}", inc.severity, inc.id, inc.title));
        oc.send_message(&m.notify, &m.channel, &title, &m.body, Some(&inc.id))
            .map_err(|e| e.to_string())
    }
}

/// On-call and incidents in the running server.
pub struct People {
    pub oncall: Arc<OnCallRuntime>,
    pub incidents: Arc<IncidentRuntime>,
    /// The hub the sinks were last attached to.
    attached: Mutex<Weak<Hub>>,
}

impl People {
    pub fn new(store: Arc<Store>) -> People {
        let clock = day2_alerthub::hub::system_clock();
        let oncall = OnCallRuntime::new(store.clone(), Default::default(), clock.clone());
        let incidents = IncidentRuntime::new(store.clone(), Default::default(), clock);
        oncall.set_observer(Arc::new(TimelineFeed(Arc::downgrade(&incidents))));
        incidents.set_history(Arc::new(History {
            oncall: Arc::downgrade(&oncall),
            store,
        }));
        incidents.set_outlet(Arc::new(Outlet(Arc::downgrade(&oncall))));
        People {
            oncall,
            incidents,
            attached: Mutex::new(Weak::new()),
        }
    }

    /// Starts the escalation and page loops.
    pub fn start(&self) {
        self.oncall.start();
    }

    pub fn stop(&self) {
        self.oncall.stop();
    }

    /// Applies a validated configuration: settings, the APIs, and the sinks
    /// on the running hub (registered again when the hub was restarted).
    pub fn apply(
        &self,
        cfg: &Day2Config,
        loaded: Option<&LoadedHub>,
        hub: &HubCell,
        state: Option<&ServerState>,
    ) {
        match crate::oncallwire::settings(cfg, loaded) {
            Ok(s) => self.oncall.apply(s),
            Err(e) => tracing::error!(error = %format!("{e:#}"), "on-call settings kept"),
        }
        match crate::incidentwire::settings(cfg, loaded) {
            Ok(s) => self.incidents.apply(s),
            Err(e) => tracing::error!(error = %format!("{e:#}"), "incident settings kept"),
        }
        if let Some(st) = state {
            *st.oncall.write() = cfg.oncall.as_ref().map(|_| {
                Arc::new(crate::oncallwire::OnCallApiImpl(self.oncall.clone()))
                    as Arc<dyn day2_server::OnCallApi>
            });
            *st.incidents.write() = cfg.incidents.as_ref().map(|_| {
                Arc::new(crate::incidentwire::IncidentApiImpl {
                    runtime: self.incidents.clone(),
                    oncall: self.oncall.clone(),
                    hub: hub.clone(),
                }) as Arc<dyn day2_server::IncidentApi>
            });
        }
        let Some(h) = hub.read().clone() else {
            return;
        };
        h.register_sink("oncall", self.oncall.clone());
        h.register_sink("incident", self.incidents.clone());
        let mut attached = self.attached.lock();
        if attached.upgrade().is_none_or(|a| !Arc::ptr_eq(&a, &h)) {
            crate::incidentwire::follow_deliveries(&h, self.incidents.clone());
            *attached = Arc::downgrade(&h);
        }
    }
}

impl MetricsSource for People {
    fn render(&self, out: &mut String) {
        self.oncall.render_metrics(out);
    }
}
