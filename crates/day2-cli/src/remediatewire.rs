//! Wiring of remediation into `day2 serve`: the runtime's place in the app
//! (a cell a reload may fill, reconfigure or empty), its journal over the
//! state store, the internal sink that turns notifications of the
//! `remediation.receivers` into proposed runs, verification with the PromQL
//! engine over the storage, and the `/api/day2/v1/runbooks|runs|audit` adapter.

use std::collections::BTreeMap;
use std::sync::Arc;

use day2_alerthub::{InternalNotification, InternalSink, SinkError};
use day2_remediate::driver::SystemClock;
use day2_remediate::run::Breaker;
use day2_remediate::runtime::{self, AlertRef, Commit, Journal, Remediator, Restored, Settings};
use day2_remediate::verify::PromqlVerifier;
use day2_remediate::{AuditEvent, Proposal, Refusal, Run, RunError, RunbookSet};
use day2_server::{RemediationApi, RemediationError};
use day2_store::Store;
use day2_store::remediate::{AuditRow, BreakerRow, RunRow, TriggerRow};
use parking_lot::RwLock;
use serde_json::{Value, json};

use crate::hubwire::HubCell;

/// The internal sink's name (`day2[remediate]` in the delivery audit).
pub const SINK: &str = "remediate";

/// A validated `remediation` section.
pub struct LoadedRemediation {
    pub runbooks: RunbookSet,
    pub settings: Settings,
}

/// The running remediation runtime, if day2.yml has a `remediation` section.
pub type RemediationCell = Arc<RwLock<Option<Arc<Remediator>>>>;

/// What the runtime needs from the rest of the app.
pub struct Parts<'a> {
    pub state: Option<&'a day2_server::ServerState>,
    pub store: &'a Arc<Store>,
    pub hub: &'a HubCell,
    pub engine: Arc<day2_promql::Engine>,
    pub db: Arc<dyn day2_model::Queryable>,
    /// Labels a notification's alerts bind params from besides their own
    /// (their service's latest deployment).
    pub context: Option<Arc<crate::loopwire::DeploymentContext>>,
}

/// Starts the runtime, or applies new runbooks and settings to the running
/// one; without a section a running one is dropped (runs in flight finish).
/// Registers the sink on the hub that runs now (a restarted hub starts empty).
pub fn apply(
    cell: &RemediationCell,
    parts: Parts<'_>,
    loaded: Option<LoadedRemediation>,
) -> anyhow::Result<()> {
    if let Some(h) = parts.hub.read().clone() {
        h.register_sink(
            SINK,
            Arc::new(RemediationSink {
                cell: cell.clone(),
                context: parts.context.clone(),
            }),
        );
    }
    let Some(loaded) = loaded else {
        if cell.write().take().is_some() {
            if let Some(st) = parts.state {
                *st.remediation.write() = None;
            }
            tracing::info!("remediation stopped (no remediation section)");
        }
        return Ok(());
    };
    let existing = cell.read().clone();
    if let Some(r) = existing {
        let n = loaded.runbooks.runbooks.len();
        r.reconfigure(loaded.runbooks, loaded.settings);
        tracing::info!(runbooks = n, "remediation configuration applied");
        return Ok(());
    }
    let horizon = runtime::horizon(&loaded.runbooks);
    let since = jiff::Timestamp::now().as_millisecond() - horizon.as_millis() as i64;
    let restored = restore(parts.store, since)?;
    let n = loaded.runbooks.runbooks.len();
    let r = Remediator::start(
        restored,
        Arc::new(StoreJournal(parts.store.clone())),
        Arc::new(PromqlVerifier {
            engine: parts.engine,
            db: parts.db,
        }),
        Arc::new(SystemClock),
        tokio::runtime::Handle::current(),
        loaded.runbooks,
        loaded.settings,
    )?;
    if let Some(st) = parts.state {
        *st.remediation.write() = Some(Arc::new(RemediationHttp {
            r: r.clone(),
            store: parts.store.clone(),
        }));
    }
    *cell.write() = Some(r);
    tracing::info!(runbooks = n, "remediation started");
    Ok(())
}

/// Remediation figures for `/metrics`.
pub struct RemediationMetrics(pub RemediationCell);

impl day2_server::MetricsSource for RemediationMetrics {
    fn render(&self, out: &mut String) {
        if let Some(r) = self.0.read().clone() {
            r.render_metrics(out);
        }
    }
}

