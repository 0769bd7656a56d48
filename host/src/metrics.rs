//! The pipeline's counters as Prometheus sees them: a [`Registry`] holds
//! each running component's shared counters (the very `Arc`s the
//! components count into and the exit summary reads: no second set), and
//! [`render`] writes them in the Prometheus text format, version 0.0.4.
//! Names follow Prometheus' conventions: `rulebox_` first, `_total` on
//! counters, base units (`_seconds`, `_bytes`); every family has HELP and
//! TYPE lines, and every sample `component_id` and `component_kind`
//! labels.

use std::fmt::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::channel::Depth;
use crate::durable::Progress;
use crate::sinks::SinkStats;
use crate::sources::SourceStats;
use crate::transforms::wasm::{CALL_TIME_BOUNDS_US, TransformStats};

/// A running source's counters.
pub struct SourceEntry {
    pub id: String,
    pub stats: Arc<SourceStats>,
    /// Problems while running (an unreadable input, an address in use).
    pub errors: Arc<AtomicU64>,
    /// Its batches waiting to be forwarded.
    pub queue: Depth,
    /// A checkpointed file: its progress and the file read.
    pub checkpoint: Option<(Arc<Progress>, PathBuf)>,
}

/// Every running component's counters.
#[derive(Default)]
pub struct Registry {
    pub sources: Vec<SourceEntry>,
    /// Each transform with its input queue.
    pub transforms: Vec<(String, Arc<TransformStats>, Depth)>,
    /// Each sink with its input queue.
    pub sinks: Vec<(String, Arc<SinkStats>, Depth)>,
}

/// One sample: its labels (after the component's) and value.
type Sample = (Vec<(&'static str, String)>, f64);

/// A sample of one component: its kind, its id, the sample.
type Row<'a> = (&'static str, &'a str, Sample);

/// A family of one counter of each component of a kind: its name, type,
/// help, and the counter.
type Simple<S> = (
    &'static str,
    &'static str,
    &'static str,
    fn(&S) -> &AtomicU64,
);

impl Registry {
    fn of_sources(&self, g: fn(&SourceStats) -> &AtomicU64) -> impl Iterator<Item = Row<'_>> {
        (self.sources.iter()).map(move |s| (SOURCE, s.id.as_str(), plain(get(g(&s.stats)))))
    }

    fn of_transforms(&self, g: fn(&TransformStats) -> &AtomicU64) -> impl Iterator<Item = Row<'_>> {
        (self.transforms.iter()).map(move |(id, t, _)| (TRANSFORM, id.as_str(), plain(get(g(t)))))
    }

    fn of_sinks(&self, g: fn(&SinkStats) -> &AtomicU64) -> impl Iterator<Item = Row<'_>> {
        (self.sinks.iter()).map(move |(id, s, _)| (SINK, id.as_str(), plain(get(g(s)))))
    }
}

/// The component kinds in the `component_kind` label.
const SOURCE: &str = "source";
const TRANSFORM: &str = "transform";
const SINK: &str = "sink";

fn get(c: &AtomicU64) -> f64 {
    c.load(Ordering::Relaxed) as f64
}

/// Metric families, each written whole before the next.
struct Families {
    out: String,
}

impl Families {
    /// Writes family `name` of `kind` with the samples of each component.
    fn family<'a>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: impl IntoIterator<Item = Row<'a>>,
    ) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        for (ckind, id, (labels, value)) in samples {
            let _ = write!(
                self.out,
                "{name}{{component_id=\"{}\",component_kind=\"{ckind}\"",
                escape(id)
            );
            for (k, v) in labels {
                let _ = write!(self.out, ",{k}=\"{}\"", escape(&v));
            }
            let _ = writeln!(self.out, "}} {}", number(value));
        }
    }
}

/// A label value escaped as the text format asks (`\\`, `\"`, `\n`).
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_infinite() {
        "+Inf".into()
    } else {
        format!("{v}")
    }
}

fn plain(v: f64) -> Sample {
    (Vec::new(), v)
}

fn reason(r: &str, v: f64) -> Sample {
    (vec![("reason", r.to_string())], v)
}

/// Every metric of `r`, in the Prometheus text format.
pub fn render(r: &Registry) -> String {
    let mut f = Families { out: String::new() };
    events_and_bytes(&mut f, r);
    errors(&mut f, r);
    refused(&mut f, r);
    redelivered(&mut f, r);
    plugin(&mut f, r);
    call_times(&mut f, r);
    delivery(&mut f, r);
    f.out
}

