//! Chunk encoding: delta-of-delta timestamps and XOR'd float values (the
//! Gorilla scheme Prometheus uses), with our own bit writer and reader.
//!
//! Layout: u16 sample count (big endian), then a bit stream. First sample:
//! varint timestamp, raw 64 value bits. Second: varint delta, XOR value.
//! Then per sample: delta-of-delta in buckets (`0`, `10`+14 bits, `110`+17,
//! `1110`+20, `1111`+64) and the value XOR (`0` same, `10` reuse previous
//! leading/trailing window, `11` + 5 bits leading + 6 bits length + bits).

/// Appends bits to a byte vector.
#[derive(Debug, Clone, Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    /// Bits still free in the last byte (0 means a new byte is needed).
    free: u8,
}

impl BitWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.bytes.push(0);
            self.free = 8;
        }
        if bit {
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 1 << (self.free - 1);
        }
        self.free -= 1;
    }

    /// Writes the low `n` bits of `v`, most significant first.
    pub fn write_bits(&mut self, v: u64, mut n: u8) {
        while n > 0 {
            if self.free == 0 {
                self.bytes.push(0);
                self.free = 8;
            }
            let take = n.min(self.free);
            let shift = n - take;
            let chunk = ((v >> shift) & ((1u64 << take) - 1)) as u8;
            let last = self.bytes.len() - 1;
            self.bytes[last] |= chunk << (self.free - take);
            self.free -= take;
            n -= take;
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn len_bytes(&self) -> usize {
        self.bytes.len()
    }
}

/// Reads bits written by [`BitWriter`], through a 64-bit buffer refilled a
/// word at a time.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    bytes: &'a [u8],
    /// Next byte to load into `buf`.
    pos: usize,
    /// Unread bits, most significant first; bits below `n` are zero or the
    /// correct next bits.
    buf: u64,
    /// Valid bits in `buf`.
    n: u32,
}

impl<'a> BitReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        BitReader {
            bytes,
            pos: 0,
            buf: 0,
            n: 0,
        }
    }

    /// Loads whole bytes until at least 57 bits are buffered or the input ends.
    #[inline]
    fn refill(&mut self) {
        if let Some(w) = self.bytes.get(self.pos..self.pos + 8) {
            let w = u64::from_be_bytes(w.try_into().unwrap());
            // n < 57 here, so the shift is in range
            self.buf |= w >> self.n;
            let take = (64 - self.n) / 8;
            self.pos += take as usize;
            self.n += take * 8;
        } else {
            while self.n <= 56 && self.pos < self.bytes.len() {
                self.buf |= (self.bytes[self.pos] as u64) << (56 - self.n);
                self.pos += 1;
                self.n += 8;
            }
        }
    }

    /// Whether at least `k` (at most 57) bits are buffered, refilling if needed.
    #[inline]
    fn ensure(&mut self, k: u32) -> bool {
        if self.n < k {
            self.refill();
        }
        self.n >= k
    }

    /// Drops `k` (< 64) buffered bits.
    #[inline]
    fn consume(&mut self, k: u32) {
        self.buf <<= k;
        self.n -= k;
    }

    #[inline]
    pub fn read_bit(&mut self) -> Option<bool> {
        if self.n == 0 {
            self.refill();
            if self.n == 0 {
                return None;
            }
        }
        let bit = self.buf >> 63 == 1;
        self.buf <<= 1;
        self.n -= 1;
        Some(bit)
    }

    /// Reads `n` bits (at most 64), most significant first; `None` past the end.
    #[inline]
    pub fn read_bits(&mut self, n: u8) -> Option<u64> {
        let k = n as u32;
        if k == 0 {
            return Some(0);
        }
        if k > 56 {
            let hi = self.read_bits(n - 32)?;
            let lo = self.read_bits(32)?;
            return Some((hi << 32) | lo);
        }
        if self.n < k {
            self.refill();
            if self.n < k {
                return None;
            }
        }
        let v = self.buf >> (64 - k);
        self.buf <<= k;
        self.n -= k;
        Some(v)
    }
}

