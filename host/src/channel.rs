//! Channels between components: bounded (backpressure, never unbounded
//! buffering), carrying batches behind an `Arc` so one batch can go to
//! every consumer of an output without a copy.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::batch::Batch;

/// Batches in flight between two components.
pub const CHANNEL_BATCHES: usize = 16;

pub type Tx = mpsc::Sender<Arc<Batch>>;
pub type Rx = mpsc::Receiver<Arc<Batch>>;

/// A channel of [`CHANNEL_BATCHES`] batches.
pub fn bounded() -> (Tx, Rx) {
    mpsc::channel(CHANNEL_BATCHES)
}

/// How full a channel is, read from aside: it keeps the channel neither
/// open nor alive (a weak sender).
#[derive(Debug, Clone)]
pub struct Depth(mpsc::WeakSender<Arc<Batch>>);

impl Depth {
    pub fn of(tx: &Tx) -> Depth {
        Depth(tx.downgrade())
    }

    /// Batches waiting in the channel (0 once it is closed).
    pub fn len(&self) -> usize {
        self.0
            .upgrade()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Hands `b` to every consumer, awaiting room in each. A consumer that is
/// gone fails the batch's acks (its copy is lost; checkpoints stay behind).
pub async fn send_all(txs: &[Tx], b: Arc<Batch>) {
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
