//! The scanner's fast path: an event's top-level members read in tight
//! loops over local offsets, nested objects and arrays without recursion,
//! for the common event (top-level keys with no escape and no non-ASCII
//! byte). It answers only when it is sure; anything else (such a key, an
//! error, nesting past [`MAX_DEPTH`]) is left to the full parser
//! ([`Scanner::scan_inner`](super::Scanner) then scans the event again
//! from the start), which gives the verdict and the reason.
//!
//! So when it answers, it answers what the full parser would: the same
//! members with the same spans and the same closing brace. The scanner's
//! tests and the fuzz target `event_reader` compare the two on every
//! input ([`Scanner::scan_reference`](super::Scanner::scan_reference)).

use alloc::vec::Vec;

use super::parser::Parser;
use super::plain::{plain_end, plain_end_and_next};
use super::swar::{HIGH, ONES};
use super::{MAX_DEPTH, Member, ScanError, Span};

/// `i` moved past JSON whitespace.
#[inline(always)]
fn ws(b: &[u8], mut i: usize) -> usize {
    while let Some(&c) = b.get(i) {
        if c > b' ' || !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        i += 1;
    }
    i
}

/// `i` moved past ASCII digits; and how many there were. Eight bytes at a
/// time while eight are left (a number's digits end at a branch the CPU
/// cannot predict; one word holds most numbers whole).
#[inline(always)]
fn digits(b: &[u8], mut i: usize) -> (usize, usize) {
    let start = i;
    while let Some(chunk) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        // A byte below 0x30 borrows, one above 0x39 carries into its
        // high bit; the lowest byte flagged is exact (see `zero_bytes`).
        let outside = (w.wrapping_add(ONES * 0x46) | w.wrapping_sub(ONES * 0x30)) & HIGH;
        if outside != 0 {
            i += (outside.trailing_zeros() / 8) as usize;
            return (i, i - start);
        }
        i += 8;
    }
    while let Some(b'0'..=b'9') = b.get(i) {
        i += 1;
    }
    (i, i - start)
}

/// The end of the JSON number that starts at `i`, if one does (the
/// grammar's: an optional minus, no leading zero, digits after a point and
/// in an exponent). The full parser reads numbers with it too.
#[inline(always)]
pub(super) fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(b, i + 1).0,
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        let (end, n) = digits(b, i + 1);
        if n == 0 {
            return None;
        }
        i = end;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let (end, n) = digits(b, i);
        if n == 0 {
            return None;
        }
        i = end;
    }
    Some(i)
}

/// The end of the string whose opening quote is at `i`.
#[inline(always)]
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let end = plain_end(b, i + 1);
    if b.get(end) == Some(&b'"') {
        Some(end + 1)
    } else {
        slow_string_end(b, i)
    }
}

/// [`string_end`] of a string with an escape or a non-ASCII byte: the full
/// parser's string reader, from the opening quote.
#[inline(never)]
fn slow_string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut p = Parser::at(b, i);
    p.string().ok()?;
    Some(p.i)
}

/// The end of the string, number or literal that starts at `i`.
#[inline(always)]
fn scalar_end(b: &[u8], i: usize) -> Option<usize> {
    let lit = |l: &[u8]| (b.get(i..i + l.len()) == Some(l)).then_some(i + l.len());
    match *b.get(i)? {
        b'"' => string_end(b, i),
        b'-' | b'0'..=b'9' => number_end(b, i),
        b't' => lit(b"true"),
        b'f' => lit(b"false"),
        b'n' => lit(b"null"),
        _ => None,
    }
}

/// Past a nested object's key at `i`, its colon and the whitespace
/// around: the start of the member's value.
#[inline(always)]
fn past_key(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let i = ws(b, string_end(b, i)?);
    (b.get(i) == Some(&b':')).then(|| ws(b, i + 1))
}

/// The end of the member value that starts at `i` (not whitespace),
/// nested `depth` levels down: strings, numbers and literals inline,
/// objects and arrays by [`container_end`].
#[inline(always)]
fn value_end(b: &[u8], i: usize, depth: usize) -> Option<usize> {
    match *b.get(i)? {
        b'{' | b'[' => container_end(b, i, depth),
        _ => scalar_end(b, i),
    }
}

