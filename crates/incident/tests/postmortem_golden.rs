//! Golden files for the postmortem draft: each `tests/testdata/NAME.json` holds an incident,
//! `NAME.md` the expected Markdown. One `#[test]` per case, so each shows up (and can be run)
//! on its own in rust-analyzer. `UPDATE_GOLDEN=1 cargo test -p day2-incident --test
//! postmortem_golden` rewrites the `.md` files from the current output.

use std::path::{Path, PathBuf};

use day2_incident::{Incident, draft_postmortem};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata")
}

fn check(name: &str) {
    let input = testdata().join(format!("{name}.json"));
    let golden = testdata().join(format!("{name}.md"));
    let json =
        std::fs::read_to_string(&input).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    let inc: Incident =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    let got = draft_postmortem(&inc);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&golden, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            golden.display()
        )
    });
    if got != want {
        let line = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || got.lines().count().min(want.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "{} differs from the draft first at line {line}:\n got: {:?}\nwant: {:?}\n(run with UPDATE_GOLDEN=1 to accept)",
            golden.display(),
            got.lines().nth(line - 1).unwrap_or(""),
            want.lines().nth(line - 1).unwrap_or("")
        );
    }
}

macro_rules! golden {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check(stringify!($name));
            }
        )*
        const CASES: &[&str] = &[$(stringify!($name)),*];
    };
}

golden!(resolved_sev1, ongoing_unacknowledged);

/// Every input file has a test function (and so a golden file).
#[test]
fn every_case_is_listed() {
    let mut found: Vec<String> = std::fs::read_dir(testdata())
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "json").then(|| p.file_stem()?.to_str().map(str::to_string))?
        })
        .collect();
    found.sort();
    let mut listed: Vec<String> = CASES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed, "add new cases to golden!(..)");
}
