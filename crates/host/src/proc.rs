//! Parsers of `/proc` files and the collectors built on them.

use std::ffi::CStr;

use crate::Writer;

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

/// Clock ticks per second used by `/proc/stat`.
fn user_hz() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 { v as f64 } else { 100.0 }
}

/// One CPU's times in seconds from a `cpuN` line of /proc/stat.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuTimes {
    pub cpu: String,
    pub modes: Vec<(&'static str, f64)>,
    pub guest: f64,
    pub guest_nice: f64,
}

const CPU_MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// Figures of /proc/stat besides the per-CPU lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stat {
    pub cpus: Vec<CpuTimes>,
    pub boot_time: f64,
    pub context_switches: f64,
    pub forks: f64,
    pub interrupts: f64,
    pub procs_running: f64,
    pub procs_blocked: f64,
}

pub fn parse_stat(text: &str, hz: f64) -> Result<Stat, String> {
    let mut st = Stat::default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(key) = f.next() else { continue };
        let nums: Vec<f64> = f.map(|x| x.parse::<f64>().unwrap_or(0.0)).collect();
        let first = nums.first().copied().unwrap_or(0.0);
        match key {
            "cpu" => {}
            k if k.starts_with("cpu") => {
                let cpu = k[3..].to_string();
                if cpu.parse::<u32>().is_err() {
                    return Err(format!("/proc/stat: bad cpu line {line:?}"));
                }
                let v = |i: usize| nums.get(i).copied().unwrap_or(0.0) / hz;
                // guest time is also counted in user/nice; node_exporter reports both as is
                let modes = CPU_MODES
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (*m, v(i)))
                    .collect();
                st.cpus.push(CpuTimes {
                    cpu,
                    modes,
                    guest: v(8),
                    guest_nice: v(9),
                });
            }
            "btime" => st.boot_time = first,
            "ctxt" => st.context_switches = first,
            "processes" => st.forks = first,
            "intr" => st.interrupts = first,
            "procs_running" => st.procs_running = first,
            "procs_blocked" => st.procs_blocked = first,
            _ => {}
        }
    }
    if st.cpus.is_empty() {
        return Err("/proc/stat: no cpu lines".into());
    }
    Ok(st)
}

pub fn collect_cpu(w: &mut Writer) -> Result<(), String> {
    let st = parse_stat(&read("/proc/stat")?, user_hz())?;
    for c in &st.cpus {
        for (mode, v) in &c.modes {
            w.sample(
                "node_cpu_seconds_total",
                "counter",
                "Seconds the CPUs spent in each mode.",
                &[("cpu", &c.cpu), ("mode", mode)],
                *v,
            );
        }
        for (mode, v) in [("user", c.guest), ("nice", c.guest_nice)] {
            w.sample(
                "node_cpu_guest_seconds_total",
                "counter",
                "Seconds the CPUs spent in guests (VMs) for each mode.",
                &[("cpu", &c.cpu), ("mode", mode)],
                v,
            );
        }
    }
    Ok(())
}

pub fn collect_stat(w: &mut Writer) -> Result<(), String> {
    let st = parse_stat(&read("/proc/stat")?, user_hz())?;
    w.sample(
        "node_boot_time_seconds",
        "gauge",
        "Node boot time, in unixtime.",
        &[],
        st.boot_time,
    );
    w.sample(
        "node_context_switches_total",
        "counter",
        "Total number of context switches.",
        &[],
        st.context_switches,
    );
    w.sample(
        "node_forks_total",
        "counter",
        "Total number of forks.",
        &[],
        st.forks,
    );
    w.sample(
        "node_intr_total",
        "counter",
        "Total number of interrupts serviced.",
        &[],
        st.interrupts,
    );
    w.sample(
        "node_procs_running",
        "gauge",
        "Number of processes in runnable state.",
        &[],
        st.procs_running,
    );
    w.sample(
        "node_procs_blocked",
        "gauge",
        "Number of processes blocked waiting for I/O to complete.",
        &[],
        st.procs_blocked,
    );
    Ok(())
}

