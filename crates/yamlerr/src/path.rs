//! Finds the line of a key path (`scrape_configs[2].scrape_timeout`) in block-style
//! YAML text, so that errors found after parsing can still name file:line.

/// One step of a path into a YAML document.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// Parses `a.b[2].c` into steps.
pub fn parse_path(path: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                steps.push(Step::Key(rest[..i].to_string()));
            }
            rest = &rest[i..];
            while let Some(end) = rest.find(']') {
                if let Ok(n) = rest[1..end].parse() {
                    steps.push(Step::Index(n));
                }
                rest = &rest[end + 1..];
            }
        } else {
            steps.push(Step::Key(rest.to_string()));
        }
    }
    steps
}

/// A content line: its indentation, whether it starts a sequence item, and
/// the column and text where its key (if any) begins.
struct Line<'a> {
    no: usize,
    indent: usize,
    item: bool,
    key_col: usize,
    key: Option<&'a str>,
}

fn lines(text: &str) -> Vec<Line<'_>> {
    text.lines()
        .enumerate()
        .filter_map(|(i, raw)| {
            let t = raw.trim_start();
            if t.is_empty() || t.starts_with('#') || t == "---" {
                return None;
            }
            let indent = raw.len() - t.len();
            let item = t == "-" || t.starts_with("- ");
            let body = if item { t[1..].trim_start() } else { t };
            let key_col = raw.len() - body.len();
            let key = body
                .split_once(':')
                .map(|(k, _)| k.trim().trim_matches(|c| c == '"' || c == '\''));
            Some(Line {
                no: i + 1,
                indent,
                item,
                key_col,
                key,
            })
        })
        .collect()
}

/// Returns the 1-based line where the deepest reachable step of `path` is written.
pub fn locate(text: &str, path: &[Step]) -> Option<usize> {
    walk(text, path).0
}

/// The line of `path` only when every step of it is written on its own line
/// (block style); `None` when part of it is inside a flow collection.
pub fn locate_exact(text: &str, path: &[Step]) -> Option<usize> {
    match walk(text, path) {
        (line, true) => line,
        _ => None,
    }
}

/// The deepest line found, and whether every step was found.
fn walk(text: &str, path: &[Step]) -> (Option<usize>, bool) {
    let all = lines(text);
    let mut window = &all[..];
    let mut found = None;
    for step in path {
        let Some(first) = window.first() else {
            return (found, false);
        };
        match step {
            Step::Key(k) => {
                let col = first.key_col;
                let Some(pos) = window
                    .iter()
                    .position(|l| l.key_col == col && l.key == Some(k.as_str()))
                else {
                    return (found, false);
                };
                let at = &window[pos];
                found = Some(at.no);
                // children: following lines indented deeper than the key, or a
                // sequence written at the key's own indentation
                let rest = &window[pos + 1..];
                let len = rest
                    .iter()
                    .position(|l| l.indent < at.key_col || (l.indent == at.key_col && !l.item))
                    .unwrap_or(rest.len());
                window = &rest[..len];
            }
            Step::Index(n) => {
                let col = first.indent;
                let items: Vec<usize> = window
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.item && l.indent == col)
                    .map(|(i, _)| i)
                    .collect();
                // a flow sequence (`[a, b]`) has no item lines: stay on its key
                let Some(&start) = items.get(*n) else {
                    return (found, false);
                };
                let end = items.get(n + 1).copied().unwrap_or(window.len());
                found = Some(window[start].no);
                window = &window[start..end];
            }
        }
    }
    (found, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
server:
  listen: 1.2.3.4:9090
scrape_configs:
  - job_name: a
    scrape_interval: 10s
  # comment
  - job_name: b
    static_configs:
      - targets: [x]
    scrape_timeout: 20s
";

    #[test]
    fn flow_sequences_locate_their_key() {
        let doc = "users:\n  - id: a\n    tags: [x, y]\n";
        assert_eq!(locate(doc, &parse_path("users[0].tags[1]")), Some(3));
    }

    #[test]
    fn finds_nested_keys_and_items() {
        assert_eq!(locate(DOC, &parse_path("server.listen")), Some(2));
        assert_eq!(
            locate(DOC, &parse_path("scrape_configs[0].scrape_interval")),
            Some(5)
        );
        assert_eq!(locate(DOC, &parse_path("scrape_configs[1]")), Some(7));
        assert_eq!(
            locate(DOC, &parse_path("scrape_configs[1].scrape_timeout")),
            Some(10)
        );
        assert_eq!(
            locate(
                DOC,
                &parse_path("scrape_configs[1].static_configs[0].targets")
            ),
            Some(9)
        );
        // past what is written: the deepest step found
        assert_eq!(locate(DOC, &parse_path("scrape_configs[5]")), Some(3));
        assert_eq!(locate(DOC, &parse_path("nothing.here")), None);
    }
}
