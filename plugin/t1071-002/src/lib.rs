//! MITRE ATT&CK T1071.002 (File Transfer Protocols) as a rulebox rule:
//! outbound FTP/FTPS (20, 21, 990), SMB (139, 445) and TFTP (69) connections
//! from internal sources to external addresses. The semantics are
//! `docs/t1071-002.md`: every event gets a label object, and alerts
//! leave on the `alerts` output when a source/destination/port/protocol key
//! makes more than `min_connections` connections in an event-time window.
//!
//! This crate is plain Rust, tested natively; [`rulebox_plugin::export_rule!`]
//! adds the wasm exports when it is built for `wasm32-wasip1`.

pub mod aggregate;
pub mod config;
pub mod net;
pub mod raw;
pub mod schema;
pub mod tally;
pub mod time;

use std::net::IpAddr;

use rulebox_plugin::abi::LogLevel;
use rulebox_plugin::abi::MAX_PATH_DOTS;
use rulebox_plugin::json::{KeySet, Object, PathPlan, ScanError, Scanner, write_str};
use rulebox_plugin::{Emitter, EventOut, FieldKey, OutputId, Rule};

use aggregate::{Aggregator, Observation, Settings, Stats};
use config::{Config, PresetName, Stage};
use net::{Allowlist, Networks};
use raw::label::{Label, Names};
use raw::{Format, Line, Readers, Record};
use schema::{Details, Grouping, Preset};
use tally::Tally;

/// The `alerts` output (stages `all` and `aggregate`).
pub const ALERTS: OutputId = 1;
/// The `observations` output (stage `classify`).
pub const OBSERVATIONS: OutputId = 1;
/// The member that marks an observation record.
const OBSERVATION_MARK: &str = "t1071_observation";
/// Every member of an observation record (see [`write_observation`]).
const OBSERVATION_FIELDS: &[&str] = &[
    OBSERVATION_MARK,
    "time_ms",
    "src",
    "dest",
    "port",
    "protocol",
    "by_user",
    "process",
    "user",
    "bytes_out",
    "bytes_in",
    "bytes_total",
];

/// The rule's state.
pub struct T1071 {
    stage: Stage,
    /// The preset, or (for `auto`) the presets in the order tried; the
    /// object's path group is the index of its preset.
    presets: Vec<Preset>,
    plan: PathPlan,
    /// With `event_path`: where the event sits, and how to read one held
    /// as a JSON string.
    wrapped: Option<Wrapped>,
    internal: Networks,
    allowlist: Allowlist,
    /// Port -> protocol index + 1 (0: not watched).
    ports: Box<[u8]>,
    labels: Vec<String>,
    /// Where the label goes (made once: set on every event).
    enrich_key: FieldKey,
    /// The raw formats' readers (spec §6) and the label's names in them.
    raw: Readers,
    raw_names: Names,
    agg: Aggregator,
    scanner: Scanner,
    /// Scans an event on a watched port again for its details.
    details: Scanner,
    reported: Stats,
    /// Stage `aggregate`: input lines that were not observation records
    /// (passed on untouched), and how many of them were reported.
    foreign: u64,
    reported_foreign: u64,
    /// This run's counters, for the summary logged at its end.
    tally: Tally,
    /// Late events counted by a restored state (not this run's).
    late_before: u64,
}

/// The event sits at `path` in the line (`event_path`). `T1071::presets`
/// and its plan then hold paths inside it, which the host resolves for an
/// event held as an object; for one held as a JSON string, the rule scans
/// the string's text with `presets` and `plan` here, whose paths are the
/// event's own.
struct Wrapped {
    path: String,
    presets: Vec<Preset>,
    plan: PathPlan,
    scanner: Scanner,
}

/// Which presets an event is read with: the line's (`T1071::presets`) or,
/// for an event held as a JSON string, its text's (`Wrapped::presets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    Line,
    Text,
}

/// What the rule concluded about an event with a readable destination.
#[derive(Debug, Clone, Copy)]
struct Judgement {
    /// The preset's index in `T1071::presets` (JSON events).
    preset: usize,
    /// The raw format a line was read as (instead of a preset).
    format: Option<Format>,
    /// Protocol index + 1 (0: the port is not watched).
    proto: u8,
    external: Option<bool>,
    counted: bool,
    /// The allowlist entry that matched.
    allowlisted: Option<usize>,
}

