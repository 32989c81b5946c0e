//! The four DORA metrics as a pure function of a list of events over a
//! window `[from, to]` (milliseconds), per (service, environment) and over
//! all of them.
//!
//! - Deployment frequency: deployments with `deployed_at` in the window,
//!   and that count per day of window.
//! - Lead time for changes: for every commit with a commit time, deploy time
//!   minus commit time, at the first deployment of that commit (service,
//!   environment and SHA) in the window; median and 90th percentile (linear
//!   interpolation between ranks, as Prometheus's `quantile`). Commit times
//!   after the deploy time (clock skew) are ignored.
//! - Change failure rate: failed deployments / deployments. A deployment is
//!   failed when its latest outcome event up to `to` is `Failed` (a failed
//!   analysis, or marked failed) or `RolledBack`; a later `Succeeded` clears it.
//! - Time to restore: per (service, environment), a failure starts at the
//!   deploy time of a failed deployment when none is open, and ends at the
//!   first of: the deploy time of a later deployment that did not fail, or
//!   a `RolledBack` of any failed deployment of that failure. Its duration
//!   counts when it ended by `to`; failures still open at `to` are
//!   `open_failures`. `Outage` events (e.g. incidents) are failures too;
//!   failures of a scope that overlap in time are one failure (the incident
//!   a bad deploy caused is not a second one), from the first start to the
//!   last end. Median and 90th percentile.

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::Timestamp;
use serde::Serialize;

/// A deployment as DORA sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DoraDeployment {
    pub id: i64,
    pub service: String,
    pub environment: String,
    pub deployed_at: i64,
    /// (SHA, commit time).
    pub commits: Vec<(String, Option<i64>)>,
}

/// What the metrics are computed from.
#[derive(Debug, Clone, PartialEq)]
pub enum DoraEvent {
    Deployed(DoraDeployment),
    /// The analysis failed or the deployment was marked failed.
    Failed {
        deployment: i64,
        at: i64,
    },
    /// The deployment was rolled back (failed, and restored at `at`).
    RolledBack {
        deployment: i64,
        at: i64,
    },
    /// Marked good (clears an earlier failure).
    Succeeded {
        deployment: i64,
        at: i64,
    },
    /// A service outage from another source (an incident): restored at `to`,
    /// still open when `None`.
    Outage {
        service: String,
        environment: String,
        from: i64,
        to: Option<i64>,
    },
}

/// Median and 90th percentile of a set of durations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quantiles {
    pub median: f64,
    pub p90: f64,
    pub count: usize,
}

/// The DORA figures of one scope.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub deployments: usize,
    pub deployments_per_day: f64,
    pub failed: usize,
    /// `None` without deployments.
    pub change_failure_rate: Option<f64>,
    pub lead_time_seconds: Option<Quantiles>,
    pub time_to_restore_seconds: Option<Quantiles>,
    pub open_failures: usize,
}

/// Figures of one service in one environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceFigures {
    pub service: String,
    pub environment: String,
    #[serde(flatten)]
    pub figures: Figures,
}

/// The DORA report over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DoraReport {
    pub from: Timestamp,
    pub to: Timestamp,
    pub window_seconds: f64,
    pub overall: Figures,
    pub services: Vec<ServiceFigures>,
}

/// Prometheus's `quantile`: linear interpolation between the closest ranks.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64))
}

fn quantiles(mut values: Vec<f64>) -> Option<Quantiles> {
    values.sort_by(f64::total_cmp);
    Some(Quantiles {
        median: quantile(&values, 0.5)?,
        p90: quantile(&values, 0.9)?,
        count: values.len(),
    })
}

#[derive(Default)]
struct Acc {
    deployments: usize,
    failed: usize,
    lead_times: Vec<f64>,
    restores: Vec<f64>,
    open: usize,
}

impl Acc {
    fn absorb(&mut self, o: &Acc) {
        self.deployments += o.deployments;
        self.failed += o.failed;
        self.lead_times.extend_from_slice(&o.lead_times);
        self.restores.extend_from_slice(&o.restores);
        self.open += o.open;
    }

