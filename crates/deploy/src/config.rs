//! The `deployments:` section of day2.yml.
//!
//! ```yaml
//! deployments:
//!   alert_service_labels: [service, job]   # alert labels naming the service, in order
//!   alert_environment_label: environment   # when an alert has it, the deployment's must match
//!   default_environment: production
//!   dora: { window: 30d }
//!   services:
//!     api:
//!       analysis:
//!         mode: enforce                    # advisory (default) | enforce
//!         window: 10m                      # post-deploy window
//!         baseline: 30m                    # pre-deploy window
//!         checks:
//!           - name: error-rate
//!             expr: sum(rate(http_errors_total{service="{{ service }}"}[1m]))
//!             compare: { max_increase: 20%, tolerance: 0.01 }
//!         rollback_runbook: rollback-api
//! ```

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::analysis::{AnalysisSpec, CheckSpec, Comparison};
use crate::model::check_name;

/// `deployments:` in day2.yml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentsSection {
    /// Alert labels that name the service, tried in order.
    #[serde(default = "default_service_labels")]
    pub alert_service_labels: Vec<String>,
    /// When an alert carries this label, only a deployment to that
    /// environment annotates it.
    #[serde(default = "default_environment_label")]
    pub alert_environment_label: String,
    /// Environment of a deployment that names none.
    #[serde(default = "default_environment")]
    pub default_environment: String,
    #[serde(default)]
    pub dora: DoraSection,
    /// Per service settings (post-deploy analysis).
    #[serde(default)]
    pub services: BTreeMap<String, ServiceConfig>,
}

impl Default for DeploymentsSection {
    fn default() -> Self {
        DeploymentsSection {
            alert_service_labels: default_service_labels(),
            alert_environment_label: default_environment_label(),
            default_environment: default_environment(),
            dora: DoraSection::default(),
            services: BTreeMap::new(),
        }
    }
}

fn default_service_labels() -> Vec<String> {
    vec!["service".into(), "job".into()]
}
fn default_environment_label() -> String {
    "environment".into()
}
fn default_environment() -> String {
    "production".into()
}

/// DORA figures exposed on `/metrics` (the API takes its own window).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoraSection {
    #[serde(default = "default_dora_window", deserialize_with = "duration")]
    pub window: Duration,
}

impl Default for DoraSection {
    fn default() -> Self {
        DoraSection {
            window: default_dora_window(),
        }
    }
}

fn default_dora_window() -> Duration {
    Duration::from_secs(30 * 86400)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    #[serde(default)]
    pub analysis: Option<AnalysisConfig>,
}

/// What a failing analysis does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Record and show the verdict.
    #[default]
    Advisory,
    /// Also run the rollback runbook when the verdict is fail.
    Enforce,
}

/// The verdict of a check that found no data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoData {
    #[default]
    Inconclusive,
    Pass,
    Fail,
}

/// Post-deploy analysis of one service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisConfig {
    #[serde(default)]
    pub mode: Mode,
    /// Length of the post-deploy window.
    #[serde(deserialize_with = "duration")]
    pub window: Duration,
    /// Length of the pre-deploy window (default: the post-deploy window's).
    #[serde(default, deserialize_with = "opt_duration")]
    pub baseline: Option<Duration>,
    /// Time after the deployment before the post-deploy window starts (warm-up).
    #[serde(default, deserialize_with = "opt_duration")]
    pub delay: Option<Duration>,
    /// Resolution of the range queries (default: window / 30, at least 1s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub step: Option<Duration>,
    /// Environments analysed (empty: all).
    #[serde(default)]
    pub environments: Vec<String>,
    pub checks: Vec<CheckConfig>,
    /// Runbook run when an enforced analysis fails.
    #[serde(default)]
    pub rollback_runbook: Option<String>,
}

/// One PromQL check.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    pub name: String,
    /// PromQL; `{{ service }}` and `{{ environment }}` inside quoted strings
    /// are replaced by the (escaped) service and environment names.
    pub expr: String,
    pub compare: CompareConfig,
    #[serde(default)]
    pub no_data: NoData,
}

