//! The in-memory head: recent samples of every series in compressed chunks,
//! series interned to dense ids, and the postings index.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use day2_model::{FloatHistogram, HistogramSample, Labels, Matcher, Sample};
use parking_lot::{Mutex, RwLock};

use crate::chunk::{ChunkEncoder, ChunkIter, SAMPLES_PER_CHUNK};
use crate::histchunk::{self, HIST_SAMPLES_PER_CHUNK};
use crate::postings::Postings;

/// A full chunk, no longer appended to.
#[derive(Debug, Clone)]
pub struct ClosedChunk {
    pub min_t: i64,
    pub max_t: i64,
    pub data: Box<[u8]>,
}

/// What to do with one incoming sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Append,
    OutOfOrder,
    Duplicate,
    Conflict,
    TooOld,
}

/// A full chunk of histogram samples (see [`histchunk`]).
#[derive(Debug, Clone)]
pub struct HistChunk {
    pub min_t: i64,
    pub max_t: i64,
    pub count: usize,
    pub data: Box<[u8]>,
}

/// A series' native-histogram samples: closed chunks in time order, then the
/// newest samples as they are (encoded when they fill a chunk). A sample
/// older than the closed chunks rebuilds them (out-of-order histograms are rare).
#[derive(Debug, Default)]
pub struct HistStore {
    closed: Vec<HistChunk>,
    open: Vec<HistogramSample>,
}

fn decode_hist_chunk(c: &HistChunk) -> Vec<HistogramSample> {
    // chunks are written by this process or checked by the block index checksum
    histchunk::decode_chunk(&c.data).unwrap_or_default()
}

impl HistStore {
    fn max_time(&self) -> Option<i64> {
        self.open
            .last()
            .map(|s| s.t)
            .or_else(|| self.closed.last().map(|c| c.max_t))
    }

    fn min_time(&self) -> Option<i64> {
        self.closed
            .first()
            .map(|c| c.min_t)
            .or_else(|| self.open.first().map(|s| s.t))
    }

    fn count(&self) -> usize {
        self.closed.iter().map(|c| c.count).sum::<usize>() + self.open.len()
    }

    /// The histogram stored at exactly `t`.
    fn at(&self, t: i64) -> Option<Arc<FloatHistogram>> {
        if let Ok(i) = self.open.binary_search_by_key(&t, |s| s.t) {
            return Some(self.open[i].h.clone());
        }
        let c = self.closed.iter().find(|c| c.min_t <= t && t <= c.max_t)?;
        decode_hist_chunk(c)
            .into_iter()
            .find(|s| s.t == t)
            .map(|s| s.h)
    }

    fn insert(&mut self, s: HistogramSample) {
        let closed_max = self.closed.last().map_or(i64::MIN, |c| c.max_t);
        if s.t <= closed_max {
            let mut all = self.samples(i64::MIN, i64::MAX);
            let i = all.partition_point(|x| x.t < s.t);
            all.insert(i, s);
            self.rebuild(all);
            return;
        }
        match self.open.last() {
            Some(last) if s.t < last.t => {
                let i = self.open.partition_point(|x| x.t < s.t);
                self.open.insert(i, s);
            }
            _ => self.open.push(s),
        }
        if self.open.len() >= HIST_SAMPLES_PER_CHUNK {
            let full = std::mem::take(&mut self.open);
            self.closed.push(HistChunk {
                min_t: full[0].t,
                max_t: full[full.len() - 1].t,
                count: full.len(),
                data: histchunk::encode_chunk(&full).into_boxed_slice(),
            });
        }
    }

    fn rebuild(&mut self, all: Vec<HistogramSample>) {
        self.closed.clear();
        self.open.clear();
        for s in all {
            self.insert(s);
        }
    }

    /// Samples in `[mint, maxt]`, in time order.
    fn samples(&self, mint: i64, maxt: i64) -> Vec<HistogramSample> {
        let mut out = Vec::new();
        for c in self
            .closed
            .iter()
            .filter(|c| c.max_t >= mint && c.min_t <= maxt)
        {
            out.extend(
                decode_hist_chunk(c)
                    .into_iter()
                    .filter(|s| s.t >= mint && s.t <= maxt),
            );
        }
        out.extend(
            self.open
                .iter()
                .filter(|s| s.t >= mint && s.t <= maxt)
                .cloned(),
        );
        out
    }

    fn chunk_count(&self) -> usize {
        self.closed.len() + usize::from(!self.open.is_empty())
    }
}

