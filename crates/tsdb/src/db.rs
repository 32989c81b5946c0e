//! The storage facade: opens blocks and replays the WAL into the head, takes
//! writes through [`Appender`] and serves reads through [`Queryable`], and in
//! [`Db::maintain`] cuts the head into blocks, checkpoints the WAL, compacts
//! and applies retention.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use day2_model::{
    AppendError, AppendOutcome, Appender, HistogramSample, Labels, Matcher, QueryError, Queryable,
    Sample, Series, TimeSeries,
};
use parking_lot::{Mutex, RwLock};

use crate::block::{self, Block};
use crate::head::{Head, MemSeries, Verdict};
use crate::record;
use crate::wal::{self, Corruption, FsyncPolicy, Wal};

/// Storage options.
#[derive(Debug, Clone)]
pub struct Options {
    pub fsync: FsyncPolicy,
    /// How far behind the newest sample of the head a sample may be and still be accepted.
    pub out_of_order_window: Duration,
    /// Time span of a block cut from the head.
    pub block_duration: Duration,
    pub retention_time: Option<Duration>,
    pub retention_size: Option<u64>,
    pub wal_segment_size: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fsync: FsyncPolicy::Interval(Duration::from_secs(1)),
            out_of_order_window: Duration::from_secs(600),
            block_duration: Duration::from_secs(2 * 3600),
            retention_time: Some(Duration::from_secs(15 * 86400)),
            retention_size: None,
            wal_segment_size: 128 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Block(#[from] block::BlockError),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What opening the database found.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    pub blocks: usize,
    pub checkpoint: Option<String>,
    pub records_replayed: u64,
    pub samples_replayed: u64,
    pub corruptions: Vec<Corruption>,
    pub segments_removed: Vec<String>,
}

/// Figures for self-monitoring.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub head_series: u64,
    pub head_samples: u64,
    pub head_chunks: u64,
    pub wal_bytes: u64,
    pub wal_segments: u64,
    pub wal_corruptions_total: u64,
    pub blocks: u64,
    pub blocks_bytes: u64,
    pub samples_appended_total: u64,
    pub out_of_order_samples_total: u64,
    pub rejected_samples_total: u64,
    pub compactions_total: u64,
    pub min_time: i64,
    pub max_time: i64,
}

impl Stats {
    /// Renders the figures in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let rows: [(&str, &str, &str, f64); 12] = [
            (
                "day2_tsdb_head_series",
                "gauge",
                "Series in the in-memory head.",
                self.head_series as f64,
            ),
            (
                "day2_tsdb_head_samples",
                "gauge",
                "Samples in the in-memory head.",
                self.head_samples as f64,
            ),
            (
                "day2_tsdb_head_chunks",
                "gauge",
                "Chunks in the in-memory head.",
                self.head_chunks as f64,
            ),
            (
                "day2_tsdb_wal_size_bytes",
                "gauge",
                "Size of the write-ahead log.",
                self.wal_bytes as f64,
            ),
            (
                "day2_tsdb_wal_segments",
                "gauge",
                "Segment files of the write-ahead log.",
                self.wal_segments as f64,
            ),
            (
                "day2_tsdb_wal_corruptions_total",
                "counter",
                "WAL corruptions cut at start-up.",
                self.wal_corruptions_total as f64,
            ),
            (
                "day2_tsdb_blocks_loaded",
                "gauge",
                "On-disk blocks.",
                self.blocks as f64,
            ),
            (
                "day2_tsdb_storage_blocks_bytes",
                "gauge",
                "Size of the on-disk blocks.",
                self.blocks_bytes as f64,
            ),
            (
                "day2_tsdb_samples_appended_total",
                "counter",
                "Samples stored.",
                self.samples_appended_total as f64,
            ),
            (
                "day2_tsdb_out_of_order_samples_total",
                "counter",
                "Samples stored out of order (within the window).",
                self.out_of_order_samples_total as f64,
            ),
            (
                "day2_tsdb_rejected_samples_total",
                "counter",
                "Samples refused (too old, conflicting, invalid series).",
                self.rejected_samples_total as f64,
            ),
            (
                "day2_tsdb_compactions_total",
                "counter",
                "Blocks written by cutting the head or compacting.",
                self.compactions_total as f64,
            ),
        ];
        for (name, kind, help, v) in rows {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
    }
}

