//! Database behaviour across reopen, block cuts, compaction and retention.

use std::time::Duration;

use day2_model::{Appender, Labels, MatchOp, Matcher, Queryable, STALE_NAN, Sample, TimeSeries};
use day2_tsdb::{Db, FsyncPolicy, Options};

const H: i64 = 3_600_000;

fn opts() -> Options {
    Options {
        fsync: FsyncPolicy::Never,
        block_duration: Duration::from_secs(3600),
        out_of_order_window: Duration::from_secs(3600),
        retention_time: None,
        ..Options::default()
    }
}

fn ts(name: &str, job: &str, samples: impl IntoIterator<Item = (i64, f64)>) -> TimeSeries {
    TimeSeries {
        histograms: Vec::new(),
        labels: Labels::from_pairs([("__name__", name), ("job", job)]),
        samples: samples
            .into_iter()
            .map(|(t, v)| Sample::new(t, v))
            .collect(),
    }
}

fn all(db: &Db, name: &str) -> Vec<(Labels, Vec<Sample>)> {
    db.select(&[Matcher::eq("__name__", name)], i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|s| (s.labels, s.samples))
        .collect()
}

#[test]
fn every_sample_survives_reopen_including_after_blocks_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let want;
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        // 5 hours at 1 min for 3 series, in batches
        for step in 0..300i64 {
            let t = step * 60_000;
            let batch: Vec<_> = ["a", "b", "c"]
                .iter()
                .map(|j| ts("m", j, [(t, step as f64)]))
                .collect();
            let o = db.append(batch).unwrap();
            assert_eq!(o.accepted, 3);
            if step % 60 == 59 {
                let r = db.maintain(t).unwrap();
                let _ = r;
            }
        }
        want = all(&db, "m");
        assert_eq!(want.len(), 3);
        assert_eq!(want[0].1.len(), 300);
        let st = db.stats();
        assert!(st.blocks >= 1, "head was cut into blocks: {st:?}");
        assert!(st.head_samples < 900, "{st:?}");
        db.close().unwrap();
    }
    let db = Db::open(dir.path(), opts()).unwrap();
    assert!(db.recovery().checkpoint.is_some(), "{:?}", db.recovery());
    assert_eq!(all(&db, "m"), want);
}

#[test]
fn out_of_order_window_duplicates_and_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            out_of_order_window: Duration::from_secs(600),
            ..opts()
        },
    )
    .unwrap();
    db.append(vec![ts("m", "a", [(H, 1.0), (H + 60_000, 2.0)])])
        .unwrap();
    let o = db
        .append(vec![ts(
            "m",
            "a",
            [
                (H + 30_000, 1.5),
                (H + 60_000, 2.0),
                (H + 60_000, 9.0),
                (H - 3_600_000, 0.0),
            ],
        )])
        .unwrap();
    assert_eq!(
        (o.accepted, o.duplicates, o.conflicts, o.too_old),
        (1, 1, 1, 1),
        "{o:?}"
    );
    assert!(o.first_error.is_some());
    assert_eq!(
        all(&db, "m")[0].1,
        vec![
            Sample::new(H, 1.0),
            Sample::new(H + 30_000, 1.5),
            Sample::new(H + 60_000, 2.0)
        ]
    );
    // stale markers are stored bit-exact
    db.append(vec![ts("m", "a", [(H + 120_000, STALE_NAN)])])
        .unwrap();
    let last = *all(&db, "m")[0].1.last().unwrap();
    assert!(day2_model::is_stale_nan(last.v));
    // invalid series are refused, the rest of the batch goes in
    let o = db
        .append(vec![
            ts("bad-name", "a", [(H, 1.0)]),
            ts("ok", "a", [(H, 1.0)]),
        ])
        .unwrap();
    assert_eq!((o.accepted, o.invalid_series), (1, 1));
    assert!(o.first_error.unwrap().contains("bad-name"));
}