/// The end of the JSON value that starts at `b[i]` (no whitespace is
/// passed over first), when one does: checked as the scan checks a
/// member's value, objects and arrays to [`MAX_DEPTH`]. `None` as well
/// where the fast path would leave the value to the full parser (deeper
/// nesting), so a caller that gets `None` falls back to a scan.
pub fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    value_end(b, i, 1)
}

/// Where a nested object's member goes on from its key (the quote at
/// `i`): the start of its value, or, for a compact string value the look at
/// the key found whole, the end of that value.
enum AfterKey {
    Value(usize),
    End(usize),
}

/// A member read compactly from its key's text at `key_start`: where the
/// key's plain run ends (its closing quote, for a key with no escape and no
/// non-ASCII byte) and, when `":` follows right there, the value's start
/// and, if the same look at 32 bytes found it, the end of a plain string
/// value right after the colon. The scan's member loops, top-level
/// ([`scan_flat`]) and nested ([`after_key`]), both read keys by it.
#[inline(always)]
fn compact_member(b: &[u8], key_start: usize) -> (usize, Option<(usize, Option<usize>)>) {
    let (key_end, next) = plain_end_and_next(b, key_start);
    if b.get(key_end..key_end + 2) != Some(b"\":") {
        return (key_end, None);
    }
    let value = key_end + 2;
    let string_end = next
        .filter(|&end| b.get(value) == Some(&b'"') && b.get(end) == Some(&b'"'))
        .map(|end| end + 1);
    (key_end, Some((ws(b, value), string_end)))
}

/// Past a nested object's key at `i` and its colon: compact JSON by
/// [`compact_member`]; anything else (an escape or non-ASCII byte in the
/// key, whitespace before the colon) by [`past_key`].
#[inline(always)]
fn after_key(b: &[u8], i: usize) -> Option<AfterKey> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    match compact_member(b, i + 1).1 {
        Some((_, Some(end))) => Some(AfterKey::End(end)),
        Some((value, None)) => Some(AfterKey::Value(value)),
        None => past_key(b, i).map(AfterKey::Value),
    }
}

/// The end of the value that starts at `i` (not whitespace), nested
/// `depth` levels down (the scanner's members are at depth 1). Objects and
/// arrays are read without recursion: a bit per open level says which of
/// the two it is. Deeper than [`MAX_DEPTH`] is left to the full parser.
#[inline(never)]
fn container_end(b: &[u8], mut i: usize, depth: usize) -> Option<usize> {
    let mut objects: u128 = 0;
    let mut open = 0usize;
    'value: loop {
        // `i` is at a value, or (`key`) at an object member's key.
        let key = match *b.get(i)? {
            c @ (b'{' | b'[') => {
                if depth + open >= MAX_DEPTH {
                    return None;
                }
                let object = c == b'{';
                i = ws(b, i + 1);
                if b.get(i) == Some(&if object { b'}' } else { b']' }) {
                    i += 1; // an empty one: a whole value
                    None
                } else {
                    objects = (objects << 1) | object as u128;
                    open += 1;
                    if !object {
                        continue 'value;
                    }
                    Some(i)
                }
            }
            _ => {
                i = scalar_end(b, i)?;
                None
            }
        };
        if let Some(at) = key {
            match after_key(b, at)? {
                AfterKey::Value(v) => {
                    i = v;
                    continue 'value;
                }
                AfterKey::End(end) => i = end,
            }
        }
        // A value ended at `i`: the next element, or the end of the
        // containers it closes.
        loop {
            if open == 0 {
                return Some(i);
            }
            let object = objects & 1 == 1;
            // Compact JSON has the next key right after a member's value.
            let at = if object && b.get(i..i + 2) == Some(b",\"") {
                i + 1
            } else {
                i = ws(b, i);
                match b.get(i) {
                    Some(b',') => {
                        i = ws(b, i + 1);
                        if !object {
                            continue 'value;
                        }
                        i
                    }
                    Some(&c) if c == if object { b'}' } else { b']' } => {
                        objects >>= 1;
                        open -= 1;
                        i += 1;
                        continue;
                    }
                    _ => return None,
                }
            };
            match after_key(b, at)? {
                AfterKey::Value(v) => {
                    i = v;
                    continue 'value;
                }
                AfterKey::End(end) => i = end,
            }
        }
    }
}

/// The end of the object or array that starts at `i` (not whitespace), as
/// the top-level value of a text: by [`container_end`], or the full parser
/// when it is not sure (which then gives the reason).
pub(super) fn top_value_end(b: &[u8], i: usize) -> Result<usize, ScanError> {
    if let Some(end) = container_end(b, i, 0) {
        return Ok(end);
    }
    let mut p = Parser::at(b, i);
    p.value(0)?;
    Ok(p.i)
}

