//! Go's string literals. PromQL strings follow Go's escape rules, where `\xc5`
//! and `\305` are one byte each, so a literal may spell bytes that are not
//! UTF-8 (`"a\xc5z"`) or several bytes that make up one character
//! (`"\xc3\xa9"` is `"é"`). `promql-parser` reads each such escape as the
//! character of that number (U+00C5, `Ã©`), so `rewrite` re-encodes every
//! literal with a byte escape above 0x7f before parsing: as the characters its
//! bytes spell when they are UTF-8, otherwise as a marker string holding the
//! bytes ([`invalid`] reads it back). The evaluator refuses a marker where
//! Prometheus refuses an invalid label name, and where Prometheus would
//! compare the bytes with stored labels (always UTF-8) it matches nothing.

use std::borrow::Cow;
use std::fmt::Write;

use day2_model::MatchOp;

use crate::Error;

/// Starts the marker of a literal whose bytes are not UTF-8: a noncharacter
/// no label holds, then `line:col:hex bytes`.
const MARK: &str = "\u{FDD0}day2-bytes:";

/// A regex that matches no string.
const NEVER: &str = r"[^\s\S]";

/// The bytes of a string literal that are not UTF-8.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bytes {
    /// Prometheus's `line:col` for an error about the literal: where the
    /// literal starts, or its label for a matcher's value.
    pub at: String,
    pub bytes: Vec<u8>,
}

impl Bytes {
    /// Go's `%q` of the bytes (`"a\xc5z"`).
    pub(crate) fn quoted(&self) -> String {
        quote(&self.bytes)
    }

    /// Go's `%s` of the bytes as Prometheus's JSON shows it: each byte that is
    /// not part of a character becomes U+FFFD.
    pub(crate) fn lossy(&self) -> String {
        let mut out = String::with_capacity(self.bytes.len());
        for chunk in self.bytes.utf8_chunks() {
            out.push_str(chunk.valid());
            out.extend(chunk.invalid().iter().map(|_| '\u{FFFD}'));
        }
        out
    }
}

/// The bytes a marker string stands for; `None` for any other string.
pub(crate) fn invalid(s: &str) -> Option<Bytes> {
    let (at, hex) = s.strip_prefix(MARK)?.rsplit_once(':')?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(Bytes {
        at: at.to_string(),
        bytes,
    })
}

/// Whether the (rewritten) query text holds any marker.
pub(crate) fn marked(text: &str) -> bool {
    text.contains(MARK)
}

/// `s` as Prometheus prints it with `%s` (a marker's bytes, see [`Bytes::lossy`]).
pub(crate) fn display(s: &str) -> Cow<'_, str> {
    match invalid(s) {
        Some(b) => Cow::Owned(b.lossy()),
        None => Cow::Borrowed(s),
    }
}

/// Go's `strconv.Quote` of `bytes`: printable characters as they are, the
/// others escaped, bytes that are not UTF-8 as `\xNN`.
pub(crate) fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            let _ = match c {
                '"' | '\\' => write!(out, "\\{c}"),
                '\x07' => write!(out, "\\a"),
                '\x08' => write!(out, "\\b"),
                '\x0c' => write!(out, "\\f"),
                '\n' => write!(out, "\\n"),
                '\r' => write!(out, "\\r"),
                '\t' => write!(out, "\\t"),
                '\x0b' => write!(out, "\\v"),
                c if (c as u32) < 0x20 || c == '\x7f' => write!(out, "\\x{:02x}", c as u32),
                c if printable(c) => write!(out, "{c}"),
                c if (c as u32) < 0x10000 => write!(out, "\\u{:04x}", c as u32),
                c => write!(out, "\\U{:08x}", c as u32),
            };
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

/// Go's `unicode.IsPrint` for the characters label names and values hold:
/// not control, format, private-use or noncharacters, and no space but ' '.
fn printable(c: char) -> bool {
    let u = c as u32;
    !(c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(u, 0xA0 | 0xAD | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x2064)
        || matches!(u, 0xFEFF | 0xFFF9..=0xFFFB | 0xE000..=0xF8FF | 0xFDD0..=0xFDEF)
        || u >= 0xF0000
        || u & 0xFFFE == 0xFFFE)
}

