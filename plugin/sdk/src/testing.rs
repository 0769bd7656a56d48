//! A harness for a rule's unit tests, in plain `cargo test`: lines in,
//! what comes out per output, at a simulated clock. A [`Harness`] drives
//! the same [`Runner`] the wasm exports forward to, as the host drives it:
//! it reads the init frame, indexes each batch natively for a rule that
//! reads objects (the objects index the sandbox hands the guest, so a rule
//! that looks up a key it did not declare in [`Rule::object_keys`] fails
//! here as it would in the pipeline), and applies each result frame to its
//! batch with [`ResultFrame::apply`], the one reading the host uses. An
//! edit or record the host would refuse fails the test.
//!
//! ```
//! use rulebox_plugin::{EventOut, Rule, json::{Object, ScanError}};
//! use rulebox_plugin::testing::Harness;
//!
//! /// Tags every event with `"seen":true`.
//! struct Seen;
//! impl Rule for Seen {
//!     const READS_OBJECTS: bool = true;
//!     fn new(_config: &[u8]) -> Result<Self, String> { Ok(Seen) }
//!     fn on_object(&mut self, _event: &[u8], object: Result<Object<'_, '_>, ScanError>,
//!                  _now_ms: i64, out: &mut EventOut<'_>) {
//!         match object {
//!             Ok(obj) => out.set_field(&obj, "seen", |b| b.extend_from_slice(b"true")),
//!             Err(e) => out.unreadable(e),
//!         }
//!     }
//! }
//!
//! let mut h = Harness::<Seen>::new("{}").unwrap();
//! let out = h.process(&[r#"{"a":1}"#, "not json"]);
//! assert_eq!(out.lines("events"), [r#"{"a":1,"seen":true}"#, "not json"]);
//! assert_eq!(out.events()[1].reason, "malformed");
//! ```
//!
//! The configuration is the JSON text the host passes (`[transforms.<id>.config]`
//! as JSON), or a TOML table as written in a pipeline file
//! ([`Harness::from_toml`]). The clock starts at [`Harness::START_MS`];
//! [`Harness::advance`] moves it on and ticks, as `rulebox test`'s
//! `advance_secs` does. [`Harness::restart`] snapshots the rule, builds a
//! new one with the same configuration and restores the snapshot into it,
//! as a graceful restart of the pipeline does.

use std::fmt;

use crate::abi::frame::index::{IndexRequest, index_batch};
use crate::abi::{EventResult, FrameOutputs, InitFrame, Outcome, Reads, Refused, ResultFrame};
use crate::json::Scanner;
use crate::{Rule, Runner};

/// The name of the default event output (output 0), as pipelines and
/// `rulebox test` files call it.
pub const EVENTS: &str = "events";

/// Why a [`Harness`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HarnessError {
    /// The TOML text given as configuration does not parse.
    Toml(String),
    /// The rule refused its configuration ([`Rule::new`]'s error, or a
    /// declaration the host refuses).
    Init(String),
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::Toml(e) => write!(f, "the configuration is not TOML: {e}"),
            HarnessError::Init(e) => write!(f, "the rule refused its configuration: {e}"),
        }
    }
}

impl std::error::Error for HarnessError {}

/// One event as it leaves the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event's line as it leaves (a dropped event's as it came).
    pub line: String,
    /// The output it is routed to ([`EVENTS`] unless the rule routed it).
    pub output: String,
    /// Whether the rule edited it.
    pub edited: bool,
    /// Whether the rule dropped it.
    pub dropped: bool,
    /// Why the rule could not read it (`"ok"`, `"malformed"`,
    /// `"not_object"`, `"other"`), as the host counts it.
    pub reason: &'static str,
}

/// What one call (a batch, a tick, a flush) comes to: every event of the
/// batch in order, then the records the rule emitted, by output name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    events: Vec<Event>,
    records: Vec<(String, String)>,
}

impl Output {
    /// Every event of the batch, in order, dropped ones included.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Every record, in order: (output name, line).
    pub fn records(&self) -> &[(String, String)] {
        &self.records
    }

    /// What a sink reading `output` receives from this call: the events
    /// routed there and not dropped, then the records emitted there.
    pub fn lines(&self, output: &str) -> Vec<&str> {
        let events = self
            .events
            .iter()
            .filter(|e| !e.dropped && e.output == output)
            .map(|e| e.line.as_str());
        let records = self
            .records
            .iter()
            .filter(|(o, _)| o == output)
            .map(|(_, l)| l.as_str());
        events.chain(records).collect()
    }

    /// [`Output::lines`] of `output` parsed as JSON; panics on a line that
    /// is not JSON, naming it.
    pub fn json(&self, output: &str) -> Vec<serde_json::Value> {
        self.lines(output)
            .into_iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{output} line {l:?}: {e}")))
            .collect()
    }

