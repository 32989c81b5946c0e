//! Immutable on-disk blocks: `chunks` (concatenated encoded chunks, mmap'd),
//! `index` (series label sets with their chunk references, checksummed) and
//! `meta.json`. A block is written into `<id>.tmp` and renamed into place, so
//! a half-written block is never mistaken for a real one.
//!
//! Index: magic `D2I2`, u32 series count, per series its labels (u32 count,
//! then length-prefixed names and values) and chunk references (u32 count,
//! then min time, max time, offset: u64, length: u32, kind: u8 — 0 float
//! chunk, 1 histogram chunk), then a CRC32 of everything before it. Blocks
//! written before histograms existed have magic `D2IX` and no kind byte
//! (every chunk a float chunk); they are still read.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use day2_model::{Label, Labels, Matcher, Sample, Series};
use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use crate::chunk::{ChunkEncoder, ChunkIter, SAMPLES_PER_CHUNK};
use crate::histchunk::{self, HIST_SAMPLES_PER_CHUNK};
use crate::postings::Postings;

const INDEX_MAGIC: &[u8; 4] = b"D2I2";
/// The index format before histogram chunks (no chunk kind byte).
const INDEX_MAGIC_V1: &[u8; 4] = b"D2IX";

/// What a chunk holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    Float,
    Histogram,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BlockMeta {
    pub id: String,
    pub min_time: i64,
    pub max_time: i64,
    pub num_series: u64,
    pub num_samples: u64,
    pub num_chunks: u64,
    pub level: u32,
    #[serde(default)]
    pub sources: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ChunkRef {
    pub min_t: i64,
    pub max_t: i64,
    pub offset: u64,
    pub len: u32,
    pub kind: ChunkKind,
}

#[derive(Debug)]
struct BlockSeries {
    labels: Labels,
    chunks: Vec<ChunkRef>,
}

/// An opened block.
#[derive(Debug)]
pub struct Block {
    pub meta: BlockMeta,
    pub dir: PathBuf,
    series: Vec<BlockSeries>,
    postings: Postings,
    chunks: Option<Mmap>,
    pub size_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("block {dir}: {source}")]
    Io { dir: String, source: io::Error },
    #[error("block {dir}: corrupt {what}: {why}")]
    Corrupt {
        dir: String,
        what: &'static str,
        why: String,
    },
}

