//! A batch of NDJSON lines: the unit that moves between components.
//!
//! Invariant: the bytes are lines, each followed by exactly one `\n`, and
//! no line contains `\n`; the batch keeps where each line ends, so that
//! the components after the one that cut the lines do not look for them
//! again. When a batch carries metadata (say, the Splunk HEC envelope of
//! each event), it has exactly one entry per line, empty for lines
//! without.

use std::sync::Arc;

use rulebox_abi::frame::prescanned::Prescanned;
use rulebox_abi::json::Member;

use crate::durable::Ack;
use crate::partition::Part;

/// Lines of NDJSON bytes, each with its `\n`, and the delivery tokens of the
/// source batches they came from ([`crate::durable`]).
#[derive(Debug, Default, Clone)]
pub struct Batch {
    data: Vec<u8>,
    /// Where each line ends: the offset just past its `\n` (the next
    /// line's start). Its length is the number of lines.
    ends: Vec<usize>,
    /// Per-line metadata, when any line has some.
    meta: Option<Box<Meta>>,
    /// Per line, the members a source's scan found, when it kept any
    /// (the HEC source's envelopes): the objects index starts from them.
    scans: Option<Box<Prescanned>>,
    pub acks: Vec<Arc<Ack>>,
    /// Lines a file source reads again after a crash so that a plugin's
    /// restored state catches up: every sink had already written them (and
    /// what they became), so sinks let them go without writing.
    pub replay: bool,
    /// The partition these lines belong to, when the source reads a
    /// partitioned stream ([`crate::partition`]): the transform keeps an
    /// instance per partition.
    pub part: Option<Arc<Part>>,
    /// Every line is JSON text the host vouches for: read whole as such
    /// on its way here, or such text with members added that the host
    /// checked ([`Batch::push_json_parts`]); any other line pushed clears
    /// it. A sink that must send valid JSON may then skip reading the
    /// lines again.
    json: bool,
}

/// Opaque bytes per line (the HEC source keeps the envelope without its
/// `event` here, as a JSON object), travelling with the line through
/// transforms to the sinks.
#[derive(Debug, Default, Clone)]
struct Meta {
    data: Vec<u8>,
    /// End of each line's entry in `data`.
    ends: Vec<usize>,
}

impl PartialEq for Batch {
    fn eq(&self, other: &Batch) -> bool {
        self.data == other.data
    }
}

impl Eq for Batch {}

impl Batch {
    pub fn with_capacity(bytes: usize) -> Batch {
        Batch {
            data: Vec::with_capacity(bytes),
            ends: Vec::new(),
            meta: None,
            scans: None,
            acks: Vec::new(),
            replay: false,
            part: None,
            json: false,
        }
    }

