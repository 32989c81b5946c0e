//! One target's scrape loop: fetch, parse, apply labels and limits, track
//! staleness, write through the `Appender` with the report series.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use day2_model::{Appender, Labels, LabelsBuilder, METRIC_NAME, STALE_NAN, Sample, TimeSeries};
use parking_lot::Mutex;
use tokio::sync::watch;

use super::config::Limits;
use super::{Counters, InternalSource};
use crate::relabel::{self, RelabelRule};
use crate::textparse::{self, Format, MetricMetadata};

/// Accept header Prometheus sends: OpenMetrics preferred, text format accepted.
const ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Where a target's body comes from.
#[derive(Clone)]
pub enum Source {
    Http {
        client: reqwest::Client,
        url: String,
        auth: Option<String>,
    },
    Internal(InternalSource),
}

/// Health as the targets API reports it.
#[derive(Debug, Clone, Default)]
pub struct Health {
    pub last_scrape: Option<SystemTime>,
    pub last_duration: Duration,
    pub last_error: String,
    /// None until the first scrape.
    pub up: Option<bool>,
    pub samples: usize,
}

/// Everything a loop needs; shared with the pool for status.
pub struct LoopCtx {
    pub labels: Labels,
    pub discovered: Labels,
    pub scrape_url: String,
    pub source: Source,
    pub interval: Duration,
    pub timeout: Duration,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub metric_rules: Vec<RelabelRule>,
    pub limits: Limits,
    pub appender: Arc<dyn Appender>,
    pub counters: Arc<Counters>,
    pub health: Mutex<Health>,
    pub metadata: Mutex<Vec<MetricMetadata>>,
    /// Series written by the last scrape (without explicit timestamps), for staleness.
    pub previous: Arc<Mutex<HashSet<Labels>>>,
}

fn now_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs until `stop` carries `Some(mark_stale)`.
pub async fn run(ctx: Arc<LoopCtx>, mut stop: watch::Receiver<Option<bool>>) {
    // Spread targets over the interval by a hash of their labels.
    let offset = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        ctx.labels.hash(&mut h);
        let iv = ctx.interval.as_millis().max(1) as u64;
        Duration::from_millis(h.finish() % iv)
    };
    let start = tokio::time::Instant::now() + offset;
    let mut ticker = tokio::time::interval_at(start, ctx.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticker.tick() => scrape_once(&ctx).await,
            changed = stop.changed() => {
                let mark = if changed.is_ok() { (*stop.borrow()).unwrap_or(true) } else { true };
                if mark {
                    mark_all_stale(&ctx).await;
                }
                return;
            }
        }
    }
}

async fn append(ctx: &LoopCtx, batch: Vec<TimeSeries>) {
    let appender = ctx.appender.clone();
    match tokio::task::spawn_blocking(move || appender.append(batch)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::error!(target_url = %ctx.scrape_url, error = %e, "storing scraped samples failed")
        }
        Err(e) => tracing::error!(error = %e, "append task failed"),
    }
}

/// Writes staleness markers for everything the last scrape returned.
pub async fn mark_all_stale(ctx: &LoopCtx) {
    let prev: Vec<Labels> = ctx.previous.lock().drain().collect();
    if prev.is_empty() {
        return;
    }
    let t = now_ms(SystemTime::now());
    let batch = prev
        .into_iter()
        .map(|labels| TimeSeries {
            histograms: Vec::new(),
            labels,
            samples: vec![Sample::new(t, STALE_NAN)],
        })
        .collect();
    append(ctx, batch).await;
}

