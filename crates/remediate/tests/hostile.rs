//! Hostile alert label values never reach a shell: either the param pattern
//! refuses them (no run starts), or they reach the command as exactly one
//! argv element (or one env value), byte for byte, and a canary file next to
//! the command is untouched.

mod common;

use common::*;
use day2_remediate::driver::{Executors, drive};
use day2_remediate::{ExecPolicy, Proposal, Refusal, RunState, Runs};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The issue's list plus payloads aimed at the canary directory `dir`.
fn hostile(dir: &Path) -> Vec<String> {
    let d = dir.display();
    let mut v: Vec<String> = [
        "; rm -rf / #",
        "$(id)",
        "`id`",
        "a\nb",
        "line1\n; id > id\n",
        "--output=/etc/passwd",
        "../../etc/passwd",
        "-rf",
        "x && id > id",
        "x | tee id",
        "' ; id > id ; '",
        "\" ; id > id ; \"",
        "$IFS$(id)",
        "*",
        "{{ 7*7 }}",
        "%s%s%n",
        " leading and trailing spaces ",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(format!("; rm -f {d}/canary #"));
    v.push(format!("$(touch {d}/id)"));
    v.push(format!("`id > {d}/id`"));
    v.push(format!("x; echo pwned > {d}/canary"));
    v
}

struct Canary {
    dir: tempfile::TempDir,
    mtime: SystemTime,
}

impl Canary {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("canary");
        std::fs::write(&path, "canary\n").unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        Canary { dir, mtime }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn assert_untouched(&self) {
        let path = self.dir.path().join("canary");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "canary\n",
            "canary content changed"
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            self.mtime,
            "canary mtime changed"
        );
        let names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["canary".to_string()], "a command created files");
    }
}

fn guardrails() -> &'static str {
    r#"
    guardrails:
      approval: none
      cooldown: "0"
      max_runs: {count: 1000, window: 1h}
      target_label: instance"#
}

#[test]
fn strict_patterns_refuse_hostile_values_and_no_run_starts() {
    let canary = Canary::new();
    let rb = runbook(&format!(
        r#"
runbooks:
  - name: restart
    match: ['alertname="Down"']
    params:
      - name: host
        type: string
        pattern: '[a-z0-9][a-z0-9.-]*'
        from_label: host
    steps:
      - exec:
          command: [/usr/bin/printf, '%s\n', '{{{{ param.host }}}}']
          workdir: {}
{}
"#,
        yq(&canary.path().display().to_string()),
        guardrails()
    ));
    let mut runs = Runs::new();
    for (i, v) in hostile(canary.path()).into_iter().enumerate() {
        let p = Proposal {
            labels: labels(&[
                ("alertname", "Down"),
                ("instance", &format!("i{i}")),
                ("host", &v),
            ]),
            requester: "alert:Down".into(),
            ..Default::default()
        };
        let err = runs.propose(&rb, p, ts(i as i64)).unwrap_err();
        let Refusal::Params(e) = &err else {
            panic!("{v:?}: {err}")
        };
        let msg = e.to_string();
        assert!(
            msg.contains("`host`") && msg.contains("label `host`"),
            "{msg}"
        );
        if v.len() > 3 {
            assert!(!msg.contains(&v), "the refusal echoes the value: {msg}");
        }
    }
    assert_eq!(runs.iter().count(), 0, "no run may exist");
    let refused = runs
        .audit()
        .iter()
        .filter(|e| e.kind == day2_remediate::AuditKind::Refused)
        .count();
    assert_eq!(refused, hostile(canary.path()).len());
    canary.assert_untouched();
}

#[tokio::test(flavor = "current_thread")]
async fn allowed_hostile_values_reach_printf_as_one_literal_argument() {
    let canary = Canary::new();
    let rb = runbook(&format!(
        r#"
runbooks:
  - name: echo
    match: ['alertname="Down"']
    params:
      - name: x
        pattern: '[\s\S]{{1,400}}'
        from_label: payload
    steps:
      - name: print
        exec:
          command: [/usr/bin/printf, '%s\n', '{{{{ param.x }}}}']
          workdir: {}
          timeout: 10s
{}
"#,
        yq(&canary.path().display().to_string()),
        guardrails()
    ));
    let mut runs = Runs::new();
    let policy = ExecPolicy::default();
    for (i, v) in hostile(canary.path()).into_iter().enumerate() {
        let p = Proposal {
            labels: labels(&[
                ("alertname", "Down"),
                ("instance", &format!("i{i}")),
                ("payload", &v),
            ]),
            requester: "alert:Down".into(),
            ..Default::default()
        };
        let id = runs
            .propose(&rb, p, ts(0))
            .unwrap_or_else(|e| panic!("{v:?}: {e}"));
        let state = drive(
            &mut runs,
            id,
            &Executors::from(policy.clone()),
            &Always(true),
            &RealClock,
            Duration::from_millis(50),
        )
        .await
        .unwrap();
        assert_eq!(state, RunState::Verified, "{v:?}");
        let run = runs.get(id).unwrap();
        let out = run.results[0].report.exec.as_ref().unwrap();
        assert_eq!(
            out.stdout,
            format!("{v}\n"),
            "printf must print the value literally"
        );
        assert_eq!(out.stderr, "");
        // The audit trail shows the argv as a list with the value as one element.
        let started = runs
            .audit()
            .iter()
            .find(|e| e.run == Some(id) && e.kind == day2_remediate::AuditKind::StepStarted)
            .unwrap();
        assert_eq!(
            started.argv.as_deref().unwrap(),
            &[
                "/usr/bin/printf".to_string(),
                r"%s\n".to_string(),
                v.clone()
            ]
        );
    }
    canary.assert_untouched();
}

#[tokio::test(flavor = "current_thread")]
async fn values_embedded_in_an_element_and_in_env_stay_one_element() {
    let canary = Canary::new();
    let script = testdata().join("argv.sh");
    let rb = runbook(&format!(
        r#"
runbooks:
  - name: script
    match: ['alertname="Down"']
    params:
      - name: x
        pattern: '[\s\S]{{1,400}}'
        from_label: payload
    steps:
      - exec:
          command: [{}, '--value={{{{ param.x }}}}', '{{{{ param.x }}}}']
          env: {{DAY2_TEST_VALUE: '{{{{ param.x }}}}'}}
          workdir: {}
{}
"#,
        yq(&script.display().to_string()),
        yq(&canary.path().display().to_string()),
        guardrails()
    ));
    let mut runs = Runs::new();
    for (i, v) in hostile(canary.path()).into_iter().enumerate() {
        let p = Proposal {
            labels: labels(&[
                ("alertname", "Down"),
                ("instance", &format!("i{i}")),
                ("payload", &v),
            ]),
            requester: "alert:Down".into(),
            ..Default::default()
        };
        let id = runs.propose(&rb, p, ts(0)).unwrap();
        let state = drive(
            &mut runs,
            id,
            &Executors::from(ExecPolicy::default()),
            &Always(true),
            &RealClock,
            Duration::from_millis(50),
        )
        .await
        .unwrap();
        let out = &runs.get(id).unwrap().results[0]
            .report
            .exec
            .as_ref()
            .unwrap()
            .stdout;
        assert_eq!(state, RunState::Verified, "{v:?}: {out:?}");
        let parts: Vec<&str> = out.split('\0').collect();
        assert_eq!(
            parts,
            vec![
                "2",
                &format!("--value={v}"),
                &v,
                &format!("env:{v}"),
                // the environment was cleared: HOME did not leak through
                "home:<unset>",
                ""
            ],
            "{v:?}"
        );
    }
    canary.assert_untouched();
}
