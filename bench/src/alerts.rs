//! Alert-hub benchmark: day2's Alertmanager-compatible hub beside Debian's
//! Alertmanager, both with the same alertmanager.yml whose only receiver is a
//! webhook served by this process on loopback.
//!
//! Phase 1 posts many distinct alerts to `POST /api/v2/alerts` in batches over
//! several connections (alerts/s accepted, CPU, peak RSS, and how long until
//! every alert reached the webhook). Phase 2 posts single alerts, one at a time,
//! each its own group, and times from the POST's answer to the webhook's
//! arrival (group_wait is 0s, so this is the hub's pipeline).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Alerts of phase 1 per `instance` label, so per aggregation group.
pub const PER_GROUP: usize = 20;

/// The alertmanager.yml both targets run: one webhook receiver at `hook_url`,
/// grouping by alertname and instance, notifying at once.
pub fn alertmanager_yml(hook_url: &str) -> String {
    format!(
        "route:\n  receiver: bench\n  group_by: [alertname, instance]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: bench\n    webhook_configs:\n      - url: {hook_url}\n        send_resolved: false\n"
    )
}

/// The JSON body (`POST /api/v2/alerts`) of alerts `seqs`, each with a distinct
/// label set: `seq` is unique, `instance` changes every [`PER_GROUP`] alerts.
pub fn alert_batch(alertname: &str, seqs: std::ops::Range<usize>) -> Vec<u8> {
    let alerts: Vec<serde_json::Value> = seqs
        .map(|i| {
            let instance = format!("host-{:05}:9100", i / PER_GROUP);
            serde_json::json!({
                "labels": {
                    "alertname": alertname,
                    "instance": instance,
                    "job": "node",
                    "severity": if i % 3 == 0 { "page" } else { "ticket" },
                    "seq": i.to_string(),
                },
                "annotations": {
                    "summary": format!("{alertname} on {instance}"),
                    "description": format!("bench alert {i}"),
                },
                "generatorURL": "http://127.0.0.1:9090/graph",
            })
        })
        .collect();
    serde_json::to_vec(&alerts).expect("JSON of plain values")
}

/// The single alert of phase 2 number `i`: its own group (instance `lat-i`).
pub fn latency_alert(i: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!([{
        "labels": {"alertname": "BenchLatency", "instance": format!("lat-{i}"), "seq": format!("lat-{i}")},
        "annotations": {"summary": "latency probe"},
    }]))
    .expect("JSON of plain values")
}

/// What the webhook receiver saw: the first arrival of each `seq` label.
#[derive(Clone, Default)]
pub struct Inbox {
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    wake: Arc<tokio::sync::Notify>,
    pub requests: Arc<AtomicU64>,
    pub bad_requests: Arc<AtomicU64>,
}

impl Inbox {
    pub fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }

    pub fn len(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn get(&self, seq: &str) -> Option<Instant> {
        self.seen.lock().unwrap().get(seq).copied()
    }

    /// The latest arrival among all recorded alerts.
    pub fn last_arrival(&self) -> Option<Instant> {
        self.seen.lock().unwrap().values().max().copied()
    }

    /// Records the alerts of one webhook payload (Alertmanager's shape).
    fn record(&self, body: &[u8], at: Instant) {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
            self.bad_requests.fetch_add(1, Ordering::Relaxed);
            return;
        };
        {
            let mut seen = self.seen.lock().unwrap();
            for a in v["alerts"].as_array().into_iter().flatten() {
                if let Some(seq) = a["labels"]["seq"].as_str() {
                    seen.entry(seq.to_string()).or_insert(at);
                }
            }
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_waiters();
    }

    /// Waits until `done` holds for the inbox or `deadline` passes.
    pub async fn wait_until(&self, deadline: Instant, done: impl Fn(&Inbox) -> bool) -> bool {
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if done(self) {
                return true;
            }
            let until = tokio::time::Instant::from_std(deadline);
            if tokio::time::timeout_at(until, woken).await.is_err() {
                return done(self);
            }
        }
    }
}

