//! Go text/template's predefined functions (except `call`).

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::sync::Arc;

use crate::fmt::sprintf;
use crate::value::Value;

/// A predefined function. `and`/`or` are evaluated lazily by the executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    And,
    Or,
    Not,
    Len,
    Index,
    Slice,
    Print,
    Printf,
    Println,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Html,
    Js,
    Urlquery,
}

impl Builtin {
    pub fn from_name(n: &str) -> Option<Builtin> {
        use Builtin::*;
        Some(match n {
            "and" => And,
            "or" => Or,
            "not" => Not,
            "len" => Len,
            "index" => Index,
            "slice" => Slice,
            "print" => Print,
            "printf" => Printf,
            "println" => Println,
            "eq" => Eq,
            "ne" => Ne,
            "lt" => Lt,
            "le" => Le,
            "gt" => Gt,
            "ge" => Ge,
            "html" => Html,
            "js" => Js,
            "urlquery" => Urlquery,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use Builtin::*;
        match self {
            And => "and",
            Or => "or",
            Not => "not",
            Len => "len",
            Index => "index",
            Slice => "slice",
            Print => "print",
            Printf => "printf",
            Println => "println",
            Eq => "eq",
            Ne => "ne",
            Lt => "lt",
            Le => "le",
            Gt => "gt",
            Ge => "ge",
            Html => "html",
            Js => "js",
            Urlquery => "urlquery",
        }
    }
}

fn want(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

/// Calls a predefined function on evaluated arguments (`and`/`or` included, eagerly).
pub(crate) fn call(b: Builtin, args: &[Value]) -> Result<Value, String> {
    use Builtin::*;
    match b {
        And => Ok(args
            .iter()
            .find(|v| !v.is_true())
            .or(args.last())
            .cloned()
            .unwrap_or_default()),
        Or => Ok(args
            .iter()
            .find(|v| v.is_true())
            .or(args.last())
            .cloned()
            .unwrap_or_default()),
        Not => {
            want("not", args, 1)?;
            Ok(Value::Bool(!args[0].is_true()))
        }
        Len => {
            want("len", args, 1)?;
            len(&args[0]).map(Value::from)
        }
        Index => {
            let Some((first, idx)) = args.split_first() else {
                return Err("wrong number of args for index: want at least 1 got 0".into());
            };
            let mut item = first.clone();
            for i in idx {
                item = index(&item, i)?;
            }
            Ok(item)
        }
        Slice => slice(args),
        Print => Ok(Value::String(sprint(args))),
        Println => Ok(Value::String(sprintln(args))),
        Printf => {
            let Some((f, rest)) = args.split_first() else {
                return Err("wrong number of args for printf: want at least 1 got 0".into());
            };
            let Value::String(f) = f else {
                return Err(format!(
                    "wrong type for value; expected string; got {}",
                    f.type_name()
                ));
            };
            Ok(Value::String(sprintf(f, rest)))
        }
        Eq => eq(args).map(Value::Bool),
        Ne => {
            want("ne", args, 2)?;
            eq(args).map(|b| Value::Bool(!b))
        }
        Lt => cmp2("lt", args).map(|o| Value::Bool(o == Ordering::Less)),
        Le => cmp2("le", args).map(|o| Value::Bool(o != Ordering::Greater)),
        Gt => cmp2("gt", args).map(|o| Value::Bool(o == Ordering::Greater)),
        Ge => cmp2("ge", args).map(|o| Value::Bool(o != Ordering::Less)),
        Html => Ok(Value::String(html_escape(&eval_args(args)))),
        Js => Ok(Value::String(js_escape(&eval_args(args)))),
        Urlquery => Ok(Value::String(query_escape(&eval_args(args)))),
    }
}

/// Go's `evalArgs` for html/js/urlquery: one string is used as is, else `fmt.Sprint`.
fn eval_args(args: &[Value]) -> String {
    match args {
        [Value::String(s)] => s.clone(),
        _ => sprint(args),
    }
}

/// `fmt.Sprint`: spaces between operands when neither side is a string.
pub(crate) fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::String(_)) && !matches!(args[i - 1], Value::String(_)) {
            out.push(' ');
        }
        a.write_go(&mut out, false);
    }
    out
}

/// `fmt.Sprintln`: always spaces, and a final newline.
pub(crate) fn sprintln(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        a.write_go(&mut out, false);
    }
    out.push('\n');
    out
}

