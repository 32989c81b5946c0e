//! Prometheus rule files (`groups:` of recording and alerting rules), loaded
//! with the checks `promtool check rules` makes. Every error names
//! `file:line: field: message`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use day2_model::labels::{is_valid_label_name, is_valid_metric_name};
use day2_yamlerr::LocatedError;
use serde::{Deserialize, Deserializer};

use crate::template;

/// A rule file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default)]
    pub groups: Vec<GroupSpec>,
}

/// The same, tolerating fields we do not know (`--ignore-unknown-fields`).
#[derive(Debug, Clone, Deserialize)]
struct LaxRuleFile {
    #[serde(default)]
    groups: Vec<LaxGroupSpec>,
}

/// One rule group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub name: String,
    /// Evaluation interval; the global one when absent.
    #[serde(default, deserialize_with = "opt_duration")]
    pub interval: Option<Duration>,
    /// Most alerts or series a rule may produce (0: no limit).
    #[serde(default)]
    pub limit: usize,
    /// How far in the past rules evaluate (for late-arriving data).
    #[serde(default, deserialize_with = "opt_duration")]
    pub query_offset: Option<Duration>,
    /// Labels added to every rule of the group (rule labels win).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

#[derive(Debug, Clone, Deserialize)]
struct LaxGroupSpec {
    name: String,
    #[serde(default, deserialize_with = "opt_duration")]
    interval: Option<Duration>,
    #[serde(default)]
    limit: usize,
    #[serde(default, deserialize_with = "opt_duration")]
    query_offset: Option<Duration>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    rules: Vec<LaxRuleSpec>,
}

/// One rule: `record` or `alert`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub record: Option<String>,
    pub alert: Option<String>,
    #[serde(default)]
    pub expr: String,
    #[serde(rename = "for", default, deserialize_with = "opt_duration")]
    pub for_: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub keep_firing_for: Option<Duration>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// day2 extension: alert when series the expression returned stop coming
    /// (no data for this long). See [`crate::absence`].
    #[serde(default, deserialize_with = "opt_duration")]
    pub absent_for: Option<Duration>,
    /// How long a vanished series is remembered by `absent_for` (default 24h).
    #[serde(default, deserialize_with = "opt_duration")]
    pub absent_window: Option<Duration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct LaxRuleSpec {
    record: Option<String>,
    alert: Option<String>,
    #[serde(default)]
    expr: String,
    #[serde(rename = "for", default, deserialize_with = "opt_duration")]
    for_: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    keep_firing_for: Option<Duration>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "opt_duration")]
    absent_for: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    absent_window: Option<Duration>,
}

