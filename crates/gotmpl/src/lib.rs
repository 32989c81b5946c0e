//! Our implementation of the common subset of Go's `text/template`, as used by
//! Prometheus rule templates (annotations, labels) and Alertmanager notification
//! templates.
//!
//! Parse once with [`Template::parse`] (or [`Template::new`] + [`Template::add`] for
//! several files with `define`s), then [`Template::execute`] many times with a data
//! [`Value`] and an [`Env`] holding the functions ([`FuncMap`]), the methods
//! ([`Methods`], what Go would find as methods on types, e.g. `.SortedPairs`) and options.
//!
//! ```
//! use day2_gotmpl::{Env, Template, Value, funcs};
//! let f = funcs::prometheus("http://prom.example:9090");
//! let t = Template::parse("summary", "{{ .v | humanize }}B", &f).unwrap();
//! let data = Value::map([("v", Value::Float(1234567.0))]);
//! assert_eq!(t.execute(&data, &Env::new(f)).unwrap(), "1.235MB");
//! ```
//!
//! Supported: text, `{{.}}`, field chains on dot, variables and parenthesised
//! pipelines; `$x := ...`, `$x = ...`; pipelines with `|`; string (with escapes),
//! raw string, char, int (decimal, 0x, 0o, 0b, `_`), float, bool and nil
//! literals; `if`/`else if`/`else`, `range` (lists, maps in key order, ints;
//! `$i, $e :=`; `else`; `break`/`continue`), `with`/`else with`/`else`, `define`,
//! `template`, `block`, comments and `{{- -}}` trimming; the builtins `and`, `or`
//! (short-circuit), `not`, `len`, `index`, `slice`, `print`, `printf`, `println`,
//! `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `html`, `js`, `urlquery`. Printing follows
//! Go's `fmt` (floats as `%v`, `map[k:v]`, `[a b]`, `<no value>`), and a
//! registered `String` method is used for maps and lists as Go's `Stringer`.
//!
//! Deliberate differences from Go: `lt`/`gt`/`eq`... compare ints and floats
//! numerically (Go reports "incompatible types"); no `call` builtin (there are no
//! function values); no complex or hex-float literals; maps have string keys only;
//! no contextual HTML escaping (html/template) and no `Option`s besides
//! [`MissingKey`]; unknown functions are found when parsing, their arity when
//! executing (as Go).

mod builtins;
mod exec;
mod fmt;
pub mod funcs;
mod gotime;
mod lex;
pub mod methods;
mod parse;
mod value;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub use builtins::{html_escape, js_escape, query_escape};
pub use fmt::sprintf;
pub use funcs::{Func, FuncMap};
pub use gotime::{duration_string, format_layout, time_string};
pub use methods::{Method, Methods};
pub use value::Value;

use parse::{Source, Tree};

/// A parse or execution error, with the template file name, line and column.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The source could not be parsed.
    #[error("{name}:{line}:{col}: {msg}")]
    Parse {
        name: String,
        line: usize,
        col: usize,
        msg: String,
    },
    /// Execution failed at a node.
    #[error("{name}:{line}:{col}: executing {template:?} at <{context}>: {msg}")]
    Exec {
        name: String,
        line: usize,
        col: usize,
        template: String,
        context: String,
        msg: String,
    },
    /// No template of this name was defined.
    #[error("no template {0:?} defined")]
    NoTemplate(String),
}

/// What a field lookup of a missing map key gives (Go's `missingkey` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingKey {
    /// The zero value: `""` for a map of strings (Go's `map[string]string`, as
    /// Prometheus's `$labels`), otherwise nil, printed `<no value>`.
    #[default]
    Zero,
    /// Always nil, printed `<no value>` (Go's default for `map[string]interface{}`).
    NoValue,
    /// An execution error.
    Error,
}

/// Everything execution needs besides the template and the data.
#[derive(Clone, Debug)]
pub struct Env {
    /// Functions callable by name (the builtins are always there).
    pub funcs: FuncMap,
    /// Methods tried when `.Name` is not a key of the receiver.
    pub methods: Methods,
    /// Missing map key behaviour.
    pub missing_key: MissingKey,
    /// Maximum nesting of `{{template}}` calls.
    pub max_depth: usize,
}

impl Env {
    /// An environment with these functions, no methods and default options.
    pub fn new(funcs: FuncMap) -> Env {
        Env {
            funcs,
            methods: Methods::default(),
            missing_key: MissingKey::Zero,
            max_depth: 100,
        }
    }

    /// Sets the methods.
    pub fn with_methods(mut self, methods: Methods) -> Env {
        self.methods = methods;
        self
    }

    /// Sets the missing-key behaviour.
    pub fn with_missing_key(mut self, m: MissingKey) -> Env {
        self.missing_key = m;
        self
    }

