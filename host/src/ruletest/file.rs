//! A rule test as a detection engineer writes it: a TOML file naming the
//! module, the rule's configuration, the input in steps (batches of events
//! at a simulated clock, the clock moving on with a tick) and what must
//! come out. The format, with every key:
//!
//! ```toml
//! name = "four SMB connections alert"     # default: the file's stem
//! module = "../rule.wasm"                 # relative to this file (or --module)
//! now = "2025-11-21T09:00:00Z"            # the clock at the start
//! flush = true                            # the final flush after the steps
//!
//! [config]                                # the rule's configuration
//! schema = "cim"
//!
//! [[step]]                                # a batch, processed at the clock
//! events = ['{"src_ip":"10.0.0.5", ...}', '...']
//! [[step]]
//! advance_secs = 90000                    # the clock moves on; then a tick
//!
//! [counts]                                # lines out, per output
//! events = 4                              # the default output
//! alerts = 1                              # a named output
//!
//! [[expect]]                              # one output line's fields
//! output = "alerts"                       # default: "events"
//! line = 1                                # 1-based; default: the next one
//! fields = { status = "final", connection_count = 4, "t1071.counted" = true }
//! ```
//!
//! A field is a dotted path into the line's JSON (a key holding dots is
//! found too); the expected value is compared as JSON (numbers by value).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub module: Option<PathBuf>,
    #[serde(default)]
    pub now: Option<String>,
    #[serde(default = "yes")]
    pub flush: bool,
    #[serde(default)]
    pub config: Option<toml::Table>,
    #[serde(default)]
    pub step: Vec<Step>,
    #[serde(default)]
    pub counts: toml::Table,
    #[serde(default)]
    pub expect: Vec<Expect>,
}

fn yes() -> bool {
    true
}

/// A batch of events, or the clock moving on (then a tick).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub advance_secs: Option<u64>,
}

/// Fields one output line must have.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default = "events_output")]
    pub output: String,
    #[serde(default)]
    pub line: Option<usize>,
    pub fields: toml::Table,
}

fn events_output() -> String {
    "events".into()
}

impl TestFile {
    /// Reads and parses `path`; the error says where.
    pub fn read(path: &Path) -> Result<TestFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
        let t: TestFile = toml::from_str(&text).map_err(|e| e.to_string())?;
        for (i, s) in t.step.iter().enumerate() {
            if s.events.is_empty() == s.advance_secs.is_none() {
                return Err(format!(
                    "step {}: give either events or advance_secs",
                    i + 1
                ));
            }
            if let Some(e) = s.events.iter().find(|e| e.contains('\n')) {
                return Err(format!("step {}: an event holds a newline: {e:?}", i + 1));
            }
        }
        Ok(t)
    }

    /// The clock at the start, Unix ms (default: 2000-01-01T00:00:00Z).
    pub fn start_ms(&self) -> Result<i64, String> {
        match &self.now {
            None => Ok(946_684_800_000),
            Some(s) => rulebox_abi::time::parse_rfc3339(s)
                .ok_or_else(|| format!("now = {s:?}: not an RFC 3339 time")),
        }
    }
}
