//! Differential test of the PromQL engine: the same data is remote-written
//! into day2 and into a real Prometheus (Debian's package, on loopback), then
//! a broad set of queries runs on both and the results must agree.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const QUERIES: &[&str] = &[
    "http_requests_total",
    "rate(http_requests_total[2m])",
    "irate(http_requests_total[2m])",
    "increase(http_requests_total[5m])",
    "sum by (job) (rate(http_requests_total[2m]))",
    "sum without (instance) (http_requests_total)",
    "avg by (code) (http_requests_total)",
    "max(http_requests_total) - min(http_requests_total)",
    "count by (job) (http_requests_total)",
    "topk(2, http_requests_total)",
    "bottomk(1, http_requests_total)",
    "quantile(0.9, http_requests_total)",
    "stddev(http_requests_total)",
    "count_values(\"value\", temperature)",
    "http_requests_total{code=\"500\"} / ignoring(code) group_left http_requests_total{code=\"200\"}",
    "http_requests_total > 100",
    "http_requests_total > bool 100",
    "http_requests_total and on(job) temperature",
    "temperature or http_requests_total{code=\"500\"}",
    "http_requests_total unless http_requests_total{job=\"api\"}",
    "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    "avg_over_time(temperature[3m])",
    "max_over_time(temperature[3m])",
    "quantile_over_time(0.5, temperature[5m])",
    "deriv(temperature[5m])",
    "predict_linear(temperature[5m], 600)",
    "delta(temperature[5m])",
    "changes(temperature[5m])",
    "resets(http_requests_total[10m])",
    "abs(temperature - 20)",
    "clamp(temperature, 18, 22)",
    "round(temperature, 0.5)",
    "label_replace(temperature, \"host\", \"$1\", \"instance\", \"(.*):.*\")",
    "label_join(temperature, \"both\", \"-\", \"job\", \"instance\")",
    "sum(rate(http_requests_total[2m])) / scalar(count(temperature))",
    "absent(nonexistent_metric)",
    "vector(1) + 2",
    "time() - timestamp(temperature)",
    "max_over_time(rate(http_requests_total[2m])[5m:30s])",
    "sum(http_requests_total offset 2m)",
    "sort_desc(sum by (instance) (http_requests_total))",
    // native histograms (Prometheus with --enable-feature=native-histograms; 2.42
    // has no histogram-scalar arithmetic and interpolates quantiles linearly
    // where Prometheus 3 interpolates exponentially, so those are not compared)
    "rpc_duration_seconds",
    "histogram_count(rate(rpc_duration_seconds[2m]))",
    "histogram_sum(increase(rpc_duration_seconds[2m]))",
    "sum by (job) (rate(rpc_duration_seconds[2m]))",
    "histogram_count(rpc_duration_seconds) / 2",
];

type Result = BTreeMap<String, Vec<(i64, String)>>;

