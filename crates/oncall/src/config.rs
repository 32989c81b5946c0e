//! The `oncall:` section of `day2.yml` and its validation.
//!
//! ```yaml
//! oncall:
//!   users:
//!     - id: alice
//!       name: Alice Example
//!       email: alice@example.com
//!       time_zone: Europe/Berlin
//!       contact_methods:
//!         - email: alice@example.com
//!         - slack: env:ALICE_SLACK_WEBHOOK        # secrets by reference only
//!         - teams: file:/etc/day2/alice-teams-url
//!         - webhook: { url: "https://pager.example.com/hook", bearer_token: env:PAGER_TOKEN }
//!     - { id: bob, email: bob@example.com }    # email only: the email is the contact method
//!     - { id: carol, email: carol@example.com }
//!     - { id: dave, email: dave@example.com }
//!   schedules:
//!     - name: primary
//!       time_zone: Europe/Berlin
//!       layers:                                  # bottom to top
//!         - name: follow-the-sun
//!           users: [alice, bob, carol]
//!           rotation: weekly                     # daily | weekly | custom (with length: 3d)
//!           handoff: monday 09:00
//!           start: 2026-01-05
//!         - name: business-hours
//!           users: [dave]
//!           rotation: daily
//!           handoff: "09:00"
//!           start: 2026-01-05
//!           restrictions:
//!             - { days: ["monday:friday"], from: "09:00", to: "17:00" }
//!       overrides:                               # later entries win where they overlap
//!         - { user: bob, start: "2026-03-10T12:00", end: "2026-03-10T18:00" }
//!   escalation_policies:
//!     - name: default
//!       steps:
//!         - { delay: 0s, targets: [{ schedule: primary }] }
//!         - { delay: 15m, targets: [{ user: carol }] }
//!       repeat: 2                                # the steps run 1 + repeat times
//!       repeat_after: 30m                        # after the last step, before the next round
//!   receivers:                                   # alertmanager.yml receivers that page people
//!     team-pager: { escalation_policy: default }
//!   ack_links:                                   # signed acknowledgement links in pages
//!     secret: env:DAY2_ACK_SECRET                # HMAC key, at least 32 characters
//!     valid_for: 24h
//!     base_url: https://day2.example.com         # default: alertmanager.external_url
//!   retention: 90d                               # resolved escalations kept (0: forever)
//! ```
//!
//! Leaf values (durations, times, zones, dates, secret references) are checked while
//! deserializing, so their errors come with the line from the YAML loader; references
//! between entries are checked by [`OnCallConfig::compile`], which returns the field
//! path (relative to the section) and a message.

use crate::escalation::{EscalationPolicy, Step, Target};
use crate::parse::{
    DateValue, DurationValue, HandoffValue, InstantValue, TimeOfDayValue, WeekdaysValue, ZoneValue,
};
use crate::schedule::{Layer, Override, Restriction, Rotation, Schedule, civil_to_timestamp};
use crate::{UserId, parse};
use jiff::SignedDuration;
use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, HashSet};

/// A config error with its place: `file:line: field: message`.
pub type ConfigError = day2_yamlerr::LocatedError;

/// Most rounds an escalation policy may run.
pub const MAX_REPEAT: u32 = 100;

/// Time between the last step of a round and the first step of the next when
/// `repeat_after` is not given (PagerDuty's default escalation timeout).
pub const DEFAULT_REPEAT_AFTER: SignedDuration = SignedDuration::from_mins(30);

/// How long resolved escalations are kept when `retention` is not given.
pub const DEFAULT_RETENTION: SignedDuration = SignedDuration::from_hours(90 * 24);

/// The `oncall:` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnCallConfig {
    #[serde(default)]
    pub users: Vec<UserConfig>,
    #[serde(default)]
    pub schedules: Vec<ScheduleConfig>,
    #[serde(default)]
    pub escalation_policies: Vec<PolicyConfig>,
    /// Receivers of `alertmanager.yml` whose notifications start an escalation.
    #[serde(default)]
    pub receivers: BTreeMap<String, ReceiverConfig>,
    #[serde(default)]
    pub ack_links: Option<AckLinksConfig>,
    /// How long resolved escalations (with their events and pages) are kept;
    /// default 90d, `0` keeps them forever.
    #[serde(default)]
    pub retention: Option<DurationValue>,
}

