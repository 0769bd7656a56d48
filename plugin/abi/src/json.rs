//! A validating JSON scanner that reads an event's top-level members as byte
//! spans and finds fields by path, without building a DOM or allocating per
//! event. Values stay as raw slices of the event; a rule converts only the
//! few it needs. Spans are what let an enrichment be spliced into the event's
//! original bytes.
//!
//! Both sides use it: a guest scans the events it is given, and for a plugin
//! that reads events as objects (see [`crate::export::PROCESS_OBJECTS`]) the
//! host scans each event natively, once, and hands the guest an
//! [objects index](index_batch) instead, so the sandboxed rule starts from
//! spans rather than bytes.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

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

/// A byte range `[start, end)` within the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    fn of(start: usize, end: usize) -> Span {
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
#[derive(Debug, Clone, Copy)]
pub struct Member {
    pub key: Span,
    pub value: Span,
}

/// Reusable scanner state; keep one per rule instance.
#[derive(Debug, Default)]
pub struct Scanner {
    members: Vec<Member>,
    /// Per member, the [`key_hash`] of its raw key.
    hashes: Vec<u32>,
    /// Open-addressing index of the members by raw key (member index + 1;
    /// 0 is empty), so a field lookup is one probe, not a pass over every
    /// member; built only for more than [`LINEAR_MEMBERS`] members (fewer
    /// are compared by hash, in order).
    table: Vec<u32>,
    escaped_keys: bool,
    /// Per member: its key holds an escape (kept out of `table`).
    key_escaped: Vec<bool>,
    /// Offset of the last object's closing `}`, and whether it had members.
    close: usize,
    has_members: bool,
    /// With a [`PathPlan`]: the group that applied (`NO_GROUP`: none) and
    /// the value span of each of its paths.
    group: u32,
    slots: Vec<Span>,
}

/// Up to this many members a lookup compares the members' key hashes in
/// order instead of probing a table (cheaper than building one).
const LINEAR_MEMBERS: usize = 4;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `x` that is zero. Exact for the lowest
/// zero byte (a borrow can only mark bytes above it).
#[inline]
fn zero_bytes(x: u64) -> u64 {
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
fn key_hash(b: &[u8]) -> u32 {
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

/// A scanned event: a valid JSON object with its top-level members.
#[derive(Debug)]
pub struct Object<'s, 'a> {
    src: &'a [u8],
    members: &'s [Member],
    /// Per member, its key's hash; empty when not computed (lookups then
    /// compare keys).
    hashes: &'s [u32],
    table: &'s [u32],
    escaped_keys: bool,
    /// The object has at least one member (from an objects index that lists
    /// only the keys a rule reads, `members` can be empty when it does not).
    has_members: bool,
    /// The [`PathPlan`] group that applies and its paths' spans.
    group: u32,
    slots: &'s [Span],
    /// Offset of the closing `}`.
    pub close: usize,
}

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
        self.group = NO_GROUP;
        self.slots.clear();
        Ok(self.object(src))
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
    fn resolve(&mut self, src: &[u8], plan: &PathPlan) {
        let mut slots = core::mem::take(&mut self.slots);
        self.group = NO_GROUP;
        self.group = plan.resolve(&self.object(src), &mut slots);
        self.slots = slots;
    }

    /// A view of the object last scanned or loaded from `src`.
    fn object<'s, 'a>(&'s self, src: &'a [u8]) -> Object<'s, 'a> {
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
    /// members for an [objects index](index_batch), builds its own).
    fn scan_inner(&mut self, src: &[u8], with_index: bool) -> Result<(), ScanError> {
        self.members.clear();
        self.key_escaped.clear();
        self.escaped_keys = false;
        let mut p = Parser {
            b: src,
            i: 0,
            escapes: 0,
        };
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
        self.close = close;
        self.has_members = !self.members.is_empty();
        if with_index {
            self.index(src);
        } else {
            self.hashes.clear();
            self.table.clear();
        }
        Ok(())
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
    fn fill_table(&mut self, src: &[u8]) {
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

impl<'s, 'a> Object<'s, 'a> {
    /// The first member whose key is `key` (whose [`key_hash`] is `hash`):
    /// one probe of the index, and a pass over the members only when some
    /// key holds escapes.
    fn find(&self, key: &str, hash: u32) -> Option<Member> {
        if self.escaped_keys || self.hashes.len() != self.members.len() {
            return self.find_by_keys(key);
        }
        let want = key.as_bytes();
        if self.table.is_empty() {
            return self
                .hashes
                .iter()
                .zip(self.members)
                .find(|(h, m)| **h == hash && bytes_eq(&self.src[m.key.range()], want))
                .map(|(_, m)| *m);
        }
        let mask = self.table.len() - 1;
        let mut at = hash as usize & mask;
        loop {
            match self.table[at] {
                0 => return None,
                j => {
                    let m = self.members[j as usize - 1];
                    if bytes_eq(&self.src[m.key.range()], want) {
                        return Some(m);
                    }
                    at = (at + 1) & mask;
                }
            }
        }
    }

    /// The first member, in document order, whose key decodes to `key`:
    /// for objects where some key holds escapes (or with no key hashes).
    #[cold]
    #[inline(never)]
    fn find_by_keys(&self, key: &str) -> Option<Member> {
        self.members
            .iter()
            .copied()
            .find(|m| key_eq(&self.src[m.key.range()], key))
    }

    pub fn src(&self) -> &'a [u8] {
        self.src
    }

    /// The members, in document order. From an objects index built for a
    /// rule that declared the keys it reads ([`KeySet`]), only the members
    /// with those keys (and any whose key holds an escape).
    pub fn members(&self) -> &'s [Member] {
        self.members
    }

    /// Whether the object has no member at all (also when it came from an
    /// objects index that lists only the keys the rule reads).
    pub fn is_empty(&self) -> bool {
        !self.has_members
    }

    /// Which group of the rule's [`PathPlan`] applies to this object
    /// (`None`: none does, or no plan).
    pub fn group(&self) -> Option<usize> {
        (self.group != NO_GROUP).then_some(self.group as usize)
    }

    /// The value of path `i` of that group ([`Object::get`] of it), if
    /// present.
    pub fn slot(&self, i: usize) -> Option<Value<'a>> {
        let s = self.slots.get(i)?;
        // The span was checked against the event when it was made or loaded.
        (s.start != ABSENT).then(|| Value {
            raw: self.src.get(s.range()).unwrap_or_default(),
        })
    }

    /// The top-level member named exactly `key`, if any (the first one).
    pub fn member(&self, key: &str) -> Option<Member> {
        self.find(key, key_hash(key.as_bytes()))
    }

    /// The top-level member named exactly `path` (not split at dots).
    pub fn member_at(&self, path: &Path) -> Option<Member> {
        self.find(&path.text, path.hash)
    }

    /// Looks up a dotted path. A key that itself contains dots (Zeek's
    /// `"id.resp_h"`) is found as well as nested objects (`destination.ip`);
    /// the literal key is tried first, then each split point left to right.
    pub fn get(&self, path: &str) -> Option<Value<'a>> {
        let heads = path
            .match_indices('.')
            .map(|(dot, _)| (dot, key_hash(&path.as_bytes()[..dot])));
        self.resolve(path, key_hash(path.as_bytes()), heads)
    }

    /// [`Object::get`] with a path prepared ahead: nothing is hashed or
    /// searched for dots per lookup.
    pub fn get_path(&self, path: &Path) -> Option<Value<'a>> {
        self.resolve(&path.text, path.hash, path.heads.iter().copied())
    }

    /// `path` (hash `hash`) as a key, then split at each of `heads` (a dot's
    /// offset and the hash of the part before it).
    fn resolve(
        &self,
        path: &str,
        hash: u32,
        heads: impl Iterator<Item = (usize, u32)>,
    ) -> Option<Value<'a>> {
        let value = |m: Member| Value {
            raw: &self.src[m.value.range()],
        };
        if let Some(m) = self.find(path, hash) {
            return Some(value(m));
        }
        for (dot, hash) in heads {
            if let Some(m) = self.find(&path[..dot], hash)
                && let Some(found) = value(m).get(&path[dot + 1..])
            {
                return Some(found);
            }
        }
        None
    }
}

