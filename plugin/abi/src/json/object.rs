//! A scanned event as a rule reads it ([`Object`]): its members, and field
//! lookups by key or dotted path — one probe of the scanner's key index when
//! keys are plain, a pass over the members when some key holds escapes —
//! plus the answers of a [`PathPlan`](super::PathPlan) (group and slots)
//! when one was applied.

use super::plan::{ABSENT, NO_GROUP};
use super::swar::{bytes_eq, key_hash};
use super::value::Nested;
use super::{Budget, Member, OverBudget, Path, Span, Unlimited, Value, key_eq};

/// A scanned event: a valid JSON object with its top-level members.
#[derive(Debug)]
pub struct Object<'s, 'a> {
    pub(super) src: &'a [u8],
    pub(super) members: &'s [Member],
    /// Per member, its key's hash; empty when not computed (lookups then
    /// compare keys).
    pub(super) hashes: &'s [u32],
    pub(super) table: &'s [u32],
    pub(super) escaped_keys: bool,
    /// The object has at least one member (from an objects index that lists
    /// only the keys a rule reads, `members` can be empty when it does not).
    pub(super) has_members: bool,
    /// The [`PathPlan`](super::PathPlan) group that applies and its paths'
    /// spans.
    pub(super) group: u32,
    pub(super) slots: &'s [Span],
    /// Offset of the closing `}`.
    pub close: usize,
}

impl<'s, 'a> Object<'s, 'a> {
    /// The first member whose key is `key` (whose [`key_hash`] is `hash`):
    /// one probe of the index, and a pass over the members (spent on
    /// `work`) only when some key holds escapes.
    #[inline(always)]
    fn find<B: Budget>(
        &self,
        key: &str,
        hash: u32,
        work: &mut B,
    ) -> Result<Option<Member>, OverBudget> {
        if self.escaped_keys || self.hashes.len() != self.members.len() {
            work.spend(self.members.len())?;
            return Ok(self.find_by_keys(key));
        }
        Ok(self.probe(key, hash))
    }

    /// [`Object::find`] in the key index.
    #[inline(always)]
    fn probe(&self, key: &str, hash: u32) -> Option<Member> {
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
    /// rule that declared the keys it reads ([`KeySet`](super::KeySet)),
    /// only the members with those keys (and any whose key holds an
    /// escape).
    pub fn members(&self) -> &'s [Member] {
        self.members
    }

    /// Whether the object has no member at all (also when it came from an
    /// objects index that lists only the keys the rule reads).
    pub fn is_empty(&self) -> bool {
        !self.has_members
    }

    /// Which group of the rule's [`PathPlan`](super::PathPlan) applies to
    /// this object (`None`: none does, or no plan).
    pub fn group(&self) -> Option<usize> {
        (self.group != NO_GROUP).then_some(self.group as usize)
    }

