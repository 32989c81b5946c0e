//! Parser: tokens to a tree of nodes. Undefined functions and variables, misplaced
//! `else`/`end`/`break` and malformed literals are parse errors, as in Go.

use std::collections::HashSet;
use std::sync::Arc;

use crate::builtins::Builtin;
use crate::lex::{Tok, Token, lex};
use crate::value::Value;

/// The text of one parsed file, kept for error positions.
#[derive(Debug)]
pub(crate) struct Source {
    pub name: String,
    pub text: String,
}

impl Source {
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, pos: usize) -> (usize, usize) {
        let pos = pos.min(self.text.len());
        let before = &self.text[..pos];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }
}

/// A parsed template body and the file it came from.
#[derive(Debug)]
pub(crate) struct Tree {
    pub name: String,
    pub src: Arc<Source>,
    pub root: Vec<Node>,
}

#[derive(Debug)]
pub(crate) enum Node {
    Text(String),
    Action(Pipe),
    If(Branch),
    Range(Branch),
    With(Branch),
    Template {
        pos: usize,
        end: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break,
    Continue,
}

#[derive(Debug)]
pub(crate) struct Branch {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug)]
pub(crate) struct Pipe {
    pub decl: Vec<String>,
    pub assign: bool,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug)]
pub(crate) struct Cmd {
    pub args: Vec<Arg>,
}

#[derive(Debug)]
pub(crate) struct Arg {
    pub pos: usize,
    pub end: usize,
    pub kind: ArgKind,
}

#[derive(Debug)]
pub(crate) enum ArgKind {
    Dot,
    Nil,
    Lit(Value),
    /// `.A.B`: a field chain on dot.
    Field(Vec<String>),
    /// `$x.A.B`.
    Var(String, Vec<String>),
    Func(Func),
    /// `(pipeline).A.B`.
    Pipe(Box<Pipe>, Vec<String>),
}

#[derive(Debug)]
pub(crate) enum Func {
    Builtin(Builtin),
    User(String),
}

/// A parse error at a byte offset.
pub(crate) struct ParseError {
    pub pos: usize,
    pub msg: String,
}

type PResult<T> = Result<T, ParseError>;

/// What ended a list of nodes.
enum Term {
    End(usize),
    Else(usize),
    Eof,
}

const KEYWORDS: [&str; 10] = [
    "block", "break", "continue", "define", "else", "end", "if", "range", "template", "with",
];
const MAX_NESTING: usize = 200;

/// A parsed file: its top-level body and its `define`d templates, in order.
pub(crate) struct ParsedFile {
    pub main: Vec<Node>,
    pub defines: Vec<(String, Vec<Node>)>,
}

pub(crate) fn parse_file(
    src: &str,
    funcs: &HashSet<String>,
    vars: &[String],
) -> PResult<ParsedFile> {
    let toks = lex(src).map_err(|e| ParseError {
        pos: e.pos,
        msg: e.msg,
    })?;
    let mut vs = vec!["$".to_string()];
    vs.extend(vars.iter().cloned());
    let mut p = Parser {
        toks,
        i: 0,
        funcs,
        vars: vs,
        predeclared: vars.to_vec(),
        defines: Vec::new(),
        range_depth: 0,
        nesting: 0,
        in_define: false,
        src_len: src.len(),
    };
    let (main, term) = p.list()?;
    match term {
        Term::Eof => {}
        Term::End(pos) => {
            return Err(ParseError {
                pos,
                msg: "unexpected {{end}}".into(),
            });
        }
        Term::Else(pos) => {
            return Err(ParseError {
                pos,
                msg: "unexpected {{else}}".into(),
            });
        }
    }
    Ok(ParsedFile {
        main,
        defines: p.defines,
    })
}