/// The text `promql-parser` should read for the quoted literal `lit`, or
/// `None` when it reads `lit` as Go does (no byte escape above 0x7f, or a
/// malformed literal it reports itself). `at` is the `line:col` an error
/// about the literal names.
pub(crate) fn reencode(lit: &str, at: &str) -> Option<String> {
    let bytes = unquote_bytes(lit)?;
    Some(match String::from_utf8(bytes) {
        Ok(s) => {
            let mut out = String::with_capacity(s.len() + 2);
            out.push('"');
            for c in s.chars() {
                let _ = match c {
                    '"' | '\\' => write!(out, "\\{c}"),
                    c if c.is_ascii_control() => write!(out, "\\x{:02x}", c as u32),
                    c => write!(out, "{c}"),
                };
            }
            out.push('"');
            out
        }
        Err(e) => {
            let mut out = format!("\"{MARK}{at}:");
            for b in e.as_bytes() {
                let _ = write!(out, "{b:02x}");
            }
            out.push('"');
            out
        }
    })
}

/// The bytes of a `"..."` or `'...'` literal by Go's escape rules, when one
/// of its escapes is a byte above 0x7f.
fn unquote_bytes(lit: &str) -> Option<Vec<u8>> {
    let b = lit.as_bytes();
    let q = *b.first()?;
    if !matches!(q, b'"' | b'\'') || b.len() < 2 || b[b.len() - 1] != q {
        return None;
    }
    let body = &b[1..b.len() - 1];
    if !body.contains(&b'\\') {
        return None;
    }
    let mut out = Vec::with_capacity(body.len());
    let mut high = false;
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        if c == q || c == b'\n' {
            return None;
        }
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let e = *body.get(i + 1)?;
        i += 2;
        match e {
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'\\' => out.push(b'\\'),
            b'\'' | b'"' if e == q => out.push(e),
            b'x' | b'u' | b'U' => {
                let n = match e {
                    b'x' => 2,
                    b'u' => 4,
                    _ => 8,
                };
                let digits = body.get(i..i + n)?;
                if !digits.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                let v = u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()?;
                i += n;
                if e == b'x' {
                    high |= v > 0x7f;
                    out.push(v as u8);
                } else {
                    let ch = char::from_u32(v)?;
                    out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                }
            }
            b'0'..=b'7' => {
                let digits = body.get(i..i + 2)?;
                if !digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                    return None;
                }
                let v = u32::from(e - b'0') * 64
                    + u32::from(digits[0] - b'0') * 8
                    + u32::from(digits[1] - b'0');
                if v > 0xff {
                    return None;
                }
                i += 2;
                high |= v > 0x7f;
                out.push(v as u8);
            }
            _ => return None,
        }
    }
    high.then_some(out)
}

