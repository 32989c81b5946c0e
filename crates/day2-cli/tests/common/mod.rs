//! Shared harness for end-to-end tests: start the real `day2` binary (and real
//! peers) on loopback ports, wait on conditions with deadlines.
#![allow(dead_code)]

pub mod pager;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use day2_model::{Labels, Sample, TimeSeries};

/// A free loopback port (bound then released; the race is acceptable in tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it returns `Some`, or panics with `what` after `deadline`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A running day2 process; killed on drop.
pub struct Day2 {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub config: PathBuf,
}

impl Day2 {
    /// Writes `config` (YAML) into `dir/day2.yml` and starts `day2 serve` on a free port.
    pub async fn start(dir: &Path, config: &str) -> Day2 {
        let port = free_port();
        let config_path = dir.join("day2.yml");
        std::fs::write(&config_path, config).unwrap();
        Self::start_with(dir, &config_path, port).await
    }

    pub async fn start_with(dir: &Path, config_path: &Path, port: u16) -> Day2 {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("day2.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_day2"))
            .args(["serve", "--config"])
            .arg(config_path)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("DAY2_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start day2");
        let mut d = Day2 {
            child,
            port,
            dir: dir.to_path_buf(),
            config: config_path.to_path_buf(),
        };
        d.wait_ready().await;
        d
    }

    async fn wait_ready(&mut self) {
        let url = self.url("/-/ready");
        let c = client();
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "day2 exited with {status} before becoming ready; log:\n{}",
                    self.log()
                );
            }
            if let Ok(r) = c.get(&url).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < end,
                "day2 not ready after 60s; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("day2.log")).unwrap_or_default()
    }

    /// SIGKILL, no chance to flush anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Remote-writes `series`; returns the status code and body.
    pub async fn remote_write(&self, series: &[TimeSeries]) -> (u16, String) {
        let body = day2_ingest::remote_write::encode(series);
        let r = client()
            .post(self.url("/api/v1/write"))
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body)
            .send()
            .await
            .expect("remote write request");
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    }

    /// `GET path` parsed as JSON.
    pub async fn get_json(&self, path_and_query: &str) -> serde_json::Value {
        let r = client().get(self.url(path_and_query)).send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("GET {path_and_query}: {status}: not JSON ({e}): {text}"))
    }

    /// Raw samples of the series matching `selector` via `/api/v1/export`.
    pub async fn export(&self, selector: &str) -> Vec<(serde_json::Value, Vec<(i64, f64)>)> {
        let r = client()
            .get(self.url("/api/v1/export"))
            .query(&[("match[]", selector)])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "export failed: {}", r.status());
        let text = r.text().await.unwrap();
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let ts = v["timestamps"].as_array().unwrap();
                let vals = v["values"].as_array().unwrap();
                let samples = ts
                    .iter()
                    .zip(vals)
                    .map(|(t, v)| (t.as_i64().unwrap(), v.as_f64().unwrap_or(f64::NAN)))
                    .collect();
                (v["metric"].clone(), samples)
            })
            .collect()
    }
}

impl Drop for Day2 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed on drop (peers such as prometheus or node-exporter).
pub struct Peer(pub Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Path of a Debian peer binary, or a panic that says how to install it.
pub fn peer_binary(name: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} not found: install it with `apt-get install {package}` (scripts/test.sh does)");
}

pub fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        histograms: Vec::new(),
        labels: Labels::from_pairs(pairs.iter().copied()),
        samples: samples.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Minimal config: no in-process scrapes unless asked, fast fsync.
pub fn base_config(extra: &str) -> String {
    format!(
        "host_metrics:\n  enabled: false\nself_metrics:\n  enabled: false\nglobal:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n{extra}"
    )
}

/// day2.yml running the alert hub on `alertmanager.yml` beside it, with
/// loopback webhooks allowed and no in-process scrapes.
pub const HUB_DAY2_YML: &str = r#"
host_metrics:
  enabled: false
self_metrics:
  enabled: false
alertmanager:
  config_file: alertmanager.yml
  external_url: http://day2.test
  egress:
    allow: [127.0.0.0/8]
"#;

/// Posts alerts to `/api/v2/alerts`; anything but 2xx fails the test.
pub async fn post_alerts(d: &Day2, alerts: serde_json::Value) {
    let r = client()
        .post(d.url("/api/v2/alerts"))
        .json(&alerts)
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert!(status.is_success(), "{status}: {}", r.text().await.unwrap());
}

/// GETs JSON; anything but 2xx fails the test.
pub async fn get_json(d: &Day2, path: &str) -> serde_json::Value {
    let r = client().get(d.url(path)).send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

/// The value of an unlabelled series on `/metrics` (0 when absent).
pub async fn metric(d: &Day2, name: &str) -> f64 {
    let text = metrics_text(d).await.expect("/metrics answers");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// day2's own `/metrics` exposition, or `None` when it does not answer.
pub async fn metrics_text(d: &Day2) -> Option<String> {
    client()
        .get(d.url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()
}

/// A script that writes its arguments after the first, NUL-terminated, to the
/// file named by the first (argv only: it never evaluates them).
pub fn record_script(dir: &Path) -> PathBuf {
    let p = dir.join("record.sh");
    std::fs::write(
        &p,
        "#!/bin/sh\nout=\"$1\"\nshift\nprintf '%s\\0' \"$@\" > \"$out.tmp\" && mv \"$out.tmp\" \"$out\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// NUL-separated argv recorded by [`record_script`].
pub fn recorded(path: &Path) -> Option<Vec<String>> {
    let bytes = std::fs::read(path).ok()?;
    let s = String::from_utf8(bytes).unwrap();
    let mut parts: Vec<String> = s.split('\0').map(str::to_string).collect();
    assert_eq!(parts.pop().as_deref(), Some(""), "{s:?}");
    Some(parts)
}
