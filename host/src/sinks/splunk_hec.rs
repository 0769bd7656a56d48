//! The `splunk_hec` sink: events POSTed to a Splunk HTTP Event Collector
//! as envelopes (batched, gzip by default). An event from a HEC source
//! keeps its own envelope (`time`, `host`, `source`, `sourcetype`,
//! `index`, `fields`); the sink's keys fill what an event does not carry.

use std::time::Duration;

use rulebox_abi::json::Scanner;
use serde::Deserialize;

use super::buffer::BufferConfig;
use super::component::{Sink, SinkContext};
use super::network;
use super::delivery::{self, Batching, Encode, Retry};
use super::http_client::{self, HttpTarget};
use crate::batch::Batch;
use crate::codecs::hec;
use crate::config::{Paths, Problem};
use crate::secret::Secret;
use crate::tls::ClientTls;

/// Splunk HEC: envelopes POSTed to `endpoint` (a base such as
/// `http://splunk:8088`, or a full `/services/collector/event` URI).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkHecConfig {
    pub inputs: Vec<String>,
    pub endpoint: String,
    /// The HEC token: a value or `{ env = ... }` / `{ file = ... }`.
    pub token: Secret,
    /// Envelope keys for events that do not carry their own.
    #[serde(default)]
    pub index: Option<String>,
    #[serde(default)]
    pub sourcetype: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    /// An event whose envelope carries no `time` gets its own: an alert's
    /// `last_seen`, or the first of `_time`, `@timestamp`, `timestamp`,
    /// `ts`, `time`, `starttime`, `UtcTime` that reads as a time. Without
    /// it Splunk indexes such events at their arrival.
    #[serde(default = "default_true")]
    pub time_from_event: bool,
    #[serde(default = "default_true")]
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

fn default_true() -> bool {
    true
}

impl SplunkHecConfig {
    /// The endpoint, with the token as `paths` reveals it (none: checked
    /// without one).
    fn target(&self, paths: Option<&Paths>) -> Result<HttpTarget, String> {
        let uri = hec_uri(&self.endpoint);
        let token = match paths {
            Some(p) => self.token.reveal(p).map_err(|e| format!("token: {e}"))?,
            None => String::new(),
        };
        let mut headers = vec![
            ("authorization".to_string(), format!("Splunk {token}")),
            ("content-type".to_string(), "application/json".to_string()),
        ];
        if self.gzip {
            headers.push(("content-encoding".into(), "gzip".into()));
        }
        let timeout = Duration::from_secs(self.request_timeout_secs);
        HttpTarget::new(&uri, headers, timeout)
    }
}

impl Sink for SplunkHecConfig {
    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    /// An event goes in its envelope as JSON when it is JSON, else as a
    /// string: each is read to know which.
    fn checks_json(&self) -> bool {
        true
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
        let encoding = Envelopes(hec::Defaults {
            host: self.host.clone(),
            source: self.source.clone(),
            sourcetype: self.sourcetype.clone(),
            index: self.index.clone(),
            time_from_event: self.time_from_event,
        });
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
        network::start(cx, target, encoding, batching)
    }
}

/// Each event in its HEC envelope, one per line.
struct Envelopes(hec::Defaults);

/// About what an envelope adds to an event besides its kept keys
/// (`{"time":...,"event":` and `}`, the defaults' keys), for sizing a body.
const ENVELOPE_ROOM: usize = 64;

impl Encode for Envelopes {
    fn encode(&self, b: &Batch, body: &mut Vec<u8>) {
        // Room for the events, their kept keys and the envelope around
        // each at once (a body not given back is made anew).
        body.reserve(b.bytes().len() + b.meta_len() + ENVELOPE_ROOM * b.count());
        let mut scanner = Scanner::new();
        let json = b.all_json();
        for (i, l) in b.iter().enumerate() {
            hec::write_envelope(body, l, b.meta(i), json, &self.0, &mut scanner);
            body.push(b'\n');
        }
    }
}

/// A HEC endpoint given as a base (`http://splunk:8088`) gets the event path.
fn hec_uri(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    let has_path = trimmed
        .split_once("://")
        .is_some_and(|(_, rest)| rest.contains('/'));
    if has_path {
        endpoint.to_string()
    } else {
        format!("{trimmed}/services/collector/event")
    }
}
