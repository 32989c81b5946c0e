//! Loading runbooks: the full format, errors with file:line and field path,
//! placeholders that name undeclared params, the `remediation:` section of a
//! config file and a directory of runbook files.

mod common;

use common::*;
use day2_remediate::runbook::{Approval, KubeAction};
use day2_remediate::{RemediationConfig, RunbookSet};
use serde::Deserialize;

const FULL: &str = r#"runbooks:
  - name: disk-full
    description: Free space on a full disk.
    match:
      - alertname="DiskFull"
      - severity=~"critical|page"
    params:
      - name: host
        type: string
        pattern: '[a-z0-9.-]+'
        from_label: instance
      - name: mode
        type: enum
        values: [soft, hard]
        default: soft
      - name: replicas
        type: int
        min: 1
        max: 20
        default: 3
    steps:
      - name: clean
        exec:
          command: [/usr/local/bin/clean-tmp, --host, '{{ param.host }}', '--mode={{param.mode}}']
          env: {TARGET_HOST: '{{ param.host }}'}
          timeout: 2m
          workdir: /var/tmp
      - name: notify
        http:
          method: POST
          url: 'https://chat.example/hooks/{{ param.host }}'
          headers: {X-Source: day2}
          body: '{"text": "cleaned {{ param.host }}"}'
      - name: scale
        kubernetes:
          action: scale
          namespace: web
          deployment: frontend
          replicas: '{{ param.replicas }}'
      - name: playbook
        ansible:
          playbook: playbooks/clean.yml
          inventory: '{{ param.host }},'
          extra_vars: {target: '{{ param.host }}', nested: {list: ['{{ param.mode }}', 1, true]}}
    verify:
      expr: 'node_filesystem_avail_bytes{instance="{{ param.host }}"} > 1e9'
      within: 10m
    on_failure:
      - name: undo
        kubernetes: {action: rollout_undo, namespace: web, deployment: frontend}
    guardrails:
      dry_run: false
      approval: none
      max_runs: {count: 2, window: 6h}
      cooldown: 30m
      circuit_breaker: {failures: 2, reset_after: 2h}
      concurrency: 1
      blast_radius: 3
      target_label: instance
"#;

#[test]
fn loads_the_full_format_and_round_trips() {
    let set = RunbookSet::parse_file(FULL, "rb.yml", None).unwrap();
    let rb = &set.runbooks[0];
    assert_eq!(rb.name(), "disk-full");
    let g = &rb.spec.guardrails;
    assert_eq!(
        (g.approval, g.max_runs.count, g.blast_radius),
        (Approval::None, 2, 3)
    );
    assert_eq!(g.cooldown.to_string(), "30m");
    assert_eq!(
        rb.spec.on_failure[0].kubernetes.as_ref().unwrap().action,
        KubeAction::RolloutUndo
    );
    assert!(rb.matches(&labels(&[("alertname", "DiskFull"), ("severity", "page")])));
    assert!(!rb.matches(&labels(&[
        ("alertname", "DiskFull"),
        ("severity", "warning")
    ])));
    assert_eq!(
        set.matching(&labels(&[
            ("alertname", "DiskFull"),
            ("severity", "critical")
        ]))
        .count(),
        1
    );
    // serialize and load again
    let yaml = serde_yaml_ng::to_string(&day2_remediate::runbook::RunbookFile {
        runbooks: vec![rb.spec.clone()],
    })
    .unwrap();
    let again =
        RunbookSet::parse_file(&yaml, "again.yml", None).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(again.runbooks[0].spec, rb.spec);
}

#[test]
fn renders_every_executor() {
    let set = RunbookSet::parse_file(
        FULL,
        "rb.yml",
        Some(std::path::Path::new("/etc/day2/runbooks")),
    )
    .unwrap();
    let rb = &set.runbooks[0];
    let bound = day2_remediate::params::bind(
        &rb.params,
        &labels(&[("instance", "db1.example")]),
        &Default::default(),
    )
    .unwrap();
    let plan = day2_remediate::plan::render(rb, &bound).unwrap();
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(
        json["steps"][0]["action"],
        serde_json::json!({
            "executor": "exec",
            "argv": ["/usr/local/bin/clean-tmp", "--host", "db1.example", "--mode=soft"],
            "env": {"TARGET_HOST": "db1.example"},
            "timeout": "2m",
            "workdir": "/var/tmp",
        })
    );
    assert_eq!(
        json["steps"][1]["action"]["url"],
        "https://chat.example/hooks/db1.example"
    );
    assert_eq!(
        json["steps"][1]["action"]["body"],
        r#"{"text": "cleaned db1.example"}"#
    );
    assert_eq!(json["steps"][2]["action"]["replicas"], 3);
    let argv = json["steps"][3]["action"]["argv"].as_array().unwrap();
    assert_eq!(argv[1], "--inventory=db1.example,");
    assert_eq!(
        argv.last().unwrap(),
        "/etc/day2/runbooks/playbooks/clean.yml"
    );
    let vars: serde_json::Value = serde_json::from_str(argv[3].as_str().unwrap()).unwrap();
    assert_eq!(
        vars,
        serde_json::json!({
            "target": {"__ansible_unsafe": "db1.example"},
            "nested": {"list": [{"__ansible_unsafe": "soft"}, 1, true]},
        })
    );
    assert_eq!(
        plan.verify.unwrap().expr,
        r#"node_filesystem_avail_bytes{instance="db1.example"} > 1e9"#
    );
}

