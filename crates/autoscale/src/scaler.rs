//! Actuators: what reads and sets a target's replica count.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use day2_remediate::kubernetes::{KubeExecutor, ScaleKind};
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

/// Makes the scaler of a `kubernetes` target from its namespace and
/// `kind/name` (a [`KubeScaler`] over the remediation runtime's Kubernetes
/// client, which the binary plugs in).
pub type KubernetesScalers =
    Arc<dyn Fn(Option<&str>, &str) -> Result<Arc<dyn Scaler>, String> + Send + Sync>;

/// A workload's scale subresource through the remediation runtime's
/// Kubernetes client (its connection settings and egress allowlist):
/// `current` reads `spec.replicas`, `set` patches it as `kubectl scale`.
pub struct KubeScaler {
    client: KubeExecutor,
    kind: ScaleKind,
    /// `None`: the kubeconfig context's (or the pod's) namespace.
    namespace: Option<String>,
    name: String,
    runtime: tokio::runtime::Handle,
}

impl KubeScaler {
    /// For `resource` written `kind/name` (e.g. `deployment/api`);
    /// `runtime` runs the requests.
    pub fn new(
        client: KubeExecutor,
        namespace: Option<&str>,
        resource: &str,
        runtime: tokio::runtime::Handle,
    ) -> Result<KubeScaler, String> {
        let (kind, name) = parse_resource(resource)?;
        Ok(KubeScaler {
            client,
            kind,
            namespace: namespace.map(String::from),
            name: name.to_string(),
            runtime,
        })
    }
}

/// `kind/name` of a workload with a scale subresource.
pub fn parse_resource(resource: &str) -> Result<(ScaleKind, &str), String> {
    let (kind, name) = resource
        .split_once('/')
        .filter(|(k, n)| !k.is_empty() && !n.is_empty() && !n.contains('/'))
        .ok_or("write kind/name, e.g. deployment/api")?;
    let kind = ScaleKind::parse(kind).ok_or_else(|| {
        format!("{kind:?}: day2 scales deployments, statefulsets and replicasets")
    })?;
    Ok((kind, name))
}

impl Scaler for KubeScaler {
    fn current(&self) -> Result<u32, String> {
        self.runtime.block_on(self.client.replicas(
            self.kind,
            self.namespace.as_deref(),
            &self.name,
        ))
    }

    fn set(&self, replicas: u32) -> Result<(), String> {
        self.runtime.block_on(self.client.set_replicas(
            self.kind,
            self.namespace.as_deref(),
            &self.name,
            replicas,
        ))
    }

    fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("kubernetes {}/{} in {ns}", self.kind.as_str(), self.name),
            None => format!("kubernetes {}/{}", self.kind.as_str(), self.name),
        }
    }
}

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
