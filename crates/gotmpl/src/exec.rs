//! Executor: walks a parsed tree with a dot value, a variable stack and an [`Env`].

use crate::builtins::{self, Builtin, zero_of};
use crate::parse::{Arg, ArgKind, Branch, Cmd, Func, Node, Pipe, Tree};
use crate::value::Value;
use crate::{Env, Error, MissingKey, Template};

/// How a list of nodes ended: normally, or by `{{break}}` / `{{continue}}`.
#[derive(PartialEq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

type R<T> = Result<T, Error>;

struct Exec<'a> {
    set: &'a Template,
    env: &'a Env,
    tree: &'a Tree,
    vars: Vec<(&'a str, Value)>,
    pre: &'a [(String, Value)],
    depth: usize,
    out: String,
}

pub(crate) fn run(
    set: &Template,
    tree: &Tree,
    data: &Value,
    env: &Env,
    pre: &[(String, Value)],
) -> R<String> {
    let mut e = Exec {
        set,
        env,
        tree,
        vars: Vec::new(),
        pre,
        depth: 0,
        out: String::new(),
    };
    e.reset_vars(data);
    e.list(data, &tree.root)?;
    Ok(e.out)
}

impl<'a> Exec<'a> {
    fn reset_vars(&mut self, dot: &Value) {
        self.vars.clear();
        self.vars.push(("$", dot.clone()));
        for (n, v) in self.pre {
            self.vars.push((n.as_str(), v.clone()));
        }
    }

    fn err(&self, pos: usize, end: usize, msg: impl Into<String>) -> Error {
        let (line, col) = self.tree.src.line_col(pos);
        let text = &self.tree.src.text;
        let context = text.get(pos..end.min(text.len())).unwrap_or("").to_string();
        Error::Exec {
            name: self.tree.src.name.clone(),
            line,
            col,
            template: self.tree.name.clone(),
            context,
            msg: msg.into(),
        }
    }

    fn arg_err(&self, a: &Arg, msg: impl Into<String>) -> Error {
        self.err(a.pos, a.end, msg)
    }

    fn list(&mut self, dot: &Value, nodes: &'a [Node]) -> R<Flow> {
        for n in nodes {
            let f = self.node(dot, n)?;
            if f != Flow::Normal {
                return Ok(f);
            }
        }
        Ok(Flow::Normal)
    }