    /// Takes bytes of complete lines and where each ends (just past its
    /// `\n`), as the cutter found them.
    fn from_ends(data: Vec<u8>, ends: Vec<usize>) -> Batch {
        debug_assert!(data.last().is_none_or(|&c| c == b'\n'));
        debug_assert_eq!(ends.last().copied().unwrap_or(0), data.len());
        debug_assert!(ends.iter().all(|&e| data[e - 1] == b'\n'));
        Batch {
            data,
            ends,
            meta: None,
            scans: None,
            acks: Vec::new(),
            replay: false,
            part: None,
            json: false,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    pub fn count(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Where each line ends: the offset just past its `\n`.
    pub fn line_ends(&self) -> &[usize] {
        &self.ends
    }

    /// Room for at least `bytes` more bytes of lines, so that lines
    /// appended one by one do not grow the buffer step by step.
    pub fn reserve(&mut self, bytes: usize) {
        self.data.reserve(bytes);
    }

    /// (bytes, lines) now held, for [`Batch::truncate_bytes`].
    pub fn len_bytes(&self) -> (usize, usize) {
        (self.data.len(), self.count())
    }

    pub fn truncate_bytes(&mut self, len: usize, count: usize) {
        self.data.truncate(len);
        self.ends.truncate(count);
        debug_assert_eq!(self.ends.last().copied().unwrap_or(0), len);
        if let Some(m) = &mut self.meta {
            m.ends.truncate(count);
            let end = m.ends.last().copied().unwrap_or(0);
            m.data.truncate(end);
        }
        if let Some(p) = &mut self.scans {
            p.truncate(count);
        }
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
        self.json = false;
        self.meta = None;
        self.scans = None;
        self.acks.clear();
        self.replay = false;
        self.part = None;
    }

    /// Whether the batch keeps metadata: a line has some, or room for some
    /// was reserved ([`Batch::reserve_meta`]).
    pub fn has_meta(&self) -> bool {
        self.meta.is_some()
    }

    /// Bytes of metadata held, all lines together.
    pub fn meta_len(&self) -> usize {
        self.meta.as_ref().map_or(0, |m| m.data.len())
    }

    /// Room for `bytes` more bytes of metadata over `lines` more lines
    /// (nothing when `bytes` is 0): a batch made from one that carries
    /// metadata gets room for it at once, not by doubling line by line.
    pub fn reserve_meta(&mut self, bytes: usize, lines: usize) {
        if bytes > 0 {
            let meta = self.meta_mut();
            meta.data.reserve(bytes);
            meta.ends.reserve(lines);
        }
    }

    /// The metadata, made (an empty entry for each line so far) if there
    /// was none.
    fn meta_mut(&mut self) -> &mut Meta {
        let count = self.count();
        self.meta.get_or_insert_with(|| {
            Box::new(Meta {
                data: Vec::new(),
                ends: vec![0; count],
            })
        })
    }

    /// Line `i`'s metadata (empty when it has none).
    pub fn meta(&self, i: usize) -> &[u8] {
        match &self.meta {
            Some(m) if i < m.ends.len() => {
                let start = if i == 0 { 0 } else { m.ends[i - 1] };
                &m.data[start..m.ends[i]]
            }
            _ => &[],
        }
    }

    /// Gives the last line pushed the metadata `m` (which replaces none:
    /// call once per line, right after pushing it).
    pub fn set_last_meta(&mut self, m: &[u8]) {
        if m.is_empty() || self.is_empty() {
            return;
        }
        let meta = self.meta_mut();
        meta.data.extend_from_slice(m);
        if let Some(last) = meta.ends.last_mut() {
            *last = meta.data.len();
        }
    }

    /// Ends the line being pushed (its bytes are in): its `\n`, its end,
    /// and the metadata and the kept scans one entry per line.
    fn line_ended(&mut self) {
        self.data.push(b'\n');
        self.ends.push(self.data.len());
        if let Some(m) = &mut self.meta {
            m.ends.push(m.data.len());
        }
        if let Some(p) = &mut self.scans {
            p.push_unscanned();
        }
    }

    /// Keeps, for the last line pushed, what a scan of it found (its
    /// `members` and closing brace `close`, offsets in the line, as
    /// [`Opened`](rulebox_abi::json::Opened) gives them): call once per
    /// line, right after pushing it, and only with the scan of exactly its
    /// bytes (the objects index takes it for them).
    pub fn set_last_scan(&mut self, members: &[Member], close: usize) {
        let Some(last) = self.count().checked_sub(1) else {
            return;
        };
        let room = self.data.capacity();
        let scans = self.scans.get_or_insert_with(|| {
            let mut p = Prescanned::unscanned(last + 1);
            // A member every 32 bytes of the batch's room (a HEC request's
            // batch has its body's): most requests' without regrowing.
            p.reserve(room / 32);
            Box::new(p)
        });
        scans.truncate(last);
        scans.push(members, close);
    }

    /// What sources' scans found, per line, when any was kept.
    pub fn scans(&self) -> Option<&Prescanned> {
        self.scans.as_deref()
    }

    /// Lets what sources' scans kept go (the objects index scans).
    pub fn forget_scans(&mut self) {
        self.scans = None;
    }

    /// The memory [`Batch::scans`] holds (0: none kept).
    pub fn kept_bytes(&self) -> usize {
        self.scans.as_ref().map_or(0, |p| p.bytes())
    }

    /// Marks the events as not delivered (see [`crate::durable`]).
    pub fn fail_acks(&self) {
        self.acks.iter().for_each(|a| a.fail());
    }

    /// [`Batch::fail_acks`], saying why (a request's answer may tell).
    pub fn fail_acks_because(&self, why: &str) {
        self.acks.iter().for_each(|a| a.fail_because(why));
    }

    /// Whether every line is JSON text the host vouches for
    /// ([`Batch::push_json_parts`]); false for an empty batch.
    pub fn all_json(&self) -> bool {
        self.json && !self.is_empty()
    }

    /// Appends one line (which must not contain `\n`).
    pub fn push_line(&mut self, line: &[u8]) {
        self.json = false;
        self.data.extend_from_slice(line);
        self.line_ended();
    }

    /// Appends one line that `write` appends to the batch's bytes itself
    /// (no copy in between); it must write no `\n`.
    pub fn push_line_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        self.json = false;
        write(&mut self.data);
        self.line_ended();
    }

    /// Appends one line made of `parts`.
    pub fn push_parts(&mut self, parts: &[&[u8]]) {
        self.json = false;
        self.append_parts(parts);
    }

    /// [`Batch::push_parts`] of a line the caller vouches is JSON text
    /// (see [`Batch::all_json`]).
    pub fn push_json_parts(&mut self, parts: &[&[u8]]) {
        self.json = self.json || self.is_empty();
        self.append_parts(parts);
    }

    fn append_parts(&mut self, parts: &[&[u8]]) {
        for p in parts {
            self.data.extend_from_slice(p);
        }
        self.line_ended();
    }

    pub fn extend(&mut self, other: &Batch) {
        let (before, base) = (self.count(), self.data.len());
        self.json = (self.json || before == 0) && (other.json || other.is_empty());
        self.data.extend_from_slice(&other.data);
        self.ends.extend(other.ends.iter().map(|e| e + base));
        self.acks.extend(other.acks.iter().cloned());
        match (&mut self.meta, &other.meta) {
            (None, None) => {}
            (Some(m), None) => m
                .ends
                .extend(std::iter::repeat_n(m.data.len(), other.count())),
            (mine, Some(o)) => {
                let m = mine.get_or_insert_with(|| {
                    Box::new(Meta {
                        data: Vec::new(),
                        ends: vec![0; before],
                    })
                });
                let base = m.data.len();
                m.data.extend_from_slice(&o.data);
                m.ends.extend(o.ends.iter().map(|e| e + base));
            }
        }
        match (&mut self.scans, &other.scans) {
            (None, None) => {}
            (Some(p), None) => (0..other.count()).for_each(|_| p.push_unscanned()),
            (mine, Some(o)) => mine
                .get_or_insert_with(|| Box::new(Prescanned::unscanned(before)))
                .extend(o),
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }

    /// The lines up to byte `at` and those after, as two batches of
    /// their bytes alone (acks, metadata and kept scans are not taken);
    /// None unless a line ends at `at`.
    pub(crate) fn split_at_line_end(&self, at: usize) -> Option<(Batch, Batch)> {
        let n = self.ends.partition_point(|&e| e < at);
        if self.ends.get(n) != Some(&at) {
            return None;
        }
        let (head, tail) = self.data.split_at(at);
        let (head_ends, tail_ends) = self.ends.split_at(n + 1);
        Some((
            Batch::from_ends(head.to_vec(), head_ends.to_vec()),
            Batch::from_ends(tail.to_vec(), tail_ends.iter().map(|e| e - at).collect()),
        ))
    }

    /// The lines, without their `\n`, from the ends the batch keeps (no
    /// search).
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let line = &self.data[start..end - 1];
            start = end;
            line
        })
    }
}

