//! Prometheus's `global` block and `scrape_configs` entries, with the same
//! field names and defaults, validated with errors that name the job and field.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::relabel::RelabelConfig;

fn dur<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    day2_model::parse_duration(&s).map_err(serde::de::Error::custom)
}

fn opt_dur<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    dur(d).map(Some)
}

fn opt_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u64),
        S(String),
    }
    match Raw::deserialize(d)? {
        Raw::N(n) => Ok(Some(n)),
        Raw::S(s) => parse_size(&s).map(Some).map_err(serde::de::Error::custom),
    }
}

/// Prometheus's byte sizes: `0`, `512KB`, `10MB`, `1GB` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected a number and a unit such as 10MB"))?;
    let mult: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" | "KIB" => 1 << 10,
        "MB" | "MIB" => 1 << 20,
        "GB" | "GIB" => 1 << 30,
        "TB" | "TIB" => 1 << 40,
        "PB" | "PIB" => 1 << 50,
        _ => return Err(format!("invalid size {s:?}: unknown unit {unit:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

/// Prometheus's `global` block (the parts day2 uses).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    #[serde(default = "one_minute", deserialize_with = "dur")]
    pub scrape_interval: Duration,
    #[serde(default = "ten_seconds", deserialize_with = "dur")]
    pub scrape_timeout: Duration,
    #[serde(default = "one_minute", deserialize_with = "dur")]
    pub evaluation_interval: Duration,
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub sample_limit: u64,
    #[serde(default, deserialize_with = "opt_bytes")]
    pub body_size_limit: Option<u64>,
    #[serde(default)]
    pub label_limit: u64,
    #[serde(default)]
    pub label_name_length_limit: u64,
    #[serde(default)]
    pub label_value_length_limit: u64,
    #[serde(default)]
    pub target_limit: u64,
}

fn one_minute() -> Duration {
    Duration::from_secs(60)
}
fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}
fn five_minutes() -> Duration {
    Duration::from_secs(300)
}
fn yes() -> bool {
    true
}
fn metrics_path() -> String {
    "/metrics".into()
}
fn http() -> String {
    "http".into()
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: one_minute(),
            scrape_timeout: ten_seconds(),
            evaluation_interval: one_minute(),
            external_labels: BTreeMap::new(),
            sample_limit: 0,
            body_size_limit: None,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            target_limit: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub credentials: Option<String>,
    pub credentials_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub insecure_skip_verify: bool,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub server_name: Option<String>,
}

/// A static target group.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    pub files: Vec<String>,
    #[serde(default = "five_minutes", deserialize_with = "dur")]
    pub refresh_interval: Duration,
}

/// Service-discovery mechanisms of Prometheus that day2 does not implement:
/// accepted by the parser so the error can say so plainly.
const UNSUPPORTED_SD: &[&str] = &[
    "azure_sd_configs",
    "consul_sd_configs",
    "digitalocean_sd_configs",
    "docker_sd_configs",
    "dockerswarm_sd_configs",
    "dns_sd_configs",
    "ec2_sd_configs",
    "eureka_sd_configs",
    "gce_sd_configs",
    "hetzner_sd_configs",
    "http_sd_configs",
    "kubernetes_sd_configs",
    "lightsail_sd_configs",
    "linode_sd_configs",
    "marathon_sd_configs",
    "nerve_sd_configs",
    "nomad_sd_configs",
    "openstack_sd_configs",
    "puppetdb_sd_configs",
    "scaleway_sd_configs",
    "serverset_sd_configs",
    "triton_sd_configs",
    "uyuni_sd_configs",
];

