//! The routing tree: which routes (receiver, grouping, timings, time
//! intervals) an alert's label set goes to.
//!
//! Semantics (Alertmanager's): an alert enters at the root, which matches
//! everything. At each matching node the children are tried in order,
//! depth-first; the first matching child stops the search among its siblings
//! unless it has `continue: true`. A node with no matching child is itself the
//! result. Unset settings are inherited from the parent: receiver, group_by,
//! group_wait, group_interval, repeat_interval. `continue`, matchers and the
//! mute/active time intervals belong to the node alone.

use crate::config::{
    DEFAULT_GROUP_INTERVAL, DEFAULT_GROUP_WAIT, DEFAULT_REPEAT_INTERVAL, RouteConfig,
};
use crate::matchers::Matchers;
use crate::timeinterval::TimeIntervals;
use day2_model::Labels;
use jiff::Timestamp;
use std::time::Duration;

/// Labels to group by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// `group_by: ['...']`: every label; each distinct label set is a group.
    All,
    /// The named labels, sorted and unique; empty means one group per route.
    Labels(Vec<String>),
}

impl GroupBy {
    pub fn from_list(list: &[String]) -> Self {
        if list.iter().any(|l| l == "...") {
            return GroupBy::All;
        }
        let mut v = list.to_vec();
        v.sort();
        v.dedup();
        GroupBy::Labels(v)
    }
}

/// The settings of a route after inheritance.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteOpts {
    pub receiver: String,
    pub group_by: GroupBy,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    pub mute_time_intervals: Vec<String>,
    pub active_time_intervals: Vec<String>,
}

/// Why a route does not notify at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMute {
    /// Inside this `mute_time_intervals` entry.
    MutedBy(String),
    /// Outside all of its `active_time_intervals`.
    Inactive,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub matchers: Matchers,
    pub continue_matching: bool,
    pub opts: RouteOpts,
    pub routes: Vec<Route>,
    /// Child positions from the root (`[]` for the root, `[2, 0]` ...).
    pub position: Vec<usize>,
    key: String,
    id: String,
}

impl Route {
    /// Builds the tree from a validated root route config.
    pub fn build(root: &RouteConfig) -> Result<Route, (String, String)> {
        let opts = RouteOpts {
            receiver: root.receiver.clone().unwrap_or_default(),
            group_by: GroupBy::from_list(root.group_by.as_deref().unwrap_or(&[])),
            group_wait: root.group_wait.unwrap_or(DEFAULT_GROUP_WAIT),
            group_interval: root.group_interval.unwrap_or(DEFAULT_GROUP_INTERVAL),
            repeat_interval: root.repeat_interval.unwrap_or(DEFAULT_REPEAT_INTERVAL),
            mute_time_intervals: root.mute_time_intervals.clone(),
            active_time_intervals: root.active_time_intervals.clone(),
        };
        Self::build_node(root, opts, "route", Vec::new(), "")
    }

    fn build_node(
        cfg: &RouteConfig,
        opts: RouteOpts,
        path: &str,
        position: Vec<usize>,
        parent_key: &str,
    ) -> Result<Route, (String, String)> {
        let matchers = cfg.all_matchers(path)?;
        let key = if position.is_empty() {
            matchers.to_string()
        } else {
            format!("{parent_key}/{matchers}")
        };
        let id = match position.last() {
            Some(i) => format!("{key}/{i}"),
            None => key.clone(),
        };
        let mut routes = Vec::with_capacity(cfg.routes.len());
        for (i, c) in cfg.routes.iter().enumerate() {
            let child_opts = RouteOpts {
                receiver: c.receiver.clone().unwrap_or_else(|| opts.receiver.clone()),
                group_by: c
                    .group_by
                    .as_deref()
                    .map(GroupBy::from_list)
                    .unwrap_or_else(|| opts.group_by.clone()),
                group_wait: c.group_wait.unwrap_or(opts.group_wait),
                group_interval: c.group_interval.unwrap_or(opts.group_interval),
                repeat_interval: c.repeat_interval.unwrap_or(opts.repeat_interval),
                mute_time_intervals: c.mute_time_intervals.clone(),
                active_time_intervals: c.active_time_intervals.clone(),
            };
            let mut pos = position.clone();
            pos.push(i);
            routes.push(Self::build_node(
                c,
                child_opts,
                &format!("{path}.routes[{i}]"),
                pos,
                &key,
            )?);
        }
        Ok(Route {
            matchers,
            continue_matching: cfg.continue_matching,
            opts,
            routes,
            position,
            key,
            id,
        })
    }

