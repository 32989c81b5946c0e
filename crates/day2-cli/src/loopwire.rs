//! The issue-7 loop inside `day2 serve`: what connects remediation,
//! on-call, incidents and deployments to each other.
//!
//! - remediation runs land on the timelines of the incidents linked to the
//!   alerts that asked for them ([`IncidentTimeline`], and [`run_history`]
//!   for an incident that links the alert later);
//! - a verified rollback runbook run an alert started marks its deployment
//!   rolled back ([`AlertRollbacks`]);
//! - runbook `escalate` steps page through on-call ([`OnCallEscalation`]);
//! - incidents are DORA outages of the service their alerts name
//!   ([`IncidentOutages`]), and their changes refresh the DORA gauges;
//! - an alert's service's latest deployment is the param context of the runs
//!   it asks for ([`DeploymentContext`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use day2_deploy::{Deployments, DeploymentsSection, Outage, OutageSource, StatusChange};
use day2_incident::runtime::{ExternalEntry, IncidentListener, IncidentRuntime};
use day2_incident::{Actor, EntryKind};
use day2_oncall::page::PageAlert;
use day2_oncall::runtime::{OnCallRuntime, RUNBOOK_RECEIVER_PREFIX};
use day2_remediate::driver::{BoxFuture, EscalateRequest, Escalation, RunContext};
use day2_remediate::runtime::TimelineSink;
use day2_remediate::{AuditEvent, AuditKind, RunbookSet};
use day2_store::Store;

use crate::deploywire::DeployWire;
use crate::hubwire::HubCell;
use crate::peoplewire::People;
use crate::remediatewire::{RemediationCell, text};

/// Connects the running parts; called after every apply (the remediation
/// runtime may have just started; the hooks are kept across reloads).
pub fn connect(
    remediation: &RemediationCell,
    people: &People,
    deploy: &Arc<DeployWire>,
    store: &Arc<Store>,
    hub: &HubCell,
) {
    deploy
        .service
        .set_outage_source(Arc::new(IncidentOutages(Arc::downgrade(&people.incidents))));
    people
        .incidents
        .set_listener(Arc::new(RefreshDora(Arc::downgrade(deploy))));
    let Some(r) = remediation.read().clone() else {
        return;
    };
    r.set_timeline(Some(Arc::new(RunEvents {
        incidents: IncidentTimeline(Arc::downgrade(&people.incidents)),
        rollbacks: AlertRollbacks {
            remediation: remediation.clone(),
            deploy: Arc::downgrade(deploy),
        },
    })));
    r.set_escalation(Some(Arc::new(OnCallEscalation {
        oncall: Arc::downgrade(&people.oncall),
        store: store.clone(),
        hub: hub.clone(),
    })));
}

// ------------------------------------------------------------ runs on timelines

/// The timeline entry of a run's audit event; its key makes a report
/// recorded live and imported later (see [`run_history`]) one entry.
pub fn run_entry(e: &AuditEvent) -> ExternalEntry {
    let run = e.run.unwrap_or_default();
    let phase = e.phase.map(|p| text(&p)).unwrap_or_default();
    let step = e.step.as_deref().unwrap_or("");
    // the time tells apart steps that share a name
    let key = format!(
        "remediation:{run}:{}:{phase}:{step}:{}",
        text(&e.kind),
        e.at.as_millisecond()
    );
    let mut line = format!("Runbook {} run {run} ({})", e.runbook, e.target);
    let what = match e.kind {
        AuditKind::StepStarted | AuditKind::StepFinished | AuditKind::StepPlanned => {
            let verb = match e.kind {
                AuditKind::StepStarted => "started",
                AuditKind::StepFinished => "finished",
                _ => "planned",
            };
            let on_failure = if phase == "on_failure" {
                " (on_failure)"
            } else {
                ""
            };
            format!("step {step}{on_failure} {verb}")
        }
        AuditKind::VerifyStarted => "verification started".to_string(),
        AuditKind::Verified => "verified".to_string(),
        AuditKind::VerifyFailed => "verification failed".to_string(),
        _ => text(&e.kind).replace('_', " "),
    };
    line.push_str(": ");
    line.push_str(&what);
    if let Some(argv) = &e.argv {
        line.push_str(&format!(": {argv:?}"));
    } else if let Some(d) = &e.detail {
        line.push_str(&format!(": {d}"));
    }
    if let Some(o) = &e.outcome {
        line.push_str(&format!(" -> {o}"));
    }
    let mut entry = ExternalEntry::keyed(
        EntryKind::RemediationStep,
        e.at,
        Actor::system("remediation"),
        &line,
        &key,
    );
    entry.data.insert("run".into(), run.into());
    entry.data.insert("event".into(), text(&e.kind).into());
    if let Some(s) = e.state {
        entry.data.insert("state".into(), s.to_string().into());
    }
    entry
}

