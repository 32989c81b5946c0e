//! The `http` executor: one request per step, to a host the egress
//! allowlist admits (the alert hub's [`EgressPolicy`]: the host is resolved
//! by day2, every address checked, and the connection pinned to the checked
//! address). Redirects are not followed. Header values that are `env:NAME` /
//! `file:/path` references are resolved only here, never stored or logged.

use crate::plan::HttpRequest;
use crate::run::StepReport;
use day2_alerthub::EgressPolicy;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Bytes of a response body kept for the run record.
pub const DEFAULT_BODY_CAP: usize = 16 * 1024;

#[derive(Debug, Clone, Default)]
pub struct HttpExecutor {
    /// Restricted ranges (loopback, private, link-local) steps may reach.
    pub egress: EgressPolicy,
    /// Bytes of the response body kept (0: [`DEFAULT_BODY_CAP`]).
    pub body_cap: usize,
}

/// What the server answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpOutcome {
    pub status: u16,
    pub body: String,
    #[serde(default)]
    pub body_truncated: bool,
    pub duration_ms: u64,
}

/// Resolves an `env:NAME` or `file:/path` reference; literal values pass through.
/// Errors name the reference, never a value.
pub fn resolve_secret(v: &str) -> Result<String, String> {
    if let Some(name) = v.strip_prefix("env:") {
        std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))
    } else if let Some(path) = v.strip_prefix("file:") {
        std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|e| format!("cannot read {path}: {e}"))
    } else {
        Ok(v.to_string())
    }
}

fn success(req: &HttpRequest, status: u16) -> bool {
    if req.expect_status.is_empty() {
        (200..300).contains(&status)
    } else {
        req.expect_status.contains(&status)
    }
}

impl HttpExecutor {
    pub async fn execute(&self, req: &HttpRequest) -> StepReport {
        match self.send(req).await {
            Ok(o) => {
                let ok = success(req, o.status);
                let outcome = if ok {
                    format!("HTTP {}", o.status)
                } else {
                    let expected = if req.expect_status.is_empty() {
                        "2xx".to_string()
                    } else {
                        format!("{:?}", req.expect_status)
                    };
                    let snippet: String = o.body.chars().take(200).collect();
                    format!("HTTP {} (expected {expected}): {snippet}", o.status)
                };
                StepReport {
                    ok,
                    outcome,
                    exec: None,
                    http: Some(o),
                }
            }
            Err(e) => StepReport::failed(e),
        }
    }

    async fn send(&self, req: &HttpRequest) -> Result<HttpOutcome, String> {
        // reqwest is built without a default TLS provider: install ours once
        let _ = rustls::crypto::ring::default_provider().install_default();
        let started = Instant::now();
        let url = reqwest::Url::parse(&req.url).map_err(|e| format!("invalid URL: {e}"))?;
        let host = url.host_str().ok_or("URL has no host")?.to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = self
            .egress
            .resolve(&host, port)
            .await
            .map_err(|e| e.replace("alertmanager.egress.allow", "remediation.egress.allow"))?;
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(req.timeout.0)
            .user_agent(concat!("day2/", env!("CARGO_PKG_VERSION")));
        if host.parse::<std::net::IpAddr>().is_err() && !host.starts_with('[') {
            b = b.resolve(&host, addr);
        }
        let client = b
            .build()
            .map_err(|e| format!("building HTTP client: {e}"))?;
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| format!("invalid method {:?}", req.method))?;
        let mut r = client.request(method, url);
        let mut has_content_type = false;
        for (k, v) in &req.headers {
            let value = resolve_secret(v).map_err(|e| format!("header {k}: {e}"))?;
            has_content_type |= k.eq_ignore_ascii_case("content-type");
            r = r.header(k.as_str(), value);
        }
        if let Some(body) = &req.body {
            if !has_content_type {
                r = r.header("content-type", "application/json");
            }
            r = r.body(body.clone());
        }
        let mut resp = r.send().await.map_err(|e| {
            if e.is_timeout() {
                format!("timed out after {}", req.timeout)
            } else if e.is_connect() {
                format!("connection to {addr} failed")
            } else if e.is_builder() {
                // e.g. a header value that is not valid: do not echo it
                "invalid request (a header name or value is not valid)".to_string()
            } else {
                e.without_url().to_string()
            }
        })?;
        let status = resp.status().as_u16();
        let cap = if self.body_cap == 0 {
            DEFAULT_BODY_CAP
        } else {
            self.body_cap
        };
        let mut body = Vec::new();
        let mut truncated = false;
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    let room = cap.saturating_sub(body.len());
                    body.extend_from_slice(&c[..c.len().min(room)]);
                    if c.len() > room {
                        truncated = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => {
                    return Err(format!("timed out after {} reading the body", req.timeout));
                }
                Err(_) => break,
            }
        }
        Ok(HttpOutcome {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            body_truncated: truncated,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }
}
