//! `day2 route test` against the real `amtool config routes test` (Debian's
//! `prometheus-alertmanager`, installed by scripts/test.sh) on the same
//! configuration and label sets, plus what amtool does not answer:
//! inhibition by given firing alerts, and time-interval mutes.

use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/alertmanager/config")
        .join(name)
}

fn day2(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_day2"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const LABEL_SETS: &[&[&str]] = &[
    &["service=files", "severity=critical"],
    &["service=files", "severity=warning"],
    &["service=foo1", "severity=critical"],
    &["service=baz"],
    &["service=database", "owner2=team-X", "owner=team-Y"],
    &["service=database", "owner2=team-X"],
    &["service=database"],
    &["alertname=Unknown"],
    &[],
];

#[test]
fn receivers_match_amtool() {
    let cfg = corpus("conf.good.yml");
    let cfg_arg = format!("--config.file={}", cfg.display());
    for labels in LABEL_SETS {
        let mut args = vec!["route", "test", cfg_arg.as_str()];
        args.extend_from_slice(labels);
        let (code, out, err) = day2(&args);
        assert_eq!(code, 0, "{err}");
        let ours = out.lines().next().unwrap_or("").to_string();
        let amtool = Command::new("amtool")
            .args(["config", "routes", "test", &cfg_arg])
            .args(labels.iter())
            .output()
            .expect(
                "amtool (Debian package prometheus-alertmanager) is needed: run scripts/test.sh",
            );
        let theirs = String::from_utf8_lossy(&amtool.stdout).trim().to_string();
        assert_eq!(
            ours, theirs,
            "labels {labels:?}: day2 {ours:?}, amtool {theirs:?}"
        );
    }
}

#[test]
fn verify_receivers_sets_the_exit_code() {
    let cfg = format!("--config.file={}", corpus("conf.good.yml").display());
    let (code, _, _) = day2(&[
        "route",
        "test",
        &cfg,
        "--verify.receivers=team-Y-pager",
        "service=files",
        "severity=critical",
    ]);
    assert_eq!(code, 0);
    let (code, _, err) = day2(&[
        "route",
        "test",
        &cfg,
        "--verify.receivers=team-X-mails",
        "service=files",
        "severity=critical",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("team-Y-pager"), "{err}");
}

#[test]
fn inhibition_and_time_intervals_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("am.yml");
    std::fs::write(
        &cfg,
        r#"
route:
  receiver: pager
  routes:
    - matchers: ['team="web"']
      receiver: web
      mute_time_intervals: [weekends]
receivers:
  - name: pager
  - name: web
inhibit_rules:
  - source_matchers: ['alertname="NodeDown"']
    target_matchers: ['severity="warning"']
    equal: [instance]
time_intervals:
  - name: weekends
    time_intervals:
      - weekdays: ['saturday', 'sunday']
"#,
    )
    .unwrap();
    let cfg_arg = format!("--config.file={}", cfg.display());
    // Saturday 2026-11-28: the web route is muted
    let (code, out, err) = day2(&[
        "route",
        "test",
        &cfg_arg,
        "--at",
        "2026-11-28T12:00:00Z",
        "--firing",
        "alertname=\"NodeDown\",instance=\"a\"",
        "team=web",
        "severity=warning",
        "instance=a",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().next(), Some("web"), "{out}");
    assert!(
        out.contains("muted at 2026-11-28T12:00:00Z by time interval \"weekends\""),
        "{out}"
    );
    assert!(out.contains("inhibited by inhibit_rules[0]"), "{out}");
    // Wednesday, another instance: neither muted nor inhibited
    let (_, out, _) = day2(&[
        "route",
        "test",
        &cfg_arg,
        "--at",
        "2026-11-25T12:00:00Z",
        "--firing",
        "alertname=\"NodeDown\",instance=\"b\"",
        "team=web",
        "severity=warning",
        "instance=a",
    ]);
    assert!(!out.contains("muted"), "{out}");
    assert!(out.contains("not inhibited"), "{out}");
    // a bad config names file and line
    std::fs::write(
        &cfg,
        "route:\n  receiver: nobody\nreceivers:\n  - name: pager\n",
    )
    .unwrap();
    let (code, _, err) = day2(&["route", "test", &cfg_arg, "a=b"]);
    assert_eq!(code, 2);
    assert!(err.contains("am.yml:"), "{err}");
    assert!(err.contains("nobody"), "{err}");
}