fn load_err(yaml: &str) -> String {
    RunbookSet::parse_file(yaml, "rb.yml", None)
        .unwrap_err()
        .to_string()
}

fn minimal(param: &str, step: &str, extra: &str) -> String {
    format!(
        "runbooks:\n  - name: r\n    match: ['alertname=\"A\"']\n    params:\n{param}    steps:\n{step}{extra}"
    )
}

const HOST: &str = "      - name: host\n        pattern: '[a-z]+'\n        from_label: instance\n";

#[test]
fn undeclared_placeholders_are_load_errors_with_the_field_path() {
    let err = load_err(&minimal(
        HOST,
        "      - exec:\n          command:\n            - /bin/echo\n            - ok\n            - '{{ param.hots }}'\n",
        "",
    ));
    assert_eq!(
        err,
        "rb.yml:13: runbooks[0].steps[0].exec.command[2]: `{{ param.hots }}`: param `hots` is not declared in `params`"
    );
    let err = load_err(&minimal(
        HOST,
        "      - exec:\n          command: [/bin/echo]\n          env:\n            X: '{{ param.nope }}'\n",
        "",
    ));
    assert_eq!(
        err,
        "rb.yml:12: runbooks[0].steps[0].exec.env.X: `{{ param.nope }}`: param `nope` is not declared in `params`"
    );
    let err = load_err(&minimal(
        HOST,
        "      - http: {url: 'https://x.example/{{ param.nope }}'}\n",
        "",
    ));
    assert!(
        err.contains("runbooks[0].steps[0].http.url: `{{ param.nope }}`"),
        "{err}"
    );
    let err = load_err(&minimal(
        HOST,
        "      - ansible: {playbook: p.yml, inventory: 'h,', extra_vars: {a: {b: ['{{ param.x }}']}}}\n",
        "",
    ));
    assert!(
        err.contains("runbooks[0].steps[0].ansible.extra_vars.a.b[0]: `{{ param.x }}`"),
        "{err}"
    );
}