fn io_err(dir: &Path) -> impl Fn(io::Error) -> BlockError + '_ {
    move |source| BlockError::Io {
        dir: dir.display().to_string(),
        source,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Writes a block from series with time-sorted, deduplicated samples.
/// Returns the new block directory.
pub fn write_block(
    parent: &Path,
    series: &[Series],
    level: u32,
    sources: Vec<String>,
) -> Result<PathBuf, BlockError> {
    let mut min_time = i64::MAX;
    let mut max_time = i64::MIN;
    let mut chunks_file = Vec::new();
    let mut index = Vec::new();
    index.extend_from_slice(INDEX_MAGIC);
    let mut num_samples = 0u64;
    let mut num_chunks = 0u64;
    let mut num_series = 0u64;
    let nonempty: Vec<&Series> = series.iter().filter(|s| !s.is_empty()).collect();
    index.extend_from_slice(&(nonempty.len() as u32).to_le_bytes());
    for s in nonempty {
        num_series += 1;
        index.extend_from_slice(&(s.labels.len() as u32).to_le_bytes());
        for l in &s.labels {
            put_str(&mut index, &l.name);
            put_str(&mut index, &l.value);
        }
        let mut refs = Vec::new();
        let mut add = |bytes: Vec<u8>, min_t: i64, max_t: i64, kind: ChunkKind| {
            refs.push(ChunkRef {
                min_t,
                max_t,
                offset: chunks_file.len() as u64,
                len: bytes.len() as u32,
                kind,
            });
            chunks_file.extend_from_slice(&bytes);
            num_chunks += 1;
        };
        for part in s.samples.chunks(SAMPLES_PER_CHUNK as usize) {
            let mut enc = ChunkEncoder::new();
            for p in part {
                enc.append(p.t, p.v);
            }
            add(
                enc.bytes(),
                part[0].t,
                part[part.len() - 1].t,
                ChunkKind::Float,
            );
        }
        for part in s.histograms.chunks(HIST_SAMPLES_PER_CHUNK) {
            add(
                histchunk::encode_chunk(part),
                part[0].t,
                part[part.len() - 1].t,
                ChunkKind::Histogram,
            );
        }
        num_samples += s.len() as u64;
        for t in [s.samples.first(), s.samples.last()]
            .into_iter()
            .flatten()
            .map(|p| p.t)
            .chain(
                [s.histograms.first(), s.histograms.last()]
                    .into_iter()
                    .flatten()
                    .map(|p| p.t),
            )
        {
            min_time = min_time.min(t);
            max_time = max_time.max(t);
        }
        index.extend_from_slice(&(refs.len() as u32).to_le_bytes());
        for r in refs {
            index.extend_from_slice(&r.min_t.to_le_bytes());
            index.extend_from_slice(&r.max_t.to_le_bytes());
            index.extend_from_slice(&r.offset.to_le_bytes());
            index.extend_from_slice(&r.len.to_le_bytes());
            index.push(match r.kind {
                ChunkKind::Float => 0,
                ChunkKind::Histogram => 1,
            });
        }
    }
    let crc = crc32fast::hash(&index);
    index.extend_from_slice(&crc.to_le_bytes());

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let id = format!(
        "{:016x}-{:08x}",
        min_time.max(0),
        (nanos & 0xffff_ffff) as u32 ^ (num_series as u32).rotate_left(16)
    );
    let meta = BlockMeta {
        id: id.clone(),
        min_time,
        max_time,
        num_series,
        num_samples,
        num_chunks,
        level,
        sources,
    };
    let tmp = parent.join(format!("{id}.tmp"));
    let dir = parent.join(&id);
    let e = io_err(&tmp);
    fs::create_dir_all(&tmp).map_err(&e)?;
    for (name, data) in [("chunks", &chunks_file), ("index", &index)] {
        let mut f = File::create(tmp.join(name)).map_err(&e)?;
        f.write_all(data).map_err(&e)?;
        f.sync_all().map_err(&e)?;
    }
    let mut f = File::create(tmp.join("meta.json")).map_err(&e)?;
    f.write_all(
        serde_json::to_string_pretty(&meta)
            .expect("meta serialises")
            .as_bytes(),
    )
    .map_err(&e)?;
    f.sync_all().map_err(&e)?;
    crate::wal::sync_dir(&tmp).map_err(&e)?;
    fs::rename(&tmp, &dir).map_err(&e)?;
    crate::wal::sync_dir(parent).map_err(&e)?;
    Ok(dir)
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.data.len())
            .ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn string(&mut self) -> Result<String, String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|e| e.to_string())
    }
}

