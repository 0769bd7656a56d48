//! The `file` sink: NDJSON lines appended to a file (or replacing it at
//! start with `append = false`).

use std::io::Write;
use std::path::PathBuf;

use serde::Deserialize;

use super::component::{Sink, SinkContext};
use super::writer::sink_loop;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub inputs: Vec<String>,
    pub path: PathBuf,
    /// Append to an existing file (the default: a restart resuming from a
    /// checkpoint must not erase what was written) or, when false,
    /// replace it at start.
    #[serde(default = "default_true")]
    pub append: bool,
}

fn default_true() -> bool {
    true
}

impl Sink for FileConfig {
    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    fn start(&self, cx: SinkContext) -> tokio::task::JoinHandle<()> {
        let path = cx.paths.resolve(&self.path);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let writer = open_file_sink(&cx.id, &path, self.append)
            .map(|f| Box::new(f) as Box<dyn Write + Send>);
        let SinkContext { id, rx, stats, .. } = cx;
        tokio::task::spawn_blocking(move || sink_loop(&id, writer, rx, &stats, None))
    }
}

/// Opens a file sink. Appending to a file whose last line was cut short
/// (a run killed mid-write) first ends that line, so the next event starts
/// on a line of its own.
fn open_file_sink(
    id: &str,
    path: &std::path::Path,
    append: bool,
) -> std::io::Result<std::fs::File> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)?;
    if append && f.metadata()?.len() > 0 {
        let mut last = [0u8];
        f.seek(SeekFrom::End(-1))?;
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            tracing::warn!(sink = %id, path = %path.display(), "output ends in a partial line (an earlier run was killed mid-write); ending it before appending");
            f.write_all(b"\n")?;
        }
    }
    Ok(f)
}