/// Serves the webhook on a loopback port (HTTP/1.1, keep-alive, bodies with
/// Content-Length, which both Alertmanager and day2 send); returns the port.
pub async fn start_receiver(inbox: Inbox) -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let inbox = inbox.clone();
            tokio::spawn(async move {
                let _ = serve_conn(conn, inbox).await;
            });
        }
    });
    Ok(port)
}

async fn serve_conn(mut conn: tokio::net::TcpStream, inbox: Inbox) -> std::io::Result<()> {
    let _ = conn.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        // the head
        let head_end = loop {
            if let Some(p) = find(&buf, b"\r\n\r\n") {
                break p + 4;
            }
            if read_more(&mut conn, &mut buf).await? == 0 {
                return Ok(());
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let mut length = 0usize;
        let mut chunked = false;
        let mut close = false;
        for line in head.lines().skip(1) {
            if let Some((k, v)) = line.split_once(':') {
                match k.trim() {
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    "transfer-encoding" => chunked = v.contains("chunked"),
                    "connection" => close = v.contains("close"),
                    _ => {}
                }
            }
        }
        if chunked {
            inbox.bad_requests.fetch_add(1, Ordering::Relaxed);
            conn.write_all(
                b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await?;
            return Ok(());
        }
        while buf.len() < head_end + length {
            if read_more(&mut conn, &mut buf).await? == 0 {
                return Ok(());
            }
        }
        let at = Instant::now();
        inbox.record(&buf[head_end..head_end + length], at);
        buf.drain(..head_end + length);
        conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .await?;
        if close {
            return Ok(());
        }
    }
}

async fn read_more(conn: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    let n = conn.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One target's figures.
pub struct AlertFigures {
    pub alerts_per_sec: f64,
    pub accepted: u64,
    pub errors: u64,
    /// Server CPU-seconds from the first POST until every alert was delivered.
    pub cpu_s: f64,
    pub peak_rss_mib: f64,
    /// Alerts of phase 1 that reached the webhook, and seconds from the first
    /// POST until the last of them arrived.
    pub delivered: usize,
    pub delivered_after_s: f64,
    /// Phase 2: ms from the POST's answer to the webhook's arrival, sorted.
    pub latencies_ms: Vec<f64>,
    pub latency_timeouts: usize,
}

pub struct Plan {
    pub alerts: usize,
    pub batch: usize,
    pub concurrency: usize,
    pub latency_alerts: usize,
}

/// Runs both phases against a started, ready target.
pub async fn measure(
    client: &reqwest::Client,
    srv: &crate::target::Server,
    inbox: &Inbox,
    plan: &Plan,
) -> anyhow::Result<AlertFigures> {
    inbox.clear();
    let batch = plan.batch.max(1);
    let conns = plan.concurrency.max(1);
    // encoded before the clock starts; request j goes through connection j % conns
    let mut per_conn: Vec<Vec<(usize, Vec<u8>)>> = vec![Vec::new(); conns];
    for (j, start) in (0..plan.alerts).step_by(batch).enumerate() {
        let end = (start + batch).min(plan.alerts);
        per_conn[j % conns].push((end - start, alert_batch("BenchAlert", start..end)));
    }
    let per_conn = Arc::new(per_conn);
    let url = srv.url("/api/v2/alerts");
    let accepted = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu0 = srv.cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (per_conn, client, url, accepted, errors) = (
            per_conn.clone(),
            client.clone(),
            url.clone(),
            accepted.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for (n, body) in &per_conn[c] {
                let r = client
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        accepted.fetch_add(*n as u64, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let wall = started.elapsed().as_secs_f64();
    let accepted = accepted.load(Ordering::Relaxed);
    // every accepted alert should reach the webhook
    let want = accepted as usize;
    inbox
        .wait_until(Instant::now() + Duration::from_secs(120), |i| {
            i.len() >= want
        })
        .await;
    // CPU of accepting, grouping and notifying (nothing else runs meanwhile)
    let cpu_s = srv.cpu_seconds() - cpu0;
    let delivered = inbox.len();
    let delivered_after_s = inbox
        .last_arrival()
        .map_or(f64::NAN, |t| t.duration_since(started).as_secs_f64());

    // phase 2: one alert at a time, each waited for before the next
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut latencies_ms = Vec::new();
    let mut latency_timeouts = 0;
    for i in 0..plan.latency_alerts {
        let seq = format!("lat-{i}");
        let r = client
            .post(&url)
            .header("Content-Type", "application/json")
            .body(latency_alert(i))
            .send()
            .await;
        let answered = Instant::now();
        match r {
            Ok(r) if r.status().is_success() => {
                let _ = r.bytes().await;
            }
            Ok(r) => anyhow::bail!("{}: single alert answered {}", srv.name, r.status()),
            Err(e) => anyhow::bail!("{}: single alert: {e}", srv.name),
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        if inbox
            .wait_until(deadline, |ib| ib.get(&seq).is_some())
            .await
        {
            let at = inbox.get(&seq).expect("seen");
            // arrival may precede the answer's reading; count that as 0
            latencies_ms.push(at.saturating_duration_since(answered).as_secs_f64() * 1000.0);
        } else {
            latency_timeouts += 1;
        }
    }
    latencies_ms.sort_by(f64::total_cmp);
    Ok(AlertFigures {
        alerts_per_sec: accepted as f64 / wall,
        accepted,
        errors: errors.load(Ordering::Relaxed),
        cpu_s,
        peak_rss_mib: srv.peak_rss() as f64 / 1048576.0,
        delivered,
        delivered_after_s,
        latencies_ms,
        latency_timeouts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_have_distinct_label_sets_and_groups() {
        let body = alert_batch("BenchAlert", 40..140);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let list = v.as_array().unwrap();
        assert_eq!(list.len(), 100);
        let seqs: std::collections::HashSet<&str> = list
            .iter()
            .map(|a| a["labels"]["seq"].as_str().unwrap())
            .collect();
        assert_eq!(seqs.len(), 100);
        assert!(seqs.contains("40") && seqs.contains("139"));
        let groups: std::collections::HashSet<&str> = list
            .iter()
            .map(|a| a["labels"]["instance"].as_str().unwrap())
            .collect();
        assert_eq!(groups.len(), 100 / PER_GROUP);
        assert_eq!(list[0]["labels"]["alertname"], "BenchAlert");
    }

    #[test]
    fn latency_alert_is_its_own_group() {
        let v: serde_json::Value = serde_json::from_slice(&latency_alert(7)).unwrap();
        assert_eq!(v[0]["labels"]["seq"], "lat-7");
        assert_eq!(v[0]["labels"]["instance"], "lat-7");
    }

    #[test]
    fn config_points_at_the_hook() {
        let y = alertmanager_yml("http://127.0.0.1:1234/hook");
        assert!(y.contains("url: http://127.0.0.1:1234/hook"));
        assert!(y.contains("group_wait: 0s"));
        assert!(y.contains("group_by: [alertname, instance]"));
    }

    #[tokio::test]
    async fn receiver_records_arrivals_over_keep_alive() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let inbox = Inbox::default();
        let port = start_receiver(inbox.clone()).await.unwrap();
        let client = reqwest::Client::new();
        for seq in ["a", "b"] {
            let body = serde_json::json!({"alerts": [{"labels": {"seq": seq}}]});
            let r = client
                .post(format!("http://127.0.0.1:{port}/hook"))
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
        }
        assert!(
            inbox
                .wait_until(Instant::now() + Duration::from_secs(5), |i| i.len() == 2)
                .await
        );
        assert!(inbox.get("a").unwrap() <= inbox.get("b").unwrap());
        assert_eq!(inbox.requests.load(Ordering::Relaxed), 2);
    }
}
