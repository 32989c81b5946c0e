//! `day2.yml`: one file, one section per crate. Sections whose format exists
//! elsewhere keep it (`global` and `scrape_configs` are Prometheus's).
//! Errors name the file, the line and the field.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use day2_ingest::scrape::{GlobalConfig, ScrapeConfig};
use serde::{Deserialize, Deserializer};

/// The configuration used when no `--config` is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../default.yml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Day2Config {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub storage: StorageSection,
    #[serde(default)]
    pub remote_write: RemoteWriteSection,
    #[serde(default)]
    pub host_metrics: SelfScrapeSection,
    #[serde(default)]
    pub self_metrics: SelfScrapeSection,
    #[serde(default)]
    pub query: QuerySection,
    #[serde(default)]
    pub global: GlobalConfig,
    #[serde(default)]
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Prometheus's list of rule-file globs, relative to this file's directory.
    #[serde(default)]
    pub rule_files: Vec<String>,
    #[serde(default)]
    pub rules: day2_rules::config::RulesSection,
    /// The alert hub: an unchanged `alertmanager.yml` plus day2's settings.
    #[serde(default)]
    pub alertmanager: Option<AlertmanagerSection>,
    /// Deployments from CI: post-deploy analysis, alert annotations, DORA.
    #[serde(default)]
    pub deployments: day2_deploy::DeploymentsSection,
    /// Target-tracking autoscaling policies.
    #[serde(default)]
    pub autoscaling: day2_autoscale::AutoscalingSection,
    /// Runbooks, their guardrails and executors (`day2_remediate`).
    #[serde(default)]
    pub remediation: Option<day2_remediate::RemediationConfig>,
    /// On-call: users, schedules, escalation policies, paging receivers.
    #[serde(default)]
    pub oncall: Option<day2_oncall::OnCallConfig>,
    /// Incidents: receivers that open them, communications, the status page.
    #[serde(default)]
    pub incidents: Option<day2_incident::IncidentsConfig>,
}

/// `alertmanager:` in day2.yml. Without it the alert hub does not run.
///
/// ```yaml
/// alertmanager:
///   config_file: alertmanager.yml   # relative to day2.yml (or `config:` inline)
///   external_url: https://day2.example.com
///   egress:
///     allow: [10.0.0.0/8]           # restricted ranges notifications may reach
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerSection {
    /// Path of an `alertmanager.yml`, relative to day2.yml.
    #[serde(default)]
    pub config_file: Option<PathBuf>,
    /// The same content inline.
    #[serde(default)]
    pub config: Option<serde_yaml_ng::Value>,
    /// URL of day2 as receivers see it (`externalURL` in notifications).
    #[serde(default)]
    pub external_url: Option<String>,
    #[serde(default)]
    pub egress: EgressSection,
    /// day2's recurring, matcher-scoped maintenance windows over the named
    /// `time_intervals` of alertmanager.yml.
    #[serde(default)]
    pub maintenance_windows: Vec<day2_alerthub::MaintenanceWindow>,
}

/// Outbound allowlist for notifications: loopback, private and link-local
/// targets are refused unless a CIDR here contains them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressSection {
    #[serde(default)]
    pub allow: Vec<String>,
}

/// A loaded alert-hub configuration.
pub struct LoadedHub {
    pub config: day2_alerthub::HubConfig,
    pub settings: day2_alerthub::HubSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub auth: AuthSection,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: default_listen(),
            data_dir: default_data_dir(),
            auth: AuthSection::default(),
        }
    }
}

/// API tokens for mutating endpoints. Without any, only loopback clients may mutate.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

/// A token given by reference (`env:NAME` or `file:/path`), never inline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub name: String,
    pub token: String,
}

