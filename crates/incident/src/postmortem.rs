//! A postmortem draft in Markdown, built from an incident and its timeline.
//!
//! Deterministic: the same incident gives the same bytes (times in UTC, no "now"). Facts
//! come from the incident; sections that need people (root cause, action items, ...) are
//! left as headings with a prompt.

use std::fmt::Write;

use jiff::Timestamp;

use crate::metrics::{human_duration, time_to_acknowledge, time_to_resolve};
use crate::model::{Incident, Role};

const TODO: &str = "_To be written._";

/// Drafts the postmortem for `inc`. Works for unresolved incidents too (the impact window
/// and time to resolve then say "ongoing").
pub fn draft_postmortem(inc: &Incident) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# Postmortem: {}", inline(&inc.title));
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "_Draft generated from incident {} by day2. Facts come from the timeline; edit the sections marked for humans._",
        inline(&inc.id)
    );
    let _ = writeln!(w);

    // Facts.
    let _ = writeln!(w, "| Field | Value |");
    let _ = writeln!(w, "|---|---|");
    let mut row = |k: &str, v: &str| {
        let _ = writeln!(w, "| {k} | {} |", cell(v));
    };
    row("Incident", &inc.id);
    row("Severity", inc.severity.as_str());
    row("Status", inc.status.as_str());
    row("Service", inc.service.as_deref().unwrap_or("—"));
    row("Opened", &ts(inc.created_at));
    row(
        "Acknowledged",
        &inc.acknowledged_at.map_or("—".to_string(), ts),
    );
    row(
        "Resolved",
        &inc.resolved_at.map_or("ongoing".to_string(), ts),
    );
    let window = match inc.resolved_at {
        Some(r) => format!(
            "{} to {} ({})",
            ts(inc.created_at),
            ts(r),
            human_duration(r.duration_since(inc.created_at))
        ),
        None => format!("{} to ongoing", ts(inc.created_at)),
    };
    row("Impact window", &window);
    row(
        "Time to acknowledge",
        &time_to_acknowledge(inc).map_or("not acknowledged".to_string(), human_duration),
    );
    row(
        "Time to resolve",
        &time_to_resolve(inc).map_or("not resolved".to_string(), human_duration),
    );
    for role in [Role::Commander, Role::CommunicationsLead] {
        row(role.title(), inc.roles.get(role).unwrap_or("unassigned"));
    }
    row(
        "Affected components",
        &if inc.components.is_empty() {
            "—".to_string()
        } else {
            inc.components.join(", ")
        },
    );
    let _ = writeln!(w);

    // Summary: a factual sentence, then room for people.
    let _ = writeln!(w, "## Summary");
    let _ = writeln!(w);
    let mut summary = format!("{} incident", inc.severity);
    if let Some(s) = &inc.service {
        let _ = write!(summary, " on {}", inline(s));
    }
    let _ = write!(summary, ", opened {}", ts(inc.created_at));
    if !inc.alerts.is_empty() {
        let mut names: Vec<&str> = inc
            .alerts
            .iter()
            .map(|a| a.alertname())
            .filter(|n| !n.is_empty())
            .collect();
        names.sort_unstable();
        names.dedup();
        let _ = write!(
            summary,
            " from {} alert{}",
            inc.alerts.len(),
            if inc.alerts.len() == 1 { "" } else { "s" }
        );
        if !names.is_empty() {
            let _ = write!(summary, " ({})", inline(&names.join(", ")));
        }
    }
    match (time_to_acknowledge(inc), time_to_resolve(inc)) {
        (Some(a), Some(r)) => {
            let _ = write!(
                summary,
                "; acknowledged after {} and resolved after {}.",
                human_duration(a),
                human_duration(r)
            );
        }
        (None, Some(r)) => {
            let _ = write!(
                summary,
                "; resolved after {} without acknowledgement.",
                human_duration(r)
            );
        }
        (Some(a), None) => {
            let _ = write!(
                summary,
                "; acknowledged after {}, not resolved yet.",
                human_duration(a)
            );
        }
        (None, None) => summary.push_str("; not acknowledged, not resolved yet."),
    }
    let _ = writeln!(w, "{summary}");
    let _ = writeln!(w);
    let _ = writeln!(w, "{TODO}");
    let _ = writeln!(w);

    let _ = writeln!(w, "## Impact");
    let _ = writeln!(w);
    let _ = writeln!(w, "Who and what was affected, how badly, for how long.");
    let _ = writeln!(w);
    let _ = writeln!(w, "{TODO}");
    let _ = writeln!(w);

    // Timeline.
    let _ = writeln!(w, "## Timeline");
    let _ = writeln!(w);
    let _ = writeln!(w, "All times UTC.");
    let _ = writeln!(w);
    let _ = writeln!(w, "| Time | Event | Actor | Details |");
    let _ = writeln!(w, "|---|---|---|---|");
    for e in &inc.timeline {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} |",
            ts(e.at),
            e.kind,
            cell(&e.actor.to_string()),
            cell(&e.text)
        );
    }
    let _ = writeln!(w);

    if !inc.alerts.is_empty() {
        let _ = writeln!(w, "## Linked alerts");
        let _ = writeln!(w);
        let _ = writeln!(w, "| Fingerprint | Labels |");
        let _ = writeln!(w, "|---|---|");
        for a in &inc.alerts {
            let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            let _ = writeln!(
                w,
                "| {} | {} |",
                cell(&a.fingerprint),
                cell(&labels.join(", "))
            );
        }
        let _ = writeln!(w);
    }

    for (heading, prompt) in [
        (
            "Root cause",
            "What failed and why; the chain of causes, not a person.",
        ),
        (
            "Contributing factors",
            "What made it more likely, larger or longer.",
        ),
        (
            "What went well",
            "Detection, response and tools that helped.",
        ),
        ("What went poorly", "Where time or information was lost."),
    ] {
        let _ = writeln!(w, "## {heading}");
        let _ = writeln!(w);
        let _ = writeln!(w, "{prompt}");
        let _ = writeln!(w);
        let _ = writeln!(w, "{TODO}");
        let _ = writeln!(w);
    }
    let _ = writeln!(w, "## Action items");
    let _ = writeln!(w);
    let _ = writeln!(w, "| Action | Owner | Due | Ticket |");
    let _ = writeln!(w, "|---|---|---|---|");
    let _ = writeln!(w, "|  |  |  |  |");
    out
}

