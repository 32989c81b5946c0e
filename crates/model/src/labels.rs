//! Label sets: a series is identified by its sorted set of name/value pairs.

use std::fmt;
use std::sync::Arc;

/// Name of the label that holds the metric name.
pub const METRIC_NAME: &str = "__name__";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    pub name: String,
    pub value: String,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A set of labels sorted by name, without duplicate names and without empty
/// values (an empty value means "label absent", as in Prometheus). Shared
/// behind an `Arc`: cloning a label set (which queries do per step) is cheap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Arc<Vec<Label>>);

impl Labels {
    pub fn empty() -> Self {
        Labels(Arc::new(Vec::new()))
    }

    /// Builds a label set from pairs: sorts, drops empty values, and keeps the
    /// last value when a name repeats.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut b = LabelsBuilder::new();
        for (n, v) in pairs {
            b.set(n, v);
        }
        b.build()
    }

    /// Wraps labels that the caller guarantees are sorted, unique and non-empty
    /// (e.g. decoded from our own storage). Debug builds check the claim.
    pub fn from_sorted_unchecked(labels: Vec<Label>) -> Self {
        debug_assert!(
            labels.windows(2).all(|w| w[0].name < w[1].name),
            "labels not sorted/unique"
        );
        Labels(Arc::new(labels))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<Label> {
        Arc::try_unwrap(self.0).unwrap_or_else(|shared| (*shared).clone())
    }

    /// Starts a builder seeded with these labels.
    pub fn to_builder(&self) -> LabelsBuilder {
        LabelsBuilder {
            labels: self.0.as_ref().clone(),
        }
    }

    /// Checks Prometheus's naming rules; returns a message naming the bad part.
    pub fn validate(&self) -> Result<(), String> {
        if self.0.is_empty() {
            return Err("series has no labels".into());
        }
        for l in self.0.iter() {
            if !is_valid_label_name(&l.name) {
                return Err(format!("invalid label name {:?}", l.name));
            }
        }
        if let Some(name) = self.metric_name()
            && !is_valid_metric_name(name)
        {
            return Err(format!("invalid metric name {name:?}"));
        }
        Ok(())
    }
}

impl fmt::Display for Labels {
    /// Prometheus's text form: `name{a="1", b="2"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name().unwrap_or("");
        write!(f, "{name}{{")?;
        let mut first = true;
        for l in self.0.iter().filter(|l| l.name != METRIC_NAME) {
            if !first {
                write!(f, ", ")?;
            }
            first = false;
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        write!(f, "}}")
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Mutable label set used while relabelling or parsing; `build` sorts it.
#[derive(Debug, Clone, Default)]
pub struct LabelsBuilder {
    labels: Vec<Label>,
}

impl LabelsBuilder {
    pub fn new() -> Self {
        LabelsBuilder { labels: Vec::new() }
    }

    /// Sets `name` to `value`; an empty value deletes the label.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let (name, value) = (name.into(), value.into());
        match self.labels.iter_mut().position(|l| l.name == name) {
            Some(i) if value.is_empty() => {
                self.labels.remove(i);
            }
            Some(i) => self.labels[i].value = value,
            None if value.is_empty() => {}
            None => self.labels.push(Label { name, value }),
        }
        self
    }

    pub fn del(&mut self, name: &str) -> &mut Self {
        self.labels.retain(|l| l.name != name);
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_str())
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&Label) -> bool) -> &mut Self {
        self.labels.retain(|l| keep(l));
        self
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.labels.iter()
    }

    pub fn build(&self) -> Labels {
        let mut v = self.labels.clone();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Labels(Arc::new(v))
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub fn is_valid_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(c) if c.is_ascii_alphabetic() || c == b'_' => {}
        _ => return false,
    }
    bytes.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn is_valid_metric_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {}
        _ => return false,
    }
    bytes.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_pairs_sorts_dedups_and_drops_empty() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", ""), ("a", "3")]);
        assert_eq!(l.as_slice(), &[Label::new("a", "3"), Label::new("b", "2")]);
        assert_eq!(l.get("a"), Some("3"));
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn display_matches_prometheus_text_form() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "x\"y")]);
        assert_eq!(l.to_string(), "up{job=\"x\\\"y\"}");
    }

    #[test]
    fn validation_names_the_bad_part() {
        assert!(
            Labels::from_pairs([("__name__", "ok_name:x")])
                .validate()
                .is_ok()
        );
        let err = Labels::from_pairs([("__name__", "1bad")])
            .validate()
            .unwrap_err();
        assert!(err.contains("1bad"), "{err}");
        let err = Labels::from_pairs([("__name__", "x"), ("bad-name", "v")])
            .validate()
            .unwrap_err();
        assert!(err.contains("bad-name"), "{err}");
    }
}
