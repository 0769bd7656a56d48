//! The [`Rule`] trait: what a rule author implements. Every method but
//! [`Rule::new`] has a default, so a rule writes only what it does; the SDK
//! calls it from the [`Runner`](crate::Runner), natively or behind the wasm
//! exports.

use crate::json::{self, Object, ScanError};
use crate::{Emitter, EventOut};
#[cfg(doc)]
use crate::{OutputId, abi};

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

    /// Whether several instances of this rule may share one input
    /// (`workers > 1` in the host), each seeing some of the batches: true
    /// only when nothing the rule answers for an event depends on another
    /// batch (a rule that counts or aggregates across events must say
    /// false). The default is false: the wasm exports include
    /// snapshot/restore for every rule, so the host takes a rule that does
    /// not declare this as one that keeps state, and runs one instance.
    const PARALLEL: bool = false;

    /// [`Rule::PARALLEL`] for this instance, once built: the constant unless
    /// the configuration changes it (a rule with a stateless stage, say).
    fn parallel(&self) -> bool {
        Self::PARALLEL
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

    /// While the pipeline runs (a periodic checkpoint, to survive a crash):
    /// the state as [`Rule::snapshot`] writes it, without ending anything;
    /// the rule goes on unchanged. The default calls [`Rule::snapshot`];
    /// a rule whose snapshot also reports (logs a run summary, say)
    /// writes only the state here.
    fn checkpoint(&mut self, now_ms: i64, out: &mut Vec<u8>) {
        self.snapshot(now_ms, out);
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
