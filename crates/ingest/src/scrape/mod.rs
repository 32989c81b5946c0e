//! Scraping: Prometheus `scrape_configs` (static and file discovery,
//! relabelling, auth, limits, staleness) plus in-process targets such as the
//! host collector, all written through `day2_model::Appender`.
//!
//! The manager holds one pool per job. A pool turns discovered groups into
//! targets and runs one loop per target. On reload, a target whose labels are
//! unchanged keeps its staleness state; a target that disappears gets
//! staleness markers for its series.

pub mod config;
pub mod discovery;
pub mod scrape_loop;
pub mod target;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use day2_model::{Appender, Labels};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{GlobalConfig, ScrapeConfig};
use scrape_loop::{Health, LoopCtx, Source};

/// Produces a body in the Prometheus text format in process.
pub type InternalSource = Arc<dyn Fn() -> Result<Vec<u8>, String> + Send + Sync>;

/// A target scraped in process instead of over HTTP (host collector, self metrics).
#[derive(Clone)]
pub struct InternalTarget {
    pub job: String,
    pub instance: String,
    pub interval: Duration,
    pub source: InternalSource,
}

/// Counters for self-monitoring.
#[derive(Debug, Default)]
pub struct Counters {
    pub scrapes: AtomicU64,
    pub failures: AtomicU64,
    pub samples: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Default)]
pub struct ScrapeStats {
    pub scrapes_total: u64,
    pub scrape_failures_total: u64,
    pub samples_scraped_total: u64,
    pub active_targets: u64,
}

