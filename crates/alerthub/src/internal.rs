//! Receivers handled inside day2 (on-call escalation, incidents,
//! remediation): how the alert hub hands their notifications over, and the
//! events it publishes about deliveries.
//!
//! A feature attaches to receivers of `alertmanager.yml` by name
//! ([`crate::HubSettings::internal_receivers`]). When a group of such a
//! receiver flushes, the notification goes through the outbox exactly like a
//! webhook (integration id `day2[<sink>]`, payload: Alertmanager's webhook
//! JSON with resolved alerts always included), so it survives a restart and
//! is retried until the feature accepts it. Delivery is at least once: a
//! sink can be handed the same notification again after a crash and should
//! treat [`InternalNotification::outbox_id`] as an idempotency key.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The integration id of an internal sink (`day2[oncall]`).
pub fn integration_id(sink: &str) -> String {
    format!("day2[{sink}]")
}

/// The sink named by an integration id, when it is an internal one.
pub fn sink_of(integration: &str) -> Option<&str> {
    integration.strip_prefix("day2[")?.strip_suffix(']')
}

/// One alert of a notification, as Alertmanager's webhook carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifiedAlert {
    /// `firing` or `resolved`.
    pub status: String,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Timestamp,
    /// Go's zero time while firing.
    pub ends_at: Timestamp,
    #[serde(rename = "generatorURL", default)]
    pub generator_url: String,
    pub fingerprint: String,
}

impl NotifiedAlert {
    pub fn is_firing(&self) -> bool {
        self.status == "firing"
    }

    /// When the alert resolved (None while firing).
    pub fn resolved_at(&self) -> Option<Timestamp> {
        (!self.is_firing()).then_some(self.ends_at)
    }
}

/// The webhook body (version 4) as a typed value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookMessage {
    pub receiver: String,
    /// `firing` when any alert fires, else `resolved`.
    pub status: String,
    pub alerts: Vec<NotifiedAlert>,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL", default)]
    pub external_url: String,
    pub group_key: String,
    #[serde(default)]
    pub truncated_alerts: u64,
}

/// What an internal sink is handed.
#[derive(Debug, Clone, PartialEq)]
pub struct InternalNotification {
    /// The outbox entry: the same id is handed again only if a previous
    /// hand-over did not complete (idempotency key).
    pub outbox_id: i64,
    /// When the group flushed.
    pub created_at: Timestamp,
    /// The route's receiver in `alertmanager.yml`.
    pub receiver: String,
    pub message: WebhookMessage,
}

/// Why a sink did not take a notification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// Try again later (a busy store, a feature still starting).
    #[error("{0}")]
    Retry(String),
    /// Never going to work (recorded as a failed notification).
    #[error("{0}")]
    Permanent(String),
}

/// A feature that takes notifications of the receivers it is attached to.
/// Called from a blocking thread; may do synchronous I/O (the state store).
pub trait InternalSink: Send + Sync {
    fn deliver(&self, n: &InternalNotification) -> Result<(), SinkError>;
}

/// What the hub publishes to subscribers ([`crate::Hub::subscribe`]):
/// best-effort, in-process; the durable record is the delivery audit.
#[derive(Debug, Clone, PartialEq)]
pub enum HubEvent {
    /// One delivery attempt of a notification finished.
    Delivery(DeliveryEvent),
}

/// One finished delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryEvent {
    pub outbox_id: i64,
    pub receiver: String,
    pub integration: String,
    /// Fingerprints of the alerts the notification carried.
    pub fingerprints: Vec<String>,
    /// `sent`, `retry` or `failed`.
    pub outcome: &'static str,
    pub status_code: Option<u16>,
    pub error: String,
    pub at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::NotificationData;
    use day2_model::Labels;

    #[test]
    fn integration_ids_round_trip() {
        assert_eq!(integration_id("oncall"), "day2[oncall]");
        assert_eq!(sink_of("day2[oncall]"), Some("oncall"));
        assert_eq!(sink_of("webhook[0]"), None);
        assert_eq!(sink_of("day2[oncall"), None);
    }

    #[test]
    fn webhook_payload_parses_into_the_typed_message() {
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let mut firing = crate::Alert::new(
            Labels::from_pairs([("alertname", "Down"), ("instance", "a")]),
            "2026-01-01T00:00:00Z".parse().unwrap(),
        );
        firing.annotations.insert("summary".into(), "a <b>".into());
        let mut resolved = crate::Alert::new(
            Labels::from_pairs([("alertname", "Down"), ("instance", "b")]),
            "2026-01-01T00:01:00Z".parse().unwrap(),
        );
        resolved.ends_at = Some("2026-01-01T00:05:00Z".parse().unwrap());
        let data = NotificationData {
            receiver: "pager".into(),
            group_key: "{}:{alertname=\"Down\"}".into(),
            group_labels: Labels::from_pairs([("alertname", "Down")]),
            alerts: vec![firing.clone(), resolved.clone()],
            external_url: "http://day2".into(),
            now,
        };
        let m: WebhookMessage = serde_json::from_value(data.webhook(0)).unwrap();
        assert_eq!(m.receiver, "pager");
        assert_eq!(m.status, "firing");
        assert_eq!(m.alerts.len(), 2);
        assert!(m.alerts[0].is_firing());
        assert_eq!(m.alerts[0].resolved_at(), None);
        assert_eq!(m.alerts[0].annotations["summary"], "a <b>");
        assert_eq!(m.alerts[0].fingerprint, firing.fingerprint().to_string());
        assert_eq!(m.alerts[1].resolved_at(), resolved.ends_at);
        assert_eq!(m.common_labels["alertname"], "Down");
    }
}
