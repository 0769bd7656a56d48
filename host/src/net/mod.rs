//! Network sources and sinks: Splunk HEC and NDJSON over HTTP, NDJSON over
//! TCP, syslog over TCP and UDP.
//!
//! Sources are async tasks on the pipeline's runtime. They hand batches on
//! through the same bounded channel as the file sources, awaiting room, so
//! a slow pipeline slows the reading of sockets (backpressure) instead of
//! buffering without bound. Request-based sources (HEC, http) answer a
//! request only once its events are written by every sink ([`Ack::notify`]);
//! a request that cannot be taken or delivered in time gets 503, so the
//! client keeps its events and retries.
//!
//! Network sinks keep a batch until it is delivered, retrying with
//! exponential back-off on connection errors and 5xx/429/408 answers; only
//! past `retry.limit_secs` (or, at shutdown, `retry.shutdown_grace_secs`)
//! are events given up, counted as write errors and their acks failed.

pub mod hec;
pub mod syslog;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, watch};

use crate::batch::{Batch, LineSplitter};
use crate::config::{NetSinkCommon, Retry};
use crate::durable::Ack;
use crate::pipeline::{Rx, SinkStats, Tx};

/// Connections one listening source serves at once.
const MAX_CONNECTIONS: usize = 1024;
/// At shutdown, how long open connections get to finish.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);
const READ_CHUNK: usize = 64 * 1024;

/// What every listening source shares.
#[derive(Clone)]
pub struct SourceCtx {
    pub id: Arc<str>,
    pub tx: Tx,
    pub errors: Arc<AtomicU64>,
    pub shutdown: watch::Receiver<bool>,
    pub batch_max_events: usize,
}

impl SourceCtx {
    async fn send(&self, b: Batch) -> bool {
        if b.is_empty() {
            return true;
        }
        self.tx.send(Arc::new(b)).await.is_ok()
    }

    fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

async fn shutdown_requested(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            // The sender is gone: nobody can ask any more; wait forever.
            std::future::pending::<()>().await;
        }
    }
}

/// Binds a TCP listener now, so a taken port is reported at start.
pub fn bind_tcp(address: &str) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(address)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

