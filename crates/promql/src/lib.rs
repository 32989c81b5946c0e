//! PromQL: parsing by the `promql-parser` crate, evaluation by our own engine
//! reading through `day2_model::Queryable`, so the embedded TSDB and a remote
//! Prometheus-compatible backend can both serve queries.
//!
//! Every selector's data is fetched once for the whole query window before
//! evaluation starts; then every node is evaluated once over the whole step
//! grid (see `eval`).

mod aggregate;
mod binary;
mod eval;
mod functions;
mod gostr;
mod hash;
mod info;
pub mod memstore;
mod nativehist;
mod rewrite;
mod value;

use std::time::Duration;

use day2_model::Queryable;

pub use value::{QueryResult, RangeSeries, Value, VecSample};

/// Engine limits and defaults.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample.
    pub lookback_delta: Duration,
    pub timeout: Duration,
    /// Most samples a query may load or hold at once.
    pub max_samples: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta: Duration::from_secs(300),
            timeout: Duration::from_secs(120),
            max_samples: 50_000_000,
        }
    }
}

/// Why a query failed; maps to Prometheus's HTTP status codes and error types.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// 400 bad_data.
    #[error("{message}")]
    BadInput {
        message: String,
        position: Option<(usize, usize)>,
    },
    /// 422 execution.
    #[error("{0}")]
    Execution(String),
    /// 503 timeout.
    #[error("query timed out in expression evaluation")]
    Timeout,
    /// 422 execution.
    #[error("query processing would load too many samples into memory in query execution")]
    TooManySamples,
    /// 500 internal.
    #[error("storage: {0}")]
    Storage(String),
}

impl Error {
    /// Prometheus's `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::BadInput { .. } => "bad_data",
            Error::Execution(_) | Error::TooManySamples => "execution",
            Error::Timeout => "timeout",
            Error::Storage(_) => "internal",
        }
    }
}

/// Parses a query; `range` is what `step()` and `range()` stand for in its
/// duration expressions (zero outside a range query).
pub(crate) fn parse_in(
    query: &str,
    range: rewrite::QueryRange,
) -> Result<(promql_parser::parser::Expr, rewrite::Rewritten<'_>), Error> {
    let rw = rewrite::rewrite(query, range)?;
    let expr = promql_parser::parser::parse(&rw.text).map_err(|message| Error::BadInput {
        message: format!("invalid parameter \"query\": {message}"),
        position: None,
    })?;
    if gostr::marked(&rw.text) {
        gostr::check(&expr)?;
    }
    Ok((expr, rw))
}

/// Parses a query as the engine does (day2's rewrites of newer syntax, Go
/// string escapes), so a rule file is checked by the same parser that
/// evaluates it. Strings with bytes that are not UTF-8 hold `gostr` markers.
pub fn parse(query: &str) -> Result<promql_parser::parser::Expr, Error> {
    parse_in(query, rewrite::QueryRange::default()).map(|(e, _)| e)
}

/// The query engine.
pub struct Engine {
    opts: EngineOptions,
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Engine {
        Engine { opts }
    }

    /// Evaluates `query` at `t_ms`.
    pub fn instant(
        &self,
        db: &dyn Queryable,
        query: &str,
        t_ms: i64,
    ) -> Result<QueryResult, Error> {
        let (expr, rw) = parse_in(query, rewrite::QueryRange::default())?;
        // node addresses key the positions: taken where `expr` stays
        let at = eval::Positions::new(query, rewrite::call_positions(&expr, &rw));
        eval::run(db, &self.opts, &expr, t_ms, t_ms, 0, true, at)
    }

    /// Evaluates `query` at every `step_ms` from `start_ms` to `end_ms` inclusive.
    pub fn range(
        &self,
        db: &dyn Queryable,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult, Error> {
        if step_ms <= 0 {
            return Err(Error::BadInput {
                message: "zero or negative query resolution step widths are not accepted".into(),
                position: None,
            });
        }
        let (expr, rw) = parse_in(
            query,
            rewrite::QueryRange {
                step: step_ms,
                range: end_ms - start_ms,
            },
        )?;
        let at = eval::Positions::new(query, rewrite::call_positions(&expr, &rw));
        eval::run(db, &self.opts, &expr, start_ms, end_ms, step_ms, false, at)
    }
}

/// Parses one series selector (`up{job="x"}`) into matcher groups (several when
/// `or` is used inside the braces); anything else is a `BadInput`.
pub fn parse_selector(s: &str) -> Result<Vec<Vec<day2_model::Matcher>>, Error> {
    match parse(s)? {
        promql_parser::parser::Expr::VectorSelector(vs) => eval::selector_matchers(&vs),
        _ => Err(Error::BadInput {
            message: format!("{s:?} is not a series selector"),
            position: None,
        }),
    }
}

/// The matcher groups of every series selector in a query, in source order
/// (one entry per selector; several groups when `or` is used inside braces).
pub fn query_selectors(query: &str) -> Result<Vec<Vec<Vec<day2_model::Matcher>>>, Error> {
    let expr = parse(query)?;
    let mut out = Vec::new();
    let mut err = None;
    eval::visit_selectors(&expr, &mut |vs| match eval::selector_matchers(vs) {
        Ok(m) => out.push(m),
        Err(e) => err = Some(e),
    });
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Pretty-prints a query (`/api/v1/format_query`).
pub fn format_query(query: &str) -> Result<String, Error> {
    Ok(gostr::restore(&parse(query)?.prettify()))
}

/// The parsed expression as JSON (`/api/v1/parse_query`): its kind and its canonical text.
pub fn parse_query_json(query: &str) -> Result<serde_json::Value, Error> {
    let expr = parse(query)?;
    let kind = match &expr {
        promql_parser::parser::Expr::Aggregate(_) => "aggregation",
        promql_parser::parser::Expr::Unary(_) => "unaryExpr",
        promql_parser::parser::Expr::Binary(_) => "binaryExpr",
        promql_parser::parser::Expr::Paren(_) => "parenExpr",
        promql_parser::parser::Expr::Subquery(_) => "subquery",
        promql_parser::parser::Expr::NumberLiteral(_) => "numberLiteral",
        promql_parser::parser::Expr::StringLiteral(_) => "stringLiteral",
        promql_parser::parser::Expr::VectorSelector(_) => "vectorSelector",
        promql_parser::parser::Expr::MatrixSelector(_) => "matrixSelector",
        promql_parser::parser::Expr::Call(_) => "call",
        promql_parser::parser::Expr::Extension(_) => "extension",
    };
    Ok(serde_json::json!({"type": kind, "expr": gostr::restore(&expr.to_string())}))
}
