//! Pure types shared across day2: labels, samples (floats and native
//! histograms), matchers, durations and the
//! storage traits (`Appender`, `Queryable`) that decouple producers and readers
//! from the storage engine. This crate does no I/O and has no async.

pub mod duration;
pub mod gofloat;
pub mod histogram;
pub mod labels;
pub mod matcher;
pub mod percent;
pub mod sample;
pub mod storage;

pub use duration::{DurationError, format_duration, parse_duration};
pub use histogram::{CounterResetHint, FloatHistogram, HistogramError, Span};
pub use labels::{Label, Labels, LabelsBuilder, METRIC_NAME};
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use percent::parse_percent;
pub use sample::{HistogramSample, STALE_NAN, Sample, is_stale_nan};
pub use storage::{
    AppendError, AppendOutcome, Appender, QueryError, Queryable, Series, TimeSeries,
};