    /// Functions of Prometheus's rule templates (with the `query` placeholder)
    /// and the time methods.
    pub fn prometheus(external_url: &str) -> Env {
        Env::new(funcs::prometheus(external_url)).with_methods(methods::time())
    }

    /// Functions and methods of Alertmanager's notification templates.
    pub fn alertmanager() -> Env {
        Env::new(funcs::alertmanager()).with_methods(methods::alertmanager())
    }
}

impl Default for Env {
    fn default() -> Env {
        Env::new(FuncMap::default())
    }
}

/// A set of named templates sharing `define`s, with a main template.
/// Immutable once built; `Send + Sync`, executing borrows it.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    trees: HashMap<String, Arc<Tree>>,
    funcs: HashSet<String>,
    vars: Vec<String>,
}

impl Template {
    /// An empty set whose main template is `name`; `funcs` are the names that
    /// parsing accepts besides the builtins (an unknown function is a parse error).
    pub fn new(name: &str, funcs: &FuncMap) -> Template {
        Template {
            name: name.to_string(),
            trees: HashMap::new(),
            funcs: funcs.names().map(str::to_string).collect(),
            vars: Vec::new(),
        }
    }

    /// Parses `src` as the template `name`.
    pub fn parse(name: &str, src: &str, funcs: &FuncMap) -> Result<Template, Error> {
        let mut t = Template::new(name, funcs);
        t.add(name, src)?;
        Ok(t)
    }

    /// Predeclares variables (names without `$`) visible in every template
    /// added afterwards; give their values with [`Template::execute_with_vars`].
    pub fn declare_vars(&mut self, names: &[&str]) {
        self.vars.extend(
            names
                .iter()
                .map(|n| format!("${}", n.trim_start_matches('$'))),
        );
    }

    /// Parses one more file into the set: its top-level text becomes template
    /// `name`, its `define`s are added. A later definition replaces an earlier one
    /// of the same name unless its body is only whitespace (as Go does).
    /// On error the set is unchanged.
    pub fn add(&mut self, name: &str, src: &str) -> Result<(), Error> {
        let source = Arc::new(Source {
            name: name.to_string(),
            text: src.to_string(),
        });
        let file = parse::parse_file(src, &self.funcs, &self.vars).map_err(|e| {
            let (line, col) = source.line_col(e.pos);
            Error::Parse {
                name: name.to_string(),
                line,
                col,
                msg: e.msg,
            }
        })?;
        let mut put = |tname: String, root: Vec<parse::Node>| {
            if parse::is_empty(&root) && self.trees.contains_key(&tname) {
                return;
            }
            let tree = Tree {
                name: tname.clone(),
                src: source.clone(),
                root,
            };
            self.trees.insert(tname, Arc::new(tree));
        };
        put(name.to_string(), file.main);
        for (n, body) in file.defines {
            put(n, body);
        }
        Ok(())
    }

    /// A copy of this set with one more text parsed into it as its main template
    /// `name`, able to call the set's `define`s (what Alertmanager does for each
    /// templated config field). The parsed trees are shared, not copied.
    pub fn with_text(&self, name: &str, src: &str) -> Result<Template, Error> {
        let mut t = self.clone();
        t.name = name.to_string();
        t.trees.remove(name);
        t.add(name, src)?;
        Ok(t)
    }

    /// The main template's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True if a template of this name is defined.
    pub fn has(&self, name: &str) -> bool {
        self.trees.contains_key(name)
    }

    /// The defined template names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.trees.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// Executes the main template with `data` as dot (and `$`).
    pub fn execute(&self, data: &Value, env: &Env) -> Result<String, Error> {
        self.execute_template(&self.name, data, env)
    }

    /// Executes the named template.
    pub fn execute_template(&self, name: &str, data: &Value, env: &Env) -> Result<String, Error> {
        self.execute_with_vars(name, data, env, &[])
    }

    /// Executes the named template with values for the predeclared variables
    /// (missing ones are nil).
    pub fn execute_with_vars(
        &self,
        name: &str,
        data: &Value,
        env: &Env,
        vars: &[(&str, Value)],
    ) -> Result<String, Error> {
        let tree = self
            .trees
            .get(name)
            .ok_or_else(|| Error::NoTemplate(name.to_string()))?;
        let pre: Vec<(String, Value)> = self
            .vars
            .iter()
            .map(|n| {
                let v = vars
                    .iter()
                    .find(|(k, _)| k.trim_start_matches('$') == &n[1..])
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                (n.clone(), v)
            })
            .collect();
        exec::run(self, tree, data, env, &pre)
    }

    pub(crate) fn tree(&self, name: &str) -> Option<&Arc<Tree>> {
        self.trees.get(name)
    }
}

#[cfg(test)]
mod tests;
