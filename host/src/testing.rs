//! What the host's unit tests share.

/// The next number of a xorshift64 stream from `seed` (not zero): the
/// repeatable pseudo-random inputs of the randomized tests, each test
/// starting from a seed of its own.
pub fn step(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}
