//! Runbook definitions: the `remediation:` section of day2.yml and runbook
//! files (`runbooks: [...]`) in a directory. Unknown fields are errors;
//! validation errors carry the field path and, through `day2-yamlerr`, the line.

use crate::duration::Dur;
use crate::matchers::parse_matcher;
use crate::params::CompiledParam;
use crate::template::{Segment, Template, is_ident};
use day2_model::Matcher;
use day2_yamlerr::LocatedError;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The `remediation:` section of day2.yml.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemediationConfig {
    /// Runbooks written inline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runbooks: Vec<Runbook>,
    /// A directory of runbook files (`*.yml`, `*.yaml`, each `runbooks: [...]`),
    /// relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbooks_dir: Option<PathBuf>,
    /// Receivers of alertmanager.yml whose notifications propose runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receivers: Vec<String>,
    /// Every run is a dry run (the plan is recorded, nothing is executed).
    #[serde(default)]
    pub dry_run: bool,
    /// How often a verify condition is evaluated until its deadline (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_interval: Option<Dur>,
    /// Restricted ranges (loopback, private, link-local) that http steps and
    /// the Kubernetes API server may be reached at.
    #[serde(default)]
    pub egress: EgressConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
}

/// The cluster `kubernetes` steps act on: a kubeconfig file, or the pod's
/// service account (`in_cluster: true`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Relative to day2.yml.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(default)]
    pub in_cluster: bool,
    /// `fieldManager` of day2's writes (default `day2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_manager: Option<String>,
    /// Per request (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
}

/// One runbook file in `runbooks_dir`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunbookFile {
    pub runbooks: Vec<Runbook>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runbook {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Alert label matchers, one per string (`alertname="DiskFull"`); all must match.
    #[serde(rename = "match")]
    pub matchers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<ParamSpec>,
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verify>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_failure: Vec<Step>,
    #[serde(default)]
    pub guardrails: Guardrails,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    #[default]
    String,
    Int,
    Enum,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: ParamType,
    /// Allowlist regex, fully anchored (`^(?:...)$`); required for `string`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The allowed values of an `enum`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// The alert label that supplies the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_label: Option<String>,
    #[serde(
        default,
        deserialize_with = "scalar_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub default: Option<String>,
}

/// One step: a name and exactly one executor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubeStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ansible: Option<AnsibleStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate: Option<EscalateStep>,
}

/// Hands the run to people: day2's escalation (on-call, incidents) with a
/// message. `policy` (an escalation policy) or `user` (one on-call user)
/// names whom to page; without either, the policy that already escalates
/// the run's alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalateStep {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecStep {
    /// argv; `command[0]` is the program (absolute, or found on the allowlisted PATH).
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// Working directory (relative to the runbook file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpStep {
    #[serde(default = "default_method")]
    pub method: String,
    /// Placeholders are percent-encoded (one path segment or query value).
    pub url: String,
    /// Secrets (`Authorization`, tokens, keys) only as `env:NAME` or
    /// `file:/path` references, resolved when the request is sent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// JSON; placeholders only inside "..." strings (or an int param alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// Statuses that count as success (default: any 2xx).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_status: Vec<u16>,
}

/// Is a header value a secret reference (`env:NAME`, `file:/path`)?
pub fn is_secret_ref(v: &str) -> bool {
    v.starts_with("env:") || v.starts_with("file:")
}

/// Header names whose values are credentials.
fn sensitive_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization" | "proxy-authorization" | "cookie"
    ) || ["token", "secret", "password", "api-key", "apikey", "auth"]
        .iter()
        .any(|w| n.contains(w))
}

