//! The `nats` sink: each event (or record) published as one message to a
//! NATS JetStream stream, and kept until the stream acknowledged it.
//!
//! The subject is a template of the line's fields: `{field}` (a dotted
//! path) is the field's value as a subject token, and
//! `{partition(N, f1, f2, ...)}` is a number below N computed from the
//! fields' values ([`partition_of`]), so that every line with the same
//! values lands in the same partition (the `nats` source's `partitions`
//! read them back). `msg_id`, a template of the same kind, gives the
//! `Nats-Msg-Id` header: the stream drops a message whose id it saw within
//! its duplicate window, so a resend (after a retry, or a restored state
//! computing an alert again) is stored once; those are counted as
//! `duplicates`.
//!
//! Delivery is that of the other network sinks (batching, retry with
//! back-off, spool at shutdown, memory or disk buffer). A batch is
//! published with every message in flight at once; when some failed, the
//! retry sends only those.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use rulebox_abi::json::{Object, Scanner};
use serde::Deserialize;

use super::buffer::BufferConfig;
use super::component::{Sink, SinkContext, SinkStats};
use super::delivery::{self, Batching, Encode, Failure, Retry, Target};
use super::network;
use crate::batch::Batch;
use crate::config::{Paths, Problem};
use crate::nats::{Auth, ConnectFailure, Connection, Disconnects, subject_token};
use crate::tls::ClientTls;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    pub inputs: Vec<String>,
    pub url: String,
    #[serde(default)]
    pub auth: Option<Auth>,
    #[serde(default)]
    pub tls: Option<ClientTls>,
    #[serde(default = "crate::nats::default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// The subject template (see the module docs).
    pub subject: String,
    /// The `Nats-Msg-Id` template; none: no id.
    #[serde(default)]
    pub msg_id: Option<String>,
    /// Consecutive lines with one subject and no message id packed into
    /// one message, at most (1: a message a line).
    #[serde(default = "default_lines_per_message")]
    pub lines_per_message: usize,
    /// The stream to make at start when it does not exist.
    #[serde(default)]
    pub create_stream: Option<StreamSpec>,
    #[serde(default = "delivery::default_sink_batch_events")]
    pub batch_max_events: usize,
    #[serde(default = "delivery::default_sink_batch_bytes")]
    pub batch_max_bytes: usize,
    #[serde(default = "delivery::default_request_timeout")]
    pub request_timeout_secs: u64,
    #[serde(default)]
    pub retry: Retry,
    #[serde(default)]
    pub buffer: BufferConfig,
}

/// `create_stream = { ... }`: a stream made when missing (one that exists
/// is used as it is).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    pub name: String,
    pub subjects: Vec<String>,
    /// `limits` (kept by age and size) or `workqueue` (removed once acked).
    #[serde(default)]
    pub retention: Retention,
    /// Messages older than this are removed; 0: kept.
    #[serde(default)]
    pub max_age_secs: u64,
    /// Bytes kept at most; 0: no limit.
    #[serde(default)]
    pub max_bytes: i64,
    /// How long a message id is remembered (duplicates dropped).
    #[serde(default = "default_duplicate_window")]
    pub duplicate_window_secs: u64,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Retention {
    #[default]
    Limits,
    Workqueue,
}

fn default_lines_per_message() -> usize {
    1
}

fn default_duplicate_window() -> u64 {
    120
}

impl NatsConfig {
    fn connection(&self) -> Connection<'_> {
        Connection {
            url: &self.url,
            auth: self.auth.as_ref(),
            tls: self.tls.as_ref(),
            connect_timeout_secs: self.connect_timeout_secs,
        }
    }
}

impl Sink for NatsConfig {
    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    fn check(&self) -> Vec<Problem> {
        let mut p = self.buffer.check();
        p.extend(self.connection().check());
        if let Err(e) = Template::parse(&self.subject) {
            p.push(Problem::at("subject", e));
        }
        if let Some(Err(e)) = self.msg_id.as_deref().map(Template::parse) {
            p.push(Problem::at("msg_id", e));
        }
        p
    }

    fn check_paths(&self, paths: &Paths) -> Vec<Problem> {
        match self.tls.as_ref().map(|t| t.config(paths)) {
            Some(Err(e)) => vec![Problem::at("tls", e)],
            _ => Vec::new(),
        }
    }

