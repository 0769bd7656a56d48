//! The runner driven as the host drives it: init, batches as bytes or with
//! the host's objects index, ticks, snapshots; frames read back with
//! [`ResultFrame`] and applied to their batches with [`ResultFrame::apply`].

use crate::abi::frame::index::{IndexRequest, index_batch};
use crate::abi::{
    EventResult, FrameOutputs, InitFrame, Outcome, Reads, Reason, Refused, ResultFrame,
};
use crate::json::{self, Object, ScanError, Scanner};
use crate::{Emitter, EventOut, FieldKey, Rule, Runner};

/// Tags every object with `"seen":true`, emits one record per tick.
struct Tagger {
    ticks: u32,
    scanner: Scanner,
}

impl Rule for Tagger {
    const OUTPUTS: &'static [&'static str] = &["side"];
    fn new(config: &[u8]) -> Result<Self, String> {
        if config == b"bad" {
            Err("bad config".into())
        } else {
            Ok(Tagger {
                ticks: 0,
                scanner: Scanner::new(),
            })
        }
    }
    fn on_event(&mut self, event: &[u8], _now: i64, out: &mut EventOut<'_>) {
        match self.scanner.scan(event) {
            Ok(obj) => out.set_field(&obj, "seen", |b| b.extend_from_slice(b"true")),
            Err(e) => out.unreadable(e),
        }
    }
    fn on_tick(&mut self, _now: i64, out: &mut Emitter<'_>) {
        self.ticks += 1;
        out.emit(1, format!("{{\"tick\":{}}}", self.ticks).as_bytes());
    }
}

/// Each event as it leaves (a dropped one as it came), in order.
#[derive(Default)]
struct Spliced(Vec<Vec<u8>>);

impl FrameOutputs for Spliced {
    fn event(&mut self, _: usize, _: &EventResult, outcome: Outcome<'_>) {
        self.0.push(outcome.parts().concat());
    }
    fn record(&mut self, _: u32, _: &[u8]) {}
    fn refused(&mut self, what: Refused) {
        panic!("the runner wrote a frame the host refuses: {what:?}")
    }
}

#[test]
fn splices_and_replaces_fields() {
    let mut runner = Runner::<Tagger>::new();
    assert_eq!(
        InitFrame::parse(runner.init(b"{}")).unwrap(),
        InitFrame::Ok {
            outputs: vec!["side"],
            reads: Reads::Bytes,
            parallel: false
        }
    );
    let events: [&[u8]; 5] = [
        b"{\"a\":1}",
        b"{}",
        b"{\"seen\":false,\"b\":2}",
        b"not json",
        b"[1]",
    ];
    let mut batch = Vec::new();
    for e in events {
        batch.extend_from_slice(e);
        batch.push(b'\n');
    }
    let frame = runner.process(&batch, events.len(), 0).to_vec();
    let f = ResultFrame::parse(&frame).unwrap();
    assert_eq!(f.n_events(), 5);
    let mut spliced = Spliced::default();
    f.apply(&batch, &mut spliced);
    let got = spliced.0;
    assert_eq!(got[0], b"{\"a\":1,\"seen\":true}");
    assert_eq!(got[1], b"{\"seen\":true}");
    assert_eq!(got[2], b"{\"seen\":true,\"b\":2}");
    assert_eq!(got[3], b"not json");
    assert_eq!(f.event(3).reason, Reason::Malformed);
    assert_eq!(f.event(4).reason, Reason::NotObject);
}

#[test]
fn init_errors_and_uninitialised_calls() {
    let mut runner = Runner::<Tagger>::new();
    assert_eq!(
        InitFrame::parse(runner.init(b"bad")).unwrap(),
        InitFrame::Error("bad config")
    );
    let frame = runner.process(b"{}\n", 1, 0).to_vec();
    assert!(ResultFrame::parse(&frame).unwrap().error().is_some());
}

#[test]
fn a_stateless_rule_snapshots_nothing_and_refuses_foreign_state() {
    let mut runner = Runner::<Tagger>::new();
    let f = runner.snapshot(0).to_vec();
    assert!(
        ResultFrame::parse(&f).unwrap().error().is_some(),
        "before init"
    );
    runner.init(b"{}");
    let f = runner.snapshot(0).to_vec();
    let f = ResultFrame::parse(&f).unwrap();
    assert!(f.error().is_none());
    assert!(f.payload_area().is_empty());
    let ok = runner.restore(b"", 0).to_vec();
    assert!(ResultFrame::parse(&ok).unwrap().error().is_none());
    let bad = runner.restore(b"state", 0).to_vec();
    assert_eq!(
        ResultFrame::parse(&bad).unwrap().error(),
        Some(&b"this rule keeps no state to restore"[..])
    );
}

