//! The exec executor: timeout kills the whole process group, output is
//! capped, the environment is cleared, a missing program is reported.

mod common;

use common::*;
use day2_remediate::exec::run;
use day2_remediate::{Command, Dur, ExecPolicy, ExitKind};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn cmd(argv: &[&str], timeout: Duration) -> Command {
    Command {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: BTreeMap::new(),
        timeout: Dur(timeout),
        workdir: None,
    }
}

/// Is the process gone (or a zombie waiting for a reaper that is not us)?
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn timeout_kills_the_process_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child.pid");
    let script = testdata().join("spawn_and_hang.sh");
    let t0 = Instant::now();
    let out = run(
        &cmd(
            &[script.to_str().unwrap(), pidfile.to_str().unwrap()],
            Duration::from_millis(700),
        ),
        &ExecPolicy::default(),
    )
    .await;
    let elapsed = t0.elapsed();
    assert_eq!(out.exit, ExitKind::TimedOut, "{out:?}");
    assert!(!out.success());
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert!(
        out.summary(Duration::from_millis(700))
            .starts_with("timed out after 700ms")
    );
    let child: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SIGKILL is delivered at once, but give the kernel a moment to tear down.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !dead(child) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(dead(child), "background child {child} survived the timeout");
}

#[tokio::test(flavor = "current_thread")]
async fn plain_timeout_of_a_sleep() {
    let t0 = Instant::now();
    let out = run(
        &cmd(&["/bin/sleep", "30"], Duration::from_millis(200)),
        &ExecPolicy::default(),
    )
    .await;
    assert_eq!(out.exit, ExitKind::TimedOut);
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "current_thread")]
async fn output_is_capped_but_fully_drained() {
    let policy = ExecPolicy {
        output_cap: 1000,
        ..ExecPolicy::default()
    };
    let out = run(
        &cmd(
            &["/usr/bin/head", "-c", "1000000", "/dev/zero"],
            Duration::from_secs(10),
        ),
        &policy,
    )
    .await;
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout.len(), 1000);
    assert!(out.stdout_truncated && !out.stderr_truncated);
}

#[tokio::test(flavor = "current_thread")]
async fn exit_codes_signals_and_missing_programs() {
    let p = ExecPolicy::default();
    let out = run(&cmd(&["/bin/false"], Duration::from_secs(5)), &p).await;
    assert_eq!(out.exit, ExitKind::Exited { code: 1 });
    let out = run(&cmd(&["/nonexistent/program"], Duration::from_secs(5)), &p).await;
    assert!(matches!(out.exit, ExitKind::SpawnFailed { .. }), "{out:?}");
    // found on the allowlisted PATH
    let out = run(&cmd(&["printf", "%s", "ok"], Duration::from_secs(5)), &p).await;
    assert_eq!(
        (out.exit.clone(), out.stdout.as_str()),
        (ExitKind::Exited { code: 0 }, "ok")
    );
}

#[tokio::test(flavor = "current_thread")]
async fn environment_is_cleared_but_for_the_allowlist_and_declared_env() {
    let mut c = cmd(&["/usr/bin/env"], Duration::from_secs(5));
    c.env.insert("DECLARED".into(), "yes".into());
    let out = run(&c, &ExecPolicy::default()).await;
    let mut names: Vec<&str> = out
        .stdout
        .lines()
        .map(|l| l.split('=').next().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["DECLARED", "PATH"], "{}", out.stdout);
    // the working directory is the policy's (default /)
    let out = run(
        &cmd(&["/bin/pwd"], Duration::from_secs(5)),
        &ExecPolicy::default(),
    )
    .await;
    assert_eq!(out.stdout, "/\n");
}

#[tokio::test(flavor = "current_thread")]
async fn a_step_runs_in_its_workdir_with_its_env_and_a_missing_workdir_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let mut c = cmd(
        &["/bin/sh", "-c", "/bin/pwd > out; /usr/bin/env >> out"],
        Duration::from_secs(5),
    );
    c.workdir = Some(work.clone());
    c.env.insert("STEP_VALUE".into(), "$(id) `id` ;x".into());
    let out = run(&c, &ExecPolicy::default()).await;
    assert!(out.success(), "{out:?}");
    let written = std::fs::read_to_string(work.join("out")).unwrap();
    let mut lines = written.lines();
    assert_eq!(lines.next(), Some(work.to_str().unwrap()));
    assert!(lines.any(|l| l == "STEP_VALUE=$(id) `id` ;x"), "{written}");

    // gone by run time: the step fails naming the directory, nothing runs
    let gone = dir.path().join("gone");
    let mut c = cmd(&["/usr/bin/touch", "ran"], Duration::from_secs(5));
    c.workdir = Some(gone.clone());
    let out = run(&c, &ExecPolicy::default()).await;
    match &out.exit {
        ExitKind::SpawnFailed { error } => assert!(
            error.starts_with(&format!("workdir {}: ", gone.display())),
            "{error}"
        ),
        other => panic!("expected a spawn failure, got {other:?}"),
    }
    let mut c = cmd(&["/bin/true"], Duration::from_secs(5));
    c.workdir = Some(work.join("out"));
    let out = run(&c, &ExecPolicy::default()).await;
    assert!(
        matches!(&out.exit, ExitKind::SpawnFailed { error } if error.ends_with("not a directory")),
        "{out:?}"
    );
}
