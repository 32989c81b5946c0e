//! Inhibition: a firing alert matching a rule's source mutes alerts matching
//! its target when the `equal` labels have the same values on both (a missing
//! label counts as the empty value, so "missing on both" is equal).
//!
//! An alert that matches both the source and the target side of a rule is
//! never inhibited through that rule by an alert that also matches both sides
//! (this includes itself); Alertmanager's rule against self-inhibition.
//! Resolved source alerts (ends_at <= now) inhibit nothing.

use crate::alert::{Alert, Fingerprint};
use crate::matchers::Matchers;
use day2_model::Labels;
use jiff::Timestamp;
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct InhibitRule {
    /// Position in `inhibit_rules`.
    pub index: usize,
    pub source: Matchers,
    pub target: Matchers,
    pub equal: Vec<String>,
}

impl InhibitRule {
    fn equal_values(&self, labels: &Labels) -> Vec<String> {
        self.equal
            .iter()
            .map(|n| labels.get(n).unwrap_or("").to_string())
            .collect()
    }
}

/// Which rule and which source alert inhibit an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inhibition {
    pub rule: usize,
    pub source: Fingerprint,
}

#[derive(Debug, Clone, Default)]
pub struct Inhibitor {
    rules: Vec<InhibitRule>,
}

impl Inhibitor {
    pub fn new(rules: Vec<InhibitRule>) -> Self {
        Inhibitor { rules }
    }

    pub fn rules(&self) -> &[InhibitRule] {
        &self.rules
    }

    /// Is the alert with `labels` inhibited by one of `alerts` at `now`?
    /// Returns the first rule (in config order) and its source alert.
    pub fn inhibited_by<'a>(
        &self,
        labels: &Labels,
        alerts: impl IntoIterator<Item = &'a Alert> + Clone,
        now: Timestamp,
    ) -> Option<Inhibition> {
        for rule in &self.rules {
            if !rule.target.matches(labels) {
                continue;
            }
            let two_sided = rule.source.matches(labels);
            let want = rule.equal_values(labels);
            for a in alerts.clone() {
                if a.is_resolved_at(now) || !rule.source.matches(&a.labels) {
                    continue;
                }
                if rule.equal_values(&a.labels) != want {
                    continue;
                }
                if two_sided && rule.target.matches(&a.labels) {
                    continue;
                }
                return Some(Inhibition {
                    rule: rule.index,
                    source: a.fingerprint(),
                });
            }
        }
        None
    }

    /// Indexes the source side of every rule over a snapshot of alerts, so
    /// that many candidates can be checked in O(rules) each.
    pub fn index<'a>(
        &'a self,
        alerts: impl IntoIterator<Item = &'a Alert>,
        now: Timestamp,
    ) -> InhibitIndex<'a> {
        let mut per_rule: Vec<HashMap<Vec<String>, Sources>> =
            vec![HashMap::new(); self.rules.len()];
        for a in alerts {
            if a.is_resolved_at(now) {
                continue;
            }
            for (i, rule) in self.rules.iter().enumerate() {
                if !rule.source.matches(&a.labels) {
                    continue;
                }
                let s = per_rule[i].entry(rule.equal_values(&a.labels)).or_default();
                let fp = a.fingerprint();
                if rule.target.matches(&a.labels) {
                    s.two_sided.get_or_insert(fp);
                } else {
                    s.one_sided.get_or_insert(fp);
                }
            }
        }
        InhibitIndex {
            inhibitor: self,
            per_rule,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Sources {
    /// A source alert that does not match the target side.
    one_sided: Option<Fingerprint>,
    /// A source alert that matches the target side too.
    two_sided: Option<Fingerprint>,
}

/// Source alerts of each rule grouped by their `equal` label values.
#[derive(Debug)]
pub struct InhibitIndex<'a> {
    inhibitor: &'a Inhibitor,
    per_rule: Vec<HashMap<Vec<String>, Sources>>,
}

