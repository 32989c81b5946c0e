//! Grouping: which group an alert joins under a route.
//!
//! The group labels are the alert's values of the route's `group_by` labels
//! (absent labels are left out), or all its labels with `group_by: ['...']`.
//! The group key is Alertmanager's `<route key>:<group labels>`, e.g.
//! `{}/{service="db"}:{alertname="Down", cluster="eu"}`, which is what webhook
//! payloads carry as `groupKey`. Because route keys are not unique when
//! siblings have equal matchers, [`GroupKey`] also carries the route id and
//! compares on it: use the struct (or [`GroupKey::fingerprint`]) as a storage
//! key, and its `Display` form for Alertmanager-compatible output.

use crate::matchers::go_quote;
use crate::route::{GroupBy, Route};
use day2_model::{Labels, LabelsBuilder};
use std::fmt;

/// The subset of `labels` a route groups by.
pub fn group_labels(group_by: &GroupBy, labels: &Labels) -> Labels {
    match group_by {
        GroupBy::All => labels.clone(),
        GroupBy::Labels(names) => {
            let mut b = LabelsBuilder::new();
            for n in names {
                if let Some(v) = labels.get(n) {
                    b.set(n.clone(), v);
                }
            }
            b.build()
        }
    }
}

/// Formats a label set as Alertmanager does: `{a="1", b="2"}`, sorted by name.
pub fn format_label_set(labels: &Labels) -> String {
    let mut s = String::from("{");
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&l.name);
        s.push('=');
        s.push_str(&go_quote(&l.value));
    }
    s.push('}');
    s
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    pub route_id: String,
    pub route_key: String,
    pub labels: Labels,
}

impl GroupKey {
    /// The group an alert with `alert_labels` joins under `route`.
    pub fn new(route: &Route, alert_labels: &Labels) -> Self {
        GroupKey {
            route_id: route.id().to_string(),
            route_key: route.key().to_string(),
            labels: group_labels(&route.opts.group_by, alert_labels),
        }
    }

    /// A stable 64-bit hash of route id and group labels (FNV-1a), for
    /// storage keys and logs.
    pub fn fingerprint(&self) -> u64 {
        let mut h: u64 = 0xcbf29ce484222325;
        for b in self
            .route_id
            .bytes()
            .chain(std::iter::once(0xff))
            .chain(format_label_set(&self.labels).into_bytes())
        {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        h
    }
}

impl fmt::Display for GroupKey {
    /// Alertmanager's group key: `<route key>:<group labels>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.route_key, format_label_set(&self.labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    const CFG: &str = r#"
route:
  receiver: a
  group_by: [alertname, cluster]
  routes:
    - matchers: [service=db]
      group_by: ['...']
    - matchers: [service=web]
      group_by: []
    - matchers: [service=web]
      receiver: b
receivers:
  - name: a
  - name: b
"#;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn group_labels_pick_group_by_values() {
        let gb = GroupBy::Labels(vec!["alertname".into(), "cluster".into()]);
        let a = l(&[("alertname", "Down"), ("cluster", "eu"), ("instance", "x")]);
        assert_eq!(
            group_labels(&gb, &a),
            l(&[("alertname", "Down"), ("cluster", "eu")])
        );
        // a missing label is left out, not set to ""
        let b = l(&[("alertname", "Down")]);
        assert_eq!(group_labels(&gb, &b), l(&[("alertname", "Down")]));
        assert_eq!(group_labels(&GroupBy::All, &a), a);
        assert_eq!(group_labels(&GroupBy::Labels(vec![]), &a), Labels::empty());
    }

    #[test]
    fn key_format_is_alertmanagers() {
        let c = load_str(CFG).unwrap();
        let a = l(&[("alertname", "Down"), ("cluster", "eu"), ("instance", "x")]);
        let k = GroupKey::new(&c.route, &a);
        assert_eq!(k.to_string(), r#"{}:{alertname="Down", cluster="eu"}"#);
        let db = l(&[
            ("alertname", "Down"),
            ("service", "db"),
            ("instance", "x\"y"),
        ]);
        let r = c.route.match_labels(&db)[0];
        assert_eq!(
            GroupKey::new(r, &db).to_string(),
            r#"{}/{service="db"}:{alertname="Down", instance="x\"y", service="db"}"#
        );
    }

    /// Group keys as Alertmanager 0.25 sent them in webhook payloads for the
    /// same config and alerts (recorded with a local webhook listener).
    #[test]
    fn keys_match_alertmanager_webhook_payloads() {
        let cfg = r#"
route:
  receiver: root
  group_by: [alertname, cluster]
  routes:
    - matchers: ['service="db"', 'env=~"prod|stage"']
      receiver: db
      group_by: ['...']
      continue: true
    - match_re: {service: 'd.*'}
      receiver: other
receivers:
  - name: root
  - name: db
  - name: other
"#;
        let c = load_str(cfg).unwrap();
        let down = l(&[
            ("alertname", "Down"),
            ("service", "db"),
            ("env", "prod"),
            ("instance", "a\"b"),
        ]);
        let keys: Vec<String> = c
            .route
            .match_labels(&down)
            .iter()
            .map(|r| GroupKey::new(r, &down).to_string())
            .collect();
        assert_eq!(
            keys,
            [
                r#"{}/{env=~"prod|stage",service="db"}:{alertname="Down", env="prod", instance="a\"b", service="db"}"#,
                r#"{}/{service=~"^(?:d.*)$"}:{alertname="Down"}"#,
            ]
        );
        let up = l(&[("alertname", "Up"), ("cluster", "eu"), ("x", "1")]);
        assert_eq!(
            GroupKey::new(c.route.match_labels(&up)[0], &up).to_string(),
            r#"{}:{alertname="Up", cluster="eu"}"#
        );
    }

    #[test]
    fn alerts_with_same_group_values_share_a_group() {
        let c = load_str(CFG).unwrap();
        let a = l(&[("alertname", "Down"), ("cluster", "eu"), ("instance", "1")]);
        let b = l(&[("alertname", "Down"), ("cluster", "eu"), ("instance", "2")]);
        let d = l(&[("alertname", "Down"), ("cluster", "us"), ("instance", "1")]);
        let (ka, kb, kd) = (
            GroupKey::new(&c.route, &a),
            GroupKey::new(&c.route, &b),
            GroupKey::new(&c.route, &d),
        );
        assert_eq!(ka, kb);
        assert_eq!(ka.fingerprint(), kb.fingerprint());
        assert_ne!(ka, kd);
        assert_ne!(ka.fingerprint(), kd.fingerprint());
    }

    #[test]
    fn sibling_routes_with_equal_matchers_get_distinct_groups() {
        let c = load_str(CFG).unwrap();
        let a = l(&[("service", "web")]);
        let k1 = GroupKey::new(&c.route.routes[1], &a);
        let k2 = GroupKey::new(&c.route.routes[2], &a);
        // same Alertmanager key string, different groups
        assert_eq!(k1.route_key, k2.route_key);
        assert_ne!(k1, k2);
        assert_ne!(k1.fingerprint(), k2.fingerprint());
    }
}
