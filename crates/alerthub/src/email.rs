//! Email notifications over SMTP (`email_configs`), sent with `lettre`.
//!
//! The outbox holds the rendered message ([`EmailPayload`]: headers, HTML
//! and text bodies, envelope addresses) and no secrets; the smarthost, TLS
//! settings and credentials are read from the config at send time
//! ([`EmailTarget::from_config`]).
//!
//! One attempt: the smarthost is resolved and checked against the egress
//! allowlist, the connection goes to the checked address; implicit TLS on
//! port 465 (or `force_implicit_tls`), otherwise STARTTLS when the server
//! offers it (required when `require_tls`); AUTH when `auth_username` is set
//! and the server offers it (never over an unencrypted connection to a
//! non-loopback host).
//!
//! Classification: a 2xx reply to the message is sent; 4xx replies,
//! connection errors, TLS errors and timeouts are retried; 5xx replies and
//! client-side problems (bad addresses, STARTTLS required but not offered,
//! no usable AUTH mechanism) are permanent failures.

use crate::config::EmailConfig;
use crate::delivery::Outcome;
use crate::egress::EgressPolicy;
use lettre::message::header::{self, HeaderName, HeaderValue};
use lettre::message::{Mailboxes, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, Certificate, Identity, TlsParameters, TlsParametersBuilder,
};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, Message};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Errors preparing an email (all permanent: the config or the rendered
/// message is wrong, retrying cannot help).
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("invalid email payload in the outbox: {0}")]
    Payload(String),
    #[error("invalid address in {field}: {message}")]
    Address { field: String, message: String },
    #[error("invalid header name {0:?}")]
    HeaderName(String),
    #[error("building the message: {0}")]
    Build(String),
    #[error("invalid smarthost port {0:?}")]
    Port(String),
    #[error("reading {what}: {message}")]
    SecretFile { what: &'static str, message: String },
    #[error("tls_config: {0}")]
    Tls(String),
    #[error("{0}")]
    Unsupported(String),
}

/// The rendered email, as stored in the outbox (no secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailPayload {
    /// Envelope sender (the rendered `from`).
    pub from: String,
    /// Envelope recipients (the rendered `to`, a comma-separated list).
    pub to: String,
    /// Message headers (To, From, Subject and the configured ones), rendered.
    pub headers: BTreeMap<String, String>,
    pub html: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// Header values are one line: CR and LF (header injection) become spaces.
pub fn header_line(v: &str) -> String {
    v.trim()
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

fn mailboxes(field: &str, v: &str) -> Result<Mailboxes, EmailError> {
    v.parse::<Mailboxes>().map_err(|e| EmailError::Address {
        field: field.to_string(),
        message: e.to_string(),
    })
}

impl EmailPayload {
    /// The MIME message and its envelope. `Date` and `Message-ID` are added
    /// when the headers do not set them.
    pub fn message(&self) -> Result<Message, EmailError> {
        let from = mailboxes("from", &self.from)?;
        let to = mailboxes("to", &self.to)?;
        let sender: Option<Address> = from.iter().next().map(|m| m.email.clone());
        let rcpts: Vec<Address> = to.iter().map(|m| m.email.clone()).collect();
        let envelope = lettre::address::Envelope::new(sender, rcpts)
            .map_err(|e| EmailError::Build(e.to_string()))?;
        let mut b = Message::builder().envelope(envelope);
        let mut has_from = false;
        for (k, v) in &self.headers {
            let v = header_line(v);
            match k.to_ascii_lowercase().as_str() {
                "from" => {
                    has_from = true;
                    b = b.header(header::From::from(mailboxes("From header", &v)?));
                }
                "to" => b = b.header(header::To::from(mailboxes("To header", &v)?)),
                "cc" => b = b.header(header::Cc::from(mailboxes("Cc header", &v)?)),
                "reply-to" => {
                    b = b.header(header::ReplyTo::from(mailboxes("Reply-To header", &v)?))
                }
                "subject" => b = b.subject(v),
                _ => {
                    let name = HeaderName::new_from_ascii(k.clone())
                        .map_err(|_| EmailError::HeaderName(k.clone()))?;
                    b = b.raw_header(HeaderValue::new(name, v));
                }
            }
        }
        if !has_from {
            b = b.header(header::From::from(from));
        }
        let text = self.text.as_deref().filter(|t| !t.is_empty());
        let msg = match (self.html.is_empty(), text) {
            (false, Some(t)) => b.multipart(MultiPart::alternative_plain_html(
                t.to_string(),
                self.html.clone(),
            )),
            (false, None) => b.singlepart(SinglePart::html(self.html.clone())),
            (true, t) => b.singlepart(SinglePart::plain(t.unwrap_or_default().to_string())),
        };
        msg.map_err(|e| EmailError::Build(e.to_string()))
    }
}

/// Where and how an email is sent, from the current config. Holds the
/// credentials (read at send time); its `Debug` output does not.
#[derive(Clone)]
pub struct EmailTarget {
    pub host: String,
    pub port: u16,
    pub hello: String,
    pub require_tls: bool,
    pub implicit_tls: bool,
    /// Name checked in the server certificate (`tls_config.server_name` or the host).
    pub tls_server_name: String,
    pub insecure_skip_verify: bool,
    pub ca_pem: Option<Vec<u8>>,
    pub client_cert: Option<(Vec<u8>, Vec<u8>)>,
    pub credentials: Option<(String, String)>,
    pub timeout: Duration,
}

impl std::fmt::Debug for EmailTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("hello", &self.hello)
            .field("require_tls", &self.require_tls)
            .field("implicit_tls", &self.implicit_tls)
            .field("tls_server_name", &self.tls_server_name)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(u, _)| (u, "<secret>")),
            )
            .finish_non_exhaustive()
    }
}