/// Reads back runs inside the guardrail horizon (and every unfinished one),
/// breakers and the highest id.
fn restore(store: &Store, since: i64) -> anyhow::Result<Restored> {
    let st = store.remediation_load(since)?;
    let mut runs = Vec::new();
    for row in st.runs {
        match serde_json::from_str::<Run>(&row.body) {
            Ok(r) => runs.push(r),
            Err(e) => {
                tracing::error!(run = row.id, error = %e, "stored run cannot be read; skipped")
            }
        }
    }
    let breakers: BTreeMap<String, Breaker> = st
        .breakers
        .into_iter()
        .filter_map(|b| serde_json::from_str(&b.body).ok().map(|v| (b.runbook, v)))
        .collect();
    Ok(Restored {
        runs,
        breakers,
        last_id: st.last_id.max(0) as u64,
    })
}

fn ms(t: jiff::Timestamp) -> i64 {
    t.as_millisecond()
}

pub(crate) fn text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn run_row(r: &Run) -> Result<RunRow, String> {
    Ok(RunRow {
        id: r.id as i64,
        runbook: r.runbook.clone(),
        target: r.target.to_string(),
        state: r.state.to_string(),
        requester: r.requester.clone(),
        approver: r.approver.clone(),
        dry_run: r.dry_run,
        created_at: ms(r.created_at),
        finished_at: r.finished_at.map(ms),
        body: serde_json::to_string(r).map_err(|e| e.to_string())?,
    })
}

fn audit_row(e: &AuditEvent) -> Result<AuditRow, String> {
    Ok(AuditRow {
        seq: 0,
        at: ms(e.at),
        run_id: e.run.map(|id| id as i64),
        runbook: e.runbook.clone(),
        kind: text(&e.kind),
        actor: e.actor.clone(),
        body: serde_json::to_string(e).map_err(|e| e.to_string())?,
    })
}

/// The journal: every transition in one state-store transaction.
struct StoreJournal(Arc<Store>);

