//! Prometheus remote write 1.0: snappy-compressed protobuf `WriteRequest`.
//! (Being written; signatures are the contract other modules code against.)

use day2_model::TimeSeries;

#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Largest decoded (uncompressed) body accepted, checked before allocating.
    pub max_decoded_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("snappy: {0}")]
    Snappy(String),
    #[error("decoded body would be {claimed} bytes, over the limit of {limit}")]
    TooLarge { claimed: usize, limit: usize },
    #[error("protobuf: {0}")]
    Protobuf(String),
}

/// Decodes a request body into series (labels as sent; validation is the storage's job).
pub fn decode(_body: &[u8], _limits: DecodeLimits) -> Result<Vec<TimeSeries>, DecodeError> {
    todo!("remote write helper")
}

/// Encodes series as a remote-write body (used by tests and the benchmark client).
pub fn encode(_series: &[TimeSeries]) -> Vec<u8> {
    todo!("remote write helper")
}
