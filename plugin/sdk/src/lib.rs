//! The guest SDK for rulebox rules. A rule author implements [`Rule`] and
//! names it in [`export_rule!`]; the SDK owns every pointer, buffer and frame
//! of the contract in [`rulebox_abi`].
//!
//! The same code runs natively: [`Runner`] is the whole guest side without
//! WebAssembly, so a rule is unit-tested and benchmarked as plain Rust, and
//! the wasm exports the macro writes are one-liners into a `Runner`.
//!
//! ```
//! use rulebox_plugin::{EventOut, Rule, json::{Object, ScanError}};
//! struct Tag;
//! impl Rule for Tag {
//!     // The host validates and indexes each event natively, before the
//!     // sandbox: the rule gets the object's members as spans.
//!     const READS_OBJECTS: bool = true;
//!     fn new(_config: &[u8]) -> Result<Self, String> { Ok(Tag) }
//!     fn on_object(&mut self, _event: &[u8], object: Result<Object<'_, '_>, ScanError>,
//!                  _now_ms: i64, out: &mut EventOut<'_>) {
//!         match object {
//!             // Read fields with obj.get("a.b"); splice a field in:
//!             Ok(obj) => out.set_field(&obj, "tag", |b| b.extend_from_slice(b"true")),
//!             Err(e) => out.unreadable(e),
//!         }
//!     }
//! }
//! rulebox_plugin::export_rule!(Tag);
//! ```

pub use rulebox_abi as abi;
pub use rulebox_abi::json;

use abi::frame::index::{BadIndex, IndexReader};
use abi::{Action, EventResult, InitFrame, ObjectReads, Reads, Reason, ResultFrameWriter};
use json::{Object, ScanError, Scanner};

/// A detection rule. One instance handles one stream of events, one call at a
/// time; time enters only through the `now_ms` arguments (processing time,
/// Unix milliseconds).
pub trait Rule: Sized + 'static {
    /// Named outputs besides the default event output, in id order: the
    /// first is [`OutputId`] 1.
    const OUTPUTS: &'static [&'static str] = &[];

    /// The named outputs of this instance, once built: [`Rule::OUTPUTS`]
    /// unless the configuration changes them.
    fn outputs(&self) -> &'static [&'static str] {
        Self::OUTPUTS
    }

    /// Builds the rule from its configuration (JSON text of the
    /// `[transforms.<id>.config]` table; `{}` when there is none). An error
    /// here is shown to the user by `rulebox validate`.
    fn new(config: &[u8]) -> Result<Self, String>;

    /// Whether the rule reads events as JSON objects. When it does, it
    /// implements [`Rule::on_object`] instead of [`Rule::on_event`], and in
    /// the sandbox the host validates and indexes every event natively,
    /// once, before the batch enters the guest (the
    /// [objects index](abi::frame::index)): the rule starts from
    /// spans instead of scanning bytes in WebAssembly.
    const READS_OBJECTS: bool = false;

    /// For a rule that reads objects: every top-level key it may look up
    /// ([`json::KeySet::path_keys`] gives them for a dotted path), or `None`
    /// (the default) for all. In the sandbox the host's index then lists
    /// only the members with these keys (and any whose key holds an
    /// escape), which makes it a few members per event instead of all of
    /// them. Such a rule must not look up other keys, nor count on
    /// [`Object::members`] listing every member; [`Object::is_empty`] and
    /// [`EventOut::set_field`] stay exact.
    fn object_keys(&self) -> Option<Vec<String>> {
        None
    }

    /// For a rule that reads objects: the field paths it reads, as a
    /// [`json::PathPlan`] (groups of paths, one per shape of event it
    /// knows), or `None` (the default). With a plan, every object comes
    /// with [`Object::group`] and [`Object::slot`] answered: in the sandbox
    /// by the host, natively, with the scan; natively here by the runner.
    /// Slots are cheaper than lookups in a guest. Called once, after
    /// [`Rule::new`].
    fn object_paths(&self) -> Option<json::PathPlan> {
        None
    }

    /// Looks at one event, as bytes. Doing nothing passes it on unchanged.
    fn on_event(&mut self, event: &[u8], now_ms: i64, out: &mut EventOut<'_>) {
        let _ = (event, now_ms, out);
    }

    /// Looks at one event as a scanned JSON object (`Err`: why it is not
    /// one), when [`Rule::READS_OBJECTS`] is set. Doing nothing passes it on
    /// unchanged. The default hands the bytes to [`Rule::on_event`].
    fn on_object(
        &mut self,
        event: &[u8],
        object: Result<Object<'_, '_>, ScanError>,
        now_ms: i64,
        out: &mut EventOut<'_>,
    ) {
        let _ = object;
        self.on_event(event, now_ms, out)
    }

    /// Called every flush interval.
    fn on_tick(&mut self, now_ms: i64, out: &mut Emitter<'_>) {
        let _ = (now_ms, out);
    }

    /// Called once, at end of input (or at shutdown when the state is not
    /// snapshotted).
    fn on_flush(&mut self, now_ms: i64, out: &mut Emitter<'_>) {
        let _ = (now_ms, out);
    }

    /// At a graceful shutdown: writes the state to keep across the restart
    /// into `out` (called instead of [`Rule::on_flush`]). Writing nothing
    /// means there is nothing to keep. The default keeps nothing.
    fn snapshot(&mut self, now_ms: i64, out: &mut Vec<u8>) {
        let _ = (now_ms, out);
    }

    /// At start, with what [`Rule::snapshot`] wrote before a restart (never
    /// empty). The bytes may come from another version or configuration, or
    /// be damaged: check them and answer an error instead of trapping; the
    /// host then sets them aside and the rule starts empty.
    fn restore(&mut self, data: &[u8], now_ms: i64) -> Result<(), String> {
        let _ = (data, now_ms);
        Err("this rule keeps no state to restore".into())
    }
}

