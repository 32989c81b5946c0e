//! Policies over a recorded metric series with a frozen clock, a real
//! SQLite store and a real exec scaler (a script recording its argv).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use day2_autoscale::{Autoscaler, AutoscalingSection, ExecScaler, PolicyConfig, Scaler};
use day2_model::Labels;
use day2_promql::memstore::MemStore;
use day2_store::Store;
use jiff::Timestamp;

const T: i64 = 1_700_000_000_000;
const S: i64 = 1000;

fn at(offset: i64) -> Timestamp {
    Timestamp::from_millisecond(T + offset).unwrap()
}

/// load{app="web"} per replica: 30 until 15s, 10 until 60s, then 2.
fn load() -> Arc<MemStore> {
    let mut m = MemStore::new();
    for s in -5..=200i64 {
        let v = match s {
            ..15 => 30.0,
            15..60 => 10.0,
            _ => 2.0,
        };
        m.add(
            Labels::from_pairs([("__name__", "load"), ("app", "web"), ("instance", "a")]),
            T + s * S,
            v,
        );
        m.add(
            Labels::from_pairs([("__name__", "load"), ("app", "web"), ("instance", "b")]),
            T + s * S,
            v,
        );
    }
    Arc::new(m)
}

/// A `set` script appending its arguments to `argv.log` (each in brackets)
/// and storing the count; a `get` script printing it.
fn scripts(dir: &Path, initial: u32) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let count = dir.join("replicas");
    std::fs::write(&count, format!("{initial}\n")).unwrap();
    let log = dir.join("argv.log");
    let set = dir.join("set.sh");
    std::fs::write(
        &set,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '[%s]' \"$a\" >> '{}'; done\necho >> '{}'\nprintf '%s\\n' \"$2\" > '{}'\n",
            log.display(),
            log.display(),
            count.display()
        ),
    )
    .unwrap();
    let get = dir.join("get.sh");
    std::fs::write(&get, format!("#!/bin/sh\ncat '{}'\n", count.display())).unwrap();
    for p in [&set, &get] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (set, get)
}

fn section(set: &Path, get: &Path, metric: &str) -> AutoscalingSection {
    let yaml = format!(
        r#"
policies:
  - name: web
    metric: '{metric}'
    target_value: 10
    min: 1
    max: 10
    interval: 15s
    scale_down: {{ stabilization_window: 45s }}
    target:
      kind: exec
      set: ["{}", --replicas, "{{{{ replicas }}}}"]
      get: ["{}"]
"#,
        set.display(),
        get.display()
    );
    let s: AutoscalingSection = day2_yamlerr::from_str(&yaml, "day2.yml").unwrap();
    s.validate().unwrap();
    s
}

fn exec_scalers(
    rt: &tokio::runtime::Runtime,
) -> impl Fn(&PolicyConfig) -> Result<Arc<dyn Scaler>, String> {
    let handle = rt.handle().clone();
    move |p: &PolicyConfig| {
        ExecScaler::new(&p.target, p.min, handle.clone())
            .map(|s| Arc::new(s) as Arc<dyn Scaler>)
            .ok_or_else(|| "not an exec target".to_string())
    }
}

fn autoscaler(dir: &Path, db: Arc<MemStore>) -> Autoscaler {
    let store = Arc::new(Store::open_dir(&dir.join("state")).unwrap());
    let engine = Arc::new(day2_promql::Engine::new(Default::default()));
    Autoscaler::new(store, engine, db)
}

