//! The public status page, as JSON (shaped like Atlassian Statuspage's `summary.json`, plus a
//! `history` list) and as a self-contained HTML page.
//!
//! The page is served without authentication, so it is built only from public data:
//! the configured components, incidents that affect components (their public title, or a
//! generic one built from component names, and their public updates — never the internal
//! title, timeline, alerts, labels, service or people), scheduled maintenance, and incidents
//! resolved in the last `history_days` days. The HTML has no scripts, no external assets and
//! no inline `style` attributes; its one `<style>` element is allowed by hash in
//! [`CONTENT_SECURITY_POLICY`]. Every value is HTML-escaped by the template engine.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use jiff::{SignedDuration, Timestamp};
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

use crate::model::{Incident, Status};

/// Status of a status-page component. Serialized with Atlassian Statuspage's names;
/// `degraded` and `maintenance` are accepted as aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentStatus {
    Operational,
    #[serde(rename = "degraded_performance", alias = "degraded")]
    Degraded,
    PartialOutage,
    MajorOutage,
    #[serde(rename = "under_maintenance", alias = "maintenance")]
    Maintenance,
}

impl ComponentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentStatus::Operational => "operational",
            ComponentStatus::Degraded => "degraded_performance",
            ComponentStatus::PartialOutage => "partial_outage",
            ComponentStatus::MajorOutage => "major_outage",
            ComponentStatus::Maintenance => "under_maintenance",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ComponentStatus::Operational => "Operational",
            ComponentStatus::Degraded => "Degraded performance",
            ComponentStatus::PartialOutage => "Partial outage",
            ComponentStatus::MajorOutage => "Major outage",
            ComponentStatus::Maintenance => "Under maintenance",
        }
    }

    /// How bad, for taking the worst of several: an outage during maintenance shows as the
    /// outage.
    fn rank(self) -> u8 {
        match self {
            ComponentStatus::Operational => 0,
            ComponentStatus::Maintenance => 1,
            ComponentStatus::Degraded => 2,
            ComponentStatus::PartialOutage => 3,
            ComponentStatus::MajorOutage => 4,
        }
    }

    fn worst(self, other: Self) -> Self {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }

    /// Statuspage's incident impact for an incident causing this status.
    fn impact(self) -> &'static str {
        match self {
            ComponentStatus::MajorOutage => "critical",
            ComponentStatus::PartialOutage => "major",
            ComponentStatus::Degraded => "minor",
            ComponentStatus::Maintenance => "maintenance",
            ComponentStatus::Operational => "none",
        }
    }
}

/// The `Content-Security-Policy` header value for the HTML page. The `style-src` hash is
/// the SHA-256 of [`STYLE`] (checked by a test).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'sha256-4/axXvKRWrGJpJQxCD6imTOcOadGFRxLTl04x1qHboY='; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page's only stylesheet, inlined in a `<style>` element.
pub const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:46rem;margin:0 auto;padding:1rem;color:#1f2328;background:#fff}h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem}.banner{padding:.8rem 1rem;border-radius:.4rem;color:#fff;background:#1a7f37}.banner h2{margin:0}.banner.minor{background:#9a6700}.banner.major{background:#bc4c00}.banner.critical{background:#cf222e}.banner.maintenance{background:#0969da}ul.components{list-style:none;padding:0;border:1px solid #d0d7de;border-radius:.4rem}ul.components li{display:flex;justify-content:space-between;padding:.6rem 1rem;border-top:1px solid #d0d7de}ul.components li:first-child{border-top:0}.desc{display:block;color:#57606a;font-size:.85rem}.st{font-weight:600}.operational{color:#1a7f37}.degraded_performance{color:#9a6700}.partial_outage{color:#bc4c00}.major_outage{color:#cf222e}.under_maintenance{color:#0969da}article{border-left:.25rem solid #d0d7de;padding-left:1rem;margin:1rem 0}article.critical{border-color:#cf222e}article.major{border-color:#bc4c00}article.minor{border-color:#9a6700}article.maintenance{border-color:#0969da}article h3{margin:.2rem 0}.meta,time{color:#57606a;font-size:.85rem}.upd{margin:.5rem 0}.upd p{margin:.2rem 0;white-space:pre-wrap}footer{margin-top:3rem;color:#57606a;font-size:.8rem}";