/// Cuts a byte stream into batches of complete lines.
#[derive(Debug)]
pub struct LineSplitter {
    pending: Vec<u8>,
    max_events: usize,
}

impl LineSplitter {
    pub fn new(max_events: usize) -> LineSplitter {
        LineSplitter {
            pending: Vec::new(),
            max_events: max_events.max(1),
        }
    }

    /// Adds `chunk`; returns the batches of complete lines now available.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Batch>) {
        self.pending.extend_from_slice(chunk);
        let Some(last_nl) = memchr::memrchr(b'\n', &self.pending) else {
            return;
        };
        let rest = self.pending.split_off(last_nl + 1);
        let complete = std::mem::replace(&mut self.pending, rest);
        self.cut(complete, out);
    }

    /// Bytes held of a line not yet ended.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Takes the bytes held of a line not yet ended (the caller carries
    /// that line on by other means).
    pub fn take_pending(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    /// At end of input: a last line without `\n` still becomes a line.
    pub fn finish(&mut self, out: &mut Vec<Batch>) {
        if self.pending.is_empty() {
            return;
        }
        let mut last = std::mem::take(&mut self.pending);
        last.push(b'\n');
        self.cut(last, out);
    }

    /// Cuts `complete` (whole lines) into batches of at most
    /// `max_events` lines. Each line's end is found here, once: the
    /// batches keep them. The common case, fewer lines than a batch
    /// holds, keeps `complete` as it is, without a copy.
    fn cut(&self, complete: Vec<u8>, out: &mut Vec<Batch>) {
        let room = |bytes: usize| self.max_events.min(bytes / 128 + 1);
        let mut ends = Vec::with_capacity(room(complete.len()));
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', &complete) {
            ends.push(nl + 1 - start);
            if ends.len() == self.max_events && nl + 1 < complete.len() {
                let full =
                    std::mem::replace(&mut ends, Vec::with_capacity(room(complete.len() - nl)));
                out.push(Batch::from_ends(complete[start..=nl].to_vec(), full));
                start = nl + 1;
            }
        }
        if ends.is_empty() {
            return;
        }
        let rest = if start == 0 {
            complete
        } else {
            complete[start..].to_vec()
        };
        out.push(Batch::from_ends(rest, ends));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rulebox_abi::json::Scanner;

    /// The lines of `data` (each followed by `\n`), without their `\n`,
    /// found by a search: what a batch's kept ends must give.
    fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
        let mut rest = data;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let i = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
            let line = &rest[..i];
            rest = &rest[(i + 1).min(rest.len())..];
            Some(line)
        })
    }

    fn split(chunks: &[&[u8]], max: usize) -> Vec<(Vec<u8>, usize)> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        out.into_iter()
            .map(|b| (b.bytes().to_vec(), b.count()))
            .collect()
    }

    #[test]
    fn lines_across_chunks_and_final_line_without_newline() {
        let got = split(&[b"a\nb", b"c\n\nd"], 10);
        assert_eq!(
            got,
            vec![
                (b"a\n".to_vec(), 1),
                (b"bc\n\n".to_vec(), 2),
                (b"d\n".to_vec(), 1)
            ]
        );
    }

    #[test]
    fn batches_are_capped() {
        let input = b"1\n2\n3\n4\n5\n";
        for (max, counts) in [
            (2, &[2, 2, 1][..]),
            (5, &[5]),
            (4, &[4, 1]),
            (1, &[1, 1, 1, 1, 1]),
            (9, &[5]),
        ] {
            let got = split(&[input], max);
            assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), counts, "{max}");
            assert_eq!(
                got.iter().flat_map(|g| g.0.clone()).collect::<Vec<_>>(),
                input
            );
            for (bytes, n) in &got {
                assert_eq!(lines(bytes).count(), *n);
            }
        }
    }

    #[test]
    fn metadata_stays_one_entry_per_line() {
        let mut b = Batch::default();
        b.push_line(b"a");
        b.push_line(b"b");
        b.set_last_meta(b"mb");
        b.push_parts(&[b"c", b"d"]);
        assert_eq!(
            (b.meta(0), b.meta(1), b.meta(2)),
            (&b""[..], &b"mb"[..], &b""[..])
        );
        let mut c = Batch::default();
        c.push_line(b"x");
        c.extend(&b);
        c.push_line(b"y");
        c.set_last_meta(b"my");
        assert_eq!(c.count(), 5);
        let metas: Vec<&[u8]> = (0..5).map(|i| c.meta(i)).collect();
        assert_eq!(metas, [&b""[..], b"", b"mb", b"", b"my"]);
        let (len, _) = c.len_bytes();
        c.truncate_bytes(len - 2, 4);
        assert_eq!(c.meta(2), b"mb");
        assert_eq!(c.meta(4), b"");
        c.push_line(b"z");
        assert_eq!(c.meta(4), b"");
        // Room reserved before the lines, or after some, changes no entry.
        for before in [0, 2] {
            let mut d = Batch::default();
            for _ in 0..before {
                d.push_line(b"p");
            }
            d.reserve_meta(8, 3);
            d.reserve_meta(0, 3);
            d.push_line(b"q");
            d.set_last_meta(b"mq");
            d.push_line(b"r");
            let metas: Vec<&[u8]> = (0..d.count()).map(|i| d.meta(i)).collect();
            let mut want: Vec<&[u8]> = vec![b""; before];
            want.extend([&b"mq"[..], b""]);
            assert_eq!(metas, want, "{before} lines before");
            assert_eq!(d.meta_len(), 2);
        }
    }

    /// Kept scans stay one entry per line through pushes, extends and
    /// truncation, each with its own line.
    #[test]
    fn kept_scans_stay_one_entry_per_line() {
        let (mut scanner, mut inner) = (Scanner::new(), Vec::new());
        let mut scanned = |line: &[u8]| {
            let envelope = [&b"{\"event\":"[..], line, b"}"].concat();
            let (_, _, opened) = scanner
                .scan_prefix_opening(&envelope, b"event", &mut inner)
                .unwrap();
            (inner.clone(), opened.unwrap().close)
        };
        let (one, two) = (br#"{"a":1}"#, br#"{"bb":2,"c":[3]}"#);
        let mut b = Batch::default();
        b.push_line(b"plain");
        assert!(b.scans().is_none());
        b.push_line(one);
        let (m, close) = scanned(one);
        b.set_last_scan(&m, close);
        b.push_line(b"x");
        let mut c = Batch::default();
        c.push_line(two);
        let (m, close) = scanned(two);
        c.set_last_scan(&m, close);
        c.extend(&b);
        b.extend(&c);
        let lines: Vec<Vec<u8>> = b.iter().map(<[u8]>::to_vec).collect();
        let kept = |b: &Batch, i: usize| b.scans().and_then(|p| p.get(i, &lines[i])).is_some();
        assert_eq!(
            (0..7).map(|i| kept(&b, i)).collect::<Vec<_>>(),
            [false, true, false, true, false, true, false]
        );
        let (mut scanner, mut again) = (Scanner::new(), Batch::default());
        for (i, line) in lines.iter().enumerate() {
            if let Some((m, close)) = b.scans().and_then(|p| p.get(i, line)) {
                let scan = scanner.scan(line).unwrap();
                assert_eq!((m, close), (scan.members(), scan.close), "{i}");
            }
        }
        let ends: Vec<usize> = lines
            .iter()
            .scan(0, |at, l| {
                *at += l.len() + 1;
                Some(*at)
            })
            .collect();
        b.truncate_bytes(ends[3], 4);
        assert_eq!(b.scans().map(|p| p.len()), Some(4));
        b.push_line(b"y");
        assert!(!kept(&b, 4) && kept(&b, 3));
        again.extend(&b);
        assert!(kept(&again, 3));
        // Lines without scans joined after lines with: one entry each.
        let mut plain = Batch::default();
        plain.push_line(b"p");
        plain.push_line(b"q");
        b.extend(&plain);
        assert_eq!(b.scans().map(|p| p.len()), Some(7));
        assert!(kept(&b, 3));
        assert!(
            b.kept_bytes() >= 4 * 16,
            "four members kept: {}",
            b.kept_bytes()
        );
        let mut forgot = b.clone();
        forgot.forget_scans();
        assert_eq!((forgot.scans(), forgot.kept_bytes()), (None, 0));
        b.clear();
        assert!(b.scans().is_none());
        assert_eq!(b.kept_bytes(), 0);
    }

    #[test]
    fn lines_iterates_without_newlines() {
        let mut out = Vec::new();
        LineSplitter::new(10).push(b"a\n\nbc\n", &mut out);
        let v: Vec<&[u8]> = out[0].iter().collect();
        assert_eq!(v, [&b"a"[..], b"", b"bc"]);
    }

    /// A batch is all JSON only while every line pushed was vouched for;
    /// one other line, here or from a batch it takes in, ends that.
    #[test]
    fn all_json_only_while_every_line_is_vouched_for() {
        let mut b = Batch::default();
        assert!(!b.all_json(), "an empty batch vouches for nothing");
        b.push_json_parts(&[b"{\"a\":", b"1}"]);
        b.push_json_parts(&[b"[2]"]);
        assert!(b.all_json());
        assert_eq!(b.bytes(), b"{\"a\":1}\n[2]\n");
        let mut c = b.clone();
        c.extend(&Batch::default());
        assert!(c.all_json(), "an empty batch taken in changes nothing");
        let mut other = Batch::default();
        other.push_line(b"{\"b\":2}");
        c.extend(&other);
        assert!(!c.all_json(), "a line nobody vouched for");
        let mut d = Batch::default();
        d.extend(&b);
        assert!(d.all_json(), "an empty batch takes the other's word");
        d.push_json_parts(&[b"3"]);
        assert!(d.all_json());
        for push in [
            |b: &mut Batch| b.push_line(b"x"),
            |b: &mut Batch| b.push_parts(&[b"x"]),
            |b: &mut Batch| b.push_line_with(|d| d.push(b'x')),
        ] {
            let mut e = b.clone();
            push(&mut e);
            assert!(!e.all_json());
            e.push_json_parts(&[b"4"]);
            assert!(!e.all_json(), "vouching for a later line does not undo it");
            e.clear();
            e.push_json_parts(&[b"5"]);
            assert!(e.all_json(), "a cleared batch starts again");
        }
    }

    /// The ends a batch keeps are those a search of its bytes finds,
    /// whatever made it: cut from chunks (every batch size, lines split
    /// across chunks, a last line without `\n`), split at a line's end
    /// (and not elsewhere), pushed line by line in each way, extended,
    /// truncated, cleared.
    #[test]
    fn line_ends_are_where_the_newlines_are() {
        fn check(b: &Batch, what: &str) {
            let found: Vec<usize> = memchr::memchr_iter(b'\n', b.bytes())
                .map(|i| i + 1)
                .collect();
            assert_eq!(b.line_ends(), &found[..], "{what}");
            assert_eq!(b.count(), found.len(), "{what}");
            assert_eq!(
                b.iter().collect::<Vec<_>>(),
                lines(b.bytes()).collect::<Vec<_>>(),
                "{what}"
            );
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for round in 0..200 {
            let len = next(300) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    if next(6) == 0 {
                        b'\n'
                    } else {
                        b'a' + next(3) as u8
                    }
                })
                .collect();
            let max = 1 + next(5) as usize;
            let mut s = LineSplitter::new(max);
            let mut out = Vec::new();
            let mut at = 0;
            while at < input.len() {
                let step = (1 + next(40) as usize).min(input.len() - at);
                s.push(&input[at..at + step], &mut out);
                at += step;
            }
            s.finish(&mut out);
            let mut whole = Batch::default();
            for b in &out {
                check(b, &format!("round {round}: a cut batch"));
                assert!(b.count() <= max, "round {round}");
                whole.extend(b);
                check(&whole, &format!("round {round}: extended"));
            }
            if let Some(&last) = whole.line_ends().last() {
                let at = 1 + next(last as u64) as usize;
                match whole.split_at_line_end(at) {
                    Some((head, tail)) => {
                        assert_eq!(whole.bytes()[at - 1], b'\n', "round {round}");
                        check(&head, &format!("round {round}: split head at {at}"));
                        check(&tail, &format!("round {round}: split tail at {at}"));
                        assert_eq!([head.bytes(), tail.bytes()].concat(), whole.bytes());
                    }
                    None => assert_ne!(whole.bytes()[at - 1], b'\n', "round {round}: {at}"),
                }
            }
            if whole.count() > 1 {
                let keep = next(whole.count() as u64) as usize;
                let len = if keep == 0 {
                    0
                } else {
                    whole.line_ends()[keep - 1]
                };
                whole.truncate_bytes(len, keep);
                check(&whole, &format!("round {round}: truncated to {keep}"));
            }
            whole.push_line(b"p");
            whole.push_line_with(|d| d.extend_from_slice(b"w"));
            whole.push_parts(&[b"a", b"", b"b"]);
            whole.push_json_parts(&[b"{}"]);
            whole.push_line(b"");
            check(&whole, &format!("round {round}: pushed"));
            whole.clear();
            check(&whole, &format!("round {round}: cleared"));
        }
    }
}
