//! Large outbound transfers to one destination (MITRE ATT&CK T1048,
//! Exfiltration Over Alternative Protocol) as a rulebox rule, after
//! Splunk's ESCU detection "High Volume of Bytes Out to Url": the bytes an
//! internal source sends to one external address and port, summed in
//! event-time windows, alert when they pass a threshold. The semantics are
//! `docs/t1048-large-outbound.md`; code comments cite its sections as
//! "spec §N".
//!
//! Written with the public SDK only (`rulebox-plugin`): plain Rust, tested
//! natively; [`rulebox_plugin::export_rule!`] adds the wasm exports when it
//! is built for `wasm32-wasip1`.

pub mod alert;
pub mod config;
pub mod fields;
pub mod net;
pub mod window;

use rulebox_plugin::abi::LogLevel;
use rulebox_plugin::json::{Object, PathPlan, ScanError};
use rulebox_plugin::{Emitter, EventOut, OutputId, Rule};
use serde::{Deserialize, Serialize};

use config::Config;
use fields::{Connection, Reader};
use net::Networks;
use window::{Added, Key, State, Windows};

/// The `alerts` output.
pub const ALERTS: OutputId = 1;

/// The version of the saved state's format.
const STATE_VERSION: u32 = 1;

/// The rule's state.
pub struct LargeOutbound {
    reader: Reader,
    internal: Networks,
    excluded: Networks,
    enrich_key: String,
    windows: Windows,
    /// This run's counters, for the summary logged at its end (spec §3).
    tally: Tally,
    /// Late and over-cap counts already warned about.
    warned: (u64, u64),
}

#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    read: u64,
    labelled: u64,
    counted: u64,
}

/// What the rule concluded about an event with a destination (spec §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The destination is an IP address: whether it is outside the
    /// internal networks.
    pub external: Option<bool>,
    pub excluded: bool,
    pub counted: bool,
}

/// The saved state: its format's version and the windows.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    version: u32,
    windows: State,
}

impl LargeOutbound {
    /// Judges a connection (spec §2).
    pub fn judge(&self, c: &Connection) -> Verdict {
        let external = c.dest.map(|d| !self.internal.contains(d));
        let excluded = c.dest.is_some_and(|d| self.excluded.contains(d));
        let src_internal = c.src.is_some_and(|s| self.internal.contains(s));
        Verdict {
            external,
            excluded,
            counted: c.permitted
                && src_internal
                && external == Some(true)
                && !excluded
                && c.port.is_some(),
        }
    }

    fn count(&mut self, c: &Connection, now_ms: i64, out: &mut Emitter<'_>) {
        let (Some(src), Some(dest), Some(port)) = (c.src, c.dest, c.port) else {
            return;
        };
        self.tally.counted += 1;
        let key = Key { src, dest, port };
        let bytes = c.bytes_out.unwrap_or(0);
        if self.windows.add(c.time_ms, now_ms, key, bytes) == Added::Summed {
            self.emit_final(false, out);
        }
    }

    /// `final` alerts for the windows that closed (`all`: every window).
    fn emit_final(&mut self, all: bool, out: &mut Emitter<'_>) {
        let window_ms = self.windows.window_ms;
        let threshold = self.windows.threshold;
        for row in self.windows.close(all) {
            out.emit_with(ALERTS, |b| {
                alert::write(b, &row, alert::Status::Final, window_ms, threshold)
            });
        }
    }

    /// Warns when events were turned away since the last warning.
    fn warn_turned_away(&mut self) {
        let (late, over_cap) = (self.windows.late, self.windows.over_cap);
        if late > self.warned.0 {
            rulebox_plugin::log(
                LogLevel::Warn,
                &format!("{late} late events (for closed windows) not summed"),
            );
        }
        if over_cap > self.warned.1 {
            rulebox_plugin::log(
                LogLevel::Warn,
                &format!(
                    "{over_cap} events of new keys not summed: max_keys ({}) reached",
                    self.windows.max_keys
                ),
            );
        }
        self.warned = (late, over_cap);
    }

    fn log_summary(&self) {
        let t = self.tally;
        rulebox_plugin::log(
            LogLevel::Info,
            &format!(
                "t1048 run summary: events_read={} labelled={} counted={} late={} over_cap={} open_keys={}",
                t.read,
                t.labelled,
                t.counted,
                self.windows.late,
                self.windows.over_cap,
                self.windows.open_keys()
            ),
        );
        if t.read > 0 && t.labelled == 0 {
            rulebox_plugin::log(
                LogLevel::Warn,
                "no event had a destination the schema preset reads: check `schema`",
            );
        }
    }

    fn write_state(&self, out: &mut Vec<u8>) {
        let saved = Saved {
            version: STATE_VERSION,
            windows: self.windows.state(),
        };
        // Serialising plain numbers and addresses cannot fail.
        if let Ok(bytes) = serde_json::to_vec(&saved) {
            out.extend_from_slice(&bytes);
        }
    }
}

