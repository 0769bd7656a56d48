//! What a finished run counted, for the exit summary and the exit code.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::Registry;
use crate::sinks::SinkStats;
use crate::sources::SourceStats;
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