pub(crate) fn len(v: &Value) -> Result<usize, String> {
    match v {
        Value::String(s) => Ok(s.len()),
        Value::List(l) => Ok(l.len()),
        Value::Map(m) => Ok(m.len()),
        Value::Null => Err("len of nil pointer".into()),
        v => Err(format!("len of type {}", v.type_name())),
    }
}

fn int_index(i: &Value) -> Result<i64, String> {
    match i {
        Value::Int(n) => Ok(*n),
        Value::Null => Err("cannot index slice/array with nil".into()),
        v => Err(format!(
            "cannot index slice/array with type {}",
            v.type_name()
        )),
    }
}

/// The zero value read from a map for a missing key: `""` for maps of strings.
pub(crate) fn zero_of(m: &std::collections::BTreeMap<String, Value>) -> Value {
    if Value::is_string_map(m) {
        Value::String(String::new())
    } else {
        Value::Null
    }
}

fn index(item: &Value, i: &Value) -> Result<Value, String> {
    match item {
        Value::List(l) => {
            let n = int_index(i)?;
            usize::try_from(n)
                .ok()
                .and_then(|u| l.get(u))
                .cloned()
                .ok_or_else(|| format!("error calling index: index out of range: {n}"))
        }
        Value::String(s) => {
            let n = int_index(i)?;
            usize::try_from(n)
                .ok()
                .and_then(|u| s.as_bytes().get(u))
                .map(|b| Value::Int(i64::from(*b)))
                .ok_or_else(|| format!("error calling index: index out of range: {n}"))
        }
        Value::Map(m) => match i {
            Value::String(k) => Ok(m.get(k).cloned().unwrap_or_else(|| zero_of(m))),
            v => Err(format!(
                "value has type {}; should be string",
                v.type_name()
            )),
        },
        Value::Null => Err("index of untyped nil".into()),
        v => Err(format!("can't index item of type {}", v.type_name())),
    }
}

fn slice(args: &[Value]) -> Result<Value, String> {
    let Some((item, idx)) = args.split_first() else {
        return Err("wrong number of args for slice: want at least 1 got 0".into());
    };
    let len = match item {
        Value::String(s) => {
            if idx.len() > 2 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Value::List(l) => l.len(),
        Value::Null => return Err("slice of untyped nil".into()),
        v => return Err(format!("can't slice item of type {}", v.type_name())),
    };
    if idx.len() > 3 {
        return Err(format!("too many slice indexes: {}", idx.len()));
    }
    let mut bounds = [0usize, len];
    for (k, v) in idx.iter().take(2).enumerate() {
        let n = int_index(v)?;
        bounds[k] = usize::try_from(n)
            .ok()
            .filter(|u| *u <= len)
            .ok_or_else(|| format!("index out of range: {n}"))?;
    }
    if bounds[0] > bounds[1] {
        return Err(format!(
            "invalid slice index: {} > {}",
            bounds[0], bounds[1]
        ));
    }
    match item {
        Value::String(s) => s
            .get(bounds[0]..bounds[1])
            .map(Value::from)
            .ok_or_else(|| "slice splits a UTF-8 character".into()),
        Value::List(l) => Ok(Value::List(Arc::new(l[bounds[0]..bounds[1]].to_vec()))),
        _ => unreachable!("checked above"),
    }
}

#[derive(PartialEq, Clone, Copy)]
enum Kind {
    Bool,
    Num,
    Str,
    Time,
    Null,
    Other,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) | Value::Float(_) | Value::Duration(_) => Kind::Num,
        Value::String(_) => Kind::Str,
        Value::Time(_) => Kind::Time,
        Value::Null => Kind::Null,
        Value::List(_) | Value::Map(_) => Kind::Other,
    }
}

/// Numbers compare across int and float (Go would refuse `gt 1.5 1`: we accept it,
/// since rule authors write `gt $value 100` expecting a numeric comparison).
fn num_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Duration(x), Value::Duration(y)) => Some(x.cmp(y)),
        (Value::Duration(x), Value::Int(y)) | (Value::Int(x), Value::Duration(y)) => Some(x.cmp(y)),
        _ => {
            let f = |v: &Value| match v {
                Value::Duration(d) => *d as f64,
                v => v.as_f64().unwrap_or(f64::NAN),
            };
            f(a).partial_cmp(&f(b))
        }
    }
}