pub fn bind_udp(address: &str) -> std::io::Result<std::net::UdpSocket> {
    let s = std::net::UdpSocket::bind(address)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Accepts connections until shutdown, serving each with `serve`; then
/// waits (bounded) for the open ones to end.
async fn accept_loop<F, Fut>(ctx: SourceCtx, listener: std::net::TcpListener, serve: F)
where
    F: Fn(TcpStream, SourceCtx) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(source = %ctx.id, error = %e, "cannot listen");
            ctx.error();
            return;
        }
    };
    if let Ok(a) = listener.local_addr() {
        tracing::info!(source = %ctx.id, address = %a, "listening");
    }
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = tokio::task::JoinSet::new();
    let stop = shutdown_requested(ctx.shutdown.clone());
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = &mut stop => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut stop => break,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                let fut = serve(stream, ctx.clone());
                conns.spawn(async move {
                    fut.await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(source = %ctx.id, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_DRAIN, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(source = %ctx.id, open = conns.len(), "connections still open at shutdown: closed");
        conns.abort_all();
    }
}

// ---------------------------------------------------------------- HTTP in

/// What an HTTP source accepts.
#[derive(Debug, Clone)]
pub enum HttpKind {
    /// Splunk HEC endpoints, with these tokens.
    Hec { tokens: Arc<[String]> },
    /// NDJSON bodies POSTed to this path.
    Ndjson { path: Arc<str> },
}

#[derive(Debug, Clone)]
pub struct HttpOpts {
    pub kind: HttpKind,
    pub max_body_bytes: usize,
    /// Longest a request waits to be taken and delivered.
    pub ack_timeout: Duration,
}

/// Request bodies one HTTP source holds at once, in multiples of
/// `max_body_bytes` (with at least 64 MiB): many clients sending large
/// bodies wait (then get 503) instead of growing memory without bound.
const BODIES_IN_FLIGHT: usize = 4;
const MIN_IN_FLIGHT_BYTES: usize = 64 << 20;

type Body = Full<Bytes>;

fn reply(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn text_reply(status: u16, text: &str) -> Response<Body> {
    let mut body = b"{\"text\":".to_vec();
    let _ = serde_json::to_writer(&mut body, text);
    body.push(b'}');
    reply(status, body)
}

pub async fn serve_http(ctx: SourceCtx, listener: std::net::TcpListener, opts: HttpOpts) {
    let budget_kib = (opts.max_body_bytes.saturating_mul(BODIES_IN_FLIGHT))
        .max(MIN_IN_FLIGHT_BYTES)
        .div_ceil(1024);
    let budget = Arc::new(Semaphore::new(budget_kib.min(Semaphore::MAX_PERMITS)));
    let opts = Arc::new(opts);
    accept_loop(ctx, listener, move |stream, ctx| {
        let (opts, budget) = (opts.clone(), budget.clone());
        async move {
            let stop = shutdown_requested(ctx.shutdown.clone());
            let svc_ctx = ctx.clone();
            let service = hyper::service::service_fn(move |req| {
                let (ctx, opts, budget) = (svc_ctx.clone(), opts.clone(), budget.clone());
                async move { Ok::<_, Infallible>(handle(&ctx, &opts, &budget, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::pin!(stop);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(source = %ctx.id, error = %e, "connection ended");
                    }
                }
                _ = &mut stop => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        }
    })
    .await;
}

async fn handle(
    ctx: &SourceCtx,
    opts: &HttpOpts,
    budget: &Semaphore,
    req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    enum Mode {
        Hec,
        Raw,
        Ndjson,
    }
    let mode = match &opts.kind {
        HttpKind::Hec { tokens } => {
            let p = path.trim_end_matches('/');
            let mode = match p {
                "/services/collector/health" | "/services/collector/health/1.0" => {
                    return reply(200, hec::HEALTHY);
                }
                "/services/collector"
                | "/services/collector/event"
                | "/services/collector/event/1.0" => Mode::Hec,
                "/services/collector/raw" | "/services/collector/raw/1.0" => Mode::Raw,
                "/services/collector/ack" => {
                    return reply(400, r#"{"text":"ACK is disabled","code":14}"#);
                }
                _ => return reply(404, hec::NOT_FOUND),
            };
            let auth = req
                .headers()
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes());
            if let Err((status, body)) = hec::check_token(auth, tokens) {
                return reply(status, body);
            }
            mode
        }
        HttpKind::Ndjson { path: p } => {
            if path != **p {
                return text_reply(404, "not found");
            }
            Mode::Ndjson
        }
    };
    if req.method() != hyper::Method::POST {
        return text_reply(405, "use POST");
    }
    let too_large = || {
        text_reply(
            413,
            &format!("Content too large: at most {} bytes", opts.max_body_bytes),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > opts.max_body_bytes as u64) {
        return too_large();
    }
    let busy = || match opts.kind {
        HttpKind::Hec { .. } => reply(503, hec::BUSY),
        HttpKind::Ndjson { .. } => text_reply(503, "busy: retry"),
    };
    // Room for this body (what it declares, or the cap) among all in flight;
    // held until the request is answered.
    let want_kib = declared
        .map_or(opts.max_body_bytes, |n| n as usize)
        .max(1)
        .div_ceil(1024) as u32;
    let _room = match tokio::time::timeout(opts.ack_timeout, budget.acquire_many(want_kib)).await {
        Ok(Ok(permit)) => permit,
        _ => {
            tracing::warn!(source = %ctx.id, "request bodies in flight at their cap: answered 503");
            return busy();
        }
    };
    let gzip = match req
        .headers()
        .get(header::CONTENT_ENCODING)
        .map(|v| v.as_bytes())
    {
        None | Some(b"identity") => false,
        Some(b"gzip") => true,
        Some(_) => return text_reply(415, "unsupported Content-Encoding (gzip or none)"),
    };
    let body = match Limited::new(req.into_body(), opts.max_body_bytes)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return too_large();
        }
        Err(e) => {
            tracing::debug!(source = %ctx.id, error = %e, "request body not read");
            return text_reply(400, "request body not read");
        }
    };
    let body = if gzip {
        match gunzip(&body, opts.max_body_bytes) {
            Ok(b) => Bytes::from(b),
            Err(GunzipError::TooLarge) => return too_large(),
            Err(GunzipError::Bad(e)) => return text_reply(400, &format!("bad gzip body: {e}")),
        }
    } else {
        body
    };
    let mut events = Batch::default();
    let parsed = match mode {
        Mode::Hec => hec::read_event_body(&body, &mut events),
        Mode::Raw => hec::read_raw_body(&body, query.as_deref(), &mut events),
        Mode::Ndjson => {
            let mut s = LineSplitter::new(usize::MAX);
            let mut out = Vec::new();
            s.push(&body, &mut out);
            s.finish(&mut out);
            out.into_iter().for_each(|b| events.extend(&b));
            Ok(())
        }
    };
    if let Err(e) = parsed {
        tracing::warn!(source = %ctx.id, error = ?e, "request refused: malformed body");
        let (status, body) = e.response();
        return reply(status, body);
    }
    let n = events.count();
    if n == 0 {
        return reply(200, r#"{"text":"Success","code":0}"#);
    }
    let delivered = tokio::time::timeout(opts.ack_timeout, deliver(ctx, events)).await;
    match (delivered, &opts.kind) {
        (Ok(true), HttpKind::Hec { .. }) => reply(200, hec::SUCCESS),
        (Ok(true), HttpKind::Ndjson { .. }) => reply(200, format!("{{\"accepted\":{n}}}")),
        (res, _) => {
            tracing::warn!(source = %ctx.id, events = n, timed_out = res.is_err(), "request not delivered: answered 503, the client keeps its events");
            busy()
        }
    }
}

/// Sends a request's events on, in batches sharing one delivery token, and
/// waits until every sink has written them (true) or one failed.
async fn deliver(ctx: &SourceCtx, events: Batch) -> bool {
    let (ack, done) = Ack::notify();
    let mut batches = split(&events, ctx.batch_max_events);
    for b in &mut batches {
        b.acks.push(ack.clone());
    }
    drop(ack);
    for b in batches {
        if !ctx.send(b).await {
            return false;
        }
    }
    done.await.unwrap_or(false)
}

/// Cuts a batch into batches of at most `max` lines, metadata kept.
fn split(b: &Batch, max: usize) -> Vec<Batch> {
    if b.count() <= max {
        return vec![b.clone()];
    }
    let mut out = Vec::new();
    let mut cur = Batch::default();
    for (i, l) in b.iter().enumerate() {
        cur.push_line(l);
        cur.set_last_meta(b.meta(i));
        if cur.count() == max {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

enum GunzipError {
    TooLarge,
    Bad(std::io::Error),
}

fn gunzip(data: &[u8], max: usize) -> Result<Vec<u8>, GunzipError> {
    use std::io::Read;
    let mut out = Vec::new();
    let mut d = flate2::read::MultiGzDecoder::new(data).take(max as u64 + 1);
    d.read_to_end(&mut out).map_err(GunzipError::Bad)?;
    if out.len() > max {
        return Err(GunzipError::TooLarge);
    }
    Ok(out)
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::fast(),
    );
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

// ------------------------------------------------------- TCP and syslog in

/// How a TCP source cuts its stream.
#[derive(Debug, Clone, Copy)]
pub enum TcpFraming {
    /// NDJSON lines, none longer than this.
    Lines { max_line_bytes: usize },
    /// Syslog messages (octet counting or lines), up to this many bytes.
    Syslog { max_message_bytes: usize },
}

pub async fn serve_tcp(ctx: SourceCtx, listener: std::net::TcpListener, framing: TcpFraming) {
    accept_loop(ctx, listener, move |stream, ctx| {
        read_stream(stream, ctx, framing)
    })
    .await;
}

async fn read_stream(mut stream: TcpStream, ctx: SourceCtx, framing: TcpFraming) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut lines = LineSplitter::new(ctx.batch_max_events);
    let mut framer = match framing {
        TcpFraming::Syslog { max_message_bytes } => Some(syslog::Framer::new(max_message_bytes)),
        TcpFraming::Lines { .. } => None,
    };
    let mut buf = vec![0u8; READ_CHUNK];
    let mut out = Vec::new();
    let mut event = Vec::new();
    let stop = shutdown_requested(ctx.shutdown.clone());
    tokio::pin!(stop);
    loop {
        let n = tokio::select! {
            r = stream.read(&mut buf) => match r {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(source = %ctx.id, %peer, error = %e, "read failed; connection closed");
                    0
                }
            },
            _ = &mut stop => 0,
        };
        let mut batch = Batch::default();
        let mut push = |m: &[u8]| {
            event.clear();
            syslog::to_event(m, &mut event);
            batch.push_line(&event);
        };
        let end = n == 0;
        match &mut framer {
            None if end => lines.finish(&mut out),
            None => {
                lines.push(&buf[..n], &mut out);
                if let TcpFraming::Lines { max_line_bytes } = framing
                    && lines.pending() > max_line_bytes
                {
                    tracing::error!(source = %ctx.id, %peer, held = lines.pending(), max_line_bytes, "line over max_line_bytes with no end in sight: connection closed (the lines before it are kept)");
                    ctx.error();
                    for b in out.drain(..) {
                        let _ = ctx.send(b).await;
                    }
                    return;
                }
            }
            Some(f) if end => f.finish(&mut push),
            Some(f) => {
                if let Err(syslog::FrameTooLong(len)) = f.push(&buf[..n], &mut push) {
                    tracing::error!(source = %ctx.id, %peer, frame_bytes = len, "syslog frame over max_message_bytes (or garbled framing): connection closed");
                    ctx.error();
                    let _ = ctx.send(batch).await;
                    return;
                }
            }
        }
        if !batch.is_empty() {
            out.extend(split(&batch, ctx.batch_max_events));
        }
        for b in out.drain(..) {
            if !ctx.send(b).await {
                return;
            }
        }
        if end {
            return;
        }
    }
}

pub async fn serve_udp(ctx: SourceCtx, socket: std::net::UdpSocket) {
    let socket = match UdpSocket::from_std(socket) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(source = %ctx.id, error = %e, "cannot listen");
            ctx.error();
            return;
        }
    };
    if let Ok(a) = socket.local_addr() {
        tracing::info!(source = %ctx.id, address = %a, "listening (udp)");
    }
    let mut buf = vec![0u8; 65536];
    let mut event = Vec::new();
    let stop = shutdown_requested(ctx.shutdown.clone());
    tokio::pin!(stop);
    loop {
        let first = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = &mut stop => return,
        };
        let mut batch = Batch::default();
        let take = |msg: &[u8], event: &mut Vec<u8>, batch: &mut Batch| {
            event.clear();
            syslog::to_event(msg, event);
            batch.push_line(event);
        };
        match first {
            Ok((n, _)) => take(&buf[..n], &mut event, &mut batch),
            Err(e) => {
                tracing::warn!(source = %ctx.id, error = %e, "receive failed");
                continue;
            }
        }
        // Whatever else is already queued goes in the same batch.
        while batch.count() < ctx.batch_max_events {
            match socket.try_recv_from(&mut buf) {
                Ok((n, _)) => take(&buf[..n], &mut event, &mut batch),
                Err(_) => break,
            }
        }
        if !ctx.send(batch).await {
            return;
        }
    }
}

// ------------------------------------------------------------------ sinks

/// How a network sink writes its events.
#[derive(Debug, Clone)]
pub enum Encoding {
    /// NDJSON: the lines as they are.
    Lines,
    /// Splunk HEC envelopes.
    Hec(hec::Defaults),
}

/// A failed delivery, and whether trying again may help.
#[derive(Debug)]
pub enum Failure {
    Retry(String),
    Permanent(String),
}

/// Where a sink delivers bodies.
pub enum Target {
    Http(HttpTarget),
    Tcp(TcpTarget),
}

impl Target {
    async fn deliver(&mut self, body: &Bytes) -> Result<(), Failure> {
        match self {
            Target::Http(t) => t.deliver(body).await,
            Target::Tcp(t) => t.deliver(body).await,
        }
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

    async fn deliver(&mut self, body: &Bytes) -> Result<(), Failure> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.address)
                .await
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

pub struct HttpTarget {
    /// host:port to connect to.
    authority: String,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    sender: Option<hyper::client::conn::http1::SendRequest<Body>>,
}

impl HttpTarget {
    /// `uri` must be `http://host[:port]/path`; `headers` are sent on every
    /// request (with the content type and, when set, `Content-Encoding`).
    pub fn new(
        uri: &str,
        headers: Vec<(String, String)>,
        timeout: Duration,
    ) -> Result<HttpTarget, String> {
        let u: hyper::Uri = uri.parse().map_err(|e| format!("bad URI {uri:?}: {e}"))?;
        match u.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "{uri}: https is not supported; reach TLS endpoints through a local TLS proxy (see README)"
                ));
            }
            _ => return Err(format!("{uri}: the URI must start with http://")),
        }
        let host = u.host().ok_or_else(|| format!("{uri}: no host"))?;
        let authority = format!("{host}:{}", u.port_u16().unwrap_or(80));
        let path = u
            .path_and_query()
            .map_or("/".to_string(), |p| p.to_string());
        let headers = headers
            .into_iter()
            .map(|(k, v)| {
                Ok((
                    HeaderName::from_bytes(k.as_bytes())
                        .map_err(|e| format!("header {k:?}: {e}"))?,
                    HeaderValue::from_str(&v).map_err(|e| format!("header {k:?}: {e}"))?,
                ))
            })
            .collect::<Result<_, String>>()?;
        Ok(HttpTarget {
            authority,
            path,
            headers,
            timeout,
            sender: None,
        })
    }

    async fn connect(&mut self) -> Result<(), Failure> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| Failure::Retry(format!("connect {}: {e}", self.authority)))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Failure::Retry(format!("handshake {}: {e}", self.authority)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    async fn deliver(&mut self, body: &Bytes) -> Result<(), Failure> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.connect().await?;
        }
        let Some(sender) = self.sender.as_mut() else {
            return Err(Failure::Retry("not connected".into()));
        };
        let mut req = Request::post(&self.path)
            .header(header::HOST, &self.authority)
            .body(Full::new(body.clone()))
            .map_err(|e| Failure::Permanent(format!("request: {e}")))?;
        for (k, v) in &self.headers {
            req.headers_mut().insert(k.clone(), v.clone());
        }
        let res = tokio::time::timeout(self.timeout, async {
            sender.ready().await?;
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        })
        .await;
        let (status, answer) = match res {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                self.sender = None;
                return Err(Failure::Retry(format!(
                    "POST {}{}: {e}",
                    self.authority, self.path
                )));
            }
            Err(_) => {
                self.sender = None;
                return Err(Failure::Retry(format!(
                    "POST {}{}: no answer within {:?}",
                    self.authority, self.path, self.timeout
                )));
            }
        };
        if status.is_success() {
            return Ok(());
        }
        let msg = format!(
            "POST {}{}: {status} {}",
            self.authority,
            self.path,
            String::from_utf8_lossy(&answer[..answer.len().min(300)])
        );
        if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
        {
            Err(Failure::Retry(msg))
        } else {
            Err(Failure::Permanent(msg))
        }
    }
}

