//! Write-ahead log: checksummed records in numbered segment files.
//!
//! Record layout: `type: u8 | len: u32 LE | crc32(payload): u32 LE | payload`.
//! A write call returns only after the whole record batch has been handed to
//! the kernel with `write(2)`, so a crashed or SIGKILLed process never loses an
//! acknowledged write. What a power loss can lose depends on [`FsyncPolicy`]:
//! `Always` fsyncs before returning (nothing), `Interval(d)` fsyncs from a
//! background thread every `d` (at most the last `d` of acknowledged writes),
//! `Never` leaves it to the kernel's writeback (typically up to 30 s).
//!
//! On open, a torn or corrupt record (short read, unknown type, bad length,
//! bad checksum, undecodable payload) ends the log: the segment is truncated at
//! the last good record and later segments are removed, because everything
//! after a corruption is of unknown integrity. Each cut is reported with its
//! segment and byte offset.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// When the WAL is flushed to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync before acknowledging each write.
    Always,
    /// Group commit: fsync every interval from a background thread.
    Interval(Duration),
    /// Never fsync explicitly.
    Never,
}

pub const HEADER_LEN: usize = 9;
/// Largest payload accepted when reading (guards against a corrupt length).
pub const MAX_RECORD: usize = 256 << 20;

pub const REC_SERIES: u8 = 1;
pub const REC_SAMPLES: u8 = 2;
/// Native-histogram samples (see `record::encode_histograms`).
pub const REC_HISTOGRAMS: u8 = 3;

/// Where and why the log was cut on open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    pub segment: PathBuf,
    pub offset: u64,
    pub reason: String,
}

pub fn segment_name(n: u64) -> String {
    format!("{n:08}")
}

/// Lists segment numbers in `dir`, sorted.
pub fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        if let Some(n) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Encodes one record (header + payload) onto `out`.
pub fn encode_record(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Reads every intact record of a segment; stops at the first bad one and
/// returns its offset and reason. `valid` checks the payload's content.
pub fn read_segment(
    path: &Path,
    mut visit: impl FnMut(u8, &[u8]) -> Result<(), String>,
) -> io::Result<(u64, Option<(u64, String)>)> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let mut off = 0usize;
    while off < data.len() {
        let bad = |reason: String| Ok((off as u64, Some((off as u64, reason))));
        if data.len() - off < HEADER_LEN {
            return bad(format!(
                "torn record header ({} of {HEADER_LEN} bytes)",
                data.len() - off
            ));
        }
        let kind = data[off];
        if !matches!(kind, REC_SERIES | REC_SAMPLES | REC_HISTOGRAMS) {
            return bad(format!("unknown record type {kind}"));
        }
        let len = u32::from_le_bytes(data[off + 1..off + 5].try_into().unwrap()) as usize;
        if len > MAX_RECORD {
            return bad(format!("record length {len} over the maximum {MAX_RECORD}"));
        }
        if data.len() - off - HEADER_LEN < len {
            return bad(format!(
                "torn record: length {len} but only {} bytes left",
                data.len() - off - HEADER_LEN
            ));
        }
        let crc = u32::from_le_bytes(data[off + 5..off + 9].try_into().unwrap());
        let payload = &data[off + HEADER_LEN..off + HEADER_LEN + len];
        if crc32fast::hash(payload) != crc {
            return bad("checksum mismatch".into());
        }
        if let Err(e) = visit(kind, payload) {
            return bad(format!("undecodable record: {e}"));
        }
        off += HEADER_LEN + len;
    }
    Ok((off as u64, None))
}

struct Active {
    file: File,
    number: u64,
    size: u64,
}