fn events_and_bytes(f: &mut Families, r: &Registry) {
    f.family(
        "rulebox_component_received_events_total",
        "counter",
        "Events a component took in (a source: read and forwarded).",
        r.of_sources(|s| &s.events)
            .chain(r.of_transforms(|t| &t.events_in))
            .chain(r.of_sinks(|s| &s.received_events)),
    );
    f.family(
        "rulebox_component_received_bytes_total",
        "counter",
        "Bytes of the events a component took in.",
        r.of_sources(|s| &s.bytes)
            .chain(r.of_transforms(|t| &t.bytes_in))
            .chain(r.of_sinks(|s| &s.received_bytes)),
    );
    f.family(
        "rulebox_component_sent_events_total",
        "counter",
        "Events a component passed on (a sink: written or delivered).",
        r.of_transforms(|t| &t.events_out)
            .chain(r.of_sinks(|s| &s.events)),
    );
    f.family(
        "rulebox_component_sent_bytes_total",
        "counter",
        "Bytes a component passed on (a transform: every output, records and dead letters too).",
        r.of_transforms(|t| &t.bytes_out)
            .chain(r.of_sinks(|s| &s.bytes)),
    );
}

/// Messages a broker delivered again (nats).
fn redelivered(f: &mut Families, r: &Registry) {
    let rows =
        (r.sources.iter()).map(|e| (SOURCE, e.id.as_str(), plain(get(&e.stats.redelivered))));
    f.family(
        "rulebox_source_redelivered_total",
        "counter",
        "Messages a broker delivered again: not acked in time, or held by a process that died (nats).",
        rows,
    );
}

/// Connections and requests a listener refused, by reason.
fn refused(f: &mut Families, r: &Registry) {
    let rows = r.sources.iter().flat_map(|e| {
        [
            ("tls_handshake", &e.stats.refused_tls),
            ("unauthorized", &e.stats.refused_unauthorized),
            ("malformed_body", &e.stats.refused_malformed),
        ]
        .map(|(why, c)| (SOURCE, e.id.as_str(), reason(why, get(c))))
    });
    f.family(
        "rulebox_source_refused_total",
        "counter",
        "Connections a listener refused at the TLS handshake, requests refused for a missing or wrong token, and request bodies refused whole as malformed.",
        rows,
    );
}

fn errors(f: &mut Families, r: &Registry) {
    let mut s = Vec::new();
    for e in &r.sources {
        s.push((SOURCE, e.id.as_str(), reason("io", get(&e.errors))));
        s.push((SOURCE, e.id.as_str(), reason("lost", get(&e.stats.lost))));
    }
    for (id, t, _) in &r.transforms {
        for (why, n) in t.failure_reasons.counts() {
            s.push((TRANSFORM, id.as_str(), reason(why, n as f64)));
        }
        let screened = [
            ("malformed", &t.malformed),
            ("not_object", &t.not_object),
            ("oversize", &t.oversize),
            ("invalid_utf8", &t.invalid_utf8),
            ("invalid_result", &t.invalid_results),
        ];
        for (why, c) in screened {
            s.push((TRANSFORM, id.as_str(), reason(why, get(c))));
        }
    }
    for (id, k, _) in &r.sinks {
        s.push((SINK, id.as_str(), reason("write", get(&k.write_errors))));
        s.push((
            SINK,
            id.as_str(),
            reason("buffer_full", get(&k.buffer_dropped)),
        ));
    }
    f.family(
        "rulebox_component_errors_total",
        "counter",
        "Errors by reason: a source's I/O and lost events, a transform's failed plugin calls (deadline, trap, bad_frame, ...) and lines or results it could not take, a sink's failed writes and events a full buffer dropped.",
        s,
    );
}

/// The transforms' families of one plain counter each.
const TRANSFORM_COUNTERS: [Simple<TransformStats>; 5] = [
    (
        "rulebox_plugin_restarts_total",
        "counter",
        "Fresh plugin instances made after a failed call.",
        |t| &t.restarts,
    ),
    (
        "rulebox_plugin_quarantined",
        "gauge",
        "1 once the plugin is quarantined (not called again in this run).",
        |t| &t.quarantined,
    ),
    (
        "rulebox_plugin_slow_calls_total",
        "counter",
        "Plugin calls that took more than half their deadline.",
        |t| &t.slow_calls,
    ),
    (
        "rulebox_plugin_records_total",
        "counter",
        "Records the plugin emitted on its named outputs.",
        |t| &t.records,
    ),
    (
        "rulebox_component_dead_lettered_events_total",
        "counter",
        "Events the plugin could not process, written to the dead_letter output.",
        |t| &t.dead_lettered,
    ),
];

