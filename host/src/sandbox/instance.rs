//! A live plugin instance: one store (memory cap, epoch deadline armed
//! before every call) and the typed calls of the contract. Batches are
//! copied in through the guest's `reserve`; answers are read as frames
//! from guest memory, bounds-checked.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rulebox_abi::frame::index;
use rulebox_abi::frame::prescanned::Prescanned;
use rulebox_abi::{self as abi, FrameError, InitFrame, Reads, ResultFrame, json};
use wasmtime::{Engine, InstancePre, Memory, Store, Trap, TypedFunc};

use crate::batch::Batch;

use super::contract::check_output_names;
use super::error::PluginError;
use super::host_state::HostState;
use super::printable::{printable, printable_str};
use super::runtime::EPOCH_TICK;

fn arm(store: &mut Store<HostState>, deadline: Duration) {
    let ticks = (deadline.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64;
    // One extra tick: the ticker may advance right after we arm.
    store.set_epoch_deadline(ticks + 1);
    store.epoch_deadline_trap();
    store.data_mut().log_budget = HostState::LOG_BUDGET;
}

fn classify(e: wasmtime::Error, deadline: Duration) -> PluginError {
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PluginError::Deadline(deadline),
        // The message may quote the module's own names (its backtrace).
        _ => PluginError::Trap(printable_str(&format!("{e:#}"))),
    }
}

/// A batch's events as a plugin gets them: `bytes` holds `count` lines,
/// each followed by `\n`; `ends`, where each line ends (just past its
/// `\n`) when the batch knows it ([`Batch::line_ends`]), so the index
/// does not look for them again; `pre`, the members a source's scan kept
/// for its lines ([`Batch::scans`]), where it kept any.
#[derive(Debug, Clone, Copy)]
pub struct Events<'a> {
    pub bytes: &'a [u8],
    pub count: usize,
    pub ends: Option<&'a [usize]>,
    pub pre: Option<&'a Prescanned>,
}

impl<'a> Events<'a> {
    /// All of `b`'s lines, with what it knows of them.
    pub fn of(b: &'a Batch) -> Events<'a> {
        Events {
            bytes: b.bytes(),
            count: b.count(),
            ends: Some(b.line_ends()),
            pre: b.scans(),
        }
    }
}

/// Makes objects indexes for one plugin's request apart from its
/// instance ([`Instance::indexer`]), so a batch can be scanned while the
/// plugin runs the one before. The work is [`index::index_batch`]'s, with
/// the same budget.
pub struct Indexer {
    request: Arc<index::IndexRequest>,
    scanner: json::Scanner,
}

impl Indexer {
    pub fn new(request: Arc<index::IndexRequest>) -> Indexer {
        Indexer {
            request,
            scanner: json::Scanner::new(),
        }
    }

    /// The index of `events`, starting from the members a source's scan
    /// kept for its lines where any.
    pub fn index(&mut self, events: Events<'_>) -> Indexed {
        self.index_in(Vec::with_capacity(events.bytes.len() / 4), events)
    }

    /// [`Indexer::index`] into `index` (emptied first).
    fn index_in(&mut self, mut index: Vec<u8>, events: Events<'_>) -> Indexed {
        index.clear();
        let made = self.index_into(events, &mut index);
        Indexed {
            request: self.request.clone(),
            valid_text: made.is_ok_and(|m| m.valid_text),
            index: made.map(|_| index).map_err(|_| ()),
        }
    }

    /// The index of a batch, into `index`, when a transform's screen
    /// would let all of it by (no line over `max_line_bytes`, all of it
    /// UTF-8); None otherwise, and for no events. The scan checks UTF-8 as
    /// it reads, so a batch whose every event it read as JSON text needs
    /// no check of its own; only one with a malformed line is checked
    /// whole.
    pub fn index_screened(
        &mut self,
        index: Vec<u8>,
        events: Events<'_>,
        max_line_bytes: usize,
    ) -> Option<Indexed> {
        if events.count == 0 || events.bytes.len() > max_line_bytes {
            return None;
        }
        let indexed = self.index_in(index, events);
        (indexed.valid_text || std::str::from_utf8(events.bytes).is_ok()).then_some(indexed)
    }

