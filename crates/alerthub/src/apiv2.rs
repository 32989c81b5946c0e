//! Alertmanager API v2 shapes: reading postable alerts and silences, and
//! writing gettable alerts, alert groups, silences, status and receivers.
//! The HTTP layer (`day2-server`) calls these through a trait.

use crate::alert::{Alert, Fingerprint};
use crate::dispatch::suppressed;
use crate::group::GroupKey;
use crate::hub::{Hub, HubError, Snapshot, matchers_from_json, matchers_json};
use crate::matchers::{Matchers, parse_matcher};
use crate::notify::{fmt_ts, labels_json, map_json};
use crate::silence::{Silence, silenced_by};
use day2_model::Labels;
use jiff::Timestamp;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Query parameters of `GET /api/v2/alerts` and `/alerts/groups`.
#[derive(Debug, Clone)]
pub struct AlertFilter {
    pub filter: Vec<String>,
    pub active: bool,
    pub silenced: bool,
    pub inhibited: bool,
    pub unprocessed: bool,
    pub receiver: Option<String>,
}

impl Default for AlertFilter {
    fn default() -> Self {
        AlertFilter {
            filter: Vec::new(),
            active: true,
            silenced: true,
            inhibited: true,
            unprocessed: true,
            receiver: None,
        }
    }
}

fn parse_time(v: &Value, field: &str) -> Result<Option<Timestamp>, HubError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => {
            let t: Timestamp = s
                .parse()
                .map_err(|e| HubError::BadRequest(format!("{field}: invalid time {s:?}: {e}")))?;
            // Go's zero time means "not set"
            if t.as_second() <= -62135596800 {
                Ok(None)
            } else {
                Ok(Some(t))
            }
        }
        _ => Err(HubError::BadRequest(format!("{field} must be a string"))),
    }
}

fn string_map(v: &Value, field: &str) -> Result<BTreeMap<String, String>, HubError> {
    match v {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(HubError::BadRequest(format!(
                    "{field}.{k} must be a string"
                ))),
            })
            .collect(),
        _ => Err(HubError::BadRequest(format!("{field} must be an object"))),
    }
}

/// Reads a `postableAlerts` body, normalizes and validates every alert as
/// Alertmanager does. Any invalid alert refuses the whole request.
pub fn parse_postable_alerts(hub: &Hub, body: &Value) -> Result<Vec<Alert>, HubError> {
    let list = body
        .as_array()
        .ok_or_else(|| HubError::BadRequest("body must be a list of alerts".into()))?;
    let now = hub.now();
    let mut out = Vec::with_capacity(list.len());
    let mut errors = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let labels = string_map(&v["labels"], "labels")?;
        let annotations = string_map(&v["annotations"], "annotations")?;
        let starts = parse_time(&v["startsAt"], "startsAt")?;
        let ends = parse_time(&v["endsAt"], "endsAt")?;
        let mut a = Alert::new(Labels::from_pairs(labels), now);
        a.annotations = annotations;
        a.generator_url = v["generatorURL"].as_str().unwrap_or("").to_string();
        a.starts_at = match (starts, ends) {
            (Some(s), _) => s,
            (None, Some(e)) => e,
            (None, None) => now,
        };
        a.ends_at = ends;
        hub.normalize(&mut a);
        match a.validate() {
            Ok(()) => out.push(a),
            Err(e) => errors.push(format!("alert {i}: {e}")),
        }
    }
    if !errors.is_empty() {
        hub.count_invalid(errors.len());
        return Err(HubError::BadRequest(errors.join("; ")));
    }
    Ok(out)
}

fn parse_filter(filter: &[String]) -> Result<Matchers, HubError> {
    let mut ms = Vec::new();
    for f in filter {
        let f = f.trim();
        let f = f
            .strip_prefix('{')
            .and_then(|x| x.strip_suffix('}'))
            .unwrap_or(f);
        for part in crate::matchers::parse_matchers(f)
            .or_else(|_| parse_matcher(f).map(|m| vec![m]))
            .map_err(|e| HubError::BadRequest(format!("bad matcher format: {}", e.message)))?
        {
            ms.push(part);
        }
    }
    Ok(Matchers::new(ms))
}

fn receiver_filter(r: &Option<String>) -> Result<Option<regex::Regex>, HubError> {
    r.as_ref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            regex::Regex::new(&format!("^(?:{s})$"))
                .map_err(|e| HubError::BadRequest(format!("failed to parse receiver param: {e}")))
        })
        .transpose()
}

