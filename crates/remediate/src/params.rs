//! Declared runbook parameters and binding alert labels (or explicit inputs)
//! to them. Every value is checked before a run can start; an error names the
//! parameter and the reason but never repeats the value (a label may carry a
//! secret or a hostile payload that should not land in logs).

use crate::runbook::{ParamSpec, ParamType};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest value accepted for any parameter, in bytes.
pub const MAX_VALUE_LEN: usize = 4096;

/// A checked parameter value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Int(i64),
    Str(String),
}

impl ParamValue {
    pub fn as_text(&self) -> String {
        match self {
            ParamValue::Int(i) => i.to_string(),
            ParamValue::Str(s) => s.clone(),
        }
    }
}

/// The bound parameters of one run, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bound(pub BTreeMap<String, ParamValue>);

impl Bound {
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.0.get(name)
    }
    /// The value as text; empty when absent (never after a successful bind).
    pub fn text(&self, name: &str) -> String {
        self.0
            .get(name)
            .map(ParamValue::as_text)
            .unwrap_or_default()
    }
}

/// Why parameters could not be bound. Never contains the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ParamError {
    #[error("param `{param}` (from {origin}): value refused: {reason}")]
    Invalid {
        param: String,
        origin: String,
        reason: String,
    },
    #[error("param `{param}`: no value ({origin} absent and no default)")]
    Missing { param: String, origin: String },
    #[error("param `{param}` is not declared by the runbook")]
    Undeclared { param: String },
}

/// A declared parameter with its pattern compiled (fully anchored).
#[derive(Debug, Clone)]
pub struct CompiledParam {
    pub spec: ParamSpec,
    pattern: Option<Regex>,
}

/// `^(?:p)$` without `(?s)`: `.` never matches a newline.
pub fn anchor(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

impl CompiledParam {
    /// Compiles the pattern; the error is a message for the `pattern` field.
    pub fn compile(spec: &ParamSpec) -> Result<Self, String> {
        let pattern = match &spec.pattern {
            Some(p) => Some(Regex::new(&anchor(p)).map_err(|e| format!("invalid regex: {e}"))?),
            None => None,
        };
        Ok(CompiledParam {
            spec: spec.clone(),
            pattern,
        })
    }

    /// Checks one raw value. The error is a reason that does not quote the value.
    pub fn check(&self, raw: &str) -> Result<ParamValue, String> {
        if raw.len() > MAX_VALUE_LEN {
            return Err(format!("longer than {MAX_VALUE_LEN} bytes"));
        }
        if raw.contains('\0') {
            return Err("contains a NUL byte".into());
        }
        if let Some(re) = &self.pattern
            && !re.is_match(raw)
        {
            return Err(format!("does not match pattern {}", re.as_str()));
        }
        match self.spec.kind {
            ParamType::String => Ok(ParamValue::Str(raw.to_string())),
            ParamType::Enum => {
                if self.spec.values.iter().any(|v| v == raw) {
                    Ok(ParamValue::Str(raw.to_string()))
                } else {
                    Err(format!("not one of {:?}", self.spec.values))
                }
            }
            ParamType::Int => {
                // Only plain decimal digits with an optional minus sign: no `+`, no spaces.
                let digits = raw.strip_prefix('-').unwrap_or(raw);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err("not an integer".into());
                }
                let n: i64 = raw
                    .parse()
                    .map_err(|_| "integer out of range".to_string())?;
                if let Some(min) = self.spec.min
                    && n < min
                {
                    return Err(format!("less than the minimum {min}"));
                }
                if let Some(max) = self.spec.max
                    && n > max
                {
                    return Err(format!("greater than the maximum {max}"));
                }
                Ok(ParamValue::Int(n))
            }
        }
    }
}

