//! Prometheus remote write 1.0: a snappy (block format) compressed protobuf
//! `WriteRequest` (messages of `prompb/remote.proto` and `types.proto`, written
//! here by hand with `prost` derives so no protoc is needed). Native
//! histograms come as integer histograms (delta-encoded bucket counts) or
//! float histograms (absolute counts); both are stored as float histograms.

use std::sync::Arc;

use day2_model::histogram::CUSTOM_BUCKETS_SCHEMA;
use day2_model::{
    CounterResetHint, FloatHistogram, HistogramSample, Label, Labels, Sample, Span, TimeSeries,
};

/// Limits applied while decoding a request body.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Largest decoded (uncompressed) body accepted, checked before allocating.
    pub max_decoded_bytes: usize,
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("snappy: {0}")]
    Snappy(String),
    #[error("decoded body would be {claimed} bytes, over the limit of {limit}")]
    TooLarge { claimed: usize, limit: usize },
    #[error("protobuf: {0}")]
    Protobuf(String),
    #[error("series {series_index}: {message}")]
    InvalidLabels {
        series_index: usize,
        message: String,
    },
    #[error("series {series_index} ({labels}): histogram at {timestamp}: {message}")]
    InvalidHistogram {
        series_index: usize,
        labels: String,
        timestamp: i64,
        message: String,
    },
}

