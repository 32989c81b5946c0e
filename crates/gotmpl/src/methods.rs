//! Method registries: what Go finds as methods on the data's types (e.g.
//! Alertmanager's `KV.SortedPairs`), tried when `.Name` is not a map key.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::funcs::str_arg;
use crate::gotime::format_layout;
use crate::value::Value;

/// A method: receiver and evaluated arguments in, a value or an error message out.
pub type Method = Arc<dyn Fn(&Value, &[Value]) -> Result<Value, String> + Send + Sync>;

/// Methods by name. Cloning is cheap (shared until modified).
#[derive(Clone, Default)]
pub struct Methods(Arc<HashMap<String, Method>>);

impl std::fmt::Debug for Methods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.0.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_tuple("Methods").field(&names).finish()
    }
}

impl Methods {
    /// No methods.
    pub fn new() -> Methods {
        Methods::default()
    }

    /// Adds or replaces a method.
    pub fn insert<F>(&mut self, name: &str, f: F)
    where
        F: Fn(&Value, &[Value]) -> Result<Value, String> + Send + Sync + 'static,
    {
        Arc::make_mut(&mut self.0).insert(name.to_string(), Arc::new(f));
    }

    /// Adds or replaces a method, builder style.
    pub fn with<F>(mut self, name: &str, f: F) -> Methods
    where
        F: Fn(&Value, &[Value]) -> Result<Value, String> + Send + Sync + 'static,
    {
        self.insert(name, f);
        self
    }

    /// Adds all methods of `other`, replacing same-named ones.
    pub fn extend(&mut self, other: &Methods) {
        let m = Arc::make_mut(&mut self.0);
        for (k, v) in other.0.iter() {
            m.insert(k.clone(), v.clone());
        }
    }

    /// The method of this name.
    pub fn get(&self, name: &str) -> Option<&Method> {
        self.0.get(name)
    }
}

fn no_args(name: &str, args: &[Value]) -> Result<(), String> {
    if !args.is_empty() {
        return Err(format!(
            "wrong number of args for {name}: want 0 got {}",
            args.len()
        ));
    }
    Ok(())
}

fn wrong(name: &str, recv: &Value) -> String {
    format!("{name} can't be called on type {}", recv.type_name())
}

/// Keys in Alertmanager's `KV.SortedPairs` order: `alertname` first, then sorted.
fn sorted_keys(m: &BTreeMap<String, Value>) -> Vec<&String> {
    let mut keys: Vec<&String> = Vec::with_capacity(m.len());
    if let Some((k, _)) = m.get_key_value("alertname") {
        keys.push(k);
    }
    keys.extend(m.keys().filter(|k| *k != "alertname"));
    keys
}

fn pairs(m: &BTreeMap<String, Value>) -> Value {
    Value::list(
        sorted_keys(m)
            .into_iter()
            .map(|k| Value::map([("Name", Value::String(k.clone())), ("Value", m[k].clone())])),
    )
}

/// `Names`/`Values` of a KV map (in SortedPairs order) or of a list of pairs.
fn project(name: &str, recv: &Value, field: &str) -> Result<Value, String> {
    match recv {
        Value::Map(m) => Ok(Value::list(sorted_keys(m).into_iter().map(|k| {
            if field == "Name" {
                Value::String(k.clone())
            } else {
                m[k].clone()
            }
        }))),
        Value::List(l) => Ok(Value::list(l.iter().map(|p| match p {
            Value::Map(pm) => pm.get(field).cloned().unwrap_or_default(),
            _ => Value::Null,
        }))),
        v => Err(wrong(name, v)),
    }
}

fn is_pair(v: &Value) -> bool {
    matches!(v, Value::Map(m) if m.len() == 2 && m.contains_key("Name") && m.contains_key("Value"))
}

fn by_status(name: &str, recv: &Value, status: &str) -> Result<Value, String> {
    match recv {
        Value::List(l) => Ok(Value::list(
            l.iter()
                .filter(|a| match a {
                    Value::Map(m) => m.get("Status").and_then(Value::as_str) == Some(status),
                    _ => false,
                })
                .cloned(),
        )),
        v => Err(wrong(name, v)),
    }
}

