//! Remediation state (component `remediate`): runs (state, who asked and
//! approved, target, and the whole run as JSON: params, plan, step results
//! with capped outputs), the append-only audit log (SQLite triggers refuse
//! updates and deletes), circuit breakers per runbook, and which
//! (notification, alert, runbook) triggers were handled. Runs are never
//! deleted, so the highest id survives restarts.

use rusqlite::{OptionalExtension, params};

use crate::{Result, Store};

pub const MIGRATIONS: &[&str] = &[
    // 1: runs, audit log, breakers, triggers
    r#"
    CREATE TABLE remediation_runs (
        id          INTEGER PRIMARY KEY,
        runbook     TEXT NOT NULL,
        target      TEXT NOT NULL,
        state       TEXT NOT NULL,
        requester   TEXT NOT NULL,
        approver    TEXT,
        dry_run     INTEGER NOT NULL,
        created_at  INTEGER NOT NULL,
        finished_at INTEGER,
        body        TEXT NOT NULL
    );
    CREATE INDEX remediation_runs_finished ON remediation_runs (finished_at);
    CREATE TABLE remediation_audit (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        at      INTEGER NOT NULL,
        run_id  INTEGER,
        runbook TEXT NOT NULL,
        kind    TEXT NOT NULL,
        actor   TEXT,
        body    TEXT NOT NULL
    );
    CREATE INDEX remediation_audit_run ON remediation_audit (run_id, seq);
    CREATE TRIGGER remediation_audit_no_update BEFORE UPDATE ON remediation_audit
    BEGIN SELECT RAISE(ABORT, 'the remediation audit log is append-only'); END;
    CREATE TRIGGER remediation_audit_no_delete BEFORE DELETE ON remediation_audit
    BEGIN SELECT RAISE(ABORT, 'the remediation audit log is append-only'); END;
    CREATE TABLE remediation_breakers (
        runbook TEXT PRIMARY KEY,
        body    TEXT NOT NULL
    );
    CREATE TABLE remediation_triggers (
        outbox_id   INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        runbook     TEXT NOT NULL,
        run_id      INTEGER,
        refusal     TEXT,
        PRIMARY KEY (outbox_id, fingerprint, runbook)
    );
    "#,
    // 2: runs by the alert that asked for them (incident timelines)
    "CREATE INDEX remediation_triggers_fingerprint ON remediation_triggers (fingerprint);",
];

/// A run record; `body` is the caller's JSON of the whole run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub id: i64,
    pub runbook: String,
    pub target: String,
    pub state: String,
    pub requester: String,
    pub approver: Option<String>,
    pub dry_run: bool,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub body: String,
}

/// An audit log entry; `seq` is assigned on insert (ignored when writing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub run_id: Option<i64>,
    pub runbook: String,
    pub kind: String,
    pub actor: Option<String>,
    pub body: String,
}

/// A circuit breaker of one runbook (JSON body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerRow {
    pub runbook: String,
    pub body: String,
}

/// One handled (notification, alert, runbook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerRow {
    pub outbox_id: i64,
    pub fingerprint: String,
    pub runbook: String,
    pub run_id: Option<i64>,
    pub refusal: Option<String>,
}

/// What a restart reads back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemediationState {
    pub runs: Vec<RunRow>,
    pub breakers: Vec<BreakerRow>,
    /// The highest run id ever stored.
    pub last_id: i64,
}

const RUN_COLS: &str =
    "id, runbook, target, state, requester, approver, dry_run, created_at, finished_at, body";

fn run_row(r: &rusqlite::Row) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        runbook: r.get(1)?,
        target: r.get(2)?,
        state: r.get(3)?,
        requester: r.get(4)?,
        approver: r.get(5)?,
        dry_run: r.get(6)?,
        created_at: r.get(7)?,
        finished_at: r.get(8)?,
        body: r.get(9)?,
    })
}

