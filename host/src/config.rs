//! Pipeline configuration, read like Vector's: `[sources.<id>]`,
//! `[transforms.<id>]` with `inputs`, `[sinks.<id>]` with `inputs`. An input
//! names a source, a transform (its default output) or `<transform>.<output>`.
//! Relative paths are resolved against the configuration file's folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::transform::{OnError, Options};
use std::time::Duration;

/// A configuration problem, with where it is.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {message}", .line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Where the host keeps state (the compiled-module cache). Created if
    /// missing. Default: `data` beside the configuration file.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    #[serde(default)]
    pub transforms: BTreeMap<String, TransformConfig>,
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// NDJSON lines on standard input, until end of input.
    Stdin {
        /// Most events handed on in one batch.
        #[serde(default = "default_batch_events")]
        batch_max_events: usize,
        /// `ndjson`, or `mmexternal` when rsyslog runs rulebox as its
        /// message-modification program (answered by a stdout sink with
        /// the same protocol; see [`crate::exec`]).
        #[serde(default)]
        protocol: StdioProtocol,
        /// With `mmexternal`: rsyslog's `interface.input` (`msg`, `rawmsg`
        /// or `fulljson`).
        #[serde(default)]
        mmexternal_input: crate::exec::Input,
    },
    /// Splunk HTTP Event Collector: `/services/collector/event` (and
    /// `/services/collector`), `/raw` and `/health`, token checked, gzip
    /// bodies. A request is answered once its events are written.
    SplunkHec {
        address: String,
        /// Accepted tokens (`Authorization: Splunk <token>`).
        tokens: Vec<String>,
        #[serde(default = "default_body_bytes")]
        max_body_bytes: usize,
        #[serde(default = "default_batch_events")]
        batch_max_events: usize,
        /// Longest a request waits to be taken and written before it is
        /// answered 503 (the client then retries).
        #[serde(default = "default_ack_timeout")]
        ack_timeout_secs: u64,
    },
    /// NDJSON bodies POSTed to `path`; answered once written.
    Http {
        address: String,
        #[serde(default = "default_http_path")]
        path: String,
        #[serde(default = "default_body_bytes")]
        max_body_bytes: usize,
        #[serde(default = "default_batch_events")]
        batch_max_events: usize,
        #[serde(default = "default_ack_timeout")]
        ack_timeout_secs: u64,
    },
    /// NDJSON lines over TCP connections.
    Tcp {
        address: String,
        #[serde(default = "default_batch_events")]
        batch_max_events: usize,
        /// A line still unended past this closes its connection.
        #[serde(default = "default_max_message")]
        max_line_bytes: usize,
    },
    /// Syslog (RFC 5424 or RFC 3164) over TCP (octet counting or LF
    /// framing) or UDP; a JSON body is the event.
    Syslog {
        address: String,
        #[serde(default)]
        mode: SyslogMode,
        #[serde(default = "default_max_message")]
        max_message_bytes: usize,
        #[serde(default = "default_batch_events")]
        batch_max_events: usize,
    },
    /// NDJSON lines from a file.
    File {
        path: PathBuf,
        /// Keep reading as the file grows (until SIGINT/SIGTERM) instead of
        /// stopping at its end.
        #[serde(default)]
        follow: bool,
        /// How often a followed file is polled for new data.
        #[serde(default = "default_poll_ms")]
        poll_interval_ms: u64,
        #[serde(default = "default_batch_events")]
        batch_max_events: usize,
        /// Keep the read position under `data_dir/checkpoints`, advanced once
        /// every sink has written the events, and resume from it at start.
        /// Default: on for `follow = true`, off otherwise (so a one-shot run
        /// over a file reads it whole every time).
        #[serde(default)]
        checkpoint: Option<bool>,
        /// How often the checkpoint is written (and at exit).
        #[serde(default = "default_checkpoint_ms")]
        checkpoint_interval_ms: u64,
    },
}

/// How stdin and stdout carry events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StdioProtocol {
    #[default]
    Ndjson,
    Mmexternal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogMode {
    #[default]
    Tcp,
    Udp,
}

impl SourceConfig {
    /// Whether this source keeps a checkpoint.
    pub fn checkpoints(&self) -> bool {
        match self {
            SourceConfig::File {
                checkpoint, follow, ..
            } => checkpoint.unwrap_or(*follow),
            _ => false,
        }
    }