#[test]
fn late_samples_for_a_cut_range_merge_on_read_and_in_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            out_of_order_window: Duration::from_secs(4 * 3600),
            ..opts()
        },
    )
    .unwrap();
    for step in 0..240i64 {
        db.append(vec![ts("m", "a", [(step * 60_000, 1.0)])])
            .unwrap();
    }
    db.maintain(240 * 60_000).unwrap();
    assert!(db.stats().blocks >= 1);
    // a late sample inside the block's range, between two existing ones
    let o = db.append(vec![ts("m", "a", [(30_000, 5.0)])]).unwrap();
    assert_eq!(o.accepted, 1, "{o:?}");
    let got = all(&db, "m")[0].1.clone();
    assert_eq!(got.len(), 241);
    assert!(got.windows(2).all(|w| w[0].t < w[1].t));
    // more time passes; the late sample is cut into an overlapping block, compaction merges them
    for step in 240..400i64 {
        db.append(vec![ts("m", "a", [(step * 60_000, 1.0)])])
            .unwrap();
    }
    let r = db.maintain(400 * 60_000).unwrap();
    assert!(r.blocks_compacted >= 1, "{r:?}");
    let got = all(&db, "m")[0].1.clone();
    assert_eq!(got.len(), 401);
    assert_eq!(got[1], Sample::new(30_000, 5.0));
}

#[test]
fn retention_by_time_and_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    for step in 0..(10 * 60i64) {
        db.append(vec![ts("m", "a", [(step * 60_000, step as f64)])])
            .unwrap();
        if step % 60 == 0 {
            db.maintain(step * 60_000).unwrap();
        }
    }
    let before = db.stats();
    assert!(before.blocks >= 2, "{before:?}");
    db.set_retention(Some(Duration::from_secs(4 * 3600)), None);
    let r = db.maintain(10 * H).unwrap();
    assert!(r.blocks_deleted >= 1, "{r:?}");
    let got = all(&db, "m")[0].1.clone();
    assert!(
        got[0].t >= 10 * H - 4 * H - H,
        "oldest kept sample {}",
        got[0].t
    );
    db.set_retention(None, Some(1));
    db.maintain(10 * H).unwrap();
    assert_eq!(
        db.stats().blocks,
        0,
        "size retention drops every block when over the limit"
    );
    assert!(
        !all(&db, "m")[0].1.is_empty(),
        "the head is never dropped by retention"
    );
}

#[test]
fn matchers_select_like_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    db.append(vec![
        ts("up", "a", [(1, 1.0)]),
        ts("up", "b", [(1, 1.0)]),
        TimeSeries {
            histograms: Vec::new(),
            labels: Labels::from_pairs([("__name__", "up"), ("job", "c"), ("env", "prod")]),
            samples: vec![Sample::new(1, 0.0)],
        },
    ])
    .unwrap();
    let sel = |ms: Vec<Matcher>| -> Vec<String> {
        let mut jobs: Vec<String> = db
            .series(&ms, i64::MIN, i64::MAX)
            .unwrap()
            .iter()
            .map(|l| l.get("job").unwrap().to_string())
            .collect();
        jobs.sort();
        jobs
    };
    let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
    assert_eq!(
        sel(vec![m(MatchOp::Equal, "__name__", "up")]),
        ["a", "b", "c"]
    );
    assert_eq!(
        sel(vec![
            m(MatchOp::Equal, "__name__", "up"),
            m(MatchOp::NotEqual, "env", "prod")
        ]),
        ["a", "b"]
    );
    assert_eq!(
        sel(vec![
            m(MatchOp::Equal, "__name__", "up"),
            m(MatchOp::Equal, "env", "")
        ]),
        ["a", "b"]
    );
    assert_eq!(sel(vec![m(MatchOp::Regex, "job", "a|c")]), ["a", "c"]);
    assert_eq!(
        sel(vec![
            m(MatchOp::NotRegex, "job", "a|c"),
            m(MatchOp::Equal, "__name__", "up")
        ]),
        ["b"]
    );
    assert_eq!(
        db.label_names(&[], i64::MIN, i64::MAX).unwrap(),
        ["__name__", "env", "job"]
    );
    assert_eq!(
        db.label_values(
            "job",
            &[m(MatchOp::Equal, "env", "prod")],
            i64::MIN,
            i64::MAX
        )
        .unwrap(),
        ["c"]
    );
    assert!(
        db.series(&[m(MatchOp::Equal, "__name__", "up")], 2, 10)
            .unwrap()
            .is_empty(),
        "time range filters"
    );
}

