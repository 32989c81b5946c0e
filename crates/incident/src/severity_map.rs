//! Automatic incident creation from alerts: a route's severity map decides whether an alert
//! opens an incident and at which severity.
//!
//! Config shape (YAML or JSON), first matching rule wins:
//!
//! ```yaml
//! severity_map:
//!   rules:
//!     - matchers: ['severity="critical"']
//!       severity: SEV1
//!     - matchers: ['severity="warning"', 'team=~"payments|checkout"']
//!       severity: SEV3
//!   default: null        # alerts matching no rule open no incident
//! ```

use std::collections::BTreeMap;
use std::fmt;

use day2_model::{MatchOp, Matcher};
use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{Actor, Incident, LinkedAlert, Severity};

/// A label matcher written as in PromQL/Alertmanager: `name="value"`, `name!="v"`,
/// `name=~"re"`, `name!~"re"` (regexes fully anchored).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelMatcher(pub Matcher);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid matcher {input:?}: {message}")]
pub struct MatcherParseError {
    pub input: String,
    pub message: String,
}

impl LabelMatcher {
    pub fn parse(s: &str) -> Result<Self, MatcherParseError> {
        let err = |m: &str| MatcherParseError {
            input: s.to_string(),
            message: m.to_string(),
        };
        let t = s.trim();
        let name_end = t
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or_else(|| err("missing operator"))?;
        let name = &t[..name_end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(err("invalid label name"));
        }
        let rest = t[name_end..].trim_start();
        let (op, rest) = if let Some(r) = rest.strip_prefix("=~") {
            (MatchOp::Regex, r)
        } else if let Some(r) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, r)
        } else if let Some(r) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, r)
        } else if let Some(r) = rest.strip_prefix('=') {
            (MatchOp::Equal, r)
        } else {
            return Err(err("missing operator (=, !=, =~, !~)"));
        };
        let rest = rest.trim();
        let value = if let Some(inner) = rest.strip_prefix('"') {
            let inner = inner
                .strip_suffix('"')
                .ok_or_else(|| err("unterminated quoted value"))?;
            unescape(inner).ok_or_else(|| err("invalid escape in value"))?
        } else {
            rest.to_string()
        };
        Matcher::new(op, name, value)
            .map(LabelMatcher)
            .map_err(|e| err(&e.to_string()))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0
            .matches(labels.get(&self.0.name).map_or("", String::as_str))
    }
}

fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                c @ ('\\' | '"') => out.push(c),
                _ => return None,
            }
        } else if c == '"' {
            return None;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

impl fmt::Display for LabelMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self
            .0
            .value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        write!(f, "{}{}\"{}\"", self.0.name, self.0.op.as_str(), v)
    }
}

impl Serialize for LabelMatcher {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LabelMatcher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        LabelMatcher::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One rule: all matchers must match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityRule {
    pub matchers: Vec<LabelMatcher>,
    pub severity: Severity,
}

/// Label matchers -> severity. First matching rule wins; `default` applies when none matches
/// (no default: the alert opens no incident).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityMap {
    #[serde(default)]
    pub rules: Vec<SeverityRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Severity>,
}

impl SeverityMap {
    /// The usual mapping of the Prometheus `severity` label.
    pub fn conventional() -> Self {
        let rule = |v: &str, s| SeverityRule {
            matchers: vec![LabelMatcher(Matcher::eq("severity", v))],
            severity: s,
        };
        SeverityMap {
            rules: vec![
                rule("critical", Severity::Sev1),
                rule("page", Severity::Sev1),
                rule("error", Severity::Sev2),
                rule("warning", Severity::Sev3),
                rule("info", Severity::Sev4),
            ],
            default: None,
        }
    }

    pub fn severity_for(&self, labels: &BTreeMap<String, String>) -> Option<Severity> {
        self.rules
            .iter()
            .find(|r| r.matchers.iter().all(|m| m.matches(labels)))
            .map(|r| r.severity)
            .or(self.default)
    }
}

