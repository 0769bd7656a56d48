//! Where a string's plain run ends: the first byte at or after a position
//! that the string scan must look at itself (a quote, a backslash, a
//! control character or a non-ASCII byte). Most of a JSON event's bytes are
//! in such runs, so this is the scan's inner loop.
//!
//! On x86_64 (the host) sixteen bytes at a time with SSE2, which every
//! x86_64 CPU has (no runtime detection is needed; AVX2's 32 bytes would
//! not pay on runs that are mostly shorter than 16 bytes). Elsewhere, and
//! in a guest (wasm32), eight bytes at a time in a register (SWAR). Both
//! answer the same offset for every input (the tests below and the fuzz
//! target `event_reader` check it).

use super::swar::{HIGH, ONES, zero_bytes};

/// Whether `c` ends a plain run.
#[inline(always)]
fn special(c: u8) -> bool {
    c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c)
}

/// The first special byte of `b` at or after `i` (`b.len()` if none).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
pub(super) fn plain_end(b: &[u8], i: usize) -> usize {
    sse2::plain_end(b, i)
}

/// The first special byte of `b` at or after `i` (`b.len()` if none).
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
pub(super) fn plain_end(b: &[u8], i: usize) -> usize {
    plain_end_swar(b, i)
}

/// [`plain_end`] from `i`, and, when the same bytes tell it, [`plain_end`]
/// from three bytes past that end: where a compact member's string value
/// starts (`"key":"value"`), so one look at 32 bytes finds the ends of
/// both. `None`: not told (the caller searches). SSE2 on x86_64;
/// elsewhere the first alone.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
pub(super) fn plain_end_and_next(b: &[u8], i: usize) -> (usize, Option<usize>) {
    sse2::plain_end_and_next(b, i)
}

/// See the x86_64 version.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
pub(super) fn plain_end_and_next(b: &[u8], i: usize) -> (usize, Option<usize>) {
    (plain_end(b, i), None)
}

/// The SWAR [`plain_end`] (the guest's; tested natively against SSE2).
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
#[inline(always)]
pub(super) fn plain_end_swar(b: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        let v = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let flagged = zero_bytes(v ^ (ONES * b'"' as u64))
            | zero_bytes(v ^ (ONES * b'\\' as u64))
            | (v.wrapping_sub(ONES * 0x20) & !v & HIGH)
            | (v & HIGH);
        if flagged != 0 {
            // The lowest flagged byte is exact in each term, so it is the
            // first special byte.
            return i + (flagged.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if special(c) {
            return i;
        }
        i += 1;
    }
    b.len().min(i)
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2 {
    use core::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };

    /// One bit per byte of `chunk` that is special. A signed compare
    /// with 0x20 flags the controls and, as negative, every byte from 0x80.
    #[inline(always)]
    fn mask(chunk: &[u8; 16]) -> u32 {
        // SAFETY: an unaligned load of the sixteen bytes `chunk` borrows,
        // and value operations of SSE2, which this module is compiled only
        // with (`target_feature = "sse2"`, on by default on x86_64).
        unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            let low = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), low)) as u32
        }
    }

    #[inline(always)]
    pub(super) fn plain_end_and_next(b: &[u8], i: usize) -> (usize, Option<usize>) {
        let Some(w) = b.get(i..i + 32) else {
            return (plain_end(b, i), None);
        };
        let (lo, hi) = w.split_at(16);
        let m = mask(lo.try_into().unwrap_or(&[0; 16])) as u64
            | (mask(hi.try_into().unwrap_or(&[0; 16])) as u64) << 16;
        if m == 0 {
            return (plain_end(b, i + 32), None);
        }
        let k = m.trailing_zeros() as usize;
        // Bits from k + 3 on (k + 3 is at most 34: within the word).
        let rest = m & (u64::MAX << (k + 3));
        (
            i + k,
            (rest != 0).then(|| i + rest.trailing_zeros() as usize),
        )
    }

    #[inline(always)]
    pub(super) fn plain_end(b: &[u8], mut i: usize) -> usize {
        while let Some(chunk) = b.get(i..i + 16) {
            let m = mask(chunk.try_into().unwrap_or(&[0; 16]));
            if m != 0 {
                return i + m.trailing_zeros() as usize;
            }
            i += 16;
        }
        if i >= b.len() {
            return b.len();
        }
        // Fewer than 16 bytes left: the last 16 of `b`, when it has that
        // many, with the bytes before `i` shifted out.
        match b.len().checked_sub(16).and_then(|s| Some((s, b.get(s..)?))) {
            Some((start, last)) => {
                let m = mask(last.try_into().unwrap_or(&[0; 16])) >> (i - start);
                if m != 0 {
                    i + m.trailing_zeros() as usize
                } else {
                    b.len()
                }
            }
            None => super::plain_end_swar(b, i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_bytes::{bytes, step};
    use super::*;

    fn reference(b: &[u8], i: usize) -> usize {
        (i..b.len()).find(|&k| special(b[k])).unwrap_or(b.len())
    }

    /// Every offset of inputs of every length up to 70 bytes, special bytes
    /// (each kind, and the edges of each range) at pseudo-random places:
    /// both versions answer the first special byte.
    #[test]
    fn both_versions_find_the_first_special_byte() {
        let specials = [b'"', b'\\', 0x00, 0x1f, 0x80, 0xff, 0xc3];
        let plain = [b'a', b' ', 0x20, 0x7f, b'~', b'!', b'#', b'[', b']'];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..4000 {
            let seed = step(&mut seed);
            let density = (seed >> 8) % 40 + 1;
            let b = bytes(seed, (seed % 71) as usize, |r| {
                if r.is_multiple_of(density) {
                    specials[(r / 64) as usize % specials.len()]
                } else {
                    plain[(r / 64) as usize % plain.len()]
                }
            });
            for i in 0..=b.len() {
                let want = reference(&b, i);
                assert_eq!(plain_end_swar(&b, i), want, "{b:?} from {i}");
                assert_eq!(plain_end(&b, i), want, "{b:?} from {i}");
                let (first, next) = plain_end_and_next(&b, i);
                assert_eq!(first, want, "{b:?} from {i}");
                if let Some(next) = next {
                    assert_eq!(next, reference(&b, want + 3), "{b:?} from {i}, next");
                }
            }
        }
    }

    #[test]
    fn every_byte_value_at_every_place() {
        for c in 0..=255u8 {
            for len in [1, 15, 16, 17, 33] {
                for at in 0..len {
                    let mut b = alloc::vec![b'x'; len];
                    b[at] = c;
                    for i in 0..=len {
                        let want = reference(&b, i);
                        assert_eq!(plain_end(&b, i), want);
                        assert_eq!(plain_end_swar(&b, i), want);
                    }
                }
            }
        }
    }
}