/// Remediation's [`TimelineSink`]: every event of a run started by alerts
/// goes onto the unresolved incidents linked to those alerts.
pub struct IncidentTimeline(pub Weak<IncidentRuntime>);

impl TimelineSink for IncidentTimeline {
    fn record(&self, alerts: &[String], e: &AuditEvent) {
        let Some(rt) = self.0.upgrade() else {
            return;
        };
        if let Err(err) = rt.record_for_alerts(alerts, &run_entry(e)) {
            tracing::warn!(error = %err, run = ?e.run, "recording a remediation event on incidents failed");
        }
    }
}

/// What the events of runs started by alerts go to: incident timelines,
/// and deployments that a verified rollback restored.
struct RunEvents {
    incidents: IncidentTimeline,
    rollbacks: AlertRollbacks,
}

impl TimelineSink for RunEvents {
    fn record(&self, alerts: &[String], e: &AuditEvent) {
        self.incidents.record(alerts, e);
        if e.kind == AuditKind::Verified {
            self.rollbacks.verified(e);
        }
    }
}

/// A verified run of a service's `rollback_runbook` that an alert started
/// marks the deployment it was bound to (`deployment_id`, from the alert's
/// context) `rolled_back`, as the rollback of a failed enforced analysis
/// does: DORA's failure of that deployment ends there.
struct AlertRollbacks {
    remediation: RemediationCell,
    deploy: Weak<DeployWire>,
}

impl AlertRollbacks {
    fn verified(&self, e: &AuditEvent) {
        let (Some(r), Some(d)) = (self.remediation.read().clone(), self.deploy.upgrade()) else {
            return;
        };
        let Some(run) = e.run.and_then(|id| r.run(id)) else {
            return;
        };
        let Some(id) = run
            .labels
            .get("deployment_id")
            .and_then(|v| v.parse::<i64>().ok())
        else {
            return;
        };
        let dep = match d.service.get(id) {
            Ok(dep) => dep,
            Err(err) => {
                tracing::warn!(deployment = id, error = %err, "reading a rolled back deployment failed");
                return;
            }
        };
        let config = d.service.config();
        let runbook = config
            .services
            .get(&dep.service)
            .and_then(|s| s.analysis.as_ref())
            .and_then(|a| a.rollback_runbook.as_deref());
        if runbook != Some(run.runbook.as_str()) || dep.outcome == "rolled_back" {
            return;
        }
        let change = StatusChange {
            status: day2_deploy::Status::RolledBack,
            reason: format!(
                "rollback runbook {} run {} verified (requested by {})",
                run.runbook, run.id, run.requester
            ),
        };
        match d.service.mark(id, change, "day2", e.at) {
            Ok(_) => d.wake(),
            Err(err) => {
                tracing::warn!(deployment = id, error = %err, "marking a deployment rolled back failed")
            }
        }
    }
}

/// The runs an alert asked for, as timeline entries (for an incident that
/// links the alert after they happened).
pub fn run_history(store: &Store, fingerprint: &str) -> Vec<ExternalEntry> {
    let runs = match store.remediation_runs_for_alert(fingerprint) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "reading the runs of an alert failed");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for run in runs {
        match store.remediation_audit(Some(run.id), 1000) {
            Ok(rows) => out.extend(
                rows.iter()
                    .filter_map(|r| serde_json::from_str::<AuditEvent>(&r.body).ok())
                    .map(|e| run_entry(&e)),
            ),
            Err(e) => tracing::warn!(error = %e, run = run.id, "reading a run's audit failed"),
        }
    }
    out
}

// ------------------------------------------------------------ escalate steps

/// Runbook `escalate` steps through on-call: a policy opens an escalation of
/// its own (receiver `runbook:<runbook>`, once per run, step and phase); a
/// user gets one page; neither takes the policy already escalating the run's
/// alerts.
pub struct OnCallEscalation {
    pub oncall: Weak<OnCallRuntime>,
    pub store: Arc<Store>,
    pub hub: HubCell,
}

impl Escalation for OnCallEscalation {
    fn escalate<'a>(
        &'a self,
        run: &'a RunContext,
        request: &'a EscalateRequest,
    ) -> BoxFuture<'a, Result<String, String>> {
        let oncall = self.oncall.clone();
        let store = self.store.clone();
        let hub = self.hub.clone();
        let (run, request) = (run.clone(), request.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let oc = oncall.upgrade().ok_or("on-call is shutting down")?;
                escalate(&oc, &store, &hub, &run, &request)
            })
            .await
            .map_err(|e| format!("escalation task failed: {e}"))?
        })
    }
}

