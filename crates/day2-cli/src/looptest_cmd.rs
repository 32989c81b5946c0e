//! `day2 test loop FILE...`: runs loop-test files (see
//! `day2_oncall::looptest`) against the `day2.yml` each names. Pure: nothing
//! is started. A failed assertion prints `file:line: field: expected X, got Y`
//! and the command exits 1; a file that cannot be loaded exits 2.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use day2_oncall::OnCall;
use day2_oncall::looptest::{self, LoopFile};
use serde::Deserialize;

use crate::config::AlertmanagerSection;

#[derive(clap::Args)]
pub struct LoopArgs {
    /// Loop-test files (YAML).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

pub fn run(args: LoopArgs) -> ExitCode {
    let mut failed = false;
    for f in &args.files {
        match run_file(f) {
            Ok(ok) => failed |= !ok,
            Err(e) => {
                eprintln!("day2: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The parts of day2.yml a loop test reads (other sections are ignored, so
/// secrets need not be set where the tests run).
#[derive(Deserialize)]
struct Sections {
    #[serde(default)]
    alertmanager: Option<AlertmanagerSection>,
}

fn load_hub(day2: &Path, text: &str) -> Result<day2_alerthub::HubConfig, String> {
    let file = day2.display().to_string();
    let s: Sections = day2_yamlerr::from_str(text, &file).map_err(|e| e.to_string())?;
    let sec = s
        .alertmanager
        .ok_or_else(|| format!("{file}: no alertmanager section to test"))?;
    let (am_text, am_file) = match (&sec.config_file, &sec.config) {
        (Some(p), None) => {
            let full = day2.parent().unwrap_or(Path::new(".")).join(p);
            let t = day2_yamlerr::read(&full).map_err(|e| e.to_string())?;
            (t, full.display().to_string())
        }
        (None, Some(v)) => (
            serde_yaml_ng::to_string(v).map_err(|e| format!("{file}: alertmanager.config: {e}"))?,
            format!("{file} (alertmanager.config)"),
        ),
        _ => {
            return Err(format!(
                "{file}: alertmanager: one of config_file or config is required"
            ));
        }
    };
    day2_alerthub::load_str(&am_text).map_err(|e| e.render(&am_file))
}

/// Runs one file; `Ok(false)` when an assertion failed.
fn run_file(path: &Path) -> Result<bool, String> {
    let file = path.display().to_string();
    let text = day2_yamlerr::read(path).map_err(|e| e.to_string())?;
    let tests: LoopFile = day2_yamlerr::from_str(&text, &file).map_err(|e| e.to_string())?;
    let day2 = path.parent().unwrap_or(Path::new(".")).join(&tests.config);
    let day2_text = day2_yamlerr::read(&day2).map_err(|e| e.to_string())?;
    let oncall = OnCall::parse_document(&day2_text, &day2.display().to_string())
        .map_err(|e| e.to_string())?;
    let hub = load_hub(&day2, &day2_text)?;
    let results = looptest::run(&tests, &hub, &oncall);
    let mut passed = 0;
    for r in &results {
        let line = day2_oncall::config::locate(&text, &file, &r.path, String::new()).line;
        let place = match line {
            Some(l) => format!("{file}:{l}"),
            None => file.clone(),
        };
        if r.failures.is_empty() {
            passed += 1;
            println!("PASS {} ({place})", r.name);
            continue;
        }
        println!("FAIL {} ({place})", r.name);
        for f in &r.failures {
            let at = day2_oncall::config::locate(
                &text,
                &file,
                &f.path,
                format!("expected {}, got {}", f.expected, f.got),
            );
            println!("  {at}");
        }
    }
    println!(
        "{file}: {} tests, {passed} passed, {} failed",
        results.len(),
        results.len() - passed
    );
    Ok(passed == results.len())
}
