//! What survives a restart: file-source checkpoints and plugin state
//! snapshots, both under `data_dir`, both written atomically (temporary
//! file, fsync, rename, fsync of the folder), so a crash at any moment
//! leaves the old file or the new one, never half of one.
//!
//! Delivery tracking: each batch a checkpointed source reads carries an
//! [`Ack`] (its sequence number and the file offset after it). Copies of the
//! `Ack` travel with the events through transforms to sinks; a sink lets go
//! of its copy only once the events are written out (`write(2)` returned).
//! When the last copy is gone the batch is done, and [`Progress`] advances
//! the committed offset over every batch done in sequence. A batch that a
//! sink failed to write marks its `Ack` failed: the offset then stops
//! advancing for the rest of the run, so a restart reads those events again
//! (at-least-once; duplicates are bounded by what was in flight plus one
//! checkpoint interval). Request-based sources (Splunk HEC, http) use the
//! same tokens in [`Ack::notify`] form: the request is answered once the
//! last copy is gone, with success only if no sink failed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

/// Holds `data_dir/rulebox.lock` (an advisory lock, released when the
/// process ends, however it ends): two instances on one `data_dir` would
/// share checkpoints, saved state and the module cache. The file names the
/// holder's pid.
pub fn lock_data_dir(dir: &Path) -> Result<std::fs::File, String> {
    use std::io::Read;
    let path = dir.join("rulebox.lock");
    let open = std::fs::create_dir_all(dir).and_then(|_| {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
    });
    let mut f = open.map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match f.try_lock() {
        Ok(()) => {
            let _ = f
                .set_len(0)
                .and_then(|_| write!(f, "{}", std::process::id()));
            Ok(f)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            Err(format!(
                "data_dir {} is in use by another rulebox (pid {}): give each instance a data_dir of its own",
                dir.display(),
                pid.trim()
            ))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// Writes `data` to `path` atomically.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable once the folder is synced.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Renames a file that cannot be used to `<name>.rejected-<unix seconds>`,
/// keeping it for inspection; returns the new name.
pub fn set_aside(path: &Path) -> Option<PathBuf> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = path.file_name()?.to_os_string();
    name.push(format!(".rejected-{secs}"));
    let to = path.with_file_name(name);
    std::fs::rename(path, &to).ok().map(|_| to)
}

/// The position of a file source, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub path: PathBuf,
    /// Device and inode of the file read: a rotated or replaced file is read
    /// from its start.
    pub dev: u64,
    pub ino: u64,
    /// Bytes of the file whose events every sink has written.
    pub offset: u64,
}

pub fn checkpoint_path(data_dir: &Path, source: &str) -> PathBuf {
    data_dir.join("checkpoints").join(format!("{source}.json"))
}

impl Checkpoint {
    /// The stored checkpoint; `Ok(None)` when there is none. A damaged file
    /// is an error (the caller sets it aside and reads from the start).
    pub fn read(path: &Path) -> Result<Option<Checkpoint>, String> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| format!("damaged checkpoint {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read checkpoint {}: {e}", path.display())),
        }
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        write_atomic(path, &json)
    }
}

/// Batches of one source done (written by every sink), in sequence.
#[derive(Debug)]
pub struct Progress {
    inner: Mutex<ProgressInner>,
    origin: Option<Position>,
}

#[derive(Debug)]
struct ProgressInner {
    next: u64,
    done: BTreeMap<u64, (u64, bool)>,
    committed: u64,
    stalled: bool,
}

impl Progress {
    /// Starts at `offset` (where reading resumes).
    pub fn new(offset: u64) -> Arc<Progress> {
        Progress::of_file(offset, None)
    }

    /// [`Progress::new`] for the file `origin` (its source, device and
    /// inode; the offset is left 0): saved state names it in its positions.
    pub fn of_file(offset: u64, origin: Option<Position>) -> Arc<Progress> {
        Arc::new(Progress {
            inner: Mutex::new(ProgressInner {
                next: 0,
                done: BTreeMap::new(),
                committed: offset,
                stalled: false,
            }),
            origin,
        })
    }

    /// The file this progress is through, if known.
    pub fn origin(&self) -> Option<&Position> {
        self.origin.as_ref()
    }

    /// The offset up to which every event is written, and whether a failed
    /// write stopped it.
    pub fn committed(&self) -> (u64, bool) {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (g.committed, g.stalled)
    }