/// Field paths a rule reads, in groups, one per shape of event it knows
/// (a schema preset, say): for each event the first group one of whose
/// `when` paths is present applies (a group without `when` paths always
/// does), and each of that group's `paths` is looked up ([`Object::get`]
/// semantics). A rule then reads [`Object::group`] and [`Object::slot`]
/// instead of looking fields up. In the sandbox the host does this
/// natively, with the event scan, and hands the guest only the spans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathPlan {
    groups: Vec<PathGroup>,
}

/// One group of a [`PathPlan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathGroup {
    when: Vec<Path>,
    paths: Vec<Path>,
}

impl PathGroup {
    pub fn when(&self) -> impl Iterator<Item = &str> {
        self.when.iter().map(Path::as_str)
    }

    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.paths.iter().map(Path::as_str)
    }
}

/// A path that is not present (both ends of its span).
const ABSENT: u32 = u32::MAX;
/// No group of the plan applies.
const NO_GROUP: u32 = u32::MAX;

impl PathPlan {
    pub fn new() -> PathPlan {
        PathPlan::default()
    }

    /// Adds a group; returns its index.
    pub fn add_group<S: AsRef<str>>(&mut self, when: &[S], paths: &[S]) -> usize {
        let p = |v: &[S]| v.iter().map(|s| Path::new(s.as_ref())).collect();
        self.groups.push(PathGroup {
            when: p(when),
            paths: p(paths),
        });
        self.groups.len() - 1
    }

    pub fn groups(&self) -> &[PathGroup] {
        &self.groups
    }

    /// Every top-level key a lookup of the plan may touch.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.groups
            .iter()
            .flat_map(|g| g.when.iter().chain(&g.paths))
            .flat_map(|p| KeySet::path_keys(p.as_str()))
    }

    /// The group that applies to `obj`, and into `spans` the value span of
    /// each of its paths (`ABSENT` ends when not present).
    fn resolve(&self, obj: &Object<'_, '_>, spans: &mut Vec<Span>) -> u32 {
        spans.clear();
        let Some(at) = self
            .groups
            .iter()
            .position(|g| g.when.is_empty() || g.when.iter().any(|p| obj.get_path(p).is_some()))
        else {
            return NO_GROUP;
        };
        let base = obj.src.as_ptr() as usize;
        spans.extend(self.groups[at].paths.iter().map(|p| match obj.get_path(p) {
            Some(v) => {
                let start = v.raw.as_ptr() as usize - base;
                Span::of(start, start + v.raw.len())
            }
            None => Span {
                start: ABSENT,
                end: ABSENT,
            },
        }));
        at as u32
    }
}

/// A field path prepared once for [`Object::get_path`]: the hashes of the
/// top-level keys it may match are computed ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    text: String,
    hash: u32,
    /// Each dot's offset, with the hash of the part before it.
    heads: Vec<(usize, u32)>,
}

