//! The objects index: what the host passes after the batch to
//! `rulebox_process_objects`, for `count` events, in order (a plugin asks
//! for it with [`INIT_READS_OBJECTS`](super::INIT_READS_OBJECTS)). All
//! integers are little-endian `u32`.
//!
//! ```text
//! per event (EVENT_ENTRY_LEN bytes):
//!     u32 start    the event's first byte, as an offset in the batch
//!     u32 len      the event's length (without its `\n`)
//!     u32 status   low byte: 0 object, 1 malformed, 2 nested too deep,
//!                  3 valid JSON but not an object; bit 8: a key holds an
//!                  escape; bit 9: the object has members (listed or not)
//!     u32 close    offset of the closing `}` in the event (0 unless an object)
//!     u32 n        members that follow
//!   then n × member (MEMBER_ENTRY_LEN bytes), offsets within the event:
//!     u32 key_start, u32 key_end        the key, between its quotes, raw
//!     u32 value_start, u32 value_end    the value
//!     u32 hash                          the member index's hash of the raw key
//!   then, for an object when the rule declared a PathPlan:
//!     u32 group    the group that applies (0xFFFF_FFFF: none, and nothing follows)
//!     k × (u32 value_start, u32 value_end)   each of the group's k paths
//!                  (0xFFFF_FFFF twice: not present)
//! ```
//!
//! The host builds it with [`index_batch`] and the guest reads it back with
//! [`Scanner::load`], which checks every offset against the batch: a guest
//! never indexes out of bounds because of what it was handed.
//!
//! A rule that declared the top-level keys it reads (a [`KeySet`], sent in
//! its init frame) gets only the members with those keys, plus every member
//! whose key holds an escape (the host does not unescape to compare): the
//! index is then a few members per event instead of all of them. A rule
//! that declared a [`PathPlan`] gets its group and paths resolved: the host
//! looks them up natively, and the guest reads spans.
//!
//! It is wire format, like the frames: this file is both ends of it, the
//! host's encoder ([`index_batch`], with the [`IndexRequest`] an init frame
//! makes) and the guest's validating decoder ([`IndexReader`],
//! [`Scanner::load`]). Both read and write a [`Scanner`]'s state.

use alloc::string::String;
use alloc::vec::Vec;

use super::prescanned::Prescanned;
use crate::ObjectReads;
use crate::json::{
    ABSENT, Budget, KeySet, Member, NO_GROUP, Object, OverBudget, PathPlan, PlanKeys, ScanError,
    Scanner, Span, Work, find_byte, key_hash,
};

/// The bytes of one event's entry (see the module docs for its layout).
pub const EVENT_ENTRY_LEN: usize = 20;
/// The bytes of one member's entry.
pub const MEMBER_ENTRY_LEN: usize = 20;

const STATUS_ESCAPED_KEYS: u32 = 1 << 8;
const STATUS_HAS_MEMBERS: u32 = 1 << 9;

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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexRequest {
    /// `None`: every member is listed.
    listed: Option<Vec<String>>,
    plan: Option<PathPlan>,
    /// The keys to keep while scanning (listed ones marked); `None`: all.
    keep: Option<KeySet>,
    /// With `keep`, the plan's keys as ids in it: kept members are
    /// recorded by id, and the plan finds its keys there.
    plan_keys: Option<PlanKeys>,
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
        let plan_keys = plan
            .as_ref()
            .zip(keep.as_ref())
            .and_then(|(plan, keep)| PlanKeys::new(plan, keep));
        IndexRequest {
            listed,
            plan,
            keep,
            plan_keys,
        }
    }

    /// What an init frame asked for.
    pub fn from_reads(reads: &ObjectReads<'_>) -> IndexRequest {
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

/// The work (bytes of nested objects passed over, keys compared one by one,
/// and per event the plan's [`PathPlan::probes`]) the host may spend
/// resolving a [`PathPlan`] for a batch, per byte of the batch, on top of
/// [`PLAN_WORK_FLOOR`]. The host does it outside the
/// plugin's deadline; a plan that asks for more fails the batch's call.
/// The T1071.002 rule's plan spends under 2 units a byte on its sample
/// events, every preset and `event_path` (its tests check under 4):
/// nested lookups enter only small objects.
pub const PLAN_WORK_PER_BYTE: u64 = 64;
/// The work every batch may spend whatever its size.
pub const PLAN_WORK_FLOOR: u64 = 1 << 20;

/// What [`index_batch_checked`] found besides the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Indexing {
    /// The plan's work spent.
    pub work: u64,
    /// Every byte of the batch is in an event the scan read as valid
    /// JSON text, or is a line's `\n`. JSON text is UTF-8 and the scan
    /// checks that as it goes, so such a batch is valid UTF-8 with no
    /// second look (an event found malformed or nested too deep proves
    /// nothing about its bytes).
    pub valid_text: bool,
}

