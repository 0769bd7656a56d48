//! A wasm transform as a plain state machine: `process` a batch, `tick`,
//! `flush`, `snapshot`/`restore`, each filling [`Outputs`]. No I/O and no
//! runtime here; the pipeline's async driver calls these, and tests call
//! them directly.
//!
//! Invariant: every input line leaves exactly once, or is counted as
//! dropped: edited or untouched on its output, or, when the plugin could not
//! process it, handled by the [`OnError`] policy (passed on untouched and
//! tagged, dropped and counted, or written to the `dead_letter` output with
//! the reason). So `events_in = events_out + dead_lettered + dropped +
//! error_dropped` at all times.
//!
//! A failed call (trap, deadline, bad frame) discards the instance; the next
//! call makes a fresh one from the compiled module. Failures in a row back
//! off (`backoff_initial` doubling up to `backoff_max`) and after
//! `quarantine_after` of them the plugin is quarantined: events keep flowing
//! under the policy and the plugin is never called again in this run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rulebox_abi::{Action, EventResult, FrameOutputs, Outcome, Reason, Refused, ResultFrame};
use serde::Deserialize;

use super::ahead::Ahead;
use super::call_stats::{CallTimes, FailureReasons};
use super::vouch::JsonCheck;
use crate::batch::Batch;
use crate::sandbox::{Events, Indexed, Instance, Plugin, PluginError};

/// What happens to events the plugin could not process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Passed on untouched; a JSON object gets the error field added.
    #[default]
    PassThrough,
    /// Dropped (counted and logged).
    Drop,
    /// Written to the transform's `dead_letter` output with the reason.
    DeadLetter,
}

/// How a transform treats its plugin and what it cannot process.
#[derive(Debug, Clone)]
pub struct Options {
    /// Lines longer than this never reach the plugin.
    pub max_line_bytes: usize,
    pub on_error: OnError,
    /// With `pass_through`, the field added to an unprocessed JSON object
    /// (`{"transform":…,"reason":…}`); empty: add nothing.
    pub error_field: String,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Failures in a row that quarantine the plugin.
    pub quarantine_after: u32,
    /// Failures among the last `quarantine_window` calls, in percent, that
    /// quarantine the plugin (a plugin failing every other call is not
    /// saved by the calls between).
    pub quarantine_rate_percent: u32,
    /// Calls the failure rate is judged over (at most 64).
    pub quarantine_window: u32,
    /// Most records one call may emit (a frame with more is refused).
    pub max_records_per_call: u32,
    /// What one batch may make the host copy out, as a multiple of its
    /// bytes (at least [`MIN_OUTPUT_CAP`]; a frame asking more is refused).
    pub max_output_ratio: u32,
    /// Deadline of the snapshot and restore calls.
    pub state_deadline: Duration,
    /// Every event leaves on the default output, one line per line in
    /// (an exec filter such as rsyslog's mmexternal answers each line): a
    /// plugin's drop or routing elsewhere passes the event on untouched.
    pub one_to_one: bool,
    /// Events that leave as JSON text the host read whole are marked so
    /// ([`Batch::all_json`]; see the `vouch` module): set when a sink that
    /// checks its events are JSON reads the default output.
    pub vouch_json: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_line_bytes: 1 << 20,
            on_error: OnError::PassThrough,
            error_field: "rulebox_error".into(),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            quarantine_after: 10,
            quarantine_rate_percent: 50,
            quarantine_window: 20,
            max_records_per_call: 1_000_000,
            max_output_ratio: 16,
            state_deadline: Duration::from_secs(5),
            one_to_one: false,
            vouch_json: false,
        }
    }
}

/// Counters of one transform (read at exit for the summary).
#[derive(Debug, Default)]
pub struct TransformStats {
    pub events_in: AtomicU64,
    pub bytes_in: AtomicU64,
    /// Bytes of every output (events, records, dead letters).
    pub bytes_out: AtomicU64,
    /// Events on the default output or a declared output.
    pub events_out: AtomicU64,
    /// Events the plugin chose to drop.
    pub dropped: AtomicU64,
    pub malformed: AtomicU64,
    pub not_object: AtomicU64,
    pub oversize: AtomicU64,
    pub invalid_utf8: AtomicU64,
    /// Event results or records the host refused (bad range, newline, unknown output).
    pub invalid_results: AtomicU64,
    /// Calls that trapped, hit the deadline or returned a bad frame.
    pub plugin_failures: AtomicU64,
    /// Fresh instances made after a failure.
    pub restarts: AtomicU64,
    /// 1 once the plugin is quarantined.
    pub quarantined: AtomicU64,
    /// Events the plugin did not process (failure, back-off, quarantine,
    /// oversize, invalid UTF-8), handled by the `on_error` policy.
    pub unprocessed: AtomicU64,
    /// Of those, written to `dead_letter`.
    pub dead_lettered: AtomicU64,
    /// Of those, dropped by `on_error = "drop"`.
    pub error_dropped: AtomicU64,
    pub records: AtomicU64,
    /// Time spent in plugin calls (process, tick, flush), µs.
    pub plugin_time_us: AtomicU64,
    /// The longest single call, µs.
    pub slowest_call_us: AtomicU64,
    /// Calls that took more than half their deadline.
    pub slow_calls: AtomicU64,
    /// Every call's time, as a histogram.
    pub call_times: CallTimes,
    /// Failed calls, by reason.
    pub failure_reasons: FailureReasons,
}

fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl TransformStats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// What one call produced: the default output's lines, each declared
/// output's (in the plugin's order), and the dead letters.
#[derive(Debug, Default)]
pub struct Outputs {
    pub default: Batch,
    pub named: Vec<Batch>,
    pub dead_letter: Batch,
}

impl Outputs {
    pub fn new(named: usize) -> Outputs {
        Outputs {
            default: Batch::default(),
            named: (0..named).map(|_| Batch::default()).collect(),
            dead_letter: Batch::default(),
        }
    }

    pub fn clear(&mut self) {
        self.default.clear();
        self.named.iter_mut().for_each(Batch::clear);
        self.dead_letter.clear();
    }

    /// Output `k` (0 = default, k = k-th named), if it exists.
    fn get(&mut self, k: usize) -> Option<&mut Batch> {
        if k == 0 {
            Some(&mut self.default)
        } else {
            self.named.get_mut(k - 1)
        }
    }

    /// Bytes held in every output.
    fn bytes(&self) -> usize {
        std::iter::once(&self.default)
            .chain(&self.named)
            .chain(std::iter::once(&self.dead_letter))
            .map(|b| b.bytes().len())
            .sum()
    }

    fn marks(&self) -> Vec<(usize, usize)> {
        std::iter::once(&self.default)
            .chain(&self.named)
            .chain(std::iter::once(&self.dead_letter))
            .map(Batch::len_bytes)
            .collect()
    }

    fn rewind(&mut self, marks: &[(usize, usize)]) {
        let all = std::iter::once(&mut self.default)
            .chain(self.named.iter_mut())
            .chain(std::iter::once(&mut self.dead_letter));
        for (b, &(len, count)) in all.zip(marks) {
            b.truncate_bytes(len, count);
        }
    }
}

/// The name worker `i` of transform `id` goes by (logs, saved state): `id`
/// for the first, so one worker is the plain case.
pub fn worker_name(id: &str, i: usize) -> String {
    if i == 0 {
        id.to_string()
    } else {
        format!("{id}@{i}")
    }
}

/// Why the plugin did not see an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    Oversize,
    InvalidUtf8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Ready,
    BackingOff { until: Instant },
    Quarantined,
}

pub struct WasmTransform {
    id: String,
    /// The instance's name in the plugin's log lines: the id, or for a
    /// further worker `<id>@<n>` (as its state file).
    name: String,
    plugin: Arc<Plugin>,
    config_json: Vec<u8>,
    instance: Option<Instance>,
    outputs: Vec<String>,
    opts: Options,
    health: Health,
    /// Failed calls since the last good one.
    failures_in_row: u32,
    /// The last calls' outcomes, newest in bit 0 (1: failed), and how many
    /// calls there were (up to 64).
    recent: u64,
    calls: u32,
    guest_batch: Vec<u8>,
    /// Per line of the current batch when some are skipped.
    skips: Vec<Option<Skip>>,
    /// Vouches for events as JSON ([`Options::vouch_json`]).
    json_check: JsonCheck,
    pub stats: Arc<TransformStats>,
}

/// Why a batch went unprocessed, for tags and dead letters.
struct Unprocessed<'a> {
    reason: &'a str,
    error: &'a str,
}

impl WasmTransform {
    /// Instantiates the plugin and initialises it with `config_json`.
    pub fn new(
        id: &str,
        plugin: Arc<Plugin>,
        config_json: Vec<u8>,
        opts: Options,
    ) -> Result<WasmTransform, PluginError> {
        let instance = plugin.instantiate_as(id, &config_json)?;
        let outputs = instance.outputs().to_vec();
        Ok(WasmTransform {
            id: id.to_string(),
            name: id.to_string(),
            plugin,
            config_json,
            instance: Some(instance),
            outputs,
            opts,
            health: Health::Ready,
            failures_in_row: 0,
            recent: 0,
            calls: 0,
            guest_batch: Vec::new(),
            skips: Vec::new(),
            json_check: JsonCheck::default(),
            stats: Arc::default(),
        })
    }

