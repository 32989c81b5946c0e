//! The loop's adapters over real parts (SQLite state store, the on-call and
//! incident runtimes) without a server.

use std::path::Path;
use std::sync::Arc;

use day2_incident::model::LinkedAlert;
use day2_incident::runtime::{Action, IncidentRuntime, NewIncident};
use day2_incident::{EntryKind, Severity, Status};
use day2_remediate::Phase;
use jiff::Timestamp;
use parking_lot::RwLock;

use super::*;
use crate::config::Day2Config;

const ONCALL: &str = r#"
oncall:
  users:
    - { id: alice, contact_methods: [{ webhook: { url: "http://127.0.0.1:9/alice" } }] }
    - { id: quiet }
  escalation_policies:
    - name: api
      steps: [{ targets: [{ user: alice }] }]
"#;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

fn load_err(dir: &Path, remediation: &str) -> String {
    let p = write(
        dir,
        "day2.yml",
        &format!("host_metrics: {{enabled: false}}\n{ONCALL}remediation:\n{remediation}"),
    );
    match Day2Config::load(&p) {
        Ok(_) => panic!("accepted:\n{remediation}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn escalate_steps_naming_an_unknown_policy_or_user_are_config_errors_with_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let inline = "  runbooks:\n    - name: r\n      match: ['alertname=\"A\"']\n      steps:\n        - exec: {command: [/bin/true]}\n      on_failure:\n        - escalate: {message: m, policy: nope}\n";
    let err = load_err(dir.path(), inline);
    let file = dir.path().join("day2.yml").display().to_string();
    assert_eq!(
        err,
        format!(
            "{file}:17: remediation.runbooks[0].on_failure[0].escalate.policy: unknown escalation policy \"nope\" (oncall.escalation_policies)"
        )
    );
    let rb = write(
        dir.path(),
        "rb/a.yml",
        "runbooks:\n  - name: ok\n    match: ['alertname=\"A\"']\n    steps:\n      - escalate: {message: m, policy: api}\n  - name: r\n    match: ['alertname=\"A\"']\n    steps:\n      - exec: {command: [/bin/true]}\n      - escalate: {message: m, user: zed}\n",
    );
    let err = load_err(dir.path(), "  runbooks_dir: rb\n");
    assert_eq!(
        err,
        format!(
            "{}:10: runbooks[1].steps[1].escalate.user: unknown user \"zed\" (oncall.users)",
            rb.display()
        )
    );
    // known names load
    write(
        dir.path(),
        "rb/a.yml",
        "runbooks:\n  - name: ok\n    match: ['alertname=\"A\"']\n    steps:\n      - escalate: {message: m, policy: api}\n      - escalate: {message: m, user: alice}\n",
    );
    let p = dir.path().join("day2.yml");
    std::fs::write(
        &p,
        format!("host_metrics: {{enabled: false}}\n{ONCALL}remediation:\n  runbooks_dir: rb\n"),
    )
    .unwrap();
    Day2Config::load(&p).unwrap();
}

fn oncall(store: &Arc<Store>) -> Arc<OnCallRuntime> {
    let cfg = Day2Config::parse(ONCALL, "day2.yml").unwrap();
    let settings = crate::oncallwire::settings(&cfg, None).unwrap();
    OnCallRuntime::new(store.clone(), settings, day2_alerthub::hub::system_clock())
}

fn run() -> RunContext {
    RunContext {
        run: 7,
        runbook: "rollback-api".into(),
        target: "service=\"api\"".into(),
        alerts: vec!["fp-1".into()],
    }
}

fn request(policy: Option<&str>, user: Option<&str>) -> EscalateRequest {
    EscalateRequest {
        step: "page".into(),
        phase: Some(Phase::OnFailure),
        message: "rollback did not help".into(),
        policy: policy.map(str::to_string),
        user: user.map(str::to_string),
    }
}

#[test]
fn escalate_steps_open_a_policy_escalation_once_page_a_user_or_say_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_dir(dir.path()).unwrap());
    let oc = oncall(&store);
    let hub: HubCell = Arc::new(RwLock::new(None));

    // without a policy, and nothing escalating the alert: the step fails
    let err = escalate(&oc, &store, &hub, &run(), &request(None, None)).unwrap_err();
    assert_eq!(
        err,
        "no escalation policy is escalating the run's alerts: name a policy or user in the escalate step"
    );

    // a policy: one escalation per run, step and phase, carrying the alert
    let out = escalate(&oc, &store, &hub, &run(), &request(Some("api"), None)).unwrap();
    let id: i64 = out
        .strip_prefix("escalation ")
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(out, format!("escalation {id} opened with policy api"));
    let again = escalate(&oc, &store, &hub, &run(), &request(Some("api"), None)).unwrap();
    assert_eq!(
        again,
        format!("escalation {id} with policy api was already open")
    );
    let e = store.oncall_escalation(id).unwrap().unwrap();
    assert_eq!(
        (e.receiver.as_str(), e.group_key.as_str(), e.note.as_str()),
        (
            "runbook:rollback-api",
            "run:7:page:on_failure",
            "rollback did not help"
        )
    );
    let carried: Vec<PageAlert> = serde_json::from_str(&e.alerts).unwrap();
    assert_eq!(carried[0].fingerprint, "fp-1");
    // an escalation a runbook opened is not "the policy escalating the alert"
    assert!(escalating_policy(&store, &run().alerts).unwrap().is_none());

    // a user: one page to them, with the message
    let out = escalate(&oc, &store, &hub, &run(), &request(None, Some("alice"))).unwrap();
    assert_eq!(out, "paged alice");
    let pages = store.oncall_pages_due(i64::MAX, 10).unwrap();
    let page = pages
        .iter()
        .find(|p| p.escalation_id.is_none())
        .expect("the user's page");
    assert_eq!(page.user_id, "alice");
    let body: serde_json::Value = serde_json::from_str(&page.payload).unwrap();
    assert_eq!(
        body["title"],
        "[day2] runbook rollback-api run 7: rollback did not help"
    );
    // a user without a contact method cannot be paged
    let err = escalate(&oc, &store, &hub, &run(), &request(None, Some("quiet"))).unwrap_err();
    assert!(err.contains("\"quiet\""), "{err}");
}