/// Scans each of the `count` events of `batch` (each followed by `\n`, or
/// ending the batch) with `scanner` and appends the [objects
/// index](EVENT_ENTRY_LEN) that `request` asks for to `out`. The path
/// plan is resolved within [`PLAN_WORK_PER_BYTE`] × the batch's bytes +
/// [`PLAN_WORK_FLOOR`]; returns the work spent. Over that, `out` is
/// incomplete and the batch is refused.
pub fn index_batch(
    scanner: &mut Scanner,
    request: &IndexRequest,
    batch: &[u8],
    count: usize,
    out: &mut Vec<u8>,
) -> Result<u64, OverBudget> {
    index_batch_checked(scanner, request, batch, count, out).map(|i| i.work)
}

/// [`index_batch`], and whether the scan showed the whole batch to be
/// valid JSON text ([`Indexing::valid_text`]).
pub fn index_batch_checked(
    scanner: &mut Scanner,
    request: &IndexRequest,
    batch: &[u8],
    count: usize,
    out: &mut Vec<u8>,
) -> Result<Indexing, OverBudget> {
    index_batch_prescanned(scanner, request, batch, count, None, out)
}

/// [`index_batch_checked`], taking each event's members from `pre` where
/// it holds an entry that fits the event instead of scanning it: the same
/// index, the same budget (its entries are the scan's own answer for
/// those bytes, see [`Prescanned`]).
pub fn index_batch_prescanned(
    scanner: &mut Scanner,
    request: &IndexRequest,
    batch: &[u8],
    count: usize,
    pre: Option<&Prescanned>,
    out: &mut Vec<u8>,
) -> Result<Indexing, OverBudget> {
    index_batch_with_ends(scanner, request, batch, count, None, pre, out)
}

/// [`index_batch_prescanned`], with where each event ends given
/// (`ends[i]`: just past event `i`'s `\n`, as whoever cut the batch into
/// lines found it) rather than looked for again. An entry that does not
/// end at a `\n` after the event's start is ignored, and the event's end
/// looked for. That check is made once the event is indexed, when the
/// line's last bytes are in the cache (made first, its load missed the
/// cache for most events); an event indexed to a wrong end is indexed
/// again, and its work counted twice.
pub fn index_batch_with_ends(
    scanner: &mut Scanner,
    request: &IndexRequest,
    batch: &[u8],
    count: usize,
    ends: Option<&[usize]>,
    pre: Option<&Prescanned>,
    out: &mut Vec<u8>,
) -> Result<Indexing, OverBudget> {
    let mut cx = Batched {
        request,
        pre,
        work: Work::within(PLAN_WORK_PER_BYTE.saturating_mul(batch.len() as u64) + PLAN_WORK_FLOOR),
        probes: request.plan.as_ref().map_or(0, PathPlan::probes),
        invalid: 0,
    };
    let searched = |rest: &[u8]| find_byte(rest, b'\n').unwrap_or(rest.len());
    let mut start = 0;
    for line in 0..count {
        let rest = batch.get(start..).unwrap_or_default();
        let given = ends
            .and_then(|e| e.get(line))
            .and_then(|&end| end.checked_sub(start + 1))
            .filter(|&len| len < rest.len());
        let entry = out.len();
        let mut len = given.unwrap_or_else(|| searched(rest));
        let mut invalid = cx.index_event(scanner, line, start, &rest[..len], out)?;
        if given.is_some() && rest[len] != b'\n' {
            out.truncate(entry);
            len = searched(rest);
            invalid = cx.index_event(scanner, line, start, &rest[..len], out)?;
        }
        cx.invalid += invalid as usize;
        start += len + 1;
    }
    Ok(Indexing {
        work: cx.work.spent,
        valid_text: cx.invalid == 0 && start >= batch.len(),
    })
}

