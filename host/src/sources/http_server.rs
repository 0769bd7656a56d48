//! The HTTP server the request-based sources share (`splunk_hec`, `http`,
//! `opentelemetry`):
//! hyper over the listener's connections, bodies bounded (declared size,
//! bytes in flight, after gzip), and an answer only once the request's
//! events are written by every sink ([`Ack::notify`]). A request that
//! cannot be taken or delivered in time is answered as busy (503), so the
//! client keeps its events and retries. What differs per source (routes,
//! tokens, body formats, answers) is its [`Endpoint`].

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::component::{SourceContext, Started};
use super::listener::{ListenCtx, accept_loop, bind_tcp, handshake, split};
use crate::batch::Batch;
use crate::durable::{Ack, Outcome};
use crate::shutdown::shutdown_requested;
use crate::tls::Served;

/// Request bodies one HTTP source holds at once, in multiples of
/// `max_body_bytes` (with at least 64 MiB): many clients sending large
/// bodies wait (then get 503) instead of growing memory without bound.
const BODIES_IN_FLIGHT: usize = 4;
const MIN_IN_FLIGHT_BYTES: usize = 64 << 20;

pub type Body = Full<Bytes>;

/// What a source answers and reads; the server does the rest.
pub trait Endpoint: Send + Sync + 'static {
    /// What a routed request carries (say, which body format).
    type Route: Send + Sync + Clone;

    /// Routes a request by its path and headers: what it carries, or the
    /// answer to give at once (not found, health, a refused token).
    // An answer is made once per request, off the per-event path: boxing
    // it would buy nothing.
    #[allow(clippy::result_large_err)]
    fn route(&self, req: &Request<Incoming>) -> Result<Self::Route, Response<Body>>;

    /// Reads a whole (inflated) body into events: the body as it arrived,
    /// in pieces (`body`, in order; one for an inflated body), which
    /// [`whole`] joins for a reader that needs it in one. A refused body is
    /// refused whole: nothing of it goes on.
    fn read(
        &self,
        route: Self::Route,
        body: &[Bytes],
        query: Option<&str>,
        out: &mut Batch,
    ) -> Result<(), Refusal>;

    /// The answer once `events` events are delivered.
    fn accepted(&self, events: usize) -> Response<Body>;

    /// The answer when the request could not be taken or delivered in time.
    fn busy(&self) -> Response<Body>;

    /// The answer when a sink gave the events up, and said why: by default
    /// [`Endpoint::busy`] (the client keeps its events).
    fn undelivered(&self, _why: &str) -> Response<Body> {
        self.busy()
    }

    /// The answer to a request routed `route`: by default the endpoint's
    /// own answers above, whatever the route. An endpoint whose answers
    /// depend on the request (OTLP answers in the request's encoding)
    /// gives its own.
    fn answer(&self, route: &Self::Route, done: Done) -> Response<Body> {
        let _ = route;
        match done {
            Done::Accepted(0) => reply(200, r#"{"text":"Success","code":0}"#),
            Done::Accepted(n) => self.accepted(n),
            Done::Busy => self.busy(),
            Done::Undelivered(why) => self.undelivered(&why),
            Done::Refused(r) => reply(r.status, r.body),
        }
    }
}

/// What became of a routed request, for [`Endpoint::answer`].
#[derive(Debug)]
pub enum Done {
    /// Its events (this many) are delivered.
    Accepted(usize),
    /// It could not be taken or delivered in time.
    Busy,
    /// A sink gave its events up, and said why.
    Undelivered(String),
    /// Its body was refused whole.
    Refused(Refusal),
}

/// A body refused: the answer, and why (for the log).
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub body: String,
    pub reason: String,
}

/// Limits of one HTTP source.
#[derive(Debug, Clone)]
pub struct HttpOpts {
    pub max_body_bytes: usize,
    /// Longest a request waits to be taken and delivered.
    pub ack_timeout: Duration,
    /// Longest a client takes to send a request's headers, and longest a
    /// kept-alive connection stays idle between requests.
    pub header_timeout: Duration,
    /// Longest a client takes to send a request's body.
    pub body_timeout: Duration,
    /// HTTPS: the handshake comes first, within `header_timeout`.
    pub tls: Option<Arc<Served>>,
}

