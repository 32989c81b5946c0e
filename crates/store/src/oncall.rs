//! On-call state: escalations (one per alert group of a paging receiver,
//! from its first firing notification to its resolution), the steps fired
//! for each (keyed by `(round, step_index)`, so a step is never fired twice),
//! the page outbox (one row per user and contact method, sent and retried
//! like notifications) and the escalation's event log (the audit of pages,
//! acknowledgements and resolution).
//!
//! Rows are plain data (Unix milliseconds, JSON text); the on-call runtime
//! decides what they mean.

use rusqlite::{OptionalExtension, Row, params};

use crate::{OutboxState, Result, Store};

/// Migrations of the `oncall` component (see `COMPONENTS`).
pub const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE oncall_escalations (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        receiver      TEXT NOT NULL,
        group_key     TEXT NOT NULL,
        policy        TEXT NOT NULL,
        triggered_at  INTEGER NOT NULL,
        acked_at      INTEGER,
        acked_by      TEXT,
        ack_via       TEXT,
        resolved_at   INTEGER,
        alerts        TEXT NOT NULL
    );
    CREATE UNIQUE INDEX oncall_escalations_open
        ON oncall_escalations (receiver, group_key) WHERE resolved_at IS NULL;
    CREATE TABLE oncall_escalation_alerts (
        escalation_id INTEGER NOT NULL,
        fingerprint   TEXT NOT NULL,
        PRIMARY KEY (escalation_id, fingerprint)
    );
    CREATE INDEX oncall_escalation_alerts_fp ON oncall_escalation_alerts (fingerprint);
    CREATE TABLE oncall_groups (
        receiver       TEXT NOT NULL,
        group_key      TEXT NOT NULL,
        last_outbox_id INTEGER NOT NULL,
        PRIMARY KEY (receiver, group_key)
    );
    CREATE TABLE oncall_steps (
        escalation_id INTEGER NOT NULL,
        round         INTEGER NOT NULL,
        step_index    INTEGER NOT NULL,
        due_at        INTEGER NOT NULL,
        fired_at      INTEGER NOT NULL,
        users         TEXT NOT NULL,
        PRIMARY KEY (escalation_id, round, step_index)
    );
    CREATE TABLE oncall_pages (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        escalation_id INTEGER,
        round         INTEGER,
        step_index    INTEGER,
        user_id       TEXT NOT NULL,
        method_index  INTEGER NOT NULL,
        method_kind   TEXT NOT NULL,
        payload       TEXT NOT NULL,
        created_at    INTEGER NOT NULL,
        next_attempt  INTEGER NOT NULL,
        attempts      INTEGER NOT NULL DEFAULT 0,
        state         TEXT NOT NULL DEFAULT 'pending',
        status_code   INTEGER,
        last_error    TEXT NOT NULL DEFAULT '',
        finished_at   INTEGER
    );
    CREATE INDEX oncall_pages_pending ON oncall_pages (state, next_attempt);
    CREATE INDEX oncall_pages_escalation ON oncall_pages (escalation_id);
    CREATE TABLE oncall_events (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        escalation_id INTEGER,
        at            INTEGER NOT NULL,
        kind          TEXT NOT NULL,
        actor         TEXT NOT NULL,
        text          TEXT NOT NULL,
        data          TEXT NOT NULL
    );
    CREATE INDEX oncall_events_escalation ON oncall_events (escalation_id, id);
    "#,
    // 2: escalations opened by a runbook's escalate step carry its message
    "ALTER TABLE oncall_escalations ADD COLUMN note TEXT NOT NULL DEFAULT '';",
];

/// A stored escalation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationRow {
    pub id: i64,
    pub receiver: String,
    pub group_key: String,
    pub policy: String,
    pub triggered_at: i64,
    pub acked_at: Option<i64>,
    pub acked_by: Option<String>,
    /// `api`, `cli`, `link`, ...
    pub ack_via: Option<String>,
    pub resolved_at: Option<i64>,
    /// JSON list of the alerts of the latest notification.
    pub alerts: String,
    /// What the escalation is about when no notification started it (a
    /// runbook's escalate step); empty otherwise.
    pub note: String,
}