impl Journal for StoreJournal {
    fn commit(&self, c: &Commit<'_>) -> Result<(), String> {
        let runs = c
            .runs
            .iter()
            .map(|r| run_row(r))
            .collect::<Result<Vec<_>, _>>()?;
        let audit = c
            .audit
            .iter()
            .map(audit_row)
            .collect::<Result<Vec<_>, _>>()?;
        let breakers = c
            .breakers
            .iter()
            .map(|(name, b)| {
                Ok(BreakerRow {
                    runbook: name.to_string(),
                    body: serde_json::to_string(b).map_err(|e| e.to_string())?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let triggers: Vec<TriggerRow> = c
            .triggers
            .iter()
            .map(|t| TriggerRow {
                outbox_id: t.outbox_id,
                fingerprint: t.fingerprint.clone(),
                runbook: t.runbook.clone(),
                run_id: t.run.map(|id| id as i64),
                refusal: t.refusal.clone(),
            })
            .collect();
        self.0
            .remediation_commit(&runs, &audit, &breakers, &triggers)
            .map_err(|e| e.to_string())
    }

    fn trigger_seen(
        &self,
        outbox_id: i64,
        fingerprint: &str,
        runbook: &str,
    ) -> Result<bool, String> {
        self.0
            .remediation_trigger_seen(outbox_id, fingerprint, runbook)
            .map_err(|e| e.to_string())
    }
}

/// Notifications of `remediation.receivers`: each firing alert proposes a
/// run of every runbook it matches (once per notification, alert and
/// runbook), its params bound from its labels and then the context.
struct RemediationSink {
    cell: RemediationCell,
    context: Option<Arc<crate::loopwire::DeploymentContext>>,
}

impl InternalSink for RemediationSink {
    fn deliver(&self, n: &InternalNotification) -> Result<(), SinkError> {
        let Some(r) = self.cell.read().clone() else {
            return Err(SinkError::Retry("remediation is not running".into()));
        };
        let alerts: Vec<AlertRef> = n
            .message
            .alerts
            .iter()
            .filter(|a| a.is_firing())
            .map(|a| AlertRef {
                fingerprint: a.fingerprint.clone(),
                labels: a.labels.clone(),
                context: self
                    .context
                    .as_ref()
                    .map(|c| c.context(&a.labels, &a.annotations))
                    .unwrap_or_default(),
            })
            .collect();
        r.notify(n.outbox_id, &alerts)
            .map(|_| ())
            .map_err(|e| SinkError::Retry(e.to_string()))
    }
}

/// The runtime and its records behind the HTTP API.
struct RemediationHttp {
    r: Arc<Remediator>,
    store: Arc<Store>,
}

fn internal(e: impl std::fmt::Display) -> RemediationError {
    RemediationError::Internal(e.to_string())
}

fn body_json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or(Value::Null)
}

impl RemediationHttp {
    fn stored_run(&self, id: u64) -> Result<Value, RemediationError> {
        match self.store.remediation_run(id as i64).map_err(internal)? {
            Some(row) => Ok(body_json(&row.body)),
            None => Err(RemediationError::NotFound(format!("no run {id}"))),
        }
    }

    fn error(&self, e: runtime::Error) -> RemediationError {
        use runtime::Error as E;
        match e {
            E::UnknownRunbook(_) => RemediationError::NotFound(e.to_string()),
            E::Refused(Refusal::SelfApproval { .. } | Refusal::NoApprover) => {
                RemediationError::Forbidden(e.to_string())
            }
            E::Refused(Refusal::Params(_) | Refusal::NoTarget { .. } | Refusal::Plan { .. }) => {
                RemediationError::BadRequest(e.to_string())
            }
            E::Refused(_) => RemediationError::Conflict(e.to_string()),
            E::Run(RunError::NotFound(id)) => match self.stored_run(id) {
                // pruned from memory: finished long ago
                Ok(v) => RemediationError::Conflict(format!(
                    "run {id} is {}: cannot change it",
                    v["state"].as_str().unwrap_or("finished")
                )),
                Err(e) => e,
            },
            E::Run(RunError::Refused(Refusal::SelfApproval { .. } | Refusal::NoApprover)) => {
                RemediationError::Forbidden(e.to_string())
            }
            E::Run(_) => RemediationError::Conflict(e.to_string()),
            E::Journal(_) => RemediationError::Internal(e.to_string()),
        }
    }

    fn current(&self, id: u64) -> Result<Value, RemediationError> {
        match self.r.run(id) {
            Some(run) => serde_json::to_value(run).map_err(internal),
            None => self.stored_run(id),
        }
    }
}

/// `POST /api/day2/v1/runs` body.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposeBody {
    runbook: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    params: BTreeMap<String, String>,
    #[serde(default)]
    dry_run: bool,
}

impl RemediationApi for RemediationHttp {
    fn runbooks(&self) -> Value {
        let set = self.r.runbooks();
        let list: Vec<Value> = set
            .runbooks
            .iter()
            .map(|rb| {
                let mut v = serde_json::to_value(&rb.spec).unwrap_or(Value::Null);
                v["file"] = Value::String(rb.file.clone());
                v
            })
            .collect();
        json!({ "runbooks": list })
    }

    fn runs(
        &self,
        runbook: Option<&str>,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Value, RemediationError> {
        let rows = self
            .store
            .remediation_runs(runbook, state, limit)
            .map_err(internal)?;
        let runs: Vec<Value> = rows.iter().map(|r| body_json(&r.body)).collect();
        Ok(json!({ "runs": runs }))
    }

    fn run(&self, id: u64) -> Result<Value, RemediationError> {
        self.stored_run(id)
    }

    fn propose(&self, user: &str, body: &Value) -> Result<Value, RemediationError> {
        let b: ProposeBody = serde_json::from_value(body.clone())
            .map_err(|e| RemediationError::BadRequest(format!("invalid proposal: {e}")))?;
        let p = Proposal {
            labels: b.labels,
            inputs: b.params,
            requester: user.to_string(),
            dry_run: b.dry_run,
            alerts: Vec::new(),
        };
        let id = self.r.propose(&b.runbook, p).map_err(|e| self.error(e))?;
        self.current(id)
    }

    fn approve(&self, id: u64, user: &str) -> Result<Value, RemediationError> {
        self.r.approve(id, user).map_err(|e| self.error(e))?;
        self.current(id)
    }

    fn reject(&self, id: u64, user: &str, reason: &str) -> Result<Value, RemediationError> {
        self.r.reject(id, user, reason).map_err(|e| self.error(e))?;
        self.current(id)
    }

    fn audit(&self, run: Option<u64>, limit: usize) -> Result<Value, RemediationError> {
        let rows = self
            .store
            .remediation_audit(run.map(|id| id as i64), limit)
            .map_err(internal)?;
        let list: Vec<Value> = rows
            .iter()
            .map(|a| {
                let mut v = body_json(&a.body);
                v["seq"] = json!(a.seq);
                v
            })
            .collect();
        Ok(json!({ "audit": list }))
    }
}
