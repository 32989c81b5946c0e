//! Rendering a runbook with bound parameters into concrete steps. Each
//! placeholder is replaced inside the one string it was written in: an argv
//! element stays one argv element (never split, never re-parsed), an env value
//! stays one value. Other destinations escape the value for their syntax
//! (PromQL string literal, URL component, Ansible's unsafe marker).

use crate::duration::Dur;
use crate::params::{Bound, ParamValue};
use crate::runbook::{AnsibleStep, ExecStep, KubeAction, LoadedRunbook, Step};
use crate::template::Template;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The program run for `ansible` steps (found on the allowlisted PATH unless
/// `ExecPolicy::ansible_playbook` names another).
pub const ANSIBLE_PLAYBOOK: &str = "ansible-playbook";
pub const DEFAULT_EXEC_TIMEOUT: Dur = Dur(Duration::from_secs(300));
pub const DEFAULT_ANSIBLE_TIMEOUT: Dur = Dur(Duration::from_secs(1800));
pub const DEFAULT_HTTP_TIMEOUT: Dur = Dur(Duration::from_secs(30));

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Main,
    OnFailure,
}

/// A command ready for execve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub argv: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    pub timeout: Dur,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "executor", rename_all = "snake_case")]
pub enum Action {
    Exec(Command),
    Ansible(Command),
    Http(HttpRequest),
    Kubernetes(KubeRequest),
    /// Hand the run to people (on-call, incident) with a message: an
    /// escalation policy, one user, or (neither) whoever the run's alerts
    /// already escalate to.
    Escalate {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
    },
}

/// An HTTP request of an `http` step. Header values that are `env:NAME` or
/// `file:/path` references are resolved only when the request is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub timeout: Dur,
    /// Statuses that count as success (empty: any 2xx).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_status: Vec<u16>,
}

/// A Kubernetes action on one deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeRequest {
    pub action: KubeAction,
    pub namespace: String,
    pub deployment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub name: String,
    pub phase: Phase,
    pub action: Action,
}

impl PlannedStep {
    /// The argv of exec and ansible steps.
    pub fn argv(&self) -> Option<&[String]> {
        match &self.action {
            Action::Exec(c) | Action::Ansible(c) => Some(&c.argv),
            _ => None,
        }
    }

