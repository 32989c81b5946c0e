//! Rule-evaluation benchmark: the same 10,000 alerting rules loaded into each
//! target (by rewriting its config and sending SIGHUP, which day2 and
//! Prometheus both reload on), then each group's evaluation time read from
//! `/api/v1/rules` (the same API in both) over a few intervals.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::target::Server;

/// Rules per group; groups are evaluated concurrently by both engines.
const PER_GROUP: usize = 1000;

/// `n` alerting rules, five kinds per instance of the data set.
pub fn rule_file(n: usize, interval_s: u64) -> String {
    let mut out = String::from("groups:\n");
    for i in 0..n {
        if i % PER_GROUP == 0 {
            let _ = write!(
                out,
                "  - name: bench-{}\n    interval: {interval_s}s\n    rules:\n",
                i / PER_GROUP
            );
        }
        let inst = format!("host-{:05}:9100", i / 5);
        let expr = match i % 5 {
            0 => format!("node_memory_MemAvailable_bytes{{instance=\"{inst}\"}} < 1e9"),
            1 => format!(
                "rate(node_cpu_seconds_total{{instance=\"{inst}\",mode=\"idle\"}}[5m]) < 0.1"
            ),
            2 => format!(
                "sum by (instance) (rate(http_requests_total{{instance=\"{inst}\",code=\"500\"}}[5m])) > 1"
            ),
            3 => format!(
                "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{instance=\"{inst}\"}}[5m]))) > 0.5"
            ),
            _ => format!("absent(node_memory_MemAvailable_bytes{{instance=\"{inst}\"}})"),
        };
        let _ = write!(
            out,
            "      - alert: Bench{}\n        expr: '{expr}'\n        for: 5m\n        labels: {{severity: page}}\n        annotations: {{summary: '{{{{ $labels.instance }}}} at {{{{ $value }}}}'}}\n",
            i % 5
        );
    }
    out
}

/// What one target measured: per evaluation round, the sum and the maximum of
/// the groups' evaluation times, and the alerts that ended up active.
pub struct RuleTiming {
    pub sum_s: Vec<f64>,
    pub max_s: Vec<f64>,
    pub active_alerts: usize,
}

/// Loads the rules into `srv` and waits for `rounds` evaluations of every group.
pub async fn measure(
    client: &reqwest::Client,
    srv: &Server,
    rules: usize,
    rounds: usize,
) -> anyhow::Result<RuleTiming> {
    let dir = srv.data.parent().expect("data dir has a parent");
    let interval_s = 30;
    std::fs::write(dir.join("rules.yml"), rule_file(rules, interval_s))?;
    if srv.name == "day2" {
        let p = dir.join("day2.yml");
        let old = std::fs::read_to_string(&p)?;
        std::fs::write(
            &p,
            format!("{old}rule_files: [rules.yml]\nrules: {{for_grace_period: 1s}}\n"),
        )?;
        p
    } else {
        let p = dir.join("prometheus.yml");
        std::fs::write(
            &p,
            format!(
                "global: {{scrape_interval: 1h, evaluation_interval: {interval_s}s}}\nrule_files: [rules.yml]\n"
            ),
        )?;
        p
    };
    unsafe { libc::kill(srv.child.id() as i32, libc::SIGHUP) };
    // each group's (lastEvaluation, evaluationTime) seen so far
    let mut seen: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    let groups = rules.div_ceil(PER_GROUP);
    let deadline = Instant::now() + Duration::from_secs(interval_s * (rounds as u64 + 3) + 120);
    let active = loop {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{}: rules not evaluated {rounds} times in time",
            srv.name
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(r) = client.get(srv.url("/api/v1/rules")).send().await else {
            continue;
        };
        let Ok(v) = r.json::<serde_json::Value>().await else {
            continue;
        };
        let Some(gs) = v["data"]["groups"].as_array() else {
            continue;
        };
        let mut active = 0;
        for g in gs {
            let name = g["name"].as_str().unwrap_or("").to_string();
            let last = g["lastEvaluation"].as_str().unwrap_or("").to_string();
            let took = g["evaluationTime"].as_f64().unwrap_or(0.0);
            if last.starts_with("0001") || last.is_empty() {
                continue;
            }
            let e = seen.entry(name).or_default();
            if e.last().is_none_or(|(l, _)| *l != last) {
                e.push((last, took));
            }
            for r in g["rules"].as_array().into_iter().flatten() {
                active += r["alerts"].as_array().map_or(0, |a| a.len());
            }
        }
        // the first evaluation after a reload includes warm-up; skip it
        if seen.len() == groups && seen.values().all(|v| v.len() > rounds) {
            break active;
        }
    };
    let mut sum_s = Vec::new();
    let mut max_s = Vec::new();
    for round in 1..=rounds {
        let times: Vec<f64> = seen.values().map(|v| v[round].1).collect();
        sum_s.push(times.iter().sum());
        max_s.push(times.iter().cloned().fold(0.0, f64::max));
    }
    Ok(RuleTiming {
        sum_s,
        max_s,
        active_alerts: active,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn rule_file_parses_as_yaml_with_all_rules() {
        let text = super::rule_file(2500, 30);
        assert_eq!(text.matches("- alert:").count(), 2500);
        assert_eq!(text.matches("- name: bench-").count(), 3);
        assert!(text.contains("host-00499:9100"));
    }
}