pub fn reply(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub fn text_reply(status: u16, text: &str) -> Response<Body> {
    let mut body = b"{\"text\":".to_vec();
    let _ = serde_json::to_writer(&mut body, text);
    body.push(b'}');
    reply(status, body)
}

/// An answer given at routing; a 401 or 403 (no token, a wrong one) is
/// counted as refused and logged, without what the client sent.
fn refused(ctx: &ListenCtx, answer: Response<Body>) -> Response<Body> {
    let status = answer.status();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        ctx.stats
            .refused_unauthorized
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(source = %ctx.id, status = status.as_u16(), "request refused: unauthorized");
    }
    answer
}

/// Binds `address` and serves `endpoint` there until shutdown (an address
/// that cannot be bound is logged and counted; the source then ends).
pub fn start<E: Endpoint>(
    cx: &SourceContext,
    address: &str,
    batch_max_events: usize,
    opts: HttpOpts,
    endpoint: E,
) -> Started {
    let ctx = ListenCtx::new(cx, batch_max_events);
    match bind_tcp(address) {
        Ok(l) => {
            tokio::spawn(serve(ctx, l, opts, endpoint));
        }
        Err(e) => ctx.cannot_listen(address, e),
    }
    Started::listening()
}

/// Serves `endpoint` on `listener` until shutdown.
pub async fn serve<E: Endpoint>(
    ctx: ListenCtx,
    listener: std::net::TcpListener,
    opts: HttpOpts,
    endpoint: E,
) {
    let budget_kib = (opts.max_body_bytes.saturating_mul(BODIES_IN_FLIGHT))
        .max(MIN_IN_FLIGHT_BYTES)
        .div_ceil(1024);
    let budget = Arc::new(Semaphore::new(budget_kib.min(Semaphore::MAX_PERMITS)));
    let server = Arc::new(Server {
        opts,
        budget,
        endpoint,
    });
    accept_loop(ctx, listener, move |stream, ctx| {
        serve_connection(server.clone(), stream, ctx)
    })
    .await;
}

struct Server<E> {
    opts: HttpOpts,
    budget: Arc<Semaphore>,
    endpoint: E,
}

/// One connection (after its TLS handshake, with `tls`), until it ends
/// or, at shutdown, gracefully.
async fn serve_connection<E: Endpoint>(
    server: Arc<Server<E>>,
    stream: tokio::net::TcpStream,
    ctx: ListenCtx,
) {
    let Some(tls) = server.opts.tls.clone() else {
        return serve_http(server, stream, ctx).await;
    };
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "?".into(), |a| a.to_string());
    let within = server.opts.header_timeout;
    if let Some(s) = handshake(stream, &tls, &ctx, &peer, within, "header_timeout_secs").await {
        serve_http(server, s, ctx).await;
    }
}