    /// Whether this is stdin speaking rsyslog's mmexternal protocol.
    pub fn is_mmexternal(&self) -> bool {
        matches!(
            self,
            SourceConfig::Stdin {
                protocol: StdioProtocol::Mmexternal,
                ..
            }
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransformConfig {
    /// A sandboxed plugin.
    Wasm(WasmTransformConfig),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WasmTransformConfig {
    pub inputs: Vec<String>,
    /// Path to the plugin's `.wasm`.
    pub module: PathBuf,
    /// How often the plugin's tick runs (processing time).
    #[serde(default = "default_flush_secs")]
    pub flush_interval_secs: u64,
    /// Cap on the plugin's linear memory, MiB.
    #[serde(default = "default_memory_mib")]
    pub max_memory_mib: usize,
    /// Longest one call into the plugin may run, ms.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// Lines longer than this never reach the plugin; they go by `on_error`.
    #[serde(default = "default_max_line")]
    pub max_line_bytes: usize,
    /// What happens to events the plugin could not process (it failed, is
    /// backing off or quarantined; the line is oversize or not UTF-8):
    /// `pass_through` (untouched, JSON objects tagged with `error_field`),
    /// `drop`, or `dead_letter` (to the `<id>.dead_letter` output).
    #[serde(default)]
    pub on_error: OnError,
    /// The field `pass_through` adds to an unprocessed JSON object; "" for none.
    #[serde(default = "default_error_field")]
    pub error_field: String,
    /// Wait before the second fresh instance after failures in a row;
    /// doubles with each further failure up to `restart_backoff_max_ms`.
    #[serde(default = "default_backoff_ms")]
    pub restart_backoff_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    pub restart_backoff_max_ms: u64,
    /// Failures in a row after which the plugin is not called again.
    #[serde(default = "default_quarantine")]
    pub quarantine_after: u32,
    /// On SIGINT/SIGTERM, save the plugin's state under `data_dir/state`
    /// (instead of the final flush) and restore it at the next start.
    #[serde(default = "default_true")]
    pub persist_state: bool,
    /// Deadline of the snapshot and restore calls, ms.
    #[serde(default = "default_state_deadline_ms")]
    pub state_deadline_ms: u64,
    /// Plugin instances working on this stage in parallel, each on its own
    /// thread; batches are dealt out in turn and their outputs leave in
    /// input order. Each instance keeps its own state: more than one is for
    /// stages whose output does not depend on what other batches held (the
    /// T1071.002 rule's `stage = "classify"`).
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// The plugin's own configuration, handed over as JSON at start.
    #[serde(default)]
    pub config: Option<toml::Table>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    Stdout {
        inputs: Vec<String>,
        /// `ndjson`, or `mmexternal`: one answer per line rsyslog sent.
        #[serde(default)]
        protocol: StdioProtocol,
        /// With `mmexternal`: `msg`, `vars` (`$!`) or `msg_and_vars`.
        #[serde(default)]
        mmexternal_reply: crate::exec::Reply,
    },
    /// Splunk HEC: envelopes POSTed to `endpoint` (a base such as
    /// `http://splunk:8088`, or a full `/services/collector/event` URI).
    SplunkHec {
        inputs: Vec<String>,
        endpoint: String,
        token: String,
        /// Envelope keys for events that do not carry their own.
        #[serde(default)]
        index: Option<String>,
        #[serde(default)]
        sourcetype: Option<String>,
        #[serde(default)]
        source: Option<String>,
        #[serde(default)]
        host: Option<String>,
        #[serde(default = "default_true")]
        gzip: bool,
        #[serde(default = "default_sink_batch_events")]
        batch_max_events: usize,
        #[serde(default = "default_sink_batch_bytes")]
        batch_max_bytes: usize,
        #[serde(default = "default_request_timeout")]
        request_timeout_secs: u64,
        #[serde(default)]
        retry: Retry,
    },
    /// NDJSON POSTed to `uri`.
    Http {
        inputs: Vec<String>,
        uri: String,
        /// Extra request headers (say, `Authorization`).
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default)]
        gzip: bool,
        #[serde(default = "default_sink_batch_events")]
        batch_max_events: usize,
        #[serde(default = "default_sink_batch_bytes")]
        batch_max_bytes: usize,
        #[serde(default = "default_request_timeout")]
        request_timeout_secs: u64,
        #[serde(default)]
        retry: Retry,
    },
    /// NDJSON lines over one TCP connection (reconnected as needed).
    Tcp {
        inputs: Vec<String>,
        address: String,
        #[serde(default = "default_sink_batch_events")]
        batch_max_events: usize,
        #[serde(default = "default_sink_batch_bytes")]
        batch_max_bytes: usize,
        #[serde(default = "default_request_timeout")]
        request_timeout_secs: u64,
        #[serde(default)]
        retry: Retry,
    },
    File {
        inputs: Vec<String>,
        path: PathBuf,
        /// Append to an existing file (the default: a restart resuming from a
        /// checkpoint must not erase what was written) or, when false,
        /// replace it at start.
        #[serde(default = "default_true")]
        append: bool,
    },
}

/// Batching and retrying of a network sink.
#[derive(Debug, Clone)]
pub struct NetSinkCommon {
    pub batch_max_events: usize,
    pub batch_max_bytes: usize,
    pub request_timeout: Duration,
    pub retry: Retry,
}

/// Retrying a failed delivery (connection error, 5xx, 429, 408).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// First wait, doubling up to `max_ms`.
    #[serde(default = "default_retry_initial")]
    pub initial_ms: u64,
    #[serde(default = "default_retry_max")]
    pub max_ms: u64,
    /// Give a batch up (counted as write errors) after this long; 0: never.
    #[serde(default)]
    pub limit_secs: u64,
    /// After SIGINT/SIGTERM, give up after at most this long.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_secs: u64,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            initial_ms: default_retry_initial(),
            max_ms: default_retry_max(),
            limit_secs: 0,
            shutdown_grace_secs: default_shutdown_grace(),
        }
    }
}

