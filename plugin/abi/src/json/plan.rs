//! What a rule declares it reads, prepared once: a [`Path`] (a dotted field
//! path with its key hashes computed ahead), a [`PathPlan`] (groups of paths,
//! one per shape of event; resolved per event into a group and slots) and a
//! [`KeySet`] (the top-level keys the host lists in the objects index).

use alloc::string::String;
use alloc::vec::Vec;

use super::swar::{bytes_eq, key_hash};
use super::value::Nested;
use super::{Budget, Object, OverBudget, Span, Value};

/// Field paths a rule reads, in groups, one per shape of event it knows
/// (a schema preset, say): for each event the first group one of whose
/// `when` paths is present applies (a group without `when` paths always
/// does), and each of that group's `paths` is looked up ([`Object::get`]
/// semantics). A rule then reads [`Object::group`] and [`Object::slot`]
/// instead of looking fields up. In the sandbox the host does this
/// natively, with the event scan, and hands the guest only the spans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathPlan {
    pub(crate) groups: Vec<PathGroup>,
}

/// One group of a [`PathPlan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathGroup {
    pub(crate) when: Vec<Path>,
    pub(crate) paths: Vec<Path>,
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
pub(crate) const ABSENT: u32 = u32::MAX;
/// No group of the plan applies.
pub(crate) const NO_GROUP: u32 = u32::MAX;

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

    /// The most key-index probes resolving the plan may take for one event:
    /// each path, once and at each of its dots.
    pub fn probes(&self) -> usize {
        self.groups
            .iter()
            .flat_map(|g| g.when.iter().chain(&g.paths))
            .map(|p| 1 + p.heads.len())
            .sum()
    }

    /// Every top-level key a lookup of the plan may touch.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.groups
            .iter()
            .flat_map(|g| g.when.iter().chain(&g.paths))
            .flat_map(|p| KeySet::path_keys(p.as_str()))
    }

    /// The group that applies to `obj`, and into `spans` the value span of
    /// each of its paths (`ABSENT` ends when not present), within `work`.
    /// With `keyed`, top-level keys are found by their [`PlanKeys`] ids
    /// instead of the object's key index (the same members: see
    /// [`KeyedObject`]). `nested` keeps the members of the nested object
    /// read last, for the next path under it (forgotten before each
    /// object).
    pub(super) fn resolve<B: Budget>(
        &self,
        obj: &Object<'_, '_>,
        keyed: Option<KeyedObject<'_>>,
        nested: &mut Nested,
        spans: &mut Vec<Span>,
        work: &mut B,
    ) -> Result<u32, OverBudget> {
        match keyed {
            Some(k) => self.resolve_by(obj, spans, work, |n, p, work| {
                // None of the path's keys is in the object: no lookup.
                if k.present & k.keys.masks[n] == 0 {
                    return Ok(None);
                }
                obj.get_path_keyed(p, &k.keys.ids[n], k.firsts, nested, work)
            }),
            None => self.resolve_by(obj, spans, work, |_, p, work| {
                obj.get_path_kept(p, nested, work)
            }),
        }
    }

    /// [`PathPlan::resolve`] with `get` looking up path `n` of the plan
    /// (every group's `when` paths, then its `paths`, in order; the
    /// numbering of [`PlanKeys`]).
    #[inline(always)]
    fn resolve_by<'a, B: Budget>(
        &self,
        obj: &Object<'_, 'a>,
        spans: &mut Vec<Span>,
        work: &mut B,
        mut get: impl FnMut(usize, &Path, &mut B) -> Result<Option<Value<'a>>, OverBudget>,
    ) -> Result<u32, OverBudget> {
        spans.clear();
        let mut at = None;
        // The `when` path found present: a group's paths often repeat it
        // (its destination, say), and its value is not looked up twice.
        let mut seen = None;
        let mut base = 0;
        for (i, g) in self.groups.iter().enumerate() {
            if g.when.is_empty() {
                at = Some((i, base));
                break;
            }
            if let Some(found) = first_present(&g.when, base, work, &mut get)? {
                (at, seen) = (Some((i, base)), Some(found));
                break;
            }
            base += g.when.len() + g.paths.len();
        }
        let Some((at, base)) = at else {
            return Ok(NO_GROUP);
        };
        let group = &self.groups[at];
        let src = obj.src.as_ptr() as usize;
        spans.reserve(group.paths.len());
        for (k, p) in group.paths.iter().enumerate() {
            let value = match seen {
                Some((when, v)) if when.text == p.text => Some(v),
                _ => get(base + group.when.len() + k, p, work)?,
            };
            spans.push(match value {
                Some(v) => {
                    let start = v.raw.as_ptr() as usize - src;
                    Span::of(start, start + v.raw.len())
                }
                None => Span {
                    start: ABSENT,
                    end: ABSENT,
                },
            });
        }
        Ok(at as u32)
    }
}

/// The first of `paths` (numbered from `base`) that `get` finds, with its
/// value.
fn first_present<'p, 'a, B: Budget>(
    paths: &'p [Path],
    base: usize,
    work: &mut B,
    mut get: impl FnMut(usize, &Path, &mut B) -> Result<Option<Value<'a>>, OverBudget>,
) -> Result<Option<(&'p Path, Value<'a>)>, OverBudget> {
    for (i, p) in paths.iter().enumerate() {
        if let Some(v) = get(base + i, p, work)? {
            return Ok(Some((p, v)));
        }
    }
    Ok(None)
}

