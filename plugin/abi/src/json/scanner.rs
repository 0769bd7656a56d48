//! The scanner ([`Scanner`]): validates an event as one JSON value and,
//! when it is an object, keeps its top-level members as spans with a hash
//! index of their keys, so a field lookup on the [`Object`] it answers is
//! one probe. Its state is reused from event to event, and the objects
//! index ([`crate::frame::index`]) writes it out on the host and rebuilds it
//! in the guest, which is why that module sees its fields.

use alloc::vec::Vec;

use super::flat::{Opened, only_ws_from, scan_flat, scan_flat_opening, top_value_end};
use super::parser::Parser;
use super::plan::{KeyedObject, NO_GROUP, PlanKeys};
use super::swar::{bytes_eq, key_hash};
use super::value::Nested;
use super::{Budget, Member, Object, OverBudget, PathPlan, ScanError, Span, Unlimited};

/// Reusable scanner state; keep one per rule instance.
#[derive(Debug, Default)]
pub struct Scanner {
    pub(crate) members: Vec<Member>,
    /// Per member, the [`key_hash`] of its raw key.
    pub(crate) hashes: Vec<u32>,
    /// Open-addressing index of the members by raw key (member index + 1;
    /// 0 is empty), so a field lookup is one probe, not a pass over every
    /// member; built only for more than [`LINEAR_MEMBERS`] members (fewer
    /// are compared by hash, in order).
    pub(crate) table: Vec<u32>,
    pub(crate) escaped_keys: bool,
    /// Per member: its key holds an escape (kept out of `table`).
    pub(crate) key_escaped: Vec<bool>,
    /// Offset of the last object's closing `}`, and whether it had members.
    pub(crate) close: usize,
    pub(crate) has_members: bool,
    /// With a [`PathPlan`]: the group that applied (`NO_GROUP`: none) and
    /// the value span of each of its paths.
    pub(crate) group: u32,
    pub(crate) slots: Vec<Span>,
    /// The host's objects index, for a rule that declared its keys: per
    /// id of its [`KeySet`](super::KeySet), one more than the index of the
    /// first kept member with that key (0: none), and the ids set for the
    /// object last kept (see [`KeyedObject`]).
    pub(crate) firsts: Vec<u32>,
    pub(crate) kept_ids: Vec<u32>,
    pub(crate) present: u64,
    pub(crate) nested: Nested,
}

/// Up to this many members a lookup compares the members' key hashes in
/// order instead of probing a table (cheaper than building one).
const LINEAR_MEMBERS: usize = 4;

