//! The per-key byte sums in event-time tumbling windows (spec §3): a plain
//! state machine the rule feeds counted connections and asks for alert
//! rows. It does no I/O; its state is what the rule snapshots.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::fields::TIME_RANGE_MS;

/// Source, destination and destination port: what the sums are kept by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    pub src: IpAddr,
    pub dest: IpAddr,
    pub port: u16,
}

/// A key's figures in one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sum {
    pub count: u64,
    pub bytes: u64,
    pub first_ms: i64,
    pub last_ms: i64,
    /// `(count, bytes)` when an `open` alert last went out for it.
    pub alerted: Option<(u64, u64)>,
}

/// One alert's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub window_start_ms: i64,
    pub key: Key,
    pub sum: Sum,
}

/// What became of a counted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Summed,
    /// Its window had closed: not summed.
    Late,
    /// A new key at the `max_keys` cap: not summed.
    OverCap,
}

/// The open windows and the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Windows {
    pub window_ms: i64,
    pub lateness_ms: i64,
    pub threshold: u64,
    pub max_keys: usize,
    /// Window start (ms) -> its keys.
    open: BTreeMap<i64, BTreeMap<Key, Sum>>,
    keys: usize,
    /// The latest event time of a counted connection (None before one).
    clock: Option<i64>,
    pub late: u64,
    pub over_cap: u64,
}

impl Windows {
    pub fn new(window_ms: i64, lateness_ms: i64, threshold: u64, max_keys: usize) -> Windows {
        Windows {
            window_ms,
            lateness_ms,
            threshold,
            max_keys,
            open: BTreeMap::new(),
            keys: 0,
            clock: None,
            late: 0,
            over_cap: 0,
        }
    }

    /// Adds a counted connection at `time_ms` (`None`: unreadable, placed at
    /// the clock, or at `now_ms` before there is one, and not moving it).
    pub fn add(&mut self, time_ms: Option<i64>, now_ms: i64, key: Key, bytes: u64) -> Added {
        let at = match time_ms {
            Some(t) => {
                self.clock = Some(self.clock.map_or(t, |c| c.max(t)));
                t
            }
            None => self.clock.unwrap_or(now_ms),
        };
        let start = at.div_euclid(self.window_ms) * self.window_ms;
        if self.closed(start) {
            self.late += 1;
            return Added::Late;
        }
        let window = self.open.entry(start).or_default();
        if let Some(s) = window.get_mut(&key) {
            s.count += 1;
            s.bytes = s.bytes.saturating_add(bytes);
            s.first_ms = s.first_ms.min(at);
            s.last_ms = s.last_ms.max(at);
            return Added::Summed;
        }
        if self.keys >= self.max_keys {
            self.over_cap += 1;
            if window.is_empty() {
                self.open.remove(&start);
            }
            return Added::OverCap;
        }
        self.keys += 1;
        window.insert(
            key,
            Sum {
                count: 1,
                bytes,
                first_ms: at,
                last_ms: at,
                alerted: None,
            },
        );
        Added::Summed
    }

    /// Whether the window starting at `start` has closed: the clock reached
    /// its end plus the allowed lateness.
    fn closed(&self, start: i64) -> bool {
        self.clock
            .is_some_and(|c| start + self.window_ms + self.lateness_ms <= c)
    }

    /// Closes every window the clock has passed (`all`: every window), in
    /// start order; the rows over the threshold, for `final` alerts.
    pub fn close(&mut self, all: bool) -> Vec<Row> {
        let mut rows = Vec::new();
        while let Some((&start, _)) = self.open.first_key_value() {
            if !all && !self.closed(start) {
                break;
            }
            let keys = self.open.remove(&start).unwrap_or_default();
            self.keys -= keys.len();
            rows.extend(self.over(start, keys.into_iter()));
        }
        rows
    }

    /// The rows over the threshold in open windows whose figures changed
    /// since their last `open` alert, marked as alerted now.
    pub fn changed(&mut self) -> Vec<Row> {
        let threshold = self.threshold;
        let mut rows = Vec::new();
        for (&start, keys) in &mut self.open {
            let mut these = Vec::new();
            for (key, sum) in keys.iter_mut() {
                let now = (sum.count, sum.bytes);
                if sum.bytes > threshold && sum.alerted != Some(now) {
                    sum.alerted = Some(now);
                    these.push((*key, *sum));
                }
            }
            rows.extend(sorted_rows(start, these));
        }
        rows
    }

    fn over(&self, start: i64, keys: impl Iterator<Item = (Key, Sum)>) -> Vec<Row> {
        let these = keys.filter(|(_, s)| s.bytes > self.threshold).collect();
        sorted_rows(start, these)
    }

    pub fn open_keys(&self) -> usize {
        self.keys
    }

    /// The state to keep across a restart.
    pub fn state(&self) -> State {
        State {
            window_ms: self.window_ms,
            clock: self.clock,
            late: self.late,
            over_cap: self.over_cap,
            windows: (self.open.iter())
                .map(|(&start, keys)| (start, keys.iter().map(|(k, s)| (*k, *s)).collect()))
                .collect(),
        }
    }