fn linked(fp: &str, labels: &[(&str, &str)]) -> LinkedAlert {
    LinkedAlert {
        fingerprint: fp.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn incident(rt: &IncidentRuntime, service: Option<&str>, alerts: Vec<LinkedAlert>) -> String {
    rt.create(
        NewIncident {
            title: "t".into(),
            severity: Severity::Sev2,
            service: service.map(str::to_string),
            components: Vec::new(),
            commander: None,
            communications_lead: None,
            public_title: None,
            alerts,
        },
        "alice",
    )
    .unwrap()
    .id
}

#[test]
fn incidents_are_outages_of_the_service_and_environment_their_alerts_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_dir(dir.path()).unwrap());
    let rt = IncidentRuntime::new(
        store,
        Default::default(),
        day2_alerthub::hub::system_clock(),
    );
    let staging = incident(
        &rt,
        None,
        vec![linked(
            "a",
            &[("service", "api"), ("environment", "staging")],
        )],
    );
    // `job` is the section's second service label
    incident(&rt, None, vec![linked("b", &[("job", "web")])]);
    incident(&rt, Some("db"), Vec::new());
    incident(&rt, None, vec![linked("c", &[("instance", "x")])]);
    rt.act(
        &staging,
        Action::Status {
            status: Status::Resolved,
            message: None,
        },
        "alice",
    )
    .unwrap();
    let source = IncidentOutages(Arc::downgrade(&rt));
    let now = Timestamp::now().as_millisecond();
    let mut got = source
        .outages(&DeploymentsSection::default(), now - 60_000, now + 60_000)
        .unwrap();
    got.sort_by(|a, b| a.service.cmp(&b.service));
    let view: Vec<(&str, &str, bool)> = got
        .iter()
        .map(|o| (o.service.as_str(), o.environment.as_str(), o.to.is_some()))
        .collect();
    assert_eq!(
        view,
        [
            ("api", "staging", true),
            ("db", "production", false),
            ("web", "production", false)
        ]
    );
    let api = &got[0];
    let inc = rt.get(&staging).unwrap();
    assert_eq!(
        (api.from, api.to),
        (
            inc.created_at.as_millisecond(),
            inc.resolved_at.map(|t| t.as_millisecond())
        )
    );
    // outside the window: nothing
    assert!(
        source
            .outages(&DeploymentsSection::default(), now + 60_000, now + 120_000)
            .unwrap()
            .is_empty()
    );
}

fn audit(kind: AuditKind, step: &str, at: Timestamp) -> AuditEvent {
    AuditEvent {
        at,
        run: Some(1),
        runbook: "rollback-api".into(),
        target: "service=\"api\"".into(),
        kind,
        actor: None,
        step: Some(step.into()),
        phase: Some(Phase::Main),
        argv: Some(vec!["/bin/deploy".into(), "v1".into()]),
        detail: None,
        outcome: (kind == AuditKind::StepFinished).then(|| "exited 0".to_string()),
        state: None,
    }
}

