//! What the network sinks share: batching, encoding, gzip and delivery
//! with retry. A batch is kept until it is delivered, retrying with
//! exponential back-off on connection errors and 5xx/429/408 answers; only
//! past `retry.limit_secs`, or on an answer that says trying again cannot
//! help, are events given up, counted as write errors and their acks
//! failed. At shutdown, what is not delivered within
//! `retry.shutdown_grace_secs` is spooled (`spool`) and delivered at the
//! next start, before anything new.
//!
//! A sink whose target can open more connections (the HTTP ones) has up
//! to `request_concurrency` bodies in flight, each on a connection of its
//! own: a receiver far away answers one body while the next ones travel.
//! Each body keeps its events' order; bodies may arrive out of order.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::Deserialize;
use tokio::sync::watch;

use super::buffer::BufferConfig;
use super::component::SinkStats;
use super::spool::{Kept, Spool};
use crate::batch::Batch;
use crate::channel::Rx;
use crate::codecs::gzip::Gzip;
use crate::config::Problem;
use crate::shutdown::shutdown_requested;

/// A failed delivery, and whether trying again may help.
#[derive(Debug)]
pub enum Failure {
    Retry(String),
    Permanent(String),
}

/// Where a sink delivers bodies.
pub trait Target: Send + 'static {
    fn deliver(
        &mut self,
        body: &Bytes,
    ) -> impl std::future::Future<Output = Result<(), Failure>> + Send;

    /// Another connection to the same place, for a body in flight beside
    /// this one's; `None` (the default): one body at a time.
    fn another(&self) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }
}

/// `first` and up to `n - 1` more connections like it, as many as the
/// target gives.
pub(super) fn connections<T: Target>(first: T, n: usize) -> Vec<T> {
    let more: Vec<T> = (1..n).map_while(|_| first.another()).collect();
    let mut all = vec![first];
    all.extend(more);
    all
}

/// How a sink writes its events into a body.
pub trait Encode: Send + 'static {
    fn encode(&self, b: &Batch, body: &mut Vec<u8>);
}

/// NDJSON: the lines as they are.
pub struct Lines;

impl Encode for Lines {
    fn encode(&self, b: &Batch, body: &mut Vec<u8>) {
        body.extend_from_slice(b.bytes());
    }
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

fn default_retry_initial() -> u64 {
    200
}
fn default_retry_max() -> u64 {
    10_000
}
fn default_shutdown_grace() -> u64 {
    8
}
pub fn default_sink_batch_events() -> usize {
    1000
}
pub fn default_sink_batch_bytes() -> usize {
    1 << 20
}
pub fn default_request_timeout() -> u64 {
    30
}
pub fn default_request_concurrency() -> usize {
    4
}

/// The most bodies a sink may have in flight: each holds a connection and
/// a body of up to `batch_max_bytes` (and its gzip).
pub const MAX_REQUEST_CONCURRENCY: usize = 64;

/// The check of a sink's `request_concurrency`.
pub fn check_concurrency(n: usize) -> Option<Problem> {
    (!(1..=MAX_REQUEST_CONCURRENCY).contains(&n)).then(|| {
        Problem::at(
            "request_concurrency",
            format!("from 1 to {MAX_REQUEST_CONCURRENCY} (got {n})"),
        )
    })
}

/// How a network sink batches and retries.
#[derive(Debug, Clone)]
pub struct Batching {
    pub batch_max_events: usize,
    pub batch_max_bytes: usize,
    pub retry: Retry,
    pub gzip: bool,
    pub buffer: BufferConfig,
    /// Bodies in flight at once (each on a connection of its own).
    pub concurrency: usize,
}

/// A running network sink.
pub(super) struct Delivery {
    pub(super) id: String,
    pub(super) stats: Arc<SinkStats>,
    pub(super) batching: Batching,
    pub(super) shutdown: watch::Receiver<bool>,
    pub(super) spool: Spool,
    /// The sink's one gzip writer, its state kept from body to body (the
    /// bodies in flight are compressed in turn, on the sink's task).
    pub(super) gzip: Mutex<Gzip>,
}

/// What became of a spooled body.
pub(super) enum Sent {
    Delivered,
    /// Left in the spool: the shutdown's grace ran out.
    Shutdown,
    /// Refused for good (set aside).
    Refused,
    /// Not readable: left in place, and not tried again in this run.
    Unreadable,
}

/// Why a body was not delivered.
enum GaveUp {
    /// The shutdown's grace ran out: the body is spooled.
    Shutdown(String),
    /// Given up for good (write errors).
    Failed(String),
}

impl Delivery {
    /// Delivers what the last run spooled, then batches until the input
    /// ends (a memory buffer), with up to `request_concurrency` bodies in
    /// flight, each on a connection of its own; see the module docs.
    pub(super) async fn run<T: Target>(self, mut rx: Rx, mut target: T, encoding: impl Encode) {
        self.unspool(&mut target).await;
        let mut idle = connections(target, self.batching.concurrency);
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        let mut flying = FuturesUnordered::new();
        loop {
            if idle.is_empty() {
                let Some((t, body)) = flying.next().await else {
                    break;
                };
                idle.push(t);
                bodies.push(body);
                continue;
            }
            let first = tokio::select! {
                biased;
                Some((t, body)) = flying.next(), if !flying.is_empty() => {
                    idle.push(t);
                    bodies.push(body);
                    continue;
                }
                first = rx.recv() => first,
            };
            let Some(first) = first else { break };
            let held = self.gather(first, &mut rx);
            let events: usize = held.iter().map(|b| b.count()).sum();
            if events == 0 {
                continue;
            }
            let mut body = bodies.pop().unwrap_or_default();
            body.clear();
            for b in &held {
                encoding.encode(b, &mut body);
            }
            let target = idle.pop().expect("an idle connection");
            flying.push(self.send(target, body, held, events));
        }
        while flying.next().await.is_some() {}
    }