    fn append(&mut self, other: Output) {
        self.events.extend(other.events);
        self.records.extend(other.records);
    }
}

/// Drives a [`Rule`] through its [`Runner`] as the host does, at a
/// simulated clock. Panics (failing the test) when the rule answers a
/// call with an error or writes a frame the host would refuse part of.
pub struct Harness<R: Rule> {
    runner: Runner<R>,
    config: Vec<u8>,
    /// Output names by id: [`EVENTS`], then the rule's declared ones.
    outputs: Vec<String>,
    /// The objects index the host would build, for a rule that reads objects.
    index: Option<(IndexRequest, Scanner)>,
    now_ms: i64,
}

impl<R: Rule> Harness<R> {
    /// Where the clock starts: 2025-01-01T00:00:00Z.
    pub const START_MS: i64 = 1_735_689_600_000;

    /// Builds the rule from its configuration as JSON text (`"{}"` for
    /// none), as the host does.
    pub fn new(config_json: &str) -> Result<Self, HarnessError> {
        let config = config_json.as_bytes().to_vec();
        let mut runner = Runner::<R>::new();
        let (outputs, index) = match InitFrame::parse(runner.init(&config)) {
            Ok(InitFrame::Ok { outputs, reads, .. }) => {
                let mut names = vec![EVENTS.to_string()];
                names.extend(outputs.iter().map(|o| o.to_string()));
                let index = match &reads {
                    Reads::Objects(o) => Some((IndexRequest::from_reads(o), Scanner::new())),
                    Reads::Bytes => None,
                };
                (names, index)
            }
            Ok(InitFrame::Error(e)) => return Err(HarnessError::Init(e.to_string())),
            Err(e) => panic!("the runner wrote an init frame the host cannot read: {e}"),
        };
        Ok(Harness {
            runner,
            config,
            outputs,
            index,
            now_ms: Self::START_MS,
        })
    }

    /// Builds the rule from its configuration as a TOML table, as written
    /// under `[transforms.<id>.config]` in a pipeline file.
    pub fn from_toml(config_toml: &str) -> Result<Self, HarnessError> {
        let table: toml::Table =
            toml::from_str(config_toml).map_err(|e| HarnessError::Toml(e.to_string()))?;
        let json = serde_json::to_string(&table).map_err(|e| HarnessError::Toml(e.to_string()))?;
        Self::new(&json)
    }

    /// The clock, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// Sets the clock (it may go back: the rule is handed what it is given).
    pub fn set_now_ms(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
    }

    /// The output names by id: [`EVENTS`], then the declared ones.
    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }

    /// The rule, to look at its state.
    pub fn rule(&self) -> &R {
        self.runner.rule().expect("built in Harness::new")
    }

    /// Processes `lines` (one event each, without `\n`) as one batch at the
    /// clock.
    pub fn process(&mut self, lines: &[&str]) -> Output {
        let mut batch = Vec::new();
        for line in lines {
            assert!(!line.contains('\n'), "an event is one line: {line:?}");
            batch.extend_from_slice(line.as_bytes());
            batch.push(b'\n');
        }
        let count = lines.len();
        let frame = match &mut self.index {
            Some((request, scanner)) => {
                let mut index = Vec::new();
                if let Err(e) = index_batch(scanner, request, &batch, count, &mut index) {
                    panic!("the host refuses this batch: its path plan costs too much ({e:?})");
                }
                self.runner
                    .process_objects(&batch, &index, count, self.now_ms)
            }
            None => self.runner.process(&batch, count, self.now_ms),
        }
        .to_vec();
        read_frame(&frame, "process", &self.outputs, Some(&batch))
    }

    /// Calls the rule's tick at the clock.
    pub fn tick(&mut self) -> Output {
        let frame = self.runner.tick(self.now_ms).to_vec();
        read_frame(&frame, "tick", &self.outputs, None)
    }

    /// Moves the clock on by `secs` seconds, then ticks.
    pub fn advance(&mut self, secs: u64) -> Output {
        self.now_ms = self
            .now_ms
            .saturating_add((secs as i64).saturating_mul(1000));
        self.tick()
    }

    /// Calls the rule's flush (end of input) at the clock.
    pub fn flush(&mut self) -> Output {
        let frame = self.runner.flush(self.now_ms).to_vec();
        read_frame(&frame, "flush", &self.outputs, None)
    }

    /// The rule's snapshot at the clock (what a graceful shutdown keeps).
    pub fn snapshot(&mut self) -> Vec<u8> {
        let frame = self.runner.snapshot(self.now_ms).to_vec();
        state_payload(&frame, "snapshot")
    }

    /// The rule's checkpoint at the clock (the state, the rule going on).
    pub fn checkpoint(&mut self) -> Vec<u8> {
        let frame = self.runner.checkpoint(self.now_ms).to_vec();
        state_payload(&frame, "checkpoint")
    }

    /// Restores `state` into the rule, as the host does at start; the
    /// rule's error when it refuses them. Empty state is nothing to restore.
    pub fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        let frame = self.runner.restore(state, self.now_ms).to_vec();
        match ResultFrame::parse(&frame) {
            Ok(f) => match f.error() {
                None => Ok(()),
                Some(e) => Err(String::from_utf8_lossy(e).into_owned()),
            },
            Err(e) => panic!("restore: the host cannot read the frame: {e}"),
        }
    }

    /// A graceful restart: snapshots the rule, builds a new one from the
    /// same configuration at the same clock and restores the snapshot into
    /// it. Returns the snapshot's size in bytes, or the new rule's error
    /// when it refuses its own snapshot.
    pub fn restart(&mut self) -> Result<usize, String> {
        let state = self.snapshot();
        let config = String::from_utf8(std::mem::take(&mut self.config)).expect("was a &str");
        let now = self.now_ms;
        *self = Self::new(&config).map_err(|e| e.to_string())?;
        self.now_ms = now;
        self.restore(&state)?;
        Ok(state.len())
    }

    /// Runs a whole input as `rulebox test` does: each batch at the clock,
    /// `advance_secs` between batches (then a tick), the final flush; all
    /// of it in one [`Output`].
    pub fn run(&mut self, batches: &[&[&str]], advance_secs: u64) -> Output {
        let mut all = Output::default();
        for (i, batch) in batches.iter().enumerate() {
            if i > 0 {
                all.append(self.advance(advance_secs));
            }
            all.append(self.process(batch));
        }
        all.append(self.flush());
        all
    }
}

