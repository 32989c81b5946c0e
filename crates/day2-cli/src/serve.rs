//! `day2 serve`: opens the storage, starts scraping and the HTTP server, and
//! reloads the configuration on SIGHUP or `POST /-/reload`.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use anyhow::Context;
use day2_ingest::scrape::{InternalTarget, ScrapeManager};
use day2_rules::RuleManager;
use day2_server::{MetricsSource, ReloadFuture, ServerState, WriteLimits};
use day2_tsdb::{Db, FsyncPolicy, Options};

use crate::config::{Day2Config, EMBEDDED_DEFAULT, FsyncMode};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Configuration file (day2.yml). Without it day2 runs on its embedded default.
    #[arg(long, short = 'c', env = "DAY2_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on; overrides server.listen.
    #[arg(long, env = "DAY2_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Data directory; overrides server.data_dir.
    #[arg(long, env = "DAY2_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, default_value = "text")]
    log_format: String,
}

/// Everything a reload touches.
struct App {
    config_path: Option<PathBuf>,
    db: Arc<Db>,
    scrape: Arc<ScrapeManager>,
    rules: Arc<RuleManager>,
    state: Weak<ServerState>,
    reload_lock: tokio::sync::Mutex<()>,
    /// The alert hub (when day2.yml has an `alertmanager` section).
    hub: crate::hubwire::HubCell,
    /// Control-plane state (`<data_dir>/state.db`), shared by every feature.
    store: Arc<day2_store::Store>,
    /// Deployments, post-deploy analysis, DORA.
    deploy: Arc<crate::deploywire::DeployWire>,
    /// Autoscaling policies.
    autoscale: Arc<crate::autoscalewire::AutoscaleWire>,
    /// Remediation runbooks runtime (when day2.yml has a `remediation` section).
    remediation: crate::remediatewire::RemediationCell,
    engine: Arc<day2_promql::Engine>,
    /// On-call and incidents.
    people: Arc<crate::peoplewire::People>,
}

fn storage_options(cfg: &Day2Config) -> Options {
    let s = &cfg.storage;
    Options {
        fsync: match s.fsync {
            FsyncMode::Always => FsyncPolicy::Always,
            FsyncMode::Interval => FsyncPolicy::Interval(s.fsync_interval),
            FsyncMode::Never => FsyncPolicy::Never,
        },
        out_of_order_window: s.out_of_order_window,
        block_duration: s.block_duration,
        retention_time: Some(s.retention_time).filter(|d| !d.is_zero()),
        retention_size: Some(s.retention_size).filter(|n| *n > 0),
        ..Options::default()
    }
}

fn load(path: Option<&PathBuf>) -> anyhow::Result<Day2Config> {
    Ok(match path {
        Some(p) => Day2Config::load(p)?,
        None => Day2Config::parse(EMBEDDED_DEFAULT, "<embedded default>")?,
    })
}

impl App {
    /// Applies a validated configuration to the running parts.
    async fn apply(&self, cfg: &Day2Config) {
        let internal = self.internal_targets(cfg);
        self.scrape
            .apply(cfg.global.clone(), cfg.scrape_configs.clone(), internal)
            .await;
        self.apply_rules(cfg);
        self.apply_alertmanager(cfg);
        self.apply_remediation(cfg);
        self.apply_people(cfg);
        crate::loopwire::connect(
            &self.remediation,
            &self.people,
            &self.deploy,
            &self.store,
            &self.hub,
        );
        // after remediation: rollbacks and Kubernetes targets go through it
        self.deploy.apply(&cfg.deployments, &self.hub);
        self.autoscale
            .set_kubernetes(crate::autoscalewire::kubernetes_scalers(&self.remediation));
        self.autoscale.apply(&cfg.autoscaling);
        self.db.set_retention(
            Some(cfg.storage.retention_time).filter(|d| !d.is_zero()),
            Some(cfg.storage.retention_size).filter(|n| *n > 0),
        );
        if let Some(st) = self.state.upgrade() {
            *st.write_limits.write() = WriteLimits {
                max_body_bytes: cfg.remote_write.max_body_size as usize,
                max_decoded_bytes: cfg.remote_write.max_decoded_size as usize,
            };
            st.rate_limiter
                .set_rate(cfg.remote_write.rate_limit_samples_per_second);
            // validated on load, so resolving again only fails if a secret vanished since
            match cfg.server.auth.resolve() {
                Ok(tokens) => *st.tokens.write() = tokens,
                Err((field, msg)) => {
                    tracing::error!(%field, error = %msg, "keeping the previous API tokens")
                }
            }
        }
    }

