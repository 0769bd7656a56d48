//! The `nats` source: NDJSON from a NATS JetStream stream, each message one
//! or more lines. Two ways to read:
//!
//! - **A shared durable consumer** (`consumer`): any number of processes
//!   pull from one durable pull consumer, and each message goes to one of
//!   them. A message is acked only once every sink has written or delivered
//!   every event it became (the [`Ack`] of its batch); a batch a sink gave
//!   up is nak'ed, and a process that dies leaves its messages unacked, so
//!   the server delivers them again (at-least-once; redeliveries are
//!   counted). Messages are pulled only while the pipeline has room, and
//!   the consumer's `max_ack_pending` bounds what is in flight.
//! - **Partitions** (`partitions`): the stream's subjects are cut into
//!   `count` partitions (`subject` with `{}` for the number), and this
//!   process reads the ones it owns, each from the message after the one
//!   its saved state covers, with its window state in a key-value bucket
//!   ([`crate::partition`], [`crate::nats::partitions`]). Ownership is
//!   static (`assign`) or claimed through leases, so a process that dies
//!   has its partitions taken over by the others, or by a new one, without
//!   an operator.
//!
//! The input ends after `idle_end_secs` with nothing to read (a batch job;
//! 0, the default: it never ends). A server that cannot be reached at the
//! start is tried again until it answers; refused credentials end the
//! source with an error.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use serde::Deserialize;

use super::component::{Source, SourceContext, Started};
use crate::batch::Batch;
use crate::config::{Paths, Problem};
use crate::durable::Ack;
use crate::nats::partitions::{KvStore, Leases, bucket};
use crate::nats::{Auth, ConnectFailure, Connection};
use crate::partition::Part;
use crate::tls::ClientTls;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// `nats://host:port` (several, comma-separated, for a cluster).
    pub url: String,
    #[serde(default)]
    pub auth: Option<Box<Auth>>,
    #[serde(default)]
    pub tls: Option<Box<ClientTls>>,
    #[serde(default = "crate::nats::default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// The JetStream stream to read.
    pub stream: String,
    /// The durable pull consumer the reading processes share (made if
    /// missing). Not with `partitions`.
    #[serde(default)]
    pub consumer: Option<String>,
    /// The subject the consumer takes (nats-server 2.9 takes one).
    #[serde(default)]
    pub filter_subjects: Vec<String>,
    #[serde(default = "super::component::default_batch_events")]
    pub batch_max_events: usize,
    /// Messages delivered and not yet acked, at most (the consumer's).
    #[serde(default = "default_max_ack_pending")]
    pub max_ack_pending: i64,
    /// A message not acked this long is delivered again.
    #[serde(default = "default_ack_wait")]
    pub ack_wait_secs: u64,
    /// The input ends after this long with nothing to read; 0: never.
    #[serde(default)]
    pub idle_end_secs: u64,
    #[serde(default)]
    pub partitions: Option<Box<Partitions>>,
}

/// `partitions = { ... }`: see the module docs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partitions {
    pub count: u32,
    /// The subject of partition N, `{}` standing for N (`obs.{}`).
    pub subject: String,
    /// The partitions this process reads (static); without it they are
    /// claimed through leases.
    #[serde(default)]
    pub assign: Option<Vec<u32>>,
    #[serde(default = "default_lease_bucket")]
    pub lease_bucket: String,
    #[serde(default = "default_state_bucket")]
    pub state_bucket: String,
    /// A lease not renewed this long frees its partition.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl_secs: u64,
    /// This process's name in the leases (default: host name and pid).
    #[serde(default)]
    pub instance: Option<String>,
}

fn default_max_ack_pending() -> i64 {
    20_000
}
fn default_ack_wait() -> u64 {
    30
}
fn default_lease_bucket() -> String {
    "rulebox_leases".into()
}
fn default_state_bucket() -> String {
    "rulebox_state".into()
}
fn default_lease_ttl() -> u64 {
    10
}

impl NatsConfig {
    fn connection(&self) -> Connection<'_> {
        Connection {
            url: &self.url,
            auth: self.auth.as_deref(),
            tls: self.tls.as_deref(),
            connect_timeout_secs: self.connect_timeout_secs,
        }
    }
}

