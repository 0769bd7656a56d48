//! Reading a byte stream (a file, stdin) on a thread of its own, cut into
//! batches of lines. Reads block, and a blocked read must not hold up
//! shutdown: the thread is detached, and the topology decides when the
//! source is done ([`super::component::Ending::Quiet`]).
//!
//! Memory stays bounded whatever the input: a line longer than
//! `max_line_bytes` (a corrupt log, a runaway writer) is written whole, as
//! it arrives, to a file of its own under `data_dir/oversize/`, and an
//! event naming that file takes its place in the stream.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::component::SourceStats;
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
    /// Lines before this offset are a replay (`Batch::replay`): read again
    /// for a plugin's restored state, already written by every sink.
    pub replay_until: u64,
    /// rsyslog mmexternal input to turn into events.
    pub convert: Option<mmexternal::Input>,
    /// Lines longer than this go to a file of their own.
    pub max_line_bytes: usize,
    /// Where such lines are written.
    pub spill_dir: PathBuf,
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
    pub stats: Arc<SourceStats>,
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
            stats,
        } = self;
        let out = Out {
            id: &id,
            progress,
            tx,
            convert: opts.convert,
            offset: opts.start,
            seq: 0,
            replay_until: opts.replay_until,
        };
        read_loop(&id, input, &opts, out, &stop, &errors, &stats);
    }
}

/// Where the reader's batches go: each gets the ack of its end offset
/// (when the source keeps a checkpoint) and, for mmexternal, is turned
/// into events.
struct Out<'a> {
    id: &'a str,
    progress: Option<Arc<Progress>>,
    tx: Tx,
    convert: Option<mmexternal::Input>,
    /// Offset after the last line handed on, and the next batch's number.
    offset: u64,
    seq: u64,
    replay_until: u64,
}

impl Out<'_> {
    /// Sends batches, each with the input bytes it stands for; false once
    /// nobody takes them.
    fn send(&mut self, batches: &mut Vec<(Batch, u64)>) -> bool {
        for (b, raw) in batches.drain(..) {
            let ok = match self.replay_cut(&b, raw) {
                Some((replayed, rest)) => {
                    self.send_one(replayed, raw - rest.1) && self.send_one(rest.0, rest.1)
                }
                None => self.send_one(b, raw),
            };
            if !ok {
                return false;
            }
        }
        true
    }

    /// A batch of whole lines that straddles the end of the replay, cut
    /// there: the replayed part, and the rest with its bytes.
    fn replay_cut(&self, b: &Batch, raw: u64) -> Option<(Batch, (Batch, u64))> {
        let (start, until) = (self.offset, self.replay_until);
        let whole = raw == b.bytes().len() as u64;
        if !(whole && start < until && start + raw > until) {
            return None;
        }
        let at = (until - start) as usize;
        // The replay ends where a batch of the last run ended: at a line's end.
        let (head, tail) = b.split_at_line_end(at)?;
        Some((head, (tail, raw - at as u64)))
    }

    /// Sends one batch with its ack (and its replay mark); false once
    /// nobody takes it.
    fn send_one(&mut self, mut b: Batch, raw: u64) -> bool {
        {
            b.replay = self.offset + raw <= self.replay_until;
            self.offset += raw;
            if let Some(p) = &self.progress {
                b.acks.push(Ack::new(p.clone(), self.seq, self.offset));
                self.seq += 1;
            }
            if let Some(input) = self.convert {
                b = mmexternal::read_batch(input, b);
            }
            if self.tx.blocking_send(Arc::new(b)).is_err() {
                tracing::debug!(source = %self.id, "the pipeline stopped taking batches");
                return false;
            }
        }
        true
    }
}

/// Batches of whole lines, each with its own bytes as its input bytes.
fn whole(cut: &mut Vec<Batch>, into: &mut Vec<(Batch, u64)>) {
    into.extend(cut.drain(..).map(|b| {
        let raw = b.bytes().len() as u64;
        (b, raw)
    }));
}