/// Writes the label object (spec §2).
fn write_label(b: &mut Vec<u8>, v: Verdict) {
    b.push(b'{');
    if let Some(e) = v.external {
        b.extend_from_slice(format!("\"external\":{e},").as_bytes());
    }
    if v.excluded {
        b.extend_from_slice(b"\"excluded\":true,");
    }
    b.extend_from_slice(format!("\"counted\":{}}}", v.counted).as_bytes());
}

impl Rule for LargeOutbound {
    const OUTPUTS: &'static [&'static str] = &["alerts"];
    const READS_OBJECTS: bool = true;

    fn new(config: &[u8]) -> Result<Self, String> {
        let c = Config::parse(config)?;
        let mut internal = Networks::parse("internal_networks", &c.internal_networks)?;
        let extra = Networks::parse("extra_internal_networks", &c.extra_internal_networks)?;
        internal.extend(extra);
        Ok(LargeOutbound {
            reader: Reader::new(c.schema),
            internal,
            excluded: Networks::parse("excluded_destinations", &c.excluded_destinations)?,
            enrich_key: c.enrich_key,
            windows: Windows::new(
                c.window_secs as i64 * 1000,
                c.allowed_lateness_secs as i64 * 1000,
                c.threshold_bytes,
                c.max_keys,
            ),
            tally: Tally::default(),
            warned: (0, 0),
        })
    }

    fn object_keys(&self) -> Option<Vec<String>> {
        let mut keys = self.reader.keys();
        keys.push(self.enrich_key.clone());
        Some(keys)
    }

    fn object_paths(&self) -> Option<PathPlan> {
        Some(self.reader.plan())
    }

    fn on_object(
        &mut self,
        _event: &[u8],
        object: Result<Object<'_, '_>, ScanError>,
        now_ms: i64,
        out: &mut EventOut<'_>,
    ) {
        self.tally.read += 1;
        let obj = match object {
            Ok(obj) => obj,
            Err(e) => return out.unreadable(e),
        };
        let Some(conn) = self.reader.read(&obj) else {
            return;
        };
        self.tally.labelled += 1;
        let verdict = self.judge(&conn);
        if verdict.counted {
            self.count(&conn, now_ms, &mut out.emitter());
        }
        let key = std::mem::take(&mut self.enrich_key);
        out.set_field(&obj, &key, |b| write_label(b, verdict));
        self.enrich_key = key;
    }

    fn on_tick(&mut self, _now_ms: i64, out: &mut Emitter<'_>) {
        self.warn_turned_away();
        let (window_ms, threshold) = (self.windows.window_ms, self.windows.threshold);
        for row in self.windows.changed() {
            out.emit_with(ALERTS, |b| {
                alert::write(b, &row, alert::Status::Open, window_ms, threshold)
            });
        }
    }

    fn on_flush(&mut self, _now_ms: i64, out: &mut Emitter<'_>) {
        self.emit_final(true, out);
        self.warn_turned_away();
        self.log_summary();
    }

    fn snapshot(&mut self, _now_ms: i64, out: &mut Vec<u8>) {
        self.warn_turned_away();
        self.log_summary();
        self.write_state(out);
    }

    fn checkpoint(&mut self, _now_ms: i64, out: &mut Vec<u8>) {
        self.write_state(out);
    }

    fn restore(&mut self, data: &[u8], _now_ms: i64) -> Result<(), String> {
        let saved: Saved = serde_json::from_slice(data)
            .map_err(|e| format!("the saved state is not this rule's: {e}"))?;
        if saved.version != STATE_VERSION {
            return Err(format!(
                "the saved state has format version {}, this rule reads {STATE_VERSION}",
                saved.version
            ));
        }
        self.windows.restore(saved.windows)?;
        self.warned = (self.windows.late, self.windows.over_cap);
        Ok(())
    }
}

/// What `rulebox inspect` shows, and the schema `rulebox validate` checks
/// the configuration against.
pub const MANIFEST: rulebox_plugin::Manifest<'static> = rulebox_plugin::Manifest {
    name: "t1048-large-outbound",
    version: env!("CARGO_PKG_VERSION"),
    description: "MITRE ATT&CK T1048: bytes an internal source sends to one external address and port, summed in event-time windows, over a threshold (after Splunk ESCU \"High Volume of Bytes Out to Url\", c8a6b56d-16dd-4e9c-b4bd-527742ead98d)",
    author: "rulebox",
    techniques: &["T1048", "T1567"],
    outputs: &["alerts"],
    config_schema: Some(include_str!("../config.schema.json")),
};

rulebox_plugin::export_rule!(LargeOutbound, manifest = MANIFEST);

#[cfg(test)]
mod tests;
