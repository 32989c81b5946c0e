//! Policies at work: each evaluation queries the metric, reads the current
//! count through the policy's [`Scaler`], decides with [`crate::hpa`], sets
//! the new count, and stores the evaluation (the audit, and the memory of
//! the stabilization windows after a restart).
//!
//! Synchronous: the binary calls [`Autoscaler::evaluate`] on a blocking
//! thread every policy interval; the time is passed in.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use day2_model::Queryable;
use day2_promql::{Engine, Value};
use day2_store::Store;
use day2_store::autoscale::ScaleDecisionRow;
use jiff::Timestamp;
use parking_lot::{Mutex, RwLock};
use serde_json::{Value as Json, json};

use crate::config::{AutoscalingSection, PolicyConfig, TargetConfig};
use crate::hpa::{Params, State};
use crate::scaler::{MakeScaler, Scaler};

/// How long evaluations that changed something are kept.
const KEEP_CHANGES_MS: i64 = 30 * 86_400_000;
/// How long quiet evaluations are kept beyond what stabilization needs.
const KEEP_QUIET_MS: i64 = 3_600_000;

#[derive(Debug, Default, Clone)]
struct Status {
    last_at: Option<i64>,
    metric: Option<f64>,
    current: Option<u32>,
    desired: Option<u32>,
    last_error: Option<String>,
    last_scaled_at: Option<i64>,
    scale_ups: u64,
    scale_downs: u64,
    errors: u64,
}

struct Policy {
    cfg: PolicyConfig,
    params: Params,
    scaler: Result<Arc<dyn Scaler>, String>,
    state: Mutex<State>,
    status: Mutex<Status>,
}

/// Errors of the autoscaler (the store).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no autoscaling policy {0:?}")]
    UnknownPolicy(String),
    #[error("state store: {0}")]
    Store(#[from] day2_store::Error),
}

