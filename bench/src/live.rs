//! Keeping the data set live during the rules benchmark: every step of the
//! data set's interval, the next step of every series is written at its
//! wall-clock time, as a scrape would, so rules always see data as fresh as in
//! a running system whichever target runs first and however long it takes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::data::{DataSet, Steps};

/// A running writer; [`LiveWriter::stop`] ends it.
pub struct LiveWriter {
    task: tokio::task::JoinHandle<()>,
    errors: Arc<AtomicU64>,
}

/// Starts writing `steps` to `url` (remote write), each step once the wall
/// clock reaches its timestamp, in requests sharded as the ingestion's.
pub fn spawn(
    client: reqwest::Client,
    url: String,
    ds: Arc<DataSet>,
    mut steps: Steps,
    shards: usize,
    per_request: usize,
) -> LiveWriter {
    let errors = Arc::new(AtomicU64::new(0));
    let failed = errors.clone();
    let task = tokio::spawn(async move {
        loop {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let due = steps.next_t();
            if due > now {
                tokio::time::sleep(Duration::from_millis((due - now) as u64)).await;
            }
            let (t, values) = steps.next();
            let mut reqs = vec![Vec::new(); shards];
            ds.encode_step(t, values, per_request, &mut reqs);
            for body in reqs.into_iter().flatten() {
                let r = client
                    .post(&url)
                    .header("Content-Encoding", "snappy")
                    .header("Content-Type", "application/x-protobuf")
                    .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                    .body(body)
                    .send()
                    .await;
                if !matches!(&r, Ok(r) if r.status().is_success()) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    LiveWriter { task, errors }
}

impl LiveWriter {
    /// Stops the writer; returns how many of its requests failed.
    pub async fn stop(self) -> u64 {
        self.task.abort();
        let _ = self.task.await;
        self.errors.load(Ordering::Relaxed)
    }
}
