//! Engine tests: each feature against the output Go's text/template gives.

use serde_json::json;

use crate::{Env, Error, FuncMap, MissingKey, Template, Value, funcs, methods};

fn render_env(src: &str, data: serde_json::Value, env: &Env) -> Result<String, Error> {
    let t = Template::parse("t", src, &env.funcs)?;
    t.execute(&Value::from(data), env)
}

fn render(src: &str, data: serde_json::Value) -> String {
    match render_env(src, data, &Env::default()) {
        Ok(s) => s,
        Err(e) => panic!("{src:?}: {e}"),
    }
}

fn fails(src: &str, data: serde_json::Value) -> String {
    match render_env(src, data, &Env::default()) {
        Ok(s) => panic!("{src:?} should fail, gave {s:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn text_dot_and_fields() {
    assert_eq!(render("hello", json!(null)), "hello");
    assert_eq!(render("{{.}}", json!("x")), "x");
    assert_eq!(render("{{.}}", json!(1.5)), "1.5");
    assert_eq!(render("{{.}}", json!(null)), "<no value>");
    assert_eq!(
        render("{{.a.b}}-{{ .a.c }}", json!({"a": {"b": 1, "c": true}})),
        "1-true"
    );
    assert_eq!(render("{{.}}", json!([1, "a", [2]])), "[1 a [2]]");
    assert_eq!(
        render("{{.}}", json!({"b": 1, "a": {"c": "d"}})),
        "map[a:map[c:d] b:1]"
    );
}

#[test]
fn missing_keys() {
    // A map of strings reads as Go's map[string]string: missing is "".
    assert_eq!(render("[{{.nope}}]", json!({"a": "x"})), "[]");
    assert_eq!(render("[{{.nope}}]", json!({})), "[]");
    // Mixed maps are map[string]interface{}: missing prints <no value>.
    assert_eq!(render("[{{.nope}}]", json!({"a": 1})), "[<no value>]");
    let env = Env::default().with_missing_key(MissingKey::NoValue);
    assert_eq!(
        render_env("[{{.nope}}]", json!({"a": "x"}), &env).unwrap(),
        "[<no value>]"
    );
    let env = Env::default().with_missing_key(MissingKey::Error);
    let e = render_env("{{.nope}}", json!({"a": "x"}), &env).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"t:1:3: executing "t" at <.nope>: map has no entry for key "nope""#
    );
}

#[test]
fn field_errors_say_where_and_what() {
    assert_eq!(
        fails("ab\n  {{ .a.b }}", json!({"a": "str"})),
        r#"t:2:6: executing "t" at <.a.b>: can't evaluate field b in type string"#
    );
    assert_eq!(
        fails("{{ .a.b.c }}", json!({"a": {"x": 1}})),
        r#"t:1:4: executing "t" at <.a.b.c>: nil pointer evaluating interface {}.c"#
    );
}

#[test]
fn variables_and_scoping() {
    assert_eq!(render("{{$x := 1}}{{$x}}", json!(null)), "1");
    assert_eq!(render("{{$x := 1}}{{$x = 2}}{{$x}}", json!(null)), "2");
    assert_eq!(render("{{$}}", json!("root")), "root");
    assert_eq!(
        render("{{with .a}}{{$.b}}{{end}}", json!({"a": 1, "b": 2})),
        "2"
    );
    // Assignment inside range persists outside (Go 1.11+).
    assert_eq!(
        render(
            "{{$n := 0}}{{range .}}{{$n = .}}{{end}}{{$n}}",
            json!([1, 2, 3])
        ),
        "3"
    );
    // A declaration inside a block ends with the block.
    let e =
        Template::parse("t", "{{if true}}{{$y := 1}}{{end}}{{$y}}", &FuncMap::new()).unwrap_err();
    assert_eq!(e.to_string(), r#"t:1:32: undefined variable "$y""#);
    let e = Template::parse("t", "{{$z = 1}}", &FuncMap::new()).unwrap_err();
    assert_eq!(e.to_string(), r#"t:1:3: undefined variable "$z""#);
    // Variables in the if pipeline are visible in else.
    assert_eq!(
        render("{{if $v := .}}a{{else}}{{$v}}{{end}}", json!(0)),
        "0"
    );
    assert_eq!(
        render("{{$x := .a}}{{$x.b}}", json!({"a": {"b": "c"}})),
        "c"
    );
}

#[test]
fn pipelines_and_parens() {
    assert_eq!(render(r#"{{"abc" | len}}"#, json!(null)), "3");
    assert_eq!(
        render(r#"{{"a" | printf "%s-%s" "b"}}"#, json!(null)),
        "b-a"
    );
}

#[test]
fn parens_with_fields() {
    let d = json!({"m": {"k": {"v": 7}}});
    assert_eq!(render(r#"{{(index .m "k").v}}"#, d.clone()), "7");
    assert_eq!(render("{{ len (print 1 2) }}", d), "3");
}

#[test]
fn literals() {
    assert_eq!(
        render(
            r#"{{"a\tb"}}|{{`raw\n`}}|{{'a'}}|{{0x10}}|{{1e3}}|{{-2.5}}|{{true}}|{{1_000}}"#,
            json!(null)
        ),
        "a\tb|raw\\n|97|16|1000|-2.5|true|1000"
    );
    assert_eq!(render(r#"{{print nil}}"#, json!(null)), "<nil>");
}

#[test]
fn if_else_chains() {
    let t = "{{if eq . 1}}one{{else if eq . 2}}two{{else}}many{{end}}";
    assert_eq!(render(t, json!(1)), "one");
    assert_eq!(render(t, json!(2)), "two");
    assert_eq!(render(t, json!(3)), "many");
    for (v, want) in [
        (json!(""), "F"),
        (json!("x"), "T"),
        (json!(0), "F"),
        (json!(0.0), "F"),
        (json!([]), "F"),
        (json!({}), "F"),
        (json!(null), "F"),
        (json!(false), "F"),
        (json!([0]), "T"),
    ] {
        assert_eq!(render("{{if .}}T{{else}}F{{end}}", v.clone()), want, "{v}");
    }
}

#[test]
fn with_else_with() {
    let t = "{{with .a}}a={{.}}{{else with .b}}b={{.}}{{else}}none{{end}}";
    assert_eq!(render(t, json!({"a": 1})), "a=1");
    assert_eq!(render(t, json!({"a": 0, "b": 2})), "b=2");
    assert_eq!(render(t, json!({})), "none");
}

#[test]
fn range_forms() {
    assert_eq!(render("{{range .}}[{{.}}]{{end}}", json!([1, 2])), "[1][2]");
    assert_eq!(
        render(
            "{{range $i, $e := .}}{{$i}}={{$e}} {{end}}",
            json!(["a", "b"])
        ),
        "0=a 1=b "
    );
    assert_eq!(
        render("{{range $e := .}}{{$e}}{{end}}", json!(["a", "b"])),
        "ab"
    );
    // Maps iterate in key order.
    assert_eq!(
        render(
            "{{range $k, $v := .}}{{$k}}:{{$v}},{{end}}",
            json!({"b": 2, "a": 1, "c": 3})
        ),
        "a:1,b:2,c:3,"
    );
    assert_eq!(
        render("{{range .}}{{.}}{{end}}", json!({"b": 2, "a": 1})),
        "12"
    );
    assert_eq!(
        render("{{range .}}x{{else}}empty{{end}}", json!([])),
        "empty"
    );
    assert_eq!(
        render("{{range .}}x{{else}}empty{{end}}", json!(null)),
        "empty"
    );
    assert_eq!(render("{{range 3}}{{.}}{{end}}", json!(null)), "012");
    assert_eq!(
        render(
            "{{range .}}{{if eq . 3}}{{break}}{{end}}{{if eq . 1}}{{continue}}{{end}}{{.}}{{end}}",
            json!([0, 1, 2, 3, 4])
        ),
        "02"
    );
    // break inside a nested if inside range leaves only the range.
    assert_eq!(
        render(
            "{{range .}}{{range .}}{{if .}}{{break}}{{end}}x{{end}}-{{end}}",
            json!([[0, 1, 0], [1]])
        ),
        "x--"
    );
    assert!(fails("{{range .}}{{end}}", json!("str")).contains("range can't iterate over str"));
    let e = Template::parse("t", "{{break}}", &FuncMap::new()).unwrap_err();
    assert_eq!(e.to_string(), "t:1:3: {{break}} outside {{range}}");
}

#[test]
fn trim_markers() {
    assert_eq!(render("a  \n {{- 1 -}} \n  b", json!(null)), "a1b");
    assert_eq!(render("a {{- 1}} b", json!(null)), "a1 b");
    assert_eq!(render("a {{1 -}} b", json!(null)), "a 1b");
    assert_eq!(render("{{- /* c */ -}}  x", json!(null)), "x");
    assert_eq!(render("a {{/* c */}} b", json!(null)), "a  b");
    assert_eq!(render("{{-3}}", json!(null)), "-3");
    assert_eq!(
        render("{{ range . -}}\n  <{{ . }}>\n{{ end -}}", json!([1, 2])),
        "<1>\n<2>\n"
    );
    // Multi-line actions are allowed.
    assert_eq!(render("{{ print\n 1\n 2 }}", json!(null)), "1 2");
}

#[test]
fn define_template_block() {
    let src = r#"{{define "x"}}[{{.}}]{{end}}{{template "x" .a}}{{template "x"}}{{block "b" .a}}<{{.}}>{{end}}"#;
    assert_eq!(render(src, json!({"a": 1})), "[1][<no value>]<1>");
    // $ inside a called template is its dot.
    assert_eq!(
        render(
            r#"{{define "y"}}{{$}}{{end}}{{template "y" "in"}}"#,
            json!("out")
        ),
        "in"
    );
}

#[test]
fn sets_override_defines() {
    let f = FuncMap::new();
    let mut t = Template::new("main", &f);
    t.add(
        "default.tmpl",
        r#"{{define "greet"}}hello{{end}}{{define "keep"}}kept{{end}}"#,
    )
    .unwrap();
    t.add(
        "user.tmpl",
        r#"{{define "greet"}}hi {{.}}{{end}}{{define "keep"}} {{end}}"#,
    )
    .unwrap();
    let env = Env::default();
    assert_eq!(
        t.execute_template("greet", &"bob".into(), &env).unwrap(),
        "hi bob"
    );
    // A whitespace-only body does not replace an existing definition.
    assert_eq!(
        t.execute_template("keep", &Value::Null, &env).unwrap(),
        "kept"
    );
    assert!(t.has("default.tmpl") && t.has("user.tmpl"));
    assert_eq!(
        t.execute_template("nope", &Value::Null, &env).unwrap_err(),
        Error::NoTemplate("nope".into())
    );
    // A failed add leaves the set unchanged.
    assert!(t.add("bad.tmpl", r#"{{define "greet"}}{{.x"#).is_err());
    assert_eq!(
        t.execute_template("greet", &"bob".into(), &env).unwrap(),
        "hi bob"
    );
}

#[test]
fn recursion_is_bounded() {
    let src = r#"{{define "r"}}{{template "r" .}}{{end}}{{template "r" .}}"#;
    let e = fails(src, json!(null));
    assert!(e.contains("exceeded maximum template depth (100)"), "{e}");
    // Bounded recursion works.
    let src = r#"{{define "c"}}{{if .}}{{len .}}{{template "c" slice . 1}}{{end}}{{end}}{{template "c" .}}"#;
    assert_eq!(render(src, json!([1, 2, 3])), "321");
}

#[test]
fn builtins_in_templates() {
    assert_eq!(
        render(
            r#"{{and 1 0 "x"}}|{{and 1 2}}|{{or 0 "" "y"}}|{{or 0 ""}}|{{not 0}}"#,
            json!(null)
        ),
        "0|2|y||true"
    );
    // and/or short-circuit: the failing call is never made.
    assert_eq!(
        render(r#"{{or 1 (index . 5)}}|{{and 0 (index . 5)}}"#, json!([])),
        "1|0"
    );
    assert_eq!(render(r#"{{index . "a" 1}}"#, json!({"a": [5, 6]})), "6");
    assert_eq!(
        render(r#"{{slice "hello" 1 3}}|{{slice . 1}}"#, json!([1, 2, 3])),
        "el|[2 3]"
    );
    assert_eq!(
        render(r#"{{print "a" 1 2 "b"}}|{{println 1 "x"}}"#, json!(null)),
        "a1 2b|1 x\n"
    );
    assert_eq!(
        render(r#"{{html "<a href='x'>&</a>"}}"#, json!(null)),
        "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
    );
    assert_eq!(
        render(r#"{{js "it's <b>"}}"#, json!(null)),
        "it\\'s \\u003Cb\\u003E"
    );
    assert_eq!(render(r#"{{urlquery "a b&c"}}"#, json!(null)), "a+b%26c");
    assert_eq!(
        render(
            r#"{{eq .s "a" "b" "c"}}|{{ne 1 2}}|{{lt 1.5 2}}|{{ge "b" "a"}}"#,
            json!({"s": "c"})
        ),
        "true|true|true|true"
    );
    assert_eq!(
        render(
            r#"{{if gt .v 100.0}}high{{else}}low{{end}}"#,
            json!({"v": 150.5})
        ),
        "high"
    );
    // Mixed int/float compare numerically (Go would report incompatible types).
    assert_eq!(
        render(
            r#"{{if gt .v 100}}high{{else}}low{{end}}"#,
            json!({"v": 99.5})
        ),
        "low"
    );
    assert!(
        fails(r#"{{eq "1" 1}}"#, json!(null))
            .contains("error calling eq: incompatible types for comparison")
    );
    assert!(fails(r#"{{len 3}}"#, json!(null)).contains("error calling len: len of type int"));
    assert!(fails(r#"{{index . 3}}"#, json!([1])).contains("index out of range: 3"));
    assert!(
        fails(r#"{{not 1 2}}"#, json!(null)).contains("wrong number of args for not: want 1 got 2")
    );
}

#[test]
fn printf_in_templates() {
    assert_eq!(render(r#"{{printf "%.2f" .}}"#, json!(1.23456)), "1.23");
    assert_eq!(
        render(
            r#"{{printf "%5.1f|%-10s|%d%%|%q|%v|%x" 2.25 "ab" 50 "q" . 255}}"#,
            json!([1, 2])
        ),
        "  2.2|ab        |50%|\"q\"|[1 2]|ff"
    );
    assert_eq!(render(r#"{{. | printf "%g"}}"#, json!(1e21)), "1e+21");
    assert_eq!(
        render(r#"{{printf "%e" .}}"#, json!(123456.789)),
        "1.234568e+05"
    );
}

#[test]
fn parse_errors_have_positions() {
    let f = FuncMap::new();
    let cases = [
        (
            "{{ humanise . }}",
            r#"1:4: function "humanise" not defined"#,
        ),
        (
            "{{if .}}x",
            "1:10: unexpected EOF: missing {{end}} for {{if}}",
        ),
        ("x{{end}}", "1:4: unexpected {{end}}"),
        ("{{else}}", "1:3: unexpected {{else}}"),
        ("{{.a", "1:1: unclosed action"),
        ("{{/* x", "1:1: unclosed comment"),
        ("{{nil}}", "1:3: nil is not a command"),
        (
            "{{ 1 | 2 }}",
            "1:8: non executable command in pipeline stage 2",
        ),
        ("{{ 09 }}", r#"1:4: bad number syntax: "09""#),
        (r#"{{ "abc }}"#, "1:4: unterminated quoted string"),
        ("{{ $x }}", r#"1:4: undefined variable "$x""#),
        ("{{ # }}", "1:4: unrecognized character in action: '#'"),
        (
            "{{range .}}{{else}}{{else}}{{end}}",
            "1:22: expected end; found {{else}} in {{range}}",
        ),
        (
            "{{if .}}{{define \"x\"}}{{end}}{{end}}",
            "1:11: {{define}} is only allowed at the top level",
        ),
        (
            "{{template .x}}",
            "1:12: unexpected <.x> in template clause; want a quoted template name",
        ),
        ("{{ $a, $b := . }}", "1:4: too many declarations in command"),
        ("{{ () }}", "1:5: missing value for parenthesized pipeline"),
        ("{{ .a\"x\" }}", r#"1:6: unexpected "x" in operand"#),
    ];
    for (src, want) in cases {
        let e = Template::parse("n", src, &f).unwrap_err();
        assert_eq!(e.to_string(), format!("n:{want}"), "{src}");
    }
    // Positions count lines and characters, not bytes.
    let e = Template::parse("annotation summary", "é\n  {{ humanise $x }}", &f).unwrap_err();
    assert_eq!(
        e,
        Error::Parse {
            name: "annotation summary".into(),
            line: 2,
            col: 6,
            msg: r#"function "humanise" not defined"#.into()
        }
    );
}

#[test]
fn exec_errors_name_the_call() {
    let env = Env::new(funcs::prometheus(""));
    let e = render_env(r#"x {{ humanize "abc" }}"#, json!(null), &env).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"t:1:6: executing "t" at <humanize>: error calling humanize: strconv.ParseFloat: parsing "abc": invalid syntax"#
    );
    let e = render_env(
        r#"{{define "d"}}{{ .x.y }}{{end}}{{template "d" .}}"#,
        json!({"x": 1}),
        &env,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"t:1:18: executing "d" at <.x.y>: can't evaluate field y in type int"#
    );
    assert!(
        fails(r#"{{ "a" 1 }}"#, json!(null)).contains("can't give argument to non-function \"a\"")
    );
    // A function known when parsing but missing from the Env at execution.
    let f = FuncMap::new().with("q", |_| Ok(Value::Null));
    let t = Template::parse("t", "{{q}}", &f).unwrap();
    let e = t.execute(&Value::Null, &Env::default()).unwrap_err();
    assert!(e.to_string().contains(r#"function "q" not defined"#), "{e}");
}

#[test]
fn custom_funcs_and_methods() {
    let f = FuncMap::new().with("double", |a| match a {
        [Value::Int(i)] => Ok(Value::Int(i * 2)),
        _ => Err("want one int".into()),
    });
    let m = methods::Methods::new().with("Upper", |recv, args| {
        let s = recv.as_str().ok_or("not a string")?;
        let suffix = args.first().and_then(Value::as_str).unwrap_or("");
        Ok(format!("{}{suffix}", s.to_uppercase()).into())
    });
    let env = Env::new(f).with_methods(m);
    assert_eq!(
        render_env(
            "{{double 21}}|{{.s.Upper}}|{{.s.Upper \"!\"}}|{{\"?\" | .s.Upper}}",
            json!({"s": "hi"}),
            &env
        )
        .unwrap(),
        "42|HI|HI!|HI?"
    );
    // A map key wins over a method of the same name.
    assert_eq!(
        render_env("{{.Upper}}", json!({"Upper": "key"}), &env).unwrap(),
        "key"
    );
    let e = render_env("{{double \"x\"}}", json!(null), &env).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("error calling double: want one int"),
        "{e}"
    );
}

#[test]
fn predeclared_vars() {
    let f = funcs::prometheus("");
    let mut t = Template::new("a", &f);
    t.declare_vars(&["labels", "value"]);
    t.add("a", "{{ $labels.instance }} at {{ $value | humanize }}")
        .unwrap();
    let out = t
        .execute_with_vars(
            "a",
            &Value::Null,
            &Env::new(f),
            &[
                ("labels", Value::string_map([("instance", "h:9100")])),
                ("value", 1500.0.into()),
            ],
        )
        .unwrap();
    assert_eq!(out, "h:9100 at 1.5k");
}

#[test]
fn templates_are_send_sync_and_reusable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Template>();
    assert_send_sync::<Env>();
    assert_send_sync::<Value>();
    let t = std::sync::Arc::new(Template::parse("t", "{{.}}", &FuncMap::new()).unwrap());
    let hs: Vec<_> = (0..4)
        .map(|i| {
            let t = t.clone();
            std::thread::spawn(move || t.execute(&Value::Int(i), &Env::default()).unwrap())
        })
        .collect();
    let outs: Vec<String> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(outs, ["0", "1", "2", "3"]);
}

/// Random token soup must give errors, never panics.
#[test]
fn garbage_never_panics() {
    const PIECES: [&str; 40] = [
        "{{", "}}", "{{- ", " -}}", "/*", "*/", " ", "\n", ".", ".a", ".b.c", "$", "$x", ":=", "=",
        "|", "(", ")", ",", "\"s\"", "`r`", "'c'", "1", "-2.5", "0x1f", "if", "else", "end",
        "range", "with", "define", "template", "block", "break", "continue", "nil", "true",
        "printf", "index", "é",
    ];
    let env = Env::new(funcs::prometheus("")).with_methods(methods::alertmanager());
    let data = Value::from(json!({"a": [1, "x", {"b": 2}], "b": {"c": "d"}, "s": "str"}));
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut parsed = 0;
    for _ in 0..20_000 {
        let mut src = String::new();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = (seed >> 60) as usize + 1;
        for _ in 0..n * 2 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            src.push_str(PIECES[(seed >> 33) as usize % PIECES.len()]);
        }
        if let Ok(t) = Template::parse("g", &src, &env.funcs) {
            parsed += 1;
            let _ = t.execute(&data, &env);
        }
    }
    assert!(parsed > 100, "only {parsed} parsed");
}
