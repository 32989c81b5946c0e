//! day2's benchmarks, run side by side with Prometheus and VictoriaMetrics in
//! the same run on the same data. See bench/README.md.

mod alerts;
mod data;
mod live;
mod rules;
mod target;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Benchmarks of day2 beside Prometheus and VictoriaMetrics")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Remote-write ingestion: samples/s, CPU-s per 1M samples, peak RSS, bytes/sample.
    Ingest(IngestArgs),
    /// Ingests the same data set, then times range queries on each target.
    Query(QueryArgs),
    /// Ingests the same data set, then times the evaluation of alerting rules
    /// (day2 and Prometheus; VictoriaMetrics has no rule engine of its own).
    Rules(RulesArgs),
    /// Alert hub: alerts/s accepted on `POST /api/v2/alerts` and alert-to-webhook
    /// latency, day2 beside Debian's Alertmanager.
    Alerts(AlertsArgs),
}

#[derive(clap::Args)]
struct AlertsArgs {
    /// Distinct alerts posted in the throughput phase.
    #[arg(long, default_value_t = 20_000)]
    alerts: usize,
    /// Alerts per request (a JSON array) in the throughput phase.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Concurrent connections in the throughput phase.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Single alerts posted one at a time in the latency phase.
    #[arg(long, default_value_t = 200)]
    latency_alerts: usize,
    /// Comma-separated: day2, alertmanager.
    #[arg(long, default_value = "day2,alertmanager")]
    targets: String,
    #[arg(long, default_value = "target/release/day2")]
    day2_bin: PathBuf,
}

async fn alerts_bench(args: AlertsArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let inbox = alerts::Inbox::default();
    let hook_port = alerts::start_receiver(inbox.clone()).await?;
    let am_yml = alerts::alertmanager_yml(&format!("http://127.0.0.1:{hook_port}/hook"));
    let day2_extra =
        "alertmanager:\n  config_file: alertmanager.yml\n  egress: {allow: [127.0.0.1/32]}\n";
    let plan = alerts::Plan {
        alerts: args.alerts,
        batch: args.batch,
        concurrency: args.concurrency,
        latency_alerts: args.latency_alerts,
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let mut rows = Vec::new();
    for name in args
        .targets
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let mut srv = match target::Server::start_with(
            name,
            &args.day2_bin,
            day2_extra,
            &[("alertmanager.yml", &am_yml)],
        ) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("skipping {name}: {e}");
                continue;
            }
        };
        srv.wait_ready(&client).await?;
        eprintln!("{name}: posting {} alerts ...", args.alerts);
        let res = alerts::measure(&client, &srv, &inbox, &plan).await;
        srv.stop();
        rows.push((name.to_string(), res));
    }
    println!(
        "\nalerts: {} distinct alerts ({} per group) in requests of {} over {} connections; then {} single alerts, one group each",
        args.alerts,
        alerts::PER_GROUP,
        args.batch,
        args.concurrency,
        args.latency_alerts
    );
    println!(
        "target           alerts/s  errors   CPU-s  peak RSS MiB   delivered  all in s   latency ms: median     p99  timeouts"
    );
    for (name, res) in &rows {
        match res {
            Ok(f) => println!(
                "{name:<16} {:>8.0} {:>7} {:>7.2} {:>13.0} {:>11} {:>9.2} {:>20.1} {:>7.1} {:>9}",
                f.alerts_per_sec,
                f.errors,
                f.cpu_s,
                f.peak_rss_mib,
                format!("{}/{}", f.delivered, f.accepted),
                f.delivered_after_s,
                percentile(&f.latencies_ms, 0.5),
                percentile(&f.latencies_ms, 0.99),
                f.latency_timeouts
            ),
            Err(e) => println!("{name:<16} n/a ({e})"),
        }
    }
    Ok(())
}

