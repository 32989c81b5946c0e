//! Communication templates per severity: who to notify and what to say when an incident is
//! opened, updated or resolved. Templates are minijinja; HTML messages are auto-escaped,
//! text and Markdown are not. Undefined variables are errors, so a typo fails when the
//! message is rendered rather than producing an empty field.
//!
//! ```yaml
//! severities:
//!   SEV1:
//!     notify: [exec-team, status-subscribers]
//!     messages:
//!       - on: opened
//!         channel: slack
//!         format: markdown
//!         body: ":rotating_light: {{ incident.severity }} {{ incident.title }}"
//!       - on: opened
//!         channel: email
//!         format: html
//!         subject: "[{{ incident.severity }}] {{ incident.title }}"
//!         body: "<p>{{ incident.title }}</p>"
//! ```
//!
//! Context of every template: `incident` (id, title, severity, status, service, created_at,
//! acknowledged_at, resolved_at, commander, communications_lead, components, alerts: list of
//! label maps, time_to_acknowledge, time_to_resolve), `event` (opened|updated|resolved),
//! `message` (the update text, or none) and `links` (the caller's map, e.g. `incident`,
//! `status_page`).

use std::collections::BTreeMap;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};

use crate::metrics::{human_duration, time_to_acknowledge, time_to_resolve};
use crate::model::{Incident, Severity};

/// When a message goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommsEvent {
    Opened,
    Updated,
    Resolved,
}

impl CommsEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            CommsEvent::Opened => "opened",
            CommsEvent::Updated => "updated",
            CommsEvent::Resolved => "resolved",
        }
    }
}

/// Output format of a message; `html` is auto-escaped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageFormat {
    #[default]
    Text,
    Markdown,
    Html,
}

impl MessageFormat {
    fn suffix(self) -> &'static str {
        match self {
            MessageFormat::Text => "txt",
            MessageFormat::Markdown => "md",
            MessageFormat::Html => "html",
        }
    }
}

/// One message template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageSpec {
    pub on: CommsEvent,
    /// Where it goes (a receiver or channel name the notifier layer knows).
    pub channel: String,
    #[serde(default)]
    pub format: MessageFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub body: String,
}

/// What to do for one severity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityComms {
    /// Who to notify (receivers, users or teams, resolved by the notifier layer).
    #[serde(default)]
    pub notify: Vec<String>,
    #[serde(default)]
    pub messages: Vec<MessageSpec>,
}

/// The `comms` config section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommsConfig {
    #[serde(default)]
    pub severities: BTreeMap<Severity, SeverityComms>,
}

/// A template that failed to load or render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommsError {
    #[error("template {name}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Load {
        name: String,
        line: Option<usize>,
        message: String,
    },
    #[error("template {name}{}: rendering failed: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Render {
        name: String,
        line: Option<usize>,
        message: String,
    },
}

impl CommsError {
    pub fn template_name(&self) -> &str {
        match self {
            CommsError::Load { name, .. } | CommsError::Render { name, .. } => name,
        }
    }
    pub fn line(&self) -> Option<usize> {
        match self {
            CommsError::Load { line, .. } | CommsError::Render { line, .. } => *line,
        }
    }
}

/// A rendered message, ready for a notifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedMessage {
    pub channel: String,
    pub format: MessageFormat,
    pub notify: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub body: String,
}

/// Compiled templates.
#[derive(Debug)]
pub struct Comms {
    config: CommsConfig,
    env: Environment<'static>,
}

/// `SEV1.opened.2.body.html`: severity, event, index in the severity's list, part, format.
/// The name is what load and render errors show.
fn template_name(sev: Severity, i: usize, m: &MessageSpec, part: &str) -> String {
    format!(
        "{sev}.{}.{i}.{part}.{}",
        m.on.as_str(),
        if part == "subject" {
            // A subject line is never HTML, whatever the body is.
            "txt"
        } else {
            m.format.suffix()
        }
    )
}

fn new_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env
}

