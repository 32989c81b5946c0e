//! An incident from the first alert to resolution, through every kind of timeline entry,
//! checked through the timeline, the postmortem, comms and the status page.

use std::collections::BTreeMap;

use day2_incident::comms::{MessageSpec, SeverityComms};
use day2_incident::statuspage::{ComponentConfig, PageConfig};
use day2_incident::*;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

fn t(s: &str) -> Timestamp {
    format!("2026-03-14T{s}Z").parse().unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The walk-through; also the source of `tests/testdata/resolved_sev1.json`.
pub fn walk() -> Incident {
    let map: SeverityMap = serde_json::from_value(json!({
        "rules": [
            {"matchers": ["severity=\"critical\""], "severity": "SEV1"},
            {"matchers": ["severity=\"warning\""], "severity": "SEV3"}
        ]
    }))
    .unwrap();
    let alert = AlertInput {
        fingerprint: "4f2a9c1d8e7b6a50".into(),
        labels: labels(&[
            ("alertname", "CheckoutErrorRate"),
            ("service", "checkout"),
            ("severity", "critical"),
        ]),
        annotations: labels(&[("summary", "Checkout 5xx ratio above 5%")]),
    };
    let sys = Actor::system("alerthub");
    let mut inc = Incident::open_from_alert(&map, "INC-1042", &alert, t("09:00:00")).unwrap();
    inc.record(
        EntryKind::NotificationSent,
        t("09:00:05"),
        Actor::system("oncall"),
        "Paged alice (escalation step 1, webhook)",
        obj(json!({"receiver": "oncall-webhook", "step": 1, "user": "alice"})),
    )
    .unwrap();
    inc.record(
        EntryKind::NotificationSent,
        t("09:05:05"),
        Actor::system("oncall"),
        "Paged bob (escalation step 2, webhook)",
        obj(json!({"receiver": "oncall-webhook", "step": 2, "user": "bob"})),
    )
    .unwrap();
    inc.acknowledge(t("09:06:30"), Actor::user("bob")).unwrap();
    inc.assign_role(
        Role::Commander,
        Some("bob"),
        t("09:07:00"),
        Actor::user("bob"),
    )
    .unwrap();
    inc.assign_role(
        Role::CommunicationsLead,
        Some("carol"),
        t("09:07:30"),
        Actor::user("bob"),
    )
    .unwrap();
    inc.set_components(vec!["checkout".into()], t("09:08:00"), Actor::user("carol"))
        .unwrap();
    inc.post_public_update(
        Some("Checkout errors"),
        "Some customers cannot complete checkout. We are investigating.",
        t("09:09:00"),
        Actor::user("carol"),
    )
    .unwrap();
    // A deployment that happened before the incident, reported late: placed by time.
    inc.record(
        EntryKind::Deployment,
        t("08:52:00"),
        Actor::system("ci"),
        "checkout v2.31.0 deployed",
        obj(json!({"service": "checkout", "version": "v2.31.0"})),
    )
    .unwrap();
    inc.add_note(
        "Error ratio jumped right after v2.31.0 | suspect the new payment client\nrolling back",
        t("09:12:00"),
        Actor::user("bob"),
    )
    .unwrap();
    inc.set_status(Status::Identified, t("09:12:10"), Actor::user("bob"))
        .unwrap();
    inc.link_alert(
        LinkedAlert {
            fingerprint: "77aa01be55c3d210".into(),
            labels: labels(&[
                ("alertname", "CheckoutLatencyHigh"),
                ("service", "checkout"),
                ("severity", "warning"),
            ]),
        },
        t("09:13:00"),
        sys.clone(),
    )
    .unwrap();
    inc.record(
        EntryKind::RemediationStep,
        t("09:14:00"),
        Actor::system("remediate"),
        "Runbook checkout-rollback: step rollout-undo started",
        obj(json!({"runbook": "checkout-rollback", "step": "rollout-undo", "phase": "before"})),
    )
    .unwrap();
    inc.record(
        EntryKind::RemediationStep,
        t("09:16:00"),
        Actor::system("remediate"),
        "Runbook checkout-rollback: step rollout-undo succeeded, verification passed",
        obj(json!({"runbook": "checkout-rollback", "step": "rollout-undo", "phase": "after", "ok": true})),
    )
    .unwrap();
    inc.set_status(Status::Monitoring, t("09:17:00"), Actor::user("bob"))
        .unwrap();
    inc.post_public_update(
        None,
        "A fix has been applied and we are monitoring the results.",
        t("09:17:30"),
        Actor::user("carol"),
    )
    .unwrap();
    let first = inc.alerts[0].clone();
    let second = inc.alerts[1].clone();
    inc.alert_resolved(&second, t("09:19:00"), sys.clone());
    inc.alert_resolved(&first, t("09:21:00"), sys.clone());
    inc.resolve(t("10:04:30"), Actor::user("bob")).unwrap();
    inc.post_public_update(
        None,
        "This incident has been resolved.",
        t("10:04:30"),
        Actor::user("carol"),
    )
    .unwrap();
    inc
}

#[test]
fn alert_to_resolution() {
    let inc = walk();
    assert_eq!(inc.status, Status::Resolved);
    assert_eq!(inc.severity, Severity::Sev1);
    assert_eq!(inc.service.as_deref(), Some("checkout"));
    assert_eq!(inc.roles.commander.as_deref(), Some("bob"));

    // Timeline in time order, with the late deployment first and ties in recording order.
    let kinds: Vec<&str> = inc.timeline.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "deployment",
            "status_change", // opened
            "alert_firing",
            "notification_sent",
            "notification_sent",
            "acknowledged",
            "role_change",
            "role_change",
            "note", // components
            "note", // public update
            "note",
            "status_change", // identified
            "alert_firing",
            "remediation_step",
            "remediation_step",
            "status_change", // monitoring
            "note",          // public update
            "alert_resolved",
            "alert_resolved",
            "status_change", // resolved
            "note",          // public update
        ]
    );
    assert!(inc.timeline.windows(2).all(|w| w[0].at <= w[1].at));
    let mut seqs: Vec<u64> = inc.timeline.iter().map(|e| e.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=inc.timeline.len() as u64).collect::<Vec<_>>());

    // Metrics.
    assert_eq!(
        time_to_acknowledge(&inc),
        Some(SignedDuration::from_secs(6 * 60 + 30))
    );
    assert_eq!(
        time_to_resolve(&inc),
        Some(SignedDuration::from_secs(64 * 60 + 30))
    );

    // Postmortem carries TTA / TTR and the whole timeline, escaped.
    let md = draft_postmortem(&inc);
    assert!(md.contains("| Time to acknowledge | 6m 30s |"), "{md}");
    assert!(md.contains("| Time to resolve | 1h 4m |"), "{md}");
    assert!(md.contains("| Incident commander | bob |"));
    assert!(md.contains("| Communications lead | carol |"));
    assert!(md.contains("v2.31.0 \\| suspect the new payment client<br>rolling back"));
    let rows = md
        .lines()
        .skip_while(|l| *l != "## Timeline")
        .filter(|l| l.starts_with("| 2026-"))
        .count();
    assert_eq!(rows, inc.timeline.len());

    // The status page shows only the public side, in history once resolved.
    let cfg = StatusPageConfig {
        page: PageConfig {
            id: "shop".into(),
            name: "Shop".into(),
            url: "https://status.shop.example".into(),
        },
        components: vec![ComponentConfig {
            id: "checkout".into(),
            name: "Checkout".into(),
            description: None,
        }],
        history_days: 90,
    };
    // Built for a time before the resolution, the page shows it open with the updates so far.
    let during = StatusSummary::build(&cfg, std::slice::from_ref(&inc), &[], t("09:10:00"));
    assert_eq!(during.incidents.len(), 1);
    assert_eq!(during.incidents[0].status, Status::Investigating);
    assert_eq!(during.incidents[0].incident_updates.len(), 1);
    assert_eq!(during.incidents[0].resolved_at, None);
    assert_eq!(during.status.indicator, "critical");
    assert!(during.history.is_empty());
    let after = StatusSummary::build(&cfg, std::slice::from_ref(&inc), &[], t("12:00:00"));
    assert_eq!(after.status.indicator, "none");
    assert_eq!(after.history.len(), 1);
    assert_eq!(after.history[0].name, "Checkout errors");
    assert_eq!(after.history[0].incident_updates.len(), 3);
    assert_eq!(after.history[0].incident_updates[0].status, "resolved");

    // Comms for the resolution.
    let comms = Comms::load(CommsConfig {
        severities: [(
            Severity::Sev1,
            SeverityComms {
                notify: vec!["exec".into()],
                messages: vec![MessageSpec {
                    on: CommsEvent::Resolved,
                    channel: "slack".into(),
                    format: MessageFormat::Markdown,
                    subject: None,
                    body: "{{ incident.severity }} {{ incident.id }} resolved after {{ incident.time_to_resolve }} (IC {{ incident.commander }})".into(),
                }],
            },
        )]
        .into(),
    })
    .unwrap();
    let msgs = comms
        .render(&inc, CommsEvent::Resolved, None, &BTreeMap::new())
        .unwrap();
    assert_eq!(msgs[0].body, "SEV1 INC-1042 resolved after 1h 4m (IC bob)");
}