#[derive(clap::Args)]
struct RulesArgs {
    #[command(flatten)]
    ingest: IngestArgs,
    /// Alerting rules (five kinds per instance, 1000 per group).
    #[arg(long, default_value_t = 10_000)]
    rules: usize,
    /// Evaluation rounds timed (after one warm-up round).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

#[derive(clap::Args)]
struct QueryArgs {
    #[command(flatten)]
    ingest: IngestArgs,
    /// Runs per query (the first is a warm-up and not counted).
    #[arg(long, default_value_t = 10)]
    runs: usize,
}

/// Median and p90 in ms, or why the query failed.
type Timing = Result<(f64, f64), String>;

/// The range queries of the query benchmark (30 min window, 15 s step).
const QUERIES: &[&str] = &[
    "sum by (job) (rate(http_requests_total[5m]))",
    "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    "topk(10, node_cpu_seconds_total)",
    "count by (__name__) ({__name__=~\".+\"})",
    "avg by (instance) (1 - rate(node_cpu_seconds_total{mode=\"idle\"}[5m]))",
];

#[derive(clap::Args)]
struct IngestArgs {
    #[arg(long, default_value_t = 100_000)]
    series: usize,
    #[arg(long, default_value_t = 30)]
    minutes: usize,
    #[arg(long, default_value_t = 15)]
    step_seconds: usize,
    /// Comma-separated: day2, prometheus, victoriametrics.
    #[arg(long, default_value = "day2,prometheus,victoriametrics")]
    targets: String,
    #[arg(long, default_value = "target/release/day2")]
    day2_bin: PathBuf,
    /// Concurrent connections (Prometheus's shards).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Samples per request (Prometheus's max_samples_per_send).
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

struct Row {
    name: String,
    samples_per_sec: f64,
    cpu_per_million: f64,
    peak_rss_mib: f64,
    bytes_per_sample: f64,
    errors: u64,
    check: String,
}

async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    run(args, 0, None).await
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Times each query `runs` times (first run discarded); returns (median, p90) in ms, or an error text.
async fn time_queries(
    client: &reqwest::Client,
    srv: &target::Server,
    start: i64,
    end: i64,
    runs: usize,
) -> Vec<Timing> {
    let mut out = Vec::new();
    for q in QUERIES {
        let mut times = Vec::new();
        let mut failed = None;
        for run in 0..runs.max(2) {
            let t0 = Instant::now();
            let r = client
                .get(srv.url("/api/v1/query_range"))
                .query(&[
                    ("query", *q),
                    ("start", &format!("{}", start as f64 / 1000.0)),
                    ("end", &format!("{}", end as f64 / 1000.0)),
                    ("step", "15"),
                ])
                .send()
                .await;
            match r {
                Ok(r) if r.status().is_success() => {
                    let _ = r.bytes().await;
                }
                Ok(r) => {
                    failed = Some(format!("HTTP {}", r.status().as_u16()));
                    break;
                }
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
            if run > 0 {
                times.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
        }
        out.push(match failed {
            Some(e) => Err(e),
            None => {
                times.sort_by(|a, b| a.partial_cmp(b).unwrap());
                Ok((percentile(&times, 0.5), percentile(&times, 0.9)))
            }
        });
    }
    out
}

async fn run(
    args: IngestArgs,
    query_runs: usize,
    rule_load: Option<(usize, usize)>,
) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let steps = args.minutes * 60 / args.step_seconds;
    let ds = Arc::new(data::DataSet::new(args.series));
    let total = (ds.labels.len() * steps) as u64;
    let step_ms = args.step_seconds as i64 * 1000;
    let expected_mem = ds
        .labels
        .iter()
        .filter(|l| l.metric_name() == Some("node_memory_MemAvailable_bytes"))
        .count();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let mut rows = Vec::new();
    let mut query_rows: Vec<(String, Vec<Timing>)> = Vec::new();
    let mut rule_rows: Vec<(String, anyhow::Result<rules::RuleTiming>)> = Vec::new();
    for name in args
        .targets
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        // each target gets the data set ending now, so that its rules see data
        // as fresh as the other's (see bench/README.md, Rules)
        let end = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        eprintln!(
            "{name}: encoding {} series x {steps} steps = {total} samples in requests of {} ...",
            ds.labels.len(),
            args.batch
        );
        let (shards, live_steps) =
            ds.requests(steps, step_ms, end, args.concurrency, args.batch.max(1));
        let shards = Arc::new(shards);
        let bytes: usize = shards.iter().flatten().map(|r| r.len()).sum();
        eprintln!(
            "{} requests, {:.1} MiB compressed",
            shards.iter().map(|s| s.len()).sum::<usize>(),
            bytes as f64 / 1048576.0
        );
        let mut srv = match target::Server::start(name, &args.day2_bin) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("skipping {name}: {e}");
                continue;
            }
        };
        srv.wait_ready(&client).await?;
        let cpu0 = srv.cpu_seconds();
        let errors = Arc::new(AtomicU64::new(0));
        let url = srv.url(srv.write_path);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for shard in 0..shards.len() {
            let (shards, client, url, errors) =
                (shards.clone(), client.clone(), url.clone(), errors.clone());
            tasks.push(tokio::spawn(async move {
                for body in &shards[shard] {
                    let r = client
                        .post(&url)
                        .header("Content-Encoding", "snappy")
                        .header("Content-Type", "application/x-protobuf")
                        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                        .body(body.clone())
                        .send()
                        .await;
                    if !matches!(&r, Ok(r) if r.status().is_success()) {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for t in tasks {
            t.await?;
        }
        let wall = started.elapsed().as_secs_f64();
        let cpu = srv.cpu_seconds() - cpu0;
        if name == "victoriametrics" {
            let _ = client.get(srv.url("/internal/force_flush")).send().await;
        }
        // light correctness check: every instance's memory series is there
        let check = match client
            .get(srv.url("/api/v1/series"))
            .query(&[("match[]", "node_memory_MemAvailable_bytes")])
            .send()
            .await
        {
            Ok(r) => match r.json::<serde_json::Value>().await {
                Ok(v) => format!(
                    "{}/{} memory series",
                    v["data"].as_array().map_or(0, |a| a.len()),
                    expected_mem
                ),
                Err(e) => format!("bad answer: {e}"),
            },
            Err(e) => format!("no answer: {e}"),
        };
        if query_runs > 0 {
            let start = end - (steps as i64 - 1) * args.step_seconds as i64 * 1000;
            let results = time_queries(&client, &srv, start, end, query_runs).await;
            query_rows.push((name.to_string(), results));
        }
        if let Some((n, rounds)) = rule_load.filter(|_| name != "victoriametrics") {
            eprintln!("{name}: evaluating {n} alerting rules ...");
            let writer = live::spawn(
                client.clone(),
                url.clone(),
                ds.clone(),
                live_steps,
                args.concurrency,
                args.batch.max(1),
            );
            let timing = rules::measure(&client, &srv, n, rounds).await;
            let live_errors = writer.stop().await;
            rule_rows.push((
                name.to_string(),
                timing.and_then(|t| {
                    anyhow::ensure!(live_errors == 0, "{live_errors} live writes failed");
                    Ok(t)
                }),
            ));
        }
        let row = Row {
            name: name.to_string(),
            samples_per_sec: total as f64 / wall,
            cpu_per_million: cpu / (total as f64 / 1e6),
            peak_rss_mib: srv.peak_rss() as f64 / 1048576.0,
            bytes_per_sample: srv.disk_bytes() as f64 / total as f64,
            errors: errors.load(Ordering::Relaxed),
            check,
        };
        srv.stop();
        eprintln!("{name}: done in {wall:.1}s");
        rows.push(row);
    }
    println!(
        "\ningest: {} series x {steps} steps ({total} samples), {} connections, {} samples/request",
        ds.labels.len(),
        args.concurrency,
        args.batch
    );
    println!(
        "target              samples/s   CPU-s per 1M   peak RSS MiB  bytes/sample  errors  check"
    );
    for r in &rows {
        println!(
            "{:<16} {:>12.0} {:>14.2} {:>14.0} {:>13.2} {:>7}  {}",
            r.name,
            r.samples_per_sec,
            r.cpu_per_million,
            r.peak_rss_mib,
            r.bytes_per_sample,
            r.errors,
            r.check
        );
    }
    if query_runs > 0 {
        println!(
            "\nrange queries over the whole window, step 15s: median / p90 ms of {} runs",
            query_runs.max(2) - 1
        );
        for (i, q) in QUERIES.iter().enumerate() {
            println!("{q}");
            for (name, res) in &query_rows {
                match &res[i] {
                    Ok((med, p90)) => println!("    {name:<16} {med:>10.1} {p90:>10.1}"),
                    Err(e) => println!("    {name:<16} n/a ({e})"),
                }
            }
        }
    }
    if let Some((n, rounds)) = rule_load {
        println!(
            "\n{n} alerting rules in {} groups: seconds per evaluation round ({rounds} rounds)",
            n.div_ceil(1000)
        );
        println!(
            "target           sum of groups (median)   slowest group (median)   active alerts"
        );
        for (name, res) in &rule_rows {
            match res {
                Ok(t) => {
                    let med = |v: &[f64]| {
                        let mut v = v.to_vec();
                        v.sort_by(f64::total_cmp);
                        v[v.len() / 2]
                    };
                    println!(
                        "{name:<16} {:>22.3} {:>24.3} {:>15}",
                        med(&t.sum_s),
                        med(&t.max_s),
                        t.active_alerts
                    );
                }
                Err(e) => println!("{name:<16} n/a ({e})"),
            }
        }
    }
    if let Some(p) = args.json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({"target": r.name, "samples_per_sec": r.samples_per_sec, "cpu_seconds_per_million": r.cpu_per_million,
                "peak_rss_mib": r.peak_rss_mib, "bytes_per_sample": r.bytes_per_sample, "errors": r.errors, "check": r.check})
            })
            .collect();
        std::fs::write(p, serde_json::to_string_pretty(&v)?)?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.cmd {
        Cmd::Ingest(a) => rt.block_on(ingest(a)),
        Cmd::Query(a) => rt.block_on(run(a.ingest, a.runs, None)),
        Cmd::Rules(a) => rt.block_on(run(a.ingest, 0, Some((a.rules, a.rounds.max(1))))),
        Cmd::Alerts(a) => rt.block_on(alerts_bench(a)),
    }
}