impl ScrapeStats {
    /// Prometheus text-format lines.
    pub fn render(&self, out: &mut String) {
        for (name, kind, help, v) in [
            (
                "day2_scrapes_total",
                "counter",
                "Scrapes performed.",
                self.scrapes_total,
            ),
            (
                "day2_scrape_failures_total",
                "counter",
                "Scrapes that failed (up=0).",
                self.scrape_failures_total,
            ),
            (
                "day2_scrape_samples_total",
                "counter",
                "Samples ingested by scraping.",
                self.samples_scraped_total,
            ),
            (
                "day2_scrape_active_targets",
                "gauge",
                "Targets being scraped.",
                self.active_targets,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
    }
}

/// What `/api/v1/targets` shows for one active target.
#[derive(Debug, Clone)]
pub struct TargetStatus {
    pub scrape_pool: String,
    pub discovered_labels: Labels,
    pub labels: Labels,
    pub scrape_url: String,
    pub last_error: String,
    pub last_scrape: Option<std::time::SystemTime>,
    pub last_scrape_duration: Duration,
    /// "up", "down" or "unknown".
    pub health: &'static str,
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
}

struct LoopHandle {
    ctx: Arc<LoopCtx>,
    stop: watch::Sender<Option<bool>>,
    task: JoinHandle<()>,
}

#[derive(Clone, PartialEq)]
enum PoolSpec {
    Config(Box<ScrapeConfig>, Box<GlobalConfig>),
    Internal {
        job: String,
        instance: String,
        interval: Duration,
    },
}

struct Pool {
    spec: PoolSpec,
    loops: Mutex<HashMap<Labels, LoopHandle>>,
    dropped: Mutex<Vec<Labels>>,
    discovery: Mutex<Option<JoinHandle<()>>>,
}

impl Pool {
    /// Stops loops whose labels are not in `keep`; `mark_stale` writes markers.
    async fn stop_loops(&self, keep: &[Labels], mark_stale: bool) {
        let stopped: Vec<LoopHandle> = {
            let mut loops = self.loops.lock();
            let gone: Vec<Labels> = loops
                .keys()
                .filter(|l| !keep.contains(l))
                .cloned()
                .collect();
            gone.into_iter().filter_map(|l| loops.remove(&l)).collect()
        };
        for h in stopped {
            let _ = h.stop.send(Some(mark_stale));
            let _ = h.task.await;
        }
    }
}

/// Runs every scrape pool.
pub struct ScrapeManager {
    appender: Arc<dyn Appender>,
    counters: Arc<Counters>,
    pools: tokio::sync::Mutex<BTreeMap<String, Arc<Pool>>>,
    /// Read-only view for the status API, updated on apply.
    view: Mutex<Vec<(String, Arc<Pool>)>>,
}

fn auth_header(cfg: &ScrapeConfig) -> Result<Option<String>, String> {
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    if let Some(b) = &cfg.basic_auth {
        let pw = match (&b.password, &b.password_file) {
            (Some(p), _) => p.clone(),
            (None, Some(f)) => read(f)?,
            _ => String::new(),
        };
        return Ok(Some(format!(
            "Basic {}",
            base64(format!("{}:{pw}", b.username).as_bytes())
        )));
    }
    if let Some(t) = &cfg.bearer_token {
        return Ok(Some(format!("Bearer {t}")));
    }
    if let Some(f) = &cfg.bearer_token_file {
        return Ok(Some(format!("Bearer {}", read(f)?)));
    }
    if let Some(a) = &cfg.authorization {
        let kind = a.kind.clone().unwrap_or_else(|| "Bearer".into());
        let cred = match (&a.credentials, &a.credentials_file) {
            (Some(c), _) => c.clone(),
            (None, Some(f)) => read(f)?,
            _ => String::new(),
        };
        return Ok(Some(format!("{kind} {cred}")));
    }
    Ok(None)
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn http_client(cfg: &ScrapeConfig) -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder().user_agent(concat!("day2/", env!("CARGO_PKG_VERSION")));
    if !cfg.follow_redirects {
        b = b.redirect(reqwest::redirect::Policy::none());
    }
    if let Some(t) = &cfg.tls_config
        && t.insecure_skip_verify
    {
        b = b.tls_danger_accept_invalid_certs(true);
    }
    if !cfg.enable_http2 {
        b = b.http1_only();
    }
    b.build().map_err(|e| format!("building HTTP client: {e}"))
}

impl ScrapeManager {
    pub fn new(appender: Arc<dyn Appender>) -> Self {
        ScrapeManager {
            appender,
            counters: Arc::default(),
            pools: tokio::sync::Mutex::new(BTreeMap::new()),
            view: Mutex::new(Vec::new()),
        }
    }

    /// Applies a (validated) configuration, diffing against what runs.
    pub async fn apply(
        &self,
        global: GlobalConfig,
        configs: Vec<ScrapeConfig>,
        internal: Vec<InternalTarget>,
    ) {
        let mut pools = self.pools.lock().await;
        let mut wanted: BTreeMap<String, (PoolSpec, Option<InternalTarget>)> = BTreeMap::new();
        for c in configs {
            wanted.insert(
                c.job_name.clone(),
                (
                    PoolSpec::Config(Box::new(c), Box::new(global.clone())),
                    None,
                ),
            );
        }
        for it in internal {
            let key = format!("{}#internal", it.job);
            wanted.insert(
                key,
                (
                    PoolSpec::Internal {
                        job: it.job.clone(),
                        instance: it.instance.clone(),
                        interval: it.interval,
                    },
                    Some(it),
                ),
            );
        }
        // stop pools that are gone (their targets go stale)
        let gone: Vec<String> = pools
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(p) = pools.remove(&k) {
                if let Some(d) = p.discovery.lock().take() {
                    d.abort();
                }
                p.stop_loops(&[], true).await;
            }
        }
        for (key, (spec, it)) in wanted {
            if pools.get(&key).is_some_and(|p| p.spec == spec) {
                continue;
            }
            let old = pools.remove(&key);
            let pool = self.start_pool(spec, it, old).await;
            pools.insert(key, pool);
        }
        *self.view.lock() = pools.iter().map(|(k, p)| (k.clone(), p.clone())).collect();
    }

    async fn start_pool(
        &self,
        spec: PoolSpec,
        internal: Option<InternalTarget>,
        old: Option<Arc<Pool>>,
    ) -> Arc<Pool> {
        // carry over staleness state of targets that survive the reload
        let mut carried: HashMap<Labels, Arc<Mutex<std::collections::HashSet<Labels>>>> =
            HashMap::new();
        if let Some(old) = &old {
            if let Some(d) = old.discovery.lock().take() {
                d.abort();
            }
            for (l, h) in old.loops.lock().iter() {
                carried.insert(l.clone(), h.ctx.previous.clone());
            }
        }
        let pool = match (&spec, internal) {
            (
                PoolSpec::Internal {
                    job,
                    instance,
                    interval,
                },
                Some(it),
            ) => {
                let labels =
                    Labels::from_pairs([("job", job.as_str()), ("instance", instance.as_str())]);
                let pool = Arc::new(Pool {
                    spec: spec.clone(),
                    loops: Mutex::new(HashMap::new()),
                    dropped: Mutex::new(Vec::new()),
                    discovery: Mutex::new(None),
                });
                let ctx = LoopCtx {
                    labels: labels.clone(),
                    discovered: labels.clone(),
                    scrape_url: format!("internal://{job}"),
                    source: Source::Internal(it.source.clone()),
                    interval: *interval,
                    timeout: *interval,
                    honor_labels: false,
                    honor_timestamps: true,
                    metric_rules: Vec::new(),
                    limits: Default::default(),
                    appender: self.appender.clone(),
                    counters: self.counters.clone(),
                    health: Mutex::new(Health::default()),
                    metadata: Mutex::new(Vec::new()),
                    previous: carried.get(&labels).cloned().unwrap_or_default(),
                };
                spawn_loop(&pool, ctx);
                pool
            }
            (PoolSpec::Config(cfg, global), _) => {
                self.start_config_pool(cfg, global, carried).await
            }
            (PoolSpec::Internal { .. }, None) => {
                unreachable!("internal pools always come with their source")
            }
        };
        if let Some(old) = old {
            let keep: Vec<Labels> = pool.loops.lock().keys().cloned().collect();
            // surviving targets continue in the new pool without staleness markers
            old.stop_loops(&keep, true).await;
            old.stop_loops(&[], false).await;
        }
        pool
    }

    async fn start_config_pool(
        &self,
        cfg: &ScrapeConfig,
        global: &GlobalConfig,
        carried: HashMap<Labels, Arc<Mutex<std::collections::HashSet<Labels>>>>,
    ) -> Arc<Pool> {
        let rules = crate::relabel::compile(&cfg.relabel_configs).unwrap_or_default();
        let metric_rules = crate::relabel::compile(&cfg.metric_relabel_configs).unwrap_or_default();
        let client = http_client(cfg);
        let auth = auth_header(cfg);
        let limits = cfg.limits(global);
        let mut watcher = discovery::FileWatcher::new(cfg.file_sd_configs.clone());
        let statics = discovery::static_groups(&cfg.static_configs);
        let pool = Arc::new(Pool {
            spec: PoolSpec::Config(Box::new(cfg.clone()), Box::new(global.clone())),
            loops: Mutex::new(HashMap::new()),
            dropped: Mutex::new(Vec::new()),
            discovery: Mutex::new(None),
        });
        let factory = {
            let appender = self.appender.clone();
            let counters = self.counters.clone();
            let cfg = cfg.clone();
            move |t: &target::Target,
                  previous: Arc<Mutex<std::collections::HashSet<Labels>>>|
                  -> Result<LoopCtx, String> {
                let client = client.clone()?;
                let auth = auth.clone()?;
                Ok(LoopCtx {
                    labels: t.labels.clone(),
                    discovered: t.discovered.clone(),
                    scrape_url: t.url.clone(),
                    source: Source::Http {
                        client,
                        url: t.url.clone(),
                        auth,
                    },
                    interval: t.interval,
                    timeout: t.timeout,
                    honor_labels: cfg.honor_labels,
                    honor_timestamps: cfg.honor_timestamps,
                    metric_rules: metric_rules.clone(),
                    limits,
                    appender: appender.clone(),
                    counters: counters.clone(),
                    health: Mutex::new(Health::default()),
                    metadata: Mutex::new(Vec::new()),
                    previous,
                })
            }
        };
        let file_groups = watcher.poll(true).unwrap_or_default();
        let sync = {
            let cfg = cfg.clone();
            let global = global.clone();
            move |pool: &Pool,
                  file_groups: &[discovery::TargetGroup],
                  carried: &HashMap<Labels, Arc<Mutex<std::collections::HashSet<Labels>>>>|
                  -> Vec<Labels> {
                let mut groups = statics.clone();
                groups.extend(file_groups.iter().cloned());
                let mut built = target::build(&cfg, &global, &groups, &rules);
                for e in &built.errors {
                    tracing::warn!(job = %cfg.job_name, error = %e, "target skipped");
                }
                if limits.target_limit > 0 && built.active.len() as u64 > limits.target_limit {
                    tracing::error!(job = %cfg.job_name, targets = built.active.len(), limit = limits.target_limit, "target_limit exceeded; scraping none of the job's targets");
                    built.active.clear();
                }
                *pool.dropped.lock() = built.dropped;
                let keep: Vec<Labels> = built.active.iter().map(|t| t.labels.clone()).collect();
                for t in &built.active {
                    if pool.loops.lock().contains_key(&t.labels) {
                        continue;
                    }
                    let previous = carried.get(&t.labels).cloned().unwrap_or_default();
                    match factory(t, previous) {
                        Ok(ctx) => spawn_loop(pool, ctx),
                        Err(e) => {
                            tracing::error!(job = %cfg.job_name, error = %e, "cannot scrape target")
                        }
                    }
                }
                keep
            }
        };
        let keep = sync(&pool, &file_groups, &carried);
        pool.stop_loops(&keep, true).await;
        if !watcher.is_empty() {
            let weak = Arc::downgrade(&pool);
            let handle = tokio::spawn(async move {
                let empty = HashMap::new();
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let Some(pool) = weak.upgrade() else { return };
                    if let Some(groups) = watcher.poll(false) {
                        let keep = sync(&pool, &groups, &empty);
                        pool.stop_loops(&keep, true).await;
                    }
                }
            });
            *pool.discovery.lock() = Some(handle);
        }
        pool
    }