/// Where a connection went and what it adds beyond its [`Details`]: what
/// JSON presets never say (spec §6).
#[derive(Debug, Clone, Copy)]
struct Connection {
    dest: IpAddr,
    port: Option<u16>,
    bytes_total: Option<u64>,
    /// The record that counts its connection (a start record does not).
    closing: bool,
    by_user: bool,
}

/// What the rule concluded about one event (for tests and benchmarks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The preset the event was read as.
    pub preset: &'static str,
    pub protocol: Option<String>,
    pub external: Option<bool>,
    pub counted: bool,
    pub allowlisted: Option<String>,
}

impl T1071 {
    pub fn from_config(cfg: Config) -> Result<T1071, String> {
        let mut nets = cfg.internal_networks.clone();
        nets.extend(cfg.extra_internal_networks.iter().cloned());
        let internal = Networks::parse(&nets, "internal_networks")?;
        let allowlist = Allowlist::parse(&cfg.allowlist)?;
        let (ports, labels) = watched_ports(&cfg)?;
        let (presets, plan, wrapped) = presets(&cfg)?;
        let secs_ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        let agg = Aggregator::new(Settings {
            window_ms: secs_ms(cfg.window_secs),
            lateness_ms: secs_ms(cfg.allowed_lateness_secs),
            min_connections: cfg.min_connections,
            max_keys: cfg.max_keys,
            max_users: cfg.max_users_per_key,
            exfil_medium_bytes: cfg.exfil_medium_bytes,
            exfil_high_bytes: cfg.exfil_high_bytes,
            labels: labels.clone(),
        });
        Ok(T1071 {
            stage: cfg.stage,
            presets,
            plan,
            wrapped,
            internal,
            allowlist,
            ports,
            labels,
            raw: Readers::new(&cfg.raw_formats),
            raw_names: Names::new(&cfg.enrich_key),
            enrich_key: FieldKey::new(&cfg.enrich_key),
            agg,
            scanner: Scanner::new(),
            details: Scanner::new(),
            reported: Stats::default(),
            foreign: 0,
            reported_foreign: 0,
            tally: Tally::default(),
            late_before: 0,
        })
    }

    pub fn stats(&self) -> Stats {
        self.agg.stats
    }

    /// Classifies and counts one event; writes the label object into `out`
    /// and alerts through `alert`. Returns what it concluded, `None` when
    /// the event has no readable destination (it then leaves unchanged).
    fn handle(
        &mut self,
        event: &[u8],
        object: Result<Object<'_, '_>, ScanError>,
        now_ms: i64,
        out: Option<&mut EventOut<'_>>,
        alert: &mut dyn FnMut(&[u8]),
    ) -> Option<Judgement> {
        let j = self.read_event(event, object, now_ms, out, alert);
        self.tally.read += 1;
        if let Some(j) = &j {
            self.tally.labelled += 1;
            self.tally.counted += u64::from(j.counted);
        }
        j
    }

    /// [`T1071::handle`], uncounted.
    fn read_event(
        &mut self,
        event: &[u8],
        object: Result<Object<'_, '_>, ScanError>,
        now_ms: i64,
        out: Option<&mut EventOut<'_>>,
        alert: &mut dyn FnMut(&[u8]),
    ) -> Option<Judgement> {
        let obj = match object {
            Ok(o) => o,
            Err(e) => return self.read_raw(event, e, now_ms, out, alert),
        };
        if self.wrapped.is_some() {
            return self.handle_wrapped(event, &obj, now_ms, out, alert);
        }
        let j = self.judge(Reading::Line, obj.group()?, &obj, event, now_ms, alert)?;
        if let Some(out) = out {
            out.set_key(&obj, &self.enrich_key, |b| self.write_label(b, &j));
        }
        Some(j)
    }

