//! Notification templates: day2's default definitions (Alertmanager's names,
//! `templates/default.tmpl`) plus the files of the config's `templates:`
//! list, and the Slack, Microsoft Teams, PagerDuty and email payloads
//! rendered with them.

use crate::config::{EmailConfig, HubConfig, MsTeamsConfig, PagerdutyConfig, SlackConfig};
use crate::notify::NotificationData;
use day2_gotmpl::{Env, Template, Value};
use serde_json::{Value as Json, json};
use std::path::Path;

const DEFAULT_TMPL: &str = include_str!("../templates/default.tmpl");

/// The parsed template set and the execution environment.
#[derive(Debug, Clone)]
pub struct Templates {
    set: Template,
    env: Env,
}

/// Expands a `templates:` entry: a path, `*` allowed in the file name.
fn expand(pattern: &str, base: &Path) -> Vec<std::path::PathBuf> {
    let p = base.join(pattern);
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if !name.contains('*') {
        return vec![p];
    }
    let dir = p.parent().unwrap_or(base);
    let (pre, post) = name.split_once('*').unwrap_or((&name, ""));
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|f| {
            f.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .is_some_and(|n| {
                    n.len() >= pre.len() + post.len() && n.starts_with(pre) && n.ends_with(post)
                })
        })
        .collect();
    out.sort();
    out
}

impl Templates {
    /// The defaults plus the config's template files (relative to `base`).
    pub fn load(cfg: &HubConfig, base: &Path) -> Result<Templates, String> {
        let env = Env::alertmanager();
        let mut set = Template::new("default.tmpl", &env.funcs);
        set.add("default.tmpl", DEFAULT_TMPL)
            .map_err(|e| format!("default templates: {e}"))?;
        for pattern in &cfg.config.templates {
            for f in expand(pattern, base) {
                let text = std::fs::read_to_string(&f)
                    .map_err(|e| format!("template {}: {e}", f.display()))?;
                set.add(&f.display().to_string(), &text)
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(Templates { set, env })
    }

    /// Only the defaults.
    pub fn defaults() -> Templates {
        let env = Env::alertmanager();
        let mut set = Template::new("default.tmpl", &env.funcs);
        set.add("default.tmpl", DEFAULT_TMPL)
            .expect("built-in templates parse");
        Templates { set, env }
    }

    /// Executes one templated field.
    pub fn text(&self, field: &str, src: &str, data: &Value) -> Result<String, String> {
        if !src.contains("{{") {
            return Ok(src.to_string());
        }
        self.set
            .with_text(field, src)
            .and_then(|t| t.execute(data, &self.env))
            .map_err(|e| format!("{field}: {e}"))
    }
}

fn time(t: jiff::Timestamp) -> Value {
    Value::Time(t.to_zoned_datetime(jiff::tz::TimeZone::UTC))
}

/// Alertmanager's template data (`.Receiver`, `.Status`, `.Alerts`, ...).
pub fn template_data(d: &NotificationData) -> Value {
    let kv = |m: &serde_json::Map<String, Json>| {
        Value::string_map(
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())),
        )
    };
    let zero: jiff::Timestamp = "0001-01-01T00:00:00Z".parse().unwrap_or_default();
    let alerts = d.alerts.iter().map(|a| {
        let resolved = a.is_resolved_at(d.now);
        Value::map([
            (
                "Status",
                Value::from(if resolved { "resolved" } else { "firing" }),
            ),
            (
                "Labels",
                Value::string_map(a.labels.iter().map(|l| (l.name.clone(), l.value.clone()))),
            ),
            (
                "Annotations",
                Value::string_map(a.annotations.iter().map(|(k, v)| (k.clone(), v.clone()))),
            ),
            ("StartsAt", time(a.starts_at)),
            (
                "EndsAt",
                time(match a.ends_at {
                    Some(e) if resolved => e,
                    _ => zero,
                }),
            ),
            ("GeneratorURL", Value::from(a.generator_url.clone())),
            ("Fingerprint", Value::from(a.fingerprint().to_string())),
        ])
    });
    Value::map([
        ("Receiver", Value::from(d.receiver.clone())),
        ("Status", Value::from(d.status().as_str())),
        ("Alerts", Value::list(alerts)),
        (
            "GroupLabels",
            Value::string_map(
                d.group_labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone())),
            ),
        ),
        ("CommonLabels", kv(&d.common_labels())),
        ("CommonAnnotations", kv(&d.common_annotations())),
        ("ExternalURL", Value::from(d.external_url.clone())),
        ("GroupKey", Value::from(d.group_key.clone())),
    ])
}

