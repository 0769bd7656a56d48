//! Building and running a pipeline.
//!
//! [`build`] loads and checks everything a configuration names (plugins are
//! compiled, contract-checked and initialised with their configuration), so
//! `rulebox validate` and `rulebox run` find the same errors. [`run`] wires
//! the components with bounded channels (backpressure, never unbounded
//! buffering) and drives them:
//!
//! * sources read on their own threads and cut input into [`Batch`]es;
//! * each transform is an async task that `select!`s between its input and a
//!   tick every `flush_interval_secs`, calling the plugin in place; one with
//!   `workers > 1` deals its batches out in turn to that many instances,
//!   each on its own thread, and sends their outputs on in input order;
//! * sinks write on blocking threads and flush when their input runs dry.
//!
//! Only sources and sinks do I/O. End of input closes channels downstream:
//! each transform then calls the plugin's final flush and closes its outputs,
//! so every event and alert is written before [`run`] returns. A shutdown
//! signal stops the sources, with the same effect.

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use rulebox_abi::DEAD_LETTER_OUTPUT;

use crate::batch::{Batch, LineSplitter};
use crate::config::{
    ConfigError, Loaded, SinkConfig, SourceConfig, StdioProtocol, SyslogMode, TransformConfig,
};
use crate::durable::{self, Ack, Checkpoint, Progress};
use crate::sandbox::{Limits, Plugin, Runtime};
use crate::transform::{OnError, Outputs, TransformStats, WasmTransform};
use crate::{exec, net};

/// Batches in flight between two components.
const CHANNEL_BATCHES: usize = 16;
/// At shutdown, how long a source may stay silent before it is taken as done.
const SHUTDOWN_QUIET: Duration = Duration::from_millis(500);
/// Bytes read from a source at a time.
const READ_CHUNK: usize = 256 * 1024;

pub(crate) type Tx = mpsc::Sender<Arc<Batch>>;
pub(crate) type Rx = mpsc::Receiver<Arc<Batch>>;

/// A pipeline whose plugins are loaded and initialised, ready to run.
pub struct Built {
    loaded: Loaded,
    transforms: BTreeMap<String, Stage>,
}

/// A transform and how the pipeline drives it.
struct Stage {
    t: WasmTransform,
    /// Further instances when `workers > 1` (made after the build checks,
    /// so they share `t`'s options).
    replicas: Vec<WasmTransform>,
    workers: usize,
    period: Duration,
    persist_state: bool,
}

/// Most instances one transform may run in parallel.
const MAX_WORKERS: usize = 64;

impl Built {
    /// Each transform's outputs: those its plugin declares, then the host's
    /// `dead_letter`.
    pub fn outputs(&self) -> BTreeMap<String, Vec<String>> {
        self.transforms
            .iter()
            .map(|(k, s)| {
                let mut outs = s.t.outputs().to_vec();
                outs.push(DEAD_LETTER_OUTPUT.to_string());
                (k.clone(), outs)
            })
            .collect()
    }
}

/// Loads every plugin and checks the whole configuration.
pub fn build(loaded: Loaded, rt: &Runtime) -> Result<Built, ConfigError> {
    let cache = loaded.data_dir().join("cache");
    let mut plugins: BTreeMap<(PathBuf, usize, u64), Arc<Plugin>> = BTreeMap::new();
    let mut transforms = BTreeMap::new();
    for (id, t) in &loaded.config.transforms {
        let TransformConfig::Wasm(w) = t;
        let path = loaded.resolve(&w.module);
        let limits = Limits {
            max_memory_bytes: w.max_memory_mib << 20,
            deadline: Duration::from_millis(w.deadline_ms),
        };
        let key = (path.clone(), w.max_memory_mib, w.deadline_ms);
        let plugin = match plugins.get(&key) {
            Some(p) => p.clone(),
            None => {
                let p = Plugin::load(rt, id, &path, Some(&cache), limits).map_err(|e| {
                    loaded.error(
                        "transforms",
                        id,
                        None,
                        format!("transforms.{id}.module: {e}"),
                    )
                })?;
                let p = Arc::new(p);
                plugins.insert(key, p.clone());
                p
            }
        };
        if !(1..=MAX_WORKERS).contains(&w.workers) {
            return Err(loaded.error(
                "transforms",
                id,
                Some("workers"),
                format!("transforms.{id}.workers: between 1 and {MAX_WORKERS}"),
            ));
        }
        let cfg = loaded.plugin_config_json(w);
        let transform = WasmTransform::new(id, plugin, cfg, w.options()).map_err(|e| {
            loaded.error(
                "transforms",
                id,
                Some("config"),
                format!("transforms.{id}.config: {e}"),
            )
        })?;
        transforms.insert(
            id.clone(),
            Stage {
                t: transform,
                replicas: Vec::new(),
                workers: w.workers,
                period: Duration::from_secs(w.flush_interval_secs),
                persist_state: w.persist_state,
            },
        );
    }
    let mut built = Built { loaded, transforms };
    built.loaded.check_outputs(&built.outputs())?;
    check_exec_chain(&mut built)?;
    for (id, stage) in &mut built.transforms {
        while stage.replicas.len() + 1 < stage.workers {
            let r = stage.t.replica().map_err(|e| {
                built.loaded.error(
                    "transforms",
                    id,
                    Some("workers"),
                    format!("transforms.{id}.workers: another instance: {e}"),
                )
            })?;
            stage.replicas.push(r);
        }
    }
    for (id, s) in &built.loaded.config.sinks {
        sink_target(s).map_err(|e| {
            built
                .loaded
                .error("sinks", id, None, format!("sinks.{id}: {e}"))
        })?;
    }
    for (id, s) in &built.loaded.config.sources {
        if let SourceConfig::SplunkHec { tokens, .. } = s
            && tokens.iter().all(|t| t.trim().is_empty())
        {
            return Err(built.loaded.error(
                "sources",
                id,
                None,
                format!("sources.{id}.tokens: at least one token is required"),
            ));
        }
    }
    for (id, stage) in &built.transforms {
        let t = &stage.t;
        let consumed = |name: &str| {
            built
                .loaded
                .config
                .transforms
                .values()
                .flat_map(|t| t.inputs())
                .chain(built.loaded.config.sinks.values().flat_map(|s| s.inputs()))
                .any(|i| i == name)
        };
        if !consumed(id) {
            tracing::warn!(transform = %id, "the default output has no consumer: its events are discarded");
        }
        for o in t.outputs() {
            if !consumed(&format!("{id}.{o}")) {
                tracing::warn!(transform = %id, output = %o, "output has no consumer: its records are discarded");
            }
        }
        let dead = consumed(&format!("{id}.{DEAD_LETTER_OUTPUT}"));
        match (t.options().on_error, dead) {
            (OnError::DeadLetter, false) => {
                return Err(built.loaded.error(
                    "transforms",
                    id,
                    None,
                    format!("transforms.{id}.on_error = \"dead_letter\", but nothing reads \"{id}.{DEAD_LETTER_OUTPUT}\": add it to a sink's inputs"),
                ));
            }
            (OnError::PassThrough | OnError::Drop, true) => {
                tracing::warn!(transform = %id, on_error = ?t.options().on_error, "{id}.{DEAD_LETTER_OUTPUT} is read, but on_error is not \"dead_letter\": it stays empty");
            }
            _ => {}
        }
    }
    Ok(built)
}

