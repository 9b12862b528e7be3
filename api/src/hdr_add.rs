//! Adding a V2(+deflate) encoded HDR histogram straight into another one, without building
//! the decoded histogram first.
//!
//! Written by hand because the coordinator merges every runner's cumulative histograms each
//! second: the crate's `Deserializer` allocates and zeroes a full counts array per histogram
//! (23.5k counters, 188 KiB at 1 µs … 1 h, 3 digits) and `Histogram::add` then walks all of
//! it, while a real latency histogram has a few hundred to a few thousand non-zero counters.
//! With 100 runners × 20 steps that cost 35% of a core (bench: `coordinator_merge`); walking
//! only the encoded non-zero counters into one dense array per sum brings it to the figure in
//! BENCHMARKS.md. Any encoding this does not handle (other bounds, a normalizing offset)
//! falls back to the crate.

use std::cell::RefCell;

use flate2::{Decompress, FlushDecompress, Status};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;

const V2_COOKIE: u32 = 0x1c84_9303 | 0x10;
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9304 | 0x10;
/// Cookie, payload length, normalizing offset, digits, low, high, integer-to-double ratio.
const HEADER: usize = 4 + 4 + 4 + 4 + 8 + 8 + 8;

thread_local! {
    /// The inflater and its output, reused: a fresh zlib state per histogram is ~40 KiB.
    static INFLATE: RefCell<(Decompress, Vec<u8>)> =
        RefCell::new((Decompress::new(true), Vec::new()));
}

/// A sum of encoded histograms, kept as a dense counts array in the histograms' own index
/// layout: adding one is a walk over its encoded non-zero counters with `counts[i] += n`, and
/// the `Histogram` is built once at the end. (Per-value `record_n` instead cost a fifth of the
/// merge in the bench's profile.)
pub struct HistogramSum {
    layout: Layout,
    counts: Vec<u64>,
    /// Encodings in another layout, decoded by the crate and added here.
    other: Histogram<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Layout {
    digits: u32,
    low: u64,
    half_magnitude: u32,
    unit_magnitude: u32,
}

impl Layout {
    fn of(digits: u32, low: u64) -> Option<Layout> {
        if !(1..=5).contains(&digits) || low == 0 {
            return None;
        }
        // hdrhistogram's `Histogram::new_with_bounds`, for these bounds.
        let largest_single_unit = 2 * 10u64.pow(digits);
        let sub_bucket_count_magnitude = (largest_single_unit as f64).log2().ceil() as u32;
        Some(Layout {
            digits,
            low,
            half_magnitude: sub_bucket_count_magnitude - 1,
            unit_magnitude: (low as f64).log2().floor() as u32,
        })
    }

    /// The lowest value counted at `index`, if it is a value at all.
    fn value_at(&self, index: u64) -> Option<u64> {
        let half_count = 1u64 << self.half_magnitude;
        let mut bucket = (index >> self.half_magnitude) as i64 - 1;
        let mut sub = (index & (half_count - 1)) + half_count;
        if bucket < 0 {
            sub -= half_count;
            bucket = 0;
        }
        let shift = bucket as u32 + self.unit_magnitude;
        (shift < 64 && sub.leading_zeros() > shift).then(|| sub << shift)
    }
}

impl HistogramSum {
    /// An empty sum shaped like `like` (same bounds and precision).
    pub fn like(like: &Histogram<u64>) -> HistogramSum {
        let mut other = like.clone();
        other.reset();
        HistogramSum {
            layout: Layout::of(u32::from(like.sigfig()), like.low()).expect("a valid histogram"),
            counts: vec![0; like.distinct_values()],
            other,
        }
    }

