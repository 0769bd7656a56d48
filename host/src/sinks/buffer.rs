//! A network sink's buffer, as configured: `memory` (the default: a batch
//! is held until delivered, and its source learns the outcome only then)
//! or `disk` (`disk`: bodies queued in the sink's spool folder), and the
//! level a disk buffer is at.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;

use crate::config::Problem;

/// `[sinks.<id>.buffer]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    #[serde(rename = "type", default)]
    pub kind: BufferKind,
    /// Disk: the most bytes queued (bodies as the sink sends them, before
    /// gzip). What is in flight at a shutdown is kept even over it.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Disk: what a full buffer does to new events.
    #[serde(default)]
    pub when_full: WhenFull,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferKind {
    #[default]
    Memory,
    Disk,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait for room: the sink stops taking input, and the pipeline slows
    /// its sources (a HEC source answers 503 when its queue is full).
    #[default]
    Block,
    /// Drop the new events (counted, logged): sources never wait.
    DropNewest,
}

fn default_max_bytes() -> u64 {
    256 << 20
}

impl BufferConfig {
    pub fn check(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.kind == BufferKind::Memory && self.when_full != WhenFull::Block {
            let msg = "when_full applies to a disk buffer (type = \"disk\")";
            p.push(Problem::at("buffer.when_full", msg));
        }
        if self.kind == BufferKind::Disk && self.max_bytes < 1 << 20 {
            p.push(Problem::at("buffer.max_bytes", "at least 1048576 (1 MiB)"));
        }
        p
    }
}

/// The bytes a disk buffer holds, and a wake-up for each side: the intake
/// waits for room, the drainer for bodies.
#[derive(Default)]
pub struct Level {
    pub bytes: AtomicU64,
    pub room: tokio::sync::Notify,
    pub queued: tokio::sync::Notify,
}

impl Level {
    pub fn new(bytes: u64) -> Arc<Level> {
        let l = Level::default();
        l.bytes.store(bytes, Ordering::Relaxed);
        Arc::new(l)
    }

    pub fn add(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        self.queued.notify_one();
    }

    pub fn take(&self, n: u64) {
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(n))
            });
        self.room.notify_one();
    }

    /// Whether `n` more bytes fit under `max` (always, into an empty
    /// buffer: one body larger than the bound still goes through).
    pub fn fits(&self, n: u64, max: u64) -> bool {
        let b = self.bytes.load(Ordering::Relaxed);
        b == 0 || b + n <= max
    }
}
