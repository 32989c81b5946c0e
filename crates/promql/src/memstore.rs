//! A small in-memory `Queryable`, for tests of the engine and of code above it.

use std::collections::BTreeMap;

use day2_model::{Labels, Matcher, QueryError, Queryable, Sample, Series};

/// Series kept in memory, sorted by labels; samples sorted by time.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    series: BTreeMap<Labels, Vec<Sample>>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sample (replacing one at the same time).
    pub fn add(&mut self, labels: Labels, t: i64, v: f64) {
        let s = self.series.entry(labels).or_default();
        match s.binary_search_by_key(&t, |p| p.t) {
            Ok(i) => s[i].v = v,
            Err(i) => s.insert(i, Sample::new(t, v)),
        }
    }

    pub fn clear(&mut self) {
        self.series.clear();
    }

    fn matching<'a>(
        &'a self,
        matchers: &'a [Matcher],
    ) -> impl Iterator<Item = (&'a Labels, &'a Vec<Sample>)> + 'a {
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
                histograms: Vec::new(),
                labels: l.clone(),
                samples: s
                    .iter()
                    .filter(|p| p.t >= mint && p.t <= maxt)
                    .copied()
                    .collect(),
            })
            .filter(|s| !s.samples.is_empty())
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
