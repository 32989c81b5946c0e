//! Loop tests (`day2 test loop FILE`): for given alerts at given times,
//! assert which receivers are notified, whether an inhibition applies, who is
//! on call, and when each escalation step fires and whom it pages. Pure: the
//! alert hub's routing tree, inhibition and time intervals and this crate's
//! schedules and escalation plans evaluated on the configuration.
//!
//! ```yaml
//! config: day2.yml                      # relative to this file
//! tests:
//!   - name: a critical database alert at night pages the primary, then the lead
//!     at: 2026-03-10T02:00:00Z          # RFC 3339, or a civil time read in UTC
//!     alert: { alertname: PostgresDown, severity: critical, team: db }
//!     firing:                           # other alerts firing then (for inhibition)
//!       - { alertname: DatacenterDown, severity: warning }
//!     expect:
//!       receivers: [db-pager]           # routing result, in order (amtool's answer)
//!       notified: [db-pager]            # minus routes muted by time intervals; none if inhibited
//!       inhibited: false
//!       oncall: { db-primary: alice, db-secondary: null }   # null: nobody
//!       escalation:                     # the first notified receiver with a policy
//!         policy: db                    #   (or `receiver: NAME`)
//!         ack: +20m                     # optional: acknowledged then
//!         steps:                        # the trigger is `at` + the route's group_wait
//!           - { step: 1, at: +30s, users: [alice] }
//!           - { step: 2, at: 2026-03-10T02:15:30Z, users: [lead] }
//!           - { step: 1, round: 2, fires: false }   # after the ack: never
//! ```
//!
//! Times in `expect` are absolute or an offset (`+15m`) from the test's `at`.

use std::collections::BTreeMap;

use day2_alerthub::{Alert, HubConfig, RouteMute};
use day2_model::Labels;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Deserializer};

use crate::config::OnCall;
use crate::escalation::{DueStep, steps_due};
use crate::parse::{self, InstantValue};