    /// The index of `events` appended to `out` (Err: over the plan's
    /// budget, `out` incomplete).
    fn index_into(
        &mut self,
        events: Events<'_>,
        out: &mut Vec<u8>,
    ) -> Result<index::Indexing, json::OverBudget> {
        let Events {
            bytes,
            count,
            ends,
            pre,
        } = events;
        let (scanner, request) = (&mut self.scanner, &self.request);
        index::index_batch_with_ends(scanner, request, bytes, count, ends, pre, out)
    }
}

/// An objects index made by an [`Indexer`]: the request it followed, and
/// the index (Err: the plan went over its budget).
pub struct Indexed {
    request: Arc<index::IndexRequest>,
    index: Result<Vec<u8>, ()>,
    /// The scan read every event of the batch as valid JSON text, so the
    /// batch is valid UTF-8 ([`index::Indexing::valid_text`]).
    valid_text: bool,
}

impl Indexed {
    /// The index (None: the plan went over its budget).
    pub fn index(&self) -> Option<&[u8]> {
        self.index.as_deref().ok()
    }

    /// Whether the scan showed the batch to be valid UTF-8 (false: it may
    /// or may not be).
    pub fn valid_utf8(&self) -> bool {
        self.valid_text
    }

    /// Whether it follows `request` (an instance made anew after a failure
    /// may have asked for another).
    fn follows(&self, request: &Arc<index::IndexRequest>) -> bool {
        Arc::ptr_eq(&self.request, request) || *self.request == **request
    }
}

/// A live plugin instance.
pub struct Instance {
    store: Store<HostState>,
    memory: Memory,
    reserve: TypedFunc<i32, i32>,
    init: TypedFunc<(i32, i32), i64>,
    process: TypedFunc<(i32, i32, i32, i64), i64>,
    process_objects: Option<ProcessObjects>,
    /// The plugin reads events as objects: batches go with an objects index.
    reads_objects: bool,
    /// Scans events natively for such a plugin, into `index`, as its
    /// request asks (members, paths resolved).
    indexer: Indexer,
    index: Vec<u8>,
    tick: TypedFunc<i64, i64>,
    flush: TypedFunc<i64, i64>,
    /// The optional snapshot and restore exports.
    state: Option<StateFuncs>,
    /// The optional checkpoint export (else a checkpoint is a snapshot).
    checkpoint: Option<TypedFunc<i64, i64>>,
    outputs: Vec<String>,
    /// The init frame set `INIT_PARALLEL`.
    parallel: bool,
    deadline: Duration,
}

type StateFuncs = (TypedFunc<i64, i64>, TypedFunc<(i32, i32, i64), i64>);

/// `rulebox_process_objects(ptr, batch_len, count, index_len, now_ms)`.
type ProcessObjects = TypedFunc<(i32, i32, i32, i32, i64), i64>;

impl Instance {
    /// Instantiates `pre` in a fresh store and finds the contract's
    /// exports; the ABI version is checked, `init` not yet called.
    pub(super) fn new(
        engine: &Engine,
        pre: &InstancePre<HostState>,
        state: HostState,
        deadline: Duration,
        path: &Path,
    ) -> Result<Instance, PluginError> {
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limits);
        arm(&mut store, deadline);
        let instance = pre
            .instantiate(&mut store)
            .map_err(|e| classify(e, deadline))?;
        let contract = |message: String| PluginError::Contract {
            path: path.to_path_buf(),
            message,
        };
        let memory = instance
            .get_memory(&mut store, abi::export::MEMORY)
            .ok_or_else(|| contract("no exported memory".into()))?;
        macro_rules! typed {
            ($name:expr) => {
                instance
                    .get_typed_func(&mut store, $name)
                    .map_err(|e| contract(format!("export {}: {e}", $name)))?
            };
        }
        let version: TypedFunc<(), i32> = typed!(abi::export::ABI_VERSION);
        let mut inst = Instance {
            reserve: typed!(abi::export::RESERVE),
            init: typed!(abi::export::INIT),
            process: typed!(abi::export::PROCESS),
            process_objects: instance
                .get_typed_func(&mut store, abi::export::PROCESS_OBJECTS)
                .ok(),
            tick: typed!(abi::export::TICK),
            flush: typed!(abi::export::FLUSH),
            state: match (
                instance.get_typed_func(&mut store, abi::export::SNAPSHOT),
                instance.get_typed_func(&mut store, abi::export::RESTORE),
            ) {
                (Ok(s), Ok(r)) => Some((s, r)),
                _ => None,
            },
            checkpoint: instance
                .get_typed_func(&mut store, abi::export::CHECKPOINT)
                .ok(),
            store,
            memory,
            reads_objects: false,
            indexer: Indexer::new(Arc::default()),
            index: Vec::new(),
            outputs: Vec::new(),
            parallel: false,
            deadline,
        };
        arm(&mut inst.store, deadline);
        let found = version
            .call(&mut inst.store, ())
            .map_err(|e| classify(e, deadline))?;
        if found as u32 != abi::ABI_VERSION {
            return Err(PluginError::AbiVersion {
                found: found as i64,
                expected: abi::ABI_VERSION,
            });
        }
        Ok(inst)
    }

