//! An unchanged `alertmanager.yml` (Alertmanager 0.25+ format): serde types,
//! Alertmanager's validation rules, and global defaults applied to receivers.
//!
//! [`load_str`] parses and validates, then compiles the routing tree, the
//! inhibition rules and the time intervals into a [`HubConfig`].
//!
//! Errors are [`ConfigError`]s: a field path in the form serde reports it
//! (`receivers[1].slack_configs[0].api_url`), a message, and the line when it
//! is known (from the YAML parser, or found from the path by [`locate_line`]).
//! `ConfigError::render(file)` prints `file:line: field.path: message`.
//!
//! Unknown fields are refused, as Alertmanager refuses them, except inside
//! `mattermost_configs`, `jira_configs` and `incidentio_configs` (see
//! `receivers`), whose message fields are kept raw.

mod common;
mod global;
mod receivers;

pub use common::*;
pub use global::*;
pub use receivers::*;

use crate::inhibit::{InhibitRule, Inhibitor};
use crate::matchers::Matchers;
use crate::route::Route;
use crate::timeinterval::{TimeInterval, TimeIntervals};
use day2_model::labels::is_valid_label_name;
use day2_model::{MatchOp, Matcher};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

/// Route timing defaults (Alertmanager's).
pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
pub const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(5 * 60);
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);

/// The whole file. After [`load_str`], receivers carry the global defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default, deserialize_with = "nullable")]
    pub global: GlobalConfig,
    #[serde(default)]
    pub route: Option<RouteConfig>,
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub receivers: Vec<ReceiverConfig>,
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// Glob paths of template files, kept as written.
    #[serde(default, deserialize_with = "nullable")]
    pub templates: Vec<String>,
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub time_intervals: Vec<TimeInterval>,
    /// Deprecated spelling of `time_intervals`; both lists share one namespace.
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub mute_time_intervals: Vec<TimeInterval>,
    /// Alertmanager's own tracing settings; accepted and ignored.
    #[serde(default)]
    pub tracing: Option<serde_yaml_ng::Value>,
}

/// One node of the routing tree as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    #[serde(default)]
    pub receiver: Option<String>,
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// Deprecated equality matchers.
    #[serde(default, rename = "match")]
    pub match_eq: Option<BTreeMap<String, Option<String>>>,
    /// Deprecated regex matchers.
    #[serde(default)]
    pub match_re: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    pub matchers: Matchers,
    #[serde(default, deserialize_with = "opt_duration")]
    pub group_wait: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub group_interval: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub repeat_interval: Option<Duration>,
    #[serde(default, deserialize_with = "nullable")]
    pub mute_time_intervals: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub active_time_intervals: Vec<String>,
    #[serde(default, deserialize_with = "list_no_nulls")]
    pub routes: Vec<RouteConfig>,
}

impl RouteConfig {
    /// `matchers` plus the converted `match` and `match_re`; `path` names the
    /// route in errors.
    pub fn all_matchers(&self, path: &str) -> Result<Matchers, (String, String)> {
        let mut ms = self.matchers.clone();
        ms.extend(legacy_matchers(
            self.match_eq.as_ref(),
            self.match_re.as_ref(),
            path,
            ("match", "match_re"),
        )?);
        Ok(ms)
    }

    pub fn has_matchers(&self) -> bool {
        !self.matchers.is_empty()
            || self.match_eq.as_ref().is_some_and(|m| !m.is_empty())
            || self.match_re.as_ref().is_some_and(|m| !m.is_empty())
    }
}