    fn start(&self, cx: SinkContext) -> tokio::task::JoinHandle<()> {
        let encode = Template::parse(&self.subject).and_then(|subject| {
            let msg_id = self.msg_id.as_deref().map(Template::parse).transpose()?;
            let lines_per_message = self.lines_per_message.max(1);
            Ok(Frames::new(subject, msg_id, lines_per_message))
        });
        let batching = Batching {
            batch_max_events: self.batch_max_events,
            batch_max_bytes: self.batch_max_bytes,
            retry: self.retry.clone(),
            gzip: false,
            buffer: self.buffer.clone(),
            concurrency: 1,
        };
        let target = NatsTarget {
            cfg: self.clone(),
            id: cx.id.clone(),
            paths: cx.paths.clone(),
            stats: cx.stats.clone(),
            js: None,
            done: None,
        };
        match encode {
            Ok(e) => network::start(cx, Ok(target), e, batching),
            Err(e) => network::start(cx, Err::<NatsTarget, _>(e), Frames::none(), batching),
        }
    }
}

/// A subject or message id template.
#[derive(Debug, Clone)]
struct Template(Vec<Piece>);

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Field(String),
    Partition(u32, Vec<String>),
}

impl Template {
    fn parse(s: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let close = rest[open..].find('}').ok_or_else(|| format!("{s:?}: `{{` without `}}`"))?;
            pieces.push(Piece::parse(&rest[open + 1..open + close])?);
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        if pieces.is_empty() {
            return Err("empty".into());
        }
        Ok(Template(pieces))
    }

    /// Whether it reads the line's fields (a constant subject needs no scan).
    fn reads_fields(&self) -> bool {
        self.0.iter().any(|p| !matches!(p, Piece::Text(_)))
    }

    /// The template filled from the line `obj` is the scan of (`None`
    /// when the line was not scanned or is not a JSON object: each field
    /// is then empty).
    fn render(&self, obj: Option<&Object<'_, '_>>, subject: bool, out: &mut String) {
        let value = |path: &str| -> Vec<u8> {
            let v = obj.and_then(|o| o.get(path));
            v.map(|v| match v.as_str() {
                Some(s) => s.into_owned().into_bytes(),
                None => v.as_number_text().map_or_else(|| v.raw.to_vec(), |n| n.as_bytes().to_vec()),
            })
            .unwrap_or_default()
        };
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Field(f) if subject => subject_token(&value(f), out),
                Piece::Field(f) => out.extend(String::from_utf8_lossy(&value(f)).chars().filter(|c| !c.is_control())),
                Piece::Partition(n, fields) => {
                    let values: Vec<Vec<u8>> = fields.iter().map(|f| value(f)).collect();
                    let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
                    out.push_str(&partition_of(*n, &refs).to_string());
                }
            }
        }
    }
}

impl Piece {
    fn parse(inner: &str) -> Result<Piece, String> {
        let inner = inner.trim();
        let Some(args) = inner.strip_prefix("partition(").and_then(|a| a.strip_suffix(')')) else {
            if inner.is_empty() || inner.contains(['(', ')', ',', ' ']) {
                return Err(format!("{{{inner}}}: expected a field path or partition(N, field, ...)"));
            }
            return Ok(Piece::Field(inner.to_string()));
        };
        let mut it = args.split(',').map(str::trim);
        let n = it.next().and_then(|n| n.parse::<u32>().ok()).filter(|&n| n > 0);
        let n = n.ok_or_else(|| format!("{{{inner}}}: partition's first argument is a count above 0"))?;
        let fields: Vec<String> = it.map(String::from).collect();
        if fields.is_empty() || fields.iter().any(|f| f.is_empty()) {
            return Err(format!("{{{inner}}}: partition needs at least one field"));
        }
        Ok(Piece::Partition(n, fields))
    }
}

