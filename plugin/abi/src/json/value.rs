//! One raw value of an already validated event ([`Value`]): its text as a
//! string, boolean or number, its array items, and dotted-path lookups
//! inside a nested object, read from the bytes on demand. [`key_eq`]
//! compares a raw key with a wanted one.

use alloc::borrow::Cow;

use super::parser::Parser;
use super::{Span, find_byte, unescape};

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
        if !self.is_object() {
            return None;
        }
        lookup(self.raw, self.members(), path)
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

    fn members(&self) -> ObjectMembers<'a> {
        ObjectMembers {
            p: Parser::at(self.raw, 1),
            done: false,
        }
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

#[cfg(test)]
mod tests {
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
}