impl SinkConfig {
    pub fn inputs(&self) -> &[String] {
        match self {
            SinkConfig::Stdout { inputs, .. }
            | SinkConfig::File { inputs, .. }
            | SinkConfig::SplunkHec { inputs, .. }
            | SinkConfig::Http { inputs, .. }
            | SinkConfig::Tcp { inputs, .. } => inputs,
        }
    }

    /// Batching and retrying, for the network sinks.
    pub fn net(&self) -> Option<NetSinkCommon> {
        match self {
            SinkConfig::SplunkHec {
                batch_max_events,
                batch_max_bytes,
                request_timeout_secs,
                retry,
                ..
            }
            | SinkConfig::Http {
                batch_max_events,
                batch_max_bytes,
                request_timeout_secs,
                retry,
                ..
            }
            | SinkConfig::Tcp {
                batch_max_events,
                batch_max_bytes,
                request_timeout_secs,
                retry,
                ..
            } => Some(NetSinkCommon {
                batch_max_events: *batch_max_events,
                batch_max_bytes: *batch_max_bytes,
                request_timeout: Duration::from_secs(*request_timeout_secs),
                retry: retry.clone(),
            }),
            _ => None,
        }
    }

    /// Whether this is stdout answering rsyslog's mmexternal.
    pub fn is_mmexternal(&self) -> bool {
        matches!(
            self,
            SinkConfig::Stdout {
                protocol: StdioProtocol::Mmexternal,
                ..
            }
        )
    }
}

impl TransformConfig {
    pub fn inputs(&self) -> &[String] {
        match self {
            TransformConfig::Wasm(w) => &w.inputs,
        }
    }
}

impl WasmTransformConfig {
    pub fn options(&self) -> Options {
        Options {
            max_line_bytes: self.max_line_bytes,
            on_error: self.on_error,
            error_field: self.error_field.clone(),
            backoff_initial: Duration::from_millis(self.restart_backoff_ms),
            backoff_max: Duration::from_millis(self.restart_backoff_max_ms),
            quarantine_after: self.quarantine_after,
            state_deadline: Duration::from_millis(self.state_deadline_ms),
            one_to_one: false,
        }
    }
}