    /// Takes a saved state. One from another window length is refused, as
    /// is one whose windows are not aligned to this length; at most
    /// `max_keys` keys are taken back (the rest are counted as over the cap).
    pub fn restore(&mut self, state: State) -> Result<(), String> {
        if state.window_ms != self.window_ms {
            return Err(format!(
                "the saved state has {} ms windows, the configuration {} ms",
                state.window_ms, self.window_ms
            ));
        }
        let mut open: BTreeMap<i64, BTreeMap<Key, Sum>> = BTreeMap::new();
        let mut keys = 0;
        let mut over_cap = state.over_cap;
        if state.clock.is_some_and(|c| !TIME_RANGE_MS.contains(&c)) {
            return Err("the saved state's clock is out of range".into());
        }
        for (start, sums) in state.windows {
            if start.rem_euclid(self.window_ms) != 0 || !TIME_RANGE_MS.contains(&start) {
                return Err(format!(
                    "the saved state has a window starting at {start} ms"
                ));
            }
            for (k, s) in sums {
                if ![s.first_ms, s.last_ms]
                    .iter()
                    .all(|t| TIME_RANGE_MS.contains(t))
                {
                    return Err("the saved state has a time out of range".into());
                }
                if keys >= self.max_keys {
                    over_cap += 1;
                    continue;
                }
                if open.entry(start).or_default().insert(k, s).is_none() {
                    keys += 1;
                }
            }
        }
        self.open = open;
        self.keys = keys;
        self.clock = state.clock;
        self.late = state.late;
        self.over_cap = over_cap;
        Ok(())
    }
}

/// Rows of one window, by bytes sent, descending (ties by key).
fn sorted_rows(start: i64, mut these: Vec<(Key, Sum)>) -> Vec<Row> {
    these.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(&b.0)));
    these
        .into_iter()
        .map(|(key, sum)| Row {
            window_start_ms: start,
            key,
            sum,
        })
        .collect()
}

/// [`Windows`] as saved: JSON, windows as lists (a key is no JSON string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub window_ms: i64,
    pub clock: Option<i64>,
    pub late: u64,
    pub over_cap: u64,
    pub windows: Vec<(i64, Vec<(Key, Sum)>)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN2: i64 = 120_000;

    fn key(port: u16) -> Key {
        Key {
            src: "10.0.0.5".parse().unwrap(),
            dest: "203.0.113.9".parse().unwrap(),
            port,
        }
    }

    #[test]
    fn a_window_closes_when_the_clock_passes_its_end_plus_lateness() {
        let mut w = Windows::new(MIN2, 60_000, 100, 10);
        assert_eq!(w.add(Some(0), 0, key(1), 101), Added::Summed);
        assert_eq!(w.add(Some(MIN2 + 59_999), 0, key(1), 1), Added::Summed);
        assert!(w.close(false).is_empty(), "one millisecond short");
        assert_eq!(w.add(Some(MIN2 + 60_000), 0, key(1), 1), Added::Summed);
        let rows = w.close(false);
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].sum.count, rows[0].sum.bytes), (1, 101));
        assert_eq!(w.add(Some(5), 0, key(1), 1), Added::Late);
        assert_eq!(w.late, 1);
        // The second window: 2 bytes, under the threshold.
        assert!(w.close(true).is_empty());
        assert_eq!(w.open_keys(), 0);
    }

    #[test]
    fn the_threshold_is_strict_and_new_keys_stop_at_the_cap() {
        let mut w = Windows::new(MIN2, 0, 100, 2);
        w.add(Some(0), 0, key(1), 100);
        w.add(Some(0), 0, key(2), 101);
        assert_eq!(w.add(Some(0), 0, key(3), 1000), Added::OverCap);
        assert_eq!(w.add(Some(1), 0, key(1), 0), Added::Summed);
        let rows = w.close(true);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].key, key(2));
        assert_eq!(w.over_cap, 1);
    }

    #[test]
    fn a_saved_state_round_trips_and_a_damaged_one_is_refused() {
        let mut w = Windows::new(MIN2, 0, 10, 10);
        w.add(Some(MIN2), 0, key(1), 11);
        let mut again = Windows::new(MIN2, 0, 10, 10);
        again.restore(w.state()).unwrap();
        assert_eq!(again, w);
        let mut far = w.state();
        far.windows[0].0 = i64::MAX - i64::MAX % MIN2;
        assert!(again.restore(far).is_err(), "a window near i64::MAX");
        let mut skewed = w.state();
        skewed.windows[0].0 += 1;
        assert!(again.restore(skewed).is_err(), "a window off the grid");
        let mut capped = Windows::new(MIN2, 0, 10, 0);
        capped.restore(w.state()).unwrap();
        assert_eq!((capped.open_keys(), capped.over_cap), (0, 1));
    }

    #[test]
    fn open_rows_repeat_only_when_their_figures_change() {
        let mut w = Windows::new(MIN2, 0, 10, 10);
        w.add(Some(0), 0, key(1), 11);
        assert_eq!(w.changed().len(), 1);
        assert!(w.changed().is_empty());
        w.add(Some(1), 0, key(1), 0);
        assert_eq!(w.changed()[0].sum.count, 2);
        // Unreadable times sit at the clock, and do not move it.
        w.add(None, 999_999_999, key(1), 0);
        assert_eq!(w.close(true)[0].sum.last_ms, 1);
    }
}
