//! Writing batches to a file or a pipe, on a blocking thread: in order,
//! buffered, flushed when the input runs dry (or every
//! [`SINK_HOLD_BATCHES`]); a batch is let go of (its acks released) only
//! once its bytes are written through.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::component::SinkStats;
use crate::batch::Batch;
use crate::channel::Rx;
use crate::codecs::mmexternal;

/// Writes batches in order. A batch is let go of (releasing its acks) only
/// once its bytes are written through to the file or pipe.
pub fn sink_loop(
    id: &str,
    writer: Result<Box<dyn Write + Send>, std::io::Error>,
    mut rx: Rx,
    stats: &SinkStats,
    mmexternal: Option<mmexternal::Reply>,
) {
    let mut w = match writer {
        Ok(w) => std::io::BufWriter::with_capacity(256 * 1024, w),
        Err(e) => {
            tracing::error!(sink = %id, error = %e, "cannot open output; its events are counted as write errors");
            while let Some(b) = rx.blocking_recv() {
                stats.received(&b);
                b.fail_acks();
                stats
                    .write_errors
                    .fetch_add(b.count() as u64, Ordering::Relaxed);
            }
            return;
        }
    };
    let mut broken = false;
    let mut held: Vec<Arc<Batch>> = Vec::new();
    let mut answers = Vec::new();
    let fail = |held: &mut Vec<Arc<Batch>>| {
        for b in held.drain(..) {
            b.fail_acks();
            stats
                .write_errors
                .fetch_add(b.count() as u64, Ordering::Relaxed);
        }
    };
    let written = |held: &mut Vec<Arc<Batch>>| {
        for b in held.drain(..) {
            stats.events.fetch_add(b.count() as u64, Ordering::Relaxed);
            stats
                .bytes
                .fetch_add(b.bytes().len() as u64, Ordering::Relaxed);
        }
    };
    while let Some(b) = rx.blocking_recv() {
        stats.received(&b);
        if b.replay {
            // Written before a crash: let go without writing again.
            stats
                .replayed
                .fetch_add(b.count() as u64, Ordering::Relaxed);
            continue;
        }
        if broken {
            held.push(b);
            fail(&mut held);
            continue;
        }
        let mut res = match mmexternal {
            Some(reply) => {
                answers.clear();
                mmexternal::write_replies(reply, &b, &mut answers);
                w.write_all(&answers)
            }
            None => w.write_all(b.bytes()),
        };
        held.push(b);
        if res.is_ok() && (rx.is_empty() || held.len() >= SINK_HOLD_BATCHES) {
            res = w.flush();
        }
        match res {
            // Everything held has reached the file or pipe.
            Ok(()) if w.buffer().is_empty() => written(&mut held),
            Ok(()) => {}
            Err(e) => {
                tracing::error!(sink = %id, error = %e, "write failed; further events to this sink are counted as lost");
                fail(&mut held);
                broken = true;
            }
        }
    }
    if !broken {
        match w.flush() {
            Ok(()) => written(&mut held),
            Err(e) => {
                tracing::error!(sink = %id, error = %e, "final flush failed");
                fail(&mut held);
            }
        }
    }
}

/// Most batches a sink writes before flushing them through.
const SINK_HOLD_BATCHES: usize = 64;
