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

    /// Every series' values step by step from `start_ms` (the same values
    /// whatever the consumer); it can go on after the historical steps (the
    /// rules benchmark keeps the data live that way).
    pub fn steps(&self, start_ms: i64, step_ms: i64) -> Steps {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let values = self
            .kinds
            .iter()
            .map(|k| match k {
                Kind::Counter(_) => (rng.next() % 1000) as f64,
                Kind::Gauge(level) => *level,
            })
            .collect();
        Steps {
            kinds: self.kinds.clone(),
            rng,
            values,
            next_t: start_ms,
            step_ms,
        }
    }

    /// Encoded request bodies per shard, each shard in time order, for the
    /// `steps` steps ending at `end_ms`; also the generator positioned at the
    /// step after them.
    pub fn requests(
        &self,
        steps: usize,
        step_ms: i64,
        end_ms: i64,
        shards: usize,
        per_request: usize,
    ) -> (Vec<Vec<Vec<u8>>>, Steps) {
        let mut out = vec![Vec::new(); shards];
        let mut steps_gen = self.steps(end_ms - (steps as i64 - 1) * step_ms, step_ms);
        for _ in 0..steps {
            let (t, values) = steps_gen.next();
            self.encode_step(t, values, per_request, &mut out);
        }
        (out, steps_gen)
    }

    /// Appends one step's requests to each shard of `out` (series `i` goes to
    /// shard `i % out.len()`, at most `per_request` samples per request).
    pub fn encode_step(
        &self,
        t: i64,
        values: &[f64],
        per_request: usize,
        out: &mut [Vec<Vec<u8>>],
    ) {
        let shards = out.len();
        for (shard, reqs) in out.iter_mut().enumerate() {
            let idx: Vec<usize> = (shard..self.labels.len()).step_by(shards).collect();
            for part in idx.chunks(per_request) {
                let series: Vec<TimeSeries> = part
                    .iter()
                    .map(|&i| TimeSeries {
                        histograms: Vec::new(),
                        labels: self.labels[i].clone(),
                        samples: vec![Sample::new(t, values[i])],
                    })
                    .collect();
                reqs.push(day2_ingest::remote_write::encode(&series));
            }
        }
    }
}

/// The data set's values step by step (deterministic: the same seed every time).
pub struct Steps {
    kinds: Vec<Kind>,
    rng: Rng,
    values: Vec<f64>,
    next_t: i64,
    step_ms: i64,
}

impl Steps {
    /// The timestamp of the step [`Steps::next`] produces next.
    pub fn next_t(&self) -> i64 {
        self.next_t
    }

    /// The next step: its timestamp and every series' value.
    pub fn next(&mut self) -> (i64, &[f64]) {
        for (v, k) in self.values.iter_mut().zip(&self.kinds) {
            *v = match k {
                // integer increments like real counters; some steps without change
                Kind::Counter(rate) => *v + (self.rng.unit() * rate * 2.0).floor(),
                Kind::Gauge(level) => (level * (0.9 + 0.2 * self.rng.unit())).round(),
            };
        }
        let t = self.next_t;
        self.next_t += self.step_ms;
        (t, &self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::DataSet;

    #[test]
    fn steps_go_on_where_the_historical_data_ends() {
        let ds = DataSet::new(120);
        let mut all = ds.steps(1_000_000, 15_000);
        let long: Vec<(i64, Vec<f64>)> = (0..7)
            .map(|_| {
                let (t, v) = all.next();
                (t, v.to_vec())
            })
            .collect();
        let (reqs, mut steps_gen) = ds.requests(5, 15_000, 1_000_000 + 4 * 15_000, 2, 50);
        assert_eq!(reqs.len(), 2);
        assert_eq!(
            reqs[0].len(),
            5 * 2,
            "60 series per shard in requests of 50"
        );
        for want in &long[5..] {
            let (t, v) = steps_gen.next();
            assert_eq!((t, v), (want.0, want.1.as_slice()));
        }
    }
}
