//! What one instance of the rule made of its input in this run: counters
//! it logs once, at its end (the final flush, or the snapshot at a
//! shutdown), through the host's log import. That line is the rule's part
//! of the run summary; a warning goes with it when the rule could read
//! none of the events it was given (no preset matched). Counting here
//! keeps the contract as it is: the host prints what the rule logs, per
//! instance (`<transform>`, `<transform>@1` ... for further workers).

use rulebox_plugin::abi::LogLevel;

use crate::config::Stage;
use crate::raw::Format;

/// Counters of one instance's run (not saved with its state: a run's
/// summary counts that run).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Events given to the rule (stages `all` and `classify`).
    pub read: u64,
    /// Of those, events with a readable destination: they got the label
    /// object.
    pub labelled: u64,
    /// Of those, events counted (spec §2), late ones included.
    pub counted: u64,
    /// Of those, events whose time could not be read (spec §3).
    pub untimed: u64,
    /// Stage `aggregate`: observation records aggregated.
    pub observations: u64,
    /// Raw records read, per format (spec §6; `raw::Format` order).
    pub raw: [u64; 7],
}

impl Tally {
    /// The summary's log lines for `stage`; `late` and `foreign` (stage
    /// `aggregate`: lines that were not observation records) are this
    /// run's.
    pub fn summary(&self, stage: Stage, late: u64, foreign: u64) -> Vec<(LogLevel, String)> {
        let mut lines = Vec::new();
        let text = match stage {
            Stage::Aggregate => format!(
                "run summary: observations={} not_observations={foreign} late={late}",
                self.observations
            ),
            Stage::All | Stage::Classify => {
                let late = match stage {
                    Stage::All => format!(" late={late}"),
                    _ => String::new(),
                };
                let mut raw = String::new();
                for (f, n) in Format::ALL.iter().zip(self.raw) {
                    if n > 0 {
                        raw.push_str(&format!(" raw_{}={n}", f.name()));
                    }
                }
                format!(
                    "run summary: events_read={} labelled={} counted={} without_destination={}{late} unreadable_time={}{raw}",
                    self.read,
                    self.labelled,
                    self.counted,
                    self.read - self.labelled,
                    self.untimed
                )
            }
        };
        lines.push((LogLevel::Info, text));
        if stage != Stage::Aggregate && self.read > 0 && self.labelled == 0 {
            lines.push((
                LogLevel::Warn,
                format!(
                    "none of the {} events read had a destination this rule can read: no preset or raw format matched them (not JSON objects nor lines of a raw format turned on, or none of the fields that schema, fields and event_path name)",
                    self.read
                ),
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_per_stage_and_a_warning_when_nothing_was_readable() {
        let t = Tally {
            read: 10,
            labelled: 7,
            counted: 3,
            untimed: 1,
            observations: 0,
            raw: [0, 0, 2, 0, 0, 0, 0],
        };
        let all = t.summary(Stage::All, 2, 0);
        assert_eq!(
            all,
            [(
                LogLevel::Info,
                "run summary: events_read=10 labelled=7 counted=3 without_destination=3 late=2 unreadable_time=1 raw_cef=2".to_string()
            )]
        );
        let classify = t.summary(Stage::Classify, 0, 0);
        assert!(!classify[0].1.contains("late"), "{classify:?}");
        let none = Tally {
            read: 4,
            ..Tally::default()
        };
        let lines = none.summary(Stage::All, 0, 0);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].0, LogLevel::Warn);
        assert!(lines[1].1.contains("none of the 4 events"), "{lines:?}");
        assert!(
            Tally::default().summary(Stage::All, 0, 0).len() == 1,
            "no input, no warning"
        );
        let agg = Tally {
            observations: 5,
            ..Tally::default()
        };
        assert_eq!(
            agg.summary(Stage::Aggregate, 1, 2)[0].1,
            "run summary: observations=5 not_observations=2 late=1"
        );
    }
}