    /// Hands the plugin its configuration; takes what its init frame
    /// declares (outputs, and how it reads events), checked.
    pub(super) fn init(&mut self, config_json: &[u8], path: &Path) -> Result<(), PluginError> {
        let contract = |message: String| PluginError::Contract {
            path: path.to_path_buf(),
            message,
        };
        let ptr = self.put(config_json)?;
        arm(&mut self.store, self.deadline);
        let packed = self
            .init
            .call(&mut self.store, (ptr as i32, config_json.len() as i32))
            .map_err(|e| classify(e, self.deadline))?;
        let frame = self.frame_bytes(packed)?;
        let (outputs, reads, parallel) =
            match InitFrame::parse(frame).map_err(PluginError::Frame)? {
                InitFrame::Ok {
                    outputs,
                    reads,
                    parallel,
                } => (outputs, reads, parallel),
                InitFrame::Error(msg) => return Err(PluginError::Config(printable_str(msg))),
            };
        let outputs: Vec<String> = outputs.into_iter().map(str::to_string).collect();
        let reads = match reads {
            Reads::Bytes => None,
            Reads::Objects(o) => {
                o.check()
                    .map_err(|e| contract(format!("the init frame asks for too much: {e}")))?;
                Some(index::IndexRequest::from_reads(&o))
            }
        };
        if reads.is_some() && self.process_objects.is_none() {
            return Err(contract(format!(
                "the init frame asks for scanned events but the module does not export {}",
                abi::export::PROCESS_OBJECTS
            )));
        }
        check_output_names(&outputs).map_err(contract)?;
        self.reads_objects = reads.is_some();
        self.indexer = Indexer::new(Arc::new(reads.unwrap_or_default()));
        self.outputs = outputs;
        self.parallel = parallel;
        Ok(())
    }

