//! The wasm transform: a sandboxed plugin run as a state machine
//! ([`WasmTransform`], in `transform`), driven by an async loop
//! (`driver`, on a thread of its own, which scans each batch's objects
//! ahead on another: `ahead`), or by worker threads when `workers > 1`
//! (`parallel`), with its state kept across restarts (`state`); `vouch`
//! marks events that leave as JSON text the host read. This file holds
//! its configuration, the checks of it, and the build of a [`Stage`].

mod ahead;
mod call_stats;
mod clock;
mod driver;
mod parallel;
mod partitioned;
mod state;
mod transform;
mod vouch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;

pub use call_stats::{CALL_TIME_BOUNDS_US, CallTimes, FailureReasons};
pub use clock::now_ms;
pub use driver::TransformRoutes;
pub use transform::{OnError, Options, Outputs, TransformStats, WasmTransform};

use crate::channel::Rx;
use crate::config::{Paths, Problem};
use crate::durable;
use crate::sandbox::{
    CompileLimits, Limits, Plugin, Runtime, Trust, TrustedKey, default_signature_path,
    printable_str,
};

/// Most instances one transform may run in parallel.
pub const MAX_WORKERS: usize = 64;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WasmTransformConfig {
    pub inputs: Vec<String>,
    /// Path to the plugin's `.wasm`.
    pub module: PathBuf,
    /// How often the plugin's tick runs (processing time).
    #[serde(default = "default_flush_secs")]
    pub flush_interval_secs: u64,
    /// Cap on the plugin's linear memory, MiB.
    #[serde(default = "default_memory_mib")]
    pub max_memory_mib: usize,
    /// Largest module accepted, bytes (checked before it is compiled).
    #[serde(default = "default_module_bytes")]
    pub max_module_bytes: usize,
    /// Most functions the module may define (compile time and memory grow
    /// with them).
    #[serde(default = "default_module_functions")]
    pub max_module_functions: u32,
    /// Longest the module may take to compile (a cached module is not
    /// compiled again).
    #[serde(default = "default_compile_secs")]
    pub max_compile_secs: u64,
    /// Longest one call into the plugin may run, ms.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// Lines longer than this never reach the plugin; they go by `on_error`.
    #[serde(default = "default_max_line")]
    pub max_line_bytes: usize,
    /// What happens to events the plugin could not process (it failed, is
    /// backing off or quarantined; the line is oversize or not UTF-8):
    /// `pass_through` (untouched, JSON objects tagged with `error_field`),
    /// `drop`, or `dead_letter` (to the `<id>.dead_letter` output).
    #[serde(default)]
    pub on_error: OnError,
    /// The field `pass_through` adds to an unprocessed JSON object; "" for none.
    #[serde(default = "default_error_field")]
    pub error_field: String,
    /// Wait before the second fresh instance after failures in a row;
    /// doubles with each further failure up to `restart_backoff_max_ms`.
    #[serde(default = "default_backoff_ms")]
    pub restart_backoff_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    pub restart_backoff_max_ms: u64,
    /// Failures in a row after which the plugin is not called again.
    #[serde(default = "default_quarantine")]
    pub quarantine_after: u32,
    /// Failures among the last `quarantine_window_calls` calls, percent,
    /// that quarantine the plugin (judged once that many calls were made).
    #[serde(default = "default_quarantine_rate")]
    pub quarantine_rate_percent: u32,
    #[serde(default = "default_quarantine_window")]
    pub quarantine_window_calls: u32,
    /// Most records one call may emit; a frame with more fails the call.
    #[serde(default = "default_max_records")]
    pub max_records_per_call: u32,
    /// What one batch may make the host copy out, as a multiple of the
    /// batch's bytes (at least 1 MiB); a frame asking more fails the call.
    #[serde(default = "default_output_ratio")]
    pub max_output_ratio: u32,
    /// On SIGINT/SIGTERM, save the plugin's state under `data_dir/state`
    /// (instead of the final flush) and restore it at the next start.
    #[serde(default = "default_true")]
    pub persist_state: bool,
    /// With `persist_state`: also take the plugin's state every this many
    /// seconds while the pipeline runs, stored with the file positions it
    /// covers, so a crash loses no window (0: only at shutdown).
    #[serde(default = "default_checkpoint_secs")]
    pub checkpoint_interval_secs: u64,
    /// Deadline of the snapshot and restore calls, ms.
    #[serde(default = "default_state_deadline_ms")]
    pub state_deadline_ms: u64,
    /// Plugin instances working on this stage in parallel, each on its own
    /// thread; batches are dealt out in turn and their outputs leave in
    /// input order. Each instance keeps its own state: more than one is for
    /// stages whose output does not depend on what other batches held (the
    /// T1071.002 rule's `stage = "classify"`). A plugin that keeps state
    /// must declare that it may share its input (`INIT_PARALLEL`), or more
    /// than one is refused.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Refuse the module unless it is signed (minisign) by one of
    /// `trusted_keys`: checked on the module's bytes before it is compiled
    /// or its compiled code taken from the cache.
    #[serde(default)]
    pub require_signature: bool,
    /// The keys trusted to sign the module: each a minisign public key in
    /// base64 (`RW...`, the second line of a `.pub` file) or the path to a
    /// minisign `.pub` file.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
    /// The module's signature file; default: the module's path with
    /// `.minisig` appended (where `minisign -S` writes it).
    #[serde(default)]
    pub signature: Option<PathBuf>,
    /// The plugin's own configuration, handed over as JSON at start.
    #[serde(default)]
    pub config: Option<toml::Table>,
}

