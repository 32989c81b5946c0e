//! Wiring of on-call: the `oncall:` section's settings for the runtime, the
//! runtime behind the server's `OnCallApi` (including the acknowledgement
//! link page), and the CLI commands `day2 oncall who` and `day2 ack`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use day2_oncall::page::html_escape;
use day2_oncall::runtime::{AckLinkSettings, OnCallError, OnCallRuntime, OnCallSettings};
use day2_oncall::{OnCall, who};
use day2_server::Day2ApiError;
use serde_json::{Value, json};

use crate::config::{Day2Config, LoadedHub};

/// `(field, receiver, sink)` for every paging receiver.
pub fn internal_receivers(cfg: &Day2Config) -> Vec<(String, String, String)> {
    cfg.oncall
        .iter()
        .flat_map(|o| o.receivers.keys())
        .map(|r| {
            (
                format!("oncall.receivers.{r}"),
                r.clone(),
                "oncall".to_string(),
            )
        })
        .collect()
}

/// The compiled section (validated when the config was loaded).
pub fn model(cfg: &Day2Config) -> Result<OnCall, (String, String)> {
    // no section: the defaults (retention included)
    cfg.oncall
        .as_ref()
        .map_or_else(
            || day2_oncall::OnCallConfig::default().compile(),
            |o| o.compile(),
        )
        .map_err(|(p, m)| (format!("oncall.{p}"), m))
}

/// Checks what needs the environment: every secret reference can be read,
/// the acknowledgement key is long enough, paging needs the alert hub.
pub fn validate(cfg: &Day2Config) -> Result<(), (String, String)> {
    let oc = model(cfg)?;
    let Some(sec) = &cfg.oncall else {
        return Ok(());
    };
    let read = day2_oncall::pager::read_secret;
    for (i, u) in sec.users.iter().enumerate() {
        for (j, c) in u.contact_methods.iter().enumerate() {
            let path = format!("oncall.users[{i}].contact_methods[{j}]");
            if let Some(r) = &c.slack {
                read(r).map_err(|m| (format!("{path}.slack"), m))?;
            }
            if let Some(r) = &c.teams {
                read(r).map_err(|m| (format!("{path}.teams"), m))?;
            }
            if let Some(r) = c.webhook.as_ref().and_then(|w| w.bearer_token.as_ref()) {
                read(r).map_err(|m| (format!("{path}.webhook.bearer_token"), m))?;
            }
        }
    }
    if let Some(links) = &oc.ack_links {
        let key = read(&links.secret).map_err(|m| ("oncall.ack_links.secret".to_string(), m))?;
        if key.len() < day2_oncall::acklink::MIN_KEY_LEN {
            return Err((
                "oncall.ack_links.secret".into(),
                format!(
                    "the key must be at least {} characters",
                    day2_oncall::acklink::MIN_KEY_LEN
                ),
            ));
        }
    }
    if !sec.receivers.is_empty() && cfg.alertmanager.is_none() {
        return Err((
            "oncall.receivers".into(),
            "paging receivers need the alert hub (an alertmanager section)".into(),
        ));
    }
    Ok(())
}

/// The runtime's settings from a validated config and its alert hub.
pub fn settings(cfg: &Day2Config, hub: Option<&LoadedHub>) -> anyhow::Result<OnCallSettings> {
    let oncall = model(cfg).map_err(|(p, m)| anyhow::anyhow!("{p}: {m}"))?;
    let external = hub
        .map(|h| h.settings.external_url.clone())
        .unwrap_or_else(|| format!("http://{}", cfg.server.listen));
    let ack = match &oncall.ack_links {
        None => None,
        Some(l) => Some(AckLinkSettings {
            key: day2_oncall::pager::read_secret(&l.secret)
                .map_err(|m| anyhow::anyhow!("oncall.ack_links.secret: {m}"))?
                .into_bytes(),
            base_url: l.base_url.clone().unwrap_or(external),
            valid_for: l.valid_for,
        }),
    };
    Ok(OnCallSettings {
        oncall,
        ack,
        egress: hub.map(|h| h.settings.egress.clone()).unwrap_or_default(),
        smtp: hub.map(|h| h.config.config.global.clone()),
    })
}