/// One `scrape_configs` entry. Unknown keys land in `unsupported` (serde cannot
/// deny unknown fields next to a flattened map) and are refused by `validate`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ScrapeConfig {
    pub job_name: String,
    #[serde(default, deserialize_with = "opt_dur")]
    pub scrape_interval: Option<Duration>,
    #[serde(default, deserialize_with = "opt_dur")]
    pub scrape_timeout: Option<Duration>,
    #[serde(default = "metrics_path")]
    pub metrics_path: String,
    #[serde(default = "http")]
    pub scheme: String,
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub honor_labels: bool,
    #[serde(default = "yes")]
    pub honor_timestamps: bool,
    pub basic_auth: Option<BasicAuth>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    pub authorization: Option<Authorization>,
    pub tls_config: Option<TlsConfig>,
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    #[serde(default = "yes")]
    pub enable_http2: bool,
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
    pub sample_limit: Option<u64>,
    #[serde(default, deserialize_with = "opt_bytes")]
    pub body_size_limit: Option<u64>,
    pub label_limit: Option<u64>,
    pub label_name_length_limit: Option<u64>,
    pub label_value_length_limit: Option<u64>,
    pub target_limit: Option<u64>,
    /// Other discovery mechanisms, kept only to refuse them with a clear message.
    #[serde(flatten)]
    pub unsupported: BTreeMap<String, serde_yaml_ng::Value>,
}

/// A configuration problem: the job, the field and what is wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("job {job:?}: {field}: {message}")]
pub struct ConfigError {
    pub job: String,
    pub field: String,
    pub message: String,
}

/// The effective limits of a job (its own value, else the global one; 0 = none).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    pub sample_limit: u64,
    pub body_size_limit: u64,
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
    pub target_limit: u64,
}

impl ScrapeConfig {
    pub fn interval(&self, g: &GlobalConfig) -> Duration {
        self.scrape_interval.unwrap_or(g.scrape_interval)
    }

    /// The job's timeout: its own, else the global one capped at the interval (as Prometheus).
    pub fn timeout(&self, g: &GlobalConfig) -> Duration {
        self.scrape_timeout
            .unwrap_or_else(|| g.scrape_timeout.min(self.interval(g)))
    }

    pub fn limits(&self, g: &GlobalConfig) -> Limits {
        Limits {
            sample_limit: self.sample_limit.unwrap_or(g.sample_limit),
            body_size_limit: self.body_size_limit.or(g.body_size_limit).unwrap_or(0),
            label_limit: self.label_limit.unwrap_or(g.label_limit),
            label_name_length_limit: self
                .label_name_length_limit
                .unwrap_or(g.label_name_length_limit),
            label_value_length_limit: self
                .label_value_length_limit
                .unwrap_or(g.label_value_length_limit),
            target_limit: self.target_limit.unwrap_or(g.target_limit),
        }
    }

