//! PromQL syntax of Prometheus 3 that the `promql-parser` crate does not read,
//! turned into text it does read before parsing:
//!
//! - duration expressions (experimental in Prometheus 3.5+): arithmetic,
//!   `step()`, `range()`, `min_of()`/`max_of()` inside `[...]` and after
//!   `offset`, evaluated to a literal (`[2m*15]` -> `[1800000ms]`);
//! - the `anchored` and `smoothed` modifiers of selectors (experimental,
//!   extended range selectors): the keyword is removed and the selector gets a
//!   marker matcher [`EXT_LABEL`] the evaluator reads and strips;
//! - the label selector of `info()`, which may consist of matchers that all
//!   match the empty string (`{data=~".*"}`): it gets the marker matcher
//!   [`INFO_LABEL`] so the parser accepts it;
//! - the histogram trim operators `v </ s` and `v >/ s` (Prometheus 3,
//!   experimental): they become `clamp(v atan2 s, MARK, MARK)` with a marker number
//!   ([`TRIM_UPPER_MARK`], [`TRIM_LOWER_MARK`]) the evaluator recognises;
//! - string literals with Go byte escapes above 0x7f (`"\xc3\xa9"`, `"a\xc5z"`):
//!   re-encoded as the characters their bytes spell, or as a marker of bytes
//!   that are not UTF-8 (see `gostr`).
//!
//! A query without any of these is returned unchanged.

use crate::Error;

/// Marker label of a selector with the `anchored` or `smoothed` modifier.
pub(crate) const EXT_LABEL: &str = "__day2_range_mode__";
/// Marker label of `info()`'s label selector.
pub(crate) const INFO_LABEL: &str = "__day2_info_selector__";

/// Marker third argument of `clamp` standing for `</` (keep observations below).
pub(crate) const TRIM_UPPER_MARK: &str = "-1.2345e-300";
/// Marker third argument of `clamp` standing for `>/` (keep observations above).
pub(crate) const TRIM_LOWER_MARK: &str = "-2.3456e-300";

/// What `step()` and `range()` stand for in duration expressions, in ms.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct QueryRange {
    pub step: i64,
    pub range: i64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Ident,
    /// A number or a duration literal.
    Number,
    Str,
    Punct,
}

#[derive(Debug, Clone, Copy)]
struct Tok {
    kind: Kind,
    start: usize,
    end: usize,
}

