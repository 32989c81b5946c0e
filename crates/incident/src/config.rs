//! The `incidents:` section of `day2.yml` and its validation.
//!
//! ```yaml
//! incidents:
//!   receivers:                       # alertmanager.yml receivers whose alerts open incidents
//!     db-pager:
//!       severity_map:                # first matching rule wins; default: Prometheus's
//!         rules:                     # `severity` label (critical/page SEV1, error SEV2,
//!           - matchers: ['severity="critical"']   # warning SEV3, info SEV4)
//!             severity: SEV1
//!         default: SEV3              # alerts matching no rule: SEV3 (none: no incident)
//!       components: [api]            # status-page components the incident affects
//!       resolve_with_alerts: true    # resolve the incident when all its alerts resolved
//!   comms:                           # communication templates per severity (minijinja)
//!     severities:
//!       SEV1:
//!         notify: [alice]            # on-call user ids
//!         messages:
//!           - on: opened
//!             channel: status_page   # a public update on the status page
//!             body: "We are investigating problems with {{ incident.components | join(', ') }}."
//!           - on: opened
//!             channel: email         # email, slack, teams, webhook or any: users' contact methods
//!             subject: "[{{ incident.severity }}] {{ incident.title }}"
//!             body: "{{ links.incident }}"
//!   status_page:
//!     page: { id: day2, name: Example status }
//!     components:
//!       - { id: api, name: Public API }
//!     history_days: 90
//! ```

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::Deserialize;

use crate::comms::{Comms, CommsConfig, CommsError};
use crate::severity_map::SeverityMap;
use crate::statuspage::StatusPageConfig;

/// The `incidents:` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentsConfig {
    /// Receivers of `alertmanager.yml` whose notifications open incidents.
    #[serde(default)]
    pub receivers: BTreeMap<String, IncidentReceiver>,
    #[serde(default)]
    pub comms: CommsConfig,
    #[serde(default)]
    pub status_page: Option<StatusPageConfig>,
}

/// What a receiver taken over by incidents does.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentReceiver {
    #[serde(default = "SeverityMap::conventional")]
    pub severity_map: SeverityMap,
    /// Status-page component ids the incidents affect.
    #[serde(default)]
    pub components: Vec<String>,
    /// Resolve an incident (as day2) once every alert linked to it resolved.
    #[serde(default)]
    pub resolve_with_alerts: bool,
}

/// The validated section.
#[derive(Debug, Clone, Default)]
pub struct Incidents {
    pub receivers: BTreeMap<String, IncidentReceiver>,
    pub comms: Arc<Comms>,
    pub status_page: Option<StatusPageConfig>,
}

impl Default for Comms {
    fn default() -> Self {
        Comms::load(CommsConfig::default()).expect("no templates compile")
    }
}

/// The channel whose messages become public updates on the status page.
pub const STATUS_PAGE_CHANNEL: &str = "status_page";

type Invalid = (String, String);

/// The field path of a template error (`comms.severities.SEV1.messages[0].body`).
fn template_path(e: &CommsError) -> String {
    // names are SEV.event.index.part.format
    let parts: Vec<&str> = e.template_name().split('.').collect();
    match parts.as_slice() {
        [sev, _, i, part, _] => format!("comms.severities.{sev}.messages[{i}].{part}"),
        _ => "comms".into(),
    }
}

impl IncidentsConfig {
    /// Validates the section; errors are a field path relative to the section
    /// and a message.
    pub fn compile(&self) -> Result<Incidents, Invalid> {
        let comms =
            Comms::load(self.comms.clone()).map_err(|e| (template_path(&e), e.to_string()))?;
        let mut components = HashSet::new();
        if let Some(sp) = &self.status_page {
            if sp.page.id.trim().is_empty() {
                return Err(("status_page.page.id".into(), "must not be empty".into()));
            }
            for (i, c) in sp.components.iter().enumerate() {
                if c.id.trim().is_empty() {
                    return Err((
                        format!("status_page.components[{i}].id"),
                        "must not be empty".into(),
                    ));
                }
                if !components.insert(c.id.as_str()) {
                    return Err((
                        format!("status_page.components[{i}].id"),
                        format!("duplicate component {:?}", c.id),
                    ));
                }
            }
        }
        for (name, r) in &self.receivers {
            for (i, c) in r.components.iter().enumerate() {
                if !components.contains(c.as_str()) {
                    return Err((
                        format!("receivers.{name}.components[{i}]"),
                        format!("unknown status-page component {c:?} (status_page.components)"),
                    ));
                }
            }
        }
        Ok(Incidents {
            receivers: self.receivers.clone(),
            comms: Arc::new(comms),
            status_page: self.status_page.clone(),
        })
    }
}

impl Incidents {
    /// Whether a status-page component exists.
    pub fn has_component(&self, id: &str) -> bool {
        self.status_page
            .as_ref()
            .is_some_and(|s| s.components.iter().any(|c| c.id == id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Severity;

    #[derive(Deserialize)]
    struct Doc {
        incidents: IncidentsConfig,
    }

    fn compile(yaml: &str) -> Result<Incidents, Invalid> {
        let d: Doc = serde_yaml_ng::from_str(yaml).unwrap();
        d.incidents.compile()
    }

    /// The example in this module's documentation is valid.
    #[test]
    fn the_documented_example_loads() {
        let src = include_str!("config.rs");
        let start = src.find("//! ```yaml\n").unwrap() + "//! ```yaml\n".len();
        let end = start + src[start..].find("//! ```\n").unwrap();
        let yaml: String = src[start..end]
            .lines()
            .map(|l| {
                l.strip_prefix("//! ")
                    .unwrap_or(l.trim_start_matches("//!"))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let inc = compile(&yaml).unwrap_or_else(|e| panic!("{e:?}\n{yaml}"));
        let r = &inc.receivers["db-pager"];
        assert!(r.resolve_with_alerts);
        assert_eq!(r.severity_map.default, Some(Severity::Sev3));
        assert!(inc.has_component("api"));
        assert_eq!(inc.comms.notify(Severity::Sev1), ["alice".to_string()]);
    }

    #[test]
    fn receivers_default_to_the_conventional_severity_map() {
        let inc = compile("incidents:\n  receivers:\n    pager: {}\n").unwrap();
        assert_eq!(
            inc.receivers["pager"].severity_map,
            SeverityMap::conventional()
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e = compile(
            "incidents:\n  receivers:\n    pager: { components: [db] }\n  status_page:\n    page: { id: p, name: P }\n    components: [{ id: api, name: API }]\n",
        )
        .unwrap_err();
        assert_eq!(e.0, "receivers.pager.components[0]");
        let e = compile(
            "incidents:\n  status_page:\n    page: { id: p, name: P }\n    components: [{ id: api, name: A }, { id: api, name: B }]\n",
        )
        .unwrap_err();
        assert_eq!(e.0, "status_page.components[1].id");
        let e = compile(
            "incidents:\n  comms:\n    severities:\n      SEV2:\n        messages:\n          - { on: opened, channel: email, body: \"{{ incident.title\" }\n",
        )
        .unwrap_err();
        assert_eq!(e.0, "comms.severities.SEV2.messages[0].body");
        assert!(e.1.contains("SEV2.opened.0.body.txt"), "{}", e.1);
    }
}
