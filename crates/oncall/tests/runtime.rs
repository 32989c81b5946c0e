//! The on-call runtime over a real state store with a frozen clock:
//! escalation steps fire on time, an acknowledgement stops them, a restart
//! fires the steps that came due while down exactly once, and pages go out
//! to a loopback webhook with a working signed acknowledgement link.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use day2_alerthub::EgressPolicy;
use day2_alerthub::internal::{InternalNotification, NotifiedAlert, WebhookMessage};
use day2_oncall::OnCall;
use day2_oncall::runtime::{
    AckLinkSettings, EscalationEvent, EscalationObserver, OnCallError, OnCallRuntime,
    OnCallSettings,
};
use day2_store::Store;
use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;
use serde_json::Value;

const T0: &str = "2026-03-02T10:00:00Z";

fn config(hook: &str) -> String {
    format!(
        r#"
oncall:
  users:
    - id: alice
      contact_methods: [{{ webhook: {{ url: "{hook}/alice" }} }}]
    - id: bob
      contact_methods: [{{ webhook: {{ url: "{hook}/bob" }} }}]
    - id: carol
      contact_methods: [{{ webhook: {{ url: "{hook}/carol" }} }}]
  schedules:
    - name: primary
      time_zone: UTC
      layers:
        - {{ users: [alice, carol], rotation: daily, handoff: "00:00", start: 2026-03-02 }}
  escalation_policies:
    - name: db
      steps:
        - targets: [{{ schedule: primary }}]
        - delay: 5m
          targets: [{{ user: bob }}]
      repeat: 1
      repeat_after: 10m
  receivers:
    db-pager: {{ escalation_policy: db }}
"#
    )
}

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

fn settings(hook: &str) -> OnCallSettings {
    OnCallSettings {
        oncall: OnCall::parse_document(&config(hook), "day2.yml").unwrap(),
        ack: Some(AckLinkSettings {
            key: b"an acknowledgement key of 32+ bytes".to_vec(),
            base_url: "http://day2.test/".into(),
            valid_for: SignedDuration::from_hours(1),
        }),
        egress: EgressPolicy::from_list(&["127.0.0.0/8".to_string()]).unwrap(),
        smtp: None,
    }
}

fn notification(
    outbox_id: i64,
    at: Timestamp,
    firing: &[&str],
    resolved: &[&str],
) -> InternalNotification {
    let alert = |instance: &str, status: &str| NotifiedAlert {
        status: status.into(),
        labels: BTreeMap::from([
            ("alertname".to_string(), "DBDown".to_string()),
            ("instance".to_string(), instance.to_string()),
        ]),
        annotations: BTreeMap::new(),
        starts_at: at - min(1),
        ends_at: if status == "firing" {
            ts("0001-01-01T00:00:00Z")
        } else {
            at
        },
        generator_url: String::new(),
        fingerprint: format!("fp-{instance}"),
    };
    let alerts: Vec<NotifiedAlert> = firing
        .iter()
        .map(|i| alert(i, "firing"))
        .chain(resolved.iter().map(|i| alert(i, "resolved")))
        .collect();
    InternalNotification {
        outbox_id,
        created_at: at,
        receiver: "db-pager".into(),
        message: WebhookMessage {
            receiver: "db-pager".into(),
            status: if firing.is_empty() {
                "resolved"
            } else {
                "firing"
            }
            .into(),
            alerts,
            group_labels: BTreeMap::from([("alertname".to_string(), "DBDown".to_string())]),
            common_labels: BTreeMap::new(),
            common_annotations: BTreeMap::new(),
            external_url: "http://day2.test".into(),
            group_key: "{}:{alertname=\"DBDown\"}".into(),
            truncated_alerts: 0,
        },
    }
}