/// The partition, below `n`, of a line whose fields have `values`: the
/// 64-bit FNV-1a hash of the values (a string's characters, a number's
/// text), each followed by the byte 0x1f, modulo `n`. Stable across
/// versions and machines: every process sends a key to the same
/// partition.
pub fn partition_of(n: u32, values: &[&[u8]]) -> u32 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for v in values {
        for &b in v.iter().chain(std::iter::once(&0x1f)) {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    (h % n as u64) as u32
}

/// The body of a batch: per message, its subject, its message id (maybe
/// empty) and its payload, each behind a u32 length. A payload is one
/// line, or with `lines_per_message` several lines in a row that share a
/// subject and have no message id, joined by `\n`.
struct Frames {
    subject: Template,
    msg_id: Option<Template>,
    lines_per_message: usize,
    /// Whether either template reads the line's fields.
    reads_fields: bool,
}

impl Frames {
    fn new(subject: Template, msg_id: Option<Template>, lines_per_message: usize) -> Frames {
        let reads_fields = subject.reads_fields() || msg_id.as_ref().is_some_and(Template::reads_fields);
        Frames {
            subject,
            msg_id,
            lines_per_message,
            reads_fields,
        }
    }

    fn none() -> Frames {
        Frames::new(Template(vec![Piece::Text("_".into())]), None, 1)
    }
}

/// The most payload bytes lines are packed into (below the server's
/// default `max_payload`, 1 MiB); a longer line goes alone.
const PACK_BYTES: usize = 900 << 10;

/// Lines being packed into one message.
struct Pack {
    subject: String,
    payload: Vec<u8>,
    lines: usize,
}

impl Encode for Frames {
    fn encode(&self, b: &Batch, body: &mut Vec<u8>) {
        let mut scanner = Scanner::new();
        let (mut s, mut id) = (String::new(), String::new());
        let mut open: Option<Pack> = None;
        for line in b.bytes().split(|&c| c == b'\n').take(b.count()) {
            // One scan of the line for both templates, none when neither
            // reads a field.
            let obj = if self.reads_fields { scanner.scan(line).ok() } else { None };
            s.clear();
            self.subject.render(obj.as_ref(), true, &mut s);
            id.clear();
            if let Some(t) = &self.msg_id {
                t.render(obj.as_ref(), false, &mut id);
            }
            let packs = id.is_empty() && self.lines_per_message > 1;
            if let Some(p) = open.as_mut().filter(|p| {
                packs && p.subject == s && p.lines < self.lines_per_message && p.payload.len() + line.len() < PACK_BYTES
            }) {
                p.payload.push(b'\n');
                p.payload.extend_from_slice(line);
                p.lines += 1;
                continue;
            }
            if let Some(p) = open.take() {
                put_frame(body, &p.subject, "", &p.payload);
            }
            match packs {
                true => open = Some(Pack { subject: s.clone(), payload: line.to_vec(), lines: 1 }),
                false => put_frame(body, &s, &id, line),
            }
        }
        if let Some(p) = open {
            put_frame(body, &p.subject, "", &p.payload);
        }
    }
}

fn put_frame(body: &mut Vec<u8>, subject: &str, id: &str, payload: &[u8]) {
    put(body, subject.as_bytes());
    put(body, id.as_bytes());
    put(body, payload);
}

fn put(body: &mut Vec<u8>, part: &[u8]) {
    body.extend_from_slice(&(part.len() as u32).to_le_bytes());
    body.extend_from_slice(part);
}

/// The frames of a body: (subject, message id, line).
fn frames(body: &Bytes) -> Result<Vec<(String, String, Bytes)>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    let take = |at: &mut usize| -> Option<Bytes> {
        let len = body.get(*at..*at + 4)?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let part = body.get(*at + 4..*at + 4 + len)?;
        *at += 4 + len;
        Some(body.slice_ref(part))
    };
    while at < body.len() {
        let (Some(s), Some(id), Some(line)) = (take(&mut at), take(&mut at), take(&mut at)) else {
            return Err("a body cut short (a damaged spool file?)".into());
        };
        let text = |b: Bytes| String::from_utf8_lossy(&b).into_owned();
        out.push((text(s), text(id), line));
    }
    Ok(out)
}

struct NatsTarget {
    cfg: NatsConfig,
    id: String,
    paths: Paths,
    stats: Arc<SinkStats>,
    /// The open context, and its connection's [`Disconnects`].
    js: Option<(jetstream::Context, Disconnects)>,
    /// The body under way, and which of its frames the stream has.
    done: Option<(Bytes, Vec<bool>)>,
}