async fn fetch(ctx: &LoopCtx) -> Result<(Vec<u8>, Format), String> {
    match &ctx.source {
        Source::Internal(f) => {
            let f = f.clone();
            let body = tokio::task::spawn_blocking(move || f())
                .await
                .map_err(|e| format!("collector task failed: {e}"))??;
            if ctx.limits.body_size_limit > 0 && body.len() as u64 > ctx.limits.body_size_limit {
                return Err(format!(
                    "body size limit exceeded ({} bytes)",
                    ctx.limits.body_size_limit
                ));
            }
            Ok((body, Format::Prometheus))
        }
        Source::Http { client, url, auth } => {
            let mut req = client
                .get(url)
                .header("Accept", ACCEPT)
                .header(
                    "X-Prometheus-Scrape-Timeout-Seconds",
                    format!("{}", ctx.timeout.as_secs_f64()),
                )
                .timeout(ctx.timeout);
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            let mut resp = req.send().await.map_err(|e| describe(&e))?;
            if !resp.status().is_success() {
                return Err(format!("server returned HTTP status {}", resp.status()));
            }
            let format = Format::from_content_type(
                resp.headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok()),
            );
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
                body.extend_from_slice(&chunk);
                if ctx.limits.body_size_limit > 0 && body.len() as u64 > ctx.limits.body_size_limit
                {
                    return Err(format!(
                        "body size limit exceeded ({} bytes)",
                        ctx.limits.body_size_limit
                    ));
                }
            }
            Ok((body, format))
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "context deadline exceeded (scrape timeout)".into();
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Target labels + sample labels, as Prometheus merges them.
fn merge(target: &Labels, sample: &Labels, honor: bool) -> Labels {
    let mut b: LabelsBuilder = sample.to_builder();
    for l in target {
        match b.get(&l.name) {
            None => {
                b.set(l.name.clone(), l.value.clone());
            }
            Some(_) if honor => {}
            Some(existing) => {
                let existing = existing.to_string();
                let mut name = format!("exported_{}", l.name);
                while b.get(&name).is_some() {
                    name = format!("exported_{name}");
                }
                b.set(name, existing);
                b.set(l.name.clone(), l.value.clone());
            }
        }
    }
    b.build()
}

struct Processed {
    series: Vec<TimeSeries>,
    current: HashSet<Labels>,
    scraped: usize,
    post_relabel: usize,
}

fn process(ctx: &LoopCtx, body: &[u8], format: Format, t: i64) -> Result<Processed, String> {
    let parsed = textparse::parse(body, format).map_err(|e| format!("parse error: {e}"))?;
    *ctx.metadata.lock() = parsed.metadata;
    let scraped = parsed.samples.len();
    let lim = ctx.limits;
    let mut series = Vec::with_capacity(scraped);
    let mut current = HashSet::with_capacity(scraped);
    for s in parsed.samples {
        let labels = merge(&ctx.labels, &s.labels, ctx.honor_labels);
        let Some(labels) = relabel::apply(&labels, &ctx.metric_rules) else {
            continue;
        };
        if labels.metric_name().is_none() {
            continue;
        }
        if lim.label_limit > 0 && labels.len() as u64 > lim.label_limit {
            return Err(format!(
                "label_limit exceeded: {labels} has {} labels (limit {})",
                labels.len(),
                lim.label_limit
            ));
        }
        for l in &labels {
            if lim.label_name_length_limit > 0 && l.name.len() as u64 > lim.label_name_length_limit
            {
                return Err(format!(
                    "label_name_length_limit exceeded: label name {:?} (limit {})",
                    l.name, lim.label_name_length_limit
                ));
            }
            if lim.label_value_length_limit > 0
                && l.value.len() as u64 > lim.label_value_length_limit
            {
                return Err(format!(
                    "label_value_length_limit exceeded: value of {:?} (limit {})",
                    l.name, lim.label_value_length_limit
                ));
            }
        }
        if lim.sample_limit > 0 && series.len() as u64 >= lim.sample_limit {
            return Err(format!(
                "sample_limit exceeded: more than {} samples",
                lim.sample_limit
            ));
        }
        let ts = match s.timestamp_ms {
            Some(ts) if ctx.honor_timestamps => ts,
            _ => {
                current.insert(labels.clone());
                t
            }
        };
        series.push(TimeSeries {
            histograms: Vec::new(),
            labels,
            samples: vec![Sample::new(ts, s.value)],
        });
    }
    let post_relabel = series.len();
    Ok(Processed {
        series,
        current,
        scraped,
        post_relabel,
    })
}

fn report(ctx: &LoopCtx, name: &str, t: i64, v: f64) -> TimeSeries {
    let mut b = ctx.labels.to_builder();
    b.set(METRIC_NAME, name);
    TimeSeries {
        histograms: Vec::new(),
        labels: b.build(),
        samples: vec![Sample::new(t, v)],
    }
}

/// One scrape: fetch, process, staleness, report series, append.
pub async fn scrape_once(ctx: &LoopCtx) {
    let wall = SystemTime::now();
    let t = now_ms(wall);
    let started = Instant::now();
    let result = match fetch(ctx).await {
        Ok((body, format)) => process(ctx, &body, format, t),
        Err(e) => Err(e),
    };
    let took = started.elapsed();
    ctx.counters.scrapes.fetch_add(1, Ordering::Relaxed);
    let (mut batch, current, scraped, post, err) = match result {
        Ok(p) => (p.series, p.current, p.scraped, p.post_relabel, None),
        Err(e) => {
            ctx.counters.failures.fetch_add(1, Ordering::Relaxed);
            (Vec::new(), HashSet::new(), 0, 0, Some(e))
        }
    };
    ctx.counters
        .samples
        .fetch_add(post as u64, Ordering::Relaxed);
    let added;
    {
        let mut prev = ctx.previous.lock();
        added = current.difference(&prev).count();
        for gone in prev.difference(&current) {
            batch.push(TimeSeries {
                histograms: Vec::new(),
                labels: gone.clone(),
                samples: vec![Sample::new(t, STALE_NAN)],
            });
        }
        *prev = current;
    }
    let up = err.is_none();
    batch.push(report(ctx, "up", t, if up { 1.0 } else { 0.0 }));
    batch.push(report(
        ctx,
        "scrape_duration_seconds",
        t,
        took.as_secs_f64(),
    ));
    batch.push(report(ctx, "scrape_samples_scraped", t, scraped as f64));
    batch.push(report(
        ctx,
        "scrape_samples_post_metric_relabeling",
        t,
        post as f64,
    ));
    batch.push(report(ctx, "scrape_series_added", t, added as f64));
    append(ctx, batch).await;
    if let Some(e) = &err {
        tracing::debug!(target_url = %ctx.scrape_url, error = %e, "scrape failed");
    }
    let mut h = ctx.health.lock();
    h.last_scrape = Some(wall);
    h.last_duration = took;
    h.last_error = err.unwrap_or_default();
    h.up = Some(up);
    h.samples = post;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_follows_honor_labels() {
        let target = Labels::from_pairs([("job", "node"), ("instance", "a:1")]);
        let sample = Labels::from_pairs([("__name__", "x"), ("job", "inner")]);
        let kept = merge(&target, &sample, false);
        assert_eq!(kept.get("job"), Some("node"));
        assert_eq!(kept.get("exported_job"), Some("inner"));
        let honored = merge(&target, &sample, true);
        assert_eq!(honored.get("job"), Some("inner"));
        assert_eq!(honored.get("instance"), Some("a:1"));
    }
}
