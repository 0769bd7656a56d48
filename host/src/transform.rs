//! A wasm transform as a plain state machine: `process` a batch, `tick`,
//! `flush`, each filling [`Outputs`]. No I/O and no runtime here; the
//! pipeline's async driver calls these, and tests call them directly.
//!
//! Invariant: every input line leaves exactly once (unless the plugin
//! explicitly drops it): edited, untouched, or untouched because the plugin
//! failed. A plugin failure never loses the batch; the instance is replaced
//! by a fresh one and the failure is counted and logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rulebox_abi::{Action, Reason, ResultFrame};

use crate::batch::{Batch, lines};
use crate::sandbox::{Instance, Plugin, PluginError};

/// Counters of one transform (read at exit for the summary).
#[derive(Debug, Default)]
pub struct TransformStats {
    pub events_in: AtomicU64,
    pub events_out: AtomicU64,
    pub dropped: AtomicU64,
    pub malformed: AtomicU64,
    pub not_object: AtomicU64,
    pub oversize: AtomicU64,
    /// Event results or records the host refused (bad range, newline, unknown output).
    pub invalid_results: AtomicU64,
    /// Calls that trapped, hit the deadline or returned a bad frame.
    pub plugin_failures: AtomicU64,
    /// Events passed on untouched because the plugin failed.
    pub passed_on_failure: AtomicU64,
    pub records: AtomicU64,
}

fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// What one call produced: the default output's lines and each named
/// output's, in the plugin's declared order.
#[derive(Debug, Default)]
pub struct Outputs {
    pub default: Batch,
    pub named: Vec<Batch>,
}

impl Outputs {
    pub fn new(named: usize) -> Outputs {
        Outputs {
            default: Batch::default(),
            named: (0..named).map(|_| Batch::default()).collect(),
        }
    }

    pub fn clear(&mut self) {
        self.default.clear();
        self.named.iter_mut().for_each(Batch::clear);
    }

    /// Output `k` (0 = default, k = k-th named), if it exists.
    fn get(&mut self, k: usize) -> Option<&mut Batch> {
        if k == 0 {
            Some(&mut self.default)
        } else {
            self.named.get_mut(k - 1)
        }
    }
}

pub struct WasmTransform {
    id: String,
    plugin: Arc<Plugin>,
    config_json: Vec<u8>,
    instance: Option<Instance>,
    outputs: Vec<String>,
    max_line_bytes: usize,
    guest_batch: Vec<u8>,
    pub stats: Arc<TransformStats>,
}

impl WasmTransform {
    /// Instantiates the plugin and initialises it with `config_json`.
    pub fn new(
        id: &str,
        plugin: Arc<Plugin>,
        config_json: Vec<u8>,
        max_line_bytes: usize,
    ) -> Result<WasmTransform, PluginError> {
        let instance = plugin.instantiate(&config_json)?;
        let outputs = instance.outputs().to_vec();
        Ok(WasmTransform {
            id: id.to_string(),
            plugin,
            config_json,
            instance: Some(instance),
            outputs,
            max_line_bytes,
            guest_batch: Vec::new(),
            stats: Arc::default(),
        })
    }

