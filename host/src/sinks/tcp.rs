//! The `tcp` sink: NDJSON lines over one TCP connection, reconnected as
//! needed; a body whose write failed goes again whole on a new connection
//! (at-least-once).

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;

use tokio::io::AsyncWriteExt;

use super::buffer::BufferConfig;
use super::component::{Sink, SinkContext};
use super::network;
use super::delivery::{self, Batching, Failure, Lines, Retry, Target};
use crate::config::{Paths, Problem};
use crate::tls::{self, ClientTls, Tls};

/// NDJSON lines over one TCP connection (reconnected as needed).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpConfig {
    pub inputs: Vec<String>,
    pub address: String,
    #[serde(default = "delivery::default_sink_batch_events")]
    pub batch_max_events: usize,
    #[serde(default = "delivery::default_sink_batch_bytes")]
    pub batch_max_bytes: usize,
    #[serde(default = "delivery::default_request_timeout")]
    pub request_timeout_secs: u64,
    #[serde(default)]
    pub retry: Retry,
    /// `memory` (default) or `disk` (`[sinks.<id>.buffer]`).
    #[serde(default)]
    pub buffer: BufferConfig,
    /// TLS to the receiver (syslog over TLS, RFC 5425, say): how its
    /// certificate is verified (`{}`: against the system's roots).
    #[serde(default)]
    pub tls: Option<ClientTls>,
}

impl Sink for TcpConfig {
    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    fn check(&self) -> Vec<Problem> {
        let mut p = self.buffer.check();
        let port = self.address.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
        if !matches!(port, Some(Ok(_))) {
            let a = &self.address;
            p.push(Problem::whole(format!("address {a:?}: expected host:port")));
        }
        p
    }

    fn check_paths(&self, paths: &Paths) -> Vec<Problem> {
        match self.tls.as_ref().map(|t| self.tls_for(t, paths)) {
            Some(Err(e)) => vec![Problem::at("tls", e)],
            _ => Vec::new(),
        }
    }

    fn start(&self, cx: SinkContext) -> tokio::task::JoinHandle<()> {
        let tls = self.tls.as_ref().map(|t| self.tls_for(t, &cx.paths)).transpose();
        let timeout = Duration::from_secs(self.request_timeout_secs);
        let target = tls.map(|tls| TcpTarget::new(&self.address, timeout, tls));
        let batching = Batching {
            batch_max_events: self.batch_max_events,
            batch_max_bytes: self.batch_max_bytes,
            retry: self.retry.clone(),
            gzip: false,
            buffer: self.buffer.clone(),
            concurrency: 1,
        };
        network::start(cx, target, Lines, batching)
    }
}

impl TcpConfig {
    /// The TLS to start connections with, for the address's host.
    fn tls_for(&self, t: &ClientTls, paths: &Paths) -> Result<Tls, String> {
        let host = self.address.rsplit_once(':').map_or("", |(h, _)| h);
        Ok((t.config(paths)?, t.name_for(host)?))
    }
}


pub struct TcpTarget {
    address: String,
    timeout: Duration,
    tls: Option<Tls>,
    stream: Option<Box<dyn tls::Io>>,
}

impl TcpTarget {
    pub fn new(address: &str, timeout: Duration, tls: Option<Tls>) -> TcpTarget {
        TcpTarget {
            address: address.to_string(),
            timeout,
            tls,
            stream: None,
        }
    }

    async fn write(&mut self, body: &Bytes) -> Result<(), Failure> {
        if self.stream.is_none() {
            let s = tls::connect(&self.address, self.timeout, self.tls.as_ref()).await;
            self.stream = Some(s.map_err(Failure::Retry)?);
        }
        let Some(s) = self.stream.as_mut() else {
            return Err(Failure::Retry("not connected".into()));
        };
        let res = tokio::time::timeout(self.timeout, async {
            s.write_all(body).await?;
            s.flush().await
        })
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
        res.map_err(|e| {
            // What the peer got of this body is unknown: the whole body
            // goes again on a new connection (at-least-once).
            self.stream = None;
            Failure::Retry(format!("write to {}: {e}", self.address))
        })
    }
}

impl Target for TcpTarget {
    async fn deliver(&mut self, body: &Bytes) -> Result<(), Failure> {
        self.write(body).await
    }
}
