//! The trigger with the real parts: the deployment service and the
//! remediation runtime (as `day2 serve` wires it: journal in the SQLite
//! state store, PromQL verification) over one store, exec steps touching
//! files, injected deployment times.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use day2_deploy::{Deployment, Deployments, DeploymentsSection, RollbackTrigger, Status};
use day2_model::Labels;
use day2_promql::memstore::MemStore;
use day2_remediate::runtime::Settings;
use day2_remediate::{RunState, RunbookSet};
use day2_store::Store;
use jiff::Timestamp;
use parking_lot::RwLock;

use super::*;
use crate::remediatewire::{self, LoadedRemediation, Parts, RemediationCell};

/// Deployments at T; the error ratio jumps from 1% to 50% at T.
const T: i64 = 1_700_000_000_000;

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap()
}

/// api, web and db in enforce mode with their rollback runbooks.
fn deployments(api_runbook: &str) -> DeploymentsSection {
    let mut yaml = String::from("services:\n");
    for (service, runbook) in [
        ("api", api_runbook),
        ("web", "broken-rollback"),
        ("db", "renamed-since"),
    ] {
        yaml.push_str(&format!(
            "  {service}:\n    analysis:\n      mode: enforce\n      window: 10s\n      step: 1s\n      checks: [{{name: errors, expr: 'max(errors{{service=\"{{{{ service }}}}\"}})', compare: {{max_value: 0.1}}}}]\n      rollback_runbook: {runbook}\n"
        ));
    }
    let section: DeploymentsSection = day2_yamlerr::from_str(&yaml, "day2.yml").unwrap();
    section.validate().unwrap();
    section
}

/// `rollback-api` touches `<dir>/<service>-<previous_version>`; `slow`
/// sleeps (for an odd time, so that its process can be told apart);
/// `broken-rollback` fails.
fn runbooks(dir: &Path) -> RunbookSet {
    let guardrails = "{approval: none, target_label: service, cooldown: 0s}";
    let yaml = format!(
        r#"
runbooks:
  - name: rollback-api
    match: ['deployment_id=~".+"']
    params:
      - {{name: service, pattern: '[a-z]+', from_label: service}}
      - {{name: to, pattern: '[a-z0-9.]+', from_label: previous_version}}
    steps:
      - name: deploy-previous
        exec: {{command: [/usr/bin/touch, '{dir}/{{{{ param.service }}}}-{{{{ param.to }}}}']}}
    verify: {{expr: 'vector(1)', within: 10s}}
    guardrails: {guardrails}
  - name: slow
    match: ['deployment_id=~".+"']
    steps:
      - name: wait
        exec: {{command: [/bin/sleep, '{SLOW_SECONDS}']}}
    guardrails: {guardrails}
  - name: broken-rollback
    match: ['deployment_id=~".+"']
    steps:
      - name: deploy-previous
        exec: {{command: [/bin/false]}}
    guardrails: {guardrails}
"#,
        dir = dir.display()
    );
    RunbookSet::parse_file(&yaml, "runbooks.yml", None).unwrap()
}

fn errors() -> Arc<MemStore> {
    let mut m = MemStore::new();
    for service in ["api", "web", "db"] {
        for s in -30..=30i64 {
            m.add(
                Labels::from_pairs([("__name__", "errors"), ("service", service)]),
                T + s * 1000,
                if s < 0 { 0.01 } else { 0.5 },
            );
        }
    }
    Arc::new(m)
}

struct Parts2 {
    store: Arc<Store>,
    cell: RemediationCell,
    svc: Deployments,
}

