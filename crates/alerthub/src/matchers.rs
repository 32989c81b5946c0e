//! Alertmanager's matcher syntax, parsed into `day2_model::Matcher`s.
//!
//! Accepted forms (Alertmanager 0.27+ "fallback" mode):
//! - one matcher: `foo="bar"`, `foo = bar`, `foo=~"a|b"`, `foo!~x`, `"odd name"="v"`;
//! - a list: `{a="b", c!~"d"}` or `a="b", c!~"d"` (braces optional but balanced,
//!   one trailing comma allowed);
//! - unquoted names and values are literals without whitespace or any of
//!   `{ } ! = ~ , \ " ' `` ` ``; double-quoted strings use Go escapes (`\"`, `\\`,
//!   `\n`, `\t`, `\xNN`, `\uNNNN`, ...).
//!
//! When a single matcher does not fit that grammar, the classic (0.26) form is
//! tried: a Prometheus label name, an operator, and everything after it (trimmed;
//! optional surrounding quotes, OpenMetrics escapes `\"`, `\n`, `\\`). So
//! `foo=bar baz` and `re=~\d+` still parse, as Alertmanager's fallback mode does.
//!
//! Regular expressions are fully anchored (`day2_model::Matcher`).

use day2_model::labels::is_valid_label_name;
use day2_model::{Labels, MatchOp, Matcher};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad matcher {input:?}: {message}")]
pub struct MatcherParseError {
    pub input: String,
    pub message: String,
}

/// A conjunction of matchers: all must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    pub fn new(mut ms: Vec<Matcher>) -> Self {
        sort_matchers(&mut ms);
        Matchers(ms)
    }

    /// Parses one expression (`{a="b", c=~"d"}`, or a single matcher).
    pub fn parse(input: &str) -> Result<Self, MatcherParseError> {
        Ok(Matchers::new(parse_matchers(input)?))
    }

    /// True when every matcher accepts the label set (a missing label is "").
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|m| m.matches_labels(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Matcher> {
        self.0.iter()
    }

    /// Adds matchers and keeps the set sorted (name, operator, value).
    pub fn extend(&mut self, more: impl IntoIterator<Item = Matcher>) {
        self.0.extend(more);
        sort_matchers(&mut self.0);
    }
}

fn op_rank(op: MatchOp) -> u8 {
    match op {
        MatchOp::Equal => 0,
        MatchOp::NotEqual => 1,
        MatchOp::Regex => 2,
        MatchOp::NotRegex => 3,
    }
}

fn sort_matchers(ms: &mut [Matcher]) {
    ms.sort_by(|a, b| {
        (a.name.as_str(), op_rank(a.op), a.value.as_str()).cmp(&(
            b.name.as_str(),
            op_rank(b.op),
            b.value.as_str(),
        ))
    });
}

/// Formats one matcher as Alertmanager prints it: `name="value"`, the name
/// quoted only when it is not a classic label name.
pub fn format_matcher(m: &Matcher) -> String {
    let name = if is_valid_label_name(&m.name) {
        m.name.clone()
    } else {
        go_quote(&m.name)
    };
    format!("{name}{}{}", m.op.as_str(), go_quote(&m.value))
}

impl fmt::Display for Matchers {
    /// `{a="b",c=~"d"}`: the form Alertmanager uses in route keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(&format_matcher(m))?;
        }
        f.write_str("}")
    }
}

impl<'de> Deserialize<'de> for Matchers {
    /// A YAML list of strings; each string holds one matcher or a `{...}` list.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items: Option<Vec<String>> = Option::deserialize(d)?;
        let mut out = Vec::new();
        for item in items.unwrap_or_default() {
            out.extend(parse_matchers(&item).map_err(serde::de::Error::custom)?);
        }
        Ok(Matchers::new(out))
    }
}

impl Serialize for Matchers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(format_matcher))
    }
}

