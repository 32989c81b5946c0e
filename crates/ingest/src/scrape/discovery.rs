//! Target discovery: static groups and file-based groups (JSON or YAML lists of
//! `{targets, labels}`), re-read when a file changes or its refresh interval passes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::Deserialize;

use super::config::{FileSdConfig, StaticConfig};

/// A group of targets sharing labels, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetGroup {
    pub source: String,
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

pub fn static_groups(cfgs: &[StaticConfig]) -> Vec<TargetGroup> {
    cfgs.iter()
        .enumerate()
        .map(|(i, c)| TargetGroup {
            source: format!("static:{i}"),
            targets: c.targets.clone(),
            labels: c.labels.clone(),
        })
        .collect()
}

/// Reads one file_sd file.
pub fn read_file(path: &Path) -> Result<Vec<TargetGroup>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let groups: Vec<FileGroup> = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
    } else {
        serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
    };
    for (i, g) in groups.iter().enumerate() {
        for name in g.labels.keys() {
            if !day2_model::labels::is_valid_label_name(name) {
                return Err(format!(
                    "{}: group {i}: invalid label name {name:?}",
                    path.display()
                ));
            }
        }
    }
    Ok(groups
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let mut labels = g.labels;
            labels.insert("__meta_filepath".into(), path.display().to_string());
            TargetGroup {
                source: format!("{}:{i}", path.display()),
                targets: g.targets,
                labels,
            }
        })
        .collect())
}

/// Expands a file_sd pattern: a `*` in the last path element matches any run of characters.
fn expand(pattern: &str) -> Vec<PathBuf> {
    let p = Path::new(pattern);
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !name.contains('*') {
        return vec![p.to_path_buf()];
    }
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let (prefix, suffix) = name.split_once('*').unwrap_or((name, ""));
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().to_string();
                    n.len() >= prefix.len() + suffix.len()
                        && n.starts_with(prefix)
                        && n.ends_with(suffix)
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Watches the files of one job's file_sd configs by polling their mtimes.
pub struct FileWatcher {
    cfgs: Vec<FileSdConfig>,
    seen: BTreeMap<PathBuf, Option<SystemTime>>,
    last_full: Instant,
    /// Last good groups per file: a bad file keeps its previous targets.
    groups: BTreeMap<PathBuf, Vec<TargetGroup>>,
    pub last_error: Option<String>,
}

impl FileWatcher {
    pub fn new(cfgs: Vec<FileSdConfig>) -> Self {
        FileWatcher {
            cfgs,
            seen: BTreeMap::new(),
            last_full: Instant::now(),
            groups: BTreeMap::new(),
            last_error: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.cfgs.is_empty()
    }

    /// Re-reads changed files; returns the current groups when anything changed.
    pub fn poll(&mut self, force: bool) -> Option<Vec<TargetGroup>> {
        let refresh = self
            .cfgs
            .iter()
            .map(|c| c.refresh_interval)
            .min()
            .unwrap_or_default();
        let full = force || self.last_full.elapsed() >= refresh;
        if full {
            self.last_full = Instant::now();
        }
        let mut paths = Vec::new();
        for c in &self.cfgs {
            for f in &c.files {
                paths.extend(expand(f));
            }
        }
        let mut changed = false;
        let mut errors = Vec::new();
        // files that disappeared take their targets with them
        let gone: Vec<PathBuf> = self
            .groups
            .keys()
            .filter(|p| !paths.contains(p))
            .cloned()
            .collect();
        for p in gone {
            self.groups.remove(&p);
            self.seen.remove(&p);
            changed = true;
        }
        for p in paths {
            let mtime = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
            if !full && self.seen.get(&p) == Some(&mtime) {
                continue;
            }
            self.seen.insert(p.clone(), mtime);
            match read_file(&p) {
                Ok(g) => {
                    if self.groups.get(&p) != Some(&g) {
                        self.groups.insert(p, g);
                        changed = true;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "file_sd: keeping the last good targets");
                    errors.push(e);
                }
            }
        }
        if full || !errors.is_empty() {
            self.last_error = (!errors.is_empty()).then(|| errors.join("; "));
        }
        changed.then(|| self.groups.values().flatten().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_json_and_yaml_and_keeps_last_good_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.json");
        std::fs::write(
            &f,
            r#"[{"targets": ["a:1", "b:2"], "labels": {"env": "prod"}}]"#,
        )
        .unwrap();
        let y = dir.path().join("u.yml");
        std::fs::write(&y, "- targets: ['c:3']\n").unwrap();
        let pattern = dir.path().join("*.json").display().to_string();
        let mut w = FileWatcher::new(vec![
            FileSdConfig {
                files: vec![pattern],
                refresh_interval: std::time::Duration::from_secs(300),
            },
            FileSdConfig {
                files: vec![y.display().to_string()],
                refresh_interval: std::time::Duration::from_secs(300),
            },
        ]);
        let groups = w.poll(true).unwrap();
        assert_eq!(groups.len(), 2);
        let json = groups.iter().find(|g| g.targets.len() == 2).unwrap();
        assert_eq!(json.labels.get("env").map(String::as_str), Some("prod"));
        assert!(w.poll(false).is_none(), "nothing changed");
        std::fs::write(&f, "not json").unwrap();
        assert!(
            w.poll(true).is_none(),
            "a bad file keeps the last good groups"
        );
        assert!(w.last_error.as_ref().unwrap().contains("t.json"));
    }
}
