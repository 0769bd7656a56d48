//! A transform with `workers > 1`: each plugin instance works on its own
//! thread; batches are dealt out in turn, and outputs are taken from the
//! workers in the order the jobs were given, so they leave in input order.
//! At most two batches per worker are in flight: the input channel does
//! the rest of the backpressure. A tick goes to every worker.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::clock::now_ms;
use super::driver::{TransformRoutes, process_batch, send_outputs};
use super::state::finish_transform;
use super::transform::{Outputs, WasmTransform};
use crate::batch::Batch;
use crate::channel::Rx;

/// What a worker is asked to do.
enum Job {
    Batch(Arc<Batch>, i64),
    Tick(i64),
    /// The end of the run: save the state or flush (see [`finish_transform`]).
    End {
        shutting_down: bool,
    },
}

/// The running workers: where to send jobs, where their outputs come back.
struct Workers {
    jobs: Vec<mpsc::UnboundedSender<Job>>,
    done: Vec<mpsc::UnboundedReceiver<Outputs>>,
    /// Each returns whether its instance ended quarantined.
    threads: Vec<std::thread::JoinHandle<bool>>,
}

/// Drives the workers until the input ends; returns the id when an
/// instance ended quarantined (or the workers could not start).
pub async fn parallel_transform_loop(
    workers: Vec<WasmTransform>,
    period: Duration,
    mut rx: Rx,
    routes: TransformRoutes,
    shutdown: watch::Receiver<bool>,
    state_files: Vec<Option<PathBuf>>,
    state_errors: Arc<AtomicU64>,
) -> Option<String> {
    let n = workers.len();
    let id = workers[0].id().to_string();
    let Some(mut w) = start_workers(&id, workers, state_files, &state_errors) else {
        // Without its threads the stage cannot run; its input is dropped
        // (acks fail, so checkpoints stay behind).
        return Some(id);
    };
    // Which worker holds each pending result, oldest first.
    let mut order: VecDeque<usize> = VecDeque::new();
    let (mut turn, mut open, mut lost) = (0, true, false);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while open || !order.is_empty() {
        let oldest = order.front().copied();
        tokio::select! {
            biased;
            r = async {
                match oldest {
                    Some(i) => w.done[i].recv().await,
                    None => std::future::pending().await,
                }
            } => match r {
                Some(mut outs) => {
                    order.pop_front();
                    send_outputs(&mut outs, &routes).await;
                }
                None => {
                    tracing::error!(transform = %id, "a worker stopped early; its batches are lost");
                    lost = true;
                    break;
                }
            },
            m = rx.recv(), if open && order.len() < 2 * n => match m {
                Some(b) => {
                    let _ = w.jobs[turn].send(Job::Batch(b, now_ms()));
                    order.push_back(turn);
                    turn = (turn + 1) % n;
                }
                None => open = false,
            },
            _ = ticker.tick(), if open => {
                for (i, j) in w.jobs.iter().enumerate() {
                    let _ = j.send(Job::Tick(now_ms()));
                    order.push_back(i);
                }
            }
        }
    }
    if !lost {
        let shutting_down = *shutdown.borrow();
        end_workers(&mut w, shutting_down, &routes).await;
    }
    join_workers(w).then_some(id)
}

/// One thread per instance, each answering its jobs in order.
fn start_workers(
    id: &str,
    workers: Vec<WasmTransform>,
    state_files: Vec<Option<PathBuf>>,
    state_errors: &Arc<AtomicU64>,
) -> Option<Workers> {
    let mut w = Workers {
        jobs: Vec::new(),
        done: Vec::new(),
        threads: Vec::new(),
    };
    for (i, (t, file)) in workers.into_iter().zip(state_files).enumerate() {
        let (job_tx, job_rx) = mpsc::unbounded_channel::<Job>();
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Outputs>();
        let errors = state_errors.clone();
        let thread = std::thread::Builder::new()
            .name(format!("{id}-{i}"))
            .spawn(move || work(t, file, &errors, job_rx, done_tx));
        match thread {
            Ok(h) => w.threads.push(h),
            Err(e) => {
                tracing::error!(transform = %id, error = %e, "cannot start a worker thread");
                return None;
            }
        }
        w.jobs.push(job_tx);
        w.done.push(done_rx);
    }
    Some(w)
}

/// A worker thread's life: each job's outputs go back as they are done.
/// Returns whether the instance ended quarantined.
fn work(
    mut t: WasmTransform,
    file: Option<PathBuf>,
    errors: &AtomicU64,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    done: mpsc::UnboundedSender<Outputs>,
) -> bool {
    let mut outs = t.new_outputs();
    while let Some(job) = jobs.blocking_recv() {
        match job {
            Job::Batch(b, now) => process_batch(&mut t, &b, now, &mut outs, None),
            Job::Tick(now) => t.tick(now, &mut outs),
            Job::End { shutting_down } => finish_transform(
                &mut t,
                shutting_down,
                file.as_deref(),
                &[],
                errors,
                &mut outs,
            ),
        }
        let full = std::mem::replace(&mut outs, t.new_outputs());
        if done.send(full).is_err() {
            break;
        }
    }
    t.is_quarantined()
}

/// The end of the run on every worker, their last outputs sent on.
async fn end_workers(w: &mut Workers, shutting_down: bool, routes: &TransformRoutes) {
    for j in &w.jobs {
        let _ = j.send(Job::End { shutting_down });
    }
    for d in &mut w.done {
        if let Some(mut outs) = d.recv().await {
            send_outputs(&mut outs, routes).await;
        }
    }
}

/// Waits for the threads; whether any instance ended quarantined (a worker
/// that panicked ended without its flush: counted as quarantined).
fn join_workers(w: Workers) -> bool {
    drop(w.jobs);
    let mut quarantined = false;
    for h in w.threads {
        quarantined |= tokio::task::block_in_place(|| h.join()).unwrap_or(true);
    }
    quarantined
}
