//! The `stdin` source: NDJSON lines on standard input until its end, or
//! rsyslog's mmexternal messages (`protocol = "mmexternal"`), which must
//! then be answered line for line by a stdout sink with the same protocol.

use std::time::Duration;

use serde::Deserialize;

use super::component::{Source, SourceContext, Started};
use super::reader::{ReadOpts, Reader};
use crate::codecs::mmexternal::{self, StdioProtocol};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {
    /// Most events handed on in one batch.
    #[serde(default = "super::component::default_batch_events")]
    pub batch_max_events: usize,
    /// `ndjson`, or `mmexternal` when rsyslog runs rulebox as its
    /// message-modification program (answered by a stdout sink with
    /// the same protocol; see [`crate::codecs::mmexternal`]).
    #[serde(default)]
    pub protocol: StdioProtocol,
    /// With `mmexternal`: rsyslog's `interface.input` (`msg`, `rawmsg`
    /// or `fulljson`).
    #[serde(default)]
    pub mmexternal_input: mmexternal::Input,
    /// What the end of input means: `end` (the final flush runs, saved
    /// state is used up) or `shutdown` (as SIGTERM: state is saved for the
    /// next start). Default: `shutdown` with `mmexternal` (rsyslog closes
    /// the pipe when it stops or restarts), `end` otherwise.
    #[serde(default)]
    pub on_eof: Option<OnEof>,
    /// A line longer than this is written whole to a file of its own under
    /// `data_dir/oversize/`, and an event naming it takes its place.
    #[serde(default = "super::component::default_max_line_bytes")]
    pub max_line_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnEof {
    End,
    Shutdown,
}

impl Source for StdinConfig {
    fn asks_mmexternal(&self) -> bool {
        self.protocol == StdioProtocol::Mmexternal
    }

    fn start(&self, cx: SourceContext) -> Started {
        let convert = self.asks_mmexternal().then_some(self.mmexternal_input);
        Reader {
            id: cx.id,
            input: Box::new(std::io::stdin()),
            opts: ReadOpts {
                max_events: self.batch_max_events,
                follow: false,
                poll: Duration::ZERO,
                start: 0,
                replay_until: 0,
                convert,
                max_line_bytes: self.max_line_bytes,
                spill_dir: cx.paths.data_dir().join("oversize"),
            },
            progress: None,
            tx: cx.tx,
            stop: cx.stop,
            errors: cx.errors,
            stats: cx.stats,
        }
        .spawn();
        let default = if self.asks_mmexternal() {
            OnEof::Shutdown
        } else {
            OnEof::End
        };
        Started {
            eof_shuts_down: self.on_eof.unwrap_or(default) == OnEof::Shutdown,
            ..Started::reading(None)
        }
    }
}