/// Plugins already loaded, by module, memory cap, deadline, compile caps
/// and the signature required (its file and trusted key ids): transforms
/// naming the same module with the same limits share its compiled code.
pub type PluginCache = BTreeMap<(PathBuf, usize, u64, [u64; 3], TrustKey), Arc<Plugin>>;

/// What a transform requires of its module's signature, as a cache key.
type TrustKey = Option<(PathBuf, Vec<String>)>;

impl WasmTransformConfig {
    pub fn options(&self) -> Options {
        Options {
            max_line_bytes: self.max_line_bytes,
            on_error: self.on_error,
            error_field: self.error_field.clone(),
            backoff_initial: Duration::from_millis(self.restart_backoff_ms),
            backoff_max: Duration::from_millis(self.restart_backoff_max_ms),
            quarantine_after: self.quarantine_after,
            quarantine_rate_percent: self.quarantine_rate_percent,
            quarantine_window: self.quarantine_window_calls,
            max_records_per_call: self.max_records_per_call,
            max_output_ratio: self.max_output_ratio.max(1),
            state_deadline: Duration::from_millis(self.state_deadline_ms),
            one_to_one: false,
            vouch_json: false,
        }
    }

    /// Where the plugin's configuration breaks the schema in its module's
    /// manifest (none without one), each at its key below `config`.
    fn check_plugin_config(&self, plugin: &Plugin) -> Vec<Problem> {
        let Some(manifest) = plugin.manifest() else {
            return Vec::new();
        };
        let config = match &self.config {
            Some(t) => serde_json::to_value(t).unwrap_or_default(),
            None => serde_json::Value::Object(Default::default()),
        };
        let name = printable_str(&manifest.name);
        (manifest.check_config(&config).into_iter())
            .map(|f| {
                let key = match f.dotted() {
                    d if d.is_empty() => "config".to_string(),
                    d => format!("config.{d}"),
                };
                let message = printable_str(&format!("{} (the schema of {name})", f.message));
                Problem::at(key, message)
            })
            .collect()
    }

    /// The plugin's own configuration, as JSON text.
    pub fn plugin_config_json(&self) -> Vec<u8> {
        match &self.config {
            Some(t) => serde_json::to_vec(t).unwrap_or_else(|_| b"{}".to_vec()),
            None => b"{}".to_vec(),
        }
    }