/// Converts `match`/`match_re` maps (label -> value / regex) to matchers.
fn legacy_matchers(
    eq: Option<&BTreeMap<String, Option<String>>>,
    re: Option<&BTreeMap<String, Option<String>>>,
    path: &str,
    names: (&str, &str),
) -> Result<Vec<Matcher>, (String, String)> {
    let mut out = Vec::new();
    for (map, op, field) in [(eq, MatchOp::Equal, names.0), (re, MatchOp::Regex, names.1)] {
        for (name, value) in map.into_iter().flatten() {
            let p = format!(
                "{path}{}{field}.{name}",
                if path.is_empty() { "" } else { "." }
            );
            if !is_valid_label_name(name) {
                return Err((p, format!("invalid label name {name:?}")));
            }
            let Some(value) = value else {
                return Err((p, format!("label {name:?} has no value in {field}")));
            };
            // Alertmanager keeps old-style regexes in their anchored form
            // `^(?:re)$`; that form shows in route and group keys.
            let value = match op {
                MatchOp::Regex => format!("^(?:{value})$"),
                _ => value.clone(),
            };
            let m = Matcher::new(op, name.clone(), value).map_err(|e| (p, e.to_string()))?;
            out.push(m);
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleConfig {
    #[serde(default)]
    pub source_match: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    pub source_match_re: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    pub source_matchers: Matchers,
    #[serde(default)]
    pub target_match: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    pub target_match_re: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    pub target_matchers: Matchers,
    #[serde(default, deserialize_with = "nullable")]
    pub equal: Vec<String>,
}

/// A config error: where (field path, line if known) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// serde-style path, empty for the whole document.
    pub field: String,
    pub message: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.line {
            write!(f, "line {l}: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

impl ConfigError {
    fn at(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
            line: None,
        }
    }

    /// `file:line: field.path: message` (line omitted when unknown).
    pub fn render(&self, file: &str) -> String {
        let mut s = file.to_string();
        if let Some(l) = self.line {
            s.push_str(&format!(":{l}"));
        }
        if !self.field.is_empty() {
            s.push_str(&format!(": {}", self.field));
        }
        s.push_str(&format!(": {}", self.message));
        s
    }
}

/// The loaded configuration: the resolved file plus its compiled parts.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub config: Config,
    pub route: Route,
    pub inhibitor: Inhibitor,
    pub time_intervals: TimeIntervals,
}

impl HubConfig {
    pub fn receiver(&self, name: &str) -> Option<&ReceiverConfig> {
        self.config.receivers.iter().find(|r| r.name == name)
    }
    pub fn resolve_timeout(&self) -> Duration {
        self.config.global.resolve_timeout()
    }

    /// A one-line account of what was loaded, like the "Found:" list of
    /// `amtool check-config`.
    pub fn summary(&self) -> String {
        format!(
            "global config, route ({} routes), {} inhibit rules, {} receivers, {} templates, {} time intervals",
            self.route.walk().len(),
            self.config.inhibit_rules.len(),
            self.config.receivers.len(),
            self.config.templates.len(),
            self.time_intervals.0.len()
        )
    }

    /// The routes (and so receivers) a label set goes to, like
    /// `amtool config routes test`.
    pub fn routes_for(&self, labels: &day2_model::Labels) -> Vec<&Route> {
        self.route.match_labels(labels)
    }

    /// Receiver names for a label set, in routing order, without repeats.
    pub fn receivers_for(&self, labels: &day2_model::Labels) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for r in self.routes_for(labels) {
            if !out.contains(&r.opts.receiver.as_str()) {
                out.push(&r.opts.receiver);
            }
        }
        out
    }
}

/// Parses, validates and compiles `alertmanager.yml` text.
pub fn load_str(text: &str) -> Result<HubConfig, ConfigError> {
    let mut config = parse_str(text)?;
    let compiled = config
        .validate_and_compile()
        .map_err(|(f, m)| ConfigError::at(f, m))
        .map_err(|e| with_line(e, text))?;
    let (route, inhibitor, time_intervals) = compiled;
    Ok(HubConfig {
        config,
        route,
        inhibitor,
        time_intervals,
    })
}

fn with_line(mut e: ConfigError, text: &str) -> ConfigError {
    if e.line.is_none() {
        e.line = locate_line(text, &e.field);
    }
    e
}

/// Parses without validating (unknown fields and bad values are still errors).
pub fn parse_str(text: &str) -> Result<Config, ConfigError> {
    if text.trim().is_empty() {
        return Err(ConfigError::at("", "no route provided in config"));
    }
    // YAML merge keys (`<<: *defaults`) are resolved on a parsed tree first;
    // without them the text is read directly, which keeps the parser's
    // line numbers for syntax errors.
    let parsed = if text.contains("<<") {
        let mut v: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError {
                field: String::new(),
                line: e.location().map(|l| l.line()),
                message: strip_location(e.to_string()),
            })?;
        v.apply_merge()
            .map_err(|e| ConfigError::at("", e.to_string()))?;
        serde_path_to_error::deserialize::<_, Config>(v)
    } else {
        serde_path_to_error::deserialize::<_, Config>(serde_yaml_ng::Deserializer::from_str(text))
    };
    parsed.map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let inner = e.into_inner();
        let line = inner.location().map(|l| l.line());
        let mut msg = strip_location(inner.to_string());
        // serde_yaml_ng may prefix the message with the path it knows
        while let Some((head, rest)) = msg.split_once(": ") {
            if head.contains(' ') || !path.starts_with(head) {
                break;
            }
            msg = rest.to_string();
        }
        let e = ConfigError {
            field: path.clone(),
            message: msg,
            line: None,
        };
        // a value error is best located by its path; the parser's position
        // is the fallback (and the only hint for syntax errors)
        let mut e = with_line(e, text);
        if e.line.is_none() {
            e.line = line;
        }
        e
    })
}