async fn range_query(
    c: &reqwest::Client,
    base: &str,
    q: &str,
    start: f64,
    end: f64,
) -> std::result::Result<Result, String> {
    let r = c
        .get(format!("{base}/api/v1/query_range"))
        .query(&[
            ("query", q),
            ("start", &start.to_string()),
            ("end", &end.to_string()),
            ("step", "30"),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {v}"));
    }
    let mut out = Result::new();
    for s in v["data"]["result"].as_array().ok_or("no result")? {
        let mut labels: Vec<(String, String)> = s["metric"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        labels.sort();
        let key = format!("{labels:?}");
        let t = |p: &serde_json::Value| (p[0].as_f64().unwrap() * 1000.0).round() as i64;
        let mut pts: Vec<(i64, String)> = s["values"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| (t(p), p[1].as_str().unwrap().to_string()))
            .collect();
        // a histogram as `count|sum|boundaries,lower,upper,count|...`
        for p in s["histograms"].as_array().into_iter().flatten() {
            let h = &p[1];
            let mut parts = vec![
                h["count"].as_str().unwrap().to_string(),
                h["sum"].as_str().unwrap().to_string(),
            ];
            for b in h["buckets"].as_array().into_iter().flatten() {
                parts.push(format!(
                    "{},{},{},{}",
                    b[0],
                    b[1].as_str().unwrap(),
                    b[2].as_str().unwrap(),
                    b[3].as_str().unwrap()
                ));
            }
            pts.push((t(p), parts.join("|")));
        }
        pts.sort_by_key(|p| p.0);
        out.insert(key, pts);
    }
    Ok(out)
}

fn close(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    // histograms: the same number of fields, each close
    if a.contains(['|', ',']) || b.contains(['|', ',']) {
        let (x, y): (Vec<&str>, Vec<&str>) =
            (a.split(['|', ',']).collect(), b.split(['|', ',']).collect());
        return x.len() == y.len() && x.iter().zip(&y).all(|(p, q)| close(p, q));
    }
    let (Ok(x), Ok(y)) = (a.parse::<f64>(), b.parse::<f64>()) else {
        return false;
    };
    if x.is_nan() && y.is_nan() {
        return true;
    }
    (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1e-9)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn day2_answers_like_prometheus() {
    let prom_bin = peer_binary("prometheus", "prometheus");
    let tmp = tempfile::tempdir().unwrap();
    let d = Day2::start(tmp.path(), &base_config("")).await;
    let prom_port = free_port();
    let cfg = tmp.path().join("prometheus.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 1h\n").unwrap();
    let log = std::fs::File::create(tmp.path().join("prometheus.log")).unwrap();
    let _prom = Peer(
        Command::new(prom_bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.path().join("prom").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--web.enable-remote-write-receiver")
            .arg("--enable-feature=native-histograms")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start prometheus"),
    );
    let c = client();
    let prom = format!("http://127.0.0.1:{prom_port}");
    wait_for("prometheus ready", Duration::from_secs(60), || async {
        c.get(format!("{prom}/-/ready"))
            .send()
            .await
            .ok()?
            .status()
            .is_success()
            .then_some(())
    })
    .await;

    // 40 steps of 15s ending a minute ago; counters with a reset, a gauge, buckets
    let end = (now_ms() / 15_000) * 15_000 - 60_000;
    let steps = 40i64;
    let mut batches = Vec::new();
    for i in 0..steps {
        let t = end - (steps - 1 - i) * 15_000;
        let mut b = Vec::new();
        for (job, inst) in [("api", "a:1"), ("api", "b:1"), ("web", "c:1")] {
            for (code, rate) in [("200", 7.0), ("500", 1.0)] {
                let mut v = (i as f64) * rate * if job == "web" { 2.0 } else { 1.0 }
                    + if inst == "b:1" { 0.5 } else { 0.0 };
                if job == "web" && i >= 25 {
                    v -= 25.0 * rate * 2.0; // counter reset
                }
                b.push(series(
                    &[
                        ("__name__", "http_requests_total"),
                        ("job", job),
                        ("instance", inst),
                        ("code", code),
                    ],
                    &[(t, v)],
                ));
            }
            let temp =
                20.0 + ((i as f64) / 3.0).sin() * 3.0 + if inst == "b:1" { 1.5 } else { 0.0 };
            b.push(series(
                &[
                    ("__name__", "temperature"),
                    ("job", job),
                    ("instance", inst),
                ],
                &[(t, (temp * 4.0).round() / 4.0)],
            ));
        }
        // an exponential native histogram: 6 observations per step, a reset at
        // step 30 (never down to zero: Prometheus 3 extrapolates a rate from a
        // zero count to its zero point, 2.42 did not)
        let k = if i >= 30 { (i - 29) as f64 } else { i as f64 };
        let mut h = day2_model::FloatHistogram::empty(1);
        h.zero_threshold = 0.001;
        h.zero_count = k;
        h.count = 6.0 * k;
        h.sum = 7.25 * k;
        h.set_bucket_list(true, &[(-2, k), (0, 2.0 * k), (1, k), (3, k)]);
        h.set_bucket_list(false, &[(1, 0.0)]);
        b.push(day2_model::TimeSeries {
            labels: day2_model::Labels::from_pairs([
                ("__name__", "rpc_duration_seconds"),
                ("job", "api"),
            ]),
            samples: vec![],
            histograms: vec![day2_model::HistogramSample::new(t, h)],
        });
        for (j, le) in ["0.1", "0.5", "1", "+Inf"].iter().enumerate() {
            b.push(series(
                &[
                    ("__name__", "http_request_duration_seconds_bucket"),
                    ("job", "api"),
                    ("le", le),
                ],
                &[(t, (i * (j as i64 + 1) * 3) as f64)],
            ));
        }
        batches.push(b);
    }
    for b in &batches {
        let body = day2_ingest::remote_write::encode(b);
        for base in [d.url(""), prom.clone()] {
            let r = c
                .post(format!("{base}/api/v1/write"))
                .header("Content-Encoding", "snappy")
                .header("Content-Type", "application/x-protobuf")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{base}: {}", r.status());
        }
    }
    // Evaluation times fall between sample times: Prometheus 2.x (Debian's) closes range
    // windows on the left, Prometheus 3 (and day2, following the corpus) leaves them
    // open; off the sample grid both agree.
    let (start, stop) = (
        (end - 30 * 15_000 + 7_000) as f64 / 1000.0,
        end as f64 / 1000.0 + 60.0,
    );
    let mut mismatches = Vec::new();
    for q in QUERIES {
        let want = range_query(&c, &prom, q, start, stop).await;
        let got = range_query(&c, &d.url(""), q, start, stop).await;
        match (want, got) {
            (Ok(w), Ok(g)) => {
                if w.keys().ne(g.keys()) {
                    mismatches.push(format!(
                        "{q}: series differ\n  prometheus: {:?}\n  day2:       {:?}",
                        w.keys().collect::<Vec<_>>(),
                        g.keys().collect::<Vec<_>>()
                    ));
                    continue;
                }
                for (k, wp) in &w {
                    let gp = &g[k];
                    let same = wp.len() == gp.len()
                        && wp
                            .iter()
                            .zip(gp)
                            .all(|(a, b)| a.0 == b.0 && close(&a.1, &b.1));
                    if !same {
                        mismatches.push(format!(
                            "{q}: {k}\n  prometheus: {wp:?}\n  day2:       {gp:?}"
                        ));
                        break;
                    }
                }
            }
            (Err(e), Err(_)) => eprintln!("{q}: both refused ({e})"),
            (w, g) => mismatches.push(format!(
                "{q}: prometheus {:?} vs day2 {:?}",
                w.map(|_| "ok"),
                g.map(|_| "ok")
            )),
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} queries differ:\n{}",
        mismatches.len(),
        QUERIES.len(),
        mismatches.join("\n")
    );
}
