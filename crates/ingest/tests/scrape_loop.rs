//! The scrape manager against tiny HTTP servers on loopback, writing into an
//! in-memory appender: report series, label handling, relabelling, limits,
//! staleness, reloads, file discovery and auth.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use day2_ingest::scrape::{GlobalConfig, InternalTarget, ScrapeConfig, ScrapeManager};
use day2_model::{AppendError, AppendOutcome, Appender, Labels, TimeSeries, is_stale_nan};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Records every appended series.
#[derive(Default)]
struct Recorder {
    batches: Mutex<Vec<TimeSeries>>,
}

impl Appender for Recorder {
    fn append(&self, batch: Vec<TimeSeries>) -> Result<AppendOutcome, AppendError> {
        let n = batch.iter().map(|s| s.samples.len()).sum();
        self.batches.lock().extend(batch);
        Ok(AppendOutcome {
            accepted: n,
            ..Default::default()
        })
    }
}

impl Recorder {
    fn values(&self, name: &str, filter: &[(&str, &str)]) -> Vec<f64> {
        self.batches
            .lock()
            .iter()
            .filter(|s| {
                s.labels.metric_name() == Some(name)
                    && filter.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
            })
            .flat_map(|s| s.samples.iter().map(|p| p.v))
            .collect()
    }

    fn series(&self, name: &str) -> Vec<Labels> {
        let mut v: Vec<Labels> = self
            .batches
            .lock()
            .iter()
            .filter(|s| s.labels.metric_name() == Some(name))
            .map(|s| s.labels.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// What the test server answers; changeable while it runs. Records request headers.
#[derive(Clone)]
struct Server {
    port: u16,
    body: Arc<Mutex<(u16, String)>>,
    headers: Arc<Mutex<Vec<String>>>,
}

async fn server(body: &str) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let s = Server {
        port,
        body: Arc::new(Mutex::new((200, body.to_string()))),
        headers: Arc::default(),
    };
    let st = s.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let st = st.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut req = Vec::new();
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    let Ok(n) = sock.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..n]);
                }
                st.headers
                    .lock()
                    .push(String::from_utf8_lossy(&req).to_string());
                let (code, body) = st.body.lock().clone();
                let resp = format!(
                    "HTTP/1.1 {code} X\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    s
}

fn job(yaml: &str) -> ScrapeConfig {
    let c: ScrapeConfig = serde_yaml_ng::from_str(yaml).unwrap();
    c.validate(&GlobalConfig::default()).unwrap();
    c
}

fn job_for(port: u16, extra: &str) -> ScrapeConfig {
    job(&format!(
        "job_name: test\nscrape_interval: 100ms\nscrape_timeout: 100ms\nstatic_configs:\n  - targets: ['127.0.0.1:{port}']\n    labels: {{env: prod}}\n{extra}"
    ))
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const BODY: &str = "# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\",job=\"inner\"} 10\nhttp_requests_total{code=\"500\"} 1\n# TYPE go_goroutines gauge\ngo_goroutines 7\n";

#[tokio::test]
async fn successful_scrape_writes_samples_with_target_labels_and_report_series() {
    let srv = server(BODY).await;
    let rec = Arc::new(Recorder::default());
    let m = ScrapeManager::new(rec.clone());
    m.apply(GlobalConfig::default(), vec![job_for(srv.port, "")], vec![])
        .await;
    until("a scrape", || !rec.values("up", &[]).is_empty()).await;
    let instance = format!("127.0.0.1:{}", srv.port);
    assert_eq!(
        rec.values(
            "up",
            &[("job", "test"), ("instance", &instance), ("env", "prod")]
        )[0],
        1.0
    );
    assert_eq!(rec.values("scrape_samples_scraped", &[])[0], 3.0);
    assert_eq!(
        rec.values("scrape_samples_post_metric_relabeling", &[])[0],
        3.0
    );
    assert_eq!(rec.values("scrape_series_added", &[])[0], 3.0);
    assert!(rec.values("scrape_duration_seconds", &[])[0] >= 0.0);
    // honor_labels false: the exposed job is renamed
    let s = rec.series("http_requests_total");
    let with_inner = s.iter().find(|l| l.get("code") == Some("200")).unwrap();
    assert_eq!(with_inner.get("job"), Some("test"));
    assert_eq!(with_inner.get("exported_job"), Some("inner"));
    let (active, _) = m.targets();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].health, "up");
    assert!(m.metadata().contains_key("go_goroutines"));
    assert!(
        srv.headers.lock()[0]
            .to_lowercase()
            .contains("x-prometheus-scrape-timeout-seconds")
    );
    m.stop().await;
}

