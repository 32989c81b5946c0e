//! `day2 rules check` and `day2 rules test`: promtool's `check rules` and
//! `test rules` over the same file formats, with the same exit codes
//! (0 all good, 1 a check or test failed).

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum RulesCommand {
    /// Check rule files for syntax and semantic errors (like `promtool check rules`).
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Ignore fields this version does not know instead of failing.
        #[arg(long)]
        ignore_unknown_fields: bool,
    },
    /// Run rule unit-test files (like `promtool test rules`).
    Test {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Only run test groups whose name matches this regular expression.
        #[arg(long)]
        run: Option<String>,
        /// Ignore fields the rule files have that this version does not know.
        #[arg(long)]
        ignore_unknown_fields: bool,
    },
}

pub fn run(cmd: RulesCommand) -> ExitCode {
    match cmd {
        RulesCommand::Check {
            files,
            ignore_unknown_fields,
        } => {
            let mut ok = true;
            for f in &files {
                println!("Checking {}", f.display());
                match day2_rules::file::load(f, ignore_unknown_fields) {
                    Ok(loaded) => {
                        let n: usize = loaded.file.groups.iter().map(|g| g.rules.len()).sum();
                        for w in &loaded.warnings {
                            println!("  WARNING: {w}");
                        }
                        println!("  SUCCESS: {n} rules found\n");
                    }
                    Err(e) => {
                        ok = false;
                        println!("  FAILED:");
                        eprintln!("day2: {e}");
                        println!();
                    }
                }
            }
            exit(ok)
        }
        RulesCommand::Test {
            files,
            run,
            ignore_unknown_fields,
        } => {
            let run = match run.map(|r| regex::Regex::new(&r)) {
                Some(Err(e)) => {
                    eprintln!("day2: --run: {e}");
                    return ExitCode::from(2);
                }
                Some(Ok(r)) => Some(r),
                None => None,
            };
            let opts = day2_rules::unittest::TestOptions {
                run,
                ignore_unknown_fields,
            };
            let (out, ok) = day2_rules::unittest::run_files(&files, &opts);
            print!("{out}");
            exit(ok)
        }
    }
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
