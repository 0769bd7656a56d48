//! Partitioned window state, whatever the broker: when a source reads a
//! stream cut into partitions (the `nats` source with `partitions`), each
//! partition it owns has a [`Part`], and every batch of that partition
//! carries it (`Batch::part`). A transform keeps one plugin
//! instance per partition, so each partition's state can be saved on its
//! own, restored elsewhere, and moved between processes.
//!
//! The order that makes a move safe:
//! 1. the source takes a partition, reads its saved state and the stream
//!    sequence it covers from the [`Store`], and reads the partition from
//!    the message after it; its first batch, an empty one sent at once,
//!    hands the state to the transform ([`Part::take_restore`]), so a
//!    partition that gets no new message still has its windows flushed or
//!    saved;
//! 2. each batch's [`Ack`](crate::durable::Ack) has the stream sequence of
//!    its last message as its end, so [`Part::delivered`] is the sequence
//!    up to which every output is written or delivered;
//! 3. the transform takes the instance's state every checkpoint interval,
//!    with the sequence it covers, and saves it only once
//!    [`Part::delivered`] has reached that sequence: a saved state never
//!    covers an alert that is not out.
//!
//! So losing a process loses no window: the next owner restores the last
//! saved state and reads on from its sequence; what it computes again is
//! computed again identically (alerts leave as exact resends, which a
//! message id removes).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::future::BoxFuture;

use crate::durable::{Position, Progress, snapshot};

/// Where partitions' states are saved (a key-value bucket, say).
pub trait Store: Send + Sync {
    /// Saves partition `part`'s state, which counts every message of the
    /// partition through stream sequence `seq`.
    fn save<'a>(
        &'a self,
        part: u32,
        state: &'a [u8],
        seq: u64,
    ) -> BoxFuture<'a, Result<(), String>>;

    /// Gives partition `part` up (its last state saved), so that another
    /// process may take it at once.
    fn release(&self, part: u32) -> BoxFuture<'_, ()>;
}

/// One partition a source owns (see the module docs).
pub struct Part {
    id: u32,
    progress: Arc<Progress>,
    restore: Mutex<Option<Vec<u8>>>,
    store: Arc<dyn Store>,
    lost: AtomicBool,
    handing_over: AtomicBool,
}

impl std::fmt::Debug for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Part({})", self.id)
    }
}

impl Part {
    /// Partition `id`, read from after stream sequence `from`, with the
    /// plugin state saved there (if any).
    pub fn new(id: u32, from: u64, restore: Option<Vec<u8>>, store: Arc<dyn Store>) -> Arc<Part> {
        Arc::new(Part {
            id,
            progress: Progress::new(from),
            restore: Mutex::new(restore),
            store,
            lost: AtomicBool::new(false),
            handing_over: AtomicBool::new(false),
        })
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// What its batches' acks advance.
    pub fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }

    /// The stream sequence up to which every output is out.
    pub fn delivered(&self) -> u64 {
        self.progress.committed().0
    }

    /// The saved state, once (the first batch's transform takes it).
    pub fn take_restore(&self) -> Option<Vec<u8>> {
        self.restore.lock().ok()?.take()
    }

    /// Another process owns it now: its instance must stop at once,
    /// without a flush or a save.
    pub fn lose(&self) {
        self.lost.store(true, Ordering::Relaxed);
    }

    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// The source gives it to another process (a rebalance): its reader
    /// stops, and the transform saves the instance's state, releases the
    /// partition and drops the instance; batches of it still on their way
    /// are left to the next owner, which reads on from the saved sequence.
    pub fn hand_over(&self) {
        self.handing_over.store(true, Ordering::Relaxed);
    }

    pub fn is_handing_over(&self) -> bool {
        self.handing_over.load(Ordering::Relaxed)
    }

    pub async fn save(&self, state: &[u8], seq: u64) -> Result<(), String> {
        self.store.save(self.id, state, seq).await
    }

    pub async fn release(&self) {
        self.store.release(self.id).await
    }
}

/// A saved partition state as stored: the state file's checked envelope
/// ([`snapshot`]), its one position the partition's stream sequence.
pub fn encode(stream: &str, part: u32, state: &[u8], seq: u64) -> Vec<u8> {
    let at = Position {
        source: format!("{stream}/{part}"),
        dev: 0,
        ino: 0,
        offset: seq,
    };
    snapshot::encode(state, std::slice::from_ref(&at))
}

/// The state and the stream sequence it covers, checked.
pub fn decode(stored: &[u8]) -> Result<(Vec<u8>, u64), String> {
    let (state, positions) = snapshot::decode(stored)?;
    let seq = positions
        .first()
        .map(|p| p.offset)
        .ok_or("no stream sequence in the saved state")?;
    Ok((state.to_vec(), seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_state_round_trips_and_damage_is_found() {
        let b = encode("OBS", 3, b"state bytes", 41);
        assert_eq!(decode(&b).unwrap(), (b"state bytes".to_vec(), 41));
        let mut bad = b.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(decode(&bad).unwrap_err().contains("checksum"));
        assert!(decode(b"nonsense").is_err());
    }
}