/// A loop-test file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopFile {
    /// The `day2.yml` to test, relative to this file.
    pub config: String,
    pub tests: Vec<LoopCase>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopCase {
    pub name: String,
    pub at: InstantValue,
    /// The alert's labels (may be empty for cases that only ask who is on call).
    #[serde(default)]
    pub alert: BTreeMap<String, String>,
    /// Other alerts firing at `at`.
    #[serde(default)]
    pub firing: Vec<BTreeMap<String, String>>,
    pub expect: Expect,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub receivers: Option<Vec<String>>,
    #[serde(default)]
    pub notified: Option<Vec<String>>,
    #[serde(default)]
    pub inhibited: Option<bool>,
    /// Schedule -> user on call (`null`: nobody).
    #[serde(default)]
    pub oncall: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    pub escalation: Option<EscalationExpect>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationExpect {
    #[serde(default)]
    pub receiver: Option<String>,
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub ack: Option<TimeSpec>,
    #[serde(default)]
    pub steps: Vec<StepExpect>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepExpect {
    /// 1-based.
    pub step: u32,
    #[serde(default = "one")]
    pub round: u32,
    #[serde(default)]
    pub at: Option<TimeSpec>,
    #[serde(default)]
    pub users: Option<Vec<String>>,
    #[serde(default = "yes")]
    pub fires: bool,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

/// An absolute time or an offset from the test's `at`.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeSpec {
    Offset(SignedDuration),
    At(parse::Instant),
}

impl TimeSpec {
    fn resolve(&self, base: Timestamp) -> Result<Timestamp, String> {
        match self {
            TimeSpec::Offset(d) => base.checked_add(*d).map_err(|e| e.to_string()),
            TimeSpec::At(i) => i.resolve(&jiff::tz::TimeZone::UTC),
        }
    }
}

impl<'de> Deserialize<'de> for TimeSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.strip_prefix('+') {
            Some(rest) => parse::duration(rest)
                .map(TimeSpec::Offset)
                .map_err(serde::de::Error::custom),
            None => parse::instant(&s)
                .map(TimeSpec::At)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// One failed assertion: where it is written and what differed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Field path in the test file (`tests[2].expect.escalation.steps[1]`).
    pub path: String,
    pub expected: String,
    pub got: String,
}

/// The outcome of one test case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    pub name: String,
    /// `tests[i]`.
    pub path: String,
    pub failures: Vec<Failure>,
}

fn list(v: &[impl AsRef<str>]) -> String {
    let items: Vec<&str> = v.iter().map(AsRef::as_ref).collect();
    format!("[{}]", items.join(", "))
}

/// Runs every case against the alert hub's configuration and the on-call model.
pub fn run(file: &LoopFile, hub: &HubConfig, oncall: &OnCall) -> Vec<CaseResult> {
    file.tests
        .iter()
        .enumerate()
        .map(|(i, c)| run_case(c, &format!("tests[{i}]"), hub, oncall))
        .collect()
}

fn run_case(c: &LoopCase, path: &str, hub: &HubConfig, oncall: &OnCall) -> CaseResult {
    let mut failures = Vec::new();
    let mut fail = |field: &str, expected: String, got: String| {
        failures.push(Failure {
            path: format!("{path}.{field}"),
            expected,
            got,
        })
    };
    let at = match c.at.0.resolve(&jiff::tz::TimeZone::UTC) {
        Ok(t) => t,
        Err(e) => {
            fail("at", "a valid time".into(), e);
            return CaseResult {
                name: c.name.clone(),
                path: path.to_string(),
                failures,
            };
        }
    };
    let labels = Labels::from_pairs(c.alert.clone());
    let routes = hub.routes_for(&labels);
    let receivers = hub.receivers_for(&labels);
    let firing: Vec<Alert> = c
        .firing
        .iter()
        .map(|l| Alert::new(Labels::from_pairs(l.clone()), at))
        .collect();
    let inhibition = hub.inhibitor.inhibited_by(&labels, firing.iter(), at);
    let inhibited_by = inhibition.as_ref().map(|inh| {
        let src = firing
            .iter()
            .find(|a| a.fingerprint() == inh.source)
            .map(|a| a.labels.to_string())
            .unwrap_or_default();
        format!(
            "inhibited by inhibit_rules[{}] (source alert {src})",
            inh.rule
        )
    });
    let mut notified: Vec<&str> = Vec::new();
    let mut muted: Vec<String> = Vec::new();
    if inhibition.is_none() {
        for r in &routes {
            match r.mute_at(&hub.time_intervals, at) {
                None => {
                    if !notified.contains(&r.opts.receiver.as_str()) {
                        notified.push(&r.opts.receiver);
                    }
                }
                Some(RouteMute::MutedBy(n)) => {
                    muted.push(format!("{} muted by {n:?}", r.opts.receiver))
                }
                Some(RouteMute::Inactive) => muted.push(format!(
                    "{} outside its active_time_intervals",
                    r.opts.receiver
                )),
            }
        }
    }
    let e = &c.expect;
    if let Some(want) = &e.receivers
        && *want != receivers
    {
        fail("expect.receivers", list(want), list(&receivers));
    }
    if let Some(want) = &e.notified
        && *want != notified
    {
        let mut got = list(&notified);
        if let Some(w) = &inhibited_by {
            got.push_str(&format!(" ({w})"));
        }
        if !muted.is_empty() {
            got.push_str(&format!(" ({})", muted.join("; ")));
        }
        fail("expect.notified", list(want), got);
    }
    if let Some(want) = e.inhibited
        && want != inhibition.is_some()
    {
        let got = inhibited_by
            .clone()
            .unwrap_or_else(|| "not inhibited".into());
        let expected = if want { "inhibited" } else { "not inhibited" };
        fail("expect.inhibited", expected.into(), got);
    }
    if let Some(want) = &e.oncall {
        for (schedule, user) in want {
            let field = format!("expect.oncall.{schedule}");
            let Some(s) = oncall.schedule(schedule) else {
                fail(
                    &field,
                    "a schedule".into(),
                    format!("unknown schedule {schedule:?}"),
                );
                continue;
            };
            let got = s.who_is_on_call(at).map(|u| u.0);
            if got != *user {
                let show = |u: &Option<String>| u.clone().unwrap_or_else(|| "nobody".into());
                fail(&field, show(user), show(&got));
            }
        }
    }
    if let Some(esc) = &e.escalation {
        check_escalation(
            esc,
            at,
            &routes,
            &notified,
            inhibited_by.as_deref(),
            oncall,
            &mut fail,
        );
    }
    CaseResult {
        name: c.name.clone(),
        path: path.to_string(),
        failures,
    }
}

fn check_escalation(
    esc: &EscalationExpect,
    at: Timestamp,
    routes: &[&day2_alerthub::Route],
    notified: &[&str],
    inhibited_by: Option<&str>,
    oncall: &OnCall,
    fail: &mut impl FnMut(&str, String, String),
) {
    let route = routes.iter().find(|r| match &esc.receiver {
        Some(name) => r.opts.receiver == *name,
        None => oncall.policy_for_receiver(&r.opts.receiver).is_some(),
    });
    let Some(route) = route else {
        let expected = esc
            .receiver
            .clone()
            .map(|r| format!("a route to {r}"))
            .unwrap_or_else(|| "a receiver with an escalation policy".into());
        fail(
            "expect.escalation",
            expected,
            "none of the alert's receivers pages (oncall.receivers)".into(),
        );
        return;
    };
    let receiver = route.opts.receiver.as_str();
    let Some(policy) = oncall.policy_for_receiver(receiver) else {
        fail(
            "expect.escalation.receiver",
            format!("{receiver} with an escalation policy"),
            "no oncall.receivers entry".into(),
        );
        return;
    };
    if let Some(want) = &esc.policy
        && *want != policy.name
    {
        fail(
            "expect.escalation.policy",
            want.clone(),
            policy.name.clone(),
        );
    }
    let ack = match esc.ack.as_ref().map(|a| a.resolve(at)).transpose() {
        Ok(a) => a,
        Err(e) => {
            fail("expect.escalation.ack", "a valid time".into(), e);
            return;
        }
    };
    // the hub hands the group over after group_wait: that starts the escalation
    let wait = SignedDuration::try_from(route.opts.group_wait).unwrap_or(SignedDuration::ZERO);
    let trigger = at.saturating_add(wait).unwrap_or(at);
    let why_not: Option<String> = if let Some(w) = inhibited_by {
        Some(format!("nothing pages: {w}"))
    } else if !notified.contains(&receiver) {
        Some(format!("nothing pages: {receiver} is not notified at {at}"))
    } else {
        None
    };
    let horizon = policy.plan(trigger).last().map(|p| p.at).unwrap_or(trigger);
    let fired: Vec<DueStep> = if why_not.is_some() {
        Vec::new()
    } else {
        steps_due(oncall, policy, trigger, horizon, ack)
    };
    for (i, s) in esc.steps.iter().enumerate() {
        let field = format!("expect.escalation.steps[{i}]");
        let what = format!("step {} of round {}", s.step, s.round);
        let found = fired
            .iter()
            .find(|d| d.round == s.round && d.step_index as u32 + 1 == s.step);
        match (found, s.fires) {
            (None, true) => {
                let got = why_not.clone().unwrap_or_else(|| {
                    if s.step as usize > policy.steps.len() || s.round > policy.rounds() {
                        format!("policy {} has no {what}", policy.name)
                    } else {
                        format!("{what} does not fire (acknowledged at {})", fmt_opt(ack))
                    }
                });
                fail(&field, format!("{what} fires"), got);
            }
            (Some(d), false) => fail(
                &field,
                format!("{what} does not fire"),
                format!("it fires at {} paging {}", d.at, list(&users(d))),
            ),
            (None, false) => {}
            (Some(d), true) => {
                if let Some(want) = &s.at {
                    match want.resolve(at) {
                        Ok(t) if t != d.at => fail(
                            &format!("{field}.at"),
                            format!("{what} at {t}"),
                            format!("at {} (triggered {trigger}: {at} + group_wait)", d.at),
                        ),
                        Ok(_) => {}
                        Err(e) => fail(&format!("{field}.at"), "a valid time".into(), e),
                    }
                }
                if let Some(want) = &s.users
                    && *want != users(d)
                {
                    let mut got = list(&users(d));
                    if !d.empty_schedules.is_empty() {
                        got.push_str(&format!(
                            " (nobody on call in {})",
                            d.empty_schedules.join(", ")
                        ));
                    }
                    fail(&format!("{field}.users"), list(want), got);
                }
            }
        }
    }
}

fn users(d: &DueStep) -> Vec<String> {
    d.users.iter().map(|u| u.0.clone()).collect()
}

fn fmt_opt(t: Option<Timestamp>) -> String {
    t.map_or("never".into(), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AM: &str = r#"
route:
  receiver: default
  group_wait: 30s
  routes:
    - matchers: ['team="db"']
      receiver: db-pager
      continue: true
    - matchers: ['team="db"']
      receiver: db-chat
      mute_time_intervals: [nights]
receivers: [{name: default}, {name: db-pager}, {name: db-chat}]
inhibit_rules:
  - source_matchers: ['alertname="DatacenterDown"']
    target_matchers: ['team="db"']
time_intervals:
  - name: nights
    time_intervals: [{ times: [{ start_time: "00:00", end_time: "06:00" }] }]
"#;

    const ONCALL: &str = r#"
oncall:
  users: [{id: alice}, {id: bob}, {id: lead}]
  schedules:
    - name: db-primary
      time_zone: UTC
      layers:
        - { users: [alice, bob], rotation: weekly, handoff: "monday 09:00", start: 2026-03-09 }
  escalation_policies:
    - name: db
      steps:
        - targets: [{ schedule: db-primary }]
        - delay: 15m
          targets: [{ user: lead }]
      repeat: 1
      repeat_after: 30m
  receivers:
    db-pager: { escalation_policy: db }
"#;

    fn check(tests: &str) -> Vec<CaseResult> {
        let hub = day2_alerthub::load_str(AM).unwrap();
        let oc = OnCall::parse_document(ONCALL, "day2.yml").unwrap();
        let file: LoopFile =
            serde_yaml_ng::from_str(&format!("config: day2.yml\ntests:\n{tests}")).unwrap();
        run(&file, &hub, &oc)
    }

    #[test]
    fn a_passing_case() {
        let r = check(
            r#"
  - name: night
    at: 2026-03-10T02:00:00Z
    alert: { alertname: PostgresDown, team: db }
    expect:
      receivers: [db-pager, db-chat]
      notified: [db-pager]
      inhibited: false
      oncall: { db-primary: alice }
      escalation:
        policy: db
        ack: +20m
        steps:
          - { step: 1, at: +30s, users: [alice] }
          - { step: 2, at: 2026-03-10T02:15:30Z, users: [lead] }
          - { step: 1, round: 2, fires: false }
"#,
        );
        assert_eq!(r[0].failures, vec![], "{r:?}");
    }

    #[test]
    fn failures_say_what_was_expected_and_what_came() {
        let r = check(
            r#"
  - name: wrong
    at: 2026-03-16T10:00:00Z
    alert: { alertname: PostgresDown, team: db }
    firing: [{ alertname: DatacenterDown }]
    expect:
      receivers: [db-pager]
      inhibited: false
      oncall: { db-primary: alice, nope: null }
      escalation:
        steps:
          - { step: 1 }
"#,
        );
        let f = &r[0].failures;
        assert_eq!(f.len(), 5, "{f:#?}");
        assert_eq!(f[0].path, "tests[0].expect.receivers");
        assert_eq!(
            (f[0].expected.as_str(), f[0].got.as_str()),
            ("[db-pager]", "[db-pager, db-chat]")
        );
        assert_eq!(f[1].path, "tests[0].expect.inhibited");
        assert!(
            f[1].got.starts_with(
                "inhibited by inhibit_rules[0] (source alert {alertname=\"DatacenterDown\"})"
            ),
            "{}",
            f[1].got
        );
        assert_eq!(f[2].path, "tests[0].expect.oncall.db-primary");
        assert_eq!(
            (f[2].expected.as_str(), f[2].got.as_str()),
            ("alice", "bob")
        );
        assert_eq!(f[3].got, "unknown schedule \"nope\"");
        assert_eq!(f[4].path, "tests[0].expect.escalation.steps[0]");
        assert!(
            f[4].got.starts_with("nothing pages: inhibited"),
            "{}",
            f[4].got
        );
    }

    #[test]
    fn step_times_and_users_are_compared() {
        let r = check(
            r#"
  - name: times
    at: 2026-03-10T02:00:00Z
    alert: { team: db }
    expect:
      escalation:
        steps:
          - { step: 1, at: +0s, users: [bob] }
          - { step: 3 }
          - { step: 2, round: 2, fires: false }
"#,
        );
        let f = &r[0].failures;
        assert_eq!(f.len(), 4, "{f:#?}");
        assert_eq!(f[0].path, "tests[0].expect.escalation.steps[0].at");
        assert!(
            f[0].got.contains("at 2026-03-10T02:00:30Z (triggered"),
            "{}",
            f[0].got
        );
        assert_eq!(f[1].path, "tests[0].expect.escalation.steps[0].users");
        assert_eq!(f[2].got, "policy db has no step 3 of round 1");
        assert!(
            f[3].got
                .starts_with("it fires at 2026-03-10T03:00:30Z paging [lead]"),
            "{}",
            f[3].got
        );
    }
}
