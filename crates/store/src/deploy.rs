//! Deployments (component `deploy`): deployment events from CI, their
//! post-deploy analysis (spec, due time, result, verdict), the rollback a
//! failed analysis asked for, and status marks (failed, rolled back,
//! succeeded) with who set them.
//!
//! Two state columns make the analysis and the rollback happen at most once
//! across restarts: `analysis_state` goes `pending -> done` in one
//! conditional update (a second writer changes nothing), and
//! `rollback_state` goes `none -> pending` in the same transaction as a
//! failing verdict, then `pending -> claimed` just before the trigger and
//! `claimed -> done` with its outcome, or `claimed -> running` when it
//! started a runbook run and `running -> done` when that run ended (with
//! the status mark it earned, in the same transaction). A `claimed` row
//! found after a restart means the process stopped while triggering.

use rusqlite::{OptionalExtension, params};

use crate::{Result, Store};

/// Migrations of the `deploy` component (index + 1 is the version).
pub const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE deployments (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        service         TEXT NOT NULL,
        environment     TEXT NOT NULL,
        version         TEXT NOT NULL,
        commits         TEXT NOT NULL,
        deployed_at     INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,
        marked_by       TEXT NOT NULL,
        url             TEXT NOT NULL,
        description     TEXT NOT NULL,
        analysis_spec   TEXT,
        analysis_due    INTEGER,
        analysis_state  TEXT NOT NULL,
        analysis_result TEXT,
        verdict         TEXT,
        evaluated_at    INTEGER,
        rollback_state  TEXT NOT NULL DEFAULT 'none',
        rollback        TEXT
    );
    CREATE INDEX deployments_service ON deployments (service, environment, deployed_at);
    CREATE INDEX deployments_time ON deployments (deployed_at);
    CREATE INDEX deployments_analysis ON deployments (analysis_state, analysis_due);
    CREATE INDEX deployments_rollback ON deployments (rollback_state);
    CREATE TABLE deployment_status (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        deployment_id INTEGER NOT NULL,
        status        TEXT NOT NULL,
        reason        TEXT NOT NULL,
        set_by        TEXT NOT NULL,
        at            INTEGER NOT NULL
    );
    CREATE INDEX deployment_status_deployment ON deployment_status (deployment_id, at);
    "#,
    // idempotency keys of retried marks: the key and the request it recorded
    r#"
    CREATE TABLE deployment_idempotency (
        key           TEXT PRIMARY KEY,
        request       TEXT NOT NULL,
        deployment_id INTEGER NOT NULL UNIQUE
    );
    "#,
];

/// A deployment to record. JSON columns hold the caller's format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeploymentRow {
    pub service: String,
    pub environment: String,
    pub version: String,
    /// JSON list of commits.
    pub commits: String,
    pub deployed_at: i64,
    pub created_at: i64,
    pub marked_by: String,
    pub url: String,
    pub description: String,
    /// JSON analysis spec; `None`: no analysis for this deployment.
    pub analysis_spec: Option<String>,
    /// When the analysis is due (with a spec).
    pub analysis_due: Option<i64>,
}

/// A stored deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRow {
    pub id: i64,
    pub service: String,
    pub environment: String,
    pub version: String,
    pub commits: String,
    pub deployed_at: i64,
    pub created_at: i64,
    pub marked_by: String,
    pub url: String,
    pub description: String,
    pub analysis_spec: Option<String>,
    pub analysis_due: Option<i64>,
    /// `none`, `pending` or `done`.
    pub analysis_state: String,
    /// JSON analysis result (when done).
    pub analysis_result: Option<String>,
    pub verdict: Option<String>,
    pub evaluated_at: Option<i64>,
    /// `none`, `pending`, `claimed`, `running` or `done`.
    pub rollback_state: String,
    /// JSON rollback outcome (when running or done).
    pub rollback: Option<String>,
}

/// A status mark on a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentStatusRow {
    pub id: i64,
    pub deployment_id: i64,
    pub status: String,
    pub reason: String,
    pub set_by: String,
    pub at: i64,
}

/// A status mark to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStatusRow {
    pub status: String,
    pub reason: String,
    pub set_by: String,
    pub at: i64,
}

/// Which deployments to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentFilter {
    pub service: Option<String>,
    pub environment: Option<String>,
    /// Deployed at or after (ms).
    pub since: Option<i64>,
    /// Deployed at or before (ms).
    pub until: Option<i64>,
    pub limit: usize,
}

