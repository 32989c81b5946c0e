//! What a page says, and how it is written for each contact method.
//!
//! A [`Page`] is stored in the page outbox as JSON (no secrets, no links: the
//! acknowledgement link is signed when the page is sent, so it expires
//! counting from delivery). [`render`] turns it into the body for one
//! contact method: a JSON document for webhooks (the page itself plus
//! `ack_url`), Slack's and Teams' incoming-webhook messages, or an email.
//! Values from alerts are escaped for the target format (Slack's `&<>`,
//! HTML in emails). Pure: no I/O.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::ContactMethod;

/// Why a page was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageKind {
    /// A step of an escalation: acknowledge it to stop the next steps.
    Escalation,
    /// A message (an incident's communication template), nothing to acknowledge.
    Message,
}

/// The escalation a page belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageEscalation {
    pub id: i64,
    pub policy: String,
    /// The alert-hub receiver whose notification started it.
    pub receiver: String,
    pub group_key: String,
    pub triggered_at: Timestamp,
    /// 1-based.
    pub round: u32,
    /// 1-based step number within the policy.
    pub step: u32,
}

/// One alert of a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageAlert {
    pub fingerprint: String,
    /// `firing` or `resolved`.
    pub status: String,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Timestamp,
}

/// A page as stored: everything but the secret parts of the destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    pub kind: PageKind,
    /// The user paged (their id in `oncall.users`).
    pub user: String,
    /// One line.
    pub title: String,
    /// Plain text, possibly several lines.
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<PageEscalation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<PageAlert>,
    /// The incident a message is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
}

impl Page {
    /// The page of an escalation step: title and text summarise the alerts.
    pub fn for_step(user: &str, escalation: PageEscalation, alerts: Vec<PageAlert>) -> Page {
        let firing = alerts.iter().filter(|a| a.status == "firing").count();
        let name = common_label(&alerts, "alertname").unwrap_or_else(|| "alerts".into());
        let title = format!(
            "[day2] {name}: {firing} firing ({}, step {} round {})",
            escalation.receiver, escalation.step, escalation.round
        );
        let mut text = String::new();
        for a in &alerts {
            let summary = a
                .annotations
                .get("summary")
                .or_else(|| a.annotations.get("description"))
                .map(String::as_str)
                .unwrap_or("");
            let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            text.push_str(&format!(
                "- [{}] {} {summary}\n",
                a.status,
                labels.join(" ")
            ));
        }
        Page {
            kind: PageKind::Escalation,
            user: user.to_string(),
            title,
            text: text.trim_end().to_string(),
            escalation: Some(escalation),
            alerts,
            incident: None,
        }
    }
}

fn common_label(alerts: &[PageAlert], name: &str) -> Option<String> {
    let first = alerts.first()?.labels.get(name)?;
    alerts
        .iter()
        .all(|a| a.labels.get(name) == Some(first))
        .then(|| first.clone())
}

