//! Payload codecs of WAL records.
//!
//! Series: repeated `id: u32 | n: u32 | (len: u32, name, len: u32, value)*`.
//! Samples (snappy-compressed): repeated `id delta: zigzag varint | t delta:
//! zigzag varint | value bits: u64 LE`, deltas against the previous sample in
//! the record, which makes sorted batches small.
//! Histograms (snappy-compressed): repeated `id delta | t delta` (zigzag
//! varints) and the histogram as `histchunk` encodes it, each in full.

use std::sync::Arc;

use day2_model::{HistogramSample, Label, Labels};

use crate::histchunk::{decode_histogram, encode_histogram};

pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

pub(crate) fn get_uvarint(data: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = *data.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        if shift > 63 {
            return Err("varint too long".into());
        }
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
        shift += 7;
    }
}

pub(crate) fn get_varint(data: &[u8], pos: &mut usize) -> Result<i64, String> {
    let u = get_uvarint(data, pos)?;
    Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
}

pub fn encode_series(out: &mut Vec<u8>, id: u32, labels: &Labels) {
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_le_bytes());
    for l in labels {
        out.extend_from_slice(&(l.name.len() as u32).to_le_bytes());
        out.extend_from_slice(l.name.as_bytes());
        out.extend_from_slice(&(l.value.len() as u32).to_le_bytes());
        out.extend_from_slice(l.value.as_bytes());
    }
}

pub fn decode_series(data: &[u8], mut visit: impl FnMut(u32, Labels)) -> Result<(), String> {
    let mut pos = 0;
    let u32_at = |pos: &mut usize| -> Result<u32, String> {
        let b = data.get(*pos..*pos + 4).ok_or("truncated series record")?;
        *pos += 4;
        Ok(u32::from_le_bytes(b.try_into().unwrap()))
    };
    while pos < data.len() {
        let id = u32_at(&mut pos)?;
        let n = u32_at(&mut pos)? as usize;
        let mut labels = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let mut s = [String::new(), String::new()];
            for item in &mut s {
                let len = u32_at(&mut pos)? as usize;
                let b = data.get(pos..pos + len).ok_or("truncated label")?;
                pos += len;
                *item = String::from_utf8(b.to_vec()).map_err(|_| "label is not UTF-8")?;
            }
            let [name, value] = s;
            labels.push(Label { name, value });
        }
        if !labels.windows(2).all(|w| w[0].name < w[1].name) {
            return Err(format!("labels of series {id} are not sorted"));
        }
        visit(id, Labels::from_sorted_unchecked(labels));
    }
    Ok(())
}

/// Encodes `(id, t, v)` samples.
pub fn encode_samples(samples: &[(u32, i64, f64)]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(samples.len() * 12);
    let (mut pid, mut pt) = (0i64, 0i64);
    for &(id, t, v) in samples {
        put_varint(&mut raw, id as i64 - pid);
        put_varint(&mut raw, t.wrapping_sub(pt));
        raw.extend_from_slice(&v.to_bits().to_le_bytes());
        pid = id as i64;
        pt = t;
    }
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("in-memory snappy cannot fail")
}

pub fn decode_samples(data: &[u8], mut visit: impl FnMut(u32, i64, f64)) -> Result<(), String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(data)
        .map_err(|e| format!("snappy: {e}"))?;
    let mut pos = 0;
    let (mut pid, mut pt) = (0i64, 0i64);
    while pos < raw.len() {
        pid += get_varint(&raw, &mut pos)?;
        pt = pt.wrapping_add(get_varint(&raw, &mut pos)?);
        let b = raw.get(pos..pos + 8).ok_or("truncated sample value")?;
        pos += 8;
        let id = u32::try_from(pid).map_err(|_| format!("bad series id {pid}"))?;
        visit(
            id,
            pt,
            f64::from_bits(u64::from_le_bytes(b.try_into().unwrap())),
        );
    }
    Ok(())
}

/// Encodes `(id, sample)` histogram samples.
pub fn encode_histograms(samples: &[(u32, HistogramSample)]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(samples.len() * 32);
    let (mut pid, mut pt) = (0i64, 0i64);
    for (id, s) in samples {
        put_varint(&mut raw, *id as i64 - pid);
        put_varint(&mut raw, s.t.wrapping_sub(pt));
        encode_histogram(&mut raw, &s.h, None);
        pid = *id as i64;
        pt = s.t;
    }
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("in-memory snappy cannot fail")
}

pub fn decode_histograms(data: &[u8]) -> Result<Vec<(u32, HistogramSample)>, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(data)
        .map_err(|e| format!("snappy: {e}"))?;
    let mut pos = 0;
    let (mut pid, mut pt) = (0i64, 0i64);
    let mut out = Vec::new();
    while pos < raw.len() {
        pid += get_varint(&raw, &mut pos)?;
        pt = pt.wrapping_add(get_varint(&raw, &mut pos)?);
        let h = decode_histogram(&raw, &mut pos, None)?;
        let id = u32::try_from(pid).map_err(|_| format!("bad series id {pid}"))?;
        out.push((
            id,
            HistogramSample {
                t: pt,
                h: Arc::new(h),
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_and_samples_round_trip() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        let mut buf = Vec::new();
        encode_series(&mut buf, 7, &l);
        encode_series(&mut buf, 9, &Labels::from_pairs([("x", "")]));
        let mut got = Vec::new();
        decode_series(&buf, |id, labels| got.push((id, labels))).unwrap();
        assert_eq!(got, vec![(7, l), (9, Labels::empty())]);
        assert!(decode_series(&buf[..buf.len() - 1], |_, _| {}).is_err());

        let samples = vec![(3, 1000, 1.5), (1, 1000, f64::NAN), (3, -5, 0.0)];
        let enc = encode_samples(&samples);
        let mut got = Vec::new();
        decode_samples(&enc, |id, t, v| got.push((id, t, v))).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].0, got[0].1, got[0].2), (3, 1000, 1.5));
        assert!(got[1].2.is_nan());
        assert_eq!((got[2].0, got[2].1), (3, -5));
    }
}
