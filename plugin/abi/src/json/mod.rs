//! A validating JSON scanner that reads an event's top-level members as byte
//! spans and finds fields by path, without building a DOM or allocating per
//! event. Values stay as raw slices of the event; a rule converts only the
//! few it needs. Spans are what let an enrichment be spliced into the event's
//! original bytes.
//!
//! Both sides use it: a guest scans the events it is given, and for a plugin
//! that reads events as objects (see [`crate::export::PROCESS_OBJECTS`]) the
//! host scans each event natively, once, and hands the guest an
//! [objects index](crate::frame::index) instead, so the sandboxed rule starts
//! from spans rather than bytes.
//!
//! By concern: `parser` validates and skips values; `scanner` reads an
//! event's members into a [`Scanner`], first by the fast path in `flat`
//! (the full parser when it is not sure); `object` looks fields up in the
//! [`Object`] it answers; `value` reads one raw [`Value`]; `escape` reads
//! and writes JSON strings; `plan` holds what a rule declares it reads
//! ([`Path`], [`PathPlan`], [`KeySet`]); `swar` the eight-bytes-at-a-time
//! byte work they share, `plain` the string scan's inner loop (SSE2 on
//! x86_64). This file holds the types they all speak.

mod escape;
mod flat;
mod object;
mod parser;
mod plain;
mod plan;
mod scanner;
mod swar;
mod value;

pub use escape::{unescape, write_str};
pub use flat::{Opened, skip_value};
pub use object::Object;
pub use plan::{KeySet, Path, PathGroup, PathPlan};
pub use scanner::Scanner;
pub use swar::find_byte;
pub use value::{Value, key_eq};

/// Pseudo-random inputs for the byte-scanning tests.
#[cfg(test)]
pub(crate) mod test_bytes {
    use alloc::vec::Vec;

    /// `seed` moved one step of a xorshift sequence; the new value.
    pub fn step(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// `len` bytes, each `pick` of the next number of an LCG started at
    /// `seed` (its upper 31 bits).
    pub fn bytes(seed: u64, len: usize, mut pick: impl FnMut(u64) -> u8) -> Vec<u8> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                pick(s >> 33)
            })
            .collect()
    }
}

// For the objects index, which writes and rebuilds a scanner's state.
pub(crate) use plan::{ABSENT, NO_GROUP, PlanKeys};
pub(crate) use swar::key_hash;

/// Nesting deeper than this is an error, not a stack overflow.
pub const MAX_DEPTH: usize = 128;

/// Why an event is not a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanError {
    /// Not valid JSON text (or not valid UTF-8).
    Malformed,
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Valid JSON, but not an object.
    NotObject,
}

/// A bound on the work of field lookups: bytes of nested objects passed
/// over, and members compared one by one. The host resolves a plugin's
/// [`PathPlan`] outside the plugin's deadline, so it resolves within a
/// budget ([`crate::frame::index::index_batch`]); a lookup made in the
/// guest, under its deadline, has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    pub spent: u64,
    pub limit: u64,
}

/// A lookup would pass its [`Work`] budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget;

impl Work {
    pub fn within(limit: u64) -> Work {
        Work { spent: 0, limit }
    }
}

/// What a lookup spends its work on: a [`Work`] budget, or [`Unlimited`]
/// (compiled away: the guest's lookups pay nothing for the host's bound).
pub trait Budget {
    fn spend(&mut self, units: usize) -> Result<(), OverBudget>;
}

impl Budget for Work {
    #[inline]
    fn spend(&mut self, units: usize) -> Result<(), OverBudget> {
        self.spent = self.spent.saturating_add(units as u64);
        if self.spent > self.limit {
            Err(OverBudget)
        } else {
            Ok(())
        }
    }
}

/// No budget (a lookup under the guest's own deadline).
pub struct Unlimited;

impl Budget for Unlimited {
    #[inline(always)]
    fn spend(&mut self, _units: usize) -> Result<(), OverBudget> {
        Ok(())
    }
}

/// A byte range `[start, end)` within the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub(crate) fn of(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
    pub fn range(self) -> core::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// One top-level member: the key's raw bytes (between the quotes, escapes
/// untouched) and the value's span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub key: Span,
    pub value: Span,
}
