//! Running a built pipeline: the `[api]` endpoint first (when configured),
//! one bounded channel per consumer (producers get its sender once per
//! input naming them), sinks started, then transforms, then sources, and
//! the endpoint handed their counters (ready); checkpoints written while
//! it runs. End of
//! input closes channels downstream: each transform then runs its final
//! flush (or saves its state, at a shutdown) and closes its outputs, so
//! every event and alert is written before [`run`] returns.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rulebox_abi::DEAD_LETTER_OUTPUT;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::build::Built;
use super::config::{Loaded, PipelineConfig};
use super::forward::forward;
use super::summary::Summary;
use crate::api::{self, Status};
use crate::channel::{self, Depth, Rx, Tx};
use crate::metrics::{Registry, SourceEntry};
use crate::shutdown::shutdown_requested;
use crate::sinks::{SinkContext, SinkStats};
use crate::sources::{Checkpointer, SETTLE_WAIT, SourceContext, SourceStats, checkpoint_loop};
use crate::terminal;
use crate::transforms::wasm::{Stage, TransformRoutes};

/// Runs `built` until its sources end or `outer` turns true (or a source
/// whose end of input means shutdown ends).
pub async fn run(built: Built, outer: watch::Receiver<bool>) -> Summary {
    let (stop_all, mut shutdown) = relay_shutdown(outer);
    let Built {
        loaded,
        mut transforms,
    } = built;
    let data_dir = loaded.paths.data_dir().to_path_buf();
    let mut summary = Summary::default();
    let (status, api) = start_api(&loaded, &mut summary);
    let state_errors = Arc::new(AtomicU64::new(0));
    // Plugin state saved at the last shutdown.
    for (id, stage) in &mut transforms {
        let failed = stage.restore(id, &data_dir);
        state_errors.fetch_add(failed, Ordering::Relaxed);
    }
    let mut wiring = Wiring::new(&loaded.config);
    let mut registry = Registry::default();
    let sink_tasks = start_sinks(&loaded, &mut wiring, &shutdown, &mut registry);
    let transform_tasks = start_transforms(
        transforms,
        &mut wiring,
        &shutdown,
        &data_dir,
        &state_errors,
        &mut registry,
    );
    let sources = start_sources(&loaded, &mut wiring, &shutdown, &stop_all, &mut registry);
    // Anything not consumed by now has no consumer (e.g. an unused source).
    drop(wiring);
    summary.fill(&registry);
    // Not over events a sink prints on the same terminal.
    let prints = (loaded.config.sinks.values()).any(|s| s.kind().writes_stdout());
    let progress = terminal::progress::start(&registry, prints);
    status.started(registry);

    // Checkpoints are written every interval while the pipeline runs.
    let (cp_stop_tx, cp_stop_rx) = watch::channel(false);
    let cp_tasks: Vec<_> = (sources.checkpoints.into_iter())
        .map(|c| tokio::spawn(checkpoint_loop(c, cp_stop_rx.clone(), state_errors.clone())))
        .collect();

    let sources_done = async {
        for t in sources.tasks {
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
    bound_sinks_without_parent(&loaded, &stop_all);
    for t in sink_tasks {
        let _ = t.await;
    }
    // The sources' acks for what the sinks just finished.
    let settles = async {
        for t in sources.settles {
            let _ = t.await;
        }
    };
    if tokio::time::timeout(SETTLE_WAIT, settles).await.is_err() {
        tracing::warn!(
            "a source did not settle within {SETTLE_WAIT:?}: what it did not ack is delivered again"
        );
    }
    if let Some(p) = progress {
        p.finish();
    }
    // Every sink is done: the final checkpoints cover all that was written.
    let _ = cp_stop_tx.send(true);
    for t in cp_tasks {
        let _ = t.await;
    }
    summary.state_errors = state_errors.load(Ordering::Relaxed);
    if let Some(api) = api {
        api.abort();
    }
    summary
}

/// The `[api]` endpoint, when configured, serving from the start; an
/// address it cannot bind is an error of the run (the pipeline runs on).
fn start_api(loaded: &Loaded, summary: &mut Summary) -> (Arc<Status>, Option<JoinHandle<()>>) {
    let status = Arc::new(Status::default());
    let Some(cfg) = &loaded.config.api else {
        return (status, None);
    };
    match api::start(cfg, status.clone()) {
        Ok(task) => (status, Some(task)),
        Err(e) => {
            tracing::error!(address = %cfg.address, error = %e, "api: cannot listen");
            summary.api_errors += 1;
            (status, None)
        }
    }
}

/// Each transform's task, reading its channel and writing its routes.
fn start_transforms(
    transforms: BTreeMap<String, Stage>,
    wiring: &mut Wiring,
    shutdown: &watch::Receiver<bool>,
    data_dir: &std::path::Path,
    state_errors: &Arc<AtomicU64>,
    registry: &mut Registry,
) -> Vec<JoinHandle<Option<String>>> {
    let mut tasks = Vec::new();
    for (id, stage) in transforms {
        let Some((rx, depth)) = wiring.consumer(&id) else {
            continue;
        };
        let stats = stage.transform().stats.clone();
        registry.transforms.push((id.clone(), stats, depth));
        let (routes, sh) = (wiring.routes_of(&id, &stage), shutdown.clone());
        let errors = state_errors.clone();
        tasks.push(stage.spawn(&id, rx, routes, sh, data_dir, errors));
    }
    tasks
}

/// Under rsyslog (an mmexternal source), the end of input means the parent
/// is gone, even when it ends the run for good (`on_eof = "end"`): once the
/// transforms are done, the sinks' last deliveries get the shutdown's
/// grace (then spool) instead of retrying on as an orphan.
fn bound_sinks_without_parent(loaded: &Loaded, stop_all: &watch::Sender<bool>) {
    let under_parent = loaded
        .config
        .sources
        .values()
        .any(|s| s.kind().asks_mmexternal());
    if under_parent && !*stop_all.borrow() {
        crate::shutdown::mark();
        stop_all.send_replace(true);
    }
}

/// The pipeline's own shutdown signal: set by `outer` (SIGINT/SIGTERM) or
/// by a source whose end of input means shutdown; its moment is kept
/// ([`crate::shutdown::mark`]).
fn relay_shutdown(
    outer: watch::Receiver<bool>,
) -> (Arc<watch::Sender<bool>>, watch::Receiver<bool>) {
    let (stop_all, shutdown) = watch::channel(false);
    let stop_all = Arc::new(stop_all);
    let relay = stop_all.clone();
    crate::shutdown::reset();
    tokio::spawn(async move {
        shutdown_requested(outer).await;
        crate::shutdown::mark();
        relay.send_replace(true);
    });
    (stop_all, shutdown)
}

/// The channels: each consumer's receiver, and the senders each output
/// (a source, a transform's default or named output) hands batches to.
struct Wiring {
    routes: BTreeMap<String, Vec<Tx>>,
    consumers: BTreeMap<String, (Rx, Depth)>,
}

impl Wiring {
    fn new(cfg: &PipelineConfig) -> Wiring {
        let mut routes: BTreeMap<String, Vec<Tx>> = BTreeMap::new();
        let mut consumers = BTreeMap::new();
        let all = (cfg.transforms.iter())
            .map(|(k, t)| (k, t.inputs()))
            .chain(cfg.sinks.iter().map(|(k, s)| (k, s.kind().inputs())));
        for (id, inputs) in all {
            let (tx, rx) = channel::bounded();
            for input in inputs {
                routes.entry(input.clone()).or_default().push(tx.clone());
            }
            consumers.insert(id.clone(), (rx, Depth::of(&tx)));
        }
        Wiring { routes, consumers }
    }

    /// A consumer's channel, and how full it is.
    fn consumer(&mut self, id: &str) -> Option<(Rx, Depth)> {
        self.consumers.remove(id)
    }

    /// The senders of one output (none when nothing reads it).
    fn take(&mut self, output: &str) -> Vec<Tx> {
        self.routes.remove(output).unwrap_or_default()
    }

    fn routes_of(&mut self, id: &str, stage: &Stage) -> TransformRoutes {
        let outputs = stage.transform().outputs();
        TransformRoutes {
            default: self.take(id),
            named: outputs
                .iter()
                .map(|o| self.take(&format!("{id}.{o}")))
                .collect(),
            dead_letter: self.take(&format!("{id}.{DEAD_LETTER_OUTPUT}")),
        }
    }
}

fn start_sinks(
    loaded: &Loaded,
    wiring: &mut Wiring,
    shutdown: &watch::Receiver<bool>,
    registry: &mut Registry,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for (id, s) in &loaded.config.sinks {
        let Some((rx, depth)) = wiring.consumer(id) else {
            continue;
        };
        let stats = Arc::new(SinkStats::default());
        registry.sinks.push((id.clone(), stats.clone(), depth));
        tasks.push(s.kind().start(SinkContext {
            id: id.clone(),
            paths: loaded.paths.clone(),
            rx,
            stats,
            shutdown: shutdown.clone(),
        }));
    }
    tasks
}

/// The running sources.
struct Sources {
    tasks: Vec<JoinHandle<()>>,
    checkpoints: Vec<Checkpointer>,
    /// The sources' work after their events are out (`Started::settle`).
    settles: Vec<JoinHandle<()>>,
}

/// Each source reads into a channel of its own; a forwarding task counts
/// its batches and hands them to every consumer.
fn start_sources(
    loaded: &Loaded,
    wiring: &mut Wiring,
    shutdown: &watch::Receiver<bool>,
    stop_all: &Arc<watch::Sender<bool>>,
    registry: &mut Registry,
) -> Sources {
    let mut s = Sources {
        tasks: Vec::new(),
        checkpoints: Vec::new(),
        settles: Vec::new(),
    };
    for (id, source) in &loaded.config.sources {
        let txs = wiring.take(id);
        let (stats, errors) = (Arc::<SourceStats>::default(), Arc::<AtomicU64>::default());
        let (tx, rx) = channel::bounded();
        let queue = Depth::of(&tx);
        let stop = Arc::new(AtomicBool::new(false));
        let mut started = source.kind().start(SourceContext {
            id: id.clone(),
            paths: loaded.paths.clone(),
            tx,
            shutdown: shutdown.clone(),
            stop: stop.clone(),
            errors: errors.clone(),
            stats: stats.clone(),
        });
        let checkpoint =
            (started.checkpoint.as_ref()).map(|c| (c.progress.clone(), c.stored.path.clone()));
        registry.sources.push(SourceEntry {
            id: id.clone(),
            stats: stats.clone(),
            errors,
            queue,
            checkpoint,
        });
        s.checkpoints.extend(started.checkpoint.take());
        s.settles.extend(started.settle.take());
        let (sh, all) = (shutdown.clone(), stop_all.clone());
        s.tasks.push(tokio::spawn(forward(
            rx, txs, stats, sh, stop, started, all,
        )));
    }
    s
}