impl Scanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates `src` as one JSON value (surrounding whitespace allowed) and,
    /// when it is an object, returns its members. UTF-8 is checked as part
    /// of the scan: outside strings only ASCII is valid JSON, and a string's
    /// non-ASCII sequences are checked where the string scan meets them.
    pub fn scan<'s, 'a>(&'s mut self, src: &'a [u8]) -> Result<Object<'s, 'a>, ScanError> {
        self.scan_inner(src, true)?;
        Ok(self.unplanned(src))
    }

    /// [`Scanner::scan`] without the key index an [`Object`]'s lookups
    /// use: the same verdict, and for an object its members as spans in
    /// `src`, for a caller that walks them (or only wants the verdict)
    /// rather than looks keys up.
    pub fn scan_members(&mut self, src: &[u8]) -> Result<&[Member], ScanError> {
        self.scan_inner(src, false)?;
        Ok(&self.members)
    }

    /// The JSON object at the start of `src` (whitespace before it
    /// allowed) and the offset right after it, where more may follow: for
    /// a stream of objects one after another, such as a Splunk HEC request
    /// body. Spans are offsets in `src`. `NotObject`: `src` starts with
    /// something else.
    pub fn scan_prefix<'s, 'a>(
        &'s mut self,
        src: &'a [u8],
    ) -> Result<(Object<'s, 'a>, usize), ScanError> {
        self.scan_prefix_by(src, true, scan_flat)
    }

    /// [`Scanner::scan_prefix`] of an envelope whose member `key` (its raw
    /// key; the first such member whose value is an object) has that
    /// object read member by member in the same pass into `inner`, spans
    /// from its start: what [`Scanner::scan`] of that value alone would find, which
    /// a source that must read each event anyway can hand on (see
    /// [`crate::frame::index::Prescanned`]). The envelope's answer is
    /// [`Scanner::scan_prefix`]'s; the [`Opened`] is there only when the
    /// value is an object that the fast path read (keys without escapes,
    /// the common event), not for every valid one. No key index is built
    /// for the envelope (its few members are walked, not looked up): the
    /// answer's lookups compare keys in order.
    pub fn scan_prefix_opening<'s, 'a>(
        &'s mut self,
        src: &'a [u8],
        key: &[u8],
        inner: &mut Vec<Member>,
    ) -> Result<(Object<'s, 'a>, usize, Option<Opened>), ScanError> {
        let mut opened = None;
        let (object, end) = self.scan_prefix_by(src, false, |b, members| {
            let (close, o) = scan_flat_opening(b, members, key, inner)?;
            opened = o;
            Some(close)
        })?;
        Ok((object, end, opened))
    }

    /// [`Scanner::scan_prefix`] with `fast` as its fast path; the key
    /// index built only `with_index`.
    #[inline(always)]
    fn scan_prefix_by<'s, 'a>(
        &'s mut self,
        src: &'a [u8],
        with_index: bool,
        fast: impl FnOnce(&[u8], &mut Vec<Member>) -> Option<usize>,
    ) -> Result<(Object<'s, 'a>, usize), ScanError> {
        let start = src
            .iter()
            .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
            .unwrap_or(src.len());
        if src.get(start) != Some(&b'{') {
            return Err(ScanError::NotObject);
        }
        self.members.clear();
        self.key_escaped.clear();
        self.escaped_keys = false;
        if let Some(close) = fast(src, &mut self.members) {
            // The fast path read it: its members are the object's.
            let src = src.get(..close + 1).unwrap_or_default();
            self.key_escaped.resize(self.members.len(), false);
            self.settle(src, close, with_index);
            return Ok((self.unplanned(src), close + 1));
        }
        let end = top_value_end(src, start)?;
        let src = src.get(..end).unwrap_or_default();
        self.scan_inner(src, with_index)?;
        Ok((self.unplanned(src), end))
    }

    /// Ends a scan of `src` whose members are read and whose closing brace
    /// is at `close`: the key index built `with_index`, else left empty
    /// (lookups then compare keys in order; `src` is not read).
    #[inline(always)]
    fn settle(&mut self, src: &[u8], close: usize, with_index: bool) {
        self.close = close;
        self.has_members = !self.members.is_empty();
        if with_index {
            self.index(src);
        } else {
            self.hashes.clear();
            self.table.clear();
        }
    }

    /// The object just scanned from `src`, with no plan applied.
    #[inline(always)]
    fn unplanned<'s, 'a>(&'s mut self, src: &'a [u8]) -> Object<'s, 'a> {
        self.group = NO_GROUP;
        self.slots.clear();
        self.object(src)
    }

    /// [`Scanner::scan`], then `plan` applied: which group the object
    /// belongs to and its paths' values ([`Object::group`], [`Object::slot`]).
    pub fn scan_planned<'s, 'a>(
        &'s mut self,
        src: &'a [u8],
        plan: &PathPlan,
    ) -> Result<Object<'s, 'a>, ScanError> {
        self.scan_inner(src, true)?;
        self.resolve(src, plan);
        Ok(self.object(src))
    }

    /// Applies `plan` to the object just scanned.
    pub(crate) fn resolve(&mut self, src: &[u8], plan: &PathPlan) {
        // Without a limit nothing is over it.
        let _ = self.resolve_within(src, plan, None, &mut Unlimited);
    }

    /// [`Scanner::resolve`] within a [`Budget`] (the host's); over it,
    /// no group applies. With `keys`, the plan's keys are found by their
    /// ids in `firsts` (the caller recorded them as it kept the members)
    /// unless a key holds an escape.
    pub(crate) fn resolve_within<B: Budget>(
        &mut self,
        src: &[u8],
        plan: &PathPlan,
        keys: Option<&PlanKeys>,
        work: &mut B,
    ) -> Result<(), OverBudget> {
        let mut slots = core::mem::take(&mut self.slots);
        let mut nested = core::mem::take(&mut self.nested);
        nested.forget();
        self.group = NO_GROUP;
        let keyed = keys.filter(|_| !self.escaped_keys).map(|keys| KeyedObject {
            keys,
            firsts: &self.firsts,
            present: self.present,
        });
        let got = plan.resolve(&self.object(src), keyed, &mut nested, &mut slots, work);
        self.slots = slots;
        self.nested = nested;
        if got.is_err() {
            self.slots.clear();
        }
        self.group = got?;
        Ok(())
    }

    /// A view of the object last scanned or loaded from `src`.
    pub(crate) fn object<'s, 'a>(&'s self, src: &'a [u8]) -> Object<'s, 'a> {
        Object {
            src,
            members: &self.members,
            hashes: &self.hashes,
            table: &self.table,
            escaped_keys: self.escaped_keys,
            has_members: self.has_members,
            group: self.group,
            slots: &self.slots,
            close: self.close,
        }
    }

    /// Scans `src` into this scanner's state; with `with_index` the key
    /// hashes and member table are built too (the host, which only lists
    /// members for an [objects index](crate::frame::index::index_batch), builds
    /// its own).
    pub(crate) fn scan_inner(&mut self, src: &[u8], with_index: bool) -> Result<(), ScanError> {
        self.members.clear();
        self.key_escaped.clear();
        self.escaped_keys = false;
        let fast = scan_flat(src, &mut self.members).filter(|&c| only_ws_from(src, c + 1));
        let close = match fast {
            Some(close) => {
                self.key_escaped.resize(self.members.len(), false);
                close
            }
            None => {
                self.members.clear();
                self.parse_members(src)?
            }
        };
        self.settle(src, close, with_index);
        Ok(())
    }

    /// Takes `members` and `close` as the object just scanned, as
    /// [`Scanner::scan_inner`] without its index leaves them: what a scan
    /// of the same bytes by the fast path found earlier (so no key holds
    /// an escape; see [`crate::frame::index::Prescanned`]).
    pub(crate) fn take_scanned(&mut self, members: &[Member], close: usize) {
        self.members.clear();
        self.members.extend_from_slice(members);
        self.key_escaped.clear();
        self.key_escaped.resize(members.len(), false);
        self.escaped_keys = false;
        self.settle(&[], close, false);
    }

    /// [`Scanner::scan`] by the full parser alone, without the fast path
    /// ([`flat`](super::flat)): the reference the fast path is tested
    /// against (the scanner's tests, the fuzz target `event_reader`).
    #[doc(hidden)]
    pub fn scan_reference<'s, 'a>(
        &'s mut self,
        src: &'a [u8],
    ) -> Result<Object<'s, 'a>, ScanError> {
        self.members.clear();
        self.key_escaped.clear();
        self.escaped_keys = false;
        let close = self.parse_members(src)?;
        self.settle(src, close, true);
        Ok(self.unplanned(src))
    }

    /// Reads `src` with the full parser into `members` and `key_escaped`
    /// (both empty); returns the offset of the closing `}`.
    fn parse_members(&mut self, src: &[u8]) -> Result<usize, ScanError> {
        let mut p = Parser::at(src, 0);
        p.ws();
        if p.peek() != Some(b'{') {
            // Tell "valid but not an object" apart from garbage.
            p.value(0)?;
            p.ws();
            return Err(if p.i == src.len() {
                ScanError::NotObject
            } else {
                ScanError::Malformed
            });
        }
        p.i += 1;
        p.ws();
        let close;
        if p.peek() == Some(b'}') {
            close = p.i;
            p.i += 1;
        } else {
            loop {
                p.ws();
                let escapes_before = p.escapes;
                let key = p.string()?;
                let escaped = p.escapes != escapes_before;
                self.escaped_keys |= escaped;
                self.key_escaped.push(escaped);
                p.ws();
                p.expect(b':')?;
                p.ws();
                let vs = p.i;
                p.value(1)?;
                self.members.push(Member {
                    key,
                    value: Span::of(vs, p.i),
                });
                p.ws();
                match p.next() {
                    Some(b',') => continue,
                    Some(b'}') => {
                        close = p.i - 1;
                        break;
                    }
                    _ => return Err(ScanError::Malformed),
                }
            }
        }
        p.ws();
        if p.i != src.len() {
            return Err(ScanError::Malformed);
        }
        Ok(close)
    }
}