/// An mmexternal stdin source must be answered line for line: it feeds one
/// chain of single-input transforms (each keeping every event, tagging
/// rather than dropping what it cannot process) into exactly one stdout
/// sink with the same protocol, and nothing else writes to stdout.
fn check_exec_chain(built: &mut Built) -> Result<(), ConfigError> {
    let cfg = &built.loaded.config;
    let answering: Vec<_> = cfg
        .sinks
        .iter()
        .filter(|(_, s)| s.is_mmexternal())
        .collect();
    let asking: Vec<_> = cfg
        .sources
        .iter()
        .filter(|(_, s)| s.is_mmexternal())
        .collect();
    let err = |section: &str, id: &str, msg: String| built.loaded.error(section, id, None, msg);
    match (asking.as_slice(), answering.as_slice()) {
        ([], []) => return Ok(()),
        ([(src, _)], []) => {
            return Err(err(
                "sources",
                src,
                format!(
                    "sources.{src}: protocol = \"mmexternal\" needs a stdout sink with protocol = \"mmexternal\" to answer rsyslog"
                ),
            ));
        }
        ([], [(sink, _)]) => {
            return Err(err(
                "sinks",
                sink,
                format!(
                    "sinks.{sink}: protocol = \"mmexternal\" answers a stdin source with protocol = \"mmexternal\"; there is none"
                ),
            ));
        }
        ([_], [_]) => {}
        _ => {
            return Err(ConfigError {
                file: built.loaded.file.display().to_string(),
                line: None,
                message: "at most one mmexternal stdin source and one mmexternal stdout sink"
                    .into(),
            });
        }
    }
    let (src, _) = asking[0];
    let (sink, sink_cfg) = answering[0];
    if let Some((other, _)) = cfg
        .sinks
        .iter()
        .find(|(k, s)| *k != sink && matches!(s, SinkConfig::Stdout { .. }))
    {
        return Err(err(
            "sinks",
            other,
            format!(
                "sinks.{other}: stdout belongs to the mmexternal answers of sinks.{sink}; write this elsewhere"
            ),
        ));
    }
    let mut chain = Vec::new();
    let mut at = match sink_cfg.inputs() {
        [one] => one.clone(),
        _ => {
            return Err(err(
                "sinks",
                sink,
                format!(
                    "sinks.{sink}.inputs: an mmexternal answer has exactly one input (a chain from sources.{src})"
                ),
            ));
        }
    };
    loop {
        if at == *src {
            break;
        }
        let t = match cfg.transforms.get(&at) {
            Some(t) if !at.contains('.') => t,
            _ => {
                return Err(err(
                    "sinks",
                    sink,
                    format!(
                        "sinks.{sink}: the chain into an mmexternal answer must run from sources.{src} through transforms' default outputs; {at:?} breaks it"
                    ),
                ));
            }
        };
        let TransformConfig::Wasm(w) = t;
        if w.on_error != OnError::PassThrough {
            return Err(err(
                "transforms",
                &at,
                format!(
                    "transforms.{at}.on_error: must be \"pass_through\" on the way to an mmexternal answer (every line needs one)"
                ),
            ));
        }
        chain.push(at.clone());
        at = match t.inputs() {
            [one] => one.clone(),
            _ => {
                return Err(err(
                    "transforms",
                    &at,
                    format!(
                        "transforms.{at}.inputs: exactly one input on the way to an mmexternal answer"
                    ),
                ));
            }
        };
    }
    for id in chain {
        if let Some(stage) = built.transforms.get_mut(&id) {
            stage.t.set_one_to_one(true);
        }
    }
    Ok(())
}

