//! The built-in host collector. Reads `/proc`, `/sys` and `statvfs` and renders
//! the Prometheus text format under node_exporter's metric names, label names
//! and types, so node-exporter dashboards and alert rules work unchanged.
//! Each parser takes file contents as text so it is tested on fixed inputs.
//! Linux only; elsewhere [`render`] returns just the collector status lines.

mod proc;

use std::fmt::Write as _;
use std::time::Instant;

pub use proc::*;

/// Why the host metrics could not be rendered at all.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("no collector produced data")]
    Empty,
}

/// Metric families being rendered, so each gets one `# HELP`/`# TYPE` block.
pub struct Writer {
    out: String,
    families: std::collections::BTreeMap<String, (String, &'static str, Vec<String>)>,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

/// Escapes a label value for the text format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

impl Writer {
    pub fn new() -> Self {
        Writer {
            out: String::new(),
            families: Default::default(),
        }
    }

    /// Adds one sample to family `name`.
    pub fn sample(
        &mut self,
        name: &str,
        kind: &'static str,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        let mut line = String::from(name);
        if !labels.is_empty() {
            line.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                let _ = write!(line, "{k}=\"{}\"", escape(v));
            }
            line.push('}');
        }
        let _ = write!(line, " {}", number(value));
        self.families
            .entry(name.to_string())
            .or_insert_with(|| (help.to_string(), kind, Vec::new()))
            .2
            .push(line);
    }

    pub fn finish(mut self) -> String {
        for (name, (help, kind, lines)) in std::mem::take(&mut self.families) {
            let _ = writeln!(self.out, "# HELP {name} {help}");
            let _ = writeln!(self.out, "# TYPE {name} {kind}");
            for l in lines {
                self.out.push_str(&l);
                self.out.push('\n');
            }
        }
        self.out
    }
}

type Collector = fn(&mut Writer) -> Result<(), String>;

const COLLECTORS: &[(&str, Collector)] = &[
    ("cpu", proc::collect_cpu),
    ("meminfo", proc::collect_meminfo),
    ("loadavg", proc::collect_loadavg),
    ("stat", proc::collect_stat),
    ("filesystem", proc::collect_filesystem),
    ("diskstats", proc::collect_diskstats),
    ("netdev", proc::collect_netdev),
    ("uname", proc::collect_uname),
    ("time", proc::collect_time),
];

/// Renders all host metrics as Prometheus text exposition (with # HELP / # TYPE).
pub fn render() -> Result<String, HostError> {
    let mut w = Writer::new();
    let mut any = false;
    for (name, collect) in COLLECTORS {
        let start = Instant::now();
        let ok = if cfg!(target_os = "linux") {
            collect(&mut w)
        } else {
            Err("not supported on this OS".into())
        };
        let took = start.elapsed().as_secs_f64();
        any |= ok.is_ok();
        w.sample(
            "node_scrape_collector_duration_seconds",
            "gauge",
            "node_exporter: Duration of a collector scrape.",
            &[("collector", name)],
            took,
        );
        w.sample(
            "node_scrape_collector_success",
            "gauge",
            "node_exporter: Whether a collector succeeded.",
            &[("collector", name)],
            if ok.is_ok() { 1.0 } else { 0.0 },
        );
    }
    if !any && cfg!(target_os = "linux") {
        return Err(HostError::Empty);
    }
    Ok(w.finish())
}