impl Path {
    pub fn new(path: &str) -> Path {
        Path {
            text: path.into(),
            hash: key_hash(path.as_bytes()),
            heads: path
                .match_indices('.')
                .map(|(dot, _)| (dot, key_hash(&path.as_bytes()[..dot])))
                .collect(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Slice equality without a call to `memcmp`, which in a guest is a byte
/// loop: keys are short, so eight bytes at a time and a tail.
#[inline]
fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
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

fn lookup<'a>(
    src: &'a [u8],
    members: impl Iterator<Item = (Span, Span)> + Clone,
    path: &str,
) -> Option<Value<'a>> {
    for (k, v) in members.clone() {
        if key_eq(&src[k.range()], path) {
            return Some(Value {
                raw: &src[v.range()],
            });
        }
    }
    for (dot, _) in path.match_indices('.') {
        let (head, rest) = (&path[..dot], &path[dot + 1..]);
        for (k, v) in members.clone() {
            if key_eq(&src[k.range()], head) {
                let val = Value {
                    raw: &src[v.range()],
                };
                if let Some(found) = val.get(rest) {
                    return Some(found);
                }
            }
        }
    }
    None
}

/// Compares a raw (possibly escaped) key with `want`. An escape sequence is
/// always longer than the character it stands for, so a raw key of the same
/// length can only match byte for byte, and a shorter one never.
pub fn key_eq(raw: &[u8], want: &str) -> bool {
    let w = want.as_bytes();
    if raw.len() == w.len() {
        return raw == w;
    }
    raw.len() > w.len() && raw.contains(&b'\\') && unescape(raw).is_some_and(|s| s == want)
}

/// A raw JSON value inside an already validated event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Value<'a> {
    pub raw: &'a [u8],
}

impl<'a> Value<'a> {
    pub fn is_null(&self) -> bool {
        self.raw == b"null"
    }

    pub fn is_object(&self) -> bool {
        self.raw.first() == Some(&b'{')
    }

    /// A string value, unescaped (borrowed when it has no escapes).
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        let r = self.raw;
        if r.len() < 2 || r[0] != b'"' {
            return None;
        }
        let inner = &r[1..r.len() - 1];
        if find_byte(inner, b'\\').is_none() {
            return core::str::from_utf8(inner).ok().map(Cow::Borrowed);
        }
        unescape(inner).map(Cow::Owned)
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.raw {
            b"true" => Some(true),
            b"false" => Some(false),
            _ => None,
        }
    }

    /// A JSON number's text, when the value is a number.
    pub fn as_number_text(&self) -> Option<&'a str> {
        match self.raw.first() {
            Some(b'-' | b'0'..=b'9') => core::str::from_utf8(self.raw).ok(),
            _ => None,
        }
    }

    /// The elements of an array value (empty for non-arrays).
    pub fn array_items(&self) -> impl Iterator<Item = Value<'a>> + 'a {
        let raw = self.raw;
        let mut p = Parser {
            b: raw,
            i: 0,
            escapes: 0,
        };
        let is_array = p.peek() == Some(b'[');
        if is_array {
            p.i = 1;
        }
        let mut done = !is_array;
        core::iter::from_fn(move || {
            if done {
                return None;
            }
            p.ws();
            if p.peek() == Some(b']') {
                done = true;
                return None;
            }
            let s = p.i;
            if p.value(1).is_err() {
                done = true;
                return None;
            }
            let v = Value { raw: &raw[s..p.i] };
            p.ws();
            if p.next() != Some(b',') {
                done = true;
            }
            Some(v)
        })
    }

    /// Looks up a dotted path inside an object value.
    pub fn get(&self, path: &str) -> Option<Value<'a>> {
        if !self.is_object() {
            return None;
        }
        let raw = self.raw;
        lookup(
            raw,
            ObjectMembers {
                p: Parser {
                    b: raw,
                    i: 1,
                    escapes: 0,
                },
                done: false,
            },
            path,
        )
    }
}

/// Iterates the members of a validated object value.
#[derive(Clone)]
struct ObjectMembers<'a> {
    p: Parser<'a>,
    done: bool,
}

impl Iterator for ObjectMembers<'_> {
    type Item = (Span, Span);
    fn next(&mut self) -> Option<(Span, Span)> {
        if self.done {
            return None;
        }
        let p = &mut self.p;
        p.ws();
        if p.peek() == Some(b'}') {
            self.done = true;
            return None;
        }
        let item = (|| {
            let k = p.string().ok()?;
            p.ws();
            p.expect(b':').ok()?;
            p.ws();
            let vs = p.i;
            p.value(1).ok()?;
            let v = Span::of(vs, p.i);
            p.ws();
            if p.next() != Some(b',') {
                return Some((k, v, true));
            }
            Some((k, v, false))
        })();
        match item {
            Some((k, v, last)) => {
                self.done = last;
                Some((k, v))
            }
            None => {
                self.done = true;
                None
            }
        }
    }
}

/// Decodes a JSON string's inner bytes (without quotes).
pub fn unescape(inner: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let c = inner[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let e = *inner.get(i + 1)?;
        i += 2;
        let ch = match e {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(inner.get(i..i + 4)?)?;
                i += 4;
                let cp = if (0xD800..0xDC00).contains(&hi) {
                    // A surrogate pair.
                    if inner.get(i..i + 2) != Some(b"\\u") {
                        return None;
                    }
                    let lo = hex4(inner.get(i + 2..i + 6)?)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                char::from_u32(cp)?
            }
            _ => return None,
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    String::from_utf8(out).ok()
}

fn hex4(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b {
        v = v * 16 + (c as char).to_digit(16)?;
    }
    Some(v)
}

/// Whether `b` holds a byte a JSON string must escape (`"`, `\\` or a
/// control character), eight bytes at a time.
fn needs_escape(b: &[u8]) -> bool {
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
        let special = zero_bytes(v ^ (ONES * b'"' as u64))
            | zero_bytes(v ^ (ONES * b'\\' as u64))
            | (v.wrapping_sub(ONES * 0x20) & !v & HIGH);
        if special != 0 {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&c| c < 0x20 || c == b'"' || c == b'\\')
}

/// Writes `s` as a JSON string (with quotes) to `out`.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut last = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[last..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 15) as usize]);
                last = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[last..i]);
        out.extend_from_slice(esc);
        last = i + 1;
    }
    out.extend_from_slice(&bytes[last..]);
    out.push(b'"');
}

#[derive(Clone)]
struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    /// Escape sequences seen so far.
    escapes: u32,
}

