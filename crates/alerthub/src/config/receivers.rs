//! Receivers and their integrations. Webhook, Slack, MS Teams (v1 and v2),
//! email and PagerDuty are typed fully; the others are typed with their
//! documented fields (unknown fields refused) so that the rules about secrets
//! and mutually exclusive fields can be checked. Mattermost, Jira and
//! incident.io keep fields beyond the required ones as raw YAML (`extra`),
//! since their field sets still change between Alertmanager releases.
//!
//! `resolve` applies Alertmanager's global defaults in place (as Alertmanager
//! does when it loads a file) and returns `(field path, message)` on error.

use super::common::*;
use super::global::GlobalConfig;
use serde::Deserialize;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::time::Duration;

type VResult = Result<(), (String, String)>;

fn err<T>(path: &str, field: &str, msg: impl Into<String>) -> Result<T, (String, String)> {
    let p = if field.is_empty() {
        path.to_string()
    } else {
        format!("{path}.{field}")
    };
    Err((p, msg.into()))
}

fn http_default(h: &mut Option<HttpConfig>, global: &GlobalConfig, path: &str) -> VResult {
    if let Some(own) = h {
        own.validate().map_err(|(f, m)| {
            let p = if f.is_empty() {
                format!("{path}.http_config")
            } else {
                format!("{path}.http_config.{f}")
            };
            (p, m)
        })?;
    } else {
        *h = Some(global.http_config.clone().unwrap_or_default());
    }
    Ok(())
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub webhook_configs: Vec<WebhookConfig>,
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub email_configs: Vec<EmailConfig>,
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub pagerduty_configs: Vec<PagerdutyConfig>,
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub slack_configs: Vec<SlackConfig>,
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub msteams_configs: Vec<MsTeamsConfig>,
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub msteamsv2_configs: Vec<MsTeamsV2Config>,
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub opsgenie_configs: Vec<OpsgenieConfig>,
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub victorops_configs: Vec<VictorOpsConfig>,
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub wechat_configs: Vec<WechatConfig>,
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub telegram_configs: Vec<TelegramConfig>,
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub sns_configs: Vec<SnsConfig>,
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub pushover_configs: Vec<PushoverConfig>,
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub discord_configs: Vec<DiscordConfig>,
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub webex_configs: Vec<WebexConfig>,
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub rocketchat_configs: Vec<RocketchatConfig>,
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub mattermost_configs: Vec<MattermostConfig>,
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub jira_configs: Vec<JiraConfig>,
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub incidentio_configs: Vec<IncidentioConfig>,
}

impl ReceiverConfig {
    /// Number of integrations (a receiver with none is valid: it drops alerts).
    pub fn integration_count(&self) -> usize {
        self.webhook_configs.len()
            + self.email_configs.len()
            + self.pagerduty_configs.len()
            + self.slack_configs.len()
            + self.msteams_configs.len()
            + self.msteamsv2_configs.len()
            + self.opsgenie_configs.len()
            + self.victorops_configs.len()
            + self.wechat_configs.len()
            + self.telegram_configs.len()
            + self.sns_configs.len()
            + self.pushover_configs.len()
            + self.discord_configs.len()
            + self.webex_configs.len()
            + self.rocketchat_configs.len()
            + self.mattermost_configs.len()
            + self.jira_configs.len()
            + self.incidentio_configs.len()
    }

    /// Validates every integration and fills in global defaults.
    pub fn resolve(&mut self, g: &GlobalConfig, path: &str) -> VResult {
        macro_rules! each {
            ($field:ident) => {
                for (i, c) in self.$field.iter_mut().enumerate() {
                    c.resolve(g, &format!("{path}.{}[{i}]", stringify!($field)))?;
                }
            };
        }
        each!(webhook_configs);
        each!(email_configs);
        each!(pagerduty_configs);
        each!(slack_configs);
        each!(msteams_configs);
        each!(msteamsv2_configs);
        each!(opsgenie_configs);
        each!(victorops_configs);
        each!(wechat_configs);
        each!(telegram_configs);
        each!(sns_configs);
        each!(pushover_configs);
        each!(discord_configs);
        each!(webex_configs);
        each!(rocketchat_configs);
        each!(mattermost_configs);
        each!(jira_configs);
        each!(incidentio_configs);
        Ok(())
    }
}