/// Reads the JSON object at the start of `src` (after whitespace), whose
/// keys hold no escape and no non-ASCII byte, appending its members to
/// `members` (which it expects empty) and returning the offset of its
/// closing `}`; what follows is the caller's to check. `None`: not such an
/// object, or not valid (`members` then holds anything; the caller scans
/// again).
pub(super) fn scan_flat(b: &[u8], members: &mut Vec<Member>) -> Option<usize> {
    scan_members(b, 1, members, |_, _| Some(None))
}

/// Where [`scan_flat_opening`] found the object it opened: its start in
/// the text scanned, and its closing `}` as an offset from that start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub start: usize,
    pub close: usize,
}

/// [`scan_flat`] of an object (an envelope) one of whose members, the
/// first with the raw key `key` whose value is an object, has that object
/// read member by member too (into `inner`, as spans from that object's
/// start) instead of only passed over: what [`scan_flat`] of that value
/// alone would answer, read in the same pass. The envelope's answer is the
/// same as [`scan_flat`]'s; the [`Opened`] is there when that value was an
/// object the member loop reads (keys without escapes).
pub(super) fn scan_flat_opening(
    b: &[u8],
    members: &mut Vec<Member>,
    key: &[u8],
    inner: &mut Vec<Member>,
) -> Option<(usize, Option<Opened>)> {
    let (mut tried, mut opened) = (false, None);
    let close = scan_members(b, 1, members, |k, start| {
        if tried || b.get(start) != Some(&b'{') || b.get(k) != Some(key) {
            return Some(None);
        }
        tried = true;
        inner.clear();
        // Its members' values are one level further down than the
        // envelope's: the same depth limit as when it is passed over. One
        // the member loop does not read (a key with an escape) is passed
        // over, as `scan_flat` passes it, which gives the verdict.
        let Some(close) = scan_nested_object(b.get(start..)?, inner) else {
            return Some(None);
        };
        opened = Some(Opened { start, close });
        Some(Some(start + close + 1))
    })?;
    Some((close, opened))
}

/// [`scan_flat`] of an object that is an envelope's member, or an event's
/// (its members' values two levels down); out of line, so that the
/// envelope's loop around it stays small. `None` where that loop leaves
/// the object to the full parser (a key with an escape, say).
#[inline(never)]
pub(super) fn scan_nested_object(b: &[u8], members: &mut Vec<Member>) -> Option<usize> {
    scan_members(b, 2, members, |_, _| Some(None))
}

/// [`scan_flat`]'s loop, for an object whose members' values are `depth`
/// levels down. `open` is asked about each member whose value it would
/// pass over (the key's span, the value's start): `Some(Some(end))` when
/// it read that value itself, up to `end`; `Some(None)` to pass it over;
/// `None` to give up.
#[inline(always)]
fn scan_members(
    b: &[u8],
    depth: usize,
    members: &mut Vec<Member>,
    mut open: impl FnMut(core::ops::Range<usize>, usize) -> Option<Option<usize>>,
) -> Option<usize> {
    let mut i = ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(b, i + 1);
    let close;
    if b.get(i) == Some(&b'}') {
        close = i;
    } else {
        loop {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let key_start = i + 1;
            let (key_end, value_start, string_end) = key_and_value_start(b, key_start)?;
            i = match string_end {
                Some(end) => end,
                None => match open(key_start..key_end, value_start)? {
                    Some(end) => end,
                    None => value_end(b, value_start, depth)?,
                },
            };
            members.push(Member {
                key: Span::of(key_start, key_end),
                value: Span::of(value_start, i),
            });
            // Likewise `,"` right after the value: the next key follows.
            if b.get(i..i + 2) == Some(b",\"") {
                i += 1;
                continue;
            }
            i = ws(b, i);
            match b.get(i) {
                Some(b',') => i = ws(b, i + 1),
                Some(b'}') => {
                    close = i;
                    break;
                }
                _ => return None,
            }
        }
    }
    Some(close)
}

