//! Runs the text-format parser over Prometheus's own parser test inputs
//! (`shared/corpus/textparse`), with counts verified against the files.

use day2_ingest::textparse::{Format, MetricType, parse};

fn corpus(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/textparse")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Sample lines in a file: non-empty lines that are not comments.
fn sample_lines(body: &[u8]) -> usize {
    std::str::from_utf8(body)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count()
}

#[test]
fn every_corpus_file_parses_completely() {
    for (name, format) in [
        ("alltypes.237mfs.prom.txt", Format::Prometheus),
        ("alltypes.237mfs.nometa.prom.txt", Format::Prometheus),
        ("alltypes.5mfs.om.txt", Format::OpenMetrics),
        ("1histogram.om.txt", Format::OpenMetrics),
    ] {
        let body = corpus(name);
        let parsed = parse(&body, format).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            parsed.samples.len(),
            sample_lines(&body),
            "{name}: one sample per sample line"
        );
        assert!(
            parsed
                .samples
                .iter()
                .all(|s| s.labels.metric_name().is_some()),
            "{name}"
        );
    }
}

#[test]
fn corpus_metadata_and_spot_checks() {
    let body = corpus("alltypes.237mfs.prom.txt");
    let p = parse(&body, Format::Prometheus).unwrap();
    let typed = std::str::from_utf8(&body)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("# TYPE ") && !l.ends_with(" untyped"))
        .count();
    assert_eq!(
        p.metadata
            .iter()
            .filter(|m| m.kind != MetricType::Unknown)
            .count(),
        typed
    );
    assert_eq!(p.metadata.len(), 237, "237 metric families");
    assert!(p.metadata.iter().any(|m| m.kind == MetricType::Histogram));
    assert!(p.metadata.iter().any(|m| m.kind == MetricType::Summary));

    let om = parse(&corpus("alltypes.5mfs.om.txt"), Format::OpenMetrics).unwrap();
    let build = om
        .samples
        .iter()
        .find(|s| s.labels.metric_name() == Some("go_build_info"))
        .unwrap();
    assert_eq!(build.value, 1.0);
    let created = om
        .samples
        .iter()
        .find(|s| s.labels.metric_name() == Some("promhttp_metric_handler_errors_created"))
        .unwrap();
    assert_eq!(created.value, 1.726839813016397e9);
    // exemplars are dropped, the bucket sample stays
    let b = om
        .samples
        .iter()
        .find(|s| {
            s.labels.metric_name() == Some("rpc_durations_histogram_seconds_bucket")
                && s.labels.get("le") == Some("-0.0002899999999999998")
        })
        .unwrap();
    assert_eq!(b.value, 3.0);
}