impl Parser<'_> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        self.i += 1;
        c
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), ScanError> {
        if self.next() == Some(c) {
            Ok(())
        } else {
            Err(ScanError::Malformed)
        }
    }

    /// A string; returns the span between the quotes.
    fn string(&mut self) -> Result<Span, ScanError> {
        self.expect(b'"')?;
        let start = self.i;
        loop {
            // Fast path over plain ASCII: eight bytes at a time while none
            // of them is a quote, a backslash, a control character or
            // non-ASCII (SWAR).
            while let Some(chunk) = self.b.get(self.i..self.i + 8) {
                let v = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
                let special = zero_bytes(v ^ (ONES * b'"' as u64))
                    | zero_bytes(v ^ (ONES * b'\\' as u64))
                    | (v.wrapping_sub(ONES * 0x20) & !v & HIGH)
                    | (v & HIGH);
                if special != 0 {
                    // The lowest flagged byte is exact in each term, so it is
                    // the first special byte: go straight to it.
                    self.i += (special.trailing_zeros() / 8) as usize;
                    break;
                }
                self.i += 8;
            }
            while let Some(&c) = self.b.get(self.i) {
                if c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c) {
                    break;
                }
                self.i += 1;
            }
            match self.next() {
                Some(b'"') => return Ok(Span::of(start, self.i - 1)),
                Some(lead @ 0x80..) => {
                    // One UTF-8 sequence; std decides overlongs, surrogates
                    // and the upper bound.
                    let len = match lead {
                        0xC2..=0xDF => 2,
                        0xE0..=0xEF => 3,
                        0xF0..=0xF4 => 4,
                        _ => return Err(ScanError::Malformed),
                    };
                    let at = self.i - 1;
                    let seq = self.b.get(at..at + len).ok_or(ScanError::Malformed)?;
                    if core::str::from_utf8(seq).is_err() {
                        return Err(ScanError::Malformed);
                    }
                    self.i = at + len;
                }
                Some(b'\\') => {
                    self.escapes += 1;
                    match self.next() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {}
                        Some(b'u') => {
                            let h = self.b.get(self.i..self.i + 4).ok_or(ScanError::Malformed)?;
                            if !h.iter().all(u8::is_ascii_hexdigit) {
                                return Err(ScanError::Malformed);
                            }
                            self.i += 4;
                        }
                        _ => return Err(ScanError::Malformed),
                    }
                }
                _ => return Err(ScanError::Malformed),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let s = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - s
    }

    fn number(&mut self) -> Result<(), ScanError> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(ScanError::Malformed),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(ScanError::Malformed);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(ScanError::Malformed);
            }
        }
        Ok(())
    }

    fn literal(&mut self, lit: &[u8]) -> Result<(), ScanError> {
        if self.b.get(self.i..self.i + lit.len()) == Some(lit) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(ScanError::Malformed)
        }
    }

    /// Skips one value, validating it.
    fn value(&mut self, depth: usize) -> Result<(), ScanError> {
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{') => {
                if depth >= MAX_DEPTH {
                    return Err(ScanError::TooDeep);
                }
                self.i += 1;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    self.string()?;
                    self.ws();
                    self.expect(b':')?;
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    match self.next() {
                        Some(b',') => {}
                        Some(b'}') => return Ok(()),
                        _ => return Err(ScanError::Malformed),
                    }
                }
            }
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return Err(ScanError::TooDeep);
                }
                self.i += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    match self.next() {
                        Some(b',') => {}
                        Some(b']') => return Ok(()),
                        _ => return Err(ScanError::Malformed),
                    }
                }
            }
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(ScanError::Malformed),
        }
    }
}

/// # Objects index
///
/// What the host passes after the batch to `rulebox_process_objects`, for
/// `count` events, in order. All integers are little-endian `u32`.
///
/// ```text
/// per event (EVENT_ENTRY_LEN bytes):
///     u32 start    the event's first byte, as an offset in the batch
///     u32 len      the event's length (without its `\n`)
///     u32 status   low byte: 0 object, 1 malformed, 2 nested too deep,
///                  3 valid JSON but not an object; bit 8: a key holds an
///                  escape; bit 9: the object has members (listed or not)
///     u32 close    offset of the closing `}` in the event (0 unless an object)
///     u32 n        members that follow
///   then n × member (MEMBER_ENTRY_LEN bytes), offsets within the event:
///     u32 key_start, u32 key_end        the key, between its quotes, raw
///     u32 value_start, u32 value_end    the value
///     u32 hash                          the member index's hash of the raw key
///   then, for an object when the rule declared a PathPlan:
///     u32 group    the group that applies (0xFFFF_FFFF: none, and nothing follows)
///     k × (u32 value_start, u32 value_end)   each of the group's k paths
///                  (0xFFFF_FFFF twice: not present)
/// ```
///
/// The host builds it with [`index_batch`] and the guest reads it back with
/// [`Scanner::load`], which checks every offset against the batch: a guest
/// never indexes out of bounds because of what it was handed.
///
/// A rule that declared the top-level keys it reads (a [`KeySet`], sent in
/// its init frame) gets only the members with those keys, plus every member
/// whose key holds an escape (the host does not unescape to compare): the
/// index is then a few members per event instead of all of them. A rule
/// that declared a [`PathPlan`] gets its group and paths resolved: the host
/// looks them up natively, and the guest reads spans.
pub const EVENT_ENTRY_LEN: usize = 20;
/// See [`EVENT_ENTRY_LEN`].
pub const MEMBER_ENTRY_LEN: usize = 20;

const STATUS_ESCAPED_KEYS: u32 = 1 << 8;
const STATUS_HAS_MEMBERS: u32 = 1 << 9;

/// The top-level keys a rule reads, as the host matches them against each
/// event's raw keys when it builds an [objects index](EVENT_ENTRY_LEN).
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<String>,
    /// Per key: listed in the index (not only used to resolve a plan).
    listed: Vec<bool>,
    /// Open-addressing table of `keys` by [`key_hash`] (index + 1; 0 empty).
    table: Vec<u32>,
    /// A quick filter before hashing: bit `first byte % 64` of entry
    /// `length % 32` is set for every key (most keys an event has that are
    /// not in the set fail it).
    filter: [u64; 32],
}

