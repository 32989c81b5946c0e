//! Starting, measuring and stopping the servers under test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server under test, killed on drop.
pub struct Server {
    pub name: String,
    pub child: Child,
    pub port: u16,
    pub data: PathBuf,
    pub write_path: &'static str,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `bin` is an executable file in one of `$PATH`'s directories.
fn in_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

impl Server {
    pub fn start(name: &str, day2_bin: &Path) -> anyhow::Result<Server> {
        Server::start_with(name, day2_bin, "", &[])
    }

    /// Like [`Server::start`], with `files` (name, content) written next to the
    /// target's config first and `day2_extra` appended to day2's day2.yml (the
    /// `alertmanager` target needs an `alertmanager.yml` among the files).
    pub fn start_with(
        name: &str,
        day2_bin: &Path,
        day2_extra: &str,
        files: &[(&str, &str)],
    ) -> anyhow::Result<Server> {
        let dir = tempfile::tempdir()?;
        for (file, content) in files {
            std::fs::write(dir.path().join(file), content)?;
        }
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log"))?;
        let mut cmd;
        let write_path;
        match name {
            "day2" => {
                let cfg = dir.path().join("day2.yml");
                std::fs::write(
                    &cfg,
                    format!(
                        "host_metrics: {{enabled: false}}\nself_metrics: {{enabled: false}}\nremote_write: {{max_body_size: 64MB}}\n{day2_extra}"
                    ),
                )?;
                cmd = Command::new(day2_bin);
                cmd.args(["serve", "--config"])
                    .arg(&cfg)
                    .arg("--listen")
                    .arg(format!("127.0.0.1:{port}"))
                    .arg("--data-dir")
                    .arg(&data);
                write_path = "/api/v1/write";
            }
            "prometheus" => {
                let cfg = dir.path().join("prometheus.yml");
                std::fs::write(&cfg, "global: {scrape_interval: 1h}\n")?;
                cmd = Command::new("prometheus");
                cmd.arg(format!("--config.file={}", cfg.display()))
                    .arg(format!("--storage.tsdb.path={}", data.display()))
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                    .arg("--web.enable-remote-write-receiver");
                write_path = "/api/v1/write";
            }
            "victoriametrics" => {
                cmd = Command::new("victoria-metrics");
                // without its response cache: repeated identical range queries
                // would otherwise time the cache, not the evaluation
                cmd.arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                    .arg(format!("-storageDataPath={}", data.display()))
                    .arg("-search.disableCache");
                write_path = "/api/v1/write";
            }
            "alertmanager" => {
                let cfg = dir.path().join("alertmanager.yml");
                anyhow::ensure!(cfg.is_file(), "alertmanager needs an alertmanager.yml");
                // Debian names it prometheus-alertmanager; upstream, alertmanager
                let bin = if in_path("prometheus-alertmanager") {
                    "prometheus-alertmanager"
                } else {
                    "alertmanager"
                };
                cmd = Command::new(bin);
                cmd.arg(format!("--config.file={}", cfg.display()))
                    .arg(format!("--storage.path={}", data.display()))
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                    // an empty address disables clustering (no gossip, no settle wait)
                    .arg("--cluster.listen-address=");
                write_path = "/api/v2/alerts";
            }
            other => anyhow::bail!(
                "unknown target {other:?} (day2, prometheus, victoriametrics, alertmanager)"
            ),
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {name}: {e}"))?;
        Ok(Server {
            name: name.to_string(),
            child,
            port,
            data,
            write_path,
            _dir: dir,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub async fn wait_ready(&mut self, client: &reqwest::Client) -> anyhow::Result<()> {
        let probe = if self.name == "victoriametrics" {
            "/health"
        } else {
            "/-/ready"
        };
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("{} exited with {status}", self.name);
            }
            if let Ok(r) = client.get(self.url(probe)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > end {
                anyhow::bail!("{} not ready after 60s", self.name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// User + system CPU seconds of the process (and its waited-for children).
    pub fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // fields after the ")" of the command name: utime is field 14, stime 15, cutime 16, cstime 17
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<f64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0.0))
            .collect();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        (f.get(11).unwrap_or(&0.0)
            + f.get(12).unwrap_or(&0.0)
            + f.get(13).unwrap_or(&0.0)
            + f.get(14).unwrap_or(&0.0))
            / hz
    }

    /// Peak resident set size in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    }

    pub fn disk_bytes(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(rd) = std::fs::read_dir(p) else {
                return 0;
            };
            rd.filter_map(|e| e.ok())
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.data)
    }

    /// Stops with SIGTERM and waits (bounded), then SIGKILL.
    pub fn stop(&mut self) {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
