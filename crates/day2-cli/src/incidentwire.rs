//! Wiring of incidents: the `incidents:` section's settings, the runtime
//! behind the server's `IncidentApi` and the status page, and the alert hub's
//! delivery events recorded on incident timelines.

use std::sync::Arc;

use day2_alerthub::internal::{HubEvent, sink_of};
use day2_incident::runtime::{
    Action, ExternalEntry, IncidentRuntime, IncidentSettings, NewIncident, RuntimeError,
};
use day2_incident::statuspage::Maintenance;
use day2_incident::{Actor, EntryKind, Incidents};
use day2_server::Day2ApiError;
use serde_json::{Value, json};

use crate::config::{Day2Config, LoadedHub};
use crate::hubwire::HubCell;

/// `(field, receiver, sink)` for every receiver that opens incidents.
pub fn internal_receivers(cfg: &Day2Config) -> Vec<(String, String, String)> {
    cfg.incidents
        .iter()
        .flat_map(|i| i.receivers.keys())
        .map(|r| {
            (
                format!("incidents.receivers.{r}"),
                r.clone(),
                "incident".to_string(),
            )
        })
        .collect()
}

/// The compiled section (validated when the config was loaded).
pub fn model(cfg: &Day2Config) -> Result<Incidents, (String, String)> {
    match &cfg.incidents {
        None => Ok(Incidents::default()),
        Some(i) => i.compile().map_err(|(p, m)| (format!("incidents.{p}"), m)),
    }
}

/// Checks across sections: communication targets are on-call users, and
/// incident receivers need the alert hub.
pub fn validate(cfg: &Day2Config) -> Result<(), (String, String)> {
    model(cfg)?;
    let Some(sec) = &cfg.incidents else {
        return Ok(());
    };
    let users: Vec<&str> = cfg
        .oncall
        .iter()
        .flat_map(|o| o.users.iter().map(|u| u.id.as_str()))
        .collect();
    for (sev, sc) in &sec.comms.severities {
        for (i, u) in sc.notify.iter().enumerate() {
            if !users.contains(&u.as_str()) {
                return Err((
                    format!("incidents.comms.severities.{sev}.notify[{i}]"),
                    format!("unknown user {u:?} (oncall.users)"),
                ));
            }
        }
    }
    if !sec.receivers.is_empty() && cfg.alertmanager.is_none() {
        return Err((
            "incidents.receivers".into(),
            "receivers need the alert hub (an alertmanager section)".into(),
        ));
    }
    Ok(())
}

/// The runtime's settings from a validated config.
pub fn settings(cfg: &Day2Config, hub: Option<&LoadedHub>) -> anyhow::Result<IncidentSettings> {
    let incidents = model(cfg).map_err(|(p, m)| anyhow::anyhow!("{p}: {m}"))?;
    Ok(IncidentSettings {
        incidents,
        base_url: hub
            .map(|h| h.settings.external_url.clone())
            .unwrap_or_else(|| format!("http://{}", cfg.server.listen)),
    })
}