/// How a network sink encodes, batches and retries.
#[derive(Debug, Clone)]
pub struct SinkOpts {
    pub encoding: Encoding,
    pub gzip: bool,
    pub common: NetSinkCommon,
}

/// Delivers batches to `target` until the input ends; see the module docs.
pub async fn sink_task(
    id: String,
    mut rx: Rx,
    stats: Arc<SinkStats>,
    mut target: Target,
    opts: SinkOpts,
    shutdown: watch::Receiver<bool>,
) {
    let mut body = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut held = vec![first];
        let (mut events, mut bytes) = (held[0].count(), held[0].bytes().len());
        while events < opts.common.batch_max_events && bytes < opts.common.batch_max_bytes {
            match rx.try_recv() {
                Ok(b) => {
                    events += b.count();
                    bytes += b.bytes().len();
                    held.push(b);
                }
                Err(_) => break,
            }
        }
        body.clear();
        for b in &held {
            match &opts.encoding {
                Encoding::Lines => body.extend_from_slice(b.bytes()),
                Encoding::Hec(d) => {
                    for (i, l) in b.iter().enumerate() {
                        hec::write_envelope(&mut body, l, b.meta(i), d);
                        body.push(b'\n');
                    }
                }
            }
        }
        if events == 0 {
            continue;
        }
        let payload = Bytes::from(if opts.gzip { gzip(&body) } else { body.clone() });
        let started = Instant::now();
        let retry = &opts.common.retry;
        let mut wait = Duration::from_millis(retry.initial_ms.max(1));
        let mut tries = 0u64;
        let outcome = loop {
            tries += 1;
            match target.deliver(&payload).await {
                Ok(()) => break Ok(()),
                Err(Failure::Permanent(msg)) => break Err(msg),
                Err(Failure::Retry(msg)) => {
                    let limit = retry_limit(retry, *shutdown.borrow());
                    if limit.is_some_and(|l| started.elapsed() >= l) {
                        break Err(format!(
                            "{msg}; gave up after {tries} tries in {:?}",
                            started.elapsed()
                        ));
                    }
                    stats.retries.fetch_add(1, Ordering::Relaxed);
                    if tries == 1 || tries.is_power_of_two() {
                        tracing::warn!(sink = %id, error = %msg, tries, retry_in = ?wait, events, "delivery failed; keeping the events and retrying");
                    }
                    // A shutdown cuts the wait short once (to apply its grace).
                    if *shutdown.borrow() {
                        tokio::time::sleep(wait).await;
                    } else {
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = shutdown_requested(shutdown.clone()) => {}
                        }
                    }
                    wait = (wait * 2).min(Duration::from_millis(retry.max_ms.max(1)));
                }
            }
        };
        match outcome {
            Ok(()) => {
                if tries > 1 {
                    tracing::info!(sink = %id, tries, events, "delivered after retrying");
                }
                stats.events.fetch_add(events as u64, Ordering::Relaxed);
                stats
                    .bytes
                    .fetch_add(payload.len() as u64, Ordering::Relaxed);
            }
            Err(msg) => {
                tracing::error!(sink = %id, error = %msg, events, "events not delivered: counted as write errors");
                for b in &held {
                    b.fail_acks();
                }
                stats
                    .write_errors
                    .fetch_add(events as u64, Ordering::Relaxed);
            }
        }
        // Dropping `held` lets go of the acks: the events are done.
    }
}

fn retry_limit(r: &Retry, shutting_down: bool) -> Option<Duration> {
    let limit = (r.limit_secs > 0).then(|| Duration::from_secs(r.limit_secs));
    if shutting_down {
        let grace = Duration::from_secs(r.shutdown_grace_secs);
        return Some(limit.map_or(grace, |l| l.min(grace)));
    }
    limit
}
