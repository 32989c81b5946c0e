//! End-to-end test of `email_configs` in `day2 serve`: alerts in through the
//! Alertmanager API v2, mail out over SMTP to a tiny SMTP server written
//! here (loopback), with a 4xx retried and a 5xx failing permanently.

mod common;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use common::{Day2, HUB_DAY2_YML, get_json, metric, post_alerts, wait_for};
use parking_lot::Mutex;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// One accepted mail.
#[derive(Debug, Clone, Default)]
struct Mail {
    helo: String,
    mail_from: String,
    rcpt_to: Vec<String>,
    data: String,
}

impl Mail {
    /// The first header `name` (unfolded).
    fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let mut out: Option<String> = None;
        let mut in_it = false;
        for line in head.split("\r\n") {
            if in_it && (line.starts_with(' ') || line.starts_with('\t')) {
                out.as_mut()
                    .unwrap()
                    .push_str(line.trim_start_matches(['\t']));
                continue;
            }
            in_it = false;
            if out.is_some() {
                continue;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case(name)
            {
                out = Some(v.trim().to_string());
                in_it = true;
            }
        }
        out
    }
}

/// A loopback SMTP server: EHLO/HELO, MAIL FROM, RCPT TO, DATA, RSET, NOOP,
/// QUIT. The reply to the end of each message's data comes from `replies`
/// (250 once empty); a mail is kept only when answered 250.
#[derive(Clone, Default)]
struct Smtp {
    mails: Arc<Mutex<Vec<Mail>>>,
    replies: Arc<Mutex<VecDeque<u16>>>,
    data_attempts: Arc<Mutex<usize>>,
}

impl Smtp {
    async fn start() -> (Smtp, u16) {
        let s = Smtp::default();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let srv = s.clone();
        tokio::spawn(async move {
            while let Ok((c, _)) = l.accept().await {
                let srv = srv.clone();
                tokio::spawn(async move {
                    let _ = srv.session(c).await;
                });
            }
        });
        (s, port)
    }

    async fn session(&self, c: tokio::net::TcpStream) -> std::io::Result<()> {
        let (r, mut w) = c.into_split();
        let mut r = BufReader::new(r);
        w.write_all(b"220 test.local ESMTP ready\r\n").await?;
        let mut mail = Mail::default();
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let cmd = line.trim_end().to_string();
            let upper = cmd.to_ascii_uppercase();
            let reply: String = if upper.starts_with("EHLO ") {
                mail.helo = cmd[5..].to_string();
                "250-test.local\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n".into()
            } else if upper.starts_with("HELO ") {
                mail.helo = cmd[5..].to_string();
                "250 test.local\r\n".into()
            } else if upper.starts_with("MAIL FROM:") {
                mail.mail_from = cmd[10..].trim().to_string();
                "250 ok\r\n".into()
            } else if upper.starts_with("RCPT TO:") {
                mail.rcpt_to.push(cmd[8..].trim().to_string());
                "250 ok\r\n".into()
            } else if upper == "DATA" {
                w.write_all(b"354 go ahead\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    data.push_str(&line);
                }
                *self.data_attempts.lock() += 1;
                let code = self.replies.lock().pop_front().unwrap_or(250);
                mail.data = data;
                if code == 250 {
                    self.mails.lock().push(std::mem::take(&mut mail));
                    "250 queued\r\n".into()
                } else if code < 500 {
                    format!("{code} try again later\r\n")
                } else {
                    format!("{code} mailbox unavailable\r\n")
                }
            } else if upper == "RSET" || upper == "NOOP" {
                "250 ok\r\n".into()
            } else if upper == "QUIT" {
                w.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else {
                "502 command not implemented\r\n".into()
            };
            w.write_all(reply.as_bytes()).await?;
        }
    }

    async fn wait(&self, what: &str, pred: impl Fn(&Mail) -> bool) -> Mail {
        wait_for(what, Duration::from_secs(30), || {
            let found = self.mails.lock().iter().find(|m| pred(m)).cloned();
            async move { found }
        })
        .await
    }
}

