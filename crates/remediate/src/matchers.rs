//! One Alertmanager-style label matcher per string: `alertname="DiskFull"`,
//! `severity=~"critical|page"`, `env!=staging`. Values may be double-quoted
//! (with `\"`, `\\`, `\n` escapes) or bare.

use day2_model::{MatchOp, Matcher};

/// Parses one matcher.
pub fn parse_matcher(input: &str) -> Result<Matcher, String> {
    let s = input.trim();
    let name_end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    let name = &s[..name_end];
    if !crate::template::is_ident(name) {
        return Err(format!("matcher {input:?}: expected a label name"));
    }
    let rest = s[name_end..].trim_start();
    let (op, rest) = [
        ("=~", MatchOp::Regex),
        ("!~", MatchOp::NotRegex),
        ("!=", MatchOp::NotEqual),
        ("=", MatchOp::Equal),
    ]
    .iter()
    .find_map(|(tok, op)| rest.strip_prefix(tok).map(|r| (*op, r)))
    .ok_or_else(|| format!("matcher {input:?}: expected one of =, !=, =~, !~ after {name:?}"))?;
    let rest = rest.trim_start();
    let value = if let Some(body) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.chars();
        let mut closed = false;
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    closed = true;
                    break;
                }
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(c @ ('"' | '\\')) => out.push(c),
                    // regexes keep their own escapes (`\d`, `\.`)
                    Some(c) => {
                        out.push('\\');
                        out.push(c);
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        if !closed {
            return Err(format!("matcher {input:?}: unterminated quoted value"));
        }
        if !chars.as_str().trim().is_empty() {
            return Err(format!(
                "matcher {input:?}: unexpected text after the quoted value"
            ));
        }
        out
    } else {
        if rest.contains(['"', '{', '}', ',']) {
            return Err(format!(
                "matcher {input:?}: quote a value that holds \", {{, }} or ,"
            ));
        }
        rest.trim_end().to_string()
    };
    Matcher::new(op, name, value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_four_operators() {
        let m = parse_matcher(r#"alertname="DiskFull""#).unwrap();
        assert_eq!(
            (m.name.as_str(), m.op, m.value.as_str()),
            ("alertname", MatchOp::Equal, "DiskFull")
        );
        let m = parse_matcher(r#"severity =~ "crit|page""#).unwrap();
        assert!(m.matches("page") && !m.matches("pager"));
        let m = parse_matcher("env!=staging").unwrap();
        assert_eq!(m.op, MatchOp::NotEqual);
        let m = parse_matcher(r#"path!~"/var/.*""#).unwrap();
        assert!(!m.matches("/var/log") && m.matches("/home"));
        let m = parse_matcher(r#"a="x\"y""#).unwrap();
        assert_eq!(m.value, "x\"y");
    }

    #[test]
    fn refuses_bad_matchers() {
        for bad in ["", "=x", "a", r#"a="x"#, r#"a="x" b"#, "a=~(", "a-b=c"] {
            assert!(parse_matcher(bad).is_err(), "{bad}");
        }
    }
}