impl AuthSection {
    /// Resolves every token reference; errors name the token, never its value.
    pub fn resolve(&self) -> Result<Vec<day2_server::auth::ApiToken>, (String, String)> {
        let mut out = Vec::new();
        for (i, t) in self.tokens.iter().enumerate() {
            let field = format!("server.auth.tokens[{i}].token");
            let secret = if let Some(var) = t.token.strip_prefix("env:") {
                std::env::var(var).map_err(|_| {
                    (
                        field.clone(),
                        format!("environment variable {var} is not set"),
                    )
                })?
            } else if let Some(path) = t.token.strip_prefix("file:") {
                std::fs::read_to_string(path)
                    .map_err(|e| (field.clone(), format!("cannot read {path}: {e}")))?
                    .trim()
                    .to_string()
            } else {
                return Err((field, "must reference the secret as env:NAME or file:/path (secrets are not written in config files)".into()));
            };
            if secret.len() < 16 {
                return Err((
                    field,
                    format!("token {:?} is shorter than 16 characters", t.name),
                ));
            }
            out.push(day2_server::auth::ApiToken {
                name: t.name.clone(),
                secret,
            });
        }
        Ok(out)
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}

/// How often the WAL is flushed to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncMode {
    Always,
    Interval,
    Never,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    #[serde(default = "default_fsync")]
    pub fsync: FsyncMode,
    #[serde(default = "default_fsync_interval", deserialize_with = "duration")]
    pub fsync_interval: Duration,
    #[serde(default = "default_ooo", deserialize_with = "duration")]
    pub out_of_order_window: Duration,
    #[serde(default = "default_block", deserialize_with = "duration")]
    pub block_duration: Duration,
    #[serde(default = "default_retention", deserialize_with = "duration")]
    pub retention_time: Duration,
    /// Bytes; 0 disables size-based retention. Accepts `512MB`, `10GB`, ...
    #[serde(default, deserialize_with = "bytes")]
    pub retention_size: u64,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            fsync: default_fsync(),
            fsync_interval: default_fsync_interval(),
            out_of_order_window: default_ooo(),
            block_duration: default_block(),
            retention_time: default_retention(),
            retention_size: 0,
        }
    }
}

fn default_fsync() -> FsyncMode {
    FsyncMode::Interval
}
fn default_fsync_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_ooo() -> Duration {
    Duration::from_secs(600)
}
fn default_block() -> Duration {
    Duration::from_secs(2 * 3600)
}
fn default_retention() -> Duration {
    Duration::from_secs(15 * 86400)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteSection {
    /// Largest compressed request body.
    #[serde(default = "default_max_body", deserialize_with = "bytes")]
    pub max_body_size: u64,
    /// Largest decoded request body (a decode bomb is refused before allocating).
    #[serde(default = "default_max_decoded", deserialize_with = "bytes")]
    pub max_decoded_size: u64,
    /// Samples per second accepted over all senders; 0 disables the limit.
    #[serde(default)]
    pub rate_limit_samples_per_second: u64,
}

impl Default for RemoteWriteSection {
    fn default() -> Self {
        RemoteWriteSection {
            max_body_size: default_max_body(),
            max_decoded_size: default_max_decoded(),
            rate_limit_samples_per_second: 0,
        }
    }
}

fn default_max_body() -> u64 {
    32 << 20
}
fn default_max_decoded() -> u64 {
    256 << 20
}

/// PromQL engine limits (Prometheus's `--query.*` flags). Changes need a restart.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuerySection {
    #[serde(default = "default_lookback", deserialize_with = "duration")]
    pub lookback_delta: Duration,
    #[serde(default = "default_query_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    #[serde(default = "default_max_samples")]
    pub max_samples: usize,
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
}

impl Default for QuerySection {
    fn default() -> Self {
        QuerySection {
            lookback_delta: default_lookback(),
            timeout: default_query_timeout(),
            max_samples: default_max_samples(),
            max_concurrency: default_max_concurrency(),
        }
    }
}

fn default_lookback() -> Duration {
    Duration::from_secs(300)
}
fn default_query_timeout() -> Duration {
    Duration::from_secs(120)
}
fn default_max_samples() -> usize {
    50_000_000
}
fn default_max_concurrency() -> usize {
    20
}

/// An in-process scrape target (host collector or day2's own metrics).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfScrapeSection {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Defaults to the global scrape interval.
    #[serde(default, deserialize_with = "opt_duration")]
    pub scrape_interval: Option<Duration>,
    /// `job` label; defaults to `node` for host metrics and `day2` for self metrics.
    pub job: Option<String>,
}