/// (round, step, users) of every fired step.
fn fired(rt: &OnCallRuntime, id: i64) -> Vec<(u64, u64, Vec<String>)> {
    let v = rt
        .escalation_json(&rt.escalation(id).unwrap(), true)
        .unwrap();
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["round"].as_u64().unwrap(),
                s["step"].as_u64().unwrap(),
                s["users"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|u| u.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

fn page_count(rt: &OnCallRuntime, id: i64) -> usize {
    let v = rt
        .escalation_json(&rt.escalation(id).unwrap(), true)
        .unwrap();
    v["pages"].as_array().unwrap().len()
}

fn only_escalation(rt: &OnCallRuntime) -> i64 {
    let list = rt.escalations_json(false, None).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    list[0]["id"].as_i64().unwrap()
}

fn store(dir: &tempfile::TempDir) -> Arc<Store> {
    Arc::new(Store::open_dir(dir.path()).unwrap())
}

#[test]
fn steps_fire_on_time_and_an_ack_stops_them_until_the_alerts_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::new();
    let rt = OnCallRuntime::new(store(&dir), settings("http://127.0.0.1:9"), clock.clock());
    let t0 = ts(T0);

    rt.handle_notification(&notification(1, t0, &["a"], &[]))
        .unwrap();
    let id = only_escalation(&rt);
    assert_eq!(rt.escalate_once().unwrap(), Some(t0 + min(5)));
    assert_eq!(fired(&rt, id), vec![(1, 1, vec!["alice".to_string()])]);

    clock.set(t0 + min(4));
    assert_eq!(rt.escalate_once().unwrap(), Some(t0 + min(5)));
    assert_eq!(fired(&rt, id).len(), 1, "nothing due before 5m");

    // a later notification of the same group (another alert joins) keeps the escalation
    clock.set(t0 + min(5));
    rt.handle_notification(&notification(2, t0 + min(5), &["a", "b"], &[]))
        .unwrap();
    assert_eq!(only_escalation(&rt), id);
    assert_eq!(rt.escalate_once().unwrap(), Some(t0 + min(15)));
    assert_eq!(
        fired(&rt, id),
        vec![(1, 1, vec!["alice".into()]), (1, 2, vec!["bob".into()])]
    );

    clock.set(t0 + min(6));
    let ack = rt.ack(id, "bob", "api").unwrap();
    assert!(ack.acknowledged_now);
    assert_eq!(ack.acked_at, t0 + min(6));
    let again = rt.ack(id, "carol", "cli").unwrap();
    assert!(!again.acknowledged_now);
    assert_eq!(again.acked_by, "bob");

    clock.set(t0 + min(60));
    assert_eq!(rt.escalate_once().unwrap(), None);
    assert_eq!(fired(&rt, id).len(), 2, "no step after the ack");
    let v = rt
        .escalation_json(&rt.escalation(id).unwrap(), false)
        .unwrap();
    assert_eq!(v["state"], "acknowledged");
    assert_eq!(v["acked_by"], "bob");

    // the ack ends with the alerts: resolved, then a new firing starts over
    rt.handle_notification(&notification(3, t0 + min(61), &[], &["a", "b"]))
        .unwrap();
    let v = rt
        .escalation_json(&rt.escalation(id).unwrap(), false)
        .unwrap();
    assert_eq!(v["state"], "resolved");
    assert!(matches!(
        rt.ack(id, "bob", "api"),
        Err(OnCallError::Conflict(_))
    ));
    clock.set(t0 + min(70));
    rt.handle_notification(&notification(4, t0 + min(70), &["a"], &[]))
        .unwrap();
    let list = rt.escalations_json(true, None).unwrap();
    let new_id = list[0]["id"].as_i64().unwrap();
    assert_ne!(new_id, id);
    assert_eq!(list[0]["state"], "escalating");
    rt.escalate_once().unwrap();
    assert_eq!(fired(&rt, new_id), vec![(1, 1, vec!["alice".to_string()])]);
}

#[test]
fn a_runbook_escalation_opens_once_pages_its_note_and_ends_when_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::new();
    let store = store(&dir);
    let rt = OnCallRuntime::new(store.clone(), settings("http://127.0.0.1:9"), clock.clock());
    let t0 = ts(T0);
    assert!(matches!(
        rt.open_direct("runbook:fix", "run:1:page", "nope", "x", &[]),
        Err(OnCallError::BadRequest(_))
    ));
    let alert = day2_oncall::page::PageAlert {
        fingerprint: "fp-a".into(),
        status: "firing".into(),
        labels: BTreeMap::from([("alertname".to_string(), "DBDown".to_string())]),
        annotations: BTreeMap::new(),
        starts_at: t0,
    };
    let (id, opened) = rt
        .open_direct(
            "runbook:fix",
            "run:1:page",
            "db",
            "fix failed on db1",
            std::slice::from_ref(&alert),
        )
        .unwrap();
    assert!(opened);
    // the same step again opens nothing
    assert_eq!(
        rt.open_direct(
            "runbook:fix",
            "run:1:page",
            "db",
            "fix failed on db1",
            &[alert]
        )
        .unwrap(),
        (id, false)
    );
    rt.escalate_once().unwrap();
    assert_eq!(fired(&rt, id), vec![(1, 1, vec!["alice".to_string()])]);
    let pages = store.oncall_pages(id).unwrap();
    let page: Value = serde_json::from_str(&pages[0].payload).unwrap();
    assert_eq!(
        page["title"],
        "[day2] fix failed on db1 (runbook:fix, step 1 round 1)"
    );
    assert!(
        page["text"]
            .as_str()
            .unwrap()
            .starts_with("fix failed on db1\n- [firing] alertname=DBDown")
    );
    // it carries the alert: an acknowledgement by alert reaches it
    clock.set(t0 + min(1));
    let acks = rt.ack_alert("fp-a", "alice", "api").unwrap();
    assert_eq!(acks.len(), 1);
    let v = rt
        .escalation_json(&rt.escalation(id).unwrap(), false)
        .unwrap();
    assert_eq!(v["state"], "resolved", "{v}");
    clock.set(t0 + min(60));
    rt.escalate_once().unwrap();
    assert_eq!(fired(&rt, id).len(), 1);
}