/// A declared output: 0 is the default event output, `k` the k-th entry of
/// [`Rule::outputs`].
pub type OutputId = u16;

/// Emits records (one NDJSON line each) on named outputs.
pub struct Emitter<'w> {
    w: &'w mut ResultFrameWriter,
}

impl Emitter<'_> {
    /// Emits one record, written by `write` (no trailing newline).
    pub fn emit_with(&mut self, output: OutputId, write: impl FnOnce(&mut Vec<u8>)) {
        let off = self.w.payload.len();
        write(&mut self.w.payload);
        let len = self.w.payload.len() - off;
        self.w
            .push_record_range(output as u32, off as u32, len as u32);
    }

    pub fn emit(&mut self, output: OutputId, line: &[u8]) {
        self.w.push_record(output as u32, line);
    }
}

/// What the rule says about one event.
pub struct EventOut<'w> {
    w: &'w mut ResultFrameWriter,
    result: EventResult,
}

impl EventOut<'_> {
    /// Records why the event could not be read; it passes on untouched and
    /// the host counts the reason.
    pub fn unreadable(&mut self, error: ScanError) {
        self.result.reason = match error {
            ScanError::NotObject => Reason::NotObject as u8,
            ScanError::Malformed | ScanError::TooDeep => Reason::Malformed as u8,
        };
    }

    /// Replaces event bytes `[start, end)` with what `write` writes.
    pub fn edit_with(&mut self, start: usize, end: usize, write: impl FnOnce(&mut Vec<u8>)) {
        let off = self.w.payload.len();
        write(&mut self.w.payload);
        self.result.action = Action::Edit as u8;
        self.result.start = start as u32;
        self.result.end = end as u32;
        self.result.payload_off = off as u32;
        self.result.payload_len = (self.w.payload.len() - off) as u32;
    }

    /// Sets top-level field `key` of the scanned object to the JSON value
    /// `write` writes: the value of an existing member is replaced in place,
    /// otherwise `"key":value` is inserted before the closing brace. The rest
    /// of the event keeps its original bytes.
    pub fn set_field(&mut self, obj: &Object<'_, '_>, key: &str, write: impl FnOnce(&mut Vec<u8>)) {
        match obj.member(key) {
            Some(m) => self.edit_with(m.value.start as usize, m.value.end as usize, write),
            None => self.edit_with(obj.close, obj.close, |buf| {
                if !obj.is_empty() {
                    buf.push(b',');
                }
                json::write_str(buf, key);
                buf.push(b':');
                write(buf);
            }),
        }
    }

    /// Sends the event to another declared output instead of the default.
    pub fn route(&mut self, output: OutputId) {
        self.result.output = output;
    }

    /// Drops the event (the host counts drops).
    pub fn drop_event(&mut self) {
        self.result.action = Action::Drop as u8;
    }

    /// Emits a record on a named output while handling this event.
    pub fn emitter(&mut self) -> Emitter<'_> {
        Emitter { w: self.w }
    }
}

/// The guest side of the contract, natively callable. The wasm exports of
/// [`export_rule!`] forward to one of these.
#[derive(Debug)]
pub struct Runner<R> {
    rule: Option<R>,
    input: Vec<u8>,
    writer: ResultFrameWriter,
    init: Vec<u8>,
    /// Scans (or loads) events for a rule that reads objects.
    scanner: Scanner,
    /// The rule's [`Rule::object_paths`].
    plan: Option<json::PathPlan>,
}

