//! The ansible executor against the real `ansible-playbook` (Debian package
//! `ansible`), on localhost with the local connection: a playbook writes a
//! file whose content is an extra var bound from an alert label.

mod common;

use common::*;
use day2_remediate::driver::{Executors, drive};
use day2_remediate::{Action, ExecPolicy, Proposal, RunState, Runs};
use std::time::Duration;

fn ansible_playbook() -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("ansible-playbook"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "ansible-playbook not found on PATH: install the Debian package `ansible` \
                 (apt-get install -y ansible; scripts/test.sh installs it)"
            )
        })
}

#[tokio::test(flavor = "current_thread")]
async fn ansible_playbook_writes_the_extra_var_verbatim() {
    let program = ansible_playbook();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.txt");
    let rb = runbook(&format!(
        r#"
runbooks:
  - name: write-note
    match: ['alertname="Note"']
    params:
      - name: content
        pattern: '[\s\S]{{1,300}}'
        from_label: note
      - name: count
        type: int
        min: 0
        max: 10
        from_label: count
    steps:
      - name: write
        ansible:
          playbook: write_file.yml
          inventory: 'localhost,'
          connection: local
          extra_vars:
            content: '{{{{ param.content }}}}'
            dest: {}
            count: '{{{{ param.count }}}}'
          timeout: 120s
    guardrails:
      approval: none
"#,
        yq(&dest.display().to_string())
    ));
    // Hostile-looking, but allowed by the pattern: it must arrive as text,
    // never evaluated by a shell or by Jinja.
    let value = "$(id); rm -rf / # `id` {{ 7*7 }} {% raw %} '\"quotes\"' --output=/etc/passwd\n../../etc/passwd\n";
    let p = Proposal {
        labels: labels(&[
            ("alertname", "Note"),
            ("instance", "localhost"),
            ("note", value),
            ("count", "3"),
        ]),
        requester: "alert:Note".into(),
        ..Default::default()
    };
    let mut runs = Runs::new();
    let id = runs.propose(&rb, p, ts(0)).unwrap();
    // The command line: extra vars are one JSON argv element; the label value is
    // wrapped as unsafe so Ansible does not template it; ints stay numbers.
    let step = &runs.get(id).unwrap().plan.steps[0];
    let Action::Ansible(c) = &step.action else {
        panic!("{step:?}")
    };
    assert_eq!(c.argv[0], "ansible-playbook");
    assert_eq!(c.argv[1], "--inventory=localhost,");
    assert_eq!(c.argv[2], "--connection=local");
    assert_eq!(c.argv[3], "--extra-vars");
    let vars: serde_json::Value = serde_json::from_str(&c.argv[4]).unwrap();
    assert_eq!(
        vars,
        serde_json::json!({
            "content": {"__ansible_unsafe": value},
            "dest": dest.display().to_string(),
            "count": 3,
        })
    );
    assert_eq!(
        c.argv[5],
        testdata().join("write_file.yml").display().to_string()
    );
    assert_eq!(c.argv.len(), 6);

    let policy = ExecPolicy {
        ansible_playbook: Some(program),
        ..ExecPolicy::default()
    };
    let state = drive(
        &mut runs,
        id,
        &Executors::from(policy.clone()),
        &Always(true),
        &RealClock,
        Duration::from_millis(100),
    )
    .await
    .unwrap();
    let run = runs.get(id).unwrap();
    let out = run.results[0].report.exec.as_ref().unwrap();
    assert_eq!(
        state,
        RunState::Verified,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), value);
}
