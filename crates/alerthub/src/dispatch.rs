//! The dispatcher: routes alerts into aggregation groups (one per route and
//! group-label set), and flushes groups on Alertmanager's timers:
//! `group_wait` after a group is created, then every `group_interval`.
//!
//! A flush leaves out silenced and inhibited alerts, and sends nothing while
//! the route is muted by its time intervals. For each integration of the
//! route's receiver, the notification log decides whether anything changed
//! since the last notification (new firing alerts, alerts resolved, or
//! `repeat_interval` elapsed); if so the rendered payload is written to the
//! outbox together with the new notification-log entry, in one transaction.
//! Delivery happens later, from the outbox (see `delivery`).
//!
//! No clock is read here: `now` is passed in, so tests freeze time.

use crate::alert::{Alert, Fingerprint};
use crate::config::{HubConfig, IntegrationConfig};
use crate::group::{GroupKey, format_label_set};
use crate::notify::NotificationData;
use crate::silence::{MaintenanceWindow, Silence, in_maintenance, silenced_by};
use day2_store::{NewNotification, NflogEntry, Store};
use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

fn add(t: Timestamp, d: Duration) -> Timestamp {
    let d = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
    t.saturating_add(d).unwrap_or(Timestamp::MAX)
}

/// Unix milliseconds.
pub fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

/// One aggregation group.
#[derive(Debug, Clone)]
pub struct AggrGroup {
    /// Unique in the tree: route id + group labels (the notification-log key).
    pub id: String,
    pub key: GroupKey,
    pub receiver: String,
    pub alerts: BTreeSet<Fingerprint>,
    pub next_flush: Timestamp,
}

/// What a flush did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushOutcome {
    pub group: String,
    pub receiver: String,
    /// Outbox ids written.
    pub outbox: Vec<i64>,
    /// Set when the route was muted by a time interval.
    pub muted: bool,
}

/// Everything a flush reads.
pub struct FlushCtx<'a> {
    pub cfg: &'a HubConfig,
    pub alerts: &'a HashMap<Fingerprint, Alert>,
    pub silences: &'a [Silence],
    /// day2's recurring maintenance windows (mute like silences).
    pub windows: &'a [MaintenanceWindow],
    pub store: &'a Store,
    pub external_url: &'a str,
    pub templates: &'a crate::render::Templates,
    /// Receiver -> internal sinks attached to it (see [`crate::internal`]).
    pub internal: &'a BTreeMap<String, Vec<String>>,
}