impl Source for NatsConfig {
    fn check(&self) -> Vec<Problem> {
        let mut p = self.connection().check();
        if self.consumer.is_some() == self.partitions.is_some() {
            p.push(Problem::whole("give either consumer (a shared durable consumer) or partitions"));
        }
        if self.filter_subjects.len() > 1 {
            p.push(Problem::at("filter_subjects", "at most one subject (nats-server 2.9 filters a consumer on one)"));
        }
        if self.batch_max_events == 0 {
            p.push(Problem::at("batch_max_events", "must be at least 1"));
        }
        if let Some(parts) = &self.partitions {
            p.extend(parts.check());
        }
        p
    }

    fn check_paths(&self, paths: &Paths) -> Vec<Problem> {
        match self.tls.as_ref().map(|t| t.config(paths)) {
            Some(Err(e)) => vec![Problem::at("tls", e)],
            _ => Vec::new(),
        }
    }

    fn partitioned(&self) -> bool {
        self.partitions.is_some()
    }

    fn start(&self, cx: SourceContext) -> Started {
        // The task outlives the input: its last acks follow the sinks.
        let settle = tokio::spawn(run(self.clone(), cx));
        Started {
            settle: Some(settle),
            ..Started::listening()
        }
    }
}

impl Partitions {
    fn check(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.count == 0 {
            p.push(Problem::at("partitions.count", "must be at least 1"));
        }
        if self.subject.matches("{}").count() != 1 {
            p.push(Problem::at("partitions.subject", "must hold `{}` once, for the partition's number"));
        }
        let out = self.assign.iter().flatten().find(|&&n| n >= self.count);
        if let Some(n) = out {
            p.push(Problem::at("partitions.assign", format!("partition {n} is not below count {}", self.count)));
        }
        let bad_name = |n: &String| n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
        if self.instance.as_ref().is_some_and(bad_name) {
            p.push(Problem::at("partitions.instance", "letters, digits, - and _ only (it is part of a key)"));
        }
        if self.lease_ttl_secs < 3 {
            p.push(Problem::at("partitions.lease_ttl_secs", "must be at least 3"));
        }
        p
    }
}

/// Connects, finds the stream, and reads until the input ends.
async fn run(cfg: NatsConfig, cx: SourceContext) {
    let stop = cx.stop.clone();
    let stopping = move || stop.load(Ordering::Relaxed);
    let client = match cfg.connection().open(&cx.id, &cx.paths, &stopping).await {
        Ok(link) => link.client,
        Err(ConnectFailure::Refused(e)) => return fail(&cx, &e),
        Err(ConnectFailure::ShutDown) => return,
    };
    let js = jetstream::new(client.clone());
    let idle = Idle::new(cfg.idle_end_secs);
    let Some(stream) = find_stream(&js, &cfg.stream, &cx, || stopping() || idle.ended()).await else {
        return;
    };
    let mut settles = tokio::task::JoinSet::new();
    let res = match &cfg.partitions {
        None => shared(&cfg, stream, &cx, &mut settles).await,
        Some(parts) => partitioned(&cfg, parts, &js, stream, &cx).await,
    };
    if let Err(e) = res {
        fail(&cx, &e);
    }
    // The input ends here; the batches' acks come once the sinks are done.
    drop(cx);
    while settles.join_next().await.is_some() {}
    let _ = client.flush().await;
}

fn fail(cx: &SourceContext, e: &str) {
    cx.errors.fetch_add(1, Ordering::Relaxed);
    tracing::error!(source = %cx.id, error = %e, "nats source stopped");
}

