//! A network sink's spool: the bodies it could not deliver before a
//! shutdown's grace ran out, kept durably in `data_dir/spool/<sink>/` (one
//! file a body, uncompressed, fsynced) and delivered first at the next
//! start, oldest first, each file removed once delivered. Nothing waits
//! past the shutdown's budget and nothing is lost to it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::durable::write_atomic;

/// One sink's spool folder.
pub struct Spool {
    dir: PathBuf,
    /// Times the folder was listed ([`Spool::pending`]).
    #[cfg(test)]
    pub(super) listed: AtomicU64,
}

/// A body waiting in the spool.
pub struct Kept {
    pub path: PathBuf,
    pub events: usize,
}

/// Orders bodies kept within one run (the time orders them across runs).
static SEQ: AtomicU64 = AtomicU64::new(0);

impl Spool {
    pub fn new(data_dir: &Path, sink: &str) -> Spool {
        Spool {
            dir: data_dir.join("spool").join(sink),
            #[cfg(test)]
            listed: AtomicU64::new(0),
        }
    }

    #[cfg(test)]
    fn dir(&self) -> &Path {
        &self.dir
    }

    /// Keeps `body` (of `events` events) durably; its file's name sorts
    /// after every body kept before: `<unix µs>-<seq>-<events>.body`.
    pub fn keep(&self, body: &[u8], events: usize) -> std::io::Result<PathBuf> {
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let path = self
            .dir
            .join(format!("{micros:020}-{seq:010}-{events}.body"));
        write_atomic(&path, body)?;
        Ok(path)
    }

    /// The bodies kept, oldest first. A file whose name is not one of
    /// ours (a leftover temporary file, say), and anything not a plain
    /// file (a folder, a link), is left alone.
    pub fn pending(&self) -> Vec<Kept> {
        #[cfg(test)]
        self.listed.fetch_add(1, Ordering::Relaxed);
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut kept: Vec<Kept> = entries
            .filter_map(|e| {
                let e = e.ok()?;
                if !e.file_type().ok()?.is_file() {
                    return None;
                }
                let path = e.path();
                let events = events_in_name(&path)?;
                Some(Kept { path, events })
            })
            .collect();
        kept.sort_by(|a, b| a.path.cmp(&b.path));
        kept
    }
}

/// The event count in a kept body's file name, if it is one.
fn events_in_name(path: &Path) -> Option<usize> {
    let name = path.file_name()?.to_str()?.strip_suffix(".body")?;
    let mut parts = name.split('-');
    let (time, seq, events) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (parts.next().is_none() && digits(time) && digits(seq))
        .then(|| events.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_come_back_oldest_first_and_strangers_are_left_alone() {
        let dir = std::env::temp_dir().join(format!("rulebox-spool-{}", std::process::id()));
        let spool = Spool::new(&dir, "out");
        assert!(spool.pending().is_empty());
        spool.keep(b"a\n", 1).unwrap();
        spool.keep(b"b\nc\n", 2).unwrap();
        std::fs::write(spool.dir().join("note.txt"), "x").unwrap();
        std::fs::write(spool.dir().join("1-2.body"), "x").unwrap();
        let folder = spool.dir().join("00000000000000000000-0000000000-1.body");
        std::fs::create_dir(&folder).unwrap();
        let kept = spool.pending();
        let got: Vec<(Vec<u8>, usize)> = kept
            .iter()
            .map(|k| (std::fs::read(&k.path).unwrap(), k.events))
            .collect();
        assert_eq!(got, [(b"a\n".to_vec(), 1), (b"b\nc\n".to_vec(), 2)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