/// The remediation runtime (restored from the store, as at a start) and the
/// deployment service with the runbook trigger; `remediation: false` starts
/// no runtime.
fn start(dir: &Path, remediation: bool) -> Parts2 {
    let store = Arc::new(Store::open_dir(&dir.join("state")).unwrap());
    let engine = Arc::new(day2_promql::Engine::new(Default::default()));
    let db = errors();
    let cell: RemediationCell = Arc::new(RwLock::new(None));
    if remediation {
        let loaded = LoadedRemediation {
            runbooks: runbooks(dir),
            settings: Settings {
                verify_interval: Duration::from_millis(20),
                ..Settings::default()
            },
        };
        let parts = Parts {
            state: None,
            store: &store,
            hub: &Arc::new(RwLock::new(None)),
            engine: engine.clone(),
            db: db.clone(),
            context: None,
        };
        remediatewire::apply(&cell, parts, Some(loaded)).unwrap();
    }
    let svc = Deployments::open(store.clone(), engine, db, deployments("rollback-api")).unwrap();
    svc.set_rollback_trigger(Arc::new(RunbookRollback {
        remediation: cell.clone(),
        store: store.clone(),
    }));
    Parts2 { store, cell, svc }
}

fn deploy(p: &Parts2, service: &str, version: &str, deployed_at: i64) -> Deployment {
    let input = serde_json::from_value(serde_json::json!({
        "service": service, "version": version, "deployed_at": at(deployed_at)
    }))
    .unwrap();
    p.svc.create(input, "ci", at(deployed_at)).unwrap()
}

/// Waits (with a deadline) until the runtime has ended `runs` runs.
async fn ended(p: &Parts2, runs: u64) {
    let mut rx = p.cell.read().as_ref().unwrap().watch_finished();
    tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|n| *n >= runs))
        .await
        .expect("the rollback run did not end")
        .unwrap();
}

const SLOW_SECONDS: &str = "30.0517";

/// Whether this process has a `/bin/sleep SLOW_SECONDS` child: the step
/// recorded as started is only really running once its process exists.
fn slow_child_running() -> bool {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        let dir = e.path();
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if argv.len() < 2 || argv[0] != b"/bin/sleep" || argv[1] != SLOW_SECONDS.as_bytes() {
            return false;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        status
            .lines()
            .any(|l| l.strip_prefix("PPid:").map(str::trim) == Some(me.as_str()))
    })
}