/// Where one notification of a flush goes.
enum Target<'a> {
    Integration(crate::config::Integration<'a>),
    /// A day2 feature (see [`crate::internal`]): gets the webhook payload,
    /// resolved alerts included.
    Internal(&'a str),
}

/// Whether an alert is muted by a silence, a maintenance window or an
/// inhibition at `now`.
pub fn suppressed(
    cfg: &HubConfig,
    alert: &Alert,
    alerts: &HashMap<Fingerprint, Alert>,
    silences: &[Silence],
    windows: &[MaintenanceWindow],
    now: Timestamp,
) -> bool {
    !silenced_by(&alert.labels, now, silences).is_empty()
        || !in_maintenance(&alert.labels, now, windows, &cfg.time_intervals).is_empty()
        || cfg
            .inhibitor
            .inhibited_by(&alert.labels, alerts.values(), now)
            .is_some()
}

#[derive(Debug, Default)]
pub struct Dispatcher {
    groups: BTreeMap<String, AggrGroup>,
}

impl Dispatcher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn groups(&self) -> impl Iterator<Item = &AggrGroup> {
        self.groups.values()
    }

    /// Routes an alert into its groups (creating them on first sight).
    pub fn insert(&mut self, cfg: &HubConfig, alert: &Alert, now: Timestamp) {
        let fp = alert.fingerprint();
        for route in cfg.route.match_labels(&alert.labels) {
            let key = GroupKey::new(route, &alert.labels);
            let id = format!("{}:{}", route.id(), format_label_set(&key.labels));
            let g = self.groups.entry(id.clone()).or_insert_with(|| {
                // An alert older than group_wait is flushed at once, as in Alertmanager.
                let wait_until = add(alert.starts_at, route.opts.group_wait);
                let next_flush = if wait_until <= now {
                    now
                } else {
                    add(now, route.opts.group_wait)
                };
                AggrGroup {
                    id,
                    key,
                    receiver: route.opts.receiver.clone(),
                    alerts: BTreeSet::new(),
                    next_flush,
                }
            });
            g.alerts.insert(fp);
        }
    }

    /// Rebuilds every group from scratch (after a config reload or restart).
    pub fn rebuild<'a>(
        &mut self,
        cfg: &HubConfig,
        alerts: impl IntoIterator<Item = &'a Alert>,
        now: Timestamp,
    ) {
        self.groups.clear();
        for a in alerts {
            self.insert(cfg, a, now);
        }
    }

    /// When the next group is due.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.groups.values().map(|g| g.next_flush).min()
    }

    /// Whether any group still holds the alert.
    pub fn holds(&self, fp: Fingerprint) -> bool {
        self.groups.values().any(|g| g.alerts.contains(&fp))
    }

    /// Flushes every group due at `now`.
    pub fn flush_due(
        &mut self,
        ctx: &FlushCtx<'_>,
        now: Timestamp,
    ) -> Result<Vec<FlushOutcome>, day2_store::Error> {
        let due: Vec<String> = self
            .groups
            .values()
            .filter(|g| g.next_flush <= now)
            .map(|g| g.id.clone())
            .collect();
        let mut out = Vec::new();
        for id in due {
            let Some(mut g) = self.groups.remove(&id) else {
                continue;
            };
            g.alerts.retain(|fp| ctx.alerts.contains_key(fp));
            let outcome = flush_group(&mut g, ctx, now)?;
            let interval = ctx
                .cfg
                .route
                .find(&g.key.route_id)
                .map(|r| r.opts.group_interval)
                .unwrap_or(crate::config::DEFAULT_GROUP_INTERVAL);
            g.next_flush = add(now, interval);
            if !g.alerts.is_empty() {
                self.groups.insert(id, g);
            }
            out.push(outcome);
        }
        Ok(out)
    }
}

