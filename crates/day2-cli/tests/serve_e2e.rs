//! End-to-end tests of `day2 serve`: remote write, the read API, status codes,
//! limits, reload, in-process host metrics and `day2 check config`.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn remote_write_then_read_api_returns_exactly_what_was_written() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Day2::start(tmp.path(), &base_config("")).await;
    let t0 = now_ms() - 60_000;
    let batch = vec![
        series(
            &[
                ("__name__", "http_requests_total"),
                ("job", "api"),
                ("code", "200"),
            ],
            &[(t0, 1.0), (t0 + 15_000, 5.0)],
        ),
        series(
            &[
                ("__name__", "http_requests_total"),
                ("job", "api"),
                ("code", "500"),
            ],
            &[(t0, 0.0)],
        ),
        series(
            &[("__name__", "node_load1"), ("job", "node")],
            &[(t0, 0.25)],
        ),
    ];
    let (status, body) = d.remote_write(&batch).await;
    assert_eq!(status, 204, "{body}");

    let v = d
        .get_json("/api/v1/series?match[]=http_requests_total")
        .await;
    assert_eq!(v["status"], "success");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{v}");
    assert_eq!(data[0]["__name__"], "http_requests_total");
    assert_eq!(data[0]["code"], "200");

    let v = d.get_json("/api/v1/labels").await;
    let names: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(names, ["__name__", "code", "job"]);

    let v = d.get_json("/api/v1/label/job/values").await;
    assert_eq!(v["data"], serde_json::json!(["api", "node"]));
    let v = d
        .get_json("/api/v1/label/code/values?match[]=http_requests_total{code=~\"5..\"}")
        .await;
    assert_eq!(v["data"], serde_json::json!(["500"]));

    // time range excludes everything
    let v = d
        .get_json(&format!(
            "/api/v1/series?match[]=node_load1&start=0&end={}",
            (t0 - 3_600_000) / 1000
        ))
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 0, "{v}");

    let got = d.export("http_requests_total{code=\"200\"}").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, vec![(t0, 1.0), (t0 + 15_000, 5.0)]);

    // bad selector: 400 with Prometheus's error shape
    let r = client()
        .get(d.url("/api/v1/series?match[]=sum(up)"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["status"], "error");
    assert_eq!(v["errorType"], "bad_data");
    let r = client().get(d.url("/api/v1/series")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400, "match[] is required");
}

