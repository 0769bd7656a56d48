//! Byte work eight bytes at a time (SWAR: SIMD within a register), shared by
//! the scanner, the key index and the string writer: a guest has no SIMD
//! `memchr` or `memcmp`, and every iteration of a wasm loop pays an
//! interruption check, so a word per iteration beats a byte per iteration.

pub(super) const ONES: u64 = 0x0101_0101_0101_0101;
pub(super) const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `x` that is zero. Exact for the lowest
/// zero byte (a borrow can only mark bytes above it).
#[inline]
pub(super) fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x & HIGH
}

/// The first `needle` in `hay`: natively `memchr`; in a guest eight bytes
/// at a time, as a guest has no SIMD `memchr` and every iteration of a wasm
/// loop pays an interruption check.
#[cfg(not(target_family = "wasm"))]
#[inline]
pub fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    memchr::memchr(needle, hay)
}

/// See the native version.
#[cfg(target_family = "wasm")]
pub fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    find_byte_swar(hay, needle)
}

/// The guest's [`find_byte`] (tested natively too).
#[cfg_attr(not(target_family = "wasm"), allow(dead_code))]
fn find_byte_swar(hay: &[u8], needle: u8) -> Option<usize> {
    let pat = ONES * needle as u64;
    let mut i = 0;
    while let Some(chunk) = hay.get(i..i + 8) {
        let z = zero_bytes(u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])) ^ pat);
        if z != 0 {
            return Some(i + (z.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    hay[i..].iter().position(|&c| c == needle).map(|p| i + p)
}

/// A key's hash for the member index: eight bytes per multiply (keys are
/// short; a byte-at-a-time hash costs a loop iteration per byte in wasm).
/// The same on every target.
#[inline]
pub(crate) fn key_hash(b: &[u8]) -> u32 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mix = |h: u64, w: u64| (h ^ w).wrapping_mul(K).rotate_left(29);
    let mut h = b.len() as u64;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        h = mix(h, u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut w = 0u64;
        for (i, &c) in tail.iter().enumerate() {
            w |= (c as u64) << (8 * i);
        }
        h = mix(h, w);
    }
    (h ^ (h >> 32)) as u32
}

/// Slice equality without a call to `memcmp`, which in a guest is a byte
/// loop: keys are short, so eight bytes at a time and a tail.
#[inline]
pub(crate) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |c: &[u8]| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
    let (mut ca, mut cb) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut ca).zip(&mut cb) {
        if word(x) != word(y) {
            return false;
        }
    }
    ca.remainder()
        .iter()
        .zip(cb.remainder())
        .all(|(x, y)| x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_byte_is_position() {
        let hay: Vec<u8> = (0..40u8)
            .map(|i| if i % 7 == 3 { b'\n' } else { b'a' + i % 5 })
            .collect();
        for start in 0..hay.len() {
            for end in start..=hay.len() {
                let h = &hay[start..end];
                for needle in [b'\n', b'a', b'e', b'z', 0x80] {
                    let want = h.iter().position(|&c| c == needle);
                    assert_eq!(find_byte(h, needle), want);
                    assert_eq!(find_byte_swar(h, needle), want);
                }
            }
        }
    }
}
