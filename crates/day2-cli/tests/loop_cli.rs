//! The on-call CLI without a server: `day2 test loop` on the committed
//! example (passing, and a broken copy that must fail with file:line,
//! expected and got), `day2 oncall who`, and `day2 check config` on the
//! example's `oncall:` and `incidents:` sections.

use std::path::PathBuf;
use std::process::{Command, Output};

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/oncall")
        .join(name)
}

fn day2(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_day2"))
        .args(args)
        .env_remove("BOB_SLACK_WEBHOOK")
        .env_remove("DAY2_ACK_SECRET")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn the_example_loop_tests_pass() {
    let file = example("loop.yml");
    let o = day2(&["test", "loop", file.to_str().unwrap()], &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("8 tests, 8 passed, 0 failed"), "{out}");
    assert!(
        out.contains("PASS a critical database alert at night pages the primary, then the lead"),
        "{out}"
    );
}

#[test]
fn a_failing_assertion_names_its_line_and_what_differed() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(example("loop.yml")).unwrap();
    let bad = good
        .replace(
            "config: day2.yml",
            &format!("config: {}", example("day2.yml").display()),
        )
        .replacen(
            "oncall: { db-primary: bob }",
            "oncall: { db-primary: carol }",
            1,
        )
        .replacen(
            "{ step: 2, at: +15m30s, users: [lead] }",
            "{ step: 2, at: +15m, users: [lead] }",
            1,
        );
    assert_ne!(bad, good);
    let path = dir.path().join("bad.yml");
    std::fs::write(&path, &bad).unwrap();
    let line = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let o = day2(&["test", "loop", path.to_str().unwrap()], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    let p = path.display();
    assert!(
        out.contains(&format!(
            "{p}:{}: tests[0].expect.oncall.db-primary: expected carol, got bob",
            line("db-primary: carol")
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{p}:{}: tests[0].expect.escalation.steps[1].at: expected step 2 of round 1 at 2026-03-10T02:15:00Z, got at 2026-03-10T02:15:30Z",
            line("at: +15m,")
        )),
        "{out}"
    );
    assert!(out.contains("8 tests, 7 passed, 1 failed"), "{out}");

    // a file that does not load: exit 2 with its place
    std::fs::write(&path, bad.replacen("expect:", "expects:", 1)).unwrap();
    let o = day2(&["test", "loop", path.to_str().unwrap()], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    assert!(
        err.contains(&format!("{p}:")) && err.contains("expects"),
        "{err}"
    );
}

#[test]
fn who_is_on_call_from_the_config_file() {
    let cfg = example("day2.yml");
    let cfg = cfg.to_str().unwrap();
    // a civil time is read in the schedule's zone: 12:30 in Berlin is the override
    let o = day2(
        &[
            "oncall",
            "who",
            "--config",
            cfg,
            "--at",
            "2026-03-25 12:30",
            "--schedule",
            "db-primary",
        ],
        &[],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(
        out.trim(),
        "db-primary: lead (since 2026-03-25T11:00:00Z, until 2026-03-25T13:00:00Z) [Team Lead]"
    );
    let o = day2(
        &[
            "oncall",
            "who",
            "--config",
            cfg,
            "--at",
            "2026-03-30T07:00:00Z",
            "--json",
        ],
        &[],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["user"], "bob");
    assert_eq!(v[0]["user_name"], "Bob Brandt");
    let o = day2(
        &["oncall", "who", "--config", cfg, "--schedule", "nope"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("unknown schedule \"nope\""));
}

#[test]
fn check_config_reads_the_people_sections_and_their_secrets() {
    let cfg = example("day2.yml");
    let cfg = cfg.to_str().unwrap();
    let env = [
        ("DAY2_ACK_SECRET", "0123456789abcdef0123456789abcdef"),
        (
            "BOB_SLACK_WEBHOOK",
            "https://hooks.slack.com/services/T/B/x",
        ),
    ];
    let o = day2(&["check", "config", cfg], &env);
    assert!(o.status.success(), "{:?}", text(&o));
    // a secret that is not there is an error at its field
    let o = day2(&["check", "config", cfg], &env[..1]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    let text_cfg = std::fs::read_to_string(cfg).unwrap();
    let line = text_cfg
        .lines()
        .position(|l| l.contains("slack: env:BOB_SLACK_WEBHOOK"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!(
            ":{line}: oncall.users[1].contact_methods[0].slack: environment variable BOB_SLACK_WEBHOOK is not set"
        )),
        "{err}"
    );
    // a short acknowledgement key is refused
    let o = day2(
        &["check", "config", cfg],
        &[("DAY2_ACK_SECRET", "short"), env[1]],
    );
    assert!(
        text(&o)
            .1
            .contains("oncall.ack_links.secret: the key must be at least 32 characters")
    );
}
