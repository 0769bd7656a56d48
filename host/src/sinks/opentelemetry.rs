//! The `opentelemetry` sink: events as OTLP log records POSTed to an
//! OTLP/HTTP endpoint's `/v1/logs` (protobuf by default, or JSON), batched,
//! optionally gzip, delivered and retried like the `http` sink. Events
//! that came from an `opentelemetry` source go back under their resource
//! and scope, their attributes restored; any other event (an alert, say)
//! is a log record of its own under the sink's `service_name` (the
//! mapping is in [`crate::codecs::otlp`]).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::buffer::BufferConfig;
use super::component::{Sink, SinkContext};
use super::delivery::{self, Batching, Encode, Retry};
use super::http_client::{self, HttpTarget};
use super::network;
use crate::batch::Batch;
use crate::codecs::otlp::{self, Defaults, Encoding};
use crate::config::{Paths, Problem};
use crate::secret::Secret;
use crate::tls::ClientTls;

/// The body encoding a sink sends.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtlpEncoding {
    #[default]
    Protobuf,
    Json,
}

/// OTLP log records POSTed to `endpoint`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpentelemetryConfig {
    pub inputs: Vec<String>,
    /// `http(s)://host:port` (then `/v1/logs` is added) or a full URI.
    pub endpoint: String,
    #[serde(default)]
    pub encoding: OtlpEncoding,
    /// `service.name` of the resource of events that did not come from
    /// OTLP (alerts, events from other sources).
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Extra request headers (say, `Authorization`), each value a string
    /// or `{ env = ... }` / `{ file = ... }` (see `secret`).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    #[serde(default)]
    pub gzip: bool,
    #[serde(default = "delivery::default_sink_batch_events")]
    pub batch_max_events: usize,
    #[serde(default = "delivery::default_sink_batch_bytes")]
    pub batch_max_bytes: usize,
    #[serde(default = "delivery::default_request_timeout")]
    pub request_timeout_secs: u64,
    /// Bodies in flight at once, each on a connection of its own.
    #[serde(default = "delivery::default_request_concurrency")]
    pub request_concurrency: usize,
    #[serde(default)]
    pub retry: Retry,
    /// `memory` (default) or `disk` (`[sinks.<id>.buffer]`).
    #[serde(default)]
    pub buffer: BufferConfig,
    /// For an `https://` endpoint: how the server is verified (default:
    /// against the system's roots).
    #[serde(default)]
    pub tls: Option<ClientTls>,
}

fn default_service_name() -> String {
    "rulebox".into()
}

impl OpentelemetryConfig {
    fn encoding(&self) -> Encoding {
        match self.encoding {
            OtlpEncoding::Protobuf => Encoding::Protobuf,
            OtlpEncoding::Json => Encoding::Json,
        }
    }

    /// The endpoint with the headers as `paths` reveals them (none:
    /// checked with empty values).
    fn target(&self, paths: Option<&Paths>) -> Result<HttpTarget, String> {
        let content_type = self.encoding().content_type();
        let h = http_client::headers(content_type, self.gzip, &self.headers, paths)?;
        let timeout = Duration::from_secs(self.request_timeout_secs);
        HttpTarget::new(&logs_uri(&self.endpoint), h, timeout)
    }
}

impl Sink for OpentelemetryConfig {
    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    fn check(&self) -> Vec<Problem> {
        let target = self.target(None);
        let mut p: Vec<Problem> = target.err().map(Problem::whole).into_iter().collect();
        p.extend(self.buffer.check());
        p.extend(delivery::check_concurrency(self.request_concurrency));
        p
    }

    fn check_paths(&self, paths: &Paths) -> Vec<Problem> {
        http_client::check_tls(self.target(Some(paths)), self.tls.as_ref(), paths)
    }

    fn start(&self, cx: SinkContext) -> tokio::task::JoinHandle<()> {
        let batching = Batching {
            batch_max_events: self.batch_max_events,
            batch_max_bytes: self.batch_max_bytes,
            retry: self.retry.clone(),
            gzip: self.gzip,
            buffer: self.buffer.clone(),
            concurrency: self.request_concurrency,
        };
        let records = Records {
            encoding: self.encoding(),
            defaults: Defaults::new(&self.service_name),
        };
        let target = self.target(Some(&cx.paths));
        let target = target.and_then(|t| t.with_tls(self.tls.as_ref(), &cx.paths));
        network::start(cx, target, records, batching)
    }
}

/// A batch as one `ExportLogsServiceRequest`.
struct Records {
    encoding: Encoding,
    defaults: Defaults,
}

impl Encode for Records {
    fn encode(&self, b: &Batch, body: &mut Vec<u8>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let req = otlp::write_request(b, &self.defaults, now);
        body.extend_from_slice(&otlp::encode(&req, self.encoding));
    }
}

/// An endpoint given as a base (`http://collector:4318`) gets `/v1/logs`.
fn logs_uri(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    let has_path = trimmed
        .split_once("://")
        .is_some_and(|(_, rest)| rest.contains('/'));
    if has_path {
        endpoint.to_string()
    } else {
        format!("{trimmed}/v1/logs")
    }
}