#[test]
fn scales_up_at_once_and_down_after_the_window_even_across_a_restart() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (set, get) = scripts(dir.path(), 1);
    let cfg = section(&set, &get, "avg(load{app=\"web\"})");
    let db = load();
    let a = autoscaler(dir.path(), db.clone());
    a.apply(&cfg, &exec_scalers(&rt), at(0)).unwrap();

    let mut actions = Vec::new();
    for t in [0, 15, 30, 45, 60] {
        let d = a.evaluate("web", at(t * S)).unwrap();
        actions.push((t, d.action.clone(), d.desired));
    }
    // restart: the recommendations of 3 at 30s and 45s are remembered
    drop(a);
    let a = autoscaler(dir.path(), db);
    a.apply(&cfg, &exec_scalers(&rt), at(70 * S)).unwrap();
    for t in [75, 90, 105] {
        let d = a.evaluate("web", at(t * S)).unwrap();
        actions.push((t, d.action.clone(), d.desired));
    }
    let want: Vec<(i64, String, Option<i64>)> = [
        (0, "scale_up", 3),
        (15, "hold", 3),
        (30, "hold", 3),
        (45, "hold", 3),
        (60, "hold", 3),
        (75, "hold", 3),
        (90, "scale_down", 1),
        (105, "hold", 1),
    ]
    .into_iter()
    .map(|(t, a, d)| (t, a.to_string(), Some(d)))
    .collect();
    assert_eq!(actions, want);
    let log = std::fs::read_to_string(dir.path().join("argv.log")).unwrap();
    assert_eq!(log, "[--replicas][3]\n[--replicas][1]\n");

    let status = a.status_json(Some("web"), false, 10).unwrap();
    let p = &status["policies"][0];
    assert_eq!(p["current_replicas"], 1);
    assert_eq!(p["desired_replicas"], 1);
    // only what changed something, newest first, over both processes
    let decisions = status["decisions"].as_array().unwrap();
    let actions: Vec<&str> = decisions
        .iter()
        .map(|d| d["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["scale_down", "scale_up"], "{status}");
    assert!(
        decisions[0]["reason"]
            .as_str()
            .unwrap()
            .contains("recommendation 1"),
        "{status}"
    );
    let mut m = String::new();
    a.render_metrics(&mut m);
    assert!(
        m.contains("day2_autoscale_current_replicas{policy=\"web\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("day2_autoscale_scalings_total{policy=\"web\",direction=\"down\"} 1"),
        "{m}"
    );
}

#[test]
fn failures_are_recorded_and_change_nothing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (set, get) = scripts(dir.path(), 2);

    // two series: the metric must be aggregated
    let a = autoscaler(dir.path(), load());
    a.apply(
        &section(&set, &get, "load{app=\"web\"}"),
        &exec_scalers(&rt),
        at(0),
    )
    .unwrap();
    let d = a.evaluate("web", at(0)).unwrap();
    assert_eq!(d.action, "error");
    assert!(d.reason.contains("returned 2 series"), "{}", d.reason);

    // no data: skipped
    a.apply(
        &section(&set, &get, "avg(nothing)"),
        &exec_scalers(&rt),
        at(0),
    )
    .unwrap();
    let d = a.evaluate("web", at(0)).unwrap();
    assert_eq!((d.action.as_str(), d.current), ("skipped", Some(2)));

    // the actuator fails: the decision is recorded with the error
    let broken = dir.path().join("broken.sh");
    std::fs::write(
        &broken,
        "#!/bin/sh\necho 'no such deployment' >&2\nexit 3\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    a.apply(
        &section(&broken, &get, "avg(load)"),
        &exec_scalers(&rt),
        at(0),
    )
    .unwrap();
    let d = a.evaluate("web", at(0)).unwrap();
    assert_eq!(d.action, "error");
    assert_eq!(d.desired, Some(6));
    assert!(d.reason.contains("setting 6 replicas"), "{}", d.reason);
    assert!(
        d.reason.contains("exited 3: no such deployment"),
        "{}",
        d.reason
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("replicas")).unwrap(),
        "2\n"
    );

    // a target whose actuator is not available (e.g. kubernetes not wired)
    a.apply(
        &section(&set, &get, "avg(load)"),
        &|_| Err("kubernetes targets: not wired".to_string()),
        at(0),
    )
    .unwrap();
    let d = a.evaluate("web", at(S)).unwrap();
    assert_eq!(
        (d.action.as_str(), d.reason.as_str()),
        ("error", "kubernetes targets: not wired")
    );
    let status = a.status_json(None, false, 10).unwrap();
    assert_eq!(
        status["policies"][0]["target_error"],
        "kubernetes targets: not wired"
    );
    assert_eq!(status["decisions"].as_array().unwrap().len(), 3);
    assert!(a.status_json(Some("nope"), false, 10).is_err());
    assert!(a.evaluate("nope", at(0)).is_err());
}

#[test]
fn without_get_the_last_count_set_is_the_current_one() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (set, _) = scripts(dir.path(), 1);
    let yaml = format!(
        "policies:\n  - name: web\n    metric: avg(load)\n    target_value: 10\n    min: 2\n    max: 10\n    target: {{kind: exec, set: [\"{}\", x, \"{{{{ replicas }}}}\"]}}\n",
        set.display()
    );
    let cfg: AutoscalingSection = day2_yamlerr::from_str(&yaml, "day2.yml").unwrap();
    let a = autoscaler(dir.path(), load());
    a.apply(&cfg, &exec_scalers(&rt), at(0)).unwrap();
    // starts from min (2): 2 * 30 / 10 = 6
    assert_eq!(a.evaluate("web", at(0)).unwrap().desired, Some(6));
    // then from 6: 6 * 30 / 10 = 18, max 10
    let d = a.evaluate("web", at(5 * S)).unwrap();
    assert_eq!((d.current, d.desired), (Some(6), Some(10)));
    assert_eq!(a.last_set("web").unwrap(), Some(10));
}
