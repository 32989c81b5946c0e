//! Go's `fmt.Sprintf` for template values: the verbs, flags, width and precision
//! that real templates use, with Go's float formatting and its `%!verb(...)` errors.

use std::fmt::Write as _;

use day2_model::gofloat;

use crate::value::Value;

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    space: bool,
    zero: bool,
    sharp: bool,
    width: Option<usize>,
    prec: Option<usize>,
    verb: char,
}

/// `fmt.Sprintf(format, args...)`.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::with_capacity(format.len() + 16);
    let mut chars = format.chars().peekable();
    let mut argi = 0;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut s = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => s.minus = true,
                '+' => s.plus = true,
                ' ' => s.space = true,
                '0' => s.zero = true,
                '#' => s.sharp = true,
                _ => break,
            }
            chars.next();
        }
        let num = |chars: &mut std::iter::Peekable<std::str::Chars>, argi: &mut usize| {
            if chars.peek() == Some(&'*') {
                chars.next();
                let v = args.get(*argi).and_then(|v| match v {
                    Value::Int(i) => usize::try_from(*i).ok(),
                    _ => None,
                });
                *argi += 1;
                return Some(v.unwrap_or(0));
            }
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
                chars.next();
            }
            n
        };
        s.width = num(&mut chars, &mut argi);
        if chars.peek() == Some(&'.') {
            chars.next();
            s.prec = Some(num(&mut chars, &mut argi).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        s.verb = verb;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        argi += 1;
        format_one(&mut out, &s, arg);
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[argi..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            bad_body(&mut out, a);
        }
        out.push(')');
    }
    out
}

fn bad_body(out: &mut String, v: &Value) {
    if let Value::Null = v {
        out.push_str("<nil>");
    } else {
        let _ = write!(out, "{}=", v.type_name());
        v.write_go(out, false);
    }
}

fn bad_verb(out: &mut String, verb: char, v: &Value) {
    let _ = write!(out, "%!{verb}(");
    bad_body(out, v);
    out.push(')');
}

