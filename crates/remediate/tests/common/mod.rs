#![allow(dead_code)]

use day2_remediate::driver::{BoxFuture, Clock, Executors, Verifier, drive};
use day2_remediate::{LoadedRunbook, RunbookSet};
use day2_remediate::{RunId, RunState, Runs};
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Loads the single runbook of a runbook file text.
pub fn runbook(yaml: &str) -> LoadedRunbook {
    let set = RunbookSet::parse_file(yaml, "test.yml", Some(&testdata()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(set.runbooks.len(), 1);
    set.runbooks.into_iter().next().unwrap()
}

pub fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// Seconds after a fixed origin.
pub fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Quotes a string for YAML (double-quoted, JSON escapes are valid YAML).
pub fn yq(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

pub struct Always(pub bool);

impl Verifier for Always {
    fn holds<'a>(&'a self, _expr: &'a str, _at: Timestamp) -> BoxFuture<'a, Result<bool, String>> {
        let v = self.0;
        Box::pin(async move { Ok(v) })
    }
}

pub struct RealClock;

impl Clock for RealClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Drives a run with a verifier that always holds and the real clock.
pub async fn drive_now(runs: &mut Runs, id: RunId, executors: &Executors) -> RunState {
    drive(
        runs,
        id,
        executors,
        &Always(true),
        &RealClock,
        std::time::Duration::from_millis(20),
    )
    .await
    .unwrap()
}