fn read_file(path: &str, what: &'static str) -> Result<Vec<u8>, EmailError> {
    std::fs::read(path).map_err(|e| EmailError::SecretFile {
        what,
        message: e.to_string(),
    })
}

fn port_of(p: &str) -> Result<u16, EmailError> {
    match p {
        "smtp" => Ok(25),
        "submission" => Ok(587),
        "smtps" | "submissions" => Ok(465),
        _ => p.parse().map_err(|_| EmailError::Port(p.to_string())),
    }
}

impl EmailTarget {
    /// The target of an `email_configs` entry (global defaults were applied
    /// by the config loader).
    pub fn from_config(c: &EmailConfig) -> Result<EmailTarget, EmailError> {
        let hp = c
            .smarthost
            .as_ref()
            .ok_or_else(|| EmailError::Unsupported("no smarthost configured".into()))?;
        let port = port_of(&hp.port)?;
        let password = match (&c.auth_password, &c.auth_password_file) {
            (Some(p), _) => Some(p.expose().to_string()),
            (None, Some(f)) => Some(
                String::from_utf8_lossy(&read_file(f, "auth_password_file")?)
                    .trim()
                    .to_string(),
            ),
            _ => None,
        };
        let credentials = match c.auth_username.as_deref().filter(|u| !u.is_empty()) {
            Some(u) => match password {
                Some(p) => Some((u.to_string(), p)),
                None if c.auth_secret.is_some() || c.auth_secret_file.is_some() => {
                    return Err(EmailError::Unsupported(
                        "CRAM-MD5 authentication (auth_secret) is not supported; use auth_password"
                            .into(),
                    ));
                }
                None => Some((u.to_string(), String::new())),
            },
            None => None,
        };
        let tls = c.tls_config.clone().unwrap_or_default();
        let ca_pem = match (&tls.ca, &tls.ca_file) {
            (Some(s), _) => Some(s.clone().into_bytes()),
            (None, Some(f)) => Some(read_file(f, "tls_config.ca_file")?),
            _ => None,
        };
        let cert = match (&tls.cert, &tls.cert_file) {
            (Some(s), _) => Some(s.clone().into_bytes()),
            (None, Some(f)) => Some(read_file(f, "tls_config.cert_file")?),
            _ => None,
        };
        let key = match (&tls.key, &tls.key_file) {
            (Some(s), _) => Some(s.expose().as_bytes().to_vec()),
            (None, Some(f)) => Some(read_file(f, "tls_config.key_file")?),
            _ => None,
        };
        let host = hp.host.trim_start_matches('[').trim_end_matches(']');
        Ok(EmailTarget {
            host: host.to_string(),
            port,
            hello: c
                .hello
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into()),
            require_tls: c.require_tls.unwrap_or(true),
            implicit_tls: c.force_implicit_tls.unwrap_or(port == 465),
            tls_server_name: tls
                .server_name
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| host.to_string()),
            insecure_skip_verify: tls.insecure_skip_verify,
            ca_pem,
            client_cert: cert.zip(key),
            credentials,
            timeout: Duration::from_secs(30),
        })
    }

    fn tls_parameters(&self) -> Result<TlsParameters, EmailError> {
        let t = |e: lettre::transport::smtp::Error| EmailError::Tls(e.to_string());
        let mut b = TlsParametersBuilder::new(self.tls_server_name.clone())
            .dangerous_accept_invalid_certs(self.insecure_skip_verify);
        if let Some(pem) = &self.ca_pem {
            b = b.add_root_certificate(Certificate::from_pem(pem).map_err(t)?);
        }
        if let Some((cert, key)) = &self.client_cert {
            b = b.identify_with(Identity::from_pem(cert, key).map_err(t)?);
        }
        b.build_rustls().map_err(t)
    }
}