fn strip_location(mut msg: String) -> String {
    if let Some(i) = msg.find(" at line ") {
        msg.truncate(i);
    }
    msg
}

type Compiled = (Route, Inhibitor, TimeIntervals);

impl Config {
    /// Alertmanager's checks, in its order; fills receivers with global
    /// defaults; compiles the route tree, inhibition rules and intervals.
    pub fn validate_and_compile(&mut self) -> Result<Compiled, (String, String)> {
        self.global.validate()?;

        let mut names = HashSet::new();
        let global = self.global.clone();
        for (i, r) in self.receivers.iter_mut().enumerate() {
            let path = format!("receivers[{i}]");
            if r.name.is_empty() {
                return Err((format!("{path}.name"), "missing name in receiver".into()));
            }
            if !names.insert(r.name.clone()) {
                return Err((
                    format!("{path}.name"),
                    format!("notification config name {:?} is not unique", r.name),
                ));
            }
            r.resolve(&global, &path)?;
        }

        let mut intervals = TimeIntervals::default();
        for (list, field) in [
            (&self.time_intervals, "time_intervals"),
            (&self.mute_time_intervals, "mute_time_intervals"),
        ] {
            for (i, ti) in list.iter().enumerate() {
                let path = format!("{field}[{i}]");
                if ti.name.is_empty() {
                    return Err((
                        format!("{path}.name"),
                        "missing name in time interval".into(),
                    ));
                }
                if intervals.0.insert(ti.name.clone(), ti.clone()).is_some() {
                    return Err((
                        format!("{path}.name"),
                        format!("time interval {:?} is not unique", ti.name),
                    ));
                }
            }
        }

        let Some(root) = &self.route else {
            return Err(("route".into(), "no routes provided".into()));
        };
        if root.receiver.as_deref().is_none_or(str::is_empty) {
            return Err((
                "route.receiver".into(),
                "root route must specify a default receiver".into(),
            ));
        }
        if root.has_matchers() {
            return Err((
                "route".into(),
                "root route must not have any matchers".into(),
            ));
        }
        if root.continue_matching {
            return Err((
                "route.continue".into(),
                "cannot have continue in root route".into(),
            ));
        }
        if !root.mute_time_intervals.is_empty() {
            return Err((
                "route.mute_time_intervals".into(),
                "root route must not have any mute time intervals".into(),
            ));
        }
        if !root.active_time_intervals.is_empty() {
            return Err((
                "route.active_time_intervals".into(),
                "root route must not have any active time intervals".into(),
            ));
        }
        check_route(root, "route", &names, &intervals)?;
        let route = Route::build(root)?;

        let mut rules = Vec::new();
        for (i, r) in self.inhibit_rules.iter().enumerate() {
            let path = format!("inhibit_rules[{i}]");
            let mut source = r.source_matchers.clone();
            source.extend(legacy_matchers(
                r.source_match.as_ref(),
                r.source_match_re.as_ref(),
                &path,
                ("source_match", "source_match_re"),
            )?);
            let mut target = r.target_matchers.clone();
            target.extend(legacy_matchers(
                r.target_match.as_ref(),
                r.target_match_re.as_ref(),
                &path,
                ("target_match", "target_match_re"),
            )?);
            for (j, l) in r.equal.iter().enumerate() {
                if !is_valid_label_name(l) {
                    return Err((
                        format!("{path}.equal[{j}]"),
                        format!("invalid label name {l:?} in equal list"),
                    ));
                }
            }
            rules.push(InhibitRule {
                index: i,
                source,
                target,
                equal: r.equal.clone(),
            });
        }
        Ok((route, Inhibitor::new(rules), intervals))
    }
}