/// Slack's incoming-webhook / chat.postMessage body, one attachment.
pub fn slack(t: &Templates, c: &SlackConfig, d: &NotificationData) -> Result<Json, String> {
    let data = template_data(d);
    let f = |name: &str, src: &str| t.text(name, src, &data);
    let opt = |name: &str, src: &Option<String>| -> Result<Option<String>, String> {
        src.as_deref()
            .map(|s| t.text(name, s, &data))
            .transpose()
            .map(|o| o.filter(|s| !s.is_empty()))
    };
    let mut att = json!({
        "title": f("title", &c.title())?,
        "title_link": f("title_link", &c.title_link())?,
        "pretext": f("pretext", &c.pretext())?,
        "text": f("text", &c.text())?,
        "fallback": f("fallback", &c.fallback())?,
        "callback_id": f("callback_id", &c.callback_id())?,
        "color": f("color", &c.color())?,
        "footer": f("footer", &c.footer())?,
        "mrkdwn_in": c.mrkdwn_in(),
    });
    if let Some(u) = opt("image_url", &c.image_url)? {
        att["image_url"] = json!(u);
    }
    if let Some(u) = opt("thumb_url", &c.thumb_url)? {
        att["thumb_url"] = json!(u);
    }
    let mut body = json!({
        "username": f("username", &c.username())?,
        "attachments": [att],
    });
    if let Some(ch) = opt("channel", &c.channel)? {
        body["channel"] = json!(ch);
    }
    if let Some(e) = opt("icon_emoji", &c.icon_emoji)? {
        body["icon_emoji"] = json!(e);
    }
    if let Some(u) = opt("icon_url", &c.icon_url)? {
        body["icon_url"] = json!(u);
    }
    if c.link_names {
        body["link_names"] = json!(true);
    }
    Ok(body)
}

/// Microsoft Teams (Office 365 connector) MessageCard.
pub fn msteams(t: &Templates, c: &MsTeamsConfig, d: &NotificationData) -> Result<Json, String> {
    let data = template_data(d);
    let color = match d.status() {
        crate::alert::AlertStatus::Firing => "8C1A1A",
        crate::alert::AlertStatus::Resolved => "2DC72D",
    };
    Ok(json!({
        "@context": "http://schema.org/extensions",
        "type": "MessageCard",
        "title": t.text("title", &c.title(), &data)?,
        "summary": t.text("summary", &c.summary(), &data)?,
        "text": t.text("text", &c.text(), &data)?,
        "themeColor": color,
    }))
}

/// PagerDuty Events API v2 event. The routing key is left empty here and
/// set at send time (secrets never enter the outbox). The dedup key is a
/// hash of the group key, so a group's trigger and resolve pair up.
pub fn pagerduty(t: &Templates, c: &PagerdutyConfig, d: &NotificationData) -> Result<Json, String> {
    if !c.uses_events_v2() {
        return Err("PagerDuty's old service_key integration is not supported; use routing_key (Events API v2)".into());
    }
    let data = template_data(d);
    let f = |name: &str, src: &str| t.text(name, src, &data);
    let dedup = day2_store::set_hash(std::slice::from_ref(&d.group_key));
    let resolved = d.status() == crate::alert::AlertStatus::Resolved;
    let mut ev = json!({
        "routing_key": "",
        "event_action": if resolved { "resolve" } else { "trigger" },
        "dedup_key": dedup,
        "client": f("client", &c.client())?,
        "client_url": f("client_url", &c.client_url())?,
    });
    if !resolved {
        let mut details = serde_json::Map::new();
        for (k, v) in c.details() {
            let val = match &v {
                serde_yaml_ng::Value::String(s) => Json::String(f(&format!("details.{k}"), s)?),
                other => serde_json::to_value(other).unwrap_or(Json::Null),
            };
            details.insert(k, val);
        }
        let mut summary = f("description", &c.description())?;
        if summary.chars().count() > 1024 {
            summary = summary.chars().take(1023).collect::<String>() + "…";
        }
        let mut payload = json!({
            "summary": summary,
            "source": f("client", &c.client())?,
            "severity": f("severity", c.severity())?,
            "custom_details": details,
        });
        for (k, v) in [
            ("component", &c.component),
            ("group", &c.group),
            ("class", &c.class),
        ] {
            if let Some(src) = v {
                payload[k] = json!(f(k, src)?);
            }
        }
        ev["payload"] = payload;
        if !c.images.is_empty() {
            ev["images"] = json!(
                c.images
                    .iter()
                    .map(|i| json!({"src": i.src, "alt": i.alt, "href": i.href}))
                    .collect::<Vec<_>>()
            );
        }
        if !c.links.is_empty() {
            ev["links"] = json!(
                c.links
                    .iter()
                    .map(|l| json!({"href": l.href, "text": l.text}))
                    .collect::<Vec<_>>()
            );
        }
    }
    Ok(ev)
}

