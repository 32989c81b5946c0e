//! Inverted index `label name -> value -> sorted series ids`, and matcher
//! selection over it (shared by the head and by blocks).

use std::collections::HashMap;

use day2_model::{Labels, MatchOp, Matcher};

#[derive(Debug, Default, Clone)]
pub struct Postings {
    map: HashMap<String, HashMap<String, Vec<u32>>>,
    count: u32,
}

impl Postings {
    /// Adds series `id` (ids must be added in increasing order).
    pub fn add(&mut self, id: u32, labels: &Labels) {
        for l in labels {
            self.map
                .entry(l.name.clone())
                .or_default()
                .entry(l.value.clone())
                .or_default()
                .push(id);
        }
        self.count = self.count.max(id + 1);
    }

    pub fn label_names(&self) -> impl Iterator<Item = &String> {
        self.map.keys()
    }

    pub fn label_values(&self, name: &str) -> impl Iterator<Item = &String> {
        self.map.get(name).into_iter().flat_map(|m| m.keys())
    }

    /// Ids of series that may match all `matchers` (a superset: callers check
    /// each candidate's labels). `None` means "every series".
    pub fn candidates(&self, matchers: &[Matcher]) -> Option<Vec<u32>> {
        let mut result: Option<Vec<u32>> = None;
        for m in matchers {
            if m.matches_empty() {
                continue; // also matches series without the label: cannot narrow by postings
            }
            let ids: Vec<u32> = match (m.op, self.map.get(&m.name)) {
                (_, None) => Vec::new(),
                (MatchOp::Equal, Some(vals)) => vals.get(&m.value).cloned().unwrap_or_default(),
                (_, Some(vals)) => {
                    let lists: Vec<&Vec<u32>> = vals
                        .iter()
                        .filter(|(v, _)| m.matches(v))
                        .map(|(_, ids)| ids)
                        .collect();
                    union(&lists)
                }
            };
            result = Some(match result {
                None => ids,
                Some(prev) => intersect(&prev, &ids),
            });
            if result.as_ref().is_some_and(|r| r.is_empty()) {
                break;
            }
        }
        result
    }

    pub fn series_count(&self) -> u32 {
        self.count
    }
}

/// Intersection of two sorted id lists.
pub fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Union of sorted id lists, sorted and deduplicated.
pub fn union(lists: &[&Vec<u32>]) -> Vec<u32> {
    let mut out: Vec<u32> = lists.iter().flat_map(|l| l.iter().copied()).collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(op: MatchOp, n: &str, v: &str) -> Matcher {
        Matcher::new(op, n, v).unwrap()
    }

    #[test]
    fn set_operations() {
        assert_eq!(intersect(&[1, 3, 5, 7], &[2, 3, 7, 9]), vec![3, 7]);
        assert_eq!(union(&[&vec![1, 5], &vec![2, 5, 9]]), vec![1, 2, 5, 9]);
    }

    #[test]
    fn candidates_narrow_by_postings() {
        let mut p = Postings::default();
        p.add(0, &Labels::from_pairs([("__name__", "up"), ("job", "a")]));
        p.add(1, &Labels::from_pairs([("__name__", "up"), ("job", "b")]));
        p.add(2, &Labels::from_pairs([("__name__", "x"), ("job", "a")]));
        assert_eq!(
            p.candidates(&[m(MatchOp::Equal, "__name__", "up")]),
            Some(vec![0, 1])
        );
        assert_eq!(
            p.candidates(&[
                m(MatchOp::Equal, "__name__", "up"),
                m(MatchOp::Regex, "job", "a|c")
            ]),
            Some(vec![0])
        );
        assert_eq!(
            p.candidates(&[m(MatchOp::NotEqual, "job", "a")]),
            None,
            "matches empty: no narrowing"
        );
        assert_eq!(
            p.candidates(&[m(MatchOp::Equal, "nope", "1")]),
            Some(vec![])
        );
    }
}
