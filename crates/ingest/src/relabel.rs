//! Prometheus `relabel_configs` / `metric_relabel_configs`: the same actions,
//! defaults, regex anchoring and `$1` expansion as Prometheus.

use day2_model::labels::is_valid_label_name;
use day2_model::{Labels, LabelsBuilder};
use regex::Regex;
use serde::Deserialize;

/// One relabel rule as written in YAML (Prometheus's field names and defaults).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
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

/// Why a rule is invalid: which rule (0-based) and what is wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("relabel rule {index}: {message}")]
pub struct RelabelError {
    pub index: usize,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

/// A validated, compiled rule.
#[derive(Debug, Clone)]
pub struct RelabelRule {
    action: Action,
    source_labels: Vec<String>,
    separator: String,
    target_label: String,
    regex: Regex,
    modulus: u64,
    replacement: String,
}

const DEFAULT_REGEX: &str = "(.*)";

/// Validates and compiles a list of rules (error names the rule index and field).
pub fn compile(cfgs: &[RelabelConfig]) -> Result<Vec<RelabelRule>, RelabelError> {
    cfgs.iter()
        .enumerate()
        .map(|(i, c)| compile_one(c).map_err(|message| RelabelError { index: i, message }))
        .collect()
}

fn compile_one(c: &RelabelConfig) -> Result<RelabelRule, String> {
    let action_name = c
        .action
        .as_deref()
        .unwrap_or("replace")
        .to_ascii_lowercase();
    let action = match action_name.as_str() {
        "replace" => Action::Replace,
        "keep" => Action::Keep,
        "drop" => Action::Drop,
        "keepequal" => Action::KeepEqual,
        "dropequal" => Action::DropEqual,
        "hashmod" => Action::HashMod,
        "labelmap" => Action::LabelMap,
        "labeldrop" => Action::LabelDrop,
        "labelkeep" => Action::LabelKeep,
        "lowercase" => Action::Lowercase,
        "uppercase" => Action::Uppercase,
        other => return Err(format!("action: unknown relabel action {other:?}")),
    };
    let pattern = c.regex.as_deref().unwrap_or(DEFAULT_REGEX);
    let regex = Regex::new(&format!("^(?s:{pattern})$"))
        .map_err(|e| format!("regex: invalid regular expression {pattern:?}: {e}"))?;
    let target = c.target_label.clone().unwrap_or_default();
    let needs_target = matches!(
        action,
        Action::Replace
            | Action::HashMod
            | Action::Lowercase
            | Action::Uppercase
            | Action::KeepEqual
            | Action::DropEqual
    );
    if needs_target && target.is_empty() {
        return Err(format!(
            "target_label: the {action_name} action requires a target_label"
        ));
    }
    if action == Action::Replace
        && !target.is_empty()
        && !target.contains('$')
        && !is_valid_label_name(&target)
    {
        return Err(format!(
            "target_label: {target:?} is not a valid label name"
        ));
    }
    if matches!(
        action,
        Action::HashMod
            | Action::Lowercase
            | Action::Uppercase
            | Action::KeepEqual
            | Action::DropEqual
    ) && !is_valid_label_name(&target)
    {
        return Err(format!(
            "target_label: {target:?} is not a valid label name"
        ));
    }
    if action == Action::HashMod && c.modulus.unwrap_or(0) == 0 {
        return Err("modulus: the hashmod action requires a non-zero modulus".into());
    }
    if matches!(action, Action::LabelDrop | Action::LabelKeep)
        && (!c.source_labels.is_empty()
            || c.target_label.is_some()
            || c.modulus.is_some()
            || c.separator.is_some()
            || c.replacement.is_some())
    {
        return Err(format!(
            "the {action_name} action takes only 'regex', no other fields"
        ));
    }
    if matches!(action, Action::KeepEqual | Action::DropEqual)
        && (c.regex.is_some()
            || c.modulus.is_some()
            || c.separator.is_some()
            || c.replacement.is_some())
    {
        return Err(format!(
            "the {action_name} action takes only 'source_labels' and 'target_label', no other fields"
        ));
    }
    for s in &c.source_labels {
        if !is_valid_label_name(s) {
            return Err(format!("source_labels: {s:?} is not a valid label name"));
        }
    }
    Ok(RelabelRule {
        action,
        source_labels: c.source_labels.clone(),
        separator: c.separator.clone().unwrap_or_else(|| ";".into()),
        target_label: target,
        regex,
        modulus: c.modulus.unwrap_or(0),
        replacement: c.replacement.clone().unwrap_or_else(|| "$1".into()),
    })
}

/// Applies the rules in order; `None` means the series/target was dropped.
pub fn apply(labels: &Labels, rules: &[RelabelRule]) -> Option<Labels> {
    if rules.is_empty() {
        return Some(labels.clone());
    }
    let mut b = labels.to_builder();
    for r in rules {
        if !apply_one(&mut b, r) {
            return None;
        }
    }
    Some(b.build())
}

/// Applies rules to a builder in place; `false` means dropped.
pub fn apply_to_builder(b: &mut LabelsBuilder, rules: &[RelabelRule]) -> bool {
    rules.iter().all(|r| apply_one(b, r))
}

fn apply_one(b: &mut LabelsBuilder, r: &RelabelRule) -> bool {
    let val = r
        .source_labels
        .iter()
        .map(|n| b.get(n).unwrap_or(""))
        .collect::<Vec<_>>()
        .join(&r.separator);
    match r.action {
        Action::Keep => return r.regex.is_match(&val),
        Action::Drop => return !r.regex.is_match(&val),
        Action::KeepEqual => return b.get(&r.target_label).unwrap_or("") == val,
        Action::DropEqual => return b.get(&r.target_label).unwrap_or("") != val,
        Action::Replace => {
            if let Some(caps) = r.regex.captures(&val) {
                let mut target = String::new();
                caps.expand(&r.target_label, &mut target);
                if is_valid_label_name(&target) {
                    let mut res = String::new();
                    caps.expand(&r.replacement, &mut res);
                    if res.is_empty() {
                        b.del(&target);
                    } else {
                        b.set(target, res);
                    }
                }
            }
        }
        Action::Lowercase => {
            b.set(r.target_label.clone(), val.to_lowercase());
        }
        Action::Uppercase => {
            b.set(r.target_label.clone(), val.to_uppercase());
        }
        Action::HashMod => {
            use md5::Digest;
            let sum = md5::Md5::digest(val.as_bytes());
            // Prometheus takes the last 8 bytes, big endian
            let h = u64::from_be_bytes(sum[8..16].try_into().expect("md5 is 16 bytes"));
            b.set(r.target_label.clone(), (h % r.modulus).to_string());
        }
        Action::LabelMap => {
            let pairs: Vec<(String, String)> = b
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            for (name, value) in pairs {
                if let Some(caps) = r.regex.captures(&name) {
                    let mut new = String::new();
                    caps.expand(&r.replacement, &mut new);
                    b.set(new, value);
                }
            }
        }
        Action::LabelDrop => {
            b.retain(|l| !r.regex.is_match(&l.name));
        }
        Action::LabelKeep => {
            b.retain(|l| r.regex.is_match(&l.name));
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(yaml: &str) -> Vec<RelabelRule> {
        let cfgs: Vec<RelabelConfig> = serde_yaml_ng::from_str(yaml).unwrap();
        compile(&cfgs).unwrap()
    }

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn replace_with_groups_and_defaults() {
        let r = rules(
            "- source_labels: [__address__]\n  regex: '([^:]+):\\d+'\n  target_label: host\n- source_labels: [a, b]\n  target_label: ab\n",
        );
        let out = apply(
            &l(&[("__address__", "web-1:9100"), ("a", "x"), ("b", "y")]),
            &r,
        )
        .unwrap();
        assert_eq!(out.get("host"), Some("web-1"));
        assert_eq!(out.get("ab"), Some("x;y"));
        // no match leaves labels alone; empty result deletes the target
        let r = rules(
            "- source_labels: [a]\n  regex: 'zzz'\n  target_label: a\n  replacement: gone\n- source_labels: [missing]\n  target_label: b\n",
        );
        let out = apply(&l(&[("a", "x"), ("b", "y")]), &r).unwrap();
        assert_eq!(out.get("a"), Some("x"));
        assert_eq!(out.get("b"), None);
        // target label expanded from groups
        let r = rules(
            "- source_labels: [k]\n  regex: '(.+)=(.+)'\n  target_label: 'tag_$1'\n  replacement: '$2'\n",
        );
        assert_eq!(
            apply(&l(&[("k", "env=prod")]), &r).unwrap().get("tag_env"),
            Some("prod")
        );
    }

    #[test]
    fn keep_drop_and_equal_variants() {
        let keep = rules("- source_labels: [job]\n  regex: 'api|web'\n  action: keep\n");
        assert!(apply(&l(&[("job", "api")]), &keep).is_some());
        assert!(apply(&l(&[("job", "api2")]), &keep).is_none(), "anchored");
        let drop = rules("- source_labels: [__name__]\n  regex: 'go_.*'\n  action: drop\n");
        assert!(apply(&l(&[("__name__", "go_gc")]), &drop).is_none());
        assert!(apply(&l(&[("__name__", "up")]), &drop).is_some());
        let ke = rules("- source_labels: [a]\n  target_label: b\n  action: keepequal\n");
        assert!(apply(&l(&[("a", "1"), ("b", "1")]), &ke).is_some());
        assert!(apply(&l(&[("a", "1"), ("b", "2")]), &ke).is_none());
        let de = rules("- source_labels: [a]\n  target_label: b\n  action: dropequal\n");
        assert!(apply(&l(&[("a", "1"), ("b", "1")]), &de).is_none());
    }

    #[test]
    fn label_map_drop_keep_case_and_hashmod() {
        let r = rules(
            "- regex: '__meta_(.+)'\n  action: labelmap\n- regex: '__meta_.*'\n  action: labeldrop\n",
        );
        let out = apply(&l(&[("__meta_zone", "eu"), ("job", "x")]), &r).unwrap();
        assert_eq!(out, l(&[("zone", "eu"), ("job", "x")]));
        let r = rules("- regex: 'job|instance'\n  action: labelkeep\n");
        assert_eq!(
            apply(&l(&[("job", "x"), ("other", "y")]), &r).unwrap(),
            l(&[("job", "x")])
        );
        let r = rules(
            "- source_labels: [a]\n  target_label: lo\n  action: lowercase\n- source_labels: [a]\n  target_label: up\n  action: uppercase\n",
        );
        let out = apply(&l(&[("a", "MiX")]), &r).unwrap();
        assert_eq!((out.get("lo"), out.get("up")), (Some("mix"), Some("MIX")));
        let r = rules(
            "- source_labels: [__address__]\n  target_label: shard\n  modulus: 8\n  action: hashmod\n",
        );
        let a = apply(&l(&[("__address__", "host-1:9100")]), &r).unwrap();
        let shard: u64 = a.get("shard").unwrap().parse().unwrap();
        assert!(shard < 8);
        // deterministic
        assert_eq!(apply(&l(&[("__address__", "host-1:9100")]), &r).unwrap(), a);
    }

    #[test]
    fn invalid_rules_name_index_and_field() {
        let bad = |yaml: &str| -> String {
            let cfgs: Vec<RelabelConfig> = serde_yaml_ng::from_str(yaml).unwrap();
            compile(&cfgs).unwrap_err().to_string()
        };
        assert!(bad("- action: keep\n- action: nope\n").starts_with("relabel rule 1: action"));
        assert!(
            bad("- source_labels: [a]\n  action: hashmod\n  target_label: t\n").contains("modulus")
        );
        assert!(bad("- source_labels: [a]\n  action: replace\n").contains("target_label"));
        assert!(bad("- regex: '('\n  action: keep\n").contains("regex"));
        assert!(
            bad("- regex: 'x'\n  action: labeldrop\n  target_label: y\n").contains("only 'regex'")
        );
        assert!(
            serde_yaml_ng::from_str::<Vec<RelabelConfig>>("- regexx: a\n").is_err(),
            "unknown fields refused"
        );
    }
}