/// The running policies.
pub struct Autoscaler {
    store: Arc<Store>,
    engine: Arc<Engine>,
    db: Arc<dyn Queryable>,
    policies: RwLock<Vec<Arc<Policy>>>,
    /// One evaluation per policy name at a time, also across a reload
    /// (an evaluation of the replaced policy may still be running).
    running: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

fn ts(ms: i64) -> Json {
    Timestamp::from_millisecond(ms).map_or(Json::Null, |t| Json::String(t.to_string()))
}

/// The metric's single value at `now`: `Ok(None)` without data.
fn metric_value(
    engine: &Engine,
    db: &dyn Queryable,
    expr: &str,
    now: i64,
) -> Result<Option<f64>, String> {
    let r = engine.instant(db, expr, now).map_err(|e| e.to_string())?;
    let v = match r.value {
        Value::Scalar(_, v) => Some(v),
        Value::Vector(_, s) if s.is_empty() => None,
        Value::Vector(_, s) if s.len() == 1 => Some(s[0].v),
        Value::Vector(_, s) => {
            return Err(format!(
                "the metric returned {} series; aggregate it to one (e.g. avg(...))",
                s.len()
            ));
        }
        _ => return Err("the metric must be a scalar or an instant vector".into()),
    };
    Ok(v.filter(|v| !v.is_nan()))
}

impl Autoscaler {
    pub fn new(store: Arc<Store>, engine: Arc<Engine>, db: Arc<dyn Queryable>) -> Autoscaler {
        Autoscaler {
            store,
            engine,
            db,
            policies: RwLock::new(Vec::new()),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Replaces the policies; each one's stabilization memory is rebuilt
    /// from the stored history. `scaler` makes a policy's actuator (an
    /// error is reported by every evaluation of that policy).
    pub fn apply(
        &self,
        section: &AutoscalingSection,
        scaler: &MakeScaler<'_>,
        now: Timestamp,
    ) -> Result<(), Error> {
        let now = now.as_millisecond();
        let old: HashMap<String, Arc<Policy>> = self
            .policies
            .read()
            .iter()
            .map(|p| (p.cfg.name.clone(), p.clone()))
            .collect();
        let mut next = Vec::with_capacity(section.policies.len());
        for cfg in &section.policies {
            let memory = i64::try_from(cfg.memory().as_millis()).unwrap_or(i64::MAX);
            let rows = self.store.autoscale_since(&cfg.name, now - memory)?;
            let recommendations = rows
                .iter()
                .filter_map(|r| Some((r.at, u32::try_from(r.recommendation?).ok()?)))
                .collect();
            let changes = rows
                .iter()
                .filter(|r| matches!(r.action.as_str(), "scale_up" | "scale_down"))
                .filter_map(|r| Some((r.at, r.desired? - r.current?)))
                .collect();
            let status = old
                .get(&cfg.name)
                .map(|p| p.status.lock().clone())
                .unwrap_or_default();
            next.push(Arc::new(Policy {
                params: cfg.params(),
                scaler: scaler(cfg),
                state: Mutex::new(State::restore(recommendations, changes)),
                status: Mutex::new(status),
                cfg: cfg.clone(),
            }));
        }
        *self.policies.write() = next;
        Ok(())
    }

    /// (name, evaluation interval) of every policy.
    pub fn schedule(&self) -> Vec<(String, std::time::Duration)> {
        self.policies
            .read()
            .iter()
            .map(|p| (p.cfg.name.clone(), p.cfg.interval()))
            .collect()
    }

    /// The count day2 last set for a policy (the starting count of an exec
    /// target without `get`).
    pub fn last_set(&self, policy: &str) -> Result<Option<u32>, Error> {
        Ok(self
            .store
            .autoscale_last_set(policy)?
            .and_then(|n| u32::try_from(n).ok()))
    }

    /// Evaluates one policy at `now`, acts, and records the evaluation.
    pub fn evaluate(&self, name: &str, now: Timestamp) -> Result<ScaleDecisionRow, Error> {
        let policy = self
            .policies
            .read()
            .iter()
            .find(|p| p.cfg.name == name)
            .cloned()
            .ok_or_else(|| Error::UnknownPolicy(name.to_string()))?;
        let one = self
            .running
            .lock()
            .entry(name.to_string())
            .or_default()
            .clone();
        let _one = one.lock();
        let now_ms = now.as_millisecond();
        let mut row = ScaleDecisionRow {
            id: 0,
            policy: name.to_string(),
            at: now_ms,
            metric: None,
            current: None,
            recommendation: None,
            desired: None,
            action: "error".into(),
            reason: String::new(),
        };
        let outcome = (|| -> Result<(), String> {
            let scaler = policy.scaler.clone()?;
            let metric = metric_value(&self.engine, &*self.db, &policy.cfg.metric, now_ms)
                .map_err(|e| format!("metric: {e}"))?;
            row.metric = metric;
            let current = scaler
                .current()
                .map_err(|e| format!("current replicas: {e}"))?;
            row.current = Some(i64::from(current));
            let Some(metric) = metric else {
                row.action = "skipped".into();
                row.reason = "the metric has no value; nothing decided".into();
                return Ok(());
            };
            if current == 0 {
                row.action = "skipped".into();
                row.reason = "the target has 0 replicas; scaling is off until it has some (as in Kubernetes)".into();
                return Ok(());
            }
            let d = policy
                .state
                .lock()
                .decide(now_ms, current, metric, &policy.params);
            row.recommendation = Some(i64::from(d.recommendation));
            row.desired = Some(i64::from(d.desired));
            row.reason = d.reason;
            if d.desired == current {
                row.action = "hold".into();
                return Ok(());
            }
            scaler
                .set(d.desired)
                .map_err(|e| format!("setting {} replicas: {e}", d.desired))?;
            policy
                .state
                .lock()
                .record_change(now_ms, current, d.desired);
            row.action = if d.desired > current {
                "scale_up"
            } else {
                "scale_down"
            }
            .into();
            Ok(())
        })();
        if let Err(e) = outcome {
            row.action = "error".into();
            row.reason = if row.reason.is_empty() {
                e
            } else {
                format!("{}; {e}", row.reason)
            };
        }
        {
            let mut st = policy.status.lock();
            st.last_at = Some(now_ms);
            st.metric = row.metric;
            st.current = row.current.and_then(|c| u32::try_from(c).ok());
            match row.action.as_str() {
                "scale_up" | "scale_down" => {
                    st.desired = row.desired.and_then(|c| u32::try_from(c).ok());
                    // the count is now what was set
                    st.current = st.desired;
                    st.last_scaled_at = Some(now_ms);
                    st.last_error = None;
                    if row.action == "scale_up" {
                        st.scale_ups += 1;
                    } else {
                        st.scale_downs += 1;
                    }
                    tracing::info!(policy = name, from = ?row.current, to = ?row.desired, reason = %row.reason, "scaled");
                }
                "error" => {
                    st.errors += 1;
                    st.last_error = Some(row.reason.clone());
                    tracing::warn!(policy = name, error = %row.reason, "autoscaling evaluation failed");
                }
                _ => {
                    st.desired = row
                        .desired
                        .and_then(|c| u32::try_from(c).ok())
                        .or(st.current);
                    st.last_error = None;
                }
            }
        }
        // the status first: the count changed whether or not the record lands
        row.id = self.store.autoscale_record(&row)?;
        let memory = i64::try_from(policy.cfg.memory().as_millis()).unwrap_or(i64::MAX);
        self.store.autoscale_gc(
            now_ms - memory.saturating_add(KEEP_QUIET_MS),
            now_ms - KEEP_CHANGES_MS,
        )?;
        Ok(row)
    }

    /// `GET /api/day2/v1/autoscaling`: the policies with their state, and
    /// the newest evaluations that scaled or failed (all with `all`).
    pub fn status_json(
        &self,
        policy: Option<&str>,
        all: bool,
        limit: usize,
    ) -> Result<Json, Error> {
        let policies: Vec<Arc<Policy>> = self.policies.read().clone();
        if let Some(p) = policy
            && !policies.iter().any(|x| x.cfg.name == p)
        {
            return Err(Error::UnknownPolicy(p.to_string()));
        }
        let list: Vec<Json> = policies
            .iter()
            .filter(|p| policy.is_none_or(|n| n == p.cfg.name))
            .map(|p| {
                let st = p.status.lock().clone();
                let target = match (&p.scaler, &p.cfg.target) {
                    (Ok(s), _) => s.describe(),
                    (Err(_), TargetConfig::Exec { .. }) => "exec".to_string(),
                    (Err(_), TargetConfig::Kubernetes { resource, .. }) => {
                        format!("kubernetes {resource}")
                    }
                };
                json!({
                    "name": p.cfg.name,
                    "target": target,
                    "target_error": p.scaler.as_ref().err(),
                    "metric": p.cfg.metric,
                    "target_value": p.cfg.target_value,
                    "min": p.cfg.min,
                    "max": p.cfg.max,
                    "interval": day2_model::format_duration(p.cfg.interval()),
                    "last_evaluated_at": st.last_at.map(ts),
                    "metric_value": st.metric,
                    "current_replicas": st.current,
                    "desired_replicas": st.desired,
                    "last_scaled_at": st.last_scaled_at.map(ts),
                    "last_error": st.last_error,
                })
            })
            .collect();
        let history: Vec<Json> = self
            .store
            .autoscale_history(policy, !all, limit)?
            .into_iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "policy": r.policy,
                    "at": ts(r.at),
                    "metric": r.metric,
                    "current": r.current,
                    "recommendation": r.recommendation,
                    "desired": r.desired,
                    "action": r.action,
                    "reason": r.reason,
                })
            })
            .collect();
        Ok(json!({"policies": list, "decisions": history}))
    }

    /// `/metrics`: replicas, metric values and scaling counts per policy.
    pub fn render_metrics(&self, out: &mut String) {
        let policies: Vec<(String, Status)> = self
            .policies
            .read()
            .iter()
            .map(|p| (p.cfg.name.clone(), p.status.lock().clone()))
            .collect();
        if policies.is_empty() {
            return;
        }
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        type Get = fn(&Status) -> Option<f64>;
        let gauges: [(&str, &str, &str, Get); 3] = [
            (
                "day2_autoscale_current_replicas",
                "gauge",
                "Replica count after the last evaluation (as found, or as set).",
                |s| s.current.map(f64::from),
            ),
            (
                "day2_autoscale_desired_replicas",
                "gauge",
                "Replica count decided at the last evaluation.",
                |s| s.desired.map(f64::from),
            ),
            (
                "day2_autoscale_metric_value",
                "gauge",
                "Metric value at the last evaluation.",
                |s| s.metric,
            ),
        ];
        for (name, kind, help, get) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (p, st) in &policies {
                if let Some(v) = get(st) {
                    let _ = writeln!(out, "{name}{{policy=\"{}\"}} {v}", esc(p));
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP day2_autoscale_scalings_total Replica changes made by this process, by direction."
        );
        let _ = writeln!(out, "# TYPE day2_autoscale_scalings_total counter");
        for (p, st) in &policies {
            for (direction, n) in [("up", st.scale_ups), ("down", st.scale_downs)] {
                let _ = writeln!(
                    out,
                    "day2_autoscale_scalings_total{{policy=\"{}\",direction=\"{direction}\"}} {n}",
                    esc(p)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP day2_autoscale_errors_total Evaluations that failed (metric, target or actuator)."
        );
        let _ = writeln!(out, "# TYPE day2_autoscale_errors_total counter");
        for (p, st) in &policies {
            let _ = writeln!(
                out,
                "day2_autoscale_errors_total{{policy=\"{}\"}} {}",
                esc(p),
                st.errors
            );
        }
    }
}