impl Default for SelfScrapeSection {
    fn default() -> Self {
        SelfScrapeSection {
            enabled: true,
            scrape_interval: None,
            job: None,
        }
    }
}

fn yes() -> bool {
    true
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    day2_model::parse_duration(&s).map_err(serde::de::Error::custom)
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u64),
        S(String),
    }
    match Raw::deserialize(d)? {
        Raw::N(n) => Ok(n),
        Raw::S(s) => parse_bytes(&s).map_err(serde::de::Error::custom),
    }
}

/// Prometheus-style sizes (`512MB`, `10GB`, powers of 1024), read as the scrape config reads them.
pub use day2_ingest::scrape::config::parse_size as parse_bytes;

/// A configuration error with its place: `file:line: field: message`.
pub type ConfigError = day2_yamlerr::LocatedError;

impl Day2Config {
    /// Reads and validates a config file and the rule files it names.
    pub fn load(path: &Path) -> Result<Day2Config, ConfigError> {
        let cfg = Self::load_file(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.load_rule_groups(base).map_err(|e| match e {
            day2_rules::Error::File(located) => located,
            other => ConfigError {
                file: path.display().to_string(),
                line: None,
                column: None,
                field: "rule_files".into(),
                message: other.to_string(),
            },
        })?;
        cfg.load_alertmanager(base, &path.display().to_string())?;
        let remediation = cfg.load_remediation(base, path)?;
        crate::rollbackwire::check_config(
            &cfg.deployments,
            remediation.as_ref().map(|r| &r.runbooks),
        )
        .map_err(|(field, msg)| match day2_yamlerr::read(path) {
            Ok(text) => day2_yamlerr::at_field(&text, &path.display().to_string(), &field, msg),
            Err(e) => e,
        })?;
        if let Some(r) = &remediation {
            crate::loopwire::check_escalations(&cfg, &r.runbooks, &path.display().to_string())
                .map_err(
                    |(file, field, msg)| match day2_yamlerr::read(Path::new(&file)) {
                        Ok(text) => day2_yamlerr::at_field(&text, &file, &field, msg),
                        Err(e) => e,
                    },
                )?;
        }
        Ok(cfg)
    }

    /// Loads the runbooks (inline and `runbooks_dir`) and executor settings
    /// of the `remediation` section, if any; errors are located in day2.yml
    /// or the runbook file.
    pub fn load_remediation(
        &self,
        base: &Path,
        path: &Path,
    ) -> Result<Option<crate::remediatewire::LoadedRemediation>, ConfigError> {
        let Some(sec) = &self.remediation else {
            return Ok(None);
        };
        let file = path.display().to_string();
        let text = day2_yamlerr::read(path)?;
        if !sec.receivers.is_empty() && self.alertmanager.is_none() {
            return Err(day2_yamlerr::at_field(
                &text,
                &file,
                "remediation.receivers",
                "receivers need the alert hub (an alertmanager section)",
            ));
        }
        let runbooks =
            day2_remediate::RunbookSet::from_config(sec, &text, &file, "remediation", Some(base))?;
        let settings =
            day2_remediate::runtime::Settings::from_config(sec, base).map_err(|(field, msg)| {
                day2_yamlerr::at_field(&text, &file, &format!("remediation.{field}"), msg)
            })?;
        Ok(Some(crate::remediatewire::LoadedRemediation {
            runbooks,
            settings,
        }))
    }

    /// Loads and validates the alert hub's configuration, if any. `base` is
    /// day2.yml's directory; errors name the alertmanager.yml file and line.
    pub fn load_alertmanager(
        &self,
        base: &Path,
        day2_file: &str,
    ) -> Result<Option<LoadedHub>, ConfigError> {
        let Some(sec) = &self.alertmanager else {
            return Ok(None);
        };
        let located = |file: &str, field: &str, message: String| ConfigError {
            file: file.to_string(),
            line: None,
            column: None,
            field: field.to_string(),
            message,
        };
        let mut tmpl_base = base.to_path_buf();
        let (text, file) = match (&sec.config_file, &sec.config) {
            (Some(_), Some(_)) => {
                return Err(located(
                    day2_file,
                    "alertmanager",
                    "config_file and config are mutually exclusive".into(),
                ));
            }
            (None, None) => {
                return Err(located(
                    day2_file,
                    "alertmanager",
                    "one of config_file or config is required".into(),
                ));
            }
            (Some(p), None) => {
                let full = base.join(p);
                if let Some(dir) = full.parent() {
                    tmpl_base = dir.to_path_buf();
                }
                let file = full.display().to_string();
                let text = std::fs::read_to_string(&full)
                    .map_err(|e| located(&file, "", format!("cannot read: {e}")))?;
                (text, file)
            }
            (None, Some(v)) => (
                serde_yaml_ng::to_string(v)
                    .map_err(|e| located(day2_file, "alertmanager.config", e.to_string()))?,
                format!("{day2_file} (alertmanager.config)"),
            ),
        };
        let config = day2_alerthub::load_str(&text).map_err(|e| ConfigError {
            file: file.clone(),
            line: e.line,
            column: None,
            field: e.field.clone(),
            message: e.message.clone(),
        })?;
        let egress = day2_alerthub::EgressPolicy::from_list(&sec.egress.allow)
            .map_err(|(i, m)| located(day2_file, &format!("alertmanager.egress.allow[{i}]"), m))?;
        day2_alerthub::silence::validate_maintenance_windows(
            &sec.maintenance_windows,
            &config.time_intervals,
        )
        .map_err(|(f, m)| located(day2_file, &format!("alertmanager.{f}"), m))?;
        let templates = day2_alerthub::render::Templates::load(&config, &tmpl_base)
            .map_err(|m| located(&file, "templates", m))?;
        let mut internal_receivers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (field, receiver, sink) in self.internal_receivers() {
            if config.receiver(&receiver).is_none() {
                let msg = format!("receiver {receiver:?} is not defined in {file}");
                return Err(located(day2_file, &field, msg));
            }
            internal_receivers.entry(receiver).or_default().push(sink);
        }
        Ok(Some(LoadedHub {
            config,
            settings: day2_alerthub::HubSettings {
                external_url: sec
                    .external_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{}", self.server.listen)),
                egress,
                config_text: text,
                templates: Some(templates),
                maintenance_windows: sec.maintenance_windows.clone(),
                internal_receivers,
            },
        }))
    }

    /// Receivers of `alertmanager.yml` that day2 features take over (see
    /// `alerthub::internal`): (field path in day2.yml, receiver, sink name).
    fn internal_receivers(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        if let Some(r) = &self.remediation {
            for (i, receiver) in r.receivers.iter().enumerate() {
                out.push((
                    format!("remediation.receivers[{i}]"),
                    receiver.clone(),
                    crate::remediatewire::SINK.to_string(),
                ));
            }
        }
        out.extend(crate::oncallwire::internal_receivers(self));
        out.extend(crate::incidentwire::internal_receivers(self));
        out
    }

    /// Loads the rule groups of `rule_files` (relative to `base`).
    pub fn load_rule_groups(
        &self,
        base: &Path,
    ) -> Result<Vec<day2_rules::Group>, day2_rules::Error> {
        let paths = day2_rules::manager::expand_patterns(&self.rule_files, base)?;
        day2_rules::manager::load_groups(&paths, self.global.evaluation_interval, false)
    }

    fn load_file(path: &Path) -> Result<Day2Config, ConfigError> {
        let text = day2_yamlerr::read(path)?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates config text; `file` is only used in messages.
    pub fn parse(text: &str, file: &str) -> Result<Day2Config, ConfigError> {
        let cfg: Day2Config = day2_yamlerr::from_str(text, file)?;
        cfg.validate()
            .map_err(|(path, msg)| day2_yamlerr::at_field(text, file, &path, msg))?;
        crate::peoplewire::validate(&cfg)
            .map_err(|(path, msg)| day2_oncall::config::locate(text, file, &path, msg))?;
        Ok(cfg)
    }

    /// Checks what the types cannot: returns the field path and the message.
    fn validate(&self) -> Result<(), (String, String)> {
        self.server.auth.resolve()?;
        if self.storage.block_duration < Duration::from_secs(60) {
            return Err((
                "storage.block_duration".into(),
                "must be at least 1m".into(),
            ));
        }
        if self.storage.fsync == FsyncMode::Interval && self.storage.fsync_interval.is_zero() {
            return Err((
                "storage.fsync_interval".into(),
                "must be greater than 0 with fsync: interval".into(),
            ));
        }
        if self.remote_write.max_decoded_size < self.remote_write.max_body_size {
            return Err((
                "remote_write.max_decoded_size".into(),
                "must not be smaller than remote_write.max_body_size".into(),
            ));
        }
        let mut jobs = std::collections::HashSet::new();
        for (i, sc) in self.scrape_configs.iter().enumerate() {
            if !jobs.insert(sc.job_name.clone()) {
                return Err((
                    format!("scrape_configs[{i}].job_name"),
                    format!("duplicate job name {:?}", sc.job_name),
                ));
            }
            sc.validate(&self.global)
                .map_err(|e| (format!("scrape_configs[{i}]"), e.to_string()))?;
        }
        self.deployments
            .validate()
            .map_err(|(f, m)| (format!("deployments.{f}"), m))?;
        self.autoscaling
            .validate()
            .map_err(|(f, m)| (format!("autoscaling.{f}"), m))?;
        crate::autoscalewire::check_config(&self.autoscaling, self.remediation.as_ref())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let cfg = Day2Config::parse(EMBEDDED_DEFAULT, "<embedded>").unwrap();
        assert_eq!(cfg.server.listen.to_string(), "127.0.0.1:9090");
        assert_eq!(cfg.server.data_dir, PathBuf::from("./data"));
        assert!(cfg.host_metrics.enabled);
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let text = "server:\n  listen: 127.0.0.1:9090\nstorage:\n  retention_tme: 1d\n";
        let e = Day2Config::parse(text, "day2.yml").unwrap_err().to_string();
        assert!(e.starts_with("day2.yml:4:"), "{e}");
        assert!(e.contains("retention_tme"), "{e}");
    }

    #[test]
    fn bad_duration_names_the_field() {
        let text = "storage:\n  fsync: interval\n  fsync_interval: 5 seconds\n";
        let e = Day2Config::parse(text, "day2.yml").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert_eq!(e.field, "storage.fsync_interval", "{e}");
        assert!(e.message.contains("5 seconds"), "{e}");
    }

    #[test]
    fn validation_errors_are_located() {
        let text = "remote_write:\n  max_body_size: 64MB\n  max_decoded_size: 1MB\n";
        let e = Day2Config::parse(text, "day2.yml").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(
            e.to_string()
                .starts_with("day2.yml:3: remote_write.max_decoded_size:"),
            "{e}"
        );
    }

    #[test]
    fn deployment_and_autoscaling_errors_are_located() {
        let text = "deployments:\n  services:\n    api:\n      analysis:\n        window: 1m\n        checks:\n          - name: errors\n            expr: 'sum(rate(x{service=\"{{ service }}\"}[1m])'\n            compare: { max_value: 1 }\n";
        let e = Day2Config::parse(text, "day2.yml").unwrap_err();
        assert_eq!(
            (e.line, e.field.as_str()),
            (Some(8), "deployments.services.api.analysis.checks[0].expr"),
            "{e}"
        );
        let text = "autoscaling:\n  policies:\n    - name: web\n      metric: up\n      target_value: 1\n      min: 1\n      max: 2\n      target: { kind: exec, set: [scale] }\n";
        let e = Day2Config::parse(text, "day2.yml").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("day2.yml:8: autoscaling.policies[0].target.set:"),
            "{e}"
        );
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_bytes("512MB").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("0").unwrap(), 0);
        assert!(parse_bytes("12 parsecs").is_err());
    }
}