impl Comms {
    /// Compiles every template; the first syntax error is returned with its template name
    /// and line.
    pub fn load(config: CommsConfig) -> Result<Comms, CommsError> {
        let mut env = new_env();
        for (sev, sc) in &config.severities {
            for (i, m) in sc.messages.iter().enumerate() {
                let mut parts = vec![("body", m.body.clone())];
                if let Some(s) = &m.subject {
                    parts.push(("subject", s.clone()));
                }
                for (part, src) in parts {
                    let name = template_name(*sev, i, m, part);
                    env.add_template_owned(name.clone(), src)
                        .map_err(|e| CommsError::Load {
                            line: e.line(),
                            message: detail(&e),
                            name,
                        })?;
                }
            }
        }
        Ok(Comms { config, env })
    }

    pub fn config(&self) -> &CommsConfig {
        &self.config
    }

    /// Who to notify for incidents of this severity.
    pub fn notify(&self, severity: Severity) -> &[String] {
        self.config
            .severities
            .get(&severity)
            .map_or(&[], |s| s.notify.as_slice())
    }

    /// Renders the messages of the incident's severity for `event`.
    pub fn render(
        &self,
        inc: &Incident,
        event: CommsEvent,
        message: Option<&str>,
        links: &BTreeMap<String, String>,
    ) -> Result<Vec<RenderedMessage>, CommsError> {
        let Some(sc) = self.config.severities.get(&inc.severity) else {
            return Ok(Vec::new());
        };
        let ctx = minijinja::context! {
            incident => minijinja::Value::from(minijinja::value::Serde(IncidentView::new(inc))),
            event => event.as_str(),
            message => message,
            links => links,
        };
        let mut out = Vec::new();
        for (i, m) in sc.messages.iter().enumerate() {
            if m.on != event {
                continue;
            }
            let render = |part: &str| -> Result<String, CommsError> {
                let name = template_name(inc.severity, i, m, part);
                let tmpl = self
                    .env
                    .get_template(&name)
                    .map_err(|e| CommsError::Render {
                        name: name.clone(),
                        line: None,
                        message: detail(&e),
                    })?;
                tmpl.render(&ctx).map_err(|e| CommsError::Render {
                    line: e.line(),
                    message: detail(&e),
                    name,
                })
            };
            let subject = match &m.subject {
                Some(_) => Some(render("subject")?.trim().replace(['\r', '\n'], " ")),
                None => None,
            };
            out.push(RenderedMessage {
                channel: m.channel.clone(),
                format: m.format,
                notify: sc.notify.clone(),
                subject,
                body: render("body")?,
            });
        }
        Ok(out)
    }
}

fn detail(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    }
}

/// What templates see of an incident.
#[derive(Debug, Serialize)]
struct IncidentView<'a> {
    id: &'a str,
    title: &'a str,
    severity: &'static str,
    status: &'static str,
    service: Option<&'a str>,
    created_at: String,
    acknowledged_at: Option<String>,
    resolved_at: Option<String>,
    commander: Option<&'a str>,
    communications_lead: Option<&'a str>,
    components: &'a [String],
    alerts: Vec<&'a BTreeMap<String, String>>,
    time_to_acknowledge: Option<String>,
    time_to_resolve: Option<String>,
}

