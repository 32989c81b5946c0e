//! `day2 route test`: for a label set, which routes and receivers of an
//! `alertmanager.yml` apply (the first output line is what
//! `amtool config routes test` prints), and beyond amtool: whether the alert
//! would be inhibited by given firing alerts, and whether its routes are muted
//! by time intervals at a given time.

use std::path::PathBuf;
use std::process::ExitCode;

use day2_alerthub::{Alert, RouteMute};
use day2_model::Labels;

#[derive(clap::Args)]
pub struct RouteTestArgs {
    /// The Alertmanager configuration file.
    #[arg(
        long = "config.file",
        alias = "config",
        default_value = "alertmanager.yml"
    )]
    config: PathBuf,
    /// Exit 1 unless the receivers are exactly these (comma-separated, in order).
    #[arg(long = "verify.receivers")]
    verify_receivers: Option<String>,
    /// A firing alert's labels, as matchers (`alertname="NodeDown",instance="a"`); repeatable.
    #[arg(long = "firing")]
    firing: Vec<String>,
    /// When to evaluate time intervals (RFC 3339); default: now.
    #[arg(long)]
    at: Option<String>,
    /// The alert's labels: `name=value` ...
    labels: Vec<String>,
}

fn parse_labels(args: &[String]) -> Result<Labels, String> {
    let mut pairs = Vec::new();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| format!("label {a:?} is not name=value"))?;
        let v = v.trim().trim_matches('"');
        pairs.push((k.trim().to_string(), v.to_string()));
    }
    Ok(Labels::from_pairs(pairs))
}

/// Labels of a `--firing` alert: equality matchers give the label set.
fn firing_labels(spec: &str) -> Result<Labels, String> {
    let ms = day2_alerthub::parse_matchers(spec).map_err(|e| format!("--firing {spec:?}: {e}"))?;
    let mut pairs = Vec::new();
    for m in ms {
        if m.op != day2_model::MatchOp::Equal {
            return Err(format!(
                "--firing {spec:?}: only name=\"value\" describes an alert"
            ));
        }
        pairs.push((m.name.clone(), m.value.clone()));
    }
    Ok(Labels::from_pairs(pairs))
}

pub fn run(args: RouteTestArgs) -> ExitCode {
    match test(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("day2: {e}");
            ExitCode::from(2)
        }
    }
}

fn test(args: &RouteTestArgs) -> Result<bool, String> {
    let file = args.config.display().to_string();
    let text =
        std::fs::read_to_string(&args.config).map_err(|e| format!("{file}: cannot read: {e}"))?;
    let cfg = day2_alerthub::load_str(&text).map_err(|e| e.render(&file))?;
    let labels = parse_labels(&args.labels)?;
    let now = match &args.at {
        Some(t) => t
            .parse::<jiff::Timestamp>()
            .map_err(|e| format!("--at {t:?}: {e}"))?,
        None => jiff::Timestamp::now(),
    };
    let routes = cfg.routes_for(&labels);
    let receivers = cfg.receivers_for(&labels);
    println!("{}", receivers.join(","));
    for r in &routes {
        let mute = match r.mute_at(&cfg.time_intervals, now) {
            Some(RouteMute::MutedBy(n)) => format!(", muted at {now} by time interval {n:?}"),
            Some(RouteMute::Inactive) => {
                format!(", muted at {now}: outside its active_time_intervals")
            }
            None => String::new(),
        };
        println!(
            "  route {} -> {} (group_wait {}, group_interval {}, repeat_interval {}){mute}",
            r.id(),
            r.opts.receiver,
            day2_model::format_duration(r.opts.group_wait),
            day2_model::format_duration(r.opts.group_interval),
            day2_model::format_duration(r.opts.repeat_interval),
        );
    }
    let firing: Vec<Alert> = args
        .firing
        .iter()
        .map(|f| firing_labels(f).map(|l| Alert::new(l, now)))
        .collect::<Result<_, _>>()?;
    if !firing.is_empty() {
        match cfg.inhibitor.inhibited_by(&labels, firing.iter(), now) {
            Some(inh) => {
                let src = firing
                    .iter()
                    .find(|a| a.fingerprint() == inh.source)
                    .map(|a| a.labels.to_string())
                    .unwrap_or_default();
                println!(
                    "  inhibited by inhibit_rules[{}] (source alert {src})",
                    inh.rule
                )
            }
            None => println!("  not inhibited by the given firing alerts"),
        }
    }
    if let Some(want) = &args.verify_receivers {
        let want: Vec<&str> = want
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if want != receivers {
            eprintln!("WARNING: expected receivers {want:?}, got {receivers:?}");
            return Ok(false);
        }
    }
    Ok(true)
}