    fn done(&self, seq: u64, end: u64, failed: bool) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.done.insert(seq, (end, failed));
        while !g.stalled {
            let next = g.next;
            let Some((end, failed)) = g.done.remove(&next) else {
                break;
            };
            if failed {
                g.stalled = true;
                tracing::error!(
                    offset = g.committed,
                    "a sink failed to write events: the checkpoint stays here for this run, so a restart reads them again"
                );
                break;
            }
            g.committed = end;
            g.next += 1;
        }
    }
}

/// A delivery token: a source batch's place in its file, or a request
/// waiting for its events to be written (the HEC and http sources answer
/// only then); see the module docs.
pub struct Ack {
    to: AckTo,
    failed: AtomicBool,
    /// Why the events were not written, when a sink said (for the answer
    /// to a request).
    why: std::sync::Mutex<Option<String>>,
}

/// What a [`Ack::notify`] token is told: written, or not (and why, when a
/// sink said).
pub type Outcome = Result<(), Option<String>>;

enum AckTo {
    Offset {
        progress: Arc<Progress>,
        seq: u64,
        end: u64,
    },
    /// Told `Ok` once every copy is written, `Err` if one failed.
    Notify(Option<tokio::sync::oneshot::Sender<Outcome>>),
}

impl Ack {
    pub fn new(progress: Arc<Progress>, seq: u64, end: u64) -> Arc<Ack> {
        Arc::new(Ack {
            to: AckTo::Offset { progress, seq, end },
            failed: AtomicBool::new(false),
            why: std::sync::Mutex::new(None),
        })
    }

    /// A token whose outcome arrives on the returned receiver.
    pub fn notify() -> (Arc<Ack>, tokio::sync::oneshot::Receiver<Outcome>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ack = Arc::new(Ack {
            to: AckTo::Notify(Some(tx)),
            failed: AtomicBool::new(false),
            why: std::sync::Mutex::new(None),
        });
        (ack, rx)
    }

    /// The events were not written: the offset must not pass them.
    pub fn fail(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    /// The progress and the end offset of the batch this token stands for
    /// (a checkpointed source's batch).
    pub fn position(&self) -> Option<(&Arc<Progress>, u64)> {
        match &self.to {
            AckTo::Offset { progress, end, .. } => Some((progress, *end)),
            AckTo::Notify(_) => None,
        }
    }

    /// [`Ack::fail`], saying why (the first reason given is kept).
    pub fn fail_because(&self, why: &str) {
        if let Ok(mut w) = self.why.lock() {
            w.get_or_insert_with(|| why.to_string());
        }
        self.fail();
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        let failed = self.failed.load(Ordering::Relaxed);
        match &mut self.to {
            AckTo::Offset { progress, seq, end } => progress.done(*seq, *end, failed),
            AckTo::Notify(tx) => {
                if let Some(tx) = tx.take() {
                    let why = self.why.lock().ok().and_then(|mut w| w.take());
                    // The requester may have given up waiting.
                    let _ = tx.send(if failed { Err(why) } else { Ok(()) });
                }
            }
        }
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.to {
            AckTo::Offset { seq, end, .. } => write!(f, "Ack({seq}@{end})"),
            AckTo::Notify(_) => write!(f, "Ack(notify)"),
        }
    }
}

/// Plugin state as stored: the plugin's bytes in a checked envelope, so a
/// damaged file is caught before any plugin sees it, with the file-source
/// positions the state covers (every line before them is counted in it,
/// and written by every sink).
///
/// ```text
/// "RBSTATE2", u64 length, u64 FNV-1a of the payload, the payload:
///     u32 n, n bytes of JSON (the positions), the plugin's bytes
/// "RBSTATE1", u64 length, u64 FNV-1a of the bytes, the bytes   (no positions)
/// ```
pub mod snapshot {
    use std::path::{Path, PathBuf};

    use super::Position;

    const MAGIC: &[u8; 8] = b"RBSTATE2";
    const MAGIC_V1: &[u8; 8] = b"RBSTATE1";

    pub fn path(data_dir: &Path, transform: &str) -> PathBuf {
        data_dir.join("state").join(format!("{transform}.snapshot"))
    }