/// Checks one route and its children: receivers and intervals exist,
/// group_by is well formed, intervals are not zero, matchers compile.
fn check_route(
    r: &RouteConfig,
    path: &str,
    receivers: &HashSet<String>,
    intervals: &TimeIntervals,
) -> Result<(), (String, String)> {
    if let Some(rcv) = &r.receiver
        && !receivers.contains(rcv)
    {
        return Err((
            format!("{path}.receiver"),
            format!("undefined receiver {rcv:?} used in route"),
        ));
    }
    if let Some(gb) = &r.group_by {
        let mut seen = HashSet::new();
        for (i, l) in gb.iter().enumerate() {
            let p = format!("{path}.group_by[{i}]");
            if l == "..." {
                if gb.len() > 1 {
                    return Err((
                        p,
                        "cannot have wildcard group_by (`...`) and other labels at the same time"
                            .into(),
                    ));
                }
                continue;
            }
            if !is_valid_label_name(l) {
                return Err((p, format!("invalid label name {l:?} in group_by list")));
            }
            if !seen.insert(l) {
                return Err((p, format!("duplicated label {l:?} in group_by")));
            }
        }
    }
    if r.group_interval.is_some_and(|d| d.is_zero()) {
        return Err((
            format!("{path}.group_interval"),
            "group_interval cannot be zero".into(),
        ));
    }
    if r.repeat_interval.is_some_and(|d| d.is_zero()) {
        return Err((
            format!("{path}.repeat_interval"),
            "repeat_interval cannot be zero".into(),
        ));
    }
    for (list, field, what) in [
        (
            &r.mute_time_intervals,
            "mute_time_intervals",
            "time interval",
        ),
        (
            &r.active_time_intervals,
            "active_time_intervals",
            "time interval",
        ),
    ] {
        for (i, n) in list.iter().enumerate() {
            if intervals.get(n).is_none() {
                return Err((
                    format!("{path}.{field}[{i}]"),
                    format!("undefined {what} {n:?} used in route"),
                ));
            }
        }
    }
    r.all_matchers(path)?;
    for (i, c) in r.routes.iter().enumerate() {
        check_route(c, &format!("{path}.routes[{i}]"), receivers, intervals)?;
    }
    Ok(())
}