/// What one maintenance pass did.
#[derive(Debug, Clone, Default)]
pub struct MaintenanceReport {
    pub blocks_cut: usize,
    pub blocks_compacted: usize,
    pub blocks_deleted: usize,
}

#[derive(Default)]
struct Counters {
    appended: AtomicU64,
    ooo: AtomicU64,
    rejected: AtomicU64,
    compactions: AtomicU64,
}

/// The time-series database.
pub struct Db {
    dir: PathBuf,
    opts: RwLock<Options>,
    head: Head,
    wal: Arc<Wal>,
    blocks: RwLock<Vec<Arc<Block>>>,
    /// Serialises appends so WAL order equals apply order, and cuts.
    append_lock: Mutex<()>,
    head_max: AtomicI64,
    recovery: RecoveryReport,
    counters: Counters,
}

/// Sorts a merged series' samples by time and keeps one sample per
/// timestamp (the first written; a float wins over a histogram at the same
/// time, which only blocks written before a conflict check can hold).
fn normalise(s: &mut Series) {
    s.samples.sort_by_key(|x| x.t);
    s.samples.dedup_by_key(|x| x.t);
    if s.histograms.is_empty() {
        return;
    }
    s.histograms.sort_by_key(|x| x.t);
    s.histograms.dedup_by_key(|x| x.t);
    let floats = &s.samples;
    s.histograms
        .retain(|h| floats.binary_search_by_key(&h.t, |f| f.t).is_err());
}

/// Selections of at least this many head series are decoded on several threads.
const PARALLEL_READ_MIN_SERIES: usize = 4096;

fn checkpoint_number(name: &str) -> Option<u64> {
    name.strip_prefix("checkpoint.")
        .and_then(|n| n.parse().ok())
}

impl Db {
    /// Opens (or creates) a database in `dir`. WAL damage never prevents opening.
    pub fn open(dir: &Path, opts: Options) -> Result<Db, Error> {
        let blocks_dir = dir.join("blocks");
        let wal_dir = dir.join("wal");
        fs::create_dir_all(&blocks_dir).map_err(io(&blocks_dir))?;
        fs::create_dir_all(&wal_dir).map_err(io(&wal_dir))?;
        let mut report = RecoveryReport::default();

        let mut blocks = Vec::new();
        for e in fs::read_dir(&blocks_dir).map_err(io(&blocks_dir))? {
            let e = e.map_err(io(&blocks_dir))?;
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".tmp") {
                tracing::warn!(dir = %p.display(), "removing half-written block");
                let _ = fs::remove_dir_all(&p);
                continue;
            }
            match Block::open(&p) {
                Ok(b) => blocks.push(Arc::new(b)),
                Err(err) => tracing::error!(error = %err, "skipping unreadable block"),
            }
        }
        blocks.sort_by_key(|b| b.meta.min_time);
        report.blocks = blocks.len();