fn default_method() -> String {
    "POST".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KubeAction {
    Scale,
    RolloutRestart,
    RolloutUndo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeStep {
    pub action: KubeAction,
    pub namespace: String,
    pub deployment: String,
    /// For `scale`: a number or `{{ param.NAME }}` of an `int` param.
    #[serde(
        default,
        deserialize_with = "scalar_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub replicas: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnsibleStep {
    /// Playbook path (relative to the runbook file); no placeholders.
    pub playbook: PathBuf,
    /// Inventory path or host list (`host1,host2,`).
    pub inventory: String,
    /// Passed as one JSON argv element; string leaves may hold placeholders.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_vars: BTreeMap<String, serde_json::Value>,
    /// `--connection` (e.g. `local`, `ssh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    /// PromQL that must return a non-empty result; placeholders only inside string literals.
    pub expr: String,
    pub within: Dur,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    None,
    /// The default: a person other than the requester approves each run.
    #[default]
    Required,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxRuns {
    pub count: u32,
    pub window: Dur,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    /// Consecutive failed runs that open the breaker.
    pub failures: u32,
    /// After this long open, one trial run is allowed (half-open).
    pub reset_after: Dur,
}

/// Guardrails; every field has a conservative default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Guardrails {
    pub dry_run: bool,
    pub approval: Approval,
    pub max_runs: MaxRuns,
    pub cooldown: Dur,
    pub circuit_breaker: CircuitBreaker,
    /// Runs in progress at once on one target (across runbooks).
    pub concurrency: u32,
    /// Distinct targets this runbook may act on at once.
    pub blast_radius: u32,
    /// The alert label that names the target.
    pub target_label: String,
}

impl Default for Guardrails {
    fn default() -> Self {
        Guardrails {
            dry_run: false,
            approval: Approval::Required,
            max_runs: MaxRuns {
                count: 3,
                window: Dur::from_secs(3600),
            },
            cooldown: Dur::from_secs(300),
            circuit_breaker: CircuitBreaker {
                failures: 3,
                reset_after: Dur::from_secs(3600),
            },
            concurrency: 1,
            blast_radius: 1,
            target_label: "instance".into(),
        }
    }
}

/// Accepts a YAML string, integer or bool as text.
fn scalar_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string, integer or boolean")
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// A validation error: the field path (relative to where the runbook sits) and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

fn ferr<T>(path: impl Into<String>, message: impl Into<String>) -> Result<T, FieldError> {
    Err(FieldError {
        path: path.into(),
        message: message.into(),
    })
}

/// Environment names a runbook may not set: they change how programs load or
/// how shells start.
fn forbidden_env(name: &str) -> bool {
    name.starts_with("LD_")
        || name.starts_with("DYLD_")
        || name.starts_with("BASH_FUNC_")
        || matches!(
            name,
            "BASH_ENV" | "ENV" | "IFS" | "PYTHONSTARTUP" | "PERL5OPT"
        )
}

fn is_label_name(s: &str) -> bool {
    is_ident(s)
}

/// `day2_yamlerr::at_field`, falling back to the nearest enclosing field that
/// can be located (flow-style `[...]` and `{...}` values have no line of their
/// own for their elements).
fn at_field(text: &str, file: &str, field: &str, message: String) -> LocatedError {
    use day2_yamlerr::path::{locate, parse_path};
    let mut e = day2_yamlerr::at_field(text, file, field, message);
    let mut steps = parse_path(field);
    while e.line.is_none() && steps.pop().is_some() && !steps.is_empty() {
        e.line = locate(text, &steps);
    }
    e
}

/// Where a placeholder's value will land; decides what may be used there.
struct Ctx<'a> {
    params: &'a BTreeMap<&'a str, &'a ParamSpec>,
}

impl Ctx<'_> {
    fn template(&self, s: &str, path: &str) -> Result<Template, FieldError> {
        let t = Template::parse(s).or_else(|m| ferr(path, m))?;
        for p in t.params() {
            if !self.params.contains_key(p) {
                return ferr(
                    path,
                    format!("`{{{{ param.{p} }}}}`: param `{p}` is not declared in `params`"),
                );
            }
        }
        Ok(t)
    }

    fn no_placeholder(&self, s: &str, path: &str, what: &str) -> Result<(), FieldError> {
        if self.template(s, path)?.has_params() {
            return ferr(path, format!("{what} may not contain placeholders"));
        }
        Ok(())
    }

    fn env(&self, env: &BTreeMap<String, String>, path: &str) -> Result<(), FieldError> {
        for (k, v) in env {
            let p = format!("{path}.{k}");
            if !is_ident(k) {
                return ferr(p, "environment variable names are [A-Za-z_][A-Za-z0-9_]*");
            }
            if forbidden_env(k) {
                return ferr(p, format!("setting {k} is not allowed"));
            }
            let t = self.template(v, &p)?;
            if matches!(k.as_str(), "PATH" | "HOME") && t.has_params() {
                return ferr(p, format!("{k} may not contain placeholders"));
            }
        }
        Ok(())
    }

    fn timeout(&self, t: &Option<Dur>, path: &str) -> Result<(), FieldError> {
        if t.is_some_and(|d| d.is_zero()) {
            return ferr(path, "must be greater than 0");
        }
        Ok(())
    }

    fn json(&self, v: &serde_json::Value, path: &str) -> Result<(), FieldError> {
        match v {
            serde_json::Value::String(s) => self.template(s, path).map(|_| ()),
            serde_json::Value::Array(a) => a
                .iter()
                .enumerate()
                .try_for_each(|(i, v)| self.json(v, &format!("{path}[{i}]"))),
            serde_json::Value::Object(o) => o.iter().try_for_each(|(k, v)| {
                let p = format!("{path}.{k}");
                self.no_placeholder(k, &p, "keys")?;
                self.json(v, &p)
            }),
            _ => Ok(()),
        }
    }

    fn step(&self, s: &Step, path: &str) -> Result<(), FieldError> {
        let n = [
            s.exec.is_some(),
            s.http.is_some(),
            s.kubernetes.is_some(),
            s.ansible.is_some(),
            s.escalate.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if n != 1 {
            return ferr(
                path,
                "a step needs exactly one of exec, http, kubernetes, ansible, escalate",
            );
        }
        if let Some(e) = &s.escalate {
            let p = format!("{path}.escalate.message");
            if e.message.trim().is_empty() {
                return ferr(p, "must not be empty");
            }
            self.template(&e.message, &p)?;
            for (field, v) in [("policy", &e.policy), ("user", &e.user)] {
                if v.as_deref().is_some_and(|v| v.trim().is_empty()) {
                    return ferr(format!("{path}.escalate.{field}"), "must not be empty");
                }
            }
            if e.policy.is_some() && e.user.is_some() {
                return ferr(
                    format!("{path}.escalate.user"),
                    "name either policy or user, not both",
                );
            }
        }
        if let Some(e) = &s.exec {
            let p = format!("{path}.exec");
            let Some(program) = e.command.first() else {
                return ferr(format!("{p}.command"), "must not be empty");
            };
            if program.is_empty() {
                return ferr(format!("{p}.command[0]"), "the program must not be empty");
            }
            self.no_placeholder(program, &format!("{p}.command[0]"), "the program")?;
            for (i, a) in e.command.iter().enumerate().skip(1) {
                self.template(a, &format!("{p}.command[{i}]"))?;
            }
            self.env(&e.env, &format!("{p}.env"))?;
            self.timeout(&e.timeout, &format!("{p}.timeout"))?;
        }
        if let Some(h) = &s.http {
            let p = format!("{path}.http");
            if !matches!(
                h.method.as_str(),
                "GET" | "POST" | "PUT" | "PATCH" | "DELETE"
            ) {
                return ferr(
                    format!("{p}.method"),
                    "must be GET, POST, PUT, PATCH or DELETE",
                );
            }
            let t = self.template(&h.url, &format!("{p}.url"))?;
            match t.segments.first() {
                Some(Segment::Lit(l))
                    if (l.starts_with("http://") || l.starts_with("https://"))
                        && l.splitn(4, '/').nth(3).is_some() => {}
                _ => {
                    return ferr(
                        format!("{p}.url"),
                        "must start with http:// or https:// and a literal host followed by /",
                    );
                }
            }
            for (k, v) in &h.headers {
                let hp = format!("{p}.headers.{k}");
                if k.is_empty()
                    || !k
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
                {
                    return ferr(hp, "not a valid header name");
                }
                if is_secret_ref(v) {
                    self.no_placeholder(v, &hp, "a secret reference")?;
                    let rest = v.split_once(':').map(|x| x.1).unwrap_or("");
                    if rest.is_empty() {
                        return ferr(hp, "names no variable or file");
                    }
                } else if sensitive_header(k) {
                    return ferr(
                        hp,
                        "credentials are given as env:NAME or file:/path references, never inline",
                    );
                } else {
                    self.template(v, &hp)?;
                }
            }
            if let Some(b) = &h.body {
                let bp = format!("{p}.body");
                let t = self.template(b, &bp)?;
                check_json_placeholders(&t, self.params, &bp)?;
            }
            if h.expect_status.iter().any(|c| !(100..=599).contains(c)) {
                return ferr(format!("{p}.expect_status"), "HTTP statuses are 100..=599");
            }
            self.timeout(&h.timeout, &format!("{p}.timeout"))?;
        }
        if let Some(k) = &s.kubernetes {
            let p = format!("{path}.kubernetes");
            self.template(&k.namespace, &format!("{p}.namespace"))?;
            self.template(&k.deployment, &format!("{p}.deployment"))?;
            match (k.action, &k.replicas) {
                (KubeAction::Scale, None) => {
                    return ferr(format!("{p}.replicas"), "required for scale");
                }
                (KubeAction::Scale, Some(r)) => {
                    let rp = format!("{p}.replicas");
                    let t = self.template(r, &rp)?;
                    if let Some(name) = t.single_param() {
                        if self.params[name].kind != ParamType::Int {
                            return ferr(rp, format!("param `{name}` must be of type int"));
                        }
                    } else if t.has_params() || r.parse::<u32>().is_err() {
                        return ferr(
                            rp,
                            "must be a non-negative integer or one `{{ param.NAME }}`",
                        );
                    }
                }
                (_, Some(_)) => return ferr(format!("{p}.replicas"), "only for scale"),
                (_, None) => {}
            }
        }
        if let Some(a) = &s.ansible {
            let p = format!("{path}.ansible");
            let pb = a.playbook.to_string_lossy();
            if pb.is_empty() {
                return ferr(format!("{p}.playbook"), "must not be empty");
            }
            self.no_placeholder(&pb, &format!("{p}.playbook"), "the playbook")?;
            if a.inventory.is_empty() {
                return ferr(format!("{p}.inventory"), "must not be empty");
            }
            self.template(&a.inventory, &format!("{p}.inventory"))?;
            for (k, v) in &a.extra_vars {
                let vp = format!("{p}.extra_vars.{k}");
                if !is_ident(k) {
                    return ferr(vp, "variable names are [A-Za-z_][A-Za-z0-9_]*");
                }
                self.json(v, &vp)?;
            }
            if let Some(c) = &a.connection
                && (c.is_empty()
                    || !c
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            {
                return ferr(
                    format!("{p}.connection"),
                    "must be a connection plugin name",
                );
            }
            if let Some(l) = &a.limit {
                self.template(l, &format!("{p}.limit"))?;
            }
            self.env(&a.env, &format!("{p}.env"))?;
            self.timeout(&a.timeout, &format!("{p}.timeout"))?;
        }
        Ok(())
    }
}

/// Checks that every placeholder of a JSON body sits inside a "..." string
/// (values are escaped as JSON string content) or is an int param on its own.
fn check_json_placeholders(
    t: &Template,
    params: &BTreeMap<&str, &ParamSpec>,
    path: &str,
) -> Result<(), FieldError> {
    let mut in_string = false;
    let mut escaped = false;
    for seg in &t.segments {
        match seg {
            Segment::Lit(l) => {
                for c in l.chars() {
                    if escaped {
                        escaped = false;
                    } else if in_string && c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        in_string = !in_string;
                    }
                }
            }
            Segment::Param(p) => {
                let int = params
                    .get(p.as_str())
                    .is_some_and(|s| s.kind == ParamType::Int);
                if (!in_string && !int) || escaped {
                    return ferr(
                        path,
                        format!("`{{{{ param.{p} }}}}` must be inside a \"...\" JSON string"),
                    );
                }
            }
        }
    }
    Ok(())
}

/// Checks that every placeholder of a PromQL expression sits inside a
/// double- or single-quoted string literal (values are escaped for those).
fn check_promql_placeholders(t: &Template, path: &str) -> Result<(), FieldError> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for seg in &t.segments {
        match seg {
            Segment::Lit(l) => {
                for c in l.chars() {
                    match quote {
                        Some(q) => {
                            if escaped {
                                escaped = false;
                            } else if c == '\\' && q != '`' {
                                escaped = true;
                            } else if c == q {
                                quote = None;
                            }
                        }
                        None if matches!(c, '"' | '\'' | '`') => quote = Some(c),
                        None => {}
                    }
                }
            }
            Segment::Param(p) => {
                if !matches!(quote, Some('"' | '\'')) || escaped {
                    return ferr(
                        path,
                        format!(
                            "`{{{{ param.{p} }}}}` must be inside a \"...\" or '...' string literal"
                        ),
                    );
                }
            }
        }
    }
    Ok(())
}