fn escalate(
    oc: &OnCallRuntime,
    store: &Store,
    hub: &HubCell,
    run: &RunContext,
    req: &EscalateRequest,
) -> Result<String, String> {
    if let Some(user) = &req.user {
        let title = format!(
            "[day2] runbook {} run {}: {}",
            run.runbook, run.run, req.message
        );
        let body = format!("{}\nrunbook {} on {}", req.message, run.runbook, run.target);
        let skipped = oc
            .send_message(std::slice::from_ref(user), "any", &title, &body, None)
            .map_err(|e| e.to_string())?;
        if !skipped.is_empty() {
            return Err(format!(
                "user {user:?} is not an on-call user with a contact method (oncall.users)"
            ));
        }
        return Ok(format!("paged {user}"));
    }
    let policy = match &req.policy {
        Some(p) => p.clone(),
        None => escalating_policy(store, &run.alerts)?.ok_or_else(|| {
            "no escalation policy is escalating the run's alerts: name a policy or user in the escalate step".to_string()
        })?,
    };
    let phase = req.phase.map(|p| text(&p)).unwrap_or_default();
    let receiver = format!("{RUNBOOK_RECEIVER_PREFIX}{}", run.runbook);
    let key = format!("run:{}:{}:{phase}", run.run, req.step);
    let alerts = page_alerts(store, hub, &run.alerts);
    let (id, opened) = oc
        .open_direct(&receiver, &key, &policy, &req.message, &alerts)
        .map_err(|e| e.to_string())?;
    Ok(if opened {
        format!("escalation {id} opened with policy {policy}")
    } else {
        format!("escalation {id} with policy {policy} was already open")
    })
}

/// The policy of the newest escalation (not one a runbook opened) that
/// carries one of the alerts, preferring one still escalating.
fn escalating_policy(store: &Store, alerts: &[String]) -> Result<Option<String>, String> {
    let mut found: Option<(bool, i64, String)> = None;
    for fp in alerts {
        let rows = store
            .oncall_escalations(false, Some(fp), 50)
            .map_err(|e| e.to_string())?;
        for e in rows {
            if e.receiver.starts_with(RUNBOOK_RECEIVER_PREFIX) {
                continue;
            }
            let cand = (e.resolved_at.is_none(), e.id, e.policy);
            if found.as_ref().is_none_or(|f| (cand.0, cand.1) > (f.0, f.1)) {
                found = Some(cand);
            }
        }
    }
    Ok(found.map(|f| f.2))
}

/// The alerts a runbook escalation carries: as on-call last paged them, or
/// as the alert hub holds them.
fn page_alerts(store: &Store, hub: &HubCell, fingerprints: &[String]) -> Vec<PageAlert> {
    let snapshot = hub.read().clone().map(|h| h.snapshot());
    fingerprints
        .iter()
        .map(|fp| {
            let paged = store
                .oncall_escalations(false, Some(fp), 5)
                .ok()
                .into_iter()
                .flatten()
                .filter_map(|e| serde_json::from_str::<Vec<PageAlert>>(&e.alerts).ok())
                .flatten()
                .find(|a| &a.fingerprint == fp);
            if let Some(a) = paged {
                return a;
            }
            let held = snapshot
                .as_ref()
                .and_then(|s| s.alerts.iter().find(|(f, _)| &f.to_string() == fp));
            match held {
                Some((_, a)) => PageAlert {
                    fingerprint: fp.clone(),
                    status: if a.ends_at.is_some_and(|e| e <= jiff::Timestamp::now()) {
                        "resolved".into()
                    } else {
                        "firing".into()
                    },
                    labels: a
                        .labels
                        .iter()
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect(),
                    annotations: a.annotations.clone(),
                    starts_at: a.starts_at,
                },
                None => PageAlert {
                    fingerprint: fp.clone(),
                    status: "firing".into(),
                    labels: BTreeMap::new(),
                    annotations: BTreeMap::new(),
                    starts_at: jiff::Timestamp::now(),
                },
            }
        })
        .collect()
}