/// A network sink's target (checked at build time, made again at run).
fn sink_target(s: &SinkConfig) -> Result<Option<net::Target>, String> {
    let Some(common) = s.net() else {
        return Ok(None);
    };
    let target = match s {
        SinkConfig::SplunkHec {
            endpoint,
            token,
            gzip,
            ..
        } => {
            let uri = hec_uri(endpoint);
            let mut headers = vec![
                ("authorization".to_string(), format!("Splunk {token}")),
                ("content-type".to_string(), "application/json".to_string()),
            ];
            if *gzip {
                headers.push(("content-encoding".into(), "gzip".into()));
            }
            net::Target::Http(net::HttpTarget::new(&uri, headers, common.request_timeout)?)
        }
        SinkConfig::Http {
            uri, headers, gzip, ..
        } => {
            let mut h: Vec<(String, String)> =
                vec![("content-type".into(), "application/x-ndjson".into())];
            if *gzip {
                h.push(("content-encoding".into(), "gzip".into()));
            }
            h.extend(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
            net::Target::Http(net::HttpTarget::new(uri, h, common.request_timeout)?)
        }
        SinkConfig::Tcp { address, .. } => {
            if address
                .rsplit_once(':')
                .is_none_or(|(_, p)| p.parse::<u16>().is_err())
            {
                return Err(format!("address {address:?}: expected host:port"));
            }
            net::Target::Tcp(net::TcpTarget::new(address, common.request_timeout))
        }
        _ => return Ok(None),
    };
    Ok(Some(target))
}

/// A HEC endpoint given as a base (`http://splunk:8088`) gets the event path.
fn hec_uri(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    let has_path = trimmed
        .split_once("://")
        .is_some_and(|(_, rest)| rest.contains('/'));
    if has_path {
        endpoint.to_string()
    } else {
        format!("{trimmed}/services/collector/event")
    }
}

/// Counters of a finished run.
#[derive(Debug, Default)]
pub struct Summary {
    pub sources: BTreeMap<String, u64>,
    pub transforms: BTreeMap<String, Arc<TransformStats>>,
    pub sinks: BTreeMap<String, Arc<SinkStats>>,
    pub source_errors: u64,
    /// Snapshots and checkpoints that could not be written or read.
    pub state_errors: u64,
    /// Transforms whose plugin ended the run quarantined.
    pub quarantined: Vec<String>,
}

impl Summary {
    pub fn events_in(&self) -> u64 {
        self.sources.values().sum()
    }

    pub fn errors(&self) -> u64 {
        self.source_errors
            + self.state_errors
            + self.quarantined.len() as u64
            + self
                .sinks
                .values()
                .map(|s| s.write_errors.load(Ordering::Relaxed))
                .sum::<u64>()
    }
}

#[derive(Debug, Default)]
pub struct SinkStats {
    pub events: AtomicU64,
    pub bytes: AtomicU64,
    pub write_errors: AtomicU64,
    /// Deliveries tried again (network sinks).
    pub retries: AtomicU64,
}

/// The process's peak resident memory (Linux: VmHWM), KiB; 0 if unknown.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// The processing time passed to plugins, Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Runs `built` until its sources end or `shutdown` turns true.
pub async fn run(built: Built, mut shutdown: watch::Receiver<bool>) -> Summary {
    let Built {
        loaded,
        mut transforms,
    } = built;
    let cfg = &loaded.config;
    let data_dir = loaded.data_dir();
    let mut summary = Summary::default();
    let state_errors = Arc::new(AtomicU64::new(0));

    // Plugin state saved at the last shutdown.
    for (id, stage) in &mut transforms {
        if !stage.persist_state {
            continue;
        }
        let workers = std::iter::once(&mut stage.t).chain(stage.replicas.iter_mut());
        for (i, t) in workers.enumerate() {
            if !restore_state(&data_dir, &worker_name(id, i), t) {
                state_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    // One channel per consumer; producers get its sender once per input naming them.
    let mut routes: BTreeMap<String, Vec<Tx>> = BTreeMap::new();
    let mut consumer_rx: BTreeMap<String, Rx> = BTreeMap::new();
    let consumers = cfg
        .transforms
        .iter()
        .map(|(k, t)| (k, t.inputs()))
        .chain(cfg.sinks.iter().map(|(k, s)| (k, s.inputs())));
    for (id, inputs) in consumers {
        let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
        for input in inputs {
            routes.entry(input.clone()).or_default().push(tx.clone());
        }
        consumer_rx.insert(id.clone(), rx);
    }

    let mut sink_tasks = Vec::new();
    for (id, s) in &cfg.sinks {
        let Some(rx) = consumer_rx.remove(id) else {
            continue;
        };
        let stats = Arc::new(SinkStats::default());
        summary.sinks.insert(id.clone(), stats.clone());
        if let (Ok(Some(target)), Some(common)) = (sink_target(s), s.net()) {
            let (encoding, gzip) = match s {
                SinkConfig::SplunkHec {
                    index,
                    sourcetype,
                    source,
                    host,
                    gzip,
                    ..
                } => (
                    net::Encoding::Hec(net::hec::Defaults {
                        host: host.clone(),
                        source: source.clone(),
                        sourcetype: sourcetype.clone(),
                        index: index.clone(),
                    }),
                    *gzip,
                ),
                SinkConfig::Http { gzip, .. } => (net::Encoding::Lines, *gzip),
                _ => (net::Encoding::Lines, false),
            };
            let opts = net::SinkOpts {
                encoding,
                gzip,
                common,
            };
            sink_tasks.push(tokio::spawn(net::sink_task(
                id.clone(),
                rx,
                stats,
                target,
                opts,
                shutdown.clone(),
            )));
            continue;
        }
        let reply = match s {
            SinkConfig::Stdout {
                protocol: StdioProtocol::Mmexternal,
                mmexternal_reply,
                ..
            } => Some(*mmexternal_reply),
            _ => None,
        };
        let writer: Result<Box<dyn Write + Send>, std::io::Error> = match s {
            SinkConfig::File { path, append, .. } => {
                let path = loaded.resolve(path);
                if let Some(dir) = path.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                open_file_sink(id, &path, *append).map(|f| Box::new(f) as Box<dyn Write + Send>)
            }
            _ => Ok(Box::new(std::io::stdout())),
        };
        let id = id.clone();
        sink_tasks.push(tokio::task::spawn_blocking(move || {
            sink_loop(&id, writer, rx, &stats, reply)
        }));
    }

    let mut transform_tasks = Vec::new();
    for (id, stage) in transforms {
        let Some(rx) = consumer_rx.remove(&id) else {
            continue;
        };
        let outs = TransformRoutes {
            default: routes.remove(&id).unwrap_or_default(),
            named: stage
                .t
                .outputs()
                .iter()
                .map(|o| routes.remove(&format!("{id}.{o}")).unwrap_or_default())
                .collect(),
            dead_letter: routes
                .remove(&format!("{id}.{DEAD_LETTER_OUTPUT}"))
                .unwrap_or_default(),
        };
        summary.transforms.insert(id.clone(), stage.t.stats.clone());
        let state_file = |i: usize| {
            stage
                .persist_state
                .then(|| durable::snapshot::path(&data_dir, &worker_name(&id, i)))
        };
        if stage.replicas.is_empty() {
            transform_tasks.push(tokio::spawn(transform_loop(
                stage.t,
                stage.period,
                rx,
                outs,
                shutdown.clone(),
                state_file(0),
                state_errors.clone(),
            )));
        } else {
            let files = (0..=stage.replicas.len()).map(state_file).collect();
            let mut workers = vec![stage.t];
            workers.extend(stage.replicas);
            transform_tasks.push(tokio::spawn(parallel_transform_loop(
                workers,
                stage.period,
                rx,
                outs,
                shutdown.clone(),
                files,
                state_errors.clone(),
            )));
        }
    }

    let mut source_tasks = Vec::new();
    let source_errors = Arc::new(AtomicU64::new(0));
    let mut source_counts = Vec::new();
    let mut checkpointers = Vec::new();
    for (id, s) in &cfg.sources {
        let txs = routes.remove(id).unwrap_or_default();
        let count = Arc::new(AtomicU64::new(0));
        source_counts.push((id.clone(), count.clone()));
        let (inner_tx, inner_rx) = mpsc::channel(CHANNEL_BATCHES);
        let stop = Arc::new(AtomicBool::new(false));
        let networked = spawn_listener(id, s, inner_tx.clone(), &shutdown, &source_errors);
        if !networked {
            let tracker = spawn_reader(
                id,
                s,
                &loaded,
                inner_tx,
                stop.clone(),
                source_errors.clone(),
            );
            if let Some(tr) = tracker {
                checkpointers.push(tr);
            }
        } else {
            drop(inner_tx);
        }
        source_tasks.push(tokio::spawn(forward(
            inner_rx,
            txs,
            count,
            shutdown.clone(),
            stop,
            networked,
        )));
    }
    // Anything not consumed by now has no consumer (e.g. an unused source).
    drop(routes);
    drop(consumer_rx);

    // Checkpoints are written every interval while the pipeline runs.
    let (cp_stop_tx, cp_stop_rx) = watch::channel(false);
    let cp_tasks: Vec<_> = checkpointers
        .iter()
        .map(|c| {
            tokio::spawn(checkpoint_loop(
                c.clone(),
                cp_stop_rx.clone(),
                state_errors.clone(),
            ))
        })
        .collect();

    let sources_done = async {
        for t in source_tasks {
            let _ = t.await;
        }
    };
    tokio::pin!(sources_done);
    tokio::select! {
        _ = &mut sources_done => {}
        _ = async { while shutdown.changed().await.is_ok() { if *shutdown.borrow() { break; } } } => {
            tracing::info!("shutdown requested: stopping sources, flushing");
            sources_done.await;
        }
    }
    for t in transform_tasks {
        match t.await {
            Ok(Some(id)) => summary.quarantined.push(id),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "transform task failed"),
        }
    }
    for t in sink_tasks {
        let _ = t.await;
    }
    // Every sink is done: the final checkpoints cover all that was written.
    let _ = cp_stop_tx.send(true);
    for t in cp_tasks {
        let _ = t.await;
    }
    for (id, c) in source_counts {
        summary.sources.insert(id, c.load(Ordering::Relaxed));
    }
    summary.source_errors = source_errors.load(Ordering::Relaxed);
    summary.state_errors = state_errors.load(Ordering::Relaxed);
    summary
}

/// Opens a file sink. Appending to a file whose last line was cut short
/// (a run killed mid-write) first ends that line, so the next event starts
/// on a line of its own.
fn open_file_sink(
    id: &str,
    path: &std::path::Path,
    append: bool,
) -> std::io::Result<std::fs::File> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)?;
    if append && f.metadata()?.len() > 0 {
        let mut last = [0u8];
        f.seek(SeekFrom::End(-1))?;
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            tracing::warn!(sink = %id, path = %path.display(), "output ends in a partial line (an earlier run was killed mid-write); ending it before appending");
            f.write_all(b"\n")?;
        }
    }
    Ok(f)
}