/// What a receiver taken over by on-call does.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    pub escalation_policy: String,
}

/// Signed acknowledgement links carried by pages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckLinksConfig {
    /// The HMAC key, by reference.
    pub secret: SecretRef,
    /// How long a link works after the page was sent (default 24h).
    #[serde(default)]
    pub valid_for: Option<DurationValue>,
    /// Base URL of day2 as people's browsers reach it; default: the alert hub's
    /// `external_url`.
    #[serde(default)]
    pub base_url: Option<String>,
}

/// Default lifetime of an acknowledgement link.
pub const DEFAULT_ACK_LINK_VALIDITY: SignedDuration = SignedDuration::from_hours(24);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub time_zone: Option<ZoneValue>,
    #[serde(default)]
    pub contact_methods: Vec<ContactConfig>,
}

/// One contact method: exactly one of the fields.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactConfig {
    #[serde(default)]
    pub email: Option<String>,
    /// A Slack incoming-webhook URL, by reference.
    #[serde(default)]
    pub slack: Option<SecretRef>,
    /// A Microsoft Teams webhook URL, by reference.
    #[serde(default)]
    pub teams: Option<SecretRef>,
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// An http(s) URL without credentials in it.
    pub url: String,
    /// Sent as `Authorization: Bearer ...`, by reference.
    #[serde(default)]
    pub bearer_token: Option<SecretRef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub name: String,
    pub time_zone: ZoneValue,
    #[serde(default)]
    pub layers: Vec<LayerConfig>,
    #[serde(default)]
    pub overrides: Vec<OverrideConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RotationKind {
    Daily,
    Weekly,
    Custom,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerConfig {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub users: Vec<String>,
    pub rotation: RotationKind,
    /// Shift length of a custom rotation (`12h`, `3d`), on the wall clock.
    #[serde(default)]
    pub length: Option<DurationValue>,
    /// `HH:MM`, or `WEEKDAY HH:MM` for weekly rotations; midnight by default.
    #[serde(default)]
    pub handoff: Option<HandoffValue>,
    /// The first user's shift starts on this date at the handoff time.
    pub start: DateValue,
    /// The layer ends on this date at the handoff time.
    #[serde(default)]
    pub end: Option<DateValue>,
    #[serde(default)]
    pub restrictions: Vec<RestrictionConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestrictionConfig {
    /// Weekdays the window starts on (`mon`, `monday:friday`); all days when empty.
    #[serde(default)]
    pub days: Vec<WeekdaysValue>,
    /// Start of the window (`09:00`), midnight by default.
    #[serde(default)]
    pub from: Option<TimeOfDayValue>,
    /// End of the window (`17:00`, `24:00`), the end of the day by default; a time at
    /// or before `from` ends the next day (`from: "18:00"`, `to: "09:00"`).
    #[serde(default)]
    pub to: Option<TimeOfDayValue>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideConfig {
    pub user: String,
    /// RFC 3339, or a civil date-time in the schedule's time zone.
    pub start: InstantValue,
    pub end: InstantValue,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub name: String,
    #[serde(default)]
    pub steps: Vec<StepConfig>,
    /// How many times the steps run again after the last one.
    #[serde(default)]
    pub repeat: u32,
    /// Wait after the last step before a repeated round starts (default 30m).
    #[serde(default)]
    pub repeat_after: Option<DurationValue>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// Wait after the previous step (after the trigger for the first step).
    #[serde(default)]
    pub delay: Option<DurationValue>,
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
}

/// Exactly one of `user` or `schedule`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub schedule: Option<String>,
}

/// A reference to a secret: never the secret itself. Reading it is the caller's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `env:NAME`
    Env(String),
    /// `file:/absolute/path`
    File(String),
}

impl SecretRef {
    pub fn parse(s: &str) -> Result<SecretRef, String> {
        let inline = || {
            "must be a reference env:NAME or file:/path (secrets are never written inline)"
                .to_string()
        };
        if let Some(name) = s.strip_prefix("env:") {
            let ok = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(format!("invalid environment variable name {name:?}"));
            }
            Ok(SecretRef::Env(name.to_string()))
        } else if let Some(path) = s.strip_prefix("file:") {
            if !path.starts_with('/') {
                return Err(format!("file reference {path:?} must be an absolute path"));
            }
            Ok(SecretRef::File(path.to_string()))
        } else {
            Err(inline())
        }
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::File(p) => write!(f, "file:{p}"),
        }
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SecretRef::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A validated user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    /// The display name (the id when not given).
    pub name: String,
    pub email: Option<String>,
    pub time_zone: Option<TimeZone>,
    /// As configured; the user's `email` alone when none are configured.
    pub contact_methods: Vec<ContactMethod>,
}