fn write_varint(w: &mut BitWriter, v: i64) {
    // zig-zag then 7-bit groups
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let b = (u & 0x7f) as u8;
        u >>= 7;
        if u == 0 {
            w.write_bits(b as u64, 8);
            break;
        }
        w.write_bits((b | 0x80) as u64, 8);
    }
}

fn read_varint(r: &mut BitReader) -> Option<i64> {
    let mut u = 0u64;
    let mut shift = 0;
    loop {
        let b = r.read_bits(8)? as u8;
        if shift >= 64 {
            return None;
        }
        u |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    Some(((u >> 1) as i64) ^ -((u & 1) as i64))
}

/// Samples per chunk before a new one is started.
pub const SAMPLES_PER_CHUNK: u16 = 120;

/// Incremental encoder of one chunk. Timestamps must be strictly increasing.
#[derive(Debug, Clone, Default)]
pub struct ChunkEncoder {
    w: BitWriter,
    count: u16,
    t: i64,
    delta: i64,
    v: u64,
    leading: u8,
    trailing: u8,
    min_t: i64,
}

impl ChunkEncoder {
    pub fn new() -> Self {
        ChunkEncoder {
            leading: 0xff,
            ..Default::default()
        }
    }

    pub fn count(&self) -> u16 {
        self.count
    }

    pub fn min_time(&self) -> i64 {
        self.min_t
    }

    pub fn max_time(&self) -> i64 {
        self.t
    }

    pub fn append(&mut self, t: i64, v: f64) {
        let vb = v.to_bits();
        match self.count {
            0 => {
                write_varint(&mut self.w, t);
                self.w.write_bits(vb, 64);
                self.min_t = t;
            }
            1 => {
                let delta = t - self.t;
                write_varint(&mut self.w, delta);
                self.write_value(vb);
                self.delta = delta;
            }
            _ => {
                let delta = t - self.t;
                let dod = delta - self.delta;
                self.write_dod(dod);
                self.write_value(vb);
                self.delta = delta;
            }
        }
        self.t = t;
        self.v = vb;
        self.count += 1;
    }

    fn write_dod(&mut self, dod: i64) {
        let w = &mut self.w;
        let fits =
            |bits: u32| -> bool { dod >= -(1i64 << (bits - 1)) && dod < (1i64 << (bits - 1)) };
        if dod == 0 {
            w.write_bit(false);
        } else if fits(14) {
            w.write_bits(0b10, 2);
            w.write_bits(dod as u64 & ((1 << 14) - 1), 14);
        } else if fits(17) {
            w.write_bits(0b110, 3);
            w.write_bits(dod as u64 & ((1 << 17) - 1), 17);
        } else if fits(20) {
            w.write_bits(0b1110, 4);
            w.write_bits(dod as u64 & ((1 << 20) - 1), 20);
        } else {
            w.write_bits(0b1111, 4);
            w.write_bits(dod as u64, 64);
        }
    }

    fn write_value(&mut self, vb: u64) {
        let x = vb ^ self.v;
        if x == 0 {
            self.w.write_bit(false);
            return;
        }
        self.w.write_bit(true);
        let leading = (x.leading_zeros() as u8).min(31);
        let trailing = x.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            self.w.write_bit(false);
            let sig = 64 - self.leading - self.trailing;
            self.w.write_bits(x >> self.trailing, sig);
        } else {
            self.leading = leading;
            self.trailing = trailing;
            self.w.write_bit(true);
            self.w.write_bits(leading as u64, 5);
            let sig = 64 - leading - trailing;
            // 64 significant bits are stored as 0 in 6 bits
            self.w.write_bits((sig as u64) & 0x3f, 6);
            self.w.write_bits(x >> trailing, sig);
        }
    }

    /// The encoded chunk: u16 count, then the bit stream.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.w.len_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(self.w.bytes());
        out
    }

    /// Decodes the chunk in place (no copy of the encoded bytes).
    pub fn iter(&self) -> ChunkIter<'_> {
        ChunkIter::from_parts(self.count, self.w.bytes())
    }

    /// Bytes the chunk occupies in memory.
    pub fn size(&self) -> usize {
        2 + self.w.len_bytes()
    }
}

