//! Rollback runbooks of failed enforced analyses: the deployments'
//! [`RollbackTrigger`] over the remediation runtime, and the `check config`
//! rules that tie `deployments` to `remediation`.
//!
//! A rollback is an ordinary run of the named runbook, proposed with the
//! deployment's labels (so params bind them with `from_label`) by
//! `deploy:<id>`; the runbook's guardrails (approval, cooldown, ...) apply as
//! for any run. Its end is read from the runtime (or, once pruned from
//! memory or after a restart, from the state store): `verified` rolls the
//! deployment back, anything else leaves it failed with the reason.

use std::collections::BTreeMap;
use std::sync::Arc;

use day2_deploy::config::Mode;
use day2_deploy::{Deployment, DeploymentsSection, RollbackTrigger, RunEnd};
use day2_remediate::runtime::Error as RuntimeError;
use day2_remediate::{Proposal, Run, RunState, RunbookSet};
use day2_store::Store;

use crate::remediatewire::RemediationCell;

/// The labels of a rollback proposal (`previous_version` only when the
/// service had a deployment to that environment before).
pub const LABELS: [&str; 5] = [
    "service",
    "environment",
    "version",
    "previous_version",
    "deployment_id",
];

/// The [`LABELS`] of deployment `d` (`previous`: the one before it).
pub fn deployment_labels(
    d: &Deployment,
    previous: Option<&Deployment>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("service".to_string(), d.service.clone()),
        ("environment".to_string(), d.environment.clone()),
        ("version".to_string(), d.version.clone()),
        ("deployment_id".to_string(), d.id.to_string()),
    ]);
    if let Some(p) = previous {
        labels.insert("previous_version".into(), p.version.clone());
    }
    labels
}

/// The requester of a deployment's rollback run.
fn requester(d: &Deployment) -> String {
    format!("deploy:{}", d.id)
}

/// Rollbacks as runs of the remediation runtime (when it runs).
pub struct RunbookRollback {
    pub remediation: RemediationCell,
    pub store: Arc<Store>,
}

impl RollbackTrigger for RunbookRollback {
    fn rollback(
        &self,
        runbook: &str,
        d: &Deployment,
        previous: Option<&Deployment>,
    ) -> Result<String, String> {
        let Some(r) = self.remediation.read().clone() else {
            return Err(day2_deploy::service::not_configured(runbook));
        };
        let proposal = Proposal {
            labels: deployment_labels(d, previous),
            requester: requester(d),
            ..Proposal::default()
        };
        match r.propose(runbook, proposal) {
            Ok(id) => Ok(id.to_string()),
            Err(RuntimeError::UnknownRunbook(_)) => Err(format!(
                "rollback runbook {runbook}: the remediation section has no runbook of that name"
            )),
            Err(e) => Err(format!("rollback runbook {runbook}: {e}")),
        }
    }

    fn started(&self, runbook: &str, d: &Deployment) -> Result<Option<String>, String> {
        // the journal has every run before propose returns
        let runs = self
            .store
            .remediation_runs_requested_by(runbook, &requester(d))
            .map_err(|e| e.to_string())?;
        Ok(runs.last().map(|r| r.id.to_string()))
    }

    fn finished(&self, run_id: &str) -> Result<Option<RunEnd>, String> {
        let id: u64 = run_id
            .parse()
            .map_err(|_| format!("{run_id:?} is not a run id"))?;
        let running = self.remediation.read().clone();
        let run = match running.and_then(|r| r.run(id)) {
            Some(run) => run,
            None => match self
                .store
                .remediation_run(id as i64)
                .map_err(|e| e.to_string())?
            {
                Some(row) => serde_json::from_str::<Run>(&row.body)
                    .map_err(|e| format!("stored run {id}: {e}"))?,
                None => {
                    return Ok(Some(RunEnd {
                        state: "unknown".into(),
                        rolled_back: false,
                        reason: Some("the run is not in the remediation records".into()),
                        at: jiff::Timestamp::now(),
                    }));
                }
            },
        };
        Ok(run_end(&run))
    }
}

/// How a run ended, if it has: only `verified` (its steps ran and its
/// verification, if any, held) rolls the deployment back.
fn run_end(run: &Run) -> Option<RunEnd> {
    if !run.state.is_terminal() {
        return None;
    }
    let rolled_back = run.state == RunState::Verified;
    let reason = match (run.state, &run.reason) {
        (RunState::Verified, _) => None,
        (RunState::DryRun, _) => Some("a dry run: nothing was executed".to_string()),
        (RunState::RolledBack, Some(r)) => Some(format!("{r}; its on_failure steps ran")),
        (_, r) => r.clone(),
    };
    Some(RunEnd {
        state: run.state.to_string(),
        rolled_back,
        reason,
        at: run.finished_at.or(run.started_at).unwrap_or(run.created_at),
    })
}

/// `deployments` against `remediation` (`runbooks`: its loaded runbooks,
/// `None` without the section): a rollback runbook must be one of them and
/// able to run on a deployment's labels, and enforce mode needs the section.
/// Errors are (field path in day2.yml, message).
pub fn check_config(
    deployments: &DeploymentsSection,
    runbooks: Option<&RunbookSet>,
) -> Result<(), (String, String)> {
    for (service, cfg) in &deployments.services {
        let Some(a) = &cfg.analysis else { continue };
        let Some(name) = &a.rollback_runbook else {
            continue;
        };
        let field = format!("deployments.services.{service}.analysis.rollback_runbook");
        let err = |m: String| Err((field.clone(), m));
        let Some(set) = runbooks else {
            if a.mode == Mode::Enforce {
                return err(format!(
                    "mode enforce runs runbook {name:?} when the analysis fails, but there is no remediation section to run it in"
                ));
            }
            continue;
        };
        let Some(rb) = set.get(name) else {
            let known: Vec<&str> = set.runbooks.iter().map(|r| r.name()).collect();
            return err(format!(
                "no runbook {name:?} in the remediation section (runbooks: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        };
        let labels = LABELS.join(", ");
        let target = &rb.spec.guardrails.target_label;
        if !LABELS.contains(&target.as_str()) {
            return err(format!(
                "runbook {name:?}: guardrails.target_label {target:?} is not a label of a rollback ({labels}); e.g. target_label: service"
            ));
        }
        for p in &rb.spec.params {
            let bound = match &p.from_label {
                Some(l) => LABELS.contains(&l.as_str()),
                None => false,
            };
            if !bound && p.default.is_none() {
                return err(format!(
                    "runbook {name:?}: param {:?} needs a default or from_label one of the labels of a rollback ({labels})",
                    p.name
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
