//! The `autoscaling:` section of day2.yml.
//!
//! ```yaml
//! autoscaling:
//!   policies:
//!     - name: api
//!       metric: avg(rate(http_requests_total{service="api"}[1m]))   # per replica
//!       target_value: 50
//!       min: 2
//!       max: 20
//!       tolerance: 10%            # default 10%: no change within ±10% of the target
//!       interval: 15s             # evaluation interval
//!       scale_up:   { stabilization_window: 0s, max_step: 4, period: 15s }
//!       scale_down: { stabilization_window: 5m, max_step: 50% }
//!       target:
//!         kind: exec
//!         set: [/usr/local/bin/scale-api, --replicas, "{{ replicas }}"]
//!         get: [/usr/local/bin/replicas-api]   # optional: prints the current count
//! ```

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use day2_remediate::Dur;
use serde::{Deserialize, Deserializer};

use crate::hpa::{Behavior, Params, StepLimit};

/// The argv element replaced by the replica count.
pub const REPLICAS: &str = "{{ replicas }}";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoscalingSection {
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
}

/// One target-tracking policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub name: String,
    pub target: TargetConfig,
    /// PromQL giving the per-replica value (a scalar or one series).
    pub metric: String,
    pub target_value: f64,
    pub min: u32,
    pub max: u32,
    /// Relative band around the target without scaling (default 10%).
    #[serde(default, deserialize_with = "opt_percent")]
    pub tolerance: Option<f64>,
    /// Evaluation interval (default 15s).
    #[serde(default)]
    pub interval: Option<Dur>,
    #[serde(default)]
    pub scale_up: BehaviorConfig,
    #[serde(default)]
    pub scale_down: BehaviorConfig,
}

/// Stabilization and step limit of one direction.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehaviorConfig {
    /// Default: 0s up, 5m down (as Kubernetes).
    #[serde(default)]
    pub stabilization_window: Option<Dur>,
    /// Most replicas added (removed) per `period`: a count or a percentage.
    #[serde(default, deserialize_with = "opt_step")]
    pub max_step: Option<StepLimit>,
    /// Default: the evaluation interval.
    #[serde(default)]
    pub period: Option<Dur>,
}

/// What the policy scales.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetConfig {
    /// Commands run by argv (never a shell): `set` with one element exactly
    /// `{{ replicas }}`; `get`, when given, prints the current count.
    Exec {
        set: Vec<String>,
        #[serde(default)]
        get: Vec<String>,
        #[serde(default)]
        timeout: Option<Dur>,
        #[serde(default)]
        env: BTreeMap<String, String>,
    },
    /// A Kubernetes workload's scale subresource, e.g. `deployment/api`
    /// (deployments, statefulsets, replicasets), through the cluster of
    /// `remediation.kubernetes`.
    Kubernetes {
        #[serde(default)]
        namespace: Option<String>,
        resource: String,
    },
}