/// Decodes a chunk produced by [`ChunkEncoder::bytes`].
pub struct ChunkIter<'a> {
    r: BitReader<'a>,
    remaining: u16,
    read: u16,
    t: i64,
    delta: i64,
    v: u64,
    leading: u8,
    trailing: u8,
}

impl<'a> ChunkIter<'a> {
    pub fn new(chunk: &'a [u8]) -> Self {
        let count = if chunk.len() >= 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            0
        };
        Self::from_parts(count, chunk.get(2..).unwrap_or(&[]))
    }

    /// A chunk given as its sample count and its bit stream.
    pub fn from_parts(count: u16, bits: &'a [u8]) -> Self {
        ChunkIter {
            r: BitReader::new(bits),
            remaining: count,
            read: 0,
            t: 0,
            delta: 0,
            v: 0,
            leading: 0,
            trailing: 0,
        }
    }

    #[inline]
    fn read_value(&mut self) -> Option<()> {
        // the two control bits at once when buffered
        let (same, reuse) = if self.r.ensure(2) {
            let c = self.r.buf >> 62;
            if c & 0b10 == 0 {
                self.r.consume(1);
                (true, false)
            } else {
                self.r.consume(2);
                (false, c == 0b10)
            }
        } else {
            let changed = self.r.read_bit()?;
            (!changed, changed && !self.r.read_bit()?)
        };
        if same {
            return Some(());
        }
        if !reuse {
            let w = self.r.read_bits(11)?;
            self.leading = (w >> 6) as u8;
            let mut sig = (w & 0x3f) as u8;
            if sig == 0 {
                sig = 64;
            }
            self.trailing = 64 - self.leading - sig;
        }
        let sig = 64 - self.leading - self.trailing;
        let bits = self.r.read_bits(sig)?;
        self.v ^= bits << self.trailing;
        Some(())
    }

    #[inline]
    fn read_dod(&mut self) -> Option<i64> {
        let prefix = if self.r.ensure(5) {
            // `0`, `10`, `110`, `1110`, `1111`: count the leading ones
            let ones = self.r.buf.leading_ones().min(4);
            self.r.consume(if ones == 4 { 4 } else { ones + 1 });
            ones
        } else {
            let mut prefix = 0;
            while prefix < 4 && self.r.read_bit()? {
                prefix += 1;
            }
            prefix
        };
        let bits = match prefix {
            0 => return Some(0),
            1 => 14,
            2 => 17,
            3 => 20,
            _ => 64,
        };
        let raw = self.r.read_bits(bits)?;
        if bits == 64 {
            return Some(raw as i64);
        }
        // sign-extend
        let shift = 64 - bits as u32;
        Some(((raw << shift) as i64) >> shift)
    }

    fn step(&mut self) -> Option<(i64, f64)> {
        match self.read {
            0 => {
                self.t = read_varint(&mut self.r)?;
                self.v = self.r.read_bits(64)?;
            }
            1 => {
                self.delta = read_varint(&mut self.r)?;
                self.t += self.delta;
                self.read_value()?;
            }
            _ => {
                let dod = self.read_dod()?;
                self.delta += dod;
                self.t += self.delta;
                self.read_value()?;
            }
        }
        self.read += 1;
        Some((self.t, f64::from_bits(self.v)))
    }
}