const COLS: &str = "id, service, environment, version, commits, deployed_at, created_at, marked_by,
    url, description, analysis_spec, analysis_due, analysis_state, analysis_result, verdict,
    evaluated_at, rollback_state, rollback";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeploymentRow> {
    Ok(DeploymentRow {
        id: r.get(0)?,
        service: r.get(1)?,
        environment: r.get(2)?,
        version: r.get(3)?,
        commits: r.get(4)?,
        deployed_at: r.get(5)?,
        created_at: r.get(6)?,
        marked_by: r.get(7)?,
        url: r.get(8)?,
        description: r.get(9)?,
        analysis_spec: r.get(10)?,
        analysis_due: r.get(11)?,
        analysis_state: r.get(12)?,
        analysis_result: r.get(13)?,
        verdict: r.get(14)?,
        evaluated_at: r.get(15)?,
        rollback_state: r.get(16)?,
        rollback: r.get(17)?,
    })
}

fn status_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeploymentStatusRow> {
    Ok(DeploymentStatusRow {
        id: r.get(0)?,
        deployment_id: r.get(1)?,
        status: r.get(2)?,
        reason: r.get(3)?,
        set_by: r.get(4)?,
        at: r.get(5)?,
    })
}

/// What [`Store::deployment_insert_idempotent`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotentInsert {
    /// A new deployment with this id.
    Inserted(i64),
    /// The key was used before, for this deployment and request.
    Existing { id: i64, request: String },
}

