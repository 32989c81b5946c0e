//! The `global:` section: defaults for every receiver.

use super::common::*;
use serde::Deserialize;
use std::time::Duration;

pub const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    #[serde(default, deserialize_with = "opt_duration")]
    pub resolve_timeout: Option<Duration>,
    #[serde(default)]
    pub http_config: Option<HttpConfig>,

    #[serde(default)]
    pub smtp_from: Option<String>,
    #[serde(default)]
    pub smtp_hello: Option<String>,
    #[serde(default)]
    pub smtp_smarthost: Option<HostPort>,
    #[serde(default)]
    pub smtp_auth_username: Option<String>,
    #[serde(default)]
    pub smtp_auth_password: Option<Secret>,
    #[serde(default)]
    pub smtp_auth_password_file: Option<String>,
    #[serde(default)]
    pub smtp_auth_secret: Option<Secret>,
    #[serde(default)]
    pub smtp_auth_secret_file: Option<String>,
    #[serde(default)]
    pub smtp_auth_identity: Option<String>,
    #[serde(default)]
    pub smtp_require_tls: Option<bool>,
    #[serde(default)]
    pub smtp_force_implicit_tls: Option<bool>,
    #[serde(default)]
    pub smtp_tls_config: Option<TlsConfig>,

    #[serde(default)]
    pub slack_api_url: Option<SecretUrl>,
    #[serde(default)]
    pub slack_api_url_file: Option<String>,
    #[serde(default)]
    pub slack_app_token: Option<Secret>,
    #[serde(default)]
    pub slack_app_token_file: Option<String>,
    #[serde(default)]
    pub slack_app_url: Option<HttpUrl>,

    #[serde(default)]
    pub pagerduty_url: Option<HttpUrl>,

    #[serde(default)]
    pub opsgenie_api_url: Option<HttpUrl>,
    #[serde(default)]
    pub opsgenie_api_key: Option<Secret>,
    #[serde(default)]
    pub opsgenie_api_key_file: Option<String>,

    #[serde(default)]
    pub wechat_api_url: Option<HttpUrl>,
    #[serde(default)]
    pub wechat_api_secret: Option<Secret>,
    #[serde(default)]
    pub wechat_api_secret_file: Option<String>,
    #[serde(default)]
    pub wechat_api_corp_id: Option<String>,

    #[serde(default)]
    pub victorops_api_url: Option<HttpUrl>,
    #[serde(default)]
    pub victorops_api_key: Option<Secret>,
    #[serde(default)]
    pub victorops_api_key_file: Option<String>,

    #[serde(default)]
    pub telegram_api_url: Option<HttpUrl>,
    #[serde(default)]
    pub telegram_bot_token: Option<Secret>,
    #[serde(default)]
    pub telegram_bot_token_file: Option<String>,

    #[serde(default)]
    pub webex_api_url: Option<HttpUrl>,

    #[serde(default)]
    pub rocketchat_api_url: Option<HttpUrl>,
    #[serde(default)]
    pub rocketchat_token: Option<Secret>,
    #[serde(default)]
    pub rocketchat_token_file: Option<String>,
    #[serde(default)]
    pub rocketchat_token_id: Option<Secret>,
    #[serde(default)]
    pub rocketchat_token_id_file: Option<String>,

    #[serde(default)]
    pub mattermost_webhook_url: Option<SecretUrl>,
    #[serde(default)]
    pub mattermost_webhook_url_file: Option<String>,

    #[serde(default)]
    pub jira_api_url: Option<HttpUrl>,
}

fn url_or(u: &Option<HttpUrl>, default: &str) -> HttpUrl {
    u.clone().unwrap_or_else(|| HttpUrl(default.to_string()))
}

