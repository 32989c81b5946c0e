//! Sending one page: the destination is read from the current settings at
//! send time (secrets from `env:`/`file:`, never stored), the body rendered
//! by [`crate::page::render`] with a freshly signed acknowledgement link, and
//! the attempt made with the alert hub's delivery code (egress allowlist,
//! redirects re-checked, classification of the answer) or its SMTP client.

use std::time::Duration;

use day2_alerthub::delivery::{self, Auth, Outcome, Target};
use day2_alerthub::email::{self, EmailPayload, EmailTarget};
use jiff::Timestamp;

use crate::acklink::{self, AckClaims};
use crate::config::{ContactMethod, SecretRef};
use crate::page::{self, Page, PageKind, Rendered};
use crate::runtime::OnCallSettings;

/// How long one HTTP attempt may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads a secret reference (trimmed). Errors name the reference, never a value.
pub fn read_secret(r: &SecretRef) -> Result<String, String> {
    match r {
        SecretRef::Env(n) => std::env::var(n)
            .map_err(|_| format!("environment variable {n} is not set"))
            .map(|v| v.trim().to_string()),
        SecretRef::File(p) => std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read {p}: {e}"))
            .map(|v| v.trim().to_string()),
    }
}

fn failed(error: String) -> Outcome {
    Outcome::Failed {
        status: None,
        error,
    }
}

/// The acknowledgement URL of an escalation page for `user`, valid from `now`.
pub fn ack_url(settings: &OnCallSettings, page: &Page, now: Timestamp) -> Option<String> {
    let links = settings.ack.as_ref()?;
    let esc = page.escalation.as_ref()?;
    if page.kind != PageKind::Escalation {
        return None;
    }
    let claims = AckClaims {
        escalation: esc.id,
        user: page.user.clone(),
        expires: now.saturating_add(links.valid_for).ok()?,
    };
    Some(format!(
        "{}/oncall/ack/{}",
        links.base_url.trim_end_matches('/'),
        acklink::sign(&links.key, &claims)
    ))
}

/// The SMTP target and the stored-email JSON of an email page, with every
/// setting but the recipient from `alertmanager.yml`'s global `smtp_*`.
pub fn email_message(
    global: Option<&day2_alerthub::config::GlobalConfig>,
    to: &str,
    subject: &str,
    html: String,
    text: String,
) -> Result<(EmailTarget, String), String> {
    let global = global.ok_or(
        "email pages need smtp_smarthost and smtp_from in alertmanager.yml's global section",
    )?;
    let cfg = day2_alerthub::config::EmailConfig::from_global(to, global)?;
    let target = EmailTarget::from_config(&cfg).map_err(|e| e.to_string())?;
    let from = cfg.from.clone().unwrap_or_default();
    let payload = EmailPayload {
        from: from.clone(),
        to: to.to_string(),
        headers: [
            ("Subject".to_string(), email::header_line(subject)),
            ("To".to_string(), to.to_string()),
            ("From".to_string(), from),
        ]
        .into(),
        html,
        text: Some(text),
    };
    let body = serde_json::to_string(&payload).map_err(|e| e.to_string())?;
    Ok((target, body))
}

/// One attempt to deliver `page` through `method`.
pub async fn send(
    settings: &OnCallSettings,
    page: &Page,
    method: &ContactMethod,
    now: Timestamp,
) -> Outcome {
    let link = ack_url(settings, page, now);
    let rendered = page::render(page, method, link.as_deref());
    let http = |url: String, auth: Auth| Target {
        url,
        timeout: HTTP_TIMEOUT,
        auth,
        follow_redirects: true,
        secret_fields: Vec::new(),
    };
    match (method, rendered) {
        (ContactMethod::Webhook { url, bearer_token }, Rendered::Json(body)) => {
            let auth = match bearer_token {
                None => Auth::None,
                Some(r) => match read_secret(r) {
                    Ok(t) => Auth::Header(format!("Bearer {t}")),
                    Err(e) => return failed(format!("bearer_token: {e}")),
                },
            };
            let t = http(url.clone(), auth);
            delivery::post_json(&t, body.to_string(), &settings.egress)
                .await
                .0
        }
        (
            ContactMethod::Slack { webhook_url } | ContactMethod::Teams { webhook_url },
            Rendered::Json(body),
        ) => {
            let url = match read_secret(webhook_url) {
                Ok(u) => u,
                Err(e) => return failed(format!("webhook URL: {e}")),
            };
            let t = http(url, Auth::None);
            delivery::post_json(&t, body.to_string(), &settings.egress)
                .await
                .0
        }
        (
            ContactMethod::Email(_),
            Rendered::Email {
                to,
                subject,
                html,
                text,
            },
        ) => {
            let (target, body) =
                match email_message(settings.smtp.as_ref(), &to, &subject, html, text) {
                    Ok(x) => x,
                    Err(e) => return failed(e),
                };
            email::send(&target, &body, &settings.egress).await.0
        }
        _ => failed("the page does not fit the contact method".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_pages_use_the_global_smtp_settings() {
        let hub = day2_alerthub::load_str(
            "global:\n  smtp_smarthost: 'mail.example.com:587'\n  smtp_from: day2@example.com\nroute: {receiver: r}\nreceivers: [{name: r}]\n",
        )
        .unwrap();
        let (target, body) = email_message(
            Some(&hub.config.global),
            "alice@example.com",
            "[day2] DBDown\r\nBcc: x@evil",
            "<p>x</p>".into(),
            "x".into(),
        )
        .unwrap();
        assert_eq!(
            (target.host.as_str(), target.port),
            ("mail.example.com", 587)
        );
        let p: EmailPayload = serde_json::from_str(&body).unwrap();
        assert_eq!(p.from, "day2@example.com");
        assert_eq!(p.to, "alice@example.com");
        assert_eq!(
            p.headers["Subject"], "[day2] DBDown  Bcc: x@evil",
            "one header line"
        );
        assert!(p.message().is_ok());

        let none =
            day2_alerthub::load_str("route: {receiver: r}\nreceivers: [{name: r}]\n").unwrap();
        let e = email_message(
            Some(&none.config.global),
            "a@example.com",
            "s",
            String::new(),
            String::new(),
        )
        .unwrap_err();
        assert!(e.contains("smarthost"), "{e}");
        assert!(email_message(None, "a@example.com", "s", String::new(), String::new()).is_err());
    }
}