impl From<LaxRuleFile> for RuleFile {
    fn from(f: LaxRuleFile) -> Self {
        RuleFile {
            groups: f
                .groups
                .into_iter()
                .map(|g| GroupSpec {
                    name: g.name,
                    interval: g.interval,
                    limit: g.limit,
                    query_offset: g.query_offset,
                    labels: g.labels,
                    rules: g
                        .rules
                        .into_iter()
                        .map(|r| RuleSpec {
                            record: r.record,
                            alert: r.alert,
                            expr: r.expr,
                            for_: r.for_,
                            keep_firing_for: r.keep_firing_for,
                            labels: r.labels,
                            annotations: r.annotations,
                            absent_for: r.absent_for,
                            absent_window: r.absent_window,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    day2_model::parse_duration(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

impl RuleSpec {
    /// The rule's name (`record` or `alert`).
    pub fn name(&self) -> &str {
        self.record
            .as_deref()
            .or(self.alert.as_deref())
            .unwrap_or("")
    }
}

/// A loaded rule file with the warnings found while checking it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub file: RuleFile,
    /// Non-fatal findings (duplicate rules), as `promtool check rules` prints them.
    pub warnings: Vec<String>,
}

/// Parses and checks rule-file text. `file` is used in messages only.
pub fn parse(text: &str, file: &str, ignore_unknown_fields: bool) -> Result<Loaded, LocatedError> {
    let parsed: RuleFile = if ignore_unknown_fields {
        day2_yamlerr::from_str::<LaxRuleFile>(text, file)?.into()
    } else {
        day2_yamlerr::from_str(text, file)?
    };
    let warnings = validate(&parsed)
        .map_err(|(field, msg)| day2_yamlerr::at_field(text, file, &field, msg))?;
    Ok(Loaded {
        file: parsed,
        warnings,
    })
}

/// Reads and checks a rule file.
pub fn load(path: &Path, ignore_unknown_fields: bool) -> Result<Loaded, LocatedError> {
    let text = day2_yamlerr::read(path)?;
    parse(&text, &path.display().to_string(), ignore_unknown_fields)
}

/// What the types cannot check; returns (field path, message) of the first
/// error, or the warnings.
fn validate(f: &RuleFile) -> Result<Vec<String>, (String, String)> {
    let mut names = HashSet::new();
    let mut warnings = Vec::new();
    for (gi, g) in f.groups.iter().enumerate() {
        let gp = format!("groups[{gi}]");
        if g.name.is_empty() {
            return Err((format!("{gp}.name"), "group name must not be empty".into()));
        }
        if !names.insert(g.name.as_str()) {
            return Err((
                format!("{gp}.name"),
                format!("group name {:?} is repeated in the same file", g.name),
            ));
        }
        if g.interval.is_some_and(|i| i.is_zero()) {
            return Err((
                format!("{gp}.interval"),
                "interval must be greater than 0".into(),
            ));
        }
        for k in g.labels.keys() {
            if !is_valid_label_name(k) {
                return Err((
                    format!("{gp}.labels.{k}"),
                    format!("invalid label name {k:?}"),
                ));
            }
        }
        let mut seen = HashSet::new();
        for (ri, r) in g.rules.iter().enumerate() {
            let rp = format!("{gp}.rules[{ri}]");
            validate_rule(r, &rp)?;
            let key = (r.name().to_string(), r.expr.clone(), r.labels.clone());
            if !seen.insert(key) {
                warnings.push(format!(
                    "group {:?}: rule {:?} is duplicated (same name, expression and labels)",
                    g.name,
                    r.name()
                ));
            }
        }
    }
    Ok(warnings)
}

fn validate_rule(r: &RuleSpec, rp: &str) -> Result<(), (String, String)> {
    match (&r.record, &r.alert) {
        (Some(_), Some(_)) => {
            return Err((
                format!("{rp}.record"),
                "only one of 'record' and 'alert' must be set".into(),
            ));
        }
        (None, None) => {
            return Err((
                rp.to_string(),
                "one of 'record' or 'alert' must be set".into(),
            ));
        }
        _ => {}
    }
    if r.expr.trim().is_empty() {
        return Err((
            format!("{rp}.expr"),
            "field 'expr' must be set in rule".into(),
        ));
    }
    if let Err(e) = day2_promql::parse(&r.expr) {
        let message = match e {
            day2_promql::Error::BadInput { message, .. } => message
                .strip_prefix("invalid parameter \"query\": ")
                .map(str::to_string)
                .unwrap_or(message),
            other => other.to_string(),
        };
        return Err((
            format!("{rp}.expr"),
            format!("could not parse expression: {message}"),
        ));
    }
    if let Some(name) = &r.record {
        if !is_valid_metric_name(name) {
            return Err((
                format!("{rp}.record"),
                format!("invalid recording rule name: {name}"),
            ));
        }
        for (field, set) in [
            ("annotations", !r.annotations.is_empty()),
            ("for", r.for_.is_some()),
            ("keep_firing_for", r.keep_firing_for.is_some()),
            ("absent_for", r.absent_for.is_some()),
        ] {
            if set {
                return Err((
                    format!("{rp}.{field}"),
                    format!("invalid field '{field}' in recording rule"),
                ));
            }
        }
    }
    if let Some(name) = &r.alert {
        if name.is_empty() {
            return Err((format!("{rp}.alert"), "alert name must not be empty".into()));
        }
        if r.absent_window.is_some() && r.absent_for.is_none() {
            return Err((
                format!("{rp}.absent_window"),
                "absent_window needs absent_for".into(),
            ));
        }
        if let (Some(f), Some(w)) = (r.absent_for, r.absent_window)
            && w <= f
        {
            return Err((
                format!("{rp}.absent_window"),
                "absent_window must be longer than absent_for".into(),
            ));
        }
    }
    for (k, v) in &r.labels {
        if !is_valid_label_name(k) {
            return Err((
                format!("{rp}.labels.{k}"),
                format!("invalid label name: {k}"),
            ));
        }
        if r.record.is_some() && k == "__name__" {
            return Err((
                format!("{rp}.labels.{k}"),
                "recording rules cannot set __name__ in labels".into(),
            ));
        }
        if r.alert.is_some() {
            template::check(&format!("label {k}"), v)
                .map_err(|e| (format!("{rp}.labels.{k}"), e))?;
        }
    }
    for (k, v) in &r.annotations {
        if !is_valid_label_name(k) {
            return Err((
                format!("{rp}.annotations.{k}"),
                format!("invalid annotation name: {k}"),
            ));
        }
        template::check(&format!("annotation {k}"), v)
            .map_err(|e| (format!("{rp}.annotations.{k}"), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_file_loads() {
        let text = "groups:\n  - name: a\n    interval: 30s\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n      - alert: Down\n        expr: up == 0\n        for: 5m\n        labels: {severity: page}\n        annotations:\n          summary: '{{ $labels.instance }} down'\n";
        let l = parse(text, "r.yml", false).unwrap();
        assert_eq!(l.file.groups[0].rules.len(), 2);
        assert_eq!(l.file.groups[0].interval, Some(Duration::from_secs(30)));
        assert_eq!(
            l.file.groups[0].rules[1].for_,
            Some(Duration::from_secs(300))
        );
    }

    #[test]
    fn bad_expression_is_located() {
        let text = "groups:\n  - name: a\n    rules:\n      - record: x\n        expr: 'up +'\n";
        let e = parse(text, "r.yml", false).unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert_eq!(e.field, "groups[0].rules[0].expr");
        assert!(e.message.contains("could not parse expression"), "{e}");
    }

    #[test]
    fn unknown_fields_are_refused_unless_ignored() {
        let text = "groups:\n  - name: a\n    owner: me\n    rules:\n      - record: x\n        expr: up\n";
        let e = parse(text, "r.yml", false).unwrap_err();
        assert!(e.to_string().contains("owner"), "{e}");
        assert!(parse(text, "r.yml", true).is_ok());
    }

    #[test]
    fn recording_rule_checks() {
        let bad_name =
            "groups:\n  - name: a\n    rules:\n      - record: 'bad name'\n        expr: up\n";
        assert!(
            parse(bad_name, "r", false)
                .unwrap_err()
                .message
                .contains("invalid recording rule name")
        );
        let with_for = "groups:\n  - name: a\n    rules:\n      - record: x\n        expr: up\n        for: 1m\n";
        let e = parse(with_for, "r", false).unwrap_err();
        assert_eq!(e.field, "groups[0].rules[0].for");
        let both = "groups:\n  - name: a\n    rules:\n      - record: x\n        alert: y\n        expr: up\n";
        assert!(parse(both, "r", false).is_err());
    }

    #[test]
    fn repeated_group_name_is_an_error_and_duplicate_rule_a_warning() {
        let text = "groups:\n  - name: a\n    rules: []\n  - name: a\n    rules: []\n";
        let e = parse(text, "r", false).unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        let dup = "groups:\n  - name: a\n    rules:\n      - record: x\n        expr: up\n      - record: x\n        expr: up\n";
        assert_eq!(parse(dup, "r", false).unwrap().warnings.len(), 1);
    }

    #[test]
    fn template_errors_fail_the_load() {
        let text = "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        annotations:\n          summary: '{{ $label.foo }}'\n";
        let e = parse(text, "r.yml", false).unwrap_err();
        assert_eq!(e.line, Some(7), "{e}");
        let text = "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        annotations:\n          summary: '{{ humanise $value }}'\n";
        let e = parse(text, "r.yml", false).unwrap_err();
        assert!(e.message.contains("humanise"), "{e}");
    }
}