/// Hands a transform the state saved at the last shutdown. False when a
/// snapshot existed and could not be used (it is then set aside).
fn restore_state(data_dir: &std::path::Path, id: &str, t: &mut WasmTransform) -> bool {
    let path = durable::snapshot::path(data_dir, id);
    let file = match std::fs::read(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
        Err(e) => {
            tracing::error!(transform = %id, path = %path.display(), error = %e, "cannot read saved state; starting empty");
            return false;
        }
    };
    let res = durable::snapshot::decode(&file)
        .and_then(|state| t.restore(state, now_ms()).map_err(|e| e.to_string()));
    match res {
        Ok(true) => {
            tracing::info!(transform = %id, path = %path.display(), bytes = file.len(), "restored plugin state saved at the last shutdown");
            true
        }
        Ok(false) => {
            tracing::warn!(transform = %id, path = %path.display(), "saved state found, but this plugin keeps no state; it is ignored");
            true
        }
        Err(e) => {
            let aside = durable::set_aside(&path);
            tracing::error!(transform = %id, path = %path.display(), set_aside = ?aside, error = %e, "saved state cannot be used: set aside, starting empty");
            false
        }
    }
}

/// A checkpointed source's progress and where to store it.
#[derive(Clone)]
struct Tracker {
    source: String,
    progress: Arc<Progress>,
    file: PathBuf,
    stored: Checkpoint,
    interval: Duration,
}

