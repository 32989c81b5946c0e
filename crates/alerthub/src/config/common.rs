//! Value types shared by the config sections: secrets, URLs, durations,
//! HTTP client settings, and serde helpers.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// `null` and a missing key both mean "default" (YAML `key:` with no value
/// is common in alertmanager.yml files).
pub fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A list whose items must not be empty (`- ` alone is refused, as
/// Alertmanager refuses it with "missing ... config").
pub fn list_no_nulls<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let items: Option<Vec<Option<T>>> = Option::deserialize(d)?;
    let mut out = Vec::new();
    for (i, item) in items.unwrap_or_default().into_iter().enumerate() {
        match item {
            Some(v) => out.push(v),
            None => {
                return Err(serde::de::Error::custom(format!(
                    "item {i} is empty (missing config)"
                )));
            }
        }
    }
    Ok(out)
}

/// A Prometheus-style duration (`30s`, `1h30m`, `0`).
pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| day2_model::parse_duration(&s).map_err(serde::de::Error::custom))
        .transpose()
}

/// A secret string; never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<secret>")
    }
}

/// Checks an absolute http(s) URL with a host, as Alertmanager does for URL
/// fields. Values holding a Go template (`{{`) are checked when rendered.
pub fn check_url(s: &str) -> Result<(), String> {
    if s.contains("{{") {
        return Ok(());
    }
    let (scheme, rest) = s
        .split_once("://")
        .ok_or_else(|| format!("invalid URL {s:?}: missing scheme"))?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(format!("unsupported scheme {scheme:?} for URL"));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map(|(_, h)| h).unwrap_or(host);
    if host.is_empty() {
        return Err(format!("invalid URL {s:?}: missing host"));
    }
    if host.chars().any(|c| c.is_whitespace()) {
        return Err(format!("invalid URL {s:?}: space in host"));
    }
    Ok(())
}

/// An absolute http(s) URL, checked when read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct HttpUrl(pub String);

impl HttpUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        check_url(&s).map_err(serde::de::Error::custom)?;
        Ok(HttpUrl(s))
    }
}

/// A URL that is also a secret (Slack and webhook URLs carry tokens).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(pub String);

impl SecretUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        check_url(&s).map_err(serde::de::Error::custom)?;
        Ok(SecretUrl(s))
    }
}

/// `host:port` for SMTP smarthosts; the port is required.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostPort {
    pub host: String,
    pub port: String,
}

impl HostPort {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Ok(HostPort::default());
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, p) = rest
                .split_once("]:")
                .ok_or_else(|| format!("address {s:?}: missing port"))?;
            (h, p)
        } else {
            s.rsplit_once(':')
                .ok_or_else(|| format!("address {s:?}: missing port"))?
        };
        if port.is_empty() {
            return Err(format!("address {s:?}: missing port"));
        }
        Ok(HostPort {
            host: host.to_string(),
            port: port.to_string(),
        })
    }
    pub fn is_empty(&self) -> bool {
        self.host.is_empty() && self.port.is_empty()
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            Ok(())
        } else if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        HostPort::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// "at most one of A & B must be configured"
pub(crate) fn exclusive(a: bool, b: bool, a_name: &str, b_name: &str) -> Result<(), String> {
    if a && b {
        Err(format!(
            "at most one of {a_name} & {b_name} must be configured"
        ))
    } else {
        Ok(())
    }
}

fn yes() -> bool {
    true
}

/// The HTTP client settings of Prometheus's common library.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default)]
    pub authorization: Option<Authorization>,
    #[serde(default)]
    pub oauth2: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
    #[serde(default)]
    pub proxy_url: Option<String>,
    #[serde(default)]
    pub no_proxy: Option<String>,
    #[serde(default)]
    pub proxy_from_environment: bool,
    #[serde(default)]
    pub proxy_connect_header: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub http_headers: Option<serde_yaml_ng::Value>,
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    #[serde(default = "yes")]
    pub enable_http2: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            basic_auth: None,
            authorization: None,
            oauth2: None,
            bearer_token: None,
            bearer_token_file: None,
            tls_config: None,
            proxy_url: None,
            no_proxy: None,
            proxy_from_environment: false,
            proxy_connect_header: None,
            http_headers: None,
            follow_redirects: true,
            enable_http2: true,
        }
    }
}

