//! Splunk HTTP Event Collector: reading request bodies into events, and
//! writing events back out as envelopes. Pure functions; the HTTP side is
//! in [`super::http`].
//!
//! An event's envelope (`time`, `host`, `source`, `sourcetype`, `index`,
//! `fields`) travels as the line's metadata ([`crate::batch::Batch::meta`]):
//! one kind byte, then the envelope without `event` as a JSON object. The
//! kind says how the line relates to the envelope's `event`:
//!
//! * `v`: the line is the `event` value as sent (an object, or a string
//!   literal that does not hold JSON), newlines outside strings turned into
//!   spaces;
//! * `j`: `event` was a string holding a JSON object; the line is that
//!   object, so rules see its fields, and it is sent on as a string again;
//! * `r`: a line from `/services/collector/raw`, sent on as a string.

use rulebox_abi::json::{Member, Object, ScanError, Scanner, key_eq, unescape};

use super::json_text::{flatten_into, is_json_object};
use super::timestamp;
use crate::batch::Batch;

/// The envelope keys an incoming envelope is read for: `event`, then the
/// kept ones in the order the metadata writes them.
const INCOMING_KEYS: [&str; 7] = [
    "event",
    "time",
    "host",
    "source",
    "sourcetype",
    "index",
    "fields",
];

/// Which of [`INCOMING_KEYS`] the raw (possibly escaped) `key` is. A key
/// without a backslash is its own text, so it is matched byte for byte in
/// one comparison (most envelopes' keys are these); only one with an
/// escape is unescaped to compare.
fn incoming_key(key: &[u8]) -> Option<usize> {
    let k = match key {
        b"event" => 0,
        b"time" => 1,
        b"host" => 2,
        b"source" => 3,
        b"sourcetype" => 4,
        b"index" => 5,
        b"fields" => 6,
        _ if key.contains(&b'\\') => {
            return INCOMING_KEYS.iter().position(|name| key_eq(key, name));
        }
        _ => return None,
    };
    debug_assert_eq!(INCOMING_KEYS[k].as_bytes(), key);
    Some(k)
}

/// The kept keys of metadata in the form [`Incoming::write_kept`] writes
/// it: compact, each key once and in [`INCOMING_KEYS`]' order. What
/// `Incoming::read` reads from a scan of such an object, without the
/// scan's member list; `None` for any other text (the caller scans it).
fn read_kept(meta: &[u8]) -> Option<[Option<&[u8]>; 6]> {
    let mut kept = [None; 6];
    let mut next = 0;
    let mut i = 1;
    if meta.first() != Some(&b'{') {
        return None;
    }
    if meta == b"{}" {
        return Some(kept);
    }
    loop {
        // `"name":`, a name after the last one read.
        let key = meta.get(i + 1..).filter(|_| meta[i] == b'"')?;
        let k = kept_name(key).filter(|&k| k >= next)?;
        let start = i + 3 + INCOMING_KEYS[k + 1].len();
        let end = rulebox_abi::json::skip_value(meta, start)?;
        kept[k] = Some(&meta[start..end]);
        next = k + 1;
        match meta.get(end) {
            Some(b',') => i = end + 1,
            Some(b'}') if end + 1 == meta.len() => return Some(kept),
            _ => return None,
        }
    }
}

/// Which kept key (`INCOMING_KEYS[k + 1]`) `text` starts with, as `name":`.
/// Each name is a literal, so each comparison has a constant length and
/// compiles to a few loads, not a call to `memcmp` per key and envelope.
#[inline]
fn kept_name(text: &[u8]) -> Option<usize> {
    let k = if text.starts_with(b"time\":") {
        0
    } else if text.starts_with(b"host\":") {
        1
    } else if text.starts_with(b"source\":") {
        2
    } else if text.starts_with(b"sourcetype\":") {
        3
    } else if text.starts_with(b"index\":") {
        4
    } else if text.starts_with(b"fields\":") {
        5
    } else {
        return None;
    };
    debug_assert!(text.starts_with(INCOMING_KEYS[k + 1].as_bytes()));
    Some(k)
}