/// Pads `body` (which may start with a sign) to the width.
fn pad(out: &mut String, s: &Spec, body: &str, numeric: bool) {
    let n = body.chars().count();
    let w = s.width.unwrap_or(0);
    if n >= w {
        out.push_str(body);
        return;
    }
    let fill = w - n;
    if s.minus {
        out.push_str(body);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if s.zero && numeric {
        let (sign, digits) = match body.as_bytes().first() {
            Some(b'+' | b'-' | b' ') => body.split_at(1),
            _ => ("", body),
        };
        out.push_str(sign);
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(digits);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(body);
    }
}

fn format_one(out: &mut String, s: &Spec, v: &Value) {
    match (s.verb, v) {
        ('v', Value::Float(f)) => fmt_float(out, s, *f, 'g'),
        ('v', Value::Int(i)) => fmt_int(out, s, *i, 10, false),
        ('v', Value::String(st)) if s.sharp => pad(out, s, &go_quote(st), false),
        ('T', v) => pad(out, s, v.type_name(), false),
        // Go applies the verb to each element of lists and maps.
        (_, Value::List(l)) => {
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                format_one(out, s, e);
            }
            out.push(']');
        }
        (_, Value::Map(m)) => {
            out.push_str("map[");
            for (i, (k, e)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                format_one(out, s, e);
            }
            out.push(']');
        }
        ('v', Value::Null) => pad(out, s, "<nil>", false),
        ('v', _) | ('s', Value::Time(_) | Value::Duration(_)) => {
            pad(out, s, &v.to_go_string(), false)
        }
        ('s', Value::String(st)) => {
            let st = match s.prec {
                Some(p) => st.chars().take(p).collect::<String>(),
                None => st.clone(),
            };
            pad(out, s, &st, false)
        }
        ('q', Value::String(st)) => pad(out, s, &go_quote(st), false),
        ('q', Value::Int(i)) => {
            let c = u32::try_from(*i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            let q = go_quote(&c.to_string());
            let inner = &q[1..q.len() - 1];
            let inner = if c == '\'' {
                "\\'"
            } else if c == '"' {
                "\""
            } else {
                inner
            };
            pad(out, s, &format!("'{inner}'"), false)
        }
        ('t', Value::Bool(b)) => pad(out, s, if *b { "true" } else { "false" }, false),
        ('d', Value::Int(i)) => fmt_int(out, s, *i, 10, false),
        ('d', Value::Duration(i)) => fmt_int(out, s, *i, 10, false),
        ('b', Value::Int(i)) => fmt_int(out, s, *i, 2, false),
        ('o', Value::Int(i)) => fmt_int(out, s, *i, 8, false),
        ('x', Value::Int(i)) => fmt_int(out, s, *i, 16, false),
        ('X', Value::Int(i)) => fmt_int(out, s, *i, 16, true),
        ('x' | 'X', Value::String(st)) => {
            let mut h = String::new();
            if s.sharp {
                h.push_str(if s.verb == 'x' { "0x" } else { "0X" });
            }
            for b in st.bytes() {
                if s.verb == 'x' {
                    let _ = write!(h, "{b:02x}");
                } else {
                    let _ = write!(h, "{b:02X}");
                }
            }
            pad(out, s, &h, false)
        }
        ('c', Value::Int(i)) => {
            let c = u32::try_from(*i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            pad(out, s, &c.to_string(), false)
        }
        ('U', Value::Int(i)) => pad(out, s, &format!("U+{i:04X}"), false),
        ('e' | 'E' | 'f' | 'F' | 'g' | 'G', Value::Float(f)) => fmt_float(out, s, *f, s.verb),
        _ => bad_verb(out, s.verb, v),
    }
}

fn fmt_int(out: &mut String, s: &Spec, i: i64, radix: u32, upper: bool) {
    let mag = i.unsigned_abs();
    let mut digits = match radix {
        2 => format!("{mag:b}"),
        8 => format!("{mag:o}"),
        16 if upper => format!("{mag:X}"),
        16 => format!("{mag:x}"),
        _ => mag.to_string(),
    };
    if let Some(p) = s.prec {
        if p == 0 && mag == 0 {
            digits.clear();
        }
        while digits.len() < p {
            digits.insert(0, '0');
        }
    }
    if s.sharp {
        match radix {
            8 if !digits.starts_with('0') => digits.insert(0, '0'),
            16 => digits.insert_str(0, if upper { "0X" } else { "0x" }),
            2 => digits.insert_str(0, "0b"),
            _ => {}
        }
    }
    let sign = if i < 0 {
        "-"
    } else if s.plus {
        "+"
    } else if s.space {
        " "
    } else {
        ""
    };
    // Go ignores the 0 flag when a precision is given for integers.
    let s2 = Spec {
        zero: s.zero && s.prec.is_none(),
        ..*s
    };
    pad(out, &s2, &format!("{sign}{digits}"), true)
}

fn fmt_float(out: &mut String, s: &Spec, f: f64, verb: char) {
    let body = if f.is_nan() {
        if s.plus {
            "+NaN"
        } else if s.space {
            " NaN"
        } else {
            "NaN"
        }
        .to_string()
    } else if f.is_infinite() {
        if f < 0.0 {
            "-Inf"
        } else if s.space && !s.plus {
            " Inf"
        } else {
            "+Inf"
        }
        .to_string()
    } else {
        let mag = match verb {
            'e' | 'E' => format_e(f.abs(), s.prec.unwrap_or(6)),
            'f' | 'F' => format!("{:.*}", s.prec.unwrap_or(6), f.abs()),
            _ => match s.prec {
                None => gofloat::format_g(f.abs()),
                Some(p) => format_g_prec(f.abs(), p.max(1)),
            },
        };
        let mag = if verb == 'E' || verb == 'G' {
            mag.to_uppercase()
        } else {
            mag
        };
        // Go keeps the sign of negative values that round to zero ("-0.00").
        let sign = if f.is_sign_negative() {
            "-"
        } else if s.plus {
            "+"
        } else if s.space {
            " "
        } else {
            ""
        };
        format!("{sign}{mag}")
    };
    let numeric = f.is_finite();
    pad(out, s, &body, numeric)
}

/// `%e` with `prec` decimals: `1.234560e+03`.
fn format_e(v: f64, prec: usize) -> String {
    let r = format!("{v:.prec$e}");
    let (mant, exp) = r.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    format!(
        "{mant}e{}{:02}",
        if exp < 0 { '-' } else { '+' },
        exp.unsigned_abs()
    )
}

/// Significant decimal digits of `v` rounded to `n`, trailing zeros cut, and the
/// decimal point position (`v = 0.d1d2... * 10^dp`). Zero gives `("", 0)`.
fn sig_digits(v: f64, n: usize) -> (String, i32) {
    if v == 0.0 {
        return (String::new(), 0);
    }
    let r = format!("{:.*e}", n.saturating_sub(1), v);
    let (mant, exp) = r.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    let d: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    (d.trim_end_matches('0').to_string(), exp + 1)
}

/// Go's `%.Ng` (strconv 'g' with explicit precision), for a non-negative finite `v`.
pub(crate) fn format_g_prec(v: f64, prec: usize) -> String {
    let (d, dp) = sig_digits(v, prec);
    let nd = d.len() as i32;
    let p = prec as i32;
    let mut eprec = p;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    let exp = dp - 1;
    if exp < -4 || exp >= eprec {
        let keep = p.min(nd).max(1) as usize;
        let mut m = String::new();
        m.push(d.chars().next().unwrap_or('0'));
        if keep > 1 {
            m.push('.');
            m.push_str(&d[1..keep]);
        }
        return format!(
            "{m}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    }
    let p2 = if p > dp { nd } else { p };
    let decimals = (p2 - dp).max(0) as usize;
    fixed(&d, dp, decimals)
}

/// Renders digits `d` with decimal point position `dp` and `decimals` places.
fn fixed(d: &str, dp: i32, decimals: usize) -> String {
    let digit = |i: i32| -> char {
        if i < 0 {
            '0'
        } else {
            d.as_bytes().get(i as usize).map_or('0', |b| *b as char)
        }
    };
    let mut out = String::new();
    if dp <= 0 {
        out.push('0');
    } else {
        for i in 0..dp {
            out.push(digit(i));
        }
    }
    if decimals > 0 {
        out.push('.');
        for k in 0..decimals as i32 {
            out.push(digit(dp + k));
        }
    }
    out
}

/// Go's `strconv.Quote`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                if (c as u32) <= 0xFFFF {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(f: &str, args: &[Value]) -> String {
        sprintf(f, args)
    }

    #[test]
    fn verbs_like_go() {
        let f = Value::Float;
        let i = Value::Int;
        let s = Value::from;
        assert_eq!(p("%.2f", &[f(1.23456)]), "1.23");
        assert_eq!(p("%f", &[f(1.5)]), "1.500000");
        assert_eq!(p("%5.1f|", &[f(1.23456)]), "  1.2|");
        assert_eq!(p("%-8.1f|", &[f(-1.23456)]), "-1.2    |");
        assert_eq!(p("%08.2f", &[f(-1.23456)]), "-0001.23");
        assert_eq!(p("%e", &[f(1234.5678)]), "1.234568e+03");
        assert_eq!(p("%.2e", &[f(0.000123)]), "1.23e-04");
        assert_eq!(p("%E", &[f(1e100)]), "1.000000E+100");
        assert_eq!(p("%g", &[f(1e6)]), "1e+06");
        assert_eq!(p("%g", &[f(123456.0)]), "123456");
        assert_eq!(p("%.4g", &[f(1234.567)]), "1235");
        assert_eq!(p("%.4g", &[f(1.234567)]), "1.235");
        assert_eq!(p("%.4g", &[f(100000.0)]), "1e+05");
        assert_eq!(p("%.4g", &[f(12.0)]), "12");
        assert_eq!(p("%.4g", &[f(0.0)]), "0");
        assert_eq!(p("%.3g", &[f(0.00001234)]), "1.23e-05");
        assert_eq!(p("%v", &[f(0.1)]), "0.1");
        assert_eq!(p("%v %v", &[f(2.0), i(3)]), "2 3");
        assert_eq!(p("%d items", &[i(42)]), "42 items");
        assert_eq!(
            p("%5d|%-5d|%05d", &[i(42), i(42), i(-42)]),
            "   42|42   |-0042"
        );
        assert_eq!(
            p(
                "%+d %x %X %o %b %#x",
                &[i(5), i(255), i(255), i(8), i(5), i(255)]
            ),
            "+5 ff FF 10 101 0xff"
        );
        assert_eq!(
            p("%s and %q", &[s("a"), s("b\"c\n")]),
            "a and \"b\\\"c\\n\""
        );
        assert_eq!(
            p("%-10s|%10s|", &[s("left"), s("right")]),
            "left      |     right|"
        );
        assert_eq!(p("%.2s", &[s("hello")]), "he");
        assert_eq!(p("%x", &[s("hi")]), "6869");
        assert_eq!(
            p(
                "%t %c %q %U",
                &[Value::Bool(true), i(65), i(97), i(0x1F600)]
            ),
            "true A 'a' U+1F600"
        );
        assert_eq!(p("100%%", &[]), "100%");
        assert_eq!(p("%v", &[f(f64::INFINITY)]), "+Inf");
        assert_eq!(p("%.2f", &[f(f64::NAN)]), "NaN");
        assert_eq!(
            p("%v", &[Value::from(serde_json::json!(["a", 1]))]),
            "[a 1]"
        );
        assert_eq!(
            p("%s", &[Value::from(serde_json::json!(["a", "b"]))]),
            "[a b]"
        );
        assert_eq!(
            p("%q", &[Value::from(serde_json::json!(["a", "b"]))]),
            r#"["a" "b"]"#
        );
        assert_eq!(
            p("%d", &[Value::from(serde_json::json!({"k": 1}))]),
            "map[k:1]"
        );
        assert_eq!(
            p("%T %T %T", &[f(1.0), s("x"), Value::Null]),
            "float64 string <nil>"
        );
    }

    #[test]
    fn bad_verbs_like_go() {
        assert_eq!(p("%d", &[Value::Float(1.5)]), "%!d(float64=1.5)");
        assert_eq!(p("%s", &[Value::Int(5)]), "%!s(int=5)");
        assert_eq!(p("%f", &[Value::from("x")]), "%!f(string=x)");
        assert_eq!(p("%d %d", &[Value::Int(1)]), "1 %!d(MISSING)");
        assert_eq!(
            p("%d", &[Value::Int(1), Value::from("x")]),
            "1%!(EXTRA string=x)"
        );
        assert_eq!(p("%s", &[Value::Null]), "%!s(<nil>)");
        assert_eq!(p("%", &[]), "%!(NOVERB)");
    }
}