/// How to reach a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactMethod {
    Email(String),
    Slack {
        webhook_url: SecretRef,
    },
    Teams {
        webhook_url: SecretRef,
    },
    Webhook {
        url: String,
        bearer_token: Option<SecretRef>,
    },
}

/// The validated on-call model: what the schedule and escalation functions read.
#[derive(Debug, Clone, Default)]
pub struct OnCall {
    pub users: Vec<User>,
    pub schedules: Vec<Schedule>,
    pub policies: Vec<EscalationPolicy>,
    /// Alert-hub receiver -> escalation policy name.
    pub receivers: BTreeMap<String, String>,
    pub ack_links: Option<AckLinks>,
    /// How long resolved escalations are kept; `None`: forever.
    pub retention: Option<SignedDuration>,
}

/// Validated acknowledgement-link settings (the secret is still a reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckLinks {
    pub secret: SecretRef,
    pub valid_for: SignedDuration,
    pub base_url: Option<String>,
}

impl OnCall {
    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id.as_str() == id)
    }

    pub fn schedule(&self, name: &str) -> Option<&Schedule> {
        self.schedules.iter().find(|s| s.name == name)
    }

    pub fn policy(&self, name: &str) -> Option<&EscalationPolicy> {
        self.policies.iter().find(|p| p.name == name)
    }

    /// The escalation policy a receiver's notifications start, if it pages.
    pub fn policy_for_receiver(&self, receiver: &str) -> Option<&EscalationPolicy> {
        self.receivers.get(receiver).and_then(|p| self.policy(p))
    }

    /// Parses and validates a YAML document whose top level holds an `oncall:` key
    /// (other top-level keys, as in a whole `day2.yml`, are ignored). Errors read
    /// `file:line: oncall.field.path: message`.
    pub fn parse_document(text: &str, file: &str) -> Result<OnCall, ConfigError> {
        #[derive(Deserialize)]
        struct Doc {
            #[serde(default)]
            oncall: OnCallConfig,
        }
        let doc: Doc = day2_yamlerr::from_str(text, file)?;
        doc.oncall
            .compile()
            .map_err(|(path, msg)| locate(text, file, &format!("oncall.{path}"), msg))
    }
}

/// Like `day2_yamlerr::at_field`, but when the exact field cannot be found (an item
/// of a flow sequence such as `users: [a, b]`) the line of the nearest enclosing
/// field is given.
pub fn locate(text: &str, file: &str, field: &str, msg: String) -> ConfigError {
    let mut e = day2_yamlerr::at_field(text, file, field, msg);
    let steps = day2_yamlerr::path::parse_path(field);
    let mut n = steps.len();
    while e.line.is_none() && n > 1 {
        n -= 1;
        e.line = day2_yamlerr::path::locate(text, &steps[..n]);
    }
    e
}

type Invalid = (String, String);

fn err<T>(path: impl Into<String>, msg: impl Into<String>) -> Result<T, Invalid> {
    Err((path.into(), msg.into()))
}