    /// Status of every target, for `/api/v1/targets`.
    pub fn targets(&self) -> (Vec<TargetStatus>, Vec<(String, Labels)>) {
        let view = self.view.lock().clone();
        let mut active = Vec::new();
        let mut dropped = Vec::new();
        for (key, pool) in view {
            let job = key.trim_end_matches("#internal").to_string();
            for h in pool.loops.lock().values() {
                let health = h.ctx.health.lock().clone();
                active.push(TargetStatus {
                    scrape_pool: job.clone(),
                    discovered_labels: h.ctx.discovered.clone(),
                    labels: h.ctx.labels.clone(),
                    scrape_url: h.ctx.scrape_url.clone(),
                    last_error: health.last_error,
                    last_scrape: health.last_scrape,
                    last_scrape_duration: health.last_duration,
                    health: match health.up {
                        Some(true) => "up",
                        Some(false) => "down",
                        None => "unknown",
                    },
                    scrape_interval: h.ctx.interval,
                    scrape_timeout: h.ctx.timeout,
                });
            }
            for d in pool.dropped.lock().iter() {
                dropped.push((job.clone(), d.clone()));
            }
        }
        active.sort_by(|a, b| (&a.scrape_pool, &a.labels).cmp(&(&b.scrape_pool, &b.labels)));
        (active, dropped)
    }