/// One series' head data.
#[derive(Debug)]
pub struct MemSeries {
    pub labels: Labels,
    closed: Vec<ClosedChunk>,
    open: ChunkEncoder,
    last_v: u64,
    /// Samples older than the newest, sorted by time; merged into chunks when large.
    ooo: Vec<Sample>,
    /// Native-histogram samples, for series that have any.
    hist: Option<Box<HistStore>>,
}

impl MemSeries {
    fn new(labels: Labels) -> Self {
        MemSeries {
            labels,
            closed: Vec::new(),
            open: ChunkEncoder::new(),
            last_v: 0,
            ooo: Vec::new(),
            hist: None,
        }
    }

    /// Newest float sample time.
    fn float_max_time(&self) -> Option<i64> {
        (self.open.count() > 0)
            .then(|| self.open.max_time())
            .or_else(|| self.closed.last().map(|c| c.max_t))
    }

    /// Newest sample time, float or histogram.
    pub fn max_time(&self) -> Option<i64> {
        let f = self.float_max_time();
        match self.hist.as_ref().and_then(|h| h.max_time()) {
            Some(h) => Some(f.map_or(h, |f| f.max(h))),
            None => f,
        }
    }

    pub fn min_time(&self) -> Option<i64> {
        let chunk_min = self
            .closed
            .first()
            .map(|c| c.min_t)
            .or((self.open.count() > 0).then(|| self.open.min_time()));
        let m = match (chunk_min, self.ooo.first().map(|s| s.t)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match self.hist.as_ref().and_then(|h| h.min_time()) {
            Some(h) => Some(m.map_or(h, |m| m.min(h))),
            None => m,
        }
    }

    /// Whether a histogram sample is stored at exactly `t`.
    fn histogram_at(&self, t: i64) -> Option<Arc<FloatHistogram>> {
        self.hist.as_ref().and_then(|h| h.at(t))
    }

    /// Classifies a histogram sample like [`MemSeries::classify`]; a float at
    /// the same time is a conflict. `pending` are histograms of this series
    /// accepted earlier in the same batch, `pending_floats` its floats.
    pub fn classify_histogram(
        &self,
        t: i64,
        h: &FloatHistogram,
        pending: &[HistogramSample],
        pending_floats: &[Sample],
        min_allowed: i64,
    ) -> Verdict {
        if pending_floats.iter().any(|s| s.t == t) || self.value_at(t).is_some() {
            return Verdict::Conflict;
        }
        let existing = pending
            .iter()
            .rev()
            .find(|s| s.t == t)
            .map(|s| s.h.clone())
            .or_else(|| self.histogram_at(t));
        if let Some(e) = existing {
            return if e.equals(h) && e.hint == h.hint {
                Verdict::Duplicate
            } else {
                Verdict::Conflict
            };
        }
        let newest = pending.iter().map(|s| s.t).chain(self.max_time()).max();
        match newest {
            Some(n) if t <= n && t < min_allowed => Verdict::TooOld,
            Some(n) if t <= n => Verdict::OutOfOrder,
            _ => Verdict::Append,
        }
    }

    /// Stores a histogram sample classified as `Append` or `OutOfOrder`.
    pub fn apply_histogram(&mut self, s: HistogramSample) {
        self.hist.get_or_insert_with(Default::default).insert(s);
    }

    /// Histogram samples in `[mint, maxt]`, in time order.
    pub fn histograms(&self, mint: i64, maxt: i64) -> Vec<HistogramSample> {
        self.hist
            .as_ref()
            .map_or_else(Vec::new, |h| h.samples(mint, maxt))
    }

    /// Value stored at exactly `t`, if any.
    fn value_at(&self, t: i64) -> Option<f64> {
        if let Ok(i) = self.ooo.binary_search_by(|s| s.t.cmp(&t)) {
            return Some(self.ooo[i].v);
        }
        let open_bytes;
        let mut chunks: Vec<&[u8]> = self
            .closed
            .iter()
            .filter(|c| c.min_t <= t && t <= c.max_t)
            .map(|c| &c.data[..])
            .collect();
        if self.open.count() > 0 && self.open.min_time() <= t && t <= self.open.max_time() {
            open_bytes = self.open.bytes();
            chunks.push(&open_bytes);
        }
        chunks
            .iter()
            .find_map(|c| ChunkIter::new(c).find(|(st, _)| *st == t).map(|(_, v)| v))
    }

    /// Classifies a sample without changing anything. `pending` are samples of
    /// this series accepted earlier in the same batch; `min_allowed` is the
    /// oldest timestamp the out-of-order window admits.
    pub fn classify(&self, t: i64, v: f64, pending: &[Sample], min_allowed: i64) -> Verdict {
        if self.hist.is_some() && self.histogram_at(t).is_some() {
            return Verdict::Conflict;
        }
        let newest = pending.iter().map(|s| s.t).chain(self.max_time()).max();
        match newest {
            None => return Verdict::Append,
            Some(n) if t > n => return Verdict::Append,
            _ => {}
        }
        let existing = pending
            .iter()
            .rev()
            .find(|s| s.t == t)
            .map(|s| s.v)
            .or_else(|| self.value_at(t));
        match existing {
            Some(e) if e.to_bits() == v.to_bits() => Verdict::Duplicate,
            Some(_) => Verdict::Conflict,
            None if t < min_allowed => Verdict::TooOld,
            None => Verdict::OutOfOrder,
        }
    }

    /// Applies a sample previously classified as `Append` or `OutOfOrder`.
    pub fn apply(&mut self, t: i64, v: f64) {
        match self.float_max_time() {
            Some(m) if t <= m => {
                if self.value_at(t).is_none() {
                    let i = self.ooo.partition_point(|s| s.t < t);
                    self.ooo.insert(i, Sample::new(t, v));
                    if self.ooo.len() > SAMPLES_PER_CHUNK as usize {
                        self.merge_ooo();
                    }
                }
            }
            _ => {
                if self.open.count() >= SAMPLES_PER_CHUNK {
                    let data = self.open.bytes().into_boxed_slice();
                    self.closed.push(ClosedChunk {
                        min_t: self.open.min_time(),
                        max_t: self.open.max_time(),
                        data,
                    });
                    self.open = ChunkEncoder::new();
                }
                self.open.append(t, v);
                self.last_v = v.to_bits();
            }
        }
    }

    /// Rebuilds chunks from all samples (used after out-of-order buffering and block cuts).
    fn rebuild(&mut self, samples: &[Sample]) {
        self.closed.clear();
        self.open = ChunkEncoder::new();
        self.ooo.clear();
        for s in samples {
            if self.open.count() >= SAMPLES_PER_CHUNK {
                let data = self.open.bytes().into_boxed_slice();
                self.closed.push(ClosedChunk {
                    min_t: self.open.min_time(),
                    max_t: self.open.max_time(),
                    data,
                });
                self.open = ChunkEncoder::new();
            }
            self.open.append(s.t, s.v);
        }
    }

    fn merge_ooo(&mut self) {
        let all = self.samples(i64::MIN, i64::MAX);
        self.rebuild(&all);
    }

    /// Samples in `[mint, maxt]`, sorted, without duplicates. Only chunks
    /// overlapping the window are decoded; chunks inside it are copied without
    /// per-sample checks.
    pub fn samples(&self, mint: i64, maxt: i64) -> Vec<Sample> {
        let open =
            self.open.count() > 0 && self.open.max_time() >= mint && self.open.min_time() <= maxt;
        let overlapping = || {
            self.closed
                .iter()
                .filter(move |c| c.max_t >= mint && c.min_t <= maxt)
        };
        let cap = overlapping().count() * SAMPLES_PER_CHUNK as usize
            + if open { self.open.count() as usize } else { 0 };
        let mut out = Vec::with_capacity(cap);
        let mut add = |it: ChunkIter, min_t: i64, max_t: i64| {
            if min_t >= mint && max_t <= maxt {
                out.extend(it.map(|(t, v)| Sample::new(t, v)));
            } else {
                out.extend(
                    it.filter(|(t, _)| *t >= mint && *t <= maxt)
                        .map(|(t, v)| Sample::new(t, v)),
                );
            }
        };
        for c in overlapping() {
            add(ChunkIter::new(&c.data), c.min_t, c.max_t);
        }
        if open {
            add(self.open.iter(), self.open.min_time(), self.open.max_time());
        }
        if self.ooo.iter().any(|s| s.t >= mint && s.t <= maxt) {
            out.extend(self.ooo.iter().filter(|s| s.t >= mint && s.t <= maxt));
            out.sort_by_key(|s| s.t);
            out.dedup_by_key(|s| s.t);
        }
        out
    }

    pub fn has_samples_in(&self, mint: i64, maxt: i64) -> bool {
        match (self.min_time(), self.max_time()) {
            (Some(a), Some(b)) => {
                a <= maxt && b.max(self.ooo.last().map_or(i64::MIN, |s| s.t)) >= mint
            }
            _ => false,
        }
    }

    /// Removes and returns samples (float and histogram) older than `before`;
    /// keeps the rest.
    pub fn split_off_before(&mut self, before: i64) -> (Vec<Sample>, Vec<HistogramSample>) {
        let all = self.samples(i64::MIN, i64::MAX);
        let cut = all.partition_point(|s| s.t < before);
        let (old, keep) = all.split_at(cut);
        let old = old.to_vec();
        if !old.is_empty() {
            self.rebuild(keep);
        }
        let mut old_h = Vec::new();
        if let Some(h) = self.hist.as_mut() {
            let mut all = h.samples(i64::MIN, i64::MAX);
            let keep = all.split_off(all.partition_point(|s| s.t < before));
            if !all.is_empty() {
                old_h = all;
                h.rebuild(keep);
            }
        }
        (old, old_h)
    }

    pub fn chunk_count(&self) -> usize {
        self.closed.len()
            + usize::from(self.open.count() > 0)
            + self.hist.as_ref().map_or(0, |h| h.chunk_count())
    }

    pub fn sample_count(&self) -> usize {
        self.closed.len() * SAMPLES_PER_CHUNK as usize
            + self.open.count() as usize
            + self.ooo.len()
            + self.hist.as_ref().map_or(0, |h| h.count())
    }
}

#[derive(Default)]
struct HeadIndex {
    series: Vec<Arc<Mutex<MemSeries>>>,
    by_hash: HashMap<u64, Vec<u32>>,
    postings: Postings,
}

/// Head series ids in label order, extended as series are added (series are
/// never removed from the head, and their labels never change).
#[derive(Default)]
struct LabelOrder {
    /// Ids sorted by labels, and those labels.
    sorted: Vec<u32>,
    sorted_labels: Vec<Labels>,
    /// Position of each id in `sorted`.
    rank: Vec<u32>,
}

impl LabelOrder {
    /// Brings the order up to date with the series in `idx`.
    fn update(&mut self, idx: &HeadIndex) {
        let n = idx.series.len();
        if self.rank.len() == n {
            return;
        }
        let mut new: Vec<(Labels, u32)> = (self.rank.len()..n)
            .map(|id| (idx.series[id].lock().labels.clone(), id as u32))
            .collect();
        new.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let old_ids = std::mem::take(&mut self.sorted);
        let old_labels = std::mem::take(&mut self.sorted_labels);
        self.sorted.reserve(n);
        self.sorted_labels.reserve(n);
        let mut prev = 0;
        for (l, id) in new {
            let pos = prev + old_labels[prev..].partition_point(|x| *x < l);
            self.sorted.extend_from_slice(&old_ids[prev..pos]);
            self.sorted_labels.extend_from_slice(&old_labels[prev..pos]);
            self.sorted.push(id);
            self.sorted_labels.push(l);
            prev = pos;
        }
        self.sorted.extend_from_slice(&old_ids[prev..]);
        self.sorted_labels.extend_from_slice(&old_labels[prev..]);
        self.rank = vec![0; n];
        for (r, &id) in self.sorted.iter().enumerate() {
            self.rank[id as usize] = r as u32;
        }
    }
}

/// All in-memory series.
#[derive(Default)]
pub struct Head {
    index: RwLock<HeadIndex>,
    hasher: foldhash::fast::FixedState,
    /// Read side only: label order of the series, for sorted selections.
    order: Mutex<LabelOrder>,
}

impl Head {
    pub fn new() -> Self {
        Head {
            index: RwLock::new(HeadIndex::default()),
            hasher: foldhash::fast::FixedState::with_seed(0x6461_7932),
            order: Mutex::new(LabelOrder::default()),
        }
    }

