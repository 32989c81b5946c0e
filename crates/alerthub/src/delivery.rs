//! Sending outbox entries: one HTTP attempt and its classification.
//!
//! 2xx: sent. 5xx, 429 (honouring `Retry-After`), timeouts and connection
//! errors: retried with exponential backoff and jitter. Other 4xx, refused
//! egress (also of a redirect target) and 3xx when redirects are not
//! followed: permanent failure.

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

/// Credentials sent with a notification.
#[derive(Clone, Default)]
pub enum Auth {
    #[default]
    None,
    Basic(String, String),
    /// `Authorization` header value (`Bearer <token>`).
    Header(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::None => "None",
            Auth::Basic(..) => "Basic(<secret>)",
            Auth::Header(_) => "Header(<secret>)",
        })
    }
}

/// Where and how a notification is sent.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub timeout: Duration,
    pub auth: Auth,
    pub follow_redirects: bool,
    /// Top-level JSON string fields set in the body at send time (secrets
    /// such as PagerDuty's routing key, kept out of the outbox).
    pub secret_fields: Vec<(String, String)>,
}

impl Target {
    /// The body with the secret fields filled in.
    pub fn body(&self, payload: &str) -> String {
        if self.secret_fields.is_empty() {
            return payload.to_string();
        }
        match serde_json::from_str::<serde_json::Value>(payload) {
            Ok(mut v) => {
                for (k, val) in &self.secret_fields {
                    v[k.as_str()] = serde_json::Value::String(val.clone());
                }
                v.to_string()
            }
            Err(_) => payload.to_string(),
        }
    }
}

const MAX_REDIRECTS: usize = 10;

/// POSTs a JSON body to the target. Every hop (the URL and each redirect)
/// resolves its host, checks every address against the egress policy and
/// connects only to the checked address. Redirects are followed as Go's
/// client does (307/308 re-POST the body; 301/302/303 become a GET), and
/// credentials are not sent to another host. Returns the outcome and the
/// latency.
pub async fn post_json(
    target: &Target,
    body: String,
    egress: &EgressPolicy,
) -> (Outcome, Duration) {
    let start = Instant::now();
    let out = post_json_inner(target, body, egress).await;
    (out, start.elapsed())
}

async fn post_json_inner(target: &Target, body: String, egress: &EgressPolicy) -> Outcome {
    // reqwest is built without a default TLS provider: install ours once
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut url = match reqwest::Url::parse(&target.url) {
        Ok(u) => u,
        Err(e) => {
            return Outcome::Failed {
                status: None,
                error: format!("invalid URL: {e}"),
            };
        }
    };
    let first_host = url.host_str().map(str::to_string);
    let mut post = true;
    for _hop in 0..=MAX_REDIRECTS {
        let Some(host) = url.host_str().map(str::to_string) else {
            return Outcome::Failed {
                status: None,
                error: "URL has no host".into(),
            };
        };
        let port = url.port_or_known_default().unwrap_or(80);
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
            .timeout(target.timeout)
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
        let mut req = if post {
            client
                .post(url.clone())
                .header("content-type", "application/json")
                .body(body.clone())
        } else {
            client.get(url.clone())
        };
        if first_host.as_deref() == Some(host.as_str()) {
            req = match &target.auth {
                Auth::None => req,
                Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
                Auth::Header(h) => req.header("authorization", h),
            };
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Retry {
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
                };
            }
        };
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        if (300..400).contains(&status) && target.follow_redirects {
            let Some(next) = header("location").and_then(|l| url.join(&l).ok()) else {
                return Outcome::Failed {
                    status: Some(status),
                    error: format!("redirect {status} without a usable Location"),
                };
            };
            if !matches!(status, 307 | 308) {
                post = false;
            }
            url = next;
            continue;
        }
        let ra = header("retry-after");
        let text = resp.text().await.unwrap_or_default();
        return classify(status, ra.as_deref(), &text);
    }
    Outcome::Failed {
        status: None,
        error: format!("stopped after {MAX_REDIRECTS} redirects"),
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
        let t = Target {
            url: "http://169.254.169.254/latest/meta-data".into(),
            timeout: Duration::from_secs(1),
            auth: Auth::None,
            follow_redirects: true,
            secret_fields: Vec::new(),
        };
        let (o, _) = post_json(&t, "{}".into(), &EgressPolicy::default()).await;
        match o {
            Outcome::Failed { error, .. } => assert!(error.contains("link-local"), "{error}"),
            o => panic!("{o:?}"),
        }
    }

    type Reply = (u16, Vec<(&'static str, String)>);

    /// A one-route HTTP server on loopback answering with `f(path)`.
    async fn server(
        f: fn(&str) -> Reply,
    ) -> (String, std::sync::Arc<parking_lot::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut c, _)) = l.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 8192];
                let n = c.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let first = req.lines().next().unwrap_or("").to_string();
                let path = first.split(' ').nth(1).unwrap_or("").to_string();
                let auth = req
                    .lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
                    .map(|l| l.to_string())
                    .unwrap_or_default();
                seen2.lock().push(format!("{first} {auth}"));
                let (code, headers) = f(&path);
                let mut resp =
                    format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n");
                for (k, v) in headers {
                    resp.push_str(&format!("{k}: {v}\r\n"));
                }
                resp.push_str("\r\n");
                let _ = c.write_all(resp.as_bytes()).await;
            }
        });
        (base, seen)
    }

    #[tokio::test]
    async fn redirects_are_rechecked_against_the_allowlist() {
        let (base, seen) = server(|path| match path {
            "/meta" => (307, vec![("location", "http://169.254.169.254/x".into())]),
            "/moved" => (308, vec![("location", "/final".into())]),
            _ => (200, vec![]),
        })
        .await;
        let egress = EgressPolicy::from_list(&["127.0.0.0/8".into()]).unwrap();
        let t = |path: &str| Target {
            url: format!("{base}{path}"),
            timeout: Duration::from_secs(5),
            auth: Auth::Header("Bearer tok".into()),
            follow_redirects: true,
            secret_fields: Vec::new(),
        };
        let (o, _) = post_json(&t("/meta"), "{}".into(), &egress).await;
        match o {
            Outcome::Failed { error, .. } => assert!(error.contains("link-local"), "{error}"),
            o => panic!("{o:?}"),
        }
        let (o, _) = post_json(&t("/moved"), "{}".into(), &egress).await;
        assert_eq!(o, Outcome::Sent { status: 200 });
        let seen = seen.lock().clone();
        assert!(
            seen.iter().any(|l| l.starts_with("POST /final")),
            "{seen:?}"
        );
        assert!(seen.iter().all(|l| l.contains("Bearer tok")), "{seen:?}");
        let mut no_follow = t("/moved");
        no_follow.follow_redirects = false;
        let (o, _) = post_json(&no_follow, "{}".into(), &egress).await;
        assert!(
            matches!(
                o,
                Outcome::Failed {
                    status: Some(308),
                    ..
                }
            ),
            "{o:?}"
        );
    }
}