impl Runbook {
    /// Validates the runbook; paths in errors are relative to the runbook.
    pub fn check(&self) -> Result<(), FieldError> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return ferr("name", "must be non-empty and use only [A-Za-z0-9_.-]");
        }
        if self.matchers.is_empty() {
            return ferr(
                "match",
                "at least one matcher is required (a runbook never matches every alert)",
            );
        }
        for (i, m) in self.matchers.iter().enumerate() {
            parse_matcher(m).or_else(|e| ferr(format!("match[{i}]"), e))?;
        }
        let mut declared = BTreeMap::new();
        for (i, p) in self.params.iter().enumerate() {
            let path = format!("params[{i}]");
            if !is_ident(&p.name) {
                return ferr(format!("{path}.name"), "must match [A-Za-z_][A-Za-z0-9_]*");
            }
            if declared.insert(p.name.as_str(), p).is_some() {
                return ferr(
                    format!("{path}.name"),
                    format!("param `{}` declared twice", p.name),
                );
            }
            match p.kind {
                ParamType::String if p.pattern.is_none() => {
                    return ferr(
                        format!("{path}.pattern"),
                        "a string param needs an allowlist pattern",
                    );
                }
                ParamType::Enum if p.values.is_empty() => {
                    return ferr(format!("{path}.values"), "an enum param needs its values");
                }
                ParamType::String | ParamType::Int if !p.values.is_empty() => {
                    return ferr(format!("{path}.values"), "only for type enum");
                }
                ParamType::String | ParamType::Enum if p.min.is_some() || p.max.is_some() => {
                    return ferr(format!("{path}.min"), "min and max are only for type int");
                }
                _ => {}
            }
            if let (Some(a), Some(b)) = (p.min, p.max)
                && a > b
            {
                return ferr(format!("{path}.min"), "greater than max");
            }
            if let Some(l) = &p.from_label
                && !is_label_name(l)
            {
                return ferr(format!("{path}.from_label"), "not a valid label name");
            }
            let c = CompiledParam::compile(p).or_else(|e| ferr(format!("{path}.pattern"), e))?;
            if let Some(d) = &p.default {
                c.check(d).or_else(|e| {
                    ferr(format!("{path}.default"), format!("default refused: {e}"))
                })?;
            }
        }
        let ctx = Ctx { params: &declared };
        if self.steps.is_empty() {
            return ferr("steps", "at least one step is required");
        }
        for (field, steps) in [("steps", &self.steps), ("on_failure", &self.on_failure)] {
            let mut names = BTreeSet::new();
            for (i, s) in steps.iter().enumerate() {
                let path = format!("{field}[{i}]");
                if let Some(n) = &s.name {
                    if n.is_empty() {
                        return ferr(format!("{path}.name"), "must not be empty");
                    }
                    if !names.insert(n.clone()) {
                        return ferr(
                            format!("{path}.name"),
                            format!("step name `{n}` used twice"),
                        );
                    }
                }
                ctx.step(s, &path)?;
            }
        }
        if let Some(v) = &self.verify {
            if v.expr.trim().is_empty() {
                return ferr("verify.expr", "must not be empty");
            }
            let t = ctx.template(&v.expr, "verify.expr")?;
            check_promql_placeholders(&t, "verify.expr")?;
            // placeholders sit inside string literals: any value keeps the syntax
            day2_promql::format_query(&t.render(|_| String::new()))
                .or_else(|e| ferr("verify.expr", format!("invalid PromQL: {e}")))?;
            if v.within.is_zero() {
                return ferr("verify.within", "must be greater than 0");
            }
        }
        let g = &self.guardrails;
        if g.max_runs.count == 0 {
            return ferr("guardrails.max_runs.count", "must be at least 1");
        }
        if g.max_runs.window.is_zero() {
            return ferr("guardrails.max_runs.window", "must be greater than 0");
        }
        if g.circuit_breaker.failures == 0 {
            return ferr("guardrails.circuit_breaker.failures", "must be at least 1");
        }
        if g.concurrency == 0 {
            return ferr("guardrails.concurrency", "must be at least 1");
        }
        if g.blast_radius == 0 {
            return ferr("guardrails.blast_radius", "must be at least 1");
        }
        if !is_label_name(&g.target_label) {
            return ferr("guardrails.target_label", "not a valid label name");
        }
        Ok(())
    }
}