    /// Checks what serde cannot; the error names the field.
    pub fn validate(&self, g: &GlobalConfig) -> Result<(), ConfigError> {
        let err = |field: &str, message: String| ConfigError {
            job: self.job_name.clone(),
            field: field.to_string(),
            message,
        };
        if self.job_name.is_empty() {
            return Err(err("job_name", "must not be empty".into()));
        }
        if let Some(key) = self.unsupported.keys().next() {
            return if UNSUPPORTED_SD.contains(&key.as_str()) {
                Err(err(key, "this service discovery is not supported; use static_configs or file_sd_configs".into()))
            } else {
                Err(err(key, "unknown field".into()))
            };
        }
        if self.interval(g).is_zero() {
            return Err(err("scrape_interval", "must be greater than 0".into()));
        }
        if self.timeout(g) > self.interval(g) {
            return Err(err(
                "scrape_timeout",
                format!(
                    "scrape timeout {} is greater than scrape interval {}",
                    day2_model::format_duration(self.timeout(g)),
                    day2_model::format_duration(self.interval(g))
                ),
            ));
        }
        if self.scheme != "http" && self.scheme != "https" {
            return Err(err(
                "scheme",
                format!("{:?} is not http or https", self.scheme),
            ));
        }
        if !self.metrics_path.starts_with('/') {
            return Err(err(
                "metrics_path",
                format!("{:?} must start with '/'", self.metrics_path),
            ));
        }
        let auths = [
            self.basic_auth.is_some(),
            self.bearer_token.is_some() || self.bearer_token_file.is_some(),
            self.authorization.is_some(),
        ];
        if auths.iter().filter(|a| **a).count() > 1 {
            return Err(err(
                "authorization",
                "at most one of basic_auth, bearer_token(_file) and authorization may be set"
                    .into(),
            ));
        }
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            return Err(err(
                "bearer_token",
                "bearer_token and bearer_token_file are mutually exclusive".into(),
            ));
        }
        if let Some(b) = &self.basic_auth
            && b.password.is_some()
            && b.password_file.is_some()
        {
            return Err(err(
                "basic_auth",
                "password and password_file are mutually exclusive".into(),
            ));
        }
        if let Some(a) = &self.authorization {
            if a.credentials.is_some() && a.credentials_file.is_some() {
                return Err(err(
                    "authorization",
                    "credentials and credentials_file are mutually exclusive".into(),
                ));
            }
            if a.kind
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case("basic"))
            {
                return Err(err(
                    "authorization.type",
                    "use basic_auth instead of authorization type Basic".into(),
                ));
            }
        }
        if let Some(t) = &self.tls_config
            && (t.ca_file.is_some() || t.cert_file.is_some() || t.key_file.is_some())
        {
            return Err(err("tls_config", "ca_file, cert_file and key_file are not supported yet (insecure_skip_verify and server_name are)".into()));
        }
        for (i, s) in self.static_configs.iter().enumerate() {
            for t in &s.targets {
                if t.is_empty() || t.contains('/') {
                    return Err(err(
                        &format!("static_configs[{i}].targets"),
                        format!("{t:?} is not a valid host:port"),
                    ));
                }
            }
            for name in s.labels.keys() {
                if !day2_model::labels::is_valid_label_name(name) {
                    return Err(err(
                        &format!("static_configs[{i}].labels"),
                        format!("{name:?} is not a valid label name"),
                    ));
                }
            }
        }
        for (i, f) in self.file_sd_configs.iter().enumerate() {
            for file in &f.files {
                let ext_ok = [".json", ".yml", ".yaml"].iter().any(|e| file.ends_with(e));
                if !ext_ok {
                    return Err(err(
                        &format!("file_sd_configs[{i}].files"),
                        format!("{file:?} must end in .json, .yml or .yaml"),
                    ));
                }
            }
        }
        crate::relabel::compile(&self.relabel_configs)
            .map_err(|e| err("relabel_configs", e.to_string()))?;
        crate::relabel::compile(&self.metric_relabel_configs)
            .map_err(|e| err("metric_relabel_configs", e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sc(yaml: &str) -> ScrapeConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn defaults_follow_prometheus() {
        let g = GlobalConfig::default();
        let c = sc("job_name: a\nstatic_configs: [{targets: ['h:1']}]\n");
        assert_eq!(c.metrics_path, "/metrics");
        assert_eq!(c.scheme, "http");
        assert!(c.honor_timestamps && !c.honor_labels);
        assert_eq!(c.interval(&g), Duration::from_secs(60));
        assert_eq!(c.timeout(&g), Duration::from_secs(10));
        let short = sc("job_name: a\nscrape_interval: 5s\n");
        assert_eq!(
            short.timeout(&g),
            Duration::from_secs(5),
            "global timeout is capped at the job interval"
        );
        assert!(c.validate(&g).is_ok());
    }

    #[test]
    fn validation_names_job_and_field() {
        let g = GlobalConfig::default();
        let e = sc("job_name: a\nscrape_interval: 5s\nscrape_timeout: 10s\n")
            .validate(&g)
            .unwrap_err();
        assert_eq!(e.field, "scrape_timeout");
        assert!(e.to_string().contains("job \"a\""), "{e}");
        let e = sc("job_name: k\nkubernetes_sd_configs: [{role: pod}]\n")
            .validate(&g)
            .unwrap_err();
        assert_eq!(e.field, "kubernetes_sd_configs");
        assert!(e.message.contains("not supported"));
        let e = sc("job_name: a\nbasic_auth: {username: u}\nbearer_token: x\n")
            .validate(&g)
            .unwrap_err();
        assert_eq!(e.field, "authorization");
        let e = sc("job_name: a\nrelabel_configs: [{action: nope}]\n")
            .validate(&g)
            .unwrap_err();
        assert_eq!(e.field, "relabel_configs");
        let e = sc("job_name: a\nscheme: ftp\n").validate(&g).unwrap_err();
        assert_eq!(e.field, "scheme");
        assert_eq!(
            sc("job_name: a\nbody_size_limit: 10MB\n")
                .limits(&g)
                .body_size_limit,
            10 << 20
        );
    }
}