/// Quotes like Go's `%q` for the characters label values contain in practice:
/// `"` and `\` escaped, control characters as `\n`, `\t`, `\xNN`, `\u00NN`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Parses exactly one matcher.
pub fn parse_matcher(input: &str) -> Result<Matcher, MatcherParseError> {
    let mut ms = parse_matchers(input)?;
    if ms.len() != 1 {
        return Err(MatcherParseError {
            input: input.to_string(),
            message: format!("expected exactly one matcher, found {}", ms.len()),
        });
    }
    Ok(ms.remove(0))
}

/// Parses a matcher expression into its matchers (in written order).
pub fn parse_matchers(input: &str) -> Result<Vec<Matcher>, MatcherParseError> {
    let err = |message: String| MatcherParseError {
        input: input.to_string(),
        message,
    };
    match parse_list(input) {
        Ok(raw) => build(raw).map_err(err),
        Err(utf8_err) => match parse_classic(input) {
            Some(raw) => build(vec![raw]).map_err(err),
            None => Err(err(utf8_err)),
        },
    }
}

type Raw = (String, MatchOp, String);

fn build(raw: Vec<Raw>) -> Result<Vec<Matcher>, String> {
    raw.into_iter()
        .map(|(name, op, value)| Matcher::new(op, name, value).map_err(|e| e.to_string()))
        .collect()
}

const RESERVED: &[char] = &['{', '}', '!', '=', '~', ',', '\\', '"', '\'', '`'];

struct Lexer<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
    fn skip_ws(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start().len();
    }
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }
    /// An unquoted literal or a double-quoted string.
    fn token(&mut self, what: &str) -> Result<String, String> {
        match self.peek() {
            Some('"') => self.quoted(),
            Some(_) => {
                let r = self.rest();
                let end = r
                    .find(|c: char| c.is_whitespace() || RESERVED.contains(&c))
                    .unwrap_or(r.len());
                if end == 0 {
                    return Err(format!(
                        "unexpected {:?} at offset {}: expected {what}",
                        self.peek().unwrap_or(' '),
                        self.pos
                    ));
                }
                self.pos += end;
                Ok(r[..end].to_string())
            }
            None => Err(format!("end of input: expected {what}")),
        }
    }
    fn quoted(&mut self) -> Result<String, String> {
        let start = self.pos;
        self.pos += 1; // opening quote
        let mut bytes: Vec<u8> = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(format!("unterminated quoted string at offset {start}"));
            };
            self.pos += c.len_utf8();
            match c {
                '"' => break,
                '\\' => {
                    let Some(e) = self.peek() else {
                        return Err("unterminated escape sequence".into());
                    };
                    self.pos += e.len_utf8();
                    match e {
                        '"' => bytes.push(b'"'),
                        '\\' => bytes.push(b'\\'),
                        '\'' => bytes.push(b'\''),
                        'n' => bytes.push(b'\n'),
                        't' => bytes.push(b'\t'),
                        'r' => bytes.push(b'\r'),
                        'a' => bytes.push(0x07),
                        'b' => bytes.push(0x08),
                        'f' => bytes.push(0x0c),
                        'v' => bytes.push(0x0b),
                        'x' => bytes.push(self.hex(2)? as u8),
                        'u' | 'U' => {
                            let n = self.hex(if e == 'u' { 4 } else { 8 })?;
                            let ch = char::from_u32(n)
                                .ok_or_else(|| format!("invalid code point \\{e}{n:x}"))?;
                            let mut buf = [0u8; 4];
                            bytes.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        '0'..='7' => {
                            let r = self.rest();
                            let digits: String =
                                std::iter::once(e).chain(r.chars().take(2)).collect();
                            if digits.len() != 3
                                || !digits.chars().all(|d| ('0'..='7').contains(&d))
                            {
                                return Err("invalid octal escape".into());
                            }
                            self.pos += 2;
                            let v = u32::from_str_radix(&digits, 8).map_err(|e| e.to_string())?;
                            if v > 255 {
                                return Err("octal escape out of range".into());
                            }
                            bytes.push(v as u8);
                        }
                        other => return Err(format!("unknown escape sequence \\{other}")),
                    }
                }
                c => {
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        String::from_utf8(bytes).map_err(|_| "quoted string is not valid UTF-8".to_string())
    }
    fn hex(&mut self, n: usize) -> Result<u32, String> {
        let r = self.rest();
        let digits: String = r.chars().take(n).collect();
        if digits.len() != n || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err("invalid hexadecimal escape".into());
        }
        self.pos += n;
        u32::from_str_radix(&digits, 16).map_err(|e| e.to_string())
    }
    fn op(&mut self) -> Result<MatchOp, String> {
        for (t, op) in [
            ("=~", MatchOp::Regex),
            ("!~", MatchOp::NotRegex),
            ("!=", MatchOp::NotEqual),
            ("=", MatchOp::Equal),
        ] {
            if self.rest().starts_with(t) {
                self.pos += t.len();
                return Ok(op);
            }
        }
        Err(match self.peek() {
            Some(c) => format!(
                "unexpected {c:?} at offset {}: expected one of =, !=, =~, !~",
                self.pos
            ),
            None => "end of input: expected one of =, !=, =~, !~".into(),
        })
    }
}

