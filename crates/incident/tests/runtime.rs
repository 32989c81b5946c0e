//! The incident runtime over a real state store with a frozen clock:
//! incidents opened from alert-hub notifications, the timeline fed by other
//! features (once per key), communications on status changes, the API
//! actions, the postmortem and the status page.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use day2_alerthub::internal::{InternalNotification, NotifiedAlert, WebhookMessage};
use day2_incident::comms::RenderedMessage;
use day2_incident::runtime::{
    Action, AlertHistory, CommsOutlet, ExternalEntry, IncidentRuntime, IncidentSettings,
    NewIncident, RuntimeError,
};
use day2_incident::{Actor, EntryKind, Incident, IncidentsConfig, Severity, Status};
use day2_store::Store;
use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;
use serde_json::json;

const T0: &str = "2026-03-02T10:00:00Z";

const CONFIG: &str = r#"
incidents:
  receivers:
    db-pager:
      severity_map:
        rules:
          - matchers: ['severity="critical"']
            severity: SEV1
        default: SEV3
      components: [db]
      resolve_with_alerts: true
    quiet:
      severity_map: { rules: [{ matchers: ['severity="critical"'], severity: SEV2 }] }
  comms:
    severities:
      SEV1:
        notify: [alice, bob]
        messages:
          - on: opened
            channel: status_page
            body: "Investigating <problems> with {{ incident.components | join(', ') }}."
          - on: opened
            channel: email
            subject: "[{{ incident.severity }}] {{ incident.title }}"
            body: "{{ links.incident }}"
          - on: resolved
            channel: status_page
            body: "Resolved after {{ incident.time_to_resolve }}."
      SEV3:
        messages:
          - on: updated
            channel: slack
            body: "{{ incident.id }} is {{ incident.status }}: {{ message }}"
  status_page:
    page: { id: acme, name: "Acme <status>" }
    components:
      - { id: db, name: Database }
      - { id: api, name: API }
"#;

struct Clock(Arc<AtomicI64>);