/// Classifies an SMTP reply code.
pub fn classify_code(code: u16, message: &str) -> Outcome {
    let snippet: String = message.chars().take(200).collect();
    match code {
        200..=299 => Outcome::Sent { status: code },
        400..=499 => Outcome::Retry {
            status: Some(code),
            error: format!("SMTP {code}: {snippet}"),
            after: None,
        },
        _ => Outcome::Failed {
            status: Some(code),
            error: format!("SMTP {code}: {snippet}"),
        },
    }
}

/// Classifies an error of the SMTP client.
pub fn classify_error(e: &lettre::transport::smtp::Error) -> Outcome {
    if let Some(code) = e.status() {
        return classify_code(u16::from(code), &e.to_string());
    }
    let error = if e.is_timeout() {
        "SMTP timeout".to_string()
    } else {
        format!("SMTP: {e}")
    };
    if e.is_client() {
        Outcome::Failed {
            status: None,
            error,
        }
    } else {
        // connection, TLS, unexpected response, shutdown: maybe transient
        Outcome::Retry {
            status: None,
            error,
            after: None,
        }
    }
}

fn failed(error: String) -> Outcome {
    Outcome::Failed {
        status: None,
        error,
    }
}

/// Sends one stored email. Returns the outcome and the latency.
pub async fn send(
    target: &EmailTarget,
    payload: &str,
    egress: &EgressPolicy,
) -> (Outcome, Duration) {
    let start = Instant::now();
    let out = match tokio::time::timeout(target.timeout, send_inner(target, payload, egress)).await
    {
        Ok(o) => o,
        Err(_) => Outcome::Retry {
            status: None,
            error: "SMTP timeout".into(),
            after: None,
        },
    };
    (out, start.elapsed())
}

async fn send_inner(target: &EmailTarget, payload: &str, egress: &EgressPolicy) -> Outcome {
    let p: EmailPayload = match serde_json::from_str(payload) {
        Ok(p) => p,
        Err(e) => return failed(EmailError::Payload(e.to_string()).to_string()),
    };
    let msg = match p.message() {
        Ok(m) => m,
        Err(e) => return failed(e.to_string()),
    };
    let addr = match egress.resolve(&target.host, target.port).await {
        Ok(a) => a,
        Err(e) if e.starts_with("resolving") => {
            return Outcome::Retry {
                status: None,
                error: e,
                after: None,
            };
        }
        Err(e) => return failed(e),
    };
    let tls = |t: &EmailTarget| t.tls_parameters().map_err(|e| failed(e.to_string()));
    let hello = ClientId::Domain(target.hello.clone());
    let implicit = if target.implicit_tls {
        match tls(target) {
            Ok(p) => Some(p),
            Err(o) => return o,
        }
    } else {
        None
    };
    // `addr` is the checked address: no second lookup happens here
    let mut conn = match AsyncSmtpConnection::connect_tokio1(
        addr,
        Some(target.timeout),
        &hello,
        implicit,
        None,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => return classify_error(&e),
    };
    let out = session(&mut conn, target, &hello, &msg).await;
    if matches!(out, Outcome::Sent { .. }) {
        let _ = conn.quit().await;
    } else {
        conn.abort().await;
    }
    out
}

