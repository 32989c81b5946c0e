//! A small in-memory `Queryable`, for tests of the engine and of code above it.

use std::collections::BTreeMap;
use std::sync::Arc;

use day2_model::{
    FloatHistogram, HistogramSample, Labels, Matcher, QueryError, Queryable, Sample, Series,
};

/// Series kept in memory, sorted by labels; samples sorted by time. A
/// timestamp holds a float or a histogram: adding one replaces the other.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    series: BTreeMap<Labels, Series>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a float sample (replacing one at the same time).
    pub fn add(&mut self, labels: Labels, t: i64, v: f64) {
        let s = self.series.entry(labels).or_default();
        if let Ok(i) = s.histograms.binary_search_by_key(&t, |p| p.t) {
            s.histograms.remove(i);
        }
        match s.samples.binary_search_by_key(&t, |p| p.t) {
            Ok(i) => s.samples[i].v = v,
            Err(i) => s.samples.insert(i, Sample::new(t, v)),
        }
    }

    /// Adds a native-histogram sample (replacing one at the same time).
    pub fn add_histogram(&mut self, labels: Labels, t: i64, h: FloatHistogram) {
        let s = self.series.entry(labels).or_default();
        if let Ok(i) = s.samples.binary_search_by_key(&t, |p| p.t) {
            s.samples.remove(i);
        }
        let h = Arc::new(h);
        match s.histograms.binary_search_by_key(&t, |p| p.t) {
            Ok(i) => s.histograms[i].h = h,
            Err(i) => s.histograms.insert(i, HistogramSample { t, h }),
        }
    }

    pub fn clear(&mut self) {
        self.series.clear();
    }

    fn matching<'a>(
        &'a self,
        matchers: &'a [Matcher],
    ) -> impl Iterator<Item = (&'a Labels, &'a Series)> + 'a {
        self.series
            .iter()
            .filter(move |(l, _)| matchers.iter().all(|m| m.matches_labels(l)))
    }
}

impl Queryable for MemStore {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Series>, QueryError> {
        Ok(self
            .matching(matchers)
            .map(|(l, s)| Series {
                labels: l.clone(),
                samples: s
                    .samples
                    .iter()
                    .filter(|p| p.t >= mint && p.t <= maxt)
                    .copied()
                    .collect(),
                histograms: s
                    .histograms
                    .iter()
                    .filter(|p| p.t >= mint && p.t <= maxt)
                    .cloned()
                    .collect(),
            })
            .filter(|s| !s.is_empty())
            .collect())
    }

    fn series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Labels>, QueryError> {
        Ok(self
            .select(matchers, mint, maxt)?
            .into_iter()
            .map(|s| s.labels)
            .collect())
    }
}