impl Clock {
    fn new() -> Clock {
        Clock(Arc::new(AtomicI64::new(ts(T0).as_millisecond())))
    }
    fn set(&self, t: Timestamp) {
        self.0.store(t.as_millisecond(), Ordering::SeqCst);
    }
    fn clock(&self) -> day2_alerthub::hub::Clock {
        let c = self.0.clone();
        Arc::new(move || Timestamp::from_millisecond(c.load(Ordering::SeqCst)).unwrap())
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn min(m: i64) -> SignedDuration {
    SignedDuration::from_mins(m)
}

fn settings() -> IncidentSettings {
    #[derive(serde::Deserialize)]
    struct Doc {
        incidents: IncidentsConfig,
    }
    let d: Doc = serde_yaml_ng::from_str(CONFIG).unwrap();
    IncidentSettings {
        incidents: d.incidents.compile().unwrap(),
        base_url: "http://day2.test".into(),
    }
}

/// A notification of `receiver` for group `DBDown` with alerts (instance, severity, firing).
fn notification(
    receiver: &str,
    outbox_id: i64,
    at: Timestamp,
    alerts: &[(&str, &str, bool)],
) -> InternalNotification {
    let alerts: Vec<NotifiedAlert> = alerts
        .iter()
        .map(|(instance, severity, firing)| NotifiedAlert {
            status: if *firing { "firing" } else { "resolved" }.into(),
            labels: BTreeMap::from([
                ("alertname".to_string(), "DBDown".to_string()),
                ("instance".to_string(), instance.to_string()),
                ("severity".to_string(), severity.to_string()),
                ("service".to_string(), "postgres".to_string()),
            ]),
            annotations: BTreeMap::from([("summary".to_string(), format!("{instance} is down"))]),
            starts_at: at - min(1),
            ends_at: if *firing {
                ts("0001-01-01T00:00:00Z")
            } else {
                at
            },
            generator_url: String::new(),
            fingerprint: format!("fp-{instance}"),
        })
        .collect();
    InternalNotification {
        outbox_id,
        created_at: at,
        receiver: receiver.into(),
        message: WebhookMessage {
            receiver: receiver.into(),
            status: "firing".into(),
            alerts,
            group_labels: BTreeMap::new(),
            common_labels: BTreeMap::new(),
            common_annotations: BTreeMap::new(),
            external_url: String::new(),
            group_key: "{}:{alertname=\"DBDown\"}".into(),
            truncated_alerts: 0,
        },
    }
}

#[derive(Default)]
struct Outbox(Mutex<Vec<(String, RenderedMessage)>>);

impl CommsOutlet for Outbox {
    fn send(&self, incident: &Incident, m: &RenderedMessage) -> Result<Vec<String>, String> {
        self.0.lock().push((incident.id.clone(), m.clone()));
        Ok(Vec::new())
    }
}

struct Pages;

impl AlertHistory for Pages {
    fn history(&self, fingerprint: &str) -> Vec<ExternalEntry> {
        if fingerprint != "fp-b" {
            return Vec::new();
        }
        vec![ExternalEntry {
            kind: EntryKind::NotificationSent,
            at: ts(T0) + min(2),
            actor: Actor::system("oncall"),
            text: "Paged alice via webhook (step 1, round 1)".into(),
            data: json!({"key": "page:1"}).as_object().cloned().unwrap(),
        }]
    }
}

fn runtime(dir: &tempfile::TempDir, clock: &Clock) -> (Arc<IncidentRuntime>, Arc<Outbox>) {
    let rt = IncidentRuntime::new(
        Arc::new(Store::open_dir(dir.path()).unwrap()),
        settings(),
        clock.clock(),
    );
    let out = Arc::new(Outbox::default());
    rt.set_outlet(out.clone());
    rt.set_history(Arc::new(Pages));
    (rt, out)
}

fn kinds(inc: &Incident) -> Vec<String> {
    inc.timeline.iter().map(|e| e.kind.to_string()).collect()
}

#[test]
fn alerts_open_link_escalate_and_resolve_one_incident_per_group() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::new();
    let (rt, out) = runtime(&dir, &clock);
    let t0 = ts(T0);

    rt.handle_notification(&notification("db-pager", 1, t0, &[("a", "warning", true)]))
        .unwrap();
    // handed over twice: applied once
    rt.handle_notification(&notification("db-pager", 1, t0, &[("a", "warning", true)]))
        .unwrap();
    let list = rt.list(true).unwrap();
    assert_eq!(list.len(), 1);
    let inc = &list[0];
    assert_eq!(inc.id, "INC-1");
    assert_eq!(inc.severity, Severity::Sev3, "the map's default");
    assert_eq!(inc.title, "a is down");
    assert_eq!(inc.service.as_deref(), Some("postgres"));
    assert_eq!(inc.components, ["db"]);
    assert_eq!(inc.created_at, t0);

    // a critical alert joins the group: linked, severity raised, its pages imported
    clock.set(t0 + min(3));
    rt.handle_notification(&notification(
        "db-pager",
        2,
        t0 + min(3),
        &[("a", "warning", true), ("b", "critical", true)],
    ))
    .unwrap();
    let inc = rt.get("INC-1").unwrap();
    assert_eq!(inc.alerts.len(), 2);
    assert_eq!(inc.severity, Severity::Sev1);
    assert_eq!(
        kinds(&inc),
        [
            "status_change",
            "alert_firing",
            "note",
            "notification_sent",
            "alert_firing",
            "severity_change"
        ]
    );
    assert_eq!(
        inc.timeline[3].text,
        "Paged alice via webhook (step 1, round 1)"
    );

    // an acknowledgement by on-call, reported twice, recorded once
    for want in [vec!["INC-1".to_string()], vec![]] {
        let ids = rt
            .acknowledge_for_alerts(
                &["fp-b".into()],
                "alice",
                "Acknowledged by alice (via link)",
                "ack:1",
                t0 + min(4),
            )
            .unwrap();
        assert_eq!(ids, want);
    }
    let inc = rt.get("INC-1").unwrap();
    assert_eq!(inc.acknowledged_at, Some(t0 + min(4)));
    assert_eq!(
        inc.timeline
            .iter()
            .filter(|e| e.kind == EntryKind::Acknowledged)
            .count(),
        1
    );
    // a remediation step on the alert's incident
    let ids = rt
        .record_remediation(
            &["fp-a".into()],
            "remediate",
            "restart postgres: exit 0",
            "run:1:step:1",
            t0 + min(5),
        )
        .unwrap();
    assert_eq!(ids, ["INC-1"]);

    // one alert resolves: recorded, the incident stays open
    rt.handle_notification(&notification(
        "db-pager",
        3,
        t0 + min(6),
        &[("a", "warning", false), ("b", "critical", true)],
    ))
    .unwrap();
    assert_eq!(rt.get("INC-1").unwrap().status, Status::Investigating);
    // all resolved: resolved by day2, with the SEV1 resolved message on the status page
    clock.set(t0 + min(8));
    rt.handle_notification(&notification(
        "db-pager",
        4,
        t0 + min(8),
        &[("a", "warning", false), ("b", "critical", false)],
    ))
    .unwrap();
    let inc = rt.get("INC-1").unwrap();
    assert_eq!(inc.status, Status::Resolved);
    assert_eq!(inc.resolved_at, Some(t0 + min(8)));
    assert_eq!(
        inc.public_updates.last().unwrap().body,
        "Resolved after 8m."
    );
    let k = kinds(&inc);
    assert_eq!(
        &k[6..],
        [
            "acknowledged",
            "remediation_step",
            "alert_resolved",
            "alert_resolved",
            "status_change",
            "note"
        ]
    );
    // opened as SEV3: no opening messages went out; nothing was queued
    assert!(out.0.lock().is_empty());

    // the group fires again: a new incident
    clock.set(t0 + min(20));
    rt.handle_notification(&notification(
        "db-pager",
        5,
        t0 + min(20),
        &[("b", "critical", true)],
    ))
    .unwrap();
    let open = rt.list(false).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, "INC-2");
    assert_eq!(open[0].severity, Severity::Sev1);
    // SEV1 opening: a public update and an email to the notify users
    assert_eq!(
        open[0].public_updates[0].body,
        "Investigating <problems> with db."
    );
    let sent = out.0.lock().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, "INC-2");
    assert_eq!(sent[0].1.channel, "email");
    assert_eq!(sent[0].1.notify, ["alice", "bob"]);
    assert_eq!(
        sent[0].1.body,
        "http://day2.test/api/day2/v1/incidents/INC-2"
    );
    assert!(open[0].timeline.iter().any(|e| {
        e.text
            .starts_with("Queued email message (opened) for alice, bob: [SEV1] b is down")
    }));

    // a receiver whose map does not match opens nothing; an unknown receiver is refused
    rt.handle_notification(&notification("quiet", 6, t0, &[("c", "warning", true)]))
        .unwrap();
    assert_eq!(rt.list(true).unwrap().len(), 2);
    // but once its group has an incident, an unmapped alert of the group joins it
    rt.handle_notification(&notification(
        "quiet",
        8,
        t0 + min(21),
        &[("c", "warning", true), ("d", "critical", true)],
    ))
    .unwrap();
    let quiet = rt.get("INC-3").unwrap();
    assert_eq!(quiet.severity, Severity::Sev2);
    let mut linked: Vec<&str> = quiet
        .alerts
        .iter()
        .map(|a| a.fingerprint.as_str())
        .collect();
    linked.sort();
    assert_eq!(linked, ["fp-c", "fp-d"]);
    assert!(matches!(
        rt.handle_notification(&notification("other", 7, t0, &[("c", "critical", true)])),
        Err(RuntimeError::BadRequest(_))
    ));
}