async fn checkpoint_loop(t: Tracker, mut stop: watch::Receiver<bool>, errors: Arc<AtomicU64>) {
    let Tracker {
        source,
        progress,
        file,
        mut stored,
        interval,
    } = t;
    let mut interval = tokio::time::interval(interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let last = tokio::select! {
            _ = interval.tick() => false,
            _ = stop.changed() => true,
        };
        let (offset, _) = progress.committed();
        if offset != stored.offset {
            stored.offset = offset;
            let (cp, path) = (stored.clone(), file.clone());
            let res = tokio::task::spawn_blocking(move || cp.write(&path)).await;
            if !matches!(res, Ok(Ok(()))) {
                errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(source = %source, path = %file.display(), "cannot write checkpoint");
            }
        }
        if last {
            tracing::info!(source = %source, offset = stored.offset, "checkpoint");
            return;
        }
    }
}

/// Starts a network source (true), binding its address now so that a
/// taken port is reported at start; false for sources read on a thread.
fn spawn_listener(
    id: &str,
    s: &SourceConfig,
    tx: Tx,
    shutdown: &watch::Receiver<bool>,
    errors: &Arc<AtomicU64>,
) -> bool {
    let ctx = |batch_max_events: usize| net::SourceCtx {
        id: id.into(),
        tx: tx.clone(),
        errors: errors.clone(),
        shutdown: shutdown.clone(),
        batch_max_events: batch_max_events.max(1),
    };
    let failed = |address: &str, e: std::io::Error| {
        tracing::error!(source = %id, %address, error = %e, "cannot listen: source not started");
        errors.fetch_add(1, Ordering::Relaxed);
        true
    };
    match s {
        SourceConfig::Stdin { .. } | SourceConfig::File { .. } => false,
        SourceConfig::SplunkHec {
            address,
            tokens,
            max_body_bytes,
            batch_max_events,
            ack_timeout_secs,
        } => match net::bind_tcp(address) {
            Ok(l) => {
                let opts = net::HttpOpts {
                    kind: net::HttpKind::Hec {
                        tokens: tokens.clone().into(),
                    },
                    max_body_bytes: *max_body_bytes,
                    ack_timeout: Duration::from_secs(*ack_timeout_secs),
                };
                tokio::spawn(net::serve_http(ctx(*batch_max_events), l, opts));
                true
            }
            Err(e) => failed(address, e),
        },
        SourceConfig::Http {
            address,
            path,
            max_body_bytes,
            batch_max_events,
            ack_timeout_secs,
        } => match net::bind_tcp(address) {
            Ok(l) => {
                let opts = net::HttpOpts {
                    kind: net::HttpKind::Ndjson {
                        path: path.as_str().into(),
                    },
                    max_body_bytes: *max_body_bytes,
                    ack_timeout: Duration::from_secs(*ack_timeout_secs),
                };
                tokio::spawn(net::serve_http(ctx(*batch_max_events), l, opts));
                true
            }
            Err(e) => failed(address, e),
        },
        SourceConfig::Tcp {
            address,
            batch_max_events,
            max_line_bytes,
        } => match net::bind_tcp(address) {
            Ok(l) => {
                let c = ctx(*batch_max_events);
                let framing = net::TcpFraming::Lines {
                    max_line_bytes: *max_line_bytes,
                };
                tokio::spawn(net::serve_tcp(c, l, framing));
                true
            }
            Err(e) => failed(address, e),
        },
        SourceConfig::Syslog {
            address,
            mode,
            max_message_bytes,
            batch_max_events,
        } => {
            let c = ctx(*batch_max_events);
            match mode {
                SyslogMode::Tcp => match net::bind_tcp(address) {
                    Ok(l) => {
                        let framing = net::TcpFraming::Syslog {
                            max_message_bytes: *max_message_bytes,
                        };
                        tokio::spawn(net::serve_tcp(c, l, framing));
                        true
                    }
                    Err(e) => failed(address, e),
                },
                SyslogMode::Udp => match net::bind_udp(address) {
                    Ok(sock) => {
                        tokio::spawn(net::serve_udp(c, sock));
                        true
                    }
                    Err(e) => failed(address, e),
                },
            }
        }
    }
}

/// Reads a source on its own thread (reads block; a blocked read must not
/// hold up shutdown, so the thread is detached and [`forward`] decides when
/// the source is done). For a checkpointed file, resumes at the stored
/// offset and returns the tracker whose progress the checkpoint follows.
fn spawn_reader(
    id: &str,
    s: &SourceConfig,
    loaded: &Loaded,
    tx: Tx,
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
) -> Option<Tracker> {
    let id = id.to_string();
    let (max_events, follow, poll) = match s {
        SourceConfig::Stdin {
            batch_max_events, ..
        } => (*batch_max_events, false, Duration::ZERO),
        SourceConfig::File {
            follow,
            poll_interval_ms,
            batch_max_events,
            ..
        } => (
            *batch_max_events,
            *follow,
            Duration::from_millis(*poll_interval_ms),
        ),
        _ => return None,
    };
    let convert = match s {
        SourceConfig::Stdin {
            protocol: StdioProtocol::Mmexternal,
            mmexternal_input,
            ..
        } => Some(*mmexternal_input),
        _ => None,
    };
    let mut tracker = None;
    let mut start = 0u64;
    let input: Box<dyn Read + Send> = match s {
        SourceConfig::Stdin { .. } => Box::new(std::io::stdin()),
        SourceConfig::File {
            path,
            checkpoint_interval_ms,
            ..
        } => {
            let path = loaded.resolve(path);
            let mut f = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(source = %id, path = %path.display(), error = %e, "cannot open input");
                    errors.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            };
            if s.checkpoints() {
                let (cp, file) = resume(&id, &path, &mut f, &loaded.data_dir(), &errors);
                start = cp.offset;
                tracker = Some(Tracker {
                    source: id.clone(),
                    progress: Progress::new(cp.offset),
                    file,
                    stored: cp,
                    interval: Duration::from_millis((*checkpoint_interval_ms).max(10)),
                });
            }
            Box::new(f)
        }
        _ => return None,
    };
    let progress = tracker.as_ref().map(|t| t.progress.clone());
    let spawned = std::thread::Builder::new()
        .name(format!("source-{id}"))
        .spawn(move || {
            read_loop(
                &id,
                input,
                ReadOpts {
                    max_events,
                    follow,
                    poll,
                    start,
                    convert,
                },
                progress,
                tx,
                stop,
                errors,
            )
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start source thread");
        return None;
    }
    tracker
}