/// An email (`email.default.subject` / `email.default.html` unless the
/// config sets its own): every header, the envelope addresses and the
/// bodies rendered; header values are kept to one line. Stored in the
/// outbox as JSON (no secrets: credentials are read at send time).
pub fn email(
    t: &Templates,
    c: &EmailConfig,
    d: &NotificationData,
) -> Result<crate::email::EmailPayload, String> {
    let data = template_data(d);
    let f = |name: &str, src: &str| t.text(name, src, &data);
    let mut headers = std::collections::BTreeMap::new();
    for (k, v) in c.effective_headers() {
        let val = crate::email::header_line(&f(&format!("headers.{k}"), &v)?);
        headers.insert(k, val);
    }
    let text = match c.text.as_deref() {
        Some(src) => Some(f("text", src)?).filter(|s| !s.is_empty()),
        None => None,
    };
    Ok(crate::email::EmailPayload {
        from: crate::email::header_line(&f("from", c.from.as_deref().unwrap_or(""))?),
        to: crate::email::header_line(&f("to", &c.to)?),
        headers,
        html: f("html", &c.html())?,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Alert;
    use crate::config::{IntegrationConfig, load_str};
    use day2_model::Labels;

    fn data() -> NotificationData {
        let now: jiff::Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let mut a = Alert::new(
            Labels::from_pairs([("alertname", "Down"), ("job", "api")]),
            "2026-01-01T00:00:00Z".parse().unwrap(),
        );
        a.ends_at = Some("2026-01-01T01:00:00Z".parse().unwrap());
        a.annotations.insert("summary".into(), "api down".into());
        NotificationData {
            receiver: "team".into(),
            group_key: "{}:{alertname=\"Down\"}".into(),
            group_labels: Labels::from_pairs([("alertname", "Down")]),
            alerts: vec![a],
            external_url: "http://day2".into(),
            now,
        }
    }

    const CFG: &str = r#"
route: {receiver: team}
receivers:
  - name: team
    slack_configs:
      - api_url: https://hooks.slack.example/x
        channel: '#ops'
        text: '{{ range .Alerts }}{{ .Annotations.summary }}{{ end }}'
    msteams_configs:
      - webhook_url: https://teams.example/x
"#;

    #[test]
    fn slack_and_teams_payloads_render_defaults_and_overrides() {
        let cfg = load_str(CFG).unwrap();
        let t = Templates::load(&cfg, Path::new(".")).unwrap();
        let r = cfg.receiver("team").unwrap();
        let d = data();
        for i in r.integrations() {
            match i.config {
                IntegrationConfig::Slack(c) => {
                    let b = slack(&t, c, &d).unwrap();
                    assert_eq!(b["channel"], "#ops");
                    assert_eq!(b["username"], "day2");
                    let a = &b["attachments"][0];
                    assert_eq!(a["title"], "[FIRING:1] Down");
                    assert_eq!(a["text"], "api down");
                    assert_eq!(a["color"], "danger");
                    assert_eq!(a["title_link"], "http://day2/#/alerts?receiver=team");
                }
                IntegrationConfig::MsTeams(c) => {
                    let b = msteams(&t, c, &d).unwrap();
                    assert_eq!(b["type"], "MessageCard");
                    assert_eq!(b["title"], "[FIRING:1] Down");
                    assert_eq!(b["themeColor"], "8C1A1A");
                    let text = b["text"].as_str().unwrap();
                    assert!(text.contains("# Alerts Firing:"), "{text}");
                    assert!(text.contains("summary = api down"), "{text}");
                }
                _ => unreachable!(),
            }
        }
    }

    #[test]
    fn pagerduty_events_v2() {
        let cfg = load_str(
            "route: {receiver: pd}\nreceivers:\n  - name: pd\n    pagerduty_configs:\n      - routing_key: secret-key\n        severity: critical\n",
        )
        .unwrap();
        let t = Templates::defaults();
        let r = cfg.receiver("pd").unwrap();
        let IntegrationConfig::Pagerduty(c) = r.integrations()[0].config else {
            unreachable!()
        };
        let mut d = data();
        let ev = pagerduty(&t, c, &d).unwrap();
        assert_eq!(ev["event_action"], "trigger");
        assert_eq!(ev["routing_key"], "", "the key is added at send time");
        assert_eq!(ev["payload"]["summary"], "[FIRING:1] Down");
        assert_eq!(ev["payload"]["severity"], "critical");
        assert_eq!(ev["payload"]["custom_details"]["num_firing"], "1");
        assert!(!ev.to_string().contains("secret-key"));
        d.alerts[0].ends_at = Some("2026-01-01T00:05:00Z".parse().unwrap());
        let res = pagerduty(&t, c, &d).unwrap();
        assert_eq!(res["event_action"], "resolve");
        assert_eq!(res["dedup_key"], ev["dedup_key"]);
        assert!(res.get("payload").is_none());
    }

    #[test]
    fn user_templates_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("custom.tmpl"),
            r#"{{ define "slack.default.title" }}custom {{ .CommonLabels.job }}{{ end }}"#,
        )
        .unwrap();
        let cfg = load_str(&format!("{CFG}templates: ['*.tmpl']\n")).unwrap();
        let t = Templates::load(&cfg, dir.path()).unwrap();
        let data = template_data(&data());
        assert_eq!(
            t.text("title", "{{ template \"slack.default.title\" . }}", &data)
                .unwrap(),
            "custom api"
        );
        assert!(Templates::load(&cfg, Path::new("/nonexistent")).is_ok());
    }

    #[test]
    fn email_subject_headers_and_html() {
        let cfg = load_str(
            "global: {smtp_smarthost: 'mx:25', smtp_from: 'day2@example.org'}\nroute: {receiver: m}\nreceivers:\n  - name: m\n    email_configs:\n      - to: 'ops@example.org'\n        headers: {X-Job: '{{ .CommonLabels.job }}'}\n        text: '{{ .CommonAnnotations.summary }}'\n",
        )
        .unwrap();
        let t = Templates::defaults();
        let r = cfg.receiver("m").unwrap();
        let IntegrationConfig::Email(c) = r.integrations()[0].config else {
            unreachable!()
        };
        let mut d = data();
        d.alerts[0]
            .annotations
            .insert("description".into(), "<script>x</script>".into());
        let e = email(&t, c, &d).unwrap();
        assert_eq!(e.headers["Subject"], "[FIRING:1] Down");
        assert_eq!(e.headers["To"], "ops@example.org");
        assert_eq!(e.headers["From"], "day2@example.org");
        assert_eq!(e.headers["X-Job"], "api");
        assert_eq!(
            (e.from.as_str(), e.to.as_str()),
            ("day2@example.org", "ops@example.org")
        );
        assert_eq!(e.text.as_deref(), Some("api down"));
        assert!(e.html.contains("alertname"), "{}", e.html);
        assert!(
            e.html.contains("http://day2/#/alerts?receiver=team"),
            "{}",
            e.html
        );
        assert!(e.html.contains("&lt;script&gt;"), "{}", e.html);
        assert!(!e.html.contains("<script>"), "{}", e.html);
        d.alerts[0].ends_at = Some("2026-01-01T00:05:00Z".parse().unwrap());
        let e = email(&t, c, &d).unwrap();
        assert_eq!(e.headers["Subject"], "[RESOLVED] Down");
        assert!(e.html.contains("Resolved"), "{}", e.html);
    }
}