/// HTTP/1.1 on `stream`, until it ends or, at shutdown, gracefully.
async fn serve_http<E: Endpoint, S>(server: Arc<Server<E>>, stream: S, ctx: ListenCtx)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let stop = shutdown_requested(ctx.shutdown.clone());
    let svc_ctx = ctx.clone();
    let header_timeout = server.opts.header_timeout;
    let service = hyper::service::service_fn(move |req| {
        let (ctx, server) = (svc_ctx.clone(), server.clone());
        async move { Ok::<_, Infallible>(server.handle(&ctx, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
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

impl<E: Endpoint> Server<E> {
    async fn handle(&self, ctx: &ListenCtx, req: Request<Incoming>) -> Response<Body> {
        let query = req.uri().query().map(str::to_string);
        let route = match self.endpoint.route(&req) {
            Ok(r) => r,
            Err(answer) => return refused(ctx, answer),
        };
        if req.method() != hyper::Method::POST {
            return text_reply(405, "use POST");
        }
        // Room for the body is held until the request is answered.
        let (body, mut room) = match self.read_body(ctx, &route, req).await {
            Ok(b) => b,
            Err(answer) => return answer,
        };
        // Events take about the body's room (a HEC body's envelopes
        // without their keys): one allocation, not one per doubling.
        let mut events = Batch::with_capacity(body.len);
        let read = self
            .endpoint
            .read(route.clone(), &body.frames, query.as_deref(), &mut events);
        if let Err(r) = read {
            ctx.stats.refused_malformed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(source = %ctx.id, error = %r.reason, "request refused: malformed body");
            return self.endpoint.answer(&route, Done::Refused(r));
        }
        let n = events.count();
        if n == 0 {
            return self.endpoint.answer(&route, Done::Accepted(0));
        }
        // What the source's scan kept with the events takes room too, at
        // most the body's size: more (events of many tiny members) is let
        // go, and the objects index scans those events itself.
        if events.kept_bytes() > body.len {
            events.forget_scans();
        }
        if !room.grow_by(events.kept_bytes()).await {
            return self.busy(ctx, &route);
        }
        let delivered = tokio::time::timeout(self.opts.ack_timeout, deliver(ctx, events)).await;
        let done = match delivered {
            Ok(Ok(())) => Done::Accepted(n),
            Ok(Err(Some(why))) => {
                tracing::warn!(source = %ctx.id, events = n, reason = %why, "request not delivered: answered 503 with the reason, the client keeps its events");
                Done::Undelivered(why)
            }
            res => {
                tracing::warn!(source = %ctx.id, events = n, timed_out = res.is_err(), "request not delivered: answered 503, the client keeps its events");
                Done::Busy
            }
        };
        self.endpoint.answer(&route, done)
    }

    /// The whole body, inflated, with its room among the bodies in flight:
    /// taken as bytes arrive (a stalled client holds only what it sent),
    /// and for what the body becomes (inflated, then events). Or the
    /// answer refusing it: too large (413), too slow (408), no room (503).
    #[allow(clippy::result_large_err)]
    async fn read_body(
        &self,
        ctx: &ListenCtx,
        route: &E::Route,
        req: Request<Incoming>,
    ) -> Result<(Received, Room), Response<Body>> {
        let max = self.opts.max_body_bytes;
        let too_large = || text_reply(413, &format!("Content too large: at most {max} bytes"));
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return Err(too_large());
        }
        let gzip = match req
            .headers()
            .get(header::CONTENT_ENCODING)
            .map(|v| v.as_bytes())
        {
            None | Some(b"identity") => false,
            Some(b"gzip") => true,
            Some(_) => {
                return Err(text_reply(
                    415,
                    "unsupported Content-Encoding (gzip or none)",
                ));
            }
        };
        let deadline = tokio::time::Instant::now() + self.opts.body_timeout;
        let mut room = Room::new(self.budget.clone(), deadline.min(self.ack_deadline()));
        let busy = |ctx: &ListenCtx| self.busy(ctx, route);
        // The frames as hyper hands them over: the endpoint reads them
        // as they are, or joins them (see `Endpoint::read`).
        let mut frames: Vec<Bytes> = Vec::new();
        let mut received = 0;
        let mut incoming = req.into_body();
        loop {
            let frame = match tokio::time::timeout_at(deadline, incoming.frame()).await {
                Err(_) => {
                    tracing::warn!(source = %ctx.id, received, "request body not received within body_timeout_secs: answered 408");
                    return Err(text_reply(408, "request body too slow"));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    tracing::debug!(source = %ctx.id, error = %e, "request body not read");
                    return Err(text_reply(400, "request body not read"));
                }
                Ok(Some(Ok(f))) => f,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if received + data.len() > max {
                return Err(too_large());
            }
            // The body, and the events it becomes (as many bytes again).
            let factor = if gzip { 1 } else { 2 };
            if !room.grow((received + data.len()) * factor).await {
                return Err(busy(ctx));
            }
            received += data.len();
            frames.push(data);
        }
        if !gzip {
            let len = received;
            return Ok((Received { frames, len }, room));
        }
        match self.inflate(&whole(&frames), &mut room).await {
            Ok(b) => Ok((Received::one(b), room)),
            Err(Inflate::TooLarge) => Err(too_large()),
            Err(Inflate::Bad(e)) => Err(text_reply(400, &format!("bad gzip body: {e}"))),
            Err(Inflate::NoRoom) => Err(busy(ctx)),
        }
    }

    /// Inflates a gzip body a step at a time, straight into the buffer it
    /// becomes, each step's room (with the events it becomes) taken
    /// before the step is inflated. The first step is the size the body's
    /// gzip trailer gives (exact for one member, the common body), so a
    /// body takes the room it needs and is not copied as it grows.
    async fn inflate(&self, gz: &[u8], room: &mut Room) -> Result<Vec<u8>, Inflate> {
        use std::io::Read;
        let max = self.opts.max_body_bytes;
        let mut d = flate2::bufread::MultiGzDecoder::new(gz);
        let mut out = Vec::new();
        // Up to one byte past the cap, to tell a body over it.
        let mut step = trailer_size(gz).saturating_add(1).min(max + 1);
        loop {
            if !room.grow(gz.len() + 2 * (out.len() + step).min(max)).await {
                return Err(Inflate::NoRoom);
            }
            // Exactly the first step; by doubling after it (a body of
            // many steps is not copied once a step).
            out.reserve(step);
            let n = (&mut d)
                .take(step as u64)
                .read_to_end(&mut out)
                .map_err(Inflate::Bad)?;
            if out.len() > max {
                return Err(Inflate::TooLarge);
            }
            if n < step {
                return Ok(out);
            }
            step = INFLATE_STEP.min(max + 1 - out.len());
        }
    }

    /// The answer when the bodies in flight hold all the room (503).
    fn busy(&self, ctx: &ListenCtx, route: &E::Route) -> Response<Body> {
        tracing::warn!(source = %ctx.id, "request bodies in flight at their cap: answered 503");
        self.endpoint.answer(route, Done::Busy)
    }

    /// How long a request may wait for room: its ack timeout from now.
    fn ack_deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.opts.ack_timeout
    }
}

/// Bytes of a gzip body inflated per step once the first (the size its
/// trailer gives) is done: a body of several members, or one whose
/// trailer understates it.
const INFLATE_STEP: usize = 256 << 10;

/// The inflated size a gzip body's trailer gives: its last member's
/// (modulo 2^32), 0 for a body too short to have one.
fn trailer_size(gz: &[u8]) -> usize {
    gz.len()
        .checked_sub(4)
        .and_then(|at| gz.get(at..))
        .and_then(|t| <[u8; 4]>::try_from(t).ok())
        .map_or(0, |t| u32::from_le_bytes(t) as usize)
}

/// A request's body as it arrived: hyper's frames in order (one for an
/// inflated body), `len` bytes in all.
struct Received {
    frames: Vec<Bytes>,
    len: usize,
}

impl Received {
    fn one(body: Vec<u8>) -> Received {
        let len = body.len();
        Received {
            frames: vec![Bytes::from(body)],
            len,
        }
    }
}

/// A body's `frames` in one piece: a single frame as it is, more copied
/// once into a buffer of their size.
pub fn whole(frames: &[Bytes]) -> std::borrow::Cow<'_, [u8]> {
    match frames {
        [] => std::borrow::Cow::Borrowed(&[]),
        [one] => std::borrow::Cow::Borrowed(one),
        _ => std::borrow::Cow::Owned(frames.concat()),
    }
}

enum Inflate {
    TooLarge,
    Bad(std::io::Error),
    NoRoom,
}

/// A request's room among the bodies in flight, in KiB of the source's
/// budget, grown as its body arrives and held until it is answered.
struct Room {
    budget: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
    kib: u32,
    /// Longest it waits for more room.
    deadline: tokio::time::Instant,
}

impl Room {
    fn new(budget: Arc<Semaphore>, deadline: tokio::time::Instant) -> Room {
        Room {
            budget,
            held: None,
            kib: 0,
            deadline,
        }
    }

    /// Holds room for `bytes` more than it holds; false as [`Room::grow`].
    async fn grow_by(&mut self, bytes: usize) -> bool {
        self.grow((self.kib as usize * 1024).saturating_add(bytes))
            .await
    }

    /// Holds room for `bytes` in all; false when the budget has none left
    /// before the deadline.
    async fn grow(&mut self, bytes: usize) -> bool {
        let need = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        if need <= self.kib {
            return true;
        }
        let more = self.budget.clone().acquire_many_owned(need - self.kib);
        match tokio::time::timeout_at(self.deadline, more).await {
            Ok(Ok(p)) => {
                match &mut self.held {
                    Some(h) => h.merge(p),
                    None => self.held = Some(p),
                }
                self.kib = need;
                true
            }
            _ => false,
        }
    }
}

/// Sends a request's events on, in batches sharing one delivery token, and
/// waits until every sink has written them, or one failed (and why, when
/// it said).
async fn deliver(ctx: &ListenCtx, events: Batch) -> Outcome {
    let (ack, done) = Ack::notify();
    let mut batches = split(events, ctx.batch_max_events);
    for b in &mut batches {
        b.acks.push(ack.clone());
    }
    drop(ack);
    for b in batches {
        if !ctx.send(b).await {
            return Err(None);
        }
    }
    done.await.unwrap_or(Err(None))
}