        let head = Head::new();
        let head_max = AtomicI64::new(i64::MIN);
        // checkpoint, then the segments after it
        let mut checkpoint: Option<(u64, PathBuf)> = None;
        for e in fs::read_dir(&wal_dir).map_err(io(&wal_dir))? {
            let e = e.map_err(io(&wal_dir))?;
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(e.path());
            } else if let Some(n) = checkpoint_number(&name)
                && checkpoint.as_ref().is_none_or(|(m, _)| n > *m)
            {
                checkpoint = Some((n, e.path()));
            }
        }
        let replay =
            |path: &Path, report: &mut RecoveryReport| -> Result<Option<(u64, String)>, Error> {
                let (_, bad) = wal::read_segment(path, |kind, payload| {
                    report.records_replayed += 1;
                    match kind {
                        wal::REC_SERIES => {
                            let mut err = Ok(());
                            record::decode_series(payload, |id, labels| {
                                if err.is_ok() {
                                    err = head.restore_series(id, labels);
                                }
                            })?;
                            err
                        }
                        wal::REC_HISTOGRAMS => {
                            for (id, hs) in record::decode_histograms(payload)? {
                                let s = head
                                    .series_by_id(id)
                                    .ok_or_else(|| format!("histogram for unknown series {id}"))?;
                                let mut s = s.lock();
                                if matches!(
                                    s.classify_histogram(hs.t, &hs.h, &[], &[], i64::MIN),
                                    Verdict::Append | Verdict::OutOfOrder
                                ) {
                                    head_max.fetch_max(hs.t, Ordering::Relaxed);
                                    s.apply_histogram(hs);
                                }
                                report.samples_replayed += 1;
                            }
                            Ok(())
                        }
                        _ => {
                            let mut decoded = Vec::new();
                            record::decode_samples(payload, |id, t, v| decoded.push((id, t, v)))?;
                            for (id, t, v) in decoded {
                                let s = head
                                    .series_by_id(id)
                                    .ok_or_else(|| format!("sample for unknown series {id}"))?;
                                let mut s = s.lock();
                                if matches!(
                                    s.classify(t, v, &[], i64::MIN),
                                    Verdict::Append | Verdict::OutOfOrder
                                ) {
                                    s.apply(t, v);
                                }
                                head_max.fetch_max(t, Ordering::Relaxed);
                                report.samples_replayed += 1;
                            }
                            Ok(())
                        }
                    }
                })
                .map_err(io(path))?;
                Ok(bad)
            };
        let mut after = 0;
        if let Some((n, path)) = &checkpoint {
            report.checkpoint = Some(path.display().to_string());
            if let Some((off, why)) = replay(path, &mut report)? {
                // A checkpoint is written whole and renamed; damage means the disk lied.
                tracing::error!(checkpoint = %path.display(), offset = off, reason = %why, "checkpoint damaged; keeping its intact part");
                report.corruptions.push(Corruption {
                    segment: path.clone(),
                    offset: off,
                    reason: why,
                });
            }
            after = *n;
        }
        let segments = wal::list_segments(&wal_dir).map_err(io(&wal_dir))?;
        let mut last = after;
        let mut cut = false;
        for n in segments.iter().copied().filter(|n| *n > after) {
            let path = wal_dir.join(wal::segment_name(n));
            if cut {
                tracing::warn!(segment = %path.display(), "removing WAL segment after a corruption");
                fs::remove_file(&path).map_err(io(&path))?;
                report.segments_removed.push(path.display().to_string());
                continue;
            }
            last = n;
            if let Some((off, why)) = replay(&path, &mut report)? {
                tracing::warn!(segment = %path.display(), offset = off, reason = %why, "WAL corruption: cutting the log at the last intact record");
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io(&path))?;
                f.set_len(off).map_err(io(&path))?;
                f.sync_all().map_err(io(&path))?;
                report.corruptions.push(Corruption {
                    segment: path.clone(),
                    offset: off,
                    reason: why,
                });
                cut = true;
            }
        }
        let wal = Wal::open(&wal_dir, last.max(after), opts.wal_segment_size, opts.fsync)
            .map_err(io(&wal_dir))?;
        Ok(Db {
            dir: dir.to_path_buf(),
            opts: RwLock::new(opts),
            head,
            wal,
            blocks: RwLock::new(blocks),
            append_lock: Mutex::new(()),
            head_max,
            recovery: report,
            counters: Counters::default(),
        })
    }

    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    pub fn set_retention(&self, time: Option<Duration>, size: Option<u64>) {
        let mut o = self.opts.write();
        o.retention_time = time;
        o.retention_size = size;
    }

    pub fn stats(&self) -> Stats {
        let mut st = Stats::default();
        let (mut mint, mut maxt) = (i64::MAX, i64::MIN);
        for s in self.head.all() {
            let s = s.lock();
            st.head_series += 1;
            st.head_samples += s.sample_count() as u64;
            st.head_chunks += s.chunk_count() as u64;
            if let (Some(a), Some(b)) = (s.min_time(), s.max_time()) {
                mint = mint.min(a);
                maxt = maxt.max(b);
            }
        }
        for b in self.blocks.read().iter() {
            st.blocks += 1;
            st.blocks_bytes += b.size_bytes;
            mint = mint.min(b.meta.min_time);
            maxt = maxt.max(b.meta.max_time);
        }
        st.min_time = if mint == i64::MAX { 0 } else { mint };
        st.max_time = if maxt == i64::MIN { 0 } else { maxt };
        st.wal_bytes = self.wal.size_bytes();
        st.wal_segments = self.wal.segments() as u64;
        st.wal_corruptions_total = self.recovery.corruptions.len() as u64;
        st.samples_appended_total = self.counters.appended.load(Ordering::Relaxed);
        st.out_of_order_samples_total = self.counters.ooo.load(Ordering::Relaxed);
        st.rejected_samples_total = self.counters.rejected.load(Ordering::Relaxed);
        st.compactions_total = self.counters.compactions.load(Ordering::Relaxed);
        st
    }

    fn do_append(&self, batch: Vec<TimeSeries>) -> Result<AppendOutcome, AppendError> {
        let mut out = AppendOutcome::default();
        let _g = self.append_lock.lock();
        let window = self.opts.read().out_of_order_window.as_millis() as i64;
        let head_max = self.head_max.load(Ordering::Relaxed);
        let min_allowed = if head_max == i64::MIN {
            i64::MIN
        } else {
            head_max.saturating_sub(window)
        };
        let mut series_rec = Vec::new();
        let mut accepted: Vec<(u32, i64, f64)> = Vec::new();
        let mut targets = Vec::with_capacity(batch.len());
        let mut pending: BTreeMap<u32, Vec<Sample>> = BTreeMap::new();
        let mut accepted_h: Vec<(u32, HistogramSample)> = Vec::new();
        let mut pending_h: BTreeMap<u32, Vec<HistogramSample>> = BTreeMap::new();
        let reject = |out: &mut AppendOutcome, msg: String| {
            if out.first_error.is_none() {
                out.first_error = Some(msg);
            }
        };
        // counts a refused sample; true when the sample is to be stored
        let tally = |out: &mut AppendOutcome, v: Verdict, what: &str, l: &Labels, t: i64| {
            let why = match v {
                Verdict::Append | Verdict::OutOfOrder => return true,
                Verdict::Duplicate => {
                    out.duplicates += 1;
                    return false;
                }
                Verdict::Conflict => {
                    out.conflicts += 1;
                    "conflicts with a stored value"
                }
                Verdict::TooOld => {
                    out.too_old += 1;
                    "is older than the out-of-order window"
                }
            };
            if out.first_error.is_none() {
                out.first_error = Some(format!("series {l}: {what} at {t} {why}"));
            }
            false
        };
        let mut new_max = head_max;
        for ts in batch {
            if ts.is_empty() {
                continue;
            }
            if let Err(e) = ts.labels.validate() {
                out.invalid_series += ts.len();
                reject(&mut out, format!("series {}: {e}", ts.labels));
                continue;
            }
            let (id, series, created) = self.head.get_or_create(&ts.labels);
            if created {
                record::encode_series(&mut series_rec, id, &ts.labels);
            }
            let s = series.lock();
            for p in &ts.samples {
                let prev = pending.get(&id).map(Vec::as_slice).unwrap_or(&[]);
                let verdict = s.classify(p.t, p.v, prev, min_allowed);
                if tally(&mut out, verdict, "sample", &ts.labels, p.t) {
                    accepted.push((id, p.t, p.v));
                    pending.entry(id).or_default().push(*p);
                    new_max = new_max.max(p.t);
                }
            }
            for h in &ts.histograms {
                let prev = pending_h.get(&id).map(Vec::as_slice).unwrap_or(&[]);
                let prev_f = pending.get(&id).map(Vec::as_slice).unwrap_or(&[]);
                let verdict = s.classify_histogram(h.t, &h.h, prev, prev_f, min_allowed);
                if tally(&mut out, verdict, "histogram", &ts.labels, h.t) {
                    accepted_h.push((id, h.clone()));
                    pending_h.entry(id).or_default().push(h.clone());
                    new_max = new_max.max(h.t);
                }
            }
            drop(s);
            targets.push((id, series));
        }
        let mut buf = Vec::with_capacity(series_rec.len() + accepted.len() * 12 + 32);
        if !series_rec.is_empty() {
            wal::encode_record(&mut buf, wal::REC_SERIES, &series_rec);
        }
        if !accepted.is_empty() {
            wal::encode_record(
                &mut buf,
                wal::REC_SAMPLES,
                &record::encode_samples(&accepted),
            );
        }
        if !accepted_h.is_empty() {
            wal::encode_record(
                &mut buf,
                wal::REC_HISTOGRAMS,
                &record::encode_histograms(&accepted_h),
            );
        }
        self.wal
            .write(&buf)
            .map_err(|e| AppendError::Storage(format!("WAL write: {e}")))?;
        let mut ooo = 0u64;
        for (id, series) in targets {
            if let Some(samples) = pending.remove(&id) {
                let mut s = series.lock();
                for p in samples {
                    if s.max_time().is_some_and(|m| p.t <= m) {
                        ooo += 1;
                    }
                    s.apply(p.t, p.v);
                }
            }
            if let Some(hs) = pending_h.remove(&id) {
                let mut s = series.lock();
                for h in hs {
                    if s.max_time().is_some_and(|m| h.t <= m) {
                        ooo += 1;
                    }
                    s.apply_histogram(h);
                }
            }
        }
        self.head_max.store(new_max, Ordering::Relaxed);
        out.accepted = accepted.len() + accepted_h.len();
        self.counters
            .appended
            .fetch_add(out.accepted as u64, Ordering::Relaxed);
        self.counters.ooo.fetch_add(ooo, Ordering::Relaxed);
        self.counters
            .rejected
            .fetch_add(out.rejected() as u64, Ordering::Relaxed);
        Ok(out)
    }

    /// Series and samples from head and blocks, merged per label set, sorted
    /// by labels. Only chunks overlapping `[mint, maxt]` are decoded; when no
    /// block has data in the window, head series come out in label order
    /// without any merging.
    fn gather(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        with_samples: bool,
    ) -> Vec<Series> {
        let mut from_blocks = Vec::new();
        for b in self.blocks.read().iter() {
            b.select(matchers, mint, maxt, with_samples, &mut from_blocks);
        }
        let head = self.head.select_sorted(matchers);
        if from_blocks.is_empty() {
            let read = |part: &[Arc<Mutex<MemSeries>>]| -> Vec<Series> {
                let mut out = Vec::with_capacity(part.len());
                for s in part {
                    let s = s.lock();
                    if with_samples {
                        let samples = s.samples(mint, maxt);
                        let histograms = s.histograms(mint, maxt);
                        if !samples.is_empty() || !histograms.is_empty() {
                            out.push(TimeSeries {
                                histograms,
                                labels: s.labels.clone(),
                                samples,
                            });
                        }
                    } else if s.has_samples_in(mint, maxt) {
                        out.push(TimeSeries {
                            histograms: Vec::new(),
                            labels: s.labels.clone(),
                            samples: Vec::new(),
                        });
                    }
                }
                out
            };
            // decoding dominates large selections: split it over the cores
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
            if !with_samples || threads < 2 || head.len() < PARALLEL_READ_MIN_SERIES {
                return read(&head);
            }
            let per = head.len().div_ceil(threads);
            return std::thread::scope(|sc| {
                let parts: Vec<_> = head
                    .chunks(per)
                    .skip(1)
                    .map(|part| sc.spawn(move || read(part)))
                    .collect();
                let mut out = read(&head[..per.min(head.len())]);
                for p in parts {
                    out.extend(p.join().expect("series decoding thread panicked"));
                }
                out
            });
        }
        let mut merged: BTreeMap<Labels, Series> = BTreeMap::new();
        let mut needs_sort = false;
        for b in from_blocks {
            let e = merged.entry(b.labels.clone()).or_default();
            needs_sort |= !e.is_empty();
            e.samples.extend(b.samples);
            e.histograms.extend(b.histograms);
        }
        for s in head {
            let s = s.lock();
            if with_samples {
                let samples = s.samples(mint, maxt);
                let histograms = s.histograms(mint, maxt);
                if samples.is_empty() && histograms.is_empty() {
                    continue;
                }
                let e = merged.entry(s.labels.clone()).or_default();
                needs_sort |= !e.is_empty();
                e.samples.extend(samples);
                e.histograms.extend(histograms);
            } else if s.has_samples_in(mint, maxt) {
                merged.entry(s.labels.clone()).or_default();
            }
        }
        merged
            .into_iter()
            .map(|(labels, mut s)| {
                if needs_sort {
                    normalise(&mut s);
                }
                s.labels = labels;
                s
            })
            .collect()
    }

    /// Cuts old head data into blocks, checkpoints the WAL, compacts blocks and
    /// applies retention. Call periodically (e.g. every minute).
    pub fn maintain(&self, now_ms: i64) -> Result<MaintenanceReport, Error> {
        let mut report = MaintenanceReport::default();
        let opts = self.opts.read().clone();
        let bd = opts.block_duration.as_millis().max(1) as i64;
        // 1. cut: keep at most 1.5 block durations in the head
        {
            let _g = self.append_lock.lock();
            let head_max = self.head_max.load(Ordering::Relaxed);
            let head_min = self
                .head
                .all()
                .iter()
                .filter_map(|s| s.lock().min_time())
                .min();
            if let Some(head_min) = head_min
                && head_max != i64::MIN
                && head_max - head_min > bd * 3 / 2
            {
                let boundary = (head_max - bd / 2).div_euclid(bd) * bd;
                let mut old = Vec::new();
                for s in self.head.all() {
                    let mut s = s.lock();
                    let (samples, histograms) = s.split_off_before(boundary);
                    if !samples.is_empty() || !histograms.is_empty() {
                        old.push(Series {
                            labels: s.labels.clone(),
                            samples,
                            histograms,
                        });
                    }
                }
                old.sort_by(|a, b| a.labels.cmp(&b.labels));
                if !old.is_empty() {
                    let path = block::write_block(&self.dir.join("blocks"), &old, 1, vec![])?;
                    let b = Arc::new(Block::open(&path)?);
                    let mut blocks = self.blocks.write();
                    blocks.push(b);
                    blocks.sort_by_key(|b| b.meta.min_time);
                    report.blocks_cut += 1;
                    self.counters.compactions.fetch_add(1, Ordering::Relaxed);
                }
                self.checkpoint()?;
            }
        }
        // 2. compaction: merge overlapping blocks, and runs of three adjacent same-level blocks
        report.blocks_compacted += self.compact(&opts)?;
        // 3. retention
        report.blocks_deleted += self.retain(&opts, now_ms)?;
        Ok(report)
    }

    /// Writes the whole head as a checkpoint and drops the WAL segments it covers.
    /// Caller holds the append lock.
    fn checkpoint(&self) -> Result<(), Error> {
        let wal_dir = self.dir.join("wal");
        let closed = self.wal.cut_segment().map_err(io(&wal_dir))?;
        let mut series_rec = Vec::new();
        let mut samples = Vec::new();
        let mut histograms = Vec::new();
        let all = self.head.all();
        for (id, s) in all.iter().enumerate() {
            let s = s.lock();
            record::encode_series(&mut series_rec, id as u32, &s.labels);
            for p in s.samples(i64::MIN, i64::MAX) {
                samples.push((id as u32, p.t, p.v));
            }
            for h in s.histograms(i64::MIN, i64::MAX) {
                histograms.push((id as u32, h));
            }
        }
        let mut buf = Vec::new();
        wal::encode_record(&mut buf, wal::REC_SERIES, &series_rec);
        for part in samples.chunks(1 << 16) {
            wal::encode_record(&mut buf, wal::REC_SAMPLES, &record::encode_samples(part));
        }
        for part in histograms.chunks(1 << 12) {
            wal::encode_record(
                &mut buf,
                wal::REC_HISTOGRAMS,
                &record::encode_histograms(part),
            );
        }
        let name = format!("checkpoint.{closed:08}");
        let tmp = wal_dir.join(format!("{name}.tmp"));
        let fin = wal_dir.join(&name);
        fs::write(&tmp, &buf).map_err(io(&tmp))?;
        fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io(&tmp))?;
        fs::rename(&tmp, &fin).map_err(io(&fin))?;
        wal::sync_dir(&wal_dir).map_err(io(&wal_dir))?;
        self.wal
            .remove_segments_upto(closed)
            .map_err(io(&wal_dir))?;
        for e in fs::read_dir(&wal_dir).map_err(io(&wal_dir))?.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if checkpoint_number(&n).is_some_and(|k| k < closed) {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(())
    }

    fn compact(&self, opts: &Options) -> Result<usize, Error> {
        let bd = opts.block_duration.as_millis().max(1) as i64;
        let max_span = opts
            .retention_time
            .map(|r| (r.as_millis() as i64 / 10).max(bd))
            .unwrap_or(i64::MAX)
            .min(31 * 86_400_000);
        let mut done = 0;
        loop {
            let blocks = self.blocks.read().clone();
            let mut plan: Option<Vec<Arc<Block>>> = None;
            // overlapping neighbours first (late out-of-order data)
            for w in blocks.windows(2) {
                if w[1].meta.min_time <= w[0].meta.max_time {
                    plan = Some(w.to_vec());
                    break;
                }
            }
            if plan.is_none() {
                for w in blocks.windows(3) {
                    let lvl = w[0].meta.level;
                    let span = w[2].meta.max_time - w[0].meta.min_time;
                    if w.iter().all(|b| b.meta.level == lvl)
                        && span <= max_span
                        && span < (bd * 3i64.pow(lvl)) * 3
                    {
                        plan = Some(w.to_vec());
                        break;
                    }
                }
            }
            let Some(sources) = plan else { return Ok(done) };
            let mut merged: BTreeMap<Labels, Series> = BTreeMap::new();
            for b in &sources {
                for s in b.all_series() {
                    let e = merged.entry(s.labels.clone()).or_default();
                    e.samples.extend(s.samples);
                    e.histograms.extend(s.histograms);
                }
            }
            let series: Vec<Series> = merged
                .into_iter()
                .map(|(labels, mut s)| {
                    normalise(&mut s);
                    s.labels = labels;
                    s
                })
                .collect();
            let level = sources.iter().map(|b| b.meta.level).max().unwrap_or(1) + 1;
            let ids = sources.iter().map(|b| b.meta.id.clone()).collect();
            let path = block::write_block(&self.dir.join("blocks"), &series, level, ids)?;
            let nb = Arc::new(Block::open(&path)?);
            {
                let mut bl = self.blocks.write();
                bl.retain(|b| !sources.iter().any(|s| s.meta.id == b.meta.id));
                bl.push(nb);
                bl.sort_by_key(|b| b.meta.min_time);
            }
            for s in &sources {
                let _ = fs::remove_dir_all(&s.dir);
            }
            self.counters.compactions.fetch_add(1, Ordering::Relaxed);
            done += 1;
        }
    }

    fn retain(&self, opts: &Options, now_ms: i64) -> Result<usize, Error> {
        let mut deleted = Vec::new();
        {
            let mut blocks = self.blocks.write();
            if let Some(rt) = opts.retention_time {
                let cutoff = now_ms - rt.as_millis() as i64;
                blocks.retain(|b| {
                    let keep = b.meta.max_time >= cutoff;
                    if !keep {
                        deleted.push(b.clone());
                    }
                    keep
                });
            }
            if let Some(limit) = opts.retention_size {
                let mut total: u64 =
                    blocks.iter().map(|b| b.size_bytes).sum::<u64>() + self.wal.size_bytes();
                while total > limit && !blocks.is_empty() {
                    let b = blocks.remove(0);
                    total -= b.size_bytes;
                    deleted.push(b);
                }
            }
        }
        for b in &deleted {
            tracing::info!(block = %b.meta.id, "deleting block by retention");
            let _ = fs::remove_dir_all(&b.dir);
        }
        Ok(deleted.len())
    }

    /// Flushes the WAL to stable storage.
    pub fn close(&self) -> Result<(), Error> {
        let _g = self.append_lock.lock();
        self.wal.close().map_err(io(&self.dir.join("wal")))
    }
}

impl Appender for Db {
    fn append(&self, batch: Vec<TimeSeries>) -> Result<AppendOutcome, AppendError> {
        self.do_append(batch)
    }
}

impl Queryable for Db {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Series>, QueryError> {
        Ok(self.gather(matchers, mint, maxt, true))
    }

    fn series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Labels>, QueryError> {
        Ok(self
            .gather(matchers, mint, maxt, false)
            .into_iter()
            .map(|s| s.labels)
            .collect())
    }
}
