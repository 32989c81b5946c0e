//! Prometheus `relabel_configs` / `metric_relabel_configs`.
//! (Being written; signatures are the contract other modules code against.)

use day2_model::Labels;
use serde::Deserialize;

/// One relabel rule as written in YAML (Prometheus's field names and defaults).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RelabelConfig {
    #[serde(default)]
    pub source_labels: Vec<String>,
    pub separator: Option<String>,
    pub target_label: Option<String>,
    pub regex: Option<String>,
    pub modulus: Option<u64>,
    pub replacement: Option<String>,
    pub action: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("relabel rule {index}: {message}")]
pub struct RelabelError {
    pub index: usize,
    pub message: String,
}

/// A validated, compiled rule.
#[derive(Debug, Clone)]
pub struct RelabelRule {
    _private: (),
}

/// Validates and compiles a list of rules (error names the rule index and field).
pub fn compile(_cfgs: &[RelabelConfig]) -> Result<Vec<RelabelRule>, RelabelError> {
    todo!("relabel helper")
}

/// Applies the rules in order; `None` means the series/target was dropped.
pub fn apply(_labels: &Labels, _rules: &[RelabelRule]) -> Option<Labels> {
    todo!("relabel helper")
}