/// The printed query with each marker literal back in Go's quoting.
pub(crate) fn restore(printed: &str) -> String {
    let quoted = format!("\"{MARK}");
    let mut out = String::with_capacity(printed.len());
    let mut rest = printed;
    while let Some(i) = rest.find(&quoted) {
        let body = &rest[i + 1..];
        let Some(end) = body.find('"') else { break };
        match invalid(&body[..end]) {
            Some(b) => {
                out.push_str(&rest[..i]);
                out.push_str(&b.quoted());
            }
            None => out.push_str(&rest[..i + 1 + end + 1]),
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The operator and value of a model matcher doing what Prometheus's matcher
/// with operator `op` and value `value` does.
///
/// A value with bytes that are not UTF-8 equals no stored label value; a
/// regex made of literals only (`a|b`) is compared literal by literal as
/// Prometheus does, any other such regex is refused (Go's regexp compiler
/// refuses invalid UTF-8).
pub(crate) fn matcher(op: MatchOp, value: &str) -> Result<(MatchOp, Cow<'_, str>), Error> {
    let Some(b) = invalid(value) else {
        return Ok((op, Cow::Borrowed(value)));
    };
    match op {
        MatchOp::Equal => Ok((MatchOp::Regex, Cow::Borrowed(NEVER))),
        MatchOp::NotEqual => Ok((MatchOp::NotRegex, Cow::Borrowed(NEVER))),
        MatchOp::Regex | MatchOp::NotRegex => {
            let parts: Vec<&[u8]> = b.bytes.split(|c| *c == b'|').collect();
            let meta = |c: &u8| br"\.+*?()[]{}^$".contains(c);
            if parts.iter().any(|p| p.iter().any(meta)) {
                return Err(Error::BadInput {
                    message: format!(
                        "invalid parameter \"query\": {}: parse error: error parsing regexp: invalid UTF-8: `{}`",
                        b.at,
                        b.lossy()
                    ),
                    position: None,
                });
            }
            let literals: Vec<&str> = parts
                .iter()
                .filter_map(|p| std::str::from_utf8(p).ok())
                .collect();
            if literals.is_empty() {
                Ok((op, Cow::Borrowed(NEVER)))
            } else {
                Ok((op, Cow::Owned(literals.join("|"))))
            }
        }
    }
}

/// Refuses what Prometheus's parser refuses in a query whose literals spell
/// bytes that are not UTF-8: such a grouping label name (`by`, `without`,
/// `on`, `ignoring`, `group_left`, `group_right`) and such a regex matcher
/// that is not made of literals only.
pub(crate) fn check(e: &promql_parser::parser::Expr) -> Result<(), Error> {
    use promql_parser::parser::Expr;
    let labels = |ls: &[String]| -> Result<(), Error> {
        match ls.iter().find_map(|l| invalid(l)) {
            Some(b) => Err(Error::BadInput {
                message: format!(
                    "invalid parameter \"query\": {}: parse error: invalid label name for grouping: {}",
                    b.at,
                    b.quoted()
                ),
                position: None,
            }),
            None => Ok(()),
        }
    };
    match e {
        Expr::Aggregate(a) => {
            if let Some(m) = &a.modifier {
                labels(&m.labels().labels)?;
            }
            if let Some(p) = &a.param {
                check(p)?;
            }
            check(&a.expr)
        }
        Expr::Binary(b) => {
            if let Some(m) = &b.modifier {
                if let Some(on) = &m.matching {
                    labels(&on.labels().labels)?;
                }
                if let Some(include) = m.card.labels() {
                    labels(&include.labels)?;
                }
            }
            check(&b.lhs)?;
            check(&b.rhs)
        }
        Expr::VectorSelector(vs) => selector(vs),
        Expr::MatrixSelector(ms) => selector(&ms.vs),
        Expr::Subquery(s) => check(&s.expr),
        Expr::Unary(u) => check(&u.expr),
        Expr::Paren(p) => check(&p.expr),
        Expr::Call(c) => c.args.args.iter().try_for_each(|a| check(a)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => Ok(()),
    }
}

/// A selector with a marker value: its matchers as the evaluator builds them
/// (which refuses what Prometheus's parser refuses).
fn selector(vs: &promql_parser::parser::VectorSelector) -> Result<(), Error> {
    let m = &vs.matchers;
    let marked = m
        .matchers
        .iter()
        .chain(m.or_matchers.iter().flatten())
        .any(|m| m.value.starts_with(MARK));
    if marked {
        crate::eval::selector_matchers(vs)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(lit: &str) -> Bytes {
        let text = reencode(lit, "1:2").expect("re-encoded");
        invalid(&text[1..text.len() - 1]).expect("a marker")
    }

    #[test]
    fn byte_escapes_spelling_characters_become_those_characters() {
        assert_eq!(reencode(r#""\xc3\xa9""#, "1:1").unwrap(), "\"é\"");
        assert_eq!(reencode(r"'\303\251'", "1:1").unwrap(), "\"é\"");
        assert_eq!(
            reencode(r#""a\xe2\x82\xac\"\\\n'\u00e9""#, "1:1").unwrap(),
            "\"a€\\\"\\\\\\x0a'é\""
        );
        // what each form reads as once parsed
        let parsed = |q: &str| match promql_parser::parser::parse(q).unwrap() {
            promql_parser::parser::Expr::StringLiteral(s) => s.val,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            parsed(&reencode(r#""\xc3\xa9\x41\n""#, "1:1").unwrap()),
            "éA\n"
        );
        assert_eq!(
            parsed(&reencode(r#""\xf0\x9f\x98\x80""#, "1:1").unwrap()),
            "😀"
        );
    }

    #[test]
    fn literals_the_parser_reads_as_go_are_left_alone() {
        for lit in [
            r#""plain""#,
            r#""\x41\101\u00c5\U0001F600\n""#,
            r"`\xc5`",
            r#""\xc5"#,    // unterminated: the parser reports it
            r#""\xzz""#,   // malformed: the parser reports it
            r#""\477""#,   // octal above 255
            r#""\'\xc5""#, // \' is not an escape in "..."
        ] {
            assert_eq!(reencode(lit, "1:1"), None, "{lit}");
        }
    }

    #[test]
    fn invalid_bytes_become_a_marker_quoted_as_go_does() {
        let b = marker(r#""a\xc5z""#);
        assert_eq!(b.bytes, b"a\xc5z");
        assert_eq!(b.at, "1:2");
        assert_eq!(b.quoted(), r#""a\xc5z""#);
        assert_eq!(b.lossy(), "a\u{FFFD}z");
        assert_eq!(marker(r"'\305'").bytes, b"\xc5");
        // a truncated character: one U+FFFD per byte, as Go's JSON writes it
        let t = marker(r#""\xe2\x82é""#);
        assert_eq!(t.quoted(), r#""\xe2\x82é""#);
        assert_eq!(t.lossy(), "\u{FFFD}\u{FFFD}é");
        assert_eq!(invalid("a\u{FFFD}z"), None);
        assert_eq!(display("plain"), "plain");
    }

    #[test]
    fn quote_is_go_strconv_quote() {
        assert_eq!(quote(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote(b"\x00\x07\n\x7f"), r#""\x00\a\n\x7f""#);
        assert_eq!(
            quote("é\u{200b}\u{10ffff}😀".as_bytes()),
            r#""é\u200b\U0010ffff😀""#
        );
        assert_eq!(quote(b"\xff\xfe"), r#""\xff\xfe""#);
    }

    #[test]
    fn printed_markers_are_restored() {
        let m = reencode(r#""a\xc5z""#, "1:7").unwrap();
        assert_eq!(
            restore(&format!("count_values({m}, x{{a={m}}})")),
            r#"count_values("a\xc5z", x{a="a\xc5z"})"#
        );
        assert_eq!(restore("x{a=\"b\"}"), "x{a=\"b\"}");
    }

    #[test]
    fn matchers_with_invalid_bytes_compare_bytes() {
        let m = reencode(r#""a\xc5z""#, "1:3").unwrap();
        let m = &m[1..m.len() - 1];
        let model = |op, v: &str| {
            let (op, v) = matcher(op, v).unwrap();
            day2_model::Matcher::new(op, "l", v).unwrap()
        };
        for stored in ["", "a\u{c5}z", "aÅz", "a\u{FFFD}z", m] {
            assert!(!model(MatchOp::Equal, m).matches(stored), "{stored}");
            assert!(model(MatchOp::NotEqual, m).matches(stored), "{stored}");
            assert!(!model(MatchOp::Regex, m).matches(stored), "{stored}");
            assert!(model(MatchOp::NotRegex, m).matches(stored), "{stored}");
        }
        // literals only: the valid ones still match
        let alt = reencode(r#""foo|a\xc5z|""#, "1:3").unwrap();
        let alt = &alt[1..alt.len() - 1];
        let re = model(MatchOp::Regex, alt);
        assert!(re.matches("foo") && re.matches("") && !re.matches("aÅz"));
        // anything else is Go's compile error
        let bad = reencode(r#""a\xc5.*""#, "1:3").unwrap();
        let err = matcher(MatchOp::Regex, &bad[1..bad.len() - 1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid parameter \"query\": 1:3: parse error: error parsing regexp: invalid UTF-8: `a\u{FFFD}.*`"
        );
        assert_eq!(
            matcher(MatchOp::Equal, "x").unwrap(),
            (MatchOp::Equal, "x".into())
        );
    }

    /// The engine over `version{job="a", v="é"} 1` and `version{job="b", v="x"} 2`.
    fn run(q: &str) -> Result<crate::QueryResult, Error> {
        let mut db = crate::memstore::MemStore::new();
        let l = |job: &str, v: &str| {
            day2_model::Labels::from_pairs([("__name__", "version"), ("job", job), ("v", v)])
        };
        db.add(l("a", "é"), 0, 1.0);
        db.add(l("b", "x"), 0, 2.0);
        crate::Engine::new(Default::default()).instant(&db, q, 0)
    }

    fn err(q: &str) -> String {
        run(q).expect_err(q).to_string()
    }

    /// The `job` labels of the result, in order.
    fn jobs(q: &str) -> Vec<String> {
        match run(q).unwrap_or_else(|e| panic!("{q}: {e}")).value {
            crate::Value::Vector(_, v) => v
                .iter()
                .map(|s| s.labels.get("job").unwrap_or("-").to_string())
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_label_names_are_refused_as_prometheus_does() {
        assert_eq!(
            err(r#"count_values("a\xc5z", version)"#),
            r#"invalid label name "a\xc5z""#
        );
        assert_eq!(
            err(r"count_values('a\305z', version)"),
            r#"invalid label name "a\xc5z""#
        );
        assert_eq!(
            err(r#"label_replace(version, "\xff", "", "job", "(.*)")"#),
            "invalid destination label name in label_replace(): \u{FFFD}"
        );
        assert_eq!(
            err(r#"label_replace(version, "d", "", "job", "a\xc5(.*)")"#),
            "invalid regular expression in label_replace(): a\u{FFFD}(.*): invalid UTF-8"
        );
        assert_eq!(
            err(r#"label_join(version, "d", "-", "job", "\xc5")"#),
            "invalid source label name in label_join(): \u{FFFD}"
        );
        assert_eq!(
            err(r#"label_join(version, "d", "-", "job", "")"#),
            "invalid source label name in label_join(): "
        );
        assert_eq!(
            err(r#"label_join(version, "\xc5", "-", "job")"#),
            "invalid destination label name in label_join(): \u{FFFD}"
        );
        for (q, at, name) in [
            (r#"sum by ("a\xc5z") (version)"#, "1:9", r#""a\xc5z""#),
            (
                r#"sum without (job, "\xc5") (version)"#,
                "1:19",
                r#""\xc5""#,
            ),
            (r#"version / on ("\xc5") version"#, "1:15", r#""\xc5""#),
            (
                r#"version / ignoring (job) group_left ("\xc5") version"#,
                "1:38",
                r#""\xc5""#,
            ),
        ] {
            assert_eq!(
                err(q),
                format!(
                    "invalid parameter \"query\": {at}: parse error: invalid label name for grouping: {name}"
                ),
            );
        }
        // the parser refuses them for format_query too
        assert!(crate::format_query(r#"sum by ("\xc5") (version)"#).is_err());
    }

    #[test]
    fn values_that_are_not_utf8_match_nothing() {
        assert_eq!(jobs(r#"version{v="\xc3\xa9"}"#), ["a"]);
        assert_eq!(jobs(r#"version{v=~"\303\251|x"}"#), ["a", "b"]);
        assert!(jobs(r#"version{v="\xc3"}"#).is_empty());
        assert!(jobs(r#"version{v="\xe9"}"#).is_empty());
        assert_eq!(jobs(r#"version{v!="\xe9"}"#), ["a", "b"]);
        assert!(jobs(r#"version{v=~"\xe9"}"#).is_empty());
        assert_eq!(jobs(r#"version{v=~"x|\xe9"}"#), ["b"]);
        assert_eq!(jobs(r#"version{v!~"x|\xe9"}"#), ["a"]);
        assert!(jobs(r#"{"version\xff"}"#).is_empty());
        // a label name that is not UTF-8 is absent from every series
        assert_eq!(jobs(r#"version{"v\xff"=""}"#), ["a", "b"]);
        assert!(jobs(r#"version{"v\xff"="x"}"#).is_empty());
        assert_eq!(
            err(r#"version{job=~"\xe9.*"}"#),
            "invalid parameter \"query\": 1:9: parse error: error parsing regexp: invalid UTF-8: `\u{FFFD}.*`"
        );
        assert_eq!(
            err(r#"{v=~"\xe9|"}"#),
            "invalid parameter \"query\": vector selector must contain at least one non-empty matcher"
        );
        let selectors = crate::query_selectors(r#"version{v="\xe9"}"#).unwrap();
        assert!(selectors[0][0].iter().all(|m| !m.matches("\u{e9}")));
    }

    #[test]
    fn values_that_are_not_utf8_are_never_written_to_labels() {
        assert_eq!(
            err(r#"label_replace(version, "d", "\xc5$1", "job", "(.*)")"#),
            r#"label_replace(): replacement "\xc5$1" is not valid UTF-8"#
        );
        // no series matches: no label is written, as in Prometheus
        assert_eq!(
            jobs(r#"label_replace(version, "d", "\xc5", "job", "z")"#),
            ["a", "b"]
        );
        // a source label name that is not UTF-8 reads as empty
        assert_eq!(
            jobs(r#"label_replace(version, "job", "c", "\xc5", "")"#),
            ["c", "c"]
        );
        assert_eq!(
            err(r#"label_join(version, "d", "\xc5", "job", "v")"#),
            r#"label_join(): separator "\xc5" is not valid UTF-8"#
        );
        assert_eq!(
            jobs(r#"label_join(version, "d", "\xc5", "job")"#),
            ["a", "b"]
        );
        assert_eq!(
            err(r#"absent(nosuch{job="\xc5"})"#),
            r#"absent(): label value "\xc5" is not valid UTF-8"#
        );
        assert_eq!(
            err(r#"absent_over_time(nosuch{"\xc5"="x"}[1m])"#),
            r#"absent_over_time(): label name "\xc5" is not valid UTF-8"#
        );
        assert_eq!(
            err(r#"histogram_quantiles(version, "\xc5", 0.5)"#),
            r#"histogram_quantiles(): label name "\xc5" is not valid UTF-8"#
        );
        // the string result is what Prometheus's JSON shows
        match run(r#""a\xc5z""#).unwrap().value {
            crate::Value::String(_, s) => assert_eq!(s, "a\u{FFFD}z"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            crate::format_query(r#"count_values("a\xc5z", version{v="\xc3\xa9"})"#).unwrap(),
            r#"count_values("a\xc5z", version{v="é"})"#
        );
    }
}