impl Scanner {
    /// Hashes the keys of the members just scanned, and fills `table`
    /// when there are many; a repeated key keeps its first occurrence.
    fn index(&mut self, src: &[u8]) {
        self.hashes.clear();
        self.hashes
            .extend(self.members.iter().map(|m| key_hash(&src[m.key.range()])));
        if self.escaped_keys {
            self.table.clear(); // every lookup compares keys
        } else {
            self.fill_table(src);
        }
    }

    /// Builds `table` from `members` and `hashes` (none for few members).
    pub(crate) fn fill_table(&mut self, src: &[u8]) {
        self.table.clear();
        if self.members.len() <= LINEAR_MEMBERS {
            return;
        }
        let cap = (self.members.len() * 2).next_power_of_two();
        self.table.resize(cap, 0);
        for (i, &hash) in self.hashes.iter().enumerate() {
            insert(&mut self.table, &self.members, src, i, hash);
        }
    }
}

/// Puts member `i` (key hash `hash`) into the open-addressing `table`
/// (power-of-two length); a key already there keeps its first occurrence.
fn insert(table: &mut [u32], members: &[Member], src: &[u8], i: usize, hash: u32) {
    let k = &src[members[i].key.range()];
    let mask = table.len() - 1;
    let mut at = hash as usize & mask;
    loop {
        match table[at] {
            0 => {
                table[at] = i as u32 + 1;
                return;
            }
            j if bytes_eq(&src[members[j as usize - 1].key.range()], k) => return,
            _ => at = (at + 1) & mask,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::MAX_DEPTH;
    use super::*;
    use alloc::string::String;

    fn scan_ok(s: &str) -> Vec<(String, String)> {
        let mut sc = Scanner::new();
        let o = sc.scan(s.as_bytes()).unwrap();
        o.members()
            .iter()
            .map(|m| {
                (
                    String::from_utf8(s.as_bytes()[m.key.range()].to_vec()).unwrap(),
                    String::from_utf8(s.as_bytes()[m.value.range()].to_vec()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn members_and_spans() {
        let m = scan_ok(r#" {"a": 1, "b" : {"c":[1,2,{"d":null}]}, "e":"x\"y"} "#);
        assert_eq!(m[0], ("a".into(), "1".into()));
        assert_eq!(m[1].1, r#"{"c":[1,2,{"d":null}]}"#);
        assert_eq!(m[2].1, r#""x\"y""#);
    }

    #[test]
    fn close_brace_offset() {
        let s = br#"{"a":1}  "#;
        let mut sc = Scanner::new();
        assert_eq!(sc.scan(s).unwrap().close, 6);
        let s = b"{ }";
        assert_eq!(sc.scan(s).unwrap().close, 2);
    }

    #[test]
    fn rejects_malformed() {
        let mut sc = Scanner::new();
        for bad in [
            "",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":tru}",
            "{\"a\":\"\\x\"}",
            "{\"a\":1} x",
            "{\"a\":\"\u{1}\"}",
            "{a:1}",
            "{\"a\":[1,]}",
            "{\"a\":-}",
        ] {
            assert_eq!(
                sc.scan(bad.as_bytes()).unwrap_err(),
                ScanError::Malformed,
                "{bad:?}"
            );
        }
        assert_eq!(sc.scan(b"[1,2]").unwrap_err(), ScanError::NotObject);
        assert_eq!(sc.scan(b"\"str\"").unwrap_err(), ScanError::NotObject);
        assert_eq!(
            sc.scan(b"{\"a\":\"\xff\"}").unwrap_err(),
            ScanError::Malformed
        );
    }

    /// Strings of random pieces (quotes, escapes, controls, non-ASCII, runs
    /// longer than the eight-byte fast path) at random offsets: the scan's
    /// verdict and the string's value agree with serde_json.
    #[test]
    fn strings_agree_with_serde_json() {
        let pieces: [&[u8]; 14] = [
            b"a",
            b" ",
            b"\"",
            b"\\",
            b"\\\"",
            b"\\n",
            b"\\u00e9",
            b"\x01",
            b"\x1f",
            b"\x7f",
            "é".as_bytes(),
            b"\xff",
            b"abcdefgh",
            b"\\/",
        ];
        let mut seed = 0x5eed_1234_abcd_ef01u64;
        let mut sc = Scanner::new();
        let mut valid = 0;
        for _ in 0..100_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut ev = b"{\"k\":\"".to_vec();
            ev.extend(core::iter::repeat_n(b'x', (seed % 9) as usize));
            for i in 0..(seed >> 8) % 12 {
                ev.extend_from_slice(pieces[((seed >> (12 + 4 * i)) % 14) as usize]);
            }
            ev.extend_from_slice(b"\"}");
            let want = serde_json::from_slice::<serde_json::Value>(&ev);
            let got = sc.scan(&ev);
            assert_eq!(
                got.is_ok(),
                want.is_ok(),
                "{:?}",
                String::from_utf8_lossy(&ev)
            );
            if let (Ok(o), Ok(v)) = (got, want)
                && o.members().len() == 1
            {
                valid += 1;
                let text = o.get("k").and_then(|x| x.as_str().map(|s| s.into_owned()));
                assert_eq!(
                    text.as_deref(),
                    v["k"].as_str(),
                    "{:?}",
                    String::from_utf8_lossy(&ev)
                );
            }
        }
        assert!(valid > 10_000, "{valid} valid strings");
    }

    /// UTF-8 is checked inside strings (where non-ASCII may appear) and
    /// refused anywhere else; the verdicts are std's.
    #[test]
    fn utf8_in_and_out_of_strings() {
        let mut sc = Scanner::new();
        let seqs: [&[u8]; 16] = [
            "é".as_bytes(),
            "日本".as_bytes(),
            "🦀".as_bytes(),
            "\u{7ff}\u{800}\u{ffff}\u{10000}\u{10ffff}".as_bytes(),
            b"\x80",             // lone continuation byte
            b"\xc0\x80",         // overlong NUL
            b"\xc1\xbf",         // overlong
            b"\xe0\x80\x80",     // overlong 3-byte
            b"\xed\xa0\x80",     // surrogate
            b"\xf4\x90\x80\x80", // above U+10FFFF
            b"\xf5\x80\x80\x80",
            b"\xff",
            b"\xc3",         // cut: the quote follows
            b"\xe6\x97",     // cut
            b"\xc3\x28",     // bad continuation
            b"\xf0\x9f\xa6", // cut 4-byte
        ];
        for seq in seqs {
            let valid = core::str::from_utf8(seq).is_ok();
            // Inside a key and inside a value, at every alignment the
            // eight-byte fast path can meet it.
            for pad in 0..9 {
                let p = "a".repeat(pad);
                for (pre, post) in [
                    (format!("{{\"{p}"), "\":1}"),
                    (format!("{{\"k\":\"{p}"), "\"}"),
                    (format!("{{\"k\":[\"{p}"), "xxxxxxxxx\"]}"),
                ] {
                    let mut ev = pre.into_bytes();
                    ev.extend_from_slice(seq);
                    ev.extend_from_slice(post.as_bytes());
                    assert_eq!(
                        sc.scan(&ev).is_ok(),
                        valid,
                        "{:?}",
                        String::from_utf8_lossy(&ev)
                    );
                }
            }
            // Outside a string even valid UTF-8 is not JSON.
            let mut ev = b"{\"k\":1".to_vec();
            ev.extend_from_slice(seq);
            ev.push(b'}');
            assert_eq!(sc.scan(&ev).unwrap_err(), ScanError::Malformed);
            let mut ev = b"{\"k\":1}".to_vec();
            ev.extend_from_slice(seq);
            assert_eq!(sc.scan(&ev).unwrap_err(), ScanError::Malformed);
        }
        // A valid sequence cut by the end of the event.
        assert_eq!(
            sc.scan(b"{\"k\":\"\xe6\x97").unwrap_err(),
            ScanError::Malformed
        );
    }

    /// A random JSON value (depth-limited) from pieces that exercise both
    /// paths: escapes and non-ASCII in keys and strings, every number form,
    /// literals, whitespace, nesting.
    fn random_value(seed: &mut u64, depth: u32, out: &mut Vec<u8>) {
        let mut next = || {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed
        };
        const STRINGS: [&str; 8] = [
            r#""a""#,
            r#""dest_ip""#,
            r#""""#,
            r#""a\"b""#,
            r#""\u00e9x""#,
            "\"é日\"",
            r#""abcdefghijklmnopqrstuvwxyz0123456789""#,
            r#""a.b""#,
        ];
        const SCALARS: [&str; 9] = [
            "0", "-1", "12.5", "1e9", "-0.25E-3", "true", "false", "null", "203",
        ];
        const WS: [&str; 4] = ["", "", " ", " \t\r\n "];
        let r = next();
        let ws = |k: u64| WS[(k % 4) as usize].as_bytes();
        match r % 8 {
            0 | 1 if depth < 5 => {
                let object = r % 2 == 0;
                out.push(if object { b'{' } else { b'[' });
                let n = (r >> 8) % 5;
                for k in 0..n {
                    out.extend_from_slice(ws(r >> (12 + k)));
                    if object {
                        out.extend_from_slice(STRINGS[((r >> (20 + k)) % 8) as usize].as_bytes());
                        out.extend_from_slice(ws(r >> (30 + k)));
                        out.push(b':');
                    }
                    random_value(seed, depth + 1, out);
                    if k + 1 < n {
                        out.push(b',');
                    }
                }
                out.extend_from_slice(ws(r >> 40));
                out.push(if object { b'}' } else { b']' });
            }
            2..=4 => out.extend_from_slice(STRINGS[((r >> 8) % 8) as usize].as_bytes()),
            _ => out.extend_from_slice(SCALARS[((r >> 8) % 9) as usize].as_bytes()),
        }
    }

    /// The fast path answers as the full parser does (verdict, members,
    /// spans, closing brace, escaped keys) on random objects, half of them
    /// with one byte changed, removed or added.
    #[test]
    fn the_fast_path_answers_as_the_full_parser() {
        let mut seed = 0x0123_4567_89ab_cdefu64;
        let (mut fast, mut full) = (Scanner::new(), Scanner::new());
        let mut valid = 0;
        for round in 0..60_000u64 {
            let mut ev = b"{".to_vec();
            let n = round % 7;
            for k in 0..n {
                random_value(&mut seed, 0, &mut Vec::new()); // vary the stream
                let key = [r#""k""#, r#""dest_port""#, r#""a\"k""#, "\"é\"", r#""""#];
                ev.extend_from_slice(key[((seed >> 5) % 5) as usize].as_bytes());
                ev.push(b':');
                random_value(&mut seed, 1, &mut ev);
                if k + 1 < n {
                    ev.push(b',');
                }
            }
            ev.push(b'}');
            if round % 2 == 1 && !ev.is_empty() {
                let at = (seed >> 17) as usize % ev.len();
                let bytes = b"{}[]:,\"\\ 0a-e.\x01\xff";
                let byte = bytes[(seed >> 40) as usize % bytes.len()];
                match (seed >> 50) % 3 {
                    0 => ev[at] = byte,
                    1 => {
                        ev.remove(at);
                    }
                    _ => ev.insert(at, byte),
                }
            }
            let a = fast.scan(&ev).map(|o| (o.members().to_vec(), o.close));
            let b = full
                .scan_reference(&ev)
                .map(|o| (o.members().to_vec(), o.close));
            let text = alloc::format!("{:?}", String::from_utf8_lossy(&ev));
            match (a, b) {
                (Ok((ma, ca)), Ok((mb, cb))) => {
                    valid += 1;
                    assert_eq!(ca, cb, "{text}");
                    assert_eq!(ma.len(), mb.len(), "{text}");
                    for (x, y) in ma.iter().zip(&mb) {
                        assert_eq!((x.key, x.value), (y.key, y.value), "{text}");
                    }
                    assert_eq!(fast.escaped_keys, full.escaped_keys, "{text}");
                    assert_eq!(fast.key_escaped, full.key_escaped, "{text}");
                }
                (a, b) => assert_eq!(a.err(), b.err(), "{text}"),
            }
        }
        assert!(valid > 20_000, "{valid} valid events");
    }

    #[test]
    fn objects_one_after_another() {
        let s = br#" {"a":1,"b":{"c":[{}]}}{"x":"}"}  {"y":"\u0041"}
[1]"#;
        let mut sc = Scanner::new();
        let mut at = 0;
        let mut got = Vec::new();
        while let Ok((o, end)) = sc.scan_prefix(&s[at..]) {
            let keys: Vec<String> = o
                .members()
                .iter()
                .map(|m| String::from_utf8(s[at..][m.key.range()].to_vec()).unwrap())
                .collect();
            got.push(keys.join(","));
            at += end;
        }
        assert_eq!(got, ["a,b", "x", "y"]);
        assert_eq!(sc.scan_prefix(&s[at..]).unwrap_err(), ScanError::NotObject);
        assert_eq!(
            sc.scan_prefix(b"{\"a\":}{}").unwrap_err(),
            ScanError::Malformed
        );
        assert_eq!(sc.scan_prefix(b"   ").unwrap_err(), ScanError::NotObject);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let s = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let mut sc = Scanner::new();
        assert_eq!(sc.scan(s.as_bytes()).unwrap_err(), ScanError::TooDeep);
        let ok = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(sc.scan(ok.as_bytes()).is_ok());
    }

    /// An envelope read with its event opened answers as read without,
    /// at the depth limit too (the event's members sit one level lower in
    /// the envelope than on their own line), and the event's members are
    /// its own scan's.
    #[test]
    fn an_opened_event_is_read_as_its_envelope_and_as_itself() {
        let spans = |o: Object<'_, '_>| (o.members().to_vec(), o.close);
        let (mut sc, mut inner) = (Scanner::new(), Vec::new());
        let mut refused = 0;
        for n in (MAX_DEPTH - 4)..=(MAX_DEPTH + 1) {
            let event = format!(r#"{{"k":1,"a":{}{}}}"#, "[".repeat(n), "]".repeat(n));
            let envelope = format!(r#"{{"host":"h","event":{event},"time":2}}"#);
            let opening = sc
                .scan_prefix_opening(envelope.as_bytes(), b"event", &mut inner)
                .map(|(o, end, opened)| (spans(o), end, opened));
            let plain = sc
                .scan_prefix(envelope.as_bytes())
                .map(|(o, end)| (spans(o), end));
            assert_eq!(opening.clone().map(|(o, end, _)| (o, end)), plain, "{n}");
            let alone = sc.scan(event.as_bytes()).map(spans);
            match opening {
                Ok((_, _, Some(o))) => {
                    assert_eq!(o.start, 20);
                    assert_eq!(alone, Ok((inner.clone(), o.close)), "{n}");
                }
                Ok((_, _, None)) => panic!("not opened at {n}"),
                Err(e) => {
                    assert_eq!(e, ScanError::TooDeep, "{n}");
                    assert!(n >= MAX_DEPTH - 1, "refused at {n}");
                    refused += 1;
                }
            }
        }
        assert_eq!(refused, 3, "the limit is inside the range tried");
    }

    /// An envelope read with its event opened has no key index, and its
    /// lookups (by comparing keys in order) answer as the index does:
    /// more members than are compared without one, a key given twice (the
    /// first counts), escaped keys, and on the full parser's path.
    #[test]
    fn an_opened_envelope_looks_keys_up_without_an_index() {
        let (mut sc, mut plain, mut inner) = (Scanner::new(), Scanner::new(), Vec::new());
        for envelope in [
            r#"{"time":1,"host":"h","source":"s","sourcetype":"t","index":"i","event":{"a":1},"host":"x"}"#,
            r#"{"time":1,"event":"text","fields":{"f":[1]},"index":"i","host":"h"}"#,
            r#"{"ti\u006de":1,"host":"h","source":"s","sourcetype":"t","index":"i","event":{}}"#,
            r#"{ "time" : 1 , "host" : "h" , "event" : { "a\u0062" : 2 } }"#,
            r#"{"event":{"a":1}}"#,
            "{}",
        ] {
            let (got, end, _) = sc
                .scan_prefix_opening(envelope.as_bytes(), b"event", &mut inner)
                .unwrap();
            let (want, want_end) = plain.scan_prefix(envelope.as_bytes()).unwrap();
            assert!(got.table.is_empty() && got.hashes.is_empty(), "{envelope}");
            assert_eq!(end, want_end, "{envelope}");
            for key in ["time", "host", "event", "index", "fields", "none", "ab"] {
                let (g, w) = (got.get(key), want.get(key));
                assert_eq!(g.map(|v| v.raw), w.map(|v| v.raw), "{envelope}: {key}");
            }
        }
    }

    /// Members without the key index: what `scan` finds, verdict and all.
    #[test]
    fn members_alone_are_the_scans() {
        let (mut sc, mut alone) = (Scanner::new(), Scanner::new());
        for text in [
            r#"{"a":1,"b":{"c":[1,2]},"d":"x\"y","e":null,"f":true,"g":-1.5e3}"#,
            r#" { "k\u0065y" : 1 , "key":2 } "#,
            "{}",
            "[1]",
            r#"{"a":1,"#,
            "",
        ] {
            let want = sc.scan(text.as_bytes()).map(|o| o.members().to_vec());
            let got = alone.scan_members(text.as_bytes()).map(<[Member]>::to_vec);
            assert_eq!(got, want, "{text}");
        }
    }
}