    /// [`T1071::handle`] for an event at `event_path` in the line `obj`
    /// (spec §1, Wrapped events): an object there is read through the
    /// plan and gets the label object; a string holding a JSON object is
    /// scanned here and the label object goes on the line's top level.
    fn handle_wrapped(
        &mut self,
        event: &[u8],
        obj: &Object<'_, '_>,
        now_ms: i64,
        out: Option<&mut EventOut<'_>>,
        alert: &mut dyn FnMut(&[u8]),
    ) -> Option<Judgement> {
        let inner = obj.get(&self.wrapped.as_ref()?.path)?;
        if inner.is_object() {
            let j = self.judge(Reading::Line, obj.group()?, obj, event, now_ms, alert)?;
            if let Some(out) = out {
                out.set_member(event, inner, self.enrich_key.as_str(), |b| {
                    self.write_label(b, &j)
                });
            }
            return Some(j);
        }
        let text = inner.as_str()?;
        let w = self.wrapped.as_mut()?;
        let mut scanner = std::mem::take(&mut w.scanner);
        let j = match scanner.scan_planned(text.as_bytes(), &w.plan) {
            Ok(o) => o
                .group()
                .and_then(|g| self.judge(Reading::Text, g, &o, text.as_bytes(), now_ms, alert)),
            // Not JSON: a raw line held as a string (a syslog source's
            // `{"message": "<CEF:...>", ...}`), labelled on the top level.
            Err(_) => self.read_raw_text(text.as_bytes(), now_ms, alert),
        };
        if let Some(w) = self.wrapped.as_mut() {
            w.scanner = scanner;
        }
        let j = j?;
        if let Some(out) = out {
            out.set_key(obj, &self.enrich_key, |b| self.write_label(b, &j));
        }
        Some(j)
    }

    /// Classifies the event `obj` (scanned from `event`) as preset `g`
    /// (spec §2), and counts it when it is counted. `None`: no readable
    /// destination.
    fn judge(
        &mut self,
        reading: Reading,
        g: usize,
        obj: &Object<'_, '_>,
        event: &[u8],
        now_ms: i64,
        alert: &mut dyn FnMut(&[u8]),
    ) -> Option<Judgement> {
        let preset = match reading {
            Reading::Line => self.presets.get(g)?,
            Reading::Text => self.wrapped.as_ref()?.presets.get(g)?,
        };
        // Most events are on ports the rule does not watch, to addresses no
        // allowlist entry names: for them only the destination and the port
        // are read.
        let target = preset.target(obj);
        let dest = target.destination?.ip();
        let mut j = self.first_look(dest, target.port);
        j.preset = g;
        let Some(dest) = dest else {
            return Some(j); // A host name: neither external nor allowlisted.
        };
        if j.proto == 0
            && (self.allowlist.is_empty() || !self.allowlist.may_match(dest, target.port))
        {
            return Some(j);
        }
        // Read the rest of this event (it scanned as an object already).
        let by_user = preset.grouping == Grouping::ByUser;
        let full = self.details.scan_planned(event, preset.details_plan());
        let r = full.map(|f| preset.details(&f)).unwrap_or_default();
        let c = Connection {
            dest,
            port: target.port,
            bytes_total: None,
            closing: true,
            by_user,
        };
        self.conclude(&mut j, c, &r, now_ms, alert);
        Some(j)
    }

    /// The protocol and the external flag: all an event on an unwatched
    /// port needs.
    fn first_look(&self, dest: Option<IpAddr>, port: Option<u16>) -> Judgement {
        Judgement {
            preset: 0,
            format: None,
            proto: port.map_or(0, |p| self.ports[p as usize]),
            external: dest.map(|d| !self.internal.contains(d)),
            counted: false,
            allowlisted: None,
        }
    }

    /// The allowlist and whether the connection counts (spec §2), for JSON
    /// events and raw records alike; counts it when it does.
    fn conclude(
        &mut self,
        j: &mut Judgement,
        x: Connection,
        r: &Details<'_>,
        now_ms: i64,
        alert: &mut dyn FnMut(&[u8]),
    ) {
        let (dest, port) = (x.dest, x.port);
        let src: Option<IpAddr> = r.source.as_deref().and_then(net::parse_ip);
        j.allowlisted = self.allowlist.find(src, dest, port);
        let (Some(port), Some(src)) = (port, src) else {
            return;
        };
        j.counted = j.proto != 0
            && r.permitted
            && x.closing
            && j.external == Some(true)
            && self.internal.contains(src)
            && j.allowlisted.is_none();
        if !j.counted {
            return;
        }
        self.tally.untimed += u64::from(r.time_ms.is_none());
        let o = Observation {
            time_ms: r.time_ms,
            src,
            dest,
            port,
            protocol: j.proto - 1,
            by_user: x.by_user,
            process: r.process.as_deref().unwrap_or(""),
            user: r.user.as_deref().unwrap_or(""),
            bytes_out: r.bytes_out.unwrap_or(0),
            bytes_in: r.bytes_in.unwrap_or(0),
            bytes_total: x.bytes_total,
        };
        if self.stage == Stage::Classify {
            let mut line = Vec::with_capacity(192);
            write_observation(&mut line, &o, &self.labels[o.protocol as usize]);
            alert(&line);
        } else {
            self.agg.record(&o, now_ms, alert);
        }
    }