#[tokio::test]
async fn honor_labels_keeps_exposed_labels() {
    let srv = server(BODY).await;
    let rec = Arc::new(Recorder::default());
    let m = ScrapeManager::new(rec.clone());
    m.apply(
        GlobalConfig::default(),
        vec![job_for(srv.port, "honor_labels: true\n")],
        vec![],
    )
    .await;
    until("a scrape", || !rec.series("http_requests_total").is_empty()).await;
    let s = rec.series("http_requests_total");
    assert!(
        s.iter()
            .any(|l| l.get("job") == Some("inner") && l.get("exported_job").is_none())
    );
    m.stop().await;
}

#[tokio::test]
async fn relabelling_drops_targets_and_metrics() {
    let srv = server(BODY).await;
    let rec = Arc::new(Recorder::default());
    let m = ScrapeManager::new(rec.clone());
    let dropped = job_for(
        srv.port,
        "relabel_configs:\n  - source_labels: [env]\n    regex: prod\n    action: drop\n",
    );
    let metric_drop = job(&format!(
        "job_name: other\nscrape_interval: 100ms\nscrape_timeout: 100ms\nstatic_configs:\n  - targets: ['127.0.0.1:{}']\nmetric_relabel_configs:\n  - source_labels: [__name__]\n    regex: go_.*\n    action: drop\n",
        srv.port
    ));
    m.apply(GlobalConfig::default(), vec![dropped, metric_drop], vec![])
        .await;
    until("a scrape of the other job", || {
        !rec.values("up", &[("job", "other")]).is_empty()
    })
    .await;
    let (active, dropped) = m.targets();
    assert_eq!(active.len(), 1, "the prod target of job test is dropped");
    assert_eq!(dropped.len(), 1);
    assert!(rec.values("up", &[("job", "test")]).is_empty());
    assert!(
        rec.series("go_goroutines").is_empty(),
        "metric relabelling dropped it"
    );
    assert_eq!(
        rec.values("scrape_samples_post_metric_relabeling", &[("job", "other")])[0],
        2.0
    );
    m.stop().await;
}

#[tokio::test]
async fn exceeding_a_limit_fails_the_whole_scrape() {
    for extra in [
        "sample_limit: 2\n",
        "body_size_limit: 50B\n",
        "label_limit: 2\n",
        "label_value_length_limit: 3\n",
    ] {
        let srv = server(BODY).await;
        let rec = Arc::new(Recorder::default());
        let m = ScrapeManager::new(rec.clone());
        m.apply(
            GlobalConfig::default(),
            vec![job_for(srv.port, extra)],
            vec![],
        )
        .await;
        until("a scrape", || !rec.values("up", &[]).is_empty()).await;
        assert_eq!(rec.values("up", &[])[0], 0.0, "{extra}");
        assert!(
            rec.series("http_requests_total").is_empty(),
            "{extra}: nothing of a failed scrape is ingested"
        );
        // the target's status is updated right after its samples are written
        until("the target to report the failure", || {
            m.targets()
                .0
                .first()
                .is_some_and(|t| !t.last_error.is_empty())
        })
        .await;
        let (active, _) = m.targets();
        assert!(
            active[0].last_error.contains("limit"),
            "{extra}: {}",
            active[0].last_error
        );
        m.stop().await;
    }
}

#[tokio::test]
async fn vanished_series_failed_scrapes_and_removed_targets_go_stale() {
    let srv = server(BODY).await;
    let rec = Arc::new(Recorder::default());
    let m = ScrapeManager::new(rec.clone());
    m.apply(GlobalConfig::default(), vec![job_for(srv.port, "")], vec![])
        .await;
    until("a scrape", || !rec.series("go_goroutines").is_empty()).await;
    // go_goroutines disappears from the exposition
    *srv.body.lock() = (200, "# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} 11\nhttp_requests_total{code=\"500\"} 1\n".into());
    until("stale marker for go_goroutines", || {
        rec.values("go_goroutines", &[])
            .iter()
            .any(|v| is_stale_nan(*v))
    })
    .await;
    // the target fails: everything it returned goes stale, up = 0
    *srv.body.lock() = (500, String::new());
    until("stale markers after a failed scrape", || {
        rec.values("http_requests_total", &[("code", "500")])
            .iter()
            .any(|v| is_stale_nan(*v))
    })
    .await;
    assert!(rec.values("up", &[]).contains(&0.0));
    // back up, then removed by a reload: stale markers again
    *srv.body.lock() = (200, BODY.into());
    let count_stale = |rec: &Recorder| {
        rec.values("go_goroutines", &[])
            .iter()
            .filter(|v| is_stale_nan(**v))
            .count()
    };
    until("recovery", || {
        rec.values("go_goroutines", &[])
            .last()
            .is_some_and(|v| !v.is_nan())
    })
    .await;
    let before = count_stale(&rec);
    m.apply(GlobalConfig::default(), vec![], vec![]).await;
    assert_eq!(
        count_stale(&rec),
        before + 1,
        "target removal writes a stale marker at once"
    );
    m.stop().await;
}

