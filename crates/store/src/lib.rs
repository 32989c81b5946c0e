//! day2's control-plane state store: one SQLite file (`<data_dir>/state.db`,
//! WAL journal, `synchronous=FULL`) holding what must survive a restart:
//! alerts, silences, the notification log, the notification outbox and the
//! delivery audit.
//!
//! The API is synchronous behind a mutex; async callers use
//! `spawn_blocking`. Rows are plain data (JSON text for label sets, Unix
//! milliseconds for times): this crate knows nothing of alert semantics.
//!
//! The schema evolves by numbered migrations: the alert hub's core tables
//! by [`MIGRATIONS`] (`user_version` records how far a file has been
//! migrated), every other feature (on-call, incidents, remediation, ...) by
//! its own numbered list in [`COMPONENTS`], with its version in the
//! `component_schema` table. A feature's tables and queries live in a module
//! of this crate named after the feature, so features never collide on a
//! migration number and all SQL stays in one crate.

pub mod autoscale;
pub mod deploy;
pub mod incident;
pub mod oncall;
pub mod remediate;

use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("state store {path}: {message}")]
    Open { path: String, message: String },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Schema migrations, applied in order; index + 1 is the schema version.
pub const MIGRATIONS: &[&str] = &[
    // 1: alert hub state
    r#"
    CREATE TABLE alerts (
        fingerprint   TEXT PRIMARY KEY,
        labels        TEXT NOT NULL,
        annotations   TEXT NOT NULL,
        starts_at     INTEGER NOT NULL,
        ends_at       INTEGER,
        updated_at    INTEGER NOT NULL,
        generator_url TEXT NOT NULL,
        timeout       INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE silences (
        id         TEXT PRIMARY KEY,
        matchers   TEXT NOT NULL,
        starts_at  INTEGER NOT NULL,
        ends_at    INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        comment    TEXT NOT NULL
    );
    CREATE TABLE nflog (
        group_key   TEXT NOT NULL,
        receiver    TEXT NOT NULL,
        integration TEXT NOT NULL,
        firing      TEXT NOT NULL,
        resolved    TEXT NOT NULL,
        firing_hash TEXT NOT NULL,
        resolved_hash TEXT NOT NULL,
        sent_at     INTEGER NOT NULL,
        PRIMARY KEY (group_key, receiver, integration)
    );
    CREATE TABLE outbox (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        receiver     TEXT NOT NULL,
        integration  TEXT NOT NULL,
        group_key    TEXT NOT NULL,
        payload      TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        next_attempt INTEGER NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0,
        state        TEXT NOT NULL DEFAULT 'pending',
        last_error   TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX outbox_pending ON outbox (state, next_attempt);
    CREATE TABLE delivery_attempts (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        outbox_id    INTEGER NOT NULL,
        receiver     TEXT NOT NULL,
        integration  TEXT NOT NULL,
        group_key    TEXT NOT NULL,
        payload_hash TEXT NOT NULL,
        status_code  INTEGER,
        error        TEXT NOT NULL,
        latency_ms   INTEGER NOT NULL,
        retry        INTEGER NOT NULL,
        at           INTEGER NOT NULL
    );
    CREATE INDEX delivery_attempts_group ON delivery_attempts (group_key, at);
    "#,
    // 2: which alerts each notification carried (delivery audit by alert)
    r#"
    ALTER TABLE outbox ADD COLUMN fingerprints TEXT NOT NULL DEFAULT '';
    CREATE INDEX delivery_attempts_outbox ON delivery_attempts (outbox_id);
    "#,
    // 3: per-feature schema versions (see COMPONENTS)
    r#"
    CREATE TABLE component_schema (
        component TEXT PRIMARY KEY,
        version   INTEGER NOT NULL
    );
    "#,
];

/// Features with tables of their own: (name, migrations applied in order;
/// index + 1 is the feature's schema version). Applied after [`MIGRATIONS`].
pub const COMPONENTS: &[(&str, &[&str])] = &[
    ("deploy", deploy::MIGRATIONS),
    ("autoscale", autoscale::MIGRATIONS),
    // remediation: runs, audit log, breakers, handled triggers
    ("remediate", remediate::MIGRATIONS),
    ("oncall", oncall::MIGRATIONS),
    ("incident", incident::MIGRATIONS),
];

/// A stored alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    pub fingerprint: String,
    /// JSON object of label name -> value.
    pub labels: String,
    /// JSON object of annotation name -> value.
    pub annotations: String,
    pub starts_at: i64,
    pub ends_at: Option<i64>,
    pub updated_at: i64,
    pub generator_url: String,
    /// Whether `ends_at` came from the resolve timeout.
    pub timeout: bool,
}

/// A stored silence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilenceRow {
    pub id: String,
    /// JSON list of matchers (the caller's format).
    pub matchers: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub updated_at: i64,
    pub created_by: String,
    pub comment: String,
}