impl<R: Rule> Default for Runner<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Rule> Runner<R> {
    pub fn new() -> Self {
        Runner {
            rule: None,
            input: Vec::new(),
            writer: ResultFrameWriter::new(),
            init: Vec::new(),
            scanner: Scanner::new(),
            plan: None,
        }
    }

    /// A buffer of at least `len` bytes for the host to write into.
    pub fn reserve(&mut self, len: usize) -> &mut [u8] {
        if self.input.len() < len {
            self.input.resize(len, 0);
        }
        &mut self.input[..len]
    }

    /// Builds the rule from the first `len` reserved bytes; returns an init frame.
    pub fn init_reserved(&mut self, len: usize) -> &[u8] {
        let config = std::mem::take(&mut self.input);
        let end = len.min(config.len());
        let r = self.init(&config[..end]).len();
        self.input = config;
        &self.init[..r]
    }

    /// Builds the rule from `config`; returns an init frame.
    pub fn init(&mut self, config: &[u8]) -> &[u8] {
        match R::new(config) {
            Ok(rule) => {
                let keys = rule.object_keys();
                self.plan = rule.object_paths();
                let reads = if R::READS_OBJECTS {
                    Reads::Objects(ObjectReads {
                        keys: keys
                            .as_ref()
                            .map(|k| k.iter().map(String::as_str).collect()),
                        groups: self.plan.as_ref().map(|p| {
                            p.groups()
                                .iter()
                                .map(|g| (g.when().collect(), g.paths().collect()))
                                .collect()
                        }),
                    })
                } else {
                    Reads::Bytes
                };
                if let Reads::Objects(o) = &reads
                    && let Err(e) = o.check()
                {
                    InitFrame::Error(&e).encode(&mut self.init);
                    return &self.init;
                }
                InitFrame::Ok(rule.outputs().to_vec(), reads).encode(&mut self.init);
                self.rule = Some(rule);
            }
            Err(msg) => InitFrame::Error(&msg).encode(&mut self.init),
        }
        &self.init
    }

    /// Processes the first `len` reserved bytes as `count` events.
    pub fn process_reserved(&mut self, len: usize, count: usize, now_ms: i64) -> &[u8] {
        let input = std::mem::take(&mut self.input);
        let end = len.min(input.len());
        let ok = self.process_batch(&input[..end], count, now_ms);
        self.input = input;
        self.finish(ok)
    }

    /// Processes the reserved buffer as a batch of `batch_len` bytes followed
    /// by its objects index of `index_len` bytes (`rulebox_process_objects`).
    pub fn process_objects_reserved(
        &mut self,
        batch_len: usize,
        count: usize,
        index_len: usize,
        now_ms: i64,
    ) -> &[u8] {
        let input = std::mem::take(&mut self.input);
        let batch_end = batch_len.min(input.len());
        let index_end = batch_end.saturating_add(index_len).min(input.len());
        let res = self.process_indexed(
            &input[..batch_end],
            &input[batch_end..index_end],
            count,
            now_ms,
        );
        self.input = input;
        self.finish_indexed(res)
    }

    /// Processes a batch with the objects index the host made of it;
    /// returns a result frame.
    pub fn process_objects(
        &mut self,
        batch: &[u8],
        index: &[u8],
        count: usize,
        now_ms: i64,
    ) -> &[u8] {
        let res = self.process_indexed(batch, index, count, now_ms);
        self.finish_indexed(res)
    }

    fn finish_indexed(&mut self, res: Result<bool, BadIndex>) -> &[u8] {
        match res {
            Ok(initialised) => self.finish(initialised),
            Err(BadIndex) => self
                .writer
                .finish_error("the objects index does not match its batch"),
        }
    }

    fn process_indexed(
        &mut self,
        batch: &[u8],
        index: &[u8],
        count: usize,
        now_ms: i64,
    ) -> Result<bool, BadIndex> {
        self.writer.clear();
        let Some(rule) = self.rule.as_mut() else {
            return Ok(false);
        };
        let mut reader = IndexReader::new(index);
        for _ in 0..count {
            let (event, object) = self.scanner.load(batch, &mut reader, self.plan.as_ref())?;
            let mut out = EventOut {
                w: &mut self.writer,
                result: EventResult::default(),
            };
            rule.on_object(event, object, now_ms, &mut out);
            let result = out.result;
            self.writer.push_event(result);
        }
        Ok(true)
    }