#[tokio::test]
async fn unchanged_targets_survive_a_reload_without_stale_markers() {
    let srv = server(BODY).await;
    let rec = Arc::new(Recorder::default());
    let m = ScrapeManager::new(rec.clone());
    m.apply(GlobalConfig::default(), vec![job_for(srv.port, "")], vec![])
        .await;
    until("a scrape", || !rec.series("go_goroutines").is_empty()).await;
    // same target, changed job setting (metrics_path stays): the target's labels are unchanged
    m.apply(
        GlobalConfig::default(),
        vec![job_for(srv.port, "sample_limit: 1000\n")],
        vec![],
    )
    .await;
    let n = rec.values("up", &[]).len();
    until("more scrapes", || rec.values("up", &[]).len() > n + 2).await;
    assert!(
        !rec.values("go_goroutines", &[])
            .iter()
            .any(|v| is_stale_nan(*v))
    );
    m.stop().await;
}

#[tokio::test]
async fn file_sd_changes_are_picked_up() {
    let a = server(BODY).await;
    let b = server(BODY).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("targets.json");
    std::fs::write(
        &file,
        format!(
            r#"[{{"targets": ["127.0.0.1:{}"], "labels": {{"team": "a"}}}}]"#,
            a.port
        ),
    )
    .unwrap();
    let cfg = job(&format!(
        "job_name: fsd\nscrape_interval: 100ms\nscrape_timeout: 100ms\nfile_sd_configs:\n  - files: ['{}']\n",
        file.display()
    ));
    let rec = Arc::new(Recorder::default());
    let m = ScrapeManager::new(rec.clone());
    m.apply(GlobalConfig::default(), vec![cfg], vec![]).await;
    until("target a", || {
        !rec.values("up", &[("team", "a")]).is_empty()
    })
    .await;
    // make sure the mtime moves even on coarse clocks
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(
        &file,
        format!(
            r#"[{{"targets": ["127.0.0.1:{}"], "labels": {{"team": "b"}}}}]"#,
            b.port
        ),
    )
    .unwrap();
    let f = std::fs::File::options().write(true).open(&file).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    until("target b", || {
        !rec.values("up", &[("team", "b")]).is_empty()
    })
    .await;
    let (active, _) = m.targets();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].labels.get("team"), Some("b"));
    m.stop().await;
}

#[tokio::test]
async fn auth_headers_are_sent() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let cases: HashMap<&str, String> = [
        (
            "Basic dXNlcjpzM2NyZXQ=",
            format!(
                "basic_auth:\n  username: user\n  password_file: {}\n",
                pw.display()
            ),
        ),
        ("Bearer tok", "bearer_token: tok\n".to_string()),
        (
            "Custom cred",
            "authorization:\n  type: Custom\n  credentials: cred\n".to_string(),
        ),
    ]
    .into_iter()
    .collect();
    for (want, extra) in cases {
        let srv = server(BODY).await;
        let rec = Arc::new(Recorder::default());
        let m = ScrapeManager::new(rec.clone());
        m.apply(
            GlobalConfig::default(),
            vec![job_for(srv.port, &extra)],
            vec![],
        )
        .await;
        until("a request", || !srv.headers.lock().is_empty()).await;
        let req = srv.headers.lock()[0].to_lowercase();
        assert!(
            req.contains(&format!("authorization: {}", want.to_lowercase())),
            "{want}: {req}"
        );
        m.stop().await;
    }
}

#[tokio::test]
async fn internal_targets_use_the_same_pipeline() {
    let rec = Arc::new(Recorder::default());
    let m = ScrapeManager::new(rec.clone());
    let it = InternalTarget {
        job: "node".into(),
        instance: "host-1".into(),
        interval: Duration::from_millis(100),
        source: Arc::new(|| Ok(b"node_load1 0.5\n".to_vec())),
    };
    m.apply(GlobalConfig::default(), vec![], vec![it]).await;
    until("internal scrape", || {
        !rec.values("node_load1", &[("job", "node"), ("instance", "host-1")])
            .is_empty()
    })
    .await;
    assert_eq!(rec.values("up", &[("job", "node")])[0], 1.0);
    m.stop().await;
}