impl Block {
    /// Opens a block directory: reads meta and index, maps the chunks.
    pub fn open(dir: &Path) -> Result<Block, BlockError> {
        let e = io_err(dir);
        let corrupt = |what, why: String| BlockError::Corrupt {
            dir: dir.display().to_string(),
            what,
            why,
        };
        let meta: BlockMeta = serde_json::from_slice(&fs::read(dir.join("meta.json")).map_err(&e)?)
            .map_err(|x| corrupt("meta.json", x.to_string()))?;
        let index = fs::read(dir.join("index")).map_err(&e)?;
        if index.len() < 12 || (&index[..4] != INDEX_MAGIC && &index[..4] != INDEX_MAGIC_V1) {
            return Err(corrupt("index", "bad magic or too short".into()));
        }
        let with_kinds = &index[..4] == INDEX_MAGIC;
        let (body, crc) = index.split_at(index.len() - 4);
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().unwrap()) {
            return Err(corrupt("index", "checksum mismatch".into()));
        }
        let mut c = Cursor { data: body, pos: 4 };
        let parse = |c: &mut Cursor| -> Result<Vec<BlockSeries>, String> {
            let n = c.u32()? as usize;
            let mut series = Vec::with_capacity(n.min(1 << 20));
            for _ in 0..n {
                let nl = c.u32()? as usize;
                let mut labels = Vec::with_capacity(nl.min(64));
                for _ in 0..nl {
                    labels.push(Label {
                        name: c.string()?,
                        value: c.string()?,
                    });
                }
                let nc = c.u32()? as usize;
                let mut chunks = Vec::with_capacity(nc.min(1 << 16));
                for _ in 0..nc {
                    let (min_t, max_t, offset, len) =
                        (c.u64()? as i64, c.u64()? as i64, c.u64()?, c.u32()?);
                    let kind = if !with_kinds {
                        ChunkKind::Float
                    } else {
                        match c.take(1)?[0] {
                            0 => ChunkKind::Float,
                            1 => ChunkKind::Histogram,
                            k => return Err(format!("unknown chunk kind {k}")),
                        }
                    };
                    chunks.push(ChunkRef {
                        min_t,
                        max_t,
                        offset,
                        len,
                        kind,
                    });
                }
                series.push(BlockSeries {
                    labels: Labels::from_sorted_unchecked(labels),
                    chunks,
                });
            }
            Ok(series)
        };
        let series = parse(&mut c).map_err(|why| corrupt("index", why))?;
        let file = File::open(dir.join("chunks")).map_err(&e)?;
        let len = file.metadata().map_err(&e)?.len();
        // SAFETY: block files are immutable once renamed into place; we never write them again.
        let chunks = if len > 0 {
            Some(unsafe { Mmap::map(&file) }.map_err(&e)?)
        } else {
            None
        };
        let mut postings = Postings::default();
        for (i, s) in series.iter().enumerate() {
            postings.add(i as u32, &s.labels);
        }
        let size_bytes = dir_size(dir);
        Ok(Block {
            meta,
            dir: dir.to_path_buf(),
            series,
            postings,
            chunks,
            size_bytes,
        })
    }

    fn chunk_bytes(&self, r: &ChunkRef) -> &[u8] {
        let data: &[u8] = self.chunks.as_deref().unwrap_or(&[]);
        let start = (r.offset as usize).min(data.len());
        let end = (r.offset as usize + r.len as usize).min(data.len());
        &data[start..end]
    }

    /// Series matching `matchers`, with samples in `[mint, maxt]` (possibly empty).
    pub fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        with_samples: bool,
        out: &mut Vec<Series>,
    ) {
        if self.meta.max_time < mint || self.meta.min_time > maxt {
            return;
        }
        let ids: Box<dyn Iterator<Item = u32>> = match self.postings.candidates(matchers) {
            Some(ids) => Box::new(ids.into_iter()),
            None => Box::new(0..self.series.len() as u32),
        };
        for id in ids {
            let s = &self.series[id as usize];
            if !matchers.iter().all(|m| m.matches_labels(&s.labels)) {
                continue;
            }
            let mut found = Series {
                labels: s.labels.clone(),
                ..Default::default()
            };
            let mut any = false;
            for r in s
                .chunks
                .iter()
                .filter(|r| r.max_t >= mint && r.min_t <= maxt)
            {
                any = true;
                if !with_samples {
                    break;
                }
                let bytes = self.chunk_bytes(r);
                match r.kind {
                    ChunkKind::Float => found.samples.extend(
                        ChunkIter::new(bytes)
                            .filter(|(t, _)| *t >= mint && *t <= maxt)
                            .map(|(t, v)| Sample::new(t, v)),
                    ),
                    ChunkKind::Histogram => match histchunk::decode_chunk(bytes) {
                        Ok(hs) => found
                            .histograms
                            .extend(hs.into_iter().filter(|h| h.t >= mint && h.t <= maxt)),
                        Err(e) => tracing::error!(
                            block = %self.meta.id,
                            series = %s.labels,
                            error = %e,
                            "skipping undecodable histogram chunk"
                        ),
                    },
                }
            }
            if any && (!with_samples || !found.is_empty()) {
                out.push(found);
            }
        }
    }

    /// Every series with all its samples (for compaction).
    pub fn all_series(&self) -> Vec<Series> {
        let mut out = Vec::with_capacity(self.series.len());
        self.select(&[], i64::MIN, i64::MAX, true, &mut out);
        out
    }
}

