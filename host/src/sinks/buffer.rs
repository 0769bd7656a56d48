//! A network sink's buffer: `memory` (the default: a batch is held until
//! delivered, and its source learns the outcome only then) or `disk`, in
//! the sink's spool folder: each body is written and fsynced before its
//! events count as out, so a HEC or http source answers as soon as they
//! are durably queued, and a file source's checkpoint moves on; a drainer
//! delivers the queued bodies oldest first, across restarts.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;

use super::delivery::{Delivery, Encode, Sent, Target};
use super::spool::Kept;
use crate::channel::Rx;
use crate::config::Problem;
use crate::shutdown::shutdown_requested;

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

/// A sink with a disk buffer: the intake queues bodies (fsynced; their
/// acks released once written), the drainer delivers them, both until the
/// input ends; the drainer stops at the shutdown's grace, leaving what is
/// queued for the next start.
pub(super) async fn run_disk(d: Delivery, rx: Rx, target: impl Target, encoding: impl Encode) {
    let last_run: Vec<Kept> = d.spool.pending();
    let held: u64 = last_run.iter().map(|k| file_len(&k.path)).sum();
    let level = Level::new(held);
    let ended = AtomicBool::new(false);
    tokio::join!(
        async {
            intake(&d, rx, encoding, &level).await;
            ended.store(true, Ordering::Relaxed);
            level.queued.notify_one();
        },
        drain(&d, target, &level, &ended, last_run),
    );
    // Queued in this run and not delivered: kept for the next start.
    let left: u64 = d
        .spool
        .pending()
        .iter()
        .filter(|k| !k.path.to_string_lossy().contains(".rejected-"))
        .map(|k| k.events as u64)
        .sum();
    d.stats.spooled.store(left, Ordering::Relaxed);
}

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Takes batches, queues each body on disk (within `max_bytes`, by
/// `when_full`) and lets their acks go.
async fn intake(d: &Delivery, mut rx: Rx, encoding: impl Encode, level: &Level) {
    let (max, when_full) = (d.batching.buffer.max_bytes, d.batching.buffer.when_full);
    let mut body = Vec::new();
    let mut dropped_logs = 0u64;
    while let Some(first) = rx.recv().await {
        let held = d.gather(first, &mut rx);
        let events: usize = held.iter().map(|b| b.count()).sum();
        body.clear();
        for b in &held {
            encoding.encode(b, &mut body);
        }
        let n = body.len() as u64;
        if events == 0 {
            continue;
        }
        if !level.fits(n, max) && !shutting_down(d) {
            if when_full == WhenFull::DropNewest {
                dropped_logs += 1;
                d.stats
                    .buffer_dropped
                    .fetch_add(events as u64, Ordering::Relaxed);
                if dropped_logs.is_power_of_two() {
                    tracing::warn!(sink = %d.id, events, max_bytes = max, times = dropped_logs, "disk buffer full: new events dropped (when_full = drop_newest)");
                }
                continue;
            }
            wait_for_room(d, level, n, max).await;
        }
        match d.spool.keep(&body, events) {
            Ok(_) => level.add(n),
            Err(e) => {
                tracing::error!(sink = %d.id, error = %e, events, "cannot queue events on disk: counted as write errors");
                for b in &held {
                    b.fail_acks();
                }
                d.stats
                    .write_errors
                    .fetch_add(events as u64, Ordering::Relaxed);
            }
        }
    }
}

fn shutting_down(d: &Delivery) -> bool {
    *d.shutdown.borrow()
}

/// Waits until `n` bytes fit, or a shutdown begins (what is in flight is
/// then kept over the bound: nothing waits on a drainer that stopped).
async fn wait_for_room(d: &Delivery, level: &Level, n: u64, max: u64) {
    while !level.fits(n, max) && !shutting_down(d) {
        tokio::select! {
            _ = level.room.notified() => {}
            _ = shutdown_requested(d.shutdown.clone()) => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Delivers queued bodies, oldest first, until the intake ended and the
/// queue is empty, or the shutdown's grace ran out.
async fn drain(
    d: &Delivery,
    mut target: impl Target,
    level: &Level,
    ended: &AtomicBool,
    last_run: Vec<Kept>,
) {
    let from_last_run: HashSet<_> = last_run.into_iter().map(|k| k.path).collect();
    loop {
        let pending = d.spool.pending();
        if pending.is_empty() {
            if ended.load(Ordering::Relaxed) {
                return;
            }
            tokio::select! {
                _ = level.queued.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            continue;
        }
        for kept in pending {
            let size = file_len(&kept.path);
            let old = from_last_run.contains(&kept.path);
            match d.send_kept(&mut target, &kept, old).await {
                Sent::Shutdown => return,
                Sent::Delivered | Sent::Refused => level.take(size),
            }
        }
    }
}