impl NatsTarget {
    async fn context(&mut self) -> Result<(jetstream::Context, Disconnects), Failure> {
        if let Some(open) = &self.js {
            return Ok(open.clone());
        }
        let conn = self.cfg.connection();
        // One try: the delivery's back-off paces the next.
        let link = conn.open(&self.id, &self.paths, || true).await.map_err(|e| match e {
            ConnectFailure::Refused(e) => Failure::Retry(e),
            ConnectFailure::ShutDown => Failure::Retry(format!("cannot reach the NATS server at {}", self.cfg.url)),
        })?;
        let mut js = jetstream::new(link.client);
        js.set_timeout(Duration::from_secs(self.cfg.request_timeout_secs.max(1)));
        if let Some(spec) = &self.cfg.create_stream {
            // A client opened on a server going down loses its requests.
            tokio::select! {
                made = ensure_stream(&js, spec) => made.map_err(Failure::Retry)?,
                _ = link.disconnects.since(0) => {
                    return Err(Failure::Retry("the connection dropped while the stream was looked up".into()));
                }
            }
        }
        self.js = Some((js, link.disconnects));
        Ok(self.js.clone().expect("just set"))
    }
}

async fn ensure_stream(js: &jetstream::Context, spec: &StreamSpec) -> Result<(), String> {
    if js.get_stream(&spec.name).await.is_ok() {
        return Ok(());
    }
    let config = stream::Config {
        name: spec.name.clone(),
        subjects: spec.subjects.clone(),
        retention: match spec.retention {
            Retention::Limits => stream::RetentionPolicy::Limits,
            Retention::Workqueue => stream::RetentionPolicy::WorkQueue,
        },
        max_age: Duration::from_secs(spec.max_age_secs),
        max_bytes: if spec.max_bytes > 0 { spec.max_bytes } else { -1 },
        duplicate_window: Duration::from_secs(spec.duplicate_window_secs),
        storage: stream::StorageType::File,
        ..Default::default()
    };
    js.get_or_create_stream(config)
        .await
        .map(|_| ())
        .map_err(|e| format!("making stream {}: {e}", spec.name))
}

impl Target for NatsTarget {
    async fn deliver(&mut self, body: &Bytes) -> Result<(), Failure> {
        let frames = frames(body).map_err(Failure::Permanent)?;
        let same = self.done.as_ref().is_some_and(|(b, _)| b.as_ptr() == body.as_ptr() && b.len() == body.len());
        if !same {
            self.done = Some((body.clone(), vec![false; frames.len()]));
        }
        let (js, disconnects) = self.context().await?;
        let seen = disconnects.count();
        let mut acks = Vec::with_capacity(frames.len());
        let done = self.done.as_ref().map(|(_, d)| d.clone()).unwrap_or_default();
        for (i, (subject, id, line)) in frames.into_iter().enumerate() {
            if done.get(i).copied().unwrap_or(false) {
                continue;
            }
            let sent = if id.is_empty() {
                js.publish(subject.clone(), line).await
            } else {
                let mut headers = HeaderMap::new();
                headers.insert("Nats-Msg-Id", id.as_str());
                js.publish_with_headers(subject.clone(), headers, line).await
            };
            match sent {
                Ok(f) => acks.push((i, subject, f)),
                Err(e) => return Err(self.lost_connection(format!("publishing to {subject}: {e}"))),
            }
        }
        self.settle(acks, disconnects.since(seen)).await
    }
}