/// The member of an object whose key's opening quote is at `i`, read as
/// [`scan_flat`]'s member loop reads one: the key's span between its
/// quotes, and the value's span. `None` where that loop would leave the
/// member to the full parser (an escape or a non-ASCII byte in the key,
/// nesting past [`MAX_DEPTH`] under the member), or at no member. For
/// reading an object already validated member by member
/// ([`Value`](super::Value)'s lookups): on such an object it answers what
/// the full parser would.
#[inline(always)]
pub(super) fn member_at(b: &[u8], i: usize) -> Option<(Span, Span)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let key_start = i + 1;
    let (key_end, value_start, string_end) = key_and_value_start(b, key_start)?;
    let end = match string_end {
        Some(end) => end,
        None => value_end(b, value_start, 1)?,
    };
    Some((Span::of(key_start, key_end), Span::of(value_start, end)))
}

/// A member's key read from `key_start` (just past its opening quote):
/// where the key's plain run ends, where the member's value starts, and a
/// string value's end when the same look found it. Compact JSON has the
/// colon right after the key's quote, and that look often finds a string
/// value's end; else whitespace may come between. `None`: no colon after
/// a plain key (an escape or a non-ASCII byte in it, or not JSON).
#[inline(always)]
fn key_and_value_start(b: &[u8], key_start: usize) -> Option<(usize, usize, Option<usize>)> {
    let (key_end, compact) = compact_member(b, key_start);
    let (value_start, string_end) = match compact {
        Some(c) => c,
        None => (past_colon(b, key_end)?, None),
    };
    Some((key_end, value_start, string_end))
}

/// The start of a member's value, from its key's end `key_end` (where a
/// quote must be): past the quote, whitespace, a colon and whitespace.
#[inline(never)]
fn past_colon(b: &[u8], key_end: usize) -> Option<usize> {
    if b.get(key_end) != Some(&b'"') {
        return None;
    }
    let i = ws(b, key_end + 1);
    (b.get(i) == Some(&b':')).then(|| ws(b, i + 1))
}

/// Whether nothing but whitespace follows offset `i` of `b`.
#[inline]
pub(super) fn only_ws_from(b: &[u8], i: usize) -> bool {
    ws(b, i) == b.len()
}

#[cfg(test)]
mod tests {
    use super::super::test_bytes::{bytes, step};
    use super::*;

    /// From every offset of strings of digits and other bytes (the bytes
    /// on either side of the digits, and high bytes), the end of the run.
    #[test]
    fn digits_ends_where_the_digits_do() {
        let others = [
            b'/', b':', b'.', b'e', b'-', b' ', 0x00, 0x7f, 0x80, 0xaf, 0xb0, 0xb9, 0xba, 0xff,
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..5000 {
            let seed = step(&mut seed);
            let b = bytes(seed, (seed % 40) as usize, |r| {
                if r.is_multiple_of(5) {
                    others[(r / 5) as usize % others.len()]
                } else {
                    b'0' + (r % 10) as u8
                }
            });
            for i in 0..=b.len() {
                let end = (i..b.len())
                    .find(|&k| !b[k].is_ascii_digit())
                    .unwrap_or(b.len());
                assert_eq!(digits(&b, i), (end, end - i), "{b:?} from {i}");
            }
        }
    }

    /// An envelope stays on the fast path when its event is one the member
    /// loop leaves to the full parser (a key with an escape or a non-ASCII
    /// byte): the event is passed over, not opened. A malformed event
    /// still fails the envelope.
    #[test]
    fn an_event_not_opened_is_passed_over() {
        let (mut members, mut inner) = (Vec::new(), Vec::new());
        let mut read = |envelope: &str| {
            members.clear();
            scan_flat_opening(envelope.as_bytes(), &mut members, b"event", &mut inner)
                .map(|(close, opened)| (close, opened.map(|o| o.start), members.len()))
        };
        let plain = r#"{"event":{"a":1},"time":2}"#;
        assert_eq!(read(plain), Some((plain.len() - 1, Some(9), 2)));
        for not_opened in [
            r#"{"event":{"a\u0062":1},"time":2}"#,
            "{\"event\":{\"\u{e9}t\u{e9}\":1},\"time\":2}",
        ] {
            let want = Some((not_opened.len() - 1, None, 2));
            assert_eq!(read(not_opened), want, "{not_opened}");
        }
        // Only the first is opened.
        let twice = r#"{"event":{"a":1},"event":{"b":2}}"#;
        assert_eq!(read(twice), Some((twice.len() - 1, Some(9), 2)));
        assert_eq!(read(r#"{"event":{"a":1,},"time":2}"#), None);
    }
}