impl KeySet {
    /// The set of `keys` (repeats are kept once).
    pub fn new<S: AsRef<str>>(keys: impl IntoIterator<Item = S>) -> KeySet {
        KeySet::marked(keys, core::iter::empty::<&str>())
    }

    /// The set of `listed` and `unlisted` keys, the former marked (a key in
    /// both is listed).
    fn marked<S: AsRef<str>, T: AsRef<str>>(
        listed: impl IntoIterator<Item = S>,
        unlisted: impl IntoIterator<Item = T>,
    ) -> KeySet {
        let given: Vec<(String, bool)> = listed
            .into_iter()
            .map(|k| (k.as_ref().into(), true))
            .chain(unlisted.into_iter().map(|k| (k.as_ref().into(), false)))
            .collect();
        let mut set = KeySet {
            keys: Vec::with_capacity(given.len()),
            listed: Vec::with_capacity(given.len()),
            table: alloc::vec![0; (given.len() * 2).next_power_of_two().max(16)],
            filter: [0; 32],
        };
        let mask = set.table.len() - 1;
        for (k, listed) in given {
            let k = k.as_str();
            let (slot, bit) = KeySet::filter_bit(k.as_bytes());
            set.filter[slot] |= bit;
            let mut at = key_hash(k.as_bytes()) as usize & mask;
            loop {
                match set.table[at] {
                    0 => {
                        set.keys.push(k.into());
                        set.listed.push(listed);
                        set.table[at] = set.keys.len() as u32;
                        break;
                    }
                    j if set.keys[j as usize - 1] == k => {
                        set.listed[j as usize - 1] |= listed;
                        break;
                    }
                    _ => at = (at + 1) & mask,
                }
            }
        }
        set
    }

    /// The top-level keys [`Object::get`] may look up for `path`: the path
    /// itself, and its part before each dot.
    pub fn path_keys(path: &str) -> impl Iterator<Item = &str> {
        core::iter::once(path).chain(path.match_indices('.').map(move |(dot, _)| &path[..dot]))
    }

    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    #[inline]
    fn filter_bit(k: &[u8]) -> (usize, u64) {
        (k.len() % 32, 1 << (k.first().copied().unwrap_or(0) % 64))
    }

    /// The [`key_hash`] of the raw (unescaped) key `k` and whether it is
    /// listed, when `k` is in the set; most keys that are not fail the
    /// filter before being hashed.
    #[inline]
    fn hash_if_contains(&self, k: &[u8]) -> Option<(u32, bool)> {
        let (slot, bit) = KeySet::filter_bit(k);
        if self.filter[slot] & bit == 0 {
            return None;
        }
        let hash = key_hash(k);
        let mask = self.table.len() - 1;
        let mut at = hash as usize & mask;
        loop {
            match self.table[at] {
                0 => return None,
                j if bytes_eq(self.keys[j as usize - 1].as_bytes(), k) => {
                    return Some((hash, self.listed[j as usize - 1]));
                }
                _ => at = (at + 1) & mask,
            }
        }
    }
}

fn status_code(e: ScanError) -> u32 {
    match e {
        ScanError::Malformed => 1,
        ScanError::TooDeep => 2,
        ScanError::NotObject => 3,
    }
}

#[inline]
fn put_u32s<const N: usize>(out: &mut Vec<u8>, words: &[u32; N]) {
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

/// What a plugin asked for in its objects index: which members to list,
/// and the [`PathPlan`] to resolve.
#[derive(Debug, Clone, Default)]
pub struct IndexRequest {
    /// `None`: every member is listed.
    listed: Option<Vec<String>>,
    plan: Option<PathPlan>,
    /// The keys to keep while scanning (listed ones marked); `None`: all.
    keep: Option<KeySet>,
}

impl IndexRequest {
    /// Every member listed (`keys` `None`) or only those with `keys`, and
    /// `plan` resolved.
    pub fn new<S: AsRef<str>>(keys: Option<&[S]>, plan: Option<PathPlan>) -> IndexRequest {
        let listed: Option<Vec<String>> =
            keys.map(|k| k.iter().map(|s| s.as_ref().into()).collect());
        let keep = listed
            .as_ref()
            .map(|l| KeySet::marked(l, plan.iter().flat_map(PathPlan::keys)));
        IndexRequest { listed, plan, keep }
    }

    /// What an init frame asked for.
    pub fn from_reads(reads: &crate::ObjectReads<'_>) -> IndexRequest {
        let plan = reads.groups.as_ref().map(|groups| {
            let mut plan = PathPlan::new();
            for (when, paths) in groups {
                plan.add_group(when, paths);
            }
            plan
        });
        IndexRequest::new(reads.keys.as_deref(), plan)
    }

    pub fn listed_keys(&self) -> Option<&[String]> {
        self.listed.as_deref()
    }

    pub fn plan(&self) -> Option<&PathPlan> {
        self.plan.as_ref()
    }
}

/// Scans each of the `count` events of `batch` (each followed by `\n`, or
/// ending the batch) with `scanner` and appends the [objects
/// index](EVENT_ENTRY_LEN) that `request` asks for to `out`.
pub fn index_batch(
    scanner: &mut Scanner,
    request: &IndexRequest,
    batch: &[u8],
    count: usize,
    out: &mut Vec<u8>,
) {
    let mut start = 0;
    for _ in 0..count {
        let rest = batch.get(start..).unwrap_or_default();
        let len = find_byte(rest, b'\n').unwrap_or(rest.len());
        let event = &rest[..len];
        let entry = out.len();
        put_u32s(out, &[start as u32, len as u32, 0, 0, 0]);
        let (status, close, n) = match scanner.scan_inner(event, false) {
            Ok(()) => {
                let mut flags = 0;
                if scanner.escaped_keys {
                    flags |= STATUS_ESCAPED_KEYS;
                }
                if scanner.has_members {
                    flags |= STATUS_HAS_MEMBERS;
                }
                let n = scanner.keep_and_list(event, request, out);
                if let Some(plan) = &request.plan {
                    if scanner.escaped_keys {
                        scanner.table.clear(); // lookups compare keys
                    } else {
                        scanner.fill_table(event);
                    }
                    scanner.resolve(event, plan);
                    put_u32s(out, &[scanner.group]);
                    out.reserve(scanner.slots.len() * 8);
                    for s in &scanner.slots {
                        put_u32s(out, &[s.start, s.end]);
                    }
                }
                (flags, scanner.close as u32, n)
            }
            Err(e) => (status_code(e), 0, 0),
        };
        out[entry + 8..entry + 12].copy_from_slice(&status.to_le_bytes());
        out[entry + 12..entry + 16].copy_from_slice(&close.to_le_bytes());
        out[entry + 16..entry + 20].copy_from_slice(&n.to_le_bytes());
        start += len + 1;
    }
}

impl Scanner {
    /// Keeps (with their hashes) the members just scanned that `request`
    /// needs, appends the listed ones to `out`; returns how many it listed.
    fn keep_and_list(&mut self, event: &[u8], request: &IndexRequest, out: &mut Vec<u8>) -> u32 {
        let mut n = 0u32;
        let mut kept = 0;
        self.hashes.clear();
        out.reserve(self.members.len() * MEMBER_ENTRY_LEN);
        for i in 0..self.members.len() {
            let (m, escaped) = (self.members[i], self.key_escaped[i]);
            let key = &event[m.key.range()];
            let (hash, listed) = match &request.keep {
                // Escaped keys are kept: the host does not unescape to compare.
                Some(keep) if !escaped => match keep.hash_if_contains(key) {
                    Some(found) => found,
                    None => continue,
                },
                _ => (key_hash(key), true),
            };
            if listed {
                put_u32s(
                    out,
                    &[m.key.start, m.key.end, m.value.start, m.value.end, hash],
                );
                n += 1;
            }
            self.members[kept] = m;
            self.hashes.push(hash);
            kept += 1;
        }
        self.members.truncate(kept);
        n
    }
}

/// A cursor over an objects index (the guest's side).
#[derive(Debug)]
pub struct IndexReader<'i> {
    index: &'i [u8],
    at: usize,
}