fn default_workers() -> usize {
    1
}
fn default_batch_events() -> usize {
    1024
}
fn default_poll_ms() -> u64 {
    250
}
fn default_flush_secs() -> u64 {
    60
}
fn default_memory_mib() -> usize {
    64
}
fn default_deadline_ms() -> u64 {
    100
}
fn default_max_line() -> usize {
    1 << 20
}
fn default_body_bytes() -> usize {
    16 << 20
}
fn default_ack_timeout() -> u64 {
    30
}
fn default_http_path() -> String {
    "/".into()
}
fn default_max_message() -> usize {
    1 << 20
}
fn default_sink_batch_events() -> usize {
    1000
}
fn default_sink_batch_bytes() -> usize {
    1 << 20
}
fn default_request_timeout() -> u64 {
    30
}
fn default_retry_initial() -> u64 {
    200
}
fn default_retry_max() -> u64 {
    10_000
}
fn default_shutdown_grace() -> u64 {
    10
}
fn default_checkpoint_ms() -> u64 {
    1000
}
fn default_error_field() -> String {
    "rulebox_error".into()
}
fn default_backoff_ms() -> u64 {
    1000
}
fn default_backoff_max_ms() -> u64 {
    30_000
}
fn default_quarantine() -> u32 {
    10
}
fn default_true() -> bool {
    true
}
fn default_state_deadline_ms() -> u64 {
    5000
}

/// A loaded configuration: the parsed file, where it lives, and its text
/// (to point at lines).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: PipelineConfig,
    pub file: PathBuf,
    pub text: String,
}

impl Loaded {
    pub fn read(file: &Path) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
            file: file.display().to_string(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        Loaded::parse(file, text)
    }

