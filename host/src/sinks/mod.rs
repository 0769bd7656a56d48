//! Sinks: `[sinks.<id>]` tables. Each kind is one file holding its
//! configuration, its checks and how it starts ([`Sink`]); the list below
//! is the one place that names them all.
//!
//! Shared pieces: `writer` (files and pipes, on a blocking thread),
//! `delivery` (batching, encoding, gzip and retry for network sinks),
//! `spool` (what a network sink could not deliver by a shutdown's end),
//! `buffer` (a network sink's buffer, as configured), `disk` (a disk
//! buffer's intake and drainer), `network` (starting a network sink) and
//! `http_client`.

mod buffer;
mod component;
mod delivery;
mod disk;
mod http_client;
mod network;
mod spool;
mod writer;

use serde::Deserialize;

pub use component::{Sink, SinkContext, SinkStats};
pub use delivery::Retry;

/// Declares the sink kinds: one line each, `Variant(module::Config)`, its
/// `type` the variant in snake case.
macro_rules! sink_kinds {
    ($($(#[$doc:meta])* $variant:ident($module:ident::$config:ident),)*) => {
        $(pub mod $module;)*

        #[derive(Debug, Clone, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum SinkConfig {
            $($(#[$doc])* $variant($module::$config),)*
        }

        impl SinkConfig {
            /// The kind behind this table.
            pub fn kind(&self) -> &dyn Sink {
                match self {
                    $(SinkConfig::$variant(c) => c,)*
                }
            }
        }
    };
}

sink_kinds! {
    /// NDJSON, or mmexternal answers, on standard output.
    Stdout(stdout::StdoutConfig),
    /// NDJSON lines to a file.
    File(file::FileConfig),
    /// Splunk HEC envelopes, batched.
    SplunkHec(splunk_hec::SplunkHecConfig),
    /// NDJSON POSTed to a URI.
    Http(http::HttpConfig),
    /// NDJSON lines over TCP.
    Tcp(tcp::TcpConfig),
    /// OTLP log records POSTed to an OTLP/HTTP endpoint.
    Opentelemetry(opentelemetry::OpentelemetryConfig),
    /// Messages published to a NATS JetStream stream.
    Nats(nats::NatsConfig),
    /// Counted and let go.
    Null(null::NullConfig),
}