fn eq(args: &[Value]) -> Result<bool, String> {
    let Some((a, rest)) = args.split_first() else {
        return Err("missing argument for comparison".into());
    };
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    for b in rest {
        let (ka, kb) = (kind(a), kind(b));
        if ka == Kind::Other || kb == Kind::Other {
            return Err(format!(
                "non-comparable type {}",
                if ka == Kind::Other { a } else { b }.type_name()
            ));
        }
        let same = if ka == Kind::Null || kb == Kind::Null {
            ka == kb
        } else if ka != kb {
            return Err("incompatible types for comparison".into());
        } else if ka == Kind::Num {
            num_cmp(a, b) == Some(Ordering::Equal)
        } else {
            a == b
        };
        if same {
            return Ok(true);
        }
    }
    Ok(false)
}

fn cmp2(name: &str, args: &[Value]) -> Result<Ordering, String> {
    want(name, args, 2)?;
    let (a, b) = (&args[0], &args[1]);
    let (ka, kb) = (kind(a), kind(b));
    if matches!(ka, Kind::Bool | Kind::Other | Kind::Null)
        || matches!(kb, Kind::Bool | Kind::Other | Kind::Null)
    {
        return Err("invalid type for comparison".into());
    }
    if ka != kb {
        return Err("incompatible types for comparison".into());
    }
    match (a, b) {
        (Value::String(x), Value::String(y)) => Ok(x.as_bytes().cmp(y.as_bytes())),
        (Value::Time(x), Value::Time(y)) => Ok(x.timestamp().cmp(&y.timestamp())),
        // NaN compares false both ways in Go: report it as "not less, not greater".
        _ => Ok(num_cmp(a, b).unwrap_or(Ordering::Equal)),
    }
}

/// Go's `template.HTMLEscapeString`.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
pub fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 || c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(b: Builtin, args: &[Value]) -> Result<Value, String> {
        call(b, args)
    }

    #[test]
    fn comparisons() {
        use Builtin::*;
        let (i, f, s) = (Value::Int, Value::Float, Value::from);
        assert_eq!(c(Eq, &[i(1), i(2), i(1)]), Ok(Value::Bool(true)));
        assert_eq!(c(Eq, &[s("a"), s("b")]), Ok(Value::Bool(false)));
        assert_eq!(c(Lt, &[s("a"), s("b")]), Ok(Value::Bool(true)));
        assert_eq!(c(Gt, &[f(100.5), i(100)]), Ok(Value::Bool(true)));
        assert_eq!(c(Ge, &[i(3), i(3)]), Ok(Value::Bool(true)));
        assert_eq!(c(Le, &[f(2.0), f(1.0)]), Ok(Value::Bool(false)));
        assert_eq!(c(Ne, &[s("a"), s("b")]), Ok(Value::Bool(true)));
        assert_eq!(c(Eq, &[Value::Null, s("x")]), Ok(Value::Bool(false)));
        assert_eq!(
            c(Eq, &[s("1"), i(1)]),
            Err("incompatible types for comparison".into())
        );
        assert!(c(Lt, &[Value::Bool(true), Value::Bool(false)]).is_err());
        assert!(c(Eq, &[Value::list([]), Value::list([])]).is_err());
    }

    #[test]
    fn index_and_slice() {
        use Builtin::*;
        let l = Value::from(serde_json::json!([[1, 2], [3, 4]]));
        assert_eq!(
            c(Index, &[l.clone(), Value::Int(1), Value::Int(0)]),
            Ok(Value::Int(3))
        );
        assert!(c(Index, &[l.clone(), Value::Int(5)]).is_err());
        let m = Value::string_map([("a", "x")]);
        assert_eq!(c(Index, &[m, Value::from("zz")]), Ok(Value::from("")));
        assert_eq!(
            c(Slice, &[Value::from("hello"), Value::Int(1), Value::Int(3)]),
            Ok(Value::from("el"))
        );
        assert_eq!(
            c(Slice, &[l, Value::Int(1)]).map(|v| v.to_go_string()),
            Ok("[[3 4]]".into())
        );
    }

    #[test]
    fn escapers_and_print() {
        assert_eq!(
            html_escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&#34;x&#34;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(js_escape("a'b\"<\n"), "a\\'b\\\"\\u003C\\u000A");
        assert_eq!(query_escape("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
        assert_eq!(
            sprint(&[
                Value::Int(1),
                Value::Int(2),
                Value::from("a"),
                Value::Int(3)
            ]),
            "1 2a3"
        );
        assert_eq!(sprintln(&[Value::Int(1), Value::from("a")]), "1 a\n");
    }
}
