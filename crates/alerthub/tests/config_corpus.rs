//! Loads every file of Alertmanager's config test data
//! (`shared/corpus/alertmanager/config`, see `shared/corpus/SOURCES.md`) and
//! checks that valid files load and invalid ones are refused with an error
//! that says where.
//!
//! File names decide, as SOURCES.md says: `conf.good.yml`,
//! `conf.group-by-all.yml`, `conf.http-config.good.yml`, `*-default-*` and
//! `*-valid-*` load; `*-both-*`, `*-no-*`, `*-invalid` and `conf.nil-*` are
//! refused. Where the name and Alertmanager's own tests disagree, Alertmanager
//! decides (SOURCES.md: "the upstream tests decide validity"), and the
//! exceptions below say why. Any file not covered makes the test fail, so a
//! new corpus file gets a decision.

use day2_alerthub::config::load_str;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Load,
    Refuse,
}

/// Files decided by Alertmanager's documented rules and tests rather than by
/// their name pattern: (file, expectation, reason, substring of the error).
const EXCEPTIONS: &[(&str, Expect, &str, &str)] = &[
    (
        "conf.empty-fields.yml",
        Expect::Load,
        "empty strings (smtp_auth_username: '', smtp_hello: '') are values, not errors",
        "",
    ),
    (
        "conf.smtp-no-username-or-password.yml",
        Expect::Load,
        "SMTP auth is optional (\"if empty, Alertmanager doesn't authenticate\"); upstream's test loads it",
        "",
    ),
    (
        "conf.smtp-password-global-and-local.yml",
        Expect::Load,
        "local auth settings override the global ones",
        "",
    ),
    (
        "conf.sns-topic-arn.yml",
        Expect::Load,
        "topic_arn is one of the three accepted SNS targets",
        "",
    ),
    (
        "conf.slack-update-message-and-webhook.yml",
        Expect::Refuse,
        "update_message needs a bot token (chat.postMessage), not an incoming webhook",
        "update_message",
    ),
    (
        "conf.opsgenie-default-apikey-old-team.yml",
        Expect::Refuse,
        "`teams` is no longer an opsgenie_config field (upstream refuses: unknown field)",
        "unknown field `teams`",
    ),
    (
        "conf.mattermost-valid-receiver-both-webhook-url-and-file.yml",
        Expect::Refuse,
        "global mattermost_webhook_url and _file both set: refused even though the receiver overrides (upstream test)",
        "at most one of mattermost_webhook_url & mattermost_webhook_url_file",
    ),
    (
        "conf.telegram-valid-receiver-both-bot-token-and-file.yml",
        Expect::Refuse,
        "global telegram_bot_token and _file both set: refused even though the receiver overrides (upstream test)",
        "at most one of telegram_bot_token & telegram_bot_token_file",
    ),
];

fn expectation(name: &str) -> (Expect, String, &'static str) {
    if let Some((_, e, why, needle)) = EXCEPTIONS.iter().find(|(n, ..)| *n == name) {
        return (*e, format!("exception: {why}"), needle);
    }
    let by_name = [
        ("conf.good.yml", Expect::Load),
        ("conf.group-by-all.yml", Expect::Load),
        ("conf.http-config.good.yml", Expect::Load),
    ];
    if let Some((_, e)) = by_name.iter().find(|(n, _)| *n == name) {
        return (*e, "known good file".into(), "");
    }
    let stem = name.trim_end_matches(".yml");
    let rules: [(&str, bool, Expect); 6] = [
        ("-both-", false, Expect::Refuse),
        ("-no-", false, Expect::Refuse),
        ("-invalid", true, Expect::Refuse),
        ("conf.nil-", false, Expect::Refuse),
        ("-default-", false, Expect::Load),
        ("-valid-", false, Expect::Load),
    ];
    for (pat, suffix, e) in rules {
        let hit = if suffix {
            stem.ends_with(pat)
        } else {
            stem.contains(pat)
        };
        if hit {
            return (e, format!("name contains {pat:?}"), "");
        }
    }
    panic!("{name}: no rule decides this corpus file; add it to EXCEPTIONS with a reason");
}

#[test]
fn alertmanager_config_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/alertmanager/config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 40,
        "corpus looks incomplete: {} files",
        files.len()
    );

    let (mut loaded, mut refused, mut wrong) = (0, 0, Vec::new());
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        let (want, why, needle) = expectation(&name);
        let got = load_str(&text);
        let status = match (&got, want) {
            (Ok(_), Expect::Load) => {
                loaded += 1;
                "ok: loads".to_string()
            }
            (Err(e), Expect::Refuse) => {
                refused += 1;
                let rendered = e.render(&name);
                if !needle.is_empty() && !rendered.contains(needle) {
                    wrong.push(format!("{name}: refused for another reason: {rendered}"));
                }
                // every refusal says where: a line or at least a field path
                if e.line.is_none() && e.field.is_empty() {
                    wrong.push(format!("{name}: error without location: {rendered}"));
                }
                format!("ok: refused: {rendered}")
            }
            (Ok(_), Expect::Refuse) => {
                wrong.push(format!("{name}: loaded but should be refused ({why})"));
                "WRONG: loaded".into()
            }
            (Err(e), Expect::Load) => {
                let rendered = e.render(&name);
                wrong.push(format!(
                    "{name}: refused but should load ({why}): {rendered}"
                ));
                format!("WRONG: refused: {rendered}")
            }
        };
        println!("{name:<64} [{why}] {status}");
    }
    println!(
        "{} files: {loaded} load, {refused} refused as expected, {} wrong",
        files.len(),
        wrong.len()
    );
    assert!(wrong.is_empty(), "corpus mismatches:\n{}", wrong.join("\n"));
}

