//! Runs rule groups on their intervals (aligned like Prometheus: each group
//! at a fixed offset within its interval), restores `for` state on start,
//! hands due alerts to an [`AlertSink`], and shapes `/api/v1/rules` and
//! `/api/v1/alerts`.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use day2_model::Labels;
use parking_lot::{Mutex, RwLock};
use serde_json::{Value as Json, json};

use crate::Error;
use crate::alerting::{Alert, AlertState};
use crate::file;
use crate::group::{EvalCtx, Group, Rule};

/// Settings of the rule manager (Prometheus's flags of the same meaning).
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// Interval of groups that set none (`global.evaluation_interval`).
    pub evaluation_interval: Duration,
    /// How long `for` state survives an outage (`--rules.alert.for-outage-tolerance`).
    pub outage_tolerance: Duration,
    /// Least time a restored alert waits before firing (`--rules.alert.for-grace-period`).
    pub for_grace_period: Duration,
    /// How often a firing alert is re-sent (`--rules.alert.resend-delay`).
    pub resend_delay: Duration,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            evaluation_interval: Duration::from_secs(60),
            outage_tolerance: Duration::from_secs(3600),
            for_grace_period: Duration::from_secs(600),
            resend_delay: Duration::from_secs(60),
        }
    }
}

/// An alert as handed to whoever routes it (Alertmanager's API v2 shape).
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Alert labels plus external labels (alert labels win).
    pub labels: Labels,
    pub annotations: Vec<(String, String)>,
    pub starts_at_ms: i64,
    /// When resolved: the resolution time; else when it expires unless re-sent.
    pub ends_at_ms: i64,
    pub resolved: bool,
    pub generator_url: String,
}

/// Receives alerts that are due (firing, re-sent, or just resolved). Must not block.
pub trait AlertSink: Send + Sync {
    fn send(&self, alerts: Vec<Notification>);
}

/// A sink that drops everything (no alert hub configured).
pub struct NoSink;

impl AlertSink for NoSink {
    fn send(&self, _alerts: Vec<Notification>) {}
}