impl NatsTarget {
    /// Awaits the stream's acks all at once (each within the request
    /// timeout), noting which frames it has; gives up on the rest at once
    /// when the connection drops (`lost`): their acks cannot come.
    async fn settle(
        &mut self,
        acks: Vec<(usize, String, jetstream::context::PublishAckFuture)>,
        lost: impl Future<Output = ()>,
    ) -> Result<(), Failure> {
        let mut pending: FuturesUnordered<_> = acks
            .into_iter()
            .map(|(i, subject, f)| async move { (i, subject, f.await) })
            .collect();
        let mut first_error = None;
        let mut lost = std::pin::pin!(lost);
        loop {
            let (i, subject, result) = tokio::select! {
                next = pending.next() => match next {
                    Some(n) => n,
                    None => break,
                },
                _ = &mut lost => {
                    first_error.get_or_insert_with(|| "the connection dropped before the stream acknowledged".to_string());
                    break;
                }
            };
            match result {
                Ok(ack) => {
                    if ack.duplicate {
                        self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some((_, d)) = &mut self.done {
                        d[i] = true;
                    }
                }
                Err(e) => {
                    first_error.get_or_insert_with(|| format!("{subject}: {e}"));
                }
            }
        }
        match first_error {
            None => {
                self.done = None;
                Ok(())
            }
            Some(e) if e.contains("no responders") => Err(Failure::Retry(format!(
                "no JetStream stream takes subject {e} (make it, or set create_stream)"
            ))),
            Some(e) => Err(Failure::Retry(e)),
        }
    }

    fn lost_connection(&mut self, why: String) -> Failure {
        self.js = None;
        Failure::Retry(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, line: &str, subject: bool) -> String {
        let mut s = String::new();
        let mut scanner = Scanner::new();
        let obj = scanner.scan(line.as_bytes()).ok();
        Template::parse(t).unwrap().render(obj.as_ref(), subject, &mut s);
        s
    }

    #[test]
    fn templates_fill_fields_and_partitions() {
        let line = r#"{"src":"10.0.0.5","dest":"203.0.113.9","port":445,"a":{"b":"x.y"}}"#;
        assert_eq!(render("obs.{a.b}", line, true), "obs.x_y");
        assert_eq!(render("{src}:{port}", line, false), "10.0.0.5:445");
        let p = render("obs.{partition(8, src, dest, port)}", line, true);
        let want = partition_of(8, &[b"10.0.0.5", b"203.0.113.9", b"445"]);
        assert_eq!(p, format!("obs.{want}"));
        assert_eq!(render("obs.{missing}", "not json", true), "obs._");
        assert!(!Template::parse("rulebox.enriched").unwrap().reads_fields());
        assert!(Template::parse("a.{partition(2, x)}").unwrap().reads_fields());
        for bad in ["obs.{", "{partition(0, a)}", "{partition(4)}", "{a b}", ""] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn partitions_spread_and_stay_put() {
        let mut seen = [0u32; 8];
        for i in 0..8000u32 {
            let v = i.to_string();
            let p = partition_of(8, &[v.as_bytes(), b"x"]);
            assert_eq!(p, partition_of(8, &[v.as_bytes(), b"x"]));
            seen[p as usize] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
        // A value's end is marked: ("ab", "c") and ("a", "bc") differ.
        assert_ne!(partition_of(1 << 20, &[b"ab", b"c"]), partition_of(1 << 20, &[b"a", b"bc"]));
    }

    #[test]
    fn bodies_round_trip_and_a_cut_one_is_refused() {
        let mut b = Batch::default();
        b.push_line(br#"{"k":"v"}"#);
        b.push_line(b"plain");
        let f = Frames::new(Template::parse("s.{k}").unwrap(), Some(Template::parse("id-{k}").unwrap()), 1);
        let mut body = Vec::new();
        f.encode(&b, &mut body);
        let body = Bytes::from(body);
        let got = frames(&body).unwrap();
        assert_eq!(got[0].0, "s.v");
        assert_eq!(got[0].1, "id-v");
        assert_eq!(&got[1].2[..], b"plain");
        assert_eq!(got[1].0, "s._");
        assert!(frames(&body.slice(..body.len() - 1)).is_err());
    }

    #[test]
    fn lines_with_one_subject_pack_into_messages_in_order() {
        let mut b = Batch::default();
        for l in [r#"{"k":"a","n":1}"#, r#"{"k":"a","n":2}"#, r#"{"k":"b","n":3}"#, r#"{"k":"a","n":4}"#, r#"{"k":"a","n":5}"#, r#"{"k":"a","n":6}"#] {
            b.push_line(l.as_bytes());
        }
        let f = Frames::new(Template::parse("s.{k}").unwrap(), None, 2);
        let mut body = Vec::new();
        f.encode(&b, &mut body);
        let got: Vec<(String, String)> = frames(&Bytes::from(body))
            .unwrap()
            .into_iter()
            .map(|(s, _, p)| (s, String::from_utf8(p.to_vec()).unwrap().replace(r#"{"k":"#, "").replace("}", "")))
            .collect();
        let want = [("s.a", "\"a\",\"n\":1\n\"a\",\"n\":2"), ("s.b", "\"b\",\"n\":3"), ("s.a", "\"a\",\"n\":4\n\"a\",\"n\":5"), ("s.a", "\"a\",\"n\":6")];
        let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(got, want);
    }
}