    /// A line that is not a JSON object (`e` says why): read by the raw
    /// format whose marker it carries (spec §6), labelled in its own
    /// syntax; otherwise it passes on, reported as `e`.
    fn read_raw(
        &mut self,
        event: &[u8],
        e: ScanError,
        now_ms: i64,
        out: Option<&mut EventOut<'_>>,
        alert: &mut dyn FnMut(&[u8]),
    ) -> Option<Judgement> {
        let line = event.strip_suffix(b"\r").unwrap_or(event);
        let at = line.len();
        let bare = line.last() == Some(&b'|');
        match self.raw.any().then(|| self.raw.read(line)) {
            Some(Line::Record(mut rec)) => {
                self.tally.raw[rec.format as usize] += 1;
                let j = self.judge_raw(&mut rec, now_ms, alert);
                if let Some(out) = out {
                    let label = j.map(|j| self.raw_label(&j));
                    if label.is_some() || matches!(rec.splice, raw::Splice::Columns(_)) {
                        out.edit_with(at, at, |b| {
                            raw::label::write(b, rec.splice, &self.raw_names, label.as_ref(), bare)
                        });
                    }
                }
                j
            }
            Some(Line::ZeekHeader(extend)) => {
                if let (Some(x), Some(out)) = (extend, out) {
                    out.edit_with(at, at, |b| {
                        raw::zeek_tsv::write_extension(b, x, &self.raw_names)
                    });
                }
                None
            }
            Some(Line::Other) | None => {
                if let Some(out) = out {
                    out.unreadable(e);
                }
                None
            }
        }
    }

    /// A raw line held as a string at `event_path` (spec §6): read and
    /// counted; its label goes on the line's top level, as for a JSON
    /// event held as a string.
    fn read_raw_text(
        &mut self,
        text: &[u8],
        now_ms: i64,
        alert: &mut dyn FnMut(&[u8]),
    ) -> Option<Judgement> {
        if !self.raw.any() {
            return None;
        }
        let Line::Record(mut rec) = self.raw.read(text) else {
            return None;
        };
        self.tally.raw[rec.format as usize] += 1;
        self.judge_raw(&mut rec, now_ms, alert)
    }

    /// Classifies and counts a raw record (spec §2, §6); `None`: it has no
    /// destination.
    fn judge_raw(
        &mut self,
        rec: &mut Record<'_>,
        now_ms: i64,
        alert: &mut dyn FnMut(&[u8]),
    ) -> Option<Judgement> {
        let dest = net::parse_ip(rec.destination.as_deref()?);
        let mut j = self.first_look(dest, rec.port);
        j.format = Some(rec.format);
        let Some(dest) = dest else {
            return Some(j);
        };
        if j.proto != 0 {
            // It may count: its time is needed.
            rec.details.time_ms = rec.when.resolve();
        }
        let c = Connection {
            dest,
            port: rec.port,
            bytes_total: rec.bytes_total,
            closing: rec.closing,
            by_user: rec.by_user,
        };
        self.conclude(&mut j, c, &rec.details, now_ms, alert);
        Some(j)
    }