mod pb {
    //! Wire messages. Exemplars and metadata are decoded so that they do not
    //! fail a request, then ignored.

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
        #[prost(message, repeated, tag = "3")]
        pub metadata: Vec<MetricMetadata>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricMetadata {
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        #[prost(string, tag = "2")]
        pub metric_family_name: String,
        #[prost(string, tag = "4")]
        pub help: String,
        #[prost(string, tag = "5")]
        pub unit: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
        #[prost(message, repeated, tag = "3")]
        pub exemplars: Vec<Exemplar>,
        #[prost(message, repeated, tag = "4")]
        pub histograms: Vec<Histogram>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Histogram {
        #[prost(oneof = "histogram::Count", tags = "1, 2")]
        pub count: Option<histogram::Count>,
        #[prost(double, tag = "3")]
        pub sum: f64,
        #[prost(sint32, tag = "4")]
        pub schema: i32,
        #[prost(double, tag = "5")]
        pub zero_threshold: f64,
        #[prost(oneof = "histogram::ZeroCount", tags = "6, 7")]
        pub zero_count: Option<histogram::ZeroCount>,
        #[prost(message, repeated, tag = "8")]
        pub negative_spans: Vec<BucketSpan>,
        #[prost(sint64, repeated, tag = "9")]
        pub negative_deltas: Vec<i64>,
        #[prost(double, repeated, tag = "10")]
        pub negative_counts: Vec<f64>,
        #[prost(message, repeated, tag = "11")]
        pub positive_spans: Vec<BucketSpan>,
        #[prost(sint64, repeated, tag = "12")]
        pub positive_deltas: Vec<i64>,
        #[prost(double, repeated, tag = "13")]
        pub positive_counts: Vec<f64>,
        #[prost(int32, tag = "14")]
        pub reset_hint: i32,
        #[prost(int64, tag = "15")]
        pub timestamp: i64,
        #[prost(double, repeated, tag = "16")]
        pub custom_values: Vec<f64>,
    }

    pub mod histogram {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Count {
            #[prost(uint64, tag = "1")]
            CountInt(u64),
            #[prost(double, tag = "2")]
            CountFloat(f64),
        }

        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum ZeroCount {
            #[prost(uint64, tag = "6")]
            ZeroCountInt(u64),
            #[prost(double, tag = "7")]
            ZeroCountFloat(f64),
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct BucketSpan {
        #[prost(sint32, tag = "1")]
        pub offset: i32,
        #[prost(uint32, tag = "2")]
        pub length: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(double, tag = "2")]
        pub value: f64,
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }
}

/// Decodes a request body into series. Label names must be unique within a
/// series; empty values are dropped (an empty value means "absent").
pub fn decode(body: &[u8], limits: DecodeLimits) -> Result<Vec<TimeSeries>, DecodeError> {
    use prost::Message;
    // The block format starts with the decoded length: refuse a bomb before allocating.
    let claimed =
        snap::raw::decompress_len(body).map_err(|e| DecodeError::Snappy(e.to_string()))?;
    if claimed > limits.max_decoded_bytes {
        return Err(DecodeError::TooLarge {
            claimed,
            limit: limits.max_decoded_bytes,
        });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| DecodeError::Snappy(e.to_string()))?;
    let req = pb::WriteRequest::decode(raw.as_slice())
        .map_err(|e| DecodeError::Protobuf(e.to_string()))?;
    let mut out = Vec::with_capacity(req.timeseries.len());
    for (i, ts) in req.timeseries.into_iter().enumerate() {
        let mut labels: Vec<Label> = ts
            .labels
            .into_iter()
            .filter(|l| !l.value.is_empty())
            .map(|l| Label {
                name: l.name,
                value: l.value,
            })
            .collect();
        // Senders normally send labels sorted; sort only when they did not.
        if !labels.windows(2).all(|w| w[0].name < w[1].name) {
            labels.sort_by(|a, b| a.name.cmp(&b.name));
            if let Some(w) = labels.windows(2).find(|w| w[0].name == w[1].name) {
                return Err(DecodeError::InvalidLabels {
                    series_index: i,
                    message: format!("duplicate label name {:?}", w[0].name),
                });
            }
        }
        let samples = ts
            .samples
            .into_iter()
            .map(|s| Sample::new(s.timestamp, s.value))
            .collect();
        let labels = Labels::from_sorted_unchecked(labels);
        let mut histograms = Vec::with_capacity(ts.histograms.len());
        for h in ts.histograms {
            let t = h.timestamp;
            let fh = from_wire(h).map_err(|message| DecodeError::InvalidHistogram {
                series_index: i,
                labels: labels.to_string(),
                timestamp: t,
                message,
            })?;
            histograms.push(HistogramSample { t, h: Arc::new(fh) });
        }
        out.push(TimeSeries {
            histograms,
            labels,
            samples,
        });
    }
    Ok(out)
}

/// Absolute counts of delta-encoded integer buckets.
fn undelta(deltas: &[i64], side: &str) -> Result<Vec<f64>, String> {
    let mut acc = 0i64;
    let mut out = Vec::with_capacity(deltas.len());
    for (i, d) in deltas.iter().enumerate() {
        acc = acc
            .checked_add(*d)
            .ok_or_else(|| format!("{side} bucket {} overflows", i + 1))?;
        out.push(acc as f64);
    }
    Ok(out)
}

fn spans(s: &[pb::BucketSpan]) -> Vec<Span> {
    s.iter()
        .map(|s| Span {
            offset: s.offset,
            length: s.length,
        })
        .collect()
}

/// A wire histogram as a validated float histogram.
fn from_wire(h: pb::Histogram) -> Result<FloatHistogram, String> {
    use pb::histogram::{Count, ZeroCount};
    let float = matches!(h.count, Some(Count::CountFloat(_)));
    let count = match h.count {
        Some(Count::CountFloat(c)) => c,
        Some(Count::CountInt(c)) => c as f64,
        None => 0.0,
    };
    let zero_count = match h.zero_count {
        Some(ZeroCount::ZeroCountFloat(c)) => c,
        Some(ZeroCount::ZeroCountInt(c)) => c as f64,
        None => 0.0,
    };
    let (positive_buckets, negative_buckets) = if float {
        if !h.positive_deltas.is_empty() || !h.negative_deltas.is_empty() {
            return Err("a float histogram carries bucket deltas".into());
        }
        (h.positive_counts, h.negative_counts)
    } else {
        if !h.positive_counts.is_empty() || !h.negative_counts.is_empty() {
            return Err("an integer histogram carries float bucket counts".into());
        }
        (
            undelta(&h.positive_deltas, "positive")?,
            undelta(&h.negative_deltas, "negative")?,
        )
    };
    let hint = match h.reset_hint {
        1 => CounterResetHint::Reset,
        2 => CounterResetHint::NotReset,
        3 => CounterResetHint::Gauge,
        _ => CounterResetHint::Unknown,
    };
    let fh = FloatHistogram {
        hint,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count,
        count,
        sum: h.sum,
        positive_spans: spans(&h.positive_spans),
        positive_buckets,
        negative_spans: spans(&h.negative_spans),
        negative_buckets,
        custom_values: h.custom_values,
    };
    // a stale marker carries no buckets worth checking
    if !fh.is_stale() {
        fh.validate().map_err(|e| e.to_string())?;
    }
    Ok(fh)
}

/// A histogram on the wire: as an integer histogram (delta-encoded buckets)
/// when every count is a whole number, as receivers that only take integer
/// histograms (Prometheus 2.x) need; else as a float histogram.
fn to_wire(t: i64, h: &FloatHistogram) -> pb::Histogram {
    use pb::histogram::{Count, ZeroCount};
    let whole = |v: f64| v >= 0.0 && v.fract() == 0.0 && v < 9.0e15;
    let integral = whole(h.count)
        && whole(h.zero_count)
        && h.positive_buckets
            .iter()
            .chain(&h.negative_buckets)
            .all(|v| whole(*v));
    let deltas = |b: &[f64]| -> Vec<i64> {
        let mut prev = 0i64;
        b.iter()
            .map(|v| {
                let c = *v as i64;
                let d = c - prev;
                prev = c;
                d
            })
            .collect()
    };
    let wire_spans = |s: &[Span]| -> Vec<pb::BucketSpan> {
        s.iter()
            .map(|s| pb::BucketSpan {
                offset: s.offset,
                length: s.length,
            })
            .collect()
    };
    let (count, zero_count) = if integral {
        (
            Count::CountInt(h.count as u64),
            ZeroCount::ZeroCountInt(h.zero_count as u64),
        )
    } else {
        (
            Count::CountFloat(h.count),
            ZeroCount::ZeroCountFloat(h.zero_count),
        )
    };
    let (neg_d, neg_c, pos_d, pos_c) = if integral {
        (
            deltas(&h.negative_buckets),
            Vec::new(),
            deltas(&h.positive_buckets),
            Vec::new(),
        )
    } else {
        (
            Vec::new(),
            h.negative_buckets.clone(),
            Vec::new(),
            h.positive_buckets.clone(),
        )
    };
    pb::Histogram {
        count: Some(count),
        sum: h.sum,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: Some(zero_count),
        negative_spans: wire_spans(&h.negative_spans),
        negative_deltas: neg_d,
        negative_counts: neg_c,
        positive_spans: wire_spans(&h.positive_spans),
        positive_deltas: pos_d,
        positive_counts: pos_c,
        reset_hint: match h.hint {
            CounterResetHint::Unknown => 0,
            CounterResetHint::Reset => 1,
            CounterResetHint::NotReset => 2,
            CounterResetHint::Gauge => 3,
        },
        timestamp: t,
        custom_values: if h.schema == CUSTOM_BUCKETS_SCHEMA {
            h.custom_values.clone()
        } else {
            Vec::new()
        },
    }
}

/// Encodes series as a remote-write body (used by tests and the benchmark client).
pub fn encode(series: &[TimeSeries]) -> Vec<u8> {
    use prost::Message;
    let req = pb::WriteRequest {
        timeseries: series
            .iter()
            .map(|s| pb::TimeSeries {
                labels: s
                    .labels
                    .iter()
                    .map(|l| pb::Label {
                        name: l.name.clone(),
                        value: l.value.clone(),
                    })
                    .collect(),
                samples: s
                    .samples
                    .iter()
                    .map(|p| pb::Sample {
                        value: p.v,
                        timestamp: p.t,
                    })
                    .collect(),
                exemplars: Vec::new(),
                histograms: s.histograms.iter().map(|h| to_wire(h.t, &h.h)).collect(),
            })
            .collect(),
        metadata: Vec::new(),
    };
    let raw = req.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy compression of an in-memory buffer cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: DecodeLimits = DecodeLimits {
        max_decoded_bytes: 1 << 20,
    };

    fn ts(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            histograms: Vec::new(),
            labels: Labels::from_pairs(pairs.iter().copied()),
            samples: samples.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
        }
    }

    #[test]
    fn round_trips() {
        let input = vec![
            ts(
                &[("__name__", "up"), ("job", "a")],
                &[(1000, 1.0), (2000, 0.0)],
            ),
            ts(&[("__name__", "x")], &[(5, f64::INFINITY)]),
        ];
        let got = decode(&encode(&input), LIMITS).unwrap();
        assert_eq!(got, input);
    }

    fn body(series: Vec<pb::TimeSeries>) -> Vec<u8> {
        use prost::Message;
        let req = pb::WriteRequest {
            timeseries: series,
            metadata: vec![],
        };
        snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap()
    }

    fn hist_series(h: pb::Histogram) -> pb::TimeSeries {
        pb::TimeSeries {
            labels: vec![pb::Label {
                name: "__name__".into(),
                value: "h".into(),
            }],
            samples: vec![],
            exemplars: vec![],
            histograms: vec![h],
        }
    }

    #[test]
    fn float_histograms_round_trip() {
        let mut h = FloatHistogram::empty(1);
        h.count = 5.5;
        h.sum = 12.25;
        h.zero_threshold = 0.001;
        h.zero_count = 0.5;
        h.hint = CounterResetHint::Gauge;
        h.set_bucket_list(true, &[(-1, 1.0), (0, 2.0), (3, 1.5)]);
        h.set_bucket_list(false, &[(2, 0.5)]);
        let mut c = FloatHistogram::empty(CUSTOM_BUCKETS_SCHEMA);
        c.count = 3.0;
        c.custom_values = vec![0.1, 1.0];
        c.set_bucket_list(true, &[(0, 1.0), (2, 2.0)]);
        let input = vec![TimeSeries {
            labels: Labels::from_pairs([("__name__", "h")]),
            samples: vec![],
            histograms: vec![HistogramSample::new(1000, h), HistogramSample::new(2000, c)],
        }];
        assert_eq!(decode(&encode(&input), LIMITS).unwrap(), input);
    }

    #[test]
    fn integer_histograms_have_delta_encoded_buckets() {
        use pb::histogram::{Count, ZeroCount};
        let wire = pb::Histogram {
            count: Some(Count::CountInt(9)),
            sum: 18.4,
            schema: 0,
            zero_threshold: 0.001,
            zero_count: Some(ZeroCount::ZeroCountInt(2)),
            positive_spans: vec![
                pb::BucketSpan {
                    offset: 0,
                    length: 2,
                },
                pb::BucketSpan {
                    offset: 1,
                    length: 1,
                },
            ],
            // absolute 1, 3, 2
            positive_deltas: vec![1, 2, -1],
            negative_spans: vec![pb::BucketSpan {
                offset: 0,
                length: 1,
            }],
            negative_deltas: vec![1],
            reset_hint: 2,
            timestamp: 42,
            ..Default::default()
        };
        let got = decode(&body(vec![hist_series(wire)]), LIMITS).unwrap();
        let h = &got[0].histograms[0];
        assert_eq!(h.t, 42);
        assert_eq!(h.h.count, 9.0);
        assert_eq!(h.h.zero_count, 2.0);
        assert_eq!(h.h.hint, CounterResetHint::NotReset);
        assert_eq!(h.h.bucket_list(true), vec![(0, 1.0), (1, 3.0), (3, 2.0)]);
        assert_eq!(h.h.bucket_list(false), vec![(0, 1.0)]);
    }

    #[test]
    fn invalid_histograms_name_the_series_and_the_problem() {
        use pb::histogram::Count;
        let wire = pb::Histogram {
            count: Some(Count::CountInt(1)),
            positive_spans: vec![pb::BucketSpan {
                offset: 0,
                length: 2,
            }],
            positive_deltas: vec![1],
            timestamp: 7,
            ..Default::default()
        };
        let err = decode(&body(vec![hist_series(wire)]), LIMITS).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("series 0 (h{}): histogram at 7")
                && msg.contains("spans need 2 buckets, have 1"),
            "{msg}"
        );
        // a negative absolute count after the deltas
        let wire = pb::Histogram {
            count: Some(Count::CountInt(1)),
            positive_spans: vec![pb::BucketSpan {
                offset: 0,
                length: 2,
            }],
            positive_deltas: vec![1, -2],
            ..Default::default()
        };
        let err = decode(&body(vec![hist_series(wire)]), LIMITS).unwrap_err();
        assert!(err.to_string().contains("observation count -1"), "{err}");
    }