#[test]
fn a_restart_fires_the_steps_due_while_down_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::new();
    let t0 = ts(T0);
    let id = {
        let rt = OnCallRuntime::new(store(&dir), settings("http://127.0.0.1:9"), clock.clock());
        rt.handle_notification(&notification(1, t0, &["a"], &[]))
            .unwrap();
        rt.escalate_once().unwrap();
        only_escalation(&rt)
    };
    // down from t0 until t0+25m: step 2 (5m), round 2's steps (15m, 20m) came due
    clock.set(t0 + min(25));
    let rt = OnCallRuntime::new(store(&dir), settings("http://127.0.0.1:9"), clock.clock());
    assert_eq!(rt.escalate_once().unwrap(), None, "every round has run");
    let want = vec![
        (1, 1, vec!["alice".to_string()]),
        (1, 2, vec!["bob".to_string()]),
        (2, 1, vec!["alice".to_string()]),
        (2, 2, vec!["bob".to_string()]),
    ];
    assert_eq!(fired(&rt, id), want);
    assert_eq!(page_count(&rt, id), 4);
    let steps = rt
        .escalation_json(&rt.escalation(id).unwrap(), true)
        .unwrap()["steps"]
        .clone();
    assert_eq!(
        steps[2]["due_at"],
        (t0 + min(15)).to_string(),
        "due time kept"
    );
    assert_eq!(steps[2]["fired_at"], (t0 + min(25)).to_string());

    // neither a second pass nor another restart pages again
    rt.escalate_once().unwrap();
    drop(rt);
    let rt = OnCallRuntime::new(store(&dir), settings("http://127.0.0.1:9"), clock.clock());
    clock.set(t0 + min(90));
    rt.escalate_once().unwrap();
    assert_eq!(fired(&rt, id), want);
    assert_eq!(page_count(&rt, id), 4);
}

#[test]
fn redelivered_and_out_of_order_notifications_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::new();
    let t0 = ts(T0);
    let rt = OnCallRuntime::new(store(&dir), settings("http://127.0.0.1:9"), clock.clock());
    rt.handle_notification(&notification(5, t0, &["a"], &[]))
        .unwrap();
    rt.handle_notification(&notification(5, t0, &["a"], &[]))
        .unwrap();
    let id = only_escalation(&rt);
    rt.handle_notification(&notification(7, t0 + min(2), &[], &["a"]))
        .unwrap();
    // the firing notification 6 arrives after the resolve 7: it is stale
    rt.handle_notification(&notification(6, t0 + min(1), &["a"], &[]))
        .unwrap();
    assert_eq!(only_escalation(&rt), id);
    assert!(
        rt.escalations_json(true, None)
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty()
    );
    // a resolve for a group that never paged opens nothing
    let mut other = notification(8, t0, &[], &["x"]);
    other.message.group_key = "{}:{alertname=\"Other\"}".into();
    rt.handle_notification(&other).unwrap();
    assert_eq!(only_escalation(&rt), id);
    // a receiver without a policy is refused (the hub records a permanent failure)
    let mut unknown = notification(9, t0, &["a"], &[]);
    unknown.receiver = "nobody".into();
    assert!(matches!(
        rt.handle_notification(&unknown),
        Err(OnCallError::BadRequest(_))
    ));
}