/// A checked runbook with its matchers and params compiled.
#[derive(Debug, Clone)]
pub struct LoadedRunbook {
    pub spec: Runbook,
    /// The file it was loaded from (for messages).
    pub file: String,
    /// Relative `playbook` and `workdir` paths are resolved against this.
    pub base_dir: Option<PathBuf>,
    pub matchers: Vec<Matcher>,
    pub params: Vec<CompiledParam>,
}

impl LoadedRunbook {
    pub fn compile(spec: Runbook, file: &str, base_dir: Option<&Path>) -> Result<Self, FieldError> {
        spec.check()?;
        let matchers = spec
            .matchers
            .iter()
            .enumerate()
            .map(|(i, m)| parse_matcher(m).or_else(|e| ferr(format!("match[{i}]"), e)))
            .collect::<Result<_, _>>()?;
        let params = spec
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                CompiledParam::compile(p).or_else(|e| ferr(format!("params[{i}].pattern"), e))
            })
            .collect::<Result<_, _>>()?;
        Ok(LoadedRunbook {
            spec,
            file: file.to_string(),
            base_dir: base_dir.map(Path::to_path_buf),
            matchers,
            params,
        })
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Do all matchers accept these alert labels (absent = empty)?
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers
            .iter()
            .all(|m| m.matches(labels.get(&m.name).map(String::as_str).unwrap_or("")))
    }

    /// Resolves a path written in the runbook against its file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        match &self.base_dir {
            Some(b) if p.is_relative() => b.join(p),
            _ => p.to_path_buf(),
        }
    }
}