/// `(metric name, value)` pairs from /proc/meminfo, named as node_exporter names them.
pub fn parse_meminfo(text: &str) -> Result<Vec<(String, f64)>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let Some(v) = parts.next().and_then(|v| v.parse::<f64>().ok()) else {
            return Err(format!("/proc/meminfo: bad line {line:?}"));
        };
        let key = key.replace('(', "_").replace(')', "");
        match parts.next() {
            Some("kB") => out.push((format!("node_memory_{key}_bytes"), v * 1024.0)),
            _ => out.push((format!("node_memory_{key}"), v)),
        }
    }
    if out.is_empty() {
        return Err("/proc/meminfo: empty".into());
    }
    Ok(out)
}

pub fn collect_meminfo(w: &mut Writer) -> Result<(), String> {
    for (name, v) in parse_meminfo(&read("/proc/meminfo")?)? {
        let help = format!(
            "Memory information field {}.",
            name.trim_start_matches("node_memory_")
        );
        w.sample(&name, "gauge", &help, &[], v);
    }
    Ok(())
}

pub fn parse_loadavg(text: &str) -> Result<[f64; 3], String> {
    let v: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() != 3 {
        return Err(format!("/proc/loadavg: unexpected content {text:?}"));
    }
    Ok([v[0], v[1], v[2]])
}

pub fn collect_loadavg(w: &mut Writer) -> Result<(), String> {
    let l = parse_loadavg(&read("/proc/loadavg")?)?;
    w.sample("node_load1", "gauge", "1m load average.", &[], l[0]);
    w.sample("node_load5", "gauge", "5m load average.", &[], l[1]);
    w.sample("node_load15", "gauge", "15m load average.", &[], l[2]);
    Ok(())
}

/// A mount from /proc/mounts.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
    pub options: String,
}

/// Decodes the octal escapes (`\040` for a space) the kernel writes in mount tables.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4).then(|| Mount {
                device: unescape_mount(f[0]),
                mountpoint: unescape_mount(f[1]),
                fstype: f[2].to_string(),
                options: f[3].to_string(),
            })
        })
        .collect()
}

/// node_exporter's default exclusions of pseudo file systems and mount points.
pub fn filesystem_ignored(m: &Mount) -> bool {
    const FS: &[&str] = &[
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "fusectl",
        "hugetlbfs",
        "iso9660",
        "mqueue",
        "nsfs",
        "overlay",
        "proc",
        "procfs",
        "pstore",
        "rpc_pipefs",
        "securityfs",
        "selinuxfs",
        "squashfs",
        "sysfs",
        "tracefs",
    ];
    if FS.contains(&m.fstype.as_str()) {
        return true;
    }
    let mp = m.mountpoint.as_str();
    let under = |p: &str| mp == p || mp.starts_with(&format!("{p}/"));
    // Debian's node_exporter default: ^/(dev|proc|run|sys|mnt|media|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)
    ["/dev", "/proc", "/run", "/sys", "/mnt", "/media"]
        .iter()
        .any(|p| under(p))
        || mp.starts_with("/var/lib/docker/")
        || mp.starts_with("/var/lib/containers/storage/")
}

