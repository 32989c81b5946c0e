//! Prometheus alerting-rule annotations, rendered the way Prometheus does:
//! `$labels`, `$value`, `$externalLabels`, `$externalURL` are available, and
//! `query` is registered by the caller (here a fake).

use day2_gotmpl::{Env, FuncMap, Template, Value, funcs};

/// Prometheus prepends these definitions to every rule template.
const PREAMBLE: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}\
{{$externalURL := .ExternalURL}}{{$value := .Value}}";

fn sample(instance: &str, v: f64) -> Value {
    Value::map([
        (
            "Labels",
            Value::string_map([("__name__", "up"), ("instance", instance), ("job", "node")]),
        ),
        ("Value", Value::Float(v)),
    ])
}

fn prom_funcs() -> FuncMap {
    let mut f = funcs::prometheus("http://prom.example:9090");
    // The rules engine replaces the placeholder with a closure running PromQL.
    f.insert("query", |args| match args {
        [Value::String(q)] if q == "up" => {
            Ok(Value::list([sample("b:9100", 1.0), sample("a:9100", 0.0)]))
        }
        [Value::String(_)] => Ok(Value::list([])),
        _ => Err("query wants one string".into()),
    });
    f
}

fn render(src: &str, value: f64) -> Result<String, String> {
    let f = prom_funcs();
    let data = Value::map([
        (
            "Labels",
            Value::string_map([("instance", "host1:9100"), ("job", "node")]),
        ),
        ("ExternalLabels", Value::string_map([("cluster", "eu1")])),
        ("ExternalURL", Value::from("http://prom.example:9090")),
        ("Value", Value::Float(value)),
    ]);
    let t = Template::parse("__alert_InstanceDown", &format!("{PREAMBLE}{src}"), &f)
        .map_err(|e| e.to_string())?;
    t.execute(&data, &Env::new(f)).map_err(|e| e.to_string())
}

#[test]
fn documented_annotation_examples() {
    let ok = |src: &str, v: f64| render(src, v).unwrap();
    assert_eq!(
        ok(
            "{{ $labels.instance }} of job {{ $labels.job }} has been down for more than 5 minutes.",
            0.0
        ),
        "host1:9100 of job node has been down for more than 5 minutes."
    );
    assert_eq!(ok("{{ $value | humanizePercentage }}", 0.1234), "12.34%");
    assert_eq!(ok(r#"{{ printf "%.2f" $value }}"#, 1.23456), "1.23");
    assert_eq!(
        ok("{{ if gt $value 100.0 }}high{{ else }}low{{ end }}", 150.0),
        "high"
    );
    assert_eq!(
        ok("{{ if gt $value 100.0 }}high{{ else }}low{{ end }}", 50.0),
        "low"
    );
    assert_eq!(ok("{{ $value }}", 1e6), "1e+06");
    assert_eq!(ok("{{ humanize $value }}", 1234567.0), "1.235M");
    assert_eq!(
        ok("{{ $value | humanizeDuration }}", 90061.0),
        "1d 1h 1m 1s"
    );
    assert_eq!(
        ok("{{ $labels.missing }}|{{ $externalLabels.cluster }}", 0.0),
        "|eu1"
    );
    assert_eq!(
        ok("{{ $externalURL }}/alerts", 0.0),
        "http://prom.example:9090/alerts"
    );
    assert_eq!(
        ok(
            "{{ $labels.instance | stripPort }} {{ reReplaceAll \"(.*):.*\" \"$1\" $labels.instance }}",
            0.0
        ),
        "host1 host1"
    );
}

#[test]
fn query_results() {
    let ok = |src: &str| render(src, 0.0).unwrap();
    assert_eq!(
        ok(r#"{{ range query "up" }}{{ .Labels.instance }} {{ .Value }};{{ end }}"#),
        "b:9100 1;a:9100 0;"
    );
    assert_eq!(
        ok(
            r#"{{ range query "up" | sortByLabel "instance" }}{{ label "instance" . }}={{ value . }} {{ end }}"#
        ),
        "a:9100=0 b:9100=1 "
    );
    assert_eq!(ok(r#"{{ query "up" | first | value | humanize }}"#), "1");
    assert_eq!(
        ok(r#"{{ with query "nothing" }}{{ . | first | value }}{{ else }}no data{{ end }}"#),
        "no data"
    );
    let e = render(r#"{{ query "nothing" | first | value }}"#, 0.0).unwrap_err();
    assert!(
        e.contains("error calling first: first() called on vector with no elements"),
        "{e}"
    );
}

#[test]
fn unknown_function_is_a_parse_error_with_position() {
    let f = prom_funcs();
    let e =
        Template::parse("annotation summary", "value is {{ humanise $value }}", &f).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"annotation summary:1:13: function "humanise" not defined"#
    );
}

#[test]
fn query_placeholder_fails_clearly_without_an_engine() {
    let f = funcs::prometheus("");
    let t = Template::parse("a", r#"{{ query "up" }}"#, &f).unwrap();
    let e = t.execute(&Value::Null, &Env::new(f)).unwrap_err();
    assert!(e.to_string().contains("query is not available"), "{e}");
}

#[test]
fn parse_once_execute_many() {
    let f = prom_funcs();
    let t = Template::parse(
        "a",
        &format!("{PREAMBLE}{{{{ $labels.instance }}}}={{{{ $value }}}}"),
        &f,
    )
    .unwrap();
    let env = Env::new(f);
    for i in 0..100 {
        let data = Value::map([
            ("Labels", Value::string_map([("instance", format!("h{i}"))])),
            ("Value", Value::Int(i)),
        ]);
        assert_eq!(t.execute(&data, &env).unwrap(), format!("h{i}={i}"));
    }
}