/// The stream, waiting for it to be made (logged once) until shutdown or
/// the idle end.
async fn find_stream(
    js: &jetstream::Context,
    name: &str,
    cx: &SourceContext,
    stopping: impl Fn() -> bool,
) -> Option<jetstream::stream::Stream> {
    let mut logged = false;
    loop {
        match js.get_stream(name).await {
            Ok(s) => return Some(s),
            Err(e) if !logged => {
                tracing::warn!(source = %cx.id, stream = %name, error = %e, "JetStream stream not found yet; waiting for it");
                logged = true;
            }
            Err(_) => {}
        }
        for _ in 0..20 {
            if stopping() {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// How long to wait for more messages of a batch under way.
const LULL: Duration = Duration::from_millis(5);

/// Reading a shared durable consumer (see the module docs).
async fn shared(
    cfg: &NatsConfig,
    stream: jetstream::stream::Stream,
    cx: &SourceContext,
    settles: &mut tokio::task::JoinSet<()>,
) -> Result<(), String> {
    let name = cfg.consumer.clone().unwrap_or_default();
    let config = pull::Config {
        durable_name: Some(name.clone()),
        filter_subject: cfg.filter_subjects.first().cloned().unwrap_or_default(),
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_secs(cfg.ack_wait_secs.max(1)),
        max_ack_pending: cfg.max_ack_pending,
        ..Default::default()
    };
    let consumer = stream
        .get_or_create_consumer(&name, config)
        .await
        .map_err(|e| format!("consumer {name} on stream {}: {e}", cfg.stream))?;
    let open = || async {
        let pull = consumer.stream().max_messages_per_batch(cfg.batch_max_events.clamp(1, 1000));
        let pull = pull.max_bytes_per_batch(PULL_BYTES).messages().await;
        pull.map_err(|e| format!("consumer {name}: {e}"))
    };
    let mut messages = open().await?;
    let mut idle = Idle::new(cfg.idle_end_secs);
    loop {
        let Some(permit) = room(cx).await else { break };
        let stopping = || cx.stop.load(Ordering::Relaxed) || *cx.shutdown.borrow();
        let first = match next(&mut messages, stopping, &mut idle, &cx.id).await {
            Next::Message(m) => *m,
            Next::Stop => break,
            Next::Broken => {
                // A pull that no longer delivers (a server restart it did
                // not recover from): a new one, from the durable's state.
                tracing::warn!(source = %cx.id, "the pull from the consumer broke off; pulling anew");
                match open().await {
                    Ok(m) => messages = m,
                    Err(e) => tracing::warn!(source = %cx.id, error = %e, "cannot pull yet"),
                }
                continue;
            }
            Next::Idle if drained(&consumer).await => break,
            Next::Idle => {
                idle.busy();
                continue;
            }
        };
        let mut ackers = Vec::new();
        let mut b = gather(first, &mut messages, cfg.batch_max_events, |msg, b| {
            if msg.info().is_ok_and(|i| i.delivered > 1) {
                cx.stats.redelivered.fetch_add(1, Ordering::Relaxed);
            }
            let (msg, acker) = msg.split();
            push_lines(b, &msg.payload);
            ackers.push(acker);
        })
        .await;
        let (ack, done) = Ack::notify();
        b.acks.push(ack);
        permit.send(Arc::new(b));
        settles.spawn(settle(done, ackers));
        while settles.try_join_next().is_some() {}
    }
    Ok(())
}

/// Whether the consumer has nothing left for anyone: no message waiting,
/// none delivered and not acked (a process that died holds some until
/// `ack_wait_secs`; they come back). The idle end waits for that.
async fn drained(consumer: &jetstream::consumer::Consumer<pull::Config>) -> bool {
    let mut c = consumer.clone();
    match c.info().await {
        Ok(i) => i.num_pending == 0 && i.num_ack_pending == 0,
        Err(_) => false,
    }
}

/// Bytes a pull asks for at most: far below the server's limit on what it
/// holds for a slow client (64 MB), whatever the messages' size.
const PULL_BYTES: usize = 8 << 20;

/// Bytes a batch takes at most (a message's lines always go whole).
const BATCH_BYTES: usize = 4 << 20;

/// One batch: `first`, then the messages that come within [`LULL`] of
/// each other, until the batch holds `max_lines` lines or
/// [`BATCH_BYTES`]; `each` puts a message into the batch.
async fn gather<S, E>(
    first: jetstream::Message,
    messages: &mut S,
    max_lines: usize,
    mut each: impl FnMut(jetstream::Message, &mut Batch),
) -> Batch
where
    S: futures_util::Stream<Item = Result<jetstream::Message, E>> + Unpin,
{
    let mut b = Batch::with_capacity(64 << 10);
    let mut m = Some(first);
    while let Some(msg) = m.take() {
        each(msg, &mut b);
        if b.count() < max_lines && b.bytes().len() < BATCH_BYTES {
            m = match tokio::time::timeout(LULL, messages.next()).await {
                Ok(Some(Ok(msg))) => Some(msg),
                _ => None,
            };
        }
    }
    b
}

/// Acks a batch's messages once its events are out; naks them (delivered
/// again at once) if a sink gave them up.
async fn settle(
    done: tokio::sync::oneshot::Receiver<crate::durable::Outcome>,
    ackers: Vec<jetstream::message::Acker>,
) {
    let kind = match done.await {
        Ok(Ok(())) => AckKind::Ack,
        _ => AckKind::Nak(None),
    };
    // One line for a batch, however many of its acks fail (a connection
    // that is gone fails them all).
    let (mut failed, mut first) = (0usize, None);
    for a in ackers {
        if let Err(e) = a.ack_with(kind).await {
            failed += 1;
            first.get_or_insert(e);
        }
    }
    if let Some(e) = first {
        tracing::warn!(error = %e, messages = failed, "cannot ack messages; they will be delivered again");
    }
}

/// Room for one more batch in the pipeline (None: it is closing).
async fn room(cx: &SourceContext) -> Option<tokio::sync::mpsc::Permit<'_, Arc<Batch>>> {
    let mut shutdown = cx.shutdown.clone();
    tokio::select! {
        p = cx.tx.reserve() => p.ok(),
        _ = shutdown.wait_for(|s| *s) => None,
    }
}

/// The input's idle end (`idle_end_secs`).
struct Idle {
    after: Option<Duration>,
    since: Instant,
}

impl Idle {
    fn new(secs: u64) -> Idle {
        Idle {
            after: (secs > 0).then(|| Duration::from_secs(secs)),
            since: Instant::now(),
        }
    }

    fn busy(&mut self) {
        self.since = Instant::now();
    }

    fn ended(&self) -> bool {
        self.after.is_some_and(|a| self.since.elapsed() >= a)
    }
}

/// What [`next`] found.
enum Next {
    Message(Box<jetstream::Message>),
    /// Nothing for `idle_end_secs`.
    Idle,
    /// Shutdown.
    Stop,
    /// The stream of messages ended, or keeps failing.
    Broken,
}

/// The next message, waiting while none comes; `stopping` says when to
/// give up (shutdown), `id` names the reader in the log.
async fn next<S, E>(messages: &mut S, stopping: impl Fn() -> bool, idle: &mut Idle, id: &str) -> Next
where
    S: futures_util::Stream<Item = Result<jetstream::Message, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut failures = 0;
    loop {
        if stopping() {
            return Next::Stop;
        }
        if idle.ended() {
            return Next::Idle;
        }
        match tokio::time::timeout(Duration::from_millis(200), messages.next()).await {
            Ok(Some(Ok(m))) => {
                idle.busy();
                return Next::Message(Box::new(m));
            }
            Ok(Some(Err(e))) => {
                tracing::warn!(reader = %id, error = %e, "reading the stream; going on");
                failures += 1;
                if failures >= 10 {
                    return Next::Broken;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(None) => return Next::Broken,
            Err(_) => {}
        }
    }
}

/// A message's lines (one, or several separated by `\n`; empty lines are
/// no events).
fn push_lines(b: &mut Batch, payload: &[u8]) {
    for line in payload.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.is_empty() {
            b.push_line(line);
        }
    }
}

/// Reading the partitions this process owns (see the module docs).
async fn partitioned(
    cfg: &NatsConfig,
    parts: &Partitions,
    js: &jetstream::Context,
    stream: jetstream::stream::Stream,
    cx: &SourceContext,
) -> Result<(), String> {
    let ttl = Duration::from_secs(parts.lease_ttl_secs);
    let state = bucket(js, &parts.state_bucket, Duration::ZERO).await?;
    let leases = match parts.assign {
        Some(_) => None,
        None => {
            let kv = bucket(js, &parts.lease_bucket, ttl).await?;
            Some(Arc::new(Leases::new(kv, instance_name(parts))))
        }
    };
    let store = Arc::new(KvStore {
        kv: state,
        stream: cfg.stream.clone(),
        leases: leases.clone(),
    });
    let owner = Owner {
        cfg,
        parts,
        stream,
        store,
        cx,
        readers: tokio::task::JoinSet::new(),
        held: Vec::new(),
    };
    owner.run(leases).await
}

fn instance_name(parts: &Partitions) -> String {
    parts.instance.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let mut name = String::new();
        crate::nats::subject_token(host.trim().as_bytes(), &mut name);
        format!("{name}-{}", std::process::id())
    })
}

/// The partitions this process reads, and their readers.
struct Owner<'a> {
    cfg: &'a NatsConfig,
    parts: &'a Partitions,
    stream: jetstream::stream::Stream,
    store: Arc<KvStore>,
    cx: &'a SourceContext,
    readers: tokio::task::JoinSet<bool>,
    held: Vec<Arc<Part>>,
}

