//! The sandbox: one wasmtime [`Engine`] for the process, a compiled
//! [`Plugin`] per module (validated against the contract once, cached on
//! disk as native code), and an [`Instance`] per transform with a memory cap
//! and an epoch deadline on every call.
//!
//! Invariant: nothing the guest returns is trusted. Pointers, lengths and
//! frames are bounds-checked here or in `rulebox_abi`; a guest can make a
//! call fail, never make the host panic.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rulebox_abi::{self as abi, FrameError, InitFrame, Reads, ResultFrame, json};
use wasmtime::{
    Caller, Engine, ExternType, InstancePre, Linker, Memory, Module, Store, StoreLimits,
    StoreLimitsBuilder, Trap, TypedFunc, ValType,
};

use crate::wasi;

/// How often the epoch advances; deadlines are whole multiples of this.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read plugin module {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin module {path} is not a valid WebAssembly module: {message}")]
    Compile { path: PathBuf, message: String },
    #[error("plugin module {path} breaks the rulebox contract: {message}")]
    Contract { path: PathBuf, message: String },
    #[error("plugin ABI version {found} is not supported (this host speaks version {expected})")]
    AbiVersion { found: i64, expected: u32 },
    #[error("plugin rejected its configuration: {0}")]
    Config(String),
    #[error("plugin exceeded its deadline of {0:?}")]
    Deadline(Duration),
    #[error("plugin trapped: {0}")]
    Trap(String),
    #[error("plugin returned a bad frame: {0}")]
    Frame(FrameError),
    #[error("plugin returned an error: {0}")]
    Guest(String),
    #[error("plugin could not provide a buffer of {0} bytes")]
    Reserve(usize),
}

impl PluginError {
    /// A short, stable word for counters, tags and dead-letter records.
    pub fn reason(&self) -> &'static str {
        match self {
            PluginError::Deadline(_) => "deadline",
            PluginError::Trap(_) => "trap",
            PluginError::Frame(_) => "bad_frame",
            PluginError::Guest(_) => "plugin_error",
            PluginError::Reserve(_) => "no_buffer",
            PluginError::Config(_) => "config",
            PluginError::AbiVersion { .. } | PluginError::Contract { .. } => "contract",
            PluginError::Read { .. } | PluginError::Compile { .. } => "load",
        }
    }
}

/// Per-instance limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest linear memory, in bytes.
    pub max_memory_bytes: usize,
    /// Longest a single call into the plugin may run.
    pub deadline: Duration,
}

