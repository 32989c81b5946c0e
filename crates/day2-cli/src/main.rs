//! The `day2` binary: command line and wiring. Each subcommand hands off to
//! the crate that owns the job.

mod autoscalewire;
mod config;
mod deploy_cmd;
mod deploywire;
mod hubwire;
mod incidentwire;
mod looptest_cmd;
mod loopwire;
mod oncallwire;
mod peoplewire;
mod remediatewire;
mod rollbackwire;
mod route_cmd;
mod rules_cmd;
mod runbook_cmd;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "day2",
    version,
    about = "Observe, detect, notify, remediate, run the incident and learn, in one binary."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (storage, scraping, HTTP API).
    Serve(serve::ServeArgs),
    /// Check rule files and run rule unit tests (promtool's formats).
    Rules {
        #[command(subcommand)]
        what: rules_cmd::RulesCommand,
    },
    /// Which routes, receivers, inhibitions and mutes apply to a label set.
    Route {
        #[command(subcommand)]
        what: RouteCommand,
    },
    /// Tell day2 about deployments (for CI pipelines).
    Deploy {
        #[command(subcommand)]
        what: deploy_cmd::DeployCommand,
    },
    /// Runbooks and remediation runs of a running server.
    Runbook {
        #[command(subcommand)]
        what: runbook_cmd::RunbookCommand,
    },
    /// Validate files without running anything.
    Check {
        #[command(subcommand)]
        what: CheckWhat,
    },
    /// On-call schedules.
    Oncall {
        #[command(subcommand)]
        what: oncallwire::OnCallCommand,
    },
    /// Acknowledge an escalation on a running day2 (stops its next steps).
    Ack(oncallwire::AckArgs),
    /// Run test files against the configuration.
    Test {
        #[command(subcommand)]
        what: TestWhat,
    },
}

#[derive(Subcommand)]
enum TestWhat {
    /// Loop tests: for alerts at given times, receivers, inhibitions, who is
    /// on call, when escalation steps fire (exit 1 when an assertion fails).
    Loop(looptest_cmd::LoopArgs),
}

#[derive(Subcommand)]
enum RouteCommand {
    /// Like `amtool config routes test`, plus inhibition and time intervals.
    Test(route_cmd::RouteTestArgs),
}

#[derive(Subcommand)]
enum CheckWhat {
    /// Validate day2.yml files; errors give file:line and the field.
    Config {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => match serve::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("day2: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Rules { what } => rules_cmd::run(what),
        Command::Deploy { what } => deploy_cmd::run(what),
        Command::Runbook { what } => runbook_cmd::run(what),
        Command::Route {
            what: RouteCommand::Test(args),
        } => route_cmd::run(args),
        Command::Oncall { what } => oncallwire::run(what),
        Command::Ack(args) => oncallwire::ack(args),
        Command::Test {
            what: TestWhat::Loop(args),
        } => looptest_cmd::run(args),
        Command::Check {
            what: CheckWhat::Config { files },
        } => {
            let mut ok = true;
            for f in &files {
                match config::Day2Config::load(f) {
                    Ok(cfg) => println!(
                        "{}: OK ({} scrape configs, listen {}, data dir {})",
                        f.display(),
                        cfg.scrape_configs.len(),
                        cfg.server.listen,
                        cfg.server.data_dir.display()
                    ),
                    Err(e) => {
                        ok = false;
                        eprintln!("day2: {e}");
                    }
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The single-threaded runtime of a client command (`ack`, `deploy mark`,
/// `runbook`); says why when it cannot start.
fn client_runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| eprintln!("day2: starting the async runtime: {e}"))
        .ok()
}
