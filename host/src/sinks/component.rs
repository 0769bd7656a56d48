//! What a sink is to the topology: a configuration that names its inputs,
//! can be checked, and starts a task that writes (or delivers) every batch
//! it receives, releasing a batch's acks only once its events are out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

use crate::batch::Batch;
use crate::channel::Rx;
use crate::config::{Paths, Problem};

/// A sink kind; implemented by each sink's configuration.
pub trait Sink {
    fn inputs(&self) -> &[String];

    /// Checks that need nothing started (each problem found).
    fn check(&self) -> Vec<Problem> {
        Vec::new()
    }

    /// Checks of the files it names (certificates, say), resolved by
    /// `paths`.
    fn check_paths(&self, paths: &Paths) -> Vec<Problem> {
        let _ = paths;
        Vec::new()
    }

    /// Whether it writes to the process's stdout (which, answering
    /// rsyslog's mmexternal, belongs to the answers alone).
    fn writes_stdout(&self) -> bool {
        false
    }

    /// Whether it answers rsyslog's mmexternal, line for line.
    fn answers_mmexternal(&self) -> bool {
        false
    }

    /// Whether it reads each event to know it is valid JSON, which a
    /// transform feeding it can spare it by vouching for its events
    /// ([`Batch::all_json`]).
    fn checks_json(&self) -> bool {
        false
    }

    /// Starts the sink's task; it ends once its input is closed and done.
    fn start(&self, cx: SinkContext) -> tokio::task::JoinHandle<()>;
}

/// What a starting sink is given.
pub struct SinkContext {
    pub id: String,
    pub paths: Paths,
    pub rx: Rx,
    pub stats: Arc<SinkStats>,
    pub shutdown: watch::Receiver<bool>,
}

/// A sink's counters.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Events and bytes taken from its input, whatever became of them.
    pub received_events: AtomicU64,
    pub received_bytes: AtomicU64,
    /// Events and bytes written (network sinks: delivered).
    pub events: AtomicU64,
    pub bytes: AtomicU64,
    pub write_errors: AtomicU64,
    /// Deliveries tried again (network sinks).
    pub retries: AtomicU64,
    /// Events kept in the spool at shutdown, and delivered from it at
    /// start (network sinks).
    pub spooled: AtomicU64,
    pub unspooled: AtomicU64,
    /// Events a full disk buffer dropped (`when_full = "drop_newest"`).
    pub buffer_dropped: AtomicU64,
    /// Replayed events let go without writing (`Batch::replay`).
    pub replayed: AtomicU64,
    /// Messages the receiver recognised as resends and stored once (a NATS
    /// stream's duplicate window, by message id).
    pub duplicates: AtomicU64,
}

impl SinkStats {
    /// Counts a batch taken from the input.
    pub fn received(&self, b: &Batch) {
        (self.received_events).fetch_add(b.count() as u64, Ordering::Relaxed);
        (self.received_bytes).fetch_add(b.bytes().len() as u64, Ordering::Relaxed);
    }
}