// By hand: a rule need not be `Debug` for its harness to be (`unwrap_err`).
impl<R: Rule> fmt::Debug for Harness<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Harness")
            .field("outputs", &self.outputs)
            .field("now_ms", &self.now_ms)
            .finish_non_exhaustive()
    }
}

/// A result frame of `call`, applied to `batch` (a tick's or flush's has
/// none), with outputs named; panics on what the host would refuse.
fn read_frame(frame: &[u8], call: &str, names: &[String], batch: Option<&[u8]>) -> Output {
    let f = ResultFrame::parse(frame)
        .unwrap_or_else(|e| panic!("{call}: the host cannot read the frame: {e}"));
    if let Some(e) = f.error() {
        panic!(
            "{call}: the rule answered an error: {}",
            String::from_utf8_lossy(e)
        );
    }
    let mut out = Named {
        names,
        call,
        out: Output::default(),
    };
    match batch {
        Some(batch) => f.apply(batch, &mut out),
        None => {
            assert_eq!(f.n_events(), 0, "{call}: event results outside a batch");
            f.apply_records(&mut out);
        }
    }
    out.out
}

/// The payload of a snapshot or checkpoint frame.
fn state_payload(frame: &[u8], call: &str) -> Vec<u8> {
    let f = ResultFrame::parse(frame)
        .unwrap_or_else(|e| panic!("{call}: the host cannot read the frame: {e}"));
    if let Some(e) = f.error() {
        panic!(
            "{call}: the rule answered an error: {}",
            String::from_utf8_lossy(e)
        );
    }
    f.payload_area().to_vec()
}

/// Collects what a frame says, outputs by name.
struct Named<'a> {
    names: &'a [String],
    call: &'a str,
    out: Output,
}

impl Named<'_> {
    fn name(&self, output: u32) -> String {
        match self.names.get(output as usize) {
            Some(n) => n.clone(),
            None => panic!(
                "{}: output {output} is not declared (outputs: {:?})",
                self.call, self.names
            ),
        }
    }
}

impl FrameOutputs for Named<'_> {
    fn event(&mut self, _i: usize, result: &EventResult, outcome: Outcome<'_>) {
        let line = String::from_utf8_lossy(&outcome.parts().concat()).into_owned();
        let output = self.name(result.output as u32);
        self.out.events.push(Event {
            line,
            output,
            edited: matches!(outcome, Outcome::Edit(_)),
            dropped: matches!(outcome, Outcome::Drop(_)),
            reason: result.reason.as_str(),
        });
    }

    fn record(&mut self, output: u32, line: &[u8]) {
        let name = self.name(output);
        let line = String::from_utf8_lossy(line).into_owned();
        self.out.records.push((name, line));
    }

    fn refused(&mut self, what: Refused) {
        panic!(
            "{}: the host refuses part of the frame: {what:?}",
            self.call
        )
    }
}

#[cfg(test)]
#[path = "testing_tests.rs"]
mod tests;