/// What [`index_batch_with_ends`] keeps from event to event.
struct Batched<'a> {
    request: &'a IndexRequest,
    pre: Option<&'a Prescanned>,
    work: Work,
    /// The plan's probes, spent on each event it is resolved in.
    probes: usize,
    /// Events found not valid JSON text.
    invalid: usize,
}

impl Batched<'_> {
    /// Appends the entry of event `line` (`event`, at `start` in its
    /// batch) to `out`: its members from `pre` when it holds them, else
    /// scanned. True when the event is not valid JSON text (malformed or
    /// nested too deep).
    #[inline(always)]
    fn index_event(
        &mut self,
        scanner: &mut Scanner,
        line: usize,
        start: usize,
        event: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool, OverBudget> {
        let request = self.request;
        let entry = out.len();
        put_u32s(out, &[start as u32, event.len() as u32, 0, 0, 0]);
        let scanned = match self.pre.and_then(|p| p.get(line, event)) {
            Some((members, close)) => {
                scanner.take_scanned(members, close);
                Ok(())
            }
            None => scanner.scan_inner(event, false),
        };
        let mut invalid = false;
        let (status, close, n) = match scanned {
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
                    let keyed = request.plan_keys.as_ref();
                    if scanner.escaped_keys {
                        scanner.table.clear(); // lookups compare keys
                    } else if keyed.is_none() {
                        scanner.fill_table(event);
                    }
                    self.work.spend(self.probes)?;
                    scanner.resolve_within(event, plan, keyed, &mut self.work)?;
                    put_u32s(out, &[scanner.group]);
                    out.reserve(scanner.slots.len() * 8);
                    for s in &scanner.slots {
                        put_u32s(out, &[s.start, s.end]);
                    }
                }
                (flags, scanner.close as u32, n)
            }
            Err(e) => {
                invalid = matches!(e, ScanError::Malformed | ScanError::TooDeep);
                (status_code(e), 0, 0)
            }
        };
        out[entry + 8..entry + 12].copy_from_slice(&status.to_le_bytes());
        out[entry + 12..entry + 16].copy_from_slice(&close.to_le_bytes());
        out[entry + 16..entry + 20].copy_from_slice(&n.to_le_bytes());
        Ok(invalid)
    }
}