/// All runbooks of a configuration, names unique.
#[derive(Debug, Clone, Default)]
pub struct RunbookSet {
    pub runbooks: Vec<LoadedRunbook>,
}

impl RunbookSet {
    /// Checks the inline runbooks of a config section (`text` is the whole
    /// config file, `prefix` the path of the section, e.g. `remediation`) and
    /// loads `runbooks_dir` (relative to `base_dir`).
    pub fn from_config(
        cfg: &RemediationConfig,
        text: &str,
        file: &str,
        prefix: &str,
        base_dir: Option<&Path>,
    ) -> Result<Self, LocatedError> {
        let mut set = RunbookSet::default();
        set.add_all(&cfg.runbooks, text, file, prefix, base_dir)?;
        if let Some(dir) = &cfg.runbooks_dir {
            let dir = match base_dir {
                Some(b) if dir.is_relative() => b.join(dir),
                _ => dir.clone(),
            };
            let field = format!("{prefix}.runbooks_dir");
            let rd = std::fs::read_dir(&dir)
                .map_err(|e| at_field(text, file, &field, format!("{}: {e}", dir.display())))?;
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
                .collect();
            files.sort();
            for f in files {
                let name = f.display().to_string();
                let body = std::fs::read_to_string(&f).map_err(|e| LocatedError {
                    file: name.clone(),
                    line: None,
                    column: None,
                    field: String::new(),
                    message: e.to_string(),
                })?;
                set.add_file(&body, &name, f.parent())?;
            }
        }
        Ok(set)
    }