    /// The directory that relative paths in the configuration start from.
    fn base_dir(&self) -> PathBuf {
        self.config_path
            .as_ref()
            .and_then(|p| p.parent())
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// Replaces the rule groups (validated on load); alert state carries over.
    fn apply_rules(&self, cfg: &Day2Config) {
        let base = self.base_dir();
        match cfg.load_rule_groups(&base) {
            Ok(groups) => {
                let external_url = cfg
                    .rules
                    .external_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{}", cfg.server.listen));
                let external_labels =
                    day2_model::Labels::from_pairs(cfg.global.external_labels.clone());
                tracing::info!(groups = groups.len(), "rule groups loaded");
                self.rules.apply(
                    groups,
                    cfg.rules.options(cfg.global.evaluation_interval),
                    external_labels,
                    external_url,
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "rule files failed to load; previous rules keep running")
            }
        }
    }

    /// Starts, reconfigures or stops the alert hub (validated on load).
    fn apply_alertmanager(&self, cfg: &Day2Config) {
        let base = self.base_dir();
        let file = self
            .config_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<embedded default>".into());
        let loaded = match cfg.load_alertmanager(&base, &file) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "alertmanager configuration failed to load; the previous one keeps running");
                return;
            }
        };
        let state = self.state.upgrade();
        if let Err(e) = crate::hubwire::apply(&self.hub, state.as_deref(), &self.store, loaded) {
            tracing::error!(error = %format!("{e:#}"), "the alert hub could not start");
        }
    }

    /// Starts, reconfigures or stops remediation (validated on load); after
    /// the hub, whose sink it registers.
    fn apply_remediation(&self, cfg: &Day2Config) {
        let loaded = match &self.config_path {
            Some(p) => match cfg.load_remediation(&self.base_dir(), p) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "remediation configuration failed to load; the previous one keeps running");
                    return;
                }
            },
            None => None,
        };
        let state = self.state.upgrade();
        let parts = crate::remediatewire::Parts {
            state: state.as_deref(),
            store: &self.store,
            hub: &self.hub,
            engine: self.engine.clone(),
            db: self.db.clone(),
            context: Some(Arc::new(crate::loopwire::DeploymentContext(
                self.deploy.service.clone(),
            ))),
        };
        if let Err(e) = crate::remediatewire::apply(&self.remediation, parts, loaded) {
            tracing::error!(error = %format!("{e:#}"), "remediation could not start");
        }
    }

    /// On-call and incidents: settings, APIs, sinks on the (re)started hub.
    fn apply_people(&self, cfg: &Day2Config) {
        let file = self
            .config_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<embedded default>".into());
        let loaded = cfg
            .load_alertmanager(&self.base_dir(), &file)
            .ok()
            .flatten();
        let state = self.state.upgrade();
        self.people
            .apply(cfg, loaded.as_ref(), &self.hub, state.as_deref());
    }

    fn internal_targets(&self, cfg: &Day2Config) -> Vec<InternalTarget> {
        let mut out = Vec::new();
        let default_interval = cfg.global.scrape_interval;
        if cfg.host_metrics.enabled {
            out.push(InternalTarget {
                job: cfg
                    .host_metrics
                    .job
                    .clone()
                    .unwrap_or_else(|| "node".into()),
                instance: hostname(),
                interval: cfg.host_metrics.scrape_interval.unwrap_or(default_interval),
                source: Arc::new(|| {
                    day2_host::render()
                        .map(String::into_bytes)
                        .map_err(|e| e.to_string())
                }),
            });
        }
        if cfg.self_metrics.enabled {
            let state = self.state.clone();
            out.push(InternalTarget {
                job: cfg
                    .self_metrics
                    .job
                    .clone()
                    .unwrap_or_else(|| "day2".into()),
                instance: cfg.server.listen.to_string(),
                interval: cfg.self_metrics.scrape_interval.unwrap_or(default_interval),
                source: Arc::new(move || {
                    let st = state.upgrade().ok_or("server is shutting down")?;
                    Ok(day2_server::render_metrics(&st).into_bytes())
                }),
            });
        }
        out
    }

    async fn reload(&self) -> Result<(), String> {
        let _guard = self.reload_lock.lock().await;
        let cfg = load(self.config_path.as_ref()).map_err(|e| format!("{e:#}"))?;
        self.apply(&cfg).await;
        tracing::info!(file = ?self.config_path, "configuration reloaded");
        Ok(())
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Storage figures for `/metrics`.
struct StorageMetrics(Arc<Db>);

impl MetricsSource for StorageMetrics {
    fn render(&self, out: &mut String) {
        self.0.stats().render(out);
    }
}

/// Scrape figures for `/metrics`.
struct ScrapeMetrics(Arc<ScrapeManager>);

impl MetricsSource for ScrapeMetrics {
    fn render(&self, out: &mut String) {
        self.0.stats().render(out);
    }
}

/// The rule engine as the HTTP layer and `/metrics` see it.
struct RulesView(Arc<RuleManager>);

impl MetricsSource for RulesView {
    fn render(&self, out: &mut String) {
        self.0.render_metrics(out);
    }
}

impl day2_server::RulesStatus for RulesView {
    fn rules(
        &self,
        kind: &str,
        rule_names: &[String],
        group_names: &[String],
        files: &[String],
    ) -> serde_json::Value {
        self.0.rules_json(kind, rule_names, group_names, files)
    }

    fn alerts(&self) -> serde_json::Value {
        self.0.alerts_json()
    }
}

fn labels_json(l: &day2_model::Labels) -> serde_json::Value {
    serde_json::Value::Object(
        l.iter()
            .map(|x| (x.name.clone(), serde_json::Value::String(x.value.clone())))
            .collect(),
    )
}

impl day2_server::ScrapeStatus for ScrapeMetrics {
    fn targets(&self, state: &str) -> serde_json::Value {
        let (active, dropped) = self.0.targets();
        let active: Vec<serde_json::Value> = active
            .iter()
            .map(|t| {
                let last = t
                    .last_scrape
                    .and_then(|s| jiff::Timestamp::try_from(s).ok())
                    .map(|ts| ts.to_string())
                    .unwrap_or_else(|| "0001-01-01T00:00:00Z".into());
                serde_json::json!({
                    "discoveredLabels": labels_json(&t.discovered_labels),
                    "labels": labels_json(&t.labels),
                    "scrapePool": t.scrape_pool,
                    "scrapeUrl": t.scrape_url,
                    "globalUrl": t.scrape_url,
                    "lastError": t.last_error,
                    "lastScrape": last,
                    "lastScrapeDuration": t.last_scrape_duration.as_secs_f64(),
                    "health": t.health,
                    "scrapeInterval": day2_model::format_duration(t.scrape_interval),
                    "scrapeTimeout": day2_model::format_duration(t.scrape_timeout),
                })
            })
            .collect();
        let dropped: Vec<serde_json::Value> = dropped
            .iter()
            .map(|(_, l)| serde_json::json!({"discoveredLabels": labels_json(l)}))
            .collect();
        match state {
            "active" => serde_json::json!({"activeTargets": active, "droppedTargets": []}),
            "dropped" => serde_json::json!({"activeTargets": [], "droppedTargets": dropped}),
            _ => serde_json::json!({"activeTargets": active, "droppedTargets": dropped}),
        }
    }

    fn metadata(&self, metric: Option<&str>, limit: Option<usize>) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for (family, entries) in self.0.metadata() {
            if metric.is_some_and(|m| m != family) {
                continue;
            }
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
            let list: Vec<serde_json::Value> = entries
                .iter()
                .map(|(t, h, u)| serde_json::json!({"type": t, "help": h, "unit": u}))
                .collect();
            out.insert(family, serde_json::Value::Array(list));
        }
        serde_json::Value::Object(out)
    }
}