    /// A one-line description for steps without argv.
    pub fn describe(&self) -> String {
        match &self.action {
            Action::Exec(c) | Action::Ansible(c) => format!("{:?}", c.argv),
            Action::Http(h) => format!("{} {}", h.method, h.url),
            Action::Escalate {
                message,
                policy,
                user,
            } => match (policy, user) {
                (Some(p), _) => format!("escalate to policy {p}: {message}"),
                (None, Some(u)) => format!("escalate to {u}: {message}"),
                (None, None) => format!("escalate: {message}"),
            },
            Action::Kubernetes(k) => {
                let (ns, d) = (&k.namespace, &k.deployment);
                match (k.action, k.replicas) {
                    (KubeAction::Scale, Some(r)) => {
                        format!("scale deployment {ns}/{d} to {r} replicas")
                    }
                    (KubeAction::Scale, None) => format!("scale deployment {ns}/{d}"),
                    (KubeAction::RolloutRestart, _) => {
                        format!("rollout restart deployment {ns}/{d}")
                    }
                    (KubeAction::RolloutUndo, _) => format!("rollout undo deployment {ns}/{d}"),
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedVerify {
    pub expr: String,
    pub within: Dur,
}

/// Everything a run will do, fixed when it is proposed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Plan {
    pub steps: Vec<PlannedStep>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_failure: Vec<PlannedStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<PlannedVerify>,
}

type R<T> = Result<T, String>;

fn tpl(s: &str) -> R<Template> {
    Template::parse(s)
}

/// Renders a runbook (already checked) with its bound parameters.
pub fn render(rb: &LoadedRunbook, bound: &Bound) -> R<Plan> {
    let raw = |s: &str| -> R<String> { Ok(tpl(s)?.render(|p| bound.text(p))) };
    let steps = |list: &[Step], phase: Phase| -> R<Vec<PlannedStep>> {
        list.iter()
            .enumerate()
            .map(|(i, s)| {
                let name = s.name.clone().unwrap_or_else(|| match phase {
                    Phase::Main => format!("step-{}", i + 1),
                    Phase::OnFailure => format!("on_failure-{}", i + 1),
                });
                let action = render_step(rb, s, bound, &raw).map_err(|e| format!("{name}: {e}"))?;
                Ok(PlannedStep {
                    name,
                    phase,
                    action,
                })
            })
            .collect()
    };
    let verify = match &rb.spec.verify {
        Some(v) => Some(PlannedVerify {
            expr: tpl(&v.expr)?.render(|p| promql_escape(&bound.text(p))),
            within: v.within,
        }),
        None => None,
    };
    Ok(Plan {
        steps: steps(&rb.spec.steps, Phase::Main)?,
        on_failure: steps(&rb.spec.on_failure, Phase::OnFailure)?,
        verify,
    })
}

fn render_env(
    env: &BTreeMap<String, String>,
    raw: &dyn Fn(&str) -> R<String>,
) -> R<BTreeMap<String, String>> {
    env.iter().map(|(k, v)| Ok((k.clone(), raw(v)?))).collect()
}

fn render_step(
    rb: &LoadedRunbook,
    s: &Step,
    bound: &Bound,
    raw: &dyn Fn(&str) -> R<String>,
) -> R<Action> {
    if let Some(e) = &s.exec {
        return render_exec(rb, e, raw);
    }
    if let Some(a) = &s.ansible {
        return render_ansible(rb, a, bound, raw);
    }
    if let Some(h) = &s.http {
        let url = tpl(&h.url)?.render(|p| percent_encode(&bound.text(p)));
        let headers = h
            .headers
            .iter()
            .map(|(k, v)| {
                let v = raw(v)?;
                if v.contains(['\r', '\n']) {
                    return Err(format!("header {k}: value contains a line break"));
                }
                Ok((k.clone(), v))
            })
            .collect::<R<_>>()?;
        // Values in a body are escaped as the inside of a JSON string.
        let body = match &h.body {
            Some(b) => Some(tpl(b)?.render(|p| json_string_inner(&bound.text(p)))),
            None => None,
        };
        return Ok(Action::Http(HttpRequest {
            method: h.method.clone(),
            url,
            headers,
            body,
            timeout: h.timeout.unwrap_or(DEFAULT_HTTP_TIMEOUT),
            expect_status: h.expect_status.clone(),
        }));
    }
    if let Some(e) = &s.escalate {
        return Ok(Action::Escalate {
            message: raw(&e.message)?,
            policy: e.policy.clone(),
            user: e.user.clone(),
        });
    }
    if let Some(k) = &s.kubernetes {
        let namespace = raw(&k.namespace)?;
        let deployment = raw(&k.deployment)?;
        for (what, v) in [("namespace", &namespace), ("deployment", &deployment)] {
            if !is_dns_label(v, if what == "namespace" { 63 } else { 253 }) {
                return Err(format!("{what} is not a valid Kubernetes name"));
            }
        }
        let replicas = match &k.replicas {
            Some(r) => Some(
                raw(r)?
                    .parse::<u32>()
                    .map_err(|_| "replicas is not a non-negative integer".to_string())?,
            ),
            None => None,
        };
        return Ok(Action::Kubernetes(KubeRequest {
            action: k.action,
            namespace,
            deployment,
            replicas,
        }));
    }
    Err("step has no executor".into())
}

fn render_exec(rb: &LoadedRunbook, e: &ExecStep, raw: &dyn Fn(&str) -> R<String>) -> R<Action> {
    let argv = e.command.iter().map(|a| raw(a)).collect::<R<Vec<_>>>()?;
    Ok(Action::Exec(Command {
        argv,
        env: render_env(&e.env, raw)?,
        timeout: e.timeout.unwrap_or(DEFAULT_EXEC_TIMEOUT),
        workdir: e.workdir.as_deref().map(|w| rb.resolve(w)),
    }))
}

/// Extra vars: a string holding a placeholder is wrapped in Ansible's
/// `{"__ansible_unsafe": ...}` so that Jinja never evaluates a label value
/// (`{{ lookup('pipe', 'id') }}` stays text); a string that is exactly one
/// `int` param becomes a JSON number.
fn render_json(v: &serde_json::Value, bound: &Bound) -> R<serde_json::Value> {
    use serde_json::Value;
    Ok(match v {
        Value::String(s) => {
            let t = tpl(s)?;
            if let Some(ParamValue::Int(n)) = t.single_param().and_then(|p| bound.get(p)) {
                Value::from(*n)
            } else if t.has_params() {
                let mut m = serde_json::Map::new();
                m.insert(
                    "__ansible_unsafe".into(),
                    Value::String(t.render(|p| bound.text(p))),
                );
                Value::Object(m)
            } else {
                v.clone()
            }
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| render_json(x, bound)).collect::<R<_>>()?),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), render_json(x, bound)?)))
                .collect::<R<_>>()?,
        ),
        other => other.clone(),
    })
}