/// Where a checkpointed file resumes: the stored offset when it is for
/// this very file (same device and inode, not shorter than the offset),
/// otherwise its start. Seeks `f` there.
fn resume(
    id: &str,
    path: &std::path::Path,
    f: &mut std::fs::File,
    data_dir: &std::path::Path,
    errors: &AtomicU64,
) -> (Checkpoint, PathBuf) {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::MetadataExt;
    let file = durable::checkpoint_path(data_dir, id);
    let meta = f.metadata().ok();
    let (dev, ino, len) = meta.map_or((0, 0, 0), |m| (m.dev(), m.ino(), m.len()));
    let fresh = Checkpoint {
        path: path.to_path_buf(),
        dev,
        ino,
        offset: 0,
    };
    let stored = match Checkpoint::read(&file) {
        Ok(c) => c,
        Err(e) => {
            let aside = durable::set_aside(&file);
            tracing::error!(source = %id, error = %e, set_aside = ?aside, "checkpoint unusable; reading from the start");
            errors.fetch_add(1, Ordering::Relaxed);
            None
        }
    };
    let cp = match stored {
        None => fresh.clone(),
        Some(c) if c.dev != dev || c.ino != ino => {
            tracing::warn!(source = %id, path = %path.display(), "the file is not the one checkpointed (rotated or replaced); reading from its start");
            fresh.clone()
        }
        Some(c) if c.offset > len => {
            tracing::warn!(source = %id, path = %path.display(), offset = c.offset, len, "the file is shorter than the checkpoint (truncated); reading from its start");
            fresh.clone()
        }
        Some(c) => c,
    };
    if cp.offset > 0 {
        if let Err(e) = f.seek(SeekFrom::Start(cp.offset)) {
            tracing::error!(source = %id, error = %e, "cannot seek to the checkpoint; reading from the start");
            return (fresh, file);
        }
        tracing::info!(source = %id, offset = cp.offset, "resuming from checkpoint");
    }
    (cp, file)
}

struct ReadOpts {
    max_events: usize,
    follow: bool,
    poll: Duration,
    /// File offset where reading starts.
    start: u64,
    /// rsyslog mmexternal input to turn into events.
    convert: Option<exec::Input>,
}

fn read_loop(
    id: &str,
    mut input: Box<dyn Read + Send>,
    o: ReadOpts,
    progress: Option<Arc<Progress>>,
    tx: Tx,
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
) {
    let mut splitter = LineSplitter::new(o.max_events);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut batches = Vec::new();
    // Offset after the last line handed on, and the next batch's number.
    let mut offset = o.start;
    let mut seq = 0u64;
    let mut send = |batches: &mut Vec<Batch>, synthetic_newline: bool| -> bool {
        let n = batches.len();
        for (i, mut b) in batches.drain(..).enumerate() {
            let raw = b.bytes().len() - usize::from(synthetic_newline && i + 1 == n);
            offset += raw as u64;
            if let Some(p) = &progress {
                b.acks.push(Ack::new(p.clone(), seq, offset));
                seq += 1;
            }
            if let Some(input) = o.convert {
                b = exec::read_batch(input, b);
            }
            if tx.blocking_send(Arc::new(b)).is_err() {
                return false;
            }
        }
        true
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match input.read(&mut buf) {
            Ok(0) if o.follow => std::thread::sleep(o.poll),
            Ok(0) => break,
            Ok(n) => splitter.push(&buf[..n], &mut batches),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!(source = %id, error = %e, "read failed; source stops");
                errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
        if !send(&mut batches, false) {
            return;
        }
    }
    // A followed, checkpointed file may be mid-write: its last partial line
    // is left for the next run, which resumes right before it.
    if o.follow && progress.is_some() {
        return;
    }
    splitter.finish(&mut batches);
    send(&mut batches, true);
}

/// Moves a source's batches on until it ends or shutdown; on shutdown, what
/// was already read is still forwarded. A network source ends on its own
/// after shutdown (bounded), so it is forwarded until it closes; a reader
/// thread may be stuck in a read, so it is taken as done once quiet.
async fn forward(
    mut rx: Rx,
    txs: Vec<Tx>,
    count: Arc<AtomicU64>,
    mut shutdown: watch::Receiver<bool>,
    stop: Arc<AtomicBool>,
    until_closed: bool,
) {
    loop {
        let batch = tokio::select! {
            b = rx.recv() => b,
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    // The reader stops after its current read and hands on
                    // what it has; forward that until it closes the channel
                    // (or goes quiet: a read of stdin may never return).
                    stop.store(true, Ordering::Relaxed);
                    loop {
                        let next = if until_closed {
                            rx.recv().await
                        } else {
                            tokio::time::timeout(SHUTDOWN_QUIET, rx.recv()).await.ok().flatten()
                        };
                        let Some(b) = next else { return };
                        count.fetch_add(b.count() as u64, Ordering::Relaxed);
                        send_all(&txs, b).await;
                    }
                }
                continue;
            }
        };
        let Some(b) = batch else { return };
        count.fetch_add(b.count() as u64, Ordering::Relaxed);
        send_all(&txs, b).await;
    }
}

async fn send_all(txs: &[Tx], b: Arc<Batch>) {
    for tx in txs {
        if tx.send(b.clone()).await.is_err() {
            b.fail_acks();
            tracing::error!(
                lines = b.count(),
                "a consumer stopped early; its copy of this batch is lost"
            );
        }
    }
}