    fn hash(&self, labels: &Labels) -> u64 {
        self.hasher.hash_one(labels)
    }

    /// Finds a series by labels.
    pub fn get(&self, labels: &Labels) -> Option<(u32, Arc<Mutex<MemSeries>>)> {
        let h = self.hash(labels);
        let idx = self.index.read();
        let ids = idx.by_hash.get(&h)?;
        ids.iter()
            .find(|&&id| idx.series[id as usize].lock().labels == *labels)
            .map(|&id| (id, idx.series[id as usize].clone()))
    }

    /// Finds or creates a series; `true` when it was created.
    pub fn get_or_create(&self, labels: &Labels) -> (u32, Arc<Mutex<MemSeries>>, bool) {
        if let Some((id, s)) = self.get(labels) {
            return (id, s, false);
        }
        let h = self.hash(labels);
        let mut idx = self.index.write();
        if let Some(ids) = idx.by_hash.get(&h)
            && let Some(&id) = ids
                .iter()
                .find(|&&id| idx.series[id as usize].lock().labels == *labels)
        {
            return (id, idx.series[id as usize].clone(), false);
        }
        let id = idx.series.len() as u32;
        let s = Arc::new(Mutex::new(MemSeries::new(labels.clone())));
        idx.series.push(s.clone());
        idx.by_hash.entry(h).or_default().push(id);
        idx.postings.add(id, labels);
        (id, s, true)
    }