/// Alertmanager's methods: `SortedPairs`, `Names`, `Values`, `Remove` on label
/// maps (KV), `Names`/`Values` on pair lists, `Firing`/`Resolved` on alert lists
/// (maps with a `Status` of `firing`/`resolved`), plus [`time`]'s.
pub fn alertmanager() -> Methods {
    let mut m = time();
    m.insert("SortedPairs", |recv, args| {
        no_args("SortedPairs", args)?;
        match recv {
            Value::Map(kv) => Ok(pairs(kv)),
            v => Err(wrong("SortedPairs", v)),
        }
    });
    m.insert("Names", |recv, args| {
        no_args("Names", args)?;
        project("Names", recv, "Name")
    });
    m.insert("Values", |recv, args| {
        no_args("Values", args)?;
        project("Values", recv, "Value")
    });
    m.insert("Remove", |recv, args| {
        let Value::Map(kv) = recv else {
            return Err(wrong("Remove", recv));
        };
        // Go's Remove takes a []string; also accept the keys as separate arguments.
        let mut drop: Vec<&str> = Vec::new();
        for a in args {
            match a {
                Value::List(l) => {
                    for (i, _) in l.iter().enumerate() {
                        drop.push(str_arg(l, i)?);
                    }
                }
                Value::String(s) => drop.push(s),
                v => {
                    return Err(format!(
                        "wrong type for value; expected []string; got {}",
                        v.type_name()
                    ));
                }
            }
        }
        let mut out = kv.as_ref().clone();
        for k in drop {
            out.remove(k);
        }
        Ok(out.into())
    });
    // Go's fmt prints KV and Pairs through their String methods.
    m.insert("String", |recv, args| {
        no_args("String", args)?;
        let join = |it: &mut dyn Iterator<Item = (String, String)>| {
            it.map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match recv {
            Value::Time(_) | Value::Duration(_) => Ok(recv.to_go_string().into()),
            Value::Map(kv) if Value::is_string_map(kv) => Ok(join(
                &mut sorted_keys(kv)
                    .into_iter()
                    .map(|k| (k.clone(), kv[k].to_go_string())),
            )
            .into()),
            Value::List(l) if !l.is_empty() && l.iter().all(is_pair) => {
                Ok(join(&mut l.iter().map(|p| {
                    let f = |n: &str| match p {
                        Value::Map(m) => m.get(n).map(Value::to_go_string).unwrap_or_default(),
                        _ => String::new(),
                    };
                    (f("Name"), f("Value"))
                }))
                .into())
            }
            v => Err(wrong("String", v)),
        }
    });
    m.insert("Firing", |recv, args| {
        no_args("Firing", args)?;
        by_status("Firing", recv, "firing")
    });
    m.insert("Resolved", |recv, args| {
        no_args("Resolved", args)?;
        by_status("Resolved", recv, "resolved")
    });
    m
}

/// Unix seconds of Go's zero `time.Time`.
const GO_ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// Methods of Go's `time.Time` (`Format`, `Unix`, `UnixMilli`, `UTC`, `IsZero`,
/// `Sub`, `Before`, `After`, `Equal`) and
/// `time.Duration` (`Seconds`, `Minutes`, `Hours`, `Milliseconds`, `String`).
pub fn time() -> Methods {
    let mut m = Methods::new();
    m.insert("Format", |recv, args| match recv {
        Value::Time(t) => {
            if args.len() != 1 {
                return Err(format!(
                    "wrong number of args for Format: want 1 got {}",
                    args.len()
                ));
            }
            Ok(format_layout(t, str_arg(args, 0)?).into())
        }
        v => Err(wrong("Format", v)),
    });
    m.insert("Unix", |recv, args| {
        no_args("Unix", args)?;
        match recv {
            Value::Time(t) => Ok(Value::Int(t.timestamp().as_second())),
            v => Err(wrong("Unix", v)),
        }
    });
    m.insert("UnixMilli", |recv, args| {
        no_args("UnixMilli", args)?;
        match recv {
            Value::Time(t) => Ok(Value::Int(t.timestamp().as_millisecond())),
            v => Err(wrong("UnixMilli", v)),
        }
    });
    m.insert("UTC", |recv, args| {
        no_args("UTC", args)?;
        match recv {
            Value::Time(t) => Ok(Value::Time(t.with_time_zone(jiff::tz::TimeZone::UTC))),
            v => Err(wrong("UTC", v)),
        }
    });
    m.insert("IsZero", |recv, args| {
        no_args("IsZero", args)?;
        match recv {
            // Go's zero time.Time is 0001-01-01 00:00:00 UTC.
            Value::Time(t) => Ok(Value::Bool(
                t.timestamp().as_second() == GO_ZERO_TIME_UNIX && t.subsec_nanosecond() == 0,
            )),
            v => Err(wrong("IsZero", v)),
        }
    });
    m.insert("Sub", |recv, args| match (recv, args) {
        (Value::Time(a), [Value::Time(b)]) => {
            let d = a.timestamp().as_nanosecond() - b.timestamp().as_nanosecond();
            Ok(Value::Duration(i64::try_from(d).unwrap_or(if d < 0 {
                i64::MIN
            } else {
                i64::MAX
            })))
        }
        (Value::Time(_), _) => Err("Sub wants one time.Time argument".into()),
        (v, _) => Err(wrong("Sub", v)),
    });
    for (name, want) in [
        ("Before", std::cmp::Ordering::Less),
        ("After", std::cmp::Ordering::Greater),
        ("Equal", std::cmp::Ordering::Equal),
    ] {
        m.insert(name, move |recv, args| match (recv, args) {
            (Value::Time(a), [Value::Time(b)]) => {
                Ok(Value::Bool(a.timestamp().cmp(&b.timestamp()) == want))
            }
            (Value::Time(_), _) => Err(format!("{name} wants one time.Time argument")),
            (v, _) => Err(wrong(name, v)),
        });
    }
    let dur = |name: &'static str, div: f64| {
        move |recv: &Value, args: &[Value]| {
            no_args(name, args)?;
            match recv {
                Value::Duration(d) => Ok(Value::Float(*d as f64 / div)),
                v => Err(wrong(name, v)),
            }
        }
    };
    m.insert("Seconds", dur("Seconds", 1e9));
    m.insert("Minutes", dur("Minutes", 60e9));
    m.insert("Hours", dur("Hours", 3600e9));
    m.insert("Milliseconds", |recv, args| {
        no_args("Milliseconds", args)?;
        match recv {
            Value::Duration(d) => Ok(Value::Int(d / 1_000_000)),
            v => Err(wrong("Milliseconds", v)),
        }
    });
    m.insert("String", |recv, args| {
        no_args("String", args)?;
        match recv {
            Value::Time(_) | Value::Duration(_) => Ok(recv.to_go_string().into()),
            v => Err(wrong("String", v)),
        }
    });
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_methods() {
        let m = alertmanager();
        let kv = Value::string_map([("job", "api"), ("alertname", "Down"), ("a", "1")]);
        let call = |n: &str, r: &Value, a: &[Value]| (m.get(n).unwrap())(r, a);
        assert_eq!(
            call("Names", &kv, &[]).unwrap().to_go_string(),
            "[alertname a job]"
        );
        assert_eq!(
            call("Values", &kv, &[]).unwrap().to_go_string(),
            "[Down 1 api]"
        );
        let p = call("SortedPairs", &kv, &[]).unwrap();
        assert_eq!(
            p.to_go_string(),
            "[map[Name:alertname Value:Down] map[Name:a Value:1] map[Name:job Value:api]]"
        );
        assert_eq!(
            call("Values", &p, &[]).unwrap().to_go_string(),
            "[Down 1 api]"
        );
        let r = call(
            "Remove",
            &kv,
            &[Value::list([Value::from("a"), Value::from("job")])],
        );
        assert_eq!(r.unwrap().to_go_string(), "map[alertname:Down]");
        assert!(call("Firing", &kv, &[]).is_err());
        assert_eq!(
            call("String", &kv, &[]).unwrap().to_go_string(),
            "alertname=Down, a=1, job=api"
        );
        assert_eq!(
            call("String", &p, &[]).unwrap().to_go_string(),
            "alertname=Down, a=1, job=api"
        );
        assert!(call("String", &Value::list([Value::Int(1)]), &[]).is_err());
    }

    #[test]
    fn time_methods() {
        let m = time();
        let call = |n: &str, r: &Value, a: &[Value]| (m.get(n).unwrap())(r, a);
        let t = |s: &str| {
            Value::Time(
                s.parse::<jiff::Timestamp>()
                    .unwrap()
                    .to_zoned_datetime(jiff::tz::TimeZone::UTC),
            )
        };
        let (zero, a, b) = (
            t("0001-01-01T00:00:00Z"),
            t("2024-05-01T10:00:00Z"),
            t("2024-05-01T11:30:00.5Z"),
        );
        assert_eq!(call("IsZero", &zero, &[]), Ok(Value::Bool(true)));
        assert_eq!(call("IsZero", &a, &[]), Ok(Value::Bool(false)));
        assert_eq!(
            call("Sub", &b, std::slice::from_ref(&a))
                .unwrap()
                .to_go_string(),
            "1h30m0.5s"
        );
        assert_eq!(
            call("Before", &a, std::slice::from_ref(&b)),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            call("After", &a, std::slice::from_ref(&b)),
            Ok(Value::Bool(false))
        );
        assert_eq!(call("Unix", &a, &[]), Ok(Value::Int(1714557600)));
        assert_eq!(
            call("Format", &b, &[Value::from("Jan 2 15:04:05.000")]),
            Ok(Value::from("May 1 11:30:00.500"))
        );
        let d = call("Sub", &b, &[a]).unwrap();
        assert_eq!(
            call("Minutes", &d, &[]),
            Ok(Value::Float(90.00833333333334))
        );
    }
}