    /// Parses one runbook file (`runbooks: [...]`).
    pub fn parse_file(
        text: &str,
        file: &str,
        base_dir: Option<&Path>,
    ) -> Result<Self, LocatedError> {
        let mut set = RunbookSet::default();
        set.add_file(text, file, base_dir)?;
        Ok(set)
    }

    fn add_file(
        &mut self,
        text: &str,
        file: &str,
        base_dir: Option<&Path>,
    ) -> Result<(), LocatedError> {
        let rf: RunbookFile = day2_yamlerr::from_str(text, file)?;
        self.add_all(&rf.runbooks, text, file, "", base_dir)
    }

    fn add_all(
        &mut self,
        runbooks: &[Runbook],
        text: &str,
        file: &str,
        prefix: &str,
        base_dir: Option<&Path>,
    ) -> Result<(), LocatedError> {
        let dot = if prefix.is_empty() { "" } else { "." };
        for (i, rb) in runbooks.iter().enumerate() {
            let at = |path: &str, msg: String| {
                at_field(
                    text,
                    file,
                    &format!("{prefix}{dot}runbooks[{i}].{path}"),
                    msg,
                )
            };
            if let Some(prev) = self.get(&rb.name) {
                return Err(at(
                    "name",
                    format!("runbook `{}` is also defined in {}", rb.name, prev.file),
                ));
            }
            let loaded = LoadedRunbook::compile(rb.clone(), file, base_dir)
                .map_err(|e| at(&e.path, e.message))?;
            self.runbooks.push(loaded);
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&LoadedRunbook> {
        self.runbooks.iter().find(|r| r.spec.name == name)
    }

    /// The runbooks whose matchers accept the alert's labels, in load order.
    pub fn matching<'a>(
        &'a self,
        labels: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a LoadedRunbook> {
        self.runbooks.iter().filter(move |r| r.matches(labels))
    }
}