    /// Adds the histogram encoded in `bytes` (as `V2DeflateSerializer` or `V2Serializer`
    /// wrote it). On an error, what was decoded before it stays added.
    pub fn add_encoded(&mut self, bytes: &[u8]) -> Result<(), String> {
        let cookie = be_u32(bytes, 0).ok_or("histogram is truncated")?;
        match cookie {
            V2_COOKIE => self.add_plain(bytes),
            V2_COMPRESSED_COOKIE => INFLATE.with(|cell| {
                let (inflater, out) = &mut *cell.borrow_mut();
                let len = be_u32(bytes, 4).ok_or("histogram is truncated")? as usize;
                let body = bytes.get(8..8 + len).ok_or("histogram is truncated")?;
                inflate(inflater, body, out)?;
                self.add_plain(out)
            }),
            _ => Err(format!("not an HDR V2 histogram (cookie {cookie:#x})")),
        }
    }

    fn add_plain(&mut self, bytes: &[u8]) -> Result<(), String> {
        if bytes.len() < HEADER || be_u32(bytes, 0) != Some(V2_COOKIE) {
            return Err("histogram header is truncated".into());
        }
        let payload_len = be_u32(bytes, 4).unwrap_or(0) as usize;
        let normalizing_offset = be_u32(bytes, 8).unwrap_or(0);
        let digits = be_u32(bytes, 12).unwrap_or(0);
        let low = be_u64(bytes, 16).unwrap_or(0);
        let ratio = f64::from_bits(be_u64(bytes, 32).unwrap_or(0));
        let payload = bytes
            .get(HEADER..HEADER + payload_len)
            .ok_or("histogram payload is truncated")?;
        if normalizing_offset != 0 || ratio != 1.0 || Layout::of(digits, low) != Some(self.layout) {
            // Another layout: let the crate decode it in full.
            let h: Histogram<u64> = Deserializer::new()
                .deserialize(&mut &bytes[..])
                .map_err(|e| format!("histogram does not decode: {e:?}"))?;
            return self
                .other
                .add(&h)
                .map_err(|e| format!("histogram does not fit: {e:?}"));
        }
        let mut index = 0usize;
        let mut at = 0usize;
        while let Some(&first) = payload.get(at) {
            // Most encoded numbers (counts, short zero runs) fit in one byte.
            let zz = if first < 0x80 {
                at += 1;
                u64::from(first)
            } else {
                let (zz, used) = varint(&payload[at..]).ok_or("histogram payload is truncated")?;
                at += used;
                zz
            };
            let n = ((zz >> 1) as i64) ^ -((zz & 1) as i64);
            if n < 0 {
                index = index.saturating_add(n.unsigned_abs() as usize);
                continue;
            }
            if n > 0 {
                let slot = self
                    .counts
                    .get_mut(index)
                    .ok_or("histogram index out of range")?;
                *slot = slot.saturating_add(n as u64);
            }
            index += 1;
        }
        Ok(())
    }

    /// The sum as a histogram.
    pub fn into_histogram(self) -> Histogram<u64> {
        let mut h = self.other;
        for (index, &n) in self.counts.iter().enumerate() {
            if n > 0
                && let Some(v) = self.layout.value_at(index as u64)
            {
                // In range by construction: the index came from this layout's array.
                let _ = h.record_n(v, n);
            }
        }
        h
    }
}

/// Adds the histogram encoded in `bytes` into `dest`.
pub fn add_encoded(dest: &mut Histogram<u64>, bytes: &[u8]) -> Result<(), String> {
    let mut sum = HistogramSum::like(dest);
    let result = sum.add_encoded(bytes);
    dest.add(sum.into_histogram())
        .map_err(|e| format!("histogram does not fit: {e:?}"))?;
    result
}

fn inflate(inflater: &mut Decompress, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    inflater.reset(true);
    out.clear();
    out.reserve(input.len() * 4 + 64);
    loop {
        let consumed = inflater.total_in() as usize;
        let status = inflater
            .decompress_vec(&input[consumed..], out, FlushDecompress::Finish)
            .map_err(|e| format!("histogram does not inflate: {e}"))?;
        match status {
            Status::StreamEnd => return Ok(()),
            // Output full: grow and go on; no progress with room left means truncated input.
            _ if out.len() == out.capacity() => out.reserve(out.capacity()),
            _ => return Err("histogram is truncated".into()),
        }
    }
}

/// LEB128 as HdrHistogram writes it: at most 9 bytes, the 9th taken whole.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for i in 0..9 {
        let byte = *b.get(i)?;
        if i == 8 {
            return Some((value | (u64::from(byte) << 56), 9));
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{histogram_bytes, histogram_from_bytes};
    use crate::stats::new_histogram;
    use hdrhistogram::serialization::{Serializer, V2Serializer};

    fn sample(seed: u64, n: usize) -> Histogram<u64> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut h = new_histogram();
        for _ in 0..n {
            // 1 µs … 1 h, log-uniform, plus the extremes.
            h.record((10f64.powf(9.5 * rng.f64())) as u64 + 1).unwrap();
        }
        h.record(1).unwrap();
        h.record(3_600_000_000).unwrap();
        h
    }