    /// The plugin's declared outputs (id 1 is the first).
    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }

    /// Bytes of linear memory now in use.
    pub fn memory_bytes(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    /// Copies `data` into a guest buffer; returns its address.
    fn put(&mut self, data: &[u8]) -> Result<u32, PluginError> {
        self.put_parts(data, &[])
    }

    /// Copies `a` and, right after it, `b` into one guest buffer; returns
    /// its address.
    fn put_parts(&mut self, a: &[u8], b: &[u8]) -> Result<u32, PluginError> {
        let total = a.len() + b.len();
        let len = i32::try_from(total).map_err(|_| PluginError::Reserve(total))?;
        arm(&mut self.store, self.deadline);
        let ptr = self
            .reserve
            .call(&mut self.store, len)
            .map_err(|e| classify(e, self.deadline))? as u32;
        if ptr == 0 && total != 0 {
            return Err(PluginError::Reserve(total));
        }
        let mem = self.memory.data_mut(&mut self.store);
        let dst = (ptr as usize)
            .checked_add(total)
            .and_then(|end| mem.get_mut(ptr as usize..end))
            .ok_or(PluginError::Reserve(total))?;
        dst[..a.len()].copy_from_slice(a);
        dst[a.len()..].copy_from_slice(b);
        Ok(ptr)
    }

    fn frame_bytes(&self, packed: i64) -> Result<&[u8], PluginError> {
        let (ptr, len) = abi::unpack(packed);
        let data = self.memory.data(&self.store);
        let end = (ptr as usize).checked_add(len as usize);
        end.and_then(|end| data.get(ptr as usize..end))
            .ok_or(PluginError::Frame(FrameError::Truncated {
                need: end.unwrap_or(usize::MAX),
                have: data.len(),
            }))
    }

    fn frame(&self, packed: i64) -> Result<ResultFrame<'_>, PluginError> {
        let f = ResultFrame::parse(self.frame_bytes(packed)?).map_err(PluginError::Frame)?;
        if let Some(msg) = f.error() {
            return Err(PluginError::Guest(printable(msg)));
        }
        Ok(f)
    }

    /// For a plugin that reads objects, an [`Indexer`] that makes its
    /// objects indexes apart from the instance (on another thread).
    pub fn indexer(&self) -> Option<Indexer> {
        (self.reads_objects && self.process_objects.is_some())
            .then(|| Indexer::new(self.indexer.request.clone()))
    }

    /// [`Indexer::index_screened`] by this instance's own indexer, for a
    /// batch not indexed ahead: a transform that has it skips its screen
    /// (None: the plugin reads bytes, or the screen must look at the
    /// batch line by line).
    pub fn index_screened(&mut self, events: Events<'_>, max_line_bytes: usize) -> Option<Indexed> {
        if !(self.reads_objects && self.process_objects.is_some()) {
            return None;
        }
        let index = std::mem::take(&mut self.index);
        self.indexer.index_screened(index, events, max_line_bytes)
    }

    /// The objects index of `events`: `ahead`'s when it followed this
    /// instance's request, else made here; and whether the scan read every
    /// event as valid JSON text. Err: over the plan's budget.
    fn index_of(
        &mut self,
        events: Events<'_>,
        ahead: Option<Indexed>,
    ) -> Result<(Vec<u8>, bool), PluginError> {
        let batch = events.bytes;
        let mut index = match ahead {
            Some(a) if a.follows(&self.indexer.request) => {
                let valid_text = a.valid_text;
                return a
                    .index
                    .map(|index| (index, valid_text))
                    .map_err(|()| PluginError::PlanBudget(batch.len()));
            }
            _ => std::mem::take(&mut self.index),
        };
        index.clear();
        match self.indexer.index_into(events, &mut index) {
            Ok(indexing) => Ok((index, indexing.valid_text)),
            Err(_) => {
                self.index = index;
                Err(PluginError::PlanBudget(batch.len()))
            }
        }
    }

    /// Runs a batch's `events` and hands the result frame, still in guest
    /// memory, to `apply`. Copying the batch in (`reserve`) and the call
    /// share one deadline. A plugin that reads objects gets the batch's
    /// objects index with it: `ahead`'s, or made here (from the members a
    /// source's scan kept, where it kept any); `apply` is then told
    /// whether the host's scan read every event as valid JSON text (always
    /// false for a plugin that reads bytes).
    pub fn process<R>(
        &mut self,
        events: Events<'_>,
        now_ms: i64,
        ahead: Option<Indexed>,
        apply: impl FnOnce(ResultFrame<'_>, bool) -> R,
    ) -> Result<R, PluginError> {
        let (batch, count) = (events.bytes, events.count);
        let mut valid_text = false;
        let packed = match (self.reads_objects, self.process_objects.clone()) {
            (true, Some(f)) => {
                // Scanned natively and outside the deadline: the guest
                // starts from the members' spans.
                let (index, valid) = self.index_of(events, ahead)?;
                valid_text = valid;
                let put = self.put_parts(batch, &index);
                let (index_len, ptr) = (index.len(), put);
                self.index = index;
                // `reserve` armed the deadline: it and the call share it.
                let ptr = ptr?;
                f.call(
                    &mut self.store,
                    (
                        ptr as i32,
                        batch.len() as i32,
                        count as i32,
                        index_len as i32,
                        now_ms,
                    ),
                )
            }
            _ => {
                let ptr = self.put(batch)?;
                self.process.call(
                    &mut self.store,
                    (ptr as i32, batch.len() as i32, count as i32, now_ms),
                )
            }
        }
        .map_err(|e| classify(e, self.deadline))?;
        Ok(apply(self.frame(packed)?, valid_text))
    }

    /// The periodic tick; `apply` gets its records.
    pub fn tick<R>(
        &mut self,
        now_ms: i64,
        apply: impl FnOnce(ResultFrame<'_>) -> R,
    ) -> Result<R, PluginError> {
        let f = self.tick.clone();
        self.records_call(&f, now_ms, apply)
    }

    /// The final flush; `apply` gets its records.
    pub fn flush<R>(
        &mut self,
        now_ms: i64,
        apply: impl FnOnce(ResultFrame<'_>) -> R,
    ) -> Result<R, PluginError> {
        let f = self.flush.clone();
        self.records_call(&f, now_ms, apply)
    }

    fn records_call<R>(
        &mut self,
        f: &TypedFunc<i64, i64>,
        now_ms: i64,
        apply: impl FnOnce(ResultFrame<'_>) -> R,
    ) -> Result<R, PluginError> {
        arm(&mut self.store, self.deadline);
        let packed = f
            .call(&mut self.store, now_ms)
            .map_err(|e| classify(e, self.deadline))?;
        Ok(apply(self.frame(packed)?))
    }

    /// Whether the plugin exports snapshot and restore.
    pub fn keeps_state(&self) -> bool {
        self.state.is_some()
    }

    /// Whether several instances may share one input (`workers > 1`): the
    /// plugin declared `INIT_PARALLEL`, or it exports no snapshot/restore
    /// and so, by the contract, keeps no state (`rulebox_abi` crate docs,
    /// "Several instances").
    pub fn may_share_input(&self) -> bool {
        self.parallel || !self.keeps_state()
    }

    /// The plugin's state (`None`: it keeps none), under `deadline` (a
    /// snapshot of a large state may need longer than a batch).
    pub fn snapshot(
        &mut self,
        now_ms: i64,
        deadline: Duration,
    ) -> Result<Option<Vec<u8>>, PluginError> {
        self.take_state(false, now_ms, deadline)
    }

    /// The plugin's state while it runs on (a periodic checkpoint):
    /// `rulebox_checkpoint` if exported, else `rulebox_snapshot`.
    pub fn checkpoint(
        &mut self,
        now_ms: i64,
        deadline: Duration,
    ) -> Result<Option<Vec<u8>>, PluginError> {
        self.take_state(true, now_ms, deadline)
    }

    fn take_state(
        &mut self,
        checkpoint: bool,
        now_ms: i64,
        deadline: Duration,
    ) -> Result<Option<Vec<u8>>, PluginError> {
        let Some((snap, _)) = self.state.clone() else {
            return Ok(None);
        };
        let snap = match (checkpoint, self.checkpoint.clone()) {
            (true, Some(f)) => f,
            _ => snap,
        };
        arm(&mut self.store, deadline);
        let packed = snap
            .call(&mut self.store, now_ms)
            .map_err(|e| classify(e, deadline))?;
        let f = self.frame(packed)?;
        Ok(Some(f.payload_area().to_vec()))
    }

    /// Hands a snapshot back. `Ok(false)`: the plugin keeps no state.
    pub fn restore(
        &mut self,
        data: &[u8],
        now_ms: i64,
        deadline: Duration,
    ) -> Result<bool, PluginError> {
        let Some((_, restore)) = self.state.clone() else {
            return Ok(false);
        };
        let ptr = self.put(data)?;
        arm(&mut self.store, deadline);
        let packed = restore
            .call(&mut self.store, (ptr as i32, data.len() as i32, now_ms))
            .map_err(|e| classify(e, deadline))?;
        self.frame(packed)?;
        Ok(true)
    }

    pub fn logs_dropped(&self) -> u64 {
        self.store.data().logs_dropped
    }
}