/// The runtime behind `/api/day2/v1/oncall` and `/oncall/ack`.
pub struct OnCallApiImpl(pub Arc<OnCallRuntime>);

fn api_err(e: OnCallError) -> Day2ApiError {
    match e {
        OnCallError::NotFound(m) => Day2ApiError::NotFound(m),
        OnCallError::BadRequest(m) => Day2ApiError::BadRequest(m),
        OnCallError::Conflict(m) => Day2ApiError::Conflict(m),
        OnCallError::Link(e) => Day2ApiError::Forbidden(e.to_string()),
        OnCallError::Store(e) => Day2ApiError::Internal(e.to_string()),
    }
}

/// Per schedule, who is on call at `at` (RFC 3339, or a civil time in the
/// named schedule's zone, else UTC; now by default).
pub fn who_at(
    oc: &OnCall,
    at: Option<&str>,
    schedule: Option<&str>,
    now: jiff::Timestamp,
) -> Result<Vec<day2_oncall::OnCallAt>, String> {
    let zone = schedule
        .and_then(|s| oc.schedule(s))
        .map(|s| s.time_zone.clone())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let at = match at {
        Some(t) => who::parse_at(t, &zone).map_err(|e| e.to_string())?,
        None => now,
    };
    who::who(oc, at, schedule).map_err(|e| e.to_string())
}

/// [`who_at`] as the API answers it (with each user's display name).
pub fn who_json(
    oc: &OnCall,
    at: Option<&str>,
    schedule: Option<&str>,
    now: jiff::Timestamp,
) -> Result<Value, String> {
    let list = who_at(oc, at, schedule, now)?;
    Ok(Value::from(
        list.iter()
            .map(|w| {
                let mut v = serde_json::to_value(w).unwrap_or(Value::Null);
                v["user_name"] = Value::from(user_name(oc, w));
                v
            })
            .collect::<Vec<_>>(),
    ))
}

fn user_name(oc: &OnCall, w: &day2_oncall::OnCallAt) -> Option<String> {
    w.user
        .as_ref()
        .and_then(|u| oc.user(u.as_str()))
        .map(|u| u.name.clone())
}

impl day2_server::OnCallApi for OnCallApiImpl {
    fn who(&self, at: Option<&str>, schedule: Option<&str>) -> Result<Value, Day2ApiError> {
        let s = self.0.settings();
        who_json(&s.oncall, at, schedule, self.0.now()).map_err(|m| {
            if m.starts_with("unknown schedule") {
                Day2ApiError::NotFound(m)
            } else {
                Day2ApiError::BadRequest(m)
            }
        })
    }

    fn escalations(&self, state: Option<&str>, fp: Option<&str>) -> Result<Value, Day2ApiError> {
        let open_only = match state.unwrap_or("open") {
            "open" => true,
            "all" => false,
            other => {
                return Err(Day2ApiError::BadRequest(format!(
                    "state: {other:?} is not open or all"
                )));
            }
        };
        self.0.escalations_json(open_only, fp).map_err(api_err)
    }

    fn escalation(&self, id: i64) -> Result<Value, Day2ApiError> {
        let e = self.0.escalation(id).map_err(api_err)?;
        self.0.escalation_json(&e, true).map_err(api_err)
    }

    fn ack(&self, id: i64, by: &str, via: &str) -> Result<Value, Day2ApiError> {
        let r = self.0.ack(id, by, via).map_err(api_err)?;
        Ok(serde_json::to_value(r).unwrap_or(Value::Null))
    }

    fn ack_alert(&self, fp: &str, by: &str, via: &str) -> Result<Value, Day2ApiError> {
        let r = self.0.ack_alert(fp, by, via).map_err(api_err)?;
        Ok(serde_json::to_value(r).unwrap_or(Value::Null))
    }

