//! Sending outbox entries: one HTTP attempt and its classification.
//!
//! 2xx: sent. 5xx, 429 (honouring `Retry-After`), timeouts and connection
//! errors: retried with exponential backoff and jitter. Other 4xx, 3xx (we do
//! not follow redirects) and refused egress: permanent failure.

use crate::egress::EgressPolicy;
use std::time::{Duration, Instant};

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent {
        status: u16,
    },
    Retry {
        status: Option<u16>,
        error: String,
        after: Option<Duration>,
    },
    Failed {
        status: Option<u16>,
        error: String,
    },
}

/// Retry timing.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
    /// Give up (permanent failure) after this long since the entry was created.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(500),
            max: Duration::from_secs(300),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// Backoff before retry number `attempt` (0-based): `base * 2^attempt`,
    /// capped at `max`, then scaled by a jitter factor in [0.75, 1.25).
    pub fn backoff(&self, attempt: u32, jitter01: f64) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX));
        let capped = exp.min(self.max);
        capped.mul_f64(0.75 + 0.5 * jitter01.clamp(0.0, 1.0))
    }
}

/// A random number in [0, 1) (from the OS random source via uuid v4).
pub fn jitter() -> f64 {
    let b = uuid::Uuid::new_v4().as_u128();
    (b >> 75) as f64 / (1u64 << 53) as f64
}

/// `Retry-After` in seconds (HTTP dates are not honoured; the backoff applies).
pub fn retry_after(v: Option<&str>) -> Option<Duration> {
    v.and_then(|s| s.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(3600)))
}

/// Classifies an HTTP status.
pub fn classify(status: u16, retry_after_hdr: Option<&str>, body: &str) -> Outcome {
    let snippet: String = body.chars().take(200).collect();
    match status {
        200..=299 => Outcome::Sent { status },
        429 => Outcome::Retry {
            status: Some(status),
            error: format!("429 Too Many Requests: {snippet}"),
            after: retry_after(retry_after_hdr),
        },
        500..=599 => Outcome::Retry {
            status: Some(status),
            error: format!("server error {status}: {snippet}"),
            after: retry_after(retry_after_hdr),
        },
        300..=399 => Outcome::Failed {
            status: Some(status),
            error: format!("redirect {status} not followed"),
        },
        _ => Outcome::Failed {
            status: Some(status),
            error: format!("client error {status}: {snippet}"),
        },
    }
}

/// POSTs a JSON body to `url`, resolving and checking the host against the
/// egress policy first and connecting only to the checked address.
/// Returns the outcome and the latency.
pub async fn post_json(
    url: &str,
    body: String,
    timeout: Duration,
    egress: &EgressPolicy,
) -> (Outcome, Duration) {
    let start = Instant::now();
    let out = post_json_inner(url, body, timeout, egress).await;
    (out, start.elapsed())
}

async fn post_json_inner(
    url: &str,
    body: String,
    timeout: Duration,
    egress: &EgressPolicy,
) -> Outcome {
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) => u,
        Err(e) => {
            return Outcome::Failed {
                status: None,
                error: format!("invalid URL: {e}"),
            };
        }
    };
    let Some(host) = parsed.host_str().map(str::to_string) else {
        return Outcome::Failed {
            status: None,
            error: "URL has no host".into(),
        };
    };
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addr = match egress.resolve(&host, port).await {
        Ok(a) => a,
        Err(e) if e.starts_with("resolving") => {
            return Outcome::Retry {
                status: None,
                error: e,
                after: None,
            };
        }
        Err(e) => {
            return Outcome::Failed {
                status: None,
                error: e,
            };
        }
    };
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .user_agent(concat!("day2/", env!("CARGO_PKG_VERSION")));
    if host.parse::<std::net::IpAddr>().is_err() && !host.starts_with('[') {
        b = b.resolve(&host, addr);
    }
    let client = match b.build() {
        Ok(c) => c,
        Err(e) => {
            return Outcome::Failed {
                status: None,
                error: format!("building HTTP client: {e}"),
            };
        }
    };
    match client
        .post(parsed)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let ra = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let text = resp.text().await.unwrap_or_default();
            classify(status, ra.as_deref(), &text)
        }
        Err(e) => Outcome::Retry {
            status: None,
            // reqwest errors carry the URL, which may hold a token: strip it
            error: if e.is_timeout() {
                "timeout".to_string()
            } else if e.is_connect() {
                "connection failed".to_string()
            } else {
                e.without_url().to_string()
            },
            after: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(classify(200, None, ""), Outcome::Sent { status: 200 });
        assert_eq!(classify(204, None, ""), Outcome::Sent { status: 204 });
        assert!(matches!(classify(500, None, ""), Outcome::Retry { .. }));
        assert!(matches!(classify(503, None, ""), Outcome::Retry { .. }));
        match classify(429, Some("7"), "") {
            Outcome::Retry { after, .. } => assert_eq!(after, Some(Duration::from_secs(7))),
            o => panic!("{o:?}"),
        }
        assert!(matches!(classify(400, None, ""), Outcome::Failed { .. }));
        assert!(matches!(classify(404, None, ""), Outcome::Failed { .. }));
        assert!(matches!(classify(302, None, ""), Outcome::Failed { .. }));
    }

    #[test]
    fn backoff_grows_with_jitter_and_cap() {
        let p = RetryPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            give_up_after: Duration::from_secs(3600),
        };
        assert_eq!(p.backoff(0, 0.5), Duration::from_secs(1));
        assert_eq!(p.backoff(3, 0.5), Duration::from_secs(8));
        assert_eq!(p.backoff(20, 0.5), Duration::from_secs(60));
        assert_eq!(p.backoff(0, 0.0), Duration::from_millis(750));
        assert!(p.backoff(0, 0.999) < Duration::from_millis(1250));
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }

    #[tokio::test]
    async fn refused_egress_is_permanent() {
        let (o, _) = post_json(
            "http://169.254.169.254/latest/meta-data",
            "{}".into(),
            Duration::from_secs(1),
            &EgressPolicy::default(),
        )
        .await;
        match o {
            Outcome::Failed { error, .. } => assert!(error.contains("link-local"), "{error}"),
            o => panic!("{o:?}"),
        }
    }
}