    #[test]
    fn decode_bomb_is_refused_before_allocating() {
        // varint 1 GiB claimed length followed by a few bytes
        let body = [0x80, 0x80, 0x80, 0x80, 0x04, 0, 0, 0];
        match decode(&body, LIMITS) {
            Err(DecodeError::TooLarge { claimed, limit }) => {
                assert_eq!(claimed, 1 << 30);
                assert_eq!(limit, 1 << 20);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn garbage_is_a_clear_error() {
        assert!(matches!(
            decode(b"\x05hello", LIMITS),
            Err(DecodeError::Snappy(_))
        ));
        let not_proto = snap::raw::Encoder::new()
            .compress_vec(&[0xff, 0xff, 0xff])
            .unwrap();
        assert!(matches!(
            decode(&not_proto, LIMITS),
            Err(DecodeError::Protobuf(_))
        ));
    }

    #[test]
    fn unsorted_labels_are_sorted_and_duplicates_refused() {
        use prost::Message;
        let mk = |names: &[&str]| {
            let req = pb::WriteRequest {
                timeseries: vec![pb::TimeSeries {
                    labels: names
                        .iter()
                        .map(|n| pb::Label {
                            name: n.to_string(),
                            value: "v".into(),
                        })
                        .collect(),
                    samples: vec![pb::Sample {
                        value: 1.0,
                        timestamp: 1,
                    }],
                    exemplars: vec![],
                    histograms: vec![],
                }],
                metadata: vec![],
            };
            snap::raw::Encoder::new()
                .compress_vec(&req.encode_to_vec())
                .unwrap()
        };
        let got = decode(&mk(&["b", "a"]), LIMITS).unwrap();
        assert_eq!(got[0].labels.as_slice()[0].name, "a");
        let err = decode(&mk(&["b", "a", "b"]), LIMITS).unwrap_err();
        assert!(
            err.to_string().contains("duplicate label name \"b\""),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        use prost::Message;
        let mut raw = pb::WriteRequest {
            timeseries: vec![],
            metadata: vec![],
        }
        .encode_to_vec();
        // field 15, varint 7 (unknown to us)
        raw.extend_from_slice(&[15 << 3, 7]);
        let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        assert!(decode(&body, LIMITS).unwrap().is_empty());
    }
}