impl Scanner {
    /// Keeps (with their hashes) the members just scanned that `request`
    /// needs, appends the listed ones to `out`; returns how many it listed.
    /// Inlined into `index_batch`, its one caller, on the host's hot path
    /// (which it no longer was by itself once this file was split off).
    /// With a [`KeySet`], each kept member's id is recorded in `firsts`.
    #[inline]
    fn keep_and_list(&mut self, event: &[u8], request: &IndexRequest, out: &mut Vec<u8>) -> u32 {
        let mut n = 0u32;
        let mut kept = 0;
        self.hashes.clear();
        self.forget_ids(request.keep.as_ref().map_or(0, |k| k.keys().len()));
        out.reserve(self.members.len() * MEMBER_ENTRY_LEN);
        for i in 0..self.members.len() {
            let (m, escaped) = (self.members[i], self.key_escaped[i]);
            let key = &event[m.key.range()];
            let (hash, listed) = match &request.keep {
                // Escaped keys are kept: the host does not unescape to compare.
                Some(keep) if !escaped => match keep.find(key) {
                    Some(found) => {
                        let first = &mut self.firsts[found.id as usize];
                        if *first == 0 {
                            *first = kept as u32 + 1;
                            self.kept_ids.push(found.id);
                            self.present |= PlanKeys::bit(found.id);
                        }
                        (found.hash, found.listed)
                    }
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

    /// Clears the ids the last object recorded, and makes room for `keys`.
    #[inline]
    fn forget_ids(&mut self, keys: usize) {
        for &id in &self.kept_ids {
            self.firsts[id as usize] = 0;
        }
        self.kept_ids.clear();
        self.present = 0;
        if self.firsts.len() < keys {
            self.firsts.resize(keys, 0);
        }
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
    use crate::json::Path;
    use alloc::format;
    use alloc::string::ToString;

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

    /// What a HEC source keeps for `events`, each read as an envelope's
    /// `event`.
    fn kept_scans(events: &[&[u8]]) -> Prescanned {
        let (mut scanner, mut inner) = (Scanner::new(), Vec::new());
        let mut pre = Prescanned::default();
        for e in events {
            let envelope = [&b"{\"event\":"[..], e, b"}"].concat();
            match scanner.scan_prefix_opening(&envelope, b"event", &mut inner) {
                Ok((_, _, Some(opened))) if opened.start == 9 => pre.push(&inner, opened.close),
                _ => pre.push_unscanned(),
            }
        }
        pre
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
            index_batch(&mut host, request, &batch, all.len(), &mut index).unwrap();
            // From the members a HEC source's scan kept: the same index.
            let pre = kept_scans(&all);
            let followed = (0..all.len()).filter(|&i| pre.get(i, all[i]).is_some());
            assert_eq!(followed.count(), 4);
            let mut from_kept = Vec::new();
            let n = all.len();
            index_batch_prescanned(&mut host, request, &batch, n, Some(&pre), &mut from_kept)
                .unwrap();
            assert_eq!(from_kept, index);
            // With the line ends given, right or (some of them) wrong: the
            // same index; a wrong end is not taken.
            let ends: Vec<usize> = batch
                .iter()
                .enumerate()
                .filter(|(_, c)| **c == b'\n')
                .map(|(i, _)| i + 1)
                .collect();
            let mut wrong = ends.clone();
            wrong[1] -= 1; // not at a newline
            wrong[3] = wrong[2]; // not after the line's start
            wrong[5] = batch.len() + 10; // past the batch
            wrong.truncate(n - 1); // one short
            for given in [&ends, &wrong] {
                let mut with_ends = Vec::new();
                let g = Some(&given[..]);
                index_batch_with_ends(&mut host, request, &batch, n, g, Some(&pre), &mut with_ends)
                    .unwrap();
                assert_eq!(with_ends, index);
            }
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

    /// A plan resolved by key ids (a rule that declared its keys) answers
    /// as one resolved through the object's key index: repeated keys,
    /// dotted keys beside nested objects, two paths under one nested
    /// object, escaped keys, and more keys than the id filter has bits.
    #[test]
    fn a_plan_resolved_by_key_ids_answers_as_lookups_do() {
        let keys = ["a", "x", "x.y", "b", "b.c", "e\\u0073c", "esc", "n", "n.m"];
        let values = [
            "1",
            "\"s\"",
            "{\"y\":2,\"c\":[1],\"m\":{\"q\":3}}",
            "{\"c\":{\"d\":4},\"y\":null}",
            "{ \"y\" : 5 , \"m\":\"t\" }",
            "{\"\\u0079\":6}",
            "{}",
        ];
        let mut plan = PathPlan::new();
        plan.add_group(&["x.y", "n.m.q"], &["x.y", "x.c", "a", "missing"]);
        plan.add_group(&["b.c.d", "esc"], &["b.c", "b.y", "esc", "x"]);
        plan.add_group(&[], &["a", "n.m", "n.m.q"]);
        // Enough other declared keys that the plan's ids pass 64.
        let filler: Vec<String> = (0..70).map(|i| format!("k{i}")).collect();
        let listed: Vec<&str> = filler.iter().map(String::as_str).chain(["a"]).collect();
        let request = IndexRequest::new(Some(&listed), Some(plan.clone()));
        assert!(request.plan_keys.is_some());
        let mut seed = 0x5851_f42d_4c95_7f2du64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 33) as usize % n
        };
        let (mut host, mut guest, mut direct) = (Scanner::new(), Scanner::new(), Scanner::new());
        for _ in 0..3000 {
            let mut members = Vec::new();
            for _ in 0..next(7) {
                let key = match next(4) {
                    0 => format!("k{}", next(70)),
                    _ => keys[next(keys.len())].to_string(),
                };
                members.push(format!("\"{key}\":{}", values[next(values.len())]));
            }
            let event = format!("{{{}}}", members.join(","));
            let batch = format!("{event}\n{event}\n");
            let mut index = Vec::new();
            index_batch(&mut host, &request, batch.as_bytes(), 2, &mut index).unwrap();
            let mut r = IndexReader::new(&index);
            let want = direct.scan_planned(event.as_bytes(), &plan).unwrap();
            let want: Vec<_> = (0..4).map(|i| want.slot(i).map(|v| v.raw)).collect();
            let want_group = direct
                .scan_planned(event.as_bytes(), &plan)
                .unwrap()
                .group();
            for _ in 0..2 {
                let (_, got) = guest.load(batch.as_bytes(), &mut r, Some(&plan)).unwrap();
                let got = got.unwrap();
                let slots: Vec<_> = (0..4).map(|i| got.slot(i).map(|v| v.raw)).collect();
                assert_eq!((got.group(), slots), (want_group, want.clone()), "{event}");
            }
        }
        // A nested object's members are kept only for its own event: the
        // same bytes rewritten in place with its members in another order.
        let mut batch = br#"{"x":{"y":"1","c":2}}"#.to_vec();
        for (next, y) in [
            (&br#"{"x":{"c":2,"y":"1"}}"#[..], "\"1\""),
            (&batch.clone(), "\"1\""),
        ] {
            let mut index = Vec::new();
            index_batch(&mut host, &request, &batch, 1, &mut index).unwrap();
            let (_, got) = guest
                .load(&batch, &mut IndexReader::new(&index), Some(&plan))
                .unwrap();
            let got = got.unwrap();
            assert_eq!(
                (got.group(), got.slot(0).map(|v| v.raw)),
                (Some(0), Some(y.as_bytes()))
            );
            assert_eq!(got.slot(1).map(|v| v.raw), Some(&b"2"[..]));
            batch.copy_from_slice(next);
        }
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
            )
            .unwrap();
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
            index_batch(&mut Scanner::new(), &request, &batch, 2, &mut index).unwrap();
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

    /// `valid_text` only when every event is valid JSON text (objects or
    /// not) and every byte belongs to one; never for a batch that is not
    /// UTF-8.
    #[test]
    fn valid_text_only_for_a_batch_read_whole_as_json() {
        let checked = |batch: &[u8], count: usize| {
            let mut index = Vec::new();
            let r = index_batch_checked(
                &mut Scanner::new(),
                &IndexRequest::new(Some(&["a"]), None),
                batch,
                count,
                &mut index,
            );
            r.unwrap().valid_text
        };
        let deep = format!("{}{}\n", "[".repeat(200), "]".repeat(200));
        let cases: &[(&[u8], usize, bool)] = &[
            (b"{\"a\":\"\xc3\xa9\"}\n{\"b\":[1,{}]}\n", 2, true),
            (b"{\"a\":1}\n123\n\"text\"\n", 3, true),
            (b"{\"a\":1}", 1, true), // the last line without its newline
            (b"{\"a\":1}\nnot json\n", 2, false),
            (b"{\"a\":\"\xff\"}\n", 1, false),
            (b"\xc3\n", 1, false),
            (b"{\"a\":1}\n\n", 2, false), // an empty line is not JSON
            (deep.as_bytes(), 1, false),
            // Fewer events than lines: the bytes past them were not read.
            (b"{\"a\":1}\n\xff\n", 1, false),
        ];
        for &(batch, count, want) in cases {
            assert_eq!(
                checked(batch, count),
                want,
                "{:?}",
                String::from_utf8_lossy(batch)
            );
            if want {
                assert!(core::str::from_utf8(batch).is_ok());
            }
        }
    }

    /// An event indexed to a wrong given end, and found not valid JSON
    /// there, is indexed again to its own end, and only that verdict
    /// counts: a batch of valid events is still valid text.
    #[test]
    fn a_wrong_end_is_indexed_again_and_only_the_right_verdict_counts() {
        let batch = b"{\"a\":1}\n{\"b\":[2]}\n";
        let request = IndexRequest::new::<&str>(None, None);
        let mut scanner = Scanner::new();
        let mut want = Vec::new();
        let right = index_batch(&mut scanner, &request, batch, 2, &mut want);
        assert!(right.is_ok());
        for ends in [[7, 18], [8, 17], [3, 18]] {
            let mut got = Vec::new();
            let indexing = index_batch_with_ends(
                &mut scanner,
                &request,
                batch,
                2,
                Some(&ends),
                None,
                &mut got,
            )
            .unwrap();
            assert_eq!(got, want, "{ends:?}");
            assert!(indexing.valid_text, "{ends:?}");
        }
    }
}