    /// Delivers one body of `events` events from `held`, and what became
    /// of them: counted as delivered, spooled at a shutdown, or failed
    /// (their acks say why). Gives back the connection and the buffer.
    async fn send<T: Target>(
        &self,
        mut target: T,
        body: Vec<u8>,
        held: Vec<Arc<Batch>>,
        events: usize,
    ) -> (T, Vec<u8>) {
        // Uncompressed, the body itself is the payload (no copy); it comes
        // back for the next body once the request has let go of it.
        let (payload, gzipped) = self.payload(body);
        let failed = match self.deliver(&mut target, &payload, events).await {
            Ok(()) => {
                let s = &self.stats;
                s.events.fetch_add(events as u64, Ordering::Relaxed);
                s.bytes.fetch_add(payload.len() as u64, Ordering::Relaxed);
                None
            }
            Err(GaveUp::Shutdown(msg)) => {
                let body = gzipped.as_deref().unwrap_or(&payload);
                self.keep(body, events, &msg).err()
            }
            Err(GaveUp::Failed(msg)) => Some(msg),
        };
        if let Some(msg) = failed {
            tracing::error!(sink = %self.id, error = %msg, events, "events not delivered: counted as write errors");
            // For a waiting client: the answer, without where it came from.
            let why = msg.split_once(": ").map_or(msg.as_str(), |(_, r)| r);
            let why = format!("sink {} could not deliver them: {why}", self.id);
            for b in &held {
                b.fail_acks_because(&why);
            }
            let errors = &self.stats.write_errors;
            errors.fetch_add(events as u64, Ordering::Relaxed);
        }
        // Dropping `held` lets go of the acks: the events are done
        // (delivered, or kept in the spool).
        drop(held);
        let body = gzipped.unwrap_or_else(|| {
            // Unique unless a request still holds the payload: then a new
            // buffer for the next body.
            payload.try_into_mut().map(Vec::from).unwrap_or_default()
        });
        (target, body)
    }

    /// The body as delivered: gzipped when configured, with the body
    /// itself given back; else the body itself, not copied.
    pub(super) fn payload(&self, body: Vec<u8>) -> (Bytes, Option<Vec<u8>>) {
        if self.batching.gzip {
            let gz = match self.gzip.lock() {
                Ok(mut g) => g.compress(&body),
                Err(poisoned) => poisoned.into_inner().compress(&body),
            };
            (Bytes::from(gz), Some(body))
        } else {
            (Bytes::from(body), None)
        }
    }

    /// Spools a body the shutdown's grace left undelivered.
    fn keep(&self, body: &[u8], events: usize, why: &str) -> Result<(), String> {
        match self.spool.keep(body, events) {
            Ok(path) => {
                self.stats
                    .spooled
                    .fetch_add(events as u64, Ordering::Relaxed);
                tracing::warn!(sink = %self.id, reason = %why, events, file = %path.display(), "events spooled: delivered first at the next start");
                Ok(())
            }
            Err(e) => Err(format!("{why}; could not spool them: {e}")),
        }
    }

    /// Delivers the bodies a last run spooled, oldest first, removing each
    /// once delivered; a shutdown leaves the rest for the next start.
    async fn unspool(&self, target: &mut impl Target) {
        for kept in self.spool.pending() {
            if let Sent::Shutdown = self.send_kept(target, &kept, true).await {
                return;
            }
        }
    }

