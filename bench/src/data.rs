//! The benchmark data set: realistic node and HTTP-service series with a
//! deterministic generator, pre-encoded as remote-write requests sharded the
//! way Prometheus shards (each series always in the same shard, in time order).

use day2_model::{Labels, Sample, TimeSeries};

/// xorshift64* — deterministic and fast.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy)]
enum Kind {
    /// Counter growing by up to this much per step.
    Counter(f64),
    /// Gauge wandering around this level.
    Gauge(f64),
}

pub struct DataSet {
    pub labels: Vec<Labels>,
    kinds: Vec<Kind>,
}

const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];
const LE: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];

impl DataSet {
    /// About `n` series: per instance 4 CPUs x 8 modes, memory, 6 request counters, 12 buckets.
    pub fn new(n: usize) -> DataSet {
        let mut labels = Vec::with_capacity(n);
        let mut kinds = Vec::with_capacity(n);
        'outer: for i in 0.. {
            let inst = format!("host-{i:05}:9100");
            let svc = format!("svc-{}", i % 20);
            let mut push = |l: Labels, k: Kind| {
                labels.push(l);
                kinds.push(k);
            };
            for cpu in 0..4 {
                for m in MODES {
                    let rate = if m == "idle" { 14.0 } else { 1.0 };
                    push(
                        Labels::from_pairs([
                            ("__name__", "node_cpu_seconds_total"),
                            ("job", "node"),
                            ("instance", &inst),
                            ("cpu", &cpu.to_string()),
                            ("mode", m),
                        ]),
                        Kind::Counter(rate),
                    );
                }
            }
            push(
                Labels::from_pairs([
                    ("__name__", "node_memory_MemAvailable_bytes"),
                    ("job", "node"),
                    ("instance", &inst),
                ]),
                Kind::Gauge(8e9),
            );
            for method in ["GET", "POST"] {
                for code in ["200", "404", "500"] {
                    let rate = if code == "200" { 300.0 } else { 3.0 };
                    push(
                        Labels::from_pairs([
                            ("__name__", "http_requests_total"),
                            ("job", &svc),
                            ("instance", &inst),
                            ("method", method),
                            ("code", code),
                        ]),
                        Kind::Counter(rate),
                    );
                }
            }
            for (j, le) in LE.iter().enumerate() {
                push(
                    Labels::from_pairs([
                        ("__name__", "http_request_duration_seconds_bucket"),
                        ("job", &svc),
                        ("instance", &inst),
                        ("le", le),
                    ]),
                    Kind::Counter(10.0 * (j + 1) as f64),
                );
            }
            if labels.len() >= n {
                labels.truncate(n);
                kinds.truncate(n);
                break 'outer;
            }
        }
        DataSet { labels, kinds }
    }

    /// Calls `f(t, values)` for every step of the series, oldest first (the
    /// same values whatever the consumer).
    pub fn generate(
        &self,
        steps: usize,
        step_ms: i64,
        end_ms: i64,
        mut f: impl FnMut(i64, &[f64]),
    ) {
        let start = end_ms - (steps as i64 - 1) * step_ms;
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let mut values: Vec<f64> = self
            .kinds
            .iter()
            .map(|k| match k {
                Kind::Counter(_) => (rng.next() % 1000) as f64,
                Kind::Gauge(level) => *level,
            })
            .collect();
        for step in 0..steps {
            let t = start + step as i64 * step_ms;
            for (i, k) in self.kinds.iter().enumerate() {
                values[i] = match k {
                    // integer increments like real counters; some steps without change
                    Kind::Counter(rate) => values[i] + (rng.unit() * rate * 2.0).floor(),
                    Kind::Gauge(level) => (level * (0.9 + 0.2 * rng.unit())).round(),
                };
            }
            f(t, &values);
        }
    }

    /// Encoded request bodies per shard, each shard in time order.
    pub fn requests(
        &self,
        steps: usize,
        step_ms: i64,
        end_ms: i64,
        shards: usize,
        per_request: usize,
    ) -> Vec<Vec<Vec<u8>>> {
        let mut out = vec![Vec::new(); shards];
        self.generate(steps, step_ms, end_ms, |t, values| {
            for (shard, reqs) in out.iter_mut().enumerate() {
                let idx: Vec<usize> = (shard..self.labels.len()).step_by(shards).collect();
                for part in idx.chunks(per_request) {
                    let series: Vec<TimeSeries> = part
                        .iter()
                        .map(|&i| TimeSeries {
                            labels: self.labels[i].clone(),
                            samples: vec![Sample::new(t, values[i])],
                        })
                        .collect();
                    reqs.push(day2_ingest::remote_write::encode(&series));
                }
            }
        });
        out
    }
}
