//! A plugin's state across restarts: restored from `data_dir/state` at
//! start, saved there at a shutdown (instead of the final flush), removed
//! once used up, so a snapshot is never restored twice.
//!
//! To survive a crash (`kill -9`) as well, the state is also taken every
//! `checkpoint_interval_secs` while the pipeline runs ([`Checkpoints`]):
//! after a batch, with the file positions it covers (the end of the last
//! batch of each checkpointed file source), and stored once every sink
//! has written everything before those positions. A restart restores it
//! and its file sources read again from those positions; lines the sinks
//! had already written go through the pipeline as a replay (so the state
//! is rebuilt) and are not written again. So the windows survive, and an
//! alert is not sent twice.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::clock::now_ms;
pub use super::transform::worker_name;
use super::transform::{Outputs, WasmTransform};
use crate::batch::Batch;
use crate::durable::{self, Position, Progress};

/// Hands a transform the state saved at the last shutdown. False when a
/// snapshot existed and could not be used (it is then set aside).
pub fn restore_state(data_dir: &Path, id: &str, t: &mut WasmTransform) -> bool {
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
        .and_then(|(state, _)| t.restore(state, now_ms()).map_err(|e| e.to_string()));
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

/// The end of a transform's run (see [`super::driver::transform_loop`]): save the state
/// or run the final flush, into `outs`.
pub fn finish_transform(
    t: &mut WasmTransform,
    shutting_down: bool,
    state_file: Option<&Path>,
    positions: &[Position],
    state_errors: &AtomicU64,
    outs: &mut Outputs,
) {
    let mut saved = false;
    if let Some(path) = state_file {
        if shutting_down && t.keeps_state() {
            match save_state(t, path, positions) {
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

/// What became of a plugin's state at shutdown.
enum Saved {
    Yes,
    /// The plugin had nothing to keep (an empty snapshot): the final flush
    /// runs, and no older file is left to restore.
    Nothing,
    /// Logged; the final flush runs instead.
    Failed,
}

/// Snapshots the plugin's state into `path`, with the positions it covers.
fn save_state(t: &mut WasmTransform, path: &Path, positions: &[Position]) -> Saved {
    match t.snapshot(now_ms()) {
        Ok(Some(state)) if state.is_empty() => {
            let _ = std::fs::remove_file(path);
            tracing::debug!(transform = %t.id(), "plugin has no state to keep");
            Saved::Nothing
        }
        Ok(Some(state)) => match store(path, &state, positions) {
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

fn store(path: &Path, state: &[u8], positions: &[Position]) -> std::io::Result<()> {
    durable::write_atomic(path, &durable::snapshot::encode(state, positions))
}

/// Per checkpointed file source, the end of the last batch processed.
type Reached = Vec<(Arc<Progress>, u64)>;

/// Periodic checkpoints of one plugin's state (see the module docs).
pub struct Checkpoints {
    /// `None`: off.
    every: Option<Duration>,
    next: Instant,
    /// Per checkpointed file source: the end of the last batch processed.
    seen: Reached,
    /// A state taken, and what must be written before it is stored.
    pending: Option<(Vec<u8>, Reached)>,
}

impl Checkpoints {
    /// Every `every` (zero: never, but positions are still followed for
    /// the state saved at a shutdown).
    pub fn new(every: Duration) -> Checkpoints {
        Checkpoints {
            every: (!every.is_zero()).then_some(every),
            next: Instant::now() + every,
            seen: Vec::new(),
            pending: None,
        }
    }

    /// Notes the file positions batch `b` (just processed) reaches.
    pub fn seen(&mut self, b: &Batch) {
        for (p, end) in b.acks.iter().filter_map(|a| a.position()) {
            if p.origin().is_none() {
                continue;
            }
            match self.seen.iter_mut().find(|(q, _)| Arc::ptr_eq(p, q)) {
                Some(s) => s.1 = s.1.max(end),
                None => self.seen.push((p.clone(), end)),
            }
        }
    }

    /// The positions of everything processed so far.
    pub fn positions(&self) -> Vec<Position> {
        positions(&self.seen)
    }

    /// After each batch or tick: stores the pending state once every line
    /// it covers is written; takes a new one when one is due.
    pub fn step(&mut self, t: &mut WasmTransform, path: &Path, errors: &AtomicU64) {
        let Some(every) = self.every else { return };
        if let Some((state, covers)) = &self.pending {
            let written = covers.iter().all(|(p, end)| p.committed().0 >= *end);
            if !written {
                return;
            }
            if let Err(e) = store(path, state, &positions(covers)) {
                errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(transform = %t.id(), path = %path.display(), error = %e, "cannot store a state checkpoint");
            }
            self.pending = None;
        }
        if Instant::now() < self.next || !t.keeps_state() {
            return;
        }
        self.next = Instant::now() + every;
        // An empty state: nothing to keep (the classify stage, say).
        if let Some(state) = t.checkpoint(now_ms()).filter(|s| !s.is_empty()) {
            self.pending = Some((state, self.seen.clone()));
        }
    }
}

fn positions(covers: &[(Arc<Progress>, u64)]) -> Vec<Position> {
    let at = |(p, end): &(Arc<Progress>, u64)| {
        let o = p.origin()?;
        Some(Position {
            offset: *end,
            ..o.clone()
        })
    };
    covers.iter().filter_map(at).collect()
}