fn hist(k: f64) -> day2_model::FloatHistogram {
    let mut h = day2_model::FloatHistogram::empty(2);
    h.count = 3.0 * k;
    h.sum = 1.5 * k;
    h.zero_threshold = 0.001;
    h.zero_count = k;
    h.set_bucket_list(true, &[(-1, k), (4, k)]);
    h
}

fn hists(db: &Db, name: &str) -> Vec<(Labels, Vec<day2_model::HistogramSample>, Vec<Sample>)> {
    db.select(&[Matcher::eq("__name__", name)], i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|s| (s.labels, s.histograms, s.samples))
        .collect()
}

#[test]
fn histogram_samples_survive_cuts_compaction_and_reopen() {
    use day2_model::HistogramSample;
    let dir = tempfile::tempdir().unwrap();
    let want;
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        // 5 hours at 1 min: one histogram series, one series switching kinds
        for step in 0..300i64 {
            let t = step * 60_000;
            let h = TimeSeries {
                labels: Labels::from_pairs([("__name__", "h"), ("job", "a")]),
                samples: vec![],
                histograms: vec![HistogramSample::new(t, hist(step as f64))],
            };
            let mixed = if step % 2 == 0 {
                ts("h", "mixed", [(t, step as f64)])
            } else {
                TimeSeries {
                    labels: Labels::from_pairs([("__name__", "h"), ("job", "mixed")]),
                    samples: vec![],
                    histograms: vec![HistogramSample::new(t, hist(1.0))],
                }
            };
            let o = db.append(vec![h, mixed]).unwrap();
            assert_eq!(o.accepted, 2, "{o:?}");
            if step % 60 == 59 {
                db.maintain(t).unwrap();
            }
        }
        want = hists(&db, "h");
        assert_eq!(want.len(), 2);
        assert_eq!(want[0].1.len(), 300);
        assert_eq!(want[0].1[299].h.count, 897.0);
        assert_eq!((want[1].1.len(), want[1].2.len()), (150, 150));
        let st = db.stats();
        assert!(st.blocks >= 1, "head was cut into blocks: {st:?}");
        // a histogram where a float is: refused
        let o = db
            .append(vec![TimeSeries {
                labels: Labels::from_pairs([("__name__", "h"), ("job", "mixed")]),
                samples: vec![],
                histograms: vec![HistogramSample::new(298 * 60_000, hist(1.0))],
            }])
            .unwrap();
        assert_eq!(o.conflicts, 1, "{o:?}");
        db.close().unwrap();
    }
    let db = Db::open(dir.path(), opts()).unwrap();
    assert!(db.recovery().checkpoint.is_some(), "{:?}", db.recovery());
    let got = hists(&db, "h");
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.0, w.0);
        assert_eq!(g.2, w.2);
        assert_eq!(g.1.len(), w.1.len());
        for (a, b) in g.1.iter().zip(&w.1) {
            assert!(a.t == b.t && a.h.equals(&b.h), "{a:?} != {b:?}");
        }
    }
    // force every block into one
    let r = db.maintain(10 * H).unwrap();
    let _ = r;
    assert_eq!(hists(&db, "h")[0].1.len(), 300);
}
