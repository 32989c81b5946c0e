//! Deployment events and their status, as the API takes and shows them.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::analysis::{AnalysisResult, AnalysisSpec, Verdict};

/// Checks a service or environment name: 1 to 128 characters of
/// `A-Z a-z 0-9 _ . : / @ -`, starting with a letter or digit.
pub fn check_name(what: &str, s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:/@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} name {s:?}: 1 to 128 characters of A-Z a-z 0-9 _ . : / @ -, starting with a letter or digit"
        ))
    }
}

/// Free text without control characters (newlines and tabs allowed where `multiline`).
fn check_text(field: &str, s: &str, max: usize, multiline: bool) -> Result<(), String> {
    if s.len() > max {
        return Err(format!("{field}: longer than {max} bytes"));
    }
    if s.chars()
        .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t')))
    {
        return Err(format!("{field}: control characters are not allowed"));
    }
    Ok(())
}

/// An idempotency key: 1 to 255 printable ASCII characters, no spaces.
pub fn check_idempotency_key(k: &str) -> Result<(), String> {
    if k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY {
        return Err(format!("must be 1 to {MAX_IDEMPOTENCY_KEY} characters"));
    }
    if !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("only printable ASCII characters without spaces are allowed".into());
    }
    Ok(())
}

/// A commit that a deployment shipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commit {
    pub sha: String,
    /// Commit time, for the lead time of changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Timestamp>,
}

/// Body of `POST /api/day2/v1/deployments`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDeployment {
    pub service: String,
    pub version: String,
    /// Default: `deployments.default_environment`.
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub commits: Vec<Commit>,
    /// Default: when day2 receives it.
    #[serde(default)]
    pub deployed_at: Option<Timestamp>,
    /// Link to the pipeline run or release.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Makes retries safe: a second request with the same key records
    /// nothing and gets the first deployment back (the API also takes it
    /// as the `Idempotency-Key` header).
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// How far in the future a deployment time may be (clock skew of the CI host).
pub const MAX_FUTURE_SKEW: jiff::SignedDuration = jiff::SignedDuration::from_secs(300);

impl NewDeployment {
    /// What the API refuses; the message names the field.
    pub fn validate(&self, now: Timestamp) -> Result<(), String> {
        check_name("service", &self.service).map_err(|m| format!("service: {m}"))?;
        if let Some(e) = &self.environment {
            check_name("environment", e).map_err(|m| format!("environment: {m}"))?;
        }
        if self.version.trim().is_empty() {
            return Err("version: must not be empty".into());
        }
        check_text("version", &self.version, 256, false)?;
        if self.commits.len() > 1000 {
            return Err("commits: more than 1000".into());
        }
        for (i, c) in self.commits.iter().enumerate() {
            let ok = !c.sha.is_empty()
                && c.sha.len() <= 64
                && c.sha
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !ok {
                return Err(format!(
                    "commits[{i}].sha: 1 to 64 characters of A-Z a-z 0-9 . _ -"
                ));
            }
        }
        if let Some(at) = self.deployed_at
            && at > now + MAX_FUTURE_SKEW
        {
            return Err(format!(
                "deployed_at: {at} is more than 5 minutes after the server's time {now}"
            ));
        }
        if let Some(k) = &self.idempotency_key {
            check_idempotency_key(k).map_err(|m| format!("idempotency_key: {m}"))?;
        }
        if let Some(u) = &self.url {
            check_text("url", u, 2048, false)?;
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                return Err("url: must be an http:// or https:// URL".into());
            }
        }
        if let Some(d) = &self.description {
            check_text("description", d, 4096, true)?;
        }
        Ok(())
    }
}

/// A status mark set through the API (or by a rollback runbook).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The change failed in production.
    Failed,
    /// The change was rolled back (a failed change, now restored).
    RolledBack,
    /// The change is good (overrides a failed analysis).
    Succeeded,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Failed => "failed",
            Status::RolledBack => "rolled_back",
            Status::Succeeded => "succeeded",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "failed" => Some(Status::Failed),
            "rolled_back" => Some(Status::RolledBack),
            "succeeded" => Some(Status::Succeeded),
            _ => None,
        }
    }
}

/// Body of `POST /api/day2/v1/deployments/{id}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    pub status: Status,
    #[serde(default)]
    pub reason: String,
}