    /// Processes a batch (events each followed by `\n`); returns a result frame.
    pub fn process(&mut self, batch: &[u8], count: usize, now_ms: i64) -> &[u8] {
        let ok = self.process_batch(batch, count, now_ms);
        self.finish(ok)
    }

    fn finish(&mut self, initialised: bool) -> &[u8] {
        if initialised {
            self.writer.finish()
        } else {
            self.writer
                .finish_error("called before a successful rulebox_init")
        }
    }

    /// False when there is no rule yet.
    fn process_batch(&mut self, batch: &[u8], count: usize, now_ms: i64) -> bool {
        self.writer.clear();
        let Some(rule) = self.rule.as_mut() else {
            return false;
        };
        let mut rest = batch;
        for _ in 0..count {
            let (event, next) = match json::find_byte(rest, b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            rest = next;
            let mut out = EventOut {
                w: &mut self.writer,
                result: EventResult::default(),
            };
            if R::READS_OBJECTS {
                let object = match &self.plan {
                    Some(plan) => self.scanner.scan_planned(event, plan),
                    None => self.scanner.scan(event),
                };
                rule.on_object(event, object, now_ms, &mut out);
            } else {
                rule.on_event(event, now_ms, &mut out);
            }
            let result = out.result;
            self.writer.push_event(result);
        }
        true
    }

    pub fn tick(&mut self, now_ms: i64) -> &[u8] {
        self.writer.clear();
        let ok = self.rule.as_mut().map(|rule| {
            rule.on_tick(
                now_ms,
                &mut Emitter {
                    w: &mut self.writer,
                },
            )
        });
        self.finish(ok.is_some())
    }

    pub fn flush(&mut self, now_ms: i64) -> &[u8] {
        self.writer.clear();
        let ok = self.rule.as_mut().map(|rule| {
            rule.on_flush(
                now_ms,
                &mut Emitter {
                    w: &mut self.writer,
                },
            )
        });
        self.finish(ok.is_some())
    }

    /// The rule's state, as a result frame whose payload is the snapshot.
    pub fn snapshot(&mut self, now_ms: i64) -> &[u8] {
        self.writer.clear();
        let ok = self
            .rule
            .as_mut()
            .map(|rule| rule.snapshot(now_ms, &mut self.writer.payload));
        self.finish(ok.is_some())
    }

    /// Restores the first `len` reserved bytes.
    pub fn restore_reserved(&mut self, len: usize, now_ms: i64) -> &[u8] {
        let input = std::mem::take(&mut self.input);
        let end = len.min(input.len());
        self.restore_inner(&input[..end], now_ms);
        self.input = input;
        self.writer.frame()
    }

    /// Restores a snapshot; answers an ok or error frame.
    pub fn restore(&mut self, data: &[u8], now_ms: i64) -> &[u8] {
        self.restore_inner(data, now_ms);
        self.writer.frame()
    }

    fn restore_inner(&mut self, data: &[u8], now_ms: i64) {
        self.writer.clear();
        let res = match self.rule.as_mut() {
            None => Err("called before a successful rulebox_init".to_string()),
            Some(_) if data.is_empty() => Ok(()),
            Some(rule) => rule.restore(data, now_ms),
        };
        match res {
            Ok(()) => {
                self.writer.finish();
            }
            Err(msg) => {
                self.writer.finish_error(&msg);
            }
        }
    }

    /// The rule, once built (for native tests).
    pub fn rule(&self) -> Option<&R> {
        self.rule.as_ref()
    }
}

/// Logs a line through the host (natively: to stderr).
pub fn log(level: abi::LogLevel, msg: &str) {
    #[cfg(target_family = "wasm")]
    {
        #[link(wasm_import_module = "rulebox")]
        unsafe extern "C" {
            #[link_name = "log"]
            fn host_log(level: i32, ptr: *const u8, len: usize);
        }
        // SAFETY: the host reads `len` bytes at `ptr` from our memory, bounds-checked.
        unsafe { host_log(level as i32, msg.as_ptr(), msg.len()) }
    }
    #[cfg(not(target_family = "wasm"))]
    eprintln!("plugin {level:?}: {msg}");
}

/// Glue for [`export_rule!`]; not for direct use.
#[doc(hidden)]
pub mod __export {
    pub use crate::Runner;
    pub use rulebox_abi::{ABI_VERSION, pack};