/// Where a transform's outputs go.
struct TransformRoutes {
    default: Vec<Tx>,
    named: Vec<Vec<Tx>>,
    dead_letter: Vec<Tx>,
}

/// Drives one transform. At the end: on a shutdown with `state_file`, the
/// plugin's state is saved there instead of the final flush (falling back
/// to the flush if that fails); otherwise the final flush runs and any
/// older saved state is removed, as it is now used up. Returns the id when
/// the plugin ended quarantined.
async fn transform_loop(
    mut t: WasmTransform,
    period: Duration,
    mut rx: Rx,
    routes: TransformRoutes,
    shutdown: watch::Receiver<bool>,
    state_file: Option<PathBuf>,
    state_errors: Arc<AtomicU64>,
) -> Option<String> {
    let mut outs = t.new_outputs();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            m = rx.recv() => match m {
                Some(b) => tokio::task::block_in_place(|| process_batch(&mut t, &b, now_ms(), &mut outs)),
                None => break,
            },
            _ = ticker.tick() => tokio::task::block_in_place(|| t.tick(now_ms(), &mut outs)),
        }
        send_outputs(&mut outs, &routes).await;
    }
    let shutting_down = *shutdown.borrow();
    tokio::task::block_in_place(|| {
        finish_transform(
            &mut t,
            shutting_down,
            state_file.as_deref(),
            &state_errors,
            &mut outs,
        )
    });
    send_outputs(&mut outs, &routes).await;
    t.is_quarantined().then(|| t.id().to_string())
}

/// One batch through `t` into `outs`, with the batch's acks.
fn process_batch(t: &mut WasmTransform, b: &Batch, now_ms: i64, outs: &mut Outputs) {
    t.process(b, now_ms, outs);
    // The events now travel in the outputs (a plugin may route some to a
    // named output): so do their acks. Outputs left empty release theirs in
    // send_outputs.
    let all = std::iter::once(&mut outs.default)
        .chain(outs.named.iter_mut())
        .chain(std::iter::once(&mut outs.dead_letter));
    for o in all {
        o.acks.extend(b.acks.iter().cloned());
    }
}

