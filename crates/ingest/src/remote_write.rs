//! Prometheus remote write 1.0: a snappy (block format) compressed protobuf
//! `WriteRequest` (messages of `prompb/remote.proto` and `types.proto`, written
//! here by hand with `prost` derives so no protoc is needed).

use day2_model::{Label, Labels, Sample, TimeSeries};

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
}

mod pb {
    //! Wire messages. Exemplars, native histograms and metadata are decoded
    //! so that they do not fail a request, then ignored.

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
        out.push(TimeSeries {
            histograms: Vec::new(),
            labels: Labels::from_sorted_unchecked(labels),
            samples,
        });
    }
    Ok(out)
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