struct Parser<'f> {
    toks: Vec<Token>,
    i: usize,
    funcs: &'f HashSet<String>,
    vars: Vec<String>,
    predeclared: Vec<String>,
    defines: Vec<(String, Vec<Node>)>,
    range_depth: usize,
    nesting: usize,
    in_define: bool,
    src_len: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.i)
    }

    fn peek_tok(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.tok)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.i).cloned();
        self.i += 1;
        t
    }

    fn pos(&self) -> usize {
        self.peek().map_or(self.src_len, |t| t.pos)
    }

    fn err(&self, msg: impl Into<String>) -> ParseError {
        ParseError {
            pos: self.pos(),
            msg: msg.into(),
        }
    }

    fn expect_close(&mut self, context: &str) -> PResult<()> {
        match self.next() {
            Some(Token {
                tok: Tok::Close, ..
            }) => Ok(()),
            Some(t) => Err(ParseError {
                pos: t.pos,
                msg: format!("unexpected {} in {context}", describe(&t.tok)),
            }),
            None => Err(ParseError {
                pos: self.src_len,
                msg: format!("unclosed action in {context}"),
            }),
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(self.err("template nesting too deep"));
        }
        Ok(())
    }

    /// Parses nodes until `{{end}}`, `{{else}}` or end of input.
    fn list(&mut self) -> PResult<(Vec<Node>, Term)> {
        let mut nodes = Vec::new();
        loop {
            let Some(t) = self.next() else {
                return Ok((nodes, Term::Eof));
            };
            match t.tok {
                Tok::Text(s) => nodes.push(Node::Text(s)),
                Tok::Open => {
                    let kw = match self.peek_tok() {
                        Some(Tok::Ident(w)) if KEYWORDS.contains(&w.as_str()) => Some(w.clone()),
                        _ => None,
                    };
                    let Some(kw) = kw else {
                        let pipe = self.pipeline("command", false)?;
                        nodes.push(Node::Action(pipe));
                        continue;
                    };
                    let kw_pos = self.pos();
                    self.i += 1;
                    match kw.as_str() {
                        "end" => {
                            self.expect_close("end")?;
                            return Ok((nodes, Term::End(kw_pos)));
                        }
                        "else" => return Ok((nodes, Term::Else(kw_pos))),
                        "if" | "range" | "with" => nodes.push(self.control(&kw)?),
                        "template" => nodes.push(self.template(kw_pos)?),
                        "define" => {
                            if self.in_define || self.nesting > 0 {
                                return Err(ParseError {
                                    pos: kw_pos,
                                    msg: "{{define}} is only allowed at the top level".into(),
                                });
                            }
                            self.define(kw_pos, false)?;
                        }
                        "block" => {
                            if self.in_define || self.nesting > 0 {
                                return Err(ParseError {
                                    pos: kw_pos,
                                    msg: "{{block}} is only allowed at the top level".into(),
                                });
                            }
                            nodes.push(self.define(kw_pos, true)?.expect("block"));
                        }
                        "break" | "continue" => {
                            if self.range_depth == 0 {
                                return Err(ParseError {
                                    pos: kw_pos,
                                    msg: format!("{{{{{kw}}}}} outside {{{{range}}}}"),
                                });
                            }
                            self.expect_close(&kw)?;
                            nodes.push(if kw == "break" {
                                Node::Break
                            } else {
                                Node::Continue
                            });
                        }
                        _ => unreachable!("keyword list"),
                    }
                }
                other => {
                    return Err(ParseError {
                        pos: t.pos,
                        msg: format!("unexpected {}", describe(&other)),
                    });
                }
            }
        }
    }

    /// `if`, `range`, `with` after the keyword: pipeline, body, optional else, end.
    fn control(&mut self, kind: &str) -> PResult<Node> {
        self.enter()?;
        let mark = self.vars.len();
        let pipe = self.pipeline(kind, kind == "range")?;
        if kind == "range" {
            self.range_depth += 1;
        }
        let (list, term) = self.list()?;
        if kind == "range" {
            self.range_depth -= 1;
        }
        let else_list = match term {
            Term::End(_) => None,
            Term::Eof => {
                return Err(self.err(format!(
                    "unexpected EOF: missing {{{{end}}}} for {{{{{kind}}}}}"
                )));
            }
            Term::Else(_) => {
                let chain = matches!(self.peek_tok(), Some(Tok::Ident(w)) if (w == "if" || w == "with") && w == kind);
                if chain {
                    // `{{else if}}` / `{{else with}}`: a nested control sharing our `{{end}}`.
                    self.i += 1;
                    Some(vec![self.control(kind)?])
                } else {
                    self.expect_close("else")?;
                    let (l, t) = self.list()?;
                    match t {
                        Term::End(_) => Some(l),
                        Term::Else(pos) => {
                            return Err(ParseError {
                                pos,
                                msg: format!("expected end; found {{{{else}}}} in {{{{{kind}}}}}"),
                            });
                        }
                        Term::Eof => {
                            return Err(self.err(format!(
                                "unexpected EOF: missing {{{{end}}}} for {{{{{kind}}}}}"
                            )));
                        }
                    }
                }
            }
        };
        self.vars.truncate(mark);
        self.nesting -= 1;
        let b = Branch {
            pipe,
            list,
            else_list,
        };
        Ok(match kind {
            "if" => Node::If(b),
            "range" => Node::Range(b),
            _ => Node::With(b),
        })
    }

    fn template_name(&mut self, context: &str) -> PResult<String> {
        match self.next() {
            Some(Token {
                tok: Tok::Str(s), ..
            }) => Ok(s),
            Some(t) => Err(ParseError {
                pos: t.pos,
                msg: format!(
                    "unexpected {} in {context}; want a quoted template name",
                    describe(&t.tok)
                ),
            }),
            None => Err(self.err(format!("unclosed action in {context}"))),
        }
    }

    fn template(&mut self, pos: usize) -> PResult<Node> {
        let name = self.template_name("template clause")?;
        let pipe = if matches!(self.peek_tok(), Some(Tok::Close)) {
            self.i += 1;
            None
        } else {
            Some(self.pipeline("template clause", false)?)
        };
        let end = self.toks[self.i - 1].end;
        Ok(Node::Template {
            pos,
            end,
            name,
            pipe,
        })
    }

    /// `define`/`block`: records the body; for `block` returns the call node.
    fn define(&mut self, pos: usize, block: bool) -> PResult<Option<Node>> {
        let name = self.template_name(if block {
            "block clause"
        } else {
            "define clause"
        })?;
        let pipe = if block {
            Some(self.pipeline("block clause", false)?)
        } else {
            self.expect_close("define clause")?;
            None
        };
        let end = self.toks[self.i - 1].end;
        let saved_vars = std::mem::replace(&mut self.vars, {
            let mut v = vec!["$".to_string()];
            v.extend(self.predeclared.iter().cloned());
            v
        });
        let saved_range = std::mem::replace(&mut self.range_depth, 0);
        let was_in_define = std::mem::replace(&mut self.in_define, true);
        let (body, term) = self.list()?;
        self.in_define = was_in_define;
        self.range_depth = saved_range;
        self.vars = saved_vars;
        match term {
            Term::End(_) => {}
            Term::Else(p) => {
                return Err(ParseError {
                    pos: p,
                    msg: "unexpected {{else}} in define".into(),
                });
            }
            Term::Eof => {
                return Err(ParseError {
                    pos,
                    msg: format!("unexpected EOF: missing {{{{end}}}} for define {name:?}"),
                });
            }
        }
        self.defines.push((name.clone(), body));
        Ok(block.then_some(Node::Template {
            pos,
            end,
            name,
            pipe,
        }))
    }

    /// A pipeline up to `}}` (consumed): optional declarations, then commands.
    fn pipeline(&mut self, context: &str, is_range: bool) -> PResult<Pipe> {
        self.pipeline_until(context, is_range, false)
    }

    fn pipeline_until(&mut self, context: &str, is_range: bool, paren: bool) -> PResult<Pipe> {
        let mut decl = Vec::new();
        let mut assign = false;
        // Declarations: `$x :=`, `$x =`, `$i, $e :=`.
        if let Some(Tok::Var(_)) = self.peek_tok() {
            let save = self.i;
            let mut names = Vec::new();
            while let Some(Tok::Var(v)) = self.peek_tok() {
                names.push((v.clone(), self.pos()));
                self.i += 1;
                match self.peek_tok() {
                    Some(Tok::Comma) if names.len() == 1 => {
                        self.i += 1;
                    }
                    _ => break,
                }
            }
            match self.peek_tok() {
                Some(tok @ (Tok::Declare | Tok::Assign)) => {
                    assign = *tok == Tok::Assign;
                    self.i += 1;
                    if names.len() > 1 && !is_range {
                        return Err(ParseError {
                            pos: names[0].1,
                            msg: format!("too many declarations in {context}"),
                        });
                    }
                    for (n, pos) in &names {
                        if assign && !self.vars.contains(n) {
                            return Err(ParseError {
                                pos: *pos,
                                msg: format!("undefined variable {n:?}"),
                            });
                        }
                        if n == "$" {
                            return Err(ParseError {
                                pos: *pos,
                                msg: "cannot declare or assign $".into(),
                            });
                        }
                    }
                    if !assign {
                        self.vars.extend(names.iter().map(|(n, _)| n.clone()));
                    }
                    decl = names.into_iter().map(|(n, _)| n).collect();
                }
                _ if names.len() > 1 => {
                    return Err(self.err(format!("expected := or = after variables in {context}")));
                }
                _ => self.i = save,
            }
        }
        let mut cmds = Vec::new();
        loop {
            let cmd = self.command(context)?;
            cmds.push(cmd);
            match self.next() {
                Some(Token { tok: Tok::Pipe, .. }) => continue,
                Some(Token {
                    tok: Tok::Close, ..
                }) if !paren => break,
                Some(Token {
                    tok: Tok::RParen, ..
                }) if paren => break,
                Some(t) => {
                    return Err(ParseError {
                        pos: t.pos,
                        msg: format!("unexpected {} in {context}", describe(&t.tok)),
                    });
                }
                None => return Err(self.err(format!("unclosed action in {context}"))),
            }
        }
        for (n, c) in cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args[0].kind,
                ArgKind::Dot | ArgKind::Nil | ArgKind::Lit(_)
            ) {
                return Err(ParseError {
                    pos: c.args[0].pos,
                    msg: format!("non executable command in pipeline stage {}", n + 1),
                });
            }
        }
        Ok(Pipe { decl, assign, cmds })
    }

    fn command(&mut self, context: &str) -> PResult<Cmd> {
        let mut args = Vec::new();
        let mut prev_end: Option<usize> = None;
        loop {
            match self.peek_tok() {
                None | Some(Tok::Pipe | Tok::Close | Tok::RParen) => break,
                _ => {}
            }
            if let (Some(e), Some(t)) = (prev_end, self.peek())
                && t.pos == e
            {
                return Err(self.err(format!("unexpected {} in operand", describe(&t.tok))));
            }
            let a = self.operand()?;
            prev_end = Some(a.end);
            args.push(a);
        }
        if args.is_empty() {
            return Err(self.err(format!("missing value for {context}")));
        }
        if matches!(args[0].kind, ArgKind::Nil) {
            return Err(ParseError {
                pos: args[0].pos,
                msg: "nil is not a command".into(),
            });
        }
        Ok(Cmd { args })
    }

    /// Field names directly attached to the previous token (`x.A.B`).
    fn chain(&mut self, mut end: usize) -> (Vec<String>, usize) {
        let mut names = Vec::new();
        while let Some(Token {
            tok: Tok::Field(f),
            pos,
            end: e,
        }) = self.peek()
        {
            if *pos != end {
                break;
            }
            names.push(f.clone());
            end = *e;
            self.i += 1;
        }
        (names, end)
    }

    fn operand(&mut self) -> PResult<Arg> {
        let t = self.next().expect("peeked");
        let pos = t.pos;
        let kind = match t.tok {
            Tok::Dot => ArgKind::Dot,
            Tok::Nil => ArgKind::Nil,
            Tok::Bool(b) => ArgKind::Lit(Value::Bool(b)),
            Tok::Str(s) => ArgKind::Lit(Value::String(s)),
            Tok::Char(c) => ArgKind::Lit(Value::Int(c)),
            Tok::Number(n) => {
                ArgKind::Lit(parse_number(&n).map_err(|msg| ParseError { pos, msg })?)
            }
            Tok::Field(f) => {
                let (mut rest, end) = self.chain(t.end);
                rest.insert(0, f);
                return Ok(Arg {
                    pos,
                    end,
                    kind: ArgKind::Field(rest),
                });
            }
            Tok::Var(v) => {
                if !self.vars.contains(&v) {
                    return Err(ParseError {
                        pos,
                        msg: format!("undefined variable {v:?}"),
                    });
                }
                let (chain, end) = self.chain(t.end);
                return Ok(Arg {
                    pos,
                    end,
                    kind: ArgKind::Var(v, chain),
                });
            }
            Tok::LParen => {
                self.enter()?;
                let p = self.pipeline_until("parenthesized pipeline", false, true)?;
                self.nesting -= 1;
                let close_end = self.toks[self.i - 1].end;
                let (chain, end) = self.chain(close_end);
                return Ok(Arg {
                    pos,
                    end,
                    kind: ArgKind::Pipe(Box::new(p), chain),
                });
            }
            Tok::Ident(name) => {
                if KEYWORDS.contains(&name.as_str()) {
                    return Err(ParseError {
                        pos,
                        msg: format!("unexpected <{name}> in operand"),
                    });
                }
                let f = if self.funcs.contains(&name) {
                    Func::User(name)
                } else if let Some(b) = Builtin::from_name(&name) {
                    Func::Builtin(b)
                } else {
                    return Err(ParseError {
                        pos,
                        msg: format!("function {name:?} not defined"),
                    });
                };
                ArgKind::Func(f)
            }
            other => {
                return Err(ParseError {
                    pos,
                    msg: format!("unexpected {} in operand", describe(&other)),
                });
            }
        };
        if let Some(Token {
            tok: Tok::Field(_),
            pos: p,
            ..
        }) = self.peek()
            && *p == t.end
        {
            return Err(self.err("unexpected field access after a literal or function"));
        }
        Ok(Arg {
            pos,
            end: t.end,
            kind,
        })
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Text(_) => "text".into(),
        Tok::Open => "\"{{\"".into(),
        Tok::Close => "\"}}\"".into(),
        Tok::Dot => "<.>".into(),
        Tok::Field(f) => format!("<.{f}>"),
        Tok::Var(v) => format!("<{v}>"),
        Tok::Ident(i) => format!("<{i}>"),
        Tok::Str(s) => format!("{s:?}"),
        Tok::Char(c) => format!("character {c}"),
        Tok::Number(n) => format!("<{n}>"),
        Tok::Bool(b) => format!("<{b}>"),
        Tok::Nil => "<nil>".into(),
        Tok::Declare => "\":=\"".into(),
        Tok::Assign => "\"=\"".into(),
        Tok::Pipe => "\"|\"".into(),
        Tok::LParen => "\"(\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::Comma => "\",\"".into(),
    }
}