impl InhibitIndex<'_> {
    pub fn inhibited_by(&self, labels: &Labels) -> Option<Inhibition> {
        for (i, rule) in self.inhibitor.rules.iter().enumerate() {
            if !rule.target.matches(labels) {
                continue;
            }
            let Some(s) = self.per_rule[i].get(&rule.equal_values(labels)) else {
                continue;
            };
            let source = if rule.source.matches(labels) {
                s.one_sided
            } else {
                s.one_sided.or(s.two_sided)
            };
            if let Some(source) = source {
                return Some(Inhibition {
                    rule: rule.index,
                    source,
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(source: &str, target: &str, equal: &[&str]) -> InhibitRule {
        InhibitRule {
            index: 0,
            source: Matchers::parse(source).unwrap(),
            target: Matchers::parse(target).unwrap(),
            equal: equal.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn alert(pairs: &[(&str, &str)]) -> Alert {
        Alert::new(
            Labels::from_pairs(pairs.iter().copied()),
            "2026-01-01T00:00:00Z".parse().unwrap(),
        )
    }

    fn now() -> Timestamp {
        "2026-01-01T00:01:00Z".parse().unwrap()
    }

    /// Checks both the direct and the indexed implementation.
    fn check(inh: &Inhibitor, alerts: &[Alert], target: &[(&str, &str)]) -> Option<Inhibition> {
        let l = Labels::from_pairs(target.iter().copied());
        let direct = inh.inhibited_by(&l, alerts.iter(), now());
        let indexed = inh.index(alerts.iter(), now()).inhibited_by(&l);
        assert_eq!(
            direct.is_some(),
            indexed.is_some(),
            "direct and indexed disagree"
        );
        direct
    }

    #[test]
    fn critical_inhibits_warning_with_equal_labels() {
        let inh = Inhibitor::new(vec![rule(
            "severity=critical",
            "severity=warning",
            &["alertname", "cluster"],
        )]);
        let src = alert(&[
            ("alertname", "Down"),
            ("cluster", "eu"),
            ("severity", "critical"),
        ]);
        let alerts = vec![src.clone()];
        let got = check(
            &inh,
            &alerts,
            &[
                ("alertname", "Down"),
                ("cluster", "eu"),
                ("severity", "warning"),
            ],
        );
        assert_eq!(
            got,
            Some(Inhibition {
                rule: 0,
                source: src.fingerprint()
            })
        );
        // a different cluster is not inhibited
        assert!(
            check(
                &inh,
                &alerts,
                &[
                    ("alertname", "Down"),
                    ("cluster", "us"),
                    ("severity", "warning")
                ]
            )
            .is_none()
        );
        // not a target
        assert!(
            check(
                &inh,
                &alerts,
                &[
                    ("alertname", "Down"),
                    ("cluster", "eu"),
                    ("severity", "info")
                ]
            )
            .is_none()
        );
    }

    #[test]
    fn missing_equal_labels_count_as_empty() {
        let inh = Inhibitor::new(vec![rule(
            "severity=critical",
            "severity=warning",
            &["cluster"],
        )]);
        let alerts = vec![alert(&[("severity", "critical")])];
        assert!(check(&inh, &alerts, &[("severity", "warning")]).is_some());
        assert!(check(&inh, &alerts, &[("severity", "warning"), ("cluster", "eu")]).is_none());
    }

    #[test]
    fn resolved_sources_do_not_inhibit() {
        let inh = Inhibitor::new(vec![rule("severity=critical", "severity=warning", &[])]);
        let mut src = alert(&[("severity", "critical")]);
        src.ends_at = Some("2026-01-01T00:00:30Z".parse().unwrap());
        assert!(check(&inh, &[src], &[("severity", "warning")]).is_none());
    }

    #[test]
    fn an_alert_does_not_inhibit_itself() {
        // source and target both match team=db alerts
        let inh = Inhibitor::new(vec![rule("team=db", "team=db", &[])]);
        let a = alert(&[("team", "db"), ("instance", "1")]);
        let b = alert(&[("team", "db"), ("instance", "2")]);
        assert!(
            check(
                &inh,
                std::slice::from_ref(&a),
                &[("team", "db"), ("instance", "1")]
            )
            .is_none()
        );
        // two-sided alerts do not inhibit each other either
        assert!(check(&inh, &[a.clone(), b], &[("team", "db"), ("instance", "1")]).is_none());
        // but a one-sided source inhibits a two-sided target
        let inh = Inhibitor::new(vec![rule("{team=db}", "{team=~\"db|web\"}", &[])]);
        let web = alert(&[("team", "web")]);
        // `a` matches both sides; it inhibits `web` (target only) ...
        assert!(check(&inh, std::slice::from_ref(&a), &[("team", "web")]).is_some());
        // ... but not another two-sided alert
        assert!(check(&inh, &[a, web], &[("team", "db"), ("instance", "3")]).is_none());
    }

    /// The same rules and alerts given to Alertmanager 0.25: its API v2
    /// reported B inhibited by A, F inhibited by D, and A, C, D, E active.
    #[test]
    fn agrees_with_alertmanager_on_recorded_case() {
        let c = crate::config::load_str(
            "route:\n  receiver: r\nreceivers:\n  - name: r\ninhibit_rules:\n  - source_matchers: [severity=critical]\n    target_matchers: [severity=warning]\n    equal: [cluster]\n  - source_matchers: ['team=\"db\"']\n    target_matchers: ['team=~\"db|web\"']\n",
        )
        .unwrap();
        let alerts = [
            alert(&[("alertname", "A"), ("severity", "critical")]),
            alert(&[("alertname", "B"), ("severity", "warning")]),
            alert(&[
                ("alertname", "C"),
                ("severity", "warning"),
                ("cluster", "eu"),
            ]),
            alert(&[("alertname", "D"), ("team", "db"), ("instance", "1")]),
            alert(&[("alertname", "E"), ("team", "db"), ("instance", "2")]),
            alert(&[("alertname", "F"), ("team", "web")]),
        ];
        let want = [
            ("A", None),
            ("B", Some("b807e636403824b5")),
            ("C", None),
            ("D", None),
            ("E", None),
            ("F", Some("bc224bce70587827")),
        ];
        let index = c.inhibitor.index(alerts.iter(), now());
        for (a, (name, by)) in alerts.iter().zip(want) {
            assert_eq!(a.name(), Some(name));
            let got = c.inhibitor.inhibited_by(&a.labels, alerts.iter(), now());
            assert_eq!(got.map(|i| i.source.to_string()).as_deref(), by, "{name}");
            let got = index.inhibited_by(&a.labels);
            assert_eq!(got.is_some(), by.is_some(), "{name} (indexed)");
        }
    }

    #[test]
    fn first_matching_rule_wins() {
        let mut r1 = rule("a=1", "t=x", &[]);
        r1.index = 0;
        let mut r2 = rule("b=1", "t=x", &[]);
        r2.index = 1;
        let inh = Inhibitor::new(vec![r1, r2]);
        let src = alert(&[("b", "1")]);
        let got = check(&inh, std::slice::from_ref(&src), &[("t", "x")]).unwrap();
        assert_eq!(got.rule, 1);
    }
}