    /// A judgement as the raw label says it.
    fn raw_label(&self, j: &Judgement) -> Label<'_> {
        Label {
            protocol: self.label(j),
            external: j.external,
            counted: j.counted,
            allowlisted: j.allowlisted.map(|i| self.allowlist.reason(i)),
        }
    }

    /// The protocol label of a judgement, if the port is watched.
    fn label(&self, j: &Judgement) -> Option<&str> {
        (j.proto != 0).then(|| self.labels[j.proto as usize - 1].as_str())
    }

    /// The label object (spec §2, Enrichment).
    fn write_label(&self, b: &mut Vec<u8>, j: &Judgement) {
        // Most events: no protocol, not allowlisted, not counted. Their
        // label is one of three texts, written at once.
        if j.proto == 0 && j.allowlisted.is_none() && !j.counted {
            b.extend_from_slice(match j.external {
                Some(true) => br#"{"external":true,"counted":false}"#,
                Some(false) => br#"{"external":false,"counted":false}"#,
                None => br#"{"counted":false}"#,
            });
            return;
        }
        self.write_label_parts(b, j);
    }

    /// [`T1071::write_label`] member by member.
    fn write_label_parts(&self, b: &mut Vec<u8>, j: &Judgement) {
        b.push(b'{');
        if let Some(l) = self.label(j) {
            b.extend_from_slice(b"\"protocol\":");
            write_str(b, l);
            b.push(b',');
        }
        match j.external {
            Some(true) => b.extend_from_slice(b"\"external\":true,"),
            Some(false) => b.extend_from_slice(b"\"external\":false,"),
            None => {}
        }
        b.extend_from_slice(if j.counted {
            b"\"counted\":true"
        } else {
            b"\"counted\":false"
        });
        if let Some(i) = j.allowlisted {
            b.extend_from_slice(b",\"allowlisted\":");
            write_str(b, self.allowlist.reason(i));
        }
        b.push(b'}');
    }

    fn verdict(&self, j: &Judgement) -> Verdict {
        Verdict {
            preset: match j.format {
                Some(f) => f.name(),
                None => self.presets.get(j.preset).map_or("", |p| p.name),
            },
            protocol: self.label(j).map(str::to_string),
            external: j.external,
            counted: j.counted,
            allowlisted: j.allowlisted.map(|i| self.allowlist.reason(i).to_string()),
        }
    }

    /// Classifies one event without the wasm contract (tests, benchmarks).
    pub fn classify(
        &mut self,
        event: &[u8],
        now_ms: i64,
        alerts: &mut Vec<Vec<u8>>,
    ) -> Option<Verdict> {
        let mut scanner = std::mem::take(&mut self.scanner);
        let object = scanner.scan_planned(event, &self.plan);
        let j = self.handle(event, object, now_ms, None, &mut |l| {
            alerts.push(l.to_vec())
        });
        self.scanner = scanner;
        j.map(|j| self.verdict(&j))
    }

    /// Stage `aggregate`: counts one observation record; false when the
    /// line is not one (it then passes on untouched).
    fn aggregate(
        &mut self,
        object: Result<Object<'_, '_>, ScanError>,
        now_ms: i64,
        alert: &mut dyn FnMut(&[u8]),
    ) -> bool {
        let Ok(obj) = object else {
            return false;
        };
        if obj.member(OBSERVATION_MARK).is_none() {
            return false;
        }
        let text = |k: &str| obj.get(k).and_then(|v| v.as_str());
        let int = |k: &str| {
            obj.get(k)
                .and_then(|v| v.as_number_text()?.parse::<i64>().ok())
        };
        // `null`: the event's time could not be read.
        let time_ms = int("time_ms");
        let time_ok = time_ms.is_some() || obj.get("time_ms").is_some_and(|v| v.is_null());
        let (true, Some(src), Some(dest), Some(port), Some(label)) = (
            time_ok,
            text("src").and_then(|s| net::parse_ip(&s)),
            text("dest").and_then(|s| net::parse_ip(&s)),
            int("port").and_then(|p| u16::try_from(p).ok()),
            text("protocol"),
        ) else {
            return false;
        };
        let Some(protocol) = self.labels.iter().position(|l| *l == label) else {
            return false;
        };
        let (process, user) = (text("process"), text("user"));
        let count = |k: &str| int(k).and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        self.agg.record(
            &Observation {
                time_ms,
                src,
                dest,
                port,
                protocol: protocol as u8,
                by_user: obj.get("by_user").and_then(|v| v.as_bool()) == Some(true),
                process: process.as_deref().unwrap_or(""),
                user: user.as_deref().unwrap_or(""),
                bytes_out: count("bytes_out"),
                bytes_in: count("bytes_in"),
                bytes_total: int("bytes_total").and_then(|n| u64::try_from(n).ok()),
            },
            now_ms,
            alert,
        );
        true
    }

    /// Logs this run's summary ([`Tally`]): once, at the run's end.
    fn log_summary(&self) {
        let late = self.agg.stats.late_events.saturating_sub(self.late_before);
        for (level, line) in self.tally.summary(self.stage, late, self.foreign) {
            rulebox_plugin::log(level, &line);
        }
    }

    /// Logs counters that changed since they were last reported.
    fn report(&mut self) {
        if self.foreign != self.reported_foreign {
            rulebox_plugin::log(
                LogLevel::Warn,
                &format!(
                    "{} input lines were not observation records from a `classify` stage: passed on untouched",
                    self.foreign - self.reported_foreign
                ),
            );
            self.reported_foreign = self.foreign;
        }
        let s = self.agg.stats;
        if s.late_events != self.reported.late_events {
            rulebox_plugin::log(
                LogLevel::Warn,
                &format!(
                    "{} late events (for closed windows) not aggregated",
                    s.late_events - self.reported.late_events
                ),
            );
        }
        self.reported = s;
    }
}