impl Iterator for ChunkIter<'_> {
    type Item = (i64, f64);

    #[inline]
    fn next(&mut self) -> Option<(i64, f64)> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let s = self.step();
        if s.is_none() {
            self.remaining = 0;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use day2_model::STALE_NAN;

    fn round_trip(samples: &[(i64, f64)]) {
        let mut e = ChunkEncoder::new();
        for &(t, v) in samples {
            e.append(t, v);
        }
        let bytes = e.bytes();
        let got: Vec<(i64, f64)> = ChunkIter::new(&bytes).collect();
        assert_eq!(got.len(), samples.len());
        for (g, w) in got.iter().zip(samples) {
            assert_eq!(g.0, w.0);
            assert_eq!(g.1.to_bits(), w.1.to_bits(), "value at {}", w.0);
        }
    }

    #[test]
    fn random_chunks_round_trip() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200 {
            let mut t = (next() % 1_000_000) as i64;
            let mut v = 0.0f64;
            let mut s = Vec::new();
            for _ in 0..SAMPLES_PER_CHUNK {
                // regular steps, jitter, and rare huge gaps (every dod bucket)
                t += match next() % 10 {
                    0 => (next() % (1 << 40)) as i64 + 1,
                    1..=3 => (next() % 300_000) as i64 + 1,
                    _ => 15_000,
                };
                v = match next() % 5 {
                    0 => v,
                    1 => f64::from_bits(next()),
                    2 => v + (next() % 10) as f64,
                    3 => (next() % 1000) as f64 / 7.0,
                    _ => -v,
                };
                s.push((t, v));
            }
            round_trip(&s);
        }
    }

    #[test]
    fn bits_round_trip_at_every_width_and_offset() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut w = BitWriter::new();
        let mut want = Vec::new();
        for i in 0..5000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (i % 64 + 1) as u8;
            let v = if n == 64 { x } else { x & ((1u64 << n) - 1) };
            w.write_bits(v, n);
            want.push((n, v));
        }
        let mut r = BitReader::new(w.bytes());
        for (n, v) in want {
            assert_eq!(r.read_bits(n), Some(v), "width {n}");
        }
        // only the padding of the last byte is left
        assert!(r.read_bits(8).is_none());
    }

    #[test]
    fn bits_round_trip() {
        let mut w = BitWriter::new();
        w.write_bit(true);
        w.write_bits(0b1011, 4);
        w.write_bits(u64::MAX, 64);
        w.write_bits(5, 3);
        let mut r = BitReader::new(w.bytes());
        assert_eq!(r.read_bit(), Some(true));
        assert_eq!(r.read_bits(4), Some(0b1011));
        assert_eq!(r.read_bits(64), Some(u64::MAX));
        assert_eq!(r.read_bits(3), Some(5));
    }

    #[test]
    fn regular_series_compress_well_and_round_trip() {
        let samples: Vec<(i64, f64)> = (0..120)
            .map(|i| (1_700_000_000_000 + i * 15_000, 100.0 + i as f64))
            .collect();
        round_trip(&samples);
        let mut e = ChunkEncoder::new();
        for &(t, v) in &samples {
            e.append(t, v);
        }
        assert!(e.size() < 120 * 3, "{} bytes for 120 samples", e.size());
    }

    #[test]
    fn special_values_and_irregular_times_round_trip() {
        round_trip(&[
            (-5_000, 1.0),
            (-4_999, f64::NAN),
            (0, STALE_NAN),
            (1, f64::INFINITY),
            (2, f64::NEG_INFINITY),
            (10_000_000_000, -0.0),
            (10_000_000_001, 1e-300),
            (i64::MAX / 4, f64::MAX),
            (i64::MAX / 4 + 7, 0.1),
        ]);
        round_trip(&[(42, 3.5)]);
        round_trip(&[]);
    }

    #[test]
    fn jittered_timestamps_use_all_buckets() {
        let mut t = 0i64;
        let mut samples = Vec::new();
        for i in 0..200i64 {
            t += 15_000 + (i * 7919 % 13) - 6
                + if i % 50 == 0 { 1 << 18 } else { 0 }
                + if i % 77 == 0 { 1 << 30 } else { 0 };
            samples.push((t, (i as f64).sin()));
        }
        round_trip(&samples);
    }

    #[test]
    fn truncated_chunk_stops_cleanly() {
        let mut e = ChunkEncoder::new();
        for i in 0..50 {
            e.append(i * 1000, i as f64 * 1.5);
        }
        let bytes = e.bytes();
        let got: Vec<_> = ChunkIter::new(&bytes[..bytes.len() / 2]).collect();
        assert!(got.len() < 50);
    }
}
