//! Actuators: what reads and sets a target's replica count.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use day2_remediate::{Command, Dur, ExecPolicy};
use parking_lot::Mutex;

use crate::config::{REPLICAS, TargetConfig};

/// Reads and sets the replica count of a target. Called on a blocking
/// thread (may block, e.g. on a command or an API call).
pub trait Scaler: Send + Sync {
    /// The replica count now.
    fn current(&self) -> Result<u32, String>;
    /// Sets the replica count.
    fn set(&self, replicas: u32) -> Result<(), String>;
    /// What it scales, for the API and logs.
    fn describe(&self) -> String;
}

/// Makes a policy's scaler (an error is reported by its evaluations).
pub type MakeScaler<'a> = dyn Fn(&crate::PolicyConfig) -> Result<Arc<dyn Scaler>, String> + 'a;

/// Makes the scaler of a `kubernetes` target. The Kubernetes executor lives
/// in the remediation runtime; the binary plugs it in here.
pub type KubernetesScalers =
    Arc<dyn Fn(Option<&str>, &str) -> Result<Arc<dyn Scaler>, String> + Send + Sync>;

/// A scaler running commands by argv (execve, never a shell, cleared
/// environment; see `day2_remediate::exec`): `set` with the count as its own
/// argv element, `get` printing the current count. Without `get` the
/// current count is the last one set (or the initial one given).
pub struct ExecScaler {
    set: Vec<String>,
    get: Vec<String>,
    timeout: Duration,
    env: BTreeMap<String, String>,
    policy: ExecPolicy,
    runtime: tokio::runtime::Handle,
    last: Mutex<u32>,
}

impl ExecScaler {
    /// From an `exec` target; `initial` is the count assumed without `get`
    /// until one is set. `runtime` runs the commands.
    pub fn new(
        target: &TargetConfig,
        initial: u32,
        runtime: tokio::runtime::Handle,
    ) -> Option<ExecScaler> {
        let TargetConfig::Exec {
            set,
            get,
            timeout,
            env,
        } = target
        else {
            return None;
        };
        Some(ExecScaler {
            set: set.clone(),
            get: get.clone(),
            timeout: timeout.map_or(Duration::from_secs(30), |d| d.0),
            env: env.clone(),
            policy: ExecPolicy::default(),
            runtime,
            last: Mutex::new(initial),
        })
    }

    fn run(&self, argv: Vec<String>) -> Result<String, String> {
        let cmd = Command {
            argv,
            env: self.env.clone(),
            timeout: Dur(self.timeout),
            workdir: None,
        };
        let out = self
            .runtime
            .block_on(day2_remediate::exec::run(&cmd, &self.policy));
        if out.success() {
            Ok(out.stdout)
        } else {
            let stderr = out.stderr.trim();
            let tail: String = stderr
                .char_indices()
                .rev()
                .nth(300)
                .map_or(stderr, |(i, _)| &stderr[i..])
                .to_string();
            Err(format!(
                "{}: {}{}",
                cmd.argv[0],
                out.summary(self.timeout),
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(": {tail}")
                }
            ))
        }
    }
}

impl Scaler for ExecScaler {
    fn current(&self) -> Result<u32, String> {
        if self.get.is_empty() {
            return Ok(*self.last.lock());
        }
        let out = self.run(self.get.clone())?;
        out.trim().parse::<u32>().map_err(|_| {
            let shown: String = out.trim().chars().take(80).collect();
            format!("{}: printed {shown:?}, not a replica count", self.get[0])
        })
    }

    fn set(&self, replicas: u32) -> Result<(), String> {
        let argv = self
            .set
            .iter()
            .map(|a| {
                if a == REPLICAS {
                    replicas.to_string()
                } else {
                    a.clone()
                }
            })
            .collect();
        self.run(argv)?;
        *self.last.lock() = replicas;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("exec {}", self.set.first().map_or("", String::as_str))
    }
}
