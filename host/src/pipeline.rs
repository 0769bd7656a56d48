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
//!   tick every `flush_interval_secs`, calling the plugin in place;
//! * sinks write on blocking threads and flush when their input runs dry.
//!
//! Only sources and sinks do I/O. End of input closes channels downstream:
//! each transform then calls the plugin's final flush and closes its outputs,
//! so every event and alert is written before [`run`] returns. A shutdown
//! signal stops the sources, with the same effect.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use crate::batch::{Batch, LineSplitter};
use crate::config::{ConfigError, Loaded, SinkConfig, SourceConfig, TransformConfig};
use crate::sandbox::{Limits, Plugin, Runtime};
use crate::transform::{Outputs, TransformStats, WasmTransform};

/// Batches in flight between two components.
const CHANNEL_BATCHES: usize = 16;
/// At shutdown, how long a source may stay silent before it is taken as done.
const SHUTDOWN_QUIET: Duration = Duration::from_millis(500);
/// Bytes read from a source at a time.
const READ_CHUNK: usize = 256 * 1024;

type Tx = mpsc::Sender<Arc<Batch>>;
type Rx = mpsc::Receiver<Arc<Batch>>;

/// A pipeline whose plugins are loaded and initialised, ready to run.
pub struct Built {
    loaded: Loaded,
    transforms: BTreeMap<String, (WasmTransform, Duration)>,
}

impl Built {
    /// Each transform's declared outputs.
    pub fn outputs(&self) -> BTreeMap<String, Vec<String>> {
        self.transforms
            .iter()
            .map(|(k, (t, _))| (k.clone(), t.outputs().to_vec()))
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
        let cfg = loaded.plugin_config_json(w);
        let transform = WasmTransform::new(id, plugin, cfg, w.max_line_bytes).map_err(|e| {
            loaded.error(
                "transforms",
                id,
                Some("config"),
                format!("transforms.{id}.config: {e}"),
            )
        })?;
        transforms.insert(
            id.clone(),
            (transform, Duration::from_secs(w.flush_interval_secs)),
        );
    }
    let built = Built { loaded, transforms };
    built.loaded.check_outputs(&built.outputs())?;
    for (id, (t, _)) in &built.transforms {
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
    }
    Ok(built)
}

/// Counters of a finished run.
#[derive(Debug, Default)]
pub struct Summary {
    pub sources: BTreeMap<String, u64>,
    pub transforms: BTreeMap<String, Arc<TransformStats>>,
    pub sinks: BTreeMap<String, Arc<SinkStats>>,
    pub source_errors: u64,
}

impl Summary {
    pub fn events_in(&self) -> u64 {
        self.sources.values().sum()
    }

    pub fn errors(&self) -> u64 {
        self.source_errors
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
}

/// The processing time passed to plugins, Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Runs `built` until its sources end or `shutdown` turns true.
pub async fn run(built: Built, mut shutdown: watch::Receiver<bool>) -> Summary {
    let Built { loaded, transforms } = built;
    let cfg = &loaded.config;
    let mut summary = Summary::default();

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
        let writer: Result<Box<dyn Write + Send>, std::io::Error> = match s {
            SinkConfig::Stdout { .. } => Ok(Box::new(std::io::stdout())),
            SinkConfig::File { path, append, .. } => {
                let path = loaded.resolve(path);
                if let Some(dir) = path.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(*append)
                    .truncate(!*append)
                    .open(&path)
                    .map(|f| Box::new(f) as Box<dyn Write + Send>)
            }
        };
        let id = id.clone();
        sink_tasks.push(tokio::task::spawn_blocking(move || {
            sink_loop(&id, writer, rx, &stats)
        }));
    }

    let mut transform_tasks = Vec::new();
    for (id, (t, period)) in transforms {
        let Some(rx) = consumer_rx.remove(&id) else {
            continue;
        };
        let default_out = routes.remove(&id).unwrap_or_default();
        let named: Vec<Vec<Tx>> = t
            .outputs()
            .iter()
            .map(|o| routes.remove(&format!("{id}.{o}")).unwrap_or_default())
            .collect();
        summary.transforms.insert(id.clone(), t.stats.clone());
        transform_tasks.push(tokio::spawn(transform_loop(
            t,
            period,
            rx,
            default_out,
            named,
        )));
    }

    let mut source_tasks = Vec::new();
    let source_errors = Arc::new(AtomicU64::new(0));
    let mut source_counts = Vec::new();
    for (id, s) in &cfg.sources {
        let txs = routes.remove(id).unwrap_or_default();
        let count = Arc::new(AtomicU64::new(0));
        source_counts.push((id.clone(), count.clone()));
        let (inner_tx, inner_rx) = mpsc::channel(CHANNEL_BATCHES);
        let stop = Arc::new(AtomicBool::new(false));
        spawn_reader(
            id,
            s,
            &loaded,
            inner_tx,
            stop.clone(),
            source_errors.clone(),
        );
        source_tasks.push(tokio::spawn(forward(
            inner_rx,
            txs,
            count,
            shutdown.clone(),
            stop,
        )));
    }
    // Anything not consumed by now has no consumer (e.g. an unused source).
    drop(routes);
    drop(consumer_rx);

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
        if let Err(e) = t.await {
            tracing::error!(error = %e, "transform task failed");
        }
    }
    for t in sink_tasks {
        let _ = t.await;
    }
    for (id, c) in source_counts {
        summary.sources.insert(id, c.load(Ordering::Relaxed));
    }
    summary.source_errors = source_errors.load(Ordering::Relaxed);
    summary
}

