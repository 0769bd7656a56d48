//! The bodies of the fuzz targets (`fuzz/`), kept here so the committed
//! corpus is replayed by the ordinary test suite with the same code. Each
//! takes arbitrary bytes and panics only when a guarantee breaks.

use std::cell::RefCell;
use std::path::Path;

use rule_t1071_002::T1071;
use rulebox_abi::frame::index::{IndexRequest, index_batch_checked, index_batch_prescanned};
use rulebox_abi::frame::prescanned::Prescanned;
use rulebox_abi::json::{ScanError, Scanner, Value};
use rulebox_abi::{EventResult, FrameOutputs, InitFrame, Outcome, Reads, Refused, ResultFrame};
use rulebox_plugin::Runner;

const NOW_MS: i64 = 1_763_683_200_000;

/// A runner that scans, one given the host's index, and what that index
/// holds.
type TwoRunners = (Runner<T1071>, Runner<T1071>, IndexRequest);

thread_local! {
    /// Per preset (and `auto`, also with the event wrapped at `message`)
    /// two runners, reused across inputs like long-running instances: one
    /// scans events itself, the other is given the objects index the host
    /// would build for the keys it declared.
    static PRESETS: RefCell<Vec<TwoRunners>> = RefCell::new(
        ["cim", "qradar", "ecs", "ocsf", "zeek", "sysmon", "auto", r#"auto","event_path":"message"#]
            .iter()
            .map(|s| {
                let cfg = format!(r#"{{"schema":"{s}","max_keys":10000}}"#);
                let (mut scans, mut indexed) = (Runner::new(), Runner::new());
                scans.init(cfg.as_bytes());
                let request = match InitFrame::parse(indexed.init(cfg.as_bytes())) {
                    Ok(InitFrame::Ok {
                        reads: Reads::Objects(o),
                        ..
                    }) => IndexRequest::from_reads(&o),
                    other => panic!("{other:?}"),
                };
                (scans, indexed, request)
            })
            .collect()
    );
    static GUEST: RefCell<Runner<T1071>> = RefCell::new({
        let mut r = Runner::new();
        r.init(b"{}");
        r
    });
}

/// Checks a result frame for `batch` (`count` events, cut as the SDK cuts
/// them) the way the host would use it, and that the rule kept to the
/// contract: nothing in it is refused, and every record is JSON.
fn check_frame(frame: &[u8], batch: &[u8], count: usize) {
    let f = ResultFrame::parse(frame).expect("the SDK writes well-formed frames");
    assert!(f.error().is_none());
    assert_eq!(f.n_events(), count);
    f.apply(batch, &mut Contract);
}

/// What [`check_frame`] asks of a frame.
struct Contract;

impl FrameOutputs for Contract {
    fn event(&mut self, _: usize, _: &EventResult, _: Outcome<'_>) {}

    fn record(&mut self, _: u32, line: &[u8]) {
        serde_json::from_slice::<serde_json::Value>(line).expect("alerts are JSON");
    }

    fn refused(&mut self, what: Refused) {
        panic!("the SDK wrote a frame the host refuses: {what:?}")
    }
}

/// Takes whatever a frame says and keeps nothing.
struct Discard;

impl FrameOutputs for Discard {
    fn event(&mut self, _: usize, _: &EventResult, _: Outcome<'_>) {}
    fn record(&mut self, _: u32, _: &[u8]) {}
    fn refused(&mut self, _: Refused) {}
}

/// One event, read by every preset, and the scanner's verdict checked
/// against serde_json's.
pub fn event_reader(data: &[u8]) {
    let line: Vec<u8> = data.iter().copied().filter(|&c| c != b'\n').collect();
    scan_agrees_with_serde_json(&line);
    lookups_read_members_as_the_parser(&line);
    let pre = opened_in_an_envelope(&line);
    let mut batch = line.clone();
    batch.push(b'\n');
    PRESETS.with(|p| {
        for (scans, indexed, request) in p.borrow_mut().iter_mut() {
            let frame = scans.process(&batch, 1, NOW_MS).to_vec();
            check_frame(&frame, &batch, 1);
            let mut index = Vec::new();
            let made =
                index_batch_checked(&mut Scanner::new(), request, &batch, 1, &mut index).unwrap();
            // The host skips its UTF-8 check of a batch the scan read
            // whole as JSON text: that must be UTF-8.
            assert!(
                !made.valid_text || std::str::from_utf8(&batch).is_ok(),
                "valid JSON text by the scan but not UTF-8: {batch:?}"
            );
            // The index made from the members a HEC source's scan kept
            // is the index made by scanning.
            let mut from_kept = Vec::new();
            let kept = index_batch_prescanned(
                &mut Scanner::new(),
                request,
                &batch,
                1,
                Some(&pre),
                &mut from_kept,
            )
            .unwrap();
            assert_eq!(
                (from_kept, kept),
                (index.clone(), made),
                "index from a kept scan"
            );
            let from_index = indexed.process_objects(&batch, &index, 1, NOW_MS);
            assert_eq!(
                from_index,
                &frame[..],
                "the host's index answers like a scan"
            );
        }
    });
}

/// An event that scans: its object and every object nested in it read
/// member by member as lookups read them (the scan's member step) and as
/// the full parser alone does, the same spans.
fn lookups_read_members_as_the_parser(line: &[u8]) {
    fn check(v: Value<'_>) {
        let [read, parsed] = v.members_both_ways();
        assert_eq!(
            read,
            parsed,
            "members of {:?}",
            String::from_utf8_lossy(v.raw)
        );
        for (_, value) in read {
            check(Value {
                raw: &v.raw[value.range()],
            });
        }
    }
    let mut scanner = Scanner::new();
    let Ok(object) = scanner.scan(line) else {
        return;
    };
    let start = line
        .iter()
        .position(|&c| c == b'{')
        .expect("an object opens");
    check(Value {
        raw: &line[start..=object.close],
    });
}

/// `line` as a HEC envelope's `event`, read as the HEC source reads it
/// (the event opened in the envelope's pass): the envelope is read as
/// [`Scanner::scan_prefix`] reads it, and the event's members, when kept,
/// are what [`Scanner::scan`] of the line finds. Returns what the source
/// would keep for the line.
fn opened_in_an_envelope(line: &[u8]) -> Prescanned {
    let envelope = [br#"{"time":1,"event":"#, line, br#","host":"h"}"#].concat();
    let spans = |o: rulebox_abi::json::Object<'_, '_>| (o.members().to_vec(), o.close);
    let (mut scanner, mut inner) = (Scanner::new(), Vec::new());
    let opening = scanner
        .scan_prefix_opening(&envelope, b"event", &mut inner)
        .map(|(o, end, opened)| (spans(o), end, opened));
    let plain = scanner
        .scan_prefix(&envelope)
        .map(|(o, end)| (spans(o), end));
    assert_eq!(
        opening.clone().map(|(o, end, _)| (o, end)),
        plain,
        "an envelope read with its event opened, around {:?}",
        String::from_utf8_lossy(line)
    );
    let mut pre = Prescanned::default();
    match opening {
        Ok(((members, _), _, Some(opened))) => {
            // A member `event`'s value (the fuzzer may give it twice), and
            // what a scan of that value alone finds.
            let value = members
                .iter()
                .find(|m| m.value.start as usize == opened.start)
                .map(|m| (&envelope[m.key.range()], &envelope[m.value.range()]));
            let Some((b"event", value)) = value else {
                panic!("opened {opened:?}, not an event: {value:?}");
            };
            assert_eq!(
                scanner.scan(value).map(spans),
                Ok((inner.clone(), opened.close)),
                "the opened event against its own scan: {:?}",
                String::from_utf8_lossy(line)
            );
            pre.push(&inner, opened.close);
        }
        _ => pre.push_unscanned(),
    }
    pre
}

/// The host's scanner (SSE2 on x86_64) on one line: its fast path answers
/// as its full parser alone does; and against serde_json, the same verdict
/// (an object, valid JSON but not an object, not JSON), and for an object
/// the same members, each value span a whole JSON value equal to
/// serde_json's (the last of a repeated key, as serde_json keeps).
/// Where the two differ by design nothing is compared: nesting past either
/// side's limit, a lone surrogate in a `\u` escape (valid JSON grammar;
/// serde_json refuses it as text), a number beyond `f64`.
pub fn scan_agrees_with_serde_json(line: &[u8]) {
    use serde_json::Value;
    let spans = |o: rulebox_abi::json::Object<'_, '_>| {
        let m: Vec<_> = o.members().iter().map(|m| (m.key, m.value)).collect();
        (m, o.close)
    };
    // The scanner's fast path against its full parser alone.
    let (mut scanner, mut reference) = (Scanner::new(), Scanner::new());
    assert_eq!(
        scanner.scan(line).map(spans),
        reference.scan_reference(line).map(spans),
        "fast path and full parser on {:?}",
        String::from_utf8_lossy(line)
    );
    // Members alone, without the key index: the same.
    assert_eq!(
        scanner.scan_members(line).map(<[_]>::to_vec),
        reference.scan_reference(line).map(|o| o.members().to_vec()),
        "members alone on {:?}",
        String::from_utf8_lossy(line)
    );
    // Read as the first object of a stream (a HEC body): the same object
    // as the text up to where it says the object ends; and a line that is
    // one object reads the same either way.
    let whole = scanner.scan(line).is_ok();
    match scanner.scan_prefix(line).map(|(o, end)| (spans(o), end)) {
        Ok((got, end)) => assert_eq!(
            Ok(got),
            reference.scan_reference(&line[..end]).map(spans),
            "first object of {:?}",
            String::from_utf8_lossy(line)
        ),
        Err(e) => assert!(!whole, "{e:?} for a whole object"),
    }
    let ours = scanner.scan(line);
    let theirs = serde_json::from_slice::<Value>(line);
    if let Err(e) = &theirs {
        let msg = e.to_string();
        if [
            "recursion limit",
            "surrogate",
            "hex escape",
            "number out of range",
        ]
        .iter()
        .any(|m| msg.contains(m))
        {
            return;
        }
    }
    let map = match (ours, theirs) {
        (Err(ScanError::TooDeep), _) | (Err(ScanError::Malformed), Err(_)) => return,
        (Err(ScanError::NotObject), Ok(v)) if !v.is_object() => return,
        (Ok(object), Ok(Value::Object(map))) => (object, map),
        (ours, theirs) => panic!(
            "scanner {:?}, serde_json {:?} on {:?}",
            ours.map(|o| o.members().len()),
            theirs,
            String::from_utf8_lossy(line)
        ),
    };
    let (object, map) = map;
    let mut last = std::collections::BTreeMap::new();
    for m in object.members() {
        let quoted = &line[m.key.start as usize - 1..m.key.end as usize + 1];
        let key: String = serde_json::from_slice(quoted).expect("a key span is a JSON string");
        let value: Value =
            serde_json::from_slice(&line[m.value.range()]).expect("a value span is JSON");
        last.insert(key, value);
    }
    assert_eq!(last.len(), map.len(), "{:?}", String::from_utf8_lossy(line));
    for (k, v) in &map {
        assert_eq!(last.get(k), Some(v), "{:?}", String::from_utf8_lossy(line));
    }
}

/// The plugin API's decoding on both sides: the host's reading of result
/// and init frames and of stored state; the guest's reading of batches and
/// of snapshots handed back.
pub fn abi_frames(data: &[u8]) {
    if let Ok(f) = ResultFrame::parse(data) {
        // Applied as the host applies it, to arbitrary events (its own bytes).
        f.apply(data, &mut Discard);
    }
    let _ = InitFrame::parse(data);
    let _ = rulebox::durable::snapshot::decode(data);
    let Some((&count, batch)) = data.split_first() else {
        return;
    };
    GUEST.with(|g| {
        let mut g = g.borrow_mut();
        // A batch with a count that may not match its lines.
        let count = count as usize % 16;
        let frame = g.process(batch, count, NOW_MS).to_vec();
        check_frame(&frame, batch, count);
        // Arbitrary bytes handed back as a snapshot: refused or used, never a panic.
        let frame = g.restore(batch, NOW_MS).to_vec();
        ResultFrame::parse(&frame).expect("an ok or error frame");
        // Arbitrary bytes as the objects index of a fixed batch: the rule
        // (which declares keys and a path plan) gets an error frame or
        // answers, and the SDK never reads outside the batch.
        const BATCH: &[u8] =
            b"{\"dest_ip\":\"8.8.8.8\",\"dest_port\":21}\n{\"id.resp_h\":\"1.1.1.1\"}\n[1]\n";
        let frame = g.process_objects(BATCH, batch, count % 4, NOW_MS).to_vec();
        let f = ResultFrame::parse(&frame).expect("an ok or error frame");
        if f.error().is_none() {
            check_frame(&frame, BATCH, count % 4);
        }
    });
}

/// The pipeline configuration and the rule's configuration.
pub fn config_loader(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = rulebox::topology::Loaded::parse(Path::new("/fuzz/p.toml"), text.to_string());
    }
    if let Ok(cfg) = rule_t1071_002::config::Config::from_json(data) {
        let _ = T1071::from_config(cfg);
    }
}

/// A fuzz target body.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("event_reader", event_reader),
    ("abi_frames", abi_frames),
    ("config_loader", config_loader),
];