    /// Another instance of the same plugin, configuration and options,
    /// counting into the same stats: worker `n` (from 1) of a parallel
    /// stage.
    pub fn replica(&self, n: usize) -> Result<WasmTransform, PluginError> {
        let name = worker_name(&self.id, n);
        let instance = self.plugin.instantiate_as(&name, &self.config_json)?;
        Ok(WasmTransform {
            id: self.id.clone(),
            name,
            plugin: self.plugin.clone(),
            config_json: self.config_json.clone(),
            outputs: instance.outputs().to_vec(),
            instance: Some(instance),
            opts: self.opts.clone(),
            health: Health::Ready,
            failures_in_row: 0,
            recent: 0,
            calls: 0,
            guest_batch: Vec::new(),
            skips: Vec::new(),
            json_check: JsonCheck::default(),
            stats: self.stats.clone(),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The plugin's declared outputs.
    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// See [`Options::one_to_one`].
    pub fn set_one_to_one(&mut self, on: bool) {
        self.opts.one_to_one = on;
    }

    /// See [`Options::vouch_json`].
    pub fn set_vouch_json(&mut self, on: bool) {
        self.opts.vouch_json = on;
    }

    pub fn new_outputs(&self) -> Outputs {
        Outputs::new(self.outputs.len())
    }

    pub fn is_quarantined(&self) -> bool {
        self.health == Health::Quarantined
    }

    /// Whether the live instance can snapshot its state.
    pub fn keeps_state(&self) -> bool {
        self.instance.as_ref().is_some_and(Instance::keeps_state)
    }

    /// Whether the plugin may run as several instances on one input
    /// ([`Instance::may_share_input`]).
    pub fn may_share_input(&self) -> bool {
        self.instance
            .as_ref()
            .is_some_and(Instance::may_share_input)
    }

    /// Runs one batch through the plugin into `out` (which is not cleared).
    pub fn process(&mut self, input: &Batch, now_ms: i64, out: &mut Outputs) {
        self.process_ahead(input, now_ms, out, None);
    }

    /// [`WasmTransform::process`] with the batch's objects index made ahead
    /// ([`Ahead::prepare`]: only for a batch the screen passes whole).
    pub fn process_ahead(
        &mut self,
        input: &Batch,
        now_ms: i64,
        out: &mut Outputs,
        ahead: Option<Indexed>,
    ) {
        let before = out.bytes();
        inc(&self.stats.bytes_in, input.bytes().len() as u64);
        self.process_counted(input, now_ms, out, ahead);
        inc(
            &self.stats.bytes_out,
            out.bytes().saturating_sub(before) as u64,
        );
    }

    fn process_counted(
        &mut self,
        input: &Batch,
        now_ms: i64,
        out: &mut Outputs,
        ahead: Option<Indexed>,
    ) {
        inc(&self.stats.events_in, input.count() as u64);
        // Most events leave on the default output, about as long as they
        // came (an edit is a splice): room for them all, and an eighth
        // more, up front rather than by doubling as lines are appended;
        // likewise for their metadata (a HEC envelope's keys).
        let len = input.bytes().len();
        out.default.reserve(len + len / 8);
        out.default.reserve_meta(input.meta_len(), input.count());
        // Not indexed ahead: indexed first here, which for most batches
        // makes the screen's own UTF-8 pass needless.
        let ahead = ahead.or_else(|| {
            let max = self.opts.max_line_bytes;
            (self.instance.as_mut()?).index_screened(Events::of(input), max)
        });
        let n_guest = match ahead {
            // Indexed only when the screen would let every line by.
            Some(_) => {
                self.skips.clear();
                input.count()
            }
            None => self.screen(input),
        };
        if n_guest == 0 {
            self.unprocessed_all(input, out, None);
            return;
        }
        if !self.ensure_instance() {
            let why = self.unavailable();
            self.unprocessed_all(
                input,
                out,
                Some(Unprocessed {
                    reason: why.0,
                    error: &why.1,
                }),
            );
            return;
        }
        self.call_plugin(input, n_guest, now_ms, out, ahead);
    }

    /// The plugin's call on a screened batch (`n_guest` lines go to it),
    /// its frame applied into `out`; a failure goes by the policy.
    fn call_plugin(
        &mut self,
        input: &Batch,
        n_guest: usize,
        now_ms: i64,
        out: &mut Outputs,
        ahead: Option<Indexed>,
    ) {
        let Some(instance) = self.instance.as_mut() else {
            return;
        };
        // The members a source's scan kept, and the line ends, describe
        // the input's lines.
        let events = if self.skips.is_empty() {
            Events::of(input)
        } else {
            Events {
                bytes: &self.guest_batch,
                count: n_guest,
                ends: None,
                pre: None,
            }
        };
        let guest = events.bytes;
        let (stats, skips, opts, id) = (&self.stats, &self.skips, &self.opts, &self.id);
        let check = &mut self.json_check;
        let cap = output_cap(
            self.plugin.limits().max_memory_bytes,
            guest.len(),
            &self.opts,
        );
        let marks = out.marks();
        let started = Instant::now();
        let res = instance.process(events, now_ms, ahead, |frame, valid_text| {
            if frame.n_events() != n_guest {
                return Err(format!(
                    "{} event results for {} events",
                    frame.n_events(),
                    n_guest
                ));
            }
            check_output_size(&frame, cap, opts.max_records_per_call)?;
            // Every event the plugin saw was read as JSON text by the host.
            let mut vouch = (opts.vouch_json && valid_text).then_some(check);
            let mut g = 0;
            for (k, line) in input.iter().enumerate() {
                match skips.get(k).copied().flatten() {
                    Some(skip) => unprocessed(
                        id,
                        opts,
                        stats,
                        (line, input.meta(k)),
                        &skip_reason(skip),
                        out,
                    ),
                    None => {
                        let meta = input.meta(k);
                        let mut routing = Routing::new(meta, out, opts, stats);
                        routing.vouch = vouch.as_deref_mut().map(|c| (line, c));
                        frame.apply_event(g, line, &mut routing);
                        g += 1;
                    }
                }
            }
            frame.apply_records(&mut Routing::new(&[], out, opts, stats));
            Ok(())
        });
        self.timed(started);
        let failure = match res {
            Ok(Ok(())) => {
                self.succeeded();
                return;
            }
            Ok(Err(msg)) => PluginError::Guest(msg),
            Err(e) => e,
        };
        self.batch_failed(input, out, &marks, failure);
    }

    /// A failed `process`: undo anything partially written, count the
    /// failure, hand the batch to the policy.
    fn batch_failed(
        &mut self,
        input: &Batch,
        out: &mut Outputs,
        marks: &[(usize, usize)],
        failure: PluginError,
    ) {
        out.rewind(marks);
        let (reason, error) = (failure.reason(), failure.to_string());
        self.fail("process", failure);
        let why = Unprocessed {
            reason,
            error: &error,
        };
        self.unprocessed_all(input, out, Some(why));
    }

    /// What makes this transform's objects indexes ahead, on another
    /// thread (None: its plugin reads bytes, or there is no instance).
    pub fn ahead(&self) -> Option<Ahead> {
        let indexer = self.instance.as_ref()?.indexer()?;
        Some(Ahead {
            indexer,
            max_line_bytes: self.opts.max_line_bytes,
        })
    }

    /// Sorts out lines the plugin must not see; fills `skips` and
    /// `guest_batch` when there are any. Returns how many lines the plugin gets.
    fn screen(&mut self, input: &Batch) -> usize {
        self.skips.clear();
        let max = self.opts.max_line_bytes;
        // No line can be longer than its batch, and one UTF-8 check of the
        // whole batch clears every line at once.
        let long_ok = input.bytes().len() <= max;
        if long_ok && std::str::from_utf8(input.bytes()).is_ok() {
            return input.count();
        }
        let mut skipped = 0;
        self.skips.extend(input.iter().map(|l| {
            let s = if l.len() > max {
                Some(Skip::Oversize)
            } else if std::str::from_utf8(l).is_err() {
                Some(Skip::InvalidUtf8)
            } else {
                None
            };
            skipped += s.is_some() as usize;
            s
        }));
        if skipped == 0 {
            self.skips.clear();
            return input.count();
        }
        let oversize = self
            .skips
            .iter()
            .filter(|s| **s == Some(Skip::Oversize))
            .count();
        inc(&self.stats.oversize, oversize as u64);
        inc(&self.stats.invalid_utf8, (skipped - oversize) as u64);
        tracing::warn!(transform = %self.id, oversize, invalid_utf8 = skipped - oversize, max_line_bytes = max, on_error = ?self.opts.on_error, "lines the plugin cannot take");
        self.guest_batch.clear();
        for (l, s) in input.iter().zip(&self.skips) {
            if s.is_none() {
                self.guest_batch.extend_from_slice(l);
                self.guest_batch.push(b'\n');
            }
        }
        input.count() - skipped
    }

    /// Every line to the policy: skipped lines with their own reason, the
    /// rest with `why` (when the plugin could not be called or failed).
    fn unprocessed_all(&self, input: &Batch, out: &mut Outputs, why: Option<Unprocessed<'_>>) {
        for (k, line) in input.iter().enumerate() {
            let ev = (line, input.meta(k));
            match (self.skips.get(k).copied().flatten(), &why) {
                (Some(skip), _) => {
                    let u = skip_reason(skip);
                    unprocessed(&self.id, &self.opts, &self.stats, ev, &u, out)
                }
                (None, Some(u)) => {
                    let u = Unprocessed {
                        reason: u.reason,
                        error: u.error,
                    };
                    unprocessed(&self.id, &self.opts, &self.stats, ev, &u, out)
                }
                (None, None) => {
                    out.default.push_line(line);
                    out.default.set_last_meta(ev.1);
                    inc(&self.stats.events_out, 1);
                }
            }
        }
    }

    /// Makes a fresh instance when the last one failed and the back-off is
    /// over. False when there is none to call.
    fn ensure_instance(&mut self) -> bool {
        if self.instance.is_some() {
            return true;
        }
        match self.health {
            Health::Quarantined => return false,
            Health::BackingOff { until } if Instant::now() < until => return false,
            _ => {}
        }
        match self.plugin.instantiate_as(&self.name, &self.config_json) {
            Ok(i) => {
                inc(&self.stats.restarts, 1);
                tracing::info!(transform = %self.id, failures_in_row = self.failures_in_row, "fresh plugin instance started");
                self.instance = Some(i);
                self.health = Health::Ready;
                true
            }
            Err(e) => {
                self.fail("restart", e);
                false
            }
        }
    }

    fn unavailable(&self) -> (&'static str, String) {
        match self.health {
            Health::Quarantined => (
                "quarantined",
                format!(
                    "plugin quarantined after {} failures in a row",
                    self.failures_in_row
                ),
            ),
            _ => (
                "backing_off",
                format!(
                    "plugin restarting after {} failures in a row",
                    self.failures_in_row
                ),
            ),
        }
    }

    /// The plugin's periodic tick.
    pub fn tick(&mut self, now_ms: i64, out: &mut Outputs) {
        self.records_call("tick", now_ms, out, |i, now, f| i.tick(now, f));
    }

    /// The plugin's final flush.
    pub fn flush(&mut self, now_ms: i64, out: &mut Outputs) {
        self.records_call("flush", now_ms, out, |i, now, f| i.flush(now, f));
    }

    fn records_call(
        &mut self,
        what: &str,
        now_ms: i64,
        out: &mut Outputs,
        call: impl FnOnce(
            &mut Instance,
            i64,
            &mut dyn FnMut(ResultFrame<'_>),
        ) -> Result<(), PluginError>,
    ) {
        let Some(instance) = self.instance.as_mut() else {
            return;
        };
        let (stats, opts) = (&self.stats, &self.opts);
        let cap = self.plugin.limits().max_memory_bytes as u64;
        let marks = out.marks();
        let mut too_big = None;
        let started = Instant::now();
        let res = call(instance, now_ms, &mut |frame| match check_output_size(
            &frame,
            cap,
            opts.max_records_per_call,
        ) {
            Ok(()) => frame.apply_records(&mut Routing::new(&[], out, opts, stats)),
            Err(e) => too_big = Some(e),
        });
        let res = match (res, too_big) {
            (Ok(()), Some(msg)) => Err(PluginError::Guest(msg)),
            (res, _) => res,
        };
        self.timed(started);
        match res {
            Ok(()) => {
                let before: usize = marks.iter().map(|m| m.0).sum();
                inc(
                    &self.stats.bytes_out,
                    out.bytes().saturating_sub(before) as u64,
                );
                self.succeeded();
            }
            Err(e) => {
                out.rewind(&marks);
                self.fail(what, e);
            }
        }
    }

    /// The plugin's state for a restart: `Ok(None)` when it keeps none (or
    /// there is no live instance).
    /// At a shutdown, every transform's snapshot shares one
    /// `state_deadline`, counted from the shutdown: snapshots one after
    /// the other along a chain cannot add up.
    pub fn snapshot(&mut self, now_ms: i64) -> Result<Option<Vec<u8>>, String> {
        let deadline =
            crate::shutdown::remaining(self.opts.state_deadline).max(crate::sandbox::EPOCH_TICK);
        let Some(instance) = self.instance.as_mut() else {
            return Ok(None);
        };
        match instance.snapshot(now_ms, deadline) {
            Ok(s) => Ok(s),
            Err(e) => {
                let msg = e.to_string();
                self.fail("snapshot", e);
                Err(msg)
            }
        }
    }

    /// The plugin's state while it runs on (a periodic checkpoint), within
    /// `state_deadline_ms`. A failed call fails the plugin as any call does.
    pub fn checkpoint(&mut self, now_ms: i64) -> Option<Vec<u8>> {
        let deadline = self.opts.state_deadline;
        let instance = self.instance.as_mut()?;
        match instance.checkpoint(now_ms, deadline) {
            Ok(s) => s,
            Err(e) => {
                self.fail("checkpoint", e);
                None
            }
        }
    }

    /// Hands a snapshot to the plugin. On an error the instance may hold
    /// half a state, so it is replaced by a fresh one (not counted as a
    /// plugin failure: the snapshot is what is wrong).
    pub fn restore(&mut self, data: &[u8], now_ms: i64) -> Result<bool, PluginError> {
        let deadline = self.opts.state_deadline;
        let Some(instance) = self.instance.as_mut() else {
            return Ok(false);
        };
        let res = instance.restore(data, now_ms, deadline);
        if res.is_err() {
            self.instance = self
                .plugin
                .instantiate_as(&self.name, &self.config_json)
                .ok();
        }
        res
    }

    fn succeeded(&mut self) {
        self.failures_in_row = 0;
        self.remember(false);
    }

    /// Keeps the outcome of a call among the last `quarantine_window`.
    fn remember(&mut self, failed: bool) {
        let window = self.opts.quarantine_window.clamp(1, 64);
        let mask = if window == 64 {
            u64::MAX
        } else {
            (1 << window) - 1
        };
        self.recent = ((self.recent << 1) | failed as u64) & mask;
        self.calls = (self.calls + 1).min(window);
    }

    /// Whether the last `quarantine_window` calls (all of them made) failed
    /// at `quarantine_rate_percent` or more.
    fn failing_too_often(&self) -> bool {
        let window = self.opts.quarantine_window.clamp(1, 64);
        self.calls >= window
            && self.recent.count_ones() * 100 >= self.opts.quarantine_rate_percent * window
    }

    /// Counts a call's time; one that took more than half the deadline is
    /// slow (logged once, counted always).
    fn timed(&self, started: Instant) {
        let took = started.elapsed();
        let us = took.as_micros() as u64;
        inc(&self.stats.plugin_time_us, us);
        self.stats.call_times.record(took);
        self.stats.slowest_call_us.fetch_max(us, Ordering::Relaxed);
        if took > self.plugin.limits().deadline / 2 {
            let first = self.stats.slow_calls.fetch_add(1, Ordering::Relaxed) == 0;
            if first {
                tracing::warn!(transform = %self.id, took = ?took, deadline = ?self.plugin.limits().deadline, "a plugin call took more than half its deadline (counted as slow_calls; logged once)");
            }
        }
    }

    /// Counts and logs a failed call and discards the instance; decides
    /// whether the next call may make a fresh one now, later, or never.
    fn fail(&mut self, what: &str, error: PluginError) {
        inc(&self.stats.plugin_failures, 1);
        self.stats.failure_reasons.add(&error);
        self.instance = None;
        self.failures_in_row = self.failures_in_row.saturating_add(1);
        self.remember(true);
        let n = self.failures_in_row;
        if n >= self.opts.quarantine_after.max(1) || self.failing_too_often() {
            self.health = Health::Quarantined;
            self.stats.quarantined.store(1, Ordering::Relaxed);
            let failures_of_last = (self.recent.count_ones(), self.calls);
            tracing::error!(transform = %self.id, call = what, %error, failures_in_row = n, ?failures_of_last, on_error = ?self.opts.on_error, "plugin quarantined: it is not called again in this run; events go on under the on_error policy");
            return;
        }
        // The first failure restarts at once; more in a row back off.
        let wait = if n <= 1 {
            Duration::ZERO
        } else {
            let doubled = self
                .opts
                .backoff_initial
                .saturating_mul(1u32 << (n - 2).min(20));
            doubled.min(self.opts.backoff_max)
        };
        self.health = Health::BackingOff {
            until: Instant::now() + wait,
        };
        tracing::error!(transform = %self.id, call = what, %error, failures_in_row = n, restart_in = ?wait, on_error = ?self.opts.on_error, "plugin call failed; its events go on under the on_error policy and a fresh instance replaces it (its state is lost)");
    }
}

fn skip_reason(skip: Skip) -> Unprocessed<'static> {
    match skip {
        Skip::Oversize => Unprocessed {
            reason: "oversize",
            error: "line longer than max_line_bytes",
        },
        Skip::InvalidUtf8 => Unprocessed {
            reason: "invalid_utf8",
            error: "line is not valid UTF-8",
        },
    }
}

/// One event (line and metadata) the plugin did not process, under the policy.
fn unprocessed(
    id: &str,
    opts: &Options,
    stats: &TransformStats,
    (line, meta): (&[u8], &[u8]),
    why: &Unprocessed<'_>,
    out: &mut Outputs,
) {
    inc(&stats.unprocessed, 1);
    match opts.on_error {
        OnError::PassThrough => {
            match tag_position(line, &opts.error_field) {
                Some((at, comma)) => {
                    let mut tag = Vec::with_capacity(64);
                    if comma {
                        tag.push(b',');
                    }
                    write_json_str(&mut tag, &opts.error_field);
                    tag.extend_from_slice(b":{\"transform\":");
                    write_json_str(&mut tag, id);
                    tag.extend_from_slice(b",\"reason\":");
                    write_json_str(&mut tag, why.reason);
                    tag.push(b'}');
                    out.default.push_parts(&[&line[..at], &tag, &line[at..]]);
                }
                None => out.default.push_line(line),
            }
            out.default.set_last_meta(meta);
            inc(&stats.events_out, 1);
        }
        OnError::Drop => inc(&stats.error_dropped, 1),
        OnError::DeadLetter => {
            let mut rec = Vec::with_capacity(line.len() + 128);
            rec.extend_from_slice(b"{\"transform\":");
            write_json_str(&mut rec, id);
            rec.extend_from_slice(b",\"reason\":");
            write_json_str(&mut rec, why.reason);
            rec.extend_from_slice(b",\"error\":");
            write_json_str(&mut rec, why.error);
            match std::str::from_utf8(line) {
                Ok(text) => {
                    rec.extend_from_slice(b",\"event\":");
                    write_json_str(&mut rec, text);
                }
                Err(_) => {
                    rec.extend_from_slice(b",\"event_base64\":\"");
                    base64(&mut rec, line);
                    rec.push(b'"');
                }
            }
            rec.push(b'}');
            out.dead_letter.push_line(&rec);
            out.dead_letter.set_last_meta(meta);
            inc(&stats.dead_lettered, 1);
        }
    }
}

/// Where to add the error field to `line`: before its closing brace, and
/// whether a comma is needed. `None` when the line is not a valid JSON
/// object, the field is off, or the field is already there (say, from an
/// earlier transform).
fn tag_position(line: &[u8], field: &str) -> Option<(usize, bool)> {
    if field.is_empty() {
        return None;
    }
    let first = line.iter().position(|c| !c.is_ascii_whitespace())?;
    if line[first] != b'{' {
        return None;
    }
    let text = std::str::from_utf8(line).ok()?;
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    let mut quoted = Vec::with_capacity(field.len() + 2);
    write_json_str(&mut quoted, field);
    if line.windows(quoted.len()).any(|w| w == quoted.as_slice()) {
        return None;
    }
    let close = line.iter().rposition(|&c| c == b'}')?;
    let empty = line[first + 1..close].iter().all(u8::is_ascii_whitespace);
    Some((close, !empty))
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json escapes exactly as JSON requires; writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Standard base64 with padding.
fn base64(out: &mut Vec<u8>, data: &[u8]) {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        out.push(T[(n >> 18) as usize & 63]);
        out.push(T[(n >> 12) as usize & 63]);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63]
        } else {
            b'='
        });
    }
}

