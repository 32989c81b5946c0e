//! The `rules:` section of day2.yml (the rule files themselves are listed in
//! Prometheus's top-level `rule_files`; interval and external labels come
//! from Prometheus's `global` block).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::manager::ManagerOptions;

/// Settings of alert evaluation, as Prometheus's `--rules.alert.*` flags.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesSection {
    /// How long `for` state survives an outage of day2.
    #[serde(default = "hour", deserialize_with = "dur")]
    pub outage_tolerance: Duration,
    /// Least time a restored alert waits before it fires again.
    #[serde(default = "ten_minutes", deserialize_with = "dur")]
    pub for_grace_period: Duration,
    /// How often a firing alert is re-sent.
    #[serde(default = "minute", deserialize_with = "dur")]
    pub resend_delay: Duration,
    /// Base of generator URLs; defaults to `http://<server.listen>`.
    #[serde(default)]
    pub external_url: Option<String>,
}

impl Default for RulesSection {
    fn default() -> Self {
        RulesSection {
            outage_tolerance: hour(),
            for_grace_period: ten_minutes(),
            resend_delay: minute(),
            external_url: None,
        }
    }
}

impl RulesSection {
    /// Manager options for this section and the global evaluation interval.
    pub fn options(&self, evaluation_interval: Duration) -> ManagerOptions {
        ManagerOptions {
            evaluation_interval,
            outage_tolerance: self.outage_tolerance,
            for_grace_period: self.for_grace_period,
            resend_delay: self.resend_delay,
        }
    }
}

fn hour() -> Duration {
    Duration::from_secs(3600)
}
fn ten_minutes() -> Duration {
    Duration::from_secs(600)
}
fn minute() -> Duration {
    Duration::from_secs(60)
}

fn dur<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    day2_model::parse_duration(&s).map_err(serde::de::Error::custom)
}
