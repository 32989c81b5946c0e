//! No-data alerts (`absent_for`), a day2 extension: "this service stopped
//! reporting" is the most common real incident, and `absent()` in Prometheus
//! only covers a whole selector, not each series that used to be there.
//!
//! An alerting rule with `absent_for: D` (and optionally `absent_window: W`,
//! default 24h) fires
//! - for every series the expression returned within the last W but not
//!   within the last D (labels of the vanished series), and
//! - once, when the expression returned nothing at all for D and no series is
//!   alerted by name (labels from the equality matchers when the expression is
//!   a plain selector, as `absent()`).
//!
//! It is a rewrite into PromQL (range selectors for a plain selector, else
//! subqueries at the group's interval: then D counts from the last step at
//! which the expression returned the series, plus the lookback delta), so it
//! needs no state of its own and survives restarts. After W without data the
//! per-series alert resolves, but the whole-expression alert keeps firing.

use std::time::Duration;

use promql_parser::parser::Expr;

/// How long vanished series are remembered when `absent_window` is not set.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The PromQL that implements `absent_for` for `expr`.
pub fn rewrite(
    expr: &str,
    absent_for: Duration,
    window: Duration,
    step: Duration,
) -> Result<String, String> {
    let parsed = day2_promql::parse(expr).map_err(|e| e.to_string())?;
    let d = day2_model::format_duration(absent_for);
    let w = day2_model::format_duration(window);
    let s = day2_model::format_duration(step.max(Duration::from_secs(1)));
    Ok(match parsed {
        // a plain selector reads raw samples: "no sample for D" exactly
        Expr::VectorSelector(_) => format!(
            "(last_over_time({expr}[{w}]) unless last_over_time({expr}[{d}])) or on() absent_over_time({expr}[{d}])"
        ),
        // anything else is sampled at the step (plus the lookback delta)
        _ => format!(
            "(last_over_time(({expr})[{w}:{s}]) unless last_over_time(({expr})[{d}:{s}])) or on() absent(last_over_time(({expr})[{d}:{s}]))"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use day2_model::Labels;
    use day2_promql::memstore::MemStore;
    use day2_promql::{Engine, EngineOptions, Value};

    fn run(store: &MemStore, q: &str, t: i64) -> Vec<Labels> {
        let e = Engine::new(EngineOptions::default());
        match e.instant(store, q, t).unwrap().value {
            Value::Vector(_, v) => {
                let mut l: Vec<Labels> = v.into_iter().map(|s| s.labels).collect();
                l.sort();
                l
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fires_per_vanished_series_and_for_total_silence() {
        let mut st = MemStore::new();
        let a = Labels::from_pairs([("__name__", "up"), ("job", "api"), ("instance", "a")]);
        let b = Labels::from_pairs([("__name__", "up"), ("job", "api"), ("instance", "b")]);
        // a reports for 30 minutes, b for 10 minutes
        for m in 0..30 {
            st.add(a.clone(), m * 60_000, 1.0);
            if m < 10 {
                st.add(b.clone(), m * 60_000, 1.0);
            }
        }
        let q = rewrite(
            "up{job=\"api\"}",
            Duration::from_secs(300),
            Duration::from_secs(3600),
            Duration::from_secs(60),
        )
        .unwrap();
        // at 20m: b has been silent for 11m, a still reports
        let got = run(&st, &q, 20 * 60_000);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].get("instance"), Some("b"));
        // at 29m both report or b is gone: still only b
        assert_eq!(run(&st, &q, 29 * 60_000).len(), 1);
        // at 40m both silent for > 5m: both, by series (no extra whole-selector alert)
        let got = run(&st, &q, 40 * 60_000);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got.iter().all(|l| l.get("instance").is_some()), "{got:?}");
        // at 3h everything is gone from the window: one alert for the selector
        let got = run(&st, &q, 3 * 3_600_000);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].get("job"), Some("api"));
        // while all report, nothing
        assert!(run(&st, &q, 5 * 60_000).is_empty());
    }
}
