//! Alert labels and annotations in Go-template syntax, as Prometheus expands
//! them: `$labels`, `$value`, `$externalLabels`, `$externalURL` and the same
//! fields on dot, Prometheus's functions, and `query` running PromQL at the
//! evaluation time. Templates are parsed once when rules load; an unknown
//! function or variable is a load error, never an empty string.

use std::sync::Arc;

use day2_gotmpl::{Env as GoEnv, FuncMap, Template, Value};
use day2_model::Labels;
use day2_promql::Engine;

use crate::group::EvalCtx;

/// Variables Prometheus predefines in alert templates.
const VARS: &[&str] = &["labels", "externalLabels", "externalURL", "value"];

/// A parsed label or annotation template (plain text skips the engine).
#[derive(Debug, Clone)]
pub struct Compiled {
    name: String,
    plain: Option<String>,
    tmpl: Option<Arc<Template>>,
}

/// What one alert's templates see.
pub struct TemplateData<'a> {
    pub labels: &'a Labels,
    pub value: f64,
    pub external_labels: &'a Labels,
    pub external_url: &'a str,
}

/// Functions for one evaluation (with `query` bound to its time and storage).
pub struct Env {
    go: GoEnv,
    pub external_labels: Labels,
    pub external_url: String,
}

fn base_funcs() -> FuncMap {
    day2_gotmpl::funcs::prometheus("")
}

impl Env {
    /// The functions of an evaluation at `ts` over `ctx`'s storage.
    pub fn new(ctx: &EvalCtx, ts: i64) -> Env {
        let engine: Arc<Engine> = ctx.engine.clone();
        let db = ctx.db.clone();
        let funcs = day2_gotmpl::funcs::prometheus(&ctx.external_url).with("query", move |args| {
            let q = args
                .first()
                .and_then(Value::as_str)
                .ok_or("query needs a PromQL string")?;
            let res = engine
                .instant(db.as_ref(), q, ts)
                .map_err(|e| e.to_string())?;
            Ok(match res.value {
                day2_promql::Value::Vector(_, v) => {
                    Value::list(v.iter().map(|s| day2_gotmpl::funcs::sample(&s.labels, s.v)))
                }
                day2_promql::Value::Scalar(_, v) => {
                    Value::list([day2_gotmpl::funcs::sample(&Labels::empty(), v)])
                }
                _ => return Err("query: expression must give a vector or scalar".into()),
            })
        });
        Env {
            go: GoEnv::new(funcs).with_methods(day2_gotmpl::methods::time()),
            external_labels: ctx.external_labels.clone(),
            external_url: ctx.external_url.clone(),
        }
    }

    /// Functions without storage (`query` fails), for tests.
    pub fn empty() -> Env {
        Env {
            go: GoEnv::prometheus(""),
            external_labels: Labels::empty(),
            external_url: String::new(),
        }
    }
}

/// Parses a template; `name` (e.g. `annotation summary`) is used in errors.
pub fn compile(name: &str, src: &str) -> Result<Compiled, String> {
    if !src.contains("{{") {
        return Ok(Compiled {
            name: name.to_string(),
            plain: Some(src.to_string()),
            tmpl: None,
        });
    }
    let mut t = Template::new(name, &base_funcs());
    t.declare_vars(VARS);
    t.add(name, src).map_err(|e| e.to_string())?;
    Ok(Compiled {
        name: name.to_string(),
        plain: None,
        tmpl: Some(Arc::new(t)),
    })
}

/// Checks that a template parses.
pub fn check(name: &str, src: &str) -> Result<(), String> {
    compile(name, src).map(|_| ())
}

