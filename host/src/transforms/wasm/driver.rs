//! The async driver of one wasm transform: `select!`s between its input
//! and a tick every `flush_interval_secs`, calls the state machine in
//! place (the loop has a thread of its own, so blocking there holds up no
//! other task), and hands its outputs on. At the end of input it saves
//! the state (at a shutdown) or runs the final flush.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::sync::watch;

use super::ahead::Input;
use super::clock::now_ms;
use super::state::{Checkpoints, finish_transform};
use super::transform::{Outputs, WasmTransform};
use crate::batch::Batch;
use crate::channel::{Rx, Tx, send_all};
use crate::sandbox::Indexed;

/// Where a transform's outputs go.
pub struct TransformRoutes {
    pub default: Vec<Tx>,
    pub named: Vec<Vec<Tx>>,
    pub dead_letter: Vec<Tx>,
}

/// How often a transform ticks and checkpoints its state.
pub struct Periods {
    pub tick: Duration,
    pub checkpoint: Duration,
}

/// Drives one transform. With `state_file`, its state is checkpointed
/// there while it runs (`state::Checkpoints`). At the end: on a shutdown
/// with `state_file`, the plugin's state is saved there instead of the
/// final flush (falling back to the flush if that fails); otherwise the
/// final flush runs and any older saved state is removed, as it is now
/// used up. Returns the id when the plugin ended quarantined.
pub async fn transform_loop(
    mut t: WasmTransform,
    periods: Periods,
    rx: Rx,
    routes: TransformRoutes,
    shutdown: watch::Receiver<bool>,
    state_file: Option<PathBuf>,
    state_errors: Arc<AtomicU64>,
) -> Option<String> {
    let mut input = Input::new(t.id(), rx, t.ahead());
    let period = periods.tick;
    let mut checkpoints = Checkpoints::new(periods.checkpoint);
    let mut outs = t.new_outputs();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Checkpoints are taken and stored between batches, and while the
    // input is quiet too.
    let every = if periods.checkpoint.is_zero() {
        Duration::from_secs(3600)
    } else {
        periods.checkpoint
    };
    let mut checkpoint_timer = tokio::time::interval(every);
    checkpoint_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            m = input.recv() => match m {
                Some((b, index)) => {
                    process_batch(&mut t, &b, now_ms(), &mut outs, index);
                    checkpoints.seen(&b);
                }
                None => break,
            },
            _ = ticker.tick() => t.tick(now_ms(), &mut outs),
            _ = checkpoint_timer.tick() => {}
        }
        send_outputs(&mut outs, &routes).await;
        if let Some(path) = &state_file {
            checkpoints.step(&mut t, path, &state_errors);
        }
    }
    let shutting_down = *shutdown.borrow();
    finish_transform(
        &mut t,
        shutting_down,
        state_file.as_deref(),
        &checkpoints.positions(),
        &state_errors,
        &mut outs,
    );
    send_outputs(&mut outs, &routes).await;
    t.is_quarantined().then(|| t.id().to_string())
}

/// One batch through `t` into `outs`, with the batch's acks (and its
/// replay mark: what a replayed batch becomes is not written either).
/// `index`: the batch's objects index, made ahead.
pub fn process_batch(
    t: &mut WasmTransform,
    b: &Batch,
    now_ms: i64,
    outs: &mut Outputs,
    index: Option<Indexed>,
) {
    t.process_ahead(b, now_ms, outs, index);
    // The events now travel in the outputs (a plugin may route some to a
    // named output): so do their acks. Outputs left empty release theirs in
    // send_outputs.
    let all = std::iter::once(&mut outs.default)
        .chain(outs.named.iter_mut())
        .chain(std::iter::once(&mut outs.dead_letter));
    for o in all {
        o.acks.extend(b.acks.iter().cloned());
        o.replay = b.replay;
    }
}

pub async fn send_outputs(outs: &mut Outputs, routes: &TransformRoutes) {
    let all = std::iter::once((&mut outs.default, &routes.default))
        .chain(outs.named.iter_mut().zip(&routes.named))
        .chain(std::iter::once((
            &mut outs.dead_letter,
            &routes.dead_letter,
        )));
    for (b, txs) in all {
        if b.is_empty() {
            // Nothing of these events is left to deliver.
            b.acks.clear();
        } else {
            send_all(txs, Arc::new(std::mem::take(b))).await;
        }
    }
}