fn configs(dir: &std::path::Path, smtp_port: u16) -> String {
    let am = format!(
        r#"
global:
  smtp_smarthost: '127.0.0.1:{smtp_port}'
  smtp_from: 'day2 <alerts@day2.test>'
  smtp_hello: day2.test
route:
  receiver: mail
  group_by: [alertname]
  group_wait: 300ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: mail
    email_configs:
      - to: 'oncall@example.org'
        require_tls: false
        send_resolved: true
        headers:
          X-Day2-Group: '{{{{ .GroupLabels.alertname }}}}'
"#
    );
    std::fs::write(dir.join("alertmanager.yml"), am).unwrap();
    HUB_DAY2_YML.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_is_retried_after_451_then_resolve_follows() {
    let dir = tempfile::tempdir().unwrap();
    let (smtp, port) = Smtp::start().await;
    smtp.replies.lock().push_back(451);
    let d = Day2::start(dir.path(), &configs(dir.path(), port)).await;

    post_alerts(
        &d,
        json!([{"labels": {"alertname": "MailDown", "instance": "a"}, "annotations": {"summary": "a is down"}}]),
    )
    .await;
    let m = smtp
        .wait("firing mail", |m| {
            m.header("Subject").as_deref() == Some("[FIRING:1] MailDown")
        })
        .await;
    assert_eq!(m.header("To").as_deref(), Some("oncall@example.org"));
    assert_eq!(m.header("From").as_deref(), Some("day2 <alerts@day2.test>"));
    assert_eq!(m.header("X-Day2-Group").as_deref(), Some("MailDown"));
    assert!(m.header("Date").is_some(), "{}", m.data);
    assert_eq!(m.helo, "day2.test");
    assert_eq!(m.mail_from, "<alerts@day2.test>");
    assert_eq!(m.rcpt_to, ["<oncall@example.org>"]);
    assert!(m.data.contains("text/html"), "{}", m.data);
    assert!(m.data.contains("MailDown"), "{}", m.data);
    assert!(*smtp.data_attempts.lock() >= 2, "the 451 was not retried");

    // the audit: the 451 attempt, then the 250
    let alerts = get_json(&d, "/api/v2/alerts").await;
    let fp = alerts[0]["fingerprint"].as_str().unwrap().to_string();
    let audit = wait_for("audit shows the mail sent", Duration::from_secs(10), || {
        let (d, fp) = (&d, &fp);
        async move {
            let a = get_json(d, &format!("/api/day2/v1/notifications?fingerprint={fp}")).await;
            (a[0]["state"] == "sent").then_some(a)
        }
    })
    .await;
    let n = &audit[0];
    assert_eq!(n["receiver"], "mail");
    assert_eq!(n["integration"], "email[0]");
    let attempts = n["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{audit}");
    assert_eq!(attempts[0]["statusCode"], 451, "{audit}");
    assert_eq!(attempts[1]["statusCode"], 250, "{audit}");
    assert!(metric(&d, "day2_alerthub_notification_retries_total").await >= 1.0);

    // the stored message carries no secrets and the config is unchanged:
    // resolve the alert, a resolve mail follows
    post_alerts(
        &d,
        json!([{"labels": {"alertname": "MailDown", "instance": "a"}, "startsAt": "2019-12-31T00:00:00Z", "endsAt": "2020-01-01T00:00:00Z"}]),
    )
    .await;
    let r = smtp
        .wait("resolved mail", |m| {
            m.header("Subject").as_deref() == Some("[RESOLVED] MailDown")
        })
        .await;
    assert_eq!(r.header("To").as_deref(), Some("oncall@example.org"));
    assert!(r.data.contains("Resolved"), "{}", r.data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_550_is_a_permanent_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (smtp, port) = Smtp::start().await;
    smtp.replies.lock().extend([550u16; 100]);
    let d = Day2::start(dir.path(), &configs(dir.path(), port)).await;
    post_alerts(&d, json!([{"labels": {"alertname": "Rejected"}}])).await;
    wait_for("permanent failure", Duration::from_secs(30), || {
        let d = &d;
        async move {
            (metric(d, "day2_alerthub_notifications_failed_total").await >= 1.0).then_some(())
        }
    })
    .await;
    let audit = get_json(&d, "/api/day2/v1/notifications").await;
    let n = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["integration"] == "email[0]")
        .unwrap_or_else(|| panic!("{audit}"));
    assert_eq!(n["state"], "failed", "{audit}");
    let attempts = n["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{audit}");
    assert_eq!(attempts[0]["statusCode"], 550, "{audit}");
    assert!(n["lastError"].as_str().unwrap().contains("550"), "{audit}");
    assert_eq!(*smtp.data_attempts.lock(), 1);
    assert!(smtp.mails.lock().is_empty());
    assert_eq!(
        metric(&d, "day2_alerthub_notification_retries_total").await,
        0.0
    );
}

/// An on-call user whose contact method is email is paged through the SMTP
/// settings of alertmanager.yml, with the signed acknowledgement link; the
/// link acknowledges the escalation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_page_carries_a_working_acknowledgement_link() {
    let dir = tempfile::tempdir().unwrap();
    let (smtp, port) = Smtp::start().await;
    let am = format!(
        r#"
global:
  smtp_smarthost: '127.0.0.1:{port}'
  smtp_from: 'day2 <pages@day2.test>'
  smtp_require_tls: false
route:
  receiver: pager
  group_by: [alertname]
  group_wait: 200ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: pager
"#
    );
    std::fs::write(dir.path().join("alertmanager.yml"), am).unwrap();
    let key = dir.path().join("ack.key");
    std::fs::write(&key, "an acknowledgement key, 32 bytes or more").unwrap();
    let day2_yml = format!(
        r#"{HUB_DAY2_YML}
oncall:
  users:
    - {{ id: alice, email: alice@example.org }}
  escalation_policies:
    - name: db
      steps:
        - targets: [{{ user: alice }}]
  receivers:
    pager: {{ escalation_policy: db }}
  ack_links:
    secret: file:{key}
"#,
        key = key.display()
    );
    let d = Day2::start(dir.path(), &day2_yml).await;
    post_alerts(
        &d,
        json!([{"labels": {"alertname": "DiskFull", "instance": "db<1>"}}]),
    )
    .await;
    let m = smtp
        .wait("the page", |m| {
            m.rcpt_to.iter().any(|r| r == "<alice@example.org>")
        })
        .await;
    assert_eq!(m.header("From").as_deref(), Some("day2 <pages@day2.test>"));
    let subject = m.header("Subject").unwrap();
    assert!(subject.contains("DiskFull"), "{subject}");
    // the HTML part escapes label values
    assert!(m.data.contains("db&lt;1&gt;"), "{}", m.data);
    // the link in the text part (quoted-printable may fold it: unfold first)
    let body = m.data.replace("=\r\n", "").replace("=3D", "=");
    let start = body
        .find("Acknowledge: ")
        .unwrap_or_else(|| panic!("{body}"))
        + 13;
    let link: String = body[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let path = link
        .strip_prefix("http://day2.test")
        .unwrap_or_else(|| panic!("{link}"));
    // the form's button posts to the link
    let r = common::client().post(d.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let acked = get_json(&d, "/api/day2/v1/oncall/escalations?state=all").await;
    assert_eq!(
        (acked[0]["acked_by"].as_str(), acked[0]["ack_via"].as_str()),
        (Some("alice"), Some("link")),
        "{acked}"
    );
}