/// What an alert brings to an automatically opened incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertInput {
    pub fingerprint: String,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Incident {
    /// Opens an incident for an alert if the severity map gives it a severity, else `None`.
    /// Title: the `summary` annotation, else the `alertname` label. Service: the `service`
    /// label, else `job`. The alert is linked and recorded as firing at `at`.
    pub fn open_from_alert(
        map: &SeverityMap,
        id: impl Into<String>,
        alert: &AlertInput,
        at: Timestamp,
    ) -> Option<Incident> {
        let severity = map.severity_for(&alert.labels)?;
        let alertname = alert.labels.get("alertname").map(String::as_str);
        let title = alert
            .annotations
            .get("summary")
            .map(String::as_str)
            .filter(|s| !s.trim().is_empty())
            .or(alertname)
            .unwrap_or("Alert")
            .to_string();
        let actor = Actor::system("alerthub");
        let mut inc = Incident::open(id, title, severity, at, actor.clone());
        inc.service = alert
            .labels
            .get("service")
            .or_else(|| alert.labels.get("job"))
            .cloned();
        inc.link_alert(
            LinkedAlert {
                fingerprint: alert.fingerprint.clone(),
                labels: alert.labels.clone(),
            },
            at,
            actor,
        )
        .expect("a new incident is open and has no alerts");
        Some(inc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EntryKind, Status};

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parse_matchers() {
        let m = LabelMatcher::parse(r#"severity="critical""#).unwrap();
        assert_eq!(m.0.op, MatchOp::Equal);
        assert_eq!(m.to_string(), r#"severity="critical""#);
        let m = LabelMatcher::parse(r#" team =~ "pay.*" "#).unwrap();
        assert!(m.matches(&labels(&[("team", "payments")])));
        assert!(!m.matches(&labels(&[("team", "xpayments")])));
        let m = LabelMatcher::parse(r#"env!="dev""#).unwrap();
        assert!(m.matches(&labels(&[])));
        let m = LabelMatcher::parse(r#"a="q\"x""#).unwrap();
        assert_eq!(m.0.value, "q\"x");
        assert_eq!(m.to_string(), r#"a="q\"x""#);
        assert!(LabelMatcher::parse("severity").is_err());
        assert!(LabelMatcher::parse(r#"x=~"(""#).is_err());
        assert!(LabelMatcher::parse(r#"x="open"#).is_err());
    }

    #[test]
    fn severity_map_from_json_first_match_wins() {
        let map: SeverityMap = serde_json::from_str(
            r#"{"rules":[
                {"matchers":["severity=\"critical\"","env=\"prod\""],"severity":"SEV1"},
                {"matchers":["severity=~\"critical|error\""],"severity":"SEV2"}
            ],"default":"SEV4"}"#,
        )
        .unwrap();
        let s = |p: &[(&str, &str)]| map.severity_for(&labels(p));
        assert_eq!(
            s(&[("severity", "critical"), ("env", "prod")]),
            Some(Severity::Sev1)
        );
        assert_eq!(
            s(&[("severity", "critical"), ("env", "dev")]),
            Some(Severity::Sev2)
        );
        assert_eq!(s(&[("severity", "info")]), Some(Severity::Sev4));
        let back: SeverityMap =
            serde_json::from_str(&serde_json::to_string(&map).unwrap()).unwrap();
        assert_eq!(back, map);
    }

    #[test]
    fn open_from_alert_uses_map_labels_and_annotations() {
        let map = SeverityMap::conventional();
        let alert = AlertInput {
            fingerprint: "f00".into(),
            labels: labels(&[
                ("alertname", "HighErrorRate"),
                ("severity", "critical"),
                ("job", "api"),
            ]),
            annotations: labels(&[("summary", "5xx above 5%")]),
        };
        let at: Timestamp = "2026-01-01T10:00:00Z".parse().unwrap();
        let inc = Incident::open_from_alert(&map, "inc-7", &alert, at).unwrap();
        assert_eq!(inc.severity, Severity::Sev1);
        assert_eq!(inc.title, "5xx above 5%");
        assert_eq!(inc.service.as_deref(), Some("api"));
        assert_eq!(inc.status, Status::Investigating);
        assert_eq!(inc.alerts.len(), 1);
        let kinds: Vec<_> = inc.timeline.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EntryKind::StatusChange, EntryKind::AlertFiring]);

        let quiet = AlertInput {
            labels: labels(&[("alertname", "Noise"), ("severity", "none")]),
            ..alert
        };
        assert!(Incident::open_from_alert(&map, "inc-8", &quiet, at).is_none());
    }
}