/// One configured integration of a receiver, borrowed from the config.
#[derive(Debug, Clone, Copy)]
pub enum IntegrationConfig<'a> {
    Webhook(&'a WebhookConfig),
    Email(&'a EmailConfig),
    Pagerduty(&'a PagerdutyConfig),
    Slack(&'a SlackConfig),
    MsTeams(&'a MsTeamsConfig),
    MsTeamsV2(&'a MsTeamsV2Config),
    Opsgenie(&'a OpsgenieConfig),
    VictorOps(&'a VictorOpsConfig),
    Wechat(&'a WechatConfig),
    Telegram(&'a TelegramConfig),
    Sns(&'a SnsConfig),
    Pushover(&'a PushoverConfig),
    Discord(&'a DiscordConfig),
    Webex(&'a WebexConfig),
    Rocketchat(&'a RocketchatConfig),
    Mattermost(&'a MattermostConfig),
    Jira(&'a JiraConfig),
    Incidentio(&'a IncidentioConfig),
}

impl IntegrationConfig<'_> {
    /// Alertmanager's integration name (`webhook`, `slack`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            IntegrationConfig::Webhook(_) => "webhook",
            IntegrationConfig::Email(_) => "email",
            IntegrationConfig::Pagerduty(_) => "pagerduty",
            IntegrationConfig::Slack(_) => "slack",
            IntegrationConfig::MsTeams(_) => "msteams",
            IntegrationConfig::MsTeamsV2(_) => "msteamsv2",
            IntegrationConfig::Opsgenie(_) => "opsgenie",
            IntegrationConfig::VictorOps(_) => "victorops",
            IntegrationConfig::Wechat(_) => "wechat",
            IntegrationConfig::Telegram(_) => "telegram",
            IntegrationConfig::Sns(_) => "sns",
            IntegrationConfig::Pushover(_) => "pushover",
            IntegrationConfig::Discord(_) => "discord",
            IntegrationConfig::Webex(_) => "webex",
            IntegrationConfig::Rocketchat(_) => "rocketchat",
            IntegrationConfig::Mattermost(_) => "mattermost",
            IntegrationConfig::Jira(_) => "jira",
            IntegrationConfig::Incidentio(_) => "incidentio",
        }
    }

    pub fn send_resolved(&self) -> bool {
        match self {
            IntegrationConfig::Webhook(c) => c.send_resolved(),
            IntegrationConfig::Email(c) => c.send_resolved(),
            IntegrationConfig::Pagerduty(c) => c.send_resolved(),
            IntegrationConfig::Slack(c) => c.send_resolved(),
            IntegrationConfig::MsTeams(c) => c.send_resolved(),
            IntegrationConfig::MsTeamsV2(c) => c.send_resolved(),
            IntegrationConfig::Opsgenie(c) => c.send_resolved(),
            IntegrationConfig::VictorOps(c) => c.send_resolved(),
            IntegrationConfig::Wechat(c) => c.send_resolved(),
            IntegrationConfig::Telegram(c) => c.send_resolved(),
            IntegrationConfig::Sns(c) => c.send_resolved(),
            IntegrationConfig::Pushover(c) => c.send_resolved(),
            IntegrationConfig::Discord(c) => c.send_resolved(),
            IntegrationConfig::Webex(c) => c.send_resolved(),
            IntegrationConfig::Rocketchat(c) => c.send_resolved(),
            IntegrationConfig::Mattermost(c) => c.send_resolved(),
            IntegrationConfig::Jira(c) => c.send_resolved(),
            IntegrationConfig::Incidentio(c) => c.send_resolved(),
        }
    }
}

/// An integration and its position in its list: `(receiver, name, index)`
/// identifies it, as in Alertmanager's notification log.
#[derive(Debug, Clone, Copy)]
pub struct Integration<'a> {
    pub index: usize,
    pub config: IntegrationConfig<'a>,
}

impl Integration<'_> {
    /// `slack[1]`
    pub fn id(&self) -> String {
        format!("{}[{}]", self.config.name(), self.index)
    }
}

impl ReceiverConfig {
    /// Every integration, grouped by kind in Alertmanager's order.
    pub fn integrations(&self) -> Vec<Integration<'_>> {
        let mut out = Vec::with_capacity(self.integration_count());
        for (i, c) in self.webhook_configs.iter().enumerate() {
            out.push(Integration {
                index: i,
                config: IntegrationConfig::Webhook(c),
            });
        }
        for (i, c) in self.email_configs.iter().enumerate() {
            out.push(Integration {
                index: i,
                config: IntegrationConfig::Email(c),
            });
        }
        for (i, c) in self.pagerduty_configs.iter().enumerate() {
            out.push(Integration {
                index: i,
                config: IntegrationConfig::Pagerduty(c),
            });
        }
        for (i, c) in self.slack_configs.iter().enumerate() {
            out.push(Integration {
                index: i,
                config: IntegrationConfig::Slack(c),
            });
        }
        for (i, c) in self.msteams_configs.iter().enumerate() {
            out.push(Integration {
                index: i,
                config: IntegrationConfig::MsTeams(c),
            });
        }
        for (i, c) in self.msteamsv2_configs.iter().enumerate() {
            out.push(Integration {
                index: i,
                config: IntegrationConfig::MsTeamsV2(c),
            });
        }
        for (i, c) in self.opsgenie_configs.iter().enumerate() {
            out.push(Integration {
                index: i,
                config: IntegrationConfig::Opsgenie(c),
            });
        }
        for (i, c) in self.victorops_configs.iter().enumerate() {
            out.push(Integration {
                index: i,
                config: IntegrationConfig::VictorOps(c),
            });
        }
        for (i, c) in self.wechat_configs.iter().enumerate() {
            out.push(Integration {
                index: i,
                config: IntegrationConfig::Wechat(c),
            });
        }
        for (i, c) in self.telegram_configs.iter().enumerate() {
            out.push(Integration {
                index: i,
                config: IntegrationConfig::Telegram(c),
            });
        }
        for (i, c) in self.sns_configs.iter().enumerate() {
            out.push(Integration {
                index: i,
                config: IntegrationConfig::Sns(c),
            });
        }
        for (i, c) in self.pushover_configs.iter().enumerate() {
            out.push(Integration {
                index: i,
                config: IntegrationConfig::Pushover(c),
            });
        }
        for (i, c) in self.discord_configs.iter().enumerate() {
            out.push(Integration {
                index: i,
                config: IntegrationConfig::Discord(c),
            });
        }
        for (i, c) in self.webex_configs.iter().enumerate() {
            out.push(Integration {
                index: i,
                config: IntegrationConfig::Webex(c),
            });
        }
        for (i, c) in self.rocketchat_configs.iter().enumerate() {
            out.push(Integration {
                index: i,
                config: IntegrationConfig::Rocketchat(c),
            });
        }
        for (i, c) in self.mattermost_configs.iter().enumerate() {
            out.push(Integration {
                index: i,
                config: IntegrationConfig::Mattermost(c),
            });
        }
        for (i, c) in self.jira_configs.iter().enumerate() {
            out.push(Integration {
                index: i,
                config: IntegrationConfig::Jira(c),
            });
        }
        for (i, c) in self.incidentio_configs.iter().enumerate() {
            out.push(Integration {
                index: i,
                config: IntegrationConfig::Incidentio(c),
            });
        }
        out
    }
}

/// `{{ template "name" . }}`: how Alertmanager's defaults refer to its
/// default templates.
fn tmpl(name: &str) -> String {
    format!("{{{{ template \"{name}\" . }}}}")
}

fn or_tmpl(v: &Option<String>, name: &str) -> String {
    v.clone().unwrap_or_else(|| tmpl(name))
}

/// Picks `send_resolved` or the integration's default.
fn sr(v: Option<bool>, default: bool) -> bool {
    v.unwrap_or(default)
}

// ---------------------------------------------------------------- webhook

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    #[serde(default)]
    pub send_resolved: Option<bool>,
    #[serde(default)]
    pub url: Option<SecretUrl>,
    #[serde(default)]
    pub url_file: Option<String>,
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
    /// 0 means all alerts.
    #[serde(default)]
    pub max_alerts: u64,
    /// Zero means no timeout of its own.
    #[serde(default, deserialize_with = "opt_duration")]
    pub timeout: Option<Duration>,
}

impl WebhookConfig {
    pub fn send_resolved(&self) -> bool {
        sr(self.send_resolved, true)
    }
    fn resolve(&mut self, g: &GlobalConfig, path: &str) -> VResult {
        if self.url.is_none() && self.url_file.is_none() {
            return err(path, "url", "one of url or url_file must be configured");
        }
        exclusive(
            self.url.is_some(),
            self.url_file.is_some(),
            "url",
            "url_file",
        )
        .or_else(|m| err(path, "url_file", m))?;
        http_default(&mut self.http_config, g, path)
    }
}

// ---------------------------------------------------------------- email

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    #[serde(default)]
    pub send_resolved: Option<bool>,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub smarthost: Option<HostPort>,
    #[serde(default)]
    pub hello: Option<String>,
    #[serde(default)]
    pub auth_username: Option<String>,
    #[serde(default)]
    pub auth_password: Option<Secret>,
    #[serde(default)]
    pub auth_password_file: Option<String>,
    #[serde(default)]
    pub auth_secret: Option<Secret>,
    #[serde(default)]
    pub auth_secret_file: Option<String>,
    #[serde(default)]
    pub auth_identity: Option<String>,
    #[serde(default)]
    pub require_tls: Option<bool>,
    #[serde(default)]
    pub force_implicit_tls: Option<bool>,
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
    #[serde(default)]
    pub html: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub threading: Option<Value>,
}

impl EmailConfig {
    /// An email to `to` with every other setting from the global `smtp_*`
    /// defaults (for day2 features that send email outside a receiver);
    /// errors name the missing global setting.
    pub fn from_global(to: &str, g: &GlobalConfig) -> Result<EmailConfig, String> {
        let mut c: EmailConfig =
            serde_json::from_value(serde_json::json!({ "to": to })).map_err(|e| e.to_string())?;
        c.resolve(g, "global")
            .map_err(|(field, msg)| format!("{field}: {msg}"))?;
        Ok(c)
    }

    pub fn send_resolved(&self) -> bool {
        sr(self.send_resolved, false)
    }
    /// Headers to send: `Subject`, `To` and `From` defaults, overridden by
    /// the configured ones (matched case-insensitively).
    pub fn effective_headers(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        out.insert("Subject".to_string(), tmpl("email.default.subject"));
        out.insert("To".to_string(), self.to.clone());
        out.insert("From".to_string(), self.from.clone().unwrap_or_default());
        for (k, v) in &self.headers {
            out.retain(|existing: &String, _| !existing.eq_ignore_ascii_case(k));
            out.insert(k.clone(), v.clone());
        }
        out
    }
    /// The HTML body template (Alertmanager's default when unset).
    pub fn html(&self) -> String {
        self.html
            .clone()
            .unwrap_or_else(|| tmpl("email.default.html"))
    }
    fn resolve(&mut self, g: &GlobalConfig, path: &str) -> VResult {
        if self.to.is_empty() {
            return err(path, "to", "missing to address in email config");
        }
        let mut seen = std::collections::HashSet::new();
        for k in self.headers.keys() {
            if !seen.insert(k.to_ascii_lowercase()) {
                return err(
                    path,
                    "headers",
                    format!("duplicate header {k:?} in email config"),
                );
            }
        }
        exclusive(
            self.auth_password.is_some(),
            self.auth_password_file.is_some(),
            "auth_password",
            "auth_password_file",
        )
        .or_else(|m| err(path, "auth_password_file", m))?;
        exclusive(
            self.auth_secret.is_some(),
            self.auth_secret_file.is_some(),
            "auth_secret",
            "auth_secret_file",
        )
        .or_else(|m| err(path, "auth_secret_file", m))?;
        if self.smarthost.as_ref().is_none_or(HostPort::is_empty) {
            self.smarthost = g.smtp_smarthost.clone();
        }
        if self.smarthost.as_ref().is_none_or(HostPort::is_empty) {
            return err(path, "smarthost", "no global SMTP smarthost set");
        }
        if self.from.as_deref().is_none_or(str::is_empty) {
            self.from = g.smtp_from.clone();
        }
        if self.from.as_deref().is_none_or(str::is_empty) {
            return err(path, "from", "no global SMTP from set");
        }
        if self.hello.is_none() {
            self.hello = Some(g.smtp_hello.clone().unwrap_or_else(|| "localhost".into()));
        }
        if self.auth_username.is_none() {
            self.auth_username = g.smtp_auth_username.clone();
        }
        if self.auth_password.is_none() && self.auth_password_file.is_none() {
            self.auth_password = g.smtp_auth_password.clone();
            self.auth_password_file = g.smtp_auth_password_file.clone();
        }
        if self.auth_secret.is_none() && self.auth_secret_file.is_none() {
            self.auth_secret = g.smtp_auth_secret.clone();
            self.auth_secret_file = g.smtp_auth_secret_file.clone();
        }
        if self.auth_identity.is_none() {
            self.auth_identity = g.smtp_auth_identity.clone();
        }
        if self.require_tls.is_none() {
            self.require_tls = Some(g.smtp_require_tls.unwrap_or(true));
        }
        if self.force_implicit_tls.is_none() {
            self.force_implicit_tls = g.smtp_force_implicit_tls;
        }
        if self.tls_config.is_none() {
            self.tls_config = g.smtp_tls_config.clone();
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- pagerduty

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyImage {
    #[serde(default)]
    pub src: String,
    #[serde(default)]
    pub alt: String,
    #[serde(default)]
    pub href: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyLink {
    #[serde(default)]
    pub href: String,
    #[serde(default)]
    pub text: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyConfig {
    #[serde(default)]
    pub send_resolved: Option<bool>,
    #[serde(default)]
    pub routing_key: Option<Secret>,
    #[serde(default)]
    pub routing_key_file: Option<String>,
    #[serde(default)]
    pub service_key: Option<Secret>,
    #[serde(default)]
    pub service_key_file: Option<String>,
    #[serde(default)]
    pub url: Option<HttpUrl>,
    #[serde(default)]
    pub client: Option<String>,
    #[serde(default)]
    pub client_url: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    /// Values are templates (strings) or structured values.
    #[serde(default, deserialize_with = "nullable")]
    pub details: BTreeMap<String, Value>,
    #[serde(default, deserialize_with = "nullable")]
    pub images: Vec<PagerdutyImage>,
    #[serde(default, deserialize_with = "nullable")]
    pub links: Vec<PagerdutyLink>,
    #[serde(default)]
    pub component: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub class: Option<String>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
}

impl PagerdutyConfig {
    pub fn send_resolved(&self) -> bool {
        sr(self.send_resolved, true)
    }
    pub fn client(&self) -> String {
        self.client
            .clone()
            .unwrap_or_else(|| tmpl("pagerduty.default.client"))
    }
    pub fn client_url(&self) -> String {
        self.client_url
            .clone()
            .unwrap_or_else(|| tmpl("pagerduty.default.clientURL"))
    }
    pub fn description(&self) -> String {
        self.description
            .clone()
            .unwrap_or_else(|| tmpl("pagerduty.default.description"))
    }
    /// `details`, or Alertmanager's default set when none are configured.
    pub fn details(&self) -> BTreeMap<String, Value> {
        if !self.details.is_empty() {
            return self.details.clone();
        }
        [
            (
                "firing",
                "{{ template \"pagerduty.default.instances\" .Alerts.Firing }}",
            ),
            (
                "resolved",
                "{{ template \"pagerduty.default.instances\" .Alerts.Resolved }}",
            ),
            ("num_firing", "{{ .Alerts.Firing | len }}"),
            ("num_resolved", "{{ .Alerts.Resolved | len }}"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect()
    }
    /// Events API v2 (routing key) rather than the old Prometheus integration.
    pub fn uses_events_v2(&self) -> bool {
        self.routing_key.is_some() || self.routing_key_file.is_some()
    }
    pub fn severity(&self) -> &str {
        self.severity.as_deref().unwrap_or("error")
    }
    fn resolve(&mut self, g: &GlobalConfig, path: &str) -> VResult {
        let routing = self.routing_key.as_ref().is_some_and(|s| !s.is_empty())
            || self.routing_key_file.is_some();
        let service = self.service_key.as_ref().is_some_and(|s| !s.is_empty())
            || self.service_key_file.is_some();
        if !routing && !service {
            return err(
                path,
                "",
                "missing service or routing key in PagerDuty config",
            );
        }
        exclusive(routing, service, "routing_key", "service_key")
            .or_else(|m| err(path, "service_key", m))?;
        exclusive(
            self.routing_key.is_some(),
            self.routing_key_file.is_some(),
            "routing_key",
            "routing_key_file",
        )
        .or_else(|m| err(path, "routing_key_file", m))?;
        exclusive(
            self.service_key.is_some(),
            self.service_key_file.is_some(),
            "service_key",
            "service_key_file",
        )
        .or_else(|m| err(path, "service_key_file", m))?;
        if self.url.is_none() {
            self.url = Some(g.pagerduty_url());
        }
        http_default(&mut self.http_config, g, path)
    }
}

// ---------------------------------------------------------------- slack

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackConfirmField {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub ok_text: Option<String>,
    #[serde(default)]
    pub dismiss_text: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackAction {
    #[serde(default)]
    pub r#type: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub style: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub confirm: Option<SlackConfirmField>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackField {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub short: Option<bool>,
}

/// The URL that takes bot (app) tokens.
pub const SLACK_APP_URL: &str = "https://slack.com/api/chat.postMessage";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    #[serde(default)]
    pub send_resolved: Option<bool>,
    #[serde(default)]
    pub api_url: Option<SecretUrl>,
    #[serde(default)]
    pub api_url_file: Option<String>,
    #[serde(default)]
    pub app_token: Option<Secret>,
    #[serde(default)]
    pub app_token_file: Option<String>,
    #[serde(default)]
    pub app_url: Option<HttpUrl>,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub title_link: Option<String>,
    #[serde(default)]
    pub pretext: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub fields: Vec<SlackField>,
    #[serde(default)]
    pub short_fields: bool,
    #[serde(default)]
    pub footer: Option<String>,
    #[serde(default)]
    pub fallback: Option<String>,
    #[serde(default)]
    pub callback_id: Option<String>,
    #[serde(default)]
    pub icon_emoji: Option<String>,
    #[serde(default)]
    pub icon_url: Option<String>,
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub thumb_url: Option<String>,
    #[serde(default)]
    pub link_names: bool,
    #[serde(default)]
    pub mrkdwn_in: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub actions: Vec<SlackAction>,
    #[serde(default)]
    pub update_message: bool,
    #[serde(default, deserialize_with = "opt_duration")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
}

impl SlackConfig {
    pub fn send_resolved(&self) -> bool {
        sr(self.send_resolved, false)
    }
    pub fn username(&self) -> String {
        or_tmpl(&self.username, "slack.default.username")
    }
    pub fn color(&self) -> String {
        self.color.clone().unwrap_or_else(|| {
            "{{ if eq .Status \"firing\" }}danger{{ else }}good{{ end }}".to_string()
        })
    }
    pub fn title(&self) -> String {
        or_tmpl(&self.title, "slack.default.title")
    }
    pub fn title_link(&self) -> String {
        or_tmpl(&self.title_link, "slack.default.titlelink")
    }
    pub fn pretext(&self) -> String {
        or_tmpl(&self.pretext, "slack.default.pretext")
    }
    pub fn text(&self) -> String {
        or_tmpl(&self.text, "slack.default.text")
    }
    pub fn fallback(&self) -> String {
        or_tmpl(&self.fallback, "slack.default.fallback")
    }
    pub fn callback_id(&self) -> String {
        or_tmpl(&self.callback_id, "slack.default.callbackid")
    }
    pub fn footer(&self) -> String {
        or_tmpl(&self.footer, "slack.default.footer")
    }
    pub fn mrkdwn_in(&self) -> Vec<String> {
        self.mrkdwn_in
            .clone()
            .unwrap_or_else(|| vec!["fallback".into(), "pretext".into(), "text".into()])
    }
    fn has_token(&self) -> bool {
        self.app_token.is_some() || self.app_token_file.is_some()
    }
    fn resolve(&mut self, g: &GlobalConfig, path: &str) -> VResult {
        exclusive(
            self.api_url.is_some(),
            self.api_url_file.is_some(),
            "api_url",
            "api_url_file",
        )
        .or_else(|m| err(path, "api_url_file", m))?;
        exclusive(
            self.app_token.is_some(),
            self.app_token_file.is_some(),
            "app_token",
            "app_token_file",
        )
        .or_else(|m| err(path, "app_token_file", m))?;
        let app_url = self
            .app_url
            .clone()
            .or_else(|| g.slack_app_url.clone())
            .map(|u| u.0)
            .unwrap_or_else(|| SLACK_APP_URL.to_string());
        let own_url = self.api_url.is_some() || self.api_url_file.is_some();
        if self.has_token() && own_url && self.api_url.as_ref().is_none_or(|u| u.0 != app_url) {
            return err(
                path,
                "app_token",
                "at most one of app_token/app_token_file & api_url/api_url_file must be configured",
            );
        }
        let own_auth = self
            .http_config
            .as_ref()
            .is_some_and(|h| h.authorization.is_some());
        if !own_url && !self.has_token() {
            if g.has_slack_token() && !own_auth {
                self.app_token = g.slack_app_token.clone();
                self.app_token_file = g.slack_app_token_file.clone();
            } else if g.slack_api_url.is_some() || g.slack_api_url_file.is_some() {
                self.api_url = g.slack_api_url.clone();
                self.api_url_file = g.slack_api_url_file.clone();
            } else if g.has_slack_token() {
                // the bot token comes from http_config.authorization
            } else {
                return err(
                    path,
                    "api_url",
                    "no Slack API URL nor App token set either inline or in a file",
                );
            }
        }
        if self.has_token() && self.api_url.is_none() {
            self.api_url = Some(SecretUrl(app_url.clone()));
        }
        if self.api_url.is_none() && self.api_url_file.is_none() && own_auth {
            // the "bot token in http_config" form posts to the app URL
            self.api_url = Some(SecretUrl(app_url.clone()));
        }
        if self.update_message {
            let bot = self.has_token()
                || self
                    .api_url
                    .as_ref()
                    .is_some_and(|u| u.0.trim_end_matches('/').ends_with("/api/chat.postMessage"));
            if !bot {
                return err(
                    path,
                    "update_message",
                    "update_message can only be used with bot tokens. api_url must be set to https://slack.com/api/chat.postMessage",
                );
            }
        }
        http_default(&mut self.http_config, g, path)
    }
}

// ---------------------------------------------------------------- MS Teams

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MsTeamsConfig {
    #[serde(default)]
    pub send_resolved: Option<bool>,
    #[serde(default)]
    pub webhook_url: Option<SecretUrl>,
    #[serde(default)]
    pub webhook_url_file: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
}

impl MsTeamsConfig {
    pub fn send_resolved(&self) -> bool {
        sr(self.send_resolved, true)
    }
    pub fn title(&self) -> String {
        or_tmpl(&self.title, "msteams.default.title")
    }
    pub fn summary(&self) -> String {
        or_tmpl(&self.summary, "msteams.default.summary")
    }
    pub fn text(&self) -> String {
        or_tmpl(&self.text, "msteams.default.text")
    }
    fn resolve(&mut self, g: &GlobalConfig, path: &str) -> VResult {
        webhook_pair(
            self.webhook_url.is_some(),
            self.webhook_url_file.is_some(),
            path,
        )?;
        http_default(&mut self.http_config, g, path)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MsTeamsV2Config {
    #[serde(default)]
    pub send_resolved: Option<bool>,
    #[serde(default)]
    pub webhook_url: Option<SecretUrl>,
    #[serde(default)]
    pub webhook_url_file: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
}

impl MsTeamsV2Config {
    pub fn send_resolved(&self) -> bool {
        sr(self.send_resolved, true)
    }
    pub fn title(&self) -> String {
        or_tmpl(&self.title, "msteamsv2.default.title")
    }
    pub fn text(&self) -> String {
        or_tmpl(&self.text, "msteamsv2.default.text")
    }
    fn resolve(&mut self, g: &GlobalConfig, path: &str) -> VResult {
        webhook_pair(
            self.webhook_url.is_some(),
            self.webhook_url_file.is_some(),
            path,
        )?;
        http_default(&mut self.http_config, g, path)
    }
}

fn webhook_pair(url: bool, file: bool, path: &str) -> VResult {
    if !url && !file {
        return err(
            path,
            "webhook_url",
            "one of webhook_url or webhook_url_file must be configured",
        );
    }
    exclusive(url, file, "webhook_url", "webhook_url_file")
        .or_else(|m| err(path, "webhook_url_file", m))
}

/// Fills a secret pair (`x`/`x_file`) from the global pair when neither is set
/// locally; refuses both set locally; `missing` when nothing supplies it.
#[allow(clippy::too_many_arguments)]
fn secret_with_default<T: Clone>(
    local: &mut Option<T>,
    local_file: &mut Option<String>,
    global: &Option<T>,
    global_file: &Option<String>,
    names: (&str, &str),
    missing: &str,
    path: &str,
) -> VResult {
    exclusive(local.is_some(), local_file.is_some(), names.0, names.1)
        .or_else(|m| err(path, names.1, m))?;
    if local.is_none() && local_file.is_none() {
        if global.is_none() && global_file.is_none() {
            return err(path, names.0, missing);
        }
        *local = global.clone();
        *local_file = global_file.clone();
    }
    Ok(())
}

// ---------------------------------------------------------------- opsgenie

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OpsgenieResponder {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub r#type: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsgenieConfig {
    #[serde(default)]
    pub send_resolved: Option<bool>,
    #[serde(default)]
    pub api_key: Option<Secret>,
    #[serde(default)]
    pub api_key_file: Option<String>,
    #[serde(default)]
    pub api_url: Option<HttpUrl>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub details: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    pub responders: Vec<OpsgenieResponder>,
    #[serde(default)]
    pub tags: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub update_alerts: bool,
    #[serde(default)]
    pub entity: Option<String>,
    #[serde(default)]
    pub actions: Option<String>,
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
}

impl OpsgenieConfig {
    pub fn send_resolved(&self) -> bool {
        sr(self.send_resolved, true)
    }
    fn resolve(&mut self, g: &GlobalConfig, path: &str) -> VResult {
        for (i, r) in self.responders.iter().enumerate() {
            let p = format!("{path}.responders[{i}]");
            let set = [&r.id, &r.name, &r.username]
                .iter()
                .filter(|v| v.as_deref().is_some_and(|s| !s.is_empty()))
                .count();
            if set != 1 {
                return err(
                    &p,
                    "",
                    "exactly one of id, name or username must be configured",
                );
            }
            if r.r#type.is_empty() {
                return err(&p, "type", "responder type is required");
            }
            let t = r.r#type.to_ascii_lowercase();
            if !r.r#type.contains("{{")
                && !["team", "teams", "user", "escalation", "schedule"].contains(&t.as_str())
            {
                return err(
                    &p,
                    "type",
                    format!(
                        "opsGenieConfig responder {:?} type does not match valid options team, teams, user, escalation, schedule",
                        r.r#type
                    ),
                );
            }
            if t == "teams" && r.name.is_none() {
                return err(&p, "name", "teams responders must use the name field");
            }
        }
        secret_with_default(
            &mut self.api_key,
            &mut self.api_key_file,
            &g.opsgenie_api_key,
            &g.opsgenie_api_key_file,
            ("api_key", "api_key_file"),
            "no global OpsGenie API Key set either inline or in a file",
            path,
        )?;
        if self.api_url.is_none() {
            self.api_url = Some(g.opsgenie_api_url());
        }
        http_default(&mut self.http_config, g, path)
    }
}

// ---------------------------------------------------------------- victorops

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VictorOpsConfig {
    #[serde(default)]
    pub send_resolved: Option<bool>,
    #[serde(default)]
    pub api_key: Option<Secret>,
    #[serde(default)]
    pub api_key_file: Option<String>,
    #[serde(default)]
    pub api_url: Option<HttpUrl>,
    #[serde(default)]
    pub routing_key: String,
    #[serde(default)]
    pub message_type: Option<String>,
    #[serde(default)]
    pub entity_display_name: Option<String>,
    #[serde(default)]
    pub state_message: Option<String>,
    #[serde(default)]
    pub monitoring_tool: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub custom_fields: BTreeMap<String, String>,
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
}

const VICTOROPS_RESERVED: [&str; 6] = [
    "routing_key",
    "message_type",
    "state_message",
    "entity_display_name",
    "monitoring_tool",
    "entity_id",
];

impl VictorOpsConfig {
    pub fn send_resolved(&self) -> bool {
        sr(self.send_resolved, true)
    }
    fn resolve(&mut self, g: &GlobalConfig, path: &str) -> VResult {
        if self.routing_key.is_empty() {
            return err(
                path,
                "routing_key",
                "missing Routing key in VictorOps config",
            );
        }
        for k in self.custom_fields.keys() {
            if VICTOROPS_RESERVED.contains(&k.as_str()) || k == "entity_state" {
                return err(
                    path,
                    "custom_fields",
                    format!(
                        "victorOps config contains custom field {k:?} which cannot be used as it conflicts with the fixed/static fields"
                    ),
                );
            }
        }
        secret_with_default(
            &mut self.api_key,
            &mut self.api_key_file,
            &g.victorops_api_key,
            &g.victorops_api_key_file,
            ("api_key", "api_key_file"),
            "no global VictorOps API Key set",
            path,
        )?;
        if self.api_url.is_none() {
            self.api_url = Some(g.victorops_api_url());
        }
        http_default(&mut self.http_config, g, path)
    }
}

// ---------------------------------------------------------------- wechat

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatConfig {
    #[serde(default)]
    pub send_resolved: Option<bool>,
    #[serde(default)]
    pub api_secret: Option<Secret>,
    #[serde(default)]
    pub api_secret_file: Option<String>,
    #[serde(default)]
    pub api_url: Option<HttpUrl>,
    #[serde(default)]
    pub corp_id: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub message_type: Option<String>,
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub to_user: Option<String>,
    #[serde(default)]
    pub to_party: Option<String>,
    #[serde(default)]
    pub to_tag: Option<String>,
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
}

impl WechatConfig {
    pub fn send_resolved(&self) -> bool {
        sr(self.send_resolved, false)
    }
    fn resolve(&mut self, g: &GlobalConfig, path: &str) -> VResult {
        if let Some(t) = &self.message_type
            && t != "text"
            && t != "markdown"
        {
            return err(
                path,
                "message_type",
                format!("weChat message type {t:?} does not match valid options text, markdown"),
            );
        }
        secret_with_default(
            &mut self.api_secret,
            &mut self.api_secret_file,
            &g.wechat_api_secret,
            &g.wechat_api_secret_file,
            ("api_secret", "api_secret_file"),
            "no global Wechat Api Secret set either inline or in a file",
            path,
        )?;
        if self.corp_id.is_none() {
            self.corp_id = g.wechat_api_corp_id.clone();
        }
        if self.api_url.is_none() {
            self.api_url = Some(g.wechat_api_url());
        }
        http_default(&mut self.http_config, g, path)
    }
}

// ---------------------------------------------------------------- telegram

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    #[serde(default)]
    pub send_resolved: Option<bool>,
    #[serde(default)]
    pub api_url: Option<HttpUrl>,
    #[serde(default)]
    pub bot_token: Option<Secret>,
    #[serde(default)]
    pub bot_token_file: Option<String>,
    #[serde(default)]
    pub chat_id: Option<i64>,
    #[serde(default)]
    pub chat_id_file: Option<String>,
    #[serde(default)]
    pub message_thread_id: Option<i64>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub disable_notifications: bool,
    #[serde(default)]
    pub parse_mode: Option<String>,
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
}

impl TelegramConfig {
    pub fn send_resolved(&self) -> bool {
        sr(self.send_resolved, true)
    }
    fn resolve(&mut self, g: &GlobalConfig, path: &str) -> VResult {
        secret_with_default(
            &mut self.bot_token,
            &mut self.bot_token_file,
            &g.telegram_bot_token,
            &g.telegram_bot_token_file,
            ("bot_token", "bot_token_file"),
            "missing bot_token or bot_token_file on telegram_config",
            path,
        )?;
        if self.chat_id.unwrap_or(0) == 0 && self.chat_id_file.is_none() {
            return err(path, "chat_id", "missing chat_id on telegram_config");
        }
        exclusive(
            self.chat_id.is_some(),
            self.chat_id_file.is_some(),
            "chat_id",
            "chat_id_file",
        )
        .or_else(|m| err(path, "chat_id_file", m))?;
        if let Some(p) = &self.parse_mode
            && !["", "HTML", "Markdown", "MarkdownV2"].contains(&p.as_str())
        {
            return err(
                path,
                "parse_mode",
                format!(
                    "unknown parse_mode {p:?} on telegram_config, must be Markdown, MarkdownV2, HTML or empty string"
                ),
            );
        }
        if self.api_url.is_none() {
            self.api_url = Some(g.telegram_api_url());
        }
        http_default(&mut self.http_config, g, path)
    }
}

// ---------------------------------------------------------------- sns

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnsConfig {
    #[serde(default)]
    pub send_resolved: Option<bool>,
    #[serde(default)]
    pub api_url: Option<String>,
    #[serde(default)]
    pub sigv4: Option<Value>,
    #[serde(default)]
    pub topic_arn: Option<String>,
    #[serde(default)]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub target_arn: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
}

impl SnsConfig {
    pub fn send_resolved(&self) -> bool {
        sr(self.send_resolved, true)
    }
    fn resolve(&mut self, g: &GlobalConfig, path: &str) -> VResult {
        let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        if !set(&self.topic_arn) && !set(&self.phone_number) && !set(&self.target_arn) {
            return err(
                path,
                "",
                "must provide either a Target ARN, Topic ARN, or Phone Number for SNS config",
            );
        }
        http_default(&mut self.http_config, g, path)
    }
}

// ---------------------------------------------------------------- pushover

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushoverConfig {
    #[serde(default)]
    pub send_resolved: Option<bool>,
    #[serde(default)]
    pub user_key: Option<Secret>,
    #[serde(default)]
    pub user_key_file: Option<String>,
    #[serde(default)]
    pub token: Option<Secret>,
    #[serde(default)]
    pub token_file: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub url_title: Option<String>,
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub sound: Option<String>,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub retry: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub expire: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub ttl: Option<Duration>,
    #[serde(default)]
    pub html: bool,
    #[serde(default)]
    pub monospace: bool,
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
}

impl PushoverConfig {
    pub fn send_resolved(&self) -> bool {
        sr(self.send_resolved, true)
    }
    fn resolve(&mut self, g: &GlobalConfig, path: &str) -> VResult {
        if self.user_key.is_none() && self.user_key_file.is_none() {
            return err(
                path,
                "user_key",
                "one of user_key or user_key_file must be configured",
            );
        }
        exclusive(
            self.user_key.is_some(),
            self.user_key_file.is_some(),
            "user_key",
            "user_key_file",
        )
        .or_else(|m| err(path, "user_key_file", m))?;
        if self.token.is_none() && self.token_file.is_none() {
            return err(
                path,
                "token",
                "one of token or token_file must be configured",
            );
        }
        exclusive(
            self.token.is_some(),
            self.token_file.is_some(),
            "token",
            "token_file",
        )
        .or_else(|m| err(path, "token_file", m))?;
        exclusive(self.html, self.monospace, "html", "monospace")
            .or_else(|m| err(path, "monospace", m))?;
        http_default(&mut self.http_config, g, path)
    }
}

// ---------------------------------------------------------------- discord

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    #[serde(default)]
    pub send_resolved: Option<bool>,
    #[serde(default)]
    pub webhook_url: Option<SecretUrl>,
    #[serde(default)]
    pub webhook_url_file: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
}

impl DiscordConfig {
    pub fn send_resolved(&self) -> bool {
        sr(self.send_resolved, true)
    }
    fn resolve(&mut self, g: &GlobalConfig, path: &str) -> VResult {
        webhook_pair(
            self.webhook_url.is_some(),
            self.webhook_url_file.is_some(),
            path,
        )?;
        http_default(&mut self.http_config, g, path)
    }
}

// ---------------------------------------------------------------- webex

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebexConfig {
    #[serde(default)]
    pub send_resolved: Option<bool>,
    #[serde(default)]
    pub api_url: Option<HttpUrl>,
    #[serde(default)]
    pub room_id: String,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
}

impl WebexConfig {
    pub fn send_resolved(&self) -> bool {
        sr(self.send_resolved, true)
    }
    fn resolve(&mut self, g: &GlobalConfig, path: &str) -> VResult {
        if self.room_id.is_empty() {
            return err(path, "room_id", "missing room_id on webex_config");
        }
        let auth = self
            .http_config
            .as_ref()
            .is_some_and(|h| h.authorization.is_some());
        if !auth {
            return err(
                path,
                "http_config.authorization",
                "missing webex_configs.http_config.authorization",
            );
        }
        if self.api_url.is_none() {
            self.api_url = Some(g.webex_api_url());
        }
        http_default(&mut self.http_config, g, path)
    }
}

// ---------------------------------------------------------------- rocketchat

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RocketchatConfig {
    #[serde(default)]
    pub send_resolved: Option<bool>,
    #[serde(default)]
    pub api_url: Option<HttpUrl>,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub token: Option<Secret>,
    #[serde(default)]
    pub token_file: Option<String>,
    #[serde(default)]
    pub token_id: Option<Secret>,
    #[serde(default)]
    pub token_id_file: Option<String>,
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default)]
    pub emoji: Option<String>,
    #[serde(default)]
    pub icon_url: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub title_link: Option<String>,
    #[serde(default)]
    pub fields: Option<Value>,
    #[serde(default)]
    pub short_fields: bool,
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub thumb_url: Option<String>,
    #[serde(default)]
    pub link_names: bool,
    #[serde(default)]
    pub actions: Option<Value>,
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
}

impl RocketchatConfig {
    pub fn send_resolved(&self) -> bool {
        sr(self.send_resolved, true)
    }
    fn resolve(&mut self, g: &GlobalConfig, path: &str) -> VResult {
        secret_with_default(
            &mut self.token_id,
            &mut self.token_id_file,
            &g.rocketchat_token_id,
            &g.rocketchat_token_id_file,
            ("token_id", "token_id_file"),
            "no global Rocketchat TokenID set either inline or in a file",
            path,
        )?;
        secret_with_default(
            &mut self.token,
            &mut self.token_file,
            &g.rocketchat_token,
            &g.rocketchat_token_file,
            ("token", "token_file"),
            "no global Rocketchat Token set either inline or in a file",
            path,
        )?;
        if self.api_url.is_none() {
            self.api_url = Some(g.rocketchat_api_url());
        }
        http_default(&mut self.http_config, g, path)
    }
}

// ---------------------------------------------------------------- mattermost

#[derive(Debug, Clone, Deserialize)]
pub struct MattermostConfig {
    #[serde(default)]
    pub send_resolved: Option<bool>,
    #[serde(default)]
    pub webhook_url: Option<SecretUrl>,
    #[serde(default)]
    pub webhook_url_file: Option<String>,
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
    /// Message fields (channel, username, text, attachments, ...), kept raw.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl MattermostConfig {
    pub fn send_resolved(&self) -> bool {
        sr(self.send_resolved, true)
    }
    fn resolve(&mut self, g: &GlobalConfig, path: &str) -> VResult {
        secret_with_default(
            &mut self.webhook_url,
            &mut self.webhook_url_file,
            &g.mattermost_webhook_url,
            &g.mattermost_webhook_url_file,
            ("webhook_url", "webhook_url_file"),
            "no global Mattermost webhook URL set either inline or in a file",
            path,
        )?;
        http_default(&mut self.http_config, g, path)
    }
}

// ---------------------------------------------------------------- jira

#[derive(Debug, Clone, Deserialize)]
pub struct JiraConfig {
    #[serde(default)]
    pub send_resolved: Option<bool>,
    #[serde(default)]
    pub api_url: Option<HttpUrl>,
    #[serde(default)]
    pub project: String,
    #[serde(default)]
    pub issue_type: String,
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
    /// summary, description, labels, priority, transitions, fields, ...
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl JiraConfig {
    pub fn send_resolved(&self) -> bool {
        sr(self.send_resolved, true)
    }
    fn resolve(&mut self, g: &GlobalConfig, path: &str) -> VResult {
        if self.project.is_empty() {
            return err(path, "project", "missing project in jira_config");
        }
        if self.issue_type.is_empty() {
            return err(path, "issue_type", "missing issue_type in jira_config");
        }
        if self.api_url.is_none() {
            self.api_url = g.jira_api_url.clone();
        }
        if self.api_url.is_none() {
            return err(path, "api_url", "no global Jira Cloud URL set");
        }
        http_default(&mut self.http_config, g, path)
    }
}

// ---------------------------------------------------------------- incident.io

#[derive(Debug, Clone, Deserialize)]
pub struct IncidentioConfig {
    #[serde(default)]
    pub send_resolved: Option<bool>,
    #[serde(default)]
    pub url: Option<SecretUrl>,
    #[serde(default)]
    pub url_file: Option<String>,
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl IncidentioConfig {
    pub fn send_resolved(&self) -> bool {
        sr(self.send_resolved, true)
    }
    fn resolve(&mut self, g: &GlobalConfig, path: &str) -> VResult {
        if self.url.is_none() && self.url_file.is_none() {
            return err(path, "url", "one of url or url_file must be configured");
        }
        exclusive(
            self.url.is_some(),
            self.url_file.is_some(),
            "url",
            "url_file",
        )
        .or_else(|m| err(path, "url_file", m))?;
        http_default(&mut self.http_config, g, path)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{ConfigError, HubConfig, load_str};

    fn with(receiver_yaml: &str) -> String {
        format!("route:\n  receiver: r\nreceivers:\n  - name: r\n{receiver_yaml}")
    }

    fn load(receiver_yaml: &str) -> Result<HubConfig, ConfigError> {
        load_str(&with(receiver_yaml))
    }

    fn refused(receiver_yaml: &str) -> String {
        load(receiver_yaml)
            .expect_err("should be refused")
            .to_string()
    }

    #[test]
    fn slack_rules() {
        let e = refused(
            "    slack_configs:\n      - api_url: 'https://hooks.slack.com/x'\n        api_url_file: /f\n",
        );
        assert!(e.contains("at most one of api_url & api_url_file"), "{e}");
        let e = refused(
            "    slack_configs:\n      - app_token: t\n        api_url: 'https://hooks.slack.com/x'\n",
        );
        assert!(e.contains("app_token"), "{e}");
        // a token posts to the app URL
        let c = load("    slack_configs:\n      - app_token: t\n        update_message: true\n")
            .unwrap();
        let s = &c.receiver("r").unwrap().slack_configs[0];
        assert_eq!(s.api_url.as_ref().unwrap().expose(), super::SLACK_APP_URL);
        assert_eq!(s.title(), "{{ template \"slack.default.title\" . }}");
        assert_eq!(s.mrkdwn_in(), ["fallback", "pretext", "text"]);
        let e = refused("    slack_configs:\n      - api_url: 'not a url'\n");
        assert!(e.contains("slack_configs[0].api_url"), "{e}");
    }

    #[test]
    fn pagerduty_rules() {
        let e = refused("    pagerduty_configs:\n      - severity: critical\n");
        assert!(e.contains("missing service or routing key"), "{e}");
        let e = refused("    pagerduty_configs:\n      - routing_key: a\n        service_key: b\n");
        assert!(e.contains("at most one"), "{e}");
        let e = refused(
            "    pagerduty_configs:\n      - routing_key: a\n        routing_key_file: /f\n",
        );
        assert!(e.contains("routing_key_file"), "{e}");
        let c = load("    pagerduty_configs:\n      - service_key: b\n        images: [{src: s, alt: a, href: h}]\n").unwrap();
        let p = &c.receiver("r").unwrap().pagerduty_configs[0];
        assert!(!p.uses_events_v2());
        assert_eq!(p.severity(), "error");
        assert_eq!(p.details().len(), 4);
        assert_eq!(p.images.len(), 1);
    }

    #[test]
    fn msteams_rules() {
        let e = refused("    msteams_configs:\n      - title: x\n");
        assert!(e.contains("webhook_url"), "{e}");
        let e = refused(
            "    msteamsv2_configs:\n      - webhook_url: 'https://x/'\n        webhook_url_file: /f\n",
        );
        assert!(e.contains("at most one"), "{e}");
        let c = load("    msteamsv2_configs:\n      - webhook_url_file: /f\n").unwrap();
        assert_eq!(
            c.receiver("r").unwrap().msteamsv2_configs[0].text(),
            "{{ template \"msteamsv2.default.text\" . }}"
        );
    }

    #[test]
    fn email_headers_and_duplicates() {
        let g = "global:\n  smtp_smarthost: 'mx:25'\n  smtp_from: am@x\n";
        let ok = format!(
            "{g}{}",
            with("    email_configs:\n      - to: a@x\n        headers: {subject: custom}\n")
        );
        let c = load_str(&ok).unwrap();
        let h = c.receiver("r").unwrap().email_configs[0].effective_headers();
        assert_eq!(h.get("subject").map(String::as_str), Some("custom"));
        assert!(!h.contains_key("Subject"), "{h:?}");
        assert_eq!(h.get("To").map(String::as_str), Some("a@x"));
        assert_eq!(h.get("From").map(String::as_str), Some("am@x"));
        let dup = format!(
            "{g}{}",
            with(
                "    email_configs:\n      - to: a@x\n        headers: {Subject: a, subject: b}\n"
            )
        );
        assert!(
            load_str(&dup)
                .unwrap_err()
                .message
                .contains("duplicate header")
        );
        let e = refused("    email_configs:\n      - smarthost: 'mx:25'\n        from: a@x\n");
        assert!(e.contains("missing to address"), "{e}");
        let e = refused("    email_configs:\n      - to: a@x\n        smarthost: mx\n");
        assert!(e.contains("missing port"), "{e}");
    }

    #[test]
    fn opsgenie_responders() {
        let key = "global:\n  opsgenie_api_key: k\n";
        let ok = format!(
            "{key}{}",
            with(
                "    opsgenie_configs:\n      - responders: [{name: ops, type: team}, {id: '1', type: '{{ .CommonLabels.t }}'}]\n"
            )
        );
        assert!(load_str(&ok).is_ok());
        let two = format!(
            "{key}{}",
            with("    opsgenie_configs:\n      - responders: [{name: ops, id: '1', type: team}]\n")
        );
        assert!(load_str(&two).unwrap_err().message.contains("exactly one"));
        let bad = format!(
            "{key}{}",
            with("    opsgenie_configs:\n      - responders: [{name: ops, type: squad}]\n")
        );
        assert!(
            load_str(&bad)
                .unwrap_err()
                .message
                .contains("does not match valid options")
        );
    }

    #[test]
    fn other_integrations() {
        let e = refused("    telegram_configs:\n      - bot_token: t\n");
        assert!(e.contains("missing chat_id"), "{e}");
        let e = refused(
            "    telegram_configs:\n      - bot_token: t\n        chat_id: 1\n        parse_mode: Bold\n",
        );
        assert!(e.contains("parse_mode"), "{e}");
        let e = refused("    webex_configs:\n      - room_id: r\n");
        assert!(e.contains("authorization"), "{e}");
        assert!(load("    webex_configs:\n      - room_id: r\n        http_config: {authorization: {credentials: c}}\n").is_ok());
        let e = refused("    pushover_configs:\n      - user_key: u\n");
        assert!(e.contains("token"), "{e}");
        let e = refused("    discord_configs:\n      - {}\n");
        assert!(e.contains("webhook_url"), "{e}");
        let e = refused("    victorops_configs:\n      - api_key: k\n");
        assert!(e.contains("Routing key"), "{e}");
        let e = refused("    jira_configs:\n      - project: P\n        issue_type: Bug\n");
        assert!(e.contains("Jira"), "{e}");
        // Jira keeps its other fields raw
        let c = load("    jira_configs:\n      - project: P\n        issue_type: Bug\n        api_url: 'https://j/rest/api/2/'\n        labels: [a]\n").unwrap();
        assert!(
            c.receiver("r").unwrap().jira_configs[0]
                .extra
                .contains_key("labels")
        );
        let e = refused(
            "    webhook_configs:\n      - url: 'http://x/'\n        http_config: {basic_auth: {username: u}, oauth2: {client_id: c}}\n",
        );
        assert!(e.contains("http_config"), "{e}");
    }

    #[test]
    fn integrations_are_listed_with_ids() {
        let c = load("    webhook_configs: [{url: 'http://a/'}, {url: 'http://b/', send_resolved: false}]\n    msteamsv2_configs: [{webhook_url_file: /f}]\n").unwrap();
        let ids: Vec<(String, bool)> = c
            .receiver("r")
            .unwrap()
            .integrations()
            .iter()
            .map(|i| (i.id(), i.config.send_resolved()))
            .collect();
        assert_eq!(
            ids,
            [
                ("webhook[0]".to_string(), true),
                ("webhook[1]".to_string(), false),
                ("msteamsv2[0]".to_string(), true)
            ]
        );
    }

    #[test]
    fn receiver_without_integrations_is_valid() {
        let c = load("").unwrap();
        assert_eq!(c.receiver("r").unwrap().integration_count(), 0);
    }
}