/// Owns the loaded groups and their evaluation tasks.
pub struct RuleManager {
    ctx: RwLock<EvalCtx>,
    sink: Arc<dyn AlertSink>,
    groups: RwLock<Vec<Arc<Mutex<Group>>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    opts: RwLock<ManagerOptions>,
    evaluations: std::sync::atomic::AtomicU64,
    failures: std::sync::atomic::AtomicU64,
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Expands `rule_files` patterns (globs, relative to `base`) into sorted paths.
pub fn expand_patterns(patterns: &[String], base: &Path) -> Result<Vec<std::path::PathBuf>, Error> {
    let mut out = Vec::new();
    for p in patterns {
        let full = if Path::new(p).is_absolute() {
            p.clone()
        } else {
            base.join(p).to_string_lossy().into_owned()
        };
        let paths = glob::glob(&full).map_err(|e| Error::Pattern {
            pattern: p.clone(),
            message: e.to_string(),
        })?;
        let mut found: Vec<_> = paths.filter_map(Result::ok).collect();
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

/// Loads and checks every rule file; groups in file order.
pub fn load_groups(
    paths: &[std::path::PathBuf],
    default_interval: Duration,
    ignore_unknown_fields: bool,
) -> Result<Vec<Group>, Error> {
    let mut groups = Vec::new();
    for p in paths {
        let loaded = file::load(p, ignore_unknown_fields)?;
        let name = p.display().to_string();
        for g in &loaded.file.groups {
            groups.push(Group::new(g, &name, default_interval)?);
        }
    }
    Ok(groups)
}

impl RuleManager {
    pub fn new(ctx: EvalCtx, sink: Arc<dyn AlertSink>) -> Arc<RuleManager> {
        Arc::new(RuleManager {
            ctx: RwLock::new(ctx),
            sink,
            groups: RwLock::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
            opts: RwLock::new(ManagerOptions::default()),
            evaluations: Default::default(),
            failures: Default::default(),
        })
    }

    /// Replaces the running groups; alert state of unchanged rules carries over.
    pub fn apply(
        self: &Arc<Self>,
        mut groups: Vec<Group>,
        opts: ManagerOptions,
        external_labels: Labels,
        external_url: String,
    ) {
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
        {
            let old = self.groups.read();
            let by_key: HashMap<(String, String), Arc<Mutex<Group>>> =
                old.iter().map(|g| (g.lock().key(), g.clone())).collect();
            for g in &mut groups {
                if let Some(prev) = by_key.get(&g.key()) {
                    g.adopt(&prev.lock());
                }
            }
        }
        {
            let mut ctx = self.ctx.write();
            ctx.external_labels = external_labels;
            ctx.external_url = external_url;
        }
        *self.opts.write() = opts;
        let groups: Vec<Arc<Mutex<Group>>> = groups
            .into_iter()
            .map(|g| Arc::new(Mutex::new(g)))
            .collect();
        *self.groups.write() = groups.clone();
        let mut tasks = self.tasks.lock();
        for g in groups {
            let me = self.clone();
            tasks.push(tokio::spawn(async move { me.run_group(g).await }));
        }
    }

    /// Stops every evaluation loop.
    pub fn stop(&self) {
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }

    async fn run_group(self: Arc<Self>, group: Arc<Mutex<Group>>) {
        let (interval, offset) = {
            let g = group.lock();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (g.file.as_str(), g.name.as_str()).hash(&mut h);
            let iv = g.interval.as_millis().max(1) as i64;
            (iv, (h.finish() % iv as u64) as i64)
        };
        loop {
            let now = wall_ms();
            // the next slot at offset + k * interval
            let next = now - (now - offset).rem_euclid(interval) + interval;
            tokio::time::sleep(Duration::from_millis((next - now).max(0) as u64)).await;
            let me = self.clone();
            let g = group.clone();
            let res = tokio::task::spawn_blocking(move || me.eval_once(&g, next)).await;
            if let Err(e) = res {
                tracing::error!(error = %e, "rule group evaluation task failed");
            }
        }
    }

    /// Evaluates a group once at `ts` and sends its due alerts.
    pub fn eval_once(&self, group: &Mutex<Group>, ts: i64) {
        let ctx = self.ctx.read().clone();
        let opts = self.opts.read().clone();
        let mut g = group.lock();
        let needs_restore = g
            .rules
            .iter()
            .any(|r| matches!(&r.rule, Rule::Alerting(a) if !a.restored));
        let out = g.eval(ts, wall_ms(), &ctx, opts.resend_delay);
        if needs_restore {
            g.restore(ts, &ctx, opts.outage_tolerance, opts.for_grace_period);
        }
        self.evaluations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.failures
            .fetch_add(out.errors as u64, std::sync::atomic::Ordering::Relaxed);
        if !out.to_send.is_empty() {
            let exprs: HashMap<&str, &str> = g
                .rules
                .iter()
                .map(|r| (r.rule.name(), r.rule.expr()))
                .collect();
            let notes = out
                .to_send
                .iter()
                .map(|a| {
                    notification(
                        a,
                        &ctx,
                        exprs
                            .get(a.labels.get("alertname").unwrap_or(""))
                            .copied()
                            .unwrap_or(""),
                    )
                })
                .collect();
            drop(g);
            self.sink.send(notes);
        }
    }

    /// The groups, for tests and the API.
    pub fn groups(&self) -> Vec<Arc<Mutex<Group>>> {
        self.groups.read().clone()
    }

    /// Self-metrics in the text format.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "# HELP day2_rule_evaluations_total Rule group evaluations.\n# TYPE day2_rule_evaluations_total counter\nday2_rule_evaluations_total {}",
            self.evaluations.load(std::sync::atomic::Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP day2_rule_evaluation_failures_total Rule evaluations that failed.\n# TYPE day2_rule_evaluation_failures_total counter\nday2_rule_evaluation_failures_total {}",
            self.failures.load(std::sync::atomic::Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP day2_rule_group_last_duration_seconds Duration of the last evaluation of each rule group.\n# TYPE day2_rule_group_last_duration_seconds gauge"
        );
        for g in self.groups.read().iter() {
            let g = g.lock();
            let _ = writeln!(
                out,
                "day2_rule_group_last_duration_seconds{{rule_group=\"{}\"}} {}",
                escape_label(&format!("{};{}", g.file, g.name)),
                g.eval_duration.as_secs_f64()
            );
        }
    }

    /// `data` of `/api/v1/rules`. `kind` is `alert`, `record` or empty; the
    /// name lists filter when not empty.
    pub fn rules_json(
        &self,
        kind: &str,
        rule_names: &[String],
        group_names: &[String],
        files: &[String],
    ) -> Json {
        let mut groups = Vec::new();
        for g in self.groups.read().iter() {
            let g = g.lock();
            if !group_names.is_empty() && !group_names.contains(&g.name) {
                continue;
            }
            if !files.is_empty() && !files.contains(&g.file) {
                continue;
            }
            let mut rules = Vec::new();
            for e in &g.rules {
                if !rule_names.is_empty() && !rule_names.iter().any(|n| n == e.rule.name()) {
                    continue;
                }
                let common = |j: &mut serde_json::Map<String, Json>| {
                    j.insert("health".into(), json!(e.health.health()));
                    j.insert(
                        "lastError".into(),
                        json!(e.health.last_error.clone().unwrap_or_default()),
                    );
                    j.insert(
                        "evaluationTime".into(),
                        json!(e.health.eval_duration.as_secs_f64()),
                    );
                    j.insert(
                        "lastEvaluation".into(),
                        json!(rfc3339(e.health.last_eval_wall_ms)),
                    );
                };
                match &e.rule {
                    Rule::Alerting(a) if kind != "record" => {
                        let mut j = serde_json::Map::new();
                        j.insert("state".into(), json!(a.state().as_str()));
                        j.insert("name".into(), json!(a.name));
                        j.insert("query".into(), json!(a.expr));
                        j.insert("duration".into(), json!(a.hold.as_secs_f64()));
                        j.insert(
                            "keepFiringFor".into(),
                            json!(a.keep_firing_for.as_secs_f64()),
                        );
                        j.insert("labels".into(), pairs_json(&a.raw_labels));
                        j.insert("annotations".into(), pairs_json(&a.raw_annotations));
                        let mut alerts: Vec<&Alert> = a
                            .active
                            .values()
                            .filter(|x| x.state != AlertState::Inactive)
                            .collect();
                        alerts.sort_by(|x, y| x.labels.cmp(&y.labels));
                        j.insert(
                            "alerts".into(),
                            Json::Array(alerts.into_iter().map(alert_json).collect()),
                        );
                        common(&mut j);
                        j.insert("type".into(), json!("alerting"));
                        rules.push(Json::Object(j));
                    }
                    Rule::Recording(r) if kind != "alert" => {
                        let mut j = serde_json::Map::new();
                        j.insert("name".into(), json!(r.name));
                        j.insert("query".into(), json!(r.expr));
                        j.insert("labels".into(), pairs_json(&r.labels));
                        common(&mut j);
                        j.insert("type".into(), json!("recording"));
                        rules.push(Json::Object(j));
                    }
                    _ => {}
                }
            }
            if rules.is_empty() && (!rule_names.is_empty() || !kind.is_empty()) {
                continue;
            }
            groups.push(json!({
                "name": g.name,
                "file": g.file,
                "rules": rules,
                "interval": g.interval.as_secs_f64(),
                "limit": g.limit,
                "evaluationTime": g.eval_duration.as_secs_f64(),
                "lastEvaluation": rfc3339(g.last_eval_wall_ms),
            }));
        }
        json!({ "groups": groups })
    }

    /// `data` of `/api/v1/alerts`: pending and firing alerts of every rule.
    pub fn alerts_json(&self) -> Json {
        let mut alerts = Vec::new();
        for g in self.groups.read().iter() {
            let g = g.lock();
            for e in &g.rules {
                if let Rule::Alerting(a) = &e.rule {
                    let mut list: Vec<&Alert> = a
                        .active
                        .values()
                        .filter(|x| x.state != AlertState::Inactive)
                        .collect();
                    list.sort_by(|x, y| x.labels.cmp(&y.labels));
                    alerts.extend(list.into_iter().map(alert_json));
                }
            }
        }
        json!({ "alerts": alerts })
    }
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn pairs_json(p: &[(String, String)]) -> Json {
    Json::Object(p.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

fn alert_json(a: &Alert) -> Json {
    json!({
        "labels": Json::Object(a.labels.iter().map(|l| (l.name.clone(), json!(l.value))).collect()),
        "annotations": pairs_json(&a.annotations),
        "state": a.state.as_str(),
        "activeAt": rfc3339(Some(a.active_at)),
        "value": day2_model::gofloat::format_e(a.value),
    })
}

/// RFC 3339 time as Prometheus prints it; the zero time when unset.
pub fn rfc3339(ms: Option<i64>) -> String {
    ms.and_then(|m| jiff::Timestamp::from_millisecond(m).ok())
        .map(|t| t.to_string())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
}

/// The link back to the expression, as Prometheus builds generator URLs.
fn generator_url(base: &str, expr: &str) -> String {
    let mut enc = String::new();
    for b in expr.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                enc.push(b as char)
            }
            b' ' => enc.push('+'),
            _ => enc.push_str(&format!("%{b:02X}")),
        }
    }
    format!(
        "{}/graph?g0.expr={enc}&g0.tab=1",
        base.trim_end_matches('/')
    )
}

fn notification(a: &Alert, ctx: &EvalCtx, expr: &str) -> Notification {
    let mut b = ctx.external_labels.to_builder();
    for l in a.labels.iter() {
        b.set(l.name.clone(), l.value.clone());
    }
    let resolved = a.state == AlertState::Inactive;
    Notification {
        labels: b.build(),
        annotations: a.annotations.clone(),
        starts_at_ms: a.fired_at.unwrap_or(a.active_at),
        ends_at_ms: if resolved {
            a.resolved_at.unwrap_or(a.valid_until)
        } else {
            a.valid_until
        },
        resolved,
        generator_url: generator_url(&ctx.external_url, expr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_url_is_escaped() {
        assert_eq!(
            generator_url("http://x:9090/", "up == 0"),
            "http://x:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1"
        );
    }

    #[test]
    fn rfc3339_zero_and_value() {
        assert_eq!(rfc3339(None), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339(Some(1_500)), "1970-01-01T00:00:01.5Z");
    }
}