impl OnCallConfig {
    /// Validates the section and builds the model. On error returns the field path
    /// relative to the section (`schedules[0].layers[1].users[2]`) and a message;
    /// the caller prefixes the section name and locates it with `day2_yamlerr::at_field`.
    pub fn compile(&self) -> Result<OnCall, Invalid> {
        let mut out = OnCall::default();
        let mut ids = HashSet::new();
        for (i, u) in self.users.iter().enumerate() {
            out.users.push(compile_user(u, &format!("users[{i}]"))?);
            if !ids.insert(u.id.as_str()) {
                return err(
                    format!("users[{i}].id"),
                    format!("duplicate user {:?}", u.id),
                );
            }
        }
        let mut names = HashSet::new();
        for (i, s) in self.schedules.iter().enumerate() {
            let path = format!("schedules[{i}]");
            if s.name.trim().is_empty() {
                return err(format!("{path}.name"), "must not be empty");
            }
            if !names.insert(s.name.as_str()) {
                return err(
                    format!("{path}.name"),
                    format!("duplicate schedule {:?}", s.name),
                );
            }
            out.schedules.push(compile_schedule(s, &path, &ids)?);
        }
        let mut policies = HashSet::new();
        for (i, p) in self.escalation_policies.iter().enumerate() {
            let path = format!("escalation_policies[{i}]");
            if p.name.trim().is_empty() {
                return err(format!("{path}.name"), "must not be empty");
            }
            if !policies.insert(p.name.as_str()) {
                return err(
                    format!("{path}.name"),
                    format!("duplicate escalation policy {:?}", p.name),
                );
            }
            out.policies.push(compile_policy(p, &path, &ids, &names)?);
        }
        for (receiver, r) in &self.receivers {
            if !policies.contains(r.escalation_policy.as_str()) {
                return err(
                    format!("receivers.{receiver}.escalation_policy"),
                    format!("unknown escalation policy {:?}", r.escalation_policy),
                );
            }
            out.receivers
                .insert(receiver.clone(), r.escalation_policy.clone());
        }
        if let Some(a) = &self.ack_links {
            let valid_for = a
                .valid_for
                .as_ref()
                .map_or(DEFAULT_ACK_LINK_VALIDITY, |d| d.0);
            if valid_for < SignedDuration::from_mins(1) {
                return err("ack_links.valid_for", "must be at least 1m");
            }
            if let Some(u) = &a.base_url {
                check_url(u).or_else(|m| err("ack_links.base_url", m))?;
            }
            out.ack_links = Some(AckLinks {
                secret: a.secret.clone(),
                valid_for,
                base_url: a.base_url.clone(),
            });
        }
        let retention = self.retention.as_ref().map_or(DEFAULT_RETENTION, |d| d.0);
        if !retention.is_zero() && retention < SignedDuration::from_hours(1) {
            return err("retention", "must be 0 (keep forever) or at least 1h");
        }
        out.retention = (!retention.is_zero()).then_some(retention);
        Ok(out)
    }
}

fn compile_user(u: &UserConfig, path: &str) -> Result<User, Invalid> {
    let id = u.id.trim();
    if id.is_empty() {
        return err(format!("{path}.id"), "must not be empty");
    }
    if id != u.id || u.id.contains(char::is_whitespace) {
        return err(format!("{path}.id"), "must not contain white space");
    }
    if let Some(e) = &u.email {
        check_email(e).or_else(|m| err(format!("{path}.email"), m))?;
    }
    let mut methods = Vec::new();
    for (j, c) in u.contact_methods.iter().enumerate() {
        let p = format!("{path}.contact_methods[{j}]");
        let set = [
            c.email.is_some(),
            c.slack.is_some(),
            c.teams.is_some(),
            c.webhook.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if set != 1 {
            return err(p, "needs exactly one of email, slack, teams, webhook");
        }
        methods.push(if let Some(e) = &c.email {
            check_email(e).or_else(|m| err(format!("{p}.email"), m))?;
            ContactMethod::Email(e.clone())
        } else if let Some(s) = &c.slack {
            ContactMethod::Slack {
                webhook_url: s.clone(),
            }
        } else if let Some(s) = &c.teams {
            ContactMethod::Teams {
                webhook_url: s.clone(),
            }
        } else {
            let w = c.webhook.as_ref().expect("one is set");
            check_url(&w.url).or_else(|m| err(format!("{p}.webhook.url"), m))?;
            ContactMethod::Webhook {
                url: w.url.clone(),
                bearer_token: w.bearer_token.clone(),
            }
        });
    }
    if methods.is_empty()
        && let Some(e) = &u.email
    {
        methods.push(ContactMethod::Email(e.clone()));
    }
    Ok(User {
        id: UserId(id.to_string()),
        name: u
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| id.to_string()),
        email: u.email.clone(),
        time_zone: u.time_zone.as_ref().map(|z| z.0.clone()),
        contact_methods: methods,
    })
}

