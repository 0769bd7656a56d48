//! What a source is to the topology: a configuration that can be checked
//! and started. A source hands [`Batch`](crate::batch::Batch)es to its
//! context's channel until its input ends or shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use tokio::sync::watch;

use super::checkpoint::Checkpointer;
use crate::channel::Tx;
use crate::config::{Paths, Problem};

/// A source kind; implemented by each source's configuration.
pub trait Source {
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

    /// Whether this source is rsyslog asking through mmexternal: it must be
    /// answered line for line (see [`crate::codecs::mmexternal`]).
    fn asks_mmexternal(&self) -> bool {
        false
    }

    /// Whether its batches carry partitions ([`crate::partition`]): the
    /// transforms it feeds keep an instance per partition.
    fn partitioned(&self) -> bool {
        false
    }

    /// Starts reading into `cx.tx`. Failures to start are logged and
    /// counted in `cx.errors`; the source then simply ends.
    fn start(&self, cx: SourceContext) -> Started;
}

/// What a starting source is given.
pub struct SourceContext {
    pub id: String,
    pub paths: Paths,
    pub tx: Tx,
    pub shutdown: watch::Receiver<bool>,
    /// Set at shutdown: a reader stops after its current read.
    pub stop: Arc<AtomicBool>,
    /// Problems while running (an unreadable input, an address in use).
    pub errors: Arc<AtomicU64>,
    /// What it counts besides events.
    pub stats: Arc<SourceStats>,
}

/// A source's counters: its events and bytes (counted by the topology as
/// it forwards them), and what else the source counts.
#[derive(Debug, Default)]
pub struct SourceStats {
    pub events: AtomicU64,
    pub bytes: AtomicU64,
    /// Events lost before the source could read them (the kernel's drops
    /// on a full UDP socket), as far as the source can tell.
    pub lost: AtomicU64,
    /// Lines over the source's `max_line_bytes`, each kept whole in a file
    /// of its own and replaced by an event naming it.
    pub oversize: AtomicU64,
    /// Connections whose TLS handshake was refused or not done in time
    /// (no certificate, an untrusted one, not TLS at all).
    pub refused_tls: AtomicU64,
    /// Requests refused for a missing or wrong token.
    pub refused_unauthorized: AtomicU64,
    /// Request bodies refused whole as malformed (HEC, http, OTLP).
    pub refused_malformed: AtomicU64,
    /// Messages a broker delivered again (a consumer that did not ack
    /// them in time, or that died).
    pub redelivered: AtomicU64,
    /// A reader's bytes read, and the size of its input when it is finite
    /// and known (a file read once; else 0): for the progress line.
    pub input_read: AtomicU64,
    pub input_size: AtomicU64,
}

/// How a started source ends at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It closes its channel on its own, within a bounded drain
    /// (listeners): what it sends is forwarded until then.
    Closes,
    /// It may be stuck in a blocking read (stdin): it is done once quiet.
    Quiet,
}

/// A started source.
pub struct Started {
    pub ending: Ending,
    /// The checkpoint to keep while it runs (a checkpointed file).
    pub checkpoint: Option<Checkpointer>,
    /// Its end of input is the whole pipeline's shutdown (rsyslog's
    /// mmexternal closing the pipe: it stops or restarts).
    pub eof_shuts_down: bool,
    /// What it still does once its events are out (a broker's acks), to
    /// await after the sinks (for at most [`SETTLE_WAIT`]).
    pub settle: Option<tokio::task::JoinHandle<()>>,
}

/// How long the end of a run waits for the sources' [`Started::settle`].
pub const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Started {
    /// A source that closes its channel itself, keeping no checkpoint.
    pub fn listening() -> Started {
        Started {
            ending: Ending::Closes,
            checkpoint: None,
            eof_shuts_down: false,
            settle: None,
        }
    }

    /// A source read on a thread until its end of input.
    pub fn reading(checkpoint: Option<Checkpointer>) -> Started {
        Started {
            ending: Ending::Quiet,
            checkpoint,
            eof_shuts_down: false,
            settle: None,
        }
    }
}

/// Defaults the source kinds share.
pub fn default_batch_events() -> usize {
    1024
}
pub fn default_body_bytes() -> usize {
    16 << 20
}
pub fn default_ack_timeout() -> u64 {
    30
}
pub fn default_max_message() -> usize {
    1 << 20
}
pub fn default_header_timeout() -> u64 {
    10
}
pub fn default_body_timeout() -> u64 {
    30
}
pub fn default_line_timeout() -> u64 {
    10
}
pub fn default_idle_timeout() -> u64 {
    300
}
pub fn default_max_line_bytes() -> usize {
    16 << 20
}
