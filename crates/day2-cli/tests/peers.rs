//! Compatibility with the real peers from Debian's packages, started on
//! loopback: a Prometheus remote-writing into day2, and day2 scraping a real
//! node exporter.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_remote_writes_into_day2_and_samples_match() {
    let prom_bin = peer_binary("prometheus", "prometheus");
    let tmp = tempfile::tempdir().unwrap();
    let d = Day2::start(tmp.path(), &base_config("")).await;
    let prom_port = free_port();
    let prom_cfg = tmp.path().join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  external_labels:\n    replica: r1\nscrape_configs:\n  - job_name: prom_self\n    static_configs:\n      - targets: ['127.0.0.1:{prom_port}']\nremote_write:\n  - url: http://127.0.0.1:{}/api/v1/write\n    queue_config:\n      batch_send_deadline: 500ms\n      max_samples_per_send: 2000\n",
            d.port
        ),
    )
    .unwrap();
    let prom_log = std::fs::File::create(tmp.path().join("prometheus.log")).unwrap();
    let _prom = Peer(
        Command::new(prom_bin)
            .arg(format!("--config.file={}", prom_cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.path().join("prom-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(prom_log))
            .spawn()
            .expect("start prometheus"),
    );

    // Prometheus scrapes itself and forwards every sample to day2.
    let series = wait_for(
        "prometheus samples in day2",
        Duration::from_secs(60),
        || async {
            let s = d.export("up{job=\"prom_self\"}").await;
            (s.first().is_some_and(|(_, v)| v.len() >= 3)).then_some(s)
        },
    )
    .await;
    let (labels, _) = &series[0];
    assert_eq!(labels["replica"], "r1", "external labels arrive: {labels}");
    assert_eq!(labels["instance"], format!("127.0.0.1:{prom_port}"));

    // Differential: the raw samples Prometheus holds for a counter are in day2 too.
    let c = client();
    let metric = "prometheus_tsdb_head_samples_appended_total";
    let prom: serde_json::Value = c
        .get(format!("http://127.0.0.1:{prom_port}/api/v1/query"))
        .query(&[("query", format!("{metric}[1h]"))])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let prom_samples: BTreeSet<(i64, String)> = prom["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().clone())
        .map(|p| {
            (
                ((p[0].as_f64().unwrap()) * 1000.0).round() as i64,
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(!prom_samples.is_empty(), "{prom}");
    let last_t = prom_samples.iter().map(|(t, _)| *t).max().unwrap();
    let got = wait_for(
        "day2 to catch up with Prometheus",
        Duration::from_secs(30),
        || async {
            let s = d.export(metric).await;
            let all: BTreeSet<(i64, String)> = s
                .iter()
                .flat_map(|(_, v)| v.iter().map(|&(t, v)| (t, format!("{v}"))))
                .collect();
            all.iter().any(|(t, _)| *t >= last_t).then_some(all)
        },
    )
    .await;
    for (t, v) in &prom_samples {
        let parsed: f64 = v.parse().unwrap();
        assert!(
            got.contains(&(*t, format!("{parsed}"))),
            "sample {metric}@{t}={v} held by Prometheus is missing in day2"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn day2_scrapes_a_real_node_exporter() {
    let ne_bin = peer_binary("prometheus-node-exporter", "prometheus-node-exporter");
    let tmp = tempfile::tempdir().unwrap();
    let ne_port = free_port();
    let _ne = Peer(
        Command::new(ne_bin)
            .arg(format!("--web.listen-address=127.0.0.1:{ne_port}"))
            .args([
                "--collector.disable-defaults",
                "--collector.cpu",
                "--collector.meminfo",
                "--collector.loadavg",
                "--collector.netdev",
                "--collector.stat",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node exporter"),
    );
    let c = client();
    let exposed = wait_for(
        "node exporter to answer",
        Duration::from_secs(30),
        || async {
            let r = c
                .get(format!("http://127.0.0.1:{ne_port}/metrics"))
                .send()
                .await
                .ok()?;
            r.status().is_success().then_some(())?;
            r.text().await.ok()
        },
    )
    .await;
    let d = Day2::start(
        tmp.path(),
        &base_config(&format!(
            "scrape_configs:\n  - job_name: node\n    scrape_interval: 500ms\n    scrape_timeout: 500ms\n    static_configs:\n      - targets: ['127.0.0.1:{ne_port}']\n        labels:\n          env: test\n"
        )),
    )
    .await;
    wait_for(
        "two successful scrapes of node exporter",
        Duration::from_secs(30),
        || async {
            let s = d.export("up{job=\"node\"}").await;
            (s.first()
                .is_some_and(|(_, v)| v.iter().filter(|&&(_, x)| x == 1.0).count() >= 2))
            .then_some(())
        },
    )
    .await;
    // Every metric name the exporter exposes (minus go/process/promhttp internals that may vary) is stored.
    let names: BTreeSet<String> = exposed
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .filter(|n| n.starts_with("node_"))
        .collect();
    assert!(names.len() > 10, "{names:?}");
    let v = d
        .get_json("/api/v1/label/__name__/values?match[]={job=\"node\"}")
        .await;
    let stored: BTreeSet<String> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    let missing: Vec<_> = names.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "metrics exposed by node exporter but not stored: {missing:?}"
    );
    let s = d
        .get_json("/api/v1/series?match[]=node_cpu_seconds_total")
        .await;
    let first = &s["data"][0];
    assert_eq!(first["job"], "node");
    assert_eq!(first["env"], "test");
    assert_eq!(first["instance"], format!("127.0.0.1:{ne_port}"));
    let scraped = d.export("scrape_samples_scraped{job=\"node\"}").await;
    assert!(
        scraped[0].1.iter().any(|&(_, v)| v as usize >= names.len()),
        "{scraped:?}"
    );
}