    /// The single runner of a wasm instance. A wasm instance is single
    /// threaded and the host never re-enters it, so one `static mut` behind
    /// these accessors is sound.
    pub struct Slot<R>(pub core::cell::UnsafeCell<Option<Runner<R>>>);
    // SAFETY: wasm32-wasip1 instances have one thread.
    unsafe impl<R> Sync for Slot<R> {}

    impl<R: crate::Rule> Slot<R> {
        #[allow(clippy::mut_from_ref)]
        pub fn get(&self) -> &mut Runner<R> {
            // SAFETY: see the type's doc: one thread, no re-entry.
            let slot = unsafe { &mut *self.0.get() };
            slot.get_or_insert_with(Runner::new)
        }
    }

    pub fn frame(bytes: &[u8]) -> i64 {
        pack(bytes.as_ptr() as usize as u32, bytes.len() as u32)
    }
}

/// Exports a [`Rule`] as a rulebox plugin (the `rulebox_*` functions of the
/// contract). Outside WebAssembly it expands to nothing, so the rule crate
/// still builds and tests natively.
#[macro_export]
macro_rules! export_rule {
    ($rule:ty) => {
        #[cfg(target_family = "wasm")]
        mod __rulebox_exports {
            use super::*;
            use $crate::__export::{ABI_VERSION, Slot, frame};

            static SLOT: Slot<$rule> = Slot(core::cell::UnsafeCell::new(None));

            #[unsafe(no_mangle)]
            pub extern "C" fn rulebox_abi_version() -> i32 {
                ABI_VERSION as i32
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn rulebox_reserve(len: i32) -> i32 {
                SLOT.get().reserve(len as u32 as usize).as_mut_ptr() as usize as i32
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn rulebox_init(_ptr: i32, len: i32) -> i64 {
                frame(SLOT.get().init_reserved(len as u32 as usize))
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn rulebox_process(_ptr: i32, len: i32, count: i32, now_ms: i64) -> i64 {
                frame(SLOT.get().process_reserved(
                    len as u32 as usize,
                    count as u32 as usize,
                    now_ms,
                ))
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn rulebox_process_objects(
                _ptr: i32,
                batch_len: i32,
                count: i32,
                index_len: i32,
                now_ms: i64,
            ) -> i64 {
                frame(SLOT.get().process_objects_reserved(
                    batch_len as u32 as usize,
                    count as u32 as usize,
                    index_len as u32 as usize,
                    now_ms,
                ))
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn rulebox_tick(now_ms: i64) -> i64 {
                frame(SLOT.get().tick(now_ms))
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn rulebox_flush(now_ms: i64) -> i64 {
                frame(SLOT.get().flush(now_ms))
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn rulebox_snapshot(now_ms: i64) -> i64 {
                frame(SLOT.get().snapshot(now_ms))
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn rulebox_restore(_ptr: i32, len: i32, now_ms: i64) -> i64 {
                frame(SLOT.get().restore_reserved(len as u32 as usize, now_ms))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::ResultFrame;
    use json::Scanner;

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

    fn apply(event: &[u8], r: &EventResult, f: &ResultFrame<'_>) -> Vec<u8> {
        if r.action != Action::Edit as u8 {
            return event.to_vec();
        }
        let mut out = event[..r.start as usize].to_vec();
        out.extend_from_slice(f.payload(r.payload_off, r.payload_len).unwrap());
        out.extend_from_slice(&event[r.end as usize..]);
        out
    }

    #[test]
    fn splices_and_replaces_fields() {
        let mut runner = Runner::<Tagger>::new();
        assert_eq!(
            InitFrame::parse(runner.init(b"{}")).unwrap(),
            InitFrame::Ok(vec!["side"], Reads::Bytes)
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
        let got: Vec<_> = (0..5).map(|i| apply(events[i], &f.event(i), &f)).collect();
        assert_eq!(got[0], b"{\"a\":1,\"seen\":true}");
        assert_eq!(got[1], b"{\"seen\":true}");
        assert_eq!(got[2], b"{\"seen\":true,\"b\":2}");
        assert_eq!(got[3], b"not json");
        assert_eq!(f.event(3).reason, Reason::Malformed as u8);
        assert_eq!(f.event(4).reason, Reason::NotObject as u8);
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
            InitFrame::Ok(_, Reads::Bytes)
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
            let InitFrame::Ok(outputs, Reads::Objects(reads)) = InitFrame::parse(&init).unwrap()
            else {
                panic!("{init:?}")
            };
            assert!(outputs.is_empty());
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
            let request = abi::frame::index::IndexRequest::from_reads(&reads);
            let mut index = Vec::new();
            abi::frame::index::index_batch(&mut Scanner::new(), &request, batch, 7, &mut index);
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
}