/// Exactly one of the limits; `tolerance` (absolute) only with the relative ones.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareConfig {
    #[serde(default)]
    pub max_value: Option<f64>,
    #[serde(default)]
    pub min_value: Option<f64>,
    /// `20%`: the post-deploy value may exceed the baseline by 20% of it.
    #[serde(default)]
    pub max_increase: Option<String>,
    /// `20%`: the post-deploy value may fall below the baseline by 20% of it.
    #[serde(default)]
    pub max_decrease: Option<String>,
    /// Absolute change always allowed on top of the relative limit (so a
    /// zero baseline does not fail on any increase at all).
    #[serde(default)]
    pub tolerance: Option<f64>,
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    day2_model::parse_duration(&s).map_err(serde::de::Error::custom)
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

impl CompareConfig {
    /// The comparison, or what is wrong (field name relative to `compare`).
    pub fn comparison(&self) -> Result<Comparison, (String, String)> {
        let set = [
            self.max_value.is_some(),
            self.min_value.is_some(),
            self.max_increase.is_some(),
            self.max_decrease.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if set != 1 {
            return Err((
                String::new(),
                "exactly one of max_value, min_value, max_increase, max_decrease is required"
                    .into(),
            ));
        }
        let tolerance = match self.tolerance {
            Some(t) if !t.is_finite() || t < 0.0 => {
                return Err(("tolerance".into(), "must be a non-negative number".into()));
            }
            Some(_) if self.max_increase.is_none() && self.max_decrease.is_none() => {
                return Err((
                    "tolerance".into(),
                    "only applies to max_increase and max_decrease".into(),
                ));
            }
            t => t.unwrap_or(0.0),
        };
        let finite = |field: &str, v: f64| {
            if v.is_finite() {
                Ok(v)
            } else {
                Err((field.to_string(), "must be a finite number".to_string()))
            }
        };
        if let Some(v) = self.max_value {
            return Ok(Comparison::MaxValue {
                limit: finite("max_value", v)?,
            });
        }
        if let Some(v) = self.min_value {
            return Ok(Comparison::MinValue {
                limit: finite("min_value", v)?,
            });
        }
        if let Some(p) = &self.max_increase {
            return Ok(Comparison::MaxIncrease {
                ratio: day2_model::parse_percent(p).map_err(|m| ("max_increase".to_string(), m))?,
                tolerance,
            });
        }
        let p = self.max_decrease.as_deref().unwrap_or_default();
        Ok(Comparison::MaxDecrease {
            ratio: day2_model::parse_percent(p).map_err(|m| ("max_decrease".to_string(), m))?,
            tolerance,
        })
    }
}

/// Where a placeholder stands in an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Double,
    Single,
    Backtick,
}

/// Escapes `value` for a PromQL string literal delimited by `quote`.
fn escape(value: &str, quote: char) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Replaces `{{ service }}` and `{{ environment }}` in a PromQL expression.
/// A placeholder must stand inside a `"..."` or `'...'` string (a label
/// value); its value is escaped for that string, so no name can change the
/// query's structure.
pub fn render_expr(expr: &str, service: &str, environment: &str) -> Result<String, String> {
    let mut out = String::with_capacity(expr.len() + 16);
    let mut quote = Quote::None;
    let mut rest = expr;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("{{") {
            let end = rest
                .find("}}")
                .ok_or_else(|| "unclosed {{ placeholder".to_string())?;
            let name = rest[2..end].trim();
            let value = match name {
                "service" => service,
                "environment" => environment,
                other => {
                    return Err(format!(
                        "unknown placeholder {{{{ {other} }}}} (known: {{{{ service }}}}, {{{{ environment }}}})"
                    ));
                }
            };
            match quote {
                Quote::Double => out.push_str(&escape(value, '"')),
                Quote::Single => out.push_str(&escape(value, '\'')),
                Quote::None | Quote::Backtick => {
                    return Err(format!(
                        "{{{{ {name} }}}} must stand inside a \"...\" string, e.g. {name}=\"{{{{ {name} }}}}\""
                    ));
                }
            }
            rest = &rest[end + 2..];
            continue;
        }
        let len = c.len_utf8();
        match (quote, c) {
            (Quote::None, '"') => quote = Quote::Double,
            (Quote::None, '\'') => quote = Quote::Single,
            (Quote::None, '`') => quote = Quote::Backtick,
            (Quote::Double, '"') | (Quote::Single, '\'') | (Quote::Backtick, '`') => {
                quote = Quote::None
            }
            (Quote::Double | Quote::Single, '\\') => {
                // an escaped character never closes the string
                out.push('\\');
                rest = &rest[1..];
                if let Some(n) = rest.chars().next() {
                    out.push(n);
                    rest = &rest[n.len_utf8()..];
                }
                continue;
            }
            _ => {}
        }
        out.push(c);
        rest = &rest[len..];
    }
    Ok(out)
}