/// The end of a transform's run (see [`transform_loop`]): save the state
/// or run the final flush, into `outs`.
fn finish_transform(
    t: &mut WasmTransform,
    shutting_down: bool,
    state_file: Option<&std::path::Path>,
    state_errors: &AtomicU64,
    outs: &mut Outputs,
) {
    let mut saved = false;
    if let Some(path) = state_file {
        if shutting_down && t.keeps_state() {
            match save_state(t, path) {
                Saved::Yes => saved = true,
                Saved::Nothing => {}
                Saved::Failed => {
                    state_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        } else {
            match std::fs::remove_file(path) {
                Ok(()) => {
                    tracing::info!(transform = %t.id(), path = %path.display(), "saved state used up: removed")
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(transform = %t.id(), path = %path.display(), error = %e, "cannot remove used-up saved state")
                }
            }
        }
    }
    if !saved {
        t.flush(now_ms(), outs);
    }
}

/// The name worker `i` of transform `id` saves its state under: `id` for
/// the first, so one worker is the plain case.
fn worker_name(id: &str, i: usize) -> String {
    if i == 0 {
        id.to_string()
    } else {
        format!("{id}@{i}")
    }
}

/// What a worker of a parallel transform is asked to do.
enum Job {
    Batch(Arc<Batch>, i64),
    Tick(i64),
    /// The end of the run: save the state or flush (see [`finish_transform`]).
    End {
        shutting_down: bool,
    },
}

/// A parallel transform: each instance works on its own thread; batches are
/// dealt out in turn, and outputs are taken from the workers in the order
/// the jobs were given, so they leave in input order. At most two batches
/// per worker are in flight: the input channel does the rest of the
/// backpressure. A tick goes to every worker. Returns the id when an
/// instance ended quarantined.
async fn parallel_transform_loop(
    workers: Vec<WasmTransform>,
    period: Duration,
    mut rx: Rx,
    routes: TransformRoutes,
    shutdown: watch::Receiver<bool>,
    state_files: Vec<Option<PathBuf>>,
    state_errors: Arc<AtomicU64>,
) -> Option<String> {
    let n = workers.len();
    let id = workers[0].id().to_string();
    let (mut jobs, mut done, mut threads) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (mut t, file)) in workers.into_iter().zip(state_files).enumerate() {
        let (job_tx, mut job_rx) = mpsc::unbounded_channel::<Job>();
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Outputs>();
        let errors = state_errors.clone();
        let thread = std::thread::Builder::new()
            .name(format!("{id}-{i}"))
            .spawn(move || {
                let mut outs = t.new_outputs();
                while let Some(job) = job_rx.blocking_recv() {
                    match job {
                        Job::Batch(b, now) => process_batch(&mut t, &b, now, &mut outs),
                        Job::Tick(now) => t.tick(now, &mut outs),
                        Job::End { shutting_down } => finish_transform(
                            &mut t,
                            shutting_down,
                            file.as_deref(),
                            &errors,
                            &mut outs,
                        ),
                    }
                    let full = std::mem::replace(&mut outs, t.new_outputs());
                    if done_tx.send(full).is_err() {
                        break;
                    }
                }
                t.is_quarantined()
            });
        match thread {
            Ok(h) => threads.push(h),
            Err(e) => {
                // Without its threads the stage cannot run; its input is
                // dropped (acks fail, so checkpoints stay behind).
                tracing::error!(transform = %id, error = %e, "cannot start a worker thread");
                return Some(id);
            }
        }
        jobs.push(job_tx);
        done.push(done_rx);
    }
    // Which worker holds each pending result, oldest first.
    let mut order: VecDeque<usize> = VecDeque::new();
    let mut turn = 0;
    let mut open = true;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lost = false;
    while open || !order.is_empty() {
        let oldest = order.front().copied();
        tokio::select! {
            biased;
            r = async {
                match oldest {
                    Some(w) => done[w].recv().await,
                    None => std::future::pending().await,
                }
            } => match r {
                Some(mut outs) => {
                    order.pop_front();
                    send_outputs(&mut outs, &routes).await;
                }
                None => {
                    tracing::error!(transform = %id, "a worker stopped early; its batches are lost");
                    lost = true;
                    break;
                }
            },
            m = rx.recv(), if open && order.len() < 2 * n => match m {
                Some(b) => {
                    let _ = jobs[turn].send(Job::Batch(b, now_ms()));
                    order.push_back(turn);
                    turn = (turn + 1) % n;
                }
                None => open = false,
            },
            _ = ticker.tick(), if open => {
                for (w, j) in jobs.iter().enumerate() {
                    let _ = j.send(Job::Tick(now_ms()));
                    order.push_back(w);
                }
            }
        }
    }
    if !lost {
        let shutting_down = *shutdown.borrow();
        for j in &jobs {
            let _ = j.send(Job::End { shutting_down });
        }
        for d in &mut done {
            if let Some(mut outs) = d.recv().await {
                send_outputs(&mut outs, &routes).await;
            }
        }
    }
    drop(jobs);
    let mut quarantined = false;
    for h in threads {
        // A worker that panicked ended without its flush: counted as quarantined.
        quarantined |= tokio::task::block_in_place(|| h.join()).unwrap_or(true);
    }
    quarantined.then_some(id)
}

/// What became of a plugin's state at shutdown.
enum Saved {
    Yes,
    /// The plugin had nothing to keep (an empty snapshot): the final flush
    /// runs, and no older file is left to restore.
    Nothing,
    /// Logged; the final flush runs instead.
    Failed,
}

/// Snapshots the plugin's state into `path`.
fn save_state(t: &mut WasmTransform, path: &std::path::Path) -> Saved {
    match t.snapshot(now_ms()) {
        Ok(Some(state)) if state.is_empty() => {
            let _ = std::fs::remove_file(path);
            tracing::debug!(transform = %t.id(), "plugin has no state to keep");
            Saved::Nothing
        }
        Ok(Some(state)) => match durable::write_atomic(path, &durable::snapshot::encode(&state)) {
            Ok(()) => {
                tracing::info!(transform = %t.id(), path = %path.display(), bytes = state.len(), "plugin state saved for the next start (no final flush)");
                Saved::Yes
            }
            Err(e) => {
                tracing::error!(transform = %t.id(), path = %path.display(), error = %e, "cannot save plugin state; flushing instead");
                Saved::Failed
            }
        },
        Ok(None) => Saved::Failed,
        Err(e) => {
            tracing::error!(transform = %t.id(), error = %e, "plugin snapshot failed; flushing instead");
            Saved::Failed
        }
    }
}

async fn send_outputs(outs: &mut Outputs, routes: &TransformRoutes) {
    let all = std::iter::once((&mut outs.default, &routes.default))
        .chain(outs.named.iter_mut().zip(&routes.named))
        .chain(std::iter::once((
            &mut outs.dead_letter,
            &routes.dead_letter,
        )));
    for (b, txs) in all {
        if b.is_empty() {
            // Nothing of these events is left to deliver.
            b.acks.clear();
        } else {
            send_all(txs, Arc::new(std::mem::take(b))).await;
        }
    }
}

/// Writes batches in order. A batch is let go of (releasing its acks) only
/// once its bytes are written through to the file or pipe.
fn sink_loop(
    id: &str,
    writer: Result<Box<dyn Write + Send>, std::io::Error>,
    mut rx: Rx,
    stats: &SinkStats,
    mmexternal: Option<exec::Reply>,
) {
    let mut w = match writer {
        Ok(w) => std::io::BufWriter::with_capacity(256 * 1024, w),
        Err(e) => {
            tracing::error!(sink = %id, error = %e, "cannot open output; its events are counted as write errors");
            while let Some(b) = rx.blocking_recv() {
                b.fail_acks();
                stats
                    .write_errors
                    .fetch_add(b.count() as u64, Ordering::Relaxed);
            }
            return;
        }
    };
    let mut broken = false;
    let mut held: Vec<Arc<Batch>> = Vec::new();
    let mut answers = Vec::new();
    let fail = |held: &mut Vec<Arc<Batch>>| {
        for b in held.drain(..) {
            b.fail_acks();
            stats
                .write_errors
                .fetch_add(b.count() as u64, Ordering::Relaxed);
        }
    };
    let written = |held: &mut Vec<Arc<Batch>>| {
        for b in held.drain(..) {
            stats.events.fetch_add(b.count() as u64, Ordering::Relaxed);
            stats
                .bytes
                .fetch_add(b.bytes().len() as u64, Ordering::Relaxed);
        }
    };
    while let Some(b) = rx.blocking_recv() {
        if broken {
            held.push(b);
            fail(&mut held);
            continue;
        }
        let mut res = match mmexternal {
            Some(reply) => {
                answers.clear();
                exec::write_replies(reply, &b, &mut answers);
                w.write_all(&answers)
            }
            None => w.write_all(b.bytes()),
        };
        held.push(b);
        if res.is_ok() && (rx.is_empty() || held.len() >= SINK_HOLD_BATCHES) {
            res = w.flush();
        }
        match res {
            // Everything held has reached the file or pipe.
            Ok(()) if w.buffer().is_empty() => written(&mut held),
            Ok(()) => {}
            Err(e) => {
                tracing::error!(sink = %id, error = %e, "write failed; further events to this sink are counted as lost");
                fail(&mut held);
                broken = true;
            }
        }
    }
    if !broken {
        match w.flush() {
            Ok(()) => written(&mut held),
            Err(e) => {
                tracing::error!(sink = %id, error = %e, "final flush failed");
                fail(&mut held);
            }
        }
    }
}

/// Most batches a sink writes before flushing them through.
const SINK_HOLD_BATCHES: usize = 64;
