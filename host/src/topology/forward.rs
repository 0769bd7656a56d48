//! Moving a source's batches on to its consumers, counting them, and
//! deciding when the source is done at shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::batch::Batch;
use crate::channel::{Rx, Tx, send_all};
use crate::sources::{Ending, SourceStats, Started};

/// At shutdown, how long a source may stay silent before it is taken as done.
const SHUTDOWN_QUIET: Duration = Duration::from_millis(500);

/// Moves a source's batches on until it ends or shutdown; on shutdown, what
/// was already read is still forwarded. A network source ends on its own
/// after shutdown (bounded), so it is forwarded until it closes; a reader
/// thread may be stuck in a read, so it is taken as done once quiet.
pub async fn forward(
    rx: Rx,
    txs: Vec<Tx>,
    stats: Arc<SourceStats>,
    shutdown: watch::Receiver<bool>,
    stop: Arc<AtomicBool>,
    started: Started,
    stop_all: Arc<watch::Sender<bool>>,
) {
    let ending = started.ending;
    move_batches(rx, &txs, &stats, shutdown, &stop, ending).await;
    // Set before the consumers see the channel close, so they take the end
    // of this input as a shutdown (they save state instead of flushing).
    if started.eof_shuts_down && !*stop_all.borrow() {
        tracing::info!(
            "end of input from the mmexternal parent (rsyslog stopped or restarts): shutting down, saving state"
        );
        crate::shutdown::mark();
        stop_all.send_replace(true);
    }
}

async fn move_batches(
    mut rx: Rx,
    txs: &[Tx],
    stats: &SourceStats,
    mut shutdown: watch::Receiver<bool>,
    stop: &AtomicBool,
    ending: Ending,
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
                        let next = if ending == Ending::Closes {
                            rx.recv().await
                        } else {
                            tokio::time::timeout(SHUTDOWN_QUIET, rx.recv()).await.ok().flatten()
                        };
                        let Some(b) = next else { return };
                        counted(stats, &b);
                        send_all(txs, b).await;
                    }
                }
                continue;
            }
        };
        let Some(b) = batch else { return };
        counted(stats, &b);
        send_all(txs, b).await;
    }
}

fn counted(stats: &SourceStats, b: &Batch) {
    stats.events.fetch_add(b.count() as u64, Ordering::Relaxed);
    (stats.bytes).fetch_add(b.bytes().len() as u64, Ordering::Relaxed);
}