fn stored_run(p: &Parts2, id: &str) -> day2_remediate::Run {
    let row = p
        .store
        .remediation_run(id.parse().unwrap())
        .unwrap()
        .unwrap();
    serde_json::from_str(&row.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_deploy_runs_its_runbook_with_the_deployment_labels_and_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let p = start(dir.path(), true);
    deploy(&p, "api", "v1", T - 60_000);
    let v2 = deploy(&p, "api", "v2", T);
    p.svc.run_due(at(T + 11_000)).unwrap();
    let rb = p.svc.get(v2.id).unwrap().rollback.unwrap();
    assert_eq!(rb.state, "running", "{rb:?}");
    let run_id = rb.run_id.unwrap();
    let run = stored_run(&p, &run_id);
    assert_eq!(run.requester, format!("deploy:{}", v2.id));
    let labels: Vec<(&str, &str)> = run
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let id = v2.id.to_string();
    assert_eq!(
        labels,
        [
            ("deployment_id", id.as_str()),
            ("environment", "production"),
            ("previous_version", "v1"),
            ("service", "api"),
            ("version", "v2"),
        ]
    );

    ended(&p, 1).await;
    p.svc.run_due(at(T + 12_000)).unwrap();
    assert!(dir.path().join("api-v1").exists(), "the step did not run");
    let d = p.svc.get(v2.id).unwrap();
    assert_eq!(d.outcome, "rolled_back");
    let run = stored_run(&p, &run_id);
    assert_eq!(run.state, RunState::Verified);
    let mark = &d.statuses[0];
    // restored when the run ended (stored to the millisecond)
    assert_eq!(
        (
            mark.status,
            mark.reason.clone(),
            mark.set_by.as_str(),
            mark.at.as_millisecond()
        ),
        (
            Status::RolledBack,
            format!("rollback runbook rollback-api run {run_id} verified"),
            "day2",
            run.finished_at.unwrap().as_millisecond()
        )
    );
    let rb = d.rollback.unwrap();
    assert_eq!(
        (rb.state, rb.run_state.as_deref(), rb.error),
        ("done", Some("verified"), None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_run_leaves_the_deployment_failed_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let p = start(dir.path(), true);
    let web = deploy(&p, "web", "w2", T);
    p.svc.run_due(at(T + 11_000)).unwrap();
    ended(&p, 1).await;
    p.svc.run_due(at(T + 12_000)).unwrap();
    let d = p.svc.get(web.id).unwrap();
    assert_eq!(d.outcome, "failed");
    assert!(d.statuses.is_empty());
    let rb = d.rollback.unwrap();
    let run = rb.run_id.unwrap();
    assert_eq!(
        (rb.state, rb.run_state.as_deref(), rb.error),
        (
            "done",
            Some("failed"),
            Some(format!(
                "rollback runbook broken-rollback run {run} failed: step deploy-previous failed: exited 1"
            ))
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_unknown_runbooks_and_missing_remediation_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let p = start(dir.path(), true);
    // the first deployment of api: no previous version to bind `to` to
    let first = deploy(&p, "api", "v1", T);
    let db = deploy(&p, "db", "d1", T);
    p.svc.run_due(at(T + 11_000)).unwrap();
    let error = |id| p.svc.get(id).unwrap().rollback.unwrap().error.unwrap();
    assert_eq!(
        error(first.id),
        "rollback runbook rollback-api: refused by guardrail: parameters: param `to`: no value (label `previous_version` absent and no default)"
    );
    assert_eq!(
        error(db.id),
        "rollback runbook renamed-since: the remediation section has no runbook of that name"
    );

    let dir = tempfile::tempdir().unwrap();
    let p = start(dir.path(), false);
    let v2 = deploy(&p, "api", "v2", T);
    p.svc.run_due(at(T + 11_000)).unwrap();
    assert_eq!(
        p.svc.get(v2.id).unwrap().rollback.unwrap().error.unwrap(),
        "rollback runbook rollback-api: remediation is not configured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_started_before_a_restart_is_found_and_recorded_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = {
        // the process claims the rollback, starts the run, and dies before
        // recording either on the deployment; the run ends meanwhile
        let p = start(dir.path(), true);
        deploy(&p, "api", "v1", T - 60_000);
        let v2 = deploy(&p, "api", "v2", T);
        assert!(
            p.store
                .deployment_record_verdict(v2.id, "{}", "fail", T + 10_000, true)
                .unwrap()
        );
        assert!(p.store.deployment_claim_rollback(v2.id).unwrap());
        let trigger = RunbookRollback {
            remediation: p.cell.clone(),
            store: p.store.clone(),
        };
        let v1 = p.svc.get(v2.id - 1).unwrap();
        trigger.rollback("rollback-api", &v2, Some(&v1)).unwrap();
        ended(&p, 1).await;
        v2
    };
    // after the restart: no remediation runtime even, the store tells
    let p = start(dir.path(), false);
    p.svc.run_due(at(T + 60_000)).unwrap();
    let d = p.svc.get(v2.id).unwrap();
    assert_eq!(d.outcome, "rolled_back", "{:?}", d.rollback);
    assert_eq!(p.store.remediation_runs(None, None, 10).unwrap().len(), 1);
}

#[test]
fn a_run_interrupted_by_a_restart_is_recorded_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let first = tokio::runtime::Runtime::new().unwrap();
    let id = first.block_on(async {
        let p = start(dir.path(), true);
        p.svc.set_config(deployments("slow"));
        let d = deploy(&p, "api", "v2", T);
        p.svc.run_due(at(T + 11_000)).unwrap();
        let run = p.svc.get(d.id).unwrap().rollback.unwrap().run_id.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        // killed mid-step means the child process runs: a shutdown while it
        // is still being spawned would fail the step instead
        while stored_run(&p, &run).step_started_at.is_none() || !slow_child_running() {
            assert!(
                std::time::Instant::now() < deadline,
                "the step never started"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        d.id
    });
    // the process stops in the middle of the step
    first.shutdown_background();
    let second = tokio::runtime::Runtime::new().unwrap();
    second.block_on(async {
        let p = start(dir.path(), true);
        p.svc.run_due(at(T + 60_000)).unwrap();
        let d = p.svc.get(id).unwrap();
        assert_eq!(d.outcome, "failed");
        let rb = d.rollback.unwrap();
        assert_eq!(rb.run_state.as_deref(), Some("failed"));
        assert!(
            rb.error.as_deref().unwrap().ends_with(
                "failed: interrupted: day2 stopped while the run was running during step wait"
            ),
            "{rb:?}"
        );
    });
}

fn check(deployments: &str, runbooks_yaml: Option<&str>) -> Result<(), (String, String)> {
    let section: DeploymentsSection = day2_yamlerr::from_str(deployments, "day2.yml").unwrap();
    let set = runbooks_yaml.map(|y| RunbookSet::parse_file(y, "rb.yml", None).unwrap());
    check_config(&section, set.as_ref())
}

#[test]
fn check_config_ties_rollback_runbooks_to_the_remediation_section() {
    let enforce = "services:\n  api:\n    analysis:\n      mode: enforce\n      window: 1m\n      checks: [{name: e, expr: up, compare: {max_value: 1}}]\n      rollback_runbook: rb\n";
    let advisory = enforce.replace("mode: enforce", "mode: advisory");
    let field = "deployments.services.api.analysis.rollback_runbook";
    let runbook = |extra: &str| {
        format!(
            "runbooks:\n  - name: rb\n    match: ['deployment_id=~\".+\"']\n    steps: [{{exec: {{command: [/bin/true]}}}}]\n{extra}"
        )
    };
    let good = runbook("    guardrails: {target_label: service}\n");
    assert_eq!(check(enforce, Some(&good)), Ok(()));
    // advisory mode never runs it: no section needed
    assert_eq!(check(&advisory, None), Ok(()));
    let cases = [
        (
            enforce.to_string(),
            None,
            "mode enforce runs runbook \"rb\"",
        ),
        (
            advisory.clone(),
            Some(good.replace("name: rb", "name: other")),
            "no runbook \"rb\" in the remediation section (runbooks: other)",
        ),
        (
            enforce.to_string(),
            Some(runbook("")),
            "runbook \"rb\": guardrails.target_label \"instance\" is not a label of a rollback",
        ),
        (
            enforce.to_string(),
            Some(runbook(
                "    params: [{name: host, pattern: '.+', from_label: instance}]\n    guardrails: {target_label: service}\n",
            )),
            "runbook \"rb\": param \"host\" needs a default or from_label one of",
        ),
    ];
    for (deployments, runbooks, want) in cases {
        let (f, m) = check(&deployments, runbooks.as_deref()).unwrap_err();
        assert_eq!(f, field);
        assert!(m.starts_with(want), "{m}\nwant {want}");
    }
}

#[test]
fn check_config_locates_the_errors_in_day2_yml() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("day2.yml");
    let load = |text: &str| {
        std::fs::write(&path, text).unwrap();
        crate::config::Day2Config::load(&path)
            .map(drop)
            .map_err(|e| e.to_string())
    };
    let text = r#"remediation:
  runbooks:
    - name: rollback-api
      match: ['deployment_id=~".+"']
      steps: [{exec: {command: [/bin/true]}}]
      guardrails: {target_label: service}
deployments:
  services:
    api:
      analysis:
        mode: enforce
        window: 1m
        checks: [{name: e, expr: up, compare: {max_value: 1}}]
        rollback_runbook: rollback-apj
"#;
    let e = load(text).unwrap_err();
    let want = format!(
        "{}:14: deployments.services.api.analysis.rollback_runbook: no runbook \"rollback-apj\"",
        path.display()
    );
    assert!(e.starts_with(&want), "{e}\nwant {want}");
    assert_eq!(load(&text.replace("rollback-apj", "rollback-api")), Ok(()));

    // a kubernetes autoscaling target needs the cluster settings
    let text = "autoscaling:\n  policies:\n    - name: web\n      metric: up\n      target_value: 1\n      min: 1\n      max: 2\n      target: { kind: kubernetes, resource: deployment/web }\n";
    let e = load(text).unwrap_err();
    assert!(
        e.starts_with(&format!(
            "{}:8: autoscaling.policies[0].target: a kubernetes target needs the cluster of remediation.kubernetes",
            path.display()
        )),
        "{e}"
    );
    let kubeconfig = "remediation:\n  kubernetes: { kubeconfig: kubeconfig }\n";
    assert_eq!(load(&format!("{kubeconfig}{text}")), Ok(()));
}
