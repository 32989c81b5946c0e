//! Incident state: each incident as one JSON document (the incident crate's
//! serde form, timeline included) with the columns queries need, the alerts
//! linked to it, which alert group opened it automatically, and the alert-hub
//! notifications already applied (so a notification handed over twice changes
//! nothing). Scheduled maintenance for the status page is stored the same way.
//!
//! Rows are plain data; the incident runtime decides what they mean.

use rusqlite::{OptionalExtension, params};

use crate::{Result, Store};

/// Migrations of the `incident` component (see `COMPONENTS`).
pub const MIGRATIONS: &[&str] = &[r#"
    CREATE TABLE incidents (
        id          TEXT PRIMARY KEY,
        number      INTEGER NOT NULL UNIQUE,
        status      TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        resolved_at INTEGER,
        doc         TEXT NOT NULL
    );
    CREATE INDEX incidents_open ON incidents (status, created_at);
    CREATE TABLE incident_alerts (
        incident_id TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        PRIMARY KEY (incident_id, fingerprint)
    );
    CREATE INDEX incident_alerts_fp ON incident_alerts (fingerprint);
    CREATE TABLE incident_groups (
        receiver    TEXT NOT NULL,
        group_key   TEXT NOT NULL,
        incident_id TEXT NOT NULL,
        PRIMARY KEY (receiver, group_key, incident_id)
    );
    CREATE TABLE incident_notifications (
        outbox_id INTEGER PRIMARY KEY,
        at        INTEGER NOT NULL
    );
    CREATE TABLE status_maintenances (
        id              TEXT PRIMARY KEY,
        scheduled_until INTEGER NOT NULL,
        doc             TEXT NOT NULL
    );
    "#];

/// A stored incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentRow {
    pub id: String,
    /// 1, 2, ...: the id's number.
    pub number: i64,
    pub status: String,
    pub created_at: i64,
    pub resolved_at: Option<i64>,
    /// The incident as JSON.
    pub doc: String,
}

/// One write of an incident: the row, the alerts linked to it by now, and the
/// alert group it belongs to (automatic incidents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentWrite {
    pub row: IncidentRow,
    pub fingerprints: Vec<String>,
    /// `(receiver, group_key)`.
    pub group: Option<(String, String)>,
}

fn incident(r: &rusqlite::Row) -> rusqlite::Result<IncidentRow> {
    Ok(IncidentRow {
        id: r.get(0)?,
        number: r.get(1)?,
        status: r.get(2)?,
        created_at: r.get(3)?,
        resolved_at: r.get(4)?,
        doc: r.get(5)?,
    })
}

const COLS: &str = "id, number, status, created_at, resolved_at, doc";

fn write_one(tx: &rusqlite::Transaction, w: &IncidentWrite) -> Result<()> {
    let r = &w.row;
    tx.execute(
        "INSERT INTO incidents (id, number, status, created_at, resolved_at, doc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(id) DO UPDATE SET status = ?3, created_at = ?4, resolved_at = ?5, doc = ?6",
        params![r.id, r.number, r.status, r.created_at, r.resolved_at, r.doc],
    )?;
    let mut st = tx.prepare_cached(
        "INSERT OR IGNORE INTO incident_alerts (incident_id, fingerprint) VALUES (?1, ?2)",
    )?;
    for f in &w.fingerprints {
        st.execute(params![r.id, f])?;
    }
    if let Some((receiver, group)) = &w.group {
        tx.execute(
            "INSERT OR IGNORE INTO incident_groups (receiver, group_key, incident_id) VALUES (?1, ?2, ?3)",
            params![receiver, group, r.id],
        )?;
    }
    Ok(())
}

impl Store {
    /// The number the next incident gets.
    pub fn incident_next_number(&self) -> Result<i64> {
        Ok(self.conn.lock().query_row(
            "SELECT coalesce(max(number), 0) + 1 FROM incidents",
            [],
            |r| r.get(0),
        )?)
    }

    /// Writes incidents in one transaction; with `outbox_id`, also records that
    /// notification as applied (see [`Store::incident_notification_applied`]).
    pub fn incident_write(
        &self,
        writes: &[IncidentWrite],
        outbox_id: Option<(i64, i64)>,
    ) -> Result<()> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        for w in writes {
            write_one(&tx, w)?;
        }
        if let Some((id, at)) = outbox_id {
            tx.execute(
                "INSERT OR IGNORE INTO incident_notifications (outbox_id, at) VALUES (?1, ?2)",
                params![id, at],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Whether an alert-hub notification was applied already.
    pub fn incident_notification_applied(&self, outbox_id: i64) -> Result<bool> {
        Ok(self
            .conn
            .lock()
            .query_row(
                "SELECT 1 FROM incident_notifications WHERE outbox_id = ?1",
                [outbox_id],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    pub fn incident_get(&self, id: &str) -> Result<Option<IncidentRow>> {
        Ok(self
            .conn
            .lock()
            .query_row(
                &format!("SELECT {COLS} FROM incidents WHERE id = ?1"),
                [id],
                incident,
            )
            .optional()?)
    }

    /// Incidents newest first: unresolved ones, and those resolved at or after
    /// `resolved_since` (all resolved ones with `None`).
    pub fn incident_list(
        &self,
        resolved_since: Option<i64>,
        limit: usize,
    ) -> Result<Vec<IncidentRow>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {COLS} FROM incidents
             WHERE resolved_at IS NULL OR ?1 IS NULL OR resolved_at >= ?1
             ORDER BY number DESC LIMIT ?2"
        ))?;
        let rows = st
            .query_map(params![resolved_since, limit as i64], incident)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Unresolved incidents linked to any of the alerts.
    pub fn incident_open_for_alerts(&self, fingerprints: &[String]) -> Result<Vec<IncidentRow>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {COLS} FROM incidents i
             WHERE resolved_at IS NULL AND EXISTS (
               SELECT 1 FROM incident_alerts a WHERE a.incident_id = i.id AND a.fingerprint = ?1)"
        ))?;
        let mut out: Vec<IncidentRow> = Vec::new();
        for f in fingerprints {
            for r in st.query_map([f], incident)? {
                let r = r?;
                if !out.iter().any(|o| o.id == r.id) {
                    out.push(r);
                }
            }
        }
        out.sort_by_key(|r| r.number);
        Ok(out)
    }