fn flush_group(
    g: &mut AggrGroup,
    ctx: &FlushCtx<'_>,
    now: Timestamp,
) -> Result<FlushOutcome, day2_store::Error> {
    let mut outcome = FlushOutcome {
        group: g.id.clone(),
        receiver: g.receiver.clone(),
        outbox: Vec::new(),
        muted: false,
    };
    let Some(route) = ctx.cfg.route.find(&g.key.route_id) else {
        g.alerts.clear();
        return Ok(outcome);
    };
    if route.mute_at(&ctx.cfg.time_intervals, now).is_some() {
        outcome.muted = true;
        return Ok(outcome);
    }
    let mut firing: Vec<&Alert> = Vec::new();
    let mut resolved: Vec<&Alert> = Vec::new();
    for fp in &g.alerts {
        let a = &ctx.alerts[fp];
        if suppressed(ctx.cfg, a, ctx.alerts, ctx.silences, ctx.windows, now) {
            continue;
        }
        if a.is_resolved_at(now) {
            resolved.push(a);
        } else {
            firing.push(a);
        }
    }
    let firing_fps: Vec<String> = firing.iter().map(|a| a.fingerprint().to_string()).collect();
    let resolved_fps: Vec<String> = resolved
        .iter()
        .map(|a| a.fingerprint().to_string())
        .collect();
    let Some(receiver) = ctx.cfg.receiver(&g.receiver) else {
        return Ok(outcome);
    };
    let mut nflog = Vec::new();
    let mut notes = Vec::new();
    let internal = ctx.internal.get(&g.receiver).into_iter().flatten();
    let targets = receiver
        .integrations()
        .into_iter()
        .map(Target::Integration)
        .chain(internal.map(|sink| Target::Internal(sink)));
    for target in targets {
        let (iid, send_resolved) = match &target {
            Target::Integration(i) => (i.id(), i.config.send_resolved()),
            Target::Internal(sink) => (crate::internal::integration_id(sink), true),
        };
        let prev = ctx.store.nflog_get(&g.id, &g.receiver, &iid)?;
        let needed = match &prev {
            None => !firing_fps.is_empty(),
            Some(e) => {
                let prev_firing: HashSet<&String> = e.firing.iter().collect();
                let new_firing = firing_fps.iter().any(|f| !prev_firing.contains(f));
                let newly_resolved = resolved_fps.iter().any(|f| prev_firing.contains(f));
                let all_resolved = firing_fps.is_empty() && !e.firing.is_empty();
                let repeat = !firing_fps.is_empty()
                    && now.as_millisecond() - e.sent_at
                        >= route.opts.repeat_interval.as_millis() as i64;
                new_firing || (send_resolved && newly_resolved) || all_resolved || repeat
            }
        };
        if !needed {
            continue;
        }
        nflog.push(NflogEntry {
            group_key: g.id.clone(),
            receiver: g.receiver.clone(),
            integration: iid.clone(),
            firing: firing_fps.clone(),
            resolved: resolved_fps.clone(),
            sent_at: ms(now),
        });
        let mut alerts: Vec<Alert> = firing.iter().map(|a| (*a).clone()).collect();
        if send_resolved {
            alerts.extend(resolved.iter().map(|a| (*a).clone()));
        }
        if alerts.is_empty() {
            continue; // all resolved and resolutions are not sent: only the log moves
        }
        let data = NotificationData {
            receiver: g.receiver.clone(),
            group_key: g.key.to_string(),
            group_labels: g.key.labels.clone(),
            alerts,
            external_url: ctx.external_url.to_string(),
            now,
        };
        let rendered = match &target {
            Target::Internal(_) => Ok(data.webhook(0)),
            Target::Integration(integ) => match integ.config {
                IntegrationConfig::Webhook(w) => Ok(data.webhook(w.max_alerts)),
                IntegrationConfig::Slack(c) => crate::render::slack(ctx.templates, c, &data),
                IntegrationConfig::Pagerduty(c) => {
                    crate::render::pagerduty(ctx.templates, c, &data)
                }
                IntegrationConfig::MsTeams(c) => crate::render::msteams(ctx.templates, c, &data),
                IntegrationConfig::Email(c) => crate::render::email(ctx.templates, c, &data)
                    .and_then(|m| serde_json::to_value(m).map_err(|e| e.to_string())),
                other => {
                    tracing::warn!(receiver = %g.receiver, integration = other.name(), "integration not supported yet; notification skipped");
                    continue;
                }
            },
        };
        let payload = match rendered {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(receiver = %g.receiver, integration = %iid, error = %e, "rendering the notification failed");
                nflog.pop();
                continue;
            }
        };
        notes.push(NewNotification {
            receiver: g.receiver.clone(),
            integration: iid,
            group_key: g.key.to_string(),
            payload: payload.to_string(),
            fingerprints: data
                .alerts
                .iter()
                .map(|a| a.fingerprint().to_string())
                .collect(),
        });
    }
    if !nflog.is_empty() {
        outcome.outbox = ctx.store.commit_flush(&nflog, &notes, ms(now))?;
    }
    // Resolved alerts leave the group once a flush has covered them.
    let resolved_set: HashSet<Fingerprint> = resolved.iter().map(|a| a.fingerprint()).collect();
    g.alerts.retain(|fp| !resolved_set.contains(fp));
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use day2_model::Labels;

    const CFG: &str = r#"
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
  routes:
    - matchers: [team="muted"]
      mute_time_intervals: [always]
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:1/hook
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [alertname]
time_intervals:
  - name: always
    time_intervals:
      - times: [{start_time: "00:00", end_time: "24:00"}]