    fn node(&mut self, dot: &Value, n: &'a Node) -> R<Flow> {
        match n {
            Node::Text(t) => self.out.push_str(t),
            Node::Action(p) => {
                let v = self.pipe(dot, p)?;
                if p.decl.is_empty() {
                    self.print(&v);
                }
            }
            Node::If(b) | Node::With(b) => {
                let with = matches!(n, Node::With(_));
                let mark = self.vars.len();
                let v = self.pipe(dot, &b.pipe)?;
                let flow = if v.is_true() {
                    self.list(if with { &v } else { dot }, &b.list)?
                } else if let Some(e) = &b.else_list {
                    self.list(dot, e)?
                } else {
                    Flow::Normal
                };
                self.vars.truncate(mark);
                return Ok(flow);
            }
            Node::Range(b) => return self.range(dot, b),
            Node::Template {
                pos,
                end,
                name,
                pipe,
            } => {
                let v = match pipe {
                    Some(p) => self.pipe(dot, p)?,
                    None => Value::Null,
                };
                self.template(*pos, *end, name, &v)?;
            }
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    /// Prints an action's value; like Go's fmt, a `String` method wins (e.g.
    /// Alertmanager's KV prints as `a=b, c=d`).
    fn print(&mut self, v: &Value) {
        if matches!(v, Value::Map(_) | Value::List(_))
            && let Some(m) = self.env.methods.get("String")
            && let Ok(Value::String(s)) = m(v, &[])
        {
            self.out.push_str(&s);
            return;
        }
        v.write_go(&mut self.out, true);
    }

    fn template(&mut self, pos: usize, end: usize, name: &str, dot: &Value) -> R<()> {
        let set: &'a Template = self.set;
        let Some(tree) = set.tree(name) else {
            return Err(self.err(pos, end, format!("template {name:?} not defined")));
        };
        if self.depth >= self.env.max_depth {
            let msg = format!("exceeded maximum template depth ({})", self.env.max_depth);
            return Err(self.err(pos, end, msg));
        }
        let tree: &'a Tree = tree;
        let saved_vars = std::mem::take(&mut self.vars);
        let saved_tree = std::mem::replace(&mut self.tree, tree);
        self.reset_vars(dot);
        self.depth += 1;
        let r = self.list(dot, &tree.root);
        self.depth -= 1;
        self.tree = saved_tree;
        self.vars = saved_vars;
        r.map(|_| ())
    }

    fn range(&mut self, dot: &Value, b: &'a Branch) -> R<Flow> {
        let mark = self.vars.len();
        let v = self.pipe_value(dot, &b.pipe)?;
        // Declared range variables are set per iteration: `$e` or `$i, $e`.
        let decl = &b.pipe.decl;
        if !b.pipe.assign {
            for d in decl {
                self.vars.push((d.as_str(), Value::Null));
            }
        }
        let inner = self.vars.len();
        let mut ran = false;
        let items: Box<dyn Iterator<Item = (Value, Value)>> = match &v {
            Value::List(l) => Box::new(
                l.iter()
                    .enumerate()
                    .map(|(i, e)| (Value::from(i), e.clone())),
            ),
            Value::Map(m) => Box::new(m.iter().map(|(k, e)| (Value::String(k.clone()), e.clone()))),
            Value::Int(n) => Box::new((0..*n).map(|i| (Value::Int(i), Value::Int(i)))),
            Value::Null => Box::new(std::iter::empty()),
            other => {
                let a = &b.pipe.cmds[0].args[0];
                return Err(self.arg_err(
                    a,
                    format!("range can't iterate over {}", other.to_go_string()),
                ));
            }
        };
        for (k, e) in items {
            ran = true;
            match decl.len() {
                0 => {}
                1 => self.set_var(&decl[0], e.clone(), b.pipe.assign, inner - 1),
                _ => {
                    self.set_var(&decl[0], k, b.pipe.assign, inner - 2);
                    self.set_var(&decl[1], e.clone(), b.pipe.assign, inner - 1);
                }
            }
            let f = self.list(&e, &b.list)?;
            self.vars.truncate(inner);
            if f == Flow::Break {
                break;
            }
        }
        let flow = if !ran {
            match &b.else_list {
                Some(l) => self.list(dot, l)?,
                None => Flow::Normal,
            }
        } else {
            Flow::Normal
        };
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn set_var(&mut self, name: &str, v: Value, assign: bool, slot: usize) {
        if assign {
            self.assign(name, v);
        } else {
            self.vars[slot].1 = v;
        }
    }

    fn assign(&mut self, name: &str, v: Value) {
        if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| *n == name) {
            slot.1 = v;
        }
    }

    fn var(&self, name: &str) -> Value {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// Evaluates a pipeline and applies its declarations or assignments.
    fn pipe(&mut self, dot: &Value, p: &'a Pipe) -> R<Value> {
        let v = self.pipe_value(dot, p)?;
        for d in &p.decl {
            if p.assign {
                self.assign(d, v.clone());
            } else {
                self.vars.push((d.as_str(), v.clone()));
            }
        }
        Ok(v)
    }

    /// Evaluates a pipeline's commands without touching variables.
    fn pipe_value(&mut self, dot: &Value, p: &'a Pipe) -> R<Value> {
        let mut v: Option<Value> = None;
        for c in &p.cmds {
            v = Some(self.cmd(dot, c, v)?);
        }
        Ok(v.unwrap_or_default())
    }

    fn not_a_function(&self, c: &Cmd, fin: &Option<Value>) -> R<()> {
        if c.args.len() > 1 || fin.is_some() {
            let a = &c.args[0];
            let text = &self.tree.src.text[a.pos..a.end];
            return Err(self.arg_err(a, format!("can't give argument to non-function {text}")));
        }
        Ok(())
    }

    fn cmd(&mut self, dot: &Value, c: &'a Cmd, fin: Option<Value>) -> R<Value> {
        let first = &c.args[0];
        match &first.kind {
            ArgKind::Field(chain) => self.chain(dot, dot.clone(), chain, first, &c.args[1..], fin),
            ArgKind::Var(name, chain) => {
                let v = self.var(name);
                if chain.is_empty() {
                    self.not_a_function(c, &fin)?;
                    return Ok(v);
                }
                self.chain(dot, v, chain, first, &c.args[1..], fin)
            }
            ArgKind::Pipe(p, chain) => {
                let v = self.pipe(dot, p)?;
                if chain.is_empty() {
                    self.not_a_function(c, &fin)?;
                    return Ok(v);
                }
                self.chain(dot, v, chain, first, &c.args[1..], fin)
            }
            ArgKind::Func(f) => self.call(dot, f, first, &c.args[1..], fin),
            ArgKind::Nil => Err(self.arg_err(first, "nil is not a command")),
            ArgKind::Dot | ArgKind::Lit(_) => {
                self.not_a_function(c, &fin)?;
                self.arg(dot, first)
            }
        }
    }

    fn arg(&mut self, dot: &Value, a: &'a Arg) -> R<Value> {
        match &a.kind {
            ArgKind::Dot => Ok(dot.clone()),
            ArgKind::Nil => Ok(Value::Null),
            ArgKind::Lit(v) => Ok(v.clone()),
            ArgKind::Field(chain) => self.chain(dot, dot.clone(), chain, a, &[], None),
            ArgKind::Var(name, chain) => {
                let v = self.var(name);
                self.chain(dot, v, chain, a, &[], None)
            }
            ArgKind::Pipe(p, chain) => {
                let v = self.pipe(dot, p)?;
                self.chain(dot, v, chain, a, &[], None)
            }
            ArgKind::Func(f) => self.call(dot, f, a, &[], None),
        }
    }

    fn args(&mut self, dot: &Value, args: &'a [Arg], fin: Option<Value>) -> R<Vec<Value>> {
        let mut v = Vec::with_capacity(args.len() + 1);
        for a in args {
            v.push(self.arg(dot, a)?);
        }
        v.extend(fin);
        Ok(v)
    }

    fn call(
        &mut self,
        dot: &Value,
        f: &Func,
        at: &Arg,
        args: &'a [Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        match f {
            Func::Builtin(b @ (Builtin::And | Builtin::Or)) => {
                // Short-circuit: stop at the first argument that decides.
                let and = *b == Builtin::And;
                if args.is_empty() && fin.is_none() {
                    return Err(self.arg_err(
                        at,
                        format!(
                            "wrong number of args for {}: want at least 1 got 0",
                            b.name()
                        ),
                    ));
                }
                let mut last = Value::Null;
                for a in args {
                    last = self.arg(dot, a)?;
                    if last.is_true() != and {
                        return Ok(last);
                    }
                }
                Ok(fin.unwrap_or(last))
            }
            Func::Builtin(b) => {
                let argv = self.args(dot, args, fin)?;
                builtins::call(*b, &argv)
                    .map_err(|e| self.arg_err(at, format!("error calling {}: {e}", b.name())))
            }
            Func::User(name) => {
                let Some(func) = self.env.funcs.get(name) else {
                    return Err(self.arg_err(at, format!("function {name:?} not defined")));
                };
                let func = func.clone();
                let argv = self.args(dot, args, fin)?;
                func(&argv).map_err(|e| self.arg_err(at, format!("error calling {name}: {e}")))
            }
        }
    }

    /// Evaluates `.A.B.C args...` on `recv`: arguments go to the last element.
    fn chain(
        &mut self,
        dot: &Value,
        mut recv: Value,
        chain: &'a [String],
        at: &Arg,
        args: &'a [Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        let mut fin = fin;
        for (i, name) in chain.iter().enumerate() {
            let last = i + 1 == chain.len();
            recv = if last {
                self.field(dot, recv, name, at, args, fin.take())?
            } else {
                self.field(dot, recv, name, at, &[], None)?
            };
        }
        if chain.is_empty() && (!args.is_empty() || fin.is_some()) {
            return Err(self.arg_err(at, "can't give argument to non-function"));
        }
        Ok(recv)
    }

    fn field(
        &mut self,
        dot: &Value,
        recv: Value,
        name: &str,
        at: &Arg,
        args: &'a [Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        let has_args = !args.is_empty() || fin.is_some();
        if let Value::Map(m) = &recv
            && let Some(v) = m.get(name)
        {
            if has_args {
                return Err(self.arg_err(at, format!("{name} is not a method but has arguments")));
            }
            return Ok(v.clone());
        }
        if let Some(method) = self.env.methods.get(name) {
            let method = method.clone();
            let argv = self.args(dot, args, fin)?;
            return method(&recv, &argv)
                .map_err(|e| self.arg_err(at, format!("error calling {name}: {e}")));
        }
        match &recv {
            Value::Map(m) => match self.env.missing_key {
                MissingKey::Zero => Ok(zero_of(m)),
                MissingKey::NoValue => Ok(Value::Null),
                MissingKey::Error => {
                    Err(self.arg_err(at, format!("map has no entry for key {name:?}")))
                }
            },
            Value::Null => {
                Err(self.arg_err(at, format!("nil pointer evaluating interface {{}}.{name}")))
            }
            other => Err(self.arg_err(
                at,
                format!("can't evaluate field {name} in type {}", other.type_name()),
            )),
        }
    }
}