/// Binds every declared parameter: an explicit input (a person starting the
/// run by hand) wins, then the alert label named by `from_label` (an empty
/// label counts as absent), then the default. Inputs naming undeclared
/// parameters are refused.
pub fn bind(
    params: &[CompiledParam],
    labels: &BTreeMap<String, String>,
    inputs: &BTreeMap<String, String>,
) -> Result<Bound, ParamError> {
    if let Some(name) = inputs
        .keys()
        .find(|k| !params.iter().any(|p| &p.spec.name == *k))
    {
        return Err(ParamError::Undeclared {
            param: name.clone(),
        });
    }
    let mut out = BTreeMap::new();
    for p in params {
        let name = &p.spec.name;
        let label = p
            .spec
            .from_label
            .as_ref()
            .and_then(|l| labels.get(l).filter(|v| !v.is_empty()).map(|v| (l, v)));
        let (raw, origin) = if let Some(v) = inputs.get(name) {
            (v.as_str(), "input".to_string())
        } else if let Some((l, v)) = label {
            (v.as_str(), format!("label `{l}`"))
        } else if let Some(d) = &p.spec.default {
            (d.as_str(), "default".to_string())
        } else {
            let origin = match &p.spec.from_label {
                Some(l) => format!("label `{l}`"),
                None => "input".to_string(),
            };
            return Err(ParamError::Missing {
                param: name.clone(),
                origin,
            });
        };
        let v = p.check(raw).map_err(|reason| ParamError::Invalid {
            param: name.clone(),
            origin,
            reason,
        })?;
        out.insert(name.clone(), v);
    }
    Ok(Bound(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, kind: ParamType, pattern: Option<&str>) -> ParamSpec {
        ParamSpec {
            name: name.into(),
            kind,
            pattern: pattern.map(Into::into),
            values: vec![],
            min: None,
            max: None,
            from_label: Some(name.into()),
            default: None,
        }
    }

    #[test]
    fn patterns_are_fully_anchored_and_newline_free() {
        let p =
            CompiledParam::compile(&spec("host", ParamType::String, Some("[a-z0-9.-]+"))).unwrap();
        assert!(p.check("db-1.example").is_ok());
        for bad in [
            "db1; rm -rf / #",
            "x\ny",
            "$(id)",
            "`id`",
            "../../etc/passwd",
            "",
        ] {
            assert!(p.check(bad).is_err(), "{bad:?}");
        }
        let p = CompiledParam::compile(&spec("any", ParamType::String, Some(".*"))).unwrap();
        assert!(p.check("a\nb").is_err(), "`.` must not match a newline");
        assert!(p.check("a\0b").is_err());
    }

    #[test]
    fn refusals_name_the_param_but_not_the_value() {
        let ps =
            vec![CompiledParam::compile(&spec("host", ParamType::String, Some("[a-z]+"))).unwrap()];
        let labels = BTreeMap::from([("host".to_string(), "s3cr3t-token; rm -rf /".to_string())]);
        let err = bind(&ps, &labels, &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`host`") && err.contains("label `host`"),
            "{err}"
        );
        assert!(!err.contains("s3cr3t") && !err.contains("rm -rf"), "{err}");
    }

    #[test]
    fn ints_enums_defaults_and_undeclared_inputs() {
        let mut n = spec("replicas", ParamType::Int, None);
        n.min = Some(1);
        n.max = Some(10);
        n.default = Some("2".into());
        let mut e = spec("mode", ParamType::Enum, None);
        e.values = vec!["soft".into(), "hard".into()];
        let ps: Vec<_> = [n, e]
            .iter()
            .map(|s| CompiledParam::compile(s).unwrap())
            .collect();
        let labels = BTreeMap::from([("mode".to_string(), "soft".to_string())]);
        let b = bind(&ps, &labels, &BTreeMap::new()).unwrap();
        assert_eq!(b.get("replicas"), Some(&ParamValue::Int(2)));
        assert_eq!(b.text("mode"), "soft");
        for bad in ["0", "11", "+3", " 3", "3x", "99999999999999999999"] {
            let inputs = BTreeMap::from([("replicas".to_string(), bad.to_string())]);
            assert!(bind(&ps, &labels, &inputs).is_err(), "{bad}");
        }
        let labels = BTreeMap::from([("mode".to_string(), "rm".to_string())]);
        assert!(bind(&ps, &labels, &BTreeMap::new()).is_err());
        let inputs = BTreeMap::from([("other".to_string(), "x".to_string())]);
        assert!(matches!(
            bind(&ps, &BTreeMap::new(), &inputs),
            Err(ParamError::Undeclared { .. })
        ));
    }
}
