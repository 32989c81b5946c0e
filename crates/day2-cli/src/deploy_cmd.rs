//! `day2 deploy mark`: records a deployment from a CI pipeline through
//! `POST /api/day2/v1/deployments`; with `--wait`, waits for the
//! post-deploy analysis and fails the pipeline step when it fails.
//!
//! Exit codes: 0 recorded (and, with `--wait`, the analysis did not fail);
//! 1 refused, unreachable, analysis failed or not finished in time; 2 bad
//! arguments.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

#[derive(clap::Subcommand)]
pub enum DeployCommand {
    /// Record a deployment (run it from CI after deploying).
    Mark(MarkArgs),
}

#[derive(clap::Args)]
pub struct MarkArgs {
    /// Address of day2.
    #[arg(long, env = "DAY2_URL", default_value = "http://127.0.0.1:9090")]
    url: String,
    /// The service deployed.
    #[arg(long)]
    service: String,
    /// The version deployed.
    #[arg(long)]
    version: String,
    /// Default: the server's `deployments.default_environment` (production).
    #[arg(long)]
    environment: Option<String>,
    /// A commit SHA the deployment ships (repeat for several).
    #[arg(long = "commit")]
    commits: Vec<String>,
    /// Commit time (RFC 3339, e.g. from `git show -s --format=%cI`), one per
    /// --commit in the same order; used for the lead time of changes.
    #[arg(long = "commit-time")]
    commit_times: Vec<String>,
    /// When it was deployed (RFC 3339); default: when day2 receives it.
    #[arg(long)]
    time: Option<String>,
    /// Link to the pipeline run or release notes.
    #[arg(long)]
    link: Option<String>,
    #[arg(long)]
    description: Option<String>,
    /// Sent as the `Idempotency-Key` header so a retried step records one
    /// deployment; default: derived from service, environment, version
    /// and commits.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// API token (`server.auth.tokens`); prefer DAY2_TOKEN or --token-file.
    #[arg(long, env = "DAY2_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// File holding the API token.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Who marks it, when day2 runs without tokens and is reached over loopback.
    #[arg(long)]
    user: Option<String>,
    /// Wait for the post-deploy analysis; exit 1 if it fails.
    #[arg(long)]
    wait: bool,
    /// Longest wait with --wait.
    #[arg(long, default_value = "1h")]
    wait_timeout: String,
    /// With --wait, also exit 1 when the verdict is inconclusive or an error.
    #[arg(long)]
    require_pass: bool,
}