#[allow(clippy::too_many_arguments)]
fn read_loop(
    id: &str,
    mut input: Box<dyn Read + Send>,
    o: &ReadOpts,
    mut out: Out<'_>,
    stop: &AtomicBool,
    errors: &AtomicU64,
    stats: &SourceStats,
) {
    let mut splitter = LineSplitter::new(o.max_events);
    let mut buf = vec![0u8; READ_CHUNK];
    let (mut cut, mut batches) = (Vec::new(), Vec::new());
    let mut spill: Option<Spill> = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let mut chunk = match input.read(&mut buf) {
            Ok(0) if o.follow => {
                std::thread::sleep(o.poll);
                continue;
            }
            Ok(0) => break,
            Ok(n) => {
                stats.input_read.fetch_add(n as u64, Ordering::Relaxed);
                &buf[..n]
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!(source = %id, error = %e, "read failed; source stops");
                errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
        };
        if let Some(sp) = &mut spill {
            match memchr::memchr(b'\n', chunk) {
                None => {
                    sp.write(chunk);
                    continue;
                }
                Some(i) => {
                    sp.write(&chunk[..i]);
                    if let Some(s) = spill.take() {
                        batches.push(s.finish(id, stats, 1));
                    }
                    chunk = &chunk[i + 1..];
                }
            }
        }
        splitter.push(chunk, &mut cut);
        whole(&mut cut, &mut batches);
        if splitter.pending() > o.max_line_bytes {
            spill = Spill::start(id, &o.spill_dir, splitter.take_pending(), errors);
        }
        if !out.send(&mut batches) {
            return;
        }
    }
    // A followed, checkpointed file may be mid-write: its last partial line
    // is left for the next run, which resumes right before it.
    if o.follow && out.progress.is_some() {
        if let Some(sp) = spill {
            let _ = std::fs::remove_file(&sp.path);
        }
        return;
    }
    match spill {
        Some(sp) => batches.push(sp.finish(id, stats, 0)),
        None => {
            splitter.finish(&mut cut);
            whole(&mut cut, &mut batches);
            // The last line's newline was added: it stands for one byte less.
            if let Some(last) = batches.last_mut() {
                last.1 -= 1;
            }
        }
    }
    out.send(&mut batches);
}

/// A line over `max_line_bytes`, written to a file of its own as it
/// arrives (so memory stays bounded); its head is kept for the event that
/// takes its place.
struct Spill {
    file: Option<std::io::BufWriter<std::fs::File>>,
    path: PathBuf,
    bytes: u64,
    head: Vec<u8>,
}

/// How much of an oversize line its placeholder event quotes.
const HEAD_BYTES: usize = 256;

impl Spill {
    fn start(id: &str, dir: &Path, begun: Vec<u8>, errors: &AtomicU64) -> Option<Spill> {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = dir.join(format!("{id}-{at}.line"));
        let file = std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::File::create(&path))
            .map(|f| std::io::BufWriter::with_capacity(1 << 20, f));
        let file = match file {
            Ok(f) => Some(f),
            Err(e) => {
                // Still bounded: the line is cut to its head and counted.
                tracing::error!(source = %id, path = %path.display(), error = %e, "cannot write an oversize line to its file: only its head is kept");
                errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        };
        let mut s = Spill {
            file,
            path,
            bytes: 0,
            head: Vec::new(),
        };
        s.write(&begun);
        Some(s)
    }

    fn write(&mut self, data: &[u8]) {
        use std::io::Write;
        let room = HEAD_BYTES.saturating_sub(self.head.len());
        self.head.extend_from_slice(&data[..data.len().min(room)]);
        self.bytes += data.len() as u64;
        if let Some(f) = &mut self.file
            && f.write_all(data).is_err()
        {
            self.file = None;
        }
    }

    /// The event that takes the line's place, and the input bytes it
    /// stands for (the line and its `newline` bytes).
    fn finish(mut self, id: &str, stats: &SourceStats, newline: u64) -> (Batch, u64) {
        use std::io::Write;
        let kept = self.file.take().is_some_and(|mut f| f.flush().is_ok());
        stats.oversize.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(source = %id, bytes = self.bytes, path = %self.path.display(), kept, "line over max_line_bytes: written whole to its own file; an event naming it takes its place");
        let event = serde_json::json!({
            "rulebox_oversize": {
                "source": id,
                "bytes": self.bytes,
                "file": if kept { Some(self.path.display().to_string()) } else { None },
                "head": String::from_utf8_lossy(&self.head),
            }
        });
        let mut b = Batch::default();
        b.push_line(event.to_string().as_bytes());
        (b, self.bytes + newline)
    }
}