fn tokenize(q: &str) -> Vec<Tok> {
    let b = q.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let kind = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' | b'`' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    if b[i] == b'\\' && c != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
                i = (i + 1).min(b.len());
                Kind::Str
            }
            b'0'..=b'9' | b'.' if c != b'.' || b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let hex = c == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X'));
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_')
                {
                    i += 1;
                    // an exponent's sign: 1e-3
                    if !hex
                        && matches!(b[i - 1], b'e' | b'E')
                        && matches!(b.get(i), Some(b'+' | b'-'))
                        && b.get(i + 1).is_some_and(u8::is_ascii_digit)
                        && b[start..i - 1]
                            .iter()
                            .all(|d| d.is_ascii_digit() || *d == b'.')
                    {
                        i += 1;
                    }
                }
                Kind::Number
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                Kind::Ident
            }
            _ => {
                let two = b.get(i..i + 2);
                i += match two {
                    Some(b"==" | b"!=" | b"<=" | b">=" | b"=~" | b"!~") => 2,
                    // one byte, or a whole non-ASCII character
                    _ => q[i..].chars().next().map_or(1, char::len_utf8),
                };
                Kind::Punct
            }
        };
        out.push(Tok {
            kind,
            start,
            end: i,
        });
    }
    out
}

/// The opening and closing bracket of the pair `b` belongs to.
fn brackets(b: &str) -> (&'static str, &'static str) {
    match b {
        "(" | ")" => ("(", ")"),
        "[" | "]" => ("[", "]"),
        _ => ("{", "}"),
    }
}

struct Rewriter<'a> {
    q: &'a str,
    toks: Vec<Tok>,
    range: QueryRange,
    /// (start, end, replacement) of the query text.
    edits: Vec<(usize, usize, String)>,
}

fn bad(message: String) -> Error {
    Error::BadInput {
        message: format!("invalid parameter \"query\": {message}"),
        position: None,
    }
}

/// A duration literal the parser reads as it is (`5m`, `1h30m`, `100ms`).
fn is_duration_literal(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let mut parts = 0;
    while i < b.len() {
        let d = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == d {
            return false;
        }
        let u = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        if !matches!(&s[u..i], "ms" | "s" | "m" | "h" | "d" | "w" | "y") {
            return false;
        }
        parts += 1;
    }
    parts > 0
}

impl Rewriter<'_> {
    fn text(&self, i: usize) -> &str {
        let t = self.toks[i];
        &self.q[t.start..t.end]
    }

    fn is(&self, i: usize, s: &str) -> bool {
        i < self.toks.len() && self.text(i) == s
    }

    fn text_is_ci(&self, i: usize, s: &str) -> bool {
        i < self.toks.len() && self.text(i).eq_ignore_ascii_case(s)
    }

    /// The index of the token closing the bracket opened at `open`.
    fn closing(&self, open: usize) -> Option<usize> {
        let (o, c) = brackets(self.text(open));
        let mut depth = 0;
        for i in open..self.toks.len() {
            if self.is(i, o) {
                depth += 1;
            } else if self.is(i, c) {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
        }
        None
    }

    /// The index of the token opening the bracket closed at `close`.
    fn opening(&self, close: usize) -> Option<usize> {
        let (o, c) = brackets(self.text(close));
        let mut depth = 0;
        for i in (0..=close).rev() {
            if self.is(i, c) {
                depth += 1;
            } else if self.is(i, o) {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
        }
        None
    }

    fn run(&mut self) -> Result<(), Error> {
        let mut i = 0;
        while i < self.toks.len() {
            let t = self.toks[i];
            match (t.kind, self.text(i)) {
                // label matchers: names there are not keywords
                (Kind::Punct, "{") => {
                    i = self.closing(i).unwrap_or(self.toks.len());
                }
                (Kind::Punct, "[") => {
                    let Some(close) = self.closing(i) else {
                        return Ok(());
                    };
                    self.bracket(i + 1, close)?;
                    i = close;
                }
                (Kind::Ident, "offset") => {
                    i = self.offset(i + 1)?;
                    continue;
                }
                (Kind::Ident, "anchored" | "smoothed") => self.range_mode(i)?,
                (Kind::Ident, "info") if self.is(i + 1, "(") => self.info_selector(i + 1),
                (Kind::Punct, "<" | ">")
                    if self.is(i + 1, "/") && self.toks[i].end == self.toks[i + 1].start =>
                {
                    self.trim(i);
                    i += 1;
                }
                _ => {}
            }
            i += 1;
        }
        Ok(())
    }

    /// String literals `promql-parser` would read otherwise than Go (see
    /// `gostr`): every one, braces included.
    fn strings(&mut self) {
        for k in 0..self.toks.len() {
            let t = self.toks[k];
            if t.kind != Kind::Str {
                continue;
            }
            // Prometheus reports a regex matcher's error at its label
            let at = if k >= 2 && matches!(self.text(k - 1), "=~" | "!~") {
                self.toks[k - 2].start
            } else {
                t.start
            };
            if let Some(lit) = crate::gostr::reencode(self.text(k), &line_col(self.q, at)) {
                self.edits.push((t.start, t.end, lit));
            }
        }
    }

    /// `lhs </ rhs` or `lhs >/ rhs` with the operator at token `k`: the
    /// operands reach over everything that binds tighter (they bind as
    /// comparisons do), and the whole becomes
    /// `clamp((lhs) atan2 MODIFIERS (rhs), MARK, MARK)`: a binary operation
    /// (so vector matching works) the evaluator recognises by its wrapper.
    fn trim(&mut self, k: usize) {
        let looser = |r: &Self, j: usize| -> bool {
            r.toks[j].kind == Kind::Punct && r.text(j) == ","
                || (r.toks[j].kind == Kind::Ident
                    && ["or", "and", "unless", "by", "without"]
                        .iter()
                        .any(|w| r.text_is_ci(j, w)))
        };
        let mut start = k;
        let mut depth = 0i32;
        while start > 0 {
            let j = start - 1;
            match self.text(j) {
                ")" | "]" | "}" => depth += 1,
                "(" | "[" | "{" => {
                    if depth == 0 {
                        break;
                    }
                    depth -= 1;
                }
                _ if depth == 0 && looser(self, j) => break,
                _ => {}
            }
            start = j;
        }
        let mut end = k + 2;
        depth = 0;
        while end < self.toks.len() {
            match self.text(end) {
                "(" | "[" | "{" => depth += 1,
                ")" | "]" | "}" => {
                    if depth == 0 {
                        break;
                    }
                    depth -= 1;
                }
                "==" | "!=" | "<=" | ">=" | "<" | ">" if depth == 0 => break,
                _ if depth == 0 && looser(self, end) => break,
                _ => {}
            }
            end += 1;
        }
        // vector matching modifiers stay between the operator and `rhs`
        let mut rhs = k + 2;
        let group = |r: &Self, j: usize| -> usize {
            // the index after `( ... )` at `j`, or `j` when there is none
            if !r.is(j, "(") {
                return j;
            }
            let mut j = j;
            while j < r.toks.len() && !r.is(j, ")") {
                j += 1;
            }
            j + 1
        };
        if self.text_is_ci(rhs, "on") || self.text_is_ci(rhs, "ignoring") {
            rhs = group(self, rhs + 1);
            if self.text_is_ci(rhs, "group_left") || self.text_is_ci(rhs, "group_right") {
                rhs = group(self, rhs + 1);
            }
        }
        if start == k || end <= rhs {
            return; // the parser reports the missing operand
        }
        let mark = if self.text(k) == "<" {
            TRIM_UPPER_MARK
        } else {
            TRIM_LOWER_MARK
        };
        let (s, e) = (self.toks[start].start, self.toks[end - 1].end);
        let r = self.toks[rhs].start;
        self.edits.push((s, s, "clamp((".into()));
        self.edits
            .push((self.toks[k].start, self.toks[k + 1].end, ") atan2 ".into()));
        self.edits.push((r, r, "(".into()));
        self.edits.push((e, e, format!("), {mark}, {mark})")));
    }

    /// `[range]` or `[range:step]` between token indexes `from` and `to`.
    fn bracket(&mut self, from: usize, to: usize) -> Result<(), Error> {
        let mut depth = 0i32;
        let mut part = from;
        for i in from..=to {
            if i < to {
                match self.text(i) {
                    "(" => depth += 1,
                    ")" => depth -= 1,
                    ":" if depth == 0 => {}
                    _ => continue,
                }
                if self.text(i) != ":" {
                    continue;
                }
            }
            // tokens part..i are one duration: the range, then the step
            let literal = i == part + 1 && is_duration_literal(self.text(part));
            if i > part && !literal {
                let ms = self.evaluate(part, i)?;
                if ms <= 0 && part == from {
                    return Err(bad(format!(
                        "duration must be greater than 0, got {}",
                        &self.q[self.toks[part].start..self.toks[i - 1].end]
                    )));
                }
                self.edits.push((
                    self.toks[part].start,
                    self.toks[i - 1].end,
                    format!("{ms}ms"),
                ));
            }
            part = i + 1;
        }
        Ok(())
    }

    /// The duration after `offset`: signs and one primary (a literal, a
    /// parenthesised expression or a call). Returns the index after it.
    fn offset(&mut self, from: usize) -> Result<usize, Error> {
        let mut i = from;
        while self.is(i, "-") || self.is(i, "+") {
            i += 1;
        }
        if i >= self.toks.len() {
            return Ok(i);
        }
        let end = match (self.toks[i].kind, self.text(i)) {
            (Kind::Number, _) => i + 1,
            (Kind::Punct, "(") => self.closing(i).map_or(i + 1, |c| c + 1),
            (Kind::Ident, _) if self.is(i + 1, "(") => self.closing(i + 1).map_or(i + 1, |c| c + 1),
            _ => return Ok(i),
        };
        let plain = end == i + 1
            && self.toks[i].kind == Kind::Number
            && is_duration_literal(self.text(i))
            && (i == from || (i == from + 1 && self.is(from, "-")));
        if !plain {
            let ms = self.evaluate(from, end)?;
            // the parser refuses `offset 0ms`: a zero offset is no offset
            let (at, lit) = match ms {
                0 => (self.toks[from - 1].start, String::new()),
                ms if ms < 0 => (self.toks[from].start, format!("-{}ms", -ms)),
                ms => (self.toks[from].start, format!("{ms}ms")),
            };
            self.edits.push((at, self.toks[end - 1].end, lit));
        }
        Ok(end)
    }

    /// Evaluates the duration expression of tokens `from..to` to ms.
    fn evaluate(&self, from: usize, to: usize) -> Result<i64, Error> {
        let mut p = Expr {
            r: self,
            i: from,
            to,
        };
        let v = p.sum()?;
        if p.i != to {
            return Err(bad(format!(
                "unexpected {:?} in duration expression",
                self.text(p.i)
            )));
        }
        if !v.is_finite() {
            return Err(bad("duration expression is not finite".into()));
        }
        Ok((v * 1000.0).round() as i64)
    }

    /// `anchored`/`smoothed` at token `k`: marks the selector before it. (A
    /// metric of that name, `x and smoothed`, is left alone.)
    fn range_mode(&mut self, k: usize) -> Result<(), Error> {
        if self.is(k + 1, "{") || self.is(k + 1, "[") || self.is(k + 1, "(") {
            return Ok(());
        }
        // skip `@ t` and `offset d` modifiers back to the selector's end
        let mut j = k;
        loop {
            let Some(prev) = j.checked_sub(1) else {
                return Ok(());
            };
            let mut m = prev;
            if self.is(m, ")") {
                m = match self.opening(m) {
                    Some(o) if o > 0 && self.toks[o - 1].kind == Kind::Ident => o - 1,
                    _ => break,
                };
            } else if self.toks[m].kind != Kind::Number {
                break;
            }
            while m > 0 && (self.is(m - 1, "-") || self.is(m - 1, "+")) {
                m -= 1;
            }
            if m > 0 && (self.is(m - 1, "@") || self.is(m - 1, "offset")) {
                j = m - 1;
            } else {
                break;
            }
        }
        let Some(mut end) = j.checked_sub(1) else {
            return Ok(());
        };
        if self.is(end, "]") {
            match self.opening(end) {
                Some(o) if o > 0 => end = o - 1,
                _ => return Ok(()),
            }
        }
        let mode = self.text(k).to_string();
        let marker = format!("{EXT_LABEL}=\"{mode}\"");
        const KEYWORDS: &[&str] = &[
            "and",
            "or",
            "unless",
            "atan2",
            "bool",
            "by",
            "without",
            "on",
            "ignoring",
            "group_left",
            "group_right",
            "offset",
        ];
        if self.is(end, "}") {
            self.mark_braces(end, marker);
        } else if self.toks[end].kind == Kind::Ident && !KEYWORDS.contains(&self.text(end)) {
            self.edits.push((
                self.toks[end].end,
                self.toks[end].end,
                format!("{{{marker}}}"),
            ));
        } else {
            return Ok(());
        }
        self.edits
            .push((self.toks[k].start, self.toks[k].end, String::new()));
        Ok(())
    }

    /// Adds `marker` to the label matchers closed by the brace at `close`.
    fn mark_braces(&mut self, close: usize, marker: String) {
        let empty = close > 0 && (self.is(close - 1, "{") || self.is(close - 1, ","));
        let at = self.toks[close].start;
        let sep = if empty { "" } else { "," };
        self.edits.push((at, at, format!("{sep}{marker}")));
    }

    /// `info(v, {selector})`: marks the selector so the parser accepts one
    /// whose matchers all match the empty string.
    fn info_selector(&mut self, open: usize) {
        let Some(close) = self.closing(open) else {
            return;
        };
        let mut depth = 0;
        for i in open + 1..close {
            match self.text(i) {
                "(" | "[" | "{" => depth += 1,
                ")" | "]" | "}" => depth -= 1,
                "," if depth == 0 => {
                    let named = i + 1 < close && self.toks[i + 1].kind == Kind::Ident;
                    let sel = if named { i + 2 } else { i + 1 };
                    if self.is(sel, "{")
                        && let Some(end) = self.closing(sel)
                    {
                        self.mark_braces(end, format!("{INFO_LABEL}=\"1\""));
                    }
                    return;
                }
                _ => {}
            }
        }
    }
}

/// A recursive-descent evaluator of duration expressions, in seconds.
struct Expr<'r, 'a> {
    r: &'r Rewriter<'a>,
    i: usize,
    to: usize,
}

impl Expr<'_, '_> {
    fn peek(&self) -> Option<&str> {
        (self.i < self.to).then(|| self.r.text(self.i))
    }

    fn expect(&mut self, s: &str) -> Result<(), Error> {
        if self.peek() == Some(s) {
            self.i += 1;
            Ok(())
        } else {
            Err(bad(format!("expected {s:?} in duration expression")))
        }
    }

    fn sum(&mut self) -> Result<f64, Error> {
        let mut v = self.product()?;
        while let Some(op @ ("+" | "-")) = self.peek() {
            let add = op == "+";
            self.i += 1;
            let r = self.product()?;
            v = if add { v + r } else { v - r };
        }
        Ok(v)
    }

    fn product(&mut self) -> Result<f64, Error> {
        let mut v = self.unary()?;
        while let Some(op @ ("*" | "/" | "%")) = self.peek() {
            let op = op.to_string();
            self.i += 1;
            let r = self.unary()?;
            v = match op.as_str() {
                "*" => v * r,
                "/" => v / r,
                _ => v % r,
            };
        }
        Ok(v)
    }

    /// Unary signs bind less tightly than `^`: `-2 ^ 2` is -4.
    fn unary(&mut self) -> Result<f64, Error> {
        match self.peek() {
            Some("-") => {
                self.i += 1;
                Ok(-self.unary()?)
            }
            Some("+") => {
                self.i += 1;
                self.unary()
            }
            _ => self.power(),
        }
    }

    fn power(&mut self) -> Result<f64, Error> {
        let base = self.primary()?;
        if self.peek() == Some("^") {
            self.i += 1;
            let exp = self.unary()?;
            return Ok(base.powf(exp));
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<f64, Error> {
        let Some(t) = self.peek() else {
            return Err(bad("incomplete duration expression".into()));
        };
        let t = t.to_string();
        let kind = self.r.toks[self.i].kind;
        self.i += 1;
        if t == "(" {
            let v = self.sum()?;
            self.expect(")")?;
            return Ok(v);
        }
        if kind == Kind::Number {
            if is_duration_literal(&t) {
                return day2_model::parse_duration(&t)
                    .map(|d| d.as_secs_f64())
                    .map_err(|e| bad(e.to_string()));
            }
            return t
                .parse::<f64>()
                .map_err(|_| bad(format!("bad number {t:?} in duration expression")));
        }
        if kind == Kind::Ident {
            let name = t.to_ascii_lowercase();
            self.expect("(")?;
            let mut args = Vec::new();
            if self.peek() != Some(")") {
                args.push(self.sum()?);
                while self.peek() == Some(",") {
                    self.i += 1;
                    args.push(self.sum()?);
                }
            }
            self.expect(")")?;
            let secs = |ms: i64| ms as f64 / 1000.0;
            return match (name.as_str(), args.as_slice()) {
                ("step", []) => Ok(secs(self.r.range.step)),
                ("range", []) => Ok(secs(self.r.range.range)),
                ("min_of", [first, rest @ ..]) => Ok(rest.iter().fold(*first, |a, b| a.min(*b))),
                ("max_of", [first, rest @ ..]) => Ok(rest.iter().fold(*first, |a, b| a.max(*b))),
                _ => Err(bad(format!(
                    "function {t}() is not allowed in a duration expression"
                ))),
            };
        }
        Err(bad(format!("unexpected {t:?} in duration expression")))
    }
}

/// A query as `promql-parser` reads it, and how its positions map back.
pub(crate) struct Rewritten<'q> {
    pub text: std::borrow::Cow<'q, str>,
    /// `(position in text, shift)`: from that position on, a position in the
    /// rewritten text is `shift` bytes after the original one.
    shifts: Vec<(usize, isize)>,
}

impl Rewritten<'_> {
    /// The position in the original query of a position in [`Rewritten::text`]
    /// (outside the rewritten spans).
    pub(crate) fn original(&self, pos: usize) -> usize {
        let shift = self
            .shifts
            .iter()
            .take_while(|(at, _)| *at <= pos)
            .last()
            .map_or(0, |s| s.1);
        (pos as isize - shift) as usize
    }
}

/// The query as `promql-parser` reads it (see the module documentation).
pub(crate) fn rewrite(query: &str, range: QueryRange) -> Result<Rewritten<'_>, Error> {
    let mut r = Rewriter {
        q: query,
        toks: tokenize(query),
        range,
        edits: Vec::new(),
    };
    r.run()?;
    r.strings();
    if r.edits.is_empty() {
        return Ok(Rewritten {
            text: std::borrow::Cow::Borrowed(query),
            shifts: Vec::new(),
        });
    }
    r.edits.sort_by_key(|e| (e.0, e.1));
    let mut out = String::with_capacity(query.len() + 64);
    let mut shifts = Vec::with_capacity(r.edits.len());
    let mut at = 0;
    for (start, end, text) in r.edits {
        out.push_str(&query[at..start]);
        out.push_str(&text);
        shifts.push((out.len(), out.len() as isize - end as isize));
        at = end;
    }
    out.push_str(&query[at..]);
    Ok(Rewritten {
        text: std::borrow::Cow::Owned(out),
        shifts,
    })
}

/// Where a function call or aggregation starts in the query text, and where
/// each of its arguments starts (byte offsets).
#[derive(Debug, Clone, Default)]
pub(crate) struct CallPos {
    pub at: usize,
    pub args: Vec<usize>,
}

/// The positions of the calls and aggregations of `expr` (parsed from
/// `r.text`), by node address, in the original query: the nodes in source
/// order are matched with their names among the tokens.
pub(crate) fn call_positions(
    expr: &promql_parser::parser::Expr,
    r: &Rewritten,
) -> std::collections::HashMap<usize, CallPos> {
    use promql_parser::parser::Expr;
    fn nodes(e: &Expr, out: &mut Vec<(usize, String, bool)>) {
        match e {
            Expr::Call(c) => {
                out.push((c as *const _ as usize, c.func.name.to_string(), false));
                c.args.args.iter().for_each(|a| nodes(a, out));
            }
            Expr::Aggregate(a) => {
                out.push((a as *const _ as usize, a.op.to_string(), true));
                if let Some(p) = &a.param {
                    nodes(p, out);
                }
                nodes(&a.expr, out);
            }
            Expr::Subquery(s) => nodes(&s.expr, out),
            Expr::Unary(u) => nodes(&u.expr, out),
            Expr::Paren(p) => nodes(&p.expr, out),
            Expr::Binary(b) => {
                nodes(&b.lhs, out);
                nodes(&b.rhs, out);
            }
            _ => {}
        }
    }
    let mut list = Vec::new();
    nodes(expr, &mut list);
    let mut out = std::collections::HashMap::new();
    if list.is_empty() {
        return out;
    }
    let rw = Rewriter {
        q: &r.text,
        toks: tokenize(&r.text),
        range: QueryRange::default(),
        edits: Vec::new(),
    };
    let mut cursor = 0;
    for (key, name, aggregate) in list {
        let Some(k) = (cursor..rw.toks.len()).find(|&k| {
            rw.toks[k].kind == Kind::Ident
                && rw.text(k).eq_ignore_ascii_case(&name)
                && (rw.is(k + 1, "(")
                    || (aggregate
                        && (rw.text_is_ci(k + 1, "by") || rw.text_is_ci(k + 1, "without"))))
        }) else {
            break;
        };
        cursor = k + 1;
        let mut open = k + 1;
        if !rw.is(open, "(") {
            // `sum by (job) (...)`: skip the grouping
            open = rw.closing(k + 2).map_or(open, |c| c + 1);
        }
        let mut pos = CallPos {
            at: r.original(rw.toks[k].start),
            args: Vec::new(),
        };
        if let Some(close) = rw.is(open, "(").then(|| rw.closing(open)).flatten() {
            let mut depth = 0;
            let mut next_arg = true;
            for i in open + 1..close {
                if next_arg {
                    pos.args.push(r.original(rw.toks[i].start));
                    next_arg = false;
                }
                match rw.text(i) {
                    "(" | "[" | "{" => depth += 1,
                    ")" | "]" | "}" => depth -= 1,
                    "," if depth == 0 => next_arg = true,
                    _ => {}
                }
            }
        }
        out.insert(key, pos);
    }
    out
}

/// Prometheus's `line:column` of a byte offset (both from 1).
pub(crate) fn line_col(query: &str, pos: usize) -> String {
    let before = &query[..pos.min(query.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{line}:{col}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(q: &str) -> String {
        rewrite(
            q,
            QueryRange {
                step: 5_000,
                range: 10_000,
            },
        )
        .unwrap()
        .text
        .into_owned()
    }

    #[test]
    fn call_positions_point_into_the_original_query() {
        let q =
            "sum by (job) (rate(x[2m*3] anchored)) / on() group_left histogram_quantile(0.9, y)";
        let r = rewrite(q, QueryRange::default()).unwrap();
        let e = promql_parser::parser::parse(&r.text).unwrap();
        let mut pos: Vec<CallPos> = call_positions(&e, &r).into_values().collect();
        pos.sort_by_key(|p| p.at);
        let at = |s: &str| q.find(s).unwrap();
        assert_eq!(pos[0].at, at("sum"));
        assert_eq!(pos[0].args, vec![at("rate")]);
        assert_eq!(pos[1].at, at("rate"));
        assert_eq!(pos[1].args, vec![at("x[")]);
        assert_eq!(pos[2].at, at("histogram_quantile"));
        assert_eq!(pos[2].args, vec![at("0.9"), at("y)")]);
        assert_eq!(line_col("a\nbc(d)", 5), "2:4");
    }

    #[test]
    fn plain_queries_are_untouched() {
        for q in [
            "sum by (job) (rate(http_requests_total[5m]))",
            "up offset 5m",
            "up offset -1h30m",
            r#"x{offset="anchored", a=~"[1-2]"}[1m:30s]"#,
            "foo and smoothed",
            "info(up)",
        ] {
            assert_eq!(rw(q), q);
        }
    }

    #[test]
    fn duration_expressions_become_literals() {
        assert_eq!(rw("changes(x[26m+4m])"), "changes(x[1800000ms])");
        assert_eq!(rw("changes(x[2m*(10+5)])"), "changes(x[1800000ms])");
        assert_eq!(rw("changes(x[30m1s-30m1s % 1m])"), "changes(x[1800000ms])");
        assert_eq!(rw("x[29s+1s:5s+5s]"), "x[30000ms:10000ms]");
        assert_eq!(rw("x[1+(STep()-5)*2]"), "x[1000ms]");
        assert_eq!(rw("x[max_of(min_of(step()+1,1h),1ms)]"), "x[6000ms]");
        assert_eq!(rw("x offset 100 + 2"), "x offset 100000ms + 2");
        assert_eq!(rw("x offset -2 ^ 2"), "x offset -2000ms ^ 2");
        assert_eq!(rw("x offset (-2 ^ 2)"), "x offset -4000ms");
        assert_eq!(
            rw("x offset -min_of(step(), 1s)+8000"),
            "x offset -1000ms+8000"
        );
        assert_eq!(rw("x offset range()"), "x offset 10000ms");
        assert_eq!(rw("x offset (step()*0) + 1"), "x  + 1");
        assert!(rewrite("x[1m-1m]", QueryRange::default()).is_err());
    }

    #[test]
    fn range_modes_become_marker_matchers() {
        let m = |mode: &str| format!("{EXT_LABEL}=\"{mode}\"");
        assert_eq!(
            rw("increase(x[1m] anchored)"),
            format!("increase(x{{{}}}[1m] )", m("anchored"))
        );
        assert_eq!(
            rw(r#"rate(x{a="b",}[5m] smoothed)"#),
            format!(r#"rate(x{{a="b",{}}}[5m] )"#, m("smoothed"))
        );
        assert_eq!(
            rw("x @ 100 smoothed + 0"),
            format!("x{{{}}} @ 100  + 0", m("smoothed"))
        );
        assert_eq!(
            rw("x offset -100 smoothed"),
            format!("x{{{}}} offset -100000ms ", m("smoothed"))
        );
    }

    #[test]
    fn info_selectors_get_a_marker() {
        assert_eq!(
            rw(r#"info(x, {data=~".*"})"#),
            format!(r#"info(x, {{data=~".*",{INFO_LABEL}="1"}})"#)
        );
    }

    #[test]
    fn byte_escaped_strings_are_reencoded_everywhere() {
        assert_eq!(
            rw(r#"x{a="\xc3\xa9", "b"=~'\303\251'} + on("\xc3\xa9") y"#),
            r#"x{a="é", "b"=~"é"} + on("é") y"#
        );
        // positions after a re-encoded literal still point into the original
        let q = r#"count_values("\xc3\xa9", rate(x[1m]))"#;
        let r = rewrite(q, QueryRange::default()).unwrap();
        assert_eq!(r.text, r#"count_values("é", rate(x[1m]))"#);
        let e = promql_parser::parser::parse(&r.text).unwrap();
        let mut pos: Vec<CallPos> = call_positions(&e, &r).into_values().collect();
        pos.sort_by_key(|p| p.at);
        assert_eq!(pos[1].at, q.find("rate").unwrap());
        assert_eq!(
            pos[0].args,
            vec![q.find('"').unwrap(), q.find("rate").unwrap()]
        );
    }

    #[test]
    fn trim_operators_become_marked_binary_operations() {
        let (u, l) = (TRIM_UPPER_MARK, TRIM_LOWER_MARK);
        assert_eq!(rw("h </ 15"), format!("clamp((h ) atan2  (15), {u}, {u})"));
        assert_eq!(
            rw("sum(h) >/ on (label) group_left f * 2 > 1"),
            format!("clamp((sum(h) ) atan2  on (label) group_left (f * 2), {l}, {l}) > 1")
        );
        assert_eq!(
            rw("a or rate(h[5m]) >/15"),
            format!("a or clamp((rate(h[5m]) ) atan2 (15), {l}, {l})")
        );
        // each rewritten form parses
        for q in ["h </ 15", "h >/ on(label) f", "x >/ -Inf and y"] {
            promql_parser::parser::parse(&rw(q)).unwrap();
        }
    }
}