/// Appends `"name":` to an object being written: after a comma, unless
/// it is the `first` key (which it then no longer is).
#[inline]
fn put_key(out: &mut Vec<u8>, first: &mut bool, name: &str) {
    if !std::mem::replace(first, false) {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// One envelope as received, read by the scanner: the event's and the
/// kept keys' raw values (other keys are ignored).
struct Incoming<'a> {
    event: Option<&'a [u8]>,
    /// Where `event`'s value starts in the envelope's text.
    event_start: usize,
    /// `time`, `host`, `source`, `sourcetype`, `index`, `fields`.
    kept: [Option<&'a [u8]>; 6],
}

impl<'a> Incoming<'a> {
    /// The keys of an envelope, `members` of the object `src`; `None` when
    /// one of [`INCOMING_KEYS`] is given twice (an envelope must say what
    /// it means once).
    fn read(src: &'a [u8], members: &[Member]) -> Option<Incoming<'a>> {
        let mut values: [Option<&'a [u8]>; 7] = [None; 7];
        let mut event_start = 0;
        for m in members {
            let key = src.get(m.key.range())?;
            if let Some(k) = incoming_key(key) {
                if values[k].is_some() {
                    return None;
                }
                values[k] = Some(src.get(m.value.range())?);
                if k == 0 {
                    event_start = m.value.start as usize;
                }
            }
        }
        let [event, kept @ ..] = values;
        Some(Incoming {
            event,
            event_start,
            kept,
        })
    }

    /// The kept keys as a JSON object (`{}` when none), as the line's
    /// metadata carries them.
    fn write_kept(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        let mut first = true;
        for (name, value) in INCOMING_KEYS[1..].iter().zip(&self.kept) {
            let Some(value) = value else { continue };
            put_key(out, &mut first, name);
            out.extend_from_slice(value);
        }
        out.push(b'}');
    }
}

/// Why a body was refused, with Splunk's code and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    NoData,
    /// Not JSON, or not an object: the event's number (from 0).
    InvalidFormat(usize),
    EventRequired(usize),
    EventBlank(usize),
}

impl BodyError {
    /// HTTP status and the JSON body Splunk answers with.
    pub fn response(&self) -> (u16, String) {
        let (code, text, n) = match self {
            BodyError::NoData => (5, "No data", None),
            BodyError::InvalidFormat(n) => (6, "Invalid data format", Some(*n)),
            BodyError::EventRequired(n) => (12, "Event field is required", Some(*n)),
            BodyError::EventBlank(n) => (13, "Event field cannot be blank", Some(*n)),
        };
        let body = match n {
            Some(n) => format!(r#"{{"text":"{text}","code":{code},"invalid-event-number":{n}}}"#),
            None => format!(r#"{{"text":"{text}","code":{code}}}"#),
        };
        (400, body)
    }
}

/// Reads an `/event` body (one or more concatenated envelopes) into
/// `out`. All or nothing: on an error `out` is left as it was.
pub fn read_event_body(body: &[u8], out: &mut Batch) -> Result<(), BodyError> {
    read_event_frames(&[body], out)
}

/// [`read_event_body`] of a body that arrived in pieces (`frames`, in
/// order), without joining them: an envelope cut by a frame's end is
/// copied alone, with the bytes of the next frames it needs. The answer
/// is [`read_event_body`]'s of the joined body (see [`read_framed`]).
pub fn read_event_frames<B: AsRef<[u8]>>(frames: &[B], out: &mut Batch) -> Result<(), BodyError> {
    let mark = out.len_bytes();
    let res = match frames {
        [one] => read_events(one.as_ref(), out),
        _ => read_framed(frames, out),
    };
    if res.is_err() {
        out.truncate_bytes(mark.0, mark.1);
    }
    res
}

fn read_events(body: &[u8], out: &mut Batch) -> Result<(), BodyError> {
    EventReader::new().read_to_end(body, out)
}

/// [`read_events`] across `frames`.
///
/// An envelope that does not read whole from where it starts in a frame
/// is copied (`cut`) and grown from the frames after it, and read again
/// each time it has doubled: so at most about twice its bytes are
/// scanned again, however many frames it spans. Once it reads, reading
/// goes on in the frame where it ended.
///
/// The verdict is the joined body's. An envelope is read from its start
/// to its closing brace, whatever follows: so one that reads from a cut
/// reads the same from the joined body, and one that never does leaves
/// the cut holding the rest of the body from its start, read at the end
/// exactly as the joined body's rest would be (the same error, the same
/// event number).
fn read_framed<B: AsRef<[u8]>>(frames: &[B], out: &mut Batch) -> Result<(), BodyError> {
    read_framed_counting(frames, out, &mut 0)
}

/// [`read_framed`], adding to `moved` the bytes it copied into and
/// within its cut (its tests hold that to a multiple of the body's size).
fn read_framed_counting<B: AsRef<[u8]>>(
    frames: &[B],
    out: &mut Batch,
    moved: &mut usize,
) -> Result<(), BodyError> {
    let mut r = EventReader::new();
    let mut cut: Vec<u8> = Vec::new();
    // The cut's length at which it is read again.
    let mut retry_at = 0usize;
    for frame in frames {
        let frame = frame.as_ref();
        // Where this frame starts in the cut, how much of it the cut took,
        // where the cut is read from, and where reading goes on in the
        // frame.
        let (mut base, mut used, mut head, mut at) = (cut.len(), 0, 0, 0);
        while !cut.is_empty() {
            let take = retry_at.saturating_sub(cut.len()).min(frame.len() - used);
            cut.extend_from_slice(&frame[used..used + take]);
            (used, *moved) = (used + take, *moved + take);
            if cut.len() < retry_at {
                debug_assert_eq!(head, 0, "a cut read from is tried again at once");
                break; // this frame is used up before the next try
            }
            match r.envelope(&cut[head..], out) {
                Ok(Some(end)) if head + end >= base => {
                    at = head + end - base;
                    cut.clear();
                }
                // It ended in the cut's earlier bytes: the next one now.
                Ok(Some(end)) => {
                    head += end;
                    retry_at = cut.len();
                }
                Ok(None) => {
                    at = used;
                    cut.clear();
                }
                // Not whole yet: dropped what was read, and twice the rest.
                Err(_) => {
                    cut.drain(..head);
                    (base, *moved, head) = (base - head, *moved + cut.len(), 0);
                    retry_at = 2 * cut.len();
                }
            }
        }
        if !cut.is_empty() {
            continue;
        }
        let (read, all) = r.read_all(&frame[at..], out);
        if !all {
            let rest = &frame[at + read..];
            cut.extend_from_slice(rest);
            *moved += rest.len();
            retry_at = (2 * rest.len()).max(CUT_FIRST_TRY);
        }
    }
    // At the body's end, the cut is what is left of it.
    r.read_to_end(&cut, out)
}

/// The length a cut envelope is first grown to before it is read again:
/// most envelopes are shorter.
const CUT_FIRST_TRY: usize = 1024;

/// The state of reading one body's envelopes, one at a time.
struct EventReader {
    n: usize,
    meta: Vec<u8>,
    scanner: Scanner,
    // An object `event`'s members, read with its envelope: kept with the
    // line, so the objects index does not scan the event again.
    members: Vec<Member>,
}

impl EventReader {
    fn new() -> EventReader {
        EventReader {
            n: 0,
            meta: Vec::with_capacity(128),
            scanner: Scanner::new(),
            members: Vec::new(),
        }
    }

    /// Reads the envelope at the start of `rest` (after whitespace) into
    /// `out`: where it ends in `rest`, or None when only whitespace is
    /// left. On an error nothing is added to `out`.
    fn envelope(&mut self, rest: &[u8], out: &mut Batch) -> Result<Option<usize>, BodyError> {
        let n = self.n;
        // Each envelope must be an object.
        match rest.iter().find(|c| !c.is_ascii_whitespace()) {
            None => return Ok(None),
            Some(b'{') => {}
            Some(_) => return Err(BodyError::InvalidFormat(n)),
        }
        let (envelope, end, opened) = self
            .scanner
            .scan_prefix_opening(rest, b"event", &mut self.members)
            .map_err(|_| BodyError::InvalidFormat(n))?;
        let env = Incoming::read(envelope.src(), envelope.members())
            .ok_or(BodyError::InvalidFormat(n))?;
        let event = match env.event {
            None | Some(b"null") => return Err(BodyError::EventRequired(n)),
            Some(e) => e,
        };
        let kind = if event.first() == Some(&b'"') {
            let inner = &event[1..event.len() - 1];
            let text = unescape(inner).ok_or(BodyError::InvalidFormat(n))?;
            if text.trim().is_empty() {
                return Err(BodyError::EventBlank(n));
            }
            if is_json_object(text.as_bytes()) {
                out.push_line_with(|data| flatten_into(text.as_bytes(), data));
                b'j'
            } else {
                // A string literal as sent: its newlines are escaped.
                out.push_line(event);
                b'v'
            }
        } else {
            out.push_line_with(|data| flatten_into(event, data));
            // The line is the event's bytes, newlines turned into spaces
            // in place: the scan's spans hold for it.
            if let Some(o) = opened.filter(|o| o.start == env.event_start) {
                out.set_last_scan(&self.members, o.close);
            }
            b'v'
        };
        self.meta.clear();
        self.meta.push(kind);
        env.write_kept(&mut self.meta);
        out.set_last_meta(&self.meta);
        self.n += 1;
        Ok(Some(end))
    }

    /// Reads the envelopes at the start of `text`: the bytes they took,
    /// and whether that is all of it (only whitespace after). When not,
    /// the envelope after them did not read (cut short, or refused).
    fn read_all(&mut self, text: &[u8], out: &mut Batch) -> (usize, bool) {
        let mut at = 0;
        loop {
            match self.envelope(&text[at..], out) {
                Ok(Some(end)) => at += end,
                Ok(None) => return (at, true),
                Err(_) => return (at, false),
            }
        }
    }

    /// Reads the envelopes of `text`, the last of a body, to its end:
    /// the body's verdict (at least one envelope in all).
    fn read_to_end(&mut self, text: &[u8], out: &mut Batch) -> Result<(), BodyError> {
        let mut at = 0;
        while let Some(end) = self.envelope(&text[at..], out)? {
            at += end;
        }
        if self.n == 0 {
            return Err(BodyError::NoData);
        }
        Ok(())
    }
}

/// Reads a `/raw` body: each non-empty line (a final `\r` removed) is an
/// event, with the metadata of the query string.
pub fn read_raw_body(body: &[u8], query: Option<&str>, out: &mut Batch) -> Result<(), BodyError> {
    let mut meta = vec![b'r'];
    let pairs = query_pairs(query.unwrap_or(""));
    let find = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let mut obj = serde_json::Map::new();
    for key in ["host", "source", "sourcetype", "index"] {
        if let Some(v) = find(key) {
            obj.insert(key.into(), v.into());
        }
    }
    let _ = serde_json::to_writer(&mut meta, &obj);
    let mut n = 0;
    for l in body.split(|&c| c == b'\n') {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        if l.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        out.push_line(l);
        out.set_last_meta(&meta);
        n += 1;
    }
    if n == 0 {
        return Err(BodyError::NoData);
    }
    Ok(())
}

/// `a=1&b=x%20y` -> [("a","1"),("b","x y")].
pub fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Sink-side defaults for envelope keys an event does not carry.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    pub host: Option<String>,
    pub source: Option<String>,
    pub sourcetype: Option<String>,
    pub index: Option<String>,
    /// An event whose envelope has no `time` gets its own (see
    /// [`event_time`]), so Splunk indexes it at that time, not at arrival.
    pub time_from_event: bool,
}

/// The top-level keys an event's time is read from, first found wins: an
/// alert's `last_seen`, then the schema presets' time fields (`_time`,
/// `@timestamp`, ...). A key given twice counts once, its first time.
const TIME_KEYS: [&str; 8] = [
    "last_seen",
    "_time",
    "@timestamp",
    "timestamp",
    "ts",
    "time",
    "starttime",
    "UtcTime",
];

/// The event's own time, Unix seconds: the first of [`TIME_KEYS`] whose
/// value reads as a time (a number, or text; see
/// [`crate::codecs::timestamp`]).
fn event_time(event: &Object<'_, '_>) -> Option<f64> {
    TIME_KEYS.iter().find_map(|key| {
        let m = event.member(key)?;
        let text = std::str::from_utf8(event.src().get(m.value.range())?).ok()?;
        match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(inner) => timestamp::from_text(inner),
            None => timestamp::from_number(text.parse().ok()?),
        }
    })
}

/// Appends the envelope of one event: its own metadata (from a HEC
/// source), the sink's defaults for the keys it lacks, and the event.
/// `json`: the host already read the line whole as valid JSON text
/// ([`Batch::all_json`]), so it is read again only for its time, when
/// that is wanted. `scanner` reads the metadata, then the event (keep one
/// per batch: it is reused).
pub fn write_envelope(
    out: &mut Vec<u8>,
    line: &[u8],
    meta: &[u8],
    json: bool,
    d: &Defaults,
    scanner: &mut Scanner,
) {
    let (kind, env_json) = match meta.split_first() {
        Some((&k, rest)) if matches!(k, b'v' | b'j' | b'r') => (k, rest),
        _ => (b'v', &b""[..]),
    };
    // The metadata is an object a HEC source wrote ([`Incoming::write_kept`])
    // or a raw request's; anything else, or a key given twice, counts as
    // none, and so does a key whose value is `null`.
    let compact = read_kept(env_json);
    let [time, host, source, sourcetype, index, fields] = compact
        .or_else(|| {
            let members = scanner.scan_members(env_json).ok()?;
            Incoming::read(env_json, members).map(|incoming| incoming.kept)
        })
        .map(|kept| kept.map(|v| v.filter(|v| *v != b"null")))
        .unwrap_or_default();
    // An event is scanned once (the project's scanner, no value built):
    // to know whether it is JSON, an object, and for its time; not at
    // all when the host vouches for it and its time is not wanted.
    let sent_as_string = matches!(kind, b'j' | b'r');
    let wants_time = time.is_none() && d.time_from_event;
    let scan = (!sent_as_string && (wants_time || !json)).then(|| scanner.scan(line));
    let object = scan.as_ref().and_then(|r| r.as_ref().ok());
    let own_time = match (time, object) {
        (Some(_), _) => None,
        (None, Some(event)) if d.time_from_event => event_time(event),
        _ => None,
    };
    let keys = [
        ("host", host, &d.host),
        ("source", source, &d.source),
        ("sourcetype", sourcetype, &d.sourcetype),
        ("index", index, &d.index),
    ];
    // Metadata in the form a HEC source writes it is the envelope's head
    // as `write_head` writes it (the same keys in the same order) when no
    // key is `null` and none is filled in from a default or from the
    // event's time: then it goes in one copy.
    let whole_head = compact.is_some_and(|kept| kept.iter().all(|v| *v != Some(b"null")))
        && (time.is_some() || own_time.is_none())
        && keys
            .iter()
            .all(|(_, own, default)| own.is_some() || default.is_none());
    match env_json.strip_suffix(b"}") {
        Some(head) if whole_head => {
            out.extend_from_slice(head);
            out.extend_from_slice(&b",\"event\":"[(head.len() == 1) as usize..]);
        }
        _ => write_head(out, time, own_time, keys, fields),
    }
    // Valid JSON goes as it is; anything else as a JSON string.
    let valid = json || matches!(scan, Some(Ok(_) | Err(ScanError::NotObject)));
    let as_string = sent_as_string || !valid;
    if as_string {
        let _ = serde_json::to_writer(&mut *out, &String::from_utf8_lossy(line));
    } else {
        out.extend_from_slice(line);
    }
    out.push(b'}');
}

/// One of `host`, `source`, `sourcetype`, `index`: its name, the
/// metadata's value and the sink's default.
type MetaKey<'a> = (&'static str, Option<&'a [u8]>, &'a Option<String>);

/// The envelope's opening and its keys up to `"event":`, key by key:
/// the metadata's own values, the sink's defaults for those it lacks, and
/// the event's own time (`own_time`) when the metadata has none.
fn write_head(
    out: &mut Vec<u8>,
    time: Option<&[u8]>,
    own_time: Option<f64>,
    keys: [MetaKey<'_>; 4],
    fields: Option<&[u8]>,
) {
    out.push(b'{');
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, k: &str| put_key(out, &mut first, k);
    if let Some(t) = time {
        key(out, "time");
        out.extend_from_slice(t);
    } else if let Some(secs) = own_time {
        key(out, "time");
        timestamp::write_seconds(out, secs);
    }
    for (name, own, default) in keys {
        match (own, default) {
            (Some(v), _) => {
                key(out, name);
                out.extend_from_slice(v);
            }
            (None, Some(v)) => {
                key(out, name);
                let _ = serde_json::to_writer(&mut *out, v);
            }
            (None, None) => {}
        }
    }
    if let Some(f) = fields {
        key(out, "fields");
        out.extend_from_slice(f);
    }
    key(out, "event");
}

pub const SUCCESS: &str = r#"{"text":"Success","code":0}"#;
pub const HEALTHY: &str = r#"{"text":"HEC is healthy","code":17}"#;
pub const BUSY: &str = r#"{"text":"Server is busy","code":9}"#;
pub const NOT_FOUND: &str =
    r#"{"text":"The requested URL was not found on this server.","code":404}"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn events(body: &str) -> Result<Vec<(String, String)>, BodyError> {
        let mut b = Batch::default();
        read_event_body(body.as_bytes(), &mut b)?;
        Ok(b.iter()
            .enumerate()
            .map(|(i, l)| {
                (
                    String::from_utf8(l.to_vec()).unwrap(),
                    String::from_utf8(b.meta(i).to_vec()).unwrap(),
                )
            })
            .collect())
    }

    #[test]
    fn splunks_own_example_is_read_with_metadata() {
        let got = events(r#"{"event": "Hello, world!", "sourcetype": "manual", "host": "host_1.splunk.com"}{"event": "something happened", "sourcetype": "manual", "host": "host_1.splunk.com", "fields":{"severity":"INFO", "category":["foo","bar"]}}"#).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, r#""Hello, world!""#);
        assert_eq!(
            got[0].1,
            r#"v{"host":"host_1.splunk.com","sourcetype":"manual"}"#
        );
        assert_eq!(
            got[1].1,
            r#"v{"host":"host_1.splunk.com","sourcetype":"manual","fields":{"severity":"INFO", "category":["foo","bar"]}}"#
        );
    }

    /// An object `event` keeps its members as the envelope's scan found
    /// them, for the objects index: the line's own scan, newlines turned
    /// into spaces included. Events given as strings, and objects the fast
    /// path leaves to the full parser (a key with an escape), keep none;
    /// a refused body keeps nothing.
    #[test]
    fn object_events_keep_their_scan_for_the_index() {
        let body = concat!(
            r#"{"time":1,"event":{"a":"x","b":{"c":[1,2]},"d":true},"host":"h"}"#,
            r#"{"event":"plain text"}"#,
            "{\"event\":{\"m\":1,\n\"n\":\r\n[2]}}",
            r#"{"event":"{\"j\":1}"}"#,
            r#"{"event":{"k\u0065y":1}}"#,
            r#"{"event":{}}"#,
        );
        let mut b = Batch::default();
        read_event_body(body.as_bytes(), &mut b).unwrap();
        let pre = b.scans().expect("scans kept");
        assert_eq!(pre.len(), 6);
        let mut scanner = Scanner::new();
        for (i, line) in b.iter().enumerate() {
            let kept = pre.get(i, line).map(|(m, close)| (m.to_vec(), close));
            if [0, 2, 5].contains(&i) {
                let scan = scanner.scan(line).unwrap();
                assert_eq!(kept, Some((scan.members().to_vec(), scan.close)), "{i}");
            } else {
                assert_eq!(kept, None, "{i}");
            }
        }
        read_event_body(br#"{"event":{"z":1}}{"event":"#, &mut b).unwrap_err();
        assert_eq!((b.count(), b.scans().map(|p| p.len())), (6, Some(6)));
    }

    /// A body read in pieces reads as the same body joined: the same
    /// events, metadata and kept scans, or the same refusal with nothing
    /// kept, wherever the pieces are cut (empty pieces, single bytes,
    /// envelopes spanning many pieces, errors in any piece).
    #[test]
    fn a_body_in_frames_reads_as_the_body_joined() {
        let long = format!(
            r#"{{"event":{{"a":"{}","b":[1,2]}},"host":"h"}}"#,
            "x".repeat(5000)
        );
        let envelopes = [
            r#"{"time":1,"event":{"a":"x","b":{"c":[1,2]},"d":true},"host":"h"}"#,
            r#"{"event":"plain text","sourcetype":"s"}"#,
            "{\"event\":{\"m\":1,\n\"n\":\r\n[2]}}",
            r#"{"event":"{\"j\":1}"}"#,
            r#"{"event":{"k\u0065y":1}}"#,
            r#"{ "event" : { "sp" : 1 } , "index" : "i" }"#,
            long.as_str(),
            // Refused ones.
            r#"{"event":null}"#,
            r#"{"event":{"a":1,}}"#,
            r#"{"evnt":1}"#,
            "[1]",
            r#"{"event":"  "}"#,
            "x",
        ];
        let seps = ["", "", "\n", " \r\n "];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut step = || crate::testing::step(&mut seed);
        // Each line, its metadata and its kept scan.
        type Line = (Vec<u8>, Vec<u8>, Option<(Vec<Member>, usize)>);
        let describe = |b: &Batch| -> Vec<Line> {
            let scans = b.scans();
            let lines = b.iter().enumerate();
            let kept = |i, l| {
                scans
                    .and_then(|p| p.get(i, l))
                    .map(|(m, c)| (m.to_vec(), c))
            };
            lines
                .map(|(i, l)| (l.to_vec(), b.meta(i).to_vec(), kept(i, l)))
                .collect()
        };
        let (mut read, mut refused) = (0, 0);
        for round in 0..3000 {
            // Mostly valid envelopes, and refused ones now and then.
            let mut body = String::new();
            for _ in 0..1 + step() % 8 {
                let pick = (step() % 41) as usize;
                let e = if pick < 7 * 5 {
                    envelopes[pick / 5]
                } else {
                    envelopes[pick - 28]
                };
                body.push_str(e);
                body.push_str(seps[(step() % 4) as usize]);
            }
            if round % 50 == 0 {
                body.truncate((step() as usize) % (body.len() + 1));
            }
            let body = body.into_bytes();
            // Cut anywhere: a few pieces, or many small ones.
            let mut cuts: Vec<usize> = (0..step() % 12)
                .map(|_| (step() as usize) % (body.len() + 1))
                .collect();
            if round % 10 == 0 {
                cuts.extend((0..body.len()).step_by(1 + (step() % 7) as usize));
            }
            cuts.push(0);
            cuts.push(body.len());
            cuts.sort_unstable();
            let frames: Vec<&[u8]> = cuts.windows(2).map(|w| &body[w[0]..w[1]]).collect();
            let (mut whole, mut framed) = (Batch::default(), Batch::default());
            whole.push_line(b"before");
            framed.push_line(b"before");
            let want = read_event_body(&body, &mut whole);
            let got = read_event_frames(&frames, &mut framed);
            let text = String::from_utf8_lossy(&body);
            assert_eq!(got, want, "{text} in {} frames", frames.len());
            assert_eq!(describe(&framed), describe(&whole), "{text}");
            // The pieces' own reading, one piece too.
            assert_eq!(read_framed(&frames, &mut Batch::default()), want, "{text}");
            if want.is_ok() {
                read += 1;
            } else {
                refused += 1;
            }
        }
        assert!(
            read > 1000 && refused > 300,
            "{read} read, {refused} refused"
        );
    }

    /// What reading in frames copies stays within a few times the body,
    /// whatever the frames and envelopes: a large envelope followed by
    /// many small ones (read from the cut it grew into), single-byte
    /// frames, a refused body whose cut grows to its end.
    #[test]
    fn reading_in_frames_copies_a_bounded_amount() {
        let big = format!(r#"{{"event":{{"pad":"{}"}}}}"#, "x".repeat(1 << 20));
        let small = r#"{"event":1}"#.repeat(20_000);
        let normal = r#"{"event":{"a":"x","b":[1,2]},"host":"h"}"#.repeat(1000);
        let bodies = [
            format!("{small}{big}{small}"),
            normal.clone(),
            format!("{normal}x{small}{big}"),
            format!("{normal}{}", &big[..big.len() - 1]),
        ];
        for body in &bodies {
            let body = body.as_bytes();
            for frame_len in [1, 7, 1000, 65536] {
                if frame_len == 1 && body.len() > 100_000 {
                    continue;
                }
                let frames: Vec<&[u8]> = body.chunks(frame_len).collect();
                let (mut got, mut moved) = (Batch::default(), 0);
                let res = read_framed_counting(&frames, &mut got, &mut moved);
                let mut want = Batch::default();
                assert_eq!(res, read_event_body(body, &mut want));
                if res.is_ok() {
                    assert_eq!(got.count(), want.count());
                }
                assert!(
                    moved <= 4 * body.len() + 4096,
                    "{moved} bytes moved for a body of {} in frames of {frame_len}",
                    body.len()
                );
            }
        }
    }

    #[test]
    fn objects_multiline_and_json_in_strings() {
        let got = events(
            "{\"time\":1700000000.5,\"event\":{\n\"a\": 1}}\n\n {\"event\":\"{\\\"b\\\":2}\"}",
        )
        .unwrap();
        assert_eq!(
            got[0],
            ("{ \"a\": 1}".into(), r#"v{"time":1700000000.5}"#.into())
        );
        assert_eq!(got[1], (r#"{"b":2}"#.into(), "j{}".into()));
    }

    #[test]
    fn errors_name_the_event_and_keep_nothing() {
        let mut b = Batch::default();
        b.push_line(b"before");
        let bad = r#"{"event":{"a":1}}{"event":2}{"evnt":3}"#;
        assert_eq!(
            read_event_body(bad.as_bytes(), &mut b),
            Err(BodyError::EventRequired(2))
        );
        assert_eq!(b.count(), 1);
        assert_eq!(
            events(r#"{"event":1} {"event":"#),
            Err(BodyError::InvalidFormat(1))
        );
        assert_eq!(events(r#"[{"event":1}]"#), Err(BodyError::InvalidFormat(0)));
        assert_eq!(events(r#"{"event":"  "}"#), Err(BodyError::EventBlank(0)));
        assert_eq!(
            events(r#"{"event":null}"#),
            Err(BodyError::EventRequired(0))
        );
        assert_eq!(events("  "), Err(BodyError::NoData));
        // An envelope key given twice is refused; one written with an
        // escape is the same key; other keys are ignored.
        assert_eq!(
            events(r#"{"event":1}{"event":2,"host":"a","event":3}"#),
            Err(BodyError::InvalidFormat(1))
        );
        assert_eq!(
            events(r#"{"\u0065vent":{"a":1},"h\u006fst":"x","other":[1],"index":null}"#),
            Ok(vec![(
                r#"{"a":1}"#.into(),
                r#"v{"host":"x","index":null}"#.into()
            )])
        );
        assert_eq!(
            events(r#"{"event":1,"\u0065vent":2}"#),
            Err(BodyError::InvalidFormat(0)),
            "the same key, once plain and once escaped"
        );
        assert_eq!(
            events(r#"{"Event":1,"events":2,"event":3}"#),
            Ok(vec![("3".into(), "v{}".into())]),
            "keys are matched exactly"
        );
        assert_eq!(
            events(r#"{"event":"\ud800"}"#),
            Err(BodyError::InvalidFormat(0))
        );
        let (status, body) = BodyError::InvalidFormat(3).response();
        assert_eq!(status, 400);
        assert_eq!(
            body,
            r#"{"text":"Invalid data format","code":6,"invalid-event-number":3}"#
        );
    }

    #[test]
    fn raw_lines_take_the_query_metadata() {
        let mut b = Batch::default();
        read_raw_body(
            b"a b\r\n\n{\"c\":1}\n",
            Some("sourcetype=fw%3Aasa&index=net&channel=x"),
            &mut b,
        )
        .unwrap();
        assert_eq!(b.count(), 2);
        assert_eq!(b.meta(1), br#"r{"index":"net","sourcetype":"fw:asa"}"#);
        let mut out = Vec::new();
        write_envelope(
            &mut out,
            b"a b",
            b.meta(0),
            false,
            &Defaults::default(),
            &mut Scanner::new(),
        );
        assert_eq!(
            out,
            br#"{"sourcetype":"fw:asa","index":"net","event":"a b"}"#
        );
    }

    #[test]
    fn envelopes_round_trip_and_take_defaults() {
        let mut b = Batch::default();
        read_event_body(
            br#"{"time":"1700000000","host":"h","event":{"a":1}}{"event":"{\"b\":2}","index":"x"}"#,
            &mut b,
        )
        .unwrap();
        b.push_line(br#"{"alert":1}"#);
        b.push_line(b"not json");
        let d = Defaults {
            host: Some("rb".into()),
            index: Some("alerts".into()),
            ..Defaults::default()
        };
        let out: Vec<String> = (0..4)
            .map(|i| {
                let mut o = Vec::new();
                write_envelope(
                    &mut o,
                    b.iter().nth(i).unwrap(),
                    b.meta(i),
                    false,
                    &d,
                    &mut Scanner::new(),
                );
                String::from_utf8(o).unwrap()
            })
            .collect();
        assert_eq!(
            out[0],
            r#"{"time":"1700000000","host":"h","index":"alerts","event":{"a":1}}"#
        );
        assert_eq!(out[1], r#"{"host":"rb","index":"x","event":"{\"b\":2}"}"#);
        assert_eq!(
            out[2],
            r#"{"host":"rb","index":"alerts","event":{"alert":1}}"#
        );
        assert_eq!(
            out[3],
            r#"{"host":"rb","index":"alerts","event":"not json"}"#
        );
    }

    /// Metadata in the source's compact form, copied whole as the head
    /// when nothing is filled in, gives the envelope that writing it key
    /// by key gives: the same metadata spaced out, which only a scan
    /// reads. Every mix of kept keys, `null`s, defaults and event times.
    #[test]
    fn a_head_copied_whole_is_the_head_written_key_by_key() {
        let metas = [
            "{}",
            r#"{"time":1}"#,
            r#"{"time":"1.5","host":"h","source":"s","sourcetype":"st","index":"i","fields":{"a":[1]}}"#,
            r#"{"host":"h","index":"i"}"#,
            r#"{"source":"s","fields":{}}"#,
            r#"{"time":null,"host":"h"}"#,
            r#"{"host":"h","sourcetype":null}"#,
        ];
        let given = |s: &str| Some(s.to_string());
        let defaults = [
            Defaults::default(),
            Defaults {
                host: given("dh"),
                ..Defaults::default()
            },
            Defaults {
                sourcetype: given("dst"),
                index: given("di"),
                time_from_event: true,
                ..Defaults::default()
            },
            Defaults {
                time_from_event: true,
                ..Defaults::default()
            },
        ];
        let lines: [&[u8]; 3] = [br#"{"_time":"1700000000","a":1}"#, br#"{"a":1}"#, b"text"];
        let mut sc = Scanner::new();
        let mut copied = 0;
        for meta in metas {
            for d in &defaults {
                for line in lines {
                    for (kind, json) in [(b'v', true), (b'v', false), (b'j', false)] {
                        // `json` vouches for the line: only for JSON.
                        if json && line == b"text" {
                            continue;
                        }
                        let write = |meta: &str, sc: &mut Scanner| {
                            let mut o = Vec::new();
                            let meta = [&[kind], meta.as_bytes()].concat();
                            write_envelope(&mut o, line, &meta, json, d, sc);
                            String::from_utf8(o).unwrap()
                        };
                        let spaced = meta.replacen('{', "{ ", 1);
                        let (whole, by_key) = (write(meta, &mut sc), write(&spaced, &mut sc));
                        assert_eq!(whole, by_key, "{meta} {d:?} {line:?}");
                        serde_json::from_str::<serde_json::Value>(&whole).unwrap();
                        copied += whole.starts_with(meta.strip_suffix('}').unwrap()) as usize;
                    }
                }
            }
        }
        assert!(copied > 50, "{copied}");
    }

    #[test]
    fn an_envelope_without_time_takes_the_event_s_own() {
        let d = Defaults {
            time_from_event: true,
            ..Defaults::default()
        };
        let write = |line: &str, meta: &[u8], d: &Defaults| {
            let mut out = Vec::new();
            write_envelope(
                &mut out,
                line.as_bytes(),
                meta,
                false,
                d,
                &mut Scanner::new(),
            );
            String::from_utf8(out).unwrap()
        };
        let alert = r#"{"alert_id":"x","last_seen":"2025-11-27T10:00:00.250Z","_time":1}"#;
        assert!(write(alert, b"", &d).starts_with(r#"{"time":1764237600.250,"event":{"#));
        let ecs = r#"{"@timestamp":"2025-11-27T10:00:00Z","a":1}"#;
        assert!(write(ecs, b"", &d).starts_with(r#"{"time":1764237600.000,"#));
        let ocsf = r#"{"time":1764237600000,"a":1}"#;
        assert!(write(ocsf, b"", &d).starts_with(r#"{"time":1764237600.000,"#));
        // The envelope's own time wins; a time that cannot be read is left out.
        let own = write(ecs, br#"v{"time":5}"#, &d);
        assert!(own.starts_with(r#"{"time":5,"event""#), "{own}");
        assert!(write(r#"{"ts":"soon"}"#, b"", &d).starts_with(r#"{"event""#));
        assert!(write(ecs, b"", &Defaults::default()).starts_with(r#"{"event""#));
        // A key given twice: its first value; a key written with an escape
        // is the same key.
        let twice = r#"{"ts":"2025-11-27T10:00:00Z","ts":"soon"}"#;
        assert!(write(twice, b"", &d).starts_with(r#"{"time":1764237600.000,"#));
        let escaped = r#"{"t\u0073":"2025-11-27T10:00:00Z"}"#;
        assert!(write(escaped, b"", &d).starts_with(r#"{"time":1764237600.000,"#));
    }

    /// The metadata a HEC source kept, read back for the envelope: a key
    /// whose value is `null` is as none (the sink's default applies), and
    /// metadata that is not an object, or gives a key twice, counts as none.
    #[test]
    fn metadata_with_null_twice_or_broken_counts_as_none() {
        let d = Defaults {
            host: Some("rb".into()),
            ..Defaults::default()
        };
        let write = |meta: &[u8]| {
            let mut out = Vec::new();
            write_envelope(
                &mut out,
                br#"{"a":1}"#,
                meta,
                false,
                &d,
                &mut Scanner::new(),
            );
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            write(br#"v { "host" : "h" , "index" : 3 }"#),
            r#"{"host":"h","index":3,"event":{"a":1}}"#
        );
        assert_eq!(
            write(br#"v{"host":null,"source":"s"}"#),
            r#"{"host":"rb","source":"s","event":{"a":1}}"#
        );
        let none = r#"{"host":"rb","event":{"a":1}}"#;
        assert_eq!(write(br#"v{"host":"h","host":"i"}"#), none);
        assert_eq!(write(br#"v["h"]"#), none);
        assert_eq!(write(br#"v{"host":"h""#), none);
        assert_eq!(write(br#"x{"host":"h"}"#), none);
    }

    /// The reader of metadata in the source's own form reads what a scan
    /// and `Incoming::read` read, or passes: on random objects made of the
    /// kept keys and others, in any order, some twice, with whitespace,
    /// broken values and cut short. It reads every envelope's metadata a
    /// source writes.
    #[test]
    fn kept_metadata_is_read_as_a_scan_reads_it() {
        let keys = [
            "\"time\"",
            "\"host\"",
            "\"source\"",
            "\"sourcetype\"",
            "\"index\"",
            "\"fields\"",
            "\"event\"",
            "\"other\"",
            "\"ho\\u0073t\"",
            "\"hos\"",
        ];
        let values = [
            "1",
            "-2.5e3",
            "\"h\"",
            "\"a\\\"b\"",
            "null",
            "true",
            "{\"k\":[1,{}]}",
            "[]",
            "\"\u{e9}\"",
            "01",
            "\"\\q\"",
            "tru",
            "{\"k\":}",
            "\"\u{1}\"",
        ];
        let scanned = |m: &[u8]| {
            let mut sc = Scanner::new();
            let members = sc.scan_members(m).ok()?;
            Incoming::read(m, members).map(|i| i.kept.map(|v| v.map(<[u8]>::to_vec)))
        };
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut step = || crate::testing::step(&mut seed);
        let (mut fast, mut slow) = (0, 0);
        for _ in 0..30_000 {
            let mut m = String::from("{");
            for n in 0..step() % 5 {
                if n > 0 {
                    m.push_str(if step() % 16 == 0 { " , " } else { "," });
                }
                m.push_str(keys[(step() % 10) as usize]);
                m.push(':');
                m.push_str(values[(step() % 14) as usize]);
            }
            m.push('}');
            if step() % 16 == 0 {
                m.push_str([" ", "x", "}"][(step() % 3) as usize]);
            }
            let mut m = m.into_bytes();
            if step() % 8 == 0 {
                let cut = (step() as usize) % (m.len() + 1);
                m.truncate(cut);
            }
            let want = scanned(&m);
            match read_kept(&m) {
                Some(got) => {
                    fast += 1;
                    assert_eq!(Some(got.map(|v| v.map(<[u8]>::to_vec))), want, "{m:?}");
                }
                None => slow += 1,
            }
        }
        assert!(fast > 2_000 && slow > 2_000, "{fast} read, {slow} passed");
        // What a source keeps is read without a scan.
        let mut b = Batch::default();
        let body = r#"{"time":1.5,"host":"h","source":"s","sourcetype":"t","index":"i","fields":{"f":[1]},"event":{"a":1}}{"event":"x"}{"event":{},"host":null}"#;
        read_event_body(body.as_bytes(), &mut b).unwrap();
        for i in 0..b.count() {
            let meta = &b.meta(i)[1..];
            assert_eq!(
                read_kept(meta).map(|k| k.map(|v| v.map(<[u8]>::to_vec))),
                scanned(meta),
                "{meta:?}"
            );
            assert!(read_kept(meta).is_some(), "{meta:?}");
        }
    }

    /// An event the host vouches for as JSON text is written as one it
    /// reads itself would be: with or without a time of its own, wanted
    /// or not, whatever its kind.
    #[test]
    fn a_vouched_for_event_is_written_as_a_read_one() {
        let lines = [
            r#"{"a":1,"_time":"2025-11-27T10:00:00Z"}"#,
            r#"{"a":{"b":[1,"x"]},"ts":1764237600}"#,
            " { } ",
            "[1,2]",
            r#""text""#,
            "12.5",
        ];
        let metas: [&[u8]; 5] = [
            b"",
            br#"v{"time":5,"host":"h"}"#,
            br#"v{"host":"h"}"#,
            br#"j{"index":"x"}"#,
            br#"r{"sourcetype":"s"}"#,
        ];
        for time_from_event in [false, true] {
            let d = Defaults {
                time_from_event,
                ..Defaults::default()
            };
            for line in lines {
                for meta in metas {
                    let write = |json| {
                        let mut out = Vec::new();
                        let mut scanner = Scanner::new();
                        write_envelope(&mut out, line.as_bytes(), meta, json, &d, &mut scanner);
                        String::from_utf8(out).unwrap()
                    };
                    assert_eq!(write(true), write(false), "{line} {meta:?}");
                }
            }
        }
    }

    /// What is not JSON goes as a JSON string; JSON that is not an object
    /// goes as it is.
    #[test]
    fn events_that_are_not_objects() {
        let write = |line: &[u8]| {
            let mut out = Vec::new();
            write_envelope(
                &mut out,
                line,
                b"",
                false,
                &Defaults::default(),
                &mut Scanner::new(),
            );
            String::from_utf8(out).unwrap()
        };
        assert_eq!(write(br#""text""#), r#"{"event":"text"}"#);
        assert_eq!(write(b"[1,2]"), r#"{"event":[1,2]}"#);
        assert_eq!(write(b"a b"), r#"{"event":"a b"}"#);
        assert_eq!(write(br#"{"a":1"#), r#"{"event":"{\"a\":1"}"#);
        assert_eq!(
            write(b"{\"a\":\"\xff\"}"),
            "{\"event\":\"{\\\"a\\\":\\\"\u{fffd}\\\"}\"}"
        );
    }
}