pub fn run(cmd: DeployCommand) -> ExitCode {
    let DeployCommand::Mark(args) = cmd;
    let Some(rt) = crate::client_runtime() else {
        return ExitCode::FAILURE;
    };
    match rt.block_on(mark(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("day2: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn timestamp(flag: &str, s: &str) -> anyhow::Result<String> {
    let t: jiff::Timestamp = s
        .parse()
        .with_context(|| format!("{flag} {s:?}: not an RFC 3339 time"))?;
    Ok(t.to_string())
}

/// The request body from the flags.
fn body(args: &MarkArgs) -> anyhow::Result<Value> {
    if !args.commit_times.is_empty() && args.commit_times.len() != args.commits.len() {
        bail!(
            "{} --commit-time for {} --commit: give one time per commit, in the same order",
            args.commit_times.len(),
            args.commits.len()
        );
    }
    let commits: Vec<Value> = args
        .commits
        .iter()
        .enumerate()
        .map(|(i, sha)| {
            Ok(match args.commit_times.get(i) {
                Some(t) => json!({"sha": sha, "time": timestamp("--commit-time", t)?}),
                None => json!({"sha": sha}),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let mut b = json!({
        "service": args.service,
        "version": args.version,
        "commits": commits,
    });
    if let Some(e) = &args.environment {
        b["environment"] = json!(e);
    }
    if let Some(t) = &args.time {
        b["deployed_at"] = json!(timestamp("--time", t)?);
    }
    if let Some(l) = &args.link {
        b["url"] = json!(l);
    }
    if let Some(d) = &args.description {
        b["description"] = json!(d);
    }
    Ok(b)
}

/// The `Idempotency-Key` of this mark: the flag, or a digest of what
/// identifies the deployment, so a retried CI step sends the same key.
fn idempotency_key(args: &MarkArgs) -> String {
    if let Some(k) = &args.idempotency_key {
        return k.clone();
    }
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let environment = args.environment.as_deref().unwrap_or_default();
    for part in [&args.service, environment, &args.version]
        .into_iter()
        .chain(args.commits.iter().map(String::as_str))
    {
        // length-prefixed, so ("a", "bc") and ("ab", "c") differ
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    let hex: String = ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("day2-mark-{hex}")
}

fn token(args: &MarkArgs) -> anyhow::Result<Option<String>> {
    if let Some(path) = &args.token_file {
        let t = std::fs::read_to_string(path)
            .with_context(|| format!("--token-file {}", path.display()))?;
        return Ok(Some(t.trim().to_string()));
    }
    Ok(args.token.clone().filter(|t| !t.is_empty()))
}

/// The server's `{"error": ...}`, or the body as it came.
fn error_text(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(String::from))
        .unwrap_or_else(|| body.trim().to_string())
}

async fn mark(args: MarkArgs) -> anyhow::Result<ExitCode> {
    let body = body(&args)?;
    let wait_timeout = day2_model::parse_duration(&args.wait_timeout)
        .with_context(|| format!("--wait-timeout {:?}", args.wait_timeout))?;
    let token = token(&args)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let base = args.url.trim_end_matches('/');
    let with_auth = |r: reqwest::RequestBuilder| {
        let r = match &token {
            Some(t) => r.bearer_auth(t),
            None => r,
        };
        match &args.user {
            Some(u) => r.header("X-Day2-User", u),
            None => r,
        }
    };
    let resp = with_auth(client.post(format!("{base}/api/day2/v1/deployments")))
        .header("Idempotency-Key", idempotency_key(&args))
        .json(&body)
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!(
            "the server refused the deployment ({status}): {}",
            error_text(&text)
        );
    }
    let d: Value = serde_json::from_str(&text).context("day2's reply is not JSON")?;
    let id = d["id"]
        .as_i64()
        .context("day2's reply has no deployment id")?;
    let verb = if status == reqwest::StatusCode::CREATED {
        "recorded"
    } else {
        "already recorded (same idempotency key)"
    };
    println!(
        "deployment {id} {verb}: {} {} to {}",
        d["service"].as_str().unwrap_or_default(),
        d["version"].as_str().unwrap_or_default(),
        d["environment"].as_str().unwrap_or_default()
    );
    if d["analysis"].is_null() {
        if args.wait {
            println!("no post-deploy analysis is configured for it");
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "post-deploy analysis due at {}",
        d["analysis"]["due_at"].as_str().unwrap_or_default()
    );
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = Instant::now() + wait_timeout;
    let url = format!("{base}/api/day2/v1/deployments/{id}");
    loop {
        let resp = with_auth(client.get(&url)).send().await;
        if let Ok(r) = resp
            && r.status().is_success()
            && let Ok(v) = r.json::<Value>().await
            && v["analysis"]["state"] == "done"
            // the gate is the verdict: a rollback run may wait for approval
            && v["rollback"]["state"] != "pending"
        {
            return Ok(report(&v, args.require_pass));
        }
        if Instant::now() >= deadline {
            bail!(
                "the analysis of deployment {id} did not finish within {}",
                args.wait_timeout
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Prints the verdict; the exit code a CI gate wants.
fn report(d: &Value, require_pass: bool) -> ExitCode {
    let result = &d["analysis"]["result"];
    let verdict = result["verdict"].as_str().unwrap_or("unknown");
    println!("post-deploy analysis: {verdict}");
    for c in result["checks"].as_array().into_iter().flatten() {
        println!(
            "  {}: {} ({})",
            c["name"].as_str().unwrap_or_default(),
            c["verdict"].as_str().unwrap_or_default(),
            c["reason"].as_str().unwrap_or_default()
        );
    }
    let rb = &d["rollback"];
    if let Some(r) = rb["runbook"].as_str() {
        match (rb["run_id"].as_str(), rb["error"].as_str()) {
            (_, Some(e)) => println!("rollback: {e}"),
            (Some(run), None) if rb["run_state"] == "verified" => {
                println!("rollback runbook {r} run {run} verified: deployment rolled back")
            }
            (Some(run), None) => println!("rollback runbook {r} started: run {run}"),
            _ => {}
        }
    }
    match verdict {
        "pass" => ExitCode::SUCCESS,
        "fail" => ExitCode::FAILURE,
        _ if require_pass => ExitCode::FAILURE,
        _ => {
            eprintln!(
                "day2: the analysis was not conclusive ({verdict}); not failing (see --require-pass)"
            );
            ExitCode::SUCCESS
        }
    }
}
