//! What a finished run counted, for the exit summary and the exit code.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::sinks::SinkStats;
use crate::sources::SourceStats;
use crate::transforms::wasm::TransformStats;

/// Counters of a finished run.
#[derive(Debug, Default)]
pub struct Summary {
    pub sources: BTreeMap<String, u64>,
    /// Per source, its other counters (events lost before it could read
    /// them count as errors).
    pub source_stats: BTreeMap<String, Arc<SourceStats>>,
    pub transforms: BTreeMap<String, Arc<TransformStats>>,
    pub sinks: BTreeMap<String, Arc<SinkStats>>,
    pub source_errors: u64,
    /// Snapshots and checkpoints that could not be written or read.
    pub state_errors: u64,
    /// Transforms whose plugin ended the run quarantined.
    pub quarantined: Vec<String>,
}

impl Summary {
    pub fn events_in(&self) -> u64 {
        self.sources.values().sum()
    }

    pub fn errors(&self) -> u64 {
        self.source_errors
            + (self.source_stats.values())
                .map(|s| s.lost.load(Ordering::Relaxed))
                .sum::<u64>()
            + self.state_errors
            + self.quarantined.len() as u64
            + self
                .sinks
                .values()
                .map(|s| s.write_errors.load(Ordering::Relaxed))
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