/// An escalation opened outside the alert hub (a runbook's escalate step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectEscalation {
    pub receiver: String,
    pub group_key: String,
    pub policy: String,
    pub triggered_at: i64,
    /// JSON list of the alerts it carries.
    pub alerts: String,
    pub fingerprints: Vec<String>,
    pub note: String,
}

/// What a notification changes about a group's escalation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EscalationWrite {
    /// A firing notification for a group without an open escalation.
    Open {
        policy: String,
        triggered_at: i64,
        alerts: String,
        fingerprints: Vec<String>,
    },
    /// A later notification of an open escalation.
    Update {
        id: i64,
        alerts: String,
        fingerprints: Vec<String>,
    },
    /// Every alert of the group resolved.
    Resolve {
        id: i64,
        resolved_at: i64,
        alerts: String,
        fingerprints: Vec<String>,
    },
}

/// An event of an escalation (or of a message page, without one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OncallEvent {
    pub id: i64,
    pub escalation_id: Option<i64>,
    pub at: i64,
    /// `opened`, `step`, `page_sent`, `page_failed`, `acknowledged`, `resolved`, ...
    pub kind: String,
    pub actor: String,
    pub text: String,
    /// JSON object.
    pub data: String,
}

/// A step fired: its key, when it was due and whom it paged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRow {
    pub escalation_id: i64,
    pub round: u32,
    pub step_index: u32,
    pub due_at: i64,
    pub fired_at: i64,
    /// JSON list of user ids.
    pub users: String,
}

/// A page to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPage {
    pub escalation_id: Option<i64>,
    pub round: Option<u32>,
    pub step_index: Option<u32>,
    pub user_id: String,
    pub method_index: u32,
    pub method_kind: String,
    pub payload: String,
}

/// A page in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRow {
    pub id: i64,
    pub escalation_id: Option<i64>,
    pub round: Option<u32>,
    pub step_index: Option<u32>,
    pub user_id: String,
    pub method_index: u32,
    pub method_kind: String,
    pub payload: String,
    pub created_at: i64,
    pub next_attempt: i64,
    pub attempts: u32,
    pub state: OutboxState,
    pub status_code: Option<u16>,
    pub last_error: String,
    pub finished_at: Option<i64>,
}

/// The outcome of one page attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageAttempt {
    pub page_id: i64,
    pub state: OutboxState,
    pub next_attempt: i64,
    pub status_code: Option<u16>,
    pub error: String,
    pub at: i64,
}

/// What one retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionCounts {
    pub escalations: u64,
    pub events: u64,
    pub pages: u64,
    pub steps: u64,
    pub alert_links: u64,
}

const ESCALATION_COLS: &str = "id, receiver, group_key, policy, triggered_at, acked_at, acked_by, ack_via, resolved_at, alerts, note";

fn escalation(r: &Row) -> rusqlite::Result<EscalationRow> {
    Ok(EscalationRow {
        id: r.get(0)?,
        receiver: r.get(1)?,
        group_key: r.get(2)?,
        policy: r.get(3)?,
        triggered_at: r.get(4)?,
        acked_at: r.get(5)?,
        acked_by: r.get(6)?,
        ack_via: r.get(7)?,
        resolved_at: r.get(8)?,
        alerts: r.get(9)?,
        note: r.get(10)?,
    })
}

const PAGE_COLS: &str = "id, escalation_id, round, step_index, user_id, method_index, method_kind, payload, created_at, next_attempt, attempts, state, status_code, last_error, finished_at";

fn page(r: &Row) -> rusqlite::Result<PageRow> {
    Ok(PageRow {
        id: r.get(0)?,
        escalation_id: r.get(1)?,
        round: r.get(2)?,
        step_index: r.get(3)?,
        user_id: r.get(4)?,
        method_index: r.get(5)?,
        method_kind: r.get(6)?,
        payload: r.get(7)?,
        created_at: r.get(8)?,
        next_attempt: r.get(9)?,
        attempts: r.get(10)?,
        state: OutboxState::parse(&r.get::<_, String>(11)?),
        status_code: r.get(12)?,
        last_error: r.get(13)?,
        finished_at: r.get(14)?,
    })
}

const EVENT_COLS: &str = "id, escalation_id, at, kind, actor, text, data";