/// Where the host puts what a frame says ([`ResultFrame::apply_event`],
/// [`ResultFrame::apply_records`]): an event on its output with its line's
/// metadata, a record on its output, all counted. What the host cannot
/// trust (a refused edit or record, an unknown output) counts as an invalid
/// result; such an event passes on untouched.
struct Routing<'a> {
    /// The metadata of the event's line.
    meta: &'a [u8],
    out: &'a mut Outputs,
    opts: &'a Options,
    stats: &'a TransformStats,
    /// The event's line, read as JSON text by the host, and the check
    /// that vouches for what it becomes ([`Options::vouch_json`]).
    vouch: Option<(&'a [u8], &'a mut JsonCheck)>,
}

impl<'a> Routing<'a> {
    fn new(
        meta: &'a [u8],
        out: &'a mut Outputs,
        opts: &'a Options,
        stats: &'a TransformStats,
    ) -> Routing<'a> {
        Routing {
            meta,
            out,
            opts,
            stats,
            vouch: None,
        }
    }
}

impl FrameOutputs for Routing<'_> {
    fn event(&mut self, _: usize, r: &EventResult, outcome: Outcome<'_>) {
        let (meta, out, opts, stats) = (self.meta, &mut *self.out, self.opts, self.stats);
        match r.reason {
            Reason::Ok => {}
            Reason::Malformed => inc(&stats.malformed, 1),
            Reason::NotObject => inc(&stats.not_object, 1),
            Reason::Other => {}
        }
        if let Outcome::Drop(line) = outcome {
            if !opts.one_to_one {
                inc(&stats.dropped, 1);
                return;
            }
            // An exec filter must answer every line: the event goes on as it came.
            out.default.push_line(line);
            out.default.set_last_meta(meta);
            inc(&stats.events_out, 1);
            return;
        }
        let target = match out.get(r.output as usize) {
            Some(_) if opts.one_to_one => 0,
            Some(_) => r.output as usize,
            None => {
                inc(&stats.invalid_results, 1);
                0
            }
        };
        let Some(b) = out.get(target) else { return };
        let vouched = (self.vouch.as_mut()).is_some_and(|(line, c)| c.vouches(line, &outcome));
        if vouched {
            b.push_json_parts(outcome.parts());
        } else {
            b.push_parts(outcome.parts());
        }
        b.set_last_meta(meta);
        inc(&stats.events_out, 1);
    }

    fn record(&mut self, output: u32, line: &[u8]) {
        // Answering an exec filter line for line, the default output holds
        // the answers alone: a record there would be an extra answer. An
        // empty record is no event (and costs the host a line each).
        if output == 0 && self.opts.one_to_one || line.is_empty() {
            inc(&self.stats.invalid_results, 1);
            return;
        }
        match self.out.get(output as usize) {
            Some(b) => {
                b.push_line(line);
                inc(&self.stats.records, 1);
            }
            None => inc(&self.stats.invalid_results, 1),
        }
    }

    fn refused(&mut self, _: Refused) {
        inc(&self.stats.invalid_results, 1);
    }
}

