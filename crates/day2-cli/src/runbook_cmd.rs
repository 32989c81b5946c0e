//! `day2 runbook list|runs|run|approve|reject`: the remediation API of a
//! running server, from the command line.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

#[derive(Args)]
pub struct Server {
    /// The day2 server.
    #[arg(long, env = "DAY2_URL", default_value = "http://127.0.0.1:9090")]
    url: String,
    /// Who acts (sent as X-Day2-User; loopback servers without tokens only).
    #[arg(long, env = "DAY2_USER")]
    user: Option<String>,
    /// API token (bearer), e.g. from the environment.
    #[arg(long, env = "DAY2_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Subcommand)]
pub enum RunbookCommand {
    /// List the loaded runbooks.
    List(Server),
    /// List runs, newest first.
    Runs {
        #[command(flatten)]
        server: Server,
        #[arg(long)]
        runbook: Option<String>,
        #[arg(long)]
        state: Option<String>,
    },
    /// Propose a run of a runbook by hand.
    Run {
        #[command(flatten)]
        server: Server,
        runbook: String,
        /// Alert-style label `name=value` (repeatable); names the target.
        #[arg(long = "label", value_parser = pair)]
        labels: Vec<(String, String)>,
        /// Parameter `name=value` (repeatable).
        #[arg(long = "param", value_parser = pair)]
        params: Vec<(String, String)>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Approve a run awaiting approval (not your own).
    Approve {
        #[command(flatten)]
        server: Server,
        id: u64,
    },
    /// Reject a run that has not started.
    Reject {
        #[command(flatten)]
        server: Server,
        id: u64,
        #[arg(long, default_value = "rejected")]
        reason: String,
    },
}

fn pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?}: expected name=value"))
}

impl Server {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let mut req = client.request(method, &url);
        if let Some(u) = &self.user {
            req = req.header("X-Day2-User", u);
        }
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{url}: {}", e.without_url()))?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(v)
        } else {
            let msg = v["error"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            Err(format!("{status}: {msg}"))
        }
    }
}

fn print_run(r: &Value) {
    let reason = r["reason"]
        .as_str()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    println!(
        "{}\t{}\t{}\t{}\trequested by {}{}",
        r["id"],
        r["runbook"].as_str().unwrap_or(""),
        r["state"].as_str().unwrap_or(""),
        serde_json::to_string(&r["target"]).unwrap_or_default(),
        r["requester"].as_str().unwrap_or(""),
        reason
    );
}

async fn exec(cmd: RunbookCommand) -> Result<(), String> {
    use reqwest::Method;
    match cmd {
        RunbookCommand::List(s) => {
            let v = s.call(Method::GET, "/api/day2/v1/runbooks", None).await?;
            for rb in v["runbooks"].as_array().into_iter().flatten() {
                println!(
                    "{}\tmatch {}\tapproval {}\t{}",
                    rb["name"].as_str().unwrap_or(""),
                    rb["match"],
                    rb["guardrails"]["approval"].as_str().unwrap_or(""),
                    rb["file"].as_str().unwrap_or("")
                );
            }
        }
        RunbookCommand::Runs {
            server,
            runbook,
            state,
        } => {
            let mut q = Vec::new();
            if let Some(r) = runbook {
                q.push(format!(
                    "runbook={}",
                    day2_remediate::plan::percent_encode(&r)
                ));
            }
            if let Some(s) = state {
                q.push(format!(
                    "state={}",
                    day2_remediate::plan::percent_encode(&s)
                ));
            }
            let path = format!("/api/day2/v1/runs?{}", q.join("&"));
            let v = server.call(Method::GET, &path, None).await?;
            v["runs"]
                .as_array()
                .into_iter()
                .flatten()
                .for_each(print_run);
        }
        RunbookCommand::Run {
            server,
            runbook,
            labels,
            params,
            dry_run,
        } => {
            let body = json!({
                "runbook": runbook,
                "labels": labels.into_iter().collect::<BTreeMap<_, _>>(),
                "params": params.into_iter().collect::<BTreeMap<_, _>>(),
                "dry_run": dry_run,
            });
            let v = server
                .call(Method::POST, "/api/day2/v1/runs", Some(body))
                .await?;
            print_run(&v);
        }
        RunbookCommand::Approve { server, id } => {
            let path = format!("/api/day2/v1/runs/{id}/approve");
            print_run(&server.call(Method::POST, &path, Some(json!({}))).await?);
        }
        RunbookCommand::Reject { server, id, reason } => {
            let path = format!("/api/day2/v1/runs/{id}/reject");
            let body = json!({ "reason": reason });
            print_run(&server.call(Method::POST, &path, Some(body)).await?);
        }
    }
    Ok(())
}

pub fn run(cmd: RunbookCommand) -> ExitCode {
    let Some(rt) = crate::client_runtime() else {
        return ExitCode::FAILURE;
    };
    match rt.block_on(exec(cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("day2: {e}");
            ExitCode::FAILURE
        }
    }
}
