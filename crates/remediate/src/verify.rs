//! Verification against the live engine: `verify.expr` is evaluated as an
//! instant PromQL query over the storage. It holds when the result is a
//! non-empty vector (as an alerting rule fires), or a non-zero scalar.

use crate::driver::{BoxFuture, Verifier};
use day2_model::Queryable;
use day2_promql::{Engine, Value};
use jiff::Timestamp;
use std::sync::Arc;

pub struct PromqlVerifier {
    pub engine: Arc<Engine>,
    pub db: Arc<dyn Queryable>,
}

/// Does a query result count as "the condition holds"?
pub fn holds(v: &Value) -> Result<bool, String> {
    match v {
        Value::Vector(_, samples) => Ok(!samples.is_empty()),
        Value::Matrix(series) => Ok(!series.is_empty()),
        Value::Scalar(_, x) => Ok(*x != 0.0 && !x.is_nan()),
        Value::String(..) => Err("the expression returns a string, not a condition".into()),
    }
}

impl PromqlVerifier {
    /// Evaluates synchronously (the engine does CPU work; call off the async threads).
    pub fn eval(&self, expr: &str, at: Timestamp) -> Result<bool, String> {
        let r = self
            .engine
            .instant(self.db.as_ref(), expr, at.as_millisecond())
            .map_err(|e| format!("{expr}: {e}"))?;
        holds(&r.value)
    }
}

impl Verifier for PromqlVerifier {
    fn holds<'a>(&'a self, expr: &'a str, at: Timestamp) -> BoxFuture<'a, Result<bool, String>> {
        let me = PromqlVerifier {
            engine: self.engine.clone(),
            db: self.db.clone(),
        };
        let expr = expr.to_string();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || me.eval(&expr, at))
                .await
                .map_err(|e| format!("verification task failed: {e}"))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use day2_model::Labels;
    use day2_promql::{EngineOptions, memstore::MemStore};

    #[test]
    fn vectors_hold_when_non_empty() {
        let mut m = MemStore::new();
        m.add(
            Labels::from_pairs([("__name__", "error_rate"), ("job", "web")]),
            1_000,
            0.5,
        );
        let v = PromqlVerifier {
            engine: Arc::new(Engine::new(EngineOptions::default())),
            db: Arc::new(m),
        };
        let at = Timestamp::from_millisecond(2_000).unwrap();
        assert!(v.eval(r#"error_rate{job="web"} > 0.1"#, at).unwrap());
        assert!(!v.eval(r#"error_rate{job="web"} < 0.1"#, at).unwrap());
        assert!(!v.eval(r#"error_rate{job="other"}"#, at).unwrap());
        assert!(v.eval("1", at).unwrap());
        assert!(!v.eval("0", at).unwrap());
        assert!(v.eval(r#""x""#, at).is_err());
        let e = v.eval("rate(", at).unwrap_err();
        assert!(e.starts_with("rate(:"), "{e}");
    }
}