    fn figures(&self, days: f64) -> Figures {
        Figures {
            deployments: self.deployments,
            deployments_per_day: if days > 0.0 {
                self.deployments as f64 / days
            } else {
                0.0
            },
            failed: self.failed,
            change_failure_rate: (self.deployments > 0)
                .then(|| self.failed as f64 / self.deployments as f64),
            lead_time_seconds: quantiles(self.lead_times.clone()),
            time_to_restore_seconds: quantiles(self.restores.clone()),
            open_failures: self.open,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Failed,
    RolledBack,
    Succeeded,
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Computes the report over `[from, to]`.
/// A failure: start and end (ms); no end while it lasts.
type Period = (i64, Option<i64>);

/// Failure periods merged where they overlap (or touch); an open period
/// (`None`) absorbs every later one.
fn merge_overlapping(mut list: Vec<Period>) -> Vec<Period> {
    list.sort_by_key(|(start, _)| *start);
    let mut out: Vec<Period> = Vec::new();
    for (start, end) in list {
        match out.last_mut() {
            Some((_, last)) if last.is_none_or(|l| start <= l) => {
                *last = match (*last, end) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
            _ => out.push((start, end)),
        }
    }
    out
}

pub fn compute(events: &[DoraEvent], from: i64, to: i64) -> DoraReport {
    let in_window = |t: i64| t >= from && t <= to;
    let mut deployments: Vec<&DoraDeployment> = events
        .iter()
        .filter_map(|e| match e {
            DoraEvent::Deployed(d) if in_window(d.deployed_at) => Some(d),
            _ => None,
        })
        .collect();
    deployments.sort_by_key(|d| (d.deployed_at, d.id));
    let known: HashSet<i64> = deployments.iter().map(|d| d.id).collect();

    // latest outcome of each deployment up to `to` (ties: later in the list wins)
    let mut latest: HashMap<i64, (i64, Outcome)> = HashMap::new();
    let mut rollbacks: HashMap<i64, i64> = HashMap::new();
    for e in events {
        let (id, at, o) = match *e {
            DoraEvent::Failed { deployment, at } => (deployment, at, Outcome::Failed),
            DoraEvent::RolledBack { deployment, at } => (deployment, at, Outcome::RolledBack),
            DoraEvent::Succeeded { deployment, at } => (deployment, at, Outcome::Succeeded),
            _ => continue,
        };
        if at > to || !known.contains(&id) {
            continue;
        }
        if latest.get(&id).is_none_or(|(t, _)| *t <= at) {
            latest.insert(id, (at, o));
        }
        if o == Outcome::RolledBack {
            let r = rollbacks.entry(id).or_insert(at);
            *r = (*r).min(at);
        }
    }
    let failed = |id: i64| {
        latest
            .get(&id)
            .is_some_and(|(_, o)| matches!(o, Outcome::Failed | Outcome::RolledBack))
    };

    let mut scopes: BTreeMap<(String, String), Acc> = BTreeMap::new();
    let mut seen_commits: HashSet<(&str, &str, &str)> = HashSet::new();
    let mut by_scope: BTreeMap<(&str, &str), Vec<&DoraDeployment>> = BTreeMap::new();
    for d in &deployments {
        let acc = scopes
            .entry((d.service.clone(), d.environment.clone()))
            .or_default();
        acc.deployments += 1;
        if failed(d.id) {
            acc.failed += 1;
        }
        for (sha, time) in &d.commits {
            if !seen_commits.insert((&d.service, &d.environment, sha)) {
                continue;
            }
            if let Some(t) = time
                && *t <= d.deployed_at
            {
                acc.lead_times.push((d.deployed_at - t) as f64 / 1000.0);
            }
        }
        by_scope
            .entry((&d.service, &d.environment))
            .or_default()
            .push(d);
    }

    // failure periods per scope (end `None`: not restored by `to`)
    let mut periods: BTreeMap<(String, String), Vec<Period>> = BTreeMap::new();
    // failures and their restores, per scope, in deploy order
    for ((service, environment), list) in by_scope {
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        enum Item {
            Deploy { id: i64, failed: bool },
            RolledBack { id: i64 },
        }
        let mut items: Vec<(i64, Item)> = Vec::new();
        for d in &list {
            let f = failed(d.id);
            items.push((
                d.deployed_at,
                Item::Deploy {
                    id: d.id,
                    failed: f,
                },
            ));
            if let Some(at) = rollbacks.get(&d.id).filter(|_| f) {
                items.push((*at, Item::RolledBack { id: d.id }));
            }
        }
        items.sort();
        let scope = periods
            .entry((service.to_string(), environment.to_string()))
            .or_default();
        let mut open: Option<(i64, HashSet<i64>)> = None;
        for (t, item) in items {
            match (item, &mut open) {
                (Item::Deploy { id, failed: true }, None) => open = Some((t, HashSet::from([id]))),
                (Item::Deploy { id, failed: true }, Some((_, members))) => {
                    members.insert(id);
                }
                (Item::Deploy { failed: false, .. }, Some((start, _))) => {
                    scope.push((*start, Some(t)));
                    open = None;
                }
                (Item::RolledBack { id }, Some((start, members))) if members.contains(&id) => {
                    scope.push((*start, Some(t)));
                    open = None;
                }
                _ => {}
            }
        }
        if let Some((start, _)) = open {
            scope.push((start, None));
        }
    }

    for e in events {
        if let DoraEvent::Outage {
            service,
            environment,
            from: start,
            to: end,
        } = e
            && in_window(*start)
        {
            let end = end.filter(|end| *end <= to && *end >= *start);
            periods
                .entry((service.clone(), environment.clone()))
                .or_default()
                .push((*start, end));
        }
    }
    for (scope, list) in periods {
        let acc = scopes.entry(scope).or_default();
        for (start, end) in merge_overlapping(list) {
            match end {
                Some(end) => acc.restores.push((end - start) as f64 / 1000.0),
                None => acc.open += 1,
            }
        }
    }

    let days = (to - from) as f64 / 86_400_000.0;
    let mut total = Acc::default();
    let services = scopes
        .iter()
        .map(|((service, environment), acc)| {
            total.absorb(acc);
            ServiceFigures {
                service: service.clone(),
                environment: environment.clone(),
                figures: acc.figures(days),
            }
        })
        .collect();
    DoraReport {
        from: ts(from),
        to: ts(to),
        window_seconds: (to - from) as f64 / 1000.0,
        overall: total.figures(days),
        services,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    const M: i64 = 60_000;
    const DAY: i64 = 24 * H;

    fn dep(id: i64, service: &str, at: i64, commits: &[(&str, i64)]) -> DoraEvent {
        DoraEvent::Deployed(DoraDeployment {
            id,
            service: service.into(),
            environment: "production".into(),
            deployed_at: at,
            commits: commits
                .iter()
                .map(|(s, t)| (s.to_string(), Some(*t)))
                .collect(),
        })
    }

    fn svc<'a>(r: &'a DoraReport, name: &str) -> &'a Figures {
        &r.services
            .iter()
            .find(|s| s.service == name)
            .unwrap_or_else(|| panic!("no figures for {name}: {r:?}"))
            .figures
    }

    #[test]
    fn quantiles_interpolate_like_prometheus() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.5), Some(2.5));
        assert!((quantile(&v, 0.9).unwrap() - 3.7).abs() < 1e-9);
        assert_eq!(quantile(&[7.0], 0.9), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn frequency_and_lead_time() {
        let events = vec![
            dep(1, "api", 10 * H, &[("a", 9 * H), ("b", 8 * H)]),
            // `a` again: its lead time counts at its first deployment only
            dep(2, "api", 20 * H, &[("a", 9 * H), ("c", 16 * H)]),
            // commit time after deploy time (clock skew): ignored
            dep(3, "api", 30 * H, &[("d", 31 * H)]),
            dep(4, "web", 40 * H, &[("e", 39 * H)]),
            // outside the window
            dep(5, "api", 3 * DAY, &[("f", 0)]),
        ];
        let r = compute(&events, 0, 2 * DAY);
        let api = svc(&r, "api");
        assert_eq!(api.deployments, 3);
        assert_eq!(api.deployments_per_day, 1.5);
        // lead times 1h, 2h, 4h
        let lt = api.lead_time_seconds.unwrap();
        assert_eq!((lt.median, lt.count), (7200.0, 3));
        assert!((lt.p90 - 12960.0).abs() < 1e-6, "{lt:?}");
        assert_eq!(api.change_failure_rate, Some(0.0));
        assert_eq!(r.overall.deployments, 4);
        assert_eq!(r.overall.deployments_per_day, 2.0);
        // 1h, 2h, 4h, 1h
        assert_eq!(r.overall.lead_time_seconds.unwrap().median, 5400.0);
        assert_eq!(r.window_seconds, 2.0 * 86400.0);
        assert!(r.overall.time_to_restore_seconds.is_none());
    }

    #[test]
    fn change_failure_rate_counts_failed_rolled_back_and_cleared_marks() {
        let events = vec![
            dep(1, "api", H, &[]),
            dep(2, "api", 2 * H, &[]),
            dep(3, "api", 3 * H, &[]),
            dep(4, "api", 4 * H, &[]),
            DoraEvent::Failed {
                deployment: 1,
                at: H + 10,
            },
            DoraEvent::RolledBack {
                deployment: 2,
                at: 2 * H + 10,
            },
            // failed, then marked good: not a failure
            DoraEvent::Failed {
                deployment: 3,
                at: 3 * H + 10,
            },
            DoraEvent::Succeeded {
                deployment: 3,
                at: 3 * H + 20,
            },
            // marked failed after the window's end: not yet known
            DoraEvent::Failed {
                deployment: 4,
                at: 100 * H,
            },
        ];
        let r = compute(&events, 0, 10 * H);
        let api = svc(&r, "api");
        assert_eq!((api.deployments, api.failed), (4, 2));
        assert_eq!(api.change_failure_rate, Some(0.5));
        assert_eq!(r.overall.change_failure_rate, Some(0.5));
        let empty = compute(&events, 200 * H, 300 * H);
        assert_eq!(empty.overall.change_failure_rate, None);
        assert!(empty.services.is_empty());
    }

    #[test]
    fn time_to_restore_runs_from_the_failed_deploy_to_the_next_good_one_or_the_rollback() {
        let events = vec![
            // api: 1 fails at 1h, 2 fails too, 3 is good at 4h: one failure of 3h
            dep(1, "api", H, &[]),
            DoraEvent::Failed {
                deployment: 1,
                at: H + 1,
            },
            dep(2, "api", 2 * H, &[]),
            DoraEvent::Failed {
                deployment: 2,
                at: 2 * H + 1,
            },
            dep(3, "api", 4 * H, &[]),
            // api: 4 fails at 10h and is rolled back at 10.5h
            dep(4, "api", 10 * H, &[]),
            DoraEvent::RolledBack {
                deployment: 4,
                at: 10 * H + H / 2,
            },
            dep(5, "api", 12 * H, &[]),
            // web: 6 fails at 5h and nothing restores it by the window's end
            dep(6, "web", 5 * H, &[]),
            DoraEvent::Failed {
                deployment: 6,
                at: 5 * H + 1,
            },
        ];
        let r = compute(&events, 0, DAY);
        let api = svc(&r, "api");
        let ttr = api.time_to_restore_seconds.unwrap();
        assert_eq!(ttr.count, 2);
        assert_eq!(ttr.median, (3.0 * 3600.0 + 1800.0) / 2.0);
        assert_eq!(api.open_failures, 0);
        assert_eq!((api.deployments, api.failed), (5, 3));
        let web = svc(&r, "web");
        assert_eq!(web.open_failures, 1);
        assert!(web.time_to_restore_seconds.is_none());
        assert_eq!(r.overall.open_failures, 1);
        assert_eq!(r.overall.time_to_restore_seconds.unwrap().count, 2);
    }

    #[test]
    fn outages_from_other_sources_add_restore_times() {
        let events = vec![
            DoraEvent::Outage {
                service: "db".into(),
                environment: "production".into(),
                from: H,
                to: Some(2 * H),
            },
            DoraEvent::Outage {
                service: "db".into(),
                environment: "production".into(),
                from: 3 * H,
                to: None,
            },
        ];
        let r = compute(&events, 0, DAY);
        let db = svc(&r, "db");
        assert_eq!(db.time_to_restore_seconds.unwrap().median, 3600.0);
        assert_eq!((db.open_failures, db.deployments), (1, 0));
        assert_eq!(db.change_failure_rate, None);
    }

    #[test]
    fn an_incident_during_a_failed_deploy_is_the_same_failure() {
        let outage = |from: i64, to: i64| DoraEvent::Outage {
            service: "api".into(),
            environment: "production".into(),
            from,
            to: Some(to),
        };
        let events = vec![
            dep(1, "api", H, &[]),
            DoraEvent::RolledBack {
                deployment: 1,
                at: H + 30 * M,
            },
            // the incident the bad deploy caused outlasts the rollback
            outage(H + 5 * M, H + 40 * M),
            // a later incident of its own
            outage(3 * H, 3 * H + 10 * M),
        ];
        let r = compute(&events, 0, DAY);
        let api = svc(&r, "api");
        let ttr = api.time_to_restore_seconds.unwrap();
        assert_eq!((ttr.count, api.open_failures), (2, 0));
        assert_eq!(ttr.median, (40.0 * 60.0 + 10.0 * 60.0) / 2.0);
        // an open incident keeps the failure open
        let mut open = events.clone();
        open.push(DoraEvent::Outage {
            service: "api".into(),
            environment: "production".into(),
            from: 3 * H + 5 * M,
            to: None,
        });
        let api = svc(&compute(&open, 0, DAY), "api").clone();
        assert_eq!(api.time_to_restore_seconds.unwrap().count, 1);
        assert_eq!(api.open_failures, 1);
    }

    #[test]
    fn environments_are_separate_scopes() {
        let mut staging = dep(2, "api", 2 * H, &[]);
        if let DoraEvent::Deployed(d) = &mut staging {
            d.environment = "staging".into();
        }
        let events = vec![
            dep(1, "api", H, &[]),
            DoraEvent::Failed {
                deployment: 1,
                at: H + 1,
            },
            // a good staging deploy does not restore production
            staging,
        ];
        let r = compute(&events, 0, DAY);
        assert_eq!(r.services.len(), 2);
        assert_eq!(r.services[0].environment, "production");
        assert_eq!(r.services[0].figures.open_failures, 1);
        assert_eq!(r.services[1].figures.failed, 0);
    }
}