/// One `gettableAlert`, or `None` when the filter drops it.
fn gettable(
    snap: &Snapshot,
    a: &Alert,
    f: &AlertFilter,
    rx: &Option<regex::Regex>,
) -> Option<Value> {
    let now = snap.now;
    let receivers = snap.cfg.receivers_for(&a.labels);
    if let Some(rx) = rx
        && !receivers.iter().any(|r| rx.is_match(r))
    {
        return None;
    }
    let silenced: Vec<&str> = silenced_by(&a.labels, now, &snap.silences);
    let inhibited: Vec<String> = snap
        .cfg
        .inhibitor
        .inhibited_by(&a.labels, snap.alerts.values(), now)
        .map(|i| vec![i.source.to_string()])
        .unwrap_or_default();
    let mut muted: Vec<String> = snap
        .cfg
        .routes_for(&a.labels)
        .iter()
        .filter_map(|r| match r.mute_at(&snap.cfg.time_intervals, now) {
            Some(crate::route::RouteMute::MutedBy(n)) => Some(n),
            _ => None,
        })
        .collect();
    muted.extend(
        crate::silence::in_maintenance(&a.labels, now, &snap.windows, &snap.cfg.time_intervals)
            .into_iter()
            .map(|w| format!("maintenance:{w}")),
    );
    let state = if silenced.is_empty() && inhibited.is_empty() && muted.is_empty() {
        "active"
    } else {
        "suppressed"
    };
    if (!f.silenced && !silenced.is_empty())
        || (!f.inhibited && !inhibited.is_empty())
        || (!f.active && state == "active")
    {
        return None;
    }
    Some(json!({
        "labels": labels_json(&a.labels),
        "annotations": map_json(&a.annotations),
        "startsAt": fmt_ts(a.starts_at),
        "endsAt": a.ends_at.map(fmt_ts).unwrap_or_else(|| crate::notify::ZERO_TIME.into()),
        "updatedAt": fmt_ts(a.updated_at),
        "generatorURL": a.generator_url,
        "fingerprint": a.fingerprint().to_string(),
        "receivers": receivers.iter().map(|r| json!({"name": r})).collect::<Vec<_>>(),
        "status": {
            "state": state,
            "silencedBy": silenced,
            "inhibitedBy": inhibited,
            "mutedBy": muted,
        },
    }))
}

fn sorted_alerts(snap: &Snapshot) -> Vec<&Alert> {
    let mut v: Vec<&Alert> = snap
        .alerts
        .values()
        .filter(|a| !a.is_resolved_at(snap.now))
        .collect();
    v.sort_by_key(|a| a.fingerprint());
    v
}

/// `GET /api/v2/alerts`
pub fn alerts(hub: &Hub, f: &AlertFilter) -> Result<Value, HubError> {
    let ms = parse_filter(&f.filter)?;
    let rx = receiver_filter(&f.receiver)?;
    let snap = hub.snapshot();
    let out: Vec<Value> = sorted_alerts(&snap)
        .into_iter()
        .filter(|a| ms.matches(&a.labels))
        .filter_map(|a| gettable(&snap, a, f, &rx))
        .collect();
    Ok(Value::Array(out))
}

/// `GET /api/v2/alerts/groups`
pub fn alert_groups(hub: &Hub, f: &AlertFilter) -> Result<Value, HubError> {
    let ms = parse_filter(&f.filter)?;
    let rx = receiver_filter(&f.receiver)?;
    let snap = hub.snapshot();
    let mut groups: BTreeMap<(String, String), (GroupKey, Vec<Value>)> = BTreeMap::new();
    for a in sorted_alerts(&snap) {
        if !ms.matches(&a.labels) {
            continue;
        }
        for route in snap.cfg.routes_for(&a.labels) {
            if let Some(rx) = &rx
                && !rx.is_match(&route.opts.receiver)
            {
                continue;
            }
            let Some(v) = gettable(&snap, a, f, &None) else {
                continue;
            };
            let key = GroupKey::new(route, &a.labels);
            groups
                .entry((route.opts.receiver.clone(), key.to_string()))
                .or_insert_with(|| (key, Vec::new()))
                .1
                .push(v);
        }
    }
    Ok(Value::Array(
        groups
            .into_iter()
            .map(|((receiver, _), (key, alerts))| {
                json!({
                    "labels": labels_json(&key.labels),
                    "receiver": {"name": receiver},
                    "alerts": alerts,
                })
            })
            .collect(),
    ))
}

/// One `gettableSilence`.
pub fn silence_json(s: &Silence, now: Timestamp) -> Value {
    json!({
        "id": s.id,
        "status": {"state": s.state(now).as_str()},
        "updatedAt": fmt_ts(s.updated_at),
        "matchers": matchers_json(&s.matchers),
        "startsAt": fmt_ts(s.starts_at),
        "endsAt": fmt_ts(s.ends_at),
        "createdBy": s.created_by,
        "comment": s.comment,
    })
}

