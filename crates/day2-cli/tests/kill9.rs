//! Durability: remote-write over HTTP while SIGKILLing day2 at random points,
//! several times; after each restart every sample acknowledged with 2xx must
//! be readable.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use parking_lot::Mutex;

/// Tiny deterministic PRNG (xorshift64*), seeded per run and printed so a
/// failing schedule can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

type Acked = Arc<Mutex<BTreeMap<String, BTreeSet<i64>>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_sample_survives_sigkill() {
    let seed = std::env::var("DAY2_KILL9_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_ms() as u64 | 1);
    eprintln!("kill -9 schedule seed: {seed} (set DAY2_KILL9_SEED to replay)");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("day2.yml"), base_config("")).unwrap();
    let config = tmp.path().join("day2.yml");
    let acked: Acked = Arc::default();
    let base = now_ms() - 5 * 60_000;
    let mut next_t = 0i64;

    for round in 0..5 {
        let mut d = Day2::start_with(tmp.path(), &config, free_port()).await;
        verify(&d, &acked, round).await;

        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..3 {
            let url = d.url("/api/v1/write");
            let acked = acked.clone();
            let stop = stop.clone();
            let start_t = base + next_t + w as i64; // distinct timestamps per writer
            writers.push(tokio::spawn(async move {
                let c = client();
                let mut t = start_t;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let batch: Vec<_> = (0..20)
                        .map(|s| {
                            series(
                                &[
                                    ("__name__", "kill9_test"),
                                    ("writer", &w.to_string()),
                                    ("s", &s.to_string()),
                                ],
                                &[(t, t as f64)],
                            )
                        })
                        .collect();
                    let body = day2_ingest::remote_write::encode(&batch);
                    let res = c
                        .post(&url)
                        .header("Content-Encoding", "snappy")
                        .body(body)
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status().is_success() => {
                            let mut a = acked.lock();
                            for s in &batch {
                                a.entry(s.labels.to_string()).or_default().insert(t);
                            }
                        }
                        Ok(r) => panic!("unexpected status {} before the kill", r.status()),
                        Err(_) => break, // the server died mid-request: not acknowledged
                    }
                    t += 3; // three writers interleave without colliding
                }
                t
            }));
        }
        let delay = Duration::from_millis(200 + rng.next() % 1300);
        let until = Instant::now() + delay;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        d.kill9();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut max_t = 0;
        for w in writers {
            max_t = max_t.max(w.await.unwrap());
        }
        next_t = max_t - base + 3;
        let total: usize = acked.lock().values().map(|s| s.len()).sum();
        eprintln!("round {round}: killed after {delay:?}, {total} samples acknowledged so far");
    }
    let d = Day2::start_with(tmp.path(), &config, free_port()).await;
    verify(&d, &acked, 5).await;
    assert!(
        acked.lock().values().map(|s| s.len()).sum::<usize>() > 100,
        "the test must have written something"
    );
}

async fn verify(d: &Day2, acked: &Acked, round: usize) {
    let expected = acked.lock().clone();
    if expected.is_empty() {
        return;
    }
    let got: BTreeMap<String, BTreeSet<i64>> = d
        .export("{__name__=\"kill9_test\"}")
        .await
        .into_iter()
        .map(|(m, samples)| {
            let labels = day2_model::Labels::from_pairs(
                m.as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())),
            );
            (
                labels.to_string(),
                samples
                    .into_iter()
                    .map(|(t, v)| {
                        assert_eq!(v, t as f64, "value of sample at {t}");
                        t
                    })
                    .collect(),
            )
        })
        .collect();
    for (series, ts) in &expected {
        let have = got.get(series).unwrap_or_else(|| {
            panic!(
                "after restart {round}: series {series} lost\nlog:\n{}",
                d.log()
            )
        });
        let missing: Vec<_> = ts.difference(have).collect();
        assert!(
            missing.is_empty(),
            "after restart {round}: {series} lost {} acknowledged samples, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
    }
}