fn render_ansible(
    rb: &LoadedRunbook,
    a: &AnsibleStep,
    bound: &Bound,
    raw: &dyn Fn(&str) -> R<String>,
) -> R<Action> {
    let vars: serde_json::Map<String, serde_json::Value> = a
        .extra_vars
        .iter()
        .map(|(k, v)| Ok((k.clone(), render_json(v, bound)?)))
        .collect::<R<_>>()?;
    let json =
        serde_json::to_string(&serde_json::Value::Object(vars)).map_err(|e| e.to_string())?;
    // `--opt=value` keeps a value that starts with `-` from being read as an option.
    let mut argv = vec![
        ANSIBLE_PLAYBOOK.to_string(),
        format!("--inventory={}", raw(&a.inventory)?),
    ];
    if let Some(c) = &a.connection {
        argv.push(format!("--connection={c}"));
    }
    if let Some(l) = &a.limit {
        argv.push(format!("--limit={}", raw(l)?));
    }
    // The JSON object always starts with `{`, so it is never read as `@file`.
    argv.push("--extra-vars".into());
    argv.push(json);
    argv.push(rb.resolve(&a.playbook).to_string_lossy().into_owned());
    let mut env = BTreeMap::from([
        ("LC_ALL".to_string(), "C.UTF-8".to_string()),
        ("ANSIBLE_NOCOLOR".to_string(), "1".to_string()),
        ("ANSIBLE_RETRY_FILES_ENABLED".to_string(), "0".to_string()),
    ]);
    env.extend(render_env(&a.env, raw)?);
    Ok(Action::Ansible(Command {
        argv,
        env,
        timeout: a.timeout.unwrap_or(DEFAULT_ANSIBLE_TIMEOUT),
        workdir: a.workdir.as_deref().map(|w| rb.resolve(w)),
    }))
}

/// Escapes a value for the inside of a PromQL "..." or '...' string literal.
pub fn promql_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so a value
/// is one path segment or query value and cannot add `/`, `?`, `#`, `@`.
pub fn percent_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn json_string_inner(v: &str) -> String {
    let s = serde_json::to_string(v).unwrap_or_default();
    s[1..s.len() - 1].to_string()
}

fn is_dns_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !s.starts_with(['-', '.'])
        && !s.ends_with(['-', '.'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            promql_escape(r#"a"} or vector(1) #\"#),
            r#"a\"} or vector(1) #\\"#
        );
        assert_eq!(percent_encode("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
        assert_eq!(json_string_inner("a\"b\n"), "a\\\"b\\n");
    }
}
