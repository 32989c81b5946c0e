//! Prometheus text exposition format (0.0.4) and OpenMetrics 1.0 parser.
//! (Being written; signatures are the contract other modules code against.)

use day2_model::Labels;

/// Which exposition format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Prometheus,
    OpenMetrics,
}

impl Format {
    /// Chooses the parser from a `Content-Type` header (OpenMetrics when it says so).
    pub fn from_content_type(_ct: Option<&str>) -> Format {
        todo!("textparse helper")
    }
}

/// Metric type from `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    Unknown,
}

/// `# TYPE` / `# HELP` / `# UNIT` of one metric family.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricMetadata {
    pub family: String,
    pub kind: MetricType,
    pub help: String,
    pub unit: String,
}

/// One sample line: full label set (with `__name__`), optional timestamp in ms, value.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    pub labels: Labels,
    pub timestamp_ms: Option<i64>,
    pub value: f64,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Parsed {
    pub samples: Vec<ParsedSample>,
    pub metadata: Vec<MetricMetadata>,
}

/// A parse failure with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Parses a whole body; any malformed line fails the whole body (nothing partly ingested).
pub fn parse(_input: &[u8], _format: Format) -> Result<Parsed, ParseError> {
    todo!("textparse helper")
}