#[tokio::test]
async fn remote_write_status_codes_follow_the_spec() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Day2::start(
        tmp.path(),
        &base_config("storage:\n  out_of_order_window: 10m\n"),
    )
    .await;
    let c = client();
    let now = now_ms();

    // decode bomb: tiny body whose snappy header claims ~1 GiB
    let mut bomb = Vec::new();
    let mut n: u64 = 1 << 30;
    while n >= 0x80 {
        bomb.push((n as u8) | 0x80);
        n >>= 7;
    }
    bomb.push(n as u8);
    bomb.extend_from_slice(&[0u8; 16]);
    let r = c
        .post(d.url("/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("limit"));

    let r = c
        .post(d.url("/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .body("not snappy at all")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    let r = c
        .post(d.url("/api/v1/write"))
        .header("Content-Encoding", "gzip")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);

    // one valid series, one too old, one with an invalid metric name: 400, valid kept
    let batch = [
        series(&[("__name__", "ok_metric")], &[(now, 1.0)]),
        series(&[("__name__", "old_metric")], &[(now, 1.0)]),
        series(&[("__name__", "bad-name")], &[(now, 1.0)]),
    ];
    let (status, _) = d.remote_write(&batch[..2]).await;
    assert_eq!(status, 204);
    let (status, body) = d
        .remote_write(&[series(
            &[("__name__", "old_metric")],
            &[(now - 3_600_000, 2.0)],
        )])
        .await;
    assert_eq!(
        status, 400,
        "sample an hour before the newest is outside the 10m window: {body}"
    );
    let (status, body) = d
        .remote_write(&[
            batch[2].clone(),
            series(&[("__name__", "ok_metric")], &[(now + 1000, 2.0)]),
        ])
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad-name"), "{body}");
    let got = d.export("ok_metric").await;
    assert_eq!(
        got[0].1,
        vec![(now, 1.0), (now + 1000, 2.0)],
        "the valid part of a 400 request is stored"
    );

    // resending the same samples is idempotent (duplicates are not errors)
    let (status, body) = d.remote_write(&batch[..1]).await;
    assert_eq!(status, 204, "{body}");
}

#[tokio::test]
async fn over_the_rate_limit_gets_429_with_retry_after() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Day2::start(
        tmp.path(),
        &base_config("remote_write:\n  rate_limit_samples_per_second: 100\n"),
    )
    .await;
    let now = now_ms();
    let many: Vec<(i64, f64)> = (0..100).map(|i| (now + i, i as f64)).collect();
    let (status, _) = d.remote_write(&[series(&[("__name__", "m")], &many)]).await;
    assert_eq!(status, 204);
    let more: Vec<(i64, f64)> = (100..200).map(|i| (now + i, i as f64)).collect();
    let body = day2_ingest::remote_write::encode(&[series(&[("__name__", "m")], &more)]);
    let r = client()
        .post(d.url("/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "retry-after {retry}");
}

async fn metric_value(d: &Day2, name_and_labels: &str) -> Option<f64> {
    let text = common::metrics_text(d).await?;
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn bad_reload_is_refused_and_good_reload_applies_by_http_and_sighup() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Day2::start(tmp.path(), &base_config("")).await;
    let c = client();

    std::fs::write(&d.config, "storage:\n  fsync: sometimes\n").unwrap();
    let r = c.post(d.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 500);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("day2.yml:2") && body.contains("storage.fsync"),
        "{body}"
    );
    assert_eq!(
        metric_value(&d, "day2_config_last_reload_successful").await,
        Some(0.0)
    );
    // still serving writes
    let (status, _) = d
        .remote_write(&[series(&[("__name__", "alive")], &[(now_ms(), 1.0)])])
        .await;
    assert_eq!(status, 204);

    // a good config with a scrape job of day2's own /metrics
    let job = format!(
        "scrape_configs:\n  - job_name: self\n    scrape_interval: 200ms\n    scrape_timeout: 200ms\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
        d.port
    );
    std::fs::write(&d.config, base_config(&job)).unwrap();
    let r = c.post(d.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        metric_value(&d, "day2_config_last_reload_successful").await,
        Some(1.0)
    );
    wait_for("up{job=\"self\"} == 1", Duration::from_secs(20), || async {
        let s = d.export("up{job=\"self\"}").await;
        s.first()
            .and_then(|(_, v)| v.iter().any(|&(_, x)| x == 1.0).then_some(()))
    })
    .await;

    // SIGHUP with a renamed job
    std::fs::write(
        &d.config,
        base_config(&job.replace("job_name: self", "job_name: hup")),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    wait_for(
        "up{job=\"hup\"} after SIGHUP",
        Duration::from_secs(20),
        || async {
            let s = d.export("up{job=\"hup\"}").await;
            (!s.is_empty()).then_some(())
        },
    )
    .await;
    d.kill9();
}

#[tokio::test]
async fn host_metrics_are_scraped_in_process_under_node_exporter_names() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = "host_metrics:\n  enabled: true\n  scrape_interval: 200ms\nself_metrics:\n  enabled: true\n  scrape_interval: 200ms\n";
    let d = Day2::start(tmp.path(), cfg).await;
    for metric in [
        "node_cpu_seconds_total",
        "node_memory_MemTotal_bytes",
        "node_load1",
        "day2_start_time_seconds",
    ] {
        wait_for(metric, Duration::from_secs(20), || async {
            let v = d
                .get_json(&format!("/api/v1/series?match[]={metric}"))
                .await;
            (!v["data"].as_array()?.is_empty()).then_some(())
        })
        .await;
    }
    let v = d
        .get_json("/api/v1/series?match[]=node_cpu_seconds_total")
        .await;
    let first = &v["data"][0];
    assert_eq!(first["job"], "node");
    assert!(
        first["cpu"].is_string() && first["mode"].is_string(),
        "{first}"
    );
    let up = d.export("up{job=\"node\"}").await;
    assert!(up[0].1.iter().all(|&(_, v)| v == 1.0), "{up:?}");
}

#[test]
fn check_config_reports_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.yml");
    std::fs::write(&good, "server:\n  listen: 127.0.0.1:9999\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_day2"))
        .args(["check", "config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = tmp.path().join("bad.yml");
    std::fs::write(
        &bad,
        "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 10s\n    static_configs:\n      - targets: [x:1]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_day2"))
        .args(["check", "config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("day2: {}:4", bad.display())),
        "{err}"
    );
    assert!(
        err.contains("scrape_configs[0]") && err.contains("timeout"),
        "{err}"
    );
}

#[tokio::test]
async fn query_api_has_prometheus_shapes_and_status_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Day2::start(tmp.path(), &base_config("query:\n  max_samples: 1000\n")).await;
    let t0 = (now_ms() / 1000) * 1000 - 60_000;
    let many: Vec<_> = (0..30)
        .map(|i| {
            series(
                &[("__name__", "load"), ("i", &i.to_string())],
                &[(t0, i as f64), (t0 + 15_000, i as f64 + 1.0)],
            )
        })
        .collect();
    assert_eq!(d.remote_write(&many).await.0, 204);
    let c = client();
    let at = (t0 + 15_000) as f64 / 1000.0;

    let v = d
        .get_json(&format!("/api/v1/query?query=sum(load)&time={at}"))
        .await;
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["resultType"], "vector");
    assert_eq!(v["data"]["result"][0]["value"][1], "465");

    let r = c
        .post(d.url("/api/v1/query"))
        .form(&[("query", "count(load)"), ("time", &at.to_string())])
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["data"]["result"][0]["value"][1], "30");

    let v = d
        .get_json(&format!(
            "/api/v1/query_range?query=load{{i=\"3\"}}&start={}&end={at}&step=15s",
            t0 as f64 / 1000.0
        ))
        .await;
    assert_eq!(v["data"]["resultType"], "matrix");
    assert_eq!(
        v["data"]["result"][0]["values"].as_array().unwrap().len(),
        2
    );

    for (path, code, kind) in [
        ("/api/v1/query?query=sum(load", 400, "bad_data"),
        (
            "/api/v1/query_range?query=load&start=1&end=2&step=0",
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=load&start=2&end=1&step=1",
            400,
            "bad_data",
        ),
        (
            "/api/v1/query?query=rate(load[1h])[1h:1s]",
            422,
            "execution",
        ),
    ] {
        let r = c.get(d.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), code, "{path}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["errorType"], kind, "{path}: {v}");
    }
    let v = d
        .get_json("/api/v1/format_query?query=sum(rate(x[5m]))by(job)")
        .await;
    assert_eq!(v["data"], "sum by (job) (rate(x[5m]))");
    let v = d.get_json("/api/v1/status/buildinfo").await;
    assert!(v["data"]["version"].is_string());
}