impl GlobalConfig {
    pub fn resolve_timeout(&self) -> Duration {
        self.resolve_timeout.unwrap_or(DEFAULT_RESOLVE_TIMEOUT)
    }
    pub fn pagerduty_url(&self) -> HttpUrl {
        url_or(
            &self.pagerduty_url,
            "https://events.pagerduty.com/v2/enqueue",
        )
    }
    pub fn opsgenie_api_url(&self) -> HttpUrl {
        url_or(&self.opsgenie_api_url, "https://api.opsgenie.com/")
    }
    pub fn wechat_api_url(&self) -> HttpUrl {
        url_or(&self.wechat_api_url, "https://qyapi.weixin.qq.com/cgi-bin/")
    }
    pub fn victorops_api_url(&self) -> HttpUrl {
        url_or(
            &self.victorops_api_url,
            "https://alert.victorops.com/integrations/generic/20131114/alert/",
        )
    }
    pub fn telegram_api_url(&self) -> HttpUrl {
        url_or(&self.telegram_api_url, "https://api.telegram.org")
    }
    pub fn webex_api_url(&self) -> HttpUrl {
        url_or(&self.webex_api_url, "https://webexapis.com/v1/messages")
    }
    pub fn rocketchat_api_url(&self) -> HttpUrl {
        url_or(&self.rocketchat_api_url, "https://open.rocket.chat/")
    }
    pub fn has_slack_token(&self) -> bool {
        self.slack_app_token.is_some() || self.slack_app_token_file.is_some()
    }

    /// Global rules: each secret given at most once (inline or file), and the
    /// Slack bot token not combined with a webhook URL. Like Alertmanager, these
    /// hold whether or not a receiver uses the default.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let pairs: [(bool, bool, &str, &str); 11] = [
            (
                self.smtp_auth_password.is_some(),
                self.smtp_auth_password_file.is_some(),
                "smtp_auth_password",
                "smtp_auth_password_file",
            ),
            (
                self.smtp_auth_secret.is_some(),
                self.smtp_auth_secret_file.is_some(),
                "smtp_auth_secret",
                "smtp_auth_secret_file",
            ),
            (
                self.slack_api_url.is_some(),
                self.slack_api_url_file.is_some(),
                "slack_api_url",
                "slack_api_url_file",
            ),
            (
                self.slack_app_token.is_some(),
                self.slack_app_token_file.is_some(),
                "slack_app_token",
                "slack_app_token_file",
            ),
            (
                self.opsgenie_api_key.is_some(),
                self.opsgenie_api_key_file.is_some(),
                "opsgenie_api_key",
                "opsgenie_api_key_file",
            ),
            (
                self.wechat_api_secret.is_some(),
                self.wechat_api_secret_file.is_some(),
                "wechat_api_secret",
                "wechat_api_secret_file",
            ),
            (
                self.victorops_api_key.is_some(),
                self.victorops_api_key_file.is_some(),
                "victorops_api_key",
                "victorops_api_key_file",
            ),
            (
                self.telegram_bot_token.is_some(),
                self.telegram_bot_token_file.is_some(),
                "telegram_bot_token",
                "telegram_bot_token_file",
            ),
            (
                self.rocketchat_token.is_some(),
                self.rocketchat_token_file.is_some(),
                "rocketchat_token",
                "rocketchat_token_file",
            ),
            (
                self.rocketchat_token_id.is_some(),
                self.rocketchat_token_id_file.is_some(),
                "rocketchat_token_id",
                "rocketchat_token_id_file",
            ),
            (
                self.mattermost_webhook_url.is_some(),
                self.mattermost_webhook_url_file.is_some(),
                "mattermost_webhook_url",
                "mattermost_webhook_url_file",
            ),
        ];
        for (a, b, an, bn) in pairs {
            exclusive(a, b, an, bn).map_err(|m| (format!("global.{bn}"), m))?;
        }
        // A bot token posts to the app URL; a webhook URL besides it is only
        // accepted when it is that same URL (the old way to use bot tokens).
        if self.has_slack_token() {
            let app_url = self
                .slack_app_url
                .as_ref()
                .map(|u| u.0.as_str())
                .unwrap_or(super::receivers::SLACK_APP_URL);
            let conflicting = self.slack_api_url_file.is_some()
                || self.slack_api_url.as_ref().is_some_and(|u| u.0 != app_url);
            if conflicting {
                return Err((
                    "global.slack_app_token".into(),
                    "at most one of slack_app_token/slack_app_token_file & slack_api_url/slack_api_url_file must be configured".into(),
                ));
            }
        }
        if let Some(h) = &self.http_config {
            h.validate().map_err(|(f, m)| {
                (
                    if f.is_empty() {
                        "global.http_config".to_string()
                    } else {
                        format!("global.http_config.{f}")
                    },
                    m,
                )
            })?;
        }
        if self.resolve_timeout.is_some_and(|d| d.is_zero()) {
            return Err((
                "global.resolve_timeout".into(),
                "resolve_timeout must be greater than 0".into(),
            ));
        }
        Ok(())
    }
}