    /// The plugin's declared outputs.
    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }

    pub fn new_outputs(&self) -> Outputs {
        Outputs::new(self.outputs.len())
    }

    /// Runs one batch through the plugin into `out` (which is not cleared).
    pub fn process(&mut self, input: &Batch, now_ms: i64, out: &mut Outputs) {
        inc(&self.stats.events_in, input.count() as u64);
        let max = self.max_line_bytes;
        // Lines the plugin sees: all of them, unless some are oversize.
        // No line can be longer than its batch: skip the pass when the batch is short.
        let oversize = if input.bytes().len() <= max {
            0
        } else {
            lines(input.bytes()).filter(|l| l.len() > max).count()
        };
        let guest: &[u8] = if oversize == 0 {
            input.bytes()
        } else {
            inc(&self.stats.oversize, oversize as u64);
            tracing::warn!(transform = %self.id, lines = oversize, max_line_bytes = max, "oversize lines pass on without the plugin");
            self.guest_batch.clear();
            for l in lines(input.bytes()).filter(|l| l.len() <= max) {
                self.guest_batch.extend_from_slice(l);
                self.guest_batch.push(b'\n');
            }
            &self.guest_batch
        };
        let n_guest = input.count() - oversize;
        if n_guest == 0 {
            self.pass_all(input, out, false);
            return;
        }
        let Some(instance) = self.instance.as_mut() else {
            self.pass_all(input, out, true);
            return;
        };
        let stats = &self.stats;
        let (d_before, n_before) = (
            out.default.len_bytes(),
            out.named.iter().map(Batch::len_bytes).collect::<Vec<_>>(),
        );
        let res = instance.process(guest, n_guest, now_ms, |frame| {
            if frame.n_events() != n_guest {
                return Err(format!(
                    "{} event results for {} events",
                    frame.n_events(),
                    n_guest
                ));
            }
            let mut i = 0;
            for line in lines(input.bytes()) {
                if line.len() > max {
                    out.default.push_line(line);
                    inc(&stats.events_out, 1);
                    continue;
                }
                apply_event(line, &frame, i, out, stats);
                i += 1;
            }
            apply_records(&frame, out, stats);
            Ok(())
        });
        let failure = match res {
            Ok(Ok(())) => return,
            Ok(Err(msg)) => {
                // Nothing was written before the count check failed.
                PluginError::Guest(msg)
            }
            Err(e) => e,
        };
        // Undo anything partially written, then pass the batch on.
        out.default.truncate_bytes(d_before.0, d_before.1);
        for (b, (len, count)) in out.named.iter_mut().zip(n_before) {
            b.truncate_bytes(len, count);
        }
        self.fail("process", failure);
        self.pass_all(input, out, true);
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
        let stats = &self.stats;
        let res = call(instance, now_ms, &mut |frame| {
            apply_records(&frame, out, stats)
        });
        if let Err(e) = res {
            self.fail(what, e);
        }
    }

    fn pass_all(&self, input: &Batch, out: &mut Outputs, because_failed: bool) {
        out.default.extend(input);
        inc(&self.stats.events_out, input.count() as u64);
        if because_failed {
            inc(&self.stats.passed_on_failure, input.count() as u64);
        }
    }

    /// Counts and logs a failed call and replaces the instance.
    fn fail(&mut self, what: &str, error: PluginError) {
        inc(&self.stats.plugin_failures, 1);
        tracing::error!(transform = %self.id, call = what, %error, "plugin call failed; events pass on unchanged and a fresh instance replaces it (its state is lost)");
        self.instance = None;
        match self.plugin.instantiate(&self.config_json) {
            Ok(i) => self.instance = Some(i),
            Err(e) => {
                tracing::error!(transform = %self.id, error = %e, "cannot start a fresh plugin instance; events pass on unchanged");
            }
        }
    }
}

/// Applies event result `i` to `line`; anything the host cannot trust
/// passes the line on untouched.
fn apply_event(
    line: &[u8],
    frame: &ResultFrame<'_>,
    i: usize,
    out: &mut Outputs,
    stats: &TransformStats,
) {
    let r = frame.event(i);
    match Reason::from_u8(r.reason) {
        Reason::Ok => {}
        Reason::Malformed => inc(&stats.malformed, 1),
        Reason::NotObject => inc(&stats.not_object, 1),
        Reason::Other => {}
    }
    if r.action == Action::Drop as u8 {
        inc(&stats.dropped, 1);
        return;
    }
    let target = match out.get(r.output as usize) {
        Some(_) => r.output as usize,
        None => {
            inc(&stats.invalid_results, 1);
            0
        }
    };
    let edit = if r.action == Action::Edit as u8 {
        let payload = frame.payload(r.payload_off, r.payload_len).ok();
        let range_ok = r.start <= r.end && (r.end as usize) <= line.len();
        match payload {
            Some(p) if range_ok && !p.contains(&b'\n') => {
                Some((r.start as usize, r.end as usize, p))
            }
            _ => {
                inc(&stats.invalid_results, 1);
                None
            }
        }
    } else {
        None
    };
    let Some(b) = out.get(target) else { return };
    match edit {
        Some((s, e, p)) => b.push_parts(&[&line[..s], p, &line[e..]]),
        None => b.push_line(line),
    }
    inc(&stats.events_out, 1);
}

fn apply_records(frame: &ResultFrame<'_>, out: &mut Outputs, stats: &TransformStats) {
    for i in 0..frame.n_records() {
        let r = frame.record(i);
        let line = frame
            .payload(r.payload_off, r.payload_len)
            .ok()
            .filter(|l| !l.contains(&b'\n'));
        match (line, out.get(r.output as usize)) {
            (Some(l), Some(b)) => {
                b.push_line(l);
                inc(&stats.records, 1);
            }
            _ => inc(&stats.invalid_results, 1),
        }
    }
}