    /// Alertmanager's route key: the parent's key, `/`, and this route's
    /// matchers (`{}/{service="db"}`); the root's key is `{}`. Not unique when
    /// siblings have equal matchers; see [`Route::id`].
    pub fn key(&self) -> &str {
        &self.key
    }

    /// A key unique in the tree: the route key plus the position among its
    /// siblings (`{}/{service="db"}/2`), as Alertmanager's route ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The routes the label set goes to, in order (depth-first, `continue`
    /// semantics). Empty only when this route itself does not match.
    pub fn match_labels(&self, labels: &Labels) -> Vec<&Route> {
        if !self.matchers.matches(labels) {
            return Vec::new();
        }
        let mut all = Vec::new();
        for c in &self.routes {
            let found = c.match_labels(labels);
            let matched = !found.is_empty();
            all.extend(found);
            if matched && !c.continue_matching {
                break;
            }
        }
        if all.is_empty() {
            all.push(self);
        }
        all
    }

    /// Every route of the tree, depth-first, parents before children.
    pub fn walk(&self) -> Vec<&Route> {
        let mut out = vec![self];
        for c in &self.routes {
            out.extend(c.walk());
        }
        out
    }

    /// Finds a route by its id.
    pub fn find(&self, id: &str) -> Option<&Route> {
        self.walk().into_iter().find(|r| r.id == id)
    }