    /// Creates a series with a given id during WAL replay (ids are dense).
    pub fn restore_series(&self, id: u32, labels: Labels) -> Result<(), String> {
        let mut idx = self.index.write();
        if id as usize != idx.series.len() {
            if (id as usize) < idx.series.len() && idx.series[id as usize].lock().labels == labels {
                return Ok(()); // seen in the checkpoint already
            }
            return Err(format!(
                "series id {id} out of sequence (expected {})",
                idx.series.len()
            ));
        }
        let h = self.hash(&labels);
        idx.postings.add(id, &labels);
        idx.by_hash.entry(h).or_default().push(id);
        idx.series
            .push(Arc::new(Mutex::new(MemSeries::new(labels))));
        Ok(())
    }

    pub fn series_by_id(&self, id: u32) -> Option<Arc<Mutex<MemSeries>>> {
        self.index.read().series.get(id as usize).cloned()
    }

    pub fn len(&self) -> usize {
        self.index.read().series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every series (id order).
    pub fn all(&self) -> Vec<Arc<Mutex<MemSeries>>> {
        self.index.read().series.clone()
    }

    /// Series matching all matchers, sorted by labels.
    pub fn select_sorted(&self, matchers: &[Matcher]) -> Vec<Arc<Mutex<MemSeries>>> {
        let idx = self.index.read();
        // postings answer exactly for the matchers they narrow by (those that
        // do not match the empty string); only the others are checked here
        let (ids, check): (Vec<u32>, Vec<&Matcher>) = match idx.postings.candidates(matchers) {
            Some(ids) => (ids, matchers.iter().filter(|m| m.matches_empty()).collect()),
            None => (
                (0..idx.series.len() as u32).collect(),
                matchers.iter().collect(),
            ),
        };
        let mut ids: Vec<u32> = if check.is_empty() {
            ids
        } else {
            ids.into_iter()
                .filter(|&id| {
                    let s = idx.series[id as usize].lock();
                    check.iter().all(|m| m.matches_labels(&s.labels))
                })
                .collect()
        };
        {
            let mut order = self.order.lock();
            order.update(&idx);
            ids.sort_unstable_by_key(|&id| order.rank[id as usize]);
        }
        ids.into_iter()
            .map(|id| idx.series[id as usize].clone())
            .collect()
    }

    /// Series matching all matchers.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<Arc<Mutex<MemSeries>>> {
        let idx = self.index.read();
        let ids: Vec<u32> = match idx.postings.candidates(matchers) {
            Some(ids) => ids,
            None => (0..idx.series.len() as u32).collect(),
        };
        ids.into_iter()
            .map(|id| idx.series[id as usize].clone())
            .filter(|s| {
                let s = s.lock();
                matchers.iter().all(|m| m.matches_labels(&s.labels))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_in_order_duplicate_conflict_ooo_and_too_old() {
        let mut s = MemSeries::new(Labels::from_pairs([("a", "b")]));
        for t in 0..10 {
            s.apply(t * 1000, t as f64);
        }
        assert_eq!(s.classify(10_000, 1.0, &[], 0), Verdict::Append);
        assert_eq!(s.classify(9_000, 9.0, &[], 0), Verdict::Duplicate);
        assert_eq!(s.classify(9_000, 8.0, &[], 0), Verdict::Conflict);
        assert_eq!(s.classify(4_500, 1.0, &[], 0), Verdict::OutOfOrder);
        assert_eq!(s.classify(4_500, 1.0, &[], 5_000), Verdict::TooOld);
        let pending = [Sample::new(20_000, 2.0)];
        assert_eq!(s.classify(15_000, 1.0, &pending, 0), Verdict::OutOfOrder);
        assert_eq!(s.classify(20_000, 2.0, &pending, 0), Verdict::Duplicate);
        s.apply(4_500, 7.0);
        let got = s.samples(4_000, 5_000);
        assert_eq!(
            got,
            vec![
                Sample::new(4_000, 4.0),
                Sample::new(4_500, 7.0),
                Sample::new(5_000, 5.0)
            ]
        );
    }

    fn hist(k: f64) -> FloatHistogram {
        let mut h = FloatHistogram::empty(0);
        h.count = k;
        h.sum = k;
        h.set_bucket_list(true, &[(0, k)]);
        h
    }

    #[test]
    fn histogram_samples_beside_floats() {
        let mut s = MemSeries::new(Labels::from_pairs([("a", "b")]));
        s.apply(1_000, 1.0);
        for t in 2..300 {
            assert_eq!(
                s.classify_histogram(t * 1000, &hist(t as f64), &[], &[], 0),
                Verdict::Append
            );
            s.apply_histogram(HistogramSample::new(t * 1000, hist(t as f64)));
        }
        assert_eq!(s.max_time(), Some(299_000));
        assert_eq!(s.sample_count(), 299);
        // a float where a histogram is, and the other way round
        assert_eq!(s.classify(5_000, 1.0, &[], 0), Verdict::Conflict);
        assert_eq!(
            s.classify_histogram(1_000, &hist(1.0), &[], &[], 0),
            Verdict::Conflict
        );
        assert_eq!(
            s.classify_histogram(5_000, &hist(5.0), &[], &[], 0),
            Verdict::Duplicate
        );
        assert_eq!(
            s.classify_histogram(5_000, &hist(6.0), &[], &[], 0),
            Verdict::Conflict
        );
        assert_eq!(
            s.classify_histogram(1_500, &hist(6.0), &[], &[], 100_000),
            Verdict::TooOld
        );
        // out of order into a closed chunk
        s.apply_histogram(HistogramSample::new(1_500, hist(0.5)));
        let got = s.histograms(1_000, 3_000);
        assert_eq!(
            got.iter().map(|x| x.t).collect::<Vec<_>>(),
            vec![1_500, 2_000, 3_000]
        );
        assert_eq!(got[0].h.count, 0.5);
        let (old, old_h) = s.split_off_before(100_000);
        assert_eq!((old.len(), old_h.len()), (1, 99));
        assert_eq!(s.histograms(i64::MIN, i64::MAX).len(), 200);
        assert_eq!(s.min_time(), Some(100_000));
    }

    #[test]
    fn many_out_of_order_samples_merge_into_chunks() {
        let mut s = MemSeries::new(Labels::from_pairs([("a", "b")]));
        s.apply(1_000_000, 0.0);
        for t in (0..500).rev() {
            s.apply(t, t as f64);
        }
        let all = s.samples(i64::MIN, i64::MAX);
        assert_eq!(all.len(), 501);
        assert!(all.windows(2).all(|w| w[0].t < w[1].t));
        let (old, _) = s.split_off_before(250);
        assert_eq!(old.len(), 250);
        assert_eq!(s.samples(i64::MIN, i64::MAX).len(), 251);
    }

    #[test]
    fn interning_and_selection() {
        let h = Head::new();
        let a = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        let (id1, _, created) = h.get_or_create(&a);
        assert!(created);
        let (id2, _, created) = h.get_or_create(&a);
        assert!(!created);
        assert_eq!(id1, id2);
        h.get_or_create(&Labels::from_pairs([("__name__", "up"), ("job", "b")]));
        assert_eq!(h.select(&[Matcher::eq("job", "b")]).len(), 1);
        assert_eq!(h.select(&[Matcher::eq("__name__", "up")]).len(), 2);
    }

    #[test]
    fn sorted_selection_follows_label_order_as_series_arrive() {
        let h = Head::new();
        let names = |h: &Head| -> Vec<String> {
            h.select_sorted(&[])
                .iter()
                .map(|s| s.lock().labels.get("i").unwrap().to_string())
                .collect()
        };
        for i in ["5", "1", "3"] {
            h.get_or_create(&Labels::from_pairs([("i", i)]));
        }
        assert_eq!(names(&h), ["1", "3", "5"]);
        for i in ["4", "0", "9", "2"] {
            h.get_or_create(&Labels::from_pairs([("i", i)]));
        }
        assert_eq!(names(&h), ["0", "1", "2", "3", "4", "5", "9"]);
        let sel =
            h.select_sorted(&[Matcher::new(day2_model::MatchOp::Regex, "i", "[0-4]").unwrap()]);
        assert_eq!(sel.len(), 5);
    }
}