impl HttpConfig {
    /// The exclusivity rules of Prometheus's HTTP client config; returns the
    /// sub-field and the message.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let e = |f: &str, m: String| (f.to_string(), m);
        let bearer = self.bearer_token.is_some() || self.bearer_token_file.is_some();
        let kinds = [
            self.basic_auth.is_some(),
            self.authorization.is_some() || bearer,
            self.oauth2.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() > 1 {
            return Err(e(
                "",
                "at most one of basic_auth, oauth2 & authorization must be configured".into(),
            ));
        }
        if self.authorization.is_some() && bearer {
            return Err(e(
                "authorization",
                "authorization is not compatible with bearer_token & bearer_token_file".into(),
            ));
        }
        exclusive(
            self.bearer_token.is_some(),
            self.bearer_token_file.is_some(),
            "bearer_token",
            "bearer_token_file",
        )
        .map_err(|m| e("bearer_token", m))?;
        if let Some(b) = &self.basic_auth {
            exclusive(
                b.password.is_some(),
                b.password_file.is_some(),
                "basic_auth password",
                "password_file",
            )
            .map_err(|m| e("basic_auth", m))?;
            exclusive(
                b.username.is_some(),
                b.username_file.is_some(),
                "basic_auth username",
                "username_file",
            )
            .map_err(|m| e("basic_auth", m))?;
        }
        if let Some(a) = &self.authorization {
            exclusive(
                a.credentials.is_some(),
                a.credentials_file.is_some(),
                "authorization credentials",
                "credentials_file",
            )
            .map_err(|m| e("authorization", m))?;
            if a.r#type
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("basic"))
            {
                return Err(e(
                    "authorization.type",
                    "authorization type cannot be set to \"basic\", use \"basic_auth\" instead"
                        .into(),
                ));
            }
        }
        if self.proxy_from_environment && self.proxy_url.as_deref().is_some_and(|p| !p.is_empty()) {
            return Err(e(
                "proxy_from_environment",
                "if proxy_from_environment is configured, proxy_url must not be configured".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub username_file: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub password_file: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(default)]
    pub r#type: Option<String>,
    #[serde(default)]
    pub credentials: Option<Secret>,
    #[serde(default)]
    pub credentials_file: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub ca: Option<String>,
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub cert: Option<String>,
    #[serde(default)]
    pub cert_file: Option<String>,
    #[serde(default)]
    pub key: Option<Secret>,
    #[serde(default)]
    pub key_file: Option<String>,
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    #[serde(default)]
    pub min_version: Option<String>,
    #[serde(default)]
    pub max_version: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_need_http_scheme_and_host() {
        assert!(check_url("https://hooks.slack.com/services/x").is_ok());
        assert!(check_url("http://user:pw@host:8080/p?q").is_ok());
        assert!(check_url("http://example.com/{{ .GroupLabels.x }}").is_ok());
        for bad in [
            "/home",
            "://example.com",
            "http:example.com",
            "telnet://x",
            "http://",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_port_requires_port() {
        assert_eq!(HostPort::parse("localhost:25").unwrap().port, "25");
        assert_eq!(HostPort::parse("[::1]:25").unwrap().host, "::1");
        assert_eq!(HostPort::parse(":25").unwrap().host, "");
        assert!(HostPort::parse("localhost").is_err());
        assert!(HostPort::parse("localhost:").is_err());
    }

    #[test]
    fn secrets_are_not_printed() {
        let s = Secret("hunter2".into());
        assert_eq!(format!("{s:?}"), "<secret>");
        assert_eq!(serde_yaml_ng::to_string(&s).unwrap().trim(), "<secret>");
    }

    #[test]
    fn http_config_exclusivity() {
        let ok: HttpConfig = serde_yaml_ng::from_str("follow_redirects: false\n").unwrap();
        assert!(!ok.follow_redirects && ok.enable_http2);
        assert!(ok.validate().is_ok());
        let both: HttpConfig =
            serde_yaml_ng::from_str("basic_auth: {username: a}\nauthorization: {credentials: b}\n")
                .unwrap();
        assert!(both.validate().is_err());
        let pw: HttpConfig =
            serde_yaml_ng::from_str("basic_auth: {username: a, password: b, password_file: c}\n")
                .unwrap();
        assert!(pw.validate().is_err());
        assert!(serde_yaml_ng::from_str::<HttpConfig>("bogus: 1\n").is_err());
    }
}