/// A [`PathPlan`]'s top-level keys as ids in a [`KeySet`] that holds them
/// all: per path of the plan, in [`PathPlan::probes`] order, the id of the
/// path as a key and of its part before each dot. A scan that keeps the
/// set's keys records each id's first member ([`KeyedObject`]), and
/// resolving the plan then reads those instead of probing a key index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlanKeys {
    ids: Vec<Vec<u32>>,
    /// Per path, the [`PlanKeys::bit`]s of its ids.
    masks: Vec<u64>,
}

impl PlanKeys {
    /// The ids of `plan`'s keys in `set`; `None` if one is not there.
    pub(crate) fn new(plan: &PathPlan, set: &KeySet) -> Option<PlanKeys> {
        let ids: Vec<Vec<u32>> = plan
            .groups
            .iter()
            .flat_map(|g| g.when.iter().chain(&g.paths))
            .map(|p| {
                KeySet::path_keys(p.as_str())
                    .map(|k| set.id_of(k))
                    .collect::<Option<Vec<u32>>>()
            })
            .collect::<Option<_>>()?;
        let masks = ids
            .iter()
            .map(|ids| ids.iter().fold(0, |m, &id| m | PlanKeys::bit(id)))
            .collect();
        Some(PlanKeys { ids, masks })
    }

    /// A bit for key `id` in a 64-bit filter of the keys an object has
    /// (ids 64 apart share one: the filter only says a key may be there).
    #[inline]
    pub(crate) fn bit(id: u32) -> u64 {
        1 << (id % 64)
    }
}

/// An object's members by [`KeySet`] id: `firsts[id]` is one more than the
/// index, among the object's members, of the first member with that key
/// (0: none); `present` holds the [`PlanKeys::bit`] of every id it has.
/// Only for objects none of whose keys holds an escape: then a key's
/// first member by id is the one its key index finds.
#[derive(Debug)]
pub(crate) struct KeyedObject<'k> {
    pub(crate) keys: &'k PlanKeys,
    pub(crate) firsts: &'k [u32],
    pub(crate) present: u64,
}

/// A field path prepared once for [`Object::get_path`]: the hashes of the
/// top-level keys it may match are computed ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub(super) text: String,
    pub(super) hash: u32,
    /// Each dot's offset, with the hash of the part before it.
    pub(super) heads: Vec<(usize, u32)>,
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

/// The top-level keys a rule reads, as the host matches them against each
/// event's raw keys when it builds an
/// [objects index](crate::frame::index).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    pub(crate) fn marked<S: AsRef<str>, T: AsRef<str>>(
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

    /// The id of key `k` (its position in [`KeySet::keys`]), if in the set.
    pub(crate) fn id_of(&self, k: &str) -> Option<u32> {
        self.find(k.as_bytes()).map(|found| found.id)
    }

    /// What the set knows of the raw (unescaped) key `k`, when `k` is in
    /// it; most keys that are not fail the filter before being hashed.
    #[inline]
    pub(crate) fn find(&self, k: &[u8]) -> Option<KeyFound> {
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
                    return Some(KeyFound {
                        hash,
                        listed: self.listed[j as usize - 1],
                        id: j - 1,
                    });
                }
                _ => at = (at + 1) & mask,
            }
        }
    }
}

/// A key of a [`KeySet`] found ([`KeySet::find`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyFound {
    /// The [`key_hash`] of the key.
    pub(crate) hash: u32,
    /// Listed in the objects index (not only used to resolve a plan).
    pub(crate) listed: bool,
    /// Its position in [`KeySet::keys`].
    pub(crate) id: u32,
}

#[cfg(test)]
mod tests {
    use super::PathPlan;
    use crate::json::Scanner;

    /// A plan's group and slots are what looking each path up gives, also
    /// where a group's paths repeat the `when` path that chose it (whose
    /// value is then not looked up again).
    #[test]
    fn slots_are_the_lookups_of_the_first_group_present() {
        let groups: [(&[&str], &[&str]); 4] = [
            (&["dest_ip"], &["dest_ip", "dest_port"]),
            (
                &["nope", "destination.ip"],
                &["destination.port", "destination.ip", "nope"],
            ),
            (&["id.resp_h"], &["x", "id.resp_h", "id.resp_h"]),
            (&[], &["a", "dest_ip"]),
        ];
        let mut plan = PathPlan::new();
        for (when, paths) in &groups {
            plan.add_group(when, paths);
        }
        let events: [(&str, Option<usize>); 7] = [
            (r#"{"dest_ip":"1.2.3.4","dest_port":21}"#, Some(0)),
            (r#"{"destination":{"port":445,"ip":"5.6.7.8"}}"#, Some(1)),
            (
                r#"{"destination.ip":"flat","destination":{"ip":"nested"}}"#,
                Some(1),
            ),
            (r#"{"id":{"resp_h":"9.9.9.9"},"x":[1]}"#, Some(2)),
            (
                r#"{"id.resp_h":"8.8.8.8","id":{"resp_h":"not this"}}"#,
                Some(2),
            ),
            (r#"{"a":true}"#, Some(3)),
            (r#"{"destination":{"port":1},"dest_ip":null}"#, Some(0)),
        ];
        let (mut planned, mut plain) = (Scanner::new(), Scanner::new());
        for (event, group) in events {
            let o = planned.scan_planned(event.as_bytes(), &plan).unwrap();
            assert_eq!(o.group(), group, "{event}");
            let want = plain.scan(event.as_bytes()).unwrap();
            let paths = groups[group.unwrap()].1;
            for (i, p) in paths.iter().enumerate() {
                assert_eq!(o.slot(i), want.get(p), "{event}: {p}");
            }
        }
    }
}