fn ts(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// Text for a table cell: `|` escaped, line breaks as `<br>`, and HTML metacharacters
/// escaped so that a Markdown renderer which passes HTML through renders text, not markup.
pub fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '|' => out.push_str("\\|"),
            '\\' => out.push_str("\\\\"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("<br>");
            }
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out
}

/// Text on one line outside a table (headings, sentences): line breaks become spaces and
/// HTML metacharacters are escaped.
fn inline(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\r' | '\n' => out.push(' '),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Actor, Severity};

    #[test]
    fn cells_escape_pipes_newlines_and_html() {
        assert_eq!(cell("a|b"), "a\\|b");
        assert_eq!(cell("l1\nl2\r\nl3"), "l1<br>l2<br>l3");
        assert_eq!(cell("<script>&"), "&lt;script&gt;&amp;");
        assert_eq!(cell(r"C:\x"), r"C:\\x");
    }

    #[test]
    fn unresolved_incident_says_ongoing() {
        let at: Timestamp = "2026-01-01T10:00:00Z".parse().unwrap();
        let inc = Incident::open(
            "i-1",
            "Title\nwith | pipe",
            Severity::Sev3,
            at,
            Actor::user("a"),
        );
        let md = draft_postmortem(&inc);
        assert!(md.starts_with("# Postmortem: Title with | pipe\n"));
        assert!(md.contains("| Time to resolve | not resolved |"));
        assert!(md.contains("2026-01-01 10:00:00 to ongoing"));
        assert!(md.contains("| Details |"));
        assert!(md.contains("Incident opened as SEV3: Title<br>with \\| pipe |"));
        assert_eq!(md, draft_postmortem(&inc), "deterministic");
    }
}