fn insert(conn: &rusqlite::Connection, d: &NewDeploymentRow) -> Result<i64> {
    let state = if d.analysis_spec.is_some() {
        "pending"
    } else {
        "none"
    };
    conn.execute(
        "INSERT INTO deployments (service, environment, version, commits, deployed_at, created_at,
           marked_by, url, description, analysis_spec, analysis_due, analysis_state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            d.service,
            d.environment,
            d.version,
            d.commits,
            d.deployed_at,
            d.created_at,
            d.marked_by,
            d.url,
            d.description,
            d.analysis_spec,
            d.analysis_due,
            state
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

impl Store {
    /// Records a deployment; returns its id.
    pub fn deployment_insert(&self, d: &NewDeploymentRow) -> Result<i64> {
        insert(&self.conn.lock(), d)
    }

    /// Records a deployment under an idempotency key, or, when the key was
    /// already used, returns the deployment and request it recorded (in one
    /// lock, so two retries racing record one deployment).
    pub fn deployment_insert_idempotent(
        &self,
        d: &NewDeploymentRow,
        key: &str,
        request: &str,
    ) -> Result<IdempotentInsert> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let seen: Option<(i64, String)> = tx
            .query_row(
                "SELECT deployment_id, request FROM deployment_idempotency WHERE key = ?1",
                [key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((id, request)) = seen {
            return Ok(IdempotentInsert::Existing { id, request });
        }
        let id = insert(&tx, d)?;
        tx.execute(
            "INSERT INTO deployment_idempotency (key, request, deployment_id) VALUES (?1, ?2, ?3)",
            params![key, request, id],
        )?;
        tx.commit()?;
        Ok(IdempotentInsert::Inserted(id))
    }

    pub fn deployment_get(&self, id: i64) -> Result<Option<DeploymentRow>> {
        let conn = self.conn.lock();
        Ok(conn
            .query_row(
                &format!("SELECT {COLS} FROM deployments WHERE id = ?1"),
                [id],
                row,
            )
            .optional()?)
    }

    /// Deployments matching the filter, newest first (by deploy time, then id).
    pub fn deployment_list(&self, f: &DeploymentFilter) -> Result<Vec<DeploymentRow>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {COLS} FROM deployments
             WHERE (?1 IS NULL OR service = ?1) AND (?2 IS NULL OR environment = ?2)
               AND (?3 IS NULL OR deployed_at >= ?3) AND (?4 IS NULL OR deployed_at <= ?4)
             ORDER BY deployed_at DESC, id DESC LIMIT ?5"
        ))?;
        let rows = st
            .query_map(
                params![
                    f.service,
                    f.environment,
                    f.since,
                    f.until,
                    i64::try_from(f.limit).unwrap_or(i64::MAX)
                ],
                row,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The latest deployment of every (service, environment).
    pub fn deployment_latest(&self) -> Result<Vec<DeploymentRow>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {COLS} FROM deployments d
             WHERE id = (SELECT id FROM deployments x
                         WHERE x.service = d.service AND x.environment = d.environment
                         ORDER BY deployed_at DESC, id DESC LIMIT 1)"
        ))?;
        let rows = st
            .query_map([], row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Deployments whose analysis has not been recorded, earliest due first.
    pub fn deployment_pending_analyses(&self) -> Result<Vec<DeploymentRow>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {COLS} FROM deployments WHERE analysis_state = 'pending'
             ORDER BY analysis_due, id"
        ))?;
        let rows = st
            .query_map([], row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Records the analysis result if none was recorded yet; with
    /// `rollback` the rollback becomes pending in the same transaction.
    /// Returns false (and changes nothing) when a verdict already exists.
    pub fn deployment_record_verdict(
        &self,
        id: i64,
        result: &str,
        verdict: &str,
        at: i64,
        rollback: bool,
    ) -> Result<bool> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE deployments SET analysis_state = 'done', analysis_result = ?2, verdict = ?3,
               evaluated_at = ?4
             WHERE id = ?1 AND analysis_state = 'pending'",
            params![id, result, verdict, at],
        )?;
        if n == 1 && rollback {
            tx.execute(
                "UPDATE deployments SET rollback_state = 'pending' WHERE id = ?1 AND rollback_state = 'none'",
                [id],
            )?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    /// Deployments whose rollback is `pending` or `claimed`.
    pub fn deployment_open_rollbacks(&self) -> Result<Vec<DeploymentRow>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {COLS} FROM deployments WHERE rollback_state IN ('pending', 'claimed') ORDER BY id"
        ))?;
        let rows = st
            .query_map([], row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Claims a pending rollback just before triggering it; false if it was
    /// not pending (already claimed or done).
    pub fn deployment_claim_rollback(&self, id: i64) -> Result<bool> {
        let n = self.conn.lock().execute(
            "UPDATE deployments SET rollback_state = 'claimed' WHERE id = ?1 AND rollback_state = 'pending'",
            [id],
        )?;
        Ok(n == 1)
    }

    /// Records the outcome of a claimed rollback; false if it was not claimed.
    pub fn deployment_finish_rollback(&self, id: i64, outcome: &str) -> Result<bool> {
        let n = self.conn.lock().execute(
            "UPDATE deployments SET rollback_state = 'done', rollback = ?2
             WHERE id = ?1 AND rollback_state = 'claimed'",
            params![id, outcome],
        )?;
        Ok(n == 1)
    }

    /// The deployment of the same service and environment just before
    /// `(deployed_at, id)`.
    pub fn deployment_previous(
        &self,
        service: &str,
        environment: &str,
        deployed_at: i64,
        id: i64,
    ) -> Result<Option<DeploymentRow>> {
        let conn = self.conn.lock();
        Ok(conn
            .query_row(
                &format!(
                    "SELECT {COLS} FROM deployments
                     WHERE service = ?1 AND environment = ?2
                       AND (deployed_at < ?3 OR (deployed_at = ?3 AND id < ?4))
                     ORDER BY deployed_at DESC, id DESC LIMIT 1"
                ),
                params![service, environment, deployed_at, id],
                row,
            )
            .optional()?)
    }

    /// Records that a claimed rollback started a run (`outcome` names it);
    /// false if it was not claimed.
    pub fn deployment_rollback_running(&self, id: i64, outcome: &str) -> Result<bool> {
        let n = self.conn.lock().execute(
            "UPDATE deployments SET rollback_state = 'running', rollback = ?2
             WHERE id = ?1 AND rollback_state = 'claimed'",
            params![id, outcome],
        )?;
        Ok(n == 1)
    }

    /// Deployments whose rollback run has not been seen to end.
    pub fn deployment_running_rollbacks(&self) -> Result<Vec<DeploymentRow>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {COLS} FROM deployments WHERE rollback_state = 'running' ORDER BY id"
        ))?;
        let rows = st
            .query_map([], row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Records how a rollback run ended and, in the same transaction, the
    /// status mark it earned; false (nothing written) if it was not running.
    pub fn deployment_rollback_ended(
        &self,
        id: i64,
        outcome: &str,
        mark: Option<&NewStatusRow>,
    ) -> Result<bool> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE deployments SET rollback_state = 'done', rollback = ?2
             WHERE id = ?1 AND rollback_state = 'running'",
            params![id, outcome],
        )?;
        if n == 1
            && let Some(m) = mark
        {
            tx.execute(
                "INSERT INTO deployment_status (deployment_id, status, reason, set_by, at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, m.status, m.reason, m.set_by, m.at],
            )?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    /// Adds a status mark; returns its id.
    pub fn deployment_add_status(
        &self,
        deployment_id: i64,
        status: &str,
        reason: &str,
        set_by: &str,
        at: i64,
    ) -> Result<i64> {
        let conn = self.conn.lock();
        conn.execute(
            "INSERT INTO deployment_status (deployment_id, status, reason, set_by, at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![deployment_id, status, reason, set_by, at],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Status marks of one deployment, oldest first.
    pub fn deployment_statuses(&self, deployment_id: i64) -> Result<Vec<DeploymentStatusRow>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(
            "SELECT id, deployment_id, status, reason, set_by, at FROM deployment_status
             WHERE deployment_id = ?1 ORDER BY at, id",
        )?;
        let rows = st
            .query_map([deployment_id], status_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Status marks of the deployments deployed at or after `since`, oldest first.
    pub fn deployment_statuses_since(&self, since: i64) -> Result<Vec<DeploymentStatusRow>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(
            "SELECT s.id, s.deployment_id, s.status, s.reason, s.set_by, s.at
             FROM deployment_status s JOIN deployments d ON d.id = s.deployment_id
             WHERE d.deployed_at >= ?1 ORDER BY s.at, s.id",
        )?;
        let rows = st
            .query_map([since], status_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(service: &str, env: &str, at: i64, analysis: bool) -> NewDeploymentRow {
        NewDeploymentRow {
            service: service.into(),
            environment: env.into(),
            version: format!("v{at}"),
            commits: "[]".into(),
            deployed_at: at,
            created_at: at,
            marked_by: "ci".into(),
            url: String::new(),
            description: String::new(),
            analysis_spec: analysis.then(|| "{}".to_string()),
            analysis_due: analysis.then_some(at + 10),
        }
    }

    #[test]
    fn an_idempotency_key_records_one_deployment() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_dir(dir.path()).unwrap();
        let first = s
            .deployment_insert_idempotent(&new("api", "prod", 100, false), "k1", "req-a")
            .unwrap();
        let IdempotentInsert::Inserted(id) = first else {
            panic!("first use of a key must insert: {first:?}");
        };
        let again = s
            .deployment_insert_idempotent(&new("api", "prod", 200, false), "k1", "req-b")
            .unwrap();
        assert_eq!(
            again,
            IdempotentInsert::Existing {
                id,
                request: "req-a".into()
            }
        );
        let other = s
            .deployment_insert_idempotent(&new("api", "prod", 300, false), "k2", "req-a")
            .unwrap();
        assert!(matches!(other, IdempotentInsert::Inserted(n) if n != id));
        let all = s
            .deployment_list(&DeploymentFilter {
                limit: 10,
                ..DeploymentFilter::default()
            })
            .unwrap();
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn insert_list_latest_and_filters() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_dir(dir.path()).unwrap();
        assert_eq!(s.component_version("deploy").unwrap(), 2);
        let a1 = s
            .deployment_insert(&new("api", "prod", 100, false))
            .unwrap();
        let a2 = s.deployment_insert(&new("api", "prod", 200, true)).unwrap();
        let w1 = s
            .deployment_insert(&new("web", "prod", 150, false))
            .unwrap();
        let a3 = s
            .deployment_insert(&new("api", "staging", 300, false))
            .unwrap();
        let got = s.deployment_get(a2).unwrap().unwrap();
        assert_eq!(got.analysis_state, "pending");
        assert_eq!(got.analysis_due, Some(210));
        assert_eq!(
            s.deployment_get(a1).unwrap().unwrap().analysis_state,
            "none"
        );
        assert!(s.deployment_get(999).unwrap().is_none());

        let all = s
            .deployment_list(&DeploymentFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            all.iter().map(|d| d.id).collect::<Vec<_>>(),
            vec![a3, a2, w1, a1]
        );
        let api_prod = s
            .deployment_list(&DeploymentFilter {
                service: Some("api".into()),
                environment: Some("prod".into()),
                since: Some(150),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(api_prod.iter().map(|d| d.id).collect::<Vec<_>>(), vec![a2]);
        let mut latest: Vec<i64> = s
            .deployment_latest()
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        latest.sort();
        assert_eq!(latest, vec![a2, w1, a3]);
    }

    #[test]
    fn a_verdict_is_recorded_once_and_a_rollback_claimed_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_dir(dir.path()).unwrap();
        let id = s.deployment_insert(&new("api", "prod", 100, true)).unwrap();
        assert_eq!(s.deployment_pending_analyses().unwrap().len(), 1);
        assert!(
            s.deployment_record_verdict(id, r#"{"v":1}"#, "fail", 120, true)
                .unwrap()
        );
        // a second evaluation (e.g. after a restart race) changes nothing
        assert!(
            !s.deployment_record_verdict(id, r#"{"v":2}"#, "pass", 130, false)
                .unwrap()
        );
        let d = s.deployment_get(id).unwrap().unwrap();
        assert_eq!(
            (d.verdict.as_deref(), d.analysis_result.as_deref()),
            (Some("fail"), Some(r#"{"v":1}"#))
        );
        assert_eq!(d.rollback_state, "pending");
        assert!(s.deployment_pending_analyses().unwrap().is_empty());
        assert_eq!(s.deployment_open_rollbacks().unwrap().len(), 1);
        assert!(!s.deployment_finish_rollback(id, "{}").unwrap());
        assert!(s.deployment_claim_rollback(id).unwrap());
        assert!(!s.deployment_claim_rollback(id).unwrap());
        assert!(s.deployment_finish_rollback(id, r#"{"run":"r1"}"#).unwrap());
        assert!(!s.deployment_finish_rollback(id, r#"{"run":"r2"}"#).unwrap());
        let d = s.deployment_get(id).unwrap().unwrap();
        assert_eq!(d.rollback.as_deref(), Some(r#"{"run":"r1"}"#));
        assert!(s.deployment_open_rollbacks().unwrap().is_empty());
    }

    #[test]
    fn a_rollback_run_ends_once_with_its_mark() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_dir(dir.path()).unwrap();
        let v1 = s
            .deployment_insert(&new("api", "prod", 100, false))
            .unwrap();
        let v2 = s.deployment_insert(&new("api", "prod", 200, true)).unwrap();
        s.deployment_insert(&new("api", "staging", 150, false))
            .unwrap();
        let prev = |id| {
            let d = s.deployment_get(id).unwrap().unwrap();
            s.deployment_previous(&d.service, &d.environment, d.deployed_at, d.id)
                .unwrap()
                .map(|p| p.id)
        };
        assert_eq!((prev(v2), prev(v1)), (Some(v1), None));

        s.deployment_record_verdict(v2, "{}", "fail", 210, true)
            .unwrap();
        // only a claimed rollback starts running
        assert!(!s.deployment_rollback_running(v2, r#"{"run":"1"}"#).unwrap());
        assert!(s.deployment_claim_rollback(v2).unwrap());
        assert!(s.deployment_rollback_running(v2, r#"{"run":"1"}"#).unwrap());
        assert!(s.deployment_open_rollbacks().unwrap().is_empty());
        let running: Vec<i64> = s
            .deployment_running_rollbacks()
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(running, vec![v2]);

        let mark = NewStatusRow {
            status: "rolled_back".into(),
            reason: "run 1 verified".into(),
            set_by: "day2".into(),
            at: 230,
        };
        assert!(
            s.deployment_rollback_ended(v2, r#"{"run":"1","state":"verified"}"#, Some(&mark))
                .unwrap()
        );
        // a second ending (a restart race) writes nothing, not even the mark
        assert!(
            !s.deployment_rollback_ended(v2, r#"{"run":"1","state":"failed"}"#, Some(&mark))
                .unwrap()
        );
        let d = s.deployment_get(v2).unwrap().unwrap();
        assert_eq!(
            (d.rollback_state.as_str(), d.rollback.as_deref()),
            ("done", Some(r#"{"run":"1","state":"verified"}"#))
        );
        let marks = s.deployment_statuses(v2).unwrap();
        assert_eq!(marks.len(), 1);
        assert_eq!(
            (
                marks[0].status.as_str(),
                marks[0].set_by.as_str(),
                marks[0].at
            ),
            ("rolled_back", "day2", 230)
        );
        assert!(s.deployment_running_rollbacks().unwrap().is_empty());
    }

    #[test]
    fn status_marks_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (old, id) = {
            let s = Store::open_dir(dir.path()).unwrap();
            let old = s.deployment_insert(&new("api", "prod", 50, false)).unwrap();
            let id = s
                .deployment_insert(&new("api", "prod", 100, false))
                .unwrap();
            s.deployment_add_status(id, "failed", "errors", "alice", 110)
                .unwrap();
            s.deployment_add_status(id, "rolled_back", "", "ci", 120)
                .unwrap();
            s.deployment_add_status(old, "failed", "", "bob", 60)
                .unwrap();
            (old, id)
        };
        let s = Store::open_dir(dir.path()).unwrap();
        let marks = s.deployment_statuses(id).unwrap();
        assert_eq!(
            marks
                .iter()
                .map(|m| (m.status.as_str(), m.set_by.as_str(), m.at))
                .collect::<Vec<_>>(),
            vec![("failed", "alice", 110), ("rolled_back", "ci", 120)]
        );
        let since: Vec<i64> = s
            .deployment_statuses_since(100)
            .unwrap()
            .iter()
            .map(|m| m.deployment_id)
            .collect();
        assert_eq!(since, vec![id, id]);
        assert_eq!(
            s.deployment_statuses_since(0).unwrap()[0].deployment_id,
            old
        );
    }
}