    /// Whether notifications of this route are held back at `now` by its
    /// time intervals. Unknown interval names (not possible after config
    /// validation) never mute and never activate.
    pub fn mute_at(&self, intervals: &TimeIntervals, now: Timestamp) -> Option<RouteMute> {
        if let Some(n) = intervals.first_containing(&self.opts.mute_time_intervals, now) {
            return Some(RouteMute::MutedBy(n.to_string()));
        }
        if !self.opts.active_time_intervals.is_empty()
            && intervals
                .first_containing(&self.opts.active_time_intervals, now)
                .is_none()
        {
            return Some(RouteMute::Inactive);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    // The routing tree of Alertmanager's documented example (conf.good.yml shape).
    const TREE: &str = r#"
route:
  receiver: default
  group_by: [alertname, cluster]
  group_wait: 10s
  routes:
    - match_re:
        service: ^(foo1|foo2|baz)$
      receiver: team-X-mails
      routes:
        - match:
            severity: critical
          receiver: team-X-pager
    - match:
        service: files
      receiver: team-Y-mails
      group_by: ['...']
    - match:
        service: database
      receiver: team-DB-pager
      group_by: [alertname, cluster, database]
      repeat_interval: 1h
      routes:
        - match:
            owner: team-X
          receiver: team-X-pager
          continue: true
        - match:
            owner: team-Y
          receiver: team-Y-pager
        - matchers: ['owner=~"team-.*"']
          receiver: team-other
receivers:
  - name: default
  - name: team-X-mails
  - name: team-X-pager
  - name: team-Y-mails
  - name: team-Y-pager
  - name: team-DB-pager
  - name: team-other
"#;

    fn receivers(r: &Route, pairs: &[(&str, &str)]) -> Vec<String> {
        r.match_labels(&Labels::from_pairs(pairs.iter().copied()))
            .iter()
            .map(|r| r.opts.receiver.clone())
            .collect()
    }

    #[test]
    fn depth_first_with_fallback_to_parent() {
        let c = load_str(TREE).unwrap();
        let r = &c.route;
        assert_eq!(receivers(r, &[("service", "nothing")]), ["default"]);
        assert_eq!(receivers(r, &[("service", "foo1")]), ["team-X-mails"]);
        assert_eq!(
            receivers(r, &[("service", "foo1"), ("severity", "critical")]),
            ["team-X-pager"]
        );
        // regexes are anchored: foo10 is not foo1
        assert_eq!(receivers(r, &[("service", "foo10")]), ["default"]);
        // no matching child of `database`: the database route itself
        assert_eq!(receivers(r, &[("service", "database")]), ["team-DB-pager"]);
    }

    #[test]
    fn continue_goes_on_to_later_siblings() {
        let c = load_str(TREE).unwrap();
        let r = &c.route;
        // owner team-X continues: the next sibling that matches is `team-.*`
        assert_eq!(
            receivers(r, &[("service", "database"), ("owner", "team-X")]),
            ["team-X-pager", "team-other"]
        );
        // team-Y stops at its own route
        assert_eq!(
            receivers(r, &[("service", "database"), ("owner", "team-Y")]),
            ["team-Y-pager"]
        );
    }

    #[test]
    fn settings_are_inherited() {
        let c = load_str(TREE).unwrap();
        let m = c.route.match_labels(&Labels::from_pairs([
            ("service", "database"),
            ("owner", "team-Y"),
        ]));
        let o = &m[0].opts;
        assert_eq!(o.group_wait, Duration::from_secs(10), "from the root");
        assert_eq!(
            o.repeat_interval,
            Duration::from_secs(3600),
            "from the parent"
        );
        assert_eq!(o.group_interval, DEFAULT_GROUP_INTERVAL, "default");
        assert_eq!(
            o.group_by,
            GroupBy::Labels(vec![
                "alertname".into(),
                "cluster".into(),
                "database".into()
            ])
        );
        let files = c
            .route
            .match_labels(&Labels::from_pairs([("service", "files")]));
        assert_eq!(files[0].opts.group_by, GroupBy::All);
    }

    #[test]
    fn keys_and_ids_are_stable() {
        let c = load_str(TREE).unwrap();
        assert_eq!(c.route.key(), "{}");
        assert_eq!(c.route.id(), "{}");
        let db = &c.route.routes[2];
        assert_eq!(db.key(), "{}/{service=\"database\"}");
        assert_eq!(db.id(), "{}/{service=\"database\"}/2");
        assert_eq!(
            db.routes[1].key(),
            "{}/{service=\"database\"}/{owner=\"team-Y\"}"
        );
        assert_eq!(db.routes[1].position, vec![2, 1]);
        assert_eq!(c.route.walk().len(), 8);
        assert_eq!(
            c.route.find(db.routes[1].id()).unwrap().opts.receiver,
            "team-Y-pager"
        );
        // ids are unique over the tree
        let ids: std::collections::HashSet<_> = c.route.walk().iter().map(|r| r.id()).collect();
        assert_eq!(ids.len(), 8);
    }

    #[test]
    fn mute_and_active_intervals() {
        let cfg = r#"
time_intervals:
  - name: weekend
    time_intervals: [{weekdays: ['saturday', 'sunday']}]
  - name: office
    time_intervals: [{times: [{start_time: '09:00', end_time: '17:00'}]}]
route:
  receiver: a
  routes:
    - matchers: [x=muted]
      mute_time_intervals: [weekend]
    - matchers: [x=active]
      active_time_intervals: [office]
receivers:
  - name: a
"#;
        let c = load_str(cfg).unwrap();
        let sat_noon: Timestamp = "2026-11-28T12:00:00Z".parse().unwrap();
        let wed_night: Timestamp = "2026-11-25T22:00:00Z".parse().unwrap();
        let muted = &c.route.routes[0];
        let active = &c.route.routes[1];
        assert_eq!(
            muted.mute_at(&c.time_intervals, sat_noon),
            Some(RouteMute::MutedBy("weekend".into()))
        );
        assert_eq!(muted.mute_at(&c.time_intervals, wed_night), None);
        assert_eq!(active.mute_at(&c.time_intervals, sat_noon), None);
        assert_eq!(
            active.mute_at(&c.time_intervals, wed_night),
            Some(RouteMute::Inactive)
        );
        // intervals are not inherited by children
        assert_eq!(c.route.mute_at(&c.time_intervals, sat_noon), None);
    }
}
