//! Runs `rules check` and `rules test` over Prometheus's promtool test data
//! (`shared/corpus/promtool`) with the outcome promtool gives each file, with
//! the same flags Prometheus's own tests use. Files that need features day2
//! does not have yet are listed as gaps: they must fail for the stated reason,
//! so the list shrinks when the feature lands.

use std::path::{Path, PathBuf};

use day2_rules::unittest::{TestOptions, run_file};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/promtool")
}

/// (file, ignore unknown fields, passes)
const CHECK: &[(&str, bool, bool)] = &[
    ("rules.yml", false, true),
    ("rules-bad.yml", false, false),
    ("bad-rules-error.yml", false, true),
    ("bad-rules-syntax.yml", false, false),
    ("at-modifier.yml", false, true),
    ("negative-offset.yml", false, true),
    ("rules_duplicates.yml", false, true),
    ("rules_extrafields.yml", false, false),
    ("rules_extrafields.yml", true, true),
    ("rules_large.yml", false, true),
    ("prometheus-rules.lint.yml", false, true),
];

/// Rule files day2 cannot load yet, and why.
const CHECK_GAPS: &[(&str, &str)] = &[(
    "features.yml",
    // Prometheus 3: UTF-8 metric names, duration expressions, anchored ranges, fill()
    "invalid recording rule name",
)];

/// (file, --run filter, ignore unknown fields, passes)
const TEST: &[(&str, Option<&str>, bool, bool)] = &[
    ("failing.yml", None, false, false),
    ("bad-input-series.yml", None, false, false),
    ("bad-promql.yml", None, false, false),
    ("bad-rules-error-test.yml", None, false, false),
    ("bad-rules-syntax-test.yml", None, false, false),
    ("rules_run.yml", None, false, false),
    ("rules_run.yml", Some("correct"), false, true),
    ("rules_run_extrafields.yml", None, false, false),
    ("rules_run_extrafields.yml", None, true, true),
    ("rules_run_fuzzy.yml", Some("correct"), false, true),
    ("rules_run_fuzzy.yml", Some("wrong"), false, false),
    ("rules_run_no_fuzzy.yml", None, false, false),
    ("long-period.yml", None, false, true),
    ("at-modifier-test.yml", None, false, true),
    ("negative-offset-test.yml", None, false, true),
    ("start-time-test.yml", None, false, true),
    ("no-test-group-interval.yml", None, false, true),
];

/// Unit-test files day2 cannot pass yet, and why.
const TEST_GAPS: &[(&str, &str)] =
    &[("unittest.yml", "native histogram samples are not supported")];

#[test]
fn promtool_check_rules_corpus() {
    let mut wrong = Vec::new();
    for (file, lax, passes) in CHECK {
        let r = day2_rules::file::load(&corpus().join(file), *lax);
        println!(
            "check {file} (ignore unknown fields: {lax}): {}",
            match &r {
                Ok(_) => "SUCCESS".to_string(),
                Err(e) => format!("FAILED: {e}"),
            }
        );
        if r.is_ok() != *passes {
            wrong.push(format!(
                "{file}: expected {}",
                if *passes { "success" } else { "failure" }
            ));
        }
        // a refusal names the file and the line
        if let Err(e) = r {
            assert!(e.line.is_some(), "{file}: error without a line: {e}");
        }
    }
    for (file, reason) in CHECK_GAPS {
        match day2_rules::file::load(&corpus().join(file), false) {
            Ok(_) => wrong.push(format!(
                "{file} loads now: move it from CHECK_GAPS to CHECK"
            )),
            Err(e) => assert!(e.to_string().contains(reason), "{file}: {e}"),
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn promtool_test_rules_corpus() {
    let mut wrong = Vec::new();
    for (file, run, lax, passes) in TEST {
        let opts = TestOptions {
            run: run.map(|r| regex::Regex::new(r).unwrap()),
            ignore_unknown_fields: *lax,
        };
        let rep = run_file(&corpus().join(file), &opts);
        println!("{}", rep.output);
        if rep.passed != *passes {
            wrong.push(format!(
                "{file} (run {run:?}): expected {}",
                if *passes { "pass" } else { "fail" }
            ));
        }
    }
    for (file, reason) in TEST_GAPS {
        let rep = run_file(&corpus().join(file), &TestOptions::default());
        if rep.passed {
            wrong.push(format!("{file} passes now: move it from TEST_GAPS to TEST"));
        } else {
            assert!(rep.output.contains(reason), "{file}: {}", rep.output);
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn failing_tests_say_what_differs() {
    let rep = run_file(&corpus().join("failing.yml"), &TestOptions::default());
    assert!(!rep.passed);
    // the unexpected firing alerts of the second test group are shown with their labels
    assert!(
        rep.output.contains("alertname: InstanceDown, time: 5m"),
        "{}",
        rep.output
    );
    assert!(rep.output.contains("job=\"test\""), "{}", rep.output);
    assert!(rep.output.contains("name: Failing test"), "{}", rep.output);
}