#[test]
fn incidents_by_hand_through_actions_with_postmortem_and_status_page() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::new();
    let (rt, out) = runtime(&dir, &clock);
    let t0 = ts(T0);
    let new: NewIncident = serde_json::from_value(json!({
        "title": "Checkout <errors>",
        "severity": "SEV3",
        "components": ["api"],
        "commander": "carol",
        "public_title": "Elevated <b>errors</b>",
    }))
    .unwrap();
    let inc = rt.create(new, "carol").unwrap();
    assert_eq!(inc.id, "INC-1");
    assert_eq!(inc.roles.commander.as_deref(), Some("carol"));
    let act = |name: &str, body: serde_json::Value| {
        rt.act("INC-1", Action::parse(name, &body).unwrap(), "dave")
    };
    clock.set(t0 + min(5));
    act(
        "status",
        json!({"status": "identified", "message": "bad deploy"}),
    )
    .unwrap();
    let slack = out.0.lock().last().cloned().unwrap();
    assert_eq!(slack.1.channel, "slack");
    assert_eq!(slack.1.body, "INC-1 is identified: bad deploy");
    act(
        "role",
        json!({"role": "communications_lead", "user": "erin"}),
    )
    .unwrap();
    act("note", json!({"text": "rolling back"})).unwrap();
    act(
        "link-alert",
        json!({"fingerprint": "fp-b", "labels": {"alertname": "DBDown"}}),
    )
    .unwrap();
    act(
        "public_update",
        json!({"body": "A fix is being rolled out & monitored."}),
    )
    .unwrap();
    clock.set(t0 + min(30));
    let inc = act("status", json!({"status": "resolved"})).unwrap();
    assert_eq!(
        inc.acknowledged_at,
        Some(t0 + min(5)),
        "the first status change by a person"
    );
    assert!(matches!(
        act("status", json!({"status": "monitoring"})),
        Err(RuntimeError::Refused(_))
    ));
    assert!(matches!(
        Action::parse("status", &json!({"status": "sleeping"})),
        Err(RuntimeError::BadRequest(_))
    ));
    assert!(matches!(
        Action::parse("note", &json!({"text": "x", "extra": 1})),
        Err(RuntimeError::BadRequest(_))
    ));
    assert!(matches!(
        act("components", json!({"components": ["nope"]})),
        Err(RuntimeError::BadRequest(_))
    ));
    assert!(matches!(rt.get("INC-9"), Err(RuntimeError::NotFound(_))));

    let md = rt.postmortem("INC-1").unwrap();
    assert!(
        md.starts_with("# Postmortem: Checkout &lt;errors&gt;"),
        "{md}"
    );
    assert!(md.contains("| Time to acknowledge | 5m |"), "{md}");
    assert!(md.contains("| Time to resolve | 30m |"), "{md}");
    assert!(md.contains("Paged alice via webhook"), "{md}");
    assert!(md.contains("rolling back"), "{md}");

    // maintenance and the public page: public data only, escaped in HTML
    rt.put_maintenance(
        serde_json::from_value(json!({
            "id": "m1", "title": "DB upgrade", "components": ["db"],
            "scheduled_for": "2026-03-02T11:00:00Z", "scheduled_until": "2026-03-02T12:00:00Z"
        }))
        .unwrap(),
        "carol",
    )
    .unwrap();
    let page = rt.status_page().unwrap().unwrap();
    assert_eq!(page.incidents.len(), 0);
    assert_eq!(page.history.len(), 1);
    assert_eq!(page.history[0].name, "Elevated <b>errors</b>");
    assert_eq!(page.scheduled_maintenances[0].name, "DB upgrade");
    let json = page.to_json();
    assert!(
        !json.contains("Checkout"),
        "the internal title stays internal"
    );
    assert!(!json.contains("rolling back"), "notes stay internal");
    let html = page.to_html();
    assert!(
        html.contains("Elevated &lt;b&gt;errors&lt;&#x2f;b&gt;"),
        "{html}"
    );
    assert!(html.contains("Acme &lt;status&gt;"), "{html}");
    assert!(!html.contains("<b>errors"), "{html}");
}