fn api_err(e: RuntimeError) -> Day2ApiError {
    match e {
        RuntimeError::NotFound(m) => Day2ApiError::NotFound(m),
        RuntimeError::BadRequest(m) => Day2ApiError::BadRequest(m),
        RuntimeError::Refused(e) => Day2ApiError::Conflict(e.to_string()),
        RuntimeError::Store(e) => Day2ApiError::Internal(e.to_string()),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The runtime behind `/api/day2/v1/incidents` and `/status`.
pub struct IncidentApiImpl {
    pub runtime: Arc<IncidentRuntime>,
    /// Acknowledging an incident acknowledges its alerts' escalations.
    pub oncall: Arc<day2_oncall::runtime::OnCallRuntime>,
    /// For the labels of alerts linked by fingerprint alone.
    pub hub: HubCell,
}

impl IncidentApiImpl {
    fn labels_of(&self, fingerprint: &str) -> serde_json::Map<String, Value> {
        let Some(hub) = self.hub.read().clone() else {
            return serde_json::Map::new();
        };
        hub.store()
            .load_alerts()
            .ok()
            .and_then(|rows| rows.into_iter().find(|r| r.fingerprint == fingerprint))
            .and_then(|r| serde_json::from_str(&r.labels).ok())
            .unwrap_or_default()
    }
}

impl day2_server::IncidentApi for IncidentApiImpl {
    fn list(&self, state: Option<&str>) -> Result<Value, Day2ApiError> {
        let all = match state.unwrap_or("open") {
            "open" => false,
            "all" => true,
            other => {
                return Err(Day2ApiError::BadRequest(format!(
                    "state: {other:?} is not open or all"
                )));
            }
        };
        let list = self.runtime.list(all).map_err(api_err)?;
        Ok(Value::from(
            list.iter()
                .map(|i| {
                    let mut v = to_json(i);
                    // the list is a summary: the timeline is on the incident's own page
                    if let Some(o) = v.as_object_mut() {
                        o.remove("timeline");
                    }
                    v
                })
                .collect::<Vec<_>>(),
        ))
    }

    fn get(&self, id: &str) -> Result<Value, Day2ApiError> {
        Ok(to_json(&self.runtime.get(id).map_err(api_err)?))
    }

    fn create(&self, body: &Value, by: &str) -> Result<Value, Day2ApiError> {
        let mut body = body.clone();
        // alerts may be given by fingerprint alone: labels come from the hub
        if let Some(list) = body.get_mut("alerts").and_then(Value::as_array_mut) {
            for a in list.iter_mut() {
                if let Some(fp) = a.as_str().map(str::to_string) {
                    *a = json!({ "fingerprint": fp, "labels": self.labels_of(&fp) });
                }
            }
        }
        let req: NewIncident = serde_json::from_value(body)
            .map_err(|e| Day2ApiError::BadRequest(format!("invalid incident: {e}")))?;
        Ok(to_json(&self.runtime.create(req, by).map_err(api_err)?))
    }

    fn act(&self, id: &str, action: &str, body: &Value, by: &str) -> Result<Value, Day2ApiError> {
        let mut body = body.clone();
        if matches!(action, "link_alert" | "link-alert")
            && let Some(o) = body.as_object_mut()
            && !o.contains_key("labels")
            && let Some(fp) = o
                .get("fingerprint")
                .and_then(Value::as_str)
                .map(str::to_string)
        {
            o.insert("labels".into(), Value::Object(self.labels_of(&fp)));
        }
        let action = Action::parse(action, &body).map_err(api_err)?;
        let ack = matches!(action, Action::Acknowledge {});
        let inc = self.runtime.act(id, action, by).map_err(api_err)?;
        if ack {
            crate::loopwire::ack_escalations(&self.oncall, &inc, by);
        }
        Ok(to_json(&inc))
    }

    fn postmortem(&self, id: &str) -> Result<String, Day2ApiError> {
        self.runtime.postmortem(id).map_err(api_err)
    }

    fn maintenances(&self) -> Result<Value, Day2ApiError> {
        Ok(to_json(&self.runtime.maintenance_list().map_err(api_err)?))
    }

    fn put_maintenance(&self, body: &Value, by: &str) -> Result<Value, Day2ApiError> {
        let m: Maintenance = serde_json::from_value(body.clone())
            .map_err(|e| Day2ApiError::BadRequest(format!("invalid maintenance: {e}")))?;
        Ok(to_json(
            &self.runtime.put_maintenance(m, by).map_err(api_err)?,
        ))
    }

    fn delete_maintenance(&self, id: &str, by: &str) -> Result<(), Day2ApiError> {
        self.runtime.delete_maintenance(id, by).map_err(api_err)
    }

    fn status_json(&self) -> Result<String, Day2ApiError> {
        match self.runtime.status_page().map_err(api_err)? {
            Some(p) => Ok(p.to_json()),
            None => Err(Day2ApiError::NotFound(
                "no status page is configured (incidents.status_page)".into(),
            )),
        }
    }

    fn status_html(&self) -> Result<(String, String), Day2ApiError> {
        match self.runtime.status_page().map_err(api_err)? {
            Some(p) => Ok((
                p.to_html(),
                day2_incident::CONTENT_SECURITY_POLICY.to_string(),
            )),
            None => Err(Day2ApiError::NotFound(
                "no status page is configured (incidents.status_page)".into(),
            )),
        }
    }
}

/// The timeline entry of an alert-hub delivery (sent or failed for good);
/// retries and day2's own sinks are not entries.
pub fn delivery_entry(e: &day2_alerthub::internal::DeliveryEvent) -> Option<ExternalEntry> {
    if sink_of(&e.integration).is_some() {
        return None;
    }
    let text = match e.outcome {
        "sent" => format!("Notified {} via {}", e.receiver, e.integration),
        "failed" => format!(
            "Notification to {} via {} failed: {}",
            e.receiver, e.integration, e.error
        ),
        _ => return None,
    };
    Some(ExternalEntry {
        kind: EntryKind::NotificationSent,
        at: e.at,
        actor: Actor::system("alerthub"),
        text,
        data: json!({
            "key": format!("delivery:{}:{}", e.outbox_id, e.outcome),
            "receiver": e.receiver,
            "integration": e.integration,
            "status_code": e.status_code,
        })
        .as_object()
        .cloned()
        .unwrap_or_default(),
    })
}

/// Records the hub's deliveries on the incidents of their alerts until the
/// hub stops (best effort: the hub's events are in-process).
pub fn follow_deliveries(hub: &day2_alerthub::Hub, runtime: Arc<IncidentRuntime>) {
    let mut rx = hub.subscribe();
    tokio::spawn(async move {
        loop {
            let ev = match rx.recv().await {
                Ok(HubEvent::Delivery(d)) => d,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "incident timeline missed delivery events");
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let Some(entry) = delivery_entry(&ev) else {
                continue;
            };
            let rt = runtime.clone();
            let fps = ev.fingerprints.clone();
            let res = tokio::task::spawn_blocking(move || rt.record_for_alerts(&fps, &entry)).await;
            if let Ok(Err(e)) = res {
                tracing::warn!(error = %e, "recording a delivery on incidents failed");
            }
        }
    });
}
