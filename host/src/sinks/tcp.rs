//! The `tcp` sink: NDJSON lines over one TCP connection, reconnected as
//! needed; a body whose write failed goes again whole on a new connection
//! (at-least-once).

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::buffer::BufferConfig;
use super::component::{Sink, SinkContext};
use super::network;
use super::delivery::{self, Batching, Failure, Lines, Retry, Target};
use crate::config::Problem;

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

    fn start(&self, cx: SinkContext) -> tokio::task::JoinHandle<()> {
        let target = TcpTarget::new(&self.address, Duration::from_secs(self.request_timeout_secs));
        let batching = Batching {
            batch_max_events: self.batch_max_events,
            batch_max_bytes: self.batch_max_bytes,
            retry: self.retry.clone(),
            gzip: false,
            buffer: self.buffer.clone(),
        };
        network::spawn(cx, target, Lines, batching)
    }
}

pub struct TcpTarget {
    address: String,
    timeout: Duration,
    stream: Option<TcpStream>,
}

impl TcpTarget {
    pub fn new(address: &str, timeout: Duration) -> TcpTarget {
        TcpTarget {
            address: address.to_string(),
            timeout,
            stream: None,
        }
    }

    async fn write(&mut self, body: &Bytes) -> Result<(), Failure> {
        if self.stream.is_none() {
            let connect = tokio::time::timeout(self.timeout, TcpStream::connect(&self.address));
            let s = connect
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
                .map_err(|e| Failure::Retry(format!("connect {}: {e}", self.address)))?;
            let _ = s.set_nodelay(true);
            self.stream = Some(s);
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
