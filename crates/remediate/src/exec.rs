//! Running a planned command: `execve` of the argv (never a shell), a cleared
//! environment (only allowlisted names are passed through, plus the step's
//! declared env), stdin from /dev/null, its own process group (killed as a
//! whole on timeout and after the command exits, so no stray children
//! remain), stdout and stderr captured up to a cap.

use crate::plan::{ANSIBLE_PLAYBOOK, Action, Command};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Limits and defaults that come from day2's own configuration, not from runbooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecPolicy {
    /// Names passed through from day2's own environment (default: PATH).
    pub pass_env: Vec<String>,
    /// PATH when day2's own has none.
    pub default_path: String,
    /// Working directory when the step names none.
    pub workdir: PathBuf,
    /// Bytes kept of stdout and of stderr each; the rest is read and dropped.
    pub output_cap: usize,
    /// Replaces `ansible-playbook` as the program of ansible steps.
    pub ansible_playbook: Option<PathBuf>,
}

impl Default for ExecPolicy {
    fn default() -> Self {
        ExecPolicy {
            pass_env: vec!["PATH".into()],
            default_path: "/usr/local/bin:/usr/bin:/bin".into(),
            workdir: PathBuf::from("/"),
            output_cap: 64 * 1024,
            ansible_playbook: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExitKind {
    Exited {
        code: i32,
    },
    Signaled {
        signal: i32,
    },
    /// The timeout passed; the process group was killed.
    TimedOut,
    /// The program could not be started (not found, not executable, ...).
    SpawnFailed {
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutcome {
    pub exit: ExitKind,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub duration_ms: u64,
}

impl ExecOutcome {
    pub fn success(&self) -> bool {
        self.exit == ExitKind::Exited { code: 0 }
    }

    /// A short description for audit events and timelines.
    pub fn summary(&self, timeout: Duration) -> String {
        match &self.exit {
            ExitKind::Exited { code } => format!("exited {code}"),
            ExitKind::Signaled { signal } => format!("killed by signal {signal}"),
            ExitKind::TimedOut => format!(
                "timed out after {} (process group killed)",
                day2_model::format_duration(timeout)
            ),
            ExitKind::SpawnFailed { error } => format!("could not start: {error}"),
        }
    }
}

/// Runs an exec or ansible action. Other executors are not run here.
pub async fn run_action(action: &Action, policy: &ExecPolicy) -> Option<ExecOutcome> {
    match action {
        Action::Exec(c) => Some(run(c, policy).await),
        Action::Ansible(c) => {
            let mut c = c.clone();
            if let (Some(p), Some(first)) = (&policy.ansible_playbook, c.argv.first_mut())
                && first == ANSIBLE_PLAYBOOK
            {
                *first = p.to_string_lossy().into_owned();
            }
            Some(run(&c, policy).await)
        }
        _ => None,
    }
}

async fn read_capped<R: AsyncRead + Unpin>(r: Option<R>, cap: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut truncated = false;
    let Some(mut r) = r else {
        return (kept, false);
    };
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                truncated |= n > room;
            }
        }
    }
    (kept, truncated)
}

fn kill_group(pgid: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals the process group we
        // created for this child (process_group(0) makes its pid the pgid).
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Runs one command to completion or timeout.
pub async fn run(cmd: &Command, policy: &ExecPolicy) -> ExecOutcome {
    let started = Instant::now();
    let fail = |error: String| ExecOutcome {
        exit: ExitKind::SpawnFailed { error },
        stdout: String::new(),
        stderr: String::new(),
        stdout_truncated: false,
        stderr_truncated: false,
        duration_ms: 0,
    };
    let Some((program, args)) = cmd.argv.split_first() else {
        return fail("empty argv".into());
    };
    if cmd.argv.iter().any(|a| a.contains('\0')) {
        return fail("argv contains a NUL byte".into());
    }
    let mut c = tokio::process::Command::new(program);
    c.args(args).env_clear();
    for name in &policy.pass_env {
        match std::env::var_os(name) {
            Some(v) => {
                c.env(name, v);
            }
            None if name == "PATH" => {
                c.env("PATH", &policy.default_path);
            }
            None => {}
        }
    }
    if !policy.pass_env.iter().any(|n| n == "PATH") {
        c.env("PATH", &policy.default_path);
    }
    c.envs(&cmd.env);
    // checked here, at run time, so a missing directory is named as such
    // rather than as spawn's ENOENT, which reads like a missing program
    let workdir = cmd.workdir.as_ref().unwrap_or(&policy.workdir);
    match std::fs::metadata(workdir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return fail(format!("workdir {}: not a directory", workdir.display())),
        Err(e) => return fail(format!("workdir {}: {e}", workdir.display())),
    }
    c.current_dir(workdir);
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match c.spawn() {
        Ok(ch) => ch,
        Err(e) => return fail(format!("{program}: {e}")),
    };
    let pgid = child.id().map(|p| p as i32).unwrap_or(0);
    let cap = policy.output_cap;
    let out = tokio::spawn(read_capped(child.stdout.take(), cap));
    let err = tokio::spawn(read_capped(child.stderr.take(), cap));
    let timeout = cmd.timeout.0;
    let exit = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(code), _) => ExitKind::Exited { code },
                (None, Some(signal)) => ExitKind::Signaled { signal },
                _ => ExitKind::Exited { code: -1 },
            }
        }
        Ok(Err(e)) => ExitKind::SpawnFailed {
            error: format!("wait: {e}"),
        },
        Err(_) => {
            kill_group(pgid);
            let _ = child.wait().await;
            ExitKind::TimedOut
        }
    };
    // Whatever the command left running in its group goes too (it would
    // otherwise hold the output pipes open and outlive the step).
    kill_group(pgid);
    let grace = Duration::from_secs(2);
    let collect = |r: Result<
        Result<(Vec<u8>, bool), tokio::task::JoinError>,
        tokio::time::error::Elapsed,
    >| { r.ok().and_then(Result::ok).unwrap_or_default() };
    let (o, ot) = collect(tokio::time::timeout(grace, out).await);
    let (e, et) = collect(tokio::time::timeout(grace, err).await);
    ExecOutcome {
        exit,
        stdout: String::from_utf8_lossy(&o).into_owned(),
        stderr: String::from_utf8_lossy(&e).into_owned(),
        stdout_truncated: ot,
        stderr_truncated: et,
        duration_ms: started.elapsed().as_millis() as u64,
    }
}