/// What was last notified for a group to one integration of a receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NflogEntry {
    pub group_key: String,
    pub receiver: String,
    pub integration: String,
    /// Fingerprints notified as firing / resolved.
    pub firing: Vec<String>,
    pub resolved: Vec<String>,
    pub sent_at: i64,
}

/// Outbox entry states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    Pending,
    Sent,
    Failed,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sent => "sent",
            OutboxState::Failed => "failed",
        }
    }
    fn parse(s: &str) -> OutboxState {
        match s {
            "sent" => OutboxState::Sent,
            "failed" => OutboxState::Failed,
            _ => OutboxState::Pending,
        }
    }
}

/// A notification waiting to be (or already) delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: i64,
    pub receiver: String,
    pub integration: String,
    pub group_key: String,
    pub payload: String,
    pub created_at: i64,
    pub next_attempt: i64,
    pub attempts: u32,
    pub state: OutboxState,
    pub last_error: String,
}

/// A new outbox entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub receiver: String,
    pub integration: String,
    pub group_key: String,
    pub payload: String,
    /// Fingerprints of the alerts it carries (for the audit).
    pub fingerprints: Vec<String>,
}

/// One delivery attempt, for the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub outbox_id: i64,
    pub receiver: String,
    pub integration: String,
    pub group_key: String,
    pub payload_hash: String,
    pub status_code: Option<u16>,
    pub error: String,
    pub latency_ms: i64,
    pub retry: u32,
    pub at: i64,
}