/// A run's events written before an incident links its alert are imported
/// once; reported again live, they stay one entry.
#[test]
fn runs_before_the_incident_are_imported_and_live_reports_are_not_repeated() {
    use day2_store::remediate::{AuditRow, RunRow, TriggerRow};
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_dir(dir.path()).unwrap());
    let people = People::new(store.clone());
    let t = Timestamp::now();
    let started = audit(AuditKind::StepStarted, "deploy", t);
    let row = |e: &AuditEvent| AuditRow {
        seq: 0,
        at: e.at.as_millisecond(),
        run_id: Some(1),
        runbook: e.runbook.clone(),
        kind: text(&e.kind),
        actor: None,
        body: serde_json::to_string(e).unwrap(),
    };
    let run = RunRow {
        id: 1,
        runbook: "rollback-api".into(),
        target: "service=\"api\"".into(),
        state: "running".into(),
        requester: "alert:HighErrorRate".into(),
        approver: None,
        dry_run: false,
        created_at: t.as_millisecond(),
        finished_at: None,
        body: "{}".into(),
    };
    let trigger = TriggerRow {
        outbox_id: 3,
        fingerprint: "fp".into(),
        runbook: "rollback-api".into(),
        run_id: Some(1),
        refusal: None,
    };
    store
        .remediation_commit(&[run], &[row(&started)], &[], &[trigger])
        .unwrap();

    let id = incident(
        &people.incidents,
        None,
        vec![linked("fp", &[("alertname", "HighErrorRate")])],
    );
    let steps = |rt: &IncidentRuntime| -> Vec<String> {
        rt.get(&id)
            .unwrap()
            .timeline
            .iter()
            .filter(|e| e.kind == EntryKind::RemediationStep)
            .map(|e| e.text.clone())
            .collect()
    };
    let want_started = "Runbook rollback-api run 1 (service=\"api\"): step deploy started: [\"/bin/deploy\", \"v1\"]";
    assert_eq!(steps(&people.incidents), [want_started]);

    let sink = IncidentTimeline(Arc::downgrade(&people.incidents));
    sink.record(&["fp".to_string()], &started);
    sink.record(
        &["fp".to_string()],
        &audit(AuditKind::StepFinished, "deploy", t),
    );
    assert_eq!(
        steps(&people.incidents),
        [
            want_started,
            "Runbook rollback-api run 1 (service=\"api\"): step deploy finished: [\"/bin/deploy\", \"v1\"] -> exited 0"
        ]
    );
}

/// The context: the deployment the hub annotated the alert with, else the
/// latest of its service, with the one before it.
#[test]
fn an_alerts_param_context_is_its_services_deployment_and_the_one_before() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_dir(dir.path()).unwrap());
    let svc = Arc::new(
        Deployments::open(
            store,
            Arc::new(day2_promql::Engine::new(Default::default())),
            Arc::new(day2_promql::memstore::MemStore::new()),
            DeploymentsSection::default(),
        )
        .unwrap(),
    );
    let now = Timestamp::now();
    let deploy = |version: &str, ago: i64| {
        let input = serde_json::from_value(serde_json::json!({
            "service": "api", "version": version,
            "deployed_at": now - jiff::SignedDuration::from_secs(ago),
        }))
        .unwrap();
        svc.create(input, "ci", now).unwrap()
    };
    let v1 = deploy("v1", 120);
    let v2 = deploy("v2", 60);
    let ctx = DeploymentContext(svc.clone());
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let alert = labels(&[("alertname", "HighErrorRate"), ("service", "api")]);
    assert_eq!(
        ctx.context(&alert, &BTreeMap::new()),
        labels(&[
            ("deployment_id", &v2.id.to_string()),
            ("environment", "production"),
            ("previous_version", "v1"),
            ("service", "api"),
            ("version", "v2"),
        ])
    );
    // the annotation wins: the deployment the alert fired under
    let annotated = labels(&[("day2_deployment", &v1.id.to_string())]);
    assert_eq!(
        ctx.context(&alert, &annotated),
        labels(&[
            ("deployment_id", &v1.id.to_string()),
            ("environment", "production"),
            ("service", "api"),
            ("version", "v1"),
        ])
    );
    // another service: nothing
    let other = labels(&[("alertname", "X"), ("service", "web")]);
    assert!(ctx.context(&other, &BTreeMap::new()).is_empty());
}