impl Owner<'_> {
    /// Takes its partitions (assigned, or claimed and renewed every third
    /// of a lease) until shutdown or the idle end; then lets its readers
    /// end, which closes the pipeline's input.
    async fn run(mut self, leases: Option<Arc<Leases>>) -> Result<(), String> {
        let ttl = Duration::from_secs(self.parts.lease_ttl_secs);
        if let Some(assign) = &self.parts.assign {
            for &p in assign {
                self.take(p).await?;
            }
        }
        let mut round = tokio::time::interval(ttl / 3);
        let mut shutdown = self.cx.shutdown.clone();
        // Without partitions to read, the idle end still comes.
        let mut idle = Idle::new(self.cfg.idle_end_secs);
        let mut first = true;
        loop {
            tokio::select! {
                _ = round.tick() => {}
                _ = shutdown.wait_for(|s| *s) => break,
                Some(r) = self.readers.join_next(), if !self.readers.is_empty() => {
                    // A reader ends at the idle end, or when its partition is lost.
                    let ended_idle = r.unwrap_or(false);
                    if ended_idle && self.readers.is_empty() {
                        break;
                    }
                    continue;
                }
            }
            if !self.readers.is_empty() {
                idle.busy();
            } else if idle.ended() {
                break;
            }
            if let Some(l) = &leases {
                // The first round only says this process is here, so that
                // processes started together count each other first.
                match first {
                    true => drop(l.heartbeat().await),
                    false => self.claim_round(l).await?,
                }
                first = false;
            }
        }
        // The readers stop at shutdown or at the idle end by themselves.
        while self.readers.join_next().await.is_some() {}
        if let Some(l) = &leases {
            l.leave().await;
        }
        Ok(())
    }

    /// One round of leases: renew, drop the lost, take a fair share of
    /// the free.
    async fn claim_round(&mut self, l: &Arc<Leases>) -> Result<(), String> {
        if let Err(e) = l.heartbeat().await {
            tracing::warn!(source = %self.cx.id, error = %e, "cannot renew this instance's member key");
        }
        for p in l.renew().await {
            tracing::warn!(source = %self.cx.id, partition = p, "partition lease lost: another instance owns it now");
            self.held.retain(|h| {
                let keep = h.id() != p;
                if !keep {
                    h.lose();
                }
                keep
            });
        }
        let count = self.parts.count as usize;
        let share = count.div_ceil(l.members().await);
        // More than a fair share (another process joined): hand the
        // highest over; the transform saves their state and releases them.
        let mine = self.held.len();
        for part in self.held.drain(share.min(mine)..) {
            tracing::info!(source = %self.cx.id, partition = part.id(), share, "handing a partition over to rebalance");
            part.hand_over();
        }
        for p in 0..self.parts.count {
            if l.count_held() >= share {
                break;
            }
            if !l.holds(p) && l.try_claim(p).await {
                tracing::info!(source = %self.cx.id, partition = p, instance = %l.owner(), "partition claimed");
                self.take(p).await?;
            }
        }
        Ok(())
    }

    /// Starts reading partition `p` from after its saved state.
    async fn take(&mut self, p: u32) -> Result<(), String> {
        let saved = self.store.load(p).await.unwrap_or_else(|e| {
            tracing::error!(source = %self.cx.id, partition = p, error = %e, "saved partition state unreadable: the partition starts over from the stream's first message");
            None
        });
        let (state, from) = match saved {
            Some((s, seq)) => (Some(s), seq),
            None => (None, 0),
        };
        let store: Arc<dyn crate::partition::Store> = self.store.clone();
        let part = Part::new(p, from, state, store);
        let subject = self.parts.subject.replace("{}", &p.to_string());
        let messages = ordered(&self.stream, &subject, from).await?;
        self.held.push(part.clone());
        let reader = PartReader {
            part,
            stream: self.stream.clone(),
            subject,
            max: self.cfg.batch_max_events,
            idle: Idle::new(self.cfg.idle_end_secs),
            tx: self.cx.tx.clone(),
            cx_stop: self.cx.stop.clone(),
            shutdown: self.cx.shutdown.clone(),
        };
        self.readers.spawn(reader.run(messages));
        Ok(())
    }
}

