//! Wiring of the alert hub into `day2 serve`: the hub's place in the app
//! (a cell a reload may fill or empty), the Alertmanager API v2 adapter, the
//! rule engine's alert sink, and `/metrics`.

use std::sync::Arc;

use day2_alerthub::{Hub, HubError, apiv2};
use day2_server::{AlertmanagerApi, AmError, AmFilter, MetricsSource};
use parking_lot::RwLock;

use crate::config::LoadedHub;

/// The running hub, if the config has an `alertmanager` section.
pub type HubCell = Arc<RwLock<Option<Arc<Hub>>>>;

/// Starts the hub, or applies a new configuration to the running one.
/// Without a section, a running hub is stopped.
pub fn apply(
    cell: &HubCell,
    state: Option<&day2_server::ServerState>,
    store: &Arc<day2_store::Store>,
    loaded: Option<LoadedHub>,
) -> anyhow::Result<()> {
    let Some(loaded) = loaded else {
        if let Some(h) = cell.write().take() {
            h.stop();
            if let Some(st) = state {
                *st.alertmanager.write() = None;
            }
            tracing::info!("alert hub stopped (no alertmanager section)");
        }
        return Ok(());
    };
    let existing = cell.read().clone();
    match existing {
        Some(h) => {
            h.apply(loaded.config, loaded.settings);
            tracing::info!("alert hub configuration applied");
        }
        None => {
            let hub = Hub::open(
                store.clone(),
                loaded.config,
                loaded.settings,
                day2_alerthub::hub::system_clock(),
            )?;
            hub.start();
            if let Some(st) = state {
                *st.alertmanager.write() = Some(Arc::new(HubApi(hub.clone())));
            }
            *cell.write() = Some(hub);
            tracing::info!("alert hub started");
        }
    }
    Ok(())
}

fn am(e: HubError) -> AmError {
    match e {
        HubError::BadRequest(m) => AmError::BadRequest(m),
        HubError::NotFound(m) => AmError::NotFound(m),
        HubError::Store(e) => AmError::Internal(e.to_string()),
    }
}

fn filter(f: &AmFilter) -> apiv2::AlertFilter {
    apiv2::AlertFilter {
        filter: f.filter.clone(),
        active: f.active,
        silenced: f.silenced,
        inhibited: f.inhibited,
        unprocessed: f.unprocessed,
        receiver: f.receiver.clone(),
    }
}

/// The hub behind `/api/v2`.
pub struct HubApi(pub Arc<Hub>);

impl AlertmanagerApi for HubApi {
    fn post_alerts(&self, body: &serde_json::Value) -> Result<(), AmError> {
        let alerts = apiv2::parse_postable_alerts(&self.0, body).map_err(am)?;
        self.0.ingest(alerts).map_err(am)
    }
    fn alerts(&self, f: &AmFilter) -> Result<serde_json::Value, AmError> {
        apiv2::alerts(&self.0, &filter(f)).map_err(am)
    }
    fn alert_groups(&self, f: &AmFilter) -> Result<serde_json::Value, AmError> {
        apiv2::alert_groups(&self.0, &filter(f)).map_err(am)
    }
    fn silences(&self, f: &[String]) -> Result<serde_json::Value, AmError> {
        apiv2::silences(&self.0, f).map_err(am)
    }
    fn silence(&self, id: &str) -> Result<serde_json::Value, AmError> {
        apiv2::silence(&self.0, id).map_err(am)
    }
    fn post_silence(&self, body: &serde_json::Value) -> Result<serde_json::Value, AmError> {
        apiv2::post_silence(&self.0, body).map_err(am)
    }
    fn expire_silence(&self, id: &str) -> Result<(), AmError> {
        self.0.expire_silence(id).map_err(am)
    }
    fn status(&self) -> serde_json::Value {
        apiv2::status(&self.0)
    }
    fn receivers(&self) -> serde_json::Value {
        apiv2::receivers(&self.0)
    }
    fn notifications(&self, fingerprint: Option<&str>) -> Result<serde_json::Value, AmError> {
        self.0.notifications_json(fingerprint).map_err(am)
    }
}

/// day2's own alerting rules feed the hub.
pub struct HubSink(pub HubCell);

fn ts(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

impl day2_rules::AlertSink for HubSink {
    fn send(&self, alerts: Vec<day2_rules::Notification>) {
        let Some(hub) = self.0.read().clone() else {
            return;
        };
        let now = hub.now();
        let converted: Vec<day2_alerthub::Alert> = alerts
            .into_iter()
            .map(|n| {
                let mut a = day2_alerthub::Alert::new(n.labels, now);
                a.annotations = n.annotations.into_iter().collect();
                a.starts_at = ts(n.starts_at_ms);
                a.ends_at = Some(ts(n.ends_at_ms));
                a.generator_url = n.generator_url;
                a
            })
            .filter(|a| a.validate().is_ok())
            .collect();
        if converted.is_empty() {
            return;
        }
        // must not block the rule evaluation
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn_blocking(move || {
            if let Err(e) = hub.ingest(converted) {
                tracing::error!(error = %e, "alerts from rules could not be stored");
            }
        });
    }
}

/// Hub figures for `/metrics`.
pub struct HubMetrics(pub HubCell);

impl MetricsSource for HubMetrics {
    fn render(&self, out: &mut String) {
        if let Some(h) = self.0.read().clone() {
            h.render_metrics(out);
        }
    }
}
