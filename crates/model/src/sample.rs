//! Samples and the staleness marker.

use std::sync::Arc;

use crate::histogram::FloatHistogram;

/// Bit pattern Prometheus uses to mark a series stale (a signalling NaN that
/// arithmetic never produces, so it cannot collide with a real NaN value).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as an `f64`. Compare with [`is_stale_nan`], never `==`.
pub const STALE_NAN: f64 = f64::from_bits(STALE_NAN_BITS);

/// True when `v` is exactly the staleness marker (not any other NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One float sample: milliseconds since the Unix epoch and a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub t: i64,
    pub v: f64,
}

impl Sample {
    pub fn new(t: i64, v: f64) -> Self {
        Sample { t, v }
    }

    /// Equality that treats two NaNs with the same bits as equal (needed to
    /// recognise duplicate writes of NaN or stale markers).
    pub fn bitwise_eq(&self, other: &Sample) -> bool {
        self.t == other.t && self.v.to_bits() == other.v.to_bits()
    }
}

/// One native-histogram sample: milliseconds since the Unix epoch and a
/// histogram (shared: readers hand the same histogram to every step that sees it).
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSample {
    pub t: i64,
    pub h: Arc<FloatHistogram>,
}

impl HistogramSample {
    pub fn new(t: i64, h: FloatHistogram) -> Self {
        HistogramSample { t, h: Arc::new(h) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_marker_is_distinct_from_plain_nan() {
        assert!(is_stale_nan(STALE_NAN));
        assert!(!is_stale_nan(f64::NAN));
        assert!(!is_stale_nan(1.0));
        assert!(STALE_NAN.is_nan());
    }
}