/// The engine and its epoch ticker. One per process.
pub struct Runtime {
    engine: Engine,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl Runtime {
    pub fn new() -> Result<Runtime, PluginError> {
        let mut cfg = wasmtime::Config::new();
        cfg.epoch_interruption(true);
        cfg.cranelift_opt_level(wasmtime::OptLevel::Speed);
        cfg.max_wasm_stack(1 << 20);
        let engine = Engine::new(&cfg).map_err(|e| PluginError::Trap(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (e, s) = (engine.clone(), stop.clone());
        let ticker = std::thread::Builder::new()
            .name("rulebox-epoch".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    e.increment_epoch();
                }
            })
            .ok();
        Ok(Runtime {
            engine,
            stop,
            ticker,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

/// What a store holds for its instance.
pub struct HostState {
    limits: StoreLimits,
    plugin: Arc<str>,
    /// Guest log lines allowed before the next call resets the budget.
    log_budget: u32,
    pub logs_dropped: u64,
    rng: u64,
}

impl HostState {
    const LOG_BUDGET: u32 = 32;

    fn new(plugin: Arc<str>, limits: &Limits) -> HostState {
        HostState {
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.max_memory_bytes)
                .instances(1)
                .memories(1)
                .tables(8)
                .table_elements(1 << 20)
                .build(),
            plugin,
            log_budget: Self::LOG_BUDGET,
            logs_dropped: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    fn take_log_budget(&mut self) -> bool {
        if self.log_budget == 0 {
            self.logs_dropped += 1;
            return false;
        }
        self.log_budget -= 1;
        true
    }

    pub(crate) fn log_guest_output(&mut self, fd: i32, text: &[u8]) {
        if self.take_log_budget() {
            let text = String::from_utf8_lossy(text);
            tracing::warn!(plugin = %self.plugin, fd, output = %text.trim_end(), "plugin wrote to stdout/stderr");
        }
    }

    fn log(&mut self, level: u32, text: &[u8]) {
        if !self.take_log_budget() {
            return;
        }
        let text = String::from_utf8_lossy(&text[..text.len().min(4096)]);
        let plugin = &*self.plugin;
        match abi::LogLevel::from_u32(level) {
            abi::LogLevel::Error => tracing::error!(plugin, "{text}"),
            abi::LogLevel::Warn => tracing::warn!(plugin, "{text}"),
            abi::LogLevel::Info => tracing::info!(plugin, "{text}"),
            abi::LogLevel::Debug => tracing::debug!(plugin, "{text}"),
        }
    }

    /// xorshift64*: deterministic bytes for `random_get`.
    pub(crate) fn pseudo_random(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            self.rng ^= self.rng >> 12;
            self.rng ^= self.rng << 25;
            self.rng ^= self.rng >> 27;
            out.extend_from_slice(&self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

/// A compiled, contract-checked plugin module, ready to instantiate.
pub struct Plugin {
    name: Arc<str>,
    path: PathBuf,
    pre: InstancePre<HostState>,
    engine: Engine,
    limits: Limits,
}

impl Plugin {
    /// Compiles `path` (or loads its native code from `cache_dir`), checks
    /// it against the contract and links the host's imports.
    pub fn load(
        rt: &Runtime,
        name: &str,
        path: &Path,
        cache_dir: Option<&Path>,
        limits: Limits,
    ) -> Result<Plugin, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let module = compile_cached(rt.engine(), path, &bytes, cache_dir)?;
        let contract = |message: String| PluginError::Contract {
            path: path.to_path_buf(),
            message,
        };
        check_contract(&module).map_err(contract)?;
        let mut linker: Linker<HostState> = Linker::new(rt.engine());
        linker
            .func_wrap(
                abi::HOST_MODULE,
                abi::import::LOG,
                |mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| {
                    let len = (len as u32).min(4096);
                    if let Some(text) = wasi::guest_bytes(&mut caller, ptr as u32, len) {
                        caller.data_mut().log(level as u32, &text);
                    }
                },
            )
            .map_err(|e| contract(e.to_string()))?;
        wasi::link(&mut linker, &module).map_err(|e| contract(e.to_string()))?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| contract(format!("{e:#}")))?;
        Ok(Plugin {
            name: name.into(),
            path: path.to_path_buf(),
            pre,
            engine: rt.engine().clone(),
            limits,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A fresh instance, initialised with `config_json`.
    pub fn instantiate(&self, config_json: &[u8]) -> Result<Instance, PluginError> {
        let mut store = Store::new(
            &self.engine,
            HostState::new(self.name.clone(), &self.limits),
        );
        store.limiter(|s| &mut s.limits);
        let deadline = self.limits.deadline;
        arm(&mut store, deadline);
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| classify(e, deadline))?;
        let contract = |message: String| PluginError::Contract {
            path: self.path.clone(),
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
        let reserve = typed!(abi::export::RESERVE);
        let init = typed!(abi::export::INIT);
        let process = typed!(abi::export::PROCESS);
        let process_objects = instance
            .get_typed_func(&mut store, abi::export::PROCESS_OBJECTS)
            .ok();
        let tick = typed!(abi::export::TICK);
        let flush = typed!(abi::export::FLUSH);
        let state = match (
            instance.get_typed_func(&mut store, abi::export::SNAPSHOT),
            instance.get_typed_func(&mut store, abi::export::RESTORE),
        ) {
            (Ok(s), Ok(r)) => Some((s, r)),
            _ => None,
        };
        let mut inst = Instance {
            store,
            memory,
            reserve,
            init,
            process,
            process_objects,
            reads_objects: false,
            index_request: json::IndexRequest::default(),
            scanner: json::Scanner::new(),
            index: Vec::new(),
            tick,
            flush,
            state,
            outputs: Vec::new(),
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
        let ptr = inst.put(config_json)?;
        arm(&mut inst.store, deadline);
        let packed = inst
            .init
            .call(&mut inst.store, (ptr as i32, config_json.len() as i32))
            .map_err(|e| classify(e, deadline))?;
        let frame = inst.frame_bytes(packed)?;
        let (outputs, reads) = match InitFrame::parse(frame).map_err(PluginError::Frame)? {
            InitFrame::Ok(names, reads) => (
                names.into_iter().map(str::to_string).collect::<Vec<_>>(),
                match reads {
                    Reads::Bytes => None,
                    Reads::Objects(o) => {
                        o.check().map_err(|e| {
                            contract(format!("the init frame asks for too much: {e}"))
                        })?;
                        Some(json::IndexRequest::from_reads(&o))
                    }
                },
            ),
            InitFrame::Error(msg) => return Err(PluginError::Config(msg.to_string())),
        };
        let reads_objects = reads.is_some();
        if reads_objects && inst.process_objects.is_none() {
            return Err(contract(format!(
                "the init frame asks for scanned events but the module does not export {}",
                abi::export::PROCESS_OBJECTS
            )));
        }
        inst.reads_objects = reads_objects;
        inst.index_request = reads.unwrap_or_default();
        for (i, o) in outputs.iter().enumerate() {
            let bad = if o.is_empty() || o.contains('.') || o.contains(char::is_whitespace) {
                Some("must be non-empty, without '.' or spaces")
            } else if o == abi::DEAD_LETTER_OUTPUT {
                Some("is reserved for the host")
            } else if outputs[..i].contains(o) {
                Some("is declared twice")
            } else {
                None
            };
            if let Some(why) = bad {
                return Err(contract(format!("declared output {o:?} {why}")));
            }
        }
        inst.outputs = outputs;
        Ok(inst)
    }
}

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
        _ => PluginError::Trap(format!("{e:#}")),
    }
}

/// Every export and import of `module` against the contract.
fn check_contract(module: &Module) -> Result<(), String> {
    use ValType::{I32, I64};
    let want: [(&str, &[ValType], &[ValType]); 6] = [
        (abi::export::ABI_VERSION, &[], &[I32]),
        (abi::export::RESERVE, &[I32], &[I32]),
        (abi::export::INIT, &[I32, I32], &[I64]),
        (abi::export::PROCESS, &[I32, I32, I32, I64], &[I64]),
        (abi::export::TICK, &[I64], &[I64]),
        (abi::export::FLUSH, &[I64], &[I64]),
    ];
    let sig = |ps: &[ValType], rs: &[ValType]| {
        let f = |v: &[ValType]| {
            v.iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!("({}) -> ({})", f(ps), f(rs))
    };
    let optional: [(&str, &[ValType], &[ValType]); 3] = [
        (abi::export::SNAPSHOT, &[I64], &[I64]),
        (abi::export::RESTORE, &[I32, I32, I64], &[I64]),
        (
            abi::export::PROCESS_OBJECTS,
            &[I32, I32, I32, I32, I64],
            &[I64],
        ),
    ];
    for (name, params, results) in want.into_iter().chain(optional) {
        let required = abi::export::FUNCTIONS.contains(&name);
        match module.get_export(name) {
            Some(ExternType::Func(ft)) => {
                let ps: Vec<ValType> = ft.params().collect();
                let rs: Vec<ValType> = ft.results().collect();
                let same = |a: &[ValType], b: &[ValType]| {
                    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| ValType::eq(x, y))
                };
                if !same(&ps, params) || !same(&rs, results) {
                    return Err(format!(
                        "export {name} has type {}, expected {}",
                        sig(&ps, &rs),
                        sig(params, results)
                    ));
                }
            }
            Some(_) => return Err(format!("export {name} is not a function")),
            None if required => return Err(format!("missing export {name}")),
            None => {}
        }
    }
    let has_snapshot = module.get_export(abi::export::SNAPSHOT).is_some();
    if has_snapshot != module.get_export(abi::export::RESTORE).is_some() {
        return Err(format!(
            "exports only one of {} and {}; a plugin with state needs both",
            abi::export::SNAPSHOT,
            abi::export::RESTORE
        ));
    }
    if !matches!(
        module.get_export(abi::export::MEMORY),
        Some(ExternType::Memory(_))
    ) {
        return Err("missing exported memory \"memory\"".into());
    }
    for imp in module.imports() {
        match imp.module() {
            abi::WASI_MODULE => {}
            abi::HOST_MODULE if imp.name() == abi::import::LOG => {}
            m => {
                return Err(format!(
                    "imports {m}::{}, which the host does not provide",
                    imp.name()
                ));
            }
        }
    }
    Ok(())
}

/// Compiles `bytes`, or loads the native code compiled earlier for exactly
/// these bytes and this engine from `cache_dir`.
///
/// Invariant: the cache only holds files this host wrote (atomically, by
/// rename), named by a hash of the wasm bytes and the engine's
/// compatibility hash; a file that fails to load is compiled again.
fn compile_cached(
    engine: &Engine,
    path: &Path,
    bytes: &[u8],
    cache_dir: Option<&Path>,
) -> Result<Module, PluginError> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let compile = || {
        Module::new(engine, bytes).map_err(|e| PluginError::Compile {
            path: path.to_path_buf(),
            message: format!("{e:#}"),
        })
    };
    let Some(dir) = cache_dir else {
        return compile();
    };
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    engine.precompile_compatibility_hash().hash(&mut h);
    let file = dir.join(format!("{:016x}-{}.cwasm", h.finish(), bytes.len()));
    if file.exists() {
        // SAFETY: see the invariant above; wasmtime checks the header and
        // engine compatibility before using the code.
        match unsafe { Module::deserialize_file(engine, &file) } {
            Ok(m) => return Ok(m),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "compiled module cache entry unusable; recompiling")
            }
        }
    }
    let module = compile()?;
    match module.serialize() {
        Ok(code) => {
            let tmp = file.with_extension(format!("tmp{}", std::process::id()));
            let res = std::fs::create_dir_all(dir)
                .and_then(|_| std::fs::write(&tmp, &code))
                .and_then(|_| std::fs::rename(&tmp, &file));
            if let Err(e) = res {
                let _ = std::fs::remove_file(&tmp);
                tracing::warn!(dir = %dir.display(), error = %e, "cannot write compiled module cache");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot serialise compiled module"),
    }
    Ok(module)
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
    /// What it asked the index to hold (members, paths resolved).
    index_request: json::IndexRequest,
    /// Scans events natively for such a plugin, into `index`.
    scanner: json::Scanner,
    index: Vec<u8>,
    tick: TypedFunc<i64, i64>,
    flush: TypedFunc<i64, i64>,
    /// The optional snapshot and restore exports.
    state: Option<StateFuncs>,
    outputs: Vec<String>,
    deadline: Duration,
}

type StateFuncs = (TypedFunc<i64, i64>, TypedFunc<(i32, i32, i64), i64>);

/// `rulebox_process_objects(ptr, batch_len, count, index_len, now_ms)`.
type ProcessObjects = TypedFunc<(i32, i32, i32, i32, i64), i64>;

impl Instance {
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
            return Err(PluginError::Guest(
                String::from_utf8_lossy(msg).into_owned(),
            ));
        }
        Ok(f)
    }

    /// Runs a batch (`count` events, each followed by `\n`) and hands the
    /// result frame, still in guest memory, to `apply`.
    pub fn process<R>(
        &mut self,
        batch: &[u8],
        count: usize,
        now_ms: i64,
        apply: impl FnOnce(ResultFrame<'_>) -> R,
    ) -> Result<R, PluginError> {
        let packed = match (self.reads_objects, self.process_objects.clone()) {
            (true, Some(f)) => {
                // Scanned here, natively and outside the deadline: the guest
                // starts from the members' spans.
                let mut index = std::mem::take(&mut self.index);
                index.clear();
                json::index_batch(
                    &mut self.scanner,
                    &self.index_request,
                    batch,
                    count,
                    &mut index,
                );
                let put = self.put_parts(batch, &index);
                let (index_len, ptr) = (index.len(), put);
                self.index = index;
                let ptr = ptr?;
                arm(&mut self.store, self.deadline);
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
                arm(&mut self.store, self.deadline);
                self.process.call(
                    &mut self.store,
                    (ptr as i32, batch.len() as i32, count as i32, now_ms),
                )
            }
        }
        .map_err(|e| classify(e, self.deadline))?;
        Ok(apply(self.frame(packed)?))
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

    /// The plugin's state (`None`: it keeps none), under `deadline` (a
    /// snapshot of a large state may need longer than a batch).
    pub fn snapshot(
        &mut self,
        now_ms: i64,
        deadline: Duration,
    ) -> Result<Option<Vec<u8>>, PluginError> {
        let Some((snap, _)) = self.state.clone() else {
            return Ok(None);
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
