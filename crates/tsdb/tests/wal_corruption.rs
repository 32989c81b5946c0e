//! WAL corruption matrix: damage the tail of the log in every way we know;
//! the database must open, report the cut, and keep exactly the intact records.

use std::fs;
use std::path::{Path, PathBuf};

use day2_model::{Appender, Labels, Matcher, Queryable, Sample, TimeSeries};
use day2_tsdb::{Db, FsyncPolicy, Options, wal};

fn opts() -> Options {
    Options {
        fsync: FsyncPolicy::Never,
        ..Options::default()
    }
}

fn labels() -> Labels {
    Labels::from_pairs([("__name__", "m"), ("job", "t")])
}

/// Writes `n` appends of one sample each (t = i*1000, v = i).
fn write(dir: &Path, n: i64) {
    let db = Db::open(dir, opts()).unwrap();
    for i in 0..n {
        db.append(vec![TimeSeries {
            histograms: Vec::new(),
            labels: labels(),
            samples: vec![Sample::new(i * 1000, i as f64)],
        }])
        .unwrap();
    }
    db.close().unwrap();
}

fn read_all(db: &Db) -> Vec<Sample> {
    let s = db
        .select(&[Matcher::eq("__name__", "m")], i64::MIN, i64::MAX)
        .unwrap();
    s.into_iter().next().map(|s| s.samples).unwrap_or_default()
}

/// The segment holding the data and the start offsets of its records.
fn last_segment(dir: &Path) -> (PathBuf, Vec<u64>) {
    let wal_dir = dir.join("wal");
    let segs = wal::list_segments(&wal_dir).unwrap();
    let seg = segs
        .iter()
        .rev()
        .map(|n| wal_dir.join(wal::segment_name(*n)))
        .find(|p| fs::metadata(p).unwrap().len() > 0)
        .unwrap();
    let data = fs::read(&seg).unwrap();
    let mut offsets = Vec::new();
    let mut off = 0usize;
    while off < data.len() {
        offsets.push(off as u64);
        let len = u32::from_le_bytes(data[off + 1..off + 5].try_into().unwrap()) as usize;
        off += wal::HEADER_LEN + len;
    }
    (seg, offsets)
}

fn expect_after_damage(damage: impl Fn(&Path, &[u64]), name: &str) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 20);
    let (seg, offsets) = last_segment(dir.path());
    assert_eq!(offsets.len(), 21, "one series record and 20 sample records");
    damage(&seg, &offsets);
    let db = Db::open(dir.path(), opts()).unwrap_or_else(|e| panic!("{name}: open failed: {e}"));
    let rec = db.recovery();
    assert_eq!(rec.corruptions.len(), 1, "{name}: {rec:?}");
    assert_eq!(
        rec.corruptions[0].offset, offsets[20],
        "{name}: cut at the last record"
    );
    assert_eq!(db.stats().wal_corruptions_total, 1);
    let got = read_all(&db);
    let want: Vec<Sample> = (0..19).map(|i| Sample::new(i * 1000, i as f64)).collect();
    assert_eq!(got, want, "{name}: exactly the intact records");

    // writes after recovery work and survive another reopen
    db.append(vec![TimeSeries {
        histograms: Vec::new(),
        labels: labels(),
        samples: vec![Sample::new(100_000, 42.0)],
    }])
    .unwrap();
    db.close().unwrap();
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert!(
        db.recovery().corruptions.is_empty(),
        "{name}: clean after the cut: {:?}",
        db.recovery()
    );
    let got = read_all(&db);
    assert_eq!(got.len(), 20, "{name}");
    assert_eq!(got.last(), Some(&Sample::new(100_000, 42.0)));
}

fn rewrite(seg: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut data = fs::read(seg).unwrap();
    f(&mut data);
    fs::write(seg, data).unwrap();
}

#[test]
fn torn_last_record() {
    expect_after_damage(
        |seg, _| rewrite(seg, |d| d.truncate(d.len() - 3)),
        "torn record",
    );
    expect_after_damage(
        |seg, offs| rewrite(seg, |d| d.truncate(offs[20] as usize + 4)),
        "torn header",
    );
}

#[test]
fn bad_record_type() {
    expect_after_damage(
        |seg, offs| rewrite(seg, |d| d[offs[20] as usize] = 0x7f),
        "bad type",
    );
}

#[test]
fn bad_checksum() {
    expect_after_damage(
        |seg, offs| rewrite(seg, |d| d[offs[20] as usize + 5] ^= 0xff),
        "bad checksum",
    );
}

#[test]
fn bad_length() {
    let set_len = |v: u32| {
        move |seg: &Path, offs: &[u64]| {
            rewrite(seg, |d| {
                d[offs[20] as usize + 1..offs[20] as usize + 5].copy_from_slice(&v.to_le_bytes())
            })
        }
    };
    expect_after_damage(set_len(u32::MAX), "length too large");
    expect_after_damage(set_len(1_000), "length past the end");
    expect_after_damage(set_len(2), "length too small");
}

#[test]
fn bad_content_with_a_valid_checksum() {
    expect_after_damage(
        |seg, offs| {
            rewrite(seg, |d| {
                d.truncate(offs[20] as usize);
                // a well-formed record whose payload is not a samples payload
                wal::encode_record(d, wal::REC_SAMPLES, b"\xff\xff\xff\xff not snappy");
            })
        },
        "bad content",
    );
}

#[test]
fn segments_after_a_corruption_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 5);
    let (seg, offs) = last_segment(dir.path());
    // a later segment with more (valid-looking) data
    let later = dir.path().join("wal").join(wal::segment_name(99));
    fs::copy(&seg, &later).unwrap();
    rewrite(&seg, |d| d[offs[3] as usize + 5] ^= 1);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(read_all(&db).len(), 2);
    assert!(!later.exists());
    assert_eq!(db.recovery().segments_removed.len(), 1);
}
