//! What a finished run counted, for the exit summary and the exit code.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::metrics::Registry;
use crate::sinks::SinkStats;
use crate::sources::SourceStats;
use crate::terminal::table::{self, Table};
use crate::transforms::wasm::TransformStats;

/// Counters of a run: the components' shared counters (read once it is
/// finished) and what the topology itself counted.
#[derive(Debug, Default)]
pub struct Summary {
    /// Per source: its events and other counters (events lost before it
    /// could read them count as errors).
    pub sources: BTreeMap<String, Arc<SourceStats>>,
    /// Per source, problems while running.
    pub source_errors: BTreeMap<String, Arc<AtomicU64>>,
    pub transforms: BTreeMap<String, Arc<TransformStats>>,
    pub sinks: BTreeMap<String, Arc<SinkStats>>,
    /// Snapshots and checkpoints that could not be written or read.
    pub state_errors: u64,
    /// The `[api]` endpoint could not listen.
    pub api_errors: u64,
    /// Transforms whose plugin ended the run quarantined.
    pub quarantined: Vec<String>,
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Summary {
    /// Takes the running components' counters (shared, not copied).
    pub fn fill(&mut self, r: &Registry) {
        for s in &r.sources {
            self.sources.insert(s.id.clone(), s.stats.clone());
            self.source_errors.insert(s.id.clone(), s.errors.clone());
        }
        for (id, t, _) in &r.transforms {
            self.transforms.insert(id.clone(), t.clone());
        }
        for (id, k, _) in &r.sinks {
            self.sinks.insert(id.clone(), k.clone());
        }
    }

    pub fn events_in(&self) -> u64 {
        self.sources.values().map(|s| get(&s.events)).sum()
    }

    pub fn errors(&self) -> u64 {
        self.source_errors.values().map(|e| get(e)).sum::<u64>()
            + self.sources.values().map(|s| get(&s.lost)).sum::<u64>()
            + self.state_errors
            + self.api_errors
            + self.quarantined.len() as u64
            + self
                .sinks
                .values()
                .map(|s| get(&s.write_errors))
                .sum::<u64>()
    }
}

/// The process's peak resident memory (Linux: VmHWM), KiB; 0 if unknown.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// The summary as a person at a terminal reads it: a table per kind of
/// component and a closing line, for a run that took `took` (elsewhere it
/// is logged as key=value lines, which journald and log files want).
pub fn table(s: &Summary, took: Duration, peak_rss_kib: u64) -> String {
    let mut out = String::new();
    for t in [sources_table(s), transforms_table(s), sinks_table(s)] {
        if !t.is_empty() {
            out.push_str(&t.render());
            out.push('\n');
        }
    }
    let secs = took.as_secs_f64();
    let events = s.events_in();
    out.push_str(&format!(
        "{} events in {secs:.2} s ({}), {} errors, peak memory {}\n",
        table::count(events),
        table::rate(events as f64 / secs.max(1e-3)),
        table::count(s.errors()),
        table::bytes(peak_rss_kib * 1024),
    ));
    out
}

fn sources_table(s: &Summary) -> Table {
    let head = [
        "SOURCE",
        "EVENTS#",
        "BYTES#",
        "LOST#",
        "OVERSIZE#",
        "REFUSED#",
        "ERRORS#",
    ];
    let mut sources = Table::new(&head);
    for (id, st) in &s.sources {
        let errors = s.source_errors.get(id).map_or(0, |e| get(e));
        sources.row(vec![
            id.clone(),
            table::count(get(&st.events)),
            table::bytes(get(&st.bytes)),
            table::count(get(&st.lost)),
            table::count(get(&st.oversize)),
            table::count(
                get(&st.refused_tls) + get(&st.refused_unauthorized) + get(&st.refused_malformed),
            ),
            table::count(errors),
        ]);
    }
    sources
}

fn transforms_table(s: &Summary) -> Table {
    let mut transforms = Table::new(&[
        "TRANSFORM",
        "IN#",
        "OUT#",
        "RECORDS#",
        "UNREAD#",
        "FAILED CALLS#",
        "RESTARTS#",
        "DEAD LETTERS#",
        "DROPPED#",
        "PLUGIN TIME#",
    ]);
    for (id, t) in &s.transforms {
        let unread =
            get(&t.malformed) + get(&t.not_object) + get(&t.oversize) + get(&t.invalid_utf8);
        let mut name = id.clone();
        if get(&t.quarantined) > 0 {
            name.push_str(" (QUARANTINED)");
        }
        transforms.row(vec![
            name,
            table::count(get(&t.events_in)),
            table::count(get(&t.events_out)),
            table::count(get(&t.records)),
            table::count(unread),
            table::count(get(&t.plugin_failures)),
            table::count(get(&t.restarts)),
            table::count(get(&t.dead_lettered)),
            table::count(get(&t.dropped) + get(&t.error_dropped)),
            format!("{:.2} s", get(&t.plugin_time_us) as f64 / 1e6),
        ]);
    }
    transforms
}

fn sinks_table(s: &Summary) -> Table {
    let head = [
        "SINK",
        "EVENTS#",
        "BYTES#",
        "ERRORS#",
        "RETRIES#",
        "SPOOLED#",
        "BUFFER DROPPED#",
    ];
    let mut sinks = Table::new(&head);
    for (id, k) in &s.sinks {
        sinks.row(vec![
            id.clone(),
            table::count(get(&k.events)),
            table::bytes(get(&k.bytes)),
            table::count(get(&k.write_errors)),
            table::count(get(&k.retries)),
            table::count(get(&k.spooled)),
            table::count(get(&k.buffer_dropped)),
        ]);
    }
    sinks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_table_a_kind_and_a_closing_line() {
        let mut s = Summary::default();
        let src = Arc::new(crate::sources::SourceStats::default());
        src.events.store(3000, Ordering::Relaxed);
        src.refused_unauthorized.store(2, Ordering::Relaxed);
        s.sources.insert("in".into(), src);
        let t = Arc::new(crate::transforms::wasm::TransformStats::default());
        t.events_in.store(3000, Ordering::Relaxed);
        t.malformed.store(4, Ordering::Relaxed);
        s.transforms.insert("t1071".into(), t);
        s.sinks.insert("out".into(), Arc::default());
        let text = table(&s, Duration::from_millis(1500), 2048);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("SOURCE") && lines[1].starts_with("in"),
            "{text}"
        );
        assert!(
            lines[1].contains("3,000") && lines[1].split_whitespace().rev().nth(1) == Some("2"),
            "{text}"
        );
        let t1071 = lines.iter().find(|l| l.starts_with("t1071")).unwrap();
        assert_eq!(t1071.split_whitespace().nth(4), Some("4"), "unread: {text}");
        assert!(
            text.ends_with("3,000 events in 1.50 s (2000/s), 0 errors, peak memory 2.0 MiB\n"),
            "{text}"
        );
    }
}