/// `GET /api/v2/silences`: active first, then pending, then expired.
pub fn silences(hub: &Hub, filter: &[String]) -> Result<Value, HubError> {
    let ms = parse_filter(filter)?;
    let now = hub.now();
    let mut list = hub.silences();
    list.retain(|s| {
        // a silence matches the filter when each filter matcher equals one of its matchers
        ms.iter().all(|m| {
            s.matchers
                .iter()
                .any(|sm| sm.name == m.name && sm.op == m.op && sm.value == m.value)
                || (m.op == day2_model::MatchOp::Equal
                    && s.matchers
                        .iter()
                        .any(|sm| sm.name == m.name && sm.matches(&m.value)))
        })
    });
    let rank = |s: &Silence| match s.state(now) {
        crate::silence::SilenceState::Active => 0,
        crate::silence::SilenceState::Pending => 1,
        crate::silence::SilenceState::Expired => 2,
    };
    list.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then(a.ends_at.cmp(&b.ends_at))
            .then(a.id.cmp(&b.id))
    });
    Ok(Value::Array(
        list.iter().map(|s| silence_json(s, now)).collect(),
    ))
}

/// `GET /api/v2/silence/{id}`
pub fn silence(hub: &Hub, id: &str) -> Result<Value, HubError> {
    hub.silence(id)
        .map(|s| silence_json(&s, hub.now()))
        .ok_or_else(|| HubError::NotFound(format!("silence {id} not found")))
}

/// `POST /api/v2/silences`: returns `{"silenceID": ..}`.
pub fn post_silence(hub: &Hub, body: &Value) -> Result<Value, HubError> {
    let matchers = matchers_from_json(&body["matchers"]).map_err(HubError::BadRequest)?;
    let starts = parse_time(&body["startsAt"], "startsAt")?
        .ok_or_else(|| HubError::BadRequest("startsAt is required".into()))?;
    let ends = parse_time(&body["endsAt"], "endsAt")?
        .ok_or_else(|| HubError::BadRequest("endsAt is required".into()))?;
    let s = Silence {
        id: body["id"].as_str().unwrap_or("").to_string(),
        matchers,
        starts_at: starts,
        ends_at: ends,
        updated_at: hub.now(),
        created_by: body["createdBy"].as_str().unwrap_or("").to_string(),
        comment: body["comment"].as_str().unwrap_or("").to_string(),
    };
    if s.created_by.is_empty() {
        return Err(HubError::BadRequest("createdBy is required".into()));
    }
    let id = hub.upsert_silence(s)?;
    Ok(json!({"silenceID": id}))
}

/// Masks values of keys that may hold secrets in the YAML text.
pub fn mask_secrets(text: &str) -> String {
    const KEYS: &[&str] = &[
        "url",
        "password",
        "secret",
        "token",
        "key",
        "credentials",
        "webhook",
    ];
    text.lines()
        .map(|line| {
            let t = line.trim_start().trim_start_matches("- ");
            if let Some((k, v)) = t.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                let v = v.trim();
                if !v.is_empty()
                    && !k.ends_with("_file")
                    && KEYS.iter().any(|s| k.contains(s))
                    && !v.starts_with('{')
                    && !v.starts_with('[')
                {
                    let idx = line.find(':').unwrap_or(line.len());
                    return format!("{}: <secret>", &line[..idx]);
                }
            }
            line.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `GET /api/v2/status`
pub fn status(hub: &Hub) -> Value {
    let s = hub.settings();
    json!({
        "cluster": {"name": "day2", "status": "disabled", "peers": []},
        "config": {"original": mask_secrets(&s.config_text)},
        "uptime": fmt_ts(hub.started()),
        "versionInfo": {
            "branch": "",
            "buildDate": "",
            "buildUser": "",
            "goVersion": "",
            "revision": "",
            "version": env!("CARGO_PKG_VERSION"),
        },
    })
}

/// `GET /api/v2/receivers`
pub fn receivers(hub: &Hub) -> Value {
    let cfg = hub.config();
    Value::Array(
        cfg.config
            .receivers
            .iter()
            .map(|r| json!({"name": r.name}))
            .collect(),
    )
}

/// Fingerprints of alerts currently suppressed (for tests and views).
pub fn suppressed_fingerprints(hub: &Hub) -> BTreeSet<Fingerprint> {
    let snap = hub.snapshot();
    snap.alerts
        .values()
        .filter(|a| {
            suppressed(
                &snap.cfg,
                a,
                &snap.alerts,
                &snap.silences,
                &snap.windows,
                snap.now,
            )
        })
        .map(|a| a.fingerprint())
        .collect()
}