    /// The value of path `i` of that group ([`Object::get`] of it), if
    /// present. Inline: a rule reads a few slots of every event, and in a
    /// guest each call costs more than the read.
    #[inline]
    pub fn slot(&self, i: usize) -> Option<Value<'a>> {
        let s = self.slots.get(i)?;
        // The span was checked against the event when it was made or loaded.
        (s.start != ABSENT).then(|| Value {
            raw: self.src.get(s.range()).unwrap_or_default(),
        })
    }

    /// The top-level member named exactly `key`, if any (the first one).
    pub fn member(&self, key: &str) -> Option<Member> {
        self.find(key, key_hash(key.as_bytes()), &mut Unlimited)
            .ok()
            .flatten()
    }

    /// The top-level member named exactly `path` (not split at dots).
    pub fn member_at(&self, path: &Path) -> Option<Member> {
        self.find(&path.text, path.hash, &mut Unlimited)
            .ok()
            .flatten()
    }

    /// Looks up a dotted path. A key that itself contains dots (Zeek's
    /// `"id.resp_h"`) is found as well as nested objects (`destination.ip`);
    /// the literal key is tried first, then each split point left to right.
    pub fn get(&self, path: &str) -> Option<Value<'a>> {
        let heads = path
            .match_indices('.')
            .map(|(dot, _)| (dot, key_hash(&path.as_bytes()[..dot])));
        let hash = key_hash(path.as_bytes());
        self.resolve(path, hash, heads, &mut ByHash(None), &mut Unlimited)
            .ok()
            .flatten()
    }

    /// [`Object::get`] with a path prepared ahead: nothing is hashed or
    /// searched for dots per lookup.
    pub fn get_path(&self, path: &Path) -> Option<Value<'a>> {
        self.get_path_within(path, &mut Unlimited).ok().flatten()
    }

    /// [`Object::get_path`] within a [`Budget`].
    pub(super) fn get_path_within<B: Budget>(
        &self,
        path: &Path,
        work: &mut B,
    ) -> Result<Option<Value<'a>>, OverBudget> {
        let heads = path.heads.iter().copied();
        self.resolve(&path.text, path.hash, heads, &mut ByHash(None), work)
    }

    /// [`Object::get_path_within`] with a nested object's members kept in
    /// `nested` for the next path under it (read once, by the scan's
    /// member loop where it can).
    pub(super) fn get_path_kept<B: Budget>(
        &self,
        path: &Path,
        nested: &mut Nested,
        work: &mut B,
    ) -> Result<Option<Value<'a>>, OverBudget> {
        let heads = path.heads.iter().copied();
        let mut kept = ByHash(Some(nested));
        self.resolve(&path.text, path.hash, heads, &mut kept, work)
    }

    /// [`Object::get_path_within`] with the top-level keys found by their
    /// ids in `firsts` (`ids`: the path's own, then its part before each
    /// dot; see [`KeyedObject`](super::plan::KeyedObject)), and a nested
    /// object's members kept in `nested` for the next path under it.
    pub(super) fn get_path_keyed<B: Budget>(
        &self,
        path: &Path,
        ids: &[u32],
        firsts: &[u32],
        nested: &mut Nested,
        work: &mut B,
    ) -> Result<Option<Value<'a>>, OverBudget> {
        let (&own, heads) = ids.split_first().unwrap_or((&u32::MAX, &[]));
        let heads = path
            .heads
            .iter()
            .zip(heads)
            .map(|(&(dot, _), &id)| (dot, id));
        let mut by_id = ById { firsts, nested };
        self.resolve(&path.text, own, heads, &mut by_id, work)
    }

    /// `path` as a key (`own`: how `finder` knows it), then split at each
    /// of `heads` (a dot's offset, and how `finder` knows the part before
    /// it), left to right.
    #[inline(always)]
    fn resolve<B: Budget, F: Finder>(
        &self,
        path: &str,
        own: F::Key,
        heads: impl Iterator<Item = (usize, F::Key)>,
        finder: &mut F,
        work: &mut B,
    ) -> Result<Option<Value<'a>>, OverBudget> {
        let value = |m: Member| Value {
            raw: &self.src[m.value.range()],
        };
        // A probe of the key index is paid per event (the plan's
        // `PathPlan::probes`); a pass over the members, here.
        if let Some(m) = finder.find(self, path, own, work)? {
            return Ok(Some(value(m)));
        }
        for (dot, head) in heads {
            if let Some(m) = finder.find(self, &path[..dot], head, work)?
                && let Some(found) = finder.within(value(m), &path[dot + 1..], work)?
            {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

/// How [`Object::resolve`] finds the member with a top-level key, and a
/// path inside its value.
trait Finder {
    type Key;

    fn find<B: Budget>(
        &mut self,
        obj: &Object<'_, '_>,
        key: &str,
        k: Self::Key,
        work: &mut B,
    ) -> Result<Option<Member>, OverBudget>;

    fn within<'a, B: Budget>(
        &mut self,
        value: Value<'a>,
        path: &str,
        work: &mut B,
    ) -> Result<Option<Value<'a>>, OverBudget>;
}

/// By the key's hash, in the object's key index; a nested object's
/// members kept in the [`Nested`] when there is one.
struct ByHash<'n>(Option<&'n mut Nested>);

impl Finder for ByHash<'_> {
    type Key = u32;

    #[inline(always)]
    fn find<B: Budget>(
        &mut self,
        obj: &Object<'_, '_>,
        key: &str,
        hash: u32,
        work: &mut B,
    ) -> Result<Option<Member>, OverBudget> {
        obj.find(key, hash, work)
    }

    #[inline(always)]
    fn within<'a, B: Budget>(
        &mut self,
        value: Value<'a>,
        path: &str,
        work: &mut B,
    ) -> Result<Option<Value<'a>>, OverBudget> {
        match &mut self.0 {
            Some(nested) => value.get_within_kept(path, nested, work),
            None => value.get_within(path, work),
        }
    }
}

/// By the key's id, in the first members recorded per id (see
/// [`Object::get_path_keyed`]).
struct ById<'f> {
    firsts: &'f [u32],
    nested: &'f mut Nested,
}

impl Finder for ById<'_> {
    type Key = u32;

    #[inline(always)]
    fn find<B: Budget>(
        &mut self,
        obj: &Object<'_, '_>,
        _: &str,
        id: u32,
        _: &mut B,
    ) -> Result<Option<Member>, OverBudget> {
        Ok(match self.firsts.get(id as usize) {
            Some(&f) if f != 0 => obj.members.get(f as usize - 1).copied(),
            _ => None,
        })
    }

    #[inline(always)]
    fn within<'a, B: Budget>(
        &mut self,
        value: Value<'a>,
        path: &str,
        work: &mut B,
    ) -> Result<Option<Value<'a>>, OverBudget> {
        value.get_within_kept(path, self.nested, work)
    }
}

#[cfg(test)]
mod tests {
    use crate::json::Scanner;

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
}
