//! The `file` source: NDJSON lines from a file, read once or followed as
//! it grows, optionally checkpointed (`data_dir/checkpoints`) so a restart
//! resumes after the last event every sink has written.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Deserialize;

use super::checkpoint::{Checkpointer, resume};
use super::component::{Source, SourceContext, Started};
use super::reader::{ReadOpts, Reader};
use crate::durable::{self, Checkpoint, Position, Progress};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub path: PathBuf,
    /// Keep reading as the file grows (until SIGINT/SIGTERM) instead of
    /// stopping at its end.
    #[serde(default)]
    pub follow: bool,
    /// How often a followed file is polled for new data.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    #[serde(default = "super::component::default_batch_events")]
    pub batch_max_events: usize,
    /// Keep the read position under `data_dir/checkpoints`, advanced once
    /// every sink has written the events, and resume from it at start.
    /// Default: on for `follow = true`, off otherwise (so a one-shot run
    /// over a file reads it whole every time).
    #[serde(default)]
    pub checkpoint: Option<bool>,
    /// How often the checkpoint is written (and at exit).
    #[serde(default = "default_checkpoint_ms")]
    pub checkpoint_interval_ms: u64,
    /// A line longer than this is written whole to a file of its own under
    /// `data_dir/oversize/`, and an event naming it takes its place.
    #[serde(default = "super::component::default_max_line_bytes")]
    pub max_line_bytes: usize,
}

fn default_poll_ms() -> u64 {
    250
}
fn default_checkpoint_ms() -> u64 {
    1000
}

impl FileConfig {
    /// Whether this source keeps a checkpoint.
    pub fn checkpoints(&self) -> bool {
        self.checkpoint.unwrap_or(self.follow)
    }
}

impl Source for FileConfig {
    fn start(&self, cx: SourceContext) -> Started {
        let mut started = Started::reading(None);
        let path = cx.paths.resolve(&self.path);
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(source = %cx.id, path = %path.display(), error = %e, "cannot open input");
                cx.errors.fetch_add(1, Ordering::Relaxed);
                return started;
            }
        };
        let (mut start, mut replay_until) = (0, 0);
        if self.checkpoints() {
            let (cp, file) = resume(&cx.id, &path, &mut f, cx.paths.data_dir(), &cx.errors);
            (start, replay_until) = (cp.offset, cp.offset);
            if let Some(counted) = replay_from(&cx.id, &cp, cx.paths.data_dir(), &mut f) {
                (start, replay_until) = (counted, cp.offset.max(counted));
            }
            let origin = Position {
                source: cx.id.clone(),
                dev: cp.dev,
                ino: cp.ino,
                offset: 0,
            };
            started.checkpoint = Some(Checkpointer {
                source: cx.id.clone(),
                progress: Progress::of_file(start, Some(origin)),
                file,
                stored: cp,
                interval: Duration::from_millis(self.checkpoint_interval_ms.max(10)),
            });
        }
        if !self.follow {
            // A finite input: how much of it there is to read (progress).
            let len = f.metadata().map_or(0, |m| m.len());
            cx.stats.input_size.store(len.saturating_sub(start), Ordering::Relaxed);
        }
        Reader {
            id: cx.id,
            input: Box::new(f),
            opts: ReadOpts {
                max_events: self.batch_max_events,
                follow: self.follow,
                poll: Duration::from_millis(self.poll_interval_ms),
                start,
                replay_until,
                convert: None,
                max_line_bytes: self.max_line_bytes,
                spill_dir: cx.paths.data_dir().join("oversize"),
            },
            progress: started.checkpoint.as_ref().map(|c| c.progress.clone()),
            tx: cx.tx,
            stop: cx.stop,
            errors: cx.errors,
            stats: cx.stats,
        }
        .spawn();
        started
    }
}

/// Where saved plugin state covering this very file ends (the oldest such
/// position, when several plugins saved state), with `f` sought there:
/// reading resumes there, and lines up to the checkpoint are a replay.
fn replay_from(
    id: &str,
    cp: &Checkpoint,
    data_dir: &std::path::Path,
    f: &mut std::fs::File,
) -> Option<u64> {
    use std::io::{Seek, SeekFrom};
    let len = f.metadata().map_or(0, |m| m.len());
    let counted = durable::snapshot::positions_for(data_dir, id)
        .into_iter()
        .filter(|p| p.dev == cp.dev && p.ino == cp.ino && p.offset <= len)
        .map(|p| p.offset)
        .min()?;
    if counted == cp.offset {
        return None;
    }
    f.seek(SeekFrom::Start(counted)).ok()?;
    tracing::info!(source = %id, from = counted, replay_until = cp.offset.max(counted), "resuming where the saved plugin state ends: lines already written are replayed into the plugin, not written again");
    Some(counted)
}
