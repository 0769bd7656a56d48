//! The `syslog` source: RFC 5424 or RFC 3164 messages over TCP (octet
//! counting, or LF or NUL framing, RFC 6587) or UDP; a JSON body is the
//! event, anything else is wrapped (see [`crate::codecs::syslog`]).

use std::sync::Arc;

use serde::Deserialize;
use tokio::net::UdpSocket;

use super::component::{Source, SourceContext, Started};
use super::listener::{
    ListenCtx, Read, Timeouts, accept_loop, bind_tcp, bind_udp, check_address, read_connection,
    server_tls, split,
};
use crate::batch::Batch;
use crate::codecs::syslog;
use crate::config::{Paths, Problem};
use crate::shutdown::shutdown_requested;
use crate::tls::{self, Served, ServerTls};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    pub address: String,
    #[serde(default)]
    pub mode: SyslogMode,
    #[serde(default = "super::component::default_max_message")]
    pub max_message_bytes: usize,
    #[serde(default = "super::component::default_batch_events")]
    pub batch_max_events: usize,
    /// TCP: a frame must be complete this long after its first byte, or its
    /// connection is closed (what was read is passed on).
    #[serde(default = "super::component::default_line_timeout")]
    pub line_timeout_secs: u64,
    /// TCP: a connection silent this long (between frames) is closed; 0: never.
    #[serde(default = "super::component::default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// UDP: the socket's receive buffer (SO_RCVBUF; the kernel doubles it
    /// and caps it at net.core.rmem_max). Default: the system's.
    #[serde(default)]
    pub receive_buffer_bytes: Option<usize>,
    /// TCP: syslog over TLS (RFC 5425: its octet-counted frames are read
    /// as any): the certificate and key to serve, and optionally the CAs
    /// whose client certificates are required.
    #[serde(default)]
    pub tls: Option<ServerTls>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogMode {
    #[default]
    Tcp,
    Udp,
}

impl Source for SyslogConfig {
    fn check(&self) -> Vec<Problem> {
        let mut p: Vec<Problem> = check_address(&self.address).into_iter().collect();
        if self.mode == SyslogMode::Udp && self.tls.is_some() {
            p.push(Problem::at("tls", "applies to mode = \"tcp\""));
        }
        p
    }

    fn check_paths(&self, paths: &Paths) -> Vec<Problem> {
        tls::check_server(self.tls.as_ref(), paths)
    }

    fn start(&self, cx: SourceContext) -> Started {
        let ctx = ListenCtx::new(&cx, self.batch_max_events);
        let max = self.max_message_bytes;
        let t = Timeouts::from_secs(self.line_timeout_secs, self.idle_timeout_secs);
        let Ok(tls) = server_tls(&cx, self.tls.as_ref()) else {
            return Started::listening();
        };
        let bound = match self.mode {
            SyslogMode::Tcp => bind_tcp(&self.address).map(|l| {
                tokio::spawn(accept_loop(ctx.clone(), l, move |stream, ctx| {
                    let tls = tls.clone();
                    async move { read_frames(stream, tls, &ctx, t, max).await }
                }));
            }),
            SyslogMode::Udp => bind_udp(&self.address).map(|sock| {
                if let Some(n) = self.receive_buffer_bytes {
                    set_receive_buffer(&ctx, &sock, n);
                }
                tokio::spawn(serve_udp(ctx.clone(), sock));
            }),
        };
        if let Err(e) = bound {
            ctx.cannot_listen(&self.address, e);
        }
        Started::listening()
    }
}

/// One message as an event line, its header's host and time kept as the
/// line's envelope (a `splunk_hec` sink writes them).
fn push_event(msg: &[u8], event: &mut Vec<u8>, batch: &mut Batch) {
    event.clear();
    let header = syslog::to_event(msg, event);
    batch.push_line(event);
    if let Some(meta) = syslog::envelope(&header) {
        batch.set_last_meta(&meta);
    }
}