/// Go number literal: ints (decimal, 0x, 0o, 0b, leading-0 octal) and floats.
fn parse_number(lit: &str) -> Result<Value, String> {
    let bad = || format!("bad number syntax: {lit:?}");
    let (neg, body) = match lit.as_bytes()[0] {
        b'-' => (true, &lit[1..]),
        b'+' => (false, &lit[1..]),
        _ => (false, lit),
    };
    if body.ends_with('i') {
        return Err("complex numbers are not supported".into());
    }
    let clean: String = body.chars().filter(|c| *c != '_').collect();
    let lower = clean.to_ascii_lowercase();
    let radix = if lower.starts_with("0x") {
        Some((16, &clean[2..]))
    } else if lower.starts_with("0o") {
        Some((8, &clean[2..]))
    } else if lower.starts_with("0b") {
        Some((2, &clean[2..]))
    } else if clean.len() > 1 && clean.starts_with('0') && clean.bytes().all(|c| c.is_ascii_digit())
    {
        Some((8, &clean[1..]))
    } else {
        None
    };
    if let Some((radix, digits)) = radix {
        if radix == 16 && lower.contains('p') {
            return Err("hexadecimal floats are not supported".into());
        }
        let v = i64::from_str_radix(digits, radix).map_err(|_| bad())?;
        return Ok(Value::Int(if neg { -v } else { v }));
    }
    if clean.contains(['.', 'e', 'E']) {
        if !clean
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            return Err(bad());
        }
        let v: f64 = clean.parse().map_err(|_| bad())?;
        return Ok(Value::Float(if neg { -v } else { v }));
    }
    if !clean.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let s = if neg { format!("-{clean}") } else { clean };
    s.parse::<i64>()
        .map(Value::Int)
        .map_err(|_| format!("{lit} overflows int"))
}

/// True for a body with only whitespace text: Go does not let such a
/// definition replace an existing template of the same name.
pub(crate) fn is_empty(nodes: &[Node]) -> bool {
    nodes
        .iter()
        .all(|n| matches!(n, Node::Text(t) if t.trim().is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        for (lit, want) in [
            ("42", Value::Int(42)),
            ("-7", Value::Int(-7)),
            ("0x1F", Value::Int(31)),
            ("0o17", Value::Int(15)),
            ("017", Value::Int(15)),
            ("0b101", Value::Int(5)),
            ("1_000", Value::Int(1000)),
            ("1.5", Value::Float(1.5)),
            ("1e3", Value::Float(1000.0)),
            (".5", Value::Float(0.5)),
        ] {
            assert_eq!(parse_number(lit).ok(), Some(want), "{lit}");
        }
        assert!(parse_number("09").is_err());
        assert!(parse_number("1x").is_err());
        assert!(parse_number("99999999999999999999").is_err());
    }
}
