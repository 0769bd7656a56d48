//! One raw value of an already validated event ([`Value`]): its text as a
//! string, boolean or number, its array items, and dotted-path lookups
//! inside a nested object, read from the bytes on demand. [`key_eq`]
//! compares a raw key with a wanted one.

use alloc::borrow::Cow;
use alloc::vec::Vec;

use super::flat::{member_at, scan_nested_object};
use super::parser::Parser;
use super::{Budget, Member, OverBudget, Span, Unlimited, find_byte, unescape};

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
        let mut p = Parser::at(raw, 0);
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
        self.get_within(path, &mut Unlimited).ok().flatten()
    }

    /// [`Value::get`], spending on `work` the bytes of each nested object
    /// it passes over (one pass per object: the lookup is linear in the
    /// value, whatever the path's dots).
    pub(super) fn get_within<B: Budget>(
        &self,
        path: &str,
        work: &mut B,
    ) -> Result<Option<Value<'a>>, OverBudget> {
        if !self.is_object() {
            return Ok(None);
        }
        work.spend(self.raw.len())?;
        lookup(self.raw, self.members(), path, work)
    }

    /// [`Value::get_within`], with the object's members read once for
    /// every lookup in it that uses `kept` (the host's plan resolution,
    /// which often reads two paths under one object). The same answer and
    /// the same work spent.
    pub(super) fn get_within_kept<B: Budget>(
        &self,
        path: &str,
        kept: &mut Nested,
        work: &mut B,
    ) -> Result<Option<Value<'a>>, OverBudget> {
        if !self.is_object() {
            return Ok(None);
        }
        work.spend(self.raw.len())?;
        let at = Some((self.raw.as_ptr() as usize, self.raw.len()));
        if kept.at != at {
            kept.members.clear();
            kept.read = scan_nested_object(self.raw, &mut kept.members).is_some();
            kept.at = at;
        }
        if !kept.read {
            return lookup(self.raw, self.members(), path, work);
        }
        let members = kept.members.iter().map(|m| (m.key, m.value));
        lookup(self.raw, members, path, work)
    }

    /// The first member of an object value named exactly `key` (not split
    /// at dots).
    pub fn member(&self, key: &str) -> Option<Value<'a>> {
        if !self.is_object() {
            return None;
        }
        let raw = self.raw;
        self.members()
            .find(|(k, _)| key_eq(&raw[k.range()], key))
            .map(|(_, v)| Value {
                raw: &raw[v.range()],
            })
    }

    /// Whether an object value has at least one member.
    pub fn has_members(&self) -> bool {
        self.is_object() && self.members().next().is_some()
    }

    /// An object value's members as its lookups read them (the scan's
    /// member step, the parser where that step is not sure), and as the
    /// full parser alone reads them: the reference the tests and the fuzz
    /// target `event_reader` hold the first to. Empty for a non-object.
    #[doc(hidden)]
    pub fn members_both_ways(&self) -> [Vec<(Span, Span)>; 2] {
        if !self.is_object() {
            return [Vec::new(), Vec::new()];
        }
        [self.members().collect(), self.members_by_parser()]
    }

    /// The members of a validated object value by the full parser alone.
    fn members_by_parser(&self) -> Vec<(Span, Span)> {
        let mut p = Parser::at(self.raw, 1);
        let mut out = Vec::new();
        loop {
            p.ws();
            if p.peek() == Some(b'}') {
                return out;
            }
            let Ok(member) = p.member(1) else { return out };
            out.push(member);
            p.ws();
            if p.next() != Some(b',') {
                return out;
            }
        }
    }

    fn members(&self) -> ObjectMembers<'a> {
        ObjectMembers {
            p: Parser::at(self.raw, 1),
            done: false,
        }
    }
}

/// The members of the object value last read by [`Value::get_within_kept`]
/// (where it lies, as an address, and whether the fast path read it).
/// The address names the object only while its event's bytes stay where
/// they are: [`Nested::forget`] before each event.
#[derive(Debug, Default)]
pub(crate) struct Nested {
    at: Option<(usize, usize)>,
    members: Vec<Member>,
    read: bool,
}