    fn fnv1a(data: &[u8]) -> u64 {
        data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    pub fn encode(state: &[u8], positions: &[Position]) -> Vec<u8> {
        let json = serde_json::to_vec(positions).unwrap_or_else(|_| b"[]".to_vec());
        let mut payload = Vec::with_capacity(state.len() + json.len() + 4);
        payload.extend_from_slice(&(json.len() as u32).to_le_bytes());
        payload.extend_from_slice(&json);
        payload.extend_from_slice(state);
        let mut out = Vec::with_capacity(payload.len() + 24);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&fnv1a(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// The plugin's bytes, and the positions they cover (none in a file
    /// written before positions were kept).
    pub fn decode(file: &[u8]) -> Result<(&[u8], Vec<Position>), String> {
        let v1 = file.get(..8) == Some(&MAGIC_V1[..]);
        let payload = checked(file, if v1 { MAGIC_V1 } else { MAGIC })?;
        if v1 {
            return Ok((payload, Vec::new()));
        }
        let n = payload
            .get(..4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let json = payload
            .get(4..4 + n as usize)
            .ok_or("state file positions cut short")?;
        let positions =
            serde_json::from_slice(json).map_err(|e| format!("state file positions: {e}"))?;
        Ok((&payload[4 + n as usize..], positions))
    }

    /// The payload of an envelope whose magic is `magic`, checked.
    fn checked<'a>(file: &'a [u8], magic: &[u8; 8]) -> Result<&'a [u8], String> {
        if file.len() < 24 || &file[..8] != magic {
            return Err("not a rulebox state file".into());
        }
        let u = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&file[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let state = &file[24..];
        if u(8) != state.len() as u64 {
            return Err(format!(
                "state file holds {} bytes, its header says {}",
                state.len(),
                u(8)
            ));
        }
        if u(16) != fnv1a(state) {
            return Err("state file checksum mismatch (damaged)".into());
        }
        Ok(state)
    }

    /// The positions every snapshot under `data_dir` holds for file source
    /// `source` (a file that cannot be read or decoded holds none: its
    /// transform sets it aside when it restores).
    pub fn positions_for(data_dir: &Path, source: &str) -> Vec<Position> {
        let Ok(dir) = std::fs::read_dir(data_dir.join("state")) else {
            return Vec::new();
        };
        dir.filter_map(|e| std::fs::read(e.ok()?.path()).ok())
            .filter_map(|f| decode(&f).ok().map(|(_, p)| p))
            .flatten()
            .filter(|p| p.source == source)
            .collect()
    }
}

/// Where a file source's lines stand in a plugin's saved state: every line
/// of the file (`dev`, `ino`) before `offset` is counted in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub source: String,
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_advances_only_over_batches_done_in_sequence() {
        let p = Progress::new(100);
        let a0 = Ack::new(p.clone(), 0, 150);
        let a1 = Ack::new(p.clone(), 1, 200);
        let a2 = Ack::new(p.clone(), 2, 260);
        let copy = a1.clone();
        drop(a1);
        assert_eq!(p.committed(), (100, false), "1 is still held, 0 not done");
        drop(a0);
        assert_eq!(p.committed(), (150, false));
        drop(copy);
        assert_eq!(p.committed(), (200, false));
        a2.fail();
        drop(a2);
        let a3 = Ack::new(p.clone(), 3, 300);
        drop(a3);
        assert_eq!(p.committed(), (200, true), "a failed batch stops it");
    }

    #[test]
    fn snapshot_envelope_catches_damage() {
        let at = Position {
            source: "in".into(),
            dev: 1,
            ino: 2,
            offset: 3,
        };
        let file = snapshot::encode(b"state bytes", std::slice::from_ref(&at));
        let (state, positions) = snapshot::decode(&file).unwrap();
        assert_eq!((state, positions), (&b"state bytes"[..], vec![at]));
        // Written before positions were kept: still read.
        let mut v1 = b"RBSTATE1".to_vec();
        v1.extend_from_slice(&2u64.to_le_bytes());
        v1.extend_from_slice(&[0; 8]);
        v1.extend_from_slice(b"ab");
        let fnv = b"ab".iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
        });
        v1[16..24].copy_from_slice(&fnv.to_le_bytes());
        assert_eq!(snapshot::decode(&v1).unwrap(), (&b"ab"[..], vec![]));
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 1;
            assert!(snapshot::decode(&bad).is_err(), "flip at {i}");
        }
        assert!(snapshot::decode(&file[..file.len() - 1]).is_err());
        assert!(snapshot::decode(b"").is_err());
    }

    #[test]
    fn atomic_write_replaces_whole_files() {
        let dir = std::env::temp_dir().join(format!("rb-durable-{}", std::process::id()));
        let p = dir.join("sub").join("c.json");
        let c = Checkpoint {
            path: "/x".into(),
            dev: 1,
            ino: 2,
            offset: 3,
        };
        c.write(&p).unwrap();
        assert_eq!(Checkpoint::read(&p).unwrap(), Some(c));
        std::fs::write(&p, b"{half").unwrap();
        assert!(Checkpoint::read(&p).is_err());
        let aside = set_aside(&p).unwrap();
        assert!(aside.to_string_lossy().contains("c.json.rejected-"));
        assert_eq!(Checkpoint::read(&p).unwrap(), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
