//! The data model templates operate on: a small dynamic value, like Go's `interface{}`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use day2_model::gofloat;

/// A template value. Lists and maps are behind `Arc` so that passing dot around,
/// ranging and calling templates never deep-copies data.
#[derive(Debug, Clone, Default)]
pub enum Value {
    /// Go's nil / a missing value. Prints as `<no value>` in an action.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer (Go `int`).
    Int(i64),
    /// A float (Go `float64`).
    Float(f64),
    /// A string.
    String(String),
    /// A list (Go slice).
    List(Arc<Vec<Value>>),
    /// A string-keyed map; iterates in key order as Go's `range` does.
    Map(Arc<BTreeMap<String, Value>>),
    /// An instant with its time zone (Go `time.Time`).
    Time(jiff::ZonedDateTime),
    /// A signed duration in nanoseconds (Go `time.Duration`).
    Duration(i64),
}

impl Value {
    /// Builds a list value.
    pub fn list(items: impl IntoIterator<Item = Value>) -> Value {
        Value::List(Arc::new(items.into_iter().collect()))
    }

    /// Builds a map value.
    pub fn map<K: Into<String>>(items: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(Arc::new(
            items.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        ))
    }

    /// Builds a map of strings (a Prometheus/Alertmanager label set).
    pub fn string_map<K: Into<String>, V: Into<String>>(
        items: impl IntoIterator<Item = (K, V)>,
    ) -> Value {
        Value::Map(Arc::new(
            items
                .into_iter()
                .map(|(k, v)| (k.into(), Value::String(v.into())))
                .collect(),
        ))
    }

    /// Go's truthiness: false, 0, nil, and empty strings, lists and maps are false.
    pub fn is_true(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::String(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Time(_) => true,
            Value::Duration(d) => *d != 0,
        }
    }

    /// The Go type name used in error messages (`string`, `float64`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::String(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
            Value::Time(_) => "time.Time",
            Value::Duration(_) => "time.Duration",
        }
    }

    /// The string inside, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number as f64 if this is an Int or Float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// True for a map whose values are all strings (or an empty map): Go's
    /// `map[string]string`, whose missing keys read as `""`.
    pub(crate) fn is_string_map(m: &BTreeMap<String, Value>) -> bool {
        m.values().all(|v| matches!(v, Value::String(_)))
    }

    /// Appends the value as Go's `fmt.Print` (`%v`) would.
    pub(crate) fn write_go(&self, out: &mut String, top: bool) {
        match self {
            Value::Null if top => out.push_str("<no value>"),
            Value::Null => out.push_str("<nil>"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.push_str(&gofloat::format_g(*f)),
            Value::String(s) => out.push_str(s),
            Value::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.write_go(out, false);
                }
                out.push(']');
            }
            Value::Map(m) => {
                out.push_str("map[");
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write_go(out, false);
                }
                out.push(']');
            }
            Value::Time(t) => out.push_str(&crate::gotime::time_string(t)),
            Value::Duration(d) => out.push_str(&crate::gotime::duration_string(*d)),
        }
    }

    /// The value as `fmt.Sprint` prints it (`<nil>` for Null).
    pub fn to_go_string(&self) -> String {
        let mut s = String::new();
        self.write_go(&mut s, false);
        s
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Int(a), Value::Float(b)) | (Value::Float(b), Value::Int(a)) => {
                (*a as f64) == *b
            }
            (Value::String(a), Value::String(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            (Value::Time(a), Value::Time(b)) => a.timestamp() == b.timestamp(),
            (Value::Duration(a), Value::Duration(b)) => a == b,
            _ => false,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}
impl From<i32> for Value {
    fn from(i: i32) -> Value {
        Value::Int(i64::from(i))
    }
}
impl From<usize> for Value {
    fn from(i: usize) -> Value {
        Value::Int(i64::try_from(i).unwrap_or(i64::MAX))
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}
impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Value {
        Value::List(Arc::new(v.into_iter().map(Into::into).collect()))
    }
}
impl<V: Into<Value>> From<BTreeMap<String, V>> for Value {
    fn from(m: BTreeMap<String, V>) -> Value {
        Value::Map(Arc::new(
            m.into_iter().map(|(k, v)| (k, v.into())).collect(),
        ))
    }
}
impl<V: Into<Value>, S> From<std::collections::HashMap<String, V, S>> for Value {
    fn from(m: std::collections::HashMap<String, V, S>) -> Value {
        Value::Map(Arc::new(
            m.into_iter().map(|(k, v)| (k, v.into())).collect(),
        ))
    }
}
impl From<jiff::ZonedDateTime> for Value {
    fn from(t: jiff::ZonedDateTime) -> Value {
        Value::Time(t)
    }
}
impl From<jiff::Timestamp> for Value {
    fn from(t: jiff::Timestamp) -> Value {
        Value::Time(t.to_zoned_datetime(jiff::tz::TimeZone::UTC))
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Value {
        o.map_or(Value::Null, Into::into)
    }
}

/// A label set becomes a map of strings (Prometheus's `$labels`, Alertmanager's KV).
impl From<&day2_model::Labels> for Value {
    fn from(l: &day2_model::Labels) -> Value {
        Value::Map(Arc::new(
            l.iter()
                .map(|l| (l.name.clone(), Value::String(l.value.clone())))
                .collect(),
        ))
    }
}

/// JSON numbers become Int when they are integers that fit, Float otherwise.
/// Strings stay strings (time stamps are not guessed: build `Value::Time` for them).
impl From<&serde_json::Value> for Value {
    fn from(j: &serde_json::Value) -> Value {
        match j {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Array(a) => Value::list(a.iter().map(Value::from)),
            serde_json::Value::Object(o) => {
                Value::map(o.iter().map(|(k, v)| (k.clone(), Value::from(v))))
            }
        }
    }
}
impl From<serde_json::Value> for Value {
    fn from(j: serde_json::Value) -> Value {
        Value::from(&j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truthiness_as_go() {
        for v in [
            Value::Null,
            Value::Bool(false),
            Value::Int(0),
            Value::Float(0.0),
            Value::from(""),
            Value::list([]),
            Value::map::<String>([]),
            Value::Duration(0),
        ] {
            assert!(!v.is_true(), "{v:?}");
        }
        for v in [
            Value::Bool(true),
            Value::Int(-1),
            Value::Float(0.1),
            Value::from("x"),
            Value::list([Value::Null]),
        ] {
            assert!(v.is_true(), "{v:?}");
        }
    }

    #[test]
    fn conversions() {
        let l = day2_model::Labels::from_pairs([("job", "api"), ("instance", "h:1")]);
        assert_eq!(Value::from(&l).to_go_string(), "map[instance:h:1 job:api]");
        let m: std::collections::HashMap<String, &str> = [("a".to_string(), "b")].into();
        assert_eq!(Value::from(m).to_go_string(), "map[a:b]");
        assert_eq!(Value::from(vec!["x", "y"]).to_go_string(), "[x y]");
        assert_eq!(Value::from(Some(1i64)), Value::Int(1));
        assert_eq!(Value::from(None::<i64>), Value::Null);
    }

    #[test]
    fn prints_like_fmt_print() {
        let v = Value::from(serde_json::json!({"b": [1, 2.5, "x", null], "a": true}));
        assert_eq!(v.to_go_string(), "map[a:true b:[1 2.5 x <nil>]]");
        assert_eq!(Value::Float(1e6).to_go_string(), "1e+06");
    }
}