async fn read_frames(
    stream: tokio::net::TcpStream,
    tls: Option<Arc<Served>>,
    ctx: &ListenCtx,
    t: Timeouts,
    max_message_bytes: usize,
) {
    let mut framer = syslog::Framer::new(max_message_bytes);
    let mut event = Vec::new();
    read_connection(stream, tls.as_ref(), ctx, t, |chunk, peer, out| {
        let mut batch = Batch::default();
        let mut push = |m: &[u8]| push_event(m, &mut event, &mut batch);
        let mut read = Read::Whole;
        if chunk.is_empty() {
            framer.finish(&mut push);
            read = Read::Close;
        } else if let Err(syslog::FrameTooLong(len)) = framer.push(chunk, &mut push) {
            tracing::error!(source = %ctx.id, %peer, frame_bytes = len, "syslog frame over max_message_bytes (or garbled framing): connection closed");
            ctx.error();
            read = Read::Close;
        } else if framer.pending() > 0 {
            read = Read::Partial;
        }
        if !batch.is_empty() {
            out.extend(split(batch, ctx.batch_max_events));
        }
        read
    })
    .await;
}

async fn serve_udp(ctx: ListenCtx, socket: std::net::UdpSocket) {
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
    let mut drops = Drops::new(&socket);
    let mut look = tokio::time::interval(DROPS_EVERY);
    loop {
        let first = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = look.tick() => {
                drops.look(&ctx);
                continue;
            }
            _ = &mut stop => {
                drops.look(&ctx);
                return;
            }
        };
        let mut batch = Batch::default();
        match first {
            Ok((n, _)) => push_event(&buf[..n], &mut event, &mut batch),
            Err(e) => {
                tracing::warn!(source = %ctx.id, error = %e, "receive failed");
                continue;
            }
        }
        // Whatever else is already queued goes in the same batch.
        while batch.count() < ctx.batch_max_events {
            match socket.try_recv_from(&mut buf) {
                Ok((n, _)) => push_event(&buf[..n], &mut event, &mut batch),
                Err(_) => break,
            }
        }
        if !ctx.send(batch).await {
            return;
        }
    }
}

/// How often the kernel's drop count of a UDP socket is read.
const DROPS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

fn set_receive_buffer(ctx: &ListenCtx, sock: &std::net::UdpSocket, bytes: usize) {
    let s = socket2::SockRef::from(sock);
    match s.set_recv_buffer_size(bytes) {
        Ok(()) => {
            let got = s.recv_buffer_size().unwrap_or(0);
            tracing::info!(source = %ctx.id, asked = bytes, got, "udp receive buffer set (the kernel doubles what is asked, up to net.core.rmem_max)");
        }
        Err(e) => tracing::warn!(source = %ctx.id, error = %e, "cannot set the udp receive buffer"),
    }
}

/// The datagrams the kernel dropped on this socket (its receive buffer was
/// full), read from /proc/net/udp{,6} by the socket's inode: UDP has no
/// flow control, so this is the only place loss shows.
struct Drops {
    inode: Option<u64>,
    seen: u64,
}

impl Drops {
    fn new(socket: &UdpSocket) -> Drops {
        use std::os::fd::AsRawFd;
        let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd()));
        let inode = link.ok().and_then(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        });
        Drops { inode, seen: 0 }
    }

    /// Reads the count; a rise is logged and counted as lost.
    fn look(&mut self, ctx: &ListenCtx) {
        let Some(now) = self.inode.and_then(kernel_drops) else {
            return;
        };
        if now > self.seen {
            let new = now - self.seen;
            ctx.stats.lost.fetch_add(new, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(source = %ctx.id, dropped = new, total = now, "the kernel dropped udp datagrams (receive buffer full): those events are lost; see receive_buffer_bytes");
            self.seen = now;
        }
    }
}

/// The `drops` column of the socket with this inode in /proc/net/udp or udp6.
fn kernel_drops(inode: u64) -> Option<u64> {
    ["/proc/net/udp", "/proc/net/udp6"].iter().find_map(|table| {
        let text = std::fs::read_to_string(table).ok()?;
        text.lines().skip(1).find_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            (cols.get(9)?.parse::<u64>().ok()? == inode).then(|| cols.get(12)?.parse().ok())?
        })
    })
}
