//! Lexer: splits a template source into text and action tokens, applying the
//! `{{- ` / ` -}}` whitespace trimming and dropping `{{/* comments */}}`.

/// A token kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Text(String),
    Open,
    Close,
    Dot,
    /// `.Name` (without the dot).
    Field(String),
    /// `$name` (with the dollar; `$` alone is the root).
    Var(String),
    Ident(String),
    Str(String),
    Char(i64),
    Number(String),
    Bool(bool),
    Nil,
    Declare,
    Assign,
    Pipe,
    LParen,
    RParen,
    Comma,
}

/// A token and its byte span in the source.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
    pub end: usize,
}

/// A lexing error at a byte offset.
pub(crate) struct LexError {
    pub pos: usize,
    pub msg: String,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, LexError> {
    let b = src.as_bytes();
    let mut toks: Vec<Token> = Vec::new();
    let mut i = 0;
    let mut trim_next = false;
    loop {
        if trim_next {
            while i < b.len() && is_space(b[i]) {
                i += 1;
            }
            trim_next = false;
        }
        let open = src[i..].find("{{").map(|o| i + o);
        let text_end = open.unwrap_or(b.len());
        let left_trim = open.is_some_and(|o| {
            b.get(o + 2) == Some(&b'-') && b.get(o + 3).is_some_and(|&c| is_space(c))
        });
        let mut text = &src[i..text_end];
        if left_trim {
            text = text.trim_end_matches([' ', '\t', '\r', '\n']);
        }
        if !text.is_empty() {
            toks.push(Token {
                tok: Tok::Text(text.to_string()),
                pos: i,
                end: i + text.len(),
            });
        }
        let Some(open) = open else { break };
        let mut p = open + 2;
        if left_trim {
            p += 2;
        }
        if src[p..].starts_with("/*") {
            let Some(e) = src[p + 2..].find("*/") else {
                return Err(LexError {
                    pos: open,
                    msg: "unclosed comment".into(),
                });
            };
            let mut q = p + 2 + e + 2;
            if src[q..].starts_with("}}") {
                i = q + 2;
            } else if q < b.len() && is_space(b[q]) && src[q + 1..].starts_with("-}}") {
                q += 4;
                i = q;
                trim_next = true;
            } else {
                return Err(LexError {
                    pos: open,
                    msg: "comment ends before closing delimiter".into(),
                });
            }
            continue;
        }
        toks.push(Token {
            tok: Tok::Open,
            pos: open,
            end: p,
        });
        let (next, trim) = lex_action(src, p, &mut toks)?;
        i = next;
        trim_next = trim;
    }
    Ok(toks)
}

/// Lexes inside `{{ }}` from `p`; returns the offset after `}}` and whether it was ` -}}`.
fn lex_action(src: &str, mut p: usize, toks: &mut Vec<Token>) -> Result<(usize, bool), LexError> {
    let b = src.as_bytes();
    let start = p;
    loop {
        let ws = p;
        while p < b.len() && is_space(b[p]) {
            p += 1;
        }
        if p > ws && src[p..].starts_with("-}}") {
            toks.push(Token {
                tok: Tok::Close,
                pos: p,
                end: p + 3,
            });
            return Ok((p + 3, true));
        }
        if p >= b.len() {
            return Err(LexError {
                pos: start.saturating_sub(2),
                msg: "unclosed action".into(),
            });
        }
        if src[p..].starts_with("}}") {
            toks.push(Token {
                tok: Tok::Close,
                pos: p,
                end: p + 2,
            });
            return Ok((p + 2, false));
        }
        let c = b[p];
        let pos = p;
        let err = |msg: String| LexError { pos, msg };
        let tok = match c {
            b'|' => {
                p += 1;
                Tok::Pipe
            }
            b'(' => {
                p += 1;
                Tok::LParen
            }
            b')' => {
                p += 1;
                Tok::RParen
            }
            b',' => {
                p += 1;
                Tok::Comma
            }
            b':' => {
                if b.get(p + 1) != Some(&b'=') {
                    return Err(err("expected :=".into()));
                }
                p += 2;
                Tok::Declare
            }
            b'=' => {
                p += 1;
                Tok::Assign
            }
            b'"' => {
                let (s, n) = lex_quoted(src, p).map_err(&err)?;
                p = n;
                Tok::Str(s)
            }
            b'`' => {
                let Some(e) = src[p + 1..].find('`') else {
                    return Err(err("unterminated raw quoted string".into()));
                };
                let s = src[p + 1..p + 1 + e].replace('\r', "");
                p = p + 2 + e;
                Tok::Str(s)
            }
            b'\'' => {
                let (c, n) = lex_char(src, p).map_err(&err)?;
                p = n;
                Tok::Char(c)
            }
            b'$' => {
                let n = scan_alnum(src, p + 1);
                let name = src[p..n].to_string();
                p = n;
                Tok::Var(name)
            }
            b'.' if b.get(p + 1).is_some_and(|c| c.is_ascii_digit()) => {
                let n = scan_number(src, p);
                let s = src[p..n].to_string();
                p = n;
                Tok::Number(s)
            }
            b'.' => {
                let n = scan_alnum(src, p + 1);
                if n == p + 1 {
                    p += 1;
                    Tok::Dot
                } else {
                    let name = src[p + 1..n].to_string();
                    p = n;
                    Tok::Field(name)
                }
            }
            b'0'..=b'9' => {
                let n = scan_number(src, p);
                let s = src[p..n].to_string();
                p = n;
                Tok::Number(s)
            }
            b'+' | b'-'
                if b.get(p + 1)
                    .is_some_and(|c| c.is_ascii_digit() || *c == b'.') =>
            {
                let n = scan_number(src, p);
                let s = src[p..n].to_string();
                p = n;
                Tok::Number(s)
            }
            _ => {
                let ch = src[p..].chars().next().unwrap_or(' ');
                if !is_alnum(ch) {
                    return Err(err(format!("unrecognized character in action: {ch:?}")));
                }
                let n = scan_alnum(src, p);
                let word = &src[p..n];
                p = n;
                match word {
                    "true" => Tok::Bool(true),
                    "false" => Tok::Bool(false),
                    "nil" => Tok::Nil,
                    _ => Tok::Ident(word.to_string()),
                }
            }
        };
        toks.push(Token { tok, pos, end: p });
    }
}

fn scan_alnum(src: &str, from: usize) -> usize {
    let mut n = from;
    for ch in src[from..].chars() {
        if !is_alnum(ch) {
            break;
        }
        n += ch.len_utf8();
    }
    n
}

/// Scans a number literal loosely; the parser validates it.
fn scan_number(src: &str, from: usize) -> usize {
    let b = src.as_bytes();
    let mut n = from;
    if matches!(b[n], b'+' | b'-') {
        n += 1;
    }
    let hex = src[n..].starts_with("0x") || src[n..].starts_with("0X");
    while n < b.len() {
        let c = b[n];
        let exp = if hex {
            matches!(c, b'p' | b'P')
        } else {
            matches!(c, b'e' | b'E')
        };
        if exp && matches!(b.get(n + 1), Some(b'+' | b'-')) {
            n += 2;
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' {
            n += 1;
        } else {
            break;
        }
    }
    n
}

/// Reads one escape or plain character starting at `p` inside a quoted literal.
fn unescape_one(src: &str, p: usize, quote: char) -> Result<(char, usize), String> {
    let rest = &src[p..];
    let mut chars = rest.chars();
    let c = chars.next().ok_or("unterminated quoted string")?;
    if c == '\n' {
        return Err("unterminated quoted string".into());
    }
    if c != '\\' {
        return Ok((c, p + c.len_utf8()));
    }
    let e = chars.next().ok_or("unterminated quoted string")?;
    let simple = match e {
        'a' => Some('\x07'),
        'b' => Some('\x08'),
        'f' => Some('\x0c'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\x0b'),
        '\\' => Some('\\'),
        '"' if quote == '"' => Some('"'),
        '\'' if quote == '\'' => Some('\''),
        _ => None,
    };
    if let Some(s) = simple {
        return Ok((s, p + 2));
    }
    let (digits, radix) = match e {
        'x' => (2, 16),
        'u' => (4, 16),
        'U' => (8, 16),
        '0'..='7' => (3, 8),
        _ => return Err(format!("invalid syntax: unknown escape sequence \\{e}")),
    };
    let start = if radix == 8 { p + 1 } else { p + 2 };
    let hexs = rest
        .get(start - p..start - p + digits)
        .ok_or("invalid syntax: short escape sequence")?;
    let v = u32::from_str_radix(hexs, radix).map_err(|_| "invalid syntax: bad escape")?;
    let ch = char::from_u32(v).ok_or("invalid syntax: escape is not a valid character")?;
    Ok((ch, start + digits))
}

fn lex_quoted(src: &str, p: usize) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut q = p + 1;
    loop {
        if src[q..].starts_with('"') {
            return Ok((out, q + 1));
        }
        let (c, n) = unescape_one(src, q, '"')?;
        out.push(c);
        q = n;
    }
}

fn lex_char(src: &str, p: usize) -> Result<(i64, usize), String> {
    let (c, n) = unescape_one(src, p + 1, '\'')?;
    if !src[n..].starts_with('\'') {
        return Err("unterminated character constant".into());
    }
    Ok((i64::from(u32::from(c)), n + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Tok> {
        match lex(src) {
            Ok(t) => t.into_iter().map(|t| t.tok).collect(),
            Err(e) => panic!("{}", e.msg),
        }
    }

    #[test]
    fn trims_and_comments() {
        assert_eq!(
            kinds("a  {{- .X -}}  b"),
            vec![
                Tok::Text("a".into()),
                Tok::Open,
                Tok::Field("X".into()),
                Tok::Close,
                Tok::Text("b".into())
            ]
        );
        assert_eq!(
            kinds("a \n{{- /* hi */ -}}\n b"),
            vec![Tok::Text("a".into()), Tok::Text("b".into())]
        );
        assert_eq!(kinds("{{-3}}")[1], Tok::Number("-3".into()));
    }

    #[test]
    fn literals() {
        let t = kinds(r#"{{ "a\n\x41\u00e9" `r\n` 'x' '\n' 0x1F 1.5e+3 $ $x .A.b }}"#);
        assert_eq!(t[1], Tok::Str("a\nAé".into()));
        assert_eq!(t[2], Tok::Str("r\\n".into()));
        assert_eq!(t[3], Tok::Char(120));
        assert_eq!(t[4], Tok::Char(10));
        assert_eq!(t[5], Tok::Number("0x1F".into()));
        assert_eq!(t[6], Tok::Number("1.5e+3".into()));
        assert_eq!(t[7], Tok::Var("$".into()));
        assert_eq!(t[8], Tok::Var("$x".into()));
        assert_eq!(t[9], Tok::Field("A".into()));
        assert_eq!(t[10], Tok::Field("b".into()));
    }
}
