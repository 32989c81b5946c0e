//! Autoscaling (component `autoscale`): every evaluation of a policy (the
//! metric, the replica count found, the raw recommendation, the count
//! decided and what was done). The history is the audit of scaling and the
//! memory of the stabilization windows across restarts.

use rusqlite::params;

use crate::{Result, Store};

/// Migrations of the `autoscale` component (index + 1 is the version).
pub const MIGRATIONS: &[&str] = &[r#"
    CREATE TABLE autoscale_decisions (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        policy         TEXT NOT NULL,
        at             INTEGER NOT NULL,
        metric         REAL,
        current        INTEGER,
        recommendation INTEGER,
        desired        INTEGER,
        action         TEXT NOT NULL,
        reason         TEXT NOT NULL
    );
    CREATE INDEX autoscale_decisions_policy ON autoscale_decisions (policy, at);
    CREATE INDEX autoscale_decisions_action ON autoscale_decisions (action, at);
    "#];

/// One evaluation of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleDecisionRow {
    /// 0 for a row not yet stored.
    pub id: i64,
    pub policy: String,
    pub at: i64,
    /// `None`: the query returned no value.
    pub metric: Option<f64>,
    pub current: Option<i64>,
    /// The unstabilized recommendation from the metric.
    pub recommendation: Option<i64>,
    pub desired: Option<i64>,
    /// `scale_up`, `scale_down`, `hold`, `skipped` or `error`.
    pub action: String,
    pub reason: String,
}

fn decision(r: &rusqlite::Row<'_>) -> rusqlite::Result<ScaleDecisionRow> {
    Ok(ScaleDecisionRow {
        id: r.get(0)?,
        policy: r.get(1)?,
        at: r.get(2)?,
        metric: r.get(3)?,
        current: r.get(4)?,
        recommendation: r.get(5)?,
        desired: r.get(6)?,
        action: r.get(7)?,
        reason: r.get(8)?,
    })
}

const COLS: &str = "id, policy, at, metric, current, recommendation, desired, action, reason";

impl Store {
    /// Stores an evaluation; returns its id.
    pub fn autoscale_record(&self, d: &ScaleDecisionRow) -> Result<i64> {
        let conn = self.conn.lock();
        conn.execute(
            "INSERT INTO autoscale_decisions (policy, at, metric, current, recommendation, desired, action, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                d.policy,
                d.at,
                d.metric,
                d.current,
                d.recommendation,
                d.desired,
                d.action,
                d.reason
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Evaluations of `policy` at or after `since`, oldest first.
    pub fn autoscale_since(&self, policy: &str, since: i64) -> Result<Vec<ScaleDecisionRow>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {COLS} FROM autoscale_decisions WHERE policy = ?1 AND at >= ?2 ORDER BY at, id"
        ))?;
        let rows = st
            .query_map(params![policy, since], decision)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The newest evaluations (all policies, or one), newest first; with
    /// `changes_only`, only those that scaled or failed.
    pub fn autoscale_history(
        &self,
        policy: Option<&str>,
        changes_only: bool,
        limit: usize,
    ) -> Result<Vec<ScaleDecisionRow>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {COLS} FROM autoscale_decisions
             WHERE (?1 IS NULL OR policy = ?1)
               AND (?2 = 0 OR action IN ('scale_up', 'scale_down', 'error'))
             ORDER BY at DESC, id DESC LIMIT ?3"
        ))?;
        let rows = st
            .query_map(
                params![
                    policy,
                    changes_only,
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                decision,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The last count a policy set (its newest scale decision).
    pub fn autoscale_last_set(&self, policy: &str) -> Result<Option<i64>> {
        use rusqlite::OptionalExtension;
        let conn = self.conn.lock();
        Ok(conn
            .query_row(
                "SELECT desired FROM autoscale_decisions
                 WHERE policy = ?1 AND action IN ('scale_up', 'scale_down')
                 ORDER BY at DESC, id DESC LIMIT 1",
                [policy],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// Retention: evaluations that changed nothing (`hold`, `skipped`)
    /// before `quiet_before`, and all others before `before`.
    pub fn autoscale_gc(&self, quiet_before: i64, before: i64) -> Result<usize> {
        let conn = self.conn.lock();
        let mut n = conn.execute(
            "DELETE FROM autoscale_decisions WHERE action IN ('hold', 'skipped') AND at < ?1",
            [quiet_before],
        )?;
        n += conn.execute("DELETE FROM autoscale_decisions WHERE at < ?1", [before])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(policy: &str, at: i64, action: &str, desired: i64) -> ScaleDecisionRow {
        ScaleDecisionRow {
            id: 0,
            policy: policy.into(),
            at,
            metric: Some(1.5),
            current: Some(2),
            recommendation: Some(desired),
            desired: Some(desired),
            action: action.into(),
            reason: String::new(),
        }
    }

    #[test]
    fn history_last_set_and_retention() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_dir(dir.path()).unwrap();
        assert_eq!(s.component_version("autoscale").unwrap(), 1);
        s.autoscale_record(&d("web", 10, "hold", 2)).unwrap();
        s.autoscale_record(&d("web", 20, "scale_up", 4)).unwrap();
        s.autoscale_record(&d("web", 30, "hold", 4)).unwrap();
        s.autoscale_record(&d("web", 40, "scale_down", 3)).unwrap();
        s.autoscale_record(&d("db", 25, "error", 1)).unwrap();
        let mut skipped = d("web", 50, "skipped", 0);
        skipped.metric = None;
        skipped.desired = None;
        s.autoscale_record(&skipped).unwrap();

        assert_eq!(s.autoscale_last_set("web").unwrap(), Some(3));
        assert_eq!(s.autoscale_last_set("db").unwrap(), None);
        let since: Vec<i64> = s
            .autoscale_since("web", 20)
            .unwrap()
            .iter()
            .map(|r| r.at)
            .collect();
        assert_eq!(since, vec![20, 30, 40, 50]);
        let changes: Vec<(String, i64)> = s
            .autoscale_history(None, true, 10)
            .unwrap()
            .into_iter()
            .map(|r| (r.policy, r.at))
            .collect();
        assert_eq!(
            changes,
            vec![("web".into(), 40), ("db".into(), 25), ("web".into(), 20)]
        );
        let last = &s.autoscale_history(Some("web"), false, 1).unwrap()[0];
        assert_eq!((last.at, last.metric, last.desired), (50, None, None));

        // quiet rows before 35 and everything before 15 go
        assert_eq!(s.autoscale_gc(35, 15).unwrap(), 2);
        let left: Vec<i64> = s
            .autoscale_since("web", 0)
            .unwrap()
            .iter()
            .map(|r| r.at)
            .collect();
        assert_eq!(left, vec![20, 40, 50]);
    }
}