impl AnalysisConfig {
    fn step(&self) -> Duration {
        self.step
            .unwrap_or_else(|| (self.window / 30).max(Duration::from_secs(1)))
    }

    /// The analysis of one deployment: expressions rendered for its service
    /// and environment, durations fixed.
    pub fn spec(&self, service: &str, environment: &str) -> Result<AnalysisSpec, String> {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let mut checks = Vec::with_capacity(self.checks.len());
        for c in &self.checks {
            checks.push(CheckSpec {
                name: c.name.clone(),
                expr: render_expr(&c.expr, service, environment)
                    .map_err(|e| format!("check {}: {e}", c.name))?,
                comparison: c
                    .compare
                    .comparison()
                    .map_err(|(_, m)| format!("check {}: {m}", c.name))?,
                no_data: c.no_data,
            });
        }
        Ok(AnalysisSpec {
            mode: self.mode,
            window_ms: ms(self.window),
            baseline_ms: ms(self.baseline.unwrap_or(self.window)),
            delay_ms: ms(self.delay.unwrap_or_default()),
            step_ms: ms(self.step()),
            checks,
            rollback_runbook: self.rollback_runbook.clone(),
        })
    }

    /// Whether deployments to `environment` are analysed.
    pub fn applies_to(&self, environment: &str) -> bool {
        self.environments.is_empty() || self.environments.iter().any(|e| e == environment)
    }

    fn validate(&self, service: &str) -> Result<(), (String, String)> {
        if self.window.is_zero() {
            return Err(("window".into(), "must be greater than 0".into()));
        }
        if self.baseline.is_some_and(|b| b.is_zero()) {
            return Err(("baseline".into(), "must be greater than 0".into()));
        }
        let step = self.step();
        if step.is_zero() {
            return Err(("step".into(), "must be greater than 0".into()));
        }
        if step > self.window || step > self.baseline.unwrap_or(self.window) {
            return Err((
                "step".into(),
                "must not be longer than the window or the baseline".into(),
            ));
        }
        for (i, e) in self.environments.iter().enumerate() {
            check_name("environment", e).map_err(|m| (format!("environments[{i}]"), m))?;
        }
        if self.checks.is_empty() {
            return Err(("checks".into(), "at least one check is required".into()));
        }
        let mut names = HashSet::new();
        for (i, c) in self.checks.iter().enumerate() {
            let at = |f: &str| format!("checks[{i}].{f}");
            if c.name.trim().is_empty() {
                return Err((at("name"), "must not be empty".into()));
            }
            if !names.insert(c.name.as_str()) {
                return Err((at("name"), format!("duplicate check name {:?}", c.name)));
            }
            c.compare.comparison().map_err(|(f, m)| {
                let field = if f.is_empty() {
                    at("compare")
                } else {
                    at(&format!("compare.{f}"))
                };
                (field, m)
            })?;
            // a hostile environment name must not change the query either
            let rendered = render_expr(&c.expr, service, "x\"} or vector(1) #")
                .map_err(|m| (at("expr"), m))?;
            day2_promql::format_query(&rendered).map_err(|e| (at("expr"), e.to_string()))?;
        }
        match (&self.mode, &self.rollback_runbook) {
            (Mode::Enforce, None) => Err((
                "rollback_runbook".into(),
                "mode enforce needs the runbook to run when the analysis fails".into(),
            )),
            (_, Some(r)) if r.trim().is_empty() => {
                Err(("rollback_runbook".into(), "must not be empty".into()))
            }
            _ => Ok(()),
        }
    }
}