/// Total size of the files in a directory (not recursive).
pub fn dir_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_open_and_select() {
        let dir = tempfile::tempdir().unwrap();
        let a = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        let b = Labels::from_pairs([("__name__", "up"), ("job", "b")]);
        let samples: Vec<Sample> = (0..300).map(|i| Sample::new(i * 1000, i as f64)).collect();
        let path = write_block(
            dir.path(),
            &[
                Series::new(a.clone(), samples.clone()),
                Series::new(b.clone(), vec![Sample::new(5, 1.0)]),
            ],
            1,
            vec![],
        )
        .unwrap();
        let blk = Block::open(&path).unwrap();
        assert_eq!(blk.meta.num_series, 2);
        assert_eq!(blk.meta.num_samples, 301);
        assert_eq!(blk.meta.min_time, 0);
        assert_eq!(blk.meta.max_time, 299_000);
        let mut out = Vec::new();
        blk.select(&[Matcher::eq("job", "a")], 10_000, 20_000, true, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].samples, samples[10..=20].to_vec());
        assert_eq!(blk.all_series().len(), 2);
    }

    #[test]
    fn histogram_chunks_beside_float_chunks() {
        use day2_model::{FloatHistogram, HistogramSample};
        let dir = tempfile::tempdir().unwrap();
        let hs: Vec<HistogramSample> = (0..250)
            .map(|i| {
                let mut h = FloatHistogram::empty(1);
                h.count = i as f64;
                h.set_bucket_list(true, &[(0, i as f64)]);
                HistogramSample::new(i * 1000 + 500, h)
            })
            .collect();
        let s = Series {
            labels: Labels::from_pairs([("__name__", "h")]),
            samples: vec![Sample::new(0, 1.0)],
            histograms: hs.clone(),
        };
        let path = write_block(dir.path(), &[s], 1, vec![]).unwrap();
        let blk = Block::open(&path).unwrap();
        assert_eq!(blk.meta.num_samples, 251);
        assert_eq!(blk.meta.num_chunks, 4);
        assert_eq!((blk.meta.min_time, blk.meta.max_time), (0, 249_500));
        let mut out = Vec::new();
        blk.select(&[], 100_000, 130_000, true, &mut out);
        assert_eq!(out[0].histograms, hs[100..130].to_vec());
        assert!(out[0].samples.is_empty());
    }

    fn one_sample_block(dir: &Path) -> PathBuf {
        let s = Series::new(Labels::from_pairs([("a", "b")]), vec![Sample::new(1, 1.0)]);
        write_block(dir, &[s], 1, vec![]).unwrap()
    }

    #[test]
    fn blocks_of_the_float_only_format_are_read() {
        // a one-series, one-chunk index as written before chunk kinds existed
        let dir = tempfile::tempdir().unwrap();
        let path = one_sample_block(dir.path());
        let idx = path.join("index");
        let data = fs::read(&idx).unwrap();
        let mut old = b"D2IX".to_vec();
        old.extend_from_slice(&data[4..data.len() - 5]);
        let crc = crc32fast::hash(&old);
        old.extend_from_slice(&crc.to_le_bytes());
        fs::write(&idx, old).unwrap();
        let blk = Block::open(&path).unwrap();
        assert_eq!(blk.all_series()[0].samples, vec![Sample::new(1, 1.0)]);
    }

    #[test]
    fn corrupt_index_is_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = one_sample_block(dir.path());
        let idx = path.join("index");
        let mut data = fs::read(&idx).unwrap();
        data[6] ^= 1;
        fs::write(&idx, data).unwrap();
        let err = Block::open(&path).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
    }
}