/// Finds the 1-based line where a field path (`receivers[1].slack_configs[0].api_url`)
/// is written in block-style YAML; the deepest step found wins. Flow-style
/// collections (`{a: b}`, `[x, y]`) are not entered.
pub fn locate_line(text: &str, path: &str) -> Option<usize> {
    #[derive(Debug)]
    enum Step<'a> {
        Key(&'a str),
        Index(usize),
    }
    let mut steps = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut idx) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            steps.push(Step::Key(key));
        }
        while let Some(end) = idx.find(']') {
            if let Ok(n) = idx[1..end].parse() {
                steps.push(Step::Index(n));
            }
            idx = &idx[end + 1..];
        }
    }
    // (line number, indent of the first char, is "- " item, column of the key, key)
    struct L<'a> {
        no: usize,
        indent: usize,
        item: bool,
        col: usize,
        key: Option<&'a str>,
    }
    let lines: Vec<L> = text
        .lines()
        .enumerate()
        .filter_map(|(i, raw)| {
            let t = raw.trim_start();
            if t.is_empty() || t.starts_with('#') || t.starts_with("---") {
                return None;
            }
            let indent = raw.len() - t.len();
            let item = t == "-" || t.starts_with("- ");
            let body = if item { t[1..].trim_start() } else { t };
            let col = raw.len() - body.len();
            let key = body
                .split_once(": ")
                .map(|(k, _)| k)
                .or_else(|| body.strip_suffix(':'))
                .map(|k| k.trim().trim_matches(['"', '\'']));
            Some(L {
                no: i + 1,
                indent,
                item,
                col,
                key,
            })
        })
        .collect();
    let mut win: &[L] = &lines;
    let mut found = None;
    for step in steps {
        let Some(first) = win.first() else { break };
        match step {
            Step::Key(k) => {
                let col = first.col;
                let Some(pos) = win.iter().position(|l| l.col == col && l.key == Some(k)) else {
                    break;
                };
                let at = &win[pos];
                found = Some(at.no);
                let rest = &win[pos + 1..];
                let len = rest
                    .iter()
                    .position(|l| l.indent < at.col || (l.indent == at.col && !l.item))
                    .unwrap_or(rest.len());
                win = &rest[..len];
            }
            Step::Index(n) => {
                let col = first.indent;
                let items: Vec<usize> = win
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.item && l.indent == col)
                    .map(|(i, _)| i)
                    .collect();
                let Some(&start) = items.get(n) else { break };
                let end = items.get(n + 1).copied().unwrap_or(win.len());
                found = Some(win[start].no);
                win = &win[start..end];
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<HubConfig, ConfigError> {
        load_str(yaml)
    }

    fn load_err(yaml: &str) -> ConfigError {
        load(yaml).expect_err("should be refused")
    }

    const MIN: &str = "route:\n  receiver: a\nreceivers:\n  - name: a\n";

    #[test]
    fn minimal_config_gets_defaults() {
        let c = load(MIN).unwrap();
        assert_eq!(c.route.opts.receiver, "a");
        assert_eq!(c.route.opts.group_wait, DEFAULT_GROUP_WAIT);
        assert_eq!(c.route.opts.group_interval, DEFAULT_GROUP_INTERVAL);
        assert_eq!(c.route.opts.repeat_interval, DEFAULT_REPEAT_INTERVAL);
        assert_eq!(c.resolve_timeout(), Duration::from_secs(300));
    }

    #[test]
    fn receivers_for_a_label_set() {
        let c = load("route:\n  receiver: a\n  routes:\n    - matchers: [x=1]\n      receiver: b\n      continue: true\n    - matchers: [x=~\"1|2\"]\n      receiver: b\n      group_by: [y]\n    - matchers: [x=~\"1|2\"]\n      receiver: c\nreceivers:\n  - name: a\n  - name: b\n  - name: c\n").unwrap();
        let l = |v: &str| day2_model::Labels::from_pairs([("x", v)]);
        assert_eq!(c.receivers_for(&l("1")), ["b"]);
        assert_eq!(c.routes_for(&l("1")).len(), 2);
        assert_eq!(c.receivers_for(&l("2")), ["b"]);
        assert_eq!(c.receivers_for(&l("3")), ["a"]);
    }

    #[test]
    fn summary_counts_sections() {
        let c = load(MIN).unwrap();
        assert_eq!(
            c.summary(),
            "global config, route (1 routes), 0 inhibit rules, 1 receivers, 0 templates, 0 time intervals"
        );
    }

    #[test]
    fn yaml_merge_keys_are_resolved() {
        let c = load(
            "defaults: &d\n  group_wait: 10s\n  receiver: a\nroute:\n  receiver: a\n  routes:\n    - &x\n      matchers: [a=b]\n      group_wait: 1s\n    - <<: *x\n      continue: true\nreceivers:\n  - name: a\n",
        );
        // `defaults` is not a field: refused, but the merge itself worked
        assert!(c.unwrap_err().message.contains("unknown field `defaults`"));
        let c = load("route:\n  receiver: a\n  routes:\n    - &x\n      matchers: [a=b]\n      group_wait: 1s\n    - <<: *x\n      continue: true\nreceivers:\n  - name: a\n").unwrap();
        let second = &c.route.routes[1];
        assert_eq!(second.opts.group_wait, Duration::from_secs(1));
        assert!(second.continue_matching);
        assert_eq!(second.matchers.len(), 1);
        // errors after a merge are still located by their path
        let e = load_err(
            "route:\n  receiver: a\n  routes:\n    - &x\n      matchers: [a=b]\n    - <<: *x\n      group_wait: soon\nreceivers:\n  - name: a\n",
        );
        assert_eq!(e.field, "route.routes[1].group_wait");
        assert_eq!(e.line, Some(7));
    }

    #[test]
    fn root_route_rules() {
        assert_eq!(load_err("").message, "no route provided in config");
        assert_eq!(
            load_err("receivers:\n  - name: a\n").message,
            "no routes provided"
        );
        assert_eq!(
            load_err("route:\n  group_wait: 30s\n").message,
            "root route must specify a default receiver"
        );
        let e = load_err(
            "route:\n  receiver: a\n  match:\n    severity: critical\nreceivers:\n  - name: a\n",
        );
        assert_eq!(e.message, "root route must not have any matchers");
        let e = load_err("route:\n  receiver: a\n  continue: true\nreceivers:\n  - name: a\n");
        assert_eq!(e.message, "cannot have continue in root route");
    }

    #[test]
    fn receivers_must_exist_and_be_unique() {
        let e = load_err("route:\n  receiver: x\nreceivers:\n  - name: a\n");
        assert_eq!(e.message, "undefined receiver \"x\" used in route");
        assert_eq!(e.field, "route.receiver");
        assert_eq!(e.line, Some(2));
        let e = load_err(
            "route:\n  receiver: a\n  routes:\n    - match: {foo: bar}\n      routes:\n        - receiver: nope\nreceivers:\n  - name: a\n",
        );
        assert_eq!(e.field, "route.routes[0].routes[0].receiver");
        assert_eq!(e.line, Some(6));
        let e = load_err("route:\n  receiver: a\nreceivers:\n  - name: a\n  - name: a\n");
        assert_eq!(e.message, "notification config name \"a\" is not unique");
        assert_eq!(e.line, Some(5));
        let e = load_err("route:\n  receiver: a\nreceivers:\n  - name: ''\n");
        assert_eq!(e.message, "missing name in receiver");
    }

    #[test]
    fn group_by_rules() {
        let base = |gb: &str| {
            format!("route:\n  receiver: a\n  group_by: {gb}\nreceivers:\n  - name: a\n")
        };
        assert!(load(&base("['...']")).is_ok());
        assert!(
            load_err(&base("['alertname', '...']"))
                .message
                .contains("wildcard")
        );
        assert!(
            load_err(&base("['a', 'b', 'a']"))
                .message
                .contains("duplicated label \"a\"")
        );
        assert!(
            load_err(&base("['-invalid-']"))
                .message
                .contains("invalid label name")
        );
    }

    #[test]
    fn zero_intervals_refused() {
        let e = load_err("route:\n  receiver: a\n  group_interval: 0s\nreceivers:\n  - name: a\n");
        assert_eq!(e.message, "group_interval cannot be zero");
        let e = load_err("route:\n  receiver: a\n  repeat_interval: 0s\nreceivers:\n  - name: a\n");
        assert_eq!(e.message, "repeat_interval cannot be zero");
        let e = load_err("route:\n  receiver: a\n  group_wait: 5x\nreceivers:\n  - name: a\n");
        assert_eq!(e.field, "route.group_wait");
        assert_eq!(e.line, Some(3));
    }

    #[test]
    fn time_interval_references() {
        let e = load_err(
            "route:\n  receiver: a\n  routes:\n    - matchers: [x=y]\n      mute_time_intervals: [business_hours]\nreceivers:\n  - name: a\n",
        );
        assert_eq!(
            e.message,
            "undefined time interval \"business_hours\" used in route"
        );
        let ok = "time_intervals:\n  - name: bh\n    time_intervals:\n      - weekdays: ['monday:friday']\nroute:\n  receiver: a\n  routes:\n    - matchers: [x=y]\n      active_time_intervals: [bh]\nreceivers:\n  - name: a\n";
        let c = load(ok).unwrap();
        assert!(c.time_intervals.get("bh").is_some());
        let dup = "time_intervals:\n  - name: bh\nmute_time_intervals:\n  - name: bh\nroute:\n  receiver: a\nreceivers:\n  - name: a\n";
        assert!(load_err(dup).message.contains("not unique"));
        let root = "time_intervals:\n  - name: bh\nroute:\n  receiver: a\n  mute_time_intervals: [bh]\nreceivers:\n  - name: a\n";
        assert_eq!(
            load_err(root).message,
            "root route must not have any mute time intervals"
        );
    }

    #[test]
    fn unknown_fields_are_refused_with_location() {
        let e = load_err("route:\n  receiver: a\n  recevier: b\nreceivers:\n  - name: a\n");
        assert!(e.message.contains("unknown field `recevier`"), "{e}");
        assert_eq!(e.line, Some(3));
        let e = load_err(
            "route:\n  receiver: a\nreceivers:\n  - name: a\n    webhook_configs:\n      - url: http://x/\n        urll: y\n",
        );
        assert!(e.message.contains("urll"), "{e}");
        assert_eq!(e.field, "receivers[0].webhook_configs[0].urll");
        assert_eq!(
            e.render("am.yml").split(": ").next(),
            Some("am.yml:7"),
            "{}",
            e.render("am.yml")
        );
    }

    #[test]
    fn null_regex_names_the_label() {
        let e = load_err(
            "route:\n  receiver: a\n  routes:\n    - match_re:\n        bad_label:\n      receiver: a\nreceivers:\n  - name: a\n",
        );
        assert!(e.to_string().contains("bad_label"), "{e}");
        assert_eq!(e.line, Some(5));
    }

    #[test]
    fn bad_regex_and_matchers_refused() {
        let e = load_err(
            "route:\n  receiver: a\n  routes:\n    - match_re: {x: '('}\nreceivers:\n  - name: a\n",
        );
        assert!(e.field.contains("match_re.x"), "{e}");
        let e = load_err(
            "route:\n  receiver: a\n  routes:\n    - matchers: ['a=~\"(\"']\nreceivers:\n  - name: a\n",
        );
        assert!(e.field.starts_with("route.routes[0].matchers"), "{e}");
    }

    #[test]
    fn inhibit_rules_compile() {
        let c = load("route:\n  receiver: a\nreceivers:\n  - name: a\ninhibit_rules:\n  - source_match: {severity: critical}\n    target_matchers: ['severity=warning']\n    equal: [alertname]\n").unwrap();
        assert_eq!(c.inhibitor.rules().len(), 1);
        assert_eq!(c.inhibitor.rules()[0].source.len(), 1);
        let e = load_err(
            "route:\n  receiver: a\nreceivers:\n  - name: a\ninhibit_rules:\n  - equal: ['qux🙂']\n",
        );
        assert_eq!(e.message, "invalid label name \"qux🙂\" in equal list");
    }

    #[test]
    fn email_needs_smarthost_and_from() {
        let base = "route:\n  receiver: a\nreceivers:\n  - name: a\n    email_configs:\n      - to: x@example.org\n";
        assert_eq!(load_err(base).message, "no global SMTP smarthost set");
        let with_host = format!("global:\n  smtp_smarthost: 'localhost:25'\n{base}");
        assert_eq!(load_err(&with_host).message, "no global SMTP from set");
        let ok = format!("global:\n  smtp_smarthost: 'localhost:25'\n  smtp_from: a@b\n{base}");
        let c = load(&ok).unwrap();
        let e = &c.receiver("a").unwrap().email_configs[0];
        assert_eq!(e.smarthost.as_ref().unwrap().to_string(), "localhost:25");
        assert_eq!(e.hello.as_deref(), Some("localhost"));
        assert_eq!(e.require_tls, Some(true));
        assert!(!e.send_resolved());
    }

    #[test]
    fn integration_defaults_for_send_resolved() {
        let c = load("route:\n  receiver: a\nreceivers:\n  - name: a\n    webhook_configs: [{url: 'http://h/'}]\n    pagerduty_configs: [{routing_key: k}]\n    slack_configs: [{api_url: 'https://hooks.slack.com/x'}]\n    msteams_configs: [{webhook_url: 'https://t/x'}]\n").unwrap();
        let r = c.receiver("a").unwrap();
        assert!(r.webhook_configs[0].send_resolved());
        assert!(r.pagerduty_configs[0].send_resolved());
        assert!(!r.slack_configs[0].send_resolved());
        assert!(r.msteams_configs[0].send_resolved());
        assert_eq!(
            r.pagerduty_configs[0].url.as_ref().unwrap().as_str(),
            "https://events.pagerduty.com/v2/enqueue"
        );
        assert_eq!(r.integration_count(), 4);
    }

    #[test]
    fn webhook_url_rules() {
        let base = |w: &str| {
            format!(
                "route:\n  receiver: a\nreceivers:\n  - name: a\n    webhook_configs:\n      - {w}\n"
            )
        };
        assert!(
            load_err(&base("send_resolved: true"))
                .message
                .contains("url or url_file")
        );
        assert!(
            load_err(&base("{url: 'http://x/', url_file: /f}"))
                .message
                .contains("at most one")
        );
        assert!(
            load_err(&base("{url: 'ftp://x/'}"))
                .message
                .contains("unsupported scheme")
        );
        let e = load_err(
            "route:\n  receiver: a\nreceivers:\n  - name: a\n    webhook_configs:\n      -\n",
        );
        assert!(e.message.contains("empty"), "{e}");
    }

    #[test]
    fn locate_line_walks_block_yaml() {
        let doc = "a:\n  b: 1\nlist:\n  - x: 1\n    y: 2\n  # c\n  - x: 3\n    z:\n    - q: 1\n";
        assert_eq!(locate_line(doc, "a.b"), Some(2));
        assert_eq!(locate_line(doc, "list[1].x"), Some(7));
        assert_eq!(locate_line(doc, "list[0].y"), Some(5));
        assert_eq!(locate_line(doc, "list[1].z[0].q"), Some(9));
        // the deepest step that exists
        assert_eq!(locate_line(doc, "list[1].nope"), Some(7));
        assert_eq!(locate_line(doc, "list[7]"), Some(3));
        assert_eq!(locate_line(doc, "nope"), None);
    }
}
