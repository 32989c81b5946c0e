//! day2's own metrics served at `/metrics`: HTTP latencies, remote-write
//! outcomes, ingested samples, reloads.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Inner {
    http: BTreeMap<(String, u16), Histogram>,
    remote_write: BTreeMap<u16, u64>,
    samples_accepted: u64,
    samples_rejected: u64,
    reloads_ok: u64,
    reloads_failed: u64,
    last_reload_ok: bool,
    last_reload_time: f64,
}

/// Registry of the server's own counters.
pub struct SelfMetrics {
    inner: Mutex<Inner>,
    start_time: f64,
}

impl Default for SelfMetrics {
    fn default() -> Self {
        Self::new()
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl SelfMetrics {
    pub fn new() -> Self {
        let now = now_secs();
        SelfMetrics {
            inner: Mutex::new(Inner {
                last_reload_ok: true,
                last_reload_time: now,
                ..Inner::default()
            }),
            start_time: now,
        }
    }

    pub fn observe_http(&self, handler: &str, code: u16, took: Duration) {
        let secs = took.as_secs_f64();
        let mut g = self.inner.lock();
        let h = g.http.entry((handler.to_string(), code)).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    pub fn remote_write_request(&self, code: u16) {
        *self.inner.lock().remote_write.entry(code).or_default() += 1;
    }

    pub fn samples_ingested(&self, accepted: u64, rejected: u64) {
        let mut g = self.inner.lock();
        g.samples_accepted += accepted;
        g.samples_rejected += rejected;
    }

    pub fn reloads(&self, ok: bool) {
        let mut g = self.inner.lock();
        if ok {
            g.reloads_ok += 1;
        } else {
            g.reloads_failed += 1;
        }
        g.last_reload_ok = ok;
        g.last_reload_time = now_secs();
    }

    pub fn render(&self, out: &mut String) {
        let g = self.inner.lock();
        let _ = writeln!(
            out,
            "# HELP day2_start_time_seconds Start time of the process since the Unix epoch."
        );
        let _ = writeln!(out, "# TYPE day2_start_time_seconds gauge");
        let _ = writeln!(out, "day2_start_time_seconds {}", self.start_time);
        let _ = writeln!(
            out,
            "# HELP day2_http_request_duration_seconds Latency of HTTP requests by route and status code."
        );
        let _ = writeln!(out, "# TYPE day2_http_request_duration_seconds histogram");
        for ((handler, code), h) in &g.http {
            let labels = format!("handler=\"{}\",code=\"{code}\"", escape(handler));
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "day2_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "day2_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "day2_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "day2_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP day2_remote_write_requests_total Remote-write requests by response status code."
        );
        let _ = writeln!(out, "# TYPE day2_remote_write_requests_total counter");
        for (code, n) in &g.remote_write {
            let _ = writeln!(
                out,
                "day2_remote_write_requests_total{{code=\"{code}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP day2_remote_write_samples_total Samples received by remote write, by outcome."
        );
        let _ = writeln!(out, "# TYPE day2_remote_write_samples_total counter");
        let _ = writeln!(
            out,
            "day2_remote_write_samples_total{{outcome=\"accepted\"}} {}",
            g.samples_accepted
        );
        let _ = writeln!(
            out,
            "day2_remote_write_samples_total{{outcome=\"rejected\"}} {}",
            g.samples_rejected
        );
        let _ = writeln!(
            out,
            "# HELP day2_config_reloads_total Configuration reloads by result."
        );
        let _ = writeln!(out, "# TYPE day2_config_reloads_total counter");
        let _ = writeln!(
            out,
            "day2_config_reloads_total{{result=\"success\"}} {}",
            g.reloads_ok
        );
        let _ = writeln!(
            out,
            "day2_config_reloads_total{{result=\"failure\"}} {}",
            g.reloads_failed
        );
        let _ = writeln!(
            out,
            "# HELP day2_config_last_reload_successful Whether the last configuration reload succeeded."
        );
        let _ = writeln!(out, "# TYPE day2_config_last_reload_successful gauge");
        let _ = writeln!(
            out,
            "day2_config_last_reload_successful {}",
            u8::from(g.last_reload_ok)
        );
        let _ = writeln!(
            out,
            "# HELP day2_config_last_reload_success_timestamp_seconds Time of the last reload attempt."
        );
        let _ = writeln!(
            out,
            "# TYPE day2_config_last_reload_success_timestamp_seconds gauge"
        );
        let _ = writeln!(
            out,
            "day2_config_last_reload_success_timestamp_seconds {}",
            g.last_reload_time
        );
    }
}

/// Escapes a label value for the text format.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