/// The least a batch may make the host copy out, whatever its size.
pub const MIN_OUTPUT_CAP: u64 = 1 << 20;

/// What one batch of `input` bytes may make the host copy out: its
/// `max_output_ratio` multiple (at least [`MIN_OUTPUT_CAP`]), and never
/// more than the plugin's memory plus the input.
fn output_cap(memory: usize, input: usize, opts: &Options) -> u64 {
    let ratio = (opts.max_output_ratio as u64).saturating_mul(input as u64);
    ratio.max(MIN_OUTPUT_CAP).min(memory as u64 + input as u64)
}

/// A frame may point many results at the same payload bytes; what it asks
/// the host to copy is capped (each line counted with its newline, so
/// empty records count too), and so is its number of records: a small
/// frame cannot make the host allocate without bound.
fn check_output_size(frame: &ResultFrame<'_>, cap: u64, max_records: u32) -> Result<(), String> {
    if frame.n_records() > max_records as usize {
        return Err(format!(
            "frame emits {} records, over the cap of {max_records} (max_records_per_call)",
            frame.n_records()
        ));
    }
    let mut total: u64 = 0;
    for i in 0..frame.n_events() {
        let e = frame.event(i);
        if e.action == Action::Edit {
            total += e.payload_len as u64;
        }
    }
    for i in 0..frame.n_records() {
        total += frame.record(i).payload_len as u64 + 1;
    }
    if total > cap {
        return Err(format!(
            "frame asks for {total} bytes of output, over the cap of {cap}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut out = Vec::new();
            base64(&mut out, plain.as_bytes());
            assert_eq!(out, coded.as_bytes(), "{plain}");
        }
    }

    #[test]
    fn tags_go_into_valid_objects_only() {
        let f = "rulebox_error";
        assert_eq!(tag_position(br#"{"a":1}"#, f), Some((6, true)));
        assert_eq!(tag_position(b" { } ", f), Some((3, false)));
        assert_eq!(tag_position(br#"{"a":"}"#, f), None, "not valid JSON");
        assert_eq!(tag_position(b"[1]", f), None);
        assert_eq!(tag_position(b"{\"a\":\"\xff\"}", f), None, "not UTF-8");
        assert_eq!(
            tag_position(br#"{"rulebox_error":1}"#, f),
            None,
            "already tagged"
        );
        assert_eq!(tag_position(br#"{"a":1}"#, ""), None, "tagging off");
    }
}