    fn ack_link_page(&self, token: &str, confirm: bool) -> (u16, String) {
        let rt = &self.0;
        let (claims, esc) = match rt.check_link(token) {
            Ok(x) => x,
            Err(e) => {
                let code = match &e {
                    OnCallError::Link(day2_oncall::acklink::AckLinkError::Expired(_)) => 410,
                    OnCallError::Link(_) => 403,
                    OnCallError::NotFound(_) => 404,
                    _ => 500,
                };
                return (
                    code,
                    page("Acknowledgement link", &html_escape(&e.to_string())),
                );
            }
        };
        let alerts: Vec<day2_oncall::page::PageAlert> =
            serde_json::from_str(&esc.alerts).unwrap_or_default();
        let mut list = String::from("<ul>\n");
        for a in &alerts {
            let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            list.push_str(&format!(
                "<li>[{}] {}</li>\n",
                html_escape(&a.status),
                html_escape(&labels.join(" "))
            ));
        }
        list.push_str("</ul>\n");
        let what = format!(
            "<p>Escalation {} of receiver <code>{}</code> (policy <code>{}</code>), started {}.</p>\n{list}",
            esc.id,
            html_escape(&esc.receiver),
            html_escape(&esc.policy),
            html_escape(
                &jiff::Timestamp::from_millisecond(esc.triggered_at)
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            ),
        );
        if !confirm {
            let state = if esc.resolved_at.is_some() {
                "<p>Its alerts have resolved; there is nothing left to acknowledge.</p>".to_string()
            } else if let Some(by) = &esc.acked_by {
                format!("<p>Already acknowledged by {}.</p>", html_escape(by))
            } else {
                format!(
                    "<form method=\"post\"><button type=\"submit\">Acknowledge as {}</button></form>",
                    html_escape(&claims.user)
                )
            };
            return (200, page("Acknowledge", &format!("{what}{state}")));
        }
        match rt.ack_with_link(token) {
            Ok(r) if r.acknowledged_now => (
                200,
                page(
                    "Acknowledged",
                    &format!(
                        "{what}<p>Acknowledged by {} at {}. Escalation stopped.</p>",
                        html_escape(&r.acked_by),
                        r.acked_at
                    ),
                ),
            ),
            Ok(r) => (
                200,
                page(
                    "Already acknowledged",
                    &format!(
                        "{what}<p>Already acknowledged by {} at {}.</p>",
                        html_escape(&r.acked_by),
                        r.acked_at
                    ),
                ),
            ),
            Err(OnCallError::Conflict(m)) => (409, page("Not acknowledged", &html_escape(&m))),
            Err(e) => (500, page("Not acknowledged", &html_escape(&e.to_string()))),
        }
    }
}

/// A minimal self-contained page (no scripts, no styles, no external assets).
fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><meta name=\"referrer\" content=\"no-referrer\"><title>day2: {t}</title></head>\n<body>\n<h1>{t}</h1>\n{body}\n</body></html>\n",
        t = html_escape(title)
    )
}

// ------------------------------------------------------------ CLI

#[derive(clap::Subcommand)]
pub enum OnCallCommand {
    /// Who is on call (from the config file; no server needed).
    Who(WhoArgs),
}