/// The state store.
pub struct Store {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// A 64-bit FNV-1a hash of sorted strings, hex: the "hash of the set" kept
/// next to notification-log sets.
pub fn set_hash(items: &[String]) -> String {
    let mut sorted: Vec<&String> = items.iter().collect();
    sorted.sort();
    let mut h: u64 = 0xcbf29ce484222325;
    for s in sorted {
        for b in s.bytes().chain(std::iter::once(0xff)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016x}")
}

fn list_json(items: &[String]) -> String {
    let mut s = String::from("[");
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('"');
        // fingerprints are hex; escape anyway
        for c in it.chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push(']');
    s
}

fn parse_list(s: &str) -> Vec<String> {
    let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
    if inner.trim().is_empty() {
        return Vec::new();
    }
    inner
        .split(',')
        .map(|p| {
            p.trim()
                .trim_matches('"')
                .replace("\\\"", "\"")
                .replace("\\\\", "\\")
        })
        .collect()
}

fn component_version(conn: &Connection, component: &str) -> rusqlite::Result<i64> {
    Ok(conn
        .query_row(
            "SELECT version FROM component_schema WHERE component = ?1",
            [component],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

/// Applies the migrations of one feature that this file has not seen yet,
/// each in its own transaction with the version bump.
fn migrate_component(conn: &mut Connection, component: &str, migrations: &[&str]) -> Result<()> {
    let version = component_version(conn, component)?;
    if version as usize > migrations.len() {
        return Err(Error::Open {
            path: conn.path().unwrap_or("").to_string(),
            message: format!(
                "schema version {version} of {component} is newer than this binary knows ({})",
                migrations.len()
            ),
        });
    }
    for (i, m) in migrations.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(m)?;
        tx.execute(
            "INSERT INTO component_schema (component, version) VALUES (?1, ?2)
             ON CONFLICT(component) DO UPDATE SET version = ?2",
            params![component, (i + 1) as i64],
        )?;
        tx.commit()?;
    }
    Ok(())
}

impl Store {
    /// Opens (creating if needed) `<dir>/state.db` and migrates it.
    pub fn open_dir(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Open {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        Self::open(&dir.join("state.db"))
    }

    /// Opens (creating if needed) a database file and migrates it.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let store = Store {
            conn: Mutex::new(conn),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Applies the migrations this file has not seen yet.
    fn migrate(&self) -> Result<()> {
        let mut conn = self.conn.lock();
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version as usize > MIGRATIONS.len() {
            return Err(Error::Open {
                path: conn.path().unwrap_or("").to_string(),
                message: format!(
                    "schema version {version} is newer than this binary knows ({})",
                    MIGRATIONS.len()
                ),
            });
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(m)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        for (component, migrations) in COMPONENTS {
            migrate_component(&mut conn, component, migrations)?;
        }
        Ok(())
    }

    /// The schema version of one feature's tables (0: none yet).
    pub fn component_version(&self, component: &str) -> Result<i64> {
        Ok(component_version(&self.conn.lock(), component)?)
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .lock()
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    // ------------------------------------------------------------ alerts

    pub fn upsert_alerts(&self, rows: &[AlertRow]) -> Result<()> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO alerts (fingerprint, labels, annotations, starts_at, ends_at, updated_at, generator_url, timeout)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(fingerprint) DO UPDATE SET labels=?2, annotations=?3, starts_at=?4, ends_at=?5,
                   updated_at=?6, generator_url=?7, timeout=?8",
            )?;
            for r in rows {
                st.execute(params![
                    r.fingerprint,
                    r.labels,
                    r.annotations,
                    r.starts_at,
                    r.ends_at,
                    r.updated_at,
                    r.generator_url,
                    r.timeout
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn load_alerts(&self) -> Result<Vec<AlertRow>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare(
            "SELECT fingerprint, labels, annotations, starts_at, ends_at, updated_at, generator_url, timeout
             FROM alerts ORDER BY fingerprint",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(AlertRow {
                    fingerprint: r.get(0)?,
                    labels: r.get(1)?,
                    annotations: r.get(2)?,
                    starts_at: r.get(3)?,
                    ends_at: r.get(4)?,
                    updated_at: r.get(5)?,
                    generator_url: r.get(6)?,
                    timeout: r.get(7)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn delete_alerts(&self, fingerprints: &[String]) -> Result<()> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached("DELETE FROM alerts WHERE fingerprint = ?1")?;
            for f in fingerprints {
                st.execute([f])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    // ------------------------------------------------------------ silences

    pub fn upsert_silence(&self, s: &SilenceRow) -> Result<()> {
        self.conn.lock().execute(
            "INSERT INTO silences (id, matchers, starts_at, ends_at, updated_at, created_by, comment)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(id) DO UPDATE SET matchers=?2, starts_at=?3, ends_at=?4, updated_at=?5,
               created_by=?6, comment=?7",
            params![
                s.id,
                s.matchers,
                s.starts_at,
                s.ends_at,
                s.updated_at,
                s.created_by,
                s.comment
            ],
        )?;
        Ok(())
    }

    pub fn load_silences(&self) -> Result<Vec<SilenceRow>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare(
            "SELECT id, matchers, starts_at, ends_at, updated_at, created_by, comment
             FROM silences ORDER BY starts_at, id",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(SilenceRow {
                    id: r.get(0)?,
                    matchers: r.get(1)?,
                    starts_at: r.get(2)?,
                    ends_at: r.get(3)?,
                    updated_at: r.get(4)?,
                    created_by: r.get(5)?,
                    comment: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Deletes silences that ended before `before` (garbage collection).
    pub fn delete_silences_ended_before(&self, before: i64) -> Result<usize> {
        Ok(self
            .conn
            .lock()
            .execute("DELETE FROM silences WHERE ends_at < ?1", [before])?)
    }

    // ------------------------------------------------------------ notification log

    pub fn nflog_get(
        &self,
        group_key: &str,
        receiver: &str,
        integration: &str,
    ) -> Result<Option<NflogEntry>> {
        let conn = self.conn.lock();
        Ok(conn
            .query_row(
                "SELECT firing, resolved, sent_at FROM nflog
                 WHERE group_key=?1 AND receiver=?2 AND integration=?3",
                params![group_key, receiver, integration],
                |r| {
                    Ok(NflogEntry {
                        group_key: group_key.to_string(),
                        receiver: receiver.to_string(),
                        integration: integration.to_string(),
                        firing: parse_list(&r.get::<_, String>(0)?),
                        resolved: parse_list(&r.get::<_, String>(1)?),
                        sent_at: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    /// Writes notification-log entries and outbox entries in one
    /// transaction: a flush is either wholly recorded or not at all.
    /// Returns the outbox ids.
    pub fn commit_flush(
        &self,
        nflog: &[NflogEntry],
        notifications: &[NewNotification],
        now: i64,
    ) -> Result<Vec<i64>> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let mut ids = Vec::with_capacity(notifications.len());
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO nflog (group_key, receiver, integration, firing, resolved, firing_hash, resolved_hash, sent_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(group_key, receiver, integration) DO UPDATE SET
                   firing=?4, resolved=?5, firing_hash=?6, resolved_hash=?7, sent_at=?8",
            )?;
            for e in nflog {
                st.execute(params![
                    e.group_key,
                    e.receiver,
                    e.integration,
                    list_json(&e.firing),
                    list_json(&e.resolved),
                    set_hash(&e.firing),
                    set_hash(&e.resolved),
                    e.sent_at
                ])?;
            }
            let mut ins = tx.prepare_cached(
                "INSERT INTO outbox (receiver, integration, group_key, payload, created_at, next_attempt, fingerprints)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
            )?;
            for n in notifications {
                let fps = format!(",{},", n.fingerprints.join(","));
                ins.execute(params![
                    n.receiver,
                    n.integration,
                    n.group_key,
                    n.payload,
                    now,
                    fps
                ])?;
                ids.push(tx.last_insert_rowid());
            }
        }
        tx.commit()?;
        Ok(ids)
    }

    // ------------------------------------------------------------ outbox

    fn outbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxEntry> {
        Ok(OutboxEntry {
            id: r.get(0)?,
            receiver: r.get(1)?,
            integration: r.get(2)?,
            group_key: r.get(3)?,
            payload: r.get(4)?,
            created_at: r.get(5)?,
            next_attempt: r.get(6)?,
            attempts: r.get(7)?,
            state: OutboxState::parse(&r.get::<_, String>(8)?),
            last_error: r.get(9)?,
        })
    }

    const OUTBOX_COLS: &str = "id, receiver, integration, group_key, payload, created_at, next_attempt, attempts, state, last_error";

    /// Pending entries due at `now`, oldest first.
    pub fn outbox_due(&self, now: i64, limit: usize) -> Result<Vec<OutboxEntry>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {} FROM outbox WHERE state='pending' AND next_attempt <= ?1 ORDER BY next_attempt, id LIMIT ?2",
            Self::OUTBOX_COLS
        ))?;
        let rows = st
            .query_map(params![now, limit as i64], Self::outbox_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The earliest next attempt of any pending entry.
    pub fn outbox_next_due(&self) -> Result<Option<i64>> {
        let conn = self.conn.lock();
        Ok(conn.query_row(
            "SELECT MIN(next_attempt) FROM outbox WHERE state='pending'",
            [],
            |r| r.get(0),
        )?)
    }

    /// Every entry, newest first (for audit queries and tests).
    pub fn outbox_list(&self, limit: usize) -> Result<Vec<OutboxEntry>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {} FROM outbox ORDER BY id DESC LIMIT ?1",
            Self::OUTBOX_COLS
        ))?;
        let rows = st
            .query_map([limit as i64], Self::outbox_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Records an attempt and moves the entry on: `Sent`, `Failed`, or
    /// `Pending` again with a new `next_attempt`; in one transaction.
    pub fn outbox_finish_attempt(
        &self,
        attempt: &Attempt,
        state: OutboxState,
        next_attempt: i64,
    ) -> Result<()> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO delivery_attempts (outbox_id, receiver, integration, group_key, payload_hash,
               status_code, error, latency_ms, retry, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                attempt.outbox_id,
                attempt.receiver,
                attempt.integration,
                attempt.group_key,
                attempt.payload_hash,
                attempt.status_code,
                attempt.error,
                attempt.latency_ms,
                attempt.retry,
                attempt.at
            ],
        )?;
        tx.execute(
            "UPDATE outbox SET state=?2, next_attempt=?3, attempts=attempts+1, last_error=?4 WHERE id=?1",
            params![attempt.outbox_id, state.as_str(), next_attempt, attempt.error],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Retention: deletes finished outbox entries created, delivery attempts
    /// made, and notification-log entries written before `before`. Pending
    /// entries are kept. Returns the number of rows deleted.
    pub fn gc(&self, before: i64) -> Result<usize> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let mut n = tx.execute(
            "DELETE FROM outbox WHERE state != 'pending' AND created_at < ?1",
            [before],
        )?;
        n += tx.execute("DELETE FROM delivery_attempts WHERE at < ?1", [before])?;
        n += tx.execute("DELETE FROM nflog WHERE sent_at < ?1", [before])?;
        tx.commit()?;
        Ok(n)
    }

    /// Deletes sent and failed entries created before `before`.
    pub fn outbox_gc(&self, before: i64) -> Result<usize> {
        Ok(self.conn.lock().execute(
            "DELETE FROM outbox WHERE state != 'pending' AND created_at < ?1",
            [before],
        )?)
    }

    /// The delivery audit: notifications (newest first) that carried the
    /// alert with `fingerprint` (all when `None`), each with its attempts
    /// (oldest first).
    pub fn notifications(
        &self,
        fingerprint: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(OutboxEntry, Vec<Attempt>)>> {
        let entries = {
            let conn = self.conn.lock();
            let mut st = conn.prepare_cached(&format!(
                "SELECT {} FROM outbox WHERE (?1 IS NULL OR instr(fingerprints, ?1) > 0)
                 ORDER BY id DESC LIMIT ?2",
                Self::OUTBOX_COLS
            ))?;
            let pat = fingerprint.map(|f| format!(",{f},"));
            st.query_map(params![pat, limit as i64], Self::outbox_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        };
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(
            "SELECT outbox_id, receiver, integration, group_key, payload_hash, status_code, error,
                    latency_ms, retry, at
             FROM delivery_attempts WHERE outbox_id = ?1 ORDER BY id",
        )?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let attempts = st
                .query_map([e.id], |r| {
                    Ok(Attempt {
                        outbox_id: r.get(0)?,
                        receiver: r.get(1)?,
                        integration: r.get(2)?,
                        group_key: r.get(3)?,
                        payload_hash: r.get(4)?,
                        status_code: r.get(5)?,
                        error: r.get(6)?,
                        latency_ms: r.get(7)?,
                        retry: r.get(8)?,
                        at: r.get(9)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            out.push((e, attempts));
        }
        Ok(out)
    }

    /// Delivery attempts, newest first, optionally for one group key.
    pub fn attempts(&self, group_key: Option<&str>, limit: usize) -> Result<Vec<Attempt>> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(
            "SELECT outbox_id, receiver, integration, group_key, payload_hash, status_code, error,
                    latency_ms, retry, at
             FROM delivery_attempts WHERE (?1 IS NULL OR group_key = ?1)
             ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = st
            .query_map(params![group_key, limit as i64], |r| {
                Ok(Attempt {
                    outbox_id: r.get(0)?,
                    receiver: r.get(1)?,
                    integration: r.get(2)?,
                    group_key: r.get(3)?,
                    payload_hash: r.get(4)?,
                    status_code: r.get(5)?,
                    error: r.get(6)?,
                    latency_ms: r.get(7)?,
                    retry: r.get(8)?,
                    at: r.get(9)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(fp: &str, ends: Option<i64>) -> AlertRow {
        AlertRow {
            fingerprint: fp.into(),
            labels: r#"{"alertname":"x"}"#.into(),
            annotations: "{}".into(),
            starts_at: 1,
            ends_at: ends,
            updated_at: 2,
            generator_url: String::new(),
            timeout: false,
        }
    }

    #[test]
    fn opens_migrates_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_dir(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        s.upsert_alerts(&[alert("a", None)]).unwrap();
        drop(s);
        let s = Store::open_dir(dir.path()).unwrap();
        assert_eq!(s.load_alerts().unwrap(), vec![alert("a", None)]);
        let mode: String = s
            .conn
            .lock()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn component_migrations_apply_once_and_refuse_newer_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let s = Store::open(&path).unwrap();
        let v1: &[&str] = &["CREATE TABLE demo (a INTEGER);"];
        let v2: &[&str] = &[v1[0], "ALTER TABLE demo ADD COLUMN b TEXT;"];
        {
            let mut c = s.conn.lock();
            migrate_component(&mut c, "demo", v1).unwrap();
            c.execute("INSERT INTO demo (a) VALUES (7)", []).unwrap();
            // re-applying is a no-op; a longer list applies only the new step
            migrate_component(&mut c, "demo", v1).unwrap();
            migrate_component(&mut c, "demo", v2).unwrap();
            let (a, b): (i64, Option<String>) = c
                .query_row("SELECT a, b FROM demo", [], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap();
            assert_eq!((a, b), (7, None));
        }
        assert_eq!(s.component_version("demo").unwrap(), 2);
        assert_eq!(s.component_version("other").unwrap(), 0);
        let err = migrate_component(&mut s.conn.lock(), "demo", v1).unwrap_err();
        assert!(err.to_string().contains("newer than this binary"), "{err}");
    }

    #[test]
    fn migrates_an_older_schema_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.execute(
                "INSERT INTO outbox (receiver, integration, group_key, payload, created_at, next_attempt)
                 VALUES ('r', 'webhook[0]', 'g', '{}', 1, 1)",
                [],
            )
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let due = s.outbox_due(1, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(s.notifications(None, 10).unwrap().len(), 1);
        drop(s);
        // a file from a newer binary is refused, not damaged
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        assert!(Store::open(&path).is_err());
    }

    #[test]
    fn alerts_upsert_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_dir(dir.path()).unwrap();
        s.upsert_alerts(&[alert("a", None), alert("b", None)])
            .unwrap();
        s.upsert_alerts(&[alert("a", Some(10))]).unwrap();
        let all = s.load_alerts().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].ends_at, Some(10));
        s.delete_alerts(&["a".into()]).unwrap();
        assert_eq!(s.load_alerts().unwrap(), vec![alert("b", None)]);
    }

    #[test]
    fn silences_roundtrip_and_gc() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_dir(dir.path()).unwrap();
        let mut row = SilenceRow {
            id: "s1".into(),
            matchers: "[]".into(),
            starts_at: 1,
            ends_at: 5,
            updated_at: 1,
            created_by: "me".into(),
            comment: "c".into(),
        };
        s.upsert_silence(&row).unwrap();
        row.ends_at = 3;
        s.upsert_silence(&row).unwrap();
        assert_eq!(s.load_silences().unwrap(), vec![row]);
        assert_eq!(s.delete_silences_ended_before(4).unwrap(), 1);
        assert!(s.load_silences().unwrap().is_empty());
    }

    #[test]
    fn flush_commits_nflog_and_outbox_together() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_dir(dir.path()).unwrap();
        assert!(s.nflog_get("g", "r", "webhook[0]").unwrap().is_none());
        let e = NflogEntry {
            group_key: "g".into(),
            receiver: "r".into(),
            integration: "webhook[0]".into(),
            firing: vec!["a".into(), "b".into()],
            resolved: vec![],
            sent_at: 100,
        };
        let n = NewNotification {
            receiver: "r".into(),
            integration: "webhook[0]".into(),
            group_key: "g".into(),
            payload: "{}".into(),
            fingerprints: vec!["fa".into(), "fb".into()],
        };
        let ids = s.commit_flush(std::slice::from_ref(&e), &[n], 100).unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(s.nflog_get("g", "r", "webhook[0]").unwrap(), Some(e));
        let due = s.outbox_due(100, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].state, OutboxState::Pending);
        assert!(s.outbox_due(99, 10).unwrap().is_empty());
        assert_eq!(s.outbox_next_due().unwrap(), Some(100));
    }

    #[test]
    fn attempts_move_outbox_entries() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_dir(dir.path()).unwrap();
        let n = NewNotification {
            receiver: "r".into(),
            integration: "webhook[0]".into(),
            group_key: "g".into(),
            payload: "{}".into(),
            fingerprints: vec!["fa".into(), "fb".into()],
        };
        let id = s.commit_flush(&[], &[n], 0).unwrap()[0];
        let mut a = Attempt {
            outbox_id: id,
            receiver: "r".into(),
            integration: "webhook[0]".into(),
            group_key: "g".into(),
            payload_hash: "h".into(),
            status_code: Some(500),
            error: "server error".into(),
            latency_ms: 3,
            retry: 0,
            at: 10,
        };
        s.outbox_finish_attempt(&a, OutboxState::Pending, 50)
            .unwrap();
        assert!(s.outbox_due(49, 10).unwrap().is_empty());
        let due = s.outbox_due(50, 10).unwrap();
        assert_eq!(due[0].attempts, 1);
        assert_eq!(due[0].last_error, "server error");
        a.status_code = Some(200);
        a.error.clear();
        a.retry = 1;
        s.outbox_finish_attempt(&a, OutboxState::Sent, 50).unwrap();
        assert!(s.outbox_due(1000, 10).unwrap().is_empty());
        assert_eq!(s.outbox_next_due().unwrap(), None);
        let list = s.outbox_list(10).unwrap();
        assert_eq!(list[0].state, OutboxState::Sent);
        let att = s.attempts(Some("g"), 10).unwrap();
        assert_eq!(att.len(), 2);
        assert_eq!(att[0].status_code, Some(200));
        assert_eq!(att[1].status_code, Some(500));
        assert!(s.attempts(Some("other"), 10).unwrap().is_empty());
        let audit = s.notifications(Some("fb"), 10).unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].1.len(), 2);
        assert_eq!(audit[0].1[0].status_code, Some(500));
        assert!(s.notifications(Some("f"), 10).unwrap().is_empty());
        assert_eq!(s.notifications(None, 10).unwrap().len(), 1);
        assert_eq!(s.gc(11).unwrap(), 3, "entry and two attempts");
        assert_eq!(s.gc(11).unwrap(), 0);
    }

    #[test]
    fn set_hash_ignores_order() {
        assert_eq!(
            set_hash(&["a".into(), "b".into()]),
            set_hash(&["b".into(), "a".into()])
        );
        assert_ne!(set_hash(&["a".into()]), set_hash(&["b".into()]));
        assert_eq!(
            parse_list(&list_json(&["x".into(), "y".into()])),
            ["x", "y"]
        );
        assert!(parse_list("[]").is_empty());
    }
}