/// A loopback webhook receiver: records (path, body), answers queued codes (then 200).
#[derive(Clone, Default)]
struct Hook {
    got: Arc<Mutex<Vec<(String, Value)>>>,
    codes: Arc<Mutex<VecDeque<u16>>>,
}

impl Hook {
    async fn start() -> (Hook, String) {
        let hook = Hook::default();
        let h = hook.clone();
        let app = axum::Router::new().route(
            "/{user}",
            axum::routing::post(
                move |axum::extract::Path(user): axum::extract::Path<String>,
                      body: axum::body::Bytes| {
                    let h = h.clone();
                    async move {
                        let code = h.codes.lock().pop_front().unwrap_or(200);
                        if code == 200 {
                            h.got
                                .lock()
                                .push((user, serde_json::from_slice(&body).unwrap()));
                        }
                        axum::http::StatusCode::from_u16(code).unwrap()
                    }
                },
            ),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        (hook, url)
    }
}

#[derive(Default)]
struct Seen(Mutex<Vec<EscalationEvent>>);

impl EscalationObserver for Seen {
    fn observe(&self, e: &EscalationEvent) {
        self.0.lock().push(e.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_a_signed_link_that_acknowledges_and_failures_are_retried() {
    let (hook, url) = Hook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::new();
    let t0 = ts(T0);
    let rt = OnCallRuntime::new(store(&dir), settings(&url), clock.clock());
    let seen = Arc::new(Seen::default());
    rt.set_observer(seen.clone());
    rt.handle_notification(&notification(1, t0, &["a"], &[]))
        .unwrap();
    let id = only_escalation(&rt);
    rt.escalate_once().unwrap();

    // the first attempt meets a 503: retried later, not lost
    hook.codes.lock().push_back(503);
    assert_eq!(rt.deliver_due_once().await.unwrap(), 1);
    let v = rt
        .escalation_json(&rt.escalation(id).unwrap(), true)
        .unwrap();
    assert_eq!(v["pages"][0]["state"], "pending");
    assert_eq!(v["pages"][0]["status_code"], 503);
    assert_eq!(rt.deliver_due_once().await.unwrap(), 0, "not due yet");
    clock.set(t0 + SignedDuration::from_secs(2));
    assert_eq!(rt.deliver_due_once().await.unwrap(), 1);
    let got = hook.got.lock().clone();
    assert_eq!(got.len(), 1);
    let (user, body) = &got[0];
    assert_eq!(user, "alice");
    assert_eq!(body["kind"], "escalation");
    assert_eq!(body["escalation"]["id"], id);
    assert_eq!(body["alerts"][0]["fingerprint"], "fp-a");
    let link = body["ack_url"].as_str().unwrap();
    let token = link.strip_prefix("http://day2.test/oncall/ack/").unwrap();

    // checking a link acts on nothing; using it acknowledges as alice
    let (claims, _) = rt.check_link(token).unwrap();
    assert_eq!(claims.user, "alice");
    assert_eq!(
        rt.escalation_json(&rt.escalation(id).unwrap(), false)
            .unwrap()["state"],
        "escalating"
    );
    let forged = format!("{}0", token);
    assert!(rt.ack_with_link(&forged).is_err());
    clock.set(t0 + min(3));
    let ack = rt.ack_with_link(token).unwrap();
    assert_eq!(
        (ack.acked_by.as_str(), ack.acknowledged_now),
        ("alice", true)
    );
    let v = rt
        .escalation_json(&rt.escalation(id).unwrap(), true)
        .unwrap();
    assert_eq!(v["ack_via"], "link");
    clock.set(t0 + min(30));
    rt.escalate_once().unwrap();
    assert_eq!(fired(&rt, id).len(), 1, "bob is never paged");

    // an expired link is refused
    clock.set(t0 + min(90));
    assert!(matches!(
        rt.check_link(token),
        Err(OnCallError::Link(
            day2_oncall::acklink::AckLinkError::Expired(_)
        ))
    ));

    let kinds: Vec<String> = seen.0.lock().iter().map(|e| e.kind.clone()).collect();
    assert_eq!(kinds, ["opened", "step", "page_sent", "acknowledged"]);
    let sent = seen.0.lock()[2].clone();
    assert_eq!(sent.fingerprints, vec!["fp-a".to_string()]);
    assert_eq!(sent.key(), format!("page:{}", v["pages"][0]["id"]));

    // a 4xx is a permanent failure, recorded
    rt.send_message(
        &["bob".into(), "zoe".into()],
        "webhook",
        "INC-1 opened",
        "text",
        Some("INC-1"),
    )
    .map(|skipped| assert_eq!(skipped, vec!["zoe".to_string()]))
    .unwrap();
    hook.codes.lock().push_back(404);
    assert_eq!(rt.deliver_due_once().await.unwrap(), 1);
    let failed = seen.0.lock().last().cloned().unwrap();
    assert_eq!(failed.kind, "page_failed");
    assert_eq!(failed.incident.as_deref(), Some("INC-1"));
    assert!(failed.text.contains("client error 404"), "{}", failed.text);
}

fn retention_metric(rt: &OnCallRuntime, kind: &str) -> String {
    let mut out = String::new();
    rt.render_metrics(&mut out);
    let prefix = format!("day2_oncall_retention_deleted_total{{kind=\"{kind}\"}} ");
    out.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{out}"))
        .to_string()
}

#[test]
fn retention_runs_at_start_then_hourly_and_deletes_only_escalations_resolved_long_ago() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::new();
    let mut s = settings("http://127.0.0.1:9");
    s.oncall.retention = Some(SignedDuration::from_hours(24));
    let rt = OnCallRuntime::new(store(&dir), s, clock.clock());
    let t0 = ts(T0);
    let day = SignedDuration::from_hours(24);

    rt.handle_notification(&notification(1, t0, &["a"], &[]))
        .unwrap();
    let old = only_escalation(&rt);
    clock.set(t0 + min(10));
    rt.handle_notification(&notification(2, t0 + min(10), &[], &["a"]))
        .unwrap();
    clock.set(t0 + min(20));
    rt.handle_notification(&notification(3, t0 + min(20), &["a"], &[]))
        .unwrap();
    let open = rt.escalations_json(true, None).unwrap()[0]["id"]
        .as_i64()
        .unwrap();
    assert_ne!(open, old);

    // the first pass runs at once; the old escalation is not yet a day resolved
    let c = rt.retain_if_due().unwrap().expect("a first pass");
    assert_eq!(c.escalations, 0);
    clock.set(t0 + min(20) + min(59));
    assert_eq!(rt.retain_if_due().unwrap(), None, "not due within the hour");

    // a day and 5 minutes later: resolved 23h55m ago, kept
    clock.set(t0 + day + min(5));
    assert_eq!(rt.retain_if_due().unwrap().unwrap().escalations, 0);
    assert!(rt.escalation(old).is_ok());

    // the next hourly pass deletes it with its events; the open one stays
    clock.set(t0 + day + min(30));
    assert_eq!(rt.retain_if_due().unwrap(), None);
    clock.set(t0 + day + min(65));
    let c = rt.retain_if_due().unwrap().unwrap();
    assert_eq!((c.escalations, c.alert_links), (1, 1));
    assert!(c.events >= 2, "opened and resolved: {c:?}");
    assert!(matches!(rt.escalation(old), Err(OnCallError::NotFound(_))));
    assert!(rt.escalation(open).is_ok());
    assert_eq!(retention_metric(&rt, "escalations"), "1");
    assert_eq!(retention_metric(&rt, "events"), c.events.to_string());

    // retention 0 keeps everything
    let mut s = rt.settings().as_ref().clone();
    s.oncall.retention = None;
    rt.apply(s);
    rt.handle_notification(&notification(4, t0 + day + min(66), &[], &["a"]))
        .unwrap();
    clock.set(t0 + day * 30);
    assert_eq!(rt.retain_if_due().unwrap(), None);
    assert!(rt.escalation(open).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_escalation_loop_applies_retention_when_started() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::new();
    let rt = OnCallRuntime::new(store(&dir), settings("http://127.0.0.1:9"), clock.clock());
    let t0 = ts(T0);
    rt.handle_notification(&notification(1, t0, &["a"], &[]))
        .unwrap();
    let id = only_escalation(&rt);
    rt.handle_notification(&notification(2, t0 + min(1), &[], &["a"]))
        .unwrap();
    // the default retention is 90 days
    clock.set(t0 + SignedDuration::from_hours(91 * 24));
    rt.start();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while rt.escalation(id).is_ok() {
        assert!(std::time::Instant::now() < deadline, "not deleted in time");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    rt.stop();
    assert_eq!(retention_metric(&rt, "escalations"), "1");
}