    /// The checks that need no plugin.
    pub fn check(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.flush_interval_secs == 0 {
            p.push(Problem::at("flush_interval_secs", "must be at least 1"));
        }
        if self.deadline_ms == 0 || self.max_memory_mib == 0 {
            p.push(Problem::whole(
                "deadline_ms and max_memory_mib must be at least 1",
            ));
        }
        if self.quarantine_after == 0 || self.state_deadline_ms == 0 {
            p.push(Problem::whole(
                "quarantine_after and state_deadline_ms must be at least 1",
            ));
        }
        if !(1..=100).contains(&self.quarantine_rate_percent) {
            p.push(Problem::at("quarantine_rate_percent", "between 1 and 100"));
        }
        if !(1..=64).contains(&self.quarantine_window_calls) {
            p.push(Problem::at("quarantine_window_calls", "between 1 and 64"));
        }
        if self.max_memory_mib > 4096 {
            p.push(Problem::at("max_memory_mib", "at most 4096 (wasm32)"));
        }
        if self.require_signature && self.trusted_keys.is_empty() {
            p.push(Problem::at(
                "trusted_keys",
                "require_signature = true needs at least one trusted key",
            ));
        }
        if !self.require_signature && (!self.trusted_keys.is_empty() || self.signature.is_some()) {
            p.push(Problem::at(
                "require_signature",
                "trusted_keys and signature take effect only with require_signature = true",
            ));
        }
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            p.push(Problem::at(
                "workers",
                format!("between 1 and {MAX_WORKERS}"),
            ));
        }
        p
    }

    /// Loads the plugin (or takes it from `plugins`), checks the plugin's
    /// configuration against its manifest's schema, and initialises one
    /// instance with it. Further workers are made by
    /// [`Stage::add_workers`] once the whole pipeline is checked.
    pub fn build(
        &self,
        id: &str,
        paths: &Paths,
        rt: &Runtime,
        plugins: &mut PluginCache,
    ) -> Result<Stage, Vec<Problem>> {
        let path = paths.resolve(&self.module);
        let compile = CompileLimits {
            max_module_bytes: self.max_module_bytes,
            max_functions: self.max_module_functions,
            max_compile: Duration::from_secs(self.max_compile_secs.max(1)),
        };
        let caps = [
            self.max_module_bytes as u64,
            self.max_module_functions as u64,
            self.max_compile_secs,
        ];
        let trust = self.trust(&path, paths).map_err(|p| vec![p])?;
        let trust_key = trust.as_ref().map(|t| {
            let ids = t.keys.iter().map(|k| k.id().to_string()).collect();
            (t.signature.clone(), ids)
        });
        let key = (
            path.clone(),
            self.max_memory_mib,
            self.deadline_ms,
            caps,
            trust_key,
        );
        let plugin = match plugins.get(&key) {
            Some(p) => p.clone(),
            None => {
                let limits = Limits {
                    max_memory_bytes: self.max_memory_mib << 20,
                    deadline: Duration::from_millis(self.deadline_ms),
                };
                let cache = paths.data_dir().join("cache");
                let (dir, trust) = (Some(cache.as_path()), trust.as_ref());
                let p = Plugin::load_within(rt, id, &path, dir, limits, &compile, trust)
                    .map_err(|e| vec![Problem::at("module", e.to_string())])?;
                plugins.entry(key).or_insert(Arc::new(p)).clone()
            }
        };
        let schema = self.check_plugin_config(&plugin);
        if !schema.is_empty() {
            return Err(schema);
        }
        let t = WasmTransform::new(
            id,
            plugin.clone(),
            self.plugin_config_json(),
            self.options(),
        )
        .map_err(|e| vec![Problem::at("config", e.to_string())])?;
        if let Some(p) = manifest_disagrees(&plugin, t.outputs()) {
            return Err(vec![p]);
        }
        if self.workers > 1 && !t.may_share_input() {
            return Err(vec![Problem::at(
                "workers",
                format!(
                    "the plugin keeps state and, configured this way, does not declare that several instances may share its input: {} workers would each see only their own batches and give wrong answers; use workers = 1",
                    self.workers
                ),
            )]);
        }
        Ok(Stage {
            t,
            replicas: Vec::new(),
            workers: self.workers,
            period: Duration::from_secs(self.flush_interval_secs),
            checkpoint: Duration::from_secs(self.checkpoint_interval_secs),
            persist_state: self.persist_state,
            partitioned: false,
        })
    }
}

