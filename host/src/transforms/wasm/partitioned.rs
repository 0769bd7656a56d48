//! The driver of a transform whose input is partitioned
//! ([`crate::partition`]): one plugin instance per partition, made when the
//! partition's first batch arrives (the empty one its reader sends as it
//! starts; restored from the state that batch's [`Part`] hands over),
//! dropped when the source loses the partition.
//! Every checkpoint interval each instance's state is taken with the stream
//! sequence it covers and saved once everything it produced is out; at the
//! end each instance runs its final flush (the input ended) or not (a
//! shutdown), its state is saved once its outputs are out, and the
//! partition is given up. Like the one-instance driver, the loop has a
//! thread of its own: the instances run in place.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::clock::now_ms;
use super::driver::{Periods, TransformRoutes, process_batch, send_outputs};
use super::transform::{Outputs, WasmTransform};
use crate::batch::Batch;
use crate::channel::Rx;
use crate::partition::Part;

/// How long the end of a run waits for a partition's outputs to be out
/// before it gives the partition up without saving (its last saved state
/// stands, and the next owner computes the rest again).
const END_WAIT: Duration = Duration::from_secs(20);

/// One partition's instance.
struct Slot {
    t: WasmTransform,
    part: Arc<Part>,
    /// The stream sequence of the last message processed.
    seen: u64,
    /// A state taken, and the sequence it covers, to save once delivered.
    pending: Option<(Vec<u8>, u64)>,
    next_checkpoint: Instant,
    /// Its partition is being handed over (its last state taken).
    handing: bool,
}

/// The instances and what they share.
struct Partitioned {
    base: WasmTransform,
    slots: BTreeMap<u32, Slot>,
    every: Duration,
    state_errors: Arc<AtomicU64>,
}

/// Drives a partitioned transform until its input ends (see the module
/// docs). Batches without a partition go to `base`. Returns the id when
/// `base` ended quarantined.
pub async fn partitioned_loop(
    base: WasmTransform,
    periods: Periods,
    mut rx: Rx,
    routes: TransformRoutes,
    shutdown: watch::Receiver<bool>,
    state_errors: Arc<AtomicU64>,
) -> Option<String> {
    let mut outs = base.new_outputs();
    let mut p = Partitioned {
        base,
        slots: BTreeMap::new(),
        every: periods.checkpoint.max(Duration::from_secs(1)),
        state_errors,
    };
    let period = periods.tick;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut checkpoint_timer = tokio::time::interval(Duration::from_secs(1));
    checkpoint_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            m = rx.recv() => match m {
                Some(b) => p.batch(&b, &mut outs),
                None => break,
            },
            _ = ticker.tick() => p.tick(&mut outs),
            _ = checkpoint_timer.tick() => {}
        }
        send_outputs(&mut outs, &routes).await;
        p.checkpoints().await;
    }
    let shutting_down = *shutdown.borrow();
    p.finish(shutting_down, &mut outs);
    send_outputs(&mut outs, &routes).await;
    p.give_up_all().await;
    p.base.is_quarantined().then(|| p.base.id().to_string())
}

impl Partitioned {
    fn batch(&mut self, b: &Batch, outs: &mut Outputs) {
        let Some(part) = &b.part else {
            process_batch(&mut self.base, b, now_ms(), outs, None);
            return;
        };
        if part.is_lost() {
            if self.slots.remove(&part.id()).is_some() {
                tracing::info!(transform = %self.base.id(), partition = part.id(), "partition lost to another process: its instance is dropped");
            }
            return;
        }
        let ours = self
            .slots
            .get(&part.id())
            .is_some_and(|s| Arc::ptr_eq(&s.part, part));
        if part.is_handing_over() && !ours {
            // Handed over already: the next owner reads these again.
            return;
        }
        let Some(slot) = self.slot(part) else { return };
        if b.is_empty() {
            // The source announcing the partition: its instance now exists.
            return;
        }
        process_batch(&mut slot.t, b, now_ms(), outs, None);
        let end = b.acks.iter().filter_map(|a| a.position());
        let end = end.filter(|(pr, _)| Arc::ptr_eq(pr, part.progress()));
        if let Some(seq) = end.map(|(_, e)| e).max() {
            slot.seen = slot.seen.max(seq);
        }
    }