impl<'a> IncidentView<'a> {
    fn new(inc: &'a Incident) -> Self {
        IncidentView {
            id: &inc.id,
            title: &inc.title,
            severity: inc.severity.as_str(),
            status: inc.status.as_str(),
            service: inc.service.as_deref(),
            created_at: inc.created_at.to_string(),
            acknowledged_at: inc.acknowledged_at.map(|t| t.to_string()),
            resolved_at: inc.resolved_at.map(|t| t.to_string()),
            commander: inc.roles.commander.as_deref(),
            communications_lead: inc.roles.communications_lead.as_deref(),
            components: &inc.components,
            alerts: inc.alerts.iter().map(|a| &a.labels).collect(),
            time_to_acknowledge: time_to_acknowledge(inc).map(human_duration),
            time_to_resolve: time_to_resolve(inc).map(human_duration),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Actor;

    fn cfg(body: &str, format: MessageFormat) -> CommsConfig {
        CommsConfig {
            severities: [(
                Severity::Sev1,
                SeverityComms {
                    notify: vec!["exec-team".into()],
                    messages: vec![MessageSpec {
                        on: CommsEvent::Opened,
                        channel: "email".into(),
                        format,
                        subject: Some("[{{ incident.severity }}] {{ incident.title }}".into()),
                        body: body.into(),
                    }],
                },
            )]
            .into(),
        }
    }

    fn inc() -> Incident {
        let mut i = Incident::open(
            "inc-1",
            "<b>API</b> & \"errors\"",
            Severity::Sev1,
            "2026-01-01T10:00:00Z".parse().unwrap(),
            Actor::user("alice"),
        );
        i.service = Some("api".into());
        i
    }

    #[test]
    fn html_is_escaped_text_is_not() {
        let c = Comms::load(cfg(
            "<p>{{ incident.title }} on {{ incident.service }}</p>",
            MessageFormat::Html,
        ))
        .unwrap();
        let m = c
            .render(&inc(), CommsEvent::Opened, None, &BTreeMap::new())
            .unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[0].body,
            "<p>&lt;b&gt;API&lt;&#x2f;b&gt; &amp; &quot;errors&quot; on api</p>"
        );
        assert_eq!(
            m[0].subject.as_deref(),
            Some("[SEV1] <b>API</b> & \"errors\"")
        );
        assert_eq!(m[0].notify, vec!["exec-team".to_string()]);

        let c = Comms::load(cfg("{{ incident.title }}", MessageFormat::Markdown)).unwrap();
        let m = c
            .render(&inc(), CommsEvent::Opened, None, &BTreeMap::new())
            .unwrap();
        assert_eq!(m[0].body, "<b>API</b> & \"errors\"");
        // Other events and severities render nothing.
        assert!(
            c.render(&inc(), CommsEvent::Resolved, None, &BTreeMap::new())
                .unwrap()
                .is_empty()
        );
        assert!(c.notify(Severity::Sev4).is_empty());
    }

    #[test]
    fn load_error_names_template_and_line() {
        let err =
            Comms::load(cfg("line one\n{{ incident.title\n", MessageFormat::Html)).unwrap_err();
        assert_eq!(err.template_name(), "SEV1.opened.0.body.html");
        assert!(matches!(err, CommsError::Load { .. }));
        assert!(err.line().is_some_and(|l| l >= 2), "{err}");
        assert!(
            err.to_string()
                .starts_with("template SEV1.opened.0.body.html:"),
            "{err}"
        );
    }

    #[test]
    fn undefined_variable_is_a_render_error_with_line() {
        let c = Comms::load(cfg("ok\n{{ incident.titel }}", MessageFormat::Text)).unwrap();
        let err = c
            .render(&inc(), CommsEvent::Opened, None, &BTreeMap::new())
            .unwrap_err();
        assert!(
            matches!(err, CommsError::Render { line: Some(2), .. }),
            "{err}"
        );
    }

    #[test]
    fn message_and_links_reach_templates() {
        let c = Comms::load(cfg(
            "{{ message }} {{ links.status_page }}{% if incident.commander %} IC {{ incident.commander }}{% endif %}",
            MessageFormat::Text,
        ))
        .unwrap();
        let links = [("status_page".to_string(), "https://status".to_string())].into();
        let m = c
            .render(&inc(), CommsEvent::Opened, Some("rolling back"), &links)
            .unwrap();
        assert_eq!(m[0].body, "rolling back https://status");
    }

    #[test]
    fn config_from_json() {
        let c: CommsConfig = serde_json::from_str(
            r#"{"severities":{"SEV2":{"notify":["oncall"],"messages":[
                {"on":"resolved","channel":"slack","format":"markdown","body":"done"}]}}}"#,
        )
        .unwrap();
        assert_eq!(
            c.severities[&Severity::Sev2].messages[0].on,
            CommsEvent::Resolved
        );
    }
}
