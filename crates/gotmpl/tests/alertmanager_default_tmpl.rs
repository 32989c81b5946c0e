//! Alertmanager's own default.tmpl and email.tmpl, parsed and rendered with a
//! realistic alert group, as Alertmanager's notifiers would.

use day2_gotmpl::{Env, Template, Value, funcs};

fn corpus(file: &str) -> String {
    let p = format!(
        "{}/../../../shared/corpus/alertmanager/template/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn time(s: &str) -> Value {
    Value::Time(
        s.parse::<jiff::Timestamp>()
            .unwrap()
            .to_zoned_datetime(jiff::tz::TimeZone::UTC),
    )
}

fn alert(status: &str, instance: &str, ends: &str) -> Value {
    Value::map([
        ("Status", Value::from(status)),
        (
            "Labels",
            Value::string_map([
                ("alertname", "InstanceDown"),
                ("instance", instance),
                ("job", "node"),
                ("severity", "critical"),
            ]),
        ),
        (
            "Annotations",
            Value::string_map([
                ("runbook", "https://runbooks/down".to_string()),
                ("summary", format!("{instance} is down")),
            ]),
        ),
        ("StartsAt", time("2024-05-01T10:00:00Z")),
        ("EndsAt", time(ends)),
        (
            "GeneratorURL",
            Value::from("http://prom:9090/graph?g0.expr=up+%3D%3D+0"),
        ),
        ("Fingerprint", Value::from(format!("fp-{instance}"))),
    ])
}

/// Two firing alerts and one resolved, grouped by alertname and job.
fn group(status: &str) -> Value {
    let zero = "0001-01-01T00:00:00Z";
    Value::map([
        ("Receiver", Value::from("team-ops")),
        ("Status", Value::from(status)),
        (
            "Alerts",
            Value::list([
                alert("firing", "a:9100", zero),
                alert("firing", "b:9100", zero),
                alert("resolved", "c:9100", "2024-05-01T10:05:00Z"),
            ]),
        ),
        (
            "GroupLabels",
            Value::string_map([("job", "node"), ("alertname", "InstanceDown")]),
        ),
        (
            "CommonLabels",
            Value::string_map([
                ("alertname", "InstanceDown"),
                ("job", "node"),
                ("severity", "critical"),
            ]),
        ),
        (
            "CommonAnnotations",
            Value::string_map([("runbook", "https://runbooks/down")]),
        ),
        ("ExternalURL", Value::from("http://am.example:9093")),
    ])
}

fn set() -> (Template, Env) {
    let env = Env::alertmanager();
    let mut t = Template::new("", &env.funcs);
    t.add("default.tmpl", &corpus("default.tmpl")).unwrap();
    t.add("email.tmpl", &corpus("email.tmpl")).unwrap();
    (t, env)
}

fn alert_text(instance: &str) -> String {
    format!(
        "Labels:\n - alertname = InstanceDown\n - instance = {instance}\n - job = node\n - severity = critical\n\
         Annotations:\n - runbook = https://runbooks/down\n - summary = {instance} is down\n\
         Source: http://prom:9090/graph?g0.expr=up+%3D%3D+0\n"
    )
}

#[test]
fn subjects_and_titles() {
    let (t, env) = set();
    let d = group("firing");
    let run = |name: &str| t.execute_template(name, &d, &env).unwrap();
    assert_eq!(run("__subject"), "[FIRING:2] InstanceDown node (critical)");
    assert_eq!(
        run("slack.default.title"),
        "[FIRING:2] InstanceDown node (critical)"
    );
    assert_eq!(
        run("email.default.subject"),
        "[FIRING:2] InstanceDown node (critical)"
    );
    assert_eq!(run("slack.default.text"), "");
    assert_eq!(run("slack.default.username"), "Alertmanager");
    assert_eq!(run("slack.default.color"), "danger");
    assert_eq!(
        run("slack.default.titlelink"),
        "http://am.example:9093/#/alerts?receiver=team-ops"
    );
    assert_eq!(
        run("slack.default.fallback"),
        "[FIRING:2] InstanceDown node (critical) | http://am.example:9093/#/alerts?receiver=team-ops"
    );
    assert_eq!(run("jira.default.priority"), "High");

    let r = group("resolved");
    assert_eq!(
        t.execute_template("__subject", &r, &env).unwrap(),
        "[RESOLVED] InstanceDown node (critical)"
    );
    assert_eq!(
        t.execute_template("slack.default.color", &r, &env).unwrap(),
        "good"
    );
}

#[test]
fn subject_without_extra_common_labels() {
    let (t, env) = set();
    let Value::Map(mut m) = group("firing") else {
        unreachable!()
    };
    std::sync::Arc::make_mut(&mut m).insert(
        "CommonLabels".into(),
        Value::string_map([("alertname", "InstanceDown"), ("job", "node")]),
    );
    // Alertmanager leaves a trailing space when there is nothing to add.
    assert_eq!(
        t.execute_template("__subject", &Value::Map(m), &env)
            .unwrap(),
        "[FIRING:2] InstanceDown node "
    );
}

#[test]
fn alert_lists_with_trim_markers() {
    let (t, env) = set();
    let d = group("firing");
    let want = format!(
        "https://runbooks/down\nAlerts Firing:\n{}{}\nAlerts Resolved:\n{}",
        alert_text("a:9100"),
        alert_text("b:9100"),
        alert_text("c:9100")
    );
    assert_eq!(
        t.execute_template("opsgenie.default.description", &d, &env)
            .unwrap(),
        want
    );
    // Alertmanager's pagerduty config passes `.Alerts.Firing` to this one.
    let zero = "0001-01-01T00:00:00Z";
    let firing = Value::list([
        alert("firing", "a:9100", zero),
        alert("firing", "b:9100", zero),
    ]);
    assert_eq!(
        t.execute_template("pagerduty.default.instances", &firing, &env)
            .unwrap(),
        format!("{}{}", alert_text("a:9100"), alert_text("b:9100"))
    );
    let teams = t
        .execute_template("msteams.default.text", &d, &env)
        .unwrap();
    assert!(teams.contains("# Alerts Firing:\n"), "{teams}");
    assert!(
        teams.contains("\nLabels:\n  - alertname = InstanceDown\n  - instance = a:9100\n"),
        "{teams}"
    );
    assert!(teams.contains("# Alerts Resolved:\n"), "{teams}");
}

#[test]
fn email_html() {
    let (t, env) = set();
    let html = t
        .execute_template("email.default.html", &group("firing"), &env)
        .unwrap();
    for want in [
        "<title>[FIRING:2] InstanceDown node (critical)</title>",
        "3 alerts for",
        "alertname=InstanceDown",
        "job=node",
        "[2] Firing</strong>",
        "[1] Resolved</strong>",
        "alertname = InstanceDown<br",
        "instance = c:9100<br",
        "summary = a:9100 is down<br",
        r#"<a href="http://am.example:9093/#/alerts?receiver=team-ops" class="btn-primary""#,
        r#"<a href="http://prom:9090/graph?g0.expr=up+%3D%3D+0""#,
        "View in Alertmanager</a>",
        r#"<a href="http://am.example:9093" style"#,
        "Sent by Alertmanager</a>",
    ] {
        assert!(html.contains(want), "missing {want:?}");
    }
    assert!(!html.contains("<no value>"));
    assert!(html.trim_end().ends_with("</html>"));
}

#[test]
fn user_templates_override_and_use_time_functions() {
    let (mut t, env) = set();
    t.add(
        "user.tmpl",
        r#"
{{ define "slack.default.text" }}{{ range .Alerts.Firing }}{{ .Annotations.summary }}
{{ end }}{{ end }}
{{ define "custom" -}}
{{ range .Alerts -}}
{{ .Labels.instance | toUpper }} {{ .Status | title }} since {{ .StartsAt.Format "15:04 MST" }} ({{ date "Jan 2, 2006" .StartsAt }}, {{ (tz "Europe/Berlin" .StartsAt).Format "15:04 MST" }})
{{ end -}}
{{ .CommonLabels.Names | join "," }}|{{ stringSlice "x" "y" | join "+" }}|{{ .ExternalURL | reReplaceAll "^http://([^:]+).*" "$1" }}|{{ with .CommonLabels.Remove "severity" "job" }}{{ .Values | join "" }}{{ end }}
{{- end }}"#,
    )
    .unwrap();
    let d = group("firing");
    assert_eq!(
        t.execute_template("slack.default.text", &d, &env).unwrap(),
        "a:9100 is down\nb:9100 is down\n"
    );
    assert_eq!(
        t.execute_template("custom", &d, &env).unwrap(),
        "A:9100 Firing since 10:00 UTC (May 1, 2024, 12:00 CEST)\n\
         B:9100 Firing since 10:00 UTC (May 1, 2024, 12:00 CEST)\n\
         C:9100 Resolved since 10:00 UTC (May 1, 2024, 12:00 CEST)\n\
         alertname,job,severity|x+y|am.example|InstanceDown"
    );
}

#[test]
fn unknown_function_in_user_file_is_a_parse_error() {
    let (mut t, _) = set();
    let e = t
        .add(
            "user.tmpl",
            "{{ define \"x\" }}\n{{ .Status | toupper }}{{ end }}",
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"user.tmpl:2:14: function "toupper" not defined"#
    );
    // Prometheus's functions are not Alertmanager's.
    assert!(Template::parse("p", "{{ humanize 1 }}", &funcs::alertmanager()).is_err());
}

#[test]
fn config_texts_and_stringers() {
    let (t, env) = set();
    let d = group("firing");
    // Each templated config field is parsed against the loaded set.
    let title = t
        .with_text("", r#"{{ template "slack.default.title" . }}!"#)
        .unwrap();
    assert_eq!(
        title.execute(&d, &env).unwrap(),
        "[FIRING:2] InstanceDown node (critical)!"
    );
    assert!(!t.has(""), "the set itself is unchanged");
    // KV and Pairs print through their String methods, as in Go.
    let s = t
        .with_text(
            "",
            "{{ .CommonLabels }} | {{ .GroupLabels.SortedPairs }} | {{ .GroupLabels.Names }}",
        )
        .unwrap();
    assert_eq!(
        s.execute(&d, &env).unwrap(),
        "alertname=InstanceDown, job=node, severity=critical | alertname=InstanceDown, job=node | [alertname job]"
    );
    let e = t
        .with_text("", r#"{{ template "nope" . }}"#)
        .unwrap()
        .execute(&d, &env)
        .unwrap_err();
    assert!(
        e.to_string().ends_with(r#"template "nope" not defined"#),
        "{e}"
    );
}

#[test]
fn every_default_template_renders_cleanly() {
    let (t, env) = set();
    let zero = "0001-01-01T00:00:00Z";
    let alerts = Value::list([
        alert("firing", "a:9100", zero),
        alert("resolved", "c:9100", zero),
    ]);
    for status in ["firing", "resolved"] {
        let d = group(status);
        let names = t.names();
        assert_eq!(names.len(), 66, "64 defines and 2 files");
        for name in names {
            // These take a list of alerts (`.Alerts.Firing` in the receiver config).
            let data = if name.contains("alert_list") || name == "pagerduty.default.instances" {
                &alerts
            } else {
                &d
            };
            let out = t
                .execute_template(name, data, &env)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!out.contains("<no value>"), "{name}: {out}");
        }
    }
}
