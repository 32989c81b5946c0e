//! Notification payloads. The webhook payload is Alertmanager's (version
//! "4"); other integrations render from the same [`NotificationData`].

use crate::alert::{Alert, AlertStatus};
use day2_model::Labels;
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Go's zero time, as Alertmanager prints "no end".
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// RFC 3339 with milliseconds, UTC.
pub fn fmt_ts(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub fn labels_json(l: &Labels) -> Value {
    Value::Object(
        l.iter()
            .map(|x| (x.name.clone(), Value::String(x.value.clone())))
            .collect(),
    )
}

pub fn map_json(m: &BTreeMap<String, String>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// What every notification of one flush is made from.
#[derive(Debug, Clone)]
pub struct NotificationData {
    pub receiver: String,
    /// Alertmanager's group key string (`{}:{alertname="x"}`).
    pub group_key: String,
    pub group_labels: Labels,
    pub alerts: Vec<Alert>,
    pub external_url: String,
    pub now: Timestamp,
}

impl NotificationData {
    pub fn status(&self) -> AlertStatus {
        if self.alerts.iter().any(|a| !a.is_resolved_at(self.now)) {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        }
    }

    /// Label pairs every alert shares.
    pub fn common_labels(&self) -> Map<String, Value> {
        let mut it = self.alerts.iter();
        let Some(first) = it.next() else {
            return Map::new();
        };
        let mut common: BTreeMap<String, String> = first
            .labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        for a in it {
            common.retain(|k, v| a.labels.get(k) == Some(v.as_str()));
        }
        common
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect()
    }

    /// Annotation pairs every alert shares.
    pub fn common_annotations(&self) -> Map<String, Value> {
        let mut it = self.alerts.iter();
        let Some(first) = it.next() else {
            return Map::new();
        };
        let mut common = first.annotations.clone();
        for a in it {
            common.retain(|k, v| a.annotations.get(k) == Some(v));
        }
        common
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect()
    }

    /// One alert as the webhook and templates see it (a firing alert's end
    /// is not exposed, as in Alertmanager).
    pub fn alert_json(&self, a: &Alert) -> Value {
        let resolved = a.is_resolved_at(self.now);
        json!({
            "status": if resolved { "resolved" } else { "firing" },
            "labels": labels_json(&a.labels),
            "annotations": map_json(&a.annotations),
            "startsAt": fmt_ts(a.starts_at),
            "endsAt": match a.ends_at { Some(e) if resolved => fmt_ts(e), _ => ZERO_TIME.to_string() },
            "generatorURL": a.generator_url,
            "fingerprint": a.fingerprint().to_string(),
        })
    }

    /// Alertmanager's webhook body; `max_alerts` 0 means all.
    pub fn webhook(&self, max_alerts: u64) -> Value {
        let mut alerts: Vec<Value> = self.alerts.iter().map(|a| self.alert_json(a)).collect();
        let mut truncated = 0usize;
        if max_alerts > 0 && alerts.len() as u64 > max_alerts {
            truncated = alerts.len() - max_alerts as usize;
            alerts.truncate(max_alerts as usize);
        }
        json!({
            "receiver": self.receiver,
            "status": self.status().as_str(),
            "alerts": alerts,
            "groupLabels": labels_json(&self.group_labels),
            "commonLabels": Value::Object(self.common_labels()),
            "commonAnnotations": Value::Object(self.common_annotations()),
            "externalURL": self.external_url,
            "version": "4",
            "groupKey": self.group_key,
            "truncatedAlerts": truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_payload_shape() {
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let mut a = Alert::new(
            Labels::from_pairs([("alertname", "Down"), ("job", "api"), ("i", "1")]),
            "2026-01-01T00:00:00Z".parse().unwrap(),
        );
        a.ends_at = Some("2026-01-01T00:15:00Z".parse().unwrap());
        a.annotations.insert("summary".into(), "s".into());
        let mut b = Alert::new(
            Labels::from_pairs([("alertname", "Down"), ("job", "api"), ("i", "2")]),
            "2026-01-01T00:00:00Z".parse().unwrap(),
        );
        b.ends_at = Some("2026-01-01T00:05:00Z".parse().unwrap());
        let d = NotificationData {
            receiver: "team".into(),
            group_key: "{}:{alertname=\"Down\"}".into(),
            group_labels: Labels::from_pairs([("alertname", "Down")]),
            alerts: vec![a, b],
            external_url: "http://day2".into(),
            now,
        };
        let w = d.webhook(0);
        assert_eq!(w["version"], "4");
        assert_eq!(w["status"], "firing");
        assert_eq!(
            w["commonLabels"],
            json!({"alertname": "Down", "job": "api"})
        );
        assert_eq!(w["commonAnnotations"], json!({}));
        assert_eq!(w["alerts"][0]["endsAt"], ZERO_TIME);
        assert_eq!(w["alerts"][1]["status"], "resolved");
        assert_eq!(w["alerts"][1]["endsAt"], "2026-01-01T00:05:00.000Z");
        assert_eq!(w["alerts"][0]["fingerprint"].as_str().unwrap().len(), 16);
        assert_eq!(w["truncatedAlerts"], 0);
        let t = d.webhook(1);
        assert_eq!(t["alerts"].as_array().unwrap().len(), 1);
        assert_eq!(t["truncatedAlerts"], 1);
    }
}