    #[test]
    fn adding_encoded_equals_decoding_then_adding() {
        for seed in 0..20 {
            let a = sample(seed, 5_000);
            let b = sample(seed + 100, 3_000);
            let mut via_crate = a.clone();
            via_crate
                .add(histogram_from_bytes(&histogram_bytes(&b)).unwrap())
                .unwrap();
            let mut direct = a.clone();
            add_encoded(&mut direct, &histogram_bytes(&b)).unwrap();
            assert_eq!(direct, via_crate, "seed {seed}");
            assert_eq!(direct.len(), 5_000 + 3_000 + 4);
            assert_eq!(direct.max(), via_crate.max());
            assert_eq!(direct.min(), via_crate.min());
        }
    }

    #[test]
    fn uncompressed_and_empty_histograms_add_too() {
        let b = sample(1, 1_000);
        let mut plain = Vec::new();
        V2Serializer::new().serialize(&b, &mut plain).unwrap();
        let mut dest = new_histogram();
        add_encoded(&mut dest, &plain).unwrap();
        assert_eq!(dest, b);
        add_encoded(&mut dest, &histogram_bytes(&new_histogram())).unwrap();
        assert_eq!(dest, b);
    }

    #[test]
    fn other_bounds_fall_back_to_the_crate() {
        let mut other = Histogram::<u64>::new_with_bounds(1000, 3_600_000_000, 2).unwrap();
        other.record(123_456).unwrap();
        let mut dest = new_histogram();
        add_encoded(&mut dest, &histogram_bytes(&other)).unwrap();
        assert_eq!(dest.len(), 1);
        let v = dest.value_at_quantile(0.5);
        assert!(v.abs_diff(123_456) < 1_300, "{v}");
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let good = histogram_bytes(&sample(3, 500));
        let mut dest = new_histogram();
        assert!(add_encoded(&mut dest, b"").is_err());
        assert!(add_encoded(&mut dest, b"not a histogram at all").is_err());
        let mut rng = fastrand::Rng::with_seed(9);
        for cut in [4, 8, 12, good.len() / 2, good.len() - 1] {
            let _ = add_encoded(&mut dest, &good[..cut]);
        }
        for _ in 0..800 {
            let mut bad = good.clone();
            for _ in 0..4 {
                let i = rng.usize(..bad.len());
                bad[i] = rng.u8(..);
            }
            let _ = add_encoded(&mut dest, &bad);
        }
        let mut plain = Vec::new();
        V2Serializer::new()
            .serialize(&sample(4, 500), &mut plain)
            .unwrap();
        for _ in 0..800 {
            let mut bad = plain.clone();
            let i = rng.usize(HEADER..bad.len());
            bad[i] = rng.u8(..);
            let _ = add_encoded(&mut dest, &bad);
        }
    }
}