pub fn collect_filesystem(w: &mut Writer) -> Result<(), String> {
    let mounts = parse_mounts(&read("/proc/1/mounts").or_else(|_| read("/proc/mounts"))?);
    let mut seen = std::collections::HashSet::new();
    for m in mounts.iter().filter(|m| !filesystem_ignored(m)) {
        if !seen.insert((m.device.clone(), m.mountpoint.clone())) {
            continue;
        }
        let labels = [
            ("device", m.device.as_str()),
            ("fstype", m.fstype.as_str()),
            ("mountpoint", m.mountpoint.as_str()),
        ];
        let readonly = m.options.split(',').any(|o| o == "ro");
        let Ok(path) = std::ffi::CString::new(m.mountpoint.as_str()) else {
            continue;
        };
        // SAFETY: `path` is a valid C string and `st` is zero-initialised plain data.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
        w.sample(
            "node_filesystem_device_error",
            "gauge",
            "Whether an error occurred while getting statistics for the given device.",
            &labels,
            if rc == 0 { 0.0 } else { 1.0 },
        );
        w.sample(
            "node_filesystem_readonly",
            "gauge",
            "Filesystem read-only status.",
            &labels,
            if readonly { 1.0 } else { 0.0 },
        );
        if rc != 0 {
            continue;
        }
        let frsize = st.f_frsize as f64;
        w.sample(
            "node_filesystem_size_bytes",
            "gauge",
            "Filesystem size in bytes.",
            &labels,
            st.f_blocks as f64 * frsize,
        );
        w.sample(
            "node_filesystem_free_bytes",
            "gauge",
            "Filesystem free space in bytes.",
            &labels,
            st.f_bfree as f64 * frsize,
        );
        w.sample(
            "node_filesystem_avail_bytes",
            "gauge",
            "Filesystem space available to non-root users in bytes.",
            &labels,
            st.f_bavail as f64 * frsize,
        );
        w.sample(
            "node_filesystem_files",
            "gauge",
            "Filesystem total file nodes.",
            &labels,
            st.f_files as f64,
        );
        w.sample(
            "node_filesystem_files_free",
            "gauge",
            "Filesystem total free file nodes.",
            &labels,
            st.f_ffree as f64,
        );
    }
    Ok(())
}

/// One device's line of /proc/diskstats.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskStats {
    pub device: String,
    pub fields: Vec<f64>,
}

pub fn parse_diskstats(text: &str) -> Vec<DiskStats> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 14).then(|| DiskStats {
                device: f[2].to_string(),
                fields: f[3..].iter().map(|x| x.parse().unwrap_or(0.0)).collect(),
            })
        })
        .collect()
}

/// node_exporter's default device exclusion: RAM, loop and floppy devices and partitions.
pub fn disk_ignored(device: &str) -> bool {
    let base = device.trim_end_matches(|c: char| c.is_ascii_digit());
    if base.len() == device.len() {
        return false;
    }
    if matches!(base, "ram" | "loop" | "fd") {
        return true;
    }
    // hda1, sda1, vda1, xvda1: a disk letter followed by a partition number
    for p in ["hd", "sd", "vd", "xvd"] {
        if let Some(rest) = base.strip_prefix(p)
            && rest.len() == 1
            && rest.chars().all(|c| c.is_ascii_lowercase())
        {
            return true;
        }
    }
    // nvme0n1p1
    if let Some(rest) = base.strip_suffix('p')
        && rest.starts_with("nvme")
        && rest.contains('n')
    {
        return true;
    }
    false
}