/// Reads a source on its own thread (reads block; a blocked read must not
/// hold up shutdown, so the thread is detached and [`forward`] decides when
/// the source is done).
fn spawn_reader(
    id: &str,
    s: &SourceConfig,
    loaded: &Loaded,
    tx: Tx,
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
) {
    let id = id.to_string();
    let s = s.clone();
    let path = match &s {
        SourceConfig::File { path, .. } => Some(loaded.resolve(path)),
        SourceConfig::Stdin { .. } => None,
    };
    let spawned = std::thread::Builder::new().name(format!("source-{id}")).spawn(move || {
        let (max_events, follow, poll) = match &s {
            SourceConfig::Stdin { batch_max_events } => (*batch_max_events, false, Duration::ZERO),
            SourceConfig::File { follow, poll_interval_ms, batch_max_events, .. } => (*batch_max_events, *follow, Duration::from_millis(*poll_interval_ms)),
        };
        let mut input: Box<dyn Read> = match &path {
            None => Box::new(std::io::stdin()),
            Some(p) => match std::fs::File::open(p) {
                Ok(f) => Box::new(f),
                Err(e) => {
                    tracing::error!(source = %id, path = %p.display(), error = %e, "cannot open input");
                    errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
        };
        let mut splitter = LineSplitter::new(max_events);
        let mut buf = vec![0u8; READ_CHUNK];
        let mut batches = Vec::new();
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            match input.read(&mut buf) {
                Ok(0) if follow => std::thread::sleep(poll),
                Ok(0) => break,
                Ok(n) => splitter.push(&buf[..n], &mut batches),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::error!(source = %id, error = %e, "read failed; source stops");
                    errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
            for b in batches.drain(..) {
                if tx.blocking_send(Arc::new(b)).is_err() {
                    return;
                }
            }
        }
        splitter.finish(&mut batches);
        for b in batches.drain(..) {
            let _ = tx.blocking_send(Arc::new(b));
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start source thread");
    }
}

/// Moves a source's batches on until it ends or shutdown; on shutdown, what
/// was already read is still forwarded.
async fn forward(
    mut rx: Rx,
    txs: Vec<Tx>,
    count: Arc<AtomicU64>,
    mut shutdown: watch::Receiver<bool>,
    stop: Arc<AtomicBool>,
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
                    while let Ok(Some(b)) = tokio::time::timeout(SHUTDOWN_QUIET, rx.recv()).await {
                        count.fetch_add(b.count() as u64, Ordering::Relaxed);
                        send_all(&txs, b).await;
                    }
                    return;
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
            tracing::error!(
                lines = b.count(),
                "a consumer stopped early; its copy of this batch is lost"
            );
        }
    }
}

async fn transform_loop(
    mut t: WasmTransform,
    period: Duration,
    mut rx: Rx,
    default_out: Vec<Tx>,
    named: Vec<Vec<Tx>>,
) {
    let mut outs = t.new_outputs();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            m = rx.recv() => match m {
                Some(b) => tokio::task::block_in_place(|| t.process(&b, now_ms(), &mut outs)),
                None => break,
            },
            _ = ticker.tick() => tokio::task::block_in_place(|| t.tick(now_ms(), &mut outs)),
        }
        send_outputs(&mut outs, &default_out, &named).await;
    }
    tokio::task::block_in_place(|| t.flush(now_ms(), &mut outs));
    send_outputs(&mut outs, &default_out, &named).await;
}

async fn send_outputs(outs: &mut Outputs, default_out: &[Tx], named: &[Vec<Tx>]) {
    if !outs.default.is_empty() {
        send_all(default_out, Arc::new(std::mem::take(&mut outs.default))).await;
    }
    for (b, txs) in outs.named.iter_mut().zip(named) {
        if !b.is_empty() {
            send_all(txs, Arc::new(std::mem::take(b))).await;
        }
    }
}

fn sink_loop(
    id: &str,
    writer: Result<Box<dyn Write + Send>, std::io::Error>,
    mut rx: Rx,
    stats: &SinkStats,
) {
    let mut w = match writer {
        Ok(w) => std::io::BufWriter::with_capacity(256 * 1024, w),
        Err(e) => {
            tracing::error!(sink = %id, error = %e, "cannot open output; its events are counted as write errors");
            while let Some(b) = rx.blocking_recv() {
                stats
                    .write_errors
                    .fetch_add(b.count() as u64, Ordering::Relaxed);
            }
            return;
        }
    };
    let mut broken = false;
    while let Some(b) = rx.blocking_recv() {
        if broken {
            stats
                .write_errors
                .fetch_add(b.count() as u64, Ordering::Relaxed);
            continue;
        }
        let mut res = w.write_all(b.bytes());
        if res.is_ok() && rx.is_empty() {
            res = w.flush();
        }
        match res {
            Ok(()) => {
                stats.events.fetch_add(b.count() as u64, Ordering::Relaxed);
                stats
                    .bytes
                    .fetch_add(b.bytes().len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(sink = %id, error = %e, "write failed; further events to this sink are counted as lost");
                stats
                    .write_errors
                    .fetch_add(b.count() as u64, Ordering::Relaxed);
                broken = true;
            }
        }
    }
    if !broken && let Err(e) = w.flush() {
        tracing::error!(sink = %id, error = %e, "final flush failed");
        stats.write_errors.fetch_add(1, Ordering::Relaxed);
    }
}
