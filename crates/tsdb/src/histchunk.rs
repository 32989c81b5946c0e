//! Encoding of native-histogram samples, for chunks and WAL records (day2's
//! own format, byte-oriented).
//!
//! One histogram: a flags byte (bits 0-1 the counter reset hint: 0 unknown,
//! 1 reset, 2 not reset, 3 gauge; bit 2 set when the bucket layout is the
//! previous histogram's), then unless the layout is repeated: schema (zigzag
//! varint), zero threshold (8 bytes LE), positive spans, negative spans (each
//! a uvarint count, then zigzag offset and uvarint length per span) and the
//! custom bounds (uvarint count, 8 bytes each). Then the values: count, sum,
//! zero count, positive buckets, negative buckets, each as the uvarint of the
//! bit-reversed XOR with the same value of the previous histogram (with 0
//! when the layout changed): equal values cost one byte, and counts that
//! differ only in their high mantissa bits (integers) a few.
//!
//! A chunk: u16 sample count (big endian), then per sample its timestamp
//! (zigzag varint: absolute for the first, the delta to the previous after)
//! and its histogram, each encoded against the one before it.

use std::sync::Arc;

use day2_model::{CounterResetHint, FloatHistogram, HistogramSample, Span};

use crate::record::{get_uvarint, get_varint, put_uvarint, put_varint};

/// Histogram samples per closed chunk.
pub const HIST_SAMPLES_PER_CHUNK: usize = 120;

fn hint_bits(h: CounterResetHint) -> u8 {
    match h {
        CounterResetHint::Unknown => 0,
        CounterResetHint::Reset => 1,
        CounterResetHint::NotReset => 2,
        CounterResetHint::Gauge => 3,
    }
}

fn hint_of(b: u8) -> CounterResetHint {
    match b & 3 {
        1 => CounterResetHint::Reset,
        2 => CounterResetHint::NotReset,
        3 => CounterResetHint::Gauge,
        _ => CounterResetHint::Unknown,
    }
}

fn same_layout(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    a.schema == b.schema
        && a.zero_threshold.to_bits() == b.zero_threshold.to_bits()
        && a.positive_spans == b.positive_spans
        && a.negative_spans == b.negative_spans
        && a.custom_values == b.custom_values
}

fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_bits().to_le_bytes());
}

fn get_f64(data: &[u8], pos: &mut usize) -> Result<f64, String> {
    let b = data
        .get(*pos..*pos + 8)
        .ok_or("truncated histogram value")?;
    *pos += 8;
    Ok(f64::from_bits(u64::from_le_bytes(b.try_into().unwrap())))
}

fn put_spans(out: &mut Vec<u8>, spans: &[Span]) {
    put_uvarint(out, spans.len() as u64);
    for s in spans {
        put_varint(out, s.offset as i64);
        put_uvarint(out, s.length as u64);
    }
}

fn get_spans(data: &[u8], pos: &mut usize) -> Result<Vec<Span>, String> {
    let n = get_uvarint(data, pos)? as usize;
    if n > data.len() {
        return Err("histogram span count larger than the record".into());
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let offset = i32::try_from(get_varint(data, pos)?).map_err(|_| "span offset overflow")?;
        let length = u32::try_from(get_uvarint(data, pos)?).map_err(|_| "span length overflow")?;
        out.push(Span { offset, length });
    }
    Ok(out)
}

/// The values of a histogram in encoding order.
fn values(h: &FloatHistogram) -> impl Iterator<Item = f64> + '_ {
    [h.count, h.sum, h.zero_count]
        .into_iter()
        .chain(h.positive_buckets.iter().copied())
        .chain(h.negative_buckets.iter().copied())
}

/// Appends `h`, encoded against `prev` (the histogram before it, if any).
pub fn encode_histogram(out: &mut Vec<u8>, h: &FloatHistogram, prev: Option<&FloatHistogram>) {
    let prev = prev.filter(|p| same_layout(p, h));
    out.push(hint_bits(h.hint) | if prev.is_some() { 4 } else { 0 });
    if prev.is_none() {
        put_varint(out, h.schema as i64);
        put_f64(out, h.zero_threshold);
        put_spans(out, &h.positive_spans);
        put_spans(out, &h.negative_spans);
        put_uvarint(out, h.custom_values.len() as u64);
        for v in &h.custom_values {
            put_f64(out, *v);
        }
    }
    let mut before = prev.into_iter().flat_map(values);
    for v in values(h) {
        let p = before.next().map_or(0, f64::to_bits);
        put_uvarint(out, (v.to_bits() ^ p).reverse_bits());
    }
}