/// The sinks' families of one plain counter each.
const SINK_COUNTERS: [Simple<SinkStats>; 5] = [
    (
        "rulebox_component_retries_total",
        "counter",
        "Deliveries tried again (network sinks).",
        |s| &s.retries,
    ),
    (
        "rulebox_sink_spooled_events_total",
        "counter",
        "Events kept in the spool at shutdown (network sinks).",
        |s| &s.spooled,
    ),
    (
        "rulebox_sink_unspooled_events_total",
        "counter",
        "Events delivered from the spool at start (network sinks).",
        |s| &s.unspooled,
    ),
    (
        "rulebox_sink_replayed_events_total",
        "counter",
        "Events read again after a crash for a plugin's saved state, already written: let go unwritten.",
        |s| &s.replayed,
    ),
    (
        "rulebox_sink_duplicates_total",
        "counter",
        "Messages the receiver recognised as resends by their id and stored once (nats).",
        |s| &s.duplicates,
    ),
];

fn plugin(f: &mut Families, r: &Registry) {
    for (name, kind, help, g) in TRANSFORM_COUNTERS {
        f.family(name, kind, help, r.of_transforms(g));
    }
    let dropped = (r.transforms.iter()).flat_map(|(id, t, _)| {
        [
            (TRANSFORM, id.as_str(), reason("plugin", get(&t.dropped))),
            (
                TRANSFORM,
                id.as_str(),
                reason("on_error", get(&t.error_dropped)),
            ),
        ]
    });
    f.family(
        "rulebox_component_dropped_events_total",
        "counter",
        "Events dropped: by the plugin, or unprocessed under on_error = \"drop\".",
        dropped,
    );
}

/// The plugin call-time histogram, `le` in seconds.
fn call_times(f: &mut Families, r: &Registry) {
    let name = "rulebox_plugin_call_duration_seconds";
    let _ = writeln!(
        f.out,
        "# HELP {name} Time of each plugin call (process, tick, flush)."
    );
    let _ = writeln!(f.out, "# TYPE {name} histogram");
    for (id, t, _) in &r.transforms {
        let labels = format!(
            "component_id=\"{}\",component_kind=\"{TRANSFORM}\"",
            escape(id)
        );
        let bounds = (CALL_TIME_BOUNDS_US.iter()).map(|us| number(*us as f64 / 1e6));
        let bounds = bounds.chain(std::iter::once("+Inf".to_string()));
        for (le, n) in bounds.zip(t.call_times.cumulative()) {
            let _ = writeln!(f.out, "{name}_bucket{{{labels},le=\"{le}\"}} {n}");
        }
        let sum = t.call_times.sum_us() as f64 / 1e6;
        let _ = writeln!(f.out, "{name}_sum{{{labels}}} {}", number(sum));
        let _ = writeln!(f.out, "{name}_count{{{labels}}} {}", t.call_times.count());
    }
}

fn delivery(f: &mut Families, r: &Registry) {
    for (name, kind, help, g) in SINK_COUNTERS {
        f.family(name, kind, help, r.of_sinks(g));
    }
    let queues = (r.sources.iter())
        .map(|s| (SOURCE, s.id.as_str(), &s.queue))
        .chain((r.transforms.iter()).map(|(id, _, q)| (TRANSFORM, id.as_str(), q)))
        .chain((r.sinks.iter()).map(|(id, _, q)| (SINK, id.as_str(), q)))
        .map(|(k, id, q)| (k, id, plain(q.len() as f64)));
    f.family(
        "rulebox_component_queue_batches",
        "gauge",
        "Batches waiting in a component's input channel (a source: read, not yet forwarded).",
        queues,
    );
    let lag = (r.sources.iter()).filter_map(|s| {
        let (progress, file) = s.checkpoint.as_ref()?;
        Some((
            SOURCE,
            s.id.as_str(),
            plain(checkpoint_lag(progress, file) as f64),
        ))
    });
    f.family(
        "rulebox_source_checkpoint_lag_bytes",
        "gauge",
        "A checkpointed file's size less its committed offset: bytes not yet written by every sink.",
        lag,
    );
}

/// Bytes of `file` past the committed offset (0 if it cannot be read).
fn checkpoint_lag(progress: &Progress, file: &std::path::Path) -> u64 {
    let len = std::fs::metadata(file).map_or(0, |m| m.len());
    len.saturating_sub(progress.committed().0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }

    #[test]
    fn every_family_has_help_and_type() {
        let t = Arc::new(TransformStats::default());
        t.events_in.store(3, Ordering::Relaxed);
        t.call_times.record(std::time::Duration::from_millis(2));
        let (_tx, rx) = crate::channel::bounded();
        drop(rx);
        let r = Registry {
            transforms: vec![("rule \"x\"".into(), t, Depth::of(&_tx))],
            ..Registry::default()
        };
        let text = render(&r);
        let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(helps, types);
        assert!(text.contains(
            "rulebox_component_received_events_total{component_id=\"rule \\\"x\\\"\",component_kind=\"transform\"} 3\n"
        ));
        assert!(text.contains("le=\"0.0025\"} 1\n"), "{text}");
        assert!(text.contains("le=\"0.001\"} 0\n"), "{text}");
    }
}