/// Reads one partition into batches that carry its [`Part`].
struct PartReader {
    part: Arc<Part>,
    stream: jetstream::stream::Stream,
    subject: String,
    max: usize,
    idle: Idle,
    tx: crate::channel::Tx,
    cx_stop: Arc<std::sync::atomic::AtomicBool>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl PartReader {
    /// Whether it ended for being idle.
    async fn run(mut self, mut messages: pull::Ordered) -> bool {
        let (mut n, mut last) = (0u64, self.part.delivered());
        // The partition announced before any message: its restored windows
        // are the transform's to flush or save even if nothing more comes.
        let mut hello = Batch::default();
        hello.part = Some(self.part.clone());
        if self.tx.send(Arc::new(hello)).await.is_err() {
            return false;
        }
        loop {
            let first = match self.next(&mut messages).await {
                Next::Message(m) => *m,
                Next::Broken => {
                    // Read on from the last message taken, with a new consumer.
                    tracing::warn!(partition = self.part.id(), "the partition's reading broke off; reading anew");
                    match ordered(&self.stream, &self.subject, last).await {
                        Ok(m) => messages = m,
                        Err(e) => tracing::warn!(partition = self.part.id(), error = %e, "cannot read it yet"),
                    }
                    continue;
                }
                Next::Idle | Next::Stop => return self.idle.ended(),
            };
            let mut b = gather(first, &mut messages, self.max, |msg, b| {
                last = msg.info().map_or(last, |i| i.stream_sequence);
                push_lines(b, &msg.payload);
            })
            .await;
            b.acks.push(Ack::new(self.part.progress().clone(), n, last));
            b.part = Some(self.part.clone());
            n += 1;
            if self.tx.send(Arc::new(b)).await.is_err() {
                return false;
            }
        }
    }

    async fn next(&mut self, messages: &mut pull::Ordered) -> Next {
        let (stop, shutdown, part) = (&self.cx_stop, &self.shutdown, &self.part);
        let stopping = || {
            let gone = part.is_lost() || part.is_handing_over();
            stop.load(Ordering::Relaxed) || *shutdown.borrow() || gone
        };
        let id = format!("partition {}", part.id());
        next(messages, stopping, &mut self.idle, &id).await
    }
}

/// An ordered consumer of `subject`, from the message after sequence
/// `after` (0: from the first).
async fn ordered(
    stream: &jetstream::stream::Stream,
    subject: &str,
    after: u64,
) -> Result<pull::Ordered, String> {
    let config = pull::OrderedConfig {
        filter_subject: subject.to_string(),
        deliver_policy: match after {
            0 => DeliverPolicy::All,
            s => DeliverPolicy::ByStartSequence { start_sequence: s + 1 },
        },
        ..Default::default()
    };
    let consumer = (stream.create_consumer(config).await).map_err(|e| format!("reading {subject}: {e}"))?;
    consumer.messages().await.map_err(|e| format!("reading {subject}: {e}"))
}