    /// The partition's instance, made (and restored) at its first batch.
    fn slot(&mut self, part: &Arc<Part>) -> Option<&mut Slot> {
        let id = part.id();
        if self
            .slots
            .get(&id)
            .is_some_and(|s| !Arc::ptr_eq(&s.part, part))
        {
            // Taken anew after it was lost: the old instance is stale.
            self.slots.remove(&id);
        }
        if !self.slots.contains_key(&id) {
            let mut t = match self.base.replica(id as usize + 1) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(transform = %self.base.id(), partition = id, error = %e, "cannot make the partition's instance: its batches pass untouched");
                    return None;
                }
            };
            if let Some(state) = part.take_restore() {
                match t.restore(&state, now_ms()) {
                    Ok(_) => {
                        tracing::info!(transform = %self.base.id(), partition = id, bytes = state.len(), from = part.delivered(), "partition state restored")
                    }
                    Err(e) => {
                        self.state_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(transform = %self.base.id(), partition = id, error = %e, "saved partition state cannot be used: starting it empty");
                    }
                }
            }
            let slot = Slot {
                t,
                part: part.clone(),
                seen: part.delivered(),
                pending: None,
                next_checkpoint: Instant::now() + self.every,
                handing: false,
            };
            self.slots.insert(id, slot);
        }
        self.slots.get_mut(&id)
    }

    fn tick(&mut self, outs: &mut Outputs) {
        let now = now_ms();
        self.base.tick(now, outs);
        for s in self.slots.values_mut() {
            s.t.tick(now, outs);
        }
    }

    /// Saves each pending state whose outputs are out; takes a new one
    /// from each instance that is due; hands over the partitions the
    /// source gives away.
    async fn checkpoints(&mut self) {
        let now = Instant::now();
        let mut handed = Vec::new();
        for s in self.slots.values_mut() {
            if s.part.is_lost() {
                continue;
            }
            if s.part.is_handing_over() {
                if hand_over(s, &self.state_errors).await {
                    handed.push(s.part.id());
                }
                continue;
            }
            save_if_delivered(s, &self.state_errors).await;
            if s.pending.is_none() && now >= s.next_checkpoint {
                s.next_checkpoint = now + self.every;
                let state = s.t.checkpoint(now_ms());
                if let Some(state) = state {
                    s.pending = Some((state, s.seen));
                }
            }
        }
        for id in handed {
            self.slots.remove(&id);
        }
    }

    /// The end of the input: each instance's final flush (unless shutting
    /// down), and its state taken to save once its outputs are out.
    fn finish(&mut self, shutting_down: bool, outs: &mut Outputs) {
        let now = now_ms();
        self.slots.retain(|_, s| !s.part.is_lost());
        for s in self.slots.values_mut() {
            if !shutting_down {
                s.t.flush(now, outs);
            }
            match s.t.snapshot(now) {
                Ok(Some(state)) => s.pending = Some((state, s.seen)),
                Ok(None) => s.pending = None,
                Err(e) => {
                    self.state_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(transform = %s.t.id(), partition = s.part.id(), error = %e, "partition snapshot failed: its last saved state stands");
                }
            }
        }
        if self.slots.is_empty() || !shutting_down {
            self.base.flush(now, outs);
        }
    }

    /// Saves each partition's last state once its outputs are out (waiting
    /// at most [`END_WAIT`]), then gives every partition up.
    async fn give_up_all(&mut self) {
        let until = Instant::now() + END_WAIT;
        for s in self.slots.values_mut() {
            while s.pending.is_some() && Instant::now() < until {
                save_if_delivered(s, &self.state_errors).await;
                if s.pending.is_some() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            if let Some((_, seq)) = s.pending.take() {
                tracing::warn!(transform = %s.t.id(), partition = s.part.id(), seq, delivered = s.part.delivered(), "partition outputs not out in time: its last saved state stands");
            }
            s.part.release().await;
        }
    }
}

/// One step of handing the slot's partition over: its state taken once,
/// saved once its outputs are out, then the partition released. True when
/// done (the slot is to be dropped).
async fn hand_over(s: &mut Slot, errors: &AtomicU64) -> bool {
    if !s.handing {
        s.handing = true;
        let state = s.t.snapshot(now_ms());
        s.pending = match state {
            Ok(Some(state)) => Some((state, s.seen)),
            _ => None,
        };
    }
    save_if_delivered(s, errors).await;
    if s.pending.is_some() {
        return false;
    }
    s.part.release().await;
    tracing::info!(transform = %s.t.id(), partition = s.part.id(), seq = s.seen, "partition handed over");
    true
}

/// Saves the slot's pending state if everything it covers is out.
async fn save_if_delivered(s: &mut Slot, errors: &AtomicU64) {
    let Some((state, seq)) = &s.pending else {
        return;
    };
    if s.part.delivered() < *seq {
        return;
    }
    if let Err(e) = s.part.save(state, *seq).await {
        errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(transform = %s.t.id(), partition = s.part.id(), error = %e, "cannot save the partition's state; trying again at the next checkpoint");
    }
    s.pending = None;
}
