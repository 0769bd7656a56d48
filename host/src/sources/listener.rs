//! What every listening source shares: binding (at start, so a taken port
//! is reported then), accepting at most [`MAX_CONNECTIONS`] at once, and a
//! bounded drain of open connections at shutdown.
//!
//! Listening sources are async tasks on the pipeline's runtime. They hand
//! batches on through the same bounded channel as the file sources,
//! awaiting room, so a slow pipeline slows the reading of sockets
//! (backpressure) instead of buffering without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::component::{SourceContext, SourceStats};
use crate::batch::Batch;
use crate::channel::Tx;
use crate::config::{Paths, Problem};
use crate::secret::{Secret, Tokens};
use crate::shutdown::shutdown_requested;
use crate::tls::{Served, ServerTls};

/// Connections one listening source serves at once.
const MAX_CONNECTIONS: usize = 1024;
/// At shutdown, how long open connections get to finish.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);
/// Bytes read from a connection at a time.
pub const READ_CHUNK: usize = 64 * 1024;

/// What every listening source shares.
#[derive(Clone)]
pub struct ListenCtx {
    pub id: Arc<str>,
    pub tx: Tx,
    pub errors: Arc<AtomicU64>,
    pub stats: Arc<SourceStats>,
    pub shutdown: watch::Receiver<bool>,
    pub batch_max_events: usize,
}