/// `check config`: a runbook's escalate step names an existing escalation
/// policy or on-call user. Errors are (file, field path in it, message).
pub fn check_escalations(
    cfg: &crate::config::Day2Config,
    runbooks: &RunbookSet,
    day2_file: &str,
) -> Result<(), (String, String, String)> {
    let oncall = cfg.oncall.as_ref();
    let policies: Vec<&str> = oncall
        .iter()
        .flat_map(|o| o.escalation_policies.iter().map(|p| p.name.as_str()))
        .collect();
    let users: Vec<&str> = oncall
        .iter()
        .flat_map(|o| o.users.iter().map(|u| u.id.as_str()))
        .collect();
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for rb in &runbooks.runbooks {
        let i = index.entry(rb.file.as_str()).or_default();
        let at = *i;
        *i += 1;
        let prefix = if rb.file == day2_file {
            format!("remediation.runbooks[{at}]")
        } else {
            format!("runbooks[{at}]")
        };
        let phases = [
            ("steps", &rb.spec.steps),
            ("on_failure", &rb.spec.on_failure),
        ];
        for (phase, steps) in phases {
            for (j, s) in steps.iter().enumerate() {
                let Some(e) = &s.escalate else { continue };
                let field = |f: &str| format!("{prefix}.{phase}[{j}].escalate.{f}");
                if let Some(p) = &e.policy
                    && !policies.contains(&p.as_str())
                {
                    return Err((
                        rb.file.clone(),
                        field("policy"),
                        format!("unknown escalation policy {p:?} (oncall.escalation_policies)"),
                    ));
                }
                if let Some(u) = &e.user
                    && !users.contains(&u.as_str())
                {
                    return Err((
                        rb.file.clone(),
                        field("user"),
                        format!("unknown user {u:?} (oncall.users)"),
                    ));
                }
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------ acknowledgements

/// An incident acknowledged by `by` acknowledges the escalations of its
/// alerts (their acknowledgements reach its timeline through on-call's
/// observer); an alert without an escalation in progress is skipped.
pub fn ack_escalations(oc: &OnCallRuntime, inc: &day2_incident::Incident, by: &str) {
    for a in &inc.alerts {
        match oc.ack_alert(&a.fingerprint, by, "incident") {
            Ok(_) | Err(day2_oncall::runtime::OnCallError::NotFound(_)) => {}
            Err(e) => tracing::warn!(
                incident = %inc.id, alert = %a.fingerprint, error = %e,
                "acknowledging an alert's escalations failed"
            ),
        }
    }
}

// ------------------------------------------------------------ DORA outages

/// The most incidents one DORA window reads.
const MAX_OUTAGES: usize = 10_000;

/// Incidents as outages for DORA's time to restore: from opened to resolved,
/// of the service (and environment) their alerts name by the `deployments`
/// section's labels, else of the incident's own service field.
pub struct IncidentOutages(pub Weak<IncidentRuntime>);

impl OutageSource for IncidentOutages {
    fn outages(
        &self,
        config: &DeploymentsSection,
        from: i64,
        to: i64,
    ) -> Result<Vec<Outage>, String> {
        let rt = self.0.upgrade().ok_or("incidents are shutting down")?;
        let since = jiff::Timestamp::from_millisecond(from).map_err(|e| e.to_string())?;
        let list = rt
            .list_overlapping(since, MAX_OUTAGES)
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for inc in list {
            let start = inc.created_at.as_millisecond();
            if start < from || start > to {
                continue;
            }
            let named = inc.alerts.iter().find_map(|a| {
                let service = config
                    .alert_service_labels
                    .iter()
                    .find_map(|l| a.labels.get(l))?;
                let env = a.labels.get(&config.alert_environment_label);
                Some((service.clone(), env.cloned()))
            });
            let Some((service, env)) = named.or_else(|| inc.service.clone().map(|s| (s, None)))
            else {
                continue;
            };
            out.push(Outage {
                service,
                environment: env.unwrap_or_else(|| config.default_environment.clone()),
                from: start,
                to: inc.resolved_at.map(|t| t.as_millisecond()),
            });
        }
        Ok(out)
    }
}

/// Incident changes refresh the DORA gauges (through the deployment loop).
struct RefreshDora(Weak<DeployWire>);

impl IncidentListener for RefreshDora {
    fn written(&self, _: &day2_incident::Incident) {
        if let Some(d) = self.0.upgrade() {
            d.wake();
        }
    }
}

// ------------------------------------------------------------ param context

/// The labels a rollback run binds (`service`, `environment`, `version`,
/// `previous_version`, `deployment_id`) from an alert's service's latest
/// deployment: the one the alert hub annotated it with
/// (`day2_deployment`), else the latest now.
pub struct DeploymentContext(pub Arc<Deployments>);

impl DeploymentContext {
    pub fn context(
        &self,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let id = annotations
            .get("day2_deployment")
            .cloned()
            .or_else(|| {
                let l = day2_model::Labels::from_pairs(labels.clone());
                self.0
                    .annotations(&l)
                    .into_iter()
                    .find(|(k, _)| k == "day2_deployment")
                    .map(|(_, v)| v)
            })
            .and_then(|v| v.parse::<i64>().ok());
        let Some(id) = id else {
            return BTreeMap::new();
        };
        let d = match self.0.get(id) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(deployment = id, error = %e, "reading an alert's deployment failed");
                return BTreeMap::new();
            }
        };
        let previous = self.0.previous(&d).unwrap_or_else(|e| {
            tracing::warn!(deployment = id, error = %e, "reading the previous deployment failed");
            None
        });
        crate::rollbackwire::deployment_labels(&d, previous.as_ref())
    }
}

#[cfg(test)]
mod tests;
