//! Differential test against the real node exporter (Debian's
//! `prometheus-node-exporter`, started here on a loopback port): every family
//! we expose exists there with the same type and label names, and the values
//! that cannot drift between two reads agree.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Default, Debug)]
struct Family {
    kind: String,
    label_names: BTreeSet<BTreeSet<String>>,
    samples: Vec<(BTreeMap<String, String>, f64)>,
}

/// Small text-format reader for this test (the real parser lives in day2-ingest).
fn families(body: &str) -> BTreeMap<String, Family> {
    let mut out: BTreeMap<String, Family> = BTreeMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            out.entry(name.to_string()).or_default().kind = kind.to_string();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (head, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match head.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (head, ""),
        };
        let mut map = BTreeMap::new();
        // label values here never contain '",' so a plain split is enough
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap();
            map.insert(k.to_string(), v.trim_matches('"').to_string());
        }
        let f = out.entry(name.to_string()).or_default();
        f.label_names.insert(map.keys().cloned().collect());
        f.samples.push((map, value.parse().unwrap_or(f64::NAN)));
    }
    out
}

fn http_get(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.1 200").then(|| body.to_string()))
}

#[test]
fn families_types_and_labels_match_the_real_node_exporter() {
    let bin = "/usr/bin/prometheus-node-exporter";
    assert!(
        std::path::Path::new(bin).exists(),
        "{bin} missing: apt-get install prometheus-node-exporter (scripts/test.sh does)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _ne = Kill(
        Command::new(bin)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args([
                "--collector.disable-defaults",
                "--collector.cpu",
                "--collector.meminfo",
                "--collector.loadavg",
                "--collector.stat",
                "--collector.filesystem",
                "--collector.diskstats",
                "--collector.netdev",
                "--collector.uname",
                "--collector.time",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node exporter"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let theirs = loop {
        if let Some(b) = http_get(port) {
            break b;
        }
        assert!(
            Instant::now() < deadline,
            "node exporter did not answer on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let ours = day2_host::render().unwrap();
    let (ours, theirs) = (families(&ours), families(&theirs));

    // Families node_exporter 1.5 does not have, with the reason.
    let newer_only: BTreeSet<&str> = BTreeSet::new();
    for (name, f) in &ours {
        if newer_only.contains(name.as_str()) {
            continue;
        }
        let Some(t) = theirs.get(name) else {
            // meminfo fields and disk/net families appear only when the kernel reports them,
            // and both read the same kernel: a family missing there is a naming bug here.
            panic!("family {name} is not exposed by node_exporter");
        };
        assert_eq!(f.kind, t.kind, "type of {name}");
        assert_eq!(f.label_names, t.label_names, "label names of {name}");
    }
    for core in [
        "node_cpu_seconds_total",
        "node_memory_MemTotal_bytes",
        "node_memory_MemAvailable_bytes",
        "node_load1",
        "node_boot_time_seconds",
        "node_network_receive_bytes_total",
        "node_uname_info",
    ] {
        assert!(ours.contains_key(core), "we expose {core}");
        assert!(theirs.contains_key(core), "node exporter exposes {core}");
    }
    let value = |fams: &BTreeMap<String, Family>, name: &str| fams[name].samples[0].1;
    assert_eq!(
        value(&ours, "node_memory_MemTotal_bytes"),
        value(&theirs, "node_memory_MemTotal_bytes")
    );
    assert_eq!(
        value(&ours, "node_boot_time_seconds"),
        value(&theirs, "node_boot_time_seconds")
    );
    let label_set =
        |fams: &BTreeMap<String, Family>, name: &str, label: &str| -> BTreeSet<String> {
            fams.get(name)
                .map(|f| {
                    f.samples
                        .iter()
                        .filter_map(|(l, _)| l.get(label).cloned())
                        .collect()
                })
                .unwrap_or_default()
        };
    assert_eq!(
        label_set(&ours, "node_cpu_seconds_total", "cpu"),
        label_set(&theirs, "node_cpu_seconds_total", "cpu")
    );
    assert_eq!(
        label_set(&ours, "node_network_receive_bytes_total", "device"),
        label_set(&theirs, "node_network_receive_bytes_total", "device")
    );
    assert_eq!(
        label_set(&ours, "node_disk_read_bytes_total", "device"),
        label_set(&theirs, "node_disk_read_bytes_total", "device")
    );
    let our_mounts = label_set(&ours, "node_filesystem_size_bytes", "mountpoint");
    let their_mounts = label_set(&theirs, "node_filesystem_size_bytes", "mountpoint");
    assert!(
        our_mounts.is_subset(&their_mounts),
        "ours {our_mounts:?} vs theirs {their_mounts:?}"
    );
}