fn event(r: &Row) -> rusqlite::Result<OncallEvent> {
    Ok(OncallEvent {
        id: r.get(0)?,
        escalation_id: r.get(1)?,
        at: r.get(2)?,
        kind: r.get(3)?,
        actor: r.get(4)?,
        text: r.get(5)?,
        data: r.get(6)?,
    })
}

fn insert_event(
    tx: &rusqlite::Transaction,
    e: &OncallEvent,
    escalation: Option<i64>,
) -> Result<()> {
    tx.execute(
        "INSERT INTO oncall_events (escalation_id, at, kind, actor, text, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            e.escalation_id.or(escalation),
            e.at,
            e.kind,
            e.actor,
            e.text,
            e.data
        ],
    )?;
    Ok(())
}

fn link_alerts(tx: &rusqlite::Transaction, id: i64, fingerprints: &[String]) -> Result<()> {
    let mut st = tx.prepare_cached(
        "INSERT OR IGNORE INTO oncall_escalation_alerts (escalation_id, fingerprint) VALUES (?1, ?2)",
    )?;
    for f in fingerprints {
        st.execute(params![id, f])?;
    }
    Ok(())
}

fn insert_pages(tx: &rusqlite::Transaction, pages: &[NewPage], now: i64) -> Result<Vec<i64>> {
    let mut st = tx.prepare_cached(
        "INSERT INTO oncall_pages (escalation_id, round, step_index, user_id, method_index, method_kind, payload, created_at, next_attempt)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
    )?;
    let mut ids = Vec::with_capacity(pages.len());
    for p in pages {
        st.execute(params![
            p.escalation_id,
            p.round,
            p.step_index,
            p.user_id,
            p.method_index,
            p.method_kind,
            p.payload,
            now
        ])?;
        ids.push(tx.last_insert_rowid());
    }
    Ok(ids)
}