impl Compiled {
    /// Expands the template; an execution error is rendered into the text,
    /// as Prometheus does, so the alert still goes out.
    pub fn render(&self, d: &TemplateData, env: &Env) -> String {
        let Some(t) = &self.tmpl else {
            return self.plain.clone().unwrap_or_default();
        };
        let labels = Value::from(d.labels);
        let ext = Value::from(d.external_labels);
        let data = Value::map([
            ("Labels", labels.clone()),
            ("ExternalLabels", ext.clone()),
            ("ExternalURL", Value::from(d.external_url)),
            ("Value", Value::Float(d.value)),
        ]);
        let vars = [
            ("labels", labels),
            ("externalLabels", ext),
            ("externalURL", Value::from(d.external_url)),
            ("value", Value::Float(d.value)),
        ];
        match t.execute_with_vars(&self.name, &data, &env.go, &vars) {
            Ok(s) => s,
            Err(e) => format!("<error expanding template: {e}>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str, value: f64) -> String {
        let labels = Labels::from_pairs([("instance", "db-1:9100"), ("job", "node")]);
        let ext = Labels::from_pairs([("cluster", "eu")]);
        compile("annotation t", src).unwrap().render(
            &TemplateData {
                labels: &labels,
                value,
                external_labels: &ext,
                external_url: "http://day2:9090",
            },
            &Env::empty(),
        )
    }

    #[test]
    fn prometheus_variables_and_functions() {
        assert_eq!(
            render("{{ $labels.instance }} of {{ $labels.job }}", 1.0),
            "db-1:9100 of node"
        );
        assert_eq!(
            render("{{ $value | humanizePercentage }}", 0.1234),
            "12.34%"
        );
        assert_eq!(render("{{ printf \"%.2f\" $value }}", 1.23456), "1.23");
        assert_eq!(
            render("{{ if gt $value 100.0 }}high{{ else }}low{{ end }}", 150.0),
            "high"
        );
        assert_eq!(
            render("{{ $externalLabels.cluster }} {{ .ExternalURL }}", 0.0),
            "eu http://day2:9090"
        );
        assert_eq!(render("{{ $labels.missing }}", 0.0), "");
        assert_eq!(render("plain text", 0.0), "plain text");
    }

    #[test]
    fn unknown_function_and_variable_fail_to_compile_with_position() {
        let e = compile("annotation summary", "x {{ humanise $value }}").unwrap_err();
        assert!(e.contains("annotation summary:1:"), "{e}");
        assert!(e.contains("humanise"), "{e}");
        let e = compile("annotation summary", "{{ $label.foo }}").unwrap_err();
        assert!(e.contains("label"), "{e}");
    }

    struct NoWrites;
    impl day2_model::Appender for NoWrites {
        fn append(
            &self,
            _: Vec<day2_model::TimeSeries>,
        ) -> Result<day2_model::AppendOutcome, day2_model::AppendError> {
            Ok(Default::default())
        }
    }

    #[test]
    fn query_runs_promql_at_the_evaluation_time() {
        let mut st = day2_promql::memstore::MemStore::new();
        for (inst, v) in [("a", 1.0), ("b", 0.0)] {
            st.add(
                Labels::from_pairs([("__name__", "up"), ("instance", inst)]),
                50_000,
                v,
            );
        }
        let ctx = EvalCtx {
            engine: Arc::new(Engine::new(Default::default())),
            db: Arc::new(st),
            appender: Arc::new(NoWrites),
            external_labels: Labels::empty(),
            external_url: String::new(),
        };
        let t = compile(
            "annotation t",
            "{{ range query \"up == 0\" }}{{ .Labels.instance }} {{ .Value }}{{ end }}|{{ query \"sum(up)\" | first | value }}",
        )
        .unwrap();
        let labels = Labels::empty();
        let data = TemplateData {
            labels: &labels,
            value: 0.0,
            external_labels: &labels,
            external_url: "",
        };
        assert_eq!(t.render(&data, &Env::new(&ctx, 60_000)), "b 0|1");
        // before the samples exist, nothing is found
        let early = t.render(&data, &Env::new(&ctx, 10_000));
        assert!(early.starts_with("<error expanding template:"), "{early}");
        assert!(
            early.contains("first() called on vector with no elements"),
            "{early}"
        );
    }

    #[test]
    fn query_without_storage_renders_the_error() {
        let out = render("{{ range query \"up\" }}{{ .Value }}{{ end }}", 0.0);
        assert!(out.starts_with("<error expanding template:"), "{out}");
    }
}
