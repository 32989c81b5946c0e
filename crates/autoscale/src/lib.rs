//! Autoscaling: metric-driven target tracking with the semantics of
//! Kubernetes' HorizontalPodAutoscaler.
//!
//! Layout:
//! - [`config`]: the `autoscaling:` section of day2.yml.
//! - [`hpa`]: the decision (ratio with tolerance, stabilization windows,
//!   step limits, min/max) as a pure state machine; the time is passed in.
//! - [`scaler`]: the [`scaler::Scaler`] actuator trait, the exec scaler
//!   (argv only, the count as its own argument) and the Kubernetes scaler
//!   (the scale subresource, through the remediation runtime's client).
//! - [`runtime`]: policies evaluated over PromQL, decisions applied and
//!   recorded in the state store (the audit, and the stabilization memory
//!   across restarts).

pub mod config;
pub mod hpa;
pub mod runtime;
pub mod scaler;

pub use config::{AutoscalingSection, PolicyConfig, TargetConfig};
pub use runtime::{Autoscaler, Error};
pub use scaler::{ExecScaler, KubeScaler, KubernetesScalers, Scaler};