fn check_email(e: &str) -> Result<(), String> {
    match e.split_once('@') {
        Some((a, b)) if !a.is_empty() && b.contains('.') && !e.contains(char::is_whitespace) => {
            Ok(())
        }
        _ => Err(format!("invalid email address {e:?}")),
    }
}

fn check_url(u: &str) -> Result<(), String> {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(|| format!("{u:?} is not an http(s) URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err(format!("{u:?} has no host"));
    }
    if authority.contains('@') {
        return Err(
            "credentials must not be written in the URL; use bearer_token: env:NAME".into(),
        );
    }
    Ok(())
}

fn compile_schedule(
    s: &ScheduleConfig,
    path: &str,
    users: &HashSet<&str>,
) -> Result<Schedule, Invalid> {
    let tz = s.time_zone.0.clone();
    if s.layers.is_empty() {
        return err(
            format!("{path}.layers"),
            "a schedule needs at least one layer",
        );
    }
    let mut layers = Vec::new();
    for (j, l) in s.layers.iter().enumerate() {
        layers.push(compile_layer(
            l,
            &format!("{path}.layers[{j}]"),
            j,
            &tz,
            users,
        )?);
    }
    let mut overrides = Vec::new();
    for (j, o) in s.overrides.iter().enumerate() {
        let p = format!("{path}.overrides[{j}]");
        if !users.contains(o.user.as_str()) {
            return err(format!("{p}.user"), format!("unknown user {:?}", o.user));
        }
        let start = o
            .start
            .0
            .resolve(&tz)
            .or_else(|m| err(format!("{p}.start"), m))?;
        let end = o
            .end
            .0
            .resolve(&tz)
            .or_else(|m| err(format!("{p}.end"), m))?;
        if end <= start {
            return err(format!("{p}.end"), "must be after start");
        }
        overrides.push(Override {
            user: UserId(o.user.clone()),
            start,
            end,
        });
    }
    Ok(Schedule {
        name: s.name.clone(),
        time_zone: tz,
        layers,
        overrides,
    })
}

fn compile_layer(
    l: &LayerConfig,
    path: &str,
    index: usize,
    tz: &TimeZone,
    users: &HashSet<&str>,
) -> Result<Layer, Invalid> {
    if l.users.is_empty() {
        return err(
            format!("{path}.users"),
            "empty rotation: a layer needs at least one user",
        );
    }
    for (k, u) in l.users.iter().enumerate() {
        if !users.contains(u.as_str()) {
            return err(format!("{path}.users[{k}]"), format!("unknown user {u:?}"));
        }
    }
    let handoff = l.handoff.as_ref().map(|h| h.0).unwrap_or_default();
    if handoff.weekday.is_some() && l.rotation != RotationKind::Weekly {
        return err(
            format!("{path}.handoff"),
            "a handoff weekday is only for rotation: weekly",
        );
    }
    let length_secs = match (l.rotation, &l.length) {
        (RotationKind::Daily, None) => 86_400,
        (RotationKind::Weekly, None) => 7 * 86_400,
        (RotationKind::Custom, Some(d)) => {
            if d.0 < SignedDuration::from_mins(1) || d.0.subsec_nanos() != 0 {
                return err(
                    format!("{path}.length"),
                    "must be at least 1m, in whole seconds",
                );
            }
            d.0.as_secs()
        }
        (RotationKind::Custom, None) => {
            return err(format!("{path}.length"), "required with rotation: custom");
        }
        (_, Some(_)) => {
            return err(format!("{path}.length"), "only for rotation: custom");
        }
    };
    let time = parse::time_from_secs(handoff.time);
    let start_date = l.start.0;
    // A weekly rotation hands off on its weekday: the rotation is anchored at that
    // weekday on or before the start date, and the first user's first shift is cut
    // to begin at the start (PagerDuty's "virtual start").
    let anchor_date = match handoff.weekday {
        Some(w) => {
            let back = start_date.weekday().since(w) as i64;
            start_date
                .checked_sub(SignedDuration::from_hours(24 * back))
                .or_else(|e| err(format!("{path}.start"), e.to_string()))?
        }
        None => start_date,
    };
    let start = civil_to_timestamp(tz, start_date.to_datetime(time));
    let end = match &l.end {
        None => None,
        Some(d) => {
            let e = civil_to_timestamp(tz, d.0.to_datetime(time));
            if e <= start {
                return err(format!("{path}.end"), "must be after start");
            }
            Some(e)
        }
    };
    let mut restrictions = Vec::new();
    for (k, r) in l.restrictions.iter().enumerate() {
        let mut days = [false; 7];
        if r.days.is_empty() {
            days = [true; 7];
        }
        for d in r.days.iter().flat_map(|v| v.0.iter()) {
            days[d.to_monday_zero_offset() as usize] = true;
        }
        let from = r.from.as_ref().map_or(0, |v| v.0);
        let to = r.to.as_ref().map_or(86_400, |v| v.0);
        if from == 86_400 {
            return err(
                format!("{path}.restrictions[{k}].from"),
                "24:00 is only allowed as the end",
            );
        }
        restrictions.push(Restriction { days, from, to });
    }
    Ok(Layer {
        name: l
            .name
            .clone()
            .unwrap_or_else(|| format!("layer-{}", index + 1)),
        users: l.users.iter().map(|u| UserId(u.clone())).collect(),
        rotation: Rotation {
            anchor: anchor_date.to_datetime(time),
            length_secs,
        },
        start,
        end,
        restrictions,
    })
}

fn compile_policy(
    p: &PolicyConfig,
    path: &str,
    users: &HashSet<&str>,
    schedules: &HashSet<&str>,
) -> Result<EscalationPolicy, Invalid> {
    if p.steps.is_empty() {
        return err(format!("{path}.steps"), "a policy needs at least one step");
    }
    if p.repeat > MAX_REPEAT {
        return err(format!("{path}.repeat"), format!("at most {MAX_REPEAT}"));
    }
    let mut steps = Vec::new();
    for (j, s) in p.steps.iter().enumerate() {
        let sp = format!("{path}.steps[{j}]");
        if s.targets.is_empty() {
            return err(format!("{sp}.targets"), "a step needs at least one target");
        }
        let mut targets = Vec::new();
        for (k, t) in s.targets.iter().enumerate() {
            let tp = format!("{sp}.targets[{k}]");
            targets.push(match (&t.user, &t.schedule) {
                (Some(u), None) => {
                    if !users.contains(u.as_str()) {
                        return err(format!("{tp}.user"), format!("unknown user {u:?}"));
                    }
                    Target::User(UserId(u.clone()))
                }
                (None, Some(s)) => {
                    if !schedules.contains(s.as_str()) {
                        return err(format!("{tp}.schedule"), format!("unknown schedule {s:?}"));
                    }
                    Target::Schedule(s.clone())
                }
                _ => return err(tp, "needs exactly one of user, schedule"),
            });
        }
        steps.push(Step {
            delay: s.delay.as_ref().map_or(SignedDuration::ZERO, |d| d.0),
            targets,
        });
    }
    let repeat_after = p
        .repeat_after
        .as_ref()
        .map_or(DEFAULT_REPEAT_AFTER, |d| d.0);
    if p.repeat > 0 && repeat_after.is_zero() && steps.iter().all(|s| s.delay.is_zero()) {
        return err(
            format!("{path}.repeat_after"),
            "repeated rounds need time between them (repeat_after or step delays)",
        );
    }
    Ok(EscalationPolicy {
        name: p.name.clone(),
        steps,
        repeat: p.repeat,
        repeat_after,
    })
}

/// All weekdays, Monday first (the order of [`Restriction::days`]).
pub const WEEKDAYS: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "\
oncall:
  users:
    - id: alice
      email: alice@example.com
    - id: bob
      contact_methods:
        - slack: env:BOB_SLACK
        - webhook:
            url: https://pager.example.com/hook
            bearer_token: file:/etc/day2/token
  schedules:
    - name: primary
      time_zone: Europe/Berlin
      layers:
        - users: [alice, bob]
          rotation: daily
          handoff: \"09:00\"
          start: 2026-01-05
  escalation_policies:
    - name: default
      steps:
        - targets: [{ schedule: primary }]
        - delay: 10m
          targets: [{ user: bob }]
";

    fn load(text: &str) -> Result<OnCall, String> {
        OnCall::parse_document(text, "day2.yml").map_err(|e| e.to_string())
    }

    #[test]
    fn loads_a_valid_section() {
        let oc = load(BASE).unwrap();
        assert_eq!(oc.users.len(), 2);
        assert_eq!(
            oc.user("alice").unwrap().contact_methods,
            vec![ContactMethod::Email("alice@example.com".into())]
        );
        assert_eq!(
            oc.user("bob").unwrap().contact_methods[0],
            ContactMethod::Slack {
                webhook_url: SecretRef::Env("BOB_SLACK".into())
            }
        );
        let p = oc.policy("default").unwrap();
        assert_eq!(p.steps[1].delay, SignedDuration::from_mins(10));
        assert_eq!(p.repeat, 0);
        assert_eq!(oc.schedule("primary").unwrap().layers[0].name, "layer-1");
    }

    /// The example in this module's documentation is valid.
    #[test]
    fn the_documented_example_loads() {
        let src = include_str!("config.rs");
        let start = src.find("//! ```yaml\n").unwrap() + "//! ```yaml\n".len();
        let end = start + src[start..].find("//! ```\n").unwrap();
        let yaml: String = src[start..end]
            .lines()
            .map(|l| {
                l.strip_prefix("//! ")
                    .unwrap_or(l.trim_start_matches("//!"))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let oc = OnCall::parse_document(&yaml, "doc.yml").unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert_eq!(oc.users.len(), 4);
        assert_eq!(oc.schedules[0].layers.len(), 2);
        assert_eq!(oc.schedules[0].overrides.len(), 1);
        assert_eq!(oc.policies[0].repeat_after, SignedDuration::from_mins(30));
    }

    #[test]
    fn ignores_other_sections_and_accepts_no_oncall() {
        assert!(load("server: {listen: x}\n").unwrap().users.is_empty());
    }

    fn expect_err(from: &str, to: &str, want: &str) {
        let text = BASE.replacen(from, to, 1);
        assert_ne!(text, BASE, "replacement {from:?} did not apply");
        let got = load(&text).expect_err("should fail");
        assert!(got.contains(want), "got {got:?}, want {want:?}");
    }

    #[test]
    fn retention_defaults_to_90d_and_is_validated_with_its_line() {
        assert_eq!(load(BASE).unwrap().retention, Some(DEFAULT_RETENTION));
        let with = |v: &str| BASE.replacen("oncall:\n", &format!("oncall:\n  retention: {v}\n"), 1);
        assert_eq!(load(&with("0")).unwrap().retention, None);
        assert_eq!(
            load(&with("30d")).unwrap().retention,
            Some(SignedDuration::from_hours(30 * 24))
        );
        let e = load(&with("30m")).unwrap_err();
        assert!(
            e.contains("day2.yml:2: oncall.retention: must be 0 (keep forever) or at least 1h"),
            "{e}"
        );
        let e = load(&with("90x")).unwrap_err();
        assert!(
            e.contains("day2.yml:2") && e.contains("retention") && e.contains("unknown unit"),
            "{e}"
        );
    }

    #[test]
    fn reports_errors_with_line_and_path() {
        expect_err(
            "users: [alice, bob]",
            "users: [alice, zoe]",
            "day2.yml:15: oncall.schedules[0].layers[0].users[1]: unknown user \"zoe\"",
        );
        expect_err(
            "users: [alice, bob]",
            "users: []",
            "oncall.schedules[0].layers[0].users: empty rotation",
        );
        expect_err(
            "time_zone: Europe/Berlin",
            "time_zone: Europe/Atlantis",
            "day2.yml:13: oncall.schedules[0].time_zone: unknown time zone \"Europe/Atlantis\"",
        );
        expect_err(
            "{ schedule: primary }",
            "{ schedule: secondary }",
            "day2.yml:22: oncall.escalation_policies[0].steps[0].targets[0].schedule: unknown schedule \"secondary\"",
        );
        expect_err(
            "{ user: bob }",
            "{ user: bob, schedule: primary }",
            "needs exactly one of user, schedule",
        );
        expect_err(
            "slack: env:BOB_SLACK",
            "slack: https://hooks.slack.com/services/T0/B0/secret",
            "day2.yml:7: oncall.users[1].contact_methods[0].slack: must be a reference env:NAME or file:/path",
        );
        expect_err(
            "bearer_token: file:/etc/day2/token",
            "bearer_token: file:token",
            "must be an absolute path",
        );
        expect_err(
            "url: https://pager.example.com/hook",
            "url: https://me:pw@pager.example.com/hook",
            "credentials must not be written in the URL",
        );
        expect_err(
            "rotation: daily",
            "rotation: hourly",
            "unknown variant `hourly`",
        );
        expect_err(
            "rotation: daily",
            "rotation: custom",
            "oncall.schedules[0].layers[0].length: required with rotation: custom",
        );
        expect_err(
            "handoff: \"09:00\"",
            "handoff: \"monday 09:00\"",
            "a handoff weekday is only for rotation: weekly",
        );
        expect_err("start: 2026-01-05", "start: 2026-13-05", "invalid date");
        expect_err(
            "rotation: daily",
            "rotation: daily\n          colour: red",
            "unknown field `colour`",
        );
        expect_err(
            "- id: bob",
            "- id: alice",
            "oncall.users[1].id: duplicate user",
        );
        expect_err("delay: 10m", "delay: 10min", "unknown unit \"min\"");
        expect_err("delay: 10m", "delay: 10 minutes", "needs a unit");
    }

    #[test]
    fn receivers_and_ack_links_are_checked() {
        let with = |extra: &str| format!("{BASE}  {extra}\n");
        let oc = load(&with(
            "receivers: { pager: { escalation_policy: default } }\n  ack_links: { secret: env:ACK }",
        ))
        .unwrap();
        assert_eq!(oc.policy_for_receiver("pager").unwrap().name, "default");
        assert!(oc.policy_for_receiver("other").is_none());
        let links = oc.ack_links.unwrap();
        assert_eq!(links.valid_for, DEFAULT_ACK_LINK_VALIDITY);
        assert_eq!(links.secret, SecretRef::Env("ACK".into()));
        let e = load(&with(
            "receivers:\n    pager:\n      escalation_policy: nope",
        ))
        .unwrap_err();
        assert!(
            e.contains("day2.yml:27: oncall.receivers.pager.escalation_policy: unknown escalation policy \"nope\""),
            "{e}"
        );
        let e = load(&with("ack_links:\n    secret: env:ACK\n    valid_for: 10s")).unwrap_err();
        assert!(
            e.contains("oncall.ack_links.valid_for: must be at least 1m"),
            "{e}"
        );
        let e = load(&with("ack_links:\n    secret: s3cret")).unwrap_err();
        assert!(
            e.contains("oncall.ack_links.secret: must be a reference"),
            "{e}"
        );
    }

    #[test]
    fn overrides_are_checked() {
        let with = |o: &str| {
            BASE.replace(
                "  escalation_policies:",
                &format!("{o}  escalation_policies:"),
            )
        };
        let ok = with(
            "      overrides:\n        - { user: bob, start: \"2026-03-10T12:00\", end: \"2026-03-10T18:00\" }\n        - { user: alice, start: \"2026-03-10T11:00:00Z\", end: \"2026-03-10T13:00:00Z\" }\n",
        );
        let oc = load(&ok).unwrap();
        let s = oc.schedule("primary").unwrap();
        assert_eq!(s.overrides.len(), 2);
        assert_eq!(
            s.overrides[0].start,
            "2026-03-10T11:00:00Z".parse::<jiff::Timestamp>().unwrap()
        );
        let bad = with(
            "      overrides:\n        - { user: bob, start: \"2026-03-10T12:00\", end: \"2026-03-10T12:00\" }\n",
        );
        assert!(
            load(&bad)
                .unwrap_err()
                .contains("oncall.schedules[0].overrides[0].end: must be after start")
        );
        let bad = with(
            "      overrides:\n        - { user: eve, start: \"2026-03-10T12:00\", end: \"2026-03-10T13:00\" }\n",
        );
        assert!(load(&bad).unwrap_err().contains("unknown user \"eve\""));
    }
}