impl Rule for T1071 {
    const OUTPUTS: &'static [&'static str] = &["alerts"];

    fn new(config: &[u8]) -> Result<Self, String> {
        T1071::from_config(Config::from_json(config)?)
    }

    fn outputs(&self) -> &'static [&'static str] {
        match self.stage {
            Stage::Classify => &["observations"],
            Stage::All | Stage::Aggregate => &["alerts"],
        }
    }

    /// Only `classify` keeps nothing across batches (each event's label
    /// and observation depend on that event alone); `all` and `aggregate`
    /// count keys in windows, which several instances would split.
    fn parallel(&self) -> bool {
        self.stage == Stage::Classify
    }

    const READS_OBJECTS: bool = true;

    /// The enrichment key (replaced when present) and, with `event_path`,
    /// its keys (the rule looks the event up there), or for stage
    /// `aggregate` the observation record's members: the preset fields come
    /// through the path plan.
    fn object_keys(&self) -> Option<Vec<String>> {
        Some(if self.stage == Stage::Aggregate {
            OBSERVATION_FIELDS.iter().map(|s| s.to_string()).collect()
        } else {
            let mut keys = vec![self.enrich_key.as_str().to_string()];
            if let Some(w) = &self.wrapped {
                keys.extend(KeySet::path_keys(&w.path).map(str::to_string));
            }
            keys
        })
    }

    /// The presets' fields, one path group per preset (for `auto`, chosen
    /// by the destination paths).
    fn object_paths(&self) -> Option<PathPlan> {
        (self.stage != Stage::Aggregate).then(|| self.plan.clone())
    }

    fn on_object(
        &mut self,
        event: &[u8],
        object: Result<Object<'_, '_>, ScanError>,
        now_ms: i64,
        out: &mut EventOut<'_>,
    ) {
        let mut pending: Vec<Vec<u8>> = Vec::new();
        if self.stage == Stage::Aggregate {
            if self.aggregate(object, now_ms, &mut |l| pending.push(l.to_vec())) {
                // Consumed: an observation is not an event to pass on.
                self.tally.observations += 1;
                out.drop_event();
            } else {
                self.foreign += 1;
            }
        } else {
            self.handle(event, object, now_ms, Some(out), &mut |l| {
                pending.push(l.to_vec())
            });
        }
        if !pending.is_empty() {
            let mut e = out.emitter();
            for l in &pending {
                e.emit(ALERTS, l);
            }
        }
    }

    fn on_tick(&mut self, _now_ms: i64, out: &mut Emitter<'_>) {
        self.agg.tick(&mut |l| out.emit(ALERTS, l));
        self.report();
    }

    fn on_flush(&mut self, _now_ms: i64, out: &mut Emitter<'_>) {
        self.agg.flush(&mut |l| out.emit(ALERTS, l));
        self.report();
        self.log_summary();
    }

    fn snapshot(&mut self, _now_ms: i64, out: &mut Vec<u8>) {
        self.report();
        self.log_summary();
        if self.stage == Stage::Classify {
            return; // Nothing aggregated here: nothing to keep.
        }
        self.agg.snapshot(out);
    }

    /// The windows only: a checkpoint logs nothing.
    fn checkpoint(&mut self, _now_ms: i64, out: &mut Vec<u8>) {
        if self.stage != Stage::Classify {
            self.agg.snapshot(out);
        }
    }

    fn restore(&mut self, data: &[u8], _now_ms: i64) -> Result<(), String> {
        self.agg.restore(data)?;
        self.reported = self.agg.stats;
        self.late_before = self.agg.stats.late_events;
        rulebox_plugin::log(
            LogLevel::Info,
            &format!(
                "restored {} tracked keys from the snapshot",
                self.agg.tracked_keys()
            ),
        );
        Ok(())
    }
}