impl Store {
    /// Writes one transition: runs upserted, audit entries appended,
    /// breakers and triggers upserted, in one transaction.
    pub fn remediation_commit(
        &self,
        runs: &[RunRow],
        audit: &[AuditRow],
        breakers: &[BreakerRow],
        triggers: &[TriggerRow],
    ) -> Result<()> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached(&format!(
                "INSERT INTO remediation_runs ({RUN_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT(id) DO UPDATE SET state=?4, approver=?6, finished_at=?9, body=?10"
            ))?;
            for r in runs {
                st.execute(params![
                    r.id,
                    r.runbook,
                    r.target,
                    r.state,
                    r.requester,
                    r.approver,
                    r.dry_run,
                    r.created_at,
                    r.finished_at,
                    r.body
                ])?;
            }
            let mut st = tx.prepare_cached(
                "INSERT INTO remediation_audit (at, run_id, runbook, kind, actor, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for a in audit {
                st.execute(params![a.at, a.run_id, a.runbook, a.kind, a.actor, a.body])?;
            }
            let mut st = tx.prepare_cached(
                "INSERT INTO remediation_breakers (runbook, body) VALUES (?1, ?2)
                 ON CONFLICT(runbook) DO UPDATE SET body=?2",
            )?;
            for b in breakers {
                st.execute(params![b.runbook, b.body])?;
            }
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO remediation_triggers (outbox_id, fingerprint, runbook, run_id, refusal)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for t in triggers {
                st.execute(params![
                    t.outbox_id,
                    t.fingerprint,
                    t.runbook,
                    t.run_id,
                    t.refusal
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Was this (notification, alert, runbook) already handled?
    pub fn remediation_trigger_seen(
        &self,
        outbox_id: i64,
        fingerprint: &str,
        runbook: &str,
    ) -> Result<bool> {
        Ok(self
            .conn
            .lock()
            .query_row(
                "SELECT 1 FROM remediation_triggers WHERE outbox_id=?1 AND fingerprint=?2 AND runbook=?3",
                params![outbox_id, fingerprint, runbook],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Unfinished runs and runs finished at or after `since` (ms), all
    /// breakers, and the highest run id.
    pub fn remediation_load(&self, since: i64) -> Result<RemediationState> {
        let conn = self.conn.lock();
        let mut st = conn.prepare(&format!(
            "SELECT {RUN_COLS} FROM remediation_runs
             WHERE finished_at IS NULL OR finished_at >= ?1 ORDER BY id"
        ))?;
        let runs = st
            .query_map([since], run_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut st = conn.prepare("SELECT runbook, body FROM remediation_breakers")?;
        let breakers = st
            .query_map([], |r| {
                Ok(BreakerRow {
                    runbook: r.get(0)?,
                    body: r.get(1)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let last_id: Option<i64> =
            conn.query_row("SELECT MAX(id) FROM remediation_runs", [], |r| r.get(0))?;
        Ok(RemediationState {
            runs,
            breakers,
            last_id: last_id.unwrap_or(0),
        })
    }

    /// Runs, newest first, optionally of one runbook and/or in one state.
    pub fn remediation_runs(
        &self,
        runbook: Option<&str>,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRow>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare(&format!(
            "SELECT {RUN_COLS} FROM remediation_runs
             WHERE (?1 IS NULL OR runbook = ?1) AND (?2 IS NULL OR state = ?2)
             ORDER BY id DESC LIMIT ?3"
        ))?;
        let rows = st
            .query_map(params![runbook, state, limit as i64], run_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Runs of a runbook asked for by `requester`, oldest first.
    pub fn remediation_runs_requested_by(
        &self,
        runbook: &str,
        requester: &str,
    ) -> Result<Vec<RunRow>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare(&format!(
            "SELECT {RUN_COLS} FROM remediation_runs
             WHERE runbook = ?1 AND requester = ?2 ORDER BY id"
        ))?;
        let rows = st
            .query_map(params![runbook, requester], run_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Runs an alert asked for (through a notification), oldest first.
    pub fn remediation_runs_for_alert(&self, fingerprint: &str) -> Result<Vec<RunRow>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare(&format!(
            "SELECT {RUN_COLS} FROM remediation_runs WHERE id IN (
                 SELECT run_id FROM remediation_triggers WHERE fingerprint = ?1)
             ORDER BY id"
        ))?;
        let rows = st
            .query_map([fingerprint], run_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn remediation_run(&self, id: i64) -> Result<Option<RunRow>> {
        Ok(self
            .conn
            .lock()
            .query_row(
                &format!("SELECT {RUN_COLS} FROM remediation_runs WHERE id = ?1"),
                [id],
                run_row,
            )
            .optional()?)
    }

    /// Audit entries in order: of one run, or the latest `limit` of all.
    pub fn remediation_audit(&self, run: Option<i64>, limit: usize) -> Result<Vec<AuditRow>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare(
            "SELECT seq, at, run_id, runbook, kind, actor, body FROM (
                 SELECT * FROM remediation_audit WHERE (?1 IS NULL OR run_id = ?1)
                 ORDER BY seq DESC LIMIT ?2
             ) ORDER BY seq",
        )?;
        let rows = st
            .query_map(params![run, limit as i64], |r| {
                Ok(AuditRow {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    run_id: r.get(2)?,
                    runbook: r.get(3)?,
                    kind: r.get(4)?,
                    actor: r.get(5)?,
                    body: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: i64, state: &str, finished_at: Option<i64>) -> RunRow {
        RunRow {
            id,
            runbook: "rb".into(),
            target: "instance=\"a\"".into(),
            state: state.into(),
            requester: "alert:X".into(),
            approver: None,
            dry_run: false,
            created_at: 1000,
            finished_at,
            body: format!("{{\"id\":{id}}}"),
        }
    }

    fn audit(run_id: i64, kind: &str) -> AuditRow {
        AuditRow {
            seq: 0,
            at: 1000,
            run_id: Some(run_id),
            runbook: "rb".into(),
            kind: kind.into(),
            actor: None,
            body: "{}".into(),
        }
    }

    #[test]
    fn runs_audit_breakers_and_triggers_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open_dir(dir.path()).unwrap();
            assert_eq!(s.component_version("remediate").unwrap(), 2);
            let trig = TriggerRow {
                outbox_id: 7,
                fingerprint: "f".into(),
                runbook: "rb".into(),
                run_id: Some(1),
                refusal: None,
            };
            s.remediation_commit(
                &[run(1, "running", None)],
                &[audit(1, "proposed"), audit(1, "started")],
                &[BreakerRow {
                    runbook: "rb".into(),
                    body: "{\"consecutive_failures\":2}".into(),
                }],
                std::slice::from_ref(&trig),
            )
            .unwrap();
            // an upsert changes state; a repeated trigger is ignored
            s.remediation_commit(
                &[run(1, "verified", Some(5000)), run(2, "failed", Some(100))],
                &[audit(1, "verified")],
                &[],
                &[trig],
            )
            .unwrap();
            assert!(s.remediation_trigger_seen(7, "f", "rb").unwrap());
            assert!(!s.remediation_trigger_seen(8, "f", "rb").unwrap());
        }
        let s = Store::open_dir(dir.path()).unwrap();
        let st = s.remediation_load(1000).unwrap();
        assert_eq!(st.last_id, 2);
        assert_eq!(st.runs.len(), 1, "run 2 finished before the horizon");
        assert_eq!(st.runs[0].state, "verified");
        assert_eq!(st.breakers[0].body, "{\"consecutive_failures\":2}");
        let kinds: Vec<String> = s
            .remediation_audit(Some(1), 100)
            .unwrap()
            .into_iter()
            .map(|a| a.kind)
            .collect();
        assert_eq!(kinds, ["proposed", "started", "verified"]);
        assert_eq!(s.remediation_runs(None, None, 10).unwrap()[0].id, 2);
        assert_eq!(
            s.remediation_runs(Some("rb"), Some("verified"), 10)
                .unwrap()
                .len(),
            1
        );
        assert!(s.remediation_run(3).unwrap().is_none());
        let for_alert: Vec<i64> = s
            .remediation_runs_for_alert("f")
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(for_alert, [1]);
        assert!(s.remediation_runs_for_alert("g").unwrap().is_empty());
        let mut by_deploy = run(3, "awaiting_approval", None);
        by_deploy.requester = "deploy:9".into();
        s.remediation_commit(&[by_deploy], &[], &[], &[]).unwrap();
        let ids = |rb: &str, who: &str| -> Vec<i64> {
            s.remediation_runs_requested_by(rb, who)
                .unwrap()
                .iter()
                .map(|r| r.id)
                .collect()
        };
        assert_eq!(ids("rb", "deploy:9"), vec![3]);
        assert_eq!(ids("rb", "alert:X"), vec![1, 2]);
        assert!(ids("other", "deploy:9").is_empty());
    }

    #[test]
    fn the_audit_log_is_append_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.db")).unwrap();
        s.remediation_commit(&[], &[audit(1, "proposed")], &[], &[])
            .unwrap();
        let c = s.conn.lock();
        let e = c
            .execute("UPDATE remediation_audit SET kind = 'x'", [])
            .unwrap_err()
            .to_string();
        assert!(e.contains("append-only"), "{e}");
        assert!(c.execute("DELETE FROM remediation_audit", []).is_err());
    }
}