/// The appending side of the log.
pub struct Wal {
    dir: PathBuf,
    active: Mutex<Active>,
    segment_size: u64,
    policy: FsyncPolicy,
    dirty: Arc<AtomicBool>,
    total_bytes: AtomicU64,
    stop: Arc<AtomicBool>,
    syncer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Wal {
    /// Opens the log for appending in a fresh segment numbered after `last`.
    pub fn open(
        dir: &Path,
        last: u64,
        segment_size: u64,
        policy: FsyncPolicy,
    ) -> io::Result<Arc<Wal>> {
        fs::create_dir_all(dir)?;
        let number = last + 1;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(segment_name(number)))?;
        sync_dir(dir)?;
        let existing: u64 = list_segments(dir)?
            .iter()
            .filter_map(|n| fs::metadata(dir.join(segment_name(*n))).ok())
            .map(|m| m.len())
            .sum();
        let wal = Arc::new(Wal {
            dir: dir.to_path_buf(),
            active: Mutex::new(Active {
                file,
                number,
                size: 0,
            }),
            segment_size,
            policy,
            dirty: Arc::new(AtomicBool::new(false)),
            total_bytes: AtomicU64::new(existing),
            stop: Arc::new(AtomicBool::new(false)),
            syncer: Mutex::new(None),
        });
        if let FsyncPolicy::Interval(every) = policy {
            let weak = Arc::downgrade(&wal);
            let stop = wal.stop.clone();
            let handle = std::thread::Builder::new()
                .name("wal-fsync".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::park_timeout(every);
                        let Some(w) = weak.upgrade() else { return };
                        if let Err(e) = w.sync_if_dirty() {
                            tracing::error!(error = %e, "WAL fsync failed");
                        }
                    }
                })?;
            *wal.syncer.lock() = Some(handle);
        }
        Ok(wal)
    }

    fn sync_if_dirty(&self) -> io::Result<()> {
        if self.dirty.swap(false, Ordering::AcqRel) {
            let f = self.active.lock().file.try_clone()?;
            f.sync_data()?;
        }
        Ok(())
    }

    /// Writes already-encoded records; returns once `write(2)` has taken them
    /// (and fsync has, under `Always`).
    pub fn write(&self, records: &[u8]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut a = self.active.lock();
        if a.size > 0 && a.size + records.len() as u64 > self.segment_size {
            a.file.sync_data()?;
            let number = a.number + 1;
            a.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(segment_name(number)))?;
            a.number = number;
            a.size = 0;
            sync_dir(&self.dir)?;
        }
        a.file.write_all(records)?;
        a.size += records.len() as u64;
        self.total_bytes
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        match self.policy {
            FsyncPolicy::Always => a.file.sync_data()?,
            FsyncPolicy::Interval(_) => self.dirty.store(true, Ordering::Release),
            FsyncPolicy::Never => {}
        }
        Ok(())
    }

    /// Closes the active segment and starts a new one; returns the closed segment's number.
    pub fn cut_segment(&self) -> io::Result<u64> {
        let mut a = self.active.lock();
        a.file.sync_data()?;
        let closed = a.number;
        let number = closed + 1;
        a.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(segment_name(number)))?;
        a.number = number;
        a.size = 0;
        sync_dir(&self.dir)?;
        Ok(closed)
    }

    /// Deletes segments numbered `<= upto` (their content is in a checkpoint).
    pub fn remove_segments_upto(&self, upto: u64) -> io::Result<()> {
        for n in list_segments(&self.dir)? {
            if n <= upto {
                let p = self.dir.join(segment_name(n));
                let len = fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                fs::remove_file(&p)?;
                self.total_bytes.fetch_sub(
                    len.min(self.total_bytes.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
            }
        }
        Ok(())
    }

    pub fn size_bytes(&self) -> u64 {
        self.total_bytes.load(Ordering::Relaxed)
    }

    pub fn segments(&self) -> usize {
        list_segments(&self.dir).map(|v| v.len()).unwrap_or(0)
    }

    /// Flushes to stable storage and stops the fsync thread.
    pub fn close(&self) -> io::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.syncer.lock().take() {
            h.thread().unpark();
            let _ = h.join();
        }
        self.active.lock().file.sync_data()
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// fsyncs a directory so that created/renamed entries are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), 0, 1 << 20, FsyncPolicy::Always).unwrap();
        let mut buf = Vec::new();
        encode_record(&mut buf, REC_SERIES, b"hello");
        encode_record(&mut buf, REC_SAMPLES, b"world!");
        wal.write(&buf).unwrap();
        wal.close().unwrap();
        let seg = dir.path().join(segment_name(1));
        let mut seen = Vec::new();
        let (end, bad) = read_segment(&seg, |k, p| {
            seen.push((k, p.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(bad, None);
        assert_eq!(end, buf.len() as u64);
        assert_eq!(
            seen,
            vec![
                (REC_SERIES, b"hello".to_vec()),
                (REC_SAMPLES, b"world!".to_vec())
            ]
        );

        // flip a payload byte of the second record
        let mut data = fs::read(&seg).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        fs::write(&seg, &data).unwrap();
        let (end, bad) = read_segment(&seg, |_, _| Ok(())).unwrap();
        assert_eq!(end, (HEADER_LEN + 5) as u64);
        assert_eq!(
            bad.unwrap(),
            ((HEADER_LEN + 5) as u64, "checksum mismatch".to_string())
        );
    }

    #[test]
    fn segments_roll_over_at_the_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), 0, 100, FsyncPolicy::Never).unwrap();
        let mut buf = Vec::new();
        encode_record(&mut buf, REC_SAMPLES, &[0u8; 60]);
        for _ in 0..3 {
            wal.write(&buf).unwrap();
        }
        assert_eq!(list_segments(dir.path()).unwrap(), vec![1, 2, 3]);
        wal.remove_segments_upto(2).unwrap();
        assert_eq!(list_segments(dir.path()).unwrap(), vec![3]);
    }
}