fn parse_list(input: &str) -> Result<Vec<Raw>, String> {
    let trimmed = input.trim();
    let (body, braced) = match (trimmed.strip_prefix('{'), trimmed.ends_with('}')) {
        (Some(inner), true) => (&inner[..inner.len() - 1], true),
        (Some(_), false) => return Err("missing closing '}'".into()),
        (None, true) => return Err("missing opening '{'".into()),
        (None, false) => (trimmed, false),
    };
    let mut lx = Lexer { s: body, pos: 0 };
    let mut out = Vec::new();
    loop {
        lx.skip_ws();
        if lx.peek().is_none() {
            break;
        }
        let name = lx.token("label name")?;
        if name.is_empty() {
            return Err("empty label name".into());
        }
        lx.skip_ws();
        let op = lx.op()?;
        lx.skip_ws();
        let value = lx.token("label value")?;
        out.push((name, op, value));
        lx.skip_ws();
        match lx.peek() {
            None => break,
            Some(',') => {
                lx.eat(',');
            }
            Some(c) => {
                return Err(format!(
                    "unexpected {c:?} at offset {}: expected a comma or the end",
                    lx.pos
                ));
            }
        }
    }
    if out.is_empty() && !braced {
        return Err("no matchers".into());
    }
    Ok(out)
}

