//! A plugin's state across restarts: restored from `data_dir/state` at
//! start, saved there at a shutdown (instead of the final flush), removed
//! once used up, so a snapshot is never restored twice.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::clock::now_ms;
pub use super::transform::worker_name;
use super::transform::{Outputs, WasmTransform};
use crate::durable;

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
        .and_then(|state| t.restore(state, now_ms()).map_err(|e| e.to_string()));
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
    state_errors: &AtomicU64,
    outs: &mut Outputs,
) {
    let mut saved = false;
    if let Some(path) = state_file {
        if shutting_down && t.keeps_state() {
            match save_state(t, path) {
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

/// Snapshots the plugin's state into `path`.
fn save_state(t: &mut WasmTransform, path: &Path) -> Saved {
    match t.snapshot(now_ms()) {
        Ok(Some(state)) if state.is_empty() => {
            let _ = std::fs::remove_file(path);
            tracing::debug!(transform = %t.id(), "plugin has no state to keep");
            Saved::Nothing
        }
        Ok(Some(state)) => match durable::write_atomic(path, &durable::snapshot::encode(&state)) {
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