impl DeploymentsSection {
    /// Checks what the types cannot; returns the field path (relative to
    /// `deployments`) and the message.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.alert_service_labels.is_empty() {
            return Err((
                "alert_service_labels".into(),
                "at least one label name is required".into(),
            ));
        }
        for (i, l) in self.alert_service_labels.iter().enumerate() {
            if !day2_model::labels::is_valid_label_name(l) {
                return Err((
                    format!("alert_service_labels[{i}]"),
                    format!("{l:?} is not a valid label name"),
                ));
            }
        }
        if !day2_model::labels::is_valid_label_name(&self.alert_environment_label) {
            return Err((
                "alert_environment_label".into(),
                format!(
                    "{:?} is not a valid label name",
                    self.alert_environment_label
                ),
            ));
        }
        check_name("environment", &self.default_environment)
            .map_err(|m| ("default_environment".to_string(), m))?;
        if self.dora.window.is_zero() {
            return Err(("dora.window".into(), "must be greater than 0".into()));
        }
        for (name, svc) in &self.services {
            check_name("service", name).map_err(|m| (format!("services.{name}"), m))?;
            if let Some(a) = &svc.analysis {
                a.validate(name)
                    .map_err(|(f, m)| (format!("services.{name}.analysis.{f}"), m))?;
            }
        }
        Ok(())
    }

    /// The analysis configured for a deployment of `service` to `environment`.
    pub fn analysis_for(&self, service: &str, environment: &str) -> Option<&AnalysisConfig> {
        self.services
            .get(service)
            .and_then(|s| s.analysis.as_ref())
            .filter(|a| a.applies_to(environment))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<DeploymentsSection, String> {
        let s: DeploymentsSection =
            day2_yamlerr::from_str(yaml, "day2.yml").map_err(|e| e.to_string())?;
        s.validate().map_err(|(f, m)| format!("{f}: {m}"))?;
        Ok(s)
    }

    const GOOD: &str = r#"
services:
  api:
    analysis:
      mode: enforce
      window: 10m
      baseline: 30m
      checks:
        - name: errors
          expr: sum(rate(http_errors_total{service="{{ service }}", env='{{environment}}'}[1m]))
          compare: { max_increase: 20%, tolerance: 0.01 }
        - name: latency
          expr: histogram_quantile(0.99, sum by (le) (rate(lat_bucket{service="{{ service }}"}[1m])))
          compare: { max_value: 0.5 }
          no_data: fail
      rollback_runbook: rollback-api
"#;

    #[test]
    fn a_full_section_loads_and_renders_specs() {
        let s = parse(GOOD).unwrap();
        assert_eq!(s.alert_service_labels, vec!["service", "job"]);
        assert_eq!(s.dora.window, Duration::from_secs(30 * 86400));
        let a = s.analysis_for("api", "production").unwrap();
        let spec = a.spec("api", "production").unwrap();
        assert_eq!(spec.window_ms, 600_000);
        assert_eq!(spec.baseline_ms, 1_800_000);
        assert_eq!(spec.step_ms, 20_000);
        assert_eq!(
            spec.checks[0].expr,
            r#"sum(rate(http_errors_total{service="api", env='production'}[1m]))"#
        );
        assert_eq!(
            spec.checks[0].comparison,
            Comparison::MaxIncrease {
                ratio: 0.2,
                tolerance: 0.01
            }
        );
        assert_eq!(spec.checks[1].no_data, NoData::Fail);
        assert!(s.analysis_for("web", "production").is_none());
    }

    #[test]
    fn placeholder_values_are_escaped_inside_their_string() {
        let e = render_expr(
            r#"up{a="{{ service }}", b='{{ environment }}'}"#,
            r#"x"y\z"#,
            "it's",
        )
        .unwrap();
        assert_eq!(e, r#"up{a="x\"y\\z", b='it\'s'}"#);
        // the hostile value stays one label value
        let hostile =
            render_expr(r#"up{a="{{ service }}"}"#, r#"x"} or vector(1) #"#, "p").unwrap();
        let parsed = day2_promql::parse_query_json(&hostile).unwrap();
        assert_eq!(parsed["type"], "vectorSelector", "{hostile}");
        // an escaped quote before the placeholder does not end the string
        assert_eq!(
            render_expr(r#"up{a="q\"{{service}}"}"#, "s", "p").unwrap(),
            r#"up{a="q\"s"}"#
        );
    }

    #[test]
    fn placeholders_outside_strings_and_unknown_ones_are_refused() {
        let e = render_expr("{{ service }}_requests_total", "api", "p").unwrap_err();
        assert!(e.contains("inside a \"...\" string"), "{e}");
        let e = render_expr("up{a=`{{ service }}`}", "api", "p").unwrap_err();
        assert!(e.contains("inside"), "{e}");
        let e = render_expr(r#"up{a="{{ version }}"}"#, "api", "p").unwrap_err();
        assert!(e.contains("unknown placeholder {{ version }}"), "{e}");
        let e = render_expr(r#"up{a="{{ service"}"#, "api", "p").unwrap_err();
        assert!(e.contains("unclosed"), "{e}");
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (
                "services:\n  api:\n    analysis:\n      mode: enforce\n      window: 1m\n      checks: [{name: a, expr: up, compare: {max_value: 1}}]\n",
                "services.api.analysis.rollback_runbook: mode enforce",
            ),
            (
                "services:\n  api:\n    analysis:\n      window: 1m\n      checks: [{name: a, expr: up, compare: {max_value: 1, min_value: 0}}]\n",
                "services.api.analysis.checks[0].compare: exactly one",
            ),
            (
                "services:\n  api:\n    analysis:\n      window: 1m\n      checks: [{name: a, expr: up, compare: {max_increase: '20'}}]\n",
                "services.api.analysis.checks[0].compare.max_increase: \"20\": write a percentage",
            ),
            (
                "services:\n  api:\n    analysis:\n      window: 1m\n      checks: [{name: a, expr: up, compare: {max_value: 1, tolerance: 1}}]\n",
                "services.api.analysis.checks[0].compare.tolerance: only applies",
            ),
            (
                "services:\n  api:\n    analysis:\n      window: 1m\n      checks: [{name: a, expr: 'sum(up', compare: {max_value: 1}}]\n",
                "services.api.analysis.checks[0].expr:",
            ),
            (
                "services:\n  api:\n    analysis:\n      window: 1m\n      checks:\n        - {name: a, expr: up, compare: {max_value: 1}}\n        - {name: a, expr: up, compare: {max_value: 1}}\n",
                "services.api.analysis.checks[1].name: duplicate",
            ),
            (
                "services:\n  api:\n    analysis:\n      window: 10s\n      step: 20s\n      checks: [{name: a, expr: up, compare: {max_value: 1}}]\n",
                "services.api.analysis.step: must not be longer",
            ),
            (
                "services:\n  api:\n    analysis:\n      window: 1m\n      checks: []\n",
                "services.api.analysis.checks: at least one",
            ),
            (
                "services:\n  'a b':\n    analysis:\n      window: 1m\n      checks: [{name: a, expr: up, compare: {max_value: 1}}]\n",
                "services.a b: service",
            ),
            ("alert_service_labels: ['1x']\n", "alert_service_labels[0]"),
        ];
        for (yaml, want) in cases {
            let e = parse(yaml).unwrap_err();
            assert!(e.starts_with(want), "{yaml}\n=> {e}\nwant {want}");
        }
        let e = parse("services:\n  api:\n    analysis:\n      window: 1m\n      checks: []\n      bogus: 1\n").unwrap_err();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn environments_filter_the_analysis() {
        let s = parse("services:\n  api:\n    analysis:\n      window: 1m\n      environments: [production]\n      checks: [{name: a, expr: up, compare: {max_value: 1}}]\n").unwrap();
        assert!(s.analysis_for("api", "production").is_some());
        assert!(s.analysis_for("api", "staging").is_none());
    }
}