/// Where a module's manifest says other than the module does: an output
/// declared at init that the manifest does not list (its `outputs` name
/// every output the module may declare, whatever its configuration), or
/// an ABI version other than the one the host speaks.
fn manifest_disagrees(plugin: &Plugin, declared: &[String]) -> Option<Problem> {
    let m = plugin.manifest()?;
    if let Some(v) = m.abi_version.filter(|&v| v != rulebox_abi::ABI_VERSION) {
        let why = format!(
            "its manifest says ABI version {v}; this host speaks {}",
            rulebox_abi::ABI_VERSION
        );
        return Some(Problem::at("module", why));
    }
    let unlisted: Vec<&String> = (declared.iter())
        .filter(|o| !m.outputs.contains(o))
        .collect();
    if unlisted.is_empty() || m.outputs.is_empty() {
        return None;
    }
    let why = format!(
        "the module declares output(s) {unlisted:?} at init that its manifest's outputs {:?} do not list",
        m.outputs
    );
    Some(Problem::at("module", printable_str(&why)))
}

impl WasmTransformConfig {
    /// What `require_signature` asks of the module at `module`, its keys
    /// read (a key file resolves against the configuration's folder).
    fn trust(&self, module: &Path, paths: &Paths) -> Result<Option<Trust>, Problem> {
        if !self.require_signature {
            return Ok(None);
        }
        let mut keys = Vec::new();
        for (i, spec) in self.trusted_keys.iter().enumerate() {
            let key = TrustedKey::read(spec, |p| paths.resolve(p))
                .map_err(|e| Problem::at("trusted_keys", format!("[{i}]: {e}")))?;
            keys.push(key);
        }
        let signature = match &self.signature {
            Some(s) => paths.resolve(s),
            None => default_signature_path(module),
        };
        Ok(Some(Trust { signature, keys }))
    }
}

/// A built transform and how the pipeline drives it.
pub struct Stage {
    t: WasmTransform,
    /// Further instances when `workers > 1` (made after the build checks,
    /// so they share `t`'s options).
    replicas: Vec<WasmTransform>,
    workers: usize,
    period: Duration,
    checkpoint: Duration,
    persist_state: bool,
    /// It reads a partitioned source: an instance per partition
    /// (`partitioned`), its state kept by the source's store.
    partitioned: bool,
}

impl Stage {
    pub fn transform(&self) -> &WasmTransform {
        &self.t
    }

    /// The one instance, to drive by hand (`rulebox test`).
    pub fn into_transform(self) -> WasmTransform {
        self.t
    }

    /// Answers mmexternal line for line (see [`Options::one_to_one`]).
    pub fn set_one_to_one(&mut self, on: bool) {
        self.t.set_one_to_one(on);
    }

    /// Marks events it can vouch for as JSON (see [`Options::vouch_json`]).
    pub fn set_vouch_json(&mut self, on: bool) {
        self.t.set_vouch_json(on);
    }

    /// Reads a partitioned source (see [`partitioned`]): one instance per
    /// partition, so `workers` must be 1.
    pub fn set_partitioned(&mut self, on: bool) -> Result<(), Problem> {
        if on && self.workers > 1 {
            let why = "it reads a partitioned source, which gets an instance per partition: use workers = 1 (add processes or partitions to scale)";
            return Err(Problem::at("workers", why));
        }
        self.partitioned = on;
        Ok(())
    }

