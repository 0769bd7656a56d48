//! Sources: `[sources.<id>]` tables. Each kind is one file holding its
//! configuration, its checks and how it starts ([`Source`]); the list
//! below is the one place that names them all.
//!
//! Shared pieces: `reader` (a byte stream read on a thread), `checkpoint`
//! (a file's read position), `listener` (binding, accepting, connection
//! reading) and `http_server` (the HTTP sources' server).

mod checkpoint;
mod component;
mod http_server;
mod listener;
mod reader;

use serde::Deserialize;

pub use checkpoint::{Checkpointer, checkpoint_loop};
pub use component::{Ending, SETTLE_WAIT, Source, SourceContext, SourceStats, Started};
pub use listener::check_address;

/// Declares the source kinds: one line each, `Variant(module::Config)`,
/// its `type` the variant in snake case.
macro_rules! source_kinds {
    ($($(#[$doc:meta])* $variant:ident($module:ident::$config:ident),)*) => {
        $(pub mod $module;)*

        #[derive(Debug, Clone, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum SourceConfig {
            $($(#[$doc])* $variant($module::$config),)*
        }

        impl SourceConfig {
            /// The kind behind this table.
            pub fn kind(&self) -> &dyn Source {
                match self {
                    $(SourceConfig::$variant(c) => c,)*
                }
            }
        }
    };
}

source_kinds! {
    /// NDJSON lines on standard input, until end of input.
    Stdin(stdin::StdinConfig),
    /// NDJSON lines from a file.
    File(file::FileConfig),
    /// Splunk HTTP Event Collector.
    SplunkHec(splunk_hec::SplunkHecConfig),
    /// NDJSON bodies POSTed to a path.
    Http(http::HttpConfig),
    /// NDJSON lines over TCP connections.
    Tcp(tcp::TcpConfig),
    /// Syslog over TCP or UDP.
    Syslog(syslog::SyslogConfig),
    /// OpenTelemetry logs over OTLP/HTTP (protobuf or JSON).
    Opentelemetry(opentelemetry::OpentelemetryConfig),
    /// A NATS JetStream stream: a shared durable consumer, or partitions.
    Nats(nats::NatsConfig),
}