    pub fn parse(file: &Path, text: String) -> Result<Loaded, ConfigError> {
        let config: PipelineConfig = toml::from_str(&text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start.min(text.len()));
            let mut line = text[..at].matches('\n').count() + 1;
            // toml points an unknown field at its table; point at the key itself.
            if let Some(key) = e
                .message()
                .strip_prefix("unknown field `")
                .and_then(|m| m.split('`').next())
            {
                let found = text
                    .lines()
                    .enumerate()
                    .skip(line - 1)
                    .skip(1)
                    .take_while(|(_, l)| !l.trim_start().starts_with('['))
                    .find(|(_, l)| {
                        l.trim_start()
                            .strip_prefix(key)
                            .is_some_and(|rest| rest.trim_start().starts_with('='))
                    });
                if let Some((i, _)) = found {
                    line = i + 1;
                }
            }
            ConfigError {
                file: file.display().to_string(),
                line: Some(line),
                message: e.message().to_string(),
            }
        })?;
        let loaded = Loaded {
            config,
            file: file.to_path_buf(),
            text,
        };
        loaded.check_graph()?;
        Ok(loaded)
    }

    /// A path from the file, resolved against the file's folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            return p.to_path_buf();
        }
        self.file.parent().unwrap_or(Path::new(".")).join(p)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.resolve(self.config.data_dir.as_deref().unwrap_or(Path::new("data")))
    }

    /// The line of `[<section>.<id>]` (or of `<section>.<id>.<sub>`), for messages.
    pub fn line_of(&self, section: &str, id: &str, sub: Option<&str>) -> Option<usize> {
        let header = match sub {
            Some(s) => format!("[{section}.{id}.{s}]"),
            None => format!("[{section}.{id}]"),
        };
        self.text
            .lines()
            .position(|l| l.trim().replace(' ', "") == header)
            .map(|i| i + 1)
    }

    pub fn error(
        &self,
        section: &str,
        id: &str,
        sub: Option<&str>,
        message: String,
    ) -> ConfigError {
        let line = self
            .line_of(section, id, sub)
            .or_else(|| self.line_of(section, id, None));
        ConfigError {
            file: self.file.display().to_string(),
            line,
            message,
        }
    }

    /// Ids unique and well-formed, every input known, no cycles, no
    /// component without inputs. Named outputs are checked once the
    /// plugins have said which they declare ([`Loaded::check_outputs`]).
    fn check_graph(&self) -> Result<(), ConfigError> {
        let c = &self.config;
        let mut seen = BTreeMap::new();
        let all = c
            .sources
            .keys()
            .map(|k| ("sources", k))
            .chain(c.transforms.keys().map(|k| ("transforms", k)))
            .chain(c.sinks.keys().map(|k| ("sinks", k)));
        for (section, id) in all {
            if id.is_empty() || id.contains('.') {
                return Err(self.error(
                    section,
                    id,
                    None,
                    format!("{section}.{id}: a component id must be non-empty and contain no '.'"),
                ));
            }
            if let Some(other) = seen.insert(id.clone(), section) {
                return Err(self.error(
                    section,
                    id,
                    None,
                    format!("{section}.{id}: id already used in [{other}]"),
                ));
            }
        }
        if c.sources.is_empty() {
            return Err(ConfigError {
                file: self.file.display().to_string(),
                line: None,
                message: "no [sources.<id>] defined".into(),
            });
        }
        if c.sinks.is_empty() {
            return Err(ConfigError {
                file: self.file.display().to_string(),
                line: None,
                message: "no [sinks.<id>] defined".into(),
            });
        }
        let consumers = c
            .transforms
            .iter()
            .map(|(k, t)| ("transforms", k, t.inputs()))
            .chain(c.sinks.iter().map(|(k, s)| ("sinks", k, s.inputs())));
        for (section, id, inputs) in consumers {
            if inputs.is_empty() {
                return Err(self.error(
                    section,
                    id,
                    None,
                    format!("{section}.{id}.inputs: at least one input is required"),
                ));
            }
            for input in inputs {
                let (base, _output) = split_input(input);
                let known = c.sources.contains_key(base) && !input.contains('.')
                    || c.transforms.contains_key(base);
                if !known {
                    return Err(self.error(section, id, None, format!("{section}.{id}.inputs: unknown input {input:?} (no source or transform of that id)")));
                }
                if base == id.as_str() {
                    return Err(self.error(
                        section,
                        id,
                        None,
                        format!("{section}.{id}.inputs: a component cannot read its own output"),
                    ));
                }
            }
        }
        // Cycles among transforms.
        fn visit<'a>(
            c: &'a PipelineConfig,
            id: &'a str,
            stack: &mut Vec<&'a str>,
            done: &mut Vec<&'a str>,
        ) -> Option<Vec<&'a str>> {
            if done.contains(&id) {
                return None;
            }
            if let Some(pos) = stack.iter().position(|s| *s == id) {
                let mut cycle = stack[pos..].to_vec();
                cycle.push(id);
                return Some(cycle);
            }
            stack.push(id);
            if let Some(t) = c.transforms.get(id) {
                for input in t.inputs() {
                    let (base, _) = split_input(input);
                    if c.transforms.contains_key(base)
                        && let Some(cycle) = visit(c, base, stack, done)
                    {
                        return Some(cycle);
                    }
                }
            }
            stack.pop();
            done.push(id);
            None
        }
        let mut done = Vec::new();
        for id in c.transforms.keys() {
            if let Some(cycle) = visit(c, id, &mut Vec::new(), &mut done) {
                return Err(self.error(
                    "transforms",
                    id,
                    None,
                    format!("transforms form a cycle: {}", cycle.join(" -> ")),
                ));
            }
        }
        for (id, t) in &c.transforms {
            let TransformConfig::Wasm(w) = t;
            if w.flush_interval_secs == 0 {
                return Err(self.error(
                    "transforms",
                    id,
                    None,
                    format!("transforms.{id}.flush_interval_secs must be at least 1"),
                ));
            }
            if w.deadline_ms == 0 || w.max_memory_mib == 0 {
                return Err(self.error(
                    "transforms",
                    id,
                    None,
                    format!("transforms.{id}: deadline_ms and max_memory_mib must be at least 1"),
                ));
            }
            if w.quarantine_after == 0 || w.state_deadline_ms == 0 {
                return Err(self.error(
                    "transforms",
                    id,
                    None,
                    format!(
                        "transforms.{id}: quarantine_after and state_deadline_ms must be at least 1"
                    ),
                ));
            }
            if w.max_memory_mib > 4096 {
                return Err(self.error(
                    "transforms",
                    id,
                    None,
                    format!("transforms.{id}.max_memory_mib: at most 4096 (wasm32)"),
                ));
            }
        }
        Ok(())
    }

    /// Every `<transform>.<output>` input names an output the plugin declares.
    pub fn check_outputs(
        &self,
        declared: &BTreeMap<String, Vec<String>>,
    ) -> Result<(), ConfigError> {
        let c = &self.config;
        let consumers = c
            .transforms
            .iter()
            .map(|(k, t)| ("transforms", k, t.inputs()))
            .chain(c.sinks.iter().map(|(k, s)| ("sinks", k, s.inputs())));
        for (section, id, inputs) in consumers {
            for input in inputs {
                if let (base, Some(out)) = split_input(input)
                    && let Some(outs) = declared.get(base)
                    && !outs.iter().any(|o| o == out)
                {
                    return Err(self.error(
                        section,
                        id,
                        None,
                        format!("{section}.{id}.inputs: transform {base:?} has no output {out:?} (it declares: {})", if outs.is_empty() { "none".to_string() } else { outs.join(", ") }),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The plugin configuration of a transform, as JSON text.
    pub fn plugin_config_json(&self, w: &WasmTransformConfig) -> Vec<u8> {
        match &w.config {
            Some(t) => serde_json::to_vec(t).unwrap_or_else(|_| b"{}".to_vec()),
            None => b"{}".to_vec(),
        }
    }
}

/// `"t1071.alerts"` -> `("t1071", Some("alerts"))`.
pub fn split_input(input: &str) -> (&str, Option<&str>) {
    match input.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (input, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Loaded, ConfigError> {
        Loaded::parse(Path::new("/etc/rb/p.toml"), text.to_string())
    }

    const OK: &str = r#"
[sources.in]
type = "stdin"

[transforms.rule]
type = "wasm"
inputs = ["in"]
module = "rule.wasm"

[transforms.rule.config]
schema = "cim"
internal_networks = ["10.0.0.0/8"]

[sinks.out]
type = "stdout"
inputs = ["rule", "rule.alerts"]
"#;

    #[test]
    fn parses_and_resolves_relative_paths() {
        let l = parse(OK).unwrap();
        let TransformConfig::Wasm(w) = &l.config.transforms["rule"];
        assert_eq!(l.resolve(&w.module), Path::new("/etc/rb/rule.wasm"));
        assert_eq!(l.data_dir(), Path::new("/etc/rb/data"));
        assert_eq!(w.flush_interval_secs, 60);
        let json: serde_json::Value = serde_json::from_slice(&l.plugin_config_json(w)).unwrap();
        assert_eq!(json["internal_networks"][0], "10.0.0.0/8");
    }

    #[test]
    fn unknown_key_is_located() {
        let err = parse(&OK.replace(
            "module = \"rule.wasm\"",
            "module = \"rule.wasm\"\nflush_secs = 3",
        ))
        .unwrap_err();
        assert!(err.message.contains("unknown field `flush_secs`"), "{err}");
        assert_eq!(err.line, Some(9));
        assert!(err.to_string().starts_with("/etc/rb/p.toml:9: "), "{err}");
    }

    #[test]
    fn unknown_input_is_located() {
        let err = parse(&OK.replace("inputs = [\"in\"]", "inputs = [\"nope\"]")).unwrap_err();
        assert!(err.message.contains("unknown input \"nope\""), "{err}");
        assert_eq!(err.line, Some(5));
    }

    #[test]
    fn cycles_and_duplicates_are_refused() {
        let cyc = r#"
[sources.in]
type = "stdin"
[transforms.a]
type = "wasm"
inputs = ["b"]
module = "x.wasm"
[transforms.b]
type = "wasm"
inputs = ["a"]
module = "x.wasm"
[sinks.out]
type = "stdout"
inputs = ["a"]
"#;
        assert!(parse(cyc).unwrap_err().message.contains("cycle"));
        let dup = "[sources.x]\ntype = \"stdin\"\n[sinks.x]\ntype = \"stdout\"\ninputs = [\"x\"]\n";
        assert!(parse(dup).unwrap_err().message.contains("already used"));
        let nosink = "[sources.x]\ntype = \"stdin\"\n";
        assert!(parse(nosink).unwrap_err().message.contains("no [sinks"));
    }

    #[test]
    fn named_outputs_are_checked_against_the_plugin() {
        let l = parse(&OK.replace("rule.alerts", "rule.alarms")).unwrap();
        let declared = BTreeMap::from([("rule".to_string(), vec!["alerts".to_string()])]);
        let err = l.check_outputs(&declared).unwrap_err();
        assert!(
            err.message
                .contains("no output \"alarms\" (it declares: alerts)"),
            "{err}"
        );
        assert!(parse(OK).unwrap().check_outputs(&declared).is_ok());
    }

    #[test]
    fn source_with_output_suffix_is_unknown() {
        let err = parse(&OK.replace("inputs = [\"in\"]", "inputs = [\"in.x\"]")).unwrap_err();
        assert!(err.message.contains("unknown input"), "{err}");
    }
}