/// The objects index does not describe the batch it came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadIndex;

impl<'i> IndexReader<'i> {
    pub fn new(index: &'i [u8]) -> Self {
        IndexReader { index, at: 0 }
    }

    fn word(&mut self) -> Result<u32, BadIndex> {
        Ok(self.words::<1>()?[0])
    }

    /// The next `N` words, with one bounds check.
    #[inline]
    fn words<const N: usize>(&mut self) -> Result<[u32; N], BadIndex> {
        let b = self.index.get(self.at..self.at + 4 * N).ok_or(BadIndex)?;
        self.at += 4 * N;
        let mut out = [0u32; N];
        for (w, c) in out.iter_mut().zip(b.chunks_exact(4)) {
            *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Ok(out)
    }
}

impl Scanner {
    /// The next event of `batch` as the host scanned it: its bytes and what
    /// [`Scanner::scan`] would have answered for them, rebuilt from `index`
    /// without reading the event (every offset is checked).
    #[allow(clippy::type_complexity)]
    pub fn load<'s, 'a>(
        &'s mut self,
        batch: &'a [u8],
        index: &mut IndexReader<'_>,
        plan: Option<&PathPlan>,
    ) -> Result<(&'a [u8], Result<Object<'s, 'a>, ScanError>), BadIndex> {
        let [start, len, status, close, n] = index.words::<5>()?;
        let (start, len, close) = (start as usize, len as usize, close as usize);
        let src = start
            .checked_add(len)
            .and_then(|end| batch.get(start..end))
            .ok_or(BadIndex)?;
        match status & 0xff {
            0 => {}
            1 => return Ok((src, Err(ScanError::Malformed))),
            2 => return Ok((src, Err(ScanError::TooDeep))),
            3 => return Ok((src, Err(ScanError::NotObject))),
            _ => return Err(BadIndex),
        }
        if close >= src.len() || src[close] != b'}' {
            return Err(BadIndex);
        }
        let escaped = status & STATUS_ESCAPED_KEYS != 0;
        let has_members = n > 0 || status & STATUS_HAS_MEMBERS != 0;
        self.members.clear();
        self.hashes.clear();
        self.escaped_keys = escaped;
        if n as usize > src.len() {
            return Err(BadIndex); // more members than the event has bytes for
        }
        for _ in 0..n {
            let span = |a: u32, b: u32| {
                (a <= b && b as usize <= src.len()).then_some(Span { start: a, end: b })
            };
            let [ks, ke, vs, ve, hash] = index.words::<5>()?;
            let (key, value) = (span(ks, ke).ok_or(BadIndex)?, span(vs, ve).ok_or(BadIndex)?);
            self.members.push(Member { key, value });
            self.hashes.push(hash);
        }
        // With escaped keys every lookup compares keys: no table needed.
        if !escaped {
            self.fill_table(src);
        } else {
            self.table.clear();
        }
        self.close = close;
        self.has_members = has_members;
        self.group = NO_GROUP;
        self.slots.clear();
        if let Some(plan) = plan {
            let group = index.word()?;
            if group != NO_GROUP {
                let g = plan.groups.get(group as usize).ok_or(BadIndex)?;
                for _ in 0..g.paths.len() {
                    let [start, end] = index.words::<2>()?;
                    let ok = (start == ABSENT && end == ABSENT)
                        || (start <= end && end as usize <= src.len());
                    if !ok {
                        return Err(BadIndex);
                    }
                    self.slots.push(Span { start, end });
                }
                self.group = group;
            }
        }
        Ok((src, Ok(self.object(src))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// UTF-8 is checked inside strings (where non-ASCII may appear) and
    /// refused anywhere else; the verdicts are std's.
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

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let s = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let mut sc = Scanner::new();
        assert_eq!(sc.scan(s.as_bytes()).unwrap_err(), ScanError::TooDeep);
        let ok = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(sc.scan(ok.as_bytes()).is_ok());
    }

    #[test]
    fn dotted_paths_and_dotted_keys() {
        let s = br#"{"id.resp_h":"1.2.3.4","destination":{"ip":"5.6.7.8","nat":{"port":9}},"user.name":"flat"}"#;
        let mut sc = Scanner::new();
        let o = sc.scan(s).unwrap();
        assert_eq!(o.get("id.resp_h").unwrap().as_str().unwrap(), "1.2.3.4");
        assert_eq!(
            o.get("destination.ip").unwrap().as_str().unwrap(),
            "5.6.7.8"
        );
        assert_eq!(o.get("destination.nat.port").unwrap().raw, b"9");
        assert_eq!(o.get("user.name").unwrap().as_str().unwrap(), "flat");
        assert!(o.get("destination.port").is_none());
        assert!(o.get("nope").is_none());
    }

    #[test]
    fn escaped_keys_and_values() {
        let s = br#"{"de\u0073t":"a\u00e9\ud83d\ude00\n"}"#;
        let mut sc = Scanner::new();
        let o = sc.scan(s).unwrap();
        assert_eq!(
            o.get("dest").unwrap().as_str().unwrap(),
            "a\u{e9}\u{1F600}\n"
        );
    }

    #[test]
    fn arrays() {
        let v = Value {
            raw: br#"["allowed", "connection" ,"start"]"#,
        };
        let items: Vec<_> = v
            .array_items()
            .map(|v| v.as_str().unwrap().into_owned())
            .collect();
        assert_eq!(items, ["allowed", "connection", "start"]);
        assert_eq!(Value { raw: b"[]" }.array_items().count(), 0);
        assert_eq!(Value { raw: b"3" }.array_items().count(), 0);
    }

    #[test]
    fn write_str_escapes() {
        let mut out = Vec::new();
        write_str(&mut out, "a\"b\\c\nd\u{1}");
        assert_eq!(out, br#""a\"b\\c\nd\u0001""#);
        // Whatever the string and wherever its special bytes, what is written
        // reads back as the string (serde_json's reading).
        let pieces = [
            "a", "é", "\"", "\\", "\u{1}", "\u{1f}", " ", "abcdefgh", "\u{7f}", "🦀",
        ];
        let mut seed = 0x0123_4567_89ab_cdefu64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let s: String = (0..(seed % 14))
                .map(|i| pieces[((seed >> (8 + 4 * i)) % 10) as usize])
                .collect();
            out.clear();
            write_str(&mut out, &s);
            assert_eq!(
                serde_json::from_slice::<String>(&out).unwrap(),
                s,
                "{out:?}"
            );
        }
    }

    const LOOKUPS: [&str; 8] = ["a", "b", "dest_ip", "dup", "esc", "x.y", "b.c", "missing"];

    /// What a rule sees of one event: closing brace, emptiness, plan group
    /// and slots, `lookups` and (`members`) the member list.
    fn view(r: &Result<Object<'_, '_>, ScanError>, members: bool, lookups: &[&str]) -> String {
        match r {
            Err(e) => format!("{e:?}"),
            Ok(o) => {
                let mut v = format!("close={} empty={} members=", o.close, o.is_empty());
                for m in o.members().iter().filter(|_| members) {
                    v += &format!("[{:?} {:?}]", m.key, m.value);
                }
                v += &format!(" group={:?} slots=", o.group());
                for i in 0..5 {
                    v += &format!("{:?},", o.slot(i).map(|x| x.raw));
                }
                for &k in lookups {
                    let got = o.get(k);
                    assert_eq!(got, o.get_path(&Path::new(k)), "{k}");
                    v += &format!(" {k}={:?}", got.map(|x| x.raw));
                }
                v
            }
        }
    }

    #[test]
    fn an_objects_index_gives_what_a_scan_gives() {
        let events: &[&[u8]] = &[
            br#"{"a":1,"b":{"c":[1,2]},"dest_ip":"8.8.8.8"}"#,
            br#"  {}  "#,
            br#"{"dup":1,"dup":2,"a":"x\"y"}"#,
            br#"{"e\u0073c":true,"esc":false,"x.y":3}"#,
            br#"{"a":1,"#,
            br#"[1,2]"#,
            br#""just a string""#,
            br#"not json"#,
            b"",
            br#"{"x":{"y":"nested"},"a":null}"#,
            br#"{"not_read":1,"x.z":2}"#,
            br#"{"d\u0075p":0,"dup":1}"#,
        ];
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        let mut all: Vec<&[u8]> = events.to_vec();
        all.push(deep.as_bytes());
        let mut batch = Vec::new();
        for e in &all {
            batch.extend_from_slice(e);
            batch.push(b'\n');
        }
        // Every member, then only the keys the lookups need.
        let read = KeySet::new(LOOKUPS.iter().flat_map(|p| KeySet::path_keys(p)));
        assert_eq!(read.keys().len(), 9, "{:?}", read.keys());
        let mut plan = PathPlan::new();
        plan.add_group(&["x.y"], &["x.y", "a", "missing"]);
        plan.add_group(&["dest_ip", "b.c"], &["b.c", "dest_ip", "dup", "esc"]);
        plan.add_group(&[], &["a", "x"]);
        let requests = [
            (IndexRequest::new::<&str>(None, None), true, &LOOKUPS[..]),
            (
                IndexRequest::new(Some(read.keys()), None),
                false,
                &LOOKUPS[..],
            ),
            (
                IndexRequest::new(Some(&["a"]), Some(plan.clone())),
                false,
                &["a"][..],
            ),
            (
                IndexRequest::new::<&str>(None, Some(plan.clone())),
                true,
                &LOOKUPS[..],
            ),
        ];
        for (request, full, lookups) in &requests {
            let (mut host, mut guest, mut direct) =
                (Scanner::new(), Scanner::new(), Scanner::new());
            let mut index = Vec::new();
            index_batch(&mut host, request, &batch, all.len(), &mut index);
            let mut r = IndexReader::new(&index);
            for e in &all {
                let (src, got) = guest.load(&batch, &mut r, request.plan()).unwrap();
                assert_eq!(src, *e);
                let want = match request.plan() {
                    Some(plan) => direct.scan_planned(e, plan),
                    None => direct.scan(e),
                };
                assert_eq!(
                    view(&got, *full, lookups),
                    view(&want, *full, lookups),
                    "{}",
                    String::from_utf8_lossy(e)
                );
                if let (Ok(got), Ok(want)) = (&got, &want)
                    && let Some(keys) = request.listed_keys()
                {
                    // Only the declared keys, and escaped ones, are listed.
                    let listed = |o: &Object<'_, '_>| {
                        o.members()
                            .iter()
                            .map(|m| &e[m.key.range()])
                            .collect::<Vec<_>>()
                    };
                    let expect: Vec<_> = listed(want)
                        .into_iter()
                        .filter(|k| k.contains(&b'\\') || keys.iter().any(|r| r.as_bytes() == *k))
                        .collect();
                    assert_eq!(listed(got), expect);
                }
            }
            assert_eq!(
                guest.load(&batch, &mut r, request.plan()).unwrap_err(),
                BadIndex,
                "past the end"
            );
        }
        // The plan's answers, read directly.
        let mut sc = Scanner::new();
        let o = sc.scan_planned(br#"{"x":{"y":2},"a":[1]}"#, &plan).unwrap();
        assert_eq!(o.group(), Some(0));
        assert_eq!(
            (0..4).map(|i| o.slot(i).map(|v| v.raw)).collect::<Vec<_>>(),
            [Some(&b"2"[..]), Some(b"[1]"), None, None]
        );
        let o = sc
            .scan_planned(br#"{"b":{"c":"x"},"esc":0}"#, &plan)
            .unwrap();
        assert_eq!(
            (
                o.group(),
                o.slot(0).map(|v| v.raw),
                o.slot(3).map(|v| v.raw)
            ),
            (Some(1), Some(&b"\"x\""[..]), Some(&b"0"[..]))
        );
        let o = sc.scan_planned(br#"{"q":1}"#, &plan).unwrap();
        assert_eq!((o.group(), o.slot(0)), (Some(2), None));
        let mut only = PathPlan::new();
        only.add_group(&["a"], &["a"]);
        assert_eq!(sc.scan_planned(br#"{"q":1}"#, &only).unwrap().group(), None);
        assert_eq!(sc.scan(br#"{"a":1}"#).unwrap().group(), None, "no plan");
    }

    #[test]
    fn lookups_find_the_first_member_with_the_key_few_or_many() {
        let names = ["a", "bb", "a.b", "long_key_name_1", "long_key_name_2", "x"];
        let mut seed = 0x9e37_79b9u64;
        for n in 0..40 {
            let mut keys = Vec::new();
            let mut ev = String::from("{");
            for i in 0..n {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let k = if seed >> 62 == 0 {
                    names[(seed >> 40) as usize % names.len()].to_string()
                } else {
                    format!("k{i}")
                };
                ev += &format!("{}\"{k}\":{i}", if i > 0 { "," } else { "" });
                keys.push(k);
            }
            ev += "}";
            let want = |k: &str| keys.iter().position(|x| x == k).map(|i| i.to_string());
            let mut batch = ev.clone().into_bytes();
            batch.push(b'\n');
            let mut index = Vec::new();
            index_batch(
                &mut Scanner::new(),
                &IndexRequest::default(),
                &batch,
                1,
                &mut index,
            );
            let (mut direct, mut loaded) = (Scanner::new(), Scanner::new());
            let from_index = loaded
                .load(&batch, &mut IndexReader::new(&index), None)
                .unwrap()
                .1;
            for obj in [direct.scan(ev.as_bytes()).unwrap(), from_index.unwrap()] {
                for k in names
                    .iter()
                    .map(|s| s.to_string())
                    .chain((0..45).map(|i| format!("k{i}")))
                {
                    let got = obj.member(&k).map(|m| ev[m.value.range()].to_string());
                    assert_eq!(got, want(&k), "{k} in {ev}");
                    let got = obj.get_path(&Path::new(&k)).map(|v| v.raw.to_vec());
                    assert_eq!(got, want(&k).map(String::into_bytes), "{k} in {ev}");
                }
            }
        }
    }

    #[test]
    fn a_damaged_objects_index_is_refused_not_followed() {
        let batch = b"{\"a\":1,\"bb\":[2,3],\"c\":\"d\"}\n{\"x\":{}}\n".to_vec();
        let mut plan = PathPlan::new();
        plan.add_group(&["x"], &["x", "x.y"]);
        plan.add_group(&[], &["a", "bb", "c"]);
        for request in [
            IndexRequest::default(),
            IndexRequest::new(Some(&["x"]), Some(plan.clone())),
        ] {
            let mut index = Vec::new();
            index_batch(&mut Scanner::new(), &request, &batch, 2, &mut index);
            let mut sc = Scanner::new();
            let mut seed = 0x2545_f491_4f6c_dd1du64;
            for _ in 0..20_000 {
                let mut bad = index.clone();
                for _ in 0..1 + (seed % 3) as usize {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let at = (seed as usize >> 8) % bad.len();
                    bad[at] = (seed >> 32) as u8;
                }
                bad.truncate(bad.len() - (seed >> 40) as usize % 3 * (seed % 2) as usize);
                let mut r = IndexReader::new(&bad);
                // Whatever it says, every span a rule then reads lies in the batch.
                while let Ok((src, obj)) = sc.load(&batch, &mut r, request.plan()) {
                    if let Ok(o) = obj {
                        for m in o.members() {
                            let _ = (&src[m.key.range()], &src[m.value.range()]);
                        }
                        let _ = o.get("a");
                        let _ = o.get("bb.c");
                        for i in 0..4 {
                            if let Some(v) = o.slot(i) {
                                assert!(v.raw.len() <= src.len());
                            }
                        }
                    }
                }
            }
        }
    }
}