/// The nil-regex files must name the offending label (upstream checks the same).
#[test]
fn nil_regex_errors_name_the_label() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/alertmanager/config");
    for (file, label) in [
        ("conf.nil-match_re-route.yml", "invalid_label"),
        (
            "conf.nil-source_match_re-inhibition.yml",
            "invalid_source_label",
        ),
        (
            "conf.nil-target_match_re-inhibition.yml",
            "invalid_target_label",
        ),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let e = load_str(&text).expect_err(file);
        let r = e.render(file);
        assert!(r.contains(label), "{r}");
        assert!(e.line.is_some(), "{r}");
    }
}

/// Global defaults reach the receivers that do not set their own.
#[test]
fn global_defaults_are_applied() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/alertmanager/config");
    let read = |f: &str| load_str(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap();

    let c = read("conf.victorops-default-apikey.yml");
    let r = &c.config.receivers;
    assert_eq!(
        r[0].victorops_configs[0].api_key.as_ref().unwrap().expose(),
        "asd132"
    );
    assert_eq!(
        r[1].victorops_configs[0].api_key.as_ref().unwrap().expose(),
        "qwe456"
    );

    let c = read("conf.slack-default-api-url-file.yml");
    let s = &c.config.receivers[0].slack_configs;
    assert_eq!(s[0].api_url_file.as_deref(), Some("/global_file"));
    assert_eq!(s[1].api_url_file.as_deref(), Some("/override_file"));
    assert!(s[2].api_url.is_some() && s[2].api_url_file.is_none());

    let c = read("conf.smtp-password-global-and-local.yml");
    let e = &c.config.receivers[0].email_configs;
    assert_eq!(
        e[0].auth_password_file.as_deref(),
        Some("/tmp/globaluserpassword")
    );
    assert!(e[0].auth_password.is_none());
    assert_eq!(
        e[1].auth_password_file.as_deref(),
        Some("/tmp/localuser1password")
    );
    assert_eq!(e[2].auth_password.as_ref().unwrap().expose(), "mysecret");
    assert!(e[2].auth_password_file.is_none());
    assert_eq!(e[3].auth_secret.as_ref().unwrap().expose(), "myprecious");
    assert_eq!(
        e[4].auth_secret_file.as_deref(),
        Some("/tmp/localuser4secret")
    );

    let c = read("conf.http-config.good.yml");
    assert!(
        !c.config
            .global
            .http_config
            .as_ref()
            .unwrap()
            .follow_redirects
    );
    let own = c.config.receivers[0].slack_configs[0]
        .http_config
        .as_ref()
        .unwrap();
    assert!(
        own.follow_redirects,
        "a receiver's own http_config does not inherit"
    );

    let c = read("conf.group-by-all.yml");
    assert_eq!(c.route.opts.group_by, day2_alerthub::GroupBy::All);

    let c = read("conf.good.yml");
    assert_eq!(c.config.templates, ["/etc/alertmanager/template/*.tmpl"]);
    assert_eq!(c.inhibitor.rules().len(), 1);
    assert_eq!(c.route.walk().len(), 8);
}

/// Routing of conf.good.yml agrees with Alertmanager: the expected receivers
/// were recorded from `amtool config routes test --config.file=conf.good.yml`
/// (Debian's prometheus-alertmanager 0.25.0).
#[test]
fn conf_good_routes_like_amtool() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/alertmanager/config");
    let c = load_str(&std::fs::read_to_string(dir.join("conf.good.yml")).unwrap()).unwrap();
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case] = &[
        (
            &[("service", "database"), ("owner2", "team-X")],
            &["team-X-pager"],
        ),
        (
            &[
                ("service", "database"),
                ("owner2", "team-X"),
                ("owner", "team-Y"),
            ],
            &["team-X-pager", "team-Y-pager"],
        ),
        (
            &[("service", "database"), ("owner", "team-Y")],
            &["team-Y-pager"],
        ),
        (
            &[("service", "foo1"), ("severity", "critical")],
            &["team-X-pager"],
        ),
        (&[("service", "foo1")], &["team-X-mails"]),
        (
            &[("service", "files"), ("severity", "critical")],
            &["team-Y-pager"],
        ),
        (&[("service", "files")], &["team-Y-mails"]),
        (&[("service", "other")], &["team-X-mails"]),
        (
            &[("service", "baz"), ("severity", "warning")],
            &["team-X-mails"],
        ),
    ];
    for (labels, want) in cases {
        let l = day2_model::Labels::from_pairs(labels.iter().copied());
        let got: Vec<&str> = c
            .routes_for(&l)
            .iter()
            .map(|r| r.opts.receiver.as_str())
            .collect();
        assert_eq!(&got, want, "labels {labels:?}");
    }
}
