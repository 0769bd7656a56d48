//! Reading a byte stream (a file, stdin) on a thread of its own, cut into
//! batches of lines. Reads block, and a blocked read must not hold up
//! shutdown: the thread is detached, and the topology decides when the
//! source is done ([`super::component::Ending::Quiet`]).

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::batch::{Batch, LineSplitter};
use crate::channel::Tx;
use crate::codecs::mmexternal;
use crate::durable::{Ack, Progress};

/// Bytes read at a time.
const READ_CHUNK: usize = 256 * 1024;

/// How a stream is read.
pub struct ReadOpts {
    pub max_events: usize,
    /// Keep reading at the end, every `poll`, until stopped.
    pub follow: bool,
    pub poll: Duration,
    /// File offset where reading starts.
    pub start: u64,
    /// rsyslog mmexternal input to turn into events.
    pub convert: Option<mmexternal::Input>,
}

/// What the reading thread is handed.
pub struct Reader {
    pub id: String,
    pub input: Box<dyn Read + Send>,
    pub opts: ReadOpts,
    /// The checkpoint's progress, when the source keeps one: each batch
    /// carries an ack of its end offset.
    pub progress: Option<Arc<Progress>>,
    pub tx: Tx,
    pub stop: Arc<AtomicBool>,
    pub errors: Arc<AtomicU64>,
}

impl Reader {
    /// Starts the thread (one that cannot start is logged).
    pub fn spawn(self) {
        let name = format!("source-{}", self.id);
        let spawned = std::thread::Builder::new()
            .name(name)
            .spawn(move || self.run());
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start source thread");
        }
    }

    fn run(self) {
        let Reader {
            id,
            input,
            opts,
            progress,
            tx,
            stop,
            errors,
        } = self;
        read_loop(&id, input, opts, progress, tx, stop, errors);
    }
}

fn read_loop(
    id: &str,
    mut input: Box<dyn Read + Send>,
    o: ReadOpts,
    progress: Option<Arc<Progress>>,
    tx: Tx,
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
) {
    let mut splitter = LineSplitter::new(o.max_events);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut batches = Vec::new();
    // Offset after the last line handed on, and the next batch's number.
    let mut offset = o.start;
    let mut seq = 0u64;
    let mut send = |batches: &mut Vec<Batch>, synthetic_newline: bool| -> bool {
        let n = batches.len();
        for (i, mut b) in batches.drain(..).enumerate() {
            let raw = b.bytes().len() - usize::from(synthetic_newline && i + 1 == n);
            offset += raw as u64;
            if let Some(p) = &progress {
                b.acks.push(Ack::new(p.clone(), seq, offset));
                seq += 1;
            }
            if let Some(input) = o.convert {
                b = mmexternal::read_batch(input, b);
            }
            if tx.blocking_send(Arc::new(b)).is_err() {
                return false;
            }
        }
        true
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match input.read(&mut buf) {
            Ok(0) if o.follow => std::thread::sleep(o.poll),
            Ok(0) => break,
            Ok(n) => splitter.push(&buf[..n], &mut batches),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!(source = %id, error = %e, "read failed; source stops");
                errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
        if !send(&mut batches, false) {
            return;
        }
    }
    // A followed, checkpointed file may be mid-write: its last partial line
    // is left for the next run, which resumes right before it.
    if o.follow && progress.is_some() {
        return;
    }
    splitter.finish(&mut batches);
    send(&mut batches, true);
}