    /// The unresolved incident an alert group opened, if any.
    pub fn incident_open_for_group(
        &self,
        receiver: &str,
        group_key: &str,
    ) -> Result<Option<IncidentRow>> {
        Ok(self
            .conn
            .lock()
            .query_row(
                &format!(
                    "SELECT {COLS} FROM incidents i
                     WHERE resolved_at IS NULL AND EXISTS (
                       SELECT 1 FROM incident_groups g
                       WHERE g.incident_id = i.id AND g.receiver = ?1 AND g.group_key = ?2)
                     ORDER BY number DESC LIMIT 1"
                ),
                params![receiver, group_key],
                incident,
            )
            .optional()?)
    }

    /// Creates or replaces a scheduled maintenance.
    pub fn maintenance_put(&self, id: &str, scheduled_until: i64, doc: &str) -> Result<()> {
        self.conn.lock().execute(
            "INSERT INTO status_maintenances (id, scheduled_until, doc) VALUES (?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET scheduled_until = ?2, doc = ?3",
            params![id, scheduled_until, doc],
        )?;
        Ok(())
    }

    pub fn maintenance_delete(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn
            .lock()
            .execute("DELETE FROM status_maintenances WHERE id = ?1", [id])?
            > 0)
    }

    /// Maintenance documents that end at or after `until_after`.
    pub fn maintenance_list(&self, until_after: i64) -> Result<Vec<String>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(
            "SELECT doc FROM status_maintenances WHERE scheduled_until >= ?1 ORDER BY id",
        )?;
        let rows = st
            .query_map([until_after], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: &str, number: i64, resolved_at: Option<i64>, fps: &[&str]) -> IncidentWrite {
        IncidentWrite {
            row: IncidentRow {
                id: id.into(),
                number,
                status: if resolved_at.is_some() {
                    "resolved"
                } else {
                    "investigating"
                }
                .into(),
                created_at: 1000,
                resolved_at,
                doc: format!("{{\"id\":\"{id}\"}}"),
            },
            fingerprints: fps.iter().map(|s| s.to_string()).collect(),
            group: Some(("pager".into(), format!("g{number}"))),
        }
    }

    #[test]
    fn incidents_by_alert_group_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_dir(dir.path()).unwrap();
        assert_eq!(s.incident_next_number().unwrap(), 1);
        s.incident_write(&[w("INC-1", 1, None, &["fa", "fb"])], Some((7, 1000)))
            .unwrap();
        s.incident_write(&[w("INC-2", 2, Some(5000), &["fb"])], None)
            .unwrap();
        assert_eq!(s.incident_next_number().unwrap(), 3);
        assert!(s.incident_notification_applied(7).unwrap());
        assert!(!s.incident_notification_applied(8).unwrap());
        let open = s
            .incident_open_for_alerts(&["fb".into(), "fa".into()])
            .unwrap();
        assert_eq!(
            open.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["INC-1"]
        );
        assert_eq!(
            s.incident_open_for_group("pager", "g1")
                .unwrap()
                .unwrap()
                .id,
            "INC-1"
        );
        assert!(s.incident_open_for_group("pager", "g2").unwrap().is_none());
        assert_eq!(s.incident_list(None, 10).unwrap().len(), 2);
        assert_eq!(s.incident_list(Some(6000), 10).unwrap().len(), 1);
        // an update keeps the number and adds links
        s.incident_write(&[w("INC-1", 1, Some(9000), &["fc"])], None)
            .unwrap();
        let r = s.incident_get("INC-1").unwrap().unwrap();
        assert_eq!((r.number, r.resolved_at), (1, Some(9000)));
        assert!(
            s.incident_open_for_alerts(&["fa".into()])
                .unwrap()
                .is_empty()
        );

        s.maintenance_put("m1", 2000, "{}").unwrap();
        s.maintenance_put("m2", 9000, "{\"x\":1}").unwrap();
        assert_eq!(s.maintenance_list(5000).unwrap(), ["{\"x\":1}"]);
        assert!(s.maintenance_delete("m2").unwrap());
        assert!(!s.maintenance_delete("m2").unwrap());
    }
}