impl Nested {
    pub(crate) fn forget(&mut self) {
        self.at = None;
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
            // The scan's own member step first (compact JSON, containers
            // passed without recursion); the parser where it is not sure.
            let (k, v) = match member_at(p.b, p.i) {
                Some((k, v)) => {
                    p.i = v.end as usize;
                    (k, v)
                }
                None => p.member(1).ok()?,
            };
            p.ws();
            Some((k, v, p.next() != Some(b',')))
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

/// The value at `path` among an object's `members`: the literal key first,
/// then the path split at each dot, left to right, trying every member with
/// the head's key in document order. One pass over the members finds the
/// literal key or collects each split's heads; only their values are
/// entered, so the work is the object's bytes, not that times its splits.
fn lookup<'a, B: Budget>(
    src: &'a [u8],
    members: impl Iterator<Item = (Span, Span)>,
    path: &str,
    work: &mut B,
) -> Result<Option<Value<'a>>, OverBudget> {
    let value = |v: Span| Value {
        raw: &src[v.range()],
    };
    // Each head found: its dot's offset in `path`, and its value.
    let mut heads: Vec<(usize, Span)> = Vec::new();
    let dotted = path.contains('.');
    for (k, v) in members {
        let key = &src[k.range()];
        if key_eq(key, path) {
            return Ok(Some(value(v)));
        }
        if dotted {
            heads.extend(head_dots(key, path).map(|dot| (dot, v)));
        }
    }
    heads.sort_by_key(|&(dot, _)| dot); // stable: document order kept
    for (dot, v) in heads {
        if let Some(found) = value(v).get_within(&path[dot + 1..], work)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// The offsets of the dots in `path` before which the raw key `key` is the
/// whole part (`path[..dot]`): at most one for a key without escapes.
fn head_dots<'p>(key: &'p [u8], path: &'p str) -> impl Iterator<Item = usize> + 'p {
    let plain = !key.contains(&b'\\');
    let quick = (plain && path.as_bytes().get(key.len()) == Some(&b'.'))
        .then_some(key.len())
        .filter(|&dot| &path.as_bytes()[..dot] == key);
    let escaped = path
        .match_indices('.')
        .map(|(dot, _)| dot)
        .filter(move |&dot| !plain && key_eq(key, &path[..dot]));
    quick.into_iter().chain(escaped)
}

/// Compares a raw (possibly escaped) key with `want`. An escape sequence is
/// always longer than the character it stands for, so a raw key of the same
/// length can only match byte for byte, and a shorter one never.
pub fn key_eq(raw: &[u8], want: &str) -> bool {
    let w = want.as_bytes();
    if raw.len() == w.len() {
        return raw == w;
    }
    // An escape stands for at most one byte per six (`\u0041`): a raw key
    // longer than that is not unescaped at all.
    raw.len() > w.len()
        && raw.len() <= 6 * w.len()
        && raw.contains(&b'\\')
        && unescape(raw).is_some_and(|s| s == want)
}

#[cfg(test)]
mod tests {
    use super::super::MAX_DEPTH;
    use super::*;

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
    fn members_by_exact_key() {
        let v = Value {
            raw: br#"{ "a.b" : 1, "a" : {"b": 2}, "c": "x", "\u0064": true }"#,
        };
        assert_eq!(v.member("a.b").unwrap().raw, b"1");
        assert_eq!(v.member("a").unwrap().raw, br#"{"b": 2}"#);
        assert_eq!(v.member("d").unwrap().raw, b"true");
        assert!(v.member("b").is_none());
        assert!(v.has_members());
        assert!(!Value { raw: b"{ }" }.has_members());
        assert!(Value { raw: b"[1]" }.member("a").is_none());
        assert!(!Value { raw: b"\"{}\"" }.has_members());
    }

    #[test]
    fn members_read_by_the_scan_step_are_the_parsers() {
        // Nested as deep as both read under a member.
        let n = MAX_DEPTH - 1;
        let deepest = format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let values = [
            r#""s""#,
            r#""a\"b""#,
            r#""\u00e9t\u00e9""#,
            "\"\u{e9}t\u{e9}\"",
            "-12.5e+3",
            "0",
            "true",
            "null",
            r#"{"x":[1,{"y":"z"}],"w":{}}"#,
            r#"[ "a" , {"b" : [ ] } ]"#,
            r#""a string longer than the thirty-two bytes of one look""#,
            &deepest,
        ];
        let keys = [
            "k",
            "a.b",
            r#"\u0061"#,
            "\u{e9}",
            "",
            "a key of more than thirty-two bytes",
        ];
        let spacing = [
            ("", ":", ","),
            (" ", " : ", " , "),
            ("\n\t", ":\r\n", ",\n"),
        ];
        for v in values {
            for k in keys {
                for (open, colon, comma) in spacing {
                    let o = format!(
                        r#"{{{open}"{k}"{colon}{v}{comma}"{k}2"{colon}{v}{comma}"z"{colon}1 }}"#
                    );
                    let raw = o.as_bytes();
                    let fast: Vec<_> = Value { raw }.members().collect();
                    assert_eq!(fast, Value { raw }.members_by_parser(), "{o}");
                }
            }
        }
    }

    /// The lookup before it was made one pass a level: the literal key,
    /// then each split left to right, each member with the head's key.
    fn reference<'a>(v: Value<'a>, path: &str) -> Option<Value<'a>> {
        let members: Vec<_> = v.members().collect();
        let at = |s: Span| Value {
            raw: &v.raw[s.range()],
        };
        if let Some((_, m)) = members
            .iter()
            .find(|(k, _)| key_eq(&v.raw[k.range()], path))
        {
            return Some(at(*m));
        }
        for (dot, _) in path.match_indices('.') {
            for (k, m) in &members {
                if key_eq(&v.raw[k.range()], &path[..dot])
                    && at(*m).is_object()
                    && let Some(found) = reference(at(*m), &path[dot + 1..])
                {
                    return Some(found);
                }
            }
        }
        None
    }

    #[test]
    fn one_pass_lookups_answer_as_the_reference_does() {
        let objects = [
            r#"{"a":{"b":1},"a.b":2}"#,
            r#"{"a":{"x":1},"a":{"b":2},"a.b.c":3,"a.b":{"c":4}}"#,
            r#"{"a":{"b.c":5},"a.b":{"c":6}}"#,
            r#"{"\u0061":{"b":7},"a\u002eb":8}"#,
            r#"{"a":{"b":{"c":{"d":{"e":9}}}},"a.b.c.d":{"e":10}}"#,
            r#"{"x":[1,{"a":2}],"a":"s","a.b":null}"#,
            r#"{}"#,
        ];
        let paths = [
            "a",
            "a.b",
            "a.b.c",
            "b.c",
            "a.b.c.d.e",
            "a.b.c.d",
            "x",
            "x.a",
            "a.x",
            "a..b",
            ".a",
        ];
        for o in objects {
            let v = Value { raw: o.as_bytes() };
            for p in paths {
                assert_eq!(v.get(p), reference(v, p), "{p} in {o}");
            }
        }
    }

    #[test]
    fn a_lookup_passes_each_nested_object_once() {
        let pad = "z".repeat(10_000);
        let o = format!(r#"{{"a":{{"b":{{"c":{{"d":{{"pad":"{pad}"}}}}}}}}}}"#);
        let v = Value { raw: o.as_bytes() };
        let mut work = crate::json::Work::within(u64::MAX);
        assert_eq!(v.get_within("a.b.c.d.e", &mut work), Ok(None));
        // The object and each of its four nested levels: once each.
        assert!(work.spent <= 5 * o.len() as u64, "{}", work.spent);
        let mut work = crate::json::Work::within(o.len() as u64 * 2);
        assert_eq!(v.get_within("a.b.c.d.e", &mut work), Err(OverBudget));
    }
}