"#;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn alert(pairs: &[(&str, &str)], start: Timestamp) -> Alert {
        let mut a = Alert::new(Labels::from_pairs(pairs.iter().copied()), start);
        a.ends_at = Some(add(start, Duration::from_secs(86400)));
        a
    }

    struct Env {
        _dir: tempfile::TempDir,
        store: Store,
        cfg: HubConfig,
        alerts: HashMap<Fingerprint, Alert>,
        silences: Vec<Silence>,
        windows: Vec<MaintenanceWindow>,
        internal: BTreeMap<String, Vec<String>>,
        d: Dispatcher,
    }

    impl Env {
        fn new() -> Env {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open_dir(dir.path()).unwrap();
            Env {
                _dir: dir,
                store,
                cfg: load_str(CFG).unwrap(),
                alerts: HashMap::new(),
                silences: Vec::new(),
                windows: Vec::new(),
                internal: BTreeMap::new(),
                d: Dispatcher::new(),
            }
        }
        fn put(&mut self, a: Alert, now: Timestamp) {
            self.d.insert(&self.cfg, &a, now);
            self.alerts.insert(a.fingerprint(), a);
        }
        fn flush(&mut self, now: Timestamp) -> Vec<FlushOutcome> {
            let ctx = FlushCtx {
                cfg: &self.cfg,
                alerts: &self.alerts,
                silences: &self.silences,
                windows: &self.windows,
                store: &self.store,
                external_url: "http://day2",
                templates: &crate::render::Templates::defaults(),
                internal: &self.internal,
            };
            self.d.flush_due(&ctx, now).unwrap()
        }
        fn payloads(&self) -> Vec<serde_json::Value> {
            let mut v: Vec<_> = self
                .store
                .outbox_list(100)
                .unwrap()
                .into_iter()
                .map(|e| serde_json::from_str(&e.payload).unwrap())
                .collect();
            v.reverse();
            v
        }
    }

    #[test]
    fn group_wait_then_interval_then_resolve() {
        let mut e = Env::new();
        let t0 = ts("2026-01-01T00:00:00Z");
        e.put(alert(&[("alertname", "Down"), ("i", "1")], t0), t0);
        assert_eq!(e.d.next_due(), Some(ts("2026-01-01T00:00:30Z")));
        assert!(e.flush(ts("2026-01-01T00:00:29Z")).is_empty());
        e.put(
            alert(
                &[("alertname", "Down"), ("i", "2")],
                ts("2026-01-01T00:00:10Z"),
            ),
            ts("2026-01-01T00:00:10Z"),
        );
        let out = e.flush(ts("2026-01-01T00:00:30Z"));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].outbox.len(), 1);
        let p = &e.payloads()[0];
        assert_eq!(p["alerts"].as_array().unwrap().len(), 2);
        assert_eq!(p["groupKey"], "{}:{alertname=\"Down\"}");
        assert_eq!(p["groupLabels"], serde_json::json!({"alertname": "Down"}));
        // nothing new at the next interval: no notification
        assert_eq!(e.d.next_due(), Some(ts("2026-01-01T00:05:30Z")));
        let out = e.flush(ts("2026-01-01T00:05:30Z"));
        assert!(out[0].outbox.is_empty());
        // one resolves
        let fp = Fingerprint::of(&Labels::from_pairs([("alertname", "Down"), ("i", "1")]));
        e.alerts.get_mut(&fp).unwrap().ends_at = Some(ts("2026-01-01T00:06:00Z"));
        let out = e.flush(ts("2026-01-01T00:10:30Z"));
        assert_eq!(out[0].outbox.len(), 1);
        let p = &e.payloads()[1];
        assert_eq!(p["status"], "firing");
        assert_eq!(p["alerts"][1]["status"], "resolved");
        // the resolved alert has left the group; nothing more until repeat_interval
        assert!(!e.d.holds(fp));
        assert!(e.flush(ts("2026-01-01T00:15:30Z"))[0].outbox.is_empty());
        let out = e.flush(ts("2026-01-01T01:10:30Z"));
        assert_eq!(out[0].outbox.len(), 1, "repeat_interval elapsed");
    }

    #[test]
    fn old_alerts_flush_at_once_and_restart_does_not_resend() {
        let mut e = Env::new();
        let t0 = ts("2026-01-01T00:00:00Z");
        let now = ts("2026-01-01T00:10:00Z");
        e.put(alert(&[("alertname", "Old")], t0), now);
        assert_eq!(e.d.next_due(), Some(now));
        assert_eq!(e.flush(now)[0].outbox.len(), 1);
        // a restart rebuilds the groups: the notification log prevents a re-send
        let mut d = Dispatcher::new();
        d.rebuild(&e.cfg, e.alerts.values(), now);
        e.d = d;
        assert!(e.flush(now)[0].outbox.is_empty());
    }

    #[test]
    fn silenced_inhibited_and_muted_alerts_are_not_sent() {
        let mut e = Env::new();
        let t0 = ts("2026-01-01T00:00:00Z");
        let now = ts("2026-01-01T01:00:00Z");
        e.silences.push(Silence {
            id: "s".into(),
            matchers: crate::matchers::Matchers::parse("{alertname=\"Quiet\"}").unwrap(),
            starts_at: t0,
            ends_at: ts("2026-01-02T00:00:00Z"),
            updated_at: t0,
            created_by: "t".into(),
            comment: "".into(),
        });
        e.put(alert(&[("alertname", "Quiet")], t0), now);
        e.put(
            alert(&[("alertname", "Disk"), ("severity", "critical")], t0),
            now,
        );
        e.put(
            alert(&[("alertname", "Disk"), ("severity", "warning")], t0),
            now,
        );
        e.put(alert(&[("alertname", "M"), ("team", "muted")], t0), now);
        let out = e.flush(now);
        let sent: usize = out.iter().map(|o| o.outbox.len()).sum();
        assert_eq!(sent, 1, "{out:?}");
        assert!(out.iter().any(|o| o.muted));
        let p = &e.payloads()[0];
        assert_eq!(p["alerts"].as_array().unwrap().len(), 1);
        assert_eq!(p["alerts"][0]["labels"]["severity"], "critical");
        // the silence ends: Quiet is notified at the next flush
        e.silences[0].ends_at = ts("2026-01-01T01:01:00Z");
        let out = e.flush(ts("2026-01-01T01:05:00Z"));
        assert_eq!(out.iter().map(|o| o.outbox.len()).sum::<usize>(), 1);
    }

    #[test]
    fn maintenance_window_mutes_then_alerts_still_firing_are_notified() {
        let mut e = Env::new();
        e.cfg = load_str(&CFG.replacen(
            "time_intervals:\n",
            "time_intervals:\n  - name: first-hour\n    time_intervals:\n      - times: [{start_time: \"00:00\", end_time: \"01:00\"}]\n",
            1,
        ))
        .unwrap();
        let w: MaintenanceWindow = serde_yaml_ng::from_str(
            "name: db-nightly\nmatchers: ['service=\"db\"']\ntime_intervals: [first-hour]\n",
        )
        .unwrap();
        crate::silence::validate_maintenance_windows(
            std::slice::from_ref(&w),
            &e.cfg.time_intervals,
        )
        .unwrap();
        e.windows.push(w);
        let t0 = ts("2026-01-01T00:10:00Z");
        e.put(alert(&[("alertname", "DbSlow"), ("service", "db")], t0), t0);
        let out = e.flush(ts("2026-01-01T00:10:30Z"));
        assert!(out[0].outbox.is_empty(), "muted by the window");
        // still firing when the window closes: notified at the next interval
        let out = e.flush(ts("2026-01-01T01:00:30Z"));
        assert_eq!(out[0].outbox.len(), 1);
    }

    #[test]
    fn internal_sinks_get_the_webhook_payload_with_resolutions() {
        let mut e = Env::new();
        e.cfg = load_str(&CFG.replace(
            "      - url: http://127.0.0.1:1/hook\n",
            "      - url: http://127.0.0.1:1/hook\n        send_resolved: false\n",
        ))
        .unwrap();
        e.internal.insert("hook".into(), vec!["oncall".into()]);
        let t0 = ts("2026-01-01T00:00:00Z");
        e.put(alert(&[("alertname", "Down")], t0), t0);
        let out = e.flush(ts("2026-01-01T00:00:30Z"));
        assert_eq!(out[0].outbox.len(), 2, "webhook and the internal sink");
        let entries = e.store.outbox_list(10).unwrap();
        let internal: Vec<_> = entries
            .iter()
            .filter(|x| x.integration == "day2[oncall]")
            .collect();
        assert_eq!(internal.len(), 1);
        let m: crate::internal::WebhookMessage =
            serde_json::from_str(&internal[0].payload).unwrap();
        assert_eq!(m.receiver, "hook");
        assert!(m.alerts[0].is_firing());
        // the resolve reaches the internal sink even though the webhook does not send resolutions
        let fp = Fingerprint::of(&Labels::from_pairs([("alertname", "Down")]));
        e.alerts.get_mut(&fp).unwrap().ends_at = Some(ts("2026-01-01T00:01:00Z"));
        let out = e.flush(ts("2026-01-01T00:05:30Z"));
        assert_eq!(out[0].outbox.len(), 1);
        let entries = e.store.outbox_list(10).unwrap();
        let last = entries
            .iter()
            .filter(|x| x.integration == "day2[oncall]")
            .max_by_key(|x| x.id)
            .unwrap();
        let m: crate::internal::WebhookMessage = serde_json::from_str(&last.payload).unwrap();
        assert_eq!(m.status, "resolved");
        assert_eq!(m.alerts[0].resolved_at(), Some(ts("2026-01-01T00:01:00Z")));
    }
}