pub fn collect_diskstats(w: &mut Writer) -> Result<(), String> {
    const SECTOR: f64 = 512.0;
    let rows: [(usize, &str, &str, &str, f64); 11] = [
        (
            0,
            "node_disk_reads_completed_total",
            "counter",
            "The total number of reads completed successfully.",
            1.0,
        ),
        (
            1,
            "node_disk_reads_merged_total",
            "counter",
            "The total number of reads merged.",
            1.0,
        ),
        (
            2,
            "node_disk_read_bytes_total",
            "counter",
            "The total number of bytes read successfully.",
            SECTOR,
        ),
        (
            3,
            "node_disk_read_time_seconds_total",
            "counter",
            "The total number of seconds spent by all reads.",
            0.001,
        ),
        (
            4,
            "node_disk_writes_completed_total",
            "counter",
            "The total number of writes completed successfully.",
            1.0,
        ),
        (
            5,
            "node_disk_writes_merged_total",
            "counter",
            "The number of writes merged.",
            1.0,
        ),
        (
            6,
            "node_disk_written_bytes_total",
            "counter",
            "The total number of bytes written successfully.",
            SECTOR,
        ),
        (
            7,
            "node_disk_write_time_seconds_total",
            "counter",
            "This is the total number of seconds spent by all writes.",
            0.001,
        ),
        (
            8,
            "node_disk_io_now",
            "gauge",
            "The number of I/Os currently in progress.",
            1.0,
        ),
        (
            9,
            "node_disk_io_time_seconds_total",
            "counter",
            "Total seconds spent doing I/Os.",
            0.001,
        ),
        (
            10,
            "node_disk_io_time_weighted_seconds_total",
            "counter",
            "The weighted # of seconds spent doing I/Os.",
            0.001,
        ),
    ];
    let extra: [(usize, &str, &str, f64); 6] = [
        (
            11,
            "node_disk_discards_completed_total",
            "The total number of discards completed successfully.",
            1.0,
        ),
        (
            12,
            "node_disk_discards_merged_total",
            "The total number of discards merged.",
            1.0,
        ),
        (
            13,
            "node_disk_discarded_sectors_total",
            "The total number of sectors discarded successfully.",
            1.0,
        ),
        (
            14,
            "node_disk_discard_time_seconds_total",
            "This is the total number of seconds spent by all discards.",
            0.001,
        ),
        (
            15,
            "node_disk_flush_requests_total",
            "The total number of flush requests completed successfully",
            1.0,
        ),
        (
            16,
            "node_disk_flush_requests_time_seconds_total",
            "This is the total number of seconds spent by all flush requests.",
            0.001,
        ),
    ];
    for d in parse_diskstats(&read("/proc/diskstats")?)
        .into_iter()
        .filter(|d| !disk_ignored(&d.device))
    {
        let labels = [("device", d.device.as_str())];
        for (i, name, kind, help, scale) in rows {
            w.sample(
                name,
                kind,
                help,
                &labels,
                d.fields.get(i).copied().unwrap_or(0.0) * scale,
            );
        }
        for (i, name, help, scale) in extra {
            if let Some(v) = d.fields.get(i) {
                w.sample(name, "counter", help, &labels, v * scale);
            }
        }
    }
    Ok(())
}

const RX: [&str; 8] = [
    "bytes",
    "packets",
    "errs",
    "drop",
    "fifo",
    "frame",
    "compressed",
    "multicast",
];
const TX: [&str; 8] = [
    "bytes",
    "packets",
    "errs",
    "drop",
    "fifo",
    "colls",
    "carrier",
    "compressed",
];

/// `(device, receive fields, transmit fields)` from /proc/net/dev.
/// A device's receive and transmit counters.
pub type NetDev = (String, Vec<f64>, Vec<f64>);

pub fn parse_netdev(text: &str) -> Result<Vec<NetDev>, String> {
    let mut out = Vec::new();
    for line in text.lines().skip(2) {
        let Some((dev, rest)) = line.split_once(':') else {
            continue;
        };
        let nums: Vec<f64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0.0))
            .collect();
        if nums.len() < 16 {
            return Err(format!("/proc/net/dev: short line for {}", dev.trim()));
        }
        out.push((
            dev.trim().to_string(),
            nums[..8].to_vec(),
            nums[8..16].to_vec(),
        ));
    }
    Ok(out)
}

pub fn collect_netdev(w: &mut Writer) -> Result<(), String> {
    // node_exporter leaves out the loopback device by default
    for (dev, rx, tx) in parse_netdev(&read("/proc/net/dev")?)?
        .into_iter()
        .filter(|(d, _, _)| d != "lo")
    {
        for (i, f) in RX.iter().enumerate() {
            let name = format!("node_network_receive_{f}_total");
            w.sample(
                &name,
                "counter",
                &format!("Network device statistic receive_{f}."),
                &[("device", &dev)],
                rx[i],
            );
        }
        for (i, f) in TX.iter().enumerate() {
            let name = format!("node_network_transmit_{f}_total");
            w.sample(
                &name,
                "counter",
                &format!("Network device statistic transmit_{f}."),
                &[("device", &dev)],
                tx[i],
            );
        }
    }
    Ok(())
}