fn init_logging(format: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("DAY2_LOG").unwrap_or_else(|_| "info".into());
    // colours only on a terminal, never in log files
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(&args.log_format);
    let mut cfg = load(args.config.as_ref())?;
    if let Some(l) = args.listen {
        cfg.server.listen = l;
    }
    if let Some(d) = &args.data_dir {
        cfg.server.data_dir = d.clone();
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(serve(args, cfg))
}

async fn serve(args: ServeArgs, cfg: Day2Config) -> anyhow::Result<()> {
    let dir = cfg.server.data_dir.clone();
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    let opts = storage_options(&cfg);
    let db_dir = dir.clone();
    let db = tokio::task::spawn_blocking(move || Db::open(&db_dir, opts))
        .await?
        .with_context(|| format!("opening storage in {}", dir.display()))?;
    let db = Arc::new(db);
    let rec = db.recovery();
    tracing::info!(data_dir = %dir.display(), recovery = ?rec, "storage opened");
    let state_dir = dir.clone();
    let store = tokio::task::spawn_blocking(move || day2_store::Store::open_dir(&state_dir))
        .await?
        .with_context(|| format!("opening the state store in {}", dir.display()))?;
    let store = Arc::new(store);
    let people = Arc::new(crate::peoplewire::People::new(store.clone()));

    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.server.listen))?;

    let scrape = Arc::new(ScrapeManager::new(db.clone()));
    let engine = Arc::new(day2_promql::Engine::new(day2_promql::EngineOptions {
        lookback_delta: cfg.query.lookback_delta,
        timeout: cfg.query.timeout,
        max_samples: cfg.query.max_samples,
    }));
    let hub_cell: crate::hubwire::HubCell = Arc::new(parking_lot::RwLock::new(None));
    let remediation_cell: crate::remediatewire::RemediationCell =
        Arc::new(parking_lot::RwLock::new(None));
    let rules = RuleManager::new(
        day2_rules::EvalCtx {
            engine: engine.clone(),
            db: db.clone(),
            appender: db.clone(),
            external_labels: day2_model::Labels::empty(),
            external_url: String::new(),
        },
        Arc::new(crate::hubwire::HubSink(hub_cell.clone())),
    );
    let deploy = crate::deploywire::DeployWire::start(
        store.clone(),
        engine.clone(),
        db.clone(),
        &cfg.deployments,
        remediation_cell.clone(),
    )
    .context("starting deployments")?;
    let autoscale =
        crate::autoscalewire::AutoscaleWire::new(store.clone(), engine.clone(), db.clone());
    // The reload hook reaches the App through a weak link set once App exists.
    let app_cell: Arc<OnceLock<Weak<App>>> = Arc::new(OnceLock::new());
    let hook_cell = app_cell.clone();
    let state = Arc::new(ServerState {
        appender: db.clone(),
        queryable: db.clone(),
        metrics: Arc::new(day2_server::SelfMetrics::new()),
        sources: vec![
            Arc::new(StorageMetrics(db.clone())),
            Arc::new(ScrapeMetrics(scrape.clone())),
            Arc::new(RulesView(rules.clone())),
            Arc::new(crate::hubwire::HubMetrics(hub_cell.clone())),
            Arc::new(crate::deploywire::DeployMetrics(deploy.clone())),
            Arc::new(crate::autoscalewire::AutoscaleMetrics(autoscale.clone())),
            Arc::new(crate::remediatewire::RemediationMetrics(
                remediation_cell.clone(),
            )),
            people.clone(),
        ],
        scrape_status: Arc::new(ScrapeMetrics(scrape.clone())),
        rules: Arc::new(RulesView(rules.clone())),
        write_limits: parking_lot::RwLock::new(WriteLimits::default()),
        rate_limiter: day2_server::RateLimiter::new(0),
        engine: engine.clone(),
        query_slots: tokio::sync::Semaphore::new(cfg.query.max_concurrency.max(1)),
        tokens: parking_lot::RwLock::new(Vec::new()),
        alertmanager: parking_lot::RwLock::new(None),
        deployments: parking_lot::RwLock::new(Some(deploy.clone())),
        autoscaling: parking_lot::RwLock::new(Some(autoscale.clone())),
        remediation: parking_lot::RwLock::new(None),
        oncall: parking_lot::RwLock::new(None),
        incidents: parking_lot::RwLock::new(None),
        reload: Arc::new(move || -> ReloadFuture {
            let app = hook_cell.get().and_then(Weak::upgrade);
            Box::pin(async move {
                match app {
                    Some(app) => app.reload().await,
                    None => Err("server is starting or shutting down".into()),
                }
            })
        }),
    });
    let app = Arc::new(App {
        config_path: args.config.clone(),
        db: db.clone(),
        scrape,
        rules: rules.clone(),
        state: Arc::downgrade(&state),
        reload_lock: tokio::sync::Mutex::new(()),
        hub: hub_cell.clone(),
        store,
        deploy,
        autoscale,
        remediation: remediation_cell,
        engine,
        people,
    });
    let _ = app_cell.set(Arc::downgrade(&app));
    app.apply(&cfg).await;
    if cfg.alertmanager.is_some() && hub_cell.read().is_none() {
        anyhow::bail!("the alert hub failed to start (see the log above)");
    }
    if cfg.remediation.is_some() && app.remediation.read().is_none() {
        anyhow::bail!("remediation failed to start (see the log above)");
    }
    app.people.start();

    // Cut blocks, compact and apply retention in the background.
    let maint_db = db.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        loop {
            tick.tick().await;
            let db = maint_db.clone();
            let now = now_ms();
            match tokio::task::spawn_blocking(move || db.maintain(now)).await {
                Ok(Ok(report)) => tracing::debug!(?report, "storage maintenance done"),
                Ok(Err(e)) => tracing::error!(error = %e, "storage maintenance failed"),
                Err(e) => tracing::error!(error = %e, "storage maintenance task failed"),
            }
        }
    });

    // SIGHUP reloads, like Prometheus.
    let hup_app = app.clone();
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            match hup_app.reload().await {
                Ok(()) => {}
                Err(e) => {
                    tracing::error!(error = %e, "configuration reload refused; the previous configuration keeps running")
                }
            }
        }
    });

    tracing::info!(listen = %cfg.server.listen, config = ?args.config, "day2 is ready");
    if state.tokens.read().is_empty() && !cfg.server.listen.ip().is_loopback() {
        tracing::warn!(listen = %cfg.server.listen, "no API tokens configured: remote write and reload accepted from loopback clients only");
    }
    axum::serve(
        listener,
        day2_server::router(state.clone())
            .into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("HTTP server failed")?;

    tracing::info!("shutting down");
    app.rules.stop();
    app.people.stop();
    if let Some(h) = hub_cell.read().clone() {
        h.stop();
    }
    app.scrape.stop().await;
    let db2 = db.clone();
    tokio::task::spawn_blocking(move || db2.close())
        .await?
        .context("closing storage")?;
    drop(state);
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