/// The page and its components.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusPageConfig {
    pub page: PageConfig,
    #[serde(default)]
    pub components: Vec<ComponentConfig>,
    /// How far back resolved incidents are listed.
    #[serde(default = "default_history_days")]
    pub history_days: u32,
}

fn default_history_days() -> u32 {
    90
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageConfig {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentConfig {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An update posted on a maintenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceUpdate {
    pub at: Timestamp,
    pub body: String,
}

/// A scheduled maintenance window (public by nature).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintenance {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub components: Vec<String>,
    pub scheduled_for: Timestamp,
    pub scheduled_until: Timestamp,
    #[serde(default)]
    pub updates: Vec<MaintenanceUpdate>,
}

impl Maintenance {
    /// `scheduled`, `in_progress` or `completed` at `now` (window is `[for, until)`).
    pub fn status_at(&self, now: Timestamp) -> &'static str {
        if now < self.scheduled_for {
            "scheduled"
        } else if now < self.scheduled_until {
            "in_progress"
        } else {
            "completed"
        }
    }
}

// ---- the public view (summary.json) ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusSummary {
    pub page: PageView,
    pub components: Vec<ComponentView>,
    /// Unresolved incidents.
    pub incidents: Vec<IncidentView>,
    /// Upcoming and in-progress maintenance.
    pub scheduled_maintenances: Vec<MaintenanceView>,
    pub status: OverallStatus,
    /// Incidents resolved within `history_days`, newest first (not in Statuspage's summary).
    pub history: Vec<IncidentView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageView {
    pub id: String,
    pub name: String,
    pub url: String,
    pub time_zone: String,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentView {
    pub id: String,
    pub name: String,
    pub status: ComponentStatus,
    pub description: Option<String>,
    pub position: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentRef {
    pub id: String,
    pub name: String,
    pub status: ComponentStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateView {
    pub status: String,
    pub body: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentView {
    pub id: String,
    pub name: String,
    pub status: Status,
    pub impact: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    /// Newest first, as Statuspage lists them.
    pub incident_updates: Vec<UpdateView>,
    pub components: Vec<ComponentRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceView {
    pub id: String,
    pub name: String,
    pub status: String,
    pub impact: String,
    pub scheduled_for: Timestamp,
    pub scheduled_until: Timestamp,
    pub incident_updates: Vec<UpdateView>,
    pub components: Vec<ComponentRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverallStatus {
    /// `none`, `minor`, `major`, `critical` or `maintenance`.
    pub indicator: String,
    pub description: String,
}

impl StatusSummary {
    /// Builds the public view at `now` from the config, all incidents (any state; those
    /// affecting no configured component are left out) and maintenance windows.
    pub fn build(
        config: &StatusPageConfig,
        incidents: &[Incident],
        maintenances: &[Maintenance],
        now: Timestamp,
    ) -> StatusSummary {
        let names: BTreeMap<&str, &str> = config
            .components
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str()))
            .collect();
        let mut status: BTreeMap<&str, ComponentStatus> = config
            .components
            .iter()
            .map(|c| (c.id.as_str(), ComponentStatus::Operational))
            .collect();

        // Only configured components, in config order.
        let affected = |ids: &[String]| -> Vec<&str> {
            config
                .components
                .iter()
                .map(|c| c.id.as_str())
                .filter(|id| ids.iter().any(|x| x == id))
                .collect()
        };

        let mut open = Vec::new();
        let mut resolved = Vec::new();
        let horizon = now
            .checked_sub(SignedDuration::from_hours(
                24 * i64::from(config.history_days),
            ))
            .unwrap_or(Timestamp::MIN);
        for inc in incidents {
            let comps = affected(&inc.components);
            if comps.is_empty() || inc.created_at > now {
                continue;
            }
            let impact = inc
                .component_impact
                .unwrap_or_else(|| inc.severity.component_impact());
            match inc.resolved_at {
                // Resolved after `now` (a page built for an earlier time, or clock skew):
                // still open at `now`.
                Some(r) if inc.is_resolved() && r <= now => {
                    if r >= horizon {
                        resolved.push((inc, comps, impact));
                    }
                }
                _ => {
                    for c in &comps {
                        if let Some(s) = status.get_mut(c) {
                            *s = s.worst(impact);
                        }
                    }
                    open.push((inc, comps, impact));
                }
            }
        }
        let mut maint = Vec::new();
        for m in maintenances {
            let st = m.status_at(now);
            if st == "completed" {
                continue;
            }
            let comps = affected(&m.components);
            if st == "in_progress" {
                for c in &comps {
                    if let Some(s) = status.get_mut(c) {
                        *s = s.worst(ComponentStatus::Maintenance);
                    }
                }
            }
            maint.push((m, st, comps));
        }

        let cref = |ids: &[&str]| -> Vec<ComponentRef> {
            ids.iter()
                .map(|id| ComponentRef {
                    id: id.to_string(),
                    name: names[id].to_string(),
                    status: status[id],
                })
                .collect()
        };
        let incident_view = |inc: &Incident, comps: &[&str], impact: ComponentStatus| {
            let name = match inc.public_title.as_deref().map(str::trim) {
                Some(t) if !t.is_empty() => t.to_string(),
                _ => {
                    let n: Vec<&str> = comps.iter().map(|c| names[c]).collect();
                    format!("Service disruption: {}", n.join(", "))
                }
            };
            let mut updates: Vec<UpdateView> = inc
                .public_updates
                .iter()
                .filter(|u| u.at <= now)
                .map(|u| UpdateView {
                    status: u.status.as_str().to_string(),
                    body: u.body.clone(),
                    created_at: u.at,
                })
                .collect();
            updates.reverse();
            let updated_at = [Some(inc.created_at), inc.resolved_at]
                .into_iter()
                .flatten()
                .chain(updates.iter().map(|u| u.created_at))
                .max()
                .unwrap_or(inc.created_at);
            IncidentView {
                id: inc.id.clone(),
                name,
                status: if inc.is_resolved() && inc.resolved_at.is_some_and(|r| r > now) {
                    inc.public_updates
                        .iter()
                        .rev()
                        .find(|u| u.at <= now && u.status != Status::Resolved)
                        .map_or(Status::Investigating, |u| u.status)
                } else {
                    inc.status
                },
                impact: impact.impact().to_string(),
                created_at: inc.created_at,
                updated_at,
                resolved_at: inc.resolved_at.filter(|r| inc.is_resolved() && *r <= now),
                incident_updates: updates,
                components: cref(comps),
            }
        };

        let mut incidents_v: Vec<IncidentView> = open
            .iter()
            .map(|(i, c, s)| incident_view(i, c, *s))
            .collect();
        incidents_v.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        let mut history: Vec<IncidentView> = resolved
            .iter()
            .map(|(i, c, s)| incident_view(i, c, *s))
            .collect();
        history.sort_by(|a, b| b.resolved_at.cmp(&a.resolved_at).then(a.id.cmp(&b.id)));
        let mut maint_v: Vec<MaintenanceView> = maint
            .iter()
            .map(|(m, st, comps)| {
                let mut updates: Vec<UpdateView> = m
                    .updates
                    .iter()
                    .filter(|u| u.at <= now)
                    .map(|u| UpdateView {
                        status: st.to_string(),
                        body: u.body.clone(),
                        created_at: u.at,
                    })
                    .collect();
                updates.sort_by_key(|u| std::cmp::Reverse(u.created_at));
                MaintenanceView {
                    id: m.id.clone(),
                    name: m.title.clone(),
                    status: st.to_string(),
                    impact: "maintenance".to_string(),
                    scheduled_for: m.scheduled_for,
                    scheduled_until: m.scheduled_until,
                    incident_updates: updates,
                    components: cref(comps),
                }
            })
            .collect();
        maint_v.sort_by(|a, b| a.scheduled_for.cmp(&b.scheduled_for).then(a.id.cmp(&b.id)));

        let worst = status
            .values()
            .fold(ComponentStatus::Operational, |a, b| a.worst(*b));
        let (indicator, description) = match worst {
            ComponentStatus::MajorOutage => ("critical", "Major System Outage"),
            ComponentStatus::PartialOutage => ("major", "Partial System Outage"),
            ComponentStatus::Degraded => ("minor", "Minor Service Outage"),
            ComponentStatus::Maintenance => ("maintenance", "Service Under Maintenance"),
            ComponentStatus::Operational => ("none", "All Systems Operational"),
        };

        StatusSummary {
            page: PageView {
                id: config.page.id.clone(),
                name: config.page.name.clone(),
                url: config.page.url.clone(),
                time_zone: "Etc/UTC".to_string(),
                updated_at: now,
            },
            components: config
                .components
                .iter()
                .enumerate()
                .map(|(i, c)| ComponentView {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    status: status[c.id.as_str()],
                    description: c.description.clone(),
                    position: i + 1,
                })
                .collect(),
            incidents: incidents_v,
            scheduled_maintenances: maint_v,
            status: OverallStatus {
                indicator: indicator.to_string(),
                description: description.to_string(),
            },
            history,
        }
    }

    /// The JSON document (`summary.json`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("status summary serializes")
    }

    /// The HTML page. Serve it with `Content-Security-Policy: `[`CONTENT_SECURITY_POLICY`].
    pub fn to_html(&self) -> String {
        let env = html_env();
        let tmpl = env
            .get_template(PAGE_NAME)
            .expect("status page template is compiled");
        tmpl.render(self.html_context())
            .expect("status page template renders")
    }

    fn html_context(&self) -> Value {
        let fmt = |t: Timestamp| t.strftime("%Y-%m-%d %H:%M UTC").to_string();
        let upd = |u: &UpdateView| {
            minijinja::context! {
                status => title_case(&u.status),
                body => u.body.clone(),
                at => fmt(u.created_at),
                iso => u.created_at.to_string(),
            }
        };
        let comp_names = |cs: &[ComponentRef]| {
            cs.iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let incident = |i: &IncidentView| {
            minijinja::context! {
                name => i.name.clone(),
                impact => i.impact.clone(),
                status => title_case(i.status.as_str()),
                components => comp_names(&i.components),
                opened => fmt(i.created_at),
                resolved => i.resolved_at.map(fmt),
                until => None::<String>,
                updates => i.incident_updates.iter().map(upd).collect::<Vec<_>>(),
            }
        };
        let maint = |m: &MaintenanceView| {
            minijinja::context! {
                name => m.name.clone(),
                impact => "maintenance",
                status => title_case(&m.status),
                components => comp_names(&m.components),
                opened => fmt(m.scheduled_for),
                until => fmt(m.scheduled_until),
                updates => m.incident_updates.iter().map(upd).collect::<Vec<_>>(),
            }
        };
        let sections = [
            (
                "Current incidents",
                self.incidents.iter().map(incident).collect::<Vec<_>>(),
            ),
            (
                "Scheduled maintenance",
                self.scheduled_maintenances.iter().map(maint).collect(),
            ),
        ];
        minijinja::context! {
            css => Value::from_safe_string(STYLE.to_string()),
            page => minijinja::context! { name => self.page.name.clone(), url => self.page.url.clone() },
            status => minijinja::context! {
                indicator => self.status.indicator.clone(),
                description => self.status.description.clone(),
            },
            components => self.components.iter().map(|c| minijinja::context! {
                name => c.name.clone(),
                description => c.description.clone(),
                status => c.status.as_str(),
                label => c.status.label(),
            }).collect::<Vec<_>>(),
            sections => sections.iter().filter(|(_, v)| !v.is_empty()).map(|(t, v)| minijinja::context! {
                title => *t, items => v,
            }).collect::<Vec<_>>(),
            history => self.history.iter().map(incident).collect::<Vec<_>>(),
            updated => fmt(self.page.updated_at),
        }
    }
}

fn title_case(s: &str) -> String {
    let s = s.replace('_', " ");
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => s,
    }
}

const PAGE_NAME: &str = "statuspage.html";

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{ page.name }} status</title>
<style>{{ css }}</style>
</head>
<body>
<header><h1>{{ page.name }}</h1></header>
<main>
<section class="banner {{ status.indicator }}"><h2>{{ status.description }}</h2></section>
<h2>Components</h2>
<ul class="components">
{%- for c in components %}
<li><span><span class="name">{{ c.name }}</span>{% if c.description %}<span class="desc">{{ c.description }}</span>{% endif %}</span><span class="st {{ c.status }}">{{ c.label }}</span></li>
{%- endfor %}
</ul>
{%- for s in sections %}
<h2>{{ s.title }}</h2>
{%- for i in s.items %}
<article class="{{ i.impact }}">
<h3>{{ i.name }}</h3>
<div class="meta">{{ i.status }}{% if i.components %} · {{ i.components }}{% endif %} · {% if i.until %}{{ i.opened }} to {{ i.until }}{% else %}since {{ i.opened }}{% endif %}</div>
{%- for u in i.updates %}
<div class="upd"><strong>{{ u.status }}</strong> <time datetime="{{ u.iso }}">{{ u.at }}</time><p>{{ u.body }}</p></div>
{%- endfor %}
</article>
{%- endfor %}
{%- endfor %}
<h2>Past incidents</h2>
{%- if history %}
{%- for i in history %}
<article class="{{ i.impact }}">
<h3>{{ i.name }}</h3>
<div class="meta">Resolved {{ i.resolved }}{% if i.components %} · {{ i.components }}{% endif %}</div>
{%- for u in i.updates %}
<div class="upd"><strong>{{ u.status }}</strong> <time datetime="{{ u.iso }}">{{ u.at }}</time><p>{{ u.body }}</p></div>
{%- endfor %}
</article>
{%- endfor %}
{%- else %}
<p class="meta">No incidents reported.</p>
{%- endif %}
</main>
<footer>Updated {{ updated }}</footer>
</body>
</html>
"#;

fn html_env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.add_template(PAGE_NAME, PAGE)
            .expect("status page template compiles");
        env
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Actor, Severity};

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn config(names: [&str; 3]) -> StatusPageConfig {
        StatusPageConfig {
            page: PageConfig {
                id: "p1".into(),
                name: names[0].into(),
                url: "https://status.example.com".into(),
            },
            components: vec![
                ComponentConfig {
                    id: "api".into(),
                    name: names[1].into(),
                    description: Some(names[2].into()),
                },
                ComponentConfig {
                    id: "web".into(),
                    name: "Website".into(),
                    description: None,
                },
                ComponentConfig {
                    id: "db".into(),
                    name: "Database".into(),
                    description: None,
                },
            ],
            history_days: 90,
        }
    }

    fn incident(id: &str, sev: Severity, comps: &[&str], opened: &str) -> Incident {
        let mut i = Incident::open(
            id,
            "INTERNAL: db-7 disk full, ask bob",
            sev,
            t(opened),
            Actor::user("alice"),
        );
        i.service = Some("secret-service".into());
        i.set_components(
            comps.iter().map(|c| c.to_string()).collect(),
            t(opened),
            Actor::user("alice"),
        )
        .unwrap();
        i
    }

    const NOW: &str = "2026-06-01T12:00:00Z";

    #[test]
    fn components_take_worst_open_incident_and_maintenance() {
        let cfg = config(["Example", "API", "The API"]);
        let a = incident("i1", Severity::Sev3, &["api"], "2026-06-01T10:00:00Z");
        let b = incident(
            "i2",
            Severity::Sev1,
            &["api", "web"],
            "2026-06-01T11:00:00Z",
        );
        let mut resolved = incident("i3", Severity::Sev1, &["db"], "2026-05-01T10:00:00Z");
        resolved
            .resolve(t("2026-05-01T11:00:00Z"), Actor::user("bob"))
            .unwrap();
        let mut old = incident("i4", Severity::Sev2, &["db"], "2026-01-01T10:00:00Z");
        old.resolve(t("2026-01-01T11:00:00Z"), Actor::user("bob"))
            .unwrap();
        let hidden = incident("i5", Severity::Sev1, &[], "2026-06-01T11:00:00Z");
        let maint = Maintenance {
            id: "m1".into(),
            title: "DB upgrade".into(),
            components: vec!["db".into()],
            scheduled_for: t("2026-06-01T11:30:00Z"),
            scheduled_until: t("2026-06-01T13:00:00Z"),
            updates: vec![],
        };
        let later = Maintenance {
            id: "m2".into(),
            scheduled_for: t("2026-06-10T00:00:00Z"),
            scheduled_until: t("2026-06-10T01:00:00Z"),
            ..maint.clone()
        };
        let done = Maintenance {
            id: "m3".into(),
            scheduled_for: t("2026-05-10T00:00:00Z"),
            scheduled_until: t("2026-05-10T01:00:00Z"),
            ..maint.clone()
        };
        let s = StatusSummary::build(
            &cfg,
            &[a, b, resolved, old, hidden],
            &[later, maint, done],
            t(NOW),
        );
        let st: Vec<_> = s.components.iter().map(|c| c.status).collect();
        assert_eq!(
            st,
            vec![
                ComponentStatus::MajorOutage,
                ComponentStatus::MajorOutage,
                ComponentStatus::Maintenance
            ]
        );
        assert_eq!(s.status.indicator, "critical");
        let ids: Vec<_> = s.incidents.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, vec!["i2", "i1"]);
        assert_eq!(s.incidents[0].name, "Service disruption: API, Website");
        assert_eq!(s.incidents[1].impact, "minor");
        let h: Vec<_> = s.history.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(h, vec!["i3"], "90-day window");
        let m: Vec<_> = s
            .scheduled_maintenances
            .iter()
            .map(|m| (m.id.as_str(), m.status.as_str()))
            .collect();
        assert_eq!(m, vec![("m1", "in_progress"), ("m2", "scheduled")]);
    }

    #[test]
    fn all_operational_and_maintenance_only() {
        let cfg = config(["Example", "API", "The API"]);
        let s = StatusSummary::build(&cfg, &[], &[], t(NOW));
        assert_eq!(s.status.indicator, "none");
        assert_eq!(s.status.description, "All Systems Operational");
        let maint = Maintenance {
            id: "m1".into(),
            title: "DB upgrade".into(),
            components: vec!["db".into()],
            scheduled_for: t("2026-06-01T11:30:00Z"),
            scheduled_until: t("2026-06-01T13:00:00Z"),
            updates: vec![],
        };
        let s = StatusSummary::build(&cfg, &[], &[maint], t(NOW));
        assert_eq!(s.status.indicator, "maintenance");
    }

    #[test]
    fn json_is_shaped_like_statuspage_and_has_no_internal_data() {
        let cfg = config(["Example", "API", "The API"]);
        let mut i = incident("i1", Severity::Sev2, &["api"], "2026-06-01T10:00:00Z");
        i.assign_role(
            crate::model::Role::Commander,
            Some("carol"),
            t("2026-06-01T10:01:00Z"),
            Actor::user("alice"),
        )
        .unwrap();
        i.add_note(
            "root cause: bob's script",
            t("2026-06-01T10:02:00Z"),
            Actor::user("carol"),
        )
        .unwrap();
        i.post_public_update(
            Some("Elevated API errors"),
            "We are investigating.",
            t("2026-06-01T10:03:00Z"),
            Actor::user("carol"),
        )
        .unwrap();
        let s = StatusSummary::build(&cfg, &[i], &[], t(NOW));
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        for k in [
            "page",
            "components",
            "incidents",
            "scheduled_maintenances",
            "status",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert_eq!(v["status"]["indicator"], "major");
        assert_eq!(v["components"][0]["status"], "partial_outage");
        assert_eq!(v["incidents"][0]["name"], "Elevated API errors");
        assert_eq!(
            v["incidents"][0]["incident_updates"][0]["body"],
            "We are investigating."
        );
        let text = s.to_json() + &s.to_html();
        for secret in [
            "INTERNAL",
            "bob",
            "carol",
            "alice",
            "secret-service",
            "SEV2",
        ] {
            assert!(!text.contains(secret), "leaked {secret}");
        }
        let back: StatusSummary = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn everything_is_escaped_in_html() {
        const EVIL: [&str; 3] = [
            "<script>alert(1)</script>",
            "\"onmouseover=alert(1) x=\"",
            "</style><b>x",
        ];
        let cfg = config([EVIL[0], EVIL[1], EVIL[2]]);
        let mut i = incident("i1", Severity::Sev1, &["api"], "2026-06-01T10:00:00Z");
        i.post_public_update(
            Some(EVIL[2]),
            EVIL[0],
            t("2026-06-01T10:03:00Z"),
            Actor::user("a"),
        )
        .unwrap();
        i.post_public_update(None, EVIL[1], t("2026-06-01T10:04:00Z"), Actor::user("a"))
            .unwrap();
        let mut h = incident("i2", Severity::Sev3, &["api"], "2026-05-01T10:00:00Z");
        h.post_public_update(
            Some(EVIL[0]),
            EVIL[2],
            t("2026-05-01T10:03:00Z"),
            Actor::user("a"),
        )
        .unwrap();
        h.resolve(t("2026-05-01T11:00:00Z"), Actor::user("a"))
            .unwrap();
        let m = Maintenance {
            id: "m1".into(),
            title: EVIL[1].into(),
            components: vec!["api".into()],
            scheduled_for: t("2026-06-02T00:00:00Z"),
            scheduled_until: t("2026-06-02T01:00:00Z"),
            updates: vec![MaintenanceUpdate {
                at: t("2026-06-01T00:00:00Z"),
                body: EVIL[2].into(),
            }],
        };
        let html = StatusSummary::build(&cfg, &[i, h], &[m], t(NOW)).to_html();
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("\"onmouseover"), "{html}");
        assert!(!html.contains("onmouseover=alert(1) x=\""), "{html}");
        assert_eq!(html.matches("</style>").count(), 1, "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"));
        assert!(html.contains("&quot;onmouseover=alert(1) x=&quot;"));
        assert!(html.contains("&lt;&#x2f;style&gt;&lt;b&gt;x"));
        // Every place got its value: page name (title and h1), component name and
        // description, incident titles, updates, maintenance title and update.
        assert!(
            html.matches("&lt;script&gt;alert(1)").count() >= 4,
            "{html}"
        );
        assert!(html.matches("&quot;onmouseover").count() >= 3, "{html}");
        assert!(html.matches("&lt;&#x2f;style&gt;").count() >= 4, "{html}");
        // No script, no external assets, no inline style attributes.
        for bad in [
            "<script", "src=", "href=", "style=", "<link", "@import", "url(",
        ] {
            assert!(!html.contains(bad), "{bad}");
        }
    }

    #[test]
    fn csp_hash_matches_the_style() {
        let expected = format!("'sha256-{}'", base64(&sha256(STYLE.as_bytes())));
        assert!(
            CONTENT_SECURITY_POLICY.contains(&format!("style-src {expected};")),
            "update CONTENT_SECURITY_POLICY to {expected}"
        );
        assert!(CONTENT_SECURITY_POLICY.starts_with("default-src 'none';"));
        let html = StatusSummary::build(&config(["a", "b", "c"]), &[], &[], t(NOW)).to_html();
        assert!(html.contains(&format!("<style>{STYLE}</style>")));
    }

    #[test]
    fn component_status_names_follow_statuspage_with_aliases() {
        let names: Vec<String> = [
            ComponentStatus::Operational,
            ComponentStatus::Degraded,
            ComponentStatus::PartialOutage,
            ComponentStatus::MajorOutage,
            ComponentStatus::Maintenance,
        ]
        .iter()
        .map(|s| {
            let j = serde_json::to_string(s).unwrap();
            assert_eq!(j, format!("\"{}\"", s.as_str()));
            j
        })
        .collect();
        assert_eq!(names[1], "\"degraded_performance\"");
        let d: ComponentStatus = serde_json::from_str("\"degraded\"").unwrap();
        assert_eq!(d, ComponentStatus::Degraded);
        let m: ComponentStatus = serde_json::from_str("\"maintenance\"").unwrap();
        assert_eq!(m, ComponentStatus::Maintenance);
    }

    #[test]
    fn sha256_known_answer() {
        assert_eq!(
            base64(&sha256(b"abc")),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }

    // Test-only SHA-256 and base64 to check the CSP hash without a dependency.
    fn sha256(data: &[u8]) -> [u8; 32] {
        const K: [u32; 64] = [
            0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
            0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
            0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
            0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
            0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
            0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
            0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
            0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
            0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
            0xc67178f2,
        ];
        let mut h: [u32; 8] = [
            0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
            0x5be0cd19,
        ];
        let mut msg = data.to_vec();
        msg.push(0x80);
        while msg.len() % 64 != 56 {
            msg.push(0);
        }
        msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
        for block in msg.chunks(64) {
            let mut w = [0u32; 64];
            for i in 0..16 {
                w[i] = u32::from_be_bytes(block[i * 4..i * 4 + 4].try_into().unwrap());
            }
            for i in 16..64 {
                let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
                let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
                w[i] = w[i - 16]
                    .wrapping_add(s0)
                    .wrapping_add(w[i - 7])
                    .wrapping_add(s1);
            }
            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
            for i in 0..64 {
                let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
                let ch = (e & f) ^ (!e & g);
                let t1 = hh
                    .wrapping_add(s1)
                    .wrapping_add(ch)
                    .wrapping_add(K[i])
                    .wrapping_add(w[i]);
                let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
                let maj = (a & b) ^ (a & c) ^ (b & c);
                let t2 = s0.wrapping_add(maj);
                hh = g;
                g = f;
                f = e;
                e = d.wrapping_add(t1);
                d = c;
                c = b;
                b = a;
                a = t1.wrapping_add(t2);
            }
            for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
                *x = x.wrapping_add(y);
            }
        }
        let mut out = [0u8; 32];
        for (i, x) in h.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
        }
        out
    }

    fn base64(data: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}