/// Reads a histogram written by [`encode_histogram`] with the same `prev`.
pub fn decode_histogram(
    data: &[u8],
    pos: &mut usize,
    prev: Option<&FloatHistogram>,
) -> Result<FloatHistogram, String> {
    let flags = *data.get(*pos).ok_or("truncated histogram")?;
    *pos += 1;
    let mut h = FloatHistogram {
        hint: hint_of(flags),
        ..Default::default()
    };
    let repeated = flags & 4 != 0;
    let prev = match (repeated, prev) {
        (true, Some(p)) => {
            h.schema = p.schema;
            h.zero_threshold = p.zero_threshold;
            h.positive_spans = p.positive_spans.clone();
            h.negative_spans = p.negative_spans.clone();
            h.custom_values = p.custom_values.clone();
            Some(p)
        }
        (true, None) => return Err("histogram repeats a layout it has no predecessor for".into()),
        (false, _) => {
            h.schema = i32::try_from(get_varint(data, pos)?).map_err(|_| "schema overflow")?;
            h.zero_threshold = get_f64(data, pos)?;
            h.positive_spans = get_spans(data, pos)?;
            h.negative_spans = get_spans(data, pos)?;
            let n = get_uvarint(data, pos)? as usize;
            if n > data.len() {
                return Err("custom bound count larger than the record".into());
            }
            h.custom_values = (0..n)
                .map(|_| get_f64(data, pos))
                .collect::<Result<_, _>>()?;
            None
        }
    };
    let n_pos: usize = h.positive_spans.iter().map(|s| s.length as usize).sum();
    let n_neg: usize = h.negative_spans.iter().map(|s| s.length as usize).sum();
    if n_pos + n_neg > data.len() {
        return Err("bucket count larger than the record".into());
    }
    let mut before = prev.into_iter().flat_map(values);
    let mut next = || -> Result<f64, String> {
        let x = get_uvarint(data, pos)?.reverse_bits();
        Ok(f64::from_bits(x ^ before.next().map_or(0, f64::to_bits)))
    };
    h.count = next()?;
    h.sum = next()?;
    h.zero_count = next()?;
    h.positive_buckets = (0..n_pos).map(|_| next()).collect::<Result<_, _>>()?;
    h.negative_buckets = (0..n_neg).map(|_| next()).collect::<Result<_, _>>()?;
    Ok(h)
}

/// Encodes time-ordered samples as one chunk.
pub fn encode_chunk(samples: &[HistogramSample]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + samples.len() * 16);
    out.extend_from_slice(&(samples.len() as u16).to_be_bytes());
    let mut prev: Option<&HistogramSample> = None;
    for s in samples {
        put_varint(&mut out, s.t - prev.map_or(0, |p| p.t));
        encode_histogram(&mut out, &s.h, prev.map(|p| &*p.h));
        prev = Some(s);
    }
    out
}

/// Decodes a chunk written by [`encode_chunk`].
pub fn decode_chunk(data: &[u8]) -> Result<Vec<HistogramSample>, String> {
    let n = u16::from_be_bytes(
        data.get(..2)
            .ok_or("truncated histogram chunk")?
            .try_into()
            .unwrap(),
    ) as usize;
    let mut pos = 2;
    let mut out: Vec<HistogramSample> = Vec::with_capacity(n);
    let mut t = 0i64;
    for _ in 0..n {
        t = t.wrapping_add(get_varint(data, &mut pos)?);
        let h = decode_histogram(data, &mut pos, out.last().map(|p| &*p.h))?;
        out.push(HistogramSample { t, h: Arc::new(h) });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: i64, k: f64, layout: i32) -> HistogramSample {
        let mut h = FloatHistogram::empty(layout);
        h.count = 3.0 * k;
        h.sum = 1.25 * k;
        h.zero_threshold = 0.001;
        h.zero_count = k;
        h.set_bucket_list(true, &[(0, k), (layout, k)]);
        h.set_bucket_list(false, &[(-2, 0.5)]);
        if t % 2 == 0 {
            h.hint = CounterResetHint::NotReset;
        }
        HistogramSample::new(t, h)
    }

    #[test]
    fn chunks_round_trip_with_changing_layouts() {
        let mut samples: Vec<HistogramSample> =
            (0..10).map(|i| sample(i * 15_000, i as f64, 2)).collect();
        samples.push(sample(200_000, 11.0, 3));
        let mut custom = FloatHistogram::empty(day2_model::histogram::CUSTOM_BUCKETS_SCHEMA);
        custom.custom_values = vec![0.5, 1.0];
        custom.set_bucket_list(true, &[(0, 1.0), (2, f64::NAN)]);
        samples.push(HistogramSample::new(-5, custom));
        let enc = encode_chunk(&samples);
        let dec = decode_chunk(&enc).unwrap();
        assert_eq!(dec.len(), samples.len());
        for (a, b) in dec.iter().zip(&samples) {
            assert_eq!(a.t, b.t);
            assert!(a.h.equals(&b.h) && a.h.hint == b.h.hint, "{a:?} != {b:?}");
        }
        // a repeated layout with slowly growing counts is small
        let steady: Vec<HistogramSample> =
            (0..120).map(|i| sample(i * 15_000, i as f64, 2)).collect();
        assert!(
            encode_chunk(&steady).len() < 120 * 40,
            "{}",
            encode_chunk(&steady).len()
        );
    }

    #[test]
    fn truncated_chunks_are_errors() {
        let enc = encode_chunk(&[sample(0, 1.0, 0), sample(1, 2.0, 0)]);
        for cut in [1, 5, enc.len() - 1] {
            assert!(decode_chunk(&enc[..cut]).is_err(), "cut at {cut}");
        }
    }
}