#[test]
fn open_incident_drives_the_status_page() {
    let mut inc = walk();
    inc.reopen("errors are back", t("10:30:00"), Actor::user("bob"))
        .unwrap();
    let cfg = StatusPageConfig {
        page: PageConfig {
            id: "shop".into(),
            name: "Shop".into(),
            url: String::new(),
        },
        components: vec![ComponentConfig {
            id: "checkout".into(),
            name: "Checkout".into(),
            description: None,
        }],
        history_days: 90,
    };
    let s = StatusSummary::build(&cfg, &[inc], &[], t("10:31:00"));
    assert_eq!(s.components[0].status, ComponentStatus::MajorOutage);
    assert_eq!(s.status.indicator, "critical");
    assert_eq!(s.incidents.len(), 1);
    assert!(s.history.is_empty());
}

#[test]
fn mtta_mttr_over_incidents() {
    let a = walk();
    let mut b = Incident::open(
        "INC-2",
        "b",
        Severity::Sev3,
        t("11:00:00"),
        Actor::user("x"),
    );
    b.acknowledge(t("11:01:30"), Actor::user("x")).unwrap();
    b.resolve(t("11:25:30"), Actor::user("x")).unwrap();
    let stats = response_stats([&a, &b], None);
    assert_eq!(stats.mtta, Some(SignedDuration::from_secs((390 + 90) / 2)));
    assert_eq!(
        stats.mttr,
        Some(SignedDuration::from_secs((3870 + 1530) / 2))
    );
}

#[test]
#[ignore = "writes tests/testdata/resolved_sev1.json; run with --ignored to regenerate"]
fn regenerate_golden_input() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/testdata/resolved_sev1.json"
    );
    std::fs::write(path, serde_json::to_string_pretty(&walk()).unwrap() + "\n").unwrap();
}
