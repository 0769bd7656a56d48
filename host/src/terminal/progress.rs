//! The progress line: while a pipeline runs with stderr on a terminal, one
//! line at the bottom says how far it is — events, events/s, bytes, and
//! for sources reading files whose size is known, the share done and the
//! time left. Log lines clear it before they are written ([`LogWriter`])
//! and it is drawn again at the next tick. It is never drawn when stderr is
//! not a terminal (a file, a pipe, journald, rsyslog's mmexternal), nor
//! with `--log-file`, nor when a `stdout` sink prints to the same terminal.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::metrics::Registry;
use crate::sources::SourceStats;

use super::table;

/// Whether the progress line may be drawn (set once, by the command line).
static ENABLED: AtomicBool = AtomicBool::new(false);
/// Whether a progress line is on the screen now.
static SHOWN: AtomicBool = AtomicBool::new(false);
/// Serialises the progress line and log lines on stderr.
static STDERR: Mutex<()> = Mutex::new(());

/// How often the line is drawn.
const TICK: Duration = Duration::from_millis(500);

/// Turns the progress line on for this process: the command line calls it
/// when stderr is a terminal and logs go there.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// The running progress line; [`Line::finish`] clears it.
pub struct Line {
    task: tokio::task::JoinHandle<()>,
}

/// Starts the progress line for the sources of `registry` (none unless
/// [`enable`]d, nor when the pipeline `prints_stdout` to a terminal: its
/// lines would run into the progress line).
pub fn start(registry: &Registry, prints_stdout: bool) -> Option<Line> {
    let stdout_shared = prints_stdout && std::io::stdout().is_terminal();
    if !ENABLED.load(Ordering::Relaxed) || stdout_shared {
        return None;
    }
    let watched: Vec<Arc<SourceStats>> =
        (registry.sources.iter()).map(|s| s.stats.clone()).collect();
    Some(Line {
        task: tokio::spawn(draw_loop(watched)),
    })
}

impl Line {
    /// Stops drawing and clears the line.
    pub fn finish(self) {
        self.task.abort();
        let _guard = STDERR.lock();
        clear(&mut std::io::stderr().lock());
    }
}

async fn draw_loop(watched: Vec<Arc<SourceStats>>) {
    let start = Instant::now();
    let mut rate = Rate::default();
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        let now = Now::of(&watched);
        let per_sec = rate.update(now.events, now.bytes, start.elapsed());
        let text = render(&now, per_sec);
        let _guard = STDERR.lock();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{text}");
        let _ = err.flush();
        SHOWN.store(true, Ordering::Relaxed);
    }
}

/// The sources' totals at one moment.
#[derive(Debug, Default, PartialEq)]
struct Now {
    events: u64,
    bytes: u64,
    /// Bytes read of the inputs and their sizes, when every source reads
    /// an input of known size (a file read once).
    files: Option<(u64, u64)>,
}

impl Now {
    fn of(watched: &[Arc<SourceStats>]) -> Now {
        let mut now = Now {
            files: Some((0, 0)),
            ..Now::default()
        };
        for w in watched {
            now.events += w.events.load(Ordering::Relaxed);
            now.bytes += w.bytes.load(Ordering::Relaxed);
            let size = w.input_size.load(Ordering::Relaxed);
            let read = w.input_read.load(Ordering::Relaxed).min(size);
            now.files = match now.files {
                Some((r, t)) if size > 0 => Some((r + read, t + size)),
                _ => None,
            };
        }
        now
    }
}

/// Events and bytes per second, smoothed over the last few ticks.
#[derive(Debug, Default)]
struct Rate {
    last: Option<(Duration, u64, u64)>,
    events: f64,
    bytes: f64,
}

impl Rate {
    /// The rates after a reading at `at` (events, bytes per second).
    fn update(&mut self, events: u64, bytes: u64, at: Duration) -> (f64, f64) {
        if let Some((t, e, b)) = self.last {
            let dt = (at - t).as_secs_f64().max(1e-3);
            let e_now = events.saturating_sub(e) as f64 / dt;
            let b_now = bytes.saturating_sub(b) as f64 / dt;
            let first = self.events == 0.0 && self.bytes == 0.0;
            let keep = if first { 0.0 } else { 0.6 };
            self.events = keep * self.events + (1.0 - keep) * e_now;
            self.bytes = keep * self.bytes + (1.0 - keep) * b_now;
        }
        self.last = Some((at, events, bytes));
        (self.events, self.bytes)
    }
}

/// The line's text.
fn render(now: &Now, (events_per_sec, bytes_per_sec): (f64, f64)) -> String {
    let mut s = format!(
        "{} events  {}  {}",
        table::count(now.events),
        table::rate(events_per_sec),
        table::bytes(now.bytes)
    );
    if let Some((done, total)) = now.files.filter(|&(_, t)| t > 0) {
        let pct = done as f64 * 100.0 / total as f64;
        s.push_str(&format!("  {pct:.0}%"));
        if bytes_per_sec > 0.0 && done < total {
            let left = (total - done) as f64 / bytes_per_sec;
            s.push_str(&format!("  ETA {}", clock(left)));
        }
    }
    s
}

/// Seconds as `m:ss` (or `h:mm:ss`).
fn clock(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        s if s >= 3600 => format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60),
        s => format!("{}:{:02}", s / 60, s % 60),
    }
}

fn clear(w: &mut impl Write) {
    if SHOWN.swap(false, Ordering::Relaxed) {
        let _ = w.write_all(b"\r\x1b[2K");
    }
}

/// The log's writer on stderr: it clears the progress line (when one is
/// shown) before each log line, so the two never share a line.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _guard = STDERR.lock();
        let mut err = std::io::stderr().lock();
        clear(&mut err);
        err.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_how_far_and_how_long() {
        let now = Now {
            events: 1_500_000,
            bytes: 750 << 20,
            files: Some((750 << 20, 1000 << 20)),
        };
        let line = render(&now, (600_000.0, (250 << 20) as f64));
        assert_eq!(line, "1,500,000 events  600k/s  750.0 MiB  75%  ETA 0:01");
        let stdin = Now {
            events: 12,
            bytes: 900,
            files: None,
        };
        assert_eq!(render(&stdin, (3.0, 10.0)), "12 events  3/s  900 B");
    }

    #[test]
    fn rates_are_smoothed_between_readings() {
        let mut r = Rate::default();
        assert_eq!(r.update(0, 0, Duration::ZERO), (0.0, 0.0));
        assert_eq!(r.update(100, 1000, Duration::from_secs(1)), (100.0, 1000.0));
        let (e, _) = r.update(100, 1000, Duration::from_secs(2));
        assert!((e - 60.0).abs() < 1e-9, "{e}");
        assert_eq!(clock(75.0), "1:15");
        assert_eq!(clock(3725.0), "1:02:05");
    }
}
