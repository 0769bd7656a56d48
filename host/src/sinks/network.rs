//! Starting a network sink: its delivery, with a memory buffer
//! (`delivery`) or a disk one (`disk`).

use super::buffer::BufferKind;
use super::component::SinkContext;
use super::delivery::{Batching, Delivery, Encode, Target};
use super::disk;
use super::spool::Spool;

/// Starts a network sink whose target its `check` accepted (one that
/// still fails is logged, and the sink takes nothing).
pub fn start<T: Target>(
    cx: SinkContext,
    target: Result<T, String>,
    encoding: impl Encode,
    batching: Batching,
) -> tokio::task::JoinHandle<()> {
    match target {
        Ok(target) => spawn(cx, target, encoding, batching),
        Err(e) => tokio::spawn(async move {
            tracing::error!(sink = %cx.id, error = %e, "not started");
        }),
    }
}

/// Starts a network sink's task: batches from `cx` delivered to `target`.
pub fn spawn(
    cx: SinkContext,
    target: impl Target,
    encoding: impl Encode,
    batching: Batching,
) -> tokio::task::JoinHandle<()> {
    let SinkContext {
        id,
        paths,
        rx,
        stats,
        shutdown,
    } = cx;
    let d = Delivery {
        spool: Spool::new(paths.data_dir(), &id),
        id,
        stats,
        batching,
        shutdown,
        gzip: Default::default(),
    };
    match d.batching.buffer.kind {
        BufferKind::Memory => tokio::spawn(d.run(rx, target, encoding)),
        BufferKind::Disk => tokio::spawn(disk::run(d, rx, target, encoding)),
    }
}
