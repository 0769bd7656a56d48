//! The `http` sink: NDJSON POSTed to a URI (batched, optionally gzip),
//! with extra headers of the user's (say, `Authorization`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::buffer::BufferConfig;
use super::component::{Sink, SinkContext};
use super::network;
use super::delivery::{self, Batching, Lines, Retry};
use super::http_client::{self, HttpTarget};
use crate::config::{Paths, Problem};
use crate::secret::Secret;
use crate::tls::ClientTls;

/// NDJSON POSTed to `uri`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub inputs: Vec<String>,
    pub uri: String,
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

impl HttpConfig {
    /// The URI with the headers as `paths` reveals them (none: checked
    /// with empty values).
    fn target(&self, paths: Option<&Paths>) -> Result<HttpTarget, String> {
        let h = http_client::headers("application/x-ndjson", self.gzip, &self.headers, paths)?;
        HttpTarget::new(&self.uri, h, Duration::from_secs(self.request_timeout_secs))
    }
}

impl Sink for HttpConfig {
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
        let target = self.target(Some(&cx.paths));
        let target = target.and_then(|t| t.with_tls(self.tls.as_ref(), &cx.paths));
        network::start(cx, target, Lines, batching)
    }
}