#[derive(clap::Args)]
pub struct WhoArgs {
    /// day2.yml with the oncall section.
    #[arg(long, short = 'c', env = "DAY2_CONFIG", default_value = "day2.yml")]
    config: PathBuf,
    /// RFC 3339 (2026-03-29T09:00:00Z) or a civil time (2026-03-29 09:00) in the
    /// schedule's zone (UTC without --schedule); default: now.
    #[arg(long)]
    at: Option<String>,
    /// Only this schedule.
    #[arg(long)]
    schedule: Option<String>,
    /// Print JSON (as the API answers) instead of one line per schedule.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: OnCallCommand) -> ExitCode {
    match cmd {
        OnCallCommand::Who(a) => match who_cmd(&a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("day2: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn who_cmd(a: &WhoArgs) -> Result<(), String> {
    let file = a.config.display().to_string();
    let text = day2_yamlerr::read(&a.config).map_err(|e| e.to_string())?;
    let oc = OnCall::parse_document(&text, &file).map_err(|e| e.to_string())?;
    if oc.schedules.is_empty() {
        return Err(format!("{file}: no oncall.schedules"));
    }
    let now = jiff::Timestamp::now();
    if a.json {
        let v = who_json(&oc, a.at.as_deref(), a.schedule.as_deref(), now)?;
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    for w in who_at(&oc, a.at.as_deref(), a.schedule.as_deref(), now)? {
        match user_name(&oc, &w).filter(|n| Some(n.as_str()) != w.user.as_ref().map(|u| u.as_str()))
        {
            Some(name) => println!("{w} [{name}]"),
            None => println!("{w}"),
        }
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct AckArgs {
    /// The escalation id (as pages and `GET /api/day2/v1/oncall/escalations` show it).
    #[arg(required_unless_present_any = ["alert", "incident"], conflicts_with_all = ["alert", "incident"])]
    escalation: Option<i64>,
    /// Acknowledge the escalations of this alert fingerprint instead.
    #[arg(long, conflicts_with = "incident")]
    alert: Option<String>,
    /// Acknowledge this incident (and the escalations of its alerts) instead.
    #[arg(long)]
    incident: Option<String>,
    /// day2's URL.
    #[arg(long, env = "DAY2_URL", default_value = "http://127.0.0.1:9090")]
    url: String,
    /// API token (needed once server.auth.tokens lists any).
    #[arg(long, env = "DAY2_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Who acknowledges (sent as X-Day2-User; honoured from loopback without tokens).
    #[arg(long, env = "USER")]
    user: Option<String>,
}

/// `day2 ack`: acknowledges against a running server.
pub fn ack(a: AckArgs) -> ExitCode {
    let (path, body) = match (&a.escalation, &a.alert, &a.incident) {
        (Some(id), _, _) => (
            format!("/api/day2/v1/oncall/escalations/{id}/ack"),
            json!({ "via": "cli" }),
        ),
        (None, Some(fp), _) => (
            format!("/api/day2/v1/oncall/alerts/{fp}/ack"),
            json!({ "via": "cli" }),
        ),
        (None, None, Some(id)) => (
            format!("/api/day2/v1/incidents/{id}/acknowledge"),
            json!({}),
        ),
        (None, None, None) => unreachable!("clap requires one"),
    };
    let url = format!("{}{path}", a.url.trim_end_matches('/'));
    let run = async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        let mut req = client.post(&url).json(&body);
        if let Some(t) = &a.token {
            req = req.bearer_auth(t);
        }
        if let Some(u) = &a.user {
            req = req.header(day2_server::auth::USER_HEADER, u);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{url}: {}", e.without_url()))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            let msg = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or(text);
            return Err(format!("{status}: {}", msg.trim()));
        }
        Ok(text)
    };
    let Some(rt) = crate::client_runtime() else {
        return ExitCode::FAILURE;
    };
    match rt.block_on(run) {
        Ok(text) => {
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if let Some(id) = &a.incident {
                println!(
                    "incident {id}: acknowledged at {}",
                    v["acknowledged_at"].as_str().unwrap_or("?")
                );
                return ExitCode::SUCCESS;
            }
            let list = match v {
                Value::Array(a) => a,
                other => vec![other],
            };
            for r in list {
                let now = r["acknowledged_now"].as_bool().unwrap_or(false);
                println!(
                    "escalation {}: {} by {} at {}",
                    r["escalation"],
                    if now {
                        "acknowledged"
                    } else {
                        "already acknowledged"
                    },
                    r["acked_by"].as_str().unwrap_or("?"),
                    r["acked_at"].as_str().unwrap_or("?")
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("day2: ack: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Keeps the CLI's output stable when printing who is on call.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_json_reads_civil_times_in_the_schedule_zone() {
        let oc = OnCall::parse_document(
            "oncall:\n  users: [{id: a, name: Ann}, {id: b}]\n  schedules:\n    - name: s\n      time_zone: Europe/Berlin\n      layers:\n        - { users: [a, b], rotation: daily, handoff: \"09:00\", start: 2026-01-05 }\n",
            "t.yml",
        )
        .unwrap();
        let now = "2026-01-05T12:00:00Z".parse().unwrap();
        // 08:30 Berlin is 07:30 UTC: still before the first handoff
        let v = who_json(&oc, Some("2026-01-06 08:30"), Some("s"), now).unwrap();
        assert_eq!(v[0]["user"], "a");
        assert_eq!(v[0]["user_name"], "Ann");
        assert_eq!(v[0]["until"], "2026-01-06T08:00:00Z");
        let v = who_json(&oc, None, None, now).unwrap();
        assert_eq!(v[0]["at"], "2026-01-05T12:00:00Z");
        assert!(who_json(&oc, Some("soon"), None, now).is_err());
        assert!(
            who_json(&oc, None, Some("nope"), now)
                .unwrap_err()
                .starts_with("unknown schedule")
        );
    }
}