#[tokio::test]
async fn mutations_need_the_configured_token() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = "0123456789abcdef-write-token";
    std::fs::write(tmp.path().join("token"), format!("{secret}\n")).unwrap();
    let cfg = base_config(&format!(
        "server:\n  auth:\n    tokens:\n      - name: ci\n        token: file:{}\n",
        tmp.path().join("token").display()
    ));
    let d = Day2::start(tmp.path(), &cfg).await;
    let body =
        day2_ingest::remote_write::encode(&[series(&[("__name__", "m")], &[(now_ms(), 1.0)])]);
    let c = client();
    let send = |auth: Option<&str>| {
        let mut r = c
            .post(d.url("/api/v1/write"))
            .header("Content-Encoding", "snappy")
            .body(body.clone());
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        r.send()
    };
    assert_eq!(send(None).await.unwrap().status().as_u16(), 401);
    assert_eq!(
        send(Some("Bearer wrong-token-of-some-length"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        send(Some(&format!("Bearer {secret}")))
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    assert_eq!(
        c.post(d.url("/-/reload"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    let r = c
        .post(d.url("/-/reload"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // reads stay open, and the secret never reaches the log
    assert_eq!(
        c.get(d.url("/api/v1/labels"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert!(!d.log().contains(secret));
}

#[test]
fn inline_secrets_are_refused_by_check_config() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("day2.yml");
    std::fs::write(
        &f,
        "server:\n  auth:\n    tokens:\n      - name: ci\n        token: plain-text-secret-value\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_day2"))
        .args(["check", "config"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":5: server.auth.tokens[0].token:"), "{err}");
    assert!(!err.contains("plain-text-secret-value"), "{err}");
}

#[tokio::test]
async fn native_histograms_go_in_by_remote_write_and_come_out_of_the_query_api() {
    use day2_model::{FloatHistogram, HistogramSample, TimeSeries};
    let tmp = tempfile::tempdir().unwrap();
    let d = Day2::start(tmp.path(), &base_config("")).await;
    let t0 = (now_ms() - 120_000) / 1000 * 1000;
    let hist = |k: f64| {
        let mut h = FloatHistogram::empty(0);
        h.count = 4.0 * k;
        h.sum = 6.0 * k;
        h.set_bucket_list(true, &[(0, k), (1, 2.0 * k), (2, k)]);
        h
    };
    let series = TimeSeries {
        labels: day2_model::Labels::from_pairs([("__name__", "rpc_seconds"), ("job", "api")]),
        samples: vec![],
        histograms: (0..5)
            .map(|i| HistogramSample::new(t0 + i * 15_000, hist(i as f64 + 1.0)))
            .collect(),
    };
    let (status, body) = d.remote_write(&[series]).await;
    assert_eq!(status, 204, "{body}");

    // an instant vector of a histogram: Prometheus's "histogram" shape
    let at = (t0 + 60_000) / 1000;
    let v = d
        .get_json(&format!("/api/v1/query?query=rpc_seconds&time={at}"))
        .await;
    let s = &v["data"]["result"][0];
    assert_eq!(s["metric"]["job"], "api", "{v}");
    assert_eq!(s["histogram"][1]["count"], "20", "{v}");
    assert_eq!(s["histogram"][1]["sum"], "30", "{v}");
    assert_eq!(
        s["histogram"][1]["buckets"],
        serde_json::json!([
            [0, "0.5", "1", "5"],
            [0, "1", "2", "10"],
            [0, "2", "4", "5"]
        ])
    );
    assert!(s.get("value").is_none(), "{v}");

    // functions over histograms give floats
    let v = d
        .get_json(&format!(
            "/api/v1/query?query=histogram_count(rate(rpc_seconds[1m]))&time={at}"
        ))
        .await;
    let rate: f64 = v["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // 4 more observations every 15 s
    assert!((rate - 4.0 / 15.0).abs() < 1e-9, "{v}");
    let v = d
        .get_json(&format!(
            "/api/v1/query?query=histogram_quantile(0.5,rpc_seconds)&time={at}"
        ))
        .await;
    let q: f64 = v["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((q - 2f64.sqrt()).abs() < 1e-9, "{v}");

    // a range query: "histograms" instead of "values"
    let v = d
        .get_json(&format!(
            "/api/v1/query_range?query=rpc_seconds&start={}&end={at}&step=15",
            t0 / 1000
        ))
        .await;
    let s = &v["data"]["result"][0];
    assert_eq!(s["histograms"].as_array().unwrap().len(), 5, "{v}");
    assert!(s.get("values").is_none(), "{v}");

    // a histogram where a float already is: refused, the rest kept
    let clash = TimeSeries {
        labels: day2_model::Labels::from_pairs([("__name__", "rpc_seconds"), ("job", "api")]),
        samples: vec![day2_model::Sample::new(t0, 1.0)],
        histograms: vec![],
    };
    let (status, body) = d.remote_write(&[clash]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("conflict"), "{body}");
}
