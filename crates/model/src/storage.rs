//! The seams between producers, the storage engine and readers.
//!
//! `ingest` writes through [`Appender`]; `promql` and the read API read through
//! [`Queryable`]. The embedded TSDB implements both; a remote
//! Prometheus-compatible backend can implement them too.

use crate::{HistogramSample, Labels, Matcher, Sample};

/// One series and its samples, in time order, as written by a producer. A
/// series may hold float and native-histogram samples (one kind per
/// timestamp, as in Prometheus); each list is in time order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TimeSeries {
    pub labels: Labels,
    pub samples: Vec<Sample>,
    pub histograms: Vec<HistogramSample>,
}

impl TimeSeries {
    /// A series of float samples.
    pub fn new(labels: Labels, samples: Vec<Sample>) -> Self {
        TimeSeries {
            labels,
            samples,
            histograms: Vec::new(),
        }
    }

    /// Float and histogram samples together.
    pub fn len(&self) -> usize {
        self.samples.len() + self.histograms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty() && self.histograms.is_empty()
    }
}

/// One series and its samples as read back.
pub type Series = TimeSeries;

/// What happened to a batch that was (at least partly) written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Samples written durably (in the WAL) and visible to readers.
    pub accepted: usize,
    /// Samples with the same timestamp and value as an existing one (ignored).
    pub duplicates: usize,
    /// Samples at an existing timestamp but with a different value (rejected).
    pub conflicts: usize,
    /// Samples older than the out-of-order window (rejected).
    pub too_old: usize,
    /// Series rejected because their labels are invalid.
    pub invalid_series: usize,
    /// First rejection, for the error message returned to the client.
    pub first_error: Option<String>,
}

impl AppendOutcome {
    pub fn rejected(&self) -> usize {
        self.conflicts + self.too_old + self.invalid_series
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The write could not be made durable; nothing in the batch is acknowledged.
    #[error("storage write failed: {0}")]
    Storage(String),
    /// The storage is shutting down or otherwise not accepting writes.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// Durable writer of samples. Returns only after the batch is in the WAL.
pub trait Appender: Send + Sync {
    fn append(&self, batch: Vec<TimeSeries>) -> Result<AppendOutcome, AppendError>;
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("bad query: {0}")]
    BadInput(String),
    #[error("storage read failed: {0}")]
    Storage(String),
}

/// Read access to stored series. Time bounds are inclusive milliseconds.
pub trait Queryable: Send + Sync {
    /// Series matching all matchers that have samples in `[mint, maxt]`, with those samples.
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64)
    -> Result<Vec<Series>, QueryError>;

    /// Label sets of matching series (no samples). Empty `matchers` means all series.
    fn series(&self, matchers: &[Matcher], mint: i64, maxt: i64)
    -> Result<Vec<Labels>, QueryError>;

    /// Sorted label names of series matching the matchers (all series when empty).
    /// The default derives them from [`Queryable::series`].
    fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        let mut names = std::collections::BTreeSet::new();
        for l in self.series(matchers, mint, maxt)? {
            names.extend(l.iter().map(|x| x.name.clone()));
        }
        Ok(names.into_iter().collect())
    }

    /// Sorted values of label `name` over matching series (default: from [`Queryable::series`]).
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        let mut values = std::collections::BTreeSet::new();
        for l in self.series(matchers, mint, maxt)? {
            if let Some(v) = l.get(name) {
                values.insert(v.to_string());
            }
        }
        Ok(values.into_iter().collect())
    }
}