    /// Metric metadata from the last scrape of every target: family -> (type, help, unit), deduplicated.
    pub fn metadata(&self) -> BTreeMap<String, Vec<(String, String, String)>> {
        let mut out: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
        for (_, pool) in self.view.lock().iter() {
            for h in pool.loops.lock().values() {
                for m in h.ctx.metadata.lock().iter() {
                    let entry = (m.kind.as_str().to_string(), m.help.clone(), m.unit.clone());
                    let v = out.entry(m.family.clone()).or_default();
                    if !v.contains(&entry) {
                        v.push(entry);
                    }
                }
            }
        }
        out
    }

    pub fn stats(&self) -> ScrapeStats {
        ScrapeStats {
            scrapes_total: self.counters.scrapes.load(Ordering::Relaxed),
            scrape_failures_total: self.counters.failures.load(Ordering::Relaxed),
            samples_scraped_total: self.counters.samples.load(Ordering::Relaxed),
            active_targets: self
                .view
                .lock()
                .iter()
                .map(|(_, p)| p.loops.lock().len() as u64)
                .sum(),
        }
    }

    /// Stops every loop without staleness markers (the process is going away;
    /// a restart continues the series).
    pub async fn stop(&self) {
        let mut pools = self.pools.lock().await;
        for (_, p) in std::mem::take(&mut *pools) {
            if let Some(d) = p.discovery.lock().take() {
                d.abort();
            }
            p.stop_loops(&[], false).await;
        }
        self.view.lock().clear();
    }
}

fn spawn_loop(pool: &Pool, ctx: LoopCtx) {
    let ctx = Arc::new(ctx);
    let (tx, rx) = watch::channel(None);
    let task = tokio::spawn(scrape_loop::run(ctx.clone(), rx));
    pool.loops.lock().insert(
        ctx.labels.clone(),
        LoopHandle {
            ctx,
            stop: tx,
            task,
        },
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(super::base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(super::base64(b"a"), "YQ==");
        assert_eq!(super::base64(b"ab"), "YWI=");
        assert_eq!(super::base64(b""), "");
    }
}