impl ListenCtx {
    pub async fn send(&self, b: Batch) -> bool {
        if b.is_empty() {
            return true;
        }
        self.tx.send(Arc::new(b)).await.is_ok()
    }

    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// A listening source's `address`: `host:port` (an IPv6 host in
/// brackets), the port a number up to 65535. Checked by `validate`, so a
/// mistyped port is not found only when `run` binds it. The host is not
/// resolved here.
pub fn check_address(address: &str) -> Option<Problem> {
    if address.parse::<std::net::SocketAddr>().is_ok() {
        return None;
    }
    let expected = "expected host:port, e.g. \"127.0.0.1:10514\" (\"[::1]:10514\" for IPv6)";
    let Some((host, port)) = address.rsplit_once(':') else {
        return Some(Problem::at("address", format!("{address:?}: {expected}")));
    };
    if host.is_empty() || (host.contains(':') && !host.starts_with('[')) {
        return Some(Problem::at("address", format!("{address:?}: {expected}")));
    }
    match port.parse::<u16>() {
        Ok(_) => None,
        Err(_) => Some(Problem::at(
            "address",
            format!("{address:?}: the port must be a number from 0 to 65535, not {port:?}"),
        )),
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
pub async fn accept_loop<F, Fut>(ctx: ListenCtx, listener: std::net::TcpListener, serve: F)
where
    F: Fn(TcpStream, ListenCtx) -> Fut,
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

impl ListenCtx {
    /// The context of a source listening for `cx`'s component.
    pub fn new(cx: &SourceContext, batch_max_events: usize) -> ListenCtx {
        ListenCtx {
            id: cx.id.as_str().into(),
            tx: cx.tx.clone(),
            errors: cx.errors.clone(),
            stats: cx.stats.clone(),
            shutdown: cx.shutdown.clone(),
            batch_max_events: batch_max_events.max(1),
        }
    }

    /// Logs and counts an address that could not be bound.
    pub fn cannot_listen(&self, address: &str, e: std::io::Error) {
        tracing::error!(source = %self.id, %address, error = %e, "cannot listen: source not started");
        self.error();
    }
}

/// Cuts a batch into batches of at most `max` lines, metadata and kept
/// scans with them; one that fits goes on as it is, not copied.
pub fn split(b: Batch, max: usize) -> Vec<Batch> {
    if b.count() <= max {
        return vec![b];
    }
    let mut out = Vec::new();
    let mut cur = Batch::default();
    for (i, l) in b.iter().enumerate() {
        cur.push_line(l);
        cur.set_last_meta(b.meta(i));
        if let Some((members, close)) = b.scans().and_then(|s| s.get(i, l)) {
            cur.set_last_scan(members, close);
        }
        if cur.count() == max {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// What a connection's reader says after a chunk.
pub enum Read {
    /// Keep reading; nothing is left half-read.
    Whole,
    /// Keep reading; a line or frame has begun and is not complete.
    Partial,
    /// Close the connection once what was cut is sent on.
    Close,
}

/// How long a connection may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A line or frame must be complete this long after its first byte.
    pub line: Duration,
    /// A connection with nothing half-read may stay silent this long
    /// (`None`: for ever).
    pub idle: Option<Duration>,
}

impl Timeouts {
    pub fn from_secs(line_secs: u64, idle_secs: u64) -> Timeouts {
        Timeouts {
            line: Duration::from_secs(line_secs.max(1)),
            idle: (idle_secs > 0).then(|| Duration::from_secs(idle_secs)),
        }
    }
}

/// Reads a connection until it ends, fails, times out or shutdown. Each
/// chunk (an empty one at the end) goes to `cut`, which puts complete
/// batches in its output; those are sent on (awaiting room) before the
/// next read. A line or frame still incomplete after `t.line`, or silence
/// past `t.idle`, closes the connection (what was begun is passed on, as
/// at its end): a client cannot hold a connection slot by trickling.
pub async fn read_connection(
    stream: TcpStream,
    tls: Option<&Arc<Served>>,
    ctx: &ListenCtx,
    t: Timeouts,
    mut cut: impl FnMut(&[u8], &str, &mut Vec<Batch>) -> Read,
) {
    use tokio::io::AsyncReadExt;
    use tokio::time::Instant;
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let Some(mut stream) = open(stream, tls, ctx, &peer, t.line).await else {
        return;
    };
    let mut buf = vec![0u8; READ_CHUNK];
    let mut out = Vec::new();
    let stop = shutdown_requested(ctx.shutdown.clone());
    tokio::pin!(stop);
    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    let mut begun: Option<Instant> = None;
    loop {
        let deadline = match begun {
            Some(at) => at + t.line,
            None => t.idle.map_or(far, |idle| Instant::now() + idle),
        };
        let n = tokio::select! {
            r = tokio::time::timeout_at(deadline, stream.read(&mut buf)) => match r {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    tracing::warn!(source = %ctx.id, %peer, error = %e, "read failed; connection closed");
                    0
                }
                Err(_) if begun.is_some() => {
                    tracing::warn!(source = %ctx.id, %peer, line_timeout = ?t.line, "a line or frame was not completed in time: connection closed (what was read is passed on)");
                    ctx.error();
                    0
                }
                Err(_) => {
                    tracing::info!(source = %ctx.id, %peer, idle_timeout = ?t.idle, "connection idle: closed");
                    0
                }
            },
            _ = &mut stop => 0,
        };
        let read = cut(&buf[..n], &peer, &mut out);
        for b in out.drain(..) {
            if !ctx.send(b).await {
                return;
            }
        }
        match read {
            _ if n == 0 => return,
            Read::Close => return,
            Read::Whole => begun = None,
            Read::Partial => {
                begun.get_or_insert_with(Instant::now);
            }
        }
    }
}

/// A connection to read: as it is, or after its TLS handshake.
async fn open(
    stream: TcpStream,
    tls: Option<&Arc<Served>>,
    ctx: &ListenCtx,
    peer: &str,
    within: Duration,
) -> Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>> {
    let Some(tls) = tls else {
        return Some(Box::new(stream));
    };
    let s = handshake(stream, tls, ctx, peer, within, "line_timeout_secs").await?;
    Some(Box::new(s))
}

/// The TLS handshake of a connection to a listener, which must end
/// `within` (the key `timeout_key` sets it); a refused one is logged,
/// counted (`refused_tls`) and closed.
pub async fn handshake(
    stream: TcpStream,
    tls: &Served,
    ctx: &ListenCtx,
    peer: &str,
    within: Duration,
    timeout_key: &str,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let accept = tokio_rustls::TlsAcceptor::from(tls.config()).accept(stream);
    let refused = match tokio::time::timeout(within, accept).await {
        Ok(Ok(s)) => return Some(s),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("not done within {timeout_key}"),
    };
    ctx.stats.refused_tls.fetch_add(1, Ordering::Relaxed);
    tracing::info!(source = %ctx.id, %peer, reason = %refused, "TLS handshake refused");
    None
}

/// A listener's TLS from its `tls` (none without one), reloaded on SIGHUP;
/// `Err`: logged and counted, the source does not start.
pub fn server_tls(cx: &SourceContext, tls: Option<&ServerTls>) -> Result<Option<Arc<Served>>, ()> {
    let served = tls.map(|t| Served::new(&cx.id, t, &cx.paths)).transpose();
    served.map_err(|e| {
        tracing::error!(source = %cx.id, error = %e, "tls: not started");
        cx.errors.fetch_add(1, Ordering::Relaxed);
    })
}

/// `validate`'s check of a listener's tokens: each can be revealed (the
/// problem names where one was looked for, never a value).
pub fn check_tokens(list: &[Secret], paths: &Paths) -> Option<Problem> {
    Tokens::reveal(list, paths, "tokens")
        .err()
        .map(|(key, e)| Problem::at(key, e))
}

/// A listener's accepted tokens, revealed; `Err`: logged (where the
/// secret was looked for, not what it holds) and counted, the source does
/// not start.
pub fn tokens(cx: &SourceContext, list: &[Secret]) -> Result<Tokens, ()> {
    Tokens::reveal(list, &cx.paths, "tokens").map_err(|(key, e)| {
        tracing::error!(source = %cx.id, key, error = %e, "not started");
        cx.errors.fetch_add(1, Ordering::Relaxed);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A HEC request's events cut in two: each line keeps its metadata and
    /// the members its envelope's scan found.
    #[test]
    fn a_batch_cut_keeps_each_lines_metadata_and_scan() {
        let body = br#"{"event":{"a":1},"host":"x"}{"event":"s"}{"event":{"b":[2]},"host":"y"}"#;
        let mut whole = Batch::default();
        crate::codecs::hec::read_event_body(body, &mut whole).unwrap();
        let describe = |b: &Batch| -> Vec<(Vec<u8>, Vec<u8>, bool)> {
            let lines = b.iter().enumerate();
            lines
                .map(|(i, l)| {
                    let kept = b.scans().and_then(|p| p.get(i, l)).is_some();
                    (l.to_vec(), b.meta(i).to_vec(), kept)
                })
                .collect()
        };
        let want = describe(&whole);
        assert_eq!(
            want.iter().map(|d| d.2).collect::<Vec<_>>(),
            [true, false, true]
        );
        let parts = split(whole, 2);
        assert_eq!(parts.iter().map(Batch::count).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(parts.iter().flat_map(describe).collect::<Vec<_>>(), want);
    }

    #[test]
    fn a_listening_address_needs_a_host_and_a_port_that_fits() {
        for ok in [
            "127.0.0.1:10514",
            "0.0.0.0:0",
            "[::1]:8088",
            "localhost:8088",
        ] {
            assert_eq!(check_address(ok), None, "{ok}");
        }
        for (bad, says) in [
            ("127.0.0.1:105140", "not \"105140\""),
            ("127.0.0.1:", "not \"\""),
            ("127.0.0.1:http", "not \"http\""),
            ("127.0.0.1", "expected host:port"),
            (":10514", "expected host:port"),
            ("::1", "expected host:port"),
            ("", "expected host:port"),
        ] {
            let p = check_address(bad).unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert_eq!(p.key.as_deref(), Some("address"));
            assert!(p.message.contains(says), "{bad:?}: {}", p.message);
        }
    }
}
