//! A checkpointed source's read position: resumed at start when it is for
//! the very same file, and written every interval while the pipeline runs
//! (and at exit), only ever over events every sink has written
//! ([`Progress`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::durable::{self, Checkpoint, Progress};

/// A checkpointed source's progress and where to store it.
#[derive(Clone)]
pub struct Checkpointer {
    pub source: String,
    pub progress: Arc<Progress>,
    pub file: PathBuf,
    pub stored: Checkpoint,
    pub interval: Duration,
}

pub async fn checkpoint_loop(
    t: Checkpointer,
    mut stop: watch::Receiver<bool>,
    errors: Arc<AtomicU64>,
) {
    let Checkpointer {
        source,
        progress,
        file,
        mut stored,
        interval,
    } = t;
    let mut interval = tokio::time::interval(interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let last = tokio::select! {
            _ = interval.tick() => false,
            _ = stop.changed() => true,
        };
        let (offset, _) = progress.committed();
        // Never back: after a crash the lines up to the stored offset may be
        // read again as a replay, and must stay marked so.
        if offset > stored.offset {
            stored.offset = offset;
            let (cp, path) = (stored.clone(), file.clone());
            let res = tokio::task::spawn_blocking(move || cp.write(&path)).await;
            if !matches!(res, Ok(Ok(()))) {
                errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(source = %source, path = %file.display(), "cannot write checkpoint");
            }
        }
        if last {
            tracing::info!(source = %source, offset = stored.offset, "checkpoint");
            return;
        }
    }
}

/// Where a checkpointed file resumes: the stored offset when it is for
/// this very file (same device and inode, not shorter than the offset),
/// otherwise its start. Seeks `f` there.
pub fn resume(
    id: &str,
    path: &std::path::Path,
    f: &mut std::fs::File,
    data_dir: &std::path::Path,
    errors: &AtomicU64,
) -> (Checkpoint, PathBuf) {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::MetadataExt;
    let file = durable::checkpoint_path(data_dir, id);
    let meta = f.metadata().ok();
    let (dev, ino, len) = meta.map_or((0, 0, 0), |m| (m.dev(), m.ino(), m.len()));
    let fresh = Checkpoint {
        path: path.to_path_buf(),
        dev,
        ino,
        offset: 0,
    };
    let stored = match Checkpoint::read(&file) {
        Ok(c) => c,
        Err(e) => {
            let aside = durable::set_aside(&file);
            tracing::error!(source = %id, error = %e, set_aside = ?aside, "checkpoint unusable; reading from the start");
            errors.fetch_add(1, Ordering::Relaxed);
            None
        }
    };
    let cp = match stored {
        None => fresh.clone(),
        Some(c) if c.dev != dev || c.ino != ino => {
            tracing::warn!(source = %id, path = %path.display(), "the file is not the one checkpointed (rotated or replaced); reading from its start");
            fresh.clone()
        }
        Some(c) if c.offset > len => {
            tracing::warn!(source = %id, path = %path.display(), offset = c.offset, len, "the file is shorter than the checkpoint (truncated); reading from its start");
            fresh.clone()
        }
        Some(c) => c,
    };
    if cp.offset > 0 {
        if let Err(e) = f.seek(SeekFrom::Start(cp.offset)) {
            tracing::error!(source = %id, error = %e, "cannot seek to the checkpoint; reading from the start");
            return (fresh, file);
        }
        tracing::info!(source = %id, offset = cp.offset, "resuming from checkpoint");
    }
    (cp, file)
}