/// The classic single-matcher form: `name op value` with a Prometheus label
/// name and the rest of the line as the value.
fn parse_classic(input: &str) -> Option<Raw> {
    let s = input.trim();
    let name_end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(s.len());
    let name = &s[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let rest = s[name_end..].trim_start();
    let (op, rest) = [
        ("=~", MatchOp::Regex),
        ("!~", MatchOp::NotRegex),
        ("!=", MatchOp::NotEqual),
        ("=", MatchOp::Equal),
    ]
    .into_iter()
    .find_map(|(t, op)| rest.strip_prefix(t).map(|r| (op, r)))?;
    let mut v = rest.trim();
    let quoted = v.len() >= 2 && v.starts_with('"') && v.ends_with('"');
    if quoted {
        v = &v[1..v.len() - 1];
    } else if v.contains('"') {
        return None; // a quote may only open and close the value
    }
    let mut value = String::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some('\\') => {
                    value.push('\\');
                    chars.next();
                }
                Some('n') => {
                    value.push('\n');
                    chars.next();
                }
                Some('"') => {
                    value.push('"');
                    chars.next();
                }
                _ => value.push('\\'),
            }
        } else if c == '"' && quoted {
            return None; // unescaped quote inside a quoted value
        } else {
            value.push(c);
        }
    }
    Some((name.to_string(), op, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> (String, MatchOp, String) {
        let m = parse_matcher(s).unwrap();
        (m.name, m.op, m.value)
    }

    #[test]
    fn single_matchers_quoted_and_unquoted() {
        assert_eq!(
            one(r#"foo="bar""#),
            ("foo".into(), MatchOp::Equal, "bar".into())
        );
        assert_eq!(
            one("foo = bar"),
            ("foo".into(), MatchOp::Equal, "bar".into())
        );
        assert_eq!(
            one(r#"foo=~"a|b""#),
            ("foo".into(), MatchOp::Regex, "a|b".into())
        );
        assert_eq!(one("foo!=x"), ("foo".into(), MatchOp::NotEqual, "x".into()));
        assert_eq!(
            one("foo !~ x.*"),
            ("foo".into(), MatchOp::NotRegex, "x.*".into())
        );
        assert_eq!(
            one(r#""odd name"="v""#),
            ("odd name".into(), MatchOp::Equal, "v".into())
        );
        assert_eq!(
            one("name=Προμηθεύς"),
            ("name".into(), MatchOp::Equal, "Προμηθεύς".into())
        );
    }

    #[test]
    fn escapes_in_quoted_strings() {
        assert_eq!(one(r#"a="x\"y""#).2, "x\"y");
        assert_eq!(one(r#"a=~"\\d+""#).2, r"\d+");
        assert_eq!(one(r#"a="\xf0\x9f\x99\x82""#).2, "🙂");
        assert_eq!(one(r#"a="line\nbreak""#).2, "line\nbreak");
        assert_eq!(one(r#"a="bar,baz""#).2, "bar,baz");
    }

    #[test]
    fn lists_with_and_without_braces() {
        let ms =
            parse_matchers(r#"{alertname="Watchdog", severity=~"warning|critical",}"#).unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[1].op, MatchOp::Regex);
        let ms = parse_matchers(r#"alertname="Watchdog", severity=~"warning|critical""#).unwrap();
        assert_eq!(ms.len(), 2);
        let ms = parse_matchers("{\n  a = \"1\",\n  b != 2,\n}").unwrap();
        assert_eq!(ms.len(), 2);
        assert!(parse_matchers("{}").unwrap().is_empty());
    }

    #[test]
    fn unbalanced_or_broken_input_is_refused() {
        for bad in [
            r#"{a="b""#,
            r#"a="b"}"#,
            r#"{{a="b"}}"#,
            "",
            "a",
            r#"a=~"(""#,
            r#"a="unterminated"#,
            r#"{a="b" c="d"}"#,
        ] {
            assert!(parse_matchers(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn classic_fallback_for_single_matchers() {
        // a backslash is reserved in unquoted literals, classic takes the rest
        assert_eq!(one(r"a=~\d+").2, r"\d+");
        assert_eq!(one("a=bar baz").2, "bar baz");
        assert_eq!(one("foo=").2, "");
        assert_eq!(one("foo=bar!").2, "bar!");
    }

    #[test]
    fn regex_matchers_are_anchored() {
        let ms = Matchers::parse(r#"{service=~"foo1|foo2"}"#).unwrap();
        assert!(ms.matches(&Labels::from_pairs([("service", "foo1")])));
        assert!(!ms.matches(&Labels::from_pairs([("service", "foo10")])));
        assert!(!ms.matches(&Labels::empty()));
    }

    #[test]
    fn display_sorts_and_quotes() {
        let ms = Matchers::parse(r#"{z="1", a=~"x\"y", "b c"!="v"}"#).unwrap();
        assert_eq!(ms.to_string(), r#"{a=~"x\"y","b c"!="v",z="1"}"#);
    }

    #[test]
    fn deserializes_from_yaml_list() {
        let ms: Matchers =
            serde_yaml_ng::from_str("- foo = bar\n- '{a=\"1\", b!~\"2\"}'\n").unwrap();
        assert_eq!(ms.len(), 3);
        assert!(serde_yaml_ng::from_str::<Matchers>("- 'a=~\"(\"'\n").is_err());
    }
}