#[test]
fn tick_emits_records_on_named_output() {
    let mut runner = Runner::<Tagger>::new();
    runner.init(b"{}");
    let frame = runner.tick(5).to_vec();
    let f = ResultFrame::parse(&frame).unwrap();
    assert_eq!(f.n_events(), 0);
    let r = f.record(0);
    assert_eq!(r.output, 1);
    assert_eq!(
        f.payload(r.payload_off, r.payload_len).unwrap(),
        b"{\"tick\":1}"
    );
}

#[test]
fn reserved_buffer_path_matches_direct_path() {
    let mut runner = Runner::<Tagger>::new();
    let cfg = b"{}";
    runner.reserve(cfg.len()).copy_from_slice(cfg);
    assert!(matches!(
        InitFrame::parse(runner.init_reserved(cfg.len())).unwrap(),
        InitFrame::Ok {
            reads: Reads::Bytes,
            ..
        }
    ));
    let batch = b"{\"x\":1}\n{\"y\":2}\n";
    runner.reserve(batch.len()).copy_from_slice(batch);
    let a = runner.process_reserved(batch.len(), 2, 0).to_vec();
    let b = runner.process(batch, 2, 0).to_vec();
    assert_eq!(a, b);
}

/// The same tagging, through [`Rule::on_object`]. With the config
/// `keys` it declares the one key it reads; with `plan` also a path plan,
/// and the tag is then the group and the slots' values.
struct ObjectTagger(Vec<u8>);

impl Rule for ObjectTagger {
    const READS_OBJECTS: bool = true;
    fn new(config: &[u8]) -> Result<Self, String> {
        Ok(ObjectTagger(config.to_vec()))
    }
    /// Declared for one configuration, to see it reach the init frame.
    fn parallel(&self) -> bool {
        self.0 == b"plan"
    }
    fn object_keys(&self) -> Option<Vec<String>> {
        (self.0 != b"{}").then(|| vec!["seen".to_string()])
    }
    fn object_paths(&self) -> Option<json::PathPlan> {
        (self.0 == b"plan").then(|| {
            let mut p = json::PathPlan::new();
            p.add_group(&["b"], &["b", "a", "seen"]);
            p.add_group(&[], &["a"]);
            p
        })
    }
    fn on_object(
        &mut self,
        _event: &[u8],
        object: Result<Object<'_, '_>, ScanError>,
        _now: i64,
        out: &mut EventOut<'_>,
    ) {
        let plan = self.0 == b"plan";
        match object {
            Ok(obj) if plan => out.set_field(&obj, "seen", |b| {
                let slots: Vec<String> = (0..3)
                    .map(|i| match obj.slot(i) {
                        Some(v) => String::from_utf8_lossy(v.raw).into_owned(),
                        None => "null".into(),
                    })
                    .collect();
                let g = obj.group().map_or(-1, |g| g as i64);
                b.extend_from_slice(format!("[{g},{}]", slots.join(",")).as_bytes());
            }),
            Ok(obj) => out.set_field(&obj, "seen", |b| b.extend_from_slice(b"true")),
            Err(e) => out.unreadable(e),
        }
    }
}

#[test]
fn an_object_rule_answers_the_same_from_bytes_and_from_the_hosts_index() {
    let mut bytes = Runner::<Tagger>::new();
    bytes.init(b"{}");
    let batch = b"{\"a\":1}\n{}\n{\"seen\":false,\"b\":2}\nnot json\n[1]\n{\"s\\u0065en\":0}\n { \"b\" : [] } \n";
    let tagged = bytes.process(batch, 7, 0).to_vec();
    for config in [&b"{}"[..], b"keys", b"plan"] {
        let mut objects = Runner::<ObjectTagger>::new();
        let init = objects.init(config).to_vec();
        let InitFrame::Ok {
            outputs,
            reads: Reads::Objects(reads),
            parallel,
        } = InitFrame::parse(&init).unwrap()
        else {
            panic!("{init:?}")
        };
        assert!(outputs.is_empty());
        assert_eq!(parallel, config == b"plan", "Rule::parallel, declared");
        assert_eq!(reads.keys.is_some(), config != b"{}");
        assert_eq!(reads.groups.is_some(), config == b"plan");
        let want = objects.process(batch, 7, 0).to_vec();
        if config == b"plan" {
            let f = ResultFrame::parse(&want).unwrap();
            let e = f.event(2);
            assert_eq!(
                f.payload(e.payload_off, e.payload_len),
                Ok(&b"[0,2,null,false]"[..])
            );
            let e = f.event(0);
            assert_eq!(
                &f.payload(e.payload_off, e.payload_len).unwrap()[..12],
                b",\"seen\":[1,1"
            );
        } else {
            assert_eq!(want, tagged, "scanned in the guest");
        }
        // What the host would index for this init frame.
        let request = IndexRequest::from_reads(&reads);
        let mut index = Vec::new();
        index_batch(&mut Scanner::new(), &request, batch, 7, &mut index).unwrap();
        assert_eq!(objects.process_objects(batch, &index, 7, 0), &want[..]);
        let buf = objects.reserve(batch.len() + index.len());
        buf[..batch.len()].copy_from_slice(batch);
        buf[batch.len()..].copy_from_slice(&index);
        assert_eq!(
            objects.process_objects_reserved(batch.len(), 7, index.len(), 0),
            &want[..]
        );
        // An index for fewer events than the call says is an error, not a guess.
        let f = objects.process_objects(batch, &index[..40], 7, 0).to_vec();
        assert_eq!(
            ResultFrame::parse(&f).unwrap().error(),
            Some(&b"the objects index does not match its batch"[..])
        );
    }
}