#[test]
fn validation_errors() {
    let exec = "      - exec: {command: [/bin/true]}\n";
    let cases: &[(String, &str)] = &[
        (minimal(HOST, "      - exec: {command: ['{{ param.host }}']}\n", ""), "steps[0].exec.command[0]: the program may not contain placeholders"),
        (minimal(HOST, "      - exec: {command: [/bin/sh, -c, '{{ lookup(\"pipe\",\"id\") }}']}\n", ""), "is not of the form `{{ param.NAME }}`"),
        (minimal("      - name: x\n        from_label: a\n", exec, ""), "params[0].pattern: a string param needs an allowlist pattern"),
        (minimal("      - name: x\n        pattern: '('\n", exec, ""), "params[0].pattern: invalid regex"),
        (minimal("      - name: x\n        pattern: '[a-z]+'\n        default: 'A1'\n", exec, ""), "params[0].default: default refused: does not match pattern ^(?:[a-z]+)$"),
        (minimal(HOST, "      - exec: {command: [/bin/true]}\n        http: {url: 'https://a/'}\n", ""), "steps[0]: a step needs exactly one of exec, http, kubernetes, ansible"),
        (minimal(HOST, "      - exec: {command: [/bin/true], env: {LD_PRELOAD: x}}\n", ""), "steps[0].exec.env.LD_PRELOAD: setting LD_PRELOAD is not allowed"),
        (minimal(HOST, "      - exec: {command: [/bin/true], timeout: 5}\n", ""), "rb.yml:9:15: runbooks[0].steps[0].exec.timeout: invalid duration \"5\""),
        (minimal(HOST, exec, "    verify: {expr: 'up{instance={{ param.host }}}', within: 1m}\n"), "verify.expr: `{{ param.host }}` must be inside a \"...\" or '...' string literal"),
        (minimal(HOST, exec, "    guardrails: {concurrency: 0}\n"), "guardrails.concurrency: must be at least 1"),
        (minimal(HOST, exec, "    guardrails: {approval: sometimes}\n"), "unknown variant `sometimes`"),
        (minimal(HOST, exec, "    guardrails: {max_runs: {count: 1}}\n"), "missing field `window`"),
        (minimal(HOST, exec, "    unknown_field: 1\n"), "unknown field `unknown_field`"),
        (minimal(HOST, "      - kubernetes: {action: scale, namespace: a, deployment: b}\n", ""), "steps[0].kubernetes.replicas: required for scale"),
        (minimal(HOST, "      - kubernetes: {action: scale, namespace: a, deployment: b, replicas: '{{ param.host }}'}\n", ""), "param `host` must be of type int"),
        (minimal(HOST, "      - http: {url: 'https://{{ param.host }}/x'}\n", ""), "steps[0].http.url: must start with http:// or https:// and a literal host"),
        (minimal(HOST, "      - ansible: {playbook: '{{ param.host }}.yml', inventory: h}\n", ""), "ansible.playbook: the playbook may not contain placeholders"),
        (minimal(HOST, "      - escalate: {message: m, policy: db, user: alice}\n", ""), "steps[0].escalate.user: name either policy or user, not both"),
        (minimal(HOST, "      - escalate: {message: m, policy: ' '}\n", ""), "steps[0].escalate.policy: must not be empty"),
        ("runbooks:\n  - name: r\n    match: []\n    steps:\n      - exec: {command: [/bin/true]}\n".to_string(), "runbooks[0].match: at least one matcher"),
        ("runbooks:\n  - name: r\n    match: ['alertname~~\"A\"']\n    steps:\n      - exec: {command: [/bin/true]}\n".to_string(), "rb.yml:3: runbooks[0].match[0]: matcher"),
    ];
    for (yaml, want) in cases {
        let err = load_err(yaml);
        assert!(err.contains(want), "want {want:?}\n got {err}\n{yaml}");
        assert!(err.starts_with("rb.yml:"), "{err}");
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Day2Yml {
    #[serde(default)]
    remediation: RemediationConfig,
}

#[test]
fn config_section_and_runbook_directory() {
    let dir = tempfile::tempdir().unwrap();
    let rbdir = dir.path().join("runbooks");
    std::fs::create_dir(&rbdir).unwrap();
    std::fs::write(
        rbdir.join("a.yml"),
        "runbooks:\n  - name: from-dir\n    match: ['alertname=\"B\"']\n    steps:\n      - ansible: {playbook: p.yml, inventory: 'h,'}\n",
    )
    .unwrap();
    std::fs::write(rbdir.join("notes.txt"), "ignored").unwrap();
    let text = "remediation:\n  runbooks_dir: runbooks\n  runbooks:\n    - name: inline\n      match: ['alertname=\"A\"']\n      steps:\n        - exec: {command: [/bin/true]}\n";
    let cfg: Day2Yml = day2_yamlerr::from_str(text, "day2.yml").unwrap();
    let set = RunbookSet::from_config(
        &cfg.remediation,
        text,
        "day2.yml",
        "remediation",
        Some(dir.path()),
    )
    .unwrap();
    let names: Vec<_> = set.runbooks.iter().map(|r| r.name()).collect();
    assert_eq!(names, vec!["inline", "from-dir"]);
    // paths of a directory runbook are relative to its file
    assert_eq!(
        set.get("from-dir").unwrap().base_dir.as_deref(),
        Some(rbdir.as_path())
    );

    // an error in the inline section names day2.yml, its line and the full path
    let bad = text.replace("[/bin/true]", "[/bin/echo, '{{ param.x }}']");
    let cfg: Day2Yml = day2_yamlerr::from_str(&bad, "day2.yml").unwrap();
    let err = RunbookSet::from_config(
        &cfg.remediation,
        &bad,
        "day2.yml",
        "remediation",
        Some(dir.path()),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "day2.yml:7: remediation.runbooks[0].steps[0].exec.command[1]: `{{ param.x }}`: param `x` is not declared in `params`"
    );

    // a duplicate name across the config and a file
    std::fs::write(
        rbdir.join("b.yml"),
        "runbooks:\n  - name: inline\n    match: ['alertname=\"B\"']\n    steps:\n      - exec: {command: [/bin/true]}\n",
    )
    .unwrap();
    let cfg: Day2Yml = day2_yamlerr::from_str(text, "day2.yml").unwrap();
    let err = RunbookSet::from_config(
        &cfg.remediation,
        text,
        "day2.yml",
        "remediation",
        Some(dir.path()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("b.yml:2: runbooks[0].name: runbook `inline` is also defined in day2.yml"),
        "{err}"
    );

    // a missing directory
    let cfg: Day2Yml = day2_yamlerr::from_str(
        &text.replace("runbooks_dir: runbooks", "runbooks_dir: nope"),
        "day2.yml",
    )
    .unwrap();
    let err = RunbookSet::from_config(
        &cfg.remediation,
        text,
        "day2.yml",
        "remediation",
        Some(dir.path()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("day2.yml:2: remediation.runbooks_dir:"),
        "{err}"
    );
}

#[test]
fn verify_expressions_must_be_promql() {
    let load = |expr: &str| {
        RunbookSet::parse_file(
            &format!(
                "runbooks:\n  - name: a\n    match: ['alertname=\"X\"']\n    params: [{{name: h, pattern: '[a-z]+', from_label: h}}]\n    steps:\n      - exec: {{command: [/bin/true]}}\n    verify:\n      expr: '{expr}'\n      within: 1m\n"
            ),
            "rb.yml",
            None,
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    load(r#"sum(rate(errors_total{host="{{ param.h }}"}[1m])) < 1"#).unwrap();
    let e = load("sum(rate(errors_total[1m]) < 1").unwrap_err();
    assert!(
        e.starts_with("rb.yml:8: runbooks[0].verify.expr: invalid PromQL:"),
        "{e}"
    );
}