/// Port -> protocol index + 1 (0: not watched), and the labels.
fn watched_ports(cfg: &Config) -> Result<(Box<[u8]>, Vec<String>), String> {
    let mut ports = vec![0u8; 65_536].into_boxed_slice();
    let mut labels = Vec::new();
    for (i, p) in cfg.protocols.iter().enumerate() {
        if p.label.is_empty() {
            return Err(format!("protocols[{i}]: label must not be empty"));
        }
        labels.push(p.label.clone());
        for &port in &p.ports {
            if ports[port as usize] != 0 {
                return Err(format!("protocols[{i}]: port {port} is listed twice"));
            }
            ports[port as usize] = (i + 1) as u8;
        }
    }
    Ok((ports, labels))
}

/// The presets in use (for `auto`, in the order tried) with paths inside
/// `event_path`, their path plan, and with `event_path` the same presets
/// for an event held as a JSON string.
fn presets(cfg: &Config) -> Result<(Vec<Preset>, PathPlan, Option<Wrapped>), String> {
    let auto = cfg.schema == PresetName::Auto;
    let make = |event_path: Option<&str>| {
        let presets = if auto {
            Preset::auto_order(&cfg.fields, event_path)
        } else {
            vec![Preset::new(cfg.schema, &cfg.fields, event_path)]
        };
        let plan = schema::plan(&presets, auto);
        (presets, plan)
    };
    let (presets, plan) = make(cfg.event_path.as_deref());
    // The host resolves the plan outside the plugin's deadline, so the
    // contract bounds its paths' depth.
    let deep = plan.groups().iter().flat_map(|g| g.when().chain(g.paths()));
    if let Some(p) = deep
        .into_iter()
        .find(|p| p.matches('.').count() > MAX_PATH_DOTS)
    {
        return Err(format!(
            "field path {p:?} (with event_path in front) has more than {MAX_PATH_DOTS} dots"
        ));
    }
    let wrapped = cfg.event_path.as_ref().map(|path| {
        let (presets, plan) = make(None);
        Wrapped {
            path: path.clone(),
            presets,
            plan,
            scanner: Scanner::new(),
        }
    });
    Ok((presets, plan, wrapped))
}

/// An observation record (stage `classify`): one NDJSON object the
/// `aggregate` stage reads back. `time_ms` is `null` when the event's time
/// could not be read: the `aggregate` stage, which holds the clock, places
/// it (spec §3).
fn write_observation(b: &mut Vec<u8>, o: &Observation<'_>, label: &str) {
    use std::io::Write;
    let _ = write!(b, "{{\"{OBSERVATION_MARK}\":1,\"time_ms\":");
    match o.time_ms {
        Some(t) => {
            let _ = write!(b, "{t}");
        }
        None => b.extend_from_slice(b"null"),
    }
    let _ = write!(
        b,
        ",\"src\":\"{}\",\"dest\":\"{}\",\"port\":{},\"protocol\":",
        o.src, o.dest, o.port
    );
    write_str(b, label);
    let _ = write!(b, ",\"by_user\":{},\"process\":", o.by_user);
    write_str(b, o.process);
    b.extend_from_slice(b",\"user\":");
    write_str(b, o.user);
    let _ = write!(
        b,
        ",\"bytes_out\":{},\"bytes_in\":{}",
        o.bytes_out, o.bytes_in
    );
    if let Some(t) = o.bytes_total {
        let _ = write!(b, ",\"bytes_total\":{t}");
    }
    b.push(b'}');
}

/// What the module says about itself (its `rulebox.manifest` section):
/// shown by `rulebox inspect`; `config_schema` is what `rulebox validate`
/// checks `[transforms.<id>.config]` against.
pub const MANIFEST: rulebox_plugin::Manifest<'static> = rulebox_plugin::Manifest {
    name: "t1071-002",
    version: env!("CARGO_PKG_VERSION"),
    description: "MITRE ATT&CK T1071.002 (File Transfer Protocols): outbound FTP/FTPS, SMB and TFTP connections from internal sources to external addresses",
    author: "rulebox",
    techniques: &["T1071.002"],
    // `alerts` (stage all, aggregate) or `observations` (stage classify).
    outputs: &["alerts", "observations"],
    config_schema: Some(include_str!("../config.schema.json")),
};

rulebox_plugin::export_rule!(T1071, manifest = MANIFEST);

#[cfg(test)]
mod tests;

#[cfg(test)]
mod raw_tests;