/// Tags the object under `message` (when it is one) with `"seen":true`.
struct InnerTagger;

impl Rule for InnerTagger {
    const READS_OBJECTS: bool = true;
    fn new(_config: &[u8]) -> Result<Self, String> {
        Ok(InnerTagger)
    }
    fn on_object(
        &mut self,
        event: &[u8],
        object: Result<Object<'_, '_>, ScanError>,
        _now: i64,
        out: &mut EventOut<'_>,
    ) {
        if let Ok(obj) = object
            && let Some(inner) = obj.get("message")
        {
            out.set_member(event, inner, "seen", |b| b.extend_from_slice(b"true"));
        }
    }
}

#[test]
fn sets_a_member_of_a_nested_object() {
    let mut runner = Runner::<InnerTagger>::new();
    runner.init(b"{}");
    let cases: [(&[u8], &[u8]); 6] = [
        (
            b"{\"message\":{\"a\":1},\"x\":2}",
            b"{\"message\":{\"a\":1,\"seen\":true},\"x\":2}",
        ),
        (b"{\"message\": { } }", b"{\"message\": { \"seen\":true} }"),
        (
            b"{\"message\":{\"seen\":false,\"b\":{\"seen\":1}}}",
            b"{\"message\":{\"seen\":true,\"b\":{\"seen\":1}}}",
        ),
        (b"{\"message\":\"{}\"}", b"{\"message\":\"{}\"}"),
        (b"{\"message\":[1]}", b"{\"message\":[1]}"),
        (b"{\"other\":{}}", b"{\"other\":{}}"),
    ];
    let mut batch = Vec::new();
    for (e, _) in cases {
        batch.extend_from_slice(e);
        batch.push(b'\n');
    }
    let frame = runner.process(&batch, cases.len(), 0).to_vec();
    let mut spliced = Spliced::default();
    ResultFrame::parse(&frame)
        .unwrap()
        .apply(&batch, &mut spliced);
    for (i, (_, want)) in cases.iter().enumerate() {
        assert_eq!(
            String::from_utf8_lossy(&spliced.0[i]),
            String::from_utf8_lossy(want),
            "case {i}"
        );
    }
}

/// A key that needs escaping, set by [`EventOut::set_field`] or, configured
/// `made`, through a [`FieldKey`] made once.
const KEY: &str = "se\"en\\t";

struct KeySetter {
    made: Option<FieldKey>,
    scanner: Scanner,
}

impl Rule for KeySetter {
    fn new(config: &[u8]) -> Result<Self, String> {
        Ok(KeySetter {
            made: (config == b"made").then(|| FieldKey::new(KEY)),
            scanner: Scanner::new(),
        })
    }
    fn on_event(&mut self, event: &[u8], _now: i64, out: &mut EventOut<'_>) {
        let Ok(obj) = self.scanner.scan(event) else {
            return;
        };
        let one = |b: &mut Vec<u8>| b.push(b'1');
        match &self.made {
            Some(key) => out.set_key(&obj, key, one),
            None => out.set_field(&obj, KEY, one),
        }
    }
}

#[test]
fn a_key_made_ahead_sets_what_set_field_sets() {
    let events: [&[u8]; 7] = [
        b"{}",
        b"{ }",
        b"{\"a\":1}",
        br#"{"se\"en\\t":0,"b":2}"#,
        br#"{"a":{"se\"en\\t":1} , "b":[] }"#,
        br#"{"se\u0022en\\t":5}"#,
        b"[1]",
    ];
    let mut batch = Vec::new();
    for e in events {
        batch.extend_from_slice(e);
        batch.push(b'\n');
    }
    let run = |config: &[u8]| {
        let mut runner = Runner::<KeySetter>::new();
        runner.init(config);
        let frame = runner.process(&batch, events.len(), 0).to_vec();
        let mut spliced = Spliced::default();
        ResultFrame::parse(&frame)
            .unwrap()
            .apply(&batch, &mut spliced);
        spliced.0
    };
    let (by_name, made) = (run(b"{}"), run(b"made"));
    assert_eq!(made, by_name);
    assert_eq!(made[0], br#"{"se\"en\\t":1}"#);
    assert_eq!(made[2], br#"{"a":1,"se\"en\\t":1}"#);
    assert_eq!(made[3], br#"{"se\"en\\t":1,"b":2}"#);
    assert_eq!(made[6], b"[1]");
    assert_eq!(FieldKey::new(KEY).as_str(), KEY);
}
