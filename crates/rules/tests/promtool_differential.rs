//! Differential test against the real Prometheus rule engine (Debian's
//! `promtool`, installed by scripts/test.sh): day2 evaluates a rule file over
//! input series and records, at every minute, which alerts fire with which
//! labels and annotations, plus recorded series and `ALERTS`. Those become the
//! expectations of a promtool unit-test file; `promtool test rules` must pass
//! it, i.e. Prometheus computes the same alerts at the same evaluation times.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use day2_rules::unittest::{TestOptions, observe, run_file};
use serde_json::{Value, json};

const RULES: &str = r#"
groups:
  - name: service
    rules:
      - record: job:http_errors:rate5m
        expr: sum by (job) (rate(http_errors_total[4m50s]))
      - alert: HighErrorRate
        expr: job:http_errors:rate5m > 0.8
        for: 2m
        labels:
          severity: '{{ if gt $value 1.5 }}page{{ else }}ticket{{ end }}'
        annotations:
          summary: '{{ $labels.job }} errors at {{ $value | humanize }}/s'
          share: '{{ $value | humanizePercentage }}'
      - alert: InstanceDown
        expr: up == 0
        for: 3m
        keep_firing_for: 2m
        labels:
          severity: page
        annotations:
          summary: 'Instance {{ $labels.instance }} of {{ $labels.job }} down'
          value: '{{ printf "%.1f" $value }}'
  - name: host
    interval: 2m
    rules:
      - alert: NoTraffic
        expr: absent(http_requests_total{job="api"})
        for: 1m
        annotations:
          summary: 'no requests from {{ $labels.job }} since {{ humanizeDuration 125 }}'
      - alert: HighLoad
        expr: node_load1 / on(instance) group_left count by (instance) (node_cpu_seconds_total{mode="idle"}) > 0.8
        labels:
          team: '{{ $labels.instance | toUpper }}'
        annotations:
          summary: '{{ $labels.instance }} load per cpu {{ printf "%.2f" $value }}'
"#;

// Sampled every 40s while rules run every minute, and range selectors of
// 4m50s: no sample ever sits exactly on a window boundary, where Prometheus
// 2.42 (closed windows) and Prometheus 3 / day2 (left-open windows) differ.
const SERIES: &str = r#"
      - series: 'up{job="api", instance="a"}'
        values: '1x8 0x12 1x40'
      - series: 'up{job="api", instance="b"}'
        values: '1x5 0x3 1x6 0x50'
      - series: 'up{job="db", instance="c"}'
        values: '1x60'
      - series: 'http_errors_total{job="api", instance="a"}'
        values: '0+20x20 400+90x40'
      - series: 'http_errors_total{job="db", instance="c"}'
        values: '0+40x60'
      - series: 'http_requests_total{job="api"}'
        values: '0+100x12 stale _x20 1300+100x30'
      - series: 'node_load1{instance="a"}'
        values: '1x10 4x15 1x40'
      - series: 'node_cpu_seconds_total{instance="a", cpu="0", mode="idle"}'
        values: '0+50x60'
      - series: 'node_cpu_seconds_total{instance="a", cpu="1", mode="idle"}'
        values: '0+50x60'
"#;

const ALERTS: &[&str] = &["HighErrorRate", "InstanceDown", "NoTraffic", "HighLoad"];

fn map_json(l: &day2_model::Labels, skip: &str) -> Value {
    let m: BTreeMap<String, String> = l
        .iter()
        .filter(|x| x.name != skip)
        .map(|x| (x.name.clone(), x.value.clone()))
        .collect();
    json!(m)
}

fn test_file(rule_file: &str, alert_tests: Value, expr_tests: Value) -> Value {
    let series: Value = serde_yaml_ng::from_str(SERIES).unwrap();
    json!({
        "rule_files": [rule_file],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "40s",
            "input_series": series,
            "alert_rule_test": alert_tests,
            "promql_expr_test": expr_tests,
        }],
    })
}

#[test]
fn promtool_computes_the_same_alerts_as_day2() {
    let promtool = which("promtool").expect(
        "promtool (Debian package prometheus) is needed: run scripts/test.sh, which installs it",
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();

    // 1. a grid of questions, without expectations
    let mut grid = Vec::new();
    for m in 0..=36 {
        for a in ALERTS {
            grid.push(json!({"eval_time": format!("{m}m"), "alertname": a, "exp_alerts": []}));
        }
    }
    let mut exprs = Vec::new();
    for m in (0..=36).step_by(3) {
        // rounded: the two engines may differ in the last bits of a rate
        for e in [
            "round(job:http_errors:rate5m, 0.001)",
            "ALERTS",
            "count by (alertname) (ALERTS_FOR_STATE)",
        ] {
            exprs.push(json!({"expr": e, "eval_time": format!("{m}m"), "exp_samples": []}));
        }
    }
    let questions = dir.path().join("questions.yml");
    std::fs::write(
        &questions,
        serde_yaml_ng::to_string(&test_file("rules.yml", json!(grid), json!(exprs))).unwrap(),
    )
    .unwrap();

    // 2. day2's answers become the expectations
    let obs = observe(&questions).expect("day2 evaluates the rules");
    let mut firing_by_name: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let alert_tests: Vec<Value> = obs
        .alerts
        .iter()
        .map(|(_, t, name, got)| {
            let e = firing_by_name.entry(name.clone()).or_default();
            if got.is_empty() { e.1 += 1 } else { e.0 += 1 }
            let exp: Vec<Value> = got
                .iter()
                .map(|(l, a)| json!({"exp_labels": map_json(l, "alertname"), "exp_annotations": map_json(a, "")}))
                .collect();
            json!({"eval_time": day2_model::format_duration(*t), "alertname": name, "exp_alerts": exp})
        })
        .collect();
    let mut samples = 0;
    let expr_tests: Vec<Value> = obs
        .exprs
        .iter()
        .map(|(_, t, expr, got)| {
            let got = got.as_ref().expect("query runs");
            samples += got.len();
            let exp: Vec<Value> = got
                .iter()
                .map(|(l, v)| json!({"labels": l.to_string(), "value": v}))
                .collect();
            json!({"expr": expr, "eval_time": day2_model::format_duration(*t), "exp_samples": exp})
        })
        .collect();
    // the scenario exercises every rule both firing and quiet
    for a in ALERTS {
        let (fired, quiet) = firing_by_name.get(*a).copied().unwrap_or_default();
        assert!(
            fired > 0 && quiet > 0,
            "{a}: fired at {fired} and quiet at {quiet} of the times"
        );
    }
    assert!(samples > 20, "only {samples} expected samples");

    let answers = dir.path().join("answers.yml");
    std::fs::write(
        &answers,
        serde_yaml_ng::to_string(&test_file(
            "rules.yml",
            json!(alert_tests),
            json!(expr_tests),
        ))
        .unwrap(),
    )
    .unwrap();

    // 3. day2 agrees with itself, and Prometheus agrees with day2
    let own = run_file(&answers, &TestOptions::default());
    assert!(own.passed, "{}", own.output);
    let out = Command::new(promtool)
        .arg("test")
        .arg("rules")
        .arg(&answers)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool disagrees with day2:\n{text}"
    );
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}