    /// Makes the further instances `workers` asks for.
    pub fn add_workers(&mut self) -> Result<(), Problem> {
        while self.replicas.len() + 1 < self.workers {
            let r = self
                .t
                .replica(self.replicas.len() + 1)
                .map_err(|e| Problem::at("workers", format!("another instance: {e}")))?;
            self.replicas.push(r);
        }
        Ok(())
    }

    /// Hands each instance the state saved at the last shutdown; the
    /// number of saved states that could not be used.
    pub fn restore(&mut self, id: &str, data_dir: &Path) -> u64 {
        if !self.persist_state {
            return 0;
        }
        let mut failed = 0;
        let all = std::iter::once(&mut self.t).chain(self.replicas.iter_mut());
        for (i, t) in all.enumerate() {
            if !state::restore_state(data_dir, &state::worker_name(id, i), t) {
                failed += 1;
            }
        }
        failed
    }

    /// Runs the stage until its input ends; the task returns the id when
    /// the plugin ended quarantined.
    pub fn spawn(
        self,
        id: &str,
        rx: Rx,
        routes: TransformRoutes,
        shutdown: watch::Receiver<bool>,
        data_dir: &Path,
        state_errors: Arc<AtomicU64>,
    ) -> tokio::task::JoinHandle<Option<String>> {
        let state_file = |i: usize| {
            self.persist_state
                .then(|| durable::snapshot::path(data_dir, &state::worker_name(id, i)))
        };
        let periods = driver::Periods {
            tick: self.period,
            checkpoint: self.checkpoint,
        };
        if self.partitioned {
            let run =
                partitioned::partitioned_loop(self.t, periods, rx, routes, shutdown, state_errors);
            return on_own_thread(run);
        }
        if self.replicas.is_empty() {
            let file = state_file(0);
            let run =
                driver::transform_loop(self.t, periods, rx, routes, shutdown, file, state_errors);
            return on_own_thread(run);
        }
        let files = (0..=self.replicas.len()).map(state_file).collect();
        let mut workers = vec![self.t];
        workers.extend(self.replicas);
        tokio::spawn(parallel::parallel_transform_loop(
            workers,
            self.period,
            rx,
            routes,
            shutdown,
            files,
            state_errors,
        ))
    }
}

/// Drives a transform's loop on a thread of its own (one of the runtime's
/// blocking threads), which runs the plugin in place. A loop on one of the
/// runtime's workers had to hand that worker over to another thread for
/// each batch (`block_in_place`): about two context switches a batch more
/// (see docs/performance.md, "Fewer hand-overs, and a line end checked
/// late").
fn on_own_thread(
    run: impl Future<Output = Option<String>> + Send + 'static,
) -> tokio::task::JoinHandle<Option<String>> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(run))
}

fn default_workers() -> usize {
    1
}
fn default_checkpoint_secs() -> u64 {
    10
}
fn default_flush_secs() -> u64 {
    60
}
fn default_memory_mib() -> usize {
    64
}
fn default_deadline_ms() -> u64 {
    100
}
fn default_max_line() -> usize {
    1 << 20
}
fn default_error_field() -> String {
    "rulebox_error".into()
}
fn default_backoff_ms() -> u64 {
    1000
}
fn default_backoff_max_ms() -> u64 {
    30_000
}
fn default_quarantine() -> u32 {
    10
}
fn default_true() -> bool {
    true
}
fn default_state_deadline_ms() -> u64 {
    5000
}
fn default_quarantine_rate() -> u32 {
    50
}
fn default_quarantine_window() -> u32 {
    20
}
fn default_module_bytes() -> usize {
    CompileLimits::default().max_module_bytes
}
fn default_module_functions() -> u32 {
    CompileLimits::default().max_functions
}
fn default_compile_secs() -> u64 {
    CompileLimits::default().max_compile.as_secs()
}
fn default_max_records() -> u32 {
    Options::default().max_records_per_call
}
fn default_output_ratio() -> u32 {
    Options::default().max_output_ratio
}