    /// Delivers one spooled body, removing its file once delivered. One
    /// refused for good is set aside (`.rejected-<time>`), counted as
    /// write errors. Counted as `unspooled` when `from_last_run`, else as
    /// delivered events.
    pub(super) async fn send_kept(
        &self,
        target: &mut impl Target,
        kept: &Kept,
        from_last_run: bool,
    ) -> Sent {
        let body = match std::fs::read(&kept.path) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(sink = %self.id, file = %kept.path.display(), error = %e, "cannot read a spooled body; left in place");
                return Sent::Unreadable;
            }
        };
        let (payload, _) = self.payload(body);
        let (s, n) = (&self.stats, kept.events as u64);
        match self.deliver(target, &payload, kept.events).await {
            Ok(()) => {
                let _ = std::fs::remove_file(&kept.path);
                if from_last_run {
                    s.unspooled.fetch_add(n, Ordering::Relaxed);
                    tracing::info!(sink = %self.id, events = n, "spooled events delivered");
                } else {
                    s.events.fetch_add(n, Ordering::Relaxed);
                    s.bytes.fetch_add(payload.len() as u64, Ordering::Relaxed);
                }
                Sent::Delivered
            }
            Err(GaveUp::Shutdown(_)) => Sent::Shutdown,
            Err(GaveUp::Failed(msg)) => {
                let aside = crate::durable::set_aside(&kept.path);
                tracing::error!(sink = %self.id, error = %msg, events = n, set_aside = ?aside, "spooled events refused: counted as write errors");
                s.write_errors.fetch_add(n, Ordering::Relaxed);
                Sent::Refused
            }
        }
    }

    /// [`Delivery::collect`], without replayed batches (written before a
    /// crash: let go, counted, not sent again).
    pub(super) fn gather(&self, first: Arc<Batch>, rx: &mut Rx) -> Vec<Arc<Batch>> {
        let mut held = self.collect(first, rx);
        held.retain(|b| {
            self.stats.received(b);
            let r = &self.stats.replayed;
            r.fetch_add(b.count() as u64 * b.replay as u64, Ordering::Relaxed);
            !b.replay
        });
        held
    }

    /// `first` and what else is waiting, up to the batch limits.
    fn collect(&self, first: Arc<Batch>, rx: &mut Rx) -> Vec<Arc<Batch>> {
        let (mut events, mut bytes) = (first.count(), first.bytes().len());
        let mut held = vec![first];
        while events < self.batching.batch_max_events && bytes < self.batching.batch_max_bytes {
            match rx.try_recv() {
                Ok(b) => {
                    events += b.count();
                    bytes += b.bytes().len();
                    held.push(b);
                }
                Err(_) => break,
            }
        }
        held
    }

    /// One body, tried until delivered or given up (the reason). After a
    /// shutdown began, every try and wait fits in what is left of
    /// `shutdown_grace_secs`, counted once from the shutdown (not per
    /// batch): a sink with many batches held cannot add up graces.
    async fn deliver(
        &self,
        target: &mut impl Target,
        payload: &Bytes,
        events: usize,
    ) -> Result<(), GaveUp> {
        let started = Instant::now();
        let retry = &self.batching.retry;
        let grace = Duration::from_secs(retry.shutdown_grace_secs);
        let limit = (retry.limit_secs > 0).then(|| Duration::from_secs(retry.limit_secs));
        let mut wait = Duration::from_millis(retry.initial_ms.max(1));
        let mut tries = 0u64;
        loop {
            let left = self.grace_left(grace);
            if left.is_some_and(|l| l.is_zero()) {
                return Err(GaveUp::Shutdown(format!(
                    "shutdown grace of {grace:?} spent after {tries} tries"
                )));
            }
            tries += 1;
            let attempt = target.deliver(payload);
            let result = match left {
                Some(l) => tokio::time::timeout(l, attempt).await.unwrap_or_else(|_| {
                    Err(Failure::Retry("no answer within the shutdown grace".into()))
                }),
                None => attempt.await,
            };
            let msg = match result {
                Ok(()) => break,
                Err(Failure::Permanent(msg)) => return Err(GaveUp::Failed(msg)),
                Err(Failure::Retry(msg)) => msg,
            };
            if limit.is_some_and(|l| started.elapsed() >= l) {
                let spent = started.elapsed();
                let msg = format!("{msg}; gave up after {tries} tries in {spent:?}");
                return Err(GaveUp::Failed(msg));
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            if tries == 1 || tries.is_power_of_two() {
                tracing::warn!(sink = %self.id, error = %msg, tries, retry_in = ?wait, events, "delivery failed; keeping the events and retrying");
            }
            self.pause(wait, grace).await;
            wait = (wait * 2).min(Duration::from_millis(retry.max_ms.max(1)));
        }
        if tries > 1 {
            tracing::info!(sink = %self.id, tries, events, "delivered after retrying");
        }
        Ok(())
    }

    /// What is left of the shutdown grace; `None` while not shutting down.
    fn grace_left(&self, grace: Duration) -> Option<Duration> {
        (*self.shutdown.borrow()).then(|| crate::shutdown::remaining(grace))
    }

    /// Waits before the next try: `wait`, cut short by a shutdown, and never
    /// past what is left of the grace.
    async fn pause(&self, wait: Duration, grace: Duration) {
        match self.grace_left(grace) {
            Some(left) => tokio::time::sleep(wait.min(left)).await,
            None => {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown_requested(self.shutdown.clone()) => {}
                }
            }
        }
    }
}
