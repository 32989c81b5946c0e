//! `engine`: in-process query benchmark of day2's engine over its own storage
//! (no HTTP, no peers), for profiling and quick comparisons. Loads the data set
//! of `day2-bench`, then times evaluation and the JSON rendering of the result
//! separately, in wall-clock and thread CPU time (CPU time is steadier on a
//! busy machine).

// the data set of `day2-bench` (its request encoding is unused here)
#[allow(dead_code)]
#[path = "../data.rs"]
mod data;

use std::time::Instant;

use clap::Parser;
use day2_model::{Appender, Sample, TimeSeries};

use data::DataSet;

/// The range queries of `day2-bench query`.
const QUERIES: &[&str] = &[
    "sum by (job) (rate(http_requests_total[5m]))",
    "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    "topk(10, node_cpu_seconds_total)",
    "count by (__name__) ({__name__=~\".+\"})",
    "avg by (instance) (1 - rate(node_cpu_seconds_total{mode=\"idle\"}[5m]))",
];

#[derive(Parser)]
#[command(about = "day2's PromQL engine in-process over its own storage")]
struct Args {
    #[arg(long, default_value_t = 100_000)]
    series: usize,
    #[arg(long, default_value_t = 30)]
    minutes: usize,
    #[arg(long, default_value_t = 15)]
    step_seconds: usize,
    /// Runs per query (the first is a warm-up and not counted).
    #[arg(long, default_value_t = 6)]
    runs: usize,
    /// Queries to run instead of the benchmark's five.
    #[arg(long)]
    query: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let qs: Vec<&str> = if a.query.is_empty() {
        QUERIES.to_vec()
    } else {
        a.query.iter().map(String::as_str).collect()
    };
    run(a.series, a.minutes, a.step_seconds, a.runs, &qs)
}

fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes to the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1000.0 + ts.tv_nsec as f64 / 1e6
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn run(
    series: usize,
    minutes: usize,
    step_seconds: usize,
    runs: usize,
    queries: &[&str],
) -> anyhow::Result<()> {
    let steps = minutes * 60 / step_seconds;
    let step_ms = step_seconds as i64 * 1000;
    let ds = DataSet::new(series);
    let end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let dir = tempfile::tempdir()?;
    let db = day2_tsdb::Db::open(
        dir.path(),
        day2_tsdb::Options {
            fsync: day2_tsdb::FsyncPolicy::Never,
            ..Default::default()
        },
    )?;
    let t0 = Instant::now();
    let mut err = None;
    let mut data = ds.steps(end - (steps as i64 - 1) * step_ms, step_ms);
    for _ in 0..steps {
        let (t, values) = data.next();
        let batch: Vec<TimeSeries> = ds
            .labels
            .iter()
            .zip(values)
            .map(|(l, v)| TimeSeries {
                histograms: Vec::new(),
                labels: l.clone(),
                samples: vec![Sample::new(t, *v)],
            })
            .collect();
        if let Err(e) = db.append(batch) {
            err = Some(e);
        }
    }
    if let Some(e) = err {
        return Err(e.into());
    }
    eprintln!(
        "loaded {} series x {steps} steps in {:.1}s",
        ds.labels.len(),
        t0.elapsed().as_secs_f64()
    );
    let engine = day2_promql::Engine::new(day2_promql::EngineOptions::default());
    let start = end - (steps as i64 - 1) * step_ms;
    println!(
        "query                                                          eval wall/cpu ms   json cpu ms  series"
    );
    for q in queries {
        let (mut wall, mut cpu, mut json) = (Vec::new(), Vec::new(), Vec::new());
        let mut n = 0;
        for run in 0..runs.max(2) {
            let (w0, c0) = (Instant::now(), thread_cpu_ms());
            let r = engine.range(&db, q, start, end, step_ms)?;
            let (w1, c1) = (w0.elapsed().as_secs_f64() * 1000.0, thread_cpu_ms() - c0);
            // the reply body, as the server renders it
            let j0 = thread_cpu_ms();
            let body = r.to_reply();
            let j1 = thread_cpu_ms() - j0;
            if run == runs.max(2) - 1 {
                eprintln!("  json: reply {j1:.1} ms ({} bytes)", body.len());
            }
            if let day2_promql::Value::Matrix(m) = &r.value {
                n = m.len();
            }
            drop(body);
            if run > 0 {
                wall.push(w1);
                cpu.push(c1);
                json.push(j1);
            }
        }
        println!(
            "{:<62} {:>8.1} {:>8.1} {:>10.1} {:>7}",
            q.chars().take(62).collect::<String>(),
            median(&mut wall),
            median(&mut cpu),
            median(&mut json),
            n
        );
    }
    Ok(())
}