fn opt_percent<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let s = String::deserialize(d)?;
    day2_model::parse_percent(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn opt_step<'de, D: Deserializer<'de>>(d: D) -> Result<Option<StepLimit>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u32),
        S(String),
    }
    match Raw::deserialize(d)? {
        Raw::N(0) => Err(serde::de::Error::custom("max_step must be at least 1")),
        Raw::N(n) => Ok(Some(StepLimit::Replicas(n))),
        Raw::S(s) => match day2_model::parse_percent(&s).map_err(serde::de::Error::custom)? {
            p if p <= 0.0 => Err(serde::de::Error::custom("max_step must be above 0%")),
            p => Ok(Some(StepLimit::Percent(p))),
        },
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl PolicyConfig {
    pub fn interval(&self) -> Duration {
        self.interval.map_or(Duration::from_secs(15), |d| d.0)
    }

    /// The core's parameters.
    pub fn params(&self) -> Params {
        let interval = self.interval();
        let behavior = |b: &BehaviorConfig, default_window: Duration| Behavior {
            window_ms: ms(b.stabilization_window.map_or(default_window, |d| d.0)),
            limit: b.max_step,
            period_ms: ms(b.period.map_or(interval, |d| d.0)),
        };
        Params {
            target_value: self.target_value,
            tolerance: self.tolerance.unwrap_or(0.1),
            min: self.min,
            max: self.max,
            up: behavior(&self.scale_up, Duration::ZERO),
            down: behavior(&self.scale_down, Duration::from_secs(300)),
        }
    }

    /// The longest time a decision looks back (windows and periods).
    pub fn memory(&self) -> Duration {
        let p = self.params();
        let longest = [
            p.up.window_ms,
            p.down.window_ms,
            p.up.period_ms,
            p.down.period_ms,
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        Duration::from_millis(u64::try_from(longest).unwrap_or(0))
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let ok_name = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !ok_name {
            return Err((
                "name".into(),
                "1 to 64 characters of A-Z a-z 0-9 _ . -".into(),
            ));
        }
        day2_promql::format_query(&self.metric).map_err(|e| ("metric".into(), e.to_string()))?;
        if !(self.target_value.is_finite() && self.target_value > 0.0) {
            return Err(("target_value".into(), "must be a number above 0".into()));
        }
        if self.min == 0 {
            return Err((
                "min".into(),
                "must be at least 1 (a target at 0 replicas is not scaled, as in Kubernetes)"
                    .into(),
            ));
        }
        if self.max < self.min {
            return Err(("max".into(), "must not be below min".into()));
        }
        if self.tolerance.is_some_and(|t| t >= 1.0) {
            return Err(("tolerance".into(), "must be below 100%".into()));
        }
        if self.interval().is_zero() {
            return Err(("interval".into(), "must be greater than 0".into()));
        }
        for (dir, b) in [
            ("scale_up", &self.scale_up),
            ("scale_down", &self.scale_down),
        ] {
            if b.period.is_some_and(|p| p.is_zero()) {
                return Err((format!("{dir}.period"), "must be greater than 0".into()));
            }
        }
        match &self.target {
            TargetConfig::Exec { set, get, env, .. } => {
                if set.is_empty() {
                    return Err(("target.set".into(), "the command is missing".into()));
                }
                let placeholders = set.iter().filter(|a| a.as_str() == REPLICAS).count();
                if placeholders != 1 {
                    return Err((
                        "target.set".into(),
                        format!(
                            "exactly one element must be {REPLICAS:?} (the replica count, as its own argument)"
                        ),
                    ));
                }
                for (field, argv) in [("set", set), ("get", get)] {
                    for (i, a) in argv.iter().enumerate() {
                        if a.contains("{{") && a != REPLICAS || field == "get" && a == REPLICAS {
                            return Err((
                                format!("target.{field}[{i}]"),
                                format!(
                                    "only {REPLICAS:?}, as a whole element of set, is replaced"
                                ),
                            ));
                        }
                        if a.contains('\0') {
                            return Err((format!("target.{field}[{i}]"), "NUL byte".into()));
                        }
                    }
                }
                for k in env.keys() {
                    let ok = !k.is_empty()
                        && !k.as_bytes()[0].is_ascii_digit()
                        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                    if !ok {
                        return Err((
                            format!("target.env.{k}"),
                            "not a valid environment variable name".into(),
                        ));
                    }
                }
            }
            TargetConfig::Kubernetes { resource, .. } => {
                crate::scaler::parse_resource(resource)
                    .map_err(|m| ("target.resource".to_string(), m))?;
            }
        }
        Ok(())
    }
}

impl AutoscalingSection {
    /// Checks what the types cannot; returns the field path (relative to
    /// `autoscaling`) and the message.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let mut names = HashSet::new();
        for (i, p) in self.policies.iter().enumerate() {
            p.validate()
                .map_err(|(f, m)| (format!("policies[{i}].{f}"), m))?;
            if !names.insert(p.name.as_str()) {
                return Err((
                    format!("policies[{i}].name"),
                    format!("duplicate policy name {:?}", p.name),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<AutoscalingSection, String> {
        let s: AutoscalingSection =
            day2_yamlerr::from_str(yaml, "day2.yml").map_err(|e| e.to_string())?;
        s.validate().map_err(|(f, m)| format!("{f}: {m}"))?;
        Ok(s)
    }

    const GOOD: &str = r#"
policies:
  - name: api
    metric: avg(load{service="api"})
    target_value: 50
    min: 2
    max: 20
    interval: 10s
    scale_up: { max_step: 4 }
    scale_down: { stabilization_window: 1m, max_step: 50%, period: 30s }
    target:
      kind: exec
      set: [/usr/local/bin/scale, --replicas, "{{ replicas }}"]
      get: [/usr/local/bin/replicas]
      env: { KUBECONFIG: /etc/kube }
  - name: k8s
    metric: vector(1)
    target_value: 1
    min: 1
    max: 3
    target: { kind: kubernetes, namespace: prod, resource: deployment/web }
"#;

    #[test]
    fn a_full_section_loads_with_kubernetes_defaults() {
        let s = parse(GOOD).unwrap();
        let p = s.policies[0].params();
        assert_eq!(
            (p.min, p.max, p.target_value, p.tolerance),
            (2, 20, 50.0, 0.1)
        );
        assert_eq!(p.up.window_ms, 0);
        assert_eq!(p.up.limit, Some(StepLimit::Replicas(4)));
        assert_eq!(p.up.period_ms, 10_000);
        assert_eq!(p.down.window_ms, 60_000);
        assert_eq!(p.down.limit, Some(StepLimit::Percent(0.5)));
        assert_eq!(p.down.period_ms, 30_000);
        assert_eq!(s.policies[0].memory(), Duration::from_secs(60));
        let k = s.policies[1].params();
        assert_eq!((k.down.window_ms, k.up.period_ms), (300_000, 15_000));
        assert!(matches!(
            s.policies[1].target,
            TargetConfig::Kubernetes { .. }
        ));
    }

    #[test]
    fn validation_names_the_field() {
        let base = |extra: &str, target: &str| {
            format!(
                "policies:\n  - name: a\n    metric: up\n    target_value: 1\n    min: 1\n    max: 2\n{extra}    target: {target}\n"
            )
        };
        let exec = r#"{kind: exec, set: [s, "{{ replicas }}"]}"#;
        let cases = [
            (
                base("", r#"{kind: exec, set: [s, "{{replicas}}"]}"#),
                "policies[0].target.set: exactly one",
            ),
            (
                base("", r#"{kind: exec, set: [s, "--n={{ replicas }}"]}"#),
                "policies[0].target.set: exactly one",
            ),
            (
                base(
                    "",
                    r#"{kind: exec, set: [s, "{{ replicas }}"], get: [g, "{{ replicas }}"]}"#,
                ),
                "policies[0].target.get[1]",
            ),
            (
                base(
                    "",
                    r#"{kind: exec, set: [s, "{{ replicas }}"], env: {"1X": y}}"#,
                ),
                "policies[0].target.env.1X",
            ),
            (
                base("", "{kind: kubernetes, resource: api}"),
                "policies[0].target.resource",
            ),
            (
                base("", "{kind: kubernetes, resource: daemonset/agent}"),
                "policies[0].target.resource: \"daemonset\": day2 scales deployments",
            ),
            (base("    tolerance: 100%\n", exec), "policies[0].tolerance"),
            (base("    interval: 0s\n", exec), "policies[0].interval"),
            (
                base("", exec).replace("min: 1", "min: 0"),
                "policies[0].min",
            ),
            (
                base("", exec)
                    .replace("max: 2", "max: 0")
                    .replace("min: 1", "min: 3"),
                "policies[0].max",
            ),
            (
                base("", exec).replace("metric: up", "metric: 'sum(up'"),
                "policies[0].metric",
            ),
            (
                base("", exec).replace("target_value: 1", "target_value: 0"),
                "policies[0].target_value",
            ),
        ];
        for (yaml, want) in cases {
            let e = parse(&yaml).unwrap_err();
            assert!(e.starts_with(want), "{yaml}\n=> {e}\nwant {want}");
        }
        let dup = format!(
            "{}{}",
            base("", exec),
            base("", exec).replace("policies:\n", "")
        );
        assert!(
            parse(&dup)
                .unwrap_err()
                .starts_with("policies[1].name: duplicate")
        );
        for bad in [
            base("    scale_up: { max_step: 0 }\n", exec),
            base("    scale_up: { max_step: 4x }\n", exec),
            base("    scale_up: { bogus: 1 }\n", exec),
            base("", "{kind: ssh, host: x}"),
            base(
                "",
                r#"{kind: exec, set: [s, "{{ replicas }}"], shell: true}"#,
            ),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
    }
}