/// What to send for one contact method.
#[derive(Debug, Clone, PartialEq)]
pub enum Rendered {
    /// POST this JSON (webhook, Slack, Teams).
    Json(Value),
    /// Send this email.
    Email {
        to: String,
        subject: String,
        html: String,
        text: String,
    },
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Slack's control characters in message text.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The body for `method`; `ack_url` is the signed link when acknowledgement
/// links are configured (escalation pages only).
pub fn render(page: &Page, method: &ContactMethod, ack_url: Option<&str>) -> Rendered {
    let ack_url = ack_url.filter(|_| page.kind == PageKind::Escalation);
    match method {
        ContactMethod::Webhook { .. } => {
            let mut v = json!({ "version": "1" });
            if let (Value::Object(o), Ok(Value::Object(p))) = (&mut v, serde_json::to_value(page)) {
                o.extend(p);
            }
            if let Some(u) = ack_url {
                v["ack_url"] = Value::from(u);
            }
            Rendered::Json(v)
        }
        ContactMethod::Slack { .. } => {
            let mut text = format!(
                "*{}*\n{}",
                slack_escape(&page.title),
                slack_escape(&page.text)
            );
            if let Some(u) = ack_url {
                text.push_str(&format!("\n<{}|Acknowledge>", slack_escape(u)));
            }
            Rendered::Json(json!({ "text": text }))
        }
        ContactMethod::Teams { .. } => {
            // MessageCard text is Markdown: keep alert values from becoming markup
            let md = |s: &str| html_escape(s).replace('*', "\\*").replace('_', "\\_");
            let mut card = json!({
                "@context": "http://schema.org/extensions",
                "type": "MessageCard",
                "themeColor": if page.kind == PageKind::Escalation { "8C1A1A" } else { "0969DA" },
                "summary": page.title,
                "title": md(&page.title),
                "text": md(&page.text).replace('\n', "<br>"),
            });
            if let Some(u) = ack_url {
                card["potentialAction"] = json!([{
                    "@type": "OpenUri",
                    "name": "Acknowledge",
                    "targets": [{ "os": "default", "uri": u }],
                }]);
            }
            Rendered::Json(card)
        }
        ContactMethod::Email(to) => {
            let mut html = format!(
                "<h2>{}</h2>\n<pre>{}</pre>\n",
                html_escape(&page.title),
                html_escape(&page.text)
            );
            let mut text = format!("{}\n\n{}\n", page.title, page.text);
            if let Some(u) = ack_url {
                html.push_str(&format!(
                    "<p><a href=\"{}\">Acknowledge</a></p>\n",
                    html_escape(u)
                ));
                text.push_str(&format!("\nAcknowledge: {u}\n"));
            }
            Rendered::Email {
                to: to.clone(),
                subject: page.title.replace(['\r', '\n'], " "),
                html,
                text,
            }
        }
    }
}

/// A short name of a contact method kind (`email`, `slack`, `teams`, `webhook`).
pub fn method_kind(m: &ContactMethod) -> &'static str {
    match m {
        ContactMethod::Email(_) => "email",
        ContactMethod::Slack { .. } => "slack",
        ContactMethod::Teams { .. } => "teams",
        ContactMethod::Webhook { .. } => "webhook",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretRef;

    fn page() -> Page {
        let alert = PageAlert {
            fingerprint: "f1".into(),
            status: "firing".into(),
            labels: [
                ("alertname".to_string(), "DBDown".to_string()),
                ("instance".to_string(), "<db1>".to_string()),
            ]
            .into(),
            annotations: [("summary".to_string(), "db & <b>down</b>".to_string())].into(),
            starts_at: "2026-01-01T00:00:00Z".parse().unwrap(),
        };
        Page::for_step(
            "alice",
            PageEscalation {
                id: 7,
                policy: "db".into(),
                receiver: "db-pager".into(),
                group_key: "{}:{}".into(),
                triggered_at: "2026-01-01T00:00:30Z".parse().unwrap(),
                round: 1,
                step: 2,
            },
            vec![alert],
        )
    }

    #[test]
    fn webhook_carries_the_page_and_the_link() {
        let m = ContactMethod::Webhook {
            url: "http://x".into(),
            bearer_token: None,
        };
        let Rendered::Json(v) = render(&page(), &m, Some("http://day2/oncall/ack/t")) else {
            panic!()
        };
        assert_eq!(v["version"], "1");
        assert_eq!(v["kind"], "escalation");
        assert_eq!(v["user"], "alice");
        assert_eq!(v["escalation"]["id"], 7);
        assert_eq!(v["escalation"]["step"], 2);
        assert_eq!(v["alerts"][0]["labels"]["instance"], "<db1>");
        assert_eq!(v["ack_url"], "http://day2/oncall/ack/t");
        assert_eq!(
            v["title"],
            "[day2] DBDown: 1 firing (db-pager, step 2 round 1)"
        );
    }

    #[test]
    fn slack_and_email_escape_alert_values() {
        let s = ContactMethod::Slack {
            webhook_url: SecretRef::Env("X".into()),
        };
        let Rendered::Json(v) = render(&page(), &s, Some("http://day2/a?b=1&c=2")) else {
            panic!()
        };
        let text = v["text"].as_str().unwrap();
        assert!(text.contains("instance=&lt;db1&gt;"), "{text}");
        assert!(text.contains("db &amp; &lt;b&gt;down&lt;/b&gt;"), "{text}");
        assert!(
            text.ends_with("<http://day2/a?b=1&amp;c=2|Acknowledge>"),
            "{text}"
        );

        let e = ContactMethod::Email("alice@example.com".into());
        let Rendered::Email { html, text, to, .. } = render(&page(), &e, Some("http://l?a&b"))
        else {
            panic!()
        };
        assert_eq!(to, "alice@example.com");
        assert!(html.contains("db &amp; &lt;b&gt;down&lt;/b&gt;"), "{html}");
        assert!(!html.contains("<b>down"), "{html}");
        assert!(html.contains("href=\"http://l?a&amp;b\""), "{html}");
        assert!(text.contains("Acknowledge: http://l?a&b"), "{text}");
    }

    #[test]
    fn messages_never_carry_ack_links() {
        let mut p = page();
        p.kind = PageKind::Message;
        let m = ContactMethod::Webhook {
            url: "http://x".into(),
            bearer_token: None,
        };
        let Rendered::Json(v) = render(&p, &m, Some("http://l")) else {
            panic!()
        };
        assert!(v.get("ack_url").is_none());
    }
}