pub fn collect_uname(w: &mut Writer) -> Result<(), String> {
    // SAFETY: `u` is plain data filled by the kernel; the fields are NUL-terminated.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return Err("uname failed".into());
    }
    let s = |f: &[libc::c_char]| {
        unsafe { CStr::from_ptr(f.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    let (sysname, release, version, machine, nodename, domainname) = (
        s(&u.sysname),
        s(&u.release),
        s(&u.version),
        s(&u.machine),
        s(&u.nodename),
        s(&u.domainname),
    );
    w.sample(
        "node_uname_info",
        "gauge",
        "Labeled system information as provided by the uname system call.",
        &[
            ("domainname", &domainname),
            ("machine", &machine),
            ("nodename", &nodename),
            ("release", &release),
            ("sysname", &sysname),
            ("version", &version),
        ],
        1.0,
    );
    Ok(())
}

pub fn collect_time(w: &mut Writer) -> Result<(), String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?;
    w.sample(
        "node_time_seconds",
        "gauge",
        "System time in seconds since epoch (1970).",
        &[],
        now.as_secs_f64(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn stat_parses_cpus_and_counters() {
        let st = parse_stat(&fixture("stat"), 100.0).unwrap();
        assert_eq!(st.cpus.len(), 2);
        assert_eq!(st.cpus[1].cpu, "1");
        assert_eq!(st.cpus[0].modes[0], ("user", 1234.56));
        assert_eq!(st.cpus[0].modes[3], ("idle", 990.0));
        assert_eq!(st.boot_time, 1700000000.0);
        assert_eq!(st.context_switches, 555555.0);
        assert_eq!(st.procs_running, 3.0);
        assert!(parse_stat("intr 1\n", 100.0).is_err());
    }

    #[test]
    fn meminfo_names_follow_node_exporter() {
        let m = parse_meminfo(&fixture("meminfo")).unwrap();
        let get = |n: &str| m.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
        assert_eq!(get("node_memory_MemTotal_bytes"), Some(16384000.0 * 1024.0));
        assert_eq!(get("node_memory_Active_anon_bytes"), Some(1024.0 * 1024.0));
        assert_eq!(get("node_memory_HugePages_Total"), Some(0.0));
        assert!(parse_meminfo("MemTotal: lots kB\n").is_err());
    }

    #[test]
    fn loadavg_mounts_disks_and_netdev() {
        assert_eq!(
            parse_loadavg("0.50 0.25 0.10 1/200 1234\n").unwrap(),
            [0.5, 0.25, 0.1]
        );
        assert!(parse_loadavg("garbage").is_err());
        let mounts = parse_mounts(&fixture("mounts"));
        let spaced = mounts.iter().find(|m| m.mountpoint.contains(' ')).unwrap();
        assert_eq!(spaced.mountpoint, "/data/my disk");
        let kept: Vec<&str> = mounts
            .iter()
            .filter(|m| !filesystem_ignored(m))
            .map(|m| m.mountpoint.as_str())
            .collect();
        assert_eq!(kept, ["/", "/data/my disk", "/boot"]);
        let disks = parse_diskstats(&fixture("diskstats"));
        let kept: Vec<&str> = disks
            .iter()
            .filter(|d| !disk_ignored(&d.device))
            .map(|d| d.device.as_str())
            .collect();
        assert_eq!(kept, ["sda", "nvme0n1", "dm-0"]);
        let sda = &disks.iter().find(|d| d.device == "sda").unwrap().fields;
        assert_eq!(sda[2], 2048.0);
        let nd = parse_netdev(&fixture("netdev")).unwrap();
        assert_eq!(nd.len(), 2);
        assert_eq!(nd[1].0, "eth0");
        assert_eq!(nd[1].1[0], 123456.0);
        assert_eq!(nd[1].2[5], 7.0, "transmit colls");
    }

    #[test]
    fn render_produces_core_families_once() {
        let body = crate::render().unwrap();
        for fam in [
            "node_cpu_seconds_total",
            "node_memory_MemTotal_bytes",
            "node_load1",
            "node_boot_time_seconds",
            "node_uname_info",
        ] {
            assert_eq!(body.matches(&format!("# TYPE {fam} ")).count(), 1, "{fam}");
        }
        assert!(body.contains("node_scrape_collector_success{collector=\"cpu\"} 1"));
    }
}