/// A recorded status mark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusMark {
    pub status: Status,
    pub reason: String,
    pub set_by: String,
    pub at: Timestamp,
}

/// What the rollback of a failed enforced analysis came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackOutcome {
    pub runbook: String,
    pub requested_at: Timestamp,
    /// The runbook run it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The run's final state (`verified`, `failed`, `rolled_back`,
    /// `rejected`, `dry_run`), once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_state: Option<String>,
    /// When the run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Why it did not start, why its run did not roll the deployment back,
    /// or that its outcome is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The rollback a failed enforced analysis asked for, as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollbackView {
    /// `pending` (asked for, not triggered yet), `running` (its runbook run
    /// has not ended) or `done` (the run ended, or it was refused: see
    /// `run_state` and `error`).
    pub state: &'static str,
    pub runbook: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The analysis of one deployment as shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnalysisView {
    /// `pending` or `done`.
    pub state: &'static str,
    pub due_at: Timestamp,
    pub spec: AnalysisSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<AnalysisResult>,
}

/// A deployment with everything known about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployment {
    pub id: i64,
    pub service: String,
    pub environment: String,
    pub version: String,
    pub commits: Vec<Commit>,
    pub deployed_at: Timestamp,
    pub created_at: Timestamp,
    /// Who marked it (the API principal: a token name or a local user).
    pub marked_by: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// `null`: no analysis configured for this service and environment.
    pub analysis: Option<AnalysisView>,
    /// Set when an enforced analysis failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackView>,
    pub statuses: Vec<StatusMark>,
    /// `failed`, `rolled_back`, `succeeded` (latest mark or verdict), or
    /// `pending` (analysis not done) or `deployed` (nothing known against it).
    pub outcome: &'static str,
}

impl Deployment {
    /// The effective outcome: the latest status mark wins over the verdict.
    pub fn compute_outcome(&self) -> &'static str {
        if let Some(m) = self.statuses.last() {
            return m.status.as_str();
        }
        match &self.analysis {
            Some(a) => match a.result.as_ref().map(|r| r.verdict) {
                Some(Verdict::Fail) => "failed",
                Some(_) => "deployed",
                None => "pending",
            },
            None => "deployed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn input(json: &str) -> NewDeployment {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("service", "api").is_ok());
        assert!(check_name("service", "payments/api-v2@eu.1:x").is_ok());
        for bad in ["", "-api", "a b", "a\"b", "a\nb", &"a".repeat(129)] {
            assert!(check_name("service", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn new_deployments_are_validated_field_by_field() {
        let now = ts("2025-01-01T00:00:00Z");
        let ok = input(
            r#"{"service":"api","version":"v1.2.3","environment":"staging",
                "commits":[{"sha":"abc123","time":"2024-12-31T23:00:00Z"}],
                "url":"https://ci.example/run/1","description":"release\nnotes"}"#,
        );
        ok.validate(now).unwrap();
        let cases = [
            (r#"{"service":"a b","version":"1"}"#, "service:"),
            (
                r#"{"service":"api","version":" "}"#,
                "version: must not be empty",
            ),
            (
                r#"{"service":"api","version":"1","commits":[{"sha":"a;b"}]}"#,
                "commits[0].sha",
            ),
            (
                r#"{"service":"api","version":"1","url":"javascript:alert(1)"}"#,
                "url: must be",
            ),
            (
                r#"{"service":"api","version":"1","deployed_at":"2025-01-01T01:00:00Z"}"#,
                "deployed_at:",
            ),
            (
                r#"{"service":"api","version":"v1\u0007"}"#,
                "version: control characters",
            ),
        ];
        for (json, want) in cases {
            let e = input(json).validate(now).unwrap_err();
            assert!(e.starts_with(want), "{json} => {e}");
        }
        // unknown fields are refused by the type
        assert!(
            serde_json::from_str::<NewDeployment>(r#"{"service":"a","version":"1","sevrice":"x"}"#)
                .is_err()
        );
    }

    #[test]
    fn status_names_roundtrip() {
        for s in [Status::Failed, Status::RolledBack, Status::Succeeded] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        assert_eq!(Status::parse("ok"), None);
    }
}
