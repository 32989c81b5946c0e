//! Turning discovered target groups into scrape targets: Prometheus's
//! `__address__`/`__scheme__`/`__metrics_path__`/`__param_*` labels, relabelling,
//! `instance` defaulting and the scrape URL.

use std::collections::BTreeMap;
use std::time::Duration;

use day2_model::{Labels, LabelsBuilder};

use super::config::{GlobalConfig, ScrapeConfig};
use super::discovery::TargetGroup;
use crate::relabel::{self, RelabelRule};

/// A target ready to be scraped.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Labels attached to every scraped sample.
    pub labels: Labels,
    /// Labels before relabelling (shown by the targets API).
    pub discovered: Labels,
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
}

/// Result of building targets for one job.
#[derive(Debug, Default)]
pub struct Built {
    pub active: Vec<Target>,
    pub dropped: Vec<Labels>,
    pub errors: Vec<String>,
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn build(
    cfg: &ScrapeConfig,
    g: &GlobalConfig,
    groups: &[TargetGroup],
    rules: &[RelabelRule],
) -> Built {
    let mut out = Built::default();
    let interval = cfg.interval(g);
    let timeout = cfg.timeout(g);
    for group in groups {
        for addr in &group.targets {
            let mut b = LabelsBuilder::new();
            for (k, v) in &group.labels {
                b.set(k.clone(), v.clone());
            }
            b.set("__address__", addr.clone());
            b.set("job", cfg.job_name.clone());
            b.set("__scheme__", cfg.scheme.clone());
            b.set("__metrics_path__", cfg.metrics_path.clone());
            b.set("__scrape_interval__", day2_model::format_duration(interval));
            b.set("__scrape_timeout__", day2_model::format_duration(timeout));
            for (k, vs) in &cfg.params {
                if let Some(v) = vs.first() {
                    b.set(format!("__param_{k}"), v.clone());
                }
            }
            let discovered = b.build();
            let Some(relabelled) = relabel::apply(&discovered, rules) else {
                out.dropped.push(discovered);
                continue;
            };
            let Some(address) = relabelled.get("__address__").map(str::to_string) else {
                out.errors
                    .push(format!("target {addr:?}: no address after relabelling"));
                continue;
            };
            if address.contains('/') {
                out.errors.push(format!(
                    "target {addr:?}: {address:?} is not a valid host:port"
                ));
                continue;
            }
            let scheme = relabelled.get("__scheme__").unwrap_or("http").to_string();
            let path = relabelled
                .get("__metrics_path__")
                .unwrap_or("/metrics")
                .to_string();
            let mut params: BTreeMap<String, Vec<String>> = cfg.params.clone();
            for l in relabelled.iter() {
                if let Some(p) = l.name.strip_prefix("__param_") {
                    let vals = params.entry(p.to_string()).or_default();
                    if vals.is_empty() {
                        vals.push(l.value.clone());
                    } else {
                        vals[0] = l.value.clone();
                    }
                }
            }
            let query: Vec<String> = params
                .iter()
                .flat_map(|(k, vs)| {
                    vs.iter()
                        .map(move |v| format!("{}={}", percent_encode(k), percent_encode(v)))
                })
                .collect();
            let url = if query.is_empty() {
                format!("{scheme}://{address}{path}")
            } else {
                format!("{scheme}://{address}{path}?{}", query.join("&"))
            };
            let mut fin = relabelled.to_builder();
            if fin.get("instance").is_none() {
                fin.set("instance", address.clone());
            }
            fin.retain(|l| !l.name.starts_with("__"));
            let labels = fin.build();
            if out.active.iter().any(|t: &Target| t.labels == labels) {
                continue; // Prometheus deduplicates identical targets
            }
            out.active.push(Target {
                labels,
                discovered,
                url,
                interval,
                timeout,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_labels_urls_and_drops() {
        let cfg: ScrapeConfig = serde_yaml_ng::from_str(
            "job_name: node\nparams: {module: [http_2xx]}\nrelabel_configs:\n  - source_labels: [env]\n    regex: dev\n    action: drop\n  - source_labels: [__address__]\n    regex: '(.*):.*'\n    target_label: host\n",
        )
        .unwrap();
        let g = GlobalConfig::default();
        let rules = relabel::compile(&cfg.relabel_configs).unwrap();
        let groups = vec![
            TargetGroup {
                source: "s".into(),
                targets: vec!["a:9100".into()],
                labels: [("env".to_string(), "prod".to_string())].into(),
            },
            TargetGroup {
                source: "s".into(),
                targets: vec!["b:9100".into()],
                labels: [("env".to_string(), "dev".to_string())].into(),
            },
        ];
        let built = build(&cfg, &g, &groups, &rules);
        assert_eq!(built.active.len(), 1);
        assert_eq!(built.dropped.len(), 1);
        let t = &built.active[0];
        assert_eq!(t.url, "http://a:9100/metrics?module=http_2xx");
        assert_eq!(
            t.labels,
            Labels::from_pairs([
                ("env", "prod"),
                ("host", "a"),
                ("instance", "a:9100"),
                ("job", "node")
            ])
        );
        assert_eq!(t.discovered.get("__address__"), Some("a:9100"));
    }
}
