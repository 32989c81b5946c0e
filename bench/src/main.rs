//! day2's benchmarks, run side by side with Prometheus and VictoriaMetrics in
//! the same run on the same data. See bench/README.md.

mod data;
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
}

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
    let _ = rustls::crypto::ring::default_provider().install_default();
    let steps = args.minutes * 60 / args.step_seconds;
    let ds = data::DataSet::new(args.series);
    let total = (ds.labels.len() * steps) as u64;
    let end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    eprintln!(
        "encoding {} series x {steps} steps = {total} samples in requests of {} ...",
        ds.labels.len(),
        args.batch
    );
    let shards = Arc::new(ds.requests(
        steps,
        args.step_seconds as i64 * 1000,
        end,
        args.concurrency,
        args.batch.max(1),
    ));
    let bytes: usize = shards.iter().flatten().map(|r| r.len()).sum();
    eprintln!(
        "{} requests, {:.1} MiB compressed",
        shards.iter().map(|s| s.len()).sum::<usize>(),
        bytes as f64 / 1048576.0
    );
    let expected_mem = ds
        .labels
        .iter()
        .filter(|l| l.metric_name() == Some("node_memory_MemAvailable_bytes"))
        .count();
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
    }
}