impl Store {
    /// The highest outbox id applied for a group of a receiver (notifications
    /// handed over out of order or twice are recognised by it).
    pub fn oncall_group_last_outbox(&self, receiver: &str, group_key: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .lock()
            .query_row(
                "SELECT last_outbox_id FROM oncall_groups WHERE receiver = ?1 AND group_key = ?2",
                params![receiver, group_key],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The group's open (unresolved) escalation.
    pub fn oncall_open_escalation(
        &self,
        receiver: &str,
        group_key: &str,
    ) -> Result<Option<EscalationRow>> {
        Ok(self
            .conn
            .lock()
            .query_row(
                &format!(
                    "SELECT {ESCALATION_COLS} FROM oncall_escalations
                     WHERE receiver = ?1 AND group_key = ?2 AND resolved_at IS NULL"
                ),
                params![receiver, group_key],
                escalation,
            )
            .optional()?)
    }

    /// Applies one notification in one transaction: the escalation change,
    /// its events (an event without an escalation id gets the written one)
    /// and the group's last outbox id. Returns the escalation id written.
    pub fn oncall_apply_notification(
        &self,
        receiver: &str,
        group_key: &str,
        outbox_id: i64,
        write: Option<&EscalationWrite>,
        events: &[OncallEvent],
    ) -> Result<Option<i64>> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let id = match write {
            None => None,
            Some(EscalationWrite::Open {
                policy,
                triggered_at,
                alerts,
                fingerprints,
            }) => {
                tx.execute(
                    "INSERT INTO oncall_escalations (receiver, group_key, policy, triggered_at, alerts)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![receiver, group_key, policy, triggered_at, alerts],
                )?;
                let id = tx.last_insert_rowid();
                link_alerts(&tx, id, fingerprints)?;
                Some(id)
            }
            Some(EscalationWrite::Update {
                id,
                alerts,
                fingerprints,
            }) => {
                tx.execute(
                    "UPDATE oncall_escalations SET alerts = ?2 WHERE id = ?1",
                    params![id, alerts],
                )?;
                link_alerts(&tx, *id, fingerprints)?;
                Some(*id)
            }
            Some(EscalationWrite::Resolve {
                id,
                resolved_at,
                alerts,
                fingerprints,
            }) => {
                tx.execute(
                    "UPDATE oncall_escalations SET alerts = ?2, resolved_at = ?3 WHERE id = ?1",
                    params![id, alerts, resolved_at],
                )?;
                link_alerts(&tx, *id, fingerprints)?;
                Some(*id)
            }
        };
        for e in events {
            insert_event(&tx, e, id)?;
        }
        tx.execute(
            "INSERT INTO oncall_groups (receiver, group_key, last_outbox_id) VALUES (?1, ?2, ?3)
             ON CONFLICT(receiver, group_key) DO UPDATE SET last_outbox_id = max(last_outbox_id, ?3)",
            params![receiver, group_key, outbox_id],
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Opens `e` with its `opened` event unless an escalation of the same
    /// receiver and group exists (in any state): returns its id and whether
    /// it was opened now.
    pub fn oncall_open_direct(
        &self,
        e: &DirectEscalation,
        opened: &OncallEvent,
    ) -> Result<(i64, bool)> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM oncall_escalations WHERE receiver = ?1 AND group_key = ?2
                 ORDER BY id DESC LIMIT 1",
                params![e.receiver, e.group_key],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = existing {
            return Ok((id, false));
        }
        tx.execute(
            "INSERT INTO oncall_escalations (receiver, group_key, policy, triggered_at, alerts, note)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                e.receiver,
                e.group_key,
                e.policy,
                e.triggered_at,
                e.alerts,
                e.note
            ],
        )?;
        let id = tx.last_insert_rowid();
        link_alerts(&tx, id, &e.fingerprints)?;
        insert_event(&tx, opened, Some(id))?;
        tx.commit()?;
        Ok((id, true))
    }

    /// Escalations still escalating: neither acknowledged nor resolved.
    pub fn oncall_escalating(&self) -> Result<Vec<EscalationRow>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {ESCALATION_COLS} FROM oncall_escalations
             WHERE resolved_at IS NULL AND acked_at IS NULL ORDER BY id"
        ))?;
        let rows = st
            .query_map([], escalation)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn oncall_escalation(&self, id: i64) -> Result<Option<EscalationRow>> {
        Ok(self
            .conn
            .lock()
            .query_row(
                &format!("SELECT {ESCALATION_COLS} FROM oncall_escalations WHERE id = ?1"),
                [id],
                escalation,
            )
            .optional()?)
    }

    /// Escalations, newest first: only unresolved ones when `open_only`,
    /// only those that carried `fingerprint` when given.
    pub fn oncall_escalations(
        &self,
        open_only: bool,
        fingerprint: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EscalationRow>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {ESCALATION_COLS} FROM oncall_escalations e
             WHERE (?1 = 0 OR resolved_at IS NULL)
               AND (?2 IS NULL OR EXISTS (SELECT 1 FROM oncall_escalation_alerts a
                                          WHERE a.escalation_id = e.id AND a.fingerprint = ?2))
             ORDER BY id DESC LIMIT ?3"
        ))?;
        let rows = st
            .query_map(params![open_only, fingerprint, limit as i64], escalation)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The steps fired for an escalation, in firing order.
    pub fn oncall_steps(&self, escalation_id: i64) -> Result<Vec<StepRow>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(
            "SELECT escalation_id, round, step_index, due_at, fired_at, users FROM oncall_steps
             WHERE escalation_id = ?1 ORDER BY round, step_index",
        )?;
        let rows = st
            .query_map([escalation_id], |r| {
                Ok(StepRow {
                    escalation_id: r.get(0)?,
                    round: r.get(1)?,
                    step_index: r.get(2)?,
                    due_at: r.get(3)?,
                    fired_at: r.get(4)?,
                    users: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Records a step with its pages and event in one transaction, unless
    /// the step `(escalation, round, step_index)` was recorded before or the
    /// escalation stopped meanwhile (acknowledged or resolved). Returns the
    /// new page ids (`None`: nothing written).
    pub fn oncall_fire_step(
        &self,
        step: &StepRow,
        pages: &[NewPage],
        event: &OncallEvent,
    ) -> Result<Option<Vec<i64>>> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let escalating: Option<i64> = tx
            .query_row(
                "SELECT id FROM oncall_escalations
                 WHERE id = ?1 AND acked_at IS NULL AND resolved_at IS NULL",
                [step.escalation_id],
                |r| r.get(0),
            )
            .optional()?;
        if escalating.is_none() {
            return Ok(None);
        }
        let n = tx.execute(
            "INSERT OR IGNORE INTO oncall_steps (escalation_id, round, step_index, due_at, fired_at, users)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                step.escalation_id,
                step.round,
                step.step_index,
                step.due_at,
                step.fired_at,
                step.users
            ],
        )?;
        if n == 0 {
            return Ok(None);
        }
        let ids = insert_pages(&tx, pages, step.fired_at)?;
        insert_event(&tx, event, Some(step.escalation_id))?;
        tx.commit()?;
        Ok(Some(ids))
    }

    /// Enqueues pages outside an escalation (messages), with an event each.
    pub fn oncall_enqueue_pages(
        &self,
        pages: &[NewPage],
        events: &[OncallEvent],
        now: i64,
    ) -> Result<Vec<i64>> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let ids = insert_pages(&tx, pages, now)?;
        for e in events {
            insert_event(&tx, e, None)?;
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Acknowledges an escalation that is neither acknowledged nor resolved;
    /// `false` when it was (nothing written).
    pub fn oncall_ack(
        &self,
        id: i64,
        at: i64,
        by: &str,
        via: &str,
        event: &OncallEvent,
    ) -> Result<bool> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE oncall_escalations SET acked_at = ?2, acked_by = ?3, ack_via = ?4
             WHERE id = ?1 AND acked_at IS NULL AND resolved_at IS NULL",
            params![id, at, by, via],
        )?;
        if n == 0 {
            return Ok(false);
        }
        insert_event(&tx, event, Some(id))?;
        tx.commit()?;
        Ok(true)
    }

    /// Pending pages due at `now`, oldest first.
    pub fn oncall_pages_due(&self, now: i64, limit: usize) -> Result<Vec<PageRow>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {PAGE_COLS} FROM oncall_pages
             WHERE state = 'pending' AND next_attempt <= ?1 ORDER BY next_attempt, id LIMIT ?2"
        ))?;
        let rows = st
            .query_map(params![now, limit as i64], page)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// When the next pending page is due.
    pub fn oncall_pages_next_due(&self) -> Result<Option<i64>> {
        Ok(self.conn.lock().query_row(
            "SELECT min(next_attempt) FROM oncall_pages WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )?)
    }

    /// Records a page attempt and, optionally, an event, in one transaction.
    pub fn oncall_finish_page(&self, a: &PageAttempt, event: Option<&OncallEvent>) -> Result<()> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let finished = (a.state != OutboxState::Pending).then_some(a.at);
        tx.execute(
            "UPDATE oncall_pages SET state = ?2, next_attempt = ?3, attempts = attempts + 1,
               status_code = ?4, last_error = ?5, finished_at = ?6
             WHERE id = ?1",
            params![
                a.page_id,
                a.state.as_str(),
                a.next_attempt,
                a.status_code,
                a.error,
                finished
            ],
        )?;
        if let Some(e) = event {
            insert_event(&tx, e, None)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Pages of an escalation (all, in creation order).
    pub fn oncall_pages(&self, escalation_id: i64) -> Result<Vec<PageRow>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {PAGE_COLS} FROM oncall_pages WHERE escalation_id = ?1 ORDER BY id"
        ))?;
        let rows = st
            .query_map([escalation_id], page)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn oncall_page(&self, id: i64) -> Result<Option<PageRow>> {
        Ok(self
            .conn
            .lock()
            .query_row(
                &format!("SELECT {PAGE_COLS} FROM oncall_pages WHERE id = ?1"),
                [id],
                page,
            )
            .optional()?)
    }

    /// Deletes, in one transaction, the escalations resolved before `cutoff`
    /// (Unix ms) with everything that refers to them: events, pages (their
    /// attempts are columns of the page), fired steps and alert links. An
    /// escalation with a page still pending in the outbox is kept until that
    /// page is finished, so no page is lost; open and acknowledged-but-
    /// unresolved escalations are never touched.
    pub fn oncall_delete_resolved_before(&self, cutoff: i64) -> Result<RetentionCounts> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        tx.execute(
            "CREATE TEMP TABLE IF NOT EXISTS oncall_expired (id INTEGER PRIMARY KEY)",
            [],
        )?;
        tx.execute("DELETE FROM temp.oncall_expired", [])?;
        let escalations = tx.execute(
            "INSERT INTO temp.oncall_expired (id)
             SELECT e.id FROM oncall_escalations e
             WHERE e.resolved_at IS NOT NULL AND e.resolved_at < ?1
               AND NOT EXISTS (SELECT 1 FROM oncall_pages p
                               WHERE p.escalation_id = e.id AND p.state = 'pending')",
            [cutoff],
        )? as u64;
        let delete = |table: &str| -> Result<u64> {
            Ok(tx.execute(
                &format!(
                    "DELETE FROM {table} WHERE escalation_id IN (SELECT id FROM temp.oncall_expired)"
                ),
                [],
            )? as u64)
        };
        let counts = RetentionCounts {
            escalations,
            events: delete("oncall_events")?,
            pages: delete("oncall_pages")?,
            steps: delete("oncall_steps")?,
            alert_links: delete("oncall_escalation_alerts")?,
        };
        tx.execute(
            "DELETE FROM oncall_escalations WHERE id IN (SELECT id FROM temp.oncall_expired)",
            [],
        )?;
        tx.execute("DELETE FROM temp.oncall_expired", [])?;
        tx.commit()?;
        Ok(counts)
    }

    /// Events of an escalation, in order.
    pub fn oncall_events(&self, escalation_id: i64) -> Result<Vec<OncallEvent>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {EVENT_COLS} FROM oncall_events WHERE escalation_id = ?1 ORDER BY id"
        ))?;
        let rows = st
            .query_map([escalation_id], event)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_dir(dir.path()).unwrap();
        (dir, s)
    }

    fn ev(kind: &str, at: i64) -> OncallEvent {
        OncallEvent {
            id: 0,
            escalation_id: None,
            at,
            kind: kind.into(),
            actor: "day2".into(),
            text: kind.into(),
            data: "{}".into(),
        }
    }

    fn open(s: &Store, outbox: i64) -> i64 {
        s.oncall_apply_notification(
            "pager",
            "g",
            outbox,
            Some(&EscalationWrite::Open {
                policy: "p".into(),
                triggered_at: 1000,
                alerts: "[]".into(),
                fingerprints: vec!["fa".into()],
            }),
            &[ev("opened", 1000)],
        )
        .unwrap()
        .unwrap()
    }

    #[test]
    fn a_direct_escalation_opens_once_with_its_note_and_alerts() {
        let (_d, s) = store();
        let e = DirectEscalation {
            receiver: "runbook:r".into(),
            group_key: "run:1:page".into(),
            policy: "p".into(),
            triggered_at: 1000,
            alerts: "[]".into(),
            fingerprints: vec!["fa".into()],
            note: "rollback failed".into(),
        };
        let (id, opened) = s.oncall_open_direct(&e, &ev("opened", 1000)).unwrap();
        assert!(opened);
        // again (a repeated step), even once resolved: the same escalation
        s.oncall_apply_notification(
            "runbook:r",
            "run:1:page",
            0,
            Some(&EscalationWrite::Resolve {
                id,
                resolved_at: 2000,
                alerts: "[]".into(),
                fingerprints: vec![],
            }),
            &[],
        )
        .unwrap();
        assert_eq!(
            s.oncall_open_direct(&e, &ev("opened", 3000)).unwrap(),
            (id, false)
        );
        let row = s.oncall_escalation(id).unwrap().unwrap();
        assert_eq!(row.note, "rollback failed");
        assert_eq!(
            s.oncall_escalations(false, Some("fa"), 10).unwrap().len(),
            1
        );
        assert_eq!(s.oncall_events(id).unwrap().len(), 1);
    }

    #[test]
    fn one_open_escalation_per_group_and_its_events() {
        let (_d, s) = store();
        let id = open(&s, 5);
        assert_eq!(s.oncall_group_last_outbox("pager", "g").unwrap(), Some(5));
        assert_eq!(
            s.oncall_open_escalation("pager", "g").unwrap().unwrap().id,
            id
        );
        // a second open escalation of the same group is refused by the index
        assert!(
            s.oncall_apply_notification(
                "pager",
                "g",
                6,
                Some(&EscalationWrite::Open {
                    policy: "p".into(),
                    triggered_at: 2000,
                    alerts: "[]".into(),
                    fingerprints: vec![],
                }),
                &[],
            )
            .is_err()
        );
        assert_eq!(s.oncall_group_last_outbox("pager", "g").unwrap(), Some(5));
        assert_eq!(s.oncall_events(id).unwrap()[0].kind, "opened");
        assert_eq!(s.oncall_escalations(true, Some("fa"), 10).unwrap().len(), 1);
        assert!(
            s.oncall_escalations(true, Some("fb"), 10)
                .unwrap()
                .is_empty()
        );
        // an older outbox id does not lower the group's mark
        s.oncall_apply_notification("pager", "g", 3, None, &[])
            .unwrap();
        assert_eq!(s.oncall_group_last_outbox("pager", "g").unwrap(), Some(5));
    }

    #[test]
    fn steps_fire_once_and_not_after_ack() {
        let (_d, s) = store();
        let id = open(&s, 1);
        let step = StepRow {
            escalation_id: id,
            round: 1,
            step_index: 0,
            due_at: 1000,
            fired_at: 1001,
            users: "[\"alice\"]".into(),
        };
        let page = NewPage {
            escalation_id: Some(id),
            round: Some(1),
            step_index: Some(0),
            user_id: "alice".into(),
            method_index: 0,
            method_kind: "webhook".into(),
            payload: "{}".into(),
        };
        let ids = s
            .oncall_fire_step(&step, std::slice::from_ref(&page), &ev("step", 1001))
            .unwrap()
            .unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(
            s.oncall_fire_step(&step, std::slice::from_ref(&page), &ev("step", 1002))
                .unwrap(),
            None,
            "the same (round, step) twice"
        );
        assert_eq!(s.oncall_pages(id).unwrap().len(), 1);
        assert_eq!(s.oncall_pages_due(1001, 10).unwrap().len(), 1);
        assert_eq!(s.oncall_pages_next_due().unwrap(), Some(1001));

        assert!(
            s.oncall_ack(id, 1500, "bob", "api", &ev("acknowledged", 1500))
                .unwrap()
        );
        assert!(
            !s.oncall_ack(id, 1600, "carol", "api", &ev("acknowledged", 1600))
                .unwrap()
        );
        assert!(s.oncall_escalating().unwrap().is_empty());
        let step2 = StepRow {
            step_index: 1,
            ..step
        };
        assert_eq!(
            s.oncall_fire_step(&step2, &[page], &ev("step", 2000))
                .unwrap(),
            None
        );
        let e = s.oncall_escalation(id).unwrap().unwrap();
        assert_eq!(
            (e.acked_at, e.acked_by.as_deref()),
            (Some(1500), Some("bob"))
        );

        s.oncall_finish_page(
            &PageAttempt {
                page_id: ids[0],
                state: OutboxState::Sent,
                next_attempt: 1700,
                status_code: Some(200),
                error: String::new(),
                at: 1700,
            },
            Some(&OncallEvent {
                escalation_id: Some(id),
                ..ev("page_sent", 1700)
            }),
        )
        .unwrap();
        let p = s.oncall_page(ids[0]).unwrap().unwrap();
        assert_eq!(
            (p.state, p.attempts, p.finished_at),
            (OutboxState::Sent, 1, Some(1700))
        );
        assert!(s.oncall_pages_due(5000, 10).unwrap().is_empty());
        let kinds: Vec<String> = s
            .oncall_events(id)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["opened", "step", "acknowledged", "page_sent"]);
    }

    /// An escalation of group `g` triggered at `at` with one fired step and
    /// one page (finished unless `pending`), resolved at `resolved` if given,
    /// acknowledged at `acked` if given.
    fn history(
        s: &Store,
        g: &str,
        at: i64,
        acked: Option<i64>,
        resolved: Option<i64>,
        pending: bool,
    ) -> i64 {
        let id = s
            .oncall_apply_notification(
                "pager",
                g,
                at,
                Some(&EscalationWrite::Open {
                    policy: "p".into(),
                    triggered_at: at,
                    alerts: "[]".into(),
                    fingerprints: vec![format!("fp-{g}")],
                }),
                &[ev("opened", at)],
            )
            .unwrap()
            .unwrap();
        let step = StepRow {
            escalation_id: id,
            round: 1,
            step_index: 0,
            due_at: at,
            fired_at: at,
            users: "[\"alice\"]".into(),
        };
        let page = NewPage {
            escalation_id: Some(id),
            round: Some(1),
            step_index: Some(0),
            user_id: "alice".into(),
            method_index: 0,
            method_kind: "webhook".into(),
            payload: "{}".into(),
        };
        let pages = s
            .oncall_fire_step(&step, &[page], &ev("step", at))
            .unwrap()
            .unwrap();
        if !pending {
            s.oncall_finish_page(
                &PageAttempt {
                    page_id: pages[0],
                    state: OutboxState::Sent,
                    next_attempt: at,
                    status_code: Some(200),
                    error: String::new(),
                    at,
                },
                Some(&OncallEvent {
                    escalation_id: Some(id),
                    ..ev("page_sent", at)
                }),
            )
            .unwrap();
        }
        if let Some(t) = acked {
            assert!(
                s.oncall_ack(id, t, "bob", "api", &ev("acknowledged", t))
                    .unwrap()
            );
        }
        if let Some(t) = resolved {
            s.oncall_apply_notification(
                "pager",
                g,
                t,
                Some(&EscalationWrite::Resolve {
                    id,
                    resolved_at: t,
                    alerts: "[]".into(),
                    fingerprints: vec![],
                }),
                &[ev("resolved", t)],
            )
            .unwrap();
        }
        id
    }

    fn count(s: &Store, table: &str, id: i64) -> i64 {
        let col = if table == "oncall_escalations" {
            "id"
        } else {
            "escalation_id"
        };
        s.conn
            .lock()
            .query_row(
                &format!("SELECT count(*) FROM {table} WHERE {col} = ?1"),
                [id],
                |r| r.get(0),
            )
            .unwrap()
    }

    const TABLES: [&str; 5] = [
        "oncall_escalations",
        "oncall_events",
        "oncall_pages",
        "oncall_steps",
        "oncall_escalation_alerts",
    ];

    #[test]
    fn retention_deletes_old_resolved_escalations_with_all_their_rows() {
        let (_d, s) = store();
        let old = history(&s, "old", 1000, Some(1500), Some(2000), false);
        let open = history(&s, "open", 1000, None, None, false);
        let acked = history(&s, "acked", 1000, Some(1500), None, false);
        let recent = history(&s, "recent", 1000, None, Some(9000), false);
        let paging = history(&s, "paging", 1000, None, Some(2000), true);
        let c = s.oncall_delete_resolved_before(5000).unwrap();
        assert_eq!(
            c,
            RetentionCounts {
                escalations: 1,
                // opened, step, page_sent, acknowledged, resolved
                events: 5,
                pages: 1,
                steps: 1,
                alert_links: 1,
            }
        );
        for t in TABLES {
            assert_eq!(count(&s, t, old), 0, "{t} of the old escalation");
            for kept in [open, acked, recent, paging] {
                assert!(count(&s, t, kept) > 0, "{t} of {kept}");
            }
        }
        assert!(s.oncall_escalation(old).unwrap().is_none());
        assert!(
            s.oncall_escalation(acked)
                .unwrap()
                .unwrap()
                .acked_at
                .is_some()
        );
        // the pending page goes out, later passes take its escalation; again is a no-op
        assert_eq!(s.oncall_pages_due(i64::MAX, 10).unwrap().len(), 1);
        s.conn
            .lock()
            .execute(
                "UPDATE oncall_pages SET state = 'sent' WHERE escalation_id = ?1",
                [paging],
            )
            .unwrap();
        assert_eq!(
            s.oncall_delete_resolved_before(5000).unwrap().escalations,
            1
        );
        assert!(s.oncall_escalation(paging).unwrap().is_none());
        assert_eq!(
            s.oncall_delete_resolved_before(5000).unwrap(),
            RetentionCounts::default()
        );
        assert!(s.oncall_escalation(recent).unwrap().is_some());
    }
}
