//! The `stdout` sink: NDJSON lines on standard output, or rsyslog's
//! mmexternal answers (`protocol = "mmexternal"`: one answer per line
//! rsyslog sent, in order).

use serde::Deserialize;

use super::component::{Sink, SinkContext};
use super::writer::sink_loop;
use crate::codecs::mmexternal::{self, StdioProtocol};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    pub inputs: Vec<String>,
    /// `ndjson`, or `mmexternal`: one answer per line rsyslog sent.
    #[serde(default)]
    pub protocol: StdioProtocol,
    /// With `mmexternal`: `msg`, `vars` (`$!`) or `msg_and_vars`.
    #[serde(default)]
    pub mmexternal_reply: mmexternal::Reply,
}

impl Sink for StdoutConfig {
    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    fn writes_stdout(&self) -> bool {
        true
    }

    fn answers_mmexternal(&self) -> bool {
        self.protocol == StdioProtocol::Mmexternal
    }

    fn start(&self, cx: SinkContext) -> tokio::task::JoinHandle<()> {
        let reply = self.answers_mmexternal().then_some(self.mmexternal_reply);
        let SinkContext { id, rx, stats, .. } = cx;
        tokio::task::spawn_blocking(move || {
            sink_loop(&id, Ok(Box::new(std::io::stdout())), rx, &stats, reply)
        })
    }
}