async fn session(
    conn: &mut AsyncSmtpConnection,
    target: &EmailTarget,
    hello: &ClientId,
    msg: &Message,
) -> Outcome {
    if !conn.is_encrypted() {
        if conn.can_starttls() {
            let params = match target.tls_parameters() {
                Ok(p) => p,
                Err(e) => return failed(e.to_string()),
            };
            if let Err(e) = conn.starttls(params, hello).await {
                return classify_error(&e);
            }
        } else if target.require_tls {
            return failed(format!(
                "require_tls is true but {} does not advertise STARTTLS",
                target.host
            ));
        }
    }
    if let Some((user, pass)) = &target.credentials {
        let offers_auth = [Mechanism::Plain, Mechanism::Login]
            .iter()
            .any(|m| conn.server_info().supports_auth_mechanism(*m));
        if offers_auth {
            let loopback = target
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
                || target.host == "localhost";
            if !conn.is_encrypted() && !loopback {
                return failed(
                    "refusing to send SMTP credentials over an unencrypted connection".into(),
                );
            }
            let creds = Credentials::new(user.clone(), pass.clone());
            if let Err(e) = conn
                .auth(&[Mechanism::Plain, Mechanism::Login], &creds)
                .await
            {
                return classify_error(&e);
            }
        }
    }
    match conn.send(msg.envelope(), &msg.formatted()).await {
        Ok(r) => classify_code(u16::from(r.code()), r.first_line().unwrap_or("")),
        Err(e) => classify_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> EmailPayload {
        let mut headers = BTreeMap::new();
        headers.insert("To".into(), "ops@example.org".into());
        headers.insert("From".into(), "day2 <day2@example.org>".into());
        headers.insert("Subject".into(), "[FIRING:1] Down\r\nBcc: evil@x".into());
        headers.insert("X-Team".into(), "sre".into());
        EmailPayload {
            from: "day2@example.org".into(),
            to: "ops@example.org, oncall@example.org".into(),
            headers,
            html: "<p>down</p>".into(),
            text: Some("down".into()),
        }
    }

    #[test]
    fn message_has_headers_envelope_and_both_bodies() {
        let m = payload().message().unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("To: ops@example.org\r\n"), "{raw}");
        assert!(raw.contains("From: day2 <day2@example.org>\r\n"), "{raw}");
        assert!(
            raw.contains("Subject: [FIRING:1] Down  Bcc: evil@x\r\n"),
            "{raw}"
        );
        assert!(!raw.contains("\r\nBcc:"), "{raw}");
        assert!(raw.contains("X-Team: sre\r\n"), "{raw}");
        assert!(raw.contains("Date: "), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("text/html"), "{raw}");
        assert_eq!(m.envelope().to().len(), 2);
        assert_eq!(m.envelope().from().unwrap().to_string(), "day2@example.org");
    }

    #[test]
    fn bad_addresses_and_header_names_are_errors() {
        let mut p = payload();
        p.to = "not an address".into();
        assert!(matches!(p.message(), Err(EmailError::Address { .. })));
        let mut p = payload();
        p.headers.insert("Bad Name".into(), "x".into());
        assert!(matches!(p.message(), Err(EmailError::HeaderName(_))));
    }

    #[test]
    fn smtp_codes_are_classified() {
        assert_eq!(classify_code(250, "ok"), Outcome::Sent { status: 250 });
        assert!(matches!(
            classify_code(451, "try later"),
            Outcome::Retry {
                status: Some(451),
                ..
            }
        ));
        assert!(matches!(
            classify_code(421, ""),
            Outcome::Retry {
                status: Some(421),
                ..
            }
        ));
        assert!(matches!(
            classify_code(550, "no such user"),
            Outcome::Failed {
                status: Some(550),
                ..
            }
        ));
        assert!(matches!(classify_code(554, ""), Outcome::Failed { .. }));
    }

    fn cfg(extra: &str) -> crate::config::HubConfig {
        crate::config::load_str(&format!(
            "global:\n  smtp_smarthost: 'mail.example.org:587'\n  smtp_from: day2@example.org\n  smtp_auth_username: u\n  smtp_auth_password: s3cret\nroute: {{receiver: m}}\nreceivers:\n  - name: m\n    email_configs:\n      - to: ops@example.org\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn target_uses_global_defaults_and_hides_the_password() {
        let c = cfg("");
        let e = &c.receiver("m").unwrap().email_configs[0];
        let t = EmailTarget::from_config(e).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("mail.example.org", 587));
        assert!(t.require_tls);
        assert!(!t.implicit_tls);
        assert_eq!(t.tls_server_name, "mail.example.org");
        assert_eq!(t.credentials, Some(("u".to_string(), "s3cret".to_string())));
        assert!(!format!("{t:?}").contains("s3cret"));
        let c = cfg("        smarthost: 'smtp.example.org:465'\n        require_tls: false\n");
        let t = EmailTarget::from_config(&c.receiver("m").unwrap().email_configs[0]).unwrap();
        assert!(t.implicit_tls);
        assert!(!t.require_tls);
    }

    #[tokio::test]
    async fn refused_egress_is_permanent() {
        let c = cfg("        smarthost: '169.254.169.254:25'\n");
        let t = EmailTarget::from_config(&c.receiver("m").unwrap().email_configs[0]).unwrap();
        let p = serde_json::to_string(&payload()).unwrap();
        let (o, _) = send(&t, &p, &EgressPolicy::default()).await;
        match o {
            Outcome::Failed { error, .. } => assert!(error.contains("link-local"), "{error}"),
            o => panic!("{o:?}"),
        }
    }
}
